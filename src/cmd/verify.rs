//! `ledger verify`: the auditor's full replay (SPEC 5).

use std::io::{self, IsTerminal, Write};

use serde::Serialize;

use std::path::Path;

use crate::cli::{Anchor, Format, VerifyArgs};
use crate::cmd::{Context, warn_torn};
use crate::domain::State;
use crate::error::Error;
use crate::journal::line::LineHash;
use crate::journal::scan::Replay;
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
    /// The seq whose line `--expect-head` matched.
    #[serde(skip_serializing_if = "Option::is_none")]
    anchor_seq: Option<u64>,
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
    /// The sum of the balances (deposited - withdrawn), as `balance`'s
    /// totals name it; not the money held by holds.
    balance: String,
}

#[derive(Serialize)]
struct HeadJson {
    seq: u64,
    hash: String,
}

/// Replays and checks the whole journal, then reports.
pub fn run(ctx: &Context, args: &VerifyArgs) -> Result<(), Error> {
    // The state of a large journal is millions of small entries spread
    // over tables, and the allocator asks for huge pages: each 2 MiB page
    // then counts whole once touched, and a million accounts cost half as
    // much memory again. Best effort: where the kernel refuses, nothing
    // changes but memory.
    #[cfg(target_os = "linux")]
    let _ = rustix::thread::disable_transparent_huge_pages(true);
    let journal =
        ReadJournal::open(&ctx.path)?.ok_or_else(|| JournalError::Missing(ctx.path.clone()))?;
    let header = journal.header_head();
    let mut anchor = args.expect_head.map(|anchor| AnchorCheck {
        anchor,
        matched: None,
    });
    if let Some(anchor) = &mut anchor {
        // Seq 0 is the header; a file without one is empty (SPEC 2).
        anchor.see(0, header.map_or_else(|| LineHash::of(b""), |h| h.hash));
    }
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
    let (state, head, torn) = match journal.scanner() {
        Some(scanner) => {
            let mut replay = Replay::new(scanner, State::auditing());
            // `each`, not a loop over `step`: an entry moved out at every
            // step was a tenth of the time of a large journal's audit.
            replay.each(|_, entry| {
                if let Some(anchor) = &mut anchor {
                    anchor.see(entry.event.seq, entry.hash);
                }
                if let Some(bar) = &progress
                    && entry.event.seq % 65_536 == 0
                {
                    bar.set_position(entry.end);
                }
                Ok::<_, JournalError>(())
            })?;
            let (state, head, torn) = replay.finish();
            (state, Some(head), torn)
        }
        None => (State::default(), None, journal.torn_header()),
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
    let (seq, hash) = head.map_or((0, LineHash::of(b"")), |h| (h.seq, h.hash));
    let anchor_seq = anchor.map(|a| a.matched_in(&ctx.path, seq)).transpose()?;
    let mut out = io::stdout().lock();
    if args.quiet {
        writeln!(out, "{seq} {hash}")?;
        return Ok(out.flush()?);
    }
    let report = report(&state, seq, hash, anchor_seq);
    match ctx.format {
        Format::Json => {
            serde_json::to_writer(&mut out, &report).map_err(io::Error::from)?;
            writeln!(out)?;
        }
        Format::Csv => {
            output::csv_row(
                &mut out,
                &["currency", "decimals", "deposited", "withdrawn", "balance"],
            )?;
            for t in &report.totals {
                output::csv_row(
                    &mut out,
                    &[
                        t.currency.as_deref().unwrap_or(""),
                        &t.decimals.to_string(),
                        &t.deposited,
                        &t.withdrawn,
                        &t.balance,
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
                            t.balance.clone(),
                        ]
                    })
                    .collect();
                output::table(
                    &mut out,
                    &["CURRENCY", "DECIMALS", "DEPOSITED", "WITHDRAWN", "BALANCE"],
                    &[false, true, true, true, true],
                    &rows,
                )?;
                writeln!(out)?;
            }
            writeln!(out, "head     seq {seq} sha256 {hash}")?;
            if let Some(matched) = anchor_seq {
                writeln!(out, "anchor   matched the line at seq {matched}")?;
            }
            writeln!(
                out,
                "ok: every line is intact and every event obeyed the rules"
            )?;
        }
    }
    Ok(out.flush()?)
}

/// `--expect-head` as the replay goes: the anchor, and the seq whose line
/// it matched.
struct AnchorCheck {
    anchor: Anchor,
    matched: Option<u64>,
}

impl AnchorCheck {
    /// Takes in the line at `seq`, whose hash is `hash`.
    fn see(&mut self, seq: u64, hash: LineHash) {
        if self.matched.is_none()
            && hash == self.anchor.hash
            && self.anchor.seq.is_none_or(|s| s == seq)
        {
            self.matched = Some(seq);
        }
    }

    /// The seq the anchor matched, once the journal at `path` has been read
    /// to its head at `head_seq`; else why it failed.
    fn matched_in(&self, path: &Path, head_seq: u64) -> Result<u64, Error> {
        let hash = self.anchor.hash;
        let path = path.display();
        match (self.matched, self.anchor.seq) {
            (Some(seq), _) => Ok(seq),
            (None, Some(seq)) if seq > head_seq => Err(Error::VerifyFailed(format!(
                "cut short: the journal ends at seq {head_seq}, the anchor is at seq {seq}"
            ))),
            (None, Some(seq)) => Err(Error::VerifyFailed(format!(
                "the line at seq {seq} of {path} does not have the anchor's hash {hash} (history up to it was rewritten, or the anchor is another journal's)"
            ))),
            (None, None) => Err(Error::VerifyFailed(format!(
                "{hash} is not the hash of any line of {path} (history before it was rewritten, or it is another journal's)"
            ))),
        }
    }
}

fn report(state: &State, seq: u64, hash: LineHash, anchor_seq: Option<u64>) -> Report {
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
                balance: u.held.display(u.decimals).to_string(),
            })
            .collect(),
        head: HeadJson {
            seq,
            hash: hash.to_string(),
        },
        anchor_seq,
    }
}
