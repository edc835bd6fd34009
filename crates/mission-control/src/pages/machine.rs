//! One machine: what Orbiter recorded of it, and its node-desired record beside the report
//! its agent last gave (both as committed; the desired one holds digests, never secrets).

use crate::html::{csrf_field, esc, url_part};
use crate::source::View;
use orbiter::machine::MachineKey;
use std::fmt::Write as _;

/// `desired` and `current`: the texts of `orbiter/nodes/<key>/{desired,current}.yml`.
pub fn render(
    v: &View,
    key: &MachineKey,
    desired: Option<&str>,
    current: Option<&str>,
    csrf: &str,
) -> String {
    let mut b = String::new();
    match v.current.machines.get(key) {
        Some(m) => {
            let _ = write!(
                b,
                "<table><tr><th>Pool</th><td>{}</td></tr><tr><th>IP</th><td>{}</td></tr>\
<tr><th>State</th><td>{}</td></tr><tr><th>Agent</th><td>{}</td></tr>\
<tr><th>Generation</th><td>{}</td></tr><tr><th>Error</th><td class=\"bad\">{}</td></tr>\
<tr><th>Pending updates</th><td>{}{}</td></tr></table>",
                esc(&m.pool),
                esc(&m.ip),
                esc(&m.state),
                esc(m.agent.as_deref().unwrap_or("-")),
                m.generation.map_or("-".to_owned(), |g| g.to_string()),
                esc(m.error.as_deref().unwrap_or("")),
                m.pending_updates.map_or("-".to_owned(), |n| n.to_string()),
                if m.reboot_required {
                    ", reboot required"
                } else {
                    ""
                },
            );
        }
        None => b.push_str("<p class=\"bad\">Orbiter has not recorded this machine.</p>"),
    }
    let base = format!(
        "/orbs/{}/machines/{}",
        url_part(&v.name),
        url_part(&key.to_string())
    );
    for (verb, what) in [("reboot", "Reboot"), ("replace", "Replace")] {
        let _ = write!(
            b,
            "<form method=\"post\" action=\"{base}/{verb}\" style=\"display:inline\">{}<button>{what}</button></form> ",
            csrf_field(csrf)
        );
    }
    let pre = |t: Option<&str>| {
        t.map_or("<p class=\"dim\">not recorded yet</p>".to_owned(), |t| {
            format!("<pre>{}</pre>", esc(t))
        })
    };
    let _ = write!(
        b,
        "<table><tr><th>Desired (node-desired record)</th><th>Current (its agent's last report)</th></tr>\
<tr><td>{}</td><td>{}</td></tr></table>",
        pre(desired),
        pre(current)
    );
    b
}
