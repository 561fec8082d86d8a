//! `report` as a table, JSON (SPEC 12) or CSV.

use std::io::{self, Write};

use serde::Serialize;

use crate::cli::Format;
use crate::output::csv_row;
use crate::report::{Line, Report};

#[derive(Serialize)]
struct ReportJson<'a> {
    tz: &'a str,
    by: Option<&'static str>,
    periods: Vec<PeriodJson<'a>>,
}

#[derive(Serialize)]
struct PeriodJson<'a> {
    start: String,
    end: String,
    accounts: Vec<LineJson<'a>>,
    totals: Vec<LineJson<'a>>,
}

#[derive(Serialize)]
struct LineJson<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    account: Option<&'a str>,
    currency: Option<&'a str>,
    decimals: u8,
    opening: String,
    #[serde(rename = "in")]
    inflow: String,
    #[serde(rename = "out")]
    outflow: String,
    closing: String,
    events: u64,
}

impl<'a> LineJson<'a> {
    fn of(line: &Line<'a>) -> LineJson<'a> {
        let d = line.unit.decimals;
        LineJson {
            account: line.account,
            currency: line.unit.currency.as_deref(),
            decimals: d,
            opening: line.opening.display(d).to_string(),
            inflow: line.inflow.display(d).to_string(),
            outflow: line.outflow.display(d).to_string(),
            closing: line.closing.display(d).to_string(),
            events: line.events,
        }
    }
}

/// The CSV columns (SPEC 12).
const CSV_HEADER: [&str; 10] = [
    "start", "end", "account", "currency", "decimals", "opening", "in", "out", "closing", "events",
];

/// Prints a report.
pub fn print(out: &mut impl Write, format: Format, report: &Report<'_>) -> io::Result<()> {
    match format {
        Format::Json => {
            let doc = ReportJson {
                tz: &report.tz,
                by: report.by.map(|b| b.name()),
                periods: report
                    .periods
                    .iter()
                    .map(|p| PeriodJson {
                        start: p.start.to_string(),
                        end: p.end.to_string(),
                        accounts: p.accounts.iter().map(LineJson::of).collect(),
                        totals: p.totals.iter().map(LineJson::of).collect(),
                    })
                    .collect(),
            };
            serde_json::to_writer(&mut *out, &doc)?;
            writeln!(out)
        }
        Format::Csv => {
            csv_row(out, &CSV_HEADER)?;
            for p in &report.periods {
                for line in &p.accounts {
                    let mut cells = vec![p.start.to_string(), p.end.to_string()];
                    cells.extend(cells_of(line));
                    csv_row(out, &cells)?;
                }
            }
            Ok(())
        }
        Format::Table => table(out, report),
    }
}

/// Account (or currency, on a total), currency, decimals, then the figures.
fn cells_of(line: &Line<'_>) -> Vec<String> {
    let d = line.unit.decimals;
    vec![
        line.account.unwrap_or_default().to_owned(),
        line.unit.currency.as_deref().unwrap_or_default().to_owned(),
        d.to_string(),
        line.opening.display(d).to_string(),
        line.inflow.display(d).to_string(),
        line.outflow.display(d).to_string(),
        line.closing.display(d).to_string(),
        line.events.to_string(),
    ]
}

/// One block per period, its columns aligned with every other block's, so
/// that a month reads down like a statement and across like a ledger.
fn table(out: &mut impl Write, report: &Report<'_>) -> io::Result<()> {
    if report.periods.is_empty() {
        return writeln!(out, "no accounts");
    }
    const HEADER: [&str; 7] = [
        "ACCOUNT", "CURRENCY", "OPENING", "IN", "OUT", "CLOSING", "EVENTS",
    ];
    let row = |line: &Line<'_>| -> Vec<String> {
        let mut cells = cells_of(line);
        cells.remove(2);
        if line.account.is_none() {
            cells[0] = "total".to_owned();
        }
        cells
    };
    // Per period, its account rows then its total rows.
    let blocks: Vec<Vec<Vec<String>>> = report
        .periods
        .iter()
        .map(|p| p.accounts.iter().chain(&p.totals).map(row).collect())
        .collect();
    let mut widths: Vec<usize> = HEADER.iter().map(|h| h.len()).collect();
    for cells in blocks.iter().flatten() {
        for (w, c) in widths.iter_mut().zip(cells) {
            *w = (*w).max(c.chars().count());
        }
    }
    let by = report
        .by
        .map_or(String::new(), |b| format!(", by {}", b.name()));
    for (i, (p, rows)) in report.periods.iter().zip(&blocks).enumerate() {
        if i > 0 {
            writeln!(out)?;
        }
        writeln!(out, "{} to {} ({}{by})", p.start, p.end, report.tz)?;
        let header: Vec<String> = HEADER.iter().map(|h| (*h).to_owned()).collect();
        line(out, &widths, &header)?;
        for cells in rows {
            line(out, &widths, cells)?;
        }
    }
    Ok(())
}

/// One aligned line: the two text columns to the left, figures to the right.
fn line(out: &mut impl Write, widths: &[usize], cells: &[String]) -> io::Result<()> {
    let mut text = String::new();
    for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
        if i > 0 {
            text.push_str("  ");
        }
        if i < 2 {
            text.push_str(&format!("{cell:<w$}"));
        } else {
            text.push_str(&format!("{cell:>w$}"));
        }
    }
    writeln!(out, "{}", text.trim_end())
}
