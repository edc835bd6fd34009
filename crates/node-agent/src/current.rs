//! The node-current state: what the agent observed and did, written atomically for Orbiter
//! to read back over SSH (and for `node-agent status`).

use crate::error::{Error, Result};
use crate::fsutil;
use crate::pass::{ItemReport, PassResult};
use serde::{Deserialize, Serialize};
use std::path::Path;

pub const CURRENT_KIND: &str = "NodeCurrent";
pub const CURRENT_VERSION: &str = "v1";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Current {
    pub kind: String,
    pub version: String,
    pub agent_version: String,
    /// When this machine (its PID 1) started, RFC 3339.
    pub booted_at: Option<String>,
    /// Every item of the enforced desired state is in sync.
    pub ready: bool,
    /// Generation of the desired state being enforced (the last valid one).
    pub generation: Option<u64>,
    pub changesallowed: bool,
    /// Why the desired file is not in force (parse/validation error), if it is not.
    pub desired_error: Option<String>,
    pub items: Vec<ItemState>,
    /// The most recent pass. Volatile (timestamps change every pass): not for commits.
    pub last_pass: Option<PassInfo>,
    /// The most recent pass that changed something.
    pub last_change: Option<PassInfo>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemState {
    pub id: String,
    pub observed: String,
    pub in_sync: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pending: Vec<String>,
    pub last_error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PassInfo {
    /// startup, desired-changed, drift or signal.
    pub trigger: String,
    pub generation: Option<u64>,
    pub started_at: String,
    pub duration_ms: u64,
    pub actions: Vec<String>,
    pub errors: u32,
}

impl From<&ItemReport> for ItemState {
    fn from(r: &ItemReport) -> Self {
        ItemState {
            id: r.id.clone(),
            observed: r.observed.clone(),
            in_sync: r.in_sync,
            pending: r.pending.clone(),
            last_error: r.error.clone(),
        }
    }
}

impl Current {
    pub fn new() -> Current {
        Current {
            kind: CURRENT_KIND.into(),
            version: CURRENT_VERSION.into(),
            agent_version: crate::VERSION.into(),
            booted_at: None,
            ready: false,
            generation: None,
            changesallowed: false,
            desired_error: None,
            items: vec![],
            last_pass: None,
            last_change: None,
        }
    }

    /// Folds a pass into the report.
    pub fn record(
        &mut self,
        pass: &PassResult,
        info: PassInfo,
        generation: Option<u64>,
        changes_allowed: bool,
    ) {
        self.items = pass.items.iter().map(ItemState::from).collect();
        self.ready = generation.is_some() && pass.in_sync();
        self.generation = generation;
        self.changesallowed = changes_allowed;
        if !info.actions.is_empty() {
            self.last_change = Some(info.clone());
        }
        self.last_pass = Some(info);
    }

    pub fn to_yaml(&self) -> Result<String> {
        serde_saphyr::to_string(self)
            .map_err(|e| Error::new(format!("cannot render the current state: {e}")))
    }

    /// Atomic replace (readers never see a half-written file).
    pub fn write(&self, path: &Path) -> Result<()> {
        fsutil::write_atomic(path, self.to_yaml()?.as_bytes(), 0o644, None)
    }

    pub fn read(path: &Path) -> Result<Current> {
        let text = fsutil::read_text_opt(path)?
            .ok_or_else(|| Error::new(format!("{} does not exist; hint: is `node-agent run` running (systemctl status node-agent)?", path.display())))?;
        serde_saphyr::from_str(&text).map_err(|e| {
            Error::new(format!(
                "{}: {}",
                path.display(),
                e.to_string().lines().next().unwrap_or_default()
            ))
        })
    }

    /// The human view for `node-agent status`.
    pub fn render_text(&self) -> String {
        let mut s = String::new();
        let gen_ = self
            .generation
            .map(|g| g.to_string())
            .unwrap_or_else(|| "none".into());
        s.push_str(&format!(
            "node-agent {}  generation {gen_}  {}  {}\n",
            self.agent_version,
            if self.ready { "READY" } else { "NOT READY" },
            if self.changesallowed {
                "changes allowed"
            } else {
                "changes NOT allowed"
            }
        ));
        if let Some(b) = &self.booted_at {
            s.push_str(&format!("booted at {b}\n"));
        }
        if let Some(e) = &self.desired_error {
            s.push_str(&format!(
                "desired error (last valid state still enforced): {e}\n"
            ));
        }
        for (label, p) in [
            ("last pass", &self.last_pass),
            ("last change", &self.last_change),
        ] {
            if let Some(p) = p {
                s.push_str(&format!(
                    "{label}: {} ({}, {} ms, {} actions, {} errors)\n",
                    p.started_at,
                    p.trigger,
                    p.duration_ms,
                    p.actions.len(),
                    p.errors
                ));
            }
        }
        let width = self
            .items
            .iter()
            .map(|i| i.id.len())
            .max()
            .unwrap_or(4)
            .clamp(4, 60);
        s.push_str(&format!("\n{:width$}  SYNC  OBSERVED\n", "ITEM"));
        for i in &self.items {
            s.push_str(&format!(
                "{:width$}  {:4}  {}\n",
                i.id,
                if i.in_sync { "yes" } else { "NO" },
                i.observed
            ));
            for p in &i.pending {
                s.push_str(&format!("{:width$}        pending: {p}\n", ""));
            }
            if let Some(e) = &i.last_error {
                s.push_str(&format!("{:width$}        error: {e}\n", ""));
            }
        }
        s
    }
}

impl Default for Current {
    fn default() -> Self {
        Current::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_yaml_and_renders() {
        let mut c = Current::new();
        let pass = PassResult {
            items: vec![ItemReport {
                id: "file:/etc/a: b".into(),
                observed: "absent".into(),
                in_sync: false,
                pending: vec!["write /etc/a".into()],
                applied: vec![],
                error: Some("it's \"broken\": really".into()),
            }],
            ..Default::default()
        };
        let info = PassInfo {
            trigger: "drift".into(),
            generation: Some(4),
            started_at: "2026-01-01T00:00:00Z".into(),
            duration_ms: 3,
            actions: vec![],
            errors: 1,
        };
        c.record(&pass, info, Some(4), true);
        assert!(!c.ready && c.last_change.is_none());
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("current.yml");
        c.write(&p).unwrap();
        assert_eq!(Current::read(&p).unwrap(), c);
        let text = c.render_text();
        assert!(
            text.contains("NOT READY") && text.contains("error: it's \"broken\": really"),
            "{text}"
        );
        assert!(
            Current::read(&tmp.path().join("nope"))
                .unwrap_err()
                .message()
                .contains("systemctl status node-agent")
        );
    }
}
