//! `ledger batch`: many write commands, validated in order against the
//! evolving state, appended all at once or not at all (SPEC 4).

use std::fs;
use std::io::{self, IsTerminal, Read};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::cli::{BatchArgs, WriteCommand};
use crate::cmd::Context;
use crate::cmd::apply::{Applier, at_line};
use crate::error::Error;
use crate::journal::JournalError;

mod parse;

use parse::{Grammar, parse_line};

/// Runs a batch.
pub fn run(ctx: &Context, args: &BatchArgs) -> Result<(), Error> {
    // Someone who typed `ledger batch` alone would otherwise face a silent
    // wait, not knowing it reads until end of input.
    let from_stdin = args.input.as_deref().is_none_or(|p| p.as_os_str() == "-");
    if from_stdin && io::stdin().is_terminal() {
        super::note("reading commands from standard input; end with Ctrl-D");
    }
    // The whole input is read before the journal is locked, so a slow pipe
    // never holds other writers up.
    let input = read_input(args)?;
    // An event line is its command's words plus some 170 bytes of keys,
    // seq, time and hash: room for that saves copying the lines each time
    // they outgrow their buffer, and getting it ready on another thread
    // saves this one the kernel's work of mapping it.
    let commands = commands(&input);
    let mut buffer = Prefault::start(
        commands
            .saturating_mul(EVENT_LINE_ROOM)
            .saturating_add(input.len()),
    );
    let mut applier = Applier::open(ctx, args.dry_run)?;
    applier.writer().reserve(commands);
    parse_lines(&input, |line, command| {
        if let Some(ready) = buffer.ready() {
            applier.writer().adopt_buffer(ready);
        }
        applier.apply(line, command)
    })?;
    applier.finish()
}

fn read_input(args: &BatchArgs) -> Result<Vec<u8>, Error> {
    match args.input.as_deref() {
        Some(path) if path.as_os_str() != "-" => {
            fs::read(path).map_err(|e| Error::Journal(JournalError::io(path, "read batch file", e)))
        }
        _ => {
            let mut input = Vec::new();
            io::stdin()
                .lock()
                .read_to_end(&mut input)
                .map_err(|e| Error::Journal(JournalError::io("stdin".as_ref(), "read", e)))?;
            Ok(input)
        }
    }
}

/// How many lines hold a command (neither blank nor a comment): at most
/// the events the batch appends.
fn commands(input: &[u8]) -> usize {
    let mut start = 0;
    let mut count = 0;
    for end in memchr::memchr_iter(b'\n', input).chain([input.len()]) {
        let first = input[start..end].iter().find(|b| !b.is_ascii_whitespace());
        count += usize::from(first.is_some_and(|&b| b != b'#'));
        start = end + 1;
    }
    count
}

/// Memory for the staged lines, made ready on another thread. The kernel
/// maps and zeroes each fresh page on first touch; for a large batch that
/// cost the applying thread about as much as encoding its lines, while the
/// parsing threads had time to spare.
struct Prefault {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<Vec<u8>>>,
}

impl Prefault {
    /// Starts making `bytes` ready (less if asked to stop, nothing if the
    /// memory or a thread cannot be had: it is only a head start).
    fn start(bytes: usize) -> Prefault {
        /// Touched at a time, between checks for `stop`.
        const STEP: usize = 2 << 20;
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("batch-memory".into())
            .spawn(move || {
                let mut buffer = Vec::new();
                if buffer.try_reserve_exact(bytes).is_ok() {
                    while buffer.len() < bytes && !stopped.load(Ordering::Relaxed) {
                        buffer.resize(bytes.min(buffer.len() + STEP), 0);
                    }
                }
                // Emptied, it keeps its capacity and its pages.
                buffer.clear();
                buffer
            })
            .ok();
        Prefault { stop, thread }
    }

    /// The buffer, once (and the one time) it is ready.
    fn ready(&mut self) -> Option<Vec<u8>> {
        let thread = self.thread.take_if(|t| t.is_finished())?;
        thread.join().ok()
    }
}

impl Drop for Prefault {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Bytes of an event line beyond its command's own words.
const EVENT_LINE_ROOM: usize = 192;

/// Lines per unit of work handed to a parsing thread.
const CHUNK: usize = 4096;

/// Parses the lines of `input` and hands each command (or why the line has
/// none), with its line number, to `apply`, in input order; stops at the
/// first error `apply` returns.
///
/// Parsing (shell words, then clap) costs far more than deciding, and lines
/// parse independently, so chunks of lines are parsed on worker threads while
/// this thread applies them in order.
fn parse_lines(
    input: &[u8],
    mut apply: impl FnMut(usize, Result<WriteCommand, Error>) -> Result<(), Error>,
) -> Result<(), Error> {
    type Parsed = Vec<(usize, Result<WriteCommand, Error>)>;
    let lines: Vec<&[u8]> = input.split(|&b| b == b'\n').collect();
    let chunks = lines.len().div_ceil(CHUNK);
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, 4)
        .min(chunks.max(1));
    std::thread::scope(|scope| {
        let receivers: Vec<std::sync::mpsc::Receiver<Parsed>> = (0..workers)
            .map(|w| {
                let (tx, rx) = std::sync::mpsc::sync_channel::<Parsed>(2);
                let lines = &lines;
                scope.spawn(move || {
                    let mut grammar = Grammar::new();
                    for (c, chunk) in lines.chunks(CHUNK).enumerate().skip(w).step_by(workers) {
                        let parsed: Parsed = chunk
                            .iter()
                            .enumerate()
                            .filter_map(|(i, text)| {
                                let line = c * CHUNK + i + 1;
                                parse_line(&mut grammar, text)
                                    .transpose()
                                    .map(|r| (line, r.map_err(|e| at_line(line, e))))
                            })
                            .collect();
                        // A closed channel means an earlier line failed.
                        if tx.send(parsed).is_err() {
                            return;
                        }
                    }
                });
                rx
            })
            .collect();
        for c in 0..chunks {
            let parsed = receivers[c % workers]
                .recv()
                .map_err(|_| Error::Usage("a batch parsing thread stopped".into()))?;
            for (line, command) in parsed {
                apply(line, command)?;
            }
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_the_lines_neither_blank_nor_comments() {
        assert_eq!(commands(b""), 0);
        assert_eq!(commands(b"\n\n  \t\r\n# x\n   # y\n"), 0);
        assert_eq!(commands(b"create a\r\n\n deposit a 1\n#c\nclose a"), 3);
    }

    #[test]
    fn prefaulted_memory_is_empty_with_room() {
        let mut prefault = Prefault::start(3 << 20);
        let buffer = loop {
            if let Some(buffer) = prefault.ready() {
                break buffer;
            }
            std::thread::yield_now();
        };
        assert!(buffer.is_empty());
        assert!(buffer.capacity() >= 3 << 20);
        assert!(prefault.ready().is_none());
    }
}
