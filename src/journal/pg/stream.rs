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
        let copy = format!(
            "COPY (SELECT end_off, line FROM ledger_lines WHERE end_off > {} AND end_off <= {} \
             ORDER BY end_off) TO STDOUT (FORMAT binary)",
            super::as_int(self.start),
            super::as_int(self.len)
        );
        let rows = self
            .client
            .copy_out(&copy)
            .map_err(|e| database_error(&self.path, "read", &e))?;
        let mut lines = Lines {
            rows,
            pos: self.start,
            left: 0,
            newline: false,
            started: false,
            ended: false,
        };
        Ok(read(&mut lines))
    }
}

/// Rows of `(end_off bigint, line bytea)` in `COPY`'s binary format, read
/// as the bytes of the lines, each with its `\n`.
struct Lines<R> {
    rows: R,
    /// The offset just past the current line.
    pos: u64,
    /// Bytes of the current line still to hand out, before its `\n`.
    left: usize,
    /// Whether the current line's `\n` is still to hand out.
    newline: bool,
    /// Whether the copy's header has been read.
    started: bool,
    ended: bool,
}

/// `PGCOPY\n\377\r\n\0`, then flags and the header extension's length.
const SIGNATURE: &[u8; 11] = b"PGCOPY\n\xff\r\n\0";

impl<R: BufRead> Lines<R> {
    /// Reads the next row into `line`; false at the end of the rows, or
    /// at a row that does not start where the last one ended.
    fn next_row(&mut self) -> io::Result<bool> {
        if self.ended {
            return Ok(false);
        }
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
            -1 => {
                self.ended = true;
                return Ok(false);
            }
            2 => {}
            _ => return Err(damaged("a row of the wrong shape")),
        }
        let end = u64::try_from(i64::from_be_bytes(self.field::<8>()?))
            .map_err(|_| damaged("a negative offset"))?;
        let mut len = [0; 4];
        self.rows.read_exact(&mut len)?;
        let len =
            u32::try_from(i32::from_be_bytes(len)).map_err(|_| damaged("a line that is null"))?;
        if self.pos + u64::from(len) + 1 != end {
            self.ended = true;
            return Ok(false);
        }
        self.pos = end;
        self.left = usize::try_from(len).map_err(|_| damaged("a line too long"))?;
        self.newline = true;
        Ok(true)
    }

    /// A fixed-size field: its length word, then `N` bytes.
    fn field<const N: usize>(&mut self) -> io::Result<[u8; N]> {
        let mut len = [0; 4];
        self.rows.read_exact(&mut len)?;
        if i32::from_be_bytes(len) != N as i32 {
            return Err(damaged("a row of the wrong shape"));
        }
        let mut value = [0; N];
        self.rows.read_exact(&mut value)?;
        Ok(value)
    }
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
                // Straight from the connection's buffer.
                let rows = self.rows.fill_buf()?;
                if rows.is_empty() {
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
                let take = (buf.len() - n).min(self.left).min(rows.len());
                buf[n..n + take].copy_from_slice(&rows[..take]);
                self.rows.consume(take);
                self.left -= take;
                n += take;
            } else if self.newline {
                buf[n] = b'\n';
                self.newline = false;
                n += 1;
            } else if !self.next_row()? {
                break;
            }
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A binary `COPY` of `(end_off, line)` rows, as the server sends it.
    fn copy_of(rows: &[(i64, &[u8])]) -> Vec<u8> {
        let mut bytes = SIGNATURE.to_vec();
        bytes.extend_from_slice(&0u32.to_be_bytes());
        bytes.extend_from_slice(&0u32.to_be_bytes());
        for (end, line) in rows {
            bytes.extend_from_slice(&2i16.to_be_bytes());
            bytes.extend_from_slice(&8i32.to_be_bytes());
            bytes.extend_from_slice(&end.to_be_bytes());
            bytes.extend_from_slice(&i32::try_from(line.len()).unwrap().to_be_bytes());
            bytes.extend_from_slice(line);
        }
        bytes.extend_from_slice(&(-1i16).to_be_bytes());
        bytes
    }

    fn lines(copy: &[u8], start: u64) -> Lines<&[u8]> {
        Lines {
            rows: copy,
            pos: start,
            left: 0,
            newline: false,
            started: false,
            ended: false,
        }
    }

    /// Read `step` bytes at a time, as a caller with a small buffer would.
    fn read_all(mut lines: Lines<&[u8]>, step: usize) -> io::Result<Vec<u8>> {
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
    fn rows_read_back_as_the_lines_of_a_file_whatever_the_buffer() {
        let copy = copy_of(&[(14, b"header"), (20, b"first"), (27, b"second")]);
        for step in [1, 3, 7, 64] {
            let bytes = read_all(lines(&copy, 7), step).unwrap();
            assert_eq!(bytes, b"header\nfirst\nsecond\n", "step {step}");
        }
    }

    #[test]
    fn a_row_that_does_not_follow_the_last_ends_the_bytes_there() {
        // A line missing between the first and the third: the bytes stop
        // after the first, as a shorter file would.
        let copy = copy_of(&[(6, b"first"), (20, b"third")]);
        assert_eq!(read_all(lines(&copy, 0), 4).unwrap(), b"first\n");
        // An offset that does not fit the line's length, likewise.
        let copy = copy_of(&[(6, b"first"), (13, b"secnd")]);
        assert_eq!(read_all(lines(&copy, 0), 64).unwrap(), b"first\n");
    }

    #[test]
    fn a_copy_of_another_shape_is_refused() {
        let mut copy = copy_of(&[(6, b"first")]);
        copy[0] = b'X';
        assert!(read_all(lines(&copy, 0), 64).is_err());
        let mut copy = copy_of(&[(6, b"first")]);
        copy[19..21].copy_from_slice(&3i16.to_be_bytes());
        assert!(read_all(lines(&copy, 0), 64).is_err());
        let copy = copy_of(&[(6, b"first")]);
        // Cut inside the line: an early end is an error, not a short line.
        assert!(read_all(lines(&copy[..copy.len() - 5], 0), 64).is_err());
    }
}
