//! Removing credentials from text that leaves the process (errors, logs).

/// Replaces the user-info part of every `scheme://user:secret@host` in `text` with `***`,
/// because git echoes remote URLs (with embedded tokens) in its messages.
pub fn redact_url_credentials(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(idx) = rest.find("://") {
        let (head, tail) = rest.split_at(idx + 3);
        out.push_str(head);
        let end = tail
            .find(|c: char| c == '/' || c.is_whitespace() || "'\"<>".contains(c))
            .unwrap_or(tail.len());
        let authority = &tail[..end];
        match authority.rfind('@') {
            Some(at) => {
                out.push_str("***");
                out.push_str(&authority[at..]);
            }
            None => out.push_str(authority),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

/// Replaces every occurrence of each (non-trivial) secret in `text` with `***`.
pub(crate) fn scrub(text: &str, secrets: &[&str]) -> String {
    let mut out = text.to_owned();
    for secret in secrets.iter().filter(|s| s.len() >= 4) {
        out = out.replace(secret, "***");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removes_user_and_token() {
        assert_eq!(
            redact_url_credentials("fatal: https://bob:ghp_secret@example.org/x.git not found"),
            "fatal: https://***@example.org/x.git not found"
        );
        assert_eq!(
            redact_url_credentials("'https://tok@h/a' and https://h2/b"),
            "'https://***@h/a' and https://h2/b"
        );
    }

    #[test]
    fn leaves_text_without_credentials() {
        let s = "To ssh://127.0.0.1:22/srv/orb.git\n! [rejected]";
        assert_eq!(redact_url_credentials(s), s);
        assert_eq!(redact_url_credentials("no url here"), "no url here");
    }

    #[test]
    fn scrub_replaces_secrets() {
        assert_eq!(scrub("a hunter22 b", &["hunter22", ""]), "a *** b");
    }
}
