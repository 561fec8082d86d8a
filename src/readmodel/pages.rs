//! The read model's accounts, in pages: rows of up to [`PAGE_MAX`]
//! accounts whose names follow one another, each keyed by its first name
//! and naming the next page's first name, under one digest of all it
//! holds. A million accounts are some 62,500 rows rather than a million:
//! SQLite's cost is mostly per row, so a rebuild writes, and a batch that
//! touches most accounts reads and writes, a sixteenth as many.
//!
//! The links keep an account's absence the rows' word, not a missing
//! row's: the page where a name would be says it is not there, and a page
//! lost (deleted, or moved by damage to its key) leaves the page before it
//! (or the link to the first, in `first_account`) naming it, a name at or
//! before the one looked up ([`place`]). An absence is what lets `create`
//! append, so it is not taken on the word of a damaged file.

use rusqlite::{Connection, OptionalExtension, Row, Transaction, params};

use crate::domain::{Account, AccountForm};
use crate::money::Amount;

use super::ModelError;
use super::rows::{Digest, digest_matches, int, uint};

/// Accounts a rebuild puts in each page, and about as many as each part
/// of a page split in two or more keeps: room to grow by as many again.
const PAGE_FILL: usize = if cfg!(test) { 2 } else { 16 };

/// Accounts past which a page is split.
const PAGE_MAX: usize = if cfg!(test) { 4 } else { 32 };

/// An owner's length that says there is none.
const NO_OWNER: u16 = u16::MAX;

/// Bytes of an entry after its name and owner: unit (4), closed (1),
/// balance and held (16 each).
const FIXED: usize = 4 + 1 + 16 + 16;

/// Appends account `name`'s entry to `out`: its name's length (a byte)
/// and name, its owner's length (two bytes, little-endian; [`NO_OWNER`]
/// for none) and owner, its unit (4 bytes, little-endian), whether it is
/// closed (a byte), its balance and the sum of its holds (16 bytes each,
/// big-endian, as the other rows keep money).
fn put(out: &mut Vec<u8>, name: &str, a: &Account) -> Result<(), ModelError> {
    let too_long = || ModelError::Malformed(format!("account {name} is too long for a page"));
    out.push(u8::try_from(name.len()).map_err(|_| too_long())?);
    out.extend_from_slice(name.as_bytes());
    match a.owner() {
        Some(owner) => {
            let len = u16::try_from(owner.len())
                .ok()
                .filter(|&l| l != NO_OWNER)
                .ok_or_else(too_long)?;
            out.extend_from_slice(&len.to_le_bytes());
            out.extend_from_slice(owner.as_bytes());
        }
        None => out.extend_from_slice(&NO_OWNER.to_le_bytes()),
    }
    out.extend_from_slice(&a.unit.to_le_bytes());
    out.push(u8::from(a.closed));
    out.extend_from_slice(&a.balance.0.to_be_bytes());
    out.extend_from_slice(&a.held().0.to_be_bytes());
    Ok(())
}

fn cut_short() -> ModelError {
    ModelError::Malformed("an account page is cut short".into())
}

/// The first entry of `bytes`, its parts as [`put`] lays them out.
struct Entry<'p> {
    name: &'p str,
    owner: Option<&'p str>,
    /// Unit, closed, balance and held ([`FIXED`] bytes).
    fixed: &'p [u8],
    /// The whole entry, name included.
    bytes: &'p [u8],
}

/// `bytes` as text, or why not: `what` is not text.
fn text<'b>(bytes: &'b [u8], what: &str) -> Result<&'b str, ModelError> {
    std::str::from_utf8(bytes)
        .map_err(|_| ModelError::Malformed(format!("an account's {what} is not text")))
}

/// The first entry of `bytes`, and what follows it.
fn split_entry(bytes: &[u8]) -> Result<(Entry<'_>, &[u8]), ModelError> {
    let name_end = 1 + usize::from(*bytes.first().ok_or_else(cut_short)?);
    let name = text(bytes.get(1..name_end).ok_or_else(cut_short)?, "name")?;
    let len = bytes.get(name_end..name_end + 2).ok_or_else(cut_short)?;
    let owner_at = name_end + 2;
    let (owner, fixed_at) = match u16::from_le_bytes([len[0], len[1]]) {
        NO_OWNER => (None, owner_at),
        len => {
            let end = owner_at + usize::from(len);
            let owner = bytes.get(owner_at..end).ok_or_else(cut_short)?;
            (Some(text(owner, "owner")?), end)
        }
    };
    let end = fixed_at + FIXED;
    let entry = Entry {
        name,
        owner,
        fixed: bytes.get(fixed_at..end).ok_or_else(cut_short)?,
        bytes: bytes.get(..end).ok_or_else(cut_short)?,
    };
    Ok((entry, bytes.get(end..).ok_or_else(cut_short)?))
}

/// The account an entry holds, its holds not yet attached.
fn account_of(entry: &Entry<'_>) -> Result<Account, ModelError> {
    let (unit, rest) = entry.fixed.split_at(4);
    let (closed, rest) = rest.split_at(1);
    let (balance, held) = rest.split_at(16);
    let amount = |b: &[u8]| {
        <[u8; 16]>::try_from(b)
            .map(|b| Amount(i128::from_be_bytes(b)))
            .map_err(|_| cut_short())
    };
    let unit = <[u8; 4]>::try_from(unit).map_err(|_| cut_short())?;
    Ok(Account::from(AccountForm {
        owner: entry.owner.map(Into::into),
        unit: u32::from_le_bytes(unit),
        balance: amount(balance)?,
        closed: match closed {
            [0] => false,
            [1] => true,
            _ => {
                return Err(ModelError::Malformed(
                    "an account is neither open nor closed".into(),
                ));
            }
        },
        held: amount(held)?,
        expiring: Vec::new(),
        incoming: Vec::new(),
    }))
}

/// A page as read from its row, checked: its digest, and entries that
/// are as many as it says, in name order, from its first name on and
/// before the next page's.
pub(super) struct Page {
    first: String,
    next: Option<String>,
    entries: Vec<u8>,
}

const COLUMNS: &str = "first, next, count, entries, digest";

fn page_digest(first: &str, next: Option<&str>, count: i64, entries: &[u8]) -> i64 {
    Digest::default()
        .bytes(b"accounts")
        .text(Some(first))
        .text(next)
        .int(count)
        .bytes(entries)
        .finish()
}

impl Page {
    /// The page in row `r` ([`COLUMNS`]); its digest checked if `check`
    /// (not needed again for a row read before in the same transaction).
    fn from_row(r: &Row<'_>, check: bool) -> Result<Page, ModelError> {
        let first: String = r.get(0)?;
        let next: Option<String> = r.get(1)?;
        let count: i64 = r.get(2)?;
        let entries: Vec<u8> = r.get(3)?;
        if check {
            let computed = page_digest(&first, next.as_deref(), count, &entries);
            digest_matches(r.get(4)?, computed, || {
                format!("the page of account {first}")
            })?;
        }
        let (mut rest, mut last, mut held) = (&entries[..], None::<&str>, 0usize);
        while !rest.is_empty() {
            let (Entry { name, .. }, after) = split_entry(rest)?;
            let in_order = match last {
                Some(last) => last < name,
                None => name == first,
            };
            if !in_order || next.as_deref().is_some_and(|next| name >= next) {
                return Err(ModelError::Malformed(format!(
                    "account {name} is out of place in the page of {first}"
                )));
            }
            (rest, last, held) = (after, Some(name), held + 1);
        }
        if held != uint::<usize>(count)? || held == 0 {
            return Err(ModelError::Malformed(format!(
                "the page of account {first} does not hold {count} accounts"
            )));
        }
        Ok(Page {
            first,
            next,
            entries,
        })
    }

    /// Each entry, in order (read again: [`Page::from_row`] checked them).
    fn iter(&self) -> impl Iterator<Item = Entry<'_>> {
        let mut rest = &self.entries[..];
        std::iter::from_fn(move || {
            let (entry, after) = split_entry(rest).ok()?;
            rest = after;
            Some(entry)
        })
    }

    /// Its first name.
    pub(super) fn first(&self) -> &str {
        &self.first
    }

    /// The next page's first name: every name here comes before it.
    pub(super) fn next(&self) -> Option<&str> {
        self.next.as_deref()
    }

    /// Its accounts, in name order.
    pub(super) fn accounts(&self) -> impl Iterator<Item = Result<(&str, Account), ModelError>> {
        self.iter()
            .map(|entry| account_of(&entry).map(|a| (entry.name, a)))
    }
}

/// Where an account is or would go.
enum Place {
    /// In this page: its first name is at or before the account's, and
    /// the next page's after it.
    In(Page),
    /// Before every page: the first page's name, if there is one (after
    /// the account's), its link checked.
    BeforeFirst(Option<String>),
}

fn missing(name: &str) -> ModelError {
    ModelError::Malformed(format!("the page of account {name} is missing"))
}

/// Where account `name` is or would go, each link on the way checked: a
/// page whose link names a page at or before `name` has lost that page.
fn place(c: &Connection, name: &str) -> Result<Place, ModelError> {
    let page = c
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM account_pages WHERE first <= ?1 ORDER BY first DESC LIMIT 1"
        ))?
        .query_row([name], |r| Ok(Page::from_row(r, true)))
        .optional()?
        .transpose()?;
    match page {
        Some(page) => match &page.next {
            Some(next) if next.as_str() <= name => Err(missing(next)),
            _ => Ok(Place::In(page)),
        },
        None => match first_page(c)? {
            Some(first) if first.as_str() <= name => Err(missing(&first)),
            first => Ok(Place::BeforeFirst(first)),
        },
    }
}

/// The page whose first name is `first`, which a link names.
fn page_at(c: &Connection, first: &str) -> Result<Page, ModelError> {
    c.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM account_pages WHERE first = ?1"
    ))?
    .query_row([first], |r| Ok(Page::from_row(r, true)))
    .optional()?
    .transpose()?
    .ok_or_else(|| missing(first))
}

fn first_digest(first: Option<&str>) -> i64 {
    Digest::default()
        .bytes(b"first account")
        .text(first)
        .finish()
}

/// The first page's name (none if there are no accounts), its link
/// checked.
fn first_page(c: &Connection) -> Result<Option<String>, ModelError> {
    let (first, link): (Option<String>, i64) = c
        .prepare_cached("SELECT name, link FROM first_account WHERE one = 1")?
        .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?
        .ok_or_else(|| ModelError::Malformed("the row of first_account is missing".into()))?;
    digest_matches(link, first_digest(first.as_deref()), || {
        "the link of first_account".into()
    })?;
    Ok(first)
}

fn set_first(tx: &Transaction<'_>, first: Option<&str>) -> Result<(), ModelError> {
    tx.prepare_cached("INSERT OR REPLACE INTO first_account (one, name, link) VALUES (1, ?1, ?2)")?
        .execute(params![first, first_digest(first)])?;
    Ok(())
}

/// The page that holds account `name` if the model has it; an account
/// not in it (or with no page) is the pages' word that it has none.
pub(super) fn page_of(c: &Connection, name: &str) -> Result<Option<Page>, ModelError> {
    match place(c, name)? {
        Place::In(page) => Ok(Some(page)),
        Place::BeforeFirst(_) => Ok(None),
    }
}

/// The pages of a query in name order, followed along their links: each
/// must be the page the link before it names (the first, `expected`),
/// its digest checked if `check`.
struct Linked<'s> {
    rows: rusqlite::Rows<'s>,
    expected: Option<String>,
    check: bool,
}

impl Linked<'_> {
    /// The next page the links name; `None` past the last.
    fn next(&mut self) -> Result<Option<Page>, ModelError> {
        let Some(want) = self.expected.take() else {
            return Ok(None);
        };
        let page = match self.rows.next()? {
            Some(r) => Page::from_row(r, self.check)?,
            None => return Err(missing(&want)),
        };
        if page.first != want {
            return Err(missing(&want));
        }
        self.expected.clone_from(&page.next);
        Ok(Some(page))
    }

    /// Past the last page: a page the links do not reach is one whose
    /// key damage moved.
    fn finish(mut self) -> Result<(), ModelError> {
        match self.rows.next()? {
            Some(r) => Err(missing(&r.get::<_, String>(0)?)),
            None => Ok(()),
        }
    }
}

/// Every account, in name order, each page's digest checked and each
/// page found where the one before it says.
pub(super) fn each(
    c: &Connection,
    mut each: impl FnMut(&str, Account) -> Result<(), ModelError>,
) -> Result<(), ModelError> {
    let expected = first_page(c)?;
    let mut stmt = c.prepare(&format!(
        "SELECT {COLUMNS} FROM account_pages ORDER BY first"
    ))?;
    let mut pages = Linked {
        rows: stmt.query([])?,
        expected,
        check: true,
    };
    while let Some(page) = pages.next()? {
        for entry in page.iter() {
            each(entry.name, account_of(&entry)?)?;
        }
    }
    pages.finish()
}

/// Up to `n` accounts whose names come after `after`, in name order;
/// each page checked against its digest if `check`, and found where the
/// one before it says.
pub(super) fn after(
    c: &Connection,
    after: &str,
    n: usize,
    check: bool,
) -> Result<Vec<(String, Account)>, ModelError> {
    let start: Option<String> = c
        .prepare_cached(
            "SELECT first FROM account_pages WHERE first <= ?1 ORDER BY first DESC LIMIT 1",
        )?
        .query_row([after], |r| r.get(0))
        .optional()?;
    // From the first page, its link is checked too.
    let expected = match &start {
        Some(start) => Some(start.clone()),
        None => first_page(c)?,
    };
    let mut stmt = c.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM account_pages WHERE first >= ?1 ORDER BY first"
    ))?;
    let mut pages = Linked {
        rows: stmt.query([start.as_deref().unwrap_or("")])?,
        expected,
        check,
    };
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let Some(page) = pages.next()? else { break };
        for entry in page.iter().filter(|e| e.name > after) {
            if out.len() == n {
                break;
            }
            out.push((entry.name.to_owned(), account_of(&entry)?));
        }
    }
    Ok(out)
}

/// How many accounts there are.
pub(super) fn count(c: &Connection) -> Result<usize, ModelError> {
    let n: i64 = c.query_row(
        "SELECT coalesce(sum(count), 0) FROM account_pages",
        [],
        |r| r.get(0),
    )?;
    uint(n)
}

/// Writes pages of entries as they come, in name order, each page's link
/// naming the next page's first name.
struct Writer<'t> {
    insert: rusqlite::CachedStatement<'t>,
    per_page: usize,
    /// The page being filled: its first name, entries and their count.
    first: String,
    entries: Vec<u8>,
    count: usize,
    /// The first name written, for the link to the first.
    very_first: Option<String>,
}

impl<'t> Writer<'t> {
    fn new(tx: &'t Transaction<'_>, per_page: usize) -> Result<Writer<'t>, ModelError> {
        Ok(Writer {
            insert: tx.prepare_cached(&format!(
                "INSERT OR REPLACE INTO account_pages ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5)"
            ))?,
            per_page: per_page.max(1),
            first: String::new(),
            entries: Vec::new(),
            count: 0,
            very_first: None,
        })
    }

    /// Makes room for an entry named `name`: the page full so far is
    /// written, linked to `name`.
    fn before(&mut self, name: &str) -> Result<(), ModelError> {
        if self.count == self.per_page {
            self.flush(Some(name))?;
        }
        if self.count == 0 {
            name.clone_into(&mut self.first);
            if self.very_first.is_none() {
                self.very_first = Some(name.to_owned());
            }
        }
        self.count += 1;
        Ok(())
    }

    fn push(&mut self, name: &str, account: &Account) -> Result<(), ModelError> {
        self.before(name)?;
        put(&mut self.entries, name, account)
    }

    /// Adds an entry kept as a page had it.
    fn push_entry(&mut self, name: &str, entry: &[u8]) -> Result<(), ModelError> {
        self.before(name)?;
        self.entries.extend_from_slice(entry);
        Ok(())
    }

    /// Writes the page being filled, if any, linked to `next`.
    fn flush(&mut self, next: Option<&str>) -> Result<(), ModelError> {
        if self.count == 0 {
            return Ok(());
        }
        let count = int(self.count)?;
        let digest = page_digest(&self.first, next, count, &self.entries);
        self.insert
            .execute(params![self.first, next, count, self.entries, digest])?;
        self.entries.clear();
        self.count = 0;
        Ok(())
    }

    /// Writes the last page, linked to `next`; the first name written.
    fn finish(mut self, next: Option<&str>) -> Result<Option<String>, ModelError> {
        self.flush(next)?;
        Ok(self.very_first)
    }
}

/// Writes `accounts` (every account, in name order) into emptied tables.
pub(super) fn save_all<'a>(
    tx: &Transaction<'_>,
    accounts: impl Iterator<Item = (&'a str, &'a Account)>,
) -> Result<(), ModelError> {
    let mut pages = Writer::new(tx, PAGE_FILL)?;
    for (name, account) in accounts {
        pages.push(name, account)?;
    }
    let first = pages.finish(None)?;
    set_first(tx, first.as_deref())
}

/// Writes `accounts` (those changed, in name order) over pages that hold
/// the rest: each page one of them is or would go in is read (its links
/// checked, so that a write-back never makes good a link damage broke),
/// their entries put in, and written again, split if it grew past
/// [`PAGE_MAX`]. An account before every page goes in the first, whose
/// first name, and so the link to it, changes.
pub(super) fn save_changed<'a>(
    tx: &Transaction<'_>,
    accounts: impl Iterator<Item = (&'a str, &'a Account)>,
) -> Result<(), ModelError> {
    let mut accounts = accounts.peekable();
    while let Some(&(name, _)) = accounts.peek() {
        let (page, first_moves) = match place(tx, name)? {
            Place::In(page) => (Some(page), false),
            Place::BeforeFirst(Some(first)) => (Some(page_at(tx, &first)?), true),
            Place::BeforeFirst(None) => (None, true),
        };
        let next = page.as_ref().and_then(|p| p.next.clone());
        let mut changed = Vec::new();
        while let Some(account) =
            accounts.next_if(|(n, _)| next.as_deref().is_none_or(|next| *n < next))
        {
            changed.push(account);
        }
        let kept: Vec<(&str, &[u8])> = page
            .as_ref()
            .map(|p| p.iter().map(|e| (e.name, e.bytes)).collect())
            .unwrap_or_default();
        let total = merged_len(&kept, &changed);
        let per_page = if total <= PAGE_MAX {
            total
        } else {
            total.div_ceil(total.div_ceil(PAGE_FILL))
        };
        if let (Some(page), true) = (&page, first_moves) {
            tx.prepare_cached("DELETE FROM account_pages WHERE first = ?1")?
                .execute([&page.first])?;
        }
        let mut pages = Writer::new(tx, per_page)?;
        merge(&kept, &changed, &mut pages)?;
        let first = pages.finish(next.as_deref())?;
        if first_moves {
            set_first(tx, first.as_deref())?;
        }
    }
    Ok(())
}

/// How many entries merging `changed` into `kept` (both in name order)
/// leaves.
fn merged_len(kept: &[(&str, &[u8])], changed: &[(&str, &Account)]) -> usize {
    let replaced = changed
        .iter()
        .filter(|(name, _)| kept.binary_search_by(|(k, _)| k.cmp(name)).is_ok())
        .count();
    kept.len() + changed.len() - replaced
}

/// Writes `kept` entries and `changed` accounts (both in name order) in
/// name order, a changed account in place of the entry of its name.
fn merge(
    kept: &[(&str, &[u8])],
    changed: &[(&str, &Account)],
    pages: &mut Writer<'_>,
) -> Result<(), ModelError> {
    let (mut kept, mut changed) = (kept.iter().peekable(), changed.iter().peekable());
    loop {
        match (kept.peek(), changed.peek()) {
            (Some(&&(k, entry)), Some(&&(c, account))) => {
                if k < c {
                    pages.push_entry(k, entry)?;
                    kept.next();
                } else {
                    pages.push(c, account)?;
                    changed.next();
                    if k == c {
                        kept.next();
                    }
                }
            }
            (Some(&&(k, entry)), None) => {
                pages.push_entry(k, entry)?;
                kept.next();
            }
            (None, Some(&&(c, account))) => {
                pages.push(c, account)?;
                changed.next();
            }
            (None, None) => return Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    /// An account of `balance` minor units, owned by `owner` if some.
    fn an_account(balance: i128, owner: Option<&str>) -> Account {
        Account::from(AccountForm {
            owner: owner.map(Into::into),
            unit: 0,
            balance: Amount(balance),
            closed: balance % 3 == 0,
            held: Amount(balance / 2),
            expiring: Vec::new(),
            incoming: Vec::new(),
        })
    }

    /// Account `name` as the pages have it.
    fn account(c: &Connection, name: &str) -> Result<Option<Account>, ModelError> {
        let Some(page) = page_of(c, name)? else {
            return Ok(None);
        };
        let found = page
            .accounts()
            .find(|a| a.as_ref().is_ok_and(|(n, _)| *n == name));
        found.transpose().map(|a| a.map(|(_, a)| a))
    }

    fn db() -> Connection {
        let c = Connection::open_in_memory().expect("db");
        c.execute_batch(super::super::rows::SCHEMA).expect("schema");
        c
    }

    /// What the pages hold, every way they are read, is `expected`; and
    /// names never written are absent.
    #[track_caller]
    fn assert_pages_hold(c: &Connection, expected: &BTreeMap<String, Account>) {
        let mut every = Vec::new();
        each(c, |name, a| {
            every.push((name.to_owned(), a));
            Ok(())
        })
        .expect("every account");
        let same = |(n, a): &(String, Account), (m, b): (&String, &Account)| {
            n == m
                && a.balance == b.balance
                && a.owner() == b.owner()
                && a.closed == b.closed
                && a.held() == b.held()
        };
        assert_eq!(every.len(), expected.len());
        assert!(every.iter().zip(expected).all(|(a, b)| same(a, b)));
        assert_eq!(count(c).expect("count"), expected.len());
        for (name, a) in expected {
            let found = account(c, name).expect("account").expect("there");
            assert!(same(&(name.clone(), found), (name, a)), "{name}");
            let absent = format!("{name}~");
            if !expected.contains_key(&absent) {
                assert!(account(c, &absent).expect("absent").is_none(), "{absent}");
            }
        }
        assert!(account(c, "").expect("absent").is_none());
        // Read three at a time, as `balance` reads them in pages.
        let mut paged = Vec::new();
        loop {
            let from = paged
                .last()
                .map_or("", |(n, _): &(String, Account)| n.as_str());
            let page = after(c, from, 3, true).expect("paged");
            let done = page.len() < 3;
            paged.extend(page);
            if done {
                break;
            }
        }
        assert_eq!(paged.len(), expected.len());
        assert!(paged.iter().zip(expected).all(|(a, b)| same(a, b)));
    }

    /// Every page lost, or changed (a byte, its link, count or key, its
    /// digest kept), is seen: by a look-up of a name it holds or would
    /// hold, and by a read of every account.
    #[test]
    fn a_page_lost_or_changed_is_seen() {
        let names: Vec<String> = (0..20).map(|i| format!("a{i:02}")).collect();
        let accounts: Vec<Account> = (0..20).map(|i| an_account(i + 1, None)).collect();
        let mut c = db();
        let tx = c.transaction().expect("tx");
        save_all(&tx, names.iter().map(String::as_str).zip(&accounts)).expect("rebuild");
        tx.commit().expect("commit");
        let firsts: Vec<String> = c
            .prepare("SELECT first FROM account_pages ORDER BY first")
            .expect("select")
            .query_map([], |r| r.get(0))
            .expect("rows")
            .map(|r| r.expect("row"))
            .collect();
        assert_eq!(firsts.len(), 10);
        for first in &firsts {
            for damage in [
                "DELETE FROM account_pages WHERE first = ?1",
                "UPDATE account_pages SET entries = entries || x'00' WHERE first = ?1",
                "UPDATE account_pages SET first = first || '0' WHERE first = ?1",
                "UPDATE account_pages SET first = substr(first, 1, 2) WHERE first = ?1",
                "UPDATE account_pages SET next = CASE WHEN next IS NULL THEN 'zz' END
                 WHERE first = ?1",
                "UPDATE account_pages SET next = next || '0' WHERE first = ?1 AND next IS NOT NULL",
                "UPDATE account_pages SET count = count + 1 WHERE first = ?1",
            ] {
                let tx = c.transaction().expect("tx");
                if tx.execute(damage, [first]).expect("damage") == 0 {
                    // The last page has no link to change.
                    continue;
                }
                let next = firsts.iter().find(|f| *f > first);
                let held = names
                    .iter()
                    .filter(|n| *n >= first && next.is_none_or(|next| *n < next));
                for name in held.chain([&format!("{first}5")]) {
                    assert!(account(&tx, name).is_err(), "{damage} {first}: {name}");
                }
                assert!(each(&tx, |_, _| Ok(())).is_err(), "{damage} {first}");
                tx.rollback().expect("rollback");
            }
        }
    }

    /// A page whose count is forged (its digest worked out again) to a
    /// huge number is an error, not an allocation of that many.
    #[test]
    fn a_forged_huge_count_is_an_error() {
        let c = db();
        let mut entries = Vec::new();
        put(&mut entries, "a", &an_account(1, None)).expect("put");
        let count = i64::MAX;
        let digest = page_digest("a", None, count, &entries);
        c.execute(
            "INSERT INTO account_pages (first, next, count, entries, digest) VALUES ('a', NULL, ?1, ?2, ?3)",
            params![count, entries, digest],
        )
        .expect("insert");
        c.execute(
            "INSERT INTO first_account (one, name, link) VALUES (1, 'a', ?1)",
            [first_digest(Some("a"))],
        )
        .expect("first");
        assert!(page_of(&c, "a").is_err());
    }

    proptest::proptest! {
        /// Pages written by a rebuild, then over and over by write-backs
        /// of changed and new accounts (splitting pages, moving the first
        /// one's name), hold what a map of the same writes holds, each
        /// within [`PAGE_MAX`]; names never written are absent.
        #[test]
        fn pages_hold_what_was_written(
            rounds in proptest::collection::vec(
                proptest::collection::btree_map("[0-9A-Za-z_.:@-]{1,4}", 1i128..1000, 0..40),
                1..10,
            ),
        ) {
            let mut c = db();
            let mut expected = BTreeMap::new();
            for (i, round) in rounds.iter().enumerate() {
                let tx = c.transaction().expect("tx");
                let changed: BTreeMap<String, Account> = round
                    .iter()
                    .map(|(n, &b)| {
                        let owner = (b % 2 == 0).then(|| format!("owner {b}"));
                        (n.clone(), an_account(b, owner.as_deref()))
                    })
                    .collect();
                let named = changed.iter().map(|(n, a)| (n.as_str(), a));
                if i == 0 {
                    save_all(&tx, named).expect("rebuild");
                } else {
                    save_changed(&tx, named).expect("write-back");
                }
                tx.commit().expect("commit");
                expected.extend(changed);
                let max: i64 = c.query_row("SELECT coalesce(max(count), 0) FROM account_pages", [], |r| r.get(0)).expect("max");
                proptest::prop_assert!(max as usize <= PAGE_MAX);
                assert_pages_hold(&c, &expected);
                // Names between the written ones are absent, not errors.
                for probe in ["0", "Z", "a", "zzzzz", "-", "@"] {
                    let got = account(&c, probe).expect("probe");
                    proptest::prop_assert_eq!(got.is_some(), expected.contains_key(probe));
                }
            }
        }
    }
}
