//! `ledger history`.

use std::collections::VecDeque;
use std::io::{self, Write};

use crate::cli::{Format, HistoryArgs};
use crate::cmd::{Context, ReplayFrom, replay};
use crate::domain::{Rejection, State};
use crate::error::Error;
use crate::journal::scan::Entry;
use crate::output;

/// One selected event, rendered.
enum Row {
    /// A JSON line.
    Json(Vec<u8>),
    /// CSV or table cells.
    Cells(Vec<String>),
}

/// Prints the selected events in order.
pub fn run(ctx: &Context, args: &HistoryArgs) -> Result<(), Error> {
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    // Rows are held back only when they must be: to keep the last N, or to
    // align a table. Otherwise they stream, and memory stays flat.
    let hold = args.limit.is_some() || ctx.format == Format::Table;
    let mut held: VecDeque<Row> = VecDeque::new();
    let account = args.account.as_deref();
    if ctx.format == Format::Csv {
        let mut header: Vec<&str> = output::EVENT_CSV_HEADER.to_vec();
        if account.is_some() {
            header.push("balance");
        }
        output::csv_row(&mut out, &header)?;
    }
    // A streamed row waits for the next line to be read: an edited line is
    // only caught by the next line's `prev`, and must never be printed.
    let mut unconfirmed: Option<Row> = None;
    let state = replay(&ctx.path, None, ReplayFrom::Start, |state, entry| {
        if let Some(row) = unconfirmed.take() {
            emit(&mut out, row)?;
        }
        let event = &entry.event;
        let selected = args.as_of.is_none_or(|b| b.includes(event.seq, event.at))
            && args.since.is_none_or(|t| event.at >= t)
            && args.until.is_none_or(|t| event.at <= t)
            && account.is_none_or(|a| event.change.involves(a));
        if !selected || args.limit == Some(0) {
            return Ok(());
        }
        let row = render(ctx.format, state, entry, account);
        if !hold {
            unconfirmed = Some(row);
            return Ok(());
        }
        if args.limit.is_some_and(|n| held.len() == n) {
            held.pop_front();
        }
        held.push_back(row);
        Ok(())
    })?;
    if let Some(row) = unconfirmed {
        emit(&mut out, row)?;
    }
    if let Some(name) = account
        && state.account(name).is_none()
    {
        return Err(Rejection::UnknownAccount(name.to_owned()).into());
    }
    if ctx.format == Format::Table {
        let mut header = vec!["SEQ", "AT", "EVENT"];
        let mut right = vec![true, false, false];
        if account.is_some() {
            header.push("BALANCE");
            right.push(true);
        }
        header.extend(["MEMO", "ID"]);
        let rows: Vec<Vec<String>> = held
            .into_iter()
            .filter_map(|r| match r {
                Row::Cells(c) => Some(c),
                Row::Json(_) => None,
            })
            .collect();
        if rows.is_empty() {
            writeln!(out, "no events")?;
        } else {
            output::table(&mut out, &header, &right, &rows)?;
        }
    } else {
        for row in held {
            emit(&mut out, row)?;
        }
    }
    Ok(out.flush()?)
}

/// Renders an event; `after` is the state after it.
fn render(format: Format, after: &State, entry: &Entry<'_>, account: Option<&str>) -> Row {
    let event = &entry.event;
    let balance = account
        .and_then(|name| after.account(name))
        .map(|a| a.balance.display(after.unit_of(a).decimals).to_string());
    match format {
        Format::Json => {
            let mut line = entry.line.to_vec();
            if let Some(balance) = balance {
                line.pop();
                line.extend_from_slice(format!(r#","balance":"{balance}"}}"#).as_bytes());
            }
            Row::Json(line)
        }
        Format::Csv => {
            let mut cells = output::event_csv(event, entry.line);
            cells.extend(balance);
            Row::Cells(cells)
        }
        Format::Table => {
            let mut cells = vec![
                event.seq.to_string(),
                event.at.to_string(),
                output::describe(event),
            ];
            cells.extend(balance);
            cells.push(event.memo.as_deref().unwrap_or("").to_owned());
            cells.push(event.id.as_deref().unwrap_or("").to_owned());
            Row::Cells(cells)
        }
    }
}

fn emit(out: &mut impl Write, row: Row) -> Result<(), Error> {
    match row {
        Row::Json(line) => {
            out.write_all(&line)?;
            out.write_all(b"\n")?;
        }
        Row::Cells(cells) => output::csv_row(out, &cells)?,
    }
    Ok(())
}
