//! The read model's tables and the mapping between their rows and the
//! entries of a [`State`]. Money is stored as 16-byte big-endian integers
//! (never floating point); each row that carries money or a seq carries a
//! digest of its values, so that a value changed by hand or by damage is
//! seen when the row is loaded.

use rusqlite::{Connection, OptionalExtension, Row, Transaction, params};
use sha2::{Digest as _, Sha256};

use crate::domain::{Account, BUCKET_BITS, Ended, Hold, Named, State, Unit, bucket_of, id_key};
use crate::money::Amount;
use crate::threads;
use crate::time::At;

use super::links::REVERSALS;
use super::pages;
use super::{AppendedIds, ModelError};

/// The tables, created if missing. `journal` is the hash of the journal's
/// header line: which journal the model is of. The ids are kept by key
/// ([`id_key`]) and seq, not by their text (the line at that seq has it),
/// in buckets of keys ([`BUCKET_BITS`]). The accounts are kept in pages
/// linked in name order, from `first_account` through each page's `next`
/// (see [`super::pages`]), and the reversals in seq order, from
/// `first_reversed` (see [`load_reversed`]).
pub const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS head (
    one INTEGER PRIMARY KEY CHECK (one = 1),
    format TEXT NOT NULL, journal TEXT NOT NULL,
    seq INTEGER NOT NULL, hash TEXT NOT NULL, line_end INTEGER NOT NULL, at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS checked (
    one INTEGER PRIMARY KEY CHECK (one = 1),
    seq INTEGER NOT NULL, hash TEXT NOT NULL, line_end INTEGER NOT NULL, at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS units (
    idx INTEGER PRIMARY KEY, currency TEXT, decimals INTEGER NOT NULL,
    deposited BLOB NOT NULL, withdrawn BLOB NOT NULL, held BLOB NOT NULL, digest INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS account_pages (
    first TEXT PRIMARY KEY, next TEXT, count INTEGER NOT NULL, entries BLOB NOT NULL,
    digest INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS first_account (
    one INTEGER PRIMARY KEY CHECK (one = 1), name TEXT, link INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS id_keys (
    bucket INTEGER PRIMARY KEY, entries BLOB NOT NULL, digest INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS reversed (
    seq INTEGER PRIMARY KEY, by_seq INTEGER NOT NULL, digest INTEGER NOT NULL,
    next INTEGER, link INTEGER);
CREATE TABLE IF NOT EXISTS first_reversed (
    one INTEGER PRIMARY KEY CHECK (one = 1), seq INTEGER, link INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS holds (
    seq INTEGER PRIMARY KEY, account TEXT NOT NULL, amount BLOB NOT NULL, dest TEXT,
    expires TEXT, digest INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS holds_by_account ON holds (account);
CREATE INDEX IF NOT EXISTS holds_by_dest ON holds (dest);
CREATE TABLE IF NOT EXISTS ended (
    seq INTEGER PRIMARY KEY, by_seq INTEGER NOT NULL, captured INTEGER NOT NULL,
    amount BLOB NOT NULL, digest INTEGER NOT NULL);
"#;

/// A digest of a row's values: the first 8 bytes of a SHA-256 over each
/// value with its length (so that no two rows share an encoding).
#[derive(Default)]
pub(super) struct Digest(Sha256);

impl Digest {
    pub(super) fn bytes(mut self, value: &[u8]) -> Digest {
        self.0.update((value.len() as u64).to_le_bytes());
        self.0.update(value);
        self
    }

    pub(super) fn text(self, value: Option<&str>) -> Digest {
        match value {
            Some(text) => self.bytes(b"s").bytes(text.as_bytes()),
            None => self.bytes(b"-"),
        }
    }

    pub(super) fn int(self, value: i64) -> Digest {
        self.bytes(&value.to_le_bytes())
    }

    fn amount(self, value: Amount) -> Digest {
        self.bytes(&value.0.to_be_bytes())
    }

    pub(super) fn finish(self) -> i64 {
        let hash = self.0.finalize();
        let mut first = [0u8; 8];
        first.copy_from_slice(&hash[..8]);
        i64::from_le_bytes(first)
    }
}

/// A seq, offset or index as SQLite's signed integer.
pub fn int(value: impl TryInto<i64>) -> Result<i64, ModelError> {
    value
        .try_into()
        .map_err(|_| ModelError::Malformed("a number past SQLite's range".into()))
}

pub(super) fn uint<T: TryFrom<i64>>(value: i64) -> Result<T, ModelError> {
    T::try_from(value).map_err(|_| ModelError::Malformed(format!("{value} is out of range")))
}

fn amount(bytes: &[u8]) -> Result<Amount, ModelError> {
    let bytes: [u8; 16] = bytes
        .try_into()
        .map_err(|_| ModelError::Malformed("an amount is not 16 bytes".into()))?;
    Ok(Amount(i128::from_be_bytes(bytes)))
}

fn at(text: Option<String>) -> Result<Option<At>, ModelError> {
    text.map(|t| {
        At::parse_canonical(&t).ok_or_else(|| ModelError::Malformed(format!("bad time {t}")))
    })
    .transpose()
}

pub(super) fn digest_matches(
    stored: i64,
    computed: i64,
    what: impl FnOnce() -> String,
) -> Result<(), ModelError> {
    if stored == computed {
        Ok(())
    } else {
        Err(ModelError::Malformed(format!(
            "{} does not match its digest",
            what()
        )))
    }
}

pub(super) fn unit_digest(idx: i64, unit: &Unit) -> i64 {
    Digest::default()
        .bytes(b"unit")
        .int(idx)
        .text(unit.currency.as_deref())
        .int(i64::from(unit.decimals))
        .amount(unit.deposited)
        .amount(unit.withdrawn)
        .amount(unit.held)
        .finish()
}

pub(super) fn account_digest(name: &str, a: &Account, unit: i64) -> i64 {
    Digest::default()
        .bytes(b"account")
        .text(Some(name))
        .text(a.owner())
        .int(unit)
        .amount(a.balance)
        .int(i64::from(a.closed))
        .amount(a.held())
        .finish()
}

pub(super) fn hold_digest(seq: i64, h: &Hold) -> i64 {
    Digest::default()
        .bytes(b"hold")
        .int(seq)
        .text(Some(&h.account))
        .amount(h.amount)
        .text(h.to.as_deref())
        .text(h.expires.map(|e| e.to_string()).as_deref())
        .finish()
}

pub(super) fn ended_digest(seq: i64, by: i64, e: &Ended) -> i64 {
    Digest::default()
        .bytes(b"ended")
        .int(seq)
        .int(by)
        .int(i64::from(e.captured))
        .amount(e.amount)
        .finish()
}

fn id_digest(bucket: i64, entries: &[u8]) -> i64 {
    Digest::default()
        .bytes(b"ids")
        .int(bucket)
        .bytes(entries)
        .finish()
}

/// A bucket's entry begins with the bits of its id's key below the
/// bucket's, big-endian in 6 bytes; its seq follows, big-endian in as
/// many bytes as the row's first byte says (as many as its largest seq
/// takes, 1 to 8), so that entries sort as their bytes do. 9 bytes an id
/// on a journal of millions of events, where key and seq in 8 bytes each
/// took 16: a batch of ids rewrites every bucket, and the fold copies
/// them again.
const KEY_BYTES: usize = 6;

/// The bits of a key below its bucket's (see [`bucket_of`]).
const KEY_LOW_BITS: u32 = 63 - BUCKET_BITS;

/// The row of `entries` (sorted, each key in one bucket) into `out`.
fn encode_bucket(entries: &[u128], out: &mut Vec<u8>) {
    out.clear();
    let Some(widest) = entries.iter().map(|&e| e as u64).max() else {
        return;
    };
    let seq_bytes = (8 - widest.leading_zeros() as usize / 8).max(1);
    out.push(seq_bytes as u8);
    for &e in entries {
        let low = (e >> 64) as u64 & ((1 << KEY_LOW_BITS) - 1);
        out.extend_from_slice(&low.to_be_bytes()[8 - KEY_BYTES..]);
        out.extend_from_slice(&(e as u64).to_be_bytes()[8 - seq_bytes..]);
    }
}

/// The entries of the row `bytes` of bucket `bucket` ([`encode_bucket`]);
/// `None` if it is not such a row.
fn decode_bucket(bucket: i64, bytes: &[u8]) -> Option<Vec<u128>> {
    let Some((&seq_bytes, rest)) = bytes.split_first() else {
        return Some(Vec::new());
    };
    let seq_bytes = usize::from(seq_bytes);
    if !(1..=8).contains(&seq_bytes) {
        return None;
    }
    let entries = rest.chunks_exact(KEY_BYTES + seq_bytes);
    if !entries.remainder().is_empty() {
        return None;
    }
    let be = |part: &[u8]| {
        let mut word = [0; 8];
        word[8 - part.len()..].copy_from_slice(part);
        u64::from_be_bytes(word)
    };
    entries
        .map(|e| {
            let (low, seq) = e.split_at(KEY_BYTES);
            let low = be(low);
            let key = (low < 1 << KEY_LOW_BITS).then_some(bucket << KEY_LOW_BITS | low as i64)?;
            Some(id_row_of(key, be(seq)))
        })
        .collect()
}

pub(super) fn reversed_digest(seq: i64, by: i64) -> i64 {
    Digest::default()
        .bytes(b"reversed")
        .int(seq)
        .int(by)
        .finish()
}

/// Every unit, in order.
pub fn units(c: &Connection) -> Result<Vec<Unit>, ModelError> {
    let mut stmt = c.prepare_cached(
        "SELECT idx, currency, decimals, deposited, withdrawn, held, digest FROM units ORDER BY idx",
    )?;
    let mut rows = stmt.query([])?;
    let mut units = Vec::new();
    while let Some(r) = rows.next()? {
        let idx: i64 = r.get(0)?;
        if uint::<usize>(idx)? != units.len() {
            return Err(ModelError::Malformed(
                "the units are not numbered in order".into(),
            ));
        }
        let unit = Unit {
            currency: r.get::<_, Option<String>>(1)?.map(Into::into),
            decimals: uint(r.get(2)?)?,
            deposited: amount(&r.get::<_, Vec<u8>>(3)?)?,
            withdrawn: amount(&r.get::<_, Vec<u8>>(4)?)?,
            held: amount(&r.get::<_, Vec<u8>>(5)?)?,
        };
        digest_matches(r.get(6)?, unit_digest(idx, &unit), || format!("unit {idx}"))?;
        units.push(unit);
    }
    Ok(units)
}

/// The hold in row `r` (seq, account, amount, dest, expires, digest).
fn hold_row(r: &Row<'_>) -> Result<(u64, Hold), ModelError> {
    let seq: i64 = r.get(0)?;
    let hold = Hold {
        account: r.get::<_, String>(1)?.into(),
        amount: amount(&r.get::<_, Vec<u8>>(2)?)?,
        to: r.get::<_, Option<String>>(3)?.map(Into::into),
        expires: at(r.get(4)?)?,
    };
    digest_matches(r.get(5)?, hold_digest(seq, &hold), || format!("hold {seq}"))?;
    Ok((uint(seq)?, hold))
}

/// Loads account `name` into `state`, with the open holds its rules look
/// at (those on it that may lapse, and those naming it as `to`), unless
/// the state has it already; and so every account of its page the state
/// does not have: a batch that touches many accounts then reads each
/// page once, not once for each account in it.
pub fn load_account(c: &Connection, state: &mut State, name: &str) -> Result<(), ModelError> {
    if state.account(name).is_some() {
        return Ok(());
    }
    let Some(page) = pages::page_of(c, name)? else {
        return Ok(());
    };
    let mut accounts = Vec::new();
    for account in page.accounts() {
        let (name, account) = account?;
        if state.account(name).is_none() {
            accounts.push((name.to_owned(), account));
        }
    }
    if accounts.is_empty() {
        return Ok(());
    }
    // Past every name an account may have (they are ASCII, below `~`).
    let next = page.next().unwrap_or("\u{7f}");
    let mut stmt = c.prepare_cached(
        "SELECT seq, account, amount, dest, expires, digest FROM holds
         WHERE account >= ?1 AND account < ?2 AND expires IS NOT NULL
         UNION SELECT seq, account, amount, dest, expires, digest FROM holds
         WHERE dest >= ?1 AND dest < ?2 ORDER BY seq",
    )?;
    let mut rows = stmt.query([page.first(), next])?;
    let mut holds = Vec::new();
    while let Some(r) = rows.next()? {
        holds.push(hold_row(r)?);
    }
    super::load_accounts_with_holds(state, holds, |each| {
        accounts
            .into_iter()
            .try_for_each(|(name, account)| each(name, account))
    })
}

/// Reads the id of the event at a seq (`None` if it has none): the line
/// a row of `ids` names, which alone holds the id's text.
pub type IdAt<'a> = dyn FnMut(u64) -> Result<Option<String>, ModelError> + 'a;

/// Loads the seq of `--id` `id`, if it was used: the entry of its key
/// whose line, read with `id_at`, has `id` (entries of other ids that
/// share its key are passed over; a line with no id of that key is
/// damage). A state that takes the model's ids a bucket at a time
/// ([`State::wants_id_bucket`]) is given the whole bucket of `id`, its
/// entries unread: its writer settles them against their lines.
pub fn load_id(
    c: &Connection,
    state: &mut State,
    id: &str,
    id_at: &mut IdAt<'_>,
) -> Result<(), ModelError> {
    let key = state.id_key(id);
    if state.id_foreseen_new(key) {
        return Ok(());
    }
    let bucket = bucket_of(key);
    match state.wants_id_bucket(bucket_index(key)) {
        Some(true) => {
            let entries: Vec<(i64, u64)> = bucket_entries(c, bucket)?
                .iter()
                .map(|&e| (entry_key(e), e as u64))
                .collect();
            return state
                .take_id_bucket(bucket_index(key), &entries)
                .map_err(ModelError::Malformed);
        }
        Some(false) => return Ok(()),
        None if state.knows_id(id) => return Ok(()),
        None => {}
    }
    let entries = bucket_entries(c, bucket)?;
    let seqs = entries.iter().filter(|&&e| entry_key(e) == key);
    for seq in seqs.map(|&e| e as u64) {
        if seq == 0 || seq > state.seq() {
            return Err(ModelError::Malformed(format!(
                "an id is recorded at seq {seq}, after the last event"
            )));
        }
        match id_at(seq)? {
            Some(text) if text == id => {
                return state.load_id(id, seq).map_err(ModelError::Malformed);
            }
            Some(text) if id_key(&text) == key => {}
            _ => {
                return Err(ModelError::Malformed(format!(
                    "the line of seq {seq} has no id of the key its entry records"
                )));
            }
        }
    }
    Ok(())
}

/// The keys among `keys` (sorted) that the model's ids have: each
/// bucket they fall in read once, checked against its digest.
pub fn keys_held(c: &Connection, keys: &[i64]) -> Result<Vec<i64>, ModelError> {
    let mut held = Vec::new();
    for run in keys.chunk_by(|a, b| bucket_of(*a) == bucket_of(*b)) {
        let Some(&first) = run.first() else {
            continue;
        };
        let mut entries: Vec<i64> = bucket_entries(c, bucket_of(first))?
            .iter()
            .map(|&e| entry_key(e))
            .collect();
        entries.sort_unstable();
        held.extend(run.iter().filter(|k| entries.binary_search(k).is_ok()));
    }
    Ok(held)
}

/// The entries of bucket `bucket`, checked against its digest.
fn bucket_entries(c: &Connection, bucket: i64) -> Result<Vec<u128>, ModelError> {
    match stored_bucket(c, bucket)? {
        Some(entries) => Ok(entries),
        None if holds_no_id(c)? => Ok(Vec::new()),
        // Every bucket has a row, empty or not, from the first id on: a
        // missing one is a row lost (deleted, moved, the table dropped),
        // which would let a repeat be appended again.
        None => Err(ModelError::Malformed(format!(
            "the row of id bucket {bucket} is missing"
        ))),
    }
}

/// The bucket of the row that a model holding no id has in place of
/// its buckets' rows: writing 65,536 empty rows was a tenth of a batch
/// of a million commands without ids into a new journal. A model with
/// ids has every bucket's row and not this one, so a row lost from it is
/// still seen; and without this row, no bucket's absence is believed.
const NO_ID_BUCKET: i64 = -1;

/// Whether the model says it holds no id (its row checked against its
/// digest, and empty).
fn holds_no_id(c: &Connection) -> Result<bool, ModelError> {
    Ok(stored_bucket(c, NO_ID_BUCKET)?.is_some_and(|entries| entries.is_empty()))
}

/// The entries of the row of bucket `bucket`, if it has one, checked
/// against its digest.
fn stored_bucket(c: &Connection, bucket: i64) -> Result<Option<Vec<u128>>, ModelError> {
    let mut stmt =
        c.prepare_cached("SELECT bucket, entries, digest FROM id_keys WHERE bucket = ?1")?;
    let row = stmt.query_row([bucket], |r| Ok(bucket_row(r))).optional()?;
    row.transpose()
}

/// The entries of bucket row `r` (bucket, entries, digest) of `id_keys`,
/// checked against its digest and for order (each key in that bucket,
/// in increasing order, once with each seq).
fn bucket_row(r: &Row<'_>) -> Result<Vec<u128>, ModelError> {
    let (bucket, bytes): (i64, Vec<u8>) = (r.get(0)?, r.get(1)?);
    digest_matches(r.get(2)?, id_digest(bucket, &bytes), || {
        format!("id bucket {bucket}")
    })?;
    let decoded = decode_bucket(bucket, &bytes);
    let whole = decoded.is_some();
    let entries = decoded.unwrap_or_default();
    let in_bucket = entries.iter().all(|&e| {
        let key = entry_key(e);
        key >= 0 && bucket_of(key) == bucket
    });
    if !whole || !in_bucket || !entries.is_sorted_by(|a, b| a < b) {
        return Err(ModelError::Malformed(format!(
            "id bucket {bucket} is not a sorted list of its keys"
        )));
    }
    Ok(entries)
}

/// The key of an entry (an id's key and seq as one number, see
/// [`id_row_of`]).
fn entry_key(entry: u128) -> i64 {
    (entry >> 64) as i64
}

/// Loads whether the movement at `seq` was reversed.
pub fn load_reversed(c: &Connection, state: &mut State, seq: u64) -> Result<(), ModelError> {
    if state.reversed_by(seq).is_some() {
        return Ok(());
    }
    let mut stmt = c.prepare_cached("SELECT by_seq, digest FROM reversed WHERE seq = ?1")?;
    let key = int(seq)?;
    if let Some((by, digest)) = stmt
        .query_row([key], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)))
        .optional()?
    {
        digest_matches(digest, reversed_digest(key, by), || {
            format!("reversal of {seq}")
        })?;
        state
            .load_reversed(seq, uint(by)?)
            .map_err(ModelError::Malformed)?;
        return Ok(());
    }
    // Not reversed, on the word of the link before it: a lost row would
    // let a second reversal be appended.
    REVERSALS.before(c, &key).map(|_| ())
}

/// Loads the hold placed at `seq`, open or ended, if it is one.
pub fn load_hold(c: &Connection, state: &mut State, seq: u64) -> Result<(), ModelError> {
    if state.hold(seq).is_some() || state.ended(seq).is_some() {
        return Ok(());
    }
    let key = int(seq)?;
    let mut open = c.prepare_cached(
        "SELECT seq, account, amount, dest, expires, digest FROM holds WHERE seq = ?1",
    )?;
    if let Some((seq, hold)) = open
        .query_row([key], |r| Ok(hold_row(r)))
        .optional()?
        .transpose()?
    {
        state.load_hold(seq, hold).map_err(ModelError::Malformed)?;
        return Ok(());
    }
    let mut ended =
        c.prepare_cached("SELECT by_seq, captured, amount, digest FROM ended WHERE seq = ?1")?;
    let row = ended
        .query_row([key], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, Vec<u8>>(2)?,
                r.get::<_, i64>(3)?,
            ))
        })
        .optional()?;
    if let Some((by, captured, held, digest)) = row {
        let end = Ended {
            by: uint(by)?,
            captured: captured != 0,
            amount: amount(&held)?,
        };
        digest_matches(digest, ended_digest(key, by, &end), || {
            format!("ended hold {seq}")
        })?;
        state.load_ended(seq, end).map_err(ModelError::Malformed)?;
    }
    Ok(())
}

/// Loads every entry. Not for a model that holds ids: it has their keys,
/// and the lines hold their text (a reader replays the journal instead).
pub fn load_all(c: &Connection, state: &mut State) -> Result<(), ModelError> {
    load_every_account(c, state)?;
    load_the_rest(c, state)
}

/// Every open hold, by seq.
pub fn open_holds(c: &Connection) -> Result<Vec<(u64, Hold)>, ModelError> {
    let mut stmt = c.prepare_cached(
        "SELECT seq, account, amount, dest, expires, digest FROM holds ORDER BY seq",
    )?;
    let mut rows = stmt.query([])?;
    let mut holds = Vec::new();
    while let Some(r) = rows.next()? {
        holds.push(hold_row(r)?);
    }
    Ok(holds)
}

/// Up to `n` accounts whose names come after `after`, in name order, each
/// checked against its digest if `check` (its holds not attached).
pub fn accounts_after(
    c: &Connection,
    after: &str,
    n: usize,
    check: bool,
) -> Result<Vec<(String, Account)>, ModelError> {
    pages::after(c, after, n, check)
}

/// Loads every account, with the open holds.
pub fn load_every_account(c: &Connection, state: &mut State) -> Result<(), ModelError> {
    let holds = open_holds(c)?;
    super::load_accounts_with_holds(state, holds, |each| {
        pages::each(c, |name, account| each(name.to_owned(), account))
    })
}

/// Loads the ids, reversals and ended holds.
fn load_the_rest(c: &Connection, state: &mut State) -> Result<(), ModelError> {
    let mut stmt = c.prepare("SELECT 1 FROM id_keys WHERE length(entries) > 0 LIMIT 1")?;
    if stmt.exists([])? {
        return Err(ModelError::IdsByKey);
    }
    let mut stmt = c.prepare("SELECT seq FROM reversed")?;
    let seqs: Vec<i64> = stmt
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    for seq in seqs {
        load_reversed(c, state, uint(seq)?)?;
    }
    let mut stmt = c.prepare("SELECT seq FROM ended")?;
    let seqs: Vec<i64> = stmt
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    for seq in seqs {
        load_hold(c, state, uint(seq)?)?;
    }
    Ok(())
}

/// How many accounts there are.
pub fn account_count(c: &Connection) -> Result<usize, ModelError> {
    pages::count(c)
}

/// The names of every account.
pub fn account_names(c: &Connection) -> Result<Vec<String>, ModelError> {
    let mut names = Vec::new();
    pages::each(c, |name, _| {
        names.push(name.to_owned());
        Ok(())
    })?;
    Ok(names)
}

/// Empties every table, for a rebuild (whose [`save`] then writes every
/// bucket of ids, empty ones too, or if there is no id, the row saying
/// so).
pub fn clear(tx: &Transaction<'_>) -> Result<(), ModelError> {
    // The accounts' and reversals' tables are made again: a model of an
    // older format has no links in them, or no pages.
    tx.execute_batch(
        "DROP TABLE IF EXISTS accounts; DROP TABLE IF EXISTS account_pages;
         DROP TABLE IF EXISTS first_account;
         DROP TABLE IF EXISTS reversed; DROP TABLE IF EXISTS first_reversed;",
    )?;
    tx.execute_batch(SCHEMA)?;
    tx.execute_batch(
        "DELETE FROM head; DELETE FROM checked; DELETE FROM units; DELETE FROM id_keys;
         DELETE FROM reversed; DELETE FROM holds; DELETE FROM ended;
         -- Format 3 kept the ids by text here; its rows are of no use now.
         DROP TABLE IF EXISTS ids;",
    )?;
    super::index::clear(tx)
}

/// Ids past which their keys are worked out on a thread of their own while
/// the accounts are written: a SHA-256 each, half a second for the
/// 4,000,000 ids of a rebuild; a command's few ids are not worth a thread.
const IDS_ON_A_THREAD: usize = 100_000;

/// Writes the entries `state` holds (for a partial state, what the command
/// loaded and changed; for a whole one, everything). `fresh`: the tables
/// were just emptied ([`clear`]), for a rebuild, and every account is
/// written; else, over rows that hold the rest, only the accounts changed
/// since they were read from them ([`State::changed_accounts`]).
pub fn save(
    tx: &Transaction<'_>,
    state: &State,
    appended: AppendedIds,
    fresh: bool,
) -> Result<(), ModelError> {
    let named = if state.ids().size_hint().0 < IDS_ON_A_THREAD {
        save_units_and_accounts(tx, state, fresh)?;
        named_entries(state)
    } else {
        std::thread::scope(|scope| {
            let named = threads::scoped(scope, "id-names", || named_entries(state));
            save_units_and_accounts(tx, state, fresh)?;
            match named {
                Ok(named) => named
                    .join()
                    .map_err(|_| ModelError::Malformed("the ids' keys were not worked out".into())),
                // No thread to be had: the keys are worked out here.
                Err(_) => Ok(named_entries(state)),
            }
        })?
    };
    save_ids(tx, &named, appended, fresh)?;
    save_holds(tx, state, fresh)
}

/// The ids `state` knows by name, as bucket entries ([`id_row_of`]) in
/// order.
fn named_entries(state: &State) -> Vec<u128> {
    let mut named: Vec<u128> = state
        .ids()
        .map(|(id, seq)| id_row_of(id_key(id), seq))
        .collect();
    named.sort_unstable();
    named
}

fn save_units_and_accounts(
    tx: &Transaction<'_>,
    state: &State,
    fresh: bool,
) -> Result<(), ModelError> {
    tx.execute("DELETE FROM units", [])?;
    let mut stmt = tx.prepare_cached(
        "INSERT INTO units (idx, currency, decimals, deposited, withdrawn, held, digest)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?;
    for (i, u) in state.units().iter().enumerate() {
        let idx = int(i)?;
        stmt.execute(params![
            idx,
            u.currency.as_deref(),
            u.decimals,
            u.deposited.0.to_be_bytes(),
            u.withdrawn.0.to_be_bytes(),
            u.held.0.to_be_bytes(),
            unit_digest(idx, u)
        ])?;
    }
    // In key order: a rebuild then fills each B-tree from left to right.
    let named = if fresh {
        state.accounts_by_name(|_| true)
    } else {
        state.changed_accounts_by_name()
    };
    let accounts = InOrder {
        state,
        named: &named,
    };
    if fresh {
        pages::save_all(tx, accounts.iter())
    } else {
        pages::save_changed(tx, accounts.iter())
    }
}

/// Accounts of `state` in the order of their names, 8 bytes each once
/// sorted: sorted by the state, which compares the names' first bytes
/// kept beside each one (sorting pairs of references to them by the names
/// themselves read two names from all over memory at each comparison, and
/// kept 24 bytes an account while the rows were written).
#[derive(Clone, Copy)]
struct InOrder<'s> {
    state: &'s State,
    named: &'s [Named],
}

impl<'s> InOrder<'s> {
    fn iter(self) -> impl Iterator<Item = (&'s str, &'s Account)> + Clone + 's {
        self.named.iter().map(move |&named| {
            let (name, _, account) = self.state.named_account(named);
            (name, account)
        })
    }
}

/// The ids `named` (sorted entries) and those `appended` holds, merged
/// into the entries of their buckets, in bucket order (a rebuild then
/// fills the B-tree from left to right). After [`clear`] (`fresh`), or
/// with the first ids, every bucket gets its row, empty ones too (about
/// 1 MB): then a lookup that finds none has found damage, not an unused
/// bucket; and no row is read. Until the first id, one row says there is
/// none ([`NO_ID_BUCKET`]).
fn save_ids(
    tx: &Transaction<'_>,
    named: &[u128],
    appended: AppendedIds,
    fresh: bool,
) -> Result<(), ModelError> {
    if named.is_empty() && appended.is_empty() {
        if fresh {
            let none: &[u8] = &[];
            tx.prepare_cached(
                "INSERT OR REPLACE INTO id_keys (bucket, entries, digest) VALUES (?1, ?2, ?3)",
            )?
            .execute(params![NO_ID_BUCKET, none, id_digest(NO_ID_BUCKET, none)])?;
        }
        return Ok(());
    }
    // The first ids: every bucket gets its row, as after a clear.
    let fresh = fresh || holds_no_id(tx)?;
    if fresh {
        tx.prepare_cached("DELETE FROM id_keys WHERE bucket = ?1")?
            .execute([NO_ID_BUCKET])?;
    }
    let mut named = named
        .chunk_by(|a, b| bucket_of(entry_key(*a)) == bucket_of(entry_key(*b)))
        .peekable();
    let mut added = appended.by_bucket()?.peekable();
    let mut every = (0..int(BUCKETS)?).filter(|_| fresh).peekable();
    let mut read =
        tx.prepare_cached("SELECT bucket, entries, digest FROM id_keys WHERE bucket = ?1")?;
    let mut write = tx.prepare_cached(
        "INSERT OR REPLACE INTO id_keys (bucket, entries, digest) VALUES (?1, ?2, ?3)",
    )?;
    let mut bytes = Vec::new();
    loop {
        let named_at = named.peek().map(|group| bucket_of(entry_key(group[0])));
        let added_at = added.peek().map(|(bucket, _)| *bucket);
        let every_at = every.peek().copied();
        let Some(bucket) = [named_at, added_at, every_at].into_iter().flatten().min() else {
            return Ok(());
        };
        if every_at == Some(bucket) {
            every.next();
        }
        let mut entries = match fresh {
            true => Vec::new(),
            false => read
                .query_row([bucket], |r| Ok(bucket_row(r)))
                .optional()?
                .transpose()?
                .unwrap_or_default(),
        };
        if named_at == Some(bucket) {
            entries.extend_from_slice(named.next().unwrap_or_default());
        }
        if added_at == Some(bucket) {
            entries.extend(added.next().map(|(_, new)| new).unwrap_or_default());
        }
        entries.sort_unstable();
        entries.dedup();
        encode_bucket(&entries, &mut bytes);
        write.execute(params![bucket, bytes, id_digest(bucket, &bytes)])?;
    }
}

/// The bucket of a key, as an index among the `2^BUCKET_BITS` buckets.
pub(super) fn bucket_index(key: i64) -> usize {
    usize::try_from(bucket_of(key)).unwrap_or(0)
}

/// How many buckets there are.
pub(super) const BUCKETS: usize = 1 << BUCKET_BITS;

/// An id's key and seq as one number that sorts as the entries do (a key
/// is never negative): 16 bytes an id for an append of millions.
pub(super) fn id_row_of(key: i64, seq: u64) -> u128 {
    (u128::from(key.unsigned_abs()) << 64) | u128::from(seq)
}

fn save_holds(tx: &Transaction<'_>, state: &State, fresh: bool) -> Result<(), ModelError> {
    let mut stmt = tx.prepare_cached(
        "INSERT OR REPLACE INTO holds (seq, account, amount, dest, expires, digest)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    for (seq, h) in state.holds() {
        let seq = int(seq)?;
        stmt.execute(params![
            seq,
            &*h.account,
            h.amount.0.to_be_bytes(),
            h.to.as_deref(),
            h.expires.map(|e| e.to_string()),
            hold_digest(seq, h)
        ])?;
    }
    let mut gone = tx.prepare_cached("DELETE FROM holds WHERE seq = ?1")?;
    let mut stmt = tx.prepare_cached(
        "INSERT OR REPLACE INTO ended (seq, by_seq, captured, amount, digest)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    for (seq, e) in state.ended_holds() {
        let (seq, by) = (int(seq)?, int(e.by)?);
        gone.execute([seq])?;
        stmt.execute(params![
            seq,
            by,
            e.captured,
            e.amount.0.to_be_bytes(),
            ended_digest(seq, by, &e)
        ])?;
    }
    save_reversals(tx, state, fresh)
}

/// Writes the reversals `state` holds: after [`clear`] (`fresh`), all of
/// them, each linked to the next; else those new to the rows, each linked
/// in after the row before it (a reversal never changes once made).
fn save_reversals(tx: &Transaction<'_>, state: &State, fresh: bool) -> Result<(), ModelError> {
    let mut reversals = state
        .reversals()
        .map(|(of, by)| Ok((int(of)?, int(by)?)))
        .collect::<Result<Vec<(i64, i64)>, ModelError>>()?;
    reversals.sort_unstable();
    let mut insert = tx.prepare_cached(
        "INSERT OR IGNORE INTO reversed (seq, by_seq, digest, next, link)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    if !fresh {
        for &(of, by) in &reversals {
            if insert.execute(params![
                of,
                by,
                reversed_digest(of, by),
                None::<i64>,
                None::<i64>
            ])? == 1
            {
                REVERSALS.link_in(tx, &of)?;
            }
        }
        return Ok(());
    }
    let seqs = reversals.iter().map(|(of, _)| of);
    for (&(of, by), (next, link)) in reversals.iter().zip(REVERSALS.links(seqs)) {
        insert.execute(params![of, by, reversed_digest(of, by), next, link])?;
    }
    REVERSALS.set_first(tx, reversals.first().map(|(of, _)| of))
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// A bucket's entries read back as written, whatever their seqs'
        /// width; a row of another width, length or key is not a row.
        #[test]
        fn a_buckets_entries_read_back_as_written(
            bucket in 0i64..1 << BUCKET_BITS,
            mut ids in proptest::collection::vec((0i64..1 << KEY_LOW_BITS, 1u32..64), 0..40),
        ) {
            let mut entries: Vec<u128> = ids
                .drain(..)
                .map(|(low, bits)| id_row_of(bucket << KEY_LOW_BITS | low, u64::MAX >> (64 - bits)))
                .collect();
            entries.sort_unstable();
            let mut bytes = Vec::new();
            encode_bucket(&entries, &mut bytes);
            proptest::prop_assert_eq!(decode_bucket(bucket, &bytes), Some(entries.clone()));
            if let Some((_, rest)) = bytes.split_first() {
                for width in [0u8, 9] {
                    let other: Vec<u8> = std::iter::once(width).chain(rest.iter().copied()).collect();
                    proptest::prop_assert_eq!(decode_bucket(bucket, &other), None);
                }
                proptest::prop_assert_eq!(decode_bucket(bucket, &bytes[..bytes.len() - 1]), None);
                let mut high = bytes.clone();
                high[1] |= 0x80;
                proptest::prop_assert_eq!(decode_bucket(bucket, &high), None);
            }
        }
    }
    use crate::domain::KEY_MASK;
    use crate::event::{Change, Event};
    use crate::journal::line::LineHash;
    use crate::journal::scan::Head;
    use crate::journal::sidecar::Owner;
    use crate::readmodel::ReadModel;

    /// A model of one account `a` in EUR with 2.50, and its head.
    fn model() -> (tempfile::TempDir, ReadModel, Head) {
        let dir = tempfile::tempdir().expect("dir");
        let journal = dir.path().join("j.jsonl");
        let owner = Owner::of(&std::fs::metadata(dir.path()).expect("meta"));
        let mut model = ReadModel::open(&journal, owner).expect("model");
        let at = At::parse_canonical("2026-11-26T00:00:00.000000Z").expect("at");
        let mut state = State::default();
        let created = Change::AccountCreated {
            account: "a".into(),
            owner: None,
            currency: Some("EUR".into()),
            decimals: 2,
        };
        crate::domain::evolve(&mut state, &Event::new(1, at, created));
        let deposit = Change::MoneyDeposited {
            account: "a".into(),
            amount: crate::money::Decimal::new(Amount(250), 2),
        };
        let event = Event {
            id: Some("k".into()),
            ..Event::new(2, at, deposit)
        };
        crate::domain::evolve(&mut state, &event);
        let head = build_at(&mut model, &state, 2, at);
        (dir, model, head)
    }

    /// Rows forged with their digests recomputed, so that only the values
    /// are wrong, are still refused: values no command could have left.
    #[test]
    fn forged_rows_with_values_no_command_accepts_are_refused() {
        let (_dir, model, head) = model();
        assert!(model.load_every_account(head).is_ok());
        let c = model.conn().expect("conn");
        let forge = |sql: &str| c.execute_batch(sql).expect("forge");
        let unit = Unit {
            currency: Some("EUR".into()),
            decimals: 19,
            deposited: Amount(250),
            withdrawn: Amount::ZERO,
            held: Amount(250),
        };
        forge(&format!(
            "UPDATE units SET decimals = 19, digest = {}",
            unit_digest(0, &unit)
        ));
        assert!(matches!(
            model.load_every_account(head),
            Err(ModelError::Malformed(_))
        ));
        assert!(model.base(head).is_err());
    }

    /// An account of 2.50 in unit 0.
    fn account() -> Account {
        Account::from(crate::domain::AccountForm {
            owner: None,
            unit: 0,
            balance: Amount(250),
            closed: false,
            held: Amount::ZERO,
            expiring: Vec::new(),
            incoming: Vec::new(),
        })
    }

    #[test]
    fn an_account_name_no_command_accepts_is_refused() {
        let (_dir, model, head) = model();
        let c = model.conn().expect("conn");
        let tx = c.unchecked_transaction().expect("tx");
        tx.execute_batch("DELETE FROM account_pages")
            .expect("forge");
        pages::save_all(&tx, [("a b", &account())].into_iter()).expect("forge");
        tx.commit().expect("forge");
        let mut state = model.base(head).expect("base");
        let err = crate::readmodel::rows::load_account(c, &mut state, "a b");
        assert!(matches!(err, Err(ModelError::Malformed(_))), "{err:?}");
    }

    /// Builds `model` from `state` at seq `seq` (a head of made-up bytes
    /// at 1000, its time `at`), and that head.
    fn build_at(model: &mut ReadModel, state: &State, seq: u64, at: At) -> Head {
        let head = Head {
            seq,
            hash: LineHash::of(b"x"),
            end: 1000,
            at,
        };
        model.build(state, head, LineHash::of(b"h")).expect("build");
        head
    }

    /// An empty model beside `j.jsonl` in a new directory, a time, and a
    /// state of account `a` opened at seq 1 at that time.
    fn a_model_and_account_a() -> (tempfile::TempDir, ReadModel, At, State) {
        let dir = tempfile::tempdir().expect("dir");
        let owner = Owner::of(&std::fs::metadata(dir.path()).expect("meta"));
        let model = ReadModel::open(&dir.path().join("j.jsonl"), owner).expect("model");
        let at = At::parse_canonical("2026-11-26T00:00:00.000000Z").expect("at");
        let mut state = State::default();
        let created = Change::AccountCreated {
            account: "a".into(),
            owner: None,
            currency: None,
            decimals: 2,
        };
        crate::domain::evolve(&mut state, &Event::new(1, at, created));
        (dir, model, at, state)
    }

    /// A model of deposits with ids `k1`, `k2`, `k3` at seqs 2-4, built
    /// while every id's key is 0, its head, and the ids by seq.
    fn model_of_ids_sharing_a_key() -> (tempfile::TempDir, ReadModel, Head, Vec<Option<String>>) {
        let (dir, mut model, at, mut state) = a_model_and_account_a();
        let mut ids = vec![None, None];
        for seq in 2..=4 {
            let deposit = Change::MoneyDeposited {
                account: "a".into(),
                amount: crate::money::Decimal::new(Amount(1), 2),
            };
            let id = format!("k{}", seq - 1);
            let event = Event {
                id: Some(id.clone().into()),
                ..Event::new(seq, at, deposit)
            };
            crate::domain::evolve(&mut state, &event);
            ids.push(Some(id));
        }
        let head = Head {
            seq: 4,
            hash: LineHash::of(b"x"),
            end: 1000,
            at,
        };
        KEY_MASK.set(0);
        model
            .build(&state, head, LineHash::of(b"h"))
            .expect("build");
        (dir, model, head, ids)
    }

    /// Ids that share a key are told apart by the lines their rows name:
    /// each is found at its own seq, and another id of that key is new.
    #[test]
    fn ids_sharing_a_key_are_told_apart_by_their_lines() {
        let (_dir, model, head, ids) = model_of_ids_sharing_a_key();
        let c = model.conn().expect("conn");
        let buckets: Vec<(i64, i64)> = c
            .prepare("SELECT bucket, length(entries) FROM id_keys WHERE length(entries) > 0")
            .and_then(|mut s| s.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect())
            .expect("buckets");
        // A byte for the seqs' width (1), then 6 + 1 bytes an id.
        assert_eq!(buckets, [(0, 1 + 3 * 7)], "every id shares one key");
        let mut reads = 0;
        let mut id_at = |seq: u64| {
            reads += 1;
            Ok(ids[seq as usize].clone())
        };
        let mut state = model.base(head).expect("base");
        for (id, seq) in [("k2", 3), ("k1", 2), ("k3", 4)] {
            load_id(c, &mut state, id, &mut id_at).expect("load");
            assert_eq!(state.id_seq(id), Some(seq), "{id}");
        }
        load_id(c, &mut state, "k4", &mut id_at).expect("load");
        assert_eq!(state.id_seq("k4"), None, "an id that only shares the key");
        assert!(reads >= 4);
        KEY_MASK.set(i64::MAX);
    }

    /// A row whose line has no id of its key is damage, not a collision.
    #[test]
    fn an_id_row_whose_line_has_another_key_is_refused() {
        let (_dir, model, head, _) = model_of_ids_sharing_a_key();
        KEY_MASK.set(i64::MAX);
        let c = model.conn().expect("conn");
        let mut state = model.base(head).expect("base");
        let key = id_key("k1");
        let mut entries = Vec::new();
        encode_bucket(&[id_row_of(key, 2)], &mut entries);
        let forged = id_digest(bucket_of(key), &entries);
        c.execute_batch("DELETE FROM id_keys").expect("forge");
        c.execute(
            "INSERT INTO id_keys VALUES (?1, ?2, ?3)",
            params![bucket_of(key), entries, forged],
        )
        .expect("forge");
        let mut id_at = |_| Ok(Some("other".to_owned()));
        let err = load_id(c, &mut state, "k1", &mut id_at);
        assert!(matches!(err, Err(ModelError::Malformed(_))), "{err:?}");
        let mut none = |_| Ok(None);
        assert!(load_id(c, &mut state, "k1", &mut none).is_err());
    }

    /// A deposit of 1.00 into `a` with `id` and `memo`.
    fn deposit_of<'a>(id: &'a str, memo: &'a str) -> crate::domain::Request<'a> {
        use crate::domain::{Command, Request};
        Request {
            id: Some(id),
            memo: Some(memo),
            ..Request::new(Command::Deposit {
                account: "a",
                amount: crate::money::Decimal::new(Amount(100), 2),
            })
        }
    }

    /// Writes account `a` and, in one append, a deposit with each id `k0`,
    /// `k1`, … and `memo` until the journal is long enough for a model;
    /// how many ids.
    fn write_long_journal_of_ids(path: &std::path::Path, memo: &str) -> u64 {
        use crate::domain::{Command, Request};
        let n = super::super::MODEL_AFTER_BYTES / memo.len().max(1) as u64 + 1;
        let mut w = crate::journal::Writer::open(path).expect("open");
        let create = Command::create("a");
        w.apply(&Request::new(create)).expect("create");
        for i in 0..n {
            w.apply(&deposit_of(&format!("k{i}"), memo))
                .expect("deposit");
        }
        w.commit().expect("commit");
        n
    }

    /// [`write_long_journal_of_ids`] in a new directory, every id's key
    /// made 0 first (one bucket, one key): the directory, the journal,
    /// the memo and how many ids.
    fn a_long_journal_of_ids_sharing_a_key() -> (tempfile::TempDir, std::path::PathBuf, String, u64)
    {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("j.jsonl");
        KEY_MASK.set(0);
        let memo = "m".repeat(500);
        let n = write_long_journal_of_ids(&path, &memo);
        (dir, path, memo, n)
    }

    /// A writer takes the model's ids a bucket at a time, unread: an
    /// entry forged whole (its digest made again) to name another id's
    /// line is seen when its suspicion is settled against that line, and
    /// the writer reads the whole journal instead: a repeat stays a
    /// repeat, and a new id is new.
    #[test]
    fn a_writer_sees_a_forged_id_entry_when_it_settles_it() {
        use crate::journal::{Outcome, Writer};
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("j.jsonl");
        let memo = "m".repeat(500);
        let n = write_long_journal_of_ids(&path, &memo);
        // k0 is at seq 2; its entry is made to name seq 3, k1's line.
        let key = id_key("k0");
        let model = crate::readmodel::ReadModel::open(&path, Owner::me()).expect("model");
        let c = model.conn().expect("conn");
        let mut entries = bucket_entries(c, bucket_of(key)).expect("bucket");
        for e in &mut entries {
            if entry_key(*e) == key {
                *e = id_row_of(key, 3);
            }
        }
        let mut bytes = Vec::new();
        encode_bucket(&entries, &mut bytes);
        c.execute(
            "UPDATE id_keys SET entries = ?2, digest = ?3 WHERE bucket = ?1",
            params![bucket_of(key), bytes, id_digest(bucket_of(key), &bytes)],
        )
        .expect("forge");
        drop(model);
        for (id, want) in [
            ("k0", Outcome::Repeat(2)),
            ("new", Outcome::Appended(n + 2)),
        ] {
            let mut w = Writer::open(&path).expect("open");
            assert_eq!(
                w.apply(&deposit_of(id, &memo)).expect("apply"),
                want,
                "{id}"
            );
            w.commit().expect("commit");
        }
        let lines = std::fs::read_to_string(&path).expect("journal");
        assert_eq!(lines.matches(r#""id":"k0""#).count(), 1);
    }

    /// A hold named by its id, every id's key the same: the writer
    /// settles which line is the hold's before it reads the hold's row,
    /// so that it captures the hold, not the first id of that key.
    #[test]
    fn a_hold_named_by_an_id_that_shares_its_key_is_found() {
        use crate::domain::{Command, Request, Target};
        use crate::journal::{Outcome, Writer};
        let (_dir, path, _, n) = a_long_journal_of_ids_sharing_a_key();
        let cents = |n| crate::money::Decimal::new(Amount(n), 2);
        let mut w = Writer::open(&path).expect("open");
        let hold = Request {
            id: Some("h"),
            ..Request::new(Command::Hold {
                account: "a",
                amount: cents(50),
                to: None,
                expires: None,
            })
        };
        assert_eq!(w.apply(&hold).expect("hold"), Outcome::Appended(n + 2));
        w.commit().expect("commit");
        drop(w);
        let mut w = Writer::open(&path).expect("open");
        let capture = Request::new(Command::Capture {
            target: Target::Id("h"),
            amount: None,
        });
        let got = w.apply(&capture);
        KEY_MASK.set(i64::MAX);
        assert_eq!(got.expect("captured"), Outcome::Appended(n + 3));
        w.commit().expect("commit");
    }

    /// Through the writer, with every id's key the same (one bucket, one
    /// key): a batch that creates a long journal, then repeats and new ids
    /// in later writes, each told apart by its line; the journal verifies
    /// as it would without the model.
    #[test]
    fn a_writer_tells_ids_sharing_a_key_apart_by_their_lines() {
        use crate::journal::{Outcome, Writer};
        let (_dir, path, memo, n) = a_long_journal_of_ids_sharing_a_key();
        let model = crate::readmodel::ReadModel::open(&path, Owner::me()).expect("model");
        let (_, entries) = buckets_and_entries(model.conn().expect("conn"));
        assert_eq!(entries, n, "every id, one key");
        for (round, (id, want)) in [
            ("k7", Outcome::Repeat(9)),
            ("new", Outcome::Appended(n + 2)),
            ("new", Outcome::Repeat(n + 2)),
            ("k0", Outcome::Repeat(2)),
        ]
        .into_iter()
        .enumerate()
        {
            let mut w = Writer::open(&path).expect("open");
            let got = w.apply(&deposit_of(id, &memo)).expect("apply");
            assert_eq!(got, want, "round {round}: {id}");
            w.commit().expect("commit");
        }
        KEY_MASK.set(i64::MAX);
        let lines = std::fs::read_to_string(&path).expect("journal");
        assert_eq!(lines.matches(r#""id":"new""#).count(), 1);
        assert_eq!(lines.matches(r#""id":"k7""#).count(), 1);
    }

    /// How many rows of id buckets there are, and entries in them.
    #[track_caller]
    fn buckets_and_entries(c: &Connection) -> (u64, u64) {
        let mut stmt = c
            .prepare("SELECT bucket, entries FROM id_keys")
            .expect("select");
        let rows: Vec<(i64, Vec<u8>)> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .and_then(|rows| rows.collect())
            .expect("rows");
        let entries = rows.iter().map(|(bucket, bytes)| {
            decode_bucket(*bucket, bytes).expect("a bucket's row").len() as u64
        });
        (rows.len() as u64, entries.sum())
    }

    /// A rebuild writes a row for every bucket, empty ones too, with every
    /// id's entry: a few ids keyed on this thread, many on another.
    #[test]
    fn a_rebuild_writes_every_bucket_with_every_id() {
        for n in [3, IDS_ON_A_THREAD as u64 + 1] {
            let (_dir, mut model, at, mut state) = a_model_and_account_a();
            for seq in 2..n + 2 {
                let deposit = Change::MoneyDeposited {
                    account: "a".into(),
                    amount: crate::money::Decimal::new(Amount(1), 2),
                };
                let event = Event {
                    id: Some(format!("k{seq}").into()),
                    ..Event::new(seq, at, deposit)
                };
                crate::domain::evolve(&mut state, &event);
            }
            let head = build_at(&mut model, &state, n + 1, at);
            let c = model.conn().expect("conn");
            let (rows, entries) = buckets_and_entries(c);
            assert_eq!((rows, entries), (BUCKETS as u64, n), "{n} ids");
            let mut base = model.base(head).expect("base");
            let mut id_at = |seq: u64| Ok(Some(format!("k{seq}")));
            load_id(c, &mut base, "k3", &mut id_at).expect("load");
            assert_eq!(base.id_seq("k3"), Some(3), "{n} ids");
        }
    }

    /// Keys are stable (the model outlives the process that wrote it),
    /// never negative, and differ for different ids.
    #[test]
    fn id_keys_are_stable_and_non_negative() {
        assert_eq!(id_key("pay-17"), id_key("pay-17"));
        assert_ne!(id_key("pay-17"), id_key("pay-18"));
        assert_eq!(id_key("pay-17"), 1_725_371_024_225_198_236);
        assert!((0..1000).all(|i| id_key(&format!("tx-{i}")) >= 0));
    }

    /// Every bucket has a row: one moved (near or far), deleted, or the
    /// whole table emptied, is damage when an id of it is asked for, not
    /// an id never used.
    #[test]
    fn a_bucket_row_moved_or_lost_is_seen_when_its_ids_are_asked() {
        for damage in [
            "UPDATE id_keys SET bucket = bucket + 70000 WHERE length(entries) > 0",
            "DELETE FROM id_keys WHERE length(entries) > 0",
            "DELETE FROM id_keys",
        ] {
            let (_dir, model, head) = model();
            let c = model.conn().expect("conn");
            c.execute_batch(damage).expect("damage");
            let mut state = model.base(head).expect("base");
            let mut id_at = |_| Ok(Some("k".to_owned()));
            assert!(load_id(c, &mut state, "k", &mut id_at).is_err(), "{damage}");
        }
    }

    /// A model with no id has one row saying so, not a row per bucket:
    /// an id's absence is believed on its word, and not without it (the
    /// row deleted, or damaged). The first ids replace it with every
    /// bucket's row.
    #[test]
    fn a_model_without_ids_says_so_in_one_row_until_its_first_ids() {
        let rows = |c: &Connection| -> i64 {
            c.query_row("SELECT count(*) FROM id_keys", [], |r| r.get(0))
                .expect("count")
        };
        for damage in [
            "",
            "DELETE FROM id_keys",
            "UPDATE id_keys SET digest = digest + 1",
            "UPDATE id_keys SET entries = zeroblob(16)",
        ] {
            let (_dir, mut model, at, state) = a_model_and_account_a();
            let head = build_at(&mut model, &state, 1, at);
            let c = model.conn().expect("conn");
            assert_eq!(rows(c), 1);
            c.execute_batch(damage).expect("damage");
            let mut state = model.base(head).expect("base");
            let mut id_at = |_| -> Result<Option<String>, ModelError> { Ok(None) };
            let absent = load_id(c, &mut state, "k", &mut id_at);
            assert_eq!(absent.is_ok(), damage.is_empty(), "{damage}: {absent:?}");
        }
        let (_dir, mut model, at, state) = a_model_and_account_a();
        build_at(&mut model, &state, 1, at);
        let c = model.conn().expect("conn");
        let tx = c.unchecked_transaction().expect("transaction");
        let mut appended = AppendedIds::default();
        appended.push(2, Some(id_key("k")));
        save_ids(&tx, &[], appended, false).expect("save");
        tx.commit().expect("commit");
        assert_eq!(rows(c), BUCKETS as i64);
        assert!(!holds_no_id(c).expect("no marker"));
    }

    #[test]
    fn a_key_changed_by_damage_is_seen_when_its_absence_is_asked() {
        let (_dir, model, head) = model();
        let c = model.conn().expect("conn");
        // `k`'s row took its neighbour's bucket, whose row is gone: its
        // digest no longer matches its bucket.
        c.execute_batch(&format!(
            "DELETE FROM id_keys WHERE bucket = {b} + 1;
             UPDATE id_keys SET bucket = bucket + 1 WHERE bucket = {b}",
            b = bucket_of(id_key("k"))
        ))
        .expect("damage");
        let mut state = model.base(head).expect("base");
        let mut id_at = |_| Ok(Some("k".to_owned()));
        assert!(load_id(c, &mut state, "k", &mut id_at).is_err());
        c.execute_batch("UPDATE account_pages SET first = 'b'")
            .expect("damage");
        assert!(load_account(c, &mut state, "a").is_err());
    }
}
