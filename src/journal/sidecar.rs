//! Files beside the journal (SPEC 2, v2): `<journal>.torn` and the read
//! model (`<journal>.readmodel` and SQLite's `-wal` and `-shm` beside it)
//! are the ledger's own.
//!
//! Whoever can write the journal's directory can put anything at those
//! names: a symbolic link to a file of root's, a hard link, a FIFO that
//! never answers. So every sidecar is opened with `O_NOFOLLOW` (a link is
//! an error, never followed) and `O_NONBLOCK` (a FIFO or device never
//! blocks the open), then checked with `fstat` on the open descriptor —
//! the file actually opened, not a name that may since point elsewhere —
//! before a byte is read or written.

use std::fs::{File, Metadata, OpenOptions};
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

use rustix::fs::OFlags;

/// Who owns the journal: its sidecars must belong to them (or to the user
/// running this command, who made them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner {
    /// The journal's user id.
    pub uid: u32,
    /// The journal's group id.
    pub gid: u32,
}

impl Owner {
    /// The owner of the file `meta` describes.
    pub fn of(meta: &Metadata) -> Owner {
        Owner {
            uid: meta.uid(),
            gid: meta.gid(),
        }
    }

    /// Whether `meta` describes a sidecar the ledger may use: a regular
    /// file (not a FIFO, device, directory or link), with one link (a hard
    /// link would make a write land in another file too), owned by the
    /// journal's owner or by this process's user. Another user's file is
    /// refused: it could be a file the ledger was tricked into filling.
    pub fn owns(self, meta: &Metadata) -> bool {
        let uid = meta.uid();
        meta.file_type().is_file()
            && meta.nlink() == 1
            && (uid == self.uid || uid == rustix::process::geteuid().as_raw())
    }

    /// Gives a sidecar this process just created to the journal's owner,
    /// so that root running `ledger` on a user's journal leaves nothing the
    /// user cannot replace. Only root may, and only root needs to.
    pub fn give(self, file: &File) -> io::Result<()> {
        if rustix::process::geteuid().is_root() && self.uid != 0 {
            std::os::unix::fs::fchown(file, Some(self.uid), Some(self.gid))?;
        }
        Ok(())
    }
}

/// `O_NOFOLLOW | O_NONBLOCK`, for `OpenOptionsExt::custom_flags`.
pub fn no_follow_no_block() -> i32 {
    // Both flags are small positive constants: the cast cannot wrap.
    (OFlags::NOFOLLOW | OFlags::NONBLOCK).bits() as i32
}

/// `O_NONBLOCK`, for a journal path that may turn out to be a FIFO.
pub fn no_block() -> i32 {
    OFlags::NONBLOCK.bits() as i32
}

/// Opens the sidecar at `path` to append to it, creating it (mode 0600,
/// given to the journal's owner) if there is none. Returns the file and
/// whether this call created it; an error naming what is wrong if the name
/// holds anything but the ledger's own regular file.
pub fn open_to_append(path: &Path, owner: Owner) -> io::Result<(File, bool)> {
    let mut options = OpenOptions::new();
    options
        .read(true)
        .append(true)
        .mode(0o600)
        .custom_flags(no_follow_no_block());
    let (file, created) = match options.clone().create_new(true).open(path) {
        Ok(file) => (file, true),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => match options.open(path) {
            Ok(file) => (file, false),
            Err(e) => return Err(not_own(e.raw_os_error())),
        },
        Err(e) => return Err(e),
    };
    let meta = file.metadata()?;
    if !owner.owns(&meta) {
        return Err(not_own(None));
    }
    if created {
        owner.give(&file)?;
    }
    Ok((file, created))
}

/// Why a sidecar's name is refused: `errno` from an open that met a link
/// (`ELOOP`) or a special file, else what `fstat` showed.
fn not_own(errno: Option<i32>) -> io::Error {
    let what = match errno {
        Some(e) if e == rustix::io::Errno::LOOP.raw_os_error() => "it is a symbolic link",
        Some(_) => "it is not a regular file",
        None => "it is not a regular file with one link owned by the journal's owner",
    };
    io::Error::new(
        io::ErrorKind::PermissionDenied,
        format!("{what}; the ledger only writes its own files (move it away)"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn me() -> Owner {
        Owner {
            uid: rustix::process::geteuid().as_raw(),
            gid: rustix::process::getegid().as_raw(),
        }
    }

    #[test]
    fn a_link_or_fifo_is_never_appended_to() {
        let dir = tempfile::tempdir().expect("tempdir");
        let victim = dir.path().join("victim");
        std::fs::write(&victim, b"v").expect("write");
        let torn = dir.path().join("j.torn");
        std::os::unix::fs::symlink(&victim, &torn).expect("symlink");
        let err = open_to_append(&torn, me()).expect_err("a link");
        assert!(err.to_string().contains("symbolic link"), "{err}");
        let dangling = dir.path().join("d.torn");
        std::os::unix::fs::symlink(dir.path().join("nowhere"), &dangling).expect("symlink");
        assert!(open_to_append(&dangling, me()).is_err());
        assert!(!dir.path().join("nowhere").exists());
        assert_eq!(std::fs::read(&victim).expect("read"), b"v");
        let fifo = dir.path().join("f.torn");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .expect("mkfifo");
        assert!(open_to_append(&fifo, me()).is_err());
        let (_, created) = open_to_append(&dir.path().join("new.torn"), me()).expect("new");
        assert!(created);
    }
}
