//! `create`, `deposit`, `withdraw`, `transfer`, `close`: one request, one
//! locked append.

use std::io::{self, Write};

use crate::cli::{Format, WriteCommand, WriteOpts};
use crate::cmd::Context;
use crate::domain::{Command, Request, State};
use crate::error::Error;
use crate::event::{Change, Event};
use crate::journal::line::{self, LineError};
use crate::journal::{JournalError, Outcome, Writer};
use crate::output;

/// The domain request a parsed write command stands for.
pub fn request(cmd: &WriteCommand) -> Request<'_> {
    let (command, opts): (Command<'_>, &WriteOpts) = match cmd {
        WriteCommand::Create(a) => (
            Command::Create {
                account: &a.account,
                owner: a.owner.as_deref(),
                currency: a.currency.as_deref(),
                decimals: a.decimals,
            },
            &a.opts,
        ),
        WriteCommand::Deposit(a) => (
            Command::Deposit {
                account: &a.account,
                amount: a.amount,
            },
            &a.opts,
        ),
        WriteCommand::Withdraw(a) => (
            Command::Withdraw {
                account: &a.account,
                amount: a.amount,
            },
            &a.opts,
        ),
        WriteCommand::Transfer(a) => (
            Command::Transfer {
                from: &a.from,
                to: &a.to,
                amount: a.amount,
            },
            &a.opts,
        ),
        WriteCommand::Close(a) => (
            Command::Close {
                account: &a.account,
            },
            &a.opts,
        ),
    };
    Request {
        command,
        id: opts.id.as_deref(),
        memo: opts.memo.as_deref(),
        expect_seq: opts.expect_seq,
    }
}

/// Commits what `writer` staged and reports a torn tail it removed.
pub fn commit(ctx: &Context, writer: &mut Writer) -> Result<(), Error> {
    let staged = writer.staged() > 0;
    writer.commit()?;
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

/// Runs one write command.
pub fn run(ctx: &Context, cmd: &WriteCommand) -> Result<(), Error> {
    let request = request(cmd);
    let mut writer = Writer::open(&ctx.path)?;
    let outcome = writer.apply(&request)?;
    commit(ctx, &mut writer)?;
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
/// failure is said on stderr, naming the seqs, when stderr works.
pub fn acknowledge(
    ctx: &Context,
    printed: Result<(), Error>,
    seqs: std::ops::RangeInclusive<u64>,
) -> Result<(), Error> {
    if let Err(e) = printed
        && e.exit_code() != crate::error::code::OK
    {
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
            let balances = balances_after(writer.state(), &event.change);
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
fn balances_after(state: &State, change: &Change<'_>) -> String {
    let one = |name: &str| {
        state
            .account(name)
            .map(|a| format!("{name} {}", output::money(a.balance, state.unit_of(a))))
            .unwrap_or_default()
    };
    match change {
        Change::MoneyDeposited { account, .. } | Change::MoneyWithdrawn { account, .. } => {
            format!("; balance {}", one(account))
        }
        Change::TransferCompleted { from, to, .. } => {
            format!("; balances {}, {}", one(from), one(to))
        }
        Change::AccountCreated { .. } | Change::AccountClosed { .. } => String::new(),
    }
}
