//! The input rules of the specification (section 1), in one place.
//!
//! The command line checks arguments with these functions (a usage error,
//! exit 2), and the domain checks every replayed event with the same ones, so
//! a journal line can never hold a value the command line would have refused.

use crate::money::{AmountError, MAX_DECIMALS};

/// An input that breaks a rule of the specification.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InputError {
    /// See [`account`].
    #[error(
        "'{0}' is not a valid account name: use 1-64 of A-Z a-z 0-9 _ . : @ -, starting with a letter or digit"
    )]
    Account(String),
    /// See [`currency`].
    #[error("'{0}' is not a valid currency code: use 1-10 of A-Z 0-9")]
    Currency(String),
    /// See [`decimals`].
    #[error("decimals must be between 0 and {MAX_DECIMALS}, got {0}")]
    Decimals(u8),
    /// See [`owner`] and [`memo`].
    #[error("the {what} is too long ({len} characters, at most {max})")]
    TooLong {
        /// `owner` or `memo`.
        what: &'static str,
        /// Its length in characters.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// See [`owner`] and [`memo`].
    #[error("the {0} contains a control character")]
    Control(&'static str),
    /// See [`key`].
    #[error("'{0}' is not a valid id: use 1-128 printable characters without whitespace")]
    Key(String),
    /// See [`tag`].
    #[error(
        "'{0}' is not a valid tag: write KEY=VALUE, the key 1-64 of a-z 0-9 _ . -, the value at most 200 characters without control characters"
    )]
    Tag(String),
    /// See [`tags`].
    #[error("tag {0} is given twice")]
    DuplicateTag(String),
    /// See [`tags`].
    #[error("too many tags ({0}, at most {MAX_TAGS})")]
    TooManyTags(usize),
    /// An amount that is malformed or does not fit the account.
    #[error(transparent)]
    Amount(#[from] AmountError),
}

/// ACCOUNT: 1-64 of `A-Z a-z 0-9 _ . : @ -`, starting with a letter or digit.
pub fn account(name: &str) -> Result<(), InputError> {
    let b = name.as_bytes();
    let ok = (1..=64).contains(&b.len())
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || b"_.:@-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(InputError::Account(name.to_owned()))
    }
}

/// CODE: 1-10 of `A-Z 0-9`.
pub fn currency(code: &str) -> Result<(), InputError> {
    let ok = (1..=10).contains(&code.len())
        && code
            .bytes()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(InputError::Currency(code.to_owned()))
    }
}

/// Decimals: 0 to 18.
pub fn decimals(n: u8) -> Result<(), InputError> {
    if n <= MAX_DECIMALS {
        Ok(())
    } else {
        Err(InputError::Decimals(n))
    }
}

/// NAME: at most 200 characters, no control characters.
pub fn owner(name: &str) -> Result<(), InputError> {
    text("owner", name, 200)
}

/// TEXT: at most 500 characters, no control characters.
pub fn memo(memo: &str) -> Result<(), InputError> {
    text("memo", memo, 500)
}

fn text(what: &'static str, s: &str, max: usize) -> Result<(), InputError> {
    // ASCII (the usual case, checked per event: a large import's memos)
    // has a character per byte, and its control characters are below
    // 0x20 and 0x7f; counting `char`s was a tenth of deciding a deposit.
    let (len, control) = if s.is_ascii() {
        let control = s.bytes().any(|b| b < 0x20 || b == 0x7f);
        (s.len(), control)
    } else {
        (s.chars().count(), s.chars().any(char::is_control))
    };
    if len > max {
        return Err(InputError::TooLong { what, len, max });
    }
    if control {
        return Err(InputError::Control(what));
    }
    Ok(())
}

/// KEY: 1-128 printable characters, no whitespace.
pub fn key(key: &str) -> Result<(), InputError> {
    // ASCII (the usual case, checked per event) is printable from `!` to
    // `~`: whitespace and control characters are below or at 0x7f.
    let ok = if key.is_ascii() {
        (1..=128).contains(&key.len()) && key.bytes().all(|b| (b'!'..=b'~').contains(&b))
    } else {
        (1..=128).contains(&key.chars().count())
            && key.chars().all(|c| !c.is_whitespace() && !c.is_control())
    };
    if ok {
        Ok(())
    } else {
        Err(InputError::Key(key.to_owned()))
    }
}

/// The most tags one event may carry.
pub const MAX_TAGS: usize = 16;

/// TAG: a key of 1-64 of `a-z 0-9 _ . -` and a value of at most 200
/// characters without control characters (may be empty).
pub fn tag(key: &str, value: &str) -> Result<(), InputError> {
    let key_ok = (1..=64).contains(&key.len())
        && key
            .bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || b"_.-".contains(&c));
    let value_ok = value.chars().count() <= 200 && !value.chars().any(char::is_control);
    if key_ok && value_ok {
        Ok(())
    } else {
        Err(InputError::Tag(format!("{key}={value}")))
    }
}

/// An event's tags, sorted by key: each valid, each key once, at most
/// [`MAX_TAGS`].
pub fn tags<'a>(tags: impl ExactSizeIterator<Item = (&'a str, &'a str)>) -> Result<(), InputError> {
    if tags.len() > MAX_TAGS {
        return Err(InputError::TooManyTags(tags.len()));
    }
    let mut last: Option<&str> = None;
    for (key, value) in tags {
        tag(key, value)?;
        if last.is_some_and(|l| l >= key) {
            return Err(InputError::DuplicateTag(key.to_owned()));
        }
        last = Some(key);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The ASCII fast path of `text` says what the general rule says.
        #[test]
        fn texts_checked_fast_as_by_the_rule(text in "[\\x00-\\x7f]{0,12}|[ -~]{0,12}|\\PC{0,12}") {
            let rule = if text.chars().count() > 8 {
                Err(InputError::TooLong { what: "memo", len: text.chars().count(), max: 8 })
            } else if text.chars().any(char::is_control) {
                Err(InputError::Control("memo"))
            } else {
                Ok(())
            };
            prop_assert_eq!(super::text("memo", &text, 8), rule);
        }

        /// The ASCII fast path of `key` says what the general rule says.
        #[test]
        fn keys_checked_fast_as_by_the_rule(text in "[\\x00-\\x7f]{0,130}|[!-~]{0,130}|[!-~ ]{0,3}|\\PC{0,130}") {
            let rule = (1..=128).contains(&text.chars().count())
                && text.chars().all(|c| !c.is_whitespace() && !c.is_control());
            prop_assert_eq!(key(&text).is_ok(), rule);
        }
    }

    #[test]
    fn account_names() {
        for good in ["acct1", "A", "9lives", "a_b.c:d@e-f", &"x".repeat(64)] {
            assert_eq!(account(good), Ok(()), "{good}");
        }
        for bad in [
            "",
            "_x",
            "-x",
            ".x",
            "a b",
            "a/b",
            "é",
            &"x".repeat(65),
            "a\n",
        ] {
            assert!(account(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn currency_codes() {
        assert_eq!(currency("EUR"), Ok(()));
        assert_eq!(currency("X1234567890"[..10].as_ref()), Ok(()));
        for bad in ["", "eur", "E-R", "ABCDEFGHIJK"] {
            assert!(currency(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn texts_and_keys() {
        assert_eq!(memo(&"é".repeat(500)), Ok(()));
        assert!(memo(&"é".repeat(501)).is_err());
        assert!(memo("a\tb").is_err());
        assert!(owner(&"o".repeat(201)).is_err());
        assert_eq!(key("pay-17"), Ok(()));
        assert!(key("").is_err());
        assert!(key("a b").is_err());
        assert!(key(&"k".repeat(129)).is_err());
        assert_eq!(decimals(18), Ok(()));
        assert!(decimals(19).is_err());
    }

    #[test]
    fn tag_rules() {
        assert_eq!(tag("order", "A-17"), Ok(()));
        assert_eq!(tag("a.b_c-9", ""), Ok(()));
        for (k, v) in [("", "x"), ("Order", "x"), ("a b", "x"), ("a", "x\ny")] {
            assert!(tag(k, v).is_err(), "{k:?}={v:?}");
        }
        assert!(tag(&"k".repeat(65), "").is_err());
        assert!(tag("k", &"v".repeat(201)).is_err());
        assert_eq!(tags([("a", "1"), ("b", "2")].into_iter()), Ok(()));
        assert_eq!(
            tags([("a", "1"), ("a", "2")].into_iter()),
            Err(InputError::DuplicateTag("a".into()))
        );
        let many: Vec<(String, String)> = (0..17)
            .map(|i| (format!("k{i:02}"), String::new()))
            .collect();
        assert!(tags(many.iter().map(|(k, v)| (k.as_str(), v.as_str()))).is_err());
    }
}
