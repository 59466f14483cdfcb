//! pgpm: a PostgreSQL package manager and schema deployer.
//!
//! The library is the engine; the `pgpm` binary (`src/main.rs` and its
//! `cli` modules) parses arguments and renders what the engine returns.
//! The engine is layered, each layer importing only from those above it in
//! this list, and nothing above [`db`] talks to a database:
//!
//! - [`util`], [`version`], [`event`]: helpers, versions, progress events;
//! - [`package`]: manifests, workspaces, dependency resolution (pure);
//! - [`sql`]: splitting files into statements, what they define and use,
//!   their order (pure);
//! - [`plan`]: a workspace and what is deployed in, ordered packages out (pure);
//! - [`db`]: connecting, quoting, the lock, scripts of actions;
//! - [`config`]: the project's `pgpm.toml` and `.env`, the ancestor's
//!   `~/.pgpmconfig`, and selecting targets;
//! - [`catalog`]: the `_pgpm` schema and every read and write of it;
//! - [`migrate`]: numbered patches: names, scan, migration plan, run;
//! - [`ops`]: the commands (deploy, migrate, remove, status, sandbox);
//! - [`error`]: the aggregate error and exit codes, for the edge.
//!
//! [`cluster`] starts throwaway PostgreSQL clusters for the sandbox and tests.
//! Applications use the `pgpm-client` crate; the engine speaks its protocol.

pub mod catalog;
pub mod cluster;
pub mod config;
pub mod db;
pub mod error;
pub mod event;
pub mod migrate;
pub mod ops;
pub mod package;
pub mod plan;
pub mod sql;
pub mod util;
pub mod version;

pub use error::{Error, Result};

/// The version of pgpm recorded in the catalog with every change it makes.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
