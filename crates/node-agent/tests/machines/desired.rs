//! The node-desired document the scenario writes: the etcd versions it installs, the knobs
//! that change from one generation to the next (`Spec`) and the YAML built from them.

use orb_machines::Machine;

pub(crate) const ETCD_OLD: &str = "3.4.23-4+b4";
pub(crate) const ETCD_NEW: &str = "3.5.16-4";

/// The parts of the document that change from one generation to the next.
pub(crate) struct Spec<'a> {
    pub(crate) generation: u64,
    /// Content of the machine's apt source file (orb-machines' /etc/apt/sources.list.d/orb.list).
    pub(crate) sources: String,
    pub(crate) etcd: &'a str,
    pub(crate) firewall: bool,
    pub(crate) sshd_max_auth: &'a str,
    pub(crate) demo_conf: &'a str,
    pub(crate) extra: &'a str,
}

pub(crate) fn desired(m: &Machine, s: &Spec) -> String {
    let ip = m.ip();
    let firewall = if s.firewall {
        "  - firewall:\n      allow:\n        - {protocol: tcp, ports: [22]}\n        - {protocol: tcp, ports: [2379], sources: [\"10.0.0.0/8\", \"172.16.0.0/12\", \"192.168.0.0/16\"]}\n"
    } else {
        ""
    };
    format!(
        r#"kind: NodeDesired
version: v1
generation: {generation}
changesallowed: true
items:
  - aptsource: {{name: orb, content: "{sources}"}}
  - package: {{name: etcd-server, version: "{etcd}"}}
  - file:
      path: /etc/default/etcd
      content: |
        ETCD_LISTEN_CLIENT_URLS="http://0.0.0.0:2379"
        ETCD_ADVERTISE_CLIENT_URLS="http://{ip}:2379"
        ETCD_LISTEN_PEER_URLS="http://0.0.0.0:2380"
  - unit:
      name: etcd.service
      dropins: {{10-node-agent.conf: "[Service]\nLimitNOFILE=65536\n"}}
      enabled: true
      active: true
      restart_on: [/etc/default/etcd]
  - directory: {{path: /etc/demo, mode: "0750"}}
  - file: {{path: /etc/demo/demo.conf, content: "{demo}\n", mode: "0640"}}
  - unit:
      name: demo.service
      content: "[Unit]\nDescription=node-agent e2e demo\n[Service]\nExecStart=/bin/sleep infinity\n[Install]\nWantedBy=multi-user.target\n"
      enabled: true
      active: true
      restart_on: [/etc/demo/demo.conf]
  - sysctl: {{key: net.ipv4.ip_forward, value: 1}}
  - kernelmodule: {{name: overlay}}
  - swap: {{enabled: false}}
  - hostname: {{name: na-node-1}}
  - sshd: {{settings: {{MaxAuthTries: "{sshd}"}}}}
{firewall}{extra}"#,
        generation = s.generation,
        sources = s.sources.replace('\n', "\\n"),
        etcd = s.etcd,
        demo = s.demo_conf,
        sshd = s.sshd_max_auth,
        extra = s.extra,
    )
}
