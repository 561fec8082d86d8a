//! The journal file: where it lives, locking, replay, torn-tail repair and
//! durable appends (SPEC 2). The rules themselves are in [`crate::domain`];
//! this layer only moves bytes and keeps the chain.

pub mod backing;
pub mod line;
mod net;
pub mod pg;
pub mod scan;
pub mod sidecar;
mod stage;

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use rustc_hash::FxHashSet;
use std::borrow::Cow;
use std::sync::LazyLock;

use crate::domain::{self, Command, Decision, Original, Rejection, Request, State};
use crate::event::Event;
use crate::money::Amount;
use crate::readmodel::{AppendedIds, IdAt, MODEL_AFTER_BYTES, ModelError, ReadModel, Unfolded};
use crate::time::At;
use backing::Backing;
use line::{LineHash, MAX_LINE};
use pg::Db;
use scan::{Head, Replay, Scanner, Start, Torn};
use sidecar::Owner;
use stage::{Sink, Stage};

/// What can go wrong with the journal file.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// A line that is not valid: the journal is corrupt.
    #[error("{path}: line {line}: {reason}")]
    Corrupt {
        /// The journal.
        path: PathBuf,
        /// The file line number (header = 1).
        line: u64,
        /// What is wrong.
        reason: String,
    },
    /// The file does not start with a ledger header.
    #[error(
        "{0} is not a ledger journal (its first line is not a ledger header); refusing to touch it"
    )]
    NotAJournal(PathBuf),
    /// A journal that must exist does not.
    #[error("no journal at {0}")]
    Missing(PathBuf),
    /// The operating system refused.
    #[error("cannot {action} {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What was being done.
        action: &'static str,
        /// Why it failed.
        source: io::Error,
    },
    /// The read model failed while a replay loaded from it. Callers fall
    /// back to a full replay, so this never reaches the user.
    #[error(transparent)]
    Model(#[from] crate::readmodel::ModelError),
    /// A copy's destination already holds events.
    #[error(
        "{0} already holds events: a journal is copied only into a new or empty one; nothing written"
    )]
    NotEmpty(PathBuf),
    /// A copy's destination is its source, by another name or a link.
    #[error("{0} is both the source and the destination of the copy; nothing written")]
    CopyOntoItself(PathBuf),
    /// The journal's database failed or refused.
    #[error("cannot {action} {path}: {reason}")]
    Database {
        /// The database, shown without a password.
        path: PathBuf,
        /// What was being done.
        action: &'static str,
        /// Why it failed.
        reason: String,
    },
    /// The database refused a write for another's that conflicted with
    /// it (a serialization failure or a deadlock): nothing was written,
    /// and the write may be tried again.
    #[error("cannot {action} {path}: {reason} (a conflicting write; nothing was written)")]
    Conflict {
        /// The database, shown without a password.
        path: PathBuf,
        /// What was being done.
        action: &'static str,
        /// The server's words.
        reason: String,
    },
    /// No database server answered.
    #[error("cannot reach the PostgreSQL server at {server} for {path}: {reason}")]
    Unreachable {
        /// The database, shown without a password.
        path: PathBuf,
        /// The host and port tried.
        server: String,
        /// Why it failed.
        reason: String,
    },
    /// The connection to the database was lost while committing.
    #[error(
        "cannot commit to {path}: {reason}; the outcome of this write is unknown (re-running it with the same --id is safe)"
    )]
    CommitUnknown {
        /// The database, shown without a password.
        path: PathBuf,
        /// Why it failed.
        reason: String,
    },
    /// The lines were written but not confirmed durable.
    #[error(
        "cannot sync {path}: {source}; the outcome of this write is unknown (re-running it with the same --id is safe)"
    )]
    SyncFailed {
        /// The journal.
        path: PathBuf,
        /// Why it failed.
        source: io::Error,
    },
}

impl JournalError {
    /// An I/O failure while doing `action` on `path`.
    pub fn io(path: &Path, action: &'static str, source: io::Error) -> JournalError {
        JournalError::Io {
            path: path.to_owned(),
            action,
            source,
        }
    }
}

/// The journal path: `--file`, else `LEDGER_JOURNAL` (clap reads it into
/// `file`), else `journal.jsonl` in the platform data directory.
pub fn resolve_path(file: Option<PathBuf>) -> Result<PathBuf, JournalError> {
    if let Some(file) = file {
        if let Some(url) = file.to_str().filter(|f| pg::is_location(f)) {
            return Ok(pg::name(url));
        }
        return Ok(file);
    }
    directories::ProjectDirs::from("", "", "ledger")
        .map(|dirs| dirs.data_dir().join("journal.jsonl"))
        .ok_or_else(|| {
            JournalError::io(
                Path::new("~"),
                "find the home directory for",
                io::Error::new(io::ErrorKind::NotFound, "no home directory; pass --file"),
            )
        })
}

/// Whether `a` and `b` name one existing file, through a link or another
/// path: a command that writes a file of its own (`copy`'s destination,
/// `chart --out`) must not write over the journal it reads.
pub fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (fs::metadata(a), fs::metadata(b)) {
        (Ok(a), Ok(b)) => (a.dev(), a.ino()) == (b.dev(), b.ino()),
        _ => false,
    }
}

/// A journal opened for reading, under a shared lock (released on drop).
pub struct ReadJournal {
    file: Backing,
    path: PathBuf,
    len: u64,
    start: Start,
    owner: Owner,
    /// The file's, as opened (a database has none).
    meta: Option<fs::Metadata>,
}

/// What a reader can cheaply tell about the file as it opened it: equal
/// stamps mean that nothing was written in between (see
/// [`ReadJournal::stamp`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamp {
    inode: (u64, u64),
    len: u64,
    modified: (i64, i64),
    changed: (i64, i64),
    /// The file's last bytes: timestamps are only as fine as the kernel's
    /// clock tick, and within one tick a writer could cut a torn tail and
    /// append as many bytes; its last bytes would then differ.
    tail: Vec<u8>,
}

impl ReadJournal {
    /// Opens the journal at `path` for reading; `None` if there is none.
    pub fn open(path: &Path) -> Result<Option<ReadJournal>, JournalError> {
        ReadJournal::open_on(path, None)
    }

    /// [`ReadJournal::open`], on `connection` when the journal is in a
    /// database and a reader before gave it back
    /// ([`ReadJournal::into_connection`]) still open: a follower's rounds
    /// then connect once.
    pub fn open_on(
        path: &Path,
        connection: Option<Db>,
    ) -> Result<Option<ReadJournal>, JournalError> {
        let reused = connection.filter(|db| !db.is_closed()).map(|db| {
            db.rollback();
            Ok(db)
        });
        if let Some(db) = reused.or_else(|| Db::connect(path)) {
            let db = db?;
            let Some(len) = db.begin_read()? else {
                return Ok(None);
            };
            let file = Backing::Db(Rc::new(db));
            let start = scan::read_start(&file, path, len)?;
            return Ok(Some(ReadJournal {
                file,
                path: path.to_owned(),
                len,
                start,
                owner: Owner::me(),
                meta: None,
            }));
        }
        let file = match OpenOptions::new()
            .read(true)
            .custom_flags(sidecar::no_block())
            .open(path)
        {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(JournalError::io(path, "open", e)),
        };
        let owner = Owner::of(&regular(&file, path)?);
        file.lock_shared()
            .map_err(|e| JournalError::io(path, "lock", e))?;
        let meta = file
            .metadata()
            .map_err(|e| JournalError::io(path, "read", e))?;
        let len = meta.len();
        let file = Backing::File(file);
        let start = scan::read_start(&file, path, len)?;
        Ok(Some(ReadJournal {
            file,
            path: path.to_owned(),
            len,
            start,
            owner,
            meta: Some(meta),
        }))
    }

    /// The database connection, for the next reader to open on; `None`
    /// for a file.
    pub fn into_connection(self) -> Option<Db> {
        match self.file {
            Backing::Db(db) => Rc::try_unwrap(db).ok(),
            Backing::File(_) => None,
        }
    }

    /// A scanner over every event, or `None` for a journal with no header yet.
    pub fn scanner(&self) -> Option<Scanner<'_>> {
        match &self.start {
            Start::Header(head) => Some(Scanner::new(&self.file, &self.path, *head, self.len)),
            Start::Empty(_) => None,
        }
    }

    /// A scanner over the events after `head` (the header's head or a
    /// checkpoint's).
    pub fn scanner_from(&self, head: Head) -> Scanner<'_> {
        Scanner::new(&self.file, &self.path, head, self.len)
    }

    /// A scanner over the events after `head` that reads no further than
    /// byte `end` (nor past the file's length): a line or a multi-event
    /// append that crosses `end` is left for a later scan, like a torn tail.
    pub fn scanner_until(&self, head: Head, end: u64) -> Scanner<'_> {
        Scanner::new(&self.file, &self.path, head, end.min(self.len))
    }

    /// Releases the shared lock early. The bytes up to the end of the last
    /// complete append seen under it never change (writers only append, and
    /// only remove a torn tail after that end), so they may still be read.
    pub fn unlock(&self) -> Result<(), JournalError> {
        // A database reader holds a snapshot, not a lock.
        let Some(file) = self.file.file() else {
            return Ok(());
        };
        file.unlock()
            .map_err(|e| JournalError::io(&self.path, "unlock", e))
    }

    /// The torn header of a journal with no complete header.
    pub fn torn_header(&self) -> Option<Torn> {
        match &self.start {
            Start::Empty(torn) => *torn,
            Start::Header(_) => None,
        }
    }

    /// The journal's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What holds the journal's bytes, for reading lines at known
    /// offsets (the read model's head and history index).
    pub fn file(&self) -> &Backing {
        &self.file
    }

    /// The file as this reader opened it, for telling later whether it has
    /// changed without reading it (a follower facing a long torn tail).
    pub fn stamp(&self) -> Result<Stamp, JournalError> {
        const TAIL: u64 = 4096;
        let from = self.len.saturating_sub(TAIL);
        let mut tail = vec![0u8; usize::try_from(self.len - from).unwrap_or(0)];
        self.file
            .read_exact_at(&mut tail, from)
            .map_err(|e| JournalError::io(&self.path, "read", e))?;
        // A database's lines never change once committed: its length says it all.
        let Some(m) = &self.meta else {
            return Ok(Stamp {
                inode: (0, 0),
                len: self.len,
                modified: (0, 0),
                changed: (0, 0),
                tail,
            });
        };
        Ok(Stamp {
            inode: (m.dev(), m.ino()),
            len: self.len,
            modified: (m.mtime(), m.mtime_nsec()),
            changed: (m.ctime(), m.ctime_nsec()),
            tail,
        })
    }

    /// Who owns the journal, and so its sidecars.
    pub fn owner(&self) -> Owner {
        self.owner
    }

    /// The file's length when it was opened.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the file was empty when it was opened.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The journal's read model (created if missing), and the head it
    /// covers if it covers a prefix of the journal as this reader sees it;
    /// `None` without a header or if the model cannot be used.
    ///
    /// Also `None` for a database's journal shorter than
    /// [`MODEL_AFTER_BYTES`]: it is read whole, as a file that short is
    /// (no command makes it a model), so that a line edited in it fails
    /// every read before anything is printed, on both backends alike, for
    /// reading at most a MiB.
    pub fn model(&self) -> Option<(ReadModel, Option<Head>)> {
        if matches!(self.file, Backing::Db(_)) && self.len < MODEL_AFTER_BYTES {
            return None;
        }
        let header = self.header_head()?;
        let model = match &self.file {
            Backing::File(_) => ReadModel::open(&self.path, self.owner)?,
            Backing::Db(db) => ReadModel::in_database(Rc::clone(db)),
        };
        let covers = model.covers(&self.file, header, self.len);
        Some((model, covers))
    }

    /// The header line with its `\n`, if the journal has one.
    pub fn header_line(&self) -> Result<Option<Vec<u8>>, JournalError> {
        let Some(head) = self.header_head() else {
            return Ok(None);
        };
        let mut line = vec![0; usize::try_from(head.end).unwrap_or(0)];
        self.file
            .read_exact_at(&mut line, 0)
            .map_err(|e| JournalError::io(&self.path, "read", e))?;
        Ok(Some(line))
    }

    /// The head after the header, if there is one.
    pub fn header_head(&self) -> Option<Head> {
        match &self.start {
            Start::Header(head) => Some(*head),
            Start::Empty(_) => None,
        }
    }
}

/// The state at a journal's valid end, as a command reads it.
pub struct Read {
    /// The state: whole, or (when `from` is set) the part loaded so far.
    pub state: State,
    /// The head at the valid end; `None` without a header.
    pub head: Option<Head>,
    /// A torn tail after it.
    pub torn: Option<Torn>,
    /// The read model's head the state was loaded from, if it was.
    pub from: Option<Head>,
    /// For a whole state read from a file, the keys of the ids it knows
    /// only by fingerprint ([`Replay::keeping_id_keys`]): what the model
    /// it rebuilds holds (none for any other state); `None` if they could
    /// not be worked out.
    pub keys: Option<AppendedIds>,
}

impl Read {
    fn empty(torn: Option<Torn>) -> Read {
        Read {
            state: State::default(),
            head: None,
            torn,
            from: None,
            keys: Some(AppendedIds::default()),
        }
    }
}

/// Reads the state at the end of the journal (`file`, `len` bytes of it,
/// `header` the head after its header line): from the read model when it
/// covers a prefix of the journal, replaying the lines after it; else by
/// replaying every line.
pub fn read_state(
    file: &Backing,
    path: &Path,
    header: Head,
    len: u64,
    model: Option<&ReadModel>,
) -> Result<Read, JournalError> {
    let covered = model.and_then(|m| Some((m, m.covers(file, header, len)?)));
    let run = |mut replay: Replay<'_>| {
        replay.run()?;
        let keys = replay.id_keys();
        Ok((replay.finish(), keys))
    };
    let scan = |from| Scanner::new(file, path, from, len);
    // A long file's whole state keeps its ids as fingerprints, each
    // settled from its line when a request names it, and their keys for
    // the model it rebuilds: by name, 4,000,000 ids took a writer about
    // 250 MB. A short one, which keeps no model, knows its few ids by
    // name; a database's writer writes its query tables from the names.
    let by_prints = matches!(file, Backing::File(_)) && len >= MODEL_AFTER_BYTES;
    let whole = |scanner| match by_prints {
        true => Replay::keeping_id_keys(scanner),
        false => Replay::new(scanner, State::default()),
    };
    let (((state, head, torn), keys), from) =
        from_model_or_start(header, covered, ReadModel::base, (scan, whole), run)?;
    Ok(Read {
        state,
        head: Some(head),
        torn,
        // Only a whole state by fingerprints needs its keys worked out.
        keys: match (from, by_prints) {
            (None, true) => keys,
            _ => Some(AppendedIds::default()),
        },
        from,
    })
}

/// Runs `run` over the lines after the read model's head, on the state
/// `base` loads at that head, when `model` is given with the head it
/// covers; else, or if the model fails midway, over every line after
/// `header` on an empty state. A model damaged in a way its checks miss
/// may make good lines look wrong (an account it lost), so a line found
/// corrupt from the model is judged again by the full replay. Returns what
/// `run` returned, and the model's head if it ran from there. `scan` makes
/// the scanner from a head; `whole`, the replay of every line from its
/// scanner (on an empty state, [`Replay::new`], or
/// [`Replay::keeping_id_keys`] for a state that rebuilds the model).
pub fn from_model_or_start<'f, T>(
    header: Head,
    model: Option<(&'f ReadModel, Head)>,
    base: impl FnOnce(&ReadModel, Head) -> Result<State, crate::readmodel::ModelError>,
    (scan, whole): (
        impl Fn(Head) -> Scanner<'f>,
        impl FnOnce(Scanner<'f>) -> Replay<'f>,
    ),
    mut run: impl FnMut(Replay<'f>) -> Result<T, JournalError>,
) -> Result<(T, Option<Head>), JournalError> {
    if let Some((model, from)) = model {
        let tail = base(model, from)
            .map_err(JournalError::from)
            .and_then(|state| run(Replay::with_model(scan(from), state, model)));
        match tail {
            Ok(done) => return Ok((done, Some(from))),
            Err(JournalError::Model(_) | JournalError::Corrupt { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    Ok((run(whole(scan(header)))?, None))
}

/// The metadata of the open journal, which must be a regular file: a FIFO,
/// socket or device at the journal's path is refused rather than waited on
/// or read without end. (It was opened with `O_NONBLOCK`, so the open
/// itself never waited.)
fn regular(file: &File, path: &Path) -> Result<fs::Metadata, JournalError> {
    let meta = file
        .metadata()
        .map_err(|e| JournalError::io(path, "read", e))?;
    if meta.file_type().is_file() {
        return Ok(meta);
    }
    Err(JournalError::io(
        path,
        "use",
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "it is not a regular file (a FIFO, socket, device or directory); a journal is a file",
        ),
    ))
}

/// A journal opened for writing: exclusively locked from the read of its
/// state until the end of [`Writer::commit`].
pub struct Writer {
    file: Backing,
    path: PathBuf,
    state: State,
    /// `None` when the file has no header yet.
    head: Option<Head>,
    /// The length of the valid journal (after any torn tail was removed).
    len: u64,
    /// A torn tail found on open, removed by `commit` just before it writes
    /// (so that a refused command leaves the file byte for byte as it was).
    torn: Option<Torn>,
    at: At,
    /// The encoded new lines, their `prev` and batch mark filled in by
    /// sealing them.
    stage: Stage,
    encoder: line::Encoder,
    /// `Some` if this writer created the file: then also the first
    /// directory it created, if any.
    created: Option<Option<PathBuf>>,
    /// Who owns the journal (and so its sidecars).
    owner: Owner,
    /// Whether `commit` wrote.
    committed: bool,
    /// Whether what `commit` wrote is synced.
    synced: bool,
    /// The read model, written back once the journal is synced.
    model: Option<ReadModel>,
    /// The head the read model covered when `state` was loaded from it
    /// (`state` is then partial: each request loads what it reads); `None`
    /// when `state` was folded from the journal's start.
    from: Option<Head>,
    /// Set when the writer gave up the read model ([`Writer::fall_back`])
    /// with events staged: the head up to which its whole state was
    /// decided. The events staged before were decided against the model's
    /// rows, which a lost row can mislead, so the rebuilt model must not
    /// record them as decided (see [`ReadModel::checked`]).
    decided_whole: Option<Head>,
    /// The head after the header line.
    header: Option<Head>,
    /// The head after the last staged line, once sealed.
    sealed_head: Option<Head>,
    /// The net change of each account the staged events touch, and
    /// whether they created it.
    net: net::Net,
    /// The ids of the staged events, for the read model beside a file
    /// (the state knows them only by fingerprint).
    appended: AppendedIds,
    /// The last line read to check an id's row in the read model, with
    /// its seq: the repeat that id is found to be reads it again.
    id_line: Option<(u64, Vec<u8>)>,
    /// Whether the state was written back to the read model (by the
    /// commit): the drop must not write it again, `appended` handed over.
    model_saved: bool,
    /// Whether the read model's log is folded by the caller, after the
    /// unlock ([`Writer::fold_later`]), and the model written back with
    /// its log left long.
    fold_later: bool,
    unfolded: Option<Unfolded>,
    /// How many accounts the partial state may hold before the writer
    /// asks whether to load every account at once (see
    /// [`Writer::load_every_account_if_most`]); `None` once it has.
    accounts_next_look: Option<usize>,
}

/// Accounts a writer on a file's read model loads one at a time before it
/// first asks whether to load them all (a few in unit tests, so that
/// their writers take both ways).
const ACCOUNTS_ONE_BY_ONE: usize = if cfg!(test) { 4 } else { 65_536 };

impl Drop for Writer {
    fn drop(&mut self) {
        // Lines written ahead of a commit that never came go first, so
        // that a journal this writer created is found empty and removed.
        self.stage.abandon();
        self.save_model();
        self.discard_unused();
        if let Some(unfolded) = self.unfolded.take() {
            unfolded.fold();
        }
    }
}

impl Writer {
    /// A write that appended nothing (refused, a repeat, a dry run) leaves no
    /// trace: the file and directories it created are removed, still under
    /// the lock. A process waiting for that lock then finds the path gone or
    /// replaced and opens it afresh (see `open_locked`).
    fn discard_unused(&mut self) {
        if let Some(new_dirs) = self.created.take()
            && !self.committed
            && let Some(file) = self.file.file()
            && file.metadata().is_ok_and(|m| m.len() == 0)
        {
            let _ = fs::remove_file(&self.path);
            if let Some(top) = new_dirs {
                for dir in self.path.ancestors().skip(1) {
                    if fs::remove_dir(dir).is_err() || dir == top {
                        break;
                    }
                }
            }
        }
    }
}

/// What a request came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A new event, at this seq.
    Appended(u64),
    /// A repeat of the command already recorded at this seq.
    Repeat(u64),
}

impl Writer {
    /// Opens (creating if needed) and locks the journal and reads its state.
    pub fn open(path: &Path) -> Result<Writer, JournalError> {
        if let Some(db) = Db::connect(path) {
            return Writer::open_db(path, db?);
        }
        // The first missing ancestor, so that a write that ends up appending
        // nothing can remove what it created.
        let mut new_dirs = None;
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            new_dirs = parent
                .ancestors()
                .take_while(|d| !d.as_os_str().is_empty() && !d.exists())
                .last()
                .map(Path::to_owned);
        }
        let (file, created) = open_locked(path)?;
        let meta = file
            .metadata()
            .map_err(|e| JournalError::io(path, "read", e))?;
        let (len, owner) = (meta.len(), Owner::of(&meta));
        // Another writer may have locked first and written: then the file
        // is not this writer's to remove, whoever created it.
        let created = created && len == 0;
        let mut model = None;
        let file = Backing::File(file);
        let (read, header) = match scan::read_start(&file, path, len)? {
            Start::Empty(torn) => (Read::empty(torn), None),
            Start::Header(header) => {
                model = ReadModel::open(path, owner);
                (
                    read_state(&file, path, header, len, model.as_ref())?,
                    Some(header),
                )
            }
        };
        let created = created.then_some(new_dirs);
        Writer::new(file, path, read, (header, model), (created, owner))
    }

    /// A writer on a journal in a database: its head row locked until the
    /// transaction ends (committed, or rolled back by `unlock` or drop).
    fn open_db(path: &Path, db: Db) -> Result<Writer, JournalError> {
        db.prepare_ahead(crate::readmodel::DATABASE_WRITE_STATEMENTS);
        let locked = db.begin_write()?;
        let db = Rc::new(db);
        let model = ReadModel::in_database(Rc::clone(&db));
        let file = Backing::Db(db);
        let (read, header) = match scan::read_start(&file, path, locked.len)? {
            Start::Empty(torn) => (Read::empty(torn), None),
            Start::Header(header) => (
                read_state(&file, path, header, locked.len, Some(&model))?,
                Some(header),
            ),
        };
        // A database with no header yet gets one with this write: the
        // journal is created, as a new file is.
        let created = (locked.len == 0).then_some(None);
        Writer::new(
            file,
            path,
            read,
            (header, Some(model)),
            (created, Owner::me()),
        )
    }

    fn new(
        file: Backing,
        path: &Path,
        read: Read,
        (header, model): (Option<Head>, Option<ReadModel>),
        (created, owner): (Option<Option<PathBuf>>, Owner),
    ) -> Result<Writer, JournalError> {
        let Read {
            mut state,
            head,
            torn,
            from,
            keys,
        } = read;
        // A model rebuilt from a whole state without its ids' keys (the
        // thread that works them out failed) would take a repeat for new.
        let (model, appended) = match keys {
            Some(keys) => (model, keys),
            None => (None, AppendedIds::default()),
        };
        // A writer on a file's read model takes the model's ids a bucket
        // at a time, as fingerprints by key: a batch of a million ids
        // reads each bucket once, not once an id.
        match (&file, &model, from) {
            (Backing::File(_), Some(_), Some(_)) => state.fingerprint_new_ids_by_key(),
            _ => state.fingerprint_new_ids(),
        }
        // `at` never decreases along the journal, even if the clock steps back.
        let now = At::now().map_err(clock_error)?;
        let at = head.map_or(now, |h| h.at.max(now));
        let room = line::MARK_MAX_LEN
            + if head.is_none() {
                line::header(at).len() + 1
            } else {
                0
            };
        Ok(Writer {
            at,
            len: head.map_or(0, |h| h.end),
            file,
            path: path.to_owned(),
            state,
            head,
            torn,
            stage: Stage::new(room),
            encoder: line::Encoder::default(),
            created,
            committed: false,
            synced: false,
            owner,
            model,
            from,
            decided_whole: None,
            header,
            sealed_head: None,
            net: net::Net::default(),
            appended,
            id_line: None,
            model_saved: false,
            fold_later: false,
            unfolded: None,
            accounts_next_look: Some(ACCOUNTS_ONE_BY_ONE),
        })
    }

    /// Keeps the file this writer created though it appends nothing (it
    /// would be removed, as by a refused write): the copy of an empty
    /// journal is an empty file.
    pub fn keep_created(&mut self) {
        self.created = None;
    }

    /// Whether this writer created the journal and committed to it.
    pub fn created_journal(&self) -> bool {
        self.created.is_some() && self.committed
    }

    /// Releases the lock once this writer is done with the file (committed,
    /// or with nothing to commit), so that printing its results into a slow
    /// reader holds no other command up. What it appended stays readable:
    /// bytes before the end of the last complete append never change.
    pub fn unlock(&mut self) -> Result<(), JournalError> {
        self.save_model();
        self.discard_unused();
        match &self.file {
            Backing::File(file) => file
                .unlock()
                .map_err(|e| JournalError::io(&self.path, "unlock", e)),
            // A commit ended the transaction holding the head's lock;
            // with nothing committed, it ends here.
            Backing::Db(db) => {
                if !self.committed {
                    db.rollback();
                }
                Ok(())
            }
        }
    }

    /// The state of the ledger, including requests decided so far.
    pub fn state(&self) -> &State {
        &self.state
    }

    /// The torn tail that [`Writer::commit`] removes (or removed).
    pub fn torn(&self) -> Option<Torn> {
        self.torn
    }

    /// The journal's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn remove_torn(&self, torn: Torn) -> Result<(), JournalError> {
        // Only a file can have a torn tail: a database commits whole.
        let Backing::File(file) = &self.file else {
            return Ok(());
        };
        if torn.len > 0 {
            let mut quarantine = self.path.clone().into_os_string();
            quarantine.push(".torn");
            let quarantine = PathBuf::from(quarantine);
            // Only writers touch it, under the journal's lock; but anyone
            // who can write the directory may have put something there.
            let (q, created) = sidecar::open_to_append(&quarantine, self.owner)
                .map_err(|e| JournalError::io(&quarantine, "keep the interrupted write in", e))?;
            let before = q
                .metadata()
                .map_err(|e| JournalError::io(&quarantine, "open", e))?
                .len();
            let mut last = [0u8];
            read_exact_at(file, &self.path, &mut last, torn.offset + torn.len - 1)?;
            // A line cut short is kept with a `\n` after it.
            let newline = last[0] != b'\n';
            let kept = torn.len + u64::from(newline);
            // A quarantine whose journal could not then be cut is retried
            // by the next writer: the bytes are already there once.
            let already = before >= kept
                && self.quarantined_at(file, (&q, &quarantine), before - kept, torn, newline)?;
            if already {
                // Durable even if the attempt that copied them failed to sync.
                q.sync_data()
                    .map_err(|e| JournalError::io(&quarantine, "write", e))?;
            } else if let Err(e) = self.quarantine_to(file, (&q, &quarantine), torn, newline) {
                // Leave no partial copy for the retry to add to.
                let _ = q.set_len(before);
                return Err(e);
            }
            if created {
                // A new file's directory entry must be durable before the
                // bytes it keeps are cut from the journal.
                let dir = parent_of(&quarantine);
                File::open(dir)
                    .and_then(|d| d.sync_all())
                    .map_err(|e| JournalError::io(dir, "sync directory", e))?;
            }
        }
        file.set_len(torn.offset)
            .and_then(|()| file.sync_data())
            .map_err(|e| JournalError::io(&self.path, "truncate", e))?;
        Ok(())
    }

    /// Appends the torn bytes (and a `\n` if they lack one) to the
    /// quarantine file `q`, and makes them durable.
    fn quarantine_to(
        &self,
        journal: &File,
        (mut q, path): (&File, &Path),
        torn: Torn,
        newline: bool,
    ) -> Result<(), JournalError> {
        // Copied in chunks: a torn batch can be large.
        let mut chunk = vec![0u8; QUARANTINE_CHUNK];
        let (mut at, end) = (torn.offset, torn.offset + torn.len);
        while at < end {
            let n = usize::try_from(end - at)
                .unwrap_or(chunk.len())
                .min(chunk.len());
            read_exact_at(journal, &self.path, &mut chunk[..n], at)?;
            q.write_all(&chunk[..n])
                .map_err(|e| JournalError::io(path, "write", e))?;
            at += n as u64;
        }
        if newline {
            q.write_all(b"\n")
                .map_err(|e| JournalError::io(path, "write", e))?;
        }
        q.sync_data()
            .map_err(|e| JournalError::io(path, "write", e))
    }

    /// Whether `q` holds, from `start` to its end, exactly the torn bytes
    /// (and the `\n` added after them).
    fn quarantined_at(
        &self,
        journal: &File,
        (q, path): (&File, &Path),
        start: u64,
        torn: Torn,
        newline: bool,
    ) -> Result<bool, JournalError> {
        let mut ours = vec![0u8; QUARANTINE_CHUNK];
        let mut kept = vec![0u8; QUARANTINE_CHUNK];
        let mut done = 0;
        while done < torn.len {
            let n = usize::try_from(torn.len - done)
                .unwrap_or(ours.len())
                .min(ours.len());
            read_exact_at(journal, &self.path, &mut ours[..n], torn.offset + done)?;
            read_exact_at(q, path, &mut kept[..n], start + done)?;
            if ours[..n] != kept[..n] {
                return Ok(false);
            }
            done += n as u64;
        }
        if newline {
            read_exact_at(q, path, &mut kept[..1], start + torn.len)?;
            return Ok(kept[0] == b'\n');
        }
        Ok(true)
    }

    /// Loads at once what deciding `requests` will read, when the state is
    /// loaded from a read model that gains by it (a database's): a batch
    /// calls it on each run of commands before applying them one by one.
    pub fn prefetch<'r>(
        &mut self,
        requests: impl IntoIterator<Item = &'r Request<'r>>,
    ) -> Result<(), JournalError> {
        self.load(|model, state, _| model.prefetch(state, requests))
    }

    /// Brings the accounts these requests name, of those the state
    /// holds, and their net changes into the cache ahead of their
    /// look-ups (see [`State::warm_accounts`]).
    pub fn warm<'r>(&self, requests: impl IntoIterator<Item = &'r Request<'r>>) {
        self.state.warm_accounts(
            requests
                .into_iter()
                .flat_map(|r| r.accounts().into_iter().flatten()),
            |place| self.net.peek(place),
        );
    }

    /// Decides `request` against the current state and, if it is new,
    /// stages its event for [`Writer::commit`].
    pub fn apply(&mut self, request: &Request<'_>) -> Result<Outcome, WriteError> {
        // Loaded first: a state that takes the model's ids a bucket at a
        // time learns of them as suspicions, which settling resolves.
        self.load(|model, state, id_at| model.load_request(state, request, id_at))?;
        self.settle_ids(request)?;
        // A reversal's rules need the event it names, which only the file
        // (or this writer's staged lines) holds.
        let line;
        let mut resolved;
        let request = match &request.command {
            Command::Reverse {
                target,
                original: None,
            } if request.id.and_then(|id| self.state.id_seq(id)).is_none() => {
                resolved = request.clone();
                if let Ok(seq) = self.state.resolve(*target) {
                    line = self.line_kept(seq)?;
                    let decoded = line::decode(&line, &mut Vec::new())
                        .map_err(|e| self.corrupt_at(seq, &e))?;
                    let accounts = decoded.event.change.accounts();
                    self.load(|model, state, _| {
                        model.load_accounts(state, accounts.into_iter().flatten())
                    })?;
                    resolved.command = Command::Reverse {
                        target: *target,
                        original: Some(Original::of(&decoded.event)),
                    };
                }
                &resolved
            }
            _ => request,
        };
        let decision = match domain::decide(&self.state, request, self.at) {
            Err(Rejection::UnknownAccount(name, _)) if self.from.is_some() => {
                return Err(self.unknown_account(name).into());
            }
            decision => decision?,
        };
        match decision {
            Decision::Repeat { seq } => {
                let line = self.line_kept(seq)?;
                let decoded =
                    line::decode(&line, &mut Vec::new()).map_err(|e| self.corrupt_at(seq, &e))?;
                // The read model's word is checked against the line it names.
                if decoded.event.id.as_deref() != request.id {
                    self.fall_back()?;
                    return self.apply(request);
                }
                let accounts = decoded.event.change.accounts();
                self.load(|model, state, _| {
                    model.load_accounts(state, accounts.into_iter().flatten())
                })?;
                domain::settle_repeat(&self.state, &decoded.event, request)?;
                Ok(Outcome::Repeat(seq))
            }
            Decision::Append { change, reverses } => {
                let event = Event {
                    seq: self.state.seq() + 1,
                    at: self.at,
                    change,
                    date: request.date,
                    reverses,
                    tags: request
                        .tags
                        .iter()
                        .map(|(k, v)| (Cow::Borrowed(*k), Cow::Borrowed(*v)))
                        .collect(),
                    id: request.id.map(Into::into),
                    memo: request.memo.map(Into::into),
                    batch: None,
                };
                let spool = spool_path(&self.file, &self.path);
                let encoder = &mut self.encoder;
                self.stage.push(
                    |out| encoder.encode(&event, &LineHash::default(), out),
                    spool,
                    self.owner,
                )?;
                if let Backing::File(_) = &self.file {
                    let key = request.id.map(|id| self.state.id_key(id));
                    self.appended.push(event.seq, key);
                }
                domain::evolve(&mut self.state, &event);
                self.net.count(&self.state, &event.change);
                Ok(Outcome::Appended(event.seq))
            }
        }
    }

    /// Makes the state's word on the ids `request` names exact: it knows
    /// the ids this writer appended by fingerprint only, and a matching
    /// one is settled by reading the staged line it points to.
    fn settle_ids(&mut self, request: &Request<'_>) -> Result<(), JournalError> {
        match self.settle_ids_once(request) {
            // A suspicion taken from the read model that no line bears out
            // is the model's damage: the whole state is read instead.
            Err(JournalError::Corrupt { .. }) if self.from.is_some() => {
                self.fall_back()?;
                self.settle_ids_once(request)
            }
            settled => settled,
        }
    }

    fn settle_ids_once(&mut self, request: &Request<'_>) -> Result<(), JournalError> {
        // Most commands name no id: then the state is not moved out and
        // back (two copies of it: a tenth of applying a plain command).
        if request.ids().next().is_none() {
            return Ok(());
        }
        let mut state = std::mem::take(&mut self.state);
        let settled = request.ids().try_for_each(|id| {
            let last = state.seq();
            let unsettled = || JournalError::Corrupt {
                path: self.path.clone(),
                line: last + 1,
                reason: format!("id {id}: no line its fingerprint points to has it"),
            };
            state.settle_id(id, |seq| self.id_at(seq), unsettled)
        });
        self.state = state;
        settled
    }

    /// The line of event `seq`, taking the one read last to settle an id
    /// if it is that line (a repeat's, or a reversal's by `--of-id`).
    fn line_kept(&mut self, seq: u64) -> Result<Vec<u8>, JournalError> {
        match self.id_line.take() {
            Some((read, line)) if read == seq => Ok(line),
            _ => self.line(seq),
        }
    }

    /// The id of the event at `seq`, if it has one.
    fn id_at(&self, seq: u64) -> Result<Option<String>, JournalError> {
        self.lines().id_at(seq)
    }

    /// Loads what `what` asks from the read model into a partial state
    /// (reading ids from the lines their rows name); if the model fails,
    /// gives it up for the whole state.
    fn load(
        &mut self,
        what: impl FnOnce(&ReadModel, &mut State, &mut IdAt<'_>) -> Result<(), ModelError>,
    ) -> Result<(), JournalError> {
        let (Some(model), Some(_)) = (&self.model, self.from) else {
            return Ok(());
        };
        let lines = Lines {
            file: &self.file,
            path: &self.path,
            stage: &self.stage,
            committed: self.head.map_or(0, |h| h.seq),
            len: self.len,
        };
        let kept = &mut self.id_line;
        let mut id_at = |seq| {
            let line = lines.line(seq)?;
            let id = lines.id_of(&line, seq)?;
            *kept = Some((seq, line));
            Ok(id)
        };
        if what(model, &mut self.state, &mut id_at).is_err() {
            return self.fall_back();
        }
        self.load_every_account_if_most()
    }

    /// Loads every account of a file's read model into the partial state
    /// at once when the writer has loaded half of them a page at a time
    /// (each account loads its page's, some 16): a batch that touches most
    /// of a million accounts reads them in one pass instead of a look-up
    /// each, and one that touches a few never holds them all. Half: a
    /// page read alone costs about what sixteen pages cost read in the
    /// pass, and half the accounts are loaded once random look-ups have
    /// read about 70 % of the pages. Asked at 65,536 accounts, then at
    /// each doubling.
    fn load_every_account_if_most(&mut self) -> Result<(), JournalError> {
        let loaded = self.state.account_count();
        let Some(look) = self.accounts_next_look.filter(|&look| loaded >= look) else {
            return Ok(());
        };
        self.accounts_next_look = look.checked_mul(2);
        self.load_every_account_if_half(loaded)
    }

    /// Tells a writer on a file's read model that its append names about
    /// `accounts` accounts (a batch's, read ahead): if that is half of
    /// the model's or more, every account is loaded now, in one pass,
    /// rather than a page at a time until half of them are.
    pub fn expect_accounts(&mut self, accounts: usize) -> Result<(), JournalError> {
        match self.accounts_next_look {
            Some(_) => self.load_every_account_if_half(accounts),
            None => Ok(()),
        }
    }

    /// How many accounts a long write must name for
    /// [`Writer::expect_accounts`] to load every account of the read
    /// model: half of them; `None` if it would load none (no model, or
    /// every account already in).
    pub fn accounts_worth_all(&self) -> Option<usize> {
        let (Some(model), Some(_), Backing::File(_), Some(_)) =
            (&self.model, self.from, &self.file, self.accounts_next_look)
        else {
            return None;
        };
        model.account_count().ok().map(|every| every / 2)
    }

    /// Loads every account of a file's read model into the partial state
    /// if `named` is at least half of them (see
    /// [`Writer::load_every_account_if_most`]).
    fn load_every_account_if_half(&mut self, named: usize) -> Result<(), JournalError> {
        let (Some(model), Some(_), Backing::File(_)) = (&self.model, self.from, &self.file) else {
            return Ok(());
        };
        match model.account_count() {
            Ok(every) if named < every / 2 => return Ok(()),
            // And a sixteenth more, for accounts the batch creates: past
            // its room the table doubles.
            Ok(every) => self.state.reserve_accounts(every + every / 16),
            Err(_) => return self.fall_back(),
        }
        if model.load_every_account_into(&mut self.state).is_err() {
            return self.fall_back();
        }
        self.accounts_next_look = None;
        Ok(())
    }

    /// Gives up the read model: the whole state is folded from the
    /// journal's start, then the events staged so far again; the model is
    /// rebuilt from it once the journal is synced.
    fn fall_back(&mut self) -> Result<(), JournalError> {
        let Some(header) = self.header else {
            return Ok(());
        };
        let scanner = Scanner::new(&self.file, &self.path, header, self.len);
        let mut replay = Replay::new(scanner, State::default());
        replay.run()?;
        let (mut state, head, _) = replay.finish();
        state.fingerprint_new_ids();
        for seq in head.seq + 1..=self.state.seq() {
            let line = self.line(seq)?;
            let decoded =
                line::decode(&line, &mut Vec::new()).map_err(|e| self.corrupt_at(seq, &e))?;
            domain::evolve(&mut state, &decoded.event);
        }
        self.net = self.net.moved(&self.state, &state);
        self.state = state;
        // The events staged so far were decided against the model's rows.
        if self.from.is_some() && head.seq < self.state.seq() {
            self.decided_whole = Some(head);
        }
        self.from = None;
        Ok(())
    }

    /// The refusal of `name`, no account here, with suggestions from every
    /// account's name (a partial state knows only a few). The model names
    /// the accounts up to its head; those created after it (in the lines
    /// replayed after it, or by earlier lines of this batch) are in the
    /// partial state, which evolved them.
    fn unknown_account(&self, name: String) -> Rejection {
        let names = self.model.as_ref().and_then(|m| m.account_names().ok());
        let similar = names
            .map(|names| {
                let created = self.state.accounts().map(|(n, _)| n);
                let every: std::collections::BTreeSet<&str> =
                    names.iter().map(String::as_str).chain(created).collect();
                crate::suggest::similar(&name, every)
            })
            .unwrap_or_default();
        Rejection::UnknownAccount(name, similar)
    }

    /// The accounts the staged events moved or created, in the order of
    /// their names, 8 bytes each (a batch may touch a million): read
    /// each with [`Writer::net_change`].
    pub fn changed_by_name(&self) -> Vec<domain::Named> {
        self.state
            .accounts_by_name(|place| self.net.at(place).is_some())
    }

    /// The name of `named` (listed by [`Writer::changed_by_name`]), its
    /// net change, and its currency's decimals.
    pub fn net_change(&self, named: domain::Named) -> (&str, Amount, u8) {
        let (name, place, account) = self.state.named_account(named);
        let delta = self.net.at(place).unwrap_or(Amount::ZERO);
        (name, delta, self.state.unit_of(account).decimals)
    }

    /// Writes the state back to the read model, once: after a commit, the
    /// state it reached; with nothing staged, the state read (if the model
    /// was behind). A failure only costs the next command time.
    fn save_model(&mut self) {
        // Once: a journal this writer created has no header head, so the
        // drop would open its model again and rebuild it from a state that
        // knows the appended ids only by fingerprint, `appended` already
        // handed over: a model without them, which takes a repeat for new.
        if self.model_saved {
            return;
        }
        let head = if self.committed {
            self.sealed_head.filter(|_| self.synced)
        } else if self.stage.len() == 0 && self.from != self.head {
            self.head
        } else {
            None
        };
        let header = match (self.header, self.sealed_head) {
            (Some(h), _) => Some(h.hash),
            (None, Some(_)) => Some(LineHash::of(line::header(self.at).as_bytes())),
            (None, None) => None,
        };
        // A new journal gets its model once it has a line to cover (a write
        // refused on a new path leaves nothing behind).
        if self.header.is_none() && self.committed && self.model.is_none() {
            self.model = ReadModel::open(&self.path, self.owner);
        }
        if let (Some(head), Some(header), Some(mut model)) = (head, header, self.model.take()) {
            self.model_saved = true;
            if self.fold_later {
                model.fold_later();
            }
            let _ = model.save_appended(
                &self.state,
                std::mem::take(&mut self.appended),
                (self.from, head, header),
                self.decided_whole.unwrap_or(head),
                &self.file,
            );
            if self.fold_later {
                self.unfolded = model.unfolded();
            }
        }
    }

    /// Leaves the fold of the read model's log, which a long write makes
    /// long, to the caller, once the journal is unlocked
    /// ([`Writer::unfolded`]); else the writer folds it, or the drop.
    pub fn fold_later(&mut self) {
        self.fold_later = true;
    }

    /// The read model written back with its log left long, to fold (see
    /// [`Writer::fold_later`]).
    pub fn unfolded(&mut self) -> Option<Unfolded> {
        self.unfolded.take()
    }

    fn corrupt_at(&self, seq: u64, e: &line::LineError) -> JournalError {
        corrupt_at(&self.path, seq, e)
    }

    /// The stored line of event `seq`: staged, or found in the file by
    /// binary search (seqs are in file order).
    pub fn line(&self, seq: u64) -> Result<Vec<u8>, JournalError> {
        self.lines().line(seq)
    }

    fn lines(&self) -> Lines<'_> {
        Lines {
            file: &self.file,
            path: &self.path,
            stage: &self.stage,
            committed: self.head.map_or(0, |h| h.seq),
            len: self.len,
        }
    }

    /// Hands each staged line to `each`, in order, once [`Writer::seal`]
    /// or [`Writer::commit`] has fixed their chain.
    pub fn each_staged<E: From<JournalError>>(
        &self,
        each: impl FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<(), E> {
        self.stage.each_sealed(self.file.file(), &self.path, each)
    }

    /// How many events are staged.
    pub fn staged(&self) -> usize {
        self.stage.len()
    }

    /// Tells a writer on a file's read model the keys of the ids its
    /// append names (once for each time it names one, the requests
    /// applied already included; [`domain::id_key`]), so that from now on
    /// it looks up only those the model holds or the append names twice
    /// (see `State::foresee_ids`). A writer that cannot use them (no such
    /// model, one that gave it up for the whole state, the model
    /// unreadable) or would gain little (more than a quarter of the ids
    /// used before or named twice) goes on as without them. If it took
    /// them: how many it will look up. Every id the append names must be
    /// among these keys: one that is not could be taken for new when it
    /// repeats.
    pub fn foresee_ids(&mut self, mut keys: Vec<i64>) -> Option<usize> {
        let (Some(model), Some(_), Backing::File(_)) = (&self.model, self.from, &self.file) else {
            return None;
        };
        keys.sort_unstable();
        let mut shared: FxHashSet<i64> = keys
            .windows(2)
            .filter_map(|w| (w[0] == w[1]).then_some(w[0]))
            .collect();
        keys.dedup();
        match model.id_keys_held(&keys) {
            Ok(Some(held)) => shared.extend(held),
            // A damaged bucket is met again, and dealt with, when an id
            // of it is looked up.
            Ok(None) | Err(_) => return None,
        }
        // Mostly ids used before (a batch run again): nearly all would be
        // looked up anyway, and the set would only cost memory.
        if shared.len() > keys.len() / 4 {
            return None;
        }
        drop(keys);
        let looked_up = shared.len();
        self.state.foresee_ids(shared).then_some(looked_up)
    }

    /// Says that the append about to be staged is expected to have
    /// `lines` lines (a batch's commands). On a file, a long append is
    /// then written to the journal as its lines are staged, rather than
    /// copied through a spool once all are decided (see
    /// `stage::ahead`); if it turns out to have another number of lines,
    /// only time is lost.
    pub fn expect_lines(&mut self, lines: usize) {
        // A torn tail stays until the commit removes it, so that a
        // refusal leaves the file byte for byte as it was.
        if lines < 2 || self.torn.is_some() || self.stage.len() > 0 {
            return;
        }
        let Backing::File(file) = &self.file else {
            return;
        };
        let Ok(journal) = file.try_clone() else {
            return;
        };
        let sealer = self.sealer_of(lines);
        let ahead = stage::Ahead::new(journal, self.len, lines, sealer, (&self.path, self.owner));
        self.stage.write_ahead(ahead);
    }

    /// What seals the staged lines: they follow the journal's last line,
    /// or a new journal's header.
    fn sealer(&self) -> stage::Sealer {
        self.sealer_of(self.stage.len())
    }

    /// What seals an append of `count` lines.
    fn sealer_of(&self, count: usize) -> stage::Sealer {
        match self.head {
            Some(head) => stage::Sealer::new(head.hash, count, None),
            None => {
                let mut header = line::header(self.at).into_bytes();
                let prev = LineHash::of(&header);
                header.push(b'\n');
                stage::Sealer::new(prev, count, Some(header))
            }
        }
    }

    /// Marks a multi-event append with its count and fills in the `prev`
    /// chain of the staged lines (after the header for a new journal),
    /// without writing them to the journal: for a dry run that shows them.
    /// Until then staged lines carry a placeholder `prev`, because the
    /// count in the first line changes every hash after it.
    pub fn seal(&mut self) -> Result<(), JournalError> {
        let sealer = self.sealer();
        self.stage.seal(sealer, Sink::Keep, &self.path)
    }

    /// Removes a torn tail (keeping its bytes in `<journal>.torn`), then
    /// appends every staged event, sealed as it goes (in one write unless
    /// the append outgrew the stage's buffer), with one `fsync` (and the
    /// directory's when this write created the journal). Nothing staged
    /// writes nothing.
    pub fn commit(&mut self) -> Result<(), JournalError> {
        if self.stage.len() == 0 {
            return Ok(());
        }
        if let Some(torn) = self.torn {
            self.remove_torn(torn)?;
        }
        self.committed = true;
        if matches!(self.file, Backing::Db(_)) {
            return self.commit_db();
        }
        let sealer = self.sealer();
        let Backing::File(file) = &self.file else {
            return Ok(());
        };
        if let Err(e) = self
            .stage
            .seal(sealer, Sink::Journal(file, self.len), &self.path)
        {
            // Leave no partial line behind; if even that fails, what is left
            // is a torn tail that readers ignore and the next writer removes.
            // Once cut back, a journal this write created is empty, and is
            // removed as one that appended nothing.
            if file.set_len(self.len).is_ok() {
                self.committed = false;
            }
            return Err(e);
        }
        if let Err(source) = file.sync_data() {
            return Err(JournalError::SyncFailed {
                path: self.path.clone(),
                source,
            });
        }
        self.sealed_head = self.stage.sealed_end().map(|(hash, len)| Head {
            seq: self.state.seq(),
            hash,
            end: self.len + len,
            at: self.at,
        });
        if self.head.is_none() {
            sync_parent(&self.path)?;
        }
        // Every directory this write created is an entry in its own parent:
        // sync those too, or a crash could lose the path to the journal.
        if let Some(Some(top)) = &self.created {
            for dir in self.path.ancestors().skip(1) {
                sync_parent(dir)?;
                if dir == top {
                    break;
                }
            }
        }
        self.synced = true;
        self.save_model();
        Ok(())
    }

    /// Writes a whole journal verified elsewhere (`ledger copy`): `header`,
    /// then the lines `lines` hands on, into this journal, which must hold
    /// no event (a header alone is replaced); `lines` returns the state
    /// they come to. All or nothing: a failure, `lines`' included, leaves
    /// the journal as it was.
    pub fn copy_in<E: From<JournalError>>(
        &mut self,
        header: &[u8],
        lines: impl FnOnce(&mut dyn FnMut(&[u8]) -> Result<(), JournalError>) -> Result<State, E>,
    ) -> Result<(), E> {
        if self.state.seq() > 0 || self.stage.len() > 0 {
            return Err(JournalError::NotEmpty(self.path.clone()).into());
        }
        if let Some(torn) = self.torn {
            self.remove_torn(torn)?;
        }
        let file = match &self.file {
            Backing::Db(db) => {
                db.clear()?;
                let mut copied = None;
                let (seq, end) = db.append(0, 0, |emit| {
                    emit(header.strip_suffix(b"\n").unwrap_or(header))?;
                    copied = Some(lines(emit)?);
                    Ok::<_, E>(())
                })?;
                // The query tables too, in the same transaction, from the
                // state the copy's check came to: the first command after
                // a copy replays nothing (a write would, holding the head's
                // lock all the while).
                let rows = match (&self.model, &copied) {
                    (Some(model), Some(state)) => {
                        db.save_rows(|| model.save_in_database(state, None))?
                    }
                    _ => false,
                };
                db.commit(seq, end, rows)?;
                self.committed = true;
                return Ok(());
            }
            Backing::File(file) => file,
        };
        let mut before = vec![0; usize::try_from(self.len).unwrap_or(0)];
        read_exact_at(file, &self.path, &mut before, 0)?;
        // A file's model is made by the command that first needs it.
        let written = copy_to_file(file, &self.path, header, |emit| lines(emit).map(drop));
        if written.is_err() {
            // As it was: empty, or the header it had.
            let _ = file.set_len(0).and_then(|()| (&*file).write_all(&before));
            return written;
        }
        self.committed = true;
        if self.head.is_none() {
            sync_parent(&self.path)?;
        }
        Ok(())
    }

    /// Commits the staged lines to the database, in the transaction that
    /// holds the head's lock: a new journal's header first. The lines go
    /// to the database as they are sealed.
    fn commit_db(&mut self) -> Result<(), JournalError> {
        let sealer = self.sealer();
        let Backing::Db(db) = &self.file else {
            return Ok(());
        };
        let spool = spool_path(&self.file, &self.path);
        let first = self.head.map_or(0, |h| h.seq + 1);
        let stage = &mut self.stage;
        let (seq, end) = db.append(first, self.len, |emit| {
            stage.seal(sealer, Sink::KeepAnd(emit), spool)
        })?;
        let rows = match &self.model {
            Some(model) => db.save_rows(|| model.save_in_database(&self.state, self.from))?,
            None => false,
        };
        db.commit(seq, end, rows)?;
        self.sealed_head = self.stage.sealed_end().map(|(hash, len)| Head {
            seq: self.state.seq(),
            hash,
            end: self.len + len,
            at: self.at,
        });
        self.synced = true;
        Ok(())
    }
}

/// Where a long append's spool goes: beside the journal file (at `path`),
/// or in the temporary directory for a database. Asked for every staged
/// event, so the temporary directory is looked up once.
fn spool_path<'p>(file: &Backing, path: &'p Path) -> &'p Path {
    static IN_TEMP: LazyLock<PathBuf> = LazyLock::new(|| std::env::temp_dir().join("ledger"));
    match file {
        Backing::File(_) => path,
        Backing::Db(_) => &IN_TEMP,
    }
}

/// Replaces what `file` holds (opened to append) by `header` and the
/// lines `lines` hands on, each given a `\n`, and syncs it.
fn copy_to_file<E: From<JournalError>>(
    file: &File,
    path: &Path,
    header: &[u8],
    lines: impl FnOnce(&mut dyn FnMut(&[u8]) -> Result<(), JournalError>) -> Result<(), E>,
) -> Result<(), E> {
    let write = |e| JournalError::io(path, "write", e);
    file.set_len(0).map_err(write)?;
    let mut out = io::BufWriter::with_capacity(1 << 20, file);
    out.write_all(header).map_err(write)?;
    lines(&mut |line: &[u8]| {
        out.write_all(line)
            .and_then(|()| out.write_all(b"\n"))
            .map_err(write)
    })?;
    out.flush().map_err(write)?;
    file.sync_data()
        .map_err(|source| JournalError::SyncFailed {
            path: path.to_owned(),
            source,
        })?;
    Ok(())
}

/// Bytes of a torn tail copied or compared at a time.
const QUARANTINE_CHUNK: usize = 1 << 20;

/// Errors of a write request: a refusal by the rules, or the file.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// Refused by the rules.
    #[error(transparent)]
    Rejected(#[from] Rejection),
    /// The file.
    #[error(transparent)]
    Journal(#[from] JournalError),
}

/// A writer's lines: those in the journal (its first `len` bytes, up to
/// seq `committed`), then the staged ones. Apart from the writer, so that
/// they can be read while its state is being changed.
struct Lines<'w> {
    file: &'w Backing,
    path: &'w Path,
    stage: &'w Stage,
    committed: u64,
    len: u64,
}

impl Lines<'_> {
    fn line(&self, seq: u64) -> Result<Vec<u8>, JournalError> {
        if seq > self.committed {
            let i = usize::try_from(seq - self.committed - 1).unwrap_or(usize::MAX);
            return self.stage.line(i, self.file.file(), self.path);
        }
        find_line(self.file, self.path, (self.len, self.committed + 1), seq)
    }

    fn id_at(&self, seq: u64) -> Result<Option<String>, JournalError> {
        self.id_of(&self.line(seq)?, seq)
    }

    /// The id of `line`, the line of event `seq`.
    fn id_of(&self, line: &[u8], seq: u64) -> Result<Option<String>, JournalError> {
        let decoded =
            line::decode(line, &mut Vec::new()).map_err(|e| corrupt_at(self.path, seq, &e))?;
        Ok(decoded.event.id.map(|id| id.into_owned()))
    }
}

fn corrupt_at(path: &Path, seq: u64, e: &line::LineError) -> JournalError {
    JournalError::Corrupt {
        path: path.to_owned(),
        line: seq.saturating_add(1),
        reason: e.to_string(),
    }
}

fn clock_error(e: crate::time::TimeError) -> JournalError {
    JournalError::io(
        Path::new("LEDGER_TEST_CLOCK"),
        "read the clock from",
        io::Error::new(io::ErrorKind::InvalidInput, e),
    )
}

/// Opens the journal for appending, creating it (mode 0600) if needed, and
/// locks it exclusively. If another process replaced the file by a rename
/// while we waited for the lock, the lock is on a stale inode: retry.
/// Returns the file and whether this call created it.
fn open_locked(path: &Path) -> Result<(File, bool), JournalError> {
    let mut attempts = 0;
    loop {
        attempts += 1;
        // Inside the loop: a writer that appended nothing may have removed
        // the directories it created while this one waited for the lock.
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs::create_dir_all(parent)
                .map_err(|e| JournalError::io(parent, "create directory", e))?;
        }
        let mut options = OpenOptions::new();
        options
            .read(true)
            .append(true)
            .mode(0o600)
            .custom_flags(sidecar::no_block());
        let (file, created) = match options.clone().create_new(true).open(path) {
            Ok(file) => (file, true),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => (
                options
                    .open(path)
                    .map_err(|e| JournalError::io(path, "open for writing", e))?,
                false,
            ),
            // The directory just created was removed by a writer that gave up.
            Err(e) if e.kind() == io::ErrorKind::NotFound && attempts < 100 => continue,
            Err(e) => return Err(JournalError::io(path, "open for writing", e)),
        };
        regular(&file, path)?;
        file.lock().map_err(|e| JournalError::io(path, "lock", e))?;
        let locked = file
            .metadata()
            .map_err(|e| JournalError::io(path, "read", e))?;
        match fs::metadata(path) {
            Ok(now) if now.ino() == locked.ino() && now.dev() == locked.dev() => {
                return Ok((file, created));
            }
            Ok(_) | Err(_) => continue,
        }
    }
}

/// The directory holding `path`.
fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

fn sync_parent(path: &Path) -> Result<(), JournalError> {
    let parent = parent_of(path);
    File::open(parent)
        .and_then(|d| d.sync_all())
        .map_err(|source| JournalError::SyncFailed {
            path: parent.to_owned(),
            source,
        })
}

fn read_exact_at(
    file: &File,
    path: &Path,
    buf: &mut [u8],
    offset: u64,
) -> Result<(), JournalError> {
    use std::os::unix::fs::FileExt;
    file.read_exact_at(buf, offset)
        .map_err(|e| JournalError::io(path, "read", e))
}

/// Finds the line of event `seq` in the first `len` bytes of a journal that
/// has already been validated, by bisecting on byte offsets. `next` is
/// the seq of the line that starts at `len` (or would): only how fast the
/// line is found depends on it.
pub fn find_line(
    file: &Backing,
    path: &Path,
    (len, next): (u64, u64),
    seq: u64,
) -> Result<Vec<u8>, JournalError> {
    let whole = Bracket {
        lo: 0,
        lo_seq: 0,
        hi: len,
        hi_seq: next,
    };
    find_line_in(file, path, len, whole, seq)
}

/// Where a line is sought: it starts at or after `lo`, the start of the
/// line of `lo_seq` (0: the header, at 0), and before `hi`, the start of
/// the line of `hi_seq` (or the end of what is read, `hi_seq` then the
/// seq the next line would have: only speed depends on that one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Bracket {
    pub(crate) lo: u64,
    pub(crate) lo_seq: u64,
    pub(crate) hi: u64,
    pub(crate) hi_seq: u64,
}

/// [`find_line`] within `bracket`, which a scan knows from the lines it
/// has read (see [`scan::Scanner`]).
pub(crate) fn find_line_in(
    file: &Backing,
    path: &Path,
    len: u64,
    bracket: Bracket,
    seq: u64,
) -> Result<Vec<u8>, JournalError> {
    // A database finds a line by its seq.
    if let Backing::Db(db) = file {
        return db.line(seq).and_then(|line| {
            line.ok_or_else(|| JournalError::Corrupt {
                path: path.to_owned(),
                line: seq.saturating_add(1),
                reason: format!("no line holds event {seq}"),
            })
        });
    }
    const WINDOW: u64 = 8 * 1024;
    // Most lines are a few hundred bytes: a probe reads this much first.
    const PROBE: u64 = 4096;
    let read = |offset: u64, size: u64| -> Result<Vec<u8>, JournalError> {
        let mut buf = vec![0u8; usize::try_from(size.min(len - offset)).unwrap_or(0)];
        file.read_exact_at(&mut buf, offset)
            .map_err(|e| JournalError::io(path, "read", e))?;
        Ok(buf)
    };
    // The line that starts after the first `\n` at or past `at`: where it
    // starts and its bytes (without `\n`), or `None` past the end.
    let line_after = |at: u64| -> Result<Option<(u64, Vec<u8>)>, JournalError> {
        let mut chunk = read(at, PROBE)?;
        let mut nl = memchr::memchr(b'\n', &chunk);
        if nl.is_none() {
            chunk = read(at, MAX_LINE as u64 + 1)?;
            nl = memchr::memchr(b'\n', &chunk);
        }
        let Some(nl) = nl else { return Ok(None) };
        let start = at + nl as u64 + 1;
        let mut line = chunk.split_off(nl + 1);
        if !line.contains(&b'\n') {
            line = read(start, MAX_LINE as u64 + 1)?;
        }
        let end = memchr::memchr(b'\n', &line).unwrap_or(line.len());
        line.truncate(end);
        Ok(Some((start, line)))
    };
    let not_found = || JournalError::Corrupt {
        path: path.to_owned(),
        line: seq.saturating_add(1),
        reason: format!("event {seq} is missing"),
    };
    // Invariant: the wanted line starts in [lo, hi), and lo is a line
    // start. Seqs grow with offsets at a rate close to the average line's
    // length, so a probe aims where `seq` should be between the seqs at
    // `lo` and `hi`: a little late after one that raised `lo`, a little
    // early after one that lowered `hi`, so that two good aims bracket the
    // line.
    let Bracket {
        mut lo,
        mut lo_seq,
        mut hi,
        mut hi_seq,
    } = bracket;
    let (mut halve, mut raised) = (false, false);
    while hi - lo > WINDOW {
        let width = hi - lo;
        let mid = if !halve && hi_seq > seq && seq > lo_seq {
            let span = u128::from(hi - lo) * u128::from(seq - lo_seq);
            let at = lo + u64::try_from(span / u128::from(hi_seq - lo_seq)).unwrap_or(0);
            // The probe finds the line after the one `mid` falls in.
            let at = match raised {
                true => at.saturating_add(PROBE / 2),
                false => at.saturating_sub(PROBE / 2),
            };
            at.clamp(lo, hi - WINDOW / 2)
        } else {
            lo + (hi - lo) / 2
        };
        let Some((start, line)) = line_after(mid)? else {
            break;
        };
        raised = false;
        match line::seq_of(&line) {
            Some(s) if s == seq => return Ok(line),
            Some(s) if s < seq => (lo, lo_seq, raised) = (start, s, true),
            // No line starts between `mid` and `hi`: the wanted one starts
            // at or before `mid`.
            s => {
                hi = if start < hi { start } else { mid + 1 };
                hi_seq = s.unwrap_or(hi_seq);
            }
        }
        // An aim that did not take half the range away is followed by a
        // halving: no worse than twice bisection's reads.
        halve = !halve && hi - lo > width / 2;
    }
    // The wanted line starts before `hi` but may end after it: the window
    // reads a probe's length past it, and a line longer than that is read
    // again whole (reading `MAX_LINE` past it every time, zeroed first,
    // took half of a batch of reversals' time).
    let window = read(lo, hi - lo + PROBE)?;
    let mut from = 0;
    while from < window.len() && lo + (from as u64) < hi {
        let rest = &window[from..];
        let Some(end) = memchr::memchr(b'\n', rest) else {
            let mut line = read(lo + from as u64, MAX_LINE as u64 + 1)?;
            line.truncate(memchr::memchr(b'\n', &line).unwrap_or(line.len()));
            return (line::seq_of(&line) == Some(seq))
                .then_some(line)
                .ok_or_else(not_found);
        };
        if line::seq_of(&rest[..end]) == Some(seq) {
            return Ok(rest[..end].to_vec());
        }
        from += end + 1;
    }
    Err(not_found())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Command, Request, Target};
    use crate::money::Decimal;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]

        /// Every line of a file of lines of any lengths (a header, then
        /// seqs 1..=n) is found by seq, and a seq past the end is not.
        #[test]
        fn find_line_finds_every_seq(lens in proptest::collection::vec(
            prop_oneof![8 => 10usize..400, 1 => 400usize..MAX_LINE - 16],
            1..300,
        ), hint in proptest::option::of(0u64..1000)) {
            let (_dir, path, lines, _) = lines_of_lengths(&lens);
            let file = Backing::File(File::open(&path).expect("open"));
            let len = std::fs::metadata(&path).expect("len").len();
            // A wrong hint of the next seq may only slow the search.
            let ends = (len, hint.unwrap_or(lines.len() as u64 + 1));
            for (i, line) in lines.iter().enumerate() {
                let found = find_line(&file, &path, ends, i as u64 + 1).expect("found");
                prop_assert_eq!(&found, line);
            }
            prop_assert!(find_line(&file, &path, ends, lines.len() as u64 + 1).is_err());
        }
    }

    /// A writer that has loaded an eighth of the model's accounts one at a
    /// time (asked at 4, then 8, in tests) loads the rest at once: the accounts it
    /// changed keep their changes, the others come with their holds, and
    /// the journal replays under the rules with the balances expected.
    #[test]
    fn a_writer_that_loads_most_accounts_loads_them_all_and_keeps_its_changes() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("j.jsonl");
        let names: Vec<&'static str> = (0..40)
            .map(|i| &*Box::leak(format!("acct{i}").into_boxed_str()))
            .collect();
        let memo = "m".repeat(500);
        let cents = |n| Decimal::new(crate::money::Amount(n), 2);
        let deposit = |account, n| Request {
            memo: Some(&memo),
            ..request(Command::Deposit {
                account,
                amount: cents(n),
            })
        };
        {
            let mut w = Writer::open(&path).expect("open");
            for &account in &names {
                let create = Command::create(account);
                w.apply(&request(create)).expect("create");
            }
            for i in 0..crate::readmodel::MODEL_AFTER_BYTES / 500 + 1 {
                w.apply(&deposit(names[i as usize % 40], 100))
                    .expect("deposit");
            }
            // A hold from acct38 to acct39 (a page of two in unit tests),
            // whose accounts the next writer loads only with every other.
            let hold = Command::Hold {
                account: names[38],
                amount: cents(700),
                to: Some(names[39]),
                expires: None,
            };
            w.apply(&request(hold)).expect("hold");
            w.commit().expect("commit");
        }
        let balance = |w: &Writer, name| w.state().account(name).map(|a| a.balance.0);
        let mut w = Writer::open(&path).expect("open");
        let before = balance(&w, names[0]);
        assert_eq!(before, None, "a partial state, from the model");
        let hold_seq = w.state().seq();
        let withdraw = |account, n| {
            request(Command::Withdraw {
                account,
                amount: cents(n),
            })
        };
        // Each account loads its page (of two, in unit tests): acct0 to
        // acct29 load 30 accounts, not half of 40 when last asked (at 16
        // loaded); acct30 makes 32, and the writer is asked again.
        for &account in &names[..30] {
            w.apply(&withdraw(account, 100)).expect("withdraw");
        }
        assert_eq!(w.state().account_count(), 30, "not yet every account");
        w.apply(&withdraw(names[30], 100)).expect("withdraw");
        assert_eq!(w.state().account_count(), 40, "every account");
        let had = balance(&w, names[0]).expect("loaded");
        let refused = w.apply(&withdraw(names[0], had + 1));
        assert!(
            matches!(
                refused,
                Err(WriteError::Rejected(Rejection::InsufficientFunds { .. }))
            ),
            "{refused:?}"
        );
        w.apply(&withdraw(names[0], had))
            .expect("the whole balance, as changed");
        let capture = Command::Capture {
            target: Target::Seq(hold_seq),
            amount: None,
        };
        w.apply(&request(capture))
            .expect("the hold came with its accounts");
        w.commit().expect("commit");
        drop(w);
        let journal = ReadJournal::open(&path).expect("read").expect("a journal");
        let mut replay = Replay::new(journal.scanner().expect("lines"), State::default());
        replay.run().expect("every event obeys the rules");
        let (state, head, _) = replay.finish();
        let replayed = |name| state.account(name).map(|a| a.balance.0);
        assert_eq!(replayed(names[0]), Some(0));
        let (a38, a39) = (
            replayed(names[38]).expect("38"),
            replayed(names[39]).expect("39"),
        );
        assert_eq!(a39 - a38, 1400, "700 moved from acct38 to acct39");
        // Written back: the accounts it changed, over rows that hold the
        // others; every row is the replay's.
        let model = ReadModel::open(&path, Owner::me()).expect("model");
        let rows = model.load_every_account(head).expect("every account");
        let accounts = |s: &State| {
            let mut all: Vec<(String, i128)> = s
                .accounts()
                .map(|(n, a)| (n.to_owned(), a.balance.0))
                .collect();
            all.sort();
            all
        };
        assert_eq!(accounts(&rows), accounts(&state));
    }

    /// A request with no options.
    /// A journal file of a header and lines of seqs 1..=n of the lengths
    /// `lens` (each at least its `{"seq":N,`), in a temporary directory:
    /// the directory, the file's path, the lines and where each starts.
    pub(in crate::journal) fn lines_of_lengths(
        lens: &[usize],
    ) -> (tempfile::TempDir, PathBuf, Vec<Vec<u8>>, Vec<u64>) {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("j.jsonl");
        let mut bytes = b"{\"format\":\"ledger-journal\"}\n".to_vec();
        let (mut lines, mut starts) = (Vec::new(), Vec::new());
        for (i, len) in lens.iter().enumerate() {
            let mut line = format!("{{\"seq\":{},", i + 1).into_bytes();
            line.resize(line.len().max(*len), b'x');
            starts.push(bytes.len() as u64);
            bytes.extend_from_slice(&line);
            bytes.push(b'\n');
            lines.push(line);
        }
        std::fs::write(&path, &bytes).expect("write");
        (dir, path, lines, starts)
    }

    pub(in crate::journal) fn request(command: Command<'_>) -> Request<'_> {
        Request::new(command)
    }

    /// One request of a generated append (accounts `a` and `b` exist).
    #[derive(Debug, Clone)]
    enum Op {
        Deposit(u32, Option<u8>),
        Withdraw(u32, Option<u8>),
        Transfer(u32),
        Reverse(u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        let id = proptest::option::of(0..6u8);
        prop_oneof![
            (1..500u32, id.clone()).prop_map(|(n, id)| Op::Deposit(n, id)),
            (1..500u32, id).prop_map(|(n, id)| Op::Withdraw(n, id)),
            (1..500u32).prop_map(Op::Transfer),
            (1..40u64).prop_map(Op::Reverse),
        ]
    }

    /// What an append of `ops` leaves: the journal's bytes, the staged
    /// lines as shown, and each new event's line looked up by seq (before
    /// sealing, and after). `limit` is the stage's buffer; `commit` false
    /// is a dry run.
    type Seen = (Vec<u8>, Vec<Vec<u8>>, Vec<Vec<u8>>, Vec<Vec<u8>>);

    fn append(ops: &[Op], existing: bool, limit: usize, commit: bool) -> Seen {
        append_expecting(ops, existing, (limit, None), commit)
    }

    /// [`append`], the writer told to expect `expect` lines (written ahead
    /// of the commit once they outgrow the buffer, `limit`).
    fn append_expecting(
        ops: &[Op],
        existing: bool,
        (limit, expect): (usize, Option<usize>),
        commit: bool,
    ) -> Seen {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("journal.jsonl");
        let at = |t: &str| At::parse_instant(t).expect("instant");
        let ids: Vec<String> = (0..6).map(|i| format!("id-{i}")).collect();
        let amount = |n: u32| Decimal::parse_positive(&format!("{}.{:02}", n / 100, n % 100));
        let create = |account| Command::create(account);
        let mut writer = Writer::open(&path).expect("open");
        writer.at = at("2026-11-26T10:00:00Z");
        if existing {
            writer.apply(&request(create("a"))).expect("a");
            writer.apply(&request(create("b"))).expect("b");
            writer.commit().expect("commit");
            drop(writer);
            writer = Writer::open(&path).expect("open");
            writer.at = at("2026-11-27T10:00:00Z");
        }
        if let Some(lines) = expect {
            writer.expect_lines(lines);
        }
        if !existing {
            writer.apply(&request(create("a"))).expect("a");
            writer.apply(&request(create("b"))).expect("b");
        }
        writer.stage.set_limit(limit);
        let first = writer.head.map_or(1, |h| h.seq + 1);
        for op in ops {
            let (command, id) = match op {
                Op::Deposit(n, id) => (
                    Command::Deposit {
                        account: "a",
                        amount: amount(*n).expect("amount"),
                    },
                    *id,
                ),
                Op::Withdraw(n, id) => (
                    Command::Withdraw {
                        account: "a",
                        amount: amount(*n).expect("amount"),
                    },
                    *id,
                ),
                Op::Transfer(n) => (
                    Command::Transfer {
                        from: "a",
                        to: "b",
                        amount: amount(*n).expect("amount"),
                    },
                    None,
                ),
                Op::Reverse(seq) => (
                    Command::Reverse {
                        target: Target::Seq(*seq),
                        original: None,
                    },
                    None,
                ),
            };
            let mut request = request(command);
            request.id = id.map(|i| ids[usize::from(i)].as_str());
            // Refusals are part of the run: they stage nothing.
            let _ = writer.apply(&request);
        }
        let last = writer.state().seq();
        let lines = |writer: &Writer| -> Vec<Vec<u8>> {
            (first..=last)
                .map(|seq| writer.line(seq).expect("line"))
                .collect()
        };
        let staged = lines(&writer);
        if commit {
            writer.commit().expect("commit");
        } else {
            writer.seal().expect("seal");
        }
        let mut shown = Vec::new();
        writer
            .each_staged(|line| {
                shown.push(line.to_vec());
                Ok::<_, JournalError>(())
            })
            .expect("shown");
        let sealed = lines(&writer);
        drop(writer);
        let bytes = std::fs::read(&path).unwrap_or_default();
        assert!(
            std::fs::read_dir(dir.path()).expect("dir").count() <= 2,
            "only the journal (and its checkpoint) are left"
        );
        (bytes, shown, staged, sealed)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Staged in a spool, however small the buffer, an append is
        /// byte for byte the one staged in memory, and so is every line
        /// read back before and after sealing.
        #[test]
        fn a_spooled_append_is_the_append_staged_in_memory(
            ops in ops_past_a_block(),
            existing in any::<bool>(),
            limit in prop_oneof![Just(1usize), 1..3000usize],
            commit in any::<bool>(),
        ) {
            let in_memory = append(&ops, existing, usize::MAX, commit);
            let spooled = append(&ops, existing, limit, commit);
            prop_assert_eq!(&in_memory, &spooled);
            let (bytes, shown, _, sealed) = in_memory;
            prop_assert_eq!(&shown, &sealed);
            if commit {
                let mut tail: Vec<u8> = shown.join(&b'\n');
                tail.push(b'\n');
                prop_assert!(bytes.ends_with(&tail));
            }
        }
    }

    /// Few commands, or enough that lines are read back past the stage's
    /// first blocks of starts (64 lines each).
    fn ops_past_a_block() -> impl Strategy<Value = Vec<Op>> {
        prop_oneof![
            proptest::collection::vec(op(), 0..40),
            proptest::collection::vec(op(), 60..160),
        ]
    }

    /// A line as staged: no batch mark, a placeholder `prev`.
    fn as_staged(line: &[u8]) -> Vec<u8> {
        let text = String::from_utf8_lossy(line);
        let mut line = match text.find(r#","batch":"#) {
            Some(at) => {
                let end = text[at + 9..]
                    .find(|c: char| !c.is_ascii_digit())
                    .map_or(text.len(), |n| at + 9 + n);
                format!("{}{}", &text[..at], &text[end..]).into_bytes()
            }
            None => line.to_vec(),
        };
        line::set_prev(&mut line, &LineHash::default());
        line
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Written to the journal ahead of its commit, an append is byte
        /// for byte the one staged in memory, whether the lines expected
        /// are as many as it has, more or fewer (then given up for the
        /// spool): and so is the journal a dry run or a refusal leaves.
        /// Lines read back before sealing are the same events.
        #[test]
        fn an_append_written_ahead_is_the_append_staged_in_memory(
            ops in ops_past_a_block(),
            existing in any::<bool>(),
            limit in prop_oneof![Just(1usize), 1..3000usize],
            commit in any::<bool>(),
            off in -2..=2i64,
        ) {
            let in_memory = append(&ops, existing, usize::MAX, commit);
            let expect = usize::try_from(in_memory.2.len() as i64 + off).unwrap_or(0);
            let ahead = append_expecting(&ops, existing, (limit, Some(expect)), commit);
            prop_assert_eq!(&in_memory.0, &ahead.0);
            prop_assert_eq!(&in_memory.1, &ahead.1);
            prop_assert_eq!(&in_memory.3, &ahead.3);
            let staged: Vec<Vec<u8>> = ahead.2.iter().map(|l| as_staged(l)).collect();
            prop_assert_eq!(&in_memory.2, &staged);
        }
    }

    /// Lines written ahead of a commit that never comes (the writer
    /// dropped, as on a refusal) leave the journal as it was, or no
    /// journal where there was none.
    #[test]
    fn lines_written_ahead_of_no_commit_are_cut_back() {
        for existing in [false, true] {
            let dir = tempfile::tempdir().expect("tempdir");
            let path = dir.path().join("journal.jsonl");
            if existing {
                let mut writer = Writer::open(&path).expect("open");
                writer.apply(&request(Command::create("a"))).expect("a");
                writer.commit().expect("commit");
            }
            let before = std::fs::read(&path).ok();
            let mut writer = Writer::open(&path).expect("open");
            writer.expect_lines(100);
            writer.stage.set_limit(1);
            for account in ["b", "c", "d", "e"] {
                writer
                    .apply(&request(Command::create(account)))
                    .expect("create");
            }
            let written = std::fs::metadata(&path).map_or(0, |m| m.len());
            assert!(
                written > before.as_ref().map_or(0, Vec::len) as u64,
                "lines were written ahead"
            );
            drop(writer);
            assert_eq!(std::fs::read(&path).ok(), before, "existing: {existing}");
        }
    }

    #[test]
    fn a_sealed_multi_event_append_carries_its_count_and_chain() {
        let ops = [
            Op::Deposit(100, Some(1)),
            Op::Deposit(100, Some(1)),
            Op::Transfer(5),
        ];
        let (bytes, shown, staged, sealed) = append(&ops, false, 1, true);
        assert_eq!(shown.len(), 4);
        assert!(String::from_utf8_lossy(&shown[0]).contains(r#","batch":4,"prev""#));
        assert!(!String::from_utf8_lossy(&staged[0]).contains("batch"));
        assert_eq!(shown, sealed);
        let lines: Vec<&[u8]> = bytes
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .collect();
        for pair in lines.windows(2) {
            assert_eq!(
                line::prev_hex(pair[1]).as_bytes(),
                LineHash::of(pair[0]).hex()
            );
        }
    }
}
