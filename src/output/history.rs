//! `history` rows as a table, JSON Lines or CSV, each rendered on its own
//! so that a history streams: the table's columns are sized up front (see
//! [`Layout`]), never by looking at every row first.

use std::io::{self, Write};

use crate::cli::Format;
use crate::event::Event;
use crate::money::Amount;
use crate::output::{EVENT_CSV_HEADER, csv_row, describe, event_csv};
use crate::time::Zone;

/// The widths of a history table, known before its first row: the seq's
/// digits from the journal's last seq, and the amounts' from the most money
/// the account's currency ever held (no balance, by day or not, and no
/// change can be larger), with room for a sign. The event's text, whose
/// width nobody knows in advance, comes last.
#[derive(Debug, Clone, Copy)]
pub struct Layout {
    /// Digits of the seq column.
    pub seq: usize,
    /// For one account's history: the width of its amounts, and its decimals.
    pub amounts: Option<(usize, u8)>,
}

impl Layout {
    /// The layout for seqs up to `last_seq`, and amounts up to `most` at
    /// `decimals` when there are amounts.
    pub fn new(last_seq: u64, amounts: Option<(Amount, u8)>) -> Layout {
        Layout {
            seq: last_seq.to_string().len().max(3),
            amounts: amounts.map(|(most, d)| {
                let width = most.display(d).to_string().len() + 1;
                (width.max("BALANCE".len()), d)
            }),
        }
    }
}

/// An event's change to the account and the account's balance after it.
#[derive(Debug, Clone, Copy)]
pub struct Amounts {
    /// The signed change.
    pub change: Amount,
    /// The balance after it.
    pub balance: Amount,
}

/// The header: the table's column names, or CSV's.
pub fn header(out: &mut impl Write, format: Format, layout: &Layout) -> io::Result<()> {
    match format {
        Format::Json => Ok(()),
        Format::Csv => {
            let mut cells = EVENT_CSV_HEADER.to_vec();
            if layout.amounts.is_some() {
                cells.extend(["change", "balance"]);
            }
            csv_row(out, &cells)
        }
        Format::Table => {
            write!(out, "{:>w$}  {:<19}  ", "SEQ", "AT", w = layout.seq)?;
            if let Some((w, _)) = layout.amounts {
                write!(out, "{:>w$}  {:>w$}  ", "CHANGE", "BALANCE")?;
            }
            writeln!(out, "EVENT")
        }
    }
}

/// One event read from `line`, with `amounts` for one account's history.
pub fn event(
    out: &mut Vec<u8>,
    format: Format,
    zone: &Zone,
    layout: &Layout,
    event: &Event<'_>,
    line: &[u8],
    amounts: Option<Amounts>,
) -> io::Result<()> {
    let decimals = layout.amounts.map_or(0, |(_, d)| d);
    match format {
        Format::Json => {
            // The stored line unchanged, then the two fields of SPEC 6.
            match amounts {
                Some(a) => {
                    let change = a.change.display(decimals).to_string();
                    let balance = a.balance.display(decimals).to_string();
                    let fields = [("change", change.as_str()), ("balance", balance.as_str())];
                    crate::journal::line::with_fields(line, &fields, out);
                }
                None => out.extend_from_slice(line),
            }
            out.write_all(b"\n")
        }
        Format::Csv => {
            let mut cells = event_csv(event, line);
            if let Some(a) = amounts {
                cells.push(a.change.display(decimals).to_string());
                cells.push(a.balance.display(decimals).to_string());
            }
            csv_row(out, &cells)
        }
        Format::Table => {
            let mut text = describe(event);
            for (label, value) in [("memo", &event.memo), ("id", &event.id)] {
                if let Some(value) = value {
                    text.push_str(&format!("  {label} {value}"));
                }
            }
            let at = zone.show(event.at);
            table_row(out, layout, &event.seq.to_string(), &at, amounts, &text)
        }
    }
}

/// The first row of a statement that starts at `since`: the balance then.
pub fn opening(out: &mut Vec<u8>, layout: &Layout, since: &str, balance: Amount) -> io::Result<()> {
    let amounts = Amounts {
        change: Amount::ZERO,
        balance,
    };
    table_row(out, layout, "", since, Some(amounts), "opening balance")
}

fn table_row(
    out: &mut Vec<u8>,
    layout: &Layout,
    seq: &str,
    at: &str,
    amounts: Option<Amounts>,
    text: &str,
) -> io::Result<()> {
    write!(out, "{seq:>w$}  {at:<19}  ", w = layout.seq)?;
    if let (Some((w, d)), Some(a)) = (layout.amounts, amounts) {
        let change = if seq.is_empty() {
            String::new()
        } else {
            a.change.display(d).to_string()
        };
        write!(
            out,
            "{change:>w$}  {:>w$}  ",
            a.balance.display(d).to_string()
        )?;
    }
    writeln!(out, "{}", super::table_cell(text.trim_end()))
}

/// One event as a line of its own, its fields labelled, for a table whose
/// columns cannot be sized (`history --follow`):
/// `    5  2026-11-26 10:00:00  deposit 5.00 to acct1  change 5.00  balance 15.00  memo rent  id pay-17`
pub fn labelled(
    out: &mut Vec<u8>,
    zone: &Zone,
    event: &Event<'_>,
    amounts: Option<Amounts>,
    decimals: u8,
) -> io::Result<()> {
    write!(
        out,
        "{:>5}  {}  {}",
        event.seq,
        zone.show(event.at),
        super::table_cell(&describe(event))
    )?;
    if let Some(a) = amounts {
        write!(
            out,
            "  change {}  balance {}",
            a.change.display(decimals),
            a.balance.display(decimals)
        )?;
    }
    for (label, value) in [("memo", &event.memo), ("id", &event.id)] {
        if let Some(value) = value {
            write!(out, "  {label} {}", super::table_cell(value))?;
        }
    }
    writeln!(out)
}
