//! The command line: clap types, dispatch to the engine, and every line
//! of output. Only the binary's modules print.

mod args;
mod fleet;
pub mod interrupt;
mod render;
pub mod ui;

use std::ffi::OsString;
use std::io::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use pgpm::catalog::{self, InstallOptions, InstallOutcome, UninstallOutcome};
use pgpm::db::quote::quote_ident;
use pgpm::event::Event;
use pgpm::migrate::name::{PatchId, PatchType};
use pgpm::migrate::plan::Selection;
use pgpm::migrate::scan;
use pgpm::ops::deploy::{self, DeployOptions, DeployReport, OutcomeKind};
use pgpm::ops::migrate::{self, MigrateOptions};
use pgpm::ops::{remove, sandbox, status};
use pgpm::package::workspace::Workspace;
use pgpm::{Error, Result, plan};

use args::{LockArgs, ModeArg, Target, connect, positionals};
use fleet::{Out, Summary};
pub use render::error_chain;

/// The command's error on stderr and, with `--json`, as JSON on stdout
/// (a set's targets' errors are in its report already).
pub fn report_error(err: &Error) {
    let ui = ui::get();
    ui.done();
    ui.eprint(&error_chain(err));
    if ui.json && !matches!(err, Error::Fleet { .. }) {
        render::print_json(&render::error_json(err));
    }
}

/// pgpm: deploy PostgreSQL packages of types, functions, views and triggers
/// as versioned schemas side by side, and apply numbered patch migrations.
#[derive(Debug, Parser)]
#[command(name = "pgpm", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    global: ui::Global,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start (or reuse) a local PostgreSQL under .pgpm/sandbox with the
    /// workspace at PATH deployed, and print how to connect.
    Sandbox(SandboxArgs),
    /// Install pgpm's catalog schema `_pgpm` in a database, or upgrade it.
    Install(InstallArgs),
    /// Remove pgpm's catalog schema `_pgpm` from a database.
    Uninstall(UninstallArgs),
    /// Show what a deploy would do: the package order, each package's schema
    /// and, per phase, the ordered statements with their file:line.
    Plan(PlanArgs),
    /// Deploy the packages at PATH, each into its own schema, in one transaction.
    #[command(override_usage = "pgpm deploy [OPTIONS] [CONN] [PATH]")]
    Deploy(DeployArgs),
    /// Apply pending numbered patches (patch-MAJOR-MINOR-POINT-TYPE.sql),
    /// by default only the first group of adjacent patches of one type.
    #[command(override_usage = "pgpm migrate [OPTIONS] [CONN] [DIR]")]
    Migrate(MigrateArgs),
    /// Show the deployed packages, pending patches, catalog and server versions.
    Status(StatusArgs),
    /// Drop a deployed version's schema (or one old revision of it).
    #[command(override_usage = "pgpm remove [OPTIONS] [CONN] <PACKAGE> <VERSION>")]
    Remove(RemoveArgs),
    /// Remove the old revisions (left by moderate and revision redeploys)
    /// that have been old for a while and that nothing uses.
    Gc(GcArgs),
    /// Run a statement in autocommit, once or (--until-zero) again and again
    /// until its first column is 0: batch jobs that work through a backlog.
    Execute(ExecuteArgs),
    /// List the targets of pgpm.toml and ~/.pgpmconfig, or those a
    /// selection (--target, --env ...; the ancestor's `list set ENV
    /// PRODUCT`) names, with their connections (no passwords).
    Targets(TargetsArgs),
}

/// What the process should do after a run.
pub enum Exit {
    Success,
    /// A usage error or `--help` text clap rendered (it says `error:` itself).
    Clap(clap::Error),
    /// Done, with this exit code (`status --exit-code`).
    Code(u8),
}

/// Parses arguments and runs the command.
pub fn run<I, T>(args: I) -> Result<Exit>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let args = args::ancestor_spelling(args.into_iter().map(Into::into).collect());
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(err) => return Ok(Exit::Clap(err)),
    };
    ui::init(&cli.global)?;
    match cli.command {
        Command::Status(args) => return status(args),
        Command::Install(args) => install(args),
        Command::Uninstall(args) => uninstall(args),
        Command::Deploy(args) => deploy(args),
        Command::Remove(args) => remove(args),
        Command::Gc(args) => gc(args),
        Command::Targets(args) => targets(args),
        Command::Execute(args) => execute(args),
        Command::Sandbox(args) => sandbox(args),
        Command::Plan(args) => plan(args),
        Command::Migrate(args) => migrate(args),
    }?;
    Ok(Exit::Success)
}

/// A connection as the only positional (`install CONN`).
#[derive(Debug, Args)]
struct ConnArgs {
    #[command(flatten)]
    target: Target,
    /// The connection, as for -d/--db.
    #[arg(value_name = "CONN")]
    conn: Option<String>,
}

impl ConnArgs {
    fn conn(&self) -> Result<Option<String>> {
        let p = positionals(self.target.db.clone(), self.conn.iter().cloned().collect())?;
        if let Some(path) = p.path {
            return Err(Error::Usage(format!(
                "{} is not a connection string: write keyword=value pairs or a postgres:// URI",
                path.display()
            )));
        }
        Ok(p.conn)
    }
}

#[derive(Debug, Args)]
struct InstallArgs {
    #[command(flatten)]
    target: Target,
    /// A connection (as for -d/--db) and, with --adopt, the workspace whose
    /// packages are deployed there (their checksums are recorded, so that
    /// the next deploy of unchanged packages is a no-op).
    #[arg(value_names = ["CONN", "PATH"], num_args = 0..=2)]
    args: Vec<String>,
    /// Upgrade a catalog installed by an older pgpm.
    #[arg(long)]
    upgrade: bool,
    /// Take over a database the ancestor (Python pgpm 0.1.62) manages: keep
    /// its catalog as history in _pgpm_ancestor, install pgpm's, and
    /// register every package schema it deployed, in one transaction.
    #[arg(long)]
    adopt: bool,
    /// With --adopt: print the SQL that would run and change nothing.
    #[arg(long, requires = "adopt")]
    dry_run: bool,
    /// Log every DDL command into _pgpm.ddl_log (event triggers; needs a
    /// superuser), so that status tells changes made outside pgpm.
    #[arg(long, conflicts_with = "no_ddl_log")]
    ddl_log: bool,
    /// Turn the DDL log off (its entries stay).
    #[arg(long)]
    no_ddl_log: bool,
    /// Roles to grant read access to the catalog and EXECUTE on its functions.
    #[arg(long, value_name = "ROLE", num_args = 1..)]
    usage: Vec<String>,
    #[command(flatten)]
    lock: LockArgs,
}

fn install(args: InstallArgs) -> Result<()> {
    let p = positionals(args.target.db.clone(), args.args.clone())?;
    if args.adopt {
        return adopt(&args, p.conn.as_deref(), p.path.as_deref());
    }
    if let Some(path) = &p.path {
        return Err(Error::Usage(format!(
            "{} is not a connection string (a workspace is only taken with --adopt)",
            path.display()
        )));
    }
    let targets = args.target.resolve(p.conn.as_deref())?;
    let opts = InstallOptions {
        upgrade: args.upgrade,
        usage: args.usage.clone(),
        lock_timeout: args.lock.timeout(&args.target),
        ddl_log: match (args.ddl_log, args.no_ddl_log) {
            (true, _) => Some(true),
            (_, true) => Some(false),
            _ => None,
        },
    };
    fleet::run(&args.target, targets, None, |_, client, out| {
        let report = catalog::install(client, &opts)?;
        let (version, from) = match report.outcome {
            InstallOutcome::Installed { version } | InstallOutcome::Current { version } => {
                (version, None)
            }
            InstallOutcome::Upgraded { from, to } => (to, Some(from)),
        };
        let outcome = match report.outcome {
            InstallOutcome::Installed { version } => {
                out.line(format!("installed the pgpm catalog (version {version})"));
                "installed"
            }
            InstallOutcome::Upgraded { from, to } => {
                out.line(format!(
                    "upgraded the pgpm catalog from version {from} to {to}"
                ));
                "upgraded"
            }
            InstallOutcome::Current { version } => {
                out.line(format!(
                    "the pgpm catalog is already installed and current (version {version}); nothing to do"
                ));
                "current"
            }
        };
        for role in &report.granted {
            out.line(format!(
                "granted usage of the catalog to {}",
                quote_ident(role)
            ));
        }
        match opts.ddl_log {
            Some(true) => {
                out.line("the DDL log is on: every DDL command is recorded in _pgpm.ddl_log")
            }
            Some(false) => out.line("the DDL log is off (its entries are kept)"),
            None => {}
        }
        Ok(Summary {
            outcome: outcome.into(),
            report: serde_json::json!({
                "outcome": outcome,
                "version": version,
                "from": from,
                "granted": report.granted,
                "ddl_log": opts.ddl_log,
            }),
            ..Summary::default()
        })
    })?;
    Ok(())
}

/// `install --adopt`: the ancestor's database taken over.
fn adopt(args: &InstallArgs, conn: Option<&str>, path: Option<&std::path::Path>) -> Result<()> {
    // The workspace is read before connecting.
    let workspace = path.map(Workspace::load).transpose()?;
    let (_, mut client) = connect(&args.target, conn)?;
    let report = pgpm::ops::adopt::adopt(
        &mut client,
        workspace.as_ref(),
        &pgpm::ops::adopt::AdoptOptions {
            dry_run: args.dry_run,
            lock_timeout: args.lock.timeout(&args.target),
        },
    )?;
    let mut out = Out::live();
    for warning in &report.warnings {
        out.err(format!("warning: {warning}"));
    }
    if ui::get().json {
        render::print_json(&render::adopt_json(&report));
        return Ok(());
    }
    if report.dry_run {
        out.text("-- pgpm install --adopt --dry-run: nothing was changed. This is the SQL that would run, in one transaction:\n");
        out.text(&render::script(&report.script));
    }
    let verb = if report.dry_run {
        "would adopt"
    } else {
        "adopted"
    };
    for a in &report.adopted {
        out.line(format!(
            "{verb} {} {}{} (schema {}){}",
            a.name,
            a.version,
            a.old_rev
                .map(|n| format!(" revision {n}"))
                .unwrap_or_default(),
            a.schema,
            if a.from_workspace {
                ", checksum from the workspace"
            } else {
                ""
            }
        ));
    }
    out.line(format!(
        "{} the ancestor's catalog as {} with {} deployment event(s) kept as history; pgpm's catalog installed",
        if report.dry_run { "would keep" } else { "kept" },
        pgpm::ops::adopt::ANCESTOR_SCHEMA,
        report.events
    ));
    Ok(())
}

#[derive(Debug, Args)]
struct UninstallArgs {
    #[command(flatten)]
    conn: ConnArgs,
    /// Remove the catalog even though deployed packages are registered in it
    /// (their schemas are left in place).
    #[arg(long)]
    force: bool,
    #[command(flatten)]
    lock: LockArgs,
}

fn uninstall(args: UninstallArgs) -> Result<()> {
    let (_, mut client) = connect(&args.conn.target, args.conn.conn()?.as_deref())?;
    let (outcome, line) = match catalog::uninstall(
        &mut client,
        args.force,
        args.lock.timeout(&args.conn.target),
    )? {
        UninstallOutcome::Removed => ("removed", "removed the pgpm catalog"),
        UninstallOutcome::NotInstalled => (
            "not installed",
            "pgpm is not installed in this database; nothing to do",
        ),
    };
    if ui::get().json {
        render::print_json(&serde_json::json!({ "outcome": outcome }));
    } else {
        Out::live().line(line);
    }
    Ok(())
}

#[derive(Debug, Args)]
struct PlanArgs {
    #[command(flatten)]
    target: Target,
    /// A package folder (with a package.json) or a workspace folder, every
    /// package below it [default: .]; and a connection (as for -d/--db). Only with a connection does `plan` connect: it then also
    /// resolves against the versions deployed there and says which schemas
    /// exist already. Without one, planning is fully offline.
    #[arg(value_names = ["PATH", "CONN"], num_args = 0..=2)]
    args: Vec<String>,
    /// Under each statement, the statements it waits for (what it uses,
    /// replaces or must follow a DROP of), so the order can be checked.
    #[arg(long)]
    explain: bool,
}

fn plan(args: PlanArgs) -> Result<()> {
    let p = positionals(args.target.db.clone(), args.args)?;
    let path = p.path.unwrap_or_else(|| ".".into());
    // Manifests and SQL are read before connecting, so their errors come first.
    let workspace = Workspace::load(&path)?;
    let (plan, existing) = match &p.conn {
        None => (plan::build(workspace, &[], |_| true)?, None),
        Some(conn) => {
            let (_, mut client) = connect(&args.target, Some(conn))?;
            catalog::require_current(&mut client)?;
            let deployed = catalog::read::deployed(&mut client)?;
            let plan = plan::build(workspace, &deployed, |_| true)?;
            let packages: Vec<_> = plan.packages.iter().collect();
            deploy::check_server(&packages, catalog::read::server_version_num(&mut client)?)?;
            let schemas: Vec<String> = plan.schemas().map(str::to_string).collect();
            let existing = catalog::read::existing_schemas(&mut client, &schemas)?;
            (plan, Some(existing))
        }
    };
    for warning in deploy::not_sql_warnings(&plan) {
        ui::get().eprint(&format!("warning: {warning}"));
    }
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    if ui::get().json {
        serde_json::to_writer_pretty(&mut out, &render::plan_json(&plan, existing.as_ref()))
            .map_err(|e| Error::io("stdout")(e.into()))?;
        writeln!(out).map_err(Error::io("stdout"))?;
    } else {
        write!(
            out,
            "{}",
            render::plan_text(&plan, existing.as_ref(), args.explain)
        )
        .map_err(Error::io("stdout"))?;
    }
    out.flush().map_err(Error::io("stdout"))?;
    Ok(())
}

#[derive(Debug, Args)]
struct DeployArgs {
    #[command(flatten)]
    target: Target,
    /// A connection (as for -d/--db) and a package or a workspace of
    /// packages [default: .]. An argument that is not a
    /// connection string (no `=`, not a URI) is PATH.
    #[arg(value_names = ["CONN", "PATH"], num_args = 0..=2)]
    args: Vec<String>,
    #[command(flatten)]
    mode: ModeArg,
    /// Role to own the package schemas and every object in them
    /// (default: the manifest's owner_role).
    #[arg(short, long, value_name = "ROLE")]
    owner: Option<String>,
    /// Roles to grant USAGE on the schemas, EXECUTE on their functions and
    /// SELECT on their views (added to the manifest's usage_roles).
    #[arg(long, value_name = "ROLE", num_args = 1..)]
    usage: Vec<String>,
    /// Redeploy only these files into the existing schemas.
    #[arg(short, long = "file", value_name = "FILE", num_args = 1..)]
    files: Vec<PathBuf>,
    /// Deploy even when the package content equals what is deployed.
    #[arg(long)]
    force: bool,
    /// Deploy into package schemas that exist but that pgpm did not create;
    /// --mode decides what happens to them.
    #[arg(long)]
    adopt: bool,
    /// Print the SQL that would run, in order, and change nothing.
    #[arg(long)]
    dry_run: bool,
    /// VCS reference to record (default: git HEAD of the workspace).
    #[arg(long, value_name = "REF")]
    vcs_ref: Option<String>,
    /// Link to the VCS reference, recorded with the deployment.
    #[arg(long, value_name = "URL")]
    vcs_link: Option<String>,
    /// Issue or ticket this deployment belongs to.
    #[arg(long, value_name = "ID")]
    issue_ref: Option<String>,
    /// Link to the issue.
    #[arg(long, value_name = "URL")]
    issue_link: Option<String>,
    /// After a successful deploy that changed something, run the
    /// [announce] hooks of pgpm.toml (an e-mail, webhooks) with its
    /// report. A failed announcement is reported; the deploy stands.
    #[arg(long)]
    announce: bool,
    #[command(flatten)]
    lock: LockArgs,
}

fn deploy(args: DeployArgs) -> Result<()> {
    let p = positionals(args.target.db.clone(), args.args)?;
    let path = p.path.unwrap_or_else(|| ".".into());
    // Everything on disk is read and checked before connecting.
    let workspace = Workspace::load(&path)?;
    let project = args.target.project()?;
    let defaults = &project.defaults;
    let mode = match (args.mode.mode, &defaults.mode) {
        (Some(mode), _) => mode,
        (None, Some(text)) => text.parse().map_err(|e: String| {
            Error::Usage(format!(
                "{}: [defaults] mode: {e}",
                project
                    .file
                    .as_ref()
                    .map_or("pgpm.toml".into(), |f| f.display().to_string())
            ))
        })?,
        (None, None) => deploy::Mode::Safe,
    };
    // The hooks with their variables, before anything connects.
    let hooks = if args.announce {
        Some(project.announce_hooks()?)
    } else {
        None
    };
    if args.announce && project.announce.is_empty() {
        return Err(Error::Usage(format!(
            "--announce: {} has no [announce] hooks ([announce.email] or [[announce.webhook]])",
            project
                .file
                .as_ref()
                .map_or("no pgpm.toml was found, so there are".into(), |f| f
                    .display()
                    .to_string())
        )));
    }
    let opts = DeployOptions {
        mode,
        owner: args.owner.or_else(|| defaults.owner.clone()),
        usage: if args.usage.is_empty() {
            defaults.usage.clone()
        } else {
            args.usage
        },
        files: args.files,
        force: args.force,
        dry_run: args.dry_run,
        adopt: args.adopt,
        vcs_ref: args.vcs_ref,
        vcs_from: Some(path.clone()),
        vcs_link: args.vcs_link,
        issue_ref: args.issue_ref,
        issue_link: args.issue_link,
        lock_timeout: args.lock.timeout(&args.target),
        object_locks: args.lock.object_locks(&args.target),
        plans: None,
    };
    let targets = args.target.resolve(p.conn.as_deref())?;
    // A set plans once per distinct database state; one target has no use
    // for keeping a copy of its plan.
    let opts = DeployOptions {
        plans: matches!(targets, args::Targets::Set(_)).then(Default::default),
        ..opts
    };
    let result = fleet::run(&args.target, targets, defaults.jobs, |conn, client, out| {
        let report = deploy::deploy(
            client,
            Some(&conn.info),
            workspace.clone(),
            &opts,
            &mut |e| progress(out, e),
        )?;
        print_deploy(out, &report);
        if report.outcomes.is_empty() {
            out.line(format!("no packages found at {}", path.display()));
        }
        let packages = report
            .outcomes
            .iter()
            .filter(|o| o.kind != OutcomeKind::UpToDate)
            .count();
        Ok(Summary {
            outcome: match (packages, report.dry_run) {
                (0, _) => "up to date",
                (_, true) => "would deploy",
                (_, false) => "deployed",
            }
            .into(),
            packages,
            report: render::deploy_json(&report),
            ..Summary::default()
        })
    });
    if args.announce {
        match &result {
            Ok(_) if opts.dry_run => {
                ui::get().eprint("note: nothing was announced: this was a dry run")
            }
            Ok(summaries) => announce(hooks.as_ref().expect("resolved"), &opts, summaries),
            Err(Error::Fleet { failed, total, .. }) => ui::get().eprint(&format!(
                "note: nothing was announced: {} of {total} targets did not deploy (the others committed); once they are fixed, the same command finishes the rollout and announces what it deploys",
                failed.len().max(1)
            )),
            Err(_) => ui::get().eprint("note: nothing was announced: the deploy failed"),
        }
    }
    result.map(drop)
}

/// `deploy --announce`: the hooks run with the deploy's report, each
/// outcome said (on stderr: a failed announcement fails nothing).
fn announce(hooks: &pgpm::config::Announce, opts: &DeployOptions, summaries: &[Summary]) {
    let ui = ui::get();
    let changed: Vec<&Summary> = summaries.iter().filter(|s| s.packages > 0).collect();
    if changed.is_empty() {
        ui.eprint("note: nothing to announce: every package was up to date");
        return;
    }
    let announcement = render::announcement(opts, &changed);
    for sent in pgpm::ops::announce::announce(hooks, &announcement) {
        match sent.result {
            Ok(()) => ui.eprint(&format!("announced by {}", sent.hook)),
            Err(e) => ui.eprint(&format!(
                "warning: announcing by {} failed (the deploy stands): {}",
                sent.hook,
                render::error_message(&e)
            )),
        }
    }
}

/// Tells the progress of a change: what starts, each statement in the
/// verbose log, lock retries.
fn progress(out: &mut Out, event: Event<'_>) {
    let ui = ui::get();
    match event {
        Event::Section { note } => {
            out.log(&format!("-- {note}"));
            ui.spin(note);
        }
        Event::Statement { sql, file, line } if ui.logging() => {
            let at = file.map_or(String::new(), |f| format!("-- {}:{line}\n", f.display()));
            out.log(&format!("{at}{};", sql.trim_end().trim_end_matches(';')));
        }
        Event::PatchStarted { file_name } => ui.progress(&format!("applying {file_name}")),
        Event::LockRetry {
            attempt,
            of,
            waiting,
            blocked_by,
        } => {
            let by = if blocked_by.is_empty() {
                String::new()
            } else {
                format!(", held by {blocked_by}")
            };
            out.err(format!(
                "warning: {waiting} waited too long for a lock{by}; rolled back, running again (retry {attempt} of {of})"
            ));
        }
        _ => {}
    }
}

fn print_deploy(out: &mut Out, report: &DeployReport) {
    for warning in &report.warnings {
        out.err(format!("warning: {warning}"));
    }
    for note in &report.notes {
        out.err(format!("note: {note}"));
    }
    if report.dry_run {
        out.text(
            "-- pgpm deploy --dry-run: nothing was changed. This is the SQL that would run, in one transaction:\n",
        );
        out.text(&render::script(&report.script));
    }
    let verb = if report.dry_run {
        "would deploy"
    } else {
        "deployed"
    };
    let (same, changed): (Vec<_>, Vec<_>) = report
        .outcomes
        .iter()
        .partition(|o| o.kind == OutcomeKind::UpToDate);
    for o in same {
        out.line(format!("{} is up to date", o.label()));
    }
    for o in changed {
        let target = o.schema.as_deref().unwrap_or("(database scope)");
        out.line(format!("{verb} {} -> {target}", o.label()));
    }
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
struct MigrateArgs {
    #[command(subcommand)]
    action: Option<MigrateAction>,
    #[command(flatten)]
    target: Target,
    /// A connection (as for -d/--db) and the directory of patches
    /// [default: patches]. An argument that is not a connection
    /// string (no `=`, not a URI) is DIR.
    #[arg(value_names = ["CONN", "DIR"], num_args = 0..=2)]
    args: Vec<String>,
    /// Apply group after group until nothing is pending. Without it only the
    /// first group runs: on a busy database each group may take locks.
    #[arg(long)]
    all: bool,
    /// Apply a single patch (wins over --all).
    #[arg(short = '1', long)]
    one: bool,
    /// Only apply patches of this type; repeat for several. Fails when the
    /// first pending patch has another type.
    #[arg(
        long = "type",
        value_name = "TYPE",
        value_parser = clap::builder::TypedValueParser::map(
            clap::builder::PossibleValuesParser::new(PatchType::ALL.map(PatchType::as_str)),
            |s| s.parse::<PatchType>().expect("a possible value"),
        )
    )]
    types: Vec<PatchType>,
    /// Apply std and direct patches in a transaction and roll it back, to
    /// check them against the database; concurrent patches are skipped.
    #[arg(long)]
    dry_run: bool,
    /// Apply pending patches numbered before the newest applied one (added
    /// after a newer patch ran); without it they are refused.
    #[arg(long)]
    out_of_order: bool,
    /// Record the patches lp-migrate (lazr.postgresql) applied, from its
    /// lazrdatabaserevision table, as applied (with their files' checksums),
    /// and apply nothing.
    #[arg(long)]
    adopt_lazr: bool,
    #[command(flatten)]
    lock: LockArgs,
}

#[derive(Debug, Subcommand)]
enum MigrateAction {
    /// Record the new checksum of an applied patch that was edited, keeping
    /// the old one and the reason in the catalog (Flyway's repair, done
    /// auditably).
    Accept {
        /// The edited patch file.
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// Why the applied patch's file changed.
        #[arg(long, value_name = "TEXT")]
        reason: String,
        #[command(flatten)]
        target: Target,
        /// A connection (as for -d/--db).
        #[arg(value_name = "CONN")]
        conn: Option<String>,
        #[command(flatten)]
        lock: LockArgs,
    },
    /// Record every patch up to VERSION as applied without running it, for
    /// a database that already has what those patches create (Flyway's
    /// baseline). Refused when a later patch is applied already.
    Baseline {
        /// The last patch the database already has: MAJOR-MINOR-POINT.
        #[arg(value_name = "VERSION")]
        version: PatchId,
        #[command(flatten)]
        target: Target,
        /// A connection (as for -d/--db) and the directory of patches
        /// [default: patches].
        #[arg(value_names = ["CONN", "DIR"], num_args = 0..=2)]
        args: Vec<String>,
        #[command(flatten)]
        lock: LockArgs,
    },
}

fn migrate(args: MigrateArgs) -> Result<()> {
    if let Some(MigrateAction::Accept {
        file,
        reason,
        target,
        conn,
        lock,
    }) = &args.action
    {
        if reason.trim().is_empty() {
            return Err(Error::Usage(
                "--reason must say why the patch changed".into(),
            ));
        }
        let dir = file
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(std::path::Path::new("."))
            .to_path_buf();
        let patches = scan::scan(&dir)?;
        let (_, mut client) = connect(target, conn.as_deref())?;
        let (name, old, new) = migrate::accept(
            &mut client,
            &dir,
            patches,
            file,
            reason.trim(),
            lock.timeout(target),
        )?;
        if ui::get().json {
            render::print_json(&serde_json::json!({
                "accepted": name,
                "old_checksum": old,
                "new_checksum": new,
                "reason": reason.trim(),
            }));
            return Ok(());
        }
        Out::live().line(format!(
            "accepted {name}: checksum {} is now {} ({})",
            &old[..old.len().min(12)],
            &new[..new.len().min(12)],
            reason.trim()
        ));
        return Ok(());
    }
    if let Some(MigrateAction::Baseline {
        version,
        target,
        args,
        lock,
    }) = args.action
    {
        let p = positionals(target.db.clone(), args)?;
        let dir = p.path.unwrap_or_else(|| pgpm::migrate::DEFAULT_DIR.into());
        let patches = scan::scan(&dir)?;
        let (_, mut client) = connect(&target, p.conn.as_deref())?;
        let recorded =
            migrate::baseline(&mut client, &dir, patches, version, lock.timeout(&target))?;
        if ui::get().json {
            render::print_json(&serde_json::json!({ "recorded": recorded }));
            return Ok(());
        }
        let mut out = Out::live();
        for file in &recorded {
            out.line(format!(
                "recorded {file} as applied (baseline; it did not run)"
            ));
        }
        if recorded.is_empty() {
            out.line(format!(
                "every patch up to {version} is recorded already; nothing to do"
            ));
        }
        return Ok(());
    }
    let p = positionals(args.target.db.clone(), args.args)?;
    let project = args.target.project()?;
    let dir = p
        .path
        .or_else(|| {
            project
                .defaults
                .patches
                .as_ref()
                .map(|d| project.root.join(d))
        })
        .unwrap_or_else(|| pgpm::migrate::DEFAULT_DIR.into());
    // The patches are read and checked before connecting.
    let patches = scan::scan(&dir)?;
    if args.adopt_lazr {
        let (_, mut client) = connect(&args.target, p.conn.as_deref())?;
        let import = migrate::adopt_lazr(&mut client, &patches, args.lock.timeout(&args.target))?;
        let mut out = Out::live();
        for id in &import.missing {
            out.err(format!(
                "warning: lp-migrate applied patch {id}, which has no file in {}: not imported",
                dir.display()
            ));
        }
        if ui::get().json {
            render::print_json(&serde_json::json!({
                "imported": import.imported,
                "missing": import.missing,
                "known": import.known,
            }));
            return Ok(());
        }
        for file in &import.imported {
            out.line(format!(
                "recorded {file} as applied (imported from lp-migrate)"
            ));
        }
        if import.known > 0 {
            out.line(format!("{} patch(es) were recorded already", import.known));
        }
        if import.imported.is_empty() && import.missing.is_empty() {
            out.line("nothing to import");
        }
        return Ok(());
    }
    let opts = MigrateOptions {
        dir,
        selection: Selection {
            all: args.all,
            one: args.one,
            types: args.types,
            out_of_order: args.out_of_order,
        },
        dry_run: args.dry_run,
        lock_timeout: args.lock.timeout(&args.target),
        object_locks: args.lock.object_locks(&args.target),
    };
    let targets = args.target.resolve(p.conn.as_deref())?;
    fleet::run(
        &args.target,
        targets,
        project.defaults.jobs,
        |conn, client, out| {
            // Per patch: file, what happened, milliseconds.
            let mut done: Vec<(String, &str, Option<Duration>)> = Vec::new();
            let mut warnings = Vec::new();
            let report = migrate::migrate(
                client,
                &conn.info,
                patches.clone(),
                &opts,
                &mut |event| match event {
                    Event::PatchApplied { file_name, took } => {
                        done.push((file_name.into(), "applied", Some(took)));
                        out.line(format!("applied {file_name} ({})", took_str(took)))
                    }
                    Event::PatchChecked { file_name, took } => {
                        done.push((file_name.into(), "checked", Some(took)));
                        out.line(format!(
                            "would apply {file_name} (checked in a transaction that is rolled back, {})",
                            took_str(took)
                        ))
                    }
                    Event::PatchSkipped { file_name } => {
                        done.push((file_name.into(), "not checked", None));
                        out.line(format!(
                            "would apply {file_name} (not checked: concurrent patches do not run in a dry run)"
                        ))
                    }
                    Event::Warning { message } => {
                        warnings.push(message.to_string());
                        out.err(format!("warning: {message}"))
                    }
                    other => progress(out, other),
                },
            )?;
            let applied = done.iter().filter(|d| d.1 == "applied").count();
            let plan = &report.plan;
            if plan.is_empty() {
                out.line("nothing to apply");
            }
            if let Some((file, kind)) = &plan.held_back {
                out.line(format!(
                    "stopped before {file}: --type does not select {kind} patches ({} pending)",
                    plan.remaining
                ));
            } else if plan.remaining > 0 {
                out.line(format!(
                    "{} more patch(es) pending: run again for the next group, or use --all",
                    plan.remaining
                ));
            }
            if let Some(stop) = &report.stopped {
                out.line(format!(
                "dry run stopped before {}: it may need what {} creates, and concurrent patches do not run in a dry run",
                stop.before, stop.concurrent
            ));
            }
            if report.dry_run && !plan.is_empty() {
                out.line("dry run: rolled back, nothing was applied");
            }
            Ok(Summary {
                outcome: match (applied, report.dry_run, plan.is_empty()) {
                    (_, true, false) => "checked",
                    (0, _, _) => "up to date",
                    _ => "applied",
                }
                .into(),
                patches: applied,
                report: serde_json::json!({
                    "dry_run": report.dry_run,
                    "patches": done
                        .iter()
                        .map(|(file, outcome, took)| serde_json::json!({
                            "file": file,
                            "outcome": outcome,
                            "ms": took.map(|t| t.as_secs_f64() * 1000.0),
                        }))
                        .collect::<Vec<_>>(),
                    "remaining": plan.remaining,
                    "held_back": plan.held_back.as_ref().map(|(file, kind)| {
                        serde_json::json!({ "file": file, "type": kind.as_str() })
                    }),
                    "dry_run_stopped_before": report.stopped.as_ref().map(|s| &s.before),
                    "warnings": warnings,
                }),
                ..Summary::default()
            })
        },
    )?;
    Ok(())
}

/// A duration for humans: milliseconds, or seconds from ten seconds on.
fn took_str(took: Duration) -> String {
    if took < Duration::from_secs(10) {
        format!("{} ms", took.as_millis())
    } else {
        format!("{:.1} s", took.as_secs_f64())
    }
}

#[derive(Debug, Args)]
struct StatusArgs {
    #[command(flatten)]
    conn: ConnArgs,
    /// Directory of patches to compare with the applied ones.
    #[arg(long, value_name = "DIR", default_value = pgpm::migrate::DEFAULT_DIR)]
    patches: PathBuf,
    /// Compare the packages of this workspace with what is deployed.
    #[arg(long, value_name = "PATH")]
    packages: Option<PathBuf>,
    /// Exit with 3 when patches are pending or (with --packages) packages
    /// of the workspace are not deployed as they are: a CI gate.
    #[arg(long)]
    exit_code: bool,
}

fn status(args: StatusArgs) -> Result<Exit> {
    let target = &args.conn.target;
    let targets = target.resolve(args.conn.conn()?.as_deref())?;
    // With a workspace, the packages are compared with what is deployed.
    let workspace = args.packages.as_deref().map(Workspace::load).transpose()?;
    let summaries = fleet::run(target, targets, None, |_, client, out| {
        let status = status::read(client, Some(&args.patches))?;
        out.text(&render::status_text(&status));
        let pending = status.pending_patches();
        let differing = match &workspace {
            Some(ws) => status::differing(client, ws)?,
            None => Vec::new(),
        };
        for label in &differing {
            out.line(format!("{label}: the workspace's content is not deployed"));
        }
        let behind = pending > 0 || !differing.is_empty();
        let mut report = serde_json::to_value(render::status_json(&status)).expect("JSON");
        if workspace.is_some() {
            report["workspace_not_deployed"] = serde_json::json!(differing);
        }
        Ok(Summary {
            outcome: if behind { "behind" } else { "current" }.into(),
            packages: differing.len(),
            patches: pending,
            behind,
            report,
            ..Summary::default()
        })
    })?;
    if args.exit_code && summaries.iter().any(|s| s.behind) {
        return Ok(Exit::Code(pgpm::error::EXIT_BEHIND));
    }
    Ok(Exit::Success)
}

#[derive(Debug, Args)]
struct RemoveArgs {
    #[command(flatten)]
    target: Target,
    /// The package's name (after an optional connection string).
    #[arg(value_name = "PACKAGE")]
    first: String,
    /// The deployed version to remove.
    #[arg(value_name = "VERSION")]
    second: String,
    #[arg(value_name = "VERSION", hide = true)]
    third: Option<String>,
    /// Remove only old revision N (renamed to <schema>_<N> by a moderate
    /// redeploy, or left in its schema by a revision redeploy).
    #[arg(long, value_name = "N")]
    old_rev: Option<i32>,
    /// Print what would run and change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Drop even when the schema holds tables or sessions use it.
    #[arg(long)]
    force: bool,
    #[command(flatten)]
    lock: LockArgs,
}

fn remove(args: RemoveArgs) -> Result<()> {
    let (conn, package, version) = match &args.third {
        Some(version) => {
            let p = positionals(args.target.db.clone(), vec![args.first.clone()])?;
            if p.path.is_some() || p.conn.is_none() {
                return Err(Error::Usage(
                    "expected [CONN] PACKAGE VERSION, where CONN has a `=` or is a postgres:// URI"
                        .into(),
                ));
            }
            (p.conn, args.second.clone(), version.clone())
        }
        None => (
            args.target.db.clone(),
            args.first.clone(),
            args.second.clone(),
        ),
    };
    let opts = remove::RemoveOptions {
        package,
        version,
        old_rev: args.old_rev,
        force: args.force,
        dry_run: args.dry_run,
        lock_timeout: args.lock.timeout(&args.target),
        object_locks: args.lock.object_locks(&args.target),
    };
    let targets = args.target.resolve(conn.as_deref())?;
    fleet::run(&args.target, targets, None, |conn, client, out| {
        let report = remove::remove(client, Some(&conn.info), &opts, &mut |e| progress(out, e))?;
        for warning in &report.warnings {
            out.err(format!("warning: {warning}"));
        }
        if report.dry_run {
            out.text(
                "-- pgpm remove --dry-run: nothing was changed. This is the SQL that would run, in one transaction:\n",
            );
            out.text(&render::script(&report.script));
        }
        let verb = if report.dry_run {
            "would remove"
        } else {
            "removed"
        };
        out.line(format!(
            "{verb} {} {} (schema {})",
            report.package, report.version, report.schema
        ));
        Ok(Summary {
            outcome: verb.into(),
            packages: 1,
            report: render::remove_json(&report),
            ..Summary::default()
        })
    })?;
    Ok(())
}

#[derive(Debug, Args)]
struct GcArgs {
    #[command(flatten)]
    conn: ConnArgs,
    /// Only revisions that stopped being current at least this many
    /// seconds ago.
    #[arg(long, value_name = "SECONDS", default_value_t = 3600.0)]
    older_than: f64,
    /// Say what would be removed and change nothing.
    #[arg(long)]
    dry_run: bool,
    #[command(flatten)]
    lock: LockArgs,
}

fn gc(args: GcArgs) -> Result<()> {
    let target = &args.conn.target;
    let targets = target.resolve(args.conn.conn()?.as_deref())?;
    let opts = pgpm::ops::gc::GcOptions {
        older_than: Duration::from_secs_f64(args.older_than.max(0.0)),
        dry_run: args.dry_run,
        lock_timeout: args.lock.timeout(&args.conn.target),
        object_locks: args.lock.object_locks(&args.conn.target),
    };
    fleet::run(target, targets, None, |conn, client, out| {
        let report = pgpm::ops::gc::gc(client, Some(&conn.info), &opts, &mut |e| progress(out, e))?;
        let verb = if report.dry_run {
            "would remove"
        } else {
            "removed"
        };
        for removed in &report.removed {
            for warning in &removed.warnings {
                out.err(format!("warning: {warning}"));
            }
            out.line(format!(
                "{verb} {} {} (schema {})",
                removed.package, removed.version, removed.schema
            ));
        }
        for kept in &report.kept {
            out.line(format!("kept {}: {}", kept.label, kept.reason));
        }
        if report.removed.is_empty() && report.kept.is_empty() {
            out.line("no old revisions");
        }
        Ok(Summary {
            outcome: if report.removed.is_empty() {
                "nothing to remove"
            } else {
                verb
            }
            .into(),
            packages: report.removed.len(),
            report: render::gc_json(&report),
            ..Summary::default()
        })
    })?;
    Ok(())
}

#[derive(Debug, Args)]
struct ExecuteArgs {
    #[command(flatten)]
    conn: ConnArgs,
    /// The statement (its first column is read with --until-zero).
    #[arg(long, value_name = "SQL")]
    query: String,
    /// Run again, each run committed on its own, until the first column of
    /// the first row is 0 (or there is no row).
    #[arg(long)]
    until_zero: bool,
    /// With --until-zero: give up (exit 1) after this many runs.
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    max_runs: u64,
    /// With --until-zero: seconds to pause between runs.
    #[arg(long, value_name = "SECONDS", default_value_t = 0.0)]
    pause: f64,
}

fn execute(args: ExecuteArgs) -> Result<()> {
    let target = &args.conn.target;
    let targets = target.resolve(args.conn.conn()?.as_deref())?;
    let opts = pgpm::ops::execute::ExecuteOptions {
        query: args.query.clone(),
        until_zero: args.until_zero,
        max_runs: args.max_runs.max(1),
        pause: Duration::from_secs_f64(args.pause.max(0.0)),
    };
    fleet::run(target, targets, None, |_, client, out| {
        let report = pgpm::ops::execute::execute(client, &opts, &mut |e| {
            if let Event::Section { note } = e {
                out.line(note);
            }
        })?;
        if opts.until_zero {
            out.line(format!("done after {} run(s)", report.runs));
        }
        Ok(Summary {
            outcome: "done".into(),
            report: serde_json::json!({
                "runs": report.runs,
                "last": report.last,
                "finished": report.finished,
            }),
            ..Summary::default()
        })
    })?;
    Ok(())
}

#[derive(Debug, Args)]
struct TargetsArgs {
    #[command(flatten)]
    target: Target,
}

fn targets(args: TargetsArgs) -> Result<()> {
    let rows = args.target.list()?;
    if ui::get().json {
        let json: Vec<serde_json::Value> = rows
            .iter()
            .map(|r| {
                serde_json::json!({
                    "name": r.name,
                    "environment": r.environment,
                    "product": r.product,
                    "connection": r.connection,
                    "source": r.source.display().to_string(),
                })
            })
            .collect();
        render::print_json(&serde_json::Value::Array(json));
        return Ok(());
    }
    if rows.is_empty() {
        println!("no targets: add [targets.NAME] to pgpm.toml");
    }
    for r in &rows {
        println!(
            "{}\t{}\t{}\t{}",
            r.name,
            r.environment.as_deref().unwrap_or("-"),
            r.product.as_deref().unwrap_or("-"),
            r.connection
        );
    }
    Ok(())
}

#[derive(Debug, Args)]
struct SandboxArgs {
    /// The workspace to deploy [default: .].
    #[arg(value_name = "PATH")]
    path: Option<PathBuf>,
    /// Stop the sandbox's server (its data is kept).
    #[arg(long)]
    stop: bool,
    #[command(flatten)]
    mode: ModeArg,
}

fn sandbox(args: SandboxArgs) -> Result<()> {
    let root = std::env::current_dir().map_err(Error::io("."))?;
    if args.stop {
        let stopped = sandbox::down(&root)?;
        if ui::get().json {
            render::print_json(&serde_json::json!({
                "outcome": if stopped { "stopped" } else { "not running" }
            }));
        } else if stopped {
            Out::live().line("stopped the sandbox");
        } else {
            Out::live().line("the sandbox is not running");
        }
        return Ok(());
    }
    let workspace = args.path.unwrap_or_else(|| ".".into());
    let opts = DeployOptions {
        mode: args.mode.mode.unwrap_or_default(),
        vcs_from: Some(workspace.clone()),
        ..DeployOptions::default()
    };
    let mut out = Out::live();
    let sandbox = sandbox::up(&root, &workspace, &opts, &mut |event| match event {
        Event::PatchApplied { file_name, .. } => out.line(format!("applied {file_name}")),
        Event::Warning { message } => out.err(format!("warning: {message}")),
        other => progress(&mut out, other),
    })?;
    print_deploy(&mut out, &sandbox.deploy);
    let mut client = sandbox.conninfo.connect()?;
    let status = status::read(
        &mut client,
        Some(&workspace.join(pgpm::migrate::DEFAULT_DIR)),
    )?;
    if ui::get().json {
        render::print_json(&serde_json::json!({
            "uri": sandbox.conninfo.to_uri(),
            "psql": sandbox.psql,
            "deploy": render::deploy_json(&sandbox.deploy),
            "status": render::status_json(&status),
        }));
        return Ok(());
    }
    println!();
    print!("{}", render::status_text(&status));
    println!();
    println!("sandbox running: {}", sandbox.conninfo.to_uri());
    if let Some(psql) = &sandbox.psql {
        println!("try it:\n  {psql}");
    }
    println!("stop it with: pgpm sandbox --stop");
    Ok(())
}
