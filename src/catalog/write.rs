//! Every write into `_pgpm` that a deploy or remove makes, as a function
//! returning the [`Action`] that runs it, with values bound as parameters.
//! The actions go into the change's script, so `--dry-run` prints them and
//! they commit with the SQL they record.

use postgres::GenericClient;

use crate::db::QueryError;
use crate::db::script::{Action, Param};

/// The id of the deployment row the running transaction inserted, for
/// writes that refer to it (a literal, so statements stay `&'static str`).
macro_rules! deployment_id {
    () => {
        "currval(pg_get_serial_sequence('_pgpm.deployments', 'deployment_id'))"
    };
}

/// What a deployment row records about the run.
#[derive(Debug, Clone, Default)]
pub struct DeploymentRecord {
    pub mode: String,
    pub vcs_ref: Option<String>,
    pub vcs_link: Option<String>,
    pub issue_ref: Option<String>,
    pub issue_link: Option<String>,
}

/// Inserts the deployment row of a deploy.
pub fn open_deployment(record: &DeploymentRecord) -> Action {
    Action::Bound {
        sql: "INSERT INTO _pgpm.deployments (mode, vcs_ref, vcs_link, issue_ref, issue_link, pgpm_version) VALUES ($1, $2, $3, $4, $5, $6)",
        params: vec![
            Param::text(&record.mode),
            Param::Text(record.vcs_ref.clone()),
            Param::Text(record.vcs_link.clone()),
            Param::Text(record.issue_ref.clone()),
            Param::Text(record.issue_link.clone()),
            Param::text(crate::VERSION),
        ],
    }
}

/// Inserts the deployment row of a removal.
pub fn open_removal() -> Action {
    Action::Bound {
        sql: "INSERT INTO _pgpm.deployments (command, pgpm_version) VALUES ('remove', $1)",
        params: vec![Param::text(crate::VERSION)],
    }
}

/// Sets the end time of the deployment row the running transaction inserted.
pub fn close_deployment() -> Action {
    Action::Sql(
        concat!(
            "UPDATE _pgpm.deployments SET finished_at = clock_timestamp() WHERE deployment_id = ",
            deployment_id!()
        )
        .into(),
    )
}

/// Forgets the table scripts applied to a schema that is being dropped.
pub fn forget_table_scripts(schema: &str) -> Action {
    Action::Bound {
        sql: "DELETE FROM _pgpm.table_scripts WHERE target_schema = $1",
        params: vec![Param::text(schema)],
    }
}

/// Records a table script as applied to `schema` (again, when it ran before).
pub fn record_table_script(package: &str, schema: &str, file: &str, checksum: &str) -> Action {
    Action::Bound {
        sql: concat!(
            "INSERT INTO _pgpm.table_scripts (package_name, target_schema, file_name, checksum, deployment_id) VALUES ($1, $2, $3, $4, ",
            deployment_id!(),
            ") ON CONFLICT (package_name, target_schema, file_name) DO UPDATE SET checksum = EXCLUDED.checksum, deployment_id = EXCLUDED.deployment_id, applied_at = now(), applied_by = session_user"
        ),
        params: vec![
            Param::text(package),
            Param::text(schema),
            Param::text(file),
            Param::text(checksum),
        ],
    }
}

/// Records that the package in `schema` was renamed to old revision `n`
/// (`renamed`), with its table scripts.
pub fn record_rename(schema: &str, renamed: &str, n: i32) -> [Action; 3] {
    [
        Action::Bound {
            sql: concat!(
                "INSERT INTO _pgpm.deployment_packages (deployment_id, package_id, action, detail) SELECT ",
                deployment_id!(),
                ", package_id, 'renamed', $2 FROM _pgpm.packages WHERE schema_name = $1 AND removed_at IS NULL"
            ),
            params: vec![Param::text(schema), Param::text(renamed)],
        },
        Action::Bound {
            sql: "UPDATE _pgpm.packages SET schema_name = $2, old_rev = $3 WHERE schema_name = $1 AND removed_at IS NULL",
            params: vec![Param::text(schema), Param::text(renamed), Param::Int(n)],
        },
        Action::Bound {
            sql: "UPDATE _pgpm.table_scripts SET target_schema = $2 WHERE target_schema = $1",
            params: vec![Param::text(schema), Param::text(renamed)],
        },
    ]
}

/// After a rename of `schema` to `renamed` (and [`record_rename`]): the
/// routines in it, and in the live packages that depend on it, whose
/// pinned `search_path` named `schema` name `renamed` instead.
pub fn repoint_search_path(schema: &str, renamed: &str) -> Action {
    Action::Bound {
        sql: "SELECT _pgpm.repoint_search_path($1, $2, ARRAY(
                  SELECT p.schema_name FROM _pgpm.packages p
                    JOIN _pgpm.package_dependencies d ON d.package_id = p.package_id
                    JOIN _pgpm.packages t ON t.package_id = d.dependency_id
                   WHERE t.schema_name = $2 AND t.removed_at IS NULL
                     AND p.removed_at IS NULL AND p.schema_name IS NOT NULL))",
        params: vec![Param::text(schema), Param::text(renamed)],
    }
}

/// Records that the current package in `schema` is old revision `n` now: a
/// new revision went into a schema of its own, and this one stays.
pub fn record_superseded(schema: &str, n: i32) -> [Action; 2] {
    [
        Action::Bound {
            sql: concat!(
                "INSERT INTO _pgpm.deployment_packages (deployment_id, package_id, action, detail) SELECT ",
                deployment_id!(),
                ", package_id, 'superseded', 'old revision ' || $2::int FROM _pgpm.packages WHERE schema_name = $1 AND old_rev IS NULL AND removed_at IS NULL"
            ),
            params: vec![Param::text(schema), Param::Int(n)],
        },
        Action::Bound {
            sql: "UPDATE _pgpm.packages SET old_rev = $2 WHERE schema_name = $1 AND old_rev IS NULL AND removed_at IS NULL",
            params: vec![Param::text(schema), Param::Int(n)],
        },
    ]
}

/// Records the definitions the deploy leaves in `schema` (its package's
/// fingerprint), for `status` to compare with later.
pub fn record_fingerprint(schema: &str) -> Action {
    Action::Bound {
        sql: "UPDATE _pgpm.packages SET fingerprint = _pgpm.schema_fingerprint($1) WHERE schema_name = $1 AND removed_at IS NULL",
        params: vec![Param::text(schema)],
    }
}

/// Records that the package in `schema` was dropped with it.
pub fn record_drop(schema: &str) -> [Action; 3] {
    [
        Action::Bound {
            sql: concat!(
                "INSERT INTO _pgpm.deployment_packages (deployment_id, package_id, action) SELECT ",
                deployment_id!(),
                ", package_id, 'dropped' FROM _pgpm.packages WHERE schema_name = $1 AND removed_at IS NULL"
            ),
            params: vec![Param::text(schema)],
        },
        mark_schema_removed(schema),
        forget_table_scripts(schema),
    ]
}

/// Marks whatever package the catalog records in `schema` as removed.
pub fn mark_schema_removed(schema: &str) -> Action {
    Action::Bound {
        sql: "UPDATE _pgpm.packages SET removed_at = now(), removed_by = session_user WHERE schema_name = $1 AND removed_at IS NULL",
        params: vec![Param::text(schema)],
    }
}

/// Marks the current database-scope row of `package` as removed.
pub fn mark_database_scope_removed(package: &str) -> Action {
    Action::Bound {
        sql: "UPDATE _pgpm.packages SET removed_at = now(), removed_by = session_user WHERE name = $1 AND scope = 'database' AND removed_at IS NULL",
        params: vec![Param::text(package)],
    }
}

/// A package version's row, as a deploy records it.
#[derive(Debug, Clone)]
pub struct PackageRecord {
    pub name: String,
    pub version: semver::Version,
    pub subclass: &'static str,
    pub scope: &'static str,
    pub schema: Option<String>,
    pub description: Option<String>,
    pub license: Option<String>,
    pub owner_role: Option<String>,
    pub checksum: String,
}

/// Updates the row `id` of a package deployed again into its schema, and
/// records what this deployment did to it (`overwritten`, `files`).
pub fn update_package(id: i64, record: &PackageRecord, action: &str) -> [Action; 2] {
    [
        Action::Bound {
            sql: concat!(
                "UPDATE _pgpm.packages SET checksum = $2, deployment_id = ",
                deployment_id!(),
                ", deployed_at = now(), deployed_by = session_user, description = $3, license = $4, owner_role = $5 WHERE package_id = $1"
            ),
            params: vec![
                Param::BigInt(id),
                Param::text(&record.checksum),
                Param::Text(record.description.clone()),
                Param::Text(record.license.clone()),
                Param::Text(record.owner_role.clone()),
            ],
        },
        Action::Bound {
            sql: concat!(
                "INSERT INTO _pgpm.deployment_packages (deployment_id, package_id, action) VALUES (",
                deployment_id!(),
                ", $1, $2)"
            ),
            params: vec![Param::BigInt(id), Param::text(action)],
        },
    ]
}

/// Inserts a new package row, its exact dependencies (`(name, version,
/// requirement)`) and the `created` entry of this deployment.
pub fn insert_package(
    record: &PackageRecord,
    dependencies: &[(String, String, String)],
) -> Vec<Action> {
    let v = &record.version;
    let version = v.to_string();
    let mut actions = vec![Action::Bound {
        sql: concat!(
            "INSERT INTO _pgpm.packages (name, version, v_major, v_minor, v_patch, v_pre, subclass, scope, schema_name, description, license, owner_role, checksum, deployment_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, ",
            deployment_id!(),
            ")"
        ),
        params: vec![
            Param::text(&record.name),
            Param::text(&version),
            Param::Int(v.major as i32),
            Param::Int(v.minor as i32),
            Param::Int(v.patch as i32),
            Param::text(v.pre.as_str()),
            Param::text(record.subclass),
            Param::text(record.scope),
            Param::Text(record.schema.clone()),
            Param::Text(record.description.clone()),
            Param::Text(record.license.clone()),
            Param::Text(record.owner_role.clone()),
            Param::text(&record.checksum),
        ],
    }];
    for (name, dep_version, requirement) in dependencies {
        actions.push(Action::Bound {
            sql: "INSERT INTO _pgpm.package_dependencies (package_id, dependency_id, requirement) SELECT p.package_id, d.package_id, $5 FROM _pgpm.packages p, _pgpm.packages d WHERE p.name = $1 AND p.version = $2 AND p.old_rev IS NULL AND p.removed_at IS NULL AND d.name = $3 AND d.version = $4 AND d.old_rev IS NULL AND d.removed_at IS NULL",
            params: vec![
                Param::text(&record.name),
                Param::text(&version),
                Param::text(name),
                Param::text(dep_version),
                Param::text(requirement),
            ],
        });
    }
    actions.push(Action::Bound {
        sql: concat!("INSERT INTO _pgpm.deployment_packages (deployment_id, package_id, action) SELECT ", deployment_id!(), ", package_id, 'created' FROM _pgpm.packages WHERE name = $1 AND version = $2 AND old_rev IS NULL AND removed_at IS NULL"),
        params: vec![Param::text(&record.name), Param::text(version)],
    });
    actions
}

/// Marks the package row `id` removed and records it in this deployment.
pub fn record_removal(id: i64) -> [Action; 2] {
    [
        Action::Bound {
            sql: "UPDATE _pgpm.packages SET removed_at = now(), removed_by = session_user WHERE package_id = $1",
            params: vec![Param::BigInt(id)],
        },
        Action::Bound {
            sql: concat!(
                "INSERT INTO _pgpm.deployment_packages (deployment_id, package_id, action) VALUES (",
                deployment_id!(),
                ", $1, 'removed')"
            ),
            params: vec![Param::BigInt(id)],
        },
    ]
}

/// Grants `role` the use of `schema` (the catalog's helper).
pub fn grant_usage(schema: &str, role: &str) -> Action {
    Action::Bound {
        sql: "SELECT _pgpm.grant_usage($1, $2)",
        params: vec![Param::text(schema), Param::text(role)],
    }
}

/// Gives `schema` and everything in it to `owner` (the catalog's helper).
pub fn set_owner(schema: &str, owner: &str) -> Action {
    Action::Bound {
        sql: "SELECT _pgpm.set_owner($1, $2)",
        params: vec![Param::text(schema), Param::text(owner)],
    }
}

/// Notifies [`pgpm_client::DEPLOY_CHANNEL`] and the package's channel of a
/// deploy, at commit.
pub fn notify_deploy(payload: &pgpm_client::protocol::DeployPayload) -> Action {
    Action::Bound {
        sql: "SELECT pg_notify($1, $2), pg_notify($3, $2)",
        params: vec![
            Param::text(pgpm_client::DEPLOY_CHANNEL),
            Param::text(payload.to_json()),
            Param::text(pgpm_client::package_channel(&payload.package)),
        ],
    }
}

/// [`notify_deploy`] for a package of the ancestor's: its channel gets
/// what the ancestor sent there, `MAJOR_MINOR_PATCH` (its listeners read
/// that), and `pgpm_deploy` the JSON.
pub fn notify_deploy_ancestor(
    payload: &pgpm_client::protocol::DeployPayload,
    version: &semver::Version,
) -> Action {
    Action::Bound {
        sql: "SELECT pg_notify($1, $2), pg_notify($3, $4)",
        params: vec![
            Param::text(pgpm_client::DEPLOY_CHANNEL),
            Param::text(payload.to_json()),
            Param::text(pgpm_client::package_channel(&payload.package)),
            Param::text(format!(
                "{}_{}_{}",
                version.major, version.minor, version.patch
            )),
        ],
    }
}

/// A patch's numbers and file name, as the catalog keys it.
#[derive(Debug, Clone, Copy)]
pub struct PatchKey<'a> {
    pub major: i32,
    pub minor: i32,
    pub point: i32,
    pub file_name: &'a str,
}

/// Records, in autocommit on the connection that ran it, that statement
/// `statement` of `statements` of concurrent patch `patch` completed.
pub fn record_concurrent_progress(
    client: &mut impl GenericClient,
    patch: PatchKey<'_>,
    statement: usize,
    statements: usize,
    excerpt: &str,
) -> Result<(), QueryError> {
    client
        .execute(
            "INSERT INTO _pgpm.concurrent_progress
                    (major, minor, point, file_name, statement, statements, excerpt)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (major, minor, point, statement)
             DO UPDATE SET statements = EXCLUDED.statements, excerpt = EXCLUDED.excerpt,
                           file_name = EXCLUDED.file_name, finished_at = clock_timestamp()",
            &[
                &patch.major,
                &patch.minor,
                &patch.point,
                &patch.file_name,
                &(statement as i32),
                &(statements as i32),
                &excerpt,
            ],
        )
        .map_err(QueryError::with(
            "cannot record the progress of a concurrent patch",
        ))?;
    Ok(())
}

/// Records patches as applied without running them (`migrate baseline`).
pub fn record_baseline(
    client: &mut impl GenericClient,
    patches: &[(PatchKey<'_>, &str, &str)],
) -> Result<(), QueryError> {
    for (key, kind, checksum) in patches {
        client
            .execute(
                "INSERT INTO _pgpm.migrations
                        (major, minor, point, type, file_name, checksum, finished_at, how)
                 VALUES ($1, $2, $3, $4, $5, $6, clock_timestamp(), 'baseline')",
                &[
                    &key.major,
                    &key.minor,
                    &key.point,
                    kind,
                    &key.file_name,
                    checksum,
                ],
            )
            .map_err(QueryError::with("cannot record the baseline"))?;
    }
    Ok(())
}

/// Forgets a concurrent patch's progress, in the transaction recording it.
pub fn forget_concurrent_progress(
    client: &mut impl GenericClient,
    patch: PatchKey<'_>,
) -> Result<(), QueryError> {
    client
        .execute(
            "DELETE FROM _pgpm.concurrent_progress WHERE (major, minor, point) = ($1, $2, $3)",
            &[&patch.major, &patch.minor, &patch.point],
        )
        .map_err(QueryError::with(
            "cannot forget the progress of a concurrent patch",
        ))?;
    Ok(())
}

/// Records that `package` `version` needed `extension`, with the version
/// the database has once the statement before ran, and whether this deploy
/// created it.
pub fn record_extension(package: &str, version: &str, extension: &str, created: bool) -> Action {
    Action::Bound {
        sql: concat!(
            "INSERT INTO _pgpm.package_extensions (deployment_id, package, version, extension, extversion, created) SELECT ",
            deployment_id!(),
            ", $1, $2, extname, extversion, $4 FROM pg_catalog.pg_extension WHERE extname = $3"
        ),
        params: vec![
            Param::text(package),
            Param::text(version),
            Param::text(extension),
            Param::Bool(created),
        ],
    }
}
