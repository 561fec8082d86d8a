//! Fault-injection suites (issue #6): concurrency stress, crash loops,
//! writes cut at every byte, disk full, read-only files and directories,
//! failed syncs, the corruption matrix, fuzzing, the order of syncs, and
//! file modes.
//!
//! Every suite is bounded to seconds. `LEDGER_SOAK=1` multiplies the
//! iterations (by 20; `LEDGER_SOAK=N` for N ≥ 2 multiplies by N) for long
//! runs; `LEDGER_FAULT_SEED=N` replays a run with another seed (each test
//! prints the seed it used when it fails).
//!
//! Suites that need root or a tool (`unshare`, `mount`, `chattr`, `strace`,
//! `prlimit`) skip with a printed reason when it is missing, except under
//! `CI=true`, where a missing capability fails the test so that it is seen.

mod corruption;
mod crash;
mod disk;
mod fsync;
mod fuzz;
mod modes;
mod stress;
mod torn;

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use crate::common::{CLOCK, TestEnv};

/// How many times the default iteration counts are multiplied.
pub fn soak() -> usize {
    match std::env::var("LEDGER_SOAK").ok().as_deref().map(str::trim) {
        None | Some("" | "0") => 1,
        Some("1") => 20,
        Some(n) => n.parse().unwrap_or(20),
    }
}

/// Whether this is a CI run (`CI` set to anything but empty, `0` or `false`).
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && v != "false")
}

/// The seed of a randomised test: `LEDGER_FAULT_SEED`, else `default`.
pub fn seed(default: u64) -> u64 {
    std::env::var("LEDGER_FAULT_SEED")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(default)
}

/// Whether a capability a test needs is there. Outside CI a missing one
/// skips the test with a printed reason (returns `false`); under CI it fails
/// the test.
pub fn require(what: &str, available: Result<(), String>) -> bool {
    match available {
        Ok(()) => true,
        Err(why) if in_ci() => panic!("CI=true and {what} is not available: {why}"),
        Err(why) => {
            eprintln!("SKIPPED: {what} is not available ({why}); set CI=true to make this fail");
            false
        }
    }
}

/// Whether `program args…` runs and exits 0.
pub fn probe(program: &str, args: &[&str]) -> Result<(), String> {
    match Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
    {
        Ok(out) if out.status.success() => Ok(()),
        Ok(out) => Err(format!(
            "`{program} {}` failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Err(e) => Err(format!("cannot run {program}: {e}")),
    }
}

/// A small deterministic generator (SplitMix64), so that every run with the
/// same seed does the same things.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// A number in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    /// True with probability `percent`/100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }
}

/// The ledger binary under test.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_ledger")
}

/// The environment every ledger process gets: clean, `HOME` in the test's
/// temp dir, the clock pinned.
pub fn clean_env(cmd: &mut Command, env: &TestEnv) {
    cmd.env_clear()
        .env("HOME", env.dir.path())
        .env("XDG_DATA_HOME", env.dir.path().join("xdg-data"))
        .env("LEDGER_TEST_CLOCK", CLOCK)
        .current_dir(env.dir.path());
}

/// A `std::process::Command` running the binary on `env`'s journal (for
/// spawning, killing and wrapping, which `assert_cmd` does not do).
pub fn ledger(env: &TestEnv) -> Command {
    let mut cmd = Command::new(bin());
    clean_env(&mut cmd, env);
    cmd.arg("--file").arg(&env.journal);
    cmd
}

/// Longest any single ledger process may take before it counts as a hang.
pub const HANG: Duration = Duration::from_secs(20);

/// Runs `cmd` to completion, failing the test if it takes longer than
/// [`HANG`] (then it is killed).
pub fn run_bounded(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn");
    // Drain the pipes on threads so a chatty child never blocks on them.
    let stdout = child.stdout.take().map(drain);
    let stderr = child.stderr.take().map(drain);
    let status = wait_bounded(&mut child, HANG)
        .unwrap_or_else(|| panic!("{cmd:?} hung for more than {HANG:?}; killed"));
    let join = |h: Option<std::thread::JoinHandle<Vec<u8>>>| {
        h.map(|h| h.join().expect("drain")).unwrap_or_default()
    };
    Output {
        status,
        stdout: join(stdout),
        stderr: join(stderr),
    }
}

/// Waits for `child` for at most `limit`; kills it and returns `None` on
/// timeout.
pub fn wait_bounded(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        match child.try_wait().expect("try_wait") {
            Some(status) => return Some(status),
            None if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
            None => std::thread::sleep(Duration::from_micros(500)),
        }
    }
}

/// Reads a pipe to its end on a thread.
pub fn drain<R: Read + Send + 'static>(mut r: R) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = r.read_to_end(&mut bytes);
        bytes
    })
}

/// Asserts that a process neither panicked nor crashed: an exit code (not
/// a signal), not Rust's 101, and no panic message.
pub fn assert_no_panic(what: &str, out: &Output) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.code().is_some() && out.status.code() != Some(101),
        "{what}: {} ({stderr})",
        out.status
    );
    assert!(
        !stderr.contains("panicked") && !stderr.contains("RUST_BACKTRACE"),
        "{what}: {stderr}"
    );
}

/// Asserts a reader's outcome: exit 0 and nothing on stderr but warnings
/// about an interrupted write, and the notes of a missing or just created
/// journal. Returns how many such warnings there were.
#[track_caller]
pub fn assert_clean_read(what: &str, out: &Output) -> usize {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{what}: {stderr}");
    let mut warnings = 0;
    for line in stderr.lines() {
        if line.starts_with("note: no journal at ") || line.starts_with("created journal ") {
            continue;
        }
        assert!(
            line.starts_with("warning: ") && line.contains("interrupted write"),
            "{what}: unexpected stderr: {stderr}"
        );
        warnings += 1;
    }
    warnings
}

/// A decimal money string at 2 decimals (`"12.34"`) in minor units.
pub fn minor(text: &str) -> i128 {
    let (units, cents) = text.split_once('.').unwrap_or((text, "00"));
    assert_eq!(cents.len(), 2, "{text}");
    units.parse::<i128>().expect("units") * 100 + cents.parse::<i128>().expect("cents")
}

/// Minor units as a 2-decimal amount (`1234` → `"12.34"`).
pub fn amount(minor: u64) -> String {
    format!("{}.{:02}", minor / 100, minor % 100)
}

/// Balances from `balance --json` output, in minor units.
pub fn parse_balances(json: &[u8]) -> HashMap<String, i128> {
    let doc: serde_json::Value = serde_json::from_slice(json).expect("balance json");
    doc["accounts"]
        .as_array()
        .expect("accounts")
        .iter()
        .map(|a| {
            (
                a["account"].as_str().expect("name").to_owned(),
                minor(a["balance"].as_str().expect("balance")),
            )
        })
        .collect()
}

/// The events of a journal's complete lines (header skipped), as JSON.
pub fn events(bytes: &[u8]) -> Vec<serde_json::Value> {
    let end = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    bytes[..end]
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .skip(1)
        .map(|l| serde_json::from_slice(l).expect("event json"))
        .collect()
}

/// Each `id` in the journal with the seqs that carry it.
pub fn ids(bytes: &[u8]) -> HashMap<String, Vec<u64>> {
    let mut ids: HashMap<String, Vec<u64>> = HashMap::new();
    for event in events(bytes) {
        if let Some(id) = event["id"].as_str() {
            ids.entry(id.to_owned())
                .or_default()
                .push(event["seq"].as_u64().expect("seq"));
        }
    }
    ids
}

/// Asserts every acknowledged id is in the journal exactly once.
pub fn assert_each_once(bytes: &[u8], acknowledged: &[String]) {
    let ids = ids(bytes);
    for id in acknowledged {
        assert_eq!(
            ids.get(id).map(Vec::len),
            Some(1),
            "acknowledged {id} is not in the journal exactly once"
        );
    }
}

/// A temporary directory for tests that call the library thousands of
/// times: on tmpfs (`/dev/shm`) when there is one, where `fsync` costs
/// nothing, else the usual temp dir.
pub fn fast_dir() -> tempfile::TempDir {
    tempfile::tempdir_in("/dev/shm")
        .or_else(|_| tempfile::tempdir())
        .expect("temp dir")
}

/// The permission bits of a file.
pub fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o7777
}
