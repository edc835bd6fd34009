//! Real Debian machines on one Linux host: systemd-nspawn containers on overlays of a cached
//! debootstrap image, each in its own network namespace on a per-group bridge, with a local apt
//! repository and a git server on the bridge. Orbiter's testbed and its Local provider engine.
//!
//! Everything needs root. Synchronous by design: it drives `ip`, `mount`, `debootstrap` and
//! `systemd-nspawn`, and keeps its state under [`host::STATE_ROOT`] so any process can re-attach.

mod apt_repo;
mod apt_sources;
pub mod cli;
mod cmd;
mod detach;
mod error;
mod git_host;
mod group;
mod guard;
pub mod host;
mod image;
mod lock;
mod machine;
mod mounts;
mod names;
mod net;
mod procs;
mod provision;
mod state;
mod subnet;

pub use apt_sources::Suite;
pub use error::Error;
pub use git_host::GitHost;
pub use group::{Group, GroupSpec};
pub use guard::GroupGuard;
pub use host::Host;
pub use image::{BaseImage, IMAGE_VERSION};
pub use machine::{Machine, MachineInfo, MachineState};
pub use subnet::Net4;
