//! Applying a plan: global steps first, in order (records, providers, generated secrets), then
//! every machine's steps concurrently (bounded), each machine's in order; a failing machine
//! does not stop the others, and a failed cluster step stops that cluster's rollout.

use super::on_machine::MachineCtx;
use super::{Engine, Loaded};
use crate::action::{Action, Plan};
use crate::credentials::{maintenance_private_path, maintenance_public_path};
use crate::machine::MachineKey;
use crate::observe::parallel;
use crate::observed::Observed;
use crate::ssh::generate_keypair;
use anyhow::{Result, anyhow};
use orb_model::registry::MachineFlag;
use std::collections::{BTreeMap, BTreeSet};
use zeroize::Zeroizing;

impl Engine {
    pub fn apply(
        &mut self,
        l: &mut Loaded,
        observed: &Observed,
        p: &Plan,
    ) -> (Vec<String>, Vec<String>) {
        let mut ok = Vec::new();
        let mut failed = Vec::new();
        let mut stopped_clusters = BTreeSet::new();
        for s in p.steps.iter().filter(|s| !s.action.runs_on_machine()) {
            if let Action::ClusterStep { cluster, .. } = &s.action
                && stopped_clusters.contains(cluster)
            {
                continue;
            }
            let summary = s.action.summary();
            let _span = s
                .action
                .machine()
                .map(|m| tracing::info_span!("machine", id = %m).entered());
            tracing::info!("apply: {summary} ({})", s.reason);
            match self.apply_global(l, &s.action) {
                Ok(()) => ok.push(summary),
                Err(e) => {
                    tracing::warn!("failed: {summary}: {e:#}");
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
        };
        let results = parallel(&jobs, |(key, actions)| {
            let _span = tracing::info_span!("machine", id = %key).entered();
            let m = observed
                .machine(key)
                .expect("planned machines were observed");
            let mut done = Vec::new();
            for a in actions {
                let summary = a.summary();
                tracing::info!("apply: {summary}");
                if let Err(e) = ctx.apply_machine(m, a) {
                    tracing::warn!("failed: {summary}: {e:#}");
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
        // Record what was written, in its record form.
        for s in &p.steps {
            if let Action::WriteNodeDesired {
                machine, record, ..
            } = &s.action
                && !l.errors.contains_key(machine)
            {
                l.recorded
                    .node_desired
                    .insert(machine.clone(), record.clone());
            }
        }
        (ok, failed)
    }

    fn apply_global(&mut self, l: &mut Loaded, a: &Action) -> Result<()> {
        match a {
            Action::GenerateMaintenanceKey { provider } => {
                let (private, public) =
                    generate_keypair(&format!("orbiter-maintenance@{provider}"))?;
                let new = BTreeMap::from([
                    (
                        maintenance_private_path(provider),
                        Zeroizing::new(private.as_bytes().to_vec()),
                    ),
                    (
                        maintenance_public_path(provider),
                        Zeroizing::new(public.as_bytes().to_vec()),
                    ),
                ]);
                // In Git before any machine trusts it: a key lost in a crash would lock Orbiter out.
                self.seal_secrets(
                    l,
                    &new,
                    &format!("Maintenance key of {provider} generated\n\nby Orbiter"),
                )?;
                let c = l.creds.entry(provider.clone()).or_default();
                c.maintenance_private = Some(Zeroizing::new(private));
                c.maintenance_public = Some(public);
                l.recorded.maintenance_keys.insert(provider.clone());
                Ok(())
            }
            Action::GenerateClusterSecrets { cluster, what } => {
                let (_, kind) = l
                    .clusters
                    .iter_mut()
                    .find(|(id, _)| id == cluster)
                    .ok_or_else(|| anyhow!("unknown cluster {cluster}"))?;
                kind.generate_secrets()?;
                let new = kind.secrets();
                // Before any machine gets them: a certificate a machine has must never be lost.
                self.seal_secrets(
                    l,
                    &new,
                    &format!("Cluster {cluster}: {what} generated\n\nby Orbiter"),
                )
            }
            Action::OfferPackages { provider, packages } => l
                .providers
                .get(provider)
                .ok_or_else(|| anyhow!("unknown provider {provider}"))?
                .offer_packages(packages),
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
                let now = node_protocol::timefmt::now_secs().max(0) as u64;
                if let Some((_, kind)) = l.clusters.iter_mut().find(|(id, _)| id == cluster) {
                    match &result {
                        Ok(out) => kind.note_step(*index, Ok(out), now),
                        Err(e) => kind.note_step(*index, Err(&format!("{e:#}")), now),
                    }
                }
                result.map(|_| ())
            }
            Action::ClearReboot { machine } | Action::ClearReplacement { machine } => {
                let flag = if matches!(a, Action::ClearReboot { .. }) {
                    MachineFlag::Reboot
                } else {
                    MachineFlag::Replace
                };
                self.clear_flag(machine, flag)?;
                // The next round of this iteration must not see the flag (it would ask again).
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
}
