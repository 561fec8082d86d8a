//! `ledger import`: bank CSVs through rules and JSON Lines commands, all
//! or nothing like `batch` (SPEC 13).

use std::fs;
use std::path::{Path, PathBuf};

use crate::common::{TestEnv, fixture, sha256_hex};

/// The accounts each fixture's rules name.
const ACCOUNTS: &[(&str, &[&str])] = &[
    (
        "eu",
        &[
            "create giro --currency EUR",
            "create savings --currency EUR",
        ],
    ),
    (
        "us",
        &[
            "create checking --currency USD",
            "create fees --currency USD",
        ],
    ),
    ("paid", &["create current --currency GBP"]),
    ("bom", &["create wallet"]),
];

fn csv(name: &str) -> PathBuf {
    fixture(&format!("import/{name}.csv"))
}

fn rules(name: &str) -> PathBuf {
    fixture(&format!("import/{name}.toml"))
}

fn env_for(name: &str) -> TestEnv {
    let (_, commands) = ACCOUNTS.iter().find(|(n, _)| *n == name).unwrap();
    TestEnv::with(commands)
}

/// Imports `file` with `rules` (extra arguments after), asserting success.
#[track_caller]
fn import(env: &TestEnv, file: &Path, rules: &Path, extra: &[&str]) -> String {
    let mut args = vec![
        "import",
        file.to_str().unwrap(),
        "--rules",
        rules.to_str().unwrap(),
    ];
    args.extend(extra);
    env.ok_args(&args)
}

/// The balances a fixture's `.balances` file expects, as `account balance` lines.
#[track_caller]
fn assert_balances(env: &TestEnv, name: &str) {
    let expected = fs::read_to_string(fixture(&format!("import/{name}.balances"))).unwrap();
    for line in expected.lines() {
        let (account, balance) = line.split_once(' ').unwrap();
        assert_eq!(env.balance_of(account), balance, "{name}: {account}");
    }
}

#[test]
fn every_fixture_imports_to_its_expected_balances_and_again_adds_nothing() {
    for (name, _) in ACCOUNTS {
        let env = env_for(name);
        let before = env.bytes();
        let dry = import(&env, &csv(name), &rules(name), &["--dry-run"]);
        assert!(dry.starts_with("would append"), "{name}: {dry}");
        assert_eq!(env.bytes(), before, "{name}: --dry-run wrote");
        let out = import(&env, &csv(name), &rules(name), &[]);
        assert!(out.starts_with("appended"), "{name}: {out}");
        assert_balances(&env, name);
        let after = env.bytes();
        let again = import(&env, &csv(name), &rules(name), &[]);
        assert!(again.starts_with("appended 0 event(s)"), "{name}: {again}");
        assert_eq!(env.bytes(), after, "{name}: a re-import wrote");
    }
}

#[test]
fn rows_carry_date_memo_tags_and_transfers() {
    let env = env_for("eu");
    import(&env, &csv("eu"), &rules("eu"), &[]);
    let text = env.text();
    assert!(text.contains(r#""type":"TransferCompleted","from":"giro","to":"savings","amount":"200.00","date":"2026-10-05""#), "{text}");
    assert!(
        text.contains(r#""memo":"Supermarkt; Einkauf / REWE""#),
        "{text}"
    );
    assert!(text.contains(r#""tags":{"source":"eu-bank"}"#), "{text}");
    assert!(!text.contains("Saldo"), "a skipped row was imported");
    let env = env_for("bom");
    import(&env, &csv("bom"), &rules("bom"), &[]);
    let text = env.text();
    assert!(
        text.contains(r#""memo":"Line one line two line three""#),
        "{text}"
    );
    assert!(text.contains(r#""id":"bom:R1""#), "{text}");
    // The BOM is not part of the first column's name, `Date`.
    assert!(text.contains(r#""date":"2026-10-01""#), "{text}");
}

#[test]
fn the_row_id_is_the_hash_of_spec_13() {
    let env = env_for("paid");
    import(&env, &csv("paid"), &rules("paid"), &[]);
    let id = |fields: &[&str], n: u32| {
        let text = format!("{}\u{1e}{n}", fields.join("\u{1f}"));
        format!("csv:{}", &sha256_hex(text.as_bytes())[..32])
    };
    let coffee = ["06 Oct 2026", "DEB", "COFFEE", "3.10", ""];
    let text = env.text();
    for want in [
        id(&["01 Oct 2026", "BAC", "SALARY", "", "1,000.00"], 1),
        id(&coffee, 1),
        id(&coffee, 2),
    ] {
        assert!(
            text.contains(&format!(r#""id":"{want}""#)),
            "{want} in {text}"
        );
    }
    // Two identical rows, both kept.
    assert_eq!(text.matches(r#""memo":"DEB COFFEE""#).count(), 2);
}

#[test]
fn a_later_export_overlapping_the_first_adds_only_its_new_rows() {
    let env = env_for("paid");
    import(&env, &csv("paid"), &rules("paid"), &[]);
    let events = env.lines().len();
    let first = fs::read_to_string(csv("paid")).unwrap();
    let mut later: Vec<&str> = first.lines().take(1).collect();
    later.extend(first.lines().skip(3));
    later.push("07 Oct 2026,DEB,BAKERY,4.20,");
    let path = env.dir.path().join("later.csv");
    fs::write(&path, later.join("\n") + "\n").unwrap();
    let out = import(&env, &path, &rules("paid"), &[]);
    assert!(out.starts_with("appended 1 event(s)"), "{out}");
    assert_eq!(env.lines().len(), events + 1);
    assert_eq!(env.balance_of("current"), "466.15");
}

fn write(env: &TestEnv, name: &str, text: &str) -> String {
    let path = env.dir.path().join(name);
    fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

#[test]
fn refusals_name_the_line_and_leave_the_journal_as_it_was() {
    let env = env_for("us");
    let data = csv("us");
    let data = data.to_str().unwrap();
    let rules_with = |name: &str, text: &str| write(&env, name, text);
    // Malformed rules: the key is named.
    let bad = rules_with("typo.toml", "acount = \"x\"\namount = \"{Amount}\"\n");
    let e = env.fails(2, &["import", data, "--rules", &bad]);
    assert!(e.contains("acount") && e.contains("line 1"), "{e}");
    let bad = rules_with(
        "column.toml",
        "account = \"checking\"\namount = \"{Amt}\"\n",
    );
    let e = env.fails(2, &["import", data, "--rules", &bad]);
    assert!(e.contains("key `amount`") && e.contains("'Amt'"), "{e}");
    let bad = rules_with(
        "regex.toml",
        "account = \"checking\"\namount = \"{Amount}\"\n[[rule]]\nwhen = { Description = \"(\" }\nskip = true\n",
    );
    let e = env.fails(2, &["import", data, "--rules", &bad]);
    assert!(e.contains("key `rule[1].when.Description`"), "{e}");
    // The reason on the message's one line, not the regex crate's drawing.
    assert!(e.contains("'(' is not a regex: unclosed group"), "{e}");
    assert_eq!(e.lines().count(), 1, "{e}");
    // An unparseable amount: line and text.
    let rows = write(
        &env,
        "amount.csv",
        "Date,Description,Amount\n10/01/2026,x,5\n10/02/2026,y,12.3.4\n",
    );
    let e = env.fails(
        2,
        &["import", &rows, "--rules", rules("us").to_str().unwrap()],
    );
    assert!(
        e.starts_with("error: line 3: amount '12.3.4' is not an amount"),
        "{e}"
    );
    // An unknown account, and an overdraft at line N (exit 1).
    let unknown = rules_with(
        "unknown.toml",
        "account = \"nope\"\namount = \"{Amount}\"\n",
    );
    let e = env.fails(1, &["import", data, "--rules", &unknown]);
    assert!(e.starts_with("error: line 2: unknown account nope"), "{e}");
    let rows = write(
        &env,
        "overdraft.csv",
        "Date,Description,Amount\n10/01/2026,a,10\n10/02/2026,b,-4\n10/03/2026,c,-7\n",
    );
    let e = env.fails(
        1,
        &["import", &rows, "--rules", rules("us").to_str().unwrap()],
    );
    assert!(
        e.starts_with("error: line 4: insufficient funds in checking"),
        "{e}"
    );
    // Credit and debit both given.
    let rows = write(
        &env,
        "both.csv",
        "Date,Type,Description,Paid out,Paid in\n01 Oct 2026,X,Y,1.00,2.00\n",
    );
    let e = env.fails(
        2,
        &["import", &rows, "--rules", rules("paid").to_str().unwrap()],
    );
    assert!(
        e.starts_with("error: line 2: both `credit` and `debit`"),
        "{e}"
    );
}

/// An amount's text names the currencies it may be in, by ISO codes (in
/// capitals or small letters) or symbols: the account must hold one of
/// them (SPEC 13: a valid amount for the account), else exit 2 naming the
/// line and the text; `3 JPY` was read as 3.00 USD before. An account of
/// plain units names no currency to compare, nor do words that are not
/// codes (`kr`, `DEB`). A transfer's amount is checked against its
/// accounts' currency when they share it; when they do not, it is a
/// currency mismatch (exit 1) whatever the text says.
#[test]
fn an_amount_in_another_currency_than_the_accounts_is_refused() {
    let env = TestEnv::with(&[
        "create checking --currency USD",
        "create savings --currency USD",
        "create giro --currency EUR",
        "create jp --currency JPY --decimals 0",
        "create gi --currency GIP",
        "create wallet",
    ]);
    let rules = |name: &str, account: &str, extra: &str| {
        write(
            &env,
            name,
            &format!("account = \"{account}\"\namount = \"{{Amount}}\"\n{extra}"),
        )
    };
    let usd = rules("usd.toml", "checking", "");
    let rows = |name: &str, amounts: &[&str]| {
        let mut text = String::from("Amount\n");
        for a in amounts {
            text.push_str(&format!("\"{a}\"\n"));
        }
        write(&env, name, &text)
    };
    for (i, foreign) in ["3 JPY", "€3.00", "EUR 1,000.00", "(2.00 gbp)", "¥300", "£2"]
        .iter()
        .enumerate()
    {
        let file = rows(&format!("foreign{i}.csv"), &["5 USD", foreign]);
        let e = env.fails(2, &["import", &file, "--rules", &usd]);
        let want = format!(
            "error: line 3: invalid amount for checking: '{foreign}' is not in USD, the account's currency"
        );
        assert!(e.starts_with(&want), "{foreign}: {e}");
    }
    let e = env.fails(
        2,
        &["import", &rows("two.csv", &["3 JPY USD"]), "--rules", &usd],
    );
    assert!(e.contains("amount '3 JPY USD' is not an amount"), "{e}");
    let own = rows(
        "own.csv",
        &["5 USD", "$2.50", "1.25 kr", "-1 usd", "USD 1.00 DEB"],
    );
    env.ok_args(&["import", &own, "--rules", &usd]);
    assert!(env.ok_args(&["balance", "checking"]).contains("8.75"));
    for (account, amount, balance) in [
        ("wallet", "3 JPY", "3.00"),
        ("jp", "¥300", "300"),
        ("gi", "£2", "2.00"),
    ] {
        let file = rows(&format!("{account}.csv"), &[amount]);
        let rules = rules(&format!("{account}.toml"), account, "");
        env.ok_args(&["import", &file, "--rules", &rules]);
        assert!(
            env.ok_args(&["balance", account]).contains(balance),
            "{account}"
        );
    }
    let between = |account: &str| {
        rules(
            &format!("to-{account}.toml"),
            account,
            "counterparty = \"checking\"\n",
        )
    };
    let e = env.fails(
        2,
        &[
            "import",
            &rows("t.csv", &["1 EUR"]),
            "--rules",
            &between("savings"),
        ],
    );
    assert!(
        e.contains("invalid amount for checking: '1 EUR' is not in USD"),
        "{e}"
    );
    for amount in ["1 EUR", "1 USD"] {
        let e = env.fails(
            1,
            &[
                "import",
                &rows("m.csv", &[amount]),
                "--rules",
                &between("giro"),
            ],
        );
        assert!(e.contains("currency mismatch"), "{amount}: {e}");
    }
}

/// A row with more fields than the header is refused, naming its line:
/// an amount with an unquoted thousands comma (`1,250.50`) would
/// otherwise book 1.00. A trailing delimiter (blank fields past the
/// header) is not such a row. A file without even a header names no
/// column the rules ask for.
#[test]
fn a_row_wider_than_the_header_or_a_file_without_a_header_is_refused() {
    let env = TestEnv::with(&["create checking --currency USD"]);
    let rules = write(
        &env,
        "r.toml",
        "account = \"checking\"\namount = \"{Amount}\"\ndate = \"{Date}\"\n",
    );
    let wide = write(
        &env,
        "wide.csv",
        "Date,Description,Amount\n2026-10-01,TIP,1\n2026-10-02,SALARY,1,250.50\n",
    );
    let e = env.fails(2, &["import", &wide, "--rules", &rules]);
    assert!(
        e.starts_with("error: line 3: not a valid CSV record: 4 fields where the header has 3"),
        "{e}"
    );
    let empty = write(&env, "empty.csv", "");
    let e = env.fails(2, &["import", &empty, "--rules", &rules]);
    assert!(
        e.contains("the header has no column 'Amount' (the CSV has no header row)"),
        "{e}"
    );
    let trailing = write(
        &env,
        "trailing.csv",
        "Date,Description,Amount\n2026-10-01,SALARY,\"1,250.50\",\n2026-10-02,X,3, \n",
    );
    env.ok_args(&["import", &trailing, "--rules", &rules]);
    assert_eq!(env.balance_of("checking"), "1253.50");
}

#[test]
fn a_record_is_named_by_the_line_it_starts_on() {
    // bom.csv: header on line 1, R1 on lines 2-3, R2 on 4-6, R3 on line 7.
    let env = env_for("bom");
    let rules = write(
        &env,
        "r3.toml",
        "account = \"wallet\"\namount = \"{Amount}\"\n[[rule]]\nwhen = { Ref = \"R3\" }\naccount = \"elsewhere\"\n",
    );
    let e = env.fails(
        1,
        &["import", csv("bom").to_str().unwrap(), "--rules", &rules],
    );
    assert!(
        e.starts_with("error: line 7: unknown account elsewhere"),
        "{e}"
    );
}

#[test]
fn dry_run_lists_every_failing_record() {
    let env = env_for("us");
    let rows = write(
        &env,
        "rows.csv",
        "Date,Description,Amount\n10/01/2026,a,10\n10/02/2026,b,-40\n10/03/2026,c,x\n10/04/2026,d,-7\n10/05/2026,e,-4\n",
    );
    let out = env
        .cmd()
        .args([
            "import",
            &rows,
            "--rules",
            rules("us").to_str().unwrap(),
            "--dry-run",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert!(
        lines[0].starts_with("error: line 3: insufficient funds"),
        "{stderr}"
    );
    assert!(
        lines[1].starts_with("error: line 4: amount 'x'"),
        "{stderr}"
    );
    assert!(
        lines[2].starts_with("error: line 6: insufficient funds"),
        "{stderr}"
    );
    assert_eq!(lines.len(), 4, "{stderr}");
}

#[test]
fn json_lines_commands_import_all_or_nothing() {
    let env = TestEnv::new();
    let text = concat!(
        r#"{"command":"create","account":"acct1","currency":"EUR"}"#,
        "\n",
        "\n",
        r#"{"command":"create","account":"acct2","currency":"EUR"}"#,
        "\n",
        r#"{"command":"deposit","account":"acct1","amount":"50.25","id":"d1","tags":{"src":"api"}}"#,
        "\n",
        r#"{"command":"transfer","from":"acct1","to":"acct2","amount":"10.25","date":"2026-10-03","memo":"lunch","id":"t1"}"#,
        "\n",
        r#"{"command":"reverse","of_id":"t1","memo":"typo"}"#,
        "\n",
    );
    let file = write(&env, "c.jsonl", text);
    let out = env.ok_args(&["import", &file]);
    assert!(out.starts_with("appended 5 event(s)"), "{out}");
    assert_eq!(env.balance_of("acct1"), "50.25");
    assert_eq!(env.balance_of("acct2"), "0.00");
    // Line numbers count the blank line; nothing is written on a refusal.
    let bad = write(
        &env,
        "bad.jsonl",
        concat!(
            r#"{"command":"deposit","account":"acct1","amount":"1"}"#,
            "\n",
            r#"{"command":"deposit","account":"acct1","amount":1.5}"#,
            "\n",
        ),
    );
    let e = env.fails(2, &["import", &bad]);
    assert_eq!(
        e.lines().next().unwrap(),
        "error: line 2: key \"amount\" must be a JSON string (amounts are strings: a JSON number may have been rounded already), not a number with a fraction or exponent"
    );
    let bad = write(
        &env,
        "unknown.jsonl",
        r#"{"command":"close","account":"acct2","when":"now"}"#,
    );
    let e = env.fails(2, &["import", &bad]);
    assert!(
        e.starts_with("error: line 1: unknown key \"when\" for close"),
        "{e}"
    );
    // A repeat of the whole file adds nothing (ids), stdin works too.
    let out = env
        .cmd()
        .args(["import", "-", "--json"])
        .write_stdin(r#"{"command":"deposit","account":"acct1","amount":"50.25","id":"d1","tags":{"src":"api"}}"#)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains(r#""seq":3"#));
}

/// The id a journal line carries.
fn id_of(line: &str) -> String {
    let event: serde_json::Value = serde_json::from_str(line).unwrap();
    event["id"].as_str().unwrap().to_owned()
}

/// An import's writer knows the ids it adds by fingerprint only, and its
/// read model gets them from the lines it wrote: past 1 MiB of journal
/// (so that the model is built), a second run repeats every row, and an
/// id of the import given to another command is refused, as before.
#[test]
fn the_ids_of_a_large_import_are_known_exactly_after_it() {
    let env = TestEnv::with(&["create checking --currency USD"]);
    let mut text = String::from("Date,Description,Amount\n");
    for i in 0..6000 {
        let day = 1 + i % 28;
        text += &format!(
            "2026-10-{day:02},PAYMENT {i},{}.{:02}\n",
            1 + i % 90,
            i % 100
        );
    }
    // Two identical rows: both kept (their ids count the occurrence).
    text += "2026-10-01,COFFEE,-3.10\n2026-10-01,COFFEE,-3.10\n";
    let data = write(&env, "big.csv", &text);
    let rules = write(
        &env,
        "big.toml",
        "account = \"checking\"\namount = \"{Amount}\"\ndate = \"{Date}\"\nmemo = \"{Description}\"\n",
    );
    let out = env.ok_args(&["import", &data, "--rules", &rules]);
    assert!(
        out.starts_with("appended 6002 event(s) (seq 2-6003)"),
        "{out}"
    );
    assert!(env.beside(".readmodel").exists(), "the model was built");
    let lines = env.lines();
    let (first, last) = (id_of(&lines[2]), id_of(lines.last().unwrap()));
    assert_ne!(id_of(&lines[lines.len() - 2]), last);
    let before = env.bytes();
    let again = env.ok_args(&["import", &data, "--rules", &rules]);
    assert!(
        again.starts_with("appended 0 event(s); 6002 repeat(s)"),
        "{again}"
    );
    assert_eq!(env.bytes(), before);
    for id in [&first, &last] {
        env.refusals(&[(
            &["deposit", "checking", "1", "--id", id],
            1,
            "was already used at seq",
        )]);
    }
}

/// Inside one import, an id used by an earlier record (which the writer
/// knows by fingerprint) is a repeat when the command is the same, a
/// refusal when it is not, and names the event for `reverse --of-id`.
#[test]
fn an_id_used_earlier_in_the_same_import_is_told_exactly() {
    let env = TestEnv::with(&["create a"]);
    let deposit = |amount: &str, id: &str| {
        format!(r#"{{"command":"deposit","account":"a","amount":"{amount}","id":"{id}"}}"#)
    };
    let lines = [deposit("1", "k1"), deposit("2", "k2"), deposit("1", "k1")].join("\n");
    let out = env.ok_args(&["import", &write(&env, "repeat.jsonl", &lines)]);
    assert!(
        out.starts_with("appended 2 event(s) (seq 2-3); 1 repeat(s)"),
        "{out}"
    );
    let lines = [deposit("5", "n1"), deposit("6", "n1")].join("\n");
    let bad = write(&env, "reused.jsonl", &lines);
    env.refusals(&[(
        &["import", &bad],
        1,
        "line 2: id n1 was already used at seq 4 for a different command",
    )]);
    let lines = [
        deposit("7", "r1"),
        r#"{"command":"reverse","of_id":"r1"}"#.to_owned(),
    ]
    .join("\n");
    let out = env.ok_args(&["import", &write(&env, "reverse.jsonl", &lines)]);
    assert!(out.starts_with("appended 2 event(s) (seq 4-5)"), "{out}");
    assert_eq!(env.balance_of("a"), "3.00");
}

/// JSON Lines from a file are counted before the journal is locked, so a
/// long import is written to the journal as it is decided, as a long
/// `batch` is: refused at its last record, it leaves the journal byte for
/// byte as it was; run again (half of it repeats, half new ones), it
/// appends each record once.
#[test]
fn a_long_json_lines_import_is_all_or_nothing() {
    let env = TestEnv::new();
    env.ok("create a");
    let record = |k: usize| {
        format!(
            r#"{{"command":"deposit","account":"a","amount":"1","id":"r{k}","memo":"{}"}}"#,
            "m".repeat(100)
        )
    };
    let records =
        |from: usize, to: usize| -> String { (from..to).map(|k| record(k) + "\n").collect() };
    let before = env.bytes();
    let refused = format!(
        "{}{}\n",
        records(0, 30_000),
        r#"{"command":"withdraw","account":"a","amount":"1000000"}"#
    );
    let path = write(&env, "refused.jsonl", &refused);
    assert_eq!(env.run(&format!("import {path}")).status.code(), Some(1));
    assert_eq!(env.bytes(), before);

    let path = write(&env, "first.jsonl", &records(0, 30_000));
    env.ok(&format!("import {path}"));
    let path = write(&env, "again.jsonl", &records(15_000, 45_000));
    let out = env.ok(&format!("import {path}"));
    assert!(out.contains("appended 15000 event(s)"), "{out}");
    assert_eq!(env.balance_of("a"), "45000.00");
    env.ok("verify");
}
