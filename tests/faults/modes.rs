//! New files are readable by their owner only, and the lock is never
//! taken on a file that is no longer the journal (promise 7).
//!
//! The journal, `.torn` and the read model are created with mode 0600 even
//! under `umask 000`. A writer that waits for the lock while the journal is
//! renamed over (or removed) locks and appends to the new file, and never
//! touches the old one.

use std::fs::{self, File};
use std::process::{Command, Stdio};
use std::time::Duration;

use ledger::domain::{Command as Op, Request};
use ledger::journal::Writer;
use ledger::money::Decimal;

use super::{
    assert_clean_read, bin, clean_env, fast_dir, ids, ledger, mode, run_bounded, wait_bounded,
};
use crate::common::{TestEnv, create, request};

/// Runs ledger on `env`'s journal under `umask 000`.
fn with_open_umask(env: &TestEnv, args: &[&str]) {
    let mut cmd = Command::new("sh");
    clean_env(&mut cmd, env);
    cmd.arg("-c")
        .arg("umask 000; exec \"$0\" \"$@\"")
        .arg(bin())
        .arg("--file")
        .arg(&env.journal)
        .args(args);
    let out = run_bounded(&mut cmd);
    assert_clean_read(&format!("{args:?}"), &out);
}

#[test]
fn new_journal_torn_and_checkpoint_files_are_0600_even_under_umask_000() {
    let env = TestEnv::new();
    with_open_umask(&env, &["create", "a"]);
    assert_eq!(mode(&env.journal), 0o600, "journal");

    let mut bytes = env.bytes();
    bytes.extend_from_slice(br#"{"seq":2"#);
    env.write(&bytes);
    with_open_umask(&env, &["deposit", "a", "1"]);
    assert_eq!(mode(&env.beside(".torn")), 0o600, ".torn");

    // A replay past `MODEL_AFTER_BYTES` of lines leaves a read model behind.
    let mut writer = Writer::open(&env.journal).expect("open");
    let memo = "m".repeat(400);
    let amount = Decimal::parse_positive("1").expect("amount");
    for _ in 0..(ledger::readmodel::MODEL_AFTER_BYTES / 400 + 100) {
        let request = Request {
            memo: Some(&memo),
            ..request(Op::Deposit {
                account: "a",
                amount,
            })
        };
        writer.apply(&request).expect("deposit");
    }
    writer.commit().expect("commit");
    drop(writer);
    crate::readmodel::remove_model(&env.journal);
    with_open_umask(&env, &["balance"]);
    let model = ledger::readmodel::path_of(&env.journal);
    assert!(model.exists(), "no read model was written");
    for suffix in ["", "-wal", "-shm"] {
        let mut name = model.clone().into_os_string();
        name.push(suffix);
        assert_eq!(
            mode(std::path::Path::new(&name)),
            0o600,
            ".readmodel{suffix}"
        );
    }
    let leftovers: Vec<_> = fs::read_dir(env.dir.path())
        .expect("ls")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn a_read_model_written_through_the_library_is_0600() {
    let dir = fast_dir();
    let path = dir.path().join("journal.jsonl");
    let mut writer = Writer::open(&path).expect("open");
    writer.apply(&request(create("a"))).expect("create");
    writer.commit().expect("commit");
    drop(writer);
    crate::readmodel::remove_model(&path);
    crate::readmodel::model_at(&path, 1);
    assert_eq!(mode(&ledger::readmodel::path_of(&path)), 0o600);
    assert_eq!(mode(&path), 0o600);
}

/// Waits until process `pid` is queued for a lock: `/proc/locks` lists
/// waiters as `-> FLOCK … PID …`. Where that cannot be read, waits a while.
fn wait_until_blocked_on_a_lock(pid: u32) {
    let deadline = std::time::Instant::now() + super::HANG;
    while std::time::Instant::now() < deadline {
        let Ok(locks) = fs::read_to_string("/proc/locks") else {
            std::thread::sleep(Duration::from_millis(300));
            return;
        };
        let waiting = locks
            .lines()
            .any(|l| l.contains("->") && l.split_whitespace().any(|w| w == pid.to_string()));
        if waiting {
            return;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    panic!("process {pid} never waited for the journal's lock");
}

/// Holds the journal's exclusive lock, starts a deposit that must wait for
/// it, lets `meanwhile` replace the journal, then releases the lock.
/// Returns the deposit's exit code and the old file's bytes afterwards.
fn while_a_writer_waits(env: &TestEnv, meanwhile: impl FnOnce()) -> (Option<i32>, Vec<u8>) {
    let old = File::options()
        .read(true)
        .write(true)
        .open(&env.journal)
        .expect("open");
    old.lock().expect("lock");
    let mut child = ledger(env)
        .args(["deposit", "a", "1", "--id", "waiting"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    wait_until_blocked_on_a_lock(child.id());
    assert!(
        child.try_wait().expect("try_wait").is_none(),
        "the writer did not wait for the lock"
    );
    meanwhile();
    old.unlock().expect("unlock");
    let status = wait_bounded(&mut child, super::HANG).expect("the writer hung");
    let mut bytes = Vec::new();
    use std::io::{Read, Seek};
    let mut old = old;
    old.rewind().expect("rewind");
    old.read_to_end(&mut bytes).expect("read old");
    (status.code(), bytes)
}

#[test]
fn a_writer_waiting_for_the_lock_never_follows_a_rename_over() {
    let env = TestEnv::new();
    env.ok("create a");
    let before = env.bytes();
    let other = TestEnv::new();
    other.ok("create a");
    other.ok("deposit a 5 --id other");
    let replacement = env.dir.path().join("replacement.jsonl");
    fs::write(&replacement, other.bytes()).expect("write");
    let (code, old) = while_a_writer_waits(&env, || {
        fs::rename(&replacement, &env.journal).expect("rename over");
    });
    assert_eq!(code, Some(0));
    assert_eq!(
        old, before,
        "the writer wrote to the file that was renamed over"
    );
    let now = env.bytes();
    assert!(
        now.starts_with(&other.bytes()),
        "the new journal lost lines"
    );
    let found = ids(&now);
    assert_eq!(found["waiting"], vec![3], "the deposit went elsewhere");
    assert_eq!(found["other"], vec![2]);
    let out = env.cmd().arg("verify").output().expect("run");
    assert_eq!(assert_clean_read("verify", &out), 0);
}

#[test]
fn a_writer_waiting_for_the_lock_never_writes_to_a_removed_journal() {
    let env = TestEnv::new();
    env.ok("create a");
    let before = env.bytes();
    let (code, old) = while_a_writer_waits(&env, || {
        fs::remove_file(&env.journal).expect("rm");
    });
    // The journal is gone: no account a, so the deposit is refused, and the
    // file it created to find that out is removed again.
    assert_eq!(code, Some(1));
    assert_eq!(old, before);
    assert!(
        !env.journal.exists(),
        "a refused write left a journal behind"
    );
}
