//! The checkpoint beside the journal: used when valid, ignored (and the
//! state rebuilt from the journal) when stale, damaged, another journal's or
//! past a truncated end. Results always equal a full replay.

use std::fs;
use std::path::Path;

use ledger::checkpoint;
use ledger::cmd::{ReplayFrom, replay};
use ledger::domain::{self, State};
use ledger::journal::{Outcome, ReadJournal, Writer};
use proptest::prelude::*;

use crate::common::{TestEnv, create, request};

/// Writes a checkpoint of the state after event `seq`.
pub fn checkpoint_at(path: &Path, seq: u64) {
    let journal = ReadJournal::open(path).unwrap().unwrap();
    let header = journal.header_head().unwrap();
    let mut state = State::default();
    let mut scanner = journal.scanner_from(header);
    while state.seq() < seq {
        let entry = scanner.next(&state).unwrap().unwrap();
        domain::evolve(&mut state, &entry.event);
    }
    checkpoint::store(path, journal.owner(), header, scanner.head(), &state).unwrap();
}

/// The seq a valid checkpoint of the journal covers, if any.
fn checkpoint_seq(path: &Path) -> Option<u64> {
    ReadJournal::open(path)
        .unwrap()
        .unwrap()
        .checkpoint()
        .map(|(state, _)| state.seq())
}

fn full_replay(path: &Path) -> State {
    replay(path, None, ReplayFrom::Start, |_, _| Ok(())).unwrap()
}

/// a: 50 - 10 - 20 + 5 = 25.00, b: 10.00
fn ledger() -> TestEnv {
    TestEnv::with(&[
        "create a",
        "create b",
        "deposit a 50",
        "transfer a b 10",
        "withdraw a 20",
        "deposit a 5",
    ])
}

#[test]
fn a_valid_checkpoint_is_read_instead_of_the_lines_it_covers() {
    let env = ledger();
    checkpoint_at(&env.journal, 5);
    assert_eq!(checkpoint_seq(&env.journal), Some(5));
    // Edit line 4 (seq 3) without changing its length: a full replay refuses
    // the journal, a replay from the checkpoint never reads that line.
    let edited = String::from_utf8(env.bytes()).unwrap().replacen(
        r#""amount":"50.00""#,
        r#""amount":"60.00""#,
        1,
    );
    env.write(edited);
    assert_eq!(env.balance_of("a"), "25.00");
    env.cmd().arg("verify").assert().code(3);
    fs::remove_file(checkpoint::path_of(&env.journal)).unwrap();
    env.cmd().arg("balance").assert().code(3);
}

#[test]
fn a_stale_checkpoint_is_extended_by_the_lines_after_it() {
    let env = ledger();
    checkpoint_at(&env.journal, 3);
    env.ok("withdraw b 4");
    env.ok("create c");
    assert_eq!(checkpoint_seq(&env.journal), Some(3));
    assert_eq!(
        (env.balance_of("a"), env.balance_of("b")),
        ("25.00".into(), "6.00".into())
    );
    assert_eq!(
        env.ok("deposit c 1"),
        "seq 9: deposit 1.00 to c; balance c 1.00\n"
    );
    assert_eq!(
        full_replay(&env.journal).account("c").unwrap().balance.0,
        100
    );
}

#[test]
fn a_damaged_checkpoint_is_ignored() {
    let env = ledger();
    checkpoint_at(&env.journal, 6);
    let path = checkpoint::path_of(&env.journal);
    let good = fs::read(&path).unwrap();
    // a's balance is 2500 minor units in the state line.
    let text = String::from_utf8(good.clone()).unwrap();
    assert!(text.contains(r#""balance":2500"#));
    for damaged in [
        text.replace(r#""balance":2500"#, r#""balance":9500"#)
            .into_bytes(),
        good[..good.len() / 2].to_vec(),
        b"garbage".to_vec(),
        Vec::new(),
    ] {
        fs::write(&path, &damaged).unwrap();
        assert_eq!(checkpoint_seq(&env.journal), None);
        assert_eq!(env.balance_of("a"), "25.00");
        env.ok("deposit b 1");
    }
    assert_eq!(env.balance_of("b"), "14.00");
}

#[test]
fn another_journals_checkpoint_is_ignored() {
    let other = TestEnv::new();
    other.ok("create a");
    other.ok("deposit a 999");
    checkpoint_at(&other.journal, 2);
    let env = ledger();
    fs::copy(
        checkpoint::path_of(&other.journal),
        checkpoint::path_of(&env.journal),
    )
    .unwrap();
    assert_eq!(checkpoint_seq(&env.journal), None);
    assert_eq!(env.balance_of("a"), "25.00");
}

#[test]
fn a_checkpoint_past_a_truncated_journal_is_ignored() {
    let env = ledger();
    checkpoint_at(&env.journal, 6);
    let lines = env.lines();
    env.write(lines[..5].join("\n") + "\n");
    assert_eq!(checkpoint_seq(&env.journal), None);
    // Without seq 5 and 6: a = 50 - 10.
    assert_eq!(env.balance_of("a"), "40.00");
    // The journal was then rewritten to the same length with other content.
    let env = ledger();
    checkpoint_at(&env.journal, 6);
    let text = String::from_utf8(env.bytes()).unwrap();
    env.write(text.replace(r#""amount":"5.00""#, r#""amount":"6.00""#));
    assert_eq!(checkpoint_seq(&env.journal), None);
}

#[test]
fn as_of_before_the_checkpoint_replays_from_the_start() {
    let env = ledger();
    checkpoint_at(&env.journal, 6);
    let at3: serde_json::Value = serde_json::from_str(&env.ok("balance --as-of 3 --json")).unwrap();
    assert_eq!(at3["as_of_seq"], 3);
    assert_eq!(at3["accounts"][0]["balance"], "50.00");
    let at9: serde_json::Value = serde_json::from_str(&env.ok("balance --as-of 9 --json")).unwrap();
    assert_eq!(at9["as_of_seq"], 6);
}

#[test]
fn a_large_replay_leaves_a_checkpoint_behind() {
    let env = TestEnv::new();
    // Enough lines to pass the refresh threshold.
    let lines = checkpoint::REFRESH_BYTES / 100 + 1;
    let mut batch = String::from("create a\n");
    for _ in 0..lines {
        batch.push_str("deposit a 1\n");
    }
    env.cmd()
        .args(["batch", "-"])
        .write_stdin(batch)
        .assert()
        .success();
    assert_eq!(checkpoint_seq(&env.journal), None);
    env.ok("balance");
    assert_eq!(checkpoint_seq(&env.journal), Some(lines + 1));
    assert_eq!(env.balance_of("a"), format!("{lines}.00"));
}

#[derive(Debug, Clone)]
enum Op {
    Deposit(usize, u16),
    Transfer(usize, usize, u16),
    Close(usize),
    /// A hold on one account for another, expiring or not.
    Hold(usize, usize, u16, bool),
    /// Capture or release the event at this seq (if it is a hold).
    Capture(u64),
    Release(u64),
    /// Reverse the event at this seq (if it is a movement).
    Reverse(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..3usize, 1u16..500).prop_map(|(a, c)| Op::Deposit(a, c)),
        (0..3usize, 0..3usize, 1u16..500).prop_map(|(a, b, c)| Op::Transfer(a, b, c)),
        (0..3usize).prop_map(Op::Close),
        (0..3usize, 0..3usize, 1u16..200, any::<bool>())
            .prop_map(|(a, b, c, e)| Op::Hold(a, b, c, e)),
        (1u64..40).prop_map(Op::Capture),
        (1u64..40).prop_map(Op::Release),
        (1u64..40).prop_map(Op::Reverse),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// State from a checkpoint at any seq plus the lines after it equals
    /// the state from a full replay, holds and reversals included.
    #[test]
    fn checkpoint_plus_tail_equals_full_replay(ops in proptest::collection::vec(op(), 1..40), at in 0.0f64..1.0) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.jsonl");
        let names = ["a", "b", "c"];
        let mut writer = Writer::open(&path).unwrap();
        for (i, name) in names.iter().enumerate() {
            let id = format!("create-{i}");
            let request = ledger::domain::Request { id: Some(&id), ..request(create(name)) };
            assert_eq!(writer.apply(&request).unwrap(), Outcome::Appended(i as u64 + 1));
        }
        writer.commit().unwrap();
        drop(writer);
        for op in &ops {
            let amount = |c: u16| ledger::money::Decimal::parse_positive(&format!("{}.{:02}", c / 100, c % 100)).unwrap();
            use ledger::domain::{Command, Target};
            // The library takes the real clock here: an expiry far ahead puts
            // the hold on its account's list of expiring holds all the same.
            let expires = ledger::time::At::parse_instant("2999-01-01T00:00:00Z").ok();
            let command = match *op {
                Op::Deposit(a, c) => Command::Deposit { account: names[a], amount: amount(c) },
                Op::Transfer(a, b, c) => Command::Transfer { from: names[a], to: names[b], amount: amount(c) },
                Op::Close(a) => Command::Close { account: names[a] },
                Op::Hold(a, b, c, e) => Command::Hold {
                    account: names[a],
                    amount: amount(c),
                    to: (a != b).then_some(names[b]),
                    expires: if e { expires } else { None },
                },
                Op::Capture(seq) => Command::Capture { target: Target::Seq(seq), amount: None },
                Op::Release(seq) => Command::Release { target: Target::Seq(seq) },
                Op::Reverse(seq) => Command::Reverse { target: Target::Seq(seq), original: None },
            };
            let mut writer = Writer::open(&path).unwrap();
            let request = request(command);
            if writer.apply(&request).is_ok() {
                writer.commit().unwrap();
            }
        }
        let full = full_replay(&path);
        let k = ((full.seq() as f64) * at) as u64 + 1;
        checkpoint_at(&path, k.min(full.seq()));
        prop_assert_eq!(checkpoint_seq(&path), Some(k.min(full.seq())));
        let cached = replay(&path, None, ReplayFrom::Checkpoint, |_, _| Ok(())).unwrap();
        prop_assert_eq!(cached, full);
    }
}

#[test]
fn a_checkpoint_whose_metadata_or_state_lies_is_ignored() {
    let env = ledger();
    checkpoint_at(&env.journal, 6);
    let path = checkpoint::path_of(&env.journal);
    let good = fs::read_to_string(&path).unwrap();
    let (meta, state) = good.split_once('\n').unwrap();
    let rehash = |state: &str| {
        let hash = crate::common::sha256_hex(state.trim_end().as_bytes());
        let meta: serde_json::Value = serde_json::from_str(meta).unwrap();
        let mut meta = meta.as_object().unwrap().clone();
        meta.insert("state".into(), hash.into());
        format!("{}\n{state}", serde_json::Value::Object(meta))
    };
    // Sanity: re-hashing the untouched state gives a checkpoint that is used.
    fs::write(&path, rehash(state)).unwrap();
    assert_eq!(checkpoint_seq(&env.journal), Some(6));
    for forged in [
        // An earlier time than the line it names: would move --as-of and `at`.
        good.replacen(
            r#""at":"2026-11-26T10:00:00.000000Z""#,
            r#""at":"2025-06-01T00:00:00.000000Z""#,
            1,
        ),
        good.replacen(r#""seq":6"#, r#""seq":5"#, 1),
        // A balance changed and the state hash recomputed: the totals no longer add up.
        rehash(&state.replace(r#""balance":2500"#, r#""balance":9500"#)),
        // A unit index that does not exist.
        rehash(&state.replacen(r#""unit":0"#, r#""unit":7"#, 1)),
    ] {
        assert_ne!(forged, good);
        fs::write(&path, forged).unwrap();
        assert_eq!(checkpoint_seq(&env.journal), None);
        assert_eq!(env.balance_of("a"), "25.00");
    }
}
