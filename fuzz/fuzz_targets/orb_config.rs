//! The orb config (`~/.orb/config`: url, repokey, masterkey), read as `orbctl` reads it
//! (`OrbConfig::load_with_warnings` on a file), and repository URLs (`orb_repo::url::parse`,
//! credential redaction) that come from it and from people.
#![no_main]

use libfuzzer_sys::fuzz_target;
use orb_repo::OrbConfig;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::OnceLock;

/// One 0600 file per process in `$TMPDIR` (bench/fuzz.sh points it at its run directory),
/// rewritten for every input.
fn path() -> &'static PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let p = std::env::temp_dir().join(format!("orb-fuzz-config-{}", std::process::id()));
        std::fs::write(&p, b"").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        p
    })
}

fuzz_target!(|data: &[u8]| {
    let p = path();
    std::fs::write(p, data).unwrap();
    let mut warnings = Vec::new();
    if let Ok(cfg) = OrbConfig::load_with_warnings(p, &mut warnings) {
        let _ = cfg.orb_id();
        assert!(format!("{cfg:?}").contains("masterkey: <redacted>"));
    }
    let text = String::from_utf8_lossy(data);
    for line in text.lines().take(8) {
        let _ = orb_repo::url::parse(line);
        let _ = orb_repo::redact_url_credentials(line);
    }
});
