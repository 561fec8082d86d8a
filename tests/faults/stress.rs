//! Concurrency stress (promise 2, and 1 for writers that all finish): a
//! dozen processes doing random transfers, deposits, withdrawals, batches,
//! `--expect-seq` writes and `--id` retries on five accounts, with readers
//! running alongside. Afterwards every command that exited 0 is in the
//! journal exactly once (and every refused one is not), each batch is one
//! contiguous run of lines, money is conserved, no balance is negative, and
//! `verify` passes. Readers never see an error or a torn tail: they share
//! the lock, so they never catch a write half done.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;

use super::{
    Rng, amount, assert_clean_read, assert_each_once, events, ids, ledger, parse_balances,
    run_bounded, seed, soak,
};
use crate::common::TestEnv;

const ACCOUNTS: [&str; 5] = ["a", "b", "c", "d", "e"];
/// Each account starts with 100.00.
const START: i128 = 10_000;
const WRITERS: usize = 12;
const OPS_EACH: usize = 12;
const READERS: usize = 2;

/// What one writer saw.
#[derive(Default)]
struct Log {
    /// Ids of commands that exited 0.
    acknowledged: Vec<String>,
    /// Ids of commands refused (exit 1): they must not be in the journal.
    refused: Vec<String>,
    /// The ids of each acknowledged batch, in order.
    batches: Vec<Vec<String>>,
    /// Acknowledged `--expect-seq N` writes: (id, N).
    expected: Vec<(String, u64)>,
    deposited: i128,
    withdrawn: i128,
    retries: usize,
}

/// One command a writer may re-run later with the same `--id`s.
struct Done {
    args: Vec<String>,
}

fn writer(env: &TestEnv, w: usize, seed: u64, ops: usize) -> Log {
    let mut rng = Rng::new(seed ^ (w as u64).wrapping_mul(0x1000_0000_01b3));
    let mut log = Log::default();
    let mut done: Vec<Done> = Vec::new();
    for i in 0..ops {
        let id = format!("w{w}-{i}");
        let roll = rng.below(100);
        if roll < 10 && !done.is_empty() {
            // A retry of an acknowledged command: exit 0, nothing written.
            let again = &done[rng.below(done.len() as u64) as usize];
            let out = run_bounded(ledger(env).args(&again.args));
            assert_eq!(
                out.status.code(),
                Some(0),
                "retry {:?}: {}",
                again.args,
                String::from_utf8_lossy(&out.stderr)
            );
            log.retries += 1;
            continue;
        }
        if roll < 20 {
            // Optimistic concurrency: read the seq, then write only if the
            // journal has not moved on.
            let read = run_bounded(ledger(env).args(["balance", "--json"]));
            assert_clean_read("balance", &read);
            let doc: serde_json::Value = serde_json::from_slice(&read.stdout).expect("json");
            let seen = doc["as_of_seq"].as_u64().expect("as_of_seq");
            let args = vec![
                "deposit".into(),
                (rng.pick(&ACCOUNTS)).into(),
                "0.01".into(),
                "--expect-seq".into(),
                seen.to_string(),
                "--id".into(),
                id.clone(),
            ];
            let out = run_bounded(ledger(env).args(&args));
            let stderr = String::from_utf8_lossy(&out.stderr);
            match out.status.code() {
                Some(0) => {
                    log.acknowledged.push(id.clone());
                    log.expected.push((id, seen));
                    log.deposited += 1;
                }
                Some(1) => {
                    assert!(stderr.contains("journal moved on"), "{stderr}");
                    log.refused.push(id);
                }
                other => panic!("{args:?}: {other:?}: {stderr}"),
            }
            continue;
        }
        let (args, lines) = if roll < 50 {
            // A batch of 2-6 moves, all or nothing.
            let n = rng.range(2, 6) as usize;
            let mut text = String::new();
            let mut lines = Vec::new();
            for k in 0..n {
                let line_id = format!("{id}-{k}");
                let (line, dep, wd) = random_move(&mut rng, &line_id);
                text.push_str(&line);
                text.push('\n');
                lines.push((line_id, dep, wd));
            }
            let file = env.dir.path().join(format!("batch-{w}-{i}.txt"));
            std::fs::write(&file, text).expect("batch file");
            (vec!["batch".to_owned(), file.display().to_string()], lines)
        } else {
            let (line, dep, wd) = random_move(&mut rng, &id);
            let args = shell_words::split(&line).expect("words");
            (args, vec![(id.clone(), dep, wd)])
        };
        let out = run_bounded(ledger(env).args(&args));
        let stderr = String::from_utf8_lossy(&out.stderr);
        match out.status.code() {
            Some(0) => {
                assert!(stderr.is_empty(), "{args:?}: {stderr}");
                for (line_id, dep, wd) in &lines {
                    log.acknowledged.push(line_id.clone());
                    log.deposited += dep;
                    log.withdrawn += wd;
                }
                if args[0] == "batch" {
                    log.batches
                        .push(lines.iter().map(|l| l.0.clone()).collect());
                }
                done.push(Done { args });
            }
            Some(1) => {
                assert!(stderr.contains("insufficient funds"), "{args:?}: {stderr}");
                log.refused.extend(lines.into_iter().map(|l| l.0));
            }
            other => panic!("{args:?}: {other:?}: {stderr}"),
        }
    }
    log
}

/// A random transfer, deposit or withdrawal line with `--id id`; returns
/// it with the minor units it deposits and withdraws.
fn random_move(rng: &mut Rng, id: &str) -> (String, i128, i128) {
    // Large enough that some moves must be refused for want of funds.
    let cents = rng.range(1, 6_000);
    let money = amount(cents);
    let from = rng.pick(&ACCOUNTS);
    match rng.below(10) {
        0..=5 => {
            let mut to = rng.pick(&ACCOUNTS);
            while to == from {
                to = rng.pick(&ACCOUNTS);
            }
            (format!("transfer {from} {to} {money} --id {id}"), 0, 0)
        }
        6..=7 => (
            format!("deposit {from} {money} --id {id} --memo 'stress {id}'"),
            i128::from(cents),
            0,
        ),
        _ => (
            format!("withdraw {from} {money} --id {id}"),
            0,
            i128::from(cents),
        ),
    }
}

/// Reads in a loop until told to stop: every read exits 0 with an empty
/// stderr, balances are never negative and never go back in time, and
/// history is always a contiguous run of seqs.
fn reader(env: &TestEnv, r: usize, stop: &AtomicBool) -> usize {
    let mut last_seq = 0;
    let mut reads = 0;
    while !stop.load(Ordering::Relaxed) {
        let which = (reads + r) % 4;
        let args: &[&str] = match which {
            0 | 2 => &["balance", "--json"],
            1 => &["history", "--json"],
            _ => &["history", "a", "--json"],
        };
        let out = run_bounded(ledger(env).args(args));
        assert_eq!(
            assert_clean_read(&format!("{args:?}"), &out),
            0,
            "a reader saw a torn tail while writers were running: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        match which {
            0 | 2 => {
                let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
                let seq = doc["as_of_seq"].as_u64().expect("seq");
                assert!(
                    seq >= last_seq,
                    "balance went back from {last_seq} to {seq}"
                );
                last_seq = seq;
                for (name, balance) in parse_balances(&out.stdout) {
                    assert!(balance >= 0, "{name} is negative: {balance}");
                }
            }
            1 => {
                let seqs: Vec<u64> = String::from_utf8_lossy(&out.stdout)
                    .lines()
                    .map(|l| {
                        serde_json::from_str::<serde_json::Value>(l).expect("json")["seq"]
                            .as_u64()
                            .expect("seq")
                    })
                    .collect();
                assert_eq!(
                    seqs,
                    (1..=seqs.len() as u64).collect::<Vec<_>>(),
                    "history is not contiguous"
                );
            }
            _ => {}
        }
        reads += 1;
    }
    reads
}

#[test]
fn many_writers_and_readers_never_lose_double_spend_or_interleave() {
    let seed = seed(0x5eed_0002);
    let ops = OPS_EACH * soak();
    let env = TestEnv::new();
    for a in ACCOUNTS {
        env.ok(&format!("create {a}"));
        env.ok(&format!("deposit {a} {}", amount(START as u64)));
    }
    let stop = AtomicBool::new(false);
    let (logs, reads) = thread::scope(|s| {
        let readers: Vec<_> = (0..READERS)
            .map(|r| {
                let (env, stop) = (&env, &stop);
                s.spawn(move || reader(env, r, stop))
            })
            .collect();
        let writers: Vec<_> = (0..WRITERS)
            .map(|w| {
                let env = &env;
                s.spawn(move || writer(env, w, seed, ops))
            })
            .collect();
        let logs: Vec<Log> = writers
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| panic!("seed {seed}: a writer failed"))
            })
            .collect();
        stop.store(true, Ordering::Relaxed);
        let reads: usize = readers
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| panic!("seed {seed}: a reader failed"))
            })
            .sum();
        (logs, reads)
    });

    let bytes = env.bytes();
    let acknowledged: Vec<String> = logs.iter().flat_map(|l| l.acknowledged.clone()).collect();
    assert_each_once(&bytes, &acknowledged);
    let found = ids(&bytes);
    for id in logs.iter().flat_map(|l| &l.refused) {
        assert!(!found.contains_key(id), "refused {id} was written");
    }
    let known: HashSet<&String> = acknowledged.iter().collect();
    for id in found.keys() {
        assert!(
            known.contains(id),
            "{id} is in the journal but was never acknowledged"
        );
    }

    // Lines are never interleaved: seqs are contiguous, and every batch is
    // one run of consecutive seqs whose first line carries its count.
    let events = events(&bytes);
    let by_seq: HashMap<u64, &serde_json::Value> = events
        .iter()
        .enumerate()
        .map(|(i, e)| {
            assert_eq!(e["seq"], i as u64 + 1, "seq out of order");
            (i as u64 + 1, e)
        })
        .collect();
    for batch in logs.iter().flat_map(|l| &l.batches) {
        let first = found[&batch[0]][0];
        assert_eq!(by_seq[&first]["batch"], batch.len(), "{batch:?}");
        for (k, id) in batch.iter().enumerate() {
            assert_eq!(
                found[id][0],
                first + k as u64,
                "batch {batch:?} interleaved"
            );
        }
    }
    for (id, seen) in logs.iter().flat_map(|l| &l.expected) {
        assert_eq!(
            found[id][0],
            seen + 1,
            "--expect-seq {seen} wrote elsewhere"
        );
    }

    // Money is conserved and nothing is negative.
    let deposited: i128 = logs.iter().map(|l| l.deposited).sum();
    let withdrawn: i128 = logs.iter().map(|l| l.withdrawn).sum();
    let balances = parse_balances(env.ok("balance --json").as_bytes());
    assert!(balances.values().all(|&b| b >= 0), "{balances:?}");
    assert_eq!(
        balances.values().sum::<i128>(),
        START * ACCOUNTS.len() as i128 + deposited - withdrawn,
        "money was created or destroyed"
    );
    let verify = run_bounded(ledger(&env).arg("verify"));
    assert_eq!(assert_clean_read("verify", &verify), 0);

    let refused: usize = logs.iter().map(|l| l.refused.len()).sum();
    let retries: usize = logs.iter().map(|l| l.retries).sum();
    eprintln!(
        "stress (seed {seed}): {} events acknowledged, {refused} refused, {retries} retries, \
         {} batches, {reads} concurrent reads",
        acknowledged.len(),
        logs.iter().map(|l| l.batches.len()).sum::<usize>(),
    );
    assert!(
        refused > 0,
        "no move was ever refused: the test is too gentle"
    );
}
