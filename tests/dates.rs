//! Book dates, time zones, tags and reversals (SPEC 9 and 10), end to end.

use crate::common::{HEADER, TestEnv, chained};

/// When October's bank lines are imported: November 3.
const NOV_3: &str = "2026-11-03T09:00:00Z";

/// A ledger whose October was recorded on November 3, with book dates.
fn october_imported_in_november() -> TestEnv {
    let env = TestEnv::new();
    for args in [
        "create acct1 --currency EUR",
        "deposit acct1 500 --date 2026-10-15 --id bank-1 --tag source=bank",
        "withdraw acct1 100 --date 2026-10-01 --tag source=bank",
        "deposit acct1 7",
    ] {
        env.ok_at(NOV_3, args);
    }
    env
}

#[test]
fn a_backdated_import_is_queried_by_day_by_timestamp_and_by_seq() {
    let env = october_imported_in_november();
    let line = &env.lines()[2];
    assert!(
        line.contains(
            r#""amount":"500.00","date":"2026-10-15","tags":{"source":"bank"},"id":"bank-1","prev""#
        ),
        "{line}"
    );
    // The books of October 10: only the withdrawal dated October 1 — a
    // balance by day may be negative.
    assert_eq!(
        env.ok("balance --as-of 2026-10-10 --json").trim(),
        r#"{"as_of_seq":3,"accounts":[{"account":"acct1","owner":null,"currency":"EUR","decimals":2,"balance":"-100.00","held":"0.00","available":"-100.00","closed":false}],"totals":[{"currency":"EUR","decimals":2,"balance":"-100.00","held":"0.00","available":"-100.00"}]}"#
    );
    assert_eq!(
        env.ok("balance --as-of 2026-10-31 --json")
            .matches(r#""400.00""#)
            .count(),
        4,
        "balance and available, of the account and of the total"
    );
    // What the ledger said on November 2 (by timestamp): nothing yet.
    assert!(
        env.ok("balance --as-of 2026-11-02T23:59:59Z")
            .contains("no accounts")
    );
    // By seq: the state after the deposit, whatever its date.
    assert!(
        env.ok("balance --as-of 2 --json")
            .contains(r#""balance":"500.00""#)
    );
    // A statement of October lists events by day, with the balance by day.
    let csv = env.ok("history acct1 --since 2026-10-01 --until 2026-10-31 --format csv");
    let rows: Vec<&str> = csv.lines().collect();
    assert_eq!(rows.len(), 3, "{csv}");
    assert!(
        rows[1].starts_with("3,") && rows[1].ends_with(",-100.00"),
        "{csv}"
    );
    assert!(
        rows[2].starts_with("2,") && rows[2].ends_with(",400.00"),
        "{csv}"
    );
    // Without a date bound, journal order and the balance in journal order.
    let json = env.ok("history acct1 --json");
    let balances: Vec<&str> = json
        .lines()
        .map(|l| l.rsplit(r#""balance":""#).next().unwrap_or(""))
        .collect();
    assert_eq!(balances, ["0.00\"}", "500.00\"}", "400.00\"}", "407.00\"}"]);
}

#[test]
fn the_zone_decides_the_day_of_an_undated_event() {
    let env = TestEnv::new();
    env.ok_at("2026-11-26T23:30:00Z", "create a");
    env.ok_at("2026-11-26T23:30:00Z", "deposit a 5");
    let on_26 = |tz: &str| {
        env.ok(&format!("balance a --as-of 2026-11-26 --tz {tz} --json"))
            .contains(r#""balance":"5.00""#)
    };
    assert!(on_26("UTC"));
    assert!(on_26("America/Los_Angeles"));
    assert!(!on_26("Europe/Paris"), "23:30Z is the 27th in Paris");
    let paris = env.ok("history --since 2026-11-27 --tz Europe/Paris");
    assert!(paris.contains("2026-11-27 00:30:00"), "{paris}");
    let stderr = env.fails(2, &["balance", "--tz", "Mars/Olympus"]);
    assert!(
        stderr.contains("unknown time zone 'Mars/Olympus'"),
        "{stderr}"
    );
}

#[test]
fn a_date_after_tomorrow_in_utc_is_refused() {
    let env = TestEnv::with(&["create a"]);
    let stderr = env.fails(1, &["deposit", "a", "5", "--date", "2026-11-28"]);
    assert!(
        stderr.contains("date 2026-11-28 is in the future"),
        "{stderr}"
    );
    env.ok("deposit a 5 --date 2026-11-27");
    let stderr = env.fails(2, &["deposit", "a", "5", "--date", "2026-11-31"]);
    assert!(stderr.contains("'2026-11-31' is not a date"), "{stderr}");
}

#[test]
fn tags_are_stored_sorted_and_filter_history() {
    let env = TestEnv::with(&["create a"]);
    env.ok("deposit a 5 --tag order=A-17 --tag channel=web");
    env.ok("deposit a 6 --tag order=A-18");
    assert!(env.lines()[2].contains(r#""tags":{"channel":"web","order":"A-17"}"#));
    let seqs = |filter: &str| -> Vec<String> {
        env.ok(&format!("history {filter} --json"))
            .lines()
            .map(|l| l[7..9].trim_end_matches(',').to_owned())
            .collect()
    };
    assert_eq!(seqs("--tag order"), ["2", "3"]);
    assert_eq!(seqs("--tag order=A-18"), ["3"]);
    assert_eq!(seqs("--tag order --tag channel=web"), ["2"]);
    for bad in ["Order=1", "a b=1", "=x"] {
        env.fails(2, &["deposit", "a", "1", "--tag", bad]);
    }
    let stderr = env.fails(2, &["deposit", "a", "1", "--tag", "k=1", "--tag", "k=2"]);
    assert!(stderr.contains("tag k is given twice"), "{stderr}");
}

#[test]
fn a_repeated_id_is_the_same_command_only_with_the_same_date_and_tags() {
    let env = TestEnv::with(&["create a"]);
    env.ok("deposit a 5 --id k --date 2026-11-01 --tag t=1");
    let again = env.ok("deposit a 5.00 --id k --date 2026-11-01 --tag t=1");
    assert!(again.contains("already recorded"), "{again}");
    for other in [
        "deposit a 5 --id k --date 2026-11-02 --tag t=1",
        "deposit a 5 --id k --date 2026-11-01",
        "deposit a 5 --id k --date 2026-11-01 --tag t=2",
    ] {
        let args: Vec<&str> = other.split(' ').collect();
        let stderr = env.fails(1, &args);
        assert!(
            stderr.contains("id k was already used at seq 2"),
            "{stderr}"
        );
    }
}

#[test]
fn every_movement_is_reversed_by_its_mirror() {
    let env = TestEnv::with(&[
        "create a",
        "create b",
        "deposit a 50 --id d",
        "withdraw a 5",
        "transfer a b 10",
    ]);
    env.ok("reverse 5 --tag why=mistake");
    env.ok("reverse 4");
    env.ok_args(&[
        "reverse",
        "--of-id",
        "d",
        "--date",
        "2026-11-20",
        "--memo",
        "typo",
    ]);
    let lines = env.lines();
    let mirrors = [
        r#""type":"TransferCompleted","from":"b","to":"a","amount":"10.00","reverses":5,"tags":{"why":"mistake"},"prev""#,
        r#""type":"MoneyDeposited","account":"a","amount":"5.00","reverses":4,"prev""#,
        r#""type":"MoneyWithdrawn","account":"a","amount":"50.00","date":"2026-11-20","reverses":3,"memo":"typo","prev""#,
    ];
    for (line, mirror) in lines[6..].iter().zip(mirrors) {
        assert!(line.contains(mirror), "{line}");
    }
    assert_eq!(env.balance_of("a"), "0.00");
    assert_eq!(env.balance_of("b"), "0.00");
    assert!(env.ok("verify").contains("ok:"));
    let table = env.ok("history a");
    assert!(
        table.contains("reverse seq 3: withdraw 50.00 from a (booked 2026-11-20)"),
        "{table}"
    );
}

#[test]
fn reversals_are_refused_naming_the_seq() {
    let env = TestEnv::with(&[
        "create a",
        "deposit a 50 --id d",
        "withdraw a 40",
        "deposit a 1",
    ]);
    let cases: [(&[&str], i32, &str); 8] = [
        (
            &["reverse", "1"],
            1,
            "cannot reverse seq 1: it is AccountCreated, not a money movement",
        ),
        (
            &["reverse", "--of-id", "d"],
            1,
            "cannot reverse seq 2: insufficient funds in a: balance 11.00, withdrawal 50.00; the money must come back first",
        ),
        (&["reverse", "9"], 1, "there is no event at seq 9"),
        (&["reverse", "0"], 1, "there is no event at seq 0"),
        (
            &["reverse", "--of-id", "nope"],
            1,
            "no event was written with id nope",
        ),
        (&["reverse"], 2, "reverse needs the SEQ"),
        (&["reverse", "2", "--of-id", "d"], 2, "not both"),
        (&["reverse", "x"], 2, "'x'"),
    ];
    env.refusals(&cases);
    env.ok("reverse 4");
    env.refusals(&[
        (
            &["reverse", "4"],
            1,
            "cannot reverse seq 4: it was already reversed at seq 5",
        ),
        (
            &["reverse", "5"],
            1,
            "cannot reverse seq 5: it is itself the reversal of seq 4",
        ),
    ]);
    env.ok("withdraw a 10");
    env.ok("close a");
    env.refusals(&[(
        &["reverse", "3"],
        1,
        "cannot reverse seq 3: account a is closed",
    )]);
}

#[test]
fn a_batch_line_may_reverse_what_an_earlier_line_wrote() {
    let env = TestEnv::with(&["create a"]);
    let twice = env.file(
        "twice.txt",
        "deposit a 500 --id oops\nreverse --of-id oops --id fix\ndeposit a 50 --id right\nreverse 2 --id again\n",
    );
    env.refusals(&[(
        &["batch", &twice],
        1,
        "line 4: cannot reverse seq 2: it was already reversed at seq 3",
    )]);
    let batch = env.file(
        "fix.txt",
        "deposit a 500 --id oops\nreverse --of-id oops --id fix\ndeposit a 50\n",
    );
    env.ok_args(&["batch", &batch]);
    assert_eq!(env.balance_of("a"), "50.00");
    // Retried whole: the ids make every line a repeat.
    env.ok_args(&["batch", &batch]);
    assert_eq!(
        env.lines().len(),
        6,
        "the undated deposit has no id: it is added again"
    );
}

#[test]
fn verify_names_a_reversal_that_is_not_the_mirror() {
    let env = TestEnv::new();
    let created = r#"{"seq":1,"at":"2026-11-26T10:00:00.000000Z","type":"AccountCreated","account":"a","decimals":2}"#;
    let deposit = r#"{"seq":2,"at":"2026-11-26T10:00:00.000000Z","type":"MoneyDeposited","account":"a","amount":"5.00"}"#;
    let cases = [
        // The amount differs from the original's.
        r#"{"seq":3,"at":"2026-11-26T10:00:00.000000Z","type":"MoneyWithdrawn","account":"a","amount":"4.00","reverses":2}"#,
        // A deposit cannot mirror a deposit.
        r#"{"seq":3,"at":"2026-11-26T10:00:00.000000Z","type":"MoneyDeposited","account":"a","amount":"5.00","reverses":2}"#,
        // Nothing at seq 7.
        r#"{"seq":3,"at":"2026-11-26T10:00:00.000000Z","type":"MoneyWithdrawn","account":"a","amount":"5.00","reverses":7}"#,
    ];
    for reversal in cases {
        env.write(chained(HEADER, &[created, deposit, reversal]));
        let stderr = env.fails(3, &["verify"]);
        assert!(stderr.contains("line 4:"), "{reversal}: {stderr}");
    }
    let good = r#"{"seq":3,"at":"2026-11-26T10:00:00.000000Z","type":"MoneyWithdrawn","account":"a","amount":"5.00","reverses":2}"#;
    env.write(chained(
        HEADER,
        &[created, deposit, good, good.replace(":3,", ":4,").as_str()],
    ));
    let stderr = env.fails(3, &["verify"]);
    assert!(
        stderr.contains("line 5: cannot reverse seq 2: it was already reversed at seq 3"),
        "{stderr}"
    );
}

#[test]
fn follow_takes_no_date_bound() {
    let env = TestEnv::with(&["create a"]);
    let stderr = env.fails(2, &["history", "--follow", "--since", "2026-11-01"]);
    assert!(stderr.contains("takes no date bound"), "{stderr}");
}

#[test]
fn a_type_this_ledger_does_not_know_is_named() {
    let env = TestEnv::new();
    let created = r#"{"seq":1,"at":"2026-11-26T10:00:00.000000Z","type":"AccountCreated","account":"a","decimals":2}"#;
    let future = r#"{"seq":2,"at":"2026-11-26T10:00:00.000000Z","type":"InterestAccrued","account":"a","amount":"1.00"}"#;
    env.write(chained(HEADER, &[created, future]));
    for args in [&["verify"][..], &["balance"], &["deposit", "a", "1"]] {
        let stderr = env.fails(3, args);
        assert!(
            stderr.contains(
                "line 3: unknown event type InterestAccrued (written by a newer ledger?)"
            ),
            "{args:?}: {stderr}"
        );
    }
}

/// The zone is found only when a command reads or shows a time: a write
/// that does neither says nothing of a `TZ` naming no zone, and one that
/// reads a date in the zone warns as a report would.
#[test]
fn only_commands_that_use_the_zone_warn_of_a_tz_naming_none() {
    let env = TestEnv::with(&["create a --currency EUR", "deposit a 50"]);
    let run = |args: &[&str]| {
        let out = env
            .cmd()
            .env("TZ", "Mars/Olympus")
            .args(args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{args:?}: {out:?}");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    assert_eq!(run(&["deposit", "a", "5"]), "");
    assert_eq!(run(&["balance", "a"]), "");
    let warning = "TZ=Mars/Olympus names no time zone; using UTC";
    let dated = run(&["hold", "a", "5", "--expires", "2026-12-31"]);
    assert_eq!(dated.matches(warning).count(), 1, "{dated}");
    let report = run(&["history", "a"]);
    assert_eq!(report.matches(warning).count(), 1, "{report}");
}

#[test]
fn the_zone_comes_from_tz_and_a_tz_naming_no_zone_falls_back_to_utc() {
    let env = TestEnv::with(&["create a"]);
    let history = |tz: &str| {
        let out = env.cmd().env("TZ", tz).arg("history").output().unwrap();
        assert_eq!(out.status.code(), Some(0));
        (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (paris, quiet) = history("Europe/Paris");
    assert!(paris.contains("2026-11-26 11:00:00"), "{paris}");
    assert_eq!(quiet, "");
    let (utc, warned) = history("Mars/Olympus");
    assert!(utc.contains("2026-11-26 10:00:00"), "{utc}");
    assert!(
        warned.contains("TZ=Mars/Olympus names no time zone; using UTC"),
        "{warned}"
    );
    // --tz wins over TZ.
    let out = env
        .cmd()
        .env("TZ", "Europe/Paris")
        .args(["history", "--tz", "UTC"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("2026-11-26 10:00:00"));
}
