//! Rendering the engine's values for people (text) and programs (JSON).

use std::collections::BTreeSet;
use std::fmt::Write as _;

use pgpm::db::script::{Action, Param, Script};
use pgpm::ops::adopt::AdoptReport;
use pgpm::ops::announce::Announcement;
use pgpm::ops::deploy::{DeployOptions, DeployReport, OutcomeKind};
use pgpm::ops::gc::GcReport;
use pgpm::ops::remove::RemoveReport;
use pgpm::ops::status::Status;
use pgpm::plan::{PackagePlan, PhasePlan, Plan};
use pgpm::sql::Statement;
use pgpm::util::slash_path;
use serde::Serialize;
use serde_json::{Value, json};

use super::fleet::Summary;

/// The plan for people: package order, schemas, dependencies and each
/// phase's statements with `file:line` relative to the package folder.
/// With `existing` (the schemas found in the database), says for each
/// package whether its schema exists already.
pub fn plan_text(plan: &Plan, existing: Option<&BTreeSet<String>>, explain: bool) -> String {
    let mut out = String::new();
    let n = plan.packages.len();
    let _ = writeln!(
        out,
        "{n} package{} in {}, in deploy order:",
        if n == 1 { "" } else { "s" },
        plan.root.display()
    );
    for (i, p) in plan.packages.iter().enumerate() {
        let m = &p.manifest;
        let _ = writeln!(out);
        let _ = writeln!(out, "{}. {} ({})", i + 1, p.label(), m.dir.display());
        let target = match &p.schema {
            Some(schema) => {
                let state = match existing {
                    Some(e) if e.contains(schema) => " (exists already)",
                    Some(_) => " (new)",
                    None => "",
                };
                format!("schema {schema}{state}")
            }
            None => "no schema of its own (scope database)".to_string(),
        };
        let _ = writeln!(out, "   {}, {target}", m.subclass);
        for d in &p.dependencies {
            let schema = d.schema.as_deref().unwrap_or("database scope");
            let deployed = if d.deployed_only { ", deployed" } else { "" };
            let _ = writeln!(
                out,
                "   depends on {} {} -> {} ({schema}{deployed})",
                d.name, d.requirement, d.version
            );
        }
        let _ = writeln!(
            out,
            "   checksum {}",
            &p.checksum[..16.min(p.checksum.len())]
        );
        for note in &p.notes {
            let _ = writeln!(out, "   note: {note}");
        }
        let all: Vec<&Statement> = p.statements().collect();
        for phase in &p.phases {
            let _ = writeln!(out, "   {}:", phase.phase);
            let width = phase
                .statements
                .iter()
                .map(|s| location(s).len())
                .max()
                .unwrap_or(0);
            for s in &phase.statements {
                let _ = writeln!(out, "     {:width$}  {}", location(s), s.summary());
                if explain && !s.waits_for.is_empty() {
                    let after: Vec<String> =
                        s.waits_for.iter().map(|&w| location(all[w])).collect();
                    let _ = writeln!(out, "     {:width$}    after {}", "", after.join(", "));
                }
            }
            if phase.statements.is_empty() {
                let _ = writeln!(out, "     (no statements)");
            }
        }
    }
    out
}

/// The plan as JSON for tools: one object with `root` and `packages`,
/// serialised straight from the plan (large plans build no value tree).
pub fn plan_json<'a>(
    plan: &'a Plan,
    existing: Option<&'a BTreeSet<String>>,
) -> impl Serialize + 'a {
    PlanJson {
        root: plan.root.display().to_string(),
        packages: plan
            .packages
            .iter()
            .map(|p| PackageJson {
                plan: p,
                schema_exists: match (existing, &p.schema) {
                    (Some(e), Some(s)) => Some(e.contains(s)),
                    _ => None,
                },
            })
            .collect(),
    }
}

#[derive(Serialize)]
struct PlanJson<'a> {
    root: String,
    packages: Vec<PackageJson<'a>>,
}

struct PackageJson<'a> {
    plan: &'a PackagePlan,
    schema_exists: Option<bool>,
}

impl Serialize for PackageJson<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let p = self.plan;
        let m = &p.manifest;
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("name", &m.name)?;
        map.serialize_entry("version", &m.version.to_string())?;
        map.serialize_entry("subclass", m.subclass.as_str())?;
        map.serialize_entry("scope", m.scope.as_str())?;
        map.serialize_entry("schema", &p.schema)?;
        map.serialize_entry("schema_exists", &self.schema_exists)?;
        map.serialize_entry("dir", &m.dir.display().to_string())?;
        map.serialize_entry("manifest", &m.manifest_path.display().to_string())?;
        map.serialize_entry("description", &m.description)?;
        map.serialize_entry("checksum", &p.checksum)?;
        map.serialize_entry("notes", &p.notes)?;
        let not_sql: Vec<String> = p.not_sql.iter().map(|f| slash_path(f)).collect();
        map.serialize_entry("not_sql", &not_sql)?;
        let dependencies: Vec<Value> = p
            .dependencies
            .iter()
            .map(|d| {
                json!({
                    "name": d.name,
                    "requirement": d.requirement,
                    "version": d.version.to_string(),
                    "schema": d.schema,
                    "deployed_only": d.deployed_only,
                })
            })
            .collect();
        map.serialize_entry("dependencies", &dependencies)?;
        let phases: Vec<PhaseJson<'_>> = p.phases.iter().map(PhaseJson).collect();
        map.serialize_entry("phases", &phases)?;
        map.end()
    }
}

struct PhaseJson<'a>(&'a PhasePlan);

impl Serialize for PhaseJson<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        #[derive(Serialize)]
        struct File<'a> {
            path: String,
            checksum: &'a str,
        }
        #[derive(Serialize)]
        struct Stmt<'a> {
            file: String,
            line: usize,
            column: usize,
            kind: String,
            defines: Vec<String>,
            /// Indexes into the package's statements, its phases' lists
            /// concatenated.
            waits_for: &'a [usize],
            sql: &'a str,
        }
        let phase = self.0;
        let mut map = serializer.serialize_map(Some(3))?;
        map.serialize_entry("phase", phase.phase.name())?;
        let files: Vec<File<'_>> = phase
            .files
            .iter()
            .map(|f| File {
                path: slash_path(&f.path),
                checksum: &f.checksum,
            })
            .collect();
        map.serialize_entry("files", &files)?;
        let statements: Vec<Stmt<'_>> = phase
            .statements
            .iter()
            .map(|s| Stmt {
                file: slash_path(&s.file),
                line: s.line,
                column: s.column,
                kind: s.kind.to_string(),
                defines: s.defines.iter().map(ToString::to_string).collect(),
                waits_for: &s.waits_for,
                sql: &s.sql,
            })
            .collect();
        map.serialize_entry("statements", &statements)?;
        map.end()
    }
}

/// `file:line`, with `/` separators.
fn location(s: &Statement) -> String {
    format!("{}:{}", slash_path(&s.file), s.line)
}

/// A script as the SQL that runs, bound values shown in comments after
/// their statement.
pub fn script(script: &Script) -> String {
    let mut out = String::new();
    for action in &script.actions {
        match action {
            Action::Note(note) => {
                let _ = writeln!(out, "\n-- {note}");
            }
            Action::Sql(sql) => {
                let _ = writeln!(out, "{sql};");
            }
            Action::Bound { sql, params } => {
                let _ = write!(out, "{sql};");
                if !params.is_empty() {
                    let _ = write!(out, "\n  -- {}", params_text(params));
                }
                let _ = writeln!(out);
            }
            Action::Batch { sql, .. } => {
                let _ = writeln!(out, "{}", sql.trim_end());
            }
        }
    }
    out
}

/// Bound values as `$1 = 'x', $2 = 3`.
fn params_text(params: &[Param]) -> String {
    let mut s = String::new();
    for (i, p) in params.iter().enumerate() {
        let sep = if i > 0 { ", " } else { "" };
        let _ = write!(s, "{sep}${} = {}", i + 1, p.to_literal());
    }
    s
}

/// `pgpm status` for people: the versions, a table of packages, pending
/// patches and warnings.
pub fn status_text(status: &Status) -> String {
    let mut out = String::new();
    let server = &status.server;
    let _ = writeln!(
        out,
        "catalog version {}, server PostgreSQL {} ({})",
        server.catalog_version, server.server_version, server.server_version_num
    );
    if status.packages.is_empty() {
        let _ = writeln!(out, "no packages deployed");
    } else {
        let header = [
            "PACKAGE",
            "VERSION",
            "SCHEMA",
            "OLD REVISIONS",
            "DEPLOYED AT",
            "BY",
            "VCS REF",
        ];
        let rows: Vec<[String; 7]> = status
            .packages
            .iter()
            .map(|p| {
                [
                    p.name.clone(),
                    p.version.clone(),
                    match (&p.schema, p.schema_missing) {
                        (Some(schema), true) => format!("{schema} (missing)"),
                        (Some(schema), false) => schema.clone(),
                        (None, _) => "(database)".into(),
                    },
                    if p.old_revisions.is_empty() {
                        "-".into()
                    } else {
                        p.old_revisions.join(", ")
                    },
                    p.deployed_at.clone(),
                    p.deployed_by.clone(),
                    p.vcs_ref
                        .as_deref()
                        .map(|r| r.chars().take(12).collect())
                        .unwrap_or_else(|| "-".into()),
                ]
            })
            .collect();
        let mut widths = header.map(str::len);
        for row in &rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let line = |cells: &[&str]| {
            let mut s = String::new();
            for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
                if i + 1 == cells.len() {
                    s.push_str(cell);
                } else {
                    let _ = write!(s, "{cell:<w$}  ");
                }
            }
            s
        };
        let _ = writeln!(out, "{}", line(&header));
        for row in &rows {
            let cells: Vec<&str> = row.iter().map(String::as_str).collect();
            let _ = writeln!(out, "{}", line(&cells));
        }
    }
    match &status.pending_patches {
        None => {}
        Some(p) if p.is_empty() => {
            let _ = writeln!(out, "no pending patches");
        }
        Some(p) => {
            let _ = writeln!(out, "{} pending patch(es):", p.len());
            for patch in p {
                let _ = writeln!(out, "  {}", patch.file_name);
            }
        }
    }
    for warning in &status.warnings {
        let _ = writeln!(out, "warning: {warning}");
    }
    out
}

/// `pgpm status --json`: the report's fields in their order.
pub fn status_json(status: &Status) -> impl Serialize + '_ {
    #[derive(Serialize)]
    struct StatusJson<'a> {
        catalog_version: i32,
        server_version: &'a str,
        server_version_num: i32,
        last_deploy_server_version_num: Option<i32>,
        packages: Vec<PackageStatusJson<'a>>,
        pending_patches: Option<Vec<PatchJson<'a>>>,
        warnings: &'a [String],
    }
    #[derive(Serialize)]
    struct PackageStatusJson<'a> {
        name: &'a str,
        version: &'a str,
        schema: Option<&'a str>,
        old_revisions: &'a [String],
        deployed_at: &'a str,
        deployed_by: &'a str,
        vcs_ref: Option<&'a str>,
        schema_missing: bool,
    }
    #[derive(Serialize)]
    struct PatchJson<'a> {
        file_name: &'a str,
        #[serde(rename = "type")]
        kind: &'a str,
    }
    let server = &status.server;
    StatusJson {
        catalog_version: server.catalog_version,
        server_version: &server.server_version,
        server_version_num: server.server_version_num,
        last_deploy_server_version_num: server.last_deploy_server_version_num,
        packages: status
            .packages
            .iter()
            .map(|p| PackageStatusJson {
                name: &p.name,
                version: &p.version,
                schema: p.schema.as_deref(),
                old_revisions: &p.old_revisions,
                deployed_at: &p.deployed_at,
                deployed_by: &p.deployed_by,
                vcs_ref: p.vcs_ref.as_deref(),
                schema_missing: p.schema_missing,
            })
            .collect(),
        pending_patches: status.pending_patches.as_ref().map(|pending| {
            pending
                .iter()
                .map(|p| PatchJson {
                    file_name: &p.file_name,
                    kind: p.kind,
                })
                .collect()
        }),
        warnings: &status.warnings,
    }
}

/// An error and its chain of causes, one per line, for stderr. A
/// PostgreSQL error contributes its message, detail and hint.
pub fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    format!("error: {}", error_message(err))
}

/// [`error_chain`] without its `error: `, for a line that says more
/// before it (a target's name) and for JSON.
pub fn error_message(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        if let Some(db) = cause
            .downcast_ref::<postgres::Error>()
            .and_then(|e| e.as_db_error())
        {
            let _ = write!(out, "\n  caused by: {}: {}", db.severity(), db.message());
            if let Some(detail) = db.detail() {
                let _ = write!(out, "\n  detail: {detail}");
            }
            if let Some(hint) = db.hint() {
                let _ = write!(out, "\n  hint: {hint}");
            }
            break;
        }
        let _ = write!(out, "\n  caused by: {cause}");
        source = cause.source();
    }
    out
}

/// An error for `--json`: `{"error": {kind, message, file, line, column,
/// sqlstate, exit_code}}`; what is not known is null.
pub fn error_json(err: &pgpm::Error) -> Value {
    let location = err.location();
    let sqlstate = std::iter::successors(Some(err as &(dyn std::error::Error + 'static)), |e| {
        e.source()
    })
    .find_map(|e| {
        e.downcast_ref::<postgres::Error>()?
            .code()
            .map(|c| c.code().to_string())
    });
    json!({
        "error": {
            "kind": err.kind(),
            "message": error_message(err),
            "file": location.as_ref().map(|l| slash_path(&l.file)),
            "line": location.as_ref().and_then(|l| l.line),
            "column": location.as_ref().and_then(|l| l.column),
            "sqlstate": sqlstate,
            "exit_code": err.exit_code(),
        }
    })
}

/// A JSON document on stdout, as the last thing a command prints.
pub fn print_json(value: &Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).expect("JSON of plain values")
    );
}

/// `deploy --json` (and the `deploy` of `sandbox --json`).
pub fn deploy_json(report: &DeployReport) -> Value {
    let packages: Vec<Value> = report
        .outcomes
        .iter()
        .map(|o| {
            let (outcome, old) = match &o.kind {
                OutcomeKind::Created => ("created", None),
                OutcomeKind::Renamed { to } => ("renamed", Some(to)),
                OutcomeKind::Revised { previous } => ("revised", Some(previous)),
                OutcomeKind::Dropped => ("dropped", None),
                OutcomeKind::Overwritten => ("overwritten", None),
                OutcomeKind::Files => ("files", None),
                OutcomeKind::UpToDate => ("up to date", None),
            };
            json!({
                "name": o.name,
                "version": o.version,
                "schema": o.schema,
                "outcome": outcome,
                "old_schema": old,
            })
        })
        .collect();
    json!({
        "dry_run": report.dry_run,
        "packages": packages,
        "extensions_created": report
            .extensions_created
            .iter()
            .map(|(name, version)| json!({ "name": name, "version": version }))
            .collect::<Vec<_>>(),
        "warnings": report.warnings,
        "notes": report.notes,
        "script": report.dry_run.then(|| script(&report.script)),
    })
}

/// `remove --json`, and each removal of `gc --json`.
pub fn remove_json(report: &RemoveReport) -> Value {
    json!({
        "dry_run": report.dry_run,
        "package": report.package,
        "version": report.version,
        "schema": report.schema,
        "warnings": report.warnings,
        "script": report.dry_run.then(|| script(&report.script)),
    })
}

/// `gc --json`.
pub fn gc_json(report: &GcReport) -> Value {
    json!({
        "dry_run": report.dry_run,
        "removed": report.removed.iter().map(remove_json).collect::<Vec<_>>(),
        "kept": report
            .kept
            .iter()
            .map(|k| json!({ "revision": k.label, "reason": k.reason }))
            .collect::<Vec<_>>(),
    })
}

/// `install --adopt --json`.
pub fn adopt_json(report: &AdoptReport) -> Value {
    json!({
        "dry_run": report.dry_run,
        "adopted": report
            .adopted
            .iter()
            .map(|a| json!({
                "name": a.name,
                "version": a.version,
                "schema": a.schema,
                "old_rev": a.old_rev,
                "checksum_from_workspace": a.from_workspace,
            }))
            .collect::<Vec<_>>(),
        "history_events": report.events,
        "warnings": report.warnings,
        "script": report.dry_run.then(|| script(&report.script)),
    })
}

/// What `deploy --announce` tells: a subject, a text of what changed on
/// each target, and the JSON report `{mode, vcs_ref, vcs_link, issue_ref,
/// issue_link, targets: [{target, report}]}`.
pub fn announcement(opts: &DeployOptions, changed: &[&Summary]) -> Announcement {
    let mut packages: Vec<String> = Vec::new();
    let mut text = String::new();
    for s in changed {
        let _ = writeln!(text, "{}:", s.target);
        for p in s.report["packages"].as_array().into_iter().flatten() {
            let label = format!(
                "{} {}",
                p["name"].as_str().unwrap_or(""),
                p["version"].as_str().unwrap_or("")
            );
            if p["outcome"] == "up to date" {
                let _ = writeln!(text, "  {label} is up to date");
                continue;
            }
            let schema = p["schema"].as_str().unwrap_or("(database scope)");
            let _ = writeln!(
                text,
                "  deployed {label} -> {schema} ({})",
                p["outcome"].as_str().unwrap_or("")
            );
            if !packages.contains(&label) {
                packages.push(label);
            }
        }
    }
    let mut refs = String::new();
    for (what, value, link) in [
        ("issue", &opts.issue_ref, &opts.issue_link),
        ("version control", &opts.vcs_ref, &opts.vcs_link),
    ] {
        if let Some(value) = value {
            let link = link.as_ref().map(|l| format!(" ({l})")).unwrap_or_default();
            let _ = writeln!(refs, "{what}: {value}{link}");
        }
    }
    let targets = match changed {
        [one] => one.target.clone(),
        many => format!("{} targets", many.len()),
    };
    Announcement {
        subject: format!("pgpm: deployed {} to {targets}", packages.join(", ")),
        text: format!("pgpm deploy, mode {}\n{refs}\n{text}", opts.mode),
        report: json!({
            "mode": opts.mode.as_str(),
            "vcs_ref": opts.vcs_ref,
            "vcs_link": opts.vcs_link,
            "issue_ref": opts.issue_ref,
            "issue_link": opts.issue_link,
            "targets": changed
                .iter()
                .map(|s| json!({ "target": s.target, "report": s.report }))
                .collect::<Vec<_>>(),
        }),
        issue: opts.issue_ref.clone(),
    }
}
