//! A bank's CSV, mapped onto deposits, withdrawals and transfers by rules
//! (SPEC 13).

use std::io::BufRead;

use rustc_hash::FxHashMap;
use sha2::{Digest, Sha256};

use super::rules::{Amounts, Compiled, Mapping, Rules};
use super::{add_tag, read_error, set, template};
use crate::cli::WriteCommand;
use crate::cmd::pipeline;
use crate::domain::WrittenIn;
use crate::error::Error;
use crate::time::Day;

/// Reads the CSV in `input` record by record and applies each row's command.
pub(super) fn import(
    mut input: Box<dyn BufRead + Send>,
    name: &str,
    rules: &Rules,
    apply: &mut impl FnMut(usize, Result<WriteCommand, Error>) -> Result<(), Error>,
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
    if !read(&mut reader, &mut record, rules.skip, name)? {
        // No header: a template naming a column names one it lacks.
        rules.compile(Some(&[]))?;
        return Ok(());
    }
    let header: Vec<String> = record.iter().map(|h| h.trim().to_owned()).collect();
    let columns: Vec<&str> = header.iter().map(String::as_str).collect();
    let compiled = rules.compile(Some(&columns))?;
    let width = columns.len();
    let rows = Rows::new()?;
    // How often each distinct row (by a 128-bit prefix of its hash) has
    // occurred: the one thing kept per row (SPEC 13), counted in order.
    let mut seen = Occurrences::default();
    make_rows(
        reader,
        (rules.skip, width),
        name,
        &rows,
        &compiled,
        |made| {
            let mut made = made.into_iter();
            while made.len() > 0 {
                seen.touch(made.as_slice().iter().take(TOUCH).filter_map(|(_, row)| {
                    Some(row.as_ref().ok()?.as_ref()?.pending_id.as_ref()?.1)
                }));
                for (line, result) in made.by_ref().take(TOUCH) {
                    match result {
                        Ok(None) => {}
                        Ok(Some(row)) => apply(line, row.finish(&mut seen))?,
                        Err(e) => apply(line, Err(e))?,
                    }
                }
            }
            Ok(())
        },
    )
}

/// Rows whose counts are read ahead at a time (see [`Occurrences::touch`]):
/// enough for their reads to overlap, few enough to stay in the cache.
const TOUCH: usize = 256;

/// The records of a chunk, each with its line (a malformed one as the
/// error that says so), or the error that ends the input.
type Records = Result<Vec<(usize, Result<csv::StringRecord, Error>)>, Error>;

/// What the records of a chunk made: each one's line and command (`None`
/// when a rule skips it), or the error that ends the input.
type Made = Result<Vec<(usize, Result<Option<Row>, Error>)>, Error>;

/// Rows read at a time, and handed to a worker thread. Chunks of rows
/// and of what they made are in flight between the threads: 2,000,000
/// rows imported into a million accounts peaked 10 MB higher with
/// chunks of 2,048, no faster.
const CHUNK: usize = 512;

/// Reads the records after the header and hands what each makes, with its
/// line, to `apply`, in order, a chunk at a time; stops at the first error
/// `apply` returns or at an error reading the input.
///
/// As `batch` parses its lines: one thread reads and cuts the CSV into
/// chunks of records, worker threads turn records into commands (rules,
/// templates, amounts, dates, row hashes), and this thread applies them in
/// order (see [`pipeline::in_order`]).
fn make_rows<R: std::io::Read + Send>(
    mut reader: csv::Reader<R>,
    (skip, width): (usize, usize),
    name: &str,
    rows: &Rows,
    compiled: &Compiled,
    mut apply: impl FnMut(Vec<(usize, Result<Option<Row>, Error>)>) -> Result<(), Error>,
) -> Result<(), Error> {
    let worker = || {
        let mut rows = rows.clone();
        move |chunk: Records| -> Made {
            let records = chunk?;
            Ok(records
                .into_iter()
                .map(|(line, record)| (line, record.and_then(|r| rows.command(&r, compiled))))
                .collect())
        }
    };
    let records = pipeline::chunks(move || {
        let mut records = Vec::with_capacity(CHUNK);
        let mut end = None;
        while end.is_none() && records.len() < CHUNK {
            let mut record = csv::StringRecord::new();
            match read(&mut reader, &mut record, skip, name) {
                Ok(true) => {
                    let line = skip
                        + record
                            .position()
                            .map_or(0, |p| usize::try_from(p.line()).unwrap_or(usize::MAX));
                    records.push((line, fits(record, width)));
                }
                Ok(false) => end = Some(Ok(())),
                Err(Error::Line { line, source }) => records.push((line, Err(*source))),
                Err(e) => end = Some(Err(e)),
            }
        }
        ((!records.is_empty()).then_some(records), end)
    });
    pipeline::in_order(records, worker, 1, |made| apply(made?))
}

/// `record`, unless it has a field past the header's `width` columns
/// that is not blank: a comma left unquoted in an amount (`1,250.50`)
/// would otherwise move the rest of the row one column on, and the
/// amount's template read `1`. (Blank fields past the header are a
/// trailing delimiter; a shorter row, such as a closing total, has its
/// missing columns empty.)
fn fits(record: csv::StringRecord, width: usize) -> Result<csv::StringRecord, Error> {
    match record.iter().skip(width).all(|f| f.trim().is_empty()) {
        true => Ok(record),
        false => Err(Error::Usage(format!(
            "not a valid CSV record: {} fields where the header has {width} (a delimiter left unquoted in a field?)",
            record.len()
        ))),
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

/// A row's command. The default id (a row with no `id` template) needs the
/// row's occurrence number, which only the rows before it tell: the
/// command carries the id of a first occurrence, the common case, and
/// [`Row::finish`] replaces it for a repeated row.
struct Row {
    command: WriteCommand,
    /// The SHA-256 state after the row's fields, and their key among
    /// distinct rows (see [`row_key`]).
    pending_id: Option<(Sha256, u128)>,
}

impl Row {
    /// The command with its id, counting this row's occurrence in `seen`.
    fn finish(self, seen: &mut Occurrences) -> Result<WriteCommand, Error> {
        let mut command = self.command;
        if let Some((hasher, key)) = self.pending_id {
            let n = seen.count(key);
            if n > 1 {
                set(&mut command, "id", &row_id(hasher, n), "the row's id")?;
            }
        }
        Ok(command)
    }
}

/// How often each distinct row's key has occurred, in about 15 bytes a
/// row: a hash map of `u128` keys and counts would take 64 (entries padded
/// to 32 bytes, half the buckets empty), which for a million rows was most
/// of an import's memory. Keys seen once are kept in sorted shards (chosen
/// by their first 16 bits, so each holds the other 112, and a shard that
/// grows moves a few hundred bytes); the counts of the few keys seen again
/// in a map beside them.
#[derive(Debug, Default)]
struct Occurrences {
    /// Empty until the first key comes.
    shards: Vec<Vec<[u8; 14]>>,
    /// The count of each key seen more than once.
    again: FxHashMap<u128, u32>,
}

/// Bits of a key that choose its shard.
const SHARD_BITS: u32 = 16;

impl Occurrences {
    /// Reads the part of the shards that counting each of `keys` reads,
    /// with no read waiting for the one before, so that the counts which
    /// follow find it in the cache: a count is random reads in megabytes
    /// of shards, each waiting on the last, which was a sixth of a large
    /// import's applying time.
    fn touch(&self, keys: impl Iterator<Item = u128>) {
        for key in keys {
            if let Some(shard) = self.shards.get((key >> (128 - SHARD_BITS)) as usize) {
                std::hint::black_box(shard.get(shard.len() / 2).copied());
            }
        }
    }

    /// Counts one more occurrence of `key` and returns how many there have
    /// been (1 for the first).
    fn count(&mut self, key: u128) -> u32 {
        if self.shards.is_empty() {
            self.shards = vec![Vec::new(); 1 << SHARD_BITS];
        }
        let [_, _, rest @ ..] = key.to_be_bytes();
        let shard = &mut self.shards[(key >> (128 - SHARD_BITS)) as usize];
        match shard.binary_search(&rest) {
            Ok(_) => {
                let n = self.again.entry(key).or_insert(1);
                *n = n.saturating_add(1);
                *n
            }
            Err(i) => {
                if shard.len() == shard.capacity() {
                    // An eighth more at a time: doubling would leave much
                    // of the memory of many rows empty.
                    shard.reserve_exact((shard.len() / 8).max(4));
                }
                shard.insert(i, rest);
                1
            }
        }
    }
}

/// Turns rows into commands, with the templates of the three commands a row
/// can be (one per worker thread).
#[derive(Clone)]
struct Rows {
    deposit: WriteCommand,
    withdraw: WriteCommand,
    transfer: WriteCommand,
    text: String,
}

impl Rows {
    fn new() -> Result<Rows, Error> {
        Ok(Rows {
            deposit: template(&["deposit", "a", "1"])?,
            withdraw: template(&["withdraw", "a", "1"])?,
            transfer: template(&["transfer", "a", "b", "1"])?,
            text: String::new(),
        })
    }

    /// The command of one row, `None` if a rule skips it.
    fn command(
        &mut self,
        row: &csv::StringRecord,
        compiled: &Compiled,
    ) -> Result<Option<Row>, Error> {
        let matched = compiled.rules.iter().find(|(when, _)| {
            when.iter()
                .all(|(column, regex)| regex.is_match(row.get(*column).unwrap_or_default()))
        });
        let mapping = match matched {
            Some((_, None)) => return Ok(None),
            Some((_, Some(mapping))) => mapping,
            None => &compiled.base,
        };
        let (negative, amount, written) = self.amount(row, mapping)?;
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
            (None, false) => self.one(&self.deposit, &account)?,
            (None, true) => self.one(&self.withdraw, &account)?,
        };
        set(&mut command, "amount", &amount, "amount")?;
        command.opts_mut().written_in = written;
        let pending_id = self.options(&mut command, row, mapping)?;
        Ok(Some(Row {
            command,
            pending_id,
        }))
    }

    fn transfer_of(
        &self,
        from: &str,
        to: &str,
        from_key: &str,
        to_key: &str,
    ) -> Result<WriteCommand, Error> {
        let mut command = self.transfer.clone();
        set(&mut command, "from", from, format_args!("key `{from_key}`"))?;
        set(&mut command, "to", to, format_args!("key `{to_key}`"))?;
        Ok(command)
    }

    fn one(&self, template: &WriteCommand, account: &str) -> Result<WriteCommand, Error> {
        let mut command = template.clone();
        set(&mut command, "account", account, "key `account`")?;
        Ok(command)
    }

    /// Whether the row's money goes out, its amount as the command line
    /// writes it, and the currencies its text names, if any.
    fn amount(
        &mut self,
        row: &csv::StringRecord,
        mapping: &Mapping,
    ) -> Result<(bool, String, Option<WrittenIn>), Error> {
        let mark = mapping.decimal_mark;
        match &mapping.amount {
            Amounts::Signed(t) => {
                t.render(row, &mut self.text);
                let parsed = BankAmount::parse(&self.text, mark)
                    .ok_or_else(|| not_amount(&self.text, "amount"))?;
                Ok((parsed.negative, parsed.digits, parsed.written))
            }
            Amounts::Split { credit, debit } => {
                let mut side = |t: &Option<_>, key: &str| -> Result<Option<BankAmount>, Error> {
                    let Some(t) = t else { return Ok(None) };
                    super::rules::Template::render(t, row, &mut self.text);
                    if self.text.trim().is_empty() {
                        return Ok(None);
                    }
                    match BankAmount::parse(&self.text, mark) {
                        Some(a) if !a.signed => Ok(Some(a)),
                        Some(_) => Err(Error::Usage(format!(
                            "{key} '{}' has a sign: `credit` and `debit` take unsigned amounts",
                            self.text
                        ))),
                        None => Err(not_amount(&self.text, key)),
                    }
                };
                match (side(credit, "credit")?, side(debit, "debit")?) {
                    (Some(c), None) => Ok((false, c.digits, c.written)),
                    (None, Some(d)) => Ok((true, d.digits, d.written)),
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

    /// Date, memo, id and tags; the row's key when its id is the default
    /// one (set here as a first occurrence's: see [`Row`]).
    fn options(
        &mut self,
        command: &mut WriteCommand,
        row: &csv::StringRecord,
        mapping: &Mapping,
    ) -> Result<Option<(Sha256, u128)>, Error> {
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
        let pending_id = match &mapping.id {
            Some(t) => {
                t.render(row, &mut self.text);
                set(command, "id", &self.text, "key `id`")?;
                None
            }
            None => {
                let (hasher, key) = row_key(row);
                set(command, "id", &row_id(hasher.clone(), 1), "the row's id")?;
                Some((hasher, key))
            }
        };
        for (key, t) in &mapping.tags {
            t.render(row, &mut self.text);
            add_tag(
                command,
                key,
                &one_line(&self.text),
                format_args!("key `tags.{key}`"),
            )?;
        }
        Ok(pending_id)
    }
}

/// A row's default id is `csv:` and the first 32 hex digits of the SHA-256
/// of the row's fields joined by `\x1f`, a `\x1e`, and the row's occurrence
/// number among identical rows (SPEC 13). This is the hash state after the
/// fields, and the row's key among distinct rows (the first 128 bits of the
/// hash of the fields alone).
fn row_key(row: &csv::StringRecord) -> (Sha256, u128) {
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
    (hasher, u128::from_le_bytes(key))
}

/// The id of the `n`th occurrence of a row (from its [`row_key`] state).
fn row_id(mut hasher: Sha256, n: u32) -> String {
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

const HEX: &[u8; 16] = b"0123456789abcdef";

fn not_amount(text: &str, key: &str) -> Error {
    Error::Usage(format!(
        "{key} '{text}' is not an amount (digits with grouping marks and one decimal mark, an optional sign or parentheses, a currency symbol or code)"
    ))
}

/// A bank's text on one line: its line breaks and tabs (a quoted
/// multi-line description) become spaces.
fn one_line(text: &str) -> String {
    if !text.contains(['\r', '\n', '\t']) {
        // The common case, and what the general one makes of it.
        return text.trim().to_owned();
    }
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
    /// The currencies its codes and symbols name (`USD`; `¥`: yen or
    /// yuan), if it has any.
    written: Option<WrittenIn>,
}

/// Currency symbols a bank may put beside an amount, with the currencies
/// whose symbol each is (`¢` and `₣` name none: cents of many, francs of
/// old). A word names a currency if it is an ISO 4217 code ([`ISO_4217`]).
const SYMBOLS: &[(char, &[&str])] = &[
    ('€', &["EUR"]),
    (
        '£',
        &["GBP", "EGP", "FKP", "GIP", "LBP", "SHP", "SSP", "SYP"],
    ),
    ('¥', &["JPY", "CNY"]),
    (
        '$',
        &[
            "USD", "ARS", "AUD", "BBD", "BMD", "BND", "BRL", "BSD", "BZD", "CAD", "CLP", "COP",
            "CUP", "CVE", "DOP", "FJD", "GYD", "HKD", "JMD", "KYD", "LRD", "MOP", "MXN", "NAD",
            "NIO", "NZD", "SBD", "SGD", "SRD", "SVC", "TOP", "TTD", "TWD", "UYU", "WST", "XCD",
            "ZWL",
        ],
    ),
    ('₹', &["INR"]),
    ('₽', &["RUB"]),
    ('₩', &["KRW", "KPW"]),
    ('₺', &["TRY"]),
    ('₪', &["ILS"]),
    ('₫', &["VND"]),
    ('₱', &["PHP"]),
    ('₴', &["UAH"]),
    ('₦', &["NGN"]),
    ('฿', &["THB"]),
    ('¢', &[]),
    ('₣', &[]),
];

/// The ISO 4217 codes of currencies in use, in order: the words beside an
/// amount that name a currency. Others (`kr`, `CR`, `DEB`) are a bank's
/// marks and name none.
const ISO_4217: &[&str] = &[
    "AED", "AFN", "ALL", "AMD", "ANG", "AOA", "ARS", "AUD", "AWG", "AZN", "BAM", "BBD", "BDT",
    "BGN", "BHD", "BIF", "BMD", "BND", "BOB", "BRL", "BSD", "BTN", "BWP", "BYN", "BZD", "CAD",
    "CDF", "CHF", "CLP", "CNY", "COP", "CRC", "CUP", "CVE", "CZK", "DJF", "DKK", "DOP", "DZD",
    "EGP", "ERN", "ETB", "EUR", "FJD", "FKP", "GBP", "GEL", "GHS", "GIP", "GMD", "GNF", "GTQ",
    "GYD", "HKD", "HNL", "HTG", "HUF", "IDR", "ILS", "INR", "IQD", "IRR", "ISK", "JMD", "JOD",
    "JPY", "KES", "KGS", "KHR", "KMF", "KPW", "KRW", "KWD", "KYD", "KZT", "LAK", "LBP", "LKR",
    "LRD", "LSL", "LYD", "MAD", "MDL", "MGA", "MKD", "MMK", "MNT", "MOP", "MRU", "MUR", "MVR",
    "MWK", "MXN", "MYR", "MZN", "NAD", "NGN", "NIO", "NOK", "NPR", "NZD", "OMR", "PAB", "PEN",
    "PGK", "PHP", "PKR", "PLN", "PYG", "QAR", "RON", "RSD", "RUB", "RWF", "SAR", "SBD", "SCR",
    "SDG", "SEK", "SGD", "SHP", "SLE", "SOS", "SRD", "SSP", "STN", "SVC", "SYP", "SZL", "THB",
    "TJS", "TMT", "TND", "TOP", "TRY", "TTD", "TWD", "TZS", "UAH", "UGX", "USD", "UYU", "UZS",
    "VES", "VND", "VUV", "WST", "XAF", "XCD", "XOF", "XPF", "YER", "ZAR", "ZMW", "ZWL",
];

/// Marks that group thousands besides the other decimal mark: spaces
/// (also no-break and thin ones) and apostrophes.
const GROUPING: &[char] = &[' ', '\'', '\u{a0}', '\u{202f}', '\u{2009}', '’'];

/// What may stand around an amount's number: spaces, words (a currency's
/// code, a bank's marks) or a currency's symbol.
fn noise(c: char) -> bool {
    c.is_whitespace() || c.is_alphabetic() || SYMBOLS.iter().any(|&(s, _)| s == c)
}

/// `text` without the noise at its ends, which is added to `around`, each
/// end as a word of its own (an amount without any allocates nothing).
fn trim_noise<'t>(text: &'t str, around: &mut String) -> &'t str {
    let rest = text.trim_start_matches(noise);
    let inner = rest.trim_end_matches(noise);
    for end in [&text[..text.len() - rest.len()], &rest[inner.len()..]] {
        if !end.is_empty() {
            around.push_str(end);
            around.push(' ');
        }
    }
    inner
}

/// The currencies named by what stood around an amount: those every code
/// (an ISO 4217 code, in capitals or small letters) and symbol there
/// names; `None` if none names any. `Err` if they name no currency in
/// common (`3 JPY USD`).
fn currencies_named(around: &str) -> Result<Option<Vec<&'static str>>, ()> {
    let codes = around
        .split(|c: char| !c.is_alphabetic())
        .filter_map(|word| {
            let upper = word.to_ascii_uppercase();
            let cased = word == upper || word == word.to_ascii_lowercase();
            let at = ISO_4217
                .binary_search(&upper.as_str())
                .ok()
                .filter(|_| cased)?;
            Some(std::slice::from_ref(&ISO_4217[at]))
        });
    let symbols = around.chars().filter_map(|c| {
        let (_, named) = SYMBOLS.iter().find(|&&(s, _)| s == c)?;
        Some(*named).filter(|named| !named.is_empty())
    });
    let mut common: Option<Vec<&'static str>> = None;
    for named in codes.chain(symbols) {
        let common = common.get_or_insert_with(|| named.to_vec());
        common.retain(|code| named.contains(code));
        if common.is_empty() {
            return Err(());
        }
    }
    Ok(common)
}

impl BankAmount {
    /// Reads `text` with decimal mark `mark`: `None` if it is not an amount.
    fn parse(text: &str, mark: char) -> Option<BankAmount> {
        let mut around = String::new();
        let mut rest = trim_noise(text, &mut around);
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
            rest = trim_noise(rest, &mut around);
        }
        if signs > 1 {
            return None;
        }
        let written = currencies_named(&around).ok()?.map(|codes| WrittenIn {
            text: text.trim().to_owned(),
            codes,
        });
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
            written,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn amount(text: &str, mark: char) -> Option<(bool, String)> {
        BankAmount::parse(text, mark).map(|a| (a.negative, a.digits))
    }

    fn currencies(text: &str) -> Option<Option<Vec<&'static str>>> {
        BankAmount::parse(text, '.').map(|a| a.written.map(|w| w.codes))
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

    /// ISO codes (in capitals or small letters) and symbols name the
    /// currencies they may be, wherever they stand, and together those
    /// they have in common; other words name none; codes and symbols with
    /// no currency in common are not an amount.
    #[test]
    fn the_currencies_an_amount_is_written_in() {
        let named = |text: &str, codes: Option<&[&str]>| {
            assert_eq!(currencies(text), Some(codes.map(<[_]>::to_vec)), "{text}");
        };
        named("3 JPY", Some(&["JPY"]));
        named("USD 1,250.50", Some(&["USD"]));
        named("5 eur", Some(&["EUR"]));
        named("(€12.00)", Some(&["EUR"]));
        named("£ 5 GBP", Some(&["GBP"]));
        named(
            "£5",
            Some(&["GBP", "EGP", "FKP", "GIP", "LBP", "SHP", "SSP", "SYP"]),
        );
        named("¥300", Some(&["JPY", "CNY"]));
        named("¥300 CNY", Some(&["CNY"]));
        named("12.00- CHF", Some(&["CHF"]));
        for none in [
            "12.00",
            "1 250.50 kr",
            "3 Kč",
            "50.00 DR",
            "3 dollars",
            "5 Eur",
            "5 EURO",
        ] {
            named(none, None);
        }
        named("USD 5.00 DEB", Some(&["USD"]));
        for no in ["3 JPY USD", "€3 USD", "£3 €", "¥3 $"] {
            assert_eq!(currencies(no), None, "{no}");
        }
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

    proptest::proptest! {
        /// The compact counts answer as a map of every key does, also for
        /// keys that share their shard, their stored bits, or both.
        #[test]
        fn occurrences_count_as_a_map_does(
            keys in proptest::collection::vec((0u128..3, 0u128..3, 0u128..5), 0..300),
        ) {
            let mut seen = Occurrences::default();
            let mut model: std::collections::HashMap<u128, u32> = Default::default();
            for (shard, high, low) in keys {
                let key = (shard << 112) | (high << 64) | low;
                let n = model.entry(key).or_insert(0);
                *n += 1;
                proptest::prop_assert_eq!(seen.count(key), *n);
            }
        }
    }

    #[test]
    fn multi_line_text_becomes_one_line() {
        assert_eq!(one_line("a\r\nb\tc \n"), "a b c");
    }
}
