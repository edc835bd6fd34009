//! Throw-away bare repositories that play the remote "Orb repository".

use std::path::PathBuf;

use tempfile::TempDir;

use crate::run::{checked, clean};

/// A bare repository (default branch `main`) inside its own temporary directory.
pub struct BareRepo {
    /// Owns the directory; dropping it removes the repository.
    pub dir: TempDir,
    /// Absolute path of the bare repository (`<dir>/orb.git`).
    pub path: PathBuf,
}

/// Creates an empty bare repository with `git init --bare -b main`.
pub fn bare_repo() -> BareRepo {
    let dir = tempfile::Builder::new()
        .prefix("orb-bare-")
        .tempdir()
        .expect("create temp dir for bare repository");
    let path = dir.path().join("orb.git");
    checked(
        clean("git")
            .args(["init", "--quiet", "--bare", "-b", "main"])
            .arg(&path),
    );
    BareRepo { dir, path }
}

impl BareRepo {
    /// Runs `git ARGS` inside the bare repository and returns its trimmed stdout; panics on failure.
    /// For assertions such as `rev-list --merges main` or `log --format=%s`.
    pub fn git(&self, args: &[&str]) -> String {
        let out = checked(clean("git").arg("--git-dir").arg(&self.path).args(args));
        String::from_utf8_lossy(&out.stdout).trim_end().to_owned()
    }

    /// The commit `refs/heads/main` points at, `None` while the repository is empty.
    pub fn head(&self) -> Option<String> {
        let out = clean("git")
            .arg("--git-dir")
            .arg(&self.path)
            .args(["rev-parse", "--verify", "--quiet", "refs/heads/main"])
            .output()
            .expect("run git rev-parse");
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }
}
