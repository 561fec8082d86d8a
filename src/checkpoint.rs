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

use std::fs::{self, File};
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::domain::State;
use crate::journal::line::{self, LineHash};
use crate::journal::scan::Head;
use crate::journal::sidecar::{self, Owner};

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
    let owner = Owner::of(&file.metadata().ok()?);
    let bytes = read_bounded(&path_of(journal), owner, max_len(len))?;
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

/// The most bytes a checkpoint of a journal of `len` bytes can take: its
/// state holds nothing that is not in some line (a name, an owner, an id),
/// and no line adds more to the state than its own length, so twice the
/// journal and room for the metadata is plenty. Anything longer is not a
/// checkpoint of ours, and is not read to its end.
fn max_len(len: u64) -> u64 {
    len.saturating_mul(2).saturating_add(64 * 1024)
}

/// The checkpoint's bytes, if it is the ledger's own regular file (see
/// [`sidecar::open_to_read`]) of at most `max` bytes.
fn read_bounded(path: &Path, owner: Owner, max: u64) -> Option<Vec<u8>> {
    let (file, meta) = sidecar::open_to_read(path, owner).ok()??;
    if meta.len() > max {
        return None;
    }
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).ok()?);
    // The size may change after the `fstat`: the read is bounded all the same.
    file.take(max + 1).read_to_end(&mut bytes).ok()?;
    (bytes.len() as u64 <= max).then_some(bytes)
}

/// The line (without `\n`) that ends just before byte `end`.
fn line_ending_at(file: &File, end: u64) -> Option<Vec<u8>> {
    // The line, its `\n` and the one before it; a longer line is not a
    // journal line, and simply fails the check.
    let from = end.saturating_sub(line::MAX_LINE as u64 + 2);
    let mut buf = vec![0u8; usize::try_from(end - from).ok()?];
    file.read_exact_at(&mut buf, from).ok()?;
    let line = buf.strip_suffix(b"\n")?;
    let start = memchr::memrchr(b'\n', line).map(|i| i + 1)?;
    Some(line[start..].to_vec())
}

/// Writes a checkpoint of `state` at `head` atomically (temporary file,
/// fsync, rename), after removing temporary files that killed refreshes
/// left. Failure only costs speed, so the caller may ignore it.
///
/// The temporary file is [`sidecar::create_temp`]'s: no one can plant a
/// link or a FIFO at its name beforehand. The rename replaces whatever is
/// at the checkpoint's name (a link itself, never its target).
pub fn store(
    journal: &Path,
    owner: Owner,
    header: Head,
    head: Head,
    state: &State,
) -> std::io::Result<()> {
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
    sidecar::remove_stale_temps(&path, owner);
    let (mut file, tmp) = sidecar::create_temp(&path, owner)?;
    let written = file
        .write_all(&bytes)
        .and_then(|()| file.sync_all())
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

    /// A forged state line that keeps the sums right but holds a value no
    /// command accepts is not trusted.
    #[test]
    fn a_state_with_values_no_command_accepts_is_inconsistent() {
        use crate::event::{Change, Event};
        let mut state = State::default();
        let change = Change::AccountCreated {
            account: "a".into(),
            owner: None,
            currency: Some("EUR".into()),
            decimals: 2,
        };
        let at = crate::time::At::now().expect("clock");
        let created = Event {
            id: Some("k".into()),
            ..Event::new(1, at, change)
        };
        crate::domain::evolve(&mut state, &created);
        let good = serde_json::to_string(&state).expect("json");
        assert!(state.inconsistency().is_none());
        for (from, to) in [
            (r#""decimals":2"#, r#""decimals":19"#),
            (r#""a""#, r#""a b""#),
            (r#""EUR""#, r#""eur""#),
            (r#""k""#, r#""k k""#),
        ] {
            let forged = good.replacen(from, to, 1);
            assert_ne!(forged, good, "{from}");
            let forged: State = serde_json::from_str(&forged).expect("json");
            assert!(forged.inconsistency().is_some(), "{to}");
        }
    }
}
