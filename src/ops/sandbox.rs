//! `pgpm sandbox`: a local PostgreSQL with the workspace deployed, in one command.
//!
//! The cluster lives under `.pgpm/sandbox/` of the current directory and is
//! reused by later runs; it is started with the server binaries installed on
//! the machine (see [`crate::cluster`]). When that directory cannot hold the
//! cluster (a path the `postgres` user cannot reach, as under `/root`, or one
//! too long for a Unix socket), the cluster goes to a directory under the
//! system's temporary directory and `.pgpm/sandbox/cluster-dir` points to it.

use std::path::{Path, PathBuf};

use postgres::Client;

use super::deploy::{self, DeployError, DeployOptions, DeployReport};
use super::migrate::{self, MigrateOptions};
use crate::catalog::{self, CatalogError, InstallOptions};
use crate::cluster::{self, Cluster, ClusterError, ClusterOptions};
use crate::db::QueryError;
use crate::db::conninfo::{ConnError, ConnInfo};
use crate::db::quote::quote_ident;
use crate::event::Event;
use crate::migrate::{PatchError, scan};
use crate::package::workspace::{Workspace, WorkspaceError};
use crate::util::checksum;

/// Why the sandbox could not be brought up.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error(transparent)]
    Workspace(#[from] WorkspaceError),
    #[error(transparent)]
    Patch(#[from] PatchError),
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    #[error(transparent)]
    Conn(#[from] ConnError),
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error(transparent)]
    Deploy(#[from] Box<DeployError>),
    #[error(transparent)]
    Query(#[from] QueryError),
    #[error("cannot use {}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl SandboxError {
    pub fn is_user_error(&self) -> bool {
        match self {
            SandboxError::Workspace(e) => !matches!(e, WorkspaceError::Io { .. }),
            SandboxError::Patch(e) => e.is_user_error(),
            SandboxError::Conn(e) => e.is_user_error(),
            SandboxError::Catalog(e) => e.is_user_error(),
            SandboxError::Deploy(e) => e.is_user_error(),
            SandboxError::Cluster(_) | SandboxError::Query(_) | SandboxError::Io { .. } => false,
        }
    }

    fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SandboxError + '_ {
        move |source| SandboxError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

type Result<T, E = SandboxError> = std::result::Result<T, E>;

/// The sandbox's database.
pub const DATABASE: &str = "pgpm_sandbox";

/// Unix socket paths are limited to 107 bytes; leave room for `/.s.PGSQL.NNNNN`.
const MAX_SOCKET_DIR: usize = 80;

/// Where the sandbox's cluster lives for the project at `root`.
pub fn cluster_dir(root: &Path) -> Result<PathBuf> {
    let marker_dir = root.join(".pgpm/sandbox");
    let pointer = marker_dir.join("cluster-dir");
    if let Ok(dir) = std::fs::read_to_string(&pointer) {
        return Ok(PathBuf::from(dir.trim()));
    }
    std::fs::create_dir_all(&marker_dir).map_err(SandboxError::io(&marker_dir))?;
    let marker_dir = marker_dir
        .canonicalize()
        .map_err(SandboxError::io(&marker_dir))?;
    if cluster::reachable_by_server(&marker_dir) && marker_dir.as_os_str().len() <= MAX_SOCKET_DIR {
        return Ok(marker_dir);
    }
    let hash = &checksum::sha256(marker_dir.as_os_str().as_encoded_bytes())[..12];
    let dir = std::env::temp_dir().join(format!("pgpm-sandbox-{hash}"));
    std::fs::write(&pointer, dir.to_string_lossy().as_bytes())
        .map_err(SandboxError::io(&pointer))?;
    Ok(dir)
}

/// What the sandbox did.
pub struct Sandbox {
    pub cluster: Cluster,
    pub conninfo: ConnInfo,
    pub deploy: DeployReport,
    /// A `psql` command that selects a version and calls one of its functions.
    pub psql: Option<String>,
}

/// Starts (or reuses) the sandbox cluster, installs the catalog, applies
/// pending patches from `<workspace>/patches`, deploys the workspace.
/// Everything on disk is read before the cluster starts.
pub fn up(
    root: &Path,
    workspace: &Path,
    opts: &DeployOptions,
    on: &mut dyn FnMut(Event<'_>),
) -> Result<Sandbox> {
    let packages = Workspace::load(workspace)?;
    let patch_dir = workspace.join(crate::migrate::DEFAULT_DIR);
    let patches = match patch_dir.is_dir() {
        true => Some(scan::scan(&patch_dir)?),
        false => None,
    };
    let dir = cluster_dir(root)?;
    let cluster = Cluster::start(&ClusterOptions {
        dir,
        port: None,
        tcp: false,
    })?;
    let conninfo = cluster.conninfo(DATABASE);
    let mut admin = cluster.conninfo("postgres").connect()?;
    let exists: bool = admin
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)",
            &[&DATABASE],
        )
        .map_err(QueryError::with("cannot list databases"))?
        .get(0);
    if !exists {
        admin
            .batch_execute(&format!("CREATE DATABASE {}", quote_ident(DATABASE)))
            .map_err(QueryError::with("cannot create the sandbox database"))?;
    }
    let mut client = conninfo.connect()?;
    catalog::install(
        &mut client,
        &InstallOptions {
            upgrade: true,
            ..InstallOptions::default()
        },
    )?;
    if let Some(patches) = patches {
        migrate::migrate(
            &mut client,
            &conninfo,
            patches,
            &MigrateOptions {
                lock_timeout: opts.lock_timeout,
                ..MigrateOptions::all(patch_dir)
            },
            on,
        )?;
    }
    let deploy =
        deploy::deploy(&mut client, Some(&conninfo), packages, opts, on).map_err(Box::new)?;
    let psql = psql_example(&mut client, &conninfo)?;
    Ok(Sandbox {
        cluster,
        conninfo,
        deploy,
        psql,
    })
}

/// Stops the sandbox's server; its data stays for the next `up`.
/// Returns whether a server was running.
pub fn down(root: &Path) -> Result<bool> {
    let dir = cluster_dir(root)?;
    match Cluster::existing(&dir)? {
        Some(cluster) if cluster.is_running() => {
            cluster.stop()?;
            Ok(true)
        }
        _ => Ok(false),
    }
}

/// A ready-to-paste `psql` line: select the newest deployed package's API
/// version and call one of its functions that takes no arguments, or else
/// read one of its views.
fn psql_example(client: &mut Client, conninfo: &ConnInfo) -> Result<Option<String>> {
    let example = catalog::read::example_call(client)?;
    Ok(example.map(|e| {
        let requirement = if e.major > 0 {
            format!("^{}.{}", e.major, e.minor)
        } else {
            format!("~0.{}", e.minor)
        };
        format!(
            "psql '{}' -c \"SELECT _pgpm.set_search_path('{}', '{requirement}')\" -c '{}'",
            conninfo.to_uri(),
            e.package,
            e.query.replace('\'', "'\\''")
        )
    }))
}
