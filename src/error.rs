//! The crate's error type and the exit codes it maps to.
//!
//! Each module that can fail in ways a user should tell apart owns an enum of
//! its own (`ConnError`, `CatalogError`, ...); [`Error`] gathers them. Messages
//! never repeat their source: [`report`] prints the whole chain once.
//!
//! Exit codes: 0 success, 1 something the user can fix (bad input, refusal,
//! SQL error in a package file, lock not obtained), 2 unexpected (I/O,
//! connection, a bug).

use std::fmt::Write as _;
use std::path::PathBuf;

/// Exit code for errors the user can fix.
pub const EXIT_USER: u8 = 1;
/// Exit code for unexpected errors (I/O, connection, bugs).
pub const EXIT_UNEXPECTED: u8 = 2;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Conn(#[from] crate::db::ConnError),
    #[error(transparent)]
    Catalog(#[from] crate::catalog::CatalogError),
    #[error(transparent)]
    Lock(#[from] crate::lock::LockError),
    #[error(transparent)]
    Patch(#[from] crate::patches::PatchError),
    #[error(transparent)]
    Client(#[from] crate::client::ClientError),
    #[error(transparent)]
    Cluster(#[from] crate::cluster::ClusterError),
    #[error(transparent)]
    Sql(#[from] crate::sql::SqlError),
    #[error(transparent)]
    Manifest(#[from] crate::manifest::ManifestError),
    #[error(transparent)]
    Workspace(#[from] crate::workspace::WorkspaceError),
    #[error(transparent)]
    Resolve(#[from] crate::resolve::ResolveError),
    #[error(transparent)]
    Deploy(#[from] crate::deploy::DeployError),
    #[error(transparent)]
    Remove(#[from] crate::remove::RemoveError),
    /// A statement pgpm itself issued failed; `context` says what pgpm was doing.
    #[error("{context}")]
    Db {
        context: String,
        #[source]
        source: postgres::Error,
    },
    #[error("cannot read {}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A command-line usage problem detected after argument parsing.
    #[error("{0}")]
    Usage(String),
}

impl Error {
    /// Wraps a database error with what pgpm was doing when it happened.
    pub fn db(context: impl Into<String>) -> impl FnOnce(postgres::Error) -> Error {
        let context = context.into();
        move |source| Error::Db { context, source }
    }

    /// Wraps an I/O error with the path it concerns.
    pub fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { path, source }
    }

    /// The process exit code for this error: 1 when the user can fix it, 2 otherwise.
    pub fn exit_code(&self) -> u8 {
        let user = match self {
            Error::Conn(e) => e.is_user_error(),
            Error::Catalog(e) => e.is_user_error(),
            Error::Client(e) => e.is_user_error(),
            Error::Patch(e) => e.is_user_error(),
            Error::Lock(_) | Error::Usage(_) | Error::Sql(_) => true,
            Error::Manifest(_) | Error::Workspace(_) | Error::Resolve(_) => true,
            Error::Deploy(_) | Error::Remove(_) => true,
            Error::Cluster(_) | Error::Db { .. } | Error::Io { .. } => false,
        };
        if user { EXIT_USER } else { EXIT_UNEXPECTED }
    }
}

/// Formats an error and its chain of causes, one per line, for stderr.
///
/// A PostgreSQL error contributes its message, detail and hint.
pub fn report(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = format!("error: {err}");
    let mut source = err.source();
    while let Some(cause) = source {
        if let Some(db) = cause
            .downcast_ref::<postgres::Error>()
            .and_then(|e| e.as_db_error())
        {
            let _ = write!(out, "\n  caused by: {}: {}", db.severity(), db.message());
            if let Some(detail) = db.detail() {
                let _ = write!(out, "\n  detail: {detail}");
            }
            if let Some(hint) = db.hint() {
                let _ = write!(out, "\n  hint: {hint}");
            }
            break;
        }
        let _ = write!(out, "\n  caused by: {cause}");
        source = cause.source();
    }
    out
}
