//! A client of a VIP: one HTTP request after another, each with short deadlines, every outcome
//! kept with its start time so a test can say when requests failed and who answered them.

use std::io::{Read as _, Write as _};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream};
use std::os::fd::FromRawFd as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One request: when it started and who answered (`Err`: what went wrong).
#[derive(Clone, Debug)]
pub struct Outcome {
    pub at: Instant,
    pub answer: Result<String, String>,
}

/// Sends requests to `addr` in a thread until dropped.
pub struct Client {
    log: Arc<Mutex<Vec<Outcome>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Connect and answer deadlines: short, so an outage is timed to a fraction of a second.
const CONNECT: Duration = Duration::from_millis(300);
const ANSWER: Duration = Duration::from_secs(2);
const PAUSE: Duration = Duration::from_millis(50);

impl Client {
    pub fn start(addr: SocketAddr) -> Client {
        let log = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (l, s) = (log.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                let at = Instant::now();
                let answer = get(addr);
                l.lock().unwrap().push(Outcome { at, answer });
                std::thread::sleep(PAUSE);
            }
        });
        Client {
            log,
            stop,
            thread: Some(thread),
        }
    }

    /// Every outcome of a request started at or after `since`.
    pub fn since(&self, since: Instant) -> Vec<Outcome> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|o| o.at >= since)
            .cloned()
            .collect()
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// `GET /` on `addr`: the body, trimmed.
pub fn get(addr: SocketAddr) -> Result<String, String> {
    let s = TcpStream::connect_timeout(&addr, CONNECT).map_err(|e| format!("connect: {e}"))?;
    answer(s)
}

fn answer(mut s: TcpStream) -> Result<String, String> {
    s.set_read_timeout(Some(ANSWER))
        .map_err(|e| e.to_string())?;
    s.write_all(b"GET / HTTP/1.0\r\n\r\n")
        .map_err(|e| format!("send: {e}"))?;
    let mut text = String::new();
    s.read_to_string(&mut text)
        .map_err(|e| format!("read: {e}"))?;
    match text.split_once("\r\n\r\n") {
        Some((head, body)) if head.starts_with("HTTP/1.0 200") => Ok(body.trim().to_owned()),
        _ => Err(format!("no answer: {text:?}")),
    }
}

/// `GET /` on `addr` from the local address `source` (which must be on this host).
pub fn get_from(source: Ipv4Addr, addr: SocketAddrV4) -> Result<String, String> {
    let sockaddr = |a: SocketAddrV4| libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: a.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(*a.ip()).to_be(),
        },
        sin_zero: [0; 8],
    };
    let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: a fresh socket this function owns; every pointer is to a local of the right size.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(format!("socket: {}", std::io::Error::last_os_error()));
        }
        let stream = TcpStream::from_raw_fd(fd);
        // On Linux the send timeout bounds a blocking connect.
        stream
            .set_write_timeout(Some(Duration::from_secs(2)))
            .map_err(|e| e.to_string())?;
        let from = sockaddr(SocketAddrV4::new(source, 0));
        if libc::bind(fd, (&raw const from).cast(), len) != 0 {
            return Err(format!("bind: {}", std::io::Error::last_os_error()));
        }
        let to = sockaddr(addr);
        if libc::connect(fd, (&raw const to).cast(), len) != 0 {
            return Err(format!("connect: {}", std::io::Error::last_os_error()));
        }
        answer(stream)
    }
}

/// Failed requests of `log`, and the outage: from `start` to the first request that succeeded
/// after the last failure (zero when none failed).
pub fn outage(log: &[Outcome], start: Instant) -> (usize, Duration) {
    let failed = log.iter().filter(|o| o.answer.is_err()).count();
    let Some(last_failure) = log.iter().rposition(|o| o.answer.is_err()) else {
        return (0, Duration::ZERO);
    };
    let back = log[last_failure + 1..]
        .iter()
        .find(|o| o.answer.is_ok())
        .map_or_else(Instant::now, |o| o.at);
    (failed, back.saturating_duration_since(start))
}
