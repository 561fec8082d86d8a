//! Reading a long write's input ahead, once the journal is locked, for
//! what it names: the key of every id (see `Writer::foresee_ids`), about
//! how many accounts (`Writer::expect_accounts`), and how many commands
//! (for a CSV, whose lines do not tell). Shared by `batch`
//! and `import`, which read their input twice: once for this, once to
//! apply it, a digest of each reading telling whether it changed between
//! the two.
//!
//! Read once more, a batch of a million ids takes a fraction of a second;
//! looked up one by one, their buckets of the read model taken in and
//! held, the ids cost seconds and tens of MiB.

use std::collections::BTreeSet;
use std::fs;
use std::hash::BuildHasher;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::{Arc, LazyLock, OnceLock, mpsc};

use sha2::{Digest as _, Sha256};

use crate::cli::WriteCommand;
use crate::cmd::apply::Applier;
use crate::domain::id_key;
use crate::error::Error;
use crate::threads;

/// Inputs of fewer records than this are not read ahead: the ids they
/// name are looked up one by one, in as many of the model's buckets,
/// which costs less than reading them twice.
const MIN_RECORDS: usize = 4096;

/// Whether an input of about `records` records that names ids (`ids`) is
/// worth reading ahead, into `journal`: only its read model has buckets
/// of ids to spare a look at.
pub fn worth(records: usize, ids: bool, journal: &Path) -> bool {
    records >= MIN_RECORDS && ids && crate::readmodel::path_of(journal).is_file()
}

/// What one command names: the key of each id, the hash of each account.
pub struct Named {
    ids: [Option<i64>; 2],
    accounts: [Option<u64>; 2],
}

impl Named {
    pub fn of(command: &WriteCommand) -> Named {
        let mut keys = command.ids().map(id_key);
        Named {
            ids: [keys.next(), keys.next()],
            accounts: command.accounts().map(|a| a.map(|a| ACCOUNTS.hash_one(a))),
        }
    }
}

/// Keyed per process: no input can be made of names that fool the
/// estimate on purpose.
static ACCOUNTS: LazyLock<foldhash::quality::RandomState> = LazyLock::new(Default::default);

/// What an input names, read ahead.
#[derive(Default)]
pub struct Names {
    /// The key of each id, once for each time it is named.
    keys: Vec<i64>,
    accounts: Distinct,
    /// How many commands it holds.
    commands: usize,
    /// Where to say that the accounts named passed a count (see
    /// [`alongside`]).
    watch: Option<Watch>,
}

/// A count of accounts named, and where to say that the estimate passed
/// it.
struct Watch {
    at: usize,
    passed: mpsc::Sender<usize>,
}

/// The estimate of the accounts named is looked at once in this many
/// commands.
const WATCH_EVERY: usize = 1024;

impl Names {
    /// Room for the ids of `records` records.
    pub fn with_capacity(records: usize) -> Names {
        Names {
            keys: Vec::with_capacity(records),
            accounts: Distinct::default(),
            commands: 0,
            watch: None,
        }
    }

    /// How many commands the input holds.
    pub fn commands(&self) -> usize {
        self.commands
    }

    pub fn add(&mut self, named: Named) {
        self.commands += 1;
        self.keys.extend(named.ids.into_iter().flatten());
        named
            .accounts
            .into_iter()
            .flatten()
            .for_each(|a| self.accounts.add(a));
        if self.commands.is_multiple_of(WATCH_EVERY)
            && let Some(watch) = &self.watch
        {
            let named = self.accounts.estimate();
            if named >= watch.at {
                // Said once; a reader gone is no longer waiting.
                let _ = watch.passed.send(named);
                self.watch = None;
            }
        }
    }

    /// Tells `applier` what the input names, read with digest `read`.
    pub fn tell(self, applier: &mut Applier, read: &Reading) -> Result<Told, Error> {
        let Some(&digest) = read.get() else {
            return Ok(Told::default());
        };
        let looked_up = applier.foresee(self.keys, self.accounts.estimate())?;
        Ok(Told {
            digest: looked_up.map(|_| digest),
            all_new: looked_up == Some(0),
        })
    }
}

/// Reads an input ahead (`read`, which fills the [`Names`] it is given)
/// on a thread of its own, while `applier` holds the journal locked: once
/// the accounts read pass the count at which the writer loads every
/// account of the read model at once ([`Applier::accounts_worth_all`]),
/// it loads them while the reading goes on, rather than after it (a batch
/// of 2,000,000 commands: a second of reading, half a second of
/// loading). Without a thread, it reads here, and the accounts are
/// loaded after it, if at all ([`Names::tell`]). `None` if the reading
/// fails: the ids are then looked up as they come.
///
/// The journal stays locked meanwhile: other commands wait for the
/// reading too (about a second for 2,000,000 commands), where they
/// waited for the loading that now goes on beside it.
pub fn alongside<F>(
    applier: &mut Applier,
    records: usize,
    read: F,
) -> Result<Option<(Names, Reading)>, Error>
where
    F: FnOnce(Names) -> Option<(Names, Reading)> + Send,
{
    let mut names = Names::with_capacity(records);
    // The main thread keeps no sender, and the reading drops its own as
    // it ends: else `told.recv()` below would wait forever.
    let (passed, told) = mpsc::channel();
    match applier.accounts_worth_all() {
        Some(at) => names.watch = Some(Watch { at, passed }),
        None => drop(passed),
    }
    let foreseen = std::thread::scope(|scope| {
        let both = (names, read);
        let unwatched = |(n, r): (Names, F)| {
            r(n).map(|(mut names, read)| {
                names.watch = None;
                (names, read)
            })
        };
        let ahead = match threads::scoped_with(scope, "reading ahead", both, unwatched) {
            Ok(ahead) => ahead,
            // Read here, then: the accounts are loaded after it, if at all.
            Err((names, read)) => return Ok(read(names)),
        };
        // Told nothing once the reading ends without passing the count:
        // its sender is gone.
        let loaded = match told.recv() {
            Ok(named) => applier.expect_accounts(named),
            Err(_) => Ok(()),
        };
        let foreseen = ahead.join().ok().flatten().flatten();
        loaded.map(|()| foreseen)
    });
    // For the tests: a write that waits here, between its two readings,
    // lets a test change its input there (see the README's Testing).
    if let Some(gate) = std::env::var_os("LEDGER_TEST_READ_AHEAD_GATE") {
        let _ = fs::read(gate);
    }
    foreseen
}

/// What an applier made of what an input names ([`Names::tell`]).
#[derive(Default)]
pub struct Told {
    /// What the reading that applies the input must read again (see
    /// [`check`]), if the applier took its ids.
    pub digest: Option<Digest>,
    /// Whether every id it names is new and named once: no command of it
    /// repeats an earlier one.
    pub all_new: bool,
}

/// A SHA-256 of the bytes of an input.
pub type Digest = [u8; 32];

/// The digest of a reading, set once it reached the input's end.
pub type Reading = Arc<OnceLock<Digest>>;

/// Checks that the reading `after`, which applied the input, read what
/// the reading ahead did (`before`): a text changed since could repeat an
/// id that was taken for new.
pub fn check(before: Option<Digest>, after: &Reading) -> io::Result<()> {
    match before {
        Some(before) if after.get() != Some(&before) => {
            Err(io::Error::other("it changed while it was read"))
        }
        _ => Ok(()),
    }
}

/// A reader that digests what it reads: once it reaches the end, the
/// digest of every byte is in its [`Reading`], and it reads nothing more.
/// (Readers read again after an end: at a last line without a newline,
/// say. A file grown in between would give bytes the digest never saw.)
pub struct Digesting<R> {
    inner: R,
    sha: Sha256,
    reading: Reading,
}

impl<R> Digesting<R> {
    fn new(inner: R) -> (Digesting<R>, Reading) {
        let reading = Reading::default();
        let reader = Digesting {
            inner,
            sha: Sha256::new(),
            reading: Arc::clone(&reading),
        };
        (reader, reading)
    }
}

impl<R: Read> Read for Digesting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.reading.get().is_some() {
            return Ok(0);
        }
        let n = self.inner.read(buf)?;
        if n == 0 && !buf.is_empty() {
            let _ = self.reading.set(self.sha.clone().finalize().into());
        } else if let Some(read) = buf.get(..n) {
            self.sha.update(read);
        }
        Ok(n)
    }
}

/// A reading of `file` from its start, buffered by `capacity` bytes, and
/// its digest once it reaches the end. Each reading reads from a place of
/// its own: two never move each other's (a cloned descriptor shares the
/// file's offset).
pub fn from_start(
    file: &fs::File,
    capacity: usize,
) -> io::Result<(io::BufReader<Digesting<ReadAt>>, Reading)> {
    let file = file.try_clone()?;
    let (reader, read) = Digesting::new(ReadAt { file, pos: 0 });
    Ok((io::BufReader::with_capacity(capacity, reader), read))
}

/// A file read from a place of its own (see [`from_start`]).
pub struct ReadAt {
    file: fs::File,
    pos: u64,
}

impl Read for ReadAt {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.file.read_at(buf, self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

/// About how many distinct values there were, from their hashes: the
/// smallest [`SKETCH`] of them kept (k minimum values); exact below that
/// many, a few percent off from there on. Enough to tell an input into
/// most of a million accounts from one into a few, before it starts.
#[derive(Default)]
struct Distinct(BTreeSet<u64>);

const SKETCH: usize = 1024;

impl Distinct {
    fn add(&mut self, hash: u64) {
        let full = self.0.len() == SKETCH;
        if full && self.0.last().is_some_and(|&max| hash >= max) {
            return;
        }
        if self.0.insert(hash) && full {
            self.0.pop_last();
        }
    }

    fn estimate(&self) -> usize {
        match self.0.last() {
            // The largest of the SKETCH smallest of n even hashes is about
            // SKETCH / n of the way up.
            Some(&max) if self.0.len() == SKETCH => {
                let n = ((SKETCH as u128 - 1) << 64) / (u128::from(max) + 1);
                usize::try_from(n).unwrap_or(usize::MAX)
            }
            _ => self.0.len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Digesting, Distinct, Named, Names, SKETCH, WATCH_EVERY, Watch, check};
    use std::hash::BuildHasher;
    use std::io::{self, Read};

    /// The digest of a reading, read in pieces of `piece` bytes.
    fn read(text: &[u8], piece: usize) -> super::Reading {
        let (mut reader, reading) = Digesting::new(text);
        let mut buf = vec![0; piece];
        while reader.read(&mut buf).expect("read") > 0 {}
        reading
    }

    /// The digest of what was read is the same for the same text, however
    /// it is cut into reads, and another for a text a byte apart; a
    /// reading that stopped before the end has none, and never matches.
    #[test]
    fn a_text_read_twice_has_one_digest_and_another_text_another() {
        let text: String = (0..10_000)
            .map(|i| format!("deposit a 1 --id k{i}\n"))
            .collect();
        let whole = read(text.as_bytes(), 1 << 16);
        let before = whole.get().copied();
        assert!(before.is_some());
        for piece in [1, 7, 4096, 1 << 20] {
            assert!(check(before, &read(text.as_bytes(), piece)).is_ok());
        }
        let changed = text.replacen("k5000", "k5001", 1);
        assert!(check(before, &read(changed.as_bytes(), 4096)).is_err());
        assert!(check(before, &read(&text.as_bytes()[..text.len() - 1], 4096)).is_err());
        let (mut stopped, unfinished) = Digesting::new(text.as_bytes());
        io::copy(&mut (&mut stopped).take(100), &mut io::sink()).expect("read");
        assert!(unfinished.get().is_none());
        assert!(check(before, &unfinished).is_err());
        assert!(check(None, &unfinished).is_ok(), "nothing read before");
    }

    /// A reader that gives `more` after its first end, as a file written
    /// to after it was read to its end does.
    struct Grows<'t> {
        text: &'t [u8],
        more: Option<&'t [u8]>,
    }

    impl Read for Grows<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.text.read(buf)?;
            if n == 0 {
                self.text = self.more.take().unwrap_or_default();
            }
            Ok(n)
        }
    }

    /// Once a reading has reached the end, it reads nothing more, though
    /// the file grows: what it read is what its digest says.
    #[test]
    fn a_reading_ends_at_the_first_end_it_meets() {
        let text = b"deposit a 1 --id k1";
        let grows = Grows {
            text,
            more: Some(b"\ndeposit a 1 --id k1"),
        };
        let (mut reader, reading) = Digesting::new(grows);
        let mut got = Vec::new();
        let mut buf = [0; 64];
        for _ in 0..4 {
            let n = reader.read(&mut buf).expect("read");
            got.extend_from_slice(&buf[..n]);
        }
        assert_eq!(got, text);
        assert!(check(read(text, 64).get().copied(), &reading).is_ok());
    }

    /// The distinct values counted are exact below the sketch's size, and
    /// within a few percent from it on, however often each comes. (With
    /// a fixed seed: the error past the sketch's size is a matter of
    /// chance, three percent on average.)
    #[test]
    fn distinct_values_are_counted_exactly_then_within_a_few_percent() {
        let hasher = foldhash::quality::FixedState::with_seed(7);
        let cases = [
            (0, 1),
            (10, 100),
            (SKETCH - 1, 3),
            (SKETCH, 2),
            (50_000, 2),
            (1_000_000, 1),
        ];
        for (n, repeats) in cases {
            let mut distinct = Distinct::default();
            for _ in 0..repeats {
                (0..n).for_each(|i| distinct.add(hasher.hash_one(i)));
            }
            let estimate = distinct.estimate();
            match n < SKETCH {
                true => assert_eq!(estimate, n),
                false => assert!(estimate.abs_diff(n) < n / 10, "{n}: {estimate}"),
            }
        }
    }

    /// A watched reading says once, at a look (every `WATCH_EVERY`
    /// commands), that the accounts named passed the count, soon after
    /// they did; one that never passes it says nothing, and its sender is
    /// gone when it ends.
    #[test]
    fn a_reading_says_once_that_the_accounts_passed_the_count() {
        let hasher = foldhash::quality::FixedState::with_seed(3);
        for (at, passes) in [(20_000, true), (200_000, false)] {
            let (passed, told) = std::sync::mpsc::channel();
            let mut names = Names::with_capacity(0);
            names.watch = Some(Watch { at, passed });
            let mut said = Vec::new();
            for i in 0..100_000u64 {
                names.add(Named {
                    ids: [None, None],
                    accounts: [Some(hasher.hash_one(i)), Some(hasher.hash_one(i / 2))],
                });
                said.extend(told.try_iter().map(|named| (names.commands, named)));
            }
            drop(names);
            assert!(told.recv().is_err());
            match passes {
                true => {
                    let [(commands, named)] = said[..] else {
                        panic!("told {said:?}");
                    };
                    assert_eq!(commands % WATCH_EVERY, 0);
                    assert!(
                        named >= at && (18_000..=24_000).contains(&commands),
                        "{said:?}"
                    );
                }
                false => assert!(said.is_empty(), "{said:?}"),
            }
        }
    }
}
