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

fn serve(listener: TcpListener, metrics: Arc<Metrics>, health_age: Duration) {
    for conn in listener.incoming().flatten() {
        let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
        let _ = respond(conn, &metrics, health_age);
    }
}

fn respond(mut conn: TcpStream, metrics: &Metrics, health_age: Duration) -> std::io::Result<()> {
    let mut line = String::new();
    BufReader::new(&conn).read_line(&mut line)?;
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
