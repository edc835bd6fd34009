//! A minimal HTTP/1.0 client for health checks: one GET over a `TcpStream`, every step
//! within the check's deadline, at most [`MAX_RESPONSE`] bytes read, only the status line
//! used. Plain HTTP only (validation refuses `https`).

use super::{CheckResult, Failure, connect, io_failure, left};
use node_protocol::HttpUrl;
use std::io::{Read, Write};
use std::time::Instant;

/// What is read of a response at most: the status line and headers are what matter.
pub const MAX_RESPONSE: usize = 64 * 1024;

/// The status code of `url`, asked with `GET` before `deadline`.
pub(super) fn get_status(url: &HttpUrl, deadline: Instant) -> CheckResult<u16> {
    let mut s = connect(&url.host, deadline)?;
    let request = format!(
        "GET {} HTTP/1.0\r\nHost: {}\r\nUser-Agent: node-agent/{}\r\nAccept: */*\r\nConnection: close\r\n\r\n",
        url.path,
        url.host,
        crate::VERSION
    );
    s.set_write_timeout(Some(left(deadline)?))
        .map_err(|e| io_failure(&e))?;
    s.write_all(request.as_bytes())
        .map_err(|e| io_failure(&e))?;
    let mut response = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    // Until the headers end (the status line is all that is used), the peer closes, or the cap.
    while response.len() < MAX_RESPONSE && !headers_complete(&response) {
        s.set_read_timeout(Some(left(deadline)?))
            .map_err(|e| io_failure(&e))?;
        let room = (MAX_RESPONSE - response.len()).min(chunk.len());
        match s.read(&mut chunk[..room]) {
            Ok(0) => break,
            Ok(n) => response.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io_failure(&e)),
        }
    }
    if response.is_empty() {
        return Err(Failure::Reason(
            "connection closed without a response".into(),
        ));
    }
    let line_end = response
        .iter()
        .position(|b| *b == b'\n')
        .unwrap_or(response.len());
    let line = String::from_utf8_lossy(&response[..line_end]);
    parse_status_line(&line)
        .ok_or_else(|| Failure::Reason("not an HTTP response (no status line)".into()))
}

fn headers_complete(r: &[u8]) -> bool {
    r.windows(4).any(|w| w == b"\r\n\r\n") || r.windows(2).any(|w| w == b"\n\n")
}

/// The status code of an HTTP status line (`HTTP/1.1 200 OK`; the reason may be missing).
pub fn parse_status_line(line: &str) -> Option<u16> {
    let line = line.trim_end_matches(['\r', '\n']);
    let mut parts = line.splitn(3, ' ');
    let version = parts.next()?;
    let rest = version.strip_prefix("HTTP/")?;
    let (major, minor) = rest.split_once('.').unwrap_or((rest, "0"));
    if major.is_empty()
        || !major.bytes().all(|b| b.is_ascii_digit())
        || !minor.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let code = parts.next()?;
    if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    code.parse().ok().filter(|c| (100..=599).contains(c))
}
