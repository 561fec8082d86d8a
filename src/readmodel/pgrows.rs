//! The read model's rows in the journal's own PostgreSQL database: the
//! same entries as the SQLite tables ([`super::rows`]), written in the
//! transaction that appends the lines they come from, so they stand
//! exactly at the journal's head. Money is `numeric(39,0)` of minor
//! units, passed as text both ways: exact, never through floating point.
//! Every row carries the digest the SQLite model's row would: a row
//! changed by hand or by damage is not believed, and the journal is
//! replayed instead. `verify` never reads them.

use std::cell::RefCell;

use postgres::Row;
use rustc_hash::{FxHashMap, FxHashSet};

use crate::domain::{Account, AccountForm, Ended, Hold, State, Target, Unit};
use crate::journal::pg::Db;
use crate::money::Amount;
use crate::time::At;

use super::ModelError;

/// The tables, created with the journal's (see [`crate::journal::pg`]).
pub const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS ledger_units (
    idx int PRIMARY KEY, currency text, decimals smallint NOT NULL,
    deposited numeric(39,0) NOT NULL, withdrawn numeric(39,0) NOT NULL, held numeric(39,0) NOT NULL,
    digest bigint NOT NULL);
CREATE TABLE IF NOT EXISTS ledger_accounts (
    name text COLLATE "C" PRIMARY KEY, owner text, unit int NOT NULL,
    balance numeric(39,0) NOT NULL, closed boolean NOT NULL, held numeric(39,0) NOT NULL,
    digest bigint NOT NULL);
CREATE TABLE IF NOT EXISTS ledger_reversed (
    seq bigint PRIMARY KEY, by_seq bigint NOT NULL, digest bigint NOT NULL);
CREATE TABLE IF NOT EXISTS ledger_holds (
    seq bigint PRIMARY KEY, account text COLLATE "C" NOT NULL, amount numeric(39,0) NOT NULL,
    dest text COLLATE "C", expires text, digest bigint NOT NULL);
CREATE INDEX IF NOT EXISTS ledger_holds_expiring ON ledger_holds (account) WHERE expires IS NOT NULL;
CREATE INDEX IF NOT EXISTS ledger_holds_by_dest ON ledger_holds (dest);
CREATE TABLE IF NOT EXISTS ledger_ended (
    seq bigint PRIMARY KEY, by_seq bigint NOT NULL, captured boolean NOT NULL,
    amount numeric(39,0) NOT NULL, digest bigint NOT NULL);
"#;

const UNITS: &str = "SELECT idx, currency, decimals, deposited::text, withdrawn::text, held::text,
             digest FROM ledger_units ORDER BY idx";

const ACCOUNT: &str = "SELECT name, owner, unit, balance::text, closed, held::text, digest
             FROM ledger_accounts WHERE name = $1";

/// A hold row's columns, as [`hold_row`] reads them.
macro_rules! hold_columns {
    () => {
        "seq, account, amount::text, dest, expires, digest"
    };
}

const ACCOUNT_HOLDS: &str = concat!(
    "SELECT ",
    hold_columns!(),
    " FROM ledger_holds WHERE account = $1 AND expires IS NOT NULL UNION SELECT ",
    hold_columns!(),
    " FROM ledger_holds WHERE dest = $1 ORDER BY seq"
);

const ID: &str = "SELECT seq FROM ledger_lines WHERE id = $1";

const OPENED: &str = "SELECT creates FROM ledger_lines WHERE creates = ANY($1) LIMIT 1";

const SAVE_UNITS: &str =
    "INSERT INTO ledger_units (idx, currency, decimals, deposited, withdrawn, held, digest)
         SELECT i, c, d, dep::numeric, w::numeric, h::numeric, g
         FROM unnest($1::int[], $2::text[], $3::smallint[], $4::text[], $5::text[], $6::text[],
             $7::bigint[]) AS t(i, c, d, dep, w, h, g)
         ON CONFLICT (idx) DO UPDATE SET currency = excluded.currency,
             decimals = excluded.decimals, deposited = excluded.deposited,
             withdrawn = excluded.withdrawn, held = excluded.held, digest = excluded.digest";

const SAVE_ACCOUNTS: &str = "INSERT INTO ledger_accounts (name, owner, unit, balance, closed, held, digest)
             SELECT n, o, u, b::numeric, c, h::numeric, d
             FROM unnest($1::text[], $2::text[], $3::int[], $4::text[], $5::bool[], $6::text[], $7::bigint[])
                 AS t(n, o, u, b, c, h, d)
             ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, unit = excluded.unit,
                 balance = excluded.balance, closed = excluded.closed, held = excluded.held,
                 digest = excluded.digest";

/// [`SAVE_ACCOUNTS`] into emptied tables: checking each row for one of its
/// name to update made a whole state's million rows take twice as long
/// (8.9 s of the server's time, against 4.6).
const SAVE_NEW_ACCOUNTS: &str = "INSERT INTO ledger_accounts (name, owner, unit, balance, closed, held, digest)
             SELECT n, o, u, b::numeric, c, h::numeric, d
             FROM unnest($1::text[], $2::text[], $3::int[], $4::text[], $5::bool[], $6::text[], $7::bigint[])
                 AS t(n, o, u, b, c, h, d)";

/// The statements every write runs: prepared before the head is locked
/// (see [`Db::prepare_ahead`]), so that the lock is not held while a new
/// connection's server process plans them.
pub const WRITE_STATEMENTS: &[&str] =
    &[UNITS, ACCOUNT, ACCOUNT_HOLDS, ID, SAVE_UNITS, SAVE_ACCOUNTS];

/// Rows written by one statement at most (arrays of this many values).
const CHUNK: usize = 10_000;

fn int(value: impl TryInto<i64>) -> Result<i64, ModelError> {
    value
        .try_into()
        .map_err(|_| ModelError::Malformed("a number past bigint's range".into()))
}

fn uint<T: TryFrom<i64>>(value: i64) -> Result<T, ModelError> {
    T::try_from(value).map_err(|_| ModelError::Malformed(format!("{value} is out of range")))
}

fn get<'r, T: postgres::types::FromSql<'r>>(r: &'r Row, i: usize) -> Result<T, ModelError> {
    Ok(r.try_get(i)?)
}

fn amount(r: &Row, i: usize) -> Result<Amount, ModelError> {
    let text: &str = get(r, i)?;
    text.parse()
        .map(Amount)
        .map_err(|_| ModelError::Malformed(format!("an amount of {text}")))
}

fn at(text: Option<&str>) -> Result<Option<At>, ModelError> {
    text.map(|t| {
        At::parse_canonical(t).ok_or_else(|| ModelError::Malformed(format!("bad time {t}")))
    })
    .transpose()
}

/// Every unit, in order.
pub fn units(db: &Db) -> Result<Vec<Unit>, ModelError> {
    let rows = db.query(UNITS, &[])?;
    let mut units = Vec::with_capacity(rows.len());
    for r in &rows {
        let idx = i64::from(get::<i32>(r, 0)?);
        if uint::<usize>(idx)? != units.len() {
            return Err(ModelError::Malformed(
                "the units are not numbered in order".into(),
            ));
        }
        let unit = Unit {
            currency: get::<Option<&str>>(r, 1)?.map(Into::into),
            decimals: uint(i64::from(get::<i16>(r, 2)?))?,
            deposited: amount(r, 3)?,
            withdrawn: amount(r, 4)?,
            held: amount(r, 5)?,
        };
        let digest = super::rows::unit_digest(idx, &unit);
        super::rows::digest_matches(get(r, 6)?, digest, || format!("unit {idx}"))?;
        units.push(unit);
    }
    Ok(units)
}

/// The account in row `r` (name, owner, unit, balance, closed, held),
/// without its holds.
fn account_row(r: &Row) -> Result<(String, Account), ModelError> {
    let unit = i64::from(get::<i32>(r, 2)?);
    let account = Account::from(AccountForm {
        owner: get::<Option<&str>>(r, 1)?.map(Into::into),
        unit: uint(unit)?,
        balance: amount(r, 3)?,
        closed: get(r, 4)?,
        held: amount(r, 5)?,
        expiring: Vec::new(),
        incoming: Vec::new(),
    });
    let name: String = get(r, 0)?;
    // As in the SQLite model: a row changed by hand or by damage is not
    // believed, and the journal is replayed instead.
    let digest = super::rows::account_digest(&name, &account, unit);
    super::rows::digest_matches(get(r, 6)?, digest, || format!("account {name}"))?;
    Ok((name, account))
}

/// The hold in row `r` (the columns of `hold_columns!`).
fn hold_row(r: &Row) -> Result<(u64, Hold), ModelError> {
    let hold = Hold {
        account: get::<&str>(r, 1)?.into(),
        amount: amount(r, 2)?,
        to: get::<Option<&str>>(r, 3)?.map(Into::into),
        expires: at(get(r, 4)?)?,
    };
    let seq = get::<i64>(r, 0)?;
    let digest = super::rows::hold_digest(seq, &hold);
    super::rows::digest_matches(get(r, 5)?, digest, || format!("hold {seq}"))?;
    Ok((uint(seq)?, hold))
}

/// The ended hold in row `r` (seq, by_seq, captured, amount, digest).
fn ended_row(r: &Row) -> Result<(u64, Ended), ModelError> {
    let (seq, by) = (get::<i64>(r, 0)?, get::<i64>(r, 1)?);
    let end = Ended {
        by: uint(by)?,
        captured: get(r, 2)?,
        amount: amount(r, 3)?,
    };
    let digest = super::rows::ended_digest(seq, by, &end);
    super::rows::digest_matches(get(r, 4)?, digest, || format!("ended hold {seq}"))?;
    Ok((uint(seq)?, end))
}

/// The reversal in row `r` (seq, by_seq, digest).
fn reversed_row(r: &Row) -> Result<(u64, u64), ModelError> {
    let (seq, by) = (get::<i64>(r, 0)?, get::<i64>(r, 1)?);
    let digest = super::rows::reversed_digest(seq, by);
    super::rows::digest_matches(get(r, 2)?, digest, || format!("reversal of {seq}"))?;
    Ok((uint(seq)?, uint(by)?))
}

/// What a prefetch asked for and did not find: asking again, one by
/// one, would only find it missing again.
#[derive(Default)]
pub struct Absent {
    ids: RefCell<FxHashSet<Box<str>>>,
    accounts: RefCell<FxHashSet<Box<str>>>,
    /// Earlier events whose rows, if any (a reversal of them, the hold
    /// they placed, its end), are in the state already.
    targets: RefCell<FxHashSet<u64>>,
}

impl Absent {
    /// Whether the state already has what the rows say of event `seq`:
    /// a prefetch read them, or there are none (see [`past_rows`]).
    fn knows(&self, db: &Db, seq: u64) -> bool {
        self.targets.borrow().contains(&seq) || past_rows(db, seq)
    }
}

/// Whether event `seq` comes after the rows' head: then no row names it,
/// and it was decided by this write, into its state (or does not exist).
fn past_rows(db: &Db, seq: u64) -> bool {
    db.rows_cover().is_some_and(|(head, _)| seq > head)
}

/// Loads into `state`, a few statements for them all, the `--id`s `ids`,
/// the earlier events `targets` (whether each was reversed, the hold it
/// placed), and the accounts that `names` and those events name, with the
/// open holds their rules look at; keeps the lines of the events read
/// for [`Db::line`], and in `absent` what is not there (forgetting the
/// last prefetch's: only the commands it was for look them up).
pub fn prefetch(
    db: &Db,
    absent: &Absent,
    state: &mut State,
    ids: &[&str],
    targets: &[Target<'_>],
    names: &[&str],
) -> Result<(), ModelError> {
    let mut lines = prefetch_ids(db, absent, state, ids)?;
    let mut seqs: Vec<u64> = targets
        .iter()
        .filter_map(|target| match *target {
            Target::Seq(seq) => Some(seq),
            Target::Id(id) => state.id_seq(id),
        })
        .collect();
    seqs.retain(|&seq| !past_rows(db, seq));
    seqs.sort_unstable();
    seqs.dedup();
    let unread: Vec<i64> = seqs
        .iter()
        .filter(|seq| !lines.contains_key(*seq))
        .map(|&seq| int(seq))
        .collect::<Result<_, _>>()?;
    for chunk in unread.chunks(CHUNK) {
        let rows = db.query(
            "SELECT seq, line FROM ledger_lines WHERE seq = ANY($1)",
            &[&chunk],
        )?;
        for r in &rows {
            lines.insert(uint(get::<i64>(r, 0)?)?, get(r, 1)?);
        }
    }
    prefetch_targets(db, absent, state, &seqs)?;
    let more = accounts_named(state, lines.values(), &seqs);
    let mut names: Vec<&str> = names.to_vec();
    names.extend(more.iter().map(String::as_str));
    names.retain(|name| state.account(name).is_none());
    names.sort_unstable();
    names.dedup();
    prefetch_accounts(db, absent, state, &names)?;
    db.remember_lines(lines);
    Ok(())
}

/// The accounts a repeat, a reversal or a hold's end will read: those
/// the events on `lines` touch, and those of the holds at `seqs`.
fn accounts_named<'l>(
    state: &State,
    lines: impl Iterator<Item = &'l Vec<u8>>,
    seqs: &[u64],
) -> Vec<String> {
    let mut names = Vec::new();
    let mut scratch = Vec::new();
    for line in lines {
        // A line that does not decode is reported when it is read for its
        // command; here it only names no accounts.
        if let Ok(decoded) = crate::journal::line::decode(line, &mut scratch) {
            let accounts = decoded.event.change.accounts();
            names.extend(accounts.into_iter().flatten().map(Into::into));
        }
    }
    for hold in seqs.iter().filter_map(|&seq| state.hold(seq)) {
        names.push(hold.account.to_string());
        names.extend(hold.to.as_deref().map(Into::into));
    }
    names
}

/// Loads the `--id`s `ids` into `state`, keeping in `absent` those not
/// used; returns the lines they name (a repeat is checked against its
/// line, and a reversal by id reads it).
fn prefetch_ids(
    db: &Db,
    absent: &Absent,
    state: &mut State,
    ids: &[&str],
) -> Result<FxHashMap<u64, Vec<u8>>, ModelError> {
    let mut missing: FxHashSet<Box<str>> = ids.iter().map(|&i| i.into()).collect();
    let mut lines = FxHashMap::default();
    for chunk in ids.chunks(CHUNK) {
        let rows = db.query(
            "SELECT id, seq, line FROM ledger_lines WHERE id = ANY($1)",
            &[&chunk],
        )?;
        for r in &rows {
            let id: &str = get(r, 0)?;
            let seq = uint(get::<i64>(r, 1)?)?;
            missing.remove(id);
            state.load_id(id, seq).map_err(ModelError::Malformed)?;
            lines.insert(seq, get(r, 2)?);
        }
    }
    *absent.ids.borrow_mut() = missing;
    Ok(lines)
}

/// Loads what the rows say of the earlier events `seqs` (sorted): whether
/// each was reversed, and the hold it placed, open or ended; all of them
/// go into `absent.targets`.
fn prefetch_targets(
    db: &Db,
    absent: &Absent,
    state: &mut State,
    seqs: &[u64],
) -> Result<(), ModelError> {
    let keys: Vec<i64> = seqs.iter().map(|&seq| int(seq)).collect::<Result<_, _>>()?;
    for chunk in keys.chunks(CHUNK) {
        read_reversals(db, state, chunk)?;
        read_holds(db, state, chunk)?;
    }
    *absent.targets.borrow_mut() = seqs.iter().copied().collect();
    Ok(())
}

/// Loads the reversals of the movements `keys` (seqs) that the rows
/// record. The rows' word that one was not reversed lets `reverse`
/// append: the lines, whose `reverses` column is unique, have the last
/// word on those.
fn read_reversals(db: &Db, state: &mut State, keys: &[i64]) -> Result<(), ModelError> {
    let reversed = db.query(
        "SELECT seq, by_seq, digest FROM ledger_reversed WHERE seq = ANY($1)",
        &[&keys],
    )?;
    let mut found = FxHashSet::default();
    for r in &reversed {
        let (seq, by) = reversed_row(r)?;
        found.insert(seq);
        if state.reversed_by(seq).is_none() {
            state
                .load_reversed(seq, by)
                .map_err(ModelError::Malformed)?;
        }
    }
    let rest = without(keys, &found)?;
    if rest.is_empty() {
        return Ok(());
    }
    let lines = db.query(
        "SELECT reverses, seq FROM ledger_lines WHERE reverses = ANY($1) LIMIT 1",
        &[&rest],
    )?;
    match lines.first() {
        None => Ok(()),
        Some(r) => Err(ModelError::Malformed(format!(
            "seq {} is reversed at seq {} in the journal but not in the rows",
            get::<i64>(r, 0)?,
            get::<i64>(r, 1)?
        ))),
    }
}

/// Loads the holds placed at `keys` (seqs), open or ended, that the rows
/// record.
fn read_holds(db: &Db, state: &mut State, keys: &[i64]) -> Result<(), ModelError> {
    let open = db.query(
        concat!(
            "SELECT ",
            hold_columns!(),
            " FROM ledger_holds WHERE seq = ANY($1)"
        ),
        &[&keys],
    )?;
    let mut found = FxHashSet::default();
    for (seq, hold) in open_rows(db, &open)? {
        found.insert(seq);
        if state.hold(seq).is_none() && state.ended(seq).is_none() {
            state.load_hold(seq, hold).map_err(ModelError::Malformed)?;
        }
    }
    let rest = without(keys, &found)?;
    if rest.is_empty() {
        return Ok(());
    }
    // With each ended row, whether the line at that seq places a hold:
    // one the rows have in neither table was lost from them. The first
    // `"type":"` of a line is its event's (only `seq` and `at` come
    // before it); a tag may be named `type`.
    let ended = db.query(
        r#"SELECT k.seq, e.by_seq, e.captured, e.amount::text, e.digest,
                  position('"type":"FundsHeld"'::bytea IN l.line)
                      = position('"type":"'::bytea IN l.line)
                  AND position('"type":"'::bytea IN l.line) > 0
             FROM unnest($1::bigint[]) AS k(seq)
             LEFT JOIN ledger_ended e ON e.seq = k.seq
             LEFT JOIN ledger_lines l ON l.seq = k.seq"#,
        &[&rest],
    )?;
    for r in &ended {
        if get::<Option<i64>>(r, 1)?.is_none() {
            if get::<Option<bool>>(r, 5)? == Some(true) {
                return Err(ModelError::Malformed(format!(
                    "seq {} places a hold in the journal that the rows lack",
                    get::<i64>(r, 0)?
                )));
            }
            continue;
        }
        let (seq, end) = ended_row(r)?;
        if state.hold(seq).is_none() && state.ended(seq).is_none() {
            state.load_ended(seq, end).map_err(ModelError::Malformed)?;
        }
    }
    Ok(())
}

/// The seqs of `keys` not in `found`.
fn without(keys: &[i64], found: &FxHashSet<u64>) -> Result<Vec<i64>, ModelError> {
    let mut rest = Vec::new();
    for &key in keys {
        if !found.contains(&uint::<u64>(key)?) {
            rest.push(key);
        }
    }
    Ok(rest)
}

/// Loads the accounts `names` (with the open holds their rules look at)
/// into `state`, keeping in `absent` those that are not there.
fn prefetch_accounts(
    db: &Db,
    absent: &Absent,
    state: &mut State,
    names: &[&str],
) -> Result<(), ModelError> {
    let mut missing: FxHashSet<Box<str>> = names.iter().map(|&n| n.into()).collect();
    for chunk in names.chunks(CHUNK) {
        let rows = db.query(
            "SELECT name, owner, unit, balance::text, closed, held::text, digest
                 FROM ledger_accounts WHERE name = ANY($1)",
            &[&chunk],
        )?;
        let accounts = rows
            .iter()
            .map(account_row)
            .collect::<Result<Vec<_>, _>>()?;
        let found: Vec<&str> = accounts.iter().map(|(n, _)| n.as_str()).collect();
        let holds = db.query(
            concat!(
                "SELECT ",
                hold_columns!(),
                " FROM ledger_holds WHERE (account = ANY($1) AND expires IS NOT NULL)
                     OR dest = ANY($1) ORDER BY seq"
            ),
            &[&found],
        )?;
        let holds = open_rows(db, &holds)?;
        // Each account's own, in seq order: many open holds on a run's
        // accounts must not make each account look at all of them.
        let mut by_name: FxHashMap<&str, Vec<&(u64, Hold)>> = FxHashMap::default();
        for entry in &holds {
            let hold = &entry.1;
            let on = hold.expires.is_some().then_some(&*hold.account);
            if let Some(on) = on {
                by_name.entry(on).or_default().push(entry);
            }
            if let Some(to) = hold.to.as_deref().filter(|&to| Some(to) != on) {
                by_name.entry(to).or_default().push(entry);
            }
        }
        for (name, account) in accounts {
            missing.remove(name.as_str());
            let own = by_name.get(name.as_str()).into_iter().flatten().copied();
            add_account(state, name, account, own)?;
        }
    }
    let missing_names: Vec<&str> = missing.iter().map(|n| &**n).collect();
    no_account(db, &missing_names)?;
    *absent.accounts.borrow_mut() = missing;
    Ok(())
}

/// Checks that the accounts `names`, which the rows lack, were never
/// opened: a line that opens one means rows lost (deleted by hand, or
/// damage), and the journal must be replayed instead. An absence is what
/// lets `create` append, so it is not taken on the rows' word.
fn no_account(db: &Db, names: &[&str]) -> Result<(), ModelError> {
    if names.is_empty() {
        return Ok(());
    }
    let opened = db.query(OPENED, &[&names])?;
    match opened.first() {
        None => Ok(()),
        Some(r) => Err(ModelError::Malformed(format!(
            "account {} is opened in the journal but missing from the rows",
            get::<&str>(r, 0)?
        ))),
    }
}

/// Puts `account` into `state` with those of `holds` its rules look at
/// (the ones on it that may lapse, and those naming it as `to`).
fn add_account<'h>(
    state: &mut State,
    name: String,
    mut account: Account,
    holds: impl IntoIterator<Item = &'h (u64, Hold)>,
) -> Result<(), ModelError> {
    for (seq, hold) in holds {
        let on = *hold.account == *name && hold.expires.is_some();
        let to = hold.to.as_deref() == Some(&name);
        if !(on || to) || state.ended(*seq).is_some() {
            continue;
        }
        if on {
            account.expiring_mut().push(*seq);
        }
        if to {
            account.incoming_mut().push(*seq);
        }
        if state.hold(*seq).is_none() {
            state
                .load_hold(*seq, hold.clone())
                .map_err(ModelError::Malformed)?;
        }
    }
    state
        .load_account(&name, account)
        .map_err(ModelError::Malformed)
}

/// Loads account `name` into `state` with the open holds its rules look
/// at, unless the state has it already.
pub fn load_account(
    db: &Db,
    absent: &Absent,
    state: &mut State,
    name: &str,
) -> Result<(), ModelError> {
    if state.account(name).is_some() || absent.accounts.borrow().contains(name) {
        return Ok(());
    }
    let rows = db.query(ACCOUNT, &[&name])?;
    let Some(row) = rows.first() else {
        return no_account(db, &[name]);
    };
    let (name, account) = account_row(row)?;
    let holds = db.query(ACCOUNT_HOLDS, &[&name])?;
    let holds = open_rows(db, &holds)?;
    add_account(state, name, account, &holds)
}

/// Loads the seq of `--id` `id`, if it was used.
pub fn load_id(db: &Db, absent: &Absent, state: &mut State, id: &str) -> Result<(), ModelError> {
    if state.knows_id(id) || absent.ids.borrow().contains(id) {
        return Ok(());
    }
    let rows = db.query(ID, &[&id])?;
    if let Some(r) = rows.first() {
        state
            .load_id(id, uint(get::<i64>(r, 0)?)?)
            .map_err(ModelError::Malformed)?;
    }
    Ok(())
}

/// Loads whether the movement at `seq` was reversed.
pub fn load_reversed(
    db: &Db,
    absent: &Absent,
    state: &mut State,
    seq: u64,
) -> Result<(), ModelError> {
    if state.reversed_by(seq).is_some() || absent.knows(db, seq) {
        return Ok(());
    }
    read_reversals(db, state, &[int(seq)?])
}

/// Loads the hold placed at `seq`, open or ended, if it is one.
pub fn load_hold(db: &Db, absent: &Absent, state: &mut State, seq: u64) -> Result<(), ModelError> {
    if state.hold(seq).is_some() || state.ended(seq).is_some() || absent.knows(db, seq) {
        return Ok(());
    }
    read_holds(db, state, &[int(seq)?])
}

/// Every open hold, by seq, each checked against its digest.
pub fn open_holds(db: &Db) -> Result<Vec<(u64, Hold)>, ModelError> {
    let rows = db.query(
        concat!(
            "SELECT ",
            hold_columns!(),
            " FROM ledger_holds ORDER BY seq"
        ),
        &[],
    )?;
    open_rows(db, &rows)
}

/// The open holds in `rows`, each checked against its digest, and all of
/// them against the lines. The rows' word that a hold is open is what
/// lets `capture` take its money, and what keeps it from `withdraw`
/// while it lasts; a hold row put back by hand beside its deleted end
/// would say so of an ended hold. The lines, whose `ends` column is
/// unique, have the last word. (A database not given that column yet is
/// one no write has come to since: its rows are only read.)
fn open_rows(db: &Db, rows: &[Row]) -> Result<Vec<(u64, Hold)>, ModelError> {
    let holds = rows.iter().map(hold_row).collect::<Result<Vec<_>, _>>()?;
    if holds.is_empty() || !db.hold_ends() {
        return Ok(holds);
    }
    let seqs = holds
        .iter()
        .map(|&(seq, _)| int(seq))
        .collect::<Result<Vec<_>, _>>()?;
    let ended = db.query(
        "SELECT ends, seq FROM ledger_lines WHERE ends = ANY($1) AND ends > 0 LIMIT 1",
        &[&seqs],
    )?;
    match ended.first() {
        None => Ok(holds),
        Some(r) => Err(ModelError::Malformed(format!(
            "hold {} is ended at seq {} in the journal but open in the rows",
            get::<i64>(r, 0)?,
            get::<i64>(r, 1)?
        ))),
    }
}

/// Up to `n` accounts whose names come after `after`, in name order (the
/// names' bytes: the column's collation is "C"), each checked against
/// its digest, its holds not attached.
pub fn accounts_after(
    db: &Db,
    after: &str,
    n: usize,
) -> Result<Vec<(String, Account)>, ModelError> {
    let limit = i64::try_from(n).map_err(|_| ModelError::Malformed("a page too large".into()))?;
    let rows = db.query(
        "SELECT name, owner, unit, balance::text, closed, held::text, digest FROM ledger_accounts
         WHERE name > $1 ORDER BY name LIMIT $2",
        &[&after, &limit],
    )?;
    rows.iter().map(account_row).collect()
}

/// Loads every account, with the open holds.
pub fn load_every_account(db: &Db, state: &mut State) -> Result<(), ModelError> {
    let holds = open_holds(db)?;
    super::load_accounts_with_holds(state, holds, |each| {
        let rows = db.query(
            "SELECT name, owner, unit, balance::text, closed, held::text, digest FROM ledger_accounts",
            &[],
        )?;
        for r in &rows {
            let (name, account) = account_row(r)?;
            each(name, account)?;
        }
        Ok(())
    })
}

/// Loads every entry.
pub fn load_all(db: &Db, state: &mut State) -> Result<(), ModelError> {
    load_every_account(db, state)?;
    let ids = db.query("SELECT id, seq FROM ledger_lines WHERE id IS NOT NULL", &[])?;
    for r in &ids {
        state
            .load_id(get(r, 0)?, uint(get::<i64>(r, 1)?)?)
            .map_err(ModelError::Malformed)?;
    }
    let reversed = db.query("SELECT seq, by_seq, digest FROM ledger_reversed", &[])?;
    for r in &reversed {
        let (seq, by) = reversed_row(r)?;
        state
            .load_reversed(seq, by)
            .map_err(ModelError::Malformed)?;
    }
    let ended = db.query(
        "SELECT seq, by_seq, captured, amount::text, digest FROM ledger_ended",
        &[],
    )?;
    for r in &ended {
        let (seq, end) = ended_row(r)?;
        state.load_ended(seq, end).map_err(ModelError::Malformed)?;
    }
    Ok(())
}

/// The names of every account.
pub fn account_names(db: &Db) -> Result<Vec<String>, ModelError> {
    let rows = db.query("SELECT name FROM ledger_accounts", &[])?;
    rows.iter().map(|r| get(r, 0)).collect()
}

/// Empties every table, for a rebuild.
fn clear(db: &Db) -> Result<(), ModelError> {
    for sql in [
        "DELETE FROM ledger_units",
        "DELETE FROM ledger_accounts",
        "DELETE FROM ledger_reversed",
        "DELETE FROM ledger_holds",
        "DELETE FROM ledger_ended",
    ] {
        db.execute(sql, &[])?;
    }
    Ok(())
}

/// Writes every entry `state` holds, many rows to a statement: for a
/// partial state, what the command loaded and changed; for a `whole` one,
/// everything, into tables emptied first. (The ids are the lines' own
/// column: nothing to write.)
pub fn save(db: &Db, state: &State, whole: bool) -> Result<(), ModelError> {
    if whole {
        clear(db)?;
    }
    save_units(db, state)?;
    // In key order: each statement's rows then go to neighbouring places
    // of the name's B-tree, not all over it.
    let mut accounts: Vec<_> = state.accounts().collect();
    accounts.sort_unstable_by_key(|(name, _)| *name);
    for chunk in accounts.chunks(CHUNK) {
        let mut columns = (
            Vec::new(),
            Vec::new(),
            Vec::new(),
            Vec::new(),
            Vec::new(),
            Vec::new(),
        );
        let mut digests = Vec::new();
        for (name, a) in chunk {
            columns.0.push(*name);
            columns.1.push(a.owner());
            columns
                .2
                .push(i32::try_from(a.unit).map_err(|_| too_many("units"))?);
            columns.3.push(a.balance.0.to_string());
            columns.4.push(a.closed);
            columns.5.push(a.held().0.to_string());
            digests.push(super::rows::account_digest(name, a, i64::from(a.unit)));
        }
        db.execute(
            if whole {
                SAVE_NEW_ACCOUNTS
            } else {
                SAVE_ACCOUNTS
            },
            &[
                &columns.0, &columns.1, &columns.2, &columns.3, &columns.4, &columns.5, &digests,
            ],
        )?;
    }
    save_holds(db, state)
}

fn too_many(what: &str) -> ModelError {
    ModelError::Malformed(format!("too many {what}"))
}

fn save_units(db: &Db, state: &State) -> Result<(), ModelError> {
    let units = state.units();
    let mut columns = (
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
    );
    let mut digests = Vec::with_capacity(units.len());
    for (i, u) in units.iter().enumerate() {
        let idx = i32::try_from(i).map_err(|_| too_many("units"))?;
        digests.push(super::rows::unit_digest(i64::from(idx), u));
        columns.0.push(idx);
        columns.1.push(u.currency.as_deref());
        columns.2.push(i16::from(u.decimals));
        columns.3.push(u.deposited.0.to_string());
        columns.4.push(u.withdrawn.0.to_string());
        columns.5.push(u.held.0.to_string());
    }
    db.execute(
        SAVE_UNITS,
        &[
            &columns.0, &columns.1, &columns.2, &columns.3, &columns.4, &columns.5, &digests,
        ],
    )?;
    Ok(())
}

/// The holds open, the holds ended and the reversals, many rows to a
/// statement as the accounts are: one statement a row took about 55 µs
/// on a local server (100,000 rows, 5.5 s).
fn save_holds(db: &Db, state: &State) -> Result<(), ModelError> {
    let holds: Vec<_> = state.holds().collect();
    for chunk in holds.chunks(CHUNK) {
        let mut columns = (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let mut digests = Vec::new();
        for &(seq, h) in chunk {
            let seq = int(seq)?;
            columns.0.push(seq);
            columns.1.push(&*h.account);
            columns.2.push(h.amount.0.to_string());
            columns.3.push(h.to.as_deref());
            columns.4.push(h.expires.map(|e| e.to_string()));
            digests.push(super::rows::hold_digest(seq, h));
        }
        db.execute(
            SAVE_HOLDS,
            &[
                &columns.0, &columns.1, &columns.2, &columns.3, &columns.4, &digests,
            ],
        )?;
    }
    let ended: Vec<_> = state.ended_holds().collect();
    for chunk in ended.chunks(CHUNK) {
        let mut columns = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let mut digests = Vec::new();
        for (seq, e) in chunk {
            let (seq, by) = (int(*seq)?, int(e.by)?);
            columns.0.push(seq);
            columns.1.push(by);
            columns.2.push(e.captured);
            columns.3.push(e.amount.0.to_string());
            digests.push(super::rows::ended_digest(seq, by, e));
        }
        db.execute(
            "DELETE FROM ledger_holds WHERE seq = ANY($1)",
            &[&columns.0],
        )?;
        db.execute(
            SAVE_ENDED,
            &[&columns.0, &columns.1, &columns.2, &columns.3, &digests],
        )?;
    }
    let reversals: Vec<_> = state.reversals().collect();
    for chunk in reversals.chunks(CHUNK) {
        let (mut of, mut by, mut digests) = (Vec::new(), Vec::new(), Vec::new());
        for &(o, b) in chunk {
            let (o, b) = (int(o)?, int(b)?);
            of.push(o);
            by.push(b);
            digests.push(super::rows::reversed_digest(o, b));
        }
        db.execute(SAVE_REVERSED, &[&of, &by, &digests])?;
    }
    Ok(())
}

const SAVE_HOLDS: &str = "INSERT INTO ledger_holds (seq, account, amount, dest, expires, digest)
             SELECT s, a, m::numeric, d, e, g
             FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[])
                 AS t(s, a, m, d, e, g)
             ON CONFLICT (seq) DO UPDATE SET account = excluded.account,
                 amount = excluded.amount, dest = excluded.dest, expires = excluded.expires,
                 digest = excluded.digest";

const SAVE_ENDED: &str = "INSERT INTO ledger_ended (seq, by_seq, captured, amount, digest)
             SELECT s, b, c, m::numeric, g
             FROM unnest($1::bigint[], $2::bigint[], $3::bool[], $4::text[], $5::bigint[])
                 AS t(s, b, c, m, g)
             ON CONFLICT (seq) DO NOTHING";

const SAVE_REVERSED: &str = "INSERT INTO ledger_reversed (seq, by_seq, digest)
             SELECT s, b, g FROM unnest($1::bigint[], $2::bigint[], $3::bigint[]) AS t(s, b, g)
             ON CONFLICT (seq) DO NOTHING";
