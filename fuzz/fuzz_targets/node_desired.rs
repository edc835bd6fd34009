//! Node-desired documents in all three forms (orbiter.yml items, the machine's document, the
//! record in Git): `NodeDesired::parse` never panics, and an accepted document renders in its
//! form and reads back the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use node_protocol::{Form, NodeDesired};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    for form in [Form::Spec, Form::Machine, Form::Record] {
        let Ok(d) = NodeDesired::parse(&text, "desired.yml", form) else {
            continue;
        };
        let _ = d.reboot_requested_at();
        let rendered = match form {
            Form::Machine => d.render_for_machine(),
            Form::Spec | Form::Record => d
                .render()
                .unwrap_or_else(|e| panic!("{form:?}: a parsed document does not render: {e}")),
        };
        let again = NodeDesired::parse(&rendered, "desired.yml", form).unwrap_or_else(|e| {
            panic!("{form:?}: a parsed document renders into one it refuses: {e}\n{rendered}")
        });
        assert_eq!(
            again, d,
            "{form:?}: render and re-read changed the document"
        );
        // The record of a machine document holds digests only, and renders.
        let record = d.redacted(&|b: &[u8]| format!("hmac-sha256:{}", b.len()));
        record
            .render()
            .unwrap_or_else(|e| panic!("{form:?}: a redacted document does not render: {e}"));
    }
});
