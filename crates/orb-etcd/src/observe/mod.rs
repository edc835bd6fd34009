//! What one machine says about its etcd member: one shell snippet run as root over SSH, and a
//! parser for its output. etcdctl talks only to the local member, with the client
//! certificate, so the answer is about this machine; the planner combines machines.
//!
//! etcdctl 3.4 and 3.5 print the same JSON for status, health and member list; they differ in
//! `alarm list` without alarms (3.4: `{}`, 3.5: a header only) and in their log lines. Member
//! ids are uint64 and exceed 2^53, so they are read as u64, never through f64.

use crate::items::{CLIENT_PORT, paths};
use serde::{Deserialize, Serialize};
use serde_json::Value;

const BEGIN: &str = "@@orb-etcd-observe v1";
const END: &str = "@@end";

/// etcdctl against the local member with the client certificate, JSON output.
pub fn etcdctl(cluster: &str) -> String {
    etcdctl_at(cluster, &format!("https://127.0.0.1:{CLIENT_PORT}"))
}

/// etcdctl against `endpoints` (sh text: a URL list or a quoted variable) with the machine's
/// client certificate.
pub fn etcdctl_at(cluster: &str, endpoints: &str) -> String {
    format!(
        "ETCDCTL_API=3 etcdctl --endpoints={endpoints} --cacert={ca} --cert={crt} --key={key} --dial-timeout=2s --command-timeout=3s",
        ca = paths::pki_file(cluster, "ca.crt"),
        crt = paths::pki_file(cluster, "client.crt"),
        key = paths::pki_file(cluster, "client.key"),
    )
}

/// The snippet: POSIX sh, run as root; always exits 0 and prints one block.
pub fn observe_command(cluster: &str) -> String {
    let e = etcdctl(cluster);
    let unit = paths::unit(cluster);
    let data = paths::data(cluster);
    let mut s = format!(
        "echo '{BEGIN}'\n\
echo \"@@unit $(systemctl is-active {unit} 2>/dev/null || true)\"\n\
echo \"@@package $(dpkg-query -W -f='${{Version}}' etcd-server 2>/dev/null || true)\"\n\
if [ -d {data}/member ]; then echo '@@datadir yes'; echo \"@@walid $({wal})\"; else echo '@@datadir no'; fi\n\
{pki}\
grep -E '^(initial-cluster|initial-cluster-state|heartbeat-interval|election-timeout|quota-backend-bytes): ' {config} 2>/dev/null | sed 's/^/@@cfg /'\n\
sed -n 's/^# Managed by Orbiter.*; etcd-server \\([^ ]*\\)\\. Edits.*/@@cfg package: \\1/p' {config} 2>/dev/null\n\
if command -v etcdctl >/dev/null 2>&1 && [ -r {key} ]; then\n",
        key = paths::pki_file(cluster, "client.key"),
        config = paths::config(cluster),
        wal = crate::wal::read_ids_snippet(&data),
        pki = pki_snippet(cluster),
    );
    // A member that does not answer its status is not asked the rest: each question would
    // wait for its own timeout.
    for (k, (tag, args)) in [
        ("status", "endpoint status"),
        ("health", "endpoint health"),
        ("members", "member list"),
        ("alarms", "alarm list"),
    ]
    .into_iter()
    .enumerate()
    {
        s.push_str(&format!(
            "  out=$({e} -w json {args} 2>&1); rc=$?; echo \"@@{tag} $rc\"; printf '%s\\n' \"$out\"\n"
        ));
        if k == 0 {
            s.push_str("  if [ $rc -eq 0 ]; then\n");
        }
    }
    s.push_str(&format!(
        "  fi\nelse echo '@@noclient etcdctl or the client key is missing'; fi\necho '{END}'\n"
    ));
    s
}

/// `@@pki fresh|stale <label>`: the PKI generation label the member's items wrote
/// ([`paths::pki_state`]) and whether the running etcd started after that file was written
/// (so it runs with those certificates and trust). Nothing without the file.
fn pki_snippet(cluster: &str) -> String {
    format!(
        "st={st}\nif [ -r \"$st\" ]; then ts=$(systemctl show -p ExecMainStartTimestamp --value {unit} 2>/dev/null); \
case \"$ts\" in ''|n/a) start=0;; *) start=$(date -d \"$ts\" +%s 2>/dev/null || echo 0);; esac; \
mt=$(stat -c %Y \"$st\" 2>/dev/null || echo 0); if [ \"$start\" -ge \"$mt\" ]; then f=fresh; else f=stale; fi; \
echo \"@@pki $f $(head -n 1 \"$st\")\"; fi\n",
        st = crate::sh::quote(&paths::pki_state(cluster)),
        unit = paths::unit(cluster),
    )
}

/// What the `@@pki` line of the observation says.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct PkiSeen {
    /// The label of the certificates and trust on disk (see `tls::PkiStage::label`).
    pub label: String,
    /// The running member started after they were written.
    pub fresh: bool,
}

/// The parts of a member's config file the planner needs back.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct OnDisk {
    pub initial_cluster: String,
    pub initial_state: String,
    /// The package version named in the file's first line.
    pub package: String,
    pub heartbeatms: Option<u32>,
    pub electiontimeoutms: Option<u32>,
    pub quotabytes: Option<u64>,
}

/// One entry of the member list.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct MemberEntry {
    pub id: u64,
    /// Empty until the member has started once (etcd learns the name from the member itself).
    pub name: String,
    pub peer_urls: Vec<String>,
    pub client_urls: Vec<String>,
    /// An added member that never started has no name and no client URLs.
    pub started: bool,
    pub learner: bool,
}

/// What the machine's member reported.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct MemberView {
    /// The unit is active and the member answered `endpoint status`.
    pub running: bool,
    /// `systemctl is-active` of the member unit (`active`, `inactive`, `failed`, …).
    pub unit: String,
    /// Installed etcd-server Debian version, if any.
    pub package: Option<String>,
    /// The member's data directory holds data (a wipe is still needed after removal).
    pub data_dir: bool,
    /// `endpoint health`: the member serves linearizable reads (so its cluster has quorum).
    pub healthy: bool,
    pub id: Option<u64>,
    pub name: Option<String>,
    pub cluster_id: Option<u64>,
    pub leader: Option<u64>,
    pub raft_index: Option<u64>,
    pub raft_term: Option<u64>,
    pub db_size: Option<u64>,
    /// etcd server version, e.g. `3.5.16`.
    pub version: Option<String>,
    /// Alarms of the whole cluster as `NOSPACE@<member id>`.
    pub alarms: Vec<String>,
    /// The member list as this member sees it; `None` when it could not be read.
    pub members: Option<Vec<MemberEntry>>,
    /// The member's config file as it is on the machine (what it was started with): lets the
    /// planner adopt members it has no record of without rewriting (and restarting) them.
    pub config: Option<OnDisk>,
    /// Member and cluster id of the data directory's WAL (read offline, [`crate::wal`]); `None`
    /// without data or when unreadable (then `data_ids_error` says why).
    pub data_ids: Option<(u64, u64)>,
    pub data_ids_error: Option<String>,
    /// The PKI generation on disk and whether the running member uses it.
    pub pki: Option<PkiSeen>,
    /// Why something above is missing (first problem found), for the record and the plan.
    pub error: Option<String>,
}

impl MemberView {
    fn note(&mut self, e: String) {
        if self.error.is_none() {
            self.error = Some(e);
        }
    }
}

/// Parses [`observe_command`]'s output. Never fails: garbage or a missing block is a member
/// that is not running, with the reason.
pub fn parse(out: &str) -> MemberView {
    let mut v = MemberView::default();
    let Some(start) = out.find(BEGIN) else {
        v.error = Some(format!(
            "no observation block in the output ({})",
            excerpt(out)
        ));
        return v;
    };
    let body = &out[start + BEGIN.len()..];
    let complete = body.contains(END);
    let body = body.split(END).next().unwrap_or("");
    let mut sections: Vec<(String, i32, Vec<&str>)> = Vec::new();
    for line in body.lines() {
        if let Some(rest) = line.strip_prefix("@@unit ") {
            v.unit = rest.trim().to_owned();
        } else if let Some(rest) = line.strip_prefix("@@package ") {
            let p = rest.trim();
            v.package = (!p.is_empty()).then(|| p.to_owned());
        } else if let Some(rest) = line.strip_prefix("@@datadir ") {
            v.data_dir = rest.trim() == "yes";
        } else if let Some(rest) = line.strip_prefix("@@cfg ") {
            let Some((k, val)) = rest.split_once(": ") else {
                continue;
            };
            let val = val.trim().trim_matches('\'').to_owned();
            let c = v.config.get_or_insert_with(OnDisk::default);
            match k {
                "initial-cluster" => c.initial_cluster = val,
                "initial-cluster-state" => c.initial_state = val,
                "package" => c.package = val,
                "heartbeat-interval" => c.heartbeatms = val.parse().ok(),
                "election-timeout" => c.electiontimeoutms = val.parse().ok(),
                "quota-backend-bytes" => c.quotabytes = val.parse().ok(),
                _ => {}
            }
        } else if let Some(rest) = line.strip_prefix("@@walid ") {
            match crate::wal::parse_ids(rest) {
                Ok(ids) => v.data_ids = Some(ids),
                Err(e) => v.data_ids_error = Some(e),
            }
        } else if let Some(rest) = line.strip_prefix("@@pki ") {
            let (f, label) = rest.trim().split_once(' ').unwrap_or((rest.trim(), ""));
            v.pki = Some(PkiSeen {
                label: label.trim().to_owned(),
                fresh: f == "fresh",
            });
        } else if let Some(rest) = line.strip_prefix("@@noclient ") {
            v.note(rest.trim().to_owned());
        } else if let Some(rest) = line.strip_prefix("@@") {
            let mut it = rest.split_whitespace();
            let tag = it.next().unwrap_or("").to_owned();
            let rc = it.next().and_then(|r| r.parse().ok()).unwrap_or(-1);
            sections.push((tag, rc, Vec::new()));
        } else if let Some(s) = sections.last_mut() {
            s.2.push(line);
        }
    }
    if !complete {
        v.note("the observation output was cut off".into());
    }
    if v.unit.is_empty() {
        v.unit = "unknown".into();
    }
    for (tag, rc, lines) in &sections {
        let (data, problem) = split_output(lines);
        let failed = |what: &str| {
            format!(
                "{what}: {}",
                problem
                    .clone()
                    .unwrap_or_else(|| format!("etcdctl exited with {rc}"))
            )
        };
        match tag.as_str() {
            "status" => match data.as_ref().and_then(status_of) {
                Some(s) if *rc == 0 => {
                    v.id = s.id;
                    v.cluster_id = s.cluster_id;
                    v.leader = s.leader;
                    v.raft_index = s.raft_index;
                    v.raft_term = s.raft_term;
                    v.db_size = s.db_size;
                    v.version = s.version;
                    v.running = v.unit == "active" && v.id.is_some();
                }
                _ => v.note(failed("endpoint status")),
            },
            "health" => {
                let ok = data
                    .as_ref()
                    .and_then(|d| d.as_array()?.first()?.get("health")?.as_bool())
                    .unwrap_or(false);
                v.healthy = ok && *rc == 0;
                if !v.healthy {
                    let why = data.as_ref().and_then(|d| {
                        d.as_array()?
                            .first()?
                            .get("error")?
                            .as_str()
                            .map(str::to_owned)
                    });
                    v.note(format!(
                        "endpoint health: {}",
                        why.or(problem.clone())
                            .unwrap_or_else(|| "unhealthy".into())
                    ));
                }
            }
            "members" => match data.as_ref().and_then(members_of) {
                Some(m) if *rc == 0 => v.members = Some(m),
                _ => v.note(failed("member list")),
            },
            "alarms" => match &data {
                Some(d) if *rc == 0 => v.alarms = alarms_of(d),
                _ => v.note(failed("alarm list")),
            },
            _ => {}
        }
    }
    if let (Some(id), Some(ms)) = (v.id, &v.members) {
        v.name = ms
            .iter()
            .find(|m| m.id == id)
            .map(|m| m.name.clone())
            .filter(|n| !n.is_empty());
    }
    if !v.running {
        v.healthy = false;
        if v.unit != "active" {
            v.note(format!("the member unit is {}", v.unit));
        }
    }
    v
}

/// The data line (JSON that is not one of etcdctl's log lines) and a one-line problem from the
/// rest (etcdctl's `Error: …`, else the last log message).
fn split_output(lines: &[&str]) -> (Option<Value>, Option<String>) {
    let mut data = None;
    let mut problem = None;
    for l in lines {
        let t = l.trim();
        if t.is_empty() {
            continue;
        }
        match serde_json::from_str::<Value>(t) {
            Ok(j) if j.get("level").is_some() && j.get("msg").is_some() => {
                if problem.is_none() {
                    problem = j
                        .get("error")
                        .or(j.get("msg"))
                        .and_then(Value::as_str)
                        .map(|s| s.chars().take(300).collect());
                }
            }
            Ok(j) => data = Some(j),
            Err(_) => {
                if let Some(e) = t.strip_prefix("Error: ") {
                    problem = Some(e.chars().take(300).collect());
                } else if t.starts_with("Failed") || problem.is_none() {
                    problem = Some(t.chars().take(300).collect());
                }
            }
        }
    }
    (data, problem)
}

struct Status {
    id: Option<u64>,
    cluster_id: Option<u64>,
    leader: Option<u64>,
    raft_index: Option<u64>,
    raft_term: Option<u64>,
    db_size: Option<u64>,
    version: Option<String>,
}

fn status_of(d: &Value) -> Option<Status> {
    let s = d.as_array()?.first()?.get("Status")?;
    let h = s.get("header");
    let u = |v: Option<&Value>| v.and_then(Value::as_u64);
    Some(Status {
        id: u(h.and_then(|h| h.get("member_id"))),
        cluster_id: u(h.and_then(|h| h.get("cluster_id"))),
        leader: u(s.get("leader")),
        raft_index: u(s.get("raftIndex")),
        raft_term: u(s.get("raftTerm")),
        db_size: u(s.get("dbSize")),
        version: s.get("version").and_then(Value::as_str).map(str::to_owned),
    })
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

fn members_of(d: &Value) -> Option<Vec<MemberEntry>> {
    let list = d.get("members")?.as_array()?;
    let mut out = Vec::new();
    for m in list {
        let name = m
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        let client_urls = strings(m.get("clientURLs"));
        out.push(MemberEntry {
            id: m.get("ID")?.as_u64()?,
            started: !name.is_empty() || !client_urls.is_empty(),
            name,
            peer_urls: strings(m.get("peerURLs")),
            client_urls,
            learner: m.get("isLearner").and_then(Value::as_bool).unwrap_or(false),
        });
    }
    Some(out)
}

/// `alarm list`: `{}` (3.4, none), a header only (3.5, none) or `alarms: [{memberID, alarm}]`
/// with the alarm as a number (1 NOSPACE, 2 CORRUPT) or a name.
fn alarms_of(d: &Value) -> Vec<String> {
    let Some(list) = d.get("alarms").and_then(Value::as_array) else {
        return Vec::new();
    };
    list.iter()
        .map(|a| {
            let kind = match a.get("alarm") {
                Some(Value::Number(n)) => match n.as_u64() {
                    Some(1) => "NOSPACE".to_owned(),
                    Some(2) => "CORRUPT".to_owned(),
                    _ => format!("ALARM{n}"),
                },
                Some(Value::String(s)) => s.clone(),
                _ => "UNKNOWN".to_owned(),
            };
            match a.get("memberID").and_then(Value::as_u64) {
                Some(id) => format!("{kind}@{id:x}"),
                None => kind,
            }
        })
        .collect()
}

fn excerpt(s: &str) -> String {
    let t: String = s.trim().chars().take(120).collect();
    if t.is_empty() {
        "empty".into()
    } else {
        format!("starts with {t:?}")
    }
}

/// Lower-case hex, as etcdctl prints member ids in tables and as `member remove` wants them.
pub fn hex_id(id: u64) -> String {
    format!("{id:x}")
}

#[cfg(test)]
mod tests;
