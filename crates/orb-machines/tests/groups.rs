//! Several groups at once (root): distinct subnets and bridges, both usable, names in use and
//! unknown names rejected clearly, machines destroyed singly, and the CLI binary on top.

mod common;

use common::{assert_nothing_left, footprint, host, keypair, ok, unique, up, up_with};
use orb_machines::{Error, Group, GroupSpec};
use std::process::Command;

#[test]
fn two_groups_at_once_do_not_collide() {
    let host = host();
    host.base_image().expect("base image");
    let key = keypair();
    let (a, b) = (unique("ga"), unique("gb"));
    // Both groups come up concurrently: subnet choice and bridge creation race here.
    let (ga, gb) = std::thread::scope(|s| {
        let ta = s.spawn(|| up_with(&host, &a, &key.public, true));
        let tb = s.spawn(|| up(&host, &b, &key.public));
        (ta.join().unwrap(), tb.join().unwrap())
    });
    assert_ne!(ga.group().subnet(), gb.group().subnet());
    assert_ne!(ga.group().bridge(), gb.group().bridge());
    // Same machine id in both groups is fine.
    let (ma, mb) = std::thread::scope(|s| {
        let ta = s.spawn(|| ga.group().create_machine("m1").expect("machine in a"));
        let tb = s.spawn(|| gb.group().create_machine("m1").expect("machine in b"));
        (ta.join().unwrap(), tb.join().unwrap())
    });
    assert_ne!(ma.ip(), mb.ip());
    assert_eq!(
        ok(ma.ssh(&key.private, "hostname").unwrap(), "ssh a").trim(),
        "m1"
    );
    assert_eq!(
        ok(mb.ssh(&key.private, "hostname").unwrap(), "ssh b").trim(),
        "m1"
    );

    // Only the net_admin group's machines may manage their own addresses (keepalived).
    let add_vip = "sudo ip addr add 192.0.2.200/32 dev lo";
    ok(
        ma.ssh(&key.private, add_vip).unwrap(),
        "CAP_NET_ADMIN in group a",
    );
    let denied = mb.ssh(&key.private, add_vip).unwrap();
    assert!(!denied.status.success(), "group b has no CAP_NET_ADMIN");

    // A name in use is refused and the existing group is untouched.
    let e = Group::up(
        &host,
        &GroupSpec {
            name: a.clone(),
            pubkey: key.public.clone(),
            net_admin: false,
        },
    )
    .unwrap_err();
    assert!(matches!(e, Error::NameInUse { .. }), "{e}");
    assert!(e.to_string().contains("already exists"), "{e}");
    assert_eq!(ga.group().machines().unwrap().len(), 1);

    // Re-attaching finds the same group; a duplicate machine id is refused.
    let again = Group::attach(&host, &a).unwrap();
    assert_eq!(again.subnet(), ga.group().subnet());
    assert!(matches!(
        again.create_machine("m1").unwrap_err(),
        Error::MachineExists { .. }
    ));

    // The CLI sees it too.
    let bin = env!("CARGO_BIN_EXE_orb-machines");
    let out = ok(
        Command::new(bin)
            .args(["list", "--name", &a, "-o", "json"])
            .output()
            .unwrap(),
        "orb-machines list",
    );
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v[0]["name"], "m1");
    assert_eq!(v[0]["hostname"], "m1");
    assert_eq!(v[0]["ip"], ma.ip().to_string());
    assert_eq!(v[0]["state"], "running");

    // Destroying one machine leaves the other group alone.
    let fb = footprint(gb.group());
    gb.group().destroy_machine("m1").unwrap();
    assert!(gb.group().machines().unwrap().is_empty());
    assert!(
        !std::path::Path::new("/run/netns")
            .join(&fb.netns[0])
            .exists()
    );
    assert_eq!(ok(ma.ssh(&key.private, "true").unwrap(), "a still up"), "");

    let fa = footprint(ga.group());
    drop(ga);
    drop(gb);
    assert_nothing_left(&fa);
    assert_nothing_left(&fb);
}

#[test]
fn unknown_names_and_bad_input_are_clear() {
    let host = host();
    let e = Group::attach(&host, &unique("nosuch"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("no group named") && e.contains("local up"),
        "{e}"
    );
    let e = Group::attach(&host, "Bad_Name").unwrap_err().to_string();
    assert!(e.contains("invalid group name"), "{e}");
    let spec = GroupSpec {
        name: unique("badkey"),
        pubkey: "not a key".into(),
        net_admin: false,
    };
    let e = Group::up(&host, &spec).unwrap_err().to_string();
    assert!(e.contains("invalid SSH public key"), "{e}");
    assert!(!host.state_root().join("groups").join(&spec.name).exists());
}

#[test]
fn cli_refuses_to_run_without_root() {
    let bin = env!("CARGO_BIN_EXE_orb-machines");
    let out = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            bin,
            "list",
            "--name",
            "x",
        ])
        .output()
        .expect("setpriv (util-linux)");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("must run as root") && err.contains("effective uid is 65534"),
        "{err}"
    );
}
