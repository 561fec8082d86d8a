//! A bank's CSV, mapped onto deposits, withdrawals and transfers by rules
//! (SPEC 13).

use std::io::BufRead;

use rustc_hash::FxHashMap;
use sha2::{Digest, Sha256};

use super::rules::{Amounts, Compiled, Mapping, Rules};
use super::{add_tag, read_error, set, template};
use crate::cli::WriteCommand;
use crate::cmd::apply::Applier;
use crate::error::Error;
use crate::time::Day;

/// Reads the CSV in `input` record by record and applies each row's command.
pub(super) fn import(
    mut input: Box<dyn BufRead>,
    name: &str,
    rules: &Rules,
    applier: &mut Applier<'_>,
) -> Result<(), Error> {
    // A BOM would otherwise stick to the first column's name (or a
    // skipped line), whatever the csv crate does with its own first line.
    let bom = input
        .fill_buf()
        .map_err(|e| read_error(name, e))?
        .starts_with(b"\xEF\xBB\xBF");
    if bom {
        input.consume(3);
    }
    let mut skipped = Vec::new();
    for _ in 0..rules.skip {
        skipped.clear();
        input
            .read_until(b'\n', &mut skipped)
            .map_err(|e| read_error(name, e))?;
    }
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(rules.delimiter)
        .has_headers(false)
        // Rows shorter than the header (a bank's closing "total" line)
        // reach the rules, which may skip them; missing columns are empty.
        .flexible(true)
        .from_reader(input);
    let mut record = csv::StringRecord::new();
    let line_of = |r: &csv::StringRecord| {
        rules.skip
            + r.position()
                .map_or(0, |p| usize::try_from(p.line()).unwrap_or(usize::MAX))
    };
    if !read(&mut reader, &mut record, rules.skip, name)? {
        return Ok(());
    }
    let header: Vec<String> = record.iter().map(|h| h.trim().to_owned()).collect();
    let columns: Vec<&str> = header.iter().map(String::as_str).collect();
    let compiled = rules.compile(Some(&columns))?;
    let mut rows = Rows::new()?;
    loop {
        match read(&mut reader, &mut record, rules.skip, name) {
            Ok(true) => {}
            Ok(false) => return Ok(()),
            Err(Error::Line { line, source }) => {
                applier.apply(line, Err(*source))?;
                continue;
            }
            Err(e) => return Err(e),
        }
        if let Some(command) = rows.command(&record, &compiled).transpose() {
            applier.apply(line_of(&record), command)?;
        }
    }
}

/// Reads the next record into `record`: `false` at the end. A malformed
/// record is an [`Error::Line`] (the reader goes on after it).
fn read<R: std::io::Read>(
    reader: &mut csv::Reader<R>,
    record: &mut csv::StringRecord,
    skip: usize,
    name: &str,
) -> Result<bool, Error> {
    reader.read_record(record).map_err(|e| {
        let line = e
            .position()
            .map_or(0, |p| usize::try_from(p.line()).unwrap_or(usize::MAX));
        match e.into_kind() {
            csv::ErrorKind::Io(io) => read_error(name, io),
            kind => Error::Line {
                line: skip + line,
                source: Box::new(Error::Usage(format!(
                    "not a valid CSV record: {}",
                    describe(&kind)
                ))),
            },
        }
    })
}

fn describe(kind: &csv::ErrorKind) -> String {
    match kind {
        csv::ErrorKind::Utf8 { err, .. } => format!("field {} is not UTF-8", err.field() + 1),
        other => format!("{other:?}"),
    }
}

/// Turns rows into commands, with the templates of the three commands a row
/// can be and the occurrences of each distinct row seen so far.
struct Rows {
    deposit: WriteCommand,
    withdraw: WriteCommand,
    transfer: WriteCommand,
    /// How often each distinct row (by a 128-bit prefix of its hash) has
    /// occurred: the one thing kept per row (SPEC 13).
    seen: FxHashMap<u128, u32>,
    text: String,
}

impl Rows {
    fn new() -> Result<Rows, Error> {
        Ok(Rows {
            deposit: template(&["deposit", "a", "1"])?,
            withdraw: template(&["withdraw", "a", "1"])?,
            transfer: template(&["transfer", "a", "b", "1"])?,
            seen: FxHashMap::default(),
            text: String::new(),
        })
    }

    /// The command of one row, `None` if a rule skips it.
    fn command(
        &mut self,
        row: &csv::StringRecord,
        compiled: &Compiled,
    ) -> Result<Option<WriteCommand>, Error> {
        let matched = compiled.rules.iter().find(|(when, _)| {
            when.iter()
                .all(|(column, regex)| regex.is_match(row.get(*column).unwrap_or_default()))
        });
        let mapping = match matched {
            Some((_, None)) => return Ok(None),
            Some((_, Some(mapping))) => mapping,
            None => &compiled.base,
        };
        let (negative, amount) = self.amount(row, mapping)?;
        mapping.account.render(row, &mut self.text);
        let account = self.text.clone();
        let counterparty = match &mapping.counterparty {
            Some(t) => {
                t.render(row, &mut self.text);
                Some(self.text.trim().to_owned()).filter(|c| !c.is_empty())
            }
            None => None,
        };
        let mut command = match (&counterparty, negative) {
            (Some(other), false) => self.transfer_of(other, &account, "counterparty", "account")?,
            (Some(other), true) => self.transfer_of(&account, other, "account", "counterparty")?,
            (None, false) => self.one(&self.deposit.clone(), &account)?,
            (None, true) => self.one(&self.withdraw.clone(), &account)?,
        };
        set(&mut command, "amount", &amount, "amount")?;
        self.options(&mut command, row, mapping)?;
        Ok(Some(command))
    }

    fn transfer_of(
        &self,
        from: &str,
        to: &str,
        from_key: &str,
        to_key: &str,
    ) -> Result<WriteCommand, Error> {
        let mut command = self.transfer.clone();
        set(&mut command, "from", from, &format!("key `{from_key}`"))?;
        set(&mut command, "to", to, &format!("key `{to_key}`"))?;
        Ok(command)
    }

    fn one(&self, template: &WriteCommand, account: &str) -> Result<WriteCommand, Error> {
        let mut command = template.clone();
        set(&mut command, "account", account, "key `account`")?;
        Ok(command)
    }

    /// Whether the row's money goes out, and its amount as the command line
    /// writes it.
    fn amount(
        &mut self,
        row: &csv::StringRecord,
        mapping: &Mapping,
    ) -> Result<(bool, String), Error> {
        let mark = mapping.decimal_mark;
        match &mapping.amount {
            Amounts::Signed(t) => {
                t.render(row, &mut self.text);
                let parsed = BankAmount::parse(&self.text, mark)
                    .ok_or_else(|| not_amount(&self.text, "amount"))?;
                Ok((parsed.negative, parsed.digits))
            }
            Amounts::Split { credit, debit } => {
                let mut side = |t: &Option<_>, key: &str| -> Result<Option<String>, Error> {
                    let Some(t) = t else { return Ok(None) };
                    super::rules::Template::render(t, row, &mut self.text);
                    if self.text.trim().is_empty() {
                        return Ok(None);
                    }
                    match BankAmount::parse(&self.text, mark) {
                        Some(a) if !a.signed => Ok(Some(a.digits)),
                        Some(_) => Err(Error::Usage(format!(
                            "{key} '{}' has a sign: `credit` and `debit` take unsigned amounts",
                            self.text
                        ))),
                        None => Err(not_amount(&self.text, key)),
                    }
                };
                match (side(credit, "credit")?, side(debit, "debit")?) {
                    (Some(c), None) => Ok((false, c)),
                    (None, Some(d)) => Ok((true, d)),
                    (Some(_), Some(_)) => Err(Error::Usage(
                        "both `credit` and `debit` have an amount: give one per row".into(),
                    )),
                    (None, None) => Err(Error::Usage(
                        "neither `credit` nor `debit` has an amount".into(),
                    )),
                }
            }
        }
    }

    /// Date, memo, id and tags.
    fn options(
        &mut self,
        command: &mut WriteCommand,
        row: &csv::StringRecord,
        mapping: &Mapping,
    ) -> Result<(), Error> {
        if let Some((t, format)) = &mapping.date {
            t.render(row, &mut self.text);
            let text = self.text.trim();
            if !text.is_empty() {
                let day = parse_date(text, format)?;
                set(
                    command,
                    "date",
                    &String::from_utf8_lossy(&day.text()),
                    "key `date`",
                )?;
            }
        }
        if let Some(t) = &mapping.memo {
            t.render(row, &mut self.text);
            let memo = one_line(&self.text);
            if !memo.is_empty() {
                set(command, "memo", &memo, "key `memo`")?;
            }
        }
        match &mapping.id {
            Some(t) => {
                t.render(row, &mut self.text);
                set(command, "id", &self.text, "key `id`")?;
            }
            None => {
                let id = self.row_id(row);
                set(command, "id", &id, "the row's id")?;
            }
        }
        for (key, t) in &mapping.tags {
            t.render(row, &mut self.text);
            add_tag(
                command,
                key,
                &one_line(&self.text),
                &format!("key `tags.{key}`"),
            )?;
        }
        Ok(())
    }

    /// `csv:` and the first 32 hex digits of the SHA-256 of the row's fields
    /// joined by `\x1f`, a `\x1e`, and the row's occurrence number among
    /// identical rows (SPEC 13).
    fn row_id(&mut self, row: &csv::StringRecord) -> String {
        let mut hasher = Sha256::new();
        for (i, field) in row.iter().enumerate() {
            if i > 0 {
                hasher.update(b"\x1f");
            }
            hasher.update(field.as_bytes());
        }
        let fields = hasher.clone().finalize();
        let mut key = [0u8; 16];
        key.copy_from_slice(&fields[..16]);
        let n = self.seen.entry(u128::from_le_bytes(key)).or_insert(0);
        *n += 1;
        hasher.update(b"\x1e");
        hasher.update(n.to_string().as_bytes());
        let digest = hasher.finalize();
        let mut id = String::with_capacity(36);
        id.push_str("csv:");
        for b in &digest[..16] {
            id.push(char::from(HEX[usize::from(b >> 4)]));
            id.push(char::from(HEX[usize::from(b & 15)]));
        }
        id
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn not_amount(text: &str, key: &str) -> Error {
    Error::Usage(format!(
        "{key} '{text}' is not an amount (digits with grouping marks and one decimal mark, an optional sign or parentheses, a currency symbol or code)"
    ))
}

/// A bank's text on one line: its line breaks and tabs (a quoted
/// multi-line description) become spaces.
fn one_line(text: &str) -> String {
    text.split(['\r', '\n', '\t'])
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
        .trim()
        .to_owned()
}

/// A date in a strftime-like `format`.
fn parse_date(text: &str, format: &str) -> Result<Day, Error> {
    let bad = |why: String| {
        Error::Usage(format!(
            "date '{text}' does not match date_format '{format}': {why}"
        ))
    };
    let date = jiff::fmt::strtime::parse(format, text)
        .and_then(|tm| tm.to_date())
        .map_err(|e| bad(e.to_string()))?;
    let (month, day) = (u8::try_from(date.month()), u8::try_from(date.day()));
    match (month, day) {
        (Ok(m), Ok(d)) => {
            Day::from_civil(i32::from(date.year()), m, d).ok_or_else(|| bad("out of range".into()))
        }
        _ => Err(bad("out of range".into())),
    }
}

/// An amount as banks write it.
#[derive(Debug, PartialEq, Eq)]
struct BankAmount {
    /// A `-` (leading or trailing) or parentheses.
    negative: bool,
    /// Any sign or parentheses at all.
    signed: bool,
    /// Digits, and a `.` before the decimals.
    digits: String,
}

/// Currency symbols a bank may put beside an amount (codes are letters,
/// which are stripped as such).
const SYMBOLS: &[char] = &[
    '€', '$', '£', '¥', '₹', '₽', '₩', '₺', '₪', '¢', '₫', '₱', '₴', '₦', '฿', '₣',
];

/// Marks that group thousands besides the other decimal mark: spaces
/// (also no-break and thin ones) and apostrophes.
const GROUPING: &[char] = &[' ', '\'', '\u{a0}', '\u{202f}', '\u{2009}', '’'];

impl BankAmount {
    /// Reads `text` with decimal mark `mark`: `None` if it is not an amount.
    fn parse(text: &str, mark: char) -> Option<BankAmount> {
        let noise = |c: char| c.is_whitespace() || c.is_alphabetic() || SYMBOLS.contains(&c);
        let mut rest = text.trim_matches(noise);
        let (mut negative, mut signs) = (false, 0);
        loop {
            if let Some(inner) = rest.strip_prefix('(').and_then(|r| r.strip_suffix(')')) {
                (rest, negative) = (inner, true);
            } else if let Some(r) = rest.strip_prefix('-').or_else(|| rest.strip_suffix('-')) {
                (rest, negative) = (r, true);
            } else if let Some(r) = rest.strip_prefix('+') {
                rest = r;
            } else {
                break;
            }
            signs += 1;
            rest = rest.trim_matches(noise);
        }
        if signs > 1 {
            return None;
        }
        let group = if mark == ',' { '.' } else { ',' };
        let (whole, fraction) = match rest.split_once(mark) {
            Some((w, f)) => (w, Some(f)),
            None => (rest, None),
        };
        let mut groups = whole.split(|c| c == group || GROUPING.contains(&c));
        let first = groups.next()?;
        let mut digits = first.to_owned();
        for g in groups {
            // Grouped thousands are groups of three: `1.25050` is not one.
            if g.len() != 3 || first.is_empty() {
                return None;
            }
            digits.push_str(g);
        }
        if let Some(f) = fraction {
            if f.is_empty() || !f.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            digits.push('.');
            digits.push_str(f);
        }
        let ok = digits.bytes().all(|b| b.is_ascii_digit() || b == b'.') && !first.is_empty();
        ok.then_some(BankAmount {
            negative,
            signed: signs > 0,
            digits,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn amount(text: &str, mark: char) -> Option<(bool, String)> {
        BankAmount::parse(text, mark).map(|a| (a.negative, a.digits))
    }

    #[test]
    fn bank_amounts_in_their_many_forms() {
        let yes = |text: &str, mark, neg, digits: &str| {
            assert_eq!(amount(text, mark), Some((neg, digits.to_owned())), "{text}");
        };
        yes("1.250,50", ',', false, "1250.50");
        yes("-1.250,50 €", ',', true, "1250.50");
        yes("€ -12,00", ',', true, "12.00");
        yes("EUR 3,5", ',', false, "3.5");
        yes("$1,250.50", '.', false, "1250.50");
        yes("(12.00)", '.', true, "12.00");
        yes("$(12.00)", '.', true, "12.00");
        yes("12.00-", '.', true, "12.00");
        yes("+5", '.', false, "5");
        yes("1 250,50", ',', false, "1250.50");
        yes("1'250.50 CHF", '.', false, "1250.50");
        yes("0.50", '.', false, "0.50");
        for no in [
            "", "abc", "--5", "(-5)", "1,2,3", ",5", "1.2.3", "5x5", "1e3",
        ] {
            assert_eq!(amount(no, '.'), None, "{no}");
        }
        assert_eq!(amount("1.250,50", '.'), None);
    }

    #[test]
    fn dates_in_the_formats_banks_use() {
        let day = |t, f| parse_date(t, f).map(|d| String::from_utf8_lossy(&d.text()).into_owned());
        assert_eq!(day("03/10/2026", "%d/%m/%Y").unwrap(), "2026-10-03");
        assert_eq!(day("10/03/26", "%m/%d/%y").unwrap(), "2026-10-03");
        assert_eq!(day("3 Oct 2026", "%d %b %Y").unwrap(), "2026-10-03");
        assert_eq!(day("2026-10-03", "%Y-%m-%d").unwrap(), "2026-10-03");
        assert!(day("31/02/2026", "%d/%m/%Y").is_err());
        assert!(day("2026-10-03", "%d/%m/%Y").is_err());
    }

    #[test]
    fn multi_line_text_becomes_one_line() {
        assert_eq!(one_line("a\r\nb\tc \n"), "a b c");
    }
}
