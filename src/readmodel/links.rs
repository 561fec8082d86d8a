//! Rows linked in key order, so that an absence is the rows' word, not a
//! missing row's: the reversals by the seq they reverse (the accounts'
//! pages are linked in the same way, see [`super::pages`]). A table's
//! first key is in a one-row table beside it, and each row's `next`
//! names the key after its own, each link under a digest of
//! its two keys. A row lost (deleted, or moved by damage to its key)
//! leaves the link before it naming it: the absence of a key is the link
//! before where it would go naming a later key, or none.

use std::borrow::Cow;
use std::fmt::Display;

use rusqlite::types::{FromSql, ToSql};
use rusqlite::{Connection, OptionalExtension, Row, Transaction, params};

use super::ModelError;
use super::rows::{Digest, digest_matches};

/// A table of linked rows.
pub(super) struct Chain {
    /// The table, and its key column.
    table: &'static str,
    key: &'static str,
    /// The one-row table that holds the first key (column `key`).
    first: &'static str,
    /// What a key names, for messages ("account b").
    what: &'static str,
}

pub(super) const REVERSALS: Chain = Chain {
    table: "reversed",
    key: "seq",
    first: "first_reversed",
    what: "the reversal of",
};

/// A key of linked rows.
pub(super) trait Key: ToSql + Display {
    /// Its bytes, for the link digests.
    fn bytes(&self) -> Cow<'_, [u8]>;
}

impl Key for i64 {
    fn bytes(&self) -> Cow<'_, [u8]> {
        Cow::Owned(self.to_le_bytes().to_vec())
    }
}

/// The bytes of a key, if there is one.
fn bytes_of<K: Key + ?Sized>(key: Option<&K>) -> Option<Cow<'_, [u8]>> {
    key.map(Key::bytes)
}

impl Chain {
    /// The digest of the link from key `from` (`None`: the link to the
    /// first) to key `next`, given as their bytes ([`Key::bytes`]).
    pub(super) fn digest(&self, from: Option<&[u8]>, next: Option<&[u8]>) -> i64 {
        let key = |d: Digest, k: Option<&[u8]>| match k {
            Some(k) => d.bytes(b"s").bytes(k),
            None => d.bytes(b"-"),
        };
        key(
            key(
                Digest::default()
                    .bytes(b"link")
                    .bytes(self.table.as_bytes()),
                from,
            ),
            next,
        )
        .finish()
    }

    /// The link before where `key` goes, checked against its digest and
    /// found to name a later key or none: the key of the row before
    /// (`None` for the link to the first) and the key it links to. An
    /// error is damage: a row lost, or a link changed.
    pub(super) fn before<K: Key + FromSql + Ord>(
        &self,
        c: &Connection,
        key: &K,
    ) -> Result<(Option<K>, Option<K>), ModelError> {
        let (table, column, first) = (self.table, self.key, self.first);
        let link = |r: &Row<'_>| Ok((r.get(0)?, r.get(1)?, r.get(2)?));
        let before = c
            .prepare_cached(&format!(
                "SELECT {column}, next, link FROM {table} WHERE {column} < ?1
                 ORDER BY {column} DESC LIMIT 1"
            ))?
            .query_row([key], link)
            .optional()?;
        let (from, next, digest): (Option<K>, Option<K>, Option<i64>) = match before {
            Some(row) => row,
            None => c
                .prepare_cached(&format!(
                    "SELECT NULL, {column}, link FROM {first} WHERE one = 1"
                ))?
                .query_row([], link)
                .optional()?
                .ok_or_else(|| ModelError::Malformed(format!("the row of {first} is missing")))?,
        };
        let computed = self.digest(
            bytes_of(from.as_ref()).as_deref(),
            bytes_of(next.as_ref()).as_deref(),
        );
        digest_matches(digest.unwrap_or(0), computed, || match &from {
            Some(from) => format!("the link after {} {from}", self.what),
            None => format!("the link of {first}"),
        })?;
        match next {
            Some(next) if next <= *key => Err(ModelError::Malformed(format!(
                "the row of {} {next} is missing",
                self.what
            ))),
            next => Ok((from, next)),
        }
    }

    /// Links the row of `key`, just inserted without a link, in: after
    /// the row before it, or first. The link it takes the place of is
    /// checked first, so that a write-back never makes good a link that
    /// damage broke.
    pub(super) fn link_in<K: Key + FromSql + Ord>(
        &self,
        tx: &Transaction<'_>,
        key: &K,
    ) -> Result<(), ModelError> {
        let (table, column, first) = (self.table, self.key, self.first);
        let (before, next) = self.before(tx, key)?;
        let key_bytes = key.bytes();
        let mut set_link = tx.prepare_cached(&format!(
            "UPDATE {table} SET next = ?2, link = ?3 WHERE {column} = ?1"
        ))?;
        match &before {
            Some(before) => {
                let link = self.digest(Some(&before.bytes()), Some(&key_bytes));
                set_link.execute(params![before, key, link])?
            }
            None => tx
                .prepare_cached(&format!(
                    "UPDATE {first} SET {column} = ?1, link = ?2 WHERE one = 1"
                ))?
                .execute(params![key, self.digest(None, Some(&key_bytes))])?,
        };
        let link = self.digest(Some(&key_bytes), bytes_of(next.as_ref()).as_deref());
        set_link.execute(params![key, next, link])?;
        Ok(())
    }

    /// Writes the link to the first key, `first` (none if the table is
    /// empty), after a rebuild wrote every row with its link
    /// ([`Chain::links`]).
    pub(super) fn set_first<K: Key + ?Sized>(
        &self,
        tx: &Transaction<'_>,
        first: Option<&K>,
    ) -> Result<(), ModelError> {
        let (column, table) = (self.key, self.first);
        let link = self.digest(None, bytes_of(first).as_deref());
        tx.execute(
            &format!("INSERT OR REPLACE INTO {table} (one, {column}, link) VALUES (1, ?1, ?2)"),
            params![first, link],
        )?;
        Ok(())
    }

    /// Each of `keys` (in order) with the key after it and the digest of
    /// that link: what a rebuild writes in each row.
    pub(super) fn links<'k, K: Key + ?Sized + 'k>(
        &'k self,
        keys: impl Iterator<Item = &'k K> + Clone + 'k,
    ) -> impl Iterator<Item = (Option<&'k K>, i64)> + 'k {
        let nexts = keys.clone().skip(1).map(Some).chain([None]);
        keys.zip(nexts).map(move |(key, next)| {
            let digest = self.digest(Some(&key.bytes()), bytes_of(next).as_deref());
            (next, digest)
        })
    }
}
