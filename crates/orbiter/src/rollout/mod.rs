//! Rollouts: a change of what orbiter.yml gives a pool's machines (its node software, the
//! agent, an OS update request) is a new *revision* of the pool. It reaches one canary first,
//! then waves of at most `maxunavailable` machines; a machine counts as done once its agent
//! applied the revision and it is healthy at the end of the settle window. A machine that fails
//! stops the rollout and goes back to the last revision that was healthy on it; machines not
//! reached are not touched. The rollout's state is a record per pool in the repository
//! (`orbiter/rollouts/<provider>.<pool>.yml`), which also keeps every revision a machine may
//! go back to (secrets sealed), so a restarted Orbiter continues — or rolls back — exactly.
//!
//! Cluster kinds' items and reboot requests are not part of a revision: kinds pace their own
//! changes (one member at a time, quorum first), and reboots have their own gate.

pub mod os;
mod revision;
mod waves;

pub use revision::{Revision, RevisionItem, items_for_revision, target_revision};
pub use waves::{MachineStatus, PoolInput, PoolPlan, plan_pool};

/// The revision of a machine whose document is kept as recorded: an Orbiter before rollouts
/// wrote it, and it differs from the revision orbiter.yml asks for (it changes in a wave).
pub const KEPT: &str = "kept";

use crate::machine::MachineKey;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub const KIND: &str = "Rollout";
pub const VERSIONS: &[&str] = &["v1"];

pub const RECORDS_DIR: &str = "orbiter/rollouts/";

pub fn record_path(pool_ref: &str) -> String {
    format!("{RECORDS_DIR}{pool_ref}.yml")
}

/// The pool (`provider.pool`) a record path is about.
pub fn record_pool(path: &str) -> Option<String> {
    let name = path.strip_prefix(RECORDS_DIR)?.strip_suffix(".yml")?;
    let (provider, pool) = name.split_once('.')?;
    (orb_model::Id::parse(provider).is_ok() && orb_model::Id::parse(pool).is_ok())
        .then(|| name.to_owned())
}

/// Where a pool's rollout stands, as committed.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RolloutRecord {
    pub kind: String,
    pub version: String,
    /// The revision the pool rolls to (or rolled to, when done).
    pub revision: String,
    pub state: RolloutState,
    /// Why it is paused or stopped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Unix seconds: when the rollout to `revision` began.
    pub started: u64,
    /// Waves finished (the canary is wave 1).
    #[serde(default)]
    pub waves_done: u32,
    /// Unix seconds: when the last wave finished (the next waits `pause` after it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wave_done_at: Option<u64>,
    #[serde(default)]
    pub machines: BTreeMap<MachineKey, MachineRollout>,
    /// Every revision a machine runs or may go back to, by id.
    #[serde(default)]
    pub revisions: BTreeMap<String, Revision>,
}

impl RolloutRecord {
    /// The OS update request of the revision the pool rolls to.
    pub fn os_request(&self) -> Option<&node_protocol::OsUpdates> {
        self.revisions
            .get(&self.revision)
            .and_then(|r| r.osupdates.as_ref())
    }
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum RolloutState {
    Rolling,
    Done,
    Stopped,
    Paused,
}

/// One machine of the pool.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct MachineRollout {
    /// The revision its document carries ([`KEPT`]: as recorded).
    pub revision: String,
    /// The document generation that carries `revision` (once written).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<u64>,
    /// The last revision that was healthy on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthy: Option<String>,
    /// The revision that was healthy on it before this rollout's wave changed it: where it
    /// goes back to when the rollout stops or is undone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<String>,
    pub phase: Phase,
    /// Unix seconds: when its document got `revision`.
    pub changed_at: u64,
    /// Unix seconds: when its agent was first seen enforcing that document.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied_at: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// Written; waiting for the agent and the settle window.
    Changing,
    /// Healthy on `revision`.
    Done,
    /// Failed on `revision`, with nothing healthy to go back to (or not the rollout's target).
    Failed,
    /// Put back on `before` after the rollout stopped or was undone.
    RolledBack,
}

impl RolloutRecord {
    pub fn new(revision: String, now: u64) -> RolloutRecord {
        RolloutRecord {
            kind: KIND.into(),
            version: VERSIONS[VERSIONS.len() - 1].into(),
            revision,
            state: RolloutState::Rolling,
            reason: None,
            started: now,
            waves_done: 0,
            wave_done_at: None,
            machines: BTreeMap::new(),
            revisions: BTreeMap::new(),
        }
    }
}

impl crate::state::Versioned for RolloutRecord {
    const KIND: &'static str = KIND;
    const VERSIONS: &'static [&'static str] = VERSIONS;
}
