//! OS updates as part of a pool's revision: with `os:` set, the pool's revision carries an
//! `osupdates` request (the update set and a request time); a new request is made every
//! `every` (plus a spread of up to `jitter` that is fixed per pool), only inside the pool's
//! maintenance window, and rolls out through the same waves and health gates as any other
//! change — and only inside the window, being disruptive. The agent upgrades once per
//! request, never a held package; a reboot follows when the OS needs one (see the plan's
//! reboots).

use node_protocol::timefmt::{format_rfc3339, parse_rfc3339};
use node_protocol::{OsUpdates, UpdateSet};
use orb_model::kinds::etcd_cluster::parse_duration;
use orb_model::rollout::Effective;

/// The request the pool's revision carries now: the previous one until the next is due, a
/// new one (at `now`) when it is due and the window is open; none without `os:` settings.
pub fn request(
    settings: &Effective,
    pool_ref: &str,
    previous: Option<&OsUpdates>,
    now: u64,
) -> Option<OsUpdates> {
    let os = settings.os.as_ref()?;
    let updates = match os.updates.as_str() {
        "all" => UpdateSet::All,
        _ => UpdateSet::Security,
    };
    let every = parse_duration(&os.every).unwrap_or(86_400);
    let jitter = os
        .jitter
        .as_deref()
        .and_then(|j| parse_duration(j).ok())
        .unwrap_or(0);
    let last = previous
        .filter(|p| p.updates == updates)
        .and_then(|p| parse_rfc3339(&p.requested_at).ok().map(|t| (p, t)));
    let due = match last {
        Some((_, t)) => now as i64 >= t + every as i64 + spread(pool_ref, jitter) as i64,
        None => true,
    };
    let open = settings
        .window
        .as_ref()
        .is_none_or(|w| w.contains(now as i64));
    match last {
        Some((p, _)) if !(due && open) => Some(p.clone()),
        None if !open => None,
        _ => Some(OsUpdates {
            updates,
            requested_at: format_rfc3339(now as i64),
        }),
    }
}

/// A spread in `0..jitter` seconds, the same for a pool every time (so pools do not patch in
/// the same minute, and a restarted Orbiter keeps the schedule).
fn spread(pool_ref: &str, jitter: u64) -> u64 {
    use sha2::Digest as _;
    if jitter == 0 {
        return 0;
    }
    let h = sha2::Sha256::digest(pool_ref.as_bytes());
    u64::from_be_bytes(h[..8].try_into().expect("8 bytes")) % jitter
}

#[cfg(test)]
mod tests {
    use super::*;
    use orb_model::rollout::{OsUpdates as Settings, Rollout, Window};

    fn settings(window: Option<Window>) -> Effective {
        let mut r = Rollout::default();
        r.defaults.os = Some(orb_model::Located::new(Settings {
            updates: "all".into(),
            every: "24h".into(),
            jitter: Some("2h".into()),
            reboot: "when-required".into(),
        }));
        r.defaults.window = window.map(orb_model::Located::new);
        r.effective("lab.web")
    }

    #[test]
    fn requests_every_interval_plus_a_fixed_spread_and_only_in_the_window() {
        let t0 = 1_796_428_800; // 2026-12-05T00:00:00Z
        let s = settings(None);
        let first = request(&s, "lab.web", None, t0).unwrap();
        assert_eq!(first.requested_at, "2026-12-05T00:00:00Z");
        assert_eq!(first.updates, UpdateSet::All);
        assert_eq!(
            request(&s, "lab.web", Some(&first), t0 + 3600),
            Some(first.clone())
        );
        let spread = spread("lab.web", 7200);
        assert!(spread < 7200);
        let due = t0 + 86_400 + spread;
        assert_eq!(
            request(&s, "lab.web", Some(&first), due - 1),
            Some(first.clone())
        );
        let next = request(&s, "lab.web", Some(&first), due).unwrap();
        assert_eq!(next.requested_at, format_rfc3339(due as i64));

        let closed = settings(Some(Window {
            days: vec![],
            from: "02:00".into(),
            to: "03:00".into(),
            timezone: "UTC".into(),
        }));
        assert_eq!(request(&closed, "lab.web", None, t0), None);
        assert_eq!(
            request(&closed, "lab.web", Some(&first), due + 3 * 3600),
            Some(first.clone())
        );
        let in_window = t0 + 86_400 * 2 + 2 * 3600 + 60;
        assert!(
            request(&closed, "lab.web", Some(&first), in_window)
                .unwrap()
                .requested_at
                > first.requested_at
        );
        assert_eq!(
            request(
                &Rollout::default().effective("lab.web"),
                "lab.web",
                Some(&first),
                due
            ),
            None
        );
    }
}
