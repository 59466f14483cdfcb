//! The plan: packages and catalog state in, ordered steps out.
//!
//! Planning is pure. It takes a loaded [`Workspace`] and the versions
//! already deployed (read by [`Deployed::read_current`]), parses every SQL
//! file, orders the statements of each phase and the packages, and returns
//! a value the deployer executes and `pgpm plan` prints. Nothing here
//! changes a database; [`existing_schemas`] only reads one for display.
//!
//! Within a package the phases run in [`Phase`] order. Table scripts run
//! once per package and file and are recorded per file, so the tables phase
//! keeps its statements grouped by file in natural path order and never
//! reorders them. The other phases order the statements of all their files
//! together with [`sql::order`]; `DROP` statements in type files run before
//! everything else of the phase, as the ancestor did, so a type script can
//! drop an old definition and recreate it.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use postgres::GenericClient;
use serde::Serialize;
use serde_json::{Value, json};

use crate::manifest::Manifest;
pub use crate::manifest::Phase;
pub use crate::resolve::{Deployed, ResolvedDependency};
use crate::sql::{self, Statement, StatementKind};
use crate::workspace::{self, Package, SourceFile, Workspace};
use crate::{Error, Result};

/// What a deploy of a workspace would do.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The path the workspace was opened with.
    pub root: PathBuf,
    /// Each package after its dependencies; deterministic.
    pub packages: Vec<PackagePlan>,
}

/// One package version to deploy.
#[derive(Debug, Clone)]
pub struct PackagePlan {
    pub manifest: Manifest,
    /// The schema to deploy into; `None` for `scope: database`.
    pub schema: Option<String>,
    /// In manifest order (by name).
    pub dependencies: Vec<ResolvedDependency>,
    /// Only phases with files, in [`Phase`] order. Empty when the package
    /// was left unparsed (see `parsed`).
    pub phases: Vec<PhasePlan>,
    /// Whether the package's SQL was parsed into `phases`; false only for
    /// packages [`plan_selected`] was told to leave out.
    pub parsed: bool,
    /// SHA-256 over the manifest and every SQL file; see [`Package::checksum`].
    pub checksum: String,
}

/// The statements of one phase of a package, in the order they run.
///
/// Statement `file`s are relative to the package directory
/// (`manifest.dir`); join them to it to open or print the file.
#[derive(Debug, Clone)]
pub struct PhasePlan {
    pub phase: Phase,
    pub statements: Vec<Statement>,
    /// The phase's files in natural path order.
    pub files: Vec<PackageFile>,
}

/// One SQL file of a phase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageFile {
    /// Relative to the package directory, e.g. `tables/1_invoice.sql`.
    pub path: PathBuf,
    /// SHA-256 of the file's normalised bytes.
    pub checksum: String,
    /// For table scripts, the file's statements as a range of
    /// [`PhasePlan::statements`]; `None` in phases whose statements are
    /// ordered across files.
    pub statements: Option<Range<usize>>,
}

/// A table script: one file of the tables phase, run and recorded as a unit.
#[derive(Debug, Clone, Copy)]
pub struct TableScript<'a> {
    /// Relative to the package directory.
    pub path: &'a Path,
    pub checksum: &'a str,
    pub statements: &'a [Statement],
}

impl Plan {
    /// Every schema the plan deploys into, in plan order.
    pub fn schemas(&self) -> impl Iterator<Item = &str> {
        self.packages.iter().filter_map(|p| p.schema.as_deref())
    }
}

impl PackagePlan {
    /// The plan of one phase, if the package has files in it.
    pub fn phase(&self, phase: Phase) -> Option<&PhasePlan> {
        self.phases.iter().find(|p| p.phase == phase)
    }

    /// The table scripts in the order they run, each with its statements.
    pub fn table_scripts(&self) -> impl Iterator<Item = TableScript<'_>> {
        self.phase(Phase::Tables).into_iter().flat_map(|phase| {
            phase.files.iter().map(move |file| TableScript {
                path: &file.path,
                checksum: &file.checksum,
                statements: &phase.statements[file.statements.clone().unwrap_or(0..0)],
            })
        })
    }

    /// `name version`.
    pub fn label(&self) -> String {
        self.manifest.label()
    }
}

/// Loads the workspace at `path` and plans it.
pub fn plan_workspace(path: &Path, deployed: &[Deployed]) -> Result<Plan> {
    plan(Workspace::load(path)?, deployed)
}

/// Plans a loaded workspace. SQL errors (syntax, cycles) are found first,
/// then dependencies are resolved against the workspace and `deployed`.
pub fn plan(workspace: Workspace, deployed: &[Deployed]) -> Result<Plan> {
    plan_selected(workspace, deployed, |_| true)
}

/// Plans a loaded workspace, parsing the SQL of only the packages `parse`
/// selects; the others are resolved and ordered like the rest but keep no
/// phases and `parsed: false`. Parsing is most of what planning costs, so
/// a deploy leaves out the packages whose content is deployed already.
pub fn plan_selected(
    workspace: Workspace,
    deployed: &[Deployed],
    parse: impl Fn(&Package) -> bool + Sync,
) -> Result<Plan> {
    let phases = parse_all(&workspace.packages, &parse)?;
    let manifests: Vec<Manifest> = workspace
        .packages
        .iter()
        .map(|p| p.manifest.clone())
        .collect();
    let resolution = crate::resolve::resolve(&manifests, deployed)?;
    let mut slots: Vec<Option<(Package, Option<Vec<PhasePlan>>)>> = workspace
        .packages
        .into_iter()
        .zip(phases)
        .map(Some)
        .collect();
    let mut dependencies: Vec<Option<Vec<ResolvedDependency>>> =
        resolution.dependencies.into_iter().map(Some).collect();
    let packages = resolution
        .order
        .iter()
        .map(|&i| {
            let (package, phases) = slots[i].take().expect("each package once");
            PackagePlan {
                schema: package.manifest.schema().map(str::to_string),
                manifest: package.manifest,
                dependencies: dependencies[i].take().unwrap_or_default(),
                parsed: phases.is_some(),
                phases: phases.unwrap_or_default(),
                checksum: package.checksum,
            }
        })
        .collect();
    Ok(Plan {
        root: workspace.root,
        packages,
    })
}

/// Parses and orders the SQL of the packages `parse` selects (`None` for
/// the others), in two passes over every available core: the files of all
/// of them together, so one large package spreads as well as many small
/// ones, then each package's statements are ordered. The first error in
/// package order (and file order within a package) wins, so the result does
/// not depend on scheduling.
fn parse_all(
    packages: &[Package],
    parse: &(impl Fn(&Package) -> bool + Sync),
) -> Result<Vec<Option<Vec<PhasePlan>>>> {
    let selected: Vec<bool> = packages.iter().map(parse).collect();
    let files: Vec<(&Package, &SourceFile)> = packages
        .iter()
        .zip(&selected)
        .filter(|(_, selected)| **selected)
        .flat_map(|(package, _)| package.files.iter().map(move |file| (package, file)))
        .collect();
    let mut parsed = workspace::parallel_map(&files, |(package, file)| {
        sql::parse_file(&package.manifest.dir.join(&file.path), &file.text)
    })
    .into_iter();
    // Each package's parsed files, taken (once) by the thread that orders them.
    type Parsed = Vec<Option<std::result::Result<Vec<Statement>, sql::SqlError>>>;
    let work: Vec<(&Package, Mutex<Option<Parsed>>)> = packages
        .iter()
        .zip(selected)
        .map(|(package, selected)| {
            let files = selected.then(|| {
                parsed
                    .by_ref()
                    .take(package.files.len())
                    .map(Some)
                    .collect()
            });
            (package, Mutex::new(files))
        })
        .collect();
    workspace::parallel_map(&work, |(package, files)| {
        let files = files.lock().expect("not poisoned").take();
        files
            .map(|files| package_phases(package, files))
            .transpose()
    })
    .into_iter()
    .collect()
}

/// The phases of one package: its files' statements (`parsed[i]` is what
/// [`sql::parse_file`] made of `package.files[i]`), ordered.
///
/// Files are parsed under their path as found on disk (the package folder
/// joined with the relative path), so syntax and cycle errors point at a
/// file the user can open; the planned statements then carry the path
/// relative to the package folder.
fn package_phases(
    package: &Package,
    mut parsed: Vec<Option<std::result::Result<Vec<Statement>, sql::SqlError>>>,
) -> Result<Vec<PhasePlan>> {
    let dir = &package.manifest.dir;
    let mut phases = Vec::new();
    for phase in Phase::ALL {
        let mut statements = Vec::new();
        let mut files = Vec::new();
        for (index, file) in package.files.iter().enumerate() {
            if file.phase != phase {
                continue;
            }
            let parsed = parsed[index].take().expect("each file once")?;
            let start = statements.len();
            statements.extend(parsed);
            files.push(PackageFile {
                path: file.path.clone(),
                checksum: file.checksum.clone(),
                statements: (phase == Phase::Tables).then_some(start..statements.len()),
            });
        }
        if files.is_empty() {
            continue;
        }
        let mut statements = match phase {
            Phase::Tables => statements,
            Phase::Types => {
                let (drops, rest): (Vec<_>, Vec<_>) = statements
                    .into_iter()
                    .partition(|s| matches!(s.kind, StatementKind::Drop(_)));
                let mut ordered = drops;
                ordered.extend(sql::order(rest)?);
                ordered
            }
            _ => sql::order(statements)?,
        };
        for statement in &mut statements {
            if let Ok(relative) = statement.file.strip_prefix(dir) {
                statement.file = relative.to_path_buf();
            }
        }
        phases.push(PhasePlan {
            phase,
            statements,
            files,
        });
    }
    Ok(phases)
}

/// Which of the plan's schemas exist in the database already.
pub fn existing_schemas(client: &mut impl GenericClient, plan: &Plan) -> Result<BTreeSet<String>> {
    let names: Vec<String> = plan.schemas().map(str::to_string).collect();
    let rows = client
        .query(
            "SELECT nspname::text FROM pg_catalog.pg_namespace WHERE nspname = ANY($1)",
            &[&names],
        )
        .map_err(Error::db("cannot read the existing schemas"))?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// A statement in a few words: `create type invoice_line`, or its first
/// line when it defines nothing.
pub fn summary(statement: &Statement) -> String {
    if let (StatementKind::Create(kind), Some(name)) = (statement.kind, statement.defines.first()) {
        return format!("create {kind} {name}");
    }
    let line = statement.sql.lines().next().unwrap_or("").trim();
    const MAX: usize = 72;
    if line.chars().count() > MAX {
        let cut: String = line.chars().take(MAX - 3).collect();
        format!("{cut}...")
    } else {
        line.to_string()
    }
}

fn kind_name(kind: StatementKind) -> String {
    match kind {
        StatementKind::Create(k) => format!("create {k}"),
        StatementKind::Drop(k) => format!("drop {k}"),
        StatementKind::Other => "other".to_string(),
    }
}

impl Plan {
    /// The plan for people: package order, schemas, dependencies and each
    /// phase's statements with `file:line` relative to the package folder.
    /// With `existing` (the schemas found in the database), says for each
    /// package whether its schema exists already.
    pub fn render(&self, existing: Option<&BTreeSet<String>>) -> String {
        let mut out = String::new();
        let n = self.packages.len();
        let _ = writeln!(
            out,
            "{n} package{} in {}, in deploy order:",
            if n == 1 { "" } else { "s" },
            self.root.display()
        );
        for (i, p) in self.packages.iter().enumerate() {
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
            for phase in &p.phases {
                let _ = writeln!(out, "   {}:", phase.phase);
                let width = phase
                    .statements
                    .iter()
                    .map(|s| location(s).len())
                    .max()
                    .unwrap_or(0);
                for s in &phase.statements {
                    let _ = writeln!(out, "     {:width$}  {}", location(s), summary(s));
                }
                if phase.statements.is_empty() {
                    let _ = writeln!(out, "     (no statements)");
                }
            }
        }
        out
    }

    /// The same as [`Plan::render`], as JSON for tools.
    pub fn to_json(&self, existing: Option<&BTreeSet<String>>) -> Value {
        serde_json::to_value(self.json_view(existing)).expect("a plan serialises")
    }

    /// A serialisable view of the plan that borrows from it, for writing
    /// large plans as JSON without building a [`Value`] tree first.
    pub fn json_view<'a>(&'a self, existing: Option<&'a BTreeSet<String>>) -> impl Serialize + 'a {
        PlanJson {
            root: self.root.display().to_string(),
            packages: self
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
            sql: &'a str,
        }
        let phase = self.0;
        let mut map = serializer.serialize_map(Some(3))?;
        map.serialize_entry("phase", phase.phase.name())?;
        let files: Vec<File<'_>> = phase
            .files
            .iter()
            .map(|f| File {
                path: workspace::slash_path(&f.path),
                checksum: &f.checksum,
            })
            .collect();
        map.serialize_entry("files", &files)?;
        let statements: Vec<Stmt<'_>> = phase
            .statements
            .iter()
            .map(|s| Stmt {
                file: workspace::slash_path(&s.file),
                line: s.line,
                column: s.column,
                kind: kind_name(s.kind),
                defines: s.defines.iter().map(ToString::to_string).collect(),
                sql: &s.sql,
            })
            .collect();
        map.serialize_entry("statements", &statements)?;
        map.end()
    }
}

/// `file:line`, with `/` separators.
fn location(s: &Statement) -> String {
    format!("{}:{}", workspace::slash_path(&s.file), s.line)
}
