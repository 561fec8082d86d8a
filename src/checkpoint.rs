//! The checkpoint: the ledger's state after some seq, cached beside the
//! journal (`<journal>.checkpoint`) so that a command replays only the lines
//! after it (SPEC 7).
//!
//! It is a cache and nothing more: it is trusted only when the journal still
//! holds, at the recorded offset, a line with the recorded hash, seq and time
//! (the chain makes that line stand for every line before it), when its own
//! content hashes to what it says, and when the state keeps the ledger's
//! invariants. A forgery that keeps all of these (a state recomputed
//! consistently by hand) cannot be told apart without a key: `verify`, which
//! never reads the checkpoint, is the audit. Anything else — missing, stale, damaged, another
//! journal's, past a truncated end — is ignored, and the state is rebuilt
//! from the journal. Deleting it changes nothing but speed.
//!
//! Format: two lines. The first is metadata (format, version, the journal's
//! header hash, the head covered, the SHA-256 of the second line); the
//! second is the state as JSON.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::domain::State;
use crate::journal::line::{self, LineHash};
use crate::journal::scan::Head;

/// Refresh the checkpoint once the lines after it are this many bytes:
/// replaying them then costs more than writing a new checkpoint would.
pub const REFRESH_BYTES: u64 = 4 << 20;

const FORMAT: &str = "ledger-checkpoint";
// 2: the state records reversed movements.
const VERSION: u32 = 2;

#[derive(Serialize, Deserialize)]
struct Meta {
    format: String,
    version: u32,
    /// The hash of the journal's header line: which journal this is for.
    journal: String,
    seq: u64,
    hash: String,
    end: u64,
    at: String,
    /// The SHA-256 of the state line.
    state: String,
}

/// The checkpoint path of a journal.
pub fn path_of(journal: &Path) -> PathBuf {
    let mut path = journal.as_os_str().to_owned();
    path.push(".checkpoint");
    PathBuf::from(path)
}

/// The state and head a valid checkpoint of this journal holds, or `None`.
///
/// `header` is the journal's head after its header line; `len` how much of
/// the file this command reads.
pub fn load(journal: &Path, file: &File, header: Head, len: u64) -> Option<(State, Head)> {
    let bytes = fs::read(path_of(journal)).ok()?;
    let newline = memchr::memchr(b'\n', &bytes)?;
    let (meta, rest) = (&bytes[..newline], &bytes[newline + 1..]);
    let meta: Meta = serde_json::from_slice(meta).ok()?;
    if meta.format != FORMAT || meta.version != VERSION || meta.journal != header.hash.to_string() {
        return None;
    }
    let state_line = rest.strip_suffix(b"\n")?;
    if LineHash::of(state_line).to_string() != meta.state {
        return None;
    }
    let end = meta.end;
    if end <= header.end || end > len {
        return None;
    }
    // Everything the metadata says about the journal is read back from the
    // line it names, not taken on its word.
    let line = line_ending_at(file, end)?;
    let hash = LineHash::of(&line);
    let event = line::decode(&line, &mut Vec::new()).ok()?.event;
    if hash.to_string() != meta.hash || event.seq != meta.seq || event.at.to_string() != meta.at {
        return None;
    }
    let state: State = serde_json::from_slice(state_line).ok()?;
    if state.seq() != event.seq || state.inconsistency().is_some() {
        return None;
    }
    let head = Head {
        seq: event.seq,
        hash,
        end,
        at: event.at,
    };
    Some((state, head))
}

/// The line (without `\n`) that ends just before byte `end`.
fn line_ending_at(file: &File, end: u64) -> Option<Vec<u8>> {
    // Lines are far shorter than this; a longer one simply fails the check.
    const MAX_LINE: u64 = 16 * 1024;
    let from = end.saturating_sub(MAX_LINE);
    let mut buf = vec![0u8; usize::try_from(end - from).ok()?];
    file.read_exact_at(&mut buf, from).ok()?;
    let line = buf.strip_suffix(b"\n")?;
    let start = memchr::memrchr(b'\n', line).map(|i| i + 1)?;
    Some(line[start..].to_vec())
}

/// Writes a checkpoint of `state` at `head` atomically (temporary file,
/// fsync, rename). Failure only costs speed, so the caller may ignore it.
pub fn store(journal: &Path, header: Head, head: Head, state: &State) -> std::io::Result<()> {
    let state_line = serde_json::to_vec(state)?;
    let meta = Meta {
        format: FORMAT.to_owned(),
        version: VERSION,
        journal: header.hash.to_string(),
        seq: head.seq,
        hash: head.hash.to_string(),
        end: head.end,
        at: head.at.to_string(),
        state: LineHash::of(&state_line).to_string(),
    };
    let mut bytes = serde_json::to_vec(&meta)?;
    bytes.push(b'\n');
    bytes.extend_from_slice(&state_line);
    bytes.push(b'\n');
    let path = path_of(journal);
    let mut tmp = path.clone().into_os_string();
    tmp.push(format!(".tmp.{}", std::process::id()));
    let tmp = PathBuf::from(tmp);
    let written = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .and_then(|mut f| f.write_all(&bytes).and_then(|()| f.sync_all()))
        .and_then(|()| fs::rename(&tmp, &path));
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    written
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_is_beside_the_journal() {
        assert_eq!(
            path_of(Path::new("/x/j.jsonl")),
            PathBuf::from("/x/j.jsonl.checkpoint")
        );
    }
}
