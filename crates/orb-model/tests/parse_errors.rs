//! Every kind of bad input names its place (file:line:col) and, where possible, the fix.

use orb_model::{ModelError, Orb};

const GOOD: &str = include_str!("../../../examples/static-lab/orbiter.yml");

fn err(text: &str) -> ModelError {
    Orb::parse(text, "orbiter.yml").expect_err("must be rejected")
}

fn at(e: &ModelError) -> (u64, u64) {
    let p = e.pos.unwrap_or_else(|| panic!("no position in: {e}"));
    (p.line, p.column)
}

fn line_of(text: &str, needle: &str) -> u64 {
    text.lines()
        .position(|l| l.contains(needle))
        .expect("needle in text") as u64
        + 1
}

#[test]
fn example_parses() {
    let orb = Orb::parse(GOOD, "orbiter.yml").unwrap();
    assert_eq!(orb.providers.len(), 1);
    assert_eq!(orb.clusters.len(), 1);
    assert!(!orb.needs_migration());
}

#[test]
fn unknown_field_names_place_and_suggests() {
    let text = GOOD.replace("hostname: worker-2", "hostnme: worker-2");
    let e = err(&text);
    assert_eq!(at(&e).0, line_of(&text, "hostnme"));
    assert!(e.message.contains("unknown field `hostnme`"), "{e}");
    assert_eq!(e.hint.as_deref(), Some("did you mean `hostname`?"));
    assert!(
        e.to_string()
            .starts_with(&format!("orbiter.yml:{}:", line_of(&text, "hostnme"))),
        "{e}"
    );
}

#[test]
fn unknown_field_in_spec_root() {
    let text = GOOD.replace(
        "      pools:\n        masters",
        "      pols:\n        masters",
    );
    let e = err(&text);
    assert_eq!(at(&e).0, line_of(&text, "pols:"));
    assert_eq!(e.hint.as_deref(), Some("did you mean `pools`?"));
}

#[test]
fn wrong_type() {
    let text = GOOD.replace("nodes: 1", "nodes: three");
    let e = err(&text);
    assert_eq!(at(&e), (line_of(&text, "nodes: three"), 14));
    assert!(
        e.message.contains("u32") || e.message.contains("integer"),
        "{e}"
    );
}

#[test]
fn bad_id() {
    let text = GOOD.replace("id: worker-1", "id: Worker_1");
    let e = err(&text);
    assert_eq!(at(&e).0, line_of(&text, "Worker_1"));
    assert!(e.message.contains("RFC 1123"), "{e}");
}

#[test]
fn bad_provider_id_key() {
    let text = GOOD.replace("  lab:\n", "  Lab:\n");
    let e = err(&text);
    assert_eq!(at(&e).0, line_of(&text, "Lab:"));
    assert!(e.message.contains("try `lab`"), "{e}");
}

#[test]
fn bad_ip() {
    let text = GOOD.replace("10.17.0.22", "10.17.0.300");
    let e = err(&text);
    assert_eq!(at(&e).0, line_of(&text, "10.17.0.300"));
    assert!(e.message.to_lowercase().contains("ip"), "{e}");
}

#[test]
fn missing_provider_reference() {
    let text = GOOD.replace("provider: lab", "provider: labb");
    let e = err(&text);
    assert_eq!(at(&e), (line_of(&text, "provider: labb"), 17));
    assert!(e.message.contains("provider `labb` does not exist"), "{e}");
    assert_eq!(e.hint.as_deref(), Some("did you mean `lab`?"));
}

#[test]
fn missing_pool_reference() {
    let text = GOOD.replace("pool: workers", "pool: workrs");
    let e = err(&text);
    assert_eq!(at(&e).0, line_of(&text, "pool: workrs"));
    assert_eq!(e.hint.as_deref(), Some("did you mean `workers`?"));
}

#[test]
fn unknown_kind_suggests() {
    let text = GOOD.replace("kind: StaticProvider", "kind: StaticProvidr");
    let e = err(&text);
    assert_eq!(at(&e).0, line_of(&text, "StaticProvidr"));
    assert_eq!(e.hint.as_deref(), Some("did you mean `StaticProvider`?"));
}

#[test]
fn cluster_kind_in_provider_map() {
    let text = GOOD.replace("kind: StaticProvider", "kind: EtcdCluster");
    let e = err(&text);
    assert!(
        e.message
            .contains("belongs under `clusters`, not `providers`"),
        "{e}"
    );
}

#[test]
fn unknown_version() {
    let text = GOOD.replace(
        "    kind: StaticProvider\n    version: v1",
        "    kind: StaticProvider\n    version: v9",
    );
    let e = err(&text);
    assert_eq!(at(&e).0, line_of(&text, "version: v9"));
    assert!(e.hint.unwrap().contains("v0, v1"));
}

#[test]
fn even_etcd_members_refused_with_reason() {
    let text = GOOD.replace("nodes: 1", "nodes: 2");
    let e = err(&text);
    assert_eq!(at(&e).0, line_of(&text, "nodes: 2"));
    assert!(e.message.contains("odd"), "{e}");
}

#[test]
fn duplicate_machine_id_and_ip() {
    let text = GOOD.replace("id: worker-2", "id: worker-1");
    let e = err(&text);
    assert!(e.message.contains("appears twice"), "{e}");
    assert_eq!(at(&e).0, line_of(&text, "ip: 10.17.0.22") - 2);
    let text = GOOD.replace("10.17.0.22", "10.17.0.21");
    let e = err(&text);
    assert!(e.message.contains("used by two machines"), "{e}");
}

#[test]
fn orbos_file_points_to_import() {
    let e = err("kind: orbiter.caos.ch/Orb\nversion: v0\n");
    assert!(e.hint.unwrap().contains("import-orbos"));
}

#[test]
fn syntax_error_has_place() {
    let e = err("kind: Orb\nversion: v1\nproviders: [\n");
    assert!(e.pos.is_some(), "{e}");
}

const WITH_LOCAL: &str = "kind: Orb
version: v1
providers:
  local:
    kind: LocalProvider
    version: v1
    spec:
      group: orbtest
      pools:
        extra:
          nodes: 2
software:
  base:
    kind: NodeSoftware
    version: v1
    spec:
      pools: [local.extra]
      items:
        - package: {name: etcd-server, version: 3.4.23-4}
        - file: {path: /etc/motd, content: \"managed by Orbiter\\n\"}
";

#[test]
fn local_provider_and_node_software_parse_and_round_trip() {
    let orb = Orb::parse(WITH_LOCAL, "orbiter.yml").unwrap();
    assert_eq!(orb.software.len(), 1);
    let again = Orb::parse(&orb.to_yaml(), "orbiter.yml").unwrap();
    assert_eq!(again, orb);
}

#[test]
fn node_software_items_are_typed_node_agent_items() {
    let text = WITH_LOCAL.replace(
        "- package: {name: etcd-server, version: 3.4.23-4}",
        "- packge: {name: etcd-server}",
    );
    let e = err(&text);
    assert_eq!(at(&e).0, line_of(&text, "packge"));
    assert!(
        e.message
            .contains("unknown variant `packge`, expected one of package"),
        "{e}"
    );
    let text = WITH_LOCAL.replace("path: /etc/motd", "path: etc/motd");
    let e = err(&text);
    assert_eq!(at(&e).0, line_of(&text, "etc/motd"));
    assert!(
        e.message.contains("software `base`: file:etc/motd: path"),
        "{e}"
    );
    let text = WITH_LOCAL.replace("pools: [local.extra]", "pools: [local.extr]");
    let e = err(&text);
    assert_eq!(e.hint.as_deref(), Some("did you mean `extra`?"), "{e}");
}

#[test]
fn names_that_a_command_would_take_for_an_option_are_refused_with_their_place() {
    // An SSH user that is an ssh option would run a command on the laptop.
    let text = GOOD.replace(
        "    spec:\n      pools:\n        masters:",
        "    spec:\n      user: \"-oProxyCommand=touch /tmp/pwned\"\n      pools:\n        masters:",
    );
    let e = err(&text);
    assert_eq!(at(&e).0, line_of(&text, "ProxyCommand"));
    assert!(e.message.contains("is not a user name"), "{e}");
    assert!(e.hint.is_some());
    for (item, field) in [
        ("package: {name: -oDpkg::Pre-Invoke=x, version: 1}", "name"),
        ("kernelmodule: {name: --force}", "name"),
        ("unit: {name: -H.service}", "name"),
        ("file: {path: /etc/x, content: y, owner: -R}", "owner"),
    ] {
        let text = WITH_LOCAL.replace(
            "- file: {path: /etc/motd, content: \"managed by Orbiter\\n\"}",
            &format!("- {item}"),
        );
        assert_ne!(text, WITH_LOCAL, "the item was not put in");
        let e = err(&text);
        assert_eq!(at(&e).0, line_of(&text, item), "{item}: {e}");
        assert!(
            e.message.contains(&format!("{field}: `-")) && e.message.contains("for an option"),
            "{item}: {e}"
        );
    }
}
