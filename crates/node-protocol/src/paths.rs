//! Where Orbiter and the agent meet on a machine.

/// The node-desired document Orbiter writes (0600: it may hold secrets).
pub const DESIRED: &str = "/etc/node-agent/desired.yml";
/// The node-current report the agent writes and Orbiter reads back.
pub const CURRENT: &str = "/var/lib/node-agent/current.yml";
/// The agent's own directories.
pub const CONFIG_DIR: &str = "/etc/node-agent";
pub const STATE_DIR: &str = "/var/lib/node-agent";
/// The installed binary.
pub const BINARY: &str = "/usr/local/bin/node-agent";
/// Where a new binary is uploaded before the install script installs it: a root-only (0700)
/// directory the upload script creates, never a world-writable one such as /var/tmp. Orbiter
/// uploads under a name `mktemp` makes up there ([`crate::install::upload_script`]).
pub const UPLOAD_DIR: &str = "/var/lib/node-agent/upload";
/// The upload the install script takes when it is given none (a fixed name inside
/// [`UPLOAD_DIR`], for whoever places the binary there as root).
pub const UPLOAD: &str = "/var/lib/node-agent/upload/node-agent";
pub const UNIT_NAME: &str = "node-agent.service";
pub const UNIT_PATH: &str = "/etc/systemd/system/node-agent.service";

/// Paths the agent writes as a whole from several items; a `file` item may not claim them.
pub const SYSCTL_CONF: &str = "/etc/sysctl.d/90-node-agent.conf";
pub const MODULES_CONF: &str = "/etc/modules-load.d/node-agent.conf";
pub const SSHD_DROPIN: &str = "/etc/ssh/sshd_config.d/00-node-agent.conf";
