//! `balance` of every account streamed from the read model: the same
//! bytes as the full replay in every format, whatever state the model is
//! in (missing, stale with a tail, damaged, at any seq).

use proptest::prelude::*;

use crate::common::TestEnv;
use crate::readmodel::{
    lose_page_of, model_at, model_seq, op, remove_model, run_ops, set_page_byte, tamper,
};

const FORMATS: [&str; 3] = ["table", "json", "csv"];

/// Two currencies, owners (one that CSV must quote), a closed account, an
/// open hold, one expiring within the hour and one captured.
fn ledger() -> TestEnv {
    TestEnv::with(&[
        "create a --currency EUR --owner Ann",
        "create b --currency EUR",
        "create c --currency USD --owner Smith,_J",
        "create d --currency EUR",
        "deposit a 50",
        "deposit c 9.99",
        "transfer a b 10",
        "hold a 5 --to d",
        "hold b 2 --expires 2026-11-26T10:30:00Z",
        "hold c 1",
        "capture 8",
        "withdraw d 5",
        "close d",
    ])
}

/// `balance` in every format, at the pinned clock and after the expiring
/// hold has lapsed: stdout, stderr and exit code.
fn balances(env: &TestEnv) -> Vec<(Vec<u8>, Vec<u8>, i32)> {
    let mut all = Vec::new();
    for clock in ["2026-11-26T10:00:00Z", "2026-11-26T11:00:00Z"] {
        for format in FORMATS {
            let out = env
                .cmd()
                .env("LEDGER_TEST_CLOCK", clock)
                .args(["--format", format, "balance"])
                .output()
                .unwrap();
            all.push((out.stdout, out.stderr, out.status.code().unwrap_or(-1)));
        }
    }
    all
}

/// The same with no model: the full replay (too short a journal to get one).
fn replayed(env: &TestEnv) -> Vec<(Vec<u8>, Vec<u8>, i32)> {
    remove_model(&env.journal);
    let all = balances(env);
    assert_eq!(model_seq(&env.journal), None);
    all
}

#[test]
fn every_account_from_the_model_equals_the_full_replay_at_every_model_position() {
    let env = ledger();
    let expected = replayed(&env);
    for seq in [1, 4, 8, 10, 12, 13] {
        model_at(&env.journal, seq);
        assert_eq!(balances(&env), expected, "model at {seq}");
    }
    let table = String::from_utf8(expected[0].0.clone()).unwrap();
    assert!(table.contains("Smith,_J"), "{table}");
    assert!(table.contains("HELD"), "{table}");
}

/// The model is what answers: an edited line it covers is not read.
#[test]
fn the_model_answers_without_reading_the_lines_it_covers() {
    let env = ledger();
    model_at(&env.journal, 13);
    let expected = balances(&env);
    let text = String::from_utf8(env.bytes()).unwrap();
    env.write(text.replacen(r#""amount":"9.99""#, r#""amount":"9.98""#, 1));
    assert_eq!(balances(&env), expected);
}

#[test]
fn a_damaged_model_is_not_trusted() {
    let expected = replayed(&ledger());
    // `a` (owned by Ann) comes first in its page: its unit is bytes 7 to
    // 10, its balance bytes 12 to 27.
    for sql in [
        set_page_byte("a", 26, 0x13).as_str(),
        "UPDATE account_pages SET digest = 0",
        lose_page_of("a").as_str(),
        "DELETE FROM holds",
        "DELETE FROM holds WHERE seq = 9",
        "UPDATE units SET held = x'0102'",
        set_page_byte("a", 7, 7).as_str(),
        "DROP TABLE account_pages",
    ] {
        let env = ledger();
        model_at(&env.journal, 13);
        tamper(&env.journal, sql);
        let journal = env.bytes();
        assert_eq!(balances(&env), expected, "{sql}");
        assert_eq!(env.bytes(), journal, "{sql}");
    }
}

/// Accounts the lines after the model's head created or changed are
/// merged in their place.
#[test]
fn a_stale_model_is_merged_with_the_accounts_after_it() {
    let env = ledger();
    model_at(&env.journal, 6);
    env.ok("create 0first --currency EUR");
    env.ok("create zlast");
    env.ok("create bb --currency USD");
    env.ok("deposit zlast 3");
    env.ok("transfer a 0first 1");
    model_at(&env.journal, 13);
    let with_tail = balances(&env);
    assert_eq!(with_tail, replayed(&env));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]

    /// On random journals, with the model kept up to date by the writers
    /// and then rebuilt at a random seq, every account's balance from the
    /// model equals the full replay's.
    #[test]
    fn streamed_balances_equal_the_full_replay(ops in proptest::collection::vec(op(), 1..30), at in 0.0f64..1.0) {
        let dir = tempfile::tempdir().unwrap();
        let env = TestEnv {
            journal: dir.path().join("journal.jsonl"),
            dir,
            db: None,
        };
        run_ops(&env.journal, &ops, false);
        let kept = balances(&env);
        let last = crate::readmodel::full_replay(&env.journal).seq();
        model_at(&env.journal, ((last as f64) * at) as u64 + 1);
        let rebuilt = balances(&env);
        let expected = replayed(&env);
        prop_assert_eq!(kept, expected.clone());
        prop_assert_eq!(rebuilt, expected);
    }
}

/// A hold row lost from a model the journal has moved past is seen on
/// an account the lines after it did not change, also one that shares
/// its page of the model with one they did (the replay loaded that
/// page), and with none after it; then the full replay answers.
#[test]
fn a_lost_hold_is_seen_on_an_account_the_lines_after_the_model_left_alone() {
    let expected = replayed(&ledger());
    for at in [12, 13] {
        let env = ledger();
        // Line 13 (`close d`) loads d's page, which holds b too.
        model_at(&env.journal, at);
        tamper(&env.journal, "DELETE FROM holds WHERE seq = 9");
        assert_eq!(balances(&env), expected, "model at {at}");
    }
}
