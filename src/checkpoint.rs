//! The checkpoint: the ledger's state after some seq, cached beside the
//! journal (`<journal>.checkpoint`) so that a command replays only the lines
//! after it (SPEC 7).
//!
//! It is a cache and nothing more: it is trusted only when the journal still
//! holds, at the recorded offset, a line with the recorded hash (the chain
//! makes that line stand for every line before it), and when its own content
//! hashes to what it says. Anything else — missing, stale, damaged, another
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
use crate::journal::line::LineHash;
use crate::journal::scan::Head;
use crate::time::At;

/// Refresh the checkpoint once the lines after it are this many bytes:
/// replaying them then costs more than writing a new checkpoint would.
pub const REFRESH_BYTES: u64 = 4 << 20;

const FORMAT: &str = "ledger-checkpoint";
const VERSION: u32 = 1;

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
    let head = Head {
        seq: meta.seq,
        hash: LineHash::from_hex(&meta.hash)?,
        end: meta.end,
        at: At::parse_canonical(&meta.at)?,
    };
    if head.end <= header.end || head.end > len || !holds_line(file, head)? {
        return None;
    }
    let state: State = serde_json::from_slice(state_line).ok()?;
    (state.seq() == head.seq).then_some((state, head))
}

/// Whether the line ending at `head.end` hashes to `head.hash`.
fn holds_line(file: &File, head: Head) -> Option<bool> {
    // Lines are far shorter than this; a longer one simply fails the check.
    const MAX_LINE: u64 = 16 * 1024;
    let from = head.end.saturating_sub(MAX_LINE);
    let mut buf = vec![0u8; usize::try_from(head.end - from).ok()?];
    file.read_exact_at(&mut buf, from).ok()?;
    let line = buf.strip_suffix(b"\n")?;
    let start = memchr::memrchr(b'\n', line).map_or(0, |i| i + 1);
    Some(LineHash::of(&line[start..]) == head.hash)
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
