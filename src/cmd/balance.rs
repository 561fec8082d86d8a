//! `ledger balance`.

mod streamed;

use std::io::{self, Write};

use rustc_hash::FxHashMap;

use crate::cli::{AsOf, BalanceArgs};
use crate::cmd::{Context, Load, ReplayFrom, replay, state_at};
use crate::domain::{Hold, State};
use crate::error::Error;
use crate::event::Change;
use crate::journal::JournalError;
use crate::money::Amount;
use crate::output::{self, BalanceReport, BalanceRow};
use crate::pattern;
use crate::time::{At, TimeError};

/// Prints balances, as of the end or of `--as-of`.
pub fn run(ctx: &Context, args: &BalanceArgs) -> Result<(), Error> {
    let by_day;
    let state;
    let report = match args.as_of {
        Some(AsOf::Day(day)) => {
            let mut view = DayView::default();
            state = replay(&ctx.path, ReplayFrom::Start, |_, entry| {
                if entry.event.day(ctx.zone()) <= day {
                    view.add(&entry.event.change, entry.event.seq);
                }
                Ok(())
            })?;
            by_day = view;
            match chosen(&state, &args.accounts)? {
                Some(names) if names.is_empty() => {
                    BalanceReport::sorted(by_day.as_of_seq, Vec::new())
                }
                // Holds are judged at the last instant of that day (SPEC 11).
                names => by_day.report(
                    &state,
                    names.as_deref().unwrap_or_default(),
                    ctx.zone().start_of(day.next()).pred(),
                ),
            }
        }
        // Every account now: streamed from the read model when it can.
        None if args.accounts.is_empty()
            && streamed::print(ctx, || Ok(At::now().map_err(clock)?))? =>
        {
            return Ok(());
        }
        as_of => {
            // Names alone need only their accounts; a pattern or no name, all.
            let load = match args.accounts.iter().any(|a| pattern::is_pattern(a)) {
                false if !args.accounts.is_empty() => Load::Accounts(&args.accounts),
                _ => Load::All,
            };
            let mut read = state_at(&ctx.path, as_of, load)?;
            // A name that is no account is refused with the names it may be
            // a typo of, which only every account can tell.
            if matches!(load, Load::Accounts(_))
                && args.accounts.iter().any(|a| read.account(a).is_none())
            {
                read = state_at(&ctx.path, as_of, Load::All)?;
            }
            state = read;
            // Holds are judged at the moment the balances describe.
            let at = match as_of {
                Some(AsOf::At(at)) => at,
                Some(AsOf::Seq(_)) => state.at().unwrap_or(At::now().map_err(clock)?),
                _ => At::now().map_err(clock)?,
            };
            match chosen(&state, &args.accounts)? {
                Some(names) if names.is_empty() => BalanceReport::sorted(state.seq(), Vec::new()),
                names => BalanceReport::of_state(&state, names.as_deref().unwrap_or_default(), at),
            }
        }
    };
    let mut out = io::stdout().lock();
    output::balances(&mut out, ctx.format, &report)?;
    Ok(out.flush()?)
}

fn clock(e: TimeError) -> JournalError {
    JournalError::io(
        std::path::Path::new("LEDGER_TEST_CLOCK"),
        "read the clock from",
        std::io::Error::new(std::io::ErrorKind::InvalidInput, e),
    )
}

/// The accounts the arguments name or match (SPEC 1 patterns); `None`
/// for every account, when none is given. A name the ledger has never
/// known is refused; a pattern may match none.
fn chosen<'s>(state: &'s State, args: &[String]) -> Result<Option<Vec<&'s str>>, Error> {
    if args.is_empty() {
        return Ok(None);
    }
    Ok(Some(pattern::select(state, args)?))
}

/// Balances by day (SPEC 9): the fold, in journal order, of the events on
/// or before a day, whatever came after them in the journal.
#[derive(Debug, Default)]
struct DayView {
    /// Per account that has an event among them: its balance and whether
    /// its close is among them.
    accounts: FxHashMap<Box<str>, (Amount, bool)>,
    /// Holds placed among them and not ended among them.
    holds: FxHashMap<u64, Hold>,
    as_of_seq: u64,
}

impl DayView {
    fn add(&mut self, change: &Change<'_>, seq: u64) {
        self.as_of_seq = self.as_of_seq.max(seq);
        match change {
            Change::AccountCreated { account, .. } => {
                self.entry(account);
            }
            Change::AccountClosed { account } => self.entry(account).1 = true,
            Change::FundsHeld {
                account,
                amount,
                to,
                expires,
            } => {
                self.entry(account);
                self.holds.insert(
                    seq,
                    Hold {
                        account: account.as_ref().into(),
                        amount: amount.units(),
                        to: to.as_deref().map(Into::into),
                        expires: *expires,
                    },
                );
            }
            Change::HoldReleased { hold, account } => {
                self.entry(account);
                self.holds.remove(hold);
            }
            Change::HoldCaptured { hold, .. } => {
                self.holds.remove(hold);
                self.add_effects(change);
            }
            _ => self.add_effects(change),
        }
    }

    fn add_effects(&mut self, change: &Change<'_>) {
        for (account, delta) in change.effects().into_iter().flatten() {
            let balance = &mut self.entry(account).0;
            // Rules in journal order bound every balance; by day a sum may
            // only dip below zero, never past i128.
            *balance = Amount(balance.0.saturating_add(delta.0));
        }
    }

    fn entry(&mut self, account: &str) -> &mut (Amount, bool) {
        self.accounts.entry(account.into()).or_default()
    }

    /// The report of `names` (every account with an event on or before
    /// the day, when empty); an account named that has none shows zero.
    /// Holds count if active at `at`.
    fn report<'s>(&self, state: &'s State, names: &[&str], at: At) -> BalanceReport<'s> {
        let mut held: FxHashMap<&str, Amount> = FxHashMap::default();
        for hold in self.holds.values().filter(|h| h.active_at(at)) {
            let sum = held.entry(&hold.account).or_insert(Amount::ZERO);
            *sum = Amount(sum.0.saturating_add(hold.amount.0));
        }
        let rows = state
            .accounts()
            .filter(|(name, _)| {
                if names.is_empty() {
                    self.accounts.contains_key(*name)
                } else {
                    names.contains(name)
                }
            })
            .map(|(name, a)| {
                let (balance, closed) = self.accounts.get(name).copied().unwrap_or_default();
                BalanceRow {
                    account: name.into(),
                    owner: a.owner().map(Into::into),
                    unit: state.unit_of(a),
                    balance,
                    held: held.get(name).copied().unwrap_or(Amount::ZERO),
                    closed,
                }
            })
            .collect();
        BalanceReport::sorted(self.as_of_seq, rows)
    }
}
