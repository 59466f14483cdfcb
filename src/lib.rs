//! pgpm: a PostgreSQL package manager and schema deployer.
//!
//! The library is the engine; the `pgpm` binary is a thin shell around
//! [`cli::run`]. Data flows from disk to database:
//! manifests and SQL files ([`manifest`], [`workspace`], [`sql`]) are
//! resolved ([`resolve`]) into a plan ([`plan`]) that is executed against a
//! server whose catalog ([`catalog`]) records what was deployed.

pub mod catalog;
pub mod checksum;
pub mod cli;
pub mod client;
pub mod cluster;
pub mod db;
pub mod deploy;
pub mod error;
pub mod lock;
pub mod manifest;
pub mod patches;
pub mod plan;
pub mod remove;
pub mod resolve;
pub mod sandbox;
pub mod sql;
pub mod status;
pub mod workspace;

pub use error::{Error, Result};

/// The version of pgpm recorded in the catalog with every change it makes.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
