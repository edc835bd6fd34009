//! The SSH keys Orbiter logs in with, per provider: the maintenance key it generated (kept in
//! `orbiter/secrets.yml`) and, for Static providers until the maintenance key is installed, the
//! person's bootstrap key from orbiter.yml.

use std::fmt;
use zeroize::Zeroizing;

/// Private keys are zeroized when dropped.
#[derive(Clone, Default)]
pub struct Credentials {
    pub maintenance_private: Option<Zeroizing<String>>,
    pub maintenance_public: Option<String>,
    pub bootstrap_private: Option<Zeroizing<String>>,
    pub bootstrap_public: Option<String>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("maintenance", &self.maintenance_private.is_some())
            .field("bootstrap", &self.bootstrap_private.is_some())
            .finish()
    }
}

/// Secret paths in `orbiter/secrets.yml`.
pub fn maintenance_private_path(provider: &orb_model::Id) -> String {
    format!("orbiter.{provider}.maintenancekeyprivate")
}

pub fn maintenance_public_path(provider: &orb_model::Id) -> String {
    format!("orbiter.{provider}.maintenancekeypublic")
}
