//! Identifiers of providers, pools, clusters and machines: RFC 1123 labels, because they end up
//! in host names, systemd unit names and network interface names.

use serde::{Deserialize, Deserializer, Serialize};
use std::fmt;

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct Id(String);

impl Id {
    pub fn parse(s: &str) -> Result<Id, String> {
        check_label(s)?;
        Ok(Id(s.to_owned()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// RFC 1123 label: 1–63 characters of `a-z`, `0-9` and `-`, starting and ending alphanumeric.
pub fn check_label(s: &str) -> Result<(), String> {
    let hint = "ids are RFC 1123 labels: 1-63 characters a-z, 0-9 and '-', starting and ending with a letter or digit";
    if s.is_empty() {
        return Err(format!("empty id; {hint}"));
    }
    if s.len() > 63 {
        return Err(format!("id `{s}` is {} characters long; {hint}", s.len()));
    }
    if let Some(c) = s
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        let fix = if c.is_ascii_uppercase() {
            format!(" (try `{}`)", s.to_ascii_lowercase())
        } else {
            String::new()
        };
        return Err(format!("id `{s}` contains `{c}`{fix}; {hint}"));
    }
    if s.starts_with('-') || s.ends_with('-') {
        return Err(format!("id `{s}` starts or ends with '-'; {hint}"));
    }
    Ok(())
}

/// RFC 1123 host name: dot-separated labels, at most 253 characters.
pub fn check_hostname(s: &str) -> Result<(), String> {
    if s.len() > 253 {
        return Err(format!("host name `{s}` is longer than 253 characters"));
    }
    s.split('.')
        .try_for_each(check_label)
        .map_err(|e| format!("host name `{s}`: {e}"))
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::borrow::Borrow<str> for Id {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for Id {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Id::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// A host name, validated like [`Id`] but allowing dots.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct Hostname(String);

impl Hostname {
    pub fn parse(s: &str) -> Result<Hostname, String> {
        check_hostname(s)?;
        Ok(Hostname(s.to_owned()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for Hostname {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Hostname::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for Hostname {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels() {
        assert!(Id::parse("lab-1").is_ok());
        assert!(Id::parse("Lab").unwrap_err().contains("try `lab`"));
        assert!(Id::parse("-x").is_err());
        assert!(Id::parse("a_b").is_err());
        assert!(Id::parse(&"a".repeat(64)).is_err());
        assert!(Hostname::parse("node-1.example").is_ok());
        assert!(Hostname::parse("node..x").is_err());
    }
}
