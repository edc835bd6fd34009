//! `orbiter.yml` (from Git, written by people): `Orb::parse` never panics, and what it accepts
//! renders and re-reads as the same Orb (every writer re-renders the file before it pushes).
#![no_main]

use libfuzzer_sys::fuzz_target;
use orb_model::Orb;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let Ok(orb) = Orb::parse(&text, "orbiter.yml") else {
        return;
    };
    let _ = orb.needs_migration();
    let rendered = orb.to_yaml();
    let again = Orb::parse(&rendered, "orbiter.yml")
        .unwrap_or_else(|e| panic!("a parsed Orb renders into a file it refuses: {e}\n{rendered}"));
    assert_eq!(
        again, orb,
        "render and re-read changed the Orb:\n{rendered}"
    );
});
