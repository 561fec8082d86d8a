//! One module per command: each turns parsed arguments into journal and
//! domain calls, then hands results to [`crate::output`].

pub mod apply;
pub mod balance;
pub mod batch;
pub mod chart;
pub mod export;
pub mod history;
pub mod import;
pub mod report;
pub mod verify;
pub mod write;

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use clap::CommandFactory;

use crate::cli::{AsOf, Cli, Command, Format};
use crate::domain::State;
use crate::error::Error;
use crate::event::Event;
use crate::journal::scan::{Entry, Head, Replay, Torn};
use crate::journal::{self, ReadJournal};
use crate::time::Zone;

/// What every command needs besides its own arguments.
pub struct Context {
    /// The journal.
    pub path: PathBuf,
    /// The output format.
    pub format: Format,
    /// The zone of dates and days (SPEC 9).
    pub zone: Zone,
}

/// Dispatches a parsed command line.
pub fn run(cli: Cli) -> Result<(), Error> {
    let format = cli.output_format();
    if let Command::Completions { shell } = cli.command {
        // `generate` panics if its writer fails (a closed pipe, a full
        // disk): it writes to memory, and the failure is reported here.
        let mut script = Vec::new();
        clap_complete::generate(shell, &mut Cli::command(), "ledger", &mut script);
        let mut out = io::stdout().lock();
        out.write_all(&script)?;
        return Ok(out.flush()?);
    }
    let zone = match cli.tz {
        Some(zone) => zone,
        None => {
            let (zone, warning) = Zone::from_environment();
            if let Some(warning) = warning {
                note(&warning);
            }
            zone
        }
    };
    let named = cli.file.or_else(|| {
        std::env::var_os("LEDGER_JOURNAL")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    });
    let user_named = named.is_some();
    let ctx = Context {
        path: journal::resolve_path(named)?,
        format,
        zone,
    };
    // A read of a missing journal is an empty ledger (SPEC 2), which hides
    // a mistyped path; the default location is missing until the first
    // write, which is no mistake.
    if user_named
        && matches!(
            cli.command,
            Command::Balance(_) | Command::History(_) | Command::Report(_) | Command::Chart(_)
        )
        && matches!(ctx.path.try_exists(), Ok(false))
    {
        note(&format!("note: no journal at {} yet", ctx.path.display()));
    }
    match cli.command {
        Command::Write(cmd) => write::run(&ctx, &cmd),
        Command::Balance(args) => balance::run(&ctx, &args),
        Command::History(args) => history::run(&ctx, &args),
        Command::Report(args) => report::run(&ctx, &args),
        Command::Chart(args) => chart::run(&ctx, &args),
        Command::Batch(args) => batch::run(&ctx, &args),
        Command::Import(args) => import::run(&ctx, &args),
        Command::Export(args) => export::run(&ctx, &args),
        Command::Verify(args) => verify::run(&ctx, &args),
        Command::Completions { .. } => Ok(()),
    }
}

/// Says `message` on stderr, on one line; a note that cannot be written is
/// no reason to fail the command.
pub fn note(message: &str) {
    let _ = writeln!(io::stderr(), "{}", crate::error::escape_controls(message));
}

/// Says on stderr that a torn tail is being ignored.
pub fn warn_torn(path: &Path, torn: Torn) {
    crate::error::warn(torn_warning(path, torn));
}

/// The warning that a torn tail is being ignored.
pub fn torn_warning(path: &Path, torn: Torn) -> String {
    format!(
        "warning: {}: ignoring an interrupted write at line {} ({} bytes); the next write will remove it",
        path.display(),
        torn.line,
        torn.len
    )
}

/// Where a replay may start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayFrom {
    /// The first event: `visit` sees every event.
    Start,
    /// A valid checkpoint that `as_of` covers, else the first event.
    Checkpoint,
    /// The first event, in one pass under the journal's lock: for visits
    /// that never wait on the output (a report prints once it is built),
    /// which would otherwise hold writers up.
    StartLocked,
}

/// Replays the journal at `path` (from its start or its checkpoint),
/// calling `visit` with the state after each event read, and returns the
/// state as of `as_of` (the end when `None`; a date bound, which does not
/// select a prefix of the journal, is the caller's to apply in `visit`). Everything after the starting
/// point is read either way, so that damage anywhere in it is reported. A
/// missing journal is an empty ledger.
pub fn replay(
    path: &Path,
    as_of: Option<AsOf>,
    from: ReplayFrom,
    visit: impl FnMut(&State, &Entry<'_>) -> Result<(), Error>,
) -> Result<State, Error> {
    replay_sized(path, as_of, from, |_| (), visit)
}

/// [`replay`], which with [`ReplayFrom::Start`] first hands `at_end` the
/// state at the journal's valid end, before any event is visited: what a
/// table that streams needs to size its columns (it is not called for a
/// missing or empty journal, nor from another starting point).
pub fn replay_sized(
    path: &Path,
    as_of: Option<AsOf>,
    from: ReplayFrom,
    at_end: impl FnOnce(&State),
    mut visit: impl FnMut(&State, &Entry<'_>) -> Result<(), Error>,
) -> Result<State, Error> {
    let Some(journal) = ReadJournal::open(path)? else {
        return Ok(State::default());
    };
    let Some(header) = journal.header_head() else {
        if let Some(torn) = journal.torn_header() {
            warn_torn(path, torn);
        }
        return Ok(State::default());
    };
    let cached = (from == ReplayFrom::Checkpoint)
        .then(|| journal.checkpoint())
        .flatten()
        .filter(|(_, head)| {
            as_of.is_none_or(|b| b.includes_prefix(head.seq, head.at) == Some(true))
        });
    let (state, start) = cached.unwrap_or((State::default(), header));
    // `visit` may block on a slow reader of the output (`history | less`),
    // which must not hold writers up: find the valid end under the lock
    // first (cheaply, from a checkpoint), then let go of the lock and read
    // only up to there.
    let end = match from {
        ReplayFrom::Start => {
            let (end, state) = valid_end(&journal, header)?;
            at_end(&state);
            Some(end)
        }
        ReplayFrom::Checkpoint | ReplayFrom::StartLocked => None,
    };
    let scanner = match end {
        Some(end) => journal.scanner_until(start, end),
        None => journal.scanner_from(start),
    };
    let mut replay = Replay::new(scanner, state);
    let mut snapshot = None;
    // The state `--as-of` a seq or instant describes is the one before the
    // first event past it; everything after is still read and checked.
    let past = |event: &Event<'_>| {
        as_of.is_some_and(|b| b.includes_prefix(event.seq, event.at) == Some(false))
    };
    while let Some(step) = replay.step_keeping(|e| snapshot.is_none() && past(e))? {
        if step.before.is_some() {
            snapshot = step.before;
        }
        visit(step.after, &step.entry)?;
    }
    let (state, head, torn) = replay.finish();
    if from != ReplayFrom::Start {
        if let Some(torn) = torn {
            warn_torn(path, torn);
        }
        journal.refresh_checkpoint(header, start, head, &state);
    }
    Ok(snapshot.unwrap_or(state))
}

/// The end of the last complete append, and the state there, found under
/// the journal's lock, which is then released. Warns about a torn tail.
fn valid_end(journal: &ReadJournal, header: Head) -> Result<(u64, State), Error> {
    let (state, start) = journal.checkpoint().unwrap_or((State::default(), header));
    let mut replay = Replay::new(journal.scanner_from(start), state);
    replay.run()?;
    let (state, head, torn) = replay.finish();
    if let Some(torn) = torn {
        warn_torn(journal.path(), torn);
    }
    journal.refresh_checkpoint(header, start, head, &state);
    let end = head.end;
    journal.unlock()?;
    Ok((end, state))
}
