//! A group that is taken down when dropped, also when the code that made it panics: tests and
//! benchmarks must leave nothing behind.

use crate::{Error, Group, GroupSpec, Host};

pub struct GroupGuard {
    host: Host,
    name: String,
    group: Option<Group>,
}

impl GroupGuard {
    /// Brings the group up; what a failed start left behind is removed before the error returns.
    pub fn up(host: &Host, spec: &GroupSpec) -> Result<GroupGuard, Error> {
        let mut guard = GroupGuard {
            host: host.clone(),
            name: spec.name.clone(),
            group: None,
        };
        guard.group = Some(Group::up(host, spec)?);
        Ok(guard)
    }

    pub fn group(&self) -> &Group {
        self.group
            .as_ref()
            .expect("a guard holds its group until dropped")
    }

    /// Takes the group down now, reporting a failure instead of printing it.
    pub fn down(mut self) -> Result<(), Error> {
        self.group.take().map_or(Ok(()), Group::down)
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        let res = match self.group.take() {
            Some(g) => g.down(),
            None => Group::remove(&self.host, &self.name),
        };
        if let Err(e) = res
            && !matches!(e, Error::NoSuchGroup { .. })
        {
            eprintln!("cleanup of group {} failed: {e}", self.name);
        }
    }
}
