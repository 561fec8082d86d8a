//! The read model beside the journal (SPEC 7): used when valid, ignored
//! (and the state rebuilt from the journal) when stale, damaged, another
//! journal's or past a truncated end. Results always equal a full replay.

use std::fs;
use std::path::Path;

use ledger::cmd::{Load, ReplayFrom, replay, state_at};
use ledger::domain::{self, State};
use ledger::journal::{Outcome, ReadJournal, Writer};
use ledger::readmodel;
use proptest::prelude::*;

use crate::common::{TestEnv, create, request};

/// Rebuilds the read model as of the state after event `seq`.
pub fn model_at(path: &Path, seq: u64) {
    let journal = ReadJournal::open(path).unwrap().unwrap();
    let header = journal.header_head().unwrap();
    let mut state = State::default();
    let mut scanner = journal.scanner_from(header);
    while state.seq() < seq {
        let entry = scanner.next(&mut state, None).unwrap().unwrap();
        domain::evolve(&mut state, &entry.event);
    }
    let (mut model, _) = journal.model().unwrap();
    model.build(&state, scanner.head(), header.hash).unwrap();
}

/// The seq the read model covers, if it is valid.
pub fn model_seq(path: &Path) -> Option<u64> {
    let journal = ReadJournal::open(path).unwrap().unwrap();
    journal
        .model()
        .and_then(|(_, covers)| covers)
        .map(|h| h.seq)
}

/// Asserts that the state read through the model (all of it) is the
/// state a full replay of the journal folds.
#[track_caller]
fn assert_model_agrees(path: &Path, context: &str) {
    assert_eq!(
        accounts_of(&state_at(path, None, Load::All).unwrap()),
        accounts_of(&full_replay(path)),
        "{context}"
    );
}

/// The model's file with every hundredth byte or so changed, its header
/// (the first 100 bytes) left whole, after folding its log into it.
fn model_flipped(journal: &Path) -> Vec<u8> {
    tamper(journal, "PRAGMA wal_checkpoint(TRUNCATE)");
    let mut bytes = fs::read(readmodel::path_of(journal)).unwrap();
    for i in (100..bytes.len()).step_by(97) {
        bytes[i] ^= 0x5a;
    }
    bytes
}

/// The seq of the journal's last event.
#[track_caller]
fn head_seq(env: &TestEnv) -> u64 {
    let quiet = env.ok("verify -q");
    quiet
        .split_whitespace()
        .next()
        .and_then(|seq| seq.parse().ok())
        .unwrap_or_else(|| panic!("verify -q printed {quiet}"))
}

/// Removes the read model and its SQLite companions.
pub fn remove_model(path: &Path) {
    let model = readmodel::path_of(path);
    for suffix in ["", "-wal", "-shm"] {
        let mut name = model.clone().into_os_string();
        name.push(suffix);
        let _ = fs::remove_file(name);
    }
}

/// Runs `sql` on the read model, as a hand (or damage) would.
pub fn tamper(path: &Path, sql: &str) {
    let db = rusqlite::Connection::open(readmodel::path_of(path)).unwrap();
    db.execute_batch(sql).unwrap();
}

/// Whether the model beside the journal at `path` has a table `name`.
fn has_table(path: &Path, name: &str) -> bool {
    let db = rusqlite::Connection::open(readmodel::path_of(path)).unwrap();
    let n: i64 = db
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE name = ?1",
            [name],
            |r| r.get(0),
        )
        .unwrap();
    n > 0
}

/// SQL that deletes the model's page of accounts that holds `name` (and
/// the accounts beside it there: a small ledger's accounts share one).
pub fn lose_page_of(name: &str) -> String {
    format!(
        "DELETE FROM account_pages WHERE first =
         (SELECT max(first) FROM account_pages WHERE first <= '{name}')"
    )
}

/// SQL that sets byte `at` (from 0) of the entries of the page of
/// accounts that starts with `first` to `byte`, its digest left as it
/// was. An entry is its name's length (a byte), the name, the owner's
/// length (2 bytes, `ffff` for none), the owner, the unit (4 bytes),
/// closed (a byte), the balance and the held amount (16 bytes each).
pub fn set_page_byte(first: &str, at: usize, byte: u8) -> String {
    format!(
        "UPDATE account_pages SET entries = CAST(substr(entries, 1, {at}) || x'{byte:02x}'
         || substr(entries, {after}) AS BLOB) WHERE first = '{first}'",
        after = at + 2
    )
}

pub fn full_replay(path: &Path) -> State {
    replay(path, ReplayFrom::Start, |_, _| Ok(())).unwrap()
}

/// a: 50 - 10 - 20 + 5 = 25.00, b: 10.00
fn ledger() -> TestEnv {
    TestEnv::with(&[
        "create a",
        "create b",
        "deposit a 50",
        "transfer a b 10",
        "withdraw a 20",
        "deposit a 5",
    ])
}

#[test]
fn a_valid_model_is_read_instead_of_the_lines_it_covers() {
    let env = ledger();
    model_at(&env.journal, 5);
    assert_eq!(model_seq(&env.journal), Some(5));
    // Edit line 4 (seq 3) without changing its length: a full replay refuses
    // the journal, a replay from the model never reads that line.
    let edited = String::from_utf8(env.bytes()).unwrap().replacen(
        r#""amount":"50.00""#,
        r#""amount":"60.00""#,
        1,
    );
    env.write(edited);
    assert_eq!(env.balance_of("a"), "25.00");
    env.ok("deposit a 1");
    env.cmd().arg("verify").assert().code(3);
    remove_model(&env.journal);
    env.cmd().arg("balance").assert().code(3);
    env.fails(3, &["deposit", "a", "1"]);
}

#[test]
fn a_stale_model_is_extended_by_the_lines_after_it_and_caught_up() {
    let env = ledger();
    model_at(&env.journal, 3);
    assert_eq!(model_seq(&env.journal), Some(3));
    env.ok("withdraw b 4");
    assert_eq!(model_seq(&env.journal), Some(7));
    env.ok("create c");
    assert_eq!(
        (env.balance_of("a"), env.balance_of("b")),
        ("25.00".into(), "6.00".into())
    );
    assert_eq!(
        env.ok("deposit c 1"),
        "seq 9: deposit 1.00 to c; balance c 1.00\n"
    );
    assert_eq!(model_seq(&env.journal), Some(9));
    // A reader catches a model up too.
    model_at(&env.journal, 2);
    env.ok("balance a");
    assert_eq!(model_seq(&env.journal), Some(9));
    let full = full_replay(&env.journal);
    assert_eq!(full.account("c").unwrap().balance.0, 100);
    assert_eq!(
        accounts_of(&state_at(&env.journal, None, Load::All).unwrap()),
        accounts_of(&full)
    );
}

/// A journal past [`readmodel::MODEL_AFTER_BYTES`]: `a` gets that many
/// deposits of 1.00 with long memos.
fn long_journal() -> (TestEnv, u64) {
    let lines = readmodel::MODEL_AFTER_BYTES / 500 + 1;
    (deposits_with_memos(lines), lines)
}

/// `a`, then `n` deposits into it of 1.00 with 500-byte memos, by one batch.
fn deposits_with_memos(n: u64) -> TestEnv {
    let env = TestEnv::with(&["create a"]);
    let memo = "m".repeat(500);
    let batch: String = (0..n)
        .map(|_| format!("deposit a 1 --memo {memo}\n"))
        .collect();
    env.cmd()
        .args(["batch", "-"])
        .write_stdin(batch)
        .assert()
        .success();
    env
}

#[test]
fn a_long_journal_gets_a_model_and_a_short_one_none() {
    let env = ledger();
    assert_eq!(env.balance_of("a"), "25.00");
    env.ok("deposit b 1");
    assert!(!readmodel::path_of(&env.journal).exists());
    let (env, lines) = long_journal();
    // The batch that made the journal long left a model; without it, the
    // next command, reader or writer, builds one.
    assert_eq!(model_seq(&env.journal), Some(lines + 1));
    remove_model(&env.journal);
    assert_eq!(env.balance_of("a"), format!("{lines}.00"));
    assert_eq!(model_seq(&env.journal), Some(lines + 1));
    remove_model(&env.journal);
    env.ok("deposit a 1");
    assert_eq!(model_seq(&env.journal), Some(lines + 2));
    assert_model_agrees(&env.journal, "");
}

/// An account's row lost from the model (deleted, nothing else touched)
/// does not let `create` open that account again: the link of the row
/// before it (or the link to the first) still names it. Accounts the
/// model learned from a writer, not a rebuild, are linked in the same way;
/// and a name that was never used is still created.
#[test]
fn a_lost_account_row_does_not_let_create_open_it_again() {
    for lost in ["a", "b", "0", "aa", "c"] {
        let env = ledger();
        model_at(&env.journal, 6);
        // Written back by the writers, after the rebuild of `a` and `b`.
        for name in ["c", "aa", "0"] {
            env.ok(&format!("create {name}"));
        }
        assert_eq!(model_seq(&env.journal), Some(9), "{lost}");
        tamper(&env.journal, &lose_page_of(lost));
        let refused = env.fails(1, &["create", lost]);
        assert!(refused.contains("already exists"), "{lost}: {refused}");
        env.ok("create ab");
        assert_model_agrees(&env.journal, lost);
    }
}

/// With more accounts than a page of the model holds (32), written by a
/// rebuild and then by a writer (whose new accounts go between them and
/// split the pages), a page lost anywhere, first, in the middle or last,
/// does not let `create` open one of its accounts again; a name never
/// used that would go in that page is still created.
#[test]
fn a_lost_page_among_many_does_not_let_create_open_its_accounts_again() {
    // A third of 90 accounts by a rebuild (2 pages), the rest by a writer.
    let creates = |rebuilt: bool| -> String {
        (0..90)
            .filter(|i| (i % 3 == 0) == rebuilt)
            .map(|i| format!("create a{i:03}\n"))
            .collect()
    };
    for lost in ["a000", "a045", "a089"] {
        let env = TestEnv::new();
        let batch = |input: String| {
            env.cmd()
                .args(["batch", "-"])
                .write_stdin(input)
                .assert()
                .success();
        };
        batch(creates(true));
        model_at(&env.journal, 30);
        batch(creates(false));
        assert_eq!(model_seq(&env.journal), Some(90), "{lost}");
        let pages: i64 = rusqlite::Connection::open(readmodel::path_of(&env.journal))
            .unwrap()
            .query_row("SELECT count(*) FROM account_pages", [], |r| r.get(0))
            .unwrap();
        assert!(pages >= 5, "{pages} pages: none split");
        tamper(&env.journal, &lose_page_of(lost));
        let refused = env.fails(1, &["create", lost]);
        assert!(refused.contains("already exists"), "{lost}: {refused}");
        env.ok(&format!("create {lost}x"));
        assert_model_agrees(&env.journal, lost);
    }
}

#[test]
fn rows_changed_by_hand_or_damage_are_not_trusted() {
    // `a`'s entry comes first in the page of `a` and `b`: its balance is
    // bytes 9 to 24, its unit bytes 4 to 7.
    for sql in [
        // A balance changed without its totals (or its digest).
        set_page_byte("a", 24, 0x13).as_str(),
        // A value out of range.
        set_page_byte("a", 4, 7).as_str(),
        "UPDATE units SET decimals = 19",
        "UPDATE units SET held = x'0102'",
        // An account lost (with `a`: they share a page).
        lose_page_of("b").as_str(),
        "UPDATE account_pages SET digest = 0",
        "UPDATE account_pages SET count = 1",
        // The head moved to another line.
        "UPDATE head SET seq = 5",
        "UPDATE head SET line_end = line_end - 1",
        "UPDATE head SET journal = 'x'",
        "UPDATE head SET format = 'ledger-readmodel 0'",
        "DROP TABLE holds",
    ] {
        let env = ledger();
        model_at(&env.journal, 6);
        tamper(&env.journal, sql);
        let journal = env.bytes();
        assert_eq!(env.balance_of("a"), "25.00", "{sql}");
        assert_eq!(env.balance_of("b"), "10.00", "{sql}");
        env.cmd().args(["create", "b"]).assert().code(1);
        assert_eq!(env.bytes(), journal, "{sql}");
        env.ok("deposit b 1");
        assert_eq!(
            model_seq(&env.journal),
            Some(head_seq(&env)),
            "{sql}: not rebuilt"
        );
        assert_model_agrees(&env.journal, sql);
    }
}

#[test]
fn an_id_the_model_maps_to_the_wrong_line_is_checked_against_the_line() {
    let env = TestEnv::with(&["create a", "deposit a 5 --id k1", "deposit a 7 --id k2"]);
    model_at(&env.journal, 3);
    tamper(
        &env.journal,
        "UPDATE id_keys SET entries = substr(entries, 1, 8) || X'0000000000000003'
         WHERE length(entries) > 0",
    );
    let out = env.ok("deposit a 5 --id k1");
    assert!(out.starts_with("seq 2: "), "{out}");
    assert_eq!(env.balance_of("a"), "12.00");
}

/// Every id bucket has a row: rows deleted or moved by hand, or the table
/// dropped, are damage, and a repeat is still a repeat (before, a lost
/// bucket row let the repeat be appended again).
#[test]
fn an_id_bucket_row_lost_by_hand_does_not_let_a_repeat_be_appended() {
    for damage in [
        "DELETE FROM id_keys WHERE length(entries) > 0",
        "UPDATE id_keys SET bucket = bucket + 70000 WHERE length(entries) > 0",
        "DROP TABLE id_keys",
    ] {
        let env = TestEnv::with(&["create a", "deposit a 5 --id k1", "deposit a 7 --id k2"]);
        model_at(&env.journal, 3);
        let before = env.bytes();
        tamper(&env.journal, damage);
        let out = env.ok("deposit a 5 --id k1");
        assert!(out.starts_with("seq 2: "), "{damage}: {out}");
        assert_eq!(env.bytes(), before, "{damage}");
        env.ok("verify");
    }
}

/// A journal past [`readmodel::MODEL_AFTER_BYTES`] made by one batch:
/// `create a`, then `n` deposits of 1.00 into it, the one at seq `s` with
/// the id `k{s-2}` and the returned 500-byte memo.
fn long_journal_with_ids() -> (TestEnv, u64, String) {
    let env = TestEnv::new();
    let memo = "m".repeat(500);
    let n = readmodel::MODEL_AFTER_BYTES / 500 + 1;
    let mut batch = String::from("create a\n");
    for i in 0..n {
        batch.push_str(&format!("deposit a 1 --id k{i} --memo {memo}\n"));
    }
    env.cmd()
        .args(["batch", "-"])
        .write_stdin(batch)
        .assert()
        .success();
    (env, n, memo)
}

/// A batch of `n` deposits into `b` with ids `n0`, `n1`, …, among which
/// repeats of the model's ids (`k3`, the same command, from
/// [`long_journal_with_ids`]) and of its own, a hold placed and captured
/// by id, and reversals by id of one of its deposits and of the model's.
fn batch_naming_ids(n: usize, memo: &str) -> String {
    let mut text = String::from("create b\n");
    for i in 0..n {
        text.push_str(&format!("deposit b 1 --id n{i}\n"));
        match i {
            100 => text.push_str(&format!("deposit a 1 --id k3 --memo {memo}\n")),
            200 => text.push_str("deposit b 1 --id n5\n"),
            300 => text.push_str("hold b 2 --id h1\ncapture --of-id h1\n"),
            400 => text.push_str("reverse --of-id n7 --id r1\nreverse --of-id k9\n"),
            _ => {}
        }
    }
    text
}

/// A batch long enough to read its ids ahead (4,096 commands or more,
/// into a journal with a model: see `Writer::foresee_ids`) appends the
/// very lines and prints the very answers that it does into the same
/// journal without its model (whose writer knows every id, replayed); an
/// id reused for another command is refused by both, the journal left as
/// it was. From a file and from stdin, with helper threads and without.
#[test]
fn a_long_batch_that_reads_its_ids_ahead_does_what_it_does_without_a_model() {
    let run = |env: &TestEnv, input: &str, stdin: bool, threads: bool| {
        let mut cmd = env.cmd();
        if !threads {
            cmd.env("LEDGER_TEST_NO_THREADS", "1");
        }
        match stdin {
            true => cmd
                .args(["--json", "batch", "-"])
                .write_stdin(fs::read(input).expect("input")),
            false => cmd.args(["--json", "batch", input]),
        };
        let out = cmd.output().expect("run");
        let dir = env.dir.path().to_string_lossy().into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).replace(&dir, "DIR");
        (out.status.code(), out.stdout, stderr, env.bytes())
    };
    let cases = [
        (false, false, true),
        (false, true, true),
        (true, false, true),
        (true, true, true),
        (false, false, false),
        (true, true, false),
    ];
    for (reuse, stdin, threads) in cases {
        let (env, _, memo) = long_journal_with_ids();
        assert!(readmodel::path_of(&env.journal).is_file());
        let before = env.bytes();
        let mut text = batch_naming_ids(5000, &memo);
        if reuse {
            text.push_str("deposit b 2 --id n9\n");
        }
        let input = env.file("in.txt", &text);
        let twin = TestEnv::new();
        twin.write(&before);
        let ran = run(&env, &input, stdin, threads);
        let twins = run(&twin, &input, stdin, threads);
        let case = format!("reuse {reuse}, stdin {stdin}, threads {threads}");
        let refused = reuse.then_some("id n9 was already used");
        did_as_its_twin(&env, (ran, twins), (refused, &before), &case);
    }
}

/// What a write gave: its exit code, stdout and stderr, and the journal's
/// bytes after it.
type Ran = (Option<i32>, Vec<u8>, String, Vec<u8>);

/// Checks that a long write of ids (`case`) into `env`, whose journal
/// held `before`, gave what its twin gave into the same journal without
/// its model: accepted, with more than 5,000 events, or `refused` (an
/// error that says so), the journal left as it was.
#[track_caller]
fn did_as_its_twin(
    env: &TestEnv,
    (ran, twins): (Ran, Ran),
    (refused, before): (Option<&str>, &[u8]),
    case: &str,
) {
    let (code, stdout, stderr, bytes) = ran;
    assert_eq!((code, &stderr), (twins.0, &twins.2), "{case}");
    assert!(stdout == twins.1, "{case}: the outputs differ");
    assert!(bytes == twins.3, "{case}: the journals differ");
    match refused {
        None => {
            assert_eq!(code, Some(0), "{case}: {stderr}");
            let seqs = String::from_utf8_lossy(&stdout).matches("\"seq\"").count();
            assert!(seqs > 5000, "{case}: {seqs} events printed");
            env.ok("verify");
        }
        Some(refusal) => {
            assert!(stderr.contains(refusal), "{case}: {stderr}");
            assert!(bytes == before, "{case}: the refusal changed the journal");
        }
    }
}

/// The records of a batch (as [`batch_naming_ids`] writes them) as JSON
/// Lines for `import`.
fn as_jsonl(batch: &str) -> String {
    let mut text = String::new();
    for line in batch.lines() {
        let mut words = line.split(' ');
        let command = words.next().expect("a command");
        let mut record = serde_json::Map::new();
        record.insert("command".into(), command.into());
        let positional: &[&str] = match command {
            "create" => &["account"],
            "deposit" | "hold" => &["account", "amount"],
            _ => &[],
        };
        for key in positional {
            record.insert((*key).into(), words.next().expect("an argument").into());
        }
        while let (Some(option), Some(value)) = (words.next(), words.next()) {
            let key = option.trim_start_matches("--").replace('-', "_");
            record.insert(key, value.into());
        }
        text.push_str(&serde_json::Value::Object(record).to_string());
        text.push('\n');
    }
    text
}

/// A CSV of `n` deposits into `a` (of [`long_journal_with_ids`]), each
/// with the reference `n0`, `n1`, …, and one row twice if `repeat`.
fn csv_naming_ids(n: usize, repeat: bool) -> String {
    let mut text = String::from("Account,Amount,Ref\n");
    for i in 0..n {
        text.push_str(&format!("a,1.{:02},n{i}\n", i % 100));
    }
    if repeat {
        text.push_str("a,1.05,n5\n");
    }
    text
}

/// A long import reads its ids ahead as a long batch does (JSON Lines, or
/// a CSV whose ids are given or made from the rows), and appends the very
/// lines and prints the very answers that it does into the same journal
/// without its model; an id reused for another command, or an unknown
/// account, is refused by both, the journal left as it was. A CSV of
/// 25,000 rows whose ids are all new is long enough for its lines to go
/// to the journal as they are decided, counted by its reading ahead, and
/// cut back on a refusal; one that repeats a row takes the spool.
#[test]
fn a_long_import_that_reads_its_ids_ahead_does_what_it_does_without_a_model() {
    let given = "account = \"{Account}\"\namount = \"{Amount}\"\nid = \"{Ref}\"\n";
    let made = "account = \"{Account}\"\namount = \"{Amount}\"\n";
    let reused = "{\"command\":\"deposit\",\"account\":\"b\",\"amount\":\"2\",\"id\":\"n9\"}\n";
    let n9 = Some((reused, "id n9 was already used"));
    let unknown = Some(("zz,1.00,n99999\n", "zz"));
    let cases = [
        ("in.jsonl", None, 0, false, None),
        ("in.jsonl", None, 0, false, n9),
        ("in.csv", Some(given), 25_000, false, None),
        ("in.csv", Some(given), 25_000, true, None),
        ("in.csv", Some(given), 25_000, false, unknown),
        (
            "in.csv",
            Some(given),
            5000,
            true,
            Some(("a,2.00,n9\n", "id n9 was already used")),
        ),
        ("in.csv", Some(made), 5000, true, None),
    ];
    for (name, rules, rows, repeat, added) in cases {
        let (env, _, memo) = long_journal_with_ids();
        let before = env.bytes();
        let mut text = match rules {
            Some(_) => csv_naming_ids(rows, repeat),
            None => as_jsonl(&batch_naming_ids(5000, &memo)),
        };
        if let Some((line, _)) = added {
            text.push_str(line);
        }
        let input = env.file(name, &text);
        let mut args = vec!["--json", "import", &input];
        let rules_file = rules.map(|r| env.file("rules.toml", r));
        if let Some(rules) = &rules_file {
            args.extend(["--rules", rules]);
        }
        let twin = TestEnv::new();
        twin.write(&before);
        let run = |env: &TestEnv| {
            let out = env.cmd().args(&args).output().expect("run");
            let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
            (out.status.code(), out.stdout, stderr, env.bytes())
        };
        let ran = run(&env);
        let twins = run(&twin);
        let case = format!("{name}, rules {rules:?}, {rows} rows, repeat {repeat}");
        let refused = added.map(|(_, refusal)| refusal);
        did_as_its_twin(&env, (ran, twins), (refused, &before), &case);
    }
}

/// A long batch leaves the model's write-ahead log folded into it and
/// empty, as a single write does once the log passes 512 KiB, though it
/// folds it after letting go of the journal, on a thread (or, with helper
/// threads refused, on its own): the log of the 5,000 ids' buckets,
/// several MiB, would otherwise be read back by every command's first
/// connection.
#[test]
fn a_long_batch_leaves_the_models_log_folded() {
    for threads in [true, false] {
        let (env, n, memo) = long_journal_with_ids();
        let input = env.file("in.txt", &batch_naming_ids(5000, &memo));
        let mut cmd = env.cmd();
        if !threads {
            cmd.env("LEDGER_TEST_NO_THREADS", "1");
        }
        cmd.args(["batch", &input]).assert().success();
        let wal = readmodel::path_of(&env.journal).with_extension("readmodel-wal");
        let len = fs::metadata(&wal).map_or(0, |m| m.len());
        assert_eq!(len, 0, "threads {threads}: the log is {len} bytes");
        let last = env.bytes().iter().filter(|&&b| b == b'\n').count() as u64 - 1;
        assert!(last > n + 5000, "threads {threads}: {last} events");
        assert_eq!(model_seq(&env.journal), Some(last), "threads {threads}");
        assert_model_agrees(&env.journal, &format!("threads {threads}"));
    }
}

/// A batch or an import whose input changes between the reading that
/// foresees its ids and the one that applies it is refused, the journal
/// left as it was: here the changed text names `n11` twice, which the ids
/// read ahead took for new, and applied without that check it would be
/// appended twice. The command waits between its readings at the gate
/// `LEDGER_TEST_READ_AHEAD_GATE` names, a FIFO it opens to read, while
/// the text changes.
#[test]
fn a_write_whose_input_changes_after_its_ids_were_read_is_refused() {
    let given = "account = \"{Account}\"\namount = \"{Amount}\"\nid = \"{Ref}\"\n";
    let made = "account = \"{Account}\"\namount = \"{Amount}\"\n";
    let deposit = "{\"command\":\"deposit\",\"account\":\"b\",\"amount\":\"7\",\"id\":\"n11\"}\n";
    // A row of made ids repeats none: any change is refused all the same.
    let cases = [
        ("in.txt", "deposit b 7 --id n11\n", None),
        ("in.jsonl", deposit, None),
        ("in.csv", "a,7.00,n11\n", Some(given)),
        ("in.csv", "a,7.00,n11\n", Some(made)),
    ];
    for (name, added, rules) in cases {
        let (env, _, memo) = long_journal_with_ids();
        let before = env.bytes();
        let text = match (name, rules) {
            (_, Some(_)) => csv_naming_ids(25_000, false),
            ("in.jsonl", None) => as_jsonl(&batch_naming_ids(5000, &memo)),
            _ => batch_naming_ids(5000, &memo),
        };
        let input = env.file(name, &text);
        let journal = env.journal.to_string_lossy().into_owned();
        let mut args = vec!["-f", &journal];
        let rules_file = rules.map(|r| env.file("rules.toml", r));
        match (name, &rules_file) {
            (_, Some(rules)) => args.extend(["import", &input, "--rules", rules]),
            ("in.jsonl", None) => args.extend(["import", &input]),
            _ => args.extend(["batch", &input]),
        }
        let gate = env.dir.path().join("gate");
        let mode = rustix::fs::Mode::from_raw_mode(0o600);
        rustix::fs::mknodat(rustix::fs::CWD, &gate, rustix::fs::FileType::Fifo, mode, 0)
            .expect("mkfifo");
        let mut write = env
            .process()
            .args(&args)
            .env("LEDGER_TEST_READ_AHEAD_GATE", &gate)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn");
        let opened = open_gate(&gate, &mut write, &case_of(name, rules));
        fs::write(&input, format!("{text}{added}")).expect("rewrite");
        drop(opened);
        let out = write.wait_with_output().expect("wait");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let case = case_of(name, rules);
        assert_eq!(out.status.code(), Some(4), "{case}: {stderr}");
        assert!(
            stderr.contains("changed while it was read"),
            "{case}: {stderr}"
        );
        assert!(env.bytes() == before, "{case}: the journal changed");
        env.ok("verify");
    }
}

fn case_of(name: &str, rules: Option<&str>) -> String {
    format!("{name}, rules {rules:?}")
}

/// The FIFO `gate` opened to write, once `write` has opened it to read
/// (it has read its input ahead), which then waits for it to close.
#[track_caller]
fn open_gate(gate: &Path, write: &mut std::process::Child, case: &str) -> std::os::fd::OwnedFd {
    use rustix::fs::{Mode, OFlags};
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        // Without a reader yet, the open fails (ENXIO) rather than wait.
        match rustix::fs::open(gate, OFlags::WRONLY | OFlags::NONBLOCK, Mode::empty()) {
            Ok(fd) => return fd,
            Err(rustix::io::Errno::NXIO) => {}
            Err(e) => panic!("{case}: open the gate: {e}"),
        }
        if let Some(status) = write.try_wait().expect("wait") {
            panic!("{case}: ended ({status}) without reaching the gate");
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{case}: never reached the gate"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// A batch whose summary goes into a reader that reads nothing yet lets
/// go of the journal once its events and the read model are written, not
/// once it has printed: another writer goes on meanwhile, and the batch
/// then prints in full.
#[test]
fn a_batch_printing_into_a_stalled_reader_holds_no_other_writer_up() {
    use std::io::Read;
    use std::process::Stdio;
    use std::time::{Duration, Instant};
    let (env, n, _) = long_journal_with_ids();
    // A summary of 6,000 rows, past what a pipe holds.
    let text: String = (0..6000).map(|i| format!("create c{i:05}\n")).collect();
    let input = env.file("in.txt", &text);
    let journal = env.journal.to_string_lossy().into_owned();
    let before = env.bytes().len();
    let mut batch = env
        .process()
        .args(["-f", &journal, "batch", &input])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("batch");
    let deadline = Instant::now() + Duration::from_secs(60);
    while env.bytes().len() == before {
        assert!(Instant::now() < deadline, "the batch never committed");
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut deposit = env
        .process()
        .args(["-f", &journal, "deposit", "a", "1"])
        .stdout(Stdio::null())
        .spawn()
        .expect("deposit");
    let deposited = loop {
        match deposit.try_wait().expect("wait") {
            Some(status) => break Some(status),
            None if Instant::now() > deadline => break None,
            None => std::thread::sleep(Duration::from_millis(20)),
        }
    };
    if deposited.is_none() {
        let _ = (deposit.kill(), batch.kill());
    }
    assert!(
        deposited.is_some_and(|s| s.success()),
        "the deposit waited on a batch that was printing"
    );
    let mut summary = String::new();
    let mut stdout = batch.stdout.take().expect("stdout");
    stdout.read_to_string(&mut summary).expect("summary");
    assert!(batch.wait().expect("batch").success());
    let first = summary.lines().next().unwrap_or_default();
    let last = n + 1 + 6000;
    assert_eq!(
        first,
        format!(
            "appended 6000 event(s) (seq {}-{last}); 0 repeat(s) of earlier --id commands",
            n + 2
        )
    );
    assert_eq!(summary.lines().count(), 2 + 6000, "every account's row");
    assert_eq!(model_seq(&env.journal), Some(last + 1), "the deposit's");
}

/// A batch that creates a journal long enough for a model writes the
/// model once: the ids it appended are in it, so a repeat of one is a
/// repeat (it was appended a second time when the writer's drop rebuilt
/// the model again, its appended ids already handed over).
#[test]
fn a_batch_that_creates_a_long_journal_leaves_a_model_with_its_ids() {
    let (env, n, memo) = long_journal_with_ids();
    assert_eq!(model_seq(&env.journal), Some(n + 1));
    let out = env.ok(&format!("deposit a 1 --id k0 --memo {memo}"));
    assert!(out.starts_with("seq 2: "), "{out}");
    let out = env.ok("deposit a 1 --id new");
    assert!(out.starts_with(&format!("seq {}: ", n + 2)), "{out}");
    env.cmd().arg("verify").assert().success();
    assert_eq!(env.balance_of("a"), format!("{}.00", n + 1));
}

/// A writer on a long journal without a model replays it knowing the
/// ids by fingerprint and key, not by name: a repeat of an old id is
/// still told from a new one (settled from its line), an old id reused
/// for another command is refused, and the model the write rebuilds holds
/// every id, so that the next writer, from the model, tells them apart too.
#[test]
fn a_writer_rebuilding_the_model_knows_every_id_without_their_names() {
    let (env, n, memo) = long_journal_with_ids();
    let repeat = format!("deposit a 1 --id k7 --memo {memo}");
    for writer in ["rebuilding", "from the model"] {
        remove_model(&env.journal);
        if writer == "from the model" {
            let out = env.ok("deposit a 3 --id new");
            assert!(out.starts_with(&format!("seq {}: ", n + 2)), "{out}");
            assert_eq!(model_seq(&env.journal), Some(n + 2), "rebuilt by the write");
        }
        let before = env.bytes();
        let out = env.ok(&repeat);
        assert!(out.starts_with("seq 9: "), "{writer}: {out}");
        env.refusals(&[(
            &["deposit", "a", "2", "--id", "k3"],
            1,
            "id k3 was already used at seq 5 for a different command",
        )]);
        assert_eq!(env.bytes(), before, "{writer}");
    }
    let out = env.ok("deposit a 3 --id new");
    assert!(
        out.starts_with(&format!("seq {}: ", n + 2)),
        "a repeat: {out}"
    );
    assert_model_agrees(&env.journal, "");
    env.cmd().arg("verify").assert().success();
}

/// A reversal's row lost from the model does not let a movement be
/// reversed twice: the link of the reversal before it (or the link to the
/// first) still names it. Reversals from the rebuild and those a writer
/// linked in after it, before and after the others, alike.
#[test]
fn a_lost_reversal_row_does_not_let_a_movement_be_reversed_twice() {
    for lost in ["4", "5", "6"] {
        let env = ledger();
        env.ok("reverse 5");
        model_at(&env.journal, 7);
        env.ok("reverse 6");
        env.ok("reverse 4");
        assert_eq!(model_seq(&env.journal), Some(9), "{lost}");
        tamper(
            &env.journal,
            &format!("DELETE FROM reversed WHERE seq = {lost}"),
        );
        let refused = env.fails(1, &["reverse", lost]);
        assert!(refused.contains("already reversed"), "{lost}: {refused}");
        env.ok("deposit b 1");
        env.ok("reverse 10");
        env.fails(1, &["reverse", "10"]);
        env.cmd().arg("verify").assert().success();
        assert_model_agrees(&env.journal, lost);
    }
}

/// A model of format 4 had no links between its accounts (nor format 5
/// between its reversals), and one of format 7 a row for each account: it
/// is not used, and its rebuild makes those tables again, the accounts
/// in linked pages, their old table gone.
#[test]
fn a_model_of_format_4_is_rebuilt_with_its_accounts_linked() {
    let env = ledger();
    model_at(&env.journal, 6);
    tamper(
        &env.journal,
        "DROP TABLE account_pages; DROP TABLE first_account;
         CREATE TABLE accounts (
             name TEXT PRIMARY KEY, owner TEXT, unit INTEGER NOT NULL, balance BLOB NOT NULL,
             closed INTEGER NOT NULL, held BLOB NOT NULL, digest INTEGER NOT NULL) WITHOUT ROWID;
         DROP TABLE reversed; DROP TABLE first_reversed;
         CREATE TABLE reversed (
             seq INTEGER PRIMARY KEY, by_seq INTEGER NOT NULL, digest INTEGER NOT NULL);
         UPDATE head SET format = 'ledger-readmodel 4'",
    );
    assert_eq!(model_seq(&env.journal), None);
    env.fails(1, &["create", "b"]);
    env.ok("create c");
    assert_eq!(model_seq(&env.journal), Some(7));
    assert!(!has_table(&env.journal, "accounts"));
    tamper(&env.journal, &lose_page_of("b"));
    env.fails(1, &["create", "b"]);
    assert_eq!(env.balance_of("a"), "25.00");
}

/// A model of format 3 kept the ids by their text in a table `ids`: it is
/// not used, and its rebuild (ids by key) drops that table.
#[test]
fn a_model_of_format_3_is_rebuilt_without_its_ids_by_text() {
    let env = TestEnv::with(&["create a", "deposit a 5 --id k1"]);
    model_at(&env.journal, 2);
    tamper(
        &env.journal,
        "DROP TABLE id_keys;
         CREATE TABLE ids (id TEXT PRIMARY KEY, seq INTEGER NOT NULL, digest INTEGER NOT NULL) WITHOUT ROWID;
         INSERT INTO ids VALUES ('k2', 2, 0);
         UPDATE head SET format = 'ledger-readmodel 3'",
    );
    assert_eq!(model_seq(&env.journal), None);
    let out = env.ok("deposit a 5 --id k1");
    assert!(out.starts_with("seq 2: "), "{out}");
    let out = env.ok("deposit a 7 --id k2");
    assert!(out.starts_with("seq 3: "), "{out}");
    assert_eq!(model_seq(&env.journal), Some(3));
    assert!(!has_table(&env.journal, "ids"));
    assert_eq!(env.balance_of("a"), "12.00");
}

#[test]
fn a_damaged_model_file_is_ignored() {
    let env = ledger();
    model_at(&env.journal, 6);
    let path = readmodel::path_of(&env.journal);
    let flipped = model_flipped(&env.journal);
    let good = fs::read(&path).unwrap();
    for damaged in [
        flipped,
        good[..good.len() / 2].to_vec(),
        b"garbage".to_vec(),
        Vec::new(),
    ] {
        remove_model(&env.journal);
        fs::write(&path, &damaged).unwrap();
        assert_eq!(env.balance_of("a"), "25.00");
        env.ok("deposit b 1");
    }
    assert_eq!(env.balance_of("b"), "14.00");
    assert_model_agrees(&env.journal, "");
}

/// Beside a journal long enough to keep a model, a model file too damaged
/// for SQLite to open or empty is set aside (`.damaged`) and replaced by a
/// new one at the next command, which would otherwise replay the whole
/// journal for ever.
#[test]
fn a_model_file_past_repair_is_replaced_beside_a_long_journal() {
    let env = TestEnv::with(&["create a"]);
    let batch: String = (0..9_000)
        .map(|i| format!("deposit a 1 --memo m{i}\n"))
        .collect();
    env.cmd().arg("batch").write_stdin(batch).assert().success();
    assert!(
        env.bytes().len() as u64 > readmodel::MODEL_AFTER_BYTES,
        "too short"
    );
    let path = readmodel::path_of(&env.journal);
    let head = head_seq(&env);
    assert_eq!(model_seq(&env.journal), Some(head));
    for (case, damaged) in [model_flipped(&env.journal), b"garbage, not SQLite".to_vec()]
        .into_iter()
        .enumerate()
    {
        remove_model(&env.journal);
        fs::write(&path, &damaged).unwrap();
        assert_eq!(model_seq(&env.journal), None, "case {case}");
        assert_eq!(env.balance_of("a"), "9000.00", "case {case}");
        assert_eq!(
            model_seq(&env.journal),
            Some(head),
            "case {case}: not replaced"
        );
        // Set aside, not destroyed.
        let aside = format!("{}.damaged", path.display());
        assert_eq!(fs::read(&aside).unwrap(), damaged, "case {case}");
    }
}

#[test]
fn another_journals_model_is_ignored() {
    let other = TestEnv::new();
    other.ok("create a");
    other.ok("deposit a 999");
    model_at(&other.journal, 2);
    let env = ledger();
    remove_model(&env.journal);
    tamper(&other.journal, "PRAGMA wal_checkpoint(TRUNCATE)");
    fs::copy(
        readmodel::path_of(&other.journal),
        readmodel::path_of(&env.journal),
    )
    .unwrap();
    assert_eq!(model_seq(&env.journal), None);
    assert_eq!(env.balance_of("a"), "25.00");
    assert_eq!(model_seq(&env.journal), Some(head_seq(&env)), "not rebuilt");
}

#[test]
fn a_model_past_a_truncated_journal_is_ignored() {
    let env = ledger();
    model_at(&env.journal, 6);
    let lines = env.lines();
    env.write(lines[..5].join("\n") + "\n");
    assert_eq!(model_seq(&env.journal), None);
    // Without seq 5 and 6: a = 50 - 10.
    assert_eq!(env.balance_of("a"), "40.00");
    // The journal was then rewritten to the same length with other content.
    let env = ledger();
    model_at(&env.journal, 6);
    let text = String::from_utf8(env.bytes()).unwrap();
    env.write(text.replace(r#""amount":"5.00""#, r#""amount":"6.00""#));
    assert_eq!(model_seq(&env.journal), None);
}

/// Reads take the events the model covers as decided (they were, before
/// the model was written), and give what a model-less read gives; a
/// journal rewritten afterwards with a consistent chain no longer matches
/// the model's head, so every read decides every event again and refuses
/// the forged one.
#[test]
fn events_the_model_covers_are_decided_again_once_the_journal_is_rewritten() {
    let (env, lines) = long_journal();
    assert_eq!(model_seq(&env.journal), Some(lines + 1));
    let reads = [
        "report --json",
        "history --json",
        "export --to jsonl",
        "balance --json",
    ];
    let with_model: Vec<String> = reads.iter().map(|args| env.ok(args)).collect();
    remove_model(&env.journal);
    let without: Vec<String> = reads.iter().map(|args| env.ok(args)).collect();
    assert_eq!(with_model, without);
    env.ok("deposit a 1");
    assert_eq!(model_seq(&env.journal), Some(lines + 2));
    // The first deposit becomes a withdrawal from an empty account, and
    // every later line is chained again, as a forger would.
    let mut text = env.lines();
    text[2] = text[2].replacen("MoneyDeposited", "MoneyWithdrawn", 1);
    crate::common::rechain(&mut text, 3);
    env.write(text.iter().map(|l| format!("{l}\n")).collect::<String>());
    assert_eq!(model_seq(&env.journal), None);
    for args in reads {
        let args: Vec<&str> = args.split(' ').collect();
        let stderr = env.fails(3, &args);
        assert!(stderr.contains("line 3: "), "{args:?}: {stderr}");
    }
}

#[test]
fn as_of_before_the_model_replays_from_the_start() {
    let env = ledger();
    model_at(&env.journal, 6);
    let at3: serde_json::Value = serde_json::from_str(&env.ok("balance --as-of 3 --json")).unwrap();
    assert_eq!(at3["as_of_seq"], 3);
    assert_eq!(at3["accounts"][0]["balance"], "50.00");
    let at9: serde_json::Value = serde_json::from_str(&env.ok("balance --as-of 9 --json")).unwrap();
    assert_eq!(at9["as_of_seq"], 6);
}

#[test]
fn a_typo_is_answered_from_every_account_not_only_those_loaded() {
    let env = TestEnv::with(&["create alice", "create bob"]);
    let stderr = env.fails(1, &["deposit", "alcie", "1"]);
    assert!(stderr.contains("did you mean alice"), "{stderr}");
}

#[test]
fn a_typo_is_answered_from_the_accounts_created_after_the_model_too() {
    let env = TestEnv::with(&["create alice", "create bob"]);
    // bob was created after the model's head: only the lines after it know him.
    model_at(&env.journal, 1);
    let journal = env.bytes();
    let stderr = env.fails(1, &["deposit", "bobb", "1"]);
    assert!(stderr.contains("did you mean bob?"), "{stderr}");
    assert_eq!(env.bytes(), journal);
    // carol is created by an earlier line of the same batch.
    model_at(&env.journal, 2);
    let out = env
        .cmd()
        .args(["batch", "-"])
        .write_stdin("create carol\ndeposit carl 1\n")
        .assert()
        .code(1);
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(
        stderr.contains("line 2: unknown account carl (did you mean carol?)"),
        "{stderr}"
    );
    assert_eq!(env.bytes(), journal);
}

/// A row lost from a model behind the journal (a zero-balance account,
/// which no sum misses) makes the lines after the model look wrong:
/// `history`, which finds the journal's end from the model, must judge
/// them by a full replay, not call a good journal corrupt.
#[test]
fn a_row_lost_from_a_stale_model_does_not_make_history_call_the_journal_corrupt() {
    let env = ledger();
    env.ok("create c");
    env.ok("deposit c 3");
    model_at(&env.journal, 7);
    tamper(&env.journal, &lose_page_of("c"));
    let out = env.ok("history c");
    assert!(out.contains("deposit 3.00 to c"), "{out}");
    assert_eq!(model_seq(&env.journal), Some(8));
    assert_eq!(
        state_at(&env.journal, None, Load::All).unwrap(),
        full_replay(&env.journal)
    );
}

/// A row lost from a model at the journal's head: every command that loads
/// every row (`balance`, `history`'s widths) sees that the sums no longer
/// add up, and replays the journal instead.
#[test]
fn a_lost_row_is_seen_by_the_commands_that_load_every_row() {
    for sql in [lose_page_of("a").as_str(), "DELETE FROM holds"] {
        let env = ledger();
        env.ok("hold b 4 --to a");
        model_at(&env.journal, 7);
        tamper(&env.journal, sql);
        let all = env.balances();
        assert_eq!(all["accounts"][0]["account"], "a", "{sql}");
        assert_eq!(all["accounts"][0]["balance"], "25.00", "{sql}");
        assert_eq!(all["accounts"][1]["held"], "4.00", "{sql}");
        assert_eq!(
            state_at(&env.journal, None, Load::All).unwrap(),
            full_replay(&env.journal),
            "{sql}"
        );
    }
}

/// SQLite takes a name that starts with `file:` for a URI: the model of a
/// journal given as the relative path `file:j.jsonl` must still be
/// `file:j.jsonl.readmodel`, not `j.jsonl.readmodel` (another journal's).
#[test]
fn a_journal_path_that_reads_as_a_uri_keeps_its_model_beside_it() {
    let env = TestEnv::new();
    let run = |args: &str| {
        env.bare()
            .arg("--file")
            .arg("file:j.jsonl")
            .args(args.split(' '))
            .assert()
            .success();
    };
    run("create a");
    run("deposit a 5");
    let journal = env.dir.path().join("file:j.jsonl");
    model_at(&journal, 2);
    run("deposit a 1");
    assert_eq!(model_seq(&journal), Some(3));
    assert!(!env.dir.path().join("j.jsonl.readmodel").exists());
}

#[derive(Debug, Clone)]
pub enum Op {
    Deposit(usize, u16),
    Transfer(usize, usize, u16),
    Close(usize),
    /// A hold on one account for another, expiring or not.
    Hold(usize, usize, u16, bool),
    /// Capture or release the event at this seq (if it is a hold).
    Capture(u64),
    Release(u64),
    /// Reverse the event at this seq (if it is a movement).
    Reverse(u64),
}

pub fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..3usize, 1u16..500).prop_map(|(a, c)| Op::Deposit(a, c)),
        (0..3usize, 0..3usize, 1u16..500).prop_map(|(a, b, c)| Op::Transfer(a, b, c)),
        (0..3usize).prop_map(Op::Close),
        (0..3usize, 0..3usize, 1u16..200, any::<bool>())
            .prop_map(|(a, b, c, e)| Op::Hold(a, b, c, e)),
        (1u64..40).prop_map(Op::Capture),
        (1u64..40).prop_map(Op::Release),
        (1u64..40).prop_map(Op::Reverse),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// The model at any seq plus the lines after it equals a full replay,
    /// holds and reversals included; and a partial view of the accounts
    /// holds exactly their entries in the full state.
    #[test]
    fn model_plus_tail_equals_full_replay(ops in proptest::collection::vec(op(), 1..40), at in 0.0f64..1.0) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.jsonl");
        run_ops(&path, &ops, false);
        let full = full_replay(&path);
        let k = ((full.seq() as f64) * at) as u64 + 1;
        model_at(&path, k.min(full.seq()));
        prop_assert_eq!(model_seq(&path), Some(k.min(full.seq())));
        model_at(&path, k.min(full.seq()));
        let names: Vec<String> = NAMES.iter().map(|n| n.to_string()).collect();
        let partial = state_at(&path, None, Load::Accounts(&names)).unwrap();
        for name in NAMES {
            prop_assert_eq!(partial.account(name), full.account(name));
        }
        for (seq, hold) in partial.holds() {
            prop_assert_eq!(full.hold(seq), Some(hold));
        }
        prop_assert_eq!(partial.units(), full.units());
        prop_assert_eq!(partial.seq(), full.seq());
        model_at(&path, k.min(full.seq()));
        prop_assert_eq!(accounts_of(&state_at(&path, None, Load::All).unwrap()), accounts_of(&full));
    }

    /// Deciding on the partial state the model loads gives exactly what
    /// deciding on the whole state gives: the same outcome or refusal for
    /// every command, the same ledger at the end.
    #[test]
    fn writes_through_the_model_decide_as_on_the_whole_state(ops in proptest::collection::vec(op(), 1..40)) {
        let dir = tempfile::tempdir().unwrap();
        let (cached, replayed) = (dir.path().join("cached.jsonl"), dir.path().join("replayed.jsonl"));
        let with_model = run_ops(&cached, &ops, false);
        let without = run_ops(&replayed, &ops, true);
        prop_assert_eq!(with_model, without);
        prop_assert_eq!(facts(&full_replay(&cached)), facts(&full_replay(&replayed)));
        prop_assert_eq!(accounts_of(&state_at(&cached, None, Load::All).unwrap()), accounts_of(&full_replay(&cached)));
    }
}

pub const NAMES: [&str; 3] = ["a", "b", "c"];

/// What a read of every account knows: the accounts, units, open holds and
/// seq (the ids, reversals and ended holds a read loads only as needed).
pub fn accounts_of(state: &State) -> String {
    let mut accounts: Vec<_> = state
        .accounts()
        .map(|(n, a)| format!("{n} {a:?}"))
        .collect();
    let mut holds: Vec<_> = state.holds().map(|(s, h)| format!("{s} {h:?}")).collect();
    accounts.sort();
    holds.sort();
    format!("{} {accounts:?} {:?} {holds:?}", state.seq(), state.units())
}

/// Everything a state knows but the time of its last event (two journals
/// written by the same commands at different instants).
fn facts(state: &State) -> String {
    let mut accounts: Vec<_> = state
        .accounts()
        .map(|(n, a)| format!("{n} {a:?}"))
        .collect();
    let mut ids: Vec<_> = state.ids().collect();
    let mut holds: Vec<_> = state.holds().map(|(s, h)| format!("{s} {h:?}")).collect();
    let mut ended: Vec<_> = state.ended_holds().collect();
    let mut reversals: Vec<_> = state.reversals().collect();
    accounts.sort();
    ids.sort();
    holds.sort();
    ended.sort_by_key(|(seq, _)| *seq);
    reversals.sort();
    format!(
        "{} {accounts:?} {:?} {ids:?} {holds:?} {ended:?} {reversals:?}",
        state.seq(),
        state.units()
    )
}

/// Creates the accounts, then applies each op as its own command (with a
/// model, which each command then keeps up to date, unless
/// `without_model`: a journal this short gets none of its own); returns
/// each outcome, or the refusal's text.
pub fn run_ops(path: &Path, ops: &[Op], without_model: bool) -> Vec<Result<Outcome, String>> {
    let mut writer = Writer::open(path).unwrap();
    for (i, name) in NAMES.iter().enumerate() {
        let id = format!("create-{i}");
        let request = ledger::domain::Request {
            id: Some(&id),
            ..request(create(name))
        };
        assert_eq!(
            writer.apply(&request).unwrap(),
            Outcome::Appended(i as u64 + 1)
        );
    }
    writer.commit().unwrap();
    drop(writer);
    if !without_model {
        model_at(path, NAMES.len() as u64);
    }
    let mut outcomes = Vec::new();
    for (i, op) in ops.iter().enumerate() {
        let amount = |c: u16| {
            ledger::money::Decimal::parse_positive(&format!("{}.{:02}", c / 100, c % 100)).unwrap()
        };
        use ledger::domain::{Command, Target};
        // The library takes the real clock here: an expiry far ahead puts
        // the hold on its account's list of expiring holds all the same.
        let expires = ledger::time::At::parse_instant("2999-01-01T00:00:00Z").ok();
        let command = match *op {
            Op::Deposit(a, c) => Command::Deposit {
                account: NAMES[a],
                amount: amount(c),
            },
            Op::Transfer(a, b, c) => Command::Transfer {
                from: NAMES[a],
                to: NAMES[b],
                amount: amount(c),
            },
            Op::Close(a) => Command::Close { account: NAMES[a] },
            Op::Hold(a, b, c, e) => Command::Hold {
                account: NAMES[a],
                amount: amount(c),
                to: (a != b).then_some(NAMES[b]),
                expires: if e { expires } else { None },
            },
            Op::Capture(seq) => Command::Capture {
                target: Target::Seq(seq),
                amount: None,
            },
            Op::Release(seq) => Command::Release {
                target: Target::Seq(seq),
            },
            Op::Reverse(seq) => Command::Reverse {
                target: Target::Seq(seq),
                original: None,
            },
        };
        let mut writer = Writer::open(path).unwrap();
        // Every third op repeats an earlier op's id: a repeat or a reuse.
        let id = format!("op-{}", if i % 3 == 2 { i / 2 } else { i });
        // Every fourth op is booked on an earlier day, one of a few: a
        // history by day then puts it among the others. Every third is
        // tagged.
        let date = (i % 4 == 1)
            .then(|| ledger::time::Day::parse(&format!("2026-11-{:02}", 20 + i % 5)))
            .flatten();
        let tags = match i % 3 {
            0 => vec![("k", "x")],
            _ => Vec::new(),
        };
        let request = ledger::domain::Request {
            id: Some(&id),
            date,
            tags,
            ..request(command)
        };
        let outcome = writer.apply(&request).map_err(|e| e.to_string());
        if outcome.is_ok() {
            writer.commit().unwrap();
        }
        outcomes.push(outcome);
    }
    outcomes
}

/// `history` finds the valid end under the lock, lets go of it and reads
/// again up to there, taking every event up to that end as decided: only
/// because the scan then reaches that end's line and finds it unchanged.
/// A journal rewritten in place meanwhile, shorter, with a forged last
/// line (an overdraft) that chains, never reaches it: the read must not
/// end as if it had, printing the forged event.
#[test]
fn a_journal_rewritten_shorter_while_history_reads_it_is_not_taken_as_decided() {
    use std::io::Read;
    use std::os::unix::fs::FileExt;
    let env = deposits_with_memos(6000);
    let lines = env.lines();
    // A line far past what the reader has read ahead (a few 256 KiB
    // blocks) when `history` blocks on its full output pipe.
    let k = 5000;
    let forged = lines[k]
        .replacen("MoneyDeposited", "MoneyWithdrawn", 1)
        .replacen("\"amount\":\"1.00\"", "\"amount\":\"99999.00\"", 1);
    assert_ne!(forged, lines[k]);
    let offset: usize = lines[..k].iter().map(|l| l.len() + 1).sum();
    // Without a model, the pass under the lock decides every event, and
    // the read after it takes them as decided.
    remove_model(&env.journal);
    let mut child = env
        .process()
        .arg("--file")
        .arg(&env.journal)
        .arg("history")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn history");
    let mut stdout = child.stdout.take().expect("stdout");
    // Its first bytes come once the valid end is found and the lock let
    // go; then the pipe fills and the read waits on it.
    let mut first = [0u8; 1];
    stdout.read_exact(&mut first).expect("history prints");
    std::thread::sleep(std::time::Duration::from_millis(1000));
    let file = fs::OpenOptions::new()
        .write(true)
        .open(&env.journal)
        .expect("open journal");
    file.set_len(offset as u64).expect("cut");
    file.write_all_at(format!("{forged}\n").as_bytes(), offset as u64)
        .expect("forge");
    let mut rest = Vec::new();
    stdout.read_to_end(&mut rest).expect("read history");
    let out = child.wait_with_output().expect("history ends");
    let shown = String::from_utf8_lossy(&rest);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !shown.contains("99999.00"),
        "printed the forged event: {stderr}"
    );
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains(&format!("line {}: the journal ends before", k + 2)),
        "{stderr}"
    );
}

/// The seq up to which the read model records that a replay of the whole
/// journal decided every event.
fn checked_seq(path: &Path) -> Option<i64> {
    let db = rusqlite::Connection::open(readmodel::path_of(path)).unwrap();
    db.query_row("SELECT seq FROM checked", [], |r| r.get(0))
        .ok()
}

/// A model built from a whole state records its head as decided; events
/// writers append after it are decided by the next full read, which then
/// records its end, so the read after it decides none of them again. A
/// record of a line that is no longer the journal's is not used.
#[test]
fn a_full_read_records_how_far_the_journal_is_decided() {
    let (env, lines) = long_journal();
    let built = i64::try_from(lines + 1).unwrap();
    assert_eq!(checked_seq(&env.journal), Some(built));
    env.ok("deposit a 1");
    env.ok("deposit a 1");
    assert_eq!(checked_seq(&env.journal), Some(built));
    let report = env.ok("report --json");
    assert_eq!(checked_seq(&env.journal), Some(built + 2));
    assert_eq!(env.ok("report --json"), report);
    env.ok("deposit a 1");
    env.ok("history --limit 1");
    assert_eq!(checked_seq(&env.journal), Some(built + 3));
    // A damaged record is not used (a good journal still reads as good),
    // and the read that decided every event instead puts it right.
    let expected = env.ok("report --json");
    for damage in [
        "UPDATE checked SET hash = 'x'",
        "UPDATE checked SET seq = 99999999",
    ] {
        tamper(&env.journal, damage);
        assert_eq!(env.ok("report --json"), expected);
        assert_eq!(checked_seq(&env.journal), Some(built + 3));
    }
}

/// Writers decide against the model's rows, so a model at the journal's
/// head says only that its events were decided against those rows: a row
/// lost to damage (no digest shows a whole row gone) lets a writer append
/// what the journal's own state refuses, here a second reversal of one
/// event, and the model then covers that line, with its hash. The reads
/// that go through every line decide every event against the state they
/// fold from the journal, as `verify` does, and refuse it.
#[test]
fn an_event_a_writer_accepted_through_a_lost_row_is_refused_by_every_full_read() {
    let env = TestEnv::with(&["create a", "deposit a 5", "deposit a 7", "reverse 2"]);
    model_at(&env.journal, 4);
    forget_reversals(&env.journal);
    // The write path believes a coherent forgery (a lost row alone is
    // seen: see a_lost_reversal_row_does_not_let_a_movement_be_reversed_twice).
    env.ok("reverse 2");
    assert_eq!(model_seq(&env.journal), Some(5));
    let chart = env.dir.path().join("a.svg");
    let chart = chart.to_string_lossy();
    for args in [
        &["history"][..],
        &["history", "--json"],
        &["report"],
        &["chart", "a", "--out", &chart],
        &["export", "--to", "jsonl"],
        &["export", "--to", "beancount"],
        &["balance", "--as-of", "2026-11-26"],
    ] {
        refused_at(&env, args, "line 6");
    }
    env.fails(3, &["verify"]);
}

/// Forges the model of `journal` as if no movement had been reversed: its
/// reversal rows deleted, and the link to the first reversal made as a
/// model with none has it (taken from one). A lost row alone is seen; a
/// coherent forgery is what a writer cannot tell from the truth.
fn forget_reversals(journal: &Path) {
    let other = TestEnv::with(&["create a"]);
    model_at(&other.journal, 1);
    let db = rusqlite::Connection::open(readmodel::path_of(&other.journal)).unwrap();
    let link: i64 = db
        .query_row(
            "SELECT link FROM first_reversed WHERE seq IS NULL",
            [],
            |r| r.get(0),
        )
        .unwrap();
    tamper(
        journal,
        &format!("DELETE FROM reversed; UPDATE first_reversed SET seq = NULL, link = {link}"),
    );
}

/// Asserts that `args` refuse the journal, naming the second reversal of
/// seq 2 (the one at seq 4 came first) at `line`.
#[track_caller]
fn refused_at(env: &TestEnv, args: &[&str], line: &str) {
    let stderr = env.fails(3, args);
    let why = "cannot reverse seq 2: it was already reversed at seq 4";
    assert!(
        stderr.contains(&format!("{line}: {why}")),
        "{args:?}: {stderr}"
    );
}

/// A batch decides its first commands against the model's rows; when a
/// later one finds a row it cannot use, the writer gives the model up for
/// the whole state. The events it staged before were decided against the
/// rows only (a lost row may have misled them), so the model it rebuilds
/// must not record them as decided: every full read still refuses one
/// that breaks a rule.
#[test]
fn a_batch_that_gives_up_the_model_midway_does_not_record_its_events_as_decided() {
    let env = TestEnv::with(&[
        "create a",
        "deposit a 5",
        "deposit a 7",
        "reverse 2",
        "create b",
    ]);
    model_at(&env.journal, 5);
    forget_reversals(&env.journal);
    // The row saying there are no ids yet: read by the second command only.
    tamper(&env.journal, "UPDATE id_keys SET digest = digest + 1");
    env.cmd()
        .args(["batch", "-"])
        .write_stdin("reverse 2\ndeposit b 1 --id k\n")
        .assert()
        .success();
    assert_eq!(model_seq(&env.journal), Some(7));
    assert_eq!(checked_seq(&env.journal), Some(5));
    for args in [&["report"][..], &["history"], &["export", "--to", "jsonl"]] {
        refused_at(&env, args, "line 7");
    }
    env.fails(3, &["verify"]);
}

/// A `checked` row damaged to name a complete line of a torn append (the
/// interrupted write's lines before its last) names a line that is no
/// part of the valid journal: a read must not take the journal as cut.
#[test]
fn a_checked_row_naming_a_line_of_a_torn_append_only_costs_speed() {
    let env = TestEnv::with(&["create a", "deposit a 5"]);
    model_at(&env.journal, 2);
    let expected = env.ok("report --json");
    env.cmd()
        .args(["batch", "-"])
        .write_stdin("deposit a 1\ndeposit a 2\ndeposit a 3\n")
        .assert()
        .success();
    model_at(&env.journal, 2);
    let text = env.text();
    let lines: Vec<&str> = text.lines().collect();
    // Cut the append's last line in half: lines 4 and 5 (seq 3 and 4)
    // stay complete, in a torn append.
    let last = lines[lines.len() - 1];
    let kept = text.len() - last.len() - 1 + last.len() / 2;
    env.write(&text.as_bytes()[..kept]);
    let line = lines[lines.len() - 2];
    let end = text.len() - last.len() - 1;
    let event: serde_json::Value = serde_json::from_str(line).unwrap();
    tamper(
        &env.journal,
        &format!(
            "INSERT OR REPLACE INTO checked (one, seq, hash, line_end, at) VALUES (1, 4, '{}', {end}, '{}')",
            crate::common::sha256_hex(line.as_bytes()),
            event["at"].as_str().unwrap()
        ),
    );
    assert_eq!(checked_seq(&env.journal), Some(4));
    assert_eq!(env.ok("report --json"), expected);
    env.ok("history");
}

/// A long batch into a model of more accounts than it names twice over
/// (it never asks for them all), and one whose model cannot be used,
/// end: the reading ahead's thread must not leave the writer waiting.
#[test]
fn a_long_batch_that_never_names_half_the_accounts_ends() {
    let (env, _, memo) = long_journal_with_ids();
    env.ok_each(&[
        "create c", "create d", "create e", "create f", "create g", "create h", "create i",
    ]);
    let input = env.file("in.txt", &batch_naming_ids(5000, &memo));
    env.cmd()
        .args(["batch", &input])
        .timeout(std::time::Duration::from_secs(60))
        .assert()
        .success();
    let (env, _, memo) = long_journal_with_ids();
    let model = format!("{}.readmodel", env.journal.display());
    fs::write(&model, "garbage").expect("model");
    let input = env.file("in.txt", &batch_naming_ids(5000, &memo));
    env.cmd()
        .args(["batch", &input])
        .timeout(std::time::Duration::from_secs(60))
        .assert()
        .success();
}
