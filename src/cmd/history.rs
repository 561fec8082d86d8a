//! `ledger history`, and `history --follow` (a consumer of
//! [`crate::follow`]).

use std::collections::VecDeque;
use std::io::{self, Write};
use std::path::Path;
use std::time::Duration;

use crate::cli::{Format, HistoryArgs};
use crate::cmd::{Context, ReplayFrom, replay, torn_warning};
use crate::domain::{Rejection, State};
use crate::error::Error;
use crate::follow::{Consumer, Follower};
use crate::journal::scan::{Entry, Torn};
use crate::output;

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
        return follow(ctx, args);
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
    let mut csv_header = (ctx.format == Format::Csv).then(|| {
        let mut header: Vec<&str> = output::EVENT_CSV_HEADER.to_vec();
        if account.is_some() {
            header.push("balance");
        }
        header
    });
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
        if !selected(args, entry) || args.limit == Some(0) {
            return Ok(());
        }
        let row = render(ctx.format, state, entry, account);
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
        return Err(Rejection::UnknownAccount(name.to_owned()).into());
    }
    if ctx.format == Format::Table {
        let mut header = vec!["SEQ", "AT", "EVENT"];
        let mut right = vec![true, false, false];
        if account.is_some() {
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
            output::table(&mut out, &header, &right, &rows)?;
        }
    } else {
        for row in held {
            emit(&mut out, row)?;
        }
    }
    if let Some(header) = csv_header {
        output::csv_row(&mut out, &header)?;
    }
    Ok(out.flush()?)
}

/// Whether the arguments select this event.
fn selected(args: &HistoryArgs, entry: &Entry<'_>) -> bool {
    let event = &entry.event;
    args.from_seq.is_none_or(|n| event.seq > n)
        && args.as_of.is_none_or(|b| b.includes(event.seq, event.at))
        && args.since.is_none_or(|t| event.at >= t)
        && args.until.is_none_or(|t| event.at <= t)
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
    let mut printer = Printer::new(ctx.format, args);
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
    fn new(format: Format, args: &'a HistoryArgs) -> Printer<'a> {
        let mut buf = Vec::new();
        if format == Format::Csv {
            let mut header: Vec<&str> = output::EVENT_CSV_HEADER.to_vec();
            if args.account.is_some() {
                header.push("balance");
            }
            // Writing to a Vec cannot fail.
            let _ = output::csv_row(&mut buf, &header);
        }
        Printer {
            args,
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
        if selected(self.args, entry) {
            let account = self.args.account.as_deref();
            self.unconfirmed = Some(render(self.format, after, entry, account));
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
                return Err(Rejection::UnknownAccount(name.to_owned()).into());
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
/// `     5  2026-11-26T10:00:00.000000Z  deposit 5.00 to acct1  balance 15.00  memo rent  id pay-17`
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

/// Renders an event; `after` is the state after it.
fn render(format: Format, after: &State, entry: &Entry<'_>, account: Option<&str>) -> Row {
    let event = &entry.event;
    let balance = account
        .and_then(|name| after.account(name))
        .map(|a| a.balance.display(after.unit_of(a).decimals).to_string());
    match format {
        Format::Json => {
            let mut line = entry.line.to_vec();
            if let Some(balance) = balance {
                line.pop();
                line.extend_from_slice(format!(r#","balance":"{balance}"}}"#).as_bytes());
            }
            Row::Json(line)
        }
        Format::Csv => {
            let mut cells = output::event_csv(event, entry.line);
            cells.extend(balance);
            Row::Cells(cells)
        }
        Format::Table => {
            let mut cells = vec![
                event.seq.to_string(),
                event.at.to_string(),
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
