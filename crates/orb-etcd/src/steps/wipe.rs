//! The wipe of a former member, checked on the victim itself before anything is deleted: the
//! data directory's WAL names the member and cluster the planner expects ([`crate::wal`]),
//! the member on the machine (if it still runs) does not list itself, and a majority of the
//! cluster's voters, asked one by one from the victim, answer for that cluster and list no
//! member with that id. Any doubt refuses with exit code 3 and the reason;
//! the unit is only stopped after the checks passed, so a refused wipe leaves a running
//! member running.

use super::quote;
use crate::items::paths;
use crate::observe::{etcdctl, etcdctl_at, hex_id};
use serde::{Deserialize, Serialize};

/// What must hold before a wipe deletes data.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct WipeCheck {
    /// The recorded cluster id: the data must belong to this cluster, and every member asked
    /// must answer for it.
    pub cluster_id: u64,
    /// The removed member's id, when the record knows it: the data must be this member's.
    /// None: data of a former member the record does not know (found on a machine about to
    /// join); its id is taken from the data and must not be listed either.
    pub member_id: Option<u64>,
    /// Client URLs of the voters of the agreed member list; a majority must answer.
    pub endpoints: Vec<String>,
}

/// Exit code of a refused wipe.
pub const REFUSED: i32 = 3;

/// The wipe command; `check: None` wipes unchecked (teardown, where the cluster goes as a
/// whole).
pub fn command(cluster: &str, check: Option<&WipeCheck>) -> String {
    let unit = paths::unit(cluster);
    let data = paths::data(cluster);
    let d = quote(&data);
    let mut s = String::from("set -u\n");
    if let Some(c) = check {
        let refuse = |why: &str| {
            format!("{{ echo \"refusing to wipe {data}: {why}\" >&2; exit {REFUSED}; }}")
        };
        s.push_str(&format!(
            "if [ -d {d}/member ]; then\n\
ids=$({wal})\n\
case \"$ids\" in none*) {unreadable};; esac\n\
set -- $ids; node=$1; cid=$2\n\
[ \"$cid\" = {cid} ] || {other_cluster}\n",
            wal = crate::wal::read_ids_snippet(&data),
            unreadable = refuse(
                "cannot read whose data it is (${ids#none }); wipe it by hand if it is not needed"
            ),
            cid = quote(&hex_id(c.cluster_id)),
            other_cluster = refuse(&format!(
                "it holds data of cluster $cid, not of cluster {}",
                hex_id(c.cluster_id)
            )),
        ));
        if let Some(m) = c.member_id {
            s.push_str(&format!(
                "[ \"$node\" = {id} ] || {}\n",
                refuse(&format!(
                    "it holds data of member $node, not of the removed member {}",
                    hex_id(m)
                )),
                id = quote(&hex_id(m)),
            ));
        }
        // The member on this machine, if it still runs, must not be a member either.
        s.push_str(&format!(
            "if t=$({e} member list 2>/dev/null) && printf '%s\\n' \"$t\" | grep -q \"^$node,\"; then {local}; fi\n",
            e = etcdctl(cluster),
            local = refuse("the member on this machine still runs and is listed as member $node"),
        ));
        // Asked from here, one member at a time: a single answer could come from anyone.
        let n = c.endpoints.len();
        s.push_str(&format!(
            "answered=0\n\
for ep in {eps}; do\n\
  j=$({e} -w json member list 2>/dev/null) || continue\n\
  case \"$j\" in *'\"cluster_id\":{cid_dec},'*) ;; *) {foreign};; esac\n\
  t=$({e} member list 2>/dev/null) || continue\n\
  if printf '%s\\n' \"$t\" | grep -q \"^$node,\"; then {listed}; fi\n\
  answered=$((answered+1))\n\
done\n\
[ $answered -ge {need} ] || {few}\n\
fi\n",
            eps = c
                .endpoints
                .iter()
                .map(|e| quote(e))
                .collect::<Vec<_>>()
                .join(" "),
            e = etcdctl_at(cluster, "\"$ep\""),
            cid_dec = c.cluster_id,
            foreign = refuse("$ep answers for another cluster"),
            listed = refuse("$ep still lists member $node"),
            // A majority of them (etcd's quorum of `n`).
            need = n / 2 + 1,
            few = refuse(&format!(
                "only $answered of {n} members answered to confirm that member $node is gone"
            )),
        ));
    }
    s.push_str(&format!(
        "systemctl disable --now {unit} 2>/dev/null || true\n\
if systemctl is-active --quiet {unit}; then echo '{unit} is still running; not wiping' >&2; exit 1; fi\n\
rm -rf {d} {dir}\necho '@@wiped'\n",
        dir = quote(&paths::dir(cluster)),
    ));
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;
    use std::process::Command;

    /// Runs the wipe against `root` (data and config moved there) with fake `etcdctl` and
    /// `systemctl` that answer `lists` (member list text) for every endpoint.
    fn run(root: &Path, check: &WipeCheck, json: &str, simple: &str) -> (i32, String) {
        run_local(root, check, json, simple, None)
    }

    /// `local`: what the member on the machine itself answers (none: it does not run).
    fn run_local(
        root: &Path,
        check: &WipeCheck,
        json: &str,
        simple: &str,
        local: Option<&str>,
    ) -> (i32, String) {
        let bin = root.join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        let fake = |name: &str, body: &str| {
            let p = bin.join(name);
            std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
            Command::new("chmod").arg("+x").arg(&p).status().unwrap();
        };
        fake("systemctl", "exit 1");
        fake(
            "etcdctl",
            &format!(
                "case \"$*\" in *127.0.0.1*) {l};; *json*) printf '%s\\n' '{json}';; *) printf '%s\\n' '{simple}';; esac",
                l = local.map_or("exit 1".to_owned(), |t| format!("printf '%s\\n' '{t}'")),
            ),
        );
        let data = root.join("data");
        let cmd = command("kv", Some(check))
            .replace(&paths::data("kv"), data.to_str().unwrap())
            .replace(&paths::dir("kv"), root.join("etc").to_str().unwrap());
        let out = Command::new("sh")
            .arg("-c")
            .arg(&cmd)
            .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
            .output()
            .unwrap();
        let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&out.stderr));
        (out.status.code().unwrap_or(-1), text)
    }

    fn with_data(member: u64, cluster: u64) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let wal = dir.path().join("data/member/wal");
        std::fs::create_dir_all(&wal).unwrap();
        std::fs::write(
            wal.join("0000000000000000-0000000000000000.wal"),
            crate::wal::tests::segment(member, cluster),
        )
        .unwrap();
        std::fs::create_dir_all(dir.path().join("etc")).unwrap();
        dir
    }

    const VICTIM: u64 = 0x9d3a_0000_0000_00f5;
    const OTHER: u64 = 0x8e9e_05c5_2164_694d;
    const CLUSTER: u64 = 0xcdf8_1819_4e3a_8c32;

    fn check(member: Option<u64>) -> WipeCheck {
        WipeCheck {
            cluster_id: CLUSTER,
            member_id: member,
            endpoints: vec![
                "https://10.0.0.1:2379".into(),
                "https://10.0.0.2:2379".into(),
            ],
        }
    }

    fn json() -> String {
        format!("{{\"header\":{{\"cluster_id\":{CLUSTER},\"member_id\":{OTHER}}},\"members\":[]}}")
    }

    #[test]
    fn wipes_only_the_expected_member_once_the_cluster_confirms_it_is_gone() {
        let gone =
            format!("{OTHER:x}, started, a, https://10.0.0.1:2380, https://10.0.0.1:2379, false");
        let d = with_data(VICTIM, CLUSTER);
        let (rc, out) = run(d.path(), &check(Some(VICTIM)), &json(), &gone);
        assert_eq!(rc, 0, "{out}");
        assert!(out.contains("@@wiped"));
        assert!(!d.path().join("data").exists() && !d.path().join("etc").exists());
        // Data of an unknown former member: its own id from the WAL, not listed either.
        let d = with_data(VICTIM, CLUSTER);
        assert_eq!(run(d.path(), &check(None), &json(), &gone).0, 0);
    }

    #[test]
    fn refuses_and_keeps_everything_when_anything_is_off() {
        let still = format!(
            "{OTHER:x}, started, a, https://10.0.0.1:2380, https://10.0.0.1:2379, false\n{VICTIM:x}, started, b, https://10.0.0.5:2380, https://10.0.0.5:2379, false"
        );
        let gone =
            format!("{OTHER:x}, started, a, https://10.0.0.1:2380, https://10.0.0.1:2379, false");
        for (data, chk, json, simple, why) in [
            (
                (VICTIM, CLUSTER),
                check(Some(VICTIM)),
                json(),
                still.clone(),
                "still lists member 9d3a",
            ),
            (
                (OTHER, CLUSTER),
                check(Some(VICTIM)),
                json(),
                gone.clone(),
                "data of member 8e9e05c52164694d, not of the removed member 9d3a",
            ),
            (
                (VICTIM, 0x77),
                check(Some(VICTIM)),
                json(),
                gone.clone(),
                "data of cluster 77, not of cluster cdf8",
            ),
            (
                (VICTIM, CLUSTER),
                check(Some(VICTIM)),
                json().replace(&CLUSTER.to_string(), "5"),
                gone.clone(),
                "answers for another cluster",
            ),
            (
                (VICTIM, CLUSTER),
                WipeCheck {
                    endpoints: vec![
                        "https://10.0.0.1:2379".into(),
                        "https://10.0.0.2:2379".into(),
                        "https://10.0.0.3:2379".into(),
                        "https://10.0.0.4:2379".into(),
                    ],
                    ..check(Some(VICTIM))
                },
                "x".into(),
                gone.clone(),
                "answers for another cluster",
            ),
        ] {
            let d = with_data(data.0, data.1);
            let (rc, out) = run(d.path(), &chk, &json, &simple);
            assert_eq!(rc, REFUSED, "{why}: {out}");
            assert!(out.contains(why), "{why}: {out}");
            assert!(
                d.path().join("data/member/wal").exists(),
                "{why}: data kept"
            );
        }
        // The member on the victim still runs and lists itself.
        let d = with_data(VICTIM, CLUSTER);
        let (rc, out) = run_local(d.path(), &check(Some(VICTIM)), &json(), &gone, Some(&still));
        assert_eq!(rc, REFUSED, "{out}");
        assert!(
            out.contains("still runs and is listed as member 9d3a"),
            "{out}"
        );
        // Nobody answers: not confirmed.
        let d = with_data(VICTIM, CLUSTER);
        let bin = d.path().join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        let (rc, out) = {
            let cmd = command("kv", Some(&check(Some(VICTIM))))
                .replace(&paths::data("kv"), d.path().join("data").to_str().unwrap());
            std::fs::write(bin.join("etcdctl"), "#!/bin/sh\nexit 1\n").unwrap();
            Command::new("chmod")
                .arg("+x")
                .arg(bin.join("etcdctl"))
                .status()
                .unwrap();
            let o = Command::new("sh")
                .arg("-c")
                .arg(&cmd)
                .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
                .output()
                .unwrap();
            (
                o.status.code().unwrap(),
                String::from_utf8_lossy(&o.stderr).into_owned(),
            )
        };
        assert_eq!(rc, REFUSED, "{out}");
        assert!(out.contains("only 0 of 2 members answered"), "{out}");
        // Unreadable data: refused with the reason.
        let d = with_data(VICTIM, CLUSTER);
        std::fs::write(
            d.path()
                .join("data/member/wal/0000000000000000-0000000000000000.wal"),
            b"junk",
        )
        .unwrap();
        let (rc, out) = run(d.path(), &check(Some(VICTIM)), &json(), &gone);
        assert_eq!(rc, REFUSED, "{out}");
        assert!(out.contains("cannot read whose data it is"), "{out}");
    }
}
