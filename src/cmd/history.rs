//! `ledger history`, and `history --follow` (a consumer of
//! [`crate::follow`]).

mod indexed;

use std::collections::VecDeque;
use std::io::{self, Write};
use std::path::Path;
use std::time::Duration;

use crate::cli::{Bound, Format, HistoryArgs};
use crate::cmd::{Context, ReplayFrom, replay, replay_sized, torn_warning};
use crate::domain::State;
use crate::error::Error;
use crate::event::Change;
use crate::event::Event;
use crate::follow::{Consumer, Follower};
use crate::journal::JournalError;
use crate::journal::line;
use crate::journal::scan::{Entry, Torn};
use crate::money::Amount;
use crate::output::{self, history::Amounts, history::Layout};
use crate::pattern;
use crate::time::{Day, Zone};

/// Whose events a history shows.
#[derive(Debug, Clone, Copy)]
enum Who<'a> {
    /// Every event.
    All,
    /// One account's, with its change and balance.
    One(&'a str),
    /// Those of the accounts a pattern matches (SPEC 1): no balance.
    Pattern(&'a str),
}

impl<'a> Who<'a> {
    fn of(args: &'a HistoryArgs) -> Who<'a> {
        match args.account.as_deref() {
            None => Who::All,
            Some(p) if pattern::is_pattern(p) => Who::Pattern(p),
            Some(name) => Who::One(name),
        }
    }

    fn involves(self, change: &Change<'_>) -> bool {
        match self {
            Who::All => true,
            Who::One(name) => change.involves(name),
            Who::Pattern(p) => change
                .accounts()
                .into_iter()
                .flatten()
                .any(|a| pattern::matches(p, a)),
        }
    }

    fn one(self) -> Option<&'a str> {
        match self {
            Who::One(name) => Some(name),
            Who::All | Who::Pattern(_) => None,
        }
    }
}

/// The widths of the table for the journal whose last state is `end`.
fn layout(end: &State, who: Who<'_>) -> Layout {
    let amounts = who.one().and_then(|name| end.account(name)).map(|a| {
        let unit = end.unit_of(a);
        (unit.deposited, unit.decimals)
    });
    Layout::new(end.seq(), amounts)
}

/// A row of a history: rendered, or (kept for `--limit`) the stored line
/// and amounts, rendered only if it is still among the last N at the end.
enum Row {
    Rendered(Vec<u8>),
    Kept(Vec<u8>, Option<Amounts>),
}

/// Where the rows go: straight out (the header before the first), or,
/// with `--limit N`, into a ring of the last N.
struct Sink<'a> {
    format: Format,
    layout: Layout,
    limit: Option<usize>,
    ring: VecDeque<Row>,
    started: bool,
    out: io::BufWriter<io::StdoutLock<'a>>,
}

impl Sink<'_> {
    /// One event read from `line`, rendered in this history's layout.
    fn render(
        &self,
        zone: &Zone,
        event: &Event<'_>,
        line: &[u8],
        amounts: Option<Amounts>,
    ) -> Result<Vec<u8>, Error> {
        let mut row = Vec::new();
        output::history::event(
            &mut row,
            self.format,
            zone,
            &self.layout,
            event,
            line,
            amounts,
        )?;
        Ok(row)
    }

    fn new(format: Format, limit: Option<usize>) -> Sink<'static> {
        Sink {
            format,
            layout: Layout::new(0, None),
            limit,
            ring: VecDeque::new(),
            started: false,
            out: io::BufWriter::new(io::stdout().lock()),
        }
    }

    fn put(&mut self, row: Row) -> Result<(), Error> {
        match self.limit {
            Some(0) => {}
            Some(n) => {
                if self.ring.len() == n {
                    self.ring.pop_front();
                }
                self.ring.push_back(row);
            }
            None => {
                self.start()?;
                if let Row::Rendered(bytes) = row {
                    self.out.write_all(&bytes)?;
                }
            }
        }
        Ok(())
    }

    /// The opening row of a statement from `since`, at `balance`.
    fn opening(&mut self, ctx: &Context, since: Bound, balance: Amount) -> Result<(), Error> {
        let since = match since {
            Bound::Day(d) => d.to_string(),
            Bound::At(t) => ctx.zone().show(t),
        };
        let mut row = Vec::new();
        output::history::opening(&mut row, &self.layout, &since, balance)?;
        self.put(Row::Rendered(row))
    }

    fn start(&mut self) -> Result<(), Error> {
        if !self.started {
            self.started = true;
            output::history::header(&mut self.out, self.format, &self.layout)?;
        }
        Ok(())
    }

    /// Prints what the ring kept, or says that nothing was selected.
    fn finish(mut self, ctx: &Context) -> Result<(), Error> {
        for row in std::mem::take(&mut self.ring) {
            self.start()?;
            let bytes = match row {
                Row::Rendered(bytes) => bytes,
                Row::Kept(line, amounts) => {
                    let decoded = decode(ctx, &line)?;
                    self.render(ctx.zone(), &decoded.event, &line, amounts)?
                }
            };
            self.out.write_all(&bytes)?;
        }
        if !self.started {
            match self.format {
                Format::Table => writeln!(self.out, "no events")?,
                _ => self.start()?,
            }
        }
        Ok(self.out.flush()?)
    }
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
    // One account's events: from the read model's index when it can
    // answer exactly.
    if let Who::One(name) = Who::of(args)
        && indexed::print(ctx, args, name)?
    {
        return Ok(());
    }
    in_journal_order(ctx, args)
}

/// `history` in journal order, streamed: each row is printed once the next
/// line has confirmed it, the table sized before the first.
fn in_journal_order(ctx: &Context, args: &HistoryArgs) -> Result<(), Error> {
    let who = Who::of(args);
    let mut sink = Sink::new(ctx.format, args.limit);
    // A statement that starts at --since opens with the balance then
    // (tables only: JSON and CSV stay one stored event per line).
    let mut opening =
        opens_at(ctx, args).and_then(|since| who.one().map(|_| (since, Amount::ZERO)));
    // A row waits for the next line to be read: an edited line is only
    // caught by the next line's `prev`, and must never be printed.
    let mut unconfirmed: Option<Row> = None;
    // The widths, known before the first event is visited.
    let sized = std::cell::Cell::new(None);
    let state = replay_sized(
        &ctx.path,
        ReplayFrom::Start,
        |_, end| sized.set(Some(layout(end, who))),
        |state, entry| {
            if let Some(layout) = sized.take() {
                sink.layout = layout;
            }
            if let Some(row) = unconfirmed.take() {
                sink.put(row)?;
            }
            let balance = balance_in(state, who);
            if let Some((since, before)) = opening {
                if !since.admits_from(&entry.event, ctx.zone()) {
                    opening = Some((since, balance.unwrap_or_default()));
                } else {
                    opening = None;
                    sink.opening(ctx, since, before)?;
                }
            }
            if !selected(args, who, ctx.zone(), &entry.event) || args.limit == Some(0) {
                return Ok(());
            }
            let amounts = who.one().zip(balance).map(|(name, balance)| Amounts {
                change: entry.event.change.effect_on(name),
                balance,
            });
            if args.limit.is_some() {
                unconfirmed = Some(Row::Kept(entry.line.to_vec(), amounts));
                return Ok(());
            }
            unconfirmed = Some(Row::Rendered(sink.render(
                ctx.zone(),
                &entry.event,
                entry.line,
                amounts,
            )?));
            Ok(())
        },
    )?;
    if let Some(name) = who.one()
        && state.account(name).is_none()
    {
        return Err(state.unknown_account(name).into());
    }
    if let Some(row) = unconfirmed {
        sink.put(row)?;
    }
    if let Some((since, before)) = opening {
        sink.opening(ctx, since, before)?;
    }
    sink.finish(ctx)
}

/// `history` with a date bound (SPEC 9): the selected events by day, then
/// seq, and for one account its balance by day — a backdated line in its
/// place, the balance as the books of that day have it. Sorting needs
/// every selected event first: this keeps their lines (and, for one
/// account, the day, seq and change of each of its movements). One
/// account's come from the read model's index when it can answer: every
/// event of the account, as a book date may put any of them anywhere.
fn by_day(ctx: &Context, args: &HistoryArgs) -> Result<(), Error> {
    let who = Who::of(args);
    if let Who::One(name) = who
        && indexed::print_by_day(ctx, args, name)?
    {
        return Ok(());
    }
    let account = who.one();
    let mut events: Vec<Dated> = Vec::new();
    let state = replay(&ctx.path, ReplayFrom::Start, |_, entry| {
        let event = &entry.event;
        let delta = account.map_or(Amount::ZERO, |a| event.change.effect_on(a));
        events.extend(Dated::of(args, who, ctx.zone(), event, delta, || {
            entry.line.to_vec()
        }));
        Ok(())
    })?;
    if let Some(name) = account
        && state.account(name).is_none()
    {
        return Err(state.unknown_account(name).into());
    }
    show_by_day(ctx, args, who, &state, events)
}

/// Prints `events` (those [`Dated::of`] kept of `who`'s) by day, then
/// seq, in the layout of `end`, the state at the journal's end.
fn show_by_day(
    ctx: &Context,
    args: &HistoryArgs,
    who: Who<'_>,
    end: &State,
    mut events: Vec<Dated>,
) -> Result<(), Error> {
    let account = who.one();
    events.sort_unstable_by_key(|e| (e.day, e.seq));
    let mut sink = Sink::new(ctx.format, args.limit);
    sink.layout = layout(end, who);
    let mut opening = opens_at(ctx, args).filter(|_| account.is_some());
    let mut balance = Amount::ZERO;
    for Dated {
        delta, early, line, ..
    } in events
    {
        if !early && let Some(since) = opening.take() {
            sink.opening(ctx, since, balance)?;
        }
        balance = Amount(balance.0.saturating_add(delta.0));
        let Some(line) = line else { continue };
        let decoded = decode(ctx, &line)?;
        let amounts = account.map(|_| Amounts {
            change: delta,
            balance,
        });
        let row = sink.render(ctx.zone(), &decoded.event, &line, amounts)?;
        sink.put(Row::Rendered(row))?;
    }
    if let Some(since) = opening {
        sink.opening(ctx, since, balance)?;
    }
    sink.finish(ctx)
}

/// A line kept from the journal, read again (it was checked when kept).
fn decode<'l>(ctx: &Context, line: &'l [u8]) -> Result<line::Decoded<'l>, Error> {
    Ok(
        line::decode(line, &mut Vec::new()).map_err(|e| JournalError::Corrupt {
            path: ctx.path.clone(),
            line: 0,
            reason: e.to_string(),
        })?,
    )
}

/// An event kept for a history by day.
struct Dated {
    day: Day,
    seq: u64,
    /// Its change to the account's balance.
    delta: Amount,
    /// Whether it is before `--since` (it then makes the opening balance).
    early: bool,
    /// Its line, if it is shown.
    line: Option<Vec<u8>>,
}

impl Dated {
    /// What a history by day keeps of `event`, whose change to the
    /// account (for one account's) is `delta`: every event it shows, with
    /// its `line`, and every other that moves the account's money (it
    /// counts towards the balance by day); `None` for the rest.
    fn of(
        args: &HistoryArgs,
        who: Who<'_>,
        zone: &Zone,
        event: &Event<'_>,
        delta: Amount,
        line: impl FnOnce() -> Vec<u8>,
    ) -> Option<Dated> {
        let shown = selected(args, who, zone, event);
        (shown || delta != Amount::ZERO).then(|| Dated {
            day: event.day(zone),
            seq: event.seq,
            delta,
            early: args.since.is_some_and(|b| !b.admits_from(event, zone)),
            line: shown.then(line),
        })
    }
}

/// One account's balance in `state`.
fn balance_in(state: &State, who: Who<'_>) -> Option<Amount> {
    who.one()
        .and_then(|name| state.account(name))
        .map(|a| a.balance)
}

/// Where a statement opens with the balance then: at `--since`, in a
/// table of all the events from it (JSON and CSV stay one stored event
/// per line), for one account.
fn opens_at(ctx: &Context, args: &HistoryArgs) -> Option<Bound> {
    (ctx.format == Format::Table && args.limit.is_none())
        .then_some(args.since)
        .flatten()
}

/// Whether the arguments select this event.
fn selected(args: &HistoryArgs, who: Who<'_>, zone: &Zone, event: &Event<'_>) -> bool {
    args.from_seq.is_none_or(|n| event.seq > n)
        && args.as_of.is_none_or(|b| b.includes(event, zone))
        && args.since.is_none_or(|b| b.admits_from(event, zone))
        && args.until.is_none_or(|b| b.admits_to(event, zone))
        && args.tags.iter().all(|t| t.matches(event))
        && who.involves(&event.change)
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
    unconfirmed: Option<Vec<u8>>,
    /// With `--limit N`, until the first catch-up: the last N rows.
    held: Option<VecDeque<Vec<u8>>>,
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
            // Only whether there are amounts matters to the header; writing
            // to a Vec cannot fail.
            let amounts = Who::of(args).one().map(|_| (Amount::ZERO, 0));
            let _ = output::history::header(&mut buf, format, &Layout::new(0, amounts));
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

    fn put(&mut self, row: Vec<u8>) {
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
            _ => self.buf.extend_from_slice(&row),
        }
    }
}

impl Consumer for Printer<'_> {
    type Error = Error;

    fn event(&mut self, after: &State, entry: &Entry<'_>) -> Result<(), Error> {
        if let Some(row) = self.unconfirmed.take() {
            self.put(row);
        }
        let who = Who::of(self.args);
        if selected(self.args, who, self.ctx.zone(), &entry.event) {
            let account = who
                .one()
                .and_then(|name| Some((name, after.account(name)?)));
            let decimals = account.map(|(_, a)| after.unit_of(a).decimals);
            let amounts = account.map(|(name, a)| Amounts {
                change: entry.event.change.effect_on(name),
                balance: a.balance,
            });
            let mut row = Vec::new();
            // A follow runs for ever: its table cannot be sized up front,
            // so each row labels its fields.
            let layout = Layout::new(0, decimals.map(|d| (Amount::ZERO, d)));
            if self.format == Format::Table {
                output::history::labelled(
                    &mut row,
                    self.ctx.zone(),
                    &entry.event,
                    amounts,
                    decimals.unwrap_or(0),
                )?;
            } else {
                output::history::event(
                    &mut row,
                    self.format,
                    self.ctx.zone(),
                    &layout,
                    &entry.event,
                    entry.line,
                    amounts,
                )?;
            }
            self.unconfirmed = Some(row);
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
            if let Some(name) = Who::of(self.args).one()
                && state.account(name).is_none()
            {
                // No row can have been selected: drop the CSV header too,
                // so that nothing is printed, as without --follow.
                self.buf.clear();
                return Err(state.unknown_account(name).into());
            }
            for row in self.held.take().into_iter().flatten() {
                self.buf.extend_from_slice(&row);
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
