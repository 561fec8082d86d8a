//! `ledger import`: JSON Lines commands, or a CSV mapped by rules, into
//! write commands that take batch's path to the journal (SPEC 13).
//!
//! Both readers build the very [`WriteCommand`] values the command line
//! parser builds, through the same value parsers
//! ([`WriteCommand::set_arg`]), so every input is checked alike. Records are
//! read, parsed and applied in order (JSON Lines parsed on worker threads,
//! as `batch` parses): memory does not grow with the input (past a buffer,
//! the events of the one write are written to the journal as they are
//! decided, JSON Lines from a file being counted first and a long CSV
//! read ahead, or else go to a file until the last is decided). A long
//! input from a file is read ahead for the ids it names (see
//! `cmd::foresee`).

use std::fs::File;
use std::io::{self, BufRead, BufReader, IsTerminal};
use std::path::Path;

use clap::CommandFactory;

use crate::cli::{BatchLine, ImportArgs, WriteCommand};
use crate::cmd::Context;
use crate::cmd::apply::Applier;
use crate::cmd::batch;
use crate::cmd::foresee::{self, Named, Names, Reading};
use crate::error::Error;
use crate::journal::JournalError;

mod csv;
mod jsonl;
pub mod rules;

/// Runs an import.
pub fn run(ctx: &Context, args: &ImportArgs) -> Result<(), Error> {
    let mut input = open_input(args, &ctx.path)?;
    // Rules are read, and checked, before the journal is locked.
    let rules = args.rules.as_deref().map(rules::Rules::load).transpose()?;
    let mut applier = Applier::open(ctx, args.dry_run)?;
    // Read with the journal locked, while the writer loads what it will
    // need (only a file is read ahead). A CSV's rows all have ids (given
    // or made).
    let ids = rules.is_some() || input.mentions_ids;
    let foreseen = match foresee::worth(input.lines, ids, &ctx.path) {
        true => foresee::alongside(&mut applier, input.lines, |names| {
            read_ahead(&mut input, rules.as_ref(), names)
        })?,
        false => None,
    };
    let (read_before, commands) = match foreseen {
        Some((names, read)) => {
            let commands = names.commands();
            let told = names.tell(&mut applier, &read)?;
            (told.digest, told.all_new.then_some(commands))
        }
        None => (None, None),
    };
    // A JSON Lines record is a line; a CSV's rules may skip rows, and
    // its records span lines where a quoted field holds one: only its
    // reading ahead counts its commands, each of which appends an event
    // (or the import is refused) when every id is new and named once (a
    // CSV names no other id than its rows').
    match (&rules, commands) {
        (None, _) => applier.expect(input.lines),
        (Some(_), Some(commands)) => applier.expect(commands),
        (Some(_), None) => {}
    }
    let (reader, read) = input.reader()?;
    let mut apply =
        |line: usize, command: Result<WriteCommand, Error>| applier.apply(line, command);
    match &rules {
        Some(rules) => csv::import(reader, &input.name, rules, &mut apply)?,
        None => jsonl::import(reader, &input.name, |c| c, &mut apply)?,
    }
    foresee::check(read_before, &read).map_err(|e| read_error(&input.name, e))?;
    applier.finish()
}

/// What `input` (a regular file) names (see [`foresee`]), from a reading
/// of its own, and that reading's digest. `None` if a record fails (the
/// import meets it again).
fn read_ahead(
    input: &mut Input,
    rules: Option<&rules::Rules>,
    mut names: Names,
) -> Option<(Names, Reading)> {
    let (reader, read) = input.reader().ok()?;
    let mut add = |_, named: Result<Named, Error>| {
        names.add(named?);
        Ok(())
    };
    match rules {
        Some(rules) => csv::import(reader, &input.name, rules, &mut |line, command| {
            add(line, command.map(|c| Named::of(&c)))
        }),
        // Named on the parsing threads: an id's key is a SHA-256.
        None => jsonl::import(reader, &input.name, |c| Named::of(&c), &mut add),
    }
    .ok()?;
    Some((names, read))
}

/// Large reads: a million records go through this.
const BUFFER: usize = 1 << 18;

/// An import's input.
struct Input {
    source: Source,
    /// What errors call it.
    name: String,
    /// For a regular file, how many of its lines hold something, if
    /// counted (see [`open_input`]); else 0.
    lines: usize,
    /// Whether a regular file's text has `id"` (a JSON key `id` or
    /// `of_id`, or only a value that ends so).
    mentions_ids: bool,
}

enum Source {
    /// A regular file, which can be read more than once.
    File(File),
    /// Anything else, read once.
    Stream(Option<Box<dyn BufRead + Send>>),
}

impl Input {
    /// A reader from the input's start, and its digest once it reaches
    /// the end (for a file; a stream's never comes).
    fn reader(&mut self) -> Result<(Box<dyn BufRead + Send>, Reading), Error> {
        match &mut self.source {
            Source::File(file) => {
                let (reader, read) =
                    foresee::from_start(file, BUFFER).map_err(|e| read_error(&self.name, e))?;
                Ok((Box::new(reader), read))
            }
            Source::Stream(stream) => {
                let read_twice = || io::Error::other("it cannot be read twice");
                let stream = stream
                    .take()
                    .ok_or_else(|| read_error(&self.name, read_twice()))?;
                Ok((stream, Reading::default()))
            }
        }
    }
}

/// Opens the input. A regular file's lines are counted first: those of
/// JSON Lines for [`Applier::expect`], those of a CSV only to see whether
/// it is long enough to read ahead (see [`foresee::worth`]), so only into
/// `journal` with a read model.
fn open_input(args: &ImportArgs, journal: &Path) -> Result<Input, Error> {
    match args.input.as_deref() {
        Some(path) if path.as_os_str() != "-" => {
            let error = |e| Error::Journal(JournalError::io(path, "read import file", e));
            let file = File::open(path).map_err(error)?;
            let mut reader = BufReader::with_capacity(BUFFER, file);
            let name = path.display().to_string();
            if !reader.get_ref().metadata().map_err(error)?.is_file() {
                let source = Source::Stream(Some(Box::new(reader)));
                return Ok(Input {
                    source,
                    name,
                    lines: 0,
                    mentions_ids: false,
                });
            }
            let count = args.rules.is_none() || crate::readmodel::path_of(journal).is_file();
            let (lines, mentions_ids) = match count {
                true => {
                    let lines = batch::count(&mut reader, b"id\"").map_err(error)?;
                    (lines.count, lines.mentions_ids)
                }
                false => (0, false),
            };
            Ok(Input {
                source: Source::File(reader.into_inner()),
                name,
                lines,
                mentions_ids,
            })
        }
        _ => {
            if io::stdin().is_terminal() {
                super::note("reading records from standard input; end with Ctrl-D");
            }
            let stdin = BufReader::with_capacity(BUFFER, io::stdin());
            Ok(Input {
                source: Source::Stream(Some(Box::new(stdin))),
                name: "stdin".into(),
                lines: 0,
                mentions_ids: false,
            })
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
