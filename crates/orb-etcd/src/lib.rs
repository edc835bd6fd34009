//! The `EtcdCluster` kind's own logic, without I/O: certificates (two CAs per generation,
//! rotation, revocation), the node-agent items of a member, the observation command and its
//! parser (with `wal`: whose data a data directory holds), the membership, wipe and
//! authentication steps, and the quorum-aware planner that decides only from a member list
//! the members agree on. Orbiter runs the commands over SSH and commits the record.

pub mod items;
pub mod load;
pub mod observe;
pub mod plan;
pub mod record;
pub mod sh;
pub mod steps;
pub mod tls;
pub mod wal;
