//! Fuzzing (promise 6): no panic, hang or runaway memory on any input.
//!
//! Through the library, thousands of cases each: the journal line decoder
//! on arbitrary bytes and on mutated valid lines (anything it accepts must
//! be exactly the line `encode` writes); the batch and command-line grammar
//! on random words, decided against a real state; whole journal files,
//! random and mutated, read to the end; damaged read models (the result
//! always equals a full replay). Through the binary, a bounded number of
//! each, plus a list of hostile inputs, each run under a memory limit:
//! exit codes stay those of the contract, never 101 or a signal.

use std::fs;
use std::path::Path;
use std::sync::OnceLock;

use clap::Parser;
use ledger::cli::{BatchLine, Cli, Format};
use ledger::cmd::{Context, Load, ReplayFrom, replay, state_at, write};
use ledger::domain::{self, State};
use ledger::journal::line::{self, LineHash};
use ledger::journal::scan::Replay;
use ledger::journal::{JournalError, ReadJournal};
use ledger::time::Zone;
use proptest::prelude::*;
use proptest::test_runner::{RngSeed, TestCaseError};

use super::{assert_no_panic, fast_dir, ledger, run_bounded, seed, soak};
use crate::common::TestEnv;

/// `cases` cases (times the soak factor) from a fixed seed
/// (`LEDGER_FAULT_SEED` to change it), so every run tries the same inputs
/// and a failure reproduces.
fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases: cases * soak() as u32,
        failure_persistence: None,
        rng_seed: RngSeed::Fixed(seed(0x5eed_0006)),
        ..ProptestConfig::default()
    }
}

/// A journal made by the binary, with every event type, a batch, memos
/// with escapes, owners and currencies.
fn sample_journal() -> &'static [u8] {
    static JOURNAL: OnceLock<Vec<u8>> = OnceLock::new();
    JOURNAL.get_or_init(|| {
        let env = TestEnv::new();
        for args in [
            &[
                "create",
                "a",
                "--owner",
                "Zoë \"Z\" O'Neil",
                "--currency",
                "EUR",
            ][..],
            &["create", "b", "--currency", "EUR", "--decimals", "2"],
            &["create", "n", "--decimals", "0"],
            &[
                "deposit",
                "a",
                "100.25",
                "--id",
                "pay-1",
                "--memo",
                "rent \\ \"May\" ✓",
            ],
            &["deposit", "n", "7"],
            &["transfer", "a", "b", "10", "--id", "t"],
            &["withdraw", "b", "1.5"],
            &["create", "c"],
            &["close", "c", "--memo", "done"],
        ] {
            env.ok_args(args);
        }
        let batch = env.dir.path().join("b.txt");
        fs::write(
            &batch,
            "deposit a 1 --id x1\ntransfer a b 2\nwithdraw b 0.01\n",
        )
        .expect("batch");
        env.ok(&format!("batch {}", batch.display()));
        env.bytes()
    })
}

fn sample_lines() -> Vec<&'static [u8]> {
    sample_journal()
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .skip(1)
        .collect()
}

/// One edit of a byte string.
#[derive(Debug, Clone)]
enum Edit {
    Set(usize, u8),
    Insert(usize, u8),
    Remove(usize),
    /// Swap two byte ranges' worth: copy `len` bytes from one place to another.
    Copy(usize, usize, usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    let interesting = prop_oneof![
        any::<u8>(),
        Just(b'"'),
        Just(b'\\'),
        Just(b'\n'),
        Just(b'0'),
        Just(b'9'),
        Just(b'-'),
        Just(b'.'),
        Just(b','),
        Just(b'}'),
        Just(0xff),
        Just(0xc3),
    ];
    prop_oneof![
        (any::<usize>(), interesting.clone()).prop_map(|(i, b)| Edit::Set(i, b)),
        (any::<usize>(), interesting).prop_map(|(i, b)| Edit::Insert(i, b)),
        any::<usize>().prop_map(Edit::Remove),
        (any::<usize>(), any::<usize>(), 1usize..40).prop_map(|(a, b, n)| Edit::Copy(a, b, n)),
    ]
}

fn apply(bytes: &mut Vec<u8>, edits: &[Edit]) {
    for e in edits {
        let n = bytes.len().max(1);
        match *e {
            Edit::Set(i, b) if !bytes.is_empty() => bytes[i % n] = b,
            Edit::Insert(i, b) => bytes.insert(i % (bytes.len() + 1), b),
            Edit::Remove(i) if !bytes.is_empty() => {
                bytes.remove(i % n);
            }
            Edit::Copy(from, to, len) if !bytes.is_empty() => {
                let from = from % n;
                let chunk: Vec<u8> = bytes[from..(from + len).min(bytes.len())].to_vec();
                let to = to % (bytes.len() + 1);
                bytes.splice(to..to, chunk);
            }
            _ => {}
        }
    }
}

/// Decodes `bytes`; whatever is accepted must encode back to exactly it.
fn decode_round_trips(bytes: &[u8]) -> Result<(), TestCaseError> {
    if let Ok(decoded) = line::decode(bytes, &mut Vec::new()) {
        let mut again = Vec::new();
        line::encode(&decoded.event, &decoded.prev, &mut again);
        prop_assert_eq!(
            String::from_utf8_lossy(&again),
            String::from_utf8_lossy(bytes),
            "an accepted line is not in canonical form"
        );
    }
    let _ = line::decode_header(bytes);
    Ok(())
}

/// Reads a whole journal file through the library. Only a clean result or
/// a verdict on the journal (corrupt, not a journal) is acceptable.
fn read_journal(path: &Path) -> Result<(), TestCaseError> {
    let judged = |e: JournalError| match e {
        JournalError::Corrupt { .. } | JournalError::NotAJournal(_) => Ok(()),
        other => Err(TestCaseError::fail(format!("unexpected error: {other}"))),
    };
    let journal = match ReadJournal::open(path) {
        Ok(j) => j.expect("exists"),
        Err(e) => return judged(e),
    };
    let Some(scanner) = journal.scanner() else {
        return Ok(());
    };
    Replay::new(scanner, State::default()).run().or_else(judged)
}

/// Words for command lines: commands, options, values good and bad.
fn word() -> impl Strategy<Value = String> {
    let fixed = prop::sample::select(vec![
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
        "bash",
        "a",
        "b",
        "zz",
        "--memo",
        "--id",
        "--owner",
        "--currency",
        "--decimals",
        "--expect-seq",
        "--as-of",
        "--since",
        "--until",
        "--limit",
        "--format",
        "--json",
        "json",
        "csv",
        "table",
        "--quiet",
        "--expect-head",
        "--dry-run",
        "--help",
        "-h",
        "--version",
        "0",
        "1",
        "-1",
        "+5",
        ".5",
        "5.",
        "1e3",
        "1,000",
        "0.001",
        "50.25",
        "18446744073709551615",
        "18446744073709551616",
        "340282366920938463463374607431768211455",
        "99999999999999999999999999999999999999999",
        "255",
        "19",
        "NaN",
        "",
        " ",
        "--",
        "-",
        "2026-11-26",
        "2026-02-30",
        "2026-11-26T10:00:00Z",
        "9999-12-31T23:59:59Z",
        "0000-01-01",
        "EUR",
        "eur",
        "héllo",
        "a\u{0}b",
        "a\nb",
        "\u{202e}",
        "x;y",
        "'",
        "\"",
    ])
    .prop_map(str::to_owned);
    prop_oneof![
        6 => fixed,
        1 => "\\PC{0,12}",
        1 => "[a-z0-9._:@-]{1,70}",
        1 => "[0-9]{1,45}(\\.[0-9]{0,25})?",
    ]
}

/// Dates and days in UTC; no journal is opened through it.
fn utc_context() -> Context {
    Context::new(std::path::PathBuf::new(), Format::Table, Some(Zone::utc()))
}

fn state_for_decisions() -> &'static State {
    static STATE: OnceLock<State> = OnceLock::new();
    STATE.get_or_init(|| {
        let dir = fast_dir();
        let path = dir.path().join("journal.jsonl");
        fs::write(&path, sample_journal()).expect("write");
        replay(&path, ReplayFrom::Start, |_, _| Ok(())).expect("replay")
    })
}

/// The pinned clock, as the domain takes it.
fn now() -> ledger::time::At {
    ledger::time::At::parse_instant(crate::common::CLOCK).expect("clock")
}

proptest! {
    #![proptest_config(config(1000))]

    #[test]
    fn the_line_decoder_never_panics_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        decode_round_trips(&bytes)?;
    }

    #[test]
    fn the_line_decoder_accepts_only_canonical_lines(
        which in any::<prop::sample::Index>(),
        edits in prop::collection::vec(edit(), 1..5),
    ) {
        let lines = sample_lines();
        let mut bytes = which.get(&lines).to_vec();
        apply(&mut bytes, &edits);
        decode_round_trips(&bytes)?;
    }

    #[test]
    fn batch_lines_and_command_lines_never_panic_the_grammar(
        words in prop::collection::vec(word(), 0..8),
    ) {
        if let Ok(parsed) = BatchLine::try_parse_from(&words)
            && let Ok(request) = write::request(&parsed.command, &utc_context())
        {
            let _ = domain::decide(state_for_decisions(), &request, now());
        }
        let argv = std::iter::once("ledger".to_owned()).chain(words.iter().cloned());
        let _ = Cli::try_parse_from(argv);
        let text = words.join(" ");
        if let Ok(split) = shell_words::split(&text)
            && let Ok(parsed) = BatchLine::try_parse_from(&split)
            && let Ok(request) = write::request(&parsed.command, &utc_context())
        {
            let _ = domain::decide(state_for_decisions(), &request, now());
        }
    }
}

proptest! {
    #![proptest_config(config(400))]

    #[test]
    fn arbitrary_journal_files_are_read_or_refused_never_panic(
        header in any::<bool>(),
        bytes in prop::collection::vec(any::<u8>(), 0..600),
    ) {
        let dir = fast_dir();
        let path = dir.path().join("journal.jsonl");
        let mut file = Vec::new();
        if header {
            file.extend_from_slice(sample_journal().split_inclusive(|&b| b == b'\n').next().expect("header"));
        }
        file.extend_from_slice(&bytes);
        fs::write(&path, &file).expect("write");
        read_journal(&path)?;
    }

    #[test]
    fn mutated_journals_are_read_or_refused_never_panic(
        edits in prop::collection::vec(edit(), 1..6),
        line_ops in prop::collection::vec((0usize..4, any::<prop::sample::Index>()), 0..3),
    ) {
        let dir = fast_dir();
        let path = dir.path().join("journal.jsonl");
        let mut lines: Vec<Vec<u8>> = sample_journal().split_inclusive(|&b| b == b'\n').map(<[u8]>::to_vec).collect();
        for (op, at) in line_ops {
            let i = at.index(lines.len());
            match op {
                0 => { lines.remove(i); }
                1 => { let l = lines[i].clone(); lines.insert(i, l); }
                2 if i + 1 < lines.len() => lines.swap(i, i + 1),
                _ => {
                    let half = lines[i].len() / 2;
                    lines[i].truncate(half);
                }
            }
            if lines.is_empty() { break; }
        }
        let mut bytes = lines.concat();
        apply(&mut bytes, &edits);
        fs::write(&path, &bytes).expect("write");
        read_journal(&path)?;
    }

    #[test]
    fn damaged_read_models_never_change_the_result(
        edits in prop::collection::vec(edit(), 0..6),
        cut in any::<prop::sample::Index>(),
    ) {
        let dir = fast_dir();
        let path = dir.path().join("journal.jsonl");
        fs::write(&path, sample_journal()).expect("write");
        let full = replay(&path, ReplayFrom::Start, |_, _| Ok(())).expect("replay");
        // A valid model part way, its WAL folded into the file, then damaged.
        crate::readmodel::model_at(&path, cut.index(full.seq() as usize) as u64 + 1);
        let model = ledger::readmodel::path_of(&path);
        rusqlite::Connection::open(&model)
            .and_then(|c| c.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)"))
            .expect("checkpoint the WAL");
        let mut bytes = fs::read(&model).expect("model");
        apply(&mut bytes, &edits);
        fs::write(&model, &bytes).expect("damage");
        let from_model = state_at(&path, None, Load::All).expect("replay");
        let accounts_of = crate::readmodel::accounts_of;
        prop_assert_eq!(accounts_of(&from_model), accounts_of(&full));
        let names = ["a".to_owned(), "b".to_owned()];
        let partial = state_at(&path, None, Load::Accounts(&names)).expect("replay");
        for name in &names {
            prop_assert_eq!(partial.account(name), full.account(name));
        }
    }
}

/// Random text as a batch file, through the binary: exit 0, 1 or 2 only,
/// and with `--dry-run` the journal is untouched.
#[test]
fn random_batch_files_exit_0_1_or_2_binary() {
    let env = TestEnv::new();
    env.write(sample_journal());
    let before = env.bytes();
    let mut runner = proptest::test_runner::TestRunner::new(config(24));
    let line = prop_oneof![
        3 => prop::collection::vec(word(), 0..7).prop_map(|w| shell_words::join(&w)),
        1 => prop::collection::vec(word(), 0..7).prop_map(|w| w.join(" ")),
        1 => "\\PC{0,60}",
    ];
    let file = prop::collection::vec(line, 1..6).prop_map(|l| l.join("\n"));
    let path = env.dir.path().join("fuzz.batch");
    runner
        .run(&file, |text| {
            fs::write(&path, &text).expect("batch");
            let out = run_bounded(ledger(&env).args(["batch", "--dry-run"]).arg(&path));
            assert_no_panic(&text, &out);
            prop_assert!(
                matches!(out.status.code(), Some(0..=2)),
                "exit {:?} for {:?}: {}",
                out.status.code(),
                text,
                String::from_utf8_lossy(&out.stderr)
            );
            prop_assert_eq!(&env.bytes(), &before);
            Ok(())
        })
        .expect("batch fuzz");
}

/// Random argument lists, through the binary: contract exit codes only.
#[test]
fn random_arguments_exit_with_contract_codes_binary() {
    let env = TestEnv::new();
    env.write(sample_journal());
    let mut runner = proptest::test_runner::TestRunner::new(config(32));
    let args = prop::collection::vec(word(), 0..7);
    runner
        .run(&args, |args| {
            // An argument cannot hold a NUL byte.
            let args: Vec<String> = args.iter().map(|a| a.replace('\0', "0")).collect();
            let out = run_bounded(ledger(&env).args(&args));
            assert_no_panic(&format!("{args:?}"), &out);
            prop_assert!(
                matches!(out.status.code(), Some(0..=4)),
                "exit {:?} for {:?}",
                out.status.code(),
                args
            );
            Ok(())
        })
        .expect("argument fuzz");
}

/// Random and mutated journal files, through the binary: a read exits 0 or
/// 3, and a write agrees with it and never writes to a refused journal.
#[test]
fn random_journal_files_exit_0_or_3_binary() {
    let env = TestEnv::new();
    let mut runner = proptest::test_runner::TestRunner::new(config(24));
    let file = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..300),
        prop::collection::vec(edit(), 1..4).prop_map(|edits| {
            let mut bytes = sample_journal().to_vec();
            apply(&mut bytes, &edits);
            bytes
        }),
    ];
    runner
        .run(&file, |bytes| {
            env.write(&bytes);
            let _ = fs::remove_file(env.beside(".torn"));
            let read = run_bounded(ledger(&env).args(["balance", "--json"]));
            assert_no_panic("balance", &read);
            prop_assert!(
                matches!(read.status.code(), Some(0 | 3)),
                "{:?}",
                read.status
            );
            let write = run_bounded(ledger(&env).args(["deposit", "a", "1"]));
            assert_no_panic("deposit", &write);
            if read.status.code() == Some(3) {
                prop_assert_eq!(write.status.code(), Some(3));
                prop_assert_eq!(env.bytes(), bytes);
            } else {
                prop_assert!(
                    matches!(write.status.code(), Some(0 | 1)),
                    "{:?}",
                    write.status
                );
            }
            Ok(())
        })
        .expect("journal fuzz");
}

/// Hostile inputs, each run under a 512 MiB address-space limit: huge
/// numbers, huge lines, deep nesting, lying batch counts.
#[test]
fn hostile_inputs_neither_panic_nor_hang_nor_run_away_with_memory() {
    if !super::require(
        "prlimit",
        super::probe("prlimit", &["--as=536870912", "--", "true"]),
    ) {
        return;
    }
    let env = TestEnv::new();
    env.write(sample_journal());
    let limited = |args: &[&str]| {
        let mut cmd = std::process::Command::new("prlimit");
        super::clean_env(&mut cmd, &env);
        cmd.arg("--as=536870912")
            .arg("--")
            .arg(super::bin())
            .arg("--file")
            .arg(&env.journal)
            .args(args);
        let out = run_bounded(&mut cmd);
        assert_no_panic(&format!("{args:?}"), &out);
        out.status.code().expect("exit code")
    };
    let max = "18446744073709551615";
    let huge = "9".repeat(5000);
    let long_name = "a".repeat(100_000);
    for args in [
        &["history", "--limit", max][..],
        &["history", "--limit", &huge],
        &["balance", "--as-of", max],
        &["history", "a", "--as-of", &huge],
        &["deposit", "a", "1", "--expect-seq", max],
        &["create", "big", "--decimals", "255"],
        &["deposit", "a", &huge],
        &["deposit", "a", &format!("1.{huge}")],
        &["deposit", &long_name, "1"],
        &["create", "x", "--memo", &long_name],
        &["verify", "--expect-head", &long_name],
        &["history", "--since", &long_name],
    ] {
        let code = limited(args);
        assert!((0..=3).contains(&code), "{:?}: exit {code}", &args[..2]);
    }

    // Journals: deep nesting, a 4 MiB line with and without its newline, a
    // batch count that no file could hold, a 5000-byte first line.
    let header = sample_journal()
        .split_inclusive(|&b| b == b'\n')
        .next()
        .expect("header")
        .to_vec();
    let deep = [header.clone(), vec![b'['; 200_000], b"\n".to_vec()].concat();
    let mut big = sample_journal().to_vec();
    big.extend(std::iter::repeat_n(b'x', 4 << 20));
    let big_line = [big.clone(), b"\n".to_vec()].concat();
    let lying = crate::common::chained(
        crate::common::HEADER,
        &[&format!(
            r#"{{"seq":1,"at":"{}","type":"AccountCreated","account":"a","decimals":2,"batch":{max}}}"#,
            crate::common::AT
        )],
    );
    let foreign = [vec![b'{'; 5000], b"\n".to_vec()].concat();
    // A 4 MiB last line without its newline is a torn tail by SPEC 2 (exit
    // 0); a reader may also refuse a "line" longer than any ledger writes
    // as corrupt (exit 3). Either way the commands agree with each other.
    for (name, bytes, allowed) in [
        ("deeply nested", deep, &[3][..]),
        ("4 MiB torn tail", big, &[0, 3]),
        ("4 MiB line", big_line, &[3]),
        ("lying batch count", lying.into_bytes(), &[0]),
        ("5000-byte first line", foreign, &[3]),
    ] {
        env.write(&bytes);
        let _ = fs::remove_file(env.beside(".torn"));
        let read = limited(&["balance"]);
        assert!(allowed.contains(&read), "{name}: balance exit {read}");
        assert_eq!(limited(&["verify"]), read, "{name}: verify");
        let write = limited(&["create", "zz"]);
        if read == 3 {
            assert_eq!(write, 3, "{name}: create");
            assert_eq!(env.bytes(), bytes, "{name}: written to");
        } else {
            assert_eq!(write, 0, "{name}: create");
        }
    }

    // A batch file with a 1 MiB line and one with 100 000 blank lines.
    env.write(sample_journal());
    let batch = env.dir.path().join("hostile.batch");
    for text in [
        "deposit a ".to_owned() + &"1".repeat(1 << 20),
        "\n".repeat(100_000),
    ] {
        fs::write(&batch, text).expect("batch");
        let code = limited(&["batch", "--dry-run", &batch.display().to_string()]);
        assert!((0..=2).contains(&code), "batch: exit {code}");
    }
}

#[test]
fn prev_hashes_parse_only_as_64_lowercase_hex_digits() {
    let digit = prop_oneof![
        8 => prop::sample::select(b"0123456789abcdef".to_vec()),
        1 => any::<u8>(),
    ];
    proptest!(config(300), |(bytes in prop::collection::vec(digit, 60..68))| {
        let valid = bytes.len() == 64 && bytes.iter().all(|b| b"0123456789abcdef".contains(b));
        match LineHash::from_hex_bytes(&bytes) {
            Some(hash) => {
                prop_assert!(valid);
                prop_assert_eq!(hash.hex().to_vec(), bytes);
            }
            None => prop_assert!(!valid),
        }
    });
}
