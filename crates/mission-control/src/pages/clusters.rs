//! The clusters of an Orb as Orbiter recorded them: etcd members, leader, health, last
//! backup and last error; each load balancer's VIPs with their holder and backends.

use super::when;
use crate::html::esc;
use crate::source::View;
use std::fmt::Write as _;

fn ago_secs(unix: u64) -> String {
    when(i64::try_from(unix).unwrap_or(i64::MAX))
}

pub fn render(v: &View) -> String {
    let mut b = String::new();
    if v.etcd.is_empty() && v.lbs.is_empty() {
        b.push_str("<p class=\"dim\">No cluster recorded yet.</p>");
    }
    for (id, r) in &v.etcd {
        let _ = write!(b, "<h2>etcd {}</h2>", esc(id));
        let r = match r {
            Ok(r) => r,
            Err(e) => {
                let _ = write!(b, "<p class=\"bad\">{}</p>", esc(e));
                continue;
            }
        };
        b.push_str("<table><tr><th>Member</th><th>State</th><th>Healthy</th><th>Version</th><th>Leader</th></tr>");
        for m in &r.members {
            let leader = r.leader.as_deref() == Some(m.name.as_str());
            let _ = write!(
                b,
                "<tr><td>{}</td><td>{}</td><td class=\"{}\">{}</td><td>{}</td><td>{}</td></tr>",
                esc(&m.name),
                esc(&format!("{:?}", m.state).to_lowercase()),
                if m.healthy { "ok" } else { "bad" },
                if m.healthy { "yes" } else { "no" },
                esc(m.version.as_deref().unwrap_or("-")),
                if leader { "leader" } else { "" },
            );
        }
        b.push_str("</table>");
        match &r.last_backup {
            Some(k) => {
                let _ = write!(
                    b,
                    "<p>Last backup {} at {} ({} bytes, sha256 {}).</p>",
                    ago_secs(k.at),
                    esc(&k.location),
                    k.size,
                    esc(&k.sha256.chars().take(16).collect::<String>())
                );
            }
            None => b.push_str("<p class=\"dim\">No backup recorded.</p>"),
        }
        if let Some(e) = &r.last_error {
            let _ = write!(
                b,
                "<p class=\"bad\">Last error {}: {} failed: {}</p>",
                ago_secs(e.at),
                esc(&e.step),
                esc(&e.message)
            );
        }
    }
    for (pool, r) in &v.lbs {
        let _ = write!(b, "<h2>Load balancer {}</h2>", esc(pool));
        let r = match r {
            Ok(r) => r,
            Err(e) => {
                let _ = write!(b, "<p class=\"bad\">{}</p>", esc(e));
                continue;
            }
        };
        for vip in &r.vips {
            let holder = if !vip.splitbrain.is_empty() {
                format!(
                    "<span class=\"bad\">split brain: {}</span>",
                    esc(&vip.splitbrain.join(", "))
                )
            } else {
                vip.holder.as_deref().map_or(
                    "<span class=\"bad\">held by no machine</span>".to_owned(),
                    |h| format!("held by {}", esc(h)),
                )
            };
            let _ = write!(b, "<p>VIP {}: {holder}</p>", esc(&vip.ip));
            b.push_str(
                "<table><tr><th>Transport</th><th>Backend</th><th>Status</th><th>Check</th></tr>",
            );
            for t in &vip.transports {
                for be in &t.backends {
                    let _ = write!(
                        b,
                        "<tr><td>{} :{}</td><td>{}</td><td class=\"{}\">{}</td><td>{}</td></tr>",
                        esc(&t.name),
                        t.frontendport,
                        esc(&be.machine),
                        if be.status == "UP" { "ok" } else { "bad" },
                        esc(&be.status),
                        esc(&be.check)
                    );
                }
            }
            b.push_str("</table>");
        }
    }
    b
}
