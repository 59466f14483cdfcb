//! Every read of `_pgpm` (and of the system catalogs about what pgpm
//! deployed), as named functions returning plain data. The caller has
//! checked the catalog first ([`super::require_current`]).

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;

use postgres::GenericClient;

use super::CatalogError;
use crate::db::QueryError;
use crate::package::manifest::Manifest;
use crate::package::resolve::Deployed;
use crate::version::parse_version;

type Result<T, E = CatalogError> = std::result::Result<T, E>;

/// The current revisions of the packages deployed in a database:
/// `old_rev IS NULL AND removed_at IS NULL` in `_pgpm.packages`.
pub fn deployed(client: &mut impl GenericClient) -> Result<Vec<Deployed>> {
    let rows = client
        .query(
            "SELECT name, version, schema_name FROM _pgpm.packages
              WHERE old_rev IS NULL AND removed_at IS NULL
              ORDER BY name, v_major, v_minor, v_patch, v_pre",
            &[],
        )
        .map_err(QueryError::with("cannot read the deployed packages"))?;
    rows.iter()
        .map(|row| {
            let name: String = row.get(0);
            let text: String = row.get(1);
            let version = parse_version(&text).map_err(|source| CatalogError::DeployedVersion {
                name: name.clone(),
                source,
            })?;
            Ok(Deployed {
                name,
                version,
                schema: row.get(2),
            })
        })
        .collect()
}

/// Which of `schemas` exist in the database.
pub fn existing_schemas(
    client: &mut impl GenericClient,
    schemas: &[String],
) -> Result<BTreeSet<String>> {
    let rows = client
        .query(
            "SELECT nspname::text FROM pg_catalog.pg_namespace WHERE nspname = ANY($1)",
            &[&schemas],
        )
        .map_err(QueryError::with("cannot read the existing schemas"))?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Who the session runs as: `(current_user, session_user)`.
pub fn roles_now(client: &mut impl GenericClient) -> Result<(String, String)> {
    let row = client
        .query_one("SELECT current_user::text, session_user::text", &[])
        .map_err(QueryError::with("cannot read the session's roles"))?;
    Ok((row.get(0), row.get(1)))
}

/// DDL commands in the schemas of live packages that the DDL log recorded
/// from outside pgpm after the package was deployed, newest first, at
/// most `limit`, described.
pub fn changes_outside_pgpm(client: &mut impl GenericClient, limit: i64) -> Result<Vec<String>> {
    let rows = client
        .query(
            "SELECT format('%s %s in %s (%s %s, by %s%s at %s)', l.command_tag,
                           coalesce(l.object_identity, '?'), l.schema_name, p.name, p.version,
                           l.role_name, coalesce(' with ' || nullif(l.application_name, ''), ''),
                           to_char(l.logged_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') || ' UTC')
               FROM _pgpm.ddl_log l
               JOIN _pgpm.packages p ON p.schema_name = l.schema_name AND p.removed_at IS NULL
              WHERE NOT l.by_pgpm AND l.logged_at > p.deployed_at
              ORDER BY l.logged_at DESC LIMIT $1",
            &[&limit],
        )
        .map_err(QueryError::with("cannot read the DDL log"))?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Current package versions whose schema's definitions differ from the
/// fingerprint their deploy recorded, as `(name version, schema)`.
pub fn changed_schemas(client: &mut impl GenericClient) -> Result<Vec<(String, String)>> {
    let rows = client
        .query(
            "SELECT p.name || ' ' || p.version, p.schema_name FROM _pgpm.packages p
              WHERE p.old_rev IS NULL AND p.removed_at IS NULL AND p.fingerprint IS NOT NULL
                AND to_regnamespace(p.schema_name) IS NOT NULL
                AND p.fingerprint <> _pgpm.schema_fingerprint(p.schema_name)
              ORDER BY 1",
            &[],
        )
        .map_err(QueryError::with("cannot compare the package schemas"))?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// A routine, in `schema` or in a live package that depends on the package
/// there, whose pinned `search_path` names `schema` and whose owner the
/// current role is not a member of: `(routine, owner)`. A moderate rename
/// must repoint it and could not.
pub fn unowned_repoint(
    client: &mut impl GenericClient,
    schema: &str,
) -> Result<Option<(String, String)>> {
    let row = client
        .query_opt(
            "SELECT p.oid::regprocedure::text, pg_get_userbyid(p.proowner)::text
               FROM pg_proc p CROSS JOIN LATERAL unnest(p.proconfig) AS c(setting)
              WHERE p.pronamespace IN (
                      SELECT oid FROM pg_namespace
                       WHERE nspname = $1 OR nspname IN (
                             SELECT d.schema_name FROM _pgpm.packages d
                               JOIN _pgpm.package_dependencies pd ON pd.package_id = d.package_id
                               JOIN _pgpm.packages t ON t.package_id = pd.dependency_id
                              WHERE t.schema_name = $1 AND t.removed_at IS NULL AND d.removed_at IS NULL))
                AND c.setting LIKE 'search_path=%' AND strpos(c.setting, $1) > 0
                AND NOT pg_has_role(current_user, p.proowner, 'USAGE')
              ORDER BY 1 LIMIT 1",
            &[&schema],
        )
        .map_err(QueryError::with("cannot check the routines to repoint"))?;
    Ok(row.map(|r| (r.get(0), r.get(1))))
}

/// The server's `server_version_num` (150004 for 15.4).
pub fn server_version_num(client: &mut impl GenericClient) -> Result<i32> {
    Ok(client
        .query_one("SELECT current_setting('server_version_num')::int", &[])
        .map_err(QueryError::with("cannot read the server's version"))?
        .get(0))
}

/// Whether a schema of that name exists.
pub fn schema_exists(client: &mut impl GenericClient, schema: &str) -> Result<bool> {
    Ok(client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = $1)",
            &[&schema],
        )
        .map_err(QueryError::with("cannot look up schemas"))?
        .get(0))
}

/// The catalog's row for a package version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageRow {
    pub id: i64,
    pub name: String,
    /// As recorded: semver's canonical form.
    pub version: String,
    pub checksum: String,
}

/// What a package's target holds now: its schema (or, for a database-scope
/// package, its catalog row) and the package the catalog records there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetState {
    /// The package's schema: the one the catalog records for the current
    /// revision of its version, else the one named after it; `None` for
    /// database scope.
    pub schema: Option<String>,
    /// The schema exists (database scope: a current row for the name exists).
    pub exists: bool,
    /// The catalog's current package in that schema.
    pub package: Option<PackageRow>,
}

impl TargetState {
    /// Whether `manifest` with content `checksum` is what is deployed there.
    pub fn holds(&self, manifest: &Manifest, checksum: &str) -> bool {
        self.exists
            && self.package.as_ref().is_some_and(|p| {
                p.name == manifest.name
                    && p.version == manifest.version.to_string()
                    && p.checksum == checksum
            })
    }
}

/// The target state of every package, by manifest path, in one query: a
/// no-op deploy of hundreds of packages costs one round trip, not two per
/// package.
pub fn target_states<'a>(
    client: &mut impl GenericClient,
    manifests: impl IntoIterator<Item = &'a Manifest>,
) -> Result<HashMap<PathBuf, TargetState>> {
    let manifests: Vec<&Manifest> = manifests.into_iter().collect();
    let names: Vec<&str> = manifests.iter().map(|m| m.name.as_str()).collect();
    let versions: Vec<String> = manifests.iter().map(|m| m.version.to_string()).collect();
    let schemas: Vec<Option<&str>> = manifests.iter().map(|m| m.schema()).collect();
    let basic: Vec<bool> = manifests
        .iter()
        .map(|m| m.subclass == crate::package::manifest::Subclass::Basic)
        .collect();
    let rows = client
        .query(
            "SELECT t.i::int8, CASE WHEN t.schema IS NULL THEN p.package_id IS NOT NULL
                             ELSE n.oid IS NOT NULL END,
                    p.package_id, p.name, p.version, p.checksum, s.schema
               FROM unnest($1::text[], $2::text[], $3::text[], $4::bool[]) WITH ORDINALITY AS t(name, schema, version, basic, i)
               -- A revision deployed beside the first (--mode revision)
               -- lives in a schema of its own; a basic package has one
               -- current schema whatever its version.
               LEFT JOIN _pgpm.packages c
                      ON t.schema IS NOT NULL AND c.name = t.name
                     AND (c.version = t.version OR (t.basic AND c.subclass = 'basic'))
                     AND c.scope = 'schema' AND c.old_rev IS NULL AND c.removed_at IS NULL
               CROSS JOIN LATERAL (SELECT coalesce(c.schema_name, t.schema) AS schema) s
               LEFT JOIN pg_catalog.pg_namespace n ON n.nspname = s.schema
               LEFT JOIN LATERAL (
                    SELECT package_id, name, version, checksum FROM _pgpm.packages
                     WHERE s.schema IS NOT NULL AND schema_name = s.schema AND removed_at IS NULL
                    UNION ALL
                    SELECT package_id, name, version, checksum FROM _pgpm.packages
                     WHERE t.schema IS NULL AND name = t.name AND scope = 'database'
                       AND old_rev IS NULL AND removed_at IS NULL
                    LIMIT 1) p ON true",
            &[&names, &schemas, &versions, &basic],
        )
        .map_err(QueryError::with("cannot read the catalog"))?;
    Ok(rows
        .iter()
        .map(|r| {
            let i: i64 = r.get(0);
            let package = r.get::<_, Option<i64>>(2).map(|id| PackageRow {
                id,
                name: r.get(3),
                version: r.get(4),
                checksum: r.get(5),
            });
            let state = TargetState {
                schema: r.get(6),
                exists: r.get(1),
                package,
            };
            (manifests[i as usize - 1].manifest_path.clone(), state)
        })
        .collect())
}

/// The roles of `roles` that do not exist, in the order given.
pub fn missing_roles(client: &mut impl GenericClient, roles: &[&str]) -> Result<Vec<String>> {
    if roles.is_empty() {
        return Ok(Vec::new());
    }
    let rows = client
        .query(
            "SELECT r FROM unnest($1::text[]) WITH ORDINALITY AS u(r, i)
              WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = u.r)
              ORDER BY i",
            &[&roles],
        )
        .map_err(QueryError::with("cannot look up roles"))?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// The roles of `roles` the current role is not a member of (and so may not
/// give objects to), in the order given. A superuser is a member of all.
pub fn roles_not_held(client: &mut impl GenericClient, roles: &[&str]) -> Result<Vec<String>> {
    if roles.is_empty() {
        return Ok(Vec::new());
    }
    let rows = client
        .query(
            "SELECT r FROM unnest($1::text[]) WITH ORDINALITY AS u(r, i)
              -- From PostgreSQL 16 on, giving objects to a role needs its SET option.
              WHERE NOT pg_catalog.pg_has_role(current_user, u.r,
                        CASE WHEN current_setting('server_version_num')::int >= 160000
                             THEN 'SET' ELSE 'MEMBER' END)
              ORDER BY i",
            &[&roles],
        )
        .map_err(QueryError::with("cannot look up role memberships"))?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Whether no role but its owner may create objects in schema `public`,
/// so that it is safe to search while deploying; `None` when there is no
/// `public`.
pub fn public_is_safe(client: &mut impl GenericClient) -> Result<Option<bool>> {
    Ok(client
        .query_opt(
            "SELECT NOT EXISTS (
                    SELECT 1 FROM aclexplode(coalesce(n.nspacl, acldefault('n', n.nspowner))) a
                     WHERE a.privilege_type = 'CREATE' AND a.grantee <> n.nspowner)
               FROM pg_catalog.pg_namespace n WHERE n.nspname = 'public'",
            &[],
        )
        .map_err(QueryError::with(
            "cannot read the privileges of schema public",
        ))?
        .map(|row| row.get(0)))
}

/// A table script applied to a schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedTableScript {
    pub checksum: String,
    /// When, as `YYYY-MM-DD HH24:MI:SS TZ`.
    pub applied_at: String,
}

/// The table scripts of `package` applied to `schema`, by file.
pub fn applied_table_scripts(
    client: &mut impl GenericClient,
    package: &str,
    schema: &str,
) -> Result<HashMap<PathBuf, AppliedTableScript>> {
    Ok(client
        .query(
            "SELECT file_name, checksum, to_char(applied_at, 'YYYY-MM-DD HH24:MI:SS TZ')
               FROM _pgpm.table_scripts WHERE package_name = $1 AND target_schema = $2",
            &[&package, &schema],
        )
        .map_err(QueryError::with("cannot read applied table scripts"))?
        .iter()
        .map(|r| {
            let script = AppliedTableScript {
                checksum: r.get(1),
                applied_at: r.get(2),
            };
            (PathBuf::from(r.get::<_, String>(0)), script)
        })
        .collect())
}

/// The number an old revision of `name` `version` gets: the first N from 0
/// that no live revision of it has, and, when it is to be renamed
/// (`renamed_from`), such that `<schema>_<N>` is free.
pub fn free_revision(
    client: &mut impl GenericClient,
    name: &str,
    version: &str,
    renamed_from: Option<&str>,
) -> Result<i32> {
    Ok(client
        .query_one(
            "SELECT min(n)::int FROM generate_series(0, (SELECT count(*) FROM pg_namespace)::int
                                                        + (SELECT count(*) FROM _pgpm.packages)::int) n
              WHERE NOT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1::text || '_' || n)
                AND NOT EXISTS (SELECT 1 FROM _pgpm.packages
                                 WHERE name = $2 AND version = $3 AND old_rev = n
                                   AND removed_at IS NULL)",
            &[&renamed_from, &name, &version],
        )
        .map_err(QueryError::with("cannot find a free schema revision"))?
        .get(0))
}

/// The schema of a new revision of the package named `schema` when first
/// deployed: `<schema>_r<K>` for the first K from 1 that no schema has,
/// the name shortened so that it fits PostgreSQL's 63 bytes.
pub fn new_revision_schema(client: &mut impl GenericClient, schema: &str) -> Result<String> {
    for k in 1.. {
        let suffix = format!("_r{k}");
        let mut end = schema.len().min(63 - suffix.len());
        while !schema.is_char_boundary(end) {
            end -= 1;
        }
        let candidate = format!("{}{suffix}", &schema[..end]);
        // Free in the database and in the catalog (a schema dropped by
        // hand may still have its row).
        let taken: bool = client
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = $1)
                     OR EXISTS (SELECT 1 FROM _pgpm.packages WHERE schema_name = $1 AND removed_at IS NULL)",
                &[&candidate],
            )
            .map_err(QueryError::with("cannot look up schemas"))?
            .get(0);
        if !taken {
            return Ok(candidate);
        }
    }
    unreachable!("some revision number is free")
}

/// Objects outside `schema` that `DROP SCHEMA ... CASCADE` would also drop.
pub fn cascade_victims(client: &mut impl GenericClient, schema: &str) -> Result<Vec<String>> {
    let rows = client
        .query(
            "SELECT DISTINCT o.type || ' ' || o.identity
               FROM pg_depend d
               CROSS JOIN LATERAL pg_identify_object(d.refclassid, d.refobjid, 0) r
               -- A view depends through its _RETURN rule: name the view.
               LEFT JOIN pg_rewrite w ON d.classid = 'pg_rewrite'::regclass AND w.oid = d.objid
               -- A column that depends (a column of a table or composite
               -- type in another schema, of a type of this one) is what the
               -- cascade drops, not its table or type.
               CROSS JOIN LATERAL pg_identify_object(
                    CASE WHEN w.oid IS NULL THEN d.classid ELSE 'pg_class'::regclass END,
                    coalesce(w.ev_class, d.objid),
                    CASE WHEN w.oid IS NULL THEN d.objsubid ELSE 0 END) o
              WHERE r.schema = $1 AND o.schema IS DISTINCT FROM $1
                AND d.deptype IN ('n', 'a') AND o.type <> 'schema'
              ORDER BY 1",
            &[&schema],
        )
        .map_err(QueryError::with("cannot list what the cascade drops"))?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// A deployed package version as `remove` finds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeployedRevision {
    pub id: i64,
    /// `None` for a database-scope package.
    pub schema: Option<String>,
}

/// The deployed row of `package` `version`: its current revision, or the
/// renamed old revision `old_rev`.
pub fn deployed_revision(
    client: &mut impl GenericClient,
    package: &str,
    version: &str,
    old_rev: Option<i32>,
) -> Result<Option<DeployedRevision>> {
    let row = client
        .query_opt(
            "SELECT package_id, schema_name FROM _pgpm.packages
              WHERE name = $1 AND version = $2 AND removed_at IS NULL
                AND old_rev IS NOT DISTINCT FROM $3",
            &[&package, &version, &old_rev],
        )
        .map_err(QueryError::with("cannot read the catalog"))?;
    Ok(row.map(|r| DeployedRevision {
        id: r.get(0),
        schema: r.get(1),
    }))
}

/// An old revision (renamed by moderate, or left beside a new one by
/// revision mode) that is not removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OldRevision {
    pub name: String,
    pub version: String,
    pub old_rev: i32,
    pub schema: String,
    /// When it stopped being current (`YYYY-MM-DD HH:MM:SS UTC`).
    pub old_since: String,
    /// Whether that was at least the given time ago.
    pub due: bool,
}

/// Every old revision of a schema-scope package, by name, version and
/// number, with whether it has been old for at least `older_than`.
pub fn old_revisions(
    client: &mut impl GenericClient,
    older_than: std::time::Duration,
) -> Result<Vec<OldRevision>> {
    let rows = client
        .query(
            "SELECT p.name, p.version, p.old_rev, p.schema_name,
                    to_char(o.since AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') || ' UTC',
                    o.since <= now() - make_interval(secs => $1)
               FROM _pgpm.packages p
              CROSS JOIN LATERAL (
                    SELECT coalesce(max(d.started_at), p.deployed_at) AS since
                      FROM _pgpm.deployment_packages dp
                      JOIN _pgpm.deployments d ON d.deployment_id = dp.deployment_id
                     WHERE dp.package_id = p.package_id AND dp.action IN ('renamed', 'superseded')) o
              WHERE p.old_rev IS NOT NULL AND p.removed_at IS NULL AND p.schema_name IS NOT NULL
              ORDER BY p.name, p.v_major, p.v_minor, p.v_patch, p.v_pre, p.old_rev",
            &[&older_than.as_secs_f64()],
        )
        .map_err(QueryError::with("cannot read the old revisions"))?;
    Ok(rows
        .iter()
        .map(|r| OldRevision {
            name: r.get(0),
            version: r.get(1),
            old_rev: r.get(2),
            schema: r.get(3),
            old_since: r.get(4),
            due: r.get(5),
        })
        .collect())
}

/// Deployed packages that depend on the package row `id`, as `name version
/// (revision N)`.
pub fn dependents(client: &mut impl GenericClient, id: i64) -> Result<Vec<String>> {
    Ok(client
        .query(
            "SELECT p.name || ' ' || p.version || coalesce(' (revision ' || p.old_rev || ')', '')
               FROM _pgpm.package_dependencies d
               JOIN _pgpm.packages p ON p.package_id = d.package_id
              WHERE d.dependency_id = $1 AND p.removed_at IS NULL
              ORDER BY 1",
            &[&id],
        )
        .map_err(QueryError::with("cannot read dependent packages"))?
        .iter()
        .map(|r| r.get(0))
        .collect())
}

/// The tables (data) a schema holds.
pub fn tables_in(client: &mut impl GenericClient, schema: &str) -> Result<Vec<String>> {
    Ok(client
        .query(
            "SELECT relname::text FROM pg_class
              WHERE relnamespace = $1::text::regnamespace AND relkind IN ('r', 'p')
              ORDER BY 1",
            &[&schema],
        )
        .map_err(QueryError::with("cannot list the schema's tables"))?
        .iter()
        .map(|r| r.get(0))
        .collect())
}

/// Other sessions that use `schema`, described from `pg_stat_activity`:
/// those that selected it with `_pgpm.set_search_path` (recorded in
/// `_pgpm.sessions`) and those whose current query names it.
pub fn sessions_using(client: &mut impl GenericClient, schema: &str) -> Result<Vec<String>> {
    let rows = client
        .query(
            "SELECT DISTINCT format('pid %s (%s@%s, %s, since %s)', a.pid, a.usename,
                                    coalesce(host(a.client_addr), 'local'),
                                    coalesce(nullif(a.application_name, ''), 'no application name'),
                                    coalesce(to_char(a.backend_start, 'YYYY-MM-DD HH24:MI:SS'), 'unknown'))
               FROM pg_stat_activity a
              WHERE a.pid <> pg_backend_pid()
                AND (position(($1 || '.') IN a.query) > 0
                     OR position((quote_ident($1) || '.') IN a.query) > 0
                     OR EXISTS (SELECT 1 FROM _pgpm.sessions s
                                 WHERE s.pid = a.pid
                                   -- A role that is not a superuser does not
                                   -- see other roles' backend_start.
                                   AND (a.backend_start IS NULL OR s.backend_start = a.backend_start)
                                   AND $1 = ANY (s.schemas)))",
            &[&schema],
        )
        .map_err(QueryError::with("cannot read pg_stat_activity"))?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// A patch recorded in `_pgpm.migrations`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedPatchRow {
    pub major: i32,
    pub minor: i32,
    pub point: i32,
    pub kind: String,
    pub file_name: String,
    pub checksum: String,
    /// When it was applied, as `YYYY-MM-DD HH:MM:SS UTC`.
    pub applied_at: String,
    pub applied_by: String,
}

/// The applied patches, in order.
pub fn applied_patches(client: &mut impl GenericClient) -> Result<Vec<AppliedPatchRow>> {
    let rows = client
        .query(
            "SELECT major, minor, point, type, file_name, checksum,
                    to_char(started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') || ' UTC',
                    applied_by
               FROM _pgpm.migrations ORDER BY major, minor, point",
            &[],
        )
        .map_err(QueryError::with("cannot read the applied patches"))?;
    Ok(rows
        .iter()
        .map(|r| AppliedPatchRow {
            major: r.get(0),
            minor: r.get(1),
            point: r.get(2),
            kind: r.get(3),
            file_name: r.get(4),
            checksum: r.get(5),
            applied_at: r.get(6),
            applied_by: r.get(7),
        })
        .collect())
}

/// A statement of a concurrent patch that completed in a run that did not
/// record the patch (pgpm was interrupted, or a later statement failed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConcurrentProgress {
    pub major: i32,
    pub minor: i32,
    pub point: i32,
    pub file_name: String,
    /// 1-based, of `statements`.
    pub statement: i32,
    pub statements: i32,
    pub excerpt: String,
    /// As `YYYY-MM-DD HH:MM:SS UTC`.
    pub finished_at: String,
}

/// Every [`ConcurrentProgress`] row, in patch and statement order.
pub fn concurrent_progress(client: &mut impl GenericClient) -> Result<Vec<ConcurrentProgress>> {
    Ok(client
        .query(
            "SELECT major, minor, point, file_name, statement, statements, excerpt,
                    to_char(finished_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') || ' UTC'
               FROM _pgpm.concurrent_progress ORDER BY major, minor, point, statement",
            &[],
        )
        .map_err(QueryError::with(
            "cannot read the progress of concurrent patches",
        ))?
        .iter()
        .map(|r| ConcurrentProgress {
            major: r.get(0),
            minor: r.get(1),
            point: r.get(2),
            file_name: r.get(3),
            statement: r.get(4),
            statements: r.get(5),
            excerpt: r.get(6),
            finished_at: r.get(7),
        })
        .collect())
}

/// Indexes marked INVALID (a concurrent build that failed or was
/// interrupted), schema-qualified and quoted. With `left_over`, not those
/// whose build is running now (another session's `CREATE INDEX
/// CONCURRENTLY`), which are only INVALID until it ends.
pub fn invalid_indexes(client: &mut impl GenericClient, left_over: bool) -> Result<Vec<String>> {
    Ok(client
        .query(
            "SELECT format('%I.%I', n.nspname, c.relname)
               FROM pg_index i
               JOIN pg_class c ON c.oid = i.indexrelid
               JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE NOT i.indisvalid
                -- Builds that are running now are not left over.
                AND NOT ($1 AND EXISTS (
                    SELECT 1 FROM pg_stat_progress_create_index p
                     WHERE p.index_relid = i.indexrelid
                       AND p.datid = (SELECT oid FROM pg_database WHERE datname = current_database())))
              ORDER BY 1",
            &[&left_over],
        )
        .map_err(QueryError::with("cannot list invalid indexes"))?
        .iter()
        .map(|r| r.get(0))
        .collect())
}

/// The server and catalog versions `status` reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerState {
    pub catalog_version: i32,
    pub server_version: String,
    pub server_version_num: i32,
    /// The server version number recorded at the last deploy.
    pub last_deploy_server_version_num: Option<i32>,
}

/// Reads the [`ServerState`].
pub fn server_state(client: &mut impl GenericClient) -> Result<ServerState> {
    let row = client
        .query_one(
            "SELECT (SELECT catalog_version FROM _pgpm.meta), current_setting('server_version'),
                    current_setting('server_version_num')::int,
                    (SELECT server_version_num FROM _pgpm.deployments
                      ORDER BY started_at DESC, deployment_id DESC LIMIT 1)",
            &[],
        )
        .map_err(QueryError::with("cannot read the server version"))?;
    Ok(ServerState {
        catalog_version: row.get(0),
        server_version: row.get(1),
        server_version_num: row.get(2),
        last_deploy_server_version_num: row.get(3),
    })
}

/// One deployed package version (its current revision), as `status` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageStatus {
    pub name: String,
    pub version: String,
    /// `None` for database-scope packages.
    pub schema: Option<String>,
    /// Renamed earlier revisions of this version: `<schema>_<N>`.
    pub old_revisions: Vec<String>,
    pub deployed_at: String,
    pub deployed_by: String,
    pub vcs_ref: Option<String>,
    /// The catalog records a schema that no longer exists (dropped by hand).
    pub schema_missing: bool,
}

/// Every deployed package's current revision, by name and then by version
/// in semver order (the catalog's `v_*` columns: `1.0.0-rc.2` before
/// `1.0.0-rc.10`, pre-releases before the release).
pub fn package_statuses(client: &mut impl GenericClient) -> Result<Vec<PackageStatus>> {
    Ok(client
        .query(
            "SELECT p.name, p.version, p.schema_name,
                    coalesce((SELECT array_agg(o.schema_name ORDER BY o.old_rev)
                                FROM _pgpm.packages o
                               WHERE o.name = p.name AND o.version = p.version
                                 AND o.old_rev IS NOT NULL AND o.removed_at IS NULL), '{}'),
                    to_char(p.deployed_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS \"UTC\"'),
                    p.deployed_by, d.vcs_ref,
                    p.schema_name IS NOT NULL AND NOT EXISTS (
                        SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = p.schema_name)
               FROM _pgpm.packages p
               JOIN _pgpm.deployments d USING (deployment_id)
              WHERE p.old_rev IS NULL AND p.removed_at IS NULL
              ORDER BY p.name, p.v_major, p.v_minor, p.v_patch,
                       _pgpm.semver_pre_key(p.v_pre) COLLATE \"C\"",
            &[],
        )
        .map_err(QueryError::with("cannot read the deployed packages"))?
        .iter()
        .map(|r| PackageStatus {
            name: r.get(0),
            version: r.get(1),
            schema: r.get(2),
            old_revisions: r.get(3),
            deployed_at: r.get(4),
            deployed_by: r.get(5),
            vcs_ref: r.get(6),
            schema_missing: r.get(7),
        })
        .collect())
}

/// A call to show a user: the newest deployed package's function that takes
/// no arguments (or else one of its views), as a query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExampleCall {
    pub package: String,
    pub major: i32,
    pub minor: i32,
    /// `SELECT f()` or `SELECT * FROM v LIMIT 5`, identifiers quoted.
    pub query: String,
}

/// Finds an [`ExampleCall`], if any package has a function or view to show.
pub fn example_call(client: &mut impl GenericClient) -> Result<Option<ExampleCall>> {
    let row = client
        .query_opt(
            "SELECT p.name, p.v_major, p.v_minor, x.query
               FROM _pgpm.packages p
               JOIN pg_namespace n ON n.nspname = p.schema_name
               JOIN LATERAL (
                    (SELECT 0 AS pref, format('SELECT %I()', proname) AS query FROM pg_proc
                      WHERE pronamespace = n.oid AND pronargs = 0 AND prokind = 'f'
                        AND prorettype <> 'trigger'::regtype
                      ORDER BY proname LIMIT 1)
                    UNION ALL
                    (SELECT 1, format('SELECT * FROM %I LIMIT 5', relname) FROM pg_class
                      WHERE relnamespace = n.oid AND relkind IN ('v', 'm')
                      ORDER BY relname LIMIT 1)
                    ORDER BY 1 LIMIT 1) x ON true
              WHERE p.old_rev IS NULL AND p.removed_at IS NULL
              ORDER BY p.deployment_id DESC, p.package_id DESC
              LIMIT 1",
            &[],
        )
        .map_err(QueryError::with("cannot pick an example function"))?;
    Ok(row.map(|r| ExampleCall {
        package: r.get(0),
        major: r.get(1),
        minor: r.get(2),
        query: r.get(3),
    }))
}

/// What the server has of one extension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtensionState {
    /// The version installed in this database, if it is.
    pub installed: Option<String>,
    /// The version `CREATE EXTENSION` without `VERSION` installs; `None`
    /// when the server has no such extension.
    pub default_version: Option<String>,
    /// Every version the server can install.
    pub versions: Vec<String>,
    /// The schema the extension's control file fixes for `version`, if any.
    pub fixed_schema: Option<String>,
    /// Whether installing `version` needs a superuser the current role is
    /// not (the extension is neither trusted nor installable by anyone).
    pub needs_superuser: bool,
}

/// The state of extension `name`, for installing `version` (`None`: the
/// default version).
pub fn extension_state(
    client: &mut impl GenericClient,
    name: &str,
    version: Option<&str>,
) -> Result<ExtensionState> {
    let row = client
        .query_one(
            "SELECT (SELECT extversion FROM pg_catalog.pg_extension WHERE extname = $1),
                    (SELECT default_version FROM pg_catalog.pg_available_extensions WHERE name = $1),
                    ARRAY(SELECT version FROM pg_catalog.pg_available_extension_versions
                           WHERE name = $1 ORDER BY version),
                    v.schema::text,
                    coalesce(v.superuser AND NOT v.trusted
                             AND NOT (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user), false)
               FROM (SELECT 1) one
               LEFT JOIN pg_catalog.pg_available_extension_versions v
                 ON v.name = $1
                AND v.version = coalesce($2, (SELECT default_version FROM pg_catalog.pg_available_extensions WHERE name = $1))",
            &[&name, &version],
        )
        .map_err(QueryError::with("cannot look up extensions"))?;
    Ok(ExtensionState {
        installed: row.get(0),
        default_version: row.get(1),
        versions: row.get(2),
        fixed_schema: row.get(3),
        needs_superuser: row.get(4),
    })
}

/// Whether the server knows setting `name` (custom `prefix.name` settings
/// are always accepted, as by `SET`).
pub fn setting_exists(client: &mut impl GenericClient, name: &str) -> Result<bool> {
    if name.contains('.') {
        return Ok(true);
    }
    let row = client
        .query_one(
            // Setting names are case-insensitive (`timezone` is `TimeZone`).
            "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_settings WHERE lower(name) = lower($1))",
            &[&name],
        )
        .map_err(QueryError::with("cannot look up settings"))?;
    Ok(row.get(0))
}
