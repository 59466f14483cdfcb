//! `pgpm install --adopt`: taking over a database that the ancestor
//! (Python pgpm 0.1.62) manages, without losing its history.
//!
//! In one transaction, under pgpm's lock: the ancestor's DDL event trigger
//! is dropped and its catalog renamed to `_pgpm_ancestor` (kept as
//! history), pgpm's catalog is installed, and every package schema the
//! ancestor deployed is registered: name, version, subclass, old revisions
//! (`_0`, `_1`), dependencies, and its deployment events with their VCS and
//! issue references. The ancestor's version columns are often wrong (a
//! `-f`, overwrite or unsafe deploy rewrote every row of the package), so
//! versions are read from the schema names, and where the two disagree a
//! warning says so. Given the workspace, packages whose schema it names get
//! its checksum, so that the next deploy of unchanged packages is a no-op.

use std::collections::HashMap;
use std::time::Duration;

use postgres::{Client, GenericClient};

use crate::catalog::{self, CURRENT_VERSION, CatalogError, STEPS, State};
use crate::db::QueryError;
use crate::db::lock::{DEFAULT_TIMEOUT, Locked};
use crate::db::quote::quote_ident;
use crate::db::script::{self, Action, Param, Script};
use crate::package::workspace::Workspace;

/// What the ancestor's catalog is renamed to.
pub const ANCESTOR_SCHEMA: &str = "_pgpm_ancestor";

/// What `install --adopt` should do.
#[derive(Debug, Clone)]
pub struct AdoptOptions {
    pub dry_run: bool,
    pub lock_timeout: Duration,
}

impl Default for AdoptOptions {
    fn default() -> AdoptOptions {
        AdoptOptions {
            dry_run: false,
            lock_timeout: DEFAULT_TIMEOUT,
        }
    }
}

/// One package schema registered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Adopted {
    pub name: String,
    /// Semver, from the schema name.
    pub version: String,
    pub schema: String,
    /// `Some(N)` for an old revision (`<schema>_<N>`).
    pub old_rev: Option<i32>,
    /// Its checksum came from the workspace (the next deploy is a no-op).
    pub from_workspace: bool,
}

/// What adopting did or, in a dry run, would do.
#[derive(Debug, Clone)]
pub struct AdoptReport {
    pub script: Script,
    pub adopted: Vec<Adopted>,
    /// Ancestor deployment events kept as history.
    pub events: usize,
    pub warnings: Vec<String>,
    pub dry_run: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum AdoptError {
    #[error(
        "schema _pgpm is not the ancestor's catalog (no _pgpm.packages with pkg_name): nothing to adopt"
    )]
    NotAncestor,
    #[error("pgpm's catalog is installed already; there is nothing to adopt")]
    AlreadyOurs,
    #[error("this database has no _pgpm schema: use pgpm install")]
    NothingThere,
    #[error("schema {ANCESTOR_SCHEMA} exists already: rename or drop it first")]
    AncestorSchemaTaken,
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error(transparent)]
    Script(#[from] script::ScriptError),
}

impl From<QueryError> for AdoptError {
    fn from(e: QueryError) -> AdoptError {
        AdoptError::Catalog(e.into())
    }
}

impl AdoptError {
    pub fn is_user_error(&self) -> bool {
        match self {
            AdoptError::Catalog(e) => e.is_user_error(),
            AdoptError::Script(e) => e.is_user_error(),
            _ => true,
        }
    }
}

type Result<T, E = AdoptError> = std::result::Result<T, E>;

/// A row of the ancestor's `_pgpm.packages`.
#[derive(Debug, Clone)]
struct AncestorRow {
    id: i32,
    name: String,
    numbers: (i64, i64, i64),
    pre: String,
    old_rev: Option<i32>,
    basic: bool,
    description: Option<String>,
    license: Option<String>,
}

/// A package schema found in the database, for one ancestor package name.
#[derive(Debug, Clone)]
struct Found {
    name: String,
    schema: String,
    version: semver::Version,
    old_rev: Option<i32>,
    basic: bool,
    /// The ancestor rows it stands for (by id).
    rows: Vec<i32>,
}

/// Adopts the ancestor's database; `workspace` (when given) supplies
/// checksums for the packages it names.
pub fn adopt(
    client: &mut Client,
    workspace: Option<&Workspace>,
    opts: &AdoptOptions,
) -> Result<AdoptReport> {
    let mut locked = Locked::acquire(client, opts.lock_timeout).map_err(CatalogError::from)?;
    let mut tx = locked.begin()?;
    match catalog::state(&mut tx)? {
        State::Absent => return Err(AdoptError::NothingThere),
        State::Installed(_) => return Err(AdoptError::AlreadyOurs),
        State::Foreign => {}
    }
    let ancestor: bool = tx
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_attribute
                             WHERE attrelid = to_regclass('_pgpm.packages') AND attname = 'pkg_name')",
            &[],
        )
        .map_err(QueryError::with("cannot look at schema _pgpm"))?
        .get(0);
    if !ancestor {
        return Err(AdoptError::NotAncestor);
    }
    if crate::catalog::read::schema_exists(&mut tx, ANCESTOR_SCHEMA)? {
        return Err(AdoptError::AncestorSchemaTaken);
    }
    let report = prepare(&mut tx, workspace, opts)?;
    if opts.dry_run {
        tx.rollback()
            .map_err(QueryError::with("cannot roll back"))?;
    } else {
        script::execute(&mut tx, &report.script, &mut crate::event::ignore)?;
        tx.commit()
            .map_err(QueryError::with("cannot commit the adoption"))?;
    }
    Ok(report)
}

fn prepare(
    client: &mut impl GenericClient,
    workspace: Option<&Workspace>,
    opts: &AdoptOptions,
) -> Result<AdoptReport> {
    let rows = ancestor_rows(client)?;
    let mut warnings = Vec::new();
    let found = match_schemas(client, &rows, &mut warnings)?;
    let mut script = Script::default();
    script.push(Action::Note(
        "the ancestor's event trigger logs every DDL into its catalog: it goes first".into(),
    ));
    let triggers: Vec<String> = client
        .query(
            "SELECT e.evtname::text FROM pg_event_trigger e JOIN pg_proc p ON p.oid = e.evtfoid
              WHERE p.pronamespace = '_pgpm'::regnamespace ORDER BY 1",
            &[],
        )
        .map_err(QueryError::with("cannot read the event triggers"))?
        .iter()
        .map(|r| r.get(0))
        .collect();
    for t in &triggers {
        script.push(Action::Sql(format!(
            "DROP EVENT TRIGGER {}",
            quote_ident(t)
        )));
    }
    script.push(Action::Note(format!(
        "the ancestor's catalog stays, as history, in {ANCESTOR_SCHEMA}"
    )));
    script.push(Action::Sql(format!(
        "ALTER SCHEMA _pgpm RENAME TO {}",
        quote_ident(ANCESTOR_SCHEMA)
    )));
    for step in STEPS {
        script.push(Action::Note(format!("pgpm catalog: {}", step.file)));
        script.push(Action::Sql(step.sql.into()));
    }
    script.push(Action::Sql(
        "REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA _pgpm FROM PUBLIC".into(),
    ));
    script.push(Action::Bound {
        sql: "INSERT INTO _pgpm.meta (catalog_version, pgpm_version) VALUES ($1, $2)",
        params: vec![Param::Int(CURRENT_VERSION), Param::text(crate::VERSION)],
    });
    script.push(Action::Note("the adoption, as a deployment".into()));
    script.push(Action::Bound {
        sql: "INSERT INTO _pgpm.deployments (command, pgpm_version) VALUES ('adopt', $1)",
        params: vec![Param::text(crate::VERSION)],
    });
    // Checksums of the workspace's packages, by the schema they deploy to.
    let checksums: HashMap<(String, String), String> = workspace
        .map(|ws| {
            ws.packages
                .iter()
                .filter_map(|p| {
                    Some((
                        (
                            p.manifest.schema()?.to_string(),
                            p.manifest.version.to_string(),
                        ),
                        p.checksum.clone(),
                    ))
                })
                .collect()
        })
        .unwrap_or_default();
    let by_id: HashMap<i32, &AncestorRow> = rows.iter().map(|r| (r.id, r)).collect();
    let mut adopted = Vec::new();
    script.push(Action::Note(
        "the package schemas the ancestor deployed".into(),
    ));
    for f in &found {
        let version = f.version.to_string();
        let checksum = match f.old_rev {
            None => checksums.get(&(f.schema.clone(), version.clone())).cloned(),
            Some(_) => None,
        };
        let row = f.rows.first().and_then(|id| by_id.get(id));
        script.push(Action::Bound {
            sql: concat!(
                "INSERT INTO _pgpm.packages (name, version, v_major, v_minor, v_patch, v_pre, subclass, scope, schema_name, old_rev, description, license, checksum, deployment_id) ",
                "VALUES ($1, $2, $3, $4, $5, $6, $7, 'schema', $8, $9, $10, $11, $12, ",
                "currval(pg_get_serial_sequence('_pgpm.deployments', 'deployment_id')))"
            ),
            params: vec![
                Param::text(&f.name),
                Param::text(&version),
                Param::Int(f.version.major as i32),
                Param::Int(f.version.minor as i32),
                Param::Int(f.version.patch as i32),
                Param::text(f.version.pre.as_str()),
                Param::text(if f.basic { "basic" } else { "versioned" }),
                Param::text(&f.schema),
                Param::OptInt(f.old_rev),
                Param::Text(row.and_then(|r| r.description.clone())),
                Param::Text(row.and_then(|r| r.license.clone())),
                // Never equal to a workspace's checksum: the next deploy
                // decides by --mode, as for any changed package.
                Param::text(checksum.clone().unwrap_or_else(|| "adopted".into())),
            ],
        });
        adopted.push(Adopted {
            name: f.name.clone(),
            version,
            schema: f.schema.clone(),
            old_rev: f.old_rev,
            from_workspace: checksum.is_some(),
        });
    }
    // Dependencies, from the ancestor's links between its rows.
    let schema_of_row: HashMap<i32, &str> = found
        .iter()
        .flat_map(|f| f.rows.iter().map(move |id| (*id, f.schema.as_str())))
        .collect();
    for (core_id, dep_id) in ancestor_links(client)? {
        let (Some(core), Some(dep)) = (schema_of_row.get(&core_id), schema_of_row.get(&dep_id))
        else {
            continue;
        };
        let requirement = by_id
            .get(&dep_id)
            .map(|r| format!("={}.{}.{}", r.numbers.0, r.numbers.1, r.numbers.2))
            .unwrap_or_else(|| "*".into());
        script.push(Action::Bound {
            sql: "INSERT INTO _pgpm.package_dependencies (package_id, dependency_id, requirement)
                  SELECT c.package_id, d.package_id, $3 FROM _pgpm.packages c, _pgpm.packages d
                   WHERE c.schema_name = $1 AND d.schema_name = $2 ON CONFLICT DO NOTHING",
            params: vec![
                Param::text(*core),
                Param::text(*dep),
                Param::text(requirement),
            ],
        });
    }
    // The ancestor's deployment events, each a deployment of its package.
    script.push(Action::Note(
        "the ancestor's deployment events, as history".into(),
    ));
    let events = ancestor_events(client)?;
    for e in &events {
        let Some(schema) = schema_of_row.get(&e.package) else {
            continue;
        };
        script.push(Action::Bound {
            sql: "WITH d AS (
                    INSERT INTO _pgpm.deployments (command, vcs_ref, vcs_link, issue_ref, issue_link, pgpm_version, txid, started_at, finished_at)
                    VALUES ('ancestor deploy', $2, $3, $4, $5, '0.1.62 (ancestor)', coalesce($6::bigint, 0), $7::text::timestamp::timestamptz, $7::text::timestamp::timestamptz)
                    RETURNING deployment_id)
                  INSERT INTO _pgpm.deployment_packages (deployment_id, package_id, action, detail)
                  SELECT d.deployment_id, p.package_id, 'created', 'by the ancestor' FROM d, _pgpm.packages p
                   WHERE p.schema_name = $1 AND p.removed_at IS NULL",
            params: vec![
                Param::text(*schema),
                Param::Text(e.vcs_ref.clone()),
                Param::Text(e.vcs_link.clone()),
                Param::Text(e.issue_ref.clone()),
                Param::Text(e.issue_link.clone()),
                e.txid.map_or(Param::BigInt(0), Param::BigInt),
                Param::text(&e.time),
            ],
        });
    }
    script.push(crate::catalog::write::close_deployment());
    let kept = events
        .iter()
        .filter(|e| schema_of_row.contains_key(&e.package))
        .count();
    Ok(AdoptReport {
        script,
        adopted,
        events: kept,
        warnings,
        dry_run: opts.dry_run,
    })
}

fn ancestor_rows(client: &mut impl GenericClient) -> Result<Vec<AncestorRow>> {
    let rows = client
        .query(
            "SELECT p.pkg_id, p.pkg_name, coalesce(p.pkg_v_major, 0)::int8, coalesce(p.pkg_v_minor, 0)::int8,
                    coalesce(p.pkg_v_patch, 0)::int8, coalesce(p.pkg_v_pre, ''), p.pkg_old_rev,
                    coalesce(s.pkg_sc_name = 'basic', false), p.pkg_description, p.pkg_license
               FROM _pgpm.packages p
               LEFT JOIN _pgpm.package_subclasses s ON s.pkg_sc_id = p.pkg_subclass
              WHERE p.pkg_name IS NOT NULL AND p.pkg_name <> '_pgpm'
                AND coalesce(p.pkg_status, 1) <> 3
              ORDER BY p.pkg_id",
            &[],
        )
        .map_err(QueryError::with("cannot read the ancestor's packages"))?;
    Ok(rows
        .iter()
        .map(|r| AncestorRow {
            id: r.get(0),
            name: r.get(1),
            numbers: (r.get(2), r.get(3), r.get(4)),
            pre: r.get(5),
            old_rev: r.get(6),
            basic: r.get(7),
            description: r.get::<_, Option<String>>(8).filter(|s| !s.is_empty()),
            license: r.get::<_, Option<String>>(9).filter(|s| !s.is_empty()),
        })
        .collect())
}

fn ancestor_links(client: &mut impl GenericClient) -> Result<Vec<(i32, i32)>> {
    Ok(client
        .query(
            "SELECT pkg_link_core_id, pkg_link_dep_id FROM _pgpm.package_dependencies ORDER BY 1, 2",
            &[],
        )
        .map_err(QueryError::with("cannot read the ancestor's dependencies"))?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect())
}

struct Event {
    package: i32,
    vcs_ref: Option<String>,
    vcs_link: Option<String>,
    issue_ref: Option<String>,
    issue_link: Option<String>,
    txid: Option<i64>,
    time: String,
}

fn ancestor_events(client: &mut impl GenericClient) -> Result<Vec<Event>> {
    Ok(client
        .query(
            "SELECT dpl_ev_pkg_id, dpl_ev_vcs_ref, dpl_ev_vcs_link, dpl_ev_issue_id, dpl_ev_issue_link,
                    dpl_ev_txid, to_char(dpl_ev_time, 'YYYY-MM-DD HH24:MI:SS.US')
               FROM _pgpm.deployment_events ORDER BY dpl_ev_time, dpl_ev_id",
            &[],
        )
        .map_err(QueryError::with("cannot read the ancestor's deployment events"))?
        .iter()
        .map(|r| Event {
            package: r.get(0),
            vcs_ref: r.get(1),
            vcs_link: r.get(2),
            issue_ref: r.get(3),
            issue_link: r.get(4),
            txid: r.get(5),
            time: r.get(6),
        })
        .collect())
}

/// The schemas of the ancestor's packages, read from the database's
/// schema names: `name_MAJOR_MINOR_PATCH[_PRE][_N]` for versioned ones (N
/// an old revision), `name[_N]` for basic ones. Each is matched to the
/// ancestor rows of its name and numbers; disagreements become warnings.
fn match_schemas(
    client: &mut impl GenericClient,
    rows: &[AncestorRow],
    warnings: &mut Vec<String>,
) -> Result<Vec<Found>> {
    let schemas: Vec<String> = client
        .query(
            "SELECT nspname::text FROM pg_namespace
              WHERE nspname NOT LIKE 'pg\\_%' AND nspname NOT IN ('public', 'information_schema', '_pgpm')
              ORDER BY 1",
            &[],
        )
        .map_err(QueryError::with("cannot list the schemas"))?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut names: Vec<(&str, bool)> = rows.iter().map(|r| (r.name.as_str(), r.basic)).collect();
    names.sort();
    names.dedup_by(|a, b| a.0 == b.0);
    let mut found = Vec::new();
    for (name, basic) in names {
        for schema in &schemas {
            let Some((version, old_rev)) = parse_schema(name, schema, basic) else {
                continue;
            };
            // A longer package name can share the prefix: a schema is its
            // own package's when no other ancestor name fits it better.
            if rows.iter().any(|r| {
                r.name.len() > name.len()
                    && r.name.starts_with(name)
                    && parse_schema(&r.name, schema, r.basic).is_some()
            }) {
                continue;
            }
            let numbers = (
                version.major as i64,
                version.minor as i64,
                version.patch as i64,
            );
            let matching: Vec<&AncestorRow> = rows
                .iter()
                .filter(|r| r.name == name && (basic || r.numbers == numbers))
                .collect();
            let exact: Vec<i32> = matching
                .iter()
                .filter(|r| r.old_rev == old_rev)
                .map(|r| r.id)
                .collect();
            let ids = if exact.is_empty() {
                warnings.push(format!(
                    "schema {schema}: the ancestor's catalog has no row for {name} {version}{}; adopted from the schema's name",
                    old_rev.map(|n| format!(" revision {n}")).unwrap_or_default()
                ));
                matching.iter().map(|r| r.id).collect()
            } else {
                exact
            };
            if let Some(r) = matching.iter().find(|r| ids.contains(&r.id))
                && !basic
                && r.pre != version.pre.as_str()
            {
                warnings.push(format!(
                    "schema {schema}: the ancestor's catalog records {name} {}.{}.{}{}, the schema's name says {version}: adopted as {version}",
                    r.numbers.0,
                    r.numbers.1,
                    r.numbers.2,
                    if r.pre.is_empty() { String::new() } else { format!("-{}", r.pre) }
                ));
            }
            // A basic package's schema does not say its version: its row does.
            let version = match matching.iter().find(|r| ids.contains(&r.id)) {
                Some(r) if basic => {
                    let mut v = semver::Version::new(
                        r.numbers.0.max(0) as u64,
                        r.numbers.1.max(0) as u64,
                        r.numbers.2.max(0) as u64,
                    );
                    v.pre = semver::Prerelease::new(&r.pre).unwrap_or(semver::Prerelease::EMPTY);
                    v
                }
                _ => version,
            };
            found.push(Found {
                name: name.to_string(),
                schema: schema.clone(),
                version,
                old_rev,
                basic,
                rows: ids,
            });
        }
    }
    for r in rows {
        if !found.iter().any(|f| f.rows.contains(&r.id)) {
            warnings.push(format!(
                "the ancestor's catalog records {} {}.{}.{} (row {}), but no schema of it exists: not adopted",
                r.name, r.numbers.0, r.numbers.1, r.numbers.2, r.id
            ));
        }
    }
    found.sort_by(|a, b| {
        (&a.name, &a.version, a.old_rev.is_some(), a.old_rev).cmp(&(
            &b.name,
            &b.version,
            b.old_rev.is_some(),
            b.old_rev,
        ))
    });
    Ok(found)
}

/// The version and old revision a schema name of package `name` says.
fn parse_schema(name: &str, schema: &str, basic: bool) -> Option<(semver::Version, Option<i32>)> {
    let rest = schema.strip_prefix(name)?;
    if basic {
        return match rest {
            "" => Some((semver::Version::new(0, 0, 0), None)),
            _ => {
                let n = rest.strip_prefix('_')?;
                n.bytes()
                    .all(|b| b.is_ascii_digit())
                    .then(|| n.parse().ok())
                    .flatten()
                    .map(|n| (semver::Version::new(0, 0, 0), Some(n)))
            }
        };
    }
    let parts: Vec<&str> = rest.strip_prefix('_')?.split('_').collect();
    if parts.len() < 3 {
        return None;
    }
    let number = |p: &str| -> Option<u64> {
        (!p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
            .then(|| p.parse().ok())
            .flatten()
    };
    let mut version = semver::Version::new(number(parts[0])?, number(parts[1])?, number(parts[2])?);
    let mut tail = &parts[3..];
    // A last part of digits is an old revision (the ancestor's moderate
    // mode appended `_N`).
    let old_rev = match tail.last().and_then(|p| number(p)) {
        Some(n) => {
            tail = &tail[..tail.len() - 1];
            Some(i32::try_from(n).ok()?)
        }
        None => None,
    };
    if !tail.is_empty() {
        version.pre = semver::Prerelease::new(&tail.join(".")).ok()?;
    }
    Some((version, old_rev))
}

#[cfg(test)]
mod tests {
    use super::parse_schema;

    #[test]
    fn schema_names_give_versions_and_revisions() {
        let p = |s: &str| parse_schema("billing", s, false).map(|(v, r)| (v.to_string(), r));
        assert_eq!(p("billing_01_09_00"), Some(("1.9.0".into(), None)));
        assert_eq!(p("billing_01_09_00_0"), Some(("1.9.0".into(), Some(0))));
        assert_eq!(p("billing_1_0_0_rc1"), Some(("1.0.0-rc1".into(), None)));
        assert_eq!(
            p("billing_1_0_0_rc1_2"),
            Some(("1.0.0-rc1".into(), Some(2)))
        );
        assert_eq!(p("billing_reports_1_0_0"), None);
        assert_eq!(p("billing"), None);
        let b = |s: &str| parse_schema("core", s, true).map(|(_, r)| r);
        assert_eq!(b("core"), Some(None));
        assert_eq!(b("core_0"), Some(Some(0)));
        assert_eq!(b("core_x"), None);
    }
}
