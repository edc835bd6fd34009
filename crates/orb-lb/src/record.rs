//! What Orbiter records about a provider's load balancer in the Orb repository: per VIP which
//! machine holds it (none, or several = split brain, flagged), per transport every backend as
//! HAProxy sees it. Built from the observations of all load balancing machines; the holder's
//! view of the backends wins (it is the one serving), else the first machine (by id) whose
//! HAProxy answered. No timestamps and no check durations, so a steady load balancer renders
//! the same bytes on every loop.

use crate::input::LbMachine;
use crate::observe::LbMachineObservation;
use orb_model::Id;
use orb_model::kinds::load_balancer::DynamicLoadBalancer;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub const RECORD_KIND: &str = "LoadBalancerRecord";
pub const RECORD_VERSION: &str = "v1";
/// A backend no load balancing machine reported on.
pub const UNKNOWN: &str = "unknown";

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct LoadBalancerRecord {
    /// [`RECORD_KIND`].
    pub kind: String,
    /// [`RECORD_VERSION`].
    pub version: String,
    pub provider: String,
    /// Load balancing machines whose observation failed: what they hold is not known.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unobserved: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vips: Vec<VipRecord>,
    /// Per load balancing machine, a digest of the configuration Orbiter handed it (its
    /// secret left out): a change reaches these machines one at a time, and a machine whose
    /// digest differs is still to come.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub configured: BTreeMap<String, String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct VipRecord {
    pub ip: String,
    /// The pool whose machines may hold it.
    pub pool: String,
    /// The machine holding it; absent when none does (or several do).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holder: Option<String>,
    /// Split brain: every machine holding it when more than one does (VRRP advertisements
    /// are not getting through between them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub splitbrain: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub transports: Vec<TransportRecord>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TransportRecord {
    pub name: String,
    pub frontendport: u16,
    /// The machine whose HAProxy the backend states are from; absent when none answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seenby: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub backends: Vec<BackendRecord>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct BackendRecord {
    pub machine: String,
    /// `UP`, `DOWN`, `MAINT`, `no check`, another HAProxy state, or [`UNKNOWN`].
    pub status: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub check: String,
}

impl LoadBalancerRecord {
    /// Refuses a record of another kind or a newer version (Orbiter must be upgraded to read it).
    pub fn check_version(&self) -> Result<(), String> {
        if self.kind != RECORD_KIND {
            return Err(format!("kind is `{}`, not {RECORD_KIND}", self.kind));
        }
        if self.version != RECORD_VERSION {
            return Err(format!(
                "{RECORD_KIND} version `{}` is newer than this Orbiter reads ({RECORD_VERSION}); upgrade Orbiter",
                self.version
            ));
        }
        Ok(())
    }

    /// Whether any VIP is held by several machines.
    pub fn split_brain(&self) -> bool {
        self.vips.iter().any(|v| !v.splitbrain.is_empty())
    }
}

/// The record of provider `provider` from the observations of its load balancing machines
/// (`observed`, by machine id; a machine missing there is `unobserved`).
pub fn build_record(
    provider: &Id,
    spec: &DynamicLoadBalancer,
    machines: &BTreeMap<Id, Vec<LbMachine>>,
    observed: &BTreeMap<Id, LbMachineObservation>,
) -> LoadBalancerRecord {
    let sorted = |pool: &Id| {
        let mut v: Vec<&LbMachine> = machines.get(pool).into_iter().flatten().collect();
        v.sort();
        v.dedup_by(|a, b| a.id == b.id);
        v
    };
    let mut unobserved = Vec::new();
    let mut vips = Vec::new();
    for (pool, vip) in spec.vips() {
        let lbs = sorted(pool);
        for m in &lbs {
            if !observed.contains_key(&m.id) {
                unobserved.push(m.id.to_string());
            }
        }
        let holders: Vec<&Id> = lbs
            .iter()
            .map(|m| &m.id)
            .filter(|id| observed.get(*id).is_some_and(|o| o.holds(vip.ip.value)))
            .collect();
        let answered = |id: &&Id| observed.get(*id).is_some_and(|o| o.servers.is_some());
        let view = holders
            .iter()
            .copied()
            .find(answered)
            .or_else(|| lbs.iter().map(|m| &m.id).find(answered));
        let transports = vip
            .transport
            .iter()
            .map(|t| {
                let mut backends: Vec<&LbMachine> = t
                    .backendpools
                    .iter()
                    .flat_map(|p| sorted(&p.value))
                    .collect();
                backends.sort();
                backends.dedup();
                let name = t.name.value.as_str();
                let backends = backends
                    .into_iter()
                    .map(|b| {
                        let seen = view.and_then(|v| observed[v].server(name, b.id.as_str()));
                        BackendRecord {
                            machine: b.id.to_string(),
                            status: seen.map_or(UNKNOWN, |s| s.status.as_str()).to_owned(),
                            check: seen.map(|s| s.check.clone()).unwrap_or_default(),
                        }
                    })
                    .collect();
                TransportRecord {
                    name: name.to_owned(),
                    frontendport: t.frontendport.value,
                    seenby: view.map(ToString::to_string),
                    backends,
                }
            })
            .collect();
        vips.push(VipRecord {
            ip: vip.ip.value.to_string(),
            pool: pool.to_string(),
            holder: (holders.len() == 1).then(|| holders[0].to_string()),
            splitbrain: if holders.len() > 1 {
                holders.iter().map(ToString::to_string).collect()
            } else {
                Vec::new()
            },
            transports,
        });
    }
    unobserved.sort();
    unobserved.dedup();
    LoadBalancerRecord {
        kind: RECORD_KIND.into(),
        version: RECORD_VERSION.into(),
        provider: provider.to_string(),
        unobserved,
        vips,
        configured: BTreeMap::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::{ServerObservation, ServerStatus};
    use crate::render::tests::{id, machines, spec};
    use std::net::Ipv4Addr;

    fn obs(
        addresses: &[[u8; 4]],
        servers: Option<&[(&str, &str, ServerStatus)]>,
    ) -> LbMachineObservation {
        LbMachineObservation {
            addresses: addresses.iter().map(|a| Ipv4Addr::from(*a)).collect(),
            interfaces: Vec::new(),
            servers: servers.map(|s| {
                s.iter()
                    .map(|(t, m, st)| ServerObservation {
                        transport: (*t).into(),
                        server: (*m).into(),
                        status: st.clone(),
                        check: if *st == ServerStatus::Up {
                            "L4OK".into()
                        } else {
                            "L4CON".into()
                        },
                    })
                    .collect()
            }),
        }
    }

    fn two() -> BTreeMap<Id, Vec<LbMachine>> {
        machines(&[("lb-2", [10, 0, 0, 12]), ("lb-1", [10, 0, 0, 11])])
    }

    #[test]
    fn the_holders_view_wins() {
        let up = ServerStatus::Up;
        let down = ServerStatus::Down;
        let observed = BTreeMap::from([
            (
                id("lb-1"),
                obs(&[[10, 0, 0, 11]], Some(&[("web", "w-1", down.clone())])),
            ),
            (
                id("lb-2"),
                obs(
                    &[[10, 0, 0, 12], [10, 0, 0, 100]],
                    Some(&[("web", "w-1", up.clone()), ("web", "w-2", down.clone())]),
                ),
            ),
        ]);
        let r = build_record(&id("lab"), &spec(), &two(), &observed);
        r.check_version().unwrap();
        assert!(r.unobserved.is_empty() && !r.split_brain());
        let vip = &r.vips[0];
        assert_eq!(
            (vip.ip.as_str(), vip.pool.as_str(), vip.holder.as_deref()),
            ("10.0.0.100", "lb", Some("lb-2"))
        );
        let web = &vip.transports[0];
        assert_eq!(
            (web.name.as_str(), web.frontendport, web.seenby.as_deref()),
            ("web", 443, Some("lb-2"))
        );
        let states: Vec<(&str, &str)> = web
            .backends
            .iter()
            .map(|b| (b.machine.as_str(), b.status.as_str()))
            .collect();
        assert_eq!(states, [("w-1", "UP"), ("w-2", "DOWN")]);
        assert_eq!(web.backends[0].check, "L4OK");
        // Nobody holds 10.0.0.101: the first machine that answered speaks for the backends.
        let api = &r.vips[1];
        assert_eq!(
            (api.holder.as_deref(), api.transports[0].seenby.as_deref()),
            (None, Some("lb-1"))
        );
        assert_eq!(api.transports[0].backends[0].status, UNKNOWN);
    }

    #[test]
    fn split_brain_and_unobserved_are_flagged() {
        let observed = BTreeMap::from([
            (id("lb-1"), obs(&[[10, 0, 0, 100]], None)),
            (id("lb-2"), obs(&[[10, 0, 0, 100]], None)),
        ]);
        let r = build_record(&id("lab"), &spec(), &two(), &observed);
        assert!(r.split_brain());
        assert_eq!(r.vips[0].splitbrain, ["lb-1", "lb-2"]);
        assert_eq!(r.vips[0].holder, None);
        assert_eq!(r.vips[0].transports[0].seenby, None);
        let r = build_record(&id("lab"), &spec(), &two(), &BTreeMap::new());
        assert_eq!(r.unobserved, ["lb-1", "lb-2"]);
    }

    #[test]
    fn renders_stably_and_reads_back() {
        let observed = BTreeMap::from([(id("lb-1"), obs(&[[10, 0, 0, 100]], Some(&[])))]);
        let a = build_record(&id("lab"), &spec(), &two(), &observed);
        let b = build_record(
            &id("lab"),
            &spec(),
            &machines(&[("lb-1", [10, 0, 0, 11]), ("lb-2", [10, 0, 0, 12])]),
            &observed,
        );
        let text = serde_saphyr::to_string(&a).unwrap();
        assert_eq!(text, serde_saphyr::to_string(&b).unwrap());
        assert!(
            text.starts_with(
                "kind: LoadBalancerRecord\nversion: v1\nprovider: lab\nunobserved:\n- lb-2\nvips:\n"
            ),
            "{text}"
        );
        let back: LoadBalancerRecord = serde_saphyr::from_str(&text).unwrap();
        assert_eq!(back, a);
        let newer = LoadBalancerRecord {
            version: "v2".into(),
            ..a
        };
        assert!(newer.check_version().unwrap_err().contains("upgrade"));
    }
}
