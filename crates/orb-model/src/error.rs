//! One error type for everything wrong with an Orb file: it always names the file, the place
//! (line and column when known) and, where we can guess the fix, a hint.

use crate::located::Pos;
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelError {
    pub file: String,
    pub pos: Option<Pos>,
    pub message: String,
    pub hint: Option<String>,
    /// The offending lines with a caret, when the parser rendered them.
    pub snippet: Option<String>,
}

impl ModelError {
    pub fn new(file: &str, pos: Option<Pos>, message: impl Into<String>) -> Self {
        ModelError {
            file: file.to_owned(),
            pos,
            message: message.into(),
            hint: None,
            snippet: None,
        }
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// `file:line:col` (or just the file when the place is unknown).
    pub fn place(&self) -> String {
        match self.pos {
            Some(p) => format!("{}:{}:{}", self.file, p.line, p.column),
            None => self.file.clone(),
        }
    }

    /// Converts a parser error, keeping its position and rendered snippet.
    pub(crate) fn from_yaml(file: &str, err: &serde_saphyr::Error) -> Self {
        let pos = err.location().filter(|l| l.line() > 0).map(|l| Pos {
            line: l.line(),
            column: l.column(),
        });
        let plain = err.without_snippet().to_string();
        let message = strip_position_prefix(&plain).to_owned();
        let rendered =
            err.render_with_options(serde_saphyr::render_options! { source_name: Some(file) });
        let snippet = rendered
            .find("\n")
            .map(|i| rendered[i + 1..].trim_end().to_owned())
            .filter(|s| !s.is_empty());
        let hint = crate::hint::for_parser_message(&message);
        ModelError {
            file: file.to_owned(),
            pos,
            message,
            hint,
            snippet,
        }
    }
}

/// serde-saphyr puts the position into messages (`error: line N column M: …` or `… at line N,
/// column M`); we print the place ourselves, once.
fn strip_position_prefix(s: &str) -> &str {
    let s = s.strip_prefix("error: ").unwrap_or(s);
    let s = match s.rfind(" at line ") {
        Some(i) if s[i..].contains(", column ") => &s[..i],
        _ => s,
    };
    if let Some(rest) = s.strip_prefix("line ")
        && let Some(i) = rest.find(": ")
        && rest[..i].contains(" column ")
    {
        return &rest[i + 2..];
    }
    s
}

impl fmt::Display for ModelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.place(), self.message)?;
        if let Some(s) = &self.snippet {
            write!(f, "\n{s}")?;
        }
        if let Some(h) = &self.hint {
            write!(f, "\n  hint: {h}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ModelError {}
