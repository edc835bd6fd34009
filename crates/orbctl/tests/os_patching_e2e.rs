//! End to end on real machines (root): OS patching of a pool of three Local machines. A test
//! package with two versions in the Local apt repository (built here with `dpkg-deb`), 1.0
//! installed on every machine; with the pool's maintenance window closed nothing is upgraded,
//! with it open the upgrade rolls out one machine at a time, each healthy before the next, and
//! the machines report no pending update afterwards.

mod common;

use common::e2e::*;
use common::local_orb::*;
use common::*;
use orb_machines::{Group, Host, Suite};
use orbiter::rollout::{Phase, RolloutRecord, RolloutState};
use orbiter::state;
use orbiter::state::OrbCurrent;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const RECORD: &str = "orbiter/rollouts/loc.web.yml";
const PACKAGE: &str = "orbiter-patchdemo";

/// `HH:MM` of now (UTC) plus `hours`.
fn clock(hours: i64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let minutes = ((now / 60 + hours * 60) % 1440 + 1440) % 1440;
    format!("{:02}:{:02}", minutes / 60, minutes % 60)
}

/// The Orb: pool `web` of three, OS updates (all) every hour inside a window from `from`
/// to `to` (UTC), no reboot.
fn orb_yaml(group: &str, from: &str, to: &str) -> String {
    format!(
        "kind: Orb
version: v1
providers:
  loc:
    kind: LocalProvider
    version: v1
    spec:
      group: {group}
      pools:
        web:
          nodes: 3
rollout:
  default:
    settle: 3s
    canary: 1
    maxunavailable: \"1\"
    deadline: 3m
    window:
      from: \"{from}\"
      to: \"{to}\"
    os:
      updates: all
      every: 1h
      reboot: never
"
    )
}

/// Builds `orbiter-patchdemo_<version>_all.deb` under `dir` with dpkg-deb.
fn build_deb(dir: &Path, version: &str) -> PathBuf {
    let root = dir.join(format!("pkg-{version}"));
    std::fs::create_dir_all(root.join("DEBIAN")).unwrap();
    std::fs::create_dir_all(root.join("usr/share/orbiter-patchdemo")).unwrap();
    std::fs::write(
        root.join("DEBIAN/control"),
        format!(
            "Package: {PACKAGE}\nVersion: {version}\nArchitecture: all\nMaintainer: Orbiter tests <tests@orbiter.invalid>\nDescription: a package with two versions, for OS patching tests\n"
        ),
    )
    .unwrap();
    std::fs::write(
        root.join("usr/share/orbiter-patchdemo/version"),
        format!("{version}\n"),
    )
    .unwrap();
    let deb = dir.join(format!("{PACKAGE}_{version}_all.deb"));
    let out = Command::new("dpkg-deb")
        .args(["--root-owner-group", "--build"])
        .arg(&root)
        .arg(&deb)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "dpkg-deb: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    deb
}

fn git(repo: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(args)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn record(repo: &Path) -> Option<RolloutRecord> {
    state::parse(&git(repo, &["show", &format!("HEAD:{RECORD}")]), RECORD).ok()
}

fn current(repo: &Path) -> OrbCurrent {
    state::parse(&read_from(repo, state::CURRENT), state::CURRENT).unwrap()
}

#[test]
fn os_updates_roll_out_one_machine_at_a_time_inside_the_window_only() {
    let host = Host::new().expect("this test needs root and the orb-machines host tools");
    let pid = std::process::id();
    let group = format!("os{pid}");
    let (p, repo) = (Person::new(), orb_testsupport::bare_repo());
    let _cleanup = Cleanup {
        groups: vec![group.clone()],
        person: Some(p.home.path().to_owned()),
    };
    let bins = Binaries::snapshot();
    p.ok(&[
        "configure",
        "--repourl",
        &format!("file://{}", repo.path.display()),
    ]);
    // Closed: the window opens in two hours.
    let (closed_from, closed_to) = (clock(2), clock(3));
    human_commit(
        &repo.path,
        "orbiter.yml",
        &orb_yaml(&group, &closed_from, &closed_to),
        "OS updates in a window",
    );
    let listen = format!("127.0.0.1:{}", 20000 + (pid % 20000) as u16);
    let out = takeoff(&p, &bins, "900", &listen);
    assert!(
        out.status.success(),
        "takeoff failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Version 1.0 installed by hand everywhere (not through Orbiter: a package Orbiter pins is
    // held and never upgraded), then 1.1 appears in the repository.
    let local = Group::attach(&host, &group).unwrap();
    let debs = tempfile::tempdir().unwrap();
    let v1 = build_deb(debs.path(), "1.0");
    local.add_deb_files(Suite::Bookworm, &[&v1]).unwrap();
    let machines: Vec<_> = ["web-1", "web-2", "web-3"]
        .iter()
        .map(|id| local.machine(id).unwrap())
        .collect();
    let version = |m: &orb_machines::Machine| {
        sh(
            m,
            &format!("dpkg-query -W -f '${{Version}}' {PACKAGE} 2>/dev/null"),
        )
    };
    for m in &machines {
        sh(
            m,
            &format!(
                "apt-get update -q >/dev/null 2>&1; DEBIAN_FRONTEND=noninteractive apt-get install -y -q {PACKAGE}=1.0 >/dev/null 2>&1"
            ),
        );
        assert_eq!(version(m), "1.0");
    }
    let v11 = build_deb(debs.path(), "1.1");
    local.add_deb_files(Suite::Bookworm, &[&v11]).unwrap();

    // Outside the window: nothing is requested, nothing upgraded.
    std::thread::sleep(Duration::from_secs(20));
    for m in &machines {
        assert_eq!(version(m), "1.0", "upgraded outside the window");
    }
    assert!(
        record(&repo.path).is_none_or(|r| r.os_request().is_none()),
        "an OS update was requested outside the window: {:?}",
        record(&repo.path)
    );

    // The window opens: one machine at a time.
    let before = record(&repo.path).map(|r| r.revision);
    let orb = read_from(&repo.path, "orbiter.yml");
    let open = orb
        .replace(
            &format!("from: \"{closed_from}\""),
            &format!("from: \"{}\"", clock(-1)),
        )
        .replace(
            &format!("to: \"{closed_to}\""),
            &format!("to: \"{}\"", clock(1)),
        );
    assert_ne!(open, orb, "the window was not found in orbiter.yml");
    human_commit(&repo.path, "orbiter.yml", &open, "Open the window");
    wait_for("1.1 everywhere", Duration::from_secs(400), || {
        machines.iter().all(|m| version(m) == "1.1")
    });
    wait_for("the rollout done", Duration::from_secs(120), || {
        record(&repo.path)
            .is_some_and(|r| r.state == RolloutState::Done && Some(&r.revision) != before.as_ref())
    });
    let target = record(&repo.path).unwrap().revision;
    let history: Vec<RolloutRecord> =
        git(&repo.path, &["rev-list", "--reverse", "HEAD", "--", RECORD])
            .lines()
            .filter_map(|c| {
                state::parse::<RolloutRecord>(
                    &git(&repo.path, &["show", &format!("{c}:{RECORD}")]),
                    RECORD,
                )
                .ok()
            })
            .filter(|r| r.revision == target)
            .collect();
    assert!(
        history.len() >= 3,
        "every wave committed: {}",
        history.len()
    );
    for r in &history {
        let changing = r
            .machines
            .values()
            .filter(|m| m.revision == target && m.phase == Phase::Changing)
            .count();
        assert!(changing <= 1, "two machines patched at once: {r:?}");
    }
    assert_eq!(history.last().unwrap().waves_done, 3);
    wait_for(
        "no pending update reported",
        Duration::from_secs(60),
        || {
            current(&repo.path)
                .machines
                .values()
                .all(|m| m.pending_updates == Some(0))
        },
    );
}
