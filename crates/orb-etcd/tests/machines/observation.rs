//! The observation parser on real etcd output: 3.4 and 3.5 members of one cluster, and a
//! stopped member (not running, with the reason, never an error of the parser).

use crate::helpers::{log, observe, sh_ok};
use crate::lab::CLUSTER;
use orb_etcd::items::paths;
use orb_etcd::observe::MemberView;
use orb_machines::Machine;
use std::time::Instant;

/// Parses e1 (3.4) and e2 (3.5) and checks they agree; returns e1's view.
pub(crate) fn on_both_versions(ms: &[Machine]) -> MemberView {
    let (v34, raw34) = observe(&ms[0]);
    let (v35, raw35) = observe(&ms[1]);
    for (v, raw, ver) in [(&v34, &raw34, "3.4.23"), (&v35, &raw35, "3.5.16")] {
        assert_eq!(v.version.as_deref(), Some(ver), "{raw}");
        assert!(v.healthy && v.running && v.error.is_none(), "{v:?}\n{raw}");
        assert_eq!(v.members.as_ref().unwrap().len(), 4);
        assert!(v.id.unwrap() > 0 && v.cluster_id.is_some() && v.db_size.unwrap() > 0);
        // Whose data it is, read from the WAL without etcd's help, on 3.4 and 3.5 alike.
        assert_eq!(
            v.data_ids,
            Some((v.id.unwrap(), v.cluster_id.unwrap())),
            "{:?}\n{raw}",
            v.data_ids_error
        );
    }
    assert_eq!(v34.cluster_id, v35.cluster_id);
    assert_eq!(v34.leader, v35.leader);
    v34
}

/// Stops e3's member and observes it.
pub(crate) fn stopped_member(t0: Instant, ms: &[Machine]) {
    sh_ok(&ms[2], &format!("systemctl stop {}", paths::unit(CLUSTER)));
    let (v, _) = observe(&ms[2]);
    assert!(!v.running && !v.healthy && v.error.is_some(), "{v:?}");
    assert_eq!(v.unit, "inactive");
    log(t0, "done");
}
