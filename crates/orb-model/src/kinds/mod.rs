//! The shapes of every kind an `orbiter.yml` can contain, one module per kind. Which kinds and
//! versions exist, and how old versions migrate, is decided in [`crate::registry`] only.

pub mod etcd_cluster;
pub mod local_provider;
pub mod node_software;
pub mod static_provider;
