//! Instants as the journal writes them, and the time bounds users type.
//!
//! The journal's `at` is always `YYYY-MM-DDTHH:MM:SS.ffffffZ` (UTC,
//! microseconds). Reading that fixed form by hand is a few nanoseconds per
//! line, which matters for replay speed; anything a user types (offsets, dates)
//! goes through `jiff`.

use std::fmt;

const MICROS_PER_SECOND: i64 = 1_000_000;
const SECONDS_PER_DAY: i64 = 86_400;

/// An instant, in microseconds since 1970-01-01T00:00:00Z.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct At(i64);

/// Why a time bound typed by a user was not understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not a date (YYYY-MM-DD) or an RFC 3339 timestamp (2026-11-26T10:00:00Z)")]
pub struct TimeError(pub String);

impl At {
    /// The current time from the system clock, or from `LEDGER_TEST_CLOCK`
    /// when that is set (tests pin the clock with it).
    pub fn now() -> Result<At, TimeError> {
        match std::env::var("LEDGER_TEST_CLOCK") {
            Ok(text) => At::parse_instant(&text),
            Err(_) => Ok(At::from_timestamp(jiff::Timestamp::now())),
        }
    }

    fn from_timestamp(ts: jiff::Timestamp) -> At {
        At(ts.as_microsecond())
    }

    /// Reads the canonical journal form `YYYY-MM-DDTHH:MM:SS.ffffffZ` and
    /// nothing else, so that a valid `at` has exactly one spelling.
    pub fn parse_canonical(text: &str) -> Option<At> {
        At::parse_canonical_bytes(text.as_bytes())
    }

    /// [`At::parse_canonical`] on bytes.
    pub fn parse_canonical_bytes(b: &[u8]) -> Option<At> {
        /// Where the digits of `YYYY-MM-DDTHH:MM:SS.ffffffZ` are.
        const DIGITS: [usize; 20] = [
            0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18, 20, 21, 22, 23, 24, 25,
        ];
        let b: &[u8; 27] = b.try_into().ok()?;
        let punctuation = b[4] == b'-'
            && b[7] == b'-'
            && b[10] == b'T'
            && b[13] == b':'
            && b[16] == b':'
            && b[19] == b'.'
            && b[26] == b'Z';
        if !punctuation || DIGITS.iter().any(|&i| !b[i].is_ascii_digit()) {
            return None;
        }
        let num = |r: std::ops::Range<usize>| {
            b[r].iter().fold(0i64, |n, &c| n * 10 + i64::from(c - b'0'))
        };
        let (year, month, day) = (num(0..4), num(5..7), num(8..10));
        let (hour, minute, second, micros) = (num(11..13), num(14..16), num(17..19), num(20..26));
        if !(1..=12).contains(&month)
            || day < 1
            || day > days_in_month(year, month)
            || hour > 23
            || minute > 59
            || second > 59
        {
            return None;
        }
        let days = days_from_civil(year, month, day);
        let seconds = days * SECONDS_PER_DAY + hour * 3600 + minute * 60 + second;
        Some(At(seconds * MICROS_PER_SECOND + micros))
    }

    /// Reads a user's instant: an RFC 3339 timestamp with any offset.
    pub fn parse_instant(text: &str) -> Result<At, TimeError> {
        text.parse::<jiff::Timestamp>()
            .map(At::from_timestamp)
            .map_err(|_| TimeError(text.to_owned()))
    }

    /// Reads a user's time bound: a timestamp, or a UTC date `YYYY-MM-DD`
    /// standing for its first instant (`end_of_day == false`) or its last.
    pub fn parse_bound(text: &str, end_of_day: bool) -> Result<At, TimeError> {
        if let Ok(date) = text.parse::<jiff::civil::Date>()
            && text.len() == 10
        {
            let days = days_from_civil(
                i64::from(date.year()),
                i64::from(date.month()),
                i64::from(date.day()),
            );
            let start = days * SECONDS_PER_DAY * MICROS_PER_SECOND;
            return Ok(At(if end_of_day {
                start + SECONDS_PER_DAY * MICROS_PER_SECOND - 1
            } else {
                start
            }));
        }
        let ts = text
            .parse::<jiff::Timestamp>()
            .map_err(|_| TimeError(text.to_owned()))?;
        // Instants are kept in microseconds. A lower bound between two of
        // them rounds up, so that it never takes in an earlier event; an
        // upper bound rounds down.
        let partial = ts.subsec_nanosecond().rem_euclid(1000) != 0;
        let micros = ts.as_microsecond() + i64::from(!end_of_day && partial);
        Ok(At(micros))
    }
}

impl At {
    /// The instant one microsecond earlier: the last instant before `self`.
    pub fn pred(self) -> At {
        At(self.0.saturating_sub(1))
    }

    /// The canonical journal form, without allocating (it runs per line).
    pub fn canonical(self) -> [u8; 27] {
        let micros = self.0.rem_euclid(MICROS_PER_SECOND);
        let seconds = self.0.div_euclid(MICROS_PER_SECOND);
        let days = seconds.div_euclid(SECONDS_PER_DAY);
        let sod = seconds.rem_euclid(SECONDS_PER_DAY);
        let mut out = *b"0000-00-00T00:00:00.000000Z";
        put_date(&mut out, days);
        let mut put = |range, n| put_digits(&mut out, range, n);
        put(11..13, sod / 3600);
        put(14..16, sod % 3600 / 60);
        put(17..19, sod % 60);
        put(20..26, micros);
        out
    }
}

impl fmt::Display for At {
    /// The canonical journal form.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(std::str::from_utf8(&self.canonical()).unwrap_or_default())
    }
}

/// A calendar day, in days since 1970-01-01: an event's book date, or the
/// day of its `at` in a time zone (SPEC 9).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Day(i32);

impl Day {
    /// Reads exactly `YYYY-MM-DD` (years 0001-9999), the one spelling the
    /// journal and the command line use.
    pub fn parse(text: &str) -> Option<Day> {
        Day::parse_bytes(text.as_bytes())
    }

    /// [`Day::parse`] on bytes.
    pub fn parse_bytes(b: &[u8]) -> Option<Day> {
        let b: &[u8; 10] = b.try_into().ok()?;
        if b[4] != b'-' || b[7] != b'-' {
            return None;
        }
        let num = |r: std::ops::Range<usize>| {
            b[r].iter().try_fold(0i64, |n, &c| {
                c.is_ascii_digit().then(|| n * 10 + i64::from(c - b'0'))
            })
        };
        let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
        if year < 1 || !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
            return None;
        }
        i32::try_from(days_from_civil(year, month, day))
            .ok()
            .map(Day)
    }

    /// The `YYYY-MM-DD` form.
    pub fn text(self) -> [u8; 10] {
        let mut out = *b"0000-00-00";
        put_date(&mut out, i64::from(self.0));
        out
    }

    /// The UTC day of an instant.
    pub fn utc_of(at: At) -> Day {
        Day(i32::try_from(at.0.div_euclid(SECONDS_PER_DAY * MICROS_PER_SECOND)).unwrap_or(i32::MAX))
    }

    /// The next day.
    pub fn next(self) -> Day {
        Day(self.0.saturating_add(1))
    }

    /// Year, month (1-12) and day of month.
    pub fn civil(self) -> (i32, u8, u8) {
        let (y, m, d) = civil_from_days(i64::from(self.0));
        (y as i32, m as u8, d as u8)
    }

    /// The day of a civil date; `None` if it does not exist.
    pub fn from_civil(year: i32, month: u8, day: u8) -> Option<Day> {
        let (y, m, d) = (i64::from(year), i64::from(month), i64::from(day));
        ((1..=12).contains(&m) && d >= 1 && d <= days_in_month(y, m))
            .then(|| i32::try_from(days_from_civil(y, m, d)).ok().map(Day))
            .flatten()
    }

    /// Days since 1970-01-01.
    pub fn number(self) -> i32 {
        self.0
    }

    /// The day this many days after 1970-01-01.
    pub fn from_days(days: i32) -> Day {
        Day(days)
    }
}

impl fmt::Display for Day {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(std::str::from_utf8(&self.text()).unwrap_or_default())
    }
}

/// The time zone in which users' dates are read, undated events' days are
/// counted and tables show times (SPEC 9: `--tz`, else `TZ`, else the
/// system's zone, else UTC).
#[derive(Debug, Clone)]
pub struct Zone {
    tz: jiff::tz::TimeZone,
    name: String,
}

impl Zone {
    /// UTC.
    pub fn utc() -> Zone {
        Zone {
            tz: jiff::tz::TimeZone::UTC,
            name: "UTC".to_owned(),
        }
    }

    /// The zone of that IANA name (or `UTC`); `None` if there is none.
    pub fn named(name: &str) -> Option<Zone> {
        let tz = jiff::tz::TimeZone::get(name).ok()?;
        Some(Zone {
            tz,
            name: name.to_owned(),
        })
    }

    /// The zone `date` would use: `TZ`, else the system's, else UTC. The
    /// warning, if any, says why a `TZ` that names no zone was set aside.
    pub fn from_environment() -> (Zone, Option<String>) {
        let tz_var = std::env::var("TZ").ok().filter(|v| !v.is_empty());
        match jiff::tz::TimeZone::try_system() {
            Ok(tz) => {
                let name = tz
                    .iana_name()
                    .map(str::to_owned)
                    .or_else(|| tz_var.clone())
                    .unwrap_or_else(|| "UTC".to_owned());
                (Zone { tz, name }, None)
            }
            Err(_) => {
                let warning =
                    tz_var.map(|v| format!("warning: TZ={v} names no time zone; using UTC"));
                (Zone::utc(), warning)
            }
        }
    }

    /// Its name, as shown in reports.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The calendar day an instant falls on in this zone.
    pub fn day_of(&self, at: At) -> Day {
        let offset = jiff::Timestamp::from_microsecond(at.0)
            .map(|ts| self.tz.to_offset(ts).seconds())
            .unwrap_or(0);
        Day::utc_of(At(at
            .0
            .saturating_add(i64::from(offset) * MICROS_PER_SECOND)))
    }

    /// The first instant of a day in this zone (after a gap, if the day
    /// starts in one).
    pub fn start_of(&self, day: Day) -> At {
        let (y, m, d) = day.civil();
        jiff::civil::Date::new(y as i16, m as i8, d as i8)
            .ok()
            .and_then(|date| date.to_zoned_datetime(self.tz.clone()).ok())
            .map_or_else(
                || At(i64::from(day.0) * SECONDS_PER_DAY * MICROS_PER_SECOND),
                |z| At::from_timestamp(z.timestamp()),
            )
    }

    /// `at` in this zone to the second, for tables: `2026-11-26 10:00:00`.
    pub fn show(&self, at: At) -> String {
        jiff::Timestamp::from_microsecond(at.0).map_or_else(
            |_| at.to_string(),
            |ts| {
                ts.to_zoned_datetime(self.tz.clone())
                    .strftime("%Y-%m-%d %H:%M:%S")
                    .to_string()
            },
        )
    }
}

/// Writes `n`'s last decimal digits into `out[range]`, zero-padded.
fn put_digits(out: &mut [u8], range: std::ops::Range<usize>, mut n: i64) {
    for i in range.rev() {
        out[i] = b'0' + (n.rem_euclid(10)) as u8;
        n /= 10;
    }
}

/// Writes `YYYY-MM-DD` of the day `days` after 1970-01-01 into `out[..10]`.
fn put_date(out: &mut [u8], days: i64) {
    let (y, m, d) = civil_from_days(days);
    put_digits(out, 0..4, y);
    put_digits(out, 5..7, m);
    put_digits(out, 8..10, d);
}

fn is_leap(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The inverse of [`days_from_civil`].
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (
        if m <= 2 {
            yoe + era * 400 + 1
        } else {
            yoe + era * 400
        },
        m,
        d,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn canonical_form_round_trips() {
        let text = "2026-11-26T03:24:00.123456Z";
        let at = At::parse_canonical(text).unwrap();
        assert_eq!(at.to_string(), text);
        assert_eq!(At::parse_instant(text), Ok(at));
    }

    #[test]
    fn canonical_form_is_strict() {
        for bad in [
            "2026-11-26T03:24:00Z",
            "2026-11-26T03:24:00.123456+00:00",
            "2026-02-30T03:24:00.000000Z",
            "2026-13-01T03:24:00.000000Z",
            "2026-11-26T24:00:00.000000Z",
            "2026-11-26 03:24:00.000000Z",
            "2026-11-26T03:24:00.12345६Z",
        ] {
            assert_eq!(At::parse_canonical(bad), None, "{bad}");
        }
        assert!(At::parse_canonical("2024-02-29T00:00:00.000000Z").is_some());
    }

    #[test]
    fn dates_bound_whole_days() {
        let start = At::parse_bound("2026-11-26", false).unwrap();
        let end = At::parse_bound("2026-11-26", true).unwrap();
        assert_eq!(start.to_string(), "2026-11-26T00:00:00.000000Z");
        assert_eq!(end.to_string(), "2026-11-26T23:59:59.999999Z");
    }

    #[test]
    fn sub_microsecond_bounds_never_widen_the_range() {
        let since = At::parse_bound("2026-11-26T10:00:00.5000001Z", false).unwrap();
        let until = At::parse_bound("2026-11-26T10:00:00.5000001Z", true).unwrap();
        assert_eq!(since.to_string(), "2026-11-26T10:00:00.500001Z");
        assert_eq!(until.to_string(), "2026-11-26T10:00:00.500000Z");
    }

    #[test]
    fn offsets_are_converted_to_utc() {
        let at = At::parse_bound("2026-11-26T10:00:00+02:00", true).unwrap();
        assert_eq!(at.to_string(), "2026-11-26T08:00:00.000000Z");
        assert!(At::parse_bound("yesterday", true).is_err());
        assert!(At::parse_bound("2026-11-26T10:00:00", true).is_err());
    }

    fn day(text: &str) -> Day {
        Day::parse(text).unwrap()
    }

    #[test]
    fn days_parse_strictly_and_print_back() {
        assert_eq!(day("2026-11-26").to_string(), "2026-11-26");
        assert_eq!(day("2024-02-29").next().to_string(), "2024-03-01");
        for bad in [
            "2026-02-29",
            "2026-13-01",
            "2026-1-01",
            "26-11-2026",
            "0000-01-01",
            "2026-11-26 ",
            "2026/11/26",
        ] {
            assert_eq!(Day::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn an_event_day_depends_on_the_zone() {
        let at = At::parse_canonical("2026-11-26T23:30:00.000000Z").unwrap();
        let paris = Zone::named("Europe/Paris").unwrap();
        let la = Zone::named("America/Los_Angeles").unwrap();
        assert_eq!(Zone::utc().day_of(at), day("2026-11-26"));
        assert_eq!(paris.day_of(at), day("2026-11-27"));
        assert_eq!(la.day_of(at), day("2026-11-26"));
        // Paris leaves summer time at 01:00Z on 2026-10-25: 23:30Z the
        // evening before is already the 25th there (UTC+2).
        let before = At::parse_canonical("2026-10-24T22:30:00.000000Z").unwrap();
        assert_eq!(paris.day_of(before), day("2026-10-25"));
        assert_eq!(
            paris.start_of(day("2026-10-25")).to_string(),
            "2026-10-24T22:00:00.000000Z"
        );
        assert_eq!(
            paris.start_of(day("2026-10-26")).to_string(),
            "2026-10-25T23:00:00.000000Z"
        );
        assert_eq!(la.show(at), "2026-11-26 15:30:00");
        let late = At::parse_canonical("2026-11-26T10:00:59.999999Z").unwrap();
        assert_eq!(Zone::utc().show(late), "2026-11-26 10:00:59");
        assert!(Zone::named("Mars/Olympus").is_none());
    }

    proptest! {
        #[test]
        fn days_agree_with_jiff(days in -719_162i32..2_932_896) {
            let d = Day::from_days(days);
            let theirs = jiff::civil::date(1970, 1, 1)
                .checked_add(jiff::Span::new().days(i64::from(days)))
                .unwrap();
            prop_assert_eq!(d.to_string(), theirs.to_string());
            prop_assert_eq!(Day::parse(&d.to_string()), Some(d));
        }

        #[test]
        fn display_agrees_with_jiff(micros in 0i64..253_402_300_799_999_999) {
            let ours = At(micros).to_string();
            let theirs = jiff::Timestamp::from_microsecond(micros).unwrap();
            prop_assert_eq!(&ours, &format!("{theirs:.6}"));
            prop_assert_eq!(At::parse_canonical(&ours), Some(At(micros)));
        }
    }
}
