//! JSON Lines commands: one object per line, keys named as in SPEC 13.

use std::borrow::Cow;
use std::fmt;
use std::io::BufRead;

use serde::Deserializer;
use serde::de::{self, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::{add_tag, set, template};
use crate::cli::WriteCommand;
use crate::cmd::batch::parse_lines;
use crate::error::Error;

/// What a key's value must be.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A JSON string (amounts too: a number may have been rounded already).
    Text,
    /// A JSON integer.
    Integer,
}

/// One key of a command: its JSON name and the clap argument it sets.
struct Key {
    json: &'static str,
    arg: &'static str,
    kind: Kind,
}

const fn text(json: &'static str, arg: &'static str) -> Key {
    Key {
        json,
        arg,
        kind: Kind::Text,
    }
}

const fn integer(json: &'static str, arg: &'static str) -> Key {
    Key {
        json,
        arg,
        kind: Kind::Integer,
    }
}

const ACCOUNT: Key = text("account", "account");
const AMOUNT: Key = text("amount", "amount");

/// One write command: its required keys (with a placeholder each, for the
/// template clap parses once), its optional keys, and for commands that
/// take one of two targets, those two keys. Adding a command is one entry.
struct Shape {
    name: &'static str,
    required: &'static [(Key, &'static str)],
    optional: &'static [Key],
    one_of: Option<(&'static str, &'static str)>,
}

const SHAPES: &[Shape] = &[
    Shape {
        name: "create",
        required: &[(ACCOUNT, "a")],
        optional: &[
            text("owner", "owner"),
            text("currency", "currency"),
            integer("decimals", "decimals"),
        ],
        one_of: None,
    },
    Shape {
        name: "deposit",
        required: &[(ACCOUNT, "a"), (AMOUNT, "1")],
        optional: &[],
        one_of: None,
    },
    Shape {
        name: "withdraw",
        required: &[(ACCOUNT, "a"), (AMOUNT, "1")],
        optional: &[],
        one_of: None,
    },
    Shape {
        name: "transfer",
        required: &[
            (text("from", "from"), "a"),
            (text("to", "to"), "b"),
            (AMOUNT, "1"),
        ],
        optional: &[],
        one_of: None,
    },
    Shape {
        name: "close",
        required: &[(ACCOUNT, "a")],
        optional: &[],
        one_of: None,
    },
    Shape {
        name: "reverse",
        required: &[],
        optional: &[integer("of", "seq"), text("of_id", "of_id")],
        one_of: Some(("of", "of_id")),
    },
    Shape {
        name: "hold",
        required: &[(ACCOUNT, "a"), (AMOUNT, "1")],
        optional: &[text("to", "to"), text("expires", "expires")],
        one_of: None,
    },
    Shape {
        name: "capture",
        required: &[],
        // The command line's HOLD and AMOUNT words (see `HoldRefArgs`).
        optional: &[
            integer("hold", "first"),
            text("of_id", "of_id"),
            text("amount", "second"),
        ],
        one_of: Some(("hold", "of_id")),
    },
    Shape {
        name: "release",
        required: &[],
        optional: &[integer("hold", "first"), text("of_id", "of_id")],
        one_of: Some(("hold", "of_id")),
    },
];

/// The options every write command takes (`tags` apart: an object).
const OPTIONS: &[Key] = &[
    text("date", "date"),
    text("memo", "memo"),
    text("id", "id"),
    integer("expect_seq", "expect_seq"),
];

/// Reads `input` line by line and applies what `made` makes of each
/// record's command, in order; the lines are parsed, and `made` called,
/// on worker threads, as `batch` parses its own.
pub(super) fn import<T: Send>(
    input: Box<dyn BufRead + Send>,
    name: &str,
    made: impl Fn(WriteCommand) -> T + Sync,
    apply: &mut impl FnMut(usize, Result<T, Error>) -> Result<(), Error>,
) -> Result<(), Error> {
    let made = &made;
    let parser = || {
        let mut templates: Vec<Option<WriteCommand>> = SHAPES.iter().map(|_| None).collect();
        move |text: &[u8]| {
            let blank = text.iter().all(u8::is_ascii_whitespace);
            (!blank).then(|| command(text, &mut templates).map(made))
        }
    };
    parse_lines(input, name, parser, apply)
}

/// The write command of one line.
fn command(text: &[u8], templates: &mut [Option<WriteCommand>]) -> Result<WriteCommand, Error> {
    let mut de = serde_json::Deserializer::from_slice(text);
    let record = de
        .deserialize_map(RecordVisitor)
        .and_then(|r| de.end().map(|()| r))
        .map_err(|e| Error::Usage(format!("not a JSON object of a command: {e}")))?;
    let mut name = None;
    for (key, value) in &record {
        if key == "command" {
            match value {
                Value::Text(n) => name = Some(n.as_ref()),
                other => return Err(wrong_type("command", Kind::Text, other)),
            }
        }
    }
    let name = name.ok_or_else(|| Error::Usage("missing key \"command\"".into()))?;
    let index = SHAPES.iter().position(|s| s.name == name).ok_or_else(|| {
        let names: Vec<&str> = SHAPES.iter().map(|s| s.name).collect();
        Error::Usage(format!(
            "key \"command\": unknown command '{name}' (one of: {})",
            names.join(", ")
        ))
    })?;
    let shape = &SHAPES[index];
    let mut command = match &templates[index] {
        Some(t) => t.clone(),
        None => {
            let mut seed = vec![shape.name];
            seed.extend(shape.required.iter().map(|(_, placeholder)| *placeholder));
            let t = template(&seed)?;
            templates[index] = Some(t.clone());
            t
        }
    };
    fill(&mut command, shape, &record)?;
    Ok(command)
}

/// Sets each key of `record` on `command`, checking names, types, repeats
/// and that every required key is there.
fn fill(command: &mut WriteCommand, shape: &Shape, record: &Record<'_>) -> Result<(), Error> {
    for (i, (key, value)) in record.iter().enumerate() {
        if record[..i].iter().any(|(k, _)| k == key) {
            return Err(Error::Usage(format!("key \"{key}\" is given twice")));
        }
        if key == "command" {
            continue;
        }
        if key == "tags" {
            let Value::Object(tags) = value else {
                return Err(Error::Usage(format!(
                    "key \"tags\" must be a JSON object of strings, not {}",
                    value.describe()
                )));
            };
            for (k, v) in tags {
                let Value::Text(v) = v else {
                    return Err(wrong_type(&format!("tags.{k}"), Kind::Text, v));
                };
                add_tag(command, k, v, format_args!("key \"tags.{k}\""))?;
            }
            continue;
        }
        let spec = shape
            .required
            .iter()
            .map(|(k, _)| k)
            .chain(shape.optional)
            .chain(OPTIONS)
            .find(|k| k.json == key)
            .ok_or_else(|| unknown_key(shape, key))?;
        let word = match (spec.kind, value) {
            (Kind::Text, Value::Text(t)) => Cow::Borrowed(t.as_ref()),
            (Kind::Integer, Value::Integer(n)) => Cow::Owned(n.to_string()),
            (kind, other) => return Err(wrong_type(key, kind, other)),
        };
        set(command, spec.arg, &word, format_args!("key \"{key}\""))?;
    }
    let has = |key: &str| record.iter().any(|(k, _)| k == key);
    if let Some((k, _)) = shape.required.iter().find(|(k, _)| !has(k.json)) {
        return Err(Error::Usage(format!(
            "missing key \"{}\" for {}",
            k.json, shape.name
        )));
    }
    match shape.one_of {
        Some((a, b)) if has(a) == has(b) => Err(Error::Usage(format!(
            "{} takes exactly one of the keys \"{a}\" and \"{b}\"",
            shape.name
        ))),
        _ => Ok(()),
    }
}

fn unknown_key(shape: &Shape, key: &str) -> Error {
    let mut known: Vec<&str> = vec!["command"];
    known.extend(shape.required.iter().map(|(k, _)| k.json));
    known.extend(shape.optional.iter().map(|k| k.json));
    known.extend(OPTIONS.iter().map(|k| k.json));
    known.push("tags");
    Error::Usage(format!(
        "unknown key \"{key}\" for {} (known: {})",
        shape.name,
        known.join(", ")
    ))
}

fn wrong_type(key: &str, kind: Kind, value: &Value<'_>) -> Error {
    let want = match (kind, key) {
        (Kind::Text, "amount") => {
            "a JSON string (amounts are strings: a JSON number may have been rounded already)"
        }
        (Kind::Text, _) => "a JSON string",
        (Kind::Integer, _) => "a JSON integer (0 or more)",
    };
    Error::Usage(format!(
        "key \"{key}\" must be {want}, not {}",
        value.describe()
    ))
}

/// A record's keys and values, in order.
type Record<'a> = Vec<(Cow<'a, str>, Value<'a>)>;

/// A JSON value, as far as a record needs to tell it apart.
enum Value<'a> {
    Text(Cow<'a, str>),
    Integer(u64),
    Object(Record<'a>),
    /// Anything else, kept only to say what it was.
    Other(&'static str),
}

impl Value<'_> {
    fn describe(&self) -> &'static str {
        match self {
            Value::Text(_) => "a string",
            Value::Integer(_) => "an integer",
            Value::Object(_) => "an object",
            Value::Other(what) => what,
        }
    }
}

struct RecordVisitor;

impl<'de> Visitor<'de> for RecordVisitor {
    type Value = Record<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Record<'de>, A::Error> {
        let mut record = Vec::new();
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            record.push((key, map.next_value::<Value<'de>>()?));
        }
        Ok(record)
    }
}

impl<'de> de::Deserialize<'de> for Value<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Value<'de>, E> {
        Ok(Value::Text(Cow::Borrowed(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value<'de>, E> {
        Ok(Value::Text(Cow::Owned(v.to_owned())))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value<'de>, E> {
        Ok(Value::Integer(v))
    }
    fn visit_i64<E>(self, _: i64) -> Result<Value<'de>, E> {
        Ok(Value::Other("a negative number"))
    }
    fn visit_f64<E>(self, _: f64) -> Result<Value<'de>, E> {
        Ok(Value::Other("a number with a fraction or exponent"))
    }
    fn visit_bool<E>(self, _: bool) -> Result<Value<'de>, E> {
        Ok(Value::Other("true or false"))
    }
    fn visit_unit<E>(self) -> Result<Value<'de>, E> {
        Ok(Value::Other("null"))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value<'de>, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Value::Other("an array"))
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Value<'de>, A::Error> {
        RecordVisitor.visit_map(map).map(Value::Object)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(line: &str) -> Result<WriteCommand, String> {
        let mut templates: Vec<Option<WriteCommand>> = SHAPES.iter().map(|_| None).collect();
        command(line.as_bytes(), &mut templates).map_err(|e| e.to_string())
    }

    /// The reference: the command line's own parse.
    fn clap(words: &[&str]) -> WriteCommand {
        use clap::Parser;
        crate::cli::BatchLine::try_parse_from(words)
            .unwrap()
            .command
    }

    #[test]
    fn a_record_is_the_command_the_command_line_makes() {
        let line = r#"{"command":"transfer","from":"a","to":"b","amount":"10.25","date":"2026-10-03","id":"pay-17","memo":"lunch","tags":{"order":"A-17","by":"x"},"expect_seq":4}"#;
        let words = [
            "transfer",
            "a",
            "b",
            "10.25",
            "--date",
            "2026-10-03",
            "--id",
            "pay-17",
            "--memo",
            "lunch",
            "--tag",
            "order=A-17",
            "--tag",
            "by=x",
            "--expect-seq",
            "4",
        ];
        assert_eq!(parsed(line).unwrap(), clap(&words));
        let create =
            r#"{"command":"create","account":"e","currency":"EUR","decimals":3,"owner":"o"}"#;
        assert_eq!(
            parsed(create).unwrap(),
            clap(&[
                "create",
                "e",
                "--currency",
                "EUR",
                "--decimals",
                "3",
                "--owner",
                "o"
            ])
        );
        let reverse = r#"{"command":"reverse","of_id":"pay-17"}"#;
        assert_eq!(
            parsed(reverse).unwrap(),
            clap(&["reverse", "--of-id", "pay-17"])
        );
        assert_eq!(
            parsed(r#"{"of":3,"command":"reverse"}"#).unwrap(),
            clap(&["reverse", "3"])
        );
    }

    #[test]
    fn refusals_name_the_key() {
        for (line, says) in [
            (
                r#"{"command":"deposit","account":"a","amount":5}"#,
                "key \"amount\" must be a JSON string",
            ),
            (
                r#"{"command":"deposit","account":"a"}"#,
                "missing key \"amount\"",
            ),
            (
                r#"{"command":"deposit","account":"a","amount":"5","amout":"1"}"#,
                "unknown key \"amout\"",
            ),
            (
                r#"{"command":"deposit","account":"a b","amount":"5"}"#,
                "key \"account\": ",
            ),
            (
                r#"{"command":"deposit","account":"a","amount":"-5"}"#,
                "key \"amount\": ",
            ),
            (
                r#"{"command":"create","account":"a","decimals":"2"}"#,
                "key \"decimals\" must be a JSON integer",
            ),
            (
                r#"{"command":"create","account":"a","decimals":19}"#,
                "key \"decimals\": ",
            ),
            (
                r#"{"command":"close","account":"a","tags":{"K":"v"}}"#,
                "key \"tags.K\": ",
            ),
            (
                r#"{"command":"close","account":"a","tags":{"a=b":"v"}}"#,
                "key \"tags.a=b\": ",
            ),
            (
                r#"{"command":"close","account":"a","tags":["x"]}"#,
                "key \"tags\" must be a JSON object",
            ),
            (
                r#"{"command":"close","account":"a","account":"b"}"#,
                "key \"account\" is given twice",
            ),
            (
                r#"{"command":"reverse"}"#,
                "exactly one of the keys \"of\" and \"of_id\"",
            ),
            (
                r#"{"command":"reverse","of":-1}"#,
                "key \"of\" must be a JSON integer",
            ),
            (
                r#"{"command":"balance"}"#,
                "key \"command\": unknown command 'balance'",
            ),
            (r#"{"account":"a"}"#, "missing key \"command\""),
            (r#"["deposit"]"#, "not a JSON object"),
            (
                r#"{"command":"close","account":"a"} x"#,
                "not a JSON object",
            ),
        ] {
            let e = parsed(line).unwrap_err();
            assert!(e.contains(says), "{line}: {e}");
        }
    }
}
