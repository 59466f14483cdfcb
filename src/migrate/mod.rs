//! Numbered patch migrations: `patch-MAJOR-MINOR-POINT-TYPE.sql`, applied
//! once each, with their history in `_pgpm.migrations`.
//!
//! The model is Launchpad's `lazr.postgresql`. The flow is the crate's:
//! [`scan`] reads a directory into [`Patch`]es; [`plan`] is pure and turns
//! the patches and the catalog's [`Applied`] rows into the ordered
//! [`Group`]s that will run; [`execute`] runs exactly that plan under pgpm's
//! advisory lock. [`migrate`] does all three.
//!
//! Patches are ordered by their numbers (1-10-0 after 1-9-0), and pending
//! patches are taken in groups of adjacent patches of one type:
//!
//! - `std` and `direct` groups run in one transaction: the history rows, the
//!   patches and their end times commit together or not at all. (`direct`
//!   patches are meant for every node of a cluster; on one database they
//!   behave like `std`.)
//! - `concurrent` patches hold statements that cannot run in a transaction
//!   (`CREATE INDEX CONCURRENTLY`, `VACUUM`). Each patch's history row is
//!   inserted by a transaction on the main connection, which also keeps
//!   anyone else from applying it, while its statements run one by one in
//!   autocommit on a second connection; the row's end time is set and the
//!   transaction commits only when every statement succeeded.
//!
//! A plain run applies only the first group: each group may take locks that
//! stall a busy production database, so moving on is a deliberate act
//! (`--all`).
use std::path::PathBuf;

use postgres::error::SqlState;

use crate::catalog::CatalogError;
use crate::db::QueryError;
use crate::db::conninfo::ConnError;
use crate::db::lock::LockError;
use crate::sql::SqlError;
use crate::util::text::{Location, TextError};

mod locate;
pub mod name;
pub mod plan;
pub mod run;
pub mod scan;
pub mod script;
#[cfg(test)]
mod tests;

use name::{PatchId, PatchType};
use plan::Drifted;

/// Where patches are looked for when no directory is given.
pub const DEFAULT_DIR: &str = "patches";

#[derive(Debug, thiserror::Error)]
pub enum PatchError {
    #[error("patch directory {} does not exist", path.display())]
    NoDir { path: PathBuf },
    #[error(
        "{}: looks like a patch but is not named patch-MAJOR-MINOR-POINT-TYPE.sql: {reason}", path.display()
    )]
    BadName { path: PathBuf, reason: String },
    #[error("{} and {} are both patch {id}", first.display(), second.display())]
    Duplicate {
        id: PatchId,
        first: PathBuf,
        second: PathBuf,
    },
    #[error(
        "{}: named like a patch but not a readable file (a directory, a dangling link or a link loop)",
        path.display()
    )]
    NotAFile { path: PathBuf },
    #[error(transparent)]
    Text(#[from] TextError),
    #[error("cannot read {}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "interrupted: the patch or group in progress was rolled back and is not applied (what had committed before stays, as its lines above say)"
    )]
    Interrupted,
    #[error(
        "{file_name} is applied already, and it comes after the baseline {version}: a baseline only records what the database had before pgpm managed its patches"
    )]
    BaselineBehind { file_name: String, version: PatchId },
    #[error("no patch in {} is numbered {version} or lower; nothing to baseline", dir.display())]
    BaselineEmpty { dir: PathBuf, version: PatchId },
    #[error(transparent)]
    Sql(#[from] SqlError),
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error(transparent)]
    Conn(#[from] ConnError),
    #[error(transparent)]
    Query(#[from] QueryError),
    #[error("{}", drift_message(.0))]
    Drift(Vec<Drifted>),
    #[error(
        "the first pending patch, {file_name}, is a {kind} patch, and --type allows only {}",
        list(allowed)
    )]
    TypeNotAllowed {
        file_name: String,
        kind: PatchType,
        allowed: Vec<PatchType>,
    },
    #[error(
        "{}:{line}:{column}: transaction control ({statement}) in a {kind} patch: pgpm runs the group in one transaction and records it in that transaction; remove it",
        path.display()
    )]
    TransactionControl {
        path: PathBuf,
        line: usize,
        column: usize,
        statement: String,
        kind: PatchType,
    },
    /// A statement of a `std` or `direct` patch failed; the group was rolled back.
    #[error("{}", failed_message(location, group, source))]
    Failed {
        /// Where the failing statement is (or the patch alone), or `None`
        /// when the failing patch could not be told.
        location: Option<Location>,
        /// The file names of the group, none of which is applied.
        group: Vec<String>,
        #[source]
        source: postgres::Error,
    },
    #[error(
        "this database has no lazrdatabaserevision table: it is not managed by lp-migrate (lazr.postgresql)"
    )]
    NoLazr,
    /// A pending patch is numbered below the newest applied one.
    #[error(
        "{file_name} is pending but numbered before {newest}, which is applied already: it was added after a newer patch ran; apply it anyway with --out-of-order, or renumber it after {newest}"
    )]
    OutOfOrder { file_name: String, newest: String },
    /// `migrate accept` of a patch that is not applied.
    #[error("{file_name} is not applied, so there is no checksum to accept: migrate applies it")]
    AcceptNotApplied { file_name: String },
    /// `migrate accept` of a patch whose file is as applied.
    #[error("{file_name} is as it was applied (same checksum); nothing to accept")]
    AcceptUnchanged { file_name: String },
    /// `migrate accept` of a file that is not a patch of the directory.
    #[error("{} is not a patch of {}", file.display(), dir.display())]
    AcceptUnknown { file: PathBuf, dir: PathBuf },
    /// A statement of a `std` or `direct` patch waited longer than the lock
    /// timeout on every attempt; the group is not applied.
    #[error(transparent)]
    ObjectLocks(crate::db::blockers::LockWaitError),
    /// A statement of a `concurrent` patch failed; the patch is not recorded.
    #[error("{}", concurrent_message(failure))]
    ConcurrentFailed {
        /// What failed and what it left (boxed: it is large).
        failure: Box<ConcurrentFailure>,
        #[source]
        source: postgres::Error,
    },
    /// A group's SQL did not run to its end: pgpm's marks between patches
    /// were swallowed, most likely by an unterminated quote or comment.
    #[error(
        "{file_name} did not run to its end (pgpm's mark after it never ran): look for an unterminated string, quoted identifier, dollar quote or comment; the group was rolled back"
    )]
    Unfinished { file_name: String },
    /// Every statement of a concurrent patch ran, but an index it creates
    /// is INVALID: an interrupted build left it, and `IF NOT EXISTS` kept it.
    #[error(
        "{file_name} ran, but it leaves index(es) {} INVALID (an interrupted build left them, and IF NOT EXISTS kept them); the patch is not recorded: drop them with DROP INDEX CONCURRENTLY and run migrate again",
        indexes.join(", ")
    )]
    InvalidIndex {
        file_name: String,
        indexes: Vec<String>,
    },
}

/// What a failed concurrent patch had done and left behind.
#[derive(Debug)]
pub struct ConcurrentFailure {
    /// Where the failing statement is.
    pub location: Location,
    pub file_name: String,
    /// 1-based number of the failing statement, and how many there are.
    pub statement: usize,
    pub statements: usize,
    /// `path:line:column: statement` of the statements that ran and were committed.
    pub committed: Vec<String>,
    /// Statements an earlier, interrupted run completed, as
    /// `statement N of M at TIME: excerpt`.
    pub earlier: Vec<String>,
    /// Indexes left `INVALID` by the failure, schema-qualified and quoted.
    pub invalid_indexes: Vec<String>,
}

impl PatchError {
    /// Everything here is the user's to fix, except a failure that is not
    /// the server rejecting a statement (a lost connection).
    pub fn is_user_error(&self) -> bool {
        match self {
            PatchError::Failed { source, .. } | PatchError::ConcurrentFailed { source, .. } => {
                source.as_db_error().is_some()
            }
            // An unreadable patch file is the user's to fix; an unreadable
            // directory listing is not expected.
            PatchError::Io { .. } => false,
            PatchError::Query(_) => false,
            PatchError::Catalog(e) => e.is_user_error(),
            PatchError::Conn(e) => e.is_user_error(),
            _ => true,
        }
    }
}

fn list(types: &[PatchType]) -> String {
    types
        .iter()
        .map(|t| t.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn drift_message(drifted: &[Drifted]) -> String {
    let mut out = String::new();
    for (i, d) in drifted.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        out.push_str(&format!(
            "{} has changed since it was applied on {} by {} (recorded checksum {}, file now {})",
            d.path.display(),
            d.applied.applied_at,
            d.applied.applied_by,
            short(&d.applied.checksum),
            short(&d.checksum)
        ));
    }
    out.push_str(
        "\napplied patches must not change: restore the file and put the change in a new patch",
    );
    out
}

fn short(checksum: &str) -> &str {
    checksum.get(..12).unwrap_or(checksum)
}

fn failed_message(
    location: &Option<Location>,
    group: &[String],
    source: &postgres::Error,
) -> String {
    let mut out = match location {
        Some(location) => format!("{location}: patch failed"),
        None => "a patch of the group failed (pgpm could not tell which)".to_string(),
    };
    if group.len() == 1 {
        out.push_str(&format!("; rolled back, {} is not applied", group[0]));
    } else {
        out.push_str(&format!(
            "; rolled back its group, none of {} is applied",
            group.join(", ")
        ));
    }
    if source.code() == Some(&SqlState::ACTIVE_SQL_TRANSACTION) {
        out.push_str(
            "\nthis statement cannot run inside a transaction: move it to a patch of type concurrent",
        );
    }
    out
}

fn concurrent_message(failure: &ConcurrentFailure) -> String {
    let ConcurrentFailure {
        location,
        file_name,
        statement,
        statements,
        committed,
        earlier,
        invalid_indexes,
    } = failure;
    let mut out = format!(
        "{location}: statement {statement} of {statements} of concurrent patch {file_name} failed; the patch is not recorded as applied"
    );
    if !earlier.is_empty() {
        out.push_str("\nan earlier run of the patch was interrupted after completing:");
        for e in earlier {
            out.push_str(&format!("\n  {e}"));
        }
    }
    if committed.is_empty() && earlier.is_empty() {
        out.push_str("\nno earlier statement of the patch ran");
    } else if !committed.is_empty() {
        out.push_str(
            "\nthese statements ran and were committed, and may need manual cleanup before the patch runs again:",
        );
        for c in committed {
            out.push_str(&format!("\n  {c}"));
        }
    }
    for index in invalid_indexes {
        out.push_str(&format!(
            "\nindex {index} was left INVALID by the failed build: drop it with DROP INDEX CONCURRENTLY {index};"
        ));
    }
    out
}
