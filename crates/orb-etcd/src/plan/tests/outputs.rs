//! What a plan hands on besides membership steps: items (none without certificates, no
//! private key in Debug output), a record that round-trips through YAML, and scheduled
//! snapshots recorded as the last backup.

use super::*;

#[test]
fn missing_certificates_leave_the_machine_untouched() {
    let mut s = Sim::new(3, 3);
    s.secrets.members.remove("lab.m2");
    let p = s.step();
    assert!(!p.items.contains_key("lab.m2"));
    assert!(
        p.waiting
            .iter()
            .any(|w| w.contains("certificates of member lab.m2 are missing"))
    );
}

#[test]
fn record_round_trips_through_yaml() {
    let s = bootstrapped(3, 3);
    let yaml = serde_saphyr::to_string(&s.record).unwrap();
    assert!(yaml.contains("state: member"), "{yaml}");
    let back: ClusterRecord = serde_saphyr::from_str(&yaml).unwrap();
    assert_eq!(back, s.record);
    // Ids are hex strings, never floats.
    let id = s.record.members[0].id.unwrap();
    assert!(yaml.contains(&format!("{id:x}")), "{yaml}");
}

#[test]
fn scheduled_snapshot_from_a_follower_recorded_then_not_due() {
    let mut s = bootstrapped(3, 3);
    s.spec.backup = Some(orb_model::kinds::etcd_cluster::EtcdBackup {
        every: Located::new("1h".into()),
        keep: Located::new(3),
        target: Located::new("lab.m3".into()),
    });
    let p = s.step();
    let [EtcdStep::Snapshot { via, path, .. }] = &p.steps[..] else {
        panic!("{:?}", p.steps)
    };
    assert_ne!(Some(via), s.record.leader.as_ref(), "not from the leader");
    assert!(
        path.starts_with("/var/backups/orb-etcd/kv-19700112T"),
        "{path}"
    );
    let b = s.record.last_backup.clone().expect("recorded");
    assert_eq!((b.size, b.at), (20480, s.now - 10));
    assert_eq!(b.location, format!("{via}:{path}"));
    let p = s.step();
    assert!(p.steps.is_empty(), "not due again: {:?}", p.steps);
    s.now += 3600;
    assert!(matches!(&s.step().steps[..], [EtcdStep::Snapshot { .. }]));
}

#[test]
fn plan_debug_never_shows_private_keys() {
    let mut s = Sim::new(3, 3);
    let p = s.step();
    assert!(p.items["lab.m1"].iter().any(|i| matches!(i,
        Item::File(f) if f.bytes().is_some_and(|b| String::from_utf8_lossy(b).contains("PRIVATE KEY")))));
    let dbg = format!("{p:?}");
    assert!(!dbg.contains("PRIVATE KEY"), "{dbg}");
    assert!(dbg.contains("\"lab.m1\": 18"), "{dbg}");
}
