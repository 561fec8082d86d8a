//! The facts of the ledger: what happened, in the domain's own terms.
//!
//! How an event is spelled in the journal (key order, `prev`) belongs to
//! [`crate::journal::line`]; this module only says what an event is.
//! Text fields are `Cow` so that replay can borrow them from the line it is
//! reading instead of allocating.

use std::borrow::Cow;

use crate::money::{Amount, Decimal};
use crate::time::{At, Day};

/// An event's tags: `(key, value)` pairs, keys in byte order, each once.
pub type Tags<'a> = Vec<(Cow<'a, str>, Cow<'a, str>)>;

/// What an event changed, with the fields of its type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change<'a> {
    /// An account was opened.
    AccountCreated {
        /// The account's name.
        account: Cow<'a, str>,
        /// Who holds it, if said.
        owner: Option<Cow<'a, str>>,
        /// Its currency code; `None` is a plain unit.
        currency: Option<Cow<'a, str>>,
        /// How many digits its amounts have after the point.
        decimals: u8,
    },
    /// Money came in from outside.
    MoneyDeposited {
        /// The account credited.
        account: Cow<'a, str>,
        /// How much, at the account's decimals.
        amount: Decimal,
    },
    /// Money went out.
    MoneyWithdrawn {
        /// The account debited.
        account: Cow<'a, str>,
        /// How much, at the account's decimals.
        amount: Decimal,
    },
    /// Money moved between two accounts of the same currency and decimals.
    TransferCompleted {
        /// The account debited.
        from: Cow<'a, str>,
        /// The account credited.
        to: Cow<'a, str>,
        /// How much, at the accounts' decimals.
        amount: Decimal,
    },
    /// An account with a zero balance was closed.
    AccountClosed {
        /// The account closed.
        account: Cow<'a, str>,
    },
    /// Money was reserved for a later capture (SPEC 11).
    FundsHeld {
        /// The account whose money is held.
        account: Cow<'a, str>,
        /// How much, at the account's decimals.
        amount: Decimal,
        /// The account a capture credits; `None`: a capture takes the money
        /// out of the ledger.
        to: Option<Cow<'a, str>>,
        /// When the hold lapses, if ever.
        expires: Option<At>,
    },
    /// A hold was captured: its money (or part of it) moved.
    HoldCaptured {
        /// The seq of the `FundsHeld` event.
        hold: u64,
        /// The account debited.
        account: Cow<'a, str>,
        /// The account credited, if any.
        to: Option<Cow<'a, str>>,
        /// How much moved.
        amount: Decimal,
    },
    /// A hold was released: its money is free again.
    HoldReleased {
        /// The seq of the `FundsHeld` event.
        hold: u64,
        /// The account whose money was held.
        account: Cow<'a, str>,
    },
}

impl Change<'_> {
    /// The event type's name as the journal spells it.
    pub fn type_name(&self) -> &'static str {
        match self {
            Change::AccountCreated { .. } => "AccountCreated",
            Change::MoneyDeposited { .. } => "MoneyDeposited",
            Change::MoneyWithdrawn { .. } => "MoneyWithdrawn",
            Change::TransferCompleted { .. } => "TransferCompleted",
            Change::AccountClosed { .. } => "AccountClosed",
            Change::FundsHeld { .. } => "FundsHeld",
            Change::HoldCaptured { .. } => "HoldCaptured",
            Change::HoldReleased { .. } => "HoldReleased",
        }
    }

    /// Whether `account` is one of the accounts this change touches.
    pub fn involves(&self, account: &str) -> bool {
        self.accounts().contains(&Some(account))
    }

    /// Every account this change touches, whether or not it moves money
    /// (a report counts an account's events of every type).
    pub fn accounts(&self) -> [Option<&str>; 2] {
        match self {
            Change::AccountCreated { account, .. }
            | Change::MoneyDeposited { account, .. }
            | Change::MoneyWithdrawn { account, .. }
            | Change::AccountClosed { account }
            | Change::HoldReleased { account, .. } => [Some(account), None],
            Change::TransferCompleted { from, to, .. } => [Some(from), Some(to)],
            Change::FundsHeld { account, to, .. } | Change::HoldCaptured { account, to, .. } => {
                [Some(account), to.as_deref()]
            }
        }
    }

    /// Each account whose balance this change moves, with the signed
    /// amount in minor units, in the places [`Change::accounts`] gives
    /// them (a transfer: the debit first).
    pub fn effects(&self) -> [Option<(&str, Amount)>; 2] {
        let neg = |a: Decimal| Amount(a.units().0.saturating_neg());
        match self {
            Change::MoneyDeposited { account, amount } => [Some((account, amount.units())), None],
            Change::MoneyWithdrawn { account, amount } => [Some((account, neg(*amount))), None],
            Change::TransferCompleted { from, to, amount } => {
                [Some((from, neg(*amount))), Some((to, amount.units()))]
            }
            Change::HoldCaptured {
                account,
                to,
                amount,
                ..
            } => [
                Some((account, neg(*amount))),
                to.as_deref().map(|to| (to, amount.units())),
            ],
            Change::AccountCreated { .. }
            | Change::AccountClosed { .. }
            | Change::FundsHeld { .. }
            | Change::HoldReleased { .. } => [None, None],
        }
    }

    /// The signed effect of this change on `account`'s balance.
    pub fn effect_on(&self, account: &str) -> Amount {
        self.effects()
            .into_iter()
            .flatten()
            .filter(|(a, _)| *a == account)
            .fold(Amount::ZERO, |sum, (_, x)| {
                Amount(sum.0.saturating_add(x.0))
            })
    }

    /// The same change, owning its text.
    pub fn into_owned(self) -> Change<'static> {
        let own = |c: Cow<'_, str>| Cow::Owned(c.into_owned());
        match self {
            Change::AccountCreated {
                account,
                owner,
                currency,
                decimals,
            } => Change::AccountCreated {
                account: own(account),
                owner: owner.map(own),
                currency: currency.map(own),
                decimals,
            },
            Change::MoneyDeposited { account, amount } => Change::MoneyDeposited {
                account: own(account),
                amount,
            },
            Change::MoneyWithdrawn { account, amount } => Change::MoneyWithdrawn {
                account: own(account),
                amount,
            },
            Change::TransferCompleted { from, to, amount } => Change::TransferCompleted {
                from: own(from),
                to: own(to),
                amount,
            },
            Change::AccountClosed { account } => Change::AccountClosed {
                account: own(account),
            },
            Change::FundsHeld {
                account,
                amount,
                to,
                expires,
            } => Change::FundsHeld {
                account: own(account),
                amount,
                to: to.map(own),
                expires,
            },
            Change::HoldCaptured {
                hold,
                account,
                to,
                amount,
            } => Change::HoldCaptured {
                hold,
                account: own(account),
                to: to.map(own),
                amount,
            },
            Change::HoldReleased { hold, account } => Change::HoldReleased {
                hold,
                account: own(account),
            },
        }
    }

    /// Its fields in a few words, for messages: `acct1 50.00`,
    /// `acct1 to acct2 10.25`.
    pub fn summary(&self) -> String {
        match self {
            Change::AccountCreated { account, .. } | Change::AccountClosed { account } => {
                account.to_string()
            }
            Change::MoneyDeposited { account, amount }
            | Change::MoneyWithdrawn { account, amount } => {
                format!("{account} {amount}")
            }
            Change::TransferCompleted { from, to, amount } => format!("{from} to {to} {amount}"),
            Change::FundsHeld {
                account, amount, ..
            } => format!("{account} {amount}"),
            Change::HoldCaptured {
                hold,
                account,
                amount,
                ..
            } => format!("hold {hold} of {account} {amount}"),
            Change::HoldReleased { hold, account } => format!("hold {hold} of {account}"),
        }
    }

    /// The amount moved, for the types that move money.
    pub fn amount(&self) -> Option<Decimal> {
        match self {
            Change::MoneyDeposited { amount, .. }
            | Change::MoneyWithdrawn { amount, .. }
            | Change::TransferCompleted { amount, .. }
            | Change::FundsHeld { amount, .. }
            | Change::HoldCaptured { amount, .. } => Some(*amount),
            Change::AccountCreated { .. }
            | Change::AccountClosed { .. }
            | Change::HoldReleased { .. } => None,
        }
    }
}

/// One event of the journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event<'a> {
    /// Its position: 1, 2, 3, … without gaps.
    pub seq: u64,
    /// When it was appended.
    pub at: At,
    /// What it changed.
    pub change: Change<'a>,
    /// The day it belongs to in the books, when given (SPEC 9).
    pub date: Option<Day>,
    /// The seq of the movement this event undoes (SPEC 10).
    pub reverses: Option<u64>,
    /// Its tags, keys in byte order.
    pub tags: Tags<'a>,
    /// The idempotency key it was written with.
    pub id: Option<Cow<'a, str>>,
    /// The user's note.
    pub memo: Option<Cow<'a, str>>,
    /// On the first event of a multi-event append: how many events it wrote.
    pub batch: Option<u64>,
}

impl<'a> Event<'a> {
    /// An event with none of the optional fields (no date, reversal, tags,
    /// id, memo or batch count).
    pub fn new(seq: u64, at: At, change: Change<'a>) -> Event<'a> {
        Event {
            seq,
            at,
            change,
            date: None,
            reverses: None,
            tags: Vec::new(),
            id: None,
            memo: None,
            batch: None,
        }
    }

    /// The day the event counts on: its book date, else the day of its
    /// `at` in `zone` (SPEC 9).
    pub fn day(&self, zone: &crate::time::Zone) -> Day {
        self.date.unwrap_or_else(|| zone.day_of(self.at))
    }

    /// The value of tag `key`, if the event has it.
    pub fn tag(&self, key: &str) -> Option<&str> {
        self.tags
            .binary_search_by(|(k, _)| k.as_ref().cmp(key))
            .ok()
            .map(|i| &*self.tags[i].1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a report adds up relies on it: each effect is on the account
    /// in the same place of `accounts()`.
    #[test]
    fn effects_are_in_the_places_of_the_accounts_touched() {
        let amount = Decimal::parse_positive("1.50").expect("amount");
        let name = |s: &'static str| Cow::Borrowed(s);
        let changes = [
            Change::AccountCreated {
                account: name("a"),
                owner: None,
                currency: None,
                decimals: 2,
            },
            Change::MoneyDeposited {
                account: name("a"),
                amount,
            },
            Change::MoneyWithdrawn {
                account: name("a"),
                amount,
            },
            Change::TransferCompleted {
                from: name("a"),
                to: name("b"),
                amount,
            },
            Change::AccountClosed { account: name("a") },
            Change::FundsHeld {
                account: name("a"),
                amount,
                to: Some(name("b")),
                expires: None,
            },
            Change::HoldCaptured {
                hold: 1,
                account: name("a"),
                to: Some(name("b")),
                amount,
            },
            Change::HoldCaptured {
                hold: 1,
                account: name("a"),
                to: None,
                amount,
            },
            Change::HoldReleased {
                hold: 1,
                account: name("a"),
            },
        ];
        for change in &changes {
            for (effect, account) in change.effects().into_iter().zip(change.accounts()) {
                if let Some((on, _)) = effect {
                    assert_eq!(Some(on), account, "{change:?}");
                }
            }
        }
    }
}
