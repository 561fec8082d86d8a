//! Calendar periods of reports and charts (SPEC 12): days, weeks starting
//! on Monday, months, quarters and years, counted in days (the zone has
//! already turned each event into its day).

use clap::ValueEnum;

use crate::time::Day;

/// How a report or chart cuts time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Period {
    /// Calendar days.
    Day,
    /// Weeks from Monday to Sunday.
    Week,
    /// Calendar months.
    Month,
    /// Quarters: January, April, July and October to the end of the
    /// third month.
    Quarter,
    /// Calendar years.
    Year,
}

impl Period {
    /// Its name in JSON and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Period::Day => "day",
            Period::Week => "week",
            Period::Month => "month",
            Period::Quarter => "quarter",
            Period::Year => "year",
        }
    }

    /// The first day of the period holding `day`.
    pub fn start_of(self, day: Day) -> Day {
        let (y, m, d) = day.civil();
        let first = |month: u8| Day::from_civil(y, month, 1).unwrap_or(day);
        match self {
            Period::Day => day,
            // 1970-01-01 was a Thursday: three days after a Monday.
            Period::Week => Day::from_days(day.number() - (day.number() + 3).rem_euclid(7)),
            Period::Month => Day::from_days(day.number() - i32::from(d) + 1),
            Period::Quarter => first((m - 1) / 3 * 3 + 1),
            Period::Year => first(1),
        }
    }

    /// The first day of the period after the one starting on `start`.
    pub fn next(self, start: Day) -> Day {
        let (y, m, _) = start.civil();
        let months_later = |n: u8| {
            let index = i32::from(m) - 1 + i32::from(n);
            let (year, month) = (y + index.div_euclid(12), index.rem_euclid(12) + 1);
            // `month` is 1..=12; the first of a month always exists.
            Day::from_civil(year, month as u8, 1).unwrap_or(start)
        };
        match self {
            Period::Day => start.next(),
            Period::Week => Day::from_days(start.number().saturating_add(7)),
            Period::Month => months_later(1),
            Period::Quarter => months_later(3),
            Period::Year => months_later(12),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(s: &str) -> Day {
        Day::parse(s).unwrap()
    }

    #[test]
    fn periods_start_on_mondays_and_firsts() {
        let wed = day("2026-10-14");
        assert_eq!(Period::Day.start_of(wed), wed);
        assert_eq!(Period::Week.start_of(wed), day("2026-10-12"));
        assert_eq!(Period::Week.start_of(day("2026-10-12")), day("2026-10-12"));
        assert_eq!(Period::Week.start_of(day("2026-10-18")), day("2026-10-12"));
        assert_eq!(Period::Month.start_of(wed), day("2026-10-01"));
        assert_eq!(Period::Quarter.start_of(wed), day("2026-10-01"));
        assert_eq!(
            Period::Quarter.start_of(day("2026-09-30")),
            day("2026-07-01")
        );
        assert_eq!(Period::Year.start_of(wed), day("2026-01-01"));
    }

    #[test]
    fn the_next_period_follows_without_gaps() {
        assert_eq!(Period::Month.next(day("2026-12-01")), day("2027-01-01"));
        assert_eq!(Period::Quarter.next(day("2026-10-01")), day("2027-01-01"));
        assert_eq!(Period::Year.next(day("2026-01-01")), day("2027-01-01"));
        assert_eq!(Period::Week.next(day("2026-12-28")), day("2027-01-04"));
        assert_eq!(Period::Day.next(day("2028-02-28")), day("2028-02-29"));
        for p in [Period::Week, Period::Month, Period::Quarter, Period::Year] {
            let mut start = p.start_of(day("2025-12-31"));
            for _ in 0..30 {
                let next = p.next(start);
                assert_eq!(p.start_of(next), next, "{p:?}");
                assert_eq!(
                    p.start_of(Day::from_days(next.number() - 1)),
                    start,
                    "{p:?}"
                );
                start = next;
            }
        }
    }
}
