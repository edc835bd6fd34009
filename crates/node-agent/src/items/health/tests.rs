use super::*;
use crate::host::scratch_host;
use std::io::{Read, Write};
use std::net::TcpListener;

fn health(yaml_fields: &str) -> Health {
    let doc = format!(
        "kind: NodeDesired\nversion: v1\ngeneration: 1\nchangesallowed: true\nitems:\n  - health: {{name: t, {yaml_fields}}}\n"
    );
    match node_protocol::parse_desired(&doc, "d.yml")
        .unwrap()
        .items
        .remove(0)
    {
        node_protocol::Item::Health(h) => h,
        other => panic!("{other:?}"),
    }
}

#[test]
fn status_lines() {
    assert_eq!(parse_status_line("HTTP/1.1 200 OK\r\n"), Some(200));
    assert_eq!(
        parse_status_line("HTTP/1.0 503 Service Unavailable"),
        Some(503)
    );
    assert_eq!(parse_status_line("HTTP/1.1 204"), Some(204));
    assert_eq!(parse_status_line("HTTP/2 200 "), Some(200));
    for bad in [
        "",
        "200 OK",
        "ICY 200 OK",
        "HTTP/1.1 20 OK",
        "HTTP/1.1 2000 OK",
        "HTTP/1.1 abc OK",
        "HTTP/x.1 200 OK",
        "HTTP/1.1 099 Low",
        "<html>",
    ] {
        assert_eq!(parse_status_line(bad), None, "{bad:?}");
    }
}

/// Answers one connection per entry of `answers`, in order; returns the requests it saw.
fn serve(answers: &'static [&'static str]) -> (u16, std::thread::JoinHandle<Vec<String>>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let t = std::thread::spawn(move || {
        let mut seen = Vec::new();
        for answer in answers {
            let (mut s, _) = l.accept().unwrap();
            let mut req = Vec::new();
            let mut buf = [0u8; 1024];
            while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = s.read(&mut buf).unwrap();
                if n == 0 {
                    break;
                }
                req.extend_from_slice(&buf[..n]);
            }
            seen.push(String::from_utf8_lossy(&req).into_owned());
            s.write_all(answer.as_bytes()).unwrap();
        }
        seen
    });
    (port, t)
}

#[test]
fn http_check_goes_from_failing_to_healthy() {
    let (port, server) = serve(&[
        "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 8\r\n\r\nstarting",
        "HTTP/1.0 200 OK\r\n\r\nok",
    ]);
    let (_t, host) = scratch_host(&[]);
    let h = health(&format!("http: \"http://127.0.0.1:{port}/healthz?full=1\""));
    let first = observe(&host, &h).unwrap();
    assert_eq!(first, Observed::Failing("HTTP 503".into()));
    assert_eq!(first.to_string(), "failing: HTTP 503");
    assert_eq!(observe(&host, &h).unwrap().to_string(), "healthy");
    let requests = server.join().unwrap();
    assert!(
        requests[0].starts_with("GET /healthz?full=1 HTTP/1.0\r\n")
            && requests[0].contains(&format!("\r\nHost: 127.0.0.1:{port}\r\n")),
        "{requests:?}"
    );
}

#[test]
fn http_check_with_another_expected_status_and_garbage() {
    let (port, server) = serve(&["HTTP/1.1 200 OK\r\n\r\n", "SSH-2.0-OpenSSH_9.2\r\n"]);
    let (_t, host) = scratch_host(&[]);
    let h = health(&format!("http: \"http://127.0.0.1:{port}/\", expect: 204"));
    assert_eq!(
        observe(&host, &h).unwrap(),
        Observed::Failing("HTTP 200, expected 204".into())
    );
    assert_eq!(
        observe(&host, &h).unwrap(),
        Observed::Failing("not an HTTP response (no status line)".into())
    );
    server.join().unwrap();
}

#[test]
fn http_check_that_gets_no_answer_times_out() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let (_t, host) = scratch_host(&[]);
    let h = health(&format!(
        "http: \"http://127.0.0.1:{port}/\", timeout: 300ms"
    ));
    let start = Instant::now();
    // The kernel completes the handshake (backlog); nobody ever answers.
    assert_eq!(
        observe(&host, &h).unwrap(),
        Observed::Failing("timed out after 300ms".into())
    );
    assert!(start.elapsed() < Duration::from_secs(3));
    drop(l);
}

#[test]
fn tcp_check_against_a_closed_port_fails_fast() {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let (_t, host) = scratch_host(&[]);
    let start = Instant::now();
    let o = observe(&host, &health(&format!("tcp: \"127.0.0.1:{port}\""))).unwrap();
    assert_eq!(o, Observed::Failing("connection refused".into()));
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "{:?}",
        start.elapsed()
    );
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let open = l.local_addr().unwrap().port();
    assert!(
        observe(&host, &health(&format!("tcp: \"127.0.0.1:{open}\"")))
            .unwrap()
            .is_healthy()
    );
}

#[test]
fn command_checks_report_exit_status_only_and_time_out() {
    let tmp = tempfile::tempdir().unwrap();
    let host = Host::system(tmp.path());
    assert!(
        observe(&host, &health("command: \"true\""))
            .unwrap()
            .is_healthy()
    );
    let o = observe(
        &host,
        &health("command: \"echo TOPSECRET; echo TOPSECRET >&2; exit 3\""),
    )
    .unwrap();
    assert_eq!(o.to_string(), "failing: exit 3");
    let start = Instant::now();
    let o = observe(&host, &health("command: \"sleep 30\", timeout: 1s")).unwrap();
    assert_eq!(o, Observed::Failing("timed out after 1s".into()));
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn commands_are_not_run_under_another_root() {
    let (_t, host) = scratch_host(&[]);
    let o = observe(&host, &health("command: \"true\"")).unwrap();
    assert!(
        matches!(&o, Observed::Failing(why) if why.contains("--root")),
        "{o}"
    );
}
