//! `create`, `deposit`, `withdraw`, `transfer`, `close`: one request, one
//! locked append.

use std::io::{self, Write};

use crate::cli::{self, Bound, Format, WriteCommand, WriteOpts};
use crate::cmd::Context;
use crate::domain::{Command, Request, State, Target};
use crate::error::Error;
use crate::event::{Change, Event};
use crate::journal::line::{self, LineError};
use crate::journal::{JournalError, Outcome, Writer};
use crate::money::Amount;
use crate::output;
use crate::time::At;

/// The domain request a parsed write command stands for; the context's
/// zone reads a date given as a hold's expiry (and is asked for only then).
pub fn request<'a>(cmd: &'a WriteCommand, ctx: &Context) -> Result<Request<'a>, Error> {
    let command = match cmd {
        WriteCommand::Create(a) => Command::Create {
            account: &a.account,
            owner: a.owner.as_deref(),
            currency: a.currency.as_deref(),
            decimals: a.decimals,
        },
        WriteCommand::Deposit(a) => Command::Deposit {
            account: &a.account,
            amount: a.amount,
        },
        WriteCommand::Withdraw(a) => Command::Withdraw {
            account: &a.account,
            amount: a.amount,
        },
        WriteCommand::Transfer(a) => Command::Transfer {
            from: &a.from,
            to: &a.to,
            amount: a.amount,
        },
        WriteCommand::Close(a) => Command::Close {
            account: &a.account,
        },
        WriteCommand::Reverse(a) => Command::Reverse {
            target: match (a.seq, a.of_id.as_deref()) {
                (Some(seq), None) => Target::Seq(seq),
                (None, Some(id)) => Target::Id(id),
                (Some(_), Some(_)) => {
                    return Err(Error::Usage(
                        "reverse takes a SEQ or --of-id KEY, not both".into(),
                    ));
                }
                (None, None) => {
                    return Err(Error::Usage(
                        "reverse needs the SEQ of the movement to undo, or --of-id KEY".into(),
                    ));
                }
            },
            original: None,
        },
        WriteCommand::Hold(a) => Command::Hold {
            account: &a.account,
            amount: a.amount,
            to: a.to.as_deref(),
            expires: a.expires.map(|bound| match bound {
                Bound::At(at) => at,
                // A hold given a date counts all of that day (SPEC 11).
                Bound::Day(day) => ctx.zone().start_of(day.next()),
            }),
        },
        WriteCommand::Capture(a) => {
            // With --of-id, the one word there is (in whichever place: JSON
            // Lines import sets `amount` in the second) is the AMOUNT.
            let (target, amount) = match (a.of_id.as_deref(), &a.first, &a.second) {
                (Some(id), first, None) => (Target::Id(id), first.as_deref()),
                (Some(id), None, second) => (Target::Id(id), second.as_deref()),
                (Some(_), Some(_), Some(_)) => {
                    return Err(Error::Usage(
                        "capture --of-id KEY takes at most an AMOUNT".into(),
                    ));
                }
                (None, first, second) => {
                    (hold_seq("capture", first.as_deref())?, second.as_deref())
                }
            };
            let amount = amount
                .map(|text| {
                    cli::amount(text).map_err(|e| {
                        Error::Usage(format!("invalid value '{text}' for <AMOUNT>: {e}"))
                    })
                })
                .transpose()?;
            Command::Capture { target, amount }
        }
        WriteCommand::Release(a) => Command::Release {
            target: match a.of_id.as_deref() {
                Some(id) if a.first.is_none() => Target::Id(id),
                Some(_) => {
                    return Err(Error::Usage(
                        "release takes a HOLD or --of-id KEY, not both".into(),
                    ));
                }
                None => hold_seq("release", a.first.as_deref())?,
            },
        },
    };
    let opts: &WriteOpts = cmd.opts();
    let mut tags: Vec<(&str, &str)> = opts
        .tags
        .iter()
        .map(|t| (t.key.as_str(), t.value.as_str()))
        .collect();
    // Stable, so that a key given twice stays twice for the input rules to refuse.
    tags.sort_by_key(|(k, _)| *k);
    Ok(Request {
        command,
        id: opts.id.as_deref(),
        memo: opts.memo.as_deref(),
        expect_seq: opts.expect_seq,
        date: opts.date,
        tags,
        written_in: opts.written_in.as_ref(),
    })
}

/// The hold named by its seq (`None`: it was not given).
fn hold_seq(command: &str, word: Option<&str>) -> Result<Target<'static>, Error> {
    let word = word.ok_or_else(|| {
        Error::Usage(format!(
            "{command} needs the HOLD (the seq of its hold event), or --of-id KEY"
        ))
    })?;
    cli::seq(word).map(Target::Seq).map_err(|_| {
        Error::Usage(format!(
            "invalid value '{word}' for <HOLD>: the seq of a hold event (a whole number)"
        ))
    })
}

/// Commits what `writer` staged and reports a torn tail it removed.
pub fn commit(ctx: &Context, writer: &mut Writer) -> Result<(), Error> {
    let staged = writer.staged() > 0;
    writer.commit()?;
    if writer.created_journal() {
        super::note(&format!("created journal {}", ctx.path.display()));
    }
    match writer.torn() {
        Some(torn) if staged => crate::error::warn(format_args!(
            "warning: {}: removed an interrupted write at line {} ({} bytes); its bytes are kept in {}.torn",
            ctx.path.display(),
            torn.line,
            torn.len,
            ctx.path.display()
        )),
        // Nothing was written, so the torn tail stays for the next write.
        Some(torn) => super::warn_torn(&ctx.path, torn),
        None => {}
    }
    Ok(())
}

/// How often a write refused for a conflicting one is tried again.
const CONFLICT_RETRIES: u32 = 8;

/// Runs one write command.
pub fn run(ctx: &Context, cmd: &WriteCommand) -> Result<(), Error> {
    let request = request(cmd, ctx)?;
    let mut conflicts = 0;
    let (mut writer, outcome) = loop {
        let attempt = Writer::open(&ctx.path)
            .map_err(Error::from)
            .and_then(|mut writer| {
                let outcome = writer.apply(&request)?;
                commit(ctx, &mut writer)?;
                Ok((writer, outcome))
            });
        match attempt {
            // A database that runs its transactions SERIALIZABLE (as
            // CockroachDB does) may refuse one for another that touched the
            // head first; nothing was written, so it is decided again.
            Err(Error::Journal(JournalError::Conflict { .. })) if conflicts < CONFLICT_RETRIES => {
                conflicts += 1;
                std::thread::sleep(std::time::Duration::from_millis(5 << conflicts));
            }
            done => break done?,
        }
    };
    writer.unlock()?;
    let seq = match outcome {
        Outcome::Appended(seq) | Outcome::Repeat(seq) => seq,
    };
    let printed = writer
        .line(seq)
        .map_err(Error::from)
        .and_then(|stored| print(ctx, &writer, outcome, &stored, &decode(&writer, &stored)?));
    acknowledge(ctx, printed, seq..=seq)
}

/// The outcome of a command whose events are in the journal (committed, or
/// there before as what an `--id` repeats): success, even if printing the
/// confirmation failed, since the exit code tells the truth about the
/// journal (SPEC 1) and a script retrying on failure would pay twice. The
/// failure is said on stderr, naming the seqs, when stderr works: a
/// closed pipe too, which a read takes as its reader having had enough,
/// but which here may be the only word a script had that its write went
/// through.
pub fn acknowledge(
    ctx: &Context,
    printed: Result<(), Error>,
    seqs: std::ops::RangeInclusive<u64>,
) -> Result<(), Error> {
    if let Err(e) = printed {
        let seqs = if seqs.start() == seqs.end() {
            format!("seq {}", seqs.start())
        } else {
            format!("seqs {}-{}", seqs.start(), seqs.end())
        };
        crate::error::warn(format_args!(
            "warning: {seqs} of {} are in the journal, but the confirmation could not be printed: {}",
            ctx.path.display(),
            crate::error::escape_controls(&e.to_string())
        ));
    }
    Ok(())
}

/// Prints the event a write command appended or repeated.
fn print(
    ctx: &Context,
    writer: &Writer,
    outcome: Outcome,
    stored: &[u8],
    event: &Event<'_>,
) -> Result<(), Error> {
    let seq = match outcome {
        Outcome::Appended(seq) | Outcome::Repeat(seq) => seq,
    };
    let mut out = io::stdout().lock();
    match ctx.format {
        Format::Json => {
            out.write_all(stored)?;
            out.write_all(b"\n")?;
        }
        Format::Csv => {
            output::csv_row(&mut out, &output::EVENT_CSV_HEADER)?;
            output::csv_row(&mut out, &output::event_csv(event, stored))?;
        }
        Format::Table => {
            let balances = balances_after(writer.state(), &event.change, event.at);
            match outcome {
                Outcome::Appended(_) => {
                    writeln!(out, "seq {seq}: {}{balances}", output::describe(event))?
                }
                Outcome::Repeat(_) => writeln!(
                    out,
                    "seq {seq}: {} was already recorded with this --id; nothing written{balances}",
                    output::describe(event)
                )?,
            }
        }
    }
    Ok(out.flush()?)
}

/// Decodes a line this writer has just validated or written.
pub fn decode<'l>(writer: &Writer, stored: &'l [u8]) -> Result<Event<'l>, Error> {
    line::decode(stored, &mut Vec::new())
        .map(|d| d.event)
        .map_err(|e: LineError| {
            Error::Journal(JournalError::Corrupt {
                path: writer.path().to_owned(),
                line: 0,
                reason: e.to_string(),
            })
        })
}

/// `; balance acct1 19.75` (or both accounts of a transfer) in the current state.
fn balances_after(state: &State, change: &Change<'_>, at: At) -> String {
    let one = |name: &str| {
        state
            .account(name)
            .map(|a| format!("{name} {}", output::money(a.balance, state.unit_of(a))))
            .unwrap_or_default()
    };
    match change {
        Change::MoneyDeposited { account, .. }
        | Change::MoneyWithdrawn { account, .. }
        | Change::HoldCaptured {
            account, to: None, ..
        } => {
            format!("; balance {}", one(account))
        }
        Change::TransferCompleted { from, to, .. }
        | Change::HoldCaptured {
            account: from,
            to: Some(to),
            ..
        } => {
            format!("; balances {}, {}", one(from), one(to))
        }
        Change::FundsHeld { account, .. } | Change::HoldReleased { account, .. } => {
            let available = state.account(account).map(|a| {
                let held = state.held_at(a, at);
                output::money(Amount(a.balance.0.saturating_sub(held.0)), state.unit_of(a))
            });
            format!("; available {account} {}", available.unwrap_or_default())
        }
        Change::AccountCreated { .. } | Change::AccountClosed { .. } => String::new(),
    }
}
