//! The `_pgpm` catalog: installing, upgrading, checking and removing it.
//!
//! The catalog's SQL lives in `schema/` as numbered steps, embedded in the
//! binary. The catalog version is the number of steps applied, kept in
//! `_pgpm.meta`. Installing applies every step in one transaction; upgrading
//! applies the missing ones in one transaction. Both run under pgpm's
//! advisory lock, so two installs at once serialise instead of colliding.
//! Every other read and write of `_pgpm` is a named function in [`read`]
//! or [`write`].

use std::time::Duration;

use postgres::{Client, GenericClient, Transaction};

use crate::db::QueryError;
use crate::db::lock::{LockError, Locked};
use crate::db::quote::quote_ident;
use crate::version::SemverError;

pub mod read;
pub mod write;

type Result<T, E = CatalogError> = std::result::Result<T, E>;

/// One versioned step of the catalog's SQL.
#[derive(Debug, Clone, Copy)]
pub struct Step {
    pub version: i32,
    pub file: &'static str,
    pub sql: &'static str,
}

/// Every catalog step, in order. Released steps are never edited.
pub const STEPS: &[Step] = &[
    Step {
        version: 1,
        file: "schema/0001_catalog.sql",
        sql: include_str!("../../schema/0001_catalog.sql"),
    },
    Step {
        version: 2,
        file: "schema/0002_deployment_log.sql",
        sql: include_str!("../../schema/0002_deployment_log.sql"),
    },
    Step {
        version: 3,
        file: "schema/0003_deploy_helpers.sql",
        sql: include_str!("../../schema/0003_deploy_helpers.sql"),
    },
    Step {
        version: 4,
        file: "schema/0004_client_api.sql",
        sql: include_str!("../../schema/0004_client_api.sql"),
    },
    Step {
        version: 5,
        file: "schema/0005_sessions.sql",
        sql: include_str!("../../schema/0005_sessions.sql"),
    },
    Step {
        version: 6,
        file: "schema/0006_sessions_as_owner.sql",
        sql: include_str!("../../schema/0006_sessions_as_owner.sql"),
    },
    Step {
        version: 7,
        file: "schema/0007_concurrent_progress.sql",
        sql: include_str!("../../schema/0007_concurrent_progress.sql"),
    },
    Step {
        version: 8,
        file: "schema/0008_baseline.sql",
        sql: include_str!("../../schema/0008_baseline.sql"),
    },
    Step {
        version: 9,
        file: "schema/0009_extensions.sql",
        sql: include_str!("../../schema/0009_extensions.sql"),
    },
    Step {
        version: 10,
        file: "schema/0010_live_clients.sql",
        sql: include_str!("../../schema/0010_live_clients.sql"),
    },
    Step {
        version: 11,
        file: "schema/0011_repoint_quoted.sql",
        sql: include_str!("../../schema/0011_repoint_quoted.sql"),
    },
    Step {
        version: 12,
        file: "schema/0012_ancestor_client_api.sql",
        sql: include_str!("../../schema/0012_ancestor_client_api.sql"),
    },
    Step {
        version: 13,
        file: "schema/0013_accepted_patches.sql",
        sql: include_str!("../../schema/0013_accepted_patches.sql"),
    },
    Step {
        version: 14,
        file: "schema/0014_lazr_history.sql",
        sql: include_str!("../../schema/0014_lazr_history.sql"),
    },
    Step {
        version: 15,
        file: "schema/0015_ddl_log.sql",
        sql: include_str!("../../schema/0015_ddl_log.sql"),
    },
    Step {
        version: 16,
        file: "schema/0016_fingerprints.sql",
        sql: include_str!("../../schema/0016_fingerprints.sql"),
    },
];

/// The catalog version this binary installs and understands.
pub const CURRENT_VERSION: i32 = STEPS[STEPS.len() - 1].version;

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("pgpm is not installed in this database: run `pgpm install` first")]
    NotInstalled,
    #[error(
        "schema _pgpm exists but holds no pgpm catalog (perhaps the Python pgpm's); refusing to touch it"
    )]
    Foreign,
    #[error(
        "the catalog is at version {found}, newer than this pgpm understands ({CURRENT_VERSION}): upgrade pgpm"
    )]
    Newer { found: i32 },
    #[error(
        "the catalog is at version {found} and this pgpm needs version {CURRENT_VERSION}: run `pgpm install --upgrade`"
    )]
    UpgradePending { found: i32 },
    #[error(
        "{count} deployed package(s) are registered in the catalog; remove them first or use --force"
    )]
    PackagesRegistered { count: i64 },
    #[error("catalog step {file} failed")]
    Step {
        file: &'static str,
        #[source]
        source: postgres::Error,
    },
    #[error("the catalog records package {name} with an unreadable version")]
    DeployedVersion {
        name: String,
        #[source]
        source: SemverError,
    },
    #[error(
        "the DDL log is an event trigger, which only a superuser may create or drop: run pgpm install --ddl-log as one"
    )]
    DdlLogNeedsSuperuser,
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error(transparent)]
    Query(#[from] QueryError),
}

impl CatalogError {
    pub fn is_user_error(&self) -> bool {
        // An unreadable deployed version is a catalog edited by hand: the
        // user's to repair.
        !matches!(self, CatalogError::Step { .. } | CatalogError::Query(_))
    }
}

/// Begins a change on a locked connection: the transaction it runs in,
/// after checking that the catalog is installed and current. Deploy,
/// remove and migrate start with this.
pub fn begin_change<'a>(locked: &'a mut Locked<'_>) -> Result<Transaction<'a>> {
    let mut tx = locked.begin()?;
    require_current(&mut tx)?;
    Ok(tx)
}

/// What a database holds in place of a catalog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Absent,
    Foreign,
    Installed(i32),
}

/// Reads the catalog's state.
pub fn state(client: &mut impl GenericClient) -> Result<State> {
    let row = client
        .query_one(
            "SELECT to_regnamespace('_pgpm') IS NOT NULL, to_regclass('_pgpm.meta') IS NOT NULL",
            &[],
        )
        .map_err(QueryError::with("cannot read the catalog state"))?;
    let (schema, meta): (bool, bool) = (row.get(0), row.get(1));
    Ok(match (schema, meta) {
        (false, _) => State::Absent,
        (true, false) => State::Foreign,
        (true, true) => {
            let version: Option<i32> = client
                .query_opt("SELECT catalog_version FROM _pgpm.meta", &[])
                .map_err(QueryError::with("cannot read the catalog version"))?
                .map(|r| r.get(0));
            version.map_or(State::Foreign, State::Installed)
        }
    })
}

/// Checks that the catalog is installed and at this binary's version.
/// Every command except `install` starts with this.
pub fn require_current(client: &mut impl GenericClient) -> Result<()> {
    match state(client)? {
        State::Absent => Err(CatalogError::NotInstalled),
        State::Foreign => Err(CatalogError::Foreign),
        State::Installed(v) if v > CURRENT_VERSION => Err(CatalogError::Newer { found: v }),
        State::Installed(v) if v < CURRENT_VERSION => {
            Err(CatalogError::UpgradePending { found: v })
        }
        State::Installed(_) => Ok(()),
    }
}

/// What `install` should do.
#[derive(Debug, Clone)]
pub struct InstallOptions {
    /// Upgrade an older catalog (otherwise only report that it is pending).
    pub upgrade: bool,
    /// Roles to grant read access to the catalog and EXECUTE on its functions.
    pub usage: Vec<String>,
    pub lock_timeout: Duration,
    /// Turn the DDL log on (`Some(true)`) or off (`Some(false)`).
    pub ddl_log: Option<bool>,
}

impl Default for InstallOptions {
    fn default() -> InstallOptions {
        InstallOptions {
            upgrade: false,
            usage: Vec::new(),
            lock_timeout: crate::db::lock::DEFAULT_TIMEOUT,
            ddl_log: None,
        }
    }
}

/// What `install` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InstallOutcome {
    Installed { version: i32 },
    Upgraded { from: i32, to: i32 },
    Current { version: i32 },
}

/// What `install` did: its outcome and the roles granted usage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstallReport {
    pub outcome: InstallOutcome,
    pub granted: Vec<String>,
}

/// Installs or upgrades the catalog, and grants usage to roles.
pub fn install(client: &mut Client, opts: &InstallOptions) -> Result<InstallReport> {
    let mut client = Locked::acquire(client, opts.lock_timeout)?;
    let mut tx = client.begin()?;
    let outcome = match state(&mut tx)? {
        State::Foreign => return Err(CatalogError::Foreign),
        State::Installed(v) if v > CURRENT_VERSION => {
            return Err(CatalogError::Newer { found: v });
        }
        State::Installed(v) if v == CURRENT_VERSION => InstallOutcome::Current { version: v },
        State::Installed(v) if !opts.upgrade => {
            return Err(CatalogError::UpgradePending { found: v });
        }
        State::Installed(from) => {
            apply_steps(&mut tx, from)?;
            tx.execute(
                "UPDATE _pgpm.meta SET catalog_version = $1, pgpm_version = $2,
                        upgraded_at = now(), upgraded_by = session_user",
                &[&CURRENT_VERSION, &crate::VERSION],
            )
            .map_err(QueryError::with("cannot record the catalog version"))?;
            // Roles granted usage earlier keep it over objects the new steps added.
            let granted: Vec<String> = tx
                .query(
                    "SELECT DISTINCT r.rolname FROM pg_namespace n, aclexplode(n.nspacl) a
                       JOIN pg_roles r ON r.oid = a.grantee
                      WHERE n.nspname = '_pgpm' AND a.privilege_type = 'USAGE'
                        AND a.grantee <> n.nspowner ORDER BY 1",
                    &[],
                )
                .map_err(QueryError::with("cannot read the catalog's grants"))?
                .iter()
                .map(|r| r.get(0))
                .collect();
            grant_usage(&mut tx, &granted)?;
            InstallOutcome::Upgraded {
                from,
                to: CURRENT_VERSION,
            }
        }
        State::Absent => {
            apply_steps(&mut tx, 0)?;
            tx.execute(
                "INSERT INTO _pgpm.meta (catalog_version, pgpm_version) VALUES ($1, $2)",
                &[&CURRENT_VERSION, &crate::VERSION],
            )
            .map_err(QueryError::with("cannot record the catalog version"))?;
            InstallOutcome::Installed {
                version: CURRENT_VERSION,
            }
        }
    };
    grant_usage(&mut tx, &opts.usage)?;
    if let Some(on) = opts.ddl_log {
        ddl_log(&mut tx, on)?;
    }
    tx.commit()
        .map_err(QueryError::with("cannot commit the catalog"))?;
    Ok(InstallReport {
        outcome,
        granted: opts.usage.clone(),
    })
}

/// Applies the steps after version `from`. Each step's SQL runs as one
/// multi-statement batch inside the caller's transaction.
fn apply_steps(tx: &mut postgres::Transaction<'_>, from: i32) -> Result<()> {
    for step in STEPS.iter().filter(|s| s.version > from) {
        tx.batch_execute(step.sql)
            .map_err(|source| CatalogError::Step {
                file: step.file,
                source,
            })?;
    }
    // Functions are executable by PUBLIC by default; the catalog's are not.
    tx.batch_execute("REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA _pgpm FROM PUBLIC")
        .map_err(QueryError::with("cannot revoke EXECUTE from PUBLIC"))?;
    Ok(())
}

/// The event triggers of the DDL log (catalog step 15).
const DDL_TRIGGERS: [(&str, &str); 2] = [
    ("pgpm_ddl_log", "ddl_command_end"),
    ("pgpm_ddl_drop", "sql_drop"),
];

/// Turns the DDL log on or off. Event triggers need a superuser.
fn ddl_log(tx: &mut postgres::Transaction<'_>, on: bool) -> Result<()> {
    let superuser: bool = tx
        .query_one(
            "SELECT rolsuper FROM pg_roles WHERE rolname = current_user",
            &[],
        )
        .map_err(QueryError::with("cannot read the role"))?
        .get(0);
    if !superuser {
        return Err(CatalogError::DdlLogNeedsSuperuser);
    }
    for (name, event) in DDL_TRIGGERS {
        let sql = if on {
            format!(
                "DROP EVENT TRIGGER IF EXISTS {name}; CREATE EVENT TRIGGER {name} ON {event} EXECUTE FUNCTION _pgpm.log_ddl()"
            )
        } else {
            format!("DROP EVENT TRIGGER IF EXISTS {name}")
        };
        tx.batch_execute(&sql).map_err(QueryError::with(
            "cannot change the DDL log's event triggers",
        ))?;
    }
    Ok(())
}

/// Grants roles read access to the catalog and EXECUTE on its functions.
fn grant_usage(tx: &mut postgres::Transaction<'_>, roles: &[String]) -> Result<()> {
    for role in roles {
        let role_q = quote_ident(role);
        tx.batch_execute(&format!(
            "GRANT USAGE ON SCHEMA _pgpm TO {role_q};
             GRANT SELECT ON ALL TABLES IN SCHEMA _pgpm TO {role_q};
             GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA _pgpm TO {role_q};"
        ))
        .map_err(QueryError::with(format!(
            "cannot grant usage of the catalog to {role_q}"
        )))?;
    }
    Ok(())
}

/// What `uninstall` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UninstallOutcome {
    Removed,
    NotInstalled,
}

/// Drops the catalog. Refuses while deployed packages are registered,
/// unless `force`; their schemas are left alone either way.
pub fn uninstall(
    client: &mut Client,
    force: bool,
    lock_timeout: Duration,
) -> Result<UninstallOutcome> {
    let mut client = Locked::acquire(client, lock_timeout)?;
    let mut tx = client.begin()?;
    match state(&mut tx)? {
        State::Absent => return Ok(UninstallOutcome::NotInstalled),
        State::Foreign => return Err(CatalogError::Foreign),
        State::Installed(v) if v > CURRENT_VERSION => {
            return Err(CatalogError::Newer { found: v });
        }
        State::Installed(_) => {}
    }
    let count: i64 = tx
        .query_one(
            "SELECT count(*) FROM _pgpm.packages WHERE removed_at IS NULL",
            &[],
        )
        .map_err(QueryError::with("cannot count deployed packages"))?
        .get(0);
    if count > 0 && !force {
        return Err(CatalogError::PackagesRegistered { count });
    }
    tx.batch_execute("DROP SCHEMA _pgpm CASCADE")
        .map_err(QueryError::with("cannot drop the catalog"))?;
    tx.commit()
        .map_err(QueryError::with("cannot commit dropping the catalog"))?;
    Ok(UninstallOutcome::Removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_are_numbered_one_by_one() {
        for (i, step) in STEPS.iter().enumerate() {
            assert_eq!(step.version, i as i32 + 1, "{}", step.file);
            let prefix = format!("schema/{:04}_", step.version);
            assert!(step.file.starts_with(&prefix), "{}", step.file);
        }
    }
}
