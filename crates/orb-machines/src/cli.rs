//! `orbctl local …` (and the `orb-machines` binary): groups of machines for people.

use crate::{Group, GroupSpec, Host, MachineState};
use anyhow::{Context, Result, bail};
use std::path::PathBuf;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    Table,
    Json,
}

#[derive(Debug, clap::Subcommand)]
pub enum LocalCommand {
    /// Create a group of Debian machines on this host (needs root).
    Up {
        /// Group name (a-z, 0-9, '-').
        #[arg(long)]
        name: String,
        /// Number of machines (named m1, m2, ...).
        #[arg(long, default_value_t = 3)]
        machines: u32,
        /// Public key file (authorized for user orbiter on every machine).
        #[arg(long)]
        pubkey: PathBuf,
        /// Give machines CAP_NET_ADMIN (e.g. for keepalived).
        #[arg(long)]
        net_admin: bool,
    },
    /// List the machines of a group: id, hostname, ip, state.
    List {
        #[arg(long)]
        name: String,
        #[arg(short = 'o', long, value_enum, default_value_t = OutputFormat::Table)]
        output: OutputFormat,
    },
    /// SSH into a machine as orbiter (host key pinned).
    Ssh {
        #[arg(long)]
        name: String,
        /// Machine id (see `list`).
        machine: String,
        /// Private key; defaults to the --pubkey file of `up` without ".pub".
        #[arg(long)]
        key: Option<PathBuf>,
        /// Command to run instead of a login shell.
        #[arg(last = true)]
        command: Vec<String>,
    },
    /// Cut a machine's power (its processes die at once; it stays down until started).
    PowerCut {
        #[arg(long)]
        name: String,
        machine: String,
    },
    /// Remove the group: every machine, namespace, link, bridge, mount and process.
    Down {
        #[arg(long)]
        name: String,
    },
}

pub fn run(cmd: LocalCommand) -> Result<()> {
    let host = Host::new()?;
    match cmd {
        LocalCommand::Up {
            name,
            machines,
            pubkey,
            net_admin,
        } => {
            let key = std::fs::read_to_string(&pubkey)
                .with_context(|| format!("reading public key {}", pubkey.display()))?;
            let group = Group::up(
                &host,
                &GroupSpec {
                    name: name.clone(),
                    pubkey: key,
                    net_admin,
                },
            )
            .with_context(|| format!("creating group {name:?}"))?;
            let marker = host
                .state_root()
                .join("groups")
                .join(&name)
                .join("pubkey-path");
            std::fs::write(&marker, pubkey.display().to_string())
                .with_context(|| format!("writing {}", marker.display()))?;
            let ids: Vec<String> = (1..=machines).map(|i| format!("m{i}")).collect();
            let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
            if let Err(e) = group.create_machines(&refs) {
                let _ = group.down();
                return Err(e).with_context(|| {
                    format!("creating the machines of group {name:?} (the group was removed again)")
                });
            }
            print_table(&group)?;
            println!("apt repository: {}", group.apt_url());
        }
        LocalCommand::List { name, output } => {
            let group = Group::attach(&host, &name)?;
            match output {
                OutputFormat::Json => {
                    let list: Vec<serde_json::Value> = group
                        .machines()?
                        .into_iter()
                        .map(|m| serde_json::json!({"name": m.id, "hostname": m.hostname, "ip": m.ip, "state": m.state}))
                        .collect();
                    println!("{}", serde_json::to_string_pretty(&list)?);
                }
                OutputFormat::Table => print_table(&group)?,
            }
        }
        LocalCommand::Ssh {
            name,
            machine,
            key,
            command,
        } => {
            let group = Group::attach(&host, &name)?;
            let m = group.machine(&machine)?;
            let key = key.or_else(|| {
                let p = std::fs::read_to_string(
                    host.state_root()
                        .join("groups")
                        .join(&name)
                        .join("pubkey-path"),
                )
                .ok()?;
                let private = PathBuf::from(p.trim().strip_suffix(".pub")?);
                private.exists().then_some(private)
            });
            let mut c = crate::machine::ssh_command(&m, key.as_deref());
            // A terminal for interactive use only; scripts get plain output.
            if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
                c.arg("-t");
            }
            c.args(&command);
            let status = c.status().context("running ssh")?;
            if !status.success() {
                bail!("ssh to {machine} exited with {status}");
            }
        }
        LocalCommand::PowerCut { name, machine } => {
            Group::attach(&host, &name)?
                .machine(&machine)?
                .power_cut()?;
        }
        LocalCommand::Down { name } => {
            Group::remove(&host, &name)?;
            println!("group {name} removed");
        }
    }
    Ok(())
}

fn print_table(group: &Group) -> Result<()> {
    println!("{:<12} {:<12} {:<15} STATE", "NAME", "HOSTNAME", "IP");
    for m in group.machines()? {
        let state = match m.state {
            MachineState::Running => "running",
            MachineState::Stopped => "stopped",
            MachineState::Unreachable => "unreachable",
        };
        println!(
            "{:<12} {:<12} {:<15} {state}",
            m.id,
            m.hostname,
            m.ip.to_string()
        );
    }
    Ok(())
}
