//! Observation: ask every provider which machines exist, then every machine (concurrently,
//! bounded) how it answers, which agent it runs and what its node files say. One SSH command
//! per machine gathers everything.

use crate::credentials::Credentials;
use crate::machine::MachineRef;
use crate::observed::{AgentObserved, MachineObserved, Observed, ProviderObserved, Reach};
use crate::providers::Provider;
use crate::ssh::{HostKey, Limits, SshError, SshPool, Target, scan_host_key};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use node_protocol::{NodeCurrent, paths};
use orb_model::Id;
use std::collections::BTreeMap;

/// How many machines are talked to at once.
pub const PARALLEL: usize = 8;

/// What observing one machine may take: a machine that hangs or answers endlessly is reported
/// (`timed out`, `wrote more than …`) and delays the others by no more than this.
pub const OBSERVE_LIMITS: Limits = Limits {
    deadline: std::time::Duration::from_secs(60),
    max_output: 4 << 20,
};

/// One command gathers it all. The node-desired file holds secrets: only its digest comes back.
fn gather() -> String {
    format!(
        r#"b={bin}
if [ -x "$b" ]; then echo "agent=$("$b" --version 2>/dev/null)"; echo "sha=$(sha256sum "$b" | cut -d' ' -f1)"; fi
echo "active=$(systemctl is-active {unit} 2>/dev/null)"
[ -f {desired} ] && echo "desired_sha=$(sha256sum {desired} | cut -d' ' -f1)"
[ -f {current} ] && echo "current=$(base64 -w0 {current})"
true"#,
        bin = paths::BINARY,
        unit = paths::UNIT_NAME,
        desired = paths::DESIRED,
        current = paths::CURRENT,
    )
}

/// SHA-256 in hex, as `sha256sum` prints it: how the node-desired file on a machine is
/// compared with the one Orbiter would write.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

pub fn target(m: &MachineRef) -> Target {
    Target {
        id: m.key.to_string(),
        host: m.ip,
        port: 22,
        user: m.user.clone(),
    }
}

/// `sh -c SCRIPT` as root: through `sudo -n` unless the user is root.
pub fn as_root(user: &str, script: &str) -> String {
    let q = crate::ssh::quote(script);
    if user == "root" {
        format!("sh -c {q}")
    } else {
        format!("sudo -n sh -c {q}")
    }
}

pub fn observe(
    providers: &BTreeMap<Id, Box<dyn Provider>>,
    pinned: &BTreeMap<crate::machine::MachineKey, HostKey>,
    creds: &BTreeMap<Id, Credentials>,
    ssh: &SshPool,
) -> Observed {
    let mut observed = Observed::default();
    for (pid, p) in providers {
        let po = match p.machines() {
            Ok(ms) => {
                let none = Credentials::default();
                let c = creds.get(pid).unwrap_or(&none);
                let packages = p.packages().unwrap_or_else(|e| {
                    tracing::warn!("provider {pid}: its package repository cannot be read: {e:#}");
                    None
                });
                ProviderObserved {
                    machines: parallel(&ms, |m| observe_machine(m, pinned.get(&m.key), c, ssh)),
                    error: None,
                    packages,
                }
            }
            Err(e) => ProviderObserved {
                machines: Vec::new(),
                error: Some(format!("{e:#}")),
                packages: None,
            },
        };
        observed.providers.insert(pid.clone(), po);
    }
    observed
}

/// Runs `f` on every item with at most [`PARALLEL`] threads, keeping the order.
pub fn parallel<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let mut out = Vec::with_capacity(items.len());
    for chunk in items.chunks(PARALLEL) {
        std::thread::scope(|s| {
            let handles: Vec<_> = chunk.iter().map(|i| s.spawn(|| f(i))).collect();
            out.extend(
                handles
                    .into_iter()
                    .map(|h| h.join().expect("observer thread panicked")),
            );
        });
    }
    out
}

pub fn observe_machine(
    m: &MachineRef,
    pinned: Option<&HostKey>,
    creds: &Credentials,
    ssh: &SshPool,
) -> MachineObserved {
    let t = target(m);
    let mut obs = MachineObserved {
        machine: m.clone(),
        reach: Reach::Unreachable(String::new()),
        agent: None,
        desired_sha256: None,
        current: None,
    };
    let Some(pinned) = pinned else {
        obs.reach = match scan_host_key(&t) {
            Ok(k) => Reach::NotPinned(k),
            Err(e) => Reach::Unreachable(e.to_string()),
        };
        return obs;
    };
    let mut reach = Reach::AuthFailed(format!(
        "{}: no key of this Orb logs in as {}",
        t.id, t.user
    ));
    let mut output = None;
    for (key, how) in [
        (creds.maintenance_private.as_deref(), Reach::Maintenance),
        (creds.bootstrap_private.as_deref(), Reach::Bootstrap),
    ] {
        let Some(key) = key else { continue };
        match ssh.exec_within(
            &t,
            pinned,
            key,
            &as_root(&t.user, &gather()),
            None,
            OBSERVE_LIMITS,
        ) {
            Ok(out) if out.success() => {
                reach = how;
                output = Some(out.stdout);
                break;
            }
            Ok(out) => {
                reach = Reach::Unreachable(format!(
                    "{}: gathering state failed ({}): {}",
                    t.id,
                    out.status,
                    String::from_utf8_lossy(&out.stderr).trim()
                ));
                break;
            }
            Err(SshError::AuthFailed { .. }) => continue,
            Err(SshError::HostKeyMismatch {
                expected, found, ..
            }) => {
                // Read the new key too: a person may have declared it in orbiter.yml.
                let offered = scan_host_key(&t).ok();
                reach = Reach::HostKeyChanged {
                    expected,
                    found,
                    offered,
                };
                break;
            }
            Err(e) => {
                reach = Reach::Unreachable(e.to_string());
                break;
            }
        }
    }
    obs.reach = reach;
    if let Some(out) = output {
        let g = parse_gather(&String::from_utf8_lossy(&out), &t_id(m));
        obs.agent = g.agent;
        obs.desired_sha256 = g.desired_sha256;
        obs.current = g.current;
    }
    obs
}

/// What a machine's answer to [`gather`] says.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Gathered {
    /// `None` when no agent binary is installed.
    pub agent: Option<AgentObserved>,
    pub desired_sha256: Option<String>,
    /// The agent's report; `None` when absent or unreadable (logged as a warning).
    pub current: Option<NodeCurrent>,
}

/// Parses the `key=value` lines [`gather`] prints on `machine` (named in warnings). Never
/// fails: unknown lines are skipped, an unreadable report is left out.
pub fn parse_gather(text: &str, machine: &str) -> Gathered {
    let mut g = Gathered::default();
    let mut agent = AgentObserved {
        version: String::new(),
        sha256: String::new(),
        active: false,
    };
    let mut installed = false;
    for line in text.lines() {
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        match k {
            "agent" => {
                installed = true;
                agent.version = v
                    .trim()
                    .strip_prefix("node-agent ")
                    .unwrap_or(v.trim())
                    .to_owned();
            }
            "sha" => agent.sha256 = v.trim().to_owned(),
            "active" => agent.active = v.trim() == "active",
            "desired_sha" => g.desired_sha256 = Some(v.trim().to_owned()),
            "current" => {
                g.current = decode(v).and_then(|t| {
                    NodeCurrent::parse(&t, &format!("{machine}:{}", paths::CURRENT))
                        .map_err(|e| tracing::warn!("{e}"))
                        .ok()
                })
            }
            _ => {}
        }
    }
    g.agent = installed.then_some(agent);
    g
}

fn t_id(m: &MachineRef) -> String {
    m.key.to_string()
}

fn decode(v: &str) -> Option<String> {
    STANDARD
        .decode(v.trim())
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
}
