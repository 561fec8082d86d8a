//! `report`, `chart`, account patterns and `history`'s `change` (SPEC 1,
//! 6 and 12), end to end, on a ledger with known numbers.

use proptest::prelude::*;
use serde_json::Value;

use crate::common::TestEnv;

/// Customers alice and bob, an `ops` account and a USD account, with book
/// dates from September to November 2026 (recorded on November 26):
///
/// | seq | day        | event                                   |
/// | --- | ---------- | --------------------------------------- |
/// | 5   | 2026-09-30 | deposit alice 100                       |
/// | 6   | 2026-10-05 | deposit bob 50 (a Monday)               |
/// | 7   | 2026-10-11 | transfer alice → bob 30, kind=rent (Sun)|
/// | 8   | 2026-10-12 | withdraw bob 20, kind=rent (Monday)     |
/// | 9   | 2026-11-02 | transfer bob → ops 5, kind=fee          |
/// | 10  | 2026-11-26 | deposit alice 1.50 (undated)            |
/// | 11  | 2026-11-26 | deposit usd1 7 (undated)                |
fn books() -> TestEnv {
    let env = TestEnv::new();
    for args in [
        "create cust:alice --currency EUR --owner alice",
        "create cust:bob --currency EUR --owner bob",
        "create ops --currency EUR",
        "create usd1 --currency USD",
        "deposit cust:alice 100 --date 2026-09-30",
        "deposit cust:bob 50 --date 2026-10-05",
        "transfer cust:alice cust:bob 30 --date 2026-10-11 --tag kind=rent",
        "withdraw cust:bob 20 --date 2026-10-12 --tag kind=rent",
        "transfer cust:bob ops 5 --date 2026-11-02 --tag kind=fee",
        "deposit cust:alice 1.50",
        "deposit usd1 7",
    ] {
        env.ok(args);
    }
    env
}

fn line(account: &str, cur: &str, figures: [&str; 4], events: u64) -> String {
    let [opening, inflow, outflow, closing] = figures;
    let account = if account.is_empty() {
        String::new()
    } else {
        format!(r#""account":"{account}","#)
    };
    format!(
        r#"{{{account}"currency":"{cur}","decimals":2,"opening":"{opening}","in":"{inflow}","out":"{outflow}","closing":"{closing}","events":{events}}}"#
    )
}

fn period(start: &str, end: &str, accounts: &[String], totals: &[String]) -> String {
    format!(
        r#"{{"start":"{start}","end":"{end}","accounts":[{}],"totals":[{}]}}"#,
        accounts.join(","),
        totals.join(",")
    )
}

#[test]
fn months_of_customers_as_json_to_the_byte() {
    let env = books();
    let got = env.ok_args(&[
        "report",
        "cust:*",
        "--by",
        "month",
        "--since",
        "2026-09-01",
        "--until",
        "2026-11-30",
        "--json",
    ]);
    let want = format!(
        r#"{{"tz":"UTC","by":"month","periods":[{},{},{}]}}"#,
        period(
            "2026-09-01",
            "2026-09-30",
            &[
                line("cust:alice", "EUR", ["0.00", "100.00", "0.00", "100.00"], 1),
                line("cust:bob", "EUR", ["0.00", "0.00", "0.00", "0.00"], 0),
            ],
            &[line("", "EUR", ["0.00", "100.00", "0.00", "100.00"], 1)]
        ),
        period(
            "2026-10-01",
            "2026-10-31",
            &[
                line("cust:alice", "EUR", ["100.00", "0.00", "30.00", "70.00"], 1),
                line("cust:bob", "EUR", ["0.00", "80.00", "20.00", "60.00"], 3),
            ],
            // The transfer between two listed accounts counts in both.
            &[line("", "EUR", ["100.00", "80.00", "50.00", "130.00"], 4)]
        ),
        period(
            "2026-11-01",
            "2026-11-30",
            &[
                // Its creation (recorded in November) is one of its events.
                line("cust:alice", "EUR", ["70.00", "1.50", "0.00", "71.50"], 2),
                line("cust:bob", "EUR", ["60.00", "0.00", "5.00", "55.00"], 2),
            ],
            &[line("", "EUR", ["130.00", "1.50", "5.00", "126.50"], 4)]
        ),
    );
    assert_eq!(got.trim_end(), want);
}

#[test]
fn csv_has_one_row_per_period_and_account() {
    let env = books();
    let got = env.ok_args(&[
        "report",
        "cust:bob",
        "--by",
        "week",
        "--since",
        "2026-10-01",
        "--until",
        "2026-10-14",
        "--format",
        "csv",
    ]);
    // Monday weeks, the first cut at --since and the last at --until.
    assert_eq!(
        got,
        "start,end,account,currency,decimals,opening,in,out,closing,events\r\n\
         2026-10-01,2026-10-04,cust:bob,EUR,2,0.00,0.00,0.00,0.00,0\r\n\
         2026-10-05,2026-10-11,cust:bob,EUR,2,0.00,80.00,0.00,80.00,2\r\n\
         2026-10-12,2026-10-14,cust:bob,EUR,2,80.00,0.00,20.00,60.00,1\r\n"
    );
}

#[test]
fn quarters_list_empty_periods_and_years_total_per_currency() {
    let env = books();
    let got = env.ok_args(&[
        "report",
        "ops",
        "--by",
        "quarter",
        "--since",
        "2026-01-01",
        "--format",
        "csv",
    ]);
    assert_eq!(
        got,
        "start,end,account,currency,decimals,opening,in,out,closing,events\r\n\
         2026-01-01,2026-03-31,ops,EUR,2,0.00,0.00,0.00,0.00,0\r\n\
         2026-04-01,2026-06-30,ops,EUR,2,0.00,0.00,0.00,0.00,0\r\n\
         2026-07-01,2026-09-30,ops,EUR,2,0.00,0.00,0.00,0.00,0\r\n\
         2026-10-01,2026-12-31,ops,EUR,2,0.00,5.00,0.00,5.00,2\r\n"
    );
    let year: Value = serde_json::from_str(&env.ok("report --by year --json")).unwrap();
    let periods = year["periods"].as_array().unwrap();
    assert_eq!(periods.len(), 1);
    assert_eq!(
        (&periods[0]["start"], &periods[0]["end"]),
        (&Value::from("2026-01-01"), &Value::from("2026-12-31"))
    );
    let totals: Value = serde_json::from_str(&format!(
        "[{},{}]",
        line("", "EUR", ["0.00", "186.50", "55.00", "131.50"], 11),
        line("", "USD", ["0.00", "7.00", "0.00", "7.00"], 2)
    ))
    .unwrap();
    assert_eq!(periods[0]["totals"], totals);
}

#[test]
fn without_by_one_period_from_since_to_until() {
    let env = books();
    let got = env.ok("report cust:alice --since 2026-10-01 --until 2026-10-31 --json");
    assert_eq!(
        got.trim_end(),
        format!(
            r#"{{"tz":"UTC","by":null,"periods":[{}]}}"#,
            period(
                "2026-10-01",
                "2026-10-31",
                &[line(
                    "cust:alice",
                    "EUR",
                    ["100.00", "0.00", "30.00", "70.00"],
                    1
                )],
                &[line("", "EUR", ["100.00", "0.00", "30.00", "70.00"], 1)]
            )
        )
    );
    // Without --since, from the earliest day of the account's events to today.
    let all: Value = serde_json::from_str(&env.ok("report cust:alice --json")).unwrap();
    assert_eq!(all["periods"][0]["start"], "2026-09-30");
    assert_eq!(all["periods"][0]["end"], "2026-11-26");
}

#[test]
fn a_tag_filter_counts_only_matching_events_in_every_figure() {
    let env = books();
    let got = env.ok_args(&[
        "report",
        "cust:*",
        "--tag",
        "kind=rent",
        "--by",
        "month",
        "--since",
        "2026-10-01",
        "--until",
        "2026-11-30",
        "--format",
        "csv",
    ]);
    assert_eq!(
        got,
        "start,end,account,currency,decimals,opening,in,out,closing,events\r\n\
         2026-10-01,2026-10-31,cust:alice,EUR,2,0.00,0.00,30.00,-30.00,1\r\n\
         2026-10-01,2026-10-31,cust:bob,EUR,2,0.00,30.00,20.00,10.00,2\r\n\
         2026-11-01,2026-11-30,cust:alice,EUR,2,-30.00,0.00,0.00,-30.00,0\r\n\
         2026-11-01,2026-11-30,cust:bob,EUR,2,10.00,0.00,0.00,10.00,0\r\n"
    );
    // The opening is the net effect of matching events before the range.
    let nov =
        env.ok("report cust:bob --tag kind --since 2026-11-01 --until 2026-11-30 --format csv");
    assert!(
        nov.ends_with(",cust:bob,EUR,2,10.00,0.00,5.00,5.00,1\r\n"),
        "{nov}"
    );
}

#[test]
fn the_zone_moves_a_late_event_into_the_next_days_period() {
    let env = TestEnv::new();
    env.ok_at("2026-10-01T08:00:00Z", "create a --currency EUR");
    env.ok_at("2026-10-31T23:30:00Z", "deposit a 10");
    let by_month = |tz: &str| {
        env.ok_at(
            "2026-11-26T10:00:00Z",
            &format!(
                "report a --by month --since 2026-10-01 --until 2026-11-30 --tz {tz} --format csv"
            ),
        )
    };
    assert!(by_month("UTC").contains("2026-10-01,2026-10-31,a,EUR,2,0.00,10.00,0.00,10.00,2\r\n"));
    let paris = by_month("Europe/Paris");
    assert!(
        paris.contains("2026-10-01,2026-10-31,a,EUR,2,0.00,0.00,0.00,0.00,1\r\n"),
        "{paris}"
    );
    assert!(
        paris.contains("2026-11-01,2026-11-30,a,EUR,2,0.00,10.00,0.00,10.00,1\r\n"),
        "{paris}"
    );
    let json =
        env.ok("report a --by day --since 2026-10-31 --until 2026-11-01 --tz Europe/Paris --json");
    assert!(
        json.starts_with(
            r#"{"tz":"Europe/Paris","by":"day","periods":[{"start":"2026-10-31","end":"2026-10-31""#
        ),
        "{json}"
    );
}

#[test]
fn patterns_select_accounts_and_may_select_none() {
    let env = books();
    let balance: Value = serde_json::from_str(&env.ok("balance cust:* --json")).unwrap();
    let names: Vec<&str> = balance["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["account"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["cust:alice", "cust:bob"]);
    assert_eq!(
        env.ok("balance usd? --json")
            .matches(r#""account""#)
            .count(),
        1
    );
    assert!(env.ok("balance zz*").contains("no accounts"));
    assert_eq!(
        env.ok("report zz* --json").trim_end(),
        r#"{"tz":"UTC","by":null,"periods":[]}"#
    );
    assert_eq!(env.ok("history zz*"), "no events\n");
    // A pattern's history has neither balance nor change.
    let history = env.ok("history cust:* --json");
    assert_eq!(history.lines().count(), 8, "{history}");
    assert!(!history.contains(r#""balance""#) && !history.contains(r#""change""#));
    env.fails(1, &["report", "nobody"]);
    env.fails(2, &["report", "cust *"]);
    env.fails(
        2,
        &["report", "--since", "2026-11-02", "--until", "2026-11-01"],
    );
    env.fails(2, &["report", "--by", "fortnight"]);
}

#[test]
fn history_of_an_account_carries_its_signed_change() {
    let env = books();
    let lines = env.lines();
    let got = env.ok("history cust:bob --json");
    let want: Vec<String> = [
        (2, "0.00", "0.00"),
        (6, "50.00", "50.00"),
        (7, "30.00", "80.00"),
        (8, "-20.00", "60.00"),
        (9, "-5.00", "55.00"),
    ]
    .iter()
    .map(|(seq, change, balance)| {
        let body = lines[*seq].strip_suffix('}').unwrap();
        format!(r#"{body},"change":"{change}","balance":"{balance}"}}"#)
    })
    .collect();
    assert_eq!(got.lines().collect::<Vec<_>>(), want);
    let csv = env.ok("history cust:bob --format csv");
    assert!(
        csv.starts_with("seq,at,type,")
            && csv
                .lines()
                .next()
                .unwrap()
                .ends_with(",prev,change,balance"),
        "{csv}"
    );
    assert!(
        csv.lines().last().unwrap().ends_with(",-5.00,55.00"),
        "{csv}"
    );
}

#[test]
fn tables_of_report_balance_and_history() {
    let env = books();
    insta::assert_snapshot!(
        "report_month_table",
        env.ok_args(&[
            "report",
            "cust:*",
            "--by",
            "month",
            "--since",
            "2026-09-01",
            "--until",
            "2026-11-30"
        ])
    );
    insta::assert_snapshot!("balance_table", env.ok("balance"));
    insta::assert_snapshot!("history_table", env.ok("history"));
    // A statement from --since opens with the balance by day then.
    insta::assert_snapshot!(
        "history_statement_table",
        env.ok("history cust:bob --since 2026-10-06 --until 2026-11-30")
    );
}

/// The SVG's series: the polylines drawn with the lines' stroke width.
fn series(svg: &str) -> Vec<usize> {
    let doc = roxmltree::Document::parse(svg).expect("the chart is XML");
    doc.descendants()
        .filter(|n| n.has_tag_name("polyline") && n.attribute("stroke-width") == Some("2"))
        .map(|n| {
            n.attribute("points")
                .unwrap_or("")
                .split_whitespace()
                .count()
        })
        .collect()
}

#[test]
fn a_chart_is_an_svg_with_one_line_per_account_or_a_png() {
    let env = books();
    let svg = env.dir.path().join("bob.svg");
    let out = env.ok_args(&[
        "chart",
        "cust:*",
        "--by",
        "week",
        "--since",
        "2026-10-01",
        "--until",
        "2026-10-31",
        "--out",
        svg.to_str().unwrap(),
    ]);
    assert!(out.contains("2 line(s) of 5 point(s)"), "{out}");
    let text = std::fs::read_to_string(&svg).unwrap();
    assert_eq!(series(&text), [5, 5]);
    assert!(
        text.contains("Closing balance by week, 2026-10-01 to 2026-10-31 (UTC)"),
        "title"
    );
    let doc = roxmltree::Document::parse(&text).unwrap();
    let labels: Vec<&str> = doc
        .descendants()
        .filter(|n| n.has_tag_name("text"))
        .filter_map(|n| n.text())
        .map(str::trim)
        .collect();
    for label in ["cust:alice", "cust:bob", "EUR", "2026-10-04"] {
        assert!(labels.contains(&label), "{label} in {labels:?}");
    }
    // By day (the default): one point per day.
    env.ok_args(&[
        "chart",
        "ops",
        "--since",
        "2026-11-01",
        "--until",
        "2026-11-10",
        "--out",
        svg.to_str().unwrap(),
    ]);
    assert_eq!(series(&std::fs::read_to_string(&svg).unwrap()), [10]);
    let png = env.dir.path().join("c.png");
    env.ok_args(&[
        "chart",
        "cust:alice",
        "--by",
        "month",
        "--out",
        png.to_str().unwrap(),
    ]);
    let bytes = std::fs::read(&png).unwrap();
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
    assert_eq!(&bytes[12..16], b"IHDR");
    let size = |at: usize| u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap());
    assert_eq!((size(16), size(20)), (960, 540));
}

#[test]
fn a_chart_refuses_mixed_currencies_and_too_many_lines() {
    let env = books();
    let out = env.dir.path().join("c.svg");
    let out = out.to_str().unwrap();
    let mixed = env.fails(2, &["chart", "cust:alice", "usd1", "--out", out]);
    assert!(mixed.contains("cannot share a chart"), "{mixed}");
    let lines: Vec<String> = (0..13).map(|i| format!("create many{i:02}")).collect();
    let script = lines.join("\n");
    env.cmd()
        .args(["batch"])
        .write_stdin(script)
        .assert()
        .success();
    let many = env.fails(2, &["chart", "many*", "--out", out]);
    assert!(
        many.contains("at most 12 lines") && many.contains("narrower pattern"),
        "{many}"
    );
    env.fails(2, &["chart", "ops", "--out", "c.pdf"]);
    env.fails(2, &["chart", "--out", out]);
    assert!(!std::path::Path::new(out).exists());
}

/// One generated movement: (kind 0 deposit / 1 withdraw / 2 transfer,
/// account, other account, amount in cents, day from October 1 to
/// November 26, the pinned clock's day).
type Move = (u8, usize, usize, u32, u32);

fn moves() -> impl Strategy<Value = Vec<Move>> {
    prop::collection::vec((0u8..3, 0usize..3, 0usize..3, 1u32..5000, 0u32..57), 1..25)
}

/// Batch lines for `moves`, keeping only those the rules allow in journal
/// order (a model of the balances decides).
fn script(moves: &[Move]) -> String {
    let mut balances = [0u32; 3];
    let mut lines: Vec<String> = (0..3)
        .map(|a| format!("create p{a} --currency EUR"))
        .collect();
    for &(kind, a, b, cents, day) in moves {
        let date = if day < 31 {
            format!("2026-10-{:02}", day + 1)
        } else {
            format!("2026-11-{:02}", day - 30)
        };
        let amount = format!("{}.{:02}", cents / 100, cents % 100);
        match kind {
            0 => balances[a] += cents,
            _ if balances[a] < cents || (kind == 2 && a == b) => continue,
            1 => balances[a] -= cents,
            _ => {
                balances[a] -= cents;
                balances[b] += cents;
            }
        }
        lines.push(match kind {
            0 => format!("deposit p{a} {amount} --date {date}"),
            1 => format!("withdraw p{a} {amount} --date {date}"),
            _ => format!("transfer p{a} p{b} {amount} --date {date}"),
        });
    }
    lines.join("\n")
}

fn cents(v: &Value) -> i64 {
    let text = v.as_str().unwrap();
    let (units, frac) = text.trim_start_matches('-').split_once('.').unwrap();
    let n = units.parse::<i64>().unwrap() * 100 + frac.parse::<i64>().unwrap();
    if text.starts_with('-') { -n } else { n }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    #[test]
    fn periods_add_up_and_close_at_the_balance_by_day(moves in moves(), by in prop::sample::select(vec!["week", "month"])) {
        let env = TestEnv::new();
        env.cmd().arg("batch").write_stdin(script(&moves)).assert().success();
        let report: Value = serde_json::from_str(&env.ok(&format!(
            "report p* --by {by} --since 2026-10-01 --until 2026-11-30 --json"
        ))).unwrap();
        let periods = report["periods"].as_array().unwrap();
        for (i, name) in ["p0", "p1", "p2"].iter().enumerate() {
            let lines: Vec<&Value> = periods.iter().map(|p| &p["accounts"][i]).collect();
            prop_assert!(lines.iter().all(|l| l["account"] == *name));
            let flows: i64 = lines.iter().map(|l| cents(&l["in"]) - cents(&l["out"])).sum();
            let first = lines.first().unwrap();
            let last = lines.last().unwrap();
            prop_assert_eq!(flows, cents(&last["closing"]) - cents(&first["opening"]));
            for l in &lines {
                prop_assert_eq!(cents(&l["closing"]), cents(&l["opening"]) + cents(&l["in"]) - cents(&l["out"]));
            }
        }
        for p in periods {
            let end = p["end"].as_str().unwrap();
            let balance: Value = serde_json::from_str(&env.ok(&format!("balance p* --as-of {end} --json"))).unwrap();
            for line in p["accounts"].as_array().unwrap() {
                let by_day = balance["accounts"].as_array().unwrap().iter()
                    .find(|a| a["account"] == line["account"])
                    .map_or(0, |a| cents(&a["balance"]));
                prop_assert_eq!(cents(&line["closing"]), by_day, "{} at {}", line["account"], end);
            }
        }
    }
}

/// Money in and out can add up past what a balance ever holds (the most
/// an account of 18 decimals holds, moved to and fro): the report then
/// refuses, naming the amount as money is written, not in minor units.
#[test]
fn a_report_past_the_largest_sum_names_the_amount_in_its_decimals() {
    let most = "170141183460469231731.687303715884105727";
    let env = TestEnv::with(&[
        "create a --decimals 18",
        "create b --decimals 18",
        &format!("deposit a {most}"),
        &format!("transfer a b {most}"),
        &format!("transfer b a {most}"),
    ]);
    let e = env.fails(1, &["report"]);
    assert_eq!(
        e,
        format!("error: amount {most} would overflow the money in of a in the report\n")
    );
}
