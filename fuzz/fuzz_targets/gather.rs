//! What a machine answers to Orbiter's gather command (`key=value` lines: agent version and
//! checksum, unit state, the desired file's checksum, the base64 node-current report):
//! `orbiter::observe::parse_gather` never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let g = orbiter::observe::parse_gather(&text, "lab.m1");
    assert!(g.agent.is_some() || !text.lines().any(|l| l.starts_with("agent=")));
});
