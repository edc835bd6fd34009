//! The observation parser on real-shaped output, on broken output, and on random bytes.

use super::*;
use proptest::prelude::*;

const COLUMNS: &str = "pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,status,weight,act,bck,chkfail,chkdown,lastchg,downtime,qlimit,pid,iid,sid,throttle,lbtot,tracked,type,rate,rate_lim,rate_max,check_status,check_code,check_duration,hrsp_1xx,last_chk,check_desc";

/// A CSV row with these columns set, the rest empty (as HAProxy leaves what does not apply).
fn row(values: &[(&str, &str)]) -> String {
    COLUMNS
        .split(',')
        .map(|c| {
            values
                .iter()
                .find(|(k, _)| *k == c)
                .map_or(String::new(), |(_, v)| (*v).to_owned())
        })
        .collect::<Vec<_>>()
        .join(",")
}

pub(crate) fn sample(addresses: &[&str], servers: &[(&str, &str, &str, &str, &str)]) -> String {
    let mut s = format!("{HEADER}\n{ADDRESSES}\n");
    for a in addresses {
        s += &format!(
            "2: host0    inet {a} brd 10.0.0.255 scope global host0\\       valid_lft forever preferred_lft forever\n"
        );
    }
    s += &format!("{STATS}\nHTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\n# {COLUMNS}\n");
    s += &row(&[
        ("pxname", "orb-stats"),
        ("svname", "FRONTEND"),
        ("status", "OPEN"),
    ]);
    s += "\n";
    for (px, sv, status, check, code) in servers {
        s += &row(&[
            ("pxname", px),
            ("svname", sv),
            ("status", status),
            ("check_status", check),
            ("check_code", code),
        ]);
        s += "\n";
    }
    s += &row(&[
        ("pxname", "be-web"),
        ("svname", "BACKEND"),
        ("status", "UP"),
    ]);
    s += &format!("\n\n{END}\n");
    s
}

#[test]
fn reads_addresses_and_servers() {
    let text = sample(
        &["10.0.0.11/24", "10.0.0.100/32"],
        &[
            ("be-web", "w-1", "UP", "L7OK", "200"),
            ("be-web", "w-2", "DOWN", "* L4CON", ""),
            ("be-kv", "w-1", "UP 1/2", "L4TOUT", ""),
            ("be-kv", "w-2", "MAINT", "", ""),
            ("be-kv", "w-3", "no check", "", ""),
            ("be-kv", "w-4", "DRAIN", "L4OK", ""),
            ("fe-web", "w-9", "UP", "", ""),
        ],
    );
    let o = parse_observation(&text).unwrap();
    assert_eq!(
        o.addresses,
        [Ipv4Addr::new(10, 0, 0, 11), Ipv4Addr::new(10, 0, 0, 100)]
    );
    assert!(o.holds(Ipv4Addr::new(10, 0, 0, 100)));
    let servers = o.servers.as_ref().unwrap();
    assert_eq!(servers.len(), 6, "{servers:?}");
    let s = |t: &str, m: &str| o.server(t, m).unwrap();
    assert_eq!(
        (&s("web", "w-1").status, s("web", "w-1").check.as_str()),
        (&ServerStatus::Up, "L7OK 200")
    );
    assert_eq!(
        (&s("web", "w-2").status, s("web", "w-2").check.as_str()),
        (&ServerStatus::Down, "L4CON")
    );
    assert_eq!(s("kv", "w-1").status, ServerStatus::Up);
    assert_eq!(s("kv", "w-2").status, ServerStatus::Maint);
    assert_eq!(s("kv", "w-3").status.as_str(), "no check");
    assert_eq!(s("kv", "w-4").status, ServerStatus::Other("DRAIN".into()));
}

#[test]
fn quoted_fields_and_check_text() {
    let mut text = sample(&["10.0.0.12/24"], &[]);
    let line = row(&[
        ("pxname", "be-web"),
        ("svname", "w-1"),
        ("status", "DOWN"),
        ("check_status", "L7STS"),
        ("check_code", "503"),
        ("last_chk", "\"Service, \"\"Unavailable\"\"\""),
    ]);
    text = text.replace(&format!("\n{END}"), &format!("{line}\n\n{END}"));
    let o = parse_observation(&text).unwrap();
    let w = o.server("web", "w-1").unwrap();
    assert_eq!(w.check, "L7STS 503: Service, \"Unavailable\"");
    assert!(!o.holds(Ipv4Addr::new(10, 0, 0, 100)));
}

#[test]
fn haproxy_down_means_no_servers() {
    let text = format!(
        "{HEADER}\n{ADDRESSES}\n2: host0 inet 10.0.0.11/24 scope global host0\n{STATS}\n\n{END}\n"
    );
    let o = parse_observation(&text).unwrap();
    assert_eq!(o.addresses.len(), 1);
    assert_eq!(o.servers, None);
    let refused = text.replace(
        &format!("{STATS}\n"),
        &format!("{STATS}\nHTTP/1.1 503 Service Unavailable\r\n\r\n# pxname,svname,status\n"),
    );
    assert_eq!(parse_observation(&refused).unwrap().servers, None);
    let no_header = text.replace(
        &format!("{STATS}\n"),
        &format!("{STATS}\nHTTP/1.1 200 OK\r\n\r\nbe-web,w-1,UP\n"),
    );
    assert_eq!(parse_observation(&no_header).unwrap().servers, None);
}

#[test]
fn other_output_is_an_error() {
    assert!(parse_observation("").is_err());
    assert!(parse_observation("bash: ip: command not found\n").is_err());
    assert!(
        parse_observation(&format!("\n\n{HEADER}\n"))
            .unwrap()
            .addresses
            .is_empty()
    );
}

#[test]
fn sizes_are_bounded() {
    let many: Vec<String> = (0..2000)
        .map(|i| format!("10.{}.{}.1/32", i / 256, i % 256))
        .collect();
    let refs: Vec<&str> = many.iter().map(String::as_str).collect();
    let long = "x".repeat(10_000);
    let o = parse_observation(&sample(&refs, &[("be-web", &long, "UP", &long, "")])).unwrap();
    assert_eq!(o.addresses.len(), MAX_ADDRESSES);
    let s = &o.servers.unwrap()[0];
    assert!(s.server.chars().count() <= MAX_FIELD && s.check.chars().count() <= MAX_FIELD);
    let huge = format!("{HEADER}\n{}", "a".repeat(MAX_INPUT * 2));
    assert!(parse_observation(&huge).is_ok());
}

#[test]
fn the_command_is_bounded_sh_that_always_succeeds() {
    let c = observe_command();
    assert!(c.contains("ip -o -4 addr show 2>/dev/null"));
    assert!(c.contains("timeout 3 bash -c"));
    assert!(c.contains("/dev/tcp/127.0.0.1/29998") && c.contains("GET /stats;csv"));
    assert!(c.contains("| head -c ") && c.contains("| head -n 256"));
    assert!(c.trim_end().ends_with("exit 0"));
}

proptest! {
    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
        let text = String::from_utf8_lossy(&bytes);
        let _ = parse_observation(&text);
        let _ = parse_observation(&format!("{HEADER}\n{ADDRESSES}\n{text}"));
        let _ = parse_observation(&format!("{HEADER}\n{STATS}\nHTTP/1.1 200 OK\r\n\r\n# {COLUMNS}\n{text}"));
    }

    #[test]
    fn mangled_samples_never_panic(cut in 0usize..12000, insert in ".{0,40}", real in any::<bool>()) {
        let good = if real {
            REAL.to_owned()
        } else {
            sample(&["10.0.0.11/24", "10.0.0.100/32"], &[("be-web", "w-1", "UP", "L7OK", "200")])
        };
        let mut at = cut.min(good.len());
        while !good.is_char_boundary(at) {
            at -= 1;
        }
        let text = format!("{}{insert}{}", &good[..at], &good[at..]);
        if let Ok(o) = parse_observation(&text) {
            prop_assert!(o.addresses.len() <= MAX_ADDRESSES);
        }
        let _ = parse_observation(&good[..at]);
    }
}

/// Captured from HAProxy 2.6 (Debian bookworm) running the rendered configuration in a network
/// namespace, with only some backends reachable: a chunked HTTP answer.
const REAL: &str = include_str!("haproxy-2.6.txt");

#[test]
fn reads_real_haproxy_output() {
    let o = parse_observation(REAL).unwrap();
    assert_eq!(
        o.addresses,
        [Ipv4Addr::new(10, 0, 0, 11), Ipv4Addr::new(10, 0, 0, 100)]
    );
    let seen: Vec<String> = o
        .servers
        .as_ref()
        .unwrap()
        .iter()
        .map(|s| {
            format!(
                "{} {} {} {}",
                s.transport,
                s.server,
                s.status.as_str(),
                s.check
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            "web w-1 DOWN L4CON: Connection refused",
            "web w-2 DOWN L4TOUT",
            "kv lb-1 DOWN L4CON: Connection refused",
            "kv lb-2 DOWN L4TOUT",
            "kv w-1 UP L4OK",
            "kv w-2 DOWN L4CON",
            "api w-1 UP L7OK 200",
            "api w-2 DOWN L4CON",
        ]
    );
    let unchunked = REAL.replacen("transfer-encoding: chunked", "x-was: chunked", 1);
    assert!(
        parse_observation(&unchunked).unwrap().servers.is_some(),
        "read as plain body"
    );
}

#[test]
fn each_address_has_its_interface_and_odd_names_are_left_out() {
    let text = format!(
        "{HEADER}\n{ADDRESSES}\n1: lo    inet 127.0.0.1/8 scope host lo\n2: ens4@if12    inet 10.0.0.11/24 scope global ens4\n2: ens4    inet 10.0.0.100/32 scope global ens4\n3: $(reboot)    inet 10.0.0.77/24 scope global x\n{STATS}\n\n{END}\n"
    );
    let o = parse_observation(&text).unwrap();
    assert_eq!(o.interface_of(Ipv4Addr::new(10, 0, 0, 11)), Some("ens4"));
    assert_eq!(o.interface_of(Ipv4Addr::new(127, 0, 0, 1)), Some("lo"));
    assert_eq!(o.interface_of(Ipv4Addr::new(10, 0, 0, 77)), None);
    assert!(o.holds(Ipv4Addr::new(10, 0, 0, 100)) && o.holds(Ipv4Addr::new(10, 0, 0, 77)));
    assert_eq!(o.interface_of(Ipv4Addr::new(10, 0, 0, 12)), None);
}
