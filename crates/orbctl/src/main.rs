//! `orbctl`: configure an Orb, read and write its secrets and files, validate its desired state,
//! and run local machines. Every command that changes the Orb does so as one commit.

mod args;
mod cmd;
mod context;
mod input;
mod logging;
mod picker;
mod yaml_tree;

use clap::Parser;

fn main() {
    let args = args::Cli::parse();
    logging::init(args.global.verbose);
    if let Err(e) = cmd::run(args) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
