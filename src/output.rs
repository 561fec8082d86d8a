//! Rendering results as a table for people, or JSON / CSV for programs.
//! Results go to stdout; diagnostics never come through here.

use std::borrow::Cow;
use std::io::{self, Write};

pub mod history;
pub mod report;

use serde::Serialize;

use crate::cli::Format;
use crate::domain::{Account, State, Unit};
use crate::event::{Change, Event};
use crate::money::Amount;
use crate::time::At;

/// A money value with its currency, for people: `50.00 EUR`, `50.00`.
pub fn money(amount: Amount, unit: &Unit) -> String {
    match &unit.currency {
        Some(code) => format!("{} {code}", amount.display(unit.decimals)),
        None => amount.display(unit.decimals).to_string(),
    }
}

/// `text` as a table shows it: with the characters that reorder the text
/// around them (bidi embeddings, overrides, isolates and marks) shown as
/// `\u{202e}`, so that a memo or an owner cannot make a table read
/// differently from what it holds. JSON and CSV keep them: programs read
/// those, not eyes.
pub fn table_cell(text: &str) -> std::borrow::Cow<'_, str> {
    let reorders = |c: char| matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
    if !text.contains(reorders) {
        return text.into();
    }
    text.chars()
        .map(|c| {
            if reorders(c) {
                c.escape_unicode().to_string()
            } else {
                c.to_string()
            }
        })
        .collect::<String>()
        .into()
}

/// Prints rows as aligned columns; `right` marks the columns to right-align.
pub fn table(
    out: &mut impl Write,
    header: &[&str],
    right: &[bool],
    rows: &[Vec<String>],
) -> io::Result<()> {
    table_with(out, header, right, || rows.iter())
}

/// [`table`] of rows made on demand, twice (once to size the columns,
/// once to print them), so that a table of a million rows never holds
/// them all. A row is anything that reads as a slice of texts: a row
/// that borrows its cells allocates nothing.
pub fn table_with<I, R, C>(
    out: &mut impl Write,
    header: &[&str],
    right: &[bool],
    rows: impl Fn() -> I,
) -> io::Result<()>
where
    I: Iterator<Item = R>,
    R: AsRef<[C]>,
    C: AsRef<str>,
{
    let width = |text: &str| match text.is_ascii() {
        true => text.len(),
        false => table_cell(text).chars().count(),
    };
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows() {
        for (w, cell) in widths.iter_mut().zip(row.as_ref()) {
            *w = (*w).max(width(cell.as_ref()));
        }
    }
    // One line's text, used again for every line.
    let mut text = String::new();
    let mut line = |out: &mut dyn Write, cells: &mut dyn Iterator<Item = &str>| {
        text.clear();
        for (i, cell) in cells.enumerate() {
            if i > 0 {
                text.push_str("  ");
            }
            let cell = table_cell(cell);
            let pad = widths[i].saturating_sub(width(&cell));
            if right.get(i).copied().unwrap_or(false) {
                text.extend(std::iter::repeat_n(' ', pad));
                text.push_str(&cell);
            } else {
                text.push_str(&cell);
                text.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.write_all(text.trim_end().as_bytes())?;
        out.write_all(b"\n")
    };
    line(out, &mut header.iter().copied())?;
    for row in rows() {
        line(out, &mut row.as_ref().iter().map(AsRef::as_ref))?;
    }
    Ok(())
}

/// One CSV record (RFC 4180: quoted when needed, CRLF line ends).
pub fn csv_row<S: AsRef<str>>(out: &mut impl Write, cells: &[S]) -> io::Result<()> {
    for (i, cell) in cells.iter().enumerate() {
        if i > 0 {
            out.write_all(b",")?;
        }
        let cell = cell.as_ref();
        if cell.contains([',', '"', '\n', '\r']) {
            write!(out, "\"{}\"", cell.replace('"', "\"\""))?;
        } else {
            out.write_all(cell.as_bytes())?;
        }
    }
    out.write_all(b"\r\n")
}

#[derive(Serialize)]
#[serde(bound = "AccountsJson<F>: Serialize")]
struct BalanceJson<'a, F> {
    as_of_seq: u64,
    accounts: AccountsJson<F>,
    totals: Vec<TotalJson<'a>>,
}

/// The accounts of a balance report, each made into its JSON form as it
/// is written (a million of them are never all held, as rows or as JSON
/// values): `F` makes the rows.
struct AccountsJson<F>(F);

impl<'r, F, I> Serialize for AccountsJson<F>
where
    F: Fn() -> I,
    I: Iterator<Item = BalanceRow<'r>>,
{
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq((self.0)().map(|r| AccountJson {
            account: r.account.clone(),
            owner: r.owner.clone(),
            currency: r.unit.currency.as_deref(),
            decimals: r.unit.decimals,
            balance: r.balance.display(r.unit.decimals).to_string(),
            held: r.held.display(r.unit.decimals).to_string(),
            available: r.available().display(r.unit.decimals).to_string(),
            closed: r.closed,
        }))
    }
}

#[derive(Serialize)]
struct AccountJson<'a> {
    account: Cow<'a, str>,
    owner: Option<Cow<'a, str>>,
    currency: Option<&'a str>,
    decimals: u8,
    balance: String,
    held: String,
    available: String,
    closed: bool,
}

#[derive(Serialize)]
struct TotalJson<'a> {
    currency: Option<&'a str>,
    decimals: u8,
    balance: String,
    held: String,
    available: String,
}

/// One account's line in a balance report.
#[derive(Debug, Clone)]
pub struct BalanceRow<'a> {
    /// The account (read from a state, or owned when streamed from the
    /// read model).
    pub account: Cow<'a, str>,
    /// Who holds it.
    pub owner: Option<Cow<'a, str>>,
    /// Its currency and decimals.
    pub unit: &'a Unit,
    /// Its balance (by day, it may be negative).
    pub balance: Amount,
    /// What active holds reserve of it.
    pub held: Amount,
    /// Whether it is closed.
    pub closed: bool,
}

impl BalanceRow<'_> {
    /// Balance less held.
    pub fn available(&self) -> Amount {
        Amount(self.balance.0.saturating_sub(self.held.0))
    }
}

/// What `balance` shows: the accounts, sorted by name, and the seq their
/// balances reflect.
#[derive(Debug, Clone)]
pub struct BalanceReport<'a> {
    /// The highest seq the balances take in.
    pub as_of_seq: u64,
    /// One row per account.
    pub rows: Vec<BalanceRow<'a>>,
}

impl<'a> BalanceReport<'a> {
    /// The accounts `names` (every account when empty) of `state`, with
    /// holds judged at instant `at`.
    pub fn of_state(state: &'a State, names: &[&str], at: At) -> BalanceReport<'a> {
        let row = |name, a| row(state, name, a, at);
        let rows: Vec<BalanceRow<'a>> = if names.is_empty() {
            state.accounts().map(|(name, a)| row(name, a)).collect()
        } else {
            names
                .iter()
                .filter_map(|n| state.account(n).map(|a| (*n, a)))
                .map(|(name, a)| {
                    // The name as the state holds it, so the report
                    // borrows only from the state.
                    let name = state
                        .accounts()
                        .find(|(k, _)| *k == name)
                        .map_or("", |(k, _)| k);
                    row(name, a)
                })
                .collect()
        };
        BalanceReport::sorted(state.seq(), rows)
    }

    /// A report of these rows, sorted by account, each account once.
    pub fn sorted(as_of_seq: u64, mut rows: Vec<BalanceRow<'a>>) -> BalanceReport<'a> {
        rows.sort_by(|a, b| a.account.cmp(&b.account));
        rows.dedup_by(|a, b| a.account == b.account);
        BalanceReport { as_of_seq, rows }
    }
}

/// Sums of balance and held per currency and decimals, in order of first
/// appearance: a balance report's totals, added up row by row.
#[derive(Debug, Default)]
pub struct Totals<'a>(Vec<(&'a Unit, Amount, Amount)>);

impl<'a> Totals<'a> {
    /// Adds one row.
    pub fn add(&mut self, r: &BalanceRow<'a>) {
        // Within one unit the sums are bounded by the unit's totals, which
        // the rules keep within i128.
        let add = |a: Amount, b: Amount| Amount(a.0.saturating_add(b.0));
        match self.0.iter_mut().find(|(u, _, _)| std::ptr::eq(*u, r.unit)) {
            Some((_, sum, held)) => {
                *sum = add(*sum, r.balance);
                *held = add(*held, r.held);
            }
            None => self.0.push((r.unit, r.balance, r.held)),
        }
    }
}

fn row<'a>(state: &'a State, name: &'a str, a: &'a Account, at: At) -> BalanceRow<'a> {
    BalanceRow {
        account: Cow::Borrowed(name),
        owner: a.owner().map(Cow::Borrowed),
        unit: state.unit_of(a),
        balance: a.balance,
        held: state.held_at(a, at),
        closed: a.closed,
    }
}

/// Prints a balance report with totals per currency and decimals.
pub fn balances(
    out: &mut impl Write,
    format: Format,
    report: &BalanceReport<'_>,
) -> io::Result<()> {
    let mut totals = Totals::default();
    for r in &report.rows {
        totals.add(r);
    }
    let rows = || report.rows.iter().cloned();
    balances_with(out, format, report.as_of_seq, &totals, rows)
}

/// Prints the balances of the rows `rows` makes (in account order; made
/// again for each pass a table needs, so that they need not all be held),
/// with their `totals`, as of seq `as_of_seq`.
pub fn balances_with<'r, I>(
    out: &mut impl Write,
    format: Format,
    as_of_seq: u64,
    totals: &Totals<'_>,
    rows: impl Fn() -> I,
) -> io::Result<()>
where
    I: Iterator<Item = BalanceRow<'r>>,
{
    let totals = &totals.0;
    match format {
        Format::Json => {
            let doc = BalanceJson {
                as_of_seq,
                accounts: AccountsJson(rows),
                totals: totals
                    .iter()
                    .map(|(u, sum, held)| TotalJson {
                        currency: u.currency.as_deref(),
                        decimals: u.decimals,
                        balance: sum.display(u.decimals).to_string(),
                        held: held.display(u.decimals).to_string(),
                        available: Amount(sum.0.saturating_sub(held.0))
                            .display(u.decimals)
                            .to_string(),
                    })
                    .collect(),
            };
            serde_json::to_writer(&mut *out, &doc)?;
            writeln!(out)
        }
        Format::Csv => {
            csv_row(
                out,
                &[
                    "account",
                    "owner",
                    "currency",
                    "decimals",
                    "balance",
                    "closed",
                    "as_of_seq",
                    "held",
                    "available",
                ],
            )?;
            for r in rows() {
                csv_row(
                    out,
                    &[
                        r.account.to_string(),
                        r.owner.as_deref().unwrap_or("").to_owned(),
                        r.unit.currency.as_deref().unwrap_or("").to_owned(),
                        r.unit.decimals.to_string(),
                        r.balance.display(r.unit.decimals).to_string(),
                        r.closed.to_string(),
                        // Which seq the balances reflect, as in JSON.
                        as_of_seq.to_string(),
                        r.held.display(r.unit.decimals).to_string(),
                        r.available().display(r.unit.decimals).to_string(),
                    ],
                )?;
            }
            Ok(())
        }
        Format::Table => {
            // No rows, no totals.
            if totals.is_empty() {
                return writeln!(out, "no accounts (as of seq {as_of_seq})");
            }
            // Held and available only when a hold makes them differ (what
            // holds reserve is never negative: a total is zero only when
            // every row's is).
            let holds = totals.iter().any(|(_, _, held)| *held != Amount::ZERO);
            let money = |balance: Amount, held: Amount, decimals: u8| {
                let mut cells = vec![balance.display(decimals).to_string()];
                if holds {
                    cells.push(held.display(decimals).to_string());
                    cells.push(
                        Amount(balance.0.saturating_sub(held.0))
                            .display(decimals)
                            .to_string(),
                    );
                }
                cells
            };
            let cells = |r: BalanceRow<'_>| {
                let mut cells = vec![
                    r.account.into_owned(),
                    r.owner.as_deref().unwrap_or("").to_owned(),
                    r.unit.currency.as_deref().unwrap_or("").to_owned(),
                ];
                cells.extend(money(r.balance, r.held, r.unit.decimals));
                cells.push(if r.closed {
                    "closed".into()
                } else {
                    String::new()
                });
                std::borrow::Cow::Owned(cells)
            };
            let mut header = vec!["ACCOUNT", "OWNER", "CURRENCY", "BALANCE"];
            let mut right = vec![false, false, false, true];
            if holds {
                header.extend(["HELD", "AVAILABLE"]);
                right.extend([true, true]);
            }
            header.push("");
            table_with(out, &header, &right, || rows().map(cells))?;
            writeln!(out)?;
            let rows: Vec<Vec<String>> = totals
                .iter()
                .map(|(u, sum, held)| {
                    let mut cells =
                        vec![u.currency.as_deref().unwrap_or("(no currency)").to_owned()];
                    cells.extend(money(*sum, *held, u.decimals));
                    cells
                })
                .collect();
            let mut header = vec!["TOTAL", "BALANCE"];
            if holds {
                header.extend(["HELD", "AVAILABLE"]);
            }
            table(out, &header, &[false, true, true, true], &rows)?;
            writeln!(out, "as of seq {as_of_seq}")
        }
    }
}

/// The columns of an event in CSV.
pub const EVENT_CSV_HEADER: [&str; 19] = [
    "seq", "at", "type", "account", "from", "to", "amount", "owner", "currency", "decimals",
    "hold", "expires", "date", "reverses", "tags", "id", "memo", "batch", "prev",
];

/// The account-like cells of an event: account, from, to, owner,
/// currency, decimals, hold, expires.
fn change_cells(change: &Change<'_>) -> [String; 8] {
    let s = |v: Option<&str>| v.unwrap_or("").to_owned();
    let none = String::new;
    match change {
        Change::AccountCreated {
            account,
            owner,
            currency,
            decimals,
        } => [
            account.to_string(),
            none(),
            none(),
            s(owner.as_deref()),
            s(currency.as_deref()),
            decimals.to_string(),
            none(),
            none(),
        ],
        Change::MoneyDeposited { account, .. }
        | Change::MoneyWithdrawn { account, .. }
        | Change::AccountClosed { account } => [
            account.to_string(),
            none(),
            none(),
            none(),
            none(),
            none(),
            none(),
            none(),
        ],
        Change::TransferCompleted { from, to, .. } => [
            none(),
            from.to_string(),
            to.to_string(),
            none(),
            none(),
            none(),
            none(),
            none(),
        ],
        Change::FundsHeld {
            account,
            to,
            expires,
            ..
        } => [
            account.to_string(),
            none(),
            s(to.as_deref()),
            none(),
            none(),
            none(),
            none(),
            expires.map(|e| e.to_string()).unwrap_or_default(),
        ],
        Change::HoldCaptured {
            hold, account, to, ..
        } => [
            account.to_string(),
            none(),
            s(to.as_deref()),
            none(),
            none(),
            none(),
            hold.to_string(),
            none(),
        ],
        Change::HoldReleased { hold, account } => [
            account.to_string(),
            none(),
            none(),
            none(),
            none(),
            none(),
            hold.to_string(),
            none(),
        ],
    }
}

/// An event's CSV cells, in the order of [`EVENT_CSV_HEADER`]; `prev` comes
/// from its line.
pub fn event_csv(event: &Event<'_>, line: &[u8]) -> Vec<String> {
    let s = |v: Option<&str>| v.unwrap_or("").to_owned();
    let [account, from, to, owner, currency, decimals, hold, expires] = change_cells(&event.change);
    let prev = crate::journal::line::prev_hex(line);
    vec![
        event.seq.to_string(),
        event.at.to_string(),
        event.change.type_name().to_owned(),
        account,
        from,
        to,
        event
            .change
            .amount()
            .map(|a| a.to_string())
            .unwrap_or_default(),
        owner,
        currency,
        decimals,
        hold,
        expires,
        event.date.map(|d| d.to_string()).unwrap_or_default(),
        event.reverses.map(|r| r.to_string()).unwrap_or_default(),
        tags_json(event),
        s(event.id.as_deref()),
        s(event.memo.as_deref()),
        event.batch.map(|b| b.to_string()).unwrap_or_default(),
        prev.to_owned(),
    ]
}

/// An event's tags as the journal writes them (a JSON object), or nothing.
fn tags_json(event: &Event<'_>) -> String {
    if event.tags.is_empty() {
        return String::new();
    }
    let map: serde_json::Map<String, serde_json::Value> = event
        .tags
        .iter()
        .map(|(k, v)| (k.to_string(), serde_json::Value::String(v.to_string())))
        .collect();
    serde_json::Value::Object(map).to_string()
}

/// What an event did, in words: `deposit 50.00 to acct1`; a reversal
/// names what it undoes, a book date says so.
pub fn describe(event: &Event<'_>) -> String {
    let mut text = String::new();
    describe_into(&mut text, event);
    text
}

/// [`describe`], appended to `out` (no allocation of its own: export
/// describes most events).
pub fn describe_into(out: &mut String, event: &Event<'_>) {
    use std::fmt::Write as _;
    // Writing to a `String` cannot fail.
    if let Some(seq) = event.reverses {
        let _ = write!(out, "reverse seq {seq}: ");
    }
    let _ = describe_change(out, &event.change);
    if let Some(date) = event.date {
        let _ = write!(out, " (booked {date})");
    }
}

fn describe_change(s: &mut String, change: &Change<'_>) -> std::fmt::Result {
    use std::fmt::Write as _;
    match change {
        Change::AccountCreated {
            account,
            owner,
            currency,
            decimals,
        } => {
            write!(s, "open {account}")?;
            if let Some(owner) = owner {
                write!(s, " for {owner}")?;
            }
            match currency {
                Some(c) => write!(s, " in {c}, {decimals} decimals"),
                None => write!(s, ", {decimals} decimals"),
            }
        }
        Change::MoneyDeposited { account, amount } => write!(s, "deposit {amount} to {account}"),
        Change::MoneyWithdrawn { account, amount } => write!(s, "withdraw {amount} from {account}"),
        Change::TransferCompleted { from, to, amount } => {
            write!(s, "transfer {amount} from {from} to {to}")
        }
        Change::AccountClosed { account } => write!(s, "close {account}"),
        Change::FundsHeld {
            account,
            amount,
            to,
            expires,
        } => {
            write!(s, "hold {amount} of {account}")?;
            if let Some(to) = to {
                write!(s, " for {to}")?;
            }
            if let Some(expires) = expires {
                write!(s, " until {expires}")?;
            }
            Ok(())
        }
        Change::HoldCaptured {
            hold,
            account,
            to,
            amount,
        } => match to {
            Some(to) => write!(s, "capture {amount} of hold {hold}: {account} to {to}"),
            None => write!(s, "capture {amount} of hold {hold}: out of {account}"),
        },
        Change::HoldReleased { hold, account } => write!(s, "release hold {hold} of {account}"),
    }
}
