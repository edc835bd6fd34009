//! Package sources: an apt source file (followed by `apt-get update`) or a dnf `.repo` file.

use super::{Action, Op};
use crate::error::Result;
use crate::fsutil;
use crate::fsutil::nofollow::Parents;
use crate::host::Host;
use node_protocol::Source;
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    Apt,
    Dnf,
}

/// Where a source of this flavour and name lives.
pub fn path(flavor: Flavor, name: &str) -> String {
    match flavor {
        Flavor::Apt if name.ends_with(".list") || name.ends_with(".sources") => {
            format!("/etc/apt/sources.list.d/{name}")
        }
        Flavor::Apt => format!("/etc/apt/sources.list.d/{name}.list"),
        Flavor::Dnf if name.ends_with(".repo") => format!("/etc/yum.repos.d/{name}"),
        Flavor::Dnf => format!("/etc/yum.repos.d/{name}.repo"),
    }
}

/// SHA-256 of the source file, `None` when absent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed(pub Option<String>);

impl fmt::Display for Observed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            None => write!(f, "absent"),
            Some(sha) => write!(f, "sha256:{}", &sha[..16]),
        }
    }
}

pub fn observe(host: &Host, flavor: Flavor, s: &Source) -> Result<Observed> {
    Ok(Observed(
        host.read(&path(flavor, &s.name), Parents::RootOnly)?
            .map(|b| fsutil::sha256_hex(&b)),
    ))
}

pub fn plan(flavor: Flavor, s: &Source, o: &Observed) -> Vec<Action> {
    let want = fsutil::sha256_hex(s.content.0.as_bytes());
    let reason = match &o.0 {
        Some(have) if *have == want => return vec![],
        Some(_) => "content differs",
        None => "missing",
    };
    let write = Action::new(
        Op::WriteFile {
            path: path(flavor, &s.name),
            content: (&s.content).into(),
            mode: 0o644,
            uid: 0,
            gid: 0,
            owner: "root:root".into(),
            parents: Parents::RootOnly,
        },
        reason,
    );
    match flavor {
        // dnf refreshes expired metadata by itself; apt needs an explicit update.
        Flavor::Apt => vec![
            write,
            Action::new(Op::AptUpdate, format!("source {} changed", s.name)),
        ],
        Flavor::Dnf => vec![write],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use node_protocol::Content;

    #[test]
    fn apt_source_change_triggers_update() {
        let s = Source {
            name: "local".into(),
            content: Content("deb [trusted=yes] http://10.0.0.1/ ./\n".into()),
        };
        let plan = plan(Flavor::Apt, &s, &Observed(None));
        assert_eq!(plan.len(), 2);
        assert!(
            matches!(&plan[0].op, Op::WriteFile { path, .. } if path == "/etc/apt/sources.list.d/local.list")
        );
        assert_eq!(plan[1].op, Op::AptUpdate);
        let same = Observed(Some(fsutil::sha256_hex(s.content.0.as_bytes())));
        assert!(super::plan(Flavor::Apt, &s, &same).is_empty());
        assert_eq!(
            path(Flavor::Apt, "x.sources"),
            "/etc/apt/sources.list.d/x.sources"
        );
        assert_eq!(path(Flavor::Dnf, "epel"), "/etc/yum.repos.d/epel.repo");
        assert_eq!(
            super::plan(Flavor::Dnf, &s, &Observed(Some("0".repeat(64)))).len(),
            1
        );
    }
}
