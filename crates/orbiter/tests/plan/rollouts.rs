//! Roll-outs replayed to convergence, also when Orbiter dies after every single step.

use crate::world::*;
use node_protocol::timefmt::{format_rfc3339, parse_rfc3339};
use orb_model::registry::MachineFlag;
use orbiter::plan::Action;
use std::collections::BTreeMap;

/// Plans and replays until converged, `limit` steps per round (1 = Orbiter dies after every
/// step); the clock ticks a second per round and a machine asked to reboot does so in the
/// second it was asked for. Returns the steps applied and, per round, the number of machines
/// of each pool with a reboot request recorded.
fn roll_out(w: &mut World, limit: usize) -> (Vec<Action>, Vec<BTreeMap<String, usize>>) {
    let (mut applied, mut pending) = (Vec::new(), Vec::new());
    let mut t = parse_rfc3339(NOW).unwrap();
    for _ in 0..40 {
        w.now = format_rfc3339(t);
        let p = w.plan();
        assert!(p.blocked.is_empty(), "{:?}", p.blocked);
        if p.steps.is_empty() && p.waiting.is_empty() {
            return (applied, pending);
        }
        applied.extend(w.apply(&p, limit));
        t += 1;
        let mut per_pool = BTreeMap::new();
        let keys: Vec<String> = w
            .observed
            .machines()
            .map(|m| m.machine.key.to_string())
            .collect();
        for k in keys {
            let doc = w.recorded.node_desired.get(&key(&k));
            let Some(at) = doc.and_then(|d| d.reboot_requested_at()) else {
                continue;
            };
            let at = parse_rfc3339(at).unwrap();
            *per_pool
                .entry(w.m(&k).machine.pool.to_string())
                .or_insert(0) += 1;
            let c = w.m(&k).current.as_mut().unwrap();
            if parse_rfc3339(c.booted_at.as_deref().unwrap()).unwrap() < at && t >= at {
                c.booted_at = Some(format_rfc3339(t));
            }
        }
        pending.push(per_pool);
    }
    panic!("no convergence in 40 rounds; applied {applied:?}");
}

#[test]
fn reboot_rollout_converges_one_per_pool_even_when_killed_after_every_step() {
    for limit in [usize::MAX, 1] {
        let mut w = World::new(&[lab(&["rebootrequired: [a1, a2, b1]"])], &[]);
        let (applied, pending) = roll_out(&mut w, limit);
        let pool_a = |p: &BTreeMap<String, usize>| p.get("a").copied().unwrap_or(0);
        assert!(
            pending.iter().all(|p| pool_a(p) <= 1),
            "limit {limit}: {pending:?}"
        );
        let clears = applied
            .iter()
            .filter(|a| matches!(a, Action::ClearReboot { .. }));
        assert_eq!(clears.count(), 3, "each flag cleared once (limit {limit})");
        for k in ["lab.a1", "lab.a2", "lab.b1"] {
            let booted = w.m(k).current.as_ref().unwrap().booted_at.clone().unwrap();
            assert!(booted.as_str() > NOW, "{k} rebooted (limit {limit})");
            assert_eq!(w.recorded.node_desired[&key(k)].reboot_requested_at(), None);
        }
        let flags = w
            .orb
            .providers
            .values_mut()
            .map(|p| p.spec.flags_mut(MachineFlag::Reboot));
        assert!(flags.into_iter().all(|f| f.is_empty()), "flags cleared");
        if limit == usize::MAX {
            let both = pending[0].get("a") == Some(&1) && pending[0].get("b") == Some(&1);
            assert!(both, "pools a and b reboot in parallel: {pending:?}");
        }
    }
}

#[test]
fn replace_rollout_surges_once_and_destroys_once_even_when_killed_after_every_step() {
    for limit in [usize::MAX, 1] {
        let mut w = World::new(&[loc(2, &["replacementrequired: [p-1]"])], &["p-1", "p-2"]);
        let (applied, _) = roll_out(&mut w, limit);
        let lifecycle: Vec<String> = applied
            .iter()
            .filter(|a| !a.runs_on_machine() && !matches!(a, Action::PinHostKey { .. }))
            .map(Action::summary)
            .collect();
        let expected = [
            "create machine loc.p-3 in pool p",
            "destroy machine loc.p-1",
            "clear the replacement flag of loc.p-1",
        ];
        assert_eq!(lifecycle, expected, "limit {limit}");
        let left: Vec<String> = w
            .observed
            .machines()
            .map(|m| m.machine.key.to_string())
            .collect();
        assert_eq!(left, ["loc.p-2", "loc.p-3"]);
    }
}
