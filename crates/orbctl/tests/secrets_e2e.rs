//! End to end on real machines (root): secrets reach machines and never Git, and the masterkey
//! rotates under a running Orb. Three Static machines with the Orbiter inside the Orb (its
//! repository on an SSH git server), an EtcdCluster of three, and NodeSoftware whose file takes
//! its content from a secret. Checked: no private key and no secret value anywhere in the
//! repository's history; the exact bytes and mode on every machine; a hand edit corrected; a
//! new value rolled out; a rotation with a damaged `orbiter/secrets.yml` refused with nothing
//! pushed; a rotation in one commit that the running Orbiter follows without a takeoff.

mod common;

use base64::Engine as _;
use common::e2e::*;
use common::static_lab::StaticLab;
use orbiter::state;
use std::time::Duration;

const ETCD: &str = "3.4.23-4+b4";

fn orb_yaml(lab: &StaticLab, motd: &str) -> String {
    format!(
        "kind: Orb
version: v1
{}rollout:
  default:
    settle: 3s
clusters:
  kv:
    kind: EtcdCluster
    version: v1
    spec:
      provider: lab
      pool: machines
      nodes: 3
      version: {ETCD}
software:
  app:
    kind: NodeSoftware
    version: v1
    spec:
      pools: [lab.machines]
      items:
        - file: {{path: /etc/app-token, secret: apitoken, mode: \"0640\"}}
        - file: {{path: /etc/motd, content: \"{motd}\\n\"}}
",
        lab.provider_yaml()
    )
}

/// The bytes of a file on a machine, as root.
fn file_bytes(m: &orb_machines::Machine, path: &str) -> Vec<u8> {
    m.exec(&["cat", path]).unwrap().stdout
}

fn healthy_members(lab: &StaticLab) -> usize {
    lab.human
        .read("orbiter/clusters/kv/current.yml")
        .map_or(0, |r| r.matches("healthy: true").count())
}

/// Flips one character of the ciphertext sealed for `path` in an `orbiter/secrets.yml`.
fn damage(text: &str, path: &str) -> String {
    let at = text.find(&format!("path: {path}")).unwrap();
    let v = at + text[at..].find("value: ").unwrap() + "value: ".len() + 10;
    let mut b = text.as_bytes().to_vec();
    b[v] = if b[v] == b'A' { b'B' } else { b'A' };
    String::from_utf8(b).unwrap()
}

#[test]
fn secrets_reach_machines_never_git_and_the_masterkey_rotates_under_a_running_orb() {
    let lab = StaticLab::up(
        &format!("se{}", std::process::id()),
        &["etcd-server", "etcd-client"],
    );
    let (p, human, machines) = (&lab.person, &lab.human, &lab.machines);
    human.commit(
        "orbiter.yml",
        &orb_yaml(&lab, "one"),
        "etcd and an app token",
    );
    lab.write_bootstrap_secrets();
    let token: &[u8] = b"tok-31415\x00\xff not text\n";
    let out = p.with_stdin(&["writesecret", "app.apitoken", "--stdin"], token);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    lab.takeoff();
    wait_for("3 healthy etcd members", Duration::from_secs(300), || {
        healthy_members(&lab) == 3
    });
    for m in machines {
        assert_eq!(file_bytes(m, "/etc/app-token"), token, "{}", m.id());
        assert_eq!(sh(m, "stat -c %a:%U /etc/app-token"), "640:root");
        assert_eq!(sh(m, "stat -c %a /etc/orb-etcd/kv/pki/server.key"), "600");
    }

    // A hand edit on a machine is corrected by its agent (within its drift interval).
    let s2 = &machines[1];
    sh(s2, "echo edited by hand > /etc/app-token");
    wait_for("the hand edit corrected", Duration::from_secs(120), || {
        file_bytes(s2, "/etc/app-token") == token
    });

    // A new value is rolled out to every machine.
    let token2: &[u8] = b"tok-27182 rotated\n";
    let out = p.with_stdin(&["writesecret", "app.apitoken", "--stdin"], token2);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_for("the new value everywhere", Duration::from_secs(180), || {
        machines
            .iter()
            .all(|m| file_bytes(m, "/etc/app-token") == token2)
    });

    // A damaged orbiter/secrets.yml: the rotation refuses and pushes nothing.
    let newkey = p.secret_file(
        "next-masterkey",
        b"the next masterkey of this Orb, long enough\n",
    );
    let url = std::fs::read_to_string(&p.config)
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("url: ").map(str::to_owned))
        .unwrap();
    let url = url.trim_matches(|c| c == '"' || c == '\'').to_owned();
    let good = human.read(state::SECRETS).unwrap();
    human.commit(state::SECRETS, &damage(&good, "kv.ca"), "damage kv.ca");
    let before = (human.read("keyring.yml"), human.read("orbiter.yml"));
    let head = human.head();
    let e = p.fails(&[
        "configure",
        "--repourl",
        &url,
        "--masterkey-file",
        newkey.to_str().unwrap(),
    ]);
    assert!(
        e.contains("kv.ca") && e.contains("nothing was rotated"),
        "{e}"
    );
    // (The Orbiter inside the Orb may commit its observations meanwhile; nothing else moves.)
    assert_eq!(
        (human.read("keyring.yml"), human.read("orbiter.yml")),
        before,
        "a refused rotation pushed something"
    );
    assert!(!human.messages_since(&head).contains("Masterkey rotated"));
    human.commit(state::SECRETS, &good, "repair kv.ca");

    // The rotation: one commit, and the Orbiter inside the Orb keeps applying changes. A
    // machine that pretends to host an Orbiter does not learn the new masterkey: only the
    // machine takeoff handed over to (`orbiter/host.yml`) gets it.
    assert!(
        human
            .read(state::ORBITER_HOST)
            .unwrap()
            .contains("machine: lab.s1")
    );
    sh(
        s2,
        "mkdir -p /var/lib/orbiter && echo 'url: x' > /var/lib/orbiter/config",
    );
    let head = human.head();
    p.ok(&[
        "configure",
        "--repourl",
        &url,
        "--masterkey-file",
        newkey.to_str().unwrap(),
    ]);
    let messages = human.messages_since(&head);
    assert_eq!(
        messages.matches("by orbctl configure").count(),
        1,
        "the rotation is one commit:\n{messages}"
    );
    assert_eq!(
        human.files_of_commit_with("Masterkey rotated"),
        [
            "keyring.yml",
            "orbiter.yml",
            "orbiter/rollouts/lab.machines.yml",
            state::SECRETS
        ]
    );
    p.ok(&[
        "file",
        "patch",
        "orbiter.yml",
        "software.app.spec.items.1.file.content",
        "--value",
        "after rotation\n",
    ]);
    wait_for(
        "the change after the rotation applied",
        Duration::from_secs(180),
        || {
            machines
                .iter()
                .all(|m| sh(m, "cat /etc/motd") == "after rotation")
        },
    );
    assert!(
        p.ok(&["readsecret", "kv.ca"])
            .starts_with("-----BEGIN CERTIFICATE-----")
    );
    assert_eq!(
        p.ok(&["node", "exec", "lab.s3", "--", "cat /etc/motd"])
            .trim(),
        "after rotation"
    );
    let s1 = &machines[0];
    assert_eq!(
        sh(
            s1,
            "grep -c 'the next masterkey of this Orb' /var/lib/orbiter/config"
        ),
        "1",
        "the Orbiter inside the Orb adopted the new masterkey"
    );
    assert_eq!(
        sh(
            s1,
            "test -e /var/lib/orbiter/config.next-masterkey && echo staged || echo adopted"
        ),
        "adopted"
    );
    assert_eq!(
        sh(
            s2,
            "test -e /var/lib/orbiter/config.next-masterkey && echo staged || echo not staged"
        ),
        "not staged",
        "the masterkey was sent to a machine that only claimed to host an Orbiter"
    );
    assert_eq!(healthy_members(&lab), 3);

    // Nothing secret anywhere in the repository's history, nor in the Orbiter's journal.
    let history = human.log_patches();
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    for needle in [
        "PRIVATE KEY".to_owned(),
        "tok-31415".to_owned(),
        "tok-27182".to_owned(),
        b64(token),
        b64(token2),
        "the next masterkey".to_owned(),
    ] {
        assert!(
            !history.contains(&needle),
            "{needle:?} is in the repository's history"
        );
    }
    let journal = sh(s1, "journalctl -u orbiter --no-pager -o cat");
    assert!(
        !journal.contains("tok-") && !journal.contains("PRIVATE KEY"),
        "{journal}"
    );

    let out = p.run(&["teardown", "--yes"]);
    assert!(
        out.status.success(),
        "teardown:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    drop(lab);
}
