//! The facts of the ledger: what happened, in the domain's own terms.
//!
//! How an event is spelled in the journal (key order, `prev`) belongs to
//! [`crate::journal::line`]; this module only says what an event is.
//! Text fields are `Cow` so that replay can borrow them from the line it is
//! reading instead of allocating.

use std::borrow::Cow;

use crate::money::Decimal;
use crate::time::At;

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
        }
    }

    /// Whether `account` is one of the accounts this change touches.
    pub fn involves(&self, account: &str) -> bool {
        match self {
            Change::AccountCreated { account: a, .. }
            | Change::MoneyDeposited { account: a, .. }
            | Change::MoneyWithdrawn { account: a, .. }
            | Change::AccountClosed { account: a } => a == account,
            Change::TransferCompleted { from, to, .. } => from == account || to == account,
        }
    }

    /// The amount moved, for the types that move money.
    pub fn amount(&self) -> Option<Decimal> {
        match self {
            Change::MoneyDeposited { amount, .. }
            | Change::MoneyWithdrawn { amount, .. }
            | Change::TransferCompleted { amount, .. } => Some(*amount),
            Change::AccountCreated { .. } | Change::AccountClosed { .. } => None,
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
    /// The idempotency key it was written with.
    pub id: Option<Cow<'a, str>>,
    /// The user's note.
    pub memo: Option<Cow<'a, str>>,
    /// On the first event of a multi-event append: how many events it wrote.
    pub batch: Option<u64>,
}
