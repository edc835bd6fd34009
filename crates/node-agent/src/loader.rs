//! Which desired state is in force: the desired file when it is valid, otherwise the last
//! valid one (kept as a copy in the state directory, so it also survives a restart), with
//! the reason reported. Bad input never removes what is enforced.

use crate::error::Result;
use crate::fsutil;
use node_protocol::NodeDesired;
use std::path::{Path, PathBuf};

pub const LAST_VALID: &str = "last-valid.yml";

pub struct Loader {
    desired_path: PathBuf,
    last_valid_path: PathBuf,
    /// The desired state being enforced.
    pub enforced: Option<NodeDesired>,
    /// Why the desired file is not the one enforced.
    pub error: Option<String>,
}

impl Loader {
    pub fn new(desired_path: &Path, state_dir: &Path) -> Loader {
        Loader {
            desired_path: desired_path.to_path_buf(),
            last_valid_path: state_dir.join(LAST_VALID),
            enforced: None,
            error: None,
        }
    }

    /// Re-reads the desired file. With `persist`, a newly valid file is copied to
    /// `last-valid.yml` (0600: desired files may hold secrets).
    pub fn reload(&mut self, persist: bool) -> Result<()> {
        let origin = self.desired_path.display().to_string();
        match fsutil::read_opt(&self.desired_path) {
            Ok(Some(bytes)) => match std::str::from_utf8(&bytes) {
                Err(_) => self.error = Some(format!("{origin}: not valid UTF-8")),
                Ok(text) => match node_protocol::parse_desired(text, &origin) {
                    Ok(d) => {
                        self.enforced = Some(d);
                        self.error = None;
                        if persist
                            && fsutil::read_opt(&self.last_valid_path)?.as_deref()
                                != Some(bytes.as_slice())
                        {
                            fsutil::write_atomic(&self.last_valid_path, &bytes, 0o600, None)?;
                        }
                    }
                    Err(e) => self.error = Some(e.to_string()),
                },
            },
            Ok(None) => {
                self.error = Some(format!(
                    "{origin} does not exist; hint: Orbiter writes it over SSH"
                ))
            }
            Err(e) => self.error = Some(e.to_string()),
        }
        if self.enforced.is_none() && self.error.is_some() {
            self.load_last_valid();
        }
        Ok(())
    }

    fn load_last_valid(&mut self) {
        let origin = self.last_valid_path.display().to_string();
        if let Ok(Some(text)) = fsutil::read_text_opt(&self.last_valid_path) {
            match node_protocol::parse_desired(&text, &origin) {
                Ok(d) => self.enforced = Some(d),
                // Written by an agent that could parse it; a newer format is possible after a downgrade.
                Err(e) => crate::log::warn(&format!("ignoring the last valid copy: {e}")),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str =
        "kind: NodeDesired\nversion: v1\ngeneration: 5\nchangesallowed: true\nitems: []\n";

    #[test]
    fn keeps_last_valid_through_bad_and_missing_files_and_restarts() {
        let tmp = tempfile::tempdir().unwrap();
        let desired = tmp.path().join("desired.yml");
        let state = tmp.path().join("state");
        let mut l = Loader::new(&desired, &state);
        l.reload(true).unwrap();
        assert!(l.enforced.is_none() && l.error.as_deref().unwrap().contains("does not exist"));
        std::fs::write(&desired, GOOD).unwrap();
        l.reload(true).unwrap();
        assert_eq!(l.enforced.as_ref().unwrap().generation, 5);
        assert!(l.error.is_none());
        std::fs::write(
            &desired,
            GOOD.replace("generation: 5", "generation: 6\nbogus: 1"),
        )
        .unwrap();
        l.reload(true).unwrap();
        assert_eq!(
            l.enforced.as_ref().unwrap().generation,
            5,
            "last valid stays"
        );
        assert!(
            l.error
                .as_deref()
                .unwrap()
                .contains("unknown field `bogus`")
        );
        // A restarted agent starts from the copy.
        let mut fresh = Loader::new(&desired, &state);
        fresh.reload(true).unwrap();
        assert_eq!(fresh.enforced.as_ref().unwrap().generation, 5);
        assert!(fresh.error.is_some());
        let mode = fsutil::stat(&state.join(LAST_VALID)).unwrap().unwrap().mode;
        assert_eq!(mode, 0o600);
    }
}
