//! The machine's apt sources restricted to security suites, for a security-only upgrade:
//! from `/etc/apt/sources.list` and `/etc/apt/sources.list.d/*.list` (one-line format) and
//! `*.sources` (deb822), every `deb` entry whose suite ends in `-security`, options kept.
//! (The agent's own `aptsource` items are such files too: they are read like any other.)

use crate::error::{Error, Result};
use crate::fsutil;
use crate::host::Host;

/// Security entries found, in the two formats apt reads.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SecuritySources {
    /// One-line entries (`deb [opts] URI SUITE COMPONENTS…`), as written.
    pub one_line: Vec<String>,
    /// deb822 stanzas with `Types: deb` and only the `-security` suites.
    pub stanzas: Vec<String>,
}

impl SecuritySources {
    pub fn is_empty(&self) -> bool {
        self.one_line.is_empty() && self.stanzas.is_empty()
    }

    /// A sources.list holding the one-line entries.
    pub fn list_text(&self) -> String {
        let mut s = String::from("# node-agent: security sources for an osupdates upgrade\n");
        for l in &self.one_line {
            s.push_str(l);
            s.push('\n');
        }
        s
    }

    /// A `.sources` file holding the stanzas.
    pub fn deb822_text(&self) -> String {
        self.stanzas.join("\n")
    }
}

const LIST: &str = "/etc/apt/sources.list";
const PARTS: &str = "/etc/apt/sources.list.d";

/// Reads the machine's sources (read-only facts: root's files, links followed like apt does;
/// never a FIFO or device).
pub fn read(host: &Host) -> Result<SecuritySources> {
    let mut found = SecuritySources::default();
    if let Some(text) = fsutil::read_text_opt(&host.path(LIST))? {
        found.one_line.extend(security_lines(&text));
    }
    let dir = host.path(PARTS);
    let mut names: Vec<String> = match std::fs::read_dir(&dir) {
        Ok(entries) => entries
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => vec![],
        Err(e) => return Err(Error::io(format!("cannot list {PARTS}"), &e)),
    };
    names.sort();
    for name in names {
        let is_list = name.ends_with(".list");
        if !is_list && !name.ends_with(".sources") {
            continue;
        }
        let Some(text) = fsutil::read_text_opt(&dir.join(&name))? else {
            continue;
        };
        if is_list {
            found.one_line.extend(security_lines(&text));
        } else {
            found.stanzas.extend(security_stanzas(&text));
        }
    }
    Ok(found)
}

/// `deb` lines of the one-line format whose suite ends in `-security`, comments removed.
pub fn security_lines(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or_default().trim();
        let mut tokens = line.split_whitespace();
        if tokens.next() != Some("deb") {
            continue;
        }
        let mut next = tokens.next();
        if next.is_some_and(|t| t.starts_with('[')) {
            // Options: `[a=b c=d]`, possibly spread over several tokens.
            while let Some(t) = next {
                next = tokens.next();
                if t.ends_with(']') {
                    break;
                }
            }
        }
        let (_uri, suite) = (next, tokens.next());
        if suite.is_some_and(is_security_suite) {
            out.push(line.to_string());
        }
    }
    out
}

fn is_security_suite(s: &str) -> bool {
    s.trim_end_matches('/').ends_with("-security")
}

/// One field of a deb822 stanza: its name and its lines as written (continuations included).
struct Field<'a> {
    name: &'a str,
    lines: Vec<&'a str>,
}

impl Field<'_> {
    /// The value with continuation lines folded (for Types, Suites, Enabled).
    fn value(&self) -> String {
        let first = self.lines[0].split_once(':').map_or("", |(_, v)| v);
        std::iter::once(first)
            .chain(self.lines[1..].iter().copied())
            .flat_map(str::split_whitespace)
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// deb822 stanzas that are enabled, of type `deb`, with at least one `-security` suite:
/// rewritten with `Types: deb` and only those suites, every other field as written.
pub fn security_stanzas(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut fields: Vec<Field> = Vec::new();
    let mut flush = |fields: &mut Vec<Field>| {
        if let Some(s) = rewrite_stanza(fields) {
            out.push(s);
        }
        fields.clear();
    };
    for line in text.lines() {
        if line.trim().is_empty() {
            flush(&mut fields);
        } else if line.starts_with('#') {
            continue;
        } else if line.starts_with([' ', '\t']) {
            if let Some(f) = fields.last_mut() {
                f.lines.push(line);
            }
        } else {
            let name = line.split_once(':').map_or(line, |(n, _)| n).trim();
            fields.push(Field {
                name,
                lines: vec![line],
            });
        }
    }
    flush(&mut fields);
    out
}

fn rewrite_stanza(fields: &[Field]) -> Option<String> {
    let get = |n: &str| {
        fields
            .iter()
            .find(|f| f.name.eq_ignore_ascii_case(n))
            .map(Field::value)
    };
    if get("Enabled").is_some_and(|v| v.eq_ignore_ascii_case("no")) {
        return None;
    }
    if !get("Types")?.split_whitespace().any(|t| t == "deb") {
        return None;
    }
    let suites: Vec<String> = get("Suites")?
        .split_whitespace()
        .filter(|s| is_security_suite(s))
        .map(str::to_string)
        .collect();
    if suites.is_empty() {
        return None;
    }
    let mut s = String::new();
    for f in fields {
        if f.name.eq_ignore_ascii_case("Types") {
            s.push_str("Types: deb\n");
        } else if f.name.eq_ignore_ascii_case("Suites") {
            s.push_str(&format!("Suites: {}\n", suites.join(" ")));
        } else {
            for l in &f.lines {
                s.push_str(l);
                s.push('\n');
            }
        }
    }
    Some(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::scratch_host;

    #[test]
    fn one_line_entries() {
        let text = "# Debian\n\
deb http://deb.debian.org/debian bookworm main\n\
deb http://security.debian.org/debian-security bookworm-security main # comment\n\
deb-src http://security.debian.org/debian-security bookworm-security main\n\
deb [ arch=amd64 signed-by=/usr/share/keyrings/x.gpg ] http://s.example/ jammy-security main\n\
deb [trusted=yes] http://10.0.0.1/ ./\n\
#deb http://security.debian.org/debian-security trixie-security main\n";
        assert_eq!(
            security_lines(text),
            [
                "deb http://security.debian.org/debian-security bookworm-security main",
                "deb [ arch=amd64 signed-by=/usr/share/keyrings/x.gpg ] http://s.example/ jammy-security main",
            ]
        );
    }

    const DEBIAN_SOURCES: &str = "Types: deb deb-src
URIs: http://deb.debian.org/debian
Suites: trixie trixie-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

# security
Types: deb deb-src
URIs: http://deb.debian.org/debian-security
Suites: trixie-security
Components: main
Signed-By:
 -----BEGIN PGP PUBLIC KEY BLOCK-----
 .
 mDMEY865UxYJKwYBBAHaRw8BAQdAd7Z0srwuhlB6JKFkcf4HU4SSS/xcRfwEQWzr
 -----END PGP PUBLIC KEY BLOCK-----

Types: deb
URIs: http://old.example/
Suites: stable-security
Components: main
Enabled: no
";

    #[test]
    fn deb822_stanzas() {
        let s = security_stanzas(DEBIAN_SOURCES);
        assert_eq!(s.len(), 1, "{s:?}");
        assert_eq!(
            s[0],
            "Types: deb\nURIs: http://deb.debian.org/debian-security\nSuites: trixie-security\nComponents: main\nSigned-By:\n -----BEGIN PGP PUBLIC KEY BLOCK-----\n .\n mDMEY865UxYJKwYBBAHaRw8BAQdAd7Z0srwuhlB6JKFkcf4HU4SSS/xcRfwEQWzr\n -----END PGP PUBLIC KEY BLOCK-----\n"
        );
        let ubuntu = "Types: deb\nURIs: http://archive.ubuntu.com/ubuntu\nSuites: noble noble-updates noble-security\nComponents: main\n";
        assert!(security_stanzas(ubuntu)[0].contains("\nSuites: noble-security\n"));
        assert!(security_stanzas("Types: deb-src\nURIs: x\nSuites: a-security\n").is_empty());
    }

    #[test]
    fn reads_both_formats_from_the_machine() {
        let (_t, h) = scratch_host(&[
            (
                "/etc/apt/sources.list",
                b"deb http://deb.debian.org/debian bookworm main\n",
                0o644,
            ),
            (
                "/etc/apt/sources.list.d/debian.sources",
                DEBIAN_SOURCES.as_bytes(),
                0o644,
            ),
            (
                "/etc/apt/sources.list.d/sec.list",
                b"deb http://security.debian.org/debian-security bookworm-security main\n",
                0o644,
            ),
            (
                "/etc/apt/sources.list.d/ignored.save",
                b"deb http://x/ y-security main\n",
                0o644,
            ),
        ]);
        let s = read(&h).unwrap();
        assert_eq!(s.one_line.len(), 1);
        assert_eq!(s.stanzas.len(), 1);
        assert!(s.list_text().contains("bookworm-security"));
        let (_t, empty) = scratch_host(&[(
            "/etc/apt/sources.list",
            b"deb http://deb.debian.org/debian bookworm main\n",
            0o644,
        )]);
        assert!(read(&empty).unwrap().is_empty());
    }
}
