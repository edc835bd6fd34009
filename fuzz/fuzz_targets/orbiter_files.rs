//! Orbiter's own files in the Orb repository (anyone who can push can change them):
//! `orbiter/current.yml`, `hostkeys.yml`, `secrets.yml`, `host.yml`, an etcd cluster's record,
//! plus the host-key lines and machine ids inside them and node file paths.
#![no_main]

use libfuzzer_sys::fuzz_target;
use orbiter::machine::MachineKey;
use orbiter::ssh::HostKey;
use orbiter::state::{self, GeneratedSecrets, HostKeys, OrbCurrent, OrbiterHost};

/// The file kinds, in the order the target picks them.
const KINDS: [&str; 5] = [
    "HostKeys",
    "OrbiterSecrets",
    "OrbCurrent",
    "OrbiterHost",
    "EtcdClusterRecord",
];

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    // One reader per input (they all start with the same header parse, the expensive part):
    // the one whose kind the text names, else one chosen by the first byte.
    let which = KINDS
        .iter()
        .position(|k| text.contains(k))
        .unwrap_or_else(|| usize::from(data.first().copied().unwrap_or(0)) % KINDS.len());
    match which {
        0 => {
            if let Ok(h) = state::parse::<HostKeys>(&text, state::HOSTKEYS) {
                for k in h.keys.values() {
                    let _ = (k.algorithm(), k.fingerprint());
                }
                let _ = state::render(&h);
            }
        }
        1 => {
            if let Ok(s) = state::parse::<GeneratedSecrets>(&text, state::SECRETS) {
                let _ = state::render(&s);
            }
        }
        2 => {
            if let Ok(c) = state::parse::<OrbCurrent>(&text, state::CURRENT) {
                let _ = state::render(&c);
            }
        }
        3 => {
            if let Ok(h) = state::parse::<OrbiterHost>(&text, state::ORBITER_HOST) {
                let _ = state::render(&h);
            }
        }
        _ => {
            let _ = orbiter::clusters::etcd::read_record(&text, "orbiter/clusters/kv/current.yml");
        }
    }
    for line in text.lines() {
        if let Ok(k) = HostKey::parse(line) {
            let _ = (k.algorithm(), k.fingerprint());
        }
        if let Ok(k) = MachineKey::parse(line) {
            assert_eq!(MachineKey::parse(&k.to_string()), Ok(k));
        }
        let _ = state::node_file_machine(line, "desired.yml");
    }
});
