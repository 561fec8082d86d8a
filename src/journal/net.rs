//! The net change of each account a writer's staged events touch, for
//! the summary a `batch` or `import` prints.

use crate::domain::{Account, State};
use crate::event::Change;
use crate::money::Amount;

/// The net change of each account the staged events touch, and whether
/// they created it, by the account's place in the writer's state
/// ([`State::account_place`]): 17 bytes an account, where a map by name
/// took about 130, and a batch into a million accounts touches most of
/// them.
#[derive(Debug, Default)]
pub struct Net {
    deltas: Vec<Amount>,
    created: Vec<bool>,
}

impl Net {
    /// Counts `change`, which `state` has already folded in (so that an
    /// account it creates has its place).
    pub fn count(&mut self, state: &State, change: &Change<'_>) {
        if let Change::AccountCreated { account, .. } = change
            && let Some(place) = state.account_place(account)
        {
            self.grow_to(place);
            self.created[place] = true;
        }
        for (account, delta) in change.effects().into_iter().flatten() {
            if let Some(place) = state.account_place(account) {
                self.grow_to(place);
                let net = &mut self.deltas[place];
                *net = Amount(net.0.saturating_add(delta.0));
            }
        }
    }

    fn grow_to(&mut self, place: usize) {
        if self.deltas.len() <= place {
            self.deltas.resize(place + 1, Amount::ZERO);
            self.created.resize(place + 1, false);
        }
    }

    /// The net change of the account at `place`, if the staged events
    /// moved or created it.
    pub fn at(&self, place: usize) -> Option<Amount> {
        let delta = self.deltas.get(place).copied().unwrap_or(Amount::ZERO);
        let created = self.created.get(place).copied().unwrap_or(false);
        (delta != Amount::ZERO || created).then_some(delta)
    }

    /// Each account of `state` with its net change and whether it was
    /// created, in the order of the state's accounts; those untouched have
    /// no change and were not created.
    pub fn changes<'s>(
        &'s self,
        state: &'s State,
    ) -> impl Iterator<Item = (&'s str, &'s Account, Amount, bool)> {
        state
            .accounts()
            .zip(self.deltas.iter().zip(&self.created))
            .map(|((name, account), (delta, created))| (name, account, *delta, *created))
    }

    /// The same changes, counted for `to`: a state with the accounts of
    /// `from` (and more), in other places.
    pub fn moved(&self, from: &State, to: &State) -> Net {
        let mut net = Net::default();
        for (name, _, delta, created) in self.changes(from) {
            if let Some(place) = to.account_place(name)
                && (delta != Amount::ZERO || created)
            {
                net.grow_to(place);
                net.deltas[place] = delta;
                net.created[place] = created;
            }
        }
        net
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
        let mut changes: Vec<_> = net
            .changes(state)
            .filter(|(_, _, delta, created)| *delta != Amount::ZERO || *created)
            .map(|(name, _, delta, created)| (name.to_owned(), delta, created))
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
}
