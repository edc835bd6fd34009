//! `OrbConfig::resolve_path` precedence. Alone in its test binary because it changes the
//! process environment (no other test thread can observe it).

use std::path::{Path, PathBuf};

use orb_repo::OrbConfig;

#[test]
fn flag_beats_env_beats_home() {
    let home = tempfile::tempdir().unwrap();
    // SAFETY: this binary runs this single test; no other thread reads the environment.
    unsafe {
        std::env::set_var("HOME", home.path());
        std::env::remove_var("ORBCONFIG");
    }
    assert_eq!(
        OrbConfig::resolve_path(None),
        home.path().join(".orb").join("config")
    );
    unsafe { std::env::set_var("ORBCONFIG", "/etc/orbiter/orbconfig") };
    assert_eq!(
        OrbConfig::resolve_path(None),
        PathBuf::from("/etc/orbiter/orbconfig")
    );
    assert_eq!(
        OrbConfig::resolve_path(Some(Path::new("~/my/orb"))),
        home.path().join("my/orb")
    );
    unsafe { std::env::set_var("ORBCONFIG", "") };
    assert_eq!(
        OrbConfig::resolve_path(None),
        home.path().join(".orb").join("config"),
        "an empty ORBCONFIG counts as unset"
    );
}
