//! Observation of one load balancing machine: which addresses it holds on which interface, and
//! how its HAProxy sees every backend server. One POSIX sh command, run as root, that always
//! exits 0 and prints bounded sections; the parser takes whatever came back (a machine may be
//! broken or hostile) and never panics.

#[cfg(test)]
mod tests;

use crate::render::{BACKEND_PREFIX, STATS_PORT};
use std::net::Ipv4Addr;

/// The first line of the output; a newer format gets a new version.
pub const HEADER: &str = "orb-lb-observation v1";
const ADDRESSES: &str = "== addresses";
const STATS: &str = "== stats";
const END: &str = "== end";
/// Longer output is cut here (HAProxy's CSV is about 1 KiB per server).
pub const MAX_INPUT: usize = 512 * 1024;
pub const MAX_ADDRESSES: usize = 256;
pub const MAX_SERVERS: usize = 4096;
/// Longer fields (a check's text) are cut here.
pub const MAX_FIELD: usize = 160;

/// The command for a load balancing machine.
pub fn observe_command() -> String {
    format!(
        "echo '{HEADER}'
echo '{ADDRESSES}'
ip -o -4 addr show 2>/dev/null | head -n {MAX_ADDRESSES}
echo '{STATS}'
timeout 3 bash -c 'exec 3<>/dev/tcp/127.0.0.1/{STATS_PORT} || exit 1; printf \"GET /stats;csv HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n\" >&3; cat <&3' 2>/dev/null | head -c {limit}
echo
echo '{END}'
exit 0
",
        limit = MAX_INPUT - 4096,
    )
}

/// What one machine showed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LbMachineObservation {
    /// IPv4 addresses of the machine (its own and the VIPs it holds), sorted.
    pub addresses: Vec<Ipv4Addr>,
    /// The interface of each address (lines with an interface name that could not go into a
    /// configuration file are left out).
    pub interfaces: Vec<(Ipv4Addr, String)>,
    /// Every backend server as HAProxy sees it; `None` when its statistics did not answer
    /// (HAProxy down or not installed yet).
    pub servers: Option<Vec<ServerObservation>>,
}

impl LbMachineObservation {
    pub fn holds(&self, vip: Ipv4Addr) -> bool {
        self.addresses.contains(&vip)
    }

    /// The interface carrying `ip` (the machine's own address: where its VIPs go).
    pub fn interface_of(&self, ip: Ipv4Addr) -> Option<&str> {
        self.interfaces
            .iter()
            .find(|(a, _)| *a == ip)
            .map(|(_, i)| i.as_str())
    }

    /// The server `server` of transport `transport`.
    pub fn server(&self, transport: &str, server: &str) -> Option<&ServerObservation> {
        self.servers
            .as_ref()?
            .iter()
            .find(|s| s.transport == transport && s.server == server)
    }
}

/// A backend server of a transport (HAProxy's `be-<transport>` / `<machine id>`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerObservation {
    pub transport: String,
    pub server: String,
    pub status: ServerStatus,
    /// The last check's result, e.g. `L7OK 200` or `L4CON: Connection refused` (empty when
    /// there is none).
    pub check: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServerStatus {
    /// `UP`, also `UP 1/2` (failing, not down yet).
    Up,
    /// `DOWN`, also `DOWN 1/2` (recovering, not up yet).
    Down,
    /// Put in maintenance (by a person on the stats socket).
    Maint,
    /// No health check configured.
    NoCheck,
    /// Anything else HAProxy says (`DRAIN`, `NOLB`), as it says it.
    Other(String),
}

impl ServerStatus {
    fn parse(s: &str) -> ServerStatus {
        let word = s.split_whitespace().next().unwrap_or("");
        match word {
            "UP" => ServerStatus::Up,
            "DOWN" => ServerStatus::Down,
            "MAINT" => ServerStatus::Maint,
            "no" if s.trim() == "no check" => ServerStatus::NoCheck,
            _ => ServerStatus::Other(clip(s.trim())),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            ServerStatus::Up => "UP",
            ServerStatus::Down => "DOWN",
            ServerStatus::Maint => "MAINT",
            ServerStatus::NoCheck => "no check",
            ServerStatus::Other(s) => s,
        }
    }
}

/// Parses [`observe_command`]'s output. An error only when it is not that output at all.
pub fn parse_observation(text: &str) -> Result<LbMachineObservation, String> {
    let text = cut(text, MAX_INPUT);
    let start = text.trim_start();
    let Some(rest) = start.strip_prefix(HEADER) else {
        return Err(format!(
            "not a load balancer observation (no `{HEADER}` line)"
        ));
    };
    let mut addresses = Vec::new();
    let mut interfaces = Vec::new();
    for l in section(rest, ADDRESSES, STATS, false).unwrap_or("").lines() {
        if let Some(a) = address(l)
            && !addresses.contains(&a)
        {
            addresses.push(a);
            if let Some(i) = interface(l) {
                interfaces.push((a, i));
            }
            if addresses.len() >= MAX_ADDRESSES {
                break;
            }
        }
    }
    addresses.sort();
    Ok(LbMachineObservation {
        addresses,
        interfaces,
        servers: section(rest, STATS, END, true).and_then(servers),
    })
}

/// The text between the line `start` and the line `end` (the last such line when `last`, as
/// HAProxy's answer comes before it); to the end of the text when `end` is missing.
fn section<'a>(text: &'a str, start: &str, end: &str, last: bool) -> Option<&'a str> {
    let from = text.find(&format!("\n{start}\n"))? + start.len() + 2;
    let body = &text[from..];
    let marker = format!("\n{end}");
    let to = if last {
        body.rfind(&marker)
    } else {
        body.find(&marker)
    };
    Some(&body[..to.map_or(body.len(), |t| t + 1)])
}

/// The interface of an `ip -o -4 addr` line (`2: eth0    inet …`), when it is a name that
/// may go into keepalived.conf.
fn interface(line: &str) -> Option<String> {
    let name = line.split_whitespace().nth(1)?;
    let name = name.split('@').next()?;
    crate::input::check_interface(name).ok()?;
    Some(name.to_owned())
}

/// The address of an `ip -o -4 addr` line: the word after `inet`, without its prefix.
fn address(line: &str) -> Option<Ipv4Addr> {
    let mut words = line.split_whitespace();
    words.find(|w| *w == "inet")?;
    let a = words.next()?;
    a.split('/').next()?.parse().ok()
}

/// The body of HAProxy's HTTP answer when it is a 200, de-chunked (HAProxy answers even an
/// HTTP/1.0 request in chunks).
fn http_body(answer: &str) -> Option<String> {
    let (head, body) = answer
        .split_once("\r\n\r\n")
        .or_else(|| answer.split_once("\n\n"))?;
    let mut lines = head.lines();
    let mut status = lines.next()?.split_whitespace();
    if !status.next()?.starts_with("HTTP/1.") || status.next()? != "200" {
        return None;
    }
    let chunked = lines.any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    if !chunked {
        return Some(body.to_owned());
    }
    let mut rest = body.as_bytes();
    let mut out: Vec<u8> = Vec::new();
    while let Some(nl) = rest.iter().position(|b| *b == b'\n') {
        let line = String::from_utf8_lossy(&rest[..nl]);
        let size = line.trim().split(';').next().unwrap_or("");
        let Ok(size) = usize::from_str_radix(size, 16) else {
            break;
        };
        rest = &rest[nl + 1..];
        if size == 0 || out.len() + size > MAX_INPUT {
            break;
        }
        let take = size.min(rest.len());
        out.extend_from_slice(&rest[..take]);
        rest = &rest[take..];
        rest = rest.strip_prefix(b"\r").unwrap_or(rest);
        rest = rest.strip_prefix(b"\n").unwrap_or(rest);
    }
    Some(String::from_utf8_lossy(&out).into_owned())
}

/// The servers in HAProxy's statistics (the CSV after its header line `# pxname,…`).
fn servers(answer: &str) -> Option<Vec<ServerObservation>> {
    let body = http_body(answer.trim_start_matches(['\r', '\n']))?;
    let mut it = body.lines().map(|l| l.trim_end_matches('\r'));
    let header = it.find(|l| l.starts_with("# "))?.strip_prefix("# ")?;
    let columns: Vec<&str> = header.split(',').map(str::trim).collect();
    let col = |name: &str| columns.iter().position(|c| *c == name);
    let (px, sv, st) = (col("pxname")?, col("svname")?, col("status")?);
    let (cs, cc, lc) = (col("check_status"), col("check_code"), col("last_chk"));
    let mut out = Vec::new();
    for row in it {
        if out.len() >= MAX_SERVERS {
            break;
        }
        let f = fields(row, columns.len());
        let get = |i: Option<usize>| i.and_then(|i| f.get(i)).map_or("", |s| s.as_str());
        let (Some(transport), server) = (get(Some(px)).strip_prefix(BACKEND_PREFIX), get(Some(sv)))
        else {
            continue;
        };
        if server.is_empty() || server == "BACKEND" || server == "FRONTEND" {
            continue;
        }
        let mut check = get(cs).trim_start_matches("* ").to_owned();
        if !get(cc).is_empty() {
            check = format!("{check} {}", get(cc));
        }
        if !get(lc).is_empty() {
            check = format!("{check}: {}", get(lc));
        }
        out.push(ServerObservation {
            transport: clip(transport),
            server: clip(server),
            status: ServerStatus::parse(get(Some(st))),
            check: clip(check.trim()),
        });
    }
    Some(out)
}

/// CSV fields, `"…"` quoting with `""` for a quote; at most `max` fields (more are ignored).
fn fields(row: &str, max: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = row.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                chars.next();
                cur.push('"');
            }
            ('"', _) => quoted = !quoted,
            (',', false) => {
                out.push(std::mem::take(&mut cur));
                if out.len() >= max {
                    return out;
                }
            }
            (c, _) if cur.len() < MAX_FIELD * 4 => cur.push(c),
            _ => {}
        }
    }
    out.push(cur);
    out
}

/// At most [`MAX_FIELD`] characters, control characters replaced.
fn clip(s: &str) -> String {
    s.chars()
        .take(MAX_FIELD)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut i = max;
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    &s[..i]
}
