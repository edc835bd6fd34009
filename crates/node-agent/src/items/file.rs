//! Files and directories: content (compared by SHA-256), mode and owner; plus the
//! agent-owned aggregate files (sysctl.d, modules-load.d), which follow from all items of
//! their kind and disappear when there are none.

use super::{Action, Bytes, Op};
use crate::error::{Error, Result};
use crate::fsutil::nofollow::Parents;
use crate::fsutil::{self, Kind, Meta};
use crate::host::Host;
use node_protocol::{Directory, File};
use std::fmt;

/// What is at a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathState {
    Missing,
    /// A regular file (`sha256` of its content) or directory (`sha256` empty).
    Present {
        meta: Meta,
        sha256: String,
    },
}

/// A file or directory as observed, plus the desired owner resolved on this machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    pub state: PathState,
    pub want_uid: u32,
    pub want_gid: u32,
    /// `user:group` names of the observed owner (for the report).
    pub owner_names: String,
    /// The content is secret: the report leaves out even its digest (a short secret's digest
    /// could be guessed offline from a repository that records the report).
    pub secret: bool,
}

impl fmt::Display for Observed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.state {
            PathState::Missing => write!(f, "absent"),
            PathState::Present { meta, sha256 } => {
                let kind = fsutil::kind_name(meta.kind);
                if sha256.is_empty() || self.secret {
                    write!(f, "{kind} {:04o} {}", meta.mode, self.owner_names)
                } else {
                    write!(
                        f,
                        "{kind} sha256:{} {:04o} {}",
                        &sha256[..16],
                        meta.mode,
                        self.owner_names
                    )
                }
            }
        }
    }
}

/// How far an item trusts the directories above its path.
fn parents(allow_unsafe: bool) -> Parents {
    if allow_unsafe {
        Parents::AnyOwner
    } else {
        Parents::RootOnly
    }
}

/// `lstat` of the path and, for a regular file, the digest of its content. Nothing is
/// followed: a link is observed as a link, a FIFO, socket or device as a special file (never
/// opened), and a link among the directories above it is an error.
fn observe_path(
    host: &Host,
    path: &str,
    owner: &str,
    group: &str,
    parents: Parents,
) -> Result<Observed> {
    let want_uid = host.uid(owner)?;
    let want_gid = host.gid(group)?;
    let state = match host.entry(path, parents, None)? {
        None => PathState::Missing,
        Some(entry) => match entry.stat()? {
            None => PathState::Missing,
            Some(meta) => {
                let sha256 = if meta.kind == Kind::File {
                    fsutil::sha256_hex(&entry.read()?.unwrap_or_default())
                } else {
                    String::new()
                };
                PathState::Present { meta, sha256 }
            }
        },
    };
    let owner_names = match &state {
        PathState::Present { meta, .. } => format!(
            "{}:{}",
            host.id_name(meta.uid, "/etc/passwd"),
            host.id_name(meta.gid, "/etc/group")
        ),
        PathState::Missing => String::new(),
    };
    Ok(Observed {
        state,
        want_uid,
        want_gid,
        owner_names,
        secret: false,
    })
}

pub fn observe_file(host: &Host, f: &File) -> Result<Observed> {
    let mut o = observe_path(
        host,
        &f.path,
        &f.owner,
        &f.group,
        parents(f.allow_unsafe_parents),
    )?;
    o.secret = f.is_secret();
    Ok(o)
}

pub fn observe_dir(host: &Host, d: &Directory) -> Result<Observed> {
    observe_path(
        host,
        &d.path,
        &d.owner,
        &d.group,
        parents(d.allow_unsafe_parents),
    )
}

fn meta_diff(meta: &Meta, mode: u32, uid: u32, gid: u32) -> Option<String> {
    let mut why = Vec::new();
    if meta.mode != mode {
        why.push(format!("mode is {:04o}", meta.mode));
    }
    if meta.uid != uid || meta.gid != gid {
        why.push(format!("owner is {}:{}", meta.uid, meta.gid));
    }
    if why.is_empty() {
        None
    } else {
        Some(why.join(", "))
    }
}

pub fn plan_file(f: &File, o: &Observed) -> Result<Vec<Action>> {
    let mode = node_protocol::parse_mode(&f.mode)?;
    let owner = format!("{}:{}", f.owner, f.group);
    let bytes = f.bytes().ok_or_else(|| {
        Error::new(format!(
            "{}: the document holds no content for it; hint: Orbiter resolves secrets before writing",
            f.path
        ))
    })?;
    let write = |reason: &str| {
        Action::new(
            Op::WriteFile {
                path: f.path.clone(),
                content: Bytes(bytes.to_vec()),
                mode,
                uid: o.want_uid,
                gid: o.want_gid,
                owner: owner.clone(),
                parents: parents(f.allow_unsafe_parents),
            },
            reason,
        )
    };
    Ok(match &o.state {
        PathState::Missing => vec![write("missing")],
        PathState::Present { meta, sha256 } => match meta.kind {
            Kind::Symlink => vec![write("is a symlink; replaced by a regular file")],
            Kind::Dir | Kind::Other => {
                return Err(Error::new(format!(
                    "{} is a directory or special file, not replacing it; hint: remove it by hand if the file should win",
                    f.path
                )));
            }
            Kind::File if *sha256 != fsutil::sha256_hex(bytes) => {
                vec![write("content differs")]
            }
            Kind::File => match meta_diff(meta, mode, o.want_uid, o.want_gid) {
                Some(why) => vec![Action::new(
                    Op::SetMeta {
                        path: f.path.clone(),
                        mode,
                        uid: o.want_uid,
                        gid: o.want_gid,
                        owner,
                        parents: parents(f.allow_unsafe_parents),
                    },
                    why,
                )],
                None => vec![],
            },
        },
    })
}

pub fn plan_dir(d: &Directory, o: &Observed) -> Result<Vec<Action>> {
    let mode = node_protocol::parse_mode(&d.mode)?;
    let owner = format!("{}:{}", d.owner, d.group);
    Ok(match &o.state {
        PathState::Missing => vec![Action::new(
            Op::CreateDir {
                path: d.path.clone(),
                mode,
                uid: o.want_uid,
                gid: o.want_gid,
                owner,
                parents: parents(d.allow_unsafe_parents),
            },
            "missing",
        )],
        PathState::Present { meta, .. } if meta.kind != Kind::Dir => {
            return Err(Error::new(format!(
                "{} exists but is not a directory; not replacing it",
                d.path
            )));
        }
        PathState::Present { meta, .. } => match meta_diff(meta, mode, o.want_uid, o.want_gid) {
            Some(why) => vec![Action::new(
                Op::SetMeta {
                    path: d.path.clone(),
                    mode,
                    uid: o.want_uid,
                    gid: o.want_gid,
                    owner,
                    parents: parents(d.allow_unsafe_parents),
                },
                why,
            )],
            None => vec![],
        },
    })
}

/// An agent-owned file (root:root 0644): its content, or `None` when absent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owned(pub Option<String>);

impl Owned {
    pub fn is_absent(&self) -> bool {
        self.0.is_none()
    }
}

impl fmt::Display for Owned {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            None => write!(f, "absent"),
            Some(c) => write!(f, "sha256:{}", &fsutil::sha256_hex(c.as_bytes())[..16]),
        }
    }
}

pub fn observe_owned(host: &Host, path: &str) -> Result<Owned> {
    Ok(Owned(host.read_text(path)?))
}

pub fn plan_owned(path: &str, want: Option<String>, o: &Owned) -> Vec<Action> {
    match (want, &o.0) {
        (None, None) => vec![],
        (None, Some(_)) => vec![Action::new(
            Op::RemoveFile { path: path.into() },
            "no items of its kind remain",
        )],
        (Some(w), Some(have)) if *have == w => vec![],
        (Some(w), have) => vec![Action::new(
            Op::WriteFile {
                path: path.into(),
                content: Bytes(w.into_bytes()),
                mode: 0o644,
                uid: 0,
                gid: 0,
                owner: "root:root".into(),
                parents: Parents::RootOnly,
            },
            if have.is_some() {
                "content differs"
            } else {
                "missing"
            },
        )],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::items::{PassCtx, execute};
    use std::os::unix::fs::PermissionsExt;

    fn host() -> (tempfile::TempDir, Host) {
        crate::host::scratch_host(&[
            (
                "/etc/passwd",
                b"root:x:0:0::/root:/bin/sh\nsvc:x:4242:4243::/:/bin/false\n",
                0o644,
            ),
            ("/etc/group", b"root:x:0:\nsvc:x:4243:\n", 0o644),
        ])
    }

    fn apply_all(h: &Host, actions: &[Action]) {
        let mut ctx = PassCtx::default();
        for a in actions {
            execute(h, &a.op, &mut ctx).unwrap();
        }
    }

    #[test]
    fn file_converges_and_then_is_quiet() {
        let (_t, h) = host();
        let f = File::text("/etc/app/app.conf", "a=1\n", "0640").owned_by("svc", "svc");
        let plan = plan_file(&f, &observe_file(&h, &f).unwrap()).unwrap();
        assert_eq!(plan.len(), 1);
        assert_eq!(
            plan[0].to_string(),
            "write /etc/app/app.conf (4 bytes, 0640 svc:svc): missing"
        );
        apply_all(&h, &plan);
        let o = observe_file(&h, &f).unwrap();
        assert!(
            plan_file(&f, &o).unwrap().is_empty(),
            "second pass must be quiet"
        );
        assert!(o.to_string().ends_with("0640 svc:svc"), "{o}");
        assert_eq!(
            std::fs::read(h.path("/etc/app/app.conf")).unwrap(),
            b"a=1\n"
        );

        // Drift: content edited by hand, then only mode changed.
        std::fs::write(h.path("/etc/app/app.conf"), "a=2\n").unwrap();
        let plan = plan_file(&f, &observe_file(&h, &f).unwrap()).unwrap();
        assert_eq!(plan[0].reason, "content differs");
        apply_all(&h, &plan);
        std::fs::set_permissions(
            h.path("/etc/app/app.conf"),
            std::fs::Permissions::from_mode(0o666),
        )
        .unwrap();
        let plan = plan_file(&f, &observe_file(&h, &f).unwrap()).unwrap();
        assert!(
            matches!(plan[0].op, Op::SetMeta { mode: 0o640, .. }),
            "{:?}",
            plan
        );
        assert_eq!(plan[0].reason, "mode is 0666");
        apply_all(&h, &plan);
        assert!(
            plan_file(&f, &observe_file(&h, &f).unwrap())
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn secret_files_get_exact_bytes_and_are_reported_without_a_digest() {
        let (_t, h) = host();
        let bytes = vec![0u8, 0xff, b'\n', 0x80, b'k'];
        let f = File::secret(
            "/etc/app/token",
            node_protocol::FileSecret::Value(node_protocol::SecretBytes::new(bytes.clone())),
            "0600",
        );
        apply_all(&h, &plan_file(&f, &observe_file(&h, &f).unwrap()).unwrap());
        assert_eq!(std::fs::read(h.path("/etc/app/token")).unwrap(), bytes);
        let o = observe_file(&h, &f).unwrap();
        assert!(plan_file(&f, &o).unwrap().is_empty());
        assert!(!o.to_string().contains("sha256"), "{o}");
        let named = File::secret(
            "/etc/app/token",
            node_protocol::FileSecret::Name("t".into()),
            "0600",
        );
        assert!(
            plan_file(&named, &o)
                .unwrap_err()
                .message()
                .contains("no content")
        );
    }

    #[test]
    fn file_refuses_to_replace_a_directory_and_unknown_owner_is_an_error() {
        let (_t, h) = host();
        std::fs::create_dir_all(h.path("/srv/x")).unwrap();
        let f = File::text("/srv/x", "y", "0644");
        assert!(
            plan_file(&f, &observe_file(&h, &f).unwrap())
                .unwrap_err()
                .message()
                .contains("not replacing")
        );
        let g = File {
            owner: "ghost".into(),
            ..f
        };
        assert!(
            observe_file(&h, &g)
                .unwrap_err()
                .message()
                .contains("user `ghost` does not exist")
        );
    }

    #[test]
    fn directory_created_and_fixed() {
        let (_t, h) = host();
        let d = Directory::new("/var/lib/app/data", "0700", "svc", "root");
        let plan = plan_dir(&d, &observe_dir(&h, &d).unwrap()).unwrap();
        assert!(matches!(plan[0].op, Op::CreateDir { .. }));
        apply_all(&h, &plan);
        let o = observe_dir(&h, &d).unwrap();
        assert!(plan_dir(&d, &o).unwrap().is_empty());
        assert_eq!(o.to_string(), "directory 0700 svc:root");
    }

    #[test]
    fn owned_file_follows_items_and_goes_away() {
        assert!(plan_owned("/x", None, &Owned(None)).is_empty());
        assert_eq!(
            plan_owned("/x", None, &Owned(Some("a".into())))[0].op,
            Op::RemoveFile { path: "/x".into() }
        );
        assert!(plan_owned("/x", Some("a".into()), &Owned(Some("a".into()))).is_empty());
        assert_eq!(
            plan_owned("/x", Some("b".into()), &Owned(Some("a".into())))[0].reason,
            "content differs"
        );
    }
}
