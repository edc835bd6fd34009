//! Clients holding a given certificate, on a given machine: etcdctl against the member on
//! that machine, and curl against another member's peer port (etcd checks a peer
//! certificate's addresses against the connection's, so a peer certificate is tried from the
//! machine it was issued to).

use crate::helpers::{put, sh, sh_ok};
use orb_etcd::items::{CLIENT_PORT, PEER_PORT};
use orb_etcd::tls::CertPem;
use orb_machines::Machine;
use std::sync::atomic::{AtomicU32, Ordering};

static N: AtomicU32 = AtomicU32::new(0);

/// Puts `ca`, `cert` and its key into a fresh directory on `m`; returns the directory.
fn put_pki(m: &Machine, ca: &str, cert: &CertPem) -> String {
    let dir = format!("/root/probe-{}", N.fetch_add(1, Ordering::Relaxed));
    put(m, &format!("{dir}/ca.crt"), ca.as_bytes());
    put(m, &format!("{dir}/c.crt"), cert.cert.as_bytes());
    put(m, &format!("{dir}/c.key"), cert.key.expose().as_bytes());
    dir
}

/// etcdctl `args` on `m` against its own member, as the user `cert` names.
pub(crate) fn etcdctl_as(m: &Machine, ca: &str, cert: &CertPem, args: &str) -> (bool, String) {
    let d = put_pki(m, ca, cert);
    sh(
        m,
        &format!(
            "ETCDCTL_API=3 etcdctl --endpoints=https://127.0.0.1:{CLIENT_PORT} --cacert={d}/ca.crt --cert={d}/c.crt --key={d}/c.key --dial-timeout=2s --command-timeout=3s {args}"
        ),
    )
}

/// Installs curl on `m` (from the group's apt repository).
pub(crate) fn curl(m: &Machine) {
    sh_ok(
        m,
        "command -v curl >/dev/null || { export DEBIAN_FRONTEND=noninteractive; apt-get install -y -q curl >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q curl >/dev/null; }; }",
    );
}

/// From `from`, with `cert`, to `to`'s peer port: whether the member let it in (its peer
/// handler answers `/version`), and what curl said.
pub(crate) fn peer_probe(from: &Machine, to: &Machine, ca: &str, cert: &CertPem) -> (bool, String) {
    let d = put_pki(from, ca, cert);
    let (ok, out) = sh(
        from,
        &format!(
            "curl -sS --http1.1 --max-time 5 --cacert {d}/ca.crt --cert {d}/c.crt --key {d}/c.key https://{}:{PEER_PORT}/version",
            to.ip()
        ),
    );
    (ok && out.contains("etcdserver"), out.trim().to_owned())
}

/// The PID of the member's etcd on `m` (a restart changes it).
pub(crate) fn etcd_pid(m: &Machine) -> String {
    sh_ok(
        m,
        &format!(
            "systemctl show -p MainPID --value {}",
            orb_etcd::items::paths::unit(crate::lab::CLUSTER)
        ),
    )
    .trim()
    .to_owned()
}
