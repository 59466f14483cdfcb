//! pgpm's integration tests: one binary, one throwaway PostgreSQL cluster
//! for all of them (see [`common`]), a fresh database per test.

mod common;

mod ancestor;
mod announce;
mod cli;
mod client;
mod deploy;
mod fleet;
mod install;
mod live;
mod migrate;
mod operate;
mod ordering;
mod output;
mod plan;
mod safety;
mod semver_sql;
