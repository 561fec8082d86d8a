//! `ledger export`: the journal's own bytes, and books that ledger-cli,
//! hledger and beancount read in their strict modes with the same balances
//! as ours, per account and per month (SPEC 14).
//!
//! The tools come from Debian (`ledger`, `hledger`) and PyPI (`beancount`);
//! `.ci/run` installs them. Under `CI=true` a missing tool fails the test;
//! elsewhere the test says so on stderr and checks what it can.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use proptest::prelude::*;

use crate::common::TestEnv;
use ledger::cmd::export::{PLAIN_UNIT, beancount_account, beancount_currency};

/// ledger-cli, by its full path: a `ledger` on PATH may be ours.
const LEDGER_CLI: &str = "/usr/bin/ledger";

/// `path` if that tool is installed; a failure under CI if not.
#[track_caller]
fn tool(name: &str, installed: bool) -> bool {
    if !installed {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "{name} is not installed (.ci/run installs it)"
        );
        eprintln!("note: {name} is not installed; its checks are skipped");
    }
    installed
}

/// A Python that has beancount, if any.
fn python() -> Option<String> {
    let venv = concat!(env!("CARGO_MANIFEST_DIR"), "/target/tools/venv/bin/python3");
    [venv, "python3"].into_iter().map(str::to_owned).find(|p| {
        Command::new(p)
            .args(["-c", "import beancount.loader"])
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

/// Balances as `account -> "amount commodity"`, the amount without
/// trailing zeros (tools print a commodity's widest precision).
type Balances = BTreeMap<String, String>;

fn normal(amount: &str, commodity: &str) -> String {
    let number = if amount.contains('.') {
        amount.trim_end_matches('0').trim_end_matches('.')
    } else {
        amount
    };
    let number = if number.is_empty() || number == "-" {
        "0"
    } else {
        number
    };
    format!("{number} {}", commodity.trim_matches('"'))
}

#[track_caller]
fn run(cmd: &mut Command) -> String {
    let out = cmd.output().expect("run tool");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.trim().is_empty(),
        "{cmd:?}: {stderr}"
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Ours, as of the end of `day` (or now), by exported account name.
fn ours(env: &TestEnv, as_of: Option<&str>, beancount: bool) -> Balances {
    let json = match as_of {
        Some(day) => env.ok_args(&["balance", "--json", "--as-of", day]),
        None => env.ok("balance --json"),
    };
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    let mut balances = Balances::new();
    for a in json["accounts"].as_array().unwrap() {
        let name = a["account"].as_str().unwrap();
        let currency = a["currency"].as_str();
        let (account, commodity) = if beancount {
            (
                beancount_account(name),
                currency.map_or(PLAIN_UNIT.to_owned(), beancount_currency),
            )
        } else {
            (
                format!("assets:{name}"),
                currency.unwrap_or(PLAIN_UNIT).to_owned(),
            )
        };
        let balance = normal(a["balance"].as_str().unwrap(), &commodity);
        if !balance.starts_with("0 ") {
            balances.insert(account, balance);
        }
    }
    balances
}

/// What ledger-cli and hledger say of `file`, up to `end` (exclusive).
fn ledger_tools(file: &Path, end: Option<&str>) -> Vec<(&'static str, Balances)> {
    let mut said = Vec::new();
    if tool(LEDGER_CLI, Path::new(LEDGER_CLI).exists()) {
        let mut cmd = Command::new(LEDGER_CLI);
        cmd.arg("-f")
            .arg(file)
            .args(["--pedantic", "bal", "--flat", "--no-total"]);
        cmd.args(["--format", "%(account)|%(amount)\n"]);
        if let Some(end) = end {
            cmd.args(["--end", end]);
        }
        let balances = run(&mut cmd)
            .lines()
            .filter_map(|l| l.split_once('|'))
            .filter(|(a, _)| a.starts_with("assets:"))
            .map(|(a, x)| {
                let (n, c) = x.split_once(' ').unwrap_or((x, ""));
                (a.to_owned(), normal(n, c))
            })
            .filter(|(_, x)| !x.starts_with("0 "))
            .collect();
        said.push(("ledger-cli", balances));
    }
    if tool(
        "hledger",
        Command::new("hledger").arg("--version").output().is_ok(),
    ) {
        let mut cmd = Command::new("hledger");
        cmd.arg("-f")
            .arg(file)
            .args(["--strict", "bal", "--flat", "-N", "-O", "csv"]);
        if let Some(end) = end {
            cmd.args(["-e", end]);
        }
        let csv = run(&mut cmd);
        let balances = csv
            .lines()
            .skip(1)
            .filter_map(|l| {
                let (a, x) = l.split_once("\",\"")?;
                let a = a.trim_start_matches('"');
                let x = x.trim_end_matches('"').replace("\"\"", "\"");
                let (n, c) = x.split_once(' ').unwrap_or((&x, ""));
                a.starts_with("assets:")
                    .then(|| (a.to_owned(), normal(n, c)))
            })
            .filter(|(_, x)| !x.starts_with("0 "))
            .collect();
        said.push(("hledger", balances));
    }
    said
}

/// What beancount says of `file` (after its own check), up to `end`.
fn beancount(file: &Path, end: Option<&str>) -> Option<Balances> {
    let found = python();
    if !tool("beancount (Python)", found.is_some()) {
        return None;
    }
    let script = r#"
import sys, datetime
from beancount import loader
from beancount.core import realization, data
entries, errors, _ = loader.load_file(sys.argv[1])
for e in errors:
    print("ERROR", e.message, file=sys.stderr)
if len(sys.argv) > 2:
    end = datetime.date.fromisoformat(sys.argv[2])
    entries = [e for e in entries if not isinstance(e, data.Transaction) or e.date < end]
for ra in realization.iter_children(realization.realize(entries)):
    for pos in ra.balance:
        print(ra.account, pos.units.number, pos.units.currency, sep="|")
"#;
    let mut cmd = Command::new(found?);
    cmd.args(["-c", script]).arg(file).args(end);
    let balances = run(&mut cmd)
        .lines()
        .filter(|l| l.starts_with("Assets:"))
        .filter_map(|l| {
            let mut parts = l.split('|');
            let (a, n, c) = (parts.next()?, parts.next()?, parts.next()?);
            Some((a.to_owned(), normal(n, c)))
        })
        .filter(|(_, x)| !x.starts_with("0 "))
        .collect();
    Some(balances)
}

/// Exports `env` to both formats and checks every tool's balances against
/// ours, at the end and at the end of each of `months` (`YYYY-MM`).
#[track_caller]
fn check_peers(env: &TestEnv, months: &[&str]) {
    let ledger_file = env.dir.path().join("books.journal");
    let bean_file = env.dir.path().join("books.beancount");
    std::fs::write(&ledger_file, env.ok("export --to ledger")).unwrap();
    std::fs::write(&bean_file, env.ok("export --to beancount")).unwrap();
    let mut ends: Vec<(Option<String>, Option<String>)> = vec![(None, None)];
    for month in months {
        let (y, m): (i32, u32) = (month[..4].parse().unwrap(), month[5..].parse().unwrap());
        let next = if m == 12 {
            format!("{}-01-01", y + 1)
        } else {
            format!("{y}-{:02}-01", m + 1)
        };
        let last = jiff::civil::Date::constant(y as i16, m as i8, 1)
            .last_of_month()
            .to_string();
        ends.push((Some(last), Some(next)));
    }
    for (as_of, end) in &ends {
        let want = ours(env, as_of.as_deref(), false);
        for (name, got) in ledger_tools(&ledger_file, end.as_deref()) {
            assert_eq!(got, want, "{name} up to {end:?}");
        }
        if let Some(got) = beancount(&bean_file, end.as_deref()) {
            assert_eq!(
                got,
                ours(env, as_of.as_deref(), true),
                "beancount up to {end:?}"
            );
        }
    }
}

const MANY_KINDS: &str = "\
create a --currency EUR
create a:b --currency EUR
create Bob --currency X1 --decimals 3
create x.y_z@w-v
create n0 --currency E --decimals 0
create e3 --currency EUR --decimals 3
deposit a 100 --memo \"say \\\"hi\\\"; ok\" --tag k.x=v --tag note=a\\ b --date 2026-09-30
deposit a:b 1.5 --date 2026-10-02
transfer a a:b 10 --date 2026-10-15
deposit Bob 1.000 --id b1
deposit Bob 2.5
withdraw Bob 0.25
deposit x.y_z@w-v 7
deposit n0 1000 --date 2026-11-01
withdraw n0 1
deposit e3 1.001
reverse 9 --id r1 --date 2026-10-15
";

/// A ledger holding [`MANY_KINDS`].
#[track_caller]
fn many_kinds() -> TestEnv {
    let env = TestEnv::new();
    env.cmd()
        .arg("batch")
        .write_stdin(MANY_KINDS)
        .assert()
        .success();
    env
}

#[test]
fn the_peers_report_our_balances_per_account_and_per_month() {
    let env = many_kinds();
    check_peers(&env, &["2026-09", "2026-10", "2026-11"]);
    let books = env.ok("export --to beancount");
    assert!(books.contains("  reverses: 9\n"), "{books}");
    assert!(books.contains("  tag-k-dx: \"v\"\n"), "{books}");
    assert!(books.contains("\"say \\\"hi\\\"; ok\""), "{books}");
    let books = env.ok("export --to ledger");
    assert!(books.contains("    ; Reverses: 9\n"), "{books}");
    assert!(
        books.contains(r#"    ; Tags: {"k.x":"v","note":"a b"}"#),
        "{books}"
    );
}

#[test]
fn jsonl_is_the_journal_byte_for_byte_and_takes_no_filters() {
    let env = many_kinds();
    let out = env
        .cmd()
        .args(["export", "--to", "jsonl"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(out.stdout, env.bytes());
    let e = env.fails(2, &["export", "--to", "jsonl", "--since", "2026-10-01"]);
    assert!(e.contains("--to jsonl copies the whole journal"), "{e}");
    assert_eq!(TestEnv::new().ok("export --to jsonl"), "");
}

#[test]
fn filters_select_the_transactions() {
    let env = many_kinds();
    let books = env.ok("export --to ledger --tag k.x --since 2026-09-01 --until 2026-09-30");
    assert_eq!(books.matches("    ; Seq: ").count(), 1, "{books}");
    assert!(books.contains("2026-09-30 * (7) say"), "{books}");
}

/// One random write, as a batch line.
fn write_line(accounts: usize) -> impl Strategy<Value = String> {
    let account = 0..accounts;
    prop_oneof![
        (account.clone(), 1u32..5000, 0u8..30).prop_map(|(a, x, d)| format!(
            "deposit acct{a} {}.{:02} --date 2026-10-{:02}",
            x / 100,
            x % 100,
            d + 1
        )),
        (account.clone(), 1u32..3000).prop_map(|(a, x)| format!(
            "withdraw acct{a} {}.{:02}",
            x / 100,
            x % 100
        )),
        (account.clone(), account, 1u32..3000).prop_map(|(a, b, x)| format!(
            "transfer acct{a} acct{b} {}.{:02}",
            x / 100,
            x % 100
        )),
    ]
}

proptest! {
    // The tools take a second or so each: a few cases say enough.
    #![proptest_config(ProptestConfig { cases: 4, ..ProptestConfig::default() })]

    #[test]
    fn random_journals_export_to_the_same_balances(lines in proptest::collection::vec(write_line(4), 1..25)) {
        let env = TestEnv::new();
        let mut text = String::from("create acct0 --currency EUR\ncreate acct1 --currency EUR\ncreate acct2\ncreate acct3 --currency EUR\n");
        // Lines the rules refuse (funds, a transfer across currencies)
        // are left out, one by one, so the rest can be written.
        for line in &lines {
            let trial = format!("{text}{line}\n");
            let ok = env.cmd().args(["batch", "--dry-run"]).write_stdin(trial.clone()).output().unwrap();
            if ok.status.success() {
                text = trial;
            }
        }
        env.cmd().arg("batch").write_stdin(text).assert().success();
        check_peers(&env, &["2026-10"]);
    }
}
