//! What etcd step commands print on a machine: `member add` (JSON, or `@@already` and the member
//! list), `snapshot save` (`@@snapshot SIZE SHA`), restore (`@@restored {status json}`) and the
//! WAL id snippet (`<member hex> <cluster hex>` or `none <reason>`, checked before a wipe).
//! The first line of the input is the peer URL `parse_add_result` looks for.
#![no_main]

use libfuzzer_sys::fuzz_target;
use orb_etcd::steps::{parse_add_result, parse_restore_result, parse_snapshot_result};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (peer_url, out) = text.split_once('\n').unwrap_or(("", &text));
    let _ = parse_add_result(out, peer_url);
    let _ = parse_add_result(&text, "https://10.0.0.1:2380");
    if let Ok((_, sha)) = parse_snapshot_result(&text) {
        assert_eq!(sha.len(), 64);
    }
    let _ = parse_restore_result(&text);
    for line in text.lines() {
        if let Ok((member, cluster)) = orb_etcd::wal::parse_ids(line) {
            assert_eq!(
                orb_etcd::wal::parse_ids(&format!("{member:x} {cluster:x}")),
                Ok((member, cluster))
            );
        }
    }
});
