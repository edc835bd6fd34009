//! The `DynamicLoadBalancer` kind in the engine: one per pool of a provider that holds VIPs.
//! It feeds `orb-lb` with the provider's machines, the VRRP password (generated once, kept
//! sealed in `orbiter/secrets.yml`) and the package versions the machines' apt offers, gives
//! every load balancing machine its keepalived and HAProxy items and every machine concerned
//! its firewall rules, and records who holds each VIP and how HAProxy sees each backend in
//! `orbiter/loadbalancers/<provider>.<pool>.yml`.
//!
//! A change of a machine's configuration reaches the pool one machine at a time: the next
//! machine gets its new items only once every machine changed so far reports them applied and
//! healthy (its proxy answers `/ready`, keepalived runs), and the machine holding a VIP comes
//! last, so a VIP moves at most once and never to a machine that is not ready for it.
//! Machines still to come keep their node-desired state as it is meanwhile (`frozen`).

use super::{ClusterKind, ClusterNeeds, KindInput, SecretReader, pool_machines};
use crate::machine::MachineKey;
use crate::metrics::Gauge;
use crate::recorded::machine_ready;
use anyhow::{Context as _, Result, anyhow};
use node_protocol::{FileSecret, Item};
use orb_lb::record::{LoadBalancerRecord, RECORD_KIND, RECORD_VERSION};
use orb_lb::{LbInput, LbMachine, LbMachineObservation, MachineLb, Packages};
use orb_model::Id;
use orb_model::kinds::load_balancer::DynamicLoadBalancer;
use sha2::{Digest as _, Sha256};
use std::collections::BTreeMap;
use std::net::IpAddr;
use zeroize::Zeroizing;

/// Where the package section of the observation starts (after `orb-lb`'s own output).
const PACKAGES_MARK: &str = "== packages";
const PACKAGES: [&str; 2] = ["keepalived", "haproxy"];
/// A password of this many random letters and digits; VRRP uses its first 8.
const PASSWORD_LEN: usize = 24;

pub struct LoadBalancer {
    provider: Id,
    pool: Id,
    spec: DynamicLoadBalancer,
    interface: String,
    password: Option<Zeroizing<Vec<u8>>>,
    record: LoadBalancerRecord,
}

pub const RECORDS_DIR: &str = "orbiter/loadbalancers/";

/// Where the kind of `provider`'s VIP pool `pool` keeps its record.
pub fn record_path(provider: &Id, pool: &Id) -> String {
    format!("{RECORDS_DIR}{provider}.{pool}.yml")
}

/// The VIP pool (`provider.pool`) a record path is about.
pub fn record_pool(path: &str) -> Option<String> {
    let name = path.strip_prefix(RECORDS_DIR)?.strip_suffix(".yml")?;
    let (provider, pool) = name.split_once('.')?;
    (Id::parse(provider).is_ok() && Id::parse(pool).is_ok()).then(|| name.to_owned())
}

fn password_path(provider: &Id) -> String {
    format!("orbiter.{provider}.vrrppassword")
}

impl LoadBalancer {
    /// `interface`: where VIPs live on the provider's machines (`eth0` on Local machines).
    pub fn load(
        provider: &Id,
        pool: &Id,
        spec: &DynamicLoadBalancer,
        interface: &str,
        record: Option<&str>,
        secret: SecretReader<'_>,
    ) -> Result<LoadBalancer> {
        let path = record_path(provider, pool);
        let record = match record {
            Some(text) => {
                let r: LoadBalancerRecord = crate::state::parse_yaml(text, &path)?;
                r.check_version().map_err(|e| anyhow!("{path}: {e}"))?;
                r
            }
            None => LoadBalancerRecord {
                kind: RECORD_KIND.into(),
                version: RECORD_VERSION.into(),
                provider: provider.to_string(),
                unobserved: Vec::new(),
                vips: Vec::new(),
                configured: BTreeMap::new(),
            },
        };
        Ok(LoadBalancer {
            provider: provider.clone(),
            pool: pool.clone(),
            spec: spec.clone(),
            interface: interface.to_owned(),
            password: secret(&password_path(provider))?,
            record,
        })
    }

    /// The spec cut down to this kind's pool (the record covers its own VIPs only).
    fn own_spec(&self) -> DynamicLoadBalancer {
        let mut spec = self.spec.clone();
        spec.pools.retain(|p, _| p.value == self.pool);
        spec
    }

    fn hold_all(&self, input: &KindInput<'_>, why: String) -> ClusterNeeds {
        let mut needs = ClusterNeeds::default();
        for m in pool_machines(input.observed, &self.provider, &self.pool) {
            needs.frozen.insert(m.machine.key.clone(), why.clone());
        }
        needs.waiting.push(why);
        needs
    }

    /// keepalived's and HAProxy's versions: the candidates of the machines' apt (the first
    /// machine that has both), or first offered by a provider with a repository of its own.
    fn packages(&self, input: &KindInput<'_>) -> Result<Packages, Box<ClusterNeeds>> {
        for out in input.outputs.values() {
            let found = candidates(out);
            if let (Some(k), Some(h)) = (found.get(PACKAGES[0]), found.get(PACKAGES[1])) {
                return Ok(Packages {
                    keepalived: k.clone(),
                    haproxy: h.clone(),
                });
            }
        }
        let mut needs = self.hold_all(
            input,
            format!(
                "keepalived and haproxy are not offered to the machines of {}.{} yet",
                self.provider, self.pool
            ),
        );
        let catalog = input
            .observed
            .providers
            .get(&self.provider)
            .and_then(|p| p.packages.as_ref());
        // Offered once: the provider's repository then has them, and the machines' apt sees
        // them at its next update (at most a minute later, see `observe_command`).
        if let Some(c) = catalog
            && PACKAGES
                .iter()
                .any(|p| !c.asked.contains(*p) && !c.versions.contains_key(*p))
        {
            needs.offer.insert(
                self.provider.clone(),
                PACKAGES.iter().map(|p| p.to_string()).collect(),
            );
        }
        Err(Box::new(needs))
    }
}

/// `name version` lines of the package section.
fn candidates(output: &str) -> BTreeMap<String, String> {
    let Some((_, section)) = output.rsplit_once(&format!("\n{PACKAGES_MARK}\n")) else {
        return BTreeMap::new();
    };
    section
        .lines()
        .take(PACKAGES.len())
        .filter_map(|l| {
            let (name, version) = l.trim().split_once(' ')?;
            let ok = PACKAGES.contains(&name)
                && !version.is_empty()
                && version.len() <= 64
                && !version.starts_with('(')
                && version
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || ".+-:~".contains(c));
            ok.then(|| (name.to_owned(), version.to_owned()))
        })
        .collect()
}

/// A digest of what a machine gets, its secret file's bytes included only as rendered with a
/// placeholder password: it changes with the configuration, never reveals the secret.
fn config_digest(placeholder: &MachineLb) -> String {
    let mut h = Sha256::new();
    for item in &placeholder.items {
        match item {
            Item::File(f) if matches!(f.secret, Some(FileSecret::Value(_))) => {
                h.update(f.path.as_bytes());
                if let Some(FileSecret::Value(v)) = &f.secret {
                    h.update(v.expose());
                }
            }
            other => h.update(serde_json::to_vec(other).unwrap_or_default()),
        }
        h.update([0]);
    }
    h.finalize()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl ClusterKind for LoadBalancer {
    fn pool(&self) -> (&Id, &Id) {
        (&self.provider, &self.pool)
    }

    fn observe_command(&self) -> String {
        let names = PACKAGES.join(" ");
        format!(
            "{}\necho '{PACKAGES_MARK}'
stamp=/var/lib/orbiter-lb/lists-updated
if apt-cache policy {names} 2>/dev/null | grep -q 'Candidate: (none)' || [ \"$(apt-cache policy {names} 2>/dev/null | grep -c Candidate:)\" != 2 ]; then
  if [ -z \"$(find \"$stamp\" -mmin -1 2>/dev/null)\" ]; then
    mkdir -p /var/lib/orbiter-lb && touch \"$stamp\"
    timeout 120 apt-get update -qq >/dev/null 2>&1
  fi
fi
for p in {names}; do echo \"$p $(apt-cache policy \"$p\" 2>/dev/null | awk '/Candidate:/ {{print $2; exit}}')\"; done
true",
            orb_lb::observe_command().trim_end().trim_end_matches("exit 0")
        )
    }

    fn plan(&mut self, input: &KindInput<'_>) -> Result<ClusterNeeds> {
        let Some(password) = self.password.clone() else {
            let mut needs = self.hold_all(
                input,
                format!(
                    "a VRRP password for provider {} is generated first",
                    self.provider
                ),
            );
            needs
                .generate
                .push((self.provider.clone(), "the VRRP password".into()));
            return Ok(needs);
        };
        let packages = match self.packages(input) {
            Ok(p) => p,
            Err(needs) => return Ok(*needs),
        };
        let provider_obs = input.observed.providers.get(&self.provider);
        let mut machines: BTreeMap<Id, Vec<LbMachine>> = BTreeMap::new();
        for m in provider_obs
            .map(|p| p.machines.as_slice())
            .unwrap_or_default()
        {
            if let IpAddr::V4(ip) = m.machine.ip {
                machines
                    .entry(m.machine.pool.clone())
                    .or_default()
                    .push(LbMachine {
                        id: m.machine.key.machine.clone(),
                        ip,
                    });
            }
        }
        let observations: BTreeMap<Id, LbMachineObservation> = input
            .outputs
            .iter()
            .filter_map(|(k, out)| {
                orb_lb::parse_observation(out)
                    .ok()
                    .map(|o| (k.machine.clone(), o))
            })
            .collect();
        // Each machine's VIPs go on the interface carrying its own address.
        let interfaces: BTreeMap<Id, String> = machines
            .values()
            .flatten()
            .filter_map(|m| {
                let i = observations.get(&m.id)?.interface_of(m.ip)?;
                Some((m.id.clone(), i.to_owned()))
            })
            .collect();
        let render = |pw: &[u8]| {
            orb_lb::render(&LbInput {
                provider: &self.provider,
                spec: &self.spec,
                machines: &machines,
                vrrp_password: pw,
                interfaces: &interfaces,
                interface: &self.interface,
                serving: input.serving,
                vip_prefix: 32,
                packages: &packages,
            })
            .map_err(|e| anyhow!("load balancer of provider {}: {e}", self.provider))
        };
        let rendered = render(&password)?;
        let placeholder = render(b"placeholder-not-the-secret")?;

        let mut record =
            orb_lb::build_record(&self.provider, &self.own_spec(), &machines, &observations);
        record.configured = self.record.configured.clone();

        let mut needs = ClusterNeeds::default();
        // Firewall rules of every machine of the provider that the load balancer concerns.
        for (id, lb) in &rendered {
            if !lb.firewall.is_empty() {
                needs
                    .firewall
                    .entry(MachineKey::new(&self.provider, id))
                    .or_default()
                    .extend(lb.firewall.iter().cloned());
            }
        }
        let holds_vip = |id: &Id| {
            record
                .vips
                .iter()
                .any(|v| v.holder.as_deref() == Some(id.as_str()))
        };
        let lbs = pool_machines(input.observed, &self.provider, &self.pool);
        let mut changing = Vec::new();
        let mut behind = Vec::new();
        for m in &lbs {
            let id = &m.machine.key.machine;
            let want = placeholder.get(id).map(config_digest).unwrap_or_default();
            let has = record.configured.get(id.as_str());
            if has == Some(&want) {
                if m.reach.logged_in() && !machine_ready(m, input.recorded) {
                    changing.push(m.machine.key.clone());
                }
            } else if m.reach.logged_in() && !interfaces.contains_key(id) {
                // Not configured on a guess: it waits for an observation naming its interface.
                needs.frozen.insert(
                    m.machine.key.clone(),
                    "its load balancer waits for the interface of its address to be observed"
                        .into(),
                );
            } else if m.reach.logged_in() {
                behind.push((holds_vip(id), m.machine.key.clone(), want));
            }
        }
        // Non-holders first, then in the pool's order.
        behind.sort_by_key(|(holds, _, _)| *holds);
        let next = if changing.is_empty() {
            behind.first().cloned()
        } else {
            None
        };
        if let Some((_, key, want)) = &next {
            record
                .configured
                .insert(key.machine.to_string(), want.clone());
        }
        for (_, key, _) in &behind {
            if next.as_ref().is_some_and(|(_, k, _)| k == key) {
                continue;
            }
            let why = match changing.first() {
                Some(c) => {
                    format!("its load balancer change waits for {c} to apply and be healthy")
                }
                None => "its load balancer change comes after another machine's".into(),
            };
            needs.frozen.insert(key.clone(), why);
        }
        if !behind.is_empty() || !changing.is_empty() {
            needs.waiting.push(format!(
                "load balancer of {}.{}: {} machine(s) still to change, one at a time",
                self.provider,
                self.pool,
                behind.len() + changing.len(),
            ));
        }
        for m in &lbs {
            let key = &m.machine.key;
            if needs.frozen.contains_key(key) {
                continue;
            }
            if let Some(lb) = rendered.get(&key.machine) {
                needs.items.insert(key.clone(), lb.items.clone());
            }
            if m.reach.logged_in() && !machine_ready(m, input.recorded) {
                needs
                    .unhealthy
                    .insert(key.clone(), "its load balancer is not ready".into());
            }
        }
        for v in record.vips.iter().filter(|v| !v.splitbrain.is_empty()) {
            needs.waiting.push(format!(
                "VIP {} is held by several machines ({}): VRRP advertisements do not get through",
                v.ip,
                v.splitbrain.join(", ")
            ));
        }
        // Machines that are gone keep no entry.
        record
            .configured
            .retain(|id, _| lbs.iter().any(|m| m.machine.key.machine.as_str() == id));
        self.record = record;
        Ok(needs)
    }

    fn generate_secrets(&mut self) -> Result<()> {
        if self.password.is_some() {
            return Ok(());
        }
        const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
        let mut raw = Zeroizing::new([0u8; PASSWORD_LEN]);
        getrandom::fill(raw.as_mut()).context("the operating system's random generator")?;
        let pw: Vec<u8> = raw
            .iter()
            .map(|b| ALPHABET[*b as usize % ALPHABET.len()])
            .collect();
        self.password = Some(Zeroizing::new(pw));
        Ok(())
    }

    fn note_step(&mut self, _index: usize, _result: Result<&str, &str>, _now: u64) {}

    fn teardown_command(&self) -> String {
        "systemctl disable --now keepalived.service haproxy.service 2>/dev/null
rm -f /etc/keepalived/keepalived.conf /usr/local/lib/orbiter/lb-ready
rm -rf /var/lib/orbiter-lb
true"
            .into()
    }

    fn files(&self) -> BTreeMap<String, String> {
        BTreeMap::from([(
            record_path(&self.provider, &self.pool),
            crate::state::render(&self.record),
        )])
    }

    fn gauges(&self) -> Vec<Gauge> {
        let mut out = Vec::new();
        let base = |vip: &str| {
            vec![
                ("provider", self.provider.to_string()),
                ("pool", self.pool.to_string()),
                ("vip", vip.to_owned()),
            ]
        };
        for v in &self.record.vips {
            let holders = if v.splitbrain.is_empty() {
                usize::from(v.holder.is_some())
            } else {
                v.splitbrain.len()
            };
            out.push(Gauge {
                name: "lb_vip_holders",
                help: "Machines holding the VIP (1 is right; 0 down; more: split brain).",
                labels: base(&v.ip),
                value: holders as f64,
            });
            for h in v.holder.iter().chain(&v.splitbrain) {
                let mut labels = base(&v.ip);
                labels.push(("machine", h.clone()));
                out.push(Gauge {
                    name: "lb_vip_held",
                    help: "1 for each machine holding the VIP.",
                    labels,
                    value: 1.0,
                });
            }
            for t in &v.transports {
                for b in &t.backends {
                    let mut labels = base(&v.ip);
                    labels.push(("transport", t.name.clone()));
                    labels.push(("machine", b.machine.clone()));
                    out.push(Gauge {
                        name: "lb_backend_up",
                        help: "1 when HAProxy sees the backend UP, else 0.",
                        labels,
                        value: if b.status == "UP" { 1.0 } else { 0.0 },
                    });
                }
            }
        }
        out
    }

    fn secrets(&self) -> BTreeMap<String, Zeroizing<Vec<u8>>> {
        self.password
            .iter()
            .map(|p| (password_path(&self.provider), p.clone()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn package_candidates_are_read_and_garbage_is_not() {
        let out = "orb-lb-observation v1\n== end\n== packages\nkeepalived 1:2.2.7-1+b2\nhaproxy 2.6.12-1+deb12u2\n";
        let c = candidates(out);
        assert_eq!(c["keepalived"], "1:2.2.7-1+b2");
        assert_eq!(c["haproxy"], "2.6.12-1+deb12u2");
        for bad in [
            "== packages\nkeepalived (none)\nhaproxy \n",
            "== packages\nkeepalived 1;rm -rf /\n",
            "no section at all",
        ] {
            assert!(candidates(&format!("x\n{bad}")).is_empty(), "{bad}");
        }
    }
}
