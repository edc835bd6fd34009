//! One reconcile iteration: fetch → read desired and recorded state → observe → plan → apply,
//! repeated in rounds while steps were applied, then commit Orbiter's files when they changed.
//! Everything Orbiter needs survives in Git and on the machines, so a killed Orbiter resumes.

use crate::agent_binary::AgentBinary;
use crate::clusters::{ClusterKind, ClusterNeeds, KindInput, plan_one, pool_machines};
use crate::credentials::{Credentials, maintenance_private_path, maintenance_public_path};
use crate::machine::MachineKey;
use crate::metrics::Metrics;
use crate::node_desired::NodeDesiredDoc;
use crate::observe::{as_root, observe, parallel, target};
use crate::observed::{MachineObserved, Observed, Reach};
use crate::plan::{Action, Plan, PlanInput, Recorded, machine_ready, plan};
use crate::provider::{Provider, for_spec};
use crate::ssh::{SshPool, generate_keypair};
use crate::state::{self, GeneratedSecrets, HostKeys, MachineCurrent, OrbCurrent};
use anyhow::{Context as _, Result, anyhow};
use orb_model::registry::MachineFlag;
use orb_model::{Id, ORBITER_YML, Orb, ProviderSpec};
use orb_repo::{FileChange, OrbRepo, Snapshot, UpdateOutcome};
use orb_secrets::{Keyring, Masterkey, SecretKey};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Rounds of observe → plan → apply per iteration, so takeoff converges without waiting for
/// the next fetch.
pub const MAX_ROUNDS: usize = 6;

pub struct Engine {
    pub repo: OrbRepo,
    masterkey: Masterkey,
    key: Option<(Keyring, SecretKey)>,
    pub ssh: SshPool,
    pub agent: AgentBinary,
    last_valid: Option<Orb>,
    last_desired_error: Option<String>,
    pub metrics: Arc<Metrics>,
    /// Log lines go here (stderr for the daemon, the terminal for takeoff).
    pub log: fn(&str),
}

/// Desired and recorded state as read from one snapshot, plus what apply changed in memory.
pub struct Loaded {
    pub orb: Orb,
    pub desired_error: Option<String>,
    pub recorded: Recorded,
    pub hostkeys: HostKeys,
    /// Pins this iteration added (`Some`) or dropped (`None`): applied to the newest head's
    /// file when committing, so a person's concurrent unpin is not overwritten.
    pub pin_changes: BTreeMap<MachineKey, Option<crate::ssh::HostKey>>,
    pub secrets: GeneratedSecrets,
    pub creds: BTreeMap<Id, Credentials>,
    pub providers: BTreeMap<Id, Box<dyn Provider>>,
    /// Errors of applied steps by machine, reported in current.yml.
    pub errors: BTreeMap<MachineKey, String>,
    pub destroyed: bool,
    /// The cluster kinds of orbiter.yml with their records and secrets.
    pub clusters: Vec<(Id, Box<dyn ClusterKind>)>,
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
    pub fn new(
        repo: OrbRepo,
        masterkey: Masterkey,
        agent: AgentBinary,
        log: fn(&str),
    ) -> Result<Engine> {
        Ok(Engine {
            repo,
            masterkey,
            key: None,
            ssh: SshPool::new()?,
            agent,
            last_valid: None,
            last_desired_error: None,
            metrics: Arc::new(Metrics::default()),
            log,
        })
    }

    fn secret_key(&mut self) -> Result<SecretKey> {
        secret_key(&mut self.key, &self.masterkey, &self.repo.snapshot())
    }

    /// Fetches and reads everything a plan needs. An invalid orbiter.yml keeps the last valid
    /// one this process read in force; a process that never saw a valid one does nothing.
    pub fn load(&mut self) -> Result<Loaded> {
        self.repo.fetch()?;
        let snap = self.repo.snapshot();
        let text = read(&snap, ORBITER_YML)?
            .ok_or_else(|| anyhow!("the repository has no {ORBITER_YML}"))?;
        let (orb, desired_error) = match Orb::parse(&text, ORBITER_YML) {
            Ok(o) => (o, None),
            Err(e) => {
                let msg = e.to_string();
                match &self.last_valid {
                    Some(o) => (o.clone(), Some(msg)),
                    None => {
                        return Err(anyhow!(
                            "{msg}\n  (no earlier valid {ORBITER_YML} is known to this Orbiter, so nothing is done)"
                        ));
                    }
                }
            }
        };
        self.metrics.set_desired_valid(desired_error.is_none());
        if desired_error != self.last_desired_error {
            match &desired_error {
                Some(e) => (self.log)(&format!(
                    "{ORBITER_YML} is invalid; the last valid desired state stays in force:\n{e}"
                )),
                None if self.last_desired_error.is_some() => {
                    (self.log)(&format!("{ORBITER_YML} is valid again"))
                }
                None => {}
            }
            self.last_desired_error = desired_error.clone();
        }
        if desired_error.is_none() {
            self.last_valid = Some(orb.clone());
        }
        let key = secret_key(&mut self.key, &self.masterkey, &snap)?;
        let hostkeys: HostKeys = match read(&snap, state::HOSTKEYS)? {
            Some(t) => state::parse(&t, state::HOSTKEYS)?,
            None => HostKeys::new(),
        };
        let secrets: GeneratedSecrets = match read(&snap, state::SECRETS)? {
            Some(t) => state::parse(&t, state::SECRETS)?,
            None => GeneratedSecrets::new(),
        };
        let current: Option<OrbCurrent> =
            read(&snap, state::CURRENT)?.and_then(|t| state::parse(&t, state::CURRENT).ok());
        let mut recorded = Recorded {
            pinned: hostkeys.keys.clone(),
            ..Default::default()
        };
        for path in snap.list()? {
            if let Some(rest) = path.strip_prefix("orbiter/nodes/")
                && let Some(key) = rest.strip_suffix("/desired.yml")
                && let Ok(k) = MachineKey::parse(key)
                && let Some(doc) = read(&snap, &path)?.and_then(|t| NodeDesiredDoc::parse(&t))
            {
                recorded.node_desired.insert(k, doc);
            }
        }
        let mut creds = BTreeMap::new();
        let mut providers = BTreeMap::new();
        for (pid, node) in &orb.providers {
            let open = |path: &str| -> Result<Option<String>> {
                match secrets.secrets.get(path) {
                    Some(env) => Ok(Some(
                        String::from_utf8(key.open(path, env)?.to_vec())
                            .context("key is not text")?,
                    )),
                    None => Ok(None),
                }
            };
            let mut c = Credentials {
                maintenance_private: open(&maintenance_private_path(pid))?,
                maintenance_public: open(&maintenance_public_path(pid))?,
                ..Default::default()
            };
            if let ProviderSpec::Static(s) = &node.spec {
                let person =
                    |name: &str, env: &Option<orb_secrets::Envelope>| -> Result<Option<String>> {
                        let path = format!("{pid}.{name}");
                        env.as_ref()
                            .map(|env| {
                                String::from_utf8(key.open(&path, env)?.to_vec())
                                    .with_context(|| format!("secret {path} is not text"))
                            })
                            .transpose()
                    };
                c.bootstrap_private = person("bootstrapkeyprivate", &s.keys.bootstrapkeyprivate)?;
                c.bootstrap_public = person("bootstrapkeypublic", &s.keys.bootstrapkeypublic)?;
            }
            if c.maintenance_private.is_some() && c.maintenance_public.is_some() {
                recorded.maintenance_keys.insert(pid.clone());
            }
            creds.insert(pid.clone(), c);
            providers.insert(pid.clone(), for_spec(pid, &node.spec));
        }
        let mut clusters = Vec::new();
        for (id, node) in &orb.clusters {
            let record = read(&snap, &crate::clusters::record_path(id))?;
            let open = |path: &str| -> Result<Option<zeroize::Zeroizing<Vec<u8>>>> {
                secrets
                    .secrets
                    .get(path)
                    .map(|env| Ok(zeroize::Zeroizing::new(key.open(path, env)?.to_vec())))
                    .transpose()
            };
            clusters.push((
                id.clone(),
                crate::clusters::for_spec(id, &node.spec, record.as_deref(), &open)?,
            ));
        }
        Ok(Loaded {
            orb,
            desired_error,
            recorded,
            hostkeys,
            pin_changes: BTreeMap::new(),
            secrets,
            creds,
            providers,
            errors: BTreeMap::new(),
            destroyed: current.is_some_and(|c| c.destroyed),
            clusters,
        })
    }

    pub fn observe(&self, l: &Loaded) -> Observed {
        observe(&l.providers, &l.recorded.pinned, &l.creds, &self.ssh)
    }

    /// Asks every cluster kind's members (one SSH command per machine of its pool) and lets
    /// the kinds plan; they keep their next records and secrets in `l`.
    pub fn cluster_needs(&self, l: &mut Loaded, observed: &Observed) -> ClusterNeeds {
        let now = node_agent::timefmt::now_secs().max(0) as u64;
        let mut outputs = Vec::new();
        for (_, kind) in &l.clusters {
            let (provider, pool) = kind.pool();
            let machines: Vec<_> = pool_machines(observed, provider, pool)
                .into_iter()
                .filter(|m| m.reach.logged_in())
                .collect();
            let command = kind.observe_command();
            let answers = parallel(&machines, |m| {
                let key = &m.machine.key;
                let (t, pinned, login) = session(l, m)?;
                let out = self
                    .ssh
                    .exec(&t, pinned, login, &as_root(&t.user, &command), None)
                    .ok()?;
                Some((
                    key.clone(),
                    String::from_utf8_lossy(&out.stdout).into_owned(),
                ))
            });
            outputs.push(answers.into_iter().flatten().collect::<BTreeMap<_, _>>());
        }
        let replacing: std::collections::BTreeSet<MachineKey> = l
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
        let mut kinds = std::mem::take(&mut l.clusters);
        let mut needs = ClusterNeeds::default();
        for ((id, kind), outputs) in kinds.iter_mut().zip(&outputs) {
            let input = KindInput {
                observed,
                recorded: &l.recorded,
                outputs,
                providers: &l.providers,
                replacing: &replacing,
                now,
            };
            needs.merge(id, plan_one(id, kind.as_mut(), &input));
        }
        l.clusters = kinds;
        needs
    }

    pub fn plan(&self, l: &Loaded, observed: &Observed, clusters: &ClusterNeeds) -> Plan {
        let now = node_agent::timefmt::format_rfc3339(node_agent::timefmt::now_secs());
        plan(&PlanInput {
            orb: &l.orb,
            recorded: &l.recorded,
            observed,
            agent: &self.agent.release,
            now: &now,
            clusters,
        })
    }

    /// Seals the kinds' secrets that differ from the stored ones and commits them at once:
    /// a certificate a machine got must never be lost by a crash.
    fn store_cluster_secrets(&mut self, l: &mut Loaded) -> Result<()> {
        let key = self.secret_key()?;
        let mut changed = false;
        for (_, kind) in &l.clusters {
            for (path, plain) in kind.secrets() {
                let same = l
                    .secrets
                    .secrets
                    .get(&path)
                    .and_then(|env| key.open(&path, env).ok())
                    .is_some_and(|old| old[..] == plain[..]);
                if !same {
                    l.secrets
                        .secrets
                        .insert(path.clone(), key.seal(&path, &plain));
                    changed = true;
                }
            }
        }
        if changed {
            let text = state::render(&l.secrets);
            update(
                &mut self.repo,
                "Cluster certificates issued\n\nby Orbiter",
                |_| Ok(vec![FileChange::write(state::SECRETS, text.as_bytes())]),
            )?;
        }
        Ok(())
    }

    /// One observe → cluster plans → plan pass, storing new cluster secrets when `apply`.
    fn observe_and_plan(&mut self, l: &mut Loaded, apply: bool) -> Result<(Observed, Plan)> {
        let observed = self.observe(l);
        let needs = self.cluster_needs(l, &observed);
        if apply {
            self.store_cluster_secrets(l)?;
        }
        let p = self.plan(l, &observed, &needs);
        Ok((observed, p))
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
        let (mut observed, mut p) = self.observe_and_plan(&mut l, apply)?;
        if apply {
            for _ in 0..MAX_ROUNDS {
                if p.is_empty() {
                    break;
                }
                let (ok, failed) = self.apply(&mut l, &observed, &p);
                report.applied.extend(ok);
                report.failed.extend(failed.iter().cloned());
                // Keys and pins must be in Git before anything depends on them.
                if p.steps.iter().any(|s| {
                    matches!(
                        s.action,
                        Action::GenerateMaintenanceKey { .. }
                            | Action::DestroyMachine { .. }
                            | Action::WriteNodeDesired { .. }
                            | Action::ClusterStep { .. }
                    )
                }) {
                    report.committed |= self.commit(&l, &observed, &p)?;
                }
                let (o, next) = self.observe_and_plan(&mut l, true)?;
                observed = o;
                let stuck = !failed.is_empty() && next.steps == p.steps;
                p = next;
                if stuck {
                    break;
                }
            }
        }
        report.committed |= self.commit(&l, &observed, &p)?;
        report.converged = p.is_empty()
            && p.waiting.is_empty()
            && p.blocked.is_empty()
            && l.desired_error.is_none()
            && observed.machines().all(|m| machine_ready(m, &l.recorded));
        report.plan = p;
        self.metrics
            .record_iteration(started.elapsed(), &report, &observed, &l.recorded);
        Ok(report)
    }

    /// Applies the steps: global ones first, then per machine concurrently (bounded), each
    /// machine's steps in order; a failing machine does not stop the others.
    pub fn apply(
        &mut self,
        l: &mut Loaded,
        observed: &Observed,
        p: &Plan,
    ) -> (Vec<String>, Vec<String>) {
        let mut ok = Vec::new();
        let mut failed = Vec::new();
        let log = self.log;
        let mut stopped_clusters = std::collections::BTreeSet::new();
        for s in p.steps.iter().filter(|s| !s.action.runs_on_machine()) {
            if let Action::ClusterStep { cluster, .. } = &s.action
                && stopped_clusters.contains(cluster)
            {
                continue;
            }
            let summary = s.action.summary();
            log(&format!("apply: {summary} ({})", s.reason));
            match self.apply_global(l, &s.action) {
                Ok(()) => ok.push(summary),
                Err(e) => {
                    log(&format!("failed: {summary}: {e:#}"));
                    if let Action::ClusterStep { cluster, .. } = &s.action {
                        // The kind records its own failure; its rollout stops here.
                        stopped_clusters.insert(cluster.clone());
                    } else if let Some(m) = s.action.machine() {
                        l.errors.insert(m.clone(), format!("{e:#}"));
                    }
                    failed.push(format!("{summary}: {e:#}"));
                }
            }
        }
        let mut per_machine: BTreeMap<MachineKey, Vec<&Action>> = BTreeMap::new();
        for s in &p.steps {
            if let Some(m) = s.action.machine()
                && s.action.runs_on_machine()
            {
                per_machine.entry(m.clone()).or_default().push(&s.action);
            }
        }
        let jobs: Vec<(MachineKey, Vec<&Action>)> = per_machine.into_iter().collect();
        let ctx = MachineCtx {
            ssh: &self.ssh,
            agent: &self.agent,
            loaded: &*l,
            log,
        };
        let results = parallel(&jobs, |(key, actions)| {
            let m = observed
                .machine(key)
                .expect("planned machines were observed");
            let mut done = Vec::new();
            for a in actions {
                let summary = a.summary();
                log(&format!("apply: {summary}"));
                if let Err(e) = ctx.apply_machine(m, a) {
                    log(&format!("failed: {summary}: {e:#}"));
                    return (key.clone(), done, Some(format!("{summary}: {e:#}")));
                }
                done.push(summary);
            }
            (key.clone(), done, None)
        });
        for (key, done, err) in results {
            ok.extend(done);
            match err {
                Some(e) => {
                    l.errors.insert(key, e.clone());
                    failed.push(e);
                }
                None => {
                    l.errors.remove(&key);
                }
            }
        }
        // Record what was written.
        for s in &p.steps {
            if let Action::WriteNodeDesired { machine, doc, .. } = &s.action
                && !l.errors.contains_key(machine)
            {
                l.recorded.node_desired.insert(machine.clone(), doc.clone());
            }
        }
        (ok, failed)
    }

    fn apply_global(&mut self, l: &mut Loaded, a: &Action) -> Result<()> {
        match a {
            Action::GenerateMaintenanceKey { provider } => {
                let key = self.secret_key()?;
                let (private, public) =
                    generate_keypair(&format!("orbiter-maintenance@{provider}"))?;
                let (pp, pb) = (
                    maintenance_private_path(provider),
                    maintenance_public_path(provider),
                );
                l.secrets
                    .secrets
                    .insert(pp.clone(), key.seal(&pp, private.as_bytes()));
                l.secrets
                    .secrets
                    .insert(pb.clone(), key.seal(&pb, public.as_bytes()));
                let c = l.creds.entry(provider.clone()).or_default();
                c.maintenance_private = Some(private);
                c.maintenance_public = Some(public);
                l.recorded.maintenance_keys.insert(provider.clone());
                // In Git before any machine trusts it: a key lost in a crash would lock Orbiter out.
                let text = state::render(&l.secrets);
                update(
                    &mut self.repo,
                    &format!("Maintenance key of {provider} generated\n\nby Orbiter"),
                    |_| Ok(vec![FileChange::write(state::SECRETS, text.as_bytes())]),
                )?;
                Ok(())
            }
            Action::CreateMachine {
                provider,
                pool,
                machine,
            } => {
                let pubkey = l
                    .creds
                    .get(provider)
                    .and_then(|c| c.maintenance_public.clone())
                    .ok_or_else(|| anyhow!("no maintenance key for {provider} yet"))?;
                let p = l
                    .providers
                    .get(provider)
                    .ok_or_else(|| anyhow!("unknown provider {provider}"))?;
                p.create(pool, machine, &pubkey)?;
                Ok(())
            }
            Action::DestroyMachine { machine } => {
                let p = l
                    .providers
                    .get(&machine.provider)
                    .ok_or_else(|| anyhow!("unknown provider {}", machine.provider))?;
                p.destroy(machine)?;
                l.recorded.node_desired.remove(machine);
                l.recorded.pinned.remove(machine);
                l.hostkeys.keys.remove(machine);
                l.pin_changes.insert(machine.clone(), None);
                Ok(())
            }
            Action::PinHostKey { machine, key, .. } => {
                l.hostkeys.keys.insert(machine.clone(), key.clone());
                l.pin_changes.insert(machine.clone(), Some(key.clone()));
                l.recorded.pinned.insert(machine.clone(), key.clone());
                Ok(())
            }
            Action::ClusterStep {
                cluster,
                machine,
                index,
                command,
                copy,
                ..
            } => {
                let result = self.run_cluster_step(l, machine, command).and_then(|out| {
                    if let Some(c) = copy {
                        self.copy_file(l, machine, c)?;
                    }
                    Ok(out)
                });
                let now = node_agent::timefmt::now_secs().max(0) as u64;
                if let Some((_, kind)) = l.clusters.iter_mut().find(|(id, _)| id == cluster) {
                    match &result {
                        Ok(out) => kind.note_step(*index, Ok(out), now),
                        Err(e) => kind.note_step(*index, Err(&format!("{e:#}")), now),
                    }
                }
                result.map(|_| ())
            }
            Action::ClearReboot { machine } | Action::ClearReplacement { machine } => {
                let reboot = matches!(a, Action::ClearReboot { .. });
                self.clear_flag(machine, reboot)?;
                // The next round of this iteration must not see the flag (it would ask again).
                let flag = if reboot {
                    MachineFlag::Reboot
                } else {
                    MachineFlag::Replace
                };
                if let Some(node) = l.orb.providers.get_mut(&machine.provider) {
                    node.spec
                        .flags_mut(flag)
                        .retain(|id| id.value != machine.machine);
                }
                Ok(())
            }
            other => Err(anyhow!("not a global step: {}", other.summary())),
        }
    }

    /// Where and how to log in on `machine` with the maintenance key.
    pub fn login<'a>(
        &self,
        l: &'a Loaded,
        machine: &MachineKey,
    ) -> Result<(crate::ssh::Target, &'a crate::ssh::HostKey, &'a str)> {
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
    fn copy_file(
        &self,
        l: &Loaded,
        from: &MachineKey,
        c: &crate::clusters::FileCopy,
    ) -> Result<()> {
        let (t, pinned, login) = self.login(l, from)?;
        let bytes = self
            .ssh
            .read_file(&t, pinned, login, &c.path)?
            .ok_or_else(|| anyhow!("{from}: {} is missing", c.path))?;
        let (to, to_pinned, to_login) = self.login(l, &c.to)?;
        self.ssh
            .write_file(&to, to_pinned, to_login, &c.path, 0o600, &bytes)?;
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
                &as_root(&t.user, &format!("rm -f -- {}", crate::ssh::quote(&c.path))),
            )?;
        }
        Ok(())
    }

    /// Runs a cluster kind's command as root on `machine`; returns its stdout.
    fn run_cluster_step(&self, l: &Loaded, machine: &MachineKey, command: &str) -> Result<String> {
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

    /// Removes a machine from `rebootrequired`/`replacementrequired` in orbiter.yml, re-derived
    /// from the newest head (people may have pushed meanwhile); an invalid head is left alone.
    fn clear_flag(&mut self, machine: &MachineKey, reboot: bool) -> Result<()> {
        let what = if reboot { "reboot" } else { "replacement" };
        let msg = format!("Machine {machine}: {what} done, flag cleared\n\nby Orbiter");
        update(&mut self.repo, &msg, |snap| {
            let Some(text) = read(snap, ORBITER_YML)? else {
                return Ok(Vec::new());
            };
            let Ok(mut orb) = Orb::parse(&text, ORBITER_YML) else {
                return Ok(Vec::new());
            };
            let Some(node) = orb.providers.get_mut(&machine.provider) else {
                return Ok(Vec::new());
            };
            let flag = if reboot {
                MachineFlag::Reboot
            } else {
                MachineFlag::Replace
            };
            let list = node.spec.flags_mut(flag);
            let before = list.len();
            list.retain(|id| id.value != machine.machine);
            if list.len() == before {
                return Ok(Vec::new());
            }
            Ok(vec![FileChange::write(ORBITER_YML, orb.to_yaml())])
        })?;
        Ok(())
    }

    /// Commits Orbiter's files if they differ from the head. Returns whether it committed.
    pub fn commit(&mut self, l: &Loaded, observed: &Observed, p: &Plan) -> Result<bool> {
        let files = render_state(l, observed, p);
        let mut message = String::from("Current state changed\n\nby Orbiter\n");
        for (key, e) in &l.errors {
            message.push_str(&format!("\n{key}: {e}"));
        }
        let outcome = update(&mut self.repo, &message, |snap| {
            let mut files = files.clone();
            // Pins: the head's file (a person may have just unpinned a machine) plus this
            // iteration's own changes.
            if let Some(text) = read(snap, state::HOSTKEYS)? {
                let mut head: HostKeys = state::parse(&text, state::HOSTKEYS)?;
                for (m, k) in &l.pin_changes {
                    match k {
                        Some(k) => head.keys.insert(m.clone(), k.clone()),
                        None => head.keys.remove(m),
                    };
                }
                files.insert(state::HOSTKEYS.to_owned(), state::render(&head));
            }
            let mut changes: Vec<FileChange> = files
                .iter()
                .map(|(path, text)| FileChange::write(path.clone(), text.as_bytes()))
                .collect();
            for path in snap.list()? {
                if path.starts_with("orbiter/nodes/") && !files.contains_key(&path) {
                    changes.push(FileChange::delete(path));
                }
            }
            Ok(changes)
        })?;
        let committed = matches!(outcome, UpdateOutcome::Committed { .. });
        if committed {
            self.metrics.commit();
        }
        Ok(committed)
    }
}

/// What an Orbiter-managed file set looks like for this state.
pub fn render_state(l: &Loaded, observed: &Observed, p: &Plan) -> BTreeMap<String, String> {
    let mut files = BTreeMap::new();
    files.insert(state::HOSTKEYS.to_owned(), state::render(&l.hostkeys));
    for (_, kind) in &l.clusters {
        files.extend(kind.files());
    }
    if !l.secrets.secrets.is_empty() {
        files.insert(state::SECRETS.to_owned(), state::render(&l.secrets));
    }
    let mut current = OrbCurrent::new();
    current.desired_error = l.desired_error.clone();
    current.destroyed = l.destroyed;
    current.waiting = p.waiting.clone();
    for m in observed.machines() {
        let key = &m.machine.key;
        if let Some(doc) = l.recorded.node_desired.get(key) {
            files.insert(state::node_desired_path(key), doc.render());
        }
        if let Some(c) = &m.current {
            let mut c = c.clone();
            c.last_pass = None;
            if let Ok(text) = c.to_yaml() {
                files.insert(state::node_current_path(key), text);
            }
        }
        current
            .machines
            .insert(key.clone(), machine_current(m, l, p));
    }
    files.insert(state::CURRENT.to_owned(), state::render(&current));
    files
}

fn machine_current(m: &MachineObserved, l: &Loaded, p: &Plan) -> MachineCurrent {
    let key = &m.machine.key;
    let blocked = p
        .blocked
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, e)| e.clone());
    let (state, error) = match &m.reach {
        Reach::HostKeyChanged { .. } => ("refused", blocked),
        Reach::Unreachable(_) | Reach::AuthFailed(_) => ("unreachable", blocked),
        Reach::NotPinned(_) => ("new", None),
        _ if l.errors.contains_key(key) => ("failed", l.errors.get(key).cloned()),
        _ if machine_ready(m, &l.recorded) => ("ready", None),
        _ => (
            "converging",
            m.current
                .as_ref()
                .and_then(|c| c.items.iter().find_map(|i| i.last_error.clone())),
        ),
    };
    MachineCurrent {
        pool: m.machine.pool.to_string(),
        ip: m.machine.ip.to_string(),
        state: state.to_owned(),
        agent: m
            .agent
            .as_ref()
            .map(|a| a.version.clone())
            .filter(|v| !v.is_empty()),
        generation: m.current.as_ref().and_then(|c| c.generation),
        error,
    }
}

/// Applies one machine's steps; shared read-only across the worker threads.
struct MachineCtx<'a> {
    ssh: &'a SshPool,
    agent: &'a AgentBinary,
    loaded: &'a Loaded,
    log: fn(&str),
}

impl MachineCtx<'_> {
    fn apply_machine(&self, m: &MachineObserved, a: &Action) -> Result<()> {
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
                    k = crate::ssh::quote(key_blob(public)),
                    line = crate::ssh::quote(public.trim())
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
                    k = crate::ssh::quote(key_blob(public))
                );
                run(self.ssh, &t, pinned, maintenance, &keep)?;
                self.ssh.close(&t);
                Ok(())
            }
            Action::InstallAgent { .. } => {
                let bytes = std::fs::read(&self.agent.path)?;
                self.ssh.write_file(
                    &t,
                    pinned,
                    login,
                    node_agent::install::UPLOAD_PATH,
                    0o700,
                    &bytes,
                )?;
                let script = node_agent::install_script(
                    &self.agent.release.sha256,
                    &self.agent.release.version,
                );
                let out = self.ssh.exec(
                    &t,
                    pinned,
                    login,
                    &if t.user == "root" {
                        "sh -s".to_owned()
                    } else {
                        "sudo -n sh -s".to_owned()
                    },
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
                let packages: Vec<String> = doc
                    .items
                    .iter()
                    .filter_map(|i| i.get("package")?.get("name")?.as_str().map(str::to_owned))
                    .collect();
                if let Some(p) = self.loaded.providers.get(&key.provider) {
                    p.offer_packages(&packages)?;
                }
                self.ssh.write_file(
                    &t,
                    pinned,
                    login,
                    "/etc/node-agent/desired.yml",
                    0o600,
                    doc.render().as_bytes(),
                )?;
                (self.log)(&format!(
                    "{key}: node-desired generation {} written",
                    doc.generation
                ));
                Ok(())
            }
            other => Err(anyhow!("not a machine step: {}", other.summary())),
        }
    }
}

fn run(
    ssh: &SshPool,
    t: &crate::ssh::Target,
    pinned: &crate::ssh::HostKey,
    key: &str,
    cmd: &str,
) -> Result<()> {
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

/// How `m` is logged in on as observed: the bootstrap key while only it works, the maintenance
/// key after. `None` when its host key is not pinned or the key is not known.
pub fn session<'a>(
    l: &'a Loaded,
    m: &MachineObserved,
) -> Option<(crate::ssh::Target, &'a crate::ssh::HostKey, &'a str)> {
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
pub(crate) fn key_blob(line: &str) -> &str {
    line.split_whitespace().nth(1).unwrap_or(line)
}

fn read(snap: &Snapshot<'_>, path: &str) -> Result<Option<String>> {
    Ok(snap
        .read(path)?
        .map(|b| String::from_utf8_lossy(&b).into_owned()))
}

/// `OrbRepo::update` with anyhow errors.
pub fn update<F>(repo: &mut OrbRepo, message: &str, mut derive: F) -> Result<UpdateOutcome>
where
    F: FnMut(&Snapshot<'_>) -> Result<Vec<FileChange>>,
{
    match repo.update(message, |s| derive(s).map_err(|e| e.into())) {
        Ok(o) => Ok(o),
        Err(orb_repo::RepoError::Derive(e)) => Err(anyhow!(e)),
        Err(e) => Err(e.into()),
    }
}

/// The Orb's secret key, derived once per keyring (argon2id is slow on purpose).
fn secret_key(
    cache: &mut Option<(Keyring, SecretKey)>,
    masterkey: &Masterkey,
    snap: &Snapshot<'_>,
) -> Result<SecretKey> {
    let text = snap.read(Keyring::FILE)?.ok_or_else(|| {
        anyhow!(
            "the repository has no {}; run `orbctl configure` first",
            Keyring::FILE
        )
    })?;
    let keyring = Keyring::from_yaml(&String::from_utf8_lossy(&text), Keyring::FILE)?;
    if let Some((k, key)) = &*cache
        && *k == keyring
    {
        return Ok(key.clone());
    }
    let key = keyring.unlock(masterkey)?;
    *cache = Some((keyring, key.clone()));
    Ok(key)
}
