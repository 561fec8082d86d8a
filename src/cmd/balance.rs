//! `ledger balance`.

use std::io::{self, Write};

use rustc_hash::FxHashMap;

use crate::cli::{AsOf, BalanceArgs};
use crate::cmd::{Context, ReplayFrom, replay};
use crate::domain::State;
use crate::error::Error;
use crate::event::Change;
use crate::money::Amount;
use crate::output::{self, BalanceReport, BalanceRow};
use crate::pattern;

/// Prints balances, as of the end or of `--as-of`.
pub fn run(ctx: &Context, args: &BalanceArgs) -> Result<(), Error> {
    let by_day;
    let state;
    let report = match args.as_of {
        Some(AsOf::Day(day)) => {
            let mut view = DayView::default();
            state = replay(&ctx.path, None, ReplayFrom::Start, |_, entry| {
                if entry.event.day(&ctx.zone) <= day {
                    view.add(&entry.event.change, entry.event.seq);
                }
                Ok(())
            })?;
            by_day = view;
            match chosen(&state, &args.accounts)? {
                Some(names) if names.is_empty() => {
                    BalanceReport::sorted(by_day.as_of_seq, Vec::new())
                }
                names => by_day.report(&state, names.as_deref().unwrap_or_default()),
            }
        }
        as_of => {
            state = replay(&ctx.path, as_of, ReplayFrom::Checkpoint, |_, _| Ok(()))?;
            match chosen(&state, &args.accounts)? {
                Some(names) if names.is_empty() => BalanceReport::sorted(state.seq(), Vec::new()),
                names => BalanceReport::of_state(&state, names.as_deref().unwrap_or_default()),
            }
        }
    };
    let mut out = io::stdout().lock();
    output::balances(&mut out, ctx.format, &report)?;
    Ok(out.flush()?)
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
            _ => {
                for (account, delta) in change.effects().into_iter().flatten() {
                    let balance = &mut self.entry(account).0;
                    // Rules in journal order bound every balance; by day a
                    // sum may only dip below zero, never past i128.
                    *balance = Amount(balance.0.saturating_add(delta.0));
                }
            }
        }
    }

    fn entry(&mut self, account: &str) -> &mut (Amount, bool) {
        self.accounts.entry(account.into()).or_default()
    }

    /// The report of `names` (every account with an event on or before
    /// the day, when empty); an account named that has none shows zero.
    fn report<'s>(&self, state: &'s State, names: &[&str]) -> BalanceReport<'s> {
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
                    account: name,
                    owner: a.owner.as_deref(),
                    unit: state.unit_of(a),
                    balance,
                    closed,
                }
            })
            .collect();
        BalanceReport::sorted(self.as_of_seq, rows)
    }
}
