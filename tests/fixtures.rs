//! The journals in `fixtures/` (see its README): each behaves as described.
//! Every test works on a copy in a temporary directory.

use std::fs;

use serde_json::Value;

use crate::common::{TestEnv, fixture, sha256_hex, stderr_lines};

/// The commands that made `fixtures/valid.jsonl`, with their clocks.
const VALID: [(&str, &[&str]); 12] = [
    (
        "2026-11-20T09:00:00Z",
        &["create", "acct1", "--owner", "alice"],
    ),
    (
        "2026-11-20T09:05:00Z",
        &["create", "acct2", "--owner", "bob"],
    ),
    (
        "2026-11-20T09:10:00Z",
        &["create", "eur1", "--owner", "carol", "--currency", "EUR"],
    ),
    ("2026-11-20T09:15:00Z", &["create", "tmp"]),
    (
        "2026-11-21T08:30:00Z",
        &["deposit", "acct1", "100", "--memo", "opening"],
    ),
    ("2026-11-21T08:31:00Z", &["deposit", "eur1", "250.5"]),
    ("2026-11-22T12:00:00Z", &["withdraw", "acct1", "20"]),
    (
        "2026-11-22T12:30:00.250000Z",
        &[
            "transfer", "acct1", "acct2", "10.25", "--memo", "lunch", "--id", "pay-17",
        ],
    ),
    ("2026-11-23T17:00:00Z", &["deposit", "tmp", "5"]),
    ("2026-11-23T17:01:00Z", &["withdraw", "tmp", "5"]),
    (
        "2026-11-23T17:02:00Z",
        &["close", "tmp", "--memo", "not needed"],
    ),
    (
        "2026-11-24T10:00:00Z",
        &["transfer", "acct2", "acct1", "0.25", "--id", "pay-18"],
    ),
];

fn read(name: &str) -> String {
    fs::read_to_string(fixture(name)).expect("fixture")
}

fn expected_balances() -> Value {
    serde_json::from_str(&read("valid.balances.json")).expect("json")
}

#[test]
fn valid_fixture_is_what_the_binary_writes_today() {
    let env = TestEnv::new();
    for (clock, args) in VALID {
        let out = env
            .cmd()
            .env("LEDGER_TEST_CLOCK", clock)
            .args(args)
            .output()
            .expect("run ledger");
        assert!(out.status.success(), "{args:?}: {:?}", stderr_lines(&out));
    }
    assert_eq!(env.text(), read("valid.jsonl"));
    assert_eq!(env.ok("balance --json"), read("valid.balances.json"));
}

#[test]
fn valid_fixture_reads_and_accepts_appends() {
    let env = TestEnv::new();
    env.load_fixture("valid.jsonl");
    assert_eq!(env.balances(), expected_balances());
    assert_eq!(
        env.ok("history --json"),
        read("valid.jsonl").split_once('\n').expect("header").1
    );
    let of_acct1: Vec<Value> = env
        .ok("history acct1 --json")
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    let running: Vec<&str> = of_acct1
        .iter()
        .map(|e| e["balance"].as_str().expect("balance"))
        .collect();
    assert_eq!(running, ["0.00", "100.00", "80.00", "69.75", "70.00"]);
    let as_of: Value =
        serde_json::from_str(&env.ok("balance --as-of 2026-11-22 --json")).expect("json");
    assert_eq!(as_of["as_of_seq"], 8);
    // The stored ids are live: a retry is a repeat, a different use refused.
    let before = env.text();
    env.ok("transfer acct1 acct2 10.25 --memo lunch --id pay-17");
    assert_eq!(env.text(), before);
    env.fails(1, &["deposit", "acct1", "1", "--id", "pay-18"]);
    env.fails(1, &["deposit", "tmp", "1"]);

    let line = env.ok("deposit eur1 0.5 --json");
    let lines = env.lines();
    assert_eq!(lines.len(), 14);
    assert_eq!(format!("{}\n", lines[13]), line);
    let event: Value = serde_json::from_str(&line).expect("json");
    assert_eq!(event["seq"], 13);
    assert_eq!(
        event["prev"].as_str(),
        Some(&*sha256_hex(lines[12].as_bytes()))
    );
    assert_eq!(env.balance_of("eur1"), "251.00");
}

#[test]
fn tampered_amount_fixture_is_refused_at_the_next_line() {
    let env = TestEnv::new();
    env.load_fixture("tampered-amount.jsonl");
    for args in [
        &["balance"][..],
        &["history", "acct1"],
        &["deposit", "acct1", "1"],
    ] {
        let stderr = env.fails(3, args);
        assert!(stderr.contains("line 7:"), "{stderr}");
    }
}

#[test]
fn bad_chain_fixture_is_refused_where_history_was_rewritten() {
    let env = TestEnv::new();
    env.load_fixture("bad-chain.jsonl");
    for args in [
        &["balance", "--as-of", "3"][..],
        &["history", "--limit", "1"],
        &["create", "new"],
    ] {
        let stderr = env.fails(3, args);
        assert!(stderr.contains("line 8:"), "{stderr}");
    }
}

#[test]
fn torn_tail_fixture_reads_as_valid_and_is_repaired_by_the_next_write() {
    let env = TestEnv::new();
    env.load_fixture("torn-tail.jsonl");
    let out = env.run("balance --json");
    assert!(out.status.success());
    assert_eq!(stderr_lines(&out).len(), 1, "one warning");
    let doc: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(doc, expected_balances());

    let line = env.ok("withdraw acct2 1 --json");
    assert_eq!(env.text(), read("valid.jsonl") + &line);
    let torn = read("torn-tail.jsonl");
    let tail = torn.rsplit_once('\n').expect("lines").1;
    let quarantined = fs::read_to_string(env.beside(".torn")).expect("torn");
    assert_eq!(quarantined.trim_end(), tail);
}

#[test]
fn foreign_fixture_is_never_touched() {
    let env = TestEnv::new();
    env.load_fixture("foreign-hledger.journal");
    for args in [
        &["balance"][..],
        &["history"],
        &["create", "assets"],
        &["deposit", "assets", "1"],
    ] {
        let stderr = env.fails(3, args);
        assert!(stderr.contains("not a ledger journal"), "{stderr}");
    }
}

#[test]
fn fixtures_stay_small() {
    for entry in fs::read_dir(fixture("")).expect("fixtures dir") {
        let entry = entry.expect("entry");
        let len = entry.metadata().expect("metadata").len();
        assert!(len < 8 * 1024, "{:?} is {len} bytes", entry.file_name());
    }
}
