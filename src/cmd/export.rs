//! `ledger export`: the journal for other tools (SPEC 14) — its own lines,
//! a ledger-cli/hledger journal, or a beancount file.
//!
//! Every money movement ([`Change::effects`]) becomes a transaction on its
//! day: between the account and the outside world's equity account, or
//! between the two accounts of a transfer. Names are mapped one-to-one
//! ([`beancount_account`]); the README documents the mapping.

use std::collections::BTreeMap;
use std::io::{self, Write};

use rustc_hash::FxHashMap;

use crate::cli::{ExportArgs, ExportFormat};
use crate::cmd::{Context, Load, ReplayFrom, replay, replay_sized, state_at};
use crate::domain::State;
use crate::error::Error;
use crate::event::{Change, Event};
use crate::journal::JournalError;
use crate::money::Amount;
use crate::time::Day;

/// The commodity of accounts without a currency.
pub const PLAIN_UNIT: &str = "PLAIN-UNIT";

/// Runs an export.
pub fn run(ctx: &Context, args: &ExportArgs) -> Result<(), Error> {
    let mut out = io::BufWriter::with_capacity(1 << 16, io::stdout().lock());
    match args.to {
        ExportFormat::Jsonl => {
            if args.since.is_some() || args.until.is_some() || !args.tags.is_empty() {
                return Err(Error::Usage(
                    "--to jsonl copies the whole journal (its hash chain needs every line): --since, --until and --tag do not apply".into(),
                ));
            }
            jsonl(ctx, &mut out)?;
        }
        ExportFormat::Ledger | ExportFormat::Beancount => books(ctx, args, &mut out)?,
    }
    Ok(out.flush()?)
}

/// The journal's exact lines: the header, then each event of the valid
/// journal (a torn tail left out, with the usual warning). The header is
/// read from the journal the replay opened (a database's connection is
/// not opened twice).
fn jsonl(ctx: &Context, out: &mut impl Write) -> Result<(), Error> {
    let header = std::cell::RefCell::new(None);
    let mut header_written = false;
    replay_sized(
        &ctx.path,
        ReplayFrom::Start,
        |journal, _| *header.borrow_mut() = Some(journal.header_line()),
        |_, entry| {
            if !header_written {
                out.write_all(&header_line(&header)?)?;
                header_written = true;
            }
            out.write_all(entry.line)?;
            Ok(out.write_all(b"\n")?)
        },
    )?;
    if !header_written {
        // A journal with a header and no event yet: the header alone (a
        // torn header is no line of the journal).
        out.write_all(&header_line(&header)?)?;
    }
    Ok(())
}

/// The journal's header line as the replay read it, until it is written.
type Header = std::cell::RefCell<Option<Result<Option<Vec<u8>>, JournalError>>>;

/// The journal's first line, with its `\n` (nothing for a journal without
/// one).
fn header_line(header: &Header) -> Result<Vec<u8>, Error> {
    match header.borrow_mut().take() {
        Some(line) => Ok(line?.unwrap_or_default()),
        None => Ok(Vec::new()),
    }
}

/// A ledger-cli/hledger journal or a beancount file.
fn books(ctx: &Context, args: &ExportArgs, out: &mut impl Write) -> Result<(), Error> {
    // The accounts and commodities are declared before their first use
    // (ledger-cli reads in order): they come from the state at the end,
    // cheaply from the read model; events after that state (appended in the
    // meantime) are left out, so nothing undeclared is used.
    let last = state_at(&ctx.path, None, Load::All)?;
    let beancount = args.to == ExportFormat::Beancount;
    let mut names = Names::of(&last, beancount);
    names.preamble(out, &last, ctx)?;
    // Beancount needs each account opened on or before its first posting,
    // which a backdated event may put before its creation: the earliest
    // day of each is noted, and the `open`s written at the end (beancount
    // does not care where they are).
    let mut first_day: BTreeMap<String, Day> = BTreeMap::new();
    // Events are rendered into one buffer, handed to `out` in large pieces.
    let mut buf = Vec::with_capacity(FLUSH_AT + (1 << 12));
    replay(&ctx.path, ReplayFrom::Start, |state, entry| {
        let event = &entry.event;
        let selected = event.seq <= last.seq()
            && args.since.is_none_or(|b| b.admits_from(event, ctx.zone()))
            && args.until.is_none_or(|b| b.admits_to(event, ctx.zone()))
            && args.tags.iter().all(|t| t.matches(event));
        if !selected {
            return Ok(());
        }
        let day = event.day(ctx.zone());
        if beancount {
            for (account, _) in event.change.effects().into_iter().flatten() {
                match first_day.get_mut(account) {
                    Some(first) => *first = (*first).min(day),
                    None => {
                        first_day.insert(account.to_owned(), day);
                    }
                }
            }
        }
        names.event(&mut buf, state, event, day);
        if buf.len() >= FLUSH_AT {
            out.write_all(&buf)?;
            buf.clear();
        }
        Ok(())
    })?;
    out.write_all(&buf)?;
    if beancount {
        names.opens(out, &first_day)?;
    }
    Ok(())
}

/// How much rendered text `books` gathers before writing it out.
const FLUSH_AT: usize = 1 << 18;

/// How accounts and commodities are called in the target format.
struct Names {
    beancount: bool,
    outside: &'static str,
    /// Each account's name in the target format, made on first use.
    accounts: FxHashMap<Box<str>, Box<str>>,
    /// Each unit's commodity (by its index in [`State::units`]), made on
    /// first use.
    commodities: Vec<Option<Box<str>>>,
    /// Room for an event's description, reused.
    described: String,
}

impl Names {
    fn of(_state: &State, beancount: bool) -> Names {
        Names {
            beancount,
            outside: if beancount {
                "Equity:Outside"
            } else {
                "equity:outside"
            },
            accounts: FxHashMap::default(),
            commodities: Vec::new(),
            described: String::new(),
        }
    }

    fn account(&self, name: &str) -> String {
        if self.beancount {
            beancount_account(name)
        } else {
            format!("assets:{name}")
        }
    }

    fn commodity(&self, currency: Option<&str>) -> String {
        match (currency, self.beancount) {
            (None, true) => PLAIN_UNIT.to_owned(),
            (None, false) => format!("\"{PLAIN_UNIT}\""),
            (Some(code), true) => beancount_currency(code),
            // ledger-cli and hledger take a bare symbol of letters only.
            (Some(code), false) if code.bytes().all(|b| b.is_ascii_alphabetic()) => code.to_owned(),
            (Some(code), false) => format!("\"{code}\""),
        }
    }

    /// Appends `name` in the target format (cached: the mapping is a pure
    /// function of the name).
    fn push_account(&mut self, buf: &mut Vec<u8>, name: &str) {
        if let Some(mapped) = self.accounts.get(name) {
            buf.extend_from_slice(mapped.as_bytes());
            return;
        }
        let mapped = self.account(name);
        buf.extend_from_slice(mapped.as_bytes());
        self.accounts.insert(name.into(), mapped.into());
    }

    /// Appends one posting line: `account  amount commodity`, the amount
    /// with the decimals of `account` in `state` (the account of the outside
    /// world's side is `outside`).
    fn push_posting(
        &mut self,
        buf: &mut Vec<u8>,
        state: &State,
        (account, amount, is_ours): (&str, Amount, bool),
    ) {
        buf.extend_from_slice(if self.beancount { b"  " } else { b"    " });
        if is_ours {
            self.push_account(buf, account);
        } else {
            buf.extend_from_slice(self.outside.as_bytes());
        }
        buf.extend_from_slice(b"  ");
        match state.account(account) {
            Some(a) => {
                let unit = state.unit_of(a);
                amount.display(unit.decimals).write_to(buf);
                buf.push(b' ');
                let index = a.unit as usize;
                if self.commodities.len() <= index {
                    self.commodities.resize(index + 1, None);
                }
                match &self.commodities[index] {
                    Some(c) => buf.extend_from_slice(c.as_bytes()),
                    None => {
                        let c = self.commodity(unit.currency.as_deref());
                        buf.extend_from_slice(c.as_bytes());
                        self.commodities[index] = Some(c.into());
                    }
                }
            }
            None => {
                amount.display(0).write_to(buf);
                buf.push(b' ');
                buf.extend_from_slice(self.commodity(None).as_bytes());
            }
        }
        buf.push(b'\n');
    }

    /// What comes before the transactions: a comment, and for ledger-cli
    /// and hledger the declarations their strict modes require.
    fn preamble(&self, out: &mut impl Write, state: &State, ctx: &Context) -> Result<(), Error> {
        let tool = if self.beancount {
            "beancount"
        } else {
            "ledger-cli and hledger"
        };
        writeln!(
            out,
            "; exported by ledger {} from {} for {tool}; days in {}",
            env!("CARGO_PKG_VERSION"),
            ctx.path.display(),
            ctx.zone().name()
        )?;
        if self.beancount {
            writeln!(out, "option \"title\" \"ledger export\"")?;
            return Ok(writeln!(out)?);
        }
        // Each commodity's display precision: the most decimals among its
        // accounts, so that no tool rounds a balance.
        let mut commodities: BTreeMap<String, u8> = BTreeMap::new();
        for unit in state.units() {
            let d = commodities
                .entry(self.commodity(unit.currency.as_deref()))
                .or_insert(0);
            *d = (*d).max(unit.decimals);
        }
        for (commodity, decimals) in &commodities {
            // The format says `.` is the decimal mark, which hledger would
            // otherwise guess from the first amount (`1.000` is ambiguous).
            // Without decimals there is no mark to mistake (and no
            // format that both tools read: `1000.` or `1,000`).
            match decimals {
                0 => writeln!(out, "commodity {commodity}")?,
                d => writeln!(
                    out,
                    "commodity {commodity}\n    format 1,000.{} {commodity}",
                    "0".repeat(usize::from(*d))
                )?,
            }
        }
        for tag in ["Seq", "Id", "Memo", "Reverses", "Tags"] {
            writeln!(out, "tag {tag}")?;
        }
        writeln!(out, "account {}", self.outside)?;
        // In name order: the state's own order is no order at all.
        let mut accounts: Vec<&str> = state.accounts().map(|(name, _)| name).collect();
        accounts.sort_unstable();
        for name in accounts {
            writeln!(out, "account {}", self.account(name))?;
        }
        Ok(writeln!(out)?)
    }

    /// Appends one event: a transaction if it moves money, else a comment.
    fn event(&mut self, buf: &mut Vec<u8>, state: &State, event: &Event<'_>, day: Day) {
        let day = day.text();
        let postings = postings(&event.change);
        if postings.iter().all(Option::is_none) {
            buf.extend_from_slice(b"; ");
            buf.extend_from_slice(&day);
            buf.extend_from_slice(b" seq ");
            push_u64(buf, event.seq);
            buf.extend_from_slice(b": ");
            self.described.clear();
            crate::output::describe_into(&mut self.described, event);
            buf.extend_from_slice(self.described.as_bytes());
            buf.extend_from_slice(b"\n\n");
            return;
        }
        let title = match event.memo.as_deref() {
            Some(memo) => memo,
            None => {
                self.described.clear();
                crate::output::describe_into(&mut self.described, event);
                &self.described
            }
        };
        buf.extend_from_slice(&day);
        if self.beancount {
            buf.extend_from_slice(b" * ");
            push_quoted(buf, title);
            buf.extend_from_slice(b"\n  seq: ");
            push_u64(buf, event.seq);
            buf.push(b'\n');
            if let Some(id) = &event.id {
                buf.extend_from_slice(b"  id: ");
                push_quoted(buf, id);
                buf.push(b'\n');
            }
            if let Some(memo) = &event.memo {
                buf.extend_from_slice(b"  memo: ");
                push_quoted(buf, memo);
                buf.push(b'\n');
            }
            if let Some(seq) = event.reverses {
                buf.extend_from_slice(b"  reverses: ");
                push_u64(buf, seq);
                buf.push(b'\n');
            }
            for (key, value) in &event.tags {
                buf.extend_from_slice(b"  ");
                buf.extend_from_slice(beancount_tag_key(key).as_bytes());
                buf.extend_from_slice(b": ");
                push_quoted(buf, value);
                buf.push(b'\n');
            }
        } else {
            buf.extend_from_slice(b" * (");
            push_u64(buf, event.seq);
            buf.extend_from_slice(b") ");
            // `;` would start a comment in the description: the memo is
            // kept exactly in its metadata.
            buf.extend(title.bytes().map(|b| if b == b';' { b',' } else { b }));
            buf.extend_from_slice(b"\n    ; Seq: ");
            push_u64(buf, event.seq);
            buf.push(b'\n');
            if let Some(id) = &event.id {
                buf.extend_from_slice(b"    ; Id: ");
                buf.extend_from_slice(id.as_bytes());
                buf.push(b'\n');
            }
            if let Some(memo) = &event.memo {
                buf.extend_from_slice(b"    ; Memo: ");
                buf.extend_from_slice(memo.as_bytes());
                buf.push(b'\n');
            }
            if let Some(seq) = event.reverses {
                buf.extend_from_slice(b"    ; Reverses: ");
                push_u64(buf, seq);
                buf.push(b'\n');
            }
            if !event.tags.is_empty() {
                let tags: BTreeMap<&str, &str> = event
                    .tags
                    .iter()
                    .map(|(k, v)| (k.as_ref(), v.as_ref()))
                    .collect();
                buf.extend_from_slice(b"    ; Tags: ");
                buf.extend_from_slice(serde_json::to_string(&tags).unwrap_or_default().as_bytes());
                buf.push(b'\n');
            }
        }
        for posting in postings.into_iter().flatten() {
            self.push_posting(buf, state, posting);
        }
        buf.push(b'\n');
    }

    /// Beancount's `open` of each account on the earliest day it is used.
    fn opens(&self, out: &mut impl Write, first_day: &BTreeMap<String, Day>) -> Result<(), Error> {
        let Some(earliest) = first_day.values().min() else {
            return Ok(());
        };
        let text = |d: &Day| String::from_utf8_lossy(&d.text()).into_owned();
        writeln!(out, "{} open {}", text(earliest), self.outside)?;
        for (account, day) in first_day {
            writeln!(out, "{} open {}", text(day), self.account(account))?;
        }
        Ok(())
    }
}

/// The postings of a change: each account with its signed amount, and
/// whether it is one of ours (else the outside world's side of it).
fn postings<'c>(change: &'c Change<'_>) -> [Option<(&'c str, Amount, bool)>; 2] {
    let ours = |(account, amount): (&'c str, Amount)| (account, amount, true);
    match change.effects() {
        [Some((account, amount)), None] | [None, Some((account, amount))] => [
            Some((account, amount, true)),
            Some((account, Amount(amount.0.saturating_neg()), false)),
        ],
        [first, second] => [first.map(ours), second.map(ours)],
    }
}

/// Appends the decimal digits of `n`.
fn push_u64(buf: &mut Vec<u8>, n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    let mut n = n;
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    buf.extend_from_slice(&digits[i..]);
}

/// Appends `text` as a beancount string: in quotes, each `\` and `"` escaped by a `\`.
fn push_quoted(buf: &mut Vec<u8>, text: &str) {
    buf.push(b'"');
    if !text.bytes().any(|b| b == b'\\' || b == b'"') {
        // Most texts: nothing to escape.
        buf.extend_from_slice(text.as_bytes());
        buf.push(b'"');
        return;
    }
    for b in text.bytes() {
        match b {
            b'\\' => buf.extend_from_slice(b"\\\\"),
            b'"' => buf.extend_from_slice(b"\\\""),
            b => buf.push(b),
        }
    }
    buf.push(b'"');
}

/// A tag key as a beancount metadata key (`[a-z][a-zA-Z0-9_-]*`): `tag-`
/// and the key, with `-` doubled and `.` written `-d` (one-to-one).
fn beancount_tag_key(key: &str) -> String {
    format!("tag-{}", key.replace('-', "--").replace('.', "-d"))
}

/// A currency code as a beancount currency (2-24 characters, starting with
/// a capital letter): kept if it is one, else `C-` and the code (our codes
/// never hold `-`, so the two kinds never meet).
pub fn beancount_currency(code: &str) -> String {
    let fits = code.len() >= 2 && code.as_bytes()[0].is_ascii_uppercase();
    if fits {
        code.to_owned()
    } else {
        format!("C-{code}")
    }
}

/// Our account name as a beancount account under `Assets`, one-to-one.
///
/// Each `:`-separated part becomes a component (which must start with a
/// capital letter or a digit, then letters, digits and `-`): a first
/// lowercase letter is capitalised (`cust:alice` is `Assets:Cust:Alice`); a
/// part that starts otherwise (a capital, `0`, a mark, or nothing) gets a
/// `0` in front, unless it starts with a digit 1-9. `-` is written `--`,
/// `_` `-u`, `.` `-d`, `@` `-a`. Reading it back: a component starting
/// with `0` is `0` and the rest as is; one starting with a capital is that
/// letter in lowercase; then the two-character escapes.
pub fn beancount_account(name: &str) -> String {
    let mut out = String::from("Assets");
    for part in name.split(':') {
        out.push(':');
        let mut chars = part.chars();
        match chars.clone().next() {
            Some(c) if c.is_ascii_lowercase() => {
                out.push(c.to_ascii_uppercase());
                chars.next();
            }
            Some(c) if ('1'..='9').contains(&c) => {}
            _ => out.push('0'),
        }
        for c in chars {
            match c {
                '-' => out.push_str("--"),
                '_' => out.push_str("-u"),
                '.' => out.push_str("-d"),
                '@' => out.push_str("-a"),
                c => out.push(c),
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The inverse the doc comment of [`beancount_account`] describes.
    fn decode(beancount: &str) -> Option<String> {
        let parts: Vec<String> = beancount
            .strip_prefix("Assets:")?
            .split(':')
            .map(|component| {
                let mut text = String::new();
                let mut chars = component.chars();
                match chars.next()? {
                    '0' => {}
                    c if c.is_ascii_uppercase() => text.push(c.to_ascii_lowercase()),
                    c => text.push(c),
                }
                while let Some(c) = chars.next() {
                    text.push(match c {
                        '-' => match chars.next()? {
                            '-' => '-',
                            'u' => '_',
                            'd' => '.',
                            'a' => '@',
                            _ => return None,
                        },
                        c => c,
                    });
                }
                Some(text)
            })
            .collect::<Option<_>>()?;
        Some(parts.join(":"))
    }

    fn valid_beancount(account: &str) -> bool {
        account.split(':').all(|c| {
            let mut chars = c.chars();
            chars
                .next()
                .is_some_and(|f| f.is_ascii_uppercase() || f.is_ascii_digit())
                && chars.all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
    }

    #[test]
    fn names_read_well() {
        assert_eq!(beancount_account("cust:alice"), "Assets:Cust:Alice");
        assert_eq!(beancount_account("acct1"), "Assets:Acct1");
        assert_eq!(beancount_account("Bob"), "Assets:0Bob");
        assert_eq!(beancount_account("2026"), "Assets:2026");
        assert_eq!(beancount_account("0x"), "Assets:00x");
        assert_eq!(beancount_account("a::b:"), "Assets:A:0:B:0");
        assert_eq!(beancount_account("a.b_c@d-e"), "Assets:A-db-uc-ad--e");
        assert_eq!(beancount_currency("EUR"), "EUR");
        assert_eq!(beancount_currency("E"), "C-E");
        assert_eq!(beancount_currency("1X"), "C-1X");
        assert_eq!(beancount_tag_key("a.b-c"), "tag-a-db--c");
    }

    /// A beancount string, the plain way: what `push_quoted` must write.
    fn quoted(text: &str) -> String {
        format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
    }

    proptest! {
        #[test]
        fn quoting_in_place_matches_the_plain_way(text in "[a\"\\\\é ]{0,20}|.{0,40}") {
            let mut buf = Vec::new();
            push_quoted(&mut buf, &text);
            prop_assert_eq!(String::from_utf8(buf).ok(), Some(quoted(&text)));
        }

        #[test]
        fn digits_in_place_match_display(n in any::<u64>()) {
            let mut buf = Vec::new();
            push_u64(&mut buf, n);
            prop_assert_eq!(String::from_utf8(buf).ok(), Some(n.to_string()));
        }

        #[test]
        fn the_account_mapping_is_one_to_one(name in "[A-Za-z0-9][A-Za-z0-9_.:@-]{0,63}") {
            let mapped = beancount_account(&name);
            prop_assert!(valid_beancount(&mapped), "{mapped}");
            prop_assert_eq!(decode(&mapped), Some(name));
        }
    }
}
