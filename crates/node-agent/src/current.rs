//! The agent's side of the node-current report (`node_protocol::NodeCurrent`): folding a pass
//! into it, and writing it atomically for Orbiter to read back over SSH.

use crate::error::{Error, Result};
use crate::fsutil;
use crate::pass::{ItemReport, PassResult};
use node_protocol::{ItemState, NodeCurrent, PassInfo};
use std::path::Path;

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

/// A report of this agent with nothing in it yet.
pub fn fresh() -> NodeCurrent {
    NodeCurrent::new(crate::VERSION)
}

/// Folds a pass into the report.
pub fn record(
    c: &mut NodeCurrent,
    pass: &PassResult,
    info: PassInfo,
    generation: Option<u64>,
    changes_allowed: bool,
) {
    c.items = pass.items.iter().map(ItemState::from).collect();
    c.ready = generation.is_some() && pass.in_sync();
    c.generation = generation;
    c.changesallowed = changes_allowed;
    if !info.actions.is_empty() {
        c.last_change = Some(info.clone());
    }
    c.last_pass = Some(info);
}

/// Atomic replace (readers never see a half-written file).
pub fn write(c: &NodeCurrent, path: &Path) -> Result<()> {
    fsutil::write_atomic(path, c.to_yaml()?.as_bytes(), 0o644, None)
}

pub fn read(path: &Path) -> Result<NodeCurrent> {
    let text = fsutil::read_text_opt(path)?.ok_or_else(|| {
        Error::new(format!(
            "{} does not exist; hint: is `node-agent run` running (systemctl status node-agent)?",
            path.display()
        ))
    })?;
    Ok(NodeCurrent::parse(&text, &path.display().to_string())?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pass_is_folded_in_and_written_atomically() {
        let mut c = fresh();
        let pass = PassResult {
            items: vec![ItemReport {
                id: "file:/etc/a: b".into(),
                observed: "absent".into(),
                in_sync: false,
                pending: vec!["write /etc/a".into()],
                applied: vec![],
                error: Some("it's \"broken\": really".into()),
                retry: true,
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
        record(&mut c, &pass, info, Some(4), true);
        assert!(!c.ready && c.last_change.is_none());
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("current.yml");
        write(&c, &p).unwrap();
        assert_eq!(read(&p).unwrap(), c);
        assert!(
            read(&tmp.path().join("nope"))
                .unwrap_err()
                .message()
                .contains("systemctl status node-agent")
        );
    }
}
