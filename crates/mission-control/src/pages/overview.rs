//! All Orbs at a glance: machines ready of total, whether orbiter.yml is valid, what the
//! plan waits for, the last change.

use super::{subject, when};
use crate::html::{esc, url_part};
use crate::source::{Desired, View};
use std::fmt::Write as _;

/// One row per Orb; an Orb whose view failed shows the error instead.
pub fn render(views: &[(String, Result<std::sync::Arc<View>, String>)]) -> String {
    let mut b = String::from(
        "<table><tr><th>Orb</th><th>Machines ready</th><th>orbiter.yml</th><th>Waiting for</th><th>Last change</th></tr>",
    );
    for (name, v) in views {
        let link = format!(
            "<a href=\"/orbs/{}/machines\">{}</a>",
            url_part(name),
            esc(name)
        );
        let v = match v {
            Ok(v) => v,
            Err(e) => {
                let _ = write!(
                    b,
                    "<tr><td>{link}</td><td colspan=\"4\" class=\"bad\">{}</td></tr>",
                    esc(e)
                );
                continue;
            }
        };
        let desired = match &v.desired {
            Desired::Valid {
                providers,
                clusters,
                software,
                ..
            } => format!(
                "<span class=\"ok\">valid</span> <span class=\"dim\">({providers} providers, {clusters} clusters, {software} software)</span>"
            ),
            Desired::Invalid(e) => format!("<span class=\"bad\">invalid: {}</span>", esc(e)),
            Desired::Missing => "<span class=\"dim\">none yet</span>".to_owned(),
        };
        let waiting = match v.current.waiting.as_slice() {
            [] => "<span class=\"dim\">nothing</span>".to_owned(),
            [one] => esc(one),
            [first, rest @ ..] => format!(
                "{} <span class=\"dim\">and {} more</span>",
                esc(first),
                rest.len()
            ),
        };
        let last = v.log.first().map_or_else(
            || "<span class=\"dim\">no commit</span>".to_owned(),
            |c| {
                format!(
                    "{} <span class=\"dim\">by {}, {}</span>",
                    subject(&c.message),
                    esc(&c.author),
                    when(c.date)
                )
            },
        );
        let mut notes = String::new();
        if let Some(e) = &v.fetch_error {
            let _ = write!(notes, "<div class=\"bad\">fetch failed: {}</div>", esc(e));
        }
        if let Some(e) = &v.current_error {
            let _ = write!(notes, "<div class=\"bad\">{}</div>", esc(e));
        }
        let _ = write!(
            b,
            "<tr><td>{link}{notes}</td><td>{} / {}</td><td>{desired}</td><td>{waiting}</td><td>{last}</td></tr>",
            v.ready(),
            v.current.machines.len()
        );
    }
    b.push_str("</table>");
    b
}
