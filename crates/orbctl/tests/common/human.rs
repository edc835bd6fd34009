//! A person's clone of an Orb repository over SSH, as plain git would do it: for reading what
//! Orbiter committed and committing as a human, outside orbctl.

use orbiter::state::{self, OrbCurrent};
use std::path::{Path, PathBuf};
use std::process::Command;

/// A person's own clone of the Orb repository over SSH, as plain git would do it.
pub struct HumanClone {
    dir: tempfile::TempDir,
    ssh: String,
}

impl HumanClone {
    pub fn new(url: &str, key: &Path, known_hosts: &Path) -> HumanClone {
        let dir = tempfile::tempdir().unwrap();
        let ssh = format!(
            "ssh -i {} -o IdentitiesOnly=yes -o UserKnownHostsFile={} -o StrictHostKeyChecking=yes",
            key.display(),
            known_hosts.display()
        );
        let c = HumanClone { dir, ssh };
        c.git(&["clone", "--quiet", url, "w"], c.dir.path());
        c
    }

    pub fn work(&self) -> PathBuf {
        self.dir.path().join("w")
    }

    pub fn git(&self, args: &[&str], cwd: &Path) -> String {
        let out = Command::new("git")
            .current_dir(cwd)
            .env("GIT_SSH_COMMAND", &self.ssh)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn read(&self, file: &str) -> Option<String> {
        let w = self.work();
        self.git(&["fetch", "--quiet", "origin"], &w);
        let out = Command::new("git")
            .current_dir(&w)
            .args(["show", &format!("origin/main:{file}")])
            .output()
            .unwrap();
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Writes `file` on top of the newest head and pushes; a push that loses the race with a
    /// running Orbiter is done again on the new head, as a person would.
    pub fn commit(&self, file: &str, content: &str, message: &str) {
        let w = self.work();
        for _ in 0..10 {
            self.git(&["fetch", "--quiet", "origin"], &w);
            self.git(&["reset", "--quiet", "--hard", "origin/main"], &w);
            std::fs::write(w.join(file), content).unwrap();
            self.git(&["add", file], &w);
            self.git(
                &[
                    "-c",
                    "user.name=Human",
                    "-c",
                    "user.email=h@example.test",
                    "commit",
                    "--quiet",
                    "-m",
                    message,
                ],
                &w,
            );
            let pushed = Command::new("git")
                .current_dir(&w)
                .env("GIT_SSH_COMMAND", &self.ssh)
                .env("GIT_CONFIG_NOSYSTEM", "1")
                .env("GIT_CONFIG_GLOBAL", "/dev/null")
                .args(["push", "--quiet", "origin", "HEAD:main"])
                .output()
                .unwrap();
            if pushed.status.success() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(300));
        }
        panic!("could not push {file} within 10 attempts");
    }

    /// The commit `origin/main` points at.
    pub fn head(&self) -> String {
        let w = self.work();
        self.git(&["fetch", "--quiet", "origin"], &w);
        self.git(&["rev-parse", "origin/main"], &w)
            .trim()
            .to_owned()
    }

    /// The messages of the commits `origin/main` has on top of `base`.
    pub fn messages_since(&self, base: &str) -> String {
        let w = self.work();
        self.git(&["fetch", "--quiet", "origin"], &w);
        self.git(&["log", "--format=%B", &format!("{base}..origin/main")], &w)
    }

    /// The files changed by the newest commit whose message contains `grep`.
    pub fn files_of_commit_with(&self, grep: &str) -> Vec<String> {
        let w = self.work();
        self.git(&["fetch", "--quiet", "origin"], &w);
        let out = self.git(
            &[
                "log",
                "-1",
                "--name-only",
                "--format=",
                "--fixed-strings",
                &format!("--grep={grep}"),
                "origin/main",
            ],
            &w,
        );
        out.lines()
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect()
    }

    /// `git log -p --all` of everything pushed so far.
    pub fn log_patches(&self) -> String {
        let w = self.work();
        self.git(&["fetch", "--quiet", "origin"], &w);
        self.git(&["log", "-p", "--all", "--binary"], &w)
    }

    pub fn current(&self) -> OrbCurrent {
        state::parse(&self.read(state::CURRENT).unwrap(), state::CURRENT).unwrap()
    }

    pub fn machine_state(&self, key: &str) -> (String, Option<String>) {
        let c = self.current();
        let m = c
            .machines
            .iter()
            .find(|(k, _)| k.to_string() == key)
            .map(|(_, m)| m.clone())
            .unwrap_or_else(|| panic!("{key} not in current.yml: {c:?}"));
        (m.state, m.error)
    }
}
