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
    format!(
        "ETCDCTL_API=3 etcdctl --endpoints=https://127.0.0.1:{CLIENT_PORT} --cacert={ca} --cert={crt} --key={key} --dial-timeout=2s --command-timeout=3s",
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
if [ -d {data}/member ]; then echo '@@datadir yes'; else echo '@@datadir no'; fi\n\
grep -E '^(initial-cluster|initial-cluster-state|heartbeat-interval|election-timeout|quota-backend-bytes): ' {config} 2>/dev/null | sed 's/^/@@cfg /'\n\
sed -n 's/^# Managed by Orbiter.*; etcd-server \\([^ ]*\\)\\. Edits.*/@@cfg package: \\1/p' {config} 2>/dev/null\n\
if command -v etcdctl >/dev/null 2>&1 && [ -r {key} ]; then\n",
        key = paths::pki_file(cluster, "client.key"),
        config = paths::config(cluster),
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
mod tests {
    use super::*;

    // Real etcdctl output (bookworm 3.4.23 and trixie 3.5.16), one member.
    const STATUS_34: &str = r#"[{"Endpoint":"127.0.0.1:2379","Status":{"header":{"cluster_id":14841639068965178418,"member_id":10276657743932975437,"revision":1,"raft_term":2},"version":"3.4.23","dbSize":20480,"leader":10276657743932975437,"raftIndex":4,"raftTerm":2,"raftAppliedIndex":4,"dbSizeInUse":20480}}]"#;
    const STATUS_35: &str = r#"[{"Endpoint":"127.0.0.1:2379","Status":{"header":{"cluster_id":14841639068965178418,"member_id":10276657743932975437,"revision":1,"raft_term":4},"version":"3.5.16","dbSize":20480,"leader":10276657743932975437,"raftIndex":10,"raftTerm":4,"raftAppliedIndex":10,"dbSizeInUse":16384}}]"#;
    const HEALTH: &str = r#"[{"endpoint":"127.0.0.1:2379","health":true,"took":"2.646664ms"}]"#;
    const MEMBERS: &str = r#"{"header":{"cluster_id":14841639068965178418,"member_id":10276657743932975437,"raft_term":4},"members":[{"ID":3144060510354300025,"peerURLs":["http://10.9.9.9:2380"]},{"ID":10276657743932975437,"name":"m1","peerURLs":["http://localhost:2380"],"clientURLs":["http://localhost:2379"]}]}"#;
    const ALARMS_34_NONE: &str = "{}";
    const ALARMS_35_NONE: &str = r#"{"header":{"cluster_id":14841639068965178418,"member_id":10276657743932975437,"revision":1,"raft_term":4}}"#;
    const WARN_35: &str = r#"{"level":"warn","ts":"2026-11-26T23:15:51.164412Z","logger":"etcd-client","caller":"v3/retry_interceptor.go:63","msg":"retrying of unary invoker failed","target":"etcd-endpoints://0xc0003b41e0/127.0.0.1:2379","attempt":0,"error":"rpc error: code = DeadlineExceeded desc = context deadline exceeded"}"#;

    fn block(unit: &str, sections: &[(&str, i32, &str)]) -> String {
        let mut s = format!(
            "{BEGIN}\n@@unit {unit}\n@@package 3.4.23-4+b4\n@@datadir yes\n@@cfg initial-cluster: 'a=https://10.0.0.1:2380'\n@@cfg initial-cluster-state: 'new'\n@@cfg package: 3.4.23-4+b4\n@@cfg heartbeat-interval: 100\n"
        );
        for (tag, rc, body) in sections {
            s.push_str(&format!("@@{tag} {rc}\n{body}\n"));
        }
        s.push_str(END);
        s.push('\n');
        s
    }

    #[test]
    fn healthy_34_and_35() {
        for (status, alarms, ver) in [
            (STATUS_34, ALARMS_34_NONE, "3.4.23"),
            (STATUS_35, ALARMS_35_NONE, "3.5.16"),
        ] {
            let v = parse(&block(
                "active",
                &[
                    ("status", 0, status),
                    ("health", 0, HEALTH),
                    ("members", 0, MEMBERS),
                    ("alarms", 0, alarms),
                ],
            ));
            assert!(v.running && v.healthy, "{v:?}");
            assert_eq!(v.error, None);
            assert_eq!(v.id, Some(10276657743932975437));
            assert_eq!(v.leader, v.id);
            assert_eq!(v.cluster_id, Some(14841639068965178418));
            assert_eq!(v.version.as_deref(), Some(ver));
            assert_eq!(v.name.as_deref(), Some("m1"));
            assert_eq!(v.db_size, Some(20480));
            assert!(v.alarms.is_empty());
            assert!(v.data_dir);
            let ms = v.members.unwrap();
            assert_eq!(ms.len(), 2);
            assert!(!ms[0].started && ms[0].name.is_empty());
            assert!(ms[1].started);
            let c = v.config.unwrap();
            assert_eq!(c.initial_cluster, "a=https://10.0.0.1:2380");
            assert_eq!(c.initial_state, "new");
            assert_eq!(c.package, "3.4.23-4+b4");
            assert_eq!(c.heartbeatms, Some(100));
        }
    }

    #[test]
    fn alarms_as_numbers_or_names() {
        let a = r#"{"header":{},"alarms":[{"memberID":255,"alarm":1},{"memberID":16,"alarm":"CORRUPT"}]}"#;
        let v = parse(&block(
            "active",
            &[("status", 0, STATUS_35), ("alarms", 0, a)],
        ));
        assert_eq!(v.alarms, ["NOSPACE@ff", "CORRUPT@10"]);
    }

    #[test]
    fn a_failing_etcdctl_is_a_reason_not_an_error() {
        let v = parse(&block(
            "active",
            &[
                (
                    "status",
                    1,
                    &format!("{WARN_35}\nError: context deadline exceeded"),
                ),
                (
                    "health",
                    1,
                    r#"[{"endpoint":"https://127.0.0.1:2379","health":false,"took":"2.0s","error":"context deadline exceeded"}]"#,
                ),
                ("members", 1, "Error: context deadline exceeded"),
            ],
        ));
        assert!(!v.running && !v.healthy);
        assert_eq!(
            v.error.as_deref(),
            Some("endpoint status: context deadline exceeded")
        );
        assert!(v.members.is_none());
    }

    #[test]
    fn stopped_unit() {
        let v = parse(&block(
            "inactive",
            &[("status", 1, "Error: connection refused")],
        ));
        assert!(!v.running);
        assert_eq!(v.unit, "inactive");
        assert!(v.error.is_some());
    }

    #[test]
    fn garbage_never_fails() {
        for out in [
            "",
            "bash: line 1: syntax error",
            "\u{0}\u{1}binary",
            "@@orb-etcd-observe v1\n@@status 0\n[{\"Status\":{\"header\":{\"member_id\":-1}}}]\n",
            "@@orb-etcd-observe v1\n@@status 0\n[{\"Status\":{\"header\":{\"member_id\":1e30}}}]\n@@end",
            "@@orb-etcd-observe v1\n@@members 0\n{\"members\":[{\"ID\":\"x\"}]}\n@@end",
            "@@orb-etcd-observe v1\n@@\n@@ \n@@cfg\n@@cfg :\n@@end",
        ] {
            let v = parse(out);
            assert!(!v.running && !v.healthy, "{out:?}: {v:?}");
            assert!(v.error.is_some(), "{out:?}: {v:?}");
        }
        let v = parse("@@orb-etcd-observe v1\n@@unit active\n");
        assert_eq!(
            v.error.as_deref(),
            Some("the observation output was cut off")
        );
    }

    #[test]
    fn the_snippet_reads_the_config_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("etcd.yml");
        let certs = crate::tls::member_certs(
            &crate::tls::generate_ca("kv").unwrap(),
            "a",
            "10.0.0.1".parse().unwrap(),
        )
        .unwrap();
        let m = crate::items::MemberConfig {
            name: "a",
            ip: "10.0.0.1".parse().unwrap(),
            package_version: "3.5.16-4",
            tuning: crate::items::Tuning {
                heartbeatms: 50,
                electiontimeoutms: 500,
                quotabytes: 1024,
            },
            initial_cluster: "a=https://10.0.0.1:2380,b=https://10.0.0.2:2380",
            initial_state: crate::items::InitialState::Existing,
            certs: &certs,
        };
        std::fs::write(&path, crate::items::render_config("kv", &m)).unwrap();
        let cmd = observe_command("kv").replace(&paths::config("kv"), path.to_str().unwrap());
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(&cmd)
            .output()
            .unwrap();
        let v = parse(&String::from_utf8_lossy(&out.stdout));
        let c = v.config.expect("config read back");
        assert_eq!(c.initial_cluster, m.initial_cluster);
        assert_eq!(c.initial_state, "existing");
        assert_eq!(c.package, "3.5.16-4");
        assert_eq!(
            (c.heartbeatms, c.electiontimeoutms, c.quotabytes),
            (Some(50), Some(500), Some(1024))
        );
    }
}
