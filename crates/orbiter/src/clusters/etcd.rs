//! The `EtcdCluster` kind in the engine: feeds `orb-etcd`'s quorum-aware planner with the
//! pool's machines and their members' answers, keeps its CAs and certificates sealed in
//! `orbiter/secrets.yml`, and turns its plan into items, steps and holds on machines.
//!
//! Every change of the certificate bundle (certificates for new machines and users, a new
//! generation for a rotation, retiring the old one, revoking a removed member's peer
//! certificate) is made in [`ClusterKind::generate_secrets`], never in `plan`, and the engine
//! seals it before any machine gets it. People read `<cluster>.ca` (the CAs to trust; both
//! during a rotation), `<cluster>.clientcert` / `.clientkey` (etcd user `person`) and
//! `<cluster>.users.<name>.cert` / `.key` for each user of the spec.
//!
//! The planner plans at most one destructive step (member removal, wipe) per plan; the kind
//! lives for one iteration, so once one ran, the later rounds of the iteration hold theirs.

use super::{
    ClusterKind, ClusterNeeds, FileCopy, KindInput, KindStep, SecretReader, pool_machines,
    record_path,
};
use crate::machine::MachineKey;
use crate::observed::Reach;
use crate::recorded::machine_ready;
use anyhow::{Context as _, Result, anyhow};
use orb_etcd::plan::{Candidate, PlanInput, plan};
use orb_etcd::record::{ClusterRecord, RECORD_KIND, RECORD_VERSIONS};
use orb_etcd::steps::EtcdStep;
use orb_etcd::tls::{ClusterSecrets, PkiChange, lacking};
use orb_model::Id;
use orb_model::kinds::etcd_cluster::EtcdCluster;
use std::collections::BTreeMap;
use zeroize::Zeroizing;

/// A member unhealthy or unreachable this long is replaced (quorum permitting).
pub const REPLACE_AFTER_SECS: u64 = 30;

/// During a certificate rotation: how long people and users get to fetch the CA bundle
/// (`<cluster>.ca`) before members serve certificates of the new CA, and again to switch to
/// their new client certificates before the members drop the old CA.
pub const ROTATION_CLIENT_GRACE_SECS: u64 = 600;

const MADISON: &str = "@@madison";

pub struct Etcd {
    id: Id,
    spec: EtcdCluster,
    record: ClusterRecord,
    secrets: Option<ClusterSecrets>,
    steps: Vec<EtcdStep>,
    /// The pool's machines (name, address) of the last plan: certificates are issued for them.
    machines: Vec<(String, std::net::IpAddr)>,
    /// The VIP of its endpoint transport, named by every member's server certificate.
    endpoint: Vec<std::net::IpAddr>,
    /// Bundle changes the last plan asked for.
    pki: Vec<PkiChange>,
    /// A destructive step (member removal, wipe) ran in this iteration: the planner allows one
    /// per plan, and the engine plans several rounds per iteration, so later rounds wait.
    destructive_ran: bool,
}

/// The packages of a member.
const PACKAGES: [&str; 2] = ["etcd-server", "etcd-client"];

/// Which Debian version of etcd-server a spec's version means here.
enum Package {
    Resolved(String),
    /// The provider's repository does not have it yet: it offers the packages first.
    Offer,
}

fn bundle_path(id: &Id) -> String {
    format!("orbiter.{id}.tls")
}

/// Reads a cluster's record file. One without kind and version was written before records
/// carried them, and reads the same.
pub fn read_record(text: &str, path: &str) -> Result<ClusterRecord> {
    crate::state::file_version(text, path, RECORD_KIND, RECORD_VERSIONS)?;
    crate::state::parse_yaml(text, path)
}

impl Etcd {
    pub fn load(
        id: &Id,
        spec: &EtcdCluster,
        endpoint: Vec<std::net::IpAddr>,
        record: Option<&str>,
        secret: SecretReader<'_>,
    ) -> Result<Etcd> {
        let record = match record {
            Some(t) => read_record(t, &record_path(id))?,
            None => ClusterRecord::default(),
        };
        let secrets = secret(&bundle_path(id))?
            .map(|b| serde_json::from_slice::<ClusterSecrets>(&b))
            .transpose()
            .with_context(|| format!("secret {} is not a certificate bundle", bundle_path(id)))?;
        Ok(Etcd {
            id: id.clone(),
            spec: spec.clone(),
            record,
            secrets,
            steps: Vec::new(),
            machines: Vec::new(),
            endpoint,
            pki: Vec::new(),
            destructive_ran: false,
        })
    }

    /// The Debian version of etcd-server for `spec.version`: given as such, or the newest
    /// offered one of that upstream version (the provider's repository, else the machines' apt).
    fn package(&self, input: &KindInput<'_>) -> Result<Package> {
        let want = &self.spec.version;
        if want.contains('-') {
            return Ok(Package::Resolved(want.clone()));
        }
        let catalog = input
            .observed
            .providers
            .get(&self.spec.provider.value)
            .and_then(|p| p.packages.as_ref());
        let mut offered: Vec<String> = match catalog {
            Some(c) => c
                .versions
                .get(PACKAGES[0])
                .map(|v| v.iter().cloned().collect())
                .unwrap_or_default(),
            None => input
                .outputs
                .values()
                .filter_map(|o| o.split_once(MADISON).map(|x| x.1))
                .flat_map(|s| s.split_whitespace().map(str::to_owned))
                .collect(),
        };
        offered.retain(|v| {
            let no_epoch = v.split_once(':').map_or(v.as_str(), |x| x.1);
            no_epoch.rsplit_once('-').map(|x| x.0) == Some(want.as_str())
        });
        offered.sort();
        if let Some(v) = offered.pop() {
            return Ok(Package::Resolved(v));
        }
        if catalog.is_some_and(|c| !c.asked.contains(PACKAGES[0])) {
            return Ok(Package::Offer);
        }
        Err(anyhow!(
            "etcd-server {want} is not offered by the machines' apt sources; give the full Debian version (e.g. {want}-1) or add a source that has it"
        ))
    }

    /// The spec's users (their client certificates are issued with the rest).
    fn users(&self) -> Vec<String> {
        self.spec
            .users
            .iter()
            .map(|u| u.name.value.clone())
            .collect()
    }

    /// Needs when nothing can be planned yet: every machine of the pool stays as it is.
    fn hold_all(&self, input: &KindInput<'_>, why: &str) -> ClusterNeeds {
        let mut needs = ClusterNeeds::default();
        for m in pool_machines(
            input.observed,
            &self.spec.provider.value,
            &self.spec.pool.value,
        ) {
            needs.frozen.insert(m.machine.key.clone(), why.to_owned());
            needs.held.insert(m.machine.key.clone(), why.to_owned());
        }
        needs.waiting.push(why.to_owned());
        needs
    }
}

impl ClusterKind for Etcd {
    fn pool(&self) -> (&Id, &Id) {
        (&self.spec.provider.value, &self.spec.pool.value)
    }

    fn observe_command(&self) -> String {
        format!(
            "{}\necho {MADISON}\napt-cache madison etcd-server 2>/dev/null | awk '{{print $3}}'\ntrue",
            orb_etcd::observe::observe_command(self.id.as_str())
        )
    }

    fn plan(&mut self, input: &KindInput<'_>) -> Result<ClusterNeeds> {
        let (provider, pool) = (&self.spec.provider.value, &self.spec.pool.value);
        let machines = pool_machines(input.observed, provider, pool);
        let package = match self.package(input)? {
            Package::Resolved(v) => v,
            Package::Offer => {
                let mut needs = self.hold_all(
                    input,
                    &format!(
                        "etcd-server {} is offered in the repository of provider {provider} first",
                        self.spec.version
                    ),
                );
                needs.offer.insert(
                    provider.clone(),
                    PACKAGES.iter().map(|p| p.to_string()).collect(),
                );
                return Ok(needs);
            }
        };
        let candidates: Vec<Candidate> = machines
            .iter()
            .map(|m| Candidate {
                machine: m.machine.key.to_string(),
                ip: m.machine.ip,
                ready: machine_ready(m, input.recorded),
                reachable: m.reach.logged_in(),
                // To be replaced: its member leaves (quorum permitting) and a successor joins.
                gone: input.replacing.contains(&m.machine.key),
            })
            .collect();
        let views: BTreeMap<String, orb_etcd::observe::MemberView> = machines
            .iter()
            .filter_map(|m| {
                let out = input.outputs.get(&m.machine.key)?;
                let block = out.split_once(MADISON).map_or(out.as_str(), |x| x.0);
                Some((m.machine.key.to_string(), orb_etcd::observe::parse(block)))
            })
            .collect();
        let names: Vec<(String, std::net::IpAddr)> = candidates
            .iter()
            .map(|c| (c.machine.clone(), c.ip))
            .collect();
        // Certificates are generated by a step of their own, and reach Git before any
        // machine gets them; until then the planner waits for the missing ones.
        let missing = lacking(self.secrets.as_ref(), &names, &self.users(), &self.endpoint);
        self.machines = names.clone();
        self.pki.clear();
        let generate = (!missing.is_empty()).then(|| {
            (
                self.id.clone(),
                format!("TLS certificates ({})", missing.join(", ")),
            )
        });
        let Some(secrets) = &self.secrets else {
            let mut needs = self.hold_all(
                input,
                &format!("etcd cluster {}: its CA is generated first", self.id),
            );
            needs.generate.extend(generate);
            return Ok(needs);
        };
        let mut p = plan(&PlanInput {
            cluster: self.id.as_str(),
            spec: &self.spec,
            package: &package,
            candidates: &candidates,
            observed: &views,
            record: &self.record,
            secrets,
            now: input.now,
            grace_secs: REPLACE_AFTER_SECS,
            client_grace_secs: ROTATION_CLIENT_GRACE_SECS,
            disrupting: &input.disrupting.iter().map(|k| k.to_string()).collect(),
        });
        if self.destructive_ran {
            let held: Vec<String> = p
                .steps
                .iter()
                .filter(|s| s.destructive())
                .map(|s| s.summary())
                .collect();
            p.steps.retain(|s| !s.destructive());
            p.waiting.extend(held.into_iter().map(|s| {
                format!("`{s}` waits for the next iteration: one destructive step per iteration")
            }));
        }
        let key = |s: &str| MachineKey::parse(s).map_err(|e| anyhow!("machine {s}: {e}"));
        let mut generate: Vec<(Id, String)> = generate.into_iter().collect();
        if !p.pki.is_empty() {
            let what: Vec<String> = p.pki.iter().map(PkiChange::describe).collect();
            generate = vec![(
                self.id.clone(),
                generate
                    .first()
                    .map(|(_, w)| format!("{w}; "))
                    .unwrap_or_default()
                    + &what.join("; "),
            )];
        }
        self.pki = p.pki.clone();
        let mut needs = ClusterNeeds {
            waiting: p.waiting.clone(),
            generate,
            ..ClusterNeeds::default()
        };
        for (name, why) in &p.not_yet {
            needs.not_yet.insert(key(name)?, why.clone());
        }
        for m in &machines {
            let k = &m.machine.key;
            let member = p
                .record
                .member(&k.to_string())
                .is_some_and(|r| r.state == orb_etcd::record::MemberState::Member);
            if member && !views.get(&k.to_string()).is_some_and(|v| v.healthy) {
                needs
                    .unhealthy
                    .insert(k.clone(), format!("etcd member {k} is not healthy"));
            }
            match p.items.get(&k.to_string()) {
                Some(items) => {
                    needs.items.insert(k.clone(), items.clone());
                }
                None => {
                    let why = if input.replacing.contains(k) {
                        "it is being replaced: its etcd member leaves first"
                    } else {
                        "its etcd certificates are missing"
                    };
                    needs.frozen.insert(k.clone(), why.to_owned());
                }
            }
            if !p.releasable.contains(&k.to_string()) {
                let why = if self.record.member(&k.to_string()).is_some()
                    || p.record.member(&k.to_string()).is_some()
                {
                    format!(
                        "member of etcd cluster {}; it leaves the cluster first",
                        self.id
                    )
                } else {
                    format!("etcd cluster {} still has data or plans on it", self.id)
                };
                needs.held.insert(k.clone(), why);
            }
            // A former member that cannot be wiped because it is dead: a provider that
            // creates machines replaces it (a Static one waits for the person).
            let former = p.record.removed.iter().any(|r| r.name == k.to_string());
            if former && matches!(m.reach, Reach::Unreachable(_)) {
                needs.heal.insert(
                    k.clone(),
                    format!(
                        "dead member removed from etcd cluster {}; its machine is replaced",
                        self.id
                    ),
                );
                needs.held.remove(k);
            }
        }
        for s in &p.steps {
            let copy = match (s, &self.spec.backup) {
                (EtcdStep::Snapshot { path, .. }, Some(b)) => {
                    let to = key(&b.target.value)?;
                    let prune = EtcdStep::PruneSnapshots {
                        cluster: self.id.to_string(),
                        on: to.to_string(),
                        dir: orb_etcd::plan::SNAPSHOT_DIR.to_owned(),
                        keep: b.keep.value,
                    };
                    Some(FileCopy {
                        path: path.clone(),
                        to,
                        after: prune.command(),
                    })
                }
                _ => None,
            };
            needs.steps.push((
                self.id.clone(),
                KindStep {
                    machine: key(s.machine())?,
                    summary: s.summary(),
                    reason: format!("etcd cluster {}", self.id),
                    destructive: s.destructive(),
                    command: s.command(),
                    copy,
                },
            ));
        }
        self.steps = p.steps.clone();
        self.record = p.record;
        Ok(needs)
    }

    fn generate_secrets(&mut self) -> Result<()> {
        let cluster = self.id.as_str();
        let users = self.users();
        let fail =
            |e: orb_etcd::tls::TlsError| anyhow!("certificates of etcd cluster {cluster}: {e}");
        let mut have = self.secrets.clone();
        if let Some(s) = have.as_mut() {
            for c in &self.pki {
                s.apply(cluster, c, &self.machines, &users, &self.endpoint)
                    .map_err(fail)?;
            }
        }
        let (secrets, _) =
            ClusterSecrets::ensure(cluster, have, &self.machines, &users, &self.endpoint)
                .map_err(fail)?;
        self.secrets = Some(secrets);
        self.pki.clear();
        Ok(())
    }

    fn note_step(&mut self, index: usize, result: Result<&str, &str>, now: u64) {
        let Some(step) = self.steps.get(index) else {
            return;
        };
        self.destructive_ran |= step.destructive();
        self.record.note_step(step, result, now);
        // The engine moved the snapshot to the backup target: that is where it is kept.
        if let (EtcdStep::Snapshot { path, .. }, Ok(_), Some(b), Some(last)) = (
            step,
            result,
            &self.spec.backup,
            self.record.last_backup.as_mut(),
        ) {
            last.location = format!("{}:{path}", b.target.value);
        }
    }

    fn teardown_command(&self) -> String {
        // The cluster goes as a whole: unchecked.
        let wipe = EtcdStep::WipeMember {
            cluster: self.id.to_string(),
            on: String::new(),
            check: None,
        };
        format!(
            "{}\nrm -f /etc/systemd/system/{unit} {mask}\nsystemctl daemon-reload\napt-mark unhold etcd-server etcd-client >/dev/null 2>&1 || true\nrmdir /etc/orb-etcd 2>/dev/null || true",
            wipe.command(),
            unit = orb_etcd::items::paths::unit(self.id.as_str()),
            mask = orb_etcd::items::paths::PACKAGED_UNIT,
        )
    }

    fn files(&self) -> BTreeMap<String, String> {
        let mut record = self.record.clone();
        record.kind = RECORD_KIND.to_owned();
        record.version = RECORD_VERSIONS[RECORD_VERSIONS.len() - 1].to_owned();
        BTreeMap::from([(record_path(&self.id), crate::state::render(&record))])
    }

    fn serving(&self) -> Option<(String, std::collections::BTreeSet<Id>)> {
        let transport = self.spec.endpoint.as_ref()?.value.to_string();
        let members = self
            .record
            .members
            .iter()
            .filter(|m| m.state == orb_etcd::record::MemberState::Member)
            .filter_map(|m| MachineKey::parse(&m.name).ok().map(|k| k.machine))
            .collect();
        Some((transport, members))
    }

    fn secrets(&self) -> BTreeMap<String, Zeroizing<Vec<u8>>> {
        let mut out = BTreeMap::new();
        let Some(s) = &self.secrets else {
            return out;
        };
        let bundle = serde_json::to_vec(s).expect("certificates serialize");
        out.insert(bundle_path(&self.id), Zeroizing::new(bundle));
        let id = &self.id;
        let published = s.published(self.record.rotation.as_ref().map(|r| r.phase));
        out.insert(
            format!("{id}.ca"),
            Zeroizing::new(published.ca.clone().into_bytes()),
        );
        if let Some(person) = published.person {
            out.insert(
                format!("{id}.clientcert"),
                Zeroizing::new(person.cert.clone().into_bytes()),
            );
            out.insert(
                format!("{id}.clientkey"),
                Zeroizing::new(person.key.expose().as_bytes().to_vec()),
            );
        }
        for (user, c) in published.users {
            out.insert(
                format!("{id}.users.{user}.cert"),
                Zeroizing::new(c.cert.clone().into_bytes()),
            );
            out.insert(
                format!("{id}.users.{user}.key"),
                Zeroizing::new(c.key.expose().as_bytes().to_vec()),
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use orb_model::Located;
    use orb_model::kinds::etcd_cluster::{EtcdTuning, EtcdUser};

    fn spec() -> EtcdCluster {
        EtcdCluster {
            provider: Located::new(Id::parse("lab").unwrap()),
            pool: Located::new(Id::parse("etcd").unwrap()),
            nodes: Located::new(3),
            version: "3.4.23".into(),
            tuning: EtcdTuning::default(),
            backup: None,
            users: vec![EtcdUser {
                name: Located::new("app".into()),
                prefix: Located::new("/app/".into()),
            }],
            rotatecerts: None,
            endpoint: None,
        }
    }

    #[test]
    fn people_and_users_read_their_own_certificates_never_orbiters() {
        let id = Id::parse("kv").unwrap();
        let none = |_: &str| -> Result<Option<Zeroizing<Vec<u8>>>> { Ok(None) };
        let mut kind = Etcd::load(&id, &spec(), Vec::new(), None, &none).unwrap();
        assert!(
            kind.secrets().is_empty(),
            "nothing before the generate step"
        );
        kind.generate_secrets().unwrap();
        let out = kind.secrets();
        let paths: Vec<&str> = out.keys().map(String::as_str).collect();
        assert_eq!(
            paths,
            [
                "kv.ca",
                "kv.clientcert",
                "kv.clientkey",
                "kv.users.app.cert",
                "kv.users.app.key",
                "orbiter.kv.tls"
            ]
        );
        let bundle: ClusterSecrets = serde_json::from_slice(&out["orbiter.kv.tls"]).unwrap();
        let text = |p: &str| String::from_utf8(out[p].to_vec()).unwrap();
        assert_eq!(text("kv.clientcert"), bundle.person.as_ref().unwrap().cert);
        assert_ne!(
            text("kv.clientcert"),
            bundle.client.cert,
            "not Orbiter's (root) certificate"
        );
        assert_eq!(text("kv.users.app.cert"), bundle.users["app"].cert);
        assert_eq!(text("kv.ca"), bundle.ca.pem.cert);
        // Read back: the same bundle, nothing lacking.
        let sealed = out["orbiter.kv.tls"].clone();
        let reader = move |p: &str| -> Result<Option<Zeroizing<Vec<u8>>>> {
            Ok((p == "orbiter.kv.tls").then(|| sealed.clone()))
        };
        let again = Etcd::load(&id, &spec(), Vec::new(), None, &reader).unwrap();
        assert_eq!(again.secrets, Some(bundle));
        assert!(
            !kind.teardown_command().contains("refusing"),
            "teardown wipes unchecked"
        );
    }
}
