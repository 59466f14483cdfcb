//! Deploying a plan: schema actions by mode, the packages' SQL, grants,
//! ownership and catalog rows, all in one transaction under pgpm's lock.
//!
//! Deploying has two halves. [`prepare`] reads the database (inside the
//! deploy's transaction, under the lock) and turns a [`Plan`] into a
//! [`DeployPlan`]: the exact list of [`Action`]s that will run. [`execute`]
//! runs them. `--dry-run` prints the same list instead and rolls back, so
//! what is printed is what runs.
//!
//! A package's statements are sent in few large batches (one per phase, one
//! per table script) rather than one round trip per statement, which is what
//! makes a deploy as fast as `psql -1 -f`. Each batch runs under a savepoint
//! so that, when the server's error carries no position, the batch can be
//! replayed statement by statement to find the failing one and report its
//! `file:line:column`.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt::{self, Write as _};
use std::path::{Path, PathBuf};
use std::time::Duration;

use postgres::types::ToSql;
use postgres::{Client, GenericClient, Transaction};

use crate::db::{quote_ident, quote_literal};
use crate::lock::Locked;
use crate::manifest::Manifest;
use crate::plan::{PackagePlan, Phase, Plan};
use crate::{Error, Result, catalog};

/// What to do when a package's schema exists already.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Refuse.
    #[default]
    Safe,
    /// Rename the existing schema to `<schema>_<N>` and create a new one.
    Moderate,
    /// Drop the existing schema with everything that depends on it.
    Unsafe,
    /// Run the scripts into the existing schema.
    Overwrite,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Safe => "safe",
            Mode::Moderate => "moderate",
            Mode::Unsafe => "unsafe",
            Mode::Overwrite => "overwrite",
        }
    }
}

impl std::str::FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Mode, String> {
        match s {
            "safe" => Ok(Mode::Safe),
            "moderate" => Ok(Mode::Moderate),
            "unsafe" => Ok(Mode::Unsafe),
            "overwrite" => Ok(Mode::Overwrite),
            other => Err(format!(
                "unknown mode \"{other}\" (expected safe, moderate, unsafe or overwrite)"
            )),
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Options of `pgpm deploy`.
#[derive(Debug, Clone, Default)]
pub struct DeployOptions {
    pub mode: Mode,
    /// Owner of the package schemas and their objects (else `owner_role`).
    pub owner: Option<String>,
    /// Roles that may use the package schemas (added to `usage_roles`).
    pub usage: Vec<String>,
    /// Redeploy only these files into the existing schemas.
    pub files: Vec<PathBuf>,
    /// Deploy even when the content checksum equals the deployed one.
    pub force: bool,
    pub vcs_ref: Option<String>,
    pub vcs_link: Option<String>,
    pub issue_ref: Option<String>,
    pub issue_link: Option<String>,
    pub lock_timeout: Option<Duration>,
}

#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error(
        "schema {schema} of {package} exists already; nothing was changed (use --mode moderate to rename it, unsafe to drop it, or overwrite to deploy into it)"
    )]
    SchemaExists { package: String, schema: String },
    #[error(
        "{deployed} is deployed into the database's search_path already (scope: database); nothing was changed (use --mode overwrite to run {package}'s scripts again)"
    )]
    DatabaseScopeDeployed { package: String, deployed: String },
    #[error("{a} and {b} would both deploy into schema {schema}")]
    SchemaConflict {
        schema: String,
        a: String,
        b: String,
    },
    #[error(
        "{package}: table script {file} changed since it was applied to schema {schema} at {applied_at}; table changes go through patches (or redeploy with --mode unsafe)"
    )]
    TableScriptChanged {
        package: String,
        schema: String,
        file: PathBuf,
        applied_at: String,
    },
    #[error("{package}: schema {schema} does not exist, so files cannot be redeployed into it")]
    SchemaMissing { package: String, schema: String },
    #[error("{} is not a SQL file of any package being deployed", path.display())]
    FileNotInPackage { path: PathBuf },
    #[error("role {role} does not exist")]
    UnknownRole { role: String },
    #[error("{package}: {}:{line}:{column}: statement failed", file.display())]
    Statement {
        package: String,
        file: PathBuf,
        line: usize,
        column: usize,
        #[source]
        source: postgres::Error,
    },
}

/// A parameter bound to a catalog write.
#[derive(Debug, Clone, PartialEq)]
pub enum Param {
    Text(Option<String>),
    Int(i32),
    BigInt(i64),
}

impl Param {
    fn text(value: impl Into<String>) -> Param {
        Param::Text(Some(value.into()))
    }

    fn as_sql(&self) -> &(dyn ToSql + Sync) {
        match self {
            Param::Text(v) => v,
            Param::Int(v) => v,
            Param::BigInt(v) => v,
        }
    }

    fn render(&self) -> String {
        match self {
            Param::Text(Some(v)) => quote_literal(v),
            Param::Text(None) => "NULL".into(),
            Param::Int(v) => v.to_string(),
            Param::BigInt(v) => v.to_string(),
        }
    }
}

/// The id of the deployment row the running transaction inserted, for
/// catalog writes that refer to it (a literal, so statements stay `&'static str`).
macro_rules! deployment_id {
    () => {
        "currval(pg_get_serial_sequence('_pgpm.deployments', 'deployment_id'))"
    };
}
pub(crate) use deployment_id;

/// Sets the end time of the deployment row the running transaction inserted.
pub(crate) fn close_deployment() -> Action {
    Action::Sql(
        concat!(
            "UPDATE _pgpm.deployments SET finished_at = clock_timestamp() WHERE deployment_id = ",
            deployment_id!()
        )
        .into(),
    )
}

/// Forgets the table scripts applied to a schema that is being dropped.
pub(crate) fn forget_table_scripts(schema: &str) -> Action {
    Action::Bound {
        sql: "DELETE FROM _pgpm.table_scripts WHERE target_schema = $1",
        params: vec![Param::text(schema)],
    }
}

/// Where a statement of a batch came from.
#[derive(Debug, Clone)]
pub struct Origin {
    /// Byte offset of the statement in the batch.
    pub start: usize,
    /// Byte length of the statement in the batch.
    pub len: usize,
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
}

/// One thing a deploy runs, in order.
#[derive(Debug, Clone)]
pub enum Action {
    /// A comment in the printed plan; runs nothing.
    Note(String),
    /// SQL that pgpm generated: identifiers quoted, no values.
    Sql(String),
    /// SQL with values bound as parameters.
    Bound {
        sql: &'static str,
        params: Vec<Param>,
    },
    /// Statements from a package's files, sent together.
    Batch {
        package: String,
        sql: String,
        origins: Vec<Origin>,
    },
}

/// The exact list of actions a deploy runs, and what it has to say.
#[derive(Debug, Clone, Default)]
pub struct DeployPlan {
    pub actions: Vec<Action>,
    /// Packages deployed, as `name version -> schema`.
    pub deployed: Vec<String>,
    /// Packages skipped because their content is already deployed.
    pub up_to_date: Vec<String>,
    /// Warnings for the user (what a cascade removes, ...).
    pub warnings: Vec<String>,
}

impl DeployPlan {
    /// Whether running the plan changes anything.
    pub fn is_noop(&self) -> bool {
        self.deployed.is_empty()
    }
}

/// Printed, the plan is the SQL script that runs, bound values shown in
/// comments after their statement.
impl fmt::Display for DeployPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for action in &self.actions {
            match action {
                Action::Note(note) => writeln!(f, "\n-- {note}")?,
                Action::Sql(sql) => writeln!(f, "{sql};")?,
                Action::Bound { sql, params } => {
                    write!(f, "{sql};")?;
                    if !params.is_empty() {
                        write!(f, "\n  -- {}", render_params(params))?;
                    }
                    writeln!(f)?;
                }
                Action::Batch { sql, .. } => writeln!(f, "{}", sql.trim_end())?,
            }
        }
        Ok(())
    }
}

/// What a deploy reports when done.
#[derive(Debug, Clone)]
pub struct DeployReport {
    pub plan: DeployPlan,
    pub dry_run: bool,
}

/// The state of one target schema, read from the database.
struct Existing {
    /// The schema exists in the database.
    exists: bool,
    /// The catalog's current package in that schema: (id, name, version, checksum).
    package: Option<(i64, String, String, String)>,
}

/// Builds the actions for `plan` against the database as it is now.
///
/// Must run inside the deploy's transaction, under the lock, so that what it
/// reads stays true until the actions run.
pub fn prepare(
    client: &mut impl GenericClient,
    plan: &Plan,
    opts: &DeployOptions,
) -> Result<DeployPlan> {
    prepare_known(client, plan, opts, HashMap::new())
}

/// [`prepare`], given the state of some packages' targets already read in
/// this transaction (by manifest path), so they are not read twice.
fn prepare_known(
    client: &mut impl GenericClient,
    plan: &Plan,
    opts: &DeployOptions,
    mut known: HashMap<PathBuf, Existing>,
) -> Result<DeployPlan> {
    let mut out = DeployPlan::default();
    check_schema_conflicts(plan)?;
    let roles: BTreeSet<&str> = opts
        .owner
        .iter()
        .chain(&opts.usage)
        .chain(plan.packages.iter().flat_map(|p| {
            p.manifest
                .owner_role
                .iter()
                .chain(p.manifest.usage_roles.iter())
        }))
        .map(String::as_str)
        .collect();
    for role in roles {
        let exists: bool = client
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)",
                &[&role],
            )
            .map_err(Error::db("cannot look up roles"))?
            .get(0);
        if !exists {
            return Err(DeployError::UnknownRole {
                role: role.to_string(),
            }
            .into());
        }
    }
    let only_files = resolve_files(plan, &opts.files)?;

    // Decide per package, before writing anything, so refusals change nothing.
    let mut work = Vec::new();
    for pkg in &plan.packages {
        let label = label(pkg);
        if !pkg.parsed {
            // Left unparsed by deploy() because it is up to date (same test
            // as below, same transaction).
            out.up_to_date.push(label);
            continue;
        }
        let existing = match known.remove(&pkg.manifest.manifest_path) {
            Some(existing) => existing,
            None => read_existing(client, &pkg.manifest)?,
        };
        if let Some(files) = &only_files {
            let Some(files) = files.get(&label) else {
                continue;
            };
            if let Some(schema) = &pkg.schema
                && !existing.exists
            {
                return Err(DeployError::SchemaMissing {
                    package: label,
                    schema: schema.clone(),
                }
                .into());
            }
            work.push((pkg, existing, Some(files.clone())));
            continue;
        }
        if !opts.force && up_to_date(&existing, &pkg.manifest, &pkg.checksum) {
            out.up_to_date.push(label);
            continue;
        }
        if existing.exists && opts.mode == Mode::Safe {
            return Err(match &pkg.schema {
                Some(schema) => DeployError::SchemaExists {
                    package: label,
                    schema: schema.clone(),
                },
                None => DeployError::DatabaseScopeDeployed {
                    package: label,
                    deployed: existing
                        .package
                        .as_ref()
                        .map(|(_, n, v, _)| format!("{n} {v}"))
                        .unwrap_or_default(),
                },
            }
            .into());
        }
        work.push((pkg, existing, None));
    }
    if work.is_empty() {
        return Ok(out);
    }

    out.actions
        .push(Action::Note("record the deployment".into()));
    out.actions.push(Action::Bound {
        sql: "INSERT INTO _pgpm.deployments (mode, vcs_ref, vcs_link, issue_ref, issue_link, pgpm_version) VALUES ($1, $2, $3, $4, $5, $6)",
        params: vec![
            Param::text(opts.mode.as_str()),
            Param::Text(opts.vcs_ref.clone().or_else(|| git_head(&plan.packages[0].manifest.dir))),
            Param::Text(opts.vcs_link.clone()),
            Param::Text(opts.issue_ref.clone()),
            Param::Text(opts.issue_link.clone()),
            Param::text(crate::VERSION),
        ],
    });
    for (pkg, existing, files) in work {
        prepare_package(client, pkg, &existing, files.as_ref(), opts, &mut out)?;
    }
    out.actions
        .push(Action::Note("close the deployment record".into()));
    out.actions.push(close_deployment());
    Ok(out)
}

fn label(pkg: &PackagePlan) -> String {
    pkg.label()
}

fn check_schema_conflicts(plan: &Plan) -> Result<()> {
    let mut seen: HashMap<&str, String> = HashMap::new();
    for pkg in &plan.packages {
        if let Some(schema) = &pkg.schema
            && let Some(a) = seen.insert(schema, label(pkg))
        {
            return Err(DeployError::SchemaConflict {
                schema: schema.clone(),
                a,
                b: label(pkg),
            }
            .into());
        }
    }
    Ok(())
}

/// Maps `-f FILE` arguments to the packages and package-relative paths they belong to.
fn resolve_files(
    plan: &Plan,
    files: &[PathBuf],
) -> Result<Option<BTreeMap<String, BTreeSet<PathBuf>>>> {
    if files.is_empty() {
        return Ok(None);
    }
    let mut out: BTreeMap<String, BTreeSet<PathBuf>> = BTreeMap::new();
    for file in files {
        let abs = file.canonicalize().map_err(Error::io(file))?;
        let owner = plan.packages.iter().find_map(|pkg| {
            let dir = pkg.manifest.dir.canonicalize().ok()?;
            let rel = abs.strip_prefix(&dir).ok()?.to_path_buf();
            let known = pkg
                .phases
                .iter()
                .any(|ph| ph.statements.iter().any(|s| s.file == rel));
            known.then(|| (label(pkg), rel))
        });
        let (pkg, rel) =
            owner.ok_or_else(|| DeployError::FileNotInPackage { path: file.clone() })?;
        out.entry(pkg).or_default().insert(rel);
    }
    Ok(Some(out))
}

/// Whether the package's content is what is deployed in its schema.
fn up_to_date(existing: &Existing, manifest: &Manifest, checksum: &str) -> bool {
    existing.exists
        && existing
            .package
            .as_ref()
            .is_some_and(|(_, name, version, sum)| {
                *name == manifest.name
                    && *version == manifest.version.to_string()
                    && sum == checksum
            })
}

fn read_existing(client: &mut impl GenericClient, manifest: &Manifest) -> Result<Existing> {
    let Some(schema) = manifest.schema() else {
        // Database scope: the catalog row for this name is the "schema".
        let row = client
            .query_opt(
                "SELECT package_id, name, version, checksum FROM _pgpm.packages
                  WHERE name = $1 AND scope = 'database' AND old_rev IS NULL AND removed_at IS NULL",
                &[&manifest.name],
            )
            .map_err(Error::db("cannot read the catalog"))?;
        let package = row.map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)));
        return Ok(Existing {
            exists: package.is_some(),
            package,
        });
    };
    let exists =
        crate::db::schema_exists(client, schema).map_err(Error::db("cannot look up schemas"))?;
    let package = client
        .query_opt(
            "SELECT package_id, name, version, checksum FROM _pgpm.packages
              WHERE schema_name = $1 AND removed_at IS NULL",
            &[&schema],
        )
        .map_err(Error::db("cannot read the catalog"))?
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)));
    Ok(Existing { exists, package })
}

fn prepare_package(
    client: &mut impl GenericClient,
    pkg: &PackagePlan,
    existing: &Existing,
    only_files: Option<&BTreeSet<PathBuf>>,
    opts: &DeployOptions,
    out: &mut DeployPlan,
) -> Result<()> {
    let mode = if only_files.is_some() {
        Mode::Overwrite
    } else {
        opts.mode
    };
    let fresh_schema = schema_actions(client, pkg, existing, mode, out)?;
    statement_actions(client, pkg, fresh_schema, mode, only_files, out)?;
    grant_actions(pkg, opts, out);
    catalog_actions(pkg, existing, fresh_schema, only_files, opts, out);
    notify_action(pkg, mode, out);
    Ok(())
}

/// What happens to the package's schema: rename, drop, create, and the
/// `search_path` its statements run with. Returns whether the schema is
/// created in this deploy (and so gets all its table scripts).
fn schema_actions(
    client: &mut impl GenericClient,
    pkg: &PackagePlan,
    existing: &Existing,
    mode: Mode,
    out: &mut DeployPlan,
) -> Result<bool> {
    let label = label(pkg);
    // A schema created in this deploy gets all its table scripts run.
    let mut fresh_schema = !existing.exists;

    out.actions.push(Action::Note(format!(
        "package {label}{}",
        pkg.schema
            .as_ref()
            .map(|s| format!(" -> schema {s}"))
            .unwrap_or_else(|| " (database scope)".into())
    )));
    if let Some(schema) = &pkg.schema {
        let q = quote_ident(schema);
        if existing.exists {
            match mode {
                Mode::Safe | Mode::Overwrite => {}
                Mode::Moderate => {
                    let n = free_revision(client, schema)?;
                    let renamed = format!("{schema}_{n}");
                    out.actions.push(Action::Sql(format!(
                        "ALTER SCHEMA {q} RENAME TO {}",
                        quote_ident(&renamed)
                    )));
                    out.actions.push(Action::Bound {
                        sql: concat!("INSERT INTO _pgpm.deployment_packages (deployment_id, package_id, action, detail) SELECT ", deployment_id!(), ", package_id, 'renamed', $2 FROM _pgpm.packages WHERE schema_name = $1 AND removed_at IS NULL"),
                        params: vec![Param::text(schema), Param::text(&renamed)],
                    });
                    out.actions.push(Action::Bound {
                        sql: "UPDATE _pgpm.packages SET schema_name = $2, old_rev = $3 WHERE schema_name = $1 AND removed_at IS NULL",
                        params: vec![Param::text(schema), Param::text(&renamed), Param::Int(n)],
                    });
                    out.actions.push(Action::Bound {
                        sql: "UPDATE _pgpm.table_scripts SET target_schema = $2 WHERE target_schema = $1",
                        params: vec![Param::text(schema), Param::text(&renamed)],
                    });
                    out.warnings.push(format!(
                        "{label}: the existing schema {schema} is kept as old revision {renamed}"
                    ));
                    fresh_schema = true;
                }
                Mode::Unsafe => {
                    for object in cascade_victims(client, schema)? {
                        out.warnings.push(format!(
                            "{label}: dropping schema {schema} also drops {object}"
                        ));
                    }
                    out.actions
                        .push(Action::Sql(format!("DROP SCHEMA {q} CASCADE")));
                    out.actions.push(Action::Bound {
                        sql: concat!("INSERT INTO _pgpm.deployment_packages (deployment_id, package_id, action) SELECT ", deployment_id!(), ", package_id, 'dropped' FROM _pgpm.packages WHERE schema_name = $1 AND removed_at IS NULL"),
                        params: vec![Param::text(schema)],
                    });
                    out.actions.push(Action::Bound {
                        sql: "UPDATE _pgpm.packages SET removed_at = now(), removed_by = session_user WHERE schema_name = $1 AND removed_at IS NULL",
                        params: vec![Param::text(schema)],
                    });
                    out.actions.push(forget_table_scripts(schema));
                    fresh_schema = true;
                }
            }
        }
        if fresh_schema {
            out.actions.push(Action::Sql(format!("CREATE SCHEMA {q}")));
            out.actions
                .push(Action::Sql(format!("REVOKE ALL ON SCHEMA {q} FROM PUBLIC")));
        }
        let mut path = vec![q];
        path.extend(
            pkg.dependencies
                .iter()
                .filter_map(|d| d.schema.as_deref())
                .map(quote_ident),
        );
        path.push("public".into());
        out.actions.push(Action::Sql(format!(
            "SET LOCAL search_path TO {}",
            path.join(", ")
        )));
    } else {
        out.actions
            .push(Action::Sql("SET LOCAL search_path TO DEFAULT".into()));
    }
    Ok(fresh_schema)
}

/// The package's statements, phase by phase; table scripts only when not
/// applied to this schema yet (a changed one is an error).
fn statement_actions(
    client: &mut impl GenericClient,
    pkg: &PackagePlan,
    fresh_schema: bool,
    mode: Mode,
    only_files: Option<&BTreeSet<PathBuf>>,
    out: &mut DeployPlan,
) -> Result<()> {
    let name = &pkg.manifest.name;
    let target = pkg.schema.clone().unwrap_or_default();
    // Table scripts: once per package, target schema and file.
    let applied: HashMap<PathBuf, (String, String)> = if fresh_schema {
        HashMap::new()
    } else {
        client
            .query(
                "SELECT file_name, checksum, to_char(applied_at, 'YYYY-MM-DD HH24:MI:SS TZ') FROM _pgpm.table_scripts
                  WHERE package_name = $1 AND target_schema = $2",
                &[name, &target],
            )
            .map_err(Error::db("cannot read applied table scripts"))?
            .iter()
            .map(|r| (PathBuf::from(r.get::<_, String>(0)), (r.get(1), r.get(2))))
            .collect()
    };

    for phase in &pkg.phases {
        if phase.phase == Phase::Tables {
            for table in pkg.table_scripts() {
                if only_files.is_some_and(|f| !f.contains(table.path)) {
                    continue;
                }
                let rerun = only_files.is_some();
                match applied.get(table.path) {
                    Some((sum, _)) if sum == table.checksum && !rerun => continue,
                    Some((_, applied_at)) if !rerun && mode != Mode::Unsafe => {
                        return Err(DeployError::TableScriptChanged {
                            package: label(pkg),
                            schema: target,
                            file: table.path.to_path_buf(),
                            applied_at: applied_at.clone(),
                        }
                        .into());
                    }
                    _ => {}
                }
                push_batch(out, pkg, table.statements.iter());
                out.actions.push(Action::Bound {
                    sql: concat!("INSERT INTO _pgpm.table_scripts (package_name, target_schema, file_name, checksum, deployment_id) VALUES ($1, $2, $3, $4, ", deployment_id!(), ") ON CONFLICT (package_name, target_schema, file_name) DO UPDATE SET checksum = EXCLUDED.checksum, deployment_id = EXCLUDED.deployment_id, applied_at = now(), applied_by = session_user"),
                    params: vec![
                        Param::text(name),
                        Param::text(&target),
                        Param::text(table.path.to_string_lossy()),
                        Param::text(table.checksum),
                    ],
                });
            }
            continue;
        }
        let statements = phase
            .statements
            .iter()
            .filter(|s| only_files.is_none_or(|f| f.contains(&s.file)));
        push_batch(out, pkg, statements);
    }
    Ok(())
}

/// Usage grants and ownership of the package's schema.
fn grant_actions(pkg: &PackagePlan, opts: &DeployOptions, out: &mut DeployPlan) {
    if let Some(schema) = &pkg.schema {
        let usage: BTreeSet<&String> = opts.usage.iter().chain(&pkg.manifest.usage_roles).collect();
        for role in usage {
            out.actions.push(Action::Bound {
                sql: "SELECT _pgpm.grant_usage($1, $2)",
                params: vec![Param::text(schema), Param::text(role)],
            });
        }
        if let Some(owner) = opts.owner.as_ref().or(pkg.manifest.owner_role.as_ref()) {
            out.actions.push(Action::Bound {
                sql: "SELECT _pgpm.set_owner($1, $2)",
                params: vec![Param::text(schema), Param::text(owner)],
            });
        }
    }
}

/// The package's catalog rows: the package, its dependencies, what this
/// deployment did to it.
fn catalog_actions(
    pkg: &PackagePlan,
    existing: &Existing,
    fresh_schema: bool,
    only_files: Option<&BTreeSet<PathBuf>>,
    opts: &DeployOptions,
    out: &mut DeployPlan,
) {
    let name = &pkg.manifest.name;
    let version = pkg.manifest.version.to_string();
    let target = pkg.schema.clone().unwrap_or_default();
    let checksum = if only_files.is_some() {
        // Only part of the package is deployed: never "up to date" afterwards.
        format!("partial:{}", pkg.checksum)
    } else {
        pkg.checksum.clone()
    };
    let same_row = existing
        .package
        .as_ref()
        .filter(|(_, n, v, _)| *n == *name && *v == version && !fresh_schema);
    if let Some((id, ..)) = same_row {
        out.actions.push(Action::Bound {
            sql: concat!("UPDATE _pgpm.packages SET checksum = $2, deployment_id = ", deployment_id!(), ", deployed_at = now(), deployed_by = session_user, description = $3, license = $4, owner_role = $5 WHERE package_id = $1"),
            params: vec![
                Param::BigInt(*id),
                Param::text(checksum),
                Param::Text(pkg.manifest.description.clone()),
                Param::Text(pkg.manifest.license.clone()),
                Param::Text(opts.owner.clone().or(pkg.manifest.owner_role.clone())),
            ],
        });
        out.actions.push(Action::Bound {
            sql: concat!("INSERT INTO _pgpm.deployment_packages (deployment_id, package_id, action) VALUES (", deployment_id!(), ", $1, $2)"),
            params: vec![
                Param::BigInt(*id),
                Param::text(if only_files.is_some() { "files" } else { "overwritten" }),
            ],
        });
    } else {
        if !fresh_schema && existing.package.is_some() {
            // Overwriting another version's schema: that version is gone.
            out.actions.push(Action::Bound {
                sql: "UPDATE _pgpm.packages SET removed_at = now(), removed_by = session_user WHERE schema_name = $1 AND removed_at IS NULL",
                params: vec![Param::text(&target)],
            });
        }
        if pkg.schema.is_none() {
            out.actions.push(Action::Bound {
                sql: "UPDATE _pgpm.packages SET removed_at = now(), removed_by = session_user WHERE name = $1 AND scope = 'database' AND removed_at IS NULL",
                params: vec![Param::text(name)],
            });
        }
        let v = &pkg.manifest.version;
        out.actions.push(Action::Bound {
            sql: concat!("INSERT INTO _pgpm.packages (name, version, v_major, v_minor, v_patch, v_pre, subclass, scope, schema_name, description, license, owner_role, checksum, deployment_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, ", deployment_id!(), ")"),
            params: vec![
                Param::text(name),
                Param::text(&version),
                Param::Int(v.major as i32),
                Param::Int(v.minor as i32),
                Param::Int(v.patch as i32),
                Param::text(v.pre.as_str()),
                Param::text(pkg.manifest.subclass.as_str()),
                Param::text(pkg.manifest.scope.as_str()),
                Param::Text(pkg.schema.clone()),
                Param::Text(pkg.manifest.description.clone()),
                Param::Text(pkg.manifest.license.clone()),
                Param::Text(opts.owner.clone().or(pkg.manifest.owner_role.clone())),
                Param::text(checksum),
            ],
        });
        for dep in &pkg.dependencies {
            out.actions.push(Action::Bound {
                sql: "INSERT INTO _pgpm.package_dependencies (package_id, dependency_id, requirement) SELECT p.package_id, d.package_id, $5 FROM _pgpm.packages p, _pgpm.packages d WHERE p.name = $1 AND p.version = $2 AND p.old_rev IS NULL AND p.removed_at IS NULL AND d.name = $3 AND d.version = $4 AND d.old_rev IS NULL AND d.removed_at IS NULL",
                params: vec![
                    Param::text(name),
                    Param::text(&version),
                    Param::text(&dep.name),
                    Param::text(dep.version.to_string()),
                    Param::text(&dep.requirement),
                ],
            });
        }
        out.actions.push(Action::Bound {
            sql: concat!("INSERT INTO _pgpm.deployment_packages (deployment_id, package_id, action) SELECT ", deployment_id!(), ", package_id, 'created' FROM _pgpm.packages WHERE name = $1 AND version = $2 AND old_rev IS NULL AND removed_at IS NULL"),
            params: vec![Param::text(name), Param::text(&version)],
        });
    }
}

/// Clients that selected a version hear about the new one at commit.
fn notify_action(pkg: &PackagePlan, mode: Mode, out: &mut DeployPlan) {
    let label = label(pkg);
    let name = &pkg.manifest.name;
    let version = pkg.manifest.version.to_string();
    let payload = serde_json::json!({
        "package": name,
        "version": version,
        "schema": pkg.schema,
        "mode": mode.as_str(),
    })
    .to_string();
    out.actions.push(Action::Bound {
        sql: "SELECT pg_notify('pgpm_deploy', $1), pg_notify($2, $1)",
        params: vec![
            Param::text(payload),
            Param::text(crate::client::package_channel(name)),
        ],
    });
    out.deployed.push(format!(
        "{label} -> {}",
        pkg.schema.as_deref().unwrap_or("(database scope)")
    ));
}

/// Appends one batch of statements.
/// Statements' origins name the file as found on disk (the package folder
/// joined with the file), like every other error that points at a file.
fn push_batch<'a>(
    out: &mut DeployPlan,
    pkg: &PackagePlan,
    statements: impl Iterator<Item = &'a crate::sql::Statement>,
) {
    let mut sql = String::new();
    let mut origins = Vec::new();
    for stmt in statements {
        let start = sql.len();
        sql.push_str(&stmt.sql);
        let len = stmt.sql.len();
        if !stmt.sql.trim_end().ends_with(';') {
            sql.push(';');
        }
        sql.push('\n');
        origins.push(Origin {
            start,
            len,
            file: pkg.manifest.dir.join(&stmt.file),
            line: stmt.line,
            column: stmt.column,
        });
    }
    if origins.is_empty() {
        return;
    }
    out.actions.push(Action::Batch {
        package: pkg.label(),
        sql,
        origins,
    });
}

/// The first N from 0 such that `<schema>_<N>` is free.
fn free_revision(client: &mut impl GenericClient, schema: &str) -> Result<i32> {
    let n: i32 = client
        .query_one(
            "SELECT min(n)::int FROM generate_series(0, (SELECT count(*) FROM pg_namespace)::int) n
              WHERE NOT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1 || '_' || n)",
            &[&schema],
        )
        .map_err(Error::db("cannot find a free schema revision"))?
        .get(0);
    Ok(n)
}

/// Objects outside `schema` that `DROP SCHEMA ... CASCADE` would also drop.
fn cascade_victims(client: &mut impl GenericClient, schema: &str) -> Result<Vec<String>> {
    let rows = client
        .query(
            "SELECT DISTINCT o.type || ' ' || o.identity
               FROM pg_depend d,
                    LATERAL pg_identify_object(d.refclassid, d.refobjid, 0) r,
                    LATERAL pg_identify_object(d.classid, d.objid, 0) o
              WHERE r.schema = $1 AND o.schema IS DISTINCT FROM $1
                AND d.deptype IN ('n', 'a') AND o.type <> 'schema'
              ORDER BY 1",
            &[&schema],
        )
        .map_err(Error::db("cannot list what the cascade drops"))?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// The git commit of the directory, when it is in a work tree.
fn git_head(dir: &Path) -> Option<String> {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["rev-parse", "HEAD"])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
        .filter(|s| !s.is_empty())
}

/// Runs the actions in the caller's transaction.
pub fn execute(tx: &mut Transaction<'_>, plan: &DeployPlan) -> Result<()> {
    for action in &plan.actions {
        match action {
            Action::Note(_) => {}
            Action::Sql(sql) => tx
                .batch_execute(sql)
                .map_err(Error::db(format!("pgpm's statement failed: {sql}")))?,
            Action::Bound { sql, params } => {
                let params: Vec<&(dyn ToSql + Sync)> = params.iter().map(Param::as_sql).collect();
                tx.execute(*sql, &params)
                    .map_err(Error::db(format!("catalog write failed: {sql}")))?;
            }
            Action::Batch {
                package,
                sql,
                origins,
            } => run_batch(tx, package, sql, origins)?,
        }
    }
    Ok(())
}

/// Runs a batch under a savepoint; on failure, finds the statement and
/// its position in the user's file.
fn run_batch(tx: &mut Transaction<'_>, package: &str, sql: &str, origins: &[Origin]) -> Result<()> {
    let mut sp = tx
        .savepoint("pgpm_batch")
        .map_err(Error::db("cannot set a savepoint"))?;
    let err = match sp.batch_execute(sql) {
        Ok(()) => {
            return sp.commit().map_err(Error::db("cannot release a savepoint"));
        }
        Err(err) => err,
    };
    if let Some(pos) = error_position(&err) {
        let byte = char_to_byte(sql, pos);
        if let Some(origin) = origins.iter().rev().find(|o| o.start <= byte) {
            return Err(statement_error(
                package,
                origin,
                &sql[origin.start..origin.start + origin.len],
                Some(byte - origin.start),
                err,
            ));
        }
    }
    // No usable position: replay statement by statement to find the culprit.
    sp.rollback()
        .map_err(Error::db("cannot roll back a savepoint"))?;
    let mut sp = tx
        .savepoint("pgpm_replay")
        .map_err(Error::db("cannot set a savepoint"))?;
    for origin in origins {
        let text = &sql[origin.start..origin.start + origin.len];
        if let Err(e) = sp.batch_execute(text) {
            let offset = error_position(&e).map(|p| char_to_byte(text, p));
            return Err(statement_error(package, origin, text, offset, e));
        }
    }
    // The batch failed but no single statement did: report the first.
    let origin = &origins[0];
    Err(statement_error(
        package,
        origin,
        &sql[origin.start..origin.start + origin.len],
        None,
        err,
    ))
}

fn error_position(err: &postgres::Error) -> Option<usize> {
    match err.as_db_error()?.position()? {
        postgres::error::ErrorPosition::Original(p) => Some(*p as usize),
        postgres::error::ErrorPosition::Internal { .. } => None,
    }
}

/// Converts PostgreSQL's 1-based character position to a byte offset.
fn char_to_byte(text: &str, pos: usize) -> usize {
    text.char_indices()
        .nth(pos.saturating_sub(1))
        .map(|(i, _)| i)
        .unwrap_or(text.len())
}

fn statement_error(
    package: &str,
    origin: &Origin,
    text: &str,
    offset_in_statement: Option<usize>,
    source: postgres::Error,
) -> Error {
    let (line, column) = match offset_in_statement {
        Some(offset) => {
            let offset = offset.min(text.len());
            let (l, c) = crate::sql::line_col(text, offset);
            if l == 1 {
                (origin.line, origin.column + c - 1)
            } else {
                (origin.line + l - 1, c)
            }
        }
        None => (origin.line, origin.column),
    };
    DeployError::Statement {
        package: package.to_string(),
        file: origin.file.clone(),
        line,
        column,
        source,
    }
    .into()
}

/// Deploys the workspace at `path`: lock, one transaction, catalog rows.
/// With `dry_run`, everything is read and planned, nothing is changed.
pub fn deploy(
    client: &mut Client,
    path: &Path,
    opts: &DeployOptions,
    dry_run: bool,
) -> Result<DeployReport> {
    // Manifests and files are read before anything touches the database.
    let workspace = crate::workspace::Workspace::load(path)?;
    let mut client = Locked::acquire(
        client,
        opts.lock_timeout.unwrap_or(crate::lock::DEFAULT_TIMEOUT),
    )?;
    let mut tx = client.begin()?;
    catalog::require_current(&mut tx)?;
    let deployed = crate::resolve::Deployed::read_current(&mut tx)?;
    // Packages whose content is deployed already are not parsed: parsing is
    // most of what an unchanged workspace would otherwise cost, and
    // prepare() reports them as up to date without looking at their SQL.
    let mut unchanged = HashSet::new();
    let mut known = HashMap::new();
    if !opts.force && opts.files.is_empty() {
        for pkg in &workspace.packages {
            let existing = read_existing(&mut tx, &pkg.manifest)?;
            if up_to_date(&existing, &pkg.manifest, &pkg.checksum) {
                unchanged.insert(pkg.manifest.manifest_path.clone());
            } else {
                known.insert(pkg.manifest.manifest_path.clone(), existing);
            }
        }
    }
    let plan = crate::plan::plan_selected(workspace, &deployed, |p| {
        !unchanged.contains(&p.manifest.manifest_path)
    })?;
    let deploy_plan = prepare_known(&mut tx, &plan, opts, known)?;
    if dry_run || deploy_plan.is_noop() {
        tx.rollback().map_err(Error::db("cannot roll back"))?;
    } else {
        execute(&mut tx, &deploy_plan)?;
        tx.commit().map_err(Error::db("cannot commit the deploy"))?;
    }
    Ok(DeployReport {
        plan: deploy_plan,
        dry_run,
    })
}

/// Renders bound values for the printed plan.
pub fn render_params(params: &[Param]) -> String {
    let mut s = String::new();
    for (i, p) in params.iter().enumerate() {
        let _ = write!(
            s,
            "{}${} = {}",
            if i > 0 { ", " } else { "" },
            i + 1,
            p.render()
        );
    }
    s
}
