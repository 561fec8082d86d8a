//! The history index: for every account, its events as a chain from its
//! last one back to its creation, so that `history ACCOUNT --limit N`
//! reads N lines of the journal instead of all of them.
//!
//! `history` holds one row per event and account it involves, keyed by
//! (seq, account) so that new rows are only ever appended to the B-tree
//! (a rebuild inserts millions of them in key order); each row names the
//! byte offset where its line ends and the seq of the account's event
//! before it (0 for its first). `tips` holds each account's last event.
//! Rows are written from the journal's own lines, in the transaction that
//! moves the model's head over them, so the index covers exactly what the
//! head covers. A reader checks every row against its digest and the line
//! it names (see `cmd::history`): a row lost to damage breaks the chain,
//! which must end at the account's creation.

use std::fs::File;

use rusqlite::{Connection, OptionalExtension, Transaction, params};
use rustc_hash::FxHashMap;

use super::ModelError;
use super::rows::{Digest, digest_matches, int, uint};
use crate::journal::line::{self, MAX_LINE};
use crate::journal::scan::Head;

/// The index's tables, created if missing.
pub const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS history (
    seq INTEGER NOT NULL, account TEXT NOT NULL, prev INTEGER NOT NULL,
    line_end INTEGER NOT NULL, digest INTEGER NOT NULL,
    PRIMARY KEY (seq, account)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS tips (
    account TEXT PRIMARY KEY, seq INTEGER NOT NULL, digest INTEGER NOT NULL) WITHOUT ROWID;
"#;

/// One of an account's events, as the index has it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Indexed {
    /// The event's seq.
    pub seq: u64,
    /// The byte offset just past its line's `\n`.
    pub end: u64,
    /// The seq of the account's event before it; 0 if it is the first.
    pub prev: u64,
}

fn row_digest(seq: i64, account: &str, prev: i64, end: i64) -> i64 {
    Digest::default()
        .bytes(b"history")
        .int(seq)
        .text(Some(account))
        .int(prev)
        .int(end)
        .finish()
}

fn tip_digest(account: &str, seq: i64) -> i64 {
    Digest::default()
        .bytes(b"tip")
        .text(Some(account))
        .int(seq)
        .finish()
}

/// The last `n` events of `account` at the model's head, newest first
/// (fewer when its chain ends first). `None` when the index has no tip
/// for it: the account is not in the model.
pub fn last_events(
    c: &Connection,
    account: &str,
    n: usize,
) -> Result<Option<Vec<Indexed>>, ModelError> {
    let mut tip = c.prepare_cached("SELECT seq, digest FROM tips WHERE account = ?1")?;
    let Some((seq, digest)) = tip
        .query_row([account], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?))
        })
        .optional()?
    else {
        return Ok(None);
    };
    digest_matches(digest, tip_digest(account, seq), || {
        format!("the last event of {account}")
    })?;
    let mut row = c.prepare_cached(
        "SELECT prev, line_end, digest FROM history WHERE seq = ?1 AND account = ?2",
    )?;
    let mut events = Vec::new();
    let mut seq = uint::<u64>(seq)?;
    while seq > 0 && events.len() < n {
        let key = int(seq)?;
        let (prev, end, digest) = row
            .query_row(params![key, account], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, i64>(2)?,
                ))
            })
            .optional()?
            .ok_or_else(|| ModelError::Malformed(format!("event {seq} of {account} is missing")))?;
        digest_matches(digest, row_digest(key, account, prev, end), || {
            format!("event {seq} of {account}")
        })?;
        let prev = uint::<u64>(prev)?;
        // Each link goes back, so a damaged chain cannot loop.
        if prev >= seq {
            return Err(ModelError::Malformed(format!(
                "event {seq} of {account} links forwards"
            )));
        }
        events.push(Indexed {
            seq,
            end: uint(end)?,
            prev,
        });
        seq = prev;
    }
    Ok(Some(events))
}

/// Each account's last event, as indexing goes: read from `tips` as each
/// account is first met (a catch-up), or known to be absent (a rebuild,
/// which starts from empty tables).
pub struct Tips {
    last: FxHashMap<String, u64>,
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

    /// The account's last event so far, and now `seq` is.
    fn advance(&mut self, c: &Connection, account: &str, seq: u64) -> Result<u64, ModelError> {
        if let Some(last) = self.last.get_mut(account) {
            return Ok(std::mem::replace(last, seq));
        }
        let prev = if self.fresh {
            0
        } else {
            // An account with events but no tip (damage) gets a chain that
            // ends here; readers then find it does not end at a creation.
            let mut tip = c.prepare_cached("SELECT seq, digest FROM tips WHERE account = ?1")?;
            match tip
                .query_row([account], |r| {
                    Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?))
                })
                .optional()?
            {
                Some((seq, digest)) => {
                    digest_matches(digest, tip_digest(account, seq), || {
                        format!("the last event of {account}")
                    })?;
                    uint(seq)?
                }
                None => 0,
            }
        };
        self.last.insert(account.to_owned(), seq);
        Ok(prev)
    }

    /// Writes every tip that moved, in key order.
    fn save(self, tx: &Transaction<'_>) -> Result<(), ModelError> {
        let mut tips: Vec<_> = self.last.into_iter().collect();
        tips.sort_unstable();
        let mut stmt = tx.prepare_cached(
            "INSERT OR REPLACE INTO tips (account, seq, digest) VALUES (?1, ?2, ?3)",
        )?;
        for (account, seq) in tips {
            let seq = int(seq)?;
            stmt.execute(params![account, seq, tip_digest(&account, seq)])?;
        }
        Ok(())
    }
}

/// Indexes the journal's events from byte `start` (where the line of
/// event `first` begins) up to `head`, the new head of the model: the
/// lines a replay has just checked, read again from `file`. They must be
/// events `first`, `first + 1`, … ending with `head`'s line exactly.
pub fn add(
    tx: &Transaction<'_>,
    file: &File,
    start: u64,
    first: u64,
    head: Head,
    mut tips: Tips,
) -> Result<(), ModelError> {
    let mut stmt = tx.prepare_cached(
        "INSERT OR REPLACE INTO history (seq, account, prev, line_end, digest)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    let mut next = first;
    let mut scratch = Vec::new();
    each_line(file, start, head.end, |bytes, end| {
        let decoded = line::decode(bytes, &mut scratch)
            .map_err(|e| ModelError::Malformed(format!("indexing seq {next}: {e}")))?;
        let seq = decoded.event.seq;
        if seq != next {
            return Err(ModelError::Malformed(format!(
                "indexing: seq {seq} where {next} was due"
            )));
        }
        next += 1;
        let [a, b] = decoded.event.change.accounts();
        let second = b.filter(|b| Some(*b) != a);
        for account in [a, second].into_iter().flatten() {
            let prev = tips.advance(tx, account, seq)?;
            let (key, prev, end) = (int(seq)?, int(prev)?, int(end)?);
            stmt.execute(params![
                key,
                account,
                prev,
                end,
                row_digest(key, account, prev, end)
            ])?;
        }
        Ok(())
    })?;
    if next != head.seq + 1 {
        return Err(ModelError::Malformed(format!(
            "indexing ended at seq {} before the head's {}",
            next - 1,
            head.seq
        )));
    }
    tips.save(tx)
}

/// Calls `each` with every line (without `\n`) in bytes `start..end` of
/// `file`, and the offset just past its `\n`; `end` must end a line.
fn each_line(
    file: &File,
    start: u64,
    end: u64,
    mut each: impl FnMut(&[u8], u64) -> Result<(), ModelError>,
) -> Result<(), ModelError> {
    use std::os::unix::fs::FileExt;
    const CHUNK: usize = 1 << 20;
    let mut buf = vec![0u8; CHUNK.max(2 * (MAX_LINE + 1))];
    // Bytes of `buf` already read and not yet consumed: `buf[..held]`
    // starts at file offset `at`.
    let (mut at, mut held) = (start, 0usize);
    while at + (held as u64) < end {
        let want = usize::try_from(end - at - held as u64)
            .unwrap_or(usize::MAX)
            .min(buf.len() - held);
        let from = at + held as u64;
        file.read_exact_at(&mut buf[held..held + want], from)
            .map_err(|e| {
                ModelError::Malformed(format!("indexing: cannot read the journal: {e}"))
            })?;
        held += want;
        let mut pos = 0;
        while let Some(i) = memchr::memchr(b'\n', &buf[pos..held]) {
            each(&buf[pos..pos + i], at + (pos + i + 1) as u64)?;
            pos += i + 1;
        }
        if pos == 0 && held == buf.len() {
            return Err(ModelError::Malformed(
                "indexing: a line longer than any journal line".into(),
            ));
        }
        buf.copy_within(pos..held, 0);
        at += pos as u64;
        held -= pos;
    }
    if held > 0 {
        return Err(ModelError::Malformed(
            "indexing: the head does not end a line".into(),
        ));
    }
    Ok(())
}
