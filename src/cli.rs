//! Command-line interface: clap types and dispatch to the library.
//!
//! This is the only module that prints for the user; everything it calls
//! returns values and errors.

use std::ffi::OsString;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::catalog::{self, InstallOptions, UninstallOutcome};
use crate::db::ConnInfo;
use crate::{Error, Result};

/// pgpm: deploy PostgreSQL packages of types, functions, views and triggers
/// as versioned schemas side by side, and apply numbered patch migrations.
#[derive(Debug, Parser)]
#[command(name = "pgpm", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
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
    Deploy(DeployArgs),
    /// Apply pending numbered patches (patch-MAJOR-MINOR-POINT-TYPE.sql),
    /// by default only the first group of adjacent patches of one type.
    Migrate(MigrateArgs),
    /// Show the deployed packages, pending patches, catalog and server versions.
    Status(StatusArgs),
    /// Drop a deployed version's schema (or one old revision of it).
    #[command(override_usage = "pgpm remove [OPTIONS] [CONN] <PACKAGE> <VERSION>")]
    Remove(RemoveArgs),
}

/// Where to connect.
#[derive(Debug, Args)]
pub struct ConnArgs {
    /// Connection string: `host=... port=... dbname=... user=...` or a
    /// `postgres://` URI. Defaults to DATABASE_URL, then the PG* variables.
    #[arg(value_name = "CONN")]
    pub conn: Option<String>,
}

impl ConnArgs {
    pub fn resolve(&self) -> Result<ConnInfo> {
        Ok(ConnInfo::resolve(self.conn.as_deref())?)
    }

    pub fn connect(&self) -> Result<postgres::Client> {
        Ok(self.resolve()?.connect()?)
    }
}

/// How long to wait for another pgpm run to release the database.
#[derive(Debug, Args)]
pub struct LockArgs {
    /// Seconds to wait for another pgpm run to release its lock on the database.
    #[arg(long, value_name = "SECONDS", default_value_t = 60.0)]
    pub lock_timeout: f64,
}

impl LockArgs {
    pub fn timeout(&self) -> Duration {
        Duration::from_secs_f64(self.lock_timeout.max(0.0))
    }
}

#[derive(Debug, Args)]
pub struct InstallArgs {
    #[command(flatten)]
    pub conn: ConnArgs,
    /// Upgrade a catalog installed by an older pgpm.
    #[arg(long)]
    pub upgrade: bool,
    /// Roles to grant read access to the catalog and EXECUTE on its functions.
    #[arg(long, value_name = "ROLE", num_args = 1..)]
    pub usage: Vec<String>,
    #[command(flatten)]
    pub lock: LockArgs,
}

#[derive(Debug, Args)]
pub struct UninstallArgs {
    #[command(flatten)]
    pub conn: ConnArgs,
    /// Remove the catalog even though deployed packages are registered in it
    /// (their schemas are left in place).
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub lock: LockArgs,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// A package folder (with a package.json), or a workspace folder: every
    /// package below it.
    #[arg(value_name = "PATH", default_value = ".")]
    pub path: std::path::PathBuf,
    /// Connection string or URI. Only when given does `plan` connect: it then
    /// also resolves against the versions deployed there and says which
    /// schemas exist already. Without it, planning is fully offline.
    #[arg(value_name = "CONN")]
    pub conn: Option<String>,
    /// Print the plan as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Parses arguments and runs the command.
pub fn run<I, T>(args: I) -> Result<()>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(err) => {
            // --help and --version are not errors; usage errors exit 1 via Error::Usage.
            if !err.use_stderr() {
                let _ = err.print();
                return Ok(());
            }
            return Err(Error::Usage(
                err.render().to_string().trim_end().to_string(),
            ));
        }
    };
    match cli.command {
        Command::Install(args) => install(args),
        Command::Uninstall(args) => uninstall(args),
        Command::Deploy(args) => deploy(args),
        Command::Status(args) => status(args),
        Command::Remove(args) => remove(args),
        Command::Sandbox(args) => sandbox(args),
        Command::Plan(args) => plan(args),
        Command::Migrate(args) => migrate(args),
    }
}

fn install(args: InstallArgs) -> Result<()> {
    let mut client = args.conn.connect()?;
    let outcome = catalog::install(
        &mut client,
        &InstallOptions {
            upgrade: args.upgrade,
            usage: args.usage.clone(),
            lock_timeout: Some(args.lock.timeout()),
        },
    )?;
    if let catalog::InstallOutcome::UpgradePending { from, .. } = outcome {
        return Err(catalog::CatalogError::UpgradePending { found: from }.into());
    }
    println!("{outcome}");
    for role in &args.usage {
        println!(
            "granted usage of the catalog to {}",
            crate::db::quote_ident(role)
        );
    }
    Ok(())
}

fn uninstall(args: UninstallArgs) -> Result<()> {
    let mut client = args.conn.connect()?;
    match catalog::uninstall(&mut client, args.force, Some(args.lock.timeout()))? {
        UninstallOutcome::Removed => println!("removed the pgpm catalog"),
        UninstallOutcome::NotInstalled => {
            println!("pgpm is not installed in this database; nothing to do")
        }
    }
    Ok(())
}

#[derive(Debug, Args)]
pub struct MigrateArgs {
    #[command(flatten)]
    pub conn: ConnArgs,
    /// Directory of patches [default: patches]. Given alone, an argument
    /// that is not a connection string (no `=`, not a URI) is taken as DIR.
    #[arg(value_name = "DIR")]
    pub dir: Option<std::path::PathBuf>,
    /// Apply group after group until nothing is pending. Without it only the
    /// first group runs: on a busy database each group may take locks.
    #[arg(long)]
    pub all: bool,
    /// Apply a single patch (wins over --all).
    #[arg(short = '1', long)]
    pub one: bool,
    /// Only apply patches of this type; repeat for several. Fails when the
    /// first pending patch has another type.
    #[arg(
        long = "type",
        value_name = "TYPE",
        value_parser = clap::builder::TypedValueParser::map(
            clap::builder::PossibleValuesParser::new(["std", "direct", "concurrent"]),
            |s| s.parse::<crate::patches::PatchType>().expect("a possible value"),
        )
    )]
    pub types: Vec<crate::patches::PatchType>,
    /// Apply std and direct patches in a transaction and roll it back, to
    /// check them against the database; concurrent patches are skipped.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub lock: LockArgs,
}

/// `--mode`: one of the deploy modes, listed in `--help`.
fn mode_parser() -> impl clap::builder::TypedValueParser<Value = crate::deploy::Mode> {
    use clap::builder::TypedValueParser;
    clap::builder::PossibleValuesParser::new(["safe", "moderate", "unsafe", "overwrite"])
        .map(|s| s.parse::<crate::deploy::Mode>().expect("a possible value"))
}

/// Whether a lone positional argument is a connection rather than a directory.
fn looks_like_conn(arg: &str) -> bool {
    arg.contains('=') || arg.starts_with("postgres://") || arg.starts_with("postgresql://")
}

fn migrate(mut args: MigrateArgs) -> Result<()> {
    use crate::patches::{self, Event};
    if args.dir.is_none()
        && let Some(arg) = args.conn.conn.take_if(|a| !looks_like_conn(a))
    {
        args.dir = Some(arg.into());
    }
    let info = args.conn.resolve()?;
    let mut client = info.connect()?;
    let opts = patches::Options {
        dir: args.dir.unwrap_or_else(|| patches::DEFAULT_DIR.into()),
        selection: patches::Selection {
            all: args.all,
            one: args.one,
            types: args.types,
        },
        dry_run: args.dry_run,
        lock_timeout: args.lock.timeout(),
    };
    let plan = patches::migrate(
        &mut client,
        &info,
        &opts,
        &mut |w| eprintln!("warning: {w}"),
        &mut |event| match event {
            Event::Applied { patch, took } => {
                println!("applied {} ({})", patch.file_name, took_str(took))
            }
            Event::Checked { patch, took } => println!(
                "would apply {} (checked in a transaction that is rolled back, {})",
                patch.file_name,
                took_str(took)
            ),
            Event::Skipped { patch } => println!(
                "would apply {} (not checked: concurrent patches do not run in a dry run)",
                patch.file_name
            ),
        },
    )?;
    if plan.is_empty() {
        println!("nothing to apply");
    }
    if let Some((file, kind)) = &plan.held_back {
        println!(
            "stopped before {file}: --type does not select {kind} patches ({} pending)",
            plan.remaining
        );
    } else if plan.remaining > 0 {
        println!(
            "{} more patch(es) pending: run again for the next group, or use --all",
            plan.remaining
        );
    }
    if opts.dry_run && !plan.is_empty() {
        println!("dry run: rolled back, nothing was applied");
    }
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

fn plan(args: PlanArgs) -> Result<()> {
    use std::io::Write as _;
    // Manifests and SQL are read before connecting, so their errors come first.
    let workspace = crate::workspace::Workspace::load(&args.path)?;
    let (plan, existing) = match &args.conn {
        None => (crate::plan::plan(workspace, &[])?, None),
        Some(conn) => {
            let mut client = ConnInfo::resolve(Some(conn))?.connect()?;
            catalog::require_current(&mut client)?;
            let deployed = crate::resolve::Deployed::read_current(&mut client)?;
            let plan = crate::plan::plan(workspace, &deployed)?;
            let existing = crate::plan::existing_schemas(&mut client, &plan)?;
            (plan, Some(existing))
        }
    };
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    if args.json {
        serde_json::to_writer_pretty(&mut out, &plan.json_view(existing.as_ref()))
            .map_err(|e| Error::io("stdout")(e.into()))?;
        writeln!(out).map_err(Error::io("stdout"))?;
    } else {
        write!(out, "{}", plan.render(existing.as_ref())).map_err(Error::io("stdout"))?;
    }
    out.flush().map_err(Error::io("stdout"))?;
    Ok(())
}

#[derive(Debug, Args)]
pub struct DeployArgs {
    #[command(flatten)]
    pub conn: ConnArgs,
    /// A package or a workspace of packages [default: .]. Given alone, an
    /// argument that is not a connection string (no `=`, not a URI) is PATH.
    #[arg(value_name = "PATH")]
    pub path: Option<std::path::PathBuf>,
    /// What to do when a package's schema exists: refuse (safe), rename it
    /// to <schema>_<N> (moderate), drop it (unsafe) or deploy into it (overwrite).
    #[arg(
        short,
        long,
        default_value = "safe",
        value_parser = mode_parser()
    )]
    pub mode: crate::deploy::Mode,
    /// Role to own the package schemas and every object in them
    /// (default: the manifest's owner_role).
    #[arg(short, long, value_name = "ROLE")]
    pub owner: Option<String>,
    /// Roles to grant USAGE on the schemas, EXECUTE on their functions and
    /// SELECT on their views (added to the manifest's usage_roles).
    #[arg(long, value_name = "ROLE", num_args = 1..)]
    pub usage: Vec<String>,
    /// Redeploy only these files into the existing schemas.
    #[arg(short, long = "file", value_name = "FILE", num_args = 1..)]
    pub files: Vec<std::path::PathBuf>,
    /// Deploy even when the package content equals what is deployed.
    #[arg(long)]
    pub force: bool,
    /// Print the SQL that would run, in order, and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// VCS reference to record (default: git HEAD of the package directory).
    #[arg(long, value_name = "REF")]
    pub vcs_ref: Option<String>,
    /// Link to the VCS reference, recorded with the deployment.
    #[arg(long, value_name = "URL")]
    pub vcs_link: Option<String>,
    /// Issue or ticket this deployment belongs to.
    #[arg(long, value_name = "ID")]
    pub issue_ref: Option<String>,
    /// Link to the issue.
    #[arg(long, value_name = "URL")]
    pub issue_link: Option<String>,
    #[command(flatten)]
    pub lock: LockArgs,
}

fn deploy(mut args: DeployArgs) -> Result<()> {
    use crate::deploy::{self, DeployOptions};
    if args.path.is_none()
        && let Some(arg) = args.conn.conn.take_if(|a| !looks_like_conn(a))
    {
        args.path = Some(arg.into());
    }
    let path = args.path.clone().unwrap_or_else(|| ".".into());
    let mut client = args.conn.connect()?;
    let opts = DeployOptions {
        mode: args.mode,
        owner: args.owner,
        usage: args.usage,
        files: args.files,
        force: args.force,
        vcs_ref: args.vcs_ref,
        vcs_link: args.vcs_link,
        issue_ref: args.issue_ref,
        issue_link: args.issue_link,
        lock_timeout: Some(args.lock.timeout()),
    };
    let report = deploy::deploy(&mut client, &path, &opts, args.dry_run)?;
    let plan = &report.plan;
    for warning in &plan.warnings {
        eprintln!("warning: {warning}");
    }
    if report.dry_run {
        println!(
            "-- pgpm deploy --dry-run: nothing was changed. This is the SQL that would run, in one transaction:"
        );
        print!("{plan}");
    }
    for label in &plan.up_to_date {
        println!("{label} is up to date");
    }
    let verb = if report.dry_run {
        "would deploy"
    } else {
        "deployed"
    };
    for line in &plan.deployed {
        println!("{verb} {line}");
    }
    if plan.deployed.is_empty() && plan.up_to_date.is_empty() {
        println!("no packages found at {}", path.display());
    }
    Ok(())
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub conn: ConnArgs,
    /// Directory of patches to compare with the applied ones.
    #[arg(long, value_name = "DIR", default_value = crate::patches::DEFAULT_DIR)]
    pub patches: std::path::PathBuf,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

fn status(args: StatusArgs) -> Result<()> {
    let mut client = args.conn.connect()?;
    let status = crate::status::read(&mut client, Some(&args.patches))?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&status.to_json()).expect("JSON")
        );
    } else {
        print!("{status}");
    }
    Ok(())
}

#[derive(Debug, Args)]
pub struct RemoveArgs {
    /// `[CONN] PACKAGE VERSION`: the connection (optional, as for every
    /// command: DATABASE_URL and PG* variables otherwise), the package's
    /// name and the deployed version to remove.
    #[arg(value_name = "ARGS", num_args = 2..=3, required = true)]
    pub args: Vec<String>,
    /// Remove only the renamed old revision N (schema <schema>_<N>).
    #[arg(long, value_name = "N")]
    pub old_rev: Option<i32>,
    /// Print what would run and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Drop even when the schema holds tables or sessions use it.
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub lock: LockArgs,
}

fn remove(args: RemoveArgs) -> Result<()> {
    let mut positional = args.args;
    let version = positional.pop().expect("clap requires two");
    let package = positional.pop().expect("clap requires two");
    let conn = ConnArgs {
        conn: positional.pop(),
    };
    let mut client = conn.connect()?;
    let report = crate::remove::remove(
        &mut client,
        &crate::remove::RemoveOptions {
            package,
            version,
            old_rev: args.old_rev,
            force: args.force,
            dry_run: args.dry_run,
            lock_timeout: Some(args.lock.timeout()),
        },
    )?;
    for warning in &report.plan.warnings {
        eprintln!("warning: {warning}");
    }
    if report.dry_run {
        println!(
            "-- pgpm remove --dry-run: nothing was changed. This is the SQL that would run, in one transaction:"
        );
        print!("{}", report.plan);
    }
    let verb = if report.dry_run {
        "would remove"
    } else {
        "removed"
    };
    for line in &report.plan.deployed {
        println!("{verb} {line}");
    }
    Ok(())
}

#[derive(Debug, Args)]
pub struct SandboxArgs {
    /// The workspace to deploy [default: .].
    #[arg(value_name = "PATH")]
    pub path: Option<std::path::PathBuf>,
    /// Stop the sandbox's server (its data is kept).
    #[arg(long)]
    pub stop: bool,
    /// What to do when a package's schema exists with other content.
    #[arg(
        short,
        long,
        default_value = "safe",
        value_parser = mode_parser()
    )]
    pub mode: crate::deploy::Mode,
}

fn sandbox(args: SandboxArgs) -> Result<()> {
    let root = std::env::current_dir().map_err(Error::io("."))?;
    if args.stop {
        if crate::sandbox::down(&root)? {
            println!("stopped the sandbox");
        } else {
            println!("the sandbox is not running");
        }
        return Ok(());
    }
    let workspace = args.path.unwrap_or_else(|| ".".into());
    let sandbox = crate::sandbox::up(
        &root,
        &workspace,
        &crate::deploy::DeployOptions {
            mode: args.mode,
            ..Default::default()
        },
    )?;
    for name in &sandbox.patches_applied {
        println!("applied {name}");
    }
    let plan = &sandbox.deploy.plan;
    for warning in &plan.warnings {
        eprintln!("warning: {warning}");
    }
    for label in &plan.up_to_date {
        println!("{label} is up to date");
    }
    for line in &plan.deployed {
        println!("deployed {line}");
    }
    let mut client = sandbox.conninfo.connect()?;
    let status = crate::status::read(
        &mut client,
        Some(&workspace.join(crate::patches::DEFAULT_DIR)),
    )?;
    println!();
    print!("{status}");
    println!();
    println!("sandbox running: {}", sandbox.conninfo.to_uri());
    if let Some(psql) = &sandbox.psql {
        println!("try it:\n  {psql}");
    }
    println!("stop it with: pgpm sandbox --stop");
    Ok(())
}
