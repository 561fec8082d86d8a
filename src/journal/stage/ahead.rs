//! A long append written to the journal while it is still being decided.
//!
//! Staged in a spool, every line of a long batch was copied three times
//! before its commit could end (into the spool, back out, into the
//! journal), and hashed only once the last command was decided. When the
//! number of lines is known in advance (a batch counts its commands), the
//! first line's mark can be written before the rest are decided: each
//! buffer's worth of staged lines is then sealed and appended by a thread
//! of its own while the next lines are decided.
//!
//! Why this keeps the journal's rules (SPEC 2):
//! - Readers take the shared lock, which this writer holds exclusively
//!   until it has synced: they never see the lines before the commit.
//! - The line that would complete the count is never written before the
//!   commit: until then, the append has fewer complete lines than its
//!   mark, a torn tail if a crash leaves it, and every line written is a
//!   valid one (right seq, right `prev`).
//! - A refusal, or a count that turns out wrong (a repeated `--id`
//!   appends nothing), cuts the journal back to where the append began;
//!   for a wrong count, the lines written go to the spool first, as
//!   staged, and the append goes on the way every other one does.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use super::{Sealer, each_chunk, spool_error, syncing_as_written};
use crate::journal::JournalError;
use crate::journal::sidecar::{self, Owner};
use crate::threads;

/// An append to write ahead of its commit, expected to have `lines`
/// lines; nothing is written until its first buffer is full.
pub(in crate::journal) struct Ahead {
    lines: usize,
    journal: File,
    /// Where the append starts in the journal.
    len: u64,
    path: PathBuf,
    owner: Owner,
    /// Bytes of the sealed append before its first line (a new journal's
    /// header), and of the first line's mark.
    header: u64,
    mark: u64,
    run: Run,
}

enum Run {
    /// Not started: the sealer it will start with.
    Planned(Sealer),
    Writing(Writing),
    /// Finished or given up: the journal holds none of it, or all.
    Over,
}

/// What became of a buffer handed to an [`Ahead`].
pub(super) enum Handed {
    /// Taken to be written: an empty buffer to stage into.
    Taken(Vec<u8>),
    /// Given back, nothing written: the writing could not start (the OS
    /// gave no thread, or no second handle on the journal), and the
    /// append goes the way of every other, through a spool.
    Refused(Vec<u8>),
}

/// The thread that seals and appends handed buffers, and what the
/// staging side keeps of them.
struct Writing {
    buffers: SyncSender<Vec<u8>>,
    /// Buffers back from the thread, to fill again.
    free: Receiver<Vec<u8>>,
    progress: Arc<Progress>,
    thread: JoinHandle<Result<Sealer, JournalError>>,
    /// The first line as staged (with its `\n`): should the count turn
    /// out wrong, the lines written go back to the spool as staged, and
    /// only the first differs (by its mark).
    first: Vec<u8>,
}

impl Ahead {
    /// An append of `lines` lines at `len` in `journal` (at `path`, owned
    /// as `owner` says), sealed by `sealer`, which must count `lines`.
    pub(in crate::journal) fn new(
        journal: File,
        len: u64,
        lines: usize,
        sealer: Sealer,
        (path, owner): (&Path, Owner),
    ) -> Ahead {
        let (header, mark) = sealer.lengths();
        Ahead {
            lines,
            journal,
            len,
            path: path.to_owned(),
            owner,
            header,
            mark,
            run: Run::Planned(sealer),
        }
    }

    /// How many lines the append is expected to have.
    pub(super) fn lines(&self) -> usize {
        self.lines
    }

    /// Whether lines were written.
    pub(super) fn started(&self) -> bool {
        matches!(self.run, Run::Writing(_))
    }

    /// Hands the staged lines of `buffer` (after `room` bytes of room; the
    /// first of them the append's first line if nothing was handed yet)
    /// to be sealed and appended, and gives back an empty buffer to stage
    /// into; or, if the writing could not start, `buffer` itself. On a
    /// failure the journal is cut back.
    pub(super) fn hand(&mut self, buffer: Vec<u8>, room: usize) -> Result<Handed, JournalError> {
        // `Over`, should the thread fail to start.
        self.run = match std::mem::replace(&mut self.run, Run::Over) {
            Run::Planned(sealer) => {
                let lines = &buffer[room..];
                let first = memchr::memchr(b'\n', lines).map_or(lines, |end| &lines[..=end]);
                match self.start(sealer, room, first.to_vec()) {
                    Ok(writing) => Run::Writing(writing),
                    Err(_) => return Ok(Handed::Refused(buffer)),
                }
            }
            run => run,
        };
        // Over: finished or given up, the journal may hold some of it,
        // which lines handed now would no longer follow.
        let Run::Writing(writing) = &self.run else {
            return Err(self.stopped());
        };
        if writing.buffers.send(buffer).is_err() {
            // The thread stopped at an error, which joining gives.
            return Err(self.stop().err().unwrap_or_else(|| self.stopped()));
        }
        let mut next = writing.free.try_recv().unwrap_or_default();
        next.clear();
        next.resize(room, 0);
        Ok(Handed::Taken(next))
    }

    fn start(
        &self,
        mut sealer: Sealer,
        room: usize,
        first: Vec<u8>,
    ) -> Result<Writing, JournalError> {
        let (buffers, to_seal) = mpsc::sync_channel::<Vec<u8>>(1);
        let (back, free) = mpsc::channel();
        let progress = Arc::new(Progress::default());
        let journal = self
            .journal
            .try_clone()
            .map_err(|e| JournalError::io(&self.path, "write", e))?;
        let (path, done) = (self.path.clone(), Arc::clone(&progress));
        let thread = threads::spawn("append ahead", move || {
            // However the thread ends, a reader waiting for its lines
            // is told, with why.
            let mut ending = Ending(&done, Some("the thread writing the append stopped".into()));
            let written = syncing_as_written(&journal, &path, |emit| {
                for mut buffer in to_seal {
                    let end = buffer.len();
                    let begin = sealer.seal(&mut buffer, room, end);
                    emit(&buffer[begin..])?;
                    done.advance((end - room) as u64);
                    // Gone once staging has finished.
                    let _ = back.send(buffer);
                }
                Ok(())
            });
            ending.1 = written.as_ref().err().map(ToString::to_string);
            written.map(|()| sealer)
        })
        .map_err(|e| JournalError::io(&self.path, "write", e))?;
        Ok(Writing {
            buffers,
            free,
            progress,
            thread,
            first,
        })
    }

    /// Waits until the staged bytes before `end` are in the journal, and
    /// gives where the append's sealed bytes begin there and the lengths
    /// of its header and mark; or why the writing stopped short.
    pub(super) fn written(&self, end: u64) -> Result<(u64, u64, u64), String> {
        let Run::Writing(writing) = &self.run else {
            return Err("the append is not being written".into());
        };
        writing.progress.wait(end)?;
        Ok((self.len, self.header, self.mark))
    }

    /// Hands the last staged lines (of `buffer`, after `room`) and waits
    /// for every line to be written: the sealer then holds the last hash
    /// and the lengths of the header and mark. The caller syncs. On a
    /// failure the journal is cut back.
    pub(super) fn finish(&mut self, buffer: Vec<u8>, room: usize) -> Result<Sealer, JournalError> {
        match self.hand(buffer, room)? {
            Handed::Taken(_) => self.stop(),
            // Not started, so not to be finished: the caller checks.
            Handed::Refused(_) => Err(self.stopped()),
        }
    }

    /// Stops the thread once it has written what it was handed, and gives
    /// its sealer; on its error, cuts the journal back.
    fn stop(&mut self) -> Result<Sealer, JournalError> {
        let Run::Writing(Writing {
            buffers, thread, ..
        }) = std::mem::replace(&mut self.run, Run::Over)
        else {
            return Err(self.stopped());
        };
        drop(buffers);
        let sealed = thread.join().unwrap_or_else(|_| Err(self.stopped()));
        if sealed.is_err() {
            self.cut_back();
        }
        sealed
    }

    fn stopped(&self) -> JournalError {
        let e = std::io::Error::other("the thread writing the append stopped");
        JournalError::io(&self.path, "write", e)
    }

    /// Cuts the journal back to where the append began. If that fails
    /// too, what is left is fewer lines than the mark counts: a torn tail.
    fn cut_back(&self) {
        let _ = self.journal.set_len(self.len);
    }

    /// Gives up writing ahead: the lines written (`handed` bytes of them,
    /// as staged) are copied, as staged, to a new spool, which is
    /// returned, and the journal is cut back. `None` if nothing was
    /// written.
    pub(super) fn into_spool(mut self, handed: u64) -> Result<Option<File>, JournalError> {
        let first = match &self.run {
            Run::Writing(writing) => writing.first.clone(),
            _ => return Ok(None),
        };
        self.stop()?;
        let spool = sidecar::create_spool(&self.path, self.owner)
            .map_err(|e| spool_error(&self.path, e))?;
        let copied = spool
            .write_all_at(&first, 0)
            .map_err(|e| spool_error(&self.path, e));
        // The lines after the first are as they were staged but for their
        // `prev`, which sealing writes again.
        let from = self.len + self.header + self.mark + first.len() as u64;
        let to = self.len + self.header + self.mark + handed;
        let mut at = first.len() as u64;
        let copied = copied.and_then(|()| {
            each_chunk(&self.journal, from, to, |lines| {
                spool.write_all_at(lines, at)?;
                at += lines.len() as u64;
                Ok(())
            })
            .map_err(|e| match e {
                Ok(e) | Err(e) => spool_error(&self.path, e),
            })
        });
        self.cut_back();
        copied.map(|()| Some(spool))
    }
}

impl Drop for Ahead {
    /// An append dropped before it finished (refused, or given up on an
    /// error) leaves the journal as it was.
    fn drop(&mut self) {
        // A failed thread's lines were cut back as it was joined.
        if let Run::Writing(_) = self.run
            && self.stop().is_ok()
        {
            self.cut_back();
        }
    }
}

/// How many staged bytes the thread has written, and once it has ended,
/// why, if it failed.
#[derive(Default)]
struct Progress {
    done: Mutex<(u64, Option<Option<String>>)>,
    changed: Condvar,
}

impl Progress {
    fn advance(&self, bytes: u64) {
        if let Ok(mut done) = self.done.lock() {
            done.0 += bytes;
        }
        self.changed.notify_all();
    }

    fn end(&self, failure: Option<String>) {
        if let Ok(mut done) = self.done.lock() {
            done.1 = Some(failure);
        }
        self.changed.notify_all();
    }

    /// Waits until `bytes` are written; if the thread ends first, why.
    fn wait(&self, bytes: u64) -> Result<(), String> {
        let poisoned = || "the thread writing the append failed".to_owned();
        let mut done = self.done.lock().map_err(|_| poisoned())?;
        while done.0 < bytes && done.1.is_none() {
            done = self.changed.wait(done).map_err(|_| poisoned())?;
        }
        match &done.1 {
            _ if done.0 >= bytes => Ok(()),
            Some(Some(failure)) => Err(failure.clone()),
            _ => Err(poisoned()),
        }
    }
}

/// Ends a [`Progress`] when dropped, with the failure it holds.
struct Ending<'p>(&'p Progress, Option<String>);

impl Drop for Ending<'_> {
    fn drop(&mut self) {
        self.0.end(self.1.take());
    }
}
