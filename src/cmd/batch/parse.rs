//! Batch lines into write commands: shell words, then clap's grammar of the
//! command line.
//!
//! clap costs microseconds a line, which at a million lines was most of a
//! batch's time. But where each word of a line goes depends only on the
//! line's *shape*: its subcommand and its words that start with `-`, in
//! order; every other word is a value. Scripts repeat a few shapes
//! (`transfer A B N` a million times with other words), so clap parses the
//! first two lines of each shape. From the first it tells which argument
//! each value word feeds (its own indices); its parse of the second must
//! equal that template filled in with the second line's words, or the shape
//! stays with clap for good. Later lines of a trusted shape have their words
//! put through the very value parsers clap uses. clap stays the only
//! grammar: it decides every shape, and a line a value parser rejects goes
//! back to clap, for clap's own message.

use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches};
use rustc_hash::FxHashMap;

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

/// Distinct shapes remembered per parsing thread; a script with more (say,
/// a negative amount on every line, each its own shape) has the rest parsed
/// by clap alone.
const MAX_SHAPES: usize = 256;

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
        text.split(SHELL_BLANKS).filter(|w| !w.is_empty()).collect()
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

/// The characters `shell_words::split` separates words with.
const SHELL_BLANKS: [char; 3] = [' ', '\t', '\n'];

/// Whether splitting `text` at blanks could differ from shell splitting:
/// only quotes, escapes and comments make it differ.
fn needs_shell(text: &str) -> bool {
    text.bytes()
        .any(|b| matches!(b, b'\'' | b'"' | b'\\' | b'#'))
}

/// The command-line grammar of the write commands, prepared once per
/// parsing thread, with the shapes it has learned.
pub(super) struct Grammar {
    parent: clap::Command,
    /// Each write subcommand, and whether its lines' shapes may be learned
    /// (see [`shapes_suffice`]).
    subcommands: Vec<(clap::Command, bool)>,
    shapes: FxHashMap<String, Shape>,
    key: String,
}

/// What is known of one shape of line.
enum Shape {
    /// clap parsed one line of it into this template.
    Learned(Template),
    /// clap parsed a second line exactly as the template fills it in.
    Trusted(Template),
    /// Every line of this shape goes to clap.
    Clap,
}

/// A parsed line with the places its value words went.
struct Template {
    command: WriteCommand,
    /// Each value word's index among the words after the subcommand's name,
    /// and the id of the argument clap gave it to.
    slots: Vec<(usize, String)>,
}

impl Template {
    /// Where clap's parse `m` of `line` (the words after the subcommand's
    /// name) put its value words: each one's index in `line` with the id
    /// of its argument; `None` unless every value word went to an argument
    /// of its own, whole.
    fn learn(
        sub: &clap::Command,
        m: &clap::ArgMatches,
        line: &[&str],
    ) -> Option<Vec<(usize, String)>> {
        let mut slots = Vec::new();
        for arg in sub.get_arguments() {
            let id = arg.get_id().as_str();
            if m.value_source(id) != Some(ValueSource::CommandLine) {
                continue;
            }
            let mut indices = m.indices_of(id)?;
            let (Some(index), None) = (indices.next(), indices.next()) else {
                return None;
            };
            // clap's indices count a program name before the words, even
            // where none is given.
            slots.push((index.checked_sub(1)?, id.to_owned()));
        }
        slots.sort_unstable();
        let values = line
            .iter()
            .enumerate()
            .filter(|(_, w)| !w.starts_with('-'))
            .map(|(i, _)| i);
        values.eq(slots.iter().map(|(i, _)| *i)).then_some(slots)
    }

    /// The template with `line`'s value words put in; `None` if a word is
    /// not valid for its argument.
    fn fill(&self, line: &[&str]) -> Option<WriteCommand> {
        let mut command = self.command.clone();
        for (index, id) in &self.slots {
            command.set_arg(id, line.get(*index)?)?.ok()?;
        }
        Some(command)
    }
}

impl Grammar {
    pub(super) fn new() -> Grammar {
        let mut parent = BatchLine::command();
        parent.build();
        let subcommands = parent
            .get_subcommands()
            .map(|sub| (sub.clone(), shapes_suffice(sub)))
            .collect();
        Grammar {
            parent,
            subcommands,
            shapes: FxHashMap::default(),
            key: String::new(),
        }
    }

    /// Parses one line's words (the first naming the subcommand).
    fn parse(&mut self, words: &[&str]) -> Result<WriteCommand, clap::Error> {
        let name = words.first().copied().unwrap_or_default();
        let Some((sub, learn)) = self
            .subcommands
            .iter_mut()
            .find(|(c, _)| c.get_name() == name)
        else {
            return full(&mut self.parent, words);
        };
        let line = &words[1..];
        if !*learn {
            return parse_with(sub, &mut self.parent, words);
        }
        shape_key(&mut self.key, name, line);
        match self.shapes.get(&self.key) {
            Some(Shape::Trusted(template)) => {
                if let Some(command) = template.fill(line) {
                    return Ok(command);
                }
            }
            Some(Shape::Clap) => return parse_with(sub, &mut self.parent, words),
            Some(Shape::Learned(_)) | None => {}
        }
        // `no_binary_name` is inherited: the subcommand's own words follow.
        let mut m = sub.try_get_matches_from_mut(line)?;
        let slots = Template::learn(sub, &m, line);
        let Ok(command) = from_matches(name, &mut m) else {
            return full(&mut self.parent, words);
        };
        let known = self.shapes.len() < MAX_SHAPES || self.shapes.contains_key(&self.key);
        if known {
            let shape = match (self.shapes.remove(&self.key), slots) {
                (None, Some(slots)) => {
                    let template = Template {
                        command: command.clone(),
                        slots,
                    };
                    if template.fill(line).as_ref() == Some(&command) {
                        Shape::Learned(template)
                    } else {
                        Shape::Clap
                    }
                }
                (Some(Shape::Learned(template)), Some(_))
                    if template.fill(line).as_ref() == Some(&command) =>
                {
                    Shape::Trusted(template)
                }
                _ => Shape::Clap,
            };
            self.shapes.insert(self.key.clone(), shape);
        }
        Ok(command)
    }
}

/// Whether, in `sub`, where each word of a line goes, and whether the line
/// is accepted, depend on nothing but its shape and each value word on its
/// own. Some clap attributes make them depend on more (conditional
/// defaults and requirements, conflicts, delimiters, terminators, several
/// values to an argument); the write commands use none, and a subcommand
/// that ever does has all its lines parsed by clap. Conditional rules have
/// no getters, so their absence is read from clap's `Debug` of the
/// argument: should that text change, clap again just parses every line.
fn shapes_suffice(sub: &clap::Command) -> bool {
    const NONE_OF: [&str; 7] = [
        "requires: []",
        "r_ifs: []",
        "r_unless: []",
        "conflicts: []",
        "overrides: []",
        "default_vals_ifs: []",
        "terminator: None",
    ];
    sub.get_subcommands().next().is_none()
        && !sub.is_allow_external_subcommands_set()
        && sub.get_arguments().all(|arg| {
            let debug = format!("{arg:?}");
            arg.get_num_args().is_none_or(|n| n.max_values() <= 1)
                && arg.get_value_delimiter().is_none()
                && !arg.is_require_equals_set()
                && !arg.is_last_set()
                && !arg.is_trailing_var_arg_set()
                && NONE_OF.iter().all(|field| debug.contains(field))
        })
}

/// clap's parse of `words` against the subcommand `sub` they name, as for a
/// line whose shape is being learned: its error is the subcommand's.
fn parse_with(
    sub: &mut clap::Command,
    parent: &mut clap::Command,
    words: &[&str],
) -> Result<WriteCommand, clap::Error> {
    let mut m = sub.try_get_matches_from_mut(&words[1..])?;
    from_matches(sub.get_name(), &mut m).or_else(|_| full(parent, words))
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

/// The shape of a line into `key`: the subcommand's name, then each word
/// that starts with `-` (length-prefixed, so no two shapes share a key)
/// or `.` for a value word.
fn shape_key(key: &mut String, name: &str, line: &[&str]) {
    use std::fmt::Write;
    key.clear();
    key.push_str(name);
    for word in line {
        if word.starts_with('-') {
            let _ = write!(key, " {}:{word}", word.len());
        } else {
            key.push_str(" .");
        }
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

    /// Every write subcommand parses as the full grammar does, on the
    /// first line of its shape (clap), the second (clap, checked against
    /// the template) and the third (the template alone).
    #[test]
    fn every_subcommand_learns_its_shape_and_parses_as_clap_does() {
        let mut grammar = Grammar::new();
        for sub in BatchLine::command().get_subcommands() {
            let name = sub.get_name();
            for n in 1..=3 {
                let line = match name {
                    "create" => format!(
                        "create a{n} --owner 'A {n}' --currency EUR --decimals {n} --id k{n} --memo m --expect-seq {n}"
                    ),
                    "transfer" => {
                        format!("transfer a{n} b 1.{n} --memo 'x y{n}' --tag order=A-{n}")
                    }
                    "close" => format!("close a{n} --id c{n} --date 2026-10-0{n}"),
                    "reverse" => format!("reverse {n} --tag k=v{n} --memo m"),
                    "hold" => format!("hold a{n} 1.{n} --to b --expires 2026-12-0{n} --id h{n}"),
                    "capture" => format!("capture {n} 0.{n} --memo m"),
                    "release" => format!("release --of-id h{n}"),
                    _ => format!("{name} a{n} 2.2{n} --id k{n} --expect-seq {n}"),
                };
                assert_eq!(parsed(&mut grammar, &line), clap_alone(&line), "{line}");
            }
            assert!(
                grammar
                    .shapes
                    .iter()
                    .any(|(key, shape)| key.starts_with(name) && matches!(shape, Shape::Trusted(_))),
                "{name} never learned its shape"
            );
        }
    }

    /// The write commands keep to what makes templates sound; a change to
    /// their definitions that leaves it fails here (and, until fixed, only
    /// makes batches slower).
    #[test]
    fn every_write_subcommand_is_decided_by_its_shape() {
        let grammar = Grammar::new();
        // `help` is clap's own, and never reaches the grammar (NOT_IN_BATCH).
        for (sub, learn) in grammar
            .subcommands
            .iter()
            .filter(|(s, _)| s.get_name() != "help")
        {
            assert!(learn, "{}: see shapes_suffice", sub.get_name());
        }
        let mut conditional = BatchLine::command();
        conditional.build();
        let deposit = conditional
            .find_subcommand("deposit")
            .expect("deposit")
            .clone()
            .mut_arg("memo", |a| a.required_if_eq("account", "x"));
        assert!(!shapes_suffice(&deposit));
    }

    #[test]
    fn a_word_a_value_parser_rejects_gets_clap_s_message() {
        let mut grammar = Grammar::new();
        for line in ["deposit a 1", "deposit b 2", "deposit c 3"] {
            assert!(parsed(&mut grammar, line).is_ok());
        }
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
        ]
    }

    /// A script: a few lines, then many lines of the same shapes with other
    /// value words, so that shapes are learned, trusted and reused.
    fn script() -> impl Strategy<Value = Vec<String>> {
        let name = prop_oneof![
            Just("create"),
            Just("deposit"),
            Just("withdraw"),
            Just("transfer"),
            Just("close"),
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

        /// A grammar that has seen any lines before parses every line
        /// exactly as clap alone does: the same command or the same error.
        #[test]
        fn learned_shapes_never_change_what_a_line_means(lines in script()) {
            let mut grammar = Grammar::new();
            for line in &lines {
                prop_assert_eq!(parsed(&mut grammar, line), clap_alone(line), "{}", line);
            }
        }

        /// Splitting at blanks is taken only where it equals shell splitting.
        #[test]
        fn plain_splitting_equals_shell_splitting(text in "[a-c #'\"\\\\\t\n-]{0,12}") {
            if !needs_shell(&text) {
                let plain: Vec<String> = text
                    .split(SHELL_BLANKS)
                    .filter(|w| !w.is_empty())
                    .map(str::to_owned)
                    .collect();
                prop_assert_eq!(Ok(plain), shell_words::split(&text).map_err(|_| ()));
            }
        }
    }
}
