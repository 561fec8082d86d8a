//! `ledger history`, and `history --follow` (a consumer of
//! [`crate::follow`]).

use std::collections::VecDeque;
use std::io::{self, Write};
use std::path::Path;
use std::time::Duration;

use crate::cli::{Format, HistoryArgs};
use crate::cmd::{Context, ReplayFrom, replay, torn_warning};
use crate::domain::State;
use crate::error::Error;
use crate::event::Event;
use crate::follow::{Consumer, Follower};
use crate::journal::JournalError;
use crate::journal::line;
use crate::journal::scan::{Entry, Torn};
use crate::money::Amount;
use crate::output;
use crate::time::{Day, Zone};

/// One selected event, rendered.
enum Row {
    /// A JSON line.
    Json(Vec<u8>),
    /// CSV or table cells.
    Cells(Vec<String>),
}

/// Prints the selected events in order (and, with `--follow`, new ones as
/// they come).
pub fn run(ctx: &Context, args: &HistoryArgs) -> Result<(), Error> {
    if args.follow {
        if args.by_day() {
            return Err(Error::Usage(
                "--follow prints events in journal order and takes no date bound; use a timestamp or --from-seq".into(),
            ));
        }
        return follow(ctx, args);
    }
    if args.by_day() {
        return by_day(ctx, args);
    }
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    // Rows are held back only when they must be: to keep the last N, or to
    // align a table. Otherwise they stream, and memory stays flat.
    let hold = args.limit.is_some() || ctx.format == Format::Table;
    let mut held: VecDeque<Row> = VecDeque::new();
    let account = args.account.as_deref();
    // The CSV header waits for the first row (or the end), so that an
    // unknown account is an error with nothing printed.
    let mut csv_header = (ctx.format == Format::Csv).then(|| csv_header(account.is_some()));
    let mut emit = |out: &mut io::BufWriter<io::StdoutLock<'_>>, row: Row| -> Result<(), Error> {
        if let Some(header) = csv_header.take() {
            output::csv_row(out, &header)?;
        }
        emit(out, row)
    };
    // A streamed row waits for the next line to be read: an edited line is
    // only caught by the next line's `prev`, and must never be printed.
    let mut unconfirmed: Option<Row> = None;
    let state = replay(&ctx.path, None, ReplayFrom::Start, |state, entry| {
        if let Some(row) = unconfirmed.take() {
            emit(&mut out, row)?;
        }
        if !selected(args, &ctx.zone, entry) || args.limit == Some(0) {
            return Ok(());
        }
        let row = render(ctx, &entry.event, entry.line, balance_in(state, account));
        if !hold {
            unconfirmed = Some(row);
            return Ok(());
        }
        if args.limit.is_some_and(|n| held.len() == n) {
            held.pop_front();
        }
        held.push_back(row);
        Ok(())
    })?;
    if let Some(row) = unconfirmed {
        emit(&mut out, row)?;
    }
    if let Some(name) = account
        && state.account(name).is_none()
    {
        return Err(state.unknown_account(name).into());
    }
    print_held(ctx, &mut out, held, account.is_some(), &mut emit)?;
    if let Some(header) = csv_header {
        output::csv_row(&mut out, &header)?;
    }
    Ok(out.flush()?)
}

/// Prints rows that were held back: as an aligned table, or one by one.
fn print_held<W: Write>(
    ctx: &Context,
    out: &mut W,
    held: impl IntoIterator<Item = Row>,
    balance: bool,
    emit: &mut impl FnMut(&mut W, Row) -> Result<(), Error>,
) -> Result<(), Error> {
    if ctx.format != Format::Table {
        for row in held {
            emit(out, row)?;
        }
        return Ok(());
    }
    let mut header = vec!["SEQ", "AT", "EVENT"];
    let mut right = vec![true, false, false];
    if balance {
        header.push("BALANCE");
        right.push(true);
    }
    header.extend(["MEMO", "ID"]);
    let rows: Vec<Vec<String>> = held
        .into_iter()
        .filter_map(|r| match r {
            Row::Cells(c) => Some(c),
            Row::Json(_) => None,
        })
        .collect();
    if rows.is_empty() {
        writeln!(out, "no events")?;
    } else {
        output::table(out, &header, &right, &rows)?;
    }
    Ok(())
}

/// `history` with a date bound (SPEC 9): the selected events by day, then
/// seq, and for one account its balance by day — a backdated line in its
/// place, the balance as the books of that day have it.
fn by_day(ctx: &Context, args: &HistoryArgs) -> Result<(), Error> {
    let account = args.account.as_deref();
    // Every event that moves the account's money counts towards its
    // balance by day; only the selected ones are shown.
    let mut events: Vec<(Day, u64, Amount, Option<Vec<u8>>)> = Vec::new();
    let state = replay(&ctx.path, None, ReplayFrom::Start, |_, entry| {
        let event = &entry.event;
        let delta = account.map_or(Amount::ZERO, |a| event.change.effect_on(a));
        let shown = selected(args, &ctx.zone, entry);
        if shown || delta != Amount::ZERO {
            let line = shown.then(|| entry.line.to_vec());
            events.push((event.day(&ctx.zone), event.seq, delta, line));
        }
        Ok(())
    })?;
    if let Some(name) = account
        && state.account(name).is_none()
    {
        return Err(state.unknown_account(name).into());
    }
    events.sort_unstable_by_key(|(day, seq, _, _)| (*day, *seq));
    let decimals = account
        .and_then(|a| state.account(a))
        .map(|a| state.unit_of(a).decimals);
    let mut balance = Amount::ZERO;
    let mut rows: VecDeque<Row> = VecDeque::new();
    for (_, _, delta, line) in events {
        balance = Amount(balance.0.saturating_add(delta.0));
        let Some(line) = line else { continue };
        let decoded = line::decode(&line, &mut Vec::new()).map_err(|e| JournalError::Corrupt {
            path: ctx.path.clone(),
            line: 0,
            reason: e.to_string(),
        })?;
        let shown = decimals.map(|d| balance.display(d).to_string());
        rows.push_back(render(ctx, &decoded.event, &line, shown));
        if args.limit.is_some_and(|n| rows.len() > n) {
            rows.pop_front();
        }
    }
    let mut out = io::BufWriter::new(io::stdout().lock());
    if ctx.format == Format::Csv {
        output::csv_row(&mut out, &csv_header(account.is_some()))?;
    }
    print_held(ctx, &mut out, rows, account.is_some(), &mut |out, row| {
        emit(out, row)
    })?;
    Ok(out.flush()?)
}

fn csv_header(balance: bool) -> Vec<&'static str> {
    let mut header: Vec<&str> = output::EVENT_CSV_HEADER.to_vec();
    if balance {
        header.push("balance");
    }
    header
}

/// An account's balance in `state`, as text.
fn balance_in(state: &State, account: Option<&str>) -> Option<String> {
    account
        .and_then(|name| state.account(name))
        .map(|a| a.balance.display(state.unit_of(a).decimals).to_string())
}

/// Whether the arguments select this event.
fn selected(args: &HistoryArgs, zone: &Zone, entry: &Entry<'_>) -> bool {
    let event = &entry.event;
    args.from_seq.is_none_or(|n| event.seq > n)
        && args.as_of.is_none_or(|b| b.includes(event, zone))
        && args.since.is_none_or(|b| b.admits_from(event, zone))
        && args.until.is_none_or(|b| b.admits_to(event, zone))
        && args.tags.iter().all(|t| t.matches(event))
        && args
            .account
            .as_deref()
            .is_none_or(|a| event.change.involves(a))
}

/// How long a Ctrl-C waits for the follow to end cleanly before the process
/// exits anyway (when its output is stuck on a reader that stopped reading).
const INTERRUPT_GRACE: Duration = Duration::from_secs(1);

/// `history --follow`: the [`Follower`] reads the journal, a [`Printer`]
/// prints what it hands over. Ends with exit 0 on Ctrl-C or a closed output.
fn follow(ctx: &Context, args: &HistoryArgs) -> Result<(), Error> {
    let mut follower = Follower::new(&ctx.path);
    if let Some(seq) = args.from_seq {
        follower = follower.skipping_to(seq);
    }
    // For tests and benchmarks of the fallback: poll, without notifications.
    if std::env::var_os("LEDGER_TEST_FOLLOW_POLL").is_some() {
        follower = follower.polling_only();
    }
    let stopper = follower.stopper();
    // Rust's default for SIGINT kills the process (status 130); here it ends
    // the follow after the round in progress, like a closed output. If this
    // fails (a handler is already set), Ctrl-C keeps its default.
    let _ = ctrlc::set_handler(move || {
        stopper.stop();
        std::thread::sleep(INTERRUPT_GRACE);
        std::process::exit(i32::from(crate::error::code::OK));
    });
    let mut printer = Printer::new(ctx, args);
    match follower.run(&mut printer) {
        Ok(()) => Ok(()),
        // The output closed: a quiet success (see `Error::exit_code`).
        Err(Error::Output(e)) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => {
            // The rows that lines after them confirmed are printed, as
            // plain `history` prints them before it reports a bad line.
            let _ = printer.write_out();
            Err(e)
        }
    }
}

/// The consumer of `history --follow`: renders each selected event while
/// the journal is locked, and writes it out, flushed, at the end of the
/// round, once the lock is released.
struct Printer<'a> {
    args: &'a HistoryArgs,
    ctx: &'a Context,
    format: Format,
    out: io::Stdout,
    /// Rendered output not yet written.
    buf: Vec<u8>,
    /// The last selected row, held until the next line has been read and
    /// confirmed it, or the round ends (its append is then complete).
    unconfirmed: Option<Row>,
    /// With `--limit N`, until the first catch-up: the last N rows.
    held: Option<VecDeque<Row>>,
    /// Whether the history already in the journal has been printed.
    live: bool,
    /// Torn-tail warnings to print once the journal is unlocked.
    warnings: Vec<String>,
}

impl<'a> Printer<'a> {
    fn new(ctx: &'a Context, args: &'a HistoryArgs) -> Printer<'a> {
        let format = ctx.format;
        let mut buf = Vec::new();
        if format == Format::Csv {
            // Writing to a Vec cannot fail.
            let _ = output::csv_row(&mut buf, &csv_header(args.account.is_some()));
        }
        Printer {
            args,
            ctx,
            format,
            out: io::stdout(),
            buf,
            unconfirmed: None,
            held: args.limit.map(|n| VecDeque::with_capacity(n.min(4096))),
            live: false,
            warnings: Vec::new(),
        }
    }

    /// Writes out and flushes what was rendered.
    fn write_out(&mut self) -> Result<(), Error> {
        let mut out = self.out.lock();
        out.write_all(&self.buf)?;
        out.flush()?;
        self.buf.clear();
        Ok(())
    }

    fn put(&mut self, row: Row) {
        match (&mut self.held, self.args.limit) {
            (Some(held), Some(n)) => {
                if n == 0 {
                    return;
                }
                if held.len() == n {
                    held.pop_front();
                }
                held.push_back(row);
            }
            _ => self.write(row),
        }
    }

    fn write(&mut self, row: Row) {
        // Writing to a Vec cannot fail.
        let _ = match (row, self.format) {
            (Row::Json(line), _) => {
                self.buf.extend_from_slice(&line);
                self.buf.push(b'\n');
                Ok(())
            }
            (Row::Cells(cells), Format::Table) => {
                stream_line(&mut self.buf, &cells, self.args.account.is_some())
            }
            (Row::Cells(cells), _) => output::csv_row(&mut self.buf, &cells),
        };
    }
}

impl Consumer for Printer<'_> {
    type Error = Error;

    fn event(&mut self, after: &State, entry: &Entry<'_>) -> Result<(), Error> {
        if let Some(row) = self.unconfirmed.take() {
            self.put(row);
        }
        if selected(self.args, &self.ctx.zone, entry) {
            let balance = balance_in(after, self.args.account.as_deref());
            self.unconfirmed = Some(render(self.ctx, &entry.event, entry.line, balance));
        }
        Ok(())
    }

    fn end_round(&mut self, state: &State, caught_up: bool) -> Result<(), Error> {
        for warning in self.warnings.drain(..) {
            crate::error::warn(warning);
        }
        if let Some(row) = self.unconfirmed.take() {
            self.put(row);
        }
        if caught_up && !self.live {
            self.live = true;
            if let Some(name) = self.args.account.as_deref()
                && state.account(name).is_none()
            {
                // No row can have been selected: drop the CSV header too,
                // so that nothing is printed, as without --follow.
                self.buf.clear();
                return Err(state.unknown_account(name).into());
            }
            for row in self.held.take().into_iter().flatten() {
                self.write(row);
            }
        }
        if self.buf.is_empty() {
            // Nothing to write: notice a closed pipe all the same, so that
            // `ledger history --follow | head -3` ends once head has.
            if output_closed(&self.out) {
                return Err(io::Error::from(io::ErrorKind::BrokenPipe).into());
            }
            return Ok(());
        }
        self.write_out()
    }

    fn torn(&mut self, path: &Path, torn: Torn) {
        // Said in `end_round`: stderr may block, and the journal is locked here.
        self.warnings.push(torn_warning(path, torn));
    }
}

/// Whether stdout is a pipe or socket whose reader has gone (or a terminal
/// that hung up).
fn output_closed(out: &io::Stdout) -> bool {
    use rustix::event::{PollFd, PollFlags, Timespec, poll};
    let mut fds = [PollFd::new(out, PollFlags::OUT)];
    let now = Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    poll(&mut fds, Some(&now)).is_ok()
        && fds[0].revents().intersects(PollFlags::ERR | PollFlags::HUP)
}

/// One event as a line of its own, for a table that streams: its columns
/// cannot be aligned with events that have not happened yet.
/// `    5  2026-11-26 10:00:00  deposit 5.00 to acct1  balance 15.00  memo rent  id pay-17`
fn stream_line(out: &mut impl Write, cells: &[String], balance: bool) -> io::Result<()> {
    let cell = |i: usize| output::table_cell(cells.get(i).map_or("", String::as_str));
    write!(out, "{:>5}  {}  {}", cell(0), cell(1), cell(2))?;
    let mut rest = 3;
    if balance {
        write!(out, "  balance {}", cell(rest))?;
        rest += 1;
    }
    for (label, i) in [("memo", rest), ("id", rest + 1)] {
        if !cell(i).is_empty() {
            write!(out, "  {label} {}", cell(i))?;
        }
    }
    writeln!(out)
}

/// Renders an event read from `line`, with the account's balance after it
/// when one account's history is asked for.
fn render(ctx: &Context, event: &Event<'_>, line: &[u8], balance: Option<String>) -> Row {
    match ctx.format {
        Format::Json => {
            let mut line = line.to_vec();
            if let Some(balance) = balance {
                line.pop();
                line.extend_from_slice(format!(r#","balance":"{balance}"}}"#).as_bytes());
            }
            Row::Json(line)
        }
        Format::Csv => {
            let mut cells = output::event_csv(event, line);
            cells.extend(balance);
            Row::Cells(cells)
        }
        Format::Table => {
            let mut cells = vec![
                event.seq.to_string(),
                ctx.zone.show(event.at),
                output::describe(event),
            ];
            cells.extend(balance);
            cells.push(event.memo.as_deref().unwrap_or("").to_owned());
            cells.push(event.id.as_deref().unwrap_or("").to_owned());
            Row::Cells(cells)
        }
    }
}

fn emit(out: &mut impl Write, row: Row) -> Result<(), Error> {
    match row {
        Row::Json(line) => {
            out.write_all(&line)?;
            out.write_all(b"\n")?;
        }
        Row::Cells(cells) => output::csv_row(out, &cells)?,
    }
    Ok(())
}
