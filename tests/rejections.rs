//! Every refusal: the right exit code, one `error: ` sentence naming what
//! is wrong, and a journal left byte for byte as it was (`TestEnv::fails`).
//! Then `--id` retries, which must succeed without writing.

use crate::common::{AT, TestEnv, one_account_journal};

/// acct1 (alice) holds 20.00 plain units, acct2 nothing; eur1 (EUR, 2
/// decimals) and eur3 (EUR, 3 decimals) hold 5; `gone` is closed. Last seq 9.
fn ledger() -> TestEnv {
    let env = TestEnv::new();
    for args in [
        "create acct1 --owner alice",
        "create acct2",
        "create eur1 --currency EUR",
        "create eur3 --currency EUR --decimals 3",
        "create gone",
        "close gone",
        "deposit acct1 20",
        "deposit eur1 5",
        "deposit eur3 5",
    ] {
        env.ok(args);
    }
    env
}

/// Asserts that `ledger args` exits `code` with stderr exactly `error: {message}`.
fn refused(env: &TestEnv, code: i32, args: &[&str], message: &str) {
    let stderr = env.fails(code, args);
    assert_eq!(stderr, format!("error: {message}\n"), "`ledger {args:?}`");
}

#[test]
fn unknown_accounts_are_refused() {
    let env = ledger();
    for args in [
        &["deposit", "nosuch", "1"][..],
        &["withdraw", "nosuch", "1"],
        &["transfer", "nosuch", "acct1", "1"],
        &["transfer", "acct1", "nosuch", "1"],
        &["close", "nosuch"],
        &["balance", "acct1", "nosuch"],
        &["history", "nosuch"],
    ] {
        refused(&env, 1, args, "unknown account nosuch");
    }
    // Names are case-sensitive.
    refused(&env, 1, &["deposit", "ACCT1", "1"], "unknown account ACCT1");
    // An account that exists only later does not exist as of before it.
    refused(
        &env,
        1,
        &["balance", "acct2", "--as-of", "1"],
        "unknown account acct2 (did you mean acct1?)",
    );
}

#[test]
fn duplicate_accounts_are_refused_even_after_closing() {
    let env = ledger();
    refused(
        &env,
        1,
        &["create", "acct1"],
        "account acct1 already exists",
    );
    refused(
        &env,
        1,
        &["create", "gone", "--currency", "EUR"],
        "account gone already exists",
    );
}

#[test]
fn closed_accounts_accept_no_movement() {
    let env = ledger();
    for args in [
        &["deposit", "gone", "1"][..],
        &["withdraw", "gone", "1"],
        &["transfer", "gone", "acct1", "1"],
        &["transfer", "acct1", "gone", "1"],
        &["close", "gone"],
    ] {
        refused(&env, 1, args, "account gone is closed");
    }
}

#[test]
fn insufficient_funds_name_the_balance_and_the_amount() {
    let env = ledger();
    refused(
        &env,
        1,
        &["withdraw", "acct1", "50"],
        "insufficient funds in acct1: balance 20.00, withdrawal 50.00",
    );
    refused(
        &env,
        1,
        &["withdraw", "acct1", "20.01"],
        "insufficient funds in acct1: balance 20.00, withdrawal 20.01",
    );
    refused(
        &env,
        1,
        &["transfer", "acct1", "acct2", "20.5"],
        "insufficient funds in acct1: balance 20.00, transfer 20.50",
    );
    refused(
        &env,
        1,
        &["withdraw", "acct2", "0.01"],
        "insufficient funds in acct2: balance 0.00, withdrawal 0.01",
    );
    // The whole balance may go.
    env.ok("withdraw acct1 20");
    assert_eq!(env.balance_of("acct1"), "0.00");
}

#[test]
fn transfers_need_the_same_currency_and_decimals() {
    let env = ledger();
    for (from, to) in [("acct1", "eur1"), ("eur1", "acct1")] {
        let stderr = env.fails(1, &["transfer", from, to, "1"]);
        assert!(
            stderr.contains("currency mismatch") && stderr.contains(from) && stderr.contains(to),
            "{stderr}"
        );
    }
    // Same code, different decimals: still a different unit.
    let stderr = env.fails(1, &["transfer", "eur1", "eur3", "1"]);
    assert!(
        stderr.contains("eur1") && stderr.contains("eur3") && stderr.contains("EUR"),
        "{stderr}"
    );
}

#[test]
fn self_transfer_is_refused() {
    let env = ledger();
    refused(
        &env,
        1,
        &["transfer", "acct1", "acct1", "1"],
        "cannot transfer from acct1 to itself",
    );
}

#[test]
fn close_needs_a_zero_balance() {
    let env = ledger();
    let stderr = env.fails(1, &["close", "acct1"]);
    assert!(
        stderr.contains("acct1") && stderr.contains("20.00"),
        "{stderr}"
    );
}

#[test]
fn overflow_of_a_balance_or_a_total_is_a_rule_rejection() {
    let max = i128::MAX.to_string();
    let env = TestEnv::new();
    env.ok("create big --decimals 0");
    env.ok("create big2 --decimals 0");
    env.ok(&format!("deposit big {max}"));
    assert_eq!(env.balance_of("big"), max);
    let stderr = env.fails(1, &["deposit", "big", "1"]);
    assert!(
        stderr.contains("overflow") && stderr.contains("big"),
        "{stderr}"
    );
    // big2 is empty, but the total of balances in the unit would not fit.
    let stderr = env.fails(1, &["deposit", "big2", "1"]);
    assert!(stderr.contains("overflow"), "{stderr}");
    // Withdrawing it all leaves the balance at zero but the total deposited
    // at its maximum.
    env.ok(&format!("withdraw big {max}"));
    let stderr = env.fails(1, &["deposit", "big", "1"]);
    assert!(stderr.contains("overflow"), "{stderr}");
}

#[test]
fn an_id_reused_for_a_different_command_is_refused() {
    let env = ledger();
    env.ok("deposit acct1 5 --id k");
    let message = "id k was already used at seq 10 for a different command";
    for args in [
        &["withdraw", "acct1", "5", "--id", "k"][..],
        &["deposit", "acct1", "6", "--id", "k"],
        &["deposit", "acct2", "5", "--id", "k"],
        &["deposit", "acct1", "5", "--id", "k", "--memo", "rent"],
        &["transfer", "acct1", "acct2", "5", "--id", "k"],
        &["create", "k", "--id", "k"],
        &["close", "acct2", "--id", "k"],
    ] {
        refused(&env, 1, args, message);
    }
    env.ok_args(&[
        "transfer", "acct1", "acct2", "1", "--id", "t", "--memo", "x",
    ]);
    refused(
        &env,
        1,
        &[
            "transfer", "acct2", "acct1", "1", "--id", "t", "--memo", "x",
        ],
        "id t was already used at seq 11 for a different command",
    );
    refused(
        &env,
        1,
        &["transfer", "acct1", "acct2", "1", "--id", "t"],
        "id t was already used at seq 11 for a different command",
    );
}

#[test]
fn expect_seq_refuses_a_journal_that_moved_on() {
    let env = ledger();
    refused(
        &env,
        1,
        &["deposit", "acct1", "1", "--expect-seq", "8"],
        "journal moved on: last seq is 9, expected 8",
    );
    refused(
        &env,
        1,
        &["create", "x", "--expect-seq", "10"],
        "journal moved on: last seq is 9, expected 10",
    );
    env.ok("deposit acct1 1 --expect-seq 9");
    assert_eq!(env.lines().len(), 11);

    let fresh = TestEnv::new();
    refused(
        &fresh,
        1,
        &["create", "a", "--expect-seq", "1"],
        "journal moved on: last seq is 0, expected 1",
    );
    fresh.ok("create a --expect-seq 0");
}

#[test]
fn malformed_amounts_are_usage_errors() {
    let env = ledger();
    for amount in [
        "-5", "+5", ".5", "5.", "1e3", "1,000", "NaN", "", "0", "0.00", " 5", "5 ", "0x10", "5..0",
        "five",
    ] {
        let stderr = env.fails(2, &["deposit", "acct1", amount]);
        assert!(
            stderr.contains(&format!("'{amount}'")),
            "{amount:?}: {stderr}"
        );
    }
    for cmd in [&["withdraw", "acct1"][..], &["transfer", "acct1", "acct2"]] {
        env.fails(2, &[cmd, &["-5"]].concat());
        env.fails(2, &[cmd, &["0"]].concat());
    }
}

#[test]
fn amounts_with_more_decimals_than_the_account_are_usage_errors() {
    let env = ledger();
    for (account, amount) in [("acct1", "1.001"), ("acct1", "1.500"), ("eur3", "0.0001")] {
        let stderr = env.fails(2, &["deposit", account, amount]);
        assert!(stderr.contains(account), "{stderr}");
    }
    // More decimals than any account can have is refused before the account
    // is even looked at.
    let stderr = env.fails(2, &["deposit", "acct1", "0.000000000000000000001"]);
    assert!(stderr.contains("more than 18 decimals"), "{stderr}");
    env.fails(2, &["withdraw", "acct1", "1.001"]);
    env.fails(2, &["transfer", "acct1", "acct2", "1.001"]);
    env.ok("create pts --decimals 0");
    env.fails(2, &["deposit", "pts", "7.0"]);
    // As many decimals as the account has is fine.
    env.ok("deposit eur3 0.001");
}

#[test]
fn amounts_too_large_for_i128_are_usage_errors() {
    let env = ledger();
    let too_many_digits = "9".repeat(40);
    let stderr = env.fails(2, &["deposit", "acct1", &too_many_digits]);
    assert!(stderr.contains("too large"), "{stderr}");
    // One more than i128::MAX minor units, once scaled to the account.
    env.fails(
        2,
        &[
            "deposit",
            "acct1",
            "1701411834604692317316873037158841057.28",
        ],
    );
    env.ok("create wei --decimals 18");
    env.fails(2, &["deposit", "wei", "1000000000000000000000"]);
}

#[test]
fn bad_account_names_are_usage_errors() {
    let env = ledger();
    let long = "a".repeat(65);
    for name in [
        "_x", ".x", "a b", "a/b", "é", "a\n", "", &long, "a,b", "a\u{1}",
    ] {
        let stderr = env.fails(2, &["create", name]);
        assert!(stderr.contains("account name"), "{name:?}: {stderr}");
        env.fails(2, &["deposit", name, "1"]);
    }
    // An option-like name is not a name either.
    env.fails(2, &["create", "-x"]);
    env.fails(2, &["transfer", "acct1", "a b", "1"]);
    env.fails(2, &["balance", "a/b"]);
    env.fails(2, &["history", "a b"]);
}

#[test]
fn bad_currency_and_decimals_are_usage_errors() {
    let env = ledger();
    for code in ["eur", "E-R", "EURO2026123", "", "EUR "] {
        let stderr = env.fails(2, &["create", "x", "--currency", code]);
        assert!(stderr.contains("currency"), "{code:?}: {stderr}");
    }
    for decimals in ["19", "-1", "two", "256", ""] {
        env.fails(2, &["create", "x", "--decimals", decimals]);
    }
}

#[test]
fn texts_and_ids_break_input_rules_as_usage_errors() {
    let env = ledger();
    let memo501 = "m".repeat(501);
    let owner201 = "o".repeat(201);
    let key129 = "k".repeat(129);
    for args in [
        &["deposit", "acct1", "1", "--memo", &memo501][..],
        &["deposit", "acct1", "1", "--memo", "tab\there"],
        &["deposit", "acct1", "1", "--memo", "two\nlines"],
        &["deposit", "acct1", "1", "--memo", "del\u{7f}"],
        &["deposit", "acct1", "1", "--memo", "bell\u{7}"],
        &["create", "x", "--owner", &owner201],
        &["create", "x", "--owner", "new\nline"],
        &["deposit", "acct1", "1", "--id", "a b"],
        &["deposit", "acct1", "1", "--id", ""],
        &["deposit", "acct1", "1", "--id", "tab\tkey"],
        &["deposit", "acct1", "1", "--id", "nb\u{a0}sp"],
        &["deposit", "acct1", "1", "--id", &key129],
        &["deposit", "acct1", "1", "--expect-seq", "-1"],
        &["deposit", "acct1", "1", "--expect-seq", "nine"],
    ] {
        env.fails(2, args);
    }
}

#[test]
fn texts_and_ids_at_their_limits_are_accepted() {
    let env = ledger();
    let memo500 = "é".repeat(500);
    let owner200 = "o".repeat(200);
    let key128 = "k".repeat(128);
    let name64 = "n".repeat(64);
    env.ok_args(&["deposit", "acct1", "1", "--memo", &memo500, "--id", &key128]);
    env.ok_args(&[
        "create",
        &name64,
        "--owner",
        &owner200,
        "--currency",
        "ABCDEFGHI0",
    ]);
    env.ok_args(&["create", "x18", "--decimals", "18"]);
    env.ok_args(&["create", "a_b.c:d@e-f"]);
    env.ok_args(&["deposit", "acct1", "1", "--id", "ключ/€"]);
    let lines = env.lines();
    assert!(lines[10].contains(&memo500) && lines[10].contains(&key128));
    assert!(lines[11].contains(&owner200));
}

#[test]
fn bad_time_bounds_and_limits_are_usage_errors() {
    let env = ledger();
    for at in [
        "2026-13-01",
        "2026-02-30",
        "tomorrow",
        "2026-11-26T10:00:00",
        "26/11/2026",
        "",
        "-1",
    ] {
        let stderr = env.fails(2, &["balance", "--as-of", at]);
        assert!(stderr.contains(&format!("'{at}'")), "{at:?}: {stderr}");
        env.fails(2, &["history", "--as-of", at]);
    }
    for args in [
        &["history", "--since", "2026-11-31"][..],
        &["history", "--until", "yesterday"],
        &["history", "--limit", "-1"],
        &["history", "--limit", "ten"],
    ] {
        env.fails(2, args);
    }
}

#[test]
fn a_repeated_id_with_the_same_command_succeeds_and_writes_nothing() {
    let env = ledger();
    let first = env.ok("transfer acct1 acct2 10.25 --memo lunch --id pay-17 --json");
    let before = env.text();
    let again = env.ok("transfer acct1 acct2 10.25 --memo lunch --id pay-17 --json");
    assert_eq!(again, first, "prints the existing event");
    assert_eq!(env.text(), before, "writes nothing");
    // In the other formats too, and the table names the seq.
    let table = env.ok("transfer acct1 acct2 10.25 --memo lunch --id pay-17");
    assert!(table.contains("seq 10"), "{table}");
    let csv = env.ok("transfer acct1 acct2 10.25 --memo lunch --id pay-17 --format csv");
    assert!(csv.contains("\r\n10,"), "{csv}");
    assert_eq!(env.text(), before);
    assert_eq!(env.balance_of("acct2"), "10.25");
}

#[test]
fn a_repeated_id_compares_amounts_by_value() {
    let env = ledger();
    let first = env.ok("deposit acct1 5 --id v --json");
    let before = env.text();
    for same in ["5.00", "5.0", "05"] {
        let again = env.ok(&format!("deposit acct1 {same} --id v --json"));
        assert_eq!(again, first, "{same}");
    }
    assert_eq!(env.text(), before);
    env.fails(1, &["deposit", "acct1", "5.01", "--id", "v"]);
}

#[test]
fn a_repeated_create_must_match_every_field() {
    let env = ledger();
    let first = env.ok("create x --owner olga --currency USD --id c1 --json");
    assert_eq!(
        env.ok("create x --owner olga --currency USD --id c1 --json"),
        first
    );
    for args in [
        &[
            "create",
            "x",
            "--owner",
            "oleg",
            "--currency",
            "USD",
            "--id",
            "c1",
        ][..],
        &["create", "x", "--currency", "USD", "--id", "c1"],
        &["create", "x", "--owner", "olga", "--id", "c1"],
        &[
            "create",
            "x",
            "--owner",
            "olga",
            "--currency",
            "USD",
            "--decimals",
            "3",
            "--id",
            "c1",
        ],
    ] {
        env.fails(1, args);
    }
}

#[test]
fn the_id_check_comes_before_every_other_rule() {
    let env = TestEnv::new();
    env.ok("create acct");
    let first = env.ok("deposit acct 5 --id k --json");
    env.ok("withdraw acct 5");
    env.ok("close acct");
    let before = env.text();
    // The account is closed and empty, and the journal has moved on: the
    // retry still succeeds, as the command it repeats did.
    assert_eq!(env.ok("deposit acct 5 --id k --json"), first);
    assert_eq!(env.ok("deposit acct 5 --id k --expect-seq 0 --json"), first);
    assert_eq!(env.text(), before);
    // A different command under that id is refused for the id, not the rules.
    let stderr = env.fails(1, &["deposit", "acct", "6", "--id", "k"]);
    assert!(
        stderr.contains("id k was already used at seq 2"),
        "{stderr}"
    );
}

#[test]
fn a_repeated_id_is_found_anywhere_in_a_long_journal() {
    // Over 64 KiB, so the stored event is looked up by bisection.
    let env = TestEnv::new();
    env.write(one_account_journal(600, |seq| {
        format!(
            r#"{{"seq":{seq},"at":"{AT}","type":"MoneyDeposited","account":"a","amount":"{seq}.00","id":"k{seq}"}}"#
        )
    }));
    assert!(env.text().len() > 64 * 1024);
    let lines = env.lines();
    for seq in [2, 3, 299, 300, 301, 599, 600] {
        let out = env.ok(&format!("deposit a {seq} --id k{seq} --json"));
        assert_eq!(out, format!("{}\n", lines[seq]), "k{seq}");
    }
    refused(
        &env,
        1,
        &["deposit", "a", "1", "--id", "k450"],
        "id k450 was already used at seq 450 for a different command",
    );
    assert_eq!(env.lines().len(), 601);
}

#[test]
fn usage_errors_are_one_line_with_controls_escaped() {
    let env = ledger();
    for args in [
        &["deposit", "a\nb\u{1b}[2J", "1"][..],
        &["withdraw", "acct1", "-5"],
        &["transfer", "acct1"],
        &["balance", "--as-of", "yesterday"],
    ] {
        let stderr = env.fails(2, args);
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(!stderr.contains('\u{1b}'), "{args:?}: {stderr}");
    }
}

#[test]
fn history_of_an_unknown_account_prints_nothing_in_any_format() {
    let env = ledger();
    for format in ["table", "json", "csv"] {
        for follow in [&[][..], &["--follow"]] {
            let out = env
                .cmd()
                .args(["history", "nosuch", "--format", format])
                .args(follow)
                .output()
                .unwrap();
            assert_eq!(out.status.code(), Some(1), "{format} {follow:?}");
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(stdout.is_empty(), "{format} {follow:?}: {stdout}");
        }
    }
}

/// Messages quote what was typed; a huge argument comes back shortened,
/// still one line, start and end kept.
#[test]
fn a_huge_argument_is_quoted_shortened() {
    let env = ledger();
    let huge = "x".repeat(100_000);
    for args in [
        vec!["deposit", huge.as_str(), "1"],
        vec!["deposit", "acct1", "1", "--memo", huge.as_str()],
    ] {
        let stderr = env.fails(2, &args);
        assert_eq!(stderr.lines().count(), 1, "{}", &stderr[..200]);
        assert!(stderr.len() < 1200, "{} bytes", stderr.len());
        assert!(stderr.contains("characters left out"), "{stderr}");
    }
    let before = env.bytes();
    let stderr = env
        .cmd()
        .arg("batch")
        .write_stdin(format!("deposit acct1 1\ndeposit {huge} 1\n"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&stderr.stderr);
    assert_eq!(stderr.status.code(), Some(2));
    assert_eq!(env.bytes(), before, "the refused batch changed the journal");
    assert!(text.starts_with("error: line 2: "), "{}", &text[..100]);
    assert!(text.len() < 1200, "{} bytes", text.len());
}
