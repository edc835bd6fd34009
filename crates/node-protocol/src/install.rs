//! How the agent gets onto a machine: the systemd unit, and idempotent install/upgrade and
//! uninstall scripts that Orbiter runs over SSH with sudo (`sudo sh -s -- UPLOAD < script`).

use crate::paths::{
    BINARY as BINARY_PATH, MODULES_CONF, SSHD_DROPIN, SYSCTL_CONF, UNIT_PATH, UPLOAD as UPLOAD_PATH,
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

/// A POSIX shell script that installs or upgrades the agent idempotently: the binary at
/// `$1` (default [`UPLOAD_PATH`]) is checked against `binary_sha256` and `version` and
/// installed only when the installed one differs; the unit is written only when it differs;
/// then the service is enabled and (re)started if anything changed. The last line of
/// stdout is `node-agent-install: version=… binary=installed|unchanged unit=…
/// service=restarted|started|running`. Exit codes: 3 upload missing, 4 checksum mismatch,
/// 5 binary does not run here, 6 wrong version, 7 service failed to start.
pub fn install_script(binary_sha256: &str, version: &str) -> String {
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
UPLOAD="${{1:-{UPLOAD_PATH}}}"
BIN={BINARY_PATH}
UNIT={UNIT_PATH}
WANT_SHA={sha}
WANT_VERSION='{version}'
say() {{ echo "node-agent-install: $*" >&2; }}
have_sha=""
if [ -f "$BIN" ]; then have_sha=$(sha256sum "$BIN" | cut -d' ' -f1); fi
if [ "$have_sha" = "$WANT_SHA" ]; then
  binary=unchanged
else
  if [ ! -f "$UPLOAD" ]; then say "$UPLOAD is missing; upload node-agent $WANT_VERSION (sha256 $WANT_SHA) there first"; exit 3; fi
  got=$(sha256sum "$UPLOAD" | cut -d' ' -f1)
  if [ "$got" != "$WANT_SHA" ]; then say "$UPLOAD has sha256 $got, expected $WANT_SHA (incomplete upload?)"; exit 4; fi
  mkdir -p "$(dirname "$BIN")"
  cp "$UPLOAD" "$BIN.new"
  chown root:root "$BIN.new"
  chmod 0755 "$BIN.new"
  if ! out=$("$BIN.new" --version 2>&1); then rm -f "$BIN.new"; say "the uploaded binary does not run on this machine: $out"; exit 5; fi
  if [ "$out" != "node-agent $WANT_VERSION" ]; then rm -f "$BIN.new"; say "the uploaded binary reports '$out', expected 'node-agent $WANT_VERSION'"; exit 6; fi
  mv -f "$BIN.new" "$BIN"
  binary=installed
fi
rm -f "$UPLOAD"
mkdir -p /etc/node-agent /var/lib/node-agent
chmod 0700 /etc/node-agent /var/lib/node-agent
tmp=$(mktemp "$UNIT.XXXXXX")
cat > "$tmp" <<'NODE_AGENT_UNIT_EOF'
{UNIT}NODE_AGENT_UNIT_EOF
if cmp -s "$tmp" "$UNIT"; then
  rm -f "$tmp"
  unit=unchanged
else
  chmod 0644 "$tmp"
  mv -f "$tmp" "$UNIT"
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
"#
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
rm -rf /etc/node-agent /var/lib/node-agent
rm -f {BINARY_PATH} {UPLOAD_PATH}
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
        for script in [s, uninstall_script()] {
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
}
