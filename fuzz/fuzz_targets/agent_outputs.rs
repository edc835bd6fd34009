//! What node-agent reads from the commands and system files of its machine: dpkg-query status
//! lines, `dnf versionlock list`, rpm versions, `systemctl show`, os-release, /etc/hosts,
//! sshd_config, sysctl values, command output tails, and its own `--drift` durations.
//! The first line of the input is the package (or host) name the parsers compare against.
#![no_main]

use libfuzzer_sys::fuzz_target;
use node_agent::exec::Output;
use node_agent::host::{PkgManager, detect_pkg_manager};
use node_agent::items::{hostname, package, sshd, sysctl, unit};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (name, out) = text.split_once('\n').unwrap_or(("etcd-server", &text));

    for line in out.lines() {
        let (o, parsed) = package::parse_dpkg_status(line);
        assert!(parsed || (o.installed.is_none() && o.broken.is_none()));
        let _ = o.to_string();
    }
    let _ = package::parse_dpkg_status(out);
    let _ = package::rpm_locked(out, name);
    for m in [PkgManager::Apt, PkgManager::Dnf, PkgManager::Yum] {
        let _ = package::version_matches(&m, out, name);
        let _ = package::version_matches(&m, name, out);
    }
    let _ = unit::parse_show(out);
    let _ = detect_pkg_manager(out);
    let hosts = hostname::hosts_with(out, name);
    assert!(hosts.contains(&format!("127.0.1.1\t{name}")));
    let _ = sshd::includes_dropins(out);
    let _ = sysctl::normalize(out);
    let _ = sysctl::proc_path(name);
    let o = Output {
        code: Some(1),
        stdout: out.to_owned(),
        stderr: name.to_owned(),
    };
    let _ = o.tail();
    let _ = node_agent::cli::parse_duration(name);
});
