//! The one path from parsed write commands to the journal, shared by
//! `batch` and `import` whatever their input syntax (SPEC 4, 13): each
//! command is decided against the state the ones before it leave, and the
//! events are appended all at once, under one lock, with one fsync.

use std::borrow::Cow;
use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::cli::{Format, WriteCommand};
use crate::cmd::{Context, write};
use crate::domain;
use crate::error::Error;
use crate::journal::{Outcome, Writer};
use crate::output;
use crate::readmodel::Unfolded;
use crate::threads;

/// Many commands applied to one locked journal, then committed (or, for a
/// dry run, only checked).
pub struct Applier<'c> {
    ctx: &'c Context,
    writer: Writer,
    dry_run: bool,
    appended: u64,
    repeats: u64,
    /// For JSON: the repeats among the appended events, so that they
    /// print the event they repeat in their place (SPEC 6).
    repeated: Repeats,
    /// Records a dry run found wanting (each already reported), and the
    /// first of them, whose exit code the run ends with.
    failed: u64,
    first_failure: Option<Error>,
    /// Records given and not yet applied: they are applied a run at a
    /// time, after one prefetch of what they read (see
    /// [`Writer::prefetch`]).
    pending: Pending,
}

/// A run of records, by input line: the commands, and apart from them
/// the (rare) records that have none, by their place in the run. Kept
/// apart so that a run is never moved or copied whole (splitting a run
/// into vectors cost a seventh of applying it).
#[derive(Default)]
struct Pending {
    lines: Vec<usize>,
    commands: Vec<Option<WriteCommand>>,
    errors: Vec<(usize, Error)>,
}

impl Pending {
    fn clear(&mut self) {
        self.lines.clear();
        self.commands.clear();
        self.errors.clear();
    }
}

/// Set by Ctrl-C during a batch or an import (see [`Applier::open`]).
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// How long Ctrl-C waits for a run to stop and cut back its lines.
const INTERRUPT_GRACE: Duration = Duration::from_secs(2);

/// Records applied after one prefetch.
const RUN: usize = 1024;

impl<'c> Applier<'c> {
    /// Locks the journal and reads its state.
    pub fn open(ctx: &'c Context, dry_run: bool) -> Result<Applier<'c>, Error> {
        // As for `verify`: a long run keeps tens of thousands of small
        // vectors (id fingerprints, a CSV's row counts) spread over the
        // heap, and the allocator asks for huge pages, each of which then
        // counts whole once touched (about 14 MiB more for a million
        // rows). Best effort: where the kernel refuses, only memory differs.
        #[cfg(target_os = "linux")]
        let _ = rustix::thread::disable_transparent_huge_pages(true);
        // A long run writes its lines to the journal as it decides them:
        // Ctrl-C stops it at its next record, and the writer cuts them
        // back, rather than leaving them as a torn tail. Should the run
        // not get there (waiting on the lock, syncing), the process ends
        // after a grace, as SIGINT ends it by default. If a handler is
        // already set, Ctrl-C keeps its default.
        let _ = ctrlc::set_handler(|| {
            INTERRUPTED.store(true, Ordering::Relaxed);
            std::thread::sleep(INTERRUPT_GRACE);
            std::process::exit(i32::from(crate::error::code::INTERRUPTED));
        });
        let mut writer = Writer::open(&ctx.path)?;
        writer.fold_later();
        Ok(Applier {
            ctx,
            writer,
            dry_run,
            appended: 0,
            repeats: 0,
            repeated: Repeats::default(),
            failed: 0,
            first_failure: None,
            pending: Pending::default(),
        })
    }

    /// Says how many records are expected to append an event each: a long
    /// run of them is then written to the journal as it is decided (see
    /// [`Writer::expect_lines`]).
    pub fn expect(&mut self, records: usize) {
        if !self.dry_run {
            self.writer.expect_lines(records);
        }
    }

    /// How many accounts the records must name for the writer to load
    /// every account at once (see [`Writer::accounts_worth_all`]).
    pub fn accounts_worth_all(&self) -> Option<usize> {
        self.writer.accounts_worth_all()
    }

    /// Says that the records name at least `accounts` accounts (see
    /// [`Writer::expect_accounts`]), before their ids are known.
    pub fn expect_accounts(&mut self, accounts: usize) -> Result<(), Error> {
        Ok(self.writer.expect_accounts(accounts)?)
    }

    /// Tells the writer the keys of the ids the records will name (see
    /// [`Writer::foresee_ids`]), and about how many accounts they name
    /// ([`Writer::expect_accounts`]): if it took the keys, how many ids
    /// it will look up.
    pub fn foresee(&mut self, keys: Vec<i64>, accounts: usize) -> Result<Option<usize>, Error> {
        self.writer.expect_accounts(accounts)?;
        Ok(self.writer.foresee_ids(keys))
    }

    /// Applies the record at `line` (its command, or why it has none).
    /// A refused record stops the run, except in a dry run, which reports
    /// it, leaves it out and goes on, so that one run lists every record
    /// to fix. Failures of the journal itself always stop. Records are
    /// applied in runs, in order, so a failure may show a few records
    /// after it was given (and always before [`Applier::finish`] ends).
    pub fn apply(
        &mut self,
        line: usize,
        command: Result<WriteCommand, Error>,
    ) -> Result<(), Error> {
        if INTERRUPTED.load(Ordering::Relaxed) {
            return Err(Error::Interrupted);
        }
        let pending = &mut self.pending;
        match command {
            Ok(command) => pending.commands.push(Some(command)),
            Err(e) => {
                pending.errors.push((pending.commands.len(), e));
                pending.commands.push(None);
            }
        }
        pending.lines.push(line);
        if pending.lines.len() >= RUN {
            self.apply_pending()?;
        }
        Ok(())
    }

    /// Applies the pending records in order, after prefetching what they read.
    fn apply_pending(&mut self) -> Result<(), Error> {
        let mut pending = std::mem::take(&mut self.pending);
        let mut requests: Vec<_> = pending
            .commands
            .iter()
            .map(|c| c.as_ref().map(|c| write::request(c, self.ctx)))
            .collect();
        self.writer
            .prefetch(requests.iter().filter_map(|r| r.as_ref()?.as_ref().ok()))?;
        let mut errors = pending.errors.drain(..).peekable();
        for (i, line) in pending.lines.iter().enumerate() {
            if let Some(ahead) = domain::warm_window(i) {
                let ahead = requests.iter().skip(ahead.start).take(ahead.len());
                self.writer
                    .warm(ahead.filter_map(|r| r.as_ref()?.as_ref().ok()));
            }
            let request = requests.get_mut(i).and_then(Option::take);
            let result = match (errors.next_if(|(at, _)| *at == i), request) {
                (Some((_, e)), _) | (None, Some(Err(e))) => Err(e),
                (None, Some(Ok(request))) => self.writer.apply(&request).map_err(Error::from),
                (None, None) => continue,
            };
            self.record(*line, result)?;
        }
        drop(errors);
        drop(requests);
        // The next run fills the same vectors: grown afresh a push at a
        // time, they copied each run's commands about twice more.
        pending.clear();
        self.pending = pending;
        Ok(())
    }

    /// Counts what the record at `line` came to, or reports why it was
    /// refused (see [`Applier::apply`]).
    fn record(&mut self, line: usize, result: Result<Outcome, Error>) -> Result<(), Error> {
        match result {
            Ok(outcome) => {
                match outcome {
                    Outcome::Appended(_) => self.appended += 1,
                    Outcome::Repeat(seq) => {
                        self.repeats += 1;
                        if self.ctx.format == Format::Json {
                            self.repeated.push(self.appended, seq);
                        }
                    }
                }
                Ok(())
            }
            Err(e) => {
                // The journal's own failures and the output's are not the
                // line's (a disk that fills while a long batch is written
                // ahead fills at some line): they always stop, unnamed.
                if matches!(e.root(), Error::Journal(_) | Error::Output(_)) {
                    return Err(e);
                }
                let e = at_line(line, e);
                if !self.dry_run {
                    return Err(e);
                }
                // The first is said only once a second follows: alone, it
                // is the run's own error, as without --dry-run.
                self.failed += 1;
                match &self.first_failure {
                    None => self.first_failure = Some(e),
                    Some(first) => {
                        if self.failed == 2 {
                            super::note(&format!("error: {first}"));
                        }
                        super::note(&format!("error: {e}"));
                    }
                }
                Ok(())
            }
        }
    }

    /// Commits (unless a dry run), lets go of the journal, and prints what
    /// was appended. Once committed, a failure to print is no failure of
    /// the command: its seqs are named on stderr (SPEC 1).
    pub fn finish(mut self) -> Result<(), Error> {
        self.apply_pending()?;
        if INTERRUPTED.load(Ordering::Relaxed) {
            return Err(Error::Interrupted);
        }
        if let Some(first) = self.first_failure.take() {
            return Err(match self.failed {
                1 => first,
                failed => Error::DryRunRefused {
                    failed,
                    first: Box::new(first),
                },
            });
        }
        if self.dry_run {
            // Only JSON shows the lines that would be appended.
            if self.ctx.format == Format::Json {
                self.writer.seal()?;
            }
        } else {
            write::commit(self.ctx, &mut self.writer)?;
        }
        // Printing may wait on a slow reader: not with the journal locked.
        self.writer.unlock()?;
        // Nor the fold of the model's log (a batch of a million events:
        // a second, most of it syncs), which goes on while this prints.
        let unfolded = self.writer.unfolded().map(Box::new);
        let printed = std::thread::scope(|scope| {
            let fold = |u: Box<Unfolded>| u.fold();
            let folding = unfolded.map(|u| threads::scoped_with(scope, "folding", u, fold));
            let printed = self.print();
            if let Some(Err(unfolded)) = folding {
                unfolded.fold();
            }
            printed
        });
        if self.dry_run || self.appended == 0 {
            return printed;
        }
        let last = self.writer.state().seq();
        write::acknowledge(self.ctx, printed, last + 1 - self.appended..=last)
    }

    /// The appended events (JSON) or the net change per account.
    fn print(&self) -> Result<(), Error> {
        let mut out = io::BufWriter::new(io::stdout().lock());
        match self.ctx.format {
            Format::Json => {
                let mut runs = self.repeated.0.iter().peekable();
                let mut appended = 0;
                let mut repeats = |out: &mut io::BufWriter<_>, before| -> Result<(), Error> {
                    while let Some(run) = runs.next_if(|run| run.after == before) {
                        for seq in run.first..run.first + run.count {
                            out.write_all(&self.writer.line(seq)?)?;
                            out.write_all(b"\n")?;
                        }
                    }
                    Ok(())
                };
                self.writer.each_staged(|line| {
                    repeats(&mut out, appended)?;
                    appended += 1;
                    out.write_all(line)?;
                    Ok::<_, Error>(out.write_all(b"\n")?)
                })?;
                repeats(&mut out, appended)?;
            }
            Format::Csv => {
                output::csv_row(&mut out, &["account", "net_change"])?;
                for named in self.writer.changed_by_name() {
                    let (name, delta, decimals) = self.writer.net_change(named);
                    let delta = delta.display(decimals).to_string();
                    output::csv_row(&mut out, &[name, delta.as_str()])?;
                }
            }
            Format::Table => self.summary(&mut out)?,
        }
        Ok(out.flush()?)
    }

    /// `appended 3 event(s) (seq 5-7); …` and the net change per account.
    fn summary(&self, out: &mut impl Write) -> Result<(), Error> {
        let verb = if self.dry_run {
            "would append"
        } else {
            "appended"
        };
        let last = self.writer.state().seq();
        let range = match self.appended {
            0 => String::new(),
            1 => format!(" (seq {last})"),
            n => format!(" (seq {}-{last})", last + 1 - n),
        };
        writeln!(
            out,
            "{verb} {} event(s){range}; {} repeat(s) of earlier --id commands",
            self.appended, self.repeats
        )?;
        let changes = self.writer.changed_by_name();
        if !changes.is_empty() {
            // Made twice on demand (to size the columns, then to print):
            // a batch into a million accounts never holds a million rows.
            let rows = || {
                changes.iter().map(|&named| {
                    let (name, delta, decimals) = self.writer.net_change(named);
                    [
                        Cow::Borrowed(name),
                        delta.display(decimals).to_string().into(),
                    ]
                })
            };
            output::table_with(out, &["ACCOUNT", "NET CHANGE"], &[false, true], rows)?;
        }
        Ok(())
    }
}

/// The repeated events of a run, in order, as runs of consecutive seqs
/// (a batch run again repeats its events in order): memory for the
/// repeats, none for the new events.
#[derive(Debug, Default)]
struct Repeats(Vec<Run>);

#[derive(Debug)]
struct Run {
    /// How many events were appended before it.
    after: u64,
    first: u64,
    count: u64,
}

impl Repeats {
    fn push(&mut self, after: u64, seq: u64) {
        match self.0.last_mut() {
            Some(run) if run.after == after && run.first + run.count == seq => run.count += 1,
            _ => self.0.push(Run {
                after,
                first: seq,
                count: 1,
            }),
        }
    }
}

/// `source`, said to be about input line `line` (once: a parse error may
/// already name its line).
pub fn at_line(line: usize, source: Error) -> Error {
    match source {
        Error::Line { .. } => source,
        source => Error::Line {
            line,
            source: Box::new(source),
        },
    }
}
