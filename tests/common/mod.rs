//! A test environment: a temporary directory, a clean environment, a pinned
//! clock, and the ledger binary built by this very `cargo test`
//! (`CARGO_BIN_EXE_ledger`), never one found on `PATH`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;

use assert_cmd::Command;
use tempfile::TempDir;

/// The pinned clock every test run uses unless it says otherwise.
pub const CLOCK: &str = "2026-11-26T10:00:00Z";

/// A temporary home with a journal path inside it, or a database of its
/// own on the test server.
pub struct TestEnv {
    pub dir: TempDir,
    pub journal: PathBuf,
    pub db: Option<TestDb>,
}

impl TestEnv {
    pub fn new() -> TestEnv {
        let dir = tempfile::tempdir().expect("temp dir");
        let journal = dir.path().join("journal.jsonl");
        TestEnv {
            dir,
            journal,
            db: None,
        }
    }

    /// An env whose journal is a new database on the test server; `None`
    /// when there is no server (see [`TestDb::new`]).
    pub fn postgres() -> Option<TestEnv> {
        Some(TestEnv::on(TestDb::new()?))
    }

    /// A new env on the database `db`.
    pub fn on(db: TestDb) -> TestEnv {
        TestEnv {
            dir: tempfile::tempdir().expect("temp dir"),
            journal: PathBuf::from(&db.url),
            db: Some(db),
        }
    }

    /// A new env whose journal is what `commands` (each split on spaces,
    /// each required to succeed) write.
    #[track_caller]
    pub fn with(commands: &[&str]) -> TestEnv {
        let env = TestEnv::new();
        env.ok_each(commands);
        env
    }

    /// [`TestEnv::with`] on a new database ([`TestEnv::postgres`]).
    #[track_caller]
    pub fn postgres_with(commands: &[&str]) -> Option<TestEnv> {
        let env = TestEnv::postgres()?;
        env.ok_each(commands);
        Some(env)
    }

    /// A command on this env's journal (via `--file`), with a clean environment.
    pub fn cmd(&self) -> Command {
        let mut cmd = self.bare();
        cmd.arg("--file").arg(&self.journal);
        cmd
    }

    /// The binary with a clean environment and `HOME` in the temp dir, but
    /// no journal option: for tests of how the path is chosen.
    pub fn bare(&self) -> Command {
        Command::from_std(self.process())
    }

    /// The binary with a clean environment and `HOME` in the temp dir,
    /// as a process to spawn (to read its output as it comes, or to kill
    /// it); [`TestEnv::bare`] runs it to completion.
    pub fn process(&self) -> std::process::Command {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_ledger"));
        cmd.env_clear()
            .env("HOME", self.dir.path())
            .env("XDG_DATA_HOME", self.dir.path().join("xdg-data"))
            .env("LEDGER_TEST_CLOCK", CLOCK)
            // Days and shown times in a known zone, whatever the machine's.
            .env("TZ", "UTC")
            .current_dir(self.dir.path());
        cmd
    }

    /// Runs a command line (split on spaces) and asserts it succeeded.
    #[track_caller]
    pub fn ok(&self, args: &str) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "`ledger {args}` failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8 stdout")
    }

    /// Runs each command line in turn, asserting each succeeded.
    #[track_caller]
    pub fn ok_each(&self, commands: &[&str]) {
        for command in commands {
            self.ok(command);
        }
    }

    /// Runs a command line (split on spaces) and returns its output.
    #[track_caller]
    pub fn run(&self, args: &str) -> Output {
        self.cmd()
            .args(args.split_whitespace())
            .output()
            .expect("run ledger")
    }

    /// Runs a command line that must fail with `code`, and asserts that the
    /// journal is byte-identical afterwards. Returns stderr.
    #[track_caller]
    pub fn fails(&self, code: i32, args: &[&str]) -> String {
        let before = self.bytes();
        let tables = self.db.as_ref().map(TestDb::tables);
        let out = self.cmd().args(args).output().expect("run ledger");
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(code), "`ledger {args:?}`: {stderr}");
        assert_eq!(
            self.bytes(),
            before,
            "`ledger {args:?}` changed the journal"
        );
        assert_eq!(
            self.db.as_ref().map(TestDb::tables),
            tables,
            "`ledger {args:?}` changed the database's head or query tables"
        );
        assert!(stderr.starts_with("error: "), "stderr: {stderr}");
        assert!(!stderr.contains("panicked"), "stderr: {stderr}");
        stderr
    }

    /// Runs each refused command (arguments, exit code, a part of its
    /// message), asserting the code, the message and that the journal is
    /// byte-identical afterwards.
    #[track_caller]
    pub fn refusals(&self, cases: &[(&[&str], i32, &str)]) {
        for (args, code, message) in cases {
            let stderr = self.fails(*code, args);
            assert!(stderr.contains(message), "{args:?}: {stderr}");
        }
    }

    /// Writes `text` to a file `name` in the temp dir (a batch, a CSV, rules)
    /// and returns its path.
    #[track_caller]
    pub fn file(&self, name: &str, text: &str) -> String {
        let path = self.dir.path().join(name);
        fs::write(&path, text).expect("write input file");
        path.to_string_lossy().into_owned()
    }

    /// The journal's bytes (empty if there is none): a database's as
    /// `export --to jsonl` gives them, which is checked to be what it holds.
    #[track_caller]
    pub fn bytes(&self) -> Vec<u8> {
        match &self.db {
            None => fs::read(&self.journal).unwrap_or_default(),
            Some(db) => {
                let out = self.run("export --to jsonl");
                assert!(
                    out.status.success(),
                    "export: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                assert_eq!(out.stdout, db.stored(), "export differs from the rows");
                out.stdout
            }
        }
    }

    /// The journal's lines.
    pub fn lines(&self) -> Vec<String> {
        String::from_utf8(self.bytes())
            .expect("utf-8 journal")
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// Writes `bytes` as the journal.
    pub fn write(&self, bytes: impl AsRef<[u8]>) {
        fs::write(&self.journal, bytes).expect("write journal");
    }

    /// `balance --json` parsed.
    #[track_caller]
    pub fn balances(&self) -> serde_json::Value {
        serde_json::from_str(&self.ok("balance --json")).expect("balance json")
    }

    /// One account's balance from `balance --json`, as its string.
    #[track_caller]
    pub fn balance_of(&self, account: &str) -> String {
        let all = self.balances();
        all["accounts"]
            .as_array()
            .expect("accounts")
            .iter()
            .find(|a| a["account"] == account)
            .map(|a| a["balance"].as_str().expect("balance string").to_owned())
            .unwrap_or_else(|| panic!("no account {account}"))
    }
}

/// A fixture file's path.
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name)
}

/// [`CLOCK`] as the journal writes an `at`.
pub const AT: &str = "2026-11-26T10:00:00.000000Z";

/// The header line of a journal created at [`CLOCK`], as SPEC 2 spells it.
pub const HEADER: &str = r#"{"format":"ledger-journal","version":1,"hash":"sha256","created_at":"2026-11-26T10:00:00.000000Z"}"#;

impl TestEnv {
    /// Runs a command given as separate arguments (for values with spaces)
    /// and asserts it succeeded. Returns stdout.
    #[track_caller]
    pub fn ok_args(&self, args: &[&str]) -> String {
        let out = self.run_args(args);
        assert!(
            out.status.success(),
            "`ledger {args:?}` failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8 stdout")
    }

    /// Runs a command given as separate arguments and returns its output.
    #[track_caller]
    pub fn run_args(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().expect("run ledger")
    }

    /// Runs a command line (split on spaces) with the clock pinned at
    /// `clock`, and asserts it succeeded. Returns stdout.
    #[track_caller]
    pub fn ok_at(&self, clock: &str, args: &str) -> String {
        let out = self
            .cmd()
            .env("LEDGER_TEST_CLOCK", clock)
            .args(args.split_whitespace())
            .output()
            .expect("run ledger");
        assert!(
            out.status.success(),
            "`ledger {args}` at {clock} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8 stdout")
    }

    /// The path of the journal with `suffix` added to its name (`.torn`).
    pub fn beside(&self, suffix: &str) -> PathBuf {
        let mut name = self.journal.clone().into_os_string();
        name.push(suffix);
        PathBuf::from(name)
    }

    /// The journal as text, for assertions that print readably.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes()).into_owned()
    }

    /// Copies a fixture in as this env's journal (fixtures are never written).
    pub fn load_fixture(&self, name: &str) {
        self.write(fs::read(fixture(name)).expect("read fixture"));
    }
}

/// Lowercase hex SHA-256 of `bytes`, computed here, independently of the
/// binary's own hashing code.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Recomputes the `prev` of every line from index `from` on (index 0 is the
/// header), as a forger who rewrites history would.
pub fn rechain(lines: &mut [String], from: usize) {
    for i in from.max(1)..lines.len() {
        let prev = sha256_hex(lines[i - 1].as_bytes());
        let line = &mut lines[i];
        // Every event line ends with `"prev":"<64 hex>"}`.
        assert!(line.ends_with("\"}"), "not an event line: {line}");
        let cut = line.len() - 66;
        assert_eq!(&line[cut - 8..cut], "\"prev\":\"", "line: {line}");
        line.truncate(cut);
        line.push_str(&prev);
        line.push_str("\"}");
    }
}

/// Journal text built by hand from SPEC 2 alone: `header`, then each event
/// (a JSON object without `prev`) completed with `"prev"`, the SHA-256 of
/// the line before it. Every line ends with `\n`.
pub fn chained(header: &str, events: &[&str]) -> String {
    let mut text = format!("{header}\n");
    let mut prev = sha256_hex(header.as_bytes());
    for event in events {
        let body = event.strip_suffix('}').expect("an event is a JSON object");
        let line = format!(r#"{body},"prev":"{prev}"}}"#);
        prev = sha256_hex(line.as_bytes());
        text.push_str(&line);
        text.push('\n');
    }
    text
}

/// The lines of a command's stderr.
pub fn stderr_lines(out: &Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .map(str::to_owned)
        .collect()
}

/// A library request: `command` with no id, memo or expected seq.
pub fn request(command: ledger::domain::Command<'_>) -> ledger::domain::Request<'_> {
    ledger::domain::Request::new(command)
}

/// The library command that opens `account` (no owner or currency, 2
/// decimals).
pub fn create(account: &str) -> ledger::domain::Command<'_> {
    ledger::domain::Command::Create {
        account,
        owner: None,
        currency: None,
        decimals: 2,
    }
}

/// A chained journal (header included) of `create a` at seq 1, then seqs 2
/// to `last`, each the event `event(seq)` writes (without `prev`).
pub fn one_account_journal(last: u64, event: impl Fn(u64) -> String) -> String {
    let mut events = vec![format!(
        r#"{{"seq":1,"at":"{AT}","type":"AccountCreated","account":"a","decimals":2}}"#
    )];
    events.extend((2..=last).map(event));
    let events: Vec<&str> = events.iter().map(String::as_str).collect();
    chained(HEADER, &events)
}

/// A database of its own on the PostgreSQL server named by `LEDGER_TEST_PG`
/// (`scripts/pg-cluster.sh start` sets it), dropped when done.
pub struct TestDb {
    /// The database's URL, password included.
    pub url: String,
    name: String,
    server: String,
}

impl TestDb {
    /// A new empty database; `None` without `LEDGER_TEST_PG`, which fails
    /// under `CI=true` (CI must test both backends).
    #[track_caller]
    pub fn new() -> Option<TestDb> {
        let Some(server) = std::env::var("LEDGER_TEST_PG")
            .ok()
            .filter(|s| !s.is_empty())
        else {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "LEDGER_TEST_PG is not set: start a server with `eval \"$(bash scripts/pg-cluster.sh start)\"`"
            );
            eprintln!("skipped: LEDGER_TEST_PG is not set");
            return None;
        };
        Some(TestDb::on(&server))
    }

    /// A new empty database on the server at `server` (its URL, naming
    /// a database to sign in to).
    pub fn on(server: &str) -> TestDb {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let name = format!("ledger_test_{}_{n}", std::process::id());
        let mut admin =
            postgres::Client::connect(server, postgres::NoTls).expect("connect to the server");
        admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS {name}"))
            .and_then(|()| admin.batch_execute(&format!("CREATE DATABASE {name}")))
            .expect("create a test database");
        let base = server.rsplit_once('/').map_or(server, |(b, _)| b);
        TestDb {
            url: format!("{base}/{name}"),
            name,
            server: server.to_owned(),
        }
    }

    /// Every row of the head and of the query tables, as text, in order:
    /// what a refused command must leave as it was, with the lines.
    pub fn tables(&self) -> String {
        let mut client = postgres::Client::connect(&self.url, postgres::NoTls).expect("connect");
        let mut text = String::new();
        for table in [
            "ledger_head",
            "ledger_units",
            "ledger_accounts",
            "ledger_holds",
            "ledger_ended",
            "ledger_reversed",
        ] {
            let sql = format!(
                "SELECT coalesce(string_agg(t::text, E'\\n' ORDER BY t::text), '') FROM {table} t"
            );
            match client.query_one(&sql, &[]) {
                Ok(row) => text.push_str(&format!("{table}:\n{}\n", row.get::<_, String>(0))),
                Err(e) if e.code() == Some(&postgres::error::SqlState::UNDEFINED_TABLE) => {}
                Err(e) => panic!("read {table}: {e}"),
            }
        }
        text
    }

    /// The bytes the lines table holds, in seq order, each with its `\n`.
    pub fn stored(&self) -> Vec<u8> {
        let mut client = postgres::Client::connect(&self.url, postgres::NoTls).expect("connect");
        let rows = match client.query("SELECT line FROM ledger_lines ORDER BY seq", &[]) {
            Ok(rows) => rows,
            Err(e) if e.code() == Some(&postgres::error::SqlState::UNDEFINED_TABLE) => {
                return Vec::new();
            }
            Err(e) => panic!("read the lines: {e}"),
        };
        let mut bytes = Vec::new();
        for row in rows {
            bytes.extend_from_slice(row.get::<_, &[u8]>(0));
            bytes.push(b'\n');
        }
        bytes
    }

    /// The first column of the first row `sql` returns, as text.
    #[track_caller]
    pub fn one(&self, sql: &str) -> String {
        let mut client = postgres::Client::connect(&self.url, postgres::NoTls).expect("connect");
        let row = client.query_one(sql, &[]).expect("sql");
        row.get(0)
    }

    /// Runs SQL on the database (to damage it, or look inside).
    #[track_caller]
    pub fn sql(&self, sql: &str) {
        let mut client = postgres::Client::connect(&self.url, postgres::NoTls).expect("connect");
        client.batch_execute(sql).expect("sql");
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Ok(mut admin) = postgres::Client::connect(&self.server, postgres::NoTls) {
            let _ = admin.batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ));
        }
    }
}
