//! One reconcile iteration: fetch → read desired and recorded state (`load`) → observe → the
//! kinds' plans and the plan (pure) → apply (`apply`, `on_machine`) → commit Orbiter's files
//! when they changed (`commit`), repeated in rounds while steps were applied. Everything
//! Orbiter needs survives in Git and on the machines, so a killed Orbiter resumes.

mod apply;
mod commit;
pub mod keys;
mod load;
mod on_machine;

pub use commit::{render_state, update};
pub use load::Loaded;
pub use on_machine::{key_blob, session};

use crate::agent_binary::AgentBinary;
use crate::clusters::{ClusterNeeds, KindInput, plan_one, pool_machines};
use crate::machine::MachineKey;
use crate::metrics::Metrics;
use crate::observe::{as_root, observe, parallel};
use crate::observed::Observed;
use crate::plan::{Plan, PlanInput, machine_ready, plan};
use crate::ssh::SshPool;
use anyhow::Result;
use keys::Keys;
use node_protocol::timefmt::{format_rfc3339, now_secs};
use orb_model::registry::MachineFlag;
use orb_repo::{OrbRepo, Snapshot};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// Rounds of observe → plan → apply per iteration, so takeoff converges without waiting for
/// the next fetch.
pub const MAX_ROUNDS: usize = 6;

/// Asks a person whether to trust a host key met for the first time: (machine, address,
/// fingerprint) → yes.
pub type AskHostKey = Box<dyn Fn(&MachineKey, &str, &str) -> bool + Send + Sync>;

pub struct Engine {
    pub repo: OrbRepo,
    keys: Keys,
    /// First-contact host keys a person confirmed (`--accept-new-hostkeys`, or answers).
    pub host_keys: crate::plan::HostKeyConsent,
    /// How to ask a person at a terminal; `None` (the daemon): never asked, never trusted.
    pub ask_host_key: Option<AskHostKey>,
    host_keys_refused: BTreeSet<(MachineKey, String)>,
    pub ssh: SshPool,
    pub agent: AgentBinary,
    desired: load::DesiredState,
    pub metrics: Arc<Metrics>,
}

#[derive(Debug, Default)]
pub struct IterationReport {
    pub applied: Vec<String>,
    pub failed: Vec<String>,
    pub committed: bool,
    pub converged: bool,
    pub plan: Plan,
}

impl Engine {
    pub fn new(repo: OrbRepo, keys: Keys, agent: AgentBinary) -> Result<Engine> {
        Ok(Engine {
            repo,
            keys,
            host_keys: Default::default(),
            ask_host_key: None,
            host_keys_refused: BTreeSet::new(),
            ssh: SshPool::new()?,
            agent,
            desired: load::DesiredState::default(),
            metrics: Arc::new(Metrics::default()),
        })
    }

    /// Which machines exist and how each answers; which packages each provider offers.
    pub fn observe(&self, l: &Loaded) -> Observed {
        observe(&l.providers, &l.recorded.pinned, &l.creds, &self.ssh)
    }

    /// Asks every cluster kind's members (one SSH command per machine of its pool) and lets
    /// the kinds plan; they keep their next records in `l`.
    pub fn cluster_needs(&self, l: &mut Loaded, observed: &Observed) -> ClusterNeeds {
        let now = now_secs().max(0) as u64;
        let mut outputs = Vec::new();
        for (_, kind) in &l.clusters {
            let (provider, pool) = kind.pool();
            let machines: Vec<_> = pool_machines(observed, provider, pool)
                .into_iter()
                .filter(|m| m.reach.logged_in())
                .collect();
            let command = kind.observe_command();
            let answers = parallel(&machines, |m| {
                let (t, pinned, login) = session(l, m)?;
                let out = self
                    .ssh
                    .exec_within(
                        &t,
                        pinned,
                        login,
                        &as_root(&t.user, &command),
                        None,
                        crate::observe::OBSERVE_LIMITS,
                    )
                    .map_err(
                        |e| tracing::warn!(machine = %m.machine.key, "cluster observation: {e}"),
                    )
                    .ok()?;
                Some((
                    m.machine.key.clone(),
                    String::from_utf8_lossy(&out.stdout).into_owned(),
                ))
            });
            outputs.push(answers.into_iter().flatten().collect::<BTreeMap<_, _>>());
        }
        let replacing: BTreeSet<MachineKey> = l
            .orb
            .providers
            .iter()
            .flat_map(|(pid, node)| {
                node.spec
                    .flags(MachineFlag::Replace)
                    .iter()
                    .map(move |id| MachineKey::new(pid, &id.value))
            })
            .collect();
        let mut disrupting = crate::plan::wanted_reboots(&l.orb, observed);
        disrupting.extend(replacing.iter().cloned());
        let mut kinds = std::mem::take(&mut l.clusters);
        let mut needs = ClusterNeeds::default();
        let mut serving = BTreeMap::new();
        for ((id, kind), outputs) in kinds.iter_mut().zip(&outputs) {
            let input = KindInput {
                observed,
                recorded: &l.recorded,
                outputs,
                replacing: &replacing,
                disrupting: &disrupting,
                now,
                serving: &serving,
            };
            needs.merge(id, plan_one(id, kind.as_mut(), &input));
            if let Some((transport, machines)) = kind.serving() {
                serving.insert(transport, machines);
            }
        }
        l.clusters = kinds;
        needs
    }

    pub fn plan(&mut self, l: &Loaded, observed: &Observed, clusters: &ClusterNeeds) -> Plan {
        self.ask_about_new_host_keys(observed);
        let now = format_rfc3339(now_secs());
        let key = l.key.clone();
        let digest = move |b: &[u8]| key.digest(b);
        plan(&PlanInput {
            orb: &l.orb,
            providers: &l.providers,
            recorded: &l.recorded,
            observed,
            agent: &self.agent.release,
            now: &now,
            clusters,
            secrets: &l.software_secrets,
            digest: &digest,
            host_keys: &self.host_keys,
            rollouts: &l.rollouts,
            revision_secrets: &l.revision_secrets,
            now_secs: now_secs().max(0) as u64,
        })
    }

    /// Before planning: a person at a terminal is asked about host keys met for the first
    /// time that nobody vouches for; their answers hold for this process.
    fn ask_about_new_host_keys(&mut self, observed: &Observed) {
        let Some(ask) = &self.ask_host_key else {
            return;
        };
        for m in observed.machines() {
            if let crate::observed::Reach::NotPinned(k) = &m.reach
                && m.machine.known_key.is_none()
            {
                let fp = k.fingerprint();
                let pair = (m.machine.key.clone(), fp.clone());
                if self.host_keys.accepts(&pair.0, &fp) || self.host_keys_refused.contains(&pair) {
                    continue;
                }
                if ask(&m.machine.key, &m.machine.ip.to_string(), &fp) {
                    self.host_keys.accepted.insert(pair);
                } else {
                    self.host_keys_refused.insert(pair);
                }
            }
        }
    }

    /// One observe → cluster plans → plan pass. Changes nothing anywhere.
    pub fn observe_and_plan(&mut self, l: &mut Loaded) -> (Observed, Plan) {
        let observed = self.observe(l);
        for m in observed.machines() {
            tracing::debug!(machine = %m.machine.key, reach = ?m.reach, "observed");
        }
        let needs = self.cluster_needs(l, &observed);
        let p = self.plan(l, &observed, &needs);
        tracing::debug!(
            steps = p.steps.len(),
            waiting = p.waiting.len(),
            blocked = p.blocked.len(),
            "planned"
        );
        for w in &p.waiting {
            tracing::debug!("waiting: {w}");
        }
        (observed, p)
    }

    /// Observe → plan → apply rounds, then one commit of what changed.
    pub fn iterate(&mut self, apply: bool) -> Result<IterationReport> {
        let started = std::time::Instant::now();
        let mut l = self.load()?;
        let mut report = IterationReport::default();
        if l.destroyed {
            // Torn down: nothing is created again until the next takeoff.
            report.converged = true;
            return Ok(report);
        }
        let (mut observed, mut p) = self.observe_and_plan(&mut l);
        if apply {
            for _ in 0..MAX_ROUNDS {
                if p.is_empty() {
                    break;
                }
                let (ok, failed) = self.apply(&mut l, &observed, &p);
                l.rollouts = p.rollouts.clone();
                report.applied.extend(ok);
                report.failed.extend(failed.iter().cloned());
                // Keys, pins and records must be in Git before anything depends on them.
                if p.steps.iter().any(|s| s.action.commits_at_once()) {
                    report.committed |= self.commit(&l, &observed, &p)?;
                }
                let (o, next) = self.observe_and_plan(&mut l);
                observed = o;
                let stuck = !failed.is_empty() && next.steps == p.steps;
                p = next;
                if stuck {
                    break;
                }
            }
        }
        report.committed |= self.commit(&l, &observed, &p)?;
        if !p.rollout_flags.is_empty() {
            self.clear_rollout_flags(&p.rollout_flags)?;
        }
        report.converged = p.is_empty()
            && p.waiting.is_empty()
            && p.blocked.is_empty()
            && l.desired_error.is_none()
            && observed.machines().all(|m| machine_ready(m, &l.recorded));
        report.plan = p;
        self.metrics
            .set_kind_gauges(l.clusters.iter().flat_map(|(_, k)| k.gauges()).collect());
        self.metrics.record_iteration(
            started.elapsed(),
            (report.applied.len(), report.failed.len()),
            &observed,
            &l.recorded,
        );
        Ok(report)
    }
}

pub(crate) fn read(snap: &Snapshot<'_>, path: &str) -> Result<Option<String>> {
    Ok(snap
        .read(path)?
        .map(|b| String::from_utf8_lossy(&b).into_owned()))
}
