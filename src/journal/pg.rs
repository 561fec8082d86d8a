//! The journal in a PostgreSQL database (SPEC 15).
//!
//! The database holds the journal's exact bytes, one row per line (the
//! header is seq 0), each with the offset just past its `\n` as it would be
//! in a file. Readers see those bytes as a file through [`Db::read_at`], so
//! the scanner, `verify` and `export --to jsonl` are the file's, with the
//! same hash chain and the same messages. A one-row head table, locked
//! `FOR UPDATE`, serialises writers as the file lock does; a write's lines
//! and the head's new length commit in one transaction, so there are no
//! torn tails.
//!
//! The location names the database by URL; its password (from the URL,
//! `PGPASSWORD` or the password file) is kept here and never shown: the
//! journal's "path" everywhere else is the URL without it.

use std::cell::RefCell;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{LazyLock, Mutex, OnceLock, PoisonError, mpsc};
use std::time::Duration;

use memchr::memmem::Finder;
use postgres::config::Host;
use postgres::error::SqlState;
use postgres::fallible_iterator::FallibleIterator;
use postgres::{Client, Config, NoTls};

use super::JournalError;

mod copy;
mod ends;
mod stream;
mod tls;

pub use stream::LineStream;

/// Whether a location names a PostgreSQL database rather than a file.
pub fn is_location(location: &str) -> bool {
    scheme_len(location).is_some()
}

/// The length of a location's `postgresql://` or `postgres://`, in any
/// case (a URL's scheme is case-insensitive, RFC 3986).
fn scheme_len(location: &str) -> Option<usize> {
    ["postgresql://", "postgres://"]
        .into_iter()
        .find_map(|scheme| {
            let head = location.get(..scheme.len())?;
            head.eq_ignore_ascii_case(scheme).then_some(scheme.len())
        })
}

/// The URLs this process was given, by the name they are shown under.
static NAMED: OnceLock<Mutex<Vec<(PathBuf, String)>>> = OnceLock::new();

/// The name under which the database at `url` is shown (the URL without
/// its password), remembering the URL itself for connecting.
pub fn name(url: &str) -> PathBuf {
    // The driver reads only a scheme in lower case.
    let url = &match scheme_len(url) {
        Some(n) => format!("{}{}", url[..n].to_ascii_lowercase(), &url[n..]),
        None => url.to_owned(),
    };
    let shown = PathBuf::from(without_password(url));
    if let Ok(mut named) = NAMED.get_or_init(Mutex::default).lock() {
        named.retain(|(s, _)| *s != shown);
        named.push((shown.clone(), url.to_owned()));
    }
    shown
}

/// The URL of the database shown as `path`, if it names one.
fn url_of(path: &Path) -> Option<String> {
    let text = path.to_str().filter(|t| is_location(t))?;
    let named = NAMED.get_or_init(Mutex::default).lock().ok()?;
    let url = named
        .iter()
        .find(|(s, _)| s == path)
        .map(|(_, u)| u.clone());
    Some(url.unwrap_or_else(|| text.to_owned()))
}

/// Whether `path` is the shown name of a database.
pub fn is_database(path: &Path) -> bool {
    path.to_str().is_some_and(is_location)
}

/// `url` without the password of its user part, if it has one, and
/// without a `password` query parameter.
fn without_password(url: &str) -> String {
    // The user part first: a password may hold a `?`.
    let url = without_user_password(url);
    let Some((base, query)) = url.split_once('?') else {
        return url;
    };
    let kept: Vec<&str> = query
        .split('&')
        .filter(|pair| {
            let key = pair.split_once('=').map_or(*pair, |(k, _)| k);
            tls::percent_decoded(key) != "password"
        })
        .collect();
    format!("{base}?{}", kept.join("&"))
}

/// `url` without the password of its user part. The user part is read as
/// the driver reads it: up to the first `@` after the scheme, wherever it
/// is (a password may hold a `/`, a `?` or a `:`; the user name ends at
/// the first `:`), so that whatever the driver sends as a password is
/// never shown.
fn without_user_password(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return url.to_owned();
    };
    let rest = &url[scheme_end..];
    let Some(at) = rest.find('@') else {
        return url.to_owned();
    };
    let user = rest[..at].split(':').next().unwrap_or_default();
    format!(
        "{}{user}{}",
        &url[..scheme_end],
        &rest[at..] // from the '@' on
    )
}

/// Calls `wake` on a thread of its own each time a write commits to the
/// database shown as `path`, and after each (re)connection, until `wake`
/// returns false. Returns whether it is listening.
pub fn listen(path: &Path, wake: impl Fn() -> bool + Send + 'static) -> bool {
    let Some(url) = url_of(path) else {
        return false;
    };
    let path = path.to_owned();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let spawned = std::thread::Builder::new()
        .name("ledger-listen".into())
        .spawn(move || {
            loop {
                let listening = connect(&path, &url).and_then(|mut client| {
                    client
                        .batch_execute("LISTEN ledger")
                        .map_err(|e| database_error(&path, "listen to", &e))?;
                    Ok(client)
                });
                let Ok(mut client) = listening else {
                    // Meanwhile the follower polls; try again in a while.
                    std::thread::sleep(Duration::from_secs(1));
                    continue;
                };
                let _ = ready_tx.send(());
                // What committed while (re)connecting is read by this round.
                if !wake() {
                    return;
                }
                let mut notifications = client.notifications();
                let mut each = notifications.blocking_iter();
                while let Ok(Some(_)) = each.next() {
                    if !wake() {
                        return;
                    }
                }
            }
        });
    spawned.is_ok() && ready_rx.recv_timeout(CONNECT_TIMEOUT).is_ok()
}

/// The lines holding byte `$1` and those after it, `$2` of them at most.
const FETCH_LINES: &str =
    "SELECT end_off, line FROM ledger_lines WHERE end_off > $1 ORDER BY end_off LIMIT $2";

/// Rows fetched by one query while reading lines in order, at most; a
/// read that jumps about fetches few.
const MOST_ROWS: i64 = 16384;
const FEWEST_ROWS: i64 = 16;

/// A connection to a journal's database, with a window of its bytes.
pub struct Db {
    client: RefCell<Client>,
    path: PathBuf,
    window: RefCell<Window>,
    /// Statements prepared on this connection, by their text: a command
    /// runs a few over and over (a batch, one lookup per line).
    prepared: RefCell<Vec<(&'static str, postgres::Statement)>>,
    /// The head row as this transaction began.
    head: std::cell::Cell<Option<Stored>>,
    /// Lines read ahead by seq (see [`Db::remember_line`]).
    lines: RefCell<rustc_hash::FxHashMap<u64, Vec<u8>>>,
    /// The open read's snapshot, exported for another connection to join
    /// (see [`Db::line_stream`]): only for a journal long enough to be
    /// streamed.
    snapshot: RefCell<Option<String>>,
    /// Whether the server has refused to export a snapshot (then no read
    /// on this connection asks again).
    no_export: std::cell::Cell<bool>,
    /// Whether this write created the lines table, whose keys it adds
    /// after appending (see [`LINES_KEYS`]).
    fresh_lines: std::cell::Cell<bool>,
}

/// The head row's values.
#[derive(Clone, Copy)]
struct Stored {
    seq: i64,
    len: i64,
    /// The seq the read model's rows stand at.
    rows: i64,
    /// Whether the lines' hold ends are a unique column yet (see
    /// [`ends::add`]).
    ends: bool,
}

/// Bytes of the journal from `start`, as last fetched.
#[derive(Default)]
struct Window {
    start: u64,
    bytes: Vec<u8>,
    /// Rows the next sequential fetch asks for.
    rows: i64,
}

/// A line a search found.
pub struct Found {
    /// Its event's seq.
    pub seq: u64,
    /// The line, without `\n`.
    pub line: Vec<u8>,
    /// The line after it, `None` for the last line.
    pub next: Option<Vec<u8>>,
}

/// What a writer finds under the head's lock.
pub struct Locked {
    /// The journal's length in bytes (0: not even a header yet).
    pub len: u64,
}

const SCHEMA: &str = r#"
    CREATE TABLE IF NOT EXISTS ledger_head (
        id smallint PRIMARY KEY CHECK (id = 1),
        seq bigint NOT NULL,
        len bigint NOT NULL,
        rows_seq bigint NOT NULL
    );
    -- Unique where set: most lines have neither, and are not indexed.
    CREATE UNIQUE INDEX IF NOT EXISTS ledger_lines_id ON ledger_lines (id) WHERE id IS NOT NULL;
    CREATE UNIQUE INDEX IF NOT EXISTS ledger_lines_creates ON ledger_lines (creates)
        WHERE creates IS NOT NULL;
    CREATE UNIQUE INDEX IF NOT EXISTS ledger_lines_reverses ON ledger_lines (reverses)
        WHERE reverses IS NOT NULL;
    INSERT INTO ledger_head (id, seq, len, rows_seq) VALUES (1, 0, 0, 0) ON CONFLICT DO NOTHING;
"#;

/// The lines table, made by the write that creates the tables, without
/// its keys: see [`LINES_KEYS`]. (Created before [`SCHEMA`], which indexes
/// it.) Its `ends` column is added as an older table's is, by
/// [`ends::add`].
const LINES: &str = r#"
    CREATE TABLE ledger_lines (
        seq bigint NOT NULL,
        end_off bigint NOT NULL,
        line bytea NOT NULL,
        id text COLLATE "C",
        creates text COLLATE "C",
        reverses bigint
    )"#;

/// The lines table's keys, added once the first write's lines are in:
/// building an index from a million rows costs a fraction of inserting
/// them one by one into two (most of a first `batch`'s time on the
/// server). The other writers wait for the table until this transaction
/// ends, so none sees it without them; and its lines are unique anyway,
/// as the chain that numbers them.
const LINES_KEYS: &str = "ALTER TABLE ledger_lines
    ADD CONSTRAINT ledger_lines_pkey PRIMARY KEY (seq),
    ADD CONSTRAINT ledger_lines_end_off_key UNIQUE (end_off)";

/// How a write begins. Once it holds the head row's lock, no other write
/// can commit, and each statement of `READ COMMITTED` sees every write
/// committed before it: what the file lock gives. A database whose
/// default is `SERIALIZABLE` would refuse a write whose snapshot predates
/// the lock (40001) for nothing: a batch could not simply be tried again,
/// its input read once.
const WRITE: &str = "BEGIN ISOLATION LEVEL READ COMMITTED";

/// Any key: it only keeps two first writers from creating the tables at
/// once.
const CREATING: i64 = 0x6c65_6467_6572;

impl Db {
    /// Connects to the database shown as `path`; `None` if `path` names a
    /// file.
    pub fn connect(path: &Path) -> Option<Result<Db, JournalError>> {
        let url = url_of(path)?;
        Some(connect(path, &url).map(|client| Db {
            client: RefCell::new(client),
            path: path.to_owned(),
            window: RefCell::default(),
            prepared: RefCell::default(),
            head: std::cell::Cell::new(None),
            lines: RefCell::default(),
            snapshot: RefCell::default(),
            no_export: std::cell::Cell::new(false),
            fresh_lines: std::cell::Cell::new(false),
        }))
    }

    fn error(&self, action: &'static str, e: &postgres::Error) -> JournalError {
        database_error(&self.path, action, e)
    }

    /// Runs `sql` (prepared once per connection) with `params`.
    pub fn query(
        &self,
        sql: &'static str,
        params: &[&(dyn postgres::types::ToSql + Sync)],
    ) -> Result<Vec<postgres::Row>, postgres::Error> {
        let statement = self.statement(sql)?;
        self.client.borrow_mut().query(&statement, params)
    }

    /// Runs `sql` (prepared once per connection) for its effect.
    pub fn execute(
        &self,
        sql: &'static str,
        params: &[&(dyn postgres::types::ToSql + Sync)],
    ) -> Result<u64, postgres::Error> {
        let statement = self.statement(sql)?;
        self.client.borrow_mut().execute(&statement, params)
    }

    /// Prepares `statements` (and the read of lines) before a write locks
    /// the head: a new connection's server process plans each statement
    /// the first time, with its catalog caches cold, and that need not
    /// happen while other writers wait for the lock. Best effort: on a
    /// database without the tables yet, they are prepared when first run.
    pub fn prepare_ahead(&self, statements: &[&'static str]) {
        for sql in statements.iter().chain([&FETCH_LINES]) {
            if self.statement(sql).is_err() {
                return;
            }
        }
    }

    fn statement(&self, sql: &'static str) -> Result<postgres::Statement, postgres::Error> {
        if let Some((_, s)) = self.prepared.borrow().iter().find(|(t, _)| *t == sql) {
            return Ok(s.clone());
        }
        let statement = self.client.borrow_mut().prepare(sql)?;
        self.prepared.borrow_mut().push((sql, statement.clone()));
        Ok(statement)
    }

    /// Starts a snapshot of the journal for reading: its length, or `None`
    /// if it has no tables yet.
    pub fn begin_read(&self) -> Result<Option<u64>, JournalError> {
        match self.begin("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", "") {
            Ok(()) => {
                let len = self.len()?;
                let streamed = len >= super::scan::THREAD_MIN_BYTES && !self.no_export.get();
                if streamed && !self.export_snapshot() {
                    // The refusal (no privilege, a server without the
                    // function) ended the transaction: begin it again.
                    self.no_export.set(true);
                    self.rollback();
                    return self.begin_read();
                }
                Ok(Some(len))
            }
            Err(e) if e.code() == Some(&SqlState::UNDEFINED_TABLE) => {
                self.rollback();
                Ok(None)
            }
            Err(e) => Err(self.error("read", &e)),
        }
    }

    /// Exports the read's snapshot for a second connection to stream the
    /// lines in (see [`Db::line_stream`]), before anything is read; false
    /// if the server refused. While that connection streams, this one
    /// waits in the transaction, which the server's
    /// `idle_in_transaction_session_timeout` would not know.
    fn export_snapshot(&self) -> bool {
        let exported = self.client.borrow_mut().simple_query(
            "SELECT pg_export_snapshot(); SET LOCAL idle_in_transaction_session_timeout = 0",
        );
        let Ok(messages) = exported else {
            return false;
        };
        *self.snapshot.borrow_mut() = first_row(&messages)
            .and_then(|r| r.get(0))
            .map(str::to_owned);
        true
    }

    /// Starts a write: locks the head row (creating the tables first if
    /// there are none, in the same transaction, so a refused first write
    /// leaves nothing behind).
    pub fn begin_write(&self) -> Result<Locked, JournalError> {
        match self.begin(WRITE, " FOR UPDATE") {
            Ok(()) if self.head.get().is_some_and(|h| !h.ends) => {
                // Tables made before the lines' hold ends: the column is
                // added under the head's lock, and kept even if this
                // write is refused.
                self.add_hold_ends()?;
                // A failed `COMMIT` ends the transaction too.
                self.client
                    .borrow_mut()
                    .batch_execute("COMMIT")
                    .map_err(|e| self.error("update the tables of", &e))?;
                self.begin(WRITE, " FOR UPDATE")
                    .map_err(|e| self.error("lock", &e))?;
            }
            Ok(()) => {}
            Err(e) if e.code() == Some(&SqlState::UNDEFINED_TABLE) => {
                self.rollback();
                let fresh = self
                    .create_tables()
                    .map_err(|e| self.error("create the tables of", &e))?;
                self.add_hold_ends()?;
                self.begin("", " FOR UPDATE")
                    .map_err(|e| self.error("lock", &e))?;
                self.fresh_lines.set(fresh);
            }
            Err(e) => return Err(self.error("lock", &e)),
        }
        Ok(Locked { len: self.len()? })
    }

    /// Gives the lines table its `ends` column, if it has not its index
    /// yet ([`ends::add`]), in the write's transaction: rolled back if
    /// that fails.
    fn add_hold_ends(&self) -> Result<(), JournalError> {
        let added = ends::add(&mut self.client.borrow_mut(), &self.path);
        if added.is_err() {
            self.rollback();
        }
        added
    }

    /// Creates the tables that do not exist, in a write's transaction
    /// under a lock that keeps other first writers waiting: whether the
    /// lines table is new (then without its keys yet, see [`LINES_KEYS`]).
    fn create_tables(&self) -> Result<bool, postgres::Error> {
        let mut client = self.client.borrow_mut();
        client.batch_execute(WRITE)?;
        client.execute("SELECT pg_advisory_xact_lock($1)", &[&CREATING])?;
        let absent = client.query_one("SELECT to_regclass('ledger_lines') IS NULL", &[])?;
        let fresh: bool = absent.try_get(0)?;
        if fresh {
            client.batch_execute(LINES)?;
        }
        client.batch_execute(SCHEMA)?;
        client.batch_execute(crate::readmodel::DATABASE_SCHEMA)?;
        Ok(fresh)
    }

    /// Runs `begin` and reads the head row (`lock` after its query) in one
    /// round trip, keeping what it says for [`Db::len`] and
    /// [`Db::rows_cover`].
    fn begin(&self, begin: &str, lock: &str) -> Result<(), postgres::Error> {
        *self.snapshot.borrow_mut() = None;
        self.fresh_lines.set(false);
        let sql = format!(
            "{begin}; SELECT seq, len, rows_seq, to_regclass('{}') IS NOT NULL
                 FROM ledger_head WHERE id = 1{lock}",
            ends::INDEX
        );
        let messages = self.client.borrow_mut().simple_query(&sql)?;
        // A new snapshot: nothing read under an earlier one is kept.
        *self.window.borrow_mut() = Window::default();
        let head = first_row(&messages).map(|row| {
            let int = |i| row.get(i).and_then(|t: &str| t.parse::<i64>().ok());
            let ends = row.get(3) == Some("t");
            ([int(0), int(1), int(2)], ends)
        });
        self.head.set(head.map(|([seq, len, rows], ends)| Stored {
            seq: seq.unwrap_or(-1),
            len: len.unwrap_or(-1),
            rows: rows.unwrap_or(-1),
            ends,
        }));
        Ok(())
    }

    /// The journal's length as the head row says (0 without one).
    fn len(&self) -> Result<u64, JournalError> {
        let len = self.head.get().map_or(0, |h| h.len);
        u64::try_from(len).map_err(|_| self.corrupt_head(len))
    }

    fn corrupt_head(&self, len: i64) -> JournalError {
        JournalError::Corrupt {
            path: self.path.clone(),
            line: 1,
            reason: format!("the head row says the journal is {len} bytes long"),
        }
    }

    /// Appends `lines` (each without `\n`, the first at seq `first_seq`,
    /// the journal `len` bytes long before them) in the write's
    /// transaction. Returns the last seq and the new length; nothing is
    /// seen by others before [`Db::commit`].
    pub fn append<E: From<JournalError>>(
        &self,
        first_seq: u64,
        len: u64,
        lines: impl FnOnce(&mut dyn FnMut(&[u8]) -> Result<(), JournalError>) -> Result<(), E>,
    ) -> Result<(u64, u64), E> {
        let mut client = self.client.borrow_mut();
        let mut sink = client
            .copy_in(
                "COPY ledger_lines (seq, end_off, line, id, creates, reverses, ends) FROM STDIN BINARY",
            )
            .map_err(|e| self.error("write", &e))?;
        let mut rows = copy::Rows::new();
        let mut scratch = Vec::new();
        let (mut seq, mut end) = (first_seq, len);
        let path = &self.path;
        let send = |sink: &mut postgres::CopyInWriter<'_>, bytes: &[u8]| {
            sink.write_all(bytes).map_err(|e| copy_error(path, e))
        };
        lines(&mut |line: &[u8]| {
            end += line.len() as u64 + 1;
            // The line's `--id` and what else it takes, in unique
            // columns (the header has none).
            let corrupt = |e: super::line::LineError| JournalError::Corrupt {
                path: path.clone(),
                line: seq + 1,
                reason: e.to_string(),
            };
            let (id, taken) = match seq {
                0 => (None, Taken::default()),
                _ => (
                    super::line::id_of(line, &mut scratch).map_err(corrupt)?,
                    taken_by(line, &mut scratch).map_err(corrupt)?,
                ),
            };
            rows.push(&copy::Row {
                seq: as_int(seq),
                end_off: as_int(end),
                line,
                id: id.as_deref(),
                creates: taken.creates.as_deref(),
                reverses: taken.reverses.map(as_int),
                ends: taken.ends.map_or(0, as_int),
            })
            .map_err(|e| JournalError::io(path, "write", e))?;
            if rows.full() {
                rows.send(|bytes| send(&mut sink, bytes))?;
            }
            seq += 1;
            Ok(())
        })?;
        rows.end();
        rows.send(|bytes| send(&mut sink, bytes))?;
        sink.finish().map_err(|e| self.error("write", &e))?;
        if self.fresh_lines.replace(false) {
            client
                .batch_execute(LINES_KEYS)
                .map_err(|e| self.error("write", &e))?;
        }
        Ok((seq.saturating_sub(1), end))
    }

    /// Writes the read model's rows with `save` (see
    /// [`crate::readmodel::ReadModel::save_in_database`]) in the write's
    /// transaction; if that fails, the rows are left as they were, marked
    /// stale, and the write goes on: the next command rebuilds them.
    pub fn save_rows<E>(&self, save: impl FnOnce() -> Result<(), E>) -> Result<bool, JournalError> {
        let run = |sql| {
            self.client
                .borrow_mut()
                .batch_execute(sql)
                .map_err(|e| self.error("write", &e))
        };
        run("SAVEPOINT ledger_rows")?;
        if save().is_ok() {
            run("RELEASE SAVEPOINT ledger_rows")?;
            return Ok(true);
        }
        run("ROLLBACK TO SAVEPOINT ledger_rows")?;
        Ok(false)
    }

    /// Moves the head to event `seq` ending at `len` (with the rows at it
    /// too if `rows`), wakes followers and commits. A connection lost
    /// while committing leaves the outcome unknown.
    pub fn commit(&self, seq: u64, len: u64, rows: bool) -> Result<(), JournalError> {
        let (seq, len) = (as_int(seq), as_int(len));
        let rows = if rows {
            seq.to_string()
        } else {
            "rows_seq".into()
        };
        // One round trip, the values being numbers of ours.
        let sql = format!(
            "UPDATE ledger_head SET rows_seq = {rows}, seq = {seq}, len = {len} WHERE id = 1;
             NOTIFY ledger, '{seq}'; COMMIT"
        );
        let mut client = self.client.borrow_mut();
        client.batch_execute(&sql).map_err(|e| {
            if client.is_closed() || e.as_db_error().is_none() {
                JournalError::CommitUnknown {
                    path: self.path.clone(),
                    reason: reason(&e),
                }
            } else {
                self.error("commit", &e)
            }
        })
    }

    /// The seq and length the read model's rows stand at, if they are at
    /// the journal's head (else they are stale: a copy wrote lines alone,
    /// or writing them failed), as the head row said when this
    /// transaction began.
    pub fn rows_cover(&self) -> Option<(u64, u64)> {
        let head = self.head.get()?;
        (head.rows == head.seq)
            .then_some((u64::try_from(head.seq).ok()?, u64::try_from(head.len).ok()?))
    }

    /// Removes every line (in the write's transaction): for a copy into a
    /// journal that holds a header alone.
    pub fn clear(&self) -> Result<(), JournalError> {
        self.client
            .borrow_mut()
            .batch_execute("DELETE FROM ledger_lines")
            .map_err(|e| self.error("write", &e))
    }

    /// The line of event `seq` (without `\n`), if there is one.
    pub fn line(&self, seq: u64) -> Result<Option<Vec<u8>>, JournalError> {
        if let Some(line) = self.lines.borrow_mut().remove(&seq) {
            return Ok(Some(line));
        }
        let rows = self
            .query(
                "SELECT line FROM ledger_lines WHERE seq = $1",
                &[&as_int(seq)],
            )
            .map_err(|e| self.error("read", &e))?;
        rows.first()
            .map(|r| r.try_get::<_, Vec<u8>>(0))
            .transpose()
            .map_err(|e| self.error("read", &e))
    }

    /// Up to `n` lines before event `below` that hold the bytes `needle`,
    /// the latest first: a search the server makes, reading the lines
    /// backwards, so that the client reads only those.
    pub fn lines_holding(
        &self,
        needle: &[u8],
        below: u64,
        n: usize,
    ) -> Result<Vec<Found>, JournalError> {
        let fail = |e: postgres::Error| self.error("read", &e);
        let rows = self
            .query(
                "SELECT l.seq, l.line, n.line FROM ledger_lines l
                 LEFT JOIN ledger_lines n ON n.seq = l.seq + 1
                 WHERE l.seq < $1 AND l.seq > 0 AND position($2::bytea in l.line) > 0
                 ORDER BY l.seq DESC LIMIT $3",
                &[&as_int(below), &needle, &as_int(n as u64)],
            )
            .map_err(fail)?;
        rows.iter()
            .map(|r| {
                let seq: i64 = r.try_get(0).map_err(fail)?;
                let seq = u64::try_from(seq)
                    .map_err(|_| JournalError::io(&self.path, "read", damaged("a negative seq")))?;
                Ok(Found {
                    seq,
                    line: r.try_get(1).map_err(fail)?,
                    next: r.try_get(2).map_err(fail)?,
                })
            })
            .collect()
    }

    /// Keeps the line of event `seq`, read ahead with the rows that name
    /// it (a batch's repeated `--id`s), for [`Db::line`] to hand out once.
    /// Forgets those kept before.
    pub fn remember_lines(&self, lines: impl IntoIterator<Item = (u64, Vec<u8>)>) {
        let mut kept = self.lines.borrow_mut();
        kept.clear();
        kept.extend(lines);
    }

    /// Whether the connection has been lost.
    pub fn is_closed(&self) -> bool {
        self.client.borrow().is_closed()
    }

    /// Ends the transaction without changing anything.
    pub fn rollback(&self) {
        // A failure leaves nothing to undo: the server rolls back when the
        // connection ends.
        *self.snapshot.borrow_mut() = None;
        let _ = self.client.borrow_mut().batch_execute("ROLLBACK");
    }

    /// A stream of this read's lines from the one after `start` to `len`
    /// on a connection of its own, seeing what this transaction sees.
    /// `None` outside a read, or where the server will not share its
    /// snapshot or take another connection: the caller then reads through
    /// [`Db::read_at`], only slower.
    pub fn line_stream(&self, start: u64, len: u64) -> Option<LineStream> {
        // Exported by `begin_read`: a failing export here would abort the
        // read's transaction, leaving no way back to `read_at`.
        let snapshot = self.snapshot.borrow().clone()?;
        let url = url_of(&self.path)?;
        LineStream::open(self.path.clone(), &url, &snapshot, start, len).ok()
    }

    /// Whether the lines record the hold each ends (their `ends` column): in
    /// every write, and in a read of a database written by this build.
    pub fn hold_ends(&self) -> bool {
        self.head.get().is_some_and(|h| h.ends)
    }

    /// The journal's length as the open transaction's head row says.
    pub fn head_len(&self) -> Option<u64> {
        self.head.get().and_then(|h| u64::try_from(h.len).ok())
    }

    /// Reads the journal's bytes from `offset` into `buf`, as a file's
    /// `read_at`: 0 at the end.
    pub fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let mut window = self.window.borrow_mut();
        let end = window.start + window.bytes.len() as u64;
        if offset < window.start || offset >= end {
            // Reading on from where the window ends fetches more at a time.
            window.rows = if offset == end && !window.bytes.is_empty() {
                (window.rows * 2).min(MOST_ROWS)
            } else {
                FEWEST_ROWS
            };
            self.fetch(&mut window, offset)?;
        }
        let Some(from) = offset
            .checked_sub(window.start)
            .and_then(|o| usize::try_from(o).ok())
            .filter(|&o| o < window.bytes.len())
        else {
            return Ok(0);
        };
        let n = buf.len().min(window.bytes.len() - from);
        buf[..n].copy_from_slice(&window.bytes[from..from + n]);
        Ok(n)
    }

    /// Fills the window with the line holding byte `offset` and those after it.
    fn fetch(&self, window: &mut Window, offset: u64) -> io::Result<()> {
        let rows = self
            .query(FETCH_LINES, &[&as_int(offset), &window.rows])
            .map_err(io::Error::other)?;
        window.bytes.clear();
        for (i, row) in rows.iter().enumerate() {
            let end: i64 = row.try_get(0).map_err(io::Error::other)?;
            let line: &[u8] = row.try_get(1).map_err(io::Error::other)?;
            let end = u64::try_from(end).map_err(|_| damaged("a negative offset"))?;
            if i == 0 {
                window.start = end
                    .checked_sub(line.len() as u64 + 1)
                    .ok_or_else(|| damaged("a line longer than its offset"))?;
            }
            window.bytes.extend_from_slice(line);
            window.bytes.push(b'\n');
            if window.start + window.bytes.len() as u64 != end {
                // Rows that do not fit end to end: show the bytes up to the
                // gap; the chain check finds what is missing.
                window.bytes.truncate(window.bytes.len() - line.len() - 1);
                break;
            }
        }
        Ok(())
    }
}

/// What a line takes that no other line may: the account it opens, the
/// movement it reverses, the hold it ends. The lines' unique columns keep
/// these, so the journal itself says which are taken.
#[derive(Default)]
struct Taken {
    creates: Option<String>,
    reverses: Option<u64>,
    ends: Option<u64>,
}

/// What the event on `line` takes (most lines take nothing, and are not
/// decoded).
fn taken_by(line: &[u8], scratch: &mut Vec<u8>) -> Result<Taken, super::line::LineError> {
    // Searchers built once: building one costs more than a line's search.
    // A string value cannot hold `"type":"` unescaped, so the first find
    // is the event's type.
    static TYPE: LazyLock<Finder> = LazyLock::new(|| Finder::new(br#""type":""#));
    static REVERSES: LazyLock<Finder> = LazyLock::new(|| Finder::new(br#","reverses":"#));
    let typed = TYPE
        .find(line)
        .and_then(|at| line.get(at + TYPE.needle().len()..))
        .unwrap_or_default();
    let takes = [
        &b"AccountCreated\""[..],
        b"HoldCaptured\"",
        b"HoldReleased\"",
    ]
    .iter()
    .any(|t| typed.starts_with(t));
    if !takes && REVERSES.find(line).is_none() {
        return Ok(Taken::default());
    }
    let event = super::line::decode(line, scratch)?.event;
    let (creates, ends) = match event.change {
        crate::event::Change::AccountCreated { account, .. } => (Some(account.into_owned()), None),
        crate::event::Change::HoldCaptured { hold, .. }
        | crate::event::Change::HoldReleased { hold, .. } => (None, Some(hold)),
        _ => (None, None),
    };
    Ok(Taken {
        creates,
        reverses: event.reverses,
        ends,
    })
}

/// An error of sending rows to `COPY`: the server's or the driver's,
/// named as its own errors are.
fn copy_error(path: &Path, e: io::Error) -> JournalError {
    match e
        .get_ref()
        .and_then(|e| e.downcast_ref::<postgres::Error>())
    {
        Some(e) => database_error(path, "write", e),
        None => JournalError::io(path, "write", e),
    }
}

/// The first row a simple query returned.
fn first_row(messages: &[postgres::SimpleQueryMessage]) -> Option<&postgres::SimpleQueryRow> {
    messages.iter().find_map(|m| match m {
        postgres::SimpleQueryMessage::Row(row) => Some(row),
        _ => None,
    })
}

fn damaged(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("the lines table holds {what}"),
    )
}

/// Offsets and seqs are stored as `bigint`; no journal reaches 2^63.
fn as_int(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn database_error(path: &Path, action: &'static str, e: &postgres::Error) -> JournalError {
    let conflict = [
        SqlState::T_R_SERIALIZATION_FAILURE,
        SqlState::T_R_DEADLOCK_DETECTED,
    ];
    if e.code().is_some_and(|code| conflict.contains(code)) {
        return JournalError::Conflict {
            path: path.to_owned(),
            action,
            reason: reason(e),
        };
    }
    JournalError::Database {
        path: path.to_owned(),
        action,
        reason: reason(e),
    }
}

/// A driver error in one line: the server's message when it sent one.
fn reason(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{}: {}", db.severity(), db.message()),
        None => {
            let mut text = e.to_string();
            let mut source = std::error::Error::source(e);
            while let Some(s) = source {
                text = format!("{text}: {s}");
                source = s.source();
            }
            text
        }
    }
}

/// How long to wait for a server before giving up, unless the URL says.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long sent bytes, or keepalive probes, may go unanswered before the
/// connection counts as lost, unless the URL says: a server whose host
/// died or whose network was cut mid-command then ends the command (exit
/// 4) in about half a minute, instead of the two hours and more of the
/// system's defaults; a follower waiting for news notices and reconnects.
const LOST_AFTER: Duration = Duration::from_secs(30);

fn connect(path: &Path, url: &str) -> Result<Client, JournalError> {
    let unusable = |reason: String| JournalError::Database {
        path: path.to_owned(),
        action: "use",
        reason,
    };
    let (config, tls) = config_of(url).map_err(unusable)?;
    let tls = match tls.wants_tls() {
        true => Some(tls.client_config().map_err(unusable)?),
        false => None,
    };
    signed_in(path, url, config, tls)
}

/// The names of the parameters `url`'s query gives.
fn named_in(url: &str) -> Vec<&str> {
    url.split_once('?')
        .map(|(_, query)| {
            query
                .split('&')
                .filter_map(|pair| pair.split('=').next())
                .collect()
        })
        .unwrap_or_default()
}

/// The driver's settings for `url`, with ours where the URL says nothing:
/// the user, the timeouts, the password (from the environment or the
/// password file) and the application's name.
fn config_of(url: &str) -> Result<(Config, tls::Wanted), String> {
    let (url, tls) = tls::Wanted::split(url)?;
    let mut config =
        Config::from_str(&url).map_err(|e| format!("not a PostgreSQL URL: {}", reason(&e)))?;
    if config.get_user().is_none()
        && let Some(user) = std::env::var("PGUSER")
            .ok()
            .or_else(|| std::env::var("USER").ok())
    {
        config.user(&user);
    }
    // What the URL names is the URL's, as libpq takes it: the driver
    // drops a value of 0 (for libpq, "wait for ever" or "the system's
    // default"), which must not let ours in.
    let named = named_in(&url);
    if !named.contains(&"connect_timeout") {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    if !named.contains(&"tcp_user_timeout") {
        config.tcp_user_timeout(LOST_AFTER);
    }
    if !named.iter().any(|name| name.starts_with("keepalives")) {
        config
            .keepalives_idle(LOST_AFTER / 2)
            .keepalives_interval(LOST_AFTER / 6)
            .keepalives_retries(3);
    }
    if config.get_password().is_none()
        && let Some(password) = password_for(&config)
    {
        config.password(password);
    }
    config.application_name("ledger");
    Ok((config, tls))
}

/// Sign-ins given up on, by URL, still waiting for their server: the
/// next sign-in to the same URL waits for that one again rather than
/// starting another (a follower tries every round, and each sign-in
/// waiting on a silent server holds a thread and a socket).
type Pending = (String, mpsc::Receiver<Result<Client, postgres::Error>>);
static PENDING: Mutex<Vec<Pending>> = Mutex::new(Vec::new());

/// A connection to the server `config` names (for `url`; through TLS
/// configured as `tls`, if given), signed in within its connect timeout.
fn signed_in(
    path: &Path,
    url: &str,
    config: Config,
    tls: Option<rustls::ClientConfig>,
) -> Result<Client, JournalError> {
    let unreachable = |reason| JournalError::Unreachable {
        path: path.to_owned(),
        server: server_of(&config),
        reason,
    };
    // The driver's timeout bounds each TCP connection it tries (a host's
    // addresses, then the next host's) and no more: a server that accepts
    // one and then says nothing (a hung one, or anything else on that
    // port) would hold the command for ever. So the whole sign-in (TLS,
    // startup, password) runs on a thread of its own, given as long as
    // the connections and as long again. A thread left waiting past that
    // ends with the process, or when the server answers or hangs up.
    let hosts = u32::try_from(config.get_hosts().len()).unwrap_or(u32::MAX);
    let deadline = config
        .get_connect_timeout()
        .map(|t| t.saturating_mul(hosts.saturating_add(1)));
    let rx = sign_in(url, &config, tls)
        .map_err(|e| unreachable(format!("cannot start connecting: {e}")))?;
    let answer = match deadline {
        Some(deadline) => rx.recv_timeout(deadline),
        None => rx.recv().map_err(|_| mpsc::RecvTimeoutError::Disconnected),
    };
    match answer {
        Ok(connected) => connected.map_err(|e| unreachable(reason(&e))),
        Err(mpsc::RecvTimeoutError::Timeout) => {
            let mut pending = PENDING.lock().unwrap_or_else(PoisonError::into_inner);
            pending.push((url.to_owned(), rx));
            Err(unreachable(format!(
                "no answer within {} s of connecting",
                deadline.unwrap_or_default().as_secs_f64()
            )))
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            Err(unreachable("the sign-in stopped without an answer".into()))
        }
    }
}

/// A sign-in to the server `config` names, for `url`, answering on the
/// receiver: the one given up on earlier if there is one (see
/// [`PENDING`]), else a new one on a thread of its own.
fn sign_in(
    url: &str,
    config: &Config,
    tls: Option<rustls::ClientConfig>,
) -> io::Result<mpsc::Receiver<Result<Client, postgres::Error>>> {
    let mut pending = PENDING.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(i) = pending.iter().position(|(u, _)| u == url) {
        return Ok(pending.swap_remove(i).1);
    }
    let (tx, rx) = mpsc::channel();
    let config = config.clone();
    std::thread::Builder::new()
        .name("connect".into())
        .spawn(move || {
            let connected = match tls {
                Some(client) => {
                    config.connect(tokio_postgres_rustls::MakeRustlsConnect::new(client))
                }
                None => config.connect(NoTls),
            };
            // Gone: nobody waits for it any more.
            let _ = tx.send(connected);
        })?;
    Ok(rx)
}

/// The first host and port the config names, as `host:port`.
fn server_of(config: &Config) -> String {
    let port = config.get_ports().first().copied().unwrap_or(5432);
    match config.get_hosts().first() {
        Some(Host::Tcp(host)) => format!("{host}:{port}"),
        Some(Host::Unix(dir)) => format!("{}:{port}", dir.display()),
        None => format!("localhost:{port}"),
    }
}

/// The password from `PGPASSWORD`, else from the password file
/// (`PGPASSFILE`, else `~/.pgpass`), as libpq finds it.
fn password_for(config: &Config) -> Option<String> {
    if let Ok(password) = std::env::var("PGPASSWORD") {
        return Some(password);
    }
    let file = std::env::var_os("PGPASSFILE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".pgpass")))?;
    // As libpq: only a regular file, and not one that others may read.
    let meta = std::fs::metadata(&file).ok().filter(|m| m.is_file())?;
    if std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o077 != 0 {
        crate::error::warn(format!(
            "warning: password file {} has group or world access and is not used; permissions should be u=rw (0600) or less",
            file.display()
        ));
        return None;
    }
    let text = std::fs::read_to_string(file).ok()?;
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(host)) => host.clone(),
        _ => "localhost".to_owned(),
    };
    let port = config
        .get_ports()
        .first()
        .copied()
        .unwrap_or(5432)
        .to_string();
    let user = config.get_user().unwrap_or_default();
    let db = config.get_dbname().unwrap_or(user);
    let wanted = [host.as_str(), port.as_str(), db, user];
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| pgpass_match(l, &wanted))
}

/// The password of a password-file line whose first four fields match
/// `wanted` (`*` matches anything; `\:` and `\\` are escapes).
fn pgpass_match(line: &str, wanted: &[&str; 4]) -> Option<String> {
    let mut fields = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => fields.last_mut()?.push(chars.next().unwrap_or('\\')),
            ':' if fields.len() < 5 => fields.push(String::new()),
            c => fields.last_mut()?.push(c),
        }
    }
    if fields.len() != 5 {
        return None;
    }
    let matches = fields.iter().zip(wanted).all(|(f, w)| f == "*" || f == w);
    matches.then(|| fields.pop()).flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lost_server_is_noticed_unless_the_url_tunes_it_itself() {
        let (config, _) = config_of("postgresql://u@h/db").expect("config");
        assert_eq!(config.get_connect_timeout(), Some(&CONNECT_TIMEOUT));
        assert_eq!(config.get_tcp_user_timeout(), Some(&LOST_AFTER));
        assert_eq!(config.get_keepalives_idle(), LOST_AFTER / 2);
        assert_eq!(config.get_keepalives_interval(), Some(LOST_AFTER / 6));
        assert_eq!(config.get_keepalives_retries(), Some(3));
        let (own, _) = config_of(
            "postgresql://u@h/db?connect_timeout=3&tcp_user_timeout=7&keepalives_idle=9&keepalives_retries=2",
        )
        .expect("config");
        assert_eq!(own.get_connect_timeout(), Some(&Duration::from_secs(3)));
        assert_eq!(own.get_tcp_user_timeout(), Some(&Duration::from_secs(7)));
        assert_eq!(own.get_keepalives_idle(), Duration::from_secs(9));
        assert_eq!(own.get_keepalives_retries(), Some(2));
        // One keepalive setting named: the rest are the system's, not ours.
        let (idle, _) = config_of("postgresql://u@h/db?keepalives_idle=600").expect("config");
        assert_eq!(idle.get_keepalives_idle(), Duration::from_secs(600));
        assert_eq!(idle.get_keepalives_interval(), None);
        // 0 is libpq's "wait for ever", and the system's default.
        let (zero, _) =
            config_of("postgresql://u@h/db?connect_timeout=0&tcp_user_timeout=0").expect("config");
        assert_eq!(zero.get_connect_timeout(), None);
        assert_eq!(zero.get_tcp_user_timeout(), None);
    }

    /// A server that takes connections and says nothing: each sign-in
    /// given up on is waited for again by the next, not joined by
    /// another connection (a follower retries every round).
    #[test]
    fn a_sign_in_given_up_on_is_waited_for_again_not_doubled() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("listen");
        let port = listener.local_addr().expect("port").port();
        let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = std::sync::Arc::clone(&accepted);
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for stream in listener.incoming().map_while(Result::ok) {
                counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                held.push(stream);
            }
        });
        let url = format!("postgresql://u@127.0.0.1:{port}/db?connect_timeout=1");
        for _ in 0..3 {
            let refused = connect(Path::new("db"), &url);
            assert!(
                matches!(&refused, Err(JournalError::Unreachable { reason, .. }) if reason.contains("no answer within 2 s")),
                "{:?}",
                refused.err()
            );
        }
        assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 1);
        let pending = PENDING.lock().unwrap_or_else(PoisonError::into_inner);
        assert_eq!(pending.iter().filter(|(u, _)| *u == url).count(), 1);
    }

    #[test]
    fn a_shown_url_has_no_password() {
        let cases = [
            (
                "postgresql://u:s3cr%40t@h:5/db?x=1",
                "postgresql://u@h:5/db?x=1",
            ),
            ("postgres://u@h/db", "postgres://u@h/db"),
            ("postgresql://h/db", "postgresql://h/db"),
            ("postgresql://u:p@h", "postgresql://u@h"),
            ("postgresql:///db?host=/tmp", "postgresql:///db?host=/tmp"),
            (
                "postgresql://u@h/db?password=s3cret&x=1",
                "postgresql://u@h/db?x=1",
            ),
            (
                "postgresql://u@h/db?%70assword=s3cret",
                "postgresql://u@h/db?",
            ),
            // The driver takes the user part to the first `@`: these
            // passwords are `zz/qq`, `zz?qq` and `zz`.
            (
                "postgresql://u:zz/qq@h:5/db?host=/tmp",
                "postgresql://u@h:5/db?host=/tmp",
            ),
            ("postgresql://u:zz?qq@h/db", "postgresql://u@h/db"),
            ("postgresql://u:zz@qq@h/db", "postgresql://u@qq@h/db"),
        ];
        for (url, shown) in cases {
            assert_eq!(without_password(url), shown);
        }
        assert!(is_location("POSTGRESQL://u:p@h/db") && is_location("Postgres://h"));
        assert!(!is_location("postgres:/h") && !is_location("pg://h"));
        assert_eq!(
            name("POSTGRESQL://u:p@h/db"),
            Path::new("postgresql://u@h/db")
        );
    }

    #[test]
    fn a_password_file_line_matches_as_libpq_reads_it() {
        let wanted = ["h", "5432", "db", "u"];
        assert_eq!(
            pgpass_match("h:5432:db:u:pw", &wanted).as_deref(),
            Some("pw")
        );
        assert_eq!(
            pgpass_match("*:*:*:u:a\\:b", &wanted).as_deref(),
            Some("a:b")
        );
        assert_eq!(pgpass_match("h:5432:db:other:pw", &wanted), None);
        assert_eq!(pgpass_match("h:5432:db:u", &wanted), None);
    }
}
