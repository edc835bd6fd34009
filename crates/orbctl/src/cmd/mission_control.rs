//! `orbctl mission-control`: opens every Orb asked for (their repositories only; the
//! masterkey is never used) and serves Mission Control over them.

use crate::args::{Global, MissionControlArgs};
use crate::context::open_repo;
use anyhow::{Context as _, Result, bail};
use mission_control::{Options, OrbSource};
use orb_repo::OrbConfig;
use std::os::unix::fs::PermissionsExt as _;

pub fn run(g: &Global, a: &MissionControlArgs) -> Result<()> {
    let paths = if a.orbs.is_empty() {
        vec![OrbConfig::resolve_path(g.orbconfig.as_deref())]
    } else {
        a.orbs.clone()
    };
    let mut sources: Vec<OrbSource> = Vec::new();
    for path in &paths {
        let config = OrbConfig::load(path)?;
        let repo = open_repo(g, path, &config)?;
        let base = name_of(&repo.display_url());
        let mut name = base.clone();
        let mut n = 2;
        while sources.iter().any(|s| s.name() == name) {
            name = format!("{base}-{n}");
            n += 1;
        }
        sources.push(OrbSource::new(name, repo));
    }
    let opts = Options {
        listen: a.listen,
        token: a.token_file.as_deref().map(read_token).transpose()?,
    };
    opts.check()?;
    eprintln!(
        "Mission Control on http://{}/ ({} Orb{})",
        a.listen,
        sources.len(),
        if sources.len() == 1 { "" } else { "s" }
    );
    mission_control::serve(sources, opts)
}

/// An Orb's name in pages: the last part of its repository URL, without `.git`.
fn name_of(url: &str) -> String {
    let last = url
        .trim_end_matches('/')
        .rsplit(['/', ':'])
        .next()
        .unwrap_or("orb");
    let name = last.strip_suffix(".git").unwrap_or(last);
    let clean: String = name
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || "-_.".contains(*c))
        .collect();
    if clean.is_empty() {
        "orb".into()
    } else {
        clean
    }
}

fn read_token(path: &std::path::Path) -> Result<String> {
    let meta = std::fs::metadata(path).with_context(|| format!("token file {}", path.display()))?;
    if meta.permissions().mode() & 0o077 != 0 {
        bail!(
            "token file {} is readable by others; hint: chmod 600 {}",
            path.display(),
            path.display()
        );
    }
    let token = std::fs::read_to_string(path)
        .with_context(|| format!("token file {}", path.display()))?
        .trim()
        .to_owned();
    if token.len() < 16 || !token.bytes().all(|b| b.is_ascii_graphic()) {
        bail!(
            "token file {}: the token must be at least 16 printable characters without spaces",
            path.display()
        );
    }
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::name_of;

    #[test]
    fn names_come_from_the_url() {
        assert_eq!(name_of("file:///tmp/x/prod.git"), "prod");
        assert_eq!(name_of("git@github.com:acme/orb-eu.git"), "orb-eu");
        assert_eq!(name_of("ssh://h/repos/lab/"), "lab");
        assert_eq!(name_of("https://h/<x>"), "x");
    }
}
