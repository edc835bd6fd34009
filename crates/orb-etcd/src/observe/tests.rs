//! The observation parser against real and broken etcdctl output, and the snippet reading a
//! config file back.

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
    let a =
        r#"{"header":{},"alarms":[{"memberID":255,"alarm":1},{"memberID":16,"alarm":"CORRUPT"}]}"#;
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
    let s = crate::tls::ClusterSecrets::ensure(
        "kv",
        None,
        &[("a".into(), "10.0.0.1".parse().unwrap())],
        &[],
        &[],
    )
    .unwrap()
    .0;
    let pki = s.member_pki("a", crate::tls::PkiStage::Current).unwrap();
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
        pki: &pki,
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

#[test]
fn the_snippet_reads_whose_data_it_is() {
    let dir = tempfile::tempdir().unwrap();
    let wal = dir.path().join("member/wal");
    std::fs::create_dir_all(&wal).unwrap();
    std::fs::write(
        wal.join("0000000000000000-0000000000000000.wal"),
        crate::wal::tests::segment(0x9d3a_0000_0000_00f5, 0xc1),
    )
    .unwrap();
    let cmd = observe_command("kv").replace(&paths::data("kv"), dir.path().to_str().unwrap());
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(&cmd)
        .output()
        .unwrap();
    let v = parse(&String::from_utf8_lossy(&out.stdout));
    assert!(v.data_dir);
    assert_eq!(v.data_ids, Some((0x9d3a_0000_0000_00f5, 0xc1)), "{v:?}");
    let v = parse(&format!(
        "{BEGIN}\n@@unit active\n@@datadir yes\n@@walid none no WAL segment\n@@pki fresh trust 1+2 certs 1\n{END}\n"
    ));
    assert_eq!(v.data_ids, None);
    assert_eq!(v.data_ids_error.as_deref(), Some("no WAL segment"));
    assert_eq!(
        v.pki,
        Some(PkiSeen {
            label: "trust 1+2 certs 1".into(),
            fresh: true
        })
    );
}
