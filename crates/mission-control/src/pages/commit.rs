//! One commit: its whole message, author and date, and what it changed.

use super::when;
use crate::html::esc;
use orb_repo::CommitInfo;

pub fn render(c: Option<&CommitInfo>, diff: &str) -> String {
    let head = c.map_or(String::new(), |c| {
        format!(
            "<p>by {} <span class=\"dim\">({})</span></p><pre>{}</pre>",
            esc(&c.author),
            when(c.date),
            esc(&c.message)
        )
    });
    format!("{head}<h2>Changes</h2><pre>{}</pre>", esc(diff))
}
