//! Log lines with levels, through `tracing`: `RUST_LOG` (e.g. `orbiter=debug`) or `-v` (debug)
//! and `-vv` (trace) choose what is shown, `info` by default. Under systemd (`JOURNAL_STREAM`
//! set) each line starts with its syslog priority (`<6>`), so journald records levels and adds
//! the time itself; on a terminal lines are short; in a log file they carry a UTC timestamp.
//! A step's machine prefixes its lines (`lab.s1: …`). Nothing here ever formats a secret:
//! callers log summaries, never documents or keys.

use std::fmt;
use std::io::IsTerminal as _;
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

/// Where lines go, which decides how they look.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Sink {
    Journal,
    Terminal,
    File,
}

struct Lines {
    sink: Sink,
}

impl<S, N> FormatEvent<S, N> for Lines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut w: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let level = *event.metadata().level();
        match self.sink {
            Sink::Journal => write!(w, "<{}>", syslog_priority(level))?,
            Sink::File => write!(
                w,
                "{} ",
                node_protocol::timefmt::format_rfc3339(node_protocol::timefmt::now_secs())
            )?,
            Sink::Terminal => {}
        }
        if level != Level::INFO {
            write!(w, "{}: ", level.as_str().to_ascii_lowercase())?;
        }
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                let ext = span.extensions();
                if let Some(fields) = ext.get::<FormattedFields<N>>()
                    && !fields.is_empty()
                {
                    let f = fields.as_str();
                    write!(w, "{}: ", f.strip_prefix("id=").unwrap_or(f))?;
                }
            }
        }
        ctx.field_format().format_fields(w.by_ref(), event)?;
        writeln!(w)
    }
}

fn syslog_priority(level: Level) -> u8 {
    match level {
        Level::ERROR => 3,
        Level::WARN => 4,
        Level::INFO => 6,
        Level::DEBUG | Level::TRACE => 7,
    }
}

/// Installs the subscriber; `verbose` counts `-v` flags.
pub fn init(verbose: u8) {
    let default = match verbose {
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    let filter = match std::env::var("RUST_LOG") {
        Ok(v) if !v.trim().is_empty() => EnvFilter::new(v),
        _ => EnvFilter::new(default),
    };
    let sink = if std::env::var_os("JOURNAL_STREAM").is_some() {
        Sink::Journal
    } else if std::io::stderr().is_terminal() {
        Sink::Terminal
    } else {
        Sink::File
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .event_format(Lines { sink })
        .try_init();
}
