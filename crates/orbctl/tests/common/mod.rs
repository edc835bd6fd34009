//! A person with an orb config in a temporary directory, driving the real `orbctl` binary
//! against a real bare repository, plus a "human" git clone for commits made outside orbctl.

#![allow(dead_code)]

pub mod e2e;
pub mod etcd;
pub mod human;
pub mod lb_client;
pub mod local_orb;
pub mod static_lab;

use orb_testsupport::{BareRepo, bare_repo};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use tempfile::TempDir;

pub const EXAMPLE: &str = include_str!("../../../../examples/static-lab/orbiter.yml");

pub struct Person {
    pub home: TempDir,
    pub config: PathBuf,
}

impl Default for Person {
    fn default() -> Self {
        Person::new()
    }
}

impl Person {
    pub fn new() -> Person {
        let home = tempfile::Builder::new()
            .prefix("orbctl-home-")
            .tempdir()
            .unwrap();
        let config = home.path().join(".orb/config");
        Person { home, config }
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_orbctl"));
        c.arg("-f").arg(&self.config).args(args);
        c.env("HOME", self.home.path())
            .env("GIT_AUTHOR_NAME", "Test Person")
            .env("GIT_AUTHOR_EMAIL", "person@example.test")
            .env_remove("ORBCONFIG")
            .stdin(Stdio::null());
        c
    }

    /// A 0600 file in the person's home, e.g. a key they were given.
    pub fn secret_file(&self, name: &str, content: &[u8]) -> PathBuf {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = self.home.path().join("keys");
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join(name);
        std::fs::write(&f, content).unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
        f
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    /// Runs and requires success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "orbctl {args:?} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs and requires failure; returns stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            !out.status.success(),
            "orbctl {args:?} unexpectedly succeeded"
        );
        String::from_utf8(out.stderr).unwrap()
    }

    pub fn with_stdin(&self, args: &[&str], input: &[u8]) -> Output {
        use std::io::Write;
        let mut child = self
            .cmd(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(input).unwrap();
        child.wait_with_output().unwrap()
    }
}

/// A configured Orb on a file:// repository with the example orbiter.yml committed by a human.
pub fn orb_with_example() -> (Person, BareRepo) {
    let repo = bare_repo();
    let p = Person::new();
    p.ok(&[
        "configure",
        "--repourl",
        &format!("file://{}", repo.path.display()),
    ]);
    human_commit(&repo.path, "orbiter.yml", EXAMPLE, "Describe the lab");
    (p, repo)
}

/// Commits a file the way a person with plain git would.
pub fn human_commit(bare: &Path, file: &str, content: &str, message: &str) {
    let work = tempfile::tempdir().unwrap();
    git(
        work.path(),
        &["clone", "--quiet", &bare.display().to_string(), "w"],
    );
    let w = work.path().join("w");
    let path = w.join(file);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, content).unwrap();
    git(&w, &["add", file]);
    git(
        &w,
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
    );
    git(&w, &["push", "--quiet", "origin", "HEAD:main"]);
}

pub fn read_from(bare: &Path, file: &str) -> String {
    let out = Command::new("git")
        .arg("--git-dir")
        .arg(bare)
        .args(["show", &format!("main:{file}")])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git show {file}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

pub fn commit_count(bare: &BareRepo) -> usize {
    bare.git(&["rev-list", "--count", "main"]).parse().unwrap()
}

fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .current_dir(dir)
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
}
