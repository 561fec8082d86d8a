//! One account's history from the read model's history index (first
//! brought up to the model's head if a rebuild or a long append left it
//! behind): the account's events after the model's head are replayed, as
//! every command replays them, and before it the index chains back
//! through the account's events, newest first, each read from the
//! journal at its offset, until the history has what it shows: the last N
//! selected with `--limit N`, else every event after `--since` or
//! `--from-seq`, else back to the account's creation. A history by day
//! (a date bound) always walks back to the creation: a book date may put
//! any event in any day, so only all of them give the balance by day.
//! The journal is the evidence: every line read must be the event the
//! index says (its seq, the account among its accounts) and be vouched
//! for by the `prev` of the line after it; a chain that ends must end at
//! the account's creation. Anything else and the caller replays the
//! journal (and an index that disagreed is emptied, to be built again).
//! The
//! balances are walked back from the account's balance at the end,
//! through the changes of the events gathered: the same numbers a replay
//! reaches forwards.
//!
//! A journal in a database has no index: its server searches the lines
//! before the head for the bytes of the account's name, latest first, and
//! each line found is checked the same way (see [`searched`]).

use std::collections::VecDeque;
use std::rc::Rc;

use super::{Dated, Row, Sink, Who, layout, opens_at, selected};
use crate::cli::{Bound, HistoryArgs};
use crate::cmd::{Context, warn_torn};
use crate::domain::State;
use crate::error::Error;
use crate::event::{Change, Event};
use crate::journal::backing::Backing;
use crate::journal::line::{self, LineHash};
use crate::journal::pg::{Db, Found};
use crate::journal::scan::{Head, Replay, Torn};
use crate::journal::{JournalError, ReadJournal};
use crate::money::Amount;
use crate::output::history::Amounts;
use crate::readmodel::{self, Indexed, ReadModel};
use crate::time::Zone;

/// One of the account's events: its line, its change to the account's
/// balance, and what the history makes of it.
struct Shown {
    line: Vec<u8>,
    change: Amount,
    mark: Mark,
}

/// What a history makes of an event, judged where its line is decoded.
#[derive(Clone, Copy)]
struct Mark {
    /// It, and every event before it, come before anything the history
    /// needs: the walk back ends there.
    ends_walk: bool,
    /// The history shows it.
    shown: bool,
    /// It opens the account.
    creates: bool,
}

impl Mark {
    /// What the history `wanted` makes of `event`.
    fn of(wanted: &Wanted<'_>, event: &Event<'_>) -> Mark {
        Mark {
            ends_walk: wanted.ends_walk(event),
            shown: wanted.shows(event),
            creates: creates(&event.change, wanted.name),
        }
    }
}

/// Prints the history `args` asks of account `name` (its events, with
/// their changes and balances, as the full replay prints them); `false`
/// (having printed nothing) when the read model cannot answer exactly: no
/// model, one that does not cover the journal, an account it does not
/// know, any row that disagrees with the journal, or more events to
/// gather than a full replay would take longer to read.
pub(super) fn print(ctx: &Context, args: &HistoryArgs, name: &str) -> Result<bool, Error> {
    let Some(walked) = walk(ctx, args, name, Reach::Asked)? else {
        return Ok(false);
    };
    show(
        ctx,
        &walked.wanted,
        &walked.state,
        walked.shown,
        walked.amounts,
    )?;
    Ok(true)
}

/// Prints the history by day `args` asks of account `name` (SPEC 9), as
/// [`super::by_day`] prints it after a full replay: from every event of
/// the account back to its creation, since a book date may put any of
/// them in any day. `false` (having printed nothing) when the model
/// cannot answer, as for [`print`].
pub(super) fn print_by_day(ctx: &Context, args: &HistoryArgs, name: &str) -> Result<bool, Error> {
    let Some(walked) = walk(ctx, args, name, Reach::Creation)? else {
        return Ok(false);
    };
    let mut events = Vec::with_capacity(walked.shown.len());
    for Shown { line, change, .. } in &walked.shown {
        let event = super::decode(ctx, line)?.event;
        events.extend(Dated::of(
            args,
            Who::One(name),
            ctx.zone(),
            &event,
            *change,
            || line.clone(),
        ));
    }
    super::show_by_day(ctx, args, Who::One(name), &walked.state, events)?;
    Ok(true)
}

/// One account's events, gathered from the index and the lines after the
/// model's head, each line checked against the journal.
struct Walked<'a> {
    wanted: Wanted<'a>,
    /// The state at the journal's valid end.
    state: State,
    /// The events gathered, oldest first.
    shown: Vec<Shown>,
    /// The change and balance after each of them.
    amounts: Vec<Amounts>,
}

/// Gathers the events of account `name` a history with `args` needs, as
/// far back as `reach` says; `None` when the model cannot answer exactly
/// (see [`print`]). Once the answer is sure, warns of a torn tail.
fn walk<'a>(
    ctx: &'a Context,
    args: &'a HistoryArgs,
    name: &'a str,
    reach: Reach,
) -> Result<Option<Walked<'a>>, Error> {
    let Some(journal) = ReadJournal::open(&ctx.path)? else {
        return Ok(None);
    };
    let Some((mut model, Some(mut head))) = journal.model() else {
        return Ok(None);
    };
    // A database has no index: its server searches the lines instead.
    let db = match journal.file() {
        Backing::Db(db) => Some(Rc::clone(db)),
        Backing::File(_) => None,
    };
    if db.is_none() && !model.index_covers(head) {
        let Some(now) = caught_up(&journal, &mut model, head) else {
            return Ok(None);
        };
        head = now;
    }
    let wanted = Wanted::new(ctx, args, name, head, reach);
    let Some(Tail {
        state,
        shown: tail,
        in_model,
        torn,
    }) = tail(&journal, &model, head, &wanted)?
    else {
        return Ok(None);
    };
    // Lines before the valid end never change: the rest is read unlocked.
    journal.unlock()?;
    let (journal, db) = (&journal, db.as_deref());
    let Some(gathered) = gather(journal, &mut model, db, head, &wanted, tail, in_model)? else {
        return Ok(None);
    };
    let reached_creation = gathered.shown.last().is_some_and(|s| s.mark.creates);
    if reach == Reach::Creation && !reached_creation {
        return Ok(None);
    }
    let mut shown = gathered.shown;
    shown.reverse();
    let Some(amounts) = walk_back(&state, name, &shown) else {
        return Ok(None);
    };
    // Walked back to its creation, the account must be empty there. Each
    // line read is vouched for by the next line's `prev` alone: a line
    // edited with that `prev` made to match (which breaks the chain
    // further on, where the full replay sees it), or an index row forged
    // to skip an event, would otherwise show a history that does not add
    // up to the account's balance.
    if reached_creation && amounts.first().is_none_or(|a| a.balance != Amount::ZERO) {
        if db.is_none() {
            forget_index(&mut model, head);
        }
        return Ok(None);
    }
    if let Some(torn) = torn {
        warn_torn(journal.path(), torn);
    }
    Ok(Some(Walked {
        wanted,
        state,
        shown,
        amounts,
    }))
}

/// The account's events `wanted` needs, newest first: its events among
/// the lines after the model's `head` (`tail`), then those before it, from
/// the index or (`db`) a database's search. `None` if there are too many,
/// or they disagree with the journal (a file's index is then emptied).
fn gather(
    journal: &ReadJournal,
    model: &mut ReadModel,
    db: Option<&Db>,
    head: Head,
    wanted: &Wanted<'_>,
    tail: VecDeque<Shown>,
    in_model: bool,
) -> Result<Option<Gathered>, Error> {
    let mut gathered = Gathered::default();
    let mut next = Next::More;
    for shown in tail.into_iter().rev() {
        next = gathered.take(wanted, shown);
        if !matches!(next, Next::More) {
            break;
        }
    }
    let next = match (next, db) {
        (Next::More, _) if !in_model => Some(Next::Done),
        (Next::More, Some(db)) => searched(db, head, wanted, &mut gathered)?,
        (Next::More, None) => {
            let next = before(journal, model, head, wanted, &mut gathered);
            if next.is_none() {
                forget_index(model, head);
            }
            next
        }
        (next, _) => Some(next),
    };
    Ok(matches!(next, Some(Next::Done)).then_some(gathered))
}

/// Prints `shown` (oldest first) with their `amounts`, those the history
/// selects, after the opening row of a statement from `--since`.
fn show(
    ctx: &Context,
    wanted: &Wanted<'_>,
    end: &State,
    shown: Vec<Shown>,
    amounts: Vec<Amounts>,
) -> Result<(), Error> {
    let limit = wanted.args.limit;
    let mut sink = Sink::new(ctx.format, limit);
    sink.layout = layout(end, Who::One(wanted.name));
    if let Some(since) = wanted.opening {
        // The balance before the first event gathered: every later one
        // is from `since` on (or it is the account's first).
        let before = match (shown.first(), amounts.first()) {
            (Some(s), Some(a)) => Amount(a.balance.0.saturating_sub(s.change.0)),
            _ => end.account(wanted.name).map_or(Amount::ZERO, |a| a.balance),
        };
        sink.opening(ctx, since, before)?;
    }
    for (Shown { line, mark, .. }, amounts) in shown.into_iter().zip(amounts) {
        if !mark.shown {
            continue;
        }
        let row = match limit {
            // Rendered at the end, if among the last N.
            Some(_) => Row::Kept(line, Some(amounts)),
            None => {
                let event = super::decode(ctx, &line)?.event;
                Row::Rendered(sink.render(ctx.zone(), &event, &line, Some(amounts))?)
            }
        };
        sink.put(row)?;
    }
    sink.finish(ctx)
}

/// The events of one account a history shows, and how far back it looks.
struct Wanted<'a> {
    args: &'a HistoryArgs,
    zone: &'a Zone,
    name: &'a str,
    /// Where the table opens with the balance then (`--since`): a
    /// `--from-seq` does not end the walk back, as that balance may lie
    /// before it.
    opening: Option<Bound>,
    /// N, for the last N of every event (`--limit N` alone): the walk
    /// ends after N, however many that reads.
    last: Option<usize>,
    /// The most events gathered otherwise: past them, replaying the whole
    /// journal costs less than reading each from the index (a few
    /// microseconds a line read whole, against tens for one read at its
    /// offset).
    most: usize,
    reach: Reach,
}

/// How far back a walk goes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Reach {
    /// As far as the history's bounds and limit need.
    Asked,
    /// To the account's creation, whatever they are: a history by day.
    Creation,
}

/// Events gathered from the index, at the least: a journal of fewer
/// events than this many times [`EVENTS_PER_GATHERED`] is quick to replay
/// anyway.
const GATHERED_AT_LEAST: usize = 4096;

/// Events of the journal per event a history gathers, at most.
const EVENTS_PER_GATHERED: u64 = 32;

impl<'a> Wanted<'a> {
    fn new(
        ctx: &'a Context,
        args: &'a HistoryArgs,
        name: &'a str,
        head: Head,
        reach: Reach,
    ) -> Wanted<'a> {
        let plain = reach == Reach::Asked
            && args.as_of.is_none()
            && args.since.is_none()
            && args.until.is_none()
            && args.tags.is_empty()
            && args.from_seq.is_none();
        let last = args.limit.filter(|_| plain);
        let most = match last {
            Some(_) => usize::MAX,
            None => usize::try_from(head.seq / EVENTS_PER_GATHERED)
                .unwrap_or(usize::MAX)
                .max(GATHERED_AT_LEAST),
        };
        Wanted {
            args,
            zone: ctx.zone(),
            name,
            opening: opens_at(ctx, args),
            last,
            most,
            reach,
        }
    }

    /// Whether `event`, and so every earlier one, comes before anything
    /// shown (and before the opening balance): the walk back ends there.
    fn ends_walk(&self, event: &Event<'_>) -> bool {
        let args = self.args;
        self.reach == Reach::Asked
            && (args.since.is_some_and(|b| !b.admits_from(event, self.zone))
                || (self.opening.is_none() && args.from_seq.is_some_and(|n| event.seq <= n)))
    }

    /// Whether the history shows `event`.
    fn shows(&self, event: &Event<'_>) -> bool {
        selected(self.args, Who::One(self.name), self.zone, event)
    }
}

/// The account's events gathered so far, newest first.
#[derive(Default)]
struct Gathered {
    shown: Vec<Shown>,
    /// How many of them the history shows.
    selected: usize,
}

/// Where a walk back stands after an event.
enum Next {
    /// It goes on to the one before.
    More,
    /// It has every event the history needs.
    Done,
    /// It has more to gather than it should: the full replay answers.
    TooMany,
}

impl Gathered {
    /// Takes the event before those gathered.
    fn take(&mut self, wanted: &Wanted<'_>, shown: Shown) -> Next {
        let mark = shown.mark;
        if mark.ends_walk {
            return Next::Done;
        }
        self.selected += usize::from(mark.shown);
        self.shown.push(shown);
        let enough =
            wanted.reach == Reach::Asked && wanted.args.limit.is_some_and(|n| self.selected >= n);
        if mark.creates || enough {
            Next::Done
        } else if self.shown.len() >= wanted.most {
            Next::TooMany
        } else {
            Next::More
        }
    }
}

/// The model's head once its history index is brought up to it (a
/// rebuild, or a long append, leaves the index behind); `None` if that
/// fails, or another process moved the model on meanwhile.
fn caught_up(journal: &ReadJournal, model: &mut ReadModel, head: Head) -> Option<Head> {
    let header = journal.header_head()?;
    if let Err(e) = model.catch_up_index(journal.file(), header, head) {
        if !e.is_busy() {
            forget_index(model, head);
        }
        return None;
    }
    // A new read transaction, at the head the index now covers.
    let now = model.covers(journal.file(), header, journal.len())?;
    model.index_covers(now).then_some(now)
}

/// Empties the index of a file's model, found to disagree with the
/// journal at `head`: the next `history` builds it again. Best effort: the
/// full replay answers this one either way.
fn forget_index(model: &mut ReadModel, head: Head) {
    let _ = model.forget_index(head);
}

/// What the lines after the model's head add.
struct Tail {
    /// The state at the journal's valid end, holding the account (when it
    /// exists) and the units.
    state: State,
    /// The account's events among those lines (its last N, for the last
    /// N of every event).
    shown: VecDeque<Shown>,
    /// Whether the model has the account.
    in_model: bool,
    /// A torn tail after them, warned about once the answer is sure.
    torn: Option<Torn>,
}

/// The account's events after the model's `head`, the lines after it
/// replayed as every command replays them. `None` if the model fails on
/// the way, or there are more than the history may gather.
fn tail(
    journal: &ReadJournal,
    model: &ReadModel,
    head: Head,
    wanted: &Wanted<'_>,
) -> Result<Option<Tail>, Error> {
    let name = wanted.name;
    let Ok(mut state) = model.base(head) else {
        return Ok(None);
    };
    if model.load_accounts(&mut state, [name]).is_err() {
        return Ok(None);
    }
    let in_model = state.account(name).is_some();
    let mut replay = Replay::with_model(journal.scanner_from(head), state, model);
    let mut shown = VecDeque::new();
    // The last N of every event need no more than N; any other history,
    // every event, up to the most it may gather.
    let (keep, more_fails) = match wanted.last {
        Some(n) => (n, false),
        None => (wanted.most, true),
    };
    loop {
        match replay.step() {
            Ok(Some((_, entry))) if entry.event.change.involves(name) && keep > 0 => {
                if shown.len() == keep {
                    if more_fails {
                        return Ok(None);
                    }
                    shown.pop_front();
                }
                shown.push_back(Shown {
                    line: entry.line.to_vec(),
                    change: entry.event.change.effect_on(name),
                    mark: Mark::of(wanted, &entry.event),
                });
            }
            Ok(Some(_)) => {}
            Ok(None) => break,
            // A damaged model may make a good line look wrong: the full
            // replay judges it.
            Err(JournalError::Model(_) | JournalError::Corrupt { .. }) => return Ok(None),
            Err(e) => return Err(e.into()),
        }
    }
    let (state, _, torn) = replay.finish();
    Ok(Some(Tail {
        state,
        shown,
        in_model,
        torn,
    }))
}

/// Index rows read by the first step of a walk back; each next step reads
/// four times as many from the account's last (the rows are small, the
/// lines they name are read once).
const FIRST_ROWS: usize = 64;

/// Walks back through the account's events up to the model's `head`, from
/// the index, each line read and checked against the journal, into
/// `gathered` until it is [`Next::Done`] or has [`Next::TooMany`]. The
/// model has the account. `None` if anything disagrees, such as a chain
/// that ends before the account's creation.
fn before(
    journal: &ReadJournal,
    model: &ReadModel,
    head: Head,
    wanted: &Wanted<'_>,
    gathered: &mut Gathered,
) -> Option<Next> {
    let (mut rows_read, mut ask) = (0, FIRST_ROWS);
    loop {
        let rows = model.last_events(wanted.name, ask).ok()??;
        for row in rows.get(rows_read..)? {
            let shown = checked_line(journal, head, wanted, row)?;
            match gathered.take(wanted, shown) {
                Next::More => {}
                next => return Some(next),
            }
        }
        // Every line taken, the account's creation not among them.
        if rows.len() < ask {
            return None;
        }
        rows_read = rows.len();
        ask = ask.saturating_mul(4);
    }
}

/// Lines a database's server returns per search, at most.
const SEARCHED: usize = 4096;

/// Walks back through the account's events up to the model's `head`, as
/// [`before`] does, from the lines of a database that hold its name, as
/// the server finds them (every line that names the account holds its
/// name's bytes; a memo may too, and such a line is passed over). Each
/// line must be the event its row says and be the one the next line
/// chains to; the lines must not run out before the account's creation.
/// `None` if anything disagrees.
fn searched(
    db: &Db,
    head: Head,
    wanted: &Wanted<'_>,
    gathered: &mut Gathered,
) -> Result<Option<Next>, Error> {
    let needle = line::quoted(wanted.name);
    let mut below = head.seq + 1;
    // Most lines found are the account's: ask for a few more than wanted.
    let mut ask = match wanted.args.limit {
        Some(n) => n.saturating_add(8).min(SEARCHED),
        None => FIRST_ROWS,
    };
    loop {
        let rows = db.lines_holding(&needle, below, ask)?;
        let exhausted = rows.len() < ask;
        for row in rows {
            below = row.seq;
            let Some(found) = found_line(head, wanted, row) else {
                return Ok(None);
            };
            let Some(found) = found else {
                continue;
            };
            match gathered.take(wanted, found) {
                Next::More => {}
                next => return Ok(Some(next)),
            }
        }
        if exhausted {
            // The lines ran out before the account's creation.
            return Ok(None);
        }
        ask = (ask * 2).min(SEARCHED);
    }
}

/// A line of a database's search for the account `wanted` names:
/// `Some(None)` if it only holds the name's bytes (in a memo), else its
/// event; `None` if the line is not the event its row says or not the one
/// the next line (or the model's `head`) chains to.
fn found_line(head: Head, wanted: &Wanted<'_>, found: Found) -> Option<Option<Shown>> {
    let Found { seq, line, next } = found;
    let chained = chained_to(head, seq, &line, || next)?;
    let event = line::decode(&line, &mut Vec::new()).ok()?.event;
    if !chained || event.seq != seq {
        return None;
    }
    if !event.change.involves(wanted.name) {
        return Some(None);
    }
    let (change, mark) = (
        event.change.effect_on(wanted.name),
        Mark::of(wanted, &event),
    );
    Some(Some(Shown { line, change, mark }))
}

/// Whether `line`, of event `seq` at or before the model's `head`, is the
/// line the journal vouches for: the head's own, or the one the next line
/// (`next` reads it) chains to. `None` if the next line is missing or
/// does not decode.
fn chained_to(
    head: Head,
    seq: u64,
    line: &[u8],
    next: impl FnOnce() -> Option<Vec<u8>>,
) -> Option<bool> {
    let hash = LineHash::of(line);
    if seq == head.seq {
        return Some(hash == head.hash);
    }
    let next = next()?;
    let next = line::decode(&next, &mut Vec::new()).ok()?;
    Some(next.prev == hash && next.event.seq == seq + 1)
}

/// Whether `change` opens account `name`.
fn creates(change: &Change<'_>, name: &str) -> bool {
    matches!(change, Change::AccountCreated { account, .. } if account == name)
}

/// The event of the line the index row `row` of the account `wanted`
/// names, if the journal agrees: it ends where the row says, before the
/// model's `head`, is the event the row says, has the account at the
/// row's slot (and creates it, if it is the first of its chain), and is
/// the line the next one chains to.
fn checked_line(
    journal: &ReadJournal,
    head: Head,
    wanted: &Wanted<'_>,
    row: &Indexed,
) -> Option<Shown> {
    let name = wanted.name;
    if row.seq > head.seq || row.end > head.end {
        return None;
    }
    let file = journal.file();
    let line = readmodel::line_ending_at(file, row.end)?;
    let chained = chained_to(head, row.seq, &line, || {
        readmodel::line_starting_at(file, row.end, head.end)
    })?;
    let event = line::decode(&line, &mut Vec::new()).ok()?.event;
    let (change, mark) = (event.change.effect_on(name), Mark::of(wanted, &event));
    let at_slot = readmodel::slots(&event.change).any(|(slot, a)| slot == row.slot && a == name);
    let agrees = event.seq == row.seq && at_slot && (row.prev != 0 || mark.creates);
    (chained && agrees).then_some(Shown { line, change, mark })
}

/// The change and balance after each of `shown` (oldest first, the
/// account's last events), walked back from its balance in `end`.
fn walk_back(end: &State, name: &str, shown: &[Shown]) -> Option<Vec<Amounts>> {
    let mut balance = end.account(name)?.balance;
    let mut amounts = Vec::with_capacity(shown.len());
    for s in shown.iter().rev() {
        amounts.push(Amounts {
            change: s.change,
            balance,
        });
        balance = Amount(balance.0.checked_sub(s.change.0)?);
    }
    amounts.reverse();
    Some(amounts)
}
