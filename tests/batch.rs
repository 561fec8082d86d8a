//! `ledger batch` (SPEC 2 and 4): all or nothing, line numbers in errors,
//! shell quoting, stdin and files, the `batch` count, `--id` re-runs,
//! `--dry-run`, `--json`, `--expect-seq`, and the torn tail a cut batch
//! write leaves behind.

use std::fs;
use std::path::PathBuf;

use sha2::{Digest, Sha256};

use crate::common::{AT, HEADER, TestEnv, chained};

/// Lowercase hex SHA-256 of `bytes`.
fn sha(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Writes a batch file into the env's directory and returns its path.
fn batch_file(env: &TestEnv, name: &str, text: &str) -> PathBuf {
    let path = env.dir.path().join(name);
    fs::write(&path, text).unwrap();
    path
}

/// Runs `ledger batch ARGS` with `stdin`; returns (exit code, stdout, stderr).
fn batch(env: &TestEnv, args: &[&str], stdin: &str) -> (i32, String, String) {
    let out = env
        .cmd()
        .arg("batch")
        .args(args)
        .write_stdin(stdin)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

/// Runs a batch from stdin that must succeed; returns stdout.
fn batch_ok(env: &TestEnv, args: &[&str], stdin: &str) -> String {
    let (code, stdout, stderr) = batch(env, args, stdin);
    assert_eq!(code, 0, "batch {args:?} failed: {stderr}\ninput:\n{stdin}");
    stdout
}

/// Runs a batch from stdin that must fail with `code`, leaving the journal
/// byte for byte; returns stderr.
fn batch_fails(env: &TestEnv, code: i32, stdin: &str) -> String {
    let before = env.bytes();
    let (got, _, stderr) = batch(env, &[], stdin);
    assert_eq!(got, code, "stderr: {stderr}\ninput:\n{stdin}");
    assert_eq!(env.bytes(), before, "a refused batch changed the journal");
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    stderr
}

/// The journal's event lines parsed (the header skipped).
fn events(env: &TestEnv) -> Vec<serde_json::Value> {
    env.lines()
        .iter()
        .skip(1)
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// An env whose journal already holds two accounts with money.
fn seeded() -> TestEnv {
    let env = TestEnv::new();
    batch_ok(
        &env,
        &[],
        "create a\ncreate b\ndeposit a 100\ndeposit b 10\n",
    );
    env
}

// ---------------------------------------------------------------------------
// All or nothing

/// 18 lines, with comments and blank lines; line 17 overdraws b (it holds 35).
const OVERDRAW_AT_17: &str = "\
# opening
create c1 --owner 'Ann Lee'
create c2

deposit c1 100
deposit c2 10 --memo \"first\"
# moves
transfer c1 c2 30
transfer c2 c1 5
withdraw c1 1
deposit c1 0.5

create c3
deposit c3 3
withdraw c3 3
close c3
withdraw c2 1000
deposit c1 1
";

#[test]
fn a_line_that_overdraws_writes_nothing_and_names_its_line() {
    let env = seeded();
    let path = batch_file(&env, "cmds.txt", OVERDRAW_AT_17);
    let stderr = env.fails(1, &["batch", path.to_str().unwrap()]);
    assert!(stderr.contains("line 17:"), "{stderr}");
    assert!(stderr.contains("insufficient funds"), "{stderr}");
    assert!(stderr.contains("c2"), "{stderr}");
    // The same lines without the bad one all go in.
    let fixed = OVERDRAW_AT_17.replace("withdraw c2 1000", "withdraw c2 35");
    batch_ok(&env, &[], &fixed);
    assert_eq!(env.balance_of("c2"), "0.00");
    assert_eq!(env.balance_of("c1"), "75.50");
}

#[test]
fn a_malformed_amount_is_a_usage_error_naming_its_line() {
    let env = seeded();
    for bad in ["1.234", "-5", "+5", ".5", "5.", "1e3", "1,000", "0", "abc"] {
        let stderr = batch_fails(
            &env,
            2,
            &format!("deposit a 1\n# note\ndeposit b {bad}\ndeposit a 2\n"),
        );
        assert!(stderr.contains("line 3:"), "{bad}: {stderr}");
    }
}

/// Past the first lines of a shape, lines skip most of clap (see
/// `cmd::batch::parse`); a bad word there must still get the command line's
/// own message, and lines of that shape before it still mean what they say.
#[test]
fn a_bad_word_deep_in_a_long_run_of_one_shape_gets_the_command_line_s_message() {
    let env = seeded();
    for (bad_line, flag) in [
        ("deposit a 1.234 --memo last", "1.234"),
        ("deposit a 1 --memo 'a\tb'", "--memo"),
        ("deposit a 1 --memo m --expect-seq x", "x"),
        ("deposit no/such 1 --memo m", "no/such"),
    ] {
        let mut input: String = (1..=200)
            .map(|i| format!("deposit a {i}.01 --memo m{i}\n"))
            .collect();
        input.push_str(bad_line);
        input.push('\n');
        let stderr = batch_fails(&env, 2, &input);
        let words = shell_words::split(bad_line).unwrap();
        let words: Vec<&str> = words.iter().map(String::as_str).collect();
        let alone = env.fails(2, &words);
        let message = alone.trim_end().strip_prefix("error: ").unwrap();
        assert_eq!(
            stderr.trim_end(),
            format!("error: line 201: {message}"),
            "{flag}"
        );
    }
    let mut input: String = (1..=200)
        .map(|i| format!("deposit a {i}.01 --memo m{i}\n"))
        .collect();
    input.push_str("withdraw a 20002\n");
    batch_ok(&env, &[], &input);
    assert_eq!(env.balance_of("a"), "200.00");
    let memos: Vec<String> = events(&env)
        .iter()
        .filter_map(|e| e["memo"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(memos.len(), 200);
    assert_eq!(memos[199], "m200");
}

#[test]
fn a_usage_error_after_a_rule_error_free_prefix_writes_nothing() {
    // Unknown account on line 2 is a rule error (1); nothing from line 1.
    let env = seeded();
    let stderr = batch_fails(&env, 1, "deposit a 1\ndeposit nobody 1\n");
    assert!(stderr.contains("line 2:"), "{stderr}");
    assert!(stderr.contains("nobody"), "{stderr}");
}

#[test]
fn read_and_nested_commands_are_refused_naming_their_line() {
    let env = seeded();
    for line in [
        "balance",
        "balance a",
        "history",
        "verify",
        "batch other.txt",
        "completions bash",
        "frobnicate a",
    ] {
        let stderr = batch_fails(&env, 2, &format!("deposit a 1\n\n{line}\n"));
        assert!(stderr.contains("line 3:"), "{line}: {stderr}");
    }
}

#[test]
fn a_line_cannot_redirect_to_another_journal() {
    let env = seeded();
    let stderr = batch_fails(&env, 2, "deposit a 1 --file other.jsonl\n");
    assert!(stderr.contains("line 1:"), "{stderr}");
    assert!(!env.dir.path().join("other.jsonl").exists());
}

#[test]
fn an_unclosed_quote_is_a_usage_error_naming_its_line() {
    let env = seeded();
    for line in [
        "deposit a 1 --memo \"rent for May",
        "deposit a 1 --memo 'rent",
    ] {
        let stderr = batch_fails(&env, 2, &format!("deposit a 1\ndeposit a 2\n{line}\n"));
        assert!(stderr.contains("line 3:"), "{line}: {stderr}");
    }
}

#[test]
fn a_line_that_is_not_utf8_is_a_usage_error_naming_its_line() {
    let env = seeded();
    let path = env.dir.path().join("bad.txt");
    fs::write(&path, b"deposit a 1\ndeposit a \xff\n").unwrap();
    let stderr = env.fails(2, &["batch", path.to_str().unwrap()]);
    assert!(stderr.contains("line 2:"), "{stderr}");
}

#[test]
fn a_missing_batch_file_is_an_io_error() {
    let env = seeded();
    let stderr = env.fails(4, &["batch", "no-such-file.txt"]);
    assert!(stderr.contains("no-such-file.txt"), "{stderr}");
}

#[test]
fn a_refused_batch_on_a_missing_journal_creates_no_file() {
    let env = TestEnv::new();
    let (code, _, _) = batch(&env, &[], "create a\nwithdraw a 5\n");
    assert_eq!(code, 1);
    assert!(!env.journal.exists(), "a refused batch created the journal");
    // Observable: verify goes from "no journal at" (3) to exit 0.
    env.fails(3, &["verify"]);
}

#[test]
fn dry_run_on_a_missing_journal_creates_no_file() {
    let env = TestEnv::new();
    batch_ok(&env, &["--dry-run"], "create a\ndeposit a 5\n");
    assert!(!env.journal.exists(), "--dry-run created the journal");
    let nested = env.dir.path().join("sub").join("journal.jsonl");
    let out = env
        .bare()
        .arg("--file")
        .arg(&nested)
        .args(["batch", "--dry-run"])
        .write_stdin("create a\n")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(
        !env.dir.path().join("sub").exists(),
        "--dry-run created a directory"
    );
}

// ---------------------------------------------------------------------------
// Grammar and input

#[test]
fn quoting_comments_and_blank_lines() {
    let env = TestEnv::new();
    let text = "\
# a comment line
   # an indented comment

create q1 --owner 'Alice Smith'
\t
create q2 --owner \"Bob Jones\"
deposit q1 100 --memo \"rent for May\" --id may-rent
deposit q1 1 --memo 'single quoted # not a comment'
deposit q1 2 --memo \"say \\\"hi\\\"\"
transfer q1 q2 3 --memo it\\'s
";
    let path = batch_file(&env, "cmds.txt", text);
    env.ok(&format!("batch {}", path.display()));
    let events = events(&env);
    assert_eq!(events.len(), 6);
    assert_eq!(events[0]["owner"], "Alice Smith");
    assert_eq!(events[1]["owner"], "Bob Jones");
    assert_eq!(events[2]["memo"], "rent for May");
    assert_eq!(events[2]["id"], "may-rent");
    assert_eq!(events[3]["memo"], "single quoted # not a comment");
    assert_eq!(events[4]["memo"], "say \"hi\"");
    assert_eq!(events[5]["memo"], "it's");
    assert_eq!(env.balance_of("q1"), "100.00");
    assert_eq!(env.balance_of("q2"), "3.00");
}

/// A line means what the shell makes of it, as on the command line: an
/// escaped trailing space is kept, and a space that is not ASCII is part
/// of a word, not a separator.
#[test]
fn a_line_is_split_exactly_as_the_shell_splits_it() {
    let env = seeded();
    batch_ok(
        &env,
        &[],
        "  deposit a 1 --memo x\\ \n\tdeposit a 1 --memo '  y  '\t\ndeposit a 1 # trailing comment\n",
    );
    let memos: Vec<serde_json::Value> = events(&env)
        .iter()
        .rev()
        .take(3)
        .map(|e| e["memo"].clone())
        .collect();
    assert_eq!(
        memos,
        [serde_json::Value::Null, "  y  ".into(), "x ".into()]
    );
    for line in ["deposit a 1\u{a0}", "\u{3000}deposit a 1"] {
        let stderr = batch_fails(&env, 2, &format!("{line}\n"));
        assert!(stderr.contains("line 1:"), "{stderr}");
        let words = shell_words::split(line).unwrap();
        let words: Vec<&str> = words.iter().map(String::as_str).collect();
        env.fails(2, &words);
    }
}

#[test]
fn crlf_line_endings_are_accepted() {
    let env = TestEnv::new();
    batch_ok(&env, &[], "create a\r\ndeposit a 5 --memo \"x y\"\r\n");
    assert_eq!(env.balance_of("a"), "5.00");
    assert_eq!(events(&env)[1]["memo"], "x y");
}

#[test]
fn input_from_stdin_dash_and_file_are_the_same() {
    let input = "create a\ncreate a2\ndeposit a 5\ntransfer a a2 1 --memo 'x y'\n";
    let from_stdin = TestEnv::new();
    batch_ok(&from_stdin, &[], input);
    let from_dash = TestEnv::new();
    batch_ok(&from_dash, &["-"], input);
    let from_file = TestEnv::new();
    let path = batch_file(&from_file, "cmds.txt", input);
    from_file.ok(&format!("batch {}", path.display()));
    assert_eq!(from_stdin.bytes(), from_dash.bytes());
    assert_eq!(from_stdin.bytes(), from_file.bytes());
    assert_eq!(from_stdin.balance_of("a2"), "1.00");
}

#[test]
fn an_empty_batch_appends_nothing() {
    let env = seeded();
    let before = env.bytes();
    let out = batch_ok(&env, &[], "# only a comment\n\n");
    assert!(out.contains("0 event"), "{out}");
    assert_eq!(env.bytes(), before);
}

// ---------------------------------------------------------------------------
// The `batch` count

#[test]
fn first_event_of_a_multi_event_append_carries_the_count() {
    let env = seeded();
    let before = env.lines().len();
    batch_ok(&env, &[], "deposit a 1\n# x\ndeposit b 2\ntransfer a b 3\n");
    let lines = env.lines();
    let new: Vec<serde_json::Value> = lines[before..]
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(new.len(), 3);
    assert_eq!(new[0]["batch"], 3);
    assert!(new[1].get("batch").is_none(), "{}", new[1]);
    assert!(new[2].get("batch").is_none(), "{}", new[2]);
    // `batch` sits just before `prev`.
    assert!(
        lines[before].contains(r#","batch":3,"prev":""#),
        "{}",
        lines[before]
    );
    // The seeding batch (4 events on a new journal) was counted too.
    assert_eq!(events(&env)[0]["batch"], 4);
    env.ok("verify");
}

#[test]
fn a_single_event_batch_has_no_count() {
    let env = seeded();
    batch_ok(&env, &[], "# one\ndeposit a 1\n\n");
    let last = events(&env).pop().unwrap();
    assert_eq!(last["amount"], "1.00");
    assert!(last.get("batch").is_none(), "{last}");
}

#[test]
fn the_count_is_of_events_written_not_of_lines() {
    // One line is a repeat of an earlier --id: 2 events written, count 2.
    let env = seeded();
    env.ok("deposit a 7 --id seven");
    let before = env.lines().len();
    batch_ok(
        &env,
        &[],
        "deposit a 1\ndeposit a 7 --id seven\ndeposit b 1\n",
    );
    let lines = env.lines();
    assert_eq!(lines.len(), before + 2);
    assert!(lines[before].contains(r#""batch":2"#), "{}", lines[before]);
    env.ok("verify");
}

// ---------------------------------------------------------------------------
// Ids and re-runs

const WITH_IDS: &str = "\
create s1 --id c-s1
create s2 --owner 'Sam Two' --id c-s2
deposit s1 100 --id d1
transfer s1 s2 25 --memo \"split it\" --id t1
withdraw s2 5 --id w1
deposit s2 1.5 --id d2
";

#[test]
fn rerunning_a_batch_with_ids_appends_nothing() {
    let env = TestEnv::new();
    let path = batch_file(&env, "ids.txt", WITH_IDS);
    let first = env.ok(&format!("batch {}", path.display()));
    assert!(first.contains("appended 6 event"), "{first}");
    let before = env.bytes();
    let again = env.ok(&format!("batch {}", path.display()));
    assert_eq!(env.bytes(), before, "a re-run changed the journal");
    assert!(again.contains("appended 0 event"), "{again}");
    assert!(again.contains("6 repeat"), "{again}");
    // Even after the money has moved on: the id check comes first.
    env.ok("withdraw s1 75");
    let before = env.bytes();
    let again = env.ok(&format!("batch {}", path.display()));
    assert_eq!(env.bytes(), before);
    assert!(again.contains("6 repeat"), "{again}");
}

#[test]
fn a_half_applied_batch_completes_when_rerun() {
    let whole: Vec<&str> = WITH_IDS.lines().collect();
    let first_half = format!("{}\n", whole[..3].join("\n"));

    let env = TestEnv::new();
    let half = batch_file(&env, "half.txt", &first_half);
    env.ok(&format!("batch {}", half.display()));
    let path = batch_file(&env, "ids.txt", WITH_IDS);
    let out = env.ok(&format!("batch {}", path.display()));
    assert!(out.contains("appended 3 event"), "{out}");
    assert!(out.contains("3 repeat"), "{out}");

    let once = TestEnv::new();
    batch_ok(&once, &[], WITH_IDS);
    assert_eq!(env.balances(), once.balances());
    assert_eq!(env.lines().len(), once.lines().len());
    env.ok("verify");
}

#[test]
fn an_id_reused_for_another_command_inside_a_batch_is_refused() {
    let env = seeded();
    let stderr = batch_fails(&env, 1, "deposit a 1 --id k\ndeposit a 2 --id k\n");
    assert!(stderr.contains("line 2:"), "{stderr}");
    assert!(stderr.contains("id k"), "{stderr}");
}

// ---------------------------------------------------------------------------
// --dry-run and --json

const THREE: &str = "deposit a 1 --memo \"x y\"\ntransfer a b 2\nwithdraw b 3 --id w\n";

#[test]
fn dry_run_lists_every_failing_line_against_the_state_the_others_leave() {
    let env = seeded();
    let before = env.bytes();
    // Line 2 fails (funds), line 3 is fine only because line 2 is left out,
    // line 4 is a usage error, line 5 fails against what line 3 left.
    let text = "withdraw a 50\nwithdraw a 60\nwithdraw a 40\ndeposit a -1\nwithdraw a 20\n";
    let (code, stdout, stderr) = batch(&env, &["--dry-run"], text);
    assert_eq!(code, 1, "the first failure's code: {stderr}");
    assert_eq!(env.bytes(), before);
    assert_eq!(stdout, "");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 4, "{stderr}");
    assert!(
        lines[0].starts_with("error: line 2: insufficient funds in a"),
        "{stderr}"
    );
    assert!(lines[1].starts_with("error: line 4: "), "{stderr}");
    assert!(
        lines[2].starts_with("error: line 5: insufficient funds in a"),
        "{stderr}"
    );
    assert_eq!(
        lines[3],
        "error: 3 record(s) would be refused (listed above); nothing written"
    );
    // A usage error first: the run exits 2.
    let (code, _, _) = batch(&env, &["--dry-run"], "deposit a x\nwithdraw a 1000\n");
    assert_eq!(code, 2);
}

#[test]
fn dry_run_writes_nothing_and_says_what_it_would_append() {
    let env = seeded();
    let before = env.bytes();
    let out = batch_ok(&env, &["--dry-run"], THREE);
    assert_eq!(env.bytes(), before, "--dry-run changed the journal");
    assert!(out.contains("would append 3 event"), "{out}");
    assert!(out.contains("seq 5-7"), "{out}");
    // A dry run that would be refused is refused the same way.
    let (code, _, stderr) = batch(&env, &["--dry-run"], "withdraw a 1000\n");
    assert_eq!(code, 1, "{stderr}");
    assert_eq!(env.bytes(), before);
}

#[test]
fn dry_run_json_prints_exactly_the_lines_a_real_run_appends() {
    let env = seeded();
    let before = env.bytes();
    let dry = batch_ok(&env, &["--dry-run", "--json"], THREE);
    assert_eq!(env.bytes(), before);
    let real = batch_ok(&env, &["--json"], THREE);
    assert_eq!(dry, real);
    let new = &env.bytes()[before.len()..];
    assert_eq!(real.as_bytes(), new);
}

#[test]
fn json_prints_the_appended_events_as_the_journal_has_them() {
    let env = seeded();
    let before = env.lines().len();
    let out = batch_ok(&env, &["--json"], THREE);
    let lines = env.lines();
    assert_eq!(out.lines().collect::<Vec<_>>(), lines[before..].to_vec());
    assert_eq!(out.lines().count(), 3);
    // On a new journal too: the header is not an event.
    let fresh = TestEnv::new();
    let out = batch_ok(&fresh, &["--json"], "create a\ndeposit a 1\n");
    assert_eq!(out.lines().collect::<Vec<_>>(), fresh.lines()[1..].to_vec());
}

// ---------------------------------------------------------------------------
// A batch is the same as its commands one by one.

#[test]
fn a_batch_equals_its_commands_run_one_by_one() {
    let commands = [
        "create alice --owner Alice",
        "create bob",
        "create e1 --currency EUR --decimals 3",
        "create e2 --currency EUR --decimals 3",
        "deposit alice 100",
        "deposit e1 5.125 --id e-dep",
        "transfer e1 e2 0.005",
        "transfer alice bob 33.33",
        "withdraw bob 3.33",
        "create tmp",
        "deposit tmp 2",
        "withdraw tmp 2",
        "close tmp",
    ];
    let batched = TestEnv::new();
    batch_ok(&batched, &[], &format!("{}\n", commands.join("\n")));
    let single = TestEnv::new();
    single.ok_each(&commands);
    assert_eq!(batched.balances(), single.balances());
    // And the same events, but for the count and the chain.
    let strip = |env: &TestEnv| -> Vec<serde_json::Value> {
        events(env)
            .into_iter()
            .map(|mut e| {
                let o = e.as_object_mut().unwrap();
                o.remove("batch");
                o.remove("prev");
                e
            })
            .collect()
    };
    assert_eq!(strip(&batched), strip(&single));
    batched.ok("verify");
}

// ---------------------------------------------------------------------------
// --expect-seq inside a batch

#[test]
fn expect_seq_is_compared_with_the_seq_the_batch_has_reached() {
    let env = seeded(); // seq 4
    batch_ok(
        &env,
        &[],
        "deposit a 1 --expect-seq 4\n# between\n\ndeposit a 1 --expect-seq 5\ncreate c --expect-seq 6\n",
    );
    assert_eq!(events(&env).len(), 7);
    // The journal's seq at the start would be wrong for the second line.
    let stderr = batch_fails(
        &env,
        1,
        "deposit a 1 --expect-seq 7\ndeposit a 1 --expect-seq 7\n",
    );
    assert!(stderr.contains("line 2:"), "{stderr}");
    assert!(stderr.contains("journal moved on"), "{stderr}");
    assert!(stderr.contains("last seq is 8, expected 7"), "{stderr}");
    // A repeat of an earlier --id does not advance the seq.
    env.ok("deposit a 1 --id one");
    batch_ok(
        &env,
        &[],
        "deposit a 1 --id one\ndeposit a 2 --expect-seq 8\n",
    );
    let stderr = batch_fails(&env, 1, "deposit a 1 --expect-seq 1\n");
    assert!(stderr.contains("line 1:"), "{stderr}");
    // The --id repeat check comes before --expect-seq.
    let before = env.bytes();
    let out = batch_ok(&env, &[], "deposit a 1 --id one --expect-seq 1\n");
    assert!(out.contains("1 repeat"), "{out}");
    assert_eq!(env.bytes(), before);
}

// ---------------------------------------------------------------------------
// A cut batch write: the torn tail

/// A seeded journal and then a 3-event batch, cut by `cut` (given the
/// batch's bytes, how many of them remain). Returns the env, the journal
/// before the batch, its balances and its head.
fn torn_batch(cut: impl Fn(&[u8]) -> usize) -> (TestEnv, Vec<u8>, serde_json::Value, String) {
    let env = seeded();
    let prefix = env.bytes();
    let balances = env.balances();
    let head = env.ok("verify --quiet");
    batch_ok(&env, &[], "deposit a 1\ndeposit b 2\ntransfer a b 3\n");
    let all = env.bytes();
    let appended = &all[prefix.len()..];
    assert_eq!(appended.iter().filter(|&&b| b == b'\n').count(), 3);
    env.write(&all[..prefix.len() + cut(appended)]);
    (env, prefix, balances, head)
}

/// Where the `n`th line of `bytes` ends, just past its `\n`.
fn after_line(bytes: &[u8], n: usize) -> usize {
    bytes
        .iter()
        .enumerate()
        .filter(|(_, b)| **b == b'\n')
        .nth(n - 1)
        .map(|(i, _)| i + 1)
        .unwrap()
}

fn check_torn_batch(cut: impl Fn(&[u8]) -> usize) {
    let (env, prefix, balances, head) = torn_batch(cut);
    let torn = env.bytes();
    let removed = torn[prefix.len()..].to_vec();

    // Readers see the state before the batch, with one warning.
    for args in [["balance", "--json"], ["verify", "--quiet"]] {
        let out = env.cmd().args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.starts_with("warning: "), "{stderr}");
        assert!(stderr.contains("line 6"), "{stderr}");
        let stdout = String::from_utf8(out.stdout).unwrap();
        if args[0] == "balance" {
            assert_eq!(
                serde_json::from_str::<serde_json::Value>(&stdout).unwrap(),
                balances
            );
        } else {
            assert_eq!(stdout, head);
        }
    }
    let history = env.ok("history --json");
    assert_eq!(history.lines().count(), 4, "{history}");
    assert_eq!(env.bytes(), torn, "a reader touched the journal");

    // A refused write leaves the torn tail alone.
    env.fails(1, &["withdraw", "a", "1000"]);

    // The next write removes the tail and appends after the valid prefix.
    env.ok("deposit a 5");
    let after = env.bytes();
    assert!(after.starts_with(&prefix), "the valid prefix changed");
    let new = std::str::from_utf8(&after[prefix.len()..]).unwrap();
    assert_eq!(new.matches('\n').count(), 1, "{new}");
    let event: serde_json::Value = serde_json::from_str(new.trim_end()).unwrap();
    assert_eq!(event["seq"], 5);
    assert_eq!(event["amount"], "5.00");
    let last_of_prefix = prefix[..prefix.len() - 1]
        .rsplit(|&b| b == b'\n')
        .next()
        .unwrap();
    assert_eq!(event["prev"], sha(last_of_prefix));
    let quarantine = fs::read(format!("{}.torn", env.journal.display())).unwrap();
    assert!(
        quarantine.starts_with(&removed) && quarantine.len() <= removed.len() + 1,
        "{:?} is not the removed {:?}",
        String::from_utf8_lossy(&quarantine),
        String::from_utf8_lossy(&removed)
    );
    let out = env.cmd().args(["verify"]).output().unwrap();
    assert!(out.status.success());
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(env.balance_of("a"), "105.00");
}

#[test]
fn a_batch_cut_in_its_first_line_is_a_torn_tail() {
    check_torn_batch(|_| 50);
}

#[test]
fn a_batch_cut_after_its_first_line_is_a_torn_tail() {
    check_torn_batch(|batch| after_line(batch, 1));
}

#[test]
fn a_batch_cut_in_its_second_line_is_a_torn_tail() {
    check_torn_batch(|batch| after_line(batch, 1) + 30);
}

#[test]
fn a_batch_cut_after_its_second_line_is_a_torn_tail() {
    check_torn_batch(|batch| after_line(batch, 2));
}

/// Whether a multi-event append is whole is read from the journal's last
/// line; a line past a cut append that claims the append's last seq must
/// not make the cut append pass for whole.
#[test]
fn a_line_after_a_cut_batch_claiming_its_last_seq_is_corruption() {
    let env = seeded();
    let prefix = env.bytes();
    batch_ok(&env, &[], "deposit a 1\ndeposit b 2\ntransfer a b 3\n");
    let all = env.bytes();
    let lines: Vec<&[u8]> = all[prefix.len()..].split(|&b| b == b'\n').collect();
    // Keep the batch's first line; then its third, chained onto the first.
    let third = String::from_utf8(lines[2].to_vec()).unwrap();
    let (body, _) = third.split_once(r#","prev":""#).unwrap();
    let forged = format!(r#"{body},"prev":"{}"}}"#, sha(lines[0]));
    let mut bytes = all[..prefix.len() + lines[0].len() + 1].to_vec();
    bytes.extend_from_slice(forged.as_bytes());
    bytes.push(b'\n');
    env.write(&bytes);
    for args in [&["balance"][..], &["verify"], &["deposit", "a", "1"]] {
        let stderr = env.fails(3, args);
        assert!(stderr.contains("line 7"), "{args:?}: {stderr}");
    }
}

#[test]
fn a_cut_batch_whose_remaining_line_does_not_chain_is_corrupt() {
    // A cut write only loses its end: its complete lines must still chain.
    let (env, prefix, _, _) = torn_batch(|batch| after_line(batch, 2));
    let mut bytes = env.bytes();
    let second = after_line(&bytes[prefix.len()..], 1) + prefix.len();
    // Break the `prev` of the batch's second line (its last hex digit).
    let at = bytes.len() - 4;
    assert!(at > second);
    bytes[at] = if bytes[at] == b'0' { b'1' } else { b'0' };
    env.write(&bytes);
    let stderr = env.fails(3, &["balance"]);
    assert!(stderr.contains("line 7"), "{stderr}");
}

#[test]
fn json_prints_the_existing_event_of_a_repeated_id_in_line_order() {
    let env = TestEnv::new();
    batch_ok(&env, &[], "create a --id c\ndeposit a 5 --id d\n");
    let out = batch_ok(
        &env,
        &["--json"],
        "create a --id c\ndeposit a 6\ndeposit a 5 --id d\n",
    );
    let lines = env.lines();
    let printed: Vec<&str> = out.lines().collect();
    // seq 1 (repeat), seq 3 (new), seq 2 (repeat): each exactly as stored.
    assert_eq!(
        printed,
        [lines[1].as_str(), lines[3].as_str(), lines[2].as_str()]
    );
}

// ---------------------------------------------------------------------------
// A batch larger than the few MiB its lines are staged in memory: the rest
// goes through a nameless file beside the journal (SPEC 4: memory does not
// grow with the batch).

/// Events enough to stage several times the 1 MiB of lines kept in
/// memory (each about 290 bytes).
const LARGE: u64 = 20_000;

/// A memo that makes each line long, so that fewer lines fill the buffer.
const MEMO: &str =
    "a memo long enough to make each staged line long, so that a test batch outgrows memory soon";

/// The files in the env's directory, but the read model.
fn entries(env: &TestEnv) -> Vec<String> {
    // The read model a journal this long gets is not a leftover.
    let mut names: Vec<String> = fs::read_dir(env.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| !name.contains(".readmodel"))
        .collect();
    names.sort();
    names
}

#[test]
fn a_batch_larger_than_its_buffer_writes_the_bytes_spec_2_spells() {
    let mut text = String::from("create a\n");
    let mut events = vec![format!(
        r#"{{"seq":1,"at":"{AT}","type":"AccountCreated","account":"a","decimals":2,"batch":{LARGE}}}"#
    )];
    for seq in 2..=LARGE {
        text.push_str(&format!("deposit a 1 --id dep-{seq} --memo '{MEMO}'\n"));
        events.push(format!(
            r#"{{"seq":{seq},"at":"{AT}","type":"MoneyDeposited","account":"a","amount":"1.00","id":"dep-{seq}","memo":"{MEMO}"}}"#
        ));
    }
    // A repeat of a line staged long before: it appends nothing, and JSON
    // shows the event it repeats where it stands.
    text.push_str(&format!("deposit a 1 --id dep-2 --memo '{MEMO}'\n"));
    let events: Vec<&str> = events.iter().map(String::as_str).collect();
    let expected = chained(HEADER, &events);

    let env = TestEnv::new();
    let file = batch_file(&env, "large.txt", &text);
    let file = file.to_str().unwrap();
    let dry = env.ok_args(&["batch", file, "--dry-run", "--json"]);
    assert!(!env.journal.exists(), "a dry run created the journal");
    assert_eq!(entries(&env), ["large.txt"], "a dry run left a file behind");
    let real = env.ok_args(&["batch", file, "--json"]);
    assert_eq!(env.bytes(), expected.as_bytes());
    assert_eq!(
        dry, real,
        "a dry run shows other lines than the real run writes"
    );
    let lines = env.lines();
    let mut shown: Vec<&str> = lines[1..].iter().map(String::as_str).collect();
    shown.push(&lines[2]);
    assert_eq!(real.lines().collect::<Vec<_>>(), shown);
    assert_eq!(entries(&env), ["journal.jsonl", "large.txt"]);
    env.ok("verify");
    // From stdin, whose megabytes wait in a file before the journal is locked.
    let piped = TestEnv::new();
    assert_eq!(batch_ok(&piped, &["--json"], &text), real);
    assert_eq!(piped.bytes(), expected.as_bytes());
    assert_eq!(entries(&piped), ["journal.jsonl"]);
}

#[test]
fn a_large_batch_refused_at_its_last_line_leaves_journal_and_directory_as_they_were() {
    let env = seeded();
    let mut text: String = (0..LARGE)
        .map(|i| format!("deposit a 1 --id dep-{i} --memo '{MEMO}'\n"))
        .collect();
    // Reversing a line staged long before reads it back from the spool.
    text.push_str("reverse 6\n");
    let file = batch_file(&env, "large.txt", &text);
    text.push_str("withdraw a 1000000\n");
    let refused = batch_file(&env, "refused.txt", &text);
    let (before, names) = (env.bytes(), entries(&env));
    let stderr = env.fails(1, &["batch", refused.to_str().unwrap()]);
    assert!(stderr.contains(&format!("line {}", LARGE + 2)), "{stderr}");
    assert_eq!(env.bytes(), before, "a refused batch changed the journal");
    assert_eq!(entries(&env), names, "a refused batch left a file behind");

    env.ok_args(&["batch", file.to_str().unwrap()]);
    let events = events(&env);
    let last = events.last().unwrap();
    assert_eq!(last["type"], "MoneyWithdrawn");
    assert_eq!(last["reverses"], 6);
    assert_eq!(events[4]["batch"], LARGE + 1);
    env.ok("verify");
}

/// A batch longer than the 1 MiB staged in memory is written to the
/// journal as it is decided, its count known from its lines. Whatever
/// ends it, the journal holds it all or none of it: refused at its last
/// line (from a file and from stdin, into an existing journal and a new
/// one), or with fewer events than lines (a repeated `--id`, a comment),
/// when the lines written go back to the spool and are sealed again.
#[test]
fn a_long_batch_written_ahead_is_all_or_nothing() {
    let memo = "m".repeat(100);
    let deposits = |from: usize, to: usize| -> String {
        (from..to)
            .map(|k| format!("deposit a 1 --id d{k} --memo {memo}\n"))
            .collect()
    };
    // About 8 MB of journal lines.
    let long = format!("create a\n{}", deposits(0, 30_000));
    for existing in [false, true] {
        let env = TestEnv::new();
        if existing {
            env.ok("create z");
        }
        let before = fs::read(&env.journal).ok();
        let refused = format!("{long}withdraw a 1000000\n");
        let path = batch_file(&env, "refused.txt", &refused);
        let out = env.run(&format!("batch {}", path.display()));
        assert_eq!(out.status.code(), Some(1), "existing: {existing}");
        assert_eq!(fs::read(&env.journal).ok(), before, "existing: {existing}");
        let (code, _, _) = batch(&env, &[], &refused);
        assert_eq!(code, 1);
        assert_eq!(fs::read(&env.journal).ok(), before, "existing: {existing}");
    }

    let env = TestEnv::new();
    let path = batch_file(&env, "long.txt", &long);
    env.ok(&format!("batch {}", path.display()));
    // Half repeats, a comment, then new ones: fewer events than lines.
    let again = format!(
        "# again\n{}{}",
        deposits(15_000, 30_000),
        deposits(30_000, 45_000)
    );
    let path = batch_file(&env, "again.txt", &again);
    let out = env.ok(&format!("batch {}", path.display()));
    assert!(out.contains("appended 15000 event(s)"), "{out}");
    let text = String::from_utf8(env.bytes()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1 + 1 + 45_000);
    assert!(lines[30_002].contains(r#","batch":15000,"prev""#));
    for pair in lines.windows(2) {
        assert!(pair[1].ends_with(&format!(r#""prev":"{}"}}"#, sha(pair[0].as_bytes()))));
    }
    env.ok("verify");
    assert_eq!(env.balance_of("a"), "45000.00");
}

/// Ctrl-C during a long batch, once lines are written ahead: the batch
/// stops, cuts them back, and exits 130 (as SIGINT's default would); the
/// journal is byte for byte as it was, with no torn tail.
#[test]
fn ctrl_c_during_a_long_batch_leaves_the_journal_as_it_was() {
    let env = TestEnv::new();
    env.ok("create a");
    let before = env.bytes();
    let memo = "m".repeat(100);
    let text: String = (0..400_000)
        .map(|k| format!("deposit a 1 --id c{k} --memo {memo}\n"))
        .collect();
    let path = batch_file(&env, "long.txt", &text);
    let child = env
        .process()
        .arg("--file")
        .arg(&env.journal)
        .arg("batch")
        .arg(&path)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    while fs::metadata(&env.journal).unwrap().len() == before.len() as u64 {
        assert!(start.elapsed().as_secs() < 60, "nothing written ahead");
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    let sent = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(
        stderr.contains("interrupted: nothing was written"),
        "{stderr}"
    );
    assert_eq!(env.bytes(), before);
    assert!(!env.journal.with_extension("jsonl.torn").exists());
    env.ok("verify");
}

/// Runs `ledger ARGS` on `env`'s journal with every helper thread refused
/// (`LEDGER_TEST_NO_THREADS`, as if the OS refused them) or not; returns
/// (exit code, stdout, stderr), the journal's path in them as `JOURNAL`.
fn run_threads(env: &TestEnv, refused: bool, args: &[&str]) -> (i32, String, String) {
    let mut cmd = env.cmd();
    if refused {
        cmd.env("LEDGER_TEST_NO_THREADS", "1");
    }
    let out = cmd.args(args).output().unwrap();
    let journal = env.journal.to_string_lossy();
    let text = |bytes| {
        String::from_utf8(bytes)
            .unwrap()
            .replace(&*journal, "JOURNAL")
    };
    (
        out.status.code().unwrap_or(-1),
        text(out.stdout),
        text(out.stderr),
    )
}

/// A long batch (written to the journal as it is decided, synced as it
/// goes), one whose repeated ids make it spool, a refused one, imports of
/// CSV and JSON Lines, and a rebuilt read model: with every helper thread
/// refused, each falls back to the command's own thread and writes, prints
/// and exits exactly as with its threads.
#[test]
fn with_no_helper_thread_a_batch_or_an_import_is_the_same() {
    let accounts = 2_000;
    let mut first = String::new();
    for a in 0..accounts {
        first.push_str(&format!("create acct{a}\ndeposit acct{a} 1000 --id d{a}\n"));
    }
    // About 7 MB of lines: past the 1 MiB a batch stages before it writes
    // ahead (and syncs as it writes).
    for i in 0..24_000 {
        let (from, to) = (i % accounts, (i * 7 + 1) % accounts);
        first.push_str(&format!(
            "transfer acct{from} acct{to} 0.{:02} --id t{i} --memo m{i}\n",
            1 + i % 97
        ));
    }
    // Its first ids repeat the first batch's: it appends fewer lines than
    // it has commands, and goes through a spool (about 6 MB).
    let mut second: String = (0..100)
        .map(|a| format!("deposit acct{a} 1000 --id d{a}\n"))
        .collect();
    for i in 0..24_000 {
        second.push_str(&format!("deposit acct{} 0.01 --id s{i}\n", i % accounts));
    }
    let mut refused_batch = "deposit acct1 1\n".repeat(20_000);
    refused_batch.push_str("deposit nobody 1\n");
    let mut csv = String::from("Date,Description,Amount\n");
    let mut jsonl = String::new();
    for i in 0..3_000 {
        csv.push_str(&format!(
            "2026-10-{:02},PAYMENT {i},{}.25\n",
            1 + i % 28,
            1 + i % 40
        ));
        jsonl.push_str(&format!(
            "{{\"command\":\"deposit\",\"account\":\"acct{}\",\"amount\":\"0.{:02}\",\"id\":\"j{i}\"}}\n",
            i % accounts,
            1 + i % 90
        ));
    }
    let rules =
        "account = \"bank\"\namount = \"{Amount}\"\ndate = \"{Date}\"\nmemo = \"{Description}\"\n";
    let threaded = TestEnv::with(&["create bank"]);
    let alone = TestEnv::with(&["create bank"]);
    for env in [&threaded, &alone] {
        env.file("first.txt", &first);
        env.file("second.txt", &second);
        env.file("refused.txt", &refused_batch);
        env.file("bank.csv", &csv);
        env.file("bank.toml", rules);
        env.file("commands.jsonl", &jsonl);
    }
    let steps: [&[&str]; 8] = [
        &["batch", "first.txt"],
        &["batch", "second.txt"],
        &["batch", "refused.txt"],
        &["import", "bank.csv", "--rules", "bank.toml"],
        &["import", "commands.jsonl"],
        &["batch", "second.txt"],
        &["balance", "--format", "json"],
        &["verify"],
    ];
    for args in steps {
        let before = threaded.bytes();
        let with_threads = run_threads(&threaded, false, args);
        assert_eq!(
            run_threads(&alone, true, args),
            with_threads,
            "ledger {args:?}"
        );
        assert_eq!(alone.bytes(), threaded.bytes(), "after ledger {args:?}");
        if args == ["batch", "refused.txt"] {
            assert_eq!(with_threads.0, 1, "{}", with_threads.2);
            assert_eq!(threaded.bytes(), before, "a refused batch wrote");
        } else {
            assert_eq!(with_threads.0, 0, "ledger {args:?}: {}", with_threads.2);
        }
    }
    // A read model rebuilt from the journal, its keys and digests worked
    // out in turn, answers as the one its threads rebuilt.
    for env in [&threaded, &alone] {
        for suffix in ["readmodel", "readmodel-wal", "readmodel-shm"] {
            let _ = fs::remove_file(env.beside(&format!(".{suffix}")));
        }
    }
    let rebuilt = run_threads(&threaded, false, &["balance", "acct7"]);
    assert_eq!(run_threads(&alone, true, &["balance", "acct7"]), rebuilt);
    assert_eq!(rebuilt.0, 0, "{}", rebuilt.2);
    let every = run_threads(&threaded, false, &["balance", "--format", "json"]);
    assert_eq!(
        run_threads(&alone, true, &["balance", "--format", "json"]),
        every
    );
}
