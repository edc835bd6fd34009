//! The node-desired document as the agent reads it: every item kind, and errors that name
//! file, line, column, item and field without quoting content.

use node_protocol::net::{PortRange, SourceNet};
use node_protocol::*;

const FULL: &str = r#"kind: NodeDesired
version: v1
generation: 7
changesallowed: true
items:
  - aptsource: {name: local, content: "deb [trusted=yes] http://10.0.0.1/ ./\n"}
  - package: {name: etcd-server, version: 3.4.23-4}
  - package: {name: jq, version: "1.6-2.1", held: false}
  - directory: {path: /etc/etcd, mode: "0750", owner: root, group: root}
  - file:
      path: /etc/etcd/etcd.conf
      content: |
        ETCD_NAME=n1
      mode: "0640"
  - unit:
      name: etcd.service
      dropins: {10-limits.conf: "[Service]\nLimitNOFILE=65536\n"}
      enabled: true
      active: true
      restart_on: [/etc/etcd/etcd.conf]
  - sysctl: {key: net.ipv4.ip_forward, value: 1}
  - kernelmodule: {name: br_netfilter}
  - swap: {enabled: false}
  - hostname: {name: node-1}
  - sshd: {settings: {PasswordAuthentication: "no"}}
  - firewall:
      allow:
        - {protocol: tcp, ports: [22]}
        - {protocol: tcp, ports: ["2379-2380"], sources: [10.0.0.0/24, "fd00::/8"]}
        - {protocol: vrrp, sources: [10.0.0.12]}
  - reboot: {requested_at: "2026-01-31T12:00:00Z"}
  - health: {name: etcd, http: "http://127.0.0.1:2379/health", timeout: 5s}
  - osupdates: {updates: security, requested_at: "2026-12-02T03:00:00Z"}
"#;

#[test]
fn parses_every_item_kind() {
    let d = parse_desired(FULL, "desired.yml").unwrap();
    assert_eq!(
        (d.generation, d.changes_allowed, d.items.len()),
        (7, true, 15)
    );
    let ids: Vec<String> = d.items.iter().map(Item::id).collect();
    assert_eq!(ids[1], "package:etcd-server");
    assert_eq!(ids[4], "file:/etc/etcd/etcd.conf");
    assert!(matches!(&d.items[1], Item::Package(p) if p.held && p.version == "3.4.23-4"));
    assert!(matches!(&d.items[2], Item::Package(p) if !p.held));
    assert!(matches!(&d.items[6], Item::Sysctl(s) if s.value == "1"));
    assert!(
        matches!(&d.items[4], Item::File(f) if f.content.as_ref().unwrap().0 == "ETCD_NAME=n1\n" && f.owner == "root")
    );
}

fn err(yaml_items: &str) -> String {
    let doc = format!(
        "kind: NodeDesired\nversion: v1\ngeneration: 1\nchangesallowed: true\nitems:\n{yaml_items}"
    );
    parse_desired(&doc, "d.yml").unwrap_err().to_string()
}

#[test]
fn unknown_fields_and_kinds_report_line_and_column() {
    let e = err("  - file: {path: /a, content: x, colour: red}\n");
    assert!(e.starts_with("d.yml:6:34: unknown field `colour`"), "{e}");
    assert!(e.contains("unknown field `colour`"), "{e}");
    let e = err("  - pkg: {name: a}\n");
    assert!(e.starts_with("d.yml:6:5: unknown variant `pkg`"), "{e}");
}

#[test]
fn errors_never_quote_file_content() {
    let e = err("  - file:\n      path: /a\n      content: TOPSECRET\n      mode: [1]\n");
    assert!(!e.contains("TOPSECRET"), "{e}");
    let e = err("  - file: {path: relative, content: TOPSECRET}\n");
    assert!(
        e.contains("d.yml:6:") && e.contains("absolute path") && !e.contains("TOPSECRET"),
        "{e}"
    );
}

#[test]
fn semantic_errors_name_item_and_field() {
    for (items, want) in [
        (
            "  - file: {path: /a, content: x, mode: \"0999\"}\n",
            "mode: `0999` is not an octal mode",
        ),
        ("  - unit: {name: foo}\n", "unit type suffix"),
        (
            "  - unit: {name: a.service, dropins: {x: y}}\n",
            "ending in .conf",
        ),
        ("  - swap: {enabled: true}\n", "only `false`"),
        ("  - hostname: {name: Bad_Name}\n", "not a valid host name"),
        (
            "  - firewall: {allow: [{protocol: tcp, ports: [80]}]}\n",
            "no rule allows tcp port 22",
        ),
        (
            "  - firewall: {allow: [{protocol: tcp, ports: [22, 70000]}]}\n",
            "`70000` is not a port",
        ),
        (
            "  - firewall: {allow: [{protocol: tcp, ports: [22], sources: [10.0.0.0/33]}]}\n",
            "not an IP address",
        ),
        (
            "  - firewall: {allow: [{protocol: icmp, ports: [22]}]}\n",
            "unknown variant `icmp`",
        ),
        (
            "  - firewall: {allow: [{protocol: tcp, ports: [22]}, {protocol: vrrp, ports: [112]}]}\n",
            "vrrp has no ports",
        ),
        (
            "  - firewall: {allow: [{protocol: tcp, ports: [22]}, {protocol: udp}]}\n",
            "allow[1].ports: is empty",
        ),
        ("  - reboot: {requested_at: tomorrow}\n", "RFC 3339"),
        (
            "  - sysctl: {key: ../../etc/x, value: 1}\n",
            "is not a sysctl key",
        ),
        ("  - sshd: {settings: {Match: all}}\n", "flat drop-in"),
        (
            "  - hostname: {name: a}\n  - hostname: {name: b}\n",
            "d.yml:7:5: items[1] (hostname): declared twice",
        ),
        (
            "  - file: {path: /etc/sysctl.d/90-node-agent.conf, content: x}\n",
            "`sysctl` items",
        ),
        (
            "  - unit: {name: a.service, content: x}\n  - file: {path: /etc/systemd/system/a.service, content: x}\n",
            "also written by a `unit`",
        ),
    ] {
        let e = err(items);
        assert!(e.contains(want), "for {items:?}: got {e}");
    }
}

#[test]
fn wrong_kind_version_and_syntax() {
    assert!(
        parse_desired("kind: NodeCurrent\nversion: v1\n", "f")
            .unwrap_err()
            .message()
            .contains("expected `NodeDesired`")
    );
    assert!(
        parse_desired("kind: NodeDesired\nversion: v9\n", "f")
            .unwrap_err()
            .message()
            .contains("supported: v1")
    );
    assert!(
        parse_desired("kind: NodeDesired\nversion: v1\ngeneration: 1\n", "f")
            .unwrap_err()
            .message()
            .contains("changesallowed")
    );
    let e = parse_desired("kind: NodeDesired\nversion: v1\nitems: [\n", "f").unwrap_err();
    assert_eq!(e.message(), "f:3:8: unclosed bracket '['");
}

#[test]
fn content_debug_hides_text() {
    assert_eq!(format!("{:?}", Content("secret".into())), "<6 bytes>");
}

#[test]
fn modes_ports_sources() {
    assert_eq!(parse_mode("0644").unwrap(), 0o644);
    assert_eq!(parse_mode("0o2755").unwrap(), 0o2755);
    assert!(parse_mode("").is_err() && parse_mode("8").is_err() && parse_mode("17777").is_err());
    assert_eq!(
        PortRange::parse("30000-32767").unwrap(),
        PortRange(30000, 32767)
    );
    assert!(PortRange::parse("0").is_err() && PortRange::parse("5-4").is_err());
    assert_eq!(
        SourceNet::parse("fd00::/8").unwrap().to_string(),
        "fd00::/8"
    );
    assert!(SourceNet::parse("10.0.0.1").unwrap().is_v4());
}

fn doc_with(item: &str) -> String {
    format!(
        "kind: NodeDesired\nversion: v1\ngeneration: 1\nchangesallowed: true\nitems:\n  - {item}\n"
    )
}

#[test]
fn secret_files_take_the_form_of_their_document() {
    // "s3cr3t" in base64.
    let machine =
        doc_with("file: {path: /etc/app/token, secret: {base64: czNjcjN0}, mode: \"0600\"}");
    let d = NodeDesired::parse(&machine, "m.yml", Form::Machine).unwrap();
    let Item::File(f) = &d.items[0] else { panic!() };
    assert_eq!(f.bytes(), Some(&b"s3cr3t"[..]));
    assert!(
        format!("{d:?}").find("s3cr3t").is_none(),
        "Debug hides the value"
    );
    // A record holds a digest; it renders, and the value never appears in it.
    let record = d.redacted(&|b: &[u8]| format!("hmac-sha256:{}", b.len()));
    let text = record.render().unwrap();
    assert!(
        text.contains("digest: hmac-sha256:6") && !text.contains("czNjcjN0"),
        "{text}"
    );
    assert_eq!(
        NodeDesired::parse(&text, "r.yml", Form::Record).unwrap(),
        record
    );
    // The machine form carries the value; rendering it any other way fails.
    assert!(d.render().is_err());
    assert_eq!(
        NodeDesired::parse(&d.render_for_machine(), "m.yml", Form::Machine).unwrap(),
        d
    );
    // Each form refuses the others.
    for (doc, form, want) in [
        (
            machine.clone(),
            Form::Record,
            "does not belong in a node-desired record",
        ),
        (text.clone(), Form::Machine, "Orbiter resolves secrets"),
        (
            doc_with("file: {path: /a, secret: apitoken}"),
            Form::Machine,
            "a secret name",
        ),
        (
            doc_with("file: {path: /a, secret: {base64: eA==}}"),
            Form::Spec,
            "orbctl writesecret",
        ),
        (
            doc_with("file: {path: /a, content: x, secret: apitoken}"),
            Form::Spec,
            "give one of them",
        ),
        (
            doc_with("file: {path: /a}"),
            Form::Spec,
            "missing `content` or `secret`",
        ),
        (
            doc_with("file: {path: /a, secret: Bad_Name}"),
            Form::Spec,
            "`Bad_Name` contains",
        ),
    ] {
        let e = NodeDesired::parse(&doc, "d.yml", form)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(want) && e.starts_with("d.yml:") && e.contains(": items[0] (file:/"),
            "{form:?}: {e}"
        );
    }
}

#[test]
fn typed_items_render_without_defaults_and_round_trip() {
    let d = NodeDesired::new(
        3,
        vec![
            Item::package("etcd-server", "3.4.23-4"),
            Item::File(File::text("/etc/x", "a\n", "0644")),
            Item::Directory(Directory::new("/etc/d", "0750", "root", "etcd")),
        ],
    );
    let text = d.render().unwrap();
    assert!(
        !text.contains("held") && !text.contains("owner: root"),
        "{text}"
    );
    assert_eq!(parse_desired(&text, "d.yml").unwrap(), d);
}

#[test]
fn allow_unsafe_parents_is_optional_and_round_trips() {
    let d = parse_desired(
        &doc_with(
            "directory: {path: /srv/app/data, owner: app, allow_unsafe_parents: true}\n  - file: {path: /srv/app/app.conf, content: x, allow_unsafe_parents: true}\n  - file: {path: /etc/app.conf, content: x}",
        ),
        "d.yml",
    )
    .unwrap();
    assert!(matches!(&d.items[0], Item::Directory(x) if x.allow_unsafe_parents));
    assert!(matches!(&d.items[1], Item::File(x) if x.allow_unsafe_parents));
    assert!(matches!(&d.items[2], Item::File(x) if !x.allow_unsafe_parents));
    let text = d.render().unwrap();
    assert_eq!(
        text.matches("allow_unsafe_parents: true").count(),
        2,
        "{text}"
    );
    assert!(!text.contains("allow_unsafe_parents: false"), "{text}");
    assert_eq!(parse_desired(&text, "d.yml").unwrap(), d);
    let e = parse_desired(
        &doc_with("file: {path: /a, content: x, allow_unsafe_parents: maybe}"),
        "d.yml",
    )
    .unwrap_err()
    .to_string();
    assert!(e.starts_with("d.yml:6:") && e.contains("boolean"), "{e}");
}

#[test]
fn health_and_osupdates_items_parse_and_round_trip() {
    let d = parse_desired(
        &doc_with(
            "health: {name: web, http: \"http://127.0.0.1:8080/healthz\", expect: 200, timeout: 5s}\n  - health: {name: db, tcp: \"127.0.0.1:5432\"}\n  - health: {name: pg, command: \"pg_isready -q\", timeout: 500ms}\n  - health: {name: v6, tcp: \"[::1]:80\"}\n  - osupdates: {updates: security, requested_at: \"2026-12-02T03:00:00Z\"}",
        ),
        "d.yml",
    )
    .unwrap();
    let ids: Vec<String> = d.items.iter().map(Item::id).collect();
    assert_eq!(
        ids,
        [
            "health:web",
            "health:db",
            "health:pg",
            "health:v6",
            "osupdates"
        ]
    );
    let Item::Health(web) = &d.items[0] else {
        panic!()
    };
    assert_eq!(
        web.check().unwrap(),
        HealthCheck::Http {
            url: HttpUrl {
                host: HostPort {
                    host: "127.0.0.1".into(),
                    port: 8080
                },
                path: "/healthz".into()
            },
            expect: 200
        }
    );
    assert_eq!(web.timeout().unwrap(), std::time::Duration::from_secs(5));
    let Item::Health(pg) = &d.items[2] else {
        panic!()
    };
    assert_eq!(pg.check().unwrap(), HealthCheck::Command("pg_isready -q"));
    assert_eq!(pg.timeout().unwrap(), std::time::Duration::from_millis(500));
    let Item::Health(v6) = &d.items[3] else {
        panic!()
    };
    assert!(
        matches!(v6.check().unwrap(), HealthCheck::Tcp(hp) if hp.host == "::1" && hp.to_string() == "[::1]:80")
    );
    assert!(matches!(&d.items[4], Item::Osupdates(u) if u.updates == UpdateSet::Security));
    let text = d.render().unwrap();
    assert!(
        !text.contains("expect: null") && !text.contains("timeout: null"),
        "{text}"
    );
    assert_eq!(parse_desired(&text, "d.yml").unwrap(), d);
}

#[test]
fn http_urls_and_host_ports() {
    let u = HttpUrl::parse("http://localhost").unwrap();
    assert_eq!(
        (u.host.host.as_str(), u.host.port, u.path.as_str()),
        ("localhost", 80, "/")
    );
    let u = HttpUrl::parse("HTTP://[::1]:9000?ready=1").unwrap();
    assert_eq!(
        (u.host.host.as_str(), u.host.port, u.path.as_str()),
        ("::1", 9000, "/?ready=1")
    );
    for (bad, want) in [
        ("https://x/healthz", "command: curl"),
        ("ftp://x/", "not an http:// URL"),
        ("http://user:pw@x/", "user info"),
        ("http://x/a b", "may not contain"),
        ("http://x/#top", "fragment"),
        ("http://x:0/", "not a port"),
        ("http://x:99999/", "not a port"),
        ("http:///path", "not a host name"),
        ("http://::1/", "in brackets"),
        ("http://[zz]/", "not an IPv6 address"),
    ] {
        let e = HttpUrl::parse(bad).unwrap_err();
        assert!(e.contains(want), "{bad}: {e}");
    }
    assert!(
        HostPort::parse("db", None)
            .unwrap_err()
            .contains("has no port")
    );
    assert!(HostPort::parse("-x:1", None).is_err());
}

#[test]
fn health_and_osupdates_errors_name_the_field() {
    for (items, want) in [
        (
            "  - health: {name: web}\n",
            "give one of `http`, `tcp` or `command`",
        ),
        (
            "  - health: {name: web, tcp: \"a:1\", command: \"true\"}\n",
            "give only one of",
        ),
        (
            "  - health: {name: web, http: \"https://x/\"}\n",
            "http: `https://x/`: https is not supported",
        ),
        (
            "  - health: {name: web, tcp: \"a:1\", expect: 200}\n",
            "expect: only with `http`",
        ),
        (
            "  - health: {name: web, http: \"http://a/\", expect: 42}\n",
            "expect: 42 is not an HTTP status",
        ),
        (
            "  - health: {name: web, tcp: \"a:1\", timeout: 61s}\n",
            "timeout: `61s` must be more than zero and at most 60s",
        ),
        (
            "  - health: {name: web, tcp: \"a:1\", timeout: 5}\n",
            "timeout: `5` is not a duration; hint: e.g. 5s",
        ),
        (
            "  - health: {name: web, tcp: \"a:1\", timeout: 0s}\n",
            "more than zero",
        ),
        (
            "  - health: {name: Web, tcp: \"a:1\"}\n",
            "name: `Web` contains `W`",
        ),
        ("  - health: {name: -x, tcp: \"a:1\"}\n", "starts with `-`"),
        (
            "  - health: {name: web, command: \"  \"}\n",
            "command: must be a non-empty",
        ),
        (
            "  - health: {name: web, tcp: \"a\"}\n",
            "tcp: `a` has no port",
        ),
        (
            "  - health: {name: web, tcp: \"a:1\", interval: 3s}\n",
            "unknown field `interval`",
        ),
        (
            "  - health: {name: a, tcp: \"a:1\"}\n  - health: {name: a, command: \"true\"}\n",
            "items[1] (health:a): declared twice",
        ),
        (
            "  - osupdates: {updates: some, requested_at: \"2026-12-02T03:00:00Z\"}\n",
            "unknown variant `some`",
        ),
        (
            "  - osupdates: {updates: all, requested_at: soon}\n",
            "requested_at: `soon` is not an RFC 3339 timestamp",
        ),
        (
            "  - osupdates: {updates: all}\n",
            "missing field `requested_at`",
        ),
    ] {
        let e = err(items);
        assert!(
            e.contains(want) && e.starts_with("d.yml:"),
            "for {items:?}: got {e}"
        );
    }
}
