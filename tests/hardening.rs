//! Issue #11, hardening (SPEC 1 exit codes v2, SPEC 2 files beside the
//! journal, SPEC 5 empty head, SPEC 8 idle follower): planted links and
//! special files at the ledger's own names, failing stdout and stderr,
//! unbounded batch input, kills between the journal's sync and the read
//! model's commit, and an idle follower's CPU time.
//!
//! Every command runs through `run_bounded`, so a hang fails the test.
//! Tests that need root (a second user) fail rather than skip under
//! `CI=true`, like the fault suites.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::common::TestEnv;
use crate::faults::{HANG, assert_no_panic, ledger, probe, require, run_bounded, wait_bounded};

const ATTACKER: &str = "ledger-attacker";

/// A journal with one account holding 10.00.
fn funded() -> TestEnv {
    TestEnv::with(&["create a", "deposit a 10"])
}

/// Runs `ledger ARGS` on `env`'s journal, bounded in time.
#[track_caller]
fn run(env: &TestEnv, args: &[&str]) -> Output {
    run_bounded(ledger(env).args(args))
}

/// Runs a command that must fail with `code`, leaving the journal as it was.
#[track_caller]
fn refused(env: &TestEnv, code: i32, args: &[&str]) -> String {
    let before = env.bytes();
    let out = run(env, args);
    assert_no_panic(&format!("{args:?}"), &out);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(code), "{args:?}: {stderr}");
    assert_eq!(env.bytes(), before, "{args:?} changed the journal");
    stderr
}

/// Makes a FIFO at `path`.
#[track_caller]
fn mkfifo(path: &Path) {
    let status = Command::new("mkfifo").arg(path).status().expect("mkfifo");
    assert!(status.success());
}

/// A journal that ends with a torn tail (a line cut short).
fn torn(env: &TestEnv) {
    let mut bytes = env.bytes();
    bytes.extend_from_slice(br#"{"seq":3,"at":"2026"#);
    env.write(bytes);
}

// ---- special files -------------------------------------------------------

#[test]
fn a_journal_that_is_a_fifo_or_device_is_refused_not_waited_on() {
    let env = TestEnv::new();
    mkfifo(&env.journal);
    for args in [
        &["balance"][..],
        &["history"],
        &["verify"],
        &["create", "a"],
        &["deposit", "a", "1"],
    ] {
        // (Not `refused`: reading the FIFO back would hang the test.)
        let out = run(&env, args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(4), "{args:?}: {stderr}");
        assert!(stderr.contains("not a regular file"), "{args:?}: {stderr}");
        let meta = fs::symlink_metadata(&env.journal).expect("still there");
        assert!(std::os::unix::fs::FileTypeExt::is_fifo(&meta.file_type()));
    }
    for device in ["/dev/null", "/dev/zero"] {
        for args in [&["balance"][..], &["create", "a"]] {
            let mut cmd = Command::new(crate::faults::bin());
            crate::faults::clean_env(&mut cmd, &env);
            let out = run_bounded(cmd.args(["--file", device]).args(args));
            assert_eq!(out.status.code(), Some(4), "{device} {args:?}");
        }
    }
}

#[test]
fn fifos_and_devices_at_the_sidecar_names_never_hang_a_command() {
    for sidecar in [".torn", ".checkpoint"] {
        let env = funded();
        torn(&env);
        mkfifo(&env.beside(sidecar));
        let out = run(&env, &["balance", "--json"]);
        assert_eq!(out.status.code(), Some(0), "{sidecar}");
        let out = run(&env, &["deposit", "a", "1"]);
        assert_no_panic(sidecar, &out);
        if sidecar == ".torn" {
            // The torn tail cannot be kept: the write is refused, untouched.
            refused(&env, 4, &["deposit", "a", "1"]);
        } else {
            assert_eq!(out.status.code(), Some(0), "{sidecar}");
        }
    }
    let env = funded();
    symlink("/dev/zero", env.beside(".checkpoint")).expect("symlink");
    assert_eq!(env.balance_of("a"), "10.00");
}

// ---- symbolic links, as another user would plant them --------------------

/// Makes sure the attacker's account exists: root only.
fn attacker() -> Result<(u32, u32), String> {
    if !rustix::process::geteuid().is_root() {
        return Err("not root".into());
    }
    let id = |flag: &str| -> Result<u32, String> {
        let out = Command::new("id")
            .args([flag, ATTACKER])
            .output()
            .map_err(|e| e.to_string())?;
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .map_err(|_| "no such user".to_string())
    };
    if id("-u").is_err() {
        probe("useradd", &["--system", "--no-create-home", ATTACKER])?;
    }
    Ok((id("-u")?, id("-g")?))
}

/// Runs a shell command as the attacker.
#[track_caller]
fn as_attacker(script: &str) {
    let out = Command::new("setpriv")
        .args(["--reuid", ATTACKER, "--regid", ATTACKER, "--clear-groups"])
        .args(["sh", "-c", script])
        .output()
        .expect("setpriv");
    assert!(
        out.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A journal (one account, 10.00, then a torn tail) in a directory the
/// attacker owns, the journal theirs too; and a root-only victim file.
fn attack_scene() -> Option<(TestEnv, PathBuf)> {
    let (uid, gid) = match attacker() {
        Ok(ids) => ids,
        Err(why) => {
            require("a second user (root, useradd, setpriv)", Err(why));
            return None;
        }
    };
    let env = funded();
    let victim = env.dir.path().join("victim");
    fs::write(&victim, b"root's secret\n").expect("victim");
    fs::set_permissions(&victim, fs::Permissions::from_mode(0o600)).expect("chmod");
    let dir = env.dir.path();
    fs::set_permissions(dir, fs::Permissions::from_mode(0o755)).expect("chmod");
    for path in [dir, env.journal.as_path()] {
        std::os::unix::fs::chown(path, Some(uid), Some(gid)).expect("chown");
    }
    Some((env, victim))
}

#[test]
fn links_planted_at_torn_are_never_followed() {
    for dangling in [false, true] {
        let Some((env, victim)) = attack_scene() else {
            return;
        };
        torn(&env);
        let target = if dangling {
            env.dir.path().join("etc-cron-entry")
        } else {
            victim.clone()
        };
        let link = env.beside(".torn");
        as_attacker(&format!("ln -s {} {}", target.display(), link.display()));
        let stderr = refused(&env, 4, &["deposit", "a", "1"]);
        assert!(stderr.contains(".torn"), "{stderr}");
        assert_eq!(fs::read(&victim).expect("victim"), b"root's secret\n");
        assert!(!env.dir.path().join("etc-cron-entry").exists());
    }
}

#[test]
fn links_planted_at_the_read_model_names_are_never_followed() {
    let Some((env, victim)) = attack_scene() else {
        return;
    };
    let dir = env.dir.path().display().to_string();
    let name = env
        .journal
        .file_name()
        .and_then(|n| n.to_str())
        .expect("name");
    // A journal long enough to get a read model.
    let lines: String = (0..8_000).map(|_| "deposit a 1\n").collect();
    let batch = env.dir.path().join("batch.txt");
    fs::write(&batch, lines).expect("batch");
    let out = run(&env, &["batch", batch.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    crate::readmodel::remove_model(&env.journal);
    // Links at the model and at SQLite's companions, to the victim.
    as_attacker(&format!(
        "cd {dir} && for s in '' -wal -shm -journal; do ln -s {victim} {name}.readmodel$s; done",
        victim = victim.display()
    ));
    for args in [
        &["balance"][..],
        &["history", "a"],
        &["deposit", "a", "1"],
        &["balance", "a"],
    ] {
        let out = run(&env, args);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {out:?}");
        assert_eq!(fs::read(&victim).expect("victim"), b"root's secret\n");
    }
    // The links were removed, and a model of ours put in their place,
    // given to the journal's owner.
    for suffix in ["", "-wal", "-shm"] {
        let meta =
            fs::symlink_metadata(env.beside(&format!(".readmodel{suffix}"))).expect("the model");
        assert!(meta.file_type().is_file(), "{suffix}");
        assert_eq!(
            meta.uid(),
            fs::metadata(&env.journal).expect("journal").uid(),
            "{suffix}"
        );
        assert_eq!(meta.mode() & 0o777, 0o600, "{suffix}");
    }
    assert_eq!(env.balance_of("a"), "8011.00");
}

// ---- failing stdout and stderr --------------------------------------------

/// How a stream of the child is set up.
#[derive(Clone, Copy, Debug)]
enum Stream {
    Full,
    Closed,
    Piped,
}

fn stdio(stream: Stream) -> Stdio {
    match stream {
        Stream::Full => fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .expect("/dev/full")
            .into(),
        // A pipe whose reader is gone.
        Stream::Closed => {
            let (reader, writer) = std::io::pipe().expect("pipe");
            drop(reader);
            writer.into()
        }
        Stream::Piped => Stdio::piped(),
    }
}

/// Runs `args` with stdout and stderr set up as said; returns the exit code.
#[track_caller]
fn exit_with(env: &TestEnv, args: &[&str], out: Stream, err: Stream) -> i32 {
    let mut cmd = ledger(env);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(stdio(out))
        .stderr(stdio(err));
    let mut child = cmd.spawn().expect("spawn");
    let status = wait_bounded(&mut child, HANG).expect("no hang");
    let code = status.code().unwrap_or(-1);
    assert_ne!(code, 101, "{args:?} with {out:?}/{err:?} panicked");
    code
}

#[test]
fn failing_stdout_or_stderr_never_panics_and_exit_codes_tell_the_truth() {
    use Stream::{Closed, Full, Piped};
    let env = funded();
    let batch = env.dir.path().join("b.txt");
    fs::write(&batch, "deposit a 1\ndeposit a 2\n").expect("batch");
    let batch = batch.to_str().expect("utf-8");
    for (out, err) in [
        (Full, Full),
        (Closed, Closed),
        (Full, Piped),
        (Closed, Piped),
    ] {
        let before = env.bytes();
        // A rejection, a usage error: their codes, nothing written.
        assert_eq!(exit_with(&env, &["withdraw", "a", "99"], out, err), 1);
        assert_eq!(exit_with(&env, &["deposit", "a", "-1"], out, err), 2);
        assert_eq!(exit_with(&env, &["frobnicate"], out, err), 2);
        assert_eq!(env.bytes(), before);
        // A committed write and a batch: exit 0, and the events are there.
        assert_eq!(exit_with(&env, &["deposit", "a", "1"], out, err), 0);
        assert_eq!(exit_with(&env, &["batch", batch], out, err), 0);
        assert_eq!(env.lines().len(), before_lines(&before) + 3);
        // A read: a broken pipe is a quiet success, a full disk is exit 4.
        let read = exit_with(&env, &["history"], out, err);
        assert_eq!(read, if matches!(out, Full) { 4 } else { 0 });
        let completions = exit_with(&env, &["completions", "bash"], out, err);
        assert_eq!(completions, if matches!(out, Full) { 4 } else { 0 });
    }
    // A read with a torn tail warns on a stderr that fails: still exit 0.
    torn(&env);
    assert_eq!(exit_with(&env, &["balance"], Piped, Full), 0);
    assert_eq!(exit_with(&env, &["balance"], Piped, Closed), 0);
}

fn before_lines(bytes: &[u8]) -> usize {
    bytes.iter().filter(|&&b| b == b'\n').count()
}

/// A full disk or a closed pipe behind stdout (SPEC 1: "it says so on
/// stderr when it can, naming the seqs it committed").
#[test]
fn a_committed_write_whose_output_fails_names_its_seqs_on_stderr() {
    let env = funded();
    let batch = env.dir.path().join("b.txt");
    fs::write(&batch, "deposit a 1\ndeposit a 2\n").expect("batch");
    let batch = batch.to_str().expect("utf-8");
    let mut seq = 2;
    for stream in [Stream::Full, Stream::Closed] {
        for (args, seqs) in [(&["deposit", "a", "1"][..], 1), (&["batch", batch][..], 2)] {
            let mut cmd = ledger(&env);
            cmd.args(args)
                .stdin(Stdio::null())
                .stdout(stdio(stream))
                .stderr(Stdio::piped());
            let out = cmd.output().expect("run");
            assert_eq!(out.status.code(), Some(0), "{args:?} {stream:?}");
            let stderr = String::from_utf8_lossy(&out.stderr);
            let named = match seqs {
                1 => format!("seq {} of", seq + 1),
                _ => format!("seqs {}-{} of", seq + 1, seq + seqs),
            };
            seq += seqs;
            assert!(stderr.contains(&named), "{args:?} {stream:?}: {stderr}");
            assert!(stderr.contains("are in the journal"), "{stderr}");
        }
    }
    assert_eq!(env.lines().len(), 1 + seq as usize);
}

// ---- batch input ------------------------------------------------------------

#[test]
fn batch_input_is_bounded_and_streamed() {
    let env = funded();
    let before = env.bytes();
    let stderr = refused(&env, 2, &["batch", "/dev/zero"]);
    assert!(
        stderr.contains("line 1: the line is longer than 65536 bytes"),
        "{stderr}"
    );
    // A line one byte too long, after a good one.
    let long = env.dir.path().join("long.txt");
    fs::write(&long, format!("deposit a 1\n{}\n", "x".repeat(65_537))).expect("write");
    let stderr = refused(&env, 2, &["batch", long.to_str().expect("utf-8")]);
    assert!(stderr.contains("line 2: "), "{stderr}");
    // 300 MB whose first line is bad (sparse: no disk needed): refused at
    // once, without reading it into memory.
    let big = env.dir.path().join("big.txt");
    fs::write(&big, "bogus line\n").expect("write");
    fs::OpenOptions::new()
        .write(true)
        .open(&big)
        .and_then(|f| f.set_len(300 << 20))
        .expect("grow");
    let started = Instant::now();
    let mut cmd = ledger(&env);
    cmd.args(["batch", big.to_str().expect("utf-8")]);
    let out = crate::faults::run_bounded(&mut cmd);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("line 1: "));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(env.bytes(), before);
}

#[test]
fn batch_prints_after_unlocking() {
    let env = funded();
    let lines: String = (0..2_000)
        .map(|i| format!("deposit a 1 --id k{i}\n"))
        .collect();
    let batch = env.dir.path().join("b.txt");
    fs::write(&batch, lines).expect("batch");
    // A consumer that reads nothing: the batch blocks on its full pipe.
    let mut slow = ledger(&env);
    slow.args(["--json", "batch", batch.to_str().expect("utf-8")])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut child = slow.spawn().expect("spawn");
    // Its events are committed before it prints...
    let deadline = Instant::now() + HANG;
    while env.lines().len() < 2_003 {
        assert!(Instant::now() < deadline, "batch never committed");
        std::thread::sleep(Duration::from_millis(20));
    }
    // ...and another writer gets in while it waits on the reader.
    let out = run(&env, &["deposit", "a", "1"]);
    assert_eq!(out.status.code(), Some(0));
    let stdout = child.stdout.take().expect("stdout");
    let drained = crate::faults::drain(stdout);
    assert!(wait_bounded(&mut child, HANG).expect("ends").success());
    assert_eq!(
        drained
            .join()
            .expect("drain")
            .iter()
            .filter(|&&b| b == b'\n')
            .count(),
        2_000
    );
}

// ---- the read model ---------------------------------------------------------

/// Kill -9 at any point of a write, many times, including between the
/// journal's sync and the read model's commit: the next command catches
/// the model up from the journal; nothing is lost or counted twice.
#[test]
fn kills_between_the_journal_and_the_read_model_lose_and_double_nothing() {
    let env = funded();
    crate::readmodel::model_at(&env.journal, 2);
    for i in 0..60u64 {
        let mut child = ledger(&env)
            .args(["deposit", "a", "1", "--id", &format!("k{i}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn");
        std::thread::sleep(Duration::from_micros(500 + (i * 7919) % 12_000));
        let _ = child.kill();
        let _ = child.wait();
    }
    let journal = String::from_utf8(env.bytes()).expect("utf-8");
    let deposited = journal.matches(r#""id":"k"#).count();
    // Every kill left the journal whole or with a torn tail the next
    // writer removes; the model, wherever a kill left it, is caught up.
    env.ok("deposit a 1 --id last");
    let expected = format!("{}.00", 10 + deposited + 1);
    assert_eq!(env.balance_of("a"), expected);
    assert!(ledger::readmodel::path_of(&env.journal).exists());
    crate::readmodel::remove_model(&env.journal);
    assert_eq!(env.balance_of("a"), expected);
    env.ok("verify");
}

// ---- following --------------------------------------------------------------

/// utime + stime of a process, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .expect("fields")
        .split_whitespace()
        .collect();
    // After the `)`: state is field 3, utime 14 and stime 15.
    fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime")
}

#[test]
fn an_idle_follower_facing_a_long_torn_tail_uses_no_cpu() {
    let env = funded();
    // A long append, then cut: tens of thousands of lines wait for a writer.
    let lines: String = (0..60_000).map(|_| "deposit a 1\n").collect();
    let batch = env.dir.path().join("b.txt");
    fs::write(&batch, lines).expect("batch");
    env.ok(&format!("batch {}", batch.display()));
    let len = env.bytes().len() as u64;
    fs::OpenOptions::new()
        .write(true)
        .open(&env.journal)
        .and_then(|f| f.set_len(len - 100))
        .expect("cut");
    let mut child = ledger(&env)
        .args(["history", "--follow"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    // The warning comes once the first round has read the whole tail.
    let mut stderr = std::io::BufReader::new(child.stderr.take().expect("stderr"));
    let mut warning = String::new();
    std::io::BufRead::read_line(&mut stderr, &mut warning).expect("warning");
    assert!(warning.contains("interrupted write"), "{warning}");
    let before = cpu_ticks(child.id());
    std::thread::sleep(Duration::from_secs(3));
    let used = cpu_ticks(child.id()) - before;
    let _ = child.kill();
    let _ = child.wait();
    // Ticks are 1/100 s: at most 0.1 s of CPU over 3 s.
    assert!(used <= 10, "the follower used {used} ticks while idle");
}

// ---- small ones -------------------------------------------------------------

#[test]
fn the_head_of_an_empty_journal_is_accepted_back() {
    let env = TestEnv::new();
    env.write(b"");
    let head = env.ok("verify --quiet");
    let hash = head.trim().split(' ').nth(1).expect("hash");
    assert_eq!(
        env.ok(&format!("verify --quiet --expect-head {hash}")),
        head
    );
}

#[test]
fn as_of_a_seq_beyond_u64_is_the_latest_state() {
    let env = funded();
    let latest = env.ok("balance --json");
    assert_eq!(
        env.ok("balance --json --as-of 99999999999999999999999"),
        latest
    );
    env.ok("history --as-of 99999999999999999999999");
}

#[test]
fn tables_show_bidi_reordering_characters_escaped() {
    let env = TestEnv::new();
    env.ok_args(&["create", "a", "--owner", "evil\u{202e}cba"]);
    env.ok_args(&["deposit", "a", "1", "--memo", "x\u{2067}y\u{200f}"]);
    let balance = env.ok("balance");
    assert!(balance.contains("evil\\u{202e}cba"), "{balance}");
    let history = env.ok("history");
    assert!(history.contains("x\\u{2067}y\\u{200f}"), "{history}");
    assert!(!history.contains('\u{2067}'));
    // JSON keeps them as they are.
    assert!(
        env.ok("history --json").contains("\\u2067")
            || env.ok("history --json").contains('\u{2067}')
    );
}

#[test]
fn many_accounts_in_many_currencies_open_in_linear_time() {
    let env = TestEnv::new();
    let code = |i: usize| -> String {
        let mut n = i;
        let mut code = String::new();
        for _ in 0..4 {
            code.push((b'A' + (n % 26) as u8) as char);
            n /= 26;
        }
        code
    };
    let lines: String = (0..30_000)
        .map(|i| format!("create a{i} --currency {}\n", code(i)))
        .collect();
    let batch = env.dir.path().join("b.txt");
    fs::write(&batch, lines).expect("batch");
    let started = Instant::now();
    env.ok(&format!("batch {}", batch.display()));
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
}

/// An empty file is an empty journal to every read, and to `copy`: its
/// copy is an empty file (in directories made for it), which `verify`
/// passes as it passes the source, where `copy` said "no journal" (exit
/// 3). A destination that holds events is refused and left as it was.
#[test]
fn the_copy_of_an_empty_journal_is_an_empty_journal() {
    let env = funded();
    let empty = env.dir.path().join("empty.jsonl");
    fs::write(&empty, "").expect("empty");
    let empty = empty.to_str().expect("utf-8 path");
    let copy = env.dir.path().join("new").join("copy.jsonl");
    let out = run(&env, &["copy", empty, copy.to_str().expect("utf-8 path")]);
    assert!(out.status.success(), "{out:?}");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.starts_with("copied 0 events from"), "{said}");
    assert_eq!(fs::read(&copy).expect("the copy"), b"");
    for journal in [Path::new(empty), &copy] {
        let out = run_bounded(env.process().arg("--file").arg(journal).arg("verify"));
        let said = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{journal:?}: {out:?}");
        assert!(said.contains("events   0"), "{said}");
    }
    let journal = env.journal.to_str().expect("utf-8 path");
    let e = refused(&env, 1, &["copy", empty, journal]);
    assert!(e.contains("already holds events"), "{e}");
    assert_eq!(env.balance_of("a"), "10.00");
}

// ---- files a command writes beside the journal ---------------------------

/// `copy` onto its own source (by another path, or through a link) is
/// refused at once, where its lock used to wait on its own read lock for
/// ever; `chart --out` never writes over the journal it draws.
#[test]
fn copy_onto_itself_and_a_chart_over_the_journal_are_refused() {
    let env = funded();
    let journal = env.journal.to_str().expect("utf-8 path").to_owned();
    let link = env.dir.path().join("link.svg");
    std::os::unix::fs::symlink(&env.journal, &link).expect("symlink");
    let link = link.to_str().expect("utf-8 path");
    let dotted = env.dir.path().join(".").join("journal.jsonl");
    let dotted = dotted.to_str().expect("utf-8 path");
    for destination in [journal.as_str(), dotted, link] {
        let e = refused(&env, 1, &["copy", &journal, destination]);
        assert!(
            e.contains("is both the source and the destination of the copy"),
            "{e}"
        );
    }
    let e = refused(&env, 2, &["chart", "a", "--out", link]);
    assert!(e.contains("is the journal"), "{e}");
    assert_eq!(env.balance_of("a"), "10.00");
}
