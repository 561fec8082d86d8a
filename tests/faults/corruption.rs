//! The corruption matrix (promise 5): every line of a journal × {a byte
//! flipped, the line deleted, swapped with the next, duplicated, cut short
//! mid-line (its `\n` kept, so it is not a torn tail), an invalid UTF-8
//! byte}. Every command exits 3 naming the line (or the one after it, whose
//! `prev` no longer matches), and nothing is written: the file stays byte
//! for byte, and no `.torn` or `.checkpoint` appears.
//!
//! The chain cannot see a change to the *last* line that leaves it a valid
//! line (a memo letter, an amount digit), nor the last line removed: such a
//! journal is indistinguishable from an honest one. Only an anchor can:
//! `verify --expect-head` with the head recorded earlier, which these tests
//! check fails for every such cell.
//!
//! Through the library, every single byte of every line is flipped.

use std::fs;

use ledger::domain::State;
use ledger::journal::scan::Replay;
use ledger::journal::{JournalError, ReadJournal};

use super::{Rng, fast_dir, run_bounded, seed, soak};
use crate::common::TestEnv;

/// A journal made by the binary: header and ten events, one a batch.
fn fixture() -> TestEnv {
    let env = TestEnv::new();
    for args in [
        &["create", "a", "--owner", "alice", "--currency", "EUR"][..],
        &["create", "b", "--currency", "EUR"],
        &["deposit", "a", "100", "--id", "d1", "--memo", "first pay"],
    ] {
        env.ok_args(args);
    }
    let batch = env.dir.path().join("b.txt");
    fs::write(
        &batch,
        "transfer a b 10 --id t1\nwithdraw b 2 --id w1\ndeposit b 3\n",
    )
    .expect("batch");
    env.ok(&format!("batch {}", batch.display()));
    fs::remove_file(&batch).expect("rm");
    for args in [
        &["transfer", "b", "a", "1.50", "--memo", "back"][..],
        &["create", "c"],
        &["close", "c"],
        &["deposit", "a", "0.01", "--id", "last"],
    ] {
        env.ok_args(args);
    }
    env
}

/// The journal's lines, each with its `\n`.
fn lines(bytes: &[u8]) -> Vec<Vec<u8>> {
    bytes
        .split_inclusive(|&b| b == b'\n')
        .map(<[u8]>::to_vec)
        .collect()
}

/// One way to damage line `i` (0-based) of `lines`; `None` if it does not
/// apply to that line.
fn mutate(lines: &[Vec<u8>], i: usize, kind: &str, rng: &mut Rng) -> Option<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = lines.to_vec();
    let len = lines[i].len() - 1;
    match kind {
        "flip" => {
            let at = rng.below(len as u64) as usize;
            out[i][at] = flip(out[i][at]);
        }
        "delete" => {
            out.remove(i);
        }
        "swap" => {
            if i + 1 >= lines.len() {
                return None;
            }
            out.swap(i, i + 1);
        }
        "duplicate" => out.insert(i, lines[i].clone()),
        "truncate" => {
            out[i].truncate(len / 2);
            out[i].push(b'\n');
        }
        "utf8" => {
            let at = len / 2 + rng.below(len as u64 / 2) as usize;
            out[i][at] = 0xff;
        }
        _ => unreachable!(),
    }
    Some(out.concat())
}

/// A changed byte that is never a `\n` (which would split the line).
fn flip(b: u8) -> u8 {
    if b ^ 1 == b'\n' { b ^ 2 } else { b ^ 1 }
}

/// The line number an error names: `…: line N: …`, or 1 for a first line
/// that is not a ledger header.
fn named_line(stderr: &str) -> Option<usize> {
    if stderr.contains("is not a ledger journal") {
        return Some(1);
    }
    let rest = &stderr[stderr.find(": line ")? + 7..];
    rest[..rest.find(':')?].parse().ok()
}

/// The journal's head hash, as `verify --quiet` prints it.
fn head(env: &TestEnv) -> String {
    let out = env.ok("verify --quiet");
    out.split_whitespace().nth(1).expect("hash").to_owned()
}

/// Files in the journal's directory.
fn listing(env: &TestEnv) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(env.dir.path())
        .expect("ls")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

const KINDS: [&str; 6] = ["flip", "delete", "swap", "duplicate", "truncate", "utf8"];

#[test]
fn every_command_refuses_every_kind_of_damage_to_every_line() {
    let seed = seed(0x5eed_0005);
    let mut rng = Rng::new(seed);
    let env = fixture();
    let original = env.bytes();
    let anchor = head(&env);
    let lines = lines(&original);
    let files = listing(&env);
    let flips = 3 * soak();
    let (mut cells, mut anchored_only) = (0, Vec::new());
    for i in 0..lines.len() {
        let last = i + 1 == lines.len();
        for kind in KINDS {
            let repeats = if kind == "flip" { flips } else { 1 };
            for _ in 0..repeats {
                let Some(bytes) = mutate(&lines, i, kind, &mut rng) else {
                    continue;
                };
                cells += 1;
                env.write(&bytes);
                let what = format!("seed {seed}: line {} {kind}", i + 1);
                let out = run_bounded(super::ledger(&env).args(["balance", "--json"]));
                let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
                if out.status.code() == Some(0) && last && (kind == "flip" || kind == "delete") {
                    // Invisible to the chain; the anchor sees it.
                    let out =
                        run_bounded(super::ledger(&env).args(["verify", "--expect-head", &anchor]));
                    assert_eq!(out.status.code(), Some(3), "{what}: --expect-head passed");
                    anchored_only.push(what);
                    continue;
                }
                assert_eq!(out.status.code(), Some(3), "{what}: balance: {stderr}");
                let named = named_line(&stderr);
                assert!(
                    named == Some(i + 1) || named == Some(i + 2),
                    "{what}: the error names {named:?}: {stderr}"
                );
                // Every other command refuses too; a sample of them runs
                // for every cell, all of them for every third.
                let mut commands: Vec<&[&str]> = vec![&["deposit", "a", "1"]];
                if cells % 3 == 0 || soak() > 1 {
                    commands.extend([
                        &["verify"][..],
                        &["history", "a", "--json"],
                        &["create", "zz", "--id", "new"],
                    ]);
                }
                for args in commands {
                    let out = run_bounded(super::ledger(&env).args(args));
                    let stderr = String::from_utf8_lossy(&out.stderr);
                    assert_eq!(out.status.code(), Some(3), "{what}: {args:?}: {stderr}");
                    let named = named_line(&stderr);
                    assert!(
                        named == Some(i + 1) || named == Some(i + 2),
                        "{what}: {args:?} names {named:?}: {stderr}"
                    );
                }
                assert_eq!(env.bytes(), bytes, "{what}: the file was written to");
                assert_eq!(listing(&env), files, "{what}: files appeared");
            }
        }
    }
    eprintln!(
        "corruption matrix (seed {seed}): {cells} cells; seen only by --expect-head: {anchored_only:?}"
    );
}

/// Reads the journal through the library; `Err` with the line named.
fn read(path: &std::path::Path) -> Result<(), u64> {
    let journal = match ReadJournal::open(path) {
        Ok(j) => j.expect("exists"),
        Err(JournalError::Corrupt { line, .. }) => return Err(line),
        Err(JournalError::NotAJournal(_)) => return Err(1),
        Err(e) => panic!("{e}"),
    };
    let Some(scanner) = journal.scanner() else {
        return Ok(());
    };
    match Replay::new(scanner, State::default()).run() {
        Ok(()) => Ok(()),
        Err(JournalError::Corrupt { line, .. }) => Err(line),
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn every_byte_of_every_line_changed_is_caught_library() {
    let env = fixture();
    let original = env.bytes();
    let lines = lines(&original);
    let dir = fast_dir();
    let path = dir.path().join("journal.jsonl");
    let mut invisible = 0;
    let mut offset = 0;
    for (i, line) in lines.iter().enumerate() {
        let last = i + 1 == lines.len();
        for at in 0..line.len() - 1 {
            for change in [flip(line[at]), 0xff] {
                if change == line[at] {
                    continue;
                }
                let mut bytes = original.clone();
                bytes[offset + at] = change;
                fs::write(&path, &bytes).expect("write");
                match read(&path) {
                    Err(named) => assert!(
                        named == i as u64 + 1 || named == i as u64 + 2,
                        "line {} byte {at} → {change:#x}: named line {named}",
                        i + 1
                    ),
                    Ok(()) if last && change != 0xff => invisible += 1,
                    Ok(()) => panic!(
                        "line {} byte {at} changed to {change:#x} was not caught",
                        i + 1
                    ),
                }
            }
        }
        offset += line.len();
    }
    eprintln!("{invisible} changes to the last line are valid lines, seen only by --expect-head");
}
