//! `ledger batch`: many write commands, validated in order against the
//! evolving state, appended all at once or not at all (SPEC 4).

use std::fs;
use std::io::{self, Read, Write};

use clap::{CommandFactory, FromArgMatches};

use crate::cli::{BatchArgs, BatchLine, Format};
use crate::cmd::Context;
use crate::cmd::write;
use crate::error::Error;
use crate::journal::{JournalError, Outcome, Writer};
use crate::money::Amount;
use crate::output;

/// Commands a batch line may not use, with why.
const NOT_IN_BATCH: [&str; 5] = ["batch", "verify", "balance", "history", "completions"];

/// Runs a batch.
pub fn run(ctx: &Context, args: &BatchArgs) -> Result<(), Error> {
    // The whole input is read before the journal is locked, so a slow pipe
    // never holds other writers up.
    let input = read_input(args)?;
    let mut writer = Writer::open(&ctx.path)?;
    let before = writer.state().clone();
    let mut grammar = BatchLine::command();
    let (mut appended, mut repeats) = (0u64, 0u64);
    for (index, text) in input.split(|&b| b == b'\n').enumerate() {
        let line = index + 1;
        let at_line = |source: Error| Error::Line {
            line,
            source: Box::new(source),
        };
        let text = std::str::from_utf8(text)
            .map_err(|_| at_line(Error::Usage("the line is not valid UTF-8".into())))?
            .trim();
        if text.is_empty() || text.starts_with('#') {
            continue;
        }
        let words = shell_words::split(text).map_err(|e| at_line(Error::Usage(format!("{e}"))))?;
        if let Some(first) = words.first().filter(|w| NOT_IN_BATCH.contains(&w.as_str())) {
            return Err(at_line(Error::Usage(format!(
                "'{first}' cannot be used in a batch: only create, deposit, withdraw, transfer and close"
            ))));
        }
        let parsed = grammar
            .try_get_matches_from_mut(&words)
            .and_then(|m| BatchLine::from_arg_matches(&m))
            .map_err(|e| at_line(Error::Usage(clap_message(&e))))?;
        match writer.apply(&write::request(&parsed.command)) {
            Ok(Outcome::Appended(_)) => appended += 1,
            Ok(Outcome::Repeat(_)) => repeats += 1,
            Err(e) => return Err(at_line(e.into())),
        }
    }
    if args.dry_run {
        writer.seal();
    } else {
        write::commit(ctx, &mut writer)?;
    }
    let mut out = io::BufWriter::new(io::stdout().lock());
    match ctx.format {
        Format::Json => {
            for line in writer.staged_lines() {
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

/// clap's message without its `error: ` prefix and usage footer.
fn clap_message(e: &clap::Error) -> String {
    let text = e.to_string();
    let first = text.lines().next().unwrap_or_default();
    first.strip_prefix("error: ").unwrap_or(first).to_owned()
}
