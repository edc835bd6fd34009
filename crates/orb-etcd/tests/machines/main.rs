//! The crate's items and steps on real machines (systemd-nspawn Debian bookworm from
//! orb-machines, real node-agent, real etcd 3.4.23 and 3.5.16 from the group's apt
//! repository), driven by hand the way Orbiter will: desired.yml written per machine, step
//! commands run as root on their machine. Needs root (fails, not skips, without it) and the
//! node-agent binary (`cargo build -p node-agent`, or `ORBITER_NODE_AGENT`).
//!
//! One test, run in sequence, because machines and package installs are costly. This file holds
//! the scenario in its order and the load client's time windows; each phase lives in a module
//! named for what it shows: `membership` (bootstrap, scale out, leadership moves, removal),
//! `upgrade`, `observation` (the parser on real output), `backup` (snapshots, restore drill) and
//! `load_client`, on top of `helpers` (files, commands, steps, waiting) and `lab` (the cluster's
//! certificates and each member's items).

mod access;
mod backup;
mod helpers;
mod lab;
mod load_client;
mod membership;
mod observation;
mod probe;
mod revocation;
mod rotation;
mod upgrade;

use helpers::{agent_binary, log, put, put_key, sh_ok};
use lab::{CLUSTER, Lab, NEW, OLD};
use load_client::mark;
use orb_etcd::items::InitialState;
use orb_machines::{GroupGuard, GroupSpec, Host, Suite};
use std::process::Command;
use std::time::Instant;

#[test]
fn items_and_steps_on_real_machines() {
    let t0 = Instant::now();
    // Fails (never skips) without root: CI runs the machine tests as root.
    let host = Host::new().expect("this test needs root and the orb-machines host tools");
    let bin = std::fs::read(agent_binary()).unwrap();
    host.base_image().expect("base image");
    let name = format!("oe-{}", std::process::id());
    let keydir = tempfile::tempdir().unwrap();
    let key = keydir.path().join("id");
    assert!(
        Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", ""])
            .arg("-f")
            .arg(&key)
            .status()
            .unwrap()
            .success()
    );
    let pubkey = std::fs::read_to_string(key.with_extension("pub")).unwrap();
    let guard = GroupGuard::up(
        &host,
        &GroupSpec {
            name: name.clone(),
            pubkey,
            net_admin: false,
        },
    )
    .expect("group up");
    let g = guard.group();
    g.add_packages(Suite::Bookworm, &["etcd-server", "etcd-client", "curl"])
        .expect("bookworm packages");
    g.add_packages(Suite::Trixie, &["etcd-server", "etcd-client"])
        .expect("trixie packages");
    let ms = g
        .create_machines(&["e1", "e2", "e3", "e4", "e5", "ld"])
        .expect("machines");
    log(t0, "machines up");

    // node-agent on every machine, with its own install script.
    let sha = node_agent::fsutil::sha256_hex(&bin);
    let script = node_protocol::install::install_script(&sha, node_agent::VERSION);
    std::thread::scope(|s| {
        for m in &ms {
            let (bin, script) = (&bin, &script);
            s.spawn(move || {
                put(m, node_protocol::paths::UPLOAD, bin);
                sh_ok(m, script);
            });
        }
    });
    log(t0, "node-agent installed");

    // The bundle as Orbiter issues it: client CA, peer CA, users' certificates, empty CRL.
    let mut lab = Lab::new(&ms);

    // --- Bootstrap 3 with TLS.
    let first = [0, 1, 2];
    membership::bootstrap(t0, &ms, &lab, first);
    access::peers_take_only_peer_certificates(t0, &ms, &lab);

    // --- A load client on the sixth machine writes through every operation below.
    let ld = &ms[5];
    let endpoints = load_client::start(ld, &ms, &lab);
    let mut windows: Vec<(&str, u64, u64)> = Vec::new();
    let mut t = mark(ld);

    // --- Scale out to 5, one member at a time.
    let mut members = membership::scale_out(t0, &ms, &lab, first);
    let t1 = mark(ld);
    windows.push(("scale_out_3_to_5", t, t1));
    t = t1;
    let out = sh_ok(
        &ms[4],
        &format!(
            "{} get before-scale --print-value-only",
            orb_etcd::observe::etcdctl(CLUSTER)
        ),
    );
    assert_eq!(out.trim(), "v");

    // --- Authentication by certificate with roles (the load client is Orbiter's user).
    access::authentication(t0, &ms, &lab);
    let t1 = mark(ld);
    windows.push(("auth_enable", t, t1));
    t = t1;

    // --- Move leadership to e5, then remove e5 (the leader case: move away first); checked
    // wipes; e5's peer certificate revoked.
    let mut remaining: Vec<revocation::Setup> = vec![
        (0, OLD, first.to_vec(), InitialState::New),
        (1, OLD, first.to_vec(), InitialState::New),
        (2, OLD, first.to_vec(), InitialState::New),
        (3, OLD, vec![0, 1, 2, 3], InitialState::Existing),
    ];
    membership::move_leader_and_remove(t0, &ms, &mut lab, &remaining);
    let t1 = mark(ld);
    windows.push(("leader_moves_remove_revoke", t, t1));
    t = t1;

    // --- Rolling upgrade of one member 3.4.23 -> 3.5.16 (its config names the version).
    put_key(&ms[0], "before-upgrade");
    members.retain(|&i| i != 4);
    upgrade::one_member(t0, &ms, &mut lab, first);
    remaining[1].1 = NEW;
    let t1 = mark(ld);
    windows.push(("upgrade_one_member", t, t1));
    t = t1;

    // --- Certificate rotation of the four members (3.4 and 3.5) under the writing client.
    let phases = rotation::rotate(t0, &ms, &mut lab, ld, &remaining);
    windows.push(("rotate_certs", t, mark(ld)));
    windows.extend(phases);
    let (log_text, all) = load_client::check(ld, &endpoints, &windows);

    // --- The observation parser on real 3.4 and 3.5 output.
    let v34 = observation::on_both_versions(&ms);

    // --- A snapshot through a member, and pruning.
    backup::snapshots(t0, &ms);

    // --- Restore drill: the newest snapshot becomes a fresh one-member cluster on e5 (wiped
    // above), which must serve every key the load client had acknowledged.
    backup::restore_drill(t0, &ms, &mut lab, &all, &log_text, &v34);

    // --- A stopped member: observed as not running with the reason, never an error.
    observation::stopped_member(t0, &ms);
}
