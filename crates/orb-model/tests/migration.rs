//! StaticProvider v0 (the orbos shape) migrates to v1 in code, and the rewritten file is v1.

use orb_model::{Orb, ProviderSpec};

const V0: &str = "kind: Orb
version: v1
providers:
  kvm:
    kind: StaticProvider
    version: v0
    spec:
      verbose: true
      remoteuser: admin
      remotepublickeypath: /home/admin/.ssh/authorized_keys
      pools:
        masters:
          - id: first
            hostname: master01
            ip: 192.168.122.61
";

#[test]
fn v0_migrates_to_v1() {
    let orb = Orb::parse(V0, "orbiter.yml").unwrap();
    assert!(orb.needs_migration());
    let node = &orb.providers["kvm"];
    assert_eq!(node.migrated_from.as_deref(), Some("v0"));
    let ProviderSpec::Static(s) = &node.spec else {
        panic!("not static")
    };
    assert_eq!(s.user.value, "admin");
    let text = orb.to_yaml();
    assert!(text.contains("version: v1"), "{text}");
    assert!(!text.contains("remoteuser"), "{text}");
    let again = Orb::parse(&text, "orbiter.yml").unwrap();
    assert!(!again.needs_migration());
    assert_eq!(again, orb);
}

#[test]
fn v0_with_custom_key_path_is_refused_not_changed() {
    let text = V0.replace("/home/admin/.ssh/authorized_keys", "/etc/ssh/keys/admin");
    let e = Orb::parse(&text, "orbiter.yml").unwrap_err();
    assert!(e.message.contains("remotepublickeypath"), "{e}");
    assert!(e.pos.is_some());
}
