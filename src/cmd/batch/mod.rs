//! `ledger batch`: many write commands, validated in order against the
//! evolving state, appended all at once or not at all (SPEC 4).

use std::fs;
use std::io::{self, BufRead, IsTerminal, Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::cli::BatchArgs;
use crate::cmd::apply::{Applier, at_line};
use crate::cmd::foresee::{self, Named, Names};
use crate::cmd::{Context, pipeline};
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
    let commands = &input.commands;
    let mut applier = Applier::open(ctx, args.dry_run)?;
    applier.expect(commands.count);
    // Read with the journal locked, while the writer loads what it will
    // need (a file's reading never waits on anyone).
    let foreseen = match foresee::worth(commands.count, commands.mentions_ids, &ctx.path) {
        true => foresee::alongside(&mut applier, commands.count, |names| {
            read_ahead(&input, names)
        })?,
        false => None,
    };
    let read_before = match foreseen {
        Some((names, read)) => names.tell(&mut applier, &read)?.digest,
        None => None,
    };
    let parser = || {
        let mut grammar = Grammar::new();
        move |text: &[u8]| parse_line(&mut grammar, text).transpose()
    };
    let (reader, read) = input.reader()?;
    parse_lines(reader, "the batch input", parser, |line, command| {
        applier.apply(line, command)
    })?;
    foresee::check(read_before, &read).map_err(|e| input.error(e))?;
    applier.finish()
}

/// A batch's input, ready to be read, once to foresee its ids (see
/// [`read_ahead`]) and once to apply it.
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
    /// A reader from its start, and its digest once it reaches the end.
    /// (Only a file can change between two readings: every reading of a
    /// text in memory has the same constant digest.)
    fn reader(&self) -> Result<(Box<dyn BufRead + Send>, foresee::Reading), Error> {
        match &self.source {
            Source::File(file) => {
                let (reader, read) =
                    foresee::from_start(file, READ_BUFFER).map_err(|e| self.error(e))?;
                Ok((Box::new(reader), read))
            }
            Source::Memory(text) => {
                let read = foresee::Reading::new([0; 32].into());
                Ok((Box::new(io::Cursor::new(Arc::clone(text))), read))
            }
        }
    }

    /// A failure to read it.
    fn error(&self, e: io::Error) -> Error {
        read_error(self.path.as_deref(), e)
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
                let commands = count(&mut reader, BATCH_IDS).map_err(io_error)?;
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
    let mut commands = Commands::seeking(BATCH_IDS);
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

/// What `input` names (see [`foresee`](mod@foresee)), from a reading of
/// its own, parsed as the batch parses it, and that reading's digest.
/// `None` if a line fails (the batch meets it again).
fn read_ahead(input: &Input, mut names: Names) -> Option<(Names, foresee::Reading)> {
    let parser = || {
        let mut grammar = Grammar::new();
        move |text: &[u8]| {
            let command = parse_line(&mut grammar, text).transpose()?;
            Some(command.map(|c| Named::of(&c)))
        }
    };
    let (reader, read) = input.reader().ok()?;
    let apply = |_, named: Result<Named, Error>| {
        names.add(named?);
        Ok(())
    };
    parse_lines(reader, "the batch input", parser, apply).ok()?;
    Some((names, read))
}

/// Counts the lines of `file` that hold a command, and sees whether
/// `ids` is in it (see [`Commands`]), then rewinds it.
pub(crate) fn count(
    file: &mut io::BufReader<fs::File>,
    ids: &'static [u8; 3],
) -> io::Result<Commands> {
    let mut commands = Commands::seeking(ids);
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
pub(crate) struct Commands {
    pub count: usize,
    /// Whether the line going by was counted or passed over already (its
    /// first byte other than a blank seen): the rest of it is skipped.
    within: bool,
    /// What names an id: `-id` for a batch (in an `--id`, an `--of-id`).
    ids: &'static [u8; 3],
    /// Whether [`ids`](Self::ids) went by (or only in a name or a memo).
    pub mentions_ids: bool,
    /// The last two bytes fed, for [`ids`](Self::ids) cut between two
    /// feeds.
    tail: [u8; 2],
}

/// What names an id in a batch's input.
const BATCH_IDS: &[u8; 3] = b"-id";

impl Commands {
    fn seeking(ids: &'static [u8; 3]) -> Commands {
        Commands {
            count: 0,
            within: false,
            ids,
            mentions_ids: false,
            tail: [0; 2],
        }
    }

    fn feed(&mut self, bytes: &[u8]) {
        if !self.mentions_ids {
            let mut edge = [self.tail[0], self.tail[1], 0, 0];
            let n = bytes.len().min(2);
            edge[2..2 + n].copy_from_slice(&bytes[..n]);
            self.mentions_ids = memchr::memmem::find(&edge[..2 + n], self.ids).is_some()
                || memchr::memmem::find(bytes, self.ids).is_some();
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

/// Lines per unit of work handed to a parsing thread. About ten chunks
/// of parsed commands are in flight between the threads: of 4,096 lines,
/// they held 20 MB more at a batch's peak (2,000,000 ids into a million
/// accounts), of 1,024 lines 3 MB more; of 256, that batch took a second
/// longer.
const CHUNK: usize = 512;

/// Bytes read from the input at a time.
const READ_BUFFER: usize = 1 << 20;

/// Reads the lines of `input` (called `name` in a read error) and hands
/// what each line parses to (a command, or why it has none), with its
/// line number, to `apply`, in input order; stops at the first error
/// `apply` returns. Each worker thread
/// parses with a parser of its own, made by `parser`, which gives `None`
/// for a line that holds no command (blank, a comment).
pub(crate) fn parse_lines<P, T>(
    input: Box<dyn BufRead + Send>,
    name: &str,
    parser: impl Fn() -> P + Sync,
    mut apply: impl FnMut(usize, Result<T, Error>) -> Result<(), Error>,
) -> Result<(), Error>
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
                parsed
            }
            Err(e) => vec![(0, Err(e))],
        }
    };
    pipeline::in_order(line_chunks(input, name), worker, 2, |parsed| {
        parsed
            .into_iter()
            .try_for_each(|(line, command)| apply(line, command))
    })
}

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
    use super::{BATCH_IDS, Commands};

    /// Blank lines and comments are not counted, wherever the input is
    /// cut into the pieces read.
    #[test]
    fn commands_are_counted_however_the_input_is_cut() {
        let text = b"create a\n\n  # note\n\t deposit a 1\r\n#x\n \r\n\nwithdraw a 1";
        for cut in 0..=text.len() {
            let mut commands = Commands::seeking(BATCH_IDS);
            commands.feed(&text[..cut]);
            commands.feed(&text[cut..]);
            assert_eq!(commands.count, 3, "cut at {cut}");
        }
    }

    /// What names an id (`-id` in a batch, `id"` in JSON Lines) is seen
    /// wherever the input is cut, even across three pieces, and only
    /// where it is.
    #[test]
    fn ids_are_seen_however_the_input_is_cut() {
        let json = b"id\"";
        let cases: [(&[u8; 3], &[u8], bool); 7] = [
            (BATCH_IDS, b"deposit a 1 --id k\n", true),
            (BATCH_IDS, b"create a\nreverse --of-id x", true),
            (BATCH_IDS, b"-id", true),
            (BATCH_IDS, b"deposit a 1 --memo i-d -i d\n", false),
            (json, br#"{"command":"reverse","of_id":"k"}"#, true),
            (json, br#"{"id":"k"}"#, true),
            (json, br#"{"command":"deposit","memo":"idle -id k"}"#, false),
        ];
        for (ids, text, mentions) in cases {
            for one in 0..=text.len() {
                for two in one..=text.len() {
                    let mut commands = Commands::seeking(ids);
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
}
