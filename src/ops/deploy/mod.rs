//! `pgpm deploy`: a plan's packages into their schemas, by mode, with their
//! grants, ownership and catalog rows, all in one transaction under pgpm's
//! lock.
//!
//! Deploying has two halves. [`prepare`] reads the database (inside the
//! deploy's transaction, under the lock) and turns a [`Plan`] into a
//! [`Script`]: the exact list of actions that will run. `db::script::execute`
//! runs them. `--dry-run` prints the same script instead and rolls back, so
//! what is printed is what runs.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use postgres::{Client, GenericClient};

use crate::catalog::read::{self, TargetState};
use crate::catalog::write::{self, DeploymentRecord};
use crate::catalog::{self, CatalogError};
use crate::db::blockers::{BlockerWatch, LockWaitError, ObjectLocks};
use crate::db::conninfo::ConnInfo;
use crate::db::lock::{DEFAULT_TIMEOUT, LockError, Locked};
use crate::db::marks;
use crate::db::script::{self, Action, Script, ScriptError};
use crate::db::{self, QueryError};
use crate::event::Event;
use crate::package::workspace::Workspace;
use crate::plan::{self, PackagePlan, Parsing, Plan, PlanError};

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
    /// Deploy changed content as a new revision in a schema of its own
    /// (`<schema>_r<N>`) beside the current one, which stays as it is:
    /// sessions on it keep it, new selections get the new one.
    Revision,
}

impl Mode {
    pub const ALL: [Mode; 5] = [
        Mode::Safe,
        Mode::Moderate,
        Mode::Unsafe,
        Mode::Overwrite,
        Mode::Revision,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Safe => "safe",
            Mode::Moderate => "moderate",
            Mode::Unsafe => "unsafe",
            Mode::Overwrite => "overwrite",
            Mode::Revision => "revision",
        }
    }
}

impl std::str::FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Mode, String> {
        Mode::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown mode \"{s}\" (expected safe, moderate, unsafe, overwrite or revision)"
                )
            })
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Plans shared between deploys of one workspace to many databases (a
/// fleet run): planning is pure, so databases that have the same packages
/// deployed get the same plan, and the workspace's SQL is parsed once
/// rather than once per database.
#[derive(Debug, Default)]
pub struct PlanCache {
    plans: std::sync::Mutex<Vec<(PlanKey, Plan)>>,
}

/// What a plan depends on besides the workspace: what is deployed, and per
/// package, its schema and whether it is parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PlanKey {
    deployed: Vec<crate::package::resolve::Deployed>,
    packages: Vec<(Option<String>, bool)>,
}

impl PlanCache {
    fn get(&self, key: &PlanKey) -> Option<Plan> {
        let plans = self.plans.lock().unwrap_or_else(|e| e.into_inner());
        plans.iter().find(|(k, _)| k == key).map(|(_, p)| p.clone())
    }

    fn put(&self, key: PlanKey, plan: &Plan) {
        let mut plans = self.plans.lock().unwrap_or_else(|e| e.into_inner());
        // A handful of distinct states is the rule; keep memory bounded.
        if plans.len() >= 8 {
            plans.remove(0);
        }
        plans.push((key, plan.clone()));
    }
}

/// Options of `pgpm deploy`.
#[derive(Debug, Clone)]
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
    /// Prepare the script and roll back: change nothing.
    pub dry_run: bool,
    /// Deploy into package schemas that exist but that pgpm did not create
    /// (no catalog row): `--mode` then decides as for pgpm's own.
    pub adopt: bool,
    pub vcs_ref: Option<String>,
    /// Without `vcs_ref`, record the git commit checked out in this folder,
    /// read only when there is something to deploy.
    pub vcs_from: Option<PathBuf>,
    pub vcs_link: Option<String>,
    pub issue_ref: Option<String>,
    pub issue_link: Option<String>,
    pub lock_timeout: Duration,
    /// How long each statement may wait for a lock, and how often to retry.
    pub object_locks: ObjectLocks,
    /// Plans to share with other deploys of the same workspace.
    pub plans: Option<std::sync::Arc<PlanCache>>,
}

impl Default for DeployOptions {
    fn default() -> DeployOptions {
        DeployOptions {
            mode: Mode::Safe,
            owner: None,
            usage: Vec::new(),
            files: Vec::new(),
            force: false,
            dry_run: false,
            adopt: false,
            vcs_ref: None,
            vcs_from: None,
            vcs_link: None,
            issue_ref: None,
            issue_link: None,
            lock_timeout: DEFAULT_TIMEOUT,
            object_locks: ObjectLocks::default(),
            plans: None,
        }
    }
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
    #[error(
        "{package}: table script {} changed since it was applied to schema {schema} at {applied_at}; table changes go through patches (or redeploy with --mode unsafe)",
        file.display()
    )]
    TableScriptChanged {
        package: String,
        schema: String,
        file: PathBuf,
        applied_at: String,
    },
    #[error("{package}: schema {schema} does not exist, so files cannot be redeployed into it")]
    SchemaMissing { package: String, schema: String },
    #[error(
        "-f {}: no such file (looked for it from the current directory and inside each package)",
        path.display()
    )]
    FileMissing { path: PathBuf },
    #[error("{} is not a SQL file of any package being deployed", path.display())]
    FileNotInPackage { path: PathBuf },
    #[error("role {role} does not exist")]
    UnknownRole { role: String },
    #[error(
        "the deploy ran as {from} but ended as {to}: a statement of a package changed the role (set_config('role', ...), SET ROLE in a function); nothing was committed"
    )]
    RoleChanged { from: String, to: String },
    #[error(
        "cannot give the package's objects to role {role}: the deploying role is not a member of it (GRANT {role} TO the deployer, or deploy as a member)"
    )]
    NotOwnerMember { role: String },
    #[error(
        "{package} would deploy into schema {schema}, which belongs to PostgreSQL or every database, not to a package: rename the package"
    )]
    ReservedSchema { package: String, schema: String },
    #[error(
        "schema {schema} of {package} exists, but pgpm did not create it (the catalog has no package there); nothing was changed (use --adopt to deploy into it, with --mode deciding what happens to it)"
    )]
    ForeignSchema { package: String, schema: String },
    #[error(
        "{}:{line}:{column}: a BEGIN ATOMIC or RETURN body needs PostgreSQL 14 or newer, and this server is PostgreSQL {server}: write the body as a string (AS $$ ... $$) or deploy to a newer server",
        file.display()
    )]
    ServerTooOld {
        file: PathBuf,
        line: usize,
        column: usize,
        server: String,
    },
    /// An extension of the manifest's `extensions` cannot be had.
    #[error("{}: {message}", manifest.display())]
    Extension { manifest: PathBuf, message: String },
    #[error(
        "{}: \"settings\": the server has no setting \"{name}\" (see pg_settings; custom settings are named prefix.name)",
        manifest.display()
    )]
    UnknownSetting { manifest: PathBuf, name: String },
    /// A moderate rename could not repoint a routine of another owner.
    #[error(
        "renaming schema {schema} (--mode moderate) must repoint the pinned search_path of {routine}, which belongs to {owner}, and the deploying role is not a member of {owner}: nothing was changed (deploy as a member of {owner}, or use --mode revision, which renames nothing)"
    )]
    RepointNotOwner {
        schema: String,
        routine: String,
        owner: String,
    },
    /// A statement waited longer than the object lock timeout on every
    /// attempt.
    #[error(transparent)]
    ObjectLocks(LockWaitError),
    #[error(
        "a schema of the deploy was created, dropped or renamed by someone else while the deploy waited to run again; nothing was changed: run the deploy again"
    )]
    ChangedWhileWaiting,
    #[error("cannot read {}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error(transparent)]
    Script(#[from] ScriptError),
}

impl From<QueryError> for DeployError {
    fn from(e: QueryError) -> DeployError {
        DeployError::Catalog(e.into())
    }
}

impl From<LockError> for DeployError {
    fn from(e: LockError) -> DeployError {
        DeployError::Catalog(e.into())
    }
}

impl DeployError {
    pub fn is_user_error(&self) -> bool {
        match self {
            DeployError::Io { .. } => false,
            DeployError::Catalog(e) => e.is_user_error(),
            DeployError::Script(e) => e.is_user_error(),
            _ => true,
        }
    }
}

type Result<T, E = DeployError> = std::result::Result<T, E>;

/// What happened to a package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutcomeKind {
    /// Its schema was created (it did not exist, or was dropped or renamed first).
    Created,
    /// The existing schema was renamed to the old revision `to` first.
    Renamed { to: String },
    /// A new revision went into a schema of its own beside `previous`,
    /// the current one until now, which is left as it is.
    Revised { previous: String },
    /// The existing schema was dropped first (with what its cascade reached).
    Dropped,
    /// Its scripts ran into the existing schema.
    Overwritten,
    /// Only the `-f` files ran into the existing schema.
    Files,
    /// Its content is deployed already: nothing ran.
    UpToDate,
}

/// What a deploy did (or, in a dry run, would do) to one package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageOutcome {
    pub name: String,
    pub version: String,
    /// `None` for a `scope: database` package.
    pub schema: Option<String>,
    pub kind: OutcomeKind,
}

impl PackageOutcome {
    /// `name version`.
    pub fn label(&self) -> String {
        format!("{} {}", self.name, self.version)
    }
}

/// What a deploy reports when done.
#[derive(Debug, Clone)]
pub struct DeployReport {
    /// The exact script that ran (or, in a dry run, would run).
    pub script: Script,
    /// Per package of the workspace, in plan order.
    pub outcomes: Vec<PackageOutcome>,
    /// Warnings for the user (what a cascade removes, ...).
    pub warnings: Vec<String>,
    /// What planning changed in the deployed packages' files and says so.
    pub notes: Vec<String>,
    /// The extensions this deploy creates, with the version each gets, in
    /// the order created.
    pub extensions_created: Vec<(String, String)>,
    pub dry_run: bool,
}

/// Deploys a loaded workspace: lock, one transaction, catalog rows. With
/// `opts.dry_run`, everything is read and planned, nothing is changed.
/// `on` hears each package's section as it starts to run.
///
/// Every statement runs under `opts.object_locks.timeout` as its
/// `lock_timeout`. When one waits longer, the transaction is rolled back
/// (so clients queued behind it go on) and run again after a pause, up to
/// `opts.object_locks.retries` times; then the deploy fails, naming the
/// sessions that held the lock as seen from `probe`, a second connection
/// to the same database (none: the blockers go unnamed).
pub fn deploy(
    client: &mut Client,
    probe: Option<&ConnInfo>,
    workspace: Workspace,
    opts: &DeployOptions,
    on: &mut dyn FnMut(Event<'_>),
) -> Result<DeployReport> {
    let mut locked = Locked::acquire(client, opts.lock_timeout)?;
    let mut tx = catalog::begin_change(&mut locked)?;
    let deployed = read::deployed(&mut tx)?;
    let mut workspace = workspace;
    let targets = read::target_states(&mut tx, workspace.packages.iter().map(|p| &p.manifest))?;
    // Packages whose content is deployed already are not parsed: parsing is
    // most of what an unchanged workspace would otherwise cost, and
    // prepare() reports them as up to date without looking at their SQL.
    let skip = !opts.force && opts.files.is_empty();
    let parse = |p: &crate::package::workspace::Package| {
        !skip
            || !targets
                .get(&p.manifest.manifest_path)
                .is_some_and(|t| t.holds(&p.manifest, &p.checksum))
    };
    // As read, before a revision's schema is chosen: what a retry checks.
    let manifests: Vec<crate::package::manifest::Manifest> = workspace
        .packages
        .iter()
        .map(|p| p.manifest.clone())
        .collect();
    for package in &mut workspace.packages {
        let Some(target) = targets.get(&package.manifest.manifest_path) else {
            continue;
        };
        let changed = parse(package);
        let schema = match (&target.schema, package.manifest.schema()) {
            (Some(_), Some(own))
                if opts.mode == Mode::Revision
                    && opts.files.is_empty()
                    && target.exists
                    && changed =>
            {
                read::new_revision_schema(&mut tx, own)?
            }
            (Some(current), _) => current.clone(),
            (None, _) => continue,
        };
        package.manifest.deploy_into(schema);
    }
    let plan = match &opts.plans {
        Some(cache) => {
            let key = PlanKey {
                deployed: deployed.clone(),
                packages: workspace
                    .packages
                    .iter()
                    .map(|p| (p.manifest.schema().map(str::to_string), parse(p)))
                    .collect(),
            };
            match cache.get(&key) {
                Some(plan) => plan,
                None => {
                    let plan = plan::build(workspace, &deployed, parse)?;
                    cache.put(key, &plan);
                    plan
                }
            }
        }
        None => plan::build(workspace, &deployed, parse)?,
    };
    let report = prepare(&mut tx, &plan, &targets, opts)?;
    if opts.dry_run || report.script.is_empty() {
        tx.rollback()
            .map_err(QueryError::with("cannot roll back"))?;
        return Ok(report);
    }
    let mut attempt = 0;
    loop {
        let watch = probe.and_then(|info| BlockerWatch::start(info, &mut tx));
        let waited = match run(tx, &report.script, on) {
            Err(DeployError::Script(e)) => match e.lock_timed_out() {
                Some(waiting) => waiting,
                None => return Err(DeployError::Script(e)),
            },
            done => return done.map(|()| report),
        };
        if let Some(e) = opts
            .object_locks
            .after_timeout(&mut attempt, waited, watch, on)
        {
            return Err(DeployError::ObjectLocks(e));
        }
        tx = catalog::begin_change(&mut locked)?;
        // Nothing pgpm manages can change meanwhile (the lock is held), but
        // schemas can be dropped by hand: the script must still be true.
        let now = read::target_states(&mut tx, &manifests)?;
        if read::deployed(&mut tx)? != deployed || !same_targets(&now, &targets) {
            return Err(DeployError::ChangedWhileWaiting);
        }
    }
}

/// Whether the targets read again hold what they held: the same schemas
/// existing, with the same packages.
fn same_targets(
    now: &HashMap<PathBuf, TargetState>,
    before: &HashMap<PathBuf, TargetState>,
) -> bool {
    now.iter().all(|(path, state)| {
        before
            .get(path)
            .is_none_or(|b| b.exists == state.exists && b.package == state.package)
    })
}

/// Runs the script in `tx` and commits, unless a check fails.
fn run(
    mut tx: postgres::Transaction<'_>,
    script: &Script,
    on: &mut dyn FnMut(Event<'_>),
) -> Result<()> {
    let before = read::roles_now(&mut tx)?;
    script::execute(&mut tx, script, on)?;
    // Planning refuses SET ROLE in files, but a function can still call
    // set_config('role', ...): whatever changed who runs the deploy, it
    // does not commit.
    let after = read::roles_now(&mut tx)?;
    if after != before {
        return Err(DeployError::RoleChanged {
            from: before.0,
            to: after.0,
        });
    }
    if db::connect::interrupted() {
        return Err(ScriptError::Interrupted.into());
    }
    tx.commit()
        .map_err(QueryError::with("cannot commit the deploy"))?;
    Ok(())
}

/// Builds the script for `plan` against the database as it is now, given
/// the state of every package's target (by manifest path).
///
/// Must run inside the deploy's transaction, under the lock, so that what it
/// reads stays true until the script runs. Refusals are decided for every
/// package before anything is written, so they change nothing.
fn prepare(
    client: &mut impl GenericClient,
    plan: &Plan,
    targets: &HashMap<PathBuf, TargetState>,
    opts: &DeployOptions,
) -> Result<DeployReport> {
    let mut report = DeployReport {
        script: Script::default(),
        outcomes: Vec::new(),
        warnings: Vec::new(),
        notes: Vec::new(),
        extensions_created: Vec::new(),
        dry_run: opts.dry_run,
    };
    check_roles(client, plan, opts)?;
    let only_files = resolve_files(plan, &opts.files)?;
    let absent = TargetState {
        schema: None,
        exists: false,
        package: None,
    };

    report.warnings.extend(not_sql_warnings(plan));
    let mut work = Vec::new();
    // Packages a mode other than safe leaves alone because their content
    // is deployed already: the user asked for a redeploy, so say so.
    let mut unchanged: Vec<String> = Vec::new();
    for pkg in &plan.packages {
        let label = pkg.label();
        let target = targets.get(&pkg.manifest.manifest_path).unwrap_or(&absent);
        let up_to_date = pkg.parsing == Parsing::Skipped
            || (only_files.is_none() && !opts.force && target.holds(&pkg.manifest, &pkg.checksum));
        if up_to_date {
            if opts.mode != Mode::Safe && only_files.is_none() && !opts.force {
                unchanged.push(label);
            }
            report.outcomes.push(outcome(pkg, OutcomeKind::UpToDate));
            continue;
        }
        if let Some(schema) = &pkg.schema {
            if is_reserved_schema(schema) {
                return Err(DeployError::ReservedSchema {
                    package: label,
                    schema: schema.clone(),
                });
            }
            if target.exists && target.package.is_none() && !opts.adopt {
                return Err(DeployError::ForeignSchema {
                    package: label,
                    schema: schema.clone(),
                });
            }
        }
        if let Some(files) = &only_files {
            let Some(files) = files.get(&label) else {
                continue;
            };
            if let Some(schema) = &pkg.schema
                && !target.exists
            {
                return Err(DeployError::SchemaMissing {
                    package: label,
                    schema: schema.clone(),
                });
            }
            work.push((pkg, target, Some(files)));
            continue;
        }
        let refused = match opts.mode {
            Mode::Safe => true,
            // A database-scope package has no schema to put a revision in.
            Mode::Revision => pkg.schema.is_none(),
            _ => false,
        };
        if target.exists && refused {
            return Err(match &pkg.schema {
                Some(schema) => DeployError::SchemaExists {
                    package: label,
                    schema: schema.clone(),
                },
                None => DeployError::DatabaseScopeDeployed {
                    package: label,
                    deployed: target
                        .package
                        .as_ref()
                        .map(|p| format!("{} {}", p.name, p.version))
                        .unwrap_or_default(),
                },
            });
        }
        work.push((pkg, target, None));
    }
    if !unchanged.is_empty() {
        let (them, it) = if unchanged.len() == 1 {
            (unchanged[0].clone(), "it")
        } else if unchanged.len() <= 3 {
            (unchanged.join(", "), "them")
        } else {
            (
                format!(
                    "{}, {} and {} more",
                    unchanged[0],
                    unchanged[1],
                    unchanged.len() - 2
                ),
                "them",
            )
        };
        report.notes.push(format!(
            "{them}: deployed with this content already, so --mode {} leaves {it} alone; --force redeploys {it}",
            opts.mode
        ));
    }
    if work.is_empty() {
        return Ok(report);
    }
    let public = read::public_is_safe(client)?;
    let public_path = public == Some(true);
    check_server(
        &work.iter().map(|(p, ..)| *p).collect::<Vec<_>>(),
        read::server_version_num(client)?,
    )?;

    let runs_code = work.iter().any(|(pkg, ..)| {
        pkg.phases
            .iter()
            .flat_map(|p| &p.statements)
            .any(|s| s.runs_code())
    });
    let marked = runs_code && marks::available(client);
    let script = &mut report.script;
    script.push(Action::Note(
        "statements wait this long for a lock, then the deploy rolls back and runs again".into(),
    ));
    script.push(Action::Sql(opts.object_locks.set_local()));
    if marked {
        script.push(Action::Note(
            "progress marks, to locate a failing statement without running it again".into(),
        ));
        script.push(Action::Sql(marks::CREATE.into()));
    }
    script.push(Action::Note("record the deployment".into()));
    script.push(write::open_deployment(&DeploymentRecord {
        mode: opts.mode.as_str().into(),
        vcs_ref: opts
            .vcs_ref
            .clone()
            .or_else(|| opts.vcs_from.as_deref().and_then(super::git_head)),
        vcs_link: opts.vcs_link.clone(),
        issue_ref: opts.issue_ref.clone(),
        issue_link: opts.issue_link.clone(),
    }));
    for (pkg, target, files) in work {
        let kind = prepare_package(
            client,
            pkg,
            target,
            files,
            opts,
            Paths {
                public: public_path,
                marked,
            },
            &mut report,
        )?;
        report.outcomes.push(outcome(pkg, kind));
        report.notes.extend(pkg.notes.iter().cloned());
    }
    if public == Some(false) {
        report.warnings.push(
            "schema public is writable by roles other than its owner (CREATE granted to PUBLIC or to a role): it is left out of the search_path the packages deploy with, so that no other role's objects can stand in for theirs; name objects in public as public.name, or REVOKE CREATE ON SCHEMA public FROM PUBLIC (and from other roles)".into(),
        );
    }
    report
        .script
        .push(Action::Note("close the deployment record".into()));
    report.script.push(write::close_deployment());
    Ok(report)
}

fn outcome(pkg: &PackagePlan, kind: OutcomeKind) -> PackageOutcome {
    PackageOutcome {
        name: pkg.manifest.name.clone(),
        version: pkg.manifest.version.to_string(),
        schema: pkg.schema.clone(),
        kind,
    }
}

/// What a plan leaves out, as warnings: files that are not `*.sql`, named
/// as found on disk, and what reading the manifests ignored.
pub fn not_sql_warnings(plan: &Plan) -> Vec<String> {
    plan.packages
        .iter()
        .flat_map(|pkg| pkg.manifest.warnings.iter().cloned())
        .chain(plan.packages.iter().flat_map(|pkg| {
            pkg.not_sql.iter().map(move |file| {
                format!(
                    "{}: {} is not deployed: only *.sql files are (rename it to end in .sql, or move it out of the package's folders)",
                    pkg.label(),
                    pkg.manifest.dir.join(file).display()
                )
            })
        }))
        .collect()
}

/// Refuses what the server cannot run, before anything runs: routines with
/// SQL-standard bodies on PostgreSQL 13.
pub fn check_server(packages: &[&PackagePlan], server_version_num: i32) -> Result<()> {
    if server_version_num >= 140000 {
        return Ok(());
    }
    for pkg in packages {
        let found = pkg
            .phases
            .iter()
            .flat_map(|p| &p.statements)
            .find(|s| s.standard_body);
        if let Some(s) = found {
            return Err(DeployError::ServerTooOld {
                file: pkg.manifest.dir.join(&s.file),
                line: s.line,
                column: s.column,
                server: format!(
                    "{}.{}",
                    server_version_num / 10000,
                    server_version_num % 10000
                ),
            });
        }
    }
    Ok(())
}

mod actions;

use actions::{Paths, prepare_package};

/// Schemas no package may deploy into: PostgreSQL's own and `public`.
fn is_reserved_schema(schema: &str) -> bool {
    schema == "public" || schema == "information_schema" || schema.starts_with("pg_")
}

/// Every role the deploy grants to or gives ownership to must exist, and
/// the deploying role must be a member of every owner (or `ALTER ... OWNER`
/// fails late, after the packages' SQL ran).
fn check_roles(client: &mut impl GenericClient, plan: &Plan, opts: &DeployOptions) -> Result<()> {
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
    let roles: Vec<&str> = roles.into_iter().collect();
    if let Some(role) = read::missing_roles(client, &roles)?.into_iter().next() {
        return Err(DeployError::UnknownRole { role });
    }
    let owners: BTreeSet<&str> = opts
        .owner
        .iter()
        .chain(
            plan.packages
                .iter()
                .flat_map(|p| p.manifest.owner_role.iter()),
        )
        .map(String::as_str)
        .collect();
    let owners: Vec<&str> = owners.into_iter().collect();
    match read::roles_not_held(client, &owners)?.into_iter().next() {
        Some(role) => Err(DeployError::NotOwnerMember { role }),
        None => Ok(()),
    }
}

/// Maps `-f FILE` arguments to the packages (by label) and package-relative
/// paths they belong to.
fn resolve_files(
    plan: &Plan,
    files: &[PathBuf],
) -> Result<Option<BTreeMap<String, BTreeSet<PathBuf>>>> {
    if files.is_empty() {
        return Ok(None);
    }
    let mut out: BTreeMap<String, BTreeSet<PathBuf>> = BTreeMap::new();
    for file in files {
        // As given (from the current directory), else inside a package.
        let found = std::iter::once(file.clone())
            .chain(
                file.is_relative()
                    .then(|| plan.packages.iter().map(|p| p.manifest.dir.join(file)))
                    .into_iter()
                    .flatten(),
            )
            .find_map(|candidate| candidate.canonicalize().ok());
        let Some(abs) = found else {
            return Err(DeployError::FileMissing { path: file.clone() });
        };
        let owner = plan.packages.iter().find_map(|pkg| {
            let dir = pkg.manifest.dir.canonicalize().ok()?;
            let rel = abs.strip_prefix(&dir).ok()?.to_path_buf();
            let known = pkg
                .phases
                .iter()
                .any(|ph| ph.statements.iter().any(|s| s.file == rel));
            known.then(|| (pkg.label(), rel))
        });
        let (pkg, rel) =
            owner.ok_or_else(|| DeployError::FileNotInPackage { path: file.clone() })?;
        out.entry(pkg).or_default().insert(rel);
    }
    Ok(Some(out))
}
