//! What a machine prints for the etcd observation snippet (unit state, package, config lines,
//! etcdctl JSON: status, health, member list, alarms): `orb_etcd::observe::parse` never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let v = orb_etcd::observe::parse(&text);
    // A member is running only when the unit is active and it told its id.
    assert!(!v.running || (v.unit == "active" && v.id.is_some()));
    assert!(v.running || !v.healthy);
});
