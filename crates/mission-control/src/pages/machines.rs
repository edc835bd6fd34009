//! An Orb's machines: search over id, pool, address, state and error, and pages of
//! [`PAGE`] rows, so 10,000 machines cost one page of HTML.

use crate::html::{csrf_field, esc, url_part};
use crate::source::View;
use std::fmt::Write as _;

pub const PAGE: usize = 100;

/// The query of the page: a search text and a 1-based page number.
#[derive(Clone, Debug, Default, serde::Deserialize)]
pub struct Query {
    #[serde(default)]
    pub q: String,
    #[serde(default)]
    pub page: Option<usize>,
}

/// `csrf`: the token every form of the page carries.
pub fn render(v: &View, query: &Query, csrf: &str) -> String {
    let needle = query.q.trim().to_lowercase();
    let hits: Vec<_> = v
        .current
        .machines
        .iter()
        .filter(|(k, m)| {
            needle.is_empty()
                || [
                    k.to_string().as_str(),
                    m.pool.as_str(),
                    m.ip.as_str(),
                    m.state.as_str(),
                    m.error.as_deref().unwrap_or(""),
                ]
                .iter()
                .any(|f| f.to_lowercase().contains(&needle))
        })
        .collect();
    let pages = hits.len().div_ceil(PAGE).max(1);
    let page = query.page.unwrap_or(1).clamp(1, pages);
    let orb = url_part(&v.name);
    let mut b = format!(
        "<form method=\"get\"><input name=\"q\" value=\"{}\" placeholder=\"search id, pool, IP, state, error\"> <button>Search</button></form>\
<p>{} of {} machines ready; {} match.</p>\
<table><tr><th>Machine</th><th>Pool</th><th>IP</th><th>State</th><th>Agent</th><th>Generation</th><th>Error</th></tr>",
        esc(&query.q),
        v.ready(),
        v.current.machines.len(),
        hits.len()
    );
    for (k, m) in hits.iter().skip((page - 1) * PAGE).take(PAGE) {
        let key = k.to_string();
        let class = if m.state == "ready" { "ok" } else { "bad" };
        let _ = write!(
            b,
            "<tr><td><a href=\"/orbs/{orb}/machines/{}\">{}</a></td><td>{}</td><td>{}</td><td class=\"{class}\">{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            url_part(&key),
            esc(&key),
            esc(&m.pool),
            esc(&m.ip),
            esc(&m.state),
            esc(m.agent.as_deref().unwrap_or("-")),
            m.generation.map_or("-".to_owned(), |g| g.to_string()),
            esc(m.error.as_deref().unwrap_or("")),
        );
    }
    b.push_str("</table>");
    if let crate::source::Desired::Valid { scalable, .. } = &v.desired
        && !scalable.is_empty()
    {
        b.push_str("<h2>Scale</h2>");
        for (provider, pool, nodes) in scalable {
            let _ = write!(
                b,
                "<form method=\"post\" action=\"/orbs/{orb}/scale\">{}<input type=\"hidden\" name=\"provider\" value=\"{}\">\
<input type=\"hidden\" name=\"pool\" value=\"{}\"><label>{}.{} <input type=\"number\" name=\"nodes\" min=\"0\" max=\"10000\" value=\"{nodes}\"></label> <button>Commit</button></form>",
                csrf_field(csrf),
                esc(provider),
                esc(pool),
                esc(provider),
                esc(pool),
            );
        }
    }
    if pages > 1 {
        let link = |p: usize, text: &str| {
            format!(
                "<a href=\"?q={}&amp;page={p}\">{text}</a>",
                url_part(&query.q)
            )
        };
        let _ = write!(b, "<p>page {page} of {pages} ");
        if page > 1 {
            b.push_str(&link(page - 1, "previous"));
            b.push(' ');
        }
        if page < pages {
            b.push_str(&link(page + 1, "next"));
        }
        b.push_str("</p>");
    }
    b
}
