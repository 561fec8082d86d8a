//! The journal file as SPEC 2 fixes it: the header, key order, amounts, the
//! hash chain (recomputed here, independently of the binary), where the
//! file lives, and how it is created.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use serde_json::Value;

use crate::common::{AT, HEADER, TestEnv, chained, sha256_hex, stderr_lines};

#[test]
fn first_write_starts_the_file_with_the_exact_header() {
    let env = TestEnv::new();
    env.ok("create a");
    assert_eq!(env.lines()[0], HEADER);

    // created_at is the time of the first write.
    let env = TestEnv::new();
    env.ok_at("2027-01-02T03:04:05.678901+02:00", "create a");
    assert_eq!(
        env.lines()[0],
        r#"{"format":"ledger-journal","version":1,"hash":"sha256","created_at":"2027-01-02T01:04:05.678901Z"}"#
    );
}

#[test]
fn every_event_type_is_written_with_the_contract_key_order() {
    let env = TestEnv::new();
    for args in [
        "create acct1 --owner alice --currency EUR",
        "create acct2 --currency EUR --id c2",
        "create pts --owner bob --decimals 0 --memo points",
        "create milli --decimals 3",
        "deposit acct1 50.5 --id pay-1 --memo rent",
        "deposit pts 7",
        "deposit milli 0.5",
        "withdraw acct1 0.5 --memo fee",
        "transfer acct1 acct2 10 --id t1",
        "transfer acct2 acct1 10 --memo back",
        "withdraw milli 0.5 --id w1",
        "close milli --id x1 --memo done",
        "close acct2",
    ] {
        env.ok(args);
    }
    let at = AT;
    let expected = chained(
        HEADER,
        &[
            &format!(
                r#"{{"seq":1,"at":"{at}","type":"AccountCreated","account":"acct1","owner":"alice","currency":"EUR","decimals":2}}"#
            ),
            &format!(
                r#"{{"seq":2,"at":"{at}","type":"AccountCreated","account":"acct2","currency":"EUR","decimals":2,"id":"c2"}}"#
            ),
            &format!(
                r#"{{"seq":3,"at":"{at}","type":"AccountCreated","account":"pts","owner":"bob","decimals":0,"memo":"points"}}"#
            ),
            &format!(
                r#"{{"seq":4,"at":"{at}","type":"AccountCreated","account":"milli","decimals":3}}"#
            ),
            &format!(
                r#"{{"seq":5,"at":"{at}","type":"MoneyDeposited","account":"acct1","amount":"50.50","id":"pay-1","memo":"rent"}}"#
            ),
            &format!(
                r#"{{"seq":6,"at":"{at}","type":"MoneyDeposited","account":"pts","amount":"7"}}"#
            ),
            &format!(
                r#"{{"seq":7,"at":"{at}","type":"MoneyDeposited","account":"milli","amount":"0.500"}}"#
            ),
            &format!(
                r#"{{"seq":8,"at":"{at}","type":"MoneyWithdrawn","account":"acct1","amount":"0.50","memo":"fee"}}"#
            ),
            &format!(
                r#"{{"seq":9,"at":"{at}","type":"TransferCompleted","from":"acct1","to":"acct2","amount":"10.00","id":"t1"}}"#
            ),
            &format!(
                r#"{{"seq":10,"at":"{at}","type":"TransferCompleted","from":"acct2","to":"acct1","amount":"10.00","memo":"back"}}"#
            ),
            &format!(
                r#"{{"seq":11,"at":"{at}","type":"MoneyWithdrawn","account":"milli","amount":"0.500","id":"w1"}}"#
            ),
            &format!(
                r#"{{"seq":12,"at":"{at}","type":"AccountClosed","account":"milli","id":"x1","memo":"done"}}"#
            ),
            &format!(r#"{{"seq":13,"at":"{at}","type":"AccountClosed","account":"acct2"}}"#),
        ],
    );
    assert_eq!(env.text(), expected);
}

#[test]
fn every_prev_is_the_sha256_of_the_exact_bytes_of_the_line_before() {
    let env = TestEnv::new();
    env.ok("create a --owner Zoë");
    env.ok("create b");
    env.ok_args(&[
        "deposit",
        "a",
        "12.34",
        "--memo",
        r#"say "hi" \ ünïcødé ✓ 🙂"#,
    ]);
    env.ok_args(&["transfer", "a", "b", "2", "--id", "ключ"]);
    let lines = env.lines();
    assert_eq!(lines.len(), 5);
    for (i, pair) in lines.windows(2).enumerate() {
        let event: Value = serde_json::from_str(&pair[1]).expect("json");
        assert_eq!(
            event["prev"].as_str(),
            Some(&*sha256_hex(pair[0].as_bytes())),
            "prev of line {}",
            i + 2
        );
        assert_eq!(event["seq"], i + 1);
    }
    let memo: Value = serde_json::from_str(&lines[3]).expect("json");
    assert_eq!(memo["memo"], r#"say "hi" \ ünïcødé ✓ 🙂"#);
}

#[test]
fn an_auditor_can_check_the_chain_with_sed_and_sha256sum() {
    let env = TestEnv::with(&[
        "create a",
        "create b",
        "deposit a 5",
        "transfer a b 1",
        "withdraw b 1",
    ]);
    // SPEC 2: `sed -n 5p journal.jsonl | tr -d '\n' | sha256sum` is the prev of line 6.
    let out = Command::new("sh")
        .arg("-c")
        .arg(r"sed -n 5p journal.jsonl | tr -d '\n' | sha256sum")
        .current_dir(env.dir.path())
        .output()
        .expect("run sh");
    let digest = String::from_utf8(out.stdout).expect("utf-8");
    let line6: Value = serde_json::from_str(&env.lines()[5]).expect("json");
    assert_eq!(Some(&digest[..64]), line6["prev"].as_str());
}

#[test]
fn seq_is_contiguous_and_at_never_decreases_even_if_the_clock_does() {
    let env = TestEnv::new();
    env.ok_at("2026-11-26T10:00:00Z", "create a");
    env.ok_at("2026-11-26T09:00:00Z", "deposit a 1");
    env.ok_at("2026-11-26T11:00:00.5Z", "deposit a 2");
    env.ok_at("2026-11-26T12:00:00+02:00", "deposit a 3");
    let lines = env.lines();
    let header: Value = serde_json::from_str(&lines[0]).expect("json");
    let mut last = header["created_at"]
        .as_str()
        .expect("created_at")
        .to_owned();
    let mut ats = Vec::new();
    for (i, line) in lines[1..].iter().enumerate() {
        let event: Value = serde_json::from_str(line).expect("json");
        assert_eq!(event["seq"], i + 1);
        let at = event["at"].as_str().expect("at").to_owned();
        assert!(at.ends_with('Z'), "{at}");
        // Same fixed-width UTC form throughout, so text order is time order.
        assert_eq!(at.len(), last.len(), "{at}");
        assert!(at >= last, "{at} is before {last}");
        last.clone_from(&at);
        ats.push(at);
    }
    assert_eq!(ats[0], "2026-11-26T10:00:00.000000Z");
    assert_eq!(ats[2], "2026-11-26T11:00:00.500000Z");
    // The history still reads in order.
    env.ok("history");
}

#[test]
fn missing_parent_directories_are_created_on_first_write() {
    let env = TestEnv::new();
    let deep = env.dir.path().join("a/b/c/journal.jsonl");
    env.bare()
        .arg("--file")
        .arg(&deep)
        .args(["create", "x"])
        .assert()
        .success();
    assert!(
        fs::read_to_string(&deep)
            .expect("journal")
            .starts_with(HEADER)
    );
}

#[test]
fn a_missing_journal_reads_as_an_empty_ledger_and_is_not_created() {
    let env = TestEnv::new();
    assert!(env.ok("balance").contains("no accounts"));
    assert_eq!(env.ok("history --json"), "");
    assert_eq!(env.ok("balance --format csv").lines().count(), 1);
    assert!(!env.journal.exists());
    let nowhere = env.dir.path().join("no/such/dir/journal.jsonl");
    env.bare()
        .arg("--file")
        .arg(&nowhere)
        .arg("balance")
        .assert()
        .success();
    assert!(!env.dir.path().join("no").exists());
}

#[test]
fn a_refused_write_on_a_missing_journal_creates_nothing() {
    let env = TestEnv::new();
    env.fails(1, &["deposit", "acct1", "5"]);
    env.fails(1, &["create", "a", "--expect-seq", "1"]);
    assert!(
        !env.journal.exists(),
        "exit 1 created {}",
        env.journal.display()
    );
    let nested = env.dir.path().join("sub/journal.jsonl");
    env.bare()
        .arg("--file")
        .arg(&nested)
        .args(["close", "nosuch"])
        .assert()
        .code(1);
    assert!(!env.dir.path().join("sub").exists(), "exit 1 created sub/");
}

/// Where each case of the path test may write.
const CANDIDATES: [&str; 5] = [
    "flag.jsonl",
    "env.jsonl",
    "ledger-file.jsonl",
    "xdg-data/ledger/journal.jsonl",
    ".local/share/ledger/journal.jsonl",
];

/// Runs `ledger args` in `env` with `--file flag.jsonl` if `flag`, and each
/// `(variable, path)` of `vars` set (to a path in the temp dir) or, for an
/// empty path, removed.
fn with_paths(env: &TestEnv, flag: bool, vars: &[(&str, &str)], args: &[&str]) -> String {
    let mut cmd = env.bare();
    for (k, v) in vars {
        if v.is_empty() {
            cmd.env_remove(k);
        } else {
            cmd.env(k, env.dir.path().join(v));
        }
    }
    if flag {
        cmd.arg("--file").arg(env.dir.path().join("flag.jsonl"));
    }
    let out = cmd.args(args).output().expect("run ledger");
    assert!(out.status.success(), "{args:?}: {:?}", stderr_lines(&out));
    String::from_utf8(out.stdout).expect("utf-8")
}

#[test]
fn file_option_beats_ledger_journal_beats_the_data_directory() {
    let journal = ("LEDGER_JOURNAL", "env.jsonl");
    for (what, flag, vars, expected) in [
        ("--file", true, &[journal][..], "flag.jsonl"),
        ("LEDGER_JOURNAL", false, &[journal], "env.jsonl"),
        (
            "LEDGER_FILE is ledger-cli's and hledger's, not ours",
            false,
            &[("LEDGER_FILE", "ledger-file.jsonl")],
            "xdg-data/ledger/journal.jsonl",
        ),
        ("XDG_DATA_HOME", false, &[], "xdg-data/ledger/journal.jsonl"),
        (
            "an empty LEDGER_JOURNAL is unset",
            false,
            &[("LEDGER_JOURNAL", "")],
            "xdg-data/ledger/journal.jsonl",
        ),
        (
            "HOME without XDG_DATA_HOME",
            false,
            &[("XDG_DATA_HOME", "")],
            ".local/share/ledger/journal.jsonl",
        ),
    ] {
        let env = TestEnv::new();
        with_paths(&env, flag, vars, &["create", "acct1"]);
        let written: Vec<&str> = CANDIDATES
            .into_iter()
            .filter(|p| env.dir.path().join(p).exists())
            .collect();
        assert_eq!(written, [expected], "{what}");
        // Reads look in the same place.
        let balances = with_paths(&env, flag, vars, &["balance", "--json"]);
        assert!(balances.contains("acct1"), "{what}: {balances}");
    }
}

#[test]
fn a_new_journal_is_readable_by_its_owner_only() {
    let env = TestEnv::new();
    env.ok("create a");
    let mode = fs::metadata(&env.journal)
        .expect("journal")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "mode {mode:o}");
}

#[test]
fn a_hand_built_journal_from_the_spec_is_accepted() {
    // Written from SPEC 2 alone, not by the binary: the two must agree.
    let env = TestEnv::new();
    let at = "2026-11-26T03:24:00.123456Z";
    env.write(chained(
        r#"{"format":"ledger-journal","version":1,"hash":"sha256","created_at":"2026-11-26T03:24:00.000000Z"}"#,
        &[
            &format!(
                r#"{{"seq":1,"at":"{at}","type":"AccountCreated","account":"acct1","owner":"alice","currency":"EUR","decimals":2}}"#
            ),
            &format!(
                r#"{{"seq":2,"at":"{at}","type":"MoneyDeposited","account":"acct1","amount":"50.25","id":"pay-17","memo":"rent"}}"#
            ),
        ],
    ));
    assert_eq!(env.balance_of("acct1"), "50.25");
    // And the binary continues the chain.
    env.ok("withdraw acct1 0.25");
    let lines = env.lines();
    let last: Value = serde_json::from_str(&lines[3]).expect("json");
    assert_eq!(
        last["prev"].as_str(),
        Some(&*sha256_hex(lines[2].as_bytes()))
    );
    assert_eq!(last["seq"], 3);
}

#[test]
fn io_failures_exit_4_and_name_the_path() {
    let env = TestEnv::new();
    fs::write(env.dir.path().join("plain-file"), "x").expect("write");
    let under_a_file = env.dir.path().join("plain-file/journal.jsonl");
    let out = env
        .bare()
        .arg("--file")
        .arg(&under_a_file)
        .args(["create", "a"])
        .output()
        .expect("run ledger");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert!(
        stderr.starts_with("error: ") && stderr.contains("plain-file"),
        "{stderr}"
    );

    let out = env
        .bare()
        .arg("--file")
        .arg(env.dir.path())
        .arg("balance")
        .output()
        .expect("run ledger");
    assert_eq!(out.status.code(), Some(4), "a directory as the journal");
}
