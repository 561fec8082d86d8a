//! The lines' `ends` column: the hold a capture or release ends (0 for
//! every other line), unique where set, as `reverses` is for reversals.
//! The query tables' word that a hold is open is what lets `capture` take
//! its money and keeps it from `withdraw`; a hold's row put back by hand
//! beside its deleted end would be believed, so the journal itself must
//! say which holds are ended. Every lines table gets the column here: a
//! new one as it is made, an older one from its next write, filled from
//! its lines.
//!
//! The column has no default: a build that does not know it (and would
//! leave a capture's end unrecorded) cannot add lines once it is there.

use std::path::Path;

use postgres::Client;
use postgres::error::SqlState;
use postgres::fallible_iterator::FallibleIterator;
use rustc_hash::FxHashMap;

use super::{JournalError, database_error};

/// The column's unique index: once it exists, the column is filled. (A
/// build of the same day kept the column nullable under an index named
/// `ledger_lines_ends`: such a column is made again here, as any column
/// without this index.)
pub(super) const INDEX: &str = "ledger_lines_hold_ends";

/// Lines that may end a hold, in seq order: every line whose type is one
/// of the two, and a few others (a memo may say anything), told apart by
/// decoding.
const CANDIDATES: &str = r#"SELECT seq, line FROM ledger_lines
    WHERE seq > 0 AND (position('"HoldCaptured"'::bytea IN line) > 0
        OR position('"HoldReleased"'::bytea IN line) > 0)
    ORDER BY seq"#;

/// Rows updated by one statement: an array of this many pairs is about
/// a megabyte, and the statements stay few.
const CHUNK: usize = 50_000;

/// Adds the column and its index to the lines table, if it has no index
/// yet, in the open transaction of a writer holding the head's lock.
/// Two lines ending one hold make the journal corrupt: the index cannot
/// be built, and no write goes on.
pub(super) fn add(client: &mut Client, path: &Path) -> Result<(), JournalError> {
    let error = |e: postgres::Error| match e.code() {
        Some(&SqlState::INSUFFICIENT_PRIVILEGE) => JournalError::Database {
            path: path.to_owned(),
            action: "update the tables of",
            reason: "this version records the hold each line ends, in a column only the \
                     owner of ledger_lines can add: one write by that role adds it"
                .into(),
        },
        _ => database_error(path, "update the tables of", &e),
    };
    let indexed = client
        .query_one(&format!("SELECT to_regclass('{INDEX}') IS NOT NULL"), &[])
        .and_then(|r| r.try_get::<_, bool>(0))
        .map_err(error)?;
    if indexed {
        return Ok(());
    }
    // Whatever a column without its index holds (a hand's work: this
    // transaction adds both or neither) is not trusted. Lines already
    // there end nothing until filled; lines added later must say.
    client
        .batch_execute(
            "ALTER TABLE ledger_lines DROP COLUMN IF EXISTS ends;
             ALTER TABLE ledger_lines ADD COLUMN ends bigint NOT NULL DEFAULT 0;
             ALTER TABLE ledger_lines ALTER COLUMN ends DROP DEFAULT",
        )
        .map_err(error)?;
    let ends = hold_ends(client, path)?;
    let mut ordered: Vec<(i64, i64)> = ends.into_iter().map(|(hold, seq)| (seq, hold)).collect();
    ordered.sort_unstable();
    for chunk in ordered.chunks(CHUNK) {
        let (seqs, holds): (Vec<i64>, Vec<i64>) = chunk.iter().copied().unzip();
        client
            .execute(
                "UPDATE ledger_lines SET ends = e.hold
                     FROM unnest($1::bigint[], $2::bigint[]) AS e(seq, hold)
                     WHERE ledger_lines.seq = e.seq",
                &[&seqs, &holds],
            )
            .map_err(error)?;
    }
    client
        .batch_execute(&format!(
            "CREATE UNIQUE INDEX {INDEX} ON ledger_lines (ends) WHERE ends > 0"
        ))
        .map_err(error)
}

/// Every hold the lines end, with the seq of the line that ends it.
fn hold_ends(client: &mut Client, path: &Path) -> Result<FxHashMap<i64, i64>, JournalError> {
    let error = |e: postgres::Error| database_error(path, "read", &e);
    let mut rows = client
        .query_raw(CANDIDATES, std::iter::empty::<i64>())
        .map_err(error)?;
    let mut ends = FxHashMap::default();
    let mut scratch = Vec::new();
    while let Some(row) = rows.next().map_err(error)? {
        let seq: i64 = row.try_get(0).map_err(error)?;
        let line: &[u8] = row.try_get(1).map_err(error)?;
        let corrupt = |reason: String| JournalError::Corrupt {
            path: path.to_owned(),
            line: u64::try_from(seq).map_or(0, |s| s.saturating_add(1)),
            reason,
        };
        let Some(hold) = super::taken_by(line, &mut scratch)
            .map_err(|e| corrupt(e.to_string()))?
            .ends
        else {
            continue;
        };
        let hold = i64::try_from(hold).map_err(|_| corrupt(format!("ends hold {hold}")))?;
        // In seq order, the first line found ending a hold twice is the
        // one `verify` names.
        if let Some(first) = ends.insert(hold, seq) {
            return Err(corrupt(format!(
                "ends hold {hold}, which seq {first} ended already"
            )));
        }
    }
    Ok(ends)
}
