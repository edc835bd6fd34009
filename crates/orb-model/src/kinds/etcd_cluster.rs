//! `EtcdCluster`: a static etcd cluster on the machines of one provider pool.

use crate::error::ModelError;
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
mod tests {
    use super::*;
    use crate::Orb;
    use crate::registry::ClusterSpec;

    const BASE: &str = "kind: Orb
version: v1
providers:
  lab:
    kind: StaticProvider
    version: v1
    spec:
      pools:
        workers:
          - {id: w-1, hostname: w-1, ip: 10.0.0.1}
          - {id: w-2, hostname: w-2, ip: 10.0.0.2}
          - {id: w-3, hostname: w-3, ip: 10.0.0.3}
        spare:
          - {id: s-1, hostname: s-1, ip: 10.0.0.9}
clusters:
  kv:
    kind: EtcdCluster
    version: v1
    spec:
      provider: lab
      pool: workers
      nodes: 3
      version: 3.4.23
";

    fn parse(extra: &str) -> Result<EtcdCluster, crate::ModelError> {
        let orb = Orb::parse(&format!("{BASE}{extra}"), "orbiter.yml")?;
        let ClusterSpec::Etcd(e) = &orb.clusters.values().next().unwrap().spec;
        Ok(e.clone())
    }

    fn line_of(extra: &str, needle: &str) -> u64 {
        format!("{BASE}{extra}")
            .lines()
            .position(|l| l.contains(needle))
            .unwrap() as u64
            + 1
    }

    #[test]
    fn defaults_when_absent_and_not_written_back() {
        let e = parse("").unwrap();
        assert_eq!(e.tuning, EtcdTuning::default());
        assert_eq!(e.tuning.quotabytes.value, 2_147_483_648);
        assert!(e.backup.is_none());
        let orb = Orb::parse(BASE, "orbiter.yml").unwrap();
        let yaml = orb.to_yaml();
        assert!(!yaml.contains("tuning"), "{yaml}");
        assert_eq!(Orb::parse(&yaml, "orbiter.yml").unwrap(), orb);
    }

    #[test]
    fn tuning_and_backup_parse_and_round_trip() {
        let extra = "      tuning: {heartbeatms: 50, electiontimeoutms: 500}
      backup: {every: 6h, keep: 3, target: lab.s-1}
";
        let e = parse(extra).unwrap();
        assert_eq!(e.tuning.heartbeatms.value, 50);
        assert_eq!(e.tuning.electiontimeoutms.value, 500);
        assert_eq!(e.tuning.quotabytes.value, DEFAULT_QUOTA_BYTES);
        let b = e.backup.unwrap();
        assert_eq!(b.every_secs(), Some(6 * 3600));
        assert_eq!(b.keep.value, 3);
        assert_eq!(b.target_parts(), Some(("lab", "s-1")));
        let orb = Orb::parse(&format!("{BASE}{extra}"), "orbiter.yml").unwrap();
        assert_eq!(Orb::parse(&orb.to_yaml(), "orbiter.yml").unwrap(), orb);
    }

    #[test]
    fn election_timeout_must_be_five_heartbeats() {
        let extra = "      tuning: {heartbeatms: 300, electiontimeoutms: 1000}\n";
        let e = parse(extra).unwrap_err();
        assert_eq!(e.pos.unwrap().line, line_of(extra, "electiontimeoutms"));
        assert!(e.message.contains("electiontimeoutms"), "{e}");
        assert!(e.hint.unwrap().contains("1500"), "hint names the minimum");
    }

    #[test]
    fn bad_tuning_values_name_the_field() {
        for (extra, field) in [
            ("      tuning: {heartbeatms: 0}\n", "heartbeatms"),
            (
                "      tuning: {electiontimeoutms: 60000}\n",
                "electiontimeoutms",
            ),
            ("      tuning: {quotabytes: 0}\n", "quotabytes"),
            ("      tuning: {quotabytes: 9999999999999}\n", "quotabytes"),
        ] {
            let e = parse(extra).unwrap_err();
            assert!(e.message.contains(field), "{extra}: {e}");
            assert_eq!(e.pos.unwrap().line, line_of(extra, "tuning"), "{extra}");
            assert!(e.hint.is_some(), "{extra}");
        }
    }

    #[test]
    fn unknown_tuning_field_is_refused() {
        let e = parse("      tuning: {heartbeat: 10}\n").unwrap_err();
        assert!(e.message.contains("unknown field `heartbeat`"), "{e}");
    }

    #[test]
    fn bad_backup_values() {
        for (extra, needle) in [
            ("      backup: {every: 6, target: lab.s-1}\n", "no unit"),
            (
                "      backup: {every: xh, target: lab.s-1}\n",
                "whole number",
            ),
            ("      backup: {every: 0m, target: lab.s-1}\n", "zero"),
            (
                "      backup: {every: 1h, keep: 0, target: lab.s-1}\n",
                "keep",
            ),
            (
                "      backup: {every: 1h, target: s-1}\n",
                "provider.machine",
            ),
            (
                "      backup: {every: 1h, target: lbb.s-1}\n",
                "provider `lbb`",
            ),
            (
                "      backup: {every: 1h, target: lab.s-2}\n",
                "no machine `s-2`",
            ),
        ] {
            let e = parse(extra).unwrap_err();
            assert!(e.message.contains(needle), "{extra}: {e}");
            assert!(e.pos.is_some(), "{extra}");
        }
    }

    #[test]
    fn users_and_rotation_request_parse_and_round_trip() {
        let extra = "      users:\n        - {name: app, prefix: /app/}\n        - {name: billing-2, prefix: /billing/v2/}\n      rotatecerts: 2026-05-01T10:00:00Z\n";
        let e = parse(extra).unwrap();
        assert_eq!(e.users.len(), 2);
        assert_eq!(e.users[1].prefix.value, "/billing/v2/");
        assert_eq!(e.rotatecerts.unwrap().value, "2026-05-01T10:00:00Z");
        let orb = Orb::parse(&format!("{BASE}{extra}"), "orbiter.yml").unwrap();
        assert_eq!(Orb::parse(&orb.to_yaml(), "orbiter.yml").unwrap(), orb);
        assert!(
            !Orb::parse(BASE, "orbiter.yml")
                .unwrap()
                .to_yaml()
                .contains("users")
        );
    }

    #[test]
    fn bad_users_and_rotation_requests_point_at_the_field() {
        for (extra, needle, at) in [
            (
                "      users:\n        - {name: App, prefix: /app/}\n",
                "not a valid etcd user name",
                "App",
            ),
            (
                "      users:\n        - {name: orbiter, prefix: /app/}\n",
                "managed by Orbiter itself",
                "orbiter",
            ),
            (
                "      users:\n        - {name: app, prefix: /a/}\n        - {name: app, prefix: /b/}\n",
                "listed twice",
                "/b/",
            ),
            (
                "      users:\n        - {name: app, prefix: /app}\n",
                "must start and end with `/`",
                "/app}",
            ),
            (
                "      users:\n        - {name: app, prefix: app/}\n",
                "must start and end with `/`",
                "app/}",
            ),
            (
                "      users:\n        - {name: app, prefix: '/a b/'}\n",
                "must start and end with `/`",
                "a b",
            ),
            ("      rotatecerts: yesterday\n", "rotatecerts", "yesterday"),
        ] {
            let e = parse(extra).unwrap_err();
            assert!(e.message.contains(needle), "{extra}: {e}");
            assert_eq!(e.pos.unwrap().line, line_of(extra, at), "{extra}: {e}");
            assert!(e.hint.is_some(), "{extra}");
        }
        let e = parse("      users:\n        - {name: app}\n").unwrap_err();
        assert!(e.message.contains("prefix"), "{e}");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s"), Ok(30));
        assert_eq!(parse_duration("15m"), Ok(900));
        assert_eq!(parse_duration("1d"), Ok(86_400));
        assert!(parse_duration("").is_err());
        assert!(parse_duration("h").is_err());
        assert!(parse_duration("-1h").is_err());
        assert!(parse_duration("99999999999999999d").is_err());
    }
}
