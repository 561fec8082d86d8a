//! `ledger batch`: many write commands, validated in order against the
//! evolving state, appended all at once or not at all (SPEC 4).

use std::collections::BTreeSet;
use std::fs;
use std::hash::BuildHasher;
use std::io::{self, BufRead, IsTerminal, Read, Seek, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock};

use crate::cli::BatchArgs;
use crate::cmd::apply::{Applier, at_line};
use crate::cmd::{Context, pipeline};
use crate::domain::id_key;
use crate::error::Error;
use crate::journal::JournalError;
use crate::journal::line;
use crate::journal::sidecar::{self, Owner};

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
    let input = open_input(args, &ctx.path)?;
    // Read before the journal is locked, as the count is.
    let foreseen = worth_foreseeing(&input, &ctx.path)
        .then(|| foresee(&input))
        .flatten();
    let mut applier = Applier::open(ctx, args.dry_run)?;
    applier.expect(input.commands.count);
    let read_before = match foreseen {
        Some(f) => applier.foresee(f.keys, f.accounts)?.then_some(f.digest),
        None => None,
    };
    let parser = || {
        let mut grammar = Grammar::new();
        move |text: &[u8]| parse_line(&mut grammar, text).transpose()
    };
    let read = parse_lines(
        input.reader()?,
        "the batch input",
        parser,
        |line, command| applier.apply(line, command),
    )?;
    // The ids foreseen are only those of the text read before: a text
    // changed since could repeat an id taken for new.
    if read_before.is_some_and(|before| before != read) {
        let changed = io::Error::other("it changed while the batch read it");
        return Err(input.error(changed));
    }
    applier.finish()
}

/// A batch's input, ready to be read, once to foresee its ids (see
/// [`foresee`]) and once to apply it.
struct Input {
    source: Source,
    /// The file it is read from; `None` for stdin.
    path: Option<PathBuf>,
    commands: Commands,
}

enum Source {
    /// A regular file: the one given, or one that keeps stdin.
    File(fs::File),
    Memory(Arc<[u8]>),
}

impl Input {
    /// A reader from its start.
    fn reader(&self) -> Result<Box<dyn BufRead + Send>, Error> {
        match &self.source {
            Source::File(file) => {
                let file = file.try_clone().map_err(|e| self.error(e))?;
                let from_start = ReadAt { file, pos: 0 };
                Ok(Box::new(io::BufReader::with_capacity(
                    READ_BUFFER,
                    from_start,
                )))
            }
            Source::Memory(text) => Ok(Box::new(io::Cursor::new(Arc::clone(text)))),
        }
    }

    /// A failure to read it.
    fn error(&self, e: io::Error) -> Error {
        read_error(self.path.as_deref(), e)
    }
}

/// A file read from a place of its own: two readers of one file, each
/// with its own, never move each other's (a cloned descriptor shares the
/// file's offset).
struct ReadAt {
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

fn read_error(path: Option<&Path>, e: io::Error) -> Error {
    match path {
        Some(path) => Error::Journal(JournalError::io(path, "read batch file", e)),
        None => Error::Journal(JournalError::io("stdin".as_ref(), "read", e)),
    }
}

/// A batch's input, and how many of its lines hold a command. A regular
/// file is read as the lines are applied, with the journal locked: reading
/// it never waits on anyone (it is read once before, to count). Anything
/// else (stdin, a pipe, a device) could be a slow producer that would hold
/// other writers up, so it is read to its end first, its lines bounded as
/// the file's are, before the journal is locked: into memory, and past a
/// few MiB into a nameless file beside the `journal` (so that memory does
/// not grow with the batch).
fn open_input(args: &BatchArgs, journal: &Path) -> Result<Input, Error> {
    let path = args.input.as_deref().filter(|p| p.as_os_str() != "-");
    let io_error = |e| read_error(path, e);
    let source: Box<dyn Read + Send> = match path {
        Some(path) => {
            let file = fs::File::open(path).map_err(io_error)?;
            let meta = file.metadata().map_err(io_error)?;
            if meta.file_type().is_file() {
                let mut reader = io::BufReader::with_capacity(READ_BUFFER, file);
                let commands = count(&mut reader).map_err(io_error)?;
                return Ok(Input {
                    source: Source::File(reader.into_inner()),
                    path: Some(path.to_owned()),
                    commands,
                });
            }
            Box::new(file)
        }
        None => Box::new(io::stdin()),
    };
    let mut reader = io::BufReader::with_capacity(READ_BUFFER, source);
    let (mut text, mut line, mut spool) = (Vec::new(), 0, None);
    let mut commands = Commands::default();
    let spool_error = |e| Error::Journal(JournalError::io(journal, KEEP_INPUT, e));
    loop {
        line += 1;
        let start = text.len();
        match read_line(&mut reader, &mut text) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) if e.kind() == io::ErrorKind::InvalidData => return Err(too_long(line)),
            Err(e) => return Err(io_error(e)),
        }
        commands.feed(&text[start..]);
        if text.len() >= READ_BUFFER {
            let file = match &mut spool {
                Some(file) => file,
                None => spool.insert(input_spool(journal).map_err(spool_error)?),
            };
            file.write_all(&text).map_err(spool_error)?;
            text.clear();
        }
    }
    let path = path.map(Path::to_owned);
    let Some(mut file) = spool else {
        let source = Source::Memory(text.into());
        return Ok(Input {
            source,
            path,
            commands,
        });
    };
    file.write_all(&text).map_err(spool_error)?;
    Ok(Input {
        source: Source::File(file),
        path,
        commands,
    })
}

/// Batches of fewer commands than this are not foreseen (see
/// [`foresee`]): the ids they name are looked up one by one, in as many
/// of the model's buckets, which costs less than reading them twice.
const FORESEE_MIN: usize = 4096;

/// What a batch's input names, read before it is applied.
struct Foreseen {
    /// The key of each id, once for each time it is named.
    keys: Vec<i64>,
    /// About how many accounts it names.
    accounts: usize,
    /// A digest of the text they were read from.
    digest: u64,
}

/// Whether to read the ids of `input` ahead (see [`foresee`]): a batch
/// of many commands that mentions ids, into a journal with a read model.
fn worth_foreseeing(input: &Input, journal: &Path) -> bool {
    let commands = &input.commands;
    commands.count >= FORESEE_MIN
        && commands.mentions_ids
        && crate::readmodel::path_of(journal).is_file()
}

/// The keys of the ids `input` names (see `Writer::foresee_ids`), and
/// about how many accounts it names, from a reading of its own, parsed
/// as the batch parses it. Read once more, a batch of a million ids takes
/// a fraction of a second; looked up one by one, their buckets taken in
/// and held, the ids cost seconds and tens of MiB. `None` if a line fails
/// (the batch meets it again).
fn foresee(input: &Input) -> Option<Foreseen> {
    let parser = || {
        let mut grammar = Grammar::new();
        move |text: &[u8]| {
            let command = parse_line(&mut grammar, text).transpose()?;
            Some(command.map(|c| {
                let mut keys = c.ids().map(id_key);
                let accounts = c.accounts().map(|a| a.map(|a| DIGEST.hash_one(a)));
                ([keys.next(), keys.next()], accounts)
            }))
        }
    };
    let mut keys = Vec::with_capacity(input.commands.count);
    let mut accounts = Distinct::default();
    let digest = parse_lines(
        input.reader().ok()?,
        "the batch input",
        parser,
        |_, named| {
            let (ids, names) = named?;
            keys.extend(ids.into_iter().flatten());
            names.into_iter().flatten().for_each(|a| accounts.add(a));
            Ok(())
        },
    );
    digest.ok().map(|digest| Foreseen {
        keys,
        accounts: accounts.estimate(),
        digest,
    })
}

/// About how many distinct values there were, from their hashes: the
/// smallest [`SKETCH`] of them kept (k minimum values); exact below that
/// many, a few percent off from there on. Enough to tell a batch into
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

/// Counts the lines of `file` that hold a command (see [`Commands`]),
/// then rewinds it.
pub(crate) fn count_commands(file: &mut io::BufReader<fs::File>) -> io::Result<usize> {
    count(file).map(|commands| commands.count)
}

/// [`count_commands`], with whether the file names ids.
fn count(file: &mut io::BufReader<fs::File>) -> io::Result<Commands> {
    let mut commands = Commands::default();
    loop {
        let bytes = fill(file)?;
        if bytes.is_empty() {
            break;
        }
        commands.feed(bytes);
        let n = bytes.len();
        file.consume(n);
    }
    file.rewind()?;
    Ok(commands)
}

/// Counts, as the input's bytes go by, the lines that hold a command:
/// those with something other than blanks, not starting with `#`. What a
/// batch will append, if no command repeats an earlier one's `--id`; a
/// line the parser refuses counts too (the batch then appends nothing).
#[derive(Default)]
struct Commands {
    count: usize,
    /// Whether the line going by was counted or passed over already (its
    /// first byte other than a blank seen): the rest of it is skipped.
    within: bool,
    /// Whether `-id` went by (in an `--id`, an `--of-id`, or only in a
    /// name or a memo).
    mentions_ids: bool,
    /// The last two bytes fed, for a `-id` cut between two feeds.
    tail: [u8; 2],
}

impl Commands {
    fn feed(&mut self, bytes: &[u8]) {
        if !self.mentions_ids {
            let mut edge = [self.tail[0], self.tail[1], 0, 0];
            let n = bytes.len().min(2);
            edge[2..2 + n].copy_from_slice(&bytes[..n]);
            self.mentions_ids = memchr::memmem::find(&edge[..2 + n], b"-id").is_some()
                || memchr::memmem::find(bytes, b"-id").is_some();
        }
        if let [.., a, b] = bytes {
            self.tail = [*a, *b];
        } else if let [b] = bytes {
            self.tail = [self.tail[1], *b];
        }
        self.count_lines(bytes);
    }

    fn count_lines(&mut self, mut bytes: &[u8]) {
        while let Some((&first, rest)) = bytes.split_first() {
            if self.within {
                let Some(end) = memchr::memchr(b'\n', bytes) else {
                    return;
                };
                self.within = false;
                bytes = &bytes[end + 1..];
                continue;
            }
            match first {
                b' ' | b'\t' | b'\r' | b'\n' => {}
                b'#' => self.within = true,
                _ => {
                    self.count += 1;
                    self.within = true;
                }
            }
            bytes = rest;
        }
    }
}

/// What keeping a long batch input in a file is called in errors.
const KEEP_INPUT: &str = "keep the batch input in a temporary file beside";

/// A nameless file for the batch input: beside the journal, or in the
/// temporary directory while the journal's directory does not exist yet.
fn input_spool(journal: &Path) -> io::Result<fs::File> {
    match sidecar::create_spool(journal, Owner::me()) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            sidecar::create_spool(&std::env::temp_dir().join("ledger-batch"), Owner::me())
        }
        spool => spool,
    }
}

/// Appends one line of `reader` (with its `\n`, if it has one) to `buf`,
/// reading no more than [`line::MAX_LINE`] bytes of it: a longer line is
/// an `InvalidData` error, found without reading the rest of the input,
/// and none of it is kept.
/// Returns whether there was a line.
fn read_line(reader: &mut impl BufRead, buf: &mut Vec<u8>) -> io::Result<bool> {
    let start = buf.len();
    loop {
        let available = fill(reader)?;
        if available.is_empty() {
            return Ok(buf.len() > start);
        }
        let (take, done) = match memchr::memchr(b'\n', available) {
            Some(i) => (i + 1, true),
            None => (available.len(), false),
        };
        buf.extend_from_slice(&available[..take]);
        reader.consume(take);
        let len = buf.len() - start - usize::from(done);
        if len > line::MAX_LINE {
            buf.truncate(start);
            return Err(io::Error::from(io::ErrorKind::InvalidData));
        }
        if done {
            return Ok(true);
        }
    }
}

/// The reader's buffered bytes, read again after an interrupted read;
/// empty at the end.
fn fill(reader: &mut impl BufRead) -> io::Result<&[u8]> {
    loop {
        match reader.fill_buf() {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
            Ok([]) => return Ok(&[]),
            // Filled: asked again, the reader reads nothing more (the
            // borrow cannot leave the loop).
            Ok(_) => return reader.fill_buf(),
        }
    }
}

fn too_long(line: usize) -> Error {
    at_line(
        line,
        Error::Usage(format!(
            "the line is longer than {} bytes, the longest a journal line may be",
            line::MAX_LINE
        )),
    )
}

/// Lines per unit of work handed to a parsing thread.
const CHUNK: usize = 4096;

/// Bytes read from the input at a time.
const READ_BUFFER: usize = 1 << 20;

/// Reads the lines of `input` (called `name` in a read error) and hands
/// what each line parses to (a command, or why it has none), with its
/// line number, to `apply`, in input order; stops at the first error
/// `apply` returns. Gives a digest of the text read. Each worker thread
/// parses with a parser of its own, made by `parser`, which gives `None`
/// for a line that holds no command (blank, a comment).
pub(crate) fn parse_lines<P, T>(
    input: Box<dyn BufRead + Send>,
    name: &str,
    parser: impl Fn() -> P + Sync,
    mut apply: impl FnMut(usize, Result<T, Error>) -> Result<(), Error>,
) -> Result<u64, Error>
where
    P: FnMut(&[u8]) -> Option<Result<T, Error>>,
    T: Send,
{
    let worker = || {
        let mut parse = parser();
        move |chunk: Chunk| match chunk {
            Ok((first, text)) => {
                // Sized at once: grown a push at a time, the commands
                // were copied about twice more.
                let mut parsed = Vec::with_capacity(CHUNK);
                let lines = text.split(|&b| b == b'\n').enumerate();
                parsed.extend(lines.filter_map(|(i, text)| {
                    let line = first + i;
                    parse(text).map(|r| (line, r.map_err(|e| at_line(line, e))))
                }));
                (DIGEST.hash_one(&text), parsed)
            }
            Err(e) => (0, vec![(0, Err(e))]),
        }
    };
    let mut digest = 0;
    pipeline::in_order(line_chunks(input, name), worker, 2, |(read, parsed)| {
        digest = DIGEST.hash_one((digest, read));
        parsed
            .into_iter()
            .try_for_each(|(line, command)| apply(line, command))
    })?;
    Ok(digest)
}

/// Keyed per process, so that no text can be made to share another's
/// digest; the same for every read of an input.
static DIGEST: LazyLock<foldhash::quality::RandomState> = LazyLock::new(Default::default);

/// Lines of the input (joined, the last `\n` left out) and the number of
/// the first, or the error that ends the input.
type Chunk = Result<(usize, Vec<u8>), Error>;

/// The chunks of [`CHUNK`] lines of `input` (called `name` in a read
/// error), up to its end or an error (after the lines before it).
fn line_chunks(
    mut input: Box<dyn BufRead + Send>,
    name: &str,
) -> impl Iterator<Item = Chunk> + Send + '_ {
    let mut line = 0;
    pipeline::chunks(move || {
        let first = line + 1;
        let mut text = Vec::new();
        let mut end = None;
        while end.is_none() && line + 1 - first < CHUNK {
            line += 1;
            end = match read_line(&mut input, &mut text) {
                Ok(true) => None,
                Ok(false) => Some(Ok(())),
                Err(e) if e.kind() == io::ErrorKind::InvalidData => Some(Err(too_long(line))),
                Err(e) => {
                    let e = JournalError::io(name.as_ref(), "read", e);
                    Some(Err(Error::Journal(e)))
                }
            };
        }
        if text.last() == Some(&b'\n') {
            text.pop();
        }
        ((!text.is_empty()).then_some((first, text)), end)
    })
}

#[cfg(test)]
mod tests {
    use super::{Commands, Distinct, SKETCH, parse_lines};
    use crate::error::Error;
    use std::hash::BuildHasher;

    /// Blank lines and comments are not counted, wherever the input is
    /// cut into the pieces read.
    #[test]
    fn commands_are_counted_however_the_input_is_cut() {
        let text = b"create a\n\n  # note\n\t deposit a 1\r\n#x\n \r\n\nwithdraw a 1";
        for cut in 0..=text.len() {
            let mut commands = Commands::default();
            commands.feed(&text[..cut]);
            commands.feed(&text[cut..]);
            assert_eq!(commands.count, 3, "cut at {cut}");
        }
    }

    /// `-id` is seen wherever the input is cut, even across three
    /// pieces, and only where it is.
    #[test]
    fn ids_are_seen_however_the_input_is_cut() {
        let cases: [(&[u8], bool); 4] = [
            (b"deposit a 1 --id k\n", true),
            (b"create a\nreverse --of-id x", true),
            (b"-id", true),
            (b"deposit a 1 --memo i-d -i d\n", false),
        ];
        for (text, mentions) in cases {
            for one in 0..=text.len() {
                for two in one..=text.len() {
                    let mut commands = Commands::default();
                    for piece in [&text[..one], &text[one..two], &text[two..]] {
                        commands.feed(piece);
                    }
                    assert_eq!(
                        commands.mentions_ids, mentions,
                        "{text:?} cut at {one}, {two}"
                    );
                }
            }
        }
    }

    /// The digest of what was read is the same for the same text, however
    /// often it is read, and another for a text a byte apart (but for a
    /// last newline, which ends the same lines).
    #[test]
    fn a_text_read_twice_has_one_digest_and_another_text_another() {
        let read = |text: &str| {
            let parser = || |line: &[u8]| (!line.is_empty()).then_some(Ok::<_, Error>(()));
            let input = Box::new(std::io::Cursor::new(text.as_bytes().to_vec()));
            parse_lines(input, "text", parser, |_, _| Ok(())).expect("read")
        };
        let text: String = (0..10_000)
            .map(|i| format!("deposit a 1 --id k{i}\n"))
            .collect();
        assert_eq!(read(&text), read(&text));
        assert_ne!(read(&text), read(&text.replacen("k5000", "k5001", 1)));
        assert_ne!(read(&text), read(&text[..text.len() - 2]));
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
}
