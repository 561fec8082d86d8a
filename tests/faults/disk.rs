//! Disk full and read-only storage (promise 4): a write that cannot be
//! made durable exits 4 with a clear message, leaves the journal byte for
//! byte as it was (a write that got part way is cut back), and readers keep
//! working. Once the fault is gone, the same `--id` commands succeed, once.
//!
//! Disk full is a 64 KiB tmpfs and read-only a read-only bind mount, both
//! inside a private mount namespace (`unshare --mount`), so nothing leaks
//! onto the host; `chattr +i`/`+a` make files and directories immutable or
//! append-only on the host's own file system.

use std::fs::{self, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use super::{assert_clean_read, bin, clean_env, ids, probe, require, run_bounded};
use crate::common::TestEnv;

/// The full path of a tool on `PATH` (the ledger processes get a clean
/// environment without one).
pub fn tool(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
}

/// A private mount namespace, set up by a shell script, kept alive until
/// dropped. Ledger runs inside it through `nsenter`; the test reaches its
/// files through `/proc/PID/root`.
pub struct MountNs {
    child: Child,
    pid: u32,
}

impl MountNs {
    /// Runs `setup` (a shell script; `$1` is `dir`) in a new mount namespace.
    pub fn new(setup: &str, dir: &Path) -> Result<MountNs, String> {
        let unshare = tool("unshare").ok_or("no unshare on PATH")?;
        tool("nsenter").ok_or("no nsenter on PATH")?;
        let mut child = Command::new(unshare)
            .args(["--mount", "--propagation", "private", "sh", "-c"])
            .arg(format!("{setup} && echo ready && exec cat >/dev/null"))
            .arg("sh")
            .arg(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot run unshare: {e}"))?;
        let mut line = String::new();
        let stdout = child.stdout.take().ok_or("no stdout")?;
        BufReader::new(stdout)
            .read_line(&mut line)
            .map_err(|e| e.to_string())?;
        if line.trim() != "ready" {
            let _ = child.kill();
            let out = child.wait_with_output().map_err(|e| e.to_string())?;
            return Err(format!(
                "`unshare --mount sh -c '{setup}'` failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        let pid = child.id();
        Ok(MountNs { child, pid })
    }

    /// A tmpfs of `size` mounted on `dir`.
    pub fn tmpfs(dir: &Path, size: &str) -> Result<MountNs, String> {
        MountNs::new(&format!("mount -t tmpfs -o size={size} tmpfs \"$1\""), dir)
    }

    /// `dir` bind-mounted read-only onto itself.
    pub fn read_only(dir: &Path) -> Result<MountNs, String> {
        MountNs::new(
            "mount --bind \"$1\" \"$1\" && mount -o remount,ro,bind \"$1\"",
            dir,
        )
    }

    /// `path` as seen from inside the namespace.
    pub fn inside(&self, path: &Path) -> PathBuf {
        Path::new(&format!("/proc/{}/root", self.pid)).join(path.strip_prefix("/").unwrap_or(path))
    }

    /// Runs ledger inside the namespace on `journal`.
    pub fn ledger(&self, env: &TestEnv, journal: &Path, args: &[&str]) -> Output {
        let mut cmd = Command::new(tool("nsenter").expect("nsenter"));
        clean_env(&mut cmd, env);
        cmd.arg("--target")
            .arg(self.pid.to_string())
            .arg("--mount")
            .arg("--")
            .arg(bin())
            .arg("--file")
            .arg(journal)
            .args(args);
        run_bounded(&mut cmd)
    }
}

impl Drop for MountNs {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Asserts an I/O failure: exit 4, one `error:` line mentioning `cause`.
fn assert_io_error(what: &str, out: &Output, cause: &str) {
    let stderr = stderr(out);
    assert_eq!(out.status.code(), Some(4), "{what}: {stderr}");
    assert!(
        stderr.starts_with("error: cannot ") && stderr.contains(cause),
        "{what}: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "{what}: {stderr}");
}

/// Fills the file system holding `path` with a file there.
fn fill(path: &Path) {
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("filler");
    let chunk = vec![0u8; 4096];
    while f.write_all(&chunk).is_ok() {}
    while f.write_all(&[0]).is_ok() {}
}

/// Runs ledger (outside any namespace) on the journal at `journal`.
fn on(env: &TestEnv, journal: &Path, args: &[&str]) -> Output {
    let mut cmd = Command::new(bin());
    clean_env(&mut cmd, env);
    run_bounded(cmd.arg("--file").arg(journal).args(args))
}

fn ok(what: &str, out: &Output) {
    assert_eq!(out.status.code(), Some(0), "{what}: {}", stderr(out));
}

/// A 64 KiB tmpfs in a private mount namespace, inside the test's
/// directory; `None` (after `require` has said why) where it cannot be had.
fn small_disk(env: &TestEnv) -> Option<(MountNs, std::path::PathBuf)> {
    let dir = env.dir.path().join("small");
    fs::create_dir(&dir).expect("mkdir");
    match MountNs::tmpfs(&dir, "64k") {
        Ok(ns) => Some((ns, dir)),
        Err(e) => {
            require(
                "a tmpfs in a private mount namespace (unshare --mount)",
                Err(e),
            );
            None
        }
    }
}

#[test]
fn disk_full_fails_cleanly_and_the_same_ids_succeed_once_space_returns() {
    let env = TestEnv::new();
    let Some((ns, dir)) = small_disk(&env) else {
        return;
    };
    let journal = dir.join("journal.jsonl");
    let run = |args: &[&str]| ns.ledger(&env, &journal, args);
    let bytes = || fs::read(ns.inside(&journal)).expect("journal");
    ok("create", &run(&["create", "a"]));
    ok("deposit", &run(&["deposit", "a", "100"]));

    // A new journal on the full disk: refused, and an empty file (an empty
    // journal) at most is left.
    fill(&ns.inside(&dir.join("filler")));
    let other = dir.join("new.jsonl");
    assert_io_error(
        "new journal",
        &ns.ledger(&env, &other, &["create", "a"]),
        "No space left on device",
    );
    let out = ns.ledger(&env, &other, &["balance", "--json"]);
    assert_eq!(assert_clean_read("balance of the new journal", &out), 0);

    // Single writes fill the journal's last page, then fail.
    let memo = "m".repeat(200);
    let mut acknowledged = Vec::new();
    let failed = (0..40)
        .find(|i| {
            let id = format!("fill-{i}");
            let before = bytes();
            let out = run(&["deposit", "a", "1", "--id", &id, "--memo", &memo]);
            if out.status.code() == Some(0) {
                acknowledged.push(id);
                return false;
            }
            assert_io_error(&id, &out, "No space left on device");
            assert_eq!(bytes(), before, "{id}: a partial line was left behind");
            true
        })
        .expect("the disk never filled up");
    let failed_id = format!("fill-{failed}");
    let before = bytes();

    // A batch too.
    let batch = env.dir.path().join("batch.txt");
    let text: String = (0..30)
        .map(|k| format!("deposit a 0.{:02} --id b{k} --memo {memo}\n", k + 1))
        .collect();
    fs::write(&batch, text).expect("batch");
    let batch_arg = batch.display().to_string();
    assert_io_error(
        "batch",
        &run(&["batch", &batch_arg]),
        "No space left on device",
    );
    assert_eq!(bytes(), before, "batch: a partial line was left behind");

    // Readers are unaffected; nothing torn, nothing lost.
    assert_eq!(
        assert_clean_read("balance", &run(&["balance", "--json"])),
        0
    );
    assert_eq!(assert_clean_read("verify", &run(&["verify"])), 0);

    // Space returns: the same ids succeed, once; a second retry is a repeat.
    fs::remove_file(ns.inside(&dir.join("filler"))).expect("rm filler");
    for _ in 0..2 {
        ok(
            "retry",
            &run(&["deposit", "a", "1", "--id", &failed_id, "--memo", &memo]),
        );
        ok("batch retry", &run(&["batch", &batch_arg]));
    }
    ok("new journal", &ns.ledger(&env, &other, &["create", "a"]));
    assert_eq!(assert_clean_read("verify", &run(&["verify"])), 0);
    let found = ids(&bytes());
    acknowledged.push(failed_id);
    acknowledged.extend((0..30).map(|k| format!("b{k}")));
    for id in &acknowledged {
        assert_eq!(found.get(id).map(Vec::len), Some(1), "{id}");
    }
}

/// A batch too large to stage in memory fills the disk with its spool (a
/// nameless file beside the journal) or with the append itself: exit 4,
/// the journal as it was, and the space back once the process is gone.
#[test]
fn disk_full_under_a_large_batch_leaves_the_journal_and_frees_the_space() {
    let env = TestEnv::new();
    let dir = env.dir.path().join("small");
    fs::create_dir(&dir).expect("mkdir");
    let ns = match MountNs::tmpfs(&dir, "6m") {
        Ok(ns) => ns,
        Err(e) => {
            require(
                "a tmpfs in a private mount namespace (unshare --mount)",
                Err(e),
            );
            return;
        }
    };
    let journal = dir.join("journal.jsonl");
    let run = |args: &[&str]| ns.ledger(&env, &journal, args);
    ok("create", &run(&["create", "a"]));
    let before = fs::read(ns.inside(&journal)).expect("journal");
    // About 6 MB of lines: more than the 1 MiB staged in memory.
    let memo = "m".repeat(200);
    let batch = env.dir.path().join("batch.txt");
    let text: String = (0..20_000)
        .map(|k| format!("deposit a 1 --id b{k} --memo {memo}\n"))
        .collect();
    fs::write(&batch, text).expect("batch");
    assert_io_error(
        "large batch",
        &run(&["batch", &batch.display().to_string()]),
        "No space left on device",
    );
    assert_eq!(fs::read(ns.inside(&journal)).expect("journal"), before);
    let left: Vec<_> = fs::read_dir(ns.inside(&dir))
        .expect("dir")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(left, ["journal.jsonl"], "the batch left a file behind");
    // The spool's space went with it: 2.4 MB of lines fit in the 6 MB,
    // which they would not beside a spool of the batch left behind.
    let text: String = (0..8_000)
        .map(|k| format!("deposit a 1 --id c{k} --memo {memo}\n"))
        .collect();
    fs::write(&batch, text).expect("batch");
    ok(
        "smaller batch",
        &run(&["batch", &batch.display().to_string()]),
    );
    assert_eq!(assert_clean_read("verify", &run(&["verify"])), 0);
}

#[test]
fn disk_full_while_quarantining_a_torn_tail_keeps_the_tail() {
    let env = TestEnv::new();
    let Some((ns, dir)) = small_disk(&env) else {
        return;
    };
    let journal = dir.join("journal.jsonl");
    let run = |args: &[&str]| ns.ledger(&env, &journal, args);
    ok("create", &run(&["create", "a"]));
    let tail = br#"{"seq":2,"at":"2026-11-26T10:00:00.0"#;
    let mut f = OpenOptions::new()
        .append(true)
        .open(ns.inside(&journal))
        .expect("open");
    f.write_all(tail).expect("torn tail");
    drop(f);
    let before = fs::read(ns.inside(&journal)).expect("journal");
    fill(&ns.inside(&dir.join("filler")));

    assert_io_error(
        "deposit",
        &run(&["deposit", "a", "1", "--id", "d"]),
        "No space left on device",
    );
    assert_eq!(
        fs::read(ns.inside(&journal)).expect("journal"),
        before,
        "the tail was dropped"
    );
    assert_eq!(assert_clean_read("balance", &run(&["balance"])), 1);

    fs::remove_file(ns.inside(&dir.join("filler"))).expect("rm filler");
    ok("deposit", &run(&["deposit", "a", "1", "--id", "d"]));
    let torn = fs::read(ns.inside(&dir.join("journal.jsonl.torn"))).expect(".torn");
    assert!(
        torn.windows(tail.len()).any(|w| w == tail),
        "the torn bytes are not in .torn: {}",
        String::from_utf8_lossy(&torn)
    );
    assert_eq!(assert_clean_read("verify", &run(&["verify"])), 0);
}

#[test]
fn a_read_only_mount_refuses_writes_with_exit_4_and_still_reads() {
    let env = TestEnv::new();
    let dir = env.dir.path().join("ro");
    fs::create_dir(&dir).expect("mkdir");
    let journal = dir.join("journal.jsonl");
    let torn = dir.join("torn.jsonl");
    for path in [&journal, &torn] {
        ok("create", &on(&env, path, &["create", "a"]));
    }
    fs::write(
        &torn,
        fs::read(&torn)
            .expect("read")
            .into_iter()
            .chain(*br#"{"seq":2"#)
            .collect::<Vec<u8>>(),
    )
    .expect("torn tail");
    let (before, torn_before) = (fs::read(&journal).expect("j"), fs::read(&torn).expect("t"));
    let ns = match MountNs::read_only(&dir) {
        Ok(ns) => ns,
        Err(e) => {
            require(
                "a read-only bind mount in a private mount namespace",
                Err(e),
            );
            return;
        }
    };
    let ro = "Read-only file system";
    assert_io_error(
        "deposit",
        &ns.ledger(&env, &journal, &["deposit", "a", "1"]),
        ro,
    );
    assert_io_error(
        "create",
        &ns.ledger(&env, &dir.join("new.jsonl"), &["create", "a"]),
        ro,
    );
    assert_io_error("torn", &ns.ledger(&env, &torn, &["deposit", "a", "1"]), ro);
    for args in [&["balance"][..], &["history", "--json"], &["verify"]] {
        assert_eq!(
            assert_clean_read("read", &ns.ledger(&env, &journal, args)),
            0
        );
        assert_eq!(
            assert_clean_read("torn read", &ns.ledger(&env, &torn, args)),
            1
        );
    }
    let out = ns.ledger(&env, &dir.join("missing.jsonl"), &["balance", "--json"]);
    assert_eq!(assert_clean_read("missing", &out), 0);
    assert_eq!(fs::read(&journal).expect("j"), before);
    assert_eq!(fs::read(&torn).expect("t"), torn_before);
    assert!(!dir.join("torn.jsonl.torn").exists());
    assert!(!dir.join("new.jsonl").exists());
}

/// `chattr +i`/`+a` on a path, undone when dropped (an immutable file
/// cannot even be deleted, so the temp dir could not be cleaned up).
struct Attr(PathBuf, &'static str);

impl Attr {
    fn set(path: &Path, attr: &'static str) -> Attr {
        let out = Command::new("chattr")
            .arg(format!("+{attr}"))
            .arg(path)
            .output()
            .expect("chattr");
        assert!(out.status.success(), "{}", stderr(&out));
        Attr(path.to_owned(), attr)
    }
}

impl Drop for Attr {
    fn drop(&mut self) {
        let _ = Command::new("chattr")
            .arg(format!("-{}", self.1))
            .arg(&self.0)
            .status();
    }
}

/// Whether `chattr +i` works in `dir` (root, and a file system with
/// attributes: ext4 does, overlayfs and tmpfs may not).
fn chattr_works(dir: &Path) -> Result<(), String> {
    let probe_file = dir.join("chattr-probe");
    fs::write(&probe_file, "x").map_err(|e| e.to_string())?;
    let path = probe_file.display().to_string();
    let result = probe("chattr", &["+i", &path]);
    let _ = probe("chattr", &["-i", &path]);
    let _ = fs::remove_file(&probe_file);
    result
}

#[test]
fn an_immutable_journal_refuses_writes_with_exit_4_and_still_reads() {
    let env = TestEnv::new();
    if !require("chattr +i", chattr_works(env.dir.path())) {
        return;
    }
    env.ok("create a");
    env.ok("deposit a 10");
    let before = env.bytes();
    let batch = env.dir.path().join("b.txt");
    fs::write(&batch, "deposit a 1\ndeposit a 2\n").expect("batch");
    {
        let _immutable = Attr::set(&env.journal, "i");
        let denied = "Operation not permitted";
        let out = run_bounded(super::ledger(&env).args(["deposit", "a", "1", "--id", "x"]));
        assert_io_error("deposit", &out, denied);
        let out = run_bounded(super::ledger(&env).args(["batch", &batch.display().to_string()]));
        assert_io_error("batch", &out, denied);
        for args in [&["balance"][..], &["history"], &["verify"]] {
            assert_eq!(
                assert_clean_read("read", &env.cmd().args(args).output().expect("run")),
                0
            );
        }
        assert_eq!(env.bytes(), before);
    }
    env.ok("deposit a 1 --id x");
    env.ok("deposit a 1 --id x");
    assert_eq!(ids(&env.bytes())["x"].len(), 1);
}

#[test]
fn an_append_only_journal_keeps_its_torn_tail_when_it_cannot_cut_it() {
    let env = TestEnv::new();
    if !require("chattr +a", chattr_works(env.dir.path())) {
        return;
    }
    env.ok("create a");
    let tail = br#"{"seq":2,"at":"2026-11"#;
    let mut bytes = env.bytes();
    bytes.extend_from_slice(tail);
    env.write(&bytes);
    {
        let _append_only = Attr::set(&env.journal, "a");
        let out = run_bounded(super::ledger(&env).args(["deposit", "a", "1", "--id", "x"]));
        assert_io_error("deposit", &out, "Operation not permitted");
        assert_eq!(env.bytes(), bytes, "the torn tail was dropped");
        let out = env.cmd().arg("balance").output().expect("run");
        assert_eq!(assert_clean_read("balance", &out), 1);
    }
    env.ok("deposit a 1 --id x");
    let torn = fs::read(env.beside(".torn")).expect(".torn");
    assert!(torn.starts_with(tail), "{}", String::from_utf8_lossy(&torn));
    assert_eq!(
        assert_clean_read("verify", &env.cmd().arg("verify").output().expect("run")),
        0
    );
}

#[test]
fn an_immutable_directory_refuses_new_files_with_exit_4() {
    let env = TestEnv::new();
    if !require("chattr +i", chattr_works(env.dir.path())) {
        return;
    }
    let dir = env.dir.path().join("locked");
    fs::create_dir(&dir).expect("mkdir");
    let journal = dir.join("journal.jsonl");
    ok("create", &on(&env, &journal, &["create", "a"]));
    let mut bytes = fs::read(&journal).expect("read");
    bytes.extend_from_slice(br#"{"seq":2,"#);
    fs::write(&journal, &bytes).expect("torn tail");
    let new = dir.join("new.jsonl");
    {
        let _immutable = Attr::set(&dir, "i");
        let denied = "Operation not permitted";
        assert_io_error("new journal", &on(&env, &new, &["create", "a"]), denied);
        // Quarantining the torn tail needs a new file: refused, tail kept.
        let out = on(&env, &journal, &["deposit", "a", "1"]);
        assert_io_error("deposit", &out, denied);
        assert!(stderr(&out).contains(".torn"), "{}", stderr(&out));
        assert_eq!(fs::read(&journal).expect("read"), bytes);
        let out = on(&env, &journal, &["balance"]);
        assert_eq!(assert_clean_read("balance", &out), 1);
    }
    assert!(!dir.join("new.jsonl").exists());
    ok("deposit", &on(&env, &journal, &["deposit", "a", "1"]));
}
