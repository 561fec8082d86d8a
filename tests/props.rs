//! Property test: random command sequences, run through the real journal
//! layer (lock, append, fsync, replay), against a tiny reference model.
//! Replay must equal the model, money must be conserved, and no balance may
//! ever be negative.

use std::collections::BTreeMap;

use ledger::cmd::{ReplayFrom, replay};
use ledger::domain::{Command, Rejection, Request};
use ledger::journal::{Outcome, WriteError, Writer};
use ledger::money::Decimal;
use proptest::prelude::*;

const ACCOUNTS: [&str; 4] = ["a", "b", "c", "d"];

#[derive(Debug, Clone)]
enum Op {
    Create(usize),
    Deposit(usize, u32),
    Withdraw(usize, u32),
    Transfer(usize, usize, u32),
    Close(usize),
}

fn op() -> impl Strategy<Value = Op> {
    let acct = 0..ACCOUNTS.len();
    let cents = 1u32..5_000;
    prop_oneof![
        1 => acct.clone().prop_map(Op::Create),
        3 => (acct.clone(), cents.clone()).prop_map(|(a, c)| Op::Deposit(a, c)),
        3 => (acct.clone(), cents.clone()).prop_map(|(a, c)| Op::Withdraw(a, c)),
        4 => (acct.clone(), acct.clone(), cents).prop_map(|(a, b, c)| Op::Transfer(a, b, c)),
        1 => acct.prop_map(Op::Close),
    ]
}

/// The reference model: balances in cents, and which accounts are closed.
#[derive(Default, Debug)]
struct Model {
    balances: BTreeMap<&'static str, i128>,
    closed: Vec<&'static str>,
    deposited: i128,
    withdrawn: i128,
}

impl Model {
    fn open(&self, a: &'static str) -> bool {
        self.balances.contains_key(a) && !self.closed.contains(&a)
    }

    /// Applies `op` if the rules allow it; says whether they did.
    fn apply(&mut self, op: &Op) -> bool {
        match *op {
            Op::Create(a) => {
                let a = ACCOUNTS[a];
                if self.balances.contains_key(a) {
                    return false;
                }
                self.balances.insert(a, 0);
            }
            Op::Deposit(a, c) => {
                let a = ACCOUNTS[a];
                if !self.open(a) {
                    return false;
                }
                *self.balances.get_mut(a).unwrap() += i128::from(c);
                self.deposited += i128::from(c);
            }
            Op::Withdraw(a, c) => {
                let a = ACCOUNTS[a];
                if !self.open(a) || self.balances[a] < i128::from(c) {
                    return false;
                }
                *self.balances.get_mut(a).unwrap() -= i128::from(c);
                self.withdrawn += i128::from(c);
            }
            Op::Transfer(a, b, c) => {
                let (a, b) = (ACCOUNTS[a], ACCOUNTS[b]);
                if a == b || !self.open(a) || !self.open(b) || self.balances[a] < i128::from(c) {
                    return false;
                }
                *self.balances.get_mut(a).unwrap() -= i128::from(c);
                *self.balances.get_mut(b).unwrap() += i128::from(c);
            }
            Op::Close(a) => {
                let a = ACCOUNTS[a];
                if !self.open(a) || self.balances[a] != 0 {
                    return false;
                }
                self.closed.push(a);
            }
        }
        true
    }
}

fn cents(c: u32) -> Decimal {
    Decimal::parse_positive(&format!("{}.{:02}", c / 100, c % 100)).unwrap()
}

fn request(op: &Op) -> Request<'static> {
    let command = match *op {
        Op::Create(a) => Command::Create {
            account: ACCOUNTS[a],
            owner: None,
            currency: None,
            decimals: 2,
        },
        Op::Deposit(a, c) => Command::Deposit {
            account: ACCOUNTS[a],
            amount: cents(c),
        },
        Op::Withdraw(a, c) => Command::Withdraw {
            account: ACCOUNTS[a],
            amount: cents(c),
        },
        Op::Transfer(a, b, c) => Command::Transfer {
            from: ACCOUNTS[a],
            to: ACCOUNTS[b],
            amount: cents(c),
        },
        Op::Close(a) => Command::Close {
            account: ACCOUNTS[a],
        },
    };
    crate::common::request(command)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn replay_matches_the_model(ops in proptest::collection::vec(op(), 1..60)) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.jsonl");
        let mut model = Model::default();
        for op in &ops {
            let expected = model.apply(op);
            let mut writer = Writer::open(&path).unwrap();
            let before = std::fs::read(&path).unwrap_or_default();
            let outcome = writer.apply(&request(op));
            match outcome {
                Ok(Outcome::Appended(_)) => {
                    prop_assert!(expected, "{:?} was accepted; the model refuses it", op);
                    writer.commit().unwrap();
                }
                Err(WriteError::Rejected(r)) => {
                    prop_assert!(!expected, "{:?} was refused ({}); the model accepts it", op, r);
                    prop_assert!(!matches!(r, Rejection::Input(_) | Rejection::Amount { .. }), "usage error: {}", r);
                    drop(writer);
                    prop_assert_eq!(std::fs::read(&path).unwrap_or_default(), before);
                }
                other => prop_assert!(false, "{:?}: {:?}", op, other),
            }
        }
        let state = replay(&path, None, ReplayFrom::Start, |_, _| Ok(())).unwrap();
        let mut total = 0i128;
        for (name, balance) in &model.balances {
            let account = state.account(name).unwrap();
            prop_assert_eq!(account.balance.0, *balance, "balance of {}", name);
            prop_assert!(account.balance.0 >= 0);
            prop_assert_eq!(account.closed, model.closed.contains(name));
            total += balance;
        }
        prop_assert_eq!(state.accounts().count(), model.balances.len());
        // Conservation: what is held is exactly what came in minus what went out.
        prop_assert_eq!(total, model.deposited - model.withdrawn);
        if let Some(unit) = state.units().first() {
            prop_assert_eq!(unit.held.0, total);
            prop_assert_eq!(unit.deposited.0, model.deposited);
            prop_assert_eq!(unit.withdrawn.0, model.withdrawn);
        }
    }
}
