//! The order of the write path's system calls, seen by `strace` (promises 1
//! and 4): the journal is locked before it is read, its new lines go out in
//! one `write` and are `fdatasync`ed before anything is printed and the
//! process exits 0, and the lock is held until then; a new journal's
//! directory, and every directory the write created, is synced too; a torn
//! tail is written to `.torn` and synced before the journal is cut.
//!
//! `strace` also injects failures: a failed sync, write or truncate exits 4
//! with a message saying whether the outcome is unknown, never drops a torn
//! tail's bytes, and a re-run with the same `--id` then succeeds once.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use super::{assert_clean_read, bin, clean_env, ids, probe, require, run_bounded};
use crate::common::TestEnv;

/// One system call from `strace -y` output.
#[derive(Debug)]
struct Call {
    name: String,
    /// The path of the first argument, when it is a file descriptor.
    fd_path: Option<String>,
    /// The first argument when it is a quoted string (a path).
    path_arg: Option<String>,
    /// The first argument as written (`3</tmp/j>`, `1<pipe:[…]>`).
    first: String,
    args: String,
    ret: String,
}

fn parse(line: &str) -> Option<Call> {
    // `PID name(args) = ret`; a call that another thread's interrupted
    // (a sync running while the next lines are written) is shown as
    // `PID name(args <unfinished ...>`, its end on a line of its own.
    let line = line.replace(" <unfinished ...>", "");
    let (_, rest) = line.split_once(' ')?;
    let rest = rest.trim_start();
    let (name, rest) = rest.split_once('(')?;
    let (args, ret) = rest.rsplit_once(" = ").unwrap_or((rest, "?"));
    let args = args.trim_end();
    let args = args.strip_suffix(')').unwrap_or(args);
    let first = args.split(", ").next().unwrap_or_default().to_owned();
    let fd_path = first
        .split_once('<')
        .filter(|(fd, _)| fd.chars().all(|c| c.is_ascii_digit()))
        .map(|(_, p)| p.trim_end_matches(')').trim_end_matches('>').to_owned());
    let path_arg = first
        .strip_prefix('"')
        .and_then(|s| s.split_once('"'))
        .map(|(p, _)| p.to_owned());
    Some(Call {
        name: name.to_owned(),
        fd_path,
        path_arg,
        first,
        args: args.to_owned(),
        ret: ret.trim().to_owned(),
    })
}

const TRACED: &str = "openat,mkdir,mkdirat,write,pwrite64,fdatasync,fsync,ftruncate,flock,rename,renameat2,close,exit_group";

fn strace_works() -> Result<(), String> {
    probe("strace", &["-f", "-qq", "-o", "/dev/null", "true"])
}

/// Runs ledger under `strace` with `extra` options (injections); returns
/// its output and the calls it made.
fn traced(env: &TestEnv, journal: &Path, extra: &[&str], args: &[&str]) -> (Output, Vec<Call>) {
    let log = env.dir.path().join("strace.log");
    let mut cmd = Command::new(super::disk::tool("strace").expect("strace"));
    clean_env(&mut cmd, env);
    cmd.args(["-f", "-qq", "-y", "-o"])
        .arg(&log)
        .arg("-e")
        .arg(format!("trace={TRACED}"))
        .args(extra)
        .arg("--")
        .arg(bin())
        .arg("--file")
        .arg(journal)
        .args(args);
    let out = run_bounded(&mut cmd);
    let calls = fs::read_to_string(&log)
        .unwrap_or_else(|e| {
            panic!(
                "no strace log ({e}): {}",
                String::from_utf8_lossy(&out.stderr)
            )
        })
        .lines()
        .filter_map(parse)
        .collect();
    (out, calls)
}

/// The index of the first call after `from` that `pred` matches.
fn find(calls: &[Call], from: usize, what: &str, pred: impl Fn(&Call) -> bool) -> usize {
    calls
        .iter()
        .enumerate()
        .skip(from)
        .find(|(_, c)| pred(c))
        .map(|(i, _)| i)
        .unwrap_or_else(|| panic!("no {what} after call {from}:\n{}", dump(calls)))
}

fn dump(calls: &[Call]) -> String {
    calls
        .iter()
        .enumerate()
        .map(|(i, c)| format!("{i:3} {}({}) = {}\n", c.name, c.args, c.ret))
        .collect()
}

fn on(path: &Path) -> impl Fn(&Call) -> bool + '_ {
    move |c: &Call| c.fd_path.as_deref().map(Path::new) == Some(path)
}

fn is_sync(c: &Call) -> bool {
    c.name == "fdatasync" || c.name == "fsync"
}

/// The first write to stdout: the acknowledgement.
fn stdout_write(c: &Call) -> bool {
    c.name == "write" && c.first.starts_with("1<")
}

/// The temp dir with symlinks resolved, as strace prints paths.
fn real(env: &TestEnv) -> PathBuf {
    env.dir.path().canonicalize().expect("canonical temp dir")
}

/// Checks the core of every acknowledged append: locked, one write, one
/// sync, then the output, with the lock (the descriptor) held throughout.
/// The write is looked for from call `from` on. Returns the index of the
/// sync.
fn assert_durable_append(calls: &[Call], journal: &Path, from: usize) -> usize {
    let lock = find(calls, 0, "exclusive lock", |c| {
        on(journal)(c) && c.name == "flock" && c.args.contains("LOCK_EX")
    });
    let write = find(calls, lock.max(from), "write to the journal", |c| {
        on(journal)(c) && c.name == "write"
    });
    let sync = find(calls, write, "sync of the journal", |c| {
        on(journal)(c) && is_sync(c)
    });
    let writes = calls
        .iter()
        .filter(|c| on(journal)(c) && c.name == "write")
        .count();
    assert_eq!(
        writes,
        1,
        "the append took {writes} writes:\n{}",
        dump(calls)
    );
    let ack = find(calls, 0, "output", stdout_write);
    assert!(ack > sync, "output before the sync:\n{}", dump(calls));
    let released = calls[lock..sync]
        .iter()
        .any(|c| c.name == "close" && c.first.starts_with(&calls[lock].first));
    assert!(
        !released,
        "the lock was released before the sync:\n{}",
        dump(calls)
    );
    let last = calls.last().expect("calls");
    assert_eq!(
        (last.name.as_str(), last.args.as_str()),
        ("exit_group", "0"),
        "{}",
        dump(calls)
    );
    sync
}

#[test]
fn an_acknowledged_write_is_synced_before_it_is_acknowledged() {
    if !require("strace", strace_works()) {
        return;
    }
    let env = TestEnv::new();
    env.ok("create a");
    let journal = real(&env).join("journal.jsonl");
    let (out, calls) = traced(&env, &journal, &[], &["deposit", "a", "1"]);
    assert_eq!(out.status.code(), Some(0));
    assert_durable_append(&calls, &journal, 0);
    // No directory sync is needed for an existing file.

    let batch = env.dir.path().join("b.txt");
    let text: String = (0..50).map(|i| format!("deposit a {i}.01\n")).collect();
    fs::write(&batch, text).expect("batch");
    let batch = batch.display().to_string();
    let (out, calls) = traced(&env, &journal, &[], &["batch", &batch]);
    assert_eq!(out.status.code(), Some(0));
    assert_durable_append(&calls, &journal, 0);
}

/// A batch of more than the 8 MiB that the writer syncs at a time: it goes
/// out in several writes, synced on the way; the last sync still follows the
/// last write and comes before the output. A failed sync on the way fails
/// the append and leaves the journal as it was.
#[test]
fn a_long_batch_is_synced_as_it_is_written_and_a_sync_failing_on_the_way_fails_it() {
    if !require("strace", strace_works()) {
        return;
    }
    let env = TestEnv::new();
    env.ok("create a");
    let journal = real(&env).join("journal.jsonl");
    let long_batch = |name: &str| {
        let path = env.dir.path().join(format!("{name}.txt"));
        let text: String = (0..64_000)
            .map(|i| format!("deposit a 1 --id {name}{i}\n"))
            .collect();
        fs::write(&path, text).expect("batch");
        path.display().to_string()
    };
    let before = env.bytes().len();
    let (out, calls) = traced(&env, &journal, &[], &["batch", &long_batch("l")]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(env.bytes().len() - before > 9 << 20, "too short to test");
    let of_journal = |what: fn(&Call) -> bool| -> Vec<usize> {
        let calls = calls.iter().enumerate();
        calls
            .filter(|(_, c)| on(&journal)(c) && what(c))
            .map(|(i, _)| i)
            .collect()
    };
    let writes = of_journal(|c| c.name == "write");
    let syncs = of_journal(is_sync);
    // The sync on the way may run after the last write, but runs.
    let (first, last) = (writes[0], writes[writes.len() - 1]);
    assert!(
        syncs.iter().filter(|&&s| s > first).count() >= 2,
        "no sync on the way:\n{}",
        dump(&calls)
    );
    let sync = find(&calls, last, "sync after the last write", |c| {
        on(&journal)(c) && is_sync(c)
    });
    assert!(find(&calls, 0, "output", stdout_write) > sync);

    let before = env.bytes();
    let (out, _) = traced(
        &env,
        &journal,
        &["-e", "inject=fdatasync:error=EIO:when=1"],
        &["batch", &long_batch("m")],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert!(stderr.contains(UNKNOWN), "{stderr}");
    assert!(env.bytes() == before, "the journal changed");
}

/// A long batch is written to the journal as it is decided, with no spool
/// (no `O_TMPFILE` is opened). Killed (an injected SIGKILL) at its second
/// write, before any line completes its count: readers see the journal as
/// it was and warn of the torn tail, the next write moves it to `.torn`,
/// and the same batch run again appends every event once.
#[test]
fn a_long_batch_killed_while_written_ahead_leaves_a_torn_tail_only() {
    if !require("strace", strace_works()) {
        return;
    }
    let env = TestEnv::new();
    env.ok("create a");
    let journal = real(&env).join("journal.jsonl");
    let batch = env.dir.path().join("long.txt");
    let text: String = (0..64_000)
        .map(|i| format!("deposit a 1 --id w{i}\n"))
        .collect();
    fs::write(&batch, text).expect("batch");
    let batch = batch.display().to_string();
    let before = env.bytes();
    let shown = journal.display().to_string();
    // The directory's calls too, where a spool would be opened.
    let dir = real(&env).display().to_string();
    let kill = [
        "-P",
        &shown,
        "-P",
        &dir,
        "-e",
        "inject=write:signal=KILL:when=2",
    ];
    let (out, calls) = traced(&env, &journal, &kill, &["batch", &batch]);
    assert!(!out.status.success(), "not killed:\n{}", dump(&calls));
    let (after, tmpfile) = (env.bytes(), "O_TMPFILE");
    assert!(
        after.len() > before.len() + (1 << 20) && after.starts_with(&before),
        "nothing written ahead"
    );
    assert!(
        !calls.iter().any(|c| c.args.contains(tmpfile)),
        "a spool was made:\n{}",
        dump(&calls)
    );
    let read = env.run("balance a");
    assert_eq!(assert_clean_read("balance", &read), 1);
    assert!(String::from_utf8_lossy(&read.stdout).contains("0.00"));
    assert_eq!(assert_clean_read("verify", &env.run("verify")), 1);

    env.ok(&format!("batch {batch}"));
    assert_eq!(
        fs::read(env.journal.with_extension("jsonl.torn"))
            .expect("torn")
            .len(),
        after.len() - before.len()
    );
    assert_eq!(env.balance_of("a"), "64000.00");
    let found = ids(&env.bytes());
    assert!((0..64_000).all(|i| found.get(&format!("w{i}")).map(Vec::len) == Some(1)));
    assert_eq!(assert_clean_read("verify", &env.run("verify")), 0);
}

/// Killed (an injected SIGKILL) at the read model's first write, which
/// comes after the journal's sync: the event is in the journal and the
/// model is still behind it. The same command run again is a repeat of
/// that event, and the model catches up: nothing lost, nothing counted
/// twice. The moment is exact, where timed kills only hope to land in it.
#[test]
fn a_kill_between_the_journals_sync_and_the_models_commit_loses_and_doubles_nothing() {
    if !require("strace", strace_works()) {
        return;
    }
    let env = TestEnv::new();
    env.ok("create a");
    env.ok("deposit a 10");
    crate::readmodel::model_at(&env.journal, 2);
    let journal = real(&env).join("journal.jsonl");
    let wal = format!("{}.readmodel-wal", journal.display());
    // Only the journal's and the log's calls are traced, so the first
    // `pwrite64` is the model's (the journal is appended with `write`).
    let shown = journal.display().to_string();
    let kill = [
        "-P",
        &shown,
        "-P",
        &wal,
        "-e",
        "inject=pwrite64:signal=KILL:when=1",
    ];
    let (out, calls) = traced(&env, &journal, &kill, &["deposit", "a", "1", "--id", "k"]);
    assert!(!out.status.success(), "not killed:\n{}", dump(&calls));
    let synced = find(&calls, 0, "the journal's sync", |c| {
        on(&journal)(c) && c.name == "fdatasync"
    });
    let killed = find(&calls, 0, "the model's write", |c| c.name == "pwrite64");
    assert!(
        synced < killed,
        "killed before the journal's sync:\n{}",
        dump(&calls)
    );
    assert_eq!(ids(&env.bytes()).get("k").map(Vec::len), Some(1));
    assert_eq!(crate::readmodel::model_seq(&env.journal), Some(2));

    let again = env.ok("deposit a 1 --id k");
    assert!(again.contains("seq 3"), "{again}");
    assert_eq!(ids(&env.bytes()).get("k").map(Vec::len), Some(1));
    assert_eq!(env.balance_of("a"), "11.00");
    assert_eq!(crate::readmodel::model_seq(&env.journal), Some(3));
    crate::readmodel::remove_model(&env.journal);
    assert_eq!(env.balance_of("a"), "11.00");
    env.ok("verify");
}

#[test]
fn a_new_journal_syncs_its_directory_and_every_directory_it_created() {
    if !require("strace", strace_works()) {
        return;
    }
    let env = TestEnv::new();
    for journal in [
        real(&env).join("journal.jsonl"),
        real(&env).join("new/deeper/journal.jsonl"),
    ] {
        let (out, calls) = traced(&env, &journal, &[], &["create", "a"]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let sync = assert_durable_append(&calls, &journal, 0);
        let ack = find(&calls, 0, "output", stdout_write);
        let parent = journal.parent().expect("parent");
        let dir_sync = find(&calls, sync, "sync of the journal's directory", |c| {
            on(parent)(c) && c.name == "fsync"
        });
        assert!(
            dir_sync < ack,
            "output before the directory sync:\n{}",
            dump(&calls)
        );
        // Each directory this write created is an entry in its parent,
        // which must be synced too, or a crash can lose the whole path.
        for (i, made) in calls.iter().enumerate() {
            let Some(dir) = made
                .path_arg
                .as_deref()
                .filter(|_| made.name == "mkdir" && made.ret == "0")
            else {
                continue;
            };
            let up = Path::new(dir).parent().expect("parent");
            let synced = calls[i..ack].iter().any(|c| on(up)(c) && c.name == "fsync");
            assert!(
                synced,
                "{dir} was created but {} was not synced before exit 0:\n{}",
                up.display(),
                dump(&calls)
            );
        }
    }
}

#[test]
fn a_torn_tail_is_quarantined_durably_before_the_journal_is_cut() {
    if !require("strace", strace_works()) {
        return;
    }
    let env = TestEnv::new();
    env.ok("create a");
    let mut bytes = env.bytes();
    bytes.extend_from_slice(br#"{"seq":2,"at""#);
    env.write(&bytes);
    let journal = real(&env).join("journal.jsonl");
    let torn = real(&env).join("journal.jsonl.torn");
    let (out, calls) = traced(&env, &journal, &[], &["deposit", "a", "1"]);
    assert_eq!(out.status.code(), Some(0));
    let lock = find(&calls, 0, "lock", |c| on(&journal)(c) && c.name == "flock");
    let save = find(&calls, lock, "write to .torn", |c| {
        on(&torn)(c) && c.name == "write"
    });
    let saved = find(&calls, save, "sync of .torn", |c| {
        on(&torn)(c) && is_sync(c)
    });
    // .torn was a new file: its directory entry must be durable before the
    // bytes it keeps are cut from the journal.
    let dir = real(&env);
    let entry = find(&calls, saved, "sync of the directory", |c| {
        on(&dir)(c) && c.name == "fsync"
    });
    let cut = find(&calls, saved, "truncation", |c| {
        on(&journal)(c) && c.name == "ftruncate"
    });
    assert!(
        entry < cut,
        ".torn's directory entry synced after the cut:\n{}",
        dump(&calls)
    );
    let cut_synced = find(&calls, cut, "sync of the cut", |c| {
        on(&journal)(c) && is_sync(c)
    });
    assert_durable_append(&calls, &journal, cut_synced);
}

/// Runs a write with one injected failure; checks exit 4 and `message`,
/// that readers still work, and that a plain re-run of the same command
/// succeeds and leaves its id in the journal once.
fn inject(env: &TestEnv, injection: &str, args: &[&str], id: &str, message: &str) {
    let journal = real(env).join("journal.jsonl");
    let (out, _) = traced(env, &journal, &["-e", &format!("inject={injection}")], args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{injection}: {stderr}");
    assert!(
        stderr.starts_with("error: ") && stderr.contains(message),
        "{injection}: {stderr}"
    );
    let read = env.cmd().args(["balance", "--json"]).output().expect("run");
    assert_clean_read(injection, &read);
    let out = env.cmd().args(args).output().expect("run");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{injection}: retry: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        ids(&env.bytes()).get(id).map(Vec::len),
        Some(1),
        "{injection}"
    );
    assert_eq!(
        assert_clean_read("verify", &env.cmd().arg("verify").output().expect("run")),
        0
    );
}

const UNKNOWN: &str =
    "the outcome of this write is unknown (re-running it with the same --id is safe)";

#[test]
fn a_failed_sync_exits_4_and_a_retry_with_the_same_id_is_safe() {
    if !require("strace", strace_works()) {
        return;
    }
    let env = TestEnv::new();
    // The directory sync of a new journal fails.
    inject(
        &env,
        "fsync:error=EIO:when=1",
        &["create", "a", "--id", "c"],
        "c",
        UNKNOWN,
    );
    // The journal's sync fails, for a single write and a batch.
    inject(
        &env,
        "fdatasync:error=EIO:when=1",
        &["deposit", "a", "5", "--id", "d"],
        "d",
        UNKNOWN,
    );
    let batch = env.dir.path().join("b.txt");
    fs::write(&batch, "deposit a 1 --id b1\nwithdraw a 2 --id b2\n").expect("batch");
    let batch = batch.display().to_string();
    inject(
        &env,
        "fdatasync:error=EIO:when=1",
        &["batch", &batch],
        "b1",
        UNKNOWN,
    );
    assert_eq!(ids(&env.bytes()).get("b2").map(Vec::len), Some(1));
    // The write itself fails: nothing was written, and it says so.
    let before = env.bytes();
    let journal = real(&env).join("journal.jsonl");
    let (out, _) = traced(
        &env,
        &journal,
        &["-e", "inject=write:error=ENOSPC:when=1"],
        &["deposit", "a", "1", "--id", "w"],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert!(
        stderr.starts_with("error: cannot write") && !stderr.contains("unknown"),
        "{stderr}"
    );
    assert_eq!(env.bytes(), before);
}

#[test]
fn a_failure_at_any_step_of_quarantining_a_torn_tail_never_drops_it() {
    if !require("strace", strace_works()) {
        return;
    }
    let tail = br#"{"seq":2,"at":"2026"#;
    // Calls in order: write .torn, sync .torn, (sync the directory),
    // truncate, sync the journal, write the journal, sync the journal.
    for (n, injection) in [
        "write:error=EIO:when=1",
        "fdatasync:error=EIO:when=1",
        "fsync:error=EIO:when=1",
        "ftruncate:error=EIO:when=1",
        "fdatasync:error=EIO:when=2",
        "write:error=ENOSPC:when=2",
        "fdatasync:error=EIO:when=3",
    ]
    .into_iter()
    .enumerate()
    {
        let env = TestEnv::new();
        env.ok("create a");
        let mut bytes = env.bytes();
        bytes.extend_from_slice(tail);
        env.write(&bytes);
        let id = format!("q{n}");
        let journal = real(&env).join("journal.jsonl");
        let (out, _) = traced(
            &env,
            &journal,
            &["-e", &format!("inject={injection}")],
            &["deposit", "a", "1", "--id", &id],
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        if injection.starts_with("fsync") && out.status.code() == Some(0) {
            // No directory sync happened to fail (see the order test).
            continue;
        }
        assert_eq!(out.status.code(), Some(4), "{injection}: {stderr}");
        let kept = fs::read(env.beside(".torn")).unwrap_or_default();
        assert!(
            env.bytes().ends_with(tail) || kept.windows(tail.len()).any(|w| w == tail),
            "{injection}: the torn bytes were dropped"
        );
        assert_clean_read(injection, &env.cmd().arg("balance").output().expect("run"));
        let out = env
            .cmd()
            .args(["deposit", "a", "1", "--id", &id])
            .output()
            .expect("run");
        assert_eq!(out.status.code(), Some(0), "{injection}: retry");
        let kept = fs::read(env.beside(".torn")).expect(".torn");
        assert!(kept.windows(tail.len()).any(|w| w == tail), "{injection}");
        assert_eq!(
            ids(&env.bytes()).get(&id).map(Vec::len),
            Some(1),
            "{injection}"
        );
        let out = env.cmd().arg("verify").output().expect("run");
        assert_eq!(assert_clean_read(injection, &out), 0);
    }
}
