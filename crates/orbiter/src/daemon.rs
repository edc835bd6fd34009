//! `orbctl orbiter run`: iterate forever, a fetch every interval (cheap when nothing changed),
//! with `/metrics` and `/healthz` served on a small HTTP listener (localhost by default).

use crate::engine::Engine;
use crate::metrics::Metrics;
use std::io::{BufRead as _, BufReader, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

pub struct DaemonOptions {
    pub listen: SocketAddr,
    pub interval: Duration,
}

/// Set by SIGTERM/SIGINT: the loop finishes its iteration and returns.
static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

pub fn run(mut engine: Engine, opts: DaemonOptions) -> anyhow::Result<()> {
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
    }
    let listener = TcpListener::bind(opts.listen)
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", opts.listen))?;
    let metrics = engine.metrics.clone();
    let health_age = opts.interval * 10 + Duration::from_secs(600);
    std::thread::spawn(move || serve(listener, metrics, health_age));
    tracing::info!(
        "orbiter: running, metrics on http://{}/metrics, every {:?}",
        opts.listen,
        opts.interval
    );
    while !STOP.load(Ordering::SeqCst) {
        match engine.iterate(true) {
            Ok(r) => {
                for s in &r.failed {
                    tracing::warn!("step failed: {s}");
                }
                if r.committed {
                    tracing::info!("current state committed");
                }
            }
            Err(e) => {
                let msg = format!("{e:#}");
                tracing::error!("iteration failed: {msg}");
                engine.metrics.record_error(&msg);
            }
        }
        let mut slept = Duration::ZERO;
        while slept < opts.interval && !STOP.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(100));
            slept += Duration::from_millis(100);
        }
    }
    tracing::info!("orbiter: stopped");
    Ok(())
}

/// Clients answered at once; more wait in the listen backlog (a slow or hostile client cannot
/// keep the others from their answers, nor make the daemon start unbounded threads).
const CONCURRENT_CLIENTS: usize = 16;

fn serve(listener: TcpListener, metrics: Arc<Metrics>, health_age: Duration) {
    let busy = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    for conn in listener.incoming().flatten() {
        if busy.load(Ordering::SeqCst) >= CONCURRENT_CLIENTS {
            // Closed at once: the client retries; the daemon stays responsive.
            continue;
        }
        let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
        let _ = conn.set_write_timeout(Some(Duration::from_secs(5)));
        busy.fetch_add(1, Ordering::SeqCst);
        let (metrics, busy) = (metrics.clone(), busy.clone());
        std::thread::spawn(move || {
            let _ = respond(conn, &metrics, health_age);
            busy.fetch_sub(1, Ordering::SeqCst);
        });
    }
}

fn respond(mut conn: TcpStream, metrics: &Metrics, health_age: Duration) -> std::io::Result<()> {
    let mut line = String::new();
    // The request line only, and not more of it than a path needs.
    BufReader::new(std::io::Read::take(&conn, 8192)).read_line(&mut line)?;
    let path = line.split_whitespace().nth(1).unwrap_or("/");
    let (status, body) = match path {
        "/metrics" => ("200 OK", metrics.render()),
        "/healthz" => match metrics.health(health_age) {
            Ok(()) => ("200 OK", "ok\n".to_owned()),
            Err(e) => ("503 Service Unavailable", format!("{e}\n")),
        },
        _ => ("404 Not Found", "try /metrics or /healthz\n".to_owned()),
    };
    write!(
        conn,
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read as _;

    #[test]
    fn a_silent_client_does_not_hold_up_the_others() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let metrics = Arc::new(Metrics::default());
        std::thread::spawn(move || serve(listener, metrics, Duration::from_secs(60)));
        // Connects and never sends a byte.
        let _silent = TcpStream::connect(addr).unwrap();
        let started = std::time::Instant::now();
        let mut c = TcpStream::connect(addr).unwrap();
        c.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").unwrap();
        let mut body = String::new();
        c.read_to_string(&mut body).unwrap();
        assert!(body.starts_with("HTTP/1.1 200 OK"), "{body}");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
    }
}
