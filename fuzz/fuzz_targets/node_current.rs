//! The agent's node-current report (read back from every machine): `NodeCurrent::parse` never
//! panics, and an accepted report renders, reads back the same, and prints as text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use node_protocol::NodeCurrent;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let Ok(c) = NodeCurrent::parse(&text, "current.yml") else {
        return;
    };
    let _ = c.render_text();
    let rendered = c
        .to_yaml()
        .unwrap_or_else(|e| panic!("a parsed report does not render: {e}"));
    let again = NodeCurrent::parse(&rendered, "current.yml")
        .unwrap_or_else(|e| panic!("a parsed report renders into one it refuses: {e}\n{rendered}"));
    assert_eq!(again, c, "render and re-read changed the report");
});
