//! Batch lines into write commands: shell words, then the command line's
//! grammar.
//!
//! clap costs microseconds a line, which at a million lines was most of a
//! batch's time. The write commands use a small part of its grammar: each
//! takes positional words in order and `--name VALUE` (or `--name=VALUE`)
//! options, `--tag` repeatable. [`Grammar`] reads that much by hand, from
//! clap's own definitions, and puts each word through the very value parser
//! clap uses ([`WriteCommand::set_arg`]). Anything else on a line (a word
//! starting with `-` that is not one of the command's options, `--`, an
//! option given twice, a missing or extra word) and any word a value parser
//! refuses goes to clap, for its meaning or its own message. A property test
//! checks on every run that both always agree.

use clap::{CommandFactory, FromArgMatches, Parser};

use crate::cli::{
    BatchLine, CloseArgs, CreateArgs, HoldArgs, HoldRefArgs, MoveArgs, ReleaseArgs, ReverseArgs,
    TransferArgs, WriteCommand,
};
use crate::error::Error;

/// Commands of the command line that a batch line may not use (SPEC 4: a
/// batch appends, all at once; nothing else fits inside one), named so the
/// error can say so rather than "unrecognized subcommand".
const NOT_IN_BATCH: [&str; 8] = [
    "import",
    "export",
    "batch",
    "verify",
    "balance",
    "history",
    "completions",
    "help",
];

/// One line: `None` if blank or a comment.
pub(super) fn parse_line(
    grammar: &mut Grammar,
    text: &[u8],
) -> Result<Option<WriteCommand>, Error> {
    let text = std::str::from_utf8(text)
        .map_err(|_| Error::Usage("the line is not valid UTF-8".into()))?;
    // A CRLF file's `\r` is not part of the line; anything else is, as the
    // shell would split it (so `--memo x\ ` keeps its escaped space).
    let text = text.strip_suffix('\r').unwrap_or(text);
    let unquoted;
    let words: Vec<&str> = if needs_shell(text) {
        unquoted = shell_words::split(text).map_err(|e| Error::Usage(e.to_string()))?;
        unquoted.iter().map(String::as_str).collect()
    } else {
        text.split_ascii_whitespace().collect()
    };
    if words.is_empty() {
        // Blank, or only a comment.
        return Ok(None);
    }
    if let Some(first) = words.first().filter(|w| NOT_IN_BATCH.contains(w)) {
        return Err(Error::Usage(format!(
            "'{first}' cannot be used in a batch: only write commands (create, deposit, withdraw, transfer, close, reverse, hold, capture, release)"
        )));
    }
    grammar
        .parse(&words)
        .map(Some)
        .map_err(|e| Error::Usage(clap_message(&e)))
}

/// Whether splitting `text` at ASCII whitespace could differ from shell
/// splitting: quotes, escapes and comments make it differ, and so do the
/// two blanks that `split_ascii_whitespace` splits at and the shell does
/// not (form feed, carriage return). Splitting at bytes rather than
/// chars took a twentieth off the CPU of a batch of 1,000,000 lines.
fn needs_shell(text: &str) -> bool {
    text.bytes()
        .any(|b| matches!(b, b'\'' | b'"' | b'\\' | b'#' | b'\x0c' | b'\r'))
}

/// The command-line grammar of the write commands, prepared once per
/// parsing thread.
pub(super) struct Grammar {
    parent: clap::Command,
    /// Each subcommand's words, or `None` where clap must read every line
    /// (its template could not be made).
    commands: Vec<(clap::Command, Option<Words>)>,
}

/// What the words of one write command may be.
struct Words {
    /// The command with its defaults, and placeholders where a required
    /// word goes (every line must give those).
    template: WriteCommand,
    /// The ids of its positional arguments, in order, and whether each is
    /// required.
    positionals: Vec<(String, bool)>,
    /// Its options: long name, id, and whether it may be repeated.
    options: Vec<(String, String, bool)>,
}

impl Words {
    /// The words of subcommand `sub`, if its template can be made: clap's
    /// parse of its name and a placeholder for each required word.
    fn of(sub: &clap::Command) -> Option<Words> {
        let mut positionals: Vec<(usize, String, bool)> = Vec::new();
        let mut options = Vec::new();
        for arg in sub.get_arguments() {
            let id = arg.get_id().as_str().to_owned();
            match (arg.get_index(), arg.get_long()) {
                (Some(index), None) => positionals.push((index, id, arg.is_required_set())),
                (None, Some(long)) => {
                    let repeated = matches!(arg.get_action(), clap::ArgAction::Append);
                    let takes_value = arg.get_num_args().is_some_and(|n| n.takes_values());
                    if takes_value {
                        options.push((long.to_owned(), id, repeated));
                    }
                }
                _ => {}
            }
        }
        positionals.sort();
        let required = positionals.iter().filter(|(_, _, r)| *r).count();
        let mut template = placeholders(required)
            .find_map(|words| {
                let seed = std::iter::once(sub.get_name()).chain(words.iter().copied());
                BatchLine::try_parse_from(seed).ok()
            })?
            .command;
        // Every line sets them; emptied, each line's copy allocates none.
        template.clear_names();
        Some(Words {
            template,
            positionals: positionals
                .into_iter()
                .map(|(_, id, required)| (id, required))
                .collect(),
            options,
        })
    }

    /// `line` (the words after the command's name) read into the command,
    /// or `None` if clap must read it.
    fn read(&self, line: &[&str]) -> Option<WriteCommand> {
        let mut command = self.template.clone();
        let mut next = 0;
        let mut given: Vec<&str> = Vec::new();
        let mut tags: Vec<crate::cli::Tag> = Vec::new();
        let mut words = line.iter();
        while let Some(&word) = words.next() {
            if let Some(option) = word.strip_prefix("--") {
                let (name, inline) = match option.split_once('=') {
                    Some((name, value)) => (name, Some(value)),
                    None => (option, None),
                };
                let (_, id, repeated) = self.options.iter().find(|(long, ..)| long == name)?;
                let value = match inline {
                    Some(value) => value,
                    None => words.next()?,
                };
                // clap reads such a value differently, or refuses it.
                if value.is_empty() || value.starts_with('-') {
                    return None;
                }
                if *repeated {
                    command.set_arg(id, value)?.ok()?;
                    tags.append(&mut command.opts_mut().tags);
                    continue;
                }
                if given.contains(&id.as_str()) {
                    return None;
                }
                given.push(id);
                command.set_arg(id, value)?.ok()?;
            } else if word.starts_with('-') || word.is_empty() {
                return None;
            } else {
                let (id, _) = self.positionals.get(next)?;
                next += 1;
                command.set_arg(id, word)?.ok()?;
            }
        }
        // A required word not given: clap says which.
        if self.positionals[next..]
            .iter()
            .any(|(_, required)| *required)
        {
            return None;
        }
        command.opts_mut().tags = tags;
        Some(command)
    }
}

/// Every way to fill `n` required words with `a` or `1`: one of them
/// suits each argument's value parser (names and amounts alike).
fn placeholders(n: usize) -> impl Iterator<Item = Vec<&'static str>> {
    (0..1u32 << n.min(8)).map(move |bits| {
        (0..n)
            .map(|i| if bits >> i & 1 == 0 { "a" } else { "1" })
            .collect()
    })
}

impl Grammar {
    pub(super) fn new() -> Grammar {
        let mut parent = BatchLine::command();
        parent.build();
        let commands = parent
            .get_subcommands()
            .map(|sub| (sub.clone(), Words::of(sub)))
            .collect();
        Grammar { parent, commands }
    }

    /// Parses one line's words (the first naming the subcommand).
    fn parse(&mut self, words: &[&str]) -> Result<WriteCommand, clap::Error> {
        let name = words.first().copied().unwrap_or_default();
        let Some((sub, grammar)) = self.commands.iter_mut().find(|(c, _)| c.get_name() == name)
        else {
            return full(&mut self.parent, words);
        };
        if let Some(command) = grammar.as_ref().and_then(|g| g.read(&words[1..])) {
            return Ok(command);
        }
        // `no_binary_name` is inherited: the subcommand's own words follow.
        let mut m = sub.try_get_matches_from_mut(&words[1..])?;
        from_matches(name, &mut m).or_else(|_| full(&mut self.parent, words))
    }
}

/// clap's own full parse, and its own error.
fn full(parent: &mut clap::Command, words: &[&str]) -> Result<WriteCommand, clap::Error> {
    let mut m = parent.try_get_matches_from_mut(words)?;
    Ok(BatchLine::from_arg_matches_mut(&mut m)?.command)
}

fn from_matches(name: &str, m: &mut clap::ArgMatches) -> Result<WriteCommand, clap::Error> {
    match name {
        "create" => CreateArgs::from_arg_matches_mut(m).map(WriteCommand::Create),
        "deposit" => MoveArgs::from_arg_matches_mut(m).map(WriteCommand::Deposit),
        "withdraw" => MoveArgs::from_arg_matches_mut(m).map(WriteCommand::Withdraw),
        "transfer" => TransferArgs::from_arg_matches_mut(m).map(WriteCommand::Transfer),
        "close" => CloseArgs::from_arg_matches_mut(m).map(WriteCommand::Close),
        "reverse" => ReverseArgs::from_arg_matches_mut(m).map(WriteCommand::Reverse),
        "hold" => HoldArgs::from_arg_matches_mut(m).map(WriteCommand::Hold),
        "capture" => HoldRefArgs::from_arg_matches_mut(m).map(WriteCommand::Capture),
        "release" => ReleaseArgs::from_arg_matches_mut(m).map(WriteCommand::Release),
        _ => Err(clap::Error::new(clap::error::ErrorKind::InvalidSubcommand)),
    }
}

/// clap's message without its `error: ` prefix and usage footer.
fn clap_message(e: &clap::Error) -> String {
    let text = crate::error::clap_one_line(e);
    text.strip_prefix("error: ").unwrap_or(&text).to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use proptest::prelude::*;

    /// clap's full parse of a line, the reference every shortcut must equal.
    fn clap_alone(line: &str) -> Result<WriteCommand, String> {
        let words = shell_words::split(line).map_err(|e| e.to_string())?;
        BatchLine::try_parse_from(&words)
            .map(|b| b.command)
            .map_err(|e| clap_message(&e))
    }

    fn parsed(grammar: &mut Grammar, line: &str) -> Result<WriteCommand, String> {
        match parse_line(grammar, line.as_bytes()) {
            Ok(Some(command)) => Ok(command),
            Ok(None) => Err("blank".into()),
            Err(Error::Usage(message)) => Err(message),
            Err(e) => Err(e.to_string()),
        }
    }

    /// Every write subcommand has its words read by hand, and a line using
    /// every kind of word parses as the full grammar does.
    #[test]
    fn every_subcommand_is_read_by_hand_as_clap_reads_it() {
        let grammar = Grammar::new();
        for (sub, words) in &grammar.commands {
            let name = sub.get_name();
            // `help` is clap's own, and never reaches the grammar (NOT_IN_BATCH).
            if name == "help" {
                continue;
            }
            let line = match name {
                "create" => "create a1 --owner 'A 1' --currency EUR --decimals 3 --id k1 --memo m --expect-seq 1 --date 2026-10-01".to_owned(),
                "transfer" => "transfer a1 b 1.5 --memo 'x y' --tag order=A-1 --tag b=2".to_owned(),
                "close" => "close a1 --id c1 --date 2026-10-01".to_owned(),
                "reverse" => "reverse 1 --tag k=v --memo m".to_owned(),
                "hold" => "hold a1 1.5 --to b --expires 2026-12-01 --id h1".to_owned(),
                "capture" => "capture 1 0.5 --memo m".to_owned(),
                "release" => "release --of-id h1".to_owned(),
                _ => format!("{name} a1 2.25 --id k1 --expect-seq 1"),
            };
            let words = words
                .as_ref()
                .unwrap_or_else(|| panic!("{name}: no template"));
            let split = shell_words::split(&line).unwrap();
            let split: Vec<&str> = split.iter().map(String::as_str).collect();
            assert_eq!(
                words.read(&split[1..]).ok_or(String::new()),
                clap_alone(&line),
                "{line}"
            );
        }
    }

    #[test]
    fn a_word_a_value_parser_rejects_gets_clap_s_message() {
        let mut grammar = Grammar::new();
        let message = parsed(&mut grammar, "deposit d 1.2.3").unwrap_err();
        assert_eq!(Err(message.clone()), clap_alone("deposit d 1.2.3"));
        assert!(message.contains("1.2.3"), "{message}");
    }

    /// Value words, valid for some arguments and not for others.
    fn value() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("a".to_owned()),
            Just("b-2".to_owned()),
            Just("1".to_owned()),
            Just("0.5".to_owned()),
            Just("7.123".to_owned()),
            Just("12".to_owned()),
            Just("x y".to_owned()),
            Just("EUR".to_owned()),
            Just("".to_owned()),
            Just("k=v".to_owned()),
            Just("2026-10-01".to_owned()),
            Just("2026-12-01T10:00:00Z".to_owned()),
        ]
    }

    /// Words that make lines of many shapes, valid and not.
    fn word() -> impl Strategy<Value = String> {
        prop_oneof![
            9 => value(),
            1 => Just("-3".to_owned()),
            1 => Just("--memo".to_owned()),
            1 => Just("--memo=hi".to_owned()),
            1 => Just("--id".to_owned()),
            1 => Just("--expect-seq".to_owned()),
            1 => Just("--owner".to_owned()),
            1 => Just("--currency".to_owned()),
            1 => Just("--decimals".to_owned()),
            1 => Just("--".to_owned()),
            1 => Just("-h".to_owned()),
            1 => Just("--bogus".to_owned()),
            1 => Just("--tag".to_owned()),
            1 => Just("--tag=k=v".to_owned()),
            1 => Just("--date".to_owned()),
            1 => Just("--memo=".to_owned()),
            1 => Just("-".to_owned()),
            1 => Just("--to".to_owned()),
            1 => Just("--expires".to_owned()),
            1 => Just("--of-id".to_owned()),
            1 => Just("--of-seq".to_owned()),
            1 => Just("--of-seq=4".to_owned()),
        ]
    }

    /// A script: a few shapes of line, and many lines of them with other
    /// value words.
    fn script() -> impl Strategy<Value = Vec<String>> {
        let name = prop_oneof![
            Just("create"),
            Just("deposit"),
            Just("withdraw"),
            Just("transfer"),
            Just("close"),
            Just("reverse"),
            Just("hold"),
            Just("capture"),
            Just("release"),
            Just("nope"),
        ];
        let base = (name, proptest::collection::vec(word(), 0..7));
        let fill = (
            any::<prop::sample::Index>(),
            proptest::collection::vec(value(), 7),
        );
        (
            proptest::collection::vec(base, 1..4),
            proptest::collection::vec(fill, 1..40),
        )
            .prop_map(|(bases, fills)| {
                fills
                    .into_iter()
                    .map(|(pick, values)| {
                        let (name, words) = pick.get(&bases);
                        let mut values = values.into_iter();
                        let mut line = (*name).to_owned();
                        for w in words {
                            let w = if w.starts_with('-') {
                                w.clone()
                            } else {
                                values.next().unwrap_or_default()
                            };
                            line.push(' ');
                            line.push_str(&shell_words::quote(&w));
                        }
                        line
                    })
                    .collect()
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// The hand-read grammar parses every line exactly as clap alone
        /// does: the same command or the same error.
        #[test]
        fn lines_read_by_hand_mean_what_clap_says(lines in script()) {
            let mut grammar = Grammar::new();
            for line in &lines {
                prop_assert_eq!(parsed(&mut grammar, line), clap_alone(line), "{}", line);
            }
        }

        /// Splitting at blanks is taken only where it equals shell splitting.
        #[test]
        fn plain_splitting_equals_shell_splitting(text in "[a-c #'\"\\\\\t\n\r\x0c-]{0,12}") {
            if !needs_shell(&text) {
                let plain: Vec<String> = text
                    .split_ascii_whitespace()
                    .map(str::to_owned)
                    .collect();
                prop_assert_eq!(Ok(plain), shell_words::split(&text).map_err(|_| ()));
            }
        }
    }
}
