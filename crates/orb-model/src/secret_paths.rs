//! Addressing secrets as `<provider, cluster or software id>.<field>`, e.g.
//! `lab.bootstrapkeyprivate` or `base.apitoken`.
//! The path is also the associated data the secret is sealed with, so it must be stable.

use crate::hint::closest;
use crate::orb::Orb;
use orb_secrets::Envelope;

impl Orb {
    /// Every secret slot with its path: providers, clusters, then software, each in id order.
    pub fn secrets_mut(&mut self) -> Vec<(String, &mut Option<Envelope>)> {
        let mut out = Vec::new();
        for (id, node) in &mut self.providers {
            for (name, slot) in node.spec.model_mut().secrets_mut() {
                out.push((format!("{id}.{name}"), slot));
            }
        }
        for (id, node) in &mut self.clusters {
            for (name, slot) in node.spec.model_mut().secrets_mut() {
                out.push((format!("{id}.{name}"), slot));
            }
        }
        for (id, node) in &mut self.software {
            for (name, slot) in node.spec.model_mut().secrets_mut() {
                out.push((format!("{id}.{name}"), slot));
            }
        }
        out
    }

    /// Paths of all secret slots and whether each is set.
    pub fn secret_paths(&self) -> Vec<(String, bool)> {
        let mut copy = self.clone();
        copy.secrets_mut()
            .into_iter()
            .map(|(p, s)| (p, s.is_some()))
            .collect()
    }

    /// The slot at `path`, or an error listing the valid paths.
    pub fn secret_mut(&mut self, path: &str) -> Result<&mut Option<Envelope>, UnknownSecretPath> {
        let paths: Vec<String> = self.secret_paths().into_iter().map(|(p, _)| p).collect();
        match self.secrets_mut().into_iter().find(|(p, _)| p == path) {
            Some((_, slot)) => Ok(slot),
            None => Err(UnknownSecretPath {
                path: path.to_owned(),
                valid: paths,
            }),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownSecretPath {
    pub path: String,
    pub valid: Vec<String>,
}

impl std::fmt::Display for UnknownSecretPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "no secret at `{}`", self.path)?;
        if let Some(c) = closest(&self.path, self.valid.iter().map(String::as_str)) {
            write!(f, "; did you mean `{c}`?")?;
        }
        if self.valid.is_empty() {
            write!(
                f,
                "\n  hint: this Orb has no secret fields yet; add a provider to orbiter.yml first"
            )
        } else {
            write!(f, "\n  valid paths: {}", self.valid.join(", "))
        }
    }
}

impl std::error::Error for UnknownSecretPath {}
