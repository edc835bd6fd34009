//! `orb-machines`: the `orbctl local` commands as a stand-alone binary (tests, benchmarks).

use clap::{Parser, Subcommand};
use orb_machines::cli::{self, LocalCommand};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "orb-machines",
    about = "Debian machines (systemd-nspawn) on this host",
    version
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    #[command(flatten)]
    Local(LocalCommand),
    /// Build the base image if missing or outdated and print its root filesystem path.
    BaseImage {
        /// Cache directory (default /var/cache/orb-machines).
        #[arg(long)]
        cache_dir: Option<PathBuf>,
    },
}

fn main() {
    let result = match Cli::parse().cmd {
        Cmd::Local(c) => cli::run(c),
        Cmd::BaseImage { cache_dir } => (|| {
            let host = match cache_dir {
                Some(c) => orb_machines::Host::with_dirs(orb_machines::host::STATE_ROOT, c)?,
                None => orb_machines::Host::new()?,
            };
            println!("{}", host.base_image()?.rootfs().display());
            Ok(())
        })(),
    };
    if let Err(e) = result {
        eprintln!("orb-machines: {e:#}");
        std::process::exit(1);
    }
}
