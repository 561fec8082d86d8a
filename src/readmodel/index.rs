//! The history index: for every account, its events as a chain from its
//! last one back to its creation, so that `history ACCOUNT --limit N`
//! reads N lines of the journal instead of all of them.
//!
//! `history` holds one row per event and account it involves, keyed by
//! `seq * 2 + slot` (`slot`: the account's place among the event's
//! accounts, see [`Change::accounts`]), an integer that only grows, so new
//! rows are only ever appended to the B-tree (a rebuild inserts millions
//! of them, many to a statement); each row names the byte offset where
//! its line ends and the key of the account's event before it (0 for its
//! first). `tips` holds the key of each account's last event. The name is
//! not stored in a row: the line holds it, at the row's slot.
//! Rows are written from the journal's own lines; `indexed` says up to
//! which line. A write whose new lines are few indexes them in the
//! transaction that moves the model's head over them; a rebuild or a long
//! append leaves the index behind, and the first `history` that needs it
//! catches it up: 2,000,000 rows cost a batch of 1,000,000 events more
//! than the batch itself. A reader checks every row against its digest and the line
//! it names (see `cmd::history`): a row lost to damage breaks the chain,
//! which must end at the account's creation.

use crate::journal::backing::Backing;
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use rustc_hash::FxHashMap;

use super::ModelError;
use super::rows::{Digest, digest_matches, int, uint};
use crate::domain::State;
use crate::event::Change;
use crate::journal::JournalError;
use crate::journal::scan::{Head, Scanner};
use std::path::Path;

/// The index's tables, created if missing.
pub const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS history (
    key INTEGER PRIMARY KEY, prev INTEGER NOT NULL, line_end INTEGER NOT NULL,
    digest INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS tips (
    account TEXT PRIMARY KEY, key INTEGER NOT NULL, digest INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS indexed (
    one INTEGER PRIMARY KEY CHECK (one = 1), seq INTEGER NOT NULL, line_end INTEGER NOT NULL);
"#;

/// Empties the index (its tables made again, if damage took them): the
/// next `history` that needs it builds it from the journal, as after a
/// rebuild.
pub fn clear(tx: &Transaction<'_>) -> Result<(), ModelError> {
    tx.execute_batch(
        "DROP TABLE IF EXISTS history; DROP TABLE IF EXISTS tips;
         DROP TABLE IF EXISTS indexed;",
    )?;
    tx.execute_batch(SCHEMA)?;
    Ok(())
}

/// One of an account's events, as the index has it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Indexed {
    /// The event's seq.
    pub seq: u64,
    /// The account's place among the event's accounts (0 or 1).
    pub slot: usize,
    /// The byte offset just past its line's `\n`.
    pub end: u64,
    /// The seq of the account's event before it; 0 if it is the first.
    pub prev: u64,
}

/// The key of the row of the account at `slot` of event `seq`.
fn key(seq: u64, slot: usize) -> Result<i64, ModelError> {
    int(seq
        .checked_mul(2)
        .and_then(|k| k.checked_add(slot as u64))
        .unwrap_or(u64::MAX))
}

fn row_digest(key: i64, prev: i64, end: i64) -> i64 {
    Digest::default()
        .bytes(b"history")
        .int(key)
        .int(prev)
        .int(end)
        .finish()
}

fn tip_digest(account: &str, key: i64) -> i64 {
    Digest::default()
        .bytes(b"tip")
        .text(Some(account))
        .int(key)
        .finish()
}

/// The key of `account`'s last event, as `tips` has it.
fn tip(c: &Connection, account: &str) -> Result<Option<i64>, ModelError> {
    let mut stmt = c.prepare_cached("SELECT key, digest FROM tips WHERE account = ?1")?;
    let Some((key, digest)) = stmt
        .query_row([account], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?))
        })
        .optional()?
    else {
        return Ok(None);
    };
    digest_matches(digest, tip_digest(account, key), || {
        format!("the last event of {account}")
    })?;
    Ok(Some(key))
}

/// The last `n` events of `account` at the model's head, newest first
/// (fewer when its chain ends first). `None` when the index has no tip
/// for it: the account is not in the model.
pub fn last_events(
    c: &Connection,
    account: &str,
    n: usize,
) -> Result<Option<Vec<Indexed>>, ModelError> {
    let Some(mut key) = tip(c, account)? else {
        return Ok(None);
    };
    let mut row = c.prepare_cached("SELECT prev, line_end, digest FROM history WHERE key = ?1")?;
    let mut events = Vec::new();
    while key > 0 && events.len() < n {
        let (prev, end, digest) = row
            .query_row([key], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, i64>(2)?,
                ))
            })
            .optional()?
            .ok_or_else(|| ModelError::Malformed(format!("index row {key} is missing")))?;
        digest_matches(digest, row_digest(key, prev, end), || {
            format!("index row {key}")
        })?;
        // Each link goes back, so a damaged chain cannot loop.
        if !(0..key).contains(&prev) {
            return Err(ModelError::Malformed(format!(
                "index row {key} links forwards"
            )));
        }
        let (this, before) = (uint::<u64>(key)?, uint::<u64>(prev)?);
        events.push(Indexed {
            seq: this / 2,
            slot: usize::from(this % 2 == 1),
            end: uint(end)?,
            prev: before / 2,
        });
        key = prev;
    }
    Ok(Some(events))
}

/// Each account's last event, as indexing goes: read from `tips` as each
/// account is first met (a catch-up), or known to be absent (a rebuild,
/// which starts from empty tables).
pub struct Tips {
    last: FxHashMap<String, i64>,
    fresh: bool,
}

impl Tips {
    /// For a model whose tables hold the index up to its head.
    pub fn stored() -> Tips {
        Tips {
            last: FxHashMap::default(),
            fresh: false,
        }
    }

    /// For a model being rebuilt from empty tables.
    pub fn fresh() -> Tips {
        Tips {
            last: FxHashMap::default(),
            fresh: true,
        }
    }

    /// The key of the account's last event so far (0 for none), and now
    /// `key` is.
    fn advance(&mut self, c: &Connection, account: &str, key: i64) -> Result<i64, ModelError> {
        if let Some(last) = self.last.get_mut(account) {
            return Ok(std::mem::replace(last, key));
        }
        // An account with events but no tip (damage) gets a chain that
        // ends here; readers then find it does not end at a creation.
        let prev = match self.fresh {
            true => 0,
            false => tip(c, account)?.unwrap_or(0),
        };
        self.last.insert(account.to_owned(), key);
        Ok(prev)
    }

    /// Writes every tip that moved, in name order.
    fn save(self, tx: &Transaction<'_>) -> Result<(), ModelError> {
        let mut tips: Vec<_> = self.last.into_iter().collect();
        tips.sort_unstable();
        let mut stmt = tx.prepare_cached(
            "INSERT OR REPLACE INTO tips (account, key, digest) VALUES (?1, ?2, ?3)",
        )?;
        for (account, key) in tips {
            stmt.execute(params![account, key, tip_digest(&account, key)])?;
        }
        Ok(())
    }
}

/// Rows inserted by one statement: a rebuild writes millions, and one
/// statement per row costs more than the row.
const ROWS_AT_ONCE: usize = 128;

/// Index rows on their way to the table, `ROWS_AT_ONCE` to a statement.
struct Rows<'t> {
    tx: &'t Transaction<'t>,
    rows: Vec<[i64; 4]>,
}

impl Rows<'_> {
    fn push(&mut self, key: i64, prev: i64, end: i64) -> Result<(), ModelError> {
        self.rows.push([key, prev, end, row_digest(key, prev, end)]);
        if self.rows.len() == ROWS_AT_ONCE {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), ModelError> {
        if self.rows.is_empty() {
            return Ok(());
        }
        let values = vec!["(?, ?, ?, ?)"; self.rows.len()].join(", ");
        let sql = format!("INSERT INTO history (key, prev, line_end, digest) VALUES {values}");
        let mut stmt = self.tx.prepare_cached(&sql)?;
        stmt.execute(rusqlite::params_from_iter(self.rows.iter().flatten()))?;
        self.rows.clear();
        Ok(())
    }
}

/// Lines a write indexes as it saves the model: beyond, it leaves them to
/// the next `history` (see the module's comment).
const EXTEND_BYTES: u64 = 1 << 20;

/// The seq and end offset of the last line the index covers; `None` if
/// it covers none.
pub fn indexed(c: &Connection) -> Result<Option<(u64, u64)>, ModelError> {
    let row: Option<(i64, i64)> = c
        .query_row("SELECT seq, line_end FROM indexed WHERE one = 1", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()?;
    row.map(|(seq, end)| Ok((uint(seq)?, uint(end)?)))
        .transpose()
}

/// Indexes the lines from the model's old head `from` to its new `head`,
/// if the index covers `from` and they are few.
pub fn extend(
    tx: &Transaction<'_>,
    journal: (&Backing, &Path),
    from: Head,
    head: Head,
) -> Result<(), ModelError> {
    if head.end - from.end > EXTEND_BYTES || indexed(tx)? != Some((from.seq, from.end)) {
        return Ok(());
    }
    add(tx, journal, from, head, Tips::stored())
}

/// Indexes the lines after the last one the index covers (after `header`,
/// the head after the journal's header line, if none) up to `head`.
pub fn catch_up(
    tx: &Transaction<'_>,
    journal: (&Backing, &Path),
    header: Head,
    head: Head,
) -> Result<(), ModelError> {
    let (from, tips) = match indexed(tx)? {
        Some((seq, end)) if seq <= head.seq && end <= head.end => {
            // The line the index ends at, as the journal holds it: the
            // scan chains the lines after it to its hash.
            let from =
                super::head_at(journal.0, header, head.end, (seq, end), None).ok_or_else(|| {
                    ModelError::Malformed(format!("the index ends at seq {seq}, not a line"))
                })?;
            (from, Tips::stored())
        }
        Some(_) => return Err(ModelError::Malformed("the index is past the head".into())),
        // An empty index (its tables were cleared with the rest).
        None => (header, Tips::fresh()),
    };
    add(tx, journal, from, head, tips)
}

/// Indexes the journal's events after `from` up to `head`, the new head
/// of the model: lines a replay has just checked, read again from the
/// journal by the scan every read uses (chained, not decided again), on
/// its reader thread when they are many. They must end with `head`'s
/// line exactly.
fn add(
    tx: &Transaction<'_>,
    (file, path): (&Backing, &Path),
    from: Head,
    head: Head,
    mut tips: Tips,
) -> Result<(), ModelError> {
    let mut rows = Rows {
        tx,
        rows: Vec::with_capacity(ROWS_AT_ONCE),
    };
    let malformed = |e: JournalError| ModelError::Malformed(format!("indexing: {e}"));
    let mut scanner = Scanner::new(file, path, from, head.end).decided_until(Some(head));
    // Nothing is decided, so nothing is read from it.
    let mut state = State::default();
    while let Some(entry) = scanner.next(&mut state, None).map_err(malformed)? {
        let seq = entry.event.seq;
        for (slot, account) in slots(&entry.event.change) {
            let key = key(seq, slot)?;
            let prev = tips.advance(tx, account, key)?;
            rows.push(key, prev, int(entry.end)?)?;
        }
    }
    rows.flush()?;
    if scanner.head() != head {
        return Err(ModelError::Malformed(format!(
            "indexing ended at seq {} before the head's {}",
            scanner.head().seq,
            head.seq
        )));
    }
    tips.save(tx)?;
    tx.execute(
        "INSERT OR REPLACE INTO indexed (one, seq, line_end) VALUES (1, ?1, ?2)",
        params![int(head.seq)?, int(head.end)?],
    )?;
    Ok(())
}

/// The accounts an event involves, each once, with its slot.
pub fn slots<'c>(change: &'c Change<'_>) -> impl Iterator<Item = (usize, &'c str)> {
    let [a, b] = change.accounts();
    let b = b.filter(|b| Some(*b) != a);
    [a, b]
        .into_iter()
        .enumerate()
        .filter_map(|(slot, account)| Some((slot, account?)))
}
