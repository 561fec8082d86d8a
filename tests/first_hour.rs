//! Issue 17, "the first hour": what a new user meets first. A wrong path is
//! not silent, typos get suggestions, amount errors say what to write,
//! `verify --quiet` round-trips through `--expect-head`, tables fit a
//! terminal, `batch` on a terminal says it is reading, and `--version`
//! says which `ledger` answered.

use std::process::{Command, Output, Stdio};

use crate::common::{HEADER, TestEnv, sha256_hex, stderr_lines};

/// acct2 and savings, each with 20.00; last seq 4.
fn ledger() -> TestEnv {
    TestEnv::with(&[
        "create acct2",
        "create savings",
        "deposit acct2 20",
        "deposit savings 20",
    ])
}

/// Asserts that `ledger args` is refused with `code` (journal untouched)
/// and stderr exactly `error: {message}`.
#[track_caller]
fn refused(env: &TestEnv, code: i32, args: &[&str], message: &str) {
    let stderr = env.fails(code, args);
    assert_eq!(stderr, format!("error: {message}\n"), "`ledger {args:?}`");
}

/// Asserts that the command succeeded; returns (stdout, stderr).
#[track_caller]
fn succeeded(out: Output) -> (String, String) {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "exit {:?}: {stderr}", out.status);
    (String::from_utf8_lossy(&out.stdout).into_owned(), stderr)
}

#[test]
fn a_read_of_a_missing_journal_the_user_named_notes_it() {
    let env = TestEnv::new();
    let path = env.journal.display().to_string();
    for args in [["balance"], ["history"]] {
        let (stdout, stderr) = succeeded(env.run_args(&args));
        assert!(stdout.starts_with("no "), "{stdout}");
        assert_eq!(stderr, format!("note: no journal at {path} yet\n"));
    }
    let (_, stderr) = succeeded(
        env.bare()
            .env("LEDGER_JOURNAL", "typo.jsonl")
            .arg("balance")
            .output()
            .unwrap(),
    );
    assert_eq!(stderr, "note: no journal at typo.jsonl yet\n");
    // The default location is missing until the first write: no mistake.
    let (_, stderr) = succeeded(env.bare().arg("balance").output().unwrap());
    assert_eq!(stderr, "");
    assert!(!env.journal.exists());
}

#[test]
fn the_write_that_creates_a_journal_says_so() {
    let env = TestEnv::new();
    let path = env.journal.display().to_string();
    // A refused write creates nothing, and says nothing of it.
    let stderr = env.fails(1, &["deposit", "acct1", "5"]);
    assert!(!stderr.contains("created"), "{stderr}");
    assert!(!env.journal.exists());
    let (stdout, stderr) = succeeded(env.run("create acct1"));
    assert_eq!(stdout, "seq 1: open acct1, 2 decimals\n");
    assert_eq!(stderr, format!("created journal {path}\n"));
    let (_, stderr) = succeeded(env.run("create acct2"));
    assert_eq!(stderr, "", "only the first write creates it");
    // The default location too, named in full, and through a batch.
    let out = env
        .bare()
        .arg("batch")
        .write_stdin("create acct1\n")
        .output()
        .unwrap();
    let (_, stderr) = succeeded(out);
    let default = env.dir.path().join("xdg-data/ledger/journal.jsonl");
    assert_eq!(stderr, format!("created journal {}\n", default.display()));
}

#[test]
fn an_unknown_account_suggests_the_closest_names() {
    let env = ledger();
    let suggestion = "unknown account acct3 (did you mean acct2?)";
    refused(&env, 1, &["deposit", "acct3", "5"], suggestion);
    refused(&env, 1, &["transfer", "acct2", "acct3", "5"], suggestion);
    refused(&env, 1, &["balance", "acct3"], suggestion);
    refused(&env, 1, &["history", "acct3"], suggestion);
    refused(
        &env,
        1,
        &["withdraw", "svaings", "1"],
        "unknown account svaings (did you mean savings?)",
    );
    // Nothing close: no suggestion.
    refused(&env, 1, &["deposit", "zzz", "5"], "unknown account zzz");
}

#[test]
fn a_batch_line_with_an_unknown_account_suggests_too() {
    let env = ledger();
    let before = env.bytes();
    let out = env
        .cmd()
        .arg("batch")
        .write_stdin("deposit acct2 1\ndeposit acct3 1\n")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr_lines(&out),
        ["error: line 2: unknown account acct3 (did you mean acct2?)"]
    );
    assert_eq!(env.bytes(), before);
}

#[test]
fn mistyped_subcommands_and_options_get_clap_suggestion_on_one_line() {
    let env = ledger();
    refused(
        &env,
        2,
        // clap suggests every command near enough; `export` is one now.
        &["depost", "acct2", "5"],
        "unrecognized subcommand 'depost' (did you mean 'report', 'export' or 'deposit'?)",
    );
    refused(
        &env,
        2,
        &["deposit", "acct2", "5", "--mem", "rent"],
        "unexpected argument '--mem' found (did you mean '--memo'?)",
    );
    refused(
        &env,
        2,
        &["balance", "--format", "tabel"],
        "invalid value 'tabel' for '--format <FORMAT>' [possible values: table, json, csv] (did you mean 'table'?)",
    );
    // The mistyped option is blamed, not the value after it.
    for args in [
        &["deposit", "acct2", "--ammount", "5"][..],
        &["deposit", "acct2", "5", "--ammount", "5"],
    ] {
        let stderr = env.fails(2, args);
        assert!(
            stderr.starts_with("error: unexpected argument '--ammount' found"),
            "{args:?}: {stderr}"
        );
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
    }
}

#[test]
fn a_mistyped_batch_line_gets_the_same_suggestion() {
    let env = ledger();
    let before = env.bytes();
    let out = env
        .cmd()
        .arg("batch")
        .write_stdin("deposit acct2 1 --mem rent\ndepost acct2 1\n")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        stderr_lines(&out),
        ["error: line 1: unexpected argument '--mem' found (did you mean '--memo'?)"]
    );
    let out = env
        .cmd()
        .args(["batch", "--dry-run"])
        .write_stdin("depost acct2 1\n")
        .output()
        .unwrap();
    assert_eq!(
        stderr_lines(&out),
        ["error: line 1: unrecognized subcommand 'depost' (did you mean 'deposit'?)"]
    );
    assert_eq!(env.bytes(), before);
}

#[test]
fn amount_errors_say_what_to_write_instead() {
    let env = ledger();
    let value = |text: &str, hint: &str| {
        format!("invalid value '{text}' for '<AMOUNT>': '{text}' is not an amount: {hint}")
    };
    for (text, hint) in [
        ("1,000.50", "no grouping separators: write 1000.50"),
        ("€5", "the currency belongs to the account: write 5"),
        ("5 EUR", "the currency belongs to the account: write 5"),
        ("$5", "the currency belongs to the account: write 5"),
        ("-5", "amounts are positive; to take money out use withdraw"),
    ] {
        refused(&env, 2, &["deposit", "acct2", text], &value(text, hint));
    }
    refused(
        &env,
        2,
        &["deposit", "acct2", "5.001"],
        "invalid amount for acct2: the amount '5.001' has more than 2 decimals",
    );
}

/// `verify --quiet`'s line, without its `\n`.
#[track_caller]
fn quiet_head(env: &TestEnv) -> String {
    env.ok("verify --quiet").trim_end().to_owned()
}

#[test]
fn expect_head_takes_back_what_verify_quiet_prints() {
    let env = ledger();
    let head = quiet_head(&env);
    assert!(head.starts_with("4 "), "{head}");
    env.ok("deposit acct2 1");
    let out = env.ok_args(&["verify", "--expect-head", &head]);
    assert!(
        out.contains("\nanchor   matched the line at seq 4\n"),
        "{out}"
    );
    let json = env.ok_args(&["verify", "--json", "--expect-head", &head]);
    assert!(json.contains(r#""anchor_seq":4"#), "{json}");
    // --quiet still prints only the head; the bare hash as before.
    let quiet = env.ok_args(&["verify", "--quiet", "--expect-head", &head]);
    assert_eq!(quiet, format!("{}\n", quiet_head(&env)));
    let hash = head.split_once(' ').unwrap().1;
    let out = env.ok_args(&["verify", "--expect-head", hash]);
    assert!(out.contains("anchor   matched the line at seq 4"), "{out}");
}

#[test]
fn expect_head_with_a_seq_checks_that_line() {
    let env = ledger();
    let head = quiet_head(&env);
    let hash = head.split_once(' ').unwrap().1;
    // The right hash at another seq is not the anchor.
    let stderr = env.fails(3, &["verify", "--expect-head", &format!("3 {hash}")]);
    assert!(
        stderr.starts_with(&format!(
            "error: verify failed: the line at seq 3 of {} does not have the anchor's hash {hash}",
            env.journal.display()
        )),
        "{stderr}"
    );
    for bad in [format!("x {hash}"), format!("4  {hash}"), "4".to_owned()] {
        env.fails(2, &["verify", "--expect-head", &bad]);
    }
}

#[test]
fn a_journal_cut_before_the_anchor_is_reported_as_cut_short() {
    let env = ledger();
    env.ok("deposit acct2 1");
    let head = quiet_head(&env);
    let lines = env.lines();
    env.write(lines[..lines.len() - 2].join("\n") + "\n");
    refused(
        &env,
        3,
        &["verify", "--expect-head", &head],
        "verify failed: cut short: the journal ends at seq 3, the anchor is at seq 5",
    );
}

#[test]
fn the_head_of_an_empty_journal_round_trips() {
    let env = TestEnv::new();
    for (journal, hash) in [
        (String::new(), sha256_hex(b"")),
        (format!("{HEADER}\n"), sha256_hex(HEADER.as_bytes())),
    ] {
        env.write(&journal);
        let head = quiet_head(&env);
        assert_eq!(head, format!("0 {hash}"));
        let out = env.ok_args(&["verify", "--expect-head", &head]);
        assert!(out.contains("anchor   matched the line at seq 0"), "{out}");
        env.ok_args(&["verify", "--expect-head", &hash]);
        refused(
            &env,
            3,
            &["verify", "--expect-head", &format!("1 {hash}")],
            "verify failed: cut short: the journal ends at seq 0, the anchor is at seq 1",
        );
    }
}

#[test]
fn history_tables_show_time_to_the_second_and_fit_100_columns() {
    let env = ledger();
    env.ok_args(&[
        "transfer", "acct2", "savings", "10.25", "--memo", "lunch", "--id", "pay-17",
    ]);
    for args in ["history", "history acct2", "history --limit 2"] {
        let table = env.ok(args);
        assert!(table.contains("  2026-11-26 10:00:00  "), "{table}");
        assert!(!table.contains(".000000"), "{table}");
        // The columns fit; a memo and an id trail the event's text.
        for line in table.lines() {
            let line = line.split("  memo ").next().unwrap_or_default();
            assert!(
                line.chars().count() <= 100,
                "{} columns: {line}",
                line.len()
            );
        }
    }
    let table = env.ok("history acct2");
    let row = table.lines().last().unwrap_or_default();
    assert!(
        row.contains("  2026-11-26 10:00:00  ")
            && row.ends_with("  transfer 10.25 from acct2 to savings  memo lunch  id pay-17"),
        "{table}"
    );
    // Programs keep the stored instant.
    assert!(
        env.ok("history --json")
            .contains("2026-11-26T10:00:00.000000Z")
    );
    assert!(
        env.ok("history --format csv")
            .contains("2026-11-26T10:00:00.000000Z")
    );
}

#[test]
fn global_options_appear_once_in_ledger_help() {
    let env = TestEnv::new();
    let help = |args: &[&str]| succeeded(env.bare().args(args).output().unwrap()).0;
    let top = help(&["--help"]);
    // An option's own line starts with it (after its short form, if any).
    let defines = |text: &str, option: &str| {
        text.lines()
            .filter(|l| l.trim_start().starts_with('-') && l.contains(option))
            .count()
    };
    for option in ["--file", "--format", "--json"] {
        assert_eq!(defines(&top, option), 1, "{option} in {top}");
    }
    for sub in [
        "create",
        "deposit",
        "withdraw",
        "transfer",
        "close",
        "balance",
        "history",
        "batch",
        "verify",
        "completions",
    ] {
        for args in [&[sub, "--help"][..], &[sub, "-h"], &["help", sub]] {
            let text = help(args);
            for option in ["--file", "--format", "--json"] {
                assert_eq!(defines(&text, option), 0, "{option} in `{args:?}`: {text}");
            }
        }
    }
    // Hidden from help, they still work after the subcommand.
    let env = ledger();
    assert!(env.ok("balance --json").starts_with('{'));
}

#[test]
fn version_says_which_ledger_answered() {
    let env = TestEnv::new();
    let (stdout, _) = succeeded(env.bare().arg("--version").output().unwrap());
    assert_eq!(
        stdout,
        format!(
            "ledger {} — an exact, append-only money ledger (event sourcing)\n",
            env!("CARGO_PKG_VERSION")
        )
    );
}

/// Whether util-linux `script` can run a command in a pseudo-terminal here.
fn script_available() -> Result<(), String> {
    match Command::new("script")
        .args(["-qec", "true", "/dev/null"])
        .stdin(Stdio::null())
        .output()
    {
        Ok(out) if out.status.success() => Ok(()),
        Ok(out) => Err(format!("`script` failed: {}", out.status)),
        Err(e) => Err(format!("no `script`: {e}")),
    }
}

#[test]
fn batch_on_a_terminal_says_it_reads_standard_input() {
    let prompt = "reading commands from standard input; end with Ctrl-D";
    let env = TestEnv::new();
    // Not a terminal: no prompt (scripts and pipes want quiet stderr).
    let out = env
        .cmd()
        .arg("batch")
        .write_stdin("create acct1\n")
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&out.stderr).contains(prompt));
    if !crate::faults::require("a pseudo-terminal through `script`", script_available()) {
        return;
    }
    let journal = env.dir.path().join("tty.jsonl");
    let inner = format!(
        "'{}' -f '{}' batch",
        env!("CARGO_BIN_EXE_ledger"),
        journal.display()
    );
    // `script` gives the command a terminal for stdin, stdout and stderr,
    // and passes what it reads on to it; Ctrl-D ends the input.
    let out = assert_cmd::Command::new("timeout")
        .args(["60", "script", "-qec", &inner, "/dev/null"])
        .env("LEDGER_TEST_CLOCK", crate::common::CLOCK)
        .write_stdin("create acct1\n\u{4}")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{text}");
    assert!(text.contains(prompt), "{text}");
    assert!(text.contains("appended 1 event(s)"), "{text}");
    assert_eq!(text.matches(prompt).count(), 1, "{text}");
}
