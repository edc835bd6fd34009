//! The pages, each a pure function from a [`View`](crate::source::View) (and the request's
//! parameters) to HTML. One module per page.

pub mod clusters;
pub mod commit;
pub mod edit;
pub mod history;
pub mod machine;
pub mod machines;
pub mod overview;

use crate::html::esc;
use time_fmt::ago;

/// A commit's first line, escaped.
pub(crate) fn subject(message: &str) -> String {
    esc(message.lines().next().unwrap_or(""))
}

mod time_fmt {
    /// "5 s ago", "3 min ago", "2 h ago", "4 d ago" from Unix seconds.
    pub fn ago(then: i64, now: i64) -> String {
        let d = now.saturating_sub(then).max(0);
        match d {
            0..60 => format!("{d} s ago"),
            60..3600 => format!("{} min ago", d / 60),
            3600..86400 => format!("{} h ago", d / 3600),
            _ => format!("{} d ago", d / 86400),
        }
    }
}

pub(crate) fn when(then: i64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    ago(then, now)
}

#[cfg(test)]
mod tests {
    #[test]
    fn ages_read_like_words() {
        use super::time_fmt::ago;
        assert_eq!(ago(100, 105), "5 s ago");
        assert_eq!(ago(0, 180), "3 min ago");
        assert_eq!(ago(0, 7200), "2 h ago");
        assert_eq!(ago(0, 4 * 86400), "4 d ago");
        assert_eq!(ago(10, 5), "0 s ago");
    }
}
