//! The `EtcdCluster` kind's own logic, without I/O: certificates, the node-agent items of a
//! member, the observation command and its parser, the membership steps and the quorum-aware
//! planner. Orbiter runs the commands over SSH and commits the record.

pub mod items;
pub mod load;
pub mod observe;
pub mod plan;
pub mod record;
pub mod steps;
pub mod tls;
