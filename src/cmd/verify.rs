//! `ledger verify`: the auditor's full replay (SPEC 5).

use std::io::{self, IsTerminal, Write};

use serde::Serialize;

use crate::cli::{Format, VerifyArgs};
use crate::cmd::{Context, warn_torn};
use crate::domain::{self, State};
use crate::error::Error;
use crate::journal::line::LineHash;
use crate::journal::{JournalError, ReadJournal};
use crate::output;

/// Journals larger than this show a progress bar on a terminal.
const PROGRESS_MIN_BYTES: u64 = 64 << 20;

#[derive(Serialize)]
struct Report {
    ok: bool,
    events: u64,
    accounts: Accounts,
    totals: Vec<Total>,
    head: HeadJson,
}

#[derive(Serialize)]
struct Accounts {
    open: usize,
    closed: usize,
}

#[derive(Serialize)]
struct Total {
    currency: Option<String>,
    decimals: u8,
    deposited: String,
    withdrawn: String,
    held: String,
}

#[derive(Serialize)]
struct HeadJson {
    seq: u64,
    hash: String,
}

/// Replays and checks the whole journal, then reports.
pub fn run(ctx: &Context, args: &VerifyArgs) -> Result<(), Error> {
    let journal =
        ReadJournal::open(&ctx.path)?.ok_or_else(|| JournalError::Missing(ctx.path.clone()))?;
    let mut state = State::default();
    let header = journal.header_head();
    // A journal with no header has the head of no bytes (SPEC 2), which
    // `--quiet` prints and so must be accepted back.
    let mut anchored = args.expect_head.is_some_and(|h| match header {
        Some(head) => head.hash == h,
        None => h == LineHash::of(b""),
    });
    let progress = (io::stderr().is_terminal() && journal.len() >= PROGRESS_MIN_BYTES).then(|| {
        let bar = indicatif::ProgressBar::new(journal.len());
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "verifying {bar:40} {bytes}/{total_bytes} ({eta})",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar
    });
    let (head, torn) = match journal.scanner() {
        Some(mut scanner) => {
            while let Some(entry) = scanner.next(&state)? {
                if args.expect_head == Some(entry.hash) {
                    anchored = true;
                }
                domain::evolve(&mut state, &entry.event);
                if let Some(bar) = &progress
                    && entry.event.seq % 65_536 == 0
                {
                    bar.set_position(entry.end);
                }
            }
            (Some(scanner.head()), scanner.torn())
        }
        None => (None, journal.torn_header()),
    };
    if let Some(bar) = progress {
        bar.finish_and_clear();
    }
    if let Some(torn) = torn {
        warn_torn(&ctx.path, torn);
    }
    if let Some(problem) = state.inconsistency() {
        return Err(Error::VerifyFailed(problem));
    }
    if let Some(expected) = args.expect_head
        && !anchored
    {
        return Err(Error::VerifyFailed(format!(
            "{expected} is not the hash of any line of {} (history before it was rewritten, or it is another journal's)",
            ctx.path.display()
        )));
    }
    let (seq, hash) = head.map_or((0, LineHash::of(b"")), |h| (h.seq, h.hash));
    let mut out = io::stdout().lock();
    if args.quiet {
        writeln!(out, "{seq} {hash}")?;
        return Ok(out.flush()?);
    }
    let report = report(&state, seq, hash);
    match ctx.format {
        Format::Json => {
            serde_json::to_writer(&mut out, &report).map_err(io::Error::from)?;
            writeln!(out)?;
        }
        Format::Csv => {
            output::csv_row(
                &mut out,
                &["currency", "decimals", "deposited", "withdrawn", "held"],
            )?;
            for t in &report.totals {
                output::csv_row(
                    &mut out,
                    &[
                        t.currency.as_deref().unwrap_or(""),
                        &t.decimals.to_string(),
                        &t.deposited,
                        &t.withdrawn,
                        &t.held,
                    ],
                )?;
            }
        }
        Format::Table => {
            writeln!(out, "journal  {}", ctx.path.display())?;
            writeln!(out, "events   {}", report.events)?;
            writeln!(
                out,
                "accounts {} ({} open, {} closed)",
                report.accounts.open + report.accounts.closed,
                report.accounts.open,
                report.accounts.closed
            )?;
            if !report.totals.is_empty() {
                writeln!(out)?;
                let rows: Vec<Vec<String>> = report
                    .totals
                    .iter()
                    .map(|t| {
                        vec![
                            t.currency.clone().unwrap_or_else(|| "(no currency)".into()),
                            t.decimals.to_string(),
                            t.deposited.clone(),
                            t.withdrawn.clone(),
                            t.held.clone(),
                        ]
                    })
                    .collect();
                output::table(
                    &mut out,
                    &["CURRENCY", "DECIMALS", "DEPOSITED", "WITHDRAWN", "HELD"],
                    &[false, true, true, true, true],
                    &rows,
                )?;
                writeln!(out)?;
            }
            writeln!(out, "head     seq {seq} sha256 {hash}")?;
            writeln!(
                out,
                "ok: every line is intact and every event obeyed the rules"
            )?;
        }
    }
    Ok(out.flush()?)
}

fn report(state: &State, seq: u64, hash: LineHash) -> Report {
    let closed = state.accounts().filter(|(_, a)| a.closed).count();
    Report {
        ok: true,
        events: seq,
        accounts: Accounts {
            open: state.accounts().count() - closed,
            closed,
        },
        totals: state
            .units()
            .iter()
            .map(|u| Total {
                currency: u.currency.as_deref().map(str::to_owned),
                decimals: u.decimals,
                deposited: u.deposited.display(u.decimals).to_string(),
                withdrawn: u.withdrawn.display(u.decimals).to_string(),
                held: u.held.display(u.decimals).to_string(),
            })
            .collect(),
        head: HeadJson {
            seq,
            hash: hash.to_string(),
        },
    }
}
