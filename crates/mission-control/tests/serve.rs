//! Mission Control over a real repository: pages answer from what Git says, hostile text from
//! a machine or a commit stays text, paging and search work, and with a token nothing
//! answers without it.

use mission_control::OrbSource;
use orb_repo::{Author, HostKeyPolicy, OrbConfig, OrbRepo, Redacted, RepoOptions};
use std::io::{Read as _, Write as _};
use std::net::TcpListener;
use std::path::Path;
use std::process::Command;

const ORB: &str = "kind: Orb
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

/// Commits `files` to `bare` as `author` with `message`.
fn commit(bare: &Path, files: &[(&str, &str)], author: &str, message: &str) {
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
fn current(n: usize) -> String {
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

fn open(bare: &Path, cache: &Path) -> OrbRepo {
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
fn start(bare: &Path, cache: &Path, token: Option<&str>) -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let source = OrbSource::new("prod", open(bare, cache));
    let token = token.map(str::to_owned);
    std::thread::spawn(move || mission_control::server::serve_on(l, vec![source], token));
    addr
}

/// Status code, headers and body of `GET path` with extra header lines.
fn get(addr: &str, path: &str, extra: &str) -> (u16, String, String) {
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

#[test]
fn pages_show_what_git_says_and_hostile_text_stays_text() {
    let bare = orb_testsupport::bare_repo();
    commit(
        &bare.path,
        &[("orbiter.yml", ORB)],
        "Alice",
        "Two web machines",
    );
    commit(
        &bare.path,
        &[
            ("orbiter/current.yml", &current(250)),
            ("orbiter/nodes/loc.web-2/desired.yml", "items: []\n"),
        ],
        "Orbiter",
        "Current state changed <b>bold</b>",
    );
    let cache = tempfile::tempdir().unwrap();
    let addr = start(&bare.path, cache.path(), None);

    let (code, head, body) = get(&addr, "/", "");
    assert_eq!(code, 200, "{body}");
    assert!(
        head.contains("content-security-policy: default-src 'none'"),
        "{head}"
    );
    assert!(
        body.contains(">prod</a>") && body.contains("167 / 250"),
        "{body}"
    );
    assert!(body.contains("<span class=\"ok\">valid</span>"), "{body}");
    assert!(
        body.contains("&lt;img src=x onerror=alert(2)&gt;") && !body.contains("<img"),
        "{body}"
    );
    assert!(
        body.contains("Current state changed &lt;b&gt;bold&lt;/b&gt;"),
        "{body}"
    );

    let (code, _, body) = get(&addr, "/orbs/prod/machines", "");
    assert_eq!(code, 200);
    assert!(body.contains("&lt;script&gt;alert(1)&lt;/script&gt;") && !body.contains("<script"));
    let rows = |b: &str| b.matches("<tr><td><a href=\"/orbs/prod/machines/").count();
    assert!(body.contains("page 1 of 3") && rows(&body) == 100, "{body}");
    let (_, _, body3) = get(&addr, "/orbs/prod/machines?page=3", "");
    assert!(
        body3.contains("page 3 of 3") && rows(&body3) == 50,
        "{body3}"
    );
    assert!(body.contains("loc.web-1<") && !body3.contains("loc.web-1<"));
    let (_, _, body) = get(&addr, "/orbs/prod/machines?q=converging", "");
    assert!(
        body.contains("83 match") && !body.contains("loc.web-1<"),
        "{body}"
    );

    let (code, _, body) = get(&addr, "/orbs/prod/machines/loc.web-2", "");
    assert_eq!(code, 200);
    assert!(
        body.contains("<pre>items: []\n</pre>") && body.contains("not recorded yet"),
        "{body}"
    );

    let (_, _, body) = get(&addr, "/orbs/prod/history?by=people", "");
    assert!(
        body.contains("Two web machines") && !body.contains("Current state changed"),
        "{body}"
    );
    let id = bare.git(&["rev-parse", "main"]);
    let (code, _, body) = get(&addr, &format!("/orbs/prod/commits/{id}"), "");
    assert_eq!(code, 200);
    assert!(
        body.contains("orbiter/current.yml") && body.contains("+kind: OrbCurrent"),
        "{body}"
    );
    for bad in [
        "--output=x",
        "HEAD",
        "%C3%A9%C3%A9%C3%A9%C3%A9%C3%A9%C3%A9%C3%A9",
    ] {
        let (code, _, _) = get(&addr, &format!("/orbs/prod/commits/{bad}"), "");
        assert_eq!(code, 404, "{bad}");
    }
    assert_eq!(get(&addr, "/orbs/nope/machines", "").0, 404);

    // A new commit shows without a restart (the fetch is at most a few seconds old).
    commit(
        &bare.path,
        &[("orbiter.yml", "kind: Orb\nversion: v1\nproviders: [\n")],
        "Bob",
        "Broken",
    );
    std::thread::sleep(mission_control::source::FETCH_EVERY);
    let (_, _, body) = get(&addr, "/", "");
    assert!(body.contains("invalid: orbiter.yml:"), "{body}");
}

#[test]
fn with_a_token_nothing_answers_without_it() {
    let bare = orb_testsupport::bare_repo();
    commit(
        &bare.path,
        &[("orbiter.yml", ORB)],
        "Alice",
        "Two web machines",
    );
    let cache = tempfile::tempdir().unwrap();
    let token = "a-token-of-enough-length";
    let addr = start(&bare.path, cache.path(), Some(token));
    let (code, _, body) = get(&addr, "/", "");
    assert_eq!(code, 401);
    assert!(!body.contains(token));
    assert_eq!(
        get(
            &addr,
            "/orbs/prod/machines",
            "Authorization: Bearer wrong-token\r\n"
        )
        .0,
        401
    );
    assert_eq!(
        get(
            &addr,
            "/orbs/prod/machines",
            &format!("Authorization: Bearer {token}\r\n")
        )
        .0,
        200
    );
    let (code, head, _) = get(&addr, &format!("/login?token={token}"), "");
    assert_eq!(code, 303, "{head}");
    assert!(
        head.contains("httponly; samesite=strict")
            || head.to_lowercase().contains("httponly; samesite=strict"),
        "{head}"
    );
    assert_eq!(
        get(&addr, "/", &format!("Cookie: mc_token={token}\r\n")).0,
        200
    );
    assert_eq!(get(&addr, "/login?token=nope", "").0, 401);
}
