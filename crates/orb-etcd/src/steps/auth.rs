//! etcd authentication by certificate: with `client-cert-auth` and auth enabled, etcd takes a
//! client certificate's CN as the user name. The step creates the users and roles (each one
//! only if missing, so it is safe to rerun after a crash), then `auth enable` (a no-op when
//! enabled):
//!
//! | user | certificate | role |
//! |---|---|---|
//! | `root` | none issued | etcd's `root` (etcd requires it before `auth enable`) |
//! | `orbiter` | Orbiter's own, on every member machine | `root` |
//! | `person` | `orbctl readsecret <cluster>.clientcert/.clientkey` | `person`: readwrite on every key; no auth, membership or maintenance operations |
//! | each `users:` entry | `<cluster>.users.<name>.cert/.key` | `<name>`: readwrite on its `prefix` only |
//!
//! A user dropped from the spec is deleted with its role (its certificate then names no user
//! and is refused); a changed prefix is granted first, then the old one revoked.

use super::quote;
use crate::observe::etcdctl;
use serde::{Deserialize, Serialize};

/// One etcd user besides `root`, `orbiter` and `person`: its role grants readwrite on `prefix`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[serde(deny_unknown_fields)]
pub struct UserGrant {
    pub name: String,
    pub prefix: String,
}

/// The users Orbiter manages itself; `users:` entries cannot take these names.
pub const RESERVED_USERS: [&str; 3] = ["root", "orbiter", "person"];

/// The idempotent setup of users, roles and `auth enable`. `previous` is what the last
/// successful run set up (its users that `users` no longer has are deleted).
pub fn command(cluster: &str, users: &[UserGrant], previous: &[UserGrant]) -> String {
    let e = etcdctl(cluster);
    let mut s = format!(
        "set -u\nE=\"env {e}\"\n\
fail() {{ printf '%s\\n' \"$*\" >&2; exit 1; }}\n\
user() {{ $E user get \"$1\" >/dev/null 2>&1 && return 0; out=$($E user add \"$1\" --no-password 2>&1) || case \"$out\" in *'already exists'*) ;; *) fail \"user add $1: $out\";; esac; }}\n\
role() {{ $E role get \"$1\" >/dev/null 2>&1 && return 0; out=$($E role add \"$1\" 2>&1) || case \"$out\" in *'already exists'*) ;; *) fail \"role add $1: $out\";; esac; }}\n\
grant() {{ out=$($E user grant-role \"$1\" \"$2\" 2>&1) || fail \"user grant-role $1 $2: $out\"; }}\n\
perm() {{ out=$($E role grant-permission \"$1\" --prefix=true readwrite \"$2\" 2>&1) || fail \"role grant-permission $1 $2: $out\"; }}\n\
revoke() {{ out=$($E role revoke-permission \"$1\" --prefix=true \"$2\" 2>&1) || case \"$out\" in *'not granted'*|*'not found'*) ;; *) fail \"role revoke-permission $1 $2: $out\";; esac; }}\n\
gone() {{ if $E user get \"$1\" >/dev/null 2>&1; then out=$($E user delete \"$1\" 2>&1) || fail \"user delete $1: $out\"; fi; \
if $E role get \"$1\" >/dev/null 2>&1; then out=$($E role delete \"$1\" 2>&1) || fail \"role delete $1: $out\"; fi; }}\n\
user root\ngrant root root\nuser orbiter\ngrant orbiter root\n\
role person\nperm person ''\nuser person\ngrant person person\n"
    );
    for u in users {
        let (n, p) = (quote(&u.name), quote(&u.prefix));
        s.push_str(&format!("role {n}\nperm {n} {p}\n"));
        for old in previous
            .iter()
            .filter(|o| o.name == u.name && o.prefix != u.prefix)
        {
            s.push_str(&format!("revoke {n} {}\n", quote(&old.prefix)));
        }
        s.push_str(&format!("user {n}\ngrant {n} {n}\n"));
    }
    for old in previous
        .iter()
        .filter(|o| !users.iter().any(|u| u.name == o.name))
    {
        s.push_str(&format!("gone {}\n", quote(&old.name)));
    }
    s.push_str("out=$($E auth enable 2>&1) || fail \"auth enable: $out\"\necho '@@auth enabled'\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_before_revoking_and_deletes_dropped_users() {
        let g = |n: &str, p: &str| UserGrant {
            name: n.into(),
            prefix: p.into(),
        };
        let c = command(
            "kv",
            &[g("app", "/app2/")],
            &[g("app", "/app/"), g("old", "/old/")],
        );
        let grant = c.find("perm 'app' '/app2/'").unwrap();
        let revoke = c.find("revoke 'app' '/app/'").unwrap();
        assert!(grant < revoke, "{c}");
        assert!(c.contains("gone 'old'"), "{c}");
        assert!(!c.contains("gone 'app'"), "{c}");
        assert!(c.find("grant orbiter root").unwrap() < c.find("auth enable").unwrap());
        // Valid POSIX sh.
        let out = std::process::Command::new("sh")
            .args(["-n", "-c", &c])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
