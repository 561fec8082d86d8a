//! Period reports (SPEC 12), in one pass over the journal: per account, a
//! running sum of what came before the range and, per period it has
//! events in, what came in and went out. Memory grows with accounts ×
//! active periods, never with events. All money goes through
//! [`Change::effects`](crate::event::Change::effects), so an event type
//! that moves money needs nothing here.

use rustc_hash::FxHashMap;

use crate::cli::{Bound, TagFilter};
use crate::domain::{Rejection, State, Unit};
use crate::error::Error;
use crate::event::Event;
use crate::money::Amount;
use crate::pattern;
use crate::period::Period;
use crate::time::{At, Day, Zone};

/// What to report on, besides the accounts.
#[derive(Debug, Clone)]
pub struct Spec {
    /// The periods; one period for the whole range when `None`.
    pub by: Option<Period>,
    /// Events before it count only towards the opening balance.
    pub since: Option<Bound>,
    /// Events after it do not count.
    pub until: Option<Bound>,
    /// Only events with these tags count, in every figure.
    pub tags: Vec<TagFilter>,
}

/// Money in and out of one account in one period, and its events.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Flow {
    inflow: Amount,
    outflow: Amount,
    events: u64,
}

/// What one account's events added up to.
#[derive(Debug, Default)]
struct Tally {
    /// The net effect of the counted events before the range.
    before: Amount,
    /// The earliest day of any of its events (counted or not): the range
    /// starts with it when `--since` does not say.
    first_day: Option<Day>,
    /// Per period, keyed by the period's first day, in order of first use.
    flows: Vec<(Day, Flow)>,
    /// Where each period's flow is in `flows`.
    at: FxHashMap<Day, usize>,
    /// The index in `flows` used last: an account's events mostly come
    /// period by period.
    last: usize,
}

impl Tally {
    /// The flow of the period starting on `key`.
    fn flow(&mut self, key: Day) -> &mut Flow {
        let i = match self.flows.get(self.last) {
            Some((k, _)) if *k == key => self.last,
            _ => match self.at.get(&key) {
                Some(&i) => i,
                None => {
                    self.flows.push((key, Flow::default()));
                    self.at.insert(key, self.flows.len() - 1);
                    self.flows.len() - 1
                }
            },
        };
        self.last = i;
        &mut self.flows[i].1
    }
}

/// One line of a report: an account, or the total of a currency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line<'s> {
    /// The account; `None` on a total.
    pub account: Option<&'s str>,
    /// Its currency and decimals.
    pub unit: &'s Unit,
    /// The balance when the period starts.
    pub opening: Amount,
    /// Money in during the period.
    pub inflow: Amount,
    /// Money out during the period (positive).
    pub outflow: Amount,
    /// The balance when it ends: opening + in − out.
    pub closing: Amount,
    /// How many events it had in the period.
    pub events: u64,
}

/// One period of a report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeriodReport<'s> {
    /// Its first day (cut at `--since`).
    pub start: Day,
    /// Its last day (cut at `--until`).
    pub end: Day,
    /// One line per selected account, by name.
    pub accounts: Vec<Line<'s>>,
    /// One line per currency and decimals, in order of first appearance.
    pub totals: Vec<Line<'s>>,
}

/// What `report` shows, and `chart` draws.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report<'s> {
    /// The zone periods are counted in.
    pub tz: String,
    /// How time is cut.
    pub by: Option<Period>,
    /// Every period of the range, empty ones too.
    pub periods: Vec<PeriodReport<'s>>,
}

/// Adds up events, one at a time, into a [`Report`].
pub struct Builder<'a> {
    zone: &'a Zone,
    spec: &'a Spec,
    since_day: Option<Day>,
    until_day: Option<Day>,
    index: FxHashMap<Box<str>, usize>,
    tallies: Vec<Tally>,
    /// The periods of the last events (each one's first day, and the first
    /// day of the next), the latest first: events mostly come period by
    /// period, or alternate between two (recorded on one day, booked on
    /// days of another).
    last: [Option<(Day, Day)>; 2],
    /// The instants the last day of an `at` spans in the zone, and that
    /// day: most events fall on the day of the one before, and asking the
    /// zone for each costs more than the rest of the report.
    day_span: Option<(At, At, Day)>,
}

/// The day of a bound: itself, or the day of its instant.
fn day_of(bound: Bound, zone: &Zone) -> Day {
    match bound {
        Bound::Day(d) => d,
        Bound::At(t) => zone.day_of(t),
    }
}

impl<'a> Builder<'a> {
    /// A builder for `spec`; refuses a range that ends before it starts.
    pub fn new(zone: &'a Zone, spec: &'a Spec) -> Result<Builder<'a>, Error> {
        let since_day = spec.since.map(|b| day_of(b, zone));
        let until_day = spec.until.map(|b| day_of(b, zone));
        if let (Some(s), Some(u)) = (since_day, until_day)
            && s > u
        {
            return Err(Error::Usage(format!(
                "--since {s} is after --until {u}: the range is empty"
            )));
        }
        Ok(Builder {
            zone,
            spec,
            since_day,
            until_day,
            index: FxHashMap::default(),
            tallies: Vec::new(),
            last: [None, None],
            day_span: None,
        })
    }

    fn tally(&mut self, name: &str) -> usize {
        if let Some(&i) = self.index.get(name) {
            return i;
        }
        self.tallies.push(Tally::default());
        self.index.insert(name.into(), self.tallies.len() - 1);
        self.tallies.len() - 1
    }

    /// The key of the period `day` counts in: the first day of its period,
    /// the day held within the range (an event selected by a timestamp
    /// bound may carry a book date outside it).
    fn key(&mut self, day: Day) -> Day {
        let Some(by) = self.spec.by else {
            return Day::from_days(0);
        };
        let held = self
            .until_day
            .map_or(day, |u| day.min(u))
            .max(self.since_day.unwrap_or(day));
        let within = |period: Option<(Day, Day)>| {
            period.is_some_and(|(key, next)| key <= held && held < next)
        };
        if within(self.last[0]) || within(self.last[1]) {
            if within(self.last[1]) {
                self.last.swap(0, 1);
            }
            if let Some((key, _)) = self.last[0] {
                return key;
            }
        }
        let key = by.start_of(held);
        self.last = [Some((key, by.next(key))), self.last[0]];
        key
    }

    /// The day of `at` in the zone (an event's day when it has no date).
    fn day_of(&mut self, at: At) -> Day {
        if let Some((from, to, day)) = self.day_span
            && from <= at
            && at < to
        {
            return day;
        }
        let day = self.zone.day_of(at);
        self.day_span = Some((self.zone.start_of(day), self.zone.start_of(day.next()), day));
        day
    }

    /// Counts one event.
    pub fn add(&mut self, event: &Event<'_>) -> Result<(), Rejection> {
        let day = match event.date {
            Some(date) => date,
            None => self.day_of(event.at),
        };
        let touched = event.change.accounts();
        let mut ids = [None, None];
        for (id, name) in ids.iter_mut().zip(touched) {
            if let Some(name) = name {
                let i = self.tally(name);
                let first = &mut self.tallies[i].first_day;
                *first = Some(first.map_or(day, |f| f.min(day)));
                *id = Some(i);
            }
        }
        let (zone, spec) = (self.zone, self.spec);
        if !spec.tags.iter().all(|t| t.matches(event))
            || spec.until.is_some_and(|b| !b.admits_to(event, zone))
        {
            return Ok(());
        }
        let before = spec.since.is_some_and(|b| !b.admits_from(event, zone));
        let key = self.key(day);
        if !before {
            for i in ids.iter().flatten() {
                let flow = self.tallies[*i].flow(key);
                flow.events = flow.events.saturating_add(1);
            }
        }
        // An event's amount has its accounts' decimals.
        let decimals = event
            .change
            .amount()
            .map_or(0, crate::money::Decimal::scale);
        // Effects come in the order of the accounts touched.
        for (effect, id) in event.change.effects().into_iter().zip(ids) {
            let (Some((name, delta)), Some(i)) = (effect, id) else {
                continue;
            };
            let tally = &mut self.tallies[i];
            if before {
                tally.before = sum(tally.before, delta, (name, "balance", decimals))?;
                continue;
            }
            let flow = tally.flow(key);
            if delta.0 >= 0 {
                flow.inflow = sum(flow.inflow, delta, (name, "money in", decimals))?;
            } else {
                let out = Amount(delta.0.saturating_neg());
                flow.outflow = sum(flow.outflow, out, (name, "money out", decimals))?;
            }
        }
        Ok(())
    }

    /// The report of the accounts `args` select (SPEC 1 patterns), with
    /// `today` ending a range that `--until` does not.
    pub fn finish<'s>(
        self,
        state: &'s State,
        args: &[String],
        today: Day,
    ) -> Result<Report<'s>, Error> {
        let end = self.until_day.unwrap_or(today);
        // Accounts picked by a pattern (or by naming none) that did not
        // exist yet when the range ended are left out; a named one stays.
        let first_day = |name: &str| {
            self.index
                .get(name)
                .and_then(|&i| self.tallies[i].first_day)
        };
        let selected: Vec<&str> = pattern::select(state, args)?
            .into_iter()
            .filter(|n| args.iter().any(|a| a == n) || first_day(n).is_some_and(|d| d <= end))
            .collect();
        let earliest = selected.iter().filter_map(|n| first_day(n)).min();
        let Some(start) = self
            .since_day
            .or(earliest)
            .or(Some(end).filter(|_| !selected.is_empty()))
        else {
            return Ok(Report {
                tz: self.zone.name().to_owned(),
                by: self.spec.by,
                periods: Vec::new(),
            });
        };
        let end = end.max(start);
        let (keys, bounds) = self.periods(start, end);
        let mut periods: Vec<PeriodReport<'s>> = bounds
            .into_iter()
            .map(|(start, end)| PeriodReport {
                start,
                end,
                accounts: Vec::with_capacity(selected.len()),
                totals: Vec::new(),
            })
            .collect();
        for name in selected {
            let Some(account) = state.account(name) else {
                continue;
            };
            let tally = self.index.get(name).map(|&i| &self.tallies[i]);
            self.fill(&mut periods, &keys, name, state.unit_of(account), tally)?;
        }
        for period in &mut periods {
            period.totals = totals(&period.accounts)?;
        }
        Ok(Report {
            tz: self.zone.name().to_owned(),
            by: self.spec.by,
            periods,
        })
    }

    /// The keys of the periods from `start` to `end`, and each one's first
    /// and last day, cut at `--since` and `--until`.
    fn periods(&self, start: Day, end: Day) -> (Vec<Day>, Vec<(Day, Day)>) {
        let Some(by) = self.spec.by else {
            return (vec![Day::from_days(0)], vec![(start, end)]);
        };
        let mut keys = Vec::new();
        let mut bounds = Vec::new();
        let mut key = by.start_of(start);
        while key <= end {
            let next = by.next(key);
            let last = Day::from_days(next.number() - 1);
            let first = if self.since_day.is_some() {
                key.max(start)
            } else {
                key
            };
            let last = if self.until_day.is_some() {
                last.min(end)
            } else {
                last
            };
            keys.push(key);
            bounds.push((first, last));
            if next <= key {
                break;
            }
            key = next;
        }
        (keys, bounds)
    }

    /// Adds one account's line to every period.
    fn fill<'s>(
        &self,
        periods: &mut [PeriodReport<'s>],
        keys: &[Day],
        name: &'s str,
        unit: &'s Unit,
        tally: Option<&Tally>,
    ) -> Result<(), Rejection> {
        let mut flows = vec![Flow::default(); keys.len()];
        let mut balance = tally.map_or(Amount::ZERO, |t| t.before);
        for (key, flow) in tally.into_iter().flat_map(|t| &t.flows) {
            // Events past the last period (dated after today) count in it.
            let i = keys.partition_point(|k| k <= key).saturating_sub(1);
            let into = &mut flows[i];
            into.inflow = sum(into.inflow, flow.inflow, (name, "money in", unit.decimals))?;
            into.outflow = sum(
                into.outflow,
                flow.outflow,
                (name, "money out", unit.decimals),
            )?;
            into.events = into.events.saturating_add(flow.events);
        }
        for (period, flow) in periods.iter_mut().zip(flows) {
            let opening = balance;
            balance = sum(opening, flow.inflow, (name, "balance", unit.decimals))?
                .checked_sub(flow.outflow)
                .ok_or_else(|| overflow((name, "balance", unit.decimals), flow.outflow))?;
            period.accounts.push(Line {
                account: Some(name),
                unit,
                opening,
                inflow: flow.inflow,
                outflow: flow.outflow,
                closing: balance,
                events: flow.events,
            });
        }
        Ok(())
    }
}

/// The lines of each currency and decimals added up, in order of first
/// appearance (a transfer between two listed accounts counts in both).
fn totals<'s>(lines: &[Line<'s>]) -> Result<Vec<Line<'s>>, Rejection> {
    let mut totals: Vec<Line<'s>> = Vec::new();
    for line in lines {
        let what = line.unit.currency.as_deref().unwrap_or("plain unit");
        match totals.iter_mut().find(|t| std::ptr::eq(t.unit, line.unit)) {
            Some(t) => {
                t.opening = sum(t.opening, line.opening, (what, "total", line.unit.decimals))?;
                t.inflow = sum(t.inflow, line.inflow, (what, "total", line.unit.decimals))?;
                t.outflow = sum(t.outflow, line.outflow, (what, "total", line.unit.decimals))?;
                t.closing = sum(t.closing, line.closing, (what, "total", line.unit.decimals))?;
                t.events = t.events.saturating_add(line.events);
            }
            None => totals.push(Line {
                account: None,
                ..line.clone()
            }),
        }
    }
    Ok(totals)
}

/// `a + b`, or the overflow of `what` of `name` (amounts of `decimals`).
fn sum(
    a: Amount,
    b: Amount,
    (name, what, decimals): (&str, &str, u8),
) -> Result<Amount, Rejection> {
    a.checked_add(b)
        .ok_or_else(|| overflow((name, what, decimals), b))
}

fn overflow((name, what, decimals): (&str, &str, u8), amount: Amount) -> Rejection {
    Rejection::Overflow {
        what: format!("{what} of {name} in the report"),
        amount: amount.display(decimals).to_string(),
    }
}
