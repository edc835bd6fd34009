//! The protocol between Orbiter and node-agent: the node-desired document Orbiter writes to
//! every machine, the node-current report the agent writes back, the item kinds both speak,
//! the paths where they meet, and the scripts that install and remove the agent.
//!
//! Serde only, no I/O: Orbiter, the kinds that produce items (orb-etcd, orb-model's
//! `NodeSoftware`) and the agent all build and check the same typed values. A document has three
//! forms that differ only in how a secret file's content appears (see [`secret`]): names in
//! `orbiter.yml`, the bytes on the machine, a keyed digest in the Orb repository.

pub mod current;
pub mod desired;
pub mod error;
pub mod install;
pub mod items;
pub mod net;
pub mod paths;
pub mod secret;
pub mod timefmt;
mod validate;

pub use current::{ItemState, NodeCurrent, PassInfo};
pub use desired::{Form, NodeDesired, parse_desired};
pub use error::ProtocolError;
pub use items::*;
pub use secret::{FileSecret, SecretBytes};
pub use validate::parse_mode;
