//! "Did you mean …?": the names closest to a mistyped one.

/// The most names suggested at once.
const MAX_SUGGESTIONS: usize = 3;

/// The names among `known` closest to `typed` (by Damerau–Levenshtein
/// distance: a swapped pair of letters is one typo), best first, if any is
/// close enough to be a likely typo: within a third of its length, at
/// least one edit. Called only once a name has been refused, so its cost
/// (one distance per known name) never touches a successful command.
pub fn similar<'a>(typed: &str, known: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let limit = (typed.chars().count() / 3).max(1);
    let mut close: Vec<(usize, &str)> = known
        .into_iter()
        .map(|name| (strsim::damerau_levenshtein(typed, name), name))
        .filter(|&(distance, _)| distance <= limit)
        .collect();
    close.sort_unstable();
    let best = close.first().map(|&(distance, _)| distance);
    close
        .into_iter()
        .take_while(|&(distance, _)| Some(distance) == best)
        .take(MAX_SUGGESTIONS)
        .map(|(_, name)| name.to_owned())
        .collect()
}

/// ` (did you mean a or b?)`, or nothing when there is nothing to suggest.
pub fn did_you_mean(names: &[String]) -> String {
    if names.is_empty() {
        return String::new();
    }
    format!(" (did you mean {}?)", either(names))
}

/// `a`, `a or b`, `a, b or c`.
pub fn either(names: &[String]) -> String {
    match names.split_last() {
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_the_closest_names_only() {
        let known = ["acct1", "acct2", "savings", "alice"];
        assert_eq!(similar("acct3", known), ["acct1", "acct2"]);
        assert_eq!(similar("svaings", known), ["savings"]);
        assert_eq!(similar("alcie", known), ["alice"]);
        assert!(similar("zzzzz", known).is_empty());
        assert!(similar("acct3", []).is_empty());
    }

    #[test]
    fn phrases_the_suggestion() {
        assert_eq!(did_you_mean(&[]), "");
        assert_eq!(did_you_mean(&["a".into()]), " (did you mean a?)");
        assert_eq!(
            did_you_mean(&["a".into(), "b".into(), "c".into()]),
            " (did you mean a, b or c?)"
        );
    }
}
