//! The desired state of an Orb: the typed model of `orbiter.yml`, strict parsing with
//! `file:line:col` errors and hints, the registry of kinds with their version migrations, and
//! secret addressing. No I/O: callers hand in text and get text back.

pub mod error;
pub mod hint;
pub mod id;
pub mod kinds;
pub mod located;
pub mod node;
pub mod orb;
pub mod registry;
pub mod rollout;
pub mod secret_paths;
mod validate;

pub use error::ModelError;
pub use id::{Hostname, Id};
pub use located::{Located, Pos};
pub use node::Node;
pub use orb::{ORBITER_YML, Orb};
pub use registry::{ClusterSpec, ProviderSpec};
pub use secret_paths::UnknownSecretPath;
