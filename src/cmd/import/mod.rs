//! `ledger import`: JSON Lines commands, or a CSV mapped by rules, into
//! write commands that take batch's path to the journal (SPEC 13).
//!
//! Both readers build the very [`WriteCommand`] values the command line
//! parser builds, through the same value parsers
//! ([`WriteCommand::set_arg`]), so every input is checked alike. Records are
//! read, parsed and applied in order (JSON Lines parsed on worker threads,
//! as `batch` parses): memory does not grow with the input (past a buffer,
//! the events of the one write are written to the journal as they are
//! decided, JSON Lines from a file being counted first, or else go to a
//! file until the last is decided).

use std::fs::File;
use std::io::{self, BufRead, BufReader, IsTerminal};

use clap::CommandFactory;

use crate::cli::{BatchLine, ImportArgs, WriteCommand};
use crate::cmd::Context;
use crate::cmd::apply::Applier;
use crate::cmd::batch::count_commands;
use crate::error::Error;
use crate::journal::JournalError;

mod csv;
mod jsonl;
pub mod rules;

/// Runs an import.
pub fn run(ctx: &Context, args: &ImportArgs) -> Result<(), Error> {
    let (input, name, lines) = open_input(args)?;
    // Rules are read, and checked, before the journal is locked.
    let rules = args.rules.as_deref().map(rules::Rules::load).transpose()?;
    let mut applier = Applier::open(ctx, args.dry_run)?;
    // A JSON Lines record is a line; a CSV's rules may skip rows, and
    // its records span lines where a quoted field holds one.
    if rules.is_none() {
        applier.expect(lines);
    }
    let mut apply =
        |line: usize, command: Result<WriteCommand, Error>| applier.apply(line, command);
    match &rules {
        Some(rules) => csv::import(input, &name, rules, &mut apply)?,
        None => jsonl::import(input, &name, &mut apply)?,
    }
    applier.finish()
}

/// What [`open_input`] opens.
type Input = (Box<dyn BufRead + Send>, String, usize);

/// The input, the name errors give it, and for a regular file of JSON
/// Lines, how many of its lines hold something (counted before the
/// journal is locked, see [`Applier::expect`]).
fn open_input(args: &ImportArgs) -> Result<Input, Error> {
    /// Large reads: a million records go through this.
    const BUFFER: usize = 1 << 18;
    match args.input.as_deref() {
        Some(path) if path.as_os_str() != "-" => {
            let error = |e| Error::Journal(JournalError::io(path, "read import file", e));
            let file = File::open(path).map_err(error)?;
            let mut reader = BufReader::with_capacity(BUFFER, file);
            let regular = reader.get_ref().metadata().map_err(error)?.is_file();
            let lines = match regular && args.rules.is_none() {
                true => count_commands(&mut reader).map_err(error)?,
                false => 0,
            };
            Ok((Box::new(reader), path.display().to_string(), lines))
        }
        _ => {
            if io::stdin().is_terminal() {
                super::note("reading records from standard input; end with Ctrl-D");
            }
            Ok((
                Box::new(BufReader::with_capacity(BUFFER, io::stdin())),
                "stdin".into(),
                0,
            ))
        }
    }
}

/// An error reading the input itself (I/O, exit 4).
fn read_error(name: &str, e: io::Error) -> Error {
    Error::Journal(JournalError::io(name.as_ref(), "read", e))
}

/// Write commands of one kind, parsed by clap once from `seed` (the
/// command's name and a placeholder for each required argument, all of
/// which the caller then sets), to be filled in with [`set`].
fn template(seed: &[&str]) -> Result<WriteCommand, Error> {
    use clap::Parser;
    BatchLine::try_parse_from(seed)
        .map(|line| line.command)
        .map_err(|e| Error::Usage(format!("cannot prepare {seed:?}: {e}")))
}

/// Sets argument `id` (clap's name) of `command` to `word` through its
/// command-line value parser; a word it refuses gets that parser's own
/// message. `what` says where the word came from, for the message (only
/// formatted then: this runs for every field of every record).
fn set(
    command: &mut WriteCommand,
    id: &str,
    word: &str,
    what: impl std::fmt::Display,
) -> Result<(), Error> {
    match command.set_arg(id, word) {
        Some(Ok(())) => Ok(()),
        Some(Err(())) => Err(Error::Usage(format!(
            "{what}: {}",
            value_error(command, id, word)
        ))),
        None => Err(Error::Usage(format!(
            "{what}: not an argument of this command"
        ))),
    }
}

/// What clap says of `word` as argument `id` of `command`'s subcommand:
/// clap is given that argument alone, with that word.
fn value_error(command: &WriteCommand, id: &str, word: &str) -> String {
    let name = subcommand_name(command);
    let mut parent = BatchLine::command();
    parent.build();
    let message = parent.find_subcommand(name).and_then(|sub| {
        let arg = sub.get_arguments().find(|a| a.get_id() == id)?.clone();
        let (arg, words) = match arg.get_long() {
            Some(long) => {
                let words = vec![format!("--{long}={word}")];
                (arg, words)
            }
            None => (arg.index(1), vec!["--".to_owned(), word.to_owned()]),
        };
        let e = clap::Command::new(name)
            .no_binary_name(true)
            .arg(arg)
            .try_get_matches_from(words)
            .err()?;
        let text = crate::error::clap_one_line(&e);
        Some(text.strip_prefix("error: ").unwrap_or(&text).to_owned())
    });
    message.unwrap_or_else(|| format!("invalid value '{word}'"))
}

/// The subcommand a write command was parsed from.
fn subcommand_name(command: &WriteCommand) -> &'static str {
    match command {
        WriteCommand::Create(_) => "create",
        WriteCommand::Deposit(_) => "deposit",
        WriteCommand::Withdraw(_) => "withdraw",
        WriteCommand::Transfer(_) => "transfer",
        WriteCommand::Close(_) => "close",
        WriteCommand::Reverse(_) => "reverse",
        WriteCommand::Hold(_) => "hold",
        WriteCommand::Capture(_) => "capture",
        WriteCommand::Release(_) => "release",
    }
}

/// Adds tag `key`=`value` to `command`, checked as `--tag` checks it.
fn add_tag(
    command: &mut WriteCommand,
    key: &str,
    value: &str,
    what: impl std::fmt::Display,
) -> Result<(), Error> {
    if key.contains('=') {
        return Err(Error::Usage(format!(
            "{what}: '{key}' is not a tag key (1-64 of a-z 0-9 _ . -)"
        )));
    }
    let mut tags = std::mem::take(&mut command.opts_mut().tags);
    set(command, "tags", &format!("{key}={value}"), what)?;
    tags.append(&mut command.opts_mut().tags);
    command.opts_mut().tags = tags;
    Ok(())
}
