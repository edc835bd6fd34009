//! Property tests: rendering and re-reading an Orb changes nothing, secrets included, and the
//! parser never panics on arbitrary input.

use orb_model::kinds::static_provider::{StaticKeys, StaticMachine, StaticProvider};
use orb_model::{Hostname, Id, Located, Node, Orb, ProviderSpec};
use orb_secrets::Envelope;
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

fn id() -> impl Strategy<Value = Id> {
    "[a-z][a-z0-9-]{0,10}[a-z0-9]".prop_map(|s| Id::parse(&s).unwrap())
}

fn envelope() -> impl Strategy<Value = Option<Envelope>> {
    proptest::option::of("[A-Za-z0-9+/]{20,60}={0,2}".prop_map(|v| Envelope {
        encrypted: "v1".into(),
        path: "x.y".into(),
        value: v,
    }))
}

fn provider() -> impl Strategy<Value = StaticProvider> {
    (
        proptest::collection::btree_map(id(), proptest::collection::vec(id(), 1..4), 1..4),
        envelope(),
        envelope(),
        "[a-z]{1,8}",
    )
        .prop_map(|(pools, a, b, user)| {
            let mut n = 0u32;
            let pools: BTreeMap<Id, Vec<StaticMachine>> = pools
                .into_iter()
                .map(|(pool, ids)| {
                    let machines = ids
                        .into_iter()
                        .map(|mid| {
                            n += 1;
                            StaticMachine {
                                id: Located::new(Id::parse(&format!("{mid}-{n}")).unwrap()),
                                hostname: Hostname::parse(&format!("host-{n}.example")).unwrap(),
                                ip: Located::new(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + n))),
                                hostkey: None,
                            }
                        })
                        .collect();
                    (pool, machines)
                })
                .collect();
            StaticProvider {
                user: Located::new(user),
                pools,
                keys: StaticKeys {
                    bootstrapkeyprivate: a,
                    maintenancekeypublic: b,
                    ..Default::default()
                },
                rebootrequired: Vec::new(),
                replacementrequired: Vec::new(),
                loadbalancing: None,
            }
        })
}

proptest! {
    #[test]
    fn render_and_reparse_is_identity(providers in proptest::collection::btree_map(id(), provider(), 0..3)) {
        let orb = Orb {
            providers: providers.into_iter().map(|(k, v)| (k, Node::new(ProviderSpec::Static(v)))).collect(),
            clusters: BTreeMap::new(),
            software: BTreeMap::new(),
            rollout: Default::default(),
        };
        let text = orb.to_yaml();
        let back = Orb::parse(&text, "orbiter.yml").map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        prop_assert_eq!(&back, &orb);
        prop_assert_eq!(back.to_yaml(), text);
    }

    #[test]
    fn setting_a_secret_leaves_everything_else(p in provider(), v in "[A-Za-z0-9]{10,40}") {
        let orb = Orb { providers: [(Id::parse("lab").unwrap(), Node::new(ProviderSpec::Static(p)))].into(), clusters: BTreeMap::new(), software: BTreeMap::new(), rollout: Default::default() };
        let mut changed = Orb::parse(&orb.to_yaml(), "orbiter.yml").unwrap();
        *changed.secret_mut("lab.bootstrapkeypublic").unwrap() = Some(Envelope { encrypted: "v1".into(), path: "lab.bootstrapkeypublic".into(), value: v });
        let mut reread = Orb::parse(&changed.to_yaml(), "orbiter.yml").unwrap();
        *reread.secret_mut("lab.bootstrapkeypublic").unwrap() = orb.clone().secret_mut("lab.bootstrapkeypublic").unwrap().clone();
        prop_assert_eq!(reread, orb);
    }

    #[test]
    fn parser_never_panics(text in "\\PC{0,400}") {
        let _ = Orb::parse(&text, "orbiter.yml");
    }

    #[test]
    fn parser_never_panics_on_mutated_example(cut in 0usize..900, insert in "[ :\\-\\[\\]{}a-z0-9\\n]{0,6}") {
        let good = include_str!("../../../examples/static-lab/orbiter.yml");
        let cut = cut.min(good.len());
        let cut = (0..=cut).rev().find(|i| good.is_char_boundary(*i)).unwrap();
        let text = format!("{}{}{}", &good[..cut], insert, &good[cut..]);
        let _ = Orb::parse(&text, "orbiter.yml");
    }
}

#[test]
fn unknown_secret_path_lists_valid_ones() {
    let mut orb = Orb::parse(
        include_str!("../../../examples/static-lab/orbiter.yml"),
        "orbiter.yml",
    )
    .unwrap();
    let e = orb
        .secret_mut("lab.bootstrapkeyprivat")
        .unwrap_err()
        .to_string();
    assert!(e.contains("did you mean `lab.bootstrapkeyprivate`"), "{e}");
    assert!(e.contains("lab.maintenancekeypublic"), "{e}");
}
