//! One error type for the whole crate: every variant names the place (file, command, machine)
//! and says what to do about it, because the people reading these run real hosts.

use std::io;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "orb-machines must run as root (effective uid is {euid}): it creates network namespaces, \
         bridges, overlay mounts and containers; run it with sudo or as root"
    )]
    NotRoot { euid: u32 },

    #[error(
        "`{tool}` not found in PATH: install the Debian package `{package}` (apt-get install {package})"
    )]
    MissingTool {
        tool: &'static str,
        package: &'static str,
    },

    #[error("invalid {what} {value:?}: {hint}")]
    InvalidName {
        what: &'static str,
        value: String,
        hint: &'static str,
    },

    #[error(
        "group {name:?} already exists (state in {}): pick another name or remove it with \
         `orbctl local down --name {name}`",
        state.display()
    )]
    NameInUse { name: String, state: PathBuf },

    #[error("no group named {name:?} (no state in {}); `orbctl local up --name {name}` creates one", state.display())]
    NoSuchGroup { name: String, state: PathBuf },

    #[error(
        "group {group:?} has no machine {id:?}; `orbctl local list --name {group}` shows its machines"
    )]
    NoSuchMachine { group: String, id: String },

    #[error("group {group:?} already has a machine {id:?}; destroy it first or pick another id")]
    MachineExists { group: String, id: String },

    #[error(
        "no free /24 subnet in {range}: every candidate collides with a host address or route or \
         another group; remove unused groups with `orbctl local down --name NAME`"
    )]
    NoFreeSubnet { range: String },

    #[error("group {group:?} has no free address left in {subnet}; destroy unused machines first")]
    NoFreeAddress { group: String, subnet: String },

    #[error("network interface or namespace {name:?} already exists on this host: {hint}")]
    LinkExists { name: String, hint: &'static str },

    #[error("`{command}` failed ({status}): {stderr}")]
    Command {
        command: String,
        status: String,
        stderr: String,
    },

    #[error("cannot run `{command}`: {source}")]
    Spawn {
        command: String,
        #[source]
        source: io::Error,
    },

    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("timed out after {secs}s waiting for {what}; {hint}")]
    Timeout {
        what: String,
        secs: u64,
        hint: String,
    },

    #[error("bad state file {}: {message}; `orbctl local down --name GROUP` removes a group even with damaged state", path.display())]
    State { path: PathBuf, message: String },

    #[error(
        "machine {id:?} of group {group:?} is not running; `Machine::start` (or destroy and recreate) brings it back"
    )]
    NotRunning { group: String, id: String },

    #[error("invalid SSH public key: {hint}")]
    InvalidKey { hint: &'static str },

    #[error("apt sources of this host: {message}")]
    AptSources { message: String },

    #[error(
        "the git user on this host has login shell {shell:?}, so git over SSH cannot run; set it to /usr/bin/git-shell (usermod -s /usr/bin/git-shell git)"
    )]
    GitUserShell { shell: String },

    #[error("tearing down group {group:?} left problems: {}", problems.join("; "))]
    Teardown {
        group: String,
        problems: Vec<String>,
    },
}

impl Error {
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io {
            action,
            path,
            source,
        }
    }
}
