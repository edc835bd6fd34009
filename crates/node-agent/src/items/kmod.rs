//! Kernel modules: loaded now (`modprobe`) and at boot (/etc/modules-load.d/node-agent.conf).

use super::{Action, Op};
use crate::error::Result;
use crate::exec::Cmd;
use crate::host::Host;
use node_protocol::KernelModule;
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    pub loaded: bool,
}

impl fmt::Display for Observed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.loaded { "loaded" } else { "not loaded" })
    }
}

/// Loaded (or built-in with parameters) modules appear under /sys/module with `_` for `-`.
pub fn observe(host: &Host, k: &KernelModule) -> Result<Observed> {
    Ok(Observed {
        loaded: host
            .path(format!("/sys/module/{}", k.name.replace('-', "_")))
            .exists(),
    })
}

pub fn plan(k: &KernelModule, o: &Observed) -> Vec<Action> {
    if o.loaded {
        vec![]
    } else {
        vec![Action::new(
            Op::Modprobe {
                name: k.name.clone(),
            },
            "not loaded",
        )]
    }
}

pub fn load(host: &Host, name: &str) -> Result<()> {
    host.run_ok(&Cmd::new("modprobe").args(["--", name]))
        .map(|_| ())
}

pub fn render_conf(items: &[&KernelModule]) -> Option<String> {
    if items.is_empty() {
        return None;
    }
    let mut s = String::from(
        "# Written by node-agent from the node-desired state; local edits are reverted.\n",
    );
    for k in items {
        s.push_str(&k.name);
        s.push('\n');
    }
    Some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observes_sys_module_and_renders() {
        let tmp = tempfile::tempdir().unwrap();
        let h = Host::with_root(tmp.path(), tmp.path().join("state"));
        let k = KernelModule {
            name: "br-netfilter".into(),
        };
        assert_eq!(
            plan(&k, &observe(&h, &k).unwrap())[0].to_string(),
            "modprobe br-netfilter: not loaded"
        );
        std::fs::create_dir_all(h.path("/sys/module/br_netfilter")).unwrap();
        assert!(plan(&k, &observe(&h, &k).unwrap()).is_empty());
        assert!(render_conf(&[&k]).unwrap().ends_with("\nbr-netfilter\n"));
    }
}
