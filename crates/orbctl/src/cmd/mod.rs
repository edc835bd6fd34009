//! One module per command group; `run` dispatches.

mod cluster;
mod configure;
mod file;
mod import_orbos;
mod lb;
mod mission_control;
mod node;
mod orbiter;
mod repo;
mod rollout;
mod secrets;
mod validate;

use crate::args::{
    Cli, ClusterCommand, Command, FileCommand, LbCommand, NodeCommand, OrbiterCommand, RepoCommand,
    RolloutCommand, SecretsCommand,
};
use anyhow::Result;
use orb_repo::UpdateOutcome;

pub fn run(cli: Cli) -> Result<()> {
    let g = &cli.global;
    match cli.command {
        Command::Configure(a) => configure::run(g, a),
        Command::Writesecret(a) => secrets::write(g, a),
        Command::Readsecret { path } => secrets::read(g, path),
        Command::Secrets(SecretsCommand::List) => secrets::list(g),
        Command::File(FileCommand::Print { path }) => file::print(g, &path),
        Command::File(FileCommand::Edit { path }) => file::edit(g, &path),
        Command::File(FileCommand::Patch {
            path,
            key_path,
            source,
        }) => file::patch(g, &path, &key_path, &source),
        Command::File(FileCommand::Remove { paths }) => file::remove(g, &paths),
        Command::Validate { file } => validate::run(g, file.as_deref()),
        Command::ImportOrbos(a) => import_orbos::run(g, a),
        Command::Plan { output } => orbiter::plan(g, output),
        Command::Takeoff(a) => orbiter::takeoff(g, a),
        Command::Teardown { yes } => orbiter::teardown(g, yes),
        Command::Orbiter(OrbiterCommand::Run(a)) => orbiter::run(g, a),
        Command::Node(NodeCommand::List { output }) => node::list(g, output),
        Command::Node(NodeCommand::Exec { id, command }) => node::exec(g, &id, &command),
        Command::Node(NodeCommand::Reboot { ids }) => node::flag(g, &ids, true),
        Command::Node(NodeCommand::Replace { ids }) => node::flag(g, &ids, false),
        Command::Cluster(ClusterCommand::RestoreDrill {
            cluster,
            snapshot,
            on,
        }) => cluster::restore_drill(g, &cluster, snapshot.as_deref(), on.as_deref()),
        Command::Cluster(ClusterCommand::RotateCerts { cluster }) => {
            cluster::rotate_certs(g, &cluster)
        }
        Command::Lb(LbCommand::Status { pool, output }) => lb::status(g, pool.as_deref(), output),
        Command::MissionControl(a) => mission_control::run(g, &a),
        Command::Rollout(RolloutCommand::Status { pool, output }) => {
            rollout::status(g, pool.as_deref(), output)
        }
        Command::Rollout(RolloutCommand::Pause { pool }) => {
            rollout::ask(g, &pool, rollout::Ask::Pause)
        }
        Command::Rollout(RolloutCommand::Resume { pool }) => {
            rollout::ask(g, &pool, rollout::Ask::Resume)
        }
        Command::Rollout(RolloutCommand::Undo { pool }) => {
            rollout::ask(g, &pool, rollout::Ask::Undo)
        }
        Command::Repo(RepoCommand::AcceptHistory { yes }) => repo::accept_history(g, yes),
        Command::Local(c) => orb_machines::cli::run(c),
    }
}

/// [`OrbRepo::update`] with anyhow errors in and out, so the person sees the derive error itself
/// rather than a wrapper.
pub(crate) use ::orbiter::engine::update;

pub(crate) fn report(outcome: &UpdateOutcome, what: &str) {
    match outcome {
        UpdateOutcome::Unchanged => eprintln!("{what}: unchanged, nothing committed"),
        UpdateOutcome::Committed { commit, .. } => {
            eprintln!(
                "{what}: committed {} and pushed",
                &commit[..commit.len().min(12)]
            )
        }
    }
}
