//! The same ledger on PostgreSQL (SPEC 15): one script of commands run on a
//! file and on a database must print the same, exit the same and leave the
//! same lines; then what only a shared database has: many hosts, races,
//! copies, cut connections and following.
//!
//! The server comes from `LEDGER_TEST_PG` (`scripts/pg-cluster.sh start`);
//! without it these tests skip, except under `CI=true`, where they fail.

use std::fs;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{TestDb, TestEnv, fixture};

/// Every kind of command, with refusals among them: each line is run on
/// both backends (split on spaces; `|` separates the lines given on stdin
/// to a `batch` or `import` line; `FIXTURE/` starts a fixture's path).
const SCRIPT: &[&str] = &[
    "balance",
    "history",
    "create acct1 --owner alice",
    "create acct2 --owner bob",
    "create eur1 --currency EUR",
    "create shop",
    "deposit acct1 50 --id d-1 --memo first",
    "deposit acct1 50 --id d-1 --memo first",
    "withdraw acct1 70",
    "withdraw acct1 20 --tag kind=cash",
    "transfer acct1 acct2 10.25 --memo lunch --id pay-17",
    "transfer acct1 eur1 1",
    "deposit nobody 1",
    "deposit acct1 1.001",
    "deposit acct1 1 --expect-seq 6",
    "deposit acct1 1 --expect-seq 99",
    "hold acct1 5 --to shop --id order-1",
    "capture --of-id order-1 3 --id ship-1",
    "release --of-id order-1",
    "hold acct2 1",
    "reverse 7",
    "reverse 7",
    "close eur1",
    "close acct2",
    "batch|create b1|deposit b1 7 --id b-1|transfer b1 acct1 2",
    "batch|deposit b1 1|withdraw b1 100",
    "batch --dry-run|deposit b1 1|withdraw b1 100",
    "batch|deposit b1 7 --id b-1|deposit b1 1 --id b-2|deposit b1 2 --id b-3",
    "batch|hold b1 2 --to shop --id order-2|hold b1 1 --id order-3|capture --of-id order-2 1|release 30|reverse --of-id b-2|reverse 3",
    "batch|reverse --of-id b-3|deposit b1 1|reverse --of-id b-3",
    "batch|reverse --of-id pay-17|capture --of-id order-1",
    "deposit b1 1 --id b-3",
    "batch --json|deposit b1 1 --id b-2|deposit b1 3 --id b-4",
    r#"import|{"command":"deposit","account":"acct1","amount":"2.50","id":"imp-1"}|{"command":"withdraw","account":"acct1","amount":"1"}"#,
    r#"import|{"command":"deposit","account":"acct1","amount":"2.50","id":"imp-1"}"#,
    r#"import --dry-run|{"command":"withdraw","account":"acct1","amount":"1"}"#,
    "create checking",
    "create fees",
    "import FIXTURE/import/us.csv --rules FIXTURE/import/us.toml",
    "import FIXTURE/import/us.csv --rules FIXTURE/import/us.toml",
    "balance",
    "balance --json",
    "balance --format csv",
    "balance acct1 acct9",
    "balance --as-of 5 --json",
    "history --json",
    "history acct1",
    "history acct1 --format csv",
    "history --limit 3",
    "history --from-seq 30 --json",
    "report --by month --json",
    "report acct1 --by day",
    "export --to jsonl",
    "export --to ledger",
    "export --to beancount",
    "verify",
    "verify --json",
];

/// What a command did, with the journal's location shown as `JOURNAL`.
#[derive(Debug, PartialEq)]
struct Seen {
    line: String,
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn run_line(env: &TestEnv, line: &str) -> Seen {
    let mut parts = line.split('|');
    let args: Vec<String> = parts
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .map(|arg| match arg.strip_prefix("FIXTURE/") {
            Some(name) => fixture(name).display().to_string(),
            None => arg.to_owned(),
        })
        .collect();
    let input: String = parts.map(|l| format!("{l}\n")).collect();
    let mut cmd = env.cmd();
    cmd.args(&args).write_stdin(input);
    let out: Output = cmd.output().expect("run ledger");
    let shown = env.journal.display().to_string();
    let shown = shown.replace(":secret@", "@");
    let clean = |bytes: &[u8]| String::from_utf8_lossy(bytes).replace(&shown, "JOURNAL");
    Seen {
        line: line.to_owned(),
        code: out.status.code(),
        stdout: clean(&out.stdout),
        stderr: clean(&out.stderr),
    }
}

#[test]
fn every_command_prints_and_writes_the_same_on_a_file_and_a_database() {
    let Some(db) = TestEnv::postgres() else {
        return;
    };
    let file = TestEnv::new();
    let mut codes = Vec::new();
    for line in SCRIPT {
        let on_file = run_line(&file, line);
        let on_db = run_line(&db, line);
        assert_eq!(on_file, on_db, "{line}");
        assert!(!on_db.stderr.contains("secret"), "{line}: {}", on_db.stderr);
        codes.push(on_db.code);
    }
    assert_eq!(file.bytes(), db.bytes());
    // Refusals of every kind were among them.
    for code in [0, 1, 2] {
        assert!(codes.contains(&Some(code)), "{codes:?}");
    }
}

#[test]
fn refusals_leave_the_database_as_it_was() {
    let Some(env) = TestEnv::postgres() else {
        return;
    };
    // A refused first write creates nothing, not even the tables.
    env.fails(1, &["deposit", "nobody", "1"]);
    assert!(env.db.as_ref().is_some_and(|db| db.stored().is_empty()));
    env.ok("create a");
    env.ok("deposit a 5 --id x");
    env.refusals(&[
        (&["withdraw", "a", "6"], 1, "insufficient funds"),
        (&["deposit", "a", "1", "--expect-seq", "1"], 1, "expected"),
        (&["deposit", "a", "-1"], 2, ""),
        (&["transfer", "a", "zz", "1"], 1, "zz"),
    ]);
    let out = env.ok("deposit a 5 --id x");
    assert!(out.contains("already recorded"), "{out}");
}

/// Many processes on separate connections, each posting transfers with an
/// `--id` from one pool until it runs dry, retrying every one that got no
/// answer: every transfer paid lands once, every one refused not at all,
/// money is conserved and the pool never goes below zero.
#[test]
fn many_hosts_post_each_id_exactly_once() {
    let Some(env) = TestEnv::postgres() else {
        return;
    };
    const HOSTS: usize = 8;
    const EACH: usize = 12;
    env.ok("create pool");
    for h in 0..HOSTS {
        env.ok(&format!("create h{h}"));
    }
    // 96 transfers of 1.50 ask for 144.00: the pool runs dry, and those
    // refused for it must leave nothing behind.
    env.ok("deposit pool 100");
    let env = Arc::new(env);
    let threads: Vec<_> = (0..HOSTS)
        .map(|h| {
            let env = Arc::clone(&env);
            std::thread::spawn(move || {
                let mut posted = Vec::new();
                for i in 0..EACH {
                    let id = format!("t-{h}-{i}");
                    let args = format!("transfer pool h{h} 1.5 --id {id}");
                    // A retry after a failure that is no answer (exit 4) is
                    // safe with the same --id; a refusal (exit 1) is final.
                    let mut tries = 0;
                    let code = loop {
                        match env.run(&args).status.code() {
                            Some(code @ (0 | 1)) => break code,
                            other => {
                                tries += 1;
                                assert!(tries < 20, "{args} kept failing: {other:?}");
                            }
                        }
                    };
                    if code == 0 {
                        // A deliberate repeat writes nothing.
                        assert!(env.ok(&args).contains("already recorded"));
                        posted.push(id);
                    }
                }
                posted
            })
        })
        .collect();
    let posted: Vec<Vec<String>> = threads
        .into_iter()
        .map(|t| t.join().expect("host"))
        .collect();
    let count = posted.iter().map(Vec::len).sum::<usize>();
    // Every transfer that could be paid was: 66 of 1.50, 1.00 left.
    assert_eq!(count, 66);
    let balances = env.balances();
    let accounts = balances["accounts"].as_array().expect("accounts");
    let of = |name: &str| -> String {
        let row = accounts.iter().find(|a| a["account"] == name).expect("row");
        row["balance"].as_str().expect("balance").to_owned()
    };
    assert_eq!(of("pool"), "1.00");
    for (h, ids) in posted.iter().enumerate() {
        let cents = 150 * ids.len();
        assert_eq!(
            of(&format!("h{h}")),
            format!("{}.{:02}", cents / 100, cents % 100)
        );
    }
    let found = crate::faults::ids(&env.bytes());
    for (h, ids) in posted.iter().enumerate() {
        for i in 0..EACH {
            let id = format!("t-{h}-{i}");
            let times = found.get(&id).map_or(0, Vec::len);
            assert_eq!(times, usize::from(ids.contains(&id)), "{id}");
        }
    }
    let verify: Value = serde_json::from_str(&env.ok("verify --json")).expect("json");
    assert_eq!(verify["events"], 2 + HOSTS as u64 + count as u64);
}

/// Processes racing with `--expect-seq`: exactly one wins each seq.
#[test]
fn expect_seq_races_have_one_winner_per_seq() {
    let Some(env) = TestEnv::postgres() else {
        return;
    };
    env.ok("create a");
    let env = Arc::new(env);
    for seq in 1..=4u64 {
        let racers: Vec<_> = (0..6)
            .map(|r| {
                let env = Arc::clone(&env);
                std::thread::spawn(move || {
                    let args = format!("deposit a 1 --memo r{r} --expect-seq {seq}");
                    env.run(&args).status.code()
                })
            })
            .collect();
        let codes: Vec<_> = racers
            .into_iter()
            .map(|r| r.join().expect("racer"))
            .collect();
        assert_eq!(
            codes.iter().filter(|c| **c == Some(0)).count(),
            1,
            "{codes:?}"
        );
        assert!(codes.iter().all(|c| matches!(c, Some(0 | 1))), "{codes:?}");
    }
    assert_eq!(env.balance_of("a"), "4.00");
}

#[test]
fn copy_round_trips_file_to_database_to_file_byte_for_byte() {
    let Some(db) = TestEnv::postgres() else {
        return;
    };
    let dir = tempfile::tempdir().expect("dir");
    let back = dir.path().join("back/journal.jsonl");
    let source = fixture("valid.jsonl");
    let out = copy(&db, &source, &db.journal);
    succeeded(&out);
    assert_eq!(db.bytes(), std::fs::read(&source).expect("fixture"));
    // The query tables were written with the lines: they stand at the
    // head, and hold what a write rebuilding them from every line holds.
    let rows = |env: &TestEnv| {
        let db = env.db.as_ref().expect("db");
        db.one("SELECT (rows_seq = seq)::text FROM ledger_head")
    };
    assert_eq!(rows(&db), "true");
    let file = TestEnv::new();
    file.load_fixture("valid.jsonl");
    assert_eq!(db.balances(), file.balances());
    let rebuilt = TestEnv::postgres().expect("server");
    succeeded(&copy(&rebuilt, &source, &rebuilt.journal));
    let rebuilt_db = rebuilt.db.as_ref().expect("db");
    rebuilt_db.sql("UPDATE ledger_head SET rows_seq = 0");
    let name = file.balances()["accounts"][0]["account"].clone();
    let deposit = format!("deposit {} 1", name.as_str().expect("name"));
    for env in [&file, &db, &rebuilt] {
        env.ok(&deposit);
    }
    assert_eq!(rows(&rebuilt), "true");
    let tables = db.db.as_ref().expect("db").tables();
    assert_eq!(tables, rebuilt_db.tables());
    assert_eq!(db.balances(), file.balances());
    assert_eq!(db.bytes(), file.bytes());
    let source = file.journal.clone();
    let out = copy(&db, &db.journal, &back);
    succeeded(&out);
    assert_eq!(
        std::fs::read(&back).expect("copy"),
        std::fs::read(&source).expect("source")
    );
    // Into a journal that holds events: refused, nothing written.
    let before = db.bytes();
    let out = copy(&db, &source, &db.journal);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(db.bytes(), before);
    // A corrupt source is not copied at all.
    let fresh = TestEnv::postgres().expect("server");
    let out = copy(&db, &fixture("bad-chain.jsonl"), &fresh.journal);
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(fresh.db.as_ref().is_some_and(|d| d.stored().is_empty()));
}

#[test]
fn an_unreachable_server_is_exit_4_naming_host_and_port_never_the_password() {
    let env = TestEnv::new();
    // A port nothing listens on.
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let url = format!("postgresql://ledger:hunter2@127.0.0.1:{port}/books");
    for args in [&["balance"][..], &["deposit", "a", "1"]] {
        let out = env
            .bare()
            .arg("--file")
            .arg(&url)
            .args(args)
            .output()
            .expect("run");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(4), "{stderr}");
        assert!(stderr.contains(&format!("127.0.0.1:{port}")), "{stderr}");
        assert!(!stderr.contains("hunter2"), "{stderr}");
    }
}

/// A server that takes the connection and then says nothing (hung, or
/// not PostgreSQL at all) is unreachable too: exit 4 within the URL's
/// connect timeout, TLS asked for or not, instead of waiting for ever.
#[test]
fn a_server_that_never_answers_is_exit_4_within_the_connect_timeout() {
    let env = TestEnv::new();
    let listener = TcpListener::bind("127.0.0.1:0").expect("listen");
    let port = listener.local_addr().expect("port").port();
    // Accepts each connection and keeps it open, silent, for the test's life.
    std::thread::spawn(move || {
        let held: Vec<TcpStream> = listener.incoming().map_while(Result::ok).collect();
        drop(held);
    });
    for tls in ["", "&sslmode=require"] {
        let url =
            format!("postgresql://ledger:hunter2@127.0.0.1:{port}/books?connect_timeout=1{tls}");
        // Bounded: a hang fails the test instead of stalling the suite.
        let mut cmd = env.process();
        cmd.arg("--file").arg(&url).args(["deposit", "a", "1"]);
        let out = crate::faults::run_bounded(&mut cmd);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(4), "{stderr}");
        assert!(stderr.contains(&format!("127.0.0.1:{port}")), "{stderr}");
        // The TCP connection's second, and as long again for the rest.
        assert!(stderr.contains("no answer within 2 s"), "{stderr}");
        assert!(!stderr.contains("hunter2"), "{stderr}");
    }
}

#[test]
fn a_wrong_password_is_refused_without_being_shown() {
    let Some(env) = TestEnv::postgres() else {
        return;
    };
    // The driver reads the password up to the first `@`, whatever it
    // holds: none of it is shown.
    for password in ["hunter2", "hun/ter2", "hun?ter2", "hun:ter2"] {
        let wrong = env
            .journal
            .display()
            .to_string()
            .replace(":secret@", &format!(":{password}@"));
        let (code, stderr) = run_at(&env, &wrong, &["balance"]);
        assert_eq!(code, Some(4), "{stderr}");
        assert!(
            stderr.contains("password authentication failed"),
            "{stderr}"
        );
        assert!(!stderr.contains("ter2"), "{stderr}");
    }
    // The password may come from PGPASSWORD instead of the URL.
    let bare = env.journal.display().to_string().replace(":secret@", "@");
    let out = env
        .bare()
        .env("PGPASSWORD", "secret")
        .args(["--file", &bare, "create", "a"])
        .output()
        .expect("run");
    succeeded(&out);
    // Or from a password file, which others may not read (as libpq: one
    // that they may is not used, and a warning says why).
    let pgpass = env.file(".pgpass", "127.0.0.1:*:*:ledger:secret\n");
    let deposit = || {
        env.bare()
            .env("PGPASSFILE", &pgpass)
            .env("LEDGER_JOURNAL", &bare)
            .args(["deposit", "a", "1"])
            .output()
            .expect("run")
    };
    fs::set_permissions(&pgpass, fs::Permissions::from_mode(0o644)).expect("chmod");
    let out = deposit();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert!(
        stderr.contains("has group or world access and is not used"),
        "{stderr}"
    );
    fs::set_permissions(&pgpass, fs::Permissions::from_mode(0o600)).expect("chmod");
    succeeded(&deposit());
    assert_eq!(env.balance_of("a"), "1.00");
}

/// A TCP relay in front of the server that can cut every connection.
struct Relay {
    port: u16,
    cut: Arc<AtomicBool>,
    conns: Arc<std::sync::Mutex<Vec<TcpStream>>>,
}

impl Relay {
    fn to(server_port: u16) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let cut = Arc::new(AtomicBool::new(false));
        let conns = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (c, all) = (Arc::clone(&cut), Arc::clone(&conns));
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                if c.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let Ok(server) = TcpStream::connect(("127.0.0.1", server_port)) else {
                    continue;
                };
                let mut list = all.lock().expect("lock");
                list.push(client.try_clone().expect("clone"));
                list.push(server.try_clone().expect("clone"));
                pipe(
                    client.try_clone().expect("clone"),
                    server.try_clone().expect("clone"),
                );
                pipe(server, client);
            }
        });
        Relay { port, cut, conns }
    }

    /// Cuts every connection; new ones are refused until `resume`.
    fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        for conn in self.conns.lock().expect("lock").drain(..) {
            let _ = conn.shutdown(Shutdown::Both);
        }
    }

    fn resume(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }
}

fn pipe(mut from: TcpStream, mut to: TcpStream) {
    std::thread::spawn(move || {
        let mut buf = [0u8; 16384];
        while let Ok(n) = from.read(&mut buf) {
            if n == 0 || to.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = to.shutdown(Shutdown::Both);
    });
}

/// The env's URL through a relay.
fn through(env: &TestEnv, relay: &Relay) -> String {
    let url = env.journal.display().to_string();
    let (head, rest) = url.split_once("@127.0.0.1:").expect("loopback url");
    let path = rest.split_once('/').map_or("", |(_, p)| p);
    format!("{head}@127.0.0.1:{}/{path}", relay.port)
}

fn server_port(env: &TestEnv) -> u16 {
    let url = env.journal.display().to_string();
    let rest = url.split_once("@127.0.0.1:").expect("loopback url").1;
    rest.split('/')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("port")
}

/// A batch whose connection is cut while it runs: exit 4, and none of its
/// events in the journal (a transaction commits whole or not at all).
#[test]
fn a_connection_cut_mid_batch_writes_nothing_of_it() {
    let Some(env) = TestEnv::postgres() else {
        return;
    };
    env.ok("create a");
    let relay = Relay::to(server_port(&env));
    let url = through(&env, &relay);
    let child = long_batch(&env, &url, "c", 200_000);
    until_the_head_is_locked(&env);
    std::thread::sleep(Duration::from_millis(200));
    relay.cut();
    let out = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines = lines_in(&env.bytes());
    if out.status.success() {
        // The batch beat the cut: then all of it is there.
        assert_eq!(lines, 2 + 200_000);
    } else {
        assert_eq!(out.status.code(), Some(4), "{stderr}");
        assert_eq!(lines, 2, "{stderr}");
    }
    env.ok("verify");
}

/// How many lines `bytes` hold.
fn lines_in(bytes: &[u8]) -> usize {
    bytes
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .count()
}

/// `history --follow --json` on `location`, and the seq of each event it
/// prints, as it prints them.
fn follower(
    env: &TestEnv,
    location: &str,
) -> (std::process::Child, std::sync::mpsc::Receiver<u64>) {
    let mut child = env
        .process()
        .args(["--file", location, "history", "--follow", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel::<u64>();
    std::thread::spawn(move || {
        let reader = std::io::BufReader::new(stdout);
        for line in std::io::BufRead::lines(reader).map_while(Result::ok) {
            let line: String = line;
            let v: Value = serde_json::from_str(&line).expect("json");
            let _ = tx.send(v["seq"].as_u64().expect("seq"));
        }
    });
    (child, rx)
}

/// A follower whose connections are cut and come back: every event once,
/// in order, none missed.
#[test]
fn a_follower_survives_lost_connections_without_gap_or_repeat() {
    let Some(env) = TestEnv::postgres() else {
        return;
    };
    env.ok("create a");
    let relay = Relay::to(server_port(&env));
    let url = through(&env, &relay);
    let (mut child, rx) = follower(&env, &url);
    let mut seen = vec![rx.recv_timeout(Duration::from_secs(10)).expect("seq 1")];
    for round in 0..3 {
        env.ok(&format!("deposit a {}", round + 1));
        relay.cut();
        env.ok("deposit a 1");
        std::thread::sleep(Duration::from_millis(300));
        relay.resume();
        env.ok("deposit a 1");
        let deadline = Instant::now() + Duration::from_secs(20);
        while seen.len() < 1 + 3 * (round + 1) && Instant::now() < deadline {
            if let Ok(seq) = rx.recv_timeout(Duration::from_millis(200)) {
                seen.push(seq);
            }
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(seen, (1..=10).collect::<Vec<_>>());
}

/// A `batch` on `location` of `n` deposits into `a`, each with its own
/// `--id` (`prefix` and a number), fed on stdin by a thread of its own.
fn long_batch(env: &TestEnv, location: &str, prefix: &str, n: u32) -> std::process::Child {
    let lines: String = (0..n)
        .map(|i| format!("deposit a 1 --id {prefix}{i}\n"))
        .collect();
    let mut child = env
        .process()
        .args(["--file", location, "batch"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut stdin = child.stdin.take().expect("stdin");
    std::thread::spawn(move || {
        let _ = stdin.write_all(lines.as_bytes());
    });
    child
}

/// Waits until another session holds the head row's lock (a writer
/// between its first statement and its commit), so that what a test does
/// next lands inside that write, not before it.
#[track_caller]
fn until_the_head_is_locked(env: &TestEnv) {
    let held = "SELECT count(*)::text FROM pg_locks l JOIN pg_class c ON c.oid = l.relation \
                WHERE c.relname = 'ledger_head' AND l.granted AND l.pid <> pg_backend_pid()";
    let db = env.db.as_ref().expect("db");
    let deadline = Instant::now() + Duration::from_secs(60);
    while db.one(held) == "0" {
        assert!(Instant::now() < deadline, "no write took the head's lock");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits until a session listens for the journal's commits (a
/// follower's wake-up, `LISTEN ledger`) on `env`'s database.
#[track_caller]
fn until_listening(env: &TestEnv) {
    let listening = "SELECT count(*)::text FROM pg_stat_activity \
                     WHERE datname = current_database() AND query = 'LISTEN ledger'";
    let db = env.db.as_ref().expect("db");
    let deadline = Instant::now() + Duration::from_secs(30);
    while db.one(listening) == "0" {
        assert!(Instant::now() < deadline, "no follower listens");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A PostgreSQL cluster of the test's own (`scripts/pg-cluster.sh`), to
/// stop and start again without disturbing the other tests' server.
/// Removed when dropped.
struct OwnServer {
    dir: String,
    url: String,
}

impl OwnServer {
    /// A started cluster; `None` where the tests have no server (then
    /// PostgreSQL may not be installed), which fails under `CI=true`.
    fn start() -> Option<OwnServer> {
        TestDb::new()?;
        let out = OwnServer::script(&["start"]);
        let exported = |name: &str| {
            out.lines()
                .find_map(|l| {
                    l.strip_prefix(&format!("export {name}='"))?
                        .strip_suffix('\'')
                })
                .unwrap_or_else(|| panic!("no {name} in {out}"))
                .to_owned()
        };
        Some(OwnServer {
            dir: exported("LEDGER_TEST_PG_DIR"),
            url: exported("LEDGER_TEST_PG"),
        })
    }

    #[track_caller]
    fn script(args: &[&str]) -> String {
        let out = std::process::Command::new("bash")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/pg-cluster.sh"))
            .args(args)
            .output()
            .expect("run pg-cluster.sh");
        assert!(
            out.status.success(),
            "pg-cluster.sh {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Stops the server: `fast` (sessions ended, as an administrator does)
    /// or `immediate` (as abrupt as a crash).
    fn pause(&self, mode: &str) {
        OwnServer::script(&["pause", &self.dir, mode]);
    }

    fn resume(&self) {
        OwnServer::script(&["resume", &self.dir]);
    }
}

impl Drop for OwnServer {
    fn drop(&mut self) {
        let _ = std::process::Command::new("bash")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/pg-cluster.sh"))
            .args(["stop", &self.dir])
            .output();
    }
}

/// A follower across a real restart of the server: a write while it is
/// down is exit 4 with nothing written; once it is back, the follower
/// listens for commits again and catches up with every event once, in
/// order.
#[test]
fn a_follower_across_a_server_restart_misses_and_repeats_nothing() {
    let Some(server) = OwnServer::start() else {
        return;
    };
    let env = TestEnv::on(TestDb::on(&server.url));
    env.ok("create a");
    let (mut child, rx) = follower(&env, &env.journal.display().to_string());
    until_listening(&env);
    let next = || rx.recv_timeout(Duration::from_secs(20)).expect("a line");
    let mut seen = vec![next()];
    env.ok("deposit a 1");
    seen.push(next());
    for mode in ["fast", "immediate"] {
        let before = env.bytes();
        server.pause(mode);
        let out = env.run("deposit a 1");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(4), "{stderr}");
        assert!(
            stderr.contains("cannot reach the PostgreSQL server"),
            "{stderr}"
        );
        server.resume();
        assert_eq!(env.bytes(), before, "written while the server was down");
        // The wake-up comes back too, not only the polling.
        until_listening(&env);
        env.ok("deposit a 1");
        env.ok("deposit a 1");
        seen.extend([next(), next()]);
    }
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(seen, (1..=6).collect::<Vec<_>>());
    assert!(
        rx.recv_timeout(Duration::from_millis(300)).is_err(),
        "a repeat"
    );
    env.ok("verify");
}

/// The server stopped while a batch holds the head's lock and streams its
/// lines: the batch is exit 4, and once the server is back not one of its
/// events is there.
#[test]
fn a_server_stopped_mid_batch_leaves_none_of_it() {
    let Some(server) = OwnServer::start() else {
        return;
    };
    let db = TestDb::on(&server.url);
    let env = TestEnv::on(db);
    env.ok("create a");
    let before = env.bytes();
    let mut batch = long_batch(&env, &env.journal.display().to_string(), "s", 400_000);
    until_the_head_is_locked(&env);
    server.pause("immediate");
    let status =
        crate::faults::wait_bounded(&mut batch, crate::faults::HANG).expect("the batch hung");
    let mut stderr = String::new();
    let _ = batch
        .stderr
        .take()
        .map(|mut e| e.read_to_string(&mut stderr));
    assert_eq!(status.code(), Some(4), "{stderr}");
    server.resume();
    assert_eq!(env.bytes(), before, "some of the batch was kept");
    env.ok("verify");
}

/// A line changed inside the database breaks the chain as it would in a
/// file: `verify` and every full replay say where.
#[test]
fn a_line_changed_in_the_database_is_caught_as_in_a_file() {
    let Some(env) = TestEnv::postgres() else {
        return;
    };
    let file = TestEnv::new();
    for on in [&env, &file] {
        on.ok("create a");
        on.ok("deposit a 5");
        on.ok("deposit a 7");
    }
    edit_line(&env, 2, "\"5.00\"", "\"9.00\"");
    let edited = std::fs::read_to_string(&file.journal).unwrap();
    std::fs::write(&file.journal, edited.replace("\"5.00\"", "\"9.00\"")).unwrap();
    corrupt_at(&env, "verify", 4);
    // So does every read of a journal this short, which reads it whole
    // (a longer one's `balance` reads the query tables, which are not
    // evidence: verify is the audit), before anything is printed, as on
    // a file that short.
    for read in [
        "history",
        "history a --limit 1",
        "balance",
        "balance a",
        "report --by month",
        "export --to jsonl",
        "export --to ledger",
    ] {
        for on in [&env, &file] {
            corrupt_at(on, read, 4);
            let out = on.run(read);
            assert!(out.stdout.is_empty(), "{read} printed before failing");
        }
    }
}

/// A line edited in the database to repeat an earlier line's id, which
/// breaks the chain at the line after it, is named first, as in a file:
/// `verify` and a full `history` prove the ids distinct where they stop,
/// reading the lines of ids that share a fingerprint from the database.
#[test]
fn a_repeated_id_edited_into_the_database_is_named_before_the_chain_it_breaks() {
    let Some(env) = TestEnv::postgres() else {
        return;
    };
    env.ok("create a");
    env.ok("deposit a 5 --id k2");
    env.ok("deposit a 7 --id k3");
    env.ok("deposit a 1");
    edit_line(&env, 3, "\"k3\"", "\"k2\"");
    for read in ["verify", "history"] {
        let stderr = corrupt_at(&env, read, 4);
        assert!(
            stderr.contains("line 4: id k2 was already used at seq 2"),
            "{read}: {stderr}"
        );
    }
}

/// `kill -9` of a batch mid-way: its transaction never commits, so none of
/// its events is in the journal, and the next writer goes on.
#[test]
fn a_batch_killed_mid_way_leaves_none_of_its_events() {
    let Some(env) = TestEnv::postgres() else {
        return;
    };
    env.ok("create a");
    for wait in [0, 300, 900] {
        let before = env.bytes();
        let mut child = long_batch(&env, &env.journal.display().to_string(), "k", 300_000);
        until_the_head_is_locked(&env);
        std::thread::sleep(Duration::from_millis(wait));
        let _ = child.kill();
        let status = child.wait().expect("wait");
        let after = env.bytes();
        if status.success() {
            // It finished before the kill: then all of it is there.
            assert_eq!(lines_in(&after), lines_in(&before) + 300_000);
            break;
        }
        assert_eq!(after, before);
        env.ok("deposit a 1");
    }
    env.ok("verify");
}

/// On a database whose default isolation is SERIALIZABLE, racing writers
/// and batches all succeed once: a write asks for READ COMMITTED, which
/// under the head row's lock sees every write before it (a batch could
/// not simply be tried again). Conflicts the server sends regardless are
/// the next test's.
#[test]
fn a_serializable_default_refuses_no_writer_under_the_head_lock() {
    let Some(env) = TestEnv::postgres() else {
        return;
    };
    env.ok("create a");
    let db = env.db.as_ref().expect("db");
    let name = db.one("SELECT current_database()::text");
    db.sql(&format!(
        "ALTER DATABASE {name} SET default_transaction_isolation = 'serializable'"
    ));
    let env = Arc::new(env);
    // Single commands, and batches (whose input is read once, so that
    // they cannot simply be tried again), side by side.
    let writers: Vec<_> = (0..6)
        .map(|w| {
            let env = Arc::clone(&env);
            std::thread::spawn(move || {
                for i in 0..8 {
                    let out = match w % 2 {
                        0 => env.run(&format!("deposit a 1 --memo w{w}-{i}")),
                        _ => env
                            .cmd()
                            .arg("batch")
                            .write_stdin(format!(
                                "deposit a 0.50 --memo w{w}-{i}\ndeposit a 0.50\n"
                            ))
                            .output()
                            .expect("batch"),
                    };
                    let stderr = String::from_utf8_lossy(&out.stderr);
                    assert!(out.status.success(), "{stderr}");
                }
            })
        })
        .collect();
    for w in writers {
        w.join().expect("writer");
    }
    assert_eq!(env.balance_of("a"), "48.00");
    env.ok("verify");
}

/// A write refused for a conflicting one (SQLSTATE 40001, which a
/// database that runs every transaction `SERIALIZABLE` sends) is decided
/// again by itself, a bounded number of times; a batch, whose input may be
/// a pipe read once, is not: it exits 4 with nothing written, and runs
/// again safely. The refusals are injected: the head row refuses as many
/// of its next updates as asked, the last step of every write.
#[test]
fn writers_refused_for_a_conflict_try_again_by_themselves() {
    let Some(env) = TestEnv::postgres() else {
        return;
    };
    env.ok("create a");
    let db = env.db.as_ref().expect("db");
    // A sequence counts the updates tried: it is not rolled back with the
    // transaction its trigger refuses.
    db.sql(
        "CREATE SEQUENCE ledger_test_tried;
         CREATE TABLE ledger_test_refusals (upto bigint NOT NULL);
         INSERT INTO ledger_test_refusals VALUES (0);
         CREATE FUNCTION ledger_test_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
             IF nextval('ledger_test_tried') <= (SELECT upto FROM ledger_test_refusals) THEN
                 RAISE EXCEPTION 'injected conflict' USING ERRCODE = 'serialization_failure';
             END IF;
             RETURN NEW;
         END $$;
         CREATE TRIGGER ledger_test_refuse BEFORE UPDATE ON ledger_head
             FOR EACH ROW EXECUTE FUNCTION ledger_test_refuse();",
    );
    let refuse = |next: u32| {
        db.sql(&format!(
            "SELECT setval('ledger_test_tried', 1, false);
             UPDATE ledger_test_refusals SET upto = {next}"
        ));
    };
    let tried = || db.one("SELECT last_value::text FROM ledger_test_tried");

    refuse(2);
    env.ok("deposit a 5 --id d1");
    assert_eq!(tried(), "3", "two refusals, then the write");
    assert_eq!(env.balance_of("a"), "5.00");

    refuse(1);
    let batch = "deposit a 1 --id b1\ndeposit a 1 --id b2\n";
    let before = env.bytes();
    let out = env
        .cmd()
        .arg("batch")
        .write_stdin(batch)
        .output()
        .expect("batch");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert!(
        stderr.contains("a conflicting write; nothing was written"),
        "{stderr}"
    );
    assert_eq!(env.bytes(), before, "the refused batch wrote");
    let out = env
        .cmd()
        .arg("batch")
        .write_stdin(batch)
        .output()
        .expect("batch");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Refused every time: given up after the bounded retries, nothing
    // written, and the same --id then goes through once.
    refuse(100);
    let stderr = env.fails(4, &["deposit", "a", "1", "--id", "d2"]);
    assert!(
        stderr.contains("a conflicting write; nothing was written"),
        "{stderr}"
    );
    assert_eq!(tried(), "9", "the first try and 8 more");
    refuse(0);
    env.ok("deposit a 1 --id d2");
    env.ok("deposit a 1 --id d2");
    assert_eq!(env.balance_of("a"), "8.00");
    env.ok("verify");
}

/// The connection lost while the server commits: the command cannot know
/// the outcome and says so (exit 4); here the commit went through, and
/// running it again with the same `--id` is a repeat, as promised.
#[test]
fn a_connection_lost_during_commit_is_an_unknown_outcome_safe_to_repeat() {
    let Some(env) = TestEnv::postgres() else {
        return;
    };
    env.ok("create a");
    // A trigger that runs at COMMIT and takes its time: the connection is
    // cut while the server is inside the commit.
    env.db.as_ref().expect("db").sql(
        "CREATE FUNCTION slow() RETURNS trigger AS $$ BEGIN PERFORM pg_sleep(2); RETURN NULL; END $$
             LANGUAGE plpgsql;
         CREATE CONSTRAINT TRIGGER slow_commit AFTER UPDATE ON ledger_head
             DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION slow();",
    );
    let relay = Relay::to(server_port(&env));
    let url = through(&env, &relay);
    let child = env
        .process()
        .args(["--file", &url, "deposit", "a", "5", "--id", "pay-1"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    std::thread::sleep(Duration::from_millis(1000));
    relay.cut();
    let out = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert!(
        stderr.contains("outcome of this write is unknown") && stderr.contains("same --id is safe"),
        "{stderr}"
    );
    std::thread::sleep(Duration::from_millis(2500));
    let again = env.ok("deposit a 5 --id pay-1");
    assert!(again.contains("already recorded"), "{again}");
    assert_eq!(env.balance_of("a"), "5.00");
}

/// TLS as the URL's `sslmode` asks, with libpq's meanings. The test
/// server lets `ledger_tls` sign in over TLS only, and its certificate
/// names `localhost`, not `127.0.0.1` (`scripts/pg-cluster.sh`).
#[test]
fn tls_is_used_and_the_certificate_checked_as_sslmode_asks() {
    let Some(env) = TestEnv::postgres() else {
        return;
    };
    let Some(ca) = cluster_var("LEDGER_TEST_PG_CA") else {
        return;
    };
    env.db
        .as_ref()
        .expect("db")
        .sql("GRANT ALL ON SCHEMA public TO ledger_tls");
    let url = env
        .journal
        .display()
        .to_string()
        .replace("ledger:secret@", "ledger_tls:secret@");
    let run = |url: &str, args: &[&str]| run_at(&env, url, args);
    let (code, stderr) = run(&format!("{url}?sslmode=require"), &["create", "a"]);
    assert_eq!(code, Some(0), "{stderr}");
    // Without TLS the server turns this user away: the write above used it.
    let (code, stderr) = run(&format!("{url}?sslmode=disable"), &["balance"]);
    assert_eq!(code, Some(4), "{stderr}");
    assert!(stderr.contains("no encryption"), "{stderr}");
    let verify = |mode: &str, url: &str| format!("{url}?sslmode={mode}&sslrootcert={ca}");
    let (code, stderr) = run(&verify("verify-ca", &url), &["deposit", "a", "1"]);
    assert_eq!(code, Some(0), "{stderr}");
    let (code, stderr) = run(&verify("verify-full", &url), &["balance"]);
    assert_eq!(code, Some(4), "{stderr}");
    assert!(stderr.contains("not valid for name"), "{stderr}");
    let by_name = url.replace("@127.0.0.1:", "@localhost:");
    let (code, stderr) = run(&verify("verify-full", &by_name), &["deposit", "a", "1"]);
    assert_eq!(code, Some(0), "{stderr}");
    let missing = format!("{url}?sslmode=verify-ca&sslrootcert=/nonexistent/ca.pem");
    let (code, stderr) = run(&missing, &["balance"]);
    assert_eq!(code, Some(4), "{stderr}");
    assert!(stderr.contains("root certificates"), "{stderr}");
    assert_eq!(env.balance_of("a"), "2.00");
}

/// A server that signs users in by client certificate: `sslcert` and
/// `sslkey` in the URL, else libpq's default files under
/// `~/.postgresql`; without one the server turns the user away, and a key
/// others may read is refused before it is sent.
#[test]
fn a_client_certificate_signs_in_as_sslcert_and_sslkey_say() {
    let Some(env) = TestEnv::postgres() else {
        return;
    };
    let Some(dir) = cluster_var("LEDGER_TEST_PG_DIR") else {
        return;
    };
    let tls = Path::new(&dir).join("tls");
    env.db
        .as_ref()
        .expect("db")
        .sql("GRANT ALL ON SCHEMA public TO ledger_cert");
    let url = env
        .journal
        .display()
        .to_string()
        .replace("ledger:secret@", "ledger_cert@");
    let ca = tls.join("ca.pem");
    let base = format!("{url}?sslmode=verify-ca&sslrootcert={}", ca.display());
    let run = |url: &str, args: &[&str]| run_at(&env, url, args);
    let with = |cert: &Path, key: &Path| {
        format!("{base}&sslcert={}&sslkey={}", cert.display(), key.display())
    };
    let (cert, key) = (tls.join("client.pem"), tls.join("client.key"));
    let (code, stderr) = run(&with(&cert, &key), &["create", "a"]);
    assert_eq!(code, Some(0), "{stderr}");
    let (code, stderr) = run(&base, &["balance"]);
    assert_eq!(code, Some(4), "{stderr}");
    assert!(stderr.contains("certificate"), "{stderr}");
    // A key anyone may read: refused, naming it.
    let loose = env.dir.path().join("loose.key");
    std::fs::copy(&key, &loose).expect("copy the key");
    std::fs::set_permissions(&loose, std::os::unix::fs::PermissionsExt::from_mode(0o644))
        .expect("chmod");
    let (code, stderr) = run(&with(&cert, &loose), &["balance"]);
    assert_eq!(code, Some(4), "{stderr}");
    assert!(
        stderr.contains("loose.key may be read by others"),
        "{stderr}"
    );
    let missing = env.dir.path().join("none.pem");
    let (code, stderr) = run(&with(&missing, &key), &["balance"]);
    assert_eq!(code, Some(4), "{stderr}");
    assert!(
        stderr.contains("cannot read the client certificate"),
        "{stderr}"
    );
    // libpq's default files, in the home the test gives the binary.
    let home = env.dir.path().join(".postgresql");
    std::fs::create_dir_all(&home).expect("mkdir");
    std::fs::copy(&cert, home.join("postgresql.crt")).expect("copy the certificate");
    std::fs::copy(&key, home.join("postgresql.key")).expect("copy the key");
    std::fs::set_permissions(
        home.join("postgresql.key"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .expect("chmod");
    let (code, stderr) = run(&base, &["deposit", "a", "3"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(env.balance_of("a"), "3.00");
}

#[test]
fn a_password_given_as_a_url_query_parameter_is_never_shown() {
    let Some(env) = TestEnv::postgres() else {
        return;
    };
    // libpq also takes the password as `?password=`.
    let url = env.journal.display().to_string();
    let (user, rest) = url.split_once(":secret@").expect("a password in the URL");
    let in_query = format!("{user}@{rest}?password=secret");
    let (code, stderr) = run_at(&env, &in_query, &["create", "a"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(!stderr.contains("secret"), "{stderr}");
    let wrong = format!("{user}@{rest}?password=hunter2");
    let (code, stderr) = run_at(&env, &wrong, &["balance"]);
    assert_eq!(code, Some(4), "{stderr}");
    assert!(!stderr.contains("hunter2"), "{stderr}");
}

#[test]
fn a_balance_changed_by_hand_in_the_query_tables_is_not_trusted() {
    // As on a file (SPEC 7), an account row changed by hand fails its
    // digest: the command replays the journal instead, so the edited
    // balance is neither printed nor spent.
    let Some(env) = TestEnv::postgres() else {
        return;
    };
    env.ok("create a");
    env.ok("deposit a 10");
    let db = env.db.as_ref().expect("a database");
    db.sql("UPDATE ledger_accounts SET balance = 100000 WHERE name = 'a'");
    assert!(
        env.ok("balance a").contains("10.00"),
        "{}",
        env.ok("balance a")
    );
    env.fails(1, &["withdraw", "a", "500"]);
    env.ok("verify");
}

#[test]
fn hold_reversal_and_unit_rows_changed_by_hand_are_not_trusted() {
    // Every row of the query tables carries a digest, as in the SQLite
    // model: each edit below fails it, the command replays the journal,
    // and answers from the lines, not from the edited row.
    let Some(env) = TestEnv::postgres_with(&[
        "create a --currency EUR",
        "create b --currency EUR",
        "deposit a 10",
        "deposit a 10",
        "hold a 4 --to b",
        "hold a 1",
        "release 6",
        "reverse 3",
    ]) else {
        return;
    };
    let balance = env.ok("balance --json");
    let db = env.db.as_ref().expect("a database");
    db.sql("UPDATE ledger_holds SET amount = 900 WHERE seq = 5");
    env.refusals(&[(&["capture", "5", "9"], 1, "4.00")]);
    db.sql("UPDATE ledger_ended SET by_seq = 99 WHERE seq = 6");
    env.refusals(&[(&["release", "6"], 1, "seq 7")]);
    db.sql("UPDATE ledger_reversed SET by_seq = 99 WHERE seq = 3");
    env.refusals(&[(&["reverse", "3"], 1, "seq 8")]);
    db.sql("UPDATE ledger_units SET deposited = 1");
    assert_eq!(env.ok("balance --json"), balance);
    env.ok("capture 5 4");
    assert_eq!(env.balance_of("b"), "4.00");
    env.ok("verify");
}

#[test]
fn rows_a_batch_reads_ahead_for_its_targets_are_not_trusted_when_changed() {
    // A batch reads the rows of the events its commands name (reversals,
    // holds and their ends) for many commands at once: each edit below
    // must be caught there as a single command catches it (the test
    // above), and the batch refused as a whole.
    let Some(env) = TestEnv::postgres_with(&[
        "create a --currency EUR",
        "create b --currency EUR",
        "deposit a 10 --id d-3",
        "deposit a 10 --id d-4",
        "hold a 4 --to b --id h-5",
        "hold a 1 --id h-6",
        "release --of-id h-6",
        "reverse --of-id d-3",
    ]) else {
        return;
    };
    let db = env.db.as_ref().expect("a database");
    let batch = |name: &str, commands: &str| env.file(name, &format!("deposit a 1\n{commands}\n"));
    let capture = batch("capture", "capture --of-id h-5 9");
    db.sql("UPDATE ledger_holds SET amount = 900 WHERE seq = 5");
    let release = batch("release", "release 6");
    db.sql("UPDATE ledger_ended SET by_seq = 99 WHERE seq = 6");
    let reverse = batch("reverse", "reverse --of-id d-3");
    db.sql("UPDATE ledger_reversed SET by_seq = 99 WHERE seq = 3");
    env.refusals(&[
        (&["batch", &capture], 1, "4.00"),
        (&["batch", &release], 1, "seq 7"),
        (&["batch", &reverse], 1, "seq 8"),
    ]);
    db.sql("DELETE FROM ledger_reversed");
    env.refusals(&[(&["batch", &reverse], 1, "seq 8")]);
    batch_ok(
        &env,
        "deposit a 10\ncapture --of-id h-5 4\nreverse --of-id d-4\n",
    );
    assert_eq!(env.balance_of("a"), "6.00");
    assert_eq!(env.balance_of("b"), "4.00");
    env.ok("verify");
}

#[test]
fn a_reversal_deleted_by_hand_from_the_query_tables_is_not_made_twice() {
    // The rows' word that a movement was not reversed lets `reverse`
    // append: the lines say which movements are reversed (a unique
    // column), so the rows are not believed and the journal is replayed.
    let Some(env) = TestEnv::postgres() else {
        return;
    };
    env.ok("create a");
    env.ok("deposit a 10");
    env.ok("deposit a 10");
    env.ok("reverse 2");
    let db = env.db.as_ref().expect("a database");
    db.sql("DELETE FROM ledger_reversed");
    env.refusals(&[(&["reverse", "2"], 1, "seq 4")]);
    assert_eq!(env.balance_of("a"), "10.00");
    env.ok("verify");
}

#[test]
fn a_hold_row_put_back_beside_its_deleted_end_is_not_captured_twice() {
    // The rows' word that a hold is open lets `capture` append: the lines
    // say which holds are ended (a unique column), so a hold row restored
    // from a backup is not believed, alone or in a batch, and the journal
    // is replayed instead.
    let Some(env) = TestEnv::postgres_with(&[
        "create a",
        "create b",
        "deposit a 10",
        "hold a 4 --to b --id h",
    ]) else {
        return;
    };
    let db = env.db.as_ref().expect("a database");
    db.sql("CREATE TABLE saved AS SELECT * FROM ledger_holds");
    env.ok("capture 4");
    db.sql("DELETE FROM ledger_ended");
    db.sql("INSERT INTO ledger_holds SELECT * FROM saved");
    let batch = env.file("batch", "deposit a 1\ncapture --of-id h\n");
    env.refusals(&[
        (&["capture", "4"], 1, "seq 5"),
        (&["batch", &batch], 1, "seq 5"),
    ]);
    assert_eq!(env.balance_of("a"), "6.00");
    assert_eq!(env.balance_of("b"), "4.00");
    env.ok("verify");
}

#[test]
fn a_hold_row_put_back_beside_its_deleted_end_does_not_hold_money_on_its_accounts() {
    // An account's holds are read with it (those that may lapse, and
    // those naming it as `to`): an ended one put back by hand must not
    // count as lapsed money freed, nor keep its `to` from closing.
    let Some(env) = TestEnv::postgres_with(&[
        "create a",
        "create b",
        "deposit a 10",
        "hold a 4 --expires 2026-11-26T10:00:05Z",
        "hold a 2 --to b",
    ]) else {
        return;
    };
    let db = env.db.as_ref().expect("a database");
    db.sql("CREATE TABLE saved AS SELECT * FROM ledger_holds");
    env.ok("capture 4");
    env.ok("capture 5");
    env.ok("hold a 4");
    env.ok("withdraw b 2");
    db.sql("DELETE FROM ledger_ended; INSERT INTO ledger_holds SELECT * FROM saved");
    let lines = db.stored();
    let late = env
        .cmd()
        .env("LEDGER_TEST_CLOCK", "2026-11-26T10:00:10Z")
        .args(["withdraw", "a", "4"])
        .output()
        .expect("run ledger");
    let stderr = String::from_utf8_lossy(&late.stderr);
    assert_eq!(late.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("insufficient funds"), "{stderr}");
    assert_eq!(db.stored(), lines);
    env.ok("close b");
    env.ok("verify");
}

#[test]
fn a_hold_deleted_by_hand_from_both_hold_tables_is_found_in_the_lines() {
    // The rows' word that a target is no hold refuses a capture: a hold
    // missing from both tables is placed in the lines, so the journal is
    // replayed instead, and each command is decided on what the lines say.
    let Some(env) = TestEnv::postgres_with(&[
        "create a",
        "create b",
        "deposit a 10",
        "hold a 4 --to b",
        "hold a 1 --id h",
        "release 5",
    ]) else {
        return;
    };
    let db = env.db.as_ref().expect("a database");
    let lost = "DELETE FROM ledger_holds; DELETE FROM ledger_ended";
    db.sql(lost);
    let batch = env.file("batch", "deposit a 1\nrelease --of-id h\n");
    env.refusals(&[
        (&["release", "5"], 1, "seq 6"),
        (&["batch", &batch], 1, "seq 6"),
    ]);
    db.sql(lost);
    batch_ok(&env, "deposit a 1\ncapture 4\n");
    db.sql(lost);
    env.refusals(&[(&["capture", "4"], 1, "seq 8")]);
    assert_eq!(env.balance_of("a"), "7.00");
    assert_eq!(env.balance_of("b"), "4.00");
    env.ok("verify");
}

#[test]
fn tables_made_before_hold_ends_were_a_column_get_it_from_their_lines() {
    // A database written by an earlier build has no `ends` column: the
    // next write adds it, filled from the lines, and keeps it even when
    // the write itself is refused.
    let Some(env) = TestEnv::postgres_with(&[
        "create a",
        "create b",
        "deposit a 10",
        "hold a 4 --to b",
        "hold a 1",
        "capture 4 3",
        "release 5",
        "hold a 2",
        // Bytes that look like an end, in a string: not one.
        r#"deposit a 1 --memo "type":"HoldCaptured","hold":4"#,
    ]) else {
        return;
    };
    let db = env.db.as_ref().expect("a database");
    let ends = "SELECT string_agg(seq || ':' || ends, ',' ORDER BY seq) FROM ledger_lines
        WHERE ends > 0";
    assert_eq!(db.one(ends), "6:4,7:5");
    db.sql("DROP INDEX ledger_lines_hold_ends; ALTER TABLE ledger_lines DROP COLUMN ends");
    // Reads change nothing (and read no such column): an open hold shown.
    assert!(env.ok("balance a").contains("2.00"));
    env.refusals(&[(&["withdraw", "a", "100"], 1, "insufficient")]);
    assert_eq!(db.one(ends), "6:4,7:5");
    env.ok("capture 8");
    assert_eq!(db.one(ends), "6:4,7:5,10:8");
    env.refusals(&[(&["release", "5"], 1, "seq 7")]);
    // A build that does not know the column cannot add a line beside it
    // (its `COPY` names the columns it knows).
    let mut earlier = postgres::Client::connect(&db.url, postgres::NoTls).expect("connect");
    let refused = earlier
        .batch_execute("INSERT INTO ledger_lines (seq, end_off, line) VALUES (11, 1, 'x')")
        .expect_err("a line without its end");
    assert_eq!(
        refused.code(),
        Some(&postgres::error::SqlState::NOT_NULL_VIOLATION)
    );
    // A column without its index is not trusted: filled again.
    db.sql("DROP INDEX ledger_lines_hold_ends; UPDATE ledger_lines SET ends = 7 WHERE seq = 3");
    env.ok("deposit a 1");
    assert_eq!(db.one(ends), "6:4,7:5,10:8");
    env.ok("verify");
}

#[test]
fn a_journal_ending_one_hold_twice_is_not_written_to_when_its_ends_are_added() {
    // Two lines ending one hold cannot be given the unique column: the
    // journal is corrupt, and no write goes on until it is mended.
    let Some(env) = TestEnv::postgres_with(&[
        "create a",
        "deposit a 10",
        "hold a 1",
        "release 3",
        "hold a 2",
        "release 5",
    ]) else {
        return;
    };
    let db = env.db.as_ref().expect("a database");
    db.sql("DROP INDEX ledger_lines_hold_ends; ALTER TABLE ledger_lines DROP COLUMN ends");
    db.sql(
        r#"UPDATE ledger_lines SET line = convert_to(replace(convert_from(line, 'UTF8'),
            '"hold":5', '"hold":3'), 'UTF8') WHERE seq = 6"#,
    );
    // (`fails` would compare exports, and `export` refuses this journal.)
    let (lines, tables) = (db.stored(), db.tables());
    let out = env.run("deposit a 1");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("line 7: ends hold 3, which seq 4 ended already"),
        "{stderr}"
    );
    assert_eq!((db.stored(), db.tables()), (lines, tables));
}

#[test]
fn an_account_deleted_by_hand_from_the_query_tables_is_not_opened_twice() {
    // The rows' word that an account is missing is what lets `create`
    // append: it is checked against the lines, which say which accounts
    // were opened, and the journal is replayed instead.
    let Some(env) = TestEnv::postgres() else {
        return;
    };
    env.ok("create a");
    env.ok("deposit a 10 --id x");
    let db = env.db.as_ref().expect("a database");
    db.sql("DELETE FROM ledger_accounts WHERE name = 'a'");
    let stderr = env.fails(1, &["create", "a"]);
    assert!(stderr.contains("already exists"), "{stderr}");
    let again = env.ok("deposit a 10 --id x");
    assert!(again.contains("already recorded"), "{again}");
    assert_eq!(env.balance_of("a"), "10.00");
    env.ok("verify");
}

/// The query tables record no hash of the line they were saved at, so they
/// cannot tell that the lines were rewritten after them: a read that goes
/// through every line must decide every event again, as it would with no
/// rows, and refuse a forged one the chain was recomputed around.
#[test]
fn lines_rewritten_with_a_recomputed_chain_are_decided_again_by_every_full_read() {
    let Some(env) = TestEnv::postgres() else {
        return;
    };
    env.ok("create a");
    env.ok("deposit a 5");
    env.ok("deposit a 7");
    let db = env.db.as_ref().expect("a database");
    // The first deposit becomes a withdrawal from an empty account (the
    // same length, so no offset moves), and every later line is chained
    // again, as a forger would; the rows still cover the last seq.
    let mut lines: Vec<String> = String::from_utf8(db.stored())
        .expect("utf-8 lines")
        .lines()
        .map(str::to_owned)
        .collect();
    lines[2] = lines[2].replacen("MoneyDeposited", "MoneyWithdrawn", 1);
    crate::common::rechain(&mut lines, 3);
    for (seq, line) in lines.iter().enumerate().skip(2) {
        let hex: String = line.bytes().map(|b| format!("{b:02x}")).collect();
        db.sql(&format!(
            "UPDATE ledger_lines SET line = '\\x{hex}'::bytea WHERE seq = {seq}"
        ));
    }
    let before = db.stored();
    let chart = env.dir.path().join("a.svg");
    let chart = format!("chart a --out {}", chart.display());
    for args in [
        "report --json",
        &chart,
        "history --json",
        "export --to jsonl",
        "export --to ledger",
    ] {
        let out = env.run(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{args}: {stderr}");
        assert!(stderr.contains("line 3: "), "{args}: {stderr}");
        assert_eq!(db.stored(), before, "{args} changed the lines");
    }
}

/// A batch long enough to be staged in a spool and to go to the server
/// in many `COPY` messages stores exactly the lines a file gets (and
/// prints them as the file's does), with the ids, accounts and reversals
/// it takes in the columns that keep them unique, and the keys of the
/// table it made; the commands after it are decided as on the file.
#[test]
fn a_long_batch_stores_the_lines_a_file_gets() {
    let Some(db) = TestEnv::postgres() else {
        return;
    };
    let file = TestEnv::new();
    let memo = "m".repeat(100);
    let mut commands = String::new();
    for i in 0..30_000 {
        if i % 1500 == 0 {
            commands.push_str(&format!("create c{}\n", i / 1500));
        }
        commands.push_str(&format!(
            "deposit c{} 1.50 --id d{i} --memo {memo}\n",
            i / 1500
        ));
    }
    // Deposits, the first and the last of a block's.
    commands.push_str("reverse 2\nreverse 5000\nreverse 30020\n");
    let printed = |env: &TestEnv| {
        let out = env
            .cmd()
            .args(["batch", "--json"])
            .write_stdin(commands.clone())
            .output()
            .expect("batch");
        succeeded(&out);
        out.stdout
    };
    assert_eq!(printed(&db), printed(&file));
    assert_eq!(db.bytes(), file.bytes());
    assert!(file.bytes().len() > 4 << 20, "staged in a spool");
    let db_rows = db.db.as_ref().expect("db");
    let columns = "SELECT count(id) || ' ' || count(creates) || ' ' || count(reverses)
                   FROM ledger_lines";
    assert_eq!(db_rows.one(columns), "30000 20 3");
    // The batch made the tables, and the keys of the lines after them.
    let keys = "SELECT string_agg(conname || ' ' || contype::text, ', ' ORDER BY conname)
                FROM pg_constraint WHERE conrelid = 'ledger_lines'::regclass";
    assert_eq!(
        db_rows.one(keys),
        "ledger_lines_end_off_key u, ledger_lines_pkey p"
    );
    for line in [
        "deposit c0 1.50 --id d7",
        "create c3",
        "reverse 5000",
        "reverse 30019",
        "batch|deposit c1 2 --id d1500|deposit c19 1 --id new",
    ] {
        assert_eq!(run_line(&db, line), run_line(&file, line));
    }
    assert_eq!(db.bytes(), file.bytes());
}

/// A journal long enough to be read on a second connection, in the
/// reading transaction's snapshot (over 8 MiB): full reads see exactly the
/// file's lines, and a line missing from the middle of the table is
/// caught as damage, not taken for the journal's end.
#[test]
fn a_long_journal_reads_as_the_file_and_a_missing_line_is_caught() {
    let Some((env, file)) = long_journal() else {
        return;
    };
    for read in [
        "verify --json",
        "export --to jsonl",
        "history a --json --limit 2",
    ] {
        assert_eq!(env.ok(read), file.ok(read), "{read}");
    }
    let db = env.db.as_ref().expect("db");
    db.sql("DELETE FROM ledger_lines WHERE seq = 12000");
    lines_missing_from(
        &env,
        &["verify", "export --to jsonl", "history --json"],
        12001,
    );
}

/// Whatever order the lines table keeps its rows in (an update, or an
/// insert into the room rolled-back rows left once vacuumed, puts a row
/// wherever there is room: here past the last line), a long read has the
/// lines in offset order, the moved ones in their turn; a line missing is
/// still caught.
#[test]
fn rows_stored_out_of_their_place_are_read_in_their_turn() {
    let Some((env, file)) = long_journal() else {
        return;
    };
    let db = env.db.as_ref().expect("db");
    db.sql("UPDATE ledger_lines SET line = line WHERE seq IN (100, 20000)");
    let moved = "SELECT ((SELECT ctid FROM ledger_lines WHERE seq = 100) \
        > (SELECT ctid FROM ledger_lines WHERE seq = 25002))::text";
    assert_eq!(
        db.one(moved),
        "true",
        "the row is stored past the last line"
    );
    for read in ["verify --json", "export --to jsonl", "history --json"] {
        assert_eq!(env.ok(read), file.ok(read), "{read}");
    }
    db.sql("DELETE FROM ledger_lines WHERE seq = 12000");
    lines_missing_from(&env, &["verify", "export --to jsonl"], 12001);
}

/// A long read takes two connections, whatever order the table keeps its
/// rows in: the reading transaction's and the stream's in its snapshot. A
/// role allowed no more still verifies and exports a journal with a row
/// out of its place. (A read by the table's pages, tried and dropped, read
/// on from such a row on a third connection.)
#[test]
fn a_long_read_needs_no_third_connection() {
    let Some((env, file)) = long_journal() else {
        return;
    };
    let db = env.db.as_ref().expect("db");
    db.sql("UPDATE ledger_lines SET line = line WHERE seq = 100");
    let name = db.url.rsplit('/').next().expect("name").to_owned();
    let role = format!("{name}_two");
    db.sql(&format!(
        "CREATE ROLE {role} LOGIN PASSWORD 'pw' CONNECTION LIMIT 2;
         GRANT ALL ON SCHEMA public TO {role};
         GRANT ALL ON ALL TABLES IN SCHEMA public TO {role}"
    ));
    let rest = db.url.split_once('@').expect("url").1;
    let url = format!("postgresql://{role}:pw@{rest}");
    let reads: Vec<_> = [&["verify", "--json"][..], &["export", "--to", "jsonl"]]
        .iter()
        .map(|args| (args.join(" "), run_at(&env, &url, args)))
        .collect();
    db.sql(&format!("DROP OWNED BY {role}; DROP ROLE {role}"));
    for (read, (code, stderr)) in reads {
        assert_eq!(code, Some(0), "{read}: {stderr}");
    }
    assert_eq!(env.ok("export --to jsonl"), file.ok("export --to jsonl"));
}

/// A long read gets the lines in stretches of 64 KiB, one row each; lines
/// missing at the end, for more than a stretch (rows that come as nulls),
/// are still damage, named at the start of the write (the one batch) they
/// were part of, and reading it changes nothing.
#[test]
fn lines_missing_for_more_than_a_stretch_at_the_end_are_caught() {
    let Some((env, _)) = long_journal() else {
        return;
    };
    let db = env.db.as_ref().expect("db");
    // About 1.8 MB of lines: some 28 stretches without a line.
    db.sql("DELETE FROM ledger_lines WHERE seq > 20000");
    let stored = db.stored();
    lines_missing_from(&env, &["verify", "export --to jsonl"], 2);
    assert_eq!(db.stored(), stored);
}

/// `balance` of every account reads the query tables a page at a time,
/// as from the SQLite model: the same listing as the file's over several
/// pages, and an account row lost by hand is seen before anything is
/// printed (the totals no longer add up), so the listing still shows it.
#[test]
fn every_balance_comes_in_pages_as_from_a_file_and_a_lost_row_is_seen() {
    let Some(env) = TestEnv::postgres() else {
        return;
    };
    let file = TestEnv::new();
    let mut commands = String::new();
    for i in 0..2_500 {
        commands.push_str(&format!("create a{i}\ndeposit a{i} {i}.25\n"));
    }
    commands.push_str("hold a7 2 --to a9\n");
    for on in [&env, &file] {
        batch_ok(on, &commands);
    }
    for read in ["balance", "balance --json", "balance --format csv"] {
        assert_eq!(env.ok(read), file.ok(read), "{read}");
    }
    let db = env.db.as_ref().expect("db");
    db.sql("DELETE FROM ledger_accounts WHERE name = 'a2000'");
    assert_eq!(env.ok("balance --json"), file.ok("balance --json"));
}

/// `history ACCOUNT` on a database (its last N events, every event, or
/// those after a bound): the server searches the lines for the account's
/// name instead of the client replaying them all,
/// with the same rows as a file's (a memo that holds another account's
/// name is passed over); a line changed by hand is not shown as if it
/// were the journal's: the full replay then says where it breaks.
#[test]
fn history_of_one_account_is_searched_by_the_server_as_a_file_shows_it() {
    let Some(env) = TestEnv::postgres() else {
        return;
    };
    let file = TestEnv::new();
    let mut commands = String::from("create a\ncreate b\ncreate c\ndeposit a 100\n");
    for i in 0..300 {
        commands.push_str(&format!("deposit b {i}.01 --memo \"a\"\n"));
        if i % 7 == 0 {
            commands.push_str(&format!("transfer a b 0.{:02}\n", 1 + i % 98));
        }
    }
    commands.push_str("hold a 5 --to c\nwithdraw a 1\n");
    for on in [&env, &file] {
        batch_ok(on, &commands);
    }
    for read in [
        "history a --limit 1",
        "history a --limit 3",
        "history a --limit 500 --json",
        "history c --limit 5",
        "history b --limit 2 --format csv",
        "history a",
        "history c --json",
        "history a --from-seq 200",
        "history b --from-seq 330 --limit 2 --json",
        "history a --as-of 100 --format csv",
        "history a --since 2020-01-01T00:00:00Z",
        "history a --until 2020-01-01T00:00:00Z",
    ] {
        assert_eq!(env.ok(read), file.ok(read), "{read}");
    }
    edit_line(&env, 4, "\"100.00\"", "\"900.00\"");
    corrupt_at(&env, "history a --limit 500", 6);
    corrupt_at(&env, "history a", 6);
}

/// A database's writes commit whole, so a multi-event append whose last
/// row is gone is a line missing, not a torn write to ignore: before,
/// `verify` said ok for the lines before the append (none, for a journal
/// written by one `batch`).
#[test]
fn a_row_missing_from_the_last_multi_event_append_is_damage_not_a_torn_write() {
    let Some(env) = TestEnv::postgres() else {
        return;
    };
    env.ok("create a");
    batch_ok(&env, "deposit a 1\ndeposit a 2\ndeposit a 3\n");
    let db = env.db.as_ref().expect("db");
    db.sql("DELETE FROM ledger_lines WHERE seq = 4");
    lines_missing_from(
        &env,
        &["verify", "export --to jsonl", "history --json", "balance"],
        3,
    );
}

/// A role that may not export a snapshot reads a long journal on its own
/// connection, as before the second connection: the refused export must
/// not abort the read's transaction.
#[test]
fn a_long_read_works_where_the_server_will_not_export_a_snapshot() {
    let Some((env, file)) = long_journal() else {
        return;
    };
    let db = env.db.as_ref().expect("db");
    db.sql(
        "DO $$ BEGIN CREATE ROLE ledger_noexport LOGIN PASSWORD 'secret';
         EXCEPTION WHEN duplicate_object THEN NULL; END $$;
         GRANT SELECT ON ALL TABLES IN SCHEMA public TO ledger_noexport;
         REVOKE EXECUTE ON FUNCTION pg_export_snapshot() FROM PUBLIC",
    );
    let url = env
        .journal
        .display()
        .to_string()
        .replace("ledger:secret@", "ledger_noexport:secret@");
    for read in ["verify", "export --to jsonl", "history a --json --limit 2"] {
        let out = env
            .bare()
            .arg("--file")
            .arg(&url)
            .args(read.split_whitespace())
            .output()
            .expect("run");
        assert!(
            out.status.success(),
            "{read}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            String::from_utf8(out.stdout).expect("utf-8"),
            file.ok(read).replace(
                &file.journal.display().to_string(),
                &url.replace("ledger_noexport:secret@", "ledger_noexport@")
            ),
            "{read}"
        );
    }
}

/// A database (`None` without a server) holding a journal too long to be
/// read on one connection (over 8 MiB): 25,000 deposits with long memos,
/// made in a file journal and copied in; the database and the file.
#[track_caller]
fn long_journal() -> Option<(TestEnv, TestEnv)> {
    let env = TestEnv::postgres()?;
    let file = TestEnv::new();
    let memo = "m".repeat(300);
    let mut commands = String::from("create a\ncreate b\n");
    for i in 0..25_000 {
        commands.push_str(&format!("deposit a 1.25 --id d{i} --memo {memo}\n"));
    }
    batch_ok(&file, &commands);
    assert!(
        file.bytes().len() > 8 << 20,
        "long enough for a second connection"
    );
    succeeded(&copy(&env, &file.journal, &env.journal));
    Some((env, file))
}

/// `ledger copy FROM TO`, run as `env` runs the binary.
fn copy(env: &TestEnv, from: &Path, to: &Path) -> Output {
    env.bare()
        .arg("copy")
        .arg(from)
        .arg(to)
        .output()
        .expect("copy")
}

/// Asserts that the command `out` came from exited 0, showing its stderr
/// if not.
#[track_caller]
fn succeeded(out: &Output) {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A server that cancels long statements and ends sessions idle in a
/// transaction: a long read whose reader takes its time (a `history` piped
/// into a pager) still reads to the end, on both connections.
#[test]
fn a_slow_reader_of_a_long_journal_outlasts_the_servers_timeouts() {
    let Some((env, file)) = long_journal() else {
        return;
    };
    let db = env.db.as_ref().expect("db");
    let name = db.one("SELECT current_database()::text");
    db.sql(&format!(
        "ALTER DATABASE {name} SET statement_timeout = '1s';
         ALTER DATABASE {name} SET idle_in_transaction_session_timeout = '1s'"
    ));
    for read in ["history --json", "export --to jsonl"] {
        let child = env
            .process()
            .arg("--file")
            .arg(&env.journal)
            .args(read.split_whitespace())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        // The pipe fills, and the reader waits on it, past both timeouts
        // (a second: long enough that a busy machine's scheduling between
        // two statements does not reach it).
        std::thread::sleep(Duration::from_millis(2500));
        let out = child.wait_with_output().expect("wait");
        assert!(
            out.status.success(),
            "{read}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            String::from_utf8(out.stdout).expect("utf-8"),
            file.ok(read),
            "{read}"
        );
    }
}

/// Runs `commands` as one `batch` on `env`'s journal, which must take them.
#[track_caller]
fn batch_ok(env: &TestEnv, commands: &str) {
    let out = env
        .cmd()
        .arg("batch")
        .write_stdin(commands.to_owned())
        .output()
        .expect("batch");
    succeeded(&out);
}

/// Each of `reads` fails as corrupt (exit 3), naming `line` and a line
/// missing.
#[track_caller]
fn lines_missing_from(env: &TestEnv, reads: &[&str], line: u64) {
    for read in reads {
        let out = env.run(read);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{read}: {stderr}");
        assert!(
            stderr.contains(&format!("line {line}")) && stderr.contains("missing"),
            "{read}: {stderr}"
        );
    }
}

/// What `scripts/pg-cluster.sh` exported as `name`; its absence fails
/// under `CI=true`, else skips.
#[track_caller]
fn cluster_var(name: &str) -> Option<String> {
    let value = std::env::var(name).ok();
    assert!(
        value.is_some() || std::env::var("CI").as_deref() != Ok("true"),
        "{name} is not set: start the server with scripts/pg-cluster.sh"
    );
    value
}

/// Runs the binary on the journal at `url` with `args`: its exit code and
/// standard error.
fn run_at(env: &TestEnv, url: &str, args: &[&str]) -> (Option<i32>, String) {
    let out = env
        .bare()
        .arg("--file")
        .arg(url)
        .args(args)
        .output()
        .expect("run");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Replaces `from` with `to` in the stored line of event `seq`, by hand.
#[track_caller]
fn edit_line(env: &TestEnv, seq: u64, from: &str, to: &str) {
    env.db.as_ref().expect("db").sql(&format!(
        "UPDATE ledger_lines SET line = convert_to(replace(convert_from(line, 'UTF8'), '{from}', '{to}'), 'UTF8') WHERE seq = {seq}"
    ));
}

/// `read` fails as corrupt (exit 3), naming `line`; its message.
#[track_caller]
fn corrupt_at(env: &TestEnv, read: &str, line: u64) -> String {
    let out = env.run(read);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(3), "{read}: {stderr}");
    assert!(stderr.contains(&format!("line {line}")), "{read}: {stderr}");
    stderr
}

/// A read of a database without a journal notes it once, as a file's
/// does, however often the command opens it (`balance ACCOUNT` opens it
/// twice).
#[test]
fn a_read_of_an_empty_database_notes_it_once() {
    let Some(env) = TestEnv::postgres() else {
        return;
    };
    for args in [&["balance", "x"][..], &["balance"], &["history", "x"]] {
        let out = env.run_args(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            stderr.matches("note: no journal at").count(),
            1,
            "{args:?}: {stderr}"
        );
    }
}
