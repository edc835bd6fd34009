//! The history: every commit with author, message and a link to its diff, filterable by
//! person (author), by Orbiter (its own commits) and by text in the message (a machine id).

use super::{subject, when};
use crate::html::{esc, url_part};
use crate::source::View;
use std::fmt::Write as _;

#[derive(Clone, Debug, Default, serde::Deserialize)]
pub struct Query {
    /// Text in the author (`Name <email>`).
    #[serde(default)]
    pub who: String,
    /// Text in the message, e.g. a machine id.
    #[serde(default)]
    pub text: String,
    /// `people`: only commits not by Orbiter; `orbiter`: only Orbiter's.
    #[serde(default)]
    pub by: String,
}

fn is_orbiter(author: &str) -> bool {
    author.starts_with("Orbiter <") || author == "Orbiter"
}

pub fn render(v: &View, q: &Query) -> String {
    let (who, text) = (q.who.to_lowercase(), q.text.to_lowercase());
    let orb = url_part(&v.name);
    let mut b = format!(
        "<form method=\"get\"><input name=\"who\" value=\"{}\" placeholder=\"author\"> \
<input name=\"text\" value=\"{}\" placeholder=\"text or machine\"> \
<select name=\"by\"><option value=\"\">everyone</option><option value=\"people\"{}>people</option><option value=\"orbiter\"{}>Orbiter</option></select> \
<button>Filter</button></form><table><tr><th>Commit</th><th>Message</th><th>Author</th><th>When</th></tr>",
        esc(&q.who),
        esc(&q.text),
        if q.by == "people" { " selected" } else { "" },
        if q.by == "orbiter" { " selected" } else { "" },
    );
    let mut shown = 0;
    for c in &v.log {
        let orbiter = is_orbiter(&c.author);
        if (!who.is_empty() && !c.author.to_lowercase().contains(&who))
            || (!text.is_empty() && !c.message.to_lowercase().contains(&text))
            || (q.by == "people" && orbiter)
            || (q.by == "orbiter" && !orbiter)
        {
            continue;
        }
        shown += 1;
        let _ = write!(
            b,
            "<tr><td><a href=\"/orbs/{orb}/commits/{}\"><code>{}</code></a></td><td>{}</td><td>{}</td><td>{}</td></tr>",
            url_part(&c.id),
            esc(&c.id[..c.id.len().min(12)]),
            subject(&c.message),
            esc(&c.author),
            when(c.date),
        );
    }
    let _ = write!(
        b,
        "</table><p class=\"dim\">{shown} of the newest {} commits.</p>",
        v.log.len()
    );
    b
}
