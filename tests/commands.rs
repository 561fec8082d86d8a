//! The everyday commands end to end: the tour of the issue, every output
//! format, `--as-of`, history bounds, extreme decimals, help and completions.

use serde_json::{Value, json};

use crate::common::{AT, TestEnv, one_account_journal};

/// The tour of the issue, up to the refused cross-currency transfer.
fn tour() -> TestEnv {
    let env = TestEnv::new();
    env.ok("create acct1 --owner alice");
    env.ok("create acct2 --owner bob");
    env.ok("create eur1 --currency EUR");
    env.ok("deposit acct1 50");
    env.ok("withdraw acct1 20");
    env.ok("transfer acct1 acct2 10.25 --memo lunch --id pay-17");
    env
}

/// Parses JSON Lines.
fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// The `seq`s of JSON Lines output.
fn seqs(text: &str) -> Vec<u64> {
    json_lines(text)
        .iter()
        .map(|e| e["seq"].as_u64().expect("seq"))
        .collect()
}

#[test]
fn tour_of_the_issue() {
    let env = tour();
    let stderr = env.fails(1, &["transfer", "acct1", "eur1", "1"]);
    assert!(stderr.contains("currency mismatch"), "{stderr}");

    let all = env.ok("balance");
    for (name, owner, amount) in [
        ("acct1", "alice", "19.75"),
        ("acct2", "bob", "10.25"),
        ("eur1", "EUR", "0.00"),
    ] {
        let row = all
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("no row for {name}: {all}"));
        assert!(row.contains(owner) && row.ends_with(amount), "{row}");
    }
    assert!(all.lines().any(|l| l.ends_with("30.00")), "total: {all}");
    assert!(all.contains("as of seq 6"), "{all}");

    let one = env.ok("balance acct1");
    assert!(one.contains("19.75") && one.contains("alice"), "{one}");
    assert!(!one.contains("acct2") && !one.contains("eur1"), "{one}");

    let history = env.ok("history acct1");
    let rows: Vec<&str> = history.lines().collect();
    assert!(rows[0].contains("BALANCE"), "{history}");
    assert_eq!(rows.len(), 5, "header and acct1's 4 events: {history}");
    for (row, (seq, balance)) in
        rows[1..]
            .iter()
            .zip([(1, "0.00"), (4, "50.00"), (5, "30.00"), (6, "19.75")])
    {
        assert!(row.trim_start().starts_with(&seq.to_string()), "{row}");
        assert!(
            row.contains(&format!(" {balance}")),
            "{row} lacks balance {balance}"
        );
    }
    let transfer = history.lines().last().expect("row");
    assert!(
        transfer.contains("lunch") && transfer.contains("pay-17"),
        "{transfer}"
    );

    env.ok("close eur1");
    let closed = &env.balances()["accounts"][2];
    assert_eq!(
        (&closed["account"], &closed["closed"]),
        (&json!("eur1"), &json!(true))
    );
}

#[test]
fn balance_json_has_the_contract_shape() {
    let env = tour();
    env.ok("close eur1");
    let out = env.ok("balance --json");
    assert_eq!(
        out.lines().count(),
        1,
        "one JSON document on one line: {out}"
    );
    let mut doc: Value = serde_json::from_str(&out).expect("json");
    // Totals come per currency and decimals; their order is not the contract.
    doc["totals"]
        .as_array_mut()
        .expect("totals")
        .sort_by_key(|t| t["currency"].as_str().unwrap_or("").to_owned());
    assert_eq!(
        doc,
        json!({
            "as_of_seq": 7,
            "accounts": [
                {"account": "acct1", "owner": "alice", "currency": null, "decimals": 2, "balance": "19.75", "held": "0.00", "available": "19.75", "closed": false},
                {"account": "acct2", "owner": "bob", "currency": null, "decimals": 2, "balance": "10.25", "held": "0.00", "available": "10.25", "closed": false},
                {"account": "eur1", "owner": null, "currency": "EUR", "decimals": 2, "balance": "0.00", "held": "0.00", "available": "0.00", "closed": true},
            ],
            "totals": [
                {"currency": null, "decimals": 2, "balance": "30.00", "held": "0.00", "available": "30.00"},
                {"currency": "EUR", "decimals": 2, "balance": "0.00", "held": "0.00", "available": "0.00"},
            ],
        })
    );
}

#[test]
fn balance_of_named_accounts_totals_only_those() {
    let env = tour();
    let doc: Value = serde_json::from_str(&env.ok("balance acct2 eur1 --json")).expect("json");
    let names: Vec<&str> = doc["accounts"]
        .as_array()
        .expect("accounts")
        .iter()
        .map(|a| a["account"].as_str().expect("name"))
        .collect();
    assert_eq!(names, ["acct2", "eur1"]);
    let plain = doc["totals"]
        .as_array()
        .expect("totals")
        .iter()
        .find(|t| t["currency"].is_null())
        .expect("plain total");
    assert_eq!(plain["balance"], "10.25");
}

#[test]
fn history_json_is_the_stored_lines_unchanged() {
    let env = tour();
    let out = env.ok("history --json");
    let stored: Vec<String> = env.lines().into_iter().skip(1).collect();
    assert_eq!(out.lines().collect::<Vec<_>>(), stored);
}

#[test]
fn history_of_an_account_adds_its_change_and_running_balance_to_each_stored_line() {
    let env = tour();
    let lines = env.lines();
    for (account, expected) in [
        (
            "acct1",
            vec![
                (1, "0.00", "0.00"),
                (4, "50.00", "50.00"),
                (5, "-20.00", "30.00"),
                (6, "-10.25", "19.75"),
            ],
        ),
        ("acct2", vec![(2, "0.00", "0.00"), (6, "10.25", "10.25")]),
    ] {
        let out = env.ok(&format!("history {account} --json"));
        let want: Vec<String> = expected
            .iter()
            .map(|(seq, change, balance)| {
                let stored = &lines[*seq];
                let body = stored.strip_suffix('}').expect("object");
                format!(r#"{body},"change":"{change}","balance":"{balance}"}}"#)
            })
            .collect();
        assert_eq!(out.lines().collect::<Vec<_>>(), want, "history {account}");
    }
}

#[test]
fn every_write_command_with_json_prints_its_stored_line() {
    let env = TestEnv::new();
    for args in [
        "create acct1 --owner alice --currency EUR --json",
        "create acct2 --currency EUR --format json",
        "deposit acct1 50 --id d1 --json",
        "withdraw acct1 0.5 --json",
        "transfer acct1 acct2 10.25 --id pay-17 --json",
        "transfer acct2 acct1 10.25 --json",
        "close acct2 --json",
    ] {
        let out = env.ok(args);
        let last = env.lines().pop().expect("a line");
        assert_eq!(out, format!("{last}\n"), "`ledger {args}`");
    }
}

#[test]
fn csv_outputs_have_a_header_row_and_rfc4180_records() {
    let env = tour();
    env.ok_args(&["deposit", "acct2", "1", "--memo", r#"a, "quoted" memo"#]);

    let balance = env.ok("balance --format csv");
    assert_eq!(
        balance,
        "account,owner,currency,decimals,balance,closed,as_of_seq,held,available\r\n\
         acct1,alice,,2,19.75,false,7,0.00,19.75\r\n\
         acct2,bob,,2,11.25,false,7,0.00,11.25\r\n\
         eur1,,EUR,2,0.00,false,7,0.00,0.00\r\n"
    );

    let header = "seq,at,type,account,from,to,amount,owner,currency,decimals,hold,expires,date,reverses,tags,id,memo,batch,prev";
    let history = env.ok("history --format csv");
    let rows: Vec<&str> = history.split("\r\n").collect();
    assert_eq!(rows[0], header);
    assert_eq!(
        rows.len(),
        1 + 7 + 1,
        "header, 7 events, final CRLF: {history}"
    );
    let line6 = &env.lines()[6];
    let prev6 = &line6[line6.len() - 66..line6.len() - 2];
    assert_eq!(
        rows[6],
        format!("6,{AT},TransferCompleted,,acct1,acct2,10.25,,,,,,,,,pay-17,lunch,,{prev6}")
    );
    assert!(
        rows[7].contains(r#","a, ""quoted"" memo","#),
        "a cell with a comma or quote is quoted: {}",
        rows[7]
    );

    let mine = env.ok("history acct1 --format csv");
    assert_eq!(
        mine.split("\r\n").next(),
        Some(&*format!("{header},change,balance"))
    );
    assert!(
        mine.split("\r\n")
            .nth(2)
            .expect("row")
            .ends_with(",50.00,50.00")
    );

    let write = env.ok("deposit acct1 1 --format csv");
    let rows: Vec<&str> = write.split("\r\n").collect();
    assert_eq!(rows[0], header);
    assert!(rows[1].starts_with("8,") && rows[1].contains(",MoneyDeposited,acct1,,,1.00,"));
}

/// An account with events on four days:
/// seq 1 on the 24th, 2 on the 25th at noon, 3 in the last microsecond of
/// the 26th, 4 in the first instant of the 27th.
fn dated() -> TestEnv {
    let env = TestEnv::new();
    env.ok_at("2026-11-24T09:00:00Z", "create a");
    env.ok_at("2026-11-25T12:00:00Z", "deposit a 10");
    env.ok_at("2026-11-26T23:59:59.999999Z", "deposit a 20");
    env.ok_at("2026-11-27T00:00:00Z", "deposit a 40");
    env
}

/// `(as_of_seq, balance of a or None)` of `balance --as-of AT --json`.
fn as_of(env: &TestEnv, at: &str) -> (u64, Option<String>) {
    let doc: Value =
        serde_json::from_str(&env.ok(&format!("balance --as-of {at} --json"))).expect("json");
    let balance = doc["accounts"][0]["balance"].as_str().map(str::to_owned);
    (doc["as_of_seq"].as_u64().expect("as_of_seq"), balance)
}

#[test]
fn as_of_a_seq_a_timestamp_or_a_date() {
    let env = dated();
    let some = |s: &str| Some(s.to_owned());
    for (at, expected) in [
        ("0", (0, None)),
        ("1", (1, some("0.00"))),
        ("2", (2, some("10.00"))),
        ("4", (4, some("70.00"))),
        // A seq past the end gives the latest state, and says which.
        ("99", (4, some("70.00"))),
        // Timestamps are inclusive, and any offset is converted to UTC.
        ("2026-11-25T11:59:59.999999Z", (1, some("0.00"))),
        ("2026-11-25T12:00:00Z", (2, some("10.00"))),
        ("2026-11-25T14:00:00+02:00", (2, some("10.00"))),
        ("2026-11-24T08:59:59Z", (0, None)),
        // A date reaches the end of that day, UTC.
        ("2026-11-23", (0, None)),
        ("2026-11-25", (2, some("10.00"))),
        ("2026-11-26", (3, some("30.00"))),
        ("2026-11-27", (4, some("70.00"))),
    ] {
        assert_eq!(as_of(&env, at), expected, "--as-of {at}");
    }
    let table = env.ok("balance --as-of 2");
    assert!(
        table.contains("10.00") && table.contains("as of seq 2"),
        "{table}"
    );
}

#[test]
fn history_since_and_until_are_inclusive_whole_days() {
    let env = dated();
    for (bounds, expected) in [
        ("--since 2026-11-25 --until 2026-11-26", vec![2, 3]),
        ("--since 2026-11-26", vec![3, 4]),
        ("--until 2026-11-24", vec![1]),
        ("--since 2026-11-27T00:00:00Z", vec![4]),
        ("--until 2026-11-25T12:00:00Z", vec![1, 2]),
        ("--since 2026-11-25T12:00:00.000001Z", vec![3, 4]),
        ("--since 2026-11-28", vec![]),
        ("--as-of 2026-11-26", vec![1, 2, 3]),
        ("--as-of 2", vec![1, 2]),
    ] {
        assert_eq!(
            seqs(&env.ok(&format!("history {bounds} --json"))),
            expected,
            "history {bounds}"
        );
    }
}

#[test]
fn history_limit_keeps_the_last_n_oldest_first() {
    let env = dated();
    for (args, expected) in [
        ("--limit 2", vec![3, 4]),
        ("--limit 1", vec![4]),
        ("--limit 10", vec![1, 2, 3, 4]),
        ("--limit 0", vec![]),
        ("--until 2026-11-26 --limit 2", vec![2, 3]),
        ("a --limit 3", vec![2, 3, 4]),
    ] {
        assert_eq!(
            seqs(&env.ok(&format!("history {args} --json"))),
            expected,
            "history {args}"
        );
    }
    let table = env.ok("history --limit 2");
    let rows: Vec<&str> = table.lines().skip(1).collect();
    assert_eq!(rows.len(), 2, "{table}");
    assert!(rows[0].trim_start().starts_with('3') && rows[1].trim_start().starts_with('4'));
}

#[test]
fn running_balance_counts_events_outside_the_selection() {
    let env = dated();
    let out = json_lines(&env.ok("history a --since 2026-11-26 --json"));
    let got: Vec<(&Value, &Value)> = out.iter().map(|e| (&e["seq"], &e["balance"])).collect();
    assert_eq!(
        got,
        [(&json!(3), &json!("30.00")), (&json!(4), &json!("70.00"))]
    );
}

#[test]
fn zero_decimal_accounts_use_whole_units() {
    let env = TestEnv::new();
    env.ok("create pts --decimals 0");
    let line: Value = serde_json::from_str(&env.ok("deposit pts 7 --json")).expect("json");
    assert_eq!(line["amount"], "7");
    env.ok("withdraw pts 2");
    assert_eq!(env.balance_of("pts"), "5");
    let doc = env.balances();
    assert_eq!(doc["accounts"][0]["decimals"], 0);
    assert_eq!(doc["totals"][0]["balance"], "5");
}

#[test]
fn eighteen_decimal_accounts_are_exact_up_to_i128() {
    let env = TestEnv::new();
    env.ok("create wei --currency ETH --decimals 18");
    let line: Value = serde_json::from_str(&env.ok("deposit wei 1.5 --json")).expect("json");
    assert_eq!(line["amount"], "1.500000000000000000");
    env.ok("deposit wei 0.000000000000000001");
    assert_eq!(env.balance_of("wei"), "1.500000000000000001");

    // i128::MAX minor units, exactly: the largest balance an account can hold.
    let env = TestEnv::new();
    env.ok("create wei --decimals 18");
    env.ok("deposit wei 170141183460469231731.687303715884105727");
    assert_eq!(
        env.balance_of("wei"),
        "170141183460469231731.687303715884105727"
    );
    env.ok("withdraw wei 0.000000000000000001");
    assert_eq!(
        env.balance_of("wei"),
        "170141183460469231731.687303715884105726"
    );
}

#[test]
fn an_empty_ledger_reads_as_empty() {
    let env = TestEnv::new();
    assert_eq!(
        env.balances(),
        json!({"as_of_seq": 0, "accounts": [], "totals": []})
    );
    assert_eq!(env.ok("history --json"), "");
}

#[test]
fn completions_print_a_shell_script() {
    let env = TestEnv::new();
    let bash = env.ok("completions bash");
    assert!(
        bash.contains("_ledger()") && bash.contains("complete "),
        "{bash}"
    );
    for sub in [
        "create",
        "deposit",
        "transfer",
        "history",
        "--as-of",
        "--expect-seq",
    ] {
        assert!(bash.contains(sub), "bash completion lacks {sub}");
    }
    assert!(env.ok("completions zsh").starts_with("#compdef ledger"));
    assert!(!env.journal.exists(), "completions touch no journal");
}

#[test]
fn every_command_help_shows_an_example() {
    let env = TestEnv::new();
    for command in [
        "create",
        "deposit",
        "withdraw",
        "transfer",
        "close",
        "balance",
        "history",
        "completions",
        "batch",
        "verify",
    ] {
        let help = env.ok(&format!("{command} --help"));
        let example = help
            .split_once("Example")
            .unwrap_or_else(|| panic!("`{command} --help` has no example:\n{help}"))
            .1;
        assert!(
            example.contains(&format!("ledger {command}")),
            "`{command} --help` example does not run {command}:\n{help}"
        );
    }
    assert!(env.ok("--help").contains("Examples:"));
}

#[test]
fn history_into_a_closed_pipe_is_a_quiet_success() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};

    // Far more output than a pipe buffers, so the writer sees the pipe close.
    let env = TestEnv::new();
    env.write(one_account_journal(1500, |seq| {
        format!(
            r#"{{"seq":{seq},"at":"{AT}","type":"MoneyDeposited","account":"a","amount":"1.00"}}"#
        )
    }));
    for format in ["json", "csv", "table"] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_ledger"))
            .env_clear()
            .arg("--file")
            .arg(&env.journal)
            .args(["history", "a", "--format", format])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn ledger");
        let mut first = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut first)
            .expect("read a line");
        // The reader is dropped here: `ledger history | head -1`.
        let out = child.wait_with_output().expect("wait");
        assert!(!first.is_empty(), "{format}");
        assert_eq!(out.status.code(), Some(0), "{format}");
        assert_eq!(String::from_utf8_lossy(&out.stderr), "", "{format}");
    }
}
