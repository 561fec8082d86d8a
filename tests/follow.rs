//! `history --follow` (SPEC 8): a follower in its own process while other
//! processes write. Every event arrives once, in order, and a multi-event
//! append only whole; `--from-seq` resumes exactly; Ctrl-C and a closed pipe
//! end it with exit 0; a journal that turns invalid ends it with exit 3.
//! Every wait is bounded, so a hang fails the test instead of blocking it.

use std::fs::{self, OpenOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{AT, CLOCK, HEADER, TestEnv, chained};

/// How long any one expected line or exit may take.
const PATIENCE: Duration = Duration::from_secs(5);
/// How long to watch for a line that must not come.
const QUIET: Duration = Duration::from_millis(400);

/// A `ledger history --follow` process, its stdout read line by line on a
/// thread so that every read has a timeout.
struct Follower {
    child: Child,
    lines: Receiver<String>,
}

impl Follower {
    fn start(env: &TestEnv, args: &[&str]) -> Follower {
        Follower::start_with(env, args, &[])
    }

    fn start_with(env: &TestEnv, args: &[&str], vars: &[(&str, &str)]) -> Follower {
        let mut child = base(env)
            .args(["history", "--follow"])
            .args(args)
            .envs(vars.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the follower");
        let lines = read_lines(child.stdout.take().expect("stdout"));
        Follower { child, lines }
    }

    /// The next line; fails after [`PATIENCE`].
    fn line(&mut self) -> String {
        match self.lines.recv_timeout(PATIENCE) {
            Ok(line) => line,
            Err(RecvTimeoutError::Timeout) => {
                panic!("no line from the follower within {PATIENCE:?}")
            }
            Err(RecvTimeoutError::Disconnected) => {
                let status = self.wait();
                panic!("the follower ended ({status}): {}", self.stderr());
            }
        }
    }

    /// The next `n` lines.
    fn lines(&mut self, n: usize) -> Vec<String> {
        (0..n).map(|_| self.line()).collect()
    }

    /// The next `n` lines, each parsed as JSON.
    fn events(&mut self, n: usize) -> Vec<Value> {
        self.lines(n)
            .iter()
            .map(|l| serde_json::from_str(l).expect("a JSON line"))
            .collect()
    }

    /// Asserts that no line comes for a while.
    fn quiet(&mut self) {
        match self.lines.recv_timeout(QUIET) {
            Err(RecvTimeoutError::Timeout) => {}
            Ok(line) => panic!("unexpected line: {line}"),
            Err(RecvTimeoutError::Disconnected) => {
                let status = self.wait();
                panic!("the follower ended ({status}): {}", self.stderr());
            }
        }
    }

    /// Sends SIGINT (Ctrl-C).
    fn interrupt(&self) {
        let status = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success());
    }

    /// Waits for the follower to end; fails after [`PATIENCE`].
    fn wait(&mut self) -> ExitStatus {
        wait(&mut self.child)
    }

    fn stderr(&mut self) -> String {
        let mut text = String::new();
        if let Some(mut err) = self.child.stderr.take() {
            let _ = err.read_to_string(&mut text);
        }
        text
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The binary with the same clean environment as [`TestEnv::cmd`].
/// Runs `ledger batch -` with `input` on stdin; it must succeed.
fn run_batch(env: &TestEnv, input: &[u8]) {
    let status = base(env)
        .args(["batch", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .and_then(|mut c| {
            c.stdin.take().expect("stdin").write_all(input)?;
            c.wait()
        })
        .expect("run batch");
    assert!(status.success());
}

fn base(env: &TestEnv) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ledger"));
    cmd.env_clear()
        .env("HOME", env.dir.path())
        .env("XDG_DATA_HOME", env.dir.path().join("xdg-data"))
        .env("LEDGER_TEST_CLOCK", CLOCK)
        .current_dir(env.dir.path())
        .arg("--file")
        .arg(&env.journal)
        .stdin(Stdio::null());
    cmd
}

fn read_lines(stdout: ChildStdout) -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

fn wait(child: &mut Child) -> ExitStatus {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "still running after {PATIENCE:?}"
        );
        thread::sleep(Duration::from_millis(10));
    }
}

fn seq(event: &Value) -> u64 {
    event["seq"].as_u64().expect("seq")
}

/// Appends raw bytes to the journal, as a writer that was cut short would.
fn append(env: &TestEnv, bytes: &str) {
    OpenOptions::new()
        .append(true)
        .open(&env.journal)
        .expect("open journal")
        .write_all(bytes.as_bytes())
        .expect("append");
}

#[test]
fn every_event_arrives_once_in_order_and_as_stored() {
    let env = TestEnv::new();
    env.ok("create a");
    env.ok("create b");
    env.ok("deposit a 100");
    let mut follower = Follower::start(&env, &["--json"]);
    assert_eq!(
        follower.events(3).iter().map(seq).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    // Single commands from several processes at once, and batches.
    thread::scope(|s| {
        for w in 0..3 {
            let env = &env;
            s.spawn(move || {
                for i in 0..4 {
                    env.ok(&format!("deposit b 1 --id w{w}-{i}"));
                }
            });
        }
        let env = &env;
        s.spawn(move || {
            for _ in 0..2 {
                run_batch(env, b"transfer a b 1\nwithdraw a 2\ndeposit a 3\n");
            }
        });
    });
    let total = 3 + 12 + 6;
    let events = follower.events(total - 3);
    assert_eq!(
        events.iter().map(seq).collect::<Vec<_>>(),
        (4..=total as u64).collect::<Vec<_>>()
    );
    // Each line is the stored line, unchanged.
    let lines = env.lines();
    for event in &events {
        let stored: Value = serde_json::from_str(&lines[seq(event) as usize]).unwrap();
        assert_eq!(event, &stored);
    }
    follower.quiet();
    follower.interrupt();
    assert_eq!(follower.wait().code(), Some(0));
}

/// Header and file lines 2-6: a created, a deposit, then a three-event
/// append (`batch: 3`) whose lines are written one at a time.
fn hand_made() -> Vec<String> {
    let create =
        format!(r#"{{"seq":1,"at":"{AT}","type":"AccountCreated","account":"a","decimals":2}}"#);
    let deposit = |seq: u64, batch: &str| {
        format!(
            r#"{{"seq":{seq},"at":"{AT}","type":"MoneyDeposited","account":"a","amount":"1.00"{batch}}}"#
        )
    };
    let events = [
        create,
        deposit(2, ""),
        deposit(3, r#","batch":3"#),
        deposit(4, ""),
        deposit(5, ""),
    ];
    let refs: Vec<&str> = events.iter().map(String::as_str).collect();
    chained(HEADER, &refs)
        .lines()
        .map(|l| format!("{l}\n"))
        .collect()
}

#[test]
fn a_multi_event_append_appears_only_whole_and_a_torn_line_never() {
    let env = TestEnv::new();
    let lines = hand_made();
    env.write(lines[..3].concat());
    let mut follower = Follower::start(&env, &["--json"]);
    assert_eq!(
        follower.events(2).iter().map(seq).collect::<Vec<_>>(),
        [1, 2]
    );
    append(&env, &lines[3]);
    follower.quiet();
    append(&env, &lines[4]);
    follower.quiet();
    let (start, end) = lines[5].split_at(40);
    append(&env, start);
    follower.quiet();
    append(&env, end);
    assert_eq!(
        follower.events(3).iter().map(seq).collect::<Vec<_>>(),
        [3, 4, 5]
    );
    follower.interrupt();
    assert_eq!(follower.wait().code(), Some(0));
}

#[test]
fn keeps_going_when_a_writer_removes_a_torn_tail() {
    let env = TestEnv::new();
    env.ok("create a");
    let mut follower = Follower::start(&env, &["--json"]);
    assert_eq!(seq(&follower.events(1)[0]), 1);
    append(&env, r#"{"seq":2,"at":"2026-11-26T10:0"#);
    follower.quiet();
    env.ok("deposit a 5");
    let event = &follower.events(1)[0];
    assert_eq!((seq(event), event["amount"].as_str()), (2, Some("5.00")));
    assert!(env.beside(".torn").exists());
    env.ok("deposit a 6");
    assert_eq!(seq(&follower.events(1)[0]), 3);
    follower.quiet();
    follower.interrupt();
    assert_eq!(follower.wait().code(), Some(0));
    let stderr = follower.stderr();
    assert_eq!(stderr.lines().count(), 1, "one warning: {stderr}");
    assert!(stderr.starts_with("warning: "), "{stderr}");
}

#[test]
fn from_seq_resumes_without_gaps_or_repeats() {
    let env = TestEnv::new();
    env.ok("create a");
    for amount in ["1", "2", "3", "4"] {
        env.ok(&format!("deposit a {amount}"));
    }
    // Without --follow too.
    let after_3 = env.ok("history --from-seq 3 --json");
    let seqs: Vec<u64> = after_3
        .lines()
        .map(|l| seq(&serde_json::from_str(l).unwrap()))
        .collect();
    assert_eq!(seqs, [4, 5]);
    assert_eq!(env.ok("history --from-seq 5 --json"), "");
    assert_eq!(
        env.ok("history --from-seq 1 --limit 1 --json")
            .lines()
            .count(),
        1
    );

    // A consumer handles events up to some seq, stops, and resumes there.
    let mut first = Follower::start(&env, &["--json", "--from-seq", "3"]);
    let handled = first.events(2);
    assert_eq!(handled.iter().map(seq).collect::<Vec<_>>(), [4, 5]);
    first.interrupt();
    assert_eq!(first.wait().code(), Some(0));
    let last = seq(&handled[1]);
    env.ok("deposit a 5");
    env.ok("deposit a 6");
    let mut second = Follower::start(&env, &["--json", "--from-seq", &last.to_string()]);
    assert_eq!(second.events(2).iter().map(seq).collect::<Vec<_>>(), [6, 7]);
    second.quiet();

    // Past the end: nothing until that seq is passed.
    let mut ahead = Follower::start(&env, &["--json", "--from-seq", "8"]);
    ahead.quiet();
    env.ok("deposit a 8");
    ahead.quiet();
    env.ok("deposit a 9");
    assert_eq!(seq(&ahead.events(1)[0]), 9);
    ahead.interrupt();
    assert_eq!(ahead.wait().code(), Some(0));
}

#[test]
fn one_account_with_its_running_balance_and_filters() {
    let env = TestEnv::new();
    env.ok("create a");
    env.ok("create b");
    env.ok("deposit a 10");
    let mut follower = Follower::start(&env, &["a", "--json", "--limit", "1"]);
    let first = &follower.events(1)[0];
    assert_eq!((seq(first), first["balance"].as_str()), (3, Some("10.00")));
    env.ok("deposit b 1");
    env.ok("transfer a b 2.5");
    let event = &follower.events(1)[0];
    assert_eq!((seq(event), event["balance"].as_str()), (5, Some("7.50")));
    follower.quiet();
    follower.interrupt();
    assert_eq!(follower.wait().code(), Some(0));
}

#[test]
fn table_and_csv_print_each_event_as_it_comes() {
    let env = TestEnv::new();
    env.ok("create a");
    let mut table = Follower::start(&env, &[]);
    let mut csv = Follower::start(&env, &["a", "--format", "csv"]);
    assert_eq!(
        table.line(),
        "    1  2026-11-26 10:00:00  open a, 2 decimals"
    );
    assert_eq!(
        csv.line(),
        "seq,at,type,account,from,to,amount,owner,currency,decimals,hold,expires,date,reverses,tags,id,memo,batch,prev,change,balance"
    );
    assert!(csv.line().starts_with("1,"));
    env.ok_args(&["deposit", "a", "5", "--memo", "two words", "--id", "k1"]);
    assert_eq!(
        table.line(),
        "    2  2026-11-26 10:00:00  deposit 5.00 to a  memo two words  id k1"
    );
    let row = csv.line();
    assert!(row.starts_with("2,") && row.ends_with(",5.00"), "{row}");
}

#[test]
fn a_closed_pipe_ends_it_with_exit_0() {
    let env = TestEnv::new();
    env.ok("create a");
    for amount in ["1", "2", "3", "4"] {
        env.ok(&format!("deposit a {amount}"));
    }
    let bin = env!("CARGO_BIN_EXE_ledger");
    let journal = env.journal.to_str().unwrap();
    // More events than head wants, and exactly as many: in the second case
    // the follower has nothing more to write and must notice by itself.
    for n in [3, 5] {
        let script =
            format!("set -o pipefail; '{bin}' --file '{journal}' history --follow | head -n {n}");
        let mut child = Command::new("bash")
            .args(["-c", &script])
            .env("LEDGER_TEST_CLOCK", CLOCK)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let status = wait(&mut child);
        let mut out = String::new();
        child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        let mut err = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        assert_eq!(status.code(), Some(0), "head -n {n}: {err}");
        assert_eq!(out.lines().count(), n);
        assert_eq!(err, "");
    }
    // Fewer events than head wants: it ends once the last one it wants comes.
    let script =
        format!("set -o pipefail; '{bin}' --file '{journal}' history --follow --json | head -n 6");
    let mut child = Command::new("bash")
        .args(["-c", &script])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    thread::sleep(Duration::from_millis(200));
    assert!(child.try_wait().unwrap().is_none(), "ended too soon");
    env.ok("deposit a 5");
    assert_eq!(wait(&mut child).code(), Some(0));
}

#[test]
fn ctrl_c_ends_it_quietly_with_exit_0() {
    let env = TestEnv::new();
    env.ok("create a");
    let mut follower = Follower::start(&env, &[]);
    follower.line();
    follower.interrupt();
    assert_eq!(follower.wait().code(), Some(0));
    assert_eq!(follower.stderr(), "");
}

#[test]
fn an_invalid_line_stops_it_with_exit_3_naming_the_line() {
    let env = TestEnv::new();
    let lines = hand_made();
    env.write(lines[..3].concat());
    let mut follower = Follower::start(&env, &["--json"]);
    follower.events(2);
    // Line 4 does not chain to line 3.
    append(&env, &lines[4]);
    assert_eq!(follower.wait().code(), Some(3));
    let stderr = follower.stderr();
    assert!(
        stderr.starts_with("error: ") && stderr.contains("line 4: seq 4 where 3 was expected"),
        "{stderr}"
    );

    // Several lines in one round, the last one bad: the lines before it are
    // printed, but not the one just before it, which it should confirm.
    let env = TestEnv::new();
    let deposit = |seq: u64| {
        format!(
            r#"{{"seq":{seq},"at":"{AT}","type":"MoneyDeposited","account":"a","amount":"1.00"}}"#
        )
    };
    let create =
        format!(r#"{{"seq":1,"at":"{AT}","type":"AccountCreated","account":"a","decimals":2}}"#);
    let events = [create, deposit(2), deposit(3), deposit(4), deposit(5)];
    let refs: Vec<&str> = events.iter().map(String::as_str).collect();
    let text = chained(HEADER, &refs);
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    env.write(lines[..2].concat());
    let mut follower = Follower::start(&env, &["--json"]);
    follower.events(1);
    // Seq 4 is missing: file line 5 holds seq 5.
    append(&env, &[lines[2], lines[3], lines[5]].concat());
    assert_eq!(seq(&follower.events(1)[0]), 2);
    assert_eq!(follower.wait().code(), Some(3));
    let stderr = follower.stderr();
    assert!(
        stderr.contains("line 5: seq 5 where 4 was expected"),
        "{stderr}"
    );
    follower.quiet_after_exit();

    // A rule broken: a withdrawal of more than the balance.
    let env = TestEnv::new();
    let create =
        format!(r#"{{"seq":1,"at":"{AT}","type":"AccountCreated","account":"a","decimals":2}}"#);
    let overdraw =
        format!(r#"{{"seq":2,"at":"{AT}","type":"MoneyWithdrawn","account":"a","amount":"1.00"}}"#);
    let text = chained(HEADER, &[&create, &overdraw]);
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    env.write(lines[..2].concat());
    let mut follower = Follower::start(&env, &["--json"]);
    follower.events(1);
    append(&env, lines[2]);
    assert_eq!(follower.wait().code(), Some(3));
    let stderr = follower.stderr();
    assert!(stderr.contains("line 3: insufficient funds"), "{stderr}");
    follower.quiet_after_exit();
}

impl Follower {
    /// After an error exit: nothing was printed for the bad line.
    fn quiet_after_exit(&mut self) {
        if let Ok(line) = self.lines.recv_timeout(Duration::from_millis(100)) {
            panic!("printed after the error: {line}");
        }
    }
}

#[test]
fn a_journal_cut_short_or_replaced_stops_it_with_exit_3() {
    let env = TestEnv::new();
    env.ok("create a");
    env.ok("deposit a 1");
    let mut follower = Follower::start(&env, &["--json"]);
    follower.events(2);
    let len = fs::metadata(&env.journal).unwrap().len();
    OpenOptions::new()
        .write(true)
        .open(&env.journal)
        .unwrap()
        .set_len(len - 1)
        .unwrap();
    assert_eq!(follower.wait().code(), Some(3));
    let stderr = follower.stderr();
    assert!(
        stderr.contains("line 3: the journal was truncated or replaced"),
        "{stderr}"
    );
}

#[test]
fn waits_for_a_journal_that_does_not_exist_yet() {
    let env = TestEnv::new();
    let nested = TestEnv {
        journal: env.dir.path().join("not/yet/journal.jsonl"),
        dir: env.dir,
        db: None,
    };
    let mut follower = Follower::start(&nested, &["--json"]);
    follower.quiet();
    nested.ok("create a");
    assert_eq!(seq(&follower.events(1)[0]), 1);
    nested.ok("deposit a 1");
    assert_eq!(seq(&follower.events(1)[0]), 2);
    follower.interrupt();
    assert_eq!(follower.wait().code(), Some(0));
}

#[test]
fn polling_without_notifications_delivers_the_same() {
    let env = TestEnv::new();
    env.ok("create a");
    let mut follower = Follower::start_with(&env, &["--json"], &[("LEDGER_TEST_FOLLOW_POLL", "1")]);
    assert_eq!(seq(&follower.events(1)[0]), 1);
    env.ok("deposit a 1");
    run_batch(&env, b"deposit a 2\ndeposit a 3\n");
    assert_eq!(
        follower.events(3).iter().map(seq).collect::<Vec<_>>(),
        [2, 3, 4]
    );
    follower.interrupt();
    assert_eq!(follower.wait().code(), Some(0));
}

#[test]
fn keeps_going_while_the_read_model_is_caught_up() {
    // 4 MiB of deposits (long memos keep them to a few thousand), appended
    // as one batch would, behind the read model's back; then a write, which
    // catches the model up beside the journal.
    let count = 7_000;
    let memo = "m".repeat(480);
    let mut events = vec![format!(
        r#"{{"seq":1,"at":"{AT}","type":"AccountCreated","account":"a","decimals":2}}"#
    )];
    for seq in 2..count + 2 {
        let batch = if seq == 2 {
            format!(r#","batch":{count}"#)
        } else {
            String::new()
        };
        events.push(format!(
            r#"{{"seq":{seq},"at":"{AT}","type":"MoneyDeposited","account":"a","amount":"1.00","memo":"{memo}"{batch}}}"#
        ));
    }
    let refs: Vec<&str> = events.iter().map(String::as_str).collect();
    let text = chained(HEADER, &refs);
    let second_line_end = text.match_indices('\n').nth(1).unwrap().0 + 1;
    let env = TestEnv::new();
    env.write(&text[..second_line_end]);
    let mut follower = Follower::start(&env, &["--json", "--from-seq", "1"]);
    append(&env, &text[second_line_end..]);
    env.ok("deposit a 2");
    assert!(
        env.beside(".readmodel").exists(),
        "no read model was written"
    );
    for expected in 2..=count + 2 {
        let line = follower.line();
        let prefix = format!(r#"{{"seq":{expected},"#);
        assert!(line.starts_with(&prefix), "{expected}: {line}");
    }
    env.ok("deposit a 3");
    assert_eq!(seq(&follower.events(1)[0]), count + 3);
    follower.interrupt();
    assert_eq!(follower.wait().code(), Some(0));
}

#[test]
fn a_resume_from_a_damaged_model_is_judged_by_the_journal() {
    // `c` has no money, so losing its row breaks no sum the model checks;
    // the lines after the model's head then name an account it lacks.
    let env = TestEnv::with(&["create a", "create c", "deposit a 5"]);
    crate::readmodel::model_at(&env.journal, 3);
    env.ok("deposit c 1");
    env.ok("deposit a 2");
    let model =
        rusqlite::Connection::open(ledger::readmodel::path_of(&env.journal)).expect("model");
    let lose_c = crate::readmodel::lose_page_of("c");
    model.execute_batch(&lose_c).expect("damage");
    crate::readmodel::model_at(&env.journal, 3);
    model.execute_batch(&lose_c).expect("damage");
    drop(model);
    let mut follower = Follower::start(&env, &["--json", "--from-seq", "4"]);
    assert_eq!(seq(&follower.events(1)[0]), 5);
    env.ok("deposit c 3");
    assert_eq!(seq(&follower.events(1)[0]), 6);
    follower.interrupt();
    assert_eq!(follower.wait().code(), Some(0));
}

#[test]
fn follow_refuses_as_of_and_until_and_unknown_accounts() {
    let env = TestEnv::new();
    env.ok("create a");
    env.fails(2, &["history", "--follow", "--as-of", "1"]);
    env.fails(2, &["history", "--follow", "--until", "2026-11-26"]);
    let out = base(&env)
        .args(["history", "nobody", "--follow"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown account nobody"));
}

#[test]
fn a_resume_starts_from_the_read_model_at_or_before_its_seq() {
    let env = TestEnv::with(&["create a", "deposit a 50", "deposit a 1", "deposit a 2"]);
    crate::readmodel::model_at(&env.journal, 3);
    // Edit seq 2 without changing its length: only a reader of that line
    // can tell, so a follower that starts from the model never does.
    let text = String::from_utf8(env.bytes()).expect("utf-8").replacen(
        r#""amount":"50.00""#,
        r#""amount":"60.00""#,
        1,
    );
    env.write(text);
    let mut follower = Follower::start(&env, &["--json", "--from-seq", "3"]);
    assert_eq!(seq(&follower.events(1)[0]), 4);
    env.ok("deposit a 3");
    assert_eq!(seq(&follower.events(1)[0]), 5);
    follower.interrupt();
    assert_eq!(follower.wait().code(), Some(0));
    // Without the model the edited line is read, and refused.
    crate::readmodel::remove_model(&env.journal);
    let out = base(&env)
        .args(["history", "--follow", "--from-seq", "3", "--json"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(3));
}
