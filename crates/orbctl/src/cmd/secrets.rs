//! `writesecret`, `readsecret`, `secrets list`. A secret is sealed for its path; writing the value
//! it already has makes no commit.

use crate::args::{Global, WriteSecretArgs};
use crate::context::{Ctx, KeyCache, interactive, read_orb};
use crate::input::read_value;
use crate::picker::pick;
use anyhow::{Result, bail};
use orb_model::ORBITER_YML;
use orb_repo::FileChange;
use std::io::Write as _;

pub fn write(g: &Global, a: WriteSecretArgs) -> Result<()> {
    let mut ctx = Ctx::open(g)?;
    let orb = read_orb(&ctx.repo.snapshot())?;
    let path = choose_path(a.path, &orb, "Which secret do you want to write?", false)?;
    let value = read_value(&a.source)?;
    let mut keys = KeyCache::new(ctx.masterkey()?);
    let outcome = super::update(
        &mut ctx.repo,
        &format!("Secret {path} written\n\nby orbctl writesecret"),
        |snap| {
            let key = keys.key_for(snap)?;
            let mut orb = read_orb(snap)?;
            let migrate = orb.needs_migration();
            let slot = orb.secret_mut(&path)?;
            if let Some(env) = slot.as_ref()
                && key.open(&path, env).is_ok_and(|old| *old == value)
                && !migrate
            {
                return Ok(Vec::new());
            }
            *slot = Some(key.seal(&path, &value));
            Ok(vec![FileChange::write(ORBITER_YML, orb.to_yaml())])
        },
    )?;
    super::report(&outcome, &format!("secret {path}"));
    Ok(())
}

pub fn read(g: &Global, path: Option<String>) -> Result<()> {
    let ctx = Ctx::open(g)?;
    let snap = ctx.repo.snapshot();
    let mut orb = read_orb(&snap)?;
    let path = choose_path(path, &orb, "Which secret do you want to read?", true)?;
    let key = KeyCache::new(ctx.masterkey()?).key_for(&snap)?;
    let Some(env) = orb.secret_mut(&path)?.clone() else {
        bail!("secret {path} is not set\n  hint: orbctl writesecret {path} --file FILE");
    };
    let plain = key.open(&path, &env)?;
    let mut out = std::io::stdout().lock();
    out.write_all(&plain)?;
    out.flush()?;
    Ok(())
}

pub fn list(g: &Global) -> Result<()> {
    let ctx = Ctx::open(g)?;
    let orb = read_orb(&ctx.repo.snapshot())?;
    let paths = orb.secret_paths();
    let width = paths.iter().map(|(p, _)| p.len()).max().unwrap_or(0);
    for (p, set) in paths {
        println!("{p:<width$}  {}", if set { "set" } else { "unset" });
    }
    Ok(())
}

/// The given path, or on a terminal a choice from the Orb's secret paths.
fn choose_path(
    given: Option<String>,
    orb: &orb_model::Orb,
    title: &str,
    only_set: bool,
) -> Result<String> {
    if let Some(p) = given {
        return Ok(p);
    }
    if !interactive() {
        bail!(
            "no secret path given\n  hint: pass one of: {}",
            paths(orb, false).join(", ")
        );
    }
    pick(title, &paths(orb, only_set))
}

fn paths(orb: &orb_model::Orb, only_set: bool) -> Vec<String> {
    orb.secret_paths()
        .into_iter()
        .filter(|(_, set)| *set || !only_set)
        .map(|(p, _)| p)
        .collect()
}
