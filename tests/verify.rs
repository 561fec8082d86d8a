//! `ledger verify` (SPEC 2 and 5): the table, `--quiet` and `--json` reports
//! of a valid journal, a corpus of tampered journals that must fail with the
//! right line, `--expect-head` anchoring, the torn tail, and a property test
//! that no single-byte change of an event line goes unnoticed.
//!
//! Hashes are computed here, independently of the binary, with `sha2`.

use std::sync::OnceLock;

use proptest::prelude::*;

use crate::common::{TestEnv, rechain, sha256_hex};

/// The commands that build the reference journal, one per event (seq 1..=13).
/// File line N holds seq N-1: line 6 is `deposit bob 50.5`, line 9 is
/// `withdraw bob 10`, line 14 the last transfer.
const COMMANDS: [&str; 13] = [
    "create alice --owner Alice",
    "create bob",
    "create eur1 --currency EUR",
    "deposit alice 100",
    "deposit bob 50.5",
    "transfer alice bob 30",
    "deposit eur1 20.25 --memo rent --id x1",
    "withdraw bob 10",
    "create tmp",
    "deposit tmp 5",
    "withdraw tmp 5",
    "close tmp",
    "transfer bob alice 0.5",
];

/// The reference journal's bytes, built once with the binary.
fn base() -> &'static [u8] {
    static BASE: OnceLock<Vec<u8>> = OnceLock::new();
    BASE.get_or_init(|| {
        let env = TestEnv::new();
        for command in COMMANDS {
            env.ok(command);
        }
        env.bytes()
    })
}

/// A fresh env holding the reference journal.
fn env_with_base() -> TestEnv {
    let env = TestEnv::new();
    env.write(base());
    env
}

/// The reference journal's lines (without `\n`); index 0 is the header.
fn base_lines() -> Vec<String> {
    String::from_utf8(base().to_vec())
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Lines joined back into a journal, each ending with `\n`.
fn join(lines: &[String]) -> String {
    lines.iter().map(|l| format!("{l}\n")).collect()
}

/// Replaces `from` by `to` in line `index` (0 = header), which must contain it.
fn edit(lines: &mut [String], index: usize, from: &str, to: &str) {
    assert!(
        lines[index].contains(from),
        "{from} not in {}",
        lines[index]
    );
    lines[index] = lines[index].replacen(from, to, 1);
}

/// The last line of a journal's bytes, without its `\n`.
fn last_line(journal: &[u8]) -> &[u8] {
    let body = journal.strip_suffix(b"\n").expect("ends with a newline");
    body.rsplit(|&b| b == b'\n').next().unwrap()
}

/// The hash of the reference journal's last line: its head.
fn base_head() -> String {
    sha256_hex(base_lines().last().unwrap().as_bytes())
}

/// Runs `args` on `env` and returns (exit code, stdout, stderr).
fn run(env: &TestEnv, args: &[&str]) -> (i32, String, String) {
    let out = env.cmd().args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

// ---------------------------------------------------------------------------
// A valid journal

#[test]
fn reference_journal_is_chained_as_the_spec_says() {
    // The journal the binary wrote: `prev` of each line is the SHA-256 of the
    // exact bytes of the line before it, computed here independently.
    let lines = base_lines();
    assert_eq!(lines.len(), 14);
    assert!(lines[0].starts_with(r#"{"format":"ledger-journal","version":1,"#));
    for i in 1..lines.len() {
        let event: serde_json::Value = serde_json::from_str(&lines[i]).unwrap();
        assert_eq!(event["seq"], i as u64);
        assert_eq!(
            event["prev"],
            sha256_hex(lines[i - 1].as_bytes()),
            "line {}",
            i + 1
        );
    }
}

#[test]
fn valid_journal_verifies_with_a_table_report() {
    let env = env_with_base();
    let out = env.ok("verify");
    let head = base_head();
    assert!(out.contains("events   13\n"), "{out}");
    assert!(out.contains("accounts 4 (3 open, 1 closed)\n"), "{out}");
    let row = |prefix: &str| -> Vec<String> {
        out.lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix} row in {out}"))
            .split_whitespace()
            .map(str::to_owned)
            .collect()
    };
    // currency, decimals, deposited, withdrawn, held
    assert_eq!(
        row("(no currency)")[2..],
        ["2", "155.50", "15.00", "140.50"]
    );
    assert_eq!(row("EUR"), ["EUR", "2", "20.25", "0.00", "20.25"]);
    assert!(
        out.contains(&format!("head     seq 13 sha256 {head}\n")),
        "{out}"
    );
    assert!(out.to_lowercase().contains("ok"), "{out}");
}

#[test]
fn quiet_prints_only_seq_and_the_hash_of_the_last_line() {
    let env = env_with_base();
    let out = env.cmd().args(["verify", "--quiet"]).output().unwrap();
    assert!(out.status.success());
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // `tail -n1 journal | tr -d '\n' | sha256sum`, by hand.
    let last = last_line(base());
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        format!("13 {}\n", sha256_hex(last))
    );
}

#[test]
fn json_report_has_ok_events_accounts_totals_and_head() {
    let env = env_with_base();
    let report: serde_json::Value = serde_json::from_str(&env.ok("verify --json")).unwrap();
    assert_eq!(
        report,
        serde_json::json!({
            "ok": true,
            "events": 13,
            "accounts": {"open": 3, "closed": 1},
            "totals": [
                {"currency": null, "decimals": 2, "deposited": "155.50", "withdrawn": "15.00", "balance": "140.50"},
                {"currency": "EUR", "decimals": 2, "deposited": "20.25", "withdrawn": "0.00", "balance": "20.25"},
            ],
            "head": {"seq": 13, "hash": base_head()},
        })
    );
}

#[test]
fn verify_totals_agree_with_balance_totals() {
    let env = env_with_base();
    let report: serde_json::Value = serde_json::from_str(&env.ok("verify --json")).unwrap();
    let balances = env.balances();
    let totals = balances["totals"].as_array().unwrap();
    let held = report["totals"].as_array().unwrap();
    assert_eq!(totals.len(), held.len());
    for total in totals {
        let found = held
            .iter()
            .find(|t| t["currency"] == total["currency"] && t["decimals"] == total["decimals"])
            .unwrap_or_else(|| panic!("verify has no total for {total}"));
        assert_eq!(found["balance"], total["balance"], "{total}");
    }
    assert_eq!(report["head"]["seq"], balances["as_of_seq"]);
}

#[test]
fn expect_head_accepts_the_head_any_earlier_line_and_the_header() {
    let env = env_with_base();
    let lines = base_lines();
    for line in [&lines[13], &lines[5], &lines[1], &lines[0]] {
        let hash = sha256_hex(line.as_bytes());
        let out = env.ok(&format!("verify --quiet --expect-head {hash}"));
        assert_eq!(out, format!("13 {}\n", base_head()));
    }
}

#[test]
fn expect_head_of_another_hash_fails() {
    let env = env_with_base();
    let other = sha256_hex(b"not a line of this journal");
    let stderr = env.fails(3, &["verify", "--expect-head", &other]);
    assert!(stderr.contains(&other), "{stderr}");
}

#[test]
fn expect_head_that_is_not_64_hex_digits_is_a_usage_error() {
    let env = env_with_base();
    let head = base_head();
    let not_hex = "g".repeat(64);
    for bad in [
        "abc",
        &head[..63],
        &format!("{head}0"),
        &not_hex,
        "",
        &format!(" {}", &head[1..]),
    ] {
        env.fails(2, &["verify", "--expect-head", bad]);
    }
}

#[test]
fn missing_journal_fails_with_no_journal_at() {
    let env = TestEnv::new();
    let stderr = env.fails(3, &["verify"]);
    assert!(stderr.contains("no journal at"), "{stderr}");
    assert!(
        stderr.contains(&env.journal.display().to_string()),
        "{stderr}"
    );
    assert!(!env.journal.exists(), "verify created the journal");
}

#[test]
fn torn_last_line_verifies_with_one_warning() {
    let lines = base_lines();
    let whole = join(&lines);
    // Cut just the last `\n`, and cut in the middle of the last line.
    for cut in [1, 40] {
        let env = TestEnv::new();
        env.write(&whole.as_bytes()[..whole.len() - cut]);
        let out = env.cmd().args(["verify", "--quiet"]).output().unwrap();
        assert_eq!(out.status.code(), Some(0));
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.starts_with("warning: "), "{stderr}");
        assert!(stderr.contains("line 14"), "{stderr}");
        // The head is the last complete line.
        assert_eq!(
            String::from_utf8(out.stdout).unwrap(),
            format!("12 {}\n", sha256_hex(lines[12].as_bytes()))
        );
        // The torn line's hash is not part of the journal (the warning
        // comes first on stderr, then the error).
        let (code, _, stderr) = run(&env, &["verify", "--expect-head", &base_head()]);
        assert_eq!(code, 3, "{stderr}");
        assert!(stderr.contains("\nerror: "), "{stderr}");
        assert_eq!(env.bytes(), &whole.as_bytes()[..whole.len() - cut]);
    }
}

// ---------------------------------------------------------------------------
// Tamper corpus: each exits 3 naming the first line that gives it away.

/// Writes `lines` as the journal and asserts `verify` fails on `line`,
/// returning stderr.
fn tampered(lines: &[String], line: u64) -> String {
    let env = TestEnv::new();
    env.write(join(lines));
    let stderr = env.fails(3, &["verify"]);
    assert!(stderr.contains(&format!("line {line}:")), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    stderr
}

#[test]
fn tamper_edited_amount_fails_at_the_next_lines_prev() {
    let mut lines = base_lines();
    edit(&mut lines, 5, r#""amount":"50.50""#, r#""amount":"60.50""#);
    let stderr = tampered(&lines, 7);
    assert!(stderr.contains("prev"), "{stderr}");
}

#[test]
fn tamper_non_canonical_amount_fails_at_that_line() {
    // Same value, other spelling: the line itself is refused, even before
    // the next line's prev.
    let mut lines = base_lines();
    edit(&mut lines, 5, r#""amount":"50.50""#, r#""amount":"50.5""#);
    tampered(&lines, 6);
}

#[test]
fn tamper_deleted_line() {
    let mut lines = base_lines();
    lines.remove(5);
    tampered(&lines, 6);
}

#[test]
fn tamper_swapped_lines() {
    let mut lines = base_lines();
    lines.swap(5, 6);
    tampered(&lines, 6);
}

#[test]
fn tamper_duplicated_line() {
    let mut lines = base_lines();
    lines.insert(6, lines[5].clone());
    tampered(&lines, 7);
}

#[test]
fn tamper_header_created_at_fails_at_line_2() {
    let mut lines = base_lines();
    edit(&mut lines, 0, "2026-11-26T10:00:00", "2026-11-26T09:00:00");
    let stderr = tampered(&lines, 2);
    assert!(stderr.contains("prev"), "{stderr}");
}

#[test]
fn tamper_header_version_fails_at_line_1() {
    let mut lines = base_lines();
    edit(&mut lines, 0, r#""version":1"#, r#""version":2"#);
    tampered(&lines, 1);
}

#[test]
fn tamper_line_appended_by_hand_with_a_wrong_prev() {
    let mut lines = base_lines();
    lines.push(format!(
        r#"{{"seq":14,"at":"2026-11-26T10:00:00.000000Z","type":"MoneyDeposited","account":"bob","amount":"1.00","prev":"{}"}}"#,
        "0".repeat(64)
    ));
    let stderr = tampered(&lines, 15);
    assert!(stderr.contains("prev"), "{stderr}");
}

#[test]
fn tamper_line_appended_by_hand_with_the_right_prev_verifies() {
    // Appending a valid line is what the chain allows: verify accepts it,
    // and the old head still anchors the new journal.
    let mut lines = base_lines();
    lines.push(format!(
        r#"{{"seq":14,"at":"2026-11-26T10:00:01.000000Z","type":"MoneyDeposited","account":"bob","amount":"1.00","prev":"{}"}}"#,
        base_head()
    ));
    let env = TestEnv::new();
    env.write(join(&lines));
    let out = env.ok(&format!("verify --quiet --expect-head {}", base_head()));
    assert_eq!(out, format!("14 {}\n", sha256_hex(lines[14].as_bytes())));
}

#[test]
fn tamper_rewrite_with_recomputed_prevs_that_overdraws_names_the_line() {
    // Line 9 is `withdraw bob 10` (bob holds 80.50 then); make it 1000 and
    // recompute every later prev, so the chain is intact.
    let mut lines = base_lines();
    edit(
        &mut lines,
        8,
        r#""amount":"10.00""#,
        r#""amount":"1000.00""#,
    );
    rechain(&mut lines, 9);
    let stderr = tampered(&lines, 9);
    assert!(stderr.contains("insufficient funds"), "{stderr}");
}

#[test]
fn tamper_rewrite_with_recomputed_prevs_breaking_another_rule() {
    // A deposit into the closed account, chained correctly, at the end.
    let mut lines = base_lines();
    lines.push(format!(
        r#"{{"seq":14,"at":"2026-11-26T10:00:00.000000Z","type":"MoneyDeposited","account":"tmp","amount":"1.00","prev":"{}"}}"#,
        base_head()
    ));
    tampered(&lines, 15);
    // `at` going backwards, chained correctly.
    let mut lines = base_lines();
    edit(&mut lines, 10, "2026-11-26T10:00:00", "2026-11-25T10:00:00");
    rechain(&mut lines, 11);
    tampered(&lines, 11);
}

#[test]
fn rewrite_keeping_every_rule_passes_verify_but_not_the_old_head() {
    let mut lines = base_lines();
    edit(&mut lines, 5, r#""amount":"50.50""#, r#""amount":"60.50""#);
    rechain(&mut lines, 6);
    let env = TestEnv::new();
    env.write(join(&lines));
    // A self-consistent forgery: plain verify cannot tell.
    let new_head = sha256_hex(lines[13].as_bytes());
    assert_ne!(new_head, base_head());
    assert_eq!(env.ok("verify --quiet"), format!("13 {new_head}\n"));
    // An auditor who recorded the old head can.
    let stderr = env.fails(3, &["verify", "--expect-head", &base_head()]);
    assert!(stderr.contains(&base_head()), "{stderr}");
    // So can one who recorded the hash of the rewritten line 6.
    env.fails(
        3,
        &[
            "verify",
            "--expect-head",
            &sha256_hex(base_lines()[5].as_bytes()),
        ],
    );
    // A hash recorded before the rewritten line still anchors.
    env.ok(&format!(
        "verify --expect-head {}",
        sha256_hex(lines[4].as_bytes())
    ));
}

#[test]
fn edit_of_the_last_line_passes_verify_but_not_the_old_head() {
    // Nothing chains to the last line: only an anchor catches its edit.
    let mut lines = base_lines();
    edit(&mut lines, 13, r#""amount":"0.50""#, r#""amount":"0.60""#);
    let env = TestEnv::new();
    env.write(join(&lines));
    env.ok("verify");
    env.fails(3, &["verify", "--expect-head", &base_head()]);
}

// ---------------------------------------------------------------------------
// Property: no single-byte change of an event line goes unnoticed.

/// The reference journal plus a trailing 3-event batch, and where that
/// batch starts: a change there may leave a valid journal with a torn tail.
fn journal_with_batch() -> &'static (Vec<u8>, usize) {
    static JOURNAL: OnceLock<(Vec<u8>, usize)> = OnceLock::new();
    JOURNAL.get_or_init(|| {
        let env = env_with_base();
        let before = env.bytes().len();
        let out = env
            .cmd()
            .args(["batch", "-"])
            .write_stdin("deposit bob 1 --memo 'a b'\ntransfer bob alice 2\nwithdraw alice 3\n")
            .output()
            .unwrap();
        assert!(out.status.success());
        (env.bytes(), before)
    })
}

fn replacement() -> impl Strategy<Value = u8> {
    prop_oneof![
        2 => any::<u8>(),
        3 => proptest::sample::select(b"\n0123456789\"{},: abcdefABCDEF\\".to_vec()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn any_single_byte_change_of_an_event_line_is_caught(
        pos in any::<proptest::sample::Index>(),
        byte in replacement(),
    ) {
        let (journal, batch_start) = journal_with_batch();
        let header_end = journal.iter().position(|&b| b == b'\n').unwrap() + 1;
        let at = header_end + pos.index(journal.len() - header_end);
        let mut bytes = journal.clone();
        bytes[at] = if byte == bytes[at] { byte ^ 0x01 } else { byte };
        let head = sha256_hex(last_line(journal));

        let env = TestEnv::new();
        env.write(&bytes);
        let (code, _, stderr) = run(&env, &["verify"]);
        prop_assert!(!stderr.contains("panicked"), "{}", stderr);
        match code {
            3 => prop_assert!(stderr.starts_with("error: ") && stderr.contains("line "), "{}", stderr),
            // Only inside the trailing append can a change leave a valid
            // journal (e.g. its last `\n` changed: a torn tail).
            0 => prop_assert!(at >= *batch_start, "change at {} (byte {:?}) passed verify: {}", at, bytes[at] as char, stderr),
            _ => prop_assert!(false, "exit {:?}: {}", code, stderr),
        }
        // Whatever happened, the recorded head no longer anchors.
        let (code, _, stderr) = run(&env, &["verify", "--expect-head", &head]);
        prop_assert_eq!(code, 3, "{}", stderr);
        prop_assert_eq!(env.bytes(), bytes, "verify changed the journal");
    }
}
