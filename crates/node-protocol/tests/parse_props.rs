//! Property tests: the parsers of what crosses the wire (node-desired documents in their three
//! forms, the agent's report) never panic, on arbitrary text and on valid documents with
//! arbitrary edits; and an edited document that is still accepted renders in its form and reads
//! back the same. `fuzz/` (bench/fuzz.sh) runs the same properties for millions of inputs.

use node_protocol::*;
use proptest::prelude::*;

const MACHINE: &str = r#"kind: NodeDesired
version: v1
generation: 7
changesallowed: true
items:
  - aptsource: {name: local, content: "deb [trusted=yes] http://10.0.0.1/ ./\n"}
  - package: {name: etcd-server, version: 3.4.23-4}
  - package: {name: jq, version: "1.6-2.1", held: false}
  - directory: {path: /etc/etcd, mode: "0750", owner: root, group: root}
  - file:
      path: /etc/etcd/etcd.conf
      content: |
        ETCD_NAME=n1
      mode: "0640"
  - file: {path: /etc/app/token, secret: {base64: czNjcjN0}, mode: "0600"}
  - unit:
      name: etcd.service
      dropins: {10-limits.conf: "[Service]\nLimitNOFILE=65536\n"}
      enabled: true
      active: true
      restart_on: [/etc/etcd/etcd.conf]
  - sysctl: {key: net.ipv4.ip_forward, value: 1}
  - kernelmodule: {name: br_netfilter}
  - swap: {enabled: false}
  - hostname: {name: node-1}
  - sshd: {settings: {PasswordAuthentication: "no"}}
  - firewall:
      allow:
        - {protocol: tcp, ports: [22]}
        - {protocol: tcp, ports: ["2379-2380"], sources: [10.0.0.0/24, "fd00::/8"]}
  - reboot: {requested_at: "2026-01-31T12:00:00Z"}
"#;

/// The same document in each form: a secret by name, by value, by digest.
fn documents() -> [(Form, String); 3] {
    let secret = "secret: {base64: czNjcjN0}";
    [
        (Form::Spec, MACHINE.replace(secret, "secret: apitoken")),
        (Form::Machine, MACHINE.to_owned()),
        (
            Form::Record,
            MACHINE.replace(secret, "secret: {digest: \"hmac-sha256:00ff\"}"),
        ),
    ]
}

fn forms() -> impl Strategy<Value = Form> {
    prop_oneof![Just(Form::Spec), Just(Form::Machine), Just(Form::Record)]
}

/// One edit at a relative position (per mille of the length) of the text.
#[derive(Clone, Debug)]
enum Edit {
    Insert(u16, String),
    Delete(u16, u8),
    DuplicateLine(u16),
    DropLine(u16),
    SwapWithNextLine(u16),
}

fn edit() -> impl Strategy<Value = Edit> {
    let at = 0u16..1000;
    prop_oneof![
        (
            at.clone(),
            "[ :,'\"\\-\\[\\]{}|>&*!#%@a-z0-9./\\\\\\n\\t]{1,8}"
        )
            .prop_map(|(a, s)| Edit::Insert(a, s)),
        (at.clone(), any::<String>()).prop_map(|(a, s)| Edit::Insert(a, s)),
        (at.clone(), 1u8..40).prop_map(|(a, n)| Edit::Delete(a, n)),
        at.clone().prop_map(Edit::DuplicateLine),
        at.clone().prop_map(Edit::DropLine),
        at.prop_map(Edit::SwapWithNextLine),
    ]
}

fn boundary(s: &str, per_mille: u16) -> usize {
    let i = s.len() * usize::from(per_mille) / 1000;
    (0..=i).rev().find(|i| s.is_char_boundary(*i)).unwrap_or(0)
}

fn apply(text: &str, edits: &[Edit]) -> String {
    let mut s = text.to_owned();
    for e in edits {
        match e {
            Edit::Insert(at, ins) => s.insert_str(boundary(&s, *at), ins),
            Edit::Delete(at, n) => {
                let from = boundary(&s, *at);
                let to = (from + usize::from(*n)).min(s.len());
                let to = (to..=s.len()).find(|i| s.is_char_boundary(*i)).unwrap();
                s.replace_range(from..to, "");
            }
            Edit::DuplicateLine(at) | Edit::DropLine(at) | Edit::SwapWithNextLine(at) => {
                let mut lines: Vec<String> = s.lines().map(str::to_owned).collect();
                if lines.is_empty() {
                    continue;
                }
                let i = (lines.len() - 1) * usize::from(*at) / 1000;
                match e {
                    Edit::DuplicateLine(_) => lines.insert(i, lines[i].clone()),
                    Edit::DropLine(_) => drop(lines.remove(i)),
                    _ if i + 1 < lines.len() => lines.swap(i, i + 1),
                    _ => {}
                }
                s = lines.join("\n");
                s.push('\n');
            }
        }
    }
    s
}

/// What must hold for every input: no panic, and an accepted document renders in its form and
/// reads back the same.
fn check(text: &str, form: Form) -> Result<(), TestCaseError> {
    let Ok(d) = NodeDesired::parse(text, "desired.yml", form) else {
        return Ok(());
    };
    let rendered = match form {
        Form::Machine => d.render_for_machine(),
        Form::Spec | Form::Record => d
            .render()
            .map_err(|e| TestCaseError::fail(format!("{form:?}: does not render: {e}")))?,
    };
    let again = NodeDesired::parse(&rendered, "desired.yml", form).map_err(|e| {
        TestCaseError::fail(format!(
            "{form:?}: renders into a refused document: {e}\n{rendered}"
        ))
    })?;
    prop_assert_eq!(again, d);
    Ok(())
}

#[test]
fn the_documents_are_valid_in_their_forms() {
    for (form, text) in documents() {
        NodeDesired::parse(&text, "desired.yml", form).unwrap();
        check(&text, form).unwrap();
    }
}

proptest! {
    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,400}", form in forms()) {
        check(&text, form)?;
    }

    #[test]
    fn yaml_like_text_never_panics(
        text in "(kind: NodeDesired\nversion: v1\n)?[ :,'\"\\-\\[\\]{}|>&*!#a-z0-9./\\n]{0,300}",
        form in forms(),
    ) {
        check(&text, form)?;
    }

    #[test]
    fn edited_documents_never_panic(
        doc in 0usize..3,
        edits in proptest::collection::vec(edit(), 1..6),
        form in forms(),
    ) {
        let text = apply(&documents()[doc].1, &edits);
        check(&text, form)?;
    }

    #[test]
    fn reports_never_panic(text in "\\PC{0,300}") {
        let _ = NodeCurrent::parse(&text, "current.yml");
    }

    #[test]
    fn edited_reports_never_panic(edits in proptest::collection::vec(edit(), 1..6)) {
        let mut c = NodeCurrent::new("0.1.0");
        c.generation = Some(7);
        c.items.push(ItemState {
            id: "package:etcd-server".into(),
            observed: "3.4.23-4 (held)".into(),
            in_sync: false,
            pending: vec!["install etcd-server 3.4.23-4".into()],
            last_error: Some("apt-get: \"failed\"".into()),
        });
        let text = apply(&c.to_yaml().unwrap(), &edits);
        if let Ok(c) = NodeCurrent::parse(&text, "current.yml") {
            let _ = c.render_text();
            let again = NodeCurrent::parse(&c.to_yaml().unwrap(), "current.yml").unwrap();
            prop_assert_eq!(again, c);
        }
    }
}
