//! Packages on disk: manifests, finding them in a workspace, and resolving
//! their dependencies. Pure: nothing here talks to a database.

pub mod manifest;
pub mod resolve;
pub mod workspace;
