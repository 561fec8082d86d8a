//! The rules of the ledger as a pure decider: [`decide`] turns a command into
//! the change it causes or a [`Rejection`]; [`evolve`] folds an event into the
//! [`State`]. No I/O happens here.
//!
//! Every path goes through these two functions: a write decides then evolves;
//! replay re-decides each stored event ([`check`]) before evolving, so a
//! journal can only hold what the commands themselves would have written.

use rustc_hash::FxHashMap;
use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use crate::event::{Change, Event};
use crate::input::{self, InputError};
use crate::money::{Amount, AmountError, Decimal};

/// An account as the ledger knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    /// Who holds it, if said.
    pub owner: Option<Box<str>>,
    /// Index of its currency and decimals in [`State::units`].
    pub unit: usize,
    /// Its balance in minor units; never negative.
    pub balance: Amount,
    /// Closed accounts accept no movement.
    pub closed: bool,
}

/// A currency with its decimals, and the money that went through it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unit {
    /// The currency code; `None` is a plain unit.
    pub currency: Option<Box<str>>,
    /// Digits after the point.
    pub decimals: u8,
    /// All money ever deposited.
    pub deposited: Amount,
    /// All money ever withdrawn.
    pub withdrawn: Amount,
    /// The sum of the balances: always `deposited - withdrawn`.
    pub held: Amount,
}

/// Everything the rules need to know, built by folding events with [`evolve`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    // Fx hashing: replay looks accounts up several times per event, and
    // SipHash's flooding resistance buys nothing for a local file.
    accounts: FxHashMap<Box<str>, Account>,
    units: Vec<Unit>,
    ids: FxHashMap<Box<str>, u64>,
    seq: u64,
    #[serde(skip)]
    unit_index: UnitIndex,
}

/// Where each (currency, decimals) is in [`State::units`], so that opening
/// an account finds its unit without a scan (many currencies made creating
/// accounts quadratic). Derived from `units`, so it is not stored in a
/// checkpoint; [`evolve`] rebuilds it when it lags behind (after a load).
#[derive(Debug, Clone, Default)]
struct UnitIndex(FxHashMap<(Option<Box<str>>, u8), usize>);

impl PartialEq for UnitIndex {
    /// Always equal: the index only mirrors `units`, which is compared.
    fn eq(&self, _: &UnitIndex) -> bool {
        true
    }
}

impl Eq for UnitIndex {}

impl State {
    /// The seq of the last event folded in (0 for none).
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// The account of that name.
    pub fn account(&self, name: &str) -> Option<&Account> {
        self.accounts.get(name)
    }

    /// Every account, in no particular order.
    pub fn accounts(&self) -> impl Iterator<Item = (&str, &Account)> {
        self.accounts.iter().map(|(k, v)| (&**k, v))
    }

    /// The currencies in order of first use.
    pub fn units(&self) -> &[Unit] {
        &self.units
    }

    /// The unit (currency and decimals) of an account.
    pub fn unit_of(&self, account: &Account) -> &Unit {
        &self.units[account.unit]
    }

    /// The seq of the event written with this `--id`.
    pub fn id_seq(&self, id: &str) -> Option<u64> {
        self.ids.get(id).copied()
    }

    /// The first way this state breaks the ledger's invariants, if any:
    /// every name, owner, id, currency and decimals one the input rules
    /// accept (see [`State::malformed`]), every account in a known unit, no
    /// negative balance, and per unit held = deposited - withdrawn = the sum
    /// of the balances. A state folded by [`evolve`] from decided events
    /// always holds them; `verify` checks them, and a checkpoint that breaks
    /// them is not trusted.
    pub fn inconsistency(&self) -> Option<String> {
        if let Some(problem) = self.malformed() {
            return Some(problem);
        }
        let mut sums = vec![Amount::ZERO; self.units.len()];
        for (name, account) in &self.accounts {
            let Some(sum) = sums.get_mut(account.unit) else {
                return Some(format!("account {name} has no currency"));
            };
            if account.balance < Amount::ZERO {
                return Some(format!("account {name} has a negative balance"));
            }
            match sum.checked_add(account.balance) {
                Some(total) => *sum = total,
                None => {
                    return Some(format!(
                        "the balances of {} overflow",
                        unit_name(&self.units[account.unit])
                    ));
                }
            }
        }
        if let Some((id, seq)) = self.ids.iter().find(|(_, seq)| **seq > self.seq) {
            return Some(format!(
                "id {id} is recorded at seq {seq}, after the last event"
            ));
        }
        self.units.iter().zip(sums).find_map(|(unit, sum)| {
            let expected = unit.deposited.checked_sub(unit.withdrawn);
            (expected != Some(unit.held) || sum != unit.held).then(|| {
                format!(
                    "totals of {} do not add up: deposited {}, withdrawn {}, held {}, balances {}",
                    unit_name(unit),
                    unit.deposited.display(unit.decimals),
                    unit.withdrawn.display(unit.decimals),
                    unit.held.display(unit.decimals),
                    sum.display(unit.decimals)
                )
            })
        })
    }

    /// A value no command could have put in the state: the check that
    /// keeps a hand-edited checkpoint (decimals 19, a name with a space)
    /// from reaching a writer, which would then append lines nothing reads.
    fn malformed(&self) -> Option<String> {
        for (name, account) in &self.accounts {
            let owner = account.owner.as_deref().map_or(Ok(()), input::owner);
            if let Err(e) = input::account(name).and(owner) {
                return Some(e.to_string());
            }
        }
        if let Some(id) = self.ids.keys().find(|id| input::key(id).is_err()) {
            return Some(format!("'{id}' is not a valid id"));
        }
        let mut seen = rustc_hash::FxHashSet::default();
        for unit in &self.units {
            let currency = unit.currency.as_deref().map_or(Ok(()), input::currency);
            if let Err(e) = currency.and(input::decimals(unit.decimals)) {
                return Some(e.to_string());
            }
            if !seen.insert((unit.currency.as_deref(), unit.decimals)) {
                return Some(format!("{} is listed twice", unit_name(unit)));
            }
            if [unit.deposited, unit.withdrawn, unit.held]
                .iter()
                .any(|a| *a < Amount::ZERO)
            {
                return Some(format!("the totals of {} are negative", unit_name(unit)));
            }
        }
        None
    }
}

/// A write, as typed by a user or read back from an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command<'a> {
    /// Open an account.
    Create {
        /// Its name.
        account: &'a str,
        /// Who holds it.
        owner: Option<&'a str>,
        /// Its currency code.
        currency: Option<&'a str>,
        /// Digits after the point.
        decimals: u8,
    },
    /// Money in from outside.
    Deposit {
        /// The account.
        account: &'a str,
        /// How much, as typed.
        amount: Decimal,
    },
    /// Money out.
    Withdraw {
        /// The account.
        account: &'a str,
        /// How much, as typed.
        amount: Decimal,
    },
    /// Move money between two accounts.
    Transfer {
        /// Debited.
        from: &'a str,
        /// Credited.
        to: &'a str,
        /// How much, as typed.
        amount: Decimal,
    },
    /// Close an account with a zero balance.
    Close {
        /// The account.
        account: &'a str,
    },
}

/// A command with the options every write takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request<'a> {
    /// What to do.
    pub command: Command<'a>,
    /// Idempotency key.
    pub id: Option<&'a str>,
    /// The user's note.
    pub memo: Option<&'a str>,
    /// Append only if the last seq is still this.
    pub expect_seq: Option<u64>,
}

impl<'a> Request<'a> {
    /// The request that would have produced `event` (with no `--expect-seq`).
    pub fn of_event(event: &'a Event<'_>) -> Request<'a> {
        let command = match &event.change {
            Change::AccountCreated {
                account,
                owner,
                currency,
                decimals,
            } => Command::Create {
                account,
                owner: owner.as_deref(),
                currency: currency.as_deref(),
                decimals: *decimals,
            },
            Change::MoneyDeposited { account, amount } => Command::Deposit {
                account,
                amount: *amount,
            },
            Change::MoneyWithdrawn { account, amount } => Command::Withdraw {
                account,
                amount: *amount,
            },
            Change::TransferCompleted { from, to, amount } => Command::Transfer {
                from,
                to,
                amount: *amount,
            },
            Change::AccountClosed { account } => Command::Close { account },
        };
        Request {
            command,
            id: event.id.as_deref(),
            memo: event.memo.as_deref(),
            expect_seq: None,
        }
    }

    /// Checks the input rules that need no state.
    fn validate(&self) -> Result<(), InputError> {
        if let Some(id) = self.id {
            input::key(id)?;
        }
        if let Some(memo) = self.memo {
            input::memo(memo)?;
        }
        if let Command::Create {
            account,
            owner,
            currency,
            decimals,
        } = self.command
        {
            input::account(account)?;
            owner.map(input::owner).transpose()?;
            currency.map(input::currency).transpose()?;
            input::decimals(decimals)?;
        }
        Ok(())
    }
}

/// What a valid request leads to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision<'a> {
    /// Append this change.
    Append(Change<'a>),
    /// The request's `--id` was already used by the event at this seq: a
    /// repeat if it is the same command, else refused ([`settle_repeat`]).
    Repeat {
        /// Where the id was used.
        seq: u64,
    },
}

/// Why the ledger refuses a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// An argument breaks an input rule (a usage error, not a rule of the ledger).
    #[error(transparent)]
    Input(#[from] InputError),
    /// An amount that does not fit the account it is for (a usage error).
    #[error("invalid amount for {account}: {source}")]
    Amount {
        /// The account.
        account: String,
        /// What is wrong with it.
        source: AmountError,
    },
    /// No account of that name.
    #[error("unknown account {0}")]
    UnknownAccount(String),
    /// `create` of a name already taken.
    #[error("account {0} already exists")]
    DuplicateAccount(String),
    /// A movement on a closed account.
    #[error("account {0} is closed")]
    Closed(String),
    /// Not enough money.
    #[error("insufficient funds in {account}: balance {balance}, {what} {amount}")]
    InsufficientFunds {
        /// The account.
        account: String,
        /// Its balance, formatted.
        balance: String,
        /// `withdrawal` or `transfer`.
        what: &'static str,
        /// The amount asked, formatted.
        amount: String,
    },
    /// A transfer between different currencies or decimals.
    #[error("currency mismatch: {from} holds {from_unit}, {to} holds {to_unit}")]
    CurrencyMismatch {
        /// Debited account.
        from: String,
        /// Its currency and decimals.
        from_unit: String,
        /// Credited account.
        to: String,
        /// Its currency and decimals.
        to_unit: String,
    },
    /// A transfer from an account to itself.
    #[error("cannot transfer from {0} to itself")]
    SelfTransfer(String),
    /// `close` of an account that still holds money.
    #[error("cannot close {account}: its balance is {balance}, not zero")]
    NonZeroBalance {
        /// The account.
        account: String,
        /// Its balance, formatted.
        balance: String,
    },
    /// A balance or total would exceed what an i128 of minor units holds.
    #[error("amount {amount} would overflow the {what}")]
    Overflow {
        /// What would overflow.
        what: String,
        /// The amount, formatted.
        amount: String,
    },
    /// `--id` reused for a different command.
    #[error("id {id} was already used at seq {seq} for a different command")]
    IdReused {
        /// The key.
        id: String,
        /// Where it was used.
        seq: u64,
    },
    /// A stored event reuses an id (ids are unique across the journal).
    #[error("id {id} was already used at seq {seq}")]
    DuplicateId {
        /// The key.
        id: String,
        /// Where it was first used.
        seq: u64,
    },
    /// `--expect-seq` no longer holds.
    #[error("journal moved on: last seq is {last}, expected {expected}")]
    MovedOn {
        /// The journal's last seq.
        last: u64,
        /// What the caller expected.
        expected: u64,
    },
}

/// Decides what a request does to the ledger in `state`.
///
/// Order of checks (SPEC 3): input rules, then the `--id` repeat check, then
/// `--expect-seq`, then the ledger's rules.
pub fn decide<'a>(state: &State, request: &Request<'a>) -> Result<Decision<'a>, Rejection> {
    request.validate()?;
    if let Some(seq) = request.id.and_then(|id| state.id_seq(id)) {
        return Ok(Decision::Repeat { seq });
    }
    if let Some(expected) = request.expect_seq
        && expected != state.seq
    {
        return Err(Rejection::MovedOn {
            last: state.seq,
            expected,
        });
    }
    let change = match request.command {
        Command::Create {
            account,
            owner,
            currency,
            decimals,
        } => {
            if state.accounts.contains_key(account) {
                return Err(Rejection::DuplicateAccount(account.to_owned()));
            }
            Change::AccountCreated {
                account: account.into(),
                owner: owner.map(Cow::Borrowed),
                currency: currency.map(Cow::Borrowed),
                decimals,
            }
        }
        Command::Deposit { account, amount } => {
            let (acct, unit) = open_account(state, account)?;
            let amount = to_minor(account, amount, unit.decimals)?;
            let overflow = |what: &str| overflow(what, amount, unit.decimals);
            acct.balance
                .checked_add(amount)
                .ok_or_else(|| overflow(&format!("balance of {account}")))?;
            unit.held
                .checked_add(amount)
                .ok_or_else(|| overflow(&format!("total held in {}", unit_name(unit))))?;
            unit.deposited
                .checked_add(amount)
                .ok_or_else(|| overflow(&format!("total deposited in {}", unit_name(unit))))?;
            Change::MoneyDeposited {
                account: account.into(),
                amount: Decimal::new(amount, unit.decimals),
            }
        }
        Command::Withdraw { account, amount } => {
            let (acct, unit) = open_account(state, account)?;
            let amount = to_minor(account, amount, unit.decimals)?;
            ensure_funds(account, acct, unit, amount, "withdrawal")?;
            unit.withdrawn.checked_add(amount).ok_or_else(|| {
                overflow(
                    &format!("total withdrawn in {}", unit_name(unit)),
                    amount,
                    unit.decimals,
                )
            })?;
            Change::MoneyWithdrawn {
                account: account.into(),
                amount: Decimal::new(amount, unit.decimals),
            }
        }
        Command::Transfer { from, to, amount } => {
            if from == to {
                return Err(Rejection::SelfTransfer(from.to_owned()));
            }
            let (src, src_unit) = open_account(state, from)?;
            let (dst, dst_unit) = open_account(state, to)?;
            if src.unit != dst.unit {
                return Err(Rejection::CurrencyMismatch {
                    from: from.to_owned(),
                    from_unit: unit_name(src_unit),
                    to: to.to_owned(),
                    to_unit: unit_name(dst_unit),
                });
            }
            let amount = to_minor(from, amount, src_unit.decimals)?;
            ensure_funds(from, src, src_unit, amount, "transfer")?;
            dst.balance
                .checked_add(amount)
                .ok_or_else(|| overflow(&format!("balance of {to}"), amount, dst_unit.decimals))?;
            Change::TransferCompleted {
                from: from.into(),
                to: to.into(),
                amount: Decimal::new(amount, src_unit.decimals),
            }
        }
        Command::Close { account } => {
            let (acct, unit) = open_account(state, account)?;
            if acct.balance != Amount::ZERO {
                return Err(Rejection::NonZeroBalance {
                    account: account.to_owned(),
                    balance: acct.balance.display(unit.decimals).to_string(),
                });
            }
            Change::AccountClosed {
                account: account.into(),
            }
        }
    };
    Ok(Decision::Append(change))
}

/// Checks that a stored event was valid when it was appended: deciding the
/// request it records must give back exactly its change.
///
/// Returns the change the rules produce; the caller compares it with what is
/// stored, since only it knows how to word a difference in the file's terms.
pub fn check<'e>(state: &State, event: &'e Event<'_>) -> Result<Change<'e>, Rejection> {
    match decide(state, &Request::of_event(event))? {
        Decision::Append(change) => Ok(change),
        Decision::Repeat { seq } => Err(Rejection::DuplicateId {
            id: event.id.as_deref().unwrap_or_default().to_owned(),
            seq,
        }),
    }
}

/// Settles a [`Decision::Repeat`]: given the stored event that used the
/// request's `--id`, the request is a retry (`Ok`, nothing to append) if it
/// is the same command, and refused otherwise (SPEC 3).
pub fn settle_repeat(
    state: &State,
    existing: &Event<'_>,
    request: &Request<'_>,
) -> Result<(), Rejection> {
    if is_same_command(state, existing, request)? {
        Ok(())
    } else {
        Err(Rejection::IdReused {
            id: request.id.unwrap_or_default().to_owned(),
            seq: existing.seq,
        })
    }
}

/// Whether `request` is the same command as the stored `existing` event:
/// same type and fields (amounts by value), same memo.
fn is_same_command(
    state: &State,
    existing: &Event<'_>,
    request: &Request<'_>,
) -> Result<bool, Rejection> {
    let same_amount = |account: &str, stored: Decimal, typed: Decimal| {
        let decimals = state
            .account(account)
            .map_or(stored.scale(), |a| state.unit_of(a).decimals);
        Ok::<_, Rejection>(to_minor(account, typed, decimals)? == stored.units())
    };
    let same = match (&existing.change, &request.command) {
        (
            Change::AccountCreated {
                account,
                owner,
                currency,
                decimals,
            },
            Command::Create {
                account: a,
                owner: o,
                currency: c,
                decimals: d,
            },
        ) => account == a && owner.as_deref() == *o && currency.as_deref() == *c && decimals == d,
        (
            Change::MoneyDeposited { account, amount },
            Command::Deposit {
                account: a,
                amount: m,
            },
        )
        | (
            Change::MoneyWithdrawn { account, amount },
            Command::Withdraw {
                account: a,
                amount: m,
            },
        ) => account == a && same_amount(account, *amount, *m)?,
        (
            Change::TransferCompleted { from, to, amount },
            Command::Transfer {
                from: f,
                to: t,
                amount: m,
            },
        ) => from == f && to == t && same_amount(from, *amount, *m)?,
        (Change::AccountClosed { account }, Command::Close { account: a }) => account == a,
        _ => false,
    };
    Ok(same && existing.memo.as_deref() == request.memo)
}

/// Folds one event into the state. The event must have passed [`decide`]
/// (as every write and every replayed line does), so the arithmetic below
/// cannot overflow; it saturates rather than panic all the same.
pub fn evolve(state: &mut State, event: &Event<'_>) {
    state.seq = event.seq;
    if let Some(id) = &event.id {
        state.ids.insert(id.as_ref().into(), event.seq);
    }
    match &event.change {
        Change::AccountCreated {
            account,
            owner,
            currency,
            decimals,
        } => {
            if state.unit_index.0.len() != state.units.len() {
                state.unit_index.0 = (state.units.iter().enumerate())
                    .map(|(i, u)| ((u.currency.clone(), u.decimals), i))
                    .collect();
            }
            let key = (currency.as_deref().map(Box::from), *decimals);
            let unit = match state.unit_index.0.get(&key) {
                Some(&i) => i,
                None => {
                    state.unit_index.0.insert(key, state.units.len());
                    state.units.push(Unit {
                        currency: currency.as_deref().map(Into::into),
                        decimals: *decimals,
                        deposited: Amount::ZERO,
                        withdrawn: Amount::ZERO,
                        held: Amount::ZERO,
                    });
                    state.units.len() - 1
                }
            };
            state.accounts.insert(
                account.as_ref().into(),
                Account {
                    owner: owner.as_deref().map(Into::into),
                    unit,
                    balance: Amount::ZERO,
                    closed: false,
                },
            );
        }
        Change::MoneyDeposited { account, amount } => {
            let amount = amount.units();
            if let Some(unit) = credit(state, account, amount) {
                let u = &mut state.units[unit];
                u.deposited = add(u.deposited, amount);
                u.held = add(u.held, amount);
            }
        }
        Change::MoneyWithdrawn { account, amount } => {
            let amount = amount.units();
            if let Some(unit) = credit(state, account, Amount(amount.0.saturating_neg())) {
                let u = &mut state.units[unit];
                u.withdrawn = add(u.withdrawn, amount);
                u.held = add(u.held, Amount(amount.0.saturating_neg()));
            }
        }
        Change::TransferCompleted { from, to, amount } => {
            let amount = amount.units();
            credit(state, from, Amount(amount.0.saturating_neg()));
            credit(state, to, amount);
        }
        Change::AccountClosed { account } => {
            if let Some(acct) = state.accounts.get_mut(&**account) {
                acct.closed = true;
            }
        }
    }
}

/// Adds `amount` (negative to debit) to an account; returns its unit.
fn credit(state: &mut State, account: &str, amount: Amount) -> Option<usize> {
    let acct = state.accounts.get_mut(account)?;
    acct.balance = add(acct.balance, amount);
    Some(acct.unit)
}

fn add(a: Amount, b: Amount) -> Amount {
    Amount(a.0.saturating_add(b.0))
}

/// A human name for a unit: `EUR (2 decimals)`, `plain units (0 decimals)`.
pub fn unit_name(unit: &Unit) -> String {
    format!(
        "{} ({} decimals)",
        unit.currency.as_deref().unwrap_or("plain units"),
        unit.decimals
    )
}

fn open_account<'s>(state: &'s State, name: &str) -> Result<(&'s Account, &'s Unit), Rejection> {
    let acct = state
        .account(name)
        .ok_or_else(|| Rejection::UnknownAccount(name.to_owned()))?;
    if acct.closed {
        return Err(Rejection::Closed(name.to_owned()));
    }
    Ok((acct, state.unit_of(acct)))
}

fn to_minor(account: &str, amount: Decimal, decimals: u8) -> Result<Amount, Rejection> {
    amount
        .to_minor(decimals)
        .map_err(|source| Rejection::Amount {
            account: account.to_owned(),
            source,
        })
}

fn ensure_funds(
    name: &str,
    acct: &Account,
    unit: &Unit,
    amount: Amount,
    what: &'static str,
) -> Result<(), Rejection> {
    if acct.balance < amount {
        return Err(Rejection::InsufficientFunds {
            account: name.to_owned(),
            balance: acct.balance.display(unit.decimals).to_string(),
            what,
            amount: amount.display(unit.decimals).to_string(),
        });
    }
    Ok(())
}

fn overflow(what: &str, amount: Amount, decimals: u8) -> Rejection {
    Rejection::Overflow {
        what: what.to_owned(),
        amount: amount.display(decimals).to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::At;

    /// Given these requests succeeded, when `request` is decided, then …
    fn given(requests: &[Request<'_>]) -> State {
        let mut state = State::default();
        for request in requests {
            match decide(&state, request) {
                Ok(Decision::Append(change)) => {
                    let event = Event {
                        seq: state.seq + 1,
                        at: At::parse_canonical("2026-11-26T00:00:00.000000Z").unwrap(),
                        change,
                        id: request.id.map(Cow::Borrowed),
                        memo: request.memo.map(Cow::Borrowed),
                        batch: None,
                    };
                    evolve(&mut state, &event);
                }
                other => panic!("given {request:?} failed: {other:?}"),
            }
        }
        state
    }

    fn req(command: Command<'_>) -> Request<'_> {
        Request {
            command,
            id: None,
            memo: None,
            expect_seq: None,
        }
    }

    fn create<'a>(account: &'a str, currency: Option<&'a str>) -> Request<'a> {
        req(Command::Create {
            account,
            owner: None,
            currency,
            decimals: 2,
        })
    }

    fn dec(text: &str) -> Decimal {
        Decimal::parse_positive(text).unwrap()
    }

    fn deposit(account: &str, amount: &str) -> Request<'static> {
        let account: &'static str = Box::leak(account.to_owned().into_boxed_str());
        req(Command::Deposit {
            account,
            amount: dec(amount),
        })
    }

    #[test]
    fn deposit_scales_to_the_account_decimals() {
        let state = given(&[create("a", None)]);
        let d = decide(&state, &deposit("a", "50.5")).unwrap();
        assert_eq!(
            d,
            Decision::Append(Change::MoneyDeposited {
                account: "a".into(),
                amount: Decimal::new(Amount(5050), 2)
            })
        );
    }

    #[test]
    fn withdraw_never_goes_below_zero() {
        let state = given(&[create("a", None), deposit("a", "20")]);
        let r = decide(
            &state,
            &req(Command::Withdraw {
                account: "a",
                amount: dec("50"),
            }),
        );
        assert_eq!(
            r.unwrap_err().to_string(),
            "insufficient funds in a: balance 20.00, withdrawal 50.00"
        );
    }

    #[test]
    fn transfer_rules() {
        let state = given(&[
            create("a", None),
            create("b", None),
            create("e", Some("EUR")),
            deposit("a", "10"),
        ]);
        let t = |from, to| {
            decide(
                &state,
                &req(Command::Transfer {
                    from,
                    to,
                    amount: dec("1"),
                }),
            )
        };
        assert!(matches!(
            t("a", "e"),
            Err(Rejection::CurrencyMismatch { .. })
        ));
        assert!(matches!(t("a", "a"), Err(Rejection::SelfTransfer(_))));
        assert!(matches!(t("a", "zz"), Err(Rejection::UnknownAccount(_))));
        assert!(matches!(
            t("b", "a"),
            Err(Rejection::InsufficientFunds { .. })
        ));
        assert!(matches!(t("a", "b"), Ok(Decision::Append(_))));
    }

    #[test]
    fn close_needs_zero_and_then_refuses_movement() {
        let state = given(&[create("a", None), deposit("a", "1")]);
        let close = req(Command::Close { account: "a" });
        assert!(matches!(
            decide(&state, &close),
            Err(Rejection::NonZeroBalance { .. })
        ));
        let state = given(&[create("a", None), close.clone()]);
        assert!(matches!(
            decide(&state, &deposit("a", "1")),
            Err(Rejection::Closed(_))
        ));
        assert!(matches!(decide(&state, &close), Err(Rejection::Closed(_))));
        assert!(matches!(
            decide(&state, &create("a", None)),
            Err(Rejection::DuplicateAccount(_))
        ));
    }

    #[test]
    fn id_repeat_comes_before_every_other_rule() {
        let mut first = deposit("a", "5");
        first.id = Some("k");
        let state = given(&[
            create("a", None),
            first.clone(),
            req(Command::Withdraw {
                account: "a",
                amount: dec("5"),
            }),
            req(Command::Close { account: "a" }),
        ]);
        // The account is closed now, and the retry would not pass the rules:
        // it is still a repeat.
        first.expect_seq = Some(0);
        assert_eq!(decide(&state, &first), Ok(Decision::Repeat { seq: 2 }));
    }

    #[test]
    fn same_command_compares_amounts_by_value() {
        let mut first = deposit("a", "5");
        first.id = Some("k");
        let state = given(&[create("a", None), first.clone()]);
        let stored = Event {
            seq: 2,
            at: At::parse_canonical("2026-11-26T00:00:00.000000Z").unwrap(),
            change: Change::MoneyDeposited {
                account: "a".into(),
                amount: Decimal::new(Amount(500), 2),
            },
            id: Some("k".into()),
            memo: None,
            batch: None,
        };
        let mut again = deposit("a", "5.00");
        again.id = Some("k");
        assert_eq!(is_same_command(&state, &stored, &again), Ok(true));
        again.memo = Some("different");
        assert_eq!(is_same_command(&state, &stored, &again), Ok(false));
        let mut other = deposit("a", "6");
        other.id = Some("k");
        assert_eq!(is_same_command(&state, &stored, &other), Ok(false));
    }

    #[test]
    fn expect_seq_is_checked_against_the_last_seq() {
        let state = given(&[create("a", None)]);
        let mut d = deposit("a", "1");
        d.expect_seq = Some(0);
        assert_eq!(
            decide(&state, &d).unwrap_err().to_string(),
            "journal moved on: last seq is 1, expected 0"
        );
        d.expect_seq = Some(1);
        assert!(decide(&state, &d).is_ok());
    }

    #[test]
    fn overflow_of_a_balance_is_a_rejection() {
        let max = i128::MAX.to_string();
        let state = given(&[
            req(Command::Create {
                account: "a",
                owner: None,
                currency: None,
                decimals: 0,
            }),
            deposit("a", &max),
        ]);
        assert!(matches!(
            decide(&state, &deposit("a", "1")),
            Err(Rejection::Overflow { .. })
        ));
    }

    #[test]
    fn a_folded_state_is_consistent_and_tampering_is_seen() {
        let mut state = given(&[create("a", None), deposit("a", "10")]);
        assert_eq!(state.inconsistency(), None);
        state.accounts.get_mut("a").unwrap().balance = Amount(999);
        assert!(state.inconsistency().unwrap().contains("do not add up"));
        state.accounts.get_mut("a").unwrap().unit = 7;
        assert!(state.inconsistency().unwrap().contains("no currency"));
    }

    #[test]
    fn evolve_keeps_totals() {
        let state = given(&[
            create("a", None),
            create("b", None),
            deposit("a", "10"),
            req(Command::Transfer {
                from: "a",
                to: "b",
                amount: dec("4"),
            }),
            req(Command::Withdraw {
                account: "b",
                amount: dec("1"),
            }),
        ]);
        let u = &state.units()[0];
        assert_eq!(
            (u.deposited, u.withdrawn, u.held),
            (Amount(1000), Amount(100), Amount(900))
        );
        assert_eq!(state.account("a").unwrap().balance, Amount(600));
        assert_eq!(state.account("b").unwrap().balance, Amount(300));
    }
}
