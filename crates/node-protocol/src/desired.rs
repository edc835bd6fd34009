//! The node-desired document: versioned YAML (`kind: NodeDesired`, `version: v1`) with a
//! generation, whether the agent may change the machine, and the items. Parsing reports
//! `origin:line:col` and never quotes the document (it may hold secrets).

use crate::error::{ProtocolError as Error, Result};
use crate::items::{Item, Reboot};
use crate::secret::{FileSecret, reveal};
use serde::{Deserialize, Serialize};
use serde_saphyr::Spanned;

pub const KIND: &str = "NodeDesired";
pub const VERSION: &str = "v1";

/// Which of the three forms a document or item is in; they differ only in how a secret file's
/// content appears (see [`crate::secret`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Form {
    /// Items in `orbiter.yml`: secrets by name.
    Spec,
    /// The document on the machine: secret bytes.
    Machine,
    /// The document recorded in the Orb repository: secret digests.
    Record,
}

impl Form {
    pub fn describe(self) -> &'static str {
        match self {
            Form::Spec => "orbiter.yml",
            Form::Machine => "a machine's node-desired document",
            Form::Record => "a node-desired record in the Orb repository",
        }
    }
}

/// A validated node-desired document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeDesired {
    pub generation: u64,
    pub changes_allowed: bool,
    pub items: Vec<Item>,
}

#[derive(Serialize)]
struct DocOut<'a> {
    kind: &'static str,
    version: &'static str,
    generation: u64,
    changesallowed: bool,
    items: &'a [Item],
}

#[derive(Deserialize)]
struct Header {
    kind: Option<String>,
    version: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DocV1 {
    #[allow(dead_code)]
    kind: String,
    #[allow(dead_code)]
    version: String,
    generation: u64,
    changesallowed: bool,
    #[serde(default)]
    items: Vec<Spanned<Item>>,
}

fn yaml_options() -> serde_saphyr::Options {
    let mut o = serde_saphyr::Options::default();
    // Snippets would quote the file, and file contents may be secrets.
    o.with_snippet = false;
    o
}

/// `origin:line:col: message` from a YAML error (first line only: no quoted input).
pub fn yaml_error(origin: &str, e: &serde_saphyr::Error) -> Error {
    let msg = e.to_string();
    let first = msg
        .lines()
        .next()
        .unwrap_or_default()
        .trim_start_matches("error: ");
    match e.location() {
        Some(loc) => {
            let suffix = format!(" at line {}, column {}", loc.line(), loc.column());
            let text = first.strip_suffix(&suffix).unwrap_or(first);
            Error::new(format!("{origin}:{}:{}: {text}", loc.line(), loc.column()))
        }
        None => Error::new(format!("{origin}: {first}")),
    }
}

/// Parses and validates the document a machine gets; `origin` (the file name) prefixes errors.
pub fn parse_desired(text: &str, origin: &str) -> Result<NodeDesired> {
    NodeDesired::parse(text, origin, Form::Machine)
}

impl NodeDesired {
    pub fn new(generation: u64, items: Vec<Item>) -> NodeDesired {
        NodeDesired {
            generation,
            changes_allowed: true,
            items,
        }
    }

    /// Parses and validates a document in `form`.
    pub fn parse(text: &str, origin: &str, form: Form) -> Result<NodeDesired> {
        let yaml_err = |e: serde_saphyr::Error| yaml_error(origin, &e);
        let header: Header =
            serde_saphyr::from_str_with_options(text, yaml_options()).map_err(yaml_err)?;
        match header.kind.as_deref() {
            Some(KIND) => {}
            Some(k) => {
                return Err(Error::new(format!(
                    "{origin}: kind is `{k}`, expected `{KIND}`; hint: is this the node-desired file?"
                )));
            }
            None => return Err(Error::new(format!("{origin}: missing `kind: {KIND}`"))),
        }
        match header.version.as_deref() {
            Some(VERSION) => {}
            Some(v) => {
                return Err(Error::new(format!(
                    "{origin}: version `{v}` of {KIND} is not known here; supported: {VERSION}; hint: a newer Orbiter wrote it: upgrade this program"
                )));
            }
            None => {
                return Err(Error::new(format!(
                    "{origin}: missing `version: {VERSION}`"
                )));
            }
        }
        let doc: DocV1 =
            serde_saphyr::from_str_with_options(text, yaml_options()).map_err(yaml_err)?;
        let mut items = Vec::with_capacity(doc.items.len());
        let mut places = Vec::with_capacity(doc.items.len());
        for (i, spanned) in doc.items.into_iter().enumerate() {
            let loc = spanned.referenced;
            let item = spanned.value;
            let place = format!(
                "{origin}:{}:{}: items[{i}] ({})",
                loc.line(),
                loc.column(),
                item.id()
            );
            item.validate(form).map_err(|e| e.context(&place))?;
            items.push(item);
            places.push(place);
        }
        let desired = NodeDesired {
            generation: doc.generation,
            changes_allowed: doc.changesallowed,
            items,
        };
        desired.validate_items(origin, &places)?;
        Ok(desired)
    }

    fn out(&self) -> DocOut<'_> {
        DocOut {
            kind: KIND,
            version: VERSION,
            generation: self.generation,
            changesallowed: self.changes_allowed,
            items: &self.items,
        }
    }

    /// The document for its machine, secret values included.
    pub fn render_for_machine(&self) -> String {
        reveal(|| serde_saphyr::to_string(&self.out())).expect("node-desired always serializes")
    }

    /// The document without secret values (a record, or a document that has none). Fails when
    /// it still holds a secret value: redact it first with [`NodeDesired::redacted`].
    pub fn render(&self) -> Result<String> {
        serde_saphyr::to_string(&self.out()).map_err(|e| Error::new(e.to_string()))
    }

    /// The record form: every secret value replaced by `digest(value)`.
    pub fn redacted(&self, digest: &dyn Fn(&[u8]) -> String) -> NodeDesired {
        let mut copy = self.clone();
        for item in &mut copy.items {
            if let Item::File(f) = item
                && let Some(FileSecret::Value(v)) = &f.secret
            {
                f.secret = Some(FileSecret::Digest(digest(v.expose())));
            }
        }
        copy
    }

    /// The RFC 3339 time of a reboot item, if the document asks for one.
    pub fn reboot_requested_at(&self) -> Option<&str> {
        self.items.iter().find_map(|i| match i {
            Item::Reboot(Reboot { requested_at }) => Some(requested_at.as_str()),
            _ => None,
        })
    }
}
