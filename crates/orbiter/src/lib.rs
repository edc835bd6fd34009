//! The Orbiter reconciler: observe → plan → apply, and commit what it observed to the Orb
//! repository only when that changed. `plan` is pure; `observe` and `engine` hold the effects;
//! providers and cluster kinds are plug-ins behind small traits (`providers`, `clusters`).

pub mod action;
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
pub mod providers;
pub mod recorded;
pub mod restore_drill;
pub mod rollout;
pub mod ssh;
pub mod state;
pub mod text;
