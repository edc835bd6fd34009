//! `EtcdCluster`: a static etcd cluster on the machines of one provider pool.

use crate::error::ModelError;
use crate::hint::did_you_mean;
use crate::id::Id;
use crate::kinds::ClusterModel;
use crate::kinds::OrbView;
use crate::kinds::refs::{check_machine_ref, resolve_pool};
use crate::located::Located;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct EtcdCluster {
    pub provider: Located<Id>,
    pub pool: Located<Id>,
    /// Members; odd, because an even count adds a machine without adding failure tolerance.
    pub nodes: Located<u32>,
    /// etcd-server package version, e.g. `3.4.23`.
    pub version: String,
    /// Raft timing and the backend quota; the defaults are etcd's own, except the quota.
    #[serde(default, skip_serializing_if = "EtcdTuning::is_default")]
    pub tuning: EtcdTuning,
    /// Scheduled snapshots; none when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<EtcdBackup>,
    /// Users of the cluster besides Orbiter and people: each gets its own client certificate
    /// (CN = its name, readable as `<cluster>.users.<name>.cert` / `.key`) and a role that
    /// reads and writes the keys under its prefix only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub users: Vec<EtcdUser>,
    /// A request to rotate every certificate of the cluster: an RFC 3339 time (`orbctl
    /// cluster rotate-certs` writes the current one). A time newer than the one the last
    /// rotation answered starts a rolling rotation; the value stays as the record of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotatecerts: Option<Located<String>>,
    /// The load balancer transport clients use (its VIP and frontend port), instead of the
    /// members' own addresses: a `DynamicLoadBalancer` transport sending to this pool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<Located<Id>>,
}

/// One user of an etcd cluster.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct EtcdUser {
    /// The etcd user and role name, and the certificate's CN: lower-case letters, digits and
    /// `-`, starting with a letter, at most 32; not `root`, `orbiter` or `person`.
    pub name: Located<String>,
    /// The key prefix it may read and write, e.g. `/app/`: starts and ends with `/` (so that
    /// `/app/` does not also grant `/apple`).
    pub prefix: Located<String>,
}

/// The port etcd members serve clients on (orb-etcd's `CLIENT_PORT`): where an endpoint's
/// transport must send.
pub const ETCD_CLIENT_PORT: u16 = 2379;

/// Users Orbiter manages itself.
pub const RESERVED_ETCD_USERS: [&str; 3] = ["root", "orbiter", "person"];

/// etcd's `--heartbeat-interval`, `--election-timeout` and `--quota-backend-bytes`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct EtcdTuning {
    #[serde(default = "default_heartbeat")]
    pub heartbeatms: Located<u32>,
    #[serde(default = "default_election")]
    pub electiontimeoutms: Located<u32>,
    /// 2 GiB: etcd's default, and the size its documentation calls safe without tuning.
    #[serde(default = "default_quota")]
    pub quotabytes: Located<u64>,
}

pub const DEFAULT_HEARTBEAT_MS: u32 = 100;
pub const DEFAULT_ELECTION_TIMEOUT_MS: u32 = 1000;
pub const DEFAULT_QUOTA_BYTES: u64 = 2 * 1024 * 1024 * 1024;
/// etcd warns above this size and its documentation calls it the supported maximum.
pub const MAX_QUOTA_BYTES: u64 = 8 * 1024 * 1024 * 1024;
/// etcd refuses election timeouts above 50 s.
pub const MAX_ELECTION_TIMEOUT_MS: u32 = 50_000;

fn default_heartbeat() -> Located<u32> {
    Located::new(DEFAULT_HEARTBEAT_MS)
}
fn default_election() -> Located<u32> {
    Located::new(DEFAULT_ELECTION_TIMEOUT_MS)
}
fn default_quota() -> Located<u64> {
    Located::new(DEFAULT_QUOTA_BYTES)
}

impl Default for EtcdTuning {
    fn default() -> Self {
        EtcdTuning {
            heartbeatms: default_heartbeat(),
            electiontimeoutms: default_election(),
            quotabytes: default_quota(),
        }
    }
}

impl EtcdTuning {
    pub fn is_default(&self) -> bool {
        *self == EtcdTuning::default()
    }
}

/// Snapshots taken every `every`, the newest `keep` kept on `target` (a machine of the Orb,
/// `provider.machine`, reached over SSH like any other).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct EtcdBackup {
    /// A duration: a number and one of `s`, `m`, `h`, `d`, e.g. `6h`.
    pub every: Located<String>,
    #[serde(default = "default_keep")]
    pub keep: Located<u32>,
    pub target: Located<String>,
}

fn default_keep() -> Located<u32> {
    Located::new(7)
}

impl EtcdBackup {
    /// The interval in seconds; `None` when `every` is not a valid duration (rejected by
    /// validation, so a parsed Orb always has one).
    pub fn every_secs(&self) -> Option<u64> {
        parse_duration(&self.every.value).ok()
    }

    /// `(provider, machine)` of the target; `None` when it is not `provider.machine`.
    pub fn target_parts(&self) -> Option<(&str, &str)> {
        self.target.value.split_once('.')
    }
}

/// Parses `30s`, `15m`, `6h`, `1d` into seconds. The error says what is wrong.
pub fn parse_duration(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let unit = s.chars().last().ok_or("the duration is empty")?;
    let factor = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        _ => {
            return Err(format!(
                "`{s}` has no unit; end it with s, m, h or d (e.g. `6h`)"
            ));
        }
    };
    let n: u64 = s[..s.len() - 1]
        .parse()
        .map_err(|_| format!("`{s}` is not a whole number followed by s, m, h or d"))?;
    if n == 0 {
        return Err(format!("`{s}` is zero"));
    }
    n.checked_mul(factor)
        .ok_or_else(|| format!("`{s}` is too long"))
}

impl ClusterModel for EtcdCluster {
    fn placement(&self) -> (&Located<Id>, &Located<Id>) {
        (&self.provider, &self.pool)
    }

    fn validate(&self, orb: &dyn OrbView, id: &Id, file: &str) -> Result<(), ModelError> {
        check_etcd(orb, id, self, file)
    }
}

fn check_etcd(orb: &dyn OrbView, id: &Id, e: &EtcdCluster, file: &str) -> Result<(), ModelError> {
    let size = resolve_pool(orb, file, &e.provider, &e.pool)?;
    let n = e.nodes.value;
    if n == 0 || n.is_multiple_of(2) {
        return Err(ModelError::new(file, e.nodes.pos, format!("cluster `{id}`: nodes is {n}; an etcd cluster needs an odd number of members"))
            .with_hint(format!("an even count tolerates no more failures than {} members and adds a machine that can break quorum; use {}", n.saturating_sub(1).max(1), n + 1)));
    }
    if (n as usize) > size {
        return Err(ModelError::new(
            file,
            e.nodes.pos,
            format!(
                "cluster `{id}` wants {n} members but pool `{}.{}` has {size} machines",
                e.provider, e.pool
            ),
        )
        .with_hint("add machines to the pool or lower nodes"));
    }
    check_etcd_tuning(id, &e.tuning, file)?;
    if let Some(b) = &e.backup {
        check_etcd_backup(orb, id, b, file)?;
    }
    check_etcd_users(id, &e.users, file)?;
    if let Some(ep) = &e.endpoint {
        check_endpoint(orb, id, e, ep, file)?;
    }
    if let Some(r) = &e.rotatecerts
        && let Err(msg) = node_protocol::timefmt::parse_rfc3339(&r.value)
    {
        return Err(
            ModelError::new(file, r.pos, format!("cluster `{id}`: rotatecerts: {msg}")).with_hint(
                format!("`orbctl cluster rotate-certs {id}` writes the current time"),
            ),
        );
    }
    Ok(())
}

/// The endpoint names a transport of the Orb that reaches this cluster's members as they
/// listen: the same provider, the cluster's pool among its backends, etcd's client port, and
/// no PROXY header (etcd does not read one).
fn check_endpoint(
    orb: &dyn OrbView,
    id: &Id,
    e: &EtcdCluster,
    ep: &Located<Id>,
    file: &str,
) -> Result<(), ModelError> {
    let all = orb.transports();
    let Some(t) = all.iter().find(|t| t.transport.name.value == ep.value) else {
        let names: Vec<&str> = all
            .iter()
            .map(|t| t.transport.name.value.as_str())
            .collect();
        return Err(ModelError::new(
            file,
            ep.pos,
            format!("cluster `{id}`: endpoint `{ep}` is not a transport of the Orb"),
        )
        .with_hint(format!(
            "{}; transports are defined in a provider's loadbalancing",
            did_you_mean(ep.value.as_str(), &names)
        )));
    };
    let name = &t.transport.name;
    if *t.provider != e.provider.value || !t.transport.sends_to(&e.pool.value) {
        let pools: Vec<String> = t
            .transport
            .backendpools
            .iter()
            .map(|p| format!("{}.{p}", t.provider))
            .collect();
        return Err(ModelError::new(
            file,
            ep.pos,
            format!(
                "cluster `{id}`: endpoint `{ep}` sends to {}, not to the cluster's pool `{}.{}`",
                pools.join(", "),
                e.provider,
                e.pool
            ),
        )
        .with_hint(format!(
            "add `{}` to the backendpools of transport `{name}`, or name another transport",
            e.pool
        )));
    }
    if t.transport.backendport.value != ETCD_CLIENT_PORT {
        return Err(ModelError::new(
            file,
            ep.pos,
            format!(
                "cluster `{id}`: endpoint `{ep}` sends to port {}, but etcd serves clients on {ETCD_CLIENT_PORT}",
                t.transport.backendport
            ),
        )
        .with_hint(format!("set backendport: {ETCD_CLIENT_PORT} in transport `{name}`")));
    }
    if t.transport.proxyprotocol {
        return Err(ModelError::new(
            file,
            ep.pos,
            format!("cluster `{id}`: endpoint `{ep}` sends a PROXY protocol header, which etcd does not read"),
        )
        .with_hint(format!("remove `proxyprotocol: true` from transport `{name}`")));
    }
    Ok(())
}

fn check_etcd_users(id: &Id, users: &[EtcdUser], file: &str) -> Result<(), ModelError> {
    for (k, u) in users.iter().enumerate() {
        let n = &u.name.value;
        let ok = n.len() <= 32
            && n.starts_with(|c: char| c.is_ascii_lowercase())
            && n.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !ok {
            return Err(ModelError::new(
                file,
                u.name.pos,
                format!("cluster `{id}`: user name `{n}` is not a valid etcd user name here"),
            )
            .with_hint("use lower-case letters, digits and `-`, starting with a letter, at most 32 characters"));
        }
        if RESERVED_ETCD_USERS.contains(&n.as_str()) {
            return Err(ModelError::new(
                file,
                u.name.pos,
                format!("cluster `{id}`: user `{n}` is managed by Orbiter itself"),
            )
            .with_hint("`orbiter` is Orbiter's own user, `person` the one `orbctl readsecret <cluster>.clientcert` gives people, `root` etcd's; choose another name"));
        }
        if users[..k].iter().any(|o| o.name.value == *n) {
            return Err(ModelError::new(
                file,
                u.name.pos,
                format!("cluster `{id}`: user `{n}` is listed twice"),
            )
            .with_hint("give each user one entry (one prefix)"));
        }
        let p = &u.prefix.value;
        let printable = p
            .chars()
            .all(|c| c.is_ascii_graphic() && c != '\'' && c != '"' && c != '\\');
        if p.len() < 2 || !p.starts_with('/') || !p.ends_with('/') || !printable {
            return Err(ModelError::new(
                file,
                u.prefix.pos,
                format!("cluster `{id}`: user `{n}`: prefix `{p}` must start and end with `/`"),
            )
            .with_hint("e.g. `/app/`; without the closing `/` the prefix `/app` would also grant `/apple` (no spaces or quotes)"));
        }
    }
    Ok(())
}

fn check_etcd_tuning(id: &Id, t: &EtcdTuning, file: &str) -> Result<(), ModelError> {
    let (hb, el, quota) = (&t.heartbeatms, &t.electiontimeoutms, &t.quotabytes);
    if hb.value == 0 {
        return Err(ModelError::new(
            file,
            hb.pos,
            format!("cluster `{id}`: tuning.heartbeatms is 0"),
        )
        .with_hint("etcd's default is 100; use about the round-trip time between members"));
    }
    if el.value > MAX_ELECTION_TIMEOUT_MS {
        return Err(ModelError::new(
            file,
            el.pos,
            format!(
                "cluster `{id}`: tuning.electiontimeoutms is {}; etcd refuses more than {MAX_ELECTION_TIMEOUT_MS}",
                el.value
            ),
        )
        .with_hint("etcd's default is 1000"));
    }
    let min = u64::from(hb.value) * 5;
    if u64::from(el.value) < min {
        return Err(ModelError::new(
            file,
            el.pos.or(hb.pos),
            format!(
                "cluster `{id}`: tuning.electiontimeoutms ({}) is less than 5 heartbeats (tuning.heartbeatms is {})",
                el.value, hb.value
            ),
        )
        .with_hint(format!(
            "set tuning.electiontimeoutms to at least {min} (etcd recommends 10 heartbeats), or lower tuning.heartbeatms"
        )));
    }
    if quota.value == 0 || quota.value > MAX_QUOTA_BYTES {
        return Err(ModelError::new(
            file,
            quota.pos,
            format!(
                "cluster `{id}`: tuning.quotabytes is {}; it must be between 1 and {MAX_QUOTA_BYTES} (8 GiB)",
                quota.value
            ),
        )
        .with_hint("etcd's default is 2147483648 (2 GiB); above 8 GiB etcd is not supported"));
    }
    Ok(())
}

fn check_etcd_backup(
    orb: &dyn OrbView,
    id: &Id,
    b: &EtcdBackup,
    file: &str,
) -> Result<(), ModelError> {
    if let Err(msg) = parse_duration(&b.every.value) {
        return Err(ModelError::new(
            file,
            b.every.pos,
            format!("cluster `{id}`: backup.every: {msg}"),
        )
        .with_hint("write a duration like `30m`, `6h` or `1d`"));
    }
    if b.keep.value == 0 {
        return Err(ModelError::new(
            file,
            b.keep.pos,
            format!("cluster `{id}`: backup.keep is 0, which would delete every snapshot"),
        )
        .with_hint("keep at least 1 snapshot; the default is 7"));
    }
    check_machine_ref(
        orb,
        file,
        &format!("cluster `{id}`: backup.target"),
        &b.target,
    )
}

#[cfg(test)]
mod tests;
