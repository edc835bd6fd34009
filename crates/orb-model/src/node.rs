//! A subtree of `orbiter.yml` in the current version of its kind, with where it was read from.
//! Its own module because kinds hold subtrees too (a provider's `loadbalancing`), and kinds
//! must not depend on the reader in `orb.rs`.

use crate::located::Pos;

/// A subtree with its spec in the current version of its kind. Equality compares the spec only:
/// where it was read from and in which version does not change what it asks for.
#[derive(Clone, Debug)]
pub struct Node<S> {
    pub spec: S,
    /// The version the file had when it was older than the current one.
    pub migrated_from: Option<String>,
    pub pos: Option<Pos>,
}

impl<S: PartialEq> PartialEq for Node<S> {
    fn eq(&self, other: &Self) -> bool {
        self.spec == other.spec
    }
}
impl<S: Eq> Eq for Node<S> {}

impl<S> Node<S> {
    pub fn new(spec: S) -> Self {
        Node {
            spec,
            migrated_from: None,
            pos: None,
        }
    }
}
