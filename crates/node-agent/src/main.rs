//! `node-agent` command line: run (the daemon), plan, status, --version.

use node_agent::agent::{self, state_dir};
use node_agent::cli::{self, Command, Format};
use node_agent::current;
use node_agent::host::Host;
use node_agent::loader::Loader;
use node_agent::{Result, pass};
use node_protocol::ItemState;
use serde::Serialize;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = cli::parse(&args).and_then(|cmd| match cmd {
        Command::Version => {
            println!("node-agent {}", node_agent::VERSION);
            Ok(())
        }
        Command::Help => {
            print!("{}", cli::USAGE);
            Ok(())
        }
        Command::Run(opts) => agent::run(&opts),
        Command::Plan(opts, format) => plan(&opts, format),
        Command::Status(path, format) => status(&path, format),
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("node-agent: {e}");
            ExitCode::FAILURE
        }
    }
}

#[derive(Serialize)]
struct PlanOut {
    generation: Option<u64>,
    changesallowed: bool,
    desired_error: Option<String>,
    items: Vec<ItemState>,
}

/// What `run` would do now, from the same observation and planning code, without applying.
fn plan(opts: &agent::Options, format: Format) -> Result<()> {
    let state = state_dir(&opts.current);
    let host = Host::with_root(&opts.root, &state);
    let mut loader = Loader::new(&opts.desired, &state);
    loader.reload(false)?;
    let result = match &loader.enforced {
        Some(d) => pass::run_pass(&host, d, false, &|| false),
        None => pass::PassResult::default(),
    };
    let out = PlanOut {
        generation: loader.enforced.as_ref().map(|d| d.generation),
        changesallowed: loader.enforced.as_ref().is_some_and(|d| d.changes_allowed),
        desired_error: loader.error.clone(),
        items: result.items.iter().map(ItemState::from).collect(),
    };
    if format == Format::Json {
        println!(
            "{}",
            serde_json::to_string_pretty(&out)
                .map_err(|e| node_agent::Error::new(e.to_string()))?
        );
        return Ok(());
    }
    if let Some(e) = &out.desired_error {
        println!("desired error: {e}");
    }
    match out.generation {
        None => println!("no valid desired state: nothing would be done"),
        Some(g) => println!(
            "generation {g}{}",
            if out.changesallowed {
                ""
            } else {
                " (changes not allowed: the agent only reports)"
            }
        ),
    }
    let mut changes = 0;
    for i in &out.items {
        if i.in_sync {
            continue;
        }
        println!("{}: {}", i.id, i.observed);
        for p in &i.pending {
            println!("  + {p}");
            changes += 1;
        }
        if let Some(e) = &i.last_error {
            println!("  ! {e}");
        }
    }
    let in_sync = out.items.iter().filter(|i| i.in_sync).count();
    let errors = out.items.iter().filter(|i| i.last_error.is_some()).count();
    println!("{changes} action(s), {errors} error(s), {in_sync} item(s) in sync");
    Ok(())
}

fn status(path: &std::path::Path, format: Format) -> Result<()> {
    let current = current::read(path)?;
    match format {
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(&current)
                .map_err(|e| node_agent::Error::new(e.to_string()))?
        ),
        Format::Text => print!("{}", current.render_text()),
    }
    Ok(())
}
