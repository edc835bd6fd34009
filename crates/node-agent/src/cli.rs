//! Command-line parsing for the four subcommands (hand-written: a parser crate would cost
//! more binary and memory than the whole grammar).

use crate::agent::Options;
use crate::error::{Error, Result};
use std::path::PathBuf;
use std::time::Duration;

pub const USAGE: &str = "usage:
  node-agent run    [--desired PATH] [--current PATH] [--drift-interval 60s] [--root DIR]
  node-agent plan   [--desired PATH] [--current PATH] [--root DIR] [-o text|json]
  node-agent status [--current PATH] [-o text|json]
  node-agent --version

  --desired         node-desired state (default /etc/node-agent/desired.yml)
  --current         node-current state; its directory holds the agent's state
                    (default /var/lib/node-agent/current.yml)
  --drift-interval  how often everything is re-checked (e.g. 30s, 5m; default 60s)
  --root            manage the tree under DIR instead of the system (tests, benchmarks;
                    items that need commands such as packages or units then fail)
";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
}

#[derive(Debug, Clone)]
pub enum Command {
    Run(Options),
    Plan(Options, Format),
    Status(PathBuf, Format),
    Version,
    Help,
}

/// Parses `60s`, `5m`, `1h`, `500ms` or plain seconds.
pub fn parse_duration(s: &str) -> Result<Duration> {
    let bad = || Error::new(format!("`{s}` is not a duration; hint: e.g. 30s, 5m, 1h"));
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let n: u64 = s[..split].parse().map_err(|_| bad())?;
    // Minutes and hours beyond u64 seconds are not a duration either (no overflow).
    let secs = |factor: u64| {
        n.checked_mul(factor)
            .map(Duration::from_secs)
            .ok_or_else(bad)
    };
    let d = match &s[split..] {
        "" | "s" => Duration::from_secs(n),
        "ms" => Duration::from_millis(n),
        "m" => secs(60)?,
        "h" => secs(3600)?,
        _ => return Err(bad()),
    };
    if d.is_zero() {
        return Err(Error::new("the drift interval must be more than zero"));
    }
    Ok(d)
}

pub fn parse(args: &[String]) -> Result<Command> {
    let Some(sub) = args.first() else {
        return Ok(Command::Help);
    };
    let sub = sub.as_str();
    match sub {
        "--version" | "-V" | "version" => return Ok(Command::Version),
        "--help" | "-h" | "help" => return Ok(Command::Help),
        "run" | "plan" | "status" => {}
        other => return Err(Error::new(format!("unknown command `{other}`\n{USAGE}"))),
    }
    let mut opts = Options::default();
    let mut format = Format::Text;
    let mut it = args[1..].iter();
    while let Some(flag) = it.next() {
        let (name, inline) = match flag.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n, Some(v.to_string())),
            _ => (flag.as_str(), None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| it.next().cloned())
                .ok_or_else(|| Error::new(format!("{name} needs a value")))
        };
        match (sub, name) {
            ("run" | "plan", "--desired") => opts.desired = value()?.into(),
            (_, "--current") => opts.current = value()?.into(),
            ("run", "--drift-interval") => opts.drift_interval = parse_duration(&value()?)?,
            ("run" | "plan", "--root") => opts.root = value()?.into(),
            ("plan" | "status", "-o" | "--output") => {
                format = match value()?.as_str() {
                    "text" => Format::Text,
                    "json" => Format::Json,
                    f => return Err(Error::new(format!("-o {f}: expected text or json"))),
                }
            }
            (_, "--help" | "-h") => return Ok(Command::Help),
            _ => {
                return Err(Error::new(format!(
                    "`{flag}` is not an option of `node-agent {sub}`\n{USAGE}"
                )));
            }
        }
    }
    Ok(match sub {
        "run" => Command::Run(opts),
        "plan" => Command::Plan(opts, format),
        _ => Command::Status(opts.current, format),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::DEFAULT_CURRENT;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn parses_commands() {
        match parse(&args(
            "run --desired /d.yml --current=/s/c.yml --drift-interval 5m",
        ))
        .unwrap()
        {
            Command::Run(o) => {
                assert_eq!(o.desired, PathBuf::from("/d.yml"));
                assert_eq!(o.current, PathBuf::from("/s/c.yml"));
                assert_eq!(o.drift_interval, Duration::from_secs(300));
                assert_eq!(o.root, PathBuf::from("/"));
            }
            c => panic!("{c:?}"),
        }
        assert!(
            matches!(parse(&args("status -o json")).unwrap(), Command::Status(p, Format::Json) if p.as_path() == std::path::Path::new(DEFAULT_CURRENT))
        );
        assert!(matches!(
            parse(&args("--version")).unwrap(),
            Command::Version
        ));
        assert!(
            matches!(parse(&args("plan -o json --root /tmp/r")).unwrap(), Command::Plan(o, Format::Json) if o.root.as_path() == std::path::Path::new("/tmp/r"))
        );
        assert!(
            parse(&args("status --drift-interval 5s"))
                .unwrap_err()
                .message()
                .contains("not an option of `node-agent status`")
        );
        assert!(parse(&args("frobnicate")).is_err());
        assert!(
            parse(&args("run --desired"))
                .unwrap_err()
                .message()
                .contains("needs a value")
        );
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("60").unwrap(), Duration::from_secs(60));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("2h").unwrap(), Duration::from_secs(7200));
        assert!(
            parse_duration("0s").is_err()
                && parse_duration("5 minutes").is_err()
                && parse_duration("").is_err()
        );
    }

    /// Found by fuzzing (fuzz/fuzz_targets/agent_outputs.rs): `n * 60` overflowed.
    #[test]
    fn durations_beyond_u64_seconds_are_errors_not_overflows() {
        for s in [
            "1111111111111111115m",
            "18446744073709551615h",
            "307445734561825861m",
        ] {
            let e = parse_duration(s).unwrap_err().to_string();
            assert!(e.contains("is not a duration"), "{s}: {e}");
        }
        assert_eq!(
            parse_duration("307445734561825860m").unwrap(),
            Duration::from_secs(307_445_734_561_825_860 * 60)
        );
        assert_eq!(
            parse_duration("18446744073709551615s").unwrap(),
            Duration::from_secs(u64::MAX)
        );
    }
}
