//! The journal's line format (SPEC 2): the header, event lines with their
//! fixed key order, and the SHA-256 chain.
//!
//! Encoding is hand-written so the key order is exactly the contract's.
//! Decoding borrows from the line; a decoded line is accepted only if
//! encoding it again gives back the same bytes, so every valid line has one
//! spelling and no hand edit (spacing, key order, `"50"` for `"50.00"`)
//! passes unnoticed.

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;

use crate::event::{Change, Event, Tags};
use crate::money::Decimal;
use crate::time::{At, Day};

/// The longest line a journal may hold (without its `\n`): longer than any
/// line ledger writes (a few KiB at most), so a longer one is corruption,
/// not a torn write. Every reader bounds what it reads by it, and `batch`
/// refuses an input line longer than it.
pub const MAX_LINE: usize = 64 * 1024;

/// The first bytes of every journal: how a torn header is recognised.
pub const HEADER_PREFIX: &[u8] = br#"{"format":"ledger-journal""#;

/// The SHA-256 of a line's bytes (without its `\n`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct LineHash(pub [u8; 32]);

impl LineHash {
    /// Hashes the exact bytes of a line (SHA-256).
    ///
    /// The compression function is called on the line's blocks in place
    /// and on one padded last block (two when the tail leaves no room for
    /// the length), without the streaming hasher's buffering: a replay
    /// hashes millions of short lines, and that bookkeeping was an eighth
    /// of the hashing.
    pub fn of(line: &[u8]) -> LineHash {
        const INITIAL: [u32; 8] = [
            0x6a09_e667,
            0xbb67_ae85,
            0x3c6e_f372,
            0xa54f_f53a,
            0x510e_527f,
            0x9b05_688c,
            0x1f83_d9ab,
            0x5be0_cd19,
        ];
        let mut state = INITIAL;
        let (blocks, tail) = line.as_chunks::<64>();
        sha2::block_api::compress256(&mut state, blocks);
        let mut last = [[0u8; 64]; 2];
        let count = if tail.len() < 56 { 1 } else { 2 };
        let padded = &mut last.as_flattened_mut()[..count * 64];
        padded[..tail.len()].copy_from_slice(tail);
        padded[tail.len()] = 0x80;
        let bits = (line.len() as u64).wrapping_mul(8).to_be_bytes();
        padded[count * 64 - 8..].copy_from_slice(&bits);
        sha2::block_api::compress256(&mut state, &last[..count]);
        let mut hash = [0u8; 32];
        for (out, word) in hash.chunks_exact_mut(4).zip(state) {
            out.copy_from_slice(&word.to_be_bytes());
        }
        LineHash(hash)
    }

    /// Reads 64 lowercase hex digits.
    pub fn from_hex(text: &str) -> Option<LineHash> {
        LineHash::from_hex_bytes(text.as_bytes())
    }

    /// Reads 64 lowercase hex digits from bytes (no UTF-8 check needed).
    ///
    /// Written as plain arithmetic over fixed arrays, with no table and no
    /// early exit, so that the compiler vectorizes it: it runs for every
    /// line a replay reads.
    pub fn from_hex_bytes(b: &[u8]) -> Option<LineHash> {
        let b: &[u8; 64] = b.try_into().ok()?;
        let mut nibbles = [0u8; 64];
        let mut bad = 0u8;
        for (n, &c) in nibbles.iter_mut().zip(b) {
            let digit = c.wrapping_sub(b'0');
            let letter = c.wrapping_sub(b'a');
            bad |= u8::from(digit >= 10 && letter >= 6);
            *n = if digit < 10 {
                digit
            } else {
                letter.wrapping_add(10)
            };
        }
        if bad != 0 {
            return None;
        }
        let mut out = [0u8; 32];
        for (o, pair) in out.iter_mut().zip(nibbles.chunks_exact(2)) {
            *o = pair[0] << 4 | pair[1];
        }
        Some(LineHash(out))
    }

    /// The 64 lowercase hex digits (vectorizable, as above).
    pub fn hex(&self) -> [u8; 64] {
        let mut out = [0u8; 64];
        for (pair, byte) in out.chunks_exact_mut(2).zip(&self.0) {
            pair[0] = byte >> 4;
            pair[1] = byte & 15;
        }
        for n in &mut out {
            *n += if *n < 10 { b'0' } else { b'a' - 10 };
        }
        out
    }
}

impl fmt::Display for LineHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(std::str::from_utf8(&self.hex()).unwrap_or_default())
    }
}

impl fmt::Debug for LineHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Why a line is not a valid line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LineError {
    /// Not JSON, or JSON of the wrong shape.
    #[error("not a valid event line: {0}")]
    Syntax(String),
    /// A `type` this version does not know.
    #[error("unknown event type {0} (written by a newer ledger?)")]
    UnknownType(String),
    /// A field the type needs is absent or malformed.
    #[error("{0}")]
    Field(String),
    /// Valid content, but not spelled the way ledger writes it.
    #[error(
        "the line is not in canonical form (key order, spacing or escapes differ from what ledger writes)"
    )]
    NotCanonical,
    /// The header names another format or version.
    #[error("{0}")]
    Header(String),
}

/// The header line for a journal created at `created_at`.
pub fn header(created_at: At) -> String {
    format!(
        r#"{{"format":"ledger-journal","version":1,"hash":"sha256","created_at":"{created_at}"}}"#
    )
}

#[derive(Deserialize)]
struct RawHeader<'a> {
    format: &'a str,
    version: u64,
    hash: &'a str,
    created_at: &'a str,
}

/// Reads a header line and returns its `created_at`.
pub fn decode_header(line: &[u8]) -> Result<At, LineError> {
    let raw: RawHeader<'_> = serde_json::from_slice(line)
        .map_err(|e| LineError::Header(format!("not a ledger journal header ({e})")))?;
    if raw.format != "ledger-journal" {
        return Err(LineError::Header(format!(
            "not a ledger journal (format '{}')",
            raw.format
        )));
    }
    if raw.version != 1 {
        return Err(LineError::Header(format!(
            "unsupported journal version {} (this ledger reads version 1)",
            raw.version
        )));
    }
    if raw.hash != "sha256" {
        return Err(LineError::Header(format!(
            "unsupported hash '{}'",
            raw.hash
        )));
    }
    let at = At::parse_canonical(raw.created_at).ok_or_else(|| {
        LineError::Header(format!(
            "created_at '{}' is not a UTC timestamp",
            raw.created_at
        ))
    })?;
    if header(at).as_bytes() != line {
        return Err(LineError::NotCanonical);
    }
    Ok(at)
}

/// Appends the line form of `event` (without `\n`) to `out`. Hand-written
/// byte pushes, not `write!`: this runs once per line on every replay.
pub fn encode(event: &Event<'_>, prev: &LineHash, out: &mut Vec<u8>) {
    Encoder::default().encode(event, prev, out);
}

/// Encodes events one after another, formatting a time once for all the
/// events that share it (all the events of one append do).
#[derive(Debug, Default)]
pub struct Encoder {
    last_at: Option<(At, [u8; 27])>,
}

impl Encoder {
    /// [`encode`], for the next event of a run.
    pub fn encode(&mut self, event: &Event<'_>, prev: &LineHash, out: &mut Vec<u8>) {
        let at = match self.last_at {
            Some((at, text)) if at == event.at => text,
            _ => {
                let text = event.at.canonical();
                self.last_at = Some((event.at, text));
                text
            }
        };
        encode_at(event, &at, prev, out);
    }
}

fn encode_at(event: &Event<'_>, at: &[u8; 27], prev: &LineHash, out: &mut Vec<u8>) {
    out.extend_from_slice(br#"{"seq":"#);
    number(out, event.seq);
    out.extend_from_slice(br#","at":""#);
    out.extend_from_slice(at);
    out.extend_from_slice(br#"","type":""#);
    out.extend_from_slice(event.change.type_name().as_bytes());
    out.push(b'"');
    match &event.change {
        Change::AccountCreated {
            account,
            owner,
            currency,
            decimals,
        } => {
            string(out, "account", account);
            if let Some(owner) = owner {
                string(out, "owner", owner);
            }
            if let Some(currency) = currency {
                string(out, "currency", currency);
            }
            out.extend_from_slice(br#","decimals":"#);
            number(out, u64::from(*decimals));
        }
        Change::MoneyDeposited { account, amount } | Change::MoneyWithdrawn { account, amount } => {
            string(out, "account", account);
            amount_field(out, *amount);
        }
        Change::TransferCompleted { from, to, amount } => {
            string(out, "from", from);
            string(out, "to", to);
            amount_field(out, *amount);
        }
        Change::AccountClosed { account } => string(out, "account", account),
        Change::FundsHeld {
            account,
            amount,
            to,
            expires,
        } => {
            string(out, "account", account);
            amount_field(out, *amount);
            if let Some(to) = to {
                string(out, "to", to);
            }
            if let Some(expires) = expires {
                out.extend_from_slice(br#","expires":""#);
                out.extend_from_slice(&expires.canonical());
                out.push(b'"');
            }
        }
        Change::HoldCaptured {
            hold,
            account,
            to,
            amount,
        } => {
            out.extend_from_slice(br#","hold":"#);
            number(out, *hold);
            string(out, "account", account);
            if let Some(to) = to {
                string(out, "to", to);
            }
            amount_field(out, *amount);
        }
        Change::HoldReleased { hold, account } => {
            out.extend_from_slice(br#","hold":"#);
            number(out, *hold);
            string(out, "account", account);
        }
    }
    if let Some(date) = event.date {
        out.extend_from_slice(br#","date":""#);
        out.extend_from_slice(&date.text());
        out.push(b'"');
    }
    if let Some(seq) = event.reverses {
        out.extend_from_slice(br#","reverses":"#);
        number(out, seq);
    }
    if !event.tags.is_empty() {
        out.extend_from_slice(br#","tags":{"#);
        for (i, (key, value)) in event.tags.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            json_string(out, key);
            out.push(b':');
            json_string(out, value);
        }
        out.push(b'}');
    }
    if let Some(id) = &event.id {
        string(out, "id", id);
    }
    if let Some(memo) = &event.memo {
        string(out, "memo", memo);
    }
    if let Some(batch) = event.batch {
        out.extend_from_slice(br#","batch":"#);
        number(out, batch);
    }
    out.extend_from_slice(br#","prev":""#);
    out.extend_from_slice(&prev.hex());
    out.extend_from_slice(b"\"}");
}

/// The bytes after the 64 hex digits of `prev`: `"}`.
const PREV_TAIL_LEN: usize = 2;
/// `,"prev":"` + 64 hex digits + `"}`, the fixed end of every event line.
const PREV_SUFFIX_LEN: usize = r#","prev":""#.len() + 64 + PREV_TAIL_LEN;

/// The longest `,"batch":N` mark.
pub const MARK_MAX_LEN: usize = r#","batch":"#.len() + 20;

/// The `,"batch":N` mark of a multi-event append of `count` events, and
/// where it goes in an encoded first line of `len` bytes (without `\n`):
/// just before its `prev`, after every other field (SPEC 2).
pub fn batch_mark(count: usize, len: usize) -> (String, usize) {
    (
        format!(r#","batch":{count}"#),
        len.saturating_sub(PREV_SUFFIX_LEN),
    )
}

/// The seq an event line starts with (its first key), read without
/// decoding the rest: for finding a line by seq in a checked journal.
pub fn seq_of(line: &[u8]) -> Option<u64> {
    let digits = line.strip_prefix(br#"{"seq":"#)?;
    let n = digits.iter().take_while(|b| b.is_ascii_digit()).count();
    std::str::from_utf8(&digits[..n]).ok()?.parse().ok()
}

/// Writes `prev` into an encoded line (without `\n`).
pub fn set_prev(line: &mut [u8], prev: &LineHash) {
    if let Some(start) = line.len().checked_sub(PREV_TAIL_LEN + 64) {
        line[start..start + 64].copy_from_slice(&prev.hex());
    }
}

/// The `prev` of a line in canonical form, as its 64 hex digits.
pub fn prev_hex(line: &[u8]) -> &str {
    line.len()
        .checked_sub(PREV_TAIL_LEN + 64)
        .and_then(|i| std::str::from_utf8(&line[i..i + 64]).ok())
        .unwrap_or("")
}

/// A line with extra `"key":"value"` fields after its own, as JSON output
/// adds them to the stored event (SPEC 6); values are written as given
/// (money in canonical form needs no escaping).
pub fn with_fields(line: &[u8], fields: &[(&str, &str)], out: &mut Vec<u8>) {
    let Some(body) = line.strip_suffix(b"}") else {
        out.extend_from_slice(line);
        return;
    };
    out.extend_from_slice(body);
    for (key, value) in fields {
        string(out, key, value);
    }
    out.push(b'}');
}

fn number(out: &mut Vec<u8>, mut n: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

fn amount_field(out: &mut Vec<u8>, amount: Decimal) {
    out.extend_from_slice(br#","amount":""#);
    amount.write_to(out);
    out.push(b'"');
}

fn string(out: &mut Vec<u8>, key: &str, value: &str) {
    out.push(b',');
    out.push(b'"');
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(b"\":");
    json_string(out, value);
}

/// The bytes a line holds for the string `value` (an account's name, in
/// any field that names one): every line that names it holds these.
pub fn quoted(value: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len() + 2);
    json_string(&mut out, value);
    out
}

fn json_string(out: &mut Vec<u8>, value: &str) {
    if value.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.push(b'"');
        out.extend_from_slice(value.as_bytes());
        out.push(b'"');
    } else {
        // serde_json escapes exactly what JSON requires; a Vec writer cannot fail.
        let _ = serde_json::to_writer(&mut *out, value);
    }
}

#[derive(Deserialize)]
struct RawEvent<'a> {
    seq: u64,
    at: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    #[serde(borrow)]
    account: Option<Cow<'a, str>>,
    #[serde(borrow)]
    owner: Option<Cow<'a, str>>,
    #[serde(borrow)]
    currency: Option<Cow<'a, str>>,
    decimals: Option<u8>,
    #[serde(borrow)]
    from: Option<Cow<'a, str>>,
    #[serde(borrow)]
    to: Option<Cow<'a, str>>,
    amount: Option<&'a str>,
    hold: Option<u64>,
    expires: Option<&'a str>,
    date: Option<&'a str>,
    reverses: Option<u64>,
    #[serde(borrow)]
    tags: Option<std::collections::BTreeMap<Cow<'a, str>, Cow<'a, str>>>,
    #[serde(borrow)]
    id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    memo: Option<Cow<'a, str>>,
    batch: Option<u64>,
    prev: &'a str,
}

/// A decoded event line.
#[derive(Debug)]
pub struct Decoded<'a> {
    /// The event.
    pub event: Event<'a>,
    /// The hash of the previous line it claims.
    pub prev: LineHash,
}

/// Decodes an event line (without `\n`). `scratch` is reused between calls
/// for the canonical-form check.
///
/// Almost every line takes the fast path, which reads only the exact bytes
/// [`encode`] writes; anything else (escaped strings, or a line that is not
/// canonical at all) goes through serde and the re-encoding check, which
/// accepts exactly the same lines and words the errors.
pub fn decode<'a>(line: &'a [u8], scratch: &mut Vec<u8>) -> Result<Decoded<'a>, LineError> {
    match decode_canonical(line) {
        Some(decoded) => Ok(decoded),
        None => decode_general(line, scratch),
    }
}

/// The `id` of an event line (`None` for none), building no event. The
/// fields after `id` are few (`memo`, `batch`, `prev`), so a line in the
/// form [`encode`] writes is read from its end; any other line, or an id
/// with an escape, goes through [`decode`].
pub fn id_of<'a>(line: &'a [u8], scratch: &mut Vec<u8>) -> Result<Option<Cow<'a, str>>, LineError> {
    if let Some(id) = id_from_end(line) {
        return Ok(id.map(Cow::Borrowed));
    }
    Ok(decode(line, scratch)?.event.id)
}

/// [`id_of`] for a canonical line, read backwards: `None` if the line is
/// not as expected.
fn id_from_end(line: &[u8]) -> Option<Option<&str>> {
    let rest = line.strip_suffix(b"\"}")?;
    let rest = rest.get(..rest.len().checked_sub(64)?)?;
    let mut rest = rest.strip_suffix(br#","prev":""#)?;
    // `,"batch":N`
    let digits = rest.iter().rev().take_while(|b| b.is_ascii_digit()).count();
    if digits > 0 {
        rest = rest[..rest.len() - digits].strip_suffix(br#","batch":"#)?;
    }
    // `,"memo":"…"`, then `,"id":"…"`; a value of another key ends the search.
    for key in [&br#","memo":"#[..], br#","id":"#] {
        let Some((before, value)) = last_string(rest) else {
            return Some(None);
        };
        match before.strip_suffix(key) {
            Some(_) if key == br#","id":"# => {
                // An escape in the id: decoding reads it.
                if value.contains(&b'\\') {
                    return None;
                }
                return std::str::from_utf8(value).ok().map(Some);
            }
            Some(before) => rest = before,
            None => {}
        }
    }
    Some(None)
}

/// The JSON string `rest` ends with: what comes before it and its text
/// (still escaped). Its opening quote is the last `"` before the closing
/// one with an even number of backslashes before it.
fn last_string(rest: &[u8]) -> Option<(&[u8], &[u8])> {
    let inner = rest.strip_suffix(b"\"")?;
    let mut end = inner.len();
    loop {
        let open = memchr::memrchr(b'"', &inner[..end])?;
        let slashes = inner[..open]
            .iter()
            .rev()
            .take_while(|&&b| b == b'\\')
            .count();
        if slashes % 2 == 0 {
            return Some((&inner[..open], &inner[open + 1..]));
        }
        end = open;
    }
}

/// Reads a line in exactly the form [`encode`] writes, or gives up.
fn decode_canonical(line: &[u8]) -> Option<Decoded<'_>> {
    Spans::parse(line)?.decoded(std::str::from_utf8(line).ok()?)
}

/// Where a string field's text lies in its line.
type Span = (u32, u32);

/// A canonical line read down to numbers and positions, without borrowing
/// it: the reader thread parses lines into these while the scanner checks
/// earlier ones, and [`Spans::decoded`] then borrows the text for free.
#[derive(Debug, Clone)]
pub struct Spans {
    seq: u64,
    at: At,
    change: ChangeSpans,
    date: Option<Day>,
    reverses: Option<u64>,
    tags: Vec<(Span, Span)>,
    id: Option<Span>,
    memo: Option<Span>,
    batch: Option<u64>,
    prev: LineHash,
}

#[derive(Debug, Clone)]
enum ChangeSpans {
    Created {
        account: Span,
        owner: Option<Span>,
        currency: Option<Span>,
        decimals: u8,
    },
    Deposited {
        account: Span,
        amount: Decimal,
    },
    Withdrawn {
        account: Span,
        amount: Decimal,
    },
    Transferred {
        from: Span,
        to: Span,
        amount: Decimal,
    },
    Closed {
        account: Span,
    },
    Held {
        account: Span,
        amount: Decimal,
        to: Option<Span>,
        expires: Option<At>,
    },
    Captured {
        hold: u64,
        account: Span,
        to: Option<Span>,
        amount: Decimal,
    },
    Released {
        hold: u64,
        account: Span,
    },
}

/// The last `at` read, for the next line: the lines of one append share
/// their time, so most lines of a batch-built journal need not parse it.
#[derive(Debug, Clone, Default)]
pub struct LastAt(Option<([u8; 27], At)>);

impl LastAt {
    fn parse(&mut self, text: &[u8]) -> Option<At> {
        match &self.0 {
            Some((last, at)) if last[..] == *text => Some(*at),
            _ => {
                let at = At::parse_canonical_bytes(text)?;
                self.0 = Some((text.try_into().ok()?, at));
                Some(at)
            }
        }
    }
}

impl Spans {
    /// The accounts the parsed `line` names (one, or a movement's two).
    pub fn accounts<'a>(&self, line: &'a str) -> [Option<&'a str>; 2] {
        let s = |(a, b): Span| line.get(a as usize..b as usize);
        match &self.change {
            ChangeSpans::Created { account, .. }
            | ChangeSpans::Deposited { account, .. }
            | ChangeSpans::Withdrawn { account, .. }
            | ChangeSpans::Closed { account }
            | ChangeSpans::Released { account, .. } => [s(*account), None],
            ChangeSpans::Transferred { from, to, .. } => [s(*from), s(*to)],
            ChangeSpans::Held { account, to, .. } | ChangeSpans::Captured { account, to, .. } => {
                [s(*account), to.and_then(s)]
            }
        }
    }

    /// Parses a line in exactly the form [`encode`] writes (its strings
    /// unescaped), or gives up. The caller checks that it is UTF-8.
    pub fn parse(line: &[u8]) -> Option<Spans> {
        Spans::parse_after(line, &mut LastAt::default())
    }

    /// [`Spans::parse`], for a line that follows the one `last` was read from.
    pub fn parse_after(line: &[u8], last: &mut LastAt) -> Option<Spans> {
        let mut c = Cursor { b: line, i: 0 };
        c.lit(br#"{"seq":"#)?;
        let seq = c.number()?;
        c.lit(br#","at":""#)?;
        let at = last.parse(c.take(27)?)?;
        c.lit(br#"","type":""#)?;
        let kind = c.until_quote()?;
        let change = match kind {
            b"AccountCreated" => ChangeSpans::Created {
                account: c.field(br#","account":"#)?,
                owner: c.optional(br#","owner":"#)?,
                currency: c.optional(br#","currency":"#)?,
                decimals: {
                    c.lit(br#","decimals":"#)?;
                    u8::try_from(c.number()?).ok()?
                },
            },
            b"MoneyDeposited" => ChangeSpans::Deposited {
                account: c.field(br#","account":"#)?,
                amount: c.amount()?,
            },
            b"MoneyWithdrawn" => ChangeSpans::Withdrawn {
                account: c.field(br#","account":"#)?,
                amount: c.amount()?,
            },
            b"TransferCompleted" => ChangeSpans::Transferred {
                from: c.field(br#","from":"#)?,
                to: c.field(br#","to":"#)?,
                amount: c.amount()?,
            },
            b"AccountClosed" => ChangeSpans::Closed {
                account: c.field(br#","account":"#)?,
            },
            b"FundsHeld" => ChangeSpans::Held {
                account: c.field(br#","account":"#)?,
                amount: c.amount()?,
                to: c.optional(br#","to":"#)?,
                expires: if c.peek(br#","expires":""#) {
                    c.lit(br#","expires":""#)?;
                    let at = At::parse_canonical_bytes(c.take(27)?)?;
                    c.lit(b"\"")?;
                    Some(at)
                } else {
                    None
                },
            },
            b"HoldCaptured" => ChangeSpans::Captured {
                hold: c.hold()?,
                account: c.field(br#","account":"#)?,
                to: c.optional(br#","to":"#)?,
                amount: c.amount()?,
            },
            b"HoldReleased" => ChangeSpans::Released {
                hold: c.hold()?,
                account: c.field(br#","account":"#)?,
            },
            _ => return None,
        };
        let date = if c.peek(br#","date":""#) {
            c.lit(br#","date":""#)?;
            let day = Day::parse_bytes(c.take(10)?)?;
            c.lit(b"\"")?;
            Some(day)
        } else {
            None
        };
        let reverses = if c.peek(br#","reverses":"#) {
            c.lit(br#","reverses":"#)?;
            Some(c.number()?)
        } else {
            None
        };
        let tags = if c.peek(br#","tags":{"#) {
            c.lit(br#","tags":{"#)?;
            c.tags()?
        } else {
            Vec::new()
        };
        let id = c.optional(br#","id":"#)?;
        let memo = c.optional(br#","memo":"#)?;
        let batch = if c.peek(br#","batch":"#) {
            c.lit(br#","batch":"#)?;
            Some(c.number()?)
        } else {
            None
        };
        c.lit(br#","prev":""#)?;
        let prev = LineHash::from_hex_bytes(c.take(64)?)?;
        c.lit(b"\"}")?;
        (c.i == line.len()).then_some(Spans {
            seq,
            at,
            change,
            date,
            reverses,
            tags,
            id,
            memo,
            batch,
            prev,
        })
    }

    /// The decoded line, borrowing its strings from `line` (the same line,
    /// as text).
    #[inline(always)]
    pub fn decoded<'a>(&self, line: &'a str) -> Option<Decoded<'a>> {
        let s = |(a, b): Span| line.get(a as usize..b as usize).map(Cow::Borrowed);
        let opt = |span: Option<Span>| match span {
            Some(span) => s(span).map(Some),
            None => Some(None),
        };
        let change = match &self.change {
            ChangeSpans::Created {
                account,
                owner,
                currency,
                decimals,
            } => Change::AccountCreated {
                account: s(*account)?,
                owner: opt(*owner)?,
                currency: opt(*currency)?,
                decimals: *decimals,
            },
            ChangeSpans::Deposited { account, amount } => Change::MoneyDeposited {
                account: s(*account)?,
                amount: *amount,
            },
            ChangeSpans::Withdrawn { account, amount } => Change::MoneyWithdrawn {
                account: s(*account)?,
                amount: *amount,
            },
            ChangeSpans::Transferred { from, to, amount } => Change::TransferCompleted {
                from: s(*from)?,
                to: s(*to)?,
                amount: *amount,
            },
            ChangeSpans::Closed { account } => Change::AccountClosed {
                account: s(*account)?,
            },
            ChangeSpans::Held {
                account,
                amount,
                to,
                expires,
            } => Change::FundsHeld {
                account: s(*account)?,
                amount: *amount,
                to: opt(*to)?,
                expires: *expires,
            },
            ChangeSpans::Captured {
                hold,
                account,
                to,
                amount,
            } => Change::HoldCaptured {
                hold: *hold,
                account: s(*account)?,
                to: opt(*to)?,
                amount: *amount,
            },
            ChangeSpans::Released { hold, account } => Change::HoldReleased {
                hold: *hold,
                account: s(*account)?,
            },
        };
        Some(Decoded {
            event: Event {
                seq: self.seq,
                at: self.at,
                change,
                date: self.date,
                reverses: self.reverses,
                tags: if self.tags.is_empty() {
                    Vec::new()
                } else {
                    self.tags
                        .iter()
                        .map(|(k, v)| Some((s(*k)?, s(*v)?)))
                        .collect::<Option<Tags<'a>>>()?
                },
                id: opt(self.id)?,
                memo: opt(self.memo)?,
                batch: self.batch,
            },
            prev: self.prev,
        })
    }
}

/// A reader of the canonical line form; every method gives `None` on
/// anything [`encode`] would not have written.
struct Cursor<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Cursor<'a> {
    #[inline]
    // Literals are arrays, so each comparison is a few loads of known
    // width rather than a call to compare memory: a line has a dozen.
    fn peek<const N: usize>(&self, lit: &[u8; N]) -> bool {
        self.b
            .get(self.i..)
            .and_then(<[u8]>::first_chunk::<N>)
            .is_some_and(|b| b == lit)
    }

    fn lit<const N: usize>(&mut self, lit: &[u8; N]) -> Option<()> {
        self.peek(lit).then(|| self.i += N)
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let taken = self.b.get(self.i..self.i + n)?;
        self.i += n;
        Some(taken)
    }

    /// A JSON number as `encode` writes a u64: digits, no leading zero.
    fn number(&mut self) -> Option<u64> {
        let digits = self.b[self.i..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
        let text = self.take(digits)?;
        if text.is_empty() || (text[0] == b'0' && text.len() > 1) {
            return None;
        }
        text.iter().try_fold(0u64, |n, &d| {
            n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
        })
    }

    /// The bytes up to the next `"`, which is consumed.
    fn until_quote(&mut self) -> Option<&'a [u8]> {
        let n = memchr::memchr(b'"', &self.b[self.i..])?;
        let text = self.take(n)?;
        self.i += 1;
        Some(text)
    }

    /// A JSON string with nothing escaped (escapes take the general path).
    fn string(&mut self) -> Option<Span> {
        self.lit(b"\"")?;
        let start = self.i;
        let text = self.until_quote()?;
        if text.iter().any(|&b| b < 0x20 || b == b'\\') {
            return None;
        }
        Some((
            u32::try_from(start).ok()?,
            u32::try_from(start + text.len()).ok()?,
        ))
    }

    fn field<const N: usize>(&mut self, key: &[u8; N]) -> Option<Span> {
        self.lit(key)?;
        self.string()
    }

    /// `Some(None)` when the key is absent.
    fn optional<const N: usize>(&mut self, key: &[u8; N]) -> Option<Option<Span>> {
        if self.peek(key) {
            self.field(key).map(Some)
        } else {
            Some(None)
        }
    }

    /// `,"hold":N`.
    fn hold(&mut self) -> Option<u64> {
        self.lit(br#","hold":"#)?;
        self.number()
    }

    /// The pairs of a tags object after its `{`, through its `}`: at least
    /// one, keys in strictly increasing byte order, as `encode` writes them.
    fn tags(&mut self) -> Option<Vec<(Span, Span)>> {
        let mut tags: Vec<(Span, Span)> = Vec::new();
        loop {
            let key = self.string()?;
            if let Some(&(last, _)) = tags.last()
                && self.b[last.0 as usize..last.1 as usize]
                    >= self.b[key.0 as usize..key.1 as usize]
            {
                return None;
            }
            self.lit(b":")?;
            tags.push((key, self.string()?));
            if self.lit(b"}").is_some() {
                return Some(tags);
            }
            self.lit(b",")?;
        }
    }

    /// `,"amount":"…"` in canonical decimal form (no leading zeros).
    fn amount(&mut self) -> Option<Decimal> {
        self.lit(br#","amount":""#)?;
        let text = self.until_quote()?;
        if text.len() > 1 && text[0] == b'0' && text[1] != b'.' {
            return None;
        }
        Decimal::parse_positive_bytes(text).ok()
    }
}

/// serde's reading of a line, for the lines the fast path gives up on.
fn decode_general<'a>(line: &'a [u8], scratch: &mut Vec<u8>) -> Result<Decoded<'a>, LineError> {
    let raw: RawEvent<'a> =
        serde_json::from_slice(line).map_err(|e| LineError::Syntax(e.to_string()))?;
    let field = |name: &str| LineError::Field(format!("{} has no '{name}'", raw.kind));
    let amount = |text: Option<&str>| {
        let text = text.ok_or_else(|| field("amount"))?;
        Decimal::parse_positive(text).map_err(|e| LineError::Field(format!("invalid amount: {e}")))
    };
    let change = match raw.kind {
        "AccountCreated" => Change::AccountCreated {
            account: raw.account.ok_or_else(|| field("account"))?,
            owner: raw.owner,
            currency: raw.currency,
            decimals: raw.decimals.ok_or_else(|| field("decimals"))?,
        },
        "MoneyDeposited" => Change::MoneyDeposited {
            account: raw.account.ok_or_else(|| field("account"))?,
            amount: amount(raw.amount)?,
        },
        "MoneyWithdrawn" => Change::MoneyWithdrawn {
            account: raw.account.ok_or_else(|| field("account"))?,
            amount: amount(raw.amount)?,
        },
        "TransferCompleted" => Change::TransferCompleted {
            from: raw.from.ok_or_else(|| field("from"))?,
            to: raw.to.ok_or_else(|| field("to"))?,
            amount: amount(raw.amount)?,
        },
        "AccountClosed" => Change::AccountClosed {
            account: raw.account.ok_or_else(|| field("account"))?,
        },
        "FundsHeld" => Change::FundsHeld {
            account: raw.account.ok_or_else(|| field("account"))?,
            amount: amount(raw.amount)?,
            to: raw.to,
            expires: match raw.expires {
                Some(text) => Some(At::parse_canonical(text).ok_or_else(|| {
                    LineError::Field(format!("expires '{text}' is not a UTC timestamp"))
                })?),
                None => None,
            },
        },
        "HoldCaptured" => Change::HoldCaptured {
            hold: raw.hold.ok_or_else(|| field("hold"))?,
            account: raw.account.ok_or_else(|| field("account"))?,
            to: raw.to,
            amount: amount(raw.amount)?,
        },
        "HoldReleased" => Change::HoldReleased {
            hold: raw.hold.ok_or_else(|| field("hold"))?,
            account: raw.account.ok_or_else(|| field("account"))?,
        },
        other => return Err(LineError::UnknownType(other.to_owned())),
    };
    let at = At::parse_canonical(raw.at).ok_or_else(|| {
        LineError::Field(format!(
            "at '{}' is not a UTC timestamp like 2026-11-26T03:24:00.000000Z",
            raw.at
        ))
    })?;
    let prev = LineHash::from_hex(raw.prev)
        .ok_or_else(|| LineError::Field("prev is not 64 lowercase hex digits".to_owned()))?;
    let date = match raw.date {
        Some(text) => Some(Day::parse(text).ok_or_else(|| {
            LineError::Field(format!("date '{text}' is not a date like 2026-11-26"))
        })?),
        None => None,
    };
    let event = Event {
        seq: raw.seq,
        at,
        change,
        date,
        reverses: raw.reverses,
        tags: raw
            .tags
            .map(|t| t.into_iter().collect())
            .unwrap_or_default(),
        id: raw.id,
        memo: raw.memo,
        batch: raw.batch,
    };
    scratch.clear();
    encode(&event, &prev, scratch);
    if scratch.as_slice() != line {
        return Err(LineError::NotCanonical);
    }
    Ok(Decoded { event, prev })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The block-level hash is SHA-256 for every length around the block
    /// and padding boundaries, and for lines of any bytes.
    #[test]
    fn line_hash_is_sha256() {
        use sha2::{Digest, Sha256};
        let bytes: Vec<u8> = (0..700u32).map(|i| (i * 7919 % 251) as u8).collect();
        for len in 0..bytes.len() {
            let line = &bytes[..len];
            let expected: [u8; 32] = Sha256::digest(line).into();
            assert_eq!(LineHash::of(line).0, expected, "{len} bytes");
        }
    }
    use crate::money::Amount;

    fn at() -> At {
        At::parse_canonical("2026-11-26T03:24:00.123456Z").unwrap()
    }

    #[test]
    fn encodes_keys_in_contract_order() {
        let change = Change::MoneyDeposited {
            account: "acct1".into(),
            amount: Decimal::new(Amount(5025), 2),
        };
        let event = Event {
            id: Some("pay-17".into()),
            memo: Some("rent \"May\"".into()),
            batch: Some(3),
            ..Event::new(2, at(), change)
        };
        let mut out = Vec::new();
        encode(&event, &LineHash([0xab; 32]), &mut out);
        let expected = format!(
            r#"{{"seq":2,"at":"2026-11-26T03:24:00.123456Z","type":"MoneyDeposited","account":"acct1","amount":"50.25","id":"pay-17","memo":"rent \"May\"","batch":3,"prev":"{}"}}"#,
            "ab".repeat(32)
        );
        assert_eq!(String::from_utf8(out.clone()).unwrap(), expected);
        let decoded = decode(&out, &mut Vec::new()).unwrap();
        assert_eq!(decoded.event, event);
        assert_eq!(decoded.prev, LineHash([0xab; 32]));
    }

    #[test]
    fn created_event_round_trips() {
        let change = Change::AccountCreated {
            account: "acct1".into(),
            owner: Some("alice".into()),
            currency: Some("EUR".into()),
            decimals: 2,
        };
        let event = Event::new(1, at(), change);
        let mut out = Vec::new();
        encode(&event, &LineHash::default(), &mut out);
        assert!(out.starts_with(
            br#"{"seq":1,"at":"2026-11-26T03:24:00.123456Z","type":"AccountCreated","account":"acct1","owner":"alice","currency":"EUR","decimals":2,"prev":""#
        ));
        assert_eq!(decode(&out, &mut Vec::new()).unwrap().event, event);
    }

    /// Lines written and read one after another share the last time
    /// formatted or read, and each still gets its own.
    #[test]
    fn each_line_written_or_read_after_another_gets_its_own_time() {
        let mut last = LastAt::default();
        let mut encoder = Encoder::default();
        let later = At::parse_canonical("2026-11-26T03:24:00.123457Z").expect("time");
        let times = [at(), at(), later, later, at()];
        for (seq, t) in (1..).zip(times) {
            let event = Event {
                seq,
                at: t,
                change: Change::AccountClosed {
                    account: "a".into(),
                },
                date: None,
                reverses: None,
                tags: Vec::new(),
                id: None,
                memo: None,
                batch: None,
            };
            let mut line = Vec::new();
            encoder.encode(&event, &LineHash::default(), &mut line);
            let mut alone = Vec::new();
            encode(&event, &LineHash::default(), &mut alone);
            assert_eq!(line, alone);
            let spans = Spans::parse_after(&line, &mut last).expect("canonical");
            let text = std::str::from_utf8(&line).expect("utf-8");
            assert_eq!(spans.decoded(text).expect("decoded").event, event);
        }
        let bad = br#"{"seq":9,"at":"2026-13-26T03:24:00.123456Z","type":"AccountClosed","account":"a","prev":""#;
        let mut line = bad.to_vec();
        line.extend_from_slice(&[b'0'; 64]);
        line.extend_from_slice(b"\"}");
        assert!(Spans::parse_after(&line, &mut last).is_none());
    }

    #[test]
    fn rejects_other_spellings_of_the_same_content() {
        let prev = "0".repeat(64);
        let good = format!(
            r#"{{"seq":1,"at":"2026-11-26T03:24:00.123456Z","type":"AccountClosed","account":"a","prev":"{prev}"}}"#
        );
        assert!(decode(good.as_bytes(), &mut Vec::new()).is_ok());
        for bad in [
            good.replace(r#""seq":1,"#, r#""seq": 1,"#),
            good.replace(r#""account":"a""#, r#""account":"\u0061""#),
            format!(
                r#"{{"at":"2026-11-26T03:24:00.123456Z","seq":1,"type":"AccountClosed","account":"a","prev":"{prev}"}}"#
            ),
            good.replace(r#""account":"a","#, r#""account":"a","amount":"1","#),
        ] {
            assert_eq!(
                decode(bad.as_bytes(), &mut Vec::new()).unwrap_err(),
                LineError::NotCanonical,
                "{bad}"
            );
        }
    }

    #[test]
    fn names_what_is_wrong() {
        let e = decode(
            br#"{"seq":1,"at":"x","type":"Nope","prev":""}"#,
            &mut Vec::new(),
        )
        .unwrap_err();
        assert_eq!(e, LineError::UnknownType("Nope".into()));
        let e = decode(b"not json", &mut Vec::new()).unwrap_err();
        assert!(matches!(e, LineError::Syntax(_)));
        let line = format!(
            r#"{{"seq":1,"at":"2026-11-26T03:24:00.123456Z","type":"MoneyDeposited","account":"a","amount":"-5","prev":"{}"}}"#,
            "0".repeat(64)
        );
        assert!(
            decode(line.as_bytes(), &mut Vec::new())
                .unwrap_err()
                .to_string()
                .contains("invalid amount")
        );
    }

    #[test]
    fn header_round_trips_and_is_strict() {
        let h = header(at());
        assert_eq!(
            h,
            r#"{"format":"ledger-journal","version":1,"hash":"sha256","created_at":"2026-11-26T03:24:00.123456Z"}"#
        );
        assert_eq!(decode_header(h.as_bytes()), Ok(at()));
        assert!(
            decode_header(h.replace(":1,", ":2,").as_bytes())
                .unwrap_err()
                .to_string()
                .contains("version 2")
        );
        assert!(decode_header(b"; hledger journal").is_err());
    }

    proptest::proptest! {
        /// The fast path and serde with the re-encoding check accept exactly
        /// the same lines, with the same result.
        #[test]
        fn fast_and_general_decoding_agree(
            kind in 0..8usize,
            seq in 0u64..u64::MAX,
            micros in 0i64..253_402_300_799_999_999,
            account in "[a-z0-9][a-z0-9_.:@-]{0,10}",
            text in proptest::option::of("[ -~é\"\\\\]{0,12}"),
            units in 1i128..i128::MAX,
            scale in 0u8..=18,
            batch in proptest::option::of(0u64..1000),
            day in proptest::option::of(-719_162i32..2_932_896),
            reverses in proptest::option::of(0u64..u64::MAX),
            tags in proptest::collection::btree_map("[a-z0-9_.-]{1,6}", "[ -~é\"\\\\]{0,8}", 0..4),
            mutate in proptest::option::of((0usize..500, proptest::num::u8::ANY)),
        ) {
            let amount = Decimal::new(Amount(units), scale);
            let change = match kind {
                0 => Change::AccountCreated { account: account.clone().into(), owner: text.clone().map(Into::into), currency: Some("EUR".into()), decimals: scale },
                1 => Change::MoneyDeposited { account: account.clone().into(), amount },
                2 => Change::MoneyWithdrawn { account: account.clone().into(), amount },
                3 => Change::TransferCompleted { from: account.clone().into(), to: "x".into(), amount },
                4 => Change::FundsHeld { account: account.clone().into(), amount, to: text.clone().map(Into::into), expires: batch.map(|_| at()) },
                5 => Change::HoldCaptured { hold: seq / 2, account: account.clone().into(), to: text.clone().map(Into::into), amount },
                6 => Change::HoldReleased { hold: seq / 3, account: account.clone().into() },
                _ => Change::AccountClosed { account: account.clone().into() },
            };
            let event = Event {
                seq,
                at: At::parse_canonical(&jiff::Timestamp::from_microsecond(micros).map(|t| format!("{t:.6}")).unwrap_or_default()).unwrap_or(at()),
                change,
                date: day.and_then(|d| Day::parse(&crate::time::Day::from_days(d).to_string())),
                reverses,
                tags: tags.into_iter().map(|(k, v)| (k.into(), v.into())).collect(),
                id: text.clone().map(Into::into),
                memo: text.map(Into::into),
                batch,
            };
            let mut line = Vec::new();
            encode(&event, &LineHash([7; 32]), &mut line);
            if let Some((i, byte)) = mutate {
                let i = i % line.len();
                line[i] = byte;
            }
            let general = decode_general(&line, &mut Vec::new());
            match decode_canonical(&line) {
                Some(fast) => {
                    let general = general.expect("the fast path accepted a line serde refuses");
                    proptest::prop_assert_eq!(&fast.event, &general.event);
                    proptest::prop_assert_eq!(fast.prev, general.prev);
                }
                // Only escaped strings may leave the fast path for a valid line.
                None => proptest::prop_assert!(general.is_err() || line.contains(&b'\\')),
            }
            if mutate.is_none() {
                // The accounts a parse names, as the scanner warms them.
                if let (Some(spans), Ok(text)) = (Spans::parse(&line), std::str::from_utf8(&line)) {
                    proptest::prop_assert_eq!(spans.accounts(text), event.change.accounts());
                }
                proptest::prop_assert_eq!(decode(&line, &mut Vec::new()).map(|d| d.event).ok(), Some(event));
            }
            // The id alone, read from the end, as decoding finds it.
            if let Ok(decoded) = decode(&line, &mut Vec::new()) {
                let id = id_of(&line, &mut Vec::new());
                proptest::prop_assert_eq!(id.ok().flatten(), decoded.event.id);
            }
        }
    }

    #[test]
    fn the_layout_helpers_find_what_encode_wrote() {
        let change = Change::MoneyDeposited {
            account: "a".into(),
            amount: Decimal::new(Amount(100), 2),
        };
        let event = Event::new(42, at(), change);
        let mut line = Vec::new();
        encode(&event, &LineHash::default(), &mut line);
        assert_eq!(seq_of(&line), Some(42));
        set_prev(&mut line, &LineHash([0xcd; 32]));
        assert_eq!(prev_hex(&line), "cd".repeat(32));
        assert_eq!(
            decode(&line, &mut Vec::new()).map(|d| d.prev),
            Ok(LineHash([0xcd; 32])).map_err(|e: LineError| e)
        );
        let (mark, offset) = batch_mark(3, line.len());
        let mut marked = line[..offset].to_vec();
        marked.extend_from_slice(mark.as_bytes());
        marked.extend_from_slice(&line[offset..]);
        assert_eq!(
            decode(&marked, &mut Vec::new()).map(|d| d.event.batch),
            Ok(Some(3))
        );
        let mut out = Vec::new();
        with_fields(&line, &[("change", "1.00"), ("balance", "2.00")], &mut out);
        assert!(out.ends_with(br#","change":"1.00","balance":"2.00"}"#));
    }

    #[test]
    fn hash_is_sha256_of_the_bytes() {
        // sha256("abc"), a published test vector.
        assert_eq!(
            LineHash::of(b"abc").to_string(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let h = LineHash::of(b"x");
        assert_eq!(LineHash::from_hex(&h.to_string()), Some(h));
        assert_eq!(LineHash::from_hex(&h.to_string().to_uppercase()), None);
    }

    proptest::proptest! {
        /// The hex codec against the obvious one, on the digits and their
        /// neighbours in ASCII.
        #[test]
        fn hex_digits_read_and_write_as_the_obvious_codec_does(
            valid in "[0-9a-f]{64}",
            flaw in proptest::option::of((0..64usize, "[/:@A-G`g]")),
            bytes in proptest::array::uniform32(proptest::num::u8::ANY),
        ) {
            let mut text = valid;
            if let Some((at, c)) = flaw {
                text.replace_range(at..=at, &c);
            }
            let obvious = (0..32)
                .map(|i| {
                    let pair = &text[2 * i..2 * i + 2];
                    pair.bytes()
                        .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
                        .then(|| u8::from_str_radix(pair, 16).ok())
                        .flatten()
                })
                .collect::<Option<Vec<u8>>>();
            proptest::prop_assert_eq!(
                LineHash::from_hex(&text).map(|h| h.0.to_vec()),
                obvious
            );
            let h = LineHash(bytes);
            let written: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            proptest::prop_assert_eq!(h.hex().to_vec(), written.into_bytes());
            proptest::prop_assert_eq!(LineHash::from_hex_bytes(&h.hex()), Some(h));
        }
    }
}
