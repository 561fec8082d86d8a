//! `ledger copy SOURCE DESTINATION` (SPEC 15): a whole journal from one
//! location to another, each line checked as `verify` checks it before it
//! is written, all or nothing.

use std::io::{self, Write};
use std::path::Path;

use serde::Serialize;

use crate::cli::{CopyArgs, Format};
use crate::cmd::{Context, warn_torn};
use crate::domain::State;
use crate::error::Error;
use crate::journal::line::LineHash;
use crate::journal::scan::Replay;
use crate::journal::{self, JournalError, ReadJournal, Writer};
use crate::output;

#[derive(Serialize)]
struct Copied {
    events: u64,
    head: Head,
}

#[derive(Serialize)]
struct Head {
    seq: u64,
    hash: String,
}

/// Copies the journal at `args.source` into `args.destination`.
pub fn run(ctx: &Context, args: &CopyArgs) -> Result<(), Error> {
    let source = journal::resolve_path(Some(args.source.clone()))?;
    let destination = journal::resolve_path(Some(args.destination.clone()))?;
    // Its own lock would wait on the source's for ever.
    if journal::same_file(&source, &destination) {
        return Err(JournalError::CopyOntoItself(destination).into());
    }
    let journal =
        ReadJournal::open(&source)?.ok_or_else(|| JournalError::Missing(source.clone()))?;
    let mut writer = Writer::open(&destination)?;
    // An empty file is an empty journal, as every read takes it (`verify`:
    // 0 events, the hash of no bytes): its copy is no line at all, into a
    // destination that must hold no event either: a file is left empty
    // (or with the header it had), a database with no line.
    let Some(header) = journal.header_line()? else {
        if let Some(torn) = journal.torn_header() {
            warn_torn(&source, torn);
        }
        if writer.state().seq() > 0 {
            return Err(JournalError::NotEmpty(destination).into());
        }
        writer.keep_created();
        writer.unlock()?;
        return report(ctx, &source, &destination, (0, LineHash::of(b"")));
    };
    let mut end = (0, LineHash::of(&header[..header.len().saturating_sub(1)]));
    writer.copy_in(&header, |emit| -> Result<State, Error> {
        let Some(scanner) = journal.scanner() else {
            return Ok(State::default());
        };
        let mut replay = Replay::new(scanner, State::auditing());
        replay.each(|_, entry| emit(entry.line))?;
        let (state, head, torn) = replay.finish();
        if let Some(torn) = torn {
            warn_torn(&source, torn);
        }
        // Checked before the copy commits: a journal `verify` fails is not copied.
        if let Some(problem) = state.inconsistency() {
            return Err(Error::VerifyFailed(problem));
        }
        end = (head.seq, head.hash);
        Ok(state)
    })?;
    writer.unlock()?;
    report(ctx, &source, &destination, end)
}

/// Prints what was copied: `seq` events, up to the head of that seq and hash.
fn report(
    ctx: &Context,
    source: &Path,
    destination: &Path,
    (seq, hash): (u64, LineHash),
) -> Result<(), Error> {
    let report = Copied {
        events: seq,
        head: Head {
            seq,
            hash: hash.to_string(),
        },
    };
    let mut out = io::stdout().lock();
    match ctx.format {
        Format::Json => {
            serde_json::to_writer(&mut out, &report).map_err(io::Error::from)?;
            writeln!(out)?;
        }
        Format::Csv => {
            output::csv_row(&mut out, &["events", "head_seq", "head_sha256"])?;
            output::csv_row(
                &mut out,
                &[seq.to_string(), seq.to_string(), report.head.hash],
            )?;
        }
        Format::Table => writeln!(
            out,
            "copied {seq} events from {} to {}; head seq {seq} sha256 {}",
            source.display(),
            destination.display(),
            report.head.hash
        )?,
    }
    Ok(out.flush()?)
}
