//! Helpers of the Mission Control tests: a repository with commits made like a person would,
//! and Mission Control started on it.

#![allow(dead_code)]

use mission_control::OrbSource;
use orb_repo::{Author, HostKeyPolicy, OrbConfig, OrbRepo, Redacted, RepoOptions};
use std::io::{Read as _, Write as _};
use std::net::TcpListener;
use std::path::Path;
use std::process::Command;

pub const ORB: &str = "kind: Orb
version: v1
providers:
  loc:
    kind: LocalProvider
    version: v1
    spec:
      group: mc
      pools:
        web:
          nodes: 2
";

pub fn git(dir: &Path, args: &[&str]) {
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

/// Commits `files` to `bare` as `author` with `message`.
pub fn commit(bare: &Path, files: &[(&str, &str)], author: &str, message: &str) {
    let work = tempfile::tempdir().unwrap();
    git(
        work.path(),
        &["clone", "--quiet", &bare.display().to_string(), "w"],
    );
    let w = work.path().join("w");
    for (path, text) in files {
        let p = w.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, text).unwrap();
        git(&w, &["add", path]);
    }
    git(
        &w,
        &[
            "-c",
            &format!("user.name={author}"),
            "-c",
            "user.email=someone@example.test",
            "commit",
            "--quiet",
            "-m",
            message,
        ],
    );
    git(&w, &["push", "--quiet", "origin", "HEAD:main"]);
}

/// `orbiter/current.yml` with `n` machines; the first one's error is hostile HTML.
pub fn current(n: usize) -> String {
    let mut s = String::from("kind: OrbCurrent\nversion: v1\nmachines:\n");
    for i in 1..=n {
        s.push_str(&format!(
            "  loc.web-{i}:\n    pool: web\n    ip: 10.0.{}.{}\n    state: {}\n",
            i / 250,
            i % 250,
            if i % 3 == 0 { "converging" } else { "ready" }
        ));
        if i == 1 {
            s.push_str("    error: \"<script>alert(1)</script>\"\n");
        }
    }
    s.push_str("waiting:\n  - \"<img src=x onerror=alert(2)>\"\n");
    s
}

pub fn open(bare: &Path, cache: &Path) -> OrbRepo {
    let cfg = OrbConfig {
        url: format!("file://{}", bare.display()),
        repokey: None,
        masterkey: Redacted::from("not-used-by-mission-control".to_owned()),
    };
    OrbRepo::open(
        &cfg,
        RepoOptions {
            cache_dir: cache.join("repos"),
            known_hosts: cache.join("known_hosts"),
            host_key_policy: HostKeyPolicy::KnownOnly,
            author: Author {
                name: "Test".into(),
                email: "t@example.test".into(),
            },
            max_push_attempts: orb_repo::DEFAULT_MAX_PUSH_ATTEMPTS,
        },
    )
    .unwrap()
}

/// Starts Mission Control on a free loopback port; the thread ends with the test process.
pub fn start(bare: &Path, cache: &Path, token: Option<&str>) -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let source = OrbSource::new("prod", open(bare, cache));
    let token = token.map(str::to_owned);
    std::thread::spawn(move || mission_control::server::serve_on(l, vec![source], token));
    addr
}

/// Status code, headers and body of `GET path` with extra header lines.
pub fn get(addr: &str, path: &str, extra: &str) -> (u16, String, String) {
    for _ in 0..50 {
        if let Ok(mut s) = std::net::TcpStream::connect(addr) {
            write!(
                s,
                "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{extra}\r\n"
            )
            .unwrap();
            let mut text = String::new();
            s.read_to_string(&mut text).unwrap();
            let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
            let code = head
                .split_whitespace()
                .nth(1)
                .unwrap_or("0")
                .parse()
                .unwrap();
            return (code, head.to_owned(), body.to_owned());
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("nothing answers on {addr}");
}

/// Status, headers and body of `POST path` with a form body.
pub fn post(addr: &str, path: &str, form: &str, extra: &str) -> (u16, String, String) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n{extra}\r\n{form}",
        form.len()
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let code = head
        .split_whitespace()
        .nth(1)
        .unwrap_or("0")
        .parse()
        .unwrap();
    (code, head.to_owned(), body.to_owned())
}

/// The CSRF token in a page's forms.
pub fn csrf_of(body: &str) -> String {
    let at = body
        .find("name=\"csrf\" value=\"")
        .expect("a form with a token")
        + 19;
    body[at..at + 64].to_owned()
}

/// Form encoding of one value.
pub fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}
