//! "Did you mean …" suggestions for misspelt names.

/// The candidate closest to `input` by edit distance, if it is close enough to be a likely typo.
pub fn closest<'a>(input: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (input.chars().count() / 3).max(2);
    candidates
        .into_iter()
        .map(|c| (levenshtein(input, c), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// `did you mean `x`?` or, failing that, the full list of valid names.
pub fn did_you_mean(input: &str, candidates: &[&str]) -> String {
    match closest(input, candidates.iter().copied()) {
        Some(c) => format!("did you mean `{c}`?"),
        None if candidates.is_empty() => "there is nothing to choose from yet".to_owned(),
        None => format!("valid: {}", candidates.join(", ")),
    }
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// Turns serde's "unknown field `x`, expected one of a, b" into a did-you-mean hint.
pub(crate) fn for_parser_message(message: &str) -> Option<String> {
    let rest = message
        .strip_prefix("unknown field `")
        .or_else(|| message.strip_prefix("unknown variant `"))?;
    let (name, rest) = rest.split_once('`')?;
    if name == "loadbalancing" {
        return Some(
            "`loadbalancing` stands beside `spec` of a provider (as in orbos), not inside it"
                .into(),
        );
    }
    let list = rest
        .split_once("expected one of ")
        .map(|(_, l)| l)
        .or_else(|| rest.split_once("expected ").map(|(_, l)| l))?;
    let candidates: Vec<&str> = list
        .split(", ")
        .map(|c| c.trim_matches(|c| c == '`' || c == ' '))
        .filter(|c| !c.is_empty())
        .collect();
    Some(did_you_mean(name, &candidates))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_near_names_only() {
        assert_eq!(closest("workrs", ["workers", "masters"]), Some("workers"));
        assert_eq!(
            closest("StaticProvidr", ["StaticProvider", "LocalProvider"]),
            Some("StaticProvider")
        );
        assert_eq!(closest("zzz", ["workers"]), None);
    }
}
