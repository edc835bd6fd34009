//! Steps carried out over SSH on one machine: the maintenance key replacing the bootstrap key,
//! the agent, its node-desired document, a cluster kind's commands and file copies.

use super::{Engine, Loaded};
use crate::action::{Action, FileCopy};
use crate::agent_binary::AgentBinary;
use crate::machine::MachineKey;
use crate::observe::{as_root, target};
use crate::observed::{MachineObserved, Reach};
use crate::ssh::{COMMAND_DEADLINE, Endpoint, HostKey, SshPool, Target, quote};
use anyhow::{Result, anyhow};
use node_protocol::install::{install_script, upload_script};
use node_protocol::paths;

/// Applies one machine's steps; shared read-only across the worker threads.
pub(super) struct MachineCtx<'a> {
    pub ssh: &'a SshPool,
    pub agent: &'a AgentBinary,
    pub loaded: &'a Loaded,
}

impl MachineCtx<'_> {
    pub fn apply_machine(&self, m: &MachineObserved, a: &Action) -> Result<()> {
        let t = target(&m.machine);
        let key = &m.machine.key;
        let pinned = self
            .loaded
            .recorded
            .pinned
            .get(key)
            .ok_or_else(|| anyhow!("{key}: host key not pinned"))?;
        let creds = self
            .loaded
            .creds
            .get(&key.provider)
            .ok_or_else(|| anyhow!("{key}: no credentials"))?;
        let maintenance = creds
            .maintenance_private
            .as_deref()
            .ok_or_else(|| anyhow!("{key}: no maintenance key yet"))?;
        let login = match m.reach {
            Reach::Bootstrap => creds.bootstrap_private.as_deref().unwrap_or(maintenance),
            _ => maintenance,
        };
        match a {
            Action::InstallMaintenanceKey { .. } => {
                let public = creds
                    .maintenance_public
                    .as_deref()
                    .ok_or_else(|| anyhow!("no maintenance public key"))?;
                let add = format!(
                    "mkdir -p ~/.ssh && chmod 700 ~/.ssh && touch ~/.ssh/authorized_keys && chmod 600 ~/.ssh/authorized_keys && (grep -qF {k} ~/.ssh/authorized_keys || echo {line} >> ~/.ssh/authorized_keys)",
                    k = quote(key_blob(public)),
                    line = quote(public.trim())
                );
                run(self.ssh, &t, pinned, login, &add)?;
                if !self.ssh.can_login(&t, pinned, maintenance)? {
                    return Err(anyhow!(
                        "{key}: the maintenance key was added but does not log in; the bootstrap key stays"
                    ));
                }
                // Proven: from now on only the maintenance key is authorized.
                let keep = format!(
                    "grep -F {k} ~/.ssh/authorized_keys > ~/.ssh/authorized_keys.new && mv ~/.ssh/authorized_keys.new ~/.ssh/authorized_keys",
                    k = quote(key_blob(public))
                );
                run(self.ssh, &t, pinned, maintenance, &keep)?;
                self.ssh.close(&t);
                Ok(())
            }
            Action::InstallAgent { .. } => {
                let bytes = std::fs::read(&self.agent.path)?;
                // Into the machine's root-only upload directory, under a name mktemp makes up
                // there (never a fixed name in a world-writable directory); it prints the name.
                let out = self.ssh.exec(
                    &t,
                    pinned,
                    login,
                    &as_root(&t.user, &upload_script()),
                    Some(&bytes),
                )?;
                if !out.success() {
                    return Err(anyhow!(
                        "{key}: uploading node-agent failed ({}): {}",
                        out.status,
                        String::from_utf8_lossy(&out.stderr).trim()
                    ));
                }
                let upload = uploaded_path(&out.stdout).ok_or_else(|| {
                    anyhow!(
                        "{key}: the upload script printed no path in {}",
                        paths::UPLOAD_DIR
                    )
                })?;
                // The script checks the copy it installs (sha256, --version) and removes the upload.
                let script =
                    install_script(&self.agent.release.sha256, &self.agent.release.version);
                let sudo = if t.user == "root" { "" } else { "sudo -n " };
                let out = self.ssh.exec(
                    &t,
                    pinned,
                    login,
                    &format!("{sudo}sh -s -- {}", quote(&upload)),
                    Some(script.as_bytes()),
                )?;
                if !out.success() {
                    return Err(anyhow!(
                        "{key}: installing node-agent failed ({}): {}",
                        out.status,
                        String::from_utf8_lossy(&out.stderr).trim()
                    ));
                }
                Ok(())
            }
            Action::WriteNodeDesired { doc, .. } => {
                // The machine's form carries its secrets; it travels over SSH into a 0600 file.
                let text = zeroize::Zeroizing::new(doc.render_for_machine());
                self.ssh
                    .write_file(&t, pinned, login, paths::DESIRED, 0o600, text.as_bytes())?;
                tracing::info!("node-desired generation {} written", doc.generation);
                Ok(())
            }
            other => Err(anyhow!("not a machine step: {}", other.summary())),
        }
    }
}

pub(super) fn run(ssh: &SshPool, t: &Target, pinned: &HostKey, key: &str, cmd: &str) -> Result<()> {
    let out = ssh.exec(t, pinned, key, cmd, None)?;
    if !out.success() {
        return Err(anyhow!(
            "{}: `{}` failed ({}): {}",
            t.id,
            cmd.split_whitespace().next().unwrap_or(""),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(())
}

/// The path the upload script printed last: a file directly in the upload directory, with
/// nothing a shell would take specially (it is quoted anyway).
fn uploaded_path(stdout: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(stdout);
    let path = text.lines().last()?.trim();
    let name = path.strip_prefix(paths::UPLOAD_DIR)?.strip_prefix('/')?;
    let plain = |c: char| c.is_ascii_alphanumeric() || "._-".contains(c);
    (!name.is_empty() && !name.starts_with('.') && name.chars().all(plain)).then(|| path.to_owned())
}

/// How `m` is logged in on as observed: the bootstrap key while only it works, the maintenance
/// key after. `None` when its host key is not pinned or the key is not known.
pub fn session<'a>(l: &'a Loaded, m: &MachineObserved) -> Option<(Target, &'a HostKey, &'a str)> {
    let key = &m.machine.key;
    let pinned = l.recorded.pinned.get(key)?;
    let creds = l.creds.get(&key.provider)?;
    let login = match m.reach {
        Reach::Bootstrap => creds.bootstrap_private.as_deref()?,
        _ => creds.maintenance_private.as_deref()?,
    };
    Some((target(&m.machine), pinned, login))
}

/// The base64 part of an authorized_keys line.
pub fn key_blob(line: &str) -> &str {
    line.split_whitespace().nth(1).unwrap_or(line)
}

impl Engine {
    /// Where and how to log in on `machine` with the maintenance key.
    pub fn login<'a>(
        &self,
        l: &'a Loaded,
        machine: &MachineKey,
    ) -> Result<(Target, &'a HostKey, &'a str)> {
        let m = l
            .providers
            .get(&machine.provider)
            .ok_or_else(|| anyhow!("unknown provider {}", machine.provider))?
            .machines()?
            .into_iter()
            .find(|m| m.key == *machine)
            .ok_or_else(|| anyhow!("{machine} does not exist"))?;
        let pinned = l
            .recorded
            .pinned
            .get(machine)
            .ok_or_else(|| anyhow!("{machine}: host key not pinned"))?;
        let login = l
            .creds
            .get(&machine.provider)
            .and_then(|c| c.maintenance_private.as_deref())
            .ok_or_else(|| anyhow!("{machine}: no maintenance key"))?;
        Ok((target(&m), pinned, login))
    }

    /// Moves `c.path` from `from` to `c.to` (0600, as root), runs `c.after` there, and
    /// removes the source copy once the destination has it.
    /// Streamed from one machine to the other: a snapshot of any size never passes whole
    /// through Orbiter's memory.
    pub(super) fn copy_file(&self, l: &Loaded, from: &MachineKey, c: &FileCopy) -> Result<()> {
        let (t, pinned, login) = self.login(l, from)?;
        let (to, to_pinned, to_login) = self.login(l, &c.to)?;
        if c.to != *from {
            let src = Endpoint {
                target: &t,
                pinned,
                key_pem: login,
            };
            let dst = Endpoint {
                target: &to,
                pinned: to_pinned,
                key_pem: to_login,
            };
            let found =
                self.ssh
                    .copy_between(&src, &c.path, &dst, &c.path, 0o600, COMMAND_DEADLINE)?;
            if !found {
                return Err(anyhow!("{from}: {} is missing", c.path));
            }
        }
        run(
            &self.ssh,
            &to,
            to_pinned,
            to_login,
            &as_root(&to.user, &c.after),
        )?;
        if c.to != *from {
            run(
                &self.ssh,
                &t,
                pinned,
                login,
                &as_root(&t.user, &format!("rm -f -- {}", quote(&c.path))),
            )?;
        }
        Ok(())
    }

    /// Runs a cluster kind's command as root on `machine`; returns its stdout.
    pub(super) fn run_cluster_step(
        &self,
        l: &Loaded,
        machine: &MachineKey,
        command: &str,
    ) -> Result<String> {
        let (t, pinned, login) = self.login(l, machine)?;
        let out = self
            .ssh
            .exec(&t, pinned, login, &as_root(&t.user, command), None)?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        if !out.success() {
            let stderr = String::from_utf8_lossy(&out.stderr);
            let last = stderr
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("");
            return Err(anyhow!("exit {}: {}", out.status, last.trim()));
        }
        Ok(stdout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_plain_name_in_the_upload_directory_is_taken() {
        let dir = paths::UPLOAD_DIR;
        let ok = format!("{dir}/node-agent.Ab3xYz09Qq");
        assert_eq!(uploaded_path(format!("noise\n{ok}\n").as_bytes()), Some(ok));
        for bad in [
            String::new(),
            "/var/tmp/node-agent.upload".to_owned(),
            format!("{dir}/../../../etc/shadow"),
            format!("{dir}/sub/x"),
            format!("{dir}/"),
            format!("{dir}/x;reboot"),
            format!("{dir}x/y"),
        ] {
            assert_eq!(uploaded_path(bad.as_bytes()), None, "{bad}");
        }
    }
}
