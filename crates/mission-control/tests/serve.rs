//! Mission Control over a real repository: pages answer from what Git says, hostile text from
//! a machine or a commit stays text, paging and search work, and with a token nothing
//! answers without it.

mod common;

use common::*;

#[test]
fn pages_show_what_git_says_and_hostile_text_stays_text() {
    let bare = orb_testsupport::bare_repo();
    commit(
        &bare.path,
        &[("orbiter.yml", ORB)],
        "Alice",
        "Two web machines",
    );
    commit(
        &bare.path,
        &[
            ("orbiter/current.yml", &current(250)),
            ("orbiter/nodes/loc.web-2/desired.yml", "items: []\n"),
        ],
        "Orbiter",
        "Current state changed <b>bold</b>",
    );
    let cache = tempfile::tempdir().unwrap();
    let addr = start(&bare.path, cache.path(), None);

    let (code, head, body) = get(&addr, "/", "");
    assert_eq!(code, 200, "{body}");
    assert!(
        head.contains("content-security-policy: default-src 'none'"),
        "{head}"
    );
    assert!(
        body.contains(">prod</a>") && body.contains("167 / 250"),
        "{body}"
    );
    assert!(body.contains("<span class=\"ok\">valid</span>"), "{body}");
    assert!(
        body.contains("&lt;img src=x onerror=alert(2)&gt;") && !body.contains("<img"),
        "{body}"
    );
    assert!(
        body.contains("Current state changed &lt;b&gt;bold&lt;/b&gt;"),
        "{body}"
    );

    let (code, _, body) = get(&addr, "/orbs/prod/machines", "");
    assert_eq!(code, 200);
    assert!(body.contains("&lt;script&gt;alert(1)&lt;/script&gt;") && !body.contains("<script"));
    let rows = |b: &str| b.matches("<tr><td><a href=\"/orbs/prod/machines/").count();
    assert!(body.contains("page 1 of 3") && rows(&body) == 100, "{body}");
    let (_, _, body3) = get(&addr, "/orbs/prod/machines?page=3", "");
    assert!(
        body3.contains("page 3 of 3") && rows(&body3) == 50,
        "{body3}"
    );
    assert!(body.contains("loc.web-1<") && !body3.contains("loc.web-1<"));
    let (_, _, body) = get(&addr, "/orbs/prod/machines?q=converging", "");
    assert!(
        body.contains("83 match") && !body.contains("loc.web-1<"),
        "{body}"
    );

    let (code, _, body) = get(&addr, "/orbs/prod/machines/loc.web-2", "");
    assert_eq!(code, 200);
    assert!(
        body.contains("<pre>items: []\n</pre>") && body.contains("not recorded yet"),
        "{body}"
    );

    let (_, _, body) = get(&addr, "/orbs/prod/history?by=people", "");
    assert!(
        body.contains("Two web machines") && !body.contains("Current state changed"),
        "{body}"
    );
    let id = bare.git(&["rev-parse", "main"]);
    let (code, _, body) = get(&addr, &format!("/orbs/prod/commits/{id}"), "");
    assert_eq!(code, 200);
    assert!(
        body.contains("orbiter/current.yml") && body.contains("+kind: OrbCurrent"),
        "{body}"
    );
    for bad in [
        "--output=x",
        "HEAD",
        "%C3%A9%C3%A9%C3%A9%C3%A9%C3%A9%C3%A9%C3%A9",
    ] {
        let (code, _, _) = get(&addr, &format!("/orbs/prod/commits/{bad}"), "");
        assert_eq!(code, 404, "{bad}");
    }
    assert_eq!(get(&addr, "/orbs/nope/machines", "").0, 404);

    // A new commit shows without a restart (the fetch is at most a few seconds old).
    commit(
        &bare.path,
        &[("orbiter.yml", "kind: Orb\nversion: v1\nproviders: [\n")],
        "Bob",
        "Broken",
    );
    std::thread::sleep(mission_control::source::FETCH_EVERY);
    let (_, _, body) = get(&addr, "/", "");
    assert!(body.contains("invalid: orbiter.yml:"), "{body}");
}

#[test]
fn with_a_token_nothing_answers_without_it() {
    let bare = orb_testsupport::bare_repo();
    commit(
        &bare.path,
        &[("orbiter.yml", ORB)],
        "Alice",
        "Two web machines",
    );
    let cache = tempfile::tempdir().unwrap();
    let token = "a-token-of-enough-length";
    let addr = start(&bare.path, cache.path(), Some(token));
    let (code, _, body) = get(&addr, "/", "");
    assert_eq!(code, 401);
    assert!(!body.contains(token));
    assert_eq!(
        get(
            &addr,
            "/orbs/prod/machines",
            "Authorization: Bearer wrong-token\r\n"
        )
        .0,
        401
    );
    assert_eq!(
        get(
            &addr,
            "/orbs/prod/machines",
            &format!("Authorization: Bearer {token}\r\n")
        )
        .0,
        200
    );
    let (code, head, _) = get(&addr, &format!("/login?token={token}"), "");
    assert_eq!(code, 303, "{head}");
    assert!(
        head.contains("httponly; samesite=strict")
            || head.to_lowercase().contains("httponly; samesite=strict"),
        "{head}"
    );
    assert_eq!(
        get(&addr, "/", &format!("Cookie: mc_token={token}\r\n")).0,
        200
    );
    assert_eq!(get(&addr, "/login?token=nope", "").0, 401);
}

const ETCD_RECORD: &str = r#"kind: EtcdClusterRecord
version: v2
cluster_id: 8f5e2a430b6cfff0
members:
- name: loc.etcd-1
  ip: "10.213.0.10"
  id: fd3b541190430c10
  state: member
  package: 3.4.23-4+b4
  tuning:
    heartbeatms: 100
    electiontimeoutms: 1000
    quotabytes: 2147483648
  initial_cluster: loc.etcd-1=https://10.213.0.10:2380
  initial_state: new
  version: "3.4.23"
  healthy: true
leader: loc.etcd-1
endpoints:
- https://10.213.0.10:2379
last_error:
  at: 1796284664
  step: "restart <b>loc.etcd-1</b>"
  message: "it did not come back"
"#;

const LB_RECORD: &str = "kind: LoadBalancerRecord
version: v1
provider: loc
vips:
- ip: 10.213.0.200
  pool: lb
  holder: lb-2
  transports:
  - name: kv
    frontendport: 2379
    seenby: lb-2
    backends:
    - machine: etcd-1
      status: DOWN
      check: 'L4CON: Connection refused'
";

#[test]
fn the_clusters_page_shows_members_leader_vips_and_backends() {
    let bare = orb_testsupport::bare_repo();
    commit(
        &bare.path,
        &[
            ("orbiter.yml", ORB),
            ("orbiter/clusters/kv/current.yml", ETCD_RECORD),
            ("orbiter/loadbalancers/loc.lb.yml", LB_RECORD),
        ],
        "Orbiter",
        "records",
    );
    let cache = tempfile::tempdir().unwrap();
    let addr = start(&bare.path, cache.path(), None);
    let (code, _, body) = get(&addr, "/orbs/prod/clusters", "");
    assert_eq!(code, 200, "{body}");
    for want in [
        "<h2>etcd kv</h2>",
        "<td>loc.etcd-1</td><td>member</td><td class=\"ok\">yes</td><td>3.4.23</td><td>leader</td>",
        "restart &lt;b&gt;loc.etcd-1&lt;/b&gt; failed: it did not come back",
        "<h2>Load balancer loc.lb</h2>",
        "VIP 10.213.0.200: held by lb-2",
        "<td>etcd-1</td><td class=\"bad\">DOWN</td><td>L4CON: Connection refused</td>",
    ] {
        assert!(body.contains(want), "{want} missing in {body}");
    }
}
