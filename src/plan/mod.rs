//! The plan: packages and catalog state in, ordered packages out.
//!
//! Planning is pure. It takes a loaded [`Workspace`] and the versions
//! already deployed (plain data, read by `catalog::read::deployed`),
//! parses every SQL file, orders the statements of each phase and the
//! packages, and returns a value that deploy turns into a script and
//! `pgpm plan` prints. Nothing here touches a database.
//!
//! Within a package every statement of every phase is ordered in one
//! graph ([`sql::order_tagged`]): the input is in [`Phase`] order, and a
//! statement moves later only when it uses what comes later (a table's
//! `DEFAULT` calling a function of the package, a domain over a table's
//! row type, a SQL function returning a view's rows), so the phase order
//! is the tie-breaker, not a wall. The result is a list of runs
//! ([`PhasePlan`]): the consecutive statements of one phase. Table scripts
//! run once per package and file and are recorded per file, so their
//! statements keep their files' order (natural path order) and each file's
//! own order; `DROP` statements in type files come first, as the ancestor
//! ran them, so a type script can drop an old definition and recreate it.

use std::collections::HashMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::package::manifest::{Manifest, Phase, Scope, Subclass};
use crate::package::resolve::{self, Deployed, ResolveError, ResolvedDependency};
use crate::package::workspace::{Package, SourceFile, Workspace};
use crate::sql::{self, Placeholders, SessionControl, SqlError, Statement, StatementKind};
use crate::util::parallel_map;

/// Why a workspace cannot be planned; all are the user's to fix.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error(transparent)]
    Sql(#[from] SqlError),
    #[error(transparent)]
    Resolve(#[from] ResolveError),
    /// An event trigger in a versioned package: its name is the database's,
    /// so two versions could not be deployed side by side.
    #[error(
        "{}:{line}:{column}: event triggers are database-wide, so versions of {package} could not be deployed side by side with one: put it in a package with subclass basic or scope database",
        file.display()
    )]
    EventTrigger {
        file: PathBuf,
        line: usize,
        column: usize,
        package: String,
    },
    /// A package file changes the `search_path` its statements run with.
    #[error(
        "{}:{line}:{column}: {statement}: a package file may not change search_path: pgpm runs every statement with the package's schema first (and its dependencies'), so that objects are created there; remove it, and name other schemas explicitly (or with placeholders such as @core@)",
        file.display()
    )]
    SearchPath {
        file: PathBuf,
        line: usize,
        column: usize,
        statement: String,
    },
    /// A package file holds a statement that cannot run in a transaction.
    #[error(
        "{}:{line}:{column}: {command} cannot run inside a transaction, and a deploy is one: put it in a concurrent patch (patch-MAJOR-MINOR-POINT-concurrent.sql), which migrate runs outside one",
        file.display()
    )]
    OutsideTransaction {
        file: PathBuf,
        line: usize,
        column: usize,
        command: &'static str,
    },
    /// A package file would act on the session that runs the deploy.
    #[error(
        "{}:{line}:{column}: {statement}: {}",
        file.display(),
        session_control_hint(*control)
    )]
    SessionControl {
        file: PathBuf,
        line: usize,
        column: usize,
        statement: String,
        control: SessionControl,
    },
}

fn session_control_hint(control: SessionControl) -> &'static str {
    match control {
        SessionControl::Transaction => {
            "transaction control in a package file: pgpm deploys every package in one transaction of its own and records the deploy in it; remove the statement (a file wrapped as a whole in one BEGIN ... COMMIT is accepted, its wrapper dropped)"
        }
        SessionControl::Savepoint => {
            "savepoints in a package file: pgpm runs each batch of statements under a savepoint of its own; remove the statement"
        }
        SessionControl::Role => {
            "a change of role in a package file would change who runs the rest of the deploy: remove it; give the package's objects an owner with owner_role in the manifest or --owner"
        }
    }
}

type Result<T, E = PlanError> = std::result::Result<T, E>;

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
    /// The runs in the order they run: each the consecutive statements of
    /// one phase, usually one run per phase with files, in [`Phase`] order;
    /// a phase has several when some of its statements wait for a later
    /// phase's. Empty when the package was left unparsed (see `parsing`).
    pub phases: Vec<PhasePlan>,
    /// Whether the package's SQL was parsed into `phases`.
    pub parsing: Parsing,
    /// What planning changed in the package's files and says so: a
    /// `BEGIN` ... `COMMIT` wrapper dropped from a file.
    pub notes: Vec<String>,
    /// Files of the package's folders that are not `*.sql` and so are not
    /// deployed, relative to the package directory.
    pub not_sql: Vec<PathBuf>,
    /// SHA-256 over the manifest and every SQL file; see [`Package::checksum`].
    pub checksum: String,
}

/// Whether a package's SQL was parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parsing {
    Parsed,
    /// Left out because the caller did not select it: a deploy leaves out
    /// the packages deployed already with the same content.
    Skipped,
}

/// A run: consecutive statements of one phase of a package, in the order
/// they run.
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
#[derive(Debug, Clone)]
pub struct TableScript<'a> {
    /// Relative to the package directory.
    pub path: &'a Path,
    pub checksum: &'a str,
    /// Its statements in the order they run (in one run of the tables
    /// phase, or in several when some wait for a later phase).
    pub statements: Vec<&'a Statement>,
}

impl Plan {
    /// Every schema the plan deploys into, in plan order.
    pub fn schemas(&self) -> impl Iterator<Item = &str> {
        self.packages.iter().filter_map(|p| p.schema.as_deref())
    }
}

impl PackagePlan {
    /// The first run of a phase, if the package has files in it.
    pub fn phase(&self, phase: Phase) -> Option<&PhasePlan> {
        self.phases.iter().find(|p| p.phase == phase)
    }

    /// The table scripts in file order, each once.
    pub fn table_scripts(&self) -> impl Iterator<Item = TableScript<'_>> {
        let mut seen = std::collections::HashSet::new();
        self.phases
            .iter()
            .filter(|run| run.phase == Phase::Tables)
            .flat_map(|run| run.files.iter())
            .filter(move |file| seen.insert(file.path.as_path()))
            .map(|file| TableScript {
                path: &file.path,
                checksum: &file.checksum,
                statements: self
                    .phases
                    .iter()
                    .filter(|run| run.phase == Phase::Tables)
                    .flat_map(|run| &run.statements)
                    .filter(|s| s.file == file.path)
                    .collect(),
            })
    }

    /// Every statement in the order it runs (the runs concatenated): what
    /// [`Statement::waits_for`] counts in.
    pub fn statements(&self) -> impl Iterator<Item = &Statement> {
        self.phases.iter().flat_map(|run| &run.statements)
    }

    /// `name version`.
    pub fn label(&self) -> String {
        self.manifest.label()
    }
}

/// Plans a loaded workspace, parsing the SQL of only the packages `parse`
/// selects (`|_| true` for all); the others are resolved and ordered like
/// the rest but keep no phases and [`Parsing::Skipped`]. Parsing is most of
/// what planning costs, so a deploy leaves out the packages whose content
/// is deployed already. Dependencies are resolved against the workspace
/// and `deployed` first, since placeholders (`@schema@`, `@name@`; see
/// [`sql::substitute`]) stand for the schemas resolution picks, then SQL
/// errors (placeholders, syntax, cycles) are found.
pub fn build(
    workspace: Workspace,
    deployed: &[Deployed],
    parse: impl Fn(&Package) -> bool + Sync,
) -> Result<Plan> {
    let manifests: Vec<Manifest> = workspace
        .packages
        .iter()
        .map(|p| p.manifest.clone())
        .collect();
    let resolution = resolve::resolve(&manifests, deployed)?;
    let placeholders: Vec<Placeholders> = manifests
        .iter()
        .zip(&resolution.dependencies)
        .map(|(manifest, dependencies)| Placeholders {
            package: manifest.name.clone(),
            schema: manifest.schema().map(str::to_string),
            dependencies: dependencies
                .iter()
                .map(|d| (d.name.clone(), d.schema.clone()))
                .collect(),
        })
        .collect();
    let phases = parse_all(&workspace.packages, &placeholders, &parse)?;
    let mut slots: Vec<Option<(Package, Option<PackageSql>)>> = workspace
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
            let (package, sql) = slots[i].take().expect("each package once");
            let (phases, notes) = match sql {
                Some(sql) => (Some(sql.phases), sql.notes),
                None => (None, Vec::new()),
            };
            PackagePlan {
                notes,
                not_sql: package.not_sql,
                schema: package.manifest.schema().map(str::to_string),
                manifest: package.manifest,
                dependencies: dependencies[i].take().unwrap_or_default(),
                parsing: if phases.is_some() {
                    Parsing::Parsed
                } else {
                    Parsing::Skipped
                },
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
    placeholders: &[Placeholders],
    parse: &(impl Fn(&Package) -> bool + Sync),
) -> Result<Vec<Option<PackageSql>>> {
    let selected: Vec<bool> = packages.iter().map(parse).collect();
    let files: Vec<(&Package, &Placeholders, &SourceFile)> = packages
        .iter()
        .zip(placeholders)
        .zip(&selected)
        .filter(|(_, selected)| **selected)
        .flat_map(|((package, placeholders), _)| {
            package
                .files
                .iter()
                .map(move |file| (package, placeholders, file))
        })
        .collect();
    let mut parsed = parallel_map(&files, |(package, placeholders, file)| {
        let path = package.manifest.dir.join(&file.path);
        let text = sql::substitute(&path, &file.text, placeholders)?;
        sql::parse_file(&path, &text)
    })
    .into_iter();
    // Each package's parsed files, taken (once) by the thread that orders them.
    type Parsed = Vec<Option<std::result::Result<Vec<Statement>, SqlError>>>;
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
    parallel_map(&work, |(package, files)| {
        let files = files.lock().expect("not poisoned").take();
        files
            .map(|files| package_phases(package, files))
            .transpose()
    })
    .into_iter()
    .collect()
}

/// What parsing made of one package's files.
struct PackageSql {
    phases: Vec<PhasePlan>,
    notes: Vec<String>,
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
    mut parsed: Vec<Option<std::result::Result<Vec<Statement>, SqlError>>>,
) -> Result<PackageSql> {
    let dir = &package.manifest.dir;
    let mut notes = Vec::new();
    let mut statements: Vec<(Phase, Statement)> = Vec::new();
    let mut drops: Vec<(Phase, Statement)> = Vec::new();
    let mut files: Vec<(Phase, PathBuf, String)> = Vec::new();
    for phase in Phase::ALL {
        for (index, file) in package.files.iter().enumerate() {
            if file.phase != phase {
                continue;
            }
            let mut parsed = parsed[index].take().expect("each file once")?;
            if sql::is_transaction_wrapper(&parsed) {
                parsed.pop();
                parsed.remove(0);
                notes.push(format!(
                    "{}: its BEGIN ... COMMIT wrapper is left out: the whole deploy runs in one transaction",
                    dir.join(&file.path).display()
                ));
            }
            if package.manifest.subclass == Subclass::Versioned
                && package.manifest.scope == Scope::Schema
                && let Some(stmt) = parsed.iter().find(|s| s.is_event_trigger())
            {
                return Err(PlanError::EventTrigger {
                    file: stmt.file.clone(),
                    line: stmt.line,
                    column: stmt.column,
                    package: package.manifest.name.clone(),
                });
            }
            if let Some((stmt, command)) = parsed
                .iter()
                .find_map(|s| s.outside_transaction().map(|c| (s, c)))
            {
                return Err(PlanError::OutsideTransaction {
                    file: stmt.file.clone(),
                    line: stmt.line,
                    column: stmt.column,
                    command,
                });
            }
            if let Some(stmt) = parsed.iter().find(|s| s.session_control().is_some()) {
                return Err(PlanError::SessionControl {
                    file: stmt.file.clone(),
                    line: stmt.line,
                    column: stmt.column,
                    statement: stmt.excerpt(40),
                    control: stmt.session_control().expect("found"),
                });
            }
            let parsed = file_settings(parsed, &dir.join(&file.path), &mut notes)?;
            for statement in parsed {
                // A type file's DROPs come first, as the ancestor ran them.
                if phase == Phase::Types && matches!(statement.kind, StatementKind::Drop(_)) {
                    drops.push((phase, statement));
                } else {
                    statements.push((phase, statement));
                }
            }
            files.push((phase, file.path.clone(), file.checksum.clone()));
        }
    }
    // One graph over every phase: the input is in phase order, and a
    // statement moves later only when what it uses comes later (a table's
    // DEFAULT calling a function of the package). Table scripts keep
    // their file order.
    let mut input = drops;
    input.append(&mut statements);
    let ordered = sql::order_tagged(input, package.manifest.schema(), |phase| {
        *phase == Phase::Tables
    })?;
    Ok(PackageSql {
        phases: runs(ordered, &files, dir),
        notes,
    })
}

/// Scopes a file's `SET`s to the file: each is taken out of the statement
/// list and given to the statements after it in the file (in
/// [`Statement::settings`]), so that they, and no statement of another
/// file, run with it wherever ordering puts them. A `SET search_path` is
/// refused: pgpm gives every statement the package's own schema first,
/// and a file that changed it would create its objects elsewhere. A `SET`
/// that no statement follows is said in a note.
fn file_settings(
    parsed: Vec<Statement>,
    path: &Path,
    notes: &mut Vec<String>,
) -> Result<Vec<Statement>> {
    let mut current: Option<std::sync::Arc<Vec<Statement>>> = None;
    let mut out = Vec::with_capacity(parsed.len());
    let mut trailing: Option<usize> = None;
    for mut statement in parsed {
        match statement.setting() {
            Some(name) if name == "search_path" => {
                return Err(PlanError::SearchPath {
                    file: statement.file.clone(),
                    line: statement.line,
                    column: statement.column,
                    statement: statement.excerpt(60),
                });
            }
            Some(_) => {
                trailing.get_or_insert(statement.line);
                let mut scope = current.as_deref().cloned().unwrap_or_default();
                scope.push(statement);
                current = Some(std::sync::Arc::new(scope));
            }
            None => {
                trailing = None;
                statement.settings = current.clone();
                out.push(statement);
            }
        }
    }
    if let Some(line) = trailing {
        notes.push(format!(
            "{}:{line}: a SET at the end of the file changes nothing (a file's SETs apply to the statements after them in the same file); it is left out",
            path.display()
        ));
    }
    Ok(out)
}

/// The ordered statements as runs: each run the consecutive statements of
/// one phase, with the phase's files that have statements in it (a table
/// file with the range of its statements there). A file without
/// statements goes with the first run of its phase, a phase without
/// statements gets an empty run at the end, so every file is listed once
/// at least. Statement files become relative to the package directory.
fn runs(
    ordered: Vec<(Phase, Statement)>,
    files: &[(Phase, PathBuf, String)],
    dir: &Path,
) -> Vec<PhasePlan> {
    let mut runs: Vec<PhasePlan> = Vec::new();
    for (phase, mut statement) in ordered {
        if let Ok(relative) = statement.file.strip_prefix(dir) {
            statement.file = relative.to_path_buf();
        }
        match runs.last_mut() {
            Some(run) if run.phase == phase => run.statements.push(statement),
            _ => runs.push(PhasePlan {
                phase,
                statements: vec![statement],
                files: Vec::new(),
            }),
        }
    }
    // Per run, where each file's statements are: first and last index.
    let spans: Vec<HashMap<PathBuf, (usize, usize)>> = runs
        .iter()
        .map(|run| {
            let mut spans: HashMap<PathBuf, (usize, usize)> = HashMap::new();
            for (i, statement) in run.statements.iter().enumerate() {
                match spans.get_mut(statement.file.as_path()) {
                    Some(span) => span.1 = i,
                    None => {
                        spans.insert(statement.file.clone(), (i, i));
                    }
                }
            }
            spans
        })
        .collect();
    for (phase, path, checksum) in files {
        let mut listed = false;
        for (run, spans) in runs.iter_mut().zip(&spans) {
            let Some(&(first, last)) = spans.get(path).filter(|_| run.phase == *phase) else {
                continue;
            };
            listed = true;
            run.files.push(PackageFile {
                path: path.clone(),
                checksum: checksum.clone(),
                statements: (*phase == Phase::Tables).then_some(first..last + 1),
            });
        }
        if listed {
            continue;
        }
        let file = PackageFile {
            path: path.clone(),
            checksum: checksum.clone(),
            statements: (*phase == Phase::Tables).then_some(0..0),
        };
        match runs.iter_mut().find(|r| r.phase == *phase) {
            Some(run) => run.files.push(file),
            None => runs.push(PhasePlan {
                phase: *phase,
                statements: Vec::new(),
                files: vec![file],
            }),
        }
    }
    runs
}
