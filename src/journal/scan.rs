//! Streaming replay of a journal: one pass, large buffered reads, each line
//! hashed, decoded (borrowed), chained and re-decided before it is handed on.
//!
//! The tail rules of SPEC 2 live here: a last line without `\n`, or a
//! trailing multi-event append with fewer complete lines than its `batch`
//! count, is a torn tail: never yielded, reported once in [`Scanner::torn`].

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use super::backing::Backing;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::domain::{self, Original, Rejection, Request, State};
use crate::event::Event;
use crate::journal::JournalError;
use crate::journal::line::{self, HEADER_PREFIX, LastAt, LineHash, Spans};
use crate::readmodel::{AppendedIds, Keyer, ReadModel};
use crate::time::At;

/// How much a block reads at a time: blocks in flight between the threads
/// take four times this in memory, and a smaller one would only send more.
const CHUNK: usize = 256 << 10;

use line::MAX_LINE;

/// About the shortest event line ledger writes (a close of a one-letter
/// account): only a bound for sizing buffers.
const MIN_LINE: usize = 120;

/// Where a journal stands after a complete append: what the next line must
/// chain to. A checkpoint records one of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    /// The last event's seq (0: only the header).
    pub seq: u64,
    /// The hash of the last line.
    pub hash: LineHash,
    /// The byte offset just past the last line's `\n`.
    pub end: u64,
    /// The last event's `at` (the header's `created_at` for seq 0).
    pub at: At,
}

/// An unacknowledged end of the file that readers ignore and the next
/// writer removes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Torn {
    /// Where it starts; the journal's valid length.
    pub offset: u64,
    /// How many bytes it has.
    pub len: u64,
    /// The file line number it starts at.
    pub line: u64,
}

/// One validated event, with the exact bytes it was read from.
#[derive(Debug)]
pub struct Entry<'s> {
    /// The event.
    pub event: Event<'s>,
    /// Its line, without `\n`.
    pub line: &'s [u8],
    /// The file line number (the header is line 1).
    pub line_no: u64,
    /// The SHA-256 of the line.
    pub hash: LineHash,
    /// The byte offset just past the line's `\n`.
    pub end: u64,
}

/// Reads the journal from a [`Head`] onwards. Call [`Scanner::next`] with the
/// state so far, then fold the entry with [`domain::evolve`].
pub struct Scanner<'f> {
    file: &'f Backing,
    path: &'f Path,
    /// How far this scan reads: the file's length when it was opened.
    len: u64,
    source: Source<'f>,
    block: Block,
    /// Next unread byte of `block.data`.
    pos: usize,
    /// Index in `block.lines` of the next complete line.
    line: usize,
    head: Head,
    /// Lines still to come in the current multi-event append.
    group_left: u64,
    scratch: Vec<u8>,
    last_at: LastAt,
    /// The seq of the last complete line before `len`, read when first
    /// needed (see [`Scanner::next`] on multi-event appends).
    last_seq: std::cell::OnceCell<Option<u64>>,
    /// See [`Scanner::checking_appends_ahead`].
    check_appends_ahead: bool,
    /// See [`Scanner::decided_until`].
    decided: Option<Head>,
    torn: Option<Torn>,
    done: bool,
    /// Where some of the lines read so far start, so that finding an
    /// earlier line (a reversal's original, an id's) reads a few KiB.
    marks: Marks,
}

/// Lines a [`Marks`] records the start of: one in this many (about 6 KiB
/// of lines, read in one go; 8 bytes a mark, 1.2 MiB for 5,000,000
/// events).
const MARK_EVERY: u64 = 32;

/// The starts of the lines of seqs `first`, `first + MARK_EVERY`, ...,
/// as the scan checked them.
#[derive(Default)]
struct Marks {
    first: u64,
    starts: Vec<u64>,
}

impl Marks {
    /// Records that the line of event `seq` starts at `start`.
    fn record(&mut self, seq: u64, start: u64) {
        if !seq.is_multiple_of(MARK_EVERY) {
            return;
        }
        if self.starts.is_empty() {
            self.first = seq;
        }
        if Some(seq) == self.next_seq() {
            self.starts.push(start);
        }
    }

    fn next_seq(&self) -> Option<u64> {
        let n = u64::try_from(self.starts.len()).ok()?;
        MARK_EVERY.checked_mul(n)?.checked_add(self.first)
    }

    /// Where to seek event `seq`, an earlier one than the line at `before`
    /// whose seq is `next`.
    fn bracket(&self, seq: u64, (before, next): (u64, u64)) -> super::Bracket {
        let mut bracket = super::Bracket {
            lo: 0,
            lo_seq: 0,
            hi: before,
            hi_seq: next,
        };
        let Some(last) = self.starts.len().checked_sub(1) else {
            return bracket;
        };
        let mark = |i: usize| (self.first + MARK_EVERY * i as u64, self.starts[i]);
        let below = match seq.checked_sub(self.first) {
            Some(past) => usize::try_from(past / MARK_EVERY).map_or(last, |i| i.min(last)),
            None => {
                (bracket.hi_seq, bracket.hi) = mark(0);
                return bracket;
            }
        };
        (bracket.lo_seq, bracket.lo) = mark(below);
        if below < last {
            (bracket.hi_seq, bracket.hi) = mark(below + 1);
        }
        bracket
    }
}

/// Journals with more than this left to read are hashed on a second thread.
pub(super) const THREAD_MIN_BYTES: u64 = 8 << 20;

/// A run of whole lines read from the file, with the hash of each and,
/// for lines in canonical form, their parse.
#[derive(Default)]
struct Block {
    data: BlockData,
    /// File offset of `data[0]`.
    offset: u64,
    /// The end (its `\n`) and hash of each complete line. After the last
    /// of them, in the last block only, may come an unterminated (torn)
    /// line.
    lines: Vec<(usize, LineHash)>,
    /// The reader's parse of each line, when it had time for it (else
    /// empty, and the scanner parses).
    spans: Vec<Option<Spans>>,
    /// The unterminated line at its end is longer than any ledger line.
    overlong: bool,
}

/// A block's bytes: as text when they are UTF-8 (nearly always), so that
/// events can borrow their strings without checking them again.
enum BlockData {
    Text(String),
    Bytes(Vec<u8>),
}

impl Default for BlockData {
    fn default() -> BlockData {
        BlockData::Bytes(Vec::new())
    }
}

impl BlockData {
    fn bytes(&self) -> &[u8] {
        match self {
            BlockData::Text(s) => s.as_bytes(),
            BlockData::Bytes(b) => b,
        }
    }

    fn into_bytes(self) -> Vec<u8> {
        match self {
            BlockData::Text(s) => s.into_bytes(),
            BlockData::Bytes(b) => b,
        }
    }
}

/// Cuts the file into [`Block`]s and hashes their lines. Hashing is
/// independent per line, so on large journals this runs on its own thread
/// while the scanner decodes and checks.
struct Blocks<R> {
    file: R,
    pos: u64,
    len: u64,
    carry: Vec<u8>,
    last_at: LastAt,
}

/// What a reader of blocks reads from: a descriptor of its own (on a
/// thread of its own), or the journal's backing.
trait ReadAt {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<usize>;
}

impl ReadAt for File {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
        FileExt::read_at(self, buf, offset)
    }
}

impl ReadAt for &Backing {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
        Backing::read_at(self, buf, offset)
    }
}

impl<R: ReadAt> Blocks<R> {
    fn new(file: R, pos: u64, len: u64) -> Blocks<R> {
        Blocks {
            file,
            pos,
            len,
            carry: Vec::new(),
            last_at: LastAt::default(),
        }
    }

    /// The next block, built in `reuse`'s buffers when given: a block's
    /// memory is handed back once scanned, so a long replay neither maps
    /// fresh pages nor zeroes its buffer for every megabyte it reads.
    fn next_block(&mut self, reuse: Option<Block>, parse: bool) -> std::io::Result<Option<Block>> {
        let (mut data, mut lines, mut spans) = match reuse {
            Some(block) => (block.data.into_bytes(), block.lines, block.spans),
            None => Default::default(),
        };
        let mut overlong = false;
        let offset = self.pos - self.carry.len() as u64;
        // `data` keeps the length it had, so reading over old bytes needs
        // no zeroing; only growth is zeroed. Room for a chunk after the
        // longest carried line means it is allocated once, not per block.
        data.reserve((CHUNK + MAX_LINE).saturating_sub(data.len()));
        let mut filled = self.carry.len();
        if data.len() < filled {
            data.resize(filled, 0);
        }
        data[..filled].copy_from_slice(&self.carry);
        self.carry.clear();
        while self.pos < self.len {
            let want = usize::try_from(self.len - self.pos)
                .unwrap_or(CHUNK)
                .min(CHUNK);
            if data.len() < filled + want {
                data.resize(filled + want, 0);
            }
            // Positional reads: the descriptor is a clone, and another
            // scanner of the same journal may be reading through it too.
            let n = loop {
                match self
                    .file
                    .read_at(&mut data[filled..filled + want], self.pos)
                {
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    other => break other?,
                }
            };
            let old = filled;
            filled += n;
            if n == 0 {
                // The file shrank under us: stop where it ends.
                self.len = self.pos;
                break;
            }
            self.pos += n as u64;
            if memchr::memchr(b'\n', &data[old..filled]).is_some() {
                break;
            }
            if filled > MAX_LINE {
                // No ledger line is this long: stop here rather than read a
                // damaged or foreign file into memory to its end.
                self.pos = self.len;
                overlong = true;
                break;
            }
        }
        data.truncate(filled);
        if data.is_empty() {
            return Ok(None);
        }
        let complete = memchr::memrchr(b'\n', &data).map_or(0, |i| i + 1);
        if data.len() - complete > MAX_LINE {
            self.pos = self.len;
            overlong = true;
        }
        if self.pos < self.len {
            self.carry.extend_from_slice(&data[complete..]);
            data.truncate(complete);
        }
        lines.clear();
        spans.clear();
        // No ledger line is shorter than this, so these never grow (and
        // reused ones are already this large).
        let most = complete / MIN_LINE + 1;
        lines.reserve(most);
        if parse {
            spans.reserve(most);
        }
        let mut start = 0;
        for end in memchr::memchr_iter(b'\n', &data[..complete]) {
            let line = &data[start..end];
            lines.push((end, LineHash::of(line)));
            if parse {
                spans.push(Spans::parse_after(line, &mut self.last_at));
            }
            start = end + 1;
        }
        let data = match String::from_utf8(data) {
            Ok(text) => BlockData::Text(text),
            Err(e) => BlockData::Bytes(e.into_bytes()),
        };
        Ok(Some(Block {
            data,
            offset,
            lines,
            spans,
            overlong,
        }))
    }
}

/// Where blocks come from: this thread, or a reader thread; and where
/// scanned blocks go back to, for their memory to be used again.
enum Source<'f> {
    Inline(Blocks<&'f Backing>, Option<Block>),
    Thread {
        blocks: std::sync::mpsc::Receiver<std::io::Result<Block>>,
        spent: std::sync::mpsc::Sender<Block>,
        /// Blocks sent and not yet taken.
        queued: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    },
    Failed(Option<std::io::Error>),
}

impl<'f> Source<'f> {
    fn new(backing: &'f Backing, start: u64, len: u64) -> Source<'f> {
        // Much to read is read on a thread: a file through a descriptor of
        // its own, a database on a connection of its own in this read's
        // snapshot.
        if len.saturating_sub(start) < THREAD_MIN_BYTES {
            return Source::Inline(Blocks::new(backing, start, len), None);
        }
        match backing {
            Backing::File(file) => match file.try_clone() {
                Ok(file) => {
                    // Read in order to the end: a larger read-ahead window
                    // keeps a cold read from waiting on the disk (only
                    // advice, so a refusal changes nothing).
                    let _ = rustix::fs::fadvise(&file, start, None, rustix::fs::Advice::Sequential);
                    Source::spawn(move |feed| feed.pump(Blocks::new(file, start, len)))
                }
                Err(e) => Source::Failed(Some(e)),
            },
            Backing::Db(db) => match db.line_stream(start, len) {
                Some(stream) => Source::spawn(move |feed| {
                    let read = stream.run(|bytes| {
                        feed.pump(Blocks::new(InOrder::new(bytes, start), start, len));
                    });
                    if let Err(e) = read {
                        feed.fail(std::io::Error::other(e));
                    }
                }),
                None => Source::Inline(Blocks::new(backing, start, len), None),
            },
        }
    }

    /// Runs `read` on a reader thread that sends blocks to this one.
    fn spawn(read: impl FnOnce(Feed) + Send + 'static) -> Source<'f> {
        let (tx, rx) = std::sync::mpsc::sync_channel(2);
        let (spent, spent_rx) = std::sync::mpsc::channel::<Block>();
        let queued = std::sync::Arc::new(AtomicUsize::new(0));
        let feed = Feed {
            tx,
            spent: spent_rx,
            backlog: std::sync::Arc::clone(&queued),
        };
        let spawned = std::thread::Builder::new()
            .name("journal-reader".into())
            .spawn(move || read(feed));
        match spawned {
            Ok(_) => Source::Thread {
                blocks: rx,
                spent,
                queued,
            },
            Err(e) => Source::Failed(Some(e)),
        }
    }

    fn next(&mut self) -> std::io::Result<Option<Block>> {
        match self {
            Source::Inline(blocks, spent) => blocks.next_block(spent.take(), false),
            Source::Thread { blocks, queued, .. } => match blocks.recv() {
                Ok(block) => {
                    queued.fetch_sub(1, Ordering::Relaxed);
                    block.map(Some)
                }
                // The reader has stopped: at the end, or after an error it sent.
                Err(_) => Ok(None),
            },
            Source::Failed(e) => Err(e
                .take()
                .unwrap_or_else(|| std::io::Error::other("read failed"))),
        }
    }

    /// Takes back a block that has been scanned.
    fn recycle(&mut self, block: Block) {
        match self {
            Source::Inline(_, spent) => *spent = Some(block),
            // A reader that has stopped needs no memory.
            Source::Thread { spent, .. } => drop(spent.send(block)),
            Source::Failed(_) => {}
        }
    }
}

/// A reader thread's ends of the channels to the scanner.
struct Feed {
    tx: std::sync::mpsc::SyncSender<std::io::Result<Block>>,
    spent: std::sync::mpsc::Receiver<Block>,
    /// Blocks sent and not yet taken.
    backlog: std::sync::Arc<AtomicUsize>,
}

impl Feed {
    /// Sends every block of `blocks`, then stops.
    fn pump<R: ReadAt>(&self, mut blocks: Blocks<R>) {
        loop {
            // Parsing lines can be done on either side; the reader takes it
            // on only while the scanner has blocks waiting, so neither
            // thread idles while the other works.
            let parse = self.backlog.load(Ordering::Relaxed) >= 2;
            let Some(block) = blocks
                .next_block(self.spent.try_recv().ok(), parse)
                .transpose()
            else {
                break;
            };
            self.backlog.fetch_add(1, Ordering::Relaxed);
            // A closed channel means the scanner stopped early.
            if self.tx.send(block).is_err() {
                break;
            }
        }
    }

    /// Tells the scanner reading failed.
    fn fail(&self, e: std::io::Error) {
        self.backlog.fetch_add(1, Ordering::Relaxed);
        let _ = self.tx.send(Err(e));
    }
}

/// Bytes read in order, shown as bytes at offsets: each read must start
/// where the last one ended.
struct InOrder<'r> {
    bytes: std::cell::RefCell<&'r mut dyn std::io::Read>,
    pos: std::cell::Cell<u64>,
}

impl<'r> InOrder<'r> {
    fn new(bytes: &'r mut dyn std::io::Read, pos: u64) -> InOrder<'r> {
        InOrder {
            bytes: std::cell::RefCell::new(bytes),
            pos: std::cell::Cell::new(pos),
        }
    }
}

impl ReadAt for InOrder<'_> {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
        if offset != self.pos.get() {
            return Err(std::io::Error::other("a stream read out of order"));
        }
        let n = self.bytes.borrow_mut().read(buf)?;
        self.pos.set(offset + n as u64);
        Ok(n)
    }
}

/// What the start of a journal file holds.
pub enum Start {
    /// No complete header: an empty journal, maybe with a torn header.
    Empty(Option<Torn>),
    /// A header; the head after it.
    Header(Head),
}

/// Reads the header of a journal of `len` bytes.
pub fn read_start(file: &Backing, path: &Path, len: u64) -> Result<Start, JournalError> {
    let mut first = Vec::with_capacity(160);
    let mut offset = 0u64;
    let mut chunk = [0u8; 512];
    let newline = loop {
        let n = read_at(file, path, &mut chunk, offset, len)?;
        if n == 0 {
            break None;
        }
        if let Some(i) = memchr::memchr(b'\n', &chunk[..n]) {
            first.extend_from_slice(&chunk[..i]);
            break Some(());
        }
        first.extend_from_slice(&chunk[..n]);
        offset += n as u64;
        if first.len() > 4096 {
            // No header is this long; do not read a foreign file to its end.
            return Err(not_a_journal(path));
        }
    };
    let Some(()) = newline else {
        let n = first.len().min(HEADER_PREFIX.len());
        if first[..n] == HEADER_PREFIX[..n] {
            let torn = (len > 0).then_some(Torn {
                offset: 0,
                len,
                line: 1,
            });
            return Ok(Start::Empty(torn));
        }
        return Err(not_a_journal(path));
    };
    if !first.starts_with(HEADER_PREFIX) {
        return Err(not_a_journal(path));
    }
    let created_at = line::decode_header(&first).map_err(|e| corrupt(path, 1, e.to_string()))?;
    Ok(Start::Header(Head {
        seq: 0,
        hash: LineHash::of(&first),
        end: first.len() as u64 + 1,
        at: created_at,
    }))
}

fn corrupt(path: &Path, line: u64, reason: impl Into<String>) -> JournalError {
    JournalError::Corrupt {
        path: path.to_owned(),
        line,
        reason: reason.into(),
    }
}

fn not_a_journal(path: &Path) -> JournalError {
    JournalError::NotAJournal(path.to_owned())
}

fn read_at(
    file: &Backing,
    path: &Path,
    buf: &mut [u8],
    offset: u64,
    len: u64,
) -> Result<usize, JournalError> {
    let want = usize::try_from(len.saturating_sub(offset))
        .unwrap_or(usize::MAX)
        .min(buf.len());
    if want == 0 {
        return Ok(0);
    }
    loop {
        match file.read_at(&mut buf[..want], offset) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            other => return other.map_err(|e| JournalError::io(path, "read", e)),
        }
    }
}

/// The seq of the last complete line of the first `len` bytes of `file`,
/// if that line reads as an event.
fn last_seq(file: &Backing, path: &Path, len: u64) -> Option<u64> {
    // Room for a whole last line and a torn line after it.
    let start = len.saturating_sub(2 * (MAX_LINE as u64 + 1));
    let mut tail = vec![0u8; usize::try_from(len - start).ok()?];
    let mut filled = 0;
    while filled < tail.len() {
        match read_at(file, path, &mut tail[filled..], start + filled as u64, len) {
            Ok(n) if n > 0 => filled += n,
            _ => return None,
        }
    }
    let end = memchr::memrchr(b'\n', &tail)?;
    let begin = memchr::memrchr(b'\n', &tail[..end])? + 1;
    let decoded = line::decode(&tail[begin..end], &mut Vec::new()).ok()?;
    Some(decoded.event.seq)
}

impl<'f> Scanner<'f> {
    /// A scanner that reads the lines after `head`, up to `len` bytes of the file.
    pub fn new(file: &'f Backing, path: &'f Path, head: Head, len: u64) -> Scanner<'f> {
        Scanner {
            file,
            path,
            len,
            source: Source::new(file, head.end, len),
            block: Block {
                offset: head.end,
                ..Block::default()
            },
            pos: 0,
            line: 0,
            head,
            group_left: 0,
            scratch: Vec::with_capacity(512),
            last_at: LastAt::default(),
            last_seq: std::cell::OnceCell::new(),
            check_appends_ahead: false,
            decided: None,
            torn: None,
            done: false,
            marks: Marks::default(),
        }
    }

    /// Makes the scan take the events up to `head` as already decided: it
    /// reads, hashes and chains them as always, but does not decide them
    /// again. For a `head` whose lines were decided before, by this command
    /// or by the writers behind the read model (its head, checked against
    /// the journal line it names). The chain binds every line before `head`
    /// to its hash, which the scan checks when it gets there, so the lines
    /// read are the lines decided; an event is decided again only where
    /// that cannot be known. Deciding is half the work of a long read.
    pub fn decided_until(mut self, head: Option<Head>) -> Self {
        self.decided = head;
        self
    }

    /// Makes the scan check every line of a multi-event append (that it
    /// decodes and chains) before it returns the append's first event,
    /// rather than trusting the journal's last line and finding a gap when
    /// it gets there. For a consumer that hands events on as they come
    /// (`history --follow`), which must never hand on the start of an
    /// append that is not all there. It reads each append twice.
    pub fn checking_appends_ahead(mut self) -> Self {
        self.check_appends_ahead = true;
        self
    }

    /// Where the journal stands after the last entry returned.
    pub fn head(&self) -> Head {
        self.head
    }

    /// The torn tail found, once [`Scanner::next`] has returned `None`.
    pub fn torn(&self) -> Option<Torn> {
        self.torn
    }

    /// The next line as a range of `block.data`, with its hash if it is
    /// complete (ends with `\n`).
    fn next_line(&mut self) -> Result<Option<(usize, usize, Option<LineHash>)>, JournalError> {
        loop {
            let block = &self.block;
            let bytes = block.data.bytes();
            if let Some(&(end, hash)) = block.lines.get(self.line) {
                let start = self.pos;
                self.line += 1;
                self.pos = end + 1;
                return Ok(Some((start, end, Some(hash))));
            }
            if self.pos < bytes.len() {
                let start = self.pos;
                self.pos = bytes.len();
                return Ok(Some((start, bytes.len(), None)));
            }
            match self
                .source
                .next()
                .map_err(|e| JournalError::io(self.path, "read", e))?
            {
                Some(block) => {
                    let spent = std::mem::replace(&mut self.block, block);
                    self.source.recycle(spent);
                    self.pos = 0;
                    self.line = 0;
                }
                None => return self.ended_at_len().map(|()| None),
            }
        }
    }

    /// At line `at` of a block, brings into the cache the accounts of the
    /// block's lines that [`domain::warm_window`] names. Only lines the
    /// reader thread parsed are looked at: parsing them here too would
    /// cost more than the look-ups save.
    fn warm_ahead(&self, state: &State, at: usize) {
        let Some(ahead) = domain::warm_window(at) else {
            return;
        };
        let BlockData::Text(text) = &self.block.data else {
            return;
        };
        let (lines, spans) = (&self.block.lines, &self.block.spans);
        let names = (ahead.start..ahead.end.min(spans.len())).flat_map(|j| {
            let start = match j {
                0 => 0,
                _ => lines.get(j - 1).map_or(0, |&(end, _)| end + 1),
            };
            let line = lines
                .get(j)
                .and_then(|&(end, _)| text.get(start..end))
                .unwrap_or_default();
            let names = spans
                .get(j)
                .and_then(Option::as_ref)
                .map(|s| s.accounts(line));
            names.into_iter().flatten().flatten()
        });
        state.warm_accounts(names, |_| 0);
    }

    /// A file may shrink while it is read, and a scan stops where it
    /// ends. A database's lines cannot, inside the read's snapshot: lines
    /// that end before the head row's length are a line missing or out of
    /// place, not the journal's end.
    fn ended_at_len(&self) -> Result<(), JournalError> {
        let read = self.block.offset + self.block.data.bytes().len() as u64;
        match self.file {
            Backing::Db(_) if read < self.len => {
                Err(self.lines_missing(self.head.seq + 2, &format!("has no line at byte {read}")))
            }
            _ => Ok(()),
        }
    }

    /// A database's writes commit whole: lines that stop inside a line
    /// or a multi-event append before the head row's length are lines
    /// missing, not a torn write (unless this scan stops short of the
    /// head on purpose, as a follower's round does).
    fn not_torn_in_db(&self, line: u64) -> Result<(), JournalError> {
        match self.file {
            Backing::Db(db) if db.head_len().is_some_and(|head| self.len >= head) => {
                Err(self.lines_missing(line, "ends inside the write that starts here"))
            }
            _ => Ok(()),
        }
    }

    /// A database's lines table that `shows` something short of the head
    /// row's length, at `line`.
    fn lines_missing(&self, line: u64, shows: &str) -> JournalError {
        corrupt(
            self.path,
            line,
            format!(
                "the lines table {shows}, though the head row says the journal is {} bytes long (a line is missing or its offset is wrong)",
                self.len
            ),
        )
    }

    fn offset_of(&self, index: usize) -> u64 {
        self.block.offset + index as u64
    }

    /// The line of event `seq`, before the line at `before` whose seq is
    /// `next`.
    fn find_line(&self, seq: u64, (before, next): (u64, u64)) -> Result<Vec<u8>, JournalError> {
        let bracket = self.marks.bracket(seq, (before, next));
        super::find_line_in(self.file, self.path, before, bracket, seq)
    }

    /// The next event, checked against `state` (the state after every event
    /// before it; for a partial state, `model` first loads what the check
    /// reads); `None` at the end or at a torn tail. A fingerprinting state
    /// ([`State::fingerprinting`]) may learn an earlier event's id on the
    /// way, when two ids share a fingerprint (nothing else changes in it).
    pub fn next(
        &mut self,
        state: &mut State,
        model: Option<&ReadModel>,
    ) -> Result<Option<Entry<'_>>, JournalError> {
        if self.done {
            return Ok(None);
        }
        let path = self.path;
        let line_no = self.head.seq + 2;
        let Some((start, end, hash)) = self.next_line()? else {
            self.done = true;
            self.reached_decided(line_no)?;
            return self.ended(state);
        };
        let Some(hash) = hash else {
            if self.block.overlong {
                return Err(corrupt(
                    path,
                    line_no,
                    "the line is longer than any ledger line (64 KiB)",
                ));
            }
            self.not_torn_in_db(line_no)?;
            self.done = true;
            self.reached_decided(line_no)?;
            self.torn = Some(Torn {
                offset: self.offset_of(start),
                len: (end - start) as u64,
                line: line_no,
            });
            return self.ended(state);
        };
        self.warm_ahead(state, self.line - 1);
        let bytes = &self.block.data.bytes()[start..end];
        // The reader's parse, or this thread's when the reader left it.
        let here;
        let parsed = match &self.block.data {
            BlockData::Text(text) => match self.block.spans.get(self.line - 1) {
                Some(spans) => spans.as_ref(),
                None => {
                    here = Spans::parse_after(bytes, &mut self.last_at);
                    here.as_ref()
                }
            }
            .and_then(|spans| spans.decoded(text.get(start..end)?)),
            BlockData::Bytes(_) => None,
        };
        let decoded = match parsed {
            Some(decoded) => decoded,
            None => line::decode(bytes, &mut self.scratch)
                .map_err(|e| corrupt(path, line_no, e.to_string()))?,
        };
        let event = decoded.event;
        let expected = self.head.seq + 1;
        if event.seq != expected {
            let why = if event.seq < expected {
                "a line was duplicated or lines were swapped"
            } else {
                "lines were removed or swapped"
            };
            return Err(corrupt(
                path,
                line_no,
                format!("seq {} where {expected} was expected ({why})", event.seq),
            ));
        }
        if decoded.prev != self.head.hash {
            return Err(corrupt(
                path,
                line_no,
                format!(
                    "prev does not match the hash of line {} (that line was edited, or lines were removed or inserted)",
                    line_no - 1
                ),
            ));
        }
        if event.at < self.head.at {
            return Err(corrupt(
                path,
                line_no,
                format!(
                    "at {} is earlier than the line before it ({})",
                    event.at, self.head.at
                ),
            ));
        }
        if self.group_left > 0 {
            if event.batch.is_some() {
                return Err(corrupt(
                    path,
                    line_no,
                    "a batch count inside another multi-event append",
                ));
            }
            self.group_left -= 1;
        } else if let Some(count) = event.batch {
            if count < 2 {
                return Err(corrupt(
                    path,
                    line_no,
                    format!("batch count {count}: a multi-event append has at least 2 events"),
                ));
            }
            let offset = self.offset_of(start);
            let rest = self.offset_of(self.pos);
            // The append is whole if the journal's last line comes at or
            // after its last seq: this scan checks every line in between (a
            // gap is corruption, reported where it is), and finding that
            // last line costs one small read. Otherwise, or for a scan that
            // must check ahead, its lines are read and chained now; a cut
            // append's lines must chain too, since a cut write only loses
            // its end.
            let last_is_past = !self.check_appends_ahead
                && event.seq.checked_add(count - 1).is_some_and(|end| {
                    self.last_seq
                        .get_or_init(|| last_seq(self.file, self.path, self.len))
                        .is_some_and(|last| last >= end)
                });
            let (whole, holds_decided) = match last_is_past {
                true => (true, false),
                false => self.check_group(offset, rest, line_no, &event, hash, count)?,
            };
            if !whole {
                self.not_torn_in_db(line_no)?;
                self.done = true;
                // A decided head among the complete lines of a torn append
                // (named by a damaged record: a reader records only the
                // end of a whole append) binds the lines before it too.
                if !holds_decided {
                    self.reached_decided(line_no)?;
                }
                self.torn = Some(Torn {
                    offset,
                    len: self.len - offset,
                    line: line_no,
                });
                return self.ended(state);
            }
            self.group_left = count - 1;
        }
        if let Some(model) = model {
            // An id's row is checked against the earlier line it names.
            let (file, before) = (self.file, (self.offset_of(start), event.seq));
            let marks = &self.marks;
            let mut id_at = |seq| {
                let line =
                    super::find_line_in(file, path, before.0, marks.bracket(seq, before), seq)?;
                let decoded = line::decode(&line, &mut Vec::new())
                    .map_err(|e| corrupt(path, seq + 1, e.to_string()))?;
                Ok(decoded.event.id.map(|id| id.into_owned()))
            };
            model.load_event(state, &event, &mut id_at)?;
        }
        let decided_before = self.decided.is_some_and(|decided| event.seq < decided.seq);
        if !decided_before && !self.is_decided_head(event.seq, hash, line_no)? {
            self.check_rules(state, &event, self.offset_of(start), line_no)?;
        }
        self.head = Head {
            seq: event.seq,
            hash,
            end: self.offset_of(end + 1),
            at: event.at,
        };
        let at = self.offset_of(start);
        self.marks.record(event.seq, at);
        Ok(Some(Entry {
            event,
            line: &self.block.data.bytes()[start..end],
            line_no,
            hash,
            end: self.head.end,
        }))
    }

    /// The scan's end (or a torn tail): for an auditing state
    /// ([`State::auditing`]), the ids folded in are proven distinct first,
    /// and a repeat is the error.
    fn ended<'s>(&self, state: &mut State) -> Result<Option<Entry<'s>>, JournalError> {
        match self.repeated_id(state, None)? {
            Some(repeat) => Err(repeat),
            None => Ok(None),
        }
    }

    /// Whether the line `line_no` (of `seq`, hashing to `hash`) is the head
    /// given to [`Scanner::decided_until`]; a line of that seq that hashes
    /// otherwise is not the line decided, and an error.
    fn is_decided_head(
        &self,
        seq: u64,
        hash: LineHash,
        line_no: u64,
    ) -> Result<bool, JournalError> {
        match self.decided {
            Some(decided) if decided.seq == seq && decided.hash != hash => Err(corrupt(
                self.path,
                line_no,
                "the line changed while the journal was read (it is not the line checked before)",
            )),
            Some(decided) => Ok(decided.seq == seq),
            None => Ok(false),
        }
    }

    /// At the scan's end (`line_no`: the line it ends at), that it got to
    /// the head given to [`Scanner::decided_until`]: only that head's line,
    /// found unchanged, binds the lines before it to those decided. A scan
    /// that ends short of it read lines no one decided (the journal was cut
    /// or rewritten since), and took them as decided.
    fn reached_decided(&self, line_no: u64) -> Result<(), JournalError> {
        match self.decided {
            Some(decided) if decided.seq > self.head.seq => Err(corrupt(
                self.path,
                line_no,
                format!(
                    "the journal ends before seq {}, which was read before (it was cut or rewritten while it was read)",
                    decided.seq
                ),
            )),
            _ => Ok(()),
        }
    }

    /// Checks `event`, read from the line `line_no` at offset `before`,
    /// against the ledger's rules in `state` (re-deciding it), settling a
    /// suspected repeat of its id in a fingerprinting state.
    fn check_rules(
        &self,
        state: &mut State,
        event: &Event<'_>,
        before: u64,
        line_no: u64,
    ) -> Result<(), JournalError> {
        let path = self.path;
        // A reversal is checked against the event it names, read back
        // from the part of the file already checked.
        let original_line = match event.reverses {
            Some(seq) if seq < event.seq && seq >= 1 => {
                Some(self.find_line(seq, (before, event.seq))?)
            }
            _ => None,
        };
        let original = match &original_line {
            Some(line) => Some(
                line::decode(line, &mut Vec::new())
                    .map_err(|e| corrupt(path, line_no, e.to_string()))?,
            ),
            None => None,
        };
        let decided = loop {
            let decided = domain::check(
                state,
                event,
                original.as_ref().map(|d| Original::of(&d.event)),
            );
            match (decided, &event.id) {
                (Err(Rejection::DuplicateId { .. }), Some(id)) if state.is_fingerprinting() => {
                    if let Some(seq) = self.confirm_id(state, id, before, line_no)? {
                        let id = id.to_string();
                        let repeat = Rejection::DuplicateId { id, seq };
                        return Err(corrupt(path, line_no, repeat.to_string()));
                    }
                }
                // An auditing state took the id for new: had it known
                // every id, a repeat would have come before this refusal
                // (SPEC 3: input rules, then the id, then the ledger's).
                (Err(e), Some(id)) if state.collects_ids() => {
                    let request =
                        Request::of_event(event, original.as_ref().map(|d| Original::of(&d.event)));
                    if request.validate().is_ok()
                        && let Some(repeat) = self.repeated_id(state, Some(id))?
                    {
                        return Err(repeat);
                    }
                    return Err(corrupt(path, line_no, e.to_string()));
                }
                (decided, _) => {
                    break decided.map_err(|e| corrupt(path, line_no, e.to_string()))?;
                }
            }
        };
        if decided != event.change {
            let written = event
                .change
                .amount()
                .map(|a| a.to_string())
                .unwrap_or_default();
            let canonical = decided.amount().map(|a| a.to_string()).unwrap_or_default();
            return Err(corrupt(
                path,
                line_no,
                format!("amount \"{written}\" should be written \"{canonical}\""),
            ));
        }
        Ok(())
    }

    /// Settles a suspected repeat of `id` in a fingerprinting state (see
    /// [`State::fingerprinting`]) by reading the earlier lines its
    /// fingerprint points to, in the first `before` bytes: the seq of the
    /// event that used `id`, or `None` once the state has learnt the id
    /// that only shares its fingerprint (then check again).
    fn confirm_id(
        &self,
        state: &mut State,
        id: &str,
        before: u64,
        line_no: u64,
    ) -> Result<Option<u64>, JournalError> {
        let path = self.path;
        let suspects: Vec<u64> = state.id_suspects(id).collect();
        for seq in suspects {
            let Some(other) = self.id_at(seq, (before, state.seq() + 1))? else {
                continue;
            };
            if other == id {
                return Ok(Some(seq));
            }
            if state.share_id_print(&other, id) && state.learn_id(&other, seq) {
                return Ok(None);
            }
        }
        // Only a state not folded from this journal could point elsewhere.
        Err(corrupt(
            path,
            line_no,
            format!(
                "id {id}: cannot tell it apart from the ids of seqs that share its fingerprint"
            ),
        ))
    }

    /// The id of event `seq`, read from its line, before the line at
    /// `before` whose seq is `next`.
    fn id_at(&self, seq: u64, (before, next): (u64, u64)) -> Result<Option<String>, JournalError> {
        let line = self.find_line(seq, (before, next))?;
        let decoded = line::decode(&line, &mut Vec::new())
            .map_err(|e| corrupt(self.path, seq + 1, e.to_string()))?;
        Ok(decoded.event.id.map(|id| id.into_owned()))
    }

    /// For an auditing state ([`State::auditing`]), which took every id
    /// for new: the first event, among those folded in (and `refused`, the
    /// id of the next line, whose check failed), whose id repeats an
    /// earlier event's, as the error its check would have been had the
    /// state known every id. Reads the lines of the events whose ids share
    /// a fingerprint, to tell them apart.
    fn repeated_id(
        &self,
        state: &mut State,
        refused: Option<&str>,
    ) -> Result<Option<JournalError>, JournalError> {
        let next = self.head.seq + 1;
        let shared = match refused {
            Some(id) => state.shared_id_prints_with(id),
            None => state.shared_id_prints(),
        };
        let mut first: Option<(u64, String, u64)> = None;
        for seqs in shared {
            let mut seen: Vec<(String, u64)> = Vec::new();
            for seq in seqs {
                if first.as_ref().is_some_and(|&(at, ..)| at <= seq) {
                    break;
                }
                let id = match refused {
                    Some(id) if seq == next => id.to_owned(),
                    _ => match self.id_at(seq, (self.head.end, next))? {
                        Some(id) => id,
                        None => continue,
                    },
                };
                match seen.iter().find(|(other, _)| *other == id) {
                    Some(&(_, earlier)) => {
                        first = Some((seq, id, earlier));
                        break;
                    }
                    None => seen.push((id, seq)),
                }
            }
        }
        Ok(first.map(|(seq, id, earlier)| {
            let repeat = Rejection::DuplicateId { id, seq: earlier };
            corrupt(self.path, seq + 1, repeat.to_string())
        }))
    }

    /// Checks the lines after the first line of a multi-event append
    /// (`first`, at `offset`, hashing to `hash`; the rest from `rest` on):
    /// up to `count - 1` of them, each must decode and continue the append
    /// (its seq, its `prev`, no count of its own). `Ok(true)` if all of
    /// them are there; `Ok(false)` if the scan's end comes first: a torn
    /// append, whose complete lines must still chain, since a cut write
    /// only loses its end. Also whether one of its lines is the head given
    /// to [`Scanner::decided_until`] (a line there that is not is an
    /// error, as in [`Scanner::next`]).
    fn check_group(
        &self,
        offset: u64,
        rest: u64,
        first_line_no: u64,
        first: &Event<'_>,
        hash: LineHash,
        count: u64,
    ) -> Result<(bool, bool), JournalError> {
        let path = self.path;
        let (mut prev, mut seq, mut line_no) = (hash, first.seq, first_line_no);
        let mut holds_decided = self.is_decided_head(seq, hash, line_no)?;
        let mut left = count.saturating_sub(1);
        let mut scratch = Vec::new();
        // Read in chunks, keeping at most one partial line: an append may
        // be large, and the bytes after it are not to be trusted.
        let mut chunk = vec![0u8; 64 * 1024];
        let mut pending: Vec<u8> = Vec::new();
        let mut at = rest;
        while left > 0 {
            let n = read_at(self.file, path, &mut chunk, at, self.len)?;
            if n == 0 {
                return Ok((false, holds_decided));
            }
            at += n as u64;
            pending.extend_from_slice(&chunk[..n]);
            let mut start = 0;
            while left > 0
                && let Some(i) = memchr::memchr(b'\n', &pending[start..])
            {
                let line = &pending[start..start + i];
                seq += 1;
                line_no += 1;
                let decoded = line::decode(line, &mut scratch)
                    .map_err(|e| corrupt(path, line_no, e.to_string()))?;
                if decoded.event.seq != seq || decoded.prev != prev || decoded.event.batch.is_some()
                {
                    return Err(corrupt(
                        path,
                        line_no,
                        format!(
                            "line does not continue the multi-event append at line {first_line_no} (offset {offset})"
                        ),
                    ));
                }
                prev = LineHash::of(line);
                holds_decided |= self.is_decided_head(seq, prev, line_no)?;
                start += i + 1;
                left -= 1;
            }
            pending.drain(..start);
            if pending.len() > MAX_LINE {
                return Err(corrupt(
                    path,
                    line_no + 1,
                    "the line is longer than any ledger line (64 KiB)",
                ));
            }
        }
        Ok((true, holds_decided))
    }
}

/// A scan and the state it folds: every event it hands over was checked
/// against the state before it ([`Scanner::next`]) and has been folded into
/// it ([`domain::evolve`]). Every path that reads the journal goes through
/// this one loop, so that rule lives in one place.
pub struct Replay<'f> {
    scanner: Scanner<'f>,
    state: State,
    /// Where a partial state loads each event's entries from.
    model: Option<&'f ReadModel>,
    /// Works out the key of each id folded in, for a read model built
    /// from the state ([`Replay::keeping_id_keys`]).
    keys: Option<Keyer>,
}

impl<'f> Replay<'f> {
    /// Replays `scanner`'s events into `state` (the whole state at its start).
    pub fn new(scanner: Scanner<'f>, state: State) -> Replay<'f> {
        Replay {
            scanner,
            state,
            model: None,
            keys: None,
        }
    }

    /// Replays `scanner`'s events from the journal's start into a state
    /// that keeps the ids as fingerprints ([`State::fingerprinting`]),
    /// while a [`Keyer`] works out each id's key in the read model
    /// ([`Replay::id_keys`]): what a rebuilt model writes, in 8 bytes an
    /// event, where a state of names took about 60 bytes an id.
    pub fn keeping_id_keys(scanner: Scanner<'f>) -> Replay<'f> {
        Replay::keeping_id_keys_in(scanner, State::fingerprinting())
    }

    /// [`Replay::keeping_id_keys`] into `state`, an empty state.
    pub(crate) fn keeping_id_keys_in(scanner: Scanner<'f>, state: State) -> Replay<'f> {
        Replay {
            keys: Some(Keyer::default()),
            ..Replay::new(scanner, state)
        }
    }

    /// Replays `scanner`'s events into `state`, a partial state at its
    /// start: before each event, what its check reads is loaded from
    /// `model`. A failure of the model ends the replay with
    /// [`JournalError::Model`], for the caller to replay in full instead.
    pub fn with_model(scanner: Scanner<'f>, state: State, model: &'f ReadModel) -> Replay<'f> {
        Replay {
            scanner,
            state,
            model: Some(model),
            keys: None,
        }
    }

    /// The next event, and the state once it is folded in; `None` at the
    /// end or at a torn tail. The error of a line refused comes as the
    /// scanner gives it: an audit ([`State::auditing`]), which must name
    /// a repeated id on an earlier line first, folds with
    /// [`Replay::each`] or [`Replay::run`].
    pub fn step(&mut self) -> Result<Option<(&State, Entry<'_>)>, JournalError> {
        let Some(entry) = self.scanner.next(&mut self.state, self.model)? else {
            return Ok(None);
        };
        domain::evolve(&mut self.state, &entry.event);
        keep_id_key(&mut self.keys, &entry.event);
        Ok(Some((&self.state, entry)))
    }

    /// Hands every remaining event to `visit`, with the state once it is
    /// folded in. Unlike a loop over [`Replay::step`], this does not move
    /// each entry out to the caller: an entry is a few hundred bytes, and
    /// copying it step by step costs a long replay a tenth of its time.
    pub fn each<E: From<JournalError>>(
        &mut self,
        mut visit: impl FnMut(&State, &Entry<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        loop {
            // Matched by reference: `?` would move the entry out again.
            let next = self.scanner.next(&mut self.state, self.model);
            let entry = match next {
                Ok(Some(ref entry)) => entry,
                Ok(None) => return Ok(()),
                Err(e) => return Err(self.refused(e).into()),
            };
            domain::evolve(&mut self.state, &entry.event);
            keep_id_key(&mut self.keys, &entry.event);
            visit(&self.state, entry)?;
        }
    }

    /// Folds every remaining event, keeping a copy of the state *before*
    /// the first event that `past` picks (the state `--as-of` describes),
    /// if one does. Like [`Replay::each`], it never moves an entry out.
    pub fn run_keeping(
        &mut self,
        mut past: impl FnMut(&Event<'_>) -> bool,
    ) -> Result<Option<State>, JournalError> {
        let mut before = None;
        loop {
            // Matched by reference, as in `each`.
            let next = self.scanner.next(&mut self.state, self.model);
            let entry = match next {
                Ok(Some(ref entry)) => entry,
                Ok(None) => return Ok(before),
                Err(e) => return Err(self.refused(e)),
            };
            if before.is_none() && past(&entry.event) {
                before = Some(self.state.clone());
            }
            domain::evolve(&mut self.state, &entry.event);
            keep_id_key(&mut self.keys, &entry.event);
        }
    }

    /// The error to give for `refused`, the scan's error at a line: for
    /// an auditing state ([`State::auditing`]), a repeated id among the
    /// events before it, which comes first.
    fn refused(&mut self, refused: JournalError) -> JournalError {
        match self.scanner.repeated_id(&mut self.state, None) {
            Ok(Some(repeat)) => repeat,
            _ => refused,
        }
    }

    /// Folds every remaining event.
    pub fn run(&mut self) -> Result<(), JournalError> {
        self.each(|_, _| Ok::<_, JournalError>(()))
    }

    /// The key and seq of each id folded in, once the replay is done;
    /// `None` unless it was made by [`Replay::keeping_id_keys`] and its
    /// keys were all worked out.
    pub fn id_keys(&mut self) -> Option<AppendedIds> {
        self.keys.take()?.finish()
    }

    /// The state so far.
    pub fn state(&self) -> &State {
        &self.state
    }

    /// Where the replay stands: after the last event handed over.
    pub fn head(&self) -> Head {
        self.scanner.head()
    }

    /// The torn tail it stopped at, if any.
    pub fn torn(&self) -> Option<Torn> {
        self.scanner.torn()
    }

    /// The state, the head and the torn tail, once done.
    pub fn finish(self) -> (State, Head, Option<Torn>) {
        let (head, torn) = (self.scanner.head(), self.scanner.torn());
        (self.state, head, torn)
    }
}

/// Hands `event`'s id to `keys`, if there are keys to work out.
fn keep_id_key(keys: &mut Option<Keyer>, event: &Event<'_>) {
    if let (Some(keys), Some(id)) = (keys, event.id.as_deref()) {
        keys.push(event.seq, id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Command, Request};
    use crate::journal::tests::request;
    use crate::journal::{ReadJournal, Writer};
    use crate::money::Decimal;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]

        /// The marks of a scan begun at any seq bracket every earlier line
        /// so that it is found, with its bytes, from any later line; the
        /// line asked from itself is not (it lies past what is read).
        #[test]
        fn marks_bracket_every_earlier_line(
            lens in proptest::collection::vec(
                prop_oneof![8 => 10usize..400, 1 => 400usize..crate::journal::line::MAX_LINE - 16],
                1..200,
            ),
            from in 0usize..100,
        ) {
            let (_dir, path, lines, starts) = crate::journal::tests::lines_of_lengths(&lens);
            let file = Backing::File(std::fs::File::open(&path).expect("open"));
            let mut marks = Marks::default();
            for (i, &start) in starts.iter().enumerate().skip(from.min(lines.len() - 1)) {
                let at = (start, i as u64 + 1);
                for (j, line) in lines[..i].iter().enumerate() {
                    let seq = j as u64 + 1;
                    let found = super::super::find_line_in(&file, &path, start, marks.bracket(seq, at), seq);
                    prop_assert_eq!(found.expect("found"), line.clone());
                }
                prop_assert!(super::super::find_line_in(&file, &path, start, marks.bracket(at.1, at), at.1).is_err());
                marks.record(i as u64 + 1, start);
            }
        }
    }

    /// A journal past the reader-thread threshold, of lines of many lengths
    /// (so that lines straddle read chunks every which way), written as
    /// several appends; and the state its writer ended with.
    fn large_journal() -> &'static (tempfile::TempDir, std::path::PathBuf, State) {
        static JOURNAL: std::sync::OnceLock<(tempfile::TempDir, std::path::PathBuf, State)> =
            std::sync::OnceLock::new();
        JOURNAL.get_or_init(|| {
            let dir = tempfile::tempdir().expect("tempdir");
            let path = dir.path().join("journal.jsonl");
            let state = write_large_journal(&path);
            (dir, path, state)
        })
    }

    fn write_large_journal(path: &Path) -> State {
        let memos: Vec<String> = (0..97).map(|i| "m".repeat(i * 131 % 501)).collect();
        let one = Decimal::parse_positive("1.25").expect("amount");
        for round in 0..4 {
            let mut writer = Writer::open(path).expect("open");
            if round == 0 {
                for account in ["a", "b"] {
                    let create = Command::create(account);
                    writer.apply(&request(create)).expect("create");
                }
            }
            for i in 0..7_500 {
                let command = match i % 3 {
                    0 | 1 => Command::Deposit {
                        account: "a",
                        amount: one,
                    },
                    _ => Command::Transfer {
                        from: "a",
                        to: "b",
                        amount: one,
                    },
                };
                let request = Request {
                    memo: Some(&memos[(round * 7_500 + i) % memos.len()]),
                    ..request(command)
                };
                writer.apply(&request).expect("apply");
            }
            writer.commit().expect("commit");
            if round == 3 {
                return writer.state().clone();
            }
        }
        unreachable!("the last round returns")
    }

    /// The threaded reader, with its recycled buffers and its parsing left
    /// to either thread, reads every line exactly as the file holds it.
    #[test]
    fn a_large_journal_scans_line_for_line_as_the_file_holds_it() {
        let (_, path, written) = large_journal();
        let bytes = std::fs::read(path).expect("read");
        assert!(
            bytes.len() as u64 > THREAD_MIN_BYTES * 3 / 2,
            "{}",
            bytes.len()
        );
        let journal = ReadJournal::open(path).expect("open").expect("exists");
        let mut scanner = journal.scanner().expect("a header");
        assert!(matches!(scanner.source, Source::Thread { .. }));
        let mut state = State::default();
        let mut offset = memchr::memchr(b'\n', &bytes).expect("header") + 1;
        while let Some(entry) = scanner.next(&mut state, None).expect("valid") {
            let end = offset + entry.line.len();
            assert_eq!(entry.line, &bytes[offset..end], "seq {}", entry.event.seq);
            assert_eq!(entry.hash, LineHash::of(entry.line));
            assert_eq!(entry.end, end as u64 + 1);
            offset = end + 1;
            domain::evolve(&mut state, &entry.event);
        }
        assert_eq!(offset, bytes.len());
        assert_eq!(scanner.torn(), None);
        assert_eq!(&state, written);
    }

    /// A journal of `n` deposits into `a`, each with the id `k{seq}`.
    fn journal_with_ids(path: &Path, n: u64) {
        let mut writer = Writer::open(path).expect("open");
        let create = Command::create("a");
        writer.apply(&request(create)).expect("create");
        let ids: Vec<String> = (2..=n + 1).map(|seq| format!("k{seq}")).collect();
        for id in &ids {
            let deposit = Command::Deposit {
                account: "a",
                amount: Decimal::parse_positive("1").expect("amount"),
            };
            let request = Request {
                id: Some(id),
                ..request(deposit)
            };
            writer.apply(&request).expect("deposit");
        }
        writer.commit().expect("commit");
    }

    /// Replays the journal at `path` into a state whose ids nearly all
    /// share their fingerprint.
    fn replay_colliding(path: &Path) -> Result<State, JournalError> {
        let journal = ReadJournal::open(path).expect("open").expect("exists");
        let mut replay = Replay::new(
            journal.scanner().expect("a header"),
            State::fingerprinting_colliding(),
        );
        replay.run()?;
        Ok(replay.finish().0)
    }

    /// Appends the line `make(at, prev)` to the journal at `path`, with the
    /// `at` of its last line and chained to it, as a hand would that knows
    /// the format; returns that last line, the `at` and the new line.
    fn append_chained(
        path: &Path,
        make: impl FnOnce(At, LineHash) -> String,
    ) -> (String, At, String) {
        let text = std::fs::read_to_string(path).expect("read");
        let last = text.lines().last().expect("a line").to_owned();
        let at = line::decode(last.as_bytes(), &mut Vec::new())
            .expect("decodes")
            .event
            .at;
        let added = make(at, LineHash::of(last.as_bytes()));
        std::fs::write(path, format!("{text}{added}\n")).expect("write");
        (last, at, added)
    }

    /// Suspicions from shared fingerprints are settled by reading the
    /// earlier lines: a journal of distinct ids replays as it was written,
    /// and a repeated one is named with the seq it repeats.
    #[test]
    fn shared_fingerprints_are_settled_by_reading_the_earlier_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("journal.jsonl");
        journal_with_ids(&path, 300);
        let state = replay_colliding(&path).expect("valid");
        assert_eq!(state.seq(), 301);
        assert_eq!(
            state.account("a").map(|a| a.balance),
            Some(crate::money::Amount(30_000))
        );
        append_chained(&path, |at, prev| {
            format!(
                r#"{{"seq":302,"at":"{at}","type":"MoneyDeposited","account":"a","amount":"1.00","id":"k7","prev":"{prev}"}}"#
            )
        });
        let err = replay_colliding(&path).expect_err("a repeated id");
        assert_eq!(
            err.to_string(),
            format!(
                "{}: line 303: id k7 was already used at seq 7",
                path.display()
            )
        );
    }

    /// What a replay into `state` makes of the journal at `path`: its
    /// last seq and the balance of `a`, or its error.
    fn replayed(path: &Path, state: State) -> Result<(u64, Option<i128>), String> {
        let journal = ReadJournal::open(path).expect("open").expect("exists");
        let mut replay = Replay::new(journal.scanner().expect("a header"), state);
        replay.run().map_err(|e| e.to_string())?;
        let state = replay.finish().0;
        Ok((state.seq(), state.account("a").map(|a| a.balance.0)))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        /// An audit, which proves the ids distinct only where it stops,
        /// names the same first bad line in the same words as a state that
        /// knows every id, also when nearly every id shares a fingerprint:
        /// a repeat before a line refused for another reason, or on it,
        /// comes first.
        #[test]
        fn an_audit_names_the_first_bad_line_as_a_check_of_each_id_does(
            n in 1u64..30,
            added in proptest::collection::vec(0u64..45, 0..6),
            overdraft in proptest::option::of(0usize..6),
        ) {
            let dir = tempfile::tempdir().expect("tempdir");
            let path = dir.path().join("journal.jsonl");
            journal_with_ids(&path, n);
            for (i, draw) in added.iter().enumerate() {
                let seq = n + 2 + i as u64;
                append_chained(&path, |at, prev| {
                    // The overdraft carries an id too: a repeat there
                    // comes before the overdraft.
                    let id = format!(r#","id":"k{draw}""#);
                    let (kind, amount) = match overdraft == Some(i) {
                        true => ("MoneyWithdrawn", "9999.00"),
                        false => ("MoneyDeposited", "1.00"),
                    };
                    format!(
                        r#"{{"seq":{seq},"at":"{at}","type":"{kind}","account":"a","amount":"{amount}"{id},"prev":"{prev}"}}"#
                    )
                });
            }
            let exact = replayed(&path, State::default());
            prop_assert_eq!(&replayed(&path, State::auditing()), &exact);
            prop_assert_eq!(&replayed(&path, State::auditing_colliding()), &exact);
        }
    }

    /// Events up to a decided head are chained but not decided again; the
    /// head's line must be the one decided, else the scan stops there.
    #[test]
    fn events_up_to_a_decided_head_are_chained_but_not_decided_again() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("journal.jsonl");
        journal_with_ids(&path, 2);
        // A withdrawal of more than `a` holds, chained as a forger would.
        let (last, at, forged) = append_chained(&path, |at, prev| {
            format!(
                r#"{{"seq":4,"at":"{at}","type":"MoneyWithdrawn","account":"a","amount":"9.00","prev":"{prev}"}}"#
            )
        });
        let journal = ReadJournal::open(&path).expect("open").expect("exists");
        let header = journal.header_head().expect("a header");
        let scan = |decided: Option<Head>| {
            let mut replay = Replay::new(
                journal.scanner_from(header).decided_until(decided),
                State::default(),
            );
            replay.run().map(|()| replay.finish().1)
        };
        let err = scan(None).expect_err("an overdraft");
        assert!(err.to_string().contains("line 5: "), "{err}");
        let head = Head {
            seq: 4,
            hash: LineHash::of(forged.as_bytes()),
            end: std::fs::metadata(&path).expect("metadata").len(),
            at,
        };
        assert_eq!(scan(Some(head)).expect("taken as decided"), head);
        // Taken as decided up to seq 3 only: seq 4 is decided.
        let before = Head {
            seq: 3,
            hash: LineHash::of(last.as_bytes()),
            ..head
        };
        assert!(scan(Some(before)).is_err());
        let other = Head {
            hash: LineHash::of(b"another line"),
            ..head
        };
        let err = scan(Some(other)).expect_err("not the line decided");
        assert!(
            err.to_string().contains("line 5: the line changed"),
            "{err}"
        );
    }

    /// Blocks cut the file at line ends whether or not the reader parses
    /// them, reusing the memory of earlier blocks.
    #[test]
    fn blocks_reused_and_parsed_or_not_hold_every_line_once() {
        let (_, path, _) = large_journal();
        let bytes = std::fs::read(path).expect("read");
        let mut blocks = Blocks {
            file: File::open(path).expect("open"),
            pos: 0,
            len: bytes.len() as u64,
            carry: Vec::new(),
            last_at: LastAt::default(),
        };
        let (mut seen, mut spent, mut n) = (Vec::new(), None, 0);
        while let Some(block) = blocks.next_block(spent.take(), n % 3 == 0).expect("read") {
            let data = block.data.bytes();
            assert_eq!(block.offset, seen.len() as u64);
            assert_eq!(block.lines.last().map_or(0, |l| l.0 + 1), data.len());
            let lines = memchr::memchr_iter(b'\n', data).count();
            let ends: Vec<usize> = memchr::memchr_iter(b'\n', data).collect();
            assert_eq!(block.lines.iter().map(|l| l.0).collect::<Vec<_>>(), ends);
            assert_eq!(block.lines.len(), lines);
            assert_eq!(block.spans.len(), if n % 3 == 0 { lines } else { 0 });
            seen.extend_from_slice(data);
            spent = Some(block);
            n += 1;
        }
        assert!(n > 8, "{n} blocks");
        assert_eq!(seen, bytes);
    }
}
