//! What holds a journal's bytes: a file, or a PostgreSQL database that
//! shows them as one ([`super::pg`]). Readers only ever read at offsets.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::rc::Rc;

use super::pg::Db;

/// A journal's bytes.
pub enum Backing {
    /// A journal file.
    File(File),
    /// A journal in a database, shared with its read model.
    Db(Rc<Db>),
}

impl Backing {
    /// Reads bytes from `offset` into `buf`, as `pread` does: 0 at the end.
    pub fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        match self {
            Backing::File(file) => file.read_at(buf, offset),
            Backing::Db(db) => db.read_at(buf, offset),
        }
    }

    /// Fills `buf` from `offset`, or fails.
    pub fn read_exact_at(&self, mut buf: &mut [u8], mut offset: u64) -> io::Result<()> {
        while !buf.is_empty() {
            match self.read_at(buf, offset) {
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => {
                    buf = &mut buf[n..];
                    offset += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// The file, for what only a file has (locks, torn tails, syncing).
    pub fn file(&self) -> Option<&File> {
        match self {
            Backing::File(file) => Some(file),
            Backing::Db(_) => None,
        }
    }
}
