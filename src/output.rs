//! Rendering results as a table for people, or JSON / CSV for programs.
//! Results go to stdout; diagnostics never come through here.

use std::io::{self, Write};

use serde::Serialize;

use crate::cli::Format;
use crate::domain::{Account, State, Unit};
use crate::event::{Change, Event};
use crate::money::Amount;

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
    let rows: Vec<Vec<std::borrow::Cow<'_, str>>> = rows
        .iter()
        .map(|row| row.iter().map(|cell| table_cell(cell)).collect())
        .collect();
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |out: &mut dyn Write, cells: &mut dyn Iterator<Item = &str>| -> io::Result<()> {
        let mut text = String::new();
        for (i, cell) in cells.enumerate() {
            if i > 0 {
                text.push_str("  ");
            }
            let pad = widths[i].saturating_sub(cell.chars().count());
            if right.get(i).copied().unwrap_or(false) {
                text.extend(std::iter::repeat_n(' ', pad));
                text.push_str(cell);
            } else {
                text.push_str(cell);
                text.extend(std::iter::repeat_n(' ', pad));
            }
        }
        writeln!(out, "{}", text.trim_end())
    };
    line(out, &mut header.iter().copied())?;
    for row in &rows {
        line(out, &mut row.iter().map(|cell| &**cell))?;
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
struct BalanceJson<'a> {
    as_of_seq: u64,
    accounts: Vec<AccountJson<'a>>,
    totals: Vec<TotalJson<'a>>,
}

#[derive(Serialize)]
struct AccountJson<'a> {
    account: &'a str,
    owner: Option<&'a str>,
    currency: Option<&'a str>,
    decimals: u8,
    balance: String,
    closed: bool,
}

#[derive(Serialize)]
struct TotalJson<'a> {
    currency: Option<&'a str>,
    decimals: u8,
    balance: String,
}

/// Prints the balances of `names` (every account when empty), sorted by
/// name, with totals per currency and decimals over the accounts shown.
pub fn balances(
    out: &mut impl Write,
    format: Format,
    state: &State,
    names: &[&str],
) -> io::Result<()> {
    let mut accounts: Vec<(&str, &Account)> = if names.is_empty() {
        state.accounts().collect()
    } else {
        names
            .iter()
            .filter_map(|n| state.account(n).map(|a| (*n, a)))
            .collect()
    };
    accounts.sort_by_key(|(name, _)| *name);
    accounts.dedup_by_key(|(name, _)| *name);
    let mut totals: Vec<(usize, Amount)> = Vec::new();
    for (_, a) in &accounts {
        match totals.iter_mut().find(|(u, _)| *u == a.unit) {
            // Within one unit the sum of balances is bounded by the unit's
            // `held`, which the rules keep within i128.
            Some((_, sum)) => *sum = Amount(sum.0.saturating_add(a.balance.0)),
            None => totals.push((a.unit, a.balance)),
        }
    }
    let unit = |i: usize| &state.units()[i];
    match format {
        Format::Json => {
            let doc = BalanceJson {
                as_of_seq: state.seq(),
                accounts: accounts
                    .iter()
                    .map(|(name, a)| AccountJson {
                        account: name,
                        owner: a.owner.as_deref(),
                        currency: unit(a.unit).currency.as_deref(),
                        decimals: unit(a.unit).decimals,
                        balance: a.balance.display(unit(a.unit).decimals).to_string(),
                        closed: a.closed,
                    })
                    .collect(),
                totals: totals
                    .iter()
                    .map(|(u, sum)| TotalJson {
                        currency: unit(*u).currency.as_deref(),
                        decimals: unit(*u).decimals,
                        balance: sum.display(unit(*u).decimals).to_string(),
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
                ],
            )?;
            for (name, a) in &accounts {
                let u = unit(a.unit);
                csv_row(
                    out,
                    &[
                        name.to_string(),
                        a.owner.as_deref().unwrap_or("").to_owned(),
                        u.currency.as_deref().unwrap_or("").to_owned(),
                        u.decimals.to_string(),
                        a.balance.display(u.decimals).to_string(),
                        a.closed.to_string(),
                        // Which seq the balances reflect, as in JSON.
                        state.seq().to_string(),
                    ],
                )?;
            }
            Ok(())
        }
        Format::Table => {
            if accounts.is_empty() {
                return writeln!(out, "no accounts (as of seq {})", state.seq());
            }
            let rows: Vec<Vec<String>> = accounts
                .iter()
                .map(|(name, a)| {
                    let u = unit(a.unit);
                    vec![
                        name.to_string(),
                        a.owner.as_deref().unwrap_or("").to_owned(),
                        u.currency.as_deref().unwrap_or("").to_owned(),
                        a.balance.display(u.decimals).to_string(),
                        if a.closed {
                            "closed".into()
                        } else {
                            String::new()
                        },
                    ]
                })
                .collect();
            table(
                out,
                &["ACCOUNT", "OWNER", "CURRENCY", "BALANCE", ""],
                &[false, false, false, true],
                &rows,
            )?;
            writeln!(out)?;
            let rows: Vec<Vec<String>> = totals
                .iter()
                .map(|(u, sum)| {
                    vec![
                        unit(*u)
                            .currency
                            .as_deref()
                            .unwrap_or("(no currency)")
                            .to_owned(),
                        sum.display(unit(*u).decimals).to_string(),
                    ]
                })
                .collect();
            table(out, &["TOTAL", "BALANCE"], &[false, true], &rows)?;
            writeln!(out, "as of seq {}", state.seq())
        }
    }
}

/// The columns of an event in CSV.
pub const EVENT_CSV_HEADER: [&str; 14] = [
    "seq", "at", "type", "account", "from", "to", "amount", "owner", "currency", "decimals", "id",
    "memo", "batch", "prev",
];

/// An event's CSV cells, in the order of [`EVENT_CSV_HEADER`]; `prev` comes
/// from its line.
pub fn event_csv(event: &Event<'_>, line: &[u8]) -> Vec<String> {
    let s = |v: Option<&str>| v.unwrap_or("").to_owned();
    let (account, from, to, owner, currency, decimals) = match &event.change {
        Change::AccountCreated {
            account,
            owner,
            currency,
            decimals,
        } => (
            account.to_string(),
            String::new(),
            String::new(),
            s(owner.as_deref()),
            s(currency.as_deref()),
            decimals.to_string(),
        ),
        Change::MoneyDeposited { account, .. }
        | Change::MoneyWithdrawn { account, .. }
        | Change::AccountClosed { account } => (
            account.to_string(),
            String::new(),
            String::new(),
            String::new(),
            String::new(),
            String::new(),
        ),
        Change::TransferCompleted { from, to, .. } => (
            String::new(),
            from.to_string(),
            to.to_string(),
            String::new(),
            String::new(),
            String::new(),
        ),
    };
    let prev = line
        .len()
        .checked_sub(66)
        .and_then(|i| std::str::from_utf8(&line[i..i + 64]).ok())
        .unwrap_or("");
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
        s(event.id.as_deref()),
        s(event.memo.as_deref()),
        event.batch.map(|b| b.to_string()).unwrap_or_default(),
        prev.to_owned(),
    ]
}

/// What an event did, in words: `deposit 50.00 to acct1`.
pub fn describe(event: &Event<'_>) -> String {
    match &event.change {
        Change::AccountCreated {
            account,
            owner,
            currency,
            decimals,
        } => {
            let mut s = format!("open {account}");
            if let Some(owner) = owner {
                s.push_str(&format!(" for {owner}"));
            }
            match currency {
                Some(c) => s.push_str(&format!(" in {c}, {decimals} decimals")),
                None => s.push_str(&format!(", {decimals} decimals")),
            }
            s
        }
        Change::MoneyDeposited { account, amount } => format!("deposit {amount} to {account}"),
        Change::MoneyWithdrawn { account, amount } => format!("withdraw {amount} from {account}"),
        Change::TransferCompleted { from, to, amount } => {
            format!("transfer {amount} from {from} to {to}")
        }
        Change::AccountClosed { account } => format!("close {account}"),
    }
}
