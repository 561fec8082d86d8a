//! The accounts of a state, by name, kept compactly: a ledger of a million
//! accounts holds them in about 60 MB rather than 300. Accounts (32 bytes
//! each) and their names are stored in chunks, in the order they were
//! opened, and a hash table maps names to where they are (12 bytes each).

use std::hash::BuildHasher;
use std::ops::Range;

use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::Account;
use super::bits::Bits;

/// Accounts by name.
#[derive(Clone, Default)]
pub struct Accounts {
    chunks: Vec<Chunk>,
    /// Where each account and its name are, by the hash of the name.
    index: Index,
    /// The accounts read from a cache and not changed since, by place,
    /// a bit each: a write-back of a state that loaded every account
    /// writes only those changed.
    unchanged: Bits,
    /// The longest run of places whose accounts came in the order of
    /// their names, the run the last account ends, and that account: a
    /// state that read most accounts from the model, which keeps them in
    /// that order, lists them by name sorting only the others.
    ordered: Range<usize>,
    run: Range<usize>,
    last: Option<Slot>,
}

/// Where an account is: its place (chunk and place in it, as one number)
/// and where its name starts in its chunk's `names`, so that a look-up
/// reads the name without another index.
#[derive(Clone, Copy)]
struct Slot {
    place: u32,
    name: u32,
}

/// An account of a list in name order
/// ([`State::accounts_by_name`](crate::domain::State::accounts_by_name)),
/// read with [`State::named_account`](crate::domain::State::named_account)
/// from the state that made the list.
#[derive(Clone, Copy)]
pub struct Named(Slot);

/// Accounts per chunk. Accounts are stored in chunks allocated whole, so
/// that a growing ledger never copies them to a larger vector (for a
/// moment, both in memory) nor leaves room for as many again.
const PER_CHUNK: usize = 4096;

/// The longest name stored: its length is one byte before it (an ASCII
/// character, so that the names stay a `String`). Account names have at
/// most 64 characters, all ASCII.
const MAX_NAME: usize = 127;

/// Accounts in the order they were opened, with their names.
#[derive(Clone, Default)]
struct Chunk {
    /// Their names, one after another, each after a character whose code
    /// is its length.
    names: String,
    rows: Vec<Account>,
}

impl Chunk {
    /// The name that starts at `at`.
    fn name(&self, at: u32) -> &str {
        let at = at as usize + 1;
        let len = self
            .names
            .as_bytes()
            .get(at - 1)
            .map_or(0, |&b| usize::from(b));
        self.names.get(at..at + len).unwrap_or_default()
    }

    fn iter(&self) -> impl Iterator<Item = (&str, &Account)> {
        let mut at = 0;
        self.rows.iter().map(move |row| {
            let name = self.name(at);
            at += 1 + name.len() as u32;
            (name, row)
        })
    }
}

/// Where each account is, by the hash of its name: open addressing, each
/// slot holding 32 bits of the name's hash beside where the account and
/// its name are, probed in order from a place the hash chooses. A look-up
/// reads one slot (one cache line, mostly) and the name only of a slot
/// whose bits match. A SwissTable keeps its control bytes apart from its
/// slots, two reads from memory one after the other for each look-up: on
/// a million accounts, `verify` spent a third of its time there.
#[derive(Clone)]
struct Index {
    /// A power of two of them (or as many as a count reserved), or none;
    /// at most five eighths full.
    slots: Vec<Tagged>,
    len: usize,
    /// Keyed per process, so that no journal can be made of names that
    /// share their hash on purpose.
    hasher: foldhash::fast::RandomState,
    /// The hash bits kept: all but in tests, which make names share them.
    mask: u32,
}

impl Default for Index {
    fn default() -> Index {
        Index {
            slots: Vec::new(),
            len: 0,
            hasher: Default::default(),
            mask: u32::MAX,
        }
    }
}

/// A slot: the high 32 bits of a name's hash and where the account is;
/// empty when its place is [`EMPTY`].
#[derive(Clone, Copy)]
struct Tagged {
    tag: u32,
    slot: Slot,
}

const EMPTY: u32 = u32::MAX;
const VACANT: Tagged = Tagged {
    tag: 0,
    slot: Slot {
        place: EMPTY,
        name: 0,
    },
};

/// Below this many slots (768 KiB of them) the index and most accounts
/// stay in the cache, and warming them ([`Accounts::warm`]) costs more
/// than it saves.
const WARM_MIN_SLOTS: usize = 1 << 16;

/// Accounts warmed together: their loads of each stage all in flight.
const WARM_AT_ONCE: usize = 64;

impl Index {
    fn tag(&self, name: &str) -> u32 {
        (self.hasher.hash_one(name) >> 32) as u32 & self.mask
    }

    /// The slots to probe for `tag` in a table of `size` slots, in order:
    /// from the place its high bits choose, round the table.
    fn probe(size: usize, tag: u32) -> impl Iterator<Item = usize> {
        // The tag scaled to the size (its high bits, for a power of two):
        // a table sized for a known count need not be one.
        let start = ((u128::from(tag) * size as u128) >> 32) as usize;
        (start..start + size).map(move |i| round(i, size))
    }

    /// The slot of the account whose name `same` recognises, among those
    /// whose hash has the high bits `tag`.
    fn find(&self, tag: u32, same: impl Fn(Slot) -> bool) -> Option<Slot> {
        for i in Index::probe(self.slots.len(), tag) {
            let t = self.slots[i];
            if t.slot.place == EMPTY {
                return None;
            }
            if t.tag == tag && same(t.slot) {
                return Some(t.slot);
            }
        }
        None
    }

    /// The first slot from slot `i` on whose tag is `tag`, looking no
    /// further than an empty slot or a few slots on: where a look-up of
    /// a name of that tag would read its name first.
    fn find_from(&self, i: usize, tag: u32) -> Option<Slot> {
        let size = self.slots.len();
        (i..i + 6)
            .map_while(|i| {
                self.slots
                    .get(round(i, size))
                    .filter(|t| t.slot.place != EMPTY)
            })
            .find(|t| t.tag == tag)
            .map(|t| t.slot)
    }

    /// Adds `slot`, whose name is not here yet, under `tag`.
    fn insert(&mut self, tag: u32, slot: Slot) {
        if (self.len + 1) * 8 > self.slots.len() * 5 {
            self.grow();
        }
        let size = self.slots.len();
        if let Some(i) = Index::probe(size, tag).find(|&i| self.slots[i].slot.place == EMPTY) {
            self.slots[i] = Tagged { tag, slot };
            self.len += 1;
        }
    }

    /// Room for `total` names in all without growing: room for a
    /// million accounts is 19 MB of slots, where doubling to a power of
    /// two took 25.
    fn reserve(&mut self, total: usize) {
        let size = total.max(self.len).saturating_mul(8).div_ceil(5);
        if size > self.slots.len() {
            self.resize(size.max(16));
        }
    }

    /// Twice the slots (at least 16).
    fn grow(&mut self) {
        self.resize((self.slots.len() * 2).max(16));
    }

    /// `size` slots, every entry placed again by its tag.
    fn resize(&mut self, size: usize) {
        let old = std::mem::replace(&mut self.slots, vec![VACANT; size]);
        self.len = 0;
        for t in old.into_iter().filter(|t| t.slot.place != EMPTY) {
            self.insert(t.tag, t.slot);
        }
    }
}

/// Slot `i` of a table of `size`, where `i` is below twice the size: the
/// probes go round the table's end.
fn round(i: usize, size: usize) -> usize {
    if i >= size { i - size } else { i }
}

/// A name's first 16 bytes, padded with zeros: they sort as the names'
/// beginnings do (names hold no NUL, so a shorter name's zeros sort it
/// before the longer ones it begins).
fn name_key(name: &str) -> [u8; 16] {
    let mut bytes = [0; 16];
    let n = name.len().min(16);
    bytes[..n].copy_from_slice(&name.as_bytes()[..n]);
    bytes
}

/// The name `slot` points to.
fn name_in(chunks: &[Chunk], slot: Slot) -> &str {
    chunks[slot.place as usize / PER_CHUNK].name(slot.name)
}

impl Accounts {
    /// Where the account of that name is: its number in the order they
    /// were opened.
    pub fn place(&self, name: &str) -> Option<usize> {
        self.place_tagged(name, self.index.tag(name))
    }

    /// [`Accounts::place`] of a name whose tag is worked out.
    fn place_tagged(&self, name: &str, tag: u32) -> Option<usize> {
        self.index
            .find(tag, |slot| name_in(&self.chunks, slot) == name)
            .map(|slot| slot.place as usize)
    }

    /// The account of that name.
    pub fn get(&self, name: &str) -> Option<&Account> {
        let place = self.place(name)?;
        Some(&self.chunks[place / PER_CHUNK].rows[place % PER_CHUNK])
    }

    /// The account of that name, to change.
    pub fn get_mut(&mut self, name: &str) -> Option<&mut Account> {
        let place = self.place(name)?;
        self.unchanged.remove(place);
        Some(&mut self.chunks[place / PER_CHUNK].rows[place % PER_CHUNK])
    }

    /// Adds an account read from a cache, unless one of that name is
    /// here: unchanged until [`Accounts::get_mut`] or
    /// [`Accounts::insert`] changes it.
    pub fn insert_unchanged(&mut self, name: &str, account: Account) {
        // One hash and one look-up: a writer loads a million this way.
        let tag = self.index.tag(name);
        if self.place_tagged(name, tag).is_some() {
            return;
        }
        if let Some(place) = self.add(name, tag, account) {
            self.unchanged.insert(place);
        }
    }

    /// Brings the slots, names and rows of these accounts into the cache
    /// for the look-ups that follow, and nothing more. A look-up misses
    /// the cache up to three times one after the other (the slot, then the
    /// name and the row where the slot points); here each stage's loads
    /// for all the names are in flight at once, so a group of accounts
    /// costs about as many waits as one. Small ledgers fit the cache and
    /// skip it. (A prefetch instruction would wait for nothing, but calling
    /// one is `unsafe`; these are ordinary loads, made in stages.)
    ///
    /// `also` is given each account's place in the last stage, for a load
    /// of the caller's own by place (the value it returns is only summed).
    pub fn warm<'n>(
        &self,
        names: impl IntoIterator<Item = &'n str>,
        also: impl FnMut(usize) -> u64,
    ) {
        if self.index.slots.len() >= WARM_MIN_SLOTS {
            self.warm_now(names, also);
        }
    }

    /// [`Accounts::warm`], whatever the ledger's size.
    fn warm_now<'n>(
        &self,
        names: impl IntoIterator<Item = &'n str>,
        mut also: impl FnMut(usize) -> u64,
    ) {
        let mut names = names.into_iter();
        let mut seen = 0u64;
        loop {
            let (n, group) = self.warm_group(&mut names, &mut also);
            seen = seen.wrapping_add(group);
            if n < WARM_AT_ONCE {
                break;
            }
        }
        // Loads whose values go nowhere would be left out by the compiler.
        std::hint::black_box(seen);
    }

    /// Warms the next [`WARM_AT_ONCE`] of `names` (fewer at their end):
    /// how many, and a sum of what it read.
    fn warm_group<'n>(
        &self,
        names: &mut impl Iterator<Item = &'n str>,
        also: &mut impl FnMut(usize) -> u64,
    ) -> (usize, u64) {
        let size = self.index.slots.len();
        let mut tags = [0u32; WARM_AT_ONCE];
        let mut first = [0usize; WARM_AT_ONCE];
        let mut n = 0;
        for name in names.take(WARM_AT_ONCE) {
            tags[n] = self.index.tag(name);
            first[n] = Index::probe(size, tags[n]).next().unwrap_or(0);
            n += 1;
        }
        // Hashing comes first, on its own: loads between the hashes would
        // be fewer at a time in the processor's window.
        let mut slots = [VACANT; WARM_AT_ONCE];
        for (slot, &i) in slots.iter_mut().zip(&first[..n]) {
            *slot = self.index.slots.get(i).copied().unwrap_or(VACANT);
        }
        let mut seen = 0u64;
        for (t, (&tag, &i)) in slots[..n].iter().zip(tags.iter().zip(&first)) {
            // Not the first slot's account: one of the next few, in the
            // cache line just loaded (or the one after it).
            let slot = match t.tag == tag {
                true => Some(t.slot),
                false => self.index.find_from(i, tag),
            };
            let Some(slot) = slot.filter(|s| s.place != EMPTY) else {
                continue;
            };
            let place = slot.place as usize;
            if let Some(chunk) = self.chunks.get(place / PER_CHUNK) {
                let name = chunk.names.as_bytes().get(slot.name as usize);
                let row = chunk.rows.get(place % PER_CHUNK);
                seen = seen
                    .wrapping_add(name.map_or(0, |&b| u64::from(b)))
                    .wrapping_add(row.map_or(0, |r| u64::from(r.unit)));
            }
            seen = seen.wrapping_add(also(place));
        }
        (n, seen)
    }

    /// Whether an account of that name exists.
    pub fn contains(&self, name: &str) -> bool {
        self.place(name).is_some()
    }

    /// Room for `total` accounts in all without growing the index.
    pub fn reserve(&mut self, total: usize) {
        self.index.reserve(total);
    }

    /// How many accounts there are.
    pub fn len(&self) -> usize {
        self.chunks.last().map_or(0, |last| {
            (self.chunks.len() - 1) * PER_CHUNK + last.rows.len()
        })
    }

    /// Whether one more account of that name fits: places are 32-bit, so
    /// at most 4,294,967,295 accounts, and names of at most 127 bytes.
    pub fn has_room_for(&self, name: &str) -> bool {
        u32::try_from(self.len()).is_ok_and(|n| n < u32::MAX) && name.len() <= MAX_NAME
    }

    /// Adds an account, or replaces the one of that name. An account
    /// [`Accounts::has_room_for`] refuses is not added.
    pub fn insert(&mut self, name: &str, account: Account) {
        let tag = self.index.tag(name);
        if let Some(place) = self.place_tagged(name, tag) {
            self.unchanged.remove(place);
            self.chunks[place / PER_CHUNK].rows[place % PER_CHUNK] = account;
            return;
        }
        self.add(name, tag, account);
    }

    /// Adds an account whose name, of tag `tag`, is not here yet: its
    /// place, unless [`Accounts::has_room_for`] refuses it.
    fn add(&mut self, name: &str, tag: u32, account: Account) -> Option<usize> {
        let (Ok(place), Ok(len)) = (u32::try_from(self.len()), u8::try_from(name.len())) else {
            return None;
        };
        if !self.has_room_for(name) {
            return None;
        }
        if self.chunks.last().is_none_or(|c| c.rows.len() == PER_CHUNK) {
            // As much room for names as the chunk before took.
            let names = self.chunks.last().map_or(0, |c| c.names.len());
            self.chunks.push(Chunk {
                names: String::with_capacity(names),
                rows: Vec::with_capacity(PER_CHUNK),
            });
        }
        let chunk = self.chunks.last_mut()?;
        if chunk.names.capacity() - chunk.names.len() <= name.len() {
            chunk
                .names
                .reserve_exact(chunk.names.len() / 8 + 1 + name.len());
        }
        // A chunk's names take at most 4096 * 128 bytes.
        let at = u32::try_from(chunk.names.len()).unwrap_or(u32::MAX);
        chunk.names.push(char::from(len));
        chunk.names.push_str(name);
        chunk.rows.push(account);
        let slot = Slot { place, name: at };
        let follows = self
            .last
            .is_some_and(|last| name_in(&self.chunks, last) < name);
        let place = place as usize;
        self.run = match follows {
            true => self.run.start..place + 1,
            false => place..place + 1,
        };
        if self.run.len() > self.ordered.len() {
            self.ordered = self.run.clone();
        }
        self.last = Some(slot);
        self.index.insert(tag, slot);
        Some(place)
    }

    /// The accounts whose places `keep` admits, in the order of their
    /// names: 8 bytes an account, for a list of most of a million (their
    /// names as `&str` alone would be 16).
    pub fn by_name(&self, keep: impl Fn(usize) -> bool) -> Vec<Named> {
        let ordered = self.ordered.clone();
        // Room for all at once: the rest is merged in place, from the end.
        let mut all = Vec::with_capacity((0..self.len()).filter(|&p| keep(p)).count());
        let mut rest = Vec::new();
        for slot in self.slots().filter(|s| keep(s.place as usize)) {
            match ordered.contains(&(slot.place as usize)) {
                true => all.push(Named(slot)),
                false => rest.push(slot),
            }
        }
        let rest = self.sorted(rest);
        let (mut head, mut tail) = (all.len(), rest.len());
        let Some(&filler) = all.first().or(rest.first()) else {
            return all;
        };
        all.resize(head + tail, filler);
        while let Some(r) = tail.checked_sub(1).and_then(|t| rest.get(t)) {
            let h = head.checked_sub(1).and_then(|h| all.get(h));
            let from_head =
                h.is_some_and(|h| name_in(&self.chunks, h.0) > name_in(&self.chunks, r.0));
            let next = match (from_head, h) {
                (true, Some(&h)) => {
                    head -= 1;
                    h
                }
                _ => {
                    tail -= 1;
                    *r
                }
            };
            if let Some(place) = all.get_mut(head + tail) {
                *place = next;
            }
        }
        all
    }

    /// `slots` in the order of their names.
    fn sorted(&self, slots: Vec<Slot>) -> Vec<Named> {
        // Sorted by the names' first 16 bytes, read once each, and by the
        // whole names only where those are equal: comparing the names
        // themselves read two of them from all over memory each time (1.4 s
        // for the million accounts a batch may touch). 24 bytes an account
        // while sorting.
        let mut keyed: Vec<([u8; 16], Slot)> = slots
            .into_iter()
            .map(|slot| (name_key(name_in(&self.chunks, slot)), slot))
            .collect();
        keyed.sort_unstable_by(|(a_key, a), (b_key, b)| {
            a_key
                .cmp(b_key)
                .then_with(|| name_in(&self.chunks, *a).cmp(name_in(&self.chunks, *b)))
        });
        keyed.into_iter().map(|(_, slot)| Named(slot)).collect()
    }

    /// Where each account and its name are, in the order of their places.
    fn slots(&self) -> impl Iterator<Item = Slot> {
        self.chunks.iter().enumerate().flat_map(|(c, chunk)| {
            let mut at = 0u32;
            (0..chunk.rows.len()).map(move |i| {
                let slot = Slot {
                    place: (c * PER_CHUNK + i) as u32,
                    name: at,
                };
                at += 1 + u32::from(
                    chunk
                        .names
                        .as_bytes()
                        .get(at as usize)
                        .copied()
                        .unwrap_or(0),
                );
                slot
            })
        })
    }

    /// The name, place and account [`Accounts::by_name`] listed as `named`.
    pub fn named(&self, named: Named) -> (&str, usize, &Account) {
        let place = named.0.place as usize;
        let account = &self.chunks[place / PER_CHUNK].rows[place % PER_CHUNK];
        (name_in(&self.chunks, named.0), place, account)
    }

    /// Every account, in the order they were opened.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Account)> {
        self.chunks.iter().flat_map(Chunk::iter)
    }

    /// Every account but those read from a cache and not changed since,
    /// in the order of their names (see [`Accounts::by_name`]).
    pub fn changed_by_name(&self) -> Vec<Named> {
        self.by_name(|place| !self.unchanged.contains(place))
    }
}

impl std::fmt::Debug for Accounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

/// The same accounts, whatever the order they were opened in.
impl PartialEq for Accounts {
    fn eq(&self, other: &Accounts) -> bool {
        self.len() == other.len() && self.iter().all(|(name, a)| other.get(name) == Some(a))
    }
}

impl Eq for Accounts {}

/// Saved as a map from names to accounts.
impl Serialize for Accounts {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.len()))?;
        for (name, account) in self.iter() {
            map.serialize_entry(name, account)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Accounts {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Accounts, D::Error> {
        struct Entries;
        impl<'de> Visitor<'de> for Entries {
            type Value = Accounts;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a map of accounts by name")
            }
            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Accounts, M::Error> {
                let mut accounts = Accounts::default();
                while let Some((name, account)) = map.next_entry::<Box<str>, Account>()? {
                    if !accounts.has_room_for(&name) {
                        return Err(serde::de::Error::custom("too many accounts"));
                    }
                    accounts.insert(&name, account);
                }
                Ok(accounts)
            }
        }
        deserializer.deserialize_map(Entries)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::money::Amount;
    use proptest::prelude::*;
    use std::collections::HashMap;

    fn account(balance: i128) -> Account {
        Account {
            balance: Amount(balance),
            ..Account::new(None, 0)
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        /// Accounts answer as a map does, across chunks, with names of
        /// every length, an account replaced now and then, and saved and
        /// read back; also when nearly every name shares its hash bits,
        /// when the first come in name order (as read from a model), and in
        /// a table sized for a count.
        #[test]
        fn accounts_answer_as_a_map_does(
            ops in prop::collection::vec((0usize..6000, 0usize..120), 0..300),
            colliding in any::<bool>(),
            in_order in any::<bool>(),
            reserved in prop::option::of(0usize..9000),
        ) {
            let mut accounts = Accounts::default();
            // Room made for a count: a table of any size, not only a power
            // of two (then doubled from there).
            if let Some(total) = reserved {
                accounts.reserve(total);
            }
            if colliding {
                // Two bits of hash: nearly every name shares its slot's
                // bits with others, and the probes run long.
                accounts.index.mask = 0xC000_0000;
            }
            let mut model: HashMap<String, i128> = HashMap::new();
            let mut order: Vec<String> = Vec::new();
            // Enough accounts first that the ops reach past one chunk.
            for i in 0..PER_CHUNK + 10 {
                let name = match in_order {
                    true => format!("n{i:05}"),
                    false => format!("n{i}"),
                };
                accounts.insert(&name, account(i as i128));
                model.insert(name.clone(), i as i128);
                order.push(name);
            }
            for (n, len) in ops {
                // In order, names among those of the run (and replacing
                // some), for the merge to interleave.
                let name = match in_order {
                    true => format!("n{n:05}{}", "x".repeat(len)),
                    false => format!("{n}{}", "x".repeat(len)),
                };
                let balance = (n * 7 + len) as i128;
                if !model.contains_key(&name) {
                    order.push(name.clone());
                }
                accounts.insert(&name, account(balance));
                model.insert(name, balance);
            }
            // Warming reads only, whatever it finds: names here or not,
            // probes that run long and round the table's end.
            let absent: Vec<String> = (0..40).map(|i| format!("absent{i}")).collect();
            accounts.warm_now(order.iter().rev().chain(&absent).map(String::as_str), |_| 0);
            for (name, balance) in &model {
                prop_assert_eq!(accounts.get(name).map(|a| a.balance), Some(Amount(*balance)));
                prop_assert!(accounts.contains(name));
            }
            prop_assert!(accounts.get("absent").is_none());
            let names: Vec<&str> = accounts.iter().map(|(n, _)| n).collect();
            prop_assert_eq!(names, order.iter().map(String::as_str).collect::<Vec<_>>());
            // In name order, those of odd places: each with its own place
            // and account.
            let by_name: Vec<(String, usize, i128)> = accounts
                .by_name(|place| place % 2 == 1)
                .into_iter()
                .map(|named| {
                    let (name, place, account) = accounts.named(named);
                    (name.to_owned(), place, account.balance.0)
                })
                .collect();
            let mut want: Vec<(String, usize, i128)> = order
                .iter()
                .enumerate()
                .filter(|(place, _)| place % 2 == 1)
                .map(|(place, name)| (name.clone(), place, model[name]))
                .collect();
            want.sort();
            prop_assert_eq!(by_name, want);
            let json = serde_json::to_string(&accounts).expect("saved");
            let back: Accounts = serde_json::from_str(&json).expect("read back");
            prop_assert_eq!(back, accounts);
        }
    }

    /// A table sized for a count takes that many without growing, and
    /// the accounts already there count in it.
    #[test]
    fn room_made_for_a_count_holds_it() {
        let mut accounts = Accounts::default();
        for i in 0..1000 {
            accounts.insert(&format!("a{i}"), account(0));
        }
        accounts.reserve(10_000);
        let size = accounts.index.slots.len();
        assert_eq!(size, 16_000);
        accounts.reserve(5_000);
        assert_eq!(accounts.index.slots.len(), size);
        for i in 1000..10_000 {
            accounts.insert(&format!("a{i}"), account(0));
        }
        assert_eq!(accounts.index.slots.len(), size);
        assert!((0..10_000).all(|i| accounts.contains(&format!("a{i}"))));
    }

    /// An account read from a cache is unchanged until it is changed or
    /// replaced; one added otherwise is changed from the start.
    #[test]
    fn accounts_from_a_cache_are_unchanged_until_changed() {
        let mut accounts = Accounts::default();
        accounts.insert("new", account(1));
        for i in 0..200 {
            accounts.insert_unchanged(&format!("c{i}"), account(i));
        }
        accounts.insert_unchanged("new", account(99));
        assert_eq!(
            accounts.get("new").map(|a| a.balance),
            Some(Amount(1)),
            "kept"
        );
        if let Some(a) = accounts.get_mut("c70") {
            a.balance = Amount(5);
        }
        accounts.insert("c150", account(6));
        let changed: Vec<&str> = (accounts.changed_by_name().into_iter())
            .map(|named| accounts.named(named).0)
            .collect();
        assert_eq!(changed, ["c150", "c70", "new"]);
        assert_eq!(accounts.iter().count(), 201);
    }

    #[test]
    fn an_account_changed_by_name_stays_changed() {
        let mut accounts = Accounts::default();
        for i in 0..10_000 {
            accounts.insert(&format!("acct{i}"), account(0));
        }
        if let Some(a) = accounts.get_mut("acct9999") {
            a.balance = Amount(5);
            a.closed = true;
        }
        let a = accounts.get("acct9999").expect("exists");
        assert_eq!((a.balance, a.closed), (Amount(5), true));
        assert_eq!(accounts.get("acct0").map(|a| a.balance), Some(Amount::ZERO));
        assert_eq!(accounts.len(), 10_000);
    }
}
