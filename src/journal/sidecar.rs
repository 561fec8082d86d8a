//! Files beside the journal (SPEC 2, v2): `<journal>.torn`, the read model
//! (`<journal>.readmodel` and SQLite's `-wal` and `-shm` beside it) and the
//! nameless spool of a large append (or its named stand-in) are the
//! ledger's own.
//!
//! Whoever can write the journal's directory can put anything at those
//! names: a symbolic link to a file of root's, a hard link, a FIFO that
//! never answers. So every sidecar is opened with `O_NOFOLLOW` (a link is
//! an error, never followed) and `O_NONBLOCK` (a FIFO or device never
//! blocks the open), then checked with `fstat` on the open descriptor —
//! the file actually opened, not a name that may since point elsewhere —
//! before a byte is read or written.

use std::fs::{File, Metadata, OpenOptions};
use std::hash::{BuildHasher, Hasher};
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use rustix::fs::OFlags;
use rustix::io::Errno;

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

    /// The user running this command.
    pub fn me() -> Owner {
        Owner {
            uid: rustix::process::geteuid().as_raw(),
            gid: rustix::process::getegid().as_raw(),
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

/// The prefix of the temporary files beside `target`: `<target>.tmp.`.
fn temp_prefix(target: &Path) -> Option<String> {
    Some(format!("{}.tmp.", target.file_name()?.to_str()?))
}

/// Creates a temporary file to be renamed over `target`, in its directory:
/// `<target>.tmp.<pid>.<16 hex digits>`, the digits unpredictable (so no one
/// can plant a link or a FIFO at the name ahead of time), with `O_EXCL`,
/// `O_NOFOLLOW`, mode 0600, given to the journal's owner; open for reading
/// and writing.
pub fn create_temp(target: &Path, owner: Owner) -> io::Result<(File, PathBuf)> {
    let prefix = temp_prefix(target).ok_or_else(|| io::Error::other("no file name"))?;
    let pid = std::process::id();
    let mut last = io::Error::other("no attempt");
    // A clash means someone guessed a 64-bit secret or planted many names:
    // a few fresh draws settle the first, and give up on the second.
    for attempt in 0..4u32 {
        let name = format!("{prefix}{pid}.{:016x}", unpredictable(attempt));
        let path = target.with_file_name(name);
        match OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(no_follow_no_block())
            .open(&path)
        {
            Ok(file) => {
                owner.give(&file)?;
                return Ok((file, path));
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last = e,
            Err(e) => return Err(e),
        }
    }
    Err(last)
}

/// A file with no name in the journal's directory, for staging a large
/// append: it vanishes when closed, however the process ends. Made with
/// `O_TMPFILE | O_EXCL` (never given a name, and never able to get one);
/// on a file system without `O_TMPFILE`, a [`create_temp`] file removed at
/// once (a process killed in between leaves a temporary file that
/// [`remove_stale_temps`] clears).
pub fn create_spool(journal: &Path, owner: Owner) -> io::Result<File> {
    use rustix::fs::Mode;
    let dir = match journal.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let flags = OFlags::TMPFILE | OFlags::RDWR | OFlags::EXCL | OFlags::CLOEXEC;
    match rustix::fs::openat(rustix::fs::CWD, dir, flags, Mode::RUSR | Mode::WUSR) {
        Ok(fd) => return Ok(File::from(fd)),
        // Kernels and file systems without it say so in one of these ways.
        Err(e) if [Errno::OPNOTSUPP, Errno::ISDIR, Errno::INVAL, Errno::NOSYS].contains(&e) => {}
        Err(e) => return Err(e.into()),
    }
    let mut target = journal.as_os_str().to_owned();
    target.push(".spool");
    let target = PathBuf::from(target);
    remove_stale_temps(&target, owner);
    let (file, path) = create_temp(&target, owner)?;
    std::fs::remove_file(&path)?;
    Ok(file)
}

/// 64 bits no one else can predict: std's `RandomState` keys SipHash with
/// secrets from the operating system (fresh per process); the time and a
/// counter make each draw differ.
fn unpredictable(attempt: u32) -> u64 {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(attempt);
    hasher.write_u32(std::process::id());
    if let Ok(now) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        hasher.write_u128(now.as_nanos());
    }
    hasher.finish()
}

/// A temporary file left this long is stale whatever its creator's pid
/// says (the pid may have been reused); a refresh takes well under a
/// second.
const STALE_AFTER: std::time::Duration = std::time::Duration::from_secs(600);

/// Removes temporary files of `target` that a killed process left behind.
///
/// Only names of the exact form [`create_temp`] makes (or the older
/// `<target>.tmp.<pid>`) are considered, and only regular files owned as
/// [`Owner::owns`] requires, whose creator is gone (no process with that
/// pid) or that are older than `STALE_AFTER`: a refresh in progress in
/// another process keeps its file. Removing a name never follows a link,
/// so a name swapped for something else between the check and the removal
/// costs nothing but that name.
pub fn remove_stale_temps(target: &Path, owner: Owner) {
    let (Some(prefix), Some(dir)) = (temp_prefix(target), target.parent()) else {
        return;
    };
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(&prefix))
            .and_then(temp_pid)
        else {
            continue;
        };
        let Ok(meta) = entry.path().symlink_metadata() else {
            continue;
        };
        if owner.owns(&meta) && (gone(pid) || old(&meta)) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// The pid in `<pid>.<16 hex digits>` or `<pid>` (the older form).
fn temp_pid(rest: &str) -> Option<i32> {
    let (pid, random) = rest.split_once('.').unwrap_or((rest, "0123456789abcdef"));
    let hex = random.len() == 16 && random.bytes().all(|b| b.is_ascii_hexdigit());
    let digits = !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit());
    (hex && digits).then(|| pid.parse().ok()).flatten()
}

/// Whether no process has this pid (nor is it ours).
fn gone(pid: i32) -> bool {
    if u32::try_from(pid).is_ok_and(|p| p == std::process::id()) {
        return false;
    }
    rustix::process::Pid::from_raw(pid)
        .is_some_and(|pid| rustix::process::test_kill_process(pid) == Err(rustix::io::Errno::SRCH))
}

fn old(meta: &Metadata) -> bool {
    meta.modified()
        .ok()
        .and_then(|m| m.elapsed().ok())
        .is_some_and(|age| age > STALE_AFTER)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temp_names_are_ours_and_differ() {
        let dir = tempfile::tempdir().expect("tempdir");
        let target = dir.path().join("j.jsonl.spool");
        let (_, a) = create_temp(&target, Owner::me()).expect("a");
        let (_, b) = create_temp(&target, Owner::me()).expect("b");
        assert_ne!(a, b);
        let prefix = temp_prefix(&target).expect("prefix");
        for path in [&a, &b] {
            let name = path.file_name().and_then(|n| n.to_str()).expect("name");
            let rest = name.strip_prefix(&prefix).expect("prefix");
            assert_eq!(temp_pid(rest), i32::try_from(std::process::id()).ok());
            let mode = std::fs::metadata(path).expect("meta").mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn only_the_exact_pattern_is_a_temp_name() {
        assert_eq!(temp_pid("12.0123456789abcdef"), Some(12));
        assert_eq!(temp_pid("12"), Some(12));
        assert_eq!(temp_pid("12.0123456789abcde"), None);
        assert_eq!(temp_pid("x.0123456789abcdef"), None);
        assert_eq!(temp_pid(".0123456789abcdef"), None);
        assert_eq!(temp_pid("12.0123456789abcdefg"), None);
    }

    #[test]
    fn stale_temps_of_a_gone_process_are_removed_and_nothing_else() {
        let dir = tempfile::tempdir().expect("tempdir");
        let target = dir.path().join("j.jsonl.spool");
        // No process has a pid this large (the kernel's limit is 2^22).
        let stale = dir
            .path()
            .join("j.jsonl.spool.tmp.2000000000.0123456789abcdef");
        let other = dir.path().join("j.jsonl.spool.tmp.2000000000.x");
        let mine = dir
            .path()
            .join(format!("j.jsonl.spool.tmp.{}", std::process::id()));
        for path in [&stale, &other, &mine] {
            std::fs::write(path, b"x").expect("write");
        }
        let link = dir.path().join("j.jsonl.spool.tmp.2000000001");
        std::os::unix::fs::symlink(&other, &link).expect("symlink");
        remove_stale_temps(&target, Owner::me());
        assert!(!stale.exists());
        assert!(other.exists() && mine.exists());
        assert!(link.symlink_metadata().is_ok());
    }

    #[test]
    fn a_link_or_fifo_is_never_appended_to() {
        let dir = tempfile::tempdir().expect("tempdir");
        let victim = dir.path().join("victim");
        std::fs::write(&victim, b"v").expect("write");
        let torn = dir.path().join("j.torn");
        std::os::unix::fs::symlink(&victim, &torn).expect("symlink");
        let err = open_to_append(&torn, Owner::me()).expect_err("a link");
        assert!(err.to_string().contains("symbolic link"), "{err}");
        let dangling = dir.path().join("d.torn");
        std::os::unix::fs::symlink(dir.path().join("nowhere"), &dangling).expect("symlink");
        assert!(open_to_append(&dangling, Owner::me()).is_err());
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
        assert!(open_to_append(&fifo, Owner::me()).is_err());
        let (_, created) = open_to_append(&dir.path().join("new.torn"), Owner::me()).expect("new");
        assert!(created);
    }
}
