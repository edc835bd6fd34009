//! Mission Control: a web UI over one or many Orbs whose only backend is their Git
//! repositories. What it shows is what Git says (fetched at most every few seconds); nothing
//! here talks to a machine. Pages are rendered on the server from typed data, every text from
//! a machine or a commit escaped ([`html::esc`]); no secret is ever read (it never uses the
//! masterkey).
//!
//! `source` opens and caches each Orb's view, `pages/` renders it, `server` routes requests
//! and guards them (bound to loopback unless a token is configured).

pub mod edits;
pub mod html;
pub mod pages;
pub mod server;
pub mod source;

pub use server::{Options, serve};
pub use source::OrbSource;
