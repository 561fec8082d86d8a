//! `history ACCOUNT --limit N` from the read model's history index (first
//! brought up to the model's head if a rebuild or a long append left it
//! behind): the account's last N events are the ones after the model's
//! head (replayed,
//! as every command replays them) and, before it, the ones the index
//! chains back to, each read from the journal at its offset. The journal
//! is the evidence: every line read must be the event the index says
//! (its seq, the account among its accounts) and be vouched for by the
//! `prev` of the line after it; a chain that ends must end at the
//! account's creation. Anything else and the caller replays the journal.
//! The balances are walked back from the account's balance at the end,
//! through the changes of the events shown: the same numbers a replay
//! reaches forwards.
//!
//! A journal in a database has no index: its server searches the lines
//! before the head for the bytes of the account's name, latest first, and
//! each line found is checked the same way (see [`searched`]).

use std::collections::VecDeque;
use std::rc::Rc;

use super::{Row, Sink, Who, layout};
use crate::cmd::{Context, warn_torn};
use crate::domain::State;
use crate::error::Error;
use crate::event::Change;
use crate::journal::backing::Backing;
use crate::journal::line::{self, LineHash};
use crate::journal::pg::{Db, Found};
use crate::journal::scan::{Head, Replay, Torn};
use crate::journal::{JournalError, ReadJournal};
use crate::money::Amount;
use crate::output::history::Amounts;
use crate::readmodel::{self, Indexed, ReadModel};

/// One of the account's events to show: its line and its change to the
/// account's balance.
struct Shown {
    line: Vec<u8>,
    change: Amount,
}

/// Prints the last `n` events of account `name` with their changes and
/// balances, as the full replay prints them; `false` (having printed
/// nothing) when the read model cannot answer exactly: no model, one that
/// does not cover the journal, an account it does not know, or any row
/// that disagrees with the journal.
pub(super) fn print(ctx: &Context, name: &str, n: usize) -> Result<bool, Error> {
    let Some(journal) = ReadJournal::open(&ctx.path)? else {
        return Ok(false);
    };
    let Some((mut model, Some(mut head))) = journal.model() else {
        return Ok(false);
    };
    // A database has no index: its server searches the lines instead.
    let db = match journal.file() {
        Backing::Db(db) => Some(Rc::clone(db)),
        Backing::File(_) => None,
    };
    if db.is_none() && !model.index_covers(head) {
        let Some(now) = caught_up(&journal, &mut model, head) else {
            return Ok(false);
        };
        head = now;
    }
    let Some(Tail {
        state,
        shown: tail,
        in_model,
        torn,
    }) = tail(&journal, &model, head, name, n)?
    else {
        return Ok(false);
    };
    // Lines before the valid end never change: the rest is read unlocked.
    journal.unlock()?;
    let want = n - tail.len();
    let before = match (&db, want) {
        (_, 0) => Some(Vec::new()),
        (Some(db), _) => searched(db, head, name, want, in_model)?,
        (None, _) => before(&journal, &model, head, name, want, in_model),
    };
    let Some(mut shown) = before else {
        return Ok(false);
    };
    shown.extend(tail);
    let Some(amounts) = walk_back(&state, name, &shown) else {
        return Ok(false);
    };
    if let Some(torn) = torn {
        warn_torn(journal.path(), torn);
    }
    let mut sink = Sink::new(ctx.format, Some(n));
    sink.layout = layout(&state, Who::One(name));
    for (Shown { line, .. }, amounts) in shown.into_iter().zip(amounts) {
        sink.put(Row::Kept(line, Some(amounts)))?;
    }
    sink.finish(ctx)?;
    Ok(true)
}

/// The model's head once its history index is brought up to it (a
/// rebuild, or a long append, leaves the index behind); `None` if that
/// fails, or another process moved the model on meanwhile.
fn caught_up(journal: &ReadJournal, model: &mut ReadModel, head: Head) -> Option<Head> {
    let header = journal.header_head()?;
    model.catch_up_index(journal.file(), header, head).ok()?;
    // A new read transaction, at the head the index now covers.
    let now = model.covers(journal.file(), header, journal.len())?;
    model.index_covers(now).then_some(now)
}

/// What the lines after the model's head add.
struct Tail {
    /// The state at the journal's valid end, holding the account (when it
    /// exists) and the units.
    state: State,
    /// The account's last events among those lines.
    shown: VecDeque<Shown>,
    /// Whether the model has the account.
    in_model: bool,
    /// A torn tail after them, warned about once the answer is sure.
    torn: Option<Torn>,
}

/// The account's last `n` events after the model's `head`, the lines
/// after it replayed as every command replays them. `None` if the model
/// fails on the way.
fn tail(
    journal: &ReadJournal,
    model: &ReadModel,
    head: Head,
    name: &str,
    n: usize,
) -> Result<Option<Tail>, Error> {
    let Ok(mut state) = model.base(head) else {
        return Ok(None);
    };
    if model.load_accounts(&mut state, [name]).is_err() {
        return Ok(None);
    }
    let in_model = state.account(name).is_some();
    let mut replay = Replay::with_model(journal.scanner_from(head), state, model);
    let mut shown = VecDeque::new();
    loop {
        match replay.step() {
            Ok(Some((_, entry))) if entry.event.change.involves(name) && n > 0 => {
                if shown.len() == n {
                    shown.pop_front();
                }
                shown.push_back(Shown {
                    line: entry.line.to_vec(),
                    change: entry.event.change.effect_on(name),
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

/// The account's last `want` events up to the model's `head`, oldest
/// first, from the index, each line read and checked against the journal.
/// `in_model`: whether the model has the account. `None` if anything
/// disagrees.
fn before(
    journal: &ReadJournal,
    model: &ReadModel,
    head: Head,
    name: &str,
    want: usize,
    in_model: bool,
) -> Option<Vec<Shown>> {
    let rows = match model.last_events(name, want).ok()? {
        Some(rows) if in_model => rows,
        // Created after the head: no event before it.
        None if !in_model => return Some(Vec::new()),
        _ => return None,
    };
    // A chain shorter than asked must have reached the account's start
    // (an account the model has has at least its creation).
    if rows.len() < want && rows.last().is_none_or(|r| r.prev != 0) {
        return None;
    }
    let mut shown = Vec::with_capacity(rows.len());
    for row in rows.iter().rev() {
        shown.push(checked_line(journal, head, name, row)?);
    }
    Some(shown)
}

/// Lines a database's server returns per search, at most.
const SEARCHED: usize = 4096;

/// The account's last `want` events up to the model's `head`, oldest
/// first, from the lines of a database that hold its name, as the server
/// finds them (every line that names the account holds its name's bytes;
/// a memo may too, and such a line is passed over). Each line must be
/// the event its row says and be the one the next line chains to; a run
/// shorter than asked must end at the account's creation. `None` if
/// anything disagrees.
fn searched(
    db: &Db,
    head: Head,
    name: &str,
    want: usize,
    in_model: bool,
) -> Result<Option<Vec<Shown>>, Error> {
    if !in_model {
        // Created after the head: no event before it.
        return Ok(Some(Vec::new()));
    }
    let needle = line::quoted(name);
    let mut shown = Vec::with_capacity(want);
    let mut below = head.seq + 1;
    // Most lines found are the account's: ask for a few more than wanted.
    let mut ask = (want + 8).min(SEARCHED);
    loop {
        let rows = db.lines_holding(&needle, below, ask)?;
        let exhausted = rows.len() < ask;
        for row in rows {
            below = row.seq;
            let Some((found, created)) = found_line(head, name, row) else {
                return Ok(None);
            };
            let Some(found) = found else {
                continue;
            };
            shown.push(found);
            if created || shown.len() == want {
                shown.reverse();
                return Ok(Some(shown));
            }
        }
        if exhausted {
            // The lines ran out before the account's creation.
            return Ok(None);
        }
        ask = (ask * 2).min(SEARCHED);
    }
}

/// A line of a database's search for account `name`: `Some((None, _))`
/// if it only holds the name's bytes (in a memo), else the event shown and
/// whether it creates the account; `None` if the line is not the event its
/// row says or not the one the next line (or the model's `head`) chains to.
fn found_line(head: Head, name: &str, found: Found) -> Option<(Option<Shown>, bool)> {
    let Found { seq, line, next } = found;
    let chained = chained_to(head, seq, &line, || next)?;
    let event = line::decode(&line, &mut Vec::new()).ok()?.event;
    if !chained || event.seq != seq {
        return None;
    }
    if !event.change.involves(name) {
        return Some((None, false));
    }
    let created = creates(&event.change, name);
    let change = event.change.effect_on(name);
    Some((Some(Shown { line, change }), created))
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

/// The line the index row `row` of account `name` names, if the journal
/// agrees: it ends where the row says, before the model's `head`, is the
/// event the row says, has the account at the row's slot (and creates it,
/// if it is the first of its chain), and is the line the next one chains
/// to.
fn checked_line(journal: &ReadJournal, head: Head, name: &str, row: &Indexed) -> Option<Shown> {
    if row.seq > head.seq || row.end > head.end {
        return None;
    }
    let file = journal.file();
    let line = readmodel::line_ending_at(file, row.end)?;
    let chained = chained_to(head, row.seq, &line, || {
        readmodel::line_starting_at(file, row.end, head.end)
    })?;
    let event = line::decode(&line, &mut Vec::new()).ok()?.event;
    let first = creates(&event.change, name);
    let at_slot = readmodel::slots(&event.change).any(|(slot, a)| slot == row.slot && a == name);
    let agrees = event.seq == row.seq && at_slot && (row.prev != 0 || first);
    let change = event.change.effect_on(name);
    (chained && agrees).then_some(Shown { line, change })
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
