//! The journal reader on arbitrary files: it must never panic, and must
//! either read the file to its end (maybe ignoring a torn tail) or refuse it
//! as corrupt or not a journal; any other error is a bug.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use ledger::domain::{self, State};
use ledger::journal::{JournalError, ReadJournal};
use libfuzzer_sys::fuzz_target;

/// One file per fuzzing process, on tmpfs when there is one.
fn path() -> &'static PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let dir = if std::path::Path::new("/dev/shm").is_dir() {
            PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        dir.join(format!("ledger-fuzz-{}.jsonl", std::process::id()))
    })
}

fn judged(e: JournalError) {
    match e {
        JournalError::Corrupt { .. } | JournalError::NotAJournal(_) => {}
        other => panic!("unexpected error: {other}"),
    }
}

fuzz_target!(|data: &[u8]| {
    let path = path();
    std::fs::write(path, data).expect("write the fuzz input");
    let journal = match ReadJournal::open(path) {
        Ok(j) => j.expect("the file exists"),
        Err(e) => return judged(e),
    };
    let Some(mut scanner) = journal.scanner() else {
        return;
    };
    let mut state = State::default();
    loop {
        match scanner.next(&state) {
            Ok(Some(entry)) => domain::evolve(&mut state, &entry.event),
            Ok(None) => break,
            Err(e) => return judged(e),
        }
    }
    // Whatever was read is within the file, and a torn tail is its end.
    let head = scanner.head();
    assert!(head.end <= data.len() as u64);
    if let Some(torn) = scanner.torn() {
        assert_eq!(torn.offset, head.end);
        assert_eq!(torn.offset + torn.len, data.len() as u64);
    }
});
