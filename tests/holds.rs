//! Holds: two-phase transfers (SPEC 11), end to end.

use crate::common::{HEADER, TestEnv, chained};

/// A customer with 100.00 and a shop, both in EUR, at the pinned clock
/// (2026-11-26T10:00:00Z).
fn shop() -> TestEnv {
    TestEnv::with(&[
        "create cust --currency EUR",
        "create shop --currency EUR",
        "create usd --currency USD",
        "deposit cust 100",
    ])
}

/// `balance ACCOUNT --json` of one account: (balance, held, available).
#[track_caller]
fn figures(env: &TestEnv, args: &str) -> (String, String, String) {
    let doc: serde_json::Value =
        serde_json::from_str(&env.ok(&format!("balance {args} --json"))).expect("balance json");
    let a = &doc["accounts"][0];
    let s = |k: &str| a[k].as_str().expect("money string").to_owned();
    (s("balance"), s("held"), s("available"))
}

fn owned(b: &str, h: &str, a: &str) -> (String, String, String) {
    (b.to_owned(), h.to_owned(), a.to_owned())
}

#[test]
fn an_order_is_held_then_captured_to_the_shop() {
    let env = shop();
    let out = env.ok("hold cust 30 --to shop --expires 2026-12-31 --id order-1 --memo A-1");
    assert!(
        out.starts_with("seq 5: hold 30.00 of cust for shop"),
        "{out}"
    );
    let line = &env.lines()[5];
    assert!(
        line.contains(r#""type":"FundsHeld","account":"cust","amount":"30.00","to":"shop","expires":"2027-01-01T00:00:00.000000Z","id":"order-1","memo":"A-1","prev""#),
        "{line}"
    );
    assert_eq!(figures(&env, "cust"), owned("100.00", "30.00", "70.00"));
    let totals = env.ok("balance --json");
    assert!(totals.contains(r#"{"currency":"EUR","decimals":2,"balance":"100.00","held":"30.00","available":"70.00"}"#), "{totals}");
    // Part of it ships: the rest is freed.
    env.ok("capture --of-id order-1 20 --id ship-1");
    assert!(env.lines()[6].contains(r#""type":"HoldCaptured","hold":5,"account":"cust","to":"shop","amount":"20.00","id":"ship-1""#));
    assert_eq!(figures(&env, "cust"), owned("80.00", "0.00", "80.00"));
    assert_eq!(figures(&env, "shop"), owned("20.00", "0.00", "20.00"));
    // Retried with its id: a repeat, nothing written.
    let before = env.bytes();
    assert!(
        env.ok("capture --of-id order-1 20 --id ship-1")
            .contains("already recorded")
    );
    assert_eq!(env.bytes(), before);
    let table = env.ok("history cust");
    assert!(
        table.contains("capture 20.00 of hold 5: cust to shop"),
        "{table}"
    );
    assert!(env.ok("verify").contains("ok:"));
}

#[test]
fn a_capture_without_to_takes_the_money_out_and_a_release_frees_it() {
    let env = shop();
    env.ok("hold cust 10");
    env.ok("hold cust 15");
    env.ok("capture 5");
    assert_eq!(figures(&env, "cust"), owned("90.00", "15.00", "75.00"));
    env.ok("release 6");
    assert_eq!(figures(&env, "cust"), owned("90.00", "0.00", "90.00"));
    let verify = env.ok("verify");
    assert!(
        verify.contains("10.00"),
        "the capture counts as withdrawn: {verify}"
    );
}

#[test]
fn every_refusal_names_the_hold_and_leaves_the_journal_as_it_was() {
    let env = shop();
    env.ok("hold cust 60 --to shop --id h");
    env.ok("hold cust 10 --expires 2026-11-27T00:00:00Z");
    let cases: [(&[&str], i32, &str); 13] = [
        (
            &["withdraw", "cust", "31"],
            1,
            "insufficient funds in cust: balance 100.00, held 70.00, available 30.00, withdrawal 31.00",
        ),
        (
            &["transfer", "cust", "shop", "31"],
            1,
            "available 30.00, transfer 31.00",
        ),
        (&["hold", "cust", "31"], 1, "available 30.00, hold 31.00"),
        (
            &["hold", "cust", "1", "--to", "usd"],
            1,
            "currency mismatch",
        ),
        (
            &["hold", "cust", "1", "--to", "cust"],
            1,
            "cannot transfer from cust to itself",
        ),
        (
            &["hold", "cust", "1", "--to", "nobody"],
            1,
            "unknown account nobody",
        ),
        (
            &["hold", "cust", "1", "--expires", "2026-11-26T09:00:00Z"],
            1,
            "a hold must expire after it is placed",
        ),
        (
            &["capture", "5", "61"],
            1,
            "cannot capture 61.00 of hold 5: it holds 60.00",
        ),
        (&["capture", "4"], 1, "there is no hold at seq 4"),
        (&["release", "99"], 1, "there is no hold at seq 99"),
        (
            &["close", "shop"],
            1,
            "cannot close shop: hold 5 is active on it",
        ),
        (&["capture", "x"], 2, "invalid value 'x' for <HOLD>"),
        (&["hold", "cust", "1", "--expires", "soon"], 2, "'soon'"),
    ];
    env.refusals(&cases);
    env.ok("capture --of-id h");
    env.refusals(&[
        (&["capture", "5"], 1, "hold 5 was already captured at seq 7"),
        (&["release", "5"], 1, "hold 5 was already captured at seq 7"),
    ]);
    env.ok("release 6");
    env.refusals(&[(&["capture", "6"], 1, "hold 6 was already released at seq 8")]);
}

#[test]
fn an_expired_hold_frees_its_money_and_can_only_be_released() {
    let env = shop();
    env.ok("hold cust 40 --expires 2026-11-27");
    assert_eq!(figures(&env, "cust"), owned("100.00", "40.00", "60.00"));
    let later = "2026-11-28T00:00:00Z";
    let before = env.bytes();
    let out = env
        .cmd()
        .env("LEDGER_TEST_CLOCK", later)
        .args(["capture", "5"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        env.bytes(),
        before,
        "the refused capture changed the journal"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("hold 5 expired at 2026-11-28T00:00:00.000000Z; it can only be released"),
        "{stderr}"
    );
    // Expired: the money is available again, without anything written.
    env.ok_at(later, "withdraw cust 100");
    env.ok_at(later, "release 5");
    assert!(env.ok("verify").contains("ok:"));
}

#[test]
fn reads_judge_expiry_at_the_moment_they_describe() {
    let env = shop();
    env.ok("hold cust 40 --expires 2026-11-27");
    env.ok_at("2026-11-28T12:00:00Z", "deposit shop 1");
    let held = |args: &str| figures(&env, &format!("cust {args}")).1;
    // The pinned clock (the 26th) is before the expiry: held now.
    assert_eq!(held(""), "40.00");
    assert_eq!(held("--as-of 5"), "40.00", "at the hold's own at");
    assert_eq!(held("--as-of 2026-11-27T23:59:59Z"), "40.00");
    assert_eq!(
        held("--as-of 2026-11-28T00:00:00Z"),
        "0.00",
        "lapsed at its expiry"
    );
    // A date bound: the last instant of that day. The hold given that date
    // still counts on it, not the day after.
    assert_eq!(held("--as-of 2026-11-27"), "40.00");
    assert_eq!(held("--as-of 2026-11-28"), "0.00");
    assert_eq!(
        held("--as-of 6"),
        "0.00",
        "at the deposit's at, after the expiry"
    );
}

#[test]
fn a_batch_line_may_capture_a_hold_an_earlier_line_placed() {
    let env = shop();
    let short = env.file(
        "short.txt",
        "hold cust 30 --to shop --id o1\ncapture --of-id o1 --id c1\nhold cust 80 --id o2\n",
    );
    let twice = env.file(
        "twice.txt",
        "hold cust 30 --to shop --id o1\ncapture --of-id o1 --id c1\nrelease --of-id o1\n",
    );
    env.refusals(&[
        (
            &["batch", &short],
            1,
            "line 3: insufficient funds in cust: balance 70.00, hold 80.00",
        ),
        (
            &["batch", &twice],
            1,
            "line 3: hold 5 was already captured at seq 6",
        ),
    ]);
    let orders = env.file(
        "orders.txt",
        "hold cust 30 --to shop --id o1\ncapture --of-id o1 --id c1\n",
    );
    env.ok_args(&["batch", &orders]);
    assert_eq!(figures(&env, "shop"), owned("30.00", "0.00", "30.00"));
}

#[test]
fn a_capture_is_reversed_by_moving_the_money_back() {
    let env = shop();
    env.ok("hold cust 30 --to shop");
    env.ok("capture 5 12.5");
    env.ok("hold cust 5");
    env.ok("capture 7");
    env.ok("reverse 6");
    env.ok("reverse 8");
    let lines = env.lines();
    assert!(
        lines[9].contains(
            r#""type":"TransferCompleted","from":"shop","to":"cust","amount":"12.50","reverses":6"#
        ),
        "{}",
        lines[9]
    );
    assert!(
        lines[10]
            .contains(r#""type":"MoneyDeposited","account":"cust","amount":"5.00","reverses":8"#),
        "{}",
        lines[10]
    );
    assert_eq!(figures(&env, "cust"), owned("100.00", "0.00", "100.00"));
    env.fails(1, &["reverse", "5"]);
}

#[test]
fn verify_names_a_capture_the_rules_refuse() {
    let env = TestEnv::new();
    let at = |t: &str| format!("2026-11-26T{t}.000000Z");
    let created = format!(
        r#"{{"seq":1,"at":"{}","type":"AccountCreated","account":"a","decimals":2}}"#,
        at("10:00:00")
    );
    let deposit = format!(
        r#"{{"seq":2,"at":"{}","type":"MoneyDeposited","account":"a","amount":"50.00"}}"#,
        at("10:00:00")
    );
    let hold = format!(
        r#"{{"seq":3,"at":"{}","type":"FundsHeld","account":"a","amount":"20.00","expires":"{}"}}"#,
        at("10:00:00"),
        at("11:00:00")
    );
    let expired = format!(
        r#"{{"seq":4,"at":"{}","type":"HoldCaptured","hold":3,"account":"a","amount":"20.00"}}"#,
        at("11:00:00")
    );
    let larger = format!(
        r#"{{"seq":4,"at":"{}","type":"HoldCaptured","hold":3,"account":"a","amount":"25.00"}}"#,
        at("10:30:00")
    );
    for (capture, why) in [
        (expired, "hold 3 expired"),
        (larger, "cannot capture 25.00 of hold 3"),
    ] {
        env.write(chained(HEADER, &[&created, &deposit, &hold, &capture]));
        let stderr = env.fails(3, &["verify"]);
        assert!(
            stderr.contains("line 5:") && stderr.contains(why),
            "{stderr}"
        );
    }
}
