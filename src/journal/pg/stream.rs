//! A long read of a database's lines on a connection of its own, inside
//! the reading transaction's snapshot: the server sends rows with `COPY`
//! while another thread checks them, where paged queries on the reading
//! connection would have each side wait for the other.

use std::io::{self, BufRead, Read};
use std::path::PathBuf;

use postgres::Client;

use super::{JournalError, connect, damaged, database_error};

/// A second connection in another transaction's snapshot, ready to read
/// its lines on a thread of its own.
pub struct LineStream {
    path: PathBuf,
    client: Client,
    start: u64,
    len: u64,
}

impl LineStream {
    /// Connects and joins `snapshot`, to read the lines after offset
    /// `start` up to `len`.
    pub(super) fn open(
        path: PathBuf,
        url: &str,
        snapshot: &str,
        start: u64,
        len: u64,
    ) -> Result<LineStream, JournalError> {
        // The snapshot's name is the server's, checked to be one before it
        // goes into a statement.
        if snapshot.is_empty() || !snapshot.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-') {
            return Err(JournalError::Database {
                path,
                action: "read",
                reason: "the server named its snapshot oddly".into(),
            });
        }
        let mut client = connect(&path, url)?;
        // The lines come in offset order from their index: the planner,
        // without statistics on a freshly copied table, would otherwise
        // sort them on disk first. The copy is one statement that lasts as
        // long as its reader takes (a `history | less` waiting on its
        // user): the server's `statement_timeout` is for runaway queries,
        // and paged reads on the first connection never met it. Nor may the
        // wait for the reader thread to start the copy end the session.
        client
            .batch_execute(&format!(
                "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY;
                 SET TRANSACTION SNAPSHOT '{snapshot}';
                 SET LOCAL enable_sort = off; SET LOCAL enable_bitmapscan = off;
                 SET LOCAL jit = off; SET LOCAL statement_timeout = 0;
                 SET LOCAL idle_in_transaction_session_timeout = 0"
            ))
            .map_err(|e| database_error(&path, "read", &e))?;
        Ok(LineStream {
            path,
            client,
            start,
            len,
        })
    }

    /// Hands `read` the journal's bytes from the line after `start` to
    /// `len`, as a file holds them. Rows that do not follow one another
    /// end the bytes early, as a file that shrank would; the scanner then
    /// reports what is missing.
    pub fn run<T>(mut self, read: impl FnOnce(&mut dyn Read) -> T) -> Result<T, JournalError> {
        let copy = chunks_query(self.start, self.len);
        let rows = self
            .client
            .copy_out(&copy)
            .map_err(|e| database_error(&self.path, "read", &e))?;
        let mut lines = Lines::new(rows, self.start);
        Ok(read(&mut lines))
    }
}

/// Bytes of the journal sent per row of the copy, about. The server
/// joins the lines of each stretch into one value: the driver's work is
/// per message (a wake-up of its runtime each), which with a row per line
/// took about half a second of the client's CPU for a million lines. Larger
/// stretches save no more time, and the allocator keeps more of them
/// around: `verify` of a million events peaked at 27 MB with 64 KiB, 41 MB
/// with 256 KiB and 54 MB with 1 MiB.
const CHUNK_BYTES: u64 = 64 << 10;

/// A `COPY` of the lines ending after `start` up to `len`: one row per
/// stretch of `CHUNK_BYTES` (by the offset each line ends at), holding
/// the offsets its lines end at (an `int8[]`) and the lines joined by
/// `\n` (a `bytea`); a stretch without lines is two nulls. The stretches
/// come in order (the sort is of their starts alone, under a nested loop
/// that keeps it, so no stretch waits for the others); within one, the
/// lines come in the order of the subquery, which PostgreSQL does not
/// promise to keep when it aggregates, so the reader pairs each line with
/// its offset (both aggregates see the rows in one order) and puts them
/// in order itself. (An `ORDER BY` in the aggregate sorts every stretch
/// again on the server before PostgreSQL 16: half as long again there.
/// Each line framed by its offset and length in one `bytea`, as before
/// November 30's eighth session, took the server 0.85 s for a million
/// lines, the two aggregates 0.67 s.)
fn chunks_query(start: u64, len: u64) -> String {
    let (start, len) = (super::as_int(start), super::as_int(len));
    format!(
        "COPY (SELECT s.ends, s.lines FROM \
           (SELECT c FROM generate_series({start}::bigint, {len} - 1, {CHUNK_BYTES}) c ORDER BY c) c, \
           LATERAL (SELECT array_agg(end_off) AS ends, string_agg(line, decode('0a', 'hex')) AS lines \
             FROM (SELECT end_off, line FROM ledger_lines \
               WHERE end_off > c AND end_off <= least(c + {CHUNK_BYTES}, {len}) ORDER BY end_off) l) s \
         ORDER BY c.c) TO STDOUT (FORMAT binary)"
    )
}

/// Rows of stretches of lines (see [`chunks_query`]) in `COPY`'s binary
/// format, read as the bytes of the lines, each with its `\n`.
struct Lines<R> {
    rows: R,
    /// The current stretch's lines, and the offsets they end at (an array
    /// in its binary form).
    chunk: Vec<u8>,
    ends: Vec<u8>,
    /// Where the stretch's lines lie in `chunk`, in offset order.
    entries: Vec<Entry>,
    /// The next of `entries` to hand out.
    next: usize,
    /// The offset just past the current line.
    pos: u64,
    /// Where the rest of the current line starts in `chunk`, and its
    /// length, before its `\n`.
    from: usize,
    left: usize,
    /// Whether the current line's `\n` is still to hand out.
    newline: bool,
    /// Whether the copy's header has been read.
    started: bool,
    ended: bool,
}

/// A line in a stretch: the offset just past it, and its bytes' place.
#[derive(Clone, Copy)]
struct Entry {
    end: u64,
    at: usize,
    len: usize,
}

/// `PGCOPY\n\377\r\n\0`, then flags and the header extension's length.
const SIGNATURE: &[u8; 11] = b"PGCOPY\n\xff\r\n\0";

impl<R: BufRead> Lines<R> {
    fn new(rows: R, start: u64) -> Lines<R> {
        Lines {
            rows,
            chunk: Vec::new(),
            ends: Vec::new(),
            entries: Vec::new(),
            next: 0,
            pos: start,
            from: 0,
            left: 0,
            newline: false,
            started: false,
            ended: false,
        }
    }

    /// Moves to the next line; false at the end of the rows, or at a line
    /// that does not start where the last one ended.
    fn next_line(&mut self) -> io::Result<bool> {
        while !self.ended {
            let Some(&entry) = self.entries.get(self.next) else {
                self.ended = !self.next_chunk()?;
                continue;
            };
            self.next += 1;
            if self.pos + entry.len as u64 + 1 != entry.end {
                self.ended = true;
                break;
            }
            self.pos = entry.end;
            self.from = entry.at;
            self.left = entry.len;
            self.newline = true;
            return Ok(true);
        }
        Ok(false)
    }

    /// Reads the next stretch into `chunk` and `entries`; false at the
    /// end of the copy.
    fn next_chunk(&mut self) -> io::Result<bool> {
        if !self.started {
            self.started = true;
            let mut header = [0; 19];
            self.rows.read_exact(&mut header)?;
            let extension = u32::from_be_bytes([header[15], header[16], header[17], header[18]]);
            if &header[..11] != SIGNATURE {
                return Err(damaged("a copy that is not in binary format"));
            }
            io::copy(
                &mut (&mut self.rows).take(extension.into()),
                &mut io::sink(),
            )?;
        }
        let mut fields = [0; 2];
        self.rows.read_exact(&mut fields)?;
        match i16::from_be_bytes(fields) {
            -1 => return Ok(false),
            2 => {}
            _ => return Err(damaged("a row of the wrong shape")),
        }
        self.entries.clear();
        self.next = 0;
        let ends = field(&mut self.rows, &mut self.ends)?;
        let lines = field(&mut self.rows, &mut self.chunk)?;
        match (ends, lines) {
            (true, true) => entries_of(&self.ends, &self.chunk, &mut self.entries)?,
            // Nulls: a stretch without lines.
            (false, false) => {}
            _ => return Err(damaged("a stretch of lines of the wrong shape")),
        }
        Ok(true)
    }
}

/// Reads a field of a row into `into` (over what it held); false for a
/// null.
fn field(rows: &mut impl Read, into: &mut Vec<u8>) -> io::Result<bool> {
    let mut len = [0; 4];
    rows.read_exact(&mut len)?;
    let Ok(len) = u32::try_from(i32::from_be_bytes(len)) else {
        return Ok(false);
    };
    let len = usize::try_from(len).map_err(|_| damaged("a stretch too long"))?;
    // The last stretch's bytes are read over, not zeroed first.
    into.resize(len, 0);
    rows.read_exact(into)?;
    Ok(true)
}

/// The lines of a stretch, by the offset they end at: `lines` cut at each
/// `\n`, the nth piece paired with the nth of `ends` (an `int8[]` in
/// binary form). A line that holds a `\n` of its own leaves pieces that
/// do not fit their offsets, and the bytes end there, as at any line that
/// does not follow the last.
fn entries_of(ends: &[u8], lines: &[u8], entries: &mut Vec<Entry>) -> io::Result<()> {
    let shape = || damaged("a stretch's offsets of the wrong shape");
    let int = |at: usize| -> io::Result<i32> {
        let bytes = ends.get(at..at + 4).ok_or_else(shape)?;
        Ok(i32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
    };
    // Dimensions, a null flag, the element type (int8); then the one
    // dimension's length and lower bound.
    const INT8: i32 = 20;
    if int(0)? != 1 || int(4)? != 0 || int(8)? != INT8 {
        return Err(shape());
    }
    let count = usize::try_from(int(12)?).map_err(|_| shape())?;
    let values = ends.get(20..).ok_or_else(shape)?;
    if values.len() != count * 12 {
        return Err(shape());
    }
    let mut at = 0;
    let pieces = memchr::memchr_iter(b'\n', lines).chain(std::iter::once(lines.len()));
    for (value, piece_end) in values.chunks_exact(12).zip(pieces) {
        let (len, end) = value.split_at(4);
        let end: [u8; 8] = end.try_into().map_err(|_| shape())?;
        if len != 8i32.to_be_bytes() {
            return Err(shape());
        }
        let end =
            u64::try_from(i64::from_be_bytes(end)).map_err(|_| damaged("a negative offset"))?;
        entries.push(Entry {
            end,
            at,
            len: piece_end - at,
        });
        at = piece_end + 1;
    }
    if !entries.is_sorted_by_key(|e| e.end) {
        entries.sort_unstable_by_key(|e| e.end);
    }
    Ok(())
}

impl<R: BufRead> Read for Lines<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.fill(buf).map_err(explained)
    }
}

/// An error of the driver's, with the server's reason: the driver's
/// error shows only "db error" on its own.
fn explained(e: io::Error) -> io::Error {
    let reason = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<postgres::Error>())
        .map(super::reason);
    match reason {
        Some(reason) => io::Error::new(e.kind(), reason),
        None => e,
    }
}

impl<R: BufRead> Lines<R> {
    /// Fills `buf` with the bytes of the lines, as [`Read::read`].
    fn fill(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut n = 0;
        while n < buf.len() {
            if self.left > 0 {
                let take = (buf.len() - n).min(self.left);
                buf[n..n + take].copy_from_slice(&self.chunk[self.from..self.from + take]);
                self.from += take;
                self.left -= take;
                n += take;
            } else if self.newline {
                buf[n] = b'\n';
                self.newline = false;
                n += 1;
            } else if !self.next_line()? {
                break;
            }
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stretch's `(end_off, line)` lines; `None`: a stretch without lines.
    type Stretch<'a> = Option<&'a [(i64, &'a [u8])]>;

    /// A binary `COPY` of stretches, as the server sends it.
    fn copy_of(chunks: &[Stretch<'_>]) -> Vec<u8> {
        let mut bytes = SIGNATURE.to_vec();
        bytes.extend_from_slice(&0u32.to_be_bytes());
        bytes.extend_from_slice(&0u32.to_be_bytes());
        let field = |bytes: &mut Vec<u8>, value: &[u8]| {
            bytes.extend_from_slice(&i32::try_from(value.len()).unwrap().to_be_bytes());
            bytes.extend_from_slice(value);
        };
        for chunk in chunks {
            bytes.extend_from_slice(&2i16.to_be_bytes());
            let Some(lines) = chunk else {
                bytes.extend_from_slice(&(-1i32).to_be_bytes());
                bytes.extend_from_slice(&(-1i32).to_be_bytes());
                continue;
            };
            // An int8[]: one dimension, no nulls, type 20, its length and
            // lower bound, then each value after its length.
            let mut ends = Vec::new();
            for int in [1, 0, 20, i32::try_from(lines.len()).unwrap(), 1] {
                ends.extend_from_slice(&int.to_be_bytes());
            }
            for (end, _) in *lines {
                ends.extend_from_slice(&8i32.to_be_bytes());
                ends.extend_from_slice(&end.to_be_bytes());
            }
            field(&mut bytes, &ends);
            let joined: Vec<&[u8]> = lines.iter().map(|(_, line)| *line).collect();
            field(&mut bytes, &joined.join(&b'\n'));
        }
        bytes.extend_from_slice(&(-1i16).to_be_bytes());
        bytes
    }

    /// Read `step` bytes at a time, as a caller with a small buffer would.
    fn read_all(copy: &[u8], start: u64, step: usize) -> io::Result<Vec<u8>> {
        let mut lines = Lines::new(copy, start);
        let mut out = Vec::new();
        let mut buf = vec![0; step];
        loop {
            match lines.read(&mut buf)? {
                0 => return Ok(out),
                n => out.extend_from_slice(&buf[..n]),
            }
        }
    }

    #[test]
    fn stretches_read_back_as_the_lines_of_a_file_whatever_the_buffer() {
        let copy = copy_of(&[
            Some(&[(14, b"header"), (20, b"first")]),
            None,
            Some(&[(27, b"second")]),
        ]);
        for step in [1, 3, 7, 64] {
            let bytes = read_all(&copy, 7, step).unwrap();
            assert_eq!(bytes, b"header\nfirst\nsecond\n", "step {step}");
        }
    }

    #[test]
    fn lines_a_stretch_holds_out_of_order_are_read_in_order() {
        let copy = copy_of(&[
            Some(&[(13, b"second"), (6, b"first")]),
            Some(&[(19, b"third")]),
        ]);
        assert_eq!(read_all(&copy, 0, 5).unwrap(), b"first\nsecond\nthird\n");
    }

    #[test]
    fn a_line_that_does_not_follow_the_last_ends_the_bytes_there() {
        // A line missing between the first and the third: the bytes stop
        // after the first, as a shorter file would; within a stretch and
        // from one to the next.
        let copy = copy_of(&[Some(&[(6, b"first"), (20, b"third")])]);
        assert_eq!(read_all(&copy, 0, 4).unwrap(), b"first\n");
        let copy = copy_of(&[Some(&[(6, b"first")]), None, Some(&[(20, b"third")])]);
        assert_eq!(read_all(&copy, 0, 64).unwrap(), b"first\n");
        // An offset that does not fit the line's length, likewise.
        let copy = copy_of(&[Some(&[(6, b"first"), (13, b"secnd")])]);
        assert_eq!(read_all(&copy, 0, 64).unwrap(), b"first\n");
        // A line that holds a `\n` of its own: its pieces do not fit.
        let copy = copy_of(&[Some(&[(6, b"first"), (14, b"sec\nnd"), (20, b"third")])]);
        assert_eq!(read_all(&copy, 0, 64).unwrap(), b"first\n");
    }

    #[test]
    fn a_copy_of_another_shape_is_refused() {
        let lines: &[(i64, &[u8])] = &[(6, b"first")];
        let copy = copy_of(&[Some(lines)]);
        let mut bad = copy.clone();
        bad[0] = b'X';
        assert!(read_all(&bad, 0, 64).is_err());
        let mut bad = copy.clone();
        bad[19..21].copy_from_slice(&1i16.to_be_bytes());
        assert!(read_all(&bad, 0, 64).is_err());
        // Offsets of another type, or more than the array holds.
        let mut bad = copy.clone();
        bad[33..37].copy_from_slice(&23i32.to_be_bytes());
        assert!(read_all(&bad, 0, 64).is_err());
        let mut bad = copy.clone();
        bad[37..41].copy_from_slice(&2i32.to_be_bytes());
        assert!(read_all(&bad, 0, 64).is_err());
        // Offsets without lines.
        let mut bad = copy[..57].to_vec();
        bad.extend_from_slice(&(-1i32).to_be_bytes());
        bad.extend_from_slice(&(-1i16).to_be_bytes());
        assert!(read_all(&bad, 0, 64).is_err());
        // Cut inside the stretch: an early end is an error, not a short line.
        assert!(read_all(&copy[..copy.len() - 5], 0, 64).is_err());
    }
}
