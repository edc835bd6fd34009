//! orbos's v0 and v1, read as they were and migrated to v2 in code. Both list `destinations`
//! per transport, each with its own pool, port and health checks; v2 has one backend port and
//! one health check for all of a transport's pools, so destinations that differ in those are
//! refused instead of silently merged (orbos kept the first destination's).

use super::{CheckProtocol, Cidr, DynamicLoadBalancer, HealthChecks, Transport, Vip};
use crate::id::Id;
use crate::located::Located;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::Ipv4Addr;

/// `v0`: a whitelist per VIP, inherited by its transports that have none.
#[derive(Deserialize, Clone, Debug)]
#[serde(transparent)]
pub struct DynamicLoadBalancerV0 {
    pub pools: BTreeMap<Located<Id>, Vec<VipV0>>,
}

#[derive(Deserialize, Clone, Debug)]
#[serde(deny_unknown_fields)]
pub struct VipV0 {
    pub ip: Located<Ipv4Addr>,
    #[serde(default)]
    pub whitelist: Option<Vec<Located<Cidr>>>,
    #[serde(default)]
    pub transport: Vec<SourceV1>,
}

/// `v1`: the whitelist moved into the transports.
#[derive(Deserialize, Clone, Debug)]
#[serde(transparent)]
pub struct DynamicLoadBalancerV1 {
    pub pools: BTreeMap<Located<Id>, Vec<VipV1>>,
}

#[derive(Deserialize, Clone, Debug)]
#[serde(deny_unknown_fields)]
pub struct VipV1 {
    pub ip: Located<Ipv4Addr>,
    #[serde(default)]
    pub transport: Vec<SourceV1>,
}

/// A transport of v0 and v1 (orbos's `Source`).
#[derive(Deserialize, Clone, Debug)]
#[serde(deny_unknown_fields)]
pub struct SourceV1 {
    pub name: Located<Id>,
    pub sourceport: Located<u16>,
    #[serde(default)]
    pub destinations: Vec<DestinationV1>,
    #[serde(default)]
    pub whitelist: Option<Vec<Located<Cidr>>>,
}

#[derive(Deserialize, Clone, Debug)]
#[serde(deny_unknown_fields)]
pub struct DestinationV1 {
    pub pool: Located<Id>,
    pub port: Located<u16>,
    #[serde(default)]
    pub healthchecks: Option<HealthChecksV1>,
}

/// Go's zero values meant "not set": an empty protocol or path, code 0.
#[derive(Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct HealthChecksV1 {
    #[serde(default)]
    pub protocol: String,
    #[serde(default)]
    pub path: String,
    #[serde(default)]
    pub code: u16,
}

impl DynamicLoadBalancerV0 {
    pub fn migrate(self) -> Result<DynamicLoadBalancer, String> {
        let pools = self
            .pools
            .into_iter()
            .map(|(pool, vips)| {
                let vips = vips
                    .into_iter()
                    .map(|v| {
                        let transport = v
                            .transport
                            .into_iter()
                            .map(|mut t| {
                                if t.whitelist.is_none() {
                                    t.whitelist.clone_from(&v.whitelist);
                                }
                                t
                            })
                            .collect();
                        VipV1 {
                            ip: v.ip,
                            transport,
                        }
                    })
                    .collect();
                (pool, vips)
            })
            .collect();
        DynamicLoadBalancerV1 { pools }.migrate()
    }
}

impl DynamicLoadBalancerV1 {
    pub fn migrate(self) -> Result<DynamicLoadBalancer, String> {
        let mut pools = BTreeMap::new();
        for (pool, vips) in self.pools {
            let mut out = Vec::with_capacity(vips.len());
            for v in vips {
                let transport = v
                    .transport
                    .into_iter()
                    .map(|t| t.migrate(v.ip.value))
                    .collect::<Result<_, _>>()?;
                out.push(Vip {
                    ip: v.ip,
                    transport,
                });
            }
            pools.insert(pool, out);
        }
        Ok(DynamicLoadBalancer { pools })
    }
}

impl SourceV1 {
    fn migrate(self, vip: Ipv4Addr) -> Result<Transport, String> {
        let name = &self.name;
        let Some(first) = self.destinations.first() else {
            return Err(format!(
                "VIP {vip}: transport `{name}` has no destinations; list at least one pool and port"
            ));
        };
        if let Some(d) = self.destinations.iter().find(|d| d.port != first.port) {
            return Err(format!(
                "VIP {vip}: transport `{name}` sends to port {} of pool `{}` and port {} of pool `{}`; version v2 has one backendport per transport: split it into one transport per port",
                first.port, first.pool, d.port, d.pool
            ));
        }
        if let Some(d) = self
            .destinations
            .iter()
            .find(|d| d.healthchecks != first.healthchecks)
        {
            return Err(format!(
                "VIP {vip}: transport `{name}` checks pool `{}` differently from pool `{}`; version v2 has one health check per transport: make them equal or split the transport",
                d.pool, first.pool
            ));
        }
        let healthchecks = match &first.healthchecks {
            None => HealthChecks::default(),
            Some(h) => h.migrate(vip, name)?,
        };
        let mut backendpools: Vec<Located<Id>> = Vec::new();
        for d in &self.destinations {
            if !backendpools.contains(&d.pool) {
                backendpools.push(d.pool.clone());
            }
        }
        Ok(Transport {
            name: self.name.clone(),
            frontendport: self.sourceport,
            backendport: first.port.clone(),
            backendpools,
            // orbos's nginx allowed only the Orb's own machines when the list was empty, which
            // is what `[]` means in v2.
            whitelist: self.whitelist.unwrap_or_default(),
            healthchecks,
            // orbos's nginx of these versions spoke no PROXY protocol.
            proxyprotocol: false,
        })
    }
}

impl HealthChecksV1 {
    fn migrate(&self, vip: Ipv4Addr, name: &Located<Id>) -> Result<HealthChecks, String> {
        let protocol = match self.protocol.as_str() {
            "" | "tcp" => CheckProtocol::Tcp,
            "http" => CheckProtocol::Http,
            "https" => CheckProtocol::Https,
            other => {
                return Err(format!(
                    "VIP {vip}: transport `{name}`: health check protocol `{other}` is not one of tcp, http, https"
                ));
            }
        };
        if protocol == CheckProtocol::Tcp {
            return Ok(HealthChecks::default());
        }
        Ok(HealthChecks {
            protocol: Located::new(protocol),
            path: (!self.path.is_empty()).then(|| Located::new(self.path.clone())),
            code: (self.code != 0).then_some(Located::new(self.code)),
        })
    }
}
