//! Crash loop (promises 1 and 3): single writes and batches, one to three at
//! a time, killed with SIGKILL at random moments, hundreds of times. After
//! every round the journal reads (exit 0, at most a torn-tail warning);
//! killed commands are sometimes re-run with the same `--id`s, which must
//! succeed or be refused cleanly; at the end `verify` passes and every
//! command that exited 0 is in the journal exactly once.

use std::fs::{self, File};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use super::{
    Rng, amount, assert_clean_read, assert_each_once, ids, ledger, mode, parse_balances,
    run_bounded, seed, soak,
};
use crate::common::TestEnv;

const ACCOUNTS: [&str; 3] = ["a", "b", "c"];
const ROUNDS: usize = 100;

/// A write command and the ids it carries.
#[derive(Clone)]
struct Write {
    args: Vec<String>,
    ids: Vec<String>,
}

fn random_write(env: &TestEnv, rng: &mut Rng, name: &str) -> Write {
    let line = |rng: &mut Rng, id: &str| {
        let from = rng.pick(&ACCOUNTS);
        let to = ACCOUNTS
            .iter()
            .find(|&&a| a != from && rng.chance(50))
            .copied()
            .unwrap_or(if from == "a" { "b" } else { "a" });
        let money = amount(rng.range(1, 500));
        // Memos of varying length make appends of very different sizes.
        let memo = "m".repeat(rng.below(300) as usize);
        match rng.below(4) {
            0 => format!("transfer {from} {to} {money} --id {id}"),
            1 => format!("withdraw {from} {money} --id {id}"),
            _ => format!("deposit {from} {money} --id {id} --memo 'x{memo}'"),
        }
    };
    if rng.chance(50) {
        let text = line(rng, name);
        Write {
            args: shell_words::split(&text).expect("words"),
            ids: vec![name.to_owned()],
        }
    } else {
        let n = rng.range(2, 25);
        let ids: Vec<String> = (0..n).map(|k| format!("{name}-{k}")).collect();
        let text: String = ids.iter().map(|id| line(rng, id) + "\n").collect();
        let file = env.dir.path().join(format!("{name}.batch"));
        fs::write(&file, text).expect("batch file");
        Write {
            args: vec!["batch".into(), file.display().to_string()],
            ids,
        }
    }
}

/// Starts `write` with stderr into a file.
fn spawn(env: &TestEnv, write: &Write, slot: usize) -> Child {
    let err = File::create(env.dir.path().join(format!("stderr-{slot}"))).expect("stderr file");
    ledger(env)
        .args(&write.args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(err)
        .spawn()
        .expect("spawn ledger")
}

fn stderr_of(env: &TestEnv, slot: usize) -> String {
    fs::read_to_string(env.dir.path().join(format!("stderr-{slot}"))).unwrap_or_default()
}

#[derive(Default)]
struct Tally {
    acknowledged: Vec<String>,
    refused: Vec<String>,
    killed: usize,
    retried: usize,
    torn_warnings: usize,
}

impl Tally {
    /// Records how a write that ran ended; `None` for a kill.
    fn record(&mut self, write: &Write, code: Option<i32>, stderr: &str) -> bool {
        match code {
            Some(0) => self.acknowledged.extend(write.ids.iter().cloned()),
            Some(1) => {
                assert!(
                    stderr.contains("insufficient funds"),
                    "{:?}: {stderr}",
                    write.args
                );
                self.refused.extend(write.ids.iter().cloned());
            }
            None => {
                self.killed += 1;
                return true;
            }
            Some(other) => panic!("{:?} exited {other}: {stderr}", write.args),
        }
        false
    }
}

#[test]
fn writers_killed_at_random_moments_never_lose_an_acknowledged_event() {
    let seed = seed(0x5eed_0003);
    let mut rng = Rng::new(seed);
    let env = TestEnv::new();
    for a in ACCOUNTS {
        env.ok(&format!("create {a}"));
        env.ok(&format!("deposit {a} 1000"));
    }
    // With a read model, which every kill may leave behind the journal or
    // half written (a journal this small gets none by itself).
    crate::readmodel::model_at(&env.journal, 2 * ACCOUNTS.len() as u64);
    let mut tally = Tally::default();
    let mut killed: Vec<Write> = Vec::new();
    let rounds = ROUNDS * soak();
    let mut n = 0;
    for round in 0..rounds {
        // Sometimes re-run a killed command to completion: re-running with
        // the same --id is always safe.
        if !killed.is_empty() && rng.chance(20) {
            let write = killed.swap_remove(rng.below(killed.len() as u64) as usize);
            let out = run_bounded(ledger(&env).args(&write.args));
            let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
            assert!(
                !tally.record(&write, out.status.code(), &stderr),
                "seed {seed}: retry killed by a signal: {stderr}"
            );
            tally.retried += 1;
        }
        // One to three writers at once, each killed at its own moment
        // (most between 0 and 12 ms, some up to 30 ms; a run takes ~5 ms).
        let writes: Vec<Write> = (0..rng.range(1, 3))
            .map(|_| {
                n += 1;
                random_write(&env, &mut rng, &format!("r{n}"))
            })
            .collect();
        let start = Instant::now();
        let mut running: Vec<(Child, Duration)> = writes
            .iter()
            .enumerate()
            .map(|(slot, w)| {
                let limit = if rng.chance(15) { 30_000 } else { 12_000 };
                (
                    spawn(&env, w, slot),
                    Duration::from_micros(rng.below(limit)),
                )
            })
            .collect();
        let mut order: Vec<usize> = (0..running.len()).collect();
        order.sort_by_key(|&i| running[i].1);
        for i in order {
            let (child, at) = &mut running[i];
            if let Some(wait) = at.checked_sub(start.elapsed()) {
                std::thread::sleep(wait);
            }
            let _ = child.kill();
        }
        for (slot, (write, (child, _))) in writes.iter().zip(&mut running).enumerate() {
            use std::os::unix::process::ExitStatusExt;
            let status = child.wait().expect("wait");
            if status.signal().is_some_and(|s| s != 9) {
                panic!("seed {seed}: {:?} died: {status}", write.args);
            }
            if tally.record(write, status.code(), &stderr_of(&env, slot)) {
                killed.push(write.clone());
            }
        }
        // Whatever the kill interrupted, the journal reads.
        let out = run_bounded(ledger(&env).args(["balance", "--json"]));
        tally.torn_warnings += assert_clean_read(&format!("seed {seed} round {round}"), &out);
        for (name, balance) in parse_balances(&out.stdout) {
            assert!(balance >= 0, "seed {seed}: {name} is negative");
        }
        if round % 25 == 24 {
            let out = run_bounded(ledger(&env).args(["history", "--json"]));
            assert_clean_read(&format!("seed {seed} round {round}: history"), &out);
            let out = run_bounded(ledger(&env).arg("verify"));
            assert_clean_read(&format!("seed {seed} round {round}: verify"), &out);
        }
    }

    // A last write repairs any torn tail; then verify passes without warnings.
    env.ok("deposit a 1 --id final");
    tally.acknowledged.push("final".into());
    let out = run_bounded(ledger(&env).arg("verify"));
    assert_eq!(assert_clean_read("final verify", &out), 0, "seed {seed}");
    let bytes = env.bytes();
    assert_each_once(&bytes, &tally.acknowledged);
    let found = ids(&bytes);
    for id in &tally.refused {
        assert!(
            !found.contains_key(id),
            "seed {seed}: refused {id} was written"
        );
    }
    if env.beside(".torn").exists() {
        assert_eq!(mode(&env.beside(".torn")), 0o600);
    }
    // The model rode along every kill, and agrees with a full replay.
    assert!(ledger::readmodel::path_of(&env.journal).exists());
    let balances = |what: &str| {
        let out = run_bounded(ledger(&env).args(["balance", "--json"]));
        assert_clean_read(what, &out);
        out.stdout
    };
    let with_model = balances("balance with the model");
    crate::readmodel::remove_model(&env.journal);
    assert_eq!(
        with_model,
        balances("balance replayed"),
        "seed {seed}: the model disagrees with the journal"
    );
    eprintln!(
        "crash loop (seed {seed}): {rounds} rounds, {} writes killed, {} retried, {} events \
         acknowledged, {} refused, {} torn-tail warnings, {} events in the journal",
        tally.killed,
        tally.retried,
        tally.acknowledged.len(),
        tally.refused.len(),
        tally.torn_warnings,
        found.len(),
    );
    assert!(tally.killed > rounds / 4, "too few kills: {}", tally.killed);
}
