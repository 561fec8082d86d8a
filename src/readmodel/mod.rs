//! The read model (SPEC 7): the query side of the ledger, an SQLite
//! database beside the journal (`<journal>.readmodel`) holding accounts,
//! units, ids, holds and reversals, and the head of the journal it covers.
//! A command loads the entries it touches (`Needs`) into a partial
//! [`State`], decides and evolves as on the whole state, and writes back
//! what it holds after the journal's `fsync`.
//!
//! It is a cache and nothing more. It is used only when the journal still
//! holds, at the recorded offset, a line with the recorded hash, seq and
//! time (the chain makes that line stand for every line before it); each
//! row carries a digest of its values, and entries are checked for
//! well-formedness as they are loaded ([`State::load_account`] and its kin).
//! Anything wrong — missing, stale, damaged, another journal's, past a
//! truncated end, a row changed by hand — and the command falls back to a
//! full replay, after which the model is rebuilt. A coherent forgery (rows
//! and digests recomputed by hand) cannot be told from the truth without a
//! key: `verify`, which never reads the model, is the audit.
//!
//! Why SQLite and not redb: see `docs/read-model.md` (another process may
//! read while one writes; no `fsync` is needed for a cache).

mod index;
mod links;
mod pages;
mod pgrows;
mod rows;

pub use index::{Indexed, slots};
pub use rows::IdAt;

use std::io;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use rusqlite::{Connection, ErrorCode, OpenFlags, OptionalExtension, params};

use crate::domain::{Command, Request, State, Target};
use crate::event::{Change, Event};
use crate::journal::backing::Backing;
use crate::journal::line::{self, LineHash};
use crate::journal::pg::Db;
use crate::journal::scan::Head;
use crate::journal::sidecar::Owner;
use crate::time::At;

const FORMAT: &str = "ledger-readmodel";
// 3: the history index (`history`, `tips`). 4: ids kept by key, not text.
// 9: an id bucket's entries in 7 to 14 bytes each, not 16.
const VERSION: &str = "9";

/// A journal shorter than this gets no model: replaying it costs less
/// than opening one (about a millisecond), and a small ledger keeps no
/// files beside its journal. A model that exists is kept up to date
/// whatever the journal's length.
pub const MODEL_AFTER_BYTES: u64 = 1 << 20;

/// SQLite's page cache for building the history index, in KiB as
/// `cache_size` takes it (negative): room for the pages such a write keeps
/// changing (the right edge of the index's B-tree, its parents). With
/// SQLite's 2 MiB a write of millions of index rows spilled and rewrote
/// each of them to the log again and again (a batch of 1,000,000 events:
/// 150,000 page writes for a 50 MB model). Pages are taken only as used.
const INDEX_CACHE_KIB: i64 = -(64 << 10);

/// SQLite's page cache for writing rows back (its default; see
/// [`INDEX_CACHE_KIB`]).
/// Rows go in key order, so a full page is done with and may leave the
/// cache: a larger cache only kept the whole model in memory until the
/// commit (a million ids of an import: 62 MB of pages, most of the
/// import's peak memory).
const ROWS_CACHE_KIB: i64 = -(2 << 10);

/// Fold the write-ahead log once it is this long (see
/// [`ReadModel::fold_wal`]): about a hundred writes of a few pages each.
const WAL_FOLD_BYTES: u64 = 512 << 10;

/// Why the read model could not serve: the caller replays the journal
/// instead, and the model is rebuilt. Never shown to the user.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// SQLite failed (a damaged file, a full disk, a lock held too long).
    #[error("read model: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A value no command could have left there.
    #[error("read model: {0}")]
    Malformed(String),
    /// The journal's database failed.
    #[error("read model: {0}")]
    Db(String),
    /// A whole state was asked of a model that keeps ids by key: their
    /// text is in the journal's lines only.
    #[error("read model: the ids are kept by key")]
    IdsByKey,
}

impl ModelError {
    /// Whether another process held the database past the busy timeout:
    /// nothing is wrong with what it holds.
    pub fn is_busy(&self) -> bool {
        matches!(
            self,
            ModelError::Sqlite(rusqlite::Error::SqliteFailure(failure, _))
                if matches!(failure.code, ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
        )
    }
}

/// The statements a write runs on a model kept in a journal's database.
pub const DATABASE_WRITE_STATEMENTS: &[&str] = pgrows::WRITE_STATEMENTS;

/// The tables of the model kept in a journal's database.
pub const DATABASE_SCHEMA: &str = pgrows::SCHEMA;

impl From<postgres::Error> for ModelError {
    fn from(e: postgres::Error) -> ModelError {
        ModelError::Db(e.to_string())
    }
}

/// The journal failing while the model's rows are written from it.
impl From<crate::journal::JournalError> for ModelError {
    fn from(e: crate::journal::JournalError) -> ModelError {
        ModelError::Db(e.to_string())
    }
}

/// The read model's path for a journal.
pub fn path_of(journal: &Path) -> PathBuf {
    suffixed(journal, ".readmodel")
}

/// The read model of one journal.
pub struct ReadModel {
    /// `None` until there is a database: a command that only reads, or
    /// fails, creates none.
    conn: Option<Connection>,
    path: PathBuf,
    /// The journal's, for what reading its lines reports.
    journal: PathBuf,
    owner: Owner,
    /// Which file (device and inode) the database was when opened: the
    /// one a rebuild may set aside as damaged, and no other.
    opened: Option<(u64, u64)>,
    /// The journal's own database, when the journal is in one: its rows
    /// are the model, and there is no SQLite file.
    db: Option<Rc<Db>>,
    /// What a prefetch found missing from the database's rows.
    absent: pgrows::Absent,
    /// Whether writing leaves the log long, for [`ReadModel::unfolded`].
    fold_later: bool,
}

/// A model written back with its write-ahead log left long (see
/// [`ReadModel::fold_later`]), to be folded on another thread.
pub struct Unfolded {
    conn: Connection,
    path: PathBuf,
}

impl Unfolded {
    /// Folds the log into the database, if it is long (as a write would
    /// have). A failure leaves it for the next writer.
    pub fn fold(self) {
        let _ = fold(&self.conn, &self.path);
    }
}

/// Folds the log of the database at `path` into it and empties it once
/// the log passes [`WAL_FOLD_BYTES`].
fn fold(conn: &Connection, path: &Path) -> Result<(), ModelError> {
    let wal = std::fs::metadata(suffixed(path, "-wal")).map_or(0, |m| m.len());
    if wal > WAL_FOLD_BYTES {
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    }
    Ok(())
}

/// Where the rows are read from.
#[derive(Clone, Copy)]
enum Rows<'a> {
    Sqlite(&'a Connection),
    Pg(&'a Db, &'a pgrows::Absent),
}

impl Rows<'_> {
    fn units(self) -> Result<Vec<crate::domain::Unit>, ModelError> {
        match self {
            Rows::Sqlite(c) => rows::units(c),
            Rows::Pg(db, _) => pgrows::units(db),
        }
    }

    fn load_account(self, state: &mut State, name: &str) -> Result<(), ModelError> {
        match self {
            Rows::Sqlite(c) => rows::load_account(c, state, name),
            Rows::Pg(db, absent) => pgrows::load_account(db, absent, state, name),
        }
    }

    fn load_id(self, state: &mut State, id: &str, id_at: &mut IdAt<'_>) -> Result<(), ModelError> {
        match self {
            Rows::Sqlite(c) => rows::load_id(c, state, id, id_at),
            Rows::Pg(db, absent) => pgrows::load_id(db, absent, state, id),
        }
    }

    fn load_reversed(self, state: &mut State, seq: u64) -> Result<(), ModelError> {
        match self {
            Rows::Sqlite(c) => rows::load_reversed(c, state, seq),
            Rows::Pg(db, absent) => pgrows::load_reversed(db, absent, state, seq),
        }
    }

    fn load_hold(self, state: &mut State, seq: u64) -> Result<(), ModelError> {
        match self {
            Rows::Sqlite(c) => rows::load_hold(c, state, seq),
            Rows::Pg(db, absent) => pgrows::load_hold(db, absent, state, seq),
        }
    }

    fn load_every_account(self, state: &mut State) -> Result<(), ModelError> {
        match self {
            Rows::Sqlite(c) => rows::load_every_account(c, state),
            Rows::Pg(db, _) => pgrows::load_every_account(db, state),
        }
    }

    fn load_all(self, state: &mut State) -> Result<(), ModelError> {
        match self {
            Rows::Sqlite(c) => rows::load_all(c, state),
            Rows::Pg(db, _) => pgrows::load_all(db, state),
        }
    }

    fn account_names(self) -> Result<Vec<String>, ModelError> {
        match self {
            Rows::Sqlite(c) => rows::account_names(c),
            Rows::Pg(db, _) => pgrows::account_names(db),
        }
    }
}

impl ReadModel {
    /// The read model of `journal`, opened if it exists, or `None` if it
    /// cannot be used: under a file size limit, or when a name beside the
    /// journal holds what is not the ledger's own regular file (SPEC 2: a
    /// link, a FIFO, another user's file) and cannot be removed. Then
    /// commands replay the journal, and leave no model.
    pub fn open(journal: &Path, owner: Owner) -> Option<ReadModel> {
        // Under a file size limit, SQLite's files could grow past it after
        // the journal is synced, and SIGXFSZ would end a command that has
        // succeeded: a cache is not worth that.
        let limit = rustix::process::getrlimit(rustix::process::Resource::Fsize);
        if limit.current.is_some() {
            return None;
        }
        let path = path_of(journal);
        let [wal, shm] = companions(&path);
        let names = [path.clone(), wal, shm];
        let mut exists = false;
        for name in &names {
            match std::fs::symlink_metadata(name) {
                Ok(meta) if owner.owns(&meta) => exists |= *name == path,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                // Something planted at one of the names: the model is
                // rebuilt without it. Removing a name never follows a link;
                // one that cannot be removed (another user's, in a sticky
                // directory) leaves the ledger without a model.
                _ => {
                    for name in &names {
                        match std::fs::remove_file(name) {
                            Err(e) if e.kind() != io::ErrorKind::NotFound => return None,
                            _ => {}
                        }
                    }
                    exists = false;
                    break;
                }
            }
        }
        // SQLite opens each of its files with `O_NOFOLLOW` too; a file it
        // will not open is as good as none, and is rebuilt.
        let opened = exists.then(|| file_id(&path)).flatten();
        let conn = exists.then(|| connect(&path).ok()).flatten();
        Some(ReadModel {
            conn,
            path,
            journal: journal.to_owned(),
            owner,
            opened,
            db: None,
            absent: pgrows::Absent::default(),
            fold_later: false,
        })
    }

    /// The model kept in the journal's own database `db`, in the
    /// transaction the journal is read or written in.
    pub fn in_database(db: Rc<Db>) -> ReadModel {
        ReadModel {
            conn: None,
            path: PathBuf::new(),
            journal: PathBuf::new(),
            owner: Owner::me(),
            opened: None,
            db: Some(db),
            absent: pgrows::Absent::default(),
            fold_later: false,
        }
    }

    /// Where the rows are.
    fn rows(&self) -> Result<Rows<'_>, ModelError> {
        match &self.db {
            Some(db) => Ok(Rows::Pg(db, &self.absent)),
            None => self.conn().map(Rows::Sqlite),
        }
    }

    /// The connection, creating the database if there is none yet.
    fn create(&mut self) -> Result<&mut Connection, ModelError> {
        // A model in the journal's database has no SQLite file to make:
        // what is built only there (the history index) is not built.
        if self.db.is_some() {
            return Err(ModelError::Malformed(
                "no SQLite file beside a database".into(),
            ));
        }
        if self.conn.is_none() {
            // Created here, like every sidecar (no link followed, 0600, the
            // journal's owner); SQLite takes an empty file for a new
            // database, and gives its `-wal` and `-shm` files the same mode
            // and owner.
            crate::journal::sidecar::open_to_append(&self.path, self.owner)
                .map_err(|e| ModelError::Malformed(e.to_string()))?;
            self.opened = file_id(&self.path);
            self.conn = Some(connect(&self.path)?);
        }
        self.conn
            .as_mut()
            .ok_or_else(|| ModelError::Malformed("no database".into()))
    }

    /// The connection, created if need be, with the read transaction that
    /// [`ReadModel::covers`] began ended: ready for a write, with a page
    /// cache of `cache_kib` (as `cache_size` takes it).
    fn writable(&mut self, cache_kib: i64) -> Result<&mut Connection, ModelError> {
        let fold_later = self.fold_later;
        let conn = self.create()?;
        if !conn.is_autocommit() {
            conn.execute_batch("ROLLBACK")?;
        }
        conn.pragma_update(None, "cache_size", cache_kib)?;
        if fold_later {
            // SQLite's own fold at the commit, which would copy the log
            // back with the journal still locked.
            conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        }
        Ok(conn)
    }

    fn conn(&self) -> Result<&Connection, ModelError> {
        self.conn
            .as_ref()
            .ok_or_else(|| ModelError::Malformed("no database".into()))
    }

    /// The head this model covers, if it is this journal's (`header`: the
    /// head after its header line) and the journal, read no further than
    /// `len`, still holds the line it names.
    pub fn covers(&self, file: &Backing, header: Head, len: u64) -> Option<Head> {
        if let Some(db) = &self.db {
            let (seq, end) = db.rows_cover()?;
            return head_at(file, header, len, (seq, end), None);
        }
        let conn = self.conn.as_ref()?;
        // One read transaction from here to the write-back: the head and
        // every row loaded after it are of one snapshot, and a command's
        // many lookups share one lock instead of taking one each.
        conn.execute_batch("BEGIN").ok()?;
        let (format, journal, recorded) = conn
            .query_row(
                "SELECT format, journal, seq, hash, line_end, at FROM head WHERE one = 1",
                [],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        Recorded::of(r, 2)?,
                    ))
                },
            )
            .ok()?;
        if format != format!("{FORMAT} {VERSION}") || journal != header.hash.to_string() {
            return None;
        }
        recorded.head(file, header, len)
    }

    /// The last head up to which a replay of the whole journal, from its
    /// header on the state it folded itself, has decided every event, if
    /// the journal still holds that head's line (the chain binds every
    /// line before it). Not the model's head: writers decide against the
    /// rows, which a lost row can mislead, so a read decides again what a
    /// writer appended. For a model whose head is trusted ([`covers`]);
    /// never on a database, whose rows record no hash of their lines.
    ///
    /// [`covers`]: ReadModel::covers
    pub fn checked(&self, file: &Backing, header: Head, len: u64) -> Option<Head> {
        if self.db.is_some() {
            return None;
        }
        self.conn
            .as_ref()?
            .query_row(
                "SELECT seq, hash, line_end, at FROM checked WHERE one = 1",
                [],
                |r| Recorded::of(r, 0),
            )
            .ok()?
            .head(file, header, len)
    }

    /// Records that a replay of the whole journal decided every event up
    /// to `head` (see [`ReadModel::checked`]), in place of the record
    /// there: a reader that decided past it, or found it unsound. (Another
    /// reader that got further meanwhile loses only speed.)
    pub fn check_until(&mut self, head: Head) -> Result<(), ModelError> {
        if self.db.is_some() {
            return Ok(());
        }
        let tx = self.writable(ROWS_CACHE_KIB)?.transaction()?;
        set_checked(&tx, head)?;
        tx.commit()?;
        Ok(())
    }

    /// The base of a partial state at `head`: its seq, time and units.
    pub fn base(&self, head: Head) -> Result<State, ModelError> {
        let at = (head.seq > 0).then_some(head.at);
        State::at_head(head.seq, at, self.rows()?.units()?).map_err(ModelError::Malformed)
    }

    /// The state at `head` with every account and open hold (not the ids,
    /// reversals and ended holds, which come only as needed: replay the
    /// lines after `head` with [`crate::journal::scan::Replay::with_model`]).
    /// Having every account and hold, it is held to the invariants of a
    /// whole state, like [`ReadModel::load_all`].
    pub fn load_every_account(&self, head: Head) -> Result<State, ModelError> {
        let mut state = self.base(head)?;
        self.rows()?.load_every_account(&mut state)?;
        whole(state)
    }

    /// Loads every account, with the holds on them, into `state`, a
    /// writer's partial state: those it holds already (read before, or
    /// changed since) stay as they are.
    pub fn load_every_account_into(&self, state: &mut State) -> Result<(), ModelError> {
        self.rows()?.load_every_account(state)
    }

    /// How many accounts the rows hold.
    pub fn account_count(&self) -> Result<usize, ModelError> {
        match self.rows()? {
            Rows::Sqlite(c) => rows::account_count(c),
            Rows::Pg(..) => Err(ModelError::Malformed(
                "a database's rows are not counted".into(),
            )),
        }
    }

    /// The keys among `keys` (sorted) of ids the model holds; `None` for a
    /// model in the journal's database, which is asked an id at a time.
    pub fn id_keys_held(&self, keys: &[i64]) -> Result<Option<Vec<i64>>, ModelError> {
        match self.rows()? {
            Rows::Sqlite(c) => rows::keys_held(c, keys).map(Some),
            Rows::Pg(..) => Ok(None),
        }
    }

    /// The whole state at `head`, for a reader that goes on folding new
    /// events into it after the model may have moved on (a follower).
    /// Having every entry, it is held to every invariant of a whole state
    /// ([`State::inconsistency`]), not only to well-formed entries: a row
    /// lost to damage (an account with money, a hold) no digest can show,
    /// but the sums then no longer add up.
    pub fn load_all(&self, head: Head) -> Result<State, ModelError> {
        let mut state = self.base(head)?;
        self.rows()?.load_all(&mut state)?;
        whole(state)
    }

    /// Up to `n` accounts whose names come after `after` (every name comes
    /// after `""`), in name order, as the model has them at its head: each
    /// checked against its digest if `check` (not needed again for a row
    /// read before in this command: one read transaction lasts from
    /// [`ReadModel::covers`] to the write-back), not yet for
    /// well-formedness, and without the holds on it (see
    /// [`ReadModel::open_holds`]). For reading every account a page at a
    /// time.
    pub fn accounts_after(
        &self,
        after: &str,
        n: usize,
        check: bool,
    ) -> Result<Vec<(String, crate::domain::Account)>, ModelError> {
        match self.rows()? {
            Rows::Sqlite(c) => rows::accounts_after(c, after, n, check),
            Rows::Pg(db, _) => pgrows::accounts_after(db, after, n),
        }
    }

    /// Every open hold at the model's head, by seq, each checked against
    /// its digest.
    pub fn open_holds(&self) -> Result<Vec<(u64, crate::domain::Hold)>, ModelError> {
        match self.rows()? {
            Rows::Sqlite(c) => rows::open_holds(c),
            Rows::Pg(db, _) => pgrows::open_holds(db),
        }
    }

    /// Loads into `state` what deciding `event` (a stored event being
    /// replayed) reads; `id_at` reads the id of an earlier event, to check
    /// an id's row against the line it names.
    pub fn load_event(
        &self,
        state: &mut State,
        event: &Event<'_>,
        id_at: &mut IdAt<'_>,
    ) -> Result<(), ModelError> {
        let mut needs = Needs::default();
        needs
            .accounts
            .extend(event.change.accounts().into_iter().flatten());
        needs.id = event.id.as_deref();
        needs.reverses = event.reverses;
        if let Change::HoldCaptured { hold, .. } | Change::HoldReleased { hold, .. } = event.change
        {
            needs.target = Some(Target::Seq(hold));
        }
        self.load(state, &needs, id_at)
    }

    /// Loads into `state` what deciding `request` reads (for a reversal,
    /// not yet the accounts of the movement it undoes: the caller reads
    /// that event, then loads them with [`ReadModel::load_accounts`]);
    /// `id_at` as for [`ReadModel::load_event`].
    pub fn load_request(
        &self,
        state: &mut State,
        request: &Request<'_>,
        id_at: &mut IdAt<'_>,
    ) -> Result<(), ModelError> {
        self.load(state, &Needs::of(request), id_at)
    }

    /// Loads into `state`, in a few statements, the `--id`s and accounts
    /// that deciding `requests` will read, and remembers which are not
    /// there, so that a batch does not ask the database once per command.
    /// (The SQLite file beside a journal is read in-process: nothing to
    /// gain there.)
    pub fn prefetch<'r>(
        &self,
        state: &mut State,
        requests: impl IntoIterator<Item = &'r Request<'r>>,
    ) -> Result<(), ModelError> {
        let Rows::Pg(db, absent) = self.rows()? else {
            return Ok(());
        };
        let (mut ids, mut targets, mut accounts) = (Vec::new(), Vec::new(), Vec::new());
        for request in requests {
            let needs = Needs::of(request);
            ids.extend(needs.id);
            if let Some(target) = needs.target {
                ids.extend(match target {
                    Target::Id(id) => Some(id),
                    Target::Seq(_) => None,
                });
                targets.push(target);
            }
            accounts.extend(needs.accounts);
        }
        ids.retain(|id| state.id_seq(id).is_none());
        pgrows::prefetch(db, absent, state, &ids, &targets, &accounts)
    }

    /// Loads the named accounts (with the holds on them) into `state`.
    pub fn load_accounts<'n>(
        &self,
        state: &mut State,
        names: impl IntoIterator<Item = &'n str>,
    ) -> Result<(), ModelError> {
        let rows = self.rows()?;
        for name in names {
            rows.load_account(state, name)?;
        }
        Ok(())
    }

    fn load(
        &self,
        state: &mut State,
        needs: &Needs<'_>,
        id_at: &mut IdAt<'_>,
    ) -> Result<(), ModelError> {
        let c = self.rows()?;
        if let Some(id) = needs.id {
            c.load_id(state, id, id_at)?;
        }
        for account in &needs.accounts {
            c.load_account(state, account)?;
        }
        if let Some(seq) = needs.reverses {
            c.load_reversed(state, seq)?;
        }
        let target = match needs.target {
            Some(Target::Seq(seq)) => Some(seq),
            Some(Target::Id(id)) => {
                c.load_id(state, id, id_at)?;
                // A state by key knows the model's ids as suspicions: the
                // target's seq is made exact before its rows are read.
                state.settle_id(id, &mut *id_at, || {
                    ModelError::Malformed(format!("id {id}: no line its entry names has it"))
                })?;
                state.id_seq(id)
            }
            None => None,
        };
        if let Some(seq) = target {
            c.load_hold(state, seq)?;
            c.load_reversed(state, seq)?;
            // A hold's accounts: capturing or releasing it changes both.
            if let Some(hold) = state.hold(seq) {
                let (account, to) = (hold.account.to_string(), hold.to.clone());
                c.load_account(state, &account)?;
                if let Some(to) = to {
                    c.load_account(state, &to)?;
                }
            }
        }
        Ok(())
    }

    /// The last `n` events of account `account` at the model's head,
    /// newest first, as the history index has them (fewer if the chain
    /// ends first); `None` if the index does not know the account. Each
    /// row is checked against its digest, not yet against its line.
    pub fn last_events(&self, account: &str, n: usize) -> Result<Option<Vec<Indexed>>, ModelError> {
        index::last_events(self.conn()?, account, n)
    }

    /// Writes back every entry of `state` and its head `head`, in one
    /// transaction, if the model still covers `from` (another reader may
    /// have caught it up meanwhile), with the history index of the lines
    /// between them, read from `journal`, when they are few (else the
    /// first `history` that needs them indexes them). `from` is `None` for a state
    /// folded from the journal's start: the model is then rebuilt from it
    /// (or, if there is none and the journal is short, not made; see
    /// [`MODEL_AFTER_BYTES`]). `header` is the hash of the journal's header
    /// line.
    pub fn save(
        &mut self,
        state: &State,
        from: Option<Head>,
        head: Head,
        header: LineHash,
        journal: &Backing,
    ) -> Result<(), ModelError> {
        let appended = AppendedIds::default();
        self.save_appended(state, appended, (from, head, header), head, journal)
    }

    /// [`ReadModel::save`] for a writer, whose state knows the ids its
    /// append added only by fingerprint (see
    /// [`State::fingerprint_new_ids`]): `appended` holds their keys. For
    /// a whole state (`from` is `None`), `decided` is the head up to which
    /// its events were decided against the whole
    /// state (see [`ReadModel::checked`]): `head`, unless the writer gave
    /// up the model after deciding some of its events against the rows.
    pub fn save_appended(
        &mut self,
        state: &State,
        appended: AppendedIds,
        (from, head, header): (Option<Head>, Head, LineHash),
        decided: Head,
        journal: &Backing,
    ) -> Result<(), ModelError> {
        // A database's rows were written with its lines.
        if self.db.is_some() {
            return Ok(());
        }
        let Some(from) = from else {
            if self.conn.is_none() && head.end < MODEL_AFTER_BYTES {
                return Ok(());
            }
            return self.rebuild(state, appended, (head, decided), header);
        };
        let path = self.journal.clone();
        let tx = self
            .writable(ROWS_CACHE_KIB)?
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        if !stands_at(&tx, from)? {
            return Ok(());
        }
        // Over rows that hold the rest: only the accounts changed.
        write(&tx, state, appended, (head, header), false)?;
        index::extend(&tx, (journal, &path), from, head)?;
        tx.commit()?;
        self.fold_wal()
    }

    /// Builds the model afresh from `state`, the whole state at `head`,
    /// whatever the journal's length. Its history index starts empty, for
    /// the first `history` that needs it to build (see
    /// [`ReadModel::catch_up_index`]): a rebuild, or a batch that makes a
    /// journal long, need not pay for it.
    pub fn build(&mut self, state: &State, head: Head, header: LineHash) -> Result<(), ModelError> {
        self.rebuild(state, AppendedIds::default(), (head, head), header)
    }

    /// [`ReadModel::build`], with the ids of an append that `state` knows
    /// only by fingerprint; `decided` is the head up to which its events
    /// were decided against the whole state.
    fn rebuild(
        &mut self,
        state: &State,
        appended: AppendedIds,
        (head, decided): (Head, Head),
        header: LineHash,
    ) -> Result<(), ModelError> {
        // A file too damaged for SQLite to empty (not a database any more,
        // or pages it finds corrupt) would stay so, and every command would
        // replay the whole journal: a rebuild replaces everything, so it
        // may as well start from no file, the damaged one set aside. Only
        // then: a file in use by another process is not moved from under
        // it for nothing. (Not once the appended ids went into the failed
        // attempt: a model without them would let one be used again.)
        let mut appended = Some(appended);
        match self.rebuild_once(state, &mut appended, (head, decided), header) {
            Err(ModelError::Sqlite(rusqlite::Error::SqliteFailure(failure, _)))
                if matches!(
                    failure.code,
                    ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt
                ) && appended.is_some() =>
            {
                self.set_aside()?;
                self.rebuild_once(state, &mut appended, (head, decided), header)?;
            }
            done => done?,
        }
        self.fold_wal()
    }

    /// [`ReadModel::rebuild`]'s transaction; takes the appended ids when it
    /// gets to writing them.
    fn rebuild_once(
        &mut self,
        state: &State,
        appended: &mut Option<AppendedIds>,
        (head, decided): (Head, Head),
        header: LineHash,
    ) -> Result<(), ModelError> {
        let tx = self
            .writable(ROWS_CACHE_KIB)?
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        rows::clear(&tx)?;
        let ids = appended.take().unwrap_or_default();
        write(&tx, state, ids, (head, header), true)?;
        // A whole state: every event up to `decided` was decided against it.
        set_checked(&tx, decided)?;
        Ok(tx.commit()?)
    }

    /// Closes the model and sets its damaged file aside, as `NAME.damaged`
    /// (kept, as a torn tail is: the bytes may be worth a look, and a file
    /// that only has the model's name is not destroyed), so that the next
    /// write starts a new one. Only the file this model opened: another
    /// process may have replaced it with a good one since (readers
    /// rebuild too, under a shared lock). Its log and shared memory go
    /// first: a log left beside a new file would be replayed into it.
    fn set_aside(&mut self) -> Result<(), ModelError> {
        self.conn = None;
        let opened = self.opened.take();
        if opened.is_none() || file_id(&self.path) != opened {
            return Ok(());
        }
        let failed = |action: &str, e: io::Error| {
            ModelError::Malformed(format!("cannot {action} {}: {e}", self.path.display()))
        };
        for log in companions(&self.path) {
            match std::fs::remove_file(&log) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(failed("clear", e)),
                _ => {}
            }
        }
        std::fs::rename(&self.path, suffixed(&self.path, ".damaged"))
            .map_err(|e| failed("set aside", e))
    }

    /// Whether the history index covers exactly what the model does, at
    /// `head` (the head [`ReadModel::covers`] found).
    pub fn index_covers(&self, head: Head) -> bool {
        self.conn()
            .and_then(index::indexed)
            .is_ok_and(|at| at == Some((head.seq, head.end)))
    }

    /// Brings the history index up to `head`, the model's head, from
    /// `journal`'s lines after the last one it covers (after `header`, the
    /// head after the journal's header line, if it covers none), in one
    /// transaction. Ends the read transaction [`ReadModel::covers`] began:
    /// call `covers` again before reading. Does nothing if another process
    /// moved the model meanwhile.
    pub fn catch_up_index(
        &mut self,
        journal: &Backing,
        header: Head,
        head: Head,
    ) -> Result<(), ModelError> {
        let path = self.journal.clone();
        self.write_index(head, |tx| {
            index::catch_up(tx, (journal, &path), header, head)
        })?;
        self.fold_wal()
    }

    /// Empties the history index, which disagreed with the journal at
    /// `head`, the model's head (a row lost or changed, a table gone):
    /// the next `history` that needs it builds it again, where a damaged
    /// index would leave every history of the account it cannot answer
    /// to the full replay. Its other rows may be sound, but no row tells
    /// which. Does nothing if another process moved the model meanwhile.
    /// Ends the read transaction [`ReadModel::covers`] began.
    pub fn forget_index(&mut self, head: Head) -> Result<(), ModelError> {
        self.write_index(head, index::clear)
    }

    /// Runs `write` on the history index in one transaction, if the model
    /// still stands at `head` (another process may have moved it on).
    fn write_index(
        &mut self,
        head: Head,
        write: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<(), ModelError>,
    ) -> Result<(), ModelError> {
        let tx = self
            .writable(INDEX_CACHE_KIB)?
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        if !stands_at(&tx, head)? {
            return Ok(());
        }
        write(&tx)?;
        tx.commit()?;
        Ok(())
    }

    /// Folds a long write-ahead log into the database and empties it.
    /// Each command opens the model anew, and the first connection to open
    /// it reads the whole log back (SQLite's recovery): a log left to grow
    /// would make every command pay for every write since the last fold.
    fn fold_wal(&self) -> Result<(), ModelError> {
        match self.fold_later {
            true => Ok(()),
            false => fold(self.conn()?, &self.path),
        }
    }

    /// Leaves the log as writing leaves it, for [`ReadModel::unfolded`]:
    /// a long write's fold (a second or more, most of it waiting on the
    /// disk) can then go on with the journal unlocked, while the command
    /// prints.
    pub fn fold_later(&mut self) {
        self.fold_later = true;
    }

    /// The model's database, to fold its log on another thread; `None`
    /// for a model in the journal's database, or none opened.
    pub fn unfolded(self) -> Option<Unfolded> {
        match (self.db, self.conn) {
            (None, Some(conn)) => Some(Unfolded {
                conn,
                path: self.path,
            }),
            _ => None,
        }
    }

    /// The names of every account, for suggesting one to a user who typed
    /// a name that is none (only on that error path: it reads them all).
    pub fn account_names(&self) -> Result<Vec<String>, ModelError> {
        self.rows()?.account_names()
    }

    /// Writes `state`'s entries into the journal's database, in the
    /// transaction appending the events that led to it: as a partial
    /// state's changes when it was loaded from these rows (`from`), else
    /// as the whole state, replacing every row. Nothing for a model
    /// beside a file (see [`ReadModel::save`]).
    /// The ids need no row: they are a column of the lines.
    pub fn save_in_database(&self, state: &State, from: Option<Head>) -> Result<(), ModelError> {
        let Some(db) = &self.db else {
            return Ok(());
        };
        pgrows::save(db, state, from.is_none())
    }
}

/// The head at byte `end` of the journal (`header`: the head after its
/// header line; `len`: as far as it is read), where event `seq` must end,
/// as the line there says: `None` unless it is so, nor unless the hash
/// and time a model recorded for it (`stored`) are that line's. Everything
/// a model says about the journal is read back from the line it names,
/// not taken on its word.
/// A head as the model records it: seq, hash, offset past its line, at.
struct Recorded {
    seq: i64,
    hash: String,
    end: i64,
    at: String,
}

impl Recorded {
    /// The four columns of row `r` from `first` on.
    fn of(r: &rusqlite::Row<'_>, first: usize) -> rusqlite::Result<Recorded> {
        Ok(Recorded {
            seq: r.get(first)?,
            hash: r.get(first + 1)?,
            end: r.get(first + 2)?,
            at: r.get(first + 3)?,
        })
    }

    /// The head, if the journal still holds the line it names.
    fn head(&self, file: &Backing, header: Head, len: u64) -> Option<Head> {
        let (seq, end) = (u64::try_from(self.seq).ok()?, u64::try_from(self.end).ok()?);
        let at = At::parse_canonical(&self.at)?;
        head_at(file, header, len, (seq, end), Some((&self.hash, at)))
    }
}

fn head_at(
    file: &Backing,
    header: Head,
    len: u64,
    (seq, end): (u64, u64),
    stored: Option<(&str, At)>,
) -> Option<Head> {
    if end < header.end || end > len {
        return None;
    }
    if end == header.end {
        let same = stored.is_none_or(|(hash, _)| hash == header.hash.to_string());
        return (seq == 0 && same).then_some(header);
    }
    let line = line_ending_at(file, end)?;
    let hash = LineHash::of(&line);
    let event = line::decode(&line, &mut Vec::new()).ok()?.event;
    let recorded = stored.is_none_or(|(h, at)| h == hash.to_string() && at == event.at);
    (recorded && event.seq == seq).then_some(Head {
        seq,
        hash,
        end,
        at: event.at,
    })
}

/// The ids an append added, or a replay of the whole journal folded in
/// ([`Keyer`]), for [`ReadModel::save_appended`]: the key of each, as the
/// `id_keys` table keeps them, taken as the events are staged or read;
/// the seq is the place in the list (their text is in the lines).
/// 8 bytes an event from the first with an id on, so that an import of a
/// million rows keeps 8 MB here while it applies them.
#[derive(Debug, Default)]
pub struct AppendedIds {
    /// The seq of the first event with an id.
    first: u64,
    /// The key of each event's id from that one on, or [`NO_ID`].
    keys: Vec<i64>,
}

/// The key of no id: keys are never negative.
const NO_ID: i64 = -1;

impl AppendedIds {
    /// Adds the key of the id of the event at `seq` ([`crate::domain::id_key`]),
    /// if it has one (the events come in order).
    pub fn push(&mut self, seq: u64, key: Option<i64>) {
        if self.keys.is_empty() {
            let Some(key) = key else {
                return;
            };
            self.first = seq;
            self.keys.push(key);
            return;
        }
        let at = usize::try_from(seq.saturating_sub(self.first)).unwrap_or(usize::MAX);
        if at >= self.keys.len() {
            self.keys.resize(at, NO_ID);
            self.keys.push(key.unwrap_or(NO_ID));
        }
    }

    /// Whether no event given had an id.
    fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Each id's key and seq (see [`rows::id_row_of`]), bucket by bucket
    /// in bucket order, each bucket's in no particular order. Grouped by a
    /// counting sort of their places (4 bytes an id), not by sorting rows
    /// of 16: the write-back comes at an import's peak of memory.
    fn by_bucket(&self) -> Result<impl Iterator<Item = (i64, Vec<u128>)> + '_, ModelError> {
        let too_many = || ModelError::Malformed("an append of more than 2^32 events".into());
        let mut starts = vec![0u32; rows::BUCKETS + 1];
        for &key in self.keys.iter().filter(|&&key| key != NO_ID) {
            starts[rows::bucket_index(key) + 1] += 1;
        }
        for b in 1..starts.len() {
            starts[b] = starts[b].checked_add(starts[b - 1]).ok_or_else(too_many)?;
        }
        let mut next = starts.clone();
        let mut order = vec![0u32; starts[rows::BUCKETS] as usize];
        for (at, &key) in self.keys.iter().enumerate() {
            if key != NO_ID {
                let slot = &mut next[rows::bucket_index(key)];
                order[*slot as usize] = u32::try_from(at).map_err(|_| too_many())?;
                *slot += 1;
            }
        }
        Ok((0..rows::BUCKETS).filter_map(move |b| {
            let places = &order[starts[b] as usize..starts[b + 1] as usize];
            let entries: Vec<u128> = places
                .iter()
                .map(|&at| rows::id_row_of(self.keys[at as usize], self.first + u64::from(at)))
                .collect();
            (!entries.is_empty()).then_some((b as i64, entries))
        }))
    }
}

/// Ids a [`Keyer`] sends its thread at a time; a journal of fewer has
/// them keyed at the end of its replay, without a thread.
const KEY_BATCH: usize = 8192;

/// Works out the keys of the ids a replay of the whole journal folds in,
/// on a thread of its own, for the model rebuilt from its state: a
/// SHA-256 each, 4,000,000 of them in a large journal, which the replay
/// would otherwise wait for. (The replay itself tells repeats apart by
/// fingerprints of its own, cheaper to take.)
#[derive(Default)]
pub struct Keyer {
    batch: KeyBatch,
    worker: Worker,
}

/// Where a [`Keyer`]'s full batches go.
#[derive(Default)]
enum Worker {
    /// None yet.
    #[default]
    None,
    /// A thread and the channel to it; `None` once the thread stopped
    /// early, its keys lost.
    Thread(
        Option<std::sync::mpsc::SyncSender<KeyBatch>>,
        std::thread::JoinHandle<AppendedIds>,
    ),
    /// No thread could be started: the keys are worked out here.
    Here(AppendedIds),
}

/// Ids by seq, their text one after another.
#[derive(Default)]
struct KeyBatch {
    text: String,
    /// Each id's seq and where its text ends.
    ids: Vec<(u64, usize)>,
}

impl KeyBatch {
    /// Adds the key of each id to `keys`.
    fn key_into(&self, keys: &mut AppendedIds) {
        let mut start = 0;
        for &(seq, end) in &self.ids {
            let id = self.text.get(start..end).unwrap_or_default();
            keys.push(seq, Some(crate::domain::id_key(id)));
            start = end;
        }
    }
}

impl Keyer {
    /// Adds the id of the event at `seq` (the events come in order).
    pub fn push(&mut self, seq: u64, id: &str) {
        self.batch.text.push_str(id);
        self.batch.ids.push((seq, self.batch.text.len()));
        if self.batch.ids.len() >= KEY_BATCH {
            let batch = std::mem::take(&mut self.batch);
            self.send(batch);
        }
    }

    fn send(&mut self, batch: KeyBatch) {
        if let Worker::None = self.worker {
            self.worker = start_keying();
        }
        match &mut self.worker {
            Worker::Thread(to, _) => {
                if to.as_ref().is_some_and(|to| to.send(batch).is_err()) {
                    *to = None;
                }
            }
            Worker::Here(keys) => batch.key_into(keys),
            Worker::None => {}
        }
    }

    /// The key and seq of every id pushed; `None` if the thread failed,
    /// and with it the model that would have been written without them.
    pub fn finish(self) -> Option<AppendedIds> {
        let mut keys = match self.worker {
            Worker::None => AppendedIds::default(),
            Worker::Thread(to, worker) => {
                drop(to?);
                worker.join().ok()?
            }
            Worker::Here(keys) => keys,
        };
        self.batch.key_into(&mut keys);
        Some(keys)
    }
}

/// A thread that keys the batches sent to it, or [`Worker::Here`] if
/// none can be started.
fn start_keying() -> Worker {
    // A few batches in flight: the replay waits rather than queueing a
    // journal's ids.
    let (to, from) = std::sync::mpsc::sync_channel::<KeyBatch>(4);
    let worker = crate::threads::spawn("id-keys", move || {
        let mut keys = AppendedIds::default();
        for batch in from {
            batch.key_into(&mut keys);
        }
        keys
    });
    match worker {
        Ok(worker) => Worker::Thread(Some(to), worker),
        Err(_) => Worker::Here(AppendedIds::default()),
    }
}

/// Hands each account to the function it is given, as it is read.
type EachAccount<'a> = dyn FnMut(String, crate::domain::Account) -> Result<(), ModelError> + 'a;

/// Loads every account and the open `holds` into `state`: each account,
/// as `accounts` reads it, with the holds its rules look at (those on it
/// that may lapse, and those naming it as `to`), so that a million
/// accounts are not held twice. Either home of the rows reads them.
fn load_accounts_with_holds(
    state: &mut State,
    holds: Vec<(u64, crate::domain::Hold)>,
    accounts: impl FnOnce(&mut EachAccount<'_>) -> Result<(), ModelError>,
) -> Result<(), ModelError> {
    let mut on: rustc_hash::FxHashMap<&str, (Vec<u64>, Vec<u64>)> = Default::default();
    // A writer's partial state may have ended some already.
    let holds: Vec<_> = holds
        .into_iter()
        .filter(|(seq, _)| state.ended(*seq).is_none())
        .collect();
    for (seq, hold) in &holds {
        if hold.expires.is_some() {
            on.entry(&hold.account).or_default().0.push(*seq);
        }
        if let Some(to) = hold.to.as_deref() {
            on.entry(to).or_default().1.push(*seq);
        }
    }
    accounts(&mut |name, mut account| {
        if let Some((expiring, incoming)) = on.get(name.as_str()) {
            account.expiring_mut().extend(expiring);
            account.incoming_mut().extend(incoming);
        }
        state
            .load_account(&name, account)
            .map_err(ModelError::Malformed)
    })?;
    for (seq, hold) in holds {
        state.load_hold(seq, hold).map_err(ModelError::Malformed)?;
    }
    Ok(())
}

/// What deciding a command or replaying an event reads: the entries to
/// load before [`crate::domain::decide`] runs on a partial state.
#[derive(Debug, Default)]
struct Needs<'a> {
    /// Accounts, each with the open holds on it and naming it as `to`.
    accounts: Vec<&'a str>,
    /// The `--id`.
    id: Option<&'a str>,
    /// A hold (with its accounts) or a movement, named by seq or id.
    target: Option<Target<'a>>,
    /// The movement a stored reversal undoes.
    reverses: Option<u64>,
}

impl<'a> Needs<'a> {
    /// What deciding `request` reads (for a reversal, not yet the accounts
    /// of the movement it undoes: the caller reads that event, then loads
    /// them with [`ReadModel::load_accounts`]).
    fn of(request: &Request<'a>) -> Needs<'a> {
        let mut needs = Needs {
            id: request.id,
            ..Needs::default()
        };
        needs
            .accounts
            .extend(request.accounts().into_iter().flatten());
        match request.command {
            Command::Capture { target, .. }
            | Command::Release { target }
            | Command::Reverse { target, .. } => needs.target = Some(target),
            _ => {}
        }
        needs
    }
}

/// Writes the entries of `state` and the head they stand at (`fresh`:
/// into tables just emptied, see [`rows::save`]).
fn write(
    tx: &rusqlite::Transaction<'_>,
    state: &State,
    appended: AppendedIds,
    (head, header): (Head, LineHash),
    fresh: bool,
) -> Result<(), ModelError> {
    rows::save(tx, state, appended, fresh)?;
    let (seq, hash, end, at) = columns_of(head)?;
    tx.execute(
        "INSERT OR REPLACE INTO head (one, format, journal, seq, hash, line_end, at)
         VALUES (1, ?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            format!("{FORMAT} {VERSION}"),
            header.to_string(),
            seq,
            hash,
            end,
            at
        ],
    )?;
    Ok(())
}

/// Whether the model's head row, read in the write transaction `tx`, is
/// still `head`: another process may have moved it since it was read.
fn stands_at(tx: &rusqlite::Transaction<'_>, head: Head) -> Result<bool, ModelError> {
    let at: Option<(String, i64)> = tx
        .query_row("SELECT hash, seq FROM head WHERE one = 1", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()?;
    Ok(at == Some((head.hash.to_string(), rows::int(head.seq)?)))
}

/// Records `head` as checked (see [`ReadModel::checked`]).
fn set_checked(tx: &rusqlite::Transaction<'_>, head: Head) -> Result<(), ModelError> {
    let (seq, hash, end, at) = columns_of(head)?;
    tx.execute(
        "INSERT OR REPLACE INTO checked (one, seq, hash, line_end, at)
         VALUES (1, ?1, ?2, ?3, ?4)",
        params![seq, hash, end, at],
    )?;
    Ok(())
}

/// A head as the model's tables hold it (see [`Recorded`]).
fn columns_of(head: Head) -> Result<(i64, String, i64, String), ModelError> {
    Ok((
        rows::int(head.seq)?,
        head.hash.to_string(),
        rows::int(head.end)?,
        head.at.to_string(),
    ))
}

/// The device and inode of the file at `path` (not following a link).
fn file_id(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::symlink_metadata(path).ok()?;
    Some((meta.dev(), meta.ino()))
}

/// The database at `path`'s log and shared memory, SQLite's files beside it.
fn companions(path: &Path) -> [PathBuf; 2] {
    [suffixed(path, "-wal"), suffixed(path, "-shm")]
}

/// Opens the database at `path` and sets it up for a cache.
fn connect(path: &Path) -> Result<Connection, ModelError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_NOFOLLOW
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    // SQLite takes a name that starts with `file:` for a URI (the bundled
    // build turns URIs on for every open), which would open another file
    // than the one checked beside the journal: `./file:x` is a plain name.
    let path = if path.is_relative() {
        Path::new(".").join(path)
    } else {
        path.to_owned()
    };
    let c = Connection::open_with_flags(path, flags)?;
    c.busy_timeout(std::time::Duration::from_secs(10))?;
    // Room for every statement a command prepares: one evicted would be
    // parsed again at each use.
    c.set_prepared_statement_cache_capacity(64);
    // A cache needs no durability of its own: the journal is synced first,
    // and a model that lost its last commits is only behind. WAL lets
    // readers read while a writer writes; no checkpoint on close spares
    // each command the fsyncs of one.
    c.pragma_update(None, "journal_mode", "WAL")?;
    c.pragma_update(None, "synchronous", "NORMAL")?;
    c.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE,
        true,
    )?;
    // One plan per statement, whatever is bound to it: without it, SQLite
    // plans (and parses) a statement anew whenever a bound value might
    // change the plan, which was most of a large batch's time.
    c.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )?;
    c.execute_batch(rows::SCHEMA)?;
    c.execute_batch(index::SCHEMA)?;
    Ok(c)
}

/// `state` if it keeps every invariant of a whole state.
fn whole(state: State) -> Result<State, ModelError> {
    match state.inconsistency() {
        Some(problem) => Err(ModelError::Malformed(problem)),
        None => Ok(state),
    }
}

fn suffixed(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// The line (without `\n`) that ends just before byte `end` of `file`, if
/// there is one no longer than a journal line.
pub fn line_ending_at(file: &Backing, end: u64) -> Option<Vec<u8>> {
    // The line, its `\n` and the one before it: most lines are a few
    // hundred bytes, so a small read first (every command with a model
    // makes it); a line longer than any journal line fails the check.
    for window in [4096, line::MAX_LINE as u64 + 2] {
        let from = end.saturating_sub(window);
        let mut buf = vec![0u8; usize::try_from(end - from).ok()?];
        file.read_exact_at(&mut buf, from).ok()?;
        let line = buf.strip_suffix(b"\n")?;
        match memchr::memrchr(b'\n', line) {
            Some(i) => return Some(line[i + 1..].to_vec()),
            None if from == 0 => return None,
            None => {}
        }
    }
    None
}

/// The line (without `\n`) that starts at byte `start` of `file`, read no
/// further than byte `len`, if there is one no longer than a journal line.
pub fn line_starting_at(file: &Backing, start: u64, len: u64) -> Option<Vec<u8>> {
    // As in `line_ending_at`: a small read first.
    for window in [4096, line::MAX_LINE as u64 + 1] {
        let to = start.saturating_add(window).min(len);
        let mut buf = vec![0u8; usize::try_from(to.checked_sub(start)?).ok()?];
        file.read_exact_at(&mut buf, start).ok()?;
        if let Some(i) = memchr::memchr(b'\n', &buf) {
            buf.truncate(i);
            return Some(buf);
        }
        if to == len {
            return None;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each id comes out with the seq it was staged at; events without an
    /// id before the first with one cost nothing.
    #[test]
    fn appended_ids_keep_each_ids_seq() {
        let mut appended = AppendedIds::default();
        appended.push(3, None);
        assert!(appended.keys.is_empty());
        for (seq, id) in [(4, Some("a")), (5, None), (6, Some("b")), (7, None)] {
            appended.push(seq, id.map(crate::domain::id_key));
        }
        let mut rows: Vec<u128> = appended
            .by_bucket()
            .expect("a few ids")
            .flat_map(|(_, entries)| entries)
            .collect();
        rows.sort_unstable();
        let mut want = [
            rows::id_row_of(crate::domain::id_key("a"), 4),
            rows::id_row_of(crate::domain::id_key("b"), 6),
        ];
        want.sort_unstable();
        assert_eq!(rows, want);
    }
}

#[cfg(test)]
mod rebuild_tests {
    use super::*;
    use crate::domain::{Command, Request};
    use crate::journal::scan::Replay;
    use crate::journal::{ReadJournal, Writer};
    use crate::money::Decimal;
    use proptest::prelude::*;

    /// Each id's key comes out with its seq, for a few ids (keyed at the
    /// end) and for more than a batch (keyed on a thread).
    #[test]
    fn a_keyer_keys_every_id_with_its_seq() {
        for n in [3, 2 * KEY_BATCH as u64 + 5] {
            let mut keyer = Keyer::default();
            let mut want = Vec::new();
            for seq in 1..=n {
                if seq % 3 != 0 {
                    let id = format!("id-{seq}");
                    keyer.push(seq, &id);
                    want.push(rows::id_row_of(crate::domain::id_key(&id), seq));
                }
            }
            let keys = keyer.finish().expect("keys");
            let mut got: Vec<u128> = keys
                .by_bucket()
                .expect("by bucket")
                .flat_map(|(_, entries)| entries)
                .collect();
            got.sort_unstable();
            want.sort_unstable();
            assert_eq!(got, want, "{n} ids");
        }
    }

    /// Writes accounts `a` and `b`, then `draws`: deposits and transfers
    /// with ids drawn from a few (a repeat is a repeat, or refused), and
    /// deposits without one.
    fn write_journal(path: &Path, draws: &[(u8, u8)]) {
        let mut w = Writer::open(path).expect("open");
        for account in ["a", "b"] {
            let create = Command::create(account);
            w.apply(&Request::new(create)).expect("create");
        }
        let cent = Decimal::parse_positive("0.01").expect("amount");
        for &(kind, n) in draws {
            let id = format!("i{n}");
            let command = match kind % 3 {
                0 => Command::Transfer {
                    from: "b",
                    to: "a",
                    amount: cent,
                },
                _ => Command::Deposit {
                    account: "b",
                    amount: cent,
                },
            };
            let id = (kind % 3 != 2).then_some(id.as_str());
            let _ = w.apply(&Request {
                id,
                ..Request::new(command)
            });
        }
        w.commit().expect("commit");
    }

    /// Every row of every table of the model beside `path`, in order.
    fn rows_of(path: &Path) -> Vec<Vec<rusqlite::types::Value>> {
        let c = Connection::open(path_of(path)).expect("model");
        let mut all = Vec::new();
        for table in [
            "head",
            "checked",
            "units",
            "account_pages",
            "first_account",
            "id_keys",
            "reversed",
            "holds",
            "ended",
        ] {
            let mut stmt = c
                .prepare(&format!("SELECT * FROM {table} ORDER BY 1"))
                .expect("select");
            let n = stmt.column_count();
            let rows = stmt
                .query_map([], |r| (0..n).map(|i| r.get(i)).collect())
                .expect("rows");
            all.extend(rows.map(|r| r.expect("row")));
        }
        all
    }

    /// Builds the model of the journal at `path` afresh from a replay of
    /// it: `state` empty, keeping the ids' keys as it goes, or (`None`)
    /// into a state of names, as before; returns its rows.
    fn rebuilt(path: &Path, state: Option<State>) -> Vec<Vec<rusqlite::types::Value>> {
        for name in [path_of(path), suffixed(&path_of(path), "-wal")] {
            let _ = std::fs::remove_file(name);
        }
        let journal = ReadJournal::open(path).expect("open").expect("journal");
        let header = journal.header_head().expect("header");
        let scanner = journal.scanner().expect("scanner");
        let mut replay = match &state {
            Some(state) => Replay::keeping_id_keys_in(scanner, state.clone()),
            None => Replay::new(scanner, State::default()),
        };
        replay.run().expect("replay");
        let keys = replay.id_keys();
        assert_eq!(keys.is_some(), state.is_some());
        let (state, head, _) = replay.finish();
        let mut model = ReadModel::open(path, Owner::me()).expect("model");
        model
            .rebuild(&state, keys.unwrap_or_default(), (head, head), header.hash)
            .expect("rebuild");
        drop(model);
        rows_of(path)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(8))]

        /// A model rebuilt from a replay that keeps the ids' keys, also
        /// when nearly every id shares its fingerprint (the replay then
        /// learns some by name), and from a read's, which collects the ids
        /// to prove them distinct at its end, is row for row the one
        /// rebuilt from a state of names.
        #[test]
        fn a_rebuild_by_keys_writes_the_model_a_rebuild_by_names_does(
            draws in prop::collection::vec((0u8..3, 0u8..40), 0..80),
        ) {
            let dir = tempfile::tempdir().expect("dir");
            let path = dir.path().join("j.jsonl");
            write_journal(&path, &draws);
            let by_names = rebuilt(&path, None);
            prop_assert_eq!(&rebuilt(&path, Some(State::fingerprinting())), &by_names);
            prop_assert_eq!(&rebuilt(&path, Some(State::fingerprinting_colliding())), &by_names);
            prop_assert_eq!(&rebuilt(&path, Some(State::auditing())), &by_names);
            prop_assert_eq!(&rebuilt(&path, Some(State::auditing_colliding())), &by_names);
        }
    }
}

#[cfg(test)]
mod foresight_tests {
    use super::*;
    use crate::domain::{Command, Request, id_key};
    use crate::journal::{Outcome, Writer};
    use crate::money::Decimal;

    fn deposit<'a>(account: &'a str, amount: &str, id: &'a str) -> Request<'a> {
        let amount = Decimal::parse_positive(amount).expect("amount");
        Request {
            id: Some(id),
            ..Request::new(Command::Deposit { account, amount })
        }
    }

    /// What a writer on the journal at `path` makes of `requests`, told
    /// their ids once it has applied `foresee` of them, or never; nothing
    /// committed.
    fn outcomes(
        path: &Path,
        requests: &[Request<'_>],
        foresee: Option<usize>,
    ) -> Vec<Result<Outcome, String>> {
        let mut w = Writer::open(path).expect("open");
        let mut outcomes = Vec::new();
        for (i, request) in requests.iter().enumerate() {
            if foresee == Some(i) {
                let keys = requests.iter().flat_map(Request::ids).map(id_key).collect();
                assert!(w.foresee_ids(keys).is_some(), "the writer takes the keys");
            }
            outcomes.push(w.apply(request).map_err(|e| e.to_string()));
        }
        outcomes
    }

    /// A writer on a file's read model told the ids of its requests,
    /// before it applies them or after any number of them, answers each
    /// as a writer that was not: a repeat of an id of the
    /// model (the same command, or another), of one of its own, an id
    /// named once, and a hold it places and captures by id.
    #[test]
    fn a_writer_told_its_ids_ahead_answers_as_one_that_was_not() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("j.jsonl");
        let memo = "m".repeat(400);
        let mut w = Writer::open(&path).expect("open");
        w.apply(&Request::new(Command::create("a")))
            .expect("create");
        let ids: Vec<String> = (0..3000).map(|i| format!("k{i}")).collect();
        for id in &ids {
            let request = Request {
                memo: Some(&memo),
                ..deposit("a", "1", id)
            };
            w.apply(&request).expect("deposit");
        }
        w.commit().expect("commit");
        drop(w);
        assert!(path_of(&path).is_file(), "a model beside a long journal");
        // Two ids after the model's head: the model put back as it was
        // before them, they are read from the journal, by name.
        let model: Vec<(PathBuf, Vec<u8>)> = ["", "-wal", "-shm"]
            .iter()
            .map(|suffix| suffixed(&path_of(&path), suffix))
            .filter_map(|p| Some((p.clone(), std::fs::read(&p).ok()?)))
            .collect();
        let mut w = Writer::open(&path).expect("open");
        for id in ["t1", "t2"] {
            w.apply(&deposit("a", "1", id)).expect("deposit");
        }
        w.commit().expect("commit");
        drop(w);
        for (p, bytes) in &model {
            std::fs::write(p, bytes).expect("put the model back");
        }
        let hold = Decimal::parse_positive("2").expect("amount");
        let requests = [
            Request {
                memo: Some(&memo),
                ..deposit("a", "1", "k5")
            },
            deposit("a", "1", "n1"),
            deposit("a", "1", "n2"),
            deposit("a", "1", "n1"),
            deposit("a", "3", "n2"),
            deposit("a", "1", "k7"),
            Request {
                id: Some("h"),
                ..Request::new(Command::Hold {
                    account: "a",
                    amount: hold,
                    to: None,
                    expires: None,
                })
            },
            Request::new(Command::Capture {
                target: crate::domain::Target::Id("h"),
                amount: None,
            }),
            deposit("a", "1", "n3"),
            deposit("a", "1", "t1"),
            deposit("a", "2", "t2"),
        ];
        // Mostly new ids, as a long batch's are: a writer told of ids
        // mostly used before does not take them.
        let fresh: Vec<String> = (0..40).map(|i| format!("f{i}")).collect();
        let requests: Vec<Request<'_>> = (requests.into_iter())
            .chain(fresh.iter().map(|id| deposit("a", "1", id)))
            .collect();
        let told = outcomes(&path, &requests, Some(0));
        assert_eq!(told, outcomes(&path, &requests, None));
        for after in 1..requests.len() {
            assert_eq!(
                outcomes(&path, &requests, Some(after)),
                told,
                "after {after}"
            );
        }
        assert!(matches!(told[0], Ok(Outcome::Repeat(7))), "{told:?}");
        assert!(matches!(told[3], Ok(Outcome::Repeat(_))), "{told:?}");
        assert!(told[4].is_err() && told[5].is_err(), "{told:?}");
        assert!(matches!(told[8], Ok(Outcome::Appended(_))), "{told:?}");
        assert!(matches!(told[9], Ok(Outcome::Repeat(3002))), "{told:?}");
        assert!(told[10].is_err(), "{told:?}");
        let mut w = Writer::open(&path).expect("open");
        let used_before = ["k1", "k2", "f0"].map(id_key).to_vec();
        assert!(
            w.foresee_ids(used_before).is_none(),
            "mostly ids used before"
        );
    }
}

#[cfg(test)]
mod review_tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// by_bucket gives exactly the (key, seq) of every id pushed, each
        /// in its bucket, buckets ascending and non-empty, whatever the
        /// first seq (past 2^24, 2^32) and the gaps of events without ids.
        #[test]
        fn by_bucket_matches_a_naive_sort(
            first in prop_oneof![Just(1u64), Just((1u64 << 24) - 3), Just(1u64 << 24), Just((1u64 << 32) + 7), 1u64..1_000_000],
            ids in proptest::collection::vec(proptest::option::weighted(0.5, 0u32..50_000), 0..300),
        ) {
            let mut appended = AppendedIds::default();
            let mut want = Vec::new();
            for (i, id) in ids.iter().enumerate() {
                let seq = first + i as u64;
                let text = id.map(|n| format!("x{n}-{i}"));
                appended.push(seq, text.as_deref().map(crate::domain::id_key));
                if let Some(t) = &text {
                    want.push(rows::id_row_of(crate::domain::id_key(t), seq));
                }
            }
            want.sort_unstable();
            let mut got = Vec::new();
            let mut last = -1i64;
            for (bucket, entries) in appended.by_bucket().expect("by bucket") {
                prop_assert!(bucket > last);
                prop_assert!(!entries.is_empty());
                last = bucket;
                for e in entries {
                    prop_assert_eq!(rows::bucket_index((e >> 64) as i64) as i64, bucket);
                    got.push(e);
                }
            }
            got.sort_unstable();
            prop_assert_eq!(got, want);
        }
    }
}
