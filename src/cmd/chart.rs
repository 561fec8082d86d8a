//! `ledger chart`: each selected account's closing balance per period, as
//! lines on an SVG or PNG (SPEC 12), drawn with `plotters`.

use std::io::Write;
use std::path::PathBuf;

use clap::Args;
use plotters::prelude::*;

use crate::cli::{self, Bound};
use crate::cmd::Context;
use crate::cmd::report::with_report;
use crate::domain::Unit;
use crate::error::Error;
use crate::period::Period;
use crate::report::{Report, Spec};
use crate::time::Day;

/// The most lines one chart shows: more cannot be told apart.
const MAX_LINES: usize = 12;

/// The picture's size in pixels (SVG and PNG alike).
pub const SIZE: (u32, u32) = (960, 540);

/// The one font, built into the binary, so that a PNG comes out the same
/// on a machine with no fonts installed.
const FONT: &str = "sans-serif";

/// `chart`.
#[derive(Debug, Clone, Args)]
pub struct ChartArgs {
    /// Accounts, or patterns such as 'cust:*' (one line each, at most 12).
    #[arg(value_name = "ACCOUNT", required = true, value_parser = cli::account_or_pattern)]
    pub accounts: Vec<String>,
    /// The file to write: SVG, or PNG when its name ends in .png.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// One point per calendar period of the --tz zone.
    #[arg(long, value_enum, value_name = "PERIOD", default_value_t = Period::Day)]
    pub by: Period,
    /// Start of the range: a date or a timestamp [default: the earliest day
    /// of the accounts' events].
    #[arg(long, value_name = "T", value_parser = cli::since)]
    pub since: Option<Bound>,
    /// End of the range: a date or a timestamp [default: today].
    #[arg(long, value_name = "T", value_parser = cli::until)]
    pub until: Option<Bound>,
}

/// Writes the chart and says where.
pub fn run(ctx: &Context, args: &ChartArgs) -> Result<(), Error> {
    let png = match args.out.extension().and_then(|e| e.to_str()) {
        Some(e) if e.eq_ignore_ascii_case("png") => true,
        Some(e) if e.eq_ignore_ascii_case("svg") => false,
        _ => {
            return Err(Error::Usage(format!(
                "--out {}: the chart's file name must end in .svg or .png",
                args.out.display()
            )));
        }
    };
    if crate::journal::same_file(&args.out, &ctx.path) {
        return Err(Error::Usage(format!(
            "--out {} is the journal: the chart needs a file of its own",
            args.out.display()
        )));
    }
    let spec = Spec {
        by: Some(args.by),
        since: args.since,
        until: args.until,
        tags: Vec::new(),
    };
    with_report(ctx, &spec, &args.accounts, |report| {
        let unit = one_unit(report, &args.accounts)?;
        let chart = |e: String| Error::Chart {
            path: args.out.clone(),
            reason: e,
        };
        if png {
            let area = BitMapBackend::new(&args.out, SIZE).into_drawing_area();
            draw(area, report, unit).map_err(chart)?;
        } else {
            let mut svg = String::new();
            draw(
                SVGBackend::with_string(&mut svg, SIZE).into_drawing_area(),
                report,
                unit,
            )
            .map_err(chart)?;
            std::fs::write(&args.out, svg).map_err(|e| chart(e.to_string()))?;
        }
        let lines = report.periods.first().map_or(0, |p| p.accounts.len());
        let mut out = std::io::stdout().lock();
        writeln!(
            out,
            "wrote {}: {lines} line(s) of {} point(s)",
            args.out.display(),
            report.periods.len()
        )?;
        Ok(out.flush()?)
    })
}

/// The one currency and decimals of the chart's lines; refuses more lines
/// than can be told apart, or amounts that cannot share an axis.
fn one_unit<'s>(report: &Report<'s>, args: &[String]) -> Result<Option<&'s Unit>, Error> {
    let lines = report.periods.first().map_or(&[][..], |p| &p.accounts[..]);
    if lines.len() > MAX_LINES {
        return Err(Error::Usage(format!(
            "{} selects {} accounts; a chart shows at most {MAX_LINES} lines: give a narrower pattern or fewer accounts",
            args.join(" "),
            lines.len()
        )));
    }
    let unit = lines.first().map(|l| l.unit);
    if let Some(first) = lines.first()
        && let Some(other) = lines.iter().find(|l| {
            l.unit.currency != first.unit.currency || l.unit.decimals != first.unit.decimals
        })
    {
        return Err(Error::Usage(format!(
            "{} ({}) and {} ({}) cannot share a chart: its accounts must have one currency and decimals",
            first.account.unwrap_or_default(),
            crate::domain::unit_name(first.unit),
            other.account.unwrap_or_default(),
            crate::domain::unit_name(other.unit),
        )));
    }
    Ok(unit)
}

/// Draws the chart on `area` and finishes it (for a PNG: writes it).
fn draw<DB: DrawingBackend>(
    area: DrawingArea<DB, plotters::coord::Shift>,
    report: &Report<'_>,
    unit: Option<&Unit>,
) -> Result<(), String> {
    // Registering the same font again is harmless; it cannot fail on the
    // font built in, but if it did, the error says so.
    plotters::style::register_font(FONT, FontStyle::Normal, dejavu::sans::regular())
        .map_err(|_| "the built-in font cannot be read".to_owned())?;
    let text = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    area.fill(&WHITE).map_err(text)?;
    let decimals = unit.map_or(0, |u| u.decimals);
    // Floating point for drawing only: a coordinate on the picture. The
    // figures themselves stay exact in `report` and its JSON and CSV.
    let y = |a: crate::money::Amount| a.0 as f64 / 10f64.powi(i32::from(decimals));
    let points: Vec<Vec<(i32, f64)>> = series(report, y);
    let (x0, x1) = x_range(report);
    let (y0, y1) = y_range(&points);
    let title = title(report);
    let mut chart = ChartBuilder::on(&area)
        .caption(title, (FONT, 22))
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(80)
        .build_cartesian_2d(x0..x1, y0..y1)
        .map_err(text)?;
    let currency = unit.map_or("", |u| u.currency.as_deref().unwrap_or("units"));
    chart
        .configure_mesh()
        .x_labels(6)
        .x_label_formatter(&|d| Day::from_days(*d).to_string())
        .y_label_formatter(&|v| format!("{v:.*}", usize::from(decimals)))
        .y_desc(currency)
        .label_style((FONT, 14))
        .draw()
        .map_err(text)?;
    let names = report.periods.first().map_or(Vec::new(), |p| {
        p.accounts
            .iter()
            .map(|l| l.account.unwrap_or_default())
            .collect()
    });
    for (i, (name, line)) in names.iter().zip(&points).enumerate() {
        let color = Palette99::pick(i).to_rgba();
        chart
            .draw_series(LineSeries::new(line.iter().copied(), color.stroke_width(2)))
            .map_err(text)?
            .label(*name)
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 14, y + 5)], color.filled()));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .label_font((FONT, 14))
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
        .map_err(text)?;
    area.present().map_err(text)
}

/// Per account, per period: the period's last day and the closing balance.
fn series(report: &Report<'_>, y: impl Fn(crate::money::Amount) -> f64) -> Vec<Vec<(i32, f64)>> {
    let accounts = report.periods.first().map_or(0, |p| p.accounts.len());
    (0..accounts)
        .map(|i| {
            report
                .periods
                .iter()
                .filter_map(|p| p.accounts.get(i).map(|l| (p.end.number(), y(l.closing))))
                .collect()
        })
        .collect()
}

fn x_range(report: &Report<'_>) -> (i32, i32) {
    let first = report.periods.first().map_or(0, |p| p.end.number());
    let last = report.periods.last().map_or(0, |p| p.end.number());
    // One period is a point: give it room on both sides.
    if first == last {
        (first - 1, last + 1)
    } else {
        (first, last)
    }
}

fn y_range(points: &[Vec<(i32, f64)>]) -> (f64, f64) {
    let ys = points.iter().flatten().map(|(_, y)| *y);
    let lo = ys.clone().fold(0f64, f64::min);
    let hi = ys.fold(0f64, f64::max);
    let pad = ((hi - lo) * 0.05).max(1.0);
    (if lo < 0.0 { lo - pad } else { 0.0 }, hi + pad)
}

fn title(report: &Report<'_>) -> String {
    let by = report.by.map_or("period", Period::name);
    match (report.periods.first(), report.periods.last()) {
        (Some(first), Some(last)) => format!(
            "Closing balance by {by}, {} to {} ({})",
            first.start, last.end, report.tz
        ),
        _ => "Closing balance: no accounts".to_owned(),
    }
}
