//! What the etcd end-to-end tests read of an etcd cluster's record (`orbiter/clusters/kv`).

use super::Person;

/// The record's members: (name, state, healthy, version).
pub fn members(p: &Person) -> Vec<(String, String, bool, String)> {
    let text = p.ok(&["file", "print", "orbiter/clusters/kv/current.yml"]);
    let mut out = Vec::new();
    let mut in_members = false;
    for line in text.lines() {
        if !line.starts_with(' ') && !line.starts_with('-') {
            in_members = line == "members:";
            continue;
        }
        if !in_members {
            continue;
        }
        if let Some(name) = line.strip_prefix("- name: ") {
            out.push((name.to_owned(), String::new(), false, String::new()));
        } else if let Some(m) = out.last_mut() {
            let v = line.trim();
            if let Some(s) = v.strip_prefix("state: ") {
                m.1 = s.to_owned();
            } else if v == "healthy: true" {
                m.2 = true;
            } else if let Some(s) = v.strip_prefix("version: ") {
                m.3 = s.trim_matches('"').to_owned();
            }
        }
    }
    out
}

pub fn settled(p: &Person, n: usize, version: &str) -> bool {
    let m = members(p);
    m.len() == n
        && m.iter()
            .all(|(_, s, h, v)| s == "member" && *h && v == version)
}
