//! The actions of one package in a deploy's script: what happens to its
//! schema, its statements in batches, its grants, its catalog rows and the
//! notification.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use postgres::GenericClient;

use super::{DeployError, DeployOptions, DeployReport, Mode, OutcomeKind, Result};
use crate::catalog::read::{self, TargetState};
use crate::catalog::write::{self, PackageRecord};
use crate::db::blockers::ObjectLocks;
use crate::db::marks;
use crate::db::quote::{quote_ident, quote_literal};
use crate::db::script::{Action, Origin, Param, Script};
use crate::package::manifest::Phase;
use crate::plan::PackagePlan;
use crate::sql::Statement;

/// How a package's statements run: whether `public` is on their path, and
/// whether their batches carry progress marks.
#[derive(Debug, Clone, Copy)]
pub(super) struct Paths {
    pub(super) public: bool,
    pub(super) marked: bool,
}

/// How a package's batches are made: with progress marks or not, and the
/// lock timeout to restore after a file's `SET lock_timeout`.
#[derive(Debug, Clone, Copy)]
struct Batching<'a> {
    marked: bool,
    locks: &'a ObjectLocks,
}

pub(super) fn prepare_package(
    client: &mut impl GenericClient,
    pkg: &PackagePlan,
    target: &TargetState,
    only_files: Option<&BTreeSet<PathBuf>>,
    opts: &DeployOptions,
    how: Paths,
    report: &mut DeployReport,
) -> Result<OutcomeKind> {
    let mode = if only_files.is_some() {
        Mode::Overwrite
    } else {
        opts.mode
    };
    let kind = schema_actions(client, pkg, target, mode, how.public, report)?;
    extension_actions(client, pkg, report)?;
    setting_actions(client, pkg, &mut report.script)?;
    let fresh_schema = !matches!(kind, OutcomeKind::Overwritten);
    let kind = if only_files.is_some() {
        OutcomeKind::Files
    } else {
        kind
    };
    let script = &mut report.script;
    statement_actions(
        client,
        pkg,
        fresh_schema,
        mode,
        only_files,
        Batching {
            marked: how.marked,
            locks: &opts.object_locks,
        },
        script,
    )?;
    // What the package's files SET (check_function_bodies, search_path,
    // ...) ends with the package: the next one starts from the session's
    // own settings.
    script.push(Action::Sql("RESET ALL".into()));
    script.push(Action::Sql(opts.object_locks.set_local()));
    grant_actions(pkg, opts, script);
    catalog_actions(pkg, target, fresh_schema, only_files, opts, script);
    if let Some(schema) = &pkg.schema {
        script.push(write::record_fingerprint(schema));
    }
    let payload = pgpm_client::protocol::DeployPayload {
        package: pkg.manifest.name.clone(),
        version: pkg.manifest.version.to_string(),
        schema: pkg.schema.clone(),
        mode: Some(mode.as_str().into()),
    };
    script.push(if pkg.manifest.ancestor {
        write::notify_deploy_ancestor(&payload, &pkg.manifest.version)
    } else {
        write::notify_deploy(&payload)
    });
    Ok(kind)
}

/// The manifest's `extensions`: each one the database has at the version
/// asked for is recorded; one it lacks is created (with `CASCADE`, so what
/// it requires comes too) in the schema its control file fixes or else in
/// `public`, never in the package's schema, whose removal would take it
/// along. Whatever cannot be had is refused before anything runs.
fn extension_actions(
    client: &mut impl GenericClient,
    pkg: &PackagePlan,
    report: &mut DeployReport,
) -> Result<()> {
    let manifest = &pkg.manifest;
    let version = manifest.version.to_string();
    for extension in &manifest.extensions {
        let name = &extension.name;
        let wanted = extension.version.as_deref();
        let state = read::extension_state(client, name, wanted)?;
        let refuse = |message: String| DeployError::Extension {
            manifest: manifest.manifest_path.clone(),
            message,
        };
        // Created for a package before this one in the same deploy.
        let scheduled = report
            .extensions_created
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone());
        let created = match (state.installed.as_ref().or(scheduled.as_ref()), wanted) {
            (Some(installed), Some(wanted)) if installed != wanted => {
                let label = pkg.label();
                return Err(refuse(if scheduled.is_some() {
                    format!(
                        "this deploy creates extension {name} at version {installed} for a package before {label}, which needs {wanted}: give both packages the same version"
                    )
                } else {
                    format!(
                        "extension {name} is at version {installed} in this database and {label} needs {wanted}: ALTER EXTENSION {} UPDATE TO {} first, or change the manifest",
                        quote_ident(name),
                        quote_literal(wanted)
                    )
                }));
            }
            (Some(_), _) => false,
            (None, _) if state.default_version.is_none() => {
                return Err(refuse(format!(
                    "{} needs extension {name}, which this server does not have (see pg_available_extensions): install it on the server first",
                    pkg.label()
                )));
            }
            (None, Some(wanted)) if !state.versions.iter().any(|v| v == wanted) => {
                return Err(refuse(format!(
                    "{} needs extension {name} {wanted}; this server has {}",
                    pkg.label(),
                    state.versions.join(", ")
                )));
            }
            (None, _) if state.needs_superuser => {
                return Err(refuse(format!(
                    "{} needs extension {name}, which only a superuser can create: have one run CREATE EXTENSION {} in this database first",
                    pkg.label(),
                    quote_ident(name)
                )));
            }
            (None, _) => true,
        };
        let script = &mut report.script;
        if created {
            let schema = state.fixed_schema.as_deref().unwrap_or("public");
            let at = wanted.or(state.default_version.as_deref()).unwrap_or("");
            script.push(Action::Note(format!(
                "extension {name} {at} for {}",
                pkg.label()
            )));
            script.push(Action::Sql(format!(
                "CREATE EXTENSION IF NOT EXISTS {}{} SCHEMA {} CASCADE",
                quote_ident(name),
                wanted
                    .map(|v| format!(" VERSION {}", quote_literal(v)))
                    .unwrap_or_default(),
                quote_ident(schema)
            )));
            report.notes.push(format!(
                "{}: creates extension {name} {at} in schema {schema}",
                pkg.label()
            ));
            report
                .extensions_created
                .push((name.clone(), at.to_string()));
        }
        script.push(write::record_extension(
            &manifest.name,
            &version,
            name,
            created,
        ));
    }
    Ok(())
}

/// The manifest's `settings`, for the package's statements only: `SET
/// LOCAL` through `set_config`, values bound; the `RESET ALL` after the
/// package ends them. An unknown name is refused before anything runs.
fn setting_actions(
    client: &mut impl GenericClient,
    pkg: &PackagePlan,
    script: &mut Script,
) -> Result<()> {
    for (name, value) in &pkg.manifest.settings {
        if !read::setting_exists(client, name)? {
            return Err(DeployError::UnknownSetting {
                manifest: pkg.manifest.manifest_path.clone(),
                name: name.clone(),
            });
        }
        script.push(Action::Bound {
            sql: "SELECT pg_catalog.set_config($1, $2, true)",
            params: vec![Param::text(name), Param::text(value)],
        });
    }
    Ok(())
}

/// What happens to the package's schema: rename, drop, create, and the
/// `search_path` its statements run with. Returns what this deploy does to
/// the schema; all but [`OutcomeKind::Overwritten`] mean the schema is
/// created in this deploy (and so gets all its table scripts).
fn schema_actions(
    client: &mut impl GenericClient,
    pkg: &PackagePlan,
    target: &TargetState,
    mode: Mode,
    public_path: bool,
    report: &mut DeployReport,
) -> Result<OutcomeKind> {
    let label = pkg.label();
    let mut kind = if target.exists {
        OutcomeKind::Overwritten
    } else {
        OutcomeKind::Created
    };
    let script = &mut report.script;
    script.push(Action::Note(format!(
        "package {label}{}",
        pkg.schema
            .as_ref()
            .map(|s| format!(" -> schema {s}"))
            .unwrap_or_else(|| " (database scope)".into())
    )));
    let Some(schema) = &pkg.schema else {
        script.push(Action::Sql("SET LOCAL search_path TO DEFAULT".into()));
        return Ok(kind);
    };
    let q = quote_ident(schema);
    let name = &pkg.manifest.name;
    let version = pkg.manifest.version.to_string();
    if !target.exists && target.package.is_some() {
        // Dropped by hand: the catalog's row and table scripts go with it.
        report.warnings.push(format!(
            "{label}: schema {schema} was dropped outside pgpm; it is created again"
        ));
        script.push(write::mark_schema_removed(schema));
        script.push(write::forget_table_scripts(schema));
    }
    if target.exists {
        match mode {
            Mode::Safe | Mode::Overwrite => {}
            Mode::Moderate => {
                if let Some((routine, owner)) = read::unowned_repoint(client, schema)? {
                    return Err(DeployError::RepointNotOwner {
                        schema: schema.clone(),
                        routine,
                        owner,
                    });
                }
                let n = read::free_revision(client, name, &version, Some(schema))?;
                let renamed = format!("{schema}_{n}");
                script.push(Action::Sql(format!(
                    "ALTER SCHEMA {q} RENAME TO {}",
                    quote_ident(&renamed)
                )));
                script
                    .actions
                    .extend(write::record_rename(schema, &renamed, n));
                // Its routines' pinned search_path (and its dependents')
                // named the schema: they follow it to its new name.
                script.push(write::repoint_search_path(schema, &renamed));
                report.warnings.push(format!(
                    "{label}: the existing schema {schema} is kept as old revision {renamed}; sessions whose search_path names {schema} use the new revision from the commit on"
                ));
                kind = OutcomeKind::Renamed { to: renamed };
            }
            Mode::Revision => {
                let current = target.schema.as_deref().unwrap_or(schema);
                // Numbered among the revisions of the package row it was
                // (a basic package's new version supersedes another one's).
                let (row_name, row_version) = match &target.package {
                    Some(p) => (p.name.as_str(), p.version.clone()),
                    None => (name.as_str(), version.clone()),
                };
                let n = read::free_revision(client, row_name, &row_version, None)?;
                script.actions.extend(write::record_superseded(current, n));
                report.warnings.push(format!(
                    "{label}: schema {current} stays as it is, as old revision {n}; new selections get {schema}, sessions on {current} keep it until they select again"
                ));
                kind = OutcomeKind::Revised {
                    previous: current.to_string(),
                };
            }
            Mode::Unsafe => {
                for object in read::cascade_victims(client, schema)? {
                    report.warnings.push(format!(
                        "{label}: dropping schema {schema} also drops {object}"
                    ));
                }
                script.push(Action::Sql(format!("DROP SCHEMA {q} CASCADE")));
                script.actions.extend(write::record_drop(schema));
                kind = OutcomeKind::Dropped;
            }
        }
    }
    if kind != OutcomeKind::Overwritten {
        script.push(Action::Sql(format!("CREATE SCHEMA {q}")));
        script.push(Action::Sql(format!("REVOKE ALL ON SCHEMA {q} FROM PUBLIC")));
    }
    let mut path = vec![q];
    path.extend(
        pkg.dependencies
            .iter()
            .filter_map(|d| d.schema.as_deref())
            .map(quote_ident),
    );
    // pg_catalog is searched first implicitly, so built-ins cannot be
    // shadowed; public comes last, and only when no role may create in it.
    if public_path {
        path.push("public".into());
    }
    script.push(Action::Sql(format!(
        "SET LOCAL search_path TO {}",
        path.join(", ")
    )));
    Ok(kind)
}

/// The package's statements, run by run; table scripts only when not
/// applied to this schema yet (a changed one is an error).
fn statement_actions(
    client: &mut impl GenericClient,
    pkg: &PackagePlan,
    fresh_schema: bool,
    mode: Mode,
    only_files: Option<&BTreeSet<PathBuf>>,
    batching: Batching<'_>,
    script: &mut Script,
) -> Result<()> {
    let name = &pkg.manifest.name;
    let target = pkg.schema.clone().unwrap_or_default();
    // Table scripts: once per package, target schema and file.
    let applied = if fresh_schema {
        HashMap::new()
    } else {
        read::applied_table_scripts(client, name, &target)?
    };
    // Which table scripts run (and which are refused), once per file.
    let mut runs_table: HashMap<&Path, bool> = HashMap::new();
    for table in pkg.table_scripts() {
        if only_files.is_some_and(|f| !f.contains(table.path)) {
            runs_table.insert(table.path, false);
            continue;
        }
        let rerun = only_files.is_some();
        let runs = match applied.get(table.path) {
            Some(a) if a.checksum == table.checksum && !rerun => false,
            Some(a) if !rerun && mode != Mode::Unsafe => {
                return Err(DeployError::TableScriptChanged {
                    package: pkg.label(),
                    schema: target,
                    file: table.path.to_path_buf(),
                    applied_at: a.applied_at.clone(),
                });
            }
            _ => true,
        };
        runs_table.insert(table.path, runs);
    }
    // The runs in order, each one batch; a table script is recorded after
    // the run that holds its last statement.
    let last_run: HashMap<&Path, usize> = pkg
        .phases
        .iter()
        .enumerate()
        .filter(|(_, run)| run.phase == Phase::Tables)
        .flat_map(|(i, run)| run.files.iter().map(move |f| (f.path.as_path(), i)))
        .collect();
    for (i, run) in pkg.phases.iter().enumerate() {
        if run.phase != Phase::Tables {
            let statements = run
                .statements
                .iter()
                .filter(|s| only_files.is_none_or(|f| f.contains(&s.file)));
            push_batch(script, pkg, statements, batching);
            continue;
        }
        let statements = run
            .statements
            .iter()
            .filter(|s| runs_table.get(s.file.as_path()) == Some(&true));
        push_batch(script, pkg, statements, batching);
        for file in &run.files {
            if last_run.get(file.path.as_path()) == Some(&i) && runs_table[file.path.as_path()] {
                script.push(write::record_table_script(
                    name,
                    &target,
                    &file.path.to_string_lossy(),
                    &file.checksum,
                ));
            }
        }
    }
    Ok(())
}

/// Usage grants and ownership of the package's schema.
fn grant_actions(pkg: &PackagePlan, opts: &DeployOptions, script: &mut Script) {
    let Some(schema) = &pkg.schema else { return };
    // Functions are executable by PUBLIC when created; a package's are not.
    script.push(Action::Sql(format!(
        "REVOKE EXECUTE ON ALL ROUTINES IN SCHEMA {} FROM PUBLIC",
        quote_ident(schema)
    )));
    let usage: BTreeSet<&String> = opts.usage.iter().chain(&pkg.manifest.usage_roles).collect();
    for role in usage {
        script.push(write::grant_usage(schema, role));
        // The tables the package's API works on for its callers, as
        // declared: a batch pointing at the manifest, so that a table that
        // is not there is reported there.
        for grant in &pkg.manifest.table_grants {
            let sql = format!(
                "GRANT {} ON TABLE {}.{} TO {};\n",
                grant.privileges.join(", "),
                quote_ident(schema),
                quote_ident(&grant.table),
                quote_ident(role)
            );
            script.push(Action::Batch {
                package: pkg.label(),
                origins: vec![Origin {
                    start: 0,
                    len: sql.len(),
                    file: pkg.manifest.manifest_path.clone(),
                    line: 1,
                    column: 1,
                }],
                sql,
                marked: false,
            });
        }
    }
    if let Some(owner) = opts.owner.as_ref().or(pkg.manifest.owner_role.as_ref()) {
        script.push(write::set_owner(schema, owner));
    }
}

/// The package's catalog rows: the package, its dependencies, what this
/// deployment did to it.
fn catalog_actions(
    pkg: &PackagePlan,
    target: &TargetState,
    fresh_schema: bool,
    only_files: Option<&BTreeSet<PathBuf>>,
    opts: &DeployOptions,
    script: &mut Script,
) {
    let m = &pkg.manifest;
    let version = m.version.to_string();
    let record = PackageRecord {
        name: m.name.clone(),
        version: m.version.clone(),
        subclass: m.subclass.as_str(),
        scope: m.scope.as_str(),
        schema: pkg.schema.clone(),
        description: m.description.clone(),
        license: m.license.clone(),
        owner_role: opts.owner.clone().or(m.owner_role.clone()),
        // Only part of the package is deployed: never "up to date" afterwards.
        checksum: match only_files {
            Some(_) => format!("partial:{}", pkg.checksum),
            None => pkg.checksum.clone(),
        },
    };
    let same_row = target
        .package
        .as_ref()
        .filter(|p| p.name == m.name && p.version == version && !fresh_schema);
    if let Some(row) = same_row {
        let action = if only_files.is_some() {
            "files"
        } else {
            "overwritten"
        };
        script
            .actions
            .extend(write::update_package(row.id, &record, action));
        return;
    }
    if !fresh_schema && target.package.is_some() {
        // Overwriting another version's schema: that version is gone.
        script.push(write::mark_schema_removed(
            pkg.schema.as_deref().unwrap_or_default(),
        ));
    }
    if pkg.schema.is_none() {
        script.push(write::mark_database_scope_removed(&m.name));
    }
    let dependencies: Vec<(String, String, String)> = pkg
        .dependencies
        .iter()
        .map(|d| (d.name.clone(), d.version.to_string(), d.requirement.clone()))
        .collect();
    script
        .actions
        .extend(write::insert_package(&record, &dependencies));
}

/// Appends one batch of statements. Statements' origins name the file as
/// found on disk (the package folder joined with the file), like every
/// other error that points at a file.
///
/// A statement runs with the `SET`s of its file that precede it
/// ([`Statement::settings`]): they are sent before it when the statement
/// before it had others, and undone after it when the next one has not
/// (`RESET`, then what the package itself sets: the manifest's settings,
/// pgpm's lock timeout), so no other file's statement runs with them.
fn push_batch<'a>(
    script: &mut Script,
    pkg: &PackagePlan,
    statements: impl Iterator<Item = &'a Statement>,
    Batching { marked, locks }: Batching<'_>,
) {
    let statements: Vec<&Statement> = statements.collect();
    // Batches that only define objects are located by running them again
    // (nothing shows); the others carry progress marks.
    let marked = marked
        && statements
            .iter()
            .any(|s| s.runs_code() || !s.settings().is_empty());
    let mut sql = String::new();
    if marked {
        sql.push_str(&marks::reset());
    }
    let mark = marks::mark();
    let mut origins = Vec::new();
    // One statement's text (pgpm's own when `text` is given), located at
    // `at` in the user's files.
    let mut emit = |text: &str, at: &Statement| {
        let start = sql.len();
        sql.push_str(text);
        if !text.trim_end().ends_with(';') {
            sql.push(';');
        }
        sql.push('\n');
        if marked {
            sql.push_str(&mark);
        }
        origins.push(Origin {
            start,
            len: text.len(),
            file: pkg.manifest.dir.join(&at.file),
            line: at.line,
            column: at.column,
        });
    };
    let undo = |emit: &mut dyn FnMut(&str, &Statement), settings: &[Statement]| {
        let mut done = std::collections::HashSet::new();
        for set in settings {
            let Some(name) = set.setting().filter(|n| done.insert(n.clone())) else {
                continue;
            };
            emit(&format!("RESET {}", quote_setting(&name)), set);
            // pgpm's lock timeout first, so that the manifest's, set after
            // it at the package's start, wins here too.
            if name == "lock_timeout" {
                emit(&locks.set_local(), set);
            }
            if let Some((_, value)) = pkg
                .manifest
                .settings
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(&name))
            {
                emit(
                    &format!(
                        "SELECT pg_catalog.set_config({}, {}, true)",
                        quote_literal(&name),
                        quote_literal(value)
                    ),
                    set,
                );
            }
        }
    };
    let mut current: &[Statement] = &[];
    for stmt in &statements {
        if stmt.settings() != current {
            undo(&mut emit, current);
            for set in stmt.settings() {
                emit(&set.sql, set);
            }
            current = stmt.settings();
        }
        emit(&stmt.sql, stmt);
    }
    undo(&mut emit, current);
    if origins.is_empty() {
        return;
    }
    script.push(Action::Batch {
        package: pkg.label(),
        sql,
        origins,
        marked,
    });
}

/// A setting's name for `RESET`: as it is when it is a plain (or dotted
/// custom) name, else quoted.
fn quote_setting(name: &str) -> String {
    if name.split('.').all(|part| {
        !part.is_empty()
            && part
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    }) {
        name.to_string()
    } else {
        quote_ident(name)
    }
}
