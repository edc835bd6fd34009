//! Shell text: single-quoting for POSIX sh. The lowest module: every command builder uses it.

/// Single quotes for sh.
pub fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}
