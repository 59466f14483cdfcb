//! The crate's error type and the exit codes it maps to.
//!
//! Each layer owns an error enum of its own (`ManifestError`, `SqlError`,
//! `CatalogError`, `DeployError`, ...) and converts the errors of the
//! layers below it; [`Error`] gathers them at the edge, for the command
//! line. Messages never repeat their source: the CLI prints the whole
//! chain once.
//!
//! Exit codes: 0 success, 1 something the user can fix (bad input, refusal,
//! SQL error in a package file, lock not obtained), 2 unexpected (I/O,
//! connection, a bug).

use std::path::PathBuf;

use crate::catalog::CatalogError;
use crate::cluster::ClusterError;
use crate::config::ConfigError;
use crate::db::QueryError;
use crate::db::conninfo::ConnError;
use crate::db::lock::LockError;
use crate::migrate::PatchError;
use crate::ops::adopt::AdoptError;
use crate::ops::deploy::DeployError;
use crate::ops::execute::ExecuteError;
use crate::ops::remove::RemoveError;
use crate::ops::sandbox::SandboxError;
use crate::ops::status::StatusError;
use crate::package::manifest::ManifestError;
use crate::package::resolve::ResolveError;
use crate::package::workspace::WorkspaceError;
use crate::plan::PlanError;
use crate::sql::SqlError;
pub use crate::util::text::Location;
use crate::util::text::TextError;

/// Exit code for errors the user can fix.
pub const EXIT_USER: u8 = 1;
/// Exit code for unexpected errors (I/O, connection, bugs).
pub const EXIT_UNEXPECTED: u8 = 2;
/// Exit code of `status --exit-code` when the database is behind: patches
/// pending, or packages of the workspace not deployed as they are.
pub const EXIT_BEHIND: u8 = 3;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Conn(#[from] ConnError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error(transparent)]
    Patch(Box<PatchError>),
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    #[error(transparent)]
    Sql(#[from] SqlError),
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error(transparent)]
    Workspace(Box<WorkspaceError>),
    #[error(transparent)]
    Resolve(Box<ResolveError>),
    /// Other reasons a workspace cannot be planned.
    #[error(transparent)]
    Plan(Box<PlanError>),
    #[error(transparent)]
    Deploy(Box<DeployError>),
    #[error(transparent)]
    Remove(#[from] RemoveError),
    #[error(transparent)]
    Adopt(Box<AdoptError>),
    #[error(transparent)]
    Execute(#[from] ExecuteError),
    #[error(transparent)]
    Status(Box<StatusError>),
    #[error(transparent)]
    Sandbox(Box<SandboxError>),
    #[error(transparent)]
    Query(#[from] QueryError),
    #[error("cannot read {}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A command-line usage problem detected after argument parsing.
    #[error("{0}")]
    Usage(String),
    /// Targets of a set failed or did not run (each reported above).
    #[error("{} of {total} targets failed{}{}", failed.len(), if failed.is_empty() { String::new() } else { format!(": {}", failed.join(", ")) }, if *skipped > 0 { format!("; {skipped} did not run") } else { String::new() })]
    Fleet {
        failed: Vec<String>,
        skipped: usize,
        total: usize,
        /// The highest exit code of the failed targets.
        code: u8,
    },
}

/// Workspace errors that are about one manifest or file are reported as such.
impl From<WorkspaceError> for Error {
    fn from(e: WorkspaceError) -> Error {
        match e {
            WorkspaceError::Manifest(e) => Error::Manifest(e),
            WorkspaceError::Text(TextError::Io { path, source })
            | WorkspaceError::Io { path, source } => Error::Io { path, source },
            e => Error::Workspace(Box::new(e)),
        }
    }
}

/// A plan fails on SQL or on resolution.
impl From<PlanError> for Error {
    fn from(e: PlanError) -> Error {
        match e {
            PlanError::Sql(e) => Error::Sql(e),
            PlanError::Resolve(e) => Error::Resolve(Box::new(e)),
            e => Error::Plan(Box::new(e)),
        }
    }
}

/// The largest errors are boxed, so that every `Result` stays small.
macro_rules! boxed_from {
    ($($variant:ident($ty:ty)),*) => {
        $(impl From<$ty> for Error {
            fn from(e: $ty) -> Error {
                Error::$variant(Box::new(e))
            }
        })*
    };
}

/// A deploy that fails on its plan (SQL, resolution) or on the catalog
/// fails as those do.
impl From<DeployError> for Error {
    fn from(e: DeployError) -> Error {
        match e {
            DeployError::Plan(e) => e.into(),
            DeployError::Catalog(e) => Error::Catalog(e),
            e => Error::Deploy(Box::new(e)),
        }
    }
}

/// A patch that fails to parse fails as SQL does.
impl From<PatchError> for Error {
    fn from(e: PatchError) -> Error {
        match e {
            PatchError::Sql(e) => Error::Sql(e),
            e => Error::Patch(Box::new(e)),
        }
    }
}

boxed_from!(
    Adopt(AdoptError),
    Resolve(ResolveError),
    Status(StatusError),
    Sandbox(SandboxError)
);

impl From<LockError> for Error {
    fn from(e: LockError) -> Error {
        Error::Catalog(e.into())
    }
}

impl Error {
    /// Wraps an I/O error with the path it concerns.
    pub fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { path, source }
    }

    /// Whether the user can fix the error (exit 1) rather than it being
    /// unexpected (exit 2).
    pub fn is_user_error(&self) -> bool {
        match self {
            Error::Conn(e) => e.is_user_error(),
            Error::Config(e) => e.is_user_error(),
            Error::Catalog(e) => e.is_user_error(),
            Error::Patch(e) => e.is_user_error(),
            Error::Deploy(e) => e.is_user_error(),
            Error::Remove(e) => e.is_user_error(),
            Error::Adopt(e) => e.is_user_error(),
            Error::Execute(e) => e.is_user_error(),
            Error::Status(e) => e.is_user_error(),
            Error::Sandbox(e) => e.is_user_error(),
            Error::Usage(_) | Error::Sql(_) | Error::Manifest(_) => true,
            Error::Fleet { code, .. } => *code == EXIT_USER,
            Error::Workspace(_) | Error::Resolve(_) | Error::Plan(_) => true,
            Error::Cluster(_) | Error::Query(_) | Error::Io { .. } => false,
        }
    }

    /// The process exit code for this error: 1 when the user can fix it, 2 otherwise.
    pub fn exit_code(&self) -> u8 {
        if let Error::Fleet { code, .. } = self {
            return *code;
        }
        if self.is_user_error() {
            EXIT_USER
        } else {
            EXIT_UNEXPECTED
        }
    }
}

impl Error {
    /// A short, stable name of the error's kind for programs (`--json`):
    /// the layer it comes from.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Conn(_) => "connection",
            Error::Config(_) => "config",
            Error::Catalog(_) => "catalog",
            Error::Patch(_) => "patch",
            Error::Cluster(_) => "cluster",
            Error::Sql(_) => "sql",
            Error::Manifest(_) => "manifest",
            Error::Workspace(_) => "workspace",
            Error::Resolve(_) => "resolve",
            Error::Plan(_) => "plan",
            Error::Deploy(_) => "deploy",
            Error::Remove(_) => "remove",
            Error::Adopt(_) => "adopt",
            Error::Execute(_) => "execute",
            Error::Status(_) => "status",
            Error::Sandbox(_) => "sandbox",
            Error::Query(_) => "query",
            Error::Io { .. } => "io",
            Error::Usage(_) => "usage",
            Error::Fleet { .. } => "fleet",
        }
    }

    /// The file (and line and column) the error is about, when it is
    /// about one.
    pub fn location(&self) -> Option<Location> {
        match self {
            Error::Sql(e) => sql_location(e),
            Error::Manifest(e) => manifest_location(e),
            Error::Workspace(e) => workspace_location(e),
            Error::Resolve(e) => match &**e {
                ResolveError::Missing { path, .. } | ResolveError::Unsatisfiable { path, .. } => {
                    some_file(path)
                }
                _ => None,
            },
            Error::Plan(e) => plan_location(e),
            Error::Deploy(e) => deploy_location(e),
            Error::Patch(e) => patch_location(e),
            Error::Config(
                ConfigError::Io { path, .. }
                | ConfigError::Invalid { path, .. }
                | ConfigError::Conn { path, .. },
            ) => some_file(path),
            Error::Io { path, .. } => some_file(path),
            _ => None,
        }
    }
}

fn sql_location(e: &SqlError) -> Option<Location> {
    match e {
        SqlError::Syntax {
            file, line, column, ..
        }
        | SqlError::Placeholder {
            file, line, column, ..
        }
        | SqlError::TooDeep {
            file, line, column, ..
        } => some_at(file, *line, *column),
        SqlError::Cycle { cycles, .. } => cycles
            .first()
            .and_then(|c| c.first())
            .and_then(|o| some_at(&o.file, o.line, 1)),
    }
}

fn manifest_location(e: &ManifestError) -> Option<Location> {
    match e {
        ManifestError::Json {
            path, line, column, ..
        } => some_at(path, *line, *column),
        e => some_file(e.path()),
    }
}

fn text_location(e: &TextError) -> Option<Location> {
    match e {
        TextError::Io { path, .. } | TextError::NotUtf8 { path, .. } => some_file(path),
    }
}

fn workspace_location(e: &WorkspaceError) -> Option<Location> {
    match e {
        WorkspaceError::NotFound { path }
        | WorkspaceError::Empty { path }
        | WorkspaceError::Io { path, .. } => some_file(path),
        WorkspaceError::Duplicate { second, .. } => some_file(second),
        WorkspaceError::SchemaClash { second_path, .. } => some_file(second_path),
        WorkspaceError::FileInTwoPhases { manifest, .. } => some_file(manifest),
        WorkspaceError::Manifest(e) => manifest_location(e),
        WorkspaceError::Text(e) => text_location(e),
    }
}

fn plan_location(e: &PlanError) -> Option<Location> {
    match e {
        PlanError::Sql(e) => sql_location(e),
        PlanError::EventTrigger {
            file, line, column, ..
        }
        | PlanError::OutsideTransaction {
            file, line, column, ..
        }
        | PlanError::SessionControl {
            file, line, column, ..
        }
        | PlanError::SearchPath {
            file, line, column, ..
        } => some_at(file, *line, *column),
        PlanError::Resolve(_) => None,
    }
}

fn deploy_location(e: &DeployError) -> Option<Location> {
    use crate::db::script::ScriptError;
    match e {
        DeployError::TableScriptChanged { file, .. } => some_file(file),
        DeployError::FileMissing { path }
        | DeployError::FileNotInPackage { path }
        | DeployError::Io { path, .. } => some_file(path),
        DeployError::ServerTooOld {
            file, line, column, ..
        } => some_at(file, *line, *column),
        DeployError::Extension { manifest, .. } | DeployError::UnknownSetting { manifest, .. } => {
            some_file(manifest)
        }
        DeployError::Plan(e) => plan_location(e),
        DeployError::Script(ScriptError::Statement {
            file, line, column, ..
        }) => some_at(file, *line, *column),
        _ => None,
    }
}

fn patch_location(e: &PatchError) -> Option<Location> {
    match e {
        PatchError::NoDir { path }
        | PatchError::BadName { path, .. }
        | PatchError::NotAFile { path }
        | PatchError::Io { path, .. } => some_file(path),
        PatchError::Duplicate { second, .. } => some_file(second),
        PatchError::Text(e) => text_location(e),
        PatchError::Sql(e) => sql_location(e),
        PatchError::TransactionControl {
            path, line, column, ..
        } => some_at(path, *line, *column),
        PatchError::Failed { location, .. } => location.clone(),
        PatchError::ConcurrentFailed { failure, .. } => Some(failure.location.clone()),
        PatchError::AcceptUnknown { file, .. } => some_file(file),
        _ => None,
    }
}

fn some_file(file: &std::path::Path) -> Option<Location> {
    Some(Location::file(file))
}

fn some_at(file: &std::path::Path, line: usize, column: usize) -> Option<Location> {
    Some(Location::at(file, line, column))
}
