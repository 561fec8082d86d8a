//! `balance` of every account, streamed from the read model: its pages
//! of accounts read 1,024 accounts at a time in name order, merged with the
//! accounts the lines after its head touched (replayed, as every command
//! replays them, into a partial state that holds only those). A million
//! accounts are never all in memory. The rows are checked as a load
//! checks them (digest, well-formedness, held money that adds up to the
//! holds on the account) and, in a first pass before anything is printed,
//! against the units' totals, so that a row lost to damage is seen as a
//! whole-state load sees it; then the full replay answers instead.

use std::borrow::Cow;
use std::cell::RefCell;
use std::cmp::Ordering;
use std::io::{self, Write};

use rustc_hash::FxHashMap;

use crate::cmd::{Context, warn_torn};
use crate::domain::{Account, Hold, State};
use crate::error::Error;
use crate::journal::scan::{Replay, Torn};
use crate::journal::{JournalError, ReadJournal};
use crate::money::Amount;
use crate::output::{self, BalanceRow, Totals};
use crate::readmodel::{self, ModelError, ReadModel};
use crate::time::At;

/// Accounts read from the model at a time.
const PAGE: usize = 1024;

/// Prints the balance of every account at the journal's end, with holds
/// judged at the instant `now` gives, as the full replay prints it;
/// `false` (having printed nothing) when the read model cannot answer:
/// none, one that does not cover the journal, or rows that do not add up.
pub(super) fn print(ctx: &Context, now: impl FnOnce() -> Result<At, Error>) -> Result<bool, Error> {
    let Some(journal) = ReadJournal::open(&ctx.path)? else {
        return Ok(false);
    };
    let Some((model, Some(head))) = journal.model() else {
        return Ok(false);
    };
    let Ok(state) = model.base(head) else {
        return Ok(false);
    };
    let mut replay = Replay::with_model(journal.scanner_from(head), state, &model);
    match replay.run() {
        Ok(()) => {}
        // A damaged model may make a good line look wrong: the full
        // replay judges it.
        Err(JournalError::Model(_) | JournalError::Corrupt { .. }) => return Ok(false),
        Err(e) => return Err(e.into()),
    }
    let (end, _, torn) = replay.finish();
    journal.unlock()?;
    let Ok(holds) = model.open_holds() else {
        return Ok(false);
    };
    let listing = Listing::new(&model, &end, &holds, now()?);
    let Some(totals) = listing.check() else {
        return Ok(false);
    };
    print_rows(ctx, &journal, torn, &listing, &totals)?;
    Ok(true)
}

/// Prints the listing (warning first about a torn tail, as a replay does).
fn print_rows(
    ctx: &Context,
    journal: &ReadJournal,
    torn: Option<Torn>,
    listing: &Listing<'_>,
    totals: &Totals<'_>,
) -> Result<(), Error> {
    if let Some(torn) = torn {
        warn_torn(journal.path(), torn);
    }
    let mut out = io::stdout().lock();
    let rows = || listing.rows();
    output::balances_with(&mut out, ctx.format, listing.end.seq(), totals, rows)?;
    // Rows checked in the first pass cannot change within the model's read
    // transaction: only a failing disk gets here.
    if let Some(e) = listing.failed.take() {
        let path = readmodel::path_of(&ctx.path);
        return Err(JournalError::io(&path, "read", io::Error::other(e)).into());
    }
    Ok(out.flush()?)
}

/// Every account at the journal's end, made on demand, as often as asked.
struct Listing<'m> {
    model: &'m ReadModel,
    /// The state at the journal's end: its units, and every account the
    /// lines after the model's head touched (newer than the model's rows).
    end: &'m State,
    /// The model's open holds, by the account they are on.
    holds: FxHashMap<&'m str, Vec<&'m Hold>>,
    /// When holds are judged.
    at: At,
    /// The first failure of the model while rows were being made.
    failed: RefCell<Option<ModelError>>,
}

/// One account, as the model has it or as the state at the end does.
enum Source<'m> {
    Model(String, Account),
    End(&'m str, &'m Account),
}

impl<'m> Listing<'m> {
    fn new(model: &'m ReadModel, end: &'m State, holds: &'m [(u64, Hold)], at: At) -> Self {
        let mut on: FxHashMap<&str, Vec<&Hold>> = FxHashMap::default();
        for (_, hold) in holds {
            on.entry(&hold.account).or_default().push(hold);
        }
        Listing {
            model,
            end,
            holds: on,
            at,
            failed: RefCell::new(None),
        }
    }

    /// The totals, if every row is one a load would accept and, per unit,
    /// the balances add up to the unit's total (a lost row shows there).
    fn check(&self) -> Option<Totals<'m>> {
        let units = self.end.units();
        let mut sums = vec![Amount::ZERO; units.len()];
        let mut totals = Totals::default();
        for source in self.sources(true) {
            let (unit, balance) = match &source {
                Source::Model(name, a) => {
                    self.end.check_cached(name, a).ok()?;
                    let on = self
                        .holds_on(name)
                        .try_fold(0i128, |sum, h| sum.checked_add(h.amount.0))?;
                    (on == a.held().0).then_some((a.unit, a.balance))?
                }
                Source::End(_, a) => (a.unit, a.balance),
            };
            let sum = sums.get_mut(unit as usize)?;
            *sum = sum.checked_add(balance)?;
            totals.add(&self.row(source)?);
        }
        let whole = units
            .iter()
            .zip(&sums)
            .all(|(u, sum)| u.held == *sum && u.deposited.checked_sub(u.withdrawn) == Some(u.held));
        (whole && self.failed.borrow().is_none()).then_some(totals)
    }

    /// The open holds the model has on account `name`.
    fn holds_on(&self, name: &str) -> impl Iterator<Item = &&'m Hold> {
        self.holds.get(name).into_iter().flatten()
    }

    /// Every account's row, in name order.
    fn rows(&self) -> impl Iterator<Item = BalanceRow<'m>> + '_ {
        self.sources(false).filter_map(|source| self.row(source))
    }

    /// The row of one account, its holds judged at `at` (as
    /// [`State::held_at`] judges them).
    fn row(&self, source: Source<'m>) -> Option<BalanceRow<'m>> {
        let row = match source {
            Source::End(name, a) => BalanceRow {
                account: Cow::Borrowed(name),
                owner: a.owner().map(Cow::Borrowed),
                unit: self.end.unit_of(a),
                balance: a.balance,
                held: self.end.held_at(a, self.at),
                closed: a.closed,
            },
            Source::Model(name, a) => {
                let lapsed = self
                    .holds_on(&name)
                    .filter(|h| h.expires.is_some() && !h.active_at(self.at))
                    .fold(0i128, |sum, h| sum.saturating_add(h.amount.0));
                BalanceRow {
                    owner: a.owner().map(|o| Cow::Owned(o.to_owned())),
                    unit: self.end.units().get(a.unit as usize)?,
                    balance: a.balance,
                    held: Amount(a.held().0.saturating_sub(lapsed)),
                    closed: a.closed,
                    account: Cow::Owned(name),
                }
            }
        };
        Some(row)
    }

    /// Every account, in name order: the model's, and where the lines
    /// after its head changed one (or made one the model lacks), the
    /// state's at the end. Not the accounts the replay only read from the
    /// model (with the page of one it changed, every account on it): as
    /// the model's, their held money is checked against the holds.
    /// The model's rows checked against their digests if `check` (the
    /// first pass).
    fn sources(&self, check: bool) -> impl Iterator<Item = Source<'m>> + '_ {
        let end = self.end;
        let mut ended = end
            .changed_accounts_by_name()
            .into_iter()
            .map(move |named| {
                let (name, _, account) = end.named_account(named);
                (name, account)
            })
            .peekable();
        let mut pages = Pages {
            model: self.model,
            after: String::new(),
            page: Vec::new().into_iter(),
            done: false,
            check,
            failed: &self.failed,
        }
        .peekable();
        std::iter::from_fn(move || {
            let order = match (pages.peek(), ended.peek()) {
                (Some((m, _)), Some((e, _))) => m.as_str().cmp(e),
                (Some(_), None) => Ordering::Less,
                (None, _) => Ordering::Greater,
            };
            if order == Ordering::Equal {
                pages.next();
            }
            match order {
                Ordering::Less => pages.next().map(|(n, a)| Source::Model(n, a)),
                _ => ended.next().map(|(n, a)| Source::End(n, a)),
            }
        })
    }
}

/// The model's accounts in name order, read a page at a time.
struct Pages<'a> {
    model: &'a ReadModel,
    /// The last name read.
    after: String,
    page: std::vec::IntoIter<(String, Account)>,
    done: bool,
    /// Whether rows are checked against their digests.
    check: bool,
    failed: &'a RefCell<Option<ModelError>>,
}

impl Iterator for Pages<'_> {
    type Item = (String, Account);

    fn next(&mut self) -> Option<(String, Account)> {
        if let Some(row) = self.page.next() {
            return Some(row);
        }
        if self.done {
            return None;
        }
        match self.model.accounts_after(&self.after, PAGE, self.check) {
            Ok(page) => {
                self.done = page.len() < PAGE;
                if let Some((name, _)) = page.last() {
                    self.after.clone_from(name);
                }
                self.page = page.into_iter();
                self.page.next()
            }
            Err(e) => {
                self.done = true;
                self.failed.borrow_mut().get_or_insert(e);
                None
            }
        }
    }
}
