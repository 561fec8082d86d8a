//! The net change of each account a writer's staged events touch, for
//! the summary a `batch` or `import` prints.

use std::collections::BTreeMap;

use crate::domain::{Bits, State};
use crate::event::Change;
use crate::money::Amount;

/// The net change of each account the staged events touch, and whether
/// they created it, by the account's place in the writer's state
/// ([`State::account_place`]): a batch into a million accounts touches
/// most of them. 8 bytes and a bit an account, where a map by name took
/// about 130: a net change that leaves 64 bits (a balance may reach 128)
/// is kept apart, by place.
#[derive(Debug, Default)]
pub struct Net {
    deltas: Vec<i64>,
    wide: BTreeMap<usize, i128>,
    created: Bits,
}

impl Net {
    /// Counts `change`, which `state` has already folded in (so that an
    /// account it creates has its place).
    pub fn count(&mut self, state: &State, change: &Change<'_>) {
        if let Change::AccountCreated { account, .. } = change
            && let Some(place) = state.account_place(account)
        {
            self.grow_to(place, state.account_count());
            self.created.insert(place);
        }
        for (account, delta) in change.effects().into_iter().flatten() {
            if let Some(place) = state.account_place(account) {
                self.grow_to(place, state.account_count());
                self.add(place, delta.0);
            }
        }
    }

    /// The bits of the net change at `place`, read only to bring it into
    /// the cache (see [`State::warm_accounts`]): in a batch into a million
    /// accounts, each event's changes missed it.
    pub fn peek(&self, place: usize) -> u64 {
        self.deltas.get(place).map_or(0, |&d| d as u64)
    }

    fn add(&mut self, place: usize, delta: i128) {
        if let Some(wide) = self.wide.get_mut(&place) {
            *wide = wide.saturating_add(delta);
            return;
        }
        let Some(net) = self.deltas.get_mut(place) else {
            return;
        };
        match i64::try_from(delta).ok().and_then(|d| net.checked_add(d)) {
            Some(sum) => *net = sum,
            None => {
                self.wide
                    .insert(place, i128::from(*net).saturating_add(delta));
                *net = 0;
            }
        }
    }

    /// Room up to `place`: at the first growth, for every account of a
    /// state of `accounts` (a writer that loaded a million would otherwise
    /// double its way there and hold up to twice the room).
    fn grow_to(&mut self, place: usize, accounts: usize) {
        if self.deltas.len() > place {
            return;
        }
        let len = place + 1;
        if self.deltas.capacity() < len {
            // Past that, by an eighth: a whole state's batch that then
            // creates an account would otherwise take room for two.
            let cap = self.deltas.capacity();
            let room = len.max(accounts).max(cap + cap / 8);
            self.deltas.reserve_exact(room - self.deltas.len());
        }
        self.deltas.resize(len, 0);
    }

    /// The net change of the account at `place`, if the staged events
    /// moved or created it.
    pub fn at(&self, place: usize) -> Option<Amount> {
        let delta = match self.wide.get(&place) {
            Some(&wide) => wide,
            None => i128::from(self.deltas.get(place).copied().unwrap_or(0)),
        };
        (delta != 0 || self.created_at(place)).then_some(Amount(delta))
    }

    /// The same changes, for the accounts of `to` that `from` had them
    /// for (by name): a writer that read its whole state again keeps what
    /// its staged events did.
    pub fn moved(&self, from: &State, to: &State) -> Net {
        let mut net = Net::default();
        for (place, (name, _)) in from.accounts().enumerate() {
            if let (Some(delta), Some(to_place)) = (self.at(place), to.account_place(name)) {
                net.grow_to(to_place, to.account_count());
                net.add(to_place, delta.0);
                if self.created_at(place) {
                    net.created.insert(to_place);
                }
            }
        }
        net
    }

    fn created_at(&self, place: usize) -> bool {
        self.created.contains(place)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Event;
    use crate::money::Decimal;
    use crate::time::At;

    fn create(name: &str) -> Change<'_> {
        Change::AccountCreated {
            account: name.into(),
            owner: None,
            currency: None,
            decimals: 2,
        }
    }

    fn deposit(name: &str, cents: i128) -> Change<'_> {
        Change::MoneyDeposited {
            account: name.into(),
            amount: Decimal::new(Amount(cents), 2),
        }
    }

    fn withdraw(name: &str, cents: i128) -> Change<'_> {
        Change::MoneyWithdrawn {
            account: name.into(),
            amount: Decimal::new(Amount(cents), 2),
        }
    }

    /// Folds `changes` into `state`, counting each into `net`.
    fn fold(state: &mut State, net: &mut Net, changes: &[Change<'_>]) {
        let at = At::parse_canonical("2026-11-26T10:00:00.000000Z").expect("at");
        for change in changes {
            let event = Event::new(state.seq() + 1, at, change.clone());
            crate::domain::evolve(state, &event);
            net.count(state, change);
        }
    }

    fn by_name(net: &Net, state: &State) -> Vec<(String, Amount, bool)> {
        let mut changes: Vec<_> = state
            .accounts()
            .enumerate()
            .filter_map(|(place, (name, _))| {
                let delta = net.at(place)?;
                Some((name.to_owned(), delta, net.created_at(place)))
            })
            .collect();
        changes.sort();
        changes
    }

    /// Changes counted in one state are the same, by name, once moved to
    /// a state that has the accounts in another order (as a writer's
    /// whole state, read again after a partial one).
    #[test]
    fn changes_moved_to_another_state_stay_with_their_accounts() {
        let (mut partial, mut whole) = (State::default(), State::default());
        let mut ignored = Net::default();
        fold(
            &mut whole,
            &mut ignored,
            &[create("z"), create("b"), create("a")],
        );
        fold(&mut whole, &mut ignored, &[deposit("a", 500)]);
        fold(
            &mut partial,
            &mut ignored,
            &[create("a"), create("b"), create("z")],
        );
        fold(&mut partial, &mut ignored, &[deposit("a", 500)]);
        let mut net = Net::default();
        let staged = [
            create("n"),
            deposit("b", 250),
            deposit("n", 100),
            deposit("b", 50),
        ];
        fold(&mut partial, &mut net, &staged);
        let mut again = Net::default();
        fold(&mut whole, &mut again, &staged);
        let want = vec![
            ("b".to_owned(), Amount(300), false),
            ("n".to_owned(), Amount(100), true),
        ];
        assert_eq!(by_name(&net, &partial), want);
        assert_eq!(by_name(&net.moved(&partial, &whole), &whole), want);
        assert_eq!(by_name(&again, &whole), want);
    }

    /// A net change past 64 bits, or a change that is, is kept whole and
    /// counts every later change, and moves whole; one that comes back to
    /// nothing is no change (unless the account was created).
    #[test]
    fn a_net_change_past_64_bits_is_kept_whole() {
        let big = i128::from(i64::MAX);
        let mut state = State::default();
        fold(&mut state, &mut Net::default(), &[create("old")]);
        let mut net = Net::default();
        fold(
            &mut state,
            &mut net,
            &[
                create("a"),
                create("b"),
                deposit("a", big),
                deposit("a", big),
                deposit("a", 3),
                withdraw("a", big),
                deposit("b", big * 4),
                deposit("old", big * 4),
                withdraw("old", big * 4),
            ],
        );
        let want = vec![
            ("a".to_owned(), Amount(big + 3), true),
            ("b".to_owned(), Amount(big * 4), true),
        ];
        assert_eq!(by_name(&net, &state), want);
        let mut other = State::default();
        let accounts = [create("b"), create("old"), create("a")];
        fold(&mut other, &mut Net::default(), &accounts);
        assert_eq!(by_name(&net.moved(&state, &other), &other), want);
    }

    /// Room for a whole state's accounts at once, and for one more by an
    /// eighth more, not twice.
    #[test]
    fn room_for_every_account_at_once() {
        let mut net = Net::default();
        net.grow_to(5, 1_000_000);
        assert_eq!(net.deltas.capacity(), 1_000_000);
        net.grow_to(1_000_000, 1_000_001);
        net.grow_to(1_000_001, 1_000_002);
        assert_eq!(net.deltas.capacity(), 1_125_000);
    }
}
