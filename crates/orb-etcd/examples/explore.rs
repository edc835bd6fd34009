//! Brings up a machine group with etcd packages for manual exploration (root). Prints the
//! group name; take it down with `orb-machines down --name NAME`.
use orb_machines::{Group, GroupSpec, Host, Suite};

fn main() {
    let host = Host::new().expect("host");
    host.base_image().expect("base image");
    let name = std::env::args().nth(1).unwrap_or_else(|| "etcdx".into());
    let pubkey = std::fs::read_to_string(std::env::args().nth(2).expect("pubkey file")).unwrap();
    let g = Group::up(
        &host,
        &GroupSpec {
            name: name.clone(),
            pubkey,
            net_admin: false,
        },
    )
    .expect("up");
    g.add_packages(Suite::Bookworm, &["etcd-server", "etcd-client"])
        .expect("bookworm");
    g.add_packages(Suite::Trixie, &["etcd-server", "etcd-client"])
        .expect("trixie");
    for m in g.create_machines(&["m1", "m2", "m3"]).expect("machines") {
        println!("{} {} pid={:?}", m.id(), m.ip(), m.init_pid());
    }
    println!("group {name} up; apt {}", g.apt_url());
}
