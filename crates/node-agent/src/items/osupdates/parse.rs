//! What package managers print, read: apt's simulation (`Inst` lines), dnf's transaction
//! summary and `check-update` list; and the one-line summary of an upgrade.

/// Package names an `apt-get -s upgrade` would install or upgrade (`Inst NAME [OLD] (NEW …)`
/// lines), each once, in order. Held packages are kept back by apt and do not appear.
pub fn apt_simulation(text: &str) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("Inst ")
            && let Some(name) = rest.split_whitespace().next()
            && !names.iter().any(|n| n == name)
        {
            names.push(name.to_string());
        }
    }
    names
}

/// The name of an RPM `NAME-[EPOCH:]VERSION-RELEASE.ARCH` (as dnf lists them).
pub fn rpm_name(nevra: &str) -> &str {
    let without_arch = nevra.rsplit_once('.').map_or(nevra, |(n, _)| n);
    let mut parts = without_arch.rsplitn(3, '-');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(_release), Some(_version), Some(name)) if !name.is_empty() => name,
        _ => nevra,
    }
}

/// Package names in the `Upgraded:` and `Installed:` sections dnf prints after a transaction.
pub fn dnf_transaction(text: &str) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    let mut in_section = false;
    for line in text.lines() {
        let trimmed = line.trim();
        if !line.starts_with([' ', '\t']) {
            in_section = matches!(trimmed, "Upgraded:" | "Installed:");
            continue;
        }
        if in_section {
            for nevra in trimmed.split_whitespace() {
                let name = rpm_name(nevra);
                if !names.iter().any(|n| n == name) {
                    names.push(name.to_string());
                }
            }
        }
    }
    names
}

/// Packages `dnf -q check-update` lists (`NAME.ARCH  VERSION  REPO`), up to the obsoletes.
pub fn dnf_check_update(text: &str) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for line in text.lines() {
        if line.starts_with("Obsoleting") {
            break;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        if let [name_arch, _version, _repo] = fields.as_slice()
            && let Some((name, _arch)) = name_arch.rsplit_once('.')
            && !names.iter().any(|n| n == name)
        {
            names.push(name.to_string());
        }
    }
    names
}

/// How many names a summary lists before `and N more`.
const NAMES_SHOWN: usize = 10;

/// `upgraded 3 packages (security): a, b, c`, names capped.
pub fn summary(names: &[String], what: &str) -> String {
    if names.is_empty() {
        return format!("nothing to upgrade ({what})");
    }
    let shown = names
        .iter()
        .take(NAMES_SHOWN)
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(", ");
    let more = names.len().saturating_sub(NAMES_SHOWN);
    format!(
        "upgraded {} package{} ({what}): {shown}{}",
        names.len(),
        if names.len() == 1 { "" } else { "s" },
        if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const APT_SIM: &str = "NOTE: This is only a simulation!
      apt-get needs root privileges for real execution.
      Keep also in mind that locking is deactivated,
      so don't depend on the relevance to the real current situation!
Reading package lists...
Building dependency tree...
Reading state information...
Calculating upgrade...
The following packages have been kept back:
  etcd-server
The following packages will be upgraded:
  libssl3 openssl
2 upgraded, 0 newly installed, 0 to remove and 1 not upgraded.
Inst libssl3 [3.0.11-1~deb12u1] (3.0.11-1~deb12u2 Debian-Security:12/stable-security [amd64])
Inst openssl [3.0.11-1~deb12u1] (3.0.11-1~deb12u2 Debian-Security:12/stable-security [amd64]) []
Conf libssl3 (3.0.11-1~deb12u2 Debian-Security:12/stable-security [amd64])
Conf openssl (3.0.11-1~deb12u2 Debian-Security:12/stable-security [amd64])
";

    #[test]
    fn apt_simulation_counts_inst_lines() {
        assert_eq!(apt_simulation(APT_SIM), ["libssl3", "openssl"]);
        assert!(
            apt_simulation("0 upgraded, 0 newly installed, 0 to remove and 0 not upgraded.\n")
                .is_empty()
        );
        // `Inst` inside a word or indented is not an action line.
        assert!(apt_simulation("Install libfoo\n  Inst x (1)\n").is_empty());
    }

    #[test]
    fn dnf_outputs() {
        let out = "Last metadata expiration check: 0:01:02 ago.
Dependencies resolved.
Upgraded:
  openssl-1:3.0.7-25.el9_3.x86_64        openssl-libs-1:3.0.7-25.el9_3.x86_64
  tzdata-2024a-1.el9.noarch
Installed:
  kernel-core-5.14.0-362.13.1.el9_3.x86_64

Complete!
";
        assert_eq!(
            dnf_transaction(out),
            ["openssl", "openssl-libs", "tzdata", "kernel-core"]
        );
        assert!(dnf_transaction("Dependencies resolved.\nNothing to do.\nComplete!\n").is_empty());
        let check = "
openssl.x86_64          1:3.0.7-25.el9_3        baseos
openssl-libs.x86_64     1:3.0.7-25.el9_3        baseos
Obsoleting Packages
grub2-tools.x86_64      1:2.06-70.el9           baseos
";
        assert_eq!(dnf_check_update(check), ["openssl", "openssl-libs"]);
        assert_eq!(rpm_name("python3-dnf-4.14.0-9.el9.noarch"), "python3-dnf");
        assert_eq!(rpm_name("odd"), "odd");
    }

    #[test]
    fn summaries_are_capped() {
        let names: Vec<String> = (1..=13).map(|i| format!("p{i}")).collect();
        assert_eq!(
            summary(&names, "all"),
            "upgraded 13 packages (all): p1, p2, p3, p4, p5, p6, p7, p8, p9, p10 and 3 more"
        );
        assert_eq!(
            summary(&names[..1], "security"),
            "upgraded 1 package (security): p1"
        );
        assert_eq!(summary(&[], "security"), "nothing to upgrade (security)");
    }
}
