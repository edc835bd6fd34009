//! How the agent gets onto a machine: the systemd unit, the upload into a root-only directory,
//! and idempotent install/upgrade and uninstall scripts that Orbiter runs over SSH as root
//! (`sudo -n sh -s -- UPLOAD < script` unless it logs in as root).

use crate::paths::{
    BINARY as BINARY_PATH, CONFIG_DIR, MODULES_CONF, SSHD_DROPIN, STATE_DIR, SYSCTL_CONF,
    UNIT_PATH, UPLOAD as UPLOAD_PATH, UPLOAD_DIR,
};

/// The systemd unit. Type=notify: "started" means the first pass is done. The watchdog is
/// fed even during long package installs. KillMode=mixed + a long stop timeout let a
/// running package transaction finish (the agent stops between items). MemoryMax is far
/// above the agent's ~20 MiB so only a leak trips it.
pub const UNIT: &str = "[Unit]
Description=Orbiter node agent (makes this machine match its node-desired state)
Wants=network-online.target
After=network-online.target
StartLimitIntervalSec=0

[Service]
Type=notify
NotifyAccess=main
ExecStart=/usr/local/bin/node-agent run
Restart=always
RestartSec=5
TimeoutStartSec=3600
TimeoutStopSec=300
KillMode=mixed
WatchdogSec=120
MemoryAccounting=yes
CPUAccounting=yes
MemoryMax=128M
UMask=0022

[Install]
WantedBy=multi-user.target
";

/// Where the scripts act: the real paths, or a scratch tree in the tests.
struct Layout<'a> {
    bin: &'a str,
    unit: &'a str,
    config_dir: &'a str,
    state_dir: &'a str,
    upload_dir: &'a str,
    upload: &'a str,
}

const SYSTEM: Layout<'static> = Layout {
    bin: BINARY_PATH,
    unit: UNIT_PATH,
    config_dir: CONFIG_DIR,
    state_dir: STATE_DIR,
    upload_dir: UPLOAD_DIR,
    upload: UPLOAD_PATH,
};

/// `safe_dirs DIR…` (shell): exit 8 unless every existing DIR is a directory (not a link)
/// owned by root (the script's own user, which is root on a machine) and not writable by its
/// group or others unless sticky: nobody else may be able to swap a link into a directory
/// the scripts write in. Missing ones are skipped (root creates them).
const SAFE_DIRS: &str = r#"safe_dirs() {
  for d in "$@"; do
    if [ -L "$d" ]; then say "$d is a symlink; refused (node-agent never follows links)"; exit 8; fi
    [ -e "$d" ] || continue
    if [ ! -d "$d" ]; then say "$d is not a directory; refused"; exit 8; fi
    o=$(stat -c '%u %a' -- "$d")
    u=${o%% *}; m=${o#* }
    if [ "$u" != 0 ] && [ "$u" != "$(id -u)" ]; then say "$d is owned by uid $u, not root; refused (its owner could swap a link in)"; exit 8; fi
    if [ $((0$m & 022)) -ne 0 ] && [ $((0$m & 01000)) -eq 0 ]; then say "$d is writable by its group or others (mode $m) without the sticky bit; refused"; exit 8; fi
  done
}"#;

/// `/a/b/c` → `/ /a /a/b /a/b/c` (each once, in order, over all `paths`).
fn with_ancestors(paths: &[&str]) -> String {
    let mut out: Vec<String> = Vec::new();
    for p in paths {
        let mut acc = String::new();
        let mut push = |s: &str| {
            if !out.iter().any(|o| o == s) {
                out.push(s.to_owned());
            }
        };
        push("/");
        for c in p.split('/').filter(|c| !c.is_empty()) {
            acc.push('/');
            acc.push_str(c);
            push(&acc);
        }
    }
    out.join(" ")
}

fn parent(p: &str) -> &str {
    match p.rfind('/') {
        Some(0) => "/",
        Some(i) => &p[..i],
        None => ".",
    }
}

/// A POSIX shell script (run as root, e.g. `sudo -n sh -c SCRIPT`) that takes a new agent
/// binary on stdin and stores it in [`UPLOAD_DIR`] — created 0700 and root-owned here, its
/// parents checked as root's own — under a fresh unpredictable name (`mktemp`, 0600). Its
/// last line of stdout is that path, to be passed to [`install_script`]. Uploads older than an
/// hour (an install that never ran) are removed. Exit code 8: a directory on the way is a link
/// or not root's alone.
pub fn upload_script() -> String {
    upload_script_at(&SYSTEM)
}

fn upload_script_at(l: &Layout) -> String {
    format!(
        r#"set -eu
umask 077
say() {{ echo "node-agent-upload: $*" >&2; }}
{SAFE_DIRS}
safe_dirs {parents}
for d in {state} {upload}; do
  if [ ! -e "$d" ] && [ ! -L "$d" ]; then mkdir -m 0700 -- "$d"; fi
  safe_dirs "$d"
  chmod 0700 -- "$d"
done
find {upload} -maxdepth 1 -type f -name 'node-agent.*' -mmin +60 -exec rm -f -- {{}} + 2>/dev/null || :
t=$(mktemp {upload}/node-agent.XXXXXXXXXX)
trap 'rm -f -- "$t"' EXIT
cat > "$t"
trap - EXIT
echo "$t"
"#,
        parents = with_ancestors(&[parent(l.state_dir)]),
        state = l.state_dir,
        upload = l.upload_dir,
    )
}

/// A POSIX shell script that installs or upgrades the agent idempotently, run as root with
/// the upload's path (`sudo -n sh -s -- UPLOAD < script`; default [`UPLOAD_PATH`]). The
/// upload is only taken from [`UPLOAD_DIR`] and never through a link. The binary is copied to
/// a fresh root-owned temp file (`mktemp`) beside the installed one — a directory only root may write, so
/// the final `mv -T` is an atomic rename — and that copy, the one installed, is what is checked
/// against `binary_sha256` and `version`; it replaces the installed binary only when that
/// differs (a link there is replaced, not followed). The unit is written the same way, only
/// when it differs; then the service is enabled and (re)started if anything changed. Every
/// directory written in must be root's alone. The last line of stdout is
/// `node-agent-install: version=… binary=installed|unchanged unit=installed|unchanged
/// service=restarted|started|running`. Exit codes: 3 upload missing (or not a regular file in
/// the upload directory), 4 checksum mismatch, 5 binary does not run here, 6 wrong version,
/// 7 service failed to start, 8 a directory on the way is a link or writable by others.
/// The upload is removed whatever the outcome.
pub fn install_script(binary_sha256: &str, version: &str) -> String {
    install_script_at(&SYSTEM, binary_sha256, version)
}

fn install_script_at(l: &Layout, binary_sha256: &str, version: &str) -> String {
    let sha: String = binary_sha256
        .chars()
        .filter(char::is_ascii_hexdigit)
        .collect::<String>()
        .to_ascii_lowercase();
    let version: String = version
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || ".+-~".contains(*c))
        .collect();
    format!(
        r#"#!/bin/sh
# node-agent install/upgrade; safe to run again.
set -eu
umask 022
UPLOAD_DIR={upload_dir}
UPLOAD="${{1:-{upload}}}"
BIN={bin}
UNIT={unit}
WANT_SHA={sha}
WANT_VERSION='{version}'
say() {{ echo "node-agent-install: $*" >&2; }}
{SAFE_DIRS}
new=""
unit_tmp=""
in_upload_dir=""
cleanup() {{
  if [ -n "$in_upload_dir" ]; then rm -f -- "$UPLOAD"; fi
  if [ -n "$new" ]; then rm -f -- "$new"; fi
  if [ -n "$unit_tmp" ]; then rm -f -- "$unit_tmp"; fi
}}
trap cleanup EXIT
name=${{UPLOAD#"$UPLOAD_DIR"/}}
case "$name" in
  "$UPLOAD"|""|*/*|.|..) say "$UPLOAD is not a file in $UPLOAD_DIR; refused (uploads are only taken from that root-only directory)"; exit 3 ;;
esac
safe_dirs {upload_dirs}
in_upload_dir=yes
safe_dirs {dirs}
have_sha=""
if [ -f "$BIN" ] && [ ! -L "$BIN" ]; then have_sha=$(sha256sum -- "$BIN" | cut -d' ' -f1); fi
if [ "$have_sha" = "$WANT_SHA" ]; then
  binary=unchanged
else
  if [ -L "$UPLOAD" ] || [ ! -f "$UPLOAD" ]; then say "$UPLOAD is missing or not a regular file; upload node-agent $WANT_VERSION (sha256 $WANT_SHA) there first"; exit 3; fi
  mkdir -p -- "$(dirname -- "$BIN")"
  new=$(mktemp "$BIN.new.XXXXXXXXXX")
  cat -- "$UPLOAD" > "$new"
  chmod 0755 -- "$new"
  got=$(sha256sum -- "$new" | cut -d' ' -f1)
  if [ "$got" != "$WANT_SHA" ]; then say "$UPLOAD has sha256 $got, expected $WANT_SHA (incomplete upload?)"; exit 4; fi
  if ! out=$("$new" --version 2>&1); then say "the uploaded binary does not run on this machine: $out"; exit 5; fi
  if [ "$out" != "node-agent $WANT_VERSION" ]; then say "the uploaded binary reports '$out', expected 'node-agent $WANT_VERSION'"; exit 6; fi
  mv -fT -- "$new" "$BIN"
  new=""
  binary=installed
fi
mkdir -p -- {config_dir} {state_dir}
safe_dirs {config_dir} {state_dir}
chmod 0700 -- {config_dir} {state_dir}
mkdir -p -- "$(dirname -- "$UNIT")"
unit_tmp=$(mktemp "$UNIT.XXXXXXXXXX")
cat > "$unit_tmp" <<'NODE_AGENT_UNIT_EOF'
{UNIT}NODE_AGENT_UNIT_EOF
if [ ! -L "$UNIT" ] && cmp -s -- "$unit_tmp" "$UNIT"; then
  unit=unchanged
else
  chmod 0644 -- "$unit_tmp"
  mv -fT -- "$unit_tmp" "$UNIT"
  unit_tmp=""
  unit=installed
  systemctl daemon-reload
fi
systemctl enable --quiet node-agent.service
if [ "$binary" = installed ] || [ "$unit" = installed ]; then
  action=restart; service=restarted
elif systemctl is-active --quiet node-agent.service; then
  action=""; service=running
else
  action=start; service=started
fi
if [ -n "$action" ] && ! systemctl "$action" node-agent.service; then
  say "node-agent.service failed to $action; see journalctl -u node-agent"; exit 7
fi
echo "node-agent-install: version=$WANT_VERSION binary=$binary unit=$unit service=$service"
"#,
        upload_dir = l.upload_dir,
        upload = l.upload,
        bin = l.bin,
        unit = l.unit,
        dirs = with_ancestors(&[
            parent(l.bin),
            parent(l.unit),
            parent(l.config_dir),
            parent(l.state_dir)
        ]),
        upload_dirs = with_ancestors(&[l.upload_dir]),
        config_dir = l.config_dir,
        state_dir = l.state_dir,
    )
}

/// A POSIX shell script that removes the agent and what it owns on the system: service,
/// unit, binary, its directories, its nftables table, its sysctl/modules-load/sshd files.
/// Packages, files and units it managed for workloads stay (they are the workload's).
pub fn uninstall_script() -> String {
    format!(
        r#"#!/bin/sh
# node-agent uninstall; safe to run again.
set -u
systemctl disable --now --quiet node-agent.service 2>/dev/null || true
rm -f {UNIT_PATH}
systemctl daemon-reload 2>/dev/null || true
if command -v nft >/dev/null 2>&1; then nft delete table inet node_agent 2>/dev/null || true; fi
rm -f {sysctl} {modules}
if [ -f {sshd} ]; then
  rm -f {sshd}
  systemctl try-reload-or-restart ssh.service 2>/dev/null || systemctl try-reload-or-restart sshd.service 2>/dev/null || true
fi
rm -rf {CONFIG_DIR} {STATE_DIR}
rm -f {BINARY_PATH}
echo "node-agent-uninstall: done"
"#,
        sysctl = SYSCTL_CONF,
        modules = MODULES_CONF,
        sshd = SSHD_DROPIN,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_are_valid_shell_and_embed_the_unit() {
        let s = install_script("ABCDEF0123; rm -rf /", "0.1.0'; reboot");
        assert!(
            s.contains("WANT_SHA=abcdef0123f\n") && s.contains("WANT_VERSION='0.1.0reboot'"),
            "inputs are sanitised"
        );
        assert!(s.contains(UNIT));
        assert!(s.contains(&format!("UPLOAD_DIR={UPLOAD_DIR}\n")) && !s.contains("/var/tmp"));
        for script in [s, upload_script(), uninstall_script()] {
            let out = std::process::Command::new("sh")
                .args(["-n", "-c", &script])
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }

    #[test]
    fn unit_has_the_required_settings() {
        for line in [
            "Type=notify",
            "Restart=always",
            "WatchdogSec=",
            "MemoryAccounting=yes",
            "CPUAccounting=yes",
            "MemoryMax=128M",
            "ExecStart=/usr/local/bin/node-agent run",
        ] {
            assert!(UNIT.contains(line), "{line}");
        }
    }

    /// A scratch tree where the scripts run for real (as any user), with a fake `systemctl`.
    struct Scratch {
        dir: std::path::PathBuf,
        paths: [String; 6],
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    impl Scratch {
        fn new() -> Scratch {
            use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
            static SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
            let n = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let dir = std::env::temp_dir()
                .join(format!("node-protocol-install-{}-{n}", std::process::id()));
            std::fs::DirBuilder::new().mode(0o700).create(&dir).unwrap();
            let fake = dir.join("fake/systemctl");
            std::fs::create_dir_all(fake.parent().unwrap()).unwrap();
            std::fs::write(
                &fake,
                "#!/bin/sh\nd=$(dirname \"$0\")\necho \"$*\" >> \"$d/log\"\ncase \"$1\" in is-active) [ -e \"$d/active\" ] ;; start|restart) touch \"$d/active\" ;; esac\n",
            )
            .unwrap();
            std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
            for d in ["usr/local/bin", "etc/systemd/system", "var/lib"] {
                std::fs::DirBuilder::new()
                    .mode(0o755)
                    .recursive(true)
                    .create(dir.join(d))
                    .unwrap();
            }
            let d = dir.to_str().unwrap();
            let paths = [
                format!("{d}/usr/local/bin/node-agent"),
                format!("{d}/etc/systemd/system/node-agent.service"),
                format!("{d}/etc/node-agent"),
                format!("{d}/var/lib/node-agent"),
                format!("{d}/var/lib/node-agent/upload"),
                format!("{d}/var/lib/node-agent/upload/node-agent"),
            ];
            Scratch { dir, paths }
        }

        fn layout(&self) -> Layout<'_> {
            let p = &self.paths;
            Layout {
                bin: &p[0],
                unit: &p[1],
                config_dir: &p[2],
                state_dir: &p[3],
                upload_dir: &p[4],
                upload: &p[5],
            }
        }

        /// Runs `script` with `args` and `stdin`: exit code, stdout, stderr.
        fn run(&self, script: &str, args: &[&str], stdin: &[u8]) -> (i32, String, String) {
            use std::io::Write as _;
            let path = format!(
                "{}:{}",
                self.dir.join("fake").display(),
                std::env::var("PATH").unwrap_or_default()
            );
            let mut child = std::process::Command::new("sh")
                .args(["-c", script, "sh"])
                .args(args)
                .env("PATH", path)
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            child.stdin.take().unwrap().write_all(stdin).unwrap();
            let out = child.wait_with_output().unwrap();
            let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
            (
                out.status.code().unwrap_or(-1),
                text(&out.stdout),
                text(&out.stderr),
            )
        }

        /// An "agent" that answers `--version`, and its sha256.
        fn agent(&self, version: &str) -> (Vec<u8>, String) {
            let bin = format!("#!/bin/sh\necho 'node-agent {version}'\n").into_bytes();
            let (_, sha, _) = self.run("sha256sum | cut -d' ' -f1", &[], &bin);
            (bin, sha.trim().to_owned())
        }

        fn upload(&self, bin: &[u8]) -> String {
            let (code, out, err) = self.run(&upload_script_at(&self.layout()), &[], bin);
            assert_eq!(code, 0, "{err}");
            out.lines().last().unwrap().to_owned()
        }
    }

    fn mode(p: &str) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
    }

    fn entries(dir: &str) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn upload_into_a_root_only_directory_then_install_once() {
        let s = Scratch::new();
        let l = s.layout();
        let (bin, sha) = s.agent("9.9.9");
        let up = s.upload(&bin);
        let name = up
            .strip_prefix(&format!("{}/node-agent.", l.upload_dir))
            .unwrap();
        assert!(
            name.len() == 10 && name.chars().all(|c| c.is_ascii_alphanumeric()),
            "{up}"
        );
        assert_eq!(
            (mode(l.upload_dir), mode(l.state_dir), mode(&up)),
            (0o700, 0o700, 0o600)
        );
        assert_eq!(std::fs::read(&up).unwrap(), bin);
        let script = install_script_at(&l, &sha, "9.9.9");
        let (code, out, err) = s.run(&script, &[&up], b"");
        assert_eq!(code, 0, "{err}");
        assert!(
            out.ends_with("binary=installed unit=installed service=restarted\n"),
            "{out}"
        );
        assert_eq!((std::fs::read(l.bin).unwrap(), mode(l.bin)), (bin, 0o755));
        assert_eq!(std::fs::read_to_string(l.unit).unwrap(), UNIT);
        assert_eq!((mode(l.config_dir), mode(l.state_dir)), (0o700, 0o700));
        assert!(entries(l.upload_dir).is_empty(), "the upload stays behind");
        assert_eq!(
            entries(&s.paths[0].replace("/node-agent", "")),
            ["node-agent"]
        );
        assert_eq!(
            entries(&s.paths[1].replace("/node-agent.service", "")),
            ["node-agent.service"]
        );
        // Again, without an upload: nothing to do.
        let (code, out, err) = s.run(&script, &[], b"");
        assert_eq!(code, 0, "{err}");
        assert!(
            out.ends_with("binary=unchanged unit=unchanged service=running\n"),
            "{out}"
        );
    }

    #[test]
    fn uploads_come_only_from_their_directory_and_links_are_never_followed() {
        let s = Scratch::new();
        let l = s.layout();
        let (bin, sha) = s.agent("9.9.9");
        let script = install_script_at(&l, &sha, "9.9.9");
        let elsewhere = s.dir.join("elsewhere");
        std::fs::write(&elsewhere, &bin).unwrap();
        let elsewhere = elsewhere.to_str().unwrap();
        for bad in [
            elsewhere.to_owned(),
            format!("{}/../../elsewhere", l.upload_dir),
        ] {
            let (code, _, err) = s.run(&script, &[&bad], b"");
            assert_eq!(code, 3, "{bad}: {err}");
        }
        // A link in the upload directory, to a file with the right content.
        s.upload(b"");
        std::os::unix::fs::symlink(elsewhere, l.upload).unwrap();
        let (code, _, err) = s.run(&script, &[], b"");
        assert_eq!(code, 3, "{err}");
        assert_eq!(
            std::fs::read(elsewhere).unwrap(),
            bin,
            "the link's target was touched"
        );
        // A link at the installed binary, to a file standing in for /etc/shadow: replaced.
        let shadow = s.dir.join("shadow");
        std::fs::write(&shadow, "secret\n").unwrap();
        std::os::unix::fs::symlink(&shadow, l.bin).unwrap();
        let (code, out, err) = s.run(&script, &[&s.upload(&bin)], b"");
        assert_eq!(code, 0, "{err}");
        assert!(out.contains("binary=installed"), "{out}");
        assert_eq!(std::fs::read(&shadow).unwrap(), b"secret\n");
        assert!(std::fs::symlink_metadata(l.bin).unwrap().is_file());
        // The copy that would be installed is the one checked.
        let (code, _, err) = s.run(
            &install_script_at(&l, &"0".repeat(64), "9.9.9"),
            &[&s.upload(b"other")],
            b"",
        );
        assert_eq!(code, 4, "{err}");
        assert_eq!(std::fs::read(l.bin).unwrap(), bin);
        assert_eq!(
            entries(&s.paths[0].replace("/node-agent", "")),
            ["node-agent"]
        );
        let (code, _, err) = s.run(
            &install_script_at(&l, &sha, "1.0.0"),
            &[&s.upload(&bin)],
            b"",
        );
        assert_eq!(
            code, 0,
            "{err} (unchanged binary: the version is not asked again)"
        );
        // Directories someone else could write in are refused.
        let bindir = s.dir.join("usr/local/bin");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&bindir, std::fs::Permissions::from_mode(0o777)).unwrap();
        let (code, _, err) = s.run(&script, &[], b"");
        assert_eq!(code, 8, "{err}");
        assert!(
            err.contains(
                "bin is writable by its group or others (mode 777) without the sticky bit"
            ),
            "{err}"
        );
        std::fs::set_permissions(&bindir, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::rename(s.dir.join("var/lib"), s.dir.join("var/lib.real")).unwrap();
        std::os::unix::fs::symlink(s.dir.join("var/lib.real"), s.dir.join("var/lib")).unwrap();
        for script in [upload_script_at(&l), script] {
            let (code, _, err) = s.run(&script, &[], b"");
            assert_eq!(code, 8, "{err}");
            assert!(
                err.contains("var/lib is a symlink; refused (node-agent never follows links)"),
                "{err}"
            );
        }
    }
}
