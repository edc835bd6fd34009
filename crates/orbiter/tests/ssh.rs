//! The SSH layer against a real OpenSSH server on 127.0.0.1 (orb-testsupport). The server runs on
//! this machine, so "remote" files are local files in a temp dir we can inspect directly.

use std::fs;
use std::net::{IpAddr, Ipv4Addr, TcpListener};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use orb_testsupport::{Sshd, fingerprint, keypair};
use orbiter::ssh::{HostKey, SshError, SshPool, Target, generate_keypair, quote, scan_host_key};

struct Machine {
    sshd: Sshd,
    target: Target,
    pinned: HostKey,
    private: String,
}

fn machine() -> Machine {
    let (private, public) = keypair();
    let sshd = Sshd::start(&public);
    let target = Target {
        id: "lab.m1".to_owned(),
        host: IpAddr::V4(Ipv4Addr::LOCALHOST),
        port: sshd.port,
        user: current_user(),
    };
    let pinned = HostKey::parse(&sshd.host_key_pub).unwrap();
    Machine {
        sshd,
        target,
        pinned,
        private,
    }
}

fn current_user() -> String {
    // SAFETY: getpwuid returns static storage or null; the name is copied at once.
    unsafe {
        let pw = libc::getpwuid(libc::geteuid());
        assert!(!pw.is_null(), "no passwd entry for the test user");
        std::ffi::CStr::from_ptr((*pw).pw_name)
            .to_string_lossy()
            .into_owned()
    }
}

/// A TCP port on 127.0.0.1 with nothing listening.
fn closed_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// The PID of the remote shell's parent: the sshd process of the connection it runs in.
fn connection_pid(pool: &SshPool, m: &Machine) -> u32 {
    let out = pool
        .exec(&m.target, &m.pinned, &m.private, "echo $PPID", None)
        .unwrap();
    assert_eq!(out.status, 0, "{out:?}");
    String::from_utf8(out.stdout)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

fn wait_gone(pid: u32) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Path::new(&format!("/proc/{pid}")).exists() {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    true
}

#[test]
fn exec_feeds_stdin_and_reports_exit_status() {
    let m = machine();
    let pool = SshPool::new().unwrap();
    let out = pool
        .exec(
            &m.target,
            &m.pinned,
            &m.private,
            "cat; echo oops >&2; exit 3",
            Some(b"hello\n"),
        )
        .unwrap();
    assert_eq!(out.status, 3);
    assert_eq!(out.stdout, b"hello\n");
    assert_eq!(out.stderr, b"oops\n");
    assert!(!out.success());

    // 255 from the command itself is the command's status, not an SSH failure.
    let out = pool
        .exec(&m.target, &m.pinned, &m.private, "exit 255", None)
        .unwrap();
    assert_eq!(out.status, 255);

    // Quoting survives the remote shell byte for byte.
    let weird = "it's $HOME `id` \"x\" \\ * ; | & \n end";
    let out = pool
        .exec(
            &m.target,
            &m.pinned,
            &m.private,
            &format!("printf %s {}", quote(weird)),
            None,
        )
        .unwrap();
    assert_eq!(String::from_utf8(out.stdout).unwrap(), weird);

    // Large input and output at once: no pipe deadlock, nothing lost.
    let big: Vec<u8> = (0..4 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    let out = pool
        .exec(
            &m.target,
            &m.pinned,
            &m.private,
            "cat; cat /dev/null >&2",
            Some(&big),
        )
        .unwrap();
    assert_eq!(out.status, 0);
    assert!(out.stdout == big, "4 MiB echoed back differ");

    // A command that ignores its input still finishes.
    let out = pool
        .exec(&m.target, &m.pinned, &m.private, "exit 0", Some(&big))
        .unwrap();
    assert_eq!(out.status, 0);
}

#[test]
fn write_and_read_files_round_trip_atomically() {
    let m = machine();
    let pool = SshPool::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("etc/orbiter/it's.bin");
    let remote = path.to_str().unwrap();
    let content: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();

    assert_eq!(
        pool.read_file(&m.target, &m.pinned, &m.private, remote)
            .unwrap(),
        None
    );
    pool.write_file(&m.target, &m.pinned, &m.private, remote, 0o640, &content)
        .unwrap();
    assert_eq!(fs::read(&path).unwrap(), content);
    assert_eq!(
        fs::metadata(&path).unwrap().permissions().mode() & 0o7777,
        0o640
    );
    assert_eq!(
        pool.read_file(&m.target, &m.pinned, &m.private, remote)
            .unwrap()
            .as_deref(),
        Some(&content[..])
    );

    // Overwrite with a shorter file and another mode; no temp file stays behind.
    pool.write_file(&m.target, &m.pinned, &m.private, remote, 0o600, b"v2")
        .unwrap();
    assert_eq!(fs::read(&path).unwrap(), b"v2");
    assert_eq!(
        fs::metadata(&path).unwrap().permissions().mode() & 0o7777,
        0o600
    );
    let names: Vec<String> = fs::read_dir(path.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, vec!["it's.bin".to_owned()]);

    // Empty content is a valid file.
    pool.write_file(&m.target, &m.pinned, &m.private, remote, 0o644, b"")
        .unwrap();
    assert_eq!(
        pool.read_file(&m.target, &m.pinned, &m.private, remote)
            .unwrap(),
        Some(Vec::new())
    );

    // A parent that is a regular file: the write fails with the path in the message, and the
    // existing file is untouched.
    let under_file = format!("{remote}/child");
    let err = pool
        .write_file(&m.target, &m.pinned, &m.private, &under_file, 0o644, b"x")
        .unwrap_err();
    match &err {
        SshError::Command {
            target,
            cmd_summary,
            status,
            ..
        } => {
            assert_eq!(target, "lab.m1");
            assert!(cmd_summary.contains(&under_file), "{cmd_summary}");
            assert_ne!(*status, 0);
        }
        other => panic!("expected Command error, got {other:?}"),
    }
    assert!(err.to_string().contains(&under_file), "{err}");

    // A directory cannot be read as a file: an error, not None.
    let err = pool
        .read_file(
            &m.target,
            &m.pinned,
            &m.private,
            dir.path().to_str().unwrap(),
        )
        .unwrap_err();
    assert!(matches!(err, SshError::Command { .. }), "{err:?}");

    // Relative paths are refused before anything runs.
    let err = pool
        .write_file(&m.target, &m.pinned, &m.private, "etc/x", 0o644, b"x")
        .unwrap_err();
    assert!(matches!(err, SshError::Invalid { .. }), "{err:?}");
}

#[test]
fn commands_share_one_persistent_connection_until_closed() {
    let m = machine();
    let pool = SshPool::new().unwrap();
    assert!(!pool.is_connected(&m.target, &m.pinned, &m.private));
    let first = connection_pid(&pool, &m);
    assert!(pool.is_connected(&m.target, &m.pinned, &m.private));
    assert_eq!(
        connection_pid(&pool, &m),
        first,
        "second command used a new connection"
    );

    // Parallel first commands on another pool also end up on one connection.
    let pool2 = SshPool::new().unwrap();
    let pids: Vec<u32> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..6)
            .map(|_| s.spawn(|| connection_pid(&pool2, &m)))
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(pids.iter().all(|p| *p == pids[0]), "{pids:?}");
    assert_ne!(pids[0], first);

    // close() ends the connection on the server side too; the next command reconnects.
    pool.close(&m.target);
    assert!(!pool.is_connected(&m.target, &m.pinned, &m.private));
    assert!(
        wait_gone(first),
        "sshd connection {first} still up after close"
    );
    let again = connection_pid(&pool, &m);
    assert_ne!(again, first);

    // Dropping a pool closes its masters.
    drop(pool);
    assert!(
        wait_gone(again),
        "sshd connection {again} still up after drop"
    );
    drop(pool2);
    assert!(
        wait_gone(pids[0]),
        "sshd connection {} still up after drop",
        pids[0]
    );
}

#[test]
fn changed_host_key_is_refused_and_nothing_runs() {
    let mut m = machine();
    let pool = SshPool::new().unwrap();
    let old_fp = m.sshd.host_key_fingerprint();
    assert_eq!(m.pinned.fingerprint(), old_fp);
    connection_pid(&pool, &m);

    m.sshd.restart_with_new_host_key();
    let new_fp = m.sshd.host_key_fingerprint();
    assert_ne!(new_fp, old_fp);
    // A master opened before the change would still serve the old, verified connection.
    pool.close(&m.target);

    let marker_dir = tempfile::tempdir().unwrap();
    let marker = marker_dir.path().join("ran");
    let cmd = format!("touch {}", quote(marker.to_str().unwrap()));
    for p in [&pool, &SshPool::new().unwrap()] {
        let err = p
            .exec(&m.target, &m.pinned, &m.private, &cmd, None)
            .unwrap_err();
        match &err {
            SshError::HostKeyMismatch {
                target,
                expected,
                found,
            } => {
                assert_eq!(target, "lab.m1");
                assert_eq!(expected, &old_fp);
                assert_eq!(found, &new_fp);
            }
            other => panic!("expected HostKeyMismatch, got {other:?}"),
        }
        let msg = err.to_string();
        assert!(msg.contains("refusing to work on this machine"), "{msg}");
        assert!(msg.contains("orbiter/hostkeys.yml"), "{msg}");
        assert!(
            !marker.exists(),
            "the command ran despite the changed host key"
        );
    }
    assert!(matches!(
        pool.can_login(&m.target, &m.pinned, &m.private),
        Err(SshError::HostKeyMismatch { .. })
    ));
    assert!(matches!(
        pool.read_file(&m.target, &m.pinned, &m.private, "/etc/hostname"),
        Err(SshError::HostKeyMismatch { .. })
    ));

    // Pinning the new key works again.
    let repinned = scan_host_key(&m.target).unwrap();
    assert_eq!(repinned.fingerprint(), new_fp);
    pool.exec(&m.target, &repinned, &m.private, "true", None)
        .unwrap();
}

#[test]
fn scan_returns_the_servers_ed25519_key_without_comment() {
    let m = machine();
    let scanned = scan_host_key(&m.target).unwrap();
    assert_eq!(scanned, m.pinned);
    assert_eq!(scanned.algorithm(), "ssh-ed25519");
    assert_eq!(scanned.fingerprint(), fingerprint(&m.sshd.host_key_pub));
    assert!(
        !scanned.0.contains("orb-test-sshd"),
        "comment kept: {}",
        scanned.0
    );
}

#[test]
fn wrong_private_key_is_auth_failed_and_secrets_stay_out_of_errors() {
    let m = machine();
    let pool = SshPool::new().unwrap();
    let (wrong, _) = keypair();
    let err = pool
        .exec(&m.target, &m.pinned, &wrong, "true", None)
        .unwrap_err();
    assert!(
        matches!(&err, SshError::AuthFailed { target } if target == "lab.m1"),
        "{err:?}"
    );
    let shown = format!("{err} {err:?} {pool:?}");
    for line in wrong.lines().chain(m.private.lines()) {
        if !line.starts_with("-----") {
            assert!(!shown.contains(line), "key material in error: {shown}");
        }
    }
    assert!(!pool.can_login(&m.target, &m.pinned, &wrong).unwrap());
    assert!(pool.can_login(&m.target, &m.pinned, &m.private).unwrap());

    // Garbage instead of a key is refused before ssh runs, without echoing it.
    let err = pool
        .exec(&m.target, &m.pinned, "hunter2", "true", None)
        .unwrap_err();
    assert!(matches!(err, SshError::Invalid { .. }), "{err:?}");
    assert!(!format!("{err} {err:?}").contains("hunter2"));

    // A malformed pinned key is refused too.
    let err = pool
        .exec(
            &m.target,
            &HostKey("ssh-ed25519 AAAA".to_owned()),
            &m.private,
            "true",
            None,
        )
        .unwrap_err();
    assert!(matches!(err, SshError::Invalid { .. }), "{err:?}");
}

#[test]
fn closed_port_is_unreachable() {
    let (private, public) = keypair();
    let sshd = Sshd::start(&public);
    let target = Target {
        id: "lab.gone".to_owned(),
        host: IpAddr::V4(Ipv4Addr::LOCALHOST),
        port: closed_port(),
        user: current_user(),
    };
    let pinned = HostKey::parse(&sshd.host_key_pub).unwrap();
    let pool = SshPool::new().unwrap();
    let started = Instant::now();
    let err = pool
        .exec(&target, &pinned, &private, "true", None)
        .unwrap_err();
    match &err {
        SshError::Unreachable { target, reason } => {
            assert_eq!(target, "lab.gone");
            assert!(reason.contains("Connection refused"), "{reason}");
        }
        other => panic!("expected Unreachable, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(matches!(
        pool.can_login(&target, &pinned, &private),
        Err(SshError::Unreachable { .. })
    ));
    assert!(matches!(
        scan_host_key(&target),
        Err(SshError::Unreachable { .. })
    ));
}

#[test]
fn generated_key_logs_in_once_authorized() {
    let (private, public) = generate_keypair("orbiter maintenance lab").unwrap();
    let (other_private, other_public) = generate_keypair("other").unwrap();
    assert_ne!(public, other_public);

    // Only the generated key is authorized.
    let sshd = Sshd::start(&public);
    let target = Target {
        id: "lab.m2".to_owned(),
        host: IpAddr::V4(Ipv4Addr::LOCALHOST),
        port: sshd.port,
        user: current_user(),
    };
    let pinned = HostKey::parse(&sshd.host_key_pub).unwrap();
    let pool = SshPool::new().unwrap();
    assert!(pool.can_login(&target, &pinned, &private).unwrap());
    assert!(!pool.can_login(&target, &pinned, &other_private).unwrap());
    let out = pool
        .exec(&target, &pinned, &private, "echo ok", None)
        .unwrap();
    assert_eq!(out.stdout, b"ok\n");
}

#[test]
fn connection_lost_mid_command_is_unreachable_not_a_command_status() {
    let m = machine();
    let pool = SshPool::new().unwrap();
    let conn = connection_pid(&pool, &m);
    let started = Instant::now();
    let result = std::thread::scope(|s| {
        let h = s.spawn(|| pool.exec(&m.target, &m.pinned, &m.private, "sleep 30", None));
        std::thread::sleep(Duration::from_millis(500));
        // SAFETY: plain kill(2) of the sshd process serving our connection (a test child).
        unsafe { libc::kill(conn as i32, libc::SIGKILL) };
        h.join().unwrap()
    });
    assert!(started.elapsed() < Duration::from_secs(20));
    match result {
        Err(SshError::Unreachable { target, reason }) => {
            assert_eq!(target, "lab.m1");
            assert!(!reason.is_empty());
        }
        other => panic!("expected Unreachable, got {other:?}"),
    }
    // The next command reconnects.
    assert_ne!(connection_pid(&pool, &m), conn);
}

#[test]
fn a_command_that_hangs_is_killed_at_its_deadline_and_named() {
    let m = machine();
    let pool = SshPool::new().unwrap();
    let limits = orbiter::ssh::Limits {
        deadline: Duration::from_secs(2),
        ..Default::default()
    };
    let started = Instant::now();
    let e = pool
        .exec_within(&m.target, &m.pinned, &m.private, "sleep 1000", None, limits)
        .unwrap_err();
    let took = started.elapsed();
    assert!(matches!(e, SshError::TimedOut { .. }), "{e:?}");
    assert!(
        e.to_string().contains("timed out after 2 s") && e.to_string().contains("sleep 1000"),
        "{e}"
    );
    assert!(
        took < Duration::from_secs(8),
        "the deadline held the caller {took:?}"
    );
    // The connection still serves the next command.
    let out = pool
        .exec(&m.target, &m.pinned, &m.private, "echo alive", None)
        .unwrap();
    assert_eq!(out.stdout, b"alive\n");
}

#[test]
fn endless_output_is_cut_at_the_cap_and_the_command_killed() {
    let m = machine();
    let pool = SshPool::new().unwrap();
    let limits = orbiter::ssh::Limits {
        max_output: 1 << 20,
        deadline: Duration::from_secs(60),
    };
    let started = Instant::now();
    // Endless: `yes` never stops on its own.
    let e = pool
        .exec_within(&m.target, &m.pinned, &m.private, "yes", None, limits)
        .unwrap_err();
    assert!(
        matches!(
            e,
            SshError::TooMuchOutput {
                limit: 1_048_576,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    // Nothing of it is kept: the next command's output is its own.
    let out = pool
        .exec(&m.target, &m.pinned, &m.private, "echo next", None)
        .unwrap();
    assert_eq!(out.stdout, b"next\n");
}

#[test]
fn a_file_is_streamed_between_machines_and_a_missing_one_leaves_nothing() {
    let (a, b) = (machine(), machine());
    let pool = SshPool::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("snap.db");
    let dst = dir.path().join("backups/snap.db");
    // Larger than any capture cap: it must be streamed, not read into memory.
    let content: Vec<u8> = (0..=255u8).cycle().take(24 << 20).collect();
    fs::write(&src, &content).unwrap();
    fn end(m: &Machine) -> orbiter::ssh::Endpoint<'_> {
        orbiter::ssh::Endpoint {
            target: &m.target,
            pinned: &m.pinned,
            key_pem: &m.private,
        }
    }
    let (from, to) = (end(&a), end(&b));
    let found = pool
        .copy_between(
            &from,
            src.to_str().unwrap(),
            &to,
            dst.to_str().unwrap(),
            0o600,
            Duration::from_secs(120),
        )
        .unwrap();
    assert!(found);
    assert!(fs::read(&dst).unwrap() == content, "the copy differs");
    assert_eq!(
        fs::metadata(&dst).unwrap().permissions().mode() & 0o7777,
        0o600
    );
    let missing = dir.path().join("nothing.db");
    let other = dir.path().join("backups/other.db");
    let found = pool
        .copy_between(
            &from,
            missing.to_str().unwrap(),
            &to,
            other.to_str().unwrap(),
            0o600,
            Duration::from_secs(60),
        )
        .unwrap();
    assert!(!found);
    let left: Vec<_> = fs::read_dir(dir.path().join("backups"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left, ["snap.db"], "a failed copy left something behind");
}
