//! Scenario tests for the pure plan: Orbs written as YAML, machines observed by hand, and the
//! steps, waits and blocks the plan returns. Restart safety is tested by replaying what the
//! engine's steps change (`World::apply`), also when Orbiter dies after any single step.

mod documents;
mod machines;
mod reboot;
mod rollouts;
mod secrets;
mod waves;
mod world;
