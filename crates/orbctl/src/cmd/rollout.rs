//! `orbctl rollout status|pause|resume|undo`: where each pool's rollout stands (Orbiter's
//! records in `orbiter/rollouts/`), and a person's say over it — flags in orbiter.yml that the
//! running Orbiter acts on (and clears, for undo and resume).

use crate::args::{Global, Output};
use crate::context::{Ctx, read_orb, read_text};
use anyhow::{Result, anyhow, bail};
use orb_model::rollout::RolloutSettings;
use orb_model::{Located, ORBITER_YML};
use orb_repo::{FileChange, Snapshot};
use orbiter::rollout::{RolloutRecord, RolloutState, record_path, record_pool};
use orbiter::state;
use serde::Serialize;
use std::collections::BTreeMap;

/// What `status -o json` prints per pool: the record without the revisions' contents.
#[derive(Serialize)]
struct PoolStatus<'a> {
    pool: &'a str,
    #[serde(flatten)]
    record: &'a RolloutRecord,
}

fn records(snap: &Snapshot<'_>) -> Result<BTreeMap<String, RolloutRecord>> {
    let mut out = BTreeMap::new();
    for path in snap.list()? {
        if let Some(pool) = record_pool(&path)
            && let Some(text) = read_text(snap, &path)?
        {
            out.insert(pool, state::parse(&text, &path)?);
        }
    }
    Ok(out)
}

pub fn status(g: &Global, pool: Option<&str>, output: Output) -> Result<()> {
    let ctx = Ctx::open(g)?;
    let mut all = records(&ctx.repo.snapshot())?;
    if let Some(p) = pool {
        all.retain(|k, _| k == p);
        if all.is_empty() {
            bail!("no rollout recorded for pool {p}; pools are named <provider>.<pool>");
        }
    }
    for r in all.values_mut() {
        r.revisions.clear();
    }
    if output == Output::Json {
        let list: Vec<PoolStatus> = all
            .iter()
            .map(|(pool, record)| PoolStatus { pool, record })
            .collect();
        println!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(());
    }
    if all.is_empty() {
        println!(
            "no rollouts recorded yet (Orbiter records one per pool once it manages machines)"
        );
        return Ok(());
    }
    for (pool, r) in &all {
        println!(
            "{pool}: {} to revision {} (waves done: {})",
            state_word(r.state),
            r.revision,
            r.waves_done
        );
        if let Some(why) = &r.reason {
            println!("  reason: {why}");
        }
        println!(
            "  {:<24} {:<14} {:<12} {:<14} REASON",
            "MACHINE", "REVISION", "PHASE", "HEALTHY ON"
        );
        for (k, m) in &r.machines {
            println!(
                "  {:<24} {:<14} {:<12} {:<14} {}",
                k.to_string(),
                m.revision,
                format!("{:?}", m.phase).to_lowercase(),
                m.healthy.as_deref().unwrap_or("-"),
                m.reason.as_deref().unwrap_or("")
            );
        }
    }
    Ok(())
}

fn state_word(s: RolloutState) -> &'static str {
    match s {
        RolloutState::Rolling => "rolling",
        RolloutState::Done => "done",
        RolloutState::Stopped => "stopped",
        RolloutState::Paused => "paused",
    }
}

/// What a person asks of a pool's rollout.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Ask {
    Pause,
    Resume,
    Undo,
}

pub fn ask(g: &Global, pool: &str, what: Ask) -> Result<()> {
    let mut ctx = Ctx::open(g)?;
    let verb = format!("{what:?}").to_lowercase();
    let msg = format!("Rollout of {pool}: {verb}\n\nby orbctl rollout {verb}");
    let outcome = super::update(&mut ctx.repo, &msg, |snap| {
        let record: Option<RolloutRecord> = read_text(snap, &record_path(pool))?
            .map(|t| state::parse(&t, &record_path(pool)))
            .transpose()?;
        let mut orb = read_orb(snap)?;
        let slot = orb
            .rollout
            .pools
            .entry(pool.to_owned())
            .or_insert_with(|| Located::new(RolloutSettings::default()));
        let s = &mut slot.value;
        match what {
            Ask::Pause => s.paused = Some(true),
            Ask::Resume => {
                s.paused = None;
                if let Some(r) = &record
                    && r.state == RolloutState::Stopped
                {
                    s.retry = Some(r.revision.clone());
                }
            }
            Ask::Undo => {
                let r = record.as_ref().ok_or_else(|| {
                    anyhow!("no rollout recorded for pool {pool}: nothing to undo")
                })?;
                s.undo = Some(r.revision.clone());
            }
        }
        if orb.rollout.pools[pool].value == RolloutSettings::default() {
            orb.rollout.pools.remove(pool);
        }
        let text = orb.to_yaml();
        // Also checks that the pool exists.
        orb_model::Orb::parse(&text, ORBITER_YML)?;
        Ok(vec![FileChange::write(ORBITER_YML, text)])
    })?;
    super::report(&outcome, ORBITER_YML);
    Ok(())
}
