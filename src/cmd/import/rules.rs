//! The rules that map a bank's CSV onto write commands (SPEC 13): read
//! from TOML, checked against the CSV's header, and compiled into
//! templates and patterns before the first row.

use std::collections::BTreeMap;
use std::path::Path;

use regex::Regex;
use serde::Deserialize;

use crate::error::Error;

/// A rules file as written. Every key is listed (no `flatten`) so that a
/// mistyped one is refused by name.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesFile {
    delimiter: Option<String>,
    skip: Option<usize>,
    account: Option<String>,
    amount: Option<String>,
    credit: Option<String>,
    debit: Option<String>,
    counterparty: Option<String>,
    date: Option<String>,
    date_format: Option<String>,
    decimal_mark: Option<String>,
    memo: Option<String>,
    id: Option<String>,
    tags: Option<BTreeMap<String, String>>,
    #[serde(default)]
    rule: Vec<RuleFile>,
}

/// One `[[rule]]` as written: a condition, then `skip` or overrides.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    when: BTreeMap<String, String>,
    #[serde(default)]
    skip: bool,
    account: Option<String>,
    amount: Option<String>,
    credit: Option<String>,
    debit: Option<String>,
    counterparty: Option<String>,
    date: Option<String>,
    date_format: Option<String>,
    decimal_mark: Option<String>,
    memo: Option<String>,
    id: Option<String>,
    tags: Option<BTreeMap<String, String>>,
}

/// The mapping keys, as written, that a rule may override.
#[derive(Debug, Clone, Default)]
struct Keys {
    account: Option<String>,
    amount: Option<String>,
    credit: Option<String>,
    debit: Option<String>,
    counterparty: Option<String>,
    date: Option<String>,
    date_format: Option<String>,
    decimal_mark: Option<String>,
    memo: Option<String>,
    id: Option<String>,
    tags: Option<BTreeMap<String, String>>,
}

impl Keys {
    /// These keys with `rule`'s overrides; a rule that gives `amount`
    /// replaces `credit`/`debit`, and the other way round.
    fn overridden(&self, rule: &RuleFile) -> Keys {
        let mut keys = self.clone();
        let pick = |base: &mut Option<String>, over: &Option<String>| {
            if over.is_some() {
                base.clone_from(over);
            }
        };
        if rule.amount.is_some() {
            keys.credit = None;
            keys.debit = None;
        }
        if rule.credit.is_some() || rule.debit.is_some() {
            keys.amount = None;
            keys.credit.clone_from(&rule.credit);
            keys.debit.clone_from(&rule.debit);
        }
        pick(&mut keys.account, &rule.account);
        pick(&mut keys.amount, &rule.amount);
        pick(&mut keys.counterparty, &rule.counterparty);
        pick(&mut keys.date, &rule.date);
        pick(&mut keys.date_format, &rule.date_format);
        pick(&mut keys.decimal_mark, &rule.decimal_mark);
        pick(&mut keys.memo, &rule.memo);
        pick(&mut keys.id, &rule.id);
        if rule.tags.is_some() {
            keys.tags.clone_from(&rule.tags);
        }
        keys
    }
}

/// Rules read and checked as far as they can be without the CSV.
#[derive(Debug)]
pub struct Rules {
    /// The file's name, for messages.
    pub name: String,
    /// The field separator.
    pub delimiter: u8,
    /// Lines before the header row.
    pub skip: usize,
    keys: Keys,
    rules: Vec<RuleFile>,
}

/// Rules compiled against a header: what the importer uses per row.
pub struct Compiled {
    /// The mapping of rows no rule matches.
    pub base: Mapping,
    /// Each rule: its condition, and `None` to skip or its mapping.
    pub rules: Vec<(Condition, Option<Mapping>)>,
}

/// A rule's `when`: each column's index with the pattern it must match.
pub type Condition = Vec<(usize, Regex)>;

/// How a row becomes a command.
pub struct Mapping {
    /// The account the money goes into or out of.
    pub account: Template,
    /// The amount.
    pub amount: Amounts,
    /// A non-empty result makes the row a transfer with this account.
    pub counterparty: Option<Template>,
    /// The book date, read with `date_format`.
    pub date: Option<(Template, String)>,
    /// The decimal mark, `.` or `,`.
    pub decimal_mark: char,
    /// The memo.
    pub memo: Option<Template>,
    /// The id; `None`: derived from the row.
    pub id: Option<Template>,
    /// Tags and their value templates.
    pub tags: Vec<(String, Template)>,
}

/// Where the amount is.
pub enum Amounts {
    /// One signed column: money in is positive.
    Signed(Template),
    /// Unsigned money in and money out.
    Split {
        /// Money in.
        credit: Option<Template>,
        /// Money out.
        debit: Option<Template>,
    },
}

/// A value with `{Column}` places: literal text and column indices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template(Vec<Part>);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Column(usize),
}

impl Template {
    /// Parses `text` (`{{` and `}}` are literal braces) against `header`;
    /// `key` names it in errors.
    fn parse(text: &str, header: Option<&[&str]>, key: &str) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '{' if chars.peek() == Some(&'{') => {
                    chars.next();
                    literal.push('{');
                }
                '}' if chars.peek() == Some(&'}') => {
                    chars.next();
                    literal.push('}');
                }
                '{' => {
                    let name: String = chars.by_ref().take_while(|&c| c != '}').collect();
                    // Without a header (rules checked before the CSV is
                    // read) any name will do.
                    let column = match header {
                        None => 0,
                        Some(h) => h.iter().position(|c| *c == name).ok_or_else(|| {
                            format!(
                                "key `{key}`: the header has no column '{name}' ({})",
                                columns_of(h)
                            )
                        })?,
                    };
                    if !literal.is_empty() {
                        parts.push(Part::Text(std::mem::take(&mut literal)));
                    }
                    parts.push(Part::Column(column));
                }
                '}' => {
                    return Err(format!(
                        "key `{key}`: a lone '}}' (write '}}}}' for a brace)"
                    ));
                }
                c => literal.push(c),
            }
        }
        if !literal.is_empty() {
            parts.push(Part::Text(literal));
        }
        Ok(Template(parts))
    }

    /// The template filled in from `row` into `out` (cleared first); a
    /// column the row lacks is empty.
    pub fn render(&self, row: &csv::StringRecord, out: &mut String) {
        out.clear();
        for part in &self.0 {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Column(i) => out.push_str(row.get(*i).unwrap_or_default()),
            }
        }
    }
}

impl Rules {
    /// Reads and parses a rules file (usage errors name the key or line).
    pub fn load(path: &Path) -> Result<Rules, Error> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::Usage(format!("cannot read rules file {name}: {e}")))?;
        Rules::parse(&text, name)
    }

    /// Parses the text of a rules file called `name`.
    pub fn parse(text: &str, name: String) -> Result<Rules, Error> {
        let file: RulesFile = toml::from_str(text).map_err(|e| {
            let line = e
                .span()
                .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
            let at = line.map(|l| format!(", line {l}")).unwrap_or_default();
            Error::Usage(format!("rules file {name}{at}: {}", e.message().trim()))
        })?;
        let bad =
            |key: &str, why: &str| Error::Usage(format!("rules file {name}: key `{key}`: {why}"));
        let delimiter = match file.delimiter.as_deref() {
            None => b',',
            Some(d) if d.len() == 1 => d.as_bytes()[0],
            Some(_) => return Err(bad("delimiter", "must be one ASCII character")),
        };
        let keys = Keys {
            account: file.account,
            amount: file.amount,
            credit: file.credit,
            debit: file.debit,
            counterparty: file.counterparty,
            date: file.date,
            date_format: file.date_format,
            decimal_mark: file.decimal_mark,
            memo: file.memo,
            id: file.id,
            tags: file.tags,
        };
        let rules = Rules {
            delimiter,
            skip: file.skip.unwrap_or(0),
            keys,
            rules: file.rule,
            name,
        };
        // Everything that does not need the header is checked now, before
        // the journal is locked.
        rules.compile(None)?;
        Ok(rules)
    }

    /// Compiles the rules against the CSV's `header` (`None`: checks what
    /// can be checked without one, accepting any column name).
    pub fn compile(&self, header: Option<&[&str]>) -> Result<Compiled, Error> {
        let bad = |why: String| Error::Usage(format!("rules file {}: {why}", self.name));
        let base = mapping(&self.keys, header, "").map_err(bad)?;
        let mut rules = Vec::new();
        for (i, rule) in self.rules.iter().enumerate() {
            let at = format!("rule[{}].", i + 1);
            let mut when = Vec::new();
            for (column, pattern) in &rule.when {
                let index = match header {
                    Some(h) => h.iter().position(|c| c == column).ok_or_else(|| {
                        bad(format!(
                            "key `{at}when.{column}`: the header has no column '{column}' ({})",
                            columns_of(h)
                        ))
                    })?,
                    None => 0,
                };
                let regex = Regex::new(pattern).map_err(|e| {
                    bad(format!(
                        "key `{at}when.{column}`: '{pattern}' is not a regex: {}",
                        regex_error(&e)
                    ))
                })?;
                when.push((index, regex));
            }
            if rule.when.is_empty() {
                return Err(bad(format!(
                    "key `{at}when`: give at least one column = pattern"
                )));
            }
            let then = if rule.skip {
                None
            } else {
                Some(mapping(&self.keys.overridden(rule), header, &at).map_err(bad)?)
            };
            rules.push((when, then));
        }
        Ok(Compiled { base, rules })
    }
}

/// Compiles `keys` (`at` prefixes key names in errors).
fn mapping(keys: &Keys, header: Option<&[&str]>, at: &str) -> Result<Mapping, String> {
    let template = |text: &str, key: &str| -> Result<Template, String> {
        Template::parse(text, header, &format!("{at}{key}"))
    };
    let optional =
        |text: &Option<String>, key: &str| text.as_deref().map(|t| template(t, key)).transpose();
    let account = template(
        keys.account
            .as_deref()
            .ok_or_else(|| format!("key `{at}account` is required"))?,
        "account",
    )?;
    let amount = match (&keys.amount, &keys.credit, &keys.debit) {
        (Some(a), None, None) => Amounts::Signed(template(a, "amount")?),
        (None, credit, debit) if credit.is_some() || debit.is_some() => Amounts::Split {
            credit: optional(credit, "credit")?,
            debit: optional(debit, "debit")?,
        },
        (None, _, _) => {
            return Err(format!(
                "key `{at}amount` (or `credit` and `debit`) is required"
            ));
        }
        (Some(_), _, _) => {
            return Err(format!(
                "key `{at}amount`: give `amount` or `credit`/`debit`, not both"
            ));
        }
    };
    let decimal_mark = match keys.decimal_mark.as_deref() {
        None | Some(".") => '.',
        Some(",") => ',',
        Some(other) => {
            return Err(format!(
                "key `{at}decimal_mark`: '{other}' is neither \".\" nor \",\""
            ));
        }
    };
    let date_format = keys
        .date_format
        .clone()
        .unwrap_or_else(|| "%Y-%m-%d".into());
    let mut tags = Vec::new();
    for (key, value) in keys.tags.iter().flatten() {
        crate::input::tag(key, "").map_err(|e| format!("key `{at}tags.{key}`: {e}"))?;
        tags.push((key.clone(), template(value, &format!("tags.{key}"))?));
    }
    Ok(Mapping {
        account,
        amount,
        counterparty: optional(&keys.counterparty, "counterparty")?,
        date: optional(&keys.date, "date")?.map(|t| (t, date_format)),
        decimal_mark,
        memo: optional(&keys.memo, "memo")?,
        id: optional(&keys.id, "id")?,
        tags,
    })
}

/// The header's columns, for a message naming one it lacks.
fn columns_of(header: &[&str]) -> String {
    match header {
        [] => "the CSV has no header row".into(),
        h => format!("columns: {}", h.join(", ")),
    }
}

/// What is wrong with a pattern, on one line: the `regex` crate draws the
/// place under the pattern, over lines, with the reason last.
fn regex_error(e: &regex::Error) -> String {
    let text = e.to_string();
    let last = text.lines().last().unwrap_or_default().trim();
    last.strip_prefix("error: ").unwrap_or(last).to_owned()
}
