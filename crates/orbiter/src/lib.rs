//! The Orbiter reconciler: observe → plan → apply, and commit what it observed to the Orb
//! repository only when that changed.

pub mod ssh;
