//! A write cut at every byte (promise 3). A journal whose last append (a
//! three-event batch) is cut at any byte offset reads as the journal before
//! that append, with one warning (none when the cut is exactly before the
//! append or after its end); the next write moves the cut bytes to
//! `journal.jsonl.torn`, appends, and the chain verifies.
//!
//! Three ways to cut: by hand at every byte, checked through the library
//! (fast); the same files through the binary at a sample of offsets (every
//! offset under `LEDGER_SOAK=1`); and real `ledger batch` processes cut by
//! `prlimit --fsize`, which first proves that a real cut write leaves
//! exactly the bytes the hand-made cuts assume. With SIGXFSZ ignored the
//! same limit makes the write fail instead: exit 4 and the journal back to
//! its old length (promise 4).

use std::fs;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::Command;

use ledger::domain::{self, Command as Op, Request, State};
use ledger::journal::scan::Torn;
use ledger::journal::{Outcome, ReadJournal, Writer};

use super::{
    assert_clean_read, bin, clean_env, fast_dir, ids, mode, probe, require, run_bounded, soak,
};
use crate::common::{TestEnv, create, request};

/// The batch every test here appends (and cuts).
const BATCH: &str = "deposit a 1.50 --id t1 --memo 'torn test'\n\
                     transfer a b 2 --id t2\n\
                     withdraw b 1 --id t3\n";

/// A journal before and after the batch.
struct Cut {
    /// The journal before the batch (its valid prefix).
    base: Vec<u8>,
    /// The journal after the batch.
    full: Vec<u8>,
    base_balance: String,
    full_balance: String,
    base_history: String,
    full_history: String,
}

impl Cut {
    /// Builds the journals with the binary: with `accounts`, a few events
    /// first; without, the batch creates the journal (header included).
    fn new(accounts: bool) -> Cut {
        let env = TestEnv::new();
        if accounts {
            for args in ["create a", "create b", "deposit a 100", "transfer a b 10"] {
                env.ok(args);
            }
        }
        let base = env.bytes();
        let (base_balance, base_history) = (env.ok("balance --json"), env.ok("history --json"));
        let batch = env.dir.path().join("batch.txt");
        let text = if accounts {
            BATCH.to_owned()
        } else {
            "create a\ncreate b\ndeposit a 10\n".to_owned() + BATCH
        };
        fs::write(&batch, text).expect("batch");
        env.ok(&format!("batch {}", batch.display()));
        let full = env.bytes();
        assert!(full.starts_with(&base));
        Cut {
            base,
            full_balance: env.ok("balance --json"),
            full_history: env.ok("history --json"),
            full,
            base_balance,
            base_history,
        }
    }

    /// The length of the append.
    fn len(&self) -> usize {
        self.full.len() - self.base.len()
    }

    /// The file cut `k` bytes into the append.
    fn at(&self, k: usize) -> &[u8] {
        &self.full[..self.base.len() + k]
    }

    /// The valid part of the file cut `k` bytes in: the journal before the
    /// append, its header alone when the append created the journal and the
    /// cut came after the header's `\n`, or everything when nothing was cut.
    fn kept(&self, k: usize) -> &[u8] {
        let header = self.full.iter().position(|&b| b == b'\n').expect("header") + 1;
        if k == self.len() {
            &self.full
        } else if self.base.is_empty() && k >= header {
            &self.full[..header]
        } else {
            &self.base
        }
    }

    /// Whether a cut `k` bytes in leaves a complete journal (no torn tail).
    fn whole(&self, k: usize) -> bool {
        self.kept(k).len() == self.at(k).len()
    }

    /// Offsets to try with the binary: the edges, every line boundary and
    /// its neighbours, and every `step`-th byte (every byte when soaking).
    fn sample(&self, step: usize) -> Vec<usize> {
        let step = if soak() > 1 { 1 } else { step };
        let mut offsets: Vec<usize> = (0..=self.len()).step_by(step).collect();
        for (i, &b) in self.full[self.base.len()..].iter().enumerate() {
            if b == b'\n' {
                offsets.extend([i, i + 1, i + 2]);
            }
        }
        offsets.extend([1, self.len().saturating_sub(1), self.len()]);
        offsets.retain(|&k| k <= self.len());
        offsets.sort_unstable();
        offsets.dedup();
        offsets
    }
}

/// Reads a journal through the library: its state and torn tail.
fn read(path: &Path) -> (State, Option<Torn>) {
    let journal = ReadJournal::open(path).expect("open").expect("exists");
    let Some(mut scanner) = journal.scanner() else {
        return (State::default(), journal.torn_header());
    };
    let mut state = State::default();
    while let Some(entry) = scanner.next(&mut state, None).expect("valid journal") {
        domain::evolve(&mut state, &entry.event);
    }
    (state, scanner.torn())
}

/// Appends one deposit through the library, as a write command does.
fn repair(path: &Path) {
    let mut writer = Writer::open(path).expect("open for writing");
    let request = Request {
        id: Some("repair"),
        ..request(create("repair"))
    };
    assert!(matches!(writer.apply(&request), Ok(Outcome::Appended(_))));
    writer.commit().expect("commit");
}

fn torn_path(path: &Path) -> std::path::PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".torn");
    name.into()
}

/// What `.torn` must hold after quarantining `bytes`: them, with a `\n`.
fn quarantined(bytes: &[u8]) -> Vec<u8> {
    let mut q = bytes.to_vec();
    if !q.ends_with(b"\n") {
        q.push(b'\n');
    }
    q
}

/// Every cut, checked through the library: state, torn tail, repair.
fn every_byte(cut: &Cut) {
    let dir = fast_dir();
    let path = dir.path().join("journal.jsonl");
    let whole_state = |bytes: &[u8]| {
        fs::write(&path, bytes).expect("write");
        let (state, torn) = read(&path);
        assert_eq!(torn, None);
        state
    };
    let (base_state, full_state) = (whole_state(&cut.base), whole_state(&cut.full));
    for k in 0..=cut.len() {
        let _ = fs::remove_file(torn_path(&path));
        let bytes = cut.at(k);
        fs::write(&path, bytes).expect("write cut");
        let (state, torn) = read(&path);
        if k == cut.len() {
            assert_eq!((&state, torn), (&full_state, None), "cut at {k}");
        } else {
            assert_eq!(state, base_state, "cut at {k}: state");
            let kept = cut.kept(k);
            let expected = (!cut.whole(k)).then(|| Torn {
                offset: kept.len() as u64,
                len: (bytes.len() - kept.len()) as u64,
                line: kept.iter().filter(|&&b| b == b'\n').count() as u64 + 1,
            });
            assert_eq!(torn, expected, "cut at {k}");
        }

        repair(&path);
        let after = fs::read(&path).expect("read");
        let kept = cut.kept(k);
        if kept.is_empty() {
            // A cut header: the repair wrote a new journal from scratch.
            assert!(after.starts_with(br#"{"format":"ledger-journal""#));
        } else {
            assert!(after.starts_with(kept), "cut at {k}: valid lines changed");
        }
        let (state, torn) = read(&path);
        assert_eq!(torn, None, "cut at {k}: the repair left a torn tail");
        assert_eq!(ids(&after).get("repair").map(Vec::len), Some(1));
        let expected_seq = if k == cut.len() {
            full_state.seq()
        } else {
            base_state.seq()
        };
        assert_eq!(state.seq(), expected_seq + 1, "cut at {k}");
        let q = fs::read(torn_path(&path)).ok();
        if cut.whole(k) {
            assert_eq!(q, None, "cut at {k}: nothing to quarantine");
        } else {
            assert_eq!(
                q.as_deref(),
                Some(&*quarantined(&bytes[kept.len()..])),
                "cut at {k}: .torn"
            );
            assert_eq!(mode(&torn_path(&path)), 0o600);
        }
    }
}

#[test]
fn a_batch_cut_at_every_byte_reads_as_before_and_is_repaired_library() {
    every_byte(&Cut::new(true));
}

#[test]
fn a_new_journal_cut_at_every_byte_reads_as_empty_and_is_repaired_library() {
    every_byte(&Cut::new(false));
}

/// Checks a journal holding `cut.at(k)` through the binary: readers, the
/// repairing write, `.torn`, verify.
fn check_with_binary(cut: &Cut, env: &TestEnv, k: usize) {
    let whole = cut.whole(k);
    let (balance, history) = if k == cut.len() {
        (&cut.full_balance, &cut.full_history)
    } else {
        (&cut.base_balance, &cut.base_history)
    };
    let expect_warning = usize::from(!whole);
    for args in [&["balance", "--json"][..], &["history", "--json"]] {
        let out = env.cmd().args(args).output().expect("run");
        assert_eq!(
            assert_clean_read(&format!("cut at {k}: {args:?}"), &out),
            expect_warning,
            "cut at {k}: {args:?}"
        );
        let want = if args[0] == "balance" {
            balance
        } else {
            history
        };
        assert_eq!(
            &String::from_utf8_lossy(&out.stdout),
            want,
            "cut at {k}: {args:?}"
        );
    }
    assert_eq!(
        env.bytes(),
        cut.at(k),
        "cut at {k}: a reader changed the file"
    );

    let out = env
        .cmd()
        .args(["deposit", "a", "5", "--id", "repair"])
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    if cut.base.is_empty() && k < cut.len() {
        // No account a yet: refused, and the torn tail stays where it was.
        assert_eq!(out.status.code(), Some(1), "cut at {k}: {stderr}");
        assert_eq!(
            env.bytes(),
            cut.at(k),
            "cut at {k}: a refused write changed the file"
        );
        env.ok("create a");
    } else {
        assert_eq!(out.status.code(), Some(0), "cut at {k}: {stderr}");
        assert_eq!(
            stderr.lines().count(),
            expect_warning,
            "cut at {k}: {stderr}"
        );
        if !whole {
            assert!(stderr.contains("removed an interrupted write"), "{stderr}");
        }
    }
    let kept = cut.kept(k);
    assert!(
        env.bytes().starts_with(kept),
        "cut at {k}: valid lines changed"
    );
    let q = fs::read(env.beside(".torn")).ok();
    if whole {
        assert_eq!(q, None, "cut at {k}");
    } else {
        assert_eq!(
            q.as_deref(),
            Some(&*quarantined(&cut.at(k)[kept.len()..])),
            "cut at {k}: .torn"
        );
    }
    let out = env.cmd().arg("verify").output().expect("run");
    assert_eq!(assert_clean_read(&format!("cut at {k}: verify"), &out), 0);
}

#[test]
fn a_batch_cut_at_sampled_bytes_reads_as_before_and_is_repaired_binary() {
    let cut = Cut::new(true);
    for k in cut.sample(19) {
        let env = TestEnv::new();
        env.write(cut.at(k));
        check_with_binary(&cut, &env, k);
    }
}

#[test]
fn a_new_journal_cut_at_sampled_bytes_is_repaired_binary() {
    let cut = Cut::new(false);
    for k in cut.sample(97) {
        let env = TestEnv::new();
        env.write(cut.at(k));
        check_with_binary(&cut, &env, k);
    }
}

fn prlimit_works() -> Result<(), String> {
    probe("prlimit", &["--fsize=100000", "--", "true"])
}

/// `ledger batch` with the file size limited to `limit` bytes, SIGXFSZ
/// either left to kill it or ignored (then the write fails with EFBIG).
fn limited_batch(env: &TestEnv, limit: usize, ignore_sigxfsz: bool) -> std::process::Output {
    let batch = env.dir.path().join("batch.txt");
    fs::write(&batch, BATCH).expect("batch file");
    let mut cmd = Command::new("sh");
    clean_env(&mut cmd, env);
    let trap = if ignore_sigxfsz { "trap '' XFSZ; " } else { "" };
    cmd.arg("-c")
        .arg(format!(
            "{trap}exec prlimit --fsize={limit} -- \"$0\" \"$@\""
        ))
        .arg(bin())
        .arg("--file")
        .arg(&env.journal)
        .arg("batch")
        .arg(&batch);
    run_bounded(&mut cmd)
}

#[test]
fn a_real_batch_cut_by_the_file_size_limit_leaves_a_repairable_torn_tail() {
    if !require("prlimit", prlimit_works()) {
        return;
    }
    let cut = Cut::new(true);
    let mut kills = 0;
    for k in cut.sample(23) {
        let env = TestEnv::new();
        env.write(&cut.base);
        let out = limited_batch(&env, cut.base.len() + k, false);
        if k == cut.len() {
            assert_eq!(
                out.status.code(),
                Some(0),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        } else {
            // SIGXFSZ (25) kills the process in the middle of its write.
            assert_eq!(
                out.status.signal(),
                Some(25),
                "cut at {k}: {:?}",
                out.status
            );
            kills += 1;
        }
        assert_eq!(
            env.bytes(),
            cut.at(k),
            "cut at {k}: a real cut write is not the prefix the hand-made cuts assume"
        );
        check_with_binary(&cut, &env, k);
        // The interrupted batch was never acknowledged; re-running it with
        // the same ids now succeeds, once.
        if k < cut.len() {
            let out = limited_batch(&env, 1 << 30, false);
            assert_eq!(
                out.status.code(),
                Some(0),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let found = ids(&env.bytes());
            for id in ["t1", "t2", "t3", "repair"] {
                assert_eq!(found.get(id).map(Vec::len), Some(1), "cut at {k}: {id}");
            }
        }
    }
    assert!(kills > 10);
}

#[test]
fn a_write_that_fails_part_way_is_truncated_back_and_exits_4() {
    if !require("prlimit", prlimit_works()) {
        return;
    }
    let cut = Cut::new(true);
    let step = (cut.len() / 12).max(1);
    for k in (0..cut.len()).step_by(if soak() > 1 { 1 } else { step }) {
        let env = TestEnv::new();
        env.write(&cut.base);
        let out = limited_batch(&env, cut.base.len() + k, true);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(4), "cut at {k}: {stderr}");
        assert!(
            stderr.starts_with("error: cannot write ") && stderr.contains("File too large"),
            "cut at {k}: {stderr}"
        );
        assert_eq!(
            env.bytes(),
            cut.base,
            "cut at {k}: a partial line was left behind"
        );
        let out = env.cmd().args(["balance", "--json"]).output().expect("run");
        assert_eq!(assert_clean_read("balance", &out), 0);
    }
}

/// A batch of 20 000 events (about 9 MiB: more than one read chunk, and
/// large enough that replay hashes on its reader thread) cut at random
/// offsets, through the library: the state is the one before the batch,
/// the whole batch is the torn tail, and the next write removes it.
#[test]
fn a_large_batch_cut_anywhere_reads_as_before_library() {
    let seed = super::seed(0x5eed_0007);
    let mut rng = super::Rng::new(seed);
    let dir = fast_dir();
    let path = dir.path().join("journal.jsonl");
    let mut writer = Writer::open(&path).expect("open");
    writer.apply(&request(create("a"))).expect("create");
    writer.commit().expect("commit");
    drop(writer);
    let base = fs::read(&path).expect("base");
    let memo = "m".repeat(400);
    let mut writer = Writer::open(&path).expect("open");
    for _ in 0..20_000 {
        let deposit = Request {
            memo: Some(&memo),
            ..request(Op::Deposit {
                account: "a",
                amount: ledger::money::Decimal::parse_positive("1").expect("amount"),
            })
        };
        writer.apply(&deposit).expect("deposit");
    }
    writer.commit().expect("commit");
    drop(writer);
    let full = fs::read(&path).expect("full");
    let appended = full.len() - base.len();
    assert!(appended > 8 << 20);
    let (base_state, _) = {
        fs::write(&path, &base).expect("write");
        read(&path)
    };
    let cuts = if soak() > 1 { 12 } else { 1 };
    for _ in 0..cuts {
        let k = 1 + rng.below(appended as u64 - 1) as usize;
        let _ = fs::remove_file(torn_path(&path));
        fs::write(&path, &full[..base.len() + k]).expect("cut");
        let (state, torn) = read(&path);
        assert_eq!(state, base_state, "seed {seed}: cut at {k}");
        assert_eq!(
            torn.map(|t| (t.offset, t.len)),
            Some((base.len() as u64, k as u64)),
            "seed {seed}: cut at {k}"
        );
        repair(&path);
        let (state, torn) = read(&path);
        assert_eq!((state.seq(), torn), (base_state.seq() + 1, None));
        assert_eq!(
            fs::read(torn_path(&path)).expect(".torn"),
            quarantined(&full[base.len()..base.len() + k]),
            "seed {seed}: cut at {k}"
        );
    }
}
