//! orbiter.yml in the browser: the text, and after a refused save the error at its line and
//! column with the text as the person left it (nothing was pushed).

use crate::html::{csrf_field, esc, url_part};

pub fn render(orb: &str, text: &str, error: Option<&str>, csrf: &str) -> String {
    let err = error.map_or(String::new(), |e| {
        format!(
            "<p class=\"bad\">Not committed:</p><pre class=\"bad\">{}</pre>",
            esc(e)
        )
    });
    format!(
        "{err}<form method=\"post\" action=\"/orbs/{}/edit\">{}<textarea name=\"text\" rows=\"40\" cols=\"110\" spellcheck=\"false\">{}</textarea><p><button>Validate and commit</button></p></form>",
        url_part(orb),
        csrf_field(csrf),
        esc(text)
    )
}
