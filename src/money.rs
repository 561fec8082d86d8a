//! Exact money: integer minor units, strict parsing, canonical formatting.
//!
//! Nothing here ever touches floating point. An amount typed by a user is first
//! read as a [`Decimal`] (its digits and how many of them follow the point);
//! only once the account is known is it scaled to that account's decimals,
//! which is where "more decimals than the account has" is caught.

use std::fmt;

/// The most decimals an account may have.
pub const MAX_DECIMALS: u8 = 18;

/// Why a piece of text is not an acceptable amount.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    /// Not of the form `digits[.digits]`.
    #[error("'{0}' is not an amount: {hint}", hint = malformed_hint(.0))]
    Malformed(String),
    /// Zero is not a movement of money.
    #[error("the amount must be greater than zero, got '{0}'")]
    NotPositive(String),
    /// Too many digits to represent exactly.
    #[error("the amount '{0}' is too large")]
    TooLarge(String),
    /// More digits after the point than the account keeps.
    #[error("the amount '{text}' has more than {decimals} decimals")]
    TooManyDecimals {
        /// The text as given.
        text: String,
        /// The account's decimals.
        decimals: u8,
    },
    /// Written in another currency than the account's.
    #[error("'{text}' is not in {holds}, the account's currency")]
    OtherCurrency {
        /// The amount's text, which names other currencies.
        text: String,
        /// The account's.
        holds: String,
    },
}

/// What to write instead of `text`, which is not an amount: the amount it
/// most likely means, when one of the usual habits (a sign, a currency,
/// grouping, a decimal comma) explains it. Computed only when the message
/// is shown.
fn malformed_hint(text: &str) -> String {
    let valid = |s: &str| Decimal::parse(s).is_ok();
    let text = text.trim();
    if text.strip_prefix('-').is_some_and(valid) {
        return "amounts are positive; to take money out use withdraw".into();
    }
    if let Some(number) = text.strip_prefix('+').filter(|n| valid(n)) {
        return format!("amounts have no sign: write {number}");
    }
    if let Some(number) = without_currency(text).filter(|n| valid(n)) {
        return format!("the currency belongs to the account: write {number}");
    }
    let (int, frac) = text.split_once('.').unwrap_or((text, ""));
    let groups: Vec<&str> = int.split(GROUPING).collect();
    if let [first, rest @ ..] = groups.as_slice()
        && !rest.is_empty()
        && (1..=3).contains(&first.len())
        && rest.iter().all(|g| g.len() == 3)
    {
        let number = if text.contains('.') {
            format!("{}.{frac}", groups.concat())
        } else {
            groups.concat()
        };
        if valid(&number) {
            return format!("no grouping separators: write {number}");
        }
    }
    if let Some((int, frac)) = text.split_once(',')
        && valid(&format!("{int}.{frac}"))
    {
        return format!("the decimal mark is a point: write {int}.{frac}");
    }
    "use digits with an optional point and decimals, like 50 or 50.25".into()
}

/// Characters people group thousands with: `1,000`, `1 000`, `1'000`, `1_000`.
const GROUPING: [char; 4] = [',', ' ', '\'', '_'];

/// `text` without a currency symbol or code before or after it (`€5`,
/// `5 EUR`, `$ 5`); `None` if it has none.
fn without_currency(text: &str) -> Option<&str> {
    let is_affix = |a: &str| {
        let a = a.trim();
        a.is_empty()
            || (a.chars().count() == 1 && a.chars().all(|c| "$€£¥₹₽¢₩₺₪₫฿₴₦".contains(c)))
            || ((2..=10).contains(&a.len()) && a.bytes().all(|b| b.is_ascii_alphabetic()))
    };
    let start = text.find(|c: char| c.is_ascii_digit())?;
    let end = text.rfind(|c: char| c.is_ascii_digit())? + 1;
    let (before, number, after) = (&text[..start], &text[start..end], &text[end..]);
    let has_currency = !(before.trim().is_empty() && after.trim().is_empty());
    (has_currency && is_affix(before) && is_affix(after)).then_some(number)
}

/// A non-negative decimal number as written: `units / 10^scale`.
///
/// `50.5` is `Decimal { units: 505, scale: 1 }`. Parsing is strict: digits,
/// optionally a point followed by at least one digit; nothing else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decimal {
    units: i128,
    scale: u8,
}

/// An amount's text for a message about it.
fn text_of(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

impl Decimal {
    /// Parses the strict amount syntax of the specification, rejecting zero.
    pub fn parse_positive(text: &str) -> Result<Decimal, AmountError> {
        Decimal::parse_positive_bytes(text.as_bytes())
    }

    /// [`Decimal::parse_positive`] of bytes, such as a journal line's,
    /// without first checking that they are UTF-8 (an amount is ASCII).
    pub fn parse_positive_bytes(bytes: &[u8]) -> Result<Decimal, AmountError> {
        let d = Decimal::parse_bytes(bytes)?;
        if d.units == 0 {
            return Err(AmountError::NotPositive(text_of(bytes)));
        }
        Ok(d)
    }

    /// Parses `digits[.digits]`; the scale is the number of digits after the point.
    pub fn parse(text: &str) -> Result<Decimal, AmountError> {
        Decimal::parse_bytes(text.as_bytes())
    }

    /// [`Decimal::parse`] of bytes.
    fn parse_bytes(bytes: &[u8]) -> Result<Decimal, AmountError> {
        let text = || text_of(bytes);
        let malformed = || AmountError::Malformed(text());
        let (int, frac) = match bytes.iter().position(|&b| b == b'.') {
            Some(dot) => (&bytes[..dot], Some(&bytes[dot + 1..])),
            None => (bytes, None),
        };
        let all_digits = |s: &[u8]| !s.is_empty() && s.iter().all(u8::is_ascii_digit);
        if !all_digits(int) || frac.is_some_and(|f| !all_digits(f)) {
            return Err(malformed());
        }
        let frac = frac.unwrap_or_default();
        // No account has more decimals than this, so neither may an amount;
        // it also keeps every formatted amount short.
        let scale = u8::try_from(frac.len())
            .ok()
            .filter(|&n| n <= MAX_DECIMALS)
            .ok_or_else(|| AmountError::TooManyDecimals {
                text: text(),
                decimals: MAX_DECIMALS,
            })?;
        let mut digits = int.iter().chain(frac);
        // Nearly every amount has at most 18 digits, which a u64 holds
        // without a check per digit (replays parse millions of them).
        let units = if int.len() + frac.len() <= 18 {
            i128::from(digits.fold(0u64, |n, &b| n * 10 + u64::from(b - b'0')))
        } else {
            digits
                .try_fold(0i128, |n, &b| {
                    n.checked_mul(10)?.checked_add(i128::from(b - b'0'))
                })
                .ok_or_else(|| AmountError::TooLarge(text()))?
        };
        Ok(Decimal { units, scale })
    }

    /// `amount` written with exactly `scale` digits after the point.
    pub fn new(amount: Amount, scale: u8) -> Decimal {
        Decimal {
            units: amount.0,
            scale,
        }
    }

    /// The number as an integer count of `10^-scale`.
    pub fn units(self) -> Amount {
        Amount(self.units)
    }

    /// The digits after the point as written.
    pub fn scale(self) -> u8 {
        self.scale
    }

    /// Appends the canonical text to `out`.
    pub fn write_to(self, out: &mut Vec<u8>) {
        Amount(self.units).display(self.scale).write_to(out);
    }

    /// Expresses this number in minor units of an account with `decimals` decimals.
    pub fn to_minor(self, decimals: u8) -> Result<Amount, AmountError> {
        if self.scale > decimals {
            return Err(AmountError::TooManyDecimals {
                text: self.to_string(),
                decimals,
            });
        }
        pow10(decimals - self.scale)
            .and_then(|f| self.units.checked_mul(f))
            .map(Amount)
            .ok_or_else(|| AmountError::TooLarge(self.to_string()))
    }
}

impl fmt::Display for Decimal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        Amount(self.units).display(self.scale).fmt(f)
    }
}

/// An exact quantity of money in minor units (cents for 2 decimals).
///
/// Balances are never negative, but the type is signed so that a subtraction
/// that would go below zero is visible rather than wrapping.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Default,
    Hash,
    serde::Serialize,
    serde::Deserialize,
)]
pub struct Amount(pub i128);

impl Amount {
    /// Zero.
    pub const ZERO: Amount = Amount(0);

    /// `self + other`, or `None` on overflow.
    pub fn checked_add(self, other: Amount) -> Option<Amount> {
        self.0.checked_add(other.0).map(Amount)
    }

    /// `self - other`, or `None` on overflow.
    pub fn checked_sub(self, other: Amount) -> Option<Amount> {
        self.0.checked_sub(other.0).map(Amount)
    }

    /// The canonical text with exactly `decimals` digits after the point.
    pub fn display(self, decimals: u8) -> AmountDisplay {
        AmountDisplay {
            amount: self,
            decimals,
        }
    }
}

/// Formats an [`Amount`] canonically: `50.00`, `0.05`, `7` (0 decimals).
#[derive(Debug, Clone, Copy)]
pub struct AmountDisplay {
    amount: Amount,
    decimals: u8,
}

impl AmountDisplay {
    /// Writes the canonical text into `buf`, returning the used tail. No
    /// allocation: this runs once per line on replay.
    fn render(self, buf: &mut [u8; RENDER_LEN]) -> &[u8] {
        let units = self.amount.0;
        let decimals = usize::from(self.decimals);
        // `unsigned_abs` keeps i128::MIN exact.
        let mut n = units.unsigned_abs();
        let mut i = buf.len();
        let mut written = 0;
        // Digits from the right; the point after `decimals` of them, and at
        // least one digit before it.
        while n > 0 || written <= decimals {
            if written == decimals && decimals > 0 {
                i -= 1;
                buf[i] = b'.';
            }
            i -= 1;
            buf[i] = b'0' + (n % 10) as u8;
            n /= 10;
            written += 1;
        }
        if units < 0 {
            i -= 1;
            buf[i] = b'-';
        }
        &buf[i..]
    }

    /// Appends the canonical text to `out`.
    pub fn write_to(self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.render(&mut [0; RENDER_LEN]));
    }
}

impl fmt::Display for AmountDisplay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut buf = [0; RENDER_LEN];
        // Only ASCII digits, '-' and '.' are written.
        f.pad(std::str::from_utf8(self.render(&mut buf)).unwrap_or_default())
    }
}

/// Room for any amount at any `u8` of decimals: sign, "0.", and up to 255
/// digits (i128 has at most 39).
const RENDER_LEN: usize = 260;

/// 10^n as i128, if it fits.
fn pow10(n: u8) -> Option<i128> {
    10i128.checked_pow(u32::from(n))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn minor(text: &str, decimals: u8) -> Result<Amount, AmountError> {
        Decimal::parse_positive(text)?.to_minor(decimals)
    }

    #[test]
    fn accepts_the_forms_of_the_spec() {
        assert_eq!(minor("50", 2), Ok(Amount(5000)));
        assert_eq!(minor("50.5", 2), Ok(Amount(5050)));
        assert_eq!(minor("50.25", 2), Ok(Amount(5025)));
        assert_eq!(minor("0.01", 2), Ok(Amount(1)));
        assert_eq!(minor("007", 0), Ok(Amount(7)));
        assert_eq!(
            minor("1.000000000000000001", 18),
            Ok(Amount(1_000_000_000_000_000_001))
        );
    }

    #[test]
    fn rejects_every_malformed_form_of_the_spec() {
        for bad in [
            "-5", "+5", ".5", "5.", "1e3", "1,000", "NaN", "nan", "inf", "", " 5", "5 ", "5..0",
            "5.0.0", "0x10", "٥", "5_000",
        ] {
            assert!(
                matches!(minor(bad, 2), Err(AmountError::Malformed(_))),
                "{bad:?} was accepted: {:?}",
                minor(bad, 2)
            );
        }
    }

    #[test]
    fn a_malformed_amount_says_what_to_write_instead() {
        let hint = |text: &str| match Decimal::parse_positive(text) {
            Err(e @ AmountError::Malformed(_)) => e.to_string(),
            other => format!("not malformed: {other:?}"),
        };
        for (text, expected) in [
            ("1,000.50", "no grouping separators: write 1000.50"),
            ("1,000", "no grouping separators: write 1000"),
            ("5_000", "no grouping separators: write 5000"),
            ("€5", "the currency belongs to the account: write 5"),
            ("5 EUR", "the currency belongs to the account: write 5"),
            ("$5.25", "the currency belongs to the account: write 5.25"),
            ("-5", "amounts are positive; to take money out use withdraw"),
            ("+5", "amounts have no sign: write 5"),
            ("5,50", "the decimal mark is a point: write 5.50"),
            ("1e3", "use digits with an optional point and decimals"),
            ("5e", "use digits with an optional point and decimals"),
            ("", "use digits with an optional point and decimals"),
        ] {
            let message = hint(text);
            assert!(
                message.starts_with(&format!("'{text}' is not an amount: {expected}")),
                "{text:?}: {message}"
            );
        }
    }

    #[test]
    fn rejects_more_decimals_than_any_account_has_without_panicking() {
        let text = format!("0.{}1", "0".repeat(60));
        assert!(matches!(
            minor(&text, 18),
            Err(AmountError::TooManyDecimals { decimals: 18, .. })
        ));
        assert_eq!(Amount(1).display(255).to_string().len(), 257);
    }

    #[test]
    fn rejects_zero() {
        assert!(matches!(minor("0", 2), Err(AmountError::NotPositive(_))));
        assert!(matches!(minor("0.00", 2), Err(AmountError::NotPositive(_))));
    }

    #[test]
    fn rejects_more_decimals_than_the_account_has() {
        assert!(matches!(
            minor("1.234", 2),
            Err(AmountError::TooManyDecimals { decimals: 2, .. })
        ));
        assert!(matches!(
            minor("1.5", 0),
            Err(AmountError::TooManyDecimals { decimals: 0, .. })
        ));
        // Trailing zeros still count as written decimals: the rule is about the text.
        assert!(matches!(
            minor("1.500", 2),
            Err(AmountError::TooManyDecimals { .. })
        ));
    }

    #[test]
    fn rejects_what_does_not_fit_in_i128() {
        let huge = "9".repeat(40);
        assert!(matches!(minor(&huge, 0), Err(AmountError::TooLarge(_))));
        // Fits as digits, but not once scaled to 18 decimals.
        assert!(matches!(
            minor("1000000000000000000000", 18),
            Err(AmountError::TooLarge(_))
        ));
        let max = i128::MAX.to_string();
        assert_eq!(minor(&max, 0), Ok(Amount(i128::MAX)));
    }

    #[test]
    fn formats_canonically() {
        assert_eq!(Amount(5000).display(2).to_string(), "50.00");
        assert_eq!(Amount(5).display(2).to_string(), "0.05");
        assert_eq!(Amount(0).display(2).to_string(), "0.00");
        assert_eq!(Amount(7).display(0).to_string(), "7");
        assert_eq!(Amount(-150).display(2).to_string(), "-1.50");
        assert_eq!(Amount(1).display(18).to_string(), "0.000000000000000001");
        assert_eq!(
            Amount(i128::MIN).display(0).to_string(),
            "-170141183460469231731687303715884105728"
        );
        assert_eq!(format!("{:>8}", Amount(5025).display(2)), "   50.25");
    }

    #[test]
    fn checked_arithmetic_reports_overflow() {
        assert_eq!(Amount(i128::MAX).checked_add(Amount(1)), None);
        assert_eq!(Amount(i128::MIN).checked_sub(Amount(1)), None);
        assert_eq!(Amount(5).checked_sub(Amount(7)), Some(Amount(-2)));
    }

    proptest! {
        #[test]
        fn parse_of_format_is_identity(units in 1..=i128::MAX, decimals in 0..=MAX_DECIMALS) {
            let text = Amount(units).display(decimals).to_string();
            prop_assert_eq!(minor(&text, decimals), Ok(Amount(units)));
        }

        #[test]
        fn digits_read_as_the_integer_they_spell(int in "[0-9]{1,24}", frac in "[0-9]{0,18}") {
            let text = if frac.is_empty() { int.clone() } else { format!("{int}.{frac}") };
            let spelled = format!("{int}{frac}").parse::<i128>().ok();
            match Decimal::parse(&text) {
                Ok(d) => prop_assert_eq!(Some(d.units().0), spelled),
                Err(AmountError::TooLarge(_)) => prop_assert_eq!(spelled, None),
                Err(e) => prop_assert!(false, "{text}: {e}"),
            }
        }

        #[test]
        fn parse_never_panics(text in "\\PC{0,50}") {
            let _ = Decimal::parse(&text);
        }

        #[test]
        fn accepted_text_is_digits_and_one_point(text in "[0-9.]{0,45}") {
            if let Ok(d) = Decimal::parse(&text) {
                prop_assert!(!text.starts_with('.') && !text.ends_with('.'));
                prop_assert!(text.matches('.').count() <= 1);
                prop_assert_eq!(usize::from(d.scale()), text.split_once('.').map_or(0, |(_, f)| f.len()));
            }
        }
    }
}
