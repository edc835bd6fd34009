//! What a person may change from Mission Control, as pure edits of orbiter.yml: scale a pool
//! of a provider that creates machines, ask for a machine's reboot or replacement, or replace
//! the whole text. Each result is validated exactly as `orbctl validate` does; an invalid one
//! is refused with its line and column and nothing is committed.

use anyhow::{Result, anyhow, bail};
use orb_model::registry::{MachineFlag, ProviderSpec};
use orb_model::{Id, Located, ORBITER_YML, Orb};
use orbiter::machine::MachineKey;

/// One change, with the commit message it gets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Edit {
    Scale {
        provider: Id,
        pool: Id,
        nodes: u32,
    },
    Flag {
        machine: MachineKey,
        flag: MachineFlag,
    },
    Text(String),
}

impl Edit {
    pub fn message(&self) -> String {
        let what = match self {
            Edit::Scale {
                provider,
                pool,
                nodes,
            } => format!("Scale {provider}.{pool} to {nodes} machines"),
            Edit::Flag {
                machine,
                flag: MachineFlag::Reboot,
            } => format!("Reboot {machine}"),
            Edit::Flag { machine, .. } => format!("Replace {machine}"),
            Edit::Text(_) => "Edit orbiter.yml".to_owned(),
        };
        format!("{what}\n\nby Mission Control")
    }

    /// The new orbiter.yml for the current text `text` (`None` when there is none yet).
    pub fn apply(&self, text: Option<&str>) -> Result<String> {
        if let Edit::Text(t) = self {
            Orb::parse(t, ORBITER_YML)?;
            return Ok(t.clone());
        }
        let text = text.ok_or_else(|| anyhow!("the Orb has no {ORBITER_YML} yet"))?;
        let mut orb = Orb::parse(text, ORBITER_YML).map_err(|e| {
            anyhow!("{ORBITER_YML} is not valid now, so it is edited as text only: {e}")
        })?;
        match self {
            Edit::Scale {
                provider,
                pool,
                nodes,
            } => {
                let node = orb
                    .providers
                    .get_mut(provider)
                    .ok_or_else(|| anyhow!("no provider {provider}"))?;
                let ProviderSpec::Local(local) = &mut node.spec else {
                    bail!(
                        "the pools of provider {provider} list their machines; edit {ORBITER_YML} to add or remove one"
                    );
                };
                let p = local
                    .pools
                    .get_mut(pool)
                    .ok_or_else(|| anyhow!("no pool {provider}.{pool}"))?;
                p.nodes = Located::new(*nodes);
            }
            Edit::Flag { machine, flag } => {
                let node = orb
                    .providers
                    .get_mut(&machine.provider)
                    .ok_or_else(|| anyhow!("no provider {}", machine.provider))?;
                let list = node.spec.flags_mut(*flag);
                if !list.iter().any(|l| l.value == machine.machine) {
                    list.push(Located::new(machine.machine.clone()));
                }
            }
            Edit::Text(_) => unreachable!("handled above"),
        }
        let out = orb.to_yaml();
        Orb::parse(&out, ORBITER_YML)?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORB: &str = "kind: Orb
version: v1
providers:
  loc:
    kind: LocalProvider
    version: v1
    spec:
      pools:
        web:
          nodes: 2
";

    fn id(s: &str) -> Id {
        Id::parse(s).unwrap()
    }

    #[test]
    fn scale_and_flags_are_valid_orbs() {
        let scaled = Edit::Scale {
            provider: id("loc"),
            pool: id("web"),
            nodes: 5,
        }
        .apply(Some(ORB))
        .unwrap();
        assert!(scaled.contains("nodes: 5"), "{scaled}");
        let flagged = Edit::Flag {
            machine: MachineKey::parse("loc.web-2").unwrap(),
            flag: MachineFlag::Replace,
        };
        let once = flagged.apply(Some(&scaled)).unwrap();
        assert_eq!(
            flagged.apply(Some(&once)).unwrap(),
            once,
            "asking twice changes nothing"
        );
        assert!(once.contains("web-2"), "{once}");
        assert_eq!(flagged.message(), "Replace loc.web-2\n\nby Mission Control");
    }

    #[test]
    fn bad_edits_say_why_and_where() {
        let e = Edit::Scale {
            provider: id("loc"),
            pool: id("db"),
            nodes: 1,
        }
        .apply(Some(ORB))
        .unwrap_err();
        assert_eq!(e.to_string(), "no pool loc.db");
        let bad = Edit::Text(ORB.replace("nodes: 2", "nodes: two")).apply(Some(ORB));
        let msg = bad.unwrap_err().to_string();
        assert!(msg.starts_with("orbiter.yml:10:"), "{msg}");
        let on_invalid = Edit::Scale {
            provider: id("loc"),
            pool: id("web"),
            nodes: 1,
        }
        .apply(Some("kind: Orb\nversion: v1\nproviders: [\n"));
        assert!(
            on_invalid
                .unwrap_err()
                .to_string()
                .contains("edited as text only")
        );
    }
}
