//! A load client for the day-two benchmark: a shell loop on a machine that is no member
//! (etcd-client and the cluster's client certificate installed there with [`client_items`])
//! writes numbered keys through all members' endpoints and logs every write with its outcome
//! and time; the checker reads the keys back and reports, per time window, the failed writes,
//! the longest time without an acknowledged write and the acknowledged writes that are lost.
//!
//! etcdctl per write (a process and a TLS handshake each) gives a write every few tens of
//! milliseconds here: the resolution of `max_unavailable_ms`.

use crate::tls::CertPem;
use node_protocol::{Directory, File, FileSecret, Item, SecretBytes};
use std::collections::BTreeSet;
use std::fmt;

/// Where the load client keeps its files on its machine.
pub const DIR: &str = "/var/lib/orb-etcd-load";
const PKI: &str = "/etc/orb-etcd-load";
pub const UNIT: &str = "orb-etcd-load.service";

/// Items for the load machine: etcd-client and the client certificate.
pub fn client_items(ca_cert: &str, client: &CertPem, package_version: &str) -> Vec<Item> {
    let key = SecretBytes::new(client.key.expose().as_bytes().to_vec());
    vec![
        Item::package("etcd-client", package_version),
        Item::Directory(Directory::new(PKI, "0700", "root", "root")),
        Item::File(File::text(format!("{PKI}/ca.crt"), ca_cert, "0644")),
        Item::File(File::text(
            format!("{PKI}/client.crt"),
            &client.cert,
            "0644",
        )),
        Item::File(File::secret(
            format!("{PKI}/client.key"),
            FileSecret::Value(key),
            "0600",
        )),
    ]
}

fn etcdctl(endpoints: &[String]) -> String {
    format!(
        "ETCDCTL_API=3 etcdctl --endpoints={} --cacert={PKI}/ca.crt --cert={PKI}/client.crt --key={PKI}/client.key --dial-timeout=1s --command-timeout=2s",
        endpoints.join(",")
    )
}

/// Starts the writer as a transient unit (so it outlives the command and stops cleanly).
/// Keys are `<prefix>/<seq>`; a previous run's log is replaced.
pub fn start_command(endpoints: &[String], prefix: &str) -> String {
    let e = etcdctl(endpoints);
    let script = format!(
        "i=0\nwhile [ ! -e {DIR}/stop ]; do\n  i=$((i+1))\n  k=$(printf '%s/%08d' {prefix} \"$i\")\n  \
if out=$({e} put \"$k\" \"$i\" 2>&1); then r=ok; why=; else r=fail; why=$(printf '%s\\n' \"$out\" | tail -n 1 | cut -c1-200); fi\n  \
echo \"$r $i $(date +%s%3N) $why\" >> {DIR}/log\ndone\n",
        prefix = crate::sh::quote(prefix),
    );
    format!(
        "set -eu\nsystemctl stop {UNIT} 2>/dev/null || true\nsystemctl reset-failed {UNIT} 2>/dev/null || true\n\
mkdir -p {DIR}\nrm -f {DIR}/stop {DIR}/log\ncat > {DIR}/writer.sh <<'ORB_EOF'\n{script}ORB_EOF\n\
systemd-run --quiet --unit={UNIT} --collect sh {DIR}/writer.sh\n\
n=0; while [ ! -s {DIR}/log ] && [ $n -lt 100 ]; do sleep 0.1; n=$((n+1)); done\n\
[ -s {DIR}/log ] || {{ echo 'the load writer wrote nothing within 10 s' >&2; exit 1; }}\n"
    )
}

/// Current time on the load machine in milliseconds (windows are cut on its clock).
pub const NOW_MS: &str = "date +%s%3N";

/// Stops the writer after its current write and prints its log.
pub fn stop_command() -> String {
    format!(
        "touch {DIR}/stop\nn=0; while systemctl is-active --quiet {UNIT} && [ $n -lt 50 ]; do sleep 0.1; n=$((n+1)); done\n\
systemctl stop {UNIT} 2>/dev/null || true\ncat {DIR}/log\n"
    )
}

/// Prints every key under the prefix (one per line).
pub fn read_back_command(endpoints: &[String], prefix: &str) -> String {
    format!(
        "{} get --prefix --keys-only {}/\n",
        etcdctl(endpoints),
        crate::sh::quote(prefix)
    )
}

/// The figures of one window.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LoadReport {
    pub writes: u64,
    pub acked: u64,
    pub failed_writes: u64,
    /// Longest time between two acknowledged writes (and from the window's edges).
    pub max_unavailable_ms: u64,
    pub lost_acked_writes: u64,
}

impl fmt::Display for LoadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "failed_writes={} max_unavailable_ms={} lost_acked_writes={}",
            self.failed_writes, self.max_unavailable_ms, self.lost_acked_writes
        )
    }
}

/// Log lines `ok|fail <seq> <ms> [why]` (a failure's last line of etcdctl output follows);
/// anything else (a line cut by a kill) is skipped.
fn entries(log: &str) -> Vec<(bool, u64, u64)> {
    log.lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            let ok = match it.next()? {
                "ok" => true,
                "fail" => false,
                _ => return None,
            };
            Some((ok, it.next()?.parse().ok()?, it.next()?.parse().ok()?))
        })
        .collect()
}

/// Figures for writes that ended within `[from_ms, to_ms]` (the whole log when `None`).
/// `keys` is [`read_back_command`]'s output, read after the writer stopped.
pub fn analyze(log: &str, keys: &str, prefix: &str, window: Option<(u64, u64)>) -> LoadReport {
    let present: BTreeSet<u64> = keys
        .lines()
        .filter_map(|k| {
            k.trim()
                .strip_prefix(prefix)?
                .strip_prefix('/')?
                .parse()
                .ok()
        })
        .collect();
    let all = entries(log);
    let (from, to) = window.unwrap_or_else(|| {
        (
            all.first().map(|e| e.2).unwrap_or(0),
            all.last().map(|e| e.2).unwrap_or(0),
        )
    });
    let mut r = LoadReport::default();
    let mut last_ok = from;
    for &(ok, seq, t) in all.iter().filter(|e| e.2 >= from && e.2 <= to) {
        r.writes += 1;
        if ok {
            r.acked += 1;
            r.max_unavailable_ms = r.max_unavailable_ms.max(t - last_ok.min(t));
            last_ok = t;
            if !present.contains(&seq) {
                r.lost_acked_writes += 1;
            }
        } else {
            r.failed_writes += 1;
        }
    }
    r.max_unavailable_ms = r.max_unavailable_ms.max(to.saturating_sub(last_ok));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_of_a_window() {
        let log =
            "ok 1 1000\nok 2 1040\nfail 3 3040\nfail 4 5040\nok 5 5100\nok 6 5140\ngarbage\nok 7";
        let keys = "load/00000001\nload/00000002\nload/00000005\nload/00000003\n";
        let r = analyze(log, keys, "load", None);
        assert_eq!(r.writes, 6);
        assert_eq!(r.acked, 4);
        assert_eq!(r.failed_writes, 2);
        assert_eq!(r.max_unavailable_ms, 4060);
        assert_eq!(
            r.lost_acked_writes, 1,
            "seq 6 was acknowledged but is missing"
        );
        assert_eq!(
            r.to_string(),
            "failed_writes=2 max_unavailable_ms=4060 lost_acked_writes=1"
        );
        let w = analyze(log, keys, "load", Some((5000, 6000)));
        assert_eq!((w.writes, w.failed_writes), (3, 1));
        // From the window's start to the first ack, and from the last ack to its end.
        assert_eq!(w.max_unavailable_ms, 860);
    }

    #[test]
    fn no_acks_means_the_whole_window_was_unavailable() {
        let r = analyze("fail 1 100\nfail 2 300\n", "", "load", Some((0, 1000)));
        assert_eq!(r.max_unavailable_ms, 1000);
        assert_eq!(r.failed_writes, 2);
    }

    #[test]
    fn the_writer_is_valid_sh_and_its_failures_parse() {
        let c = start_command(&["https://10.0.0.1:2379".into()], "load");
        let script = c
            .split("<<'ORB_EOF'\n")
            .nth(1)
            .unwrap()
            .split("ORB_EOF")
            .next()
            .unwrap();
        assert!(script.contains("| tail -n 1 | cut -c1-200)"), "{script}");
        for s in [&c, script] {
            let out = std::process::Command::new("sh")
                .args(["-n", "-c", s])
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let r = analyze(
            "ok 1 100\nfail 2 200 Error: context deadline exceeded\nok 3 300\n",
            "load/00000001\nload/00000003\n",
            "load",
            None,
        );
        assert_eq!((r.acked, r.failed_writes, r.lost_acked_writes), (2, 1, 0));
    }

    #[test]
    fn client_items_are_valid_and_keep_the_key_private() {
        let ca = crate::tls::generate_ca("kv", "orb-etcd kv CA").unwrap();
        let c = crate::tls::client_cert(&ca, "load").unwrap();
        let items = client_items(&ca.pem.cert, &c, "3.4.23-4+b4");
        let doc = node_protocol::NodeDesired::new(1, items.clone()).render_for_machine();
        node_protocol::parse_desired(&doc, "desired.yml").unwrap();
        assert!(matches!(&items[4], Item::File(f) if f.mode == "0600" && f.is_secret()));
    }
}
