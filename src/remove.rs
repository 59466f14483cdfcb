//! `pgpm remove`: dropping a deployed version's schema, or one old revision
//! of it, the careful way the ancestor's `drop_schema_smart` did.
//!
//! It refuses while another deployed package depends on the version; while
//! the schema holds tables (data) or sessions use it, unless forced. The
//! drop and the catalog update run in one transaction under pgpm's lock,
//! as a list of actions that `--dry-run` prints (the same as deploy's).

use std::time::Duration;

use postgres::{Client, GenericClient};

use crate::db::quote_ident;
use crate::deploy::{
    Action, DeployPlan, Param, close_deployment, deployment_id, forget_table_scripts,
};
use crate::lock::Locked;
use crate::{Error, Result, catalog};

/// What to remove.
#[derive(Debug, Clone, Default)]
pub struct RemoveOptions {
    pub package: String,
    pub version: String,
    /// Remove only this renamed old revision (`<schema>_<N>`).
    pub old_rev: Option<i32>,
    /// Drop even when the schema holds tables or sessions use it.
    pub force: bool,
    pub dry_run: bool,
    pub lock_timeout: Option<Duration>,
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
}

/// What `remove` did or, with `--dry-run`, would do.
#[derive(Debug, Clone)]
pub struct RemoveReport {
    pub schema: String,
    pub plan: DeployPlan,
    pub dry_run: bool,
}

/// Removes a deployed version (or one old revision of it).
pub fn remove(client: &mut Client, opts: &RemoveOptions) -> Result<RemoveReport> {
    let mut client = Locked::acquire(
        client,
        opts.lock_timeout.unwrap_or(crate::lock::DEFAULT_TIMEOUT),
    )?;
    let mut tx = client.begin()?;
    catalog::require_current(&mut tx)?;
    let (schema, plan) = prepare(&mut tx, opts)?;
    if opts.dry_run {
        tx.rollback().map_err(Error::db("cannot roll back"))?;
    } else {
        crate::deploy::execute(&mut tx, &plan)?;
        tx.commit()
            .map_err(Error::db("cannot commit the removal"))?;
    }
    Ok(RemoveReport {
        schema,
        plan,
        dry_run: opts.dry_run,
    })
}

/// Checks the refusals and builds the actions.
pub fn prepare(
    client: &mut impl GenericClient,
    opts: &RemoveOptions,
) -> Result<(String, DeployPlan)> {
    let row = client
        .query_opt(
            "SELECT package_id, schema_name FROM _pgpm.packages
              WHERE name = $1 AND version = $2 AND removed_at IS NULL
                AND old_rev IS NOT DISTINCT FROM $3",
            &[&opts.package, &opts.version, &opts.old_rev],
        )
        .map_err(Error::db("cannot read the catalog"))?;
    let Some(row) = row else {
        return Err(RemoveError::NotDeployed {
            package: opts.package.clone(),
            version: opts.version.clone(),
            old_rev: opts.old_rev,
        }
        .into());
    };
    let id: i64 = row.get(0);
    let Some(schema) = row.get::<_, Option<String>>(1) else {
        return Err(RemoveError::DatabaseScope {
            package: opts.package.clone(),
            version: opts.version.clone(),
        }
        .into());
    };

    let dependents: Vec<String> = client
        .query(
            "SELECT p.name || ' ' || p.version || coalesce(' (revision ' || p.old_rev || ')', '')
               FROM _pgpm.package_dependencies d
               JOIN _pgpm.packages p ON p.package_id = d.package_id
              WHERE d.dependency_id = $1 AND p.removed_at IS NULL
              ORDER BY 1",
            &[&id],
        )
        .map_err(Error::db("cannot read dependent packages"))?
        .iter()
        .map(|r| r.get(0))
        .collect();
    if !dependents.is_empty() {
        return Err(RemoveError::Dependents { schema, dependents }.into());
    }
    let exists = crate::db::schema_exists(client, &schema)
        .map_err(Error::db("cannot look up the schema"))?;
    let mut plan = DeployPlan::default();
    if exists && !opts.force {
        let tables: Vec<String> = client
            .query(
                "SELECT relname::text FROM pg_class
                  WHERE relnamespace = $1::text::regnamespace AND relkind IN ('r', 'p')
                  ORDER BY 1",
                &[&schema],
            )
            .map_err(Error::db("cannot list the schema's tables"))?
            .iter()
            .map(|r| r.get(0))
            .collect();
        if !tables.is_empty() {
            return Err(RemoveError::HasTables { schema, tables }.into());
        }
        let sessions = sessions_using(client, &schema)?;
        if !sessions.is_empty() {
            return Err(RemoveError::InUse { schema, sessions }.into());
        }
    }
    plan.actions.push(Action::Note(format!(
        "remove {} {} (schema {schema})",
        opts.package, opts.version
    )));
    plan.actions.push(Action::Bound {
        sql: "INSERT INTO _pgpm.deployments (command, pgpm_version) VALUES ('remove', $1)",
        params: vec![Param::Text(Some(crate::VERSION.into()))],
    });
    if exists {
        plan.actions.push(Action::Sql(format!(
            "DROP SCHEMA {} CASCADE",
            quote_ident(&schema)
        )));
    } else {
        plan.warnings
            .push(format!("schema {schema} was already dropped outside pgpm"));
    }
    plan.actions.push(Action::Bound {
        sql: "UPDATE _pgpm.packages SET removed_at = now(), removed_by = session_user WHERE package_id = $1",
        params: vec![Param::BigInt(id)],
    });
    plan.actions.push(Action::Bound {
        sql: concat!(
            "INSERT INTO _pgpm.deployment_packages (deployment_id, package_id, action) VALUES (",
            deployment_id!(),
            ", $1, 'removed')"
        ),
        params: vec![Param::BigInt(id)],
    });
    plan.actions.push(forget_table_scripts(&schema));
    plan.actions.push(close_deployment());
    plan.deployed.push(format!(
        "{} {} (schema {schema})",
        opts.package, opts.version
    ));
    Ok((schema, plan))
}

/// Other sessions that use `schema`, described from `pg_stat_activity`:
/// those that selected it with `_pgpm.set_search_path` (recorded in
/// `_pgpm.sessions`) and those whose current query names it.
pub fn sessions_using(client: &mut impl GenericClient, schema: &str) -> Result<Vec<String>> {
    let rows = client.query(
        "SELECT DISTINCT format('pid %s (%s@%s, %s, since %s)', a.pid, a.usename,
                                    coalesce(host(a.client_addr), 'local'),
                                    coalesce(nullif(a.application_name, ''), 'no application name'),
                                    to_char(a.backend_start, 'YYYY-MM-DD HH24:MI:SS'))
               FROM pg_stat_activity a
              WHERE a.pid <> pg_backend_pid()
                AND (position(($1 || '.') IN a.query) > 0
                     OR position((quote_ident($1) || '.') IN a.query) > 0
                     OR EXISTS (SELECT 1 FROM _pgpm.sessions s
                                 WHERE s.pid = a.pid AND s.backend_start = a.backend_start
                                   AND $1 = ANY (s.schemas)))",
        &[&schema],
    );
    let rows = rows.map_err(Error::db("cannot read pg_stat_activity"))?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}
