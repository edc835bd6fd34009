//! Names: validation of user-given names and the short, hashed kernel names derived from them
//! (interface names are limited to 15 bytes, so `orbb` + 8 hex digits of a hash).

use crate::Error;
use sha2::{Digest, Sha256};

const GROUP_MAX: usize = 24;
const MACHINE_MAX: usize = 40;

fn valid_label(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

pub(crate) fn check_group_name(name: &str) -> Result<(), Error> {
    if valid_label(name, GROUP_MAX) {
        Ok(())
    } else {
        Err(Error::InvalidName {
            what: "group name",
            value: name.to_string(),
            hint: "use 1-24 characters a-z, 0-9 and '-', not starting or ending with '-'",
        })
    }
}

/// Machine ids double as hostnames, hence the hostname-label rules.
pub(crate) fn check_machine_id(id: &str) -> Result<(), Error> {
    if valid_label(id, MACHINE_MAX) {
        Ok(())
    } else {
        Err(Error::InvalidName {
            what: "machine id",
            value: id.to_string(),
            hint: "use 1-40 characters a-z, 0-9 and '-', not starting or ending with '-' (it becomes the hostname)",
        })
    }
}

/// Eight hex digits of SHA-256: short enough for interface names, and collisions are checked
/// (an existing interface is an error, never reused).
pub(crate) fn short_hash(s: &str) -> String {
    let d = Sha256::digest(s.as_bytes());
    d[..4].iter().map(|b| format!("{b:02x}")).collect()
}

pub(crate) fn bridge_name(group: &str) -> String {
    format!("orbb{}", short_hash(group))
}

pub(crate) fn veth_name(group: &str, id: &str) -> String {
    format!("orbv{}", short_hash(&format!("{group}/{id}")))
}

/// Hash-prefixed so that one group's sweep (`netns_prefix`) never matches another group's
/// namespaces (group "a" would otherwise match "a-b").
pub(crate) fn netns_name(group: &str, id: &str) -> String {
    format!("{}{id}", netns_prefix(group))
}

pub(crate) fn netns_prefix(group: &str) -> String {
    format!("orb-{}-", short_hash(group))
}

/// nspawn keeps per-machine runtime files keyed by this name, so it must be unique host-wide.
pub(crate) fn nspawn_name(group: &str, id: &str) -> String {
    netns_name(group, id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_validated() {
        assert!(check_group_name("ci-123").is_ok());
        for bad in ["", "-a", "a-", "A", "a_b", "a.b", &"x".repeat(25)] {
            let e = check_group_name(bad).unwrap_err().to_string();
            assert!(e.contains("group name"), "{e}");
        }
        assert!(check_machine_id("m1").is_ok());
        assert!(check_machine_id(&"m".repeat(41)).is_err());
    }

    #[test]
    fn kernel_names_fit_and_differ() {
        let b = bridge_name("a-very-long-group-name-xx");
        let v = veth_name("a-very-long-group-name-xx", &"m".repeat(40));
        assert!(b.len() <= 15 && v.len() <= 15, "{b} {v}");
        assert_ne!(veth_name("g", "m1"), veth_name("g", "m2"));
        assert_ne!(bridge_name("g1"), bridge_name("g2"));
        assert!(nspawn_name("a-very-long-group-name-xx", &"m".repeat(40)).len() <= 64);
    }
}
