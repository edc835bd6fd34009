//! node-agent: a small root daemon under systemd that makes a machine match its
//! node-desired state (packages, sources, files, directories, units, sysctl, kernel modules,
//! swap, host name, sshd, firewall, reboot and OS update requests, health checks) and reports
//! its node-current state.
//!
//! It holds no repository credentials: Orbiter writes the desired file over SSH and reads
//! the current file back. The documents, item kinds, paths and install scripts are the
//! `node-protocol` crate, shared with Orbiter. Synchronous and single-threaded by design (a few MiB of memory,
//! no CPU while idle): see `agent` for the loop, `schedule` for when passes come, `pass` for
//! one reconcile pass, `items` for what each kind observes, plans and does, `facts` for the
//! package facts of the report.

pub mod agent;
pub mod cli;
pub mod current;
pub mod error;
pub mod exec;
pub mod facts;
pub mod fsutil;
pub mod host;
pub mod inotify;
pub mod items;
pub mod loader;
pub mod log;
pub mod notify;
pub mod pass;
pub mod schedule;
pub mod signals;

pub use error::{Error, Result};

/// The agent's version, as printed by `node-agent --version` and reported in the current state.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
