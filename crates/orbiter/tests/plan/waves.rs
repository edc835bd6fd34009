//! Rollouts of node software in waves: a canary first, health gates with a settle window, a
//! stop and rollback when a machine fails, pools in order, people's flags — replayed against
//! simulated machines whose health follows what their documents carry.

use crate::world::*;
use node_protocol::timefmt::{format_rfc3339, parse_rfc3339};
use node_protocol::{Item, ItemState, PassInfo};
use orb_model::Located;
use orbiter::plan::Plan;
use orbiter::rollout::{Phase, RolloutState};
use std::collections::BTreeMap;

const MACHINES: [&str; 5] = ["p-1", "p-2", "p-3", "p-4", "p-5"];

/// Five converged Local machines in pool `loc.p`, each healthy with `/etc/app` = `v1`, and
/// the simulation that got them there.
fn pool_of_five() -> (World, Sim) {
    let mut w = World::new(&[loc(5, &[])], &MACHINES);
    w.orb = with_app(&w, "v1");
    w.all_at_once();
    let mut sim = Sim::new();
    sim.run(&mut w, 600, |_, p| planned(p) == RolloutState::Done);
    w.orb.rollout = Default::default();
    sim.changing.clear();
    (w, sim)
}

/// The Orb with `/etc/app` holding `content` (`bad…`: its service cannot start; `slow…`:
/// healthy 20 s after it is applied).
fn with_app(w: &World, content: &str) -> orb_model::Orb {
    let item = format!("file: {{path: /etc/app, content: {content}}}");
    let mut orb = orb_items(&[loc(5, &[])], &[&item]);
    orb.rollout = w.orb.rollout.clone();
    orb
}

fn settle(w: &mut World, secs: &str) {
    w.orb.rollout.defaults.settle = Some(Located::new(secs.into()));
}

/// What `/etc/app` holds in `k`'s recorded document.
fn app_of(w: &World, k: &str) -> String {
    let doc = &w.recorded.node_desired[&key(&format!("loc.{k}"))];
    doc.items
        .iter()
        .find_map(|i| match i {
            Item::File(f) if f.path == "/etc/app" => f.content.as_ref().map(|c| c.0.clone()),
            _ => None,
        })
        .unwrap_or_default()
}

/// A simulated fleet: plans and applies every `step` seconds from `t`, and after each round
/// every agent reports its health as its document says. Stops after `secs` or when `until`
/// holds for a plan (applied too). Returns that plan.
struct Sim {
    t: i64,
    /// When each machine's agent began enforcing its current generation.
    since: BTreeMap<String, (u64, i64)>,
    /// Per round, how many machines enforced a generation not yet healthy on them.
    changing: Vec<usize>,
    /// When each agent last reported, and whether all was in sync then.
    reported: BTreeMap<String, (i64, bool)>,
}

impl Sim {
    fn new() -> Sim {
        Sim {
            t: parse_rfc3339(NOW).unwrap(),
            since: BTreeMap::new(),
            changing: Vec::new(),
            reported: BTreeMap::new(),
        }
    }

    fn run(&mut self, w: &mut World, secs: i64, until: impl Fn(&World, &Plan) -> bool) -> Plan {
        let end = self.t + secs;
        loop {
            w.now = format_rfc3339(self.t);
            let p = w.plan();
            let last = until(w, &p) || self.t >= end;
            w.apply(&p, usize::MAX);
            if last {
                return p;
            }
            self.t += 5;
            self.report(w);
        }
    }

    /// Every agent reports at `t`: an app that is `bad` fails, a `slow` one for 20 s.
    fn report(&mut self, w: &mut World) {
        let mut changing = 0;
        for k in MACHINES {
            let app = app_of(w, k);
            let m = w.m(&format!("loc.{k}"));
            let c = m.current.as_mut().unwrap();
            let g = c.generation.unwrap_or(0);
            let since = self.since.entry(k.to_owned()).or_insert((g, self.t));
            // The pass that applies a generation observed the items before acting: it says
            // all is well and lists what it changed; only the next one tells.
            let applying = since.0 != g;
            if applying {
                *since = (g, self.t);
            }
            let up = applying
                || !app.starts_with("bad") && (!app.starts_with("slow") || self.t - since.1 >= 20);
            // An agent reports when it applies, every 5 s while out of sync, else at its drift
            // interval (this one does not look again right after a change).
            let (last, was_up) = self
                .reported
                .get(k)
                .copied()
                .unwrap_or((i64::MIN / 2, true));
            let due = applying || (!was_up && self.t - last >= 5) || self.t - last >= 60;
            changing += usize::from(!up || app.starts_with("slow") && self.t - since.1 < 30);
            if !due {
                continue;
            }
            self.reported.insert(k.to_owned(), (self.t, up));
            c.ready = up;
            c.items = vec![ItemState {
                id: "service app".into(),
                observed: if up { "active" } else { "failed" }.into(),
                in_sync: up,
                pending: vec![],
                last_error: (!up).then(|| "app.service: exited with status 1".into()),
            }];
            c.last_pass = Some(PassInfo {
                trigger: "drift".into(),
                generation: Some(g),
                started_at: format_rfc3339(self.t),
                duration_ms: 0,
                actions: if applying {
                    vec!["file:/etc/app: write".into()]
                } else {
                    vec![]
                },
                errors: u32::from(!up),
            });
        }
        self.changing.push(changing);
    }
}

fn state(w: &World) -> RolloutState {
    w.rollouts["loc.p"].state
}

/// The state the plan moves the pool's rollout to.
fn planned(p: &Plan) -> RolloutState {
    p.rollouts["loc.p"].state
}

#[test]
fn a_bad_canary_stops_the_rollout_goes_back_and_the_others_never_see_it() {
    let (mut w, mut sim) = pool_of_five();
    w.orb = with_app(&w, "bad-v2");
    let p = sim.run(&mut w, 600, |_, p| planned(p) == RolloutState::Stopped);
    let rec = &w.rollouts["loc.p"];
    let reason = rec.reason.clone().unwrap();
    assert!(
        reason.starts_with("loc.p-1 failed: not healthy 30 s after the change: service app: app.service: exited with status 1"),
        "{reason}"
    );
    assert_waits(&p, "stopped: loc.p-1 failed");
    // The canary goes back to v1 in the same plan that stopped the rollout.
    assert_eq!(rec.machines[&key("loc.p-1")].phase, Phase::RolledBack);
    w.apply(&p, usize::MAX);
    assert_eq!(app_of(&w, "p-1"), "v1");
    for k in &MACHINES[1..] {
        assert_eq!(app_of(&w, k), "v1", "{k} never saw the bad change");
        let g = w.recorded.node_desired[&key(&format!("loc.{k}"))].generation;
        assert_eq!(g, 2, "{k} was not written");
    }
    // It stays stopped: nothing else changes.
    let p = sim.run(&mut w, 120, |_, _| false);
    assert_steps(&p, &[]);
    assert_eq!(state(&w), RolloutState::Stopped);

    // The fix: a new rollout, one machine at a time, each healthy 30 s before the next.
    w.orb = with_app(&w, "v3");
    sim.changing.clear();
    sim.run(&mut w, 1200, |_, p| planned(p) == RolloutState::Done);
    for k in MACHINES {
        assert_eq!(app_of(&w, k), "v3");
    }
    assert_eq!(w.rollouts["loc.p"].waves_done, 5);
    assert!(sim.changing.iter().all(|n| *n <= 1), "{:?}", sim.changing);
}

#[test]
fn a_check_green_after_20_s_passes_a_30_s_settle_window() {
    let (mut w, mut sim) = pool_of_five();
    w.orb = with_app(&w, "slow-v2");
    w.orb.rollout.defaults.maxunavailable = Some(Located::new("2".into()));
    sim.run(&mut w, 1200, |_, p| planned(p) != RolloutState::Rolling);
    assert_eq!(
        state(&w),
        RolloutState::Done,
        "{:?}",
        w.rollouts["loc.p"].reason
    );
    for k in MACHINES {
        assert_eq!(app_of(&w, k), "slow-v2");
    }
    // Canary, then waves of two.
    assert_eq!(w.rollouts["loc.p"].waves_done, 3);
}

#[test]
fn a_machine_that_never_applies_fails_at_the_deadline() {
    let (mut w, sim) = pool_of_five();
    w.orb = with_app(&w, "v2");
    w.orb.rollout.defaults.deadline = Some(Located::new("2m".into()));
    // Its agent is stuck: it keeps enforcing the old generation.
    let stuck = |w: &mut World| w.m("loc.p-1").current.as_mut().unwrap().generation = Some(2);
    let mut t = sim.t;
    loop {
        t += 10;
        w.now = format_rfc3339(t);
        let p = w.plan();
        w.apply(&p, usize::MAX);
        stuck(&mut w);
        if state(&w) == RolloutState::Stopped {
            break;
        }
        assert!(t < sim.t + 200, "not stopped after the deadline");
    }
    let reason = w.rollouts["loc.p"].reason.clone().unwrap();
    assert!(
        reason.contains("did not apply the change within 120 s"),
        "{reason}"
    );
}

#[test]
fn updates_disabled_and_a_pause_hold_the_pool_and_the_plan_says_why() {
    let (mut w, sim) = pool_of_five();
    w.now = format_rfc3339(sim.t);
    w.orb = with_app(&w, "v2");
    w.orb.rollout.defaults.updatesdisabled = Some(true);
    let p = w.plan();
    assert_steps(&p, &[]);
    assert_waits(&p, "5 machines wait: updates are disabled for the pool");

    w.orb.rollout.defaults.updatesdisabled = None;
    let mut flags = orb_model::rollout::RolloutSettings {
        paused: Some(true),
        ..Default::default()
    };
    w.orb
        .rollout
        .pools
        .insert("loc.p".into(), Located::new(flags.clone()));
    let p = w.plan();
    assert_steps(&p, &[]);
    assert_waits(&p, "paused by a person");

    flags.paused = None;
    w.orb
        .rollout
        .pools
        .insert("loc.p".into(), Located::new(flags));
    let p = w.plan();
    assert_steps(&p, &["write loc.p-1 g3"]);
    assert_waits(&p, "wave 1 (canary) changes loc.p-1");
}

#[test]
fn undo_puts_every_changed_machine_back_and_retry_continues() {
    let (mut w, mut sim) = pool_of_five();
    settle(&mut w, "10s");
    w.orb = with_app(&w, "v2");
    sim.run(&mut w, 600, |w, _| {
        w.rollouts["loc.p"]
            .machines
            .values()
            .filter(|m| m.phase == Phase::Done && m.revision == w.rollouts["loc.p"].revision)
            .count()
            >= 2
    });
    let target = w.rollouts["loc.p"].revision.clone();
    let flags = |undo: Option<&str>, retry: Option<&str>| orb_model::rollout::RolloutSettings {
        undo: undo.map(str::to_owned),
        retry: retry.map(str::to_owned),
        ..Default::default()
    };
    w.orb
        .rollout
        .pools
        .insert("loc.p".into(), Located::new(flags(Some(&target), None)));
    let p = w.plan();
    assert_eq!(p.rollout_flags, [("loc.p".to_owned(), "undo")]);
    w.apply(&p, usize::MAX);
    for k in MACHINES {
        assert_eq!(app_of(&w, k), "v1", "{k} back on v1");
    }
    assert_eq!(state(&w), RolloutState::Stopped);
    // Orbiter cleared the flag; later the person retries.
    w.orb
        .rollout
        .pools
        .insert("loc.p".into(), Located::new(flags(None, Some(&target))));
    let p = w.plan();
    assert_eq!(p.rollout_flags, [("loc.p".to_owned(), "retry")]);
    w.apply(&p, usize::MAX);
    w.orb.rollout.pools.clear();
    sim.run(&mut w, 1200, |_, p| planned(p) == RolloutState::Done);
    for k in MACHINES {
        assert_eq!(app_of(&w, k), "v2");
    }
}

#[test]
fn a_later_pool_waits_for_an_earlier_one() {
    let mut w = World::new(&[lab(&[])], &[]);
    w.orb.rollout.pools.insert(
        "lab.a".into(),
        Located::new(orb_model::rollout::RolloutSettings {
            order: Some(Located::new(-1)),
            ..Default::default()
        }),
    );
    w.orb.software.clear();
    let p = w.plan();
    assert_steps(&p, &["write lab.a1 g2"]);
    assert_waits(&p, "rollout of lab.b to revision");
    assert_waits(&p, "pool lab.a rolls first (order)");
}

#[test]
fn killed_after_every_step_the_rollout_still_converges_one_machine_at_a_time() {
    let (mut w, mut sim) = pool_of_five();
    settle(&mut w, "10s");
    w.orb = with_app(&w, "v2");
    let mut t = sim.t;
    for _ in 0..400 {
        w.now = format_rfc3339(t);
        let p = w.plan();
        if state(&w) == RolloutState::Done && p.steps.is_empty() {
            break;
        }
        // Orbiter dies after one step: its records are not committed.
        w.apply(&p, 1);
        t += 3;
        sim.t = t;
        sim.report(&mut w);
        let written = MACHINES.iter().filter(|k| app_of(&w, k) == "v2").count();
        let done = w.rollouts.get("loc.p").map_or(0, |r| {
            r.machines
                .values()
                .filter(|m| m.phase == Phase::Done && m.revision == r.revision)
                .count()
        });
        assert!(written <= done + 1, "{written} written, {done} done");
    }
    for k in MACHINES {
        assert_eq!(app_of(&w, k), "v2");
    }
}

#[test]
fn on_first_sight_machines_keep_their_documents_until_their_wave() {
    let (mut w, sim) = pool_of_five();
    w.now = format_rfc3339(sim.t);
    w.rollouts.clear();
    // Converged: adopted as done, nothing written.
    let p = w.plan();
    assert_steps(&p, &[]);
    assert_eq!(p.rollouts["loc.p"].state, RolloutState::Done);
    // An Orbiter before rollouts, and a change meanwhile: one canary, the rest kept.
    w.orb = with_app(&w, "v2");
    let p = w.plan();
    assert_steps(&p, &["write loc.p-1 g3"]);
    assert_waits(
        &p,
        "node-desired state of loc.p-2 kept as recorded until its rollout wave",
    );
}
