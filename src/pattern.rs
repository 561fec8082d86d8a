//! Account patterns on reads (SPEC 1, v2): `*` stands for any run of
//! characters, `?` for one; every other character stands for itself.

use crate::domain::{Rejection, State};
use crate::input::{self, InputError};

/// Whether an ACCOUNT argument is a pattern rather than a name.
pub fn is_pattern(arg: &str) -> bool {
    arg.contains(['*', '?'])
}

/// Checks an ACCOUNT argument of a read: a name, or a pattern that would
/// be a name with each wildcard taken as one letter.
pub fn check(arg: &str) -> Result<(), InputError> {
    if !is_pattern(arg) {
        return input::account(arg);
    }
    input::account(&arg.replace(['*', '?'], "a")).map_err(|_| InputError::Account(arg.to_owned()))
}

/// Whether `name` matches `pattern`. Names are ASCII (SPEC 1), so bytes
/// are characters. Backtracks only to the last `*`, so the cost is at
/// most the product of the two lengths, never exponential.
pub fn matches(pattern: &str, name: &str) -> bool {
    let (p, n) = (pattern.as_bytes(), name.as_bytes());
    let (mut i, mut j) = (0, 0);
    // Where the last `*` was, and where in the name it now ends.
    let mut star: Option<(usize, usize)> = None;
    while j < n.len() {
        match p.get(i) {
            Some(b'*') => {
                star = Some((i, j));
                i += 1;
            }
            Some(&c) if c == b'?' || c == n[j] => {
                i += 1;
                j += 1;
            }
            _ => match star {
                Some((si, sj)) => {
                    // Let that `*` take one more character, and retry.
                    star = Some((si, sj + 1));
                    i = si + 1;
                    j = sj + 1;
                }
                None => return false,
            },
        }
    }
    p[i..].iter().all(|&c| c == b'*')
}

/// The accounts of `state` that ACCOUNT arguments select, sorted by name,
/// each once: every account when there are none; a name must be an
/// account, a pattern may match none.
pub fn select<'s>(state: &'s State, args: &[String]) -> Result<Vec<&'s str>, Rejection> {
    let mut names: Vec<&str> = Vec::new();
    for arg in args {
        if is_pattern(arg) {
            names.extend(state.accounts().map(|(n, _)| n).filter(|n| matches(arg, n)));
        } else {
            match state.accounts().find(|(n, _)| *n == arg) {
                Some((name, _)) => names.push(name),
                None => return Err(state.unknown_account(arg)),
            }
        }
    }
    if args.is_empty() {
        names.extend(state.accounts().map(|(n, _)| n));
    }
    names.sort_unstable();
    names.dedup();
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stars_and_question_marks() {
        for (p, n) in [
            ("cust:*", "cust:alice"),
            ("cust:*", "cust:"),
            ("*", "a"),
            ("acct?", "acct1"),
            ("*:*:x", "a:b:c:x"),
            ("a*b*c", "aXbYbZc"),
            ("acct1", "acct1"),
        ] {
            assert!(matches(p, n), "{p} {n}");
        }
        for (p, n) in [
            ("cust:*", "cus:alice"),
            ("acct?", "acct12"),
            ("acct?", "acct"),
            ("a*b", "aXbY"),
            ("acct1", "acct2"),
        ] {
            assert!(!matches(p, n), "{p} {n}");
        }
    }

    #[test]
    fn a_pattern_is_checked_like_a_name() {
        assert!(check("cust:*").is_ok());
        assert!(check("*").is_ok());
        assert!(check("acct?").is_ok());
        assert!(check("cust *").is_err());
        assert!(check("").is_err());
        assert!(check("-*").is_err());
    }
}
