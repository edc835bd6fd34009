//! A value with the place it was read from, so checks that run after parsing (references between
//! subtrees, duplicate machines) can still point at `file:line:col`.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// Line and column (1-based) in the source file; `None` for values built in code.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pos {
    pub line: u64,
    pub column: u64,
}

/// `T` plus its position. Equality and ordering look at the value only: a model re-read from
/// re-rendered YAML must compare equal to the original.
#[derive(Clone, Debug)]
pub struct Located<T> {
    pub value: T,
    pub pos: Option<Pos>,
}

impl<T> Located<T> {
    pub fn new(value: T) -> Self {
        Located { value, pos: None }
    }
}

impl<T: PartialEq> PartialEq for Located<T> {
    fn eq(&self, other: &Self) -> bool {
        self.value == other.value
    }
}
impl<T: Eq> Eq for Located<T> {}

impl<T: PartialOrd> PartialOrd for Located<T> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        self.value.partial_cmp(&other.value)
    }
}
impl<T: Ord> Ord for Located<T> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.value.cmp(&other.value)
    }
}

impl<T> std::ops::Deref for Located<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

impl<T: fmt::Display> fmt::Display for Located<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.value.fmt(f)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Located<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = serde_saphyr::Spanned::<T>::deserialize(d)?;
        let (line, column) = (s.referenced.line(), s.referenced.column());
        let pos = (line > 0).then_some(Pos { line, column });
        Ok(Located {
            value: s.value,
            pos,
        })
    }
}

impl<T: Serialize> Serialize for Located<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.value.serialize(s)
    }
}
