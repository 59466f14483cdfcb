//! `pgpm remove`: dropping a deployed version's schema, or one old revision
//! of it, the careful way the ancestor's `drop_schema_smart` did.
//!
//! It refuses while another deployed package depends on the version; while
//! the schema holds tables (data) or sessions use it, unless forced. The
//! drop and the catalog update run in one transaction under pgpm's lock,
//! as a script that `--dry-run` prints (the same kind as deploy's).

use std::time::Duration;

use postgres::{Client, GenericClient};

use crate::catalog::read;
use crate::catalog::write;
use crate::catalog::{self, CatalogError};
use crate::db::QueryError;
use crate::db::blockers::{BlockerWatch, LockWaitError, ObjectLocks};
use crate::db::conninfo::ConnInfo;
use crate::db::lock::{DEFAULT_TIMEOUT, LockError, Locked};
use crate::db::quote::quote_ident;
use crate::db::script::{self, Action, Script, ScriptError};
use crate::event::Event;

/// What to remove.
#[derive(Debug, Clone)]
pub struct RemoveOptions {
    pub package: String,
    pub version: String,
    /// Remove only this renamed old revision (`<schema>_<N>`).
    pub old_rev: Option<i32>,
    /// Drop even when the schema holds tables or sessions use it.
    pub force: bool,
    pub dry_run: bool,
    pub lock_timeout: Duration,
    /// How long the drop may wait for its locks, and how often to retry.
    pub object_locks: ObjectLocks,
}

impl Default for RemoveOptions {
    fn default() -> RemoveOptions {
        RemoveOptions {
            package: String::new(),
            version: String::new(),
            old_rev: None,
            force: false,
            dry_run: false,
            lock_timeout: DEFAULT_TIMEOUT,
            object_locks: ObjectLocks::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RemoveError {
    #[error("{package} {version}{} is not deployed", old_rev.map(|n| format!(" revision {n}")).unwrap_or_default())]
    NotDeployed {
        package: String,
        version: String,
        old_rev: Option<i32>,
    },
    #[error("{package} {version} has database scope: it has no schema of its own to drop")]
    DatabaseScope { package: String, version: String },
    #[error("{schema} is used by deployed packages: {}; remove them first", dependents.join(", "))]
    Dependents {
        schema: String,
        dependents: Vec<String>,
    },
    #[error("schema {schema} holds tables ({}); use --force to drop them with their data", tables.join(", "))]
    HasTables { schema: String, tables: Vec<String> },
    #[error("schema {schema} is in use by {}; use --force to drop it anyway", sessions.join("; "))]
    InUse {
        schema: String,
        sessions: Vec<String>,
    },
    #[error(
        "dropping schema {schema} would also drop objects outside it: {}; nothing was changed (use --force to drop them too)",
        objects.join(", ")
    )]
    ReachesOutside {
        schema: String,
        objects: Vec<String>,
    },
    #[error(transparent)]
    ObjectLocks(LockWaitError),
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error(transparent)]
    Script(#[from] ScriptError),
}

impl From<QueryError> for RemoveError {
    fn from(e: QueryError) -> RemoveError {
        RemoveError::Catalog(e.into())
    }
}

impl From<LockError> for RemoveError {
    fn from(e: LockError) -> RemoveError {
        RemoveError::Catalog(e.into())
    }
}

impl RemoveError {
    pub fn is_user_error(&self) -> bool {
        match self {
            RemoveError::Catalog(e) => e.is_user_error(),
            RemoveError::Script(e) => e.is_user_error(),
            _ => true,
        }
    }
}

type Result<T, E = RemoveError> = std::result::Result<T, E>;

/// What `remove` did or, with `--dry-run`, would do.
#[derive(Debug, Clone)]
pub struct RemoveReport {
    pub package: String,
    pub version: String,
    pub schema: String,
    /// The exact script that ran (or would run).
    pub script: Script,
    pub warnings: Vec<String>,
    pub dry_run: bool,
}

/// Removes a deployed version (or one old revision of it).
///
/// The drop runs under `opts.object_locks.timeout` as its `lock_timeout`:
/// when a session holds a lock on the schema's objects, the removal rolls
/// back, pauses and runs again, then gives up naming the sessions seen
/// holding it from `probe` (a second connection; none: unnamed).
pub fn remove(
    client: &mut Client,
    probe: Option<&ConnInfo>,
    opts: &RemoveOptions,
    on: &mut dyn FnMut(Event<'_>),
) -> Result<RemoveReport> {
    let mut locked = Locked::acquire(client, opts.lock_timeout)?;
    let mut attempt = 0;
    loop {
        let mut tx = catalog::begin_change(&mut locked)?;
        let report = prepare(&mut tx, opts)?;
        if opts.dry_run {
            tx.rollback()
                .map_err(QueryError::with("cannot roll back"))?;
            return Ok(report);
        }
        let watch = probe.and_then(|info| BlockerWatch::start(info, &mut tx));
        let waited = match script::execute(&mut tx, &report.script, on) {
            Ok(()) => {
                if crate::db::connect::interrupted() {
                    return Err(ScriptError::Interrupted.into());
                }
                tx.commit()
                    .map_err(QueryError::with("cannot commit the removal"))?;
                return Ok(report);
            }
            Err(e) => match e.lock_timed_out() {
                Some(waiting) => waiting,
                None => return Err(e.into()),
            },
        };
        drop(tx);
        if let Some(e) = opts
            .object_locks
            .after_timeout(&mut attempt, waited, watch, on)
        {
            return Err(RemoveError::ObjectLocks(e));
        }
    }
}

/// Checks the refusals and builds the script.
fn prepare(client: &mut impl GenericClient, opts: &RemoveOptions) -> Result<RemoveReport> {
    let Some(row) = read::deployed_revision(client, &opts.package, &opts.version, opts.old_rev)?
    else {
        return Err(RemoveError::NotDeployed {
            package: opts.package.clone(),
            version: opts.version.clone(),
            old_rev: opts.old_rev,
        });
    };
    let Some(schema) = row.schema else {
        return Err(RemoveError::DatabaseScope {
            package: opts.package.clone(),
            version: opts.version.clone(),
        });
    };
    let dependents = read::dependents(client, row.id)?;
    if !dependents.is_empty() {
        return Err(RemoveError::Dependents { schema, dependents });
    }
    let exists = read::schema_exists(client, &schema)?;
    if exists && !opts.force {
        let tables = read::tables_in(client, &schema)?;
        if !tables.is_empty() {
            return Err(RemoveError::HasTables { schema, tables });
        }
        let sessions = read::sessions_using(client, &schema)?;
        if !sessions.is_empty() {
            return Err(RemoveError::InUse { schema, sessions });
        }
    }
    let mut script = Script::default();
    let mut warnings = Vec::new();
    if exists {
        let outside = read::cascade_victims(client, &schema)?;
        if !outside.is_empty() && !opts.force {
            return Err(RemoveError::ReachesOutside {
                schema,
                objects: outside,
            });
        }
        for object in outside {
            warnings.push(format!("dropping schema {schema} also drops {object}"));
        }
    }
    script.push(Action::Note(format!(
        "remove {} {} (schema {schema})",
        opts.package, opts.version
    )));
    script.push(Action::Sql(opts.object_locks.set_local()));
    script.push(write::open_removal());
    if exists {
        script.push(Action::Sql(format!(
            "DROP SCHEMA {} CASCADE",
            quote_ident(&schema)
        )));
    } else {
        warnings.push(format!("schema {schema} was already dropped outside pgpm"));
    }
    script.actions.extend(write::record_removal(row.id));
    script.push(write::forget_table_scripts(&schema));
    script.push(write::close_deployment());
    // Sessions listening for the package hear that a version went, so
    // that clients select again.
    script.push(write::notify_deploy(
        &pgpm_client::protocol::DeployPayload {
            package: opts.package.clone(),
            version: opts.version.clone(),
            schema: Some(schema.clone()),
            mode: Some("remove".into()),
        },
    ));
    Ok(RemoveReport {
        package: opts.package.clone(),
        version: opts.version.clone(),
        schema,
        script,
        warnings,
        dry_run: opts.dry_run,
    })
}
