//! `ledger batch`: many write commands, validated in order against the
//! evolving state, appended all at once or not at all (SPEC 4).

use std::fs;
use std::io::{self, Read, Write};

use clap::{CommandFactory, FromArgMatches};

use crate::cli::{
    BatchArgs, BatchLine, CloseArgs, CreateArgs, Format, MoveArgs, TransferArgs, WriteCommand,
};
use crate::cmd::Context;
use crate::cmd::write;
use crate::error::Error;
use crate::journal::{JournalError, Outcome, Writer};
use crate::money::Amount;
use crate::output;

/// Commands of the command line that a batch line may not use (SPEC 4: a
/// batch appends, all at once; nothing else fits inside one), named so the
/// error can say so rather than "unrecognized subcommand".
const NOT_IN_BATCH: [&str; 6] = [
    "batch",
    "verify",
    "balance",
    "history",
    "completions",
    "help",
];

/// Runs a batch.
pub fn run(ctx: &Context, args: &BatchArgs) -> Result<(), Error> {
    // The whole input is read before the journal is locked, so a slow pipe
    // never holds other writers up.
    let input = read_input(args)?;
    let mut writer = Writer::open(&ctx.path)?;
    // An event line is a few times longer than the command that makes it.
    let lines = memchr::memchr_iter(b'\n', &input).count() + 1;
    writer.reserve(lines, input.len().saturating_mul(5));
    let before = writer.state().clone();
    let (mut appended, mut repeats) = (0u64, 0u64);
    // For JSON: the seq of each line's existing event, in order (0 for a
    // new one), so repeats print the event they repeat (SPEC 6).
    let mut repeated: Vec<u64> = Vec::new();
    let json = ctx.format == Format::Json;
    parse_lines(&input, |line, command| {
        match writer.apply(&write::request(&command)) {
            Ok(Outcome::Appended(_)) => {
                appended += 1;
                if json {
                    repeated.push(0);
                }
            }
            Ok(Outcome::Repeat(seq)) => {
                repeats += 1;
                if json {
                    repeated.push(seq);
                }
            }
            Err(e) => return Err(at_line(line, e.into())),
        }
        Ok(())
    })?;
    if args.dry_run {
        writer.seal();
    } else {
        write::commit(ctx, &mut writer)?;
    }
    let mut out = io::BufWriter::new(io::stdout().lock());
    match ctx.format {
        Format::Json => {
            let mut staged = writer.staged_lines();
            for seq in repeated {
                let existing;
                let line = if seq == 0 {
                    staged.next().unwrap_or_default()
                } else {
                    existing = writer.line(seq)?;
                    &existing
                };
                out.write_all(line)?;
                out.write_all(b"\n")?;
            }
        }
        Format::Csv | Format::Table => {
            let state = writer.state();
            let mut changes: Vec<(&str, String)> = state
                .accounts()
                .filter_map(|(name, after)| {
                    let was = before.account(name).map_or(Amount::ZERO, |a| a.balance);
                    let delta = after.balance.checked_sub(was)?;
                    let unit = state.unit_of(after);
                    let created = before.account(name).is_none();
                    (delta != Amount::ZERO || created)
                        .then(|| (name, delta.display(unit.decimals).to_string()))
                })
                .collect();
            changes.sort();
            let verb = if args.dry_run {
                "would append"
            } else {
                "appended"
            };
            if ctx.format == Format::Csv {
                output::csv_row(&mut out, &["account", "net_change"])?;
                for (name, delta) in &changes {
                    output::csv_row(&mut out, &[name, delta.as_str()])?;
                }
            } else {
                let last = state.seq();
                let range = match appended {
                    0 => String::new(),
                    1 => format!(" (seq {last})"),
                    n => format!(" (seq {}-{last})", last + 1 - n),
                };
                writeln!(
                    out,
                    "{verb} {appended} event(s){range}; {repeats} repeat(s) of earlier --id commands"
                )?;
                if !changes.is_empty() {
                    let rows: Vec<Vec<String>> = changes
                        .into_iter()
                        .map(|(n, d)| vec![n.to_owned(), d])
                        .collect();
                    output::table(&mut out, &["ACCOUNT", "NET CHANGE"], &[false, true], &rows)?;
                }
            }
        }
    }
    Ok(out.flush()?)
}

fn read_input(args: &BatchArgs) -> Result<Vec<u8>, Error> {
    match args.input.as_deref() {
        Some(path) if path.as_os_str() != "-" => {
            fs::read(path).map_err(|e| Error::Journal(JournalError::io(path, "read batch file", e)))
        }
        _ => {
            let mut input = Vec::new();
            io::stdin()
                .lock()
                .read_to_end(&mut input)
                .map_err(|e| Error::Journal(JournalError::io("stdin".as_ref(), "read", e)))?;
            Ok(input)
        }
    }
}

/// Lines per unit of work handed to a parsing thread.
const CHUNK: usize = 4096;

fn at_line(line: usize, source: Error) -> Error {
    Error::Line {
        line,
        source: Box::new(source),
    }
}

/// Parses the lines of `input` and hands each command, with its line
/// number, to `apply`, in input order; stops at the first error, in order.
///
/// Parsing (shell words, then clap) costs far more than deciding, and lines
/// parse independently, so chunks of lines are parsed on worker threads while
/// this thread applies them in order.
fn parse_lines(
    input: &[u8],
    mut apply: impl FnMut(usize, WriteCommand) -> Result<(), Error>,
) -> Result<(), Error> {
    type Parsed = Vec<(usize, Result<WriteCommand, Error>)>;
    let lines: Vec<&[u8]> = input.split(|&b| b == b'\n').collect();
    let chunks = lines.len().div_ceil(CHUNK);
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, 4)
        .min(chunks.max(1));
    std::thread::scope(|scope| {
        let receivers: Vec<std::sync::mpsc::Receiver<Parsed>> = (0..workers)
            .map(|w| {
                let (tx, rx) = std::sync::mpsc::sync_channel::<Parsed>(2);
                let lines = &lines;
                scope.spawn(move || {
                    let mut grammar = Grammar::new();
                    for (c, chunk) in lines.chunks(CHUNK).enumerate().skip(w).step_by(workers) {
                        let parsed: Parsed = chunk
                            .iter()
                            .enumerate()
                            .filter_map(|(i, text)| {
                                let line = c * CHUNK + i + 1;
                                parse_line(&mut grammar, text)
                                    .transpose()
                                    .map(|r| (line, r.map_err(|e| at_line(line, e))))
                            })
                            .collect();
                        // A closed channel means an earlier line failed.
                        if tx.send(parsed).is_err() {
                            return;
                        }
                    }
                });
                rx
            })
            .collect();
        for c in 0..chunks {
            let parsed = receivers[c % workers]
                .recv()
                .map_err(|_| Error::Usage("a batch parsing thread stopped".into()))?;
            for (line, command) in parsed {
                apply(line, command?)?;
            }
        }
        Ok(())
    })
}

/// One line: `None` if blank or a comment.
fn parse_line(grammar: &mut Grammar, text: &[u8]) -> Result<Option<WriteCommand>, Error> {
    let text = std::str::from_utf8(text)
        .map_err(|_| Error::Usage("the line is not valid UTF-8".into()))?
        .trim();
    if text.is_empty() || text.starts_with('#') {
        return Ok(None);
    }
    let words = shell_words::split(text).map_err(|e| Error::Usage(e.to_string()))?;
    if let Some(first) = words.first().filter(|w| NOT_IN_BATCH.contains(&w.as_str())) {
        return Err(Error::Usage(format!(
            "'{first}' cannot be used in a batch: only create, deposit, withdraw, transfer and close"
        )));
    }
    grammar
        .parse(&words)
        .map(Some)
        .map_err(|e| Error::Usage(clap_message(&e)))
}

/// The command-line grammar of the write commands, prepared once per batch.
///
/// Each line is parsed by clap against the subcommand it names, taken from
/// the very definitions the command line uses; parsing against the parent
/// command would rebuild that subcommand's usage text on every line, which
/// dominated the cost of a large batch.
struct Grammar {
    parent: clap::Command,
    subcommands: Vec<clap::Command>,
}

impl Grammar {
    fn new() -> Grammar {
        let mut parent = BatchLine::command();
        parent.build();
        let subcommands = parent.get_subcommands().cloned().collect();
        Grammar {
            parent,
            subcommands,
        }
    }

    fn parse(&mut self, words: &[String]) -> Result<WriteCommand, clap::Error> {
        let name = words.first().map(String::as_str).unwrap_or_default();
        if let Some(sub) = self.subcommands.iter_mut().find(|c| c.get_name() == name) {
            // `no_binary_name` is inherited: the subcommand's own words follow.
            let mut m = sub.try_get_matches_from_mut(&words[1..])?;
            let parsed = match name {
                "create" => CreateArgs::from_arg_matches_mut(&mut m).map(WriteCommand::Create),
                "deposit" => MoveArgs::from_arg_matches_mut(&mut m).map(WriteCommand::Deposit),
                "withdraw" => MoveArgs::from_arg_matches_mut(&mut m).map(WriteCommand::Withdraw),
                "transfer" => {
                    TransferArgs::from_arg_matches_mut(&mut m).map(WriteCommand::Transfer)
                }
                "close" => CloseArgs::from_arg_matches_mut(&mut m).map(WriteCommand::Close),
                _ => {
                    None.ok_or_else(|| clap::Error::new(clap::error::ErrorKind::InvalidSubcommand))
                }
            };
            if let Ok(parsed) = parsed {
                return Ok(parsed);
            }
        }
        // Anything else gets clap's own full parse, and its own error.
        let mut m = self.parent.try_get_matches_from_mut(words)?;
        Ok(BatchLine::from_arg_matches_mut(&mut m)?.command)
    }
}

/// clap's message without its `error: ` prefix and usage footer.
fn clap_message(e: &clap::Error) -> String {
    let text = crate::error::one_line(&e.to_string());
    text.strip_prefix("error: ").unwrap_or(&text).to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    /// Every write subcommand takes the direct path, and parses as the full
    /// grammar does.
    #[test]
    fn direct_parse_agrees_with_the_full_grammar() {
        let mut grammar = Grammar::new();
        for sub in BatchLine::command().get_subcommands() {
            let line = match sub.get_name() {
                "create" => {
                    "create a --owner 'A B' --currency EUR --decimals 3 --id k --memo m --expect-seq 4"
                }
                "transfer" => "transfer a b 1.5 --memo 'x y'",
                "close" => "close a --id c",
                name => &format!("{name} a 2.25 --id k"),
            };
            let words = shell_words::split(line).unwrap();
            let full = BatchLine::try_parse_from(&words).unwrap().command;
            let sub_cmd = grammar
                .subcommands
                .iter_mut()
                .find(|c| c.get_name() == sub.get_name())
                .unwrap();
            let m = sub_cmd.try_get_matches_from_mut(&words[1..]).unwrap();
            assert!(m.args_present(), "{line}");
            assert_eq!(
                format!("{:?}", grammar.parse(&words).unwrap()),
                format!("{full:?}"),
                "{line}"
            );
        }
    }
}
