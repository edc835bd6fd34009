//! A protocol error: a message that names the file, item and field it is about.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtocolError(String);

impl ProtocolError {
    pub fn new(msg: impl Into<String>) -> Self {
        ProtocolError(msg.into())
    }

    /// Prefixes the message with where it happened.
    pub fn context(self, ctx: impl fmt::Display) -> Self {
        ProtocolError(format!("{ctx}: {}", self.0))
    }

    pub fn message(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ProtocolError {}

pub type Result<T, E = ProtocolError> = std::result::Result<T, E>;
