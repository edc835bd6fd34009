//! One error type for the whole agent: a message that already names the file, field or
//! command it is about, so it can go straight into the current state and the journal.

use std::fmt;

/// An error message meant for operators (it names the place and, where possible, a hint).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error(String);

impl Error {
    pub fn new(msg: impl Into<String>) -> Self {
        Error(msg.into())
    }

    /// An I/O error about `what` (usually a path and the operation).
    pub fn io(what: impl fmt::Display, e: &std::io::Error) -> Self {
        Error(format!("{what}: {e}"))
    }

    /// Prefixes the message with where it happened.
    pub fn context(self, ctx: impl fmt::Display) -> Self {
        Error(format!("{ctx}: {}", self.0))
    }

    pub fn message(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<node_protocol::ProtocolError> for Error {
    fn from(e: node_protocol::ProtocolError) -> Self {
        Error(e.message().to_owned())
    }
}
