//! `ledger report`: opening, in, out and closing per account and period
//! (SPEC 12).

use std::io::{self, Write};

use clap::Args;

use crate::cli::{self, Bound, TagFilter};
use crate::cmd::{Context, ReplayFrom, replay};
use crate::error::Error;
use crate::output;
use crate::period::Period;
use crate::report::{Builder, Report, Spec};
use crate::time::{At, Day};

/// `report`.
#[derive(Debug, Clone, Args)]
pub struct ReportArgs {
    /// Accounts, or patterns such as 'cust:*' and acct? (all when none).
    #[arg(value_name = "ACCOUNT", value_parser = cli::account_or_pattern)]
    pub accounts: Vec<String>,
    /// Cut the range into calendar periods of the --tz zone (weeks start
    /// on Monday); one period when absent.
    #[arg(long, value_enum, value_name = "PERIOD")]
    pub by: Option<Period>,
    /// Start of the range: a date (events whose day is on or after it), or
    /// a timestamp; earlier events make the opening balance [default: the
    /// earliest day of the accounts' events].
    #[arg(long, value_name = "T", value_parser = cli::since)]
    pub since: Option<Bound>,
    /// End of the range: a date (events whose day is on or before it), or a
    /// timestamp [default: today].
    #[arg(long, value_name = "T", value_parser = cli::until)]
    pub until: Option<Bound>,
    /// Count only events with this tag (KEY=VALUE), or this key (KEY);
    /// repeatable, all must hold.
    #[arg(long = "tag", value_name = "KEY[=VALUE]", value_parser = cli::tag_filter)]
    pub tags: Vec<TagFilter>,
}

/// Prints the report.
pub fn run(ctx: &Context, args: &ReportArgs) -> Result<(), Error> {
    let spec = Spec {
        by: args.by,
        since: args.since,
        until: args.until,
        tags: args.tags.clone(),
    };
    let mut out = io::stdout().lock();
    with_report(ctx, &spec, &args.accounts, |report| {
        output::report::print(&mut out, ctx.format, report)?;
        Ok(out.flush()?)
    })
}

/// Builds the report of `accounts` in one pass over the journal and hands
/// it to `use_it` (it borrows the state the pass leaves).
pub fn with_report(
    ctx: &Context,
    spec: &Spec,
    accounts: &[String],
    use_it: impl FnOnce(&Report<'_>) -> Result<(), Error>,
) -> Result<(), Error> {
    let today = today(ctx)?;
    let mut builder = Builder::new(ctx.zone(), spec)?;
    let state = replay(&ctx.path, ReplayFrom::StartLocked, |_, entry| {
        Ok(builder.add(&entry.event)?)
    })?;
    let report = builder.finish(&state, accounts, today)?;
    use_it(&report)
}

/// Today in the zone: where a range that `--until` does not end ends.
fn today(ctx: &Context) -> Result<Day, Error> {
    let now = At::now().map_err(|e| Error::Usage(format!("cannot read the clock: {e}")))?;
    Ok(ctx.zone().day_of(now))
}
