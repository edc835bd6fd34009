//! etcd's own arithmetic, free of any plan state: the quorum of a member list and the version
//! rule (one minor at a time). Kept apart so every phase, the tests and Orbiter can use them
//! without depending on the planner's context.

/// Votes needed among `n` members.
pub fn quorum(n: usize) -> usize {
    n / 2 + 1
}

/// `major.minor.patch` of an etcd version (`3.4.23`, also `3.4.23-4+b4`).
pub fn semver(v: &str) -> Option<(u32, u32, u32)> {
    let core = v.split(['-', '+', '~']).next()?;
    let mut it = core.split('.');
    let t = (
        it.next()?.parse().ok()?,
        it.next()?.parse().ok()?,
        it.next()?.parse().ok()?,
    );
    it.next().is_none().then_some(t)
}

/// Whether members running `from` may move to `to`: same minor (any patch), or the next minor.
pub fn version_step(from: &str, to: &str) -> Result<(), String> {
    let (Some(f), Some(t)) = (semver(from), semver(to)) else {
        return Err(format!(
            "cannot compare versions `{from}` and `{to}` (expected major.minor.patch)"
        ));
    };
    if f.0 != t.0 {
        return Err(format!(
            "{from} → {to} changes the major version; etcd supports one minor at a time"
        ));
    }
    if t.1 < f.1 {
        return Err(format!(
            "{from} → {to} is a downgrade across minor versions, which etcd does not support; set version back to {}.{}.x",
            f.0, f.1
        ));
    }
    if t.1 > f.1 + 1 {
        return Err(format!(
            "{from} → {to} skips a minor version; upgrade to {}.{}.x first",
            f.0,
            f.1 + 1
        ));
    }
    Ok(())
}
