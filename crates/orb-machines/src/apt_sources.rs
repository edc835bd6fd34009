//! The host's own Debian apt sources, re-targeted at another suite, so packages for machines
//! come from wherever this host already gets Debian from (no registry host name in our code).

use crate::Error;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Debian releases whose packages can be put into a group's repository.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Suite {
    /// Debian 12, the machines' own release.
    Bookworm,
    /// Debian 13; some of its packages install on bookworm (e.g. etcd-server 3.5.16).
    Trixie,
}

impl Suite {
    pub fn codename(self) -> &'static str {
        match self {
            Suite::Bookworm => "bookworm",
            Suite::Trixie => "trixie",
        }
    }
    pub const ALL: [Suite; 2] = [Suite::Bookworm, Suite::Trixie];
}

/// One `deb` source (a one-line entry or a deb822 stanza).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Source {
    pub uris: Vec<String>,
    pub suites: Vec<String>,
    pub components: Vec<String>,
    pub signed_by: Option<String>,
}

/// Reads /etc/apt/sources.list and sources.list.d/*.list|*.sources under `etc_apt`.
pub(crate) fn host_sources(etc_apt: &Path) -> Result<Vec<Source>, Error> {
    let mut out = Vec::new();
    let main = etc_apt.join("sources.list");
    if let Ok(t) = std::fs::read_to_string(&main) {
        out.extend(parse_one_line(&t));
    }
    let dir = etc_apt.join("sources.list.d");
    if let Ok(rd) = std::fs::read_dir(&dir) {
        let mut files: Vec<_> = rd.flatten().map(|e| e.path()).collect();
        files.sort();
        for f in files {
            let text = std::fs::read_to_string(&f).map_err(Error::io("read", &f))?;
            match f.extension().and_then(|e| e.to_str()) {
                Some("list") => out.extend(parse_one_line(&text)),
                Some("sources") => out.extend(parse_deb822(&text)),
                _ => {}
            }
        }
    }
    Ok(out)
}

fn parse_one_line(text: &str) -> Vec<Source> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        let Some(rest) = line
            .strip_prefix("deb ")
            .or_else(|| line.strip_prefix("deb\t"))
        else {
            continue;
        };
        let mut rest = rest.trim_start();
        let mut signed_by = None;
        if let Some(after) = rest.strip_prefix('[') {
            let Some(end) = after.find(']') else { continue };
            for opt in after[..end].split_whitespace() {
                if let Some(v) = opt.strip_prefix("signed-by=") {
                    signed_by = Some(v.to_string());
                }
            }
            rest = after[end + 1..].trim_start();
        }
        let f: Vec<&str> = rest.split_whitespace().collect();
        if f.len() >= 2 {
            out.push(Source {
                uris: vec![f[0].to_string()],
                suites: vec![f[1].to_string()],
                components: f[2..].iter().map(|s| s.to_string()).collect(),
                signed_by,
            });
        }
    }
    out
}

fn parse_deb822(text: &str) -> Vec<Source> {
    let mut out = Vec::new();
    for stanza in text.split("\n\n") {
        let mut fields: Vec<(String, String)> = Vec::new();
        for line in stanza.lines() {
            if line.starts_with('#') {
                continue;
            }
            if line.starts_with([' ', '\t']) {
                if let Some(last) = fields.last_mut() {
                    last.1.push('\n');
                    last.1.push_str(line.trim());
                }
            } else if let Some((k, v)) = line.split_once(':') {
                fields.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
            }
        }
        let get = |k: &str| fields.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        let words = |k: &str| {
            get(k)
                .map(|v| v.split_whitespace().map(str::to_string).collect::<Vec<_>>())
                .unwrap_or_default()
        };
        if !words("types").iter().any(|t| t == "deb") || get("enabled").is_some_and(|v| v == "no") {
            continue;
        }
        // An inline key block (multi-line Signed-By) cannot be re-used as a path; keep paths only.
        let signed_by = get("signed-by").filter(|v| !v.contains('\n') && v.starts_with('/'));
        out.push(Source {
            uris: words("uris"),
            suites: words("suites"),
            components: words("components"),
            signed_by,
        });
    }
    out
}

/// The host's Debian entries for its own release (`host_codename` and its -updates/-security
/// suites) with the release replaced by `target`. Other repositories are left out.
pub(crate) fn retarget(sources: &[Source], host_codename: &str, target: &str) -> Vec<Source> {
    sources
        .iter()
        .filter_map(|s| {
            let suites: Vec<String> = s
                .suites
                .iter()
                .filter_map(|su| {
                    if su == host_codename {
                        Some(target.to_string())
                    } else {
                        su.strip_prefix(&format!("{host_codename}-"))
                            .map(|rest| format!("{target}-{rest}"))
                    }
                })
                .collect();
            (!suites.is_empty()).then(|| Source {
                suites,
                ..s.clone()
            })
        })
        .collect()
}

pub(crate) fn render_deb822(sources: &[Source]) -> String {
    let mut out = String::new();
    for s in sources {
        out.push_str(&format!(
            "Types: deb\nURIs: {}\nSuites: {}\nComponents: {}\n",
            s.uris.join(" "),
            s.suites.join(" "),
            s.components.join(" ")
        ));
        if let Some(k) = &s.signed_by {
            out.push_str(&format!("Signed-By: {k}\n"));
        }
        out.push('\n');
    }
    out
}

/// VERSION_CODENAME from an os-release file.
pub(crate) fn host_codename(os_release: &Path) -> Result<String, Error> {
    let text = std::fs::read_to_string(os_release).map_err(Error::io("read", os_release))?;
    text.lines()
        .find_map(|l| l.strip_prefix("VERSION_CODENAME="))
        .map(|v| v.trim_matches('"').to_string())
        .filter(|v| !v.is_empty())
        .ok_or_else(|| Error::AptSources {
            message: format!(
                "{} has no VERSION_CODENAME; is this Debian?",
                os_release.display()
            ),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEB822: &str = "Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm bookworm-updates\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\n# comment\nTypes: deb\nURIs: http://mirror.example/debian-security\nSuites: bookworm-security\nComponents: main\n\nTypes: deb\nURIs: https://other.example/node\nSuites: nodistro\nComponents: main\n";

    #[test]
    fn retargets_only_the_host_release() {
        let s = parse_deb822(DEB822);
        assert_eq!(s.len(), 3);
        let t = retarget(&s, "bookworm", "trixie");
        assert_eq!(t.len(), 2, "the third-party entry is dropped");
        assert_eq!(t[0].suites, ["trixie", "trixie-updates"]);
        assert_eq!(t[1].suites, ["trixie-security"]);
        assert_eq!(
            t[0].signed_by.as_deref(),
            Some("/usr/share/keyrings/debian-archive-keyring.gpg")
        );
        let r = render_deb822(&t);
        assert!(
            r.contains("Suites: trixie trixie-updates\n") && !r.contains("bookworm"),
            "{r}"
        );
    }

    #[test]
    fn parses_one_line_sources() {
        let s = parse_one_line(
            "# x\ndeb [arch=amd64 signed-by=/k.gpg] http://m.example/debian bookworm main contrib\ndeb-src http://m.example/debian bookworm main\n",
        );
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].components, ["main", "contrib"]);
        assert_eq!(s[0].signed_by.as_deref(), Some("/k.gpg"));
        assert!(retarget(&s, "bookworm", "bookworm")[0].suites == ["bookworm"]);
    }
}
