//! `rollout:` in orbiter.yml: how changes reach the machines of each pool. A change of what
//! Orbiter puts on a machine (node software, the agent, OS updates) goes to one canary first,
//! then in waves of at most `maxunavailable` machines, each machine done only once it is healthy
//! for `settle`; a failure stops the rollout and puts the failed machines back. Pools roll in
//! `order`; `updatesdisabled` freezes a pool; a `window` confines disruptive steps (reboots, OS
//! updates) to certain days and hours.

use crate::error::ModelError;
use crate::kinds::OrbView;
use crate::located::Located;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The whole section: defaults for every pool and what pools set differently.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Rollout {
    /// What every pool gets unless it says otherwise.
    #[serde(
        default,
        rename = "default",
        skip_serializing_if = "RolloutSettings::is_unset"
    )]
    pub defaults: RolloutSettings,
    /// By `<provider>.<pool>`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub pools: BTreeMap<String, Located<RolloutSettings>>,
}

/// One pool's settings; unset fields take the section's defaults, then the built-in ones.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RolloutSettings {
    /// Machines changed first, alone, before any wave (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<Located<u32>>,
    /// Machines of a pool changing at once: a count (`2`) or a percentage (`25%`, rounded
    /// down, at least 1). Default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maxunavailable: Option<Located<String>>,
    /// How long a changed machine must stay healthy before it counts as done (default 30s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settle: Option<Located<String>>,
    /// Wait between waves (default 0s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pause: Option<Located<String>>,
    /// A changed machine that is not healthy this long after its change has failed (default 10m).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline: Option<Located<String>>,
    /// Pools roll one after the other by `order` (lower first; default 0, then by name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order: Option<Located<i32>>,
    /// No change reaches the pool while true; the plan says so.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updatesdisabled: Option<bool>,
    /// When disruptive steps may run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<Located<Window>>,
    /// OS updates of the pool's machines.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os: Option<Located<OsUpdates>>,
    /// A person paused the pool's rollouts (`orbctl rollout pause`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused: Option<bool>,
    /// A person asked to undo the rollout to this revision (`orbctl rollout undo`): every
    /// machine it changed goes back, and the pool waits for a new revision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub undo: Option<String>,
    /// A person asked to continue the stopped rollout to this revision (`orbctl rollout resume`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<String>,
}

/// Days and hours in which disruptive steps may start; `from` after `to` spans midnight.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Window {
    /// `mon` … `sun`; empty: every day. A window spanning midnight belongs to the day it starts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub days: Vec<String>,
    /// `HH:MM`.
    pub from: String,
    pub to: String,
    /// `UTC` or a fixed offset such as `+01:00`.
    #[serde(default = "utc", skip_serializing_if = "is_utc")]
    pub timezone: String,
}

fn utc() -> String {
    "UTC".into()
}
fn is_utc(s: &String) -> bool {
    s == "UTC"
}

/// Which updates, how often, and whether to reboot when one requires it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct OsUpdates {
    /// `security` (the Debian security suite) or `all`.
    pub updates: String,
    /// How often to look for and apply updates, e.g. `24h`.
    pub every: String,
    /// A spread added to `every` per pool, so pools do not all patch at the same minute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jitter: Option<String>,
    /// `when-required` (the OS says so) or `never`.
    #[serde(default = "when_required", skip_serializing_if = "is_when_required")]
    pub reboot: String,
}

fn when_required() -> String {
    "when-required".into()
}
fn is_when_required(s: &String) -> bool {
    s == "when-required"
}

impl RolloutSettings {
    fn is_unset(&self) -> bool {
        *self == RolloutSettings::default()
    }
}

/// The settings of one pool with every default applied: what the plan uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Effective {
    pub canary: u32,
    pub maxunavailable: MaxUnavailable,
    pub settle_secs: u64,
    pub pause_secs: u64,
    pub deadline_secs: u64,
    pub order: i32,
    pub updates_disabled: bool,
    pub window: Option<Window>,
    pub os: Option<OsUpdates>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MaxUnavailable {
    Count(u32),
    Percent(u32),
}

impl MaxUnavailable {
    /// Machines that may change at once in a pool of `n` (at least 1).
    pub fn of(self, n: usize) -> usize {
        match self {
            MaxUnavailable::Count(c) => c.max(1) as usize,
            MaxUnavailable::Percent(p) => (n * p as usize / 100).max(1),
        }
    }
}

pub const DEFAULT_SETTLE_SECS: u64 = 30;
pub const DEFAULT_DEADLINE_SECS: u64 = 600;

impl Rollout {
    /// The settings of `provider.pool`.
    pub fn effective(&self, pool_ref: &str) -> Effective {
        let pool = self.pools.get(pool_ref).map(|l| &l.value);
        let pick = |f: fn(&RolloutSettings) -> Option<&Located<String>>| {
            pool.and_then(f)
                .or_else(|| f(&self.defaults))
                .map(|l| l.value.clone())
        };
        let secs = |f: fn(&RolloutSettings) -> Option<&Located<String>>, default: u64| {
            pick(f)
                .and_then(|s| match s.trim() {
                    "0" | "0s" => Some(0),
                    s => crate::kinds::etcd_cluster::parse_duration(s).ok(),
                })
                .unwrap_or(default)
        };
        let zero_ok = |f: fn(&RolloutSettings) -> Option<&Located<String>>| {
            pick(f)
                .filter(|s| s.trim() != "0" && s.trim() != "0s")
                .and_then(|s| crate::kinds::etcd_cluster::parse_duration(&s).ok())
                .unwrap_or(0)
        };
        Effective {
            canary: pool
                .and_then(|p| p.canary.as_ref())
                .or(self.defaults.canary.as_ref())
                .map_or(1, |l| l.value),
            maxunavailable: pick(|s| s.maxunavailable.as_ref())
                .and_then(|s| parse_max_unavailable(&s).ok())
                .unwrap_or(MaxUnavailable::Count(1)),
            settle_secs: secs(|s| s.settle.as_ref(), DEFAULT_SETTLE_SECS),
            pause_secs: zero_ok(|s| s.pause.as_ref()),
            deadline_secs: secs(|s| s.deadline.as_ref(), DEFAULT_DEADLINE_SECS),
            order: pool
                .and_then(|p| p.order.as_ref())
                .or(self.defaults.order.as_ref())
                .map_or(0, |l| l.value),
            updates_disabled: pool
                .and_then(|p| p.updatesdisabled)
                .or(self.defaults.updatesdisabled)
                .unwrap_or(false),
            window: pool
                .and_then(|p| p.window.as_ref())
                .or(self.defaults.window.as_ref())
                .map(|l| l.value.clone()),
            os: pool
                .and_then(|p| p.os.as_ref())
                .or(self.defaults.os.as_ref())
                .map(|l| l.value.clone()),
        }
    }

    pub fn is_empty(&self) -> bool {
        *self == Rollout::default()
    }

    /// Every field checked, errors at the field's place.
    pub(crate) fn validate(&self, orb: &dyn OrbView, file: &str) -> Result<(), ModelError> {
        check_settings(&self.defaults, None, file)?;
        for (pool, s) in &self.pools {
            let at = Located {
                value: pool.clone(),
                pos: s.pos,
            };
            crate::kinds::refs::resolve_pool_ref(orb, file, "rollout.pools", &at)?;
            check_settings(&s.value, s.pos, file)?;
        }
        Ok(())
    }
}

/// `2` or `25%`.
pub fn parse_max_unavailable(s: &str) -> Result<MaxUnavailable, String> {
    let s = s.trim();
    if let Some(p) = s.strip_suffix('%') {
        return match p.trim().parse::<u32>() {
            Ok(p) if (1..=100).contains(&p) => Ok(MaxUnavailable::Percent(p)),
            _ => Err(format!("`{s}` is not a percentage from 1% to 100%")),
        };
    }
    match s.parse::<u32>() {
        Ok(n) if n > 0 => Ok(MaxUnavailable::Count(n)),
        _ => Err(format!(
            "`{s}` is neither a machine count (1 or more) nor a percentage"
        )),
    }
}

fn check_settings(
    s: &RolloutSettings,
    at: Option<crate::Pos>,
    file: &str,
) -> Result<(), ModelError> {
    let fail = |pos: Option<crate::Pos>, msg: String, hint: &str| {
        Err(ModelError::new(file, pos.or(at), format!("rollout: {msg}")).with_hint(hint))
    };
    if let Some(m) = &s.maxunavailable
        && let Err(e) = parse_max_unavailable(&m.value)
    {
        return fail(
            m.pos,
            format!("maxunavailable: {e}"),
            "e.g. `1`, `3` or `25%`",
        );
    }
    for (name, d, zero) in [
        ("settle", &s.settle, true),
        ("pause", &s.pause, true),
        ("deadline", &s.deadline, false),
    ] {
        if let Some(d) = d {
            let v = d.value.trim();
            let ok = (zero && (v == "0" || v == "0s"))
                || crate::kinds::etcd_cluster::parse_duration(v).is_ok();
            if !ok {
                return fail(
                    d.pos,
                    format!("{name}: `{v}` is not a duration"),
                    "write a number and s, m, h or d, e.g. `30s` or `10m`",
                );
            }
        }
    }
    if let Some(w) = &s.window {
        check_window(&w.value).or_else(|e| {
            fail(
                w.pos,
                format!("window: {e}"),
                "e.g. {days: [sat, sun], from: \"02:00\", to: \"05:00\", timezone: \"+01:00\"}",
            )
        })?;
    }
    if let Some(os) = &s.os {
        check_os(&os.value).or_else(|e| {
            fail(
                os.pos,
                format!("os: {e}"),
                "e.g. {updates: security, every: 24h, jitter: 2h, reboot: when-required}",
            )
        })?;
    }
    Ok(())
}

pub const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// Minutes after midnight of `HH:MM`.
pub fn parse_hhmm(s: &str) -> Result<u32, String> {
    let bad = || format!("`{s}` is not a time of day HH:MM");
    let (h, m) = s.trim().split_once(':').ok_or_else(bad)?;
    let (h, m): (u32, u32) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if h > 23 || m > 59 {
        return Err(bad());
    }
    Ok(h * 60 + m)
}

/// Seconds east of UTC of `UTC`, `Z` or `+HH:MM` / `-HH:MM`.
pub fn parse_offset(s: &str) -> Result<i64, String> {
    let s = s.trim();
    if s == "UTC" || s == "Z" {
        return Ok(0);
    }
    let bad = || {
        format!(
            "`{s}` is not `UTC` or an offset like `+01:00` (time zone names are not supported: use the offset)"
        )
    };
    let (sign, rest) = match s.chars().next() {
        Some('+') => (1, &s[1..]),
        Some('-') => (-1, &s[1..]),
        _ => return Err(bad()),
    };
    let minutes = parse_hhmm(rest).map_err(|_| bad())?;
    Ok(sign * i64::from(minutes) * 60)
}

fn check_window(w: &Window) -> Result<(), String> {
    for d in &w.days {
        if !DAYS.contains(&d.as_str()) {
            return Err(format!("`{d}` is not a day (one of {})", DAYS.join(", ")));
        }
    }
    let (from, to) = (parse_hhmm(&w.from)?, parse_hhmm(&w.to)?);
    if from == to {
        return Err("from and to are the same time: the window would be empty".into());
    }
    parse_offset(&w.timezone)?;
    Ok(())
}

fn check_os(o: &OsUpdates) -> Result<(), String> {
    if !["security", "all"].contains(&o.updates.as_str()) {
        return Err(format!(
            "updates: `{}` is not `security` or `all`",
            o.updates
        ));
    }
    crate::kinds::etcd_cluster::parse_duration(&o.every).map_err(|e| format!("every: {e}"))?;
    if let Some(j) = &o.jitter {
        crate::kinds::etcd_cluster::parse_duration(j).map_err(|e| format!("jitter: {e}"))?;
    }
    if !["when-required", "never"].contains(&o.reboot.as_str()) {
        return Err(format!(
            "reboot: `{}` is not `when-required` or `never`",
            o.reboot
        ));
    }
    Ok(())
}

impl Window {
    /// Whether Unix time `now` is inside the window.
    pub fn contains(&self, now: i64) -> bool {
        let (Ok(from), Ok(to), Ok(off)) = (
            parse_hhmm(&self.from),
            parse_hhmm(&self.to),
            parse_offset(&self.timezone),
        ) else {
            return false;
        };
        let local = now + off;
        let minute = (local.rem_euclid(86_400) / 60) as u32;
        // 1970-01-01 was a Thursday.
        let weekday = |days: i64| DAYS[((days + 3).rem_euclid(7)) as usize];
        let today = local.div_euclid(86_400);
        let day_ok = |d: i64| self.days.is_empty() || self.days.iter().any(|x| x == weekday(d));
        if from < to {
            minute >= from && minute < to && day_ok(today)
        } else if minute >= from {
            day_ok(today)
        } else {
            // After midnight: the window started yesterday.
            minute < to && day_ok(today - 1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(days: &[&str], from: &str, to: &str, tz: &str) -> Window {
        Window {
            days: days.iter().map(|d| d.to_string()).collect(),
            from: from.into(),
            to: to.into(),
            timezone: tz.into(),
        }
    }

    #[test]
    fn windows_by_day_hour_and_offset() {
        // 2026-12-05 is a Saturday; 01:30 UTC.
        let sat_0130 = 1_796_434_200;
        assert!(w(&["sat"], "01:00", "02:00", "UTC").contains(sat_0130));
        assert!(!w(&["sun"], "01:00", "02:00", "UTC").contains(sat_0130));
        assert!(!w(&[], "02:00", "03:00", "UTC").contains(sat_0130));
        // 02:30 at +01:00.
        assert!(w(&["sat"], "02:00", "03:00", "+01:00").contains(sat_0130));
        // Spanning midnight: started Friday 22:00.
        assert!(w(&["fri"], "22:00", "04:00", "UTC").contains(sat_0130));
        assert!(!w(&["sat"], "22:00", "04:00", "UTC").contains(sat_0130));
    }

    #[test]
    fn settings_and_their_defaults() {
        let r = Rollout::default();
        let e = r.effective("lab.web");
        assert_eq!(
            (e.canary, e.maxunavailable, e.settle_secs, e.pause_secs),
            (1, MaxUnavailable::Count(1), DEFAULT_SETTLE_SECS, 0)
        );
        assert_eq!(MaxUnavailable::Percent(25).of(10), 2);
        assert_eq!(MaxUnavailable::Percent(10).of(3), 1);
        assert!(parse_max_unavailable("0").is_err() && parse_max_unavailable("120%").is_err());
        assert!(
            parse_offset("Europe/Zurich")
                .unwrap_err()
                .contains("use the offset")
        );
        assert_eq!(parse_offset("-02:30"), Ok(-9000));
    }
}
