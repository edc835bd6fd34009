//! The Orbiter reconciler: observe → plan → apply, and commit what it observed to the Orb
//! repository only when that changed. `plan` is pure; `observe` and `engine` hold the effects.

pub mod agent_binary;
pub mod clusters;
pub mod credentials;
pub mod daemon;
pub mod engine;
pub mod handover;
pub mod lifecycle;
pub mod machine;
pub mod metrics;
pub mod node_desired;
pub mod observe;
pub mod observed;
pub mod plan;
pub mod provider;
pub mod ssh;
pub mod state;
