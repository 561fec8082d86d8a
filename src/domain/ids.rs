//! The `--id`s a state knows, and the seq each was used at.
//!
//! A state that writes knows every id by name. A replay of a whole
//! journal (to rebuild the read model) only needs to know whether an id
//! was used before, and where, to say so; millions of names would cost it
//! hundreds of megabytes. So its state can keep *fingerprints* instead: a
//! hash of each id and the low bits of its seq, about 7 bytes an id. A
//! fingerprint that matches is only a suspicion: the replay reads the
//! earlier line it points to, and either confirms the repeat or, for two
//! ids that merely share a fingerprint, has the state learn that line's id
//! by name ([`Ids::learn`]), after which both are told apart exactly.
//!
//! An audit (`verify`, `copy`) needs no answer until it stops, so its
//! index only collects fingerprints ([`Ids::collecting`]) and proves them
//! distinct at once at the end ([`Ids::shared_prints`]), which costs a
//! fraction of asking at every id.
//!
//! A writer's state does the same for the ids its own append adds
//! ([`Ids::fingerprint_new`]): a batch or import of a million rows, each
//! with an id, would otherwise keep a million names until its one write.
//! It settles a suspicion before deciding ([`Ids::settle`]), by reading
//! back the staged line the fingerprint points to.
//!
//! A writer on a file's read model fingerprints by the ids' keys in the
//! model ([`id_key`]) instead, so that it can take in a bucket of the
//! model's ids whole, as fingerprints, the first time an id of it is
//! asked ([`Ids::take_bucket`]): a batch of a million ids then reads each
//! bucket once rather than once an id, and settles each suspicion against
//! its line as it does its own.
//!
//! A batch can do better still: it reads its input once before it
//! starts, and so knows the keys of every id it will name. Those that the
//! model does not hold and that the batch names only once are new
//! whatever comes before them, and need neither a bucket taken in nor a
//! fingerprint kept ([`Ids::foresee`]): only the few others are looked
//! up as above.

use std::hash::BuildHasher;
use std::sync::Mutex;

use rustc_hash::{FxHashMap, FxHashSet};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};

use super::bits::Bits;

/// The ids used so far: by name, and (in a fingerprinting index) by
/// fingerprint.
#[derive(Debug, Clone, Default)]
pub struct Ids {
    /// Every id, in an exact index; in a fingerprinting one, only the ids
    /// learnt by name because another id shares their fingerprint.
    names: FxHashMap<Box<str>, u64>,
    prints: Option<Prints>,
    /// An audit's ids, to be proven distinct when it ends.
    collected: Option<Collected>,
}

/// Bits of a seq kept beside its fingerprint: a fingerprint points to the
/// seqs with these low bits, one of them below 16,777,216.
const SEQ_BITS: u32 = 24;
const SEQ_MASK: u64 = (1 << SEQ_BITS) - 1;
/// A fingerprint's bits that choose its shard; the other 24 are stored.
/// The read model's bucket bits: by key, a bucket is a shard.
const SHARD_BITS: u32 = BUCKET_BITS;

/// Fingerprints of ids (40 bits of a keyed hash) with the low 24 bits of
/// their seqs. The first 16 bits of a fingerprint choose one of 65,536
/// shards, each a sorted vector of 6-byte entries (the other 24 bits, then
/// the seq's): no empty slots, and one that grows moves a few hundred bytes.
#[derive(Debug, Clone)]
struct Prints {
    hasher: Hasher,
    /// Hash bits kept: all but in tests, which force collisions.
    mask: u64,
    /// Empty until the first id comes.
    shards: Vec<Vec<Entry>>,
    /// With [`Hasher::IdKey`], the buckets of the read model's ids taken
    /// in whole ([`Ids::take_bucket`]), one bit each.
    taken: Bits,
    /// With [`Hasher::IdKey`], the last id whose key was taken, and its
    /// key: a writer asks for the key of each id several times (to load
    /// its bucket, settle, decide, record and write it back), and each is
    /// a SHA-256.
    last_key: LastKey,
    /// With [`Hasher::IdKey`], once an append's ids are foreseen
    /// ([`Ids::foresee`]): the keys, among those of the ids it names, that
    /// the read model holds or that it names more than once. An id whose
    /// key is not among them is new and named once.
    foreseen: Option<FxHashSet<i64>>,
}

/// An id and its key, behind a lock only so that a state may be shared
/// between threads: a writer's is used by one.
#[derive(Debug, Default)]
struct LastKey(Mutex<Option<(String, i64)>>);

impl Clone for LastKey {
    /// A new, empty one: it only saves time.
    fn clone(&self) -> LastKey {
        LastKey::default()
    }
}

/// How an id's fingerprint is taken.
#[derive(Debug, Clone)]
enum Hasher {
    /// Keyed per process, so that no journal can be made of ids that
    /// collide on purpose.
    Keyed(foldhash::quality::RandomState),
    /// The id's key ([`id_key`]): a writer on a read model takes the
    /// model's entries of a bucket as they are, without the ids' names.
    /// (A key is a SHA-256 of the id, out of reach of ids chosen to
    /// collide.)
    IdKey,
}

/// The key of an id in the read model: 63 bits of a SHA-256 of it, so
/// that a row is a few integers (a million ids are written back in a
/// fraction of the time their text took) and ids chosen to share a key
/// are out of reach. Two ids may still share one: every entry is checked
/// against the line it names, whose id tells them apart.
pub fn id_key(id: &str) -> i64 {
    let hash = Sha256::new()
        .chain_update(b"ledger id key\0")
        .chain_update(id.as_bytes())
        .finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&hash[..8]);
    // Non-negative, so that keys sort as SQLite's integers do.
    let key = (u64::from_be_bytes(first) >> 1) as i64;
    #[cfg(test)]
    let key = key & KEY_MASK.get();
    key
}

#[cfg(test)]
thread_local! {
    /// The key bits kept: all but in tests that force ids to share a key.
    pub static KEY_MASK: std::cell::Cell<i64> = const { std::cell::Cell::new(i64::MAX) };
}

/// The high bits of an id's key that choose its bucket: the row of the
/// read model's `id_keys` that holds the entries of every id whose key has
/// them. A million ids are 65,536 rows of about 250 bytes, written back in
/// a fraction of the time a row each took, and a lookup or the write of
/// one id reads or rewrites one small row. The same bits choose a
/// fingerprint's shard, so that a bucket fills one shard.
pub const BUCKET_BITS: u32 = 16;

/// The bucket of a key.
pub fn bucket_of(key: i64) -> i64 {
    key >> (63 - BUCKET_BITS)
}

/// The ids of an audit ([`Ids::collecting`]), kept to be proven distinct
/// all at once when it ends rather than one by one as they come. Checked
/// as it comes, an id of millions costs two cache misses, a shard and its
/// place in it: `verify` of 4,000,000 ids spent a seventh of its time
/// there. Collected, an id is appended to one of 256 piles, whose ends
/// stay in the cache; each pile is sorted at the end, small enough to be
/// sorted in the cache too, and ids that share a fingerprint lie side by
/// side.
#[derive(Debug, Clone)]
struct Collected {
    hasher: foldhash::quality::RandomState,
    /// Hash bits kept, as in [`Prints`].
    mask: u64,
    /// Each id's fingerprint (40 bits of hash) and the low 24 bits of its
    /// seq as one number, fingerprint first, in piles by the fingerprint's
    /// first `PILE_BITS` bits; each pile in blocks of `PILE_BLOCK`, so that
    /// one never grows by copying, nor leaves room for as many again.
    piles: Vec<Vec<Vec<u64>>>,
}

const PILE_BITS: u32 = 8;
const PILE_BLOCK: usize = 2048;

impl Collected {
    fn new(mask: u64) -> Collected {
        Collected {
            hasher: Default::default(),
            mask,
            piles: Vec::new(),
        }
    }

    fn insert(&mut self, id: &str, seq: u64) {
        if self.piles.is_empty() {
            self.piles = vec![Vec::new(); 1 << PILE_BITS];
        }
        let print = (self.hasher.hash_one(id) & self.mask) >> 24;
        let pile = &mut self.piles[(print >> (40 - PILE_BITS)) as usize];
        if pile.last().is_none_or(|block| block.len() == PILE_BLOCK) {
            pile.push(Vec::with_capacity(PILE_BLOCK));
        }
        if let Some(block) = pile.last_mut() {
            block.push((print << SEQ_BITS) | (seq & SEQ_MASK));
        }
    }

    fn entries(&self) -> impl Iterator<Item = &u64> {
        self.piles.iter().flatten().flatten()
    }

    /// See [`Ids::shared_prints`].
    fn shared(&mut self, last: u64) -> Vec<Vec<u64>> {
        let mut shared = Vec::new();
        for pile in std::mem::take(&mut self.piles) {
            let mut entries: Vec<u64> = pile.into_iter().flatten().collect();
            entries.sort_unstable();
            for run in entries.chunk_by(|a, b| a >> SEQ_BITS == b >> SEQ_BITS) {
                if let [_, _, ..] = run {
                    let mut seqs: Vec<u64> = run
                        .iter()
                        .flat_map(|e| seqs_with_low_bits(e & SEQ_MASK, last))
                        .collect();
                    seqs.sort_unstable();
                    seqs.dedup();
                    shared.push(seqs);
                }
            }
        }
        shared
    }
}

/// The seqs, up to `last`, whose low 24 bits are `low`.
fn seqs_with_low_bits(low: u64, last: u64) -> impl Iterator<Item = u64> {
    (0..)
        .map_while(move |k: u64| k.checked_mul(1 << SEQ_BITS)?.checked_add(low))
        .filter(|&seq| seq > 0)
        .take_while(move |&seq| seq <= last)
}

impl Prints {
    /// Every entry, shard by shard.
    fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.shards.iter().flatten()
    }
}

impl PartialEq for Ids {
    /// Equal when they hold the same ids the same way (fingerprints
    /// compared by their entries, their keys differing): an index that
    /// would fingerprint the ids to come but holds none yet, as a
    /// writer's, equals one that would not.
    fn eq(&self, other: &Ids) -> bool {
        fn entries(ids: &Ids) -> impl Iterator<Item = &Entry> {
            ids.prints.iter().flat_map(Prints::entries)
        }
        fn collected(ids: &Ids) -> impl Iterator<Item = &u64> {
            ids.collected.iter().flat_map(Collected::entries)
        }
        self.names == other.names
            && entries(self).eq(entries(other))
            && collected(self).eq(collected(other))
    }
}

impl Eq for Ids {}

/// The stored part of a fingerprint and the low bits of a seq, big-endian,
/// so that entries sort by fingerprint.
type Entry = [u8; 6];

/// A fingerprint: 40 bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Print(u64);

impl Print {
    fn shard(self) -> usize {
        (self.0 >> (40 - SHARD_BITS)) as usize
    }

    fn entry(self, seq: u64) -> Entry {
        let rest = self.0 & ((1 << (40 - SHARD_BITS)) - 1);
        let [_, _, bytes @ ..] = ((rest << SEQ_BITS) | (seq & SEQ_MASK)).to_be_bytes();
        bytes
    }
}

/// The first place in `shard` whose entry is not `before` the one sought
/// (`before` holds for a prefix of the shard), for a fingerprint `p`: its
/// `partition_point`, found from where `p` falls in proportion to the
/// shard's length. Fingerprints are spread evenly over a shard, so that
/// is a few entries from the place, one or two cache lines, where a
/// binary search of a 60-entry shard took six probes (`verify` of
/// 4,000,000 ids: 15 % fewer samples in [`Ids::suspects`]).
fn seek(shard: &[Entry], p: Print, before: impl Fn(&Entry) -> bool) -> usize {
    let rest = p.0 & ((1 << (40 - SHARD_BITS)) - 1);
    let guess = (rest as usize).saturating_mul(shard.len()) >> (40 - SHARD_BITS);
    let mut i = guess.min(shard.len());
    while i > 0 && !before(&shard[i - 1]) {
        i -= 1;
    }
    while i < shard.len() && before(&shard[i]) {
        i += 1;
    }
    i
}

/// The fingerprint part of an entry.
fn rest_of(entry: &Entry) -> [u8; 3] {
    [entry[0], entry[1], entry[2]]
}

fn seq_of(entry: &Entry) -> u64 {
    u64::from_be_bytes([0, 0, 0, 0, 0, entry[3], entry[4], entry[5]])
}

impl Prints {
    fn new(mask: u64) -> Prints {
        Prints::with(Hasher::Keyed(Default::default()), mask)
    }

    fn with(hasher: Hasher, mask: u64) -> Prints {
        Prints {
            hasher,
            mask,
            shards: Vec::new(),
            taken: Bits::default(),
            last_key: LastKey::default(),
            foreseen: None,
        }
    }

    fn print(&self, id: &str) -> Print {
        match &self.hasher {
            Hasher::Keyed(hasher) => self.print_of(hasher.hash_one(id)),
            Hasher::IdKey => self.print_of_key(self.key(id)),
        }
    }

    /// [`id_key`], from the last id's if `id` is it.
    fn key(&self, id: &str) -> i64 {
        let Ok(mut last) = self.last_key.0.try_lock() else {
            return id_key(id);
        };
        match &mut *last {
            Some((known, key)) if known == id => *key,
            Some((known, key)) => {
                *key = id_key(id);
                known.clear();
                known.push_str(id);
                *key
            }
            None => {
                let key = id_key(id);
                *last = Some((id.to_owned(), key));
                key
            }
        }
    }

    /// The fingerprint of 64 bits of hash.
    fn print_of(&self, hash: u64) -> Print {
        Print((hash & self.mask) >> 24)
    }

    /// Whether `id` was foreseen to be new and named once (see
    /// [`Ids::foresee`]).
    fn foreseen_new(&self, id: &str) -> bool {
        self.foreseen
            .as_ref()
            .is_some_and(|shared| !shared.contains(&self.key(id)))
    }

    /// The fingerprint of a key: its 63 bits, so that the shard is its
    /// bucket.
    fn print_of_key(&self, key: i64) -> Print {
        self.print_of(key.unsigned_abs() << 1)
    }

    /// The low bits of the seq recorded with `p`, if any.
    fn low_seq(&self, p: Print) -> Option<u64> {
        let shard = self.shards.get(p.shard())?;
        let rest = rest_of(&p.entry(0));
        let i = seek(shard, p, |e| rest_of(e) < rest);
        shard.get(i).filter(|e| rest_of(e) == rest).map(seq_of)
    }

    fn insert(&mut self, p: Print, seq: u64) {
        if self.shards.is_empty() {
            self.shards = vec![Vec::new(); 1 << SHARD_BITS];
        }
        let shard = &mut self.shards[p.shard()];
        if shard.len() == shard.capacity() {
            // An eighth more at a time: doubling would leave most of the
            // memory of a large index empty.
            shard.reserve_exact((shard.len() / 8).max(4));
        }
        let entry = p.entry(seq);
        let i = seek(shard, p, |e| *e < entry);
        shard.insert(i, entry);
    }

    /// Removes the entry of `p` and `seq`; `false` if there is none.
    fn remove(&mut self, p: Print, seq: u64) -> bool {
        let Some(shard) = self.shards.get_mut(p.shard()) else {
            return false;
        };
        match shard.binary_search(&p.entry(seq)) {
            Ok(i) => {
                shard.remove(i);
                true
            }
            Err(_) => false,
        }
    }
}

impl Ids {
    /// An index that keeps fingerprints of ids rather than their names.
    pub fn fingerprinting() -> Ids {
        Ids {
            prints: Some(Prints::new(u64::MAX)),
            ..Ids::default()
        }
    }

    /// An index for an audit, that collects the ids to prove them distinct
    /// at its end ([`Ids::shared_prints`]): until then it knows none.
    pub fn collecting() -> Ids {
        Ids {
            collected: Some(Collected::new(u64::MAX)),
            ..Ids::default()
        }
    }

    /// A collecting index with only 2 bits of hash, in which most ids
    /// share a fingerprint.
    #[cfg(test)]
    pub fn collecting_colliding() -> Ids {
        Ids {
            collected: Some(Collected::new(0xC000_0000_0000_0000)),
            ..Ids::default()
        }
    }

    /// For a collecting index ([`Ids::collecting`]), the ids collected
    /// so far, taken out: for each fingerprint that more than one of them
    /// has, the seqs (up to `last`, ascending) of the events that may have
    /// used them. An id repeated is among them; an id used once may be
    /// too. Empty for any other index.
    pub fn shared_prints(&mut self, last: u64) -> Vec<Vec<u64>> {
        self.collected
            .as_mut()
            .map_or_else(Vec::new, |c| c.shared(last))
    }

    /// A fingerprinting index with only 2 bits of hash, in which most ids
    /// share a fingerprint.
    #[cfg(test)]
    pub fn colliding() -> Ids {
        Ids {
            prints: Some(Prints::new(0xC000_0000_0000_0000)),
            ..Ids::default()
        }
    }

    /// The key of `id` in the read model ([`id_key`]).
    pub fn key(&self, id: &str) -> i64 {
        match &self.prints {
            Some(
                prints @ Prints {
                    hasher: Hasher::IdKey,
                    ..
                },
            ) => prints.key(id),
            _ => id_key(id),
        }
    }

    /// Whether `id` is known by name.
    pub fn knows(&self, id: &str) -> bool {
        self.names.contains_key(id)
    }

    /// Whether it collects ids to prove them distinct at the end.
    pub fn is_collecting(&self) -> bool {
        self.collected.is_some()
    }

    /// Whether it keeps fingerprints.
    pub fn is_fingerprinting(&self) -> bool {
        self.prints.is_some()
    }

    /// The seq `id` was used at, if it was; in a fingerprinting index, the
    /// first seq, up to `last`, of an event that may have used it.
    pub fn get(&self, id: &str, last: u64) -> Option<u64> {
        self.suspects(id, last).next()
    }

    /// The seqs, up to `last`, at which `id` may have been used: none if it
    /// was not; the one seq when the index knows it by name; else each seq
    /// whose low bits its fingerprint records (one seq for a journal of
    /// fewer than 16,777,216 events), of which at most one used an id of
    /// that fingerprint.
    pub fn suspects(&self, id: &str, last: u64) -> impl Iterator<Item = u64> {
        let (known, low) = match (self.names.get(id), &self.prints) {
            (Some(&seq), _) => (Some(seq), None),
            (None, Some(prints)) if prints.foreseen_new(id) => (None, None),
            (None, Some(prints)) => (None, prints.low_seq(prints.print(id))),
            (None, None) => (None, None),
        };
        let printed = low
            .into_iter()
            .flat_map(move |low| seqs_with_low_bits(low, last));
        known.into_iter().chain(printed)
    }

    /// Whether two ids have the same fingerprint here.
    pub fn same_print(&self, a: &str, b: &str) -> bool {
        self.prints
            .as_ref()
            .is_some_and(|p| p.print(a) == p.print(b))
    }

    /// Records that `id` was used at `seq`.
    pub fn insert(&mut self, id: &str, seq: u64) {
        if let Some(collected) = &mut self.collected {
            return collected.insert(id, seq);
        }
        match &mut self.prints {
            // Never asked for again: nothing to keep.
            Some(prints) if prints.foreseen_new(id) => {}
            Some(prints) => prints.insert(prints.print(id), seq),
            None => {
                self.names.insert(id.into(), seq);
            }
        }
    }

    /// Records that `id`, read from a cache, was used at `seq`, unless it
    /// is known already. By name, also in a fingerprinting index: a cache
    /// is read for the few ids a command names, and an id known by name
    /// needs no line read to confirm it.
    pub fn load(&mut self, id: &str, seq: u64) {
        self.names.entry(id.into()).or_insert(seq);
    }

    /// From now on keeps the ids inserted as fingerprints (if it does not
    /// already); those known so far stay known by name.
    pub fn fingerprint_new(&mut self) {
        if self.prints.is_none() {
            self.prints = Some(Prints::new(u64::MAX));
        }
    }

    /// [`Ids::fingerprint_new`], the fingerprints taken from the ids' keys
    /// in the read model, so that the model's buckets can be taken in
    /// ([`Ids::take_bucket`]).
    pub fn fingerprint_new_by_key(&mut self) {
        if self.prints.is_none() {
            self.prints = Some(Prints::with(Hasher::IdKey, u64::MAX));
        }
    }

    /// Whether the model's bucket `bucket` is to be taken in: the index
    /// fingerprints by key and has not taken it yet. `None` if it does not
    /// fingerprint by key.
    pub fn wants_bucket(&self, bucket: usize) -> Option<bool> {
        let prints = self.prints.as_ref()?;
        let Hasher::IdKey = prints.hasher else {
            return None;
        };
        Some(!prints.taken.contains(bucket))
    }

    /// Takes in the entries of the read model's bucket `bucket`: ids by
    /// key and seq, as fingerprints, each a suspicion that a replay or
    /// writer settles by reading the line it points to. Ignored unless the
    /// index fingerprints by key.
    pub fn take_bucket(&mut self, bucket: usize, entries: impl IntoIterator<Item = (i64, u64)>) {
        let Some(
            prints @ Prints {
                hasher: Hasher::IdKey,
                ..
            },
        ) = &mut self.prints
        else {
            return;
        };
        for (key, seq) in entries {
            prints.insert(prints.print_of_key(key), seq);
        }
        prints.taken.insert(bucket);
    }

    /// Foresees the ids an append names, those it has named already
    /// included: `shared` holds the keys, among theirs, that the read model
    /// holds or that the append names more than once. Any other id it names
    /// from now on is new (unless known by name: one of the lines after the
    /// model's head) and named once, and is then neither looked up nor
    /// kept. (Those it named before are kept as before: a key named
    /// then and again now is shared.) Only for an index that fingerprints
    /// by key, whose fingerprints are the model's buckets taken in and the
    /// append's own ids; `false`, and nothing changes, for any other.
    pub fn foresee(&mut self, shared: FxHashSet<i64>) -> bool {
        let Some(
            prints @ Prints {
                hasher: Hasher::IdKey,
                ..
            },
        ) = &mut self.prints
        else {
            return false;
        };
        prints.foreseen = Some(shared);
        true
    }

    /// Whether the id of key `key` was foreseen to be new and named once
    /// ([`Ids::foresee`]): nothing about it need be read from the model.
    pub fn foreseen_new(&self, key: i64) -> bool {
        self.prints
            .as_ref()
            .and_then(|p| p.foreseen.as_ref())
            .is_some_and(|shared| !shared.contains(&key))
    }

    /// Whether it holds any fingerprint (ids it knows only that way).
    pub fn has_prints(&self) -> bool {
        self.prints
            .iter()
            .flat_map(Prints::entries)
            .next()
            .is_some()
            || self
                .collected
                .iter()
                .flat_map(Collected::entries)
                .next()
                .is_some()
    }

    /// Makes this index's answer for `id` exact. While its fingerprint
    /// points at seqs (up to `last`) and it is not known by name, reads
    /// the id of each such event with `id_at` and learns the first with
    /// that fingerprint: `id` itself (then known by name) or one that only
    /// shares it (then no longer suspected). `unsettled` is the error when
    /// none of them has an id of that fingerprint, which only an index not
    /// folded from those events can meet.
    pub fn settle<E>(
        &mut self,
        id: &str,
        last: u64,
        mut id_at: impl FnMut(u64) -> Result<Option<String>, E>,
        unsettled: impl FnOnce() -> E,
    ) -> Result<(), E> {
        'check: while !self.names.contains_key(id) {
            let suspects: Vec<u64> = self.suspects(id, last).collect();
            if suspects.is_empty() {
                return Ok(());
            }
            for seq in suspects {
                if let Some(other) = id_at(seq)?
                    && self.same_print(&other, id)
                    && self.learn(&other, seq)
                {
                    continue 'check;
                }
            }
            return Err(unsettled());
        }
        Ok(())
    }

    /// Learns that the event at `seq`, which the fingerprint of `id`
    /// points to, was written with `id`: from then on it is known by name,
    /// and an id that only shares its fingerprint is no longer suspected.
    /// `false` if no fingerprint pointed there (nothing to learn).
    pub fn learn(&mut self, id: &str, seq: u64) -> bool {
        let Some(prints) = &mut self.prints else {
            return false;
        };
        if !prints.remove(prints.print(id), seq) {
            return false;
        }
        self.names.insert(id.into(), seq);
        true
    }

    /// The ids known by name, with their seqs.
    pub fn named(&self) -> impl Iterator<Item = (&str, u64)> {
        self.names.iter().map(|(id, seq)| (&**id, *seq))
    }
}

/// Saved as the map of names to seqs; a fingerprinting index cannot be
/// saved, since it has forgotten the names.
impl Serialize for Ids {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if self.prints.is_some() || self.collected.is_some() {
            return Err(serde::ser::Error::custom(
                "a state that keeps fingerprints of ids cannot be saved",
            ));
        }
        self.names.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Ids {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Ids, D::Error> {
        Ok(Ids {
            names: FxHashMap::deserialize(deserializer)?,
            ..Ids::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::{HashMap, HashSet};

    /// What a replay makes of `id` as the event after `journal` (the ids
    /// of seqs 1, 2, …): `Some(seq)` if it repeats the id at `seq`, `None`
    /// if it is new; settling suspicions the way the scanner does, by
    /// reading the suspected seqs' ids and learning those that only share
    /// the fingerprint.
    fn replay(ids: &mut Ids, journal: &[String], id: &str) -> Option<u64> {
        let last = journal.len() as u64;
        'check: while ids.get(id, last).is_some() {
            let suspects: Vec<u64> = ids.suspects(id, last).collect();
            for seq in suspects {
                let other = &journal[seq as usize - 1];
                if other == id {
                    return Some(seq);
                }
                if ids.same_print(other, id) && ids.learn(other, seq) {
                    continue 'check;
                }
            }
            panic!("no suspect of {id} holds an id of its fingerprint");
        }
        None
    }

    /// Replays `draws` (ids by number, a repeat rejected as a replay
    /// would) into `ids`, checking each against a map of every id.
    fn check_against_a_map(mut ids: Ids, draws: &[u16]) {
        let mut model: HashMap<String, u64> = HashMap::new();
        let mut journal: Vec<String> = Vec::new();
        for draw in draws {
            let id = format!("id-{draw}");
            let got = replay(&mut ids, &journal, &id);
            assert_eq!(got, model.get(&id).copied(), "{id}");
            if got.is_none() {
                journal.push(id.clone());
                let seq = journal.len() as u64;
                ids.insert(&id, seq);
                model.insert(id, seq);
            }
        }
        for (id, seq) in &model {
            assert_eq!(replay(&mut ids, &journal, id), Some(*seq), "{id}");
        }
    }

    /// What a writer does with `id`: settles it against `journal`'s ids,
    /// which must answer as `set` does, and appends it if it is new.
    fn write_as_a_set(
        ids: &mut Ids,
        id: &str,
        journal: &mut Vec<String>,
        set: &mut HashSet<String>,
    ) {
        let last = journal.len() as u64;
        let id_at = |seq: u64| Ok::<_, ()>(Some(journal[seq as usize - 1].clone()));
        ids.settle(id, last, id_at, || ()).expect("settled");
        let got = ids.get(id, last);
        assert_eq!(got.is_some(), set.contains(id), "{id}");
        match got {
            Some(seq) => assert_eq!(journal[seq as usize - 1], id),
            None => {
                set.insert(id.to_owned());
                journal.push(id.to_owned());
                ids.insert(id, journal.len() as u64);
            }
        }
    }

    /// What a writer makes of `draws` (ids by number): the first `known`
    /// ids were in the journal before it (loaded by name, as from the read
    /// model), the rest it appends itself, fingerprinted with `prints`
    /// (see [`Ids::fingerprint_new`]), each settled before it is looked up.
    /// Every answer must be a set's: the seq of an id used before, or none.
    fn write_against_a_set(prints: Prints, known: usize, draws: &[u16]) {
        let mut ids = Ids::default();
        let mut set: HashSet<String> = HashSet::new();
        let mut journal: Vec<String> = Vec::new();
        for (i, draw) in draws.iter().enumerate() {
            let id = format!("id-{draw}");
            if i == known {
                ids.prints = Some(prints.clone());
            }
            if i < known {
                if set.insert(id.clone()) {
                    journal.push(id.clone());
                    ids.load(&id, journal.len() as u64);
                }
                continue;
            }
            write_as_a_set(&mut ids, &id, &mut journal, &mut set);
        }
    }

    /// What a writer on a read model makes of `draws`, as
    /// [`write_against_a_set`], but fingerprinting by key with `mask`: the
    /// first `known` ids are the model's, each bucket taken in whole (by
    /// key and seq, no names) when an id of it is first asked, as
    /// `rows::load_id` does; every suspicion is settled against the lines.
    /// With `foresee`, the writer is told, after that many of its own ids,
    /// which of the keys of all the ids it is asked the model holds or it
    /// is asked twice (as `Writer::foresee_ids` does), and skips the
    /// others from then on.
    fn write_by_key_against_a_set(mask: u64, known: usize, draws: &[u16], foresee: Option<usize>) {
        let mut ids = Ids {
            prints: Some(Prints::with(Hasher::IdKey, mask)),
            ..Ids::default()
        };
        let mut model: Vec<(i64, u64)> = Vec::new();
        let mut set: HashSet<String> = HashSet::new();
        let mut journal: Vec<String> = Vec::new();
        for (i, draw) in draws.iter().enumerate() {
            let id = format!("id-{draw}");
            if i < known {
                if set.insert(id.clone()) {
                    journal.push(id.clone());
                    model.push((id_key(&id), journal.len() as u64));
                }
                continue;
            }
            if Some(i) == foresee.map(|after| known + after) {
                let mut keys: Vec<i64> = draws[known..]
                    .iter()
                    .map(|d| id_key(&format!("id-{d}")))
                    .collect();
                keys.sort_unstable();
                let twice = keys.windows(2).filter(|w| w[0] == w[1]).map(|w| w[0]);
                let held = keys.iter().filter(|k| model.iter().any(|(m, _)| m == *k));
                let shared: FxHashSet<i64> = twice.chain(held.copied()).collect();
                assert!(ids.foresee(shared));
            }
            let key = id_key(&id);
            if ids.foreseen_new(key) {
                assert!(!set.contains(&id), "{id} foreseen new, but used");
                write_as_a_set(&mut ids, &id, &mut journal, &mut set);
                continue;
            }
            let bucket = bucket_of(key) as usize;
            if ids.wants_bucket(bucket) == Some(true) {
                let entries = model
                    .iter()
                    .filter(|(k, _)| bucket_of(*k) as usize == bucket);
                ids.take_bucket(bucket, entries.copied());
            }
            assert_eq!(ids.wants_bucket(bucket), Some(false));
            write_as_a_set(&mut ids, &id, &mut journal, &mut set);
        }
    }

    proptest! {
        /// A writer's index by key, the model's ids taken a bucket at a
        /// time and its own fingerprinted, settled by reading lines back,
        /// answers as a set of every id does, also when nearly every id
        /// shares its fingerprint.
        #[test]
        fn a_writers_fingerprints_by_key_answer_as_a_set_does(
            known in 0usize..100,
            draws in prop::collection::vec(0u16..300, 0..400),
        ) {
            write_by_key_against_a_set(0xC000_0000_0000_0000, known, &draws, None);
            write_by_key_against_a_set(u64::MAX, known, &draws, None);
        }

        /// The same, the ids foreseen: also when nearly every id shares
        /// its fingerprint, and when nearly every id shares its key with
        /// others (and so is looked up).
        #[test]
        fn a_writers_foreseen_ids_answer_as_a_set_does(
            known in 0usize..100,
            after in prop_oneof![Just(0usize), 0usize..300],
            draws in prop::collection::vec(0u16..300, 0..400),
        ) {
            write_by_key_against_a_set(0xC000_0000_0000_0000, known, &draws, Some(after));
            write_by_key_against_a_set(u64::MAX, known, &draws, Some(after));
            KEY_MASK.set(0xff);
            write_by_key_against_a_set(u64::MAX, known, &draws, Some(after));
            KEY_MASK.set(i64::MAX);
        }

        /// A writer's index, known ids by name and its own by fingerprint,
        /// settled by reading lines back, answers as a set of every id
        /// does, also when nearly every id shares its fingerprint.
        #[test]
        fn a_writers_fingerprints_answer_as_a_set_does(
            known in 0usize..100,
            draws in prop::collection::vec(0u16..300, 0..400),
        ) {
            write_against_a_set(Prints::new(0xC000_0000_0000_0000), known, &draws);
            write_against_a_set(Prints::new(u64::MAX), known, &draws);
        }

        /// Collected ids, the sets that share a fingerprint told apart by
        /// reading the journal, show the first repeat a set of every id
        /// shows, also when nearly every id shares its fingerprint; and a
        /// journal's 24-bit seqs, past 16,777,215 events, name every seq
        /// with those bits.
        #[test]
        fn collected_ids_show_the_first_repeat_a_set_shows(
            draws in prop::collection::vec(0u16..300, 0..400),
        ) {
            let journal: Vec<String> = draws.iter().map(|d| format!("id-{d}")).collect();
            let mut set = HashSet::new();
            let first = journal.iter().position(|id| !set.insert(id)).map(|i| i as u64 + 1);
            for mut ids in [Ids::collecting(), Ids::collecting_colliding()] {
                for (i, id) in journal.iter().enumerate() {
                    ids.insert(id, i as u64 + 1);
                }
                prop_assert_eq!(ids.get("id-0", journal.len() as u64), None, "knows none");
                let shared = ids.shared_prints(journal.len() as u64);
                prop_assert!(shared.iter().all(|seqs| seqs.is_sorted()));
                let id_at = |seq: u64| &journal[seq as usize - 1];
                let found = shared
                    .iter()
                    .filter_map(|seqs| {
                        let mut seen = HashSet::new();
                        seqs.iter().copied().find(|&seq| !seen.insert(id_at(seq)))
                    })
                    .min();
                prop_assert_eq!(found, first);
                prop_assert!(ids.shared_prints(journal.len() as u64).is_empty(), "taken out");
            }
        }

        /// A seek from where a fingerprint falls finds the place a binary
        /// search does, wherever the shard's entries lie.
        #[test]
        fn a_seek_finds_what_a_binary_search_does(
            mut shard in prop::collection::vec(any::<[u8; 6]>(), 0..200),
            print in 0u64..(1 << 40),
            seq in 0u64..(1 << 24),
        ) {
            shard.sort_unstable();
            let p = Print(print);
            let entry = p.entry(seq);
            let rest = rest_of(&entry);
            prop_assert_eq!(
                seek(&shard, p, |e| *e < entry),
                shard.partition_point(|e| *e < entry)
            );
            prop_assert_eq!(
                seek(&shard, p, |e| rest_of(e) < rest),
                shard.partition_point(|e| rest_of(e) < rest)
            );
        }

        /// Fingerprints told apart by reading the journal answer exactly
        /// what a map of every id does, also when nearly every id shares
        /// its fingerprint with others (2 bits of hash).
        #[test]
        fn fingerprints_answer_as_a_map_does(draws in prop::collection::vec(0u16..300, 0..400)) {
            check_against_a_map(Ids::colliding(), &draws);
            check_against_a_map(Ids::fingerprinting(), &draws);
            check_against_a_map(Ids::default(), &draws);
        }
    }

    /// By key, a fingerprint's shard is the read model's bucket of the
    /// id, so that a bucket taken in fills one shard.
    #[test]
    fn by_key_a_shard_is_the_models_bucket() {
        let prints = Prints::with(Hasher::IdKey, u64::MAX);
        for id in ["a", "tx-1", "dep-999999", "x".repeat(64).as_str()] {
            let bucket = bucket_of(id_key(id));
            assert_eq!(prints.print(id).shard() as i64, bucket, "{id}");
        }
        let mut ids = Ids::default();
        assert_eq!(ids.wants_bucket(3), None, "exact: no buckets");
        ids.fingerprint_new_by_key();
        assert_eq!(ids.wants_bucket(3), Some(true));
        ids.take_bucket(3, []);
        assert_eq!(ids.wants_bucket(3), Some(false));
        assert_eq!(ids.wants_bucket(4), Some(true));
    }

    #[test]
    fn many_ids_spread_over_shards_are_each_found_where_they_were_used() {
        let mut ids = Ids::fingerprinting();
        for seq in 1..=200_000u64 {
            ids.insert(&format!("tx-{seq}"), seq);
        }
        for seq in (1..=200_000u64).step_by(997) {
            assert_eq!(ids.get(&format!("tx-{seq}"), 200_000), Some(seq));
        }
        let strangers = (0..10_000).filter(|i| ids.get(&format!("rx-{i}"), 200_000).is_some());
        assert!(strangers.count() <= 1, "40-bit fingerprints rarely collide");
    }

    /// Past 16,777,215 events, a fingerprint points to every seq with the
    /// low bits it keeps, up to the last event.
    #[test]
    fn suspects_past_24_bits_of_seq_are_every_seq_with_those_low_bits() {
        let mut ids = Ids::fingerprinting();
        let seq = (3 << 24) + 5;
        ids.insert("late", seq);
        let suspects: Vec<u64> = ids.suspects("late", (4 << 24) + 4).collect();
        assert_eq!(suspects, [5, (1 << 24) + 5, (2 << 24) + 5, seq]);
        assert_eq!(ids.suspects("late", 4).count(), 0);
        let mut low = Ids::fingerprinting();
        low.insert("zero", 1 << 24);
        assert_eq!(low.get("zero", 1 << 24), Some(1 << 24), "seq 0 is none");
    }

    /// A collected entry keeps 24 bits of its seq: past 16,777,215
    /// events, the seqs it names are every one with those bits.
    #[test]
    fn collected_seqs_past_24_bits_are_every_seq_with_those_low_bits() {
        let mut ids = Ids::collecting();
        let seq = (2 << 24) + 5;
        ids.insert("late", seq);
        ids.insert("late", 5);
        assert_eq!(ids.shared_prints(seq), [vec![5, (1 << 24) + 5, seq]]);
    }

    #[test]
    fn only_an_index_of_names_can_be_saved() {
        let mut ids = Ids::default();
        ids.insert("k", 3);
        let json = serde_json::to_string(&ids).unwrap();
        assert_eq!(json, r#"{"k":3}"#);
        assert_eq!(serde_json::from_str::<Ids>(&json).unwrap(), ids);
        let mut prints = Ids::fingerprinting();
        prints.insert("k", 3);
        assert!(serde_json::to_string(&prints).is_err());
        assert!(serde_json::to_string(&Ids::collecting()).is_err());
    }
}
