//! `orbctl validate [FILE]`: the same checks Orbiter applies, without touching anything.

use crate::args::Global;
use crate::context::{Ctx, read_text};
use anyhow::{Context as _, Result, anyhow};
use orb_model::{ORBITER_YML, Orb};
use std::path::Path;

pub fn run(g: &Global, file: Option<&Path>) -> Result<()> {
    let (text, name) = match file {
        Some(f) => (
            std::fs::read_to_string(f).with_context(|| format!("cannot read {}", f.display()))?,
            f.display().to_string(),
        ),
        None => {
            let ctx = Ctx::open(g)?;
            let text = read_text(&ctx.repo.snapshot(), ORBITER_YML)?
                .ok_or_else(|| anyhow!("the repository has no {ORBITER_YML}"))?;
            (text, ORBITER_YML.to_owned())
        }
    };
    let orb = Orb::parse(&text, &name)?;
    let machines: usize = orb
        .providers
        .values()
        .flat_map(|n| n.spec.model().pools().into_iter().map(|(_, size)| size))
        .sum();
    println!(
        "{name}: valid ({} providers, {} clusters, {machines} machines){}",
        orb.providers.len(),
        orb.clusters.len(),
        if orb.needs_migration() {
            "; older kind versions will be migrated on the next write"
        } else {
            ""
        }
    );
    Ok(())
}
