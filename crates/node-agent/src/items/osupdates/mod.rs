//! OS updates on request: once per `requested_at` (and update set), like `reboot`. Every
//! attempt is recorded in the state directory *before* it starts and its outcome after it
//! ends, so a restarted agent never repeats a fulfilled request. A failed or interrupted
//! attempt is tried again, at most [`MAX_ATTEMPTS`] times in all and a failure only after
//! [`RETRY_AFTER`]. Held (pinned) packages are never touched: apt `upgrade` keeps them, dnf's
//! versionlock does.
//!
//! apt: `apt-get update` then `apt-get upgrade` (noninteractive, old conffiles kept); for
//! `security` both with a temporary source list holding only the machine's `-security`
//! entries ([`sources`]), and without cleaning the other sources' lists. dnf/yum:
//! `upgrade [--security] -y`.

pub mod parse;
pub mod sources;
#[cfg(test)]
mod tests;

use super::{Action, Op, package};
use crate::error::{Error, Result};
use crate::exec::Cmd;
use crate::fsutil;
use crate::host::{Host, PkgManager};
use node_protocol::timefmt::{format_rfc3339, now_secs, parse_rfc3339};
use node_protocol::{OsUpdates, UpdateSet};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::Path;

/// The record of requests and their outcomes, in the state directory.
const STATE: &str = "osupdates.json";
/// The temporary apt configuration of a security upgrade, in the state directory.
const APT_DIR: &str = "osupdates-apt";
/// Requests remembered (the newest); older ones are covered by newer upgrades anyway.
const KEEP: usize = 16;
pub const MAX_ATTEMPTS: u32 = 3;
/// Seconds between a failed attempt and the next.
pub const RETRY_AFTER: i64 = 15 * 60;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "state", content = "text")]
pub enum Outcome {
    /// Under way, or interrupted when an agent finds it (there is only one thread).
    Started,
    /// What was upgraded.
    Done(String),
    Failed(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub requested_at: i64,
    pub updates: UpdateSet,
    pub attempts: u32,
    pub last_attempt: i64,
    pub outcome: Outcome,
}

fn load(host: &Host) -> Result<Vec<Record>> {
    let path = host.state_path(STATE);
    match fsutil::read_text_opt(&path)? {
        None => Ok(vec![]),
        Some(text) => serde_json::from_str(&text).map_err(|e| {
            Error::new(format!(
                "{} is damaged ({e}); hint: remove it to let the agent upgrade again",
                path.display()
            ))
        }),
    }
}

fn store(host: &Host, mut records: Vec<Record>, r: Record) -> Result<()> {
    records.retain(|x| (x.requested_at, x.updates) != (r.requested_at, r.updates));
    records.push(r);
    records.sort_by_key(|x| x.requested_at);
    let drop = records.len().saturating_sub(KEEP);
    records.drain(..drop);
    let text = serde_json::to_string_pretty(&records).map_err(|e| Error::new(e.to_string()))?;
    fsutil::write_atomic(&host.state_path(STATE), text.as_bytes(), 0o600, None)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    pub requested_at: i64,
    pub updates: UpdateSet,
    pub now: i64,
    /// This request's record.
    pub record: Option<Record>,
    /// A later request's fulfilled upgrade that covers this one (same set, or `all`).
    pub covered_by: Option<Record>,
}

impl fmt::Display for Observed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = format_rfc3339(self.requested_at);
        if let Some(Record {
            outcome: Outcome::Done(text),
            ..
        }) = &self.record
        {
            return write!(f, "{text}");
        }
        if let Some(c) = &self.covered_by {
            let text = match &c.outcome {
                Outcome::Done(text) => text.as_str(),
                _ => "",
            };
            return write!(
                f,
                "covered by the upgrade requested at {}: {text}",
                format_rfc3339(c.requested_at)
            );
        }
        match &self.record {
            Some(r) => match &r.outcome {
                Outcome::Done(_) => unreachable!("written above"),
                Outcome::Failed(e) if r.attempts >= MAX_ATTEMPTS => write!(
                    f,
                    "failed {} times, not trying again: {e}; hint: fix it and request again with a new requested_at",
                    r.attempts
                ),
                Outcome::Failed(e) => write!(
                    f,
                    "failed (attempt {} of {MAX_ATTEMPTS}; next after {}): {e}",
                    r.attempts,
                    format_rfc3339(r.last_attempt + RETRY_AFTER)
                ),
                Outcome::Started => write!(
                    f,
                    "attempt {} of {MAX_ATTEMPTS} (at {}) was interrupted",
                    r.attempts,
                    format_rfc3339(r.last_attempt)
                ),
            },
            None if self.requested_at > self.now => write!(f, "scheduled for {at}"),
            None => write!(f, "not upgraded yet for the request at {at}"),
        }
    }
}

pub fn observe(host: &Host, u: &OsUpdates) -> Result<Observed> {
    let requested_at = parse_rfc3339(&u.requested_at).map_err(Error::new)?;
    let records = load(host)?;
    let record = records
        .iter()
        .find(|r| (r.requested_at, r.updates) == (requested_at, u.updates))
        .cloned();
    let covered_by = records
        .iter()
        .filter(|r| {
            r.requested_at > requested_at
                && (r.updates == u.updates || r.updates == UpdateSet::All)
                && matches!(r.outcome, Outcome::Done(_))
        })
        .max_by_key(|r| r.requested_at)
        .cloned();
    Ok(Observed {
        requested_at,
        updates: u.updates,
        now: now_secs(),
        record,
        covered_by,
    })
}

/// What to do: the actions, whether the request is fulfilled, whether a pass sooner than
/// drift could change that (never while waiting: for the request's time, for a retry after a
/// failure, or after giving up), and the last attempt's error while it stands.
pub struct Plan {
    pub actions: Vec<Action>,
    pub in_sync: bool,
    pub retry: bool,
    pub error: Option<String>,
}

pub fn plan(o: &Observed) -> Plan {
    let op = Op::OsUpgrade {
        updates: o.updates,
        requested_at: o.requested_at,
    };
    // The same text as the pass reports when the action itself fails.
    let error = match &o.record {
        Some(Record {
            outcome: Outcome::Failed(e),
            ..
        }) => Some(format!("{op} failed: {e}")),
        _ => None,
    };
    let wait = || Plan {
        actions: vec![],
        in_sync: false,
        retry: false,
        error: error.clone(),
    };
    let act = |reason: String| Plan {
        actions: vec![Action::new(op.clone(), reason)],
        in_sync: false,
        retry: true,
        error: None,
    };
    let fulfilled = matches!(
        &o.record,
        Some(Record {
            outcome: Outcome::Done(_),
            ..
        })
    ) || o.covered_by.is_some();
    if fulfilled {
        return Plan {
            actions: vec![],
            in_sync: true,
            retry: false,
            error: None,
        };
    }
    // A request in the future is a scheduled upgrade: the first pass after it acts (drift
    // granularity, like a reboot request).
    if o.requested_at > o.now {
        return wait();
    }
    match &o.record {
        None => act(format!("requested at {}", format_rfc3339(o.requested_at))),
        Some(r) if r.attempts >= MAX_ATTEMPTS => wait(),
        Some(r) => match &r.outcome {
            Outcome::Started => act(format!("attempt {} was interrupted", r.attempts)),
            Outcome::Failed(_) if o.now < r.last_attempt + RETRY_AFTER => wait(),
            Outcome::Failed(e) => act(format!("attempt {} failed: {e}", r.attempts)),
            Outcome::Done(_) => unreachable!("fulfilled above"),
        },
    }
}

/// Carries out the upgrade for one request, recorded before and after.
pub fn upgrade(host: &Host, updates: UpdateSet, requested_at: i64) -> Result<()> {
    let records = load(host)?;
    let attempts = records
        .iter()
        .find(|r| (r.requested_at, r.updates) == (requested_at, updates))
        .map_or(0, |r| r.attempts)
        + 1;
    let mut record = Record {
        requested_at,
        updates,
        attempts,
        last_attempt: now_secs(),
        outcome: Outcome::Started,
    };
    // Without this record the request could be repeated: then do not start.
    store(host, records.clone(), record.clone())
        .map_err(|e| e.context("cannot record the upgrade before it starts"))?;
    let result = match host.pkg_manager().clone() {
        PkgManager::Apt => apt_upgrade(host, updates),
        PkgManager::Dnf => dnf_upgrade(host, "dnf", updates),
        PkgManager::Yum => dnf_upgrade(host, "yum", updates),
        PkgManager::Unsupported(ids) => Err(Error::new(format!(
            "no supported package manager (os-release says {ids}); supported: apt, dnf, yum"
        ))),
    };
    record.outcome = match &result {
        Ok(summary) => Outcome::Done(summary.clone()),
        Err(e) => Outcome::Failed(e.to_string()),
    };
    let stored = load(host).and_then(|records| store(host, records, record));
    result?;
    stored.map_err(|e| e.context("upgraded, but cannot record it"))
}

fn apt_upgrade(host: &Host, updates: UpdateSet) -> Result<String> {
    let dir = host.state_path(APT_DIR);
    let options = match updates {
        UpdateSet::All => vec![],
        UpdateSet::Security => {
            let found = sources::read(host)?;
            if found.is_empty() {
                return Ok("no security sources: nothing upgraded".into());
            }
            security_options(&dir, &found)?
        }
    };
    let options: Vec<&str> = options.iter().map(String::as_str).collect();
    let result = (|| {
        package::apt_update_with(host, &options)?;
        let sim = Cmd::new("apt-get")
            .args(["-s", "-o", "Debug::NoLocking=1"])
            .args(options.iter().copied())
            .arg("upgrade")
            .timeout(package::INSTALL_TIMEOUT);
        let names = parse::apt_simulation(&host.run_ok(&sim)?.stdout);
        if !names.is_empty() {
            let cmd = package::apt_cmd(&[&options[..], &["upgrade"]].concat());
            let mut out = host.run(&cmd)?;
            if package::dpkg_interrupted(&out) {
                package::repair_dpkg(host)?;
                out = host.run(&cmd)?;
            }
            if !out.success() {
                return Err(out.failure(&cmd));
            }
        }
        Ok(parse::summary(&names, updates.as_str()))
    })();
    if updates == UpdateSet::Security
        && let Err(e) = std::fs::remove_dir_all(&dir)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        crate::log::warn(&format!("cannot remove {}: {e}", dir.display()));
    }
    result
}

/// Writes the security-only source list under `dir` and returns the apt options that use it
/// (and keep the lists of the other sources: `apt-get update` would otherwise delete them).
fn security_options(dir: &Path, found: &sources::SecuritySources) -> Result<Vec<String>> {
    let parts = dir.join("sources.list.d");
    fsutil::create_dirs(&parts, 0o755)?;
    let list = dir.join("sources.list");
    fsutil::write_atomic(&list, found.list_text().as_bytes(), 0o644, None)?;
    let deb822 = parts.join("security.sources");
    if found.stanzas.is_empty() {
        fsutil::remove_opt(&deb822)?;
    } else {
        fsutil::write_atomic(&deb822, found.deb822_text().as_bytes(), 0o644, None)?;
    }
    Ok(vec![
        "-o".into(),
        format!("Dir::Etc::SourceList={}", list.display()),
        "-o".into(),
        format!("Dir::Etc::SourceParts={}", parts.display()),
        "-o".into(),
        "APT::Get::List-Cleanup=0".into(),
    ])
}

fn dnf_upgrade(host: &Host, bin: &str, updates: UpdateSet) -> Result<String> {
    let mut cmd = Cmd::new(bin).args(["upgrade", "-y"]);
    if updates == UpdateSet::Security {
        cmd = cmd.arg("--security");
    }
    let out = host.run_ok(&cmd.timeout(package::INSTALL_TIMEOUT))?;
    Ok(parse::summary(
        &parse::dnf_transaction(&out.stdout),
        updates.as_str(),
    ))
}
