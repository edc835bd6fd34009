//! `orbctl repo accept-history`: after a person confirms it, take a rewritten history (a
//! force-push) that every other command refuses to read.

use crate::args::Global;
use crate::context::{author, interactive, repo_options};
use crate::picker::ask;
use anyhow::{Result, bail};
use orb_repo::{OrbConfig, OrbRepo, RepoError};

pub fn accept_history(g: &Global, yes: bool) -> Result<()> {
    let path = OrbConfig::resolve_path(g.orbconfig.as_deref());
    let config = OrbConfig::load(&path)?;
    match OrbRepo::open(&config, repo_options(g, &path, author())) {
        Ok(_) => {
            eprintln!(
                "the repository's history descends from what this clone saw: nothing to accept"
            );
            return Ok(());
        }
        Err(RepoError::HistoryRewritten { seen, new, branch }) => {
            eprintln!("{branch} was rewritten: this clone saw {seen}, the repository has {new}");
            if !yes {
                if !interactive() {
                    bail!(
                        "confirm with --yes (after checking what happened, e.g. `git log {seen}..{new}`)"
                    );
                }
                if ask("Read the rewritten history from now on? [y/N]", &['y', 'n'])? != 'y' {
                    bail!("aborted; nothing changed");
                }
            }
        }
        Err(e) => return Err(e.into()),
    }
    let (_, seen, now) =
        OrbRepo::open_accepting_history(&config, repo_options(g, &path, author()))?;
    eprintln!(
        "accepted: {} -> {}",
        seen.as_deref().unwrap_or("(nothing)"),
        now.as_deref().unwrap_or("(no branch)")
    );
    Ok(())
}
