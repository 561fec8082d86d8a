//! The one place where every failure gets its exit code (SPEC 1).

use std::io;

use crate::domain::Rejection;
use crate::input::InputError;
use crate::journal::{JournalError, WriteError};

/// Everything a command can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Refused by the ledger's rules (or, for input rules, a usage error).
    #[error(transparent)]
    Rejected(#[from] Rejection),
    /// The journal file: invalid (3) or I/O (4).
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// Bad arguments that only show once the command runs.
    #[error("{0}")]
    Usage(String),
    /// `verify` found the journal wanting (beyond a bad line, which is a
    /// [`JournalError::Corrupt`]).
    #[error("verify failed: {0}")]
    VerifyFailed(String),
    /// Writing results to stdout failed.
    #[error("cannot write output: {0}")]
    Output(#[from] io::Error),
    /// A chart could not be drawn or written.
    #[error("cannot write the chart {}: {reason}", path.display())]
    Chart {
        /// The file asked for.
        path: std::path::PathBuf,
        /// Why.
        reason: String,
    },
    /// A failure on one line of a batch.
    #[error("line {line}: {source}")]
    Line {
        /// The batch file's line number.
        line: usize,
        /// What went wrong there.
        source: Box<Error>,
    },
    /// Ctrl-C (SIGINT) stopped a batch or an import before its commit.
    #[error("interrupted: nothing was written")]
    Interrupted,
    /// A dry run found records that would be refused, each reported as it
    /// was found; the run exits with the first one's code (SPEC 4).
    #[error("{failed} record(s) would be refused (listed above); nothing written")]
    DryRunRefused {
        /// How many.
        failed: u64,
        /// The first of them.
        first: Box<Error>,
    },
}

impl From<WriteError> for Error {
    fn from(e: WriteError) -> Error {
        match e {
            WriteError::Rejected(r) => Error::Rejected(r),
            WriteError::Journal(j) => Error::Journal(j),
        }
    }
}

impl From<InputError> for Error {
    fn from(e: InputError) -> Error {
        Error::Rejected(Rejection::Input(e))
    }
}

/// The first paragraph of a message, on one line, with control characters
/// (a newline typed into an argument, a terminal escape) shown escaped.
pub fn one_line(message: &str) -> String {
    let first = message.trim_end().split("\n\n").next().unwrap_or_default();
    // clap lists what is missing on indented lines of their own.
    escape_controls(&first.replace("\n  ", " "))
}

/// A clap error as one line, `error: …`, keeping what clap suggests
/// instead of a mistyped subcommand, option or value (its tips, which
/// [`one_line`] drops, say it on lines of their own).
pub fn clap_one_line(e: &clap::Error) -> String {
    use clap::error::{ContextKind, ContextValue};
    let mut line = one_line(&e.render().to_string());
    let suggested = [
        ContextKind::SuggestedSubcommand,
        ContextKind::SuggestedArg,
        ContextKind::SuggestedValue,
    ]
    .into_iter()
    .find_map(|kind| match e.get(kind) {
        Some(ContextValue::String(s)) => Some(vec![s.clone()]),
        Some(ContextValue::Strings(v)) if !v.is_empty() => Some(v.clone()),
        _ => None,
    });
    if let Some(names) = suggested {
        let quoted: Vec<String> = names.iter().map(|n| format!("'{n}'")).collect();
        line.push_str(&escape_controls(&format!(
            " (did you mean {}?)",
            crate::suggest::either(&quoted)
        )));
    }
    line
}

/// `message` with control characters shown escaped, so that it stays one
/// line and cannot drive the terminal, and at most [`MAX_MESSAGE`]
/// characters long: messages quote what was typed, and a megabyte pasted
/// into an argument should not come back as a megabyte of error.
pub fn escape_controls(message: &str) -> String {
    let escaped: Vec<char> = message
        .chars()
        .flat_map(|c| {
            let escaped: Vec<char> = if c.is_control() {
                c.escape_default().collect()
            } else {
                vec![c]
            };
            escaped
        })
        .collect();
    if escaped.len() <= MAX_MESSAGE {
        return escaped.into_iter().collect();
    }
    // The start says what was wrong with what; the end often says why.
    let (head, tail) = (MAX_MESSAGE * 2 / 3, MAX_MESSAGE / 4);
    let left_out = escaped.len() - head - tail;
    let mut short: String = escaped[..head].iter().collect();
    short.push_str(&format!("[... {left_out} characters left out ...]"));
    short.extend(&escaped[escaped.len() - tail..]);
    short
}

/// Writes one line of diagnostics to stderr, ignoring failure: a closed or
/// full stderr must neither panic (as `eprintln!` does) nor change the exit
/// code, which tells the truth about the journal.
pub fn warn(message: impl std::fmt::Display) {
    use std::io::Write;
    let _ = writeln!(io::stderr().lock(), "{message}");
}

/// The most characters of a message shown (see [`escape_controls`]).
pub const MAX_MESSAGE: usize = 1000;

/// Exit codes of the contract.
pub mod code {
    /// Success.
    pub const OK: u8 = 0;
    /// Refused by the ledger's rules.
    pub const REJECTED: u8 = 1;
    /// Usage: bad arguments.
    pub const USAGE: u8 = 2;
    /// The journal is invalid.
    pub const INVALID: u8 = 3;
    /// I/O failure.
    pub const IO: u8 = 4;
    /// Stopped by Ctrl-C, nothing written: what a shell reports for a
    /// process that SIGINT ends (128 + 2), as it did before a batch
    /// caught the signal to cut back what it had written ahead.
    pub const INTERRUPTED: u8 = 130;
}

impl Error {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Rejected(Rejection::Input(_) | Rejection::Amount { .. }) | Error::Usage(_) => {
                code::USAGE
            }
            Error::Rejected(_)
            | Error::Journal(JournalError::NotEmpty(_) | JournalError::CopyOntoItself(_)) => {
                code::REJECTED
            }
            Error::Journal(
                JournalError::Corrupt { .. }
                | JournalError::NotAJournal(_)
                | JournalError::Missing(_),
            )
            | Error::VerifyFailed(_) => code::INVALID,
            Error::Journal(
                JournalError::Io { .. }
                | JournalError::SyncFailed { .. }
                | JournalError::Model(_)
                | JournalError::Database { .. }
                | JournalError::Conflict { .. }
                | JournalError::Unreachable { .. }
                | JournalError::CommitUnknown { .. },
            ) => code::IO,
            // `ledger history | head` closing the pipe early is not a failure.
            Error::Output(e) if e.kind() == io::ErrorKind::BrokenPipe => code::OK,
            Error::Output(_) | Error::Chart { .. } => code::IO,
            Error::Line { source, .. } => source.exit_code(),
            Error::DryRunRefused { first, .. } => first.exit_code(),
            Error::Interrupted => code::INTERRUPTED,
        }
    }

    /// The error itself, without the lines that say where it happened.
    pub fn root(&self) -> &Error {
        match self {
            Error::Line { source, .. } => source.root(),
            e => e,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn one_line_keeps_a_list_that_clap_indents() {
        let clap = "error: the following required arguments were not provided:\n  <TO>\n  <AMOUNT>\n\nUsage: x\n";
        assert_eq!(
            one_line(clap),
            "error: the following required arguments were not provided: <TO> <AMOUNT>"
        );
    }

    #[test]
    fn one_line_keeps_the_sentence_and_escapes_controls() {
        let clap = "error: invalid value 'a\nb\u{1b}[31m' for '<ACCOUNT>': bad\n\n  tip: x\n\nUsage: ledger\n";
        assert_eq!(
            one_line(clap),
            "error: invalid value 'a\\nb\\u{1b}[31m' for '<ACCOUNT>': bad"
        );
    }

    #[test]
    fn a_long_message_keeps_its_start_and_end() {
        let long = format!(
            "invalid value '{}' for '<ACCOUNT>': too long",
            "x".repeat(100_000)
        );
        let short = escape_controls(&long);
        assert!(short.chars().count() < MAX_MESSAGE + 50, "{}", short.len());
        assert!(short.starts_with("invalid value 'xxx"));
        assert!(short.ends_with("xxx' for '<ACCOUNT>': too long"));
        assert!(short.contains("[... 99"));
        let fits = "y".repeat(MAX_MESSAGE);
        assert_eq!(escape_controls(&fits), fits);
    }

    #[test]
    fn codes_follow_the_contract() {
        let rejected = Error::Rejected(Rejection::UnknownAccount("a".into(), Vec::new()));
        assert_eq!(rejected.exit_code(), 1);
        assert_eq!(Error::from(InputError::Account("!".into())).exit_code(), 2);
        let corrupt = Error::Journal(JournalError::Corrupt {
            path: PathBuf::from("j"),
            line: 3,
            reason: "x".into(),
        });
        assert_eq!(corrupt.exit_code(), 3);
        let io = Error::Journal(JournalError::io(
            &PathBuf::from("j"),
            "write",
            io::Error::other("disk full"),
        ));
        assert_eq!(io.exit_code(), 4);
        assert_eq!(
            Error::Output(io::ErrorKind::BrokenPipe.into()).exit_code(),
            0
        );
        let line = Error::Line {
            line: 17,
            source: Box::new(rejected),
        };
        assert_eq!(
            (line.exit_code(), line.to_string().as_str()),
            (1, "line 17: unknown account a")
        );
    }
}
