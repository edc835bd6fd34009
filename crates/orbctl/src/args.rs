//! The command line, as clap types. Behaviour lives in `cmd/`.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "orbctl",
    version,
    about = "Operate an Orb: desired state in Git, secrets encrypted with the Orb's masterkey"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Args, Debug, Clone)]
pub struct Global {
    /// Orb config file [default: $ORBCONFIG, else ~/.orb/config]
    #[arg(short = 'f', long = "orbconfig", global = true)]
    pub orbconfig: Option<PathBuf>,
    /// Trust the repository's SSH host key with this fingerprint (SHA256:…) on first contact
    #[arg(long, global = true, value_name = "FINGERPRINT")]
    pub accept_host_key: Option<String>,
    /// More log lines: -v debug, -vv trace (RUST_LOG, e.g. `orbiter=debug`, wins)
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Point the orb config at a repository, check read and write access, set or rotate the masterkey
    Configure(ConfigureArgs),
    /// Encrypt a value into the secret at PATH (`<provider or cluster id>.<field>`)
    Writesecret(WriteSecretArgs),
    /// Decrypt the secret at PATH to stdout, byte for byte (also secrets Orbiter generated, such
    /// as a cluster's `<id>.ca`, `<id>.clientcert`, `<id>.clientkey`; `orbiter.*` ones stay internal)
    Readsecret {
        /// e.g. lab.bootstrapkeyprivate; omitted on a terminal: choose from a list
        path: Option<String>,
    },
    /// Secrets of the Orb
    #[command(subcommand)]
    Secrets(SecretsCommand),
    /// Files of the Orb repository
    #[command(subcommand)]
    File(FileCommand),
    /// Check an orbiter.yml: a local FILE, or the repository's when none is given
    Validate { file: Option<PathBuf> },
    /// Convert an orbos orbiter.yml (old secret format) into this Orb's orbiter.yml
    ImportOrbos(ImportArgs),
    /// What Orbiter would do now: observe every machine, print the plan, change nothing
    Plan {
        #[arg(short = 'o', long, value_enum, default_value_t = Output::Text)]
        output: Output,
    },
    /// Bring the Orb up from here, then hand over to an Orbiter daemon (on this host for Local providers)
    Takeoff(TakeoffArgs),
    /// Remove what Orbiter installed, destroy Local machines, commit that the Orb was destroyed
    Teardown {
        /// Do not ask for confirmation
        #[arg(long)]
        yes: bool,
    },
    /// The Orbiter daemon
    #[command(subcommand)]
    Orbiter(OrbiterCommand),
    /// Machines of the Orb
    #[command(subcommand)]
    Node(NodeCommand),
    /// Where each pool's rollout stands, and a person's say over it
    #[command(subcommand)]
    Rollout(RolloutCommand),
    /// Clusters of the Orb (etcd)
    #[command(subcommand)]
    Cluster(ClusterCommand),
    /// A web UI over one or many Orbs, read from their Git repositories only (localhost by default)
    MissionControl(MissionControlArgs),
    /// The load balancers: who holds each VIP, each backend as HAProxy sees it
    #[command(subcommand)]
    Lb(LbCommand),
    /// The Orb repository as this clone sees it
    #[command(subcommand)]
    Repo(RepoCommand),
    /// Debian machines on this host (systemd-nspawn), for trying things and for the Local provider
    #[command(subcommand)]
    Local(orb_machines::cli::LocalCommand),
}

#[derive(Args, Debug)]
pub struct ConfigureArgs {
    /// Repository URL: ssh://user@host[:port]/path, user@host:path, file:///path, a path, https://…
    #[arg(long)]
    pub repourl: String,
    /// Private SSH deploy key with write access (only for ssh URLs)
    #[arg(long, value_name = "FILE")]
    pub repokey_file: Option<PathBuf>,
    #[command(flatten)]
    pub masterkey: MasterkeySource,
}

/// At most one source of the masterkey [default: keep the configured one, or generate one].
/// On an existing Orb a new one re-encrypts every secret in one commit.
#[derive(Args, Debug, Clone, Default)]
#[group(required = false, multiple = false)]
pub struct MasterkeySource {
    /// The masterkey itself (visible in the process list and shell history; prefer the others)
    #[arg(long)]
    pub masterkey: Option<String>,
    /// Read the masterkey from this file (a trailing newline is ignored)
    #[arg(long, value_name = "FILE")]
    pub masterkey_file: Option<PathBuf>,
    /// Read the masterkey from standard input (a trailing newline is ignored)
    #[arg(long)]
    pub masterkey_stdin: bool,
}

/// Exactly one source of a value.
#[derive(Args, Debug, Clone)]
#[group(required = true, multiple = false)]
pub struct ValueSource {
    /// The value itself (visible in your shell history and process list; prefer --file or --stdin)
    #[arg(long)]
    pub value: Option<String>,
    /// Read the value from this file
    #[arg(long, short = 's')]
    pub file: Option<PathBuf>,
    /// Read the value from standard input
    #[arg(long)]
    pub stdin: bool,
}

#[derive(Args, Debug)]
pub struct WriteSecretArgs {
    /// e.g. lab.bootstrapkeyprivate; omitted on a terminal: choose from a list
    pub path: Option<String>,
    #[command(flatten)]
    pub source: ValueSource,
}

#[derive(Subcommand, Debug)]
pub enum SecretsCommand {
    /// Every secret path and whether it is set (never the values)
    List,
}

#[derive(Subcommand, Debug)]
pub enum FileCommand {
    /// Print a file of the repository as committed (secrets stay encrypted)
    Print { path: String },
    /// Edit a file in $VISUAL/$EDITOR; it is validated before it is pushed
    Edit { path: String },
    /// Set KEY.PATH (dot-separated, list items by index) in a YAML file of the repository
    Patch {
        path: String,
        key_path: String,
        #[command(flatten)]
        source: ValueSource,
    },
    /// Remove files from the repository
    Remove {
        #[arg(required = true)]
        paths: Vec<String>,
    },
}

#[derive(Args, Debug)]
pub struct ImportArgs {
    /// The orbos orbiter.yml
    pub file: PathBuf,
    /// File holding the orbos masterkey (a trailing newline is ignored)
    #[arg(long, value_name = "FILE")]
    pub orbos_masterkey_file: PathBuf,
    /// Only print the converted orbiter.yml (secrets re-encrypted), do not commit it
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    Text,
    Json,
}

#[derive(Args, Debug, Clone)]
pub struct DaemonArgs {
    /// Address for /metrics and /healthz
    #[arg(long, default_value = "127.0.0.1:9187")]
    pub listen: std::net::SocketAddr,
    /// Seconds between iterations (each starts with a fetch of the repository)
    #[arg(long, default_value_t = 5)]
    pub interval: u64,
}

#[derive(Args, Debug)]
pub struct TakeoffArgs {
    #[command(flatten)]
    pub daemon: DaemonArgs,
    /// Give up when the Orb has not converged after this many seconds
    #[arg(long, default_value_t = 1800)]
    pub timeout: u64,
    /// Converge, but do not start the Orbiter daemon afterwards
    #[arg(long)]
    pub no_handover: bool,
    /// The machine (`provider.machine`) that hosts the Orbiter when it goes into the Orb;
    /// default: the first ready machine of a Static provider
    #[arg(long, value_name = "ID")]
    pub orbiter_on: Option<String>,
    /// Trust every SSH host key met for the first time that neither orbiter.yml (`hostkey:`)
    /// nor the provider vouches for (for automation; on a terminal takeoff asks instead)
    #[arg(long)]
    pub accept_new_hostkeys: bool,
}

#[derive(Subcommand, Debug)]
pub enum ClusterCommand {
    /// Restore a snapshot into a temporary etcd on a member machine and report what it verified
    /// (checksum, revision, keys served); the cluster itself is not touched
    RestoreDrill {
        /// Cluster id in orbiter.yml
        cluster: String,
        /// MACHINE:/PATH of the snapshot [default: the last backup in the cluster's record]
        #[arg(long)]
        snapshot: Option<String>,
        /// The machine to drill on (`provider.machine`) [default: the first healthy member]
        #[arg(long)]
        on: Option<String>,
    },
    /// Rotate every CA and certificate of a cluster, one member at a time without losing a
    /// connection (sets spec.rotatecerts in orbiter.yml to now; Orbiter also rotates on its own
    /// before certificates expire). Clients read the new CA bundle `<id>.ca` at once and their
    /// new certificates once every member trusts the new CA
    RotateCerts {
        /// Cluster id in orbiter.yml
        cluster: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum RepoCommand {
    /// Accept a rewritten history (a force-push): until then every command refuses the
    /// repository. Shows what changed first; asks on a terminal unless --yes
    AcceptHistory {
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum OrbiterCommand {
    /// Reconcile forever (what takeoff starts)
    Run(DaemonArgs),
}

#[derive(Subcommand, Debug)]
pub enum NodeCommand {
    /// Every machine with its state as last committed by Orbiter
    List {
        #[arg(short = 'o', long, value_enum, default_value_t = Output::Text)]
        output: Output,
    },
    /// Run a command on a machine (a login shell without one), with the Orb's maintenance key
    Exec {
        /// `<provider>.<machine>`
        id: String,
        #[arg(last = true)]
        command: Vec<String>,
    },
    /// Reboot machines, one per pool at a time (sets rebootrequired in orbiter.yml)
    Reboot {
        #[arg(required = true)]
        ids: Vec<String>,
    },
    /// Replace machines by fresh ones (sets replacementrequired in orbiter.yml)
    Replace {
        #[arg(required = true)]
        ids: Vec<String>,
    },
}

#[derive(Args, Debug)]
pub struct MissionControlArgs {
    /// Where to listen; another address than loopback needs --token-file
    #[arg(long, default_value = "127.0.0.1:8480")]
    pub listen: std::net::SocketAddr,
    /// An orb config to show (repeat for several); the current one when none is given
    #[arg(long = "orb", value_name = "ORBCONFIG")]
    pub orbs: Vec<PathBuf>,
    /// A file (mode 0600) holding the token every request must present
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum LbCommand {
    /// Every VIP (or those of one `<provider>.<pool>`): its holder, split brain, every
    /// transport's backends, as Orbiter last recorded them
    Status {
        /// `<provider>.<pool>`
        pool: Option<String>,
        #[arg(short = 'o', long, value_enum, default_value_t = Output::Text)]
        output: Output,
    },
}

#[derive(Subcommand, Debug)]
pub enum RolloutCommand {
    /// Every pool's rollout (or one pool's): revision, waves done, each machine's phase
    Status {
        /// `<provider>.<pool>`
        pool: Option<String>,
        #[arg(short = 'o', long, value_enum, default_value_t = Output::Text)]
        output: Output,
    },
    /// Start no new wave in the pool until `resume` (machines changing finish)
    Pause {
        /// `<provider>.<pool>`
        pool: String,
    },
    /// Lift a pause; continue a stopped rollout (its failed machines are changed again)
    Resume {
        /// `<provider>.<pool>`
        pool: String,
    },
    /// Put every machine the pool's current rollout changed back on what it ran before; the
    /// pool then waits for a new revision
    Undo {
        /// `<provider>.<pool>`
        pool: String,
    },
}
