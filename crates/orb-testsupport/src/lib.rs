//! Test harness shared by the Orbiter crates: throw-away bare Git repositories, a real `sshd`
//! on loopback with its own host key, ed25519 key pairs, and an Orb in the old orbos format
//! (`orbos`) for the import tests.
//!
//! Everything here is synchronous, lives in temporary directories and cleans up on drop, so
//! tests stay independent when cargo runs them in parallel. Failures panic with the command
//! and its output: this crate is only for tests.

mod bare;
mod keys;
pub mod orbos;
mod run;
mod sshd;

pub use bare::{BareRepo, bare_repo};
pub use keys::{fingerprint, keypair};
pub use sshd::Sshd;
