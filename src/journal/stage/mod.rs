//! The lines of one append, staged until every command of it is decided,
//! then sealed on their way to the journal (SPEC 2, 4).
//!
//! Why staged: the first line of a multi-event append carries `"batch":N`,
//! N being the events actually appended (a repeated `--id` appends
//! nothing), and each `prev` hashes the exact bytes of the line before it;
//! so no line's final bytes are known before the last command is decided,
//! unless N is known in advance (see [`Ahead`], which writes a long
//! append to the journal as it is staged when the count is given). Lines
//! are staged as encoded, with a placeholder `prev` and no mark, and
//! sealed in one pass that puts the mark in the first line and chains the
//! hashes as the bytes go out.
//!
//! Why partly in a file: a batch's memory must not grow with its length
//! (SPEC 4). The newest lines stay in a buffer of 1 MiB; older ones go
//! to a spool, an anonymous file in the journal's directory (the room they
//! need there is about to be needed by the journal anyway, unlike in a
//! `/tmp` that may be memory), which vanishes when closed, whatever ends
//! the process. An append that fits the buffer (every single command)
//! never makes the file.

use std::fs::File;
use std::io::{self, Write};
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::mpsc;

use super::JournalError;
use super::line::{self, LineHash};
use super::sidecar::{self, Owner};
use crate::threads;

mod ahead;

pub(super) use ahead::Ahead;
use ahead::Handed;

/// Bytes of staged lines kept in memory before they go to the spool; also
/// about the size of each read and write that seals them. A long append
/// written ahead has three in flight (staged, waiting, being sealed): of
/// 4 MiB, the batch of 2,000,000 ids peaked 9 MB higher, no faster.
const BUFFER: usize = 1 << 20;

/// The staged lines of one append.
pub(super) struct Stage {
    /// `room` bytes for the header and the mark, then the newest lines,
    /// each ending with `\n`.
    buffer: Vec<u8>,
    room: usize,
    /// Staged bytes past which the buffer goes to the spool.
    limit: usize,
    /// The older lines, when there are more than the buffer holds.
    spool: Option<File>,
    /// How many bytes of lines have left the buffer: for the spool, which
    /// may hold more (a sealed copy after them, see [`Sink::Keep`]), or
    /// written ahead to the journal.
    spooled: u64,
    /// Where each line starts in the staged bytes (spool, then buffer).
    starts: Starts,
    sealed: Option<Sealed>,
    /// An append written to the journal as it is staged, instead of to
    /// the spool (see [`Stage::write_ahead`]).
    ahead: Option<Ahead>,
}

/// Where sealing sends the sealed bytes.
pub(super) enum Sink<'f> {
    /// Appended to the journal (opened with `O_APPEND`), whose length
    /// before the append is given.
    Journal(&'f File, u64),
    /// Kept for reading only (a dry run): in place in the buffer, or after
    /// the staged lines in the spool when there is one.
    Keep,
    /// Kept as [`Sink::Keep`] keeps them, and each sealed line (a new
    /// journal's header first), without its `\n`, handed as soon as it is
    /// sealed to the function given, on the calling thread: a database's
    /// `COPY` takes the first lines while the later ones are sealed.
    KeepAnd(&'f mut dyn FnMut(&[u8]) -> Result<(), JournalError>),
}

/// Where the sealed bytes of the append are, for reading lines back.
#[derive(Debug, Clone, Copy)]
struct Sealed {
    /// Bytes of the header before the first line (0 unless the journal is
    /// new), and of the mark in the first line.
    header: u64,
    mark: u64,
    /// The hash of the last line.
    last: LineHash,
    /// Where they begin: in the buffer (the spool was never used), or at
    /// an offset of the journal or of the spool.
    place: Place,
}

#[derive(Debug, Clone, Copy)]
enum Place {
    Buffer(usize),
    Journal(u64),
    Spool(u64),
}

impl Stage {
    /// No lines yet, with `room` bytes for the header and the mark.
    pub(super) fn new(room: usize) -> Stage {
        Stage {
            buffer: vec![0; room],
            room,
            limit: BUFFER,
            spool: None,
            spooled: 0,
            starts: Starts::default(),
            sealed: None,
            ahead: None,
        }
    }

    /// Writes the lines to the journal as they are staged, once they
    /// outgrow the buffer, as `ahead` says, rather than to a spool. Only
    /// before anything is staged.
    pub(super) fn write_ahead(&mut self, ahead: Ahead) {
        if self.starts.len() == 0 {
            self.ahead = Some(ahead);
        }
    }

    /// Stops writing ahead, leaving the journal as it was.
    pub(super) fn abandon(&mut self) {
        self.ahead = None;
    }

    /// Sets the bytes staged in memory before the spool takes them.
    #[cfg(test)]
    pub(super) fn set_limit(&mut self, limit: usize) {
        self.limit = limit;
    }

    /// How many lines are staged.
    pub(super) fn len(&self) -> usize {
        self.starts.len()
    }

    /// How many bytes of lines are staged.
    fn staged_bytes(&self) -> u64 {
        self.spooled + (self.buffer.len() - self.room) as u64
    }

    /// Stages the line `encode` appends to the buffer (without its `\n`);
    /// lines beyond the buffer's limit go to the spool beside the journal
    /// at `path`, which is made owned as `owner` requires.
    pub(super) fn push(
        &mut self,
        encode: impl FnOnce(&mut Vec<u8>),
        path: &Path,
        owner: Owner,
    ) -> Result<(), JournalError> {
        self.starts
            .push(self.staged_bytes())
            .map_err(|e| spool_error(path, e))?;
        // Room, once half full, for every line until the limit and the
        // longest after it: left to double its way, the buffer takes
        // twice the limit, and a long append keeps three of them.
        if self.buffer.len() - self.room >= self.limit / 2 {
            let full = self
                .room
                .saturating_add(self.limit)
                .saturating_add(line::MAX_LINE + 1);
            if self.buffer.capacity() < full {
                self.buffer.reserve_exact(full - self.buffer.len());
            }
        }
        encode(&mut self.buffer);
        self.buffer.push(b'\n');
        if self.buffer.len() - self.room >= self.limit {
            if self.hand_ahead()? {
                return Ok(());
            }
            if self.spool.is_none() {
                let spool = sidecar::create_spool(path, owner).map_err(|e| spool_error(path, e))?;
                self.spool = Some(spool);
            }
            self.spill().map_err(|e| spool_error(path, e))?;
        }
        Ok(())
    }

    /// Hands the buffered lines to the append written ahead, if there is
    /// one and they leave a line of it for the commit to write; gives it
    /// up once the lines outnumber it. Returns whether the buffered lines
    /// are seen to (handed, or kept for the commit).
    fn hand_ahead(&mut self) -> Result<bool, JournalError> {
        let Some(mut ahead) = self.ahead.take() else {
            return Ok(false);
        };
        let lines = self.starts.len();
        if lines > ahead.lines() {
            self.give_up(ahead)?;
            return Ok(false);
        }
        if lines < ahead.lines() {
            let handed = (self.buffer.len() - self.room) as u64;
            let buffer = self.take_buffer();
            // On a failure, `ahead` is dropped: the journal is cut back.
            match ahead.hand(buffer, self.room)? {
                Handed::Taken(next) => self.buffer = next,
                Handed::Refused(buffer) => {
                    self.buffer = buffer;
                    return Ok(false);
                }
            }
            self.spooled += handed;
        }
        self.ahead = Some(ahead);
        Ok(true)
    }

    /// Gives up writing ahead: the lines written go to a spool, as staged,
    /// and the journal is cut back.
    fn give_up(&mut self, ahead: Ahead) -> Result<(), JournalError> {
        if let Some(spool) = ahead.into_spool(self.spooled)? {
            self.spool = Some(spool);
        }
        Ok(())
    }

    /// The buffer, leaving an empty one (but for its room) in its place.
    fn take_buffer(&mut self) -> Vec<u8> {
        std::mem::replace(&mut self.buffer, vec![0; self.room])
    }

    /// Moves the buffered lines to the end of the spool, if there is one.
    fn spill(&mut self) -> io::Result<()> {
        if let Some(spool) = &self.spool {
            let lines = &self.buffer[self.room..];
            spool.write_all_at(lines, self.spooled)?;
            self.spooled += lines.len() as u64;
            self.buffer.truncate(self.room);
        }
        Ok(())
    }

    /// The bytes of line `i` (without `\n`): as staged until the stage is
    /// sealed, then as sealed. `journal` is where [`Sink::Journal`] sent
    /// them.
    pub(super) fn line(
        &self,
        i: usize,
        journal: Option<&File>,
        path: &Path,
    ) -> Result<Vec<u8>, JournalError> {
        let total = self.staged_bytes();
        let (start, end) = self.starts.span(i, total);
        let Some(sealed) = self.sealed else {
            if start >= self.spooled {
                let at = |offset: u64| {
                    usize::try_from(offset - self.spooled).map_or(usize::MAX, |o| o + self.room)
                };
                return Ok(self
                    .buffer
                    .get(at(start)..at(end))
                    .unwrap_or_default()
                    .to_vec());
            }
            let Some(ahead) = &self.ahead else {
                return read_at(self.spool.as_ref(), start, end).map_err(|e| spool_error(path, e));
            };
            // Written ahead: read back as sealed, once written.
            let (at, header, mark) = ahead
                .written(end)
                .map_err(|why| JournalError::io(path, "write", io::Error::other(why)))?;
            let written = Sealed {
                header,
                mark,
                last: LineHash::default(),
                place: Place::Journal(at),
            };
            return self.sealed_line(written, i, (start, end), journal, path);
        };
        self.sealed_line(sealed, i, (start, end), journal, path)
    }

    /// The bytes of line `i`, staged from `start` to `end`, as sealed.
    fn sealed_line(
        &self,
        sealed: Sealed,
        i: usize,
        (start, end): (u64, u64),
        journal: Option<&File>,
        path: &Path,
    ) -> Result<Vec<u8>, JournalError> {
        // The mark makes the first line longer and moves every later one.
        let shift = sealed.header + if i == 0 { 0 } else { sealed.mark };
        let (start, end) = (start + shift, end + sealed.header + sealed.mark);
        match sealed.place {
            Place::Buffer(begin) => {
                let span = begin + start as usize..begin + end as usize;
                Ok(self.buffer.get(span).unwrap_or_default().to_vec())
            }
            Place::Journal(at) => read_at(journal, at + start, at + end)
                .map_err(|e| JournalError::io(path, "read", e)),
            Place::Spool(at) => {
                read_at(self.spool.as_ref(), at + start, at + end).map_err(|e| spool_error(path, e))
            }
        }
    }

    /// Seals the staged lines with `sealer` and sends the sealed bytes to
    /// `sink` in order: in one piece if the buffer holds them all, else a
    /// buffer's worth at a time. `path` is the journal's, for errors.
    /// Nothing staged sends nothing.
    pub(super) fn seal(
        &mut self,
        mut sealer: Sealer,
        sink: Sink<'_>,
        path: &Path,
    ) -> Result<(), JournalError> {
        if self.starts.len() == 0 || self.sealed.is_some() {
            return Ok(());
        }
        if let Some(mut ahead) = self.ahead.take() {
            if let Sink::Journal(_, len) = sink
                && ahead.started()
                && ahead.lines() == self.starts.len()
            {
                self.spooled += (self.buffer.len() - self.room) as u64;
                let buffer = self.take_buffer();
                let sealer = ahead.finish(buffer, self.room)?;
                self.sealed = Some(Sealed {
                    header: sealer.header_len,
                    mark: sealer.mark_len,
                    last: sealer.prev,
                    place: Place::Journal(len),
                });
                return Ok(());
            }
            self.give_up(ahead)?;
        }
        // With a spool, every line goes through it: one path for them all.
        self.spill().map_err(|e| spool_error(path, e))?;
        let place = match (&self.spool, sink) {
            (None, sink) => {
                let end = self.buffer.len();
                let begin = sealer.seal(&mut self.buffer, self.room, end);
                match sink {
                    Sink::Journal(mut file, _) => file
                        .write_all(&self.buffer[begin..])
                        .map_err(|e| JournalError::io(path, "write", e))?,
                    Sink::KeepAnd(each) => each_line(&self.buffer[begin..], each)?,
                    Sink::Keep => {}
                }
                Place::Buffer(begin)
            }
            (Some(spool), Sink::Journal(file, len)) => {
                let (spooled, room) = (self.spooled, self.room);
                syncing_as_written(file, path, |emit| {
                    seal_spool(spool, spooled, room, &mut sealer, emit, path)
                })?;
                Place::Journal(len)
            }
            (Some(spool), sink) => {
                let mut each = match sink {
                    Sink::KeepAnd(each) => Some(each),
                    _ => None,
                };
                let mut at = self.spooled;
                let emit = |bytes: &[u8]| {
                    let written = spool.write_all_at(bytes, at);
                    at += bytes.len() as u64;
                    written.map_err(|e| spool_error(path, e))?;
                    each.as_mut().map_or(Ok(()), |each| each_line(bytes, each))
                };
                seal_spool(spool, self.spooled, self.room, &mut sealer, emit, path)?;
                Place::Spool(self.spooled)
            }
        };
        self.sealed = Some(Sealed {
            header: sealer.header_len,
            mark: sealer.mark_len,
            last: sealer.prev,
            place,
        });
        Ok(())
    }

    /// Once sealed: the hash of the last line, and how many bytes the
    /// append is (a new journal's header included).
    pub(super) fn sealed_end(&self) -> Option<(LineHash, u64)> {
        let sealed = self.sealed?;
        Some((
            sealed.last,
            sealed.header + self.staged_bytes() + sealed.mark,
        ))
    }

    /// Hands each sealed line (without `\n`) to `each`, in order; nothing
    /// before the stage is sealed.
    pub(super) fn each_sealed<E: From<JournalError>>(
        &self,
        journal: Option<&File>,
        path: &Path,
        mut each: impl FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<(), E> {
        let Some(sealed) = self.sealed else {
            return Ok(());
        };
        let mut lines = |bytes: &[u8]| each_line(bytes, &mut each);
        let (file, at, error): (_, _, fn(&Path, io::Error) -> JournalError) = match sealed.place {
            Place::Buffer(begin) => {
                let start = begin + sealed.header as usize;
                return lines(self.buffer.get(start..).unwrap_or_default());
            }
            Place::Journal(at) => match journal {
                Some(journal) => (journal, at, |path, e| JournalError::io(path, "read", e)),
                None => return Ok(()),
            },
            Place::Spool(at) => match &self.spool {
                Some(spool) => (spool, at, spool_error),
                None => return Ok(()),
            },
        };
        let start = at + sealed.header;
        let end = start + self.staged_bytes() + sealed.mark;
        each_chunk(file, start, end, lines).map_err(|e| match e {
            Ok(e) => e,
            Err(e) => E::from(error(path, e)),
        })
    }
}

/// Hands each line of `bytes` (whole lines) to `each`, without its `\n`.
fn each_line<E>(bytes: &[u8], mut each: impl FnMut(&[u8]) -> Result<(), E>) -> Result<(), E> {
    // Cut with memchr: a byte-by-byte split was most of the cost of
    // reading a million staged lines back.
    let mut start = 0;
    memchr::memchr_iter(b'\n', bytes)
        .chain(std::iter::once(bytes.len()))
        .map(|end| (std::mem::replace(&mut start, end + 1), end))
        .filter(|(start, end)| start < end)
        .try_for_each(|(start, end)| each(&bytes[start..end]))
}

/// Bytes appended to the journal between two of the syncs that
/// [`syncing_as_written`] starts while it writes.
const SYNC_EVERY: u64 = 8 << 20;

/// Runs `write` with a function that appends bytes to `file`, while a
/// thread of its own syncs what has been appended every [`SYNC_EVERY`]
/// bytes. The commit's own sync then finds little left to write out: a
/// long batch's 200 MB took a tenth of a second to sync after the last
/// line, time the disk now spends while later lines are sealed. Syncing
/// part of an append early changes nothing a crash leaves behind, which is
/// at worst a torn tail in any case (SPEC 4). A sync that fails fails the
/// append: after a failed `fsync`, a later one may report success for
/// pages that were never written. Where the OS gives no thread, nothing
/// is synced early: the commit's sync does it all.
fn syncing_as_written(
    file: &File,
    path: &Path,
    write: impl FnOnce(&mut dyn FnMut(&[u8]) -> Result<(), JournalError>) -> Result<(), JournalError>,
) -> Result<(), JournalError> {
    std::thread::scope(|scope| {
        // One sync asked for at a time: asking while one runs asks for
        // nothing more than the one after it will do.
        let (ask, asked) = mpsc::sync_channel::<()>(1);
        let syncer = threads::scoped(scope, "syncing", move || {
            asked.iter().try_for_each(|()| file.sync_data())
        });
        let Ok(syncer) = syncer else {
            return write(&mut |bytes| write_to(file, path, bytes));
        };
        let mut unsynced = 0;
        let mut emit = |bytes: &[u8]| {
            write_to(file, path, bytes)?;
            unsynced += bytes.len() as u64;
            if unsynced >= SYNC_EVERY {
                unsynced = 0;
                match ask.try_send(()) {
                    // Full: a sync is running or asked for, and will cover
                    // these.
                    Ok(()) | Err(mpsc::TrySendError::Full(())) => {}
                    // The syncer stopped at a failed sync, the error
                    // reported below: the rest of a long append would only
                    // be written to be cut back.
                    Err(mpsc::TrySendError::Disconnected(())) => {
                        let stopped = io::Error::other("stopped by a failed sync");
                        return Err(JournalError::io(path, "write", stopped));
                    }
                }
            }
            Ok(())
        };
        let written = write(&mut emit);
        drop(ask);
        let synced = syncer
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("the syncing thread failed")));
        // A failed sync is the error to report, whatever it stopped.
        if synced.is_ok() {
            written?;
        }
        synced.map_err(|source| JournalError::SyncFailed {
            path: path.to_path_buf(),
            source,
        })
    })
}

/// Appends `bytes` to `file` (the journal at `path`).
fn write_to(mut file: &File, path: &Path, bytes: &[u8]) -> Result<(), JournalError> {
    file.write_all(bytes)
        .map_err(|e| JournalError::io(path, "write", e))
}

/// Streams the first `len` bytes of `spool` (whole lines) through
/// `sealer` to `emit`, in chunks read after `room` bytes of room. The
/// sealing runs on a thread of its own and `emit` on this one (so that
/// it may use what cannot cross threads, a database connection): sending
/// one chunk on overlaps hashing the next, which the chain keeps on one
/// thread. Where the OS gives no thread, both run in turn on this one.
fn seal_spool(
    spool: &File,
    len: u64,
    room: usize,
    sealer: &mut Sealer,
    mut emit: impl FnMut(&[u8]) -> Result<(), JournalError>,
    path: &Path,
) -> Result<(), JournalError> {
    std::thread::scope(|scope| {
        let (sealed_tx, sealed_rx) = mpsc::sync_channel::<(Vec<u8>, Range<usize>)>(1);
        let (free_tx, free_rx) = mpsc::channel::<Vec<u8>>();
        // Should the OS refuse the thread, the sealer comes back to seal
        // in turn.
        let sealing = threads::scoped_with(scope, "sealing", sealer, move |sealer| {
            seal_chunks(spool, len, room, sealer, |chunk| {
                // Closed: emitting stopped at an error, which it returns.
                let chunk = sealed_tx.send(chunk).is_ok();
                (chunk, free_rx.try_recv().unwrap_or_default())
            })
            .map_err(|e| spool_error(path, e))
        });
        let sealing = match sealing {
            Ok(thread) => thread,
            Err(sealer) => return seal_in_turn(spool, len, room, sealer, emit, path),
        };
        let mut emitted = Ok(());
        for (chunk, range) in &sealed_rx {
            emitted = emit(&chunk[range]);
            if emitted.is_err() {
                break;
            }
            // Back for the next read; gone if sealing has ended.
            let _ = free_tx.send(chunk);
        }
        drop(sealed_rx);
        let sealed = sealing.join().ok().flatten().unwrap_or_else(|| {
            Err(JournalError::io(
                path,
                "write",
                io::Error::other("the sealing thread failed"),
            ))
        });
        sealed.and(emitted)
    })
}

/// [`seal_spool`] on this thread alone.
fn seal_in_turn(
    spool: &File,
    len: u64,
    room: usize,
    sealer: &mut Sealer,
    mut emit: impl FnMut(&[u8]) -> Result<(), JournalError>,
    path: &Path,
) -> Result<(), JournalError> {
    let mut emitted = Ok(());
    seal_chunks(spool, len, room, sealer, |(chunk, range)| {
        emitted = emit(&chunk[range]);
        (emitted.is_ok(), chunk)
    })
    .map_err(|e| spool_error(path, e))?;
    emitted
}

/// Reads the first `len` bytes of `spool` (whole lines) a chunk at a
/// time, after `room` bytes of room, seals each chunk's whole lines with
/// `sealer` and hands it on with `send`, which gives back whether to go
/// on and a buffer for the next chunk (empty if it has none).
fn seal_chunks(
    spool: &File,
    len: u64,
    room: usize,
    sealer: &mut Sealer,
    mut send: impl FnMut((Vec<u8>, Range<usize>)) -> (bool, Vec<u8>),
) -> io::Result<()> {
    let (mut read, mut carry, mut chunk) = (0, Vec::new(), Vec::new());
    while read < len {
        let filled = room + carry.len();
        chunk.resize(chunk.len().max(filled + BUFFER), 0);
        chunk[room..filled].copy_from_slice(&carry);
        let n = BUFFER.min(usize::try_from(len - read).unwrap_or(usize::MAX));
        spool.read_exact_at(&mut chunk[filled..filled + n], read)?;
        read += n as u64;
        // A chunk ends with the last whole line in it; the rest starts
        // the next.
        let end = memchr::memrchr(b'\n', &chunk[room..filled + n]).map_or(room, |i| room + i + 1);
        carry.clear();
        carry.extend_from_slice(&chunk[end..filled + n]);
        if end == room {
            continue;
        }
        let begin = sealer.seal(&mut chunk, room, end);
        let (go_on, next) = send((chunk, begin..end));
        if !go_on {
            return Ok(());
        }
        chunk = next;
    }
    Ok(())
}

/// Reads bytes `from..to` of `file`, whole lines, a chunk at a time, and
/// hands `each` the chunk up to the end of its last complete line. An
/// error is `each`'s (`Ok`) or the read's (`Err`).
fn each_chunk<E>(
    file: &File,
    from: u64,
    to: u64,
    mut each: impl FnMut(&[u8]) -> Result<(), E>,
) -> Result<(), Result<E, io::Error>> {
    let mut chunk = vec![0u8; BUFFER];
    let (mut read, mut filled) = (from, 0);
    while read < to {
        // A line longer than a chunk: room for it.
        if filled == chunk.len() {
            chunk.resize(chunk.len() * 2, 0);
        }
        let n = (chunk.len() - filled).min(usize::try_from(to - read).unwrap_or(usize::MAX));
        file.read_exact_at(&mut chunk[filled..filled + n], read)
            .map_err(Err)?;
        read += n as u64;
        filled += n;
        let end = memchr::memrchr(b'\n', &chunk[..filled]).map_or(0, |i| i + 1);
        each(&chunk[..end]).map_err(Ok)?;
        chunk.copy_within(end..filled, 0);
        filled -= end;
    }
    Ok(())
}

/// The bytes from `start` to `end` of `file`.
fn read_at(file: Option<&File>, start: u64, end: u64) -> io::Result<Vec<u8>> {
    let mut bytes = vec![0u8; usize::try_from(end.saturating_sub(start)).unwrap_or(0)];
    match file {
        Some(file) => file.read_exact_at(&mut bytes, start)?,
        None => return Err(io::Error::from(io::ErrorKind::UnexpectedEof)),
    }
    Ok(bytes)
}

fn spool_error(path: &Path, e: io::Error) -> JournalError {
    JournalError::io(path, "stage the append in a temporary file beside", e)
}

/// Fills in what staging left out, line after line in order: the batch
/// mark in the first line (and the header before it, for a new journal),
/// and every `prev`.
pub(super) struct Sealer {
    prev: LineHash,
    /// Until the first line is sealed: how many lines the append has, and
    /// the header line (with its `\n`) if the journal is new.
    first: Option<(usize, Option<Vec<u8>>)>,
    header_len: u64,
    mark_len: u64,
}

impl Sealer {
    /// For an append of `count` lines after the line whose hash is `prev`
    /// (a new journal's header line, given, is written before them).
    pub(super) fn new(prev: LineHash, count: usize, header: Option<Vec<u8>>) -> Sealer {
        Sealer {
            prev,
            first: Some((count, header)),
            header_len: 0,
            mark_len: 0,
        }
    }

    /// How long the header and the first line's mark are (or will be)
    /// in the sealed bytes.
    fn lengths(&self) -> (u64, u64) {
        let Some((count, header)) = &self.first else {
            return (self.header_len, self.mark_len);
        };
        let header = header.as_ref().map_or(0, |h| h.len() as u64);
        let mark = if *count > 1 {
            line::batch_mark(*count, 0).0.len() as u64
        } else {
            0
        };
        (header, mark)
    }

    /// Seals the lines of `buf[from..end]` (each ending with `\n`) in
    /// place, the next ones of the append. The first line's mark and the
    /// header go into the room before `from`. Returns where the sealed
    /// bytes begin.
    fn seal(&mut self, buf: &mut [u8], from: usize, end: usize) -> usize {
        let Some((count, header)) = self.first.take() else {
            chain(&mut buf[from..end], &mut self.prev);
            return from;
        };
        let mut begin = from;
        if count > 1 {
            // The part of the first line before the mark moves back into
            // the room.
            let len = memchr::memchr(b'\n', &buf[from..end]).unwrap_or(end - from);
            let (mark, offset) = line::batch_mark(count, len);
            let at = from + offset;
            begin = from - mark.len();
            buf.copy_within(from..at, begin);
            buf[at - mark.len()..at].copy_from_slice(mark.as_bytes());
            self.mark_len = mark.len() as u64;
        }
        chain(&mut buf[begin..end], &mut self.prev);
        if let Some(header) = header {
            begin -= header.len();
            buf[begin..begin + header.len()].copy_from_slice(&header);
            self.header_len = header.len() as u64;
        }
        begin
    }
}

/// Fills in the `prev` of each line of `lines` (each ending with `\n`),
/// starting from the hash `prev` of the line before them.
fn chain(lines: &mut [u8], prev: &mut LineHash) {
    let mut start = 0;
    while let Some(i) = memchr::memchr(b'\n', &lines[start..]) {
        let end = start + i;
        line::set_prev(&mut lines[start..end], prev);
        *prev = LineHash::of(&lines[start..end]);
        start = end + 1;
    }
}

/// Where each staged line starts, in about 2 bytes a line: an offset
/// for every [`Starts::BLOCK`] lines, and the distance of each other line
/// from the one before, so a line of at most 65,534 bytes and its `\n`
/// (the input's limits keep an event's line under 20 KB). A batch of
/// 2,000,000 lines held 8 MB in 4 bytes a line.
#[derive(Debug, Default)]
struct Starts {
    blocks: Vec<u64>,
    /// From the line before; 0 for the first of a block.
    steps: Vec<u16>,
    last: u64,
}

impl Starts {
    /// Lines in a block: a start is found by adding up at most this many
    /// steps.
    const BLOCK: usize = 64;

    fn len(&self) -> usize {
        self.steps.len()
    }

    /// Records the start of the next line.
    fn push(&mut self, start: u64) -> io::Result<()> {
        let step = match self.steps.len().is_multiple_of(Self::BLOCK) {
            true => {
                self.blocks.push(start);
                0
            }
            false => start
                .checked_sub(self.last)
                .and_then(|step| u16::try_from(step).ok())
                .ok_or_else(|| {
                    io::Error::new(io::ErrorKind::InvalidData, "a staged line is too long")
                })?,
        };
        self.steps.push(step);
        self.last = start;
        Ok(())
    }

    fn start(&self, i: usize) -> Option<u64> {
        let block = self.blocks.get(i / Self::BLOCK)?;
        let steps = self.steps.get(i - i % Self::BLOCK..=i)?;
        Some(block + steps.iter().map(|&s| u64::from(s)).sum::<u64>())
    }

    /// Where line `i` starts and ends (before its `\n`), `total` being the
    /// length of all the lines; an empty span for a line not staged.
    fn span(&self, i: usize, total: u64) -> (u64, u64) {
        let Some(start) = self.start(i) else {
            return (total, total);
        };
        let next = self.start(i + 1).unwrap_or(total);
        (start, next.saturating_sub(1).max(start))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A journal whose sync fails (a pipe: `fsync` there is `EINVAL`):
    /// the append fails with that sync's error, and the writing stops
    /// soon after it rather than going on to the end.
    #[test]
    fn a_failed_sync_on_the_way_stops_the_writing() {
        let (reader, writer) = io::pipe().expect("pipe");
        let journal = File::from(std::os::fd::OwnedFd::from(writer));
        let drained = std::thread::spawn(move || io::copy(&mut { reader }, &mut io::sink()));
        let chunk = vec![b'x'; 1 << 20];
        let mut written = 0u64;
        let result = syncing_as_written(&journal, Path::new("j"), |emit| {
            for _ in 0..256 {
                emit(&chunk)?;
                written += chunk.len() as u64;
            }
            Ok(())
        });
        drop(journal);
        let _ = drained.join();
        assert!(
            matches!(result, Err(JournalError::SyncFailed { .. })),
            "{result:?}"
        );
        assert!(
            written < 128 << 20,
            "wrote {written} bytes after the failed sync"
        );
    }

    /// Sealing on a thread of its own and in turn on this one (where the
    /// OS gives no thread) give the same bytes, a chunk at a time, and
    /// stop alike at an error in emitting.
    #[test]
    fn sealing_in_turn_is_sealing_on_a_thread() {
        let lines = 25_000;
        let mut spool = tempfile::tempfile().expect("spool");
        for i in 0..lines {
            let pad = "x".repeat(100 + i % 13);
            let zeros = "0".repeat(64);
            writeln!(spool, r#"{{"seq":{i},"pad":"{pad}","prev":"{zeros}"}}"#).expect("write");
        }
        let len = spool.metadata().expect("len").len();
        let room = 64;
        let start = LineHash::of(b"the line before");
        let seal = |threaded: bool, fail_at: usize| {
            let mut sealer = Sealer::new(start, lines, None);
            let (mut out, mut chunks) = (Vec::new(), 0);
            let emit = |bytes: &[u8]| {
                chunks += 1;
                if chunks == fail_at {
                    return Err(JournalError::io(
                        Path::new("j"),
                        "write",
                        io::Error::other("full"),
                    ));
                }
                out.extend_from_slice(bytes);
                Ok(())
            };
            let path = Path::new("j");
            let result = if threaded {
                seal_spool(&spool, len, room, &mut sealer, emit, path)
            } else {
                seal_in_turn(&spool, len, room, &mut sealer, emit, path)
            };
            let lines = out.iter().filter(|&&b| b == b'\n').count();
            let emitted = (
                result.map_err(|e| e.to_string()),
                lines,
                LineHash::of(&out),
                chunks,
            );
            (emitted, sealer.prev)
        };
        let (threaded, last) = seal(true, 0);
        assert!(threaded.3 >= 2, "{} chunks: too few to test", threaded.3);
        assert_eq!(threaded.1, lines);
        assert_eq!((threaded, last), seal(false, 0));
        // A thread may seal a chunk past the failed one, which is dropped.
        let (failed, _) = seal(true, 2);
        assert!(failed.0.is_err() && failed.1 > 0 && failed.1 < lines);
        assert_eq!(failed, seal(false, 2).0);
    }

    #[test]
    fn starts_span_blocks() {
        let mut starts = Starts::default();
        let mut at = 0;
        for i in 0..3000u64 {
            starts.push(at).expect("fits");
            at += 100 + i % 7;
        }
        // The longest line a step holds, then one too long.
        let mut long = Starts::default();
        long.push(5).expect("first");
        long.push(5 + u64::from(u16::MAX)).expect("fits");
        assert_eq!(long.span(0, 1 << 20), (5, 5 + u64::from(u16::MAX) - 1));
        assert!(long.push(5 + 2 * u64::from(u16::MAX) + 1).is_err());
        let mut expected = 0;
        for i in 0..3000usize {
            let (start, end) = starts.span(i, at);
            assert_eq!(start, expected);
            assert_eq!(end, start + 100 + (i as u64) % 7 - 1);
            expected = end + 1;
        }
        assert_eq!(starts.span(3000, at), (at, at));
    }
}
