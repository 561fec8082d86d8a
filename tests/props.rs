//! Property test: random command sequences (with book dates, tags and
//! reversals), run through the real journal layer (lock, append, fsync,
//! replay), against a tiny reference model. Replay must equal the model,
//! money must be conserved, no balance may ever be negative in journal
//! order, each movement is reversed at most once, and balances by day must
//! equal the model's fold of the events dated on or before the day.

use std::collections::BTreeMap;

use ledger::cmd::{ReplayFrom, replay};
use ledger::domain::{Command, Rejection, Request, Target};
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
    /// Reverse the n-th movement recorded so far (modulo their number).
    Reverse(usize),
}

/// An op with the book date (a day of October 2026) it is written with.
#[derive(Debug, Clone)]
struct Dated {
    op: Op,
    day: Option<u8>,
    tag: bool,
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
        2 => (0usize..64).prop_map(Op::Reverse),
    ]
}

fn dated() -> impl Strategy<Value = Dated> {
    (op(), proptest::option::of(1u8..=31), any::<bool>()).prop_map(|(op, day, tag)| Dated {
        op,
        day,
        tag,
    })
}

/// A money movement the model has recorded.
#[derive(Debug, Clone)]
struct Movement {
    /// (account, signed cents) it moved.
    effects: Vec<(&'static str, i128)>,
    /// Its day of October, or `None` for the day it was recorded (November).
    day: Option<u8>,
    reversal: bool,
    reversed: bool,
}

/// The reference model: balances in cents, and which accounts are closed.
#[derive(Default, Debug)]
struct Model {
    balances: BTreeMap<&'static str, i128>,
    closed: Vec<&'static str>,
    deposited: i128,
    withdrawn: i128,
    /// Seqs of the movements, in order, with what they did.
    movements: Vec<(u64, Movement)>,
    seq: u64,
}

impl Model {
    fn open(&self, a: &'static str) -> bool {
        self.balances.contains_key(a) && !self.closed.contains(&a)
    }

    /// Applies `op` if the rules allow it; says whether they did, and
    /// records it.
    fn record(&mut self, dated: &Dated) -> bool {
        let before = self.balances.clone();
        let reversing = match dated.op {
            Op::Reverse(n) if !self.movements.is_empty() => Some(n % self.movements.len()),
            _ => None,
        };
        let ok = match reversing {
            Some(i) => self.reverse(i),
            None => self.apply(&dated.op),
        };
        if !ok {
            return false;
        }
        self.seq += 1;
        let effects: Vec<(&'static str, i128)> = self
            .balances
            .iter()
            .map(|(a, b)| (*a, b - before.get(a).copied().unwrap_or(0)))
            .filter(|(_, d)| *d != 0)
            .collect();
        if !effects.is_empty() {
            if let Some(i) = reversing {
                self.movements[i].1.reversed = true;
            }
            let movement = Movement {
                effects,
                day: dated.day,
                reversal: reversing.is_some(),
                reversed: false,
            };
            self.movements.push((self.seq, movement));
        }
        true
    }

    /// The mirror of the i-th movement, if the rules allow it.
    fn reverse(&mut self, i: usize) -> bool {
        let m = &self.movements[i].1;
        if m.reversal || m.reversed {
            return false;
        }
        let op = match m.effects.as_slice() {
            [(a, d)] if *d > 0 => Op::Withdraw(index(a), *d as u32),
            [(a, d)] => Op::Deposit(index(a), (-*d) as u32),
            // The mirror moves the money back: from the credited account.
            [(a, da), (b, _)] if *da < 0 => Op::Transfer(index(b), index(a), (-*da) as u32),
            [(a, da), (b, _)] => Op::Transfer(index(a), index(b), *da as u32),
            _ => return false,
        };
        self.apply(&op)
    }

    /// Balances by day: per account with a movement on or before October
    /// `day`, the sum of those movements.
    fn by_day(&self, day: u8) -> BTreeMap<&'static str, i128> {
        let mut sums = BTreeMap::new();
        for (_, m) in &self.movements {
            if m.day.is_some_and(|d| d <= day) {
                for (a, d) in &m.effects {
                    *sums.entry(*a).or_insert(0) += d;
                }
            }
        }
        sums
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
            Op::Reverse(_) => return false,
        }
        true
    }
}

fn index(account: &str) -> usize {
    ACCOUNTS.iter().position(|a| *a == account).unwrap_or(0)
}

fn cents(c: u32) -> Decimal {
    Decimal::parse_positive(&format!("{}.{:02}", c / 100, c % 100)).unwrap()
}

fn request(dated: &Dated, model: &Model) -> Request<'static> {
    let command = match dated.op {
        Op::Reverse(n) => Command::Reverse {
            // Seq 1 is never a movement: the refusal the model expects.
            target: Target::Seq(match model.movements.len() {
                0 => 1,
                len => model.movements[n % len].0,
            }),
            original: None,
        },
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
    let mut request = crate::common::request(command);
    request.date = dated
        .day
        .and_then(|d| ledger::time::Day::parse(&format!("2026-10-{d:02}")));
    if dated.tag {
        request.tags = vec![("source", "prop")];
    }
    request
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn replay_matches_the_model(ops in proptest::collection::vec(dated(), 1..60)) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.jsonl");
        let mut model = Model::default();
        for op in &ops {
            let request = request(op, &model);
            let expected = model.record(op);
            let mut writer = Writer::open(&path).unwrap();
            let before = std::fs::read(&path).unwrap_or_default();
            let outcome = writer.apply(&request);
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
        let state = replay(&path, ReplayFrom::Start, |_, _| Ok(())).unwrap();
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
        for (seq, m) in &model.movements {
            prop_assert_eq!(state.reversed_by(*seq).is_some(), m.reversed, "seq {}", seq);
        }
        if path.exists() {
            let env = crate::common::TestEnv {
                dir,
                journal: path,
                db: None,
            };
            let day = 15;
            let shown = env.ok(&format!("balance --as-of 2026-10-{day} --json"));
            let shown: serde_json::Value = serde_json::from_str(&shown).unwrap();
            let by_day: BTreeMap<&str, String> = model
                .by_day(day)
                .into_iter()
                .map(|(a, c)| (a, ledger::money::Amount(c).display(2).to_string()))
                .collect();
            let listed: BTreeMap<&str, String> = shown["accounts"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| (a["account"].as_str().unwrap(), a["balance"].as_str().unwrap().to_owned()))
                .filter(|(a, b)| by_day.contains_key(a) || b != "0.00")
                .collect();
            prop_assert_eq!(listed, by_day);
        }
    }
}

/// Holds against a model: deposits, withdrawals, holds (some expiring,
/// some for a shop), captures, releases and steps of the clock, each run
/// through the real binary at its own time.
mod holds {
    use crate::common::TestEnv;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Op {
        Deposit(u32),
        Withdraw(u32),
        /// Amount, lifetime in hours (if it expires), for the shop.
        Hold(u32, Option<u8>, bool),
        /// Which hold (modulo their number), how much (all if `None`).
        Capture(usize, Option<u32>),
        Release(usize),
        /// Hours the clock moves on.
        Step(u8),
    }

    fn op() -> impl Strategy<Value = Op> {
        let cents = 1u32..3_000;
        prop_oneof![
            2 => cents.clone().prop_map(Op::Deposit),
            1 => cents.clone().prop_map(Op::Withdraw),
            3 => (cents.clone(), proptest::option::of(1u8..6), any::<bool>())
                .prop_map(|(c, e, s)| Op::Hold(c, e, s)),
            2 => (0usize..8, proptest::option::of(cents)).prop_map(|(i, c)| Op::Capture(i, c)),
            1 => (0usize..8).prop_map(Op::Release),
            1 => (1u8..4).prop_map(Op::Step),
        ]
    }

    struct Hold {
        seq: u64,
        amount: i64,
        expires: Option<i64>,
        shop: bool,
        ended: bool,
    }

    #[derive(Default)]
    struct Model {
        balance: i64,
        shop: i64,
        holds: Vec<Hold>,
        hour: i64,
        seq: u64,
    }

    impl Model {
        fn held(&self) -> i64 {
            self.holds
                .iter()
                .filter(|h| !h.ended && h.expires.is_none_or(|e| self.hour < e))
                .map(|h| h.amount)
                .sum()
        }

        /// The command line for `op`, and whether the rules accept it.
        fn apply(&mut self, op: &Op) -> Option<(String, bool)> {
            let money = |c: u32| format!("{}.{:02}", c / 100, c % 100);
            let available = self.balance - self.held();
            let (line, ok) = match *op {
                Op::Step(h) => {
                    self.hour += i64::from(h);
                    return None;
                }
                Op::Deposit(c) => {
                    self.balance += i64::from(c);
                    (format!("deposit a {}", money(c)), true)
                }
                Op::Withdraw(c) => {
                    let ok = i64::from(c) <= available;
                    if ok {
                        self.balance -= i64::from(c);
                    }
                    (format!("withdraw a {}", money(c)), ok)
                }
                Op::Hold(c, life, shop) => {
                    let ok = i64::from(c) <= available;
                    let expires = life.map(|l| self.hour + i64::from(l));
                    let mut line = format!("hold a {}", money(c));
                    if shop {
                        line.push_str(" --to shop");
                    }
                    if let Some(e) = expires {
                        line.push_str(&format!(" --expires {}", super::holds_clock(e)));
                    }
                    if ok {
                        self.holds.push(Hold {
                            seq: self.seq + 1,
                            amount: i64::from(c),
                            expires,
                            shop,
                            ended: false,
                        });
                    }
                    (line, ok)
                }
                Op::Capture(..) | Op::Release(_) if self.holds.is_empty() => {
                    (format!("release {}", self.seq + 99), false)
                }
                Op::Capture(i, c) => {
                    let hour = self.hour;
                    let len = self.holds.len();
                    let h = &mut self.holds[i % len];
                    let amount = c.map_or(h.amount, i64::from);
                    let ok = !h.ended && h.expires.is_none_or(|e| hour < e) && amount <= h.amount;
                    let mut line = format!("capture {}", h.seq);
                    if let Some(c) = c {
                        line.push_str(&format!(" {}", money(c)));
                    }
                    if ok {
                        h.ended = true;
                        self.balance -= amount;
                        if h.shop {
                            self.shop += amount;
                        }
                    }
                    (line, ok)
                }
                Op::Release(i) => {
                    let len = self.holds.len();
                    let h = &mut self.holds[i % len];
                    let ok = !h.ended;
                    h.ended = true;
                    (format!("release {}", h.seq), ok)
                }
            };
            if ok {
                self.seq += 1;
            }
            Some((line, ok))
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        #[test]
        fn holds_match_the_model(ops in proptest::collection::vec(op(), 1..30)) {
            let env = TestEnv::new();
            let mut model = Model::default();
            env.ok_at(&super::holds_clock(0), "create a");
            env.ok_at(&super::holds_clock(0), "create shop");
            model.seq = 2;
            for op in &ops {
                let Some((line, ok)) = model.apply(op) else { continue };
                let before = env.bytes();
                let out = env
                    .cmd()
                    .env("LEDGER_TEST_CLOCK", super::holds_clock(model.hour))
                    .args(line.split(' '))
                    .output()
                    .unwrap();
                prop_assert_eq!(out.status.code(), Some(if ok { 0 } else { 1 }), "{}: {}", line, String::from_utf8_lossy(&out.stderr));
                if !ok {
                    prop_assert_eq!(env.bytes(), before);
                }
            }
            let clock = super::holds_clock(model.hour);
            let doc: serde_json::Value = serde_json::from_str(&env.ok_at(&clock, "balance a shop --json")).unwrap();
            let cents = |v: &serde_json::Value| -> i64 {
                v.as_str().unwrap().replace('.', "").parse().unwrap()
            };
            let a = &doc["accounts"][0];
            prop_assert_eq!(cents(&a["balance"]), model.balance);
            prop_assert_eq!(cents(&a["held"]), model.held());
            prop_assert!(cents(&a["available"]) >= 0);
            prop_assert_eq!(cents(&doc["accounts"][1]["balance"]), model.shop);
            prop_assert!(env.ok("verify").contains("ok:"));
        }
    }
}

/// The clock `hours` after 2026-11-26T10:00:00Z.
fn holds_clock(hours: i64) -> String {
    let t = jiff::Timestamp::from_second(1_764_151_200 + hours * 3600).unwrap();
    format!("{t}")
}
