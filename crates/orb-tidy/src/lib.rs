//! Tidy checks for the Orbiter workspace: this crate has one job, failing `cargo test --workspace`
//! when the architecture described in `ARCHITECTURE.md` rots.
//!
//! The library is intentionally empty. The checks are integration tests in `tests/`:
//!
//! - `crate_edges.rs`, from `cargo metadata`: pure crates gain no I/O dependencies, forbidden
//!   edges stay absent, and every edge between workspace crates is listed in an allowed table
//!   that must be updated consciously;
//! - `tidy.rs`: no `*.rs` file under `crates/*/{src,tests,benches}` is longer than 600 lines, and
//!   no import cycles between the top-level modules of a crate, nor between the sibling modules
//!   inside a directory module (`tests/fixtures/modules` pins how paths are resolved).
//!
//! The tests read only files of this repository and run `cargo metadata --offline`; they need
//! neither root nor network.
