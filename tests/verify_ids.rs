//! `verify` proves ids unique (SPEC 3) with fingerprints of them rather
//! than the ids themselves: a repeated id still fails at the later line,
//! naming the seq it repeats, and when a journal has several problems the
//! first failing line is the one reported. Journals are chained by hand.

use crate::common::{AT, TestEnv, one_account_journal};

/// A journal of `create a` and deposits of 1.00 up to seq `last`, the
/// deposit at seq `s` with the id `ids(s)`, or the event `other(s)` when
/// it gives one.
fn journal(last: u64, ids: impl Fn(u64) -> u64, other: impl Fn(u64) -> Option<String>) -> String {
    one_account_journal(last, |seq| {
        other(seq).unwrap_or_else(|| {
            let id = ids(seq);
            format!(
                r#"{{"seq":{seq},"at":"{AT}","type":"MoneyDeposited","account":"a","amount":"1.00","id":"k{id}"}}"#
            )
        })
    })
}

fn verify_fails(text: &str) -> String {
    let env = TestEnv::new();
    env.write(text);
    let stderr = env.fails(3, &["verify"]);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    stderr
}

fn overdraw(seq: u64) -> String {
    format!(
        r#"{{"seq":{seq},"at":"{AT}","type":"MoneyWithdrawn","account":"a","amount":"9999.00"}}"#
    )
}

/// A journal of 10 events whose seq 5 repeats the id of seq 2 and whose
/// seq 8 overdraws.
fn repeat_before_overdraft() -> String {
    journal(
        10,
        |s| if s == 5 { 2 } else { s },
        |s| (s == 8).then(|| overdraw(s)),
    )
}

#[test]
fn a_repeated_id_fails_at_the_later_line_naming_the_first_use() {
    // Short; past 64 KiB (the first use is found by bisection); and past
    // the size read on a second thread.
    for (last, first, again) in [(20, 3, 17), (2_000, 2, 1_999), (60_000, 40_000, 59_000)] {
        let text = journal(last, |s| if s == again { first } else { s }, |_| None);
        let stderr = verify_fails(&text);
        let line = again + 1;
        assert!(
            stderr.ends_with(&format!(
                "line {line}: id k{first} was already used at seq {first}\n"
            )),
            "{stderr}"
        );
    }
}

#[test]
fn distinct_ids_verify() {
    let env = TestEnv::new();
    env.write(journal(60_000, |s| s, |_| None));
    let out = env.ok("verify --quiet");
    assert!(out.starts_with("60000 "), "{out}");
}

#[test]
fn the_first_failing_line_is_reported_whether_it_repeats_an_id_or_breaks_a_rule() {
    // The repeat at seq 5 comes first.
    let stderr = verify_fails(&repeat_before_overdraft());
    assert!(
        stderr.ends_with("line 6: id k2 was already used at seq 2\n"),
        "{stderr}"
    );
    // The overdraft at seq 4 comes first.
    let rule_first = journal(
        10,
        |s| if s == 7 { 2 } else { s },
        |s| (s == 4).then(|| overdraw(s)),
    );
    let stderr = verify_fails(&rule_first);
    assert!(
        stderr.contains("line 5: insufficient funds in a"),
        "{stderr}"
    );
    // Two repeats: the earlier one.
    let two = journal(
        10,
        |s| match s {
            6 => 3,
            9 => 2,
            s => s,
        },
        |_| None,
    );
    let stderr = verify_fails(&two);
    assert!(
        stderr.ends_with("line 7: id k3 was already used at seq 3\n"),
        "{stderr}"
    );
}

/// Each of `reads` (words; `copy` gets the journal and a destination)
/// fails as corrupt on the journal `text`, leaving it as it was and
/// copying nothing, its message ending with `ending`.
#[track_caller]
fn every_read_fails_naming(text: &str, reads: &[&str], ending: &str) {
    for read in reads {
        let env = TestEnv::new();
        env.write(text);
        let copy = env.dir.path().join("copy.jsonl");
        let mut args: Vec<String> = read.split(' ').map(String::from).collect();
        if args[0] == "copy" {
            args.push(env.journal.display().to_string());
            args.push(copy.display().to_string());
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let stderr = env.fails(3, &args);
        assert!(!copy.exists(), "{read}: nothing copied");
        assert!(stderr.ends_with(ending), "{read}: {stderr}");
    }
}

/// `balance` and `export` replay the whole journal without a read model,
/// proving the ids distinct where the replay stops, as `verify` does: a
/// repeated id fails at its line, before a later line's other fault.
#[test]
fn a_read_of_the_whole_journal_names_a_repeated_id_first_as_verify_does() {
    every_read_fails_naming(
        &repeat_before_overdraft(),
        &["balance a", "export --to beancount"],
        "line 6: id k2 was already used at seq 2\n",
    );
}

/// A line that both repeats an id and overdraws is named for its id, as
/// `decide` checks the id before the ledger's rules, by every command
/// that reads the whole journal.
#[test]
fn a_line_that_repeats_an_id_and_breaks_a_rule_is_named_for_its_id() {
    let text = journal(
        6,
        |s| s,
        |s| {
            (s == 4).then(|| {
                format!(
                    r#"{{"seq":4,"at":"{AT}","type":"MoneyWithdrawn","account":"a","amount":"9999.00","id":"k2"}}"#
                )
            })
        },
    );
    let reads = [
        "verify",
        "copy",
        "balance a",
        "report",
        "export --to beancount",
        "history",
    ];
    every_read_fails_naming(&text, &reads, "line 5: id k2 was already used at seq 2\n");
}
