//! The load client on the sixth machine: started against the voters, marked around each
//! operation, then stopped and checked for lost acknowledged writes, overall and per window.

use crate::helpers::{sh_ok, wait_agent, write_desired};
use crate::lab::{Lab, OLD};
use orb_etcd::load::{self, LoadReport};
use orb_etcd::tls::CertPem;
use orb_machines::Machine;
use std::net::IpAddr;
use std::time::Duration;

/// Installs the load client on `ld` and starts it; returns the client URLs of e1..e5.
pub(crate) fn start(ld: &Machine, ms: &[Machine], lab: &Lab) -> Vec<String> {
    write_desired(
        ld,
        1,
        load::client_items(&lab.secrets.ca.pem.cert, &lab.secrets.client, OLD),
    );
    wait_agent(ld, 1, Duration::from_secs(120));
    let endpoints: Vec<String> = ms[..5]
        .iter()
        .map(|m| orb_etcd::items::client_url(IpAddr::V4(m.ip())))
        .collect();
    // The voters' endpoints, as the record gives them to clients (a learner refuses requests).
    sh_ok(ld, &load::start_command(&endpoints[..3], "load"));
    endpoints
}

/// Gives the load client other trust and another client certificate (what a client does
/// during a rotation); the writer reads its files at every write.
pub(crate) fn set_pki(ld: &Machine, lab: &mut Lab, ca: &str, client: &CertPem) {
    lab.generation += 1;
    write_desired(ld, lab.generation, load::client_items(ca, client, OLD));
    wait_agent(ld, lab.generation, Duration::from_secs(60));
}

/// The load machine's clock in milliseconds, the bounds of a window.
pub(crate) fn mark(ld: &Machine) -> u64 {
    sh_ok(ld, load::NOW_MS).trim().parse().unwrap()
}

/// Stops the client and checks that no acknowledged write was lost, overall and in each of
/// `windows`; returns the client's log and the overall report.
pub(crate) fn check(
    ld: &Machine,
    endpoints: &[String],
    windows: &[(&str, u64, u64)],
) -> (String, LoadReport) {
    let log_text = sh_ok(ld, &load::stop_command());
    // Read back through the members that stayed (e5 was removed).
    let keys = sh_ok(ld, &load::read_back_command(&endpoints[..4], "load"));
    let all = load::analyze(&log_text, &keys, "load", None);
    assert!(all.acked > 20, "the load client barely wrote: {all:?}");
    assert_eq!(all.lost_acked_writes, 0, "{all:?}");
    for (op, from, to) in windows {
        let r = load::analyze(&log_text, &keys, "load", Some((*from, *to)));
        eprintln!(
            "op={op} duration_s={:.1} {r} acked={}",
            (to - from) as f64 / 1000.0,
            r.acked
        );
        assert_eq!(r.lost_acked_writes, 0, "{op}: {r:?}");
        if r.failed_writes > 0 {
            let fails: Vec<&str> = log_text
                .lines()
                .filter(|l| l.starts_with("fail "))
                .filter(|l| {
                    l.split_whitespace()
                        .nth(2)
                        .and_then(|t| t.parse::<u64>().ok())
                        .is_some_and(|t| (*from..*to).contains(&t))
                })
                .collect();
            eprintln!("  {op}: failed writes at (seq ms): {fails:?}");
        }
    }
    (log_text, all)
}
