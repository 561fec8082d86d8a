//! Damaged journals: torn tails that readers skip and the next writer
//! quarantines, and corruption that every command refuses (exit 3) without
//! touching the file.

use std::fs;
use std::os::unix::fs::PermissionsExt;

use serde_json::Value;

use crate::common::{AT, HEADER, TestEnv, chained, sha256_hex, stderr_lines};

/// Header and six events (file lines 1-7): a holds 41.00, b 5.00.
fn journal() -> TestEnv {
    let env = TestEnv::with(&[
        "create a",
        "create b",
        "deposit a 50",
        "transfer a b 10",
        "withdraw b 5",
        "deposit a 1",
    ]);
    assert_eq!(env.lines().len(), 7);
    env
}

const TORN: &str = r#"{"seq":7,"at":"2026-11-26T10:0"#;

/// Runs `args` (split on spaces), asserts exit 0 and exactly one line on
/// stderr, a warning; returns stdout.
fn ok_with_one_warning(env: &TestEnv, args: &str) -> String {
    let out = env.run(args);
    let stderr = stderr_lines(&out);
    assert!(out.status.success(), "`ledger {args}`: {stderr:?}");
    assert_eq!(stderr.len(), 1, "`ledger {args}`: {stderr:?}");
    assert!(stderr[0].starts_with("warning: "), "{stderr:?}");
    String::from_utf8(out.stdout).expect("utf-8")
}

#[test]
fn readers_ignore_a_torn_last_line_with_one_warning() {
    let env = journal();
    let balances = env.ok("balance --json");
    let history = env.ok("history --json");
    let of_a = env.ok("history a --format csv");
    let torn = env.text() + TORN;
    env.write(&torn);
    assert_eq!(ok_with_one_warning(&env, "balance --json"), balances);
    assert_eq!(ok_with_one_warning(&env, "history --json"), history);
    assert_eq!(ok_with_one_warning(&env, "history a --format csv"), of_a);
    assert_eq!(env.text(), torn, "readers never repair");
}

#[test]
fn the_next_write_quarantines_a_torn_tail_then_appends() {
    let env = journal();
    let valid = env.text();
    env.write(valid.clone() + TORN);
    let new_line = ok_with_one_warning(&env, "deposit b 1 --json");
    assert_eq!(env.text(), valid + &new_line);
    let lines = env.lines();
    let event: Value = serde_json::from_str(&lines[7]).expect("json");
    assert_eq!(event["seq"], 7);
    assert_eq!(
        event["prev"].as_str(),
        Some(&*sha256_hex(lines[6].as_bytes()))
    );

    let torn = fs::read(env.beside(".torn")).expect("quarantined bytes");
    assert!(torn.starts_with(TORN.as_bytes()), "{torn:?}");
    assert!(
        torn.len() <= TORN.len() + 1,
        "only the torn bytes: {torn:?}"
    );
    let mode = fs::metadata(env.beside(".torn"))
        .expect("torn")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    // Now clean: no more warnings.
    assert!(env.run("balance").stderr.is_empty());
    assert_eq!(env.balance_of("b"), "6.00");
}

/// A quarantine retried after the journal could not be cut (the bytes
/// are already at the end of `.torn`) keeps them once; other bytes before
/// them are kept as they were.
#[test]
fn a_retried_quarantine_keeps_the_torn_bytes_once() {
    let env = journal();
    let valid = env.text();
    env.write(valid.clone() + TORN);
    let earlier = "an older torn tail\n";
    let kept = format!("{earlier}{TORN}\n");
    fs::write(env.beside(".torn"), &kept).expect("torn");
    ok_with_one_warning(&env, "deposit b 1");
    assert_eq!(fs::read_to_string(env.beside(".torn")).expect("torn"), kept);
    assert!(env.text().starts_with(&valid));
    assert_eq!(env.lines().len(), 8);
    // Only an exact copy counts: a partial one is followed by the whole.
    let env = journal();
    env.write(env.text() + TORN);
    let partial = format!("{earlier}{}", &TORN[..10]);
    fs::write(env.beside(".torn"), &partial).expect("torn");
    ok_with_one_warning(&env, "deposit b 1");
    assert_eq!(
        fs::read_to_string(env.beside(".torn")).expect("torn"),
        format!("{partial}{TORN}\n")
    );
}

#[test]
fn a_complete_event_without_its_newline_is_still_torn() {
    let env = journal();
    let mut bytes = env.bytes();
    bytes.pop();
    let last_line = env.lines().pop().expect("line 7");
    env.write(&bytes);
    let doc: Value =
        serde_json::from_str(&ok_with_one_warning(&env, "balance --json")).expect("json");
    assert_eq!(
        doc["as_of_seq"], 5,
        "the unacknowledged deposit is not counted"
    );
    assert_eq!(doc["accounts"][0]["balance"], "40.00");
    ok_with_one_warning(&env, "create c");
    let lines = env.lines();
    assert_eq!(lines.len(), 7);
    assert!(lines[6].starts_with(r#"{"seq":6,"at":"#) && lines[6].contains(r#""account":"c""#));
    let torn = fs::read_to_string(env.beside(".torn")).expect("torn");
    assert_eq!(torn.trim_end(), last_line);
}

#[test]
fn an_empty_file_is_an_empty_journal() {
    let env = TestEnv::new();
    env.write("");
    assert_eq!(
        env.ok("balance --json"),
        "{\"as_of_seq\":0,\"accounts\":[],\"totals\":[]}\n"
    );
    assert_eq!(env.ok("history --json"), "");
    env.ok("create a");
    assert_eq!(env.lines().len(), 2);
    assert_eq!(env.lines()[0], HEADER);
}

#[test]
fn a_cut_short_header_is_an_empty_journal_with_a_torn_tail() {
    for cut in [
        r#"{"format":"ledger-journal""#,
        r#"{"format":"ledger-journal","version":1,"ha"#,
        HEADER,
    ] {
        let env = TestEnv::new();
        env.write(cut);
        let doc: Value =
            serde_json::from_str(&ok_with_one_warning(&env, "balance --json")).expect("json");
        assert_eq!(doc["as_of_seq"], 0, "{cut}");
        assert_eq!(ok_with_one_warning(&env, "history --json"), "", "{cut}");
        ok_with_one_warning(&env, "create a");
        let lines = env.lines();
        assert_eq!((lines.len(), &*lines[0]), (2, HEADER), "{cut}");
        let torn = fs::read_to_string(env.beside(".torn")).expect("torn");
        assert_eq!(torn.trim_end(), cut);
    }
}

/// A journal written by hand whose last append was a three-event batch.
fn with_batch(batch_lines: usize, partial: &str) -> String {
    let events = [
        format!(r#"{{"seq":1,"at":"{AT}","type":"AccountCreated","account":"a","decimals":2}}"#),
        format!(
            r#"{{"seq":2,"at":"{AT}","type":"MoneyDeposited","account":"a","amount":"10.00"}}"#
        ),
        format!(
            r#"{{"seq":3,"at":"{AT}","type":"MoneyDeposited","account":"a","amount":"1.00","batch":3}}"#
        ),
        format!(r#"{{"seq":4,"at":"{AT}","type":"MoneyDeposited","account":"a","amount":"2.00"}}"#),
        format!(
            r#"{{"seq":5,"at":"{AT}","type":"MoneyWithdrawn","account":"a","amount":"3.00","memo":"fee"}}"#
        ),
    ];
    let events: Vec<&str> = events.iter().map(String::as_str).collect();
    let text = chained(HEADER, &events[..2 + batch_lines]);
    format!("{text}{partial}")
}

#[test]
fn a_multi_event_append_with_lines_missing_is_a_torn_tail() {
    let env = TestEnv::new();
    env.write(with_batch(3, ""));
    assert_eq!(env.balance_of("a"), "10.00");
    assert!(
        env.run("balance").stderr.is_empty(),
        "a complete batch is valid"
    );

    for (complete, partial) in [
        (2, ""),
        (2, r#"{"seq":5,"at":"20"#),
        (1, ""),
        // Cut inside the batch's first line: a plain torn last line.
        (
            0,
            r#"{"seq":3,"at":"2026-11-26T10:00:00.000000Z","type":"Mon"#,
        ),
    ] {
        let env = TestEnv::new();
        let valid = with_batch(0, "");
        let text = with_batch(complete, partial);
        env.write(&text);
        let doc: Value =
            serde_json::from_str(&ok_with_one_warning(&env, "balance --json")).expect("json");
        assert_eq!(doc["as_of_seq"], 2, "{text}");
        assert_eq!(doc["accounts"][0]["balance"], "10.00", "{text}");
        ok_with_one_warning(&env, "deposit a 5");
        let lines = env.lines();
        assert_eq!(lines.len(), 4, "{lines:?}");
        assert_eq!(lines[..3].join("\n") + "\n", valid);
        assert!(lines[3].starts_with(r#"{"seq":3,"#), "{}", lines[3]);
        let torn = fs::read_to_string(env.beside(".torn")).expect("torn");
        assert!(torn.starts_with(r#"{"seq":3,"#), "{torn}");
        assert_eq!(
            torn.trim_end(),
            text.lines().skip(3).collect::<Vec<_>>().join("\n")
        );
    }
}

#[test]
fn a_torn_multi_event_append_must_still_chain() {
    let env = TestEnv::new();
    let text = with_batch(2, "");
    // Break the prev of the batch's second line (file line 5).
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let n = lines[4].len();
    lines[4].replace_range(n - 66..n - 2, &"0".repeat(64));
    env.write(lines.join("\n") + "\n");
    let stderr = env.fails(3, &["balance"]);
    assert!(stderr.contains("line 5"), "{stderr}");
    env.fails(3, &["deposit", "a", "1"]);
}

/// Every command refuses a corrupt journal naming `line`, and leaves it as is.
fn refused_everywhere(env: &TestEnv, line: usize, what: &str) {
    for args in [
        &["balance"][..],
        &["history", "--json"],
        &["deposit", "a", "1"],
        &["create", "z"],
    ] {
        let stderr = env.fails(3, args);
        assert!(
            stderr.contains(&format!("line {line}:")),
            "{what}: `ledger {args:?}` should name line {line}: {stderr}"
        );
    }
}

#[test]
fn a_corrupt_line_anywhere_stops_every_command() {
    let base = journal();
    let lines = base.lines();
    let prev4 = &lines[3][lines[3].len() - 66..lines[3].len() - 2];
    let edit = |n: usize, from: &str, to: &str| {
        let mut l = lines.clone();
        assert!(l[n - 1].contains(from), "{from} in line {n}");
        l[n - 1] = l[n - 1].replacen(from, to, 1);
        l
    };
    let cases: Vec<(&str, Vec<String>, usize)> = vec![
        // The edit itself is a valid line; the next line's prev exposes it.
        ("edited amount", edit(4, r#""50.00""#, r#""60.00""#), 5),
        (
            "amount edited past the funds",
            edit(6, r#""5.00""#, r#""500.00""#),
            6,
        ),
        (
            "amount not in canonical form",
            edit(4, r#""50.00""#, r#""50""#),
            4,
        ),
        ("amount as a JSON number", edit(4, r#""50.00""#, "50.00"), 4),
        ("bad JSON", edit(4, r#""}"#, r#"""#), 4),
        ("unknown type", edit(4, "MoneyDeposited", "MoneyPrinted"), 4),
        ("edited prev", edit(4, prev4, &"0".repeat(64)), 4),
        ("edited seq", edit(4, r#""seq":3"#, r#""seq":4"#), 4),
        (
            "reordered keys",
            edit(
                4,
                &format!(r#"{{"seq":3,"at":"{AT}""#),
                &format!(r#"{{"at":"{AT}","seq":3"#),
            ),
            4,
        ),
        (
            "at before the line above",
            edit(4, AT, "2026-11-26T09:00:00.000000Z"),
            4,
        ),
        (
            "edited header",
            edit(1, AT, "2026-11-25T10:00:00.000000Z"),
            2,
        ),
        ("CRLF line end", edit(4, r#""}"#, "\"}\r"), 4),
        ("deleted line", [&lines[..3], &lines[4..]].concat(), 4),
        (
            "swapped lines",
            [&lines[..3], &lines[4..5], &lines[3..4], &lines[5..]].concat(),
            4,
        ),
        ("duplicated line", [&lines[..4], &lines[3..]].concat(), 5),
        (
            "blank line",
            [&lines[..4], &[String::new()], &lines[4..]].concat(),
            5,
        ),
        (
            "garbage appended",
            [&lines[..], &["garbage".to_owned()]].concat(),
            8,
        ),
    ];
    for (what, lines, line) in cases {
        let env = TestEnv::new();
        env.write(lines.join("\n") + "\n");
        refused_everywhere(&env, line, what);
        if line > 2 {
            // A torn tail after the damage does not hide it.
            env.write(lines.join("\n") + "\n" + TORN);
            env.fails(3, &["balance"]);
        }
    }
}

#[test]
fn a_foreign_file_is_never_read_as_a_journal_nor_written() {
    for foreign in [
        "2026-01-01 opening\n  assets  100\n  equity\n",
        "; an hledger journal\n",
        "not a journal",
        "\n",
        "{\"hello\":\"world\"}\n",
        "[1,2,3]\n",
        "{\"format\":\"ledger-journals\",\"version\":1}\n",
    ] {
        let env = TestEnv::new();
        env.write(foreign);
        for args in [
            &["balance"][..],
            &["history"],
            &["create", "a"],
            &["deposit", "a", "1"],
        ] {
            let stderr = env.fails(3, args);
            assert!(
                stderr.contains("journal.jsonl"),
                "{foreign:?}: names the path: {stderr}"
            );
        }
        assert!(!env.beside(".torn").exists());
    }
}

#[test]
fn a_journal_without_its_header_is_refused() {
    let env = journal();
    let lines = env.lines();
    env.write(lines[1..].join("\n") + "\n");
    for args in [&["balance"][..], &["deposit", "a", "1"]] {
        let stderr = env.fails(3, args);
        assert!(stderr.contains("not a ledger journal"), "{stderr}");
    }
}

#[test]
fn an_unsupported_header_is_refused() {
    for (from, to, why) in [
        (r#""version":1"#, r#""version":2"#, "version 2"),
        (r#""hash":"sha256""#, r#""hash":"sha512""#, "sha512"),
    ] {
        let header = HEADER.replace(from, to);
        let env = TestEnv::new();
        env.write(chained(
            &header,
            &[&format!(
                r#"{{"seq":1,"at":"{AT}","type":"AccountCreated","account":"a","decimals":2}}"#
            )],
        ));
        for args in [&["balance"][..], &["history"], &["deposit", "a", "1"]] {
            let stderr = env.fails(3, args);
            assert!(
                stderr.contains("line 1") && stderr.contains(why),
                "{stderr}"
            );
        }
    }
}

#[test]
fn a_write_that_appends_nothing_leaves_a_torn_tail_alone() {
    let env = journal();
    env.ok("deposit a 1 --id once");
    let torn = env.text() + TORN;
    for (code, args) in [(1, "withdraw a 1000"), (0, "deposit a 1 --id once")] {
        env.write(&torn);
        let out = env.run(args);
        assert_eq!(out.status.code(), Some(code), "{args}");
        assert_eq!(env.text(), torn, "`ledger {args}` changed the journal");
        assert!(!env.beside(".torn").exists(), "{args}");
    }
}

#[test]
fn a_well_formed_line_that_breaks_a_rule_is_corrupt() {
    let create = |name: &str, decimals: u8| {
        format!(
            r#"{{"seq":1,"at":"{AT}","type":"AccountCreated","account":"{name}","decimals":{decimals}}}"#
        )
    };
    let deposit = |seq: u8, amount: &str, extra: &str| {
        format!(
            r#"{{"seq":{seq},"at":"{AT}","type":"MoneyDeposited","account":"a","amount":"{amount}"{extra}}}"#
        )
    };
    let third = |rest: &str| format!(r#"{{"seq":3,"at":"{AT}","type":{rest}}}"#);
    let max = i128::MAX.to_string();
    let cases = [
        ("id used twice", deposit(3, "1.00", r#","id":"k""#)),
        (
            "unknown account",
            third(r#""MoneyDeposited","account":"b","amount":"1.00""#),
        ),
        (
            "overdraft",
            third(r#""MoneyWithdrawn","account":"a","amount":"5.01""#),
        ),
        (
            "duplicate account",
            third(r#""AccountCreated","account":"a","decimals":2"#),
        ),
        (
            "bad account name",
            third(r#""AccountCreated","account":"_x","decimals":2"#),
        ),
        (
            "19 decimals",
            third(r#""AccountCreated","account":"x","decimals":19"#),
        ),
        (
            "bad currency",
            third(r#""AccountCreated","account":"x","currency":"eur","decimals":2"#),
        ),
        ("zero amount", deposit(3, "0.00", "")),
        ("negative amount", deposit(3, "-1.00", "")),
        ("too many decimals", deposit(3, "1.000", "")),
        (
            "amount as a number",
            third(r#""MoneyDeposited","account":"a","amount":1.00"#),
        ),
        (
            "self-transfer",
            third(r#""TransferCompleted","from":"a","to":"a","amount":"1.00""#),
        ),
        (
            "close with money",
            third(r#""AccountClosed","account":"a""#),
        ),
        (
            "control character in memo",
            deposit(3, "1.00", r#","memo":"a\u0007b""#),
        ),
        (
            "memo too long",
            deposit(3, "1.00", &format!(r#","memo":"{}""#, "m".repeat(501))),
        ),
        ("id with a space", deposit(3, "1.00", r#","id":"a b""#)),
        ("batch of one", deposit(3, "1.00", r#","batch":1"#)),
        (
            "field of another type",
            deposit(3, "1.00", r#","owner":"x""#),
        ),
        ("unknown field", deposit(3, "1.00", r#","note":"x""#)),
        (
            "at with an offset",
            deposit(3, "1.00", "").replace("Z\"", "+00:00\""),
        ),
    ];
    for (what, line3) in &cases {
        let env = TestEnv::new();
        let first = [
            create("a", 2),
            deposit(2, "5.00", r#","id":"k""#),
            line3.clone(),
        ];
        env.write(chained(
            HEADER,
            &first.iter().map(String::as_str).collect::<Vec<_>>(),
        ));
        let stderr = env.fails(3, &["balance"]);
        assert!(stderr.contains("line 4:"), "{what}: {stderr}");
    }

    // Overflow in replay, and an event before the journal was created.
    let env = TestEnv::new();
    let first = [create("a", 0), deposit(2, &max, ""), deposit(3, "1", "")];
    env.write(chained(
        HEADER,
        &first.iter().map(String::as_str).collect::<Vec<_>>(),
    ));
    assert!(env.fails(3, &["balance"]).contains("line 4:"));
    let env = TestEnv::new();
    env.write(chained(
        &HEADER.replace("10:00:00", "10:00:01"),
        &[&create("a", 2)],
    ));
    assert!(env.fails(3, &["history"]).contains("line 2:"));
}

#[test]
fn a_header_alone_is_an_empty_journal_that_keeps_its_header() {
    let env = TestEnv::new();
    let header = HEADER.replace("2026-11-26T10", "2026-11-01T10");
    env.write(format!("{header}\n"));
    let out = env.run("balance --json");
    assert!(out.status.success() && out.stderr.is_empty(), "{out:?}");
    env.ok("create a");
    let lines = env.lines();
    assert_eq!(lines[0], header);
    let event: Value = serde_json::from_str(&lines[1]).expect("json");
    assert_eq!(
        event["prev"].as_str(),
        Some(&*sha256_hex(header.as_bytes()))
    );
}

#[test]
fn streamed_history_never_prints_an_edited_line() {
    let env = journal();
    // A read model past the edit: history's first pass, under the lock,
    // starts from it and cannot see the edit; the second pass, which prints,
    // must still never print the edited line.
    crate::readmodel::model_at(&env.journal, 6);
    let mut lines = env.lines();
    // Line 6 withdraws 5.00 from b; the edit is only caught by line 7's prev.
    lines[5] = lines[5].replace(r#""amount":"5.00""#, r#""amount":"4.00""#);
    env.write(lines.join("\n") + "\n");
    for format in ["json", "csv"] {
        let out = env
            .cmd()
            .args(["history", "--format", format])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(3));
        let stdout = String::from_utf8(out.stdout).unwrap();
        assert!(
            stdout.contains("10.00"),
            "events before the edit are printed: {stdout}"
        );
        assert!(
            !stdout.contains("4.00"),
            "the edited line was printed: {stdout}"
        );
        assert!(String::from_utf8_lossy(&out.stderr).contains("line 7"));
    }
    // Without the model the first pass sees the damage: nothing is printed.
    crate::readmodel::remove_model(&env.journal);
    let out = env.cmd().args(["history", "--json"]).output().unwrap();
    assert_eq!((out.status.code(), out.stdout.len()), (Some(3), 0));
}

#[test]
fn an_endless_last_line_is_corruption_not_a_torn_tail() {
    let env = journal();
    let mut bytes = env.bytes();
    bytes.extend(std::iter::repeat_n(b'x', 100 * 1024));
    env.write(&bytes);
    for args in [&["balance"][..], &["deposit", "a", "1"]] {
        let stderr = env.fails(3, args);
        assert!(
            stderr.contains("line 8") && stderr.contains("longer than"),
            "{stderr}"
        );
    }
}

#[test]
fn garbage_after_the_start_of_an_append_is_corruption_not_a_torn_tail() {
    let env = journal();
    // The first line of a three-event append, then an endless line.
    let other = journal();
    other
        .cmd()
        .args(["batch", "-"])
        .write_stdin("deposit a 1\ndeposit a 2\ndeposit a 3\n")
        .assert()
        .success();
    let mut bytes = env.bytes();
    bytes.extend_from_slice(other.lines()[7].as_bytes());
    bytes.push(b'\n');
    bytes.extend(std::iter::repeat_n(b'x', 100 * 1024));
    env.write(&bytes);
    for args in [&["balance"][..], &["deposit", "a", "1"]] {
        let stderr = env.fails(3, args);
        assert!(
            stderr.contains("line 9") && stderr.contains("longer than"),
            "{stderr}"
        );
    }
}
