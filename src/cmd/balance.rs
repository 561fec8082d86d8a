//! `ledger balance`.

use std::io::{self, Write};

use crate::cli::BalanceArgs;
use crate::cmd::{Context, ReplayFrom, replay};
use crate::error::Error;
use crate::output;

/// Prints balances, as of the end or of `--as-of`.
pub fn run(ctx: &Context, args: &BalanceArgs) -> Result<(), Error> {
    let state = replay(&ctx.path, args.as_of, ReplayFrom::Checkpoint, |_, _| Ok(()))?;
    let names: Vec<&str> = args.accounts.iter().map(String::as_str).collect();
    if let Some(missing) = names.iter().find(|n| state.account(n).is_none()) {
        return Err(state.unknown_account(missing).into());
    }
    let mut out = io::stdout().lock();
    output::balances(&mut out, ctx.format, &state, &names)?;
    Ok(out.flush()?)
}
