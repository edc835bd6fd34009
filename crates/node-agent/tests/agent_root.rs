//! The real `node-agent` binary against a temp root (no root privileges or machines needed):
//! reaction to desired-file changes via inotify, drift correction, malformed input keeping
//! the last valid state, `plan`/`status` output, clean stop on SIGTERM.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_node-agent");

/// Kills the agent when the test ends, also on panic.
struct Agent {
    child: Child,
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Env {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    desired: PathBuf,
    current: PathBuf,
}

fn env() -> Env {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    std::fs::create_dir_all(root.join("etc")).unwrap();
    let me_uid = unsafe { libc::geteuid() };
    let me_gid = unsafe { libc::getegid() };
    std::fs::write(
        root.join("etc/passwd"),
        format!("root:x:0:0::/root:/bin/sh\nme:x:{me_uid}:{me_gid}::/:/bin/sh\n"),
    )
    .unwrap();
    std::fs::write(
        root.join("etc/group"),
        format!("root:x:0:\nme:x:{me_gid}:\n"),
    )
    .unwrap();
    let desired = tmp.path().join("etc-node-agent/desired.yml");
    let current = tmp.path().join("state/current.yml");
    Env {
        root,
        desired,
        current,
        _tmp: tmp,
    }
}

/// Writes the desired file the way Orbiter does: a temp file renamed into place.
fn put_desired(e: &Env, generation: u64, items: &str) {
    std::fs::create_dir_all(e.desired.parent().unwrap()).unwrap();
    let tmp = e.desired.with_extension("tmp");
    std::fs::write(&tmp, format!("kind: NodeDesired\nversion: v1\ngeneration: {generation}\nchangesallowed: true\nitems:\n{items}")).unwrap();
    std::fs::rename(&tmp, &e.desired).unwrap();
}

fn items(content: &str) -> String {
    format!(
        "  - directory: {{path: /srv/app, owner: me, group: me}}\n  - file: {{path: /srv/app/app.conf, content: \"{content}\\n\", mode: \"0600\", owner: me, group: me}}\n"
    )
}

fn start(e: &Env, drift: &str) -> Agent {
    let child = Command::new(BIN)
        .args(["run", "--drift-interval", drift, "--root"])
        .arg(&e.root)
        .arg("--desired")
        .arg(&e.desired)
        .arg("--current")
        .arg(&e.current)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    Agent { child }
}

fn current(e: &Env) -> String {
    std::fs::read_to_string(&e.current).unwrap_or_default()
}

fn wait_for(what: &str, limit: Duration, mut f: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while start.elapsed() < limit {
        if f() {
            return start.elapsed();
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    panic!("timed out after {limit:?} waiting for {what}");
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_default()
}

#[test]
fn reacts_to_changes_corrects_drift_and_keeps_last_valid() {
    let e = env();
    put_desired(&e, 1, &items("v=1"));
    let mut agent = start(&e, "1s");
    let conf = e.root.join("srv/app/app.conf");
    wait_for("first pass", Duration::from_secs(10), || {
        current(&e).contains("generation: 1") && read(&conf) == "v=1\n"
    });
    assert!(current(&e).contains("ready: true"), "{}", current(&e));

    // A change of the desired file is applied within a second.
    put_desired(&e, 2, &items("v=2"));
    let took = wait_for("generation 2", Duration::from_secs(5), || {
        read(&conf) == "v=2\n" && current(&e).contains("generation: 2")
    });
    assert!(took < Duration::from_secs(1), "apply latency {took:?}");

    // Drift: a hand edit is reverted within the drift interval and reported.
    std::fs::write(&conf, "hand edit\n").unwrap();
    wait_for("drift correction", Duration::from_secs(5), || {
        read(&conf) == "v=2\n"
    });
    wait_for("drift report", Duration::from_secs(5), || {
        current(&e).contains("trigger: drift") && current(&e).contains("content differs")
    });

    // Malformed desired: reported with line:col, the last valid state stays enforced.
    std::fs::write(&e.desired, "kind: NodeDesired\nversion: v1\ngeneration: 3\nchangesallowed: true\nitems:\n  - file: {path: /srv/x, content: x, colour: red}\n").unwrap();
    wait_for("desired_error", Duration::from_secs(5), || {
        current(&e).contains("desired_error: ") && current(&e).contains(":6:")
    });
    let c = current(&e);
    assert!(
        c.contains("generation: 2") && c.contains("unknown field `colour`"),
        "{c}"
    );
    std::fs::write(&conf, "hand edit again\n").unwrap();
    wait_for("last valid still enforced", Duration::from_secs(5), || {
        read(&conf) == "v=2\n"
    });

    // `status` reads the current state; `plan` sees nothing to do.
    let status = Command::new(BIN)
        .args(["status", "--current"])
        .arg(&e.current)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(
        status.status.success()
            && text.contains("file:/srv/app/app.conf")
            && text.contains("desired error"),
        "{text}"
    );
    let json = Command::new(BIN)
        .args(["status", "-o", "json", "--current"])
        .arg(&e.current)
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(v["generation"], 2);

    // SIGTERM: clean exit.
    unsafe { libc::kill(agent.child.id() as i32, libc::SIGTERM) };
    let st = agent.child.wait().unwrap();
    assert!(st.success(), "{st:?}");
}

#[test]
fn plan_shows_changes_without_making_them() {
    let e = env();
    put_desired(&e, 7, &items("planned"));
    let out = Command::new(BIN)
        .args(["plan", "--root"])
        .arg(&e.root)
        .arg("--desired")
        .arg(&e.desired)
        .arg("--current")
        .arg(&e.current)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("generation 7")
            && text.contains("+ write /srv/app/app.conf (8 bytes, 0600 me:me): missing"),
        "{text}"
    );
    assert!(!e.root.join("srv").exists(), "plan changed the system");
    assert!(!e.current.exists(), "plan wrote the current state");
}

#[test]
fn version_and_bad_usage() {
    let out = Command::new(BIN).arg("--version").output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("node-agent {}", env!("CARGO_PKG_VERSION"))
    );
    let out = Command::new(BIN).args(["run", "--bogus"]).output().unwrap();
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("--bogus"));
}
