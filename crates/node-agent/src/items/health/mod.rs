//! Health checks: observe-only items. Every pass runs the check (an HTTP GET, a TCP connect
//! or a shell command, each within its timeout) and reports `healthy` or `failing: <reason>`;
//! the item is in sync while it is healthy, and nothing on the machine is ever changed. A
//! command's output is never read (it may hold secrets): only its exit status counts.

mod http;
#[cfg(test)]
mod tests;

pub use http::parse_status_line;

use crate::error::{Error, Result};
use crate::exec::{self, Cmd};
use crate::host::Host;
use node_protocol::{Health, HealthCheck, HostPort};
use std::fmt;
use std::io::ErrorKind;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observed {
    Healthy,
    /// Why, in a few words (`connection refused`, `HTTP 503`, `exit 1`, `timed out after 5s`).
    Failing(String),
}

impl Observed {
    pub fn is_healthy(&self) -> bool {
        *self == Observed::Healthy
    }
}

impl fmt::Display for Observed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Observed::Healthy => write!(f, "healthy"),
            Observed::Failing(why) => write!(f, "failing: {why}"),
        }
    }
}

/// Why a check failed.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Failure {
    TimedOut,
    Reason(String),
}

type CheckResult<T = ()> = std::result::Result<T, Failure>;

/// Runs the check once. An error is an item that cannot be checked at all (it does not
/// validate); everything the check itself finds is in [`Observed`].
pub fn observe(host: &Host, h: &Health) -> Result<Observed> {
    let check = h.check().map_err(Error::new)?;
    let timeout = h.timeout().map_err(Error::new)?;
    Ok(match run_check(host, &check, timeout) {
        Ok(()) => Observed::Healthy,
        Err(Failure::TimedOut) => {
            Observed::Failing(format!("timed out after {}", h.timeout_text()))
        }
        Err(Failure::Reason(why)) => Observed::Failing(why),
    })
}

fn run_check(host: &Host, check: &HealthCheck, timeout: Duration) -> CheckResult {
    let deadline = Instant::now() + timeout;
    match check {
        HealthCheck::Http { url, expect } => match http::get_status(url, deadline)? {
            status if status == *expect => Ok(()),
            status if *expect == 200 => Err(Failure::Reason(format!("HTTP {status}"))),
            status => Err(Failure::Reason(format!("HTTP {status}, expected {expect}"))),
        },
        HealthCheck::Tcp(hp) => connect(hp, deadline).map(drop),
        HealthCheck::Command(c) => command(host, c, timeout),
    }
}

/// `sh -c` as the agent (root), with a minimal environment and the output discarded.
fn command(host: &Host, c: &str, timeout: Duration) -> CheckResult {
    let cmd = Cmd::new("sh")
        .args(["-c", c])
        .minimal_env()
        .discard_output()
        .timeout(timeout);
    match host.run(&cmd) {
        Ok(out) => match out.code {
            Some(0) => Ok(()),
            Some(n) => Err(Failure::Reason(format!("exit {n}"))),
            None => Err(Failure::Reason("killed by a signal".into())),
        },
        Err(e) if exec::is_timeout(&e) => Err(Failure::TimedOut),
        Err(e) => Err(Failure::Reason(e.to_string())),
    }
}

/// The time left before `deadline`; none left is a timeout.
fn left(deadline: Instant) -> CheckResult<Duration> {
    let d = deadline.saturating_duration_since(Instant::now());
    if d.is_zero() {
        Err(Failure::TimedOut)
    } else {
        Ok(d)
    }
}

/// Connects to the first address of `hp` that answers before `deadline`.
fn connect(hp: &HostPort, deadline: Instant) -> CheckResult<TcpStream> {
    let addrs: Vec<SocketAddr> = (hp.host.as_str(), hp.port)
        .to_socket_addrs()
        .map_err(|e| Failure::Reason(format!("cannot resolve {}: {e}", hp.host)))?
        .collect();
    let mut last = Failure::Reason(format!("cannot resolve {}: no address", hp.host));
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, left(deadline)?) {
            Ok(s) => return Ok(s),
            Err(e) => last = io_failure(&e),
        }
    }
    Err(last)
}

/// An I/O error in a few words; a read or connect timeout is [`Failure::TimedOut`].
fn io_failure(e: &std::io::Error) -> Failure {
    match e.kind() {
        ErrorKind::TimedOut | ErrorKind::WouldBlock => Failure::TimedOut,
        k @ (ErrorKind::ConnectionRefused
        | ErrorKind::ConnectionReset
        | ErrorKind::ConnectionAborted
        | ErrorKind::HostUnreachable
        | ErrorKind::NetworkUnreachable
        | ErrorKind::AddrNotAvailable
        | ErrorKind::NotConnected
        | ErrorKind::BrokenPipe) => Failure::Reason(k.to_string()),
        _ => Failure::Reason(e.to_string()),
    }
}
