//! The node-current report: what the agent observed and did, written atomically on the
//! machine for Orbiter to read back over SSH (and for `node-agent status`). An item's
//! `observed` text never carries a secret's content or digest.

use crate::error::{ProtocolError as Error, Result};
use serde::{Deserialize, Serialize};

pub const CURRENT_KIND: &str = "NodeCurrent";
pub const CURRENT_VERSION: &str = "v1";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeCurrent {
    pub kind: String,
    pub version: String,
    pub agent_version: String,
    /// When this machine (its PID 1) started, RFC 3339.
    pub booted_at: Option<String>,
    /// The machine says it needs a reboot (Debian: `/var/run/reboot-required` exists; RHEL:
    /// `needs-restarting -r`). Absent in reports of older agents: `false`.
    #[serde(default)]
    pub reboot_required: bool,
    /// How many packages an upgrade would change (held ones excluded), from the package lists
    /// the machine already has (nothing downloaded); measured at most hourly and after an
    /// `osupdates` upgrade. `None` = not known (or an older agent).
    #[serde(default)]
    pub pending_updates: Option<u32>,
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
    /// startup, desired-changed, drift, retry (sooner than drift while something is not in
    /// sync) or signal.
    pub trigger: String,
    pub generation: Option<u64>,
    pub started_at: String,
    pub duration_ms: u64,
    pub actions: Vec<String>,
    pub errors: u32,
}

impl NodeCurrent {
    /// An empty report of agent `agent_version`.
    pub fn new(agent_version: &str) -> NodeCurrent {
        NodeCurrent {
            kind: CURRENT_KIND.into(),
            version: CURRENT_VERSION.into(),
            agent_version: agent_version.into(),
            booted_at: None,
            reboot_required: false,
            pending_updates: None,
            ready: false,
            generation: None,
            changesallowed: false,
            desired_error: None,
            items: vec![],
            last_pass: None,
            last_change: None,
        }
    }

    pub fn to_yaml(&self) -> Result<String> {
        serde_saphyr::to_string(self)
            .map_err(|e| Error::new(format!("cannot render the current state: {e}")))
    }

    /// Parses a report; a kind or version this program does not know is an error, not a guess.
    pub fn parse(text: &str, origin: &str) -> Result<NodeCurrent> {
        let c: NodeCurrent =
            serde_saphyr::from_str(text).map_err(|e| crate::desired::yaml_error(origin, &e))?;
        if c.kind != CURRENT_KIND {
            return Err(Error::new(format!(
                "{origin}: kind is `{}`, expected `{CURRENT_KIND}`",
                c.kind
            )));
        }
        if c.version != CURRENT_VERSION {
            return Err(Error::new(format!(
                "{origin}: version `{}` of {CURRENT_KIND} is not known here; supported: {CURRENT_VERSION}; hint: a newer node-agent wrote it: upgrade Orbiter",
                c.version
            )));
        }
        Ok(c)
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
        match (self.pending_updates, self.reboot_required) {
            (Some(n), r) => s.push_str(&format!(
                "pending updates: {n}{}\n",
                if r { "  REBOOT REQUIRED" } else { "" }
            )),
            (None, true) => s.push_str("REBOOT REQUIRED\n"),
            (None, false) => {}
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_unknown_versions() {
        let mut c = NodeCurrent::new("0.1.0");
        c.items.push(ItemState {
            id: "file:/etc/a: b".into(),
            observed: "absent".into(),
            in_sync: false,
            pending: vec!["write /etc/a".into()],
            last_error: Some("it's \"broken\": really".into()),
        });
        let text = c.to_yaml().unwrap();
        assert_eq!(NodeCurrent::parse(&text, "c.yml").unwrap(), c);
        let newer = text.replace("version: v1", "version: v2");
        let e = NodeCurrent::parse(&newer, "c.yml").unwrap_err().to_string();
        assert!(e.contains("version `v2`") && e.contains("upgrade"), "{e}");
        let rendered = c.render_text();
        assert!(
            rendered.contains("NOT READY")
                && rendered.contains("error: it's")
                && !rendered.contains("pending updates"),
            "{rendered}"
        );
        c.reboot_required = true;
        c.pending_updates = Some(3);
        let text = c.to_yaml().unwrap();
        assert_eq!(NodeCurrent::parse(&text, "c.yml").unwrap(), c);
        assert!(
            c.render_text()
                .contains("pending updates: 3  REBOOT REQUIRED"),
            "{}",
            c.render_text()
        );
    }

    /// Reports of agents from before `reboot_required` and `pending_updates` still parse.
    #[test]
    fn reports_of_older_agents_parse() {
        let mut c = NodeCurrent::new("0.0.9");
        c.reboot_required = true;
        c.pending_updates = Some(1);
        let text = c.to_yaml().unwrap();
        let old: String = text
            .lines()
            .filter(|l| !l.starts_with("reboot_required") && !l.starts_with("pending_updates"))
            .map(|l| format!("{l}\n"))
            .collect();
        assert_ne!(old, text);
        let parsed = NodeCurrent::parse(&old, "c.yml").unwrap();
        assert!(!parsed.reboot_required && parsed.pending_updates.is_none());
    }
}
