//! A real OpenSSH server on 127.0.0.1 that serves Git over SSH to one authorized key.

use std::fs;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::keys::{fingerprint, generate};

const SSHD: &str = "/usr/sbin/sshd";
/// How long sshd may take to report that it listens.
const START_TIMEOUT: Duration = Duration::from_secs(15);

/// `/usr/sbin/sshd -D -e` on a free loopback port with its own host key and config.
/// Dropping it stops the server (and sessions still attached to its process group).
pub struct Sshd {
    /// TCP port on 127.0.0.1.
    pub port: u16,
    /// The server's current host public key line (`ssh-ed25519 AAAA… comment`).
    pub host_key_pub: String,
    dir: TempDir,
    child: Option<Child>,
}

impl Sshd {
    /// Starts sshd accepting public-key logins for the current user (root in CI) with
    /// `authorized_pubkey`. Panics with sshd's log when it cannot start.
    pub fn start(authorized_pubkey: &str) -> Sshd {
        assert!(
            Path::new(SSHD).exists(),
            "{SSHD} is missing: apt-get install -y openssh-server"
        );
        // sshd refuses to start without its privilege separation directory.
        fs::create_dir_all("/run/sshd").expect("create /run/sshd");
        let dir = tempfile::Builder::new()
            .prefix("orb-sshd-")
            .tempdir()
            .expect("create temp dir for sshd");
        fs::write(
            dir.path().join("authorized_keys"),
            format!("{}\n", authorized_pubkey.trim_end()),
        )
        .expect("write authorized_keys");
        let mut sshd = Sshd {
            port: 0,
            host_key_pub: String::new(),
            dir,
            child: None,
        };
        sshd.new_host_key();
        // Another test may grab the port between probing and binding: retry on a fresh one.
        let mut last_log = String::new();
        for _ in 0..10 {
            sshd.port = free_port();
            match sshd.spawn() {
                Ok(()) => return sshd,
                Err(log) => last_log = log,
            }
        }
        panic!("sshd did not start after 10 ports; last log:\n{last_log}");
    }

    /// Stops the server, gives it a brand-new host key and starts it again on the same port:
    /// what a client sees when a server is replaced (or impersonated).
    pub fn restart_with_new_host_key(&mut self) {
        self.stop();
        self.new_host_key();
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            match self.spawn() {
                Ok(()) => return,
                Err(log) if Instant::now() > deadline => {
                    panic!("sshd did not restart on port {}:\n{log}", self.port)
                }
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }

    /// `ssh://root@127.0.0.1:PORT/abs/path` for a repository on this machine.
    pub fn url(&self, repo: &Path) -> String {
        format!(
            "ssh://{}@127.0.0.1:{}{}",
            user_name(),
            self.port,
            repo.display()
        )
    }

    /// `SHA256:…` fingerprint of the current host key.
    pub fn host_key_fingerprint(&self) -> String {
        fingerprint(&self.host_key_pub)
    }

    fn host_key_path(&self) -> PathBuf {
        self.dir.path().join("ssh_host_ed25519_key")
    }

    fn new_host_key(&mut self) {
        let key = self.host_key_path();
        let _ = fs::remove_file(&key);
        let _ = fs::remove_file(key.with_extension("pub"));
        generate(&key, "orb-test-sshd");
        self.host_key_pub = fs::read_to_string(key.with_extension("pub"))
            .expect("read host public key")
            .trim_end()
            .to_owned();
    }

    /// Starts sshd on `self.port`; Err(log) when it exits or stays silent.
    fn spawn(&mut self) -> Result<(), String> {
        let d = self.dir.path();
        let config = d.join("sshd_config");
        fs::write(
            &config,
            format!(
                "ListenAddress 127.0.0.1:{port}\n\
                 HostKey {hostkey}\n\
                 PidFile none\n\
                 UsePAM no\n\
                 StrictModes no\n\
                 PermitRootLogin prohibit-password\n\
                 PubkeyAuthentication yes\n\
                 PasswordAuthentication no\n\
                 KbdInteractiveAuthentication no\n\
                 AuthorizedKeysFile {keys}\n\
                 AllowTcpForwarding no\n\
                 X11Forwarding no\n\
                 LogLevel INFO\n",
                port = self.port,
                hostkey = self.host_key_path().display(),
                keys = d.join("authorized_keys").display(),
            ),
        )
        .expect("write sshd_config");
        let log_path = d.join(format!("sshd-{}.log", self.port));
        let log = fs::File::create(&log_path).expect("create sshd log");
        let mut child = Command::new(SSHD)
            .arg("-D")
            .arg("-e")
            .arg("-f")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            // Own process group, so Drop can end the per-connection children too.
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {SSHD}: {e}"));
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let text = fs::read_to_string(&log_path).unwrap_or_default();
            if text.contains("Server listening on") {
                self.child = Some(child);
                return Ok(());
            }
            let exited = child.try_wait().ok().flatten().is_some();
            if exited || Instant::now() > deadline {
                kill_group(&mut child);
                return Err(fs::read_to_string(&log_path).unwrap_or_default());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            kill_group(&mut child);
        }
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        self.stop();
    }
}

fn kill_group(child: &mut Child) {
    if let Ok(pid) = i32::try_from(child.id()) {
        // SAFETY: plain kill(2) on the process group we created for this child.
        unsafe {
            libc::kill(-pid, libc::SIGTERM);
        }
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while child.try_wait().ok().flatten().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A port the kernel just handed out as free on 127.0.0.1.
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local addr").port()
}

/// Login name of the current user (sshd only lets the owner of its process in when not root).
fn user_name() -> String {
    // SAFETY: getpwuid returns a pointer into static storage or null; we copy the name at once.
    unsafe {
        let pw = libc::getpwuid(libc::getuid());
        if pw.is_null() {
            return "root".to_owned();
        }
        std::ffi::CStr::from_ptr((*pw).pw_name)
            .to_string_lossy()
            .into_owned()
    }
}
