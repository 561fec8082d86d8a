//! One module per command: each turns parsed arguments into journal and
//! domain calls, then hands results to [`crate::output`].

pub mod apply;
pub mod balance;
pub mod batch;
pub mod chart;
pub mod copy;
pub mod export;
mod foresee;
pub mod history;
pub mod import;
mod pipeline;
pub mod report;
pub mod verify;
pub mod write;

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use clap::CommandFactory;

use crate::cli::{AsOf, Cli, Command, Format};
use crate::domain::State;
use crate::error::Error;
use crate::event::Event;
use crate::journal::scan::{Entry, Head, Replay, Torn};
use crate::journal::{self, JournalError, ReadJournal};
use crate::readmodel::{AppendedIds, ReadModel};
use crate::time::Zone;

/// What every command needs besides its own arguments.
pub struct Context {
    /// The journal.
    pub path: PathBuf,
    /// The output format.
    pub format: Format,
    /// The zone of dates and days (SPEC 9), found when first asked for
    /// (see [`Context::zone`]).
    zone: OnceLock<Zone>,
}

impl Context {
    /// For the journal at `path`, output in `format`, and dates and days in
    /// `tz` if given (`--tz`), else in the environment's zone.
    pub fn new(path: PathBuf, format: Format, tz: Option<Zone>) -> Context {
        Context {
            path,
            format,
            zone: tz.map_or_else(OnceLock::new, OnceLock::from),
        }
    }

    /// The zone of dates and days (SPEC 9): `--tz`, else the environment's.
    /// Found on first use: finding the environment's reads the whole
    /// zoneinfo directory (about a fifth of a `deposit`'s time), which
    /// commands that show no time and take no date never need; a `TZ`
    /// naming no zone is then warned about once, when it would matter.
    pub fn zone(&self) -> &Zone {
        self.zone.get_or_init(|| {
            let (zone, warning) = Zone::from_environment();
            if let Some(warning) = warning {
                note(&warning);
            }
            zone
        })
    }
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
    let named = cli.file.or_else(|| {
        std::env::var_os("LEDGER_JOURNAL")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    });
    let user_named = named.is_some();
    let ctx = Context::new(journal::resolve_path(named)?, format, cli.tz);
    // A read of a missing journal is an empty ledger (SPEC 2), which hides
    // a mistyped path; the default location is missing until the first
    // write, which is no mistake.
    if user_named
        && matches!(
            cli.command,
            Command::Balance(_) | Command::History(_) | Command::Report(_) | Command::Chart(_)
        )
    {
        // A database is only asked when it is opened: a connection of its
        // own for the question would cost as much as the command.
        if journal::pg::is_database(&ctx.path) {
            NOTE_IF_MISSING.store(true, std::sync::atomic::Ordering::Relaxed);
        } else if matches!(ctx.path.try_exists(), Ok(false)) {
            note(&format!("note: no journal at {} yet", ctx.path.display()));
        }
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
        Command::Copy(args) => copy::run(&ctx, &args),
        Command::Completions { .. } => Ok(()),
    }
}

/// Whether opening a missing journal (in a database) says so: a read
/// command given a location, which may be mistyped (see [`run`]).
static NOTE_IF_MISSING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Opens the journal at `path` for reading, noting a missing one when a
/// read command was given its location.
fn open_read(path: &Path) -> Result<Option<ReadJournal>, Error> {
    let journal = ReadJournal::open(path)?;
    // Once: a command may open the journal more than once.
    if journal.is_none() && NOTE_IF_MISSING.swap(false, std::sync::atomic::Ordering::Relaxed) {
        note(&format!("note: no journal at {} yet", path.display()));
    }
    Ok(journal)
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

/// Where a replay starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayFrom {
    /// The first event: `visit` sees every event.
    Start,
    /// The first event, in one pass under the journal's lock: for visits
    /// that never wait on the output (a report prints once it is built),
    /// which would otherwise hold writers up.
    StartLocked,
}

/// Which entries of the state a command reads (the ids, reversals and
/// ended holds come only as replaying the lines after the read model needs
/// them: see [`state_at`]).
#[derive(Debug, Clone, Copy)]
pub enum Load<'a> {
    /// Every account, with the open holds.
    All,
    /// These accounts (and the holds on them): a partial state.
    Accounts(&'a [String]),
}

/// Replays the journal at `path` from its start, calling `visit` with the
/// state after each event read, and returns the state at the end. A
/// missing journal is an empty ledger.
pub fn replay(
    path: &Path,
    from: ReplayFrom,
    visit: impl FnMut(&State, &Entry<'_>) -> Result<(), Error>,
) -> Result<State, Error> {
    replay_sized(path, from, |_, _| (), visit)
}

/// [`replay`], which with [`ReplayFrom::Start`] first hands `at_end` the
/// journal and the state at its valid end, before any event is visited:
/// what a table that streams needs to size its columns, and an export its
/// header line (it is not called for a missing or empty journal).
pub fn replay_sized(
    path: &Path,
    from: ReplayFrom,
    at_end: impl FnOnce(&ReadJournal, &State),
    mut visit: impl FnMut(&State, &Entry<'_>) -> Result<(), Error>,
) -> Result<State, Error> {
    let Some(journal) = open_read(path)? else {
        return Ok(State::default());
    };
    let Some(header) = journal.header_head() else {
        if let Some(torn) = journal.torn_header() {
            warn_torn(path, torn);
        }
        return Ok(State::default());
    };
    // `visit` may block on a slow reader of the output (`history | less`),
    // which must not hold writers up: find the valid end under the lock
    // first (cheaply, from the read model), then let go of the lock and
    // read only up to there.
    //
    // Events a replay of the whole journal has decided before (that pass,
    // when it folded every line, or an earlier one the model records) are
    // not decided again: the chain binds them to a head the scan checks.
    // Not so for the events behind the model's head alone: the writers
    // decided them against its rows, which damage (a row lost, which no
    // digest shows) can make accept what the journal's state refuses, and
    // these reads, like `verify`, judge by the journal.
    let (scanner, decided, mut model) = match from {
        ReplayFrom::Start => {
            let (end, decided, state) = valid_end(&journal, header)?;
            at_end(&journal, &state);
            let scanner = journal.scanner_until(header, end.end);
            // The model is opened again at the end: held open, its read
            // snapshot would keep its log from being folded for as long
            // as the output is read.
            (scanner.decided_until(decided), decided, None)
        }
        ReplayFrom::StartLocked => {
            // Locked, the model stays open to the end: it cannot move.
            let model = sound_model(&journal);
            let decided = model
                .as_ref()
                .and_then(|m| m.checked(journal.file(), header, journal.len()));
            let scanner = journal.scanner_from(header).decided_until(decided);
            (scanner, decided, model)
        }
    };
    // The lines this pass decides are handed to `visit` (printed) as they
    // come, so a repeated id must be found as it comes too: by
    // fingerprint, about 7 bytes an id where names took about 60.
    let mut replay = Replay::new(scanner, State::fingerprinting());
    replay.each(&mut visit)?;
    let (state, end, torn) = replay.finish();
    if from == ReplayFrom::StartLocked
        && let Some(torn) = torn
    {
        warn_torn(path, torn);
    }
    // This replay decided every event after `decided` on the state it
    // folded from the header: the next one need not.
    if decided.is_none_or(|d| d.seq < end.seq) {
        if from == ReplayFrom::Start {
            model = sound_model(&journal);
        }
        if let Some(model) = &mut model {
            let _ = model.check_until(end);
        }
    }
    Ok(state)
}

/// The journal's read model, if it is the journal's and covers a prefix
/// of it.
fn sound_model(journal: &ReadJournal) -> Option<ReadModel> {
    journal
        .model()
        .and_then(|(model, covers)| covers.map(|_| model))
}

/// The state at the end of the journal at `path`, or as of `as_of` (a
/// seq or an instant: a date bound does not select a prefix of the
/// journal), holding the entries `load` names: from the read model when it
/// covers a prefix of the journal up to `as_of`, replaying the lines after
/// it, else by replaying every line (which then rebuilds a missing or
/// untrusted model). Everything after the starting point is read either
/// way, so that damage anywhere in it is reported. A missing journal is
/// an empty ledger.
pub fn state_at(path: &Path, as_of: Option<AsOf>, load: Load<'_>) -> Result<State, Error> {
    let Some(journal) = open_read(path)? else {
        return Ok(State::default());
    };
    let Some(header) = journal.header_head() else {
        if let Some(torn) = journal.torn_header() {
            warn_torn(path, torn);
        }
        return Ok(State::default());
    };
    let mut model = journal.model();
    let covered = model.as_ref().and_then(|(_, covers)| *covers);
    let usable = covered
        .filter(|head| as_of.is_none_or(|b| b.includes_prefix(head.seq, head.at) == Some(true)));
    let start = model.as_ref().zip(usable).map(|((m, _), from)| (m, from));
    let base = |m: &ReadModel, from| match load {
        Load::All => m.load_every_account(from),
        Load::Accounts(names) => m.base(from).and_then(|mut state| {
            m.load_accounts(&mut state, names.iter().map(String::as_str))?;
            Ok(state)
        }),
    };
    let scan = |from| journal.scanner_from(from);
    // A read asks nothing of the ids once replayed: they are proven
    // distinct where the replay stops, as an audit's are.
    let whole = |scanner| Replay::keeping_id_keys_in(scanner, State::auditing());
    let run = |replay| replay_as_of(replay, as_of);
    let ((snapshot, state, head, torn, keys), from) =
        journal::from_model_or_start(header, start, base, (scan, whole), run)?;
    if let Some(torn) = torn {
        warn_torn(path, torn);
    }
    if let Some((m, _)) = &mut model {
        match from {
            // Catching the model up is worth a few rows, not every
            // account's: a writer does it for those.
            Some(from) if head != from && matches!(load, Load::Accounts(_)) => {
                let _ = m.save(&state, Some(from), head, header.hash, journal.file());
            }
            Some(_) => {}
            // Rebuilt when missing or failed, not when only `as_of` kept
            // a sound model out.
            None if covered.is_none() || usable.is_some() => {
                if let Some(keys) = keys {
                    let whole = (None, head, header.hash);
                    let _ = m.save_appended(&state, keys, whole, head, journal.file());
                }
            }
            None => {}
        }
    }
    Ok(snapshot.unwrap_or(state))
}

/// Runs `replay` to its end, keeping the state `as_of` describes: the one
/// before the first event past it (`None` if no event is); with the
/// state at the end, its head and torn tail, and the keys of the ids it
/// kept ([`Replay::id_keys`]).
fn replay_as_of(mut replay: Replay<'_>, as_of: Option<AsOf>) -> Result<KeptReplay, JournalError> {
    let past = |event: &Event<'_>| {
        as_of.is_some_and(|b| b.includes_prefix(event.seq, event.at) == Some(false))
    };
    let snapshot = replay.run_keeping(past)?;
    let keys = replay.id_keys();
    let (state, head, torn) = replay.finish();
    Ok((snapshot, state, head, torn, keys))
}

/// What [`replay_as_of`] returns.
type KeptReplay = (
    Option<State>,
    State,
    Head,
    Option<Torn>,
    Option<AppendedIds>,
);

/// The head at the end of the last complete append; the head up to which
/// a replay of the whole journal has decided every event (this pass, when
/// it folded every line, else the read model's record of an earlier one,
/// not its head: the lines after it were decided here against its rows);
/// and the whole state there, found under the journal's lock, which is
/// then released. Warns about a torn tail.
fn valid_end(journal: &ReadJournal, header: Head) -> Result<(Head, Option<Head>, State), Error> {
    let mut model = journal.model();
    let start = model.as_ref().and_then(|(m, covers)| Some((m, (*covers)?)));
    // Every account, for the widths; from the model, the rest as needed.
    let scan = (|from| journal.scanner_from(from), Replay::keeping_id_keys);
    let run = |mut replay: Replay<'_>| {
        replay.run()?;
        let keys = replay.id_keys();
        Ok((replay.finish(), keys))
    };
    let load = ReadModel::load_every_account;
    let (((state, head, torn), keys), from) =
        journal::from_model_or_start(header, start, load, scan, run)?;
    if let Some(torn) = torn {
        warn_torn(journal.path(), torn);
    }
    // A model rebuilt from the whole journal is worth writing; catching
    // one up would write every account back, which a writer does cheaper.
    if from.is_none()
        && head != header
        && let (Some((m, _)), Some(keys)) = (&mut model, keys)
    {
        let whole = (None, head, header.hash);
        let _ = m.save_appended(&state, keys, whole, head, journal.file());
    }
    let decided = match from {
        None => Some(head),
        // A record past the valid end names no line of the valid journal
        // (a damaged one: a line of a torn append), and is not used.
        Some(_) => model
            .as_ref()
            .and_then(|(m, _)| m.checked(journal.file(), header, journal.len()))
            .filter(|checked| checked.seq <= head.seq),
    };
    journal.unlock()?;
    Ok((head, decided, state))
}
