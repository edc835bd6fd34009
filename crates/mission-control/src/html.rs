//! HTML text: escaping and the page frame. Every string that did not come from this crate
//! (machine errors, commit messages, orbiter.yml) goes through [`esc`].

use std::fmt::Write as _;

/// `s` as HTML text or attribute value: `& < > " '` escaped.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `s` as one component of a URL query or path: everything but unreserved characters
/// percent-encoded.
pub fn url_part(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// The hidden field every form carries (see `server::csrf_ok`).
pub fn csrf_field(token: &str) -> String {
    format!(
        "<input type=\"hidden\" name=\"csrf\" value=\"{}\">",
        esc(token)
    )
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:0;color:#1d2733}\
header{background:#1d2733;color:#fff;padding:.6em 1em}header a{color:#fff;margin-right:1em}\
main{padding:1em}table{border-collapse:collapse}td,th{border-bottom:1px solid #ddd;\
padding:.25em .6em;text-align:left;vertical-align:top}pre{background:#f5f6f8;padding:.6em;\
overflow:auto}.bad{color:#b00020}.ok{color:#11703b}.dim{color:#667}";

/// A whole page: `title` (text), the navigation for `orb` (when one is open) and `body`
/// (HTML, already escaped by its maker).
pub fn page(title: &str, orb: Option<&str>, body: &str) -> String {
    let mut nav = String::from("<a href=\"/\">Mission Control</a>");
    if let Some(o) = orb {
        let (e, u) = (esc(o), url_part(o));
        let _ = write!(
            nav,
            "<b>{e}</b> <a href=\"/orbs/{u}/machines\">machines</a><a href=\"/orbs/{u}/clusters\">clusters</a><a href=\"/orbs/{u}/history\">history</a><a href=\"/orbs/{u}/edit\">edit orbiter.yml</a>"
        );
    }
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title>\
<style>{STYLE}</style></head><body><header>{nav}</header><main><h1>{}</h1>{body}</main></body></html>",
        esc(title),
        esc(title)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_text_stays_text() {
        assert_eq!(
            esc("<script>alert('x')</script> & \"y\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;y&quot;"
        );
        assert_eq!(url_part("a b/c?d=<e>"), "a%20b%2Fc%3Fd%3D%3Ce%3E");
        let p = page("<t>", Some("o\"rb"), "");
        assert!(p.contains("<title>&lt;t&gt;</title>") && p.contains("o&quot;rb"));
        assert!(!p.contains("<t>"));
    }
}
