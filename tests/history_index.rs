//! One account's history from the read model's history index (`--limit
//! N`, every event, and the bounds and tags that select some): the same
//! bytes as the full replay in every format, whatever state the model is
//! in (missing, stale with a tail, damaged, at any seq), and the journal
//! the evidence: a row that disagrees with it is not used.

use std::path::Path;

use proptest::prelude::*;

use crate::common::TestEnv;
use crate::readmodel::{NAMES, model_at, model_seq, op, remove_model, run_ops, tamper};

const FORMATS: [&str; 3] = ["table", "json", "csv"];
const LIMITS: [&str; 6] = ["0", "1", "2", "3", "7", "1000"];

/// a, b, c with deposits, transfers both ways, a hold captured, a hold
/// released, a reversal and a close: every kind of event an account's
/// history shows.
fn ledger() -> TestEnv {
    TestEnv::with(&[
        "create a --currency EUR",
        "create b --currency EUR",
        "create c --currency EUR",
        "deposit a 50",
        "transfer a b 10",
        "hold a 5 --to c",
        "capture 6",
        "deposit b 7.25",
        "transfer b a 3",
        "hold b 2",
        "release 10",
        "reverse 8",
        "withdraw c 5",
        "close c",
        "deposit a 1",
    ])
}

/// `history ACCOUNT --limit N` in `format`: stdout, stderr and exit code.
fn history(env: &TestEnv, account: &str, limit: &str, format: &str) -> (Vec<u8>, Vec<u8>, i32) {
    let out = env
        .cmd()
        .args(["--format", format, "history", account, "--limit", limit])
        .output()
        .unwrap();
    (out.stdout, out.stderr, out.status.code().unwrap_or(-1))
}

/// Every account's history at every limit and in every format, as this
/// journal's model (if any) answers it.
fn every_history(env: &TestEnv, names: &[&str]) -> Vec<(Vec<u8>, Vec<u8>, i32)> {
    let mut all = Vec::new();
    for name in names {
        for limit in LIMITS {
            for format in FORMATS {
                all.push(history(env, name, limit, format));
            }
        }
    }
    all
}

/// The same, with no model: the full replay (the journals here are too
/// short to get a model of their own).
fn replayed(env: &TestEnv, names: &[&str]) -> Vec<(Vec<u8>, Vec<u8>, i32)> {
    remove_model(&env.journal);
    let all = every_history(env, names);
    assert_eq!(model_seq(&env.journal), None);
    all
}

#[test]
fn the_index_answers_exactly_as_the_full_replay_at_every_model_position() {
    let env = ledger();
    let names = ["a", "b", "c", "nobody"];
    let expected = replayed(&env, &names);
    for seq in [1, 3, 6, 9, 14, 15] {
        model_at(&env.journal, seq);
        assert_eq!(every_history(&env, &names), expected, "model at {seq}");
    }
    let table = String::from_utf8(history(&env, "a", "3", "table").0).unwrap();
    assert_eq!(
        table,
        "SEQ  AT                    CHANGE  BALANCE  EVENT\n  \
           7  2026-11-26 10:00:00    -5.00    35.00  capture 5.00 of hold 6: a to c\n  \
           9  2026-11-26 10:00:00     3.00    38.00  transfer 3.00 from b to a\n \
          15  2026-11-26 10:00:00     1.00    39.00  deposit 1.00 to a\n"
    );
}

/// The index is what answers: a line it does not need, edited in the
/// part the model covers, is not read (a full replay refuses the journal).
#[test]
fn the_index_reads_only_the_lines_it_shows() {
    let env = ledger();
    model_at(&env.journal, 15);
    let expected = history(&env, "a", "2", "json");
    let text = String::from_utf8(env.bytes()).unwrap();
    // seq 8 (b's deposit of 7.25): same length, so offsets stay.
    env.write(text.replacen(r#""amount":"7.25""#, r#""amount":"7.26""#, 1));
    assert_eq!(history(&env, "a", "2", "json"), expected);
    // b's history includes it: its line no longer chains, the full replay
    // judges the journal, which is corrupt.
    let journal = env.bytes();
    let (_, stderr, code) = history(&env, "b", "10", "json");
    assert_eq!(code, 3, "{}", String::from_utf8_lossy(&stderr));
    assert_eq!(env.bytes(), journal);
}

#[test]
fn a_stale_model_is_completed_by_the_lines_after_it() {
    let env = ledger();
    let names = ["a", "b", "c"];
    model_at(&env.journal, 4);
    env.ok("create d --currency EUR");
    env.ok("transfer a d 2");
    env.ok("deposit d 1");
    let with_tail = {
        model_at(&env.journal, 5);
        every_history(&env, &["a", "b", "c", "d"])
    };
    assert_eq!(model_seq(&env.journal), Some(5));
    assert_eq!(with_tail, replayed(&env, &["a", "b", "c", "d"]));
    // Kept up to date by writers, the index answers the same.
    model_at(&env.journal, 2);
    env.ok("deposit a 2");
    env.ok("deposit b 2");
    assert_eq!(model_seq(&env.journal), Some(20));
    let kept = every_history(&env, &names);
    assert_eq!(kept, replayed(&env, &names));
}

/// Rows changed, lost or pointing elsewhere: the output is still the full
/// replay's, and the journal is untouched.
#[test]
fn a_damaged_index_is_not_trusted() {
    let expected = replayed(&ledger(), &["a", "b"]);
    for sql in [
        "DELETE FROM history WHERE key = 18",
        "DELETE FROM history WHERE key = 30",
        "DELETE FROM history WHERE key = 2",
        "DELETE FROM tips WHERE account = 'a'",
        "DELETE FROM tips",
        "DELETE FROM history",
        "UPDATE history SET prev = 8 WHERE key = 19",
        "UPDATE history SET line_end = line_end - 1 WHERE key BETWEEN 18 AND 19",
        "UPDATE tips SET key = 19 WHERE account = 'a'",
        "UPDATE tips SET key = 99",
        "UPDATE history SET key = 31 WHERE key = 30",
        "UPDATE history SET prev = 0",
        "DROP TABLE history",
        "DROP TABLE tips",
    ] {
        let env = ledger();
        model_at(&env.journal, 15);
        // A rebuilt model's index is built by the first history.
        history(&env, "c", "1", "json");
        assert_eq!(indexed_seq(&env), Some(15));
        let sound = index_rows(&env);
        tamper(&env.journal, sql);
        let journal = env.bytes();
        assert_eq!(every_history(&env, &["a", "b"]), expected, "{sql}");
        assert_eq!(env.bytes(), journal, "{sql}");
        // The history that found the damage emptied the index, and the
        // next built it again from the journal.
        assert_eq!(index_rows(&env), sound, "{sql}");
    }
}

/// Every row of the history index and its tips, in order.
#[track_caller]
fn index_rows(env: &TestEnv) -> Vec<String> {
    let db = rusqlite::Connection::open(ledger::readmodel::path_of(&env.journal)).unwrap();
    let mut rows = Vec::new();
    for sql in [
        "SELECT key, prev, line_end, digest FROM history ORDER BY key",
        "SELECT account, key, digest FROM tips ORDER BY account",
        "SELECT seq, line_end FROM indexed",
    ] {
        let mut stmt = db.prepare(sql).unwrap();
        let n = stmt.column_count();
        let mut query = stmt.query([]).unwrap();
        while let Some(row) = query.next().unwrap() {
            let values: Vec<String> = (0..n)
                .map(|i| format!("{:?}", row.get_ref(i).unwrap()))
                .collect();
            rows.push(values.join(" "));
        }
    }
    rows
}

/// A row forged with its digest recomputed that still names a line the
/// journal does not agree with is refused too: the line is the evidence.
#[test]
fn an_index_row_pointing_at_another_line_is_checked_against_the_line() {
    let env = ledger();
    let expected = history(&env, "a", "2", "json");
    model_at(&env.journal, 15);
    history(&env, "c", "1", "json");
    // a's tip moved to seq 13 (c's withdrawal), digest left: refused by the
    // digest; the row for 13 under a's name does not exist either way.
    tamper(&env.journal, "UPDATE tips SET key = 26 WHERE account = 'a'");
    assert_eq!(history(&env, "a", "2", "json"), expected);
}

/// The hex SHA-256 of a journal line (without its `\n`): its hash.
fn hash_of(line: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(line.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// An index row's digest, as the model writes it (`readmodel::index`).
fn row_digest(key: i64, prev: i64, end: i64) -> i64 {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    for part in [
        &b"history"[..],
        &key.to_le_bytes(),
        &prev.to_le_bytes(),
        &end.to_le_bytes(),
    ] {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part);
    }
    let mut first = [0u8; 8];
    first.copy_from_slice(&h.finalize()[..8]);
    i64::from_le_bytes(first)
}

/// Each line the index path reads is vouched for by the next line's
/// `prev` alone. A walk back to the account's creation must find it
/// empty there, so that a line edited with its next line's `prev` made
/// to match (the chain breaks one line further, where the full replay
/// sees it), or an index row forged with its digest to skip an event,
/// is not shown as a history that does not add up.
#[test]
fn a_walk_back_to_the_creation_must_add_up_to_the_balance() {
    // a's capture of 5.00 (seq 7) made 9.00, and b's deposit after it
    // (seq 8, a line a's history does not read) chained to it.
    let env = ledger();
    model_at(&env.journal, 15);
    history(&env, "c", "1", "json");
    let mut lines: Vec<String> = env.lines();
    let edited = lines[7].replacen(r#""amount":"5.00""#, r#""amount":"9.00""#, 1);
    let next = lines[8].replacen(&hash_of(&lines[7]), &hash_of(&edited), 1);
    assert!(edited != lines[7] && next != lines[8]);
    (lines[7], lines[8]) = (edited, next);
    env.write(lines.join("\n") + "\n");
    let journal = env.bytes();
    for args in [&["history", "a"][..], &["history", "a", "--format", "json"]] {
        let out = env.cmd().args(args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{args:?}: {stderr}");
    }
    assert_eq!(env.bytes(), journal);
    // a's row for seq 9 (key 19, a the transfer's second account) made
    // to skip seq 7 (the capture of 5.00, key 14), its digest made again:
    // a coherent forgery of the cache, which a walk that stops short of
    // the creation (`--limit`, `--since`) cannot tell from the truth
    // (README, "Status and roadmap"); one that reaches it can.
    let whole = |env: &TestEnv| -> Vec<_> {
        let filters: [&[&str]; 3] = [&[], &["--tag", "k"], &["--until", "2030-01-01T00:00:00Z"]];
        filters
            .iter()
            .flat_map(|f| ["table", "json"].map(|format| filtered(env, "a", f, None, format)))
            .collect()
    };
    let env = ledger();
    let expected = whole(&env);
    model_at(&env.journal, 15);
    history(&env, "c", "1", "json");
    let db = rusqlite::Connection::open(ledger::readmodel::path_of(&env.journal)).unwrap();
    let end: i64 = db
        .query_row("SELECT line_end FROM history WHERE key = 19", [], |r| {
            r.get(0)
        })
        .unwrap();
    db.execute(
        "UPDATE history SET prev = 12, digest = ?1 WHERE key = 19",
        [row_digest(19, 12, end)],
    )
    .unwrap();
    drop(db);
    assert_eq!(whole(&env), expected);
}

/// The seq up to which the model's history index covers the journal.
fn indexed_seq(env: &TestEnv) -> Option<u64> {
    let db = rusqlite::Connection::open(ledger::readmodel::path_of(&env.journal)).unwrap();
    db.query_row("SELECT seq FROM indexed", [], |r| r.get::<_, i64>(0))
        .ok()
        .map(|seq| seq as u64)
}

/// A rebuilt model has no index yet: the first history builds it; a short
/// write then extends it as it saves the model, a long one leaves it to
/// the next history.
#[test]
fn the_index_is_built_by_the_first_history_and_kept_up_by_short_writes() {
    let env = ledger();
    model_at(&env.journal, 10);
    assert_eq!(indexed_seq(&env), None);
    let expected = history(&env, "a", "3", "csv");
    assert_eq!(indexed_seq(&env), Some(10));
    // The lines after the model's head are replayed, not indexed.
    assert_eq!(model_seq(&env.journal), Some(10));
    env.ok("deposit a 2");
    assert_eq!(indexed_seq(&env), Some(16));
    let memo = "m".repeat(400);
    let long: String = (0..3000)
        .map(|_| format!("deposit b 1 --memo {memo}\n"))
        .collect();
    env.cmd()
        .args(["batch", "-"])
        .write_stdin(long)
        .assert()
        .success();
    assert_eq!(model_seq(&env.journal), Some(3016));
    assert_eq!(indexed_seq(&env), Some(16));
    let after = history(&env, "b", "2", "json");
    assert_eq!(indexed_seq(&env), Some(3016));
    assert_ne!(history(&env, "a", "3", "csv"), expected);
    assert_eq!(after.2, 0);
    remove_model(&env.journal);
    assert_eq!(history(&env, "b", "2", "json"), after);
}

#[test]
fn a_model_deleted_or_unusable_changes_only_speed() {
    let env = ledger();
    let names = ["a", "b", "c", "zz"];
    model_at(&env.journal, 15);
    let with_model = every_history(&env, &names);
    remove_model(&env.journal);
    assert_eq!(every_history(&env, &names), with_model);
    std::fs::write(ledger::readmodel::path_of(&env.journal), b"garbage").unwrap();
    assert_eq!(every_history(&env, &names), with_model);
}

/// a, b and c over a week, tagged, with a hold captured and a reversal:
/// what the bounds and tags of a history select.
fn dated_ledger() -> TestEnv {
    let env = TestEnv::new();
    for (clock, command) in [
        ("2026-11-20T09:00:00Z", "create a --currency EUR"),
        ("2026-11-20T09:00:00Z", "create b --currency EUR"),
        ("2026-11-20T10:00:00Z", "deposit a 50 --tag k=x"),
        ("2026-11-21T08:00:00Z", "transfer a b 10 --tag k=y"),
        ("2026-11-21T12:00:00Z", "create c --currency EUR"),
        ("2026-11-22T07:00:00Z", "hold a 5 --to c"),
        ("2026-11-22T07:30:00Z", "capture 6"),
        ("2026-11-23T00:00:00Z", "deposit b 7.25 --tag k=x"),
        ("2026-11-24T10:00:00Z", "transfer b a 3"),
        ("2026-11-25T10:00:00Z", "reverse 9"),
        ("2026-11-26T10:00:00Z", "deposit a 1 --tag k=z"),
        // Booked on earlier days: by day, they go among the others.
        ("2026-11-26T11:00:00Z", "deposit b 2 --date 2026-11-21"),
        (
            "2026-11-26T12:00:00Z",
            "withdraw a 4 --date 2026-11-22 --tag k=x",
        ),
        // An account whose events are booked before it was opened, near
        // midnight (another zone moves their days).
        ("2026-11-26T23:30:00Z", "create d --currency EUR"),
        ("2026-11-26T23:40:00Z", "deposit d 9 --date 2026-11-10"),
        ("2026-11-27T00:10:00Z", "transfer d a 2 --date 2026-11-21"),
        ("2026-11-27T00:20:00Z", "withdraw d 1"),
    ] {
        env.ok_at(clock, command);
    }
    env
}

/// Bounds and tags, alone and together: a `--from-seq` after `--since`
/// and one before it (the table's opening balance is at `--since`),
/// bounds before and after every event; and dates, which list the events
/// by day.
const FILTERS: [&[&str]; 25] = [
    &[],
    &["--since", "2026-11-21T08:00:00Z"],
    &[
        "--since",
        "2026-11-22T07:30:00Z",
        "--until",
        "2026-11-24T10:00:00Z",
    ],
    &["--until", "2026-11-21T12:00:00Z"],
    &["--from-seq", "6"],
    &["--from-seq", "3", "--since", "2026-11-22T00:00:00Z"],
    &["--since", "2026-11-21T00:00:00Z", "--from-seq", "8"],
    &["--tag", "k=x"],
    &["--tag", "k", "--since", "2026-11-21T00:00:00Z"],
    &["--as-of", "8"],
    &["--as-of", "2026-11-23T00:00:00Z", "--from-seq", "4"],
    &["--since", "2027-01-01T00:00:00Z"],
    &["--since", "2020-01-01T00:00:00Z"],
    &["--until", "2020-01-01T00:00:00Z"],
    &["--since", "2026-11-22"],
    &["--until", "2026-11-22"],
    &["--since", "2026-11-21", "--until", "2026-11-23"],
    &["--as-of", "2026-11-22"],
    &["--since", "2026-11-22", "--tag", "k=x"],
    &["--since", "2026-11-22", "--from-seq", "9"],
    &["--since", "2027-01-01"],
    &["--until", "2020-01-01"],
    &["--since", "2026-11-21", "--tz", "Asia/Tokyo"],
    &["--until", "2026-11-26", "--tz", "America/Los_Angeles"],
    &["--since", "2026-11-27", "--tz", "Asia/Tokyo"],
];

/// `history ACCOUNT` with `filter`, `limit` (if any) and `format`:
/// stdout, stderr and exit code.
fn filtered(
    env: &TestEnv,
    account: &str,
    filter: &[&str],
    limit: Option<&str>,
    format: &str,
) -> (Vec<u8>, Vec<u8>, i32) {
    let mut cmd = env.cmd();
    cmd.args(["--format", format, "history", account])
        .args(filter);
    if let Some(limit) = limit {
        cmd.args(["--limit", limit]);
    }
    let out = cmd.output().unwrap();
    (out.stdout, out.stderr, out.status.code().unwrap_or(-1))
}

/// Every account's history with every filter, without a limit and with
/// a few, in two formats.
fn every_filtered(env: &TestEnv, names: &[&str]) -> Vec<(Vec<u8>, Vec<u8>, i32)> {
    let mut all = Vec::new();
    for name in names {
        for filter in FILTERS {
            for limit in [None, Some("1"), Some("3")] {
                for format in ["table", "json"] {
                    all.push(filtered(env, name, filter, limit, format));
                }
            }
        }
    }
    all
}

#[test]
fn bounds_and_tags_are_answered_from_the_index_as_the_full_replay_answers() {
    let env = dated_ledger();
    let names = ["a", "b", "c", "d", "nobody"];
    remove_model(&env.journal);
    let expected = every_filtered(&env, &names);
    assert_eq!(model_seq(&env.journal), None);
    for seq in [2, 7, 11, 13, 15, 17] {
        model_at(&env.journal, seq);
        assert_eq!(every_filtered(&env, &names), expected, "model at {seq}");
    }
    let table =
        |filter: &[&str]| String::from_utf8(filtered(&env, "a", filter, None, "table").0).unwrap();
    assert_eq!(
        table(&[
            "--since",
            "2026-11-22T07:30:00Z",
            "--until",
            "2026-11-24T10:00:00Z"
        ]),
        "SEQ  AT                    CHANGE  BALANCE  EVENT\n     \
         2026-11-22 07:30:00             40.00  opening balance\n  \
         7  2026-11-22 07:30:00    -5.00    35.00  capture 5.00 of hold 6: a to c\n  \
         9  2026-11-24 10:00:00     3.00    38.00  transfer 3.00 from b to a\n"
    );
}

/// The index is what answers every history of one account, bounded or
/// not: a line the history does not need, edited where the model covers
/// it, is not read (the full replay refuses the journal).
#[test]
fn a_bounded_or_whole_history_reads_only_the_lines_it_gathers() {
    let env = dated_ledger();
    model_at(&env.journal, 11);
    let asked: [&[&str]; 5] = [
        &[],
        &["--since", "2026-11-24T00:00:00Z"],
        &["--tag", "k=x"],
        &["--since", "2026-11-22"],
        &["--until", "2026-11-21"],
    ];
    let expected: Vec<_> = asked
        .iter()
        .map(|f| filtered(&env, "c", f, None, "json"))
        .collect();
    let text = String::from_utf8(env.bytes()).unwrap();
    // seq 8 (b's deposit of 7.25): same length, so offsets stay.
    env.write(text.replacen(r#""amount":"7.25""#, r#""amount":"7.26""#, 1));
    let now: Vec<_> = asked
        .iter()
        .map(|f| filtered(&env, "c", f, None, "json"))
        .collect();
    assert_eq!(now, expected);
    // From seq 9 on, a's history does not need seq 8; all of b's does,
    // and so does b's by day from any day: a book date may put any of
    // its events on or after it.
    let journal = env.bytes();
    let (_, _, code) = filtered(&env, "a", &["--from-seq", "8"], None, "json");
    assert_eq!(code, 0);
    let (_, _, code) = filtered(&env, "a", &["--since", "2026-11-25"], None, "json");
    assert_eq!(code, 0);
    for filter in [&[][..], &["--since", "2026-11-25"]] {
        let (_, stderr, code) = filtered(&env, "b", filter, None, "json");
        assert_eq!(code, 3, "{}", String::from_utf8_lossy(&stderr));
    }
    assert_eq!(env.bytes(), journal);
}

/// An account with more events than the index should read one at a
/// time (a thirty-second of the journal, and at least 4,096) is answered
/// by the full replay: the same rows, and an edited line anywhere is
/// found.
#[test]
fn an_account_with_many_events_is_answered_by_the_full_replay() {
    let env = TestEnv::with(&["create a", "create b", "deposit b 1"]);
    let mut lines = String::new();
    for _ in 0..4100 {
        lines.push_str("deposit a 1\n");
    }
    let many = env.file("many.txt", &lines);
    env.ok_args(&["batch", &many]);
    model_at(&env.journal, 4103);
    let (out, _, code) = filtered(&env, "a", &["--since", "2020-01-01T00:00:00Z"], None, "csv");
    assert_eq!(code, 0);
    assert_eq!(String::from_utf8(out).unwrap().lines().count(), 4102);
    let expected = filtered(&env, "a", &[], Some("3"), "json");
    let text = String::from_utf8(env.bytes()).unwrap();
    // b's deposit, which a's history does not show.
    env.write(text.replacen(
        r#""account":"b","amount":"1.00""#,
        r#""account":"b","amount":"1.01""#,
        1,
    ));
    // The last 3 come from the index; every event, from the replay,
    // which finds the edit.
    assert_eq!(filtered(&env, "a", &[], Some("3"), "json"), expected);
    let (_, stderr, code) = filtered(&env, "a", &[], None, "json");
    assert_eq!(code, 3, "{}", String::from_utf8_lossy(&stderr));
}

/// Date bounds of a history by day, for [`every_answer`].
const DAY_FILTERS: [&[&str]; 4] = [
    &["--since", "2026-11-22"],
    &["--until", "2026-11-23"],
    &["--as-of", "2026-11-22", "--tag", "k"],
    &["--since", "2026-11-21", "--until", "2026-11-22"],
];

/// Each account's history, as the model (if any) answers it: the last 1,
/// 4 or 3 (JSON, and a table), every event, those after a seq or up
/// to one (`from`, tables), and by day.
fn every_answer(env: &TestEnv, from: u64) -> Vec<(Vec<u8>, Vec<u8>, i32)> {
    let from = from.to_string();
    let mut all = Vec::new();
    for name in NAMES {
        all.extend(["1", "4"].map(|l| history(env, name, l, "json")));
        all.push(history(env, name, "3", "table"));
        for filter in [&[][..], &["--from-seq", &from], &["--as-of", &from]] {
            all.push(filtered(env, name, filter, None, "table"));
            all.push(filtered(env, name, filter, Some("2"), "json"));
        }
        // By day: the ops' book dates fall on 2026-11-20 to 2026-11-24,
        // the others on the day the test runs.
        for filter in DAY_FILTERS {
            all.push(filtered(env, name, filter, None, "table"));
            all.push(filtered(env, name, filter, Some("2"), "json"));
        }
    }
    all
}

fn same_histories(path: &Path, from: u64) -> Result<(), TestCaseError> {
    let env = TestEnv {
        dir: tempfile::tempdir().unwrap(),
        journal: path.to_owned(),
        db: None,
    };
    let with_model = every_answer(&env, from);
    remove_model(path);
    prop_assert_eq!(with_model, every_answer(&env, from));
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]

    /// On random journals, with the model kept up to date by the writers
    /// and then rebuilt at a random seq, the index's answers equal the full
    /// replay's, bounded at a random seq or not.
    #[test]
    fn indexed_history_equals_the_full_replay(
        ops in proptest::collection::vec(op(), 1..30),
        at in 0.0f64..1.0,
        from in 0.0f64..1.0,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.jsonl");
        run_ops(&path, &ops, false);
        let last = crate::readmodel::full_replay(&path).seq();
        let from = ((last as f64) * from) as u64;
        same_histories(&path, from)?;
        model_at(&path, ((last as f64) * at) as u64 + 1);
        same_histories(&path, from)?;
    }
}
