//! The README tells the truth: every ```console block in README.md is run,
//! and what it shows must be what the commands print.
//!
//! How it works:
//! - A console block is a transcript. A line starting with `$ ` is a
//!   command; the lines after it, up to the next command or the block's
//!   end, are what it prints, stdout and stderr interleaved as on a
//!   terminal. A console block must start with a command.
//! - All blocks are one shell session, in README order, as a reader typing
//!   along would run them: a block may use the files, directory and
//!   exported variables of earlier ones. The environment a block needs is
//!   stated in the block (`$ export LEDGER_TEST_CLOCK=…`).
//! - The session is one `sh` script in a fresh temporary directory (also
//!   its `HOME` and `TMPDIR`, so `cd "$(mktemp -d)"` stays inside it), with
//!   a cleared environment but `PATH`, whose first entry holds only a
//!   symlink `ledger` to the binary this `cargo test` built: `ledger` in
//!   the README is this build, never ledger-cli's `/usr/bin/ledger`.
//! - A mismatch fails with a line diff per command (`-` the README, `+` the
//!   binary). `LEDGER_README_BLESS=1 cargo test --test cli readme` writes
//!   the actual outputs into README.md instead, for review with `git diff`.
//! - Text that is not a transcript of this session (two terminals, a
//!   machine's own paths) goes in ```text or ```sh blocks.

use std::fmt::Write as _;
use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};

/// One `$ ` command of a console block and the output the README shows.
struct Step {
    /// The command's line in README.md, from 1.
    line: usize,
    command: String,
    /// The README's lines of output: `lines[output.0..output.1]`.
    output: (usize, usize),
}

/// Separates the outputs of the steps in the session's output.
const MARK: &str = "@@ledger-readme-step@@";

/// The steps of every console block of `readme`, in order.
#[track_caller]
fn steps(lines: &[&str]) -> Vec<Step> {
    let mut steps: Vec<Step> = Vec::new();
    let mut in_block = false;
    for (i, line) in lines.iter().enumerate() {
        if !in_block {
            in_block = *line == "```console";
            if in_block {
                let first = lines.get(i + 1).copied().unwrap_or_default();
                assert!(
                    first.starts_with("$ "),
                    "README.md line {}: a console block starts with `$ `, not {first:?} (use ```text for other transcripts)",
                    i + 2
                );
            }
            continue;
        }
        if *line == "```" {
            in_block = false;
        } else if let Some(command) = line.strip_prefix("$ ") {
            steps.push(Step {
                line: i + 1,
                command: command.to_owned(),
                output: (i + 1, i + 1),
            });
        } else if let Some(step) = steps.last_mut() {
            step.output.1 = i + 1;
        }
    }
    steps
}

/// Runs the steps as one `sh` session; returns each one's output lines.
#[track_caller]
fn run(steps: &[Step]) -> Vec<Vec<String>> {
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    fs::create_dir(&bin).unwrap();
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_ledger"), bin.join("ledger")).unwrap();
    let mut script = String::from("exec 2>&1\n");
    for step in steps {
        // The mark on a line of its own, even after output without a `\n`.
        writeln!(script, "{}\nprintf '\\n{MARK}\\n'", step.command).unwrap();
    }
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new("sh")
        .args(["-c", &script])
        .env_clear()
        .env("PATH", path)
        .env("HOME", dir.path())
        .env("TMPDIR", dir.path())
        .env("LC_ALL", "C.UTF-8")
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let outputs: Vec<Vec<String>> = text
        .split(&format!("\n{MARK}\n"))
        .map(|chunk| chunk.lines().map(str::to_owned).collect())
        .collect();
    assert_eq!(
        outputs.len(),
        steps.len() + 1,
        "the session ended early: {text}"
    );
    outputs
}

/// `expected` against `actual`, line by line: ` ` both, `-` only the
/// README, `+` only the binary (a longest common subsequence).
fn diff(expected: &[&str], actual: &[String]) -> String {
    let (n, m) = (expected.len(), actual.len());
    let mut common = vec![vec![0usize; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            common[i][j] = if expected[i] == actual[j] {
                common[i + 1][j + 1] + 1
            } else {
                common[i + 1][j].max(common[i][j + 1])
            };
        }
    }
    let (mut i, mut j, mut text) = (0, 0, String::new());
    while i < n || j < m {
        if i < n && j < m && expected[i] == actual[j] {
            writeln!(text, "  {}", expected[i]).unwrap();
            (i, j) = (i + 1, j + 1);
        } else if j < m && (i == n || common[i][j + 1] >= common[i + 1][j]) {
            writeln!(text, "+ {}", actual[j]).unwrap();
            j += 1;
        } else {
            writeln!(text, "- {}", expected[i]).unwrap();
            i += 1;
        }
    }
    text
}

#[test]
fn every_console_block_of_the_readme_is_what_the_binary_prints() {
    // The README's own commands use these besides `ledger`.
    for tool in ["jq", "sha256sum"] {
        if !crate::faults::require(tool, crate::faults::probe(tool, &["--version"])) {
            return;
        }
    }
    let readme = Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md");
    let text = fs::read_to_string(&readme).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let steps = steps(&lines);
    assert!(!steps.is_empty(), "no console block in README.md");
    let outputs = run(&steps);
    if std::env::var_os("LEDGER_README_BLESS").is_some() {
        let mut blessed: Vec<String> = Vec::new();
        let mut next = 0;
        for (step, actual) in steps.iter().zip(&outputs) {
            blessed.extend(lines[next..step.output.0].iter().map(|l| l.to_string()));
            blessed.extend(actual.iter().cloned());
            next = step.output.1;
        }
        blessed.extend(lines[next..].iter().map(|l| l.to_string()));
        fs::write(&readme, blessed.join("\n") + "\n").unwrap();
        return;
    }
    let mut report = String::new();
    for (step, actual) in steps.iter().zip(&outputs) {
        let expected = &lines[step.output.0..step.output.1];
        if expected != actual.as_slice() {
            writeln!(report, "README.md line {}: $ {}", step.line, step.command).unwrap();
            report.push_str(&diff(expected, actual));
        }
    }
    assert!(
        report.is_empty(),
        "README.md console blocks differ from what the binary prints (- README, + binary; LEDGER_README_BLESS=1 rewrites them):\n{report}"
    );
}
