//! Rows of the lines table in PostgreSQL's binary `COPY` format, encoded
//! here rather than by the driver's `BinaryCopyInWriter`: that one enters
//! its runtime for every row and sends a message every 4 KiB, which was
//! a third of a million-line batch's time on the client. These rows go
//! out a few hundred KiB to a message.

use std::io;

/// The format's signature, then its flags and header extension length
/// (both 0).
const HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";

/// Bytes of rows gathered before they are sent, at least.
const MESSAGE: usize = 256 << 10;

/// The columns of a line's row, in the order `COPY` names them.
pub(super) struct Row<'a> {
    pub seq: i64,
    pub end_off: i64,
    pub line: &'a [u8],
    pub id: Option<&'a str>,
    pub creates: Option<&'a str>,
    pub reverses: Option<i64>,
    /// 0: the line ends no hold.
    pub ends: i64,
}

/// How many columns a [`Row`] has.
const COLUMNS: i16 = 7;

/// Encoded rows waiting to be sent.
pub(super) struct Rows {
    bytes: Vec<u8>,
}

impl Rows {
    /// No rows yet: the format's header, which goes first.
    pub(super) fn new() -> Rows {
        let mut bytes = Vec::with_capacity(MESSAGE + (64 << 10));
        bytes.extend_from_slice(HEADER);
        Rows { bytes }
    }

    /// Adds `row`; an error if a field is too long for the format (no
    /// journal line is).
    pub(super) fn push(&mut self, row: &Row<'_>) -> io::Result<()> {
        self.bytes.extend_from_slice(&COLUMNS.to_be_bytes());
        self.int8(Some(row.seq));
        self.int8(Some(row.end_off));
        self.field(Some(row.line))?;
        self.field(row.id.map(str::as_bytes))?;
        self.field(row.creates.map(str::as_bytes))?;
        self.int8(row.reverses);
        self.int8(Some(row.ends));
        Ok(())
    }

    /// Whether there are enough rows to send.
    pub(super) fn full(&self) -> bool {
        self.bytes.len() >= MESSAGE
    }

    /// Hands the rows gathered to `send` and forgets them.
    pub(super) fn send<E>(&mut self, send: impl FnOnce(&[u8]) -> Result<(), E>) -> Result<(), E> {
        let sent = send(&self.bytes);
        self.bytes.clear();
        sent
    }

    /// Adds the format's trailer, after the last row.
    pub(super) fn end(&mut self) {
        self.bytes.extend_from_slice(&(-1i16).to_be_bytes());
    }

    fn int8(&mut self, value: Option<i64>) {
        match value {
            Some(n) => {
                self.bytes.extend_from_slice(&8i32.to_be_bytes());
                self.bytes.extend_from_slice(&n.to_be_bytes());
            }
            None => self.bytes.extend_from_slice(&(-1i32).to_be_bytes()),
        }
    }

    /// A `bytea` or `text` field: its bytes as they are.
    fn field(&mut self, value: Option<&[u8]>) -> io::Result<()> {
        let Some(bytes) = value else {
            self.bytes.extend_from_slice(&(-1i32).to_be_bytes());
            return Ok(());
        };
        let len = i32::try_from(bytes.len()).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "a field longer than COPY allows",
            )
        })?;
        self.bytes.extend_from_slice(&len.to_be_bytes());
        self.bytes.extend_from_slice(bytes);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use postgres::types::{IsNull, ToSql, Type};
    use proptest::prelude::*;

    /// A row as the driver's `BinaryCopyInWriter` encodes it: each value
    /// by its `ToSql`, after its length (-1 for null).
    fn driver_row(row: &Row<'_>) -> Vec<u8> {
        let values: [(&(dyn ToSql + Sync), Type); 7] = [
            (&row.seq, Type::INT8),
            (&row.end_off, Type::INT8),
            (&row.line, Type::BYTEA),
            (&row.id, Type::TEXT),
            (&row.creates, Type::TEXT),
            (&row.reverses, Type::INT8),
            (&row.ends, Type::INT8),
        ];
        let mut out = COLUMNS.to_be_bytes().to_vec();
        for (value, ty) in values {
            let mut field = Default::default();
            let len = match value.to_sql_checked(&ty, &mut field) {
                Ok(IsNull::No) => i32::try_from(field.len()).unwrap_or(-2),
                Ok(IsNull::Yes) => -1,
                Err(_) => -3,
            };
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(&field);
        }
        out
    }

    proptest! {
        #[test]
        fn rows_are_encoded_as_the_driver_encodes_them(
            seq in any::<i64>(),
            end_off in any::<i64>(),
            line in proptest::collection::vec(any::<u8>(), 0..300),
            id in proptest::option::of(".{0,20}"),
            creates in proptest::option::of(".{0,20}"),
            reverses in proptest::option::of(any::<i64>()),
            ends in any::<i64>(),
        ) {
            let row = Row {
                seq,
                end_off,
                line: &line,
                id: id.as_deref(),
                creates: creates.as_deref(),
                reverses,
                ends,
            };
            let mut rows = Rows::new();
            rows.push(&row).unwrap();
            prop_assert_eq!(&rows.bytes[..HEADER.len()], HEADER);
            prop_assert_eq!(&rows.bytes[HEADER.len()..], &driver_row(&row)[..]);
        }
    }

    #[test]
    fn the_stream_has_the_header_and_trailer_the_format_asks_for() {
        let mut rows = Rows::new();
        rows.end();
        let mut sent = Vec::new();
        rows.send(|b| {
            sent.extend_from_slice(b);
            Ok::<_, ()>(())
        })
        .unwrap();
        // PostgreSQL's documentation: signature, flags, extension, then
        // the trailer -1.
        assert_eq!(sent, b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0\xff\xff");
        assert!(rows.bytes.is_empty());
    }
}
