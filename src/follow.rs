//! Following the journal (SPEC 8): a producer that hands each new complete
//! append to a [`Consumer`], in order, exactly once, for as long as it runs.
//!
//! A [`Follower`] owns only the journal's path, the [`State`] and the
//! [`Head`] reached so far; it keeps no events, so its memory does not grow
//! with the journal (only the state does, with accounts and `--id`s, as in
//! every replay). Each round it opens the journal under a shared lock, reads
//! what was appended after its head with the same [`Scanner`] every replay
//! uses (so each line is chained and re-decided, and a torn tail or an
//! append whose lines are not all there yet is simply "not yet"), folds each
//! event into its state and hands it to the consumer; then it drops the lock
//! and waits for a file notification (`notify`, watching the journal's
//! directory, since the file may not exist yet) or a short timeout, which is
//! also the polling fallback when notifications are unavailable.
//!
//! The consumer is called while the journal is locked only through
//! [`Consumer::event`], which must not block: it renders into memory, and
//! writes out in [`Consumer::end_round`], after the lock is released, so a
//! slow reader of the output never holds up the journal's writers. A long
//! backlog (the initial history of a large journal) is read in rounds of
//! about [`ROUND_BYTES`], each ending between appends (or, for an append
//! longer than that, inside it, once all its lines are known to be in the
//! journal), so that memory stays bounded there too.
//!
//! [`Scanner`]: crate::journal::scan::Scanner

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::time::Duration;

use notify::event::{AccessKind, AccessMode, EventKind};
use notify::{RecommendedWatcher, RecursiveMode, Watcher};

use crate::domain::State;
use crate::journal::scan::{Entry, Head, Replay, Torn};
use crate::journal::{JournalError, ReadJournal, Stamp, pg};

/// How long to wait between rounds when file notifications work: a safety
/// net for a missed notification (and how often a consumer may check that
/// its output is still open).
pub const NOTIFIED_WAIT: Duration = Duration::from_millis(100);

/// How often to look when file notifications are unavailable.
pub const POLL_WAIT: Duration = Duration::from_millis(50);

/// At most this many bytes of journal are read in one round (a round may
/// go further to finish a multi-event append).
pub const ROUND_BYTES: u64 = 4 << 20;

/// What receives the events a [`Follower`] reads.
pub trait Consumer {
    /// What the consumer fails with; journal errors convert into it.
    type Error: From<JournalError>;

    /// One new event and the state after it. Called while the journal is
    /// locked, so it must not block (render into memory; write out in
    /// [`Consumer::end_round`]). An error ends the follow.
    fn event(&mut self, after: &State, entry: &Entry<'_>) -> Result<(), Self::Error>;

    /// The end of a round, with the journal unlocked: every event read so
    /// far has been handed over, and every line of the appends they belong
    /// to is in the journal. A round ends between appends, except inside
    /// an append longer than [`ROUND_BYTES`], which comes in several rounds.
    /// `caught_up` is false when the round stopped early in a long backlog
    /// and the next round follows at once. Called after idle rounds too, so
    /// a consumer can notice that its output has closed (return an error).
    fn end_round(&mut self, state: &State, caught_up: bool) -> Result<(), Self::Error>;

    /// A torn tail the journal ends with (an interrupted write that the next
    /// writer removes); said once per tail. Ignored by default.
    fn torn(&mut self, _path: &Path, _torn: Torn) {}
}

/// Stops a running [`Follower`] from another thread (a signal handler):
/// it returns from [`Follower::run`] after the round in progress.
#[derive(Debug, Clone)]
pub struct Stopper {
    flag: Arc<AtomicBool>,
    wake: SyncSender<()>,
}

impl Stopper {
    /// Asks the follower to stop, and wakes it if it is waiting.
    pub fn stop(&self) {
        self.flag.store(true, Ordering::SeqCst);
        let _ = self.wake.try_send(());
    }
}

/// Where the follower stands in the journal it follows.
#[derive(Debug, Clone, Copy)]
struct Followed {
    /// The head after the header line: which journal this is.
    header: Head,
    /// The last complete append read.
    head: Head,
}

/// The producer: follows one journal file.
pub struct Follower {
    path: PathBuf,
    state: State,
    /// `None` until the journal has a header.
    followed: Option<Followed>,
    stop: Arc<AtomicBool>,
    wake_tx: SyncSender<()>,
    wake_rx: Receiver<()>,
    /// Whether to use file notifications at all.
    notify: bool,
    watcher: Option<RecommendedWatcher>,
    /// Whether the watcher is watching the journal's directory.
    watching: bool,
    /// The offset of the torn tail last reported.
    torn_reported: Option<u64>,
    /// Whether the journal's database is out of reach (said once).
    unreachable: bool,
    /// The journal's database connection between rounds.
    connection: Option<pg::Db>,
    /// The file as it was when a round last ended at a torn tail: until it
    /// changes, reading it again would find the same tail (which may be a
    /// long cut append, costly to scan each round).
    stalled: Option<Stamp>,
    round_bytes: u64,
    /// The consumer wants nothing up to this seq: the read model, at or
    /// before it, may stand in for the lines it covers.
    skip_to: Option<u64>,
    /// Whether `state` came from the read model (and no event after
    /// `skip_to` has been handed over since).
    from_model: bool,
}

impl Follower {
    /// A follower of the journal at `path`, from its start.
    pub fn new(path: &Path) -> Follower {
        let (wake_tx, wake_rx) = mpsc::sync_channel(1);
        Follower {
            path: path.to_owned(),
            state: State::default(),
            followed: None,
            stop: Arc::new(AtomicBool::new(false)),
            wake_tx,
            wake_rx,
            notify: true,
            watcher: None,
            watching: false,
            torn_reported: None,
            stalled: None,
            round_bytes: ROUND_BYTES,
            skip_to: None,
            from_model: false,
            unreachable: false,
            connection: None,
        }
    }

    /// Tells the follower that the consumer wants no event up to `seq`
    /// (`--from-seq`): it then starts from a valid checkpoint at or before
    /// it, when there is one, instead of reading those lines.
    pub fn skipping_to(mut self, seq: u64) -> Follower {
        self.skip_to = Some(seq);
        self
    }

    /// Turns file notifications off: the follower polls every
    /// [`POLL_WAIT`], as it does when notifications are unavailable.
    pub fn polling_only(mut self) -> Follower {
        self.notify = false;
        self
    }

    /// A handle that stops [`Follower::run`].
    pub fn stopper(&self) -> Stopper {
        Stopper {
            flag: Arc::clone(&self.stop),
            wake: self.wake_tx.clone(),
        }
    }

    /// The state after the last event read.
    pub fn state(&self) -> &State {
        &self.state
    }

    /// The head reached, once the journal has a header.
    pub fn head(&self) -> Option<Head> {
        self.followed.map(|f| f.head)
    }

    /// Whether file notifications are in use (else the follower polls).
    pub fn is_notified(&self) -> bool {
        self.watching
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// Follows until stopped (Ok) or until the journal turns out invalid or
    /// the consumer fails (Err): rounds, each followed by a wait for a
    /// notification or a timeout once the backlog is read.
    pub fn run<C: Consumer>(&mut self, consumer: &mut C) -> Result<(), C::Error> {
        // Watch before the first read, so no append after it goes unnoticed.
        self.ensure_watch();
        while !self.stopped() {
            let caught_up = self.round(consumer)?;
            if caught_up && !self.stopped() {
                self.wait();
            }
        }
        Ok(())
    }

    /// One round: reads what was appended since the last one (under a
    /// shared lock, released before [`Consumer::end_round`]), then ends the
    /// round. Returns whether it caught up with the journal.
    pub fn round<C: Consumer>(&mut self, consumer: &mut C) -> Result<bool, C::Error> {
        let opened = match ReadJournal::open_on(&self.path, self.connection.take()) {
            Err(e) if self.outage(&e) => {
                consumer.end_round(&self.state, true)?;
                return Ok(true);
            }
            opened => opened?,
        };
        self.unreachable = false;
        let caught_up = match opened {
            Some(journal) => {
                let caught_up = self.read(&journal, consumer)?;
                self.connection = journal.into_connection();
                caught_up
            }
            None if self.followed.is_some() => {
                return Err(JournalError::Missing(self.path.clone()).into());
            }
            None => true,
        };
        consumer.end_round(&self.state, caught_up)?;
        Ok(caught_up)
    }

    fn read<C: Consumer>(
        &mut self,
        journal: &ReadJournal,
        consumer: &mut C,
    ) -> Result<bool, C::Error> {
        let Some(header) = journal.header_head() else {
            if let Some(followed) = self.followed {
                return Err(gone(&self.path, followed.header).into());
            }
            if let Some(torn) = journal.torn_header() {
                self.report_torn(consumer, torn);
            }
            return Ok(true);
        };
        let mut followed = match self.followed {
            Some(f) if f.header == header => f,
            Some(f) => return Err(gone(&self.path, f.header).into()),
            None => {
                let cached = self.skip_to.and_then(|seq| {
                    let (model, covers) = journal.model()?;
                    let head = covers.filter(|head| head.seq <= seq)?;
                    Some((model.load_all(head).ok()?, head))
                });
                let head = match cached {
                    Some((state, head)) => {
                        self.state = state;
                        self.from_model = true;
                        head
                    }
                    None => header,
                };
                Followed { header, head }
            }
        };
        self.followed = Some(followed);
        let len = journal.len();
        if len < followed.head.end {
            // A writer only ever removes bytes after the last complete append.
            return Err(gone(&self.path, followed.head).into());
        }
        if len == followed.head.end {
            return Ok(true);
        }
        let stamp = journal.stamp()?;
        if self.stalled.as_ref() == Some(&stamp) {
            return Ok(true);
        }
        self.stalled = None;
        // A round reads at most `round_bytes` and ends between appends. An
        // append longer than that (whose lines are all in the journal and
        // chain, as the scanner checks at its first line) is handed over in
        // pieces, so that what the consumer buffers stays bounded.
        let limit = followed.head.end.saturating_add(self.round_bytes);
        let mut end = len.min(limit);
        loop {
            let scanner = journal
                .scanner_until(followed.head, end)
                .checking_appends_ahead();
            let mut replay = Replay::new(scanner, std::mem::take(&mut self.state));
            let mut handed = false;
            let mut group_left = 0u64;
            let mut stop = None;
            loop {
                let step = match replay.step() {
                    Ok(step) => step,
                    // A model that is damaged in a way its checks miss may
                    // make good lines look wrong. While the consumer has
                    // had nothing it wants, the lines are read again from
                    // the start, and the full replay is the judge.
                    Err(JournalError::Model(_) | JournalError::Corrupt { .. })
                        if self.from_model =>
                    {
                        self.from_model = false;
                        self.state = State::default();
                        self.followed = Some(Followed {
                            header,
                            head: header,
                        });
                        return Ok(false);
                    }
                    // What was handed stays handed: the next round goes on
                    // from the last of it.
                    Err(e) if self.outage(&e) => {
                        self.state = replay.finish().0;
                        return Ok(true);
                    }
                    Err(e) => return Err(e.into()),
                };
                let Some((state, entry)) = step else {
                    break;
                };
                if self.skip_to.is_none_or(|skip| entry.event.seq > skip) {
                    self.from_model = false;
                }
                consumer.event(state, &entry)?;
                handed = true;
                group_left = match entry.event.batch {
                    Some(count) => count.saturating_sub(1),
                    None => group_left.saturating_sub(1),
                };
                followed.head = Head {
                    seq: entry.event.seq,
                    hash: entry.hash,
                    end: entry.end,
                    at: entry.event.at,
                };
                self.followed = Some(followed);
                if group_left == 0 && self.stopped() {
                    stop = Some(true);
                    break;
                }
                if followed.head.end >= limit && followed.head.end < len {
                    stop = Some(false);
                    break;
                }
            }
            let (state, _, torn) = replay.finish();
            self.state = state;
            if let Some(stop) = stop {
                return Ok(stop);
            }
            if end == len {
                if let Some(torn) = torn {
                    self.report_torn(consumer, torn);
                    self.stalled = Some(stamp);
                }
                return Ok(true);
            }
            if handed {
                return Ok(false);
            }
            // The next append is longer than a round: scan to the end of the
            // file, and stop inside that append once past the limit.
            end = len;
        }
    }

    /// Whether `e` is a database out of reach, which a follower waits out
    /// (saying so once) rather than stopping: it catches up by reading
    /// once the database is back.
    fn outage(&mut self, e: &JournalError) -> bool {
        let lost = pg::is_database(&self.path)
            && matches!(
                e,
                JournalError::Unreachable { .. }
                    | JournalError::Database { .. }
                    | JournalError::Io { .. }
            );
        if lost && !self.unreachable {
            self.unreachable = true;
            crate::cmd::note(&format!("note: {e}; retrying"));
        }
        lost
    }

    fn report_torn<C: Consumer>(&mut self, consumer: &mut C, torn: Torn) {
        if self.torn_reported != Some(torn.offset) {
            self.torn_reported = Some(torn.offset);
            consumer.torn(&self.path, torn);
        }
    }

    /// Starts watching the journal's directory, if notifications are on
    /// and it is not watched yet (the directory may not exist yet).
    fn ensure_watch(&mut self) {
        if !self.notify || self.watching {
            return;
        }
        if pg::is_database(&self.path) {
            // A database says when a write commits; the rounds still catch
            // up by reading, so a lost notification only delays.
            let wake = self.wake_tx.clone();
            self.watching = pg::listen(&self.path, move || {
                !matches!(wake.try_send(()), Err(mpsc::TrySendError::Disconnected(_)))
            });
            // One try: a listener that failed is not started again each wait.
            self.notify = self.watching;
            return;
        }
        if self.watcher.is_none() {
            let name = self.path.file_name().map(ToOwned::to_owned);
            let wake = self.wake_tx.clone();
            let handler = move |event: notify::Result<notify::Event>| {
                let relevant = match &event {
                    Ok(e) => {
                        !matches!(
                            e.kind,
                            EventKind::Access(
                                AccessKind::Open(_)
                                    | AccessKind::Read
                                    | AccessKind::Close(AccessMode::Read | AccessMode::Execute)
                            )
                        ) && (e.need_rescan()
                            || e.paths.is_empty()
                            || e.paths.iter().any(|p| p.file_name() == name.as_deref()))
                    }
                    Err(_) => true,
                };
                if relevant {
                    let _ = wake.try_send(());
                }
            };
            match notify::recommended_watcher(handler) {
                Ok(w) => self.watcher = Some(w),
                Err(_) => {
                    // No notifications here (e.g. out of inotify instances): poll.
                    self.notify = false;
                    return;
                }
            }
        }
        let dir = match self.path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        if let Some(watcher) = &mut self.watcher {
            self.watching = watcher.watch(dir, RecursiveMode::NonRecursive).is_ok();
        }
    }

    /// Waits for a notification, a stop, or the timeout.
    fn wait(&mut self) {
        self.ensure_watch();
        let timeout = if self.watching {
            NOTIFIED_WAIT
        } else {
            POLL_WAIT
        };
        let _ = self.wake_rx.recv_timeout(timeout);
        // Whatever else arrived is covered by the next round.
        while self.wake_rx.try_recv().is_ok() {}
    }
}

/// The journal no longer holds the line that `head` ends with.
fn gone(path: &Path, head: Head) -> JournalError {
    let what = if head.seq == 0 {
        "its header is not the one it had".to_owned()
    } else {
        format!("event {} is no longer where it was", head.seq)
    };
    JournalError::Corrupt {
        path: path.to_owned(),
        line: head.seq + 1,
        reason: format!("the journal was truncated or replaced while it was followed ({what})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Command, Request};
    use crate::journal::Writer;
    use crate::money::Decimal;
    use std::fs;
    use std::io::Write as _;

    /// Collects what a follower hands over.
    #[derive(Default)]
    struct Collect {
        /// Each round's seqs, for rounds that had events.
        rounds: Vec<Vec<u64>>,
        current: Vec<u64>,
        torn: Vec<Torn>,
        ends: usize,
        caught_up: Vec<bool>,
    }

    impl Consumer for Collect {
        type Error = JournalError;
        fn event(&mut self, after: &State, entry: &Entry<'_>) -> Result<(), JournalError> {
            assert_eq!(after.seq(), entry.event.seq);
            self.current.push(entry.event.seq);
            Ok(())
        }
        fn end_round(&mut self, _: &State, caught_up: bool) -> Result<(), JournalError> {
            self.ends += 1;
            self.caught_up.push(caught_up);
            if !self.current.is_empty() {
                self.rounds.push(std::mem::take(&mut self.current));
            }
            Ok(())
        }
        fn torn(&mut self, _: &Path, torn: Torn) {
            self.torn.push(torn);
        }
    }

    fn write(path: &Path, commands: &[Command<'_>]) {
        let mut w = Writer::open(path).unwrap();
        for command in commands {
            let request = Request::new(command.clone());
            w.apply(&request).unwrap();
        }
        w.commit().unwrap();
    }

    fn deposit(account: &str, amount: &str) -> Command<'static> {
        let account: &'static str = Box::leak(account.to_owned().into_boxed_str());
        Command::Deposit {
            account,
            amount: Decimal::parse_positive(amount).unwrap(),
        }
    }

    fn seqs(c: &Collect) -> Vec<u64> {
        c.rounds.iter().flatten().copied().collect()
    }

    #[test]
    fn hands_over_each_append_once_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.jsonl");
        let mut f = Follower::new(&path);
        let mut c = Collect::default();
        // No journal yet: nothing, and no error.
        assert!(f.round(&mut c).unwrap());
        write(&path, &[Command::create("a")]);
        f.round(&mut c).unwrap();
        write(
            &path,
            &[deposit("a", "1"), deposit("a", "2"), deposit("a", "3")],
        );
        f.round(&mut c).unwrap();
        f.round(&mut c).unwrap();
        write(&path, &[deposit("a", "4")]);
        f.round(&mut c).unwrap();
        assert_eq!(c.rounds, vec![vec![1], vec![2, 3, 4], vec![5]]);
        assert_eq!(f.head().unwrap().seq, 5);
        assert_eq!(c.ends, 5);
    }

    #[test]
    fn a_torn_tail_is_not_yet_and_is_reported_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.jsonl");
        write(&path, &[Command::create("a")]);
        let mut f = Follower::new(&path);
        let mut c = Collect::default();
        f.round(&mut c).unwrap();
        let mut file = fs::OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(br#"{"seq":2,"at":"#).unwrap();
        f.round(&mut c).unwrap();
        f.round(&mut c).unwrap();
        assert_eq!(c.torn.len(), 1);
        assert_eq!(seqs(&c), vec![1]);
        // The next writer removes it and appends.
        write(&path, &[deposit("a", "5")]);
        f.round(&mut c).unwrap();
        assert_eq!(seqs(&c), vec![1, 2]);
    }

    #[test]
    fn truncation_before_the_head_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.jsonl");
        write(&path, &[Command::create("a"), deposit("a", "1")]);
        let mut f = Follower::new(&path);
        let mut c = Collect::default();
        f.round(&mut c).unwrap();
        let len = fs::metadata(&path).unwrap().len();
        fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(len - 10)
            .unwrap();
        let err = f.round(&mut c).unwrap_err();
        assert!(
            err.to_string()
                .contains("line 3: the journal was truncated or replaced"),
            "{err}"
        );
    }

    #[test]
    fn a_replaced_journal_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.jsonl");
        let other = dir.path().join("other.jsonl");
        write(&path, &[Command::create("a")]);
        let mut f = Follower::new(&path);
        let mut c = Collect::default();
        f.round(&mut c).unwrap();
        // Another journal, created a moment later: another header.
        std::thread::sleep(Duration::from_millis(5));
        write(&other, &[Command::create("b"), deposit("b", "1")]);
        fs::rename(&other, &path).unwrap();
        let err = f.round(&mut c).unwrap_err();
        assert!(err.to_string().contains("line 1: "), "{err}");
        fs::remove_file(&path).unwrap();
        assert!(matches!(
            f.round(&mut c).unwrap_err(),
            JournalError::Missing(_)
        ));
    }

    #[test]
    fn a_long_backlog_is_read_in_rounds_that_end_between_appends() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.jsonl");
        write(&path, &[Command::create("a")]);
        write(
            &path,
            &[deposit("a", "1"), deposit("a", "2"), deposit("a", "3")],
        );
        let long: Vec<Command<'_>> = (0..12).map(|_| deposit("a", "4")).collect();
        write(&path, &long);
        write(&path, &[deposit("a", "5")]);
        let mut f = Follower::new(&path);
        // About five lines a round.
        f.round_bytes = 1000;
        let mut c = Collect::default();
        while !f.round(&mut c).unwrap() {}
        assert_eq!(seqs(&c), (1..=17).collect::<Vec<u64>>());
        // Appends that fit in a round are never split...
        assert_eq!(c.rounds[0], [1, 2, 3, 4]);
        // ...and a longer one is handed over in pieces.
        assert!(c.rounds.len() >= 4, "{:?}", c.rounds);
        assert!(c.rounds.iter().all(|r| r.len() <= 8), "{:?}", c.rounds);
        assert_eq!(c.caught_up.pop(), Some(true));
        assert!(c.caught_up.iter().all(|&up| !up));
    }

    #[test]
    fn a_stopper_ends_run() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.jsonl");
        let mut f = Follower::new(&path);
        let stopper = f.stopper();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            stopper.stop();
        });
        let mut c = Collect::default();
        f.run(&mut c).unwrap();
        t.join().unwrap();
        assert!(c.ends >= 1);
    }

    /// A long append cut short, then a line claiming the append's last seq:
    /// the follower must fail without handing over any event of that
    /// append, however the rounds cut it.
    #[test]
    fn no_event_of_a_cut_long_append_is_handed_over() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.jsonl");
        write(&path, &[Command::create("a")]);
        let long: Vec<Command<'_>> = (0..12).map(|_| deposit("a", "4")).collect();
        write(&path, &long);
        let bytes = fs::read(&path).unwrap();
        let lines: Vec<&[u8]> = bytes.split(|&b| b == b'\n').collect();
        // The header, seq 1 and the first 6 lines of the append (seqs 2-7).
        let mut cut: Vec<u8> = lines[..8].join(&b'\n');
        cut.push(b'\n');
        let last = String::from_utf8(lines[13].to_vec()).unwrap();
        assert!(last.starts_with(r#"{"seq":13,"#), "{last}");
        cut.extend_from_slice(last.as_bytes());
        cut.push(b'\n');
        fs::write(&path, &cut).unwrap();
        for round_bytes in [300, 1_000, 1 << 20] {
            let mut f = Follower::new(&path);
            f.round_bytes = round_bytes;
            let mut c = Collect::default();
            let err = loop {
                if let Err(e) = f.round(&mut c) {
                    break e;
                }
            };
            assert!(seqs(&c).iter().all(|&s| s < 2), "{round_bytes}: {err}");
            assert!(err.to_string().contains("line 9"), "{err}");
        }
    }
}
