//! Plan latency with simulated providers: an Orb with N static machines in 10 pools, node
//! software on every pool, every machine observed converged except one in ten, which needs its
//! node-desired state rewritten. Prints `plan_<n>_ms=` (median of 5) for 1k and 10k machines.

use node_protocol::NodeCurrent;
use orb_model::{Orb, ProviderSpec};
use orbiter::machine::MachineKey;
use orbiter::node_desired::{SoftwareSecrets, items_for, next_doc};
use orbiter::observe::sha256_hex;
use orbiter::observed::{AgentObserved, MachineObserved, Observed, ProviderObserved, Reach};
use orbiter::plan::{AgentRelease, PlanInput, Recorded, listed_machines, plan};
use orbiter::ssh::HostKey;
use std::collections::BTreeMap;
use std::time::Instant;

/// The digest records hold: keyed in Orbiter, any stable function here.
fn digest(b: &[u8]) -> String {
    format!("sha256:{}", sha256_hex(b))
}

fn orb(n: usize) -> Orb {
    let mut y = String::from(
        "kind: Orb\nversion: v1\nproviders:\n  lab:\n    kind: StaticProvider\n    version: v1\n    spec:\n      pools:\n",
    );
    for pool in 0..10 {
        y.push_str(&format!("        p{pool}:\n"));
        for i in 0..n / 10 {
            let k = pool * (n / 10) + i;
            y.push_str(&format!(
                "          - id: m{k}\n            hostname: m{k}\n            ip: 10.{}.{}.{}\n",
                k / 65536,
                (k / 256) % 256,
                k % 256
            ));
        }
    }
    y.push_str(
        "software:\n  base:\n    kind: NodeSoftware\n    version: v1\n    spec:\n      pools: [",
    );
    y.push_str(
        &(0..10)
            .map(|p| format!("lab.p{p}"))
            .collect::<Vec<_>>()
            .join(", "),
    );
    y.push_str("]\n      items:\n        - package: {name: etcd-server, version: 3.4.23-4+b4}\n        - file: {path: /etc/motd, content: hello}\n");
    Orb::parse(&y, "orbiter.yml").expect("generated Orb is valid")
}

fn main() {
    let agent = AgentRelease {
        version: "0.1.0".into(),
        sha256: "ab".repeat(32),
    };
    let host_key = HostKey(
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl".into(),
    );
    for n in [1_000usize, 10_000] {
        let orb = orb(n);
        let id = orb.providers.keys().next().unwrap().clone();
        let ProviderSpec::Static(spec) = &orb.providers[&id].spec else {
            unreachable!("the bench Orb has a Static provider")
        };
        let machines = listed_machines(&id, spec);
        let providers: BTreeMap<_, _> = orb
            .providers
            .iter()
            .map(|(id, n)| (id.clone(), orbiter::providers::for_spec(id, &n.spec)))
            .collect();
        let secrets = SoftwareSecrets::new();
        let mut recorded = Recorded::default();
        recorded.maintenance_keys.insert(id.clone());
        let mut observed = Observed::default();
        let mut po = ProviderObserved::default();
        for (i, m) in machines.iter().enumerate() {
            let items = items_for(&orb, m, None, &secrets).expect("no secrets needed");
            let (doc, record) = next_doc(None, items, &digest);
            let mut current = NodeCurrent::new("0.1.0");
            current.ready = true;
            current.generation = Some(doc.generation);
            recorded
                .pinned
                .insert(MachineKey::clone(&m.key), host_key.clone());
            let on_machine = if i % 10 == 0 {
                None
            } else {
                Some(sha256_hex(doc.render_for_machine().as_bytes()))
            };
            recorded.node_desired.insert(m.key.clone(), record);
            po.machines.push(MachineObserved {
                machine: m.clone(),
                reach: Reach::Maintenance,
                agent: Some(AgentObserved {
                    version: agent.version.clone(),
                    sha256: agent.sha256.clone(),
                    active: true,
                }),
                desired_sha256: on_machine,
                current: Some(current),
            });
        }
        observed.providers.insert(id, po);
        let mut times = Vec::new();
        let mut steps = 0;
        // Steady state: the pools' rollout records are those the first plan made.
        let mut rollouts = BTreeMap::new();
        for round in 0..6 {
            let t = Instant::now();
            let p = plan(&PlanInput {
                orb: &orb,
                providers: &providers,
                recorded: &recorded,
                observed: &observed,
                agent: &agent,
                now: "2026-11-26T00:00:00Z",
                clusters: &orbiter::clusters::ClusterNeeds::default(),
                secrets: &secrets,
                digest: &digest,
                host_keys: &Default::default(),
                rollouts: &rollouts,
                revision_secrets: &BTreeMap::new(),
                now_secs: 1_795_651_200,
            });
            if round == 0 {
                rollouts = p.rollouts;
                continue;
            }
            times.push(t.elapsed().as_secs_f64() * 1000.0);
            steps = p.steps.len();
        }
        times.sort_by(|a, b| a.partial_cmp(b).unwrap());
        assert_eq!(steps, n / 10, "one in ten machines needs its desired state");
        let label = if n == 1000 { "1k" } else { "10k" };
        println!("plan_{label}_ms={:.1}", times[2]);
    }
}
