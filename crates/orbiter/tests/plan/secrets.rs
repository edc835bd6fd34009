//! Secrets in node-desired documents: the value in the machine's document, only a digest in
//! the record; a secret that is not set keeps the document as it is; records written before
//! secrets were kept out of Git are rewritten without a new generation. And the effects the
//! plan prints instead of doing: generating a cluster's secrets, offering packages.

use crate::world::*;
use base64::Engine as _;
use node_protocol::{File, FileSecret, Item, NodeDesired, SecretBytes};
use orb_model::Id;
use orbiter::clusters::ClusterNeeds;
use orbiter::observed::PackageCatalog;
use orbiter::plan::Action;

const TOKEN: &str = "file: {path: /etc/token, secret: token, mode: \"0600\"}";

fn token_in(doc: &NodeDesired) -> Option<&FileSecret> {
    doc.items.iter().find_map(|i| match i {
        Item::File(f) if f.path == "/etc/token" => f.secret.as_ref(),
        _ => None,
    })
}

fn record_of<'a>(p: &'a orbiter::plan::Plan, k: &str) -> &'a NodeDesired {
    p.steps
        .iter()
        .find_map(|s| match &s.action {
            Action::WriteNodeDesired {
                machine, record, ..
            } if *machine == key(k) => Some(record),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no write to {k}"))
}

#[test]
fn a_software_secret_is_in_the_machine_document_and_only_its_digest_in_the_record() {
    let mut w = World::new(&[lab(&[])], &[]);
    w.orb = orb_items(&[lab(&[])], &[TOKEN]);
    w.all_at_once();
    w.secrets.insert(
        "base.token".into(),
        Ok(SecretBytes::new(b"hunter2".to_vec())),
    );
    let p = w.plan();
    assert_steps(
        &p,
        &["write lab.a1 g2", "write lab.a2 g2", "write lab.b1 g2"],
    );
    let doc = written(&p, "lab.a1");
    assert_eq!(
        token_in(doc),
        Some(&FileSecret::Value(SecretBytes::new(b"hunter2".to_vec())))
    );
    let record = record_of(&p, "lab.a1");
    assert_eq!(
        token_in(record),
        Some(&FileSecret::Digest(digest(b"hunter2")))
    );
    let text = record.render().unwrap();
    let b64 = base64::engine::general_purpose::STANDARD.encode(b"hunter2");
    assert!(!text.contains("hunter2") && !text.contains(&b64), "{text}");
    // The machine's form is the only one with the value; a plan's JSON never has it.
    assert!(doc.render_for_machine().contains(&b64));
    assert!(!serde_json::to_string(&p).unwrap().contains(&b64));

    // Applied: converged. A new value: a new generation everywhere.
    w.apply(&p, usize::MAX);
    assert_steps(&w.plan(), &[]);
    w.secrets.insert(
        "base.token".into(),
        Ok(SecretBytes::new(b"hunter3".to_vec())),
    );
    let p = w.plan();
    assert_steps(
        &p,
        &["write lab.a1 g3", "write lab.a2 g3", "write lab.b1 g3"],
    );
    assert_reason(
        &p,
        "write lab.a1 g3",
        "orbiter.yml asks for other node software",
    );
}

#[test]
fn a_secret_that_is_not_set_or_does_not_open_keeps_the_document_as_it_is() {
    let mut w = World::new(&[lab(&[])], &[]);
    w.orb = orb_items(&[lab(&[])], &[TOKEN]);
    let p = w.plan();
    assert_steps(&p, &[]);
    assert_waits(
        &p,
        "node-desired state of lab.a1 kept as it is: secret base.token is not set; hint: orbctl writesecret base.token",
    );
    w.secrets
        .insert("base.token".into(), Err("tampered".into()));
    let p = w.plan();
    assert_steps(&p, &[]);
    assert_waits(&p, "secret base.token cannot be opened: tampered");
}

#[test]
fn records_with_secret_content_from_older_orbiters_are_rewritten_without_a_new_generation() {
    let mut w = World::new(&[loc(1, &[])], &["p-1"]);
    let k = key("loc.p-1");
    let value = b"-----BEGIN PRIVATE KEY-----\nkey\n-----END PRIVATE KEY-----\n";
    let secret = File::secret(
        "/etc/kv/server.key",
        FileSecret::Value(SecretBytes::new(value.to_vec())),
        "0600",
    );
    let mut needs = ClusterNeeds::default();
    needs.items.insert(k.clone(), vec![Item::File(secret)]);
    // What an older Orbiter recorded and wrote: the same item with the key as content.
    let old_item = Item::File(File::text(
        "/etc/kv/server.key",
        String::from_utf8(value.to_vec()).unwrap(),
        "0600",
    ));
    let mut old = w.recorded.node_desired[&k].clone();
    old.generation = 7;
    old.items.push(old_item);
    w.recorded.node_desired.insert(k.clone(), old.clone());
    w.m("loc.p-1").desired_sha256 = on_machine(&old);
    w.m("loc.p-1").current.as_mut().unwrap().generation = Some(7);

    let p = w.plan_with(&needs);
    assert_steps(&p, &["write loc.p-1 g7"]);
    let record = record_of(&p, "loc.p-1").render().unwrap();
    assert!(
        !record.contains("PRIVATE KEY") && record.contains("digest:"),
        "{record}"
    );
}

#[test]
fn generating_a_clusters_secrets_and_offering_packages_are_steps_first() {
    let mut w = World::new(&[loc(1, &[])], &["p-1"]);
    w.orb = orb_items(&[loc(1, &[])], &["package: {name: jq, version: 1.6-2.1}"]);
    let loc_id = Id::parse("loc").unwrap();
    let catalog = |versions: &[(&str, &str)], asked: &[&str]| PackageCatalog {
        versions: versions
            .iter()
            .map(|(n, v)| (n.to_string(), [v.to_string()].into()))
            .collect(),
        asked: asked.iter().map(|a| a.to_string()).collect(),
    };
    w.observed.providers.get_mut(&loc_id).unwrap().packages = Some(catalog(&[], &[]));
    let mut needs = ClusterNeeds::default();
    needs
        .generate
        .push((Id::parse("kv").unwrap(), "TLS certificates (CA)".into()));
    let p = w.plan_with(&needs);
    assert_steps(&p, &["gensecrets kv", "offer loc jq", "write loc.p-1 g2"]);
    // Offered already, or in the repository: not again.
    for c in [catalog(&[], &["jq"]), catalog(&[("jq", "1.6-2.1")], &[])] {
        w.observed.providers.get_mut(&loc_id).unwrap().packages = Some(c);
        assert_steps(&w.plan(), &["write loc.p-1 g2"]);
    }
}
