//! Benchmarks pgpm against the floor (`psql -1 -f` of the same SQL) and
//! against the tools users would pick instead, on a throwaway local cluster.
//!
//! ```sh
//! cargo run --release --example bench               # everything, medians of 3 runs
//! cargo run --release --example bench -- --runs 5 --only deploy,plan
//! cargo run --release --example bench -- --help
//! ```
//!
//! It builds the release `pgpm` binary first (`cargo build --release --bin
//! pgpm`) and runs it as users do, one process per command. Every run of
//! every tool gets a fresh database (`CREATE DATABASE ... TEMPLATE
//! template0`) on the same cluster, and the time measured is the wall time
//! of the whole command: process start, connection, work, exit. Setup that
//! a tool does once per database (`pgpm install`, the ancestor's `pgpm
//! install`) is not timed. The tools of a run go in a rotating order, so
//! none always runs first.
//!
//! Optional competitors are skipped, with a message saying how to install
//! them, when they are absent:
//!
//! - the ancestor, Python pgpm 0.1.62: `pip install pgpm==0.1.62 psycopg2-binary`
//! - lazr.postgresql's `lp-migrate`: `pip install lazr.postgresql psycopg2-binary`
//! - Sqitch: `apt-get install sqitch libdbd-pg-perl`
//! - GNU time, for the planning benchmark's peak memory: `apt-get install time`
//!
//! The Python tools are run with the interpreter that `python3` (or
//! `$PYTHON`) resolves to, not through wrapper scripts such as pyenv shims,
//! so their start-up cost is Python's own.

#[path = "bench/generate.rs"]
mod generate;
#[path = "bench/tools.rs"]
mod tools;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use pgpm::cluster::{Cluster, ClusterOptions};

use generate::{DEPLOY_SCHEMA, DeploySize, Rng};
use tools::{Tools, median, secs};

/// Benchmarks pgpm against `psql -1 -f` and the tools users would pick instead.
#[derive(Debug, Parser)]
#[command(name = "bench")]
struct Args {
    /// Runs per measurement; medians are reported.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    runs: u32,
    /// Which benchmarks to run (no-op runs with deploy and migrate).
    #[arg(long, value_delimiter = ',', default_values = ["deploy", "migrate", "plan", "fleet"])]
    only: Vec<Section>,
    /// Functions in the deploy workspace.
    #[arg(long, default_value_t = 5000)]
    functions: usize,
    /// Domains and composite types (half each) in the deploy workspace.
    #[arg(long, default_value_t = 500)]
    types: usize,
    /// Views in the deploy workspace.
    #[arg(long, default_value_t = 200)]
    views: usize,
    /// Files the types and functions are shuffled across.
    #[arg(long, default_value_t = 100)]
    files: usize,
    /// Packages of the workspace whose no-op deploy is measured.
    #[arg(long, default_value_t = 500)]
    noop_packages: usize,
    /// Databases of the fleet benchmark.
    #[arg(long, default_value_t = 100)]
    fleet: usize,
    /// Patches in the migrate benchmark.
    #[arg(long, default_value_t = 1000)]
    patches: usize,
    /// Workspace sizes (packages) of the planning benchmark.
    #[arg(long, value_delimiter = ',', default_values_t = [1000, 2000, 5000, 10000])]
    packages: Vec<usize>,
    /// Seed of the generated inputs.
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// The pgpm binary to measure [default: build target/release/pgpm].
    #[arg(long, value_name = "PATH")]
    pgpm: Option<PathBuf>,
    /// Write the generated inputs here and keep them (default: a temporary
    /// directory, removed at the end).
    #[arg(long, value_name = "DIR")]
    keep: Option<PathBuf>,
}

impl Args {
    /// The deploy workspace the flags ask for (the deploy and fleet benchmarks).
    fn deploy_size(&self) -> DeploySize {
        DeploySize {
            functions: self.functions,
            types: self.types,
            views: self.views,
            files: self.files.max(2),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Section {
    Deploy,
    Migrate,
    Plan,
    Fleet,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("bench: {err}");
            ExitCode::FAILURE
        }
    }
}

type Result<T> = std::result::Result<T, String>;

/// One row of the results table.
struct Row {
    benchmark: String,
    tool: String,
    outcome: Outcome,
}

enum Outcome {
    Times(Vec<Duration>),
    Skipped(String),
    Failed(String),
}

impl Outcome {
    fn median(&self) -> Option<Duration> {
        match self {
            Outcome::Times(times) => Some(median(times)),
            _ => None,
        }
    }
}

/// What every benchmark needs.
#[derive(Clone, Copy)]
struct Bench<'a> {
    args: &'a Args,
    runs: usize,
    tools: &'a Tools,
    /// Where the generated inputs go.
    work: &'a Path,
}

/// The rows of the main table: deploy and migrate, then the no-op rows.
#[derive(Default)]
struct Report {
    rows: Vec<Row>,
    noops: Vec<Row>,
    notes: Vec<String>,
}

/// One planning measurement.
struct PlanRow {
    packages: usize,
    times: Vec<Duration>,
    peak_kib: Vec<u64>,
}

fn run(args: &Args) -> Result<()> {
    let pgpm = match &args.pgpm {
        Some(path) => path.clone(),
        None => tools::build_pgpm()?,
    };
    let tools = Tools::find(pgpm)?;

    let (_work_guard, work) = match &args.keep {
        Some(dir) => {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            (None, dir.canonicalize().map_err(|e| e.to_string())?)
        }
        None => {
            let dir = tempfile::Builder::new()
                .prefix("pgpm-bench-")
                .tempdir()
                .map_err(|e| format!("cannot create a temporary directory: {e}"))?;
            let path = dir.path().to_path_buf();
            (Some(dir), path)
        }
    };

    // Planning is offline; the other benchmarks need a server.
    let db = if args.only.iter().any(|s| *s != Section::Plan) {
        Some(start_cluster()?)
    } else {
        None
    };
    let machine = tools::machine(db.as_ref())?;
    eprintln!("{machine}");
    for line in tools.describe() {
        eprintln!("  {line}");
    }

    let bench = Bench {
        args,
        runs: args.runs as usize,
        tools: &tools,
        work: &work,
    };
    let mut report = Report::default();
    let mut plan_rows = Vec::new();
    if let (true, Some(db)) = (args.only.contains(&Section::Deploy), &db) {
        deploy_bench(&bench, db, &mut report)?;
    }
    if let (true, Some(db)) = (args.only.contains(&Section::Migrate), &db) {
        migrate_bench(&bench, db, &mut report)?;
    }
    if args.only.contains(&Section::Plan) {
        plan_bench(&bench, &mut plan_rows)?;
    }
    if let (true, Some(db)) = (args.only.contains(&Section::Fleet), &db) {
        fleet_bench(&bench, db, &mut report)?;
    }
    let Report {
        mut rows,
        mut noops,
        notes,
    } = report;
    rows.append(&mut noops);

    let report = render(args, &machine, &tools, &rows, &plan_rows, &notes);
    println!("{report}");
    if args.keep.is_some() {
        eprintln!("inputs kept in {}", work.display());
    }
    Ok(())
}

/// Starts the throwaway cluster. It lives in a directory of its own that
/// the server's user owns, and is stopped and removed when this process
/// exits, however it exits.
fn start_cluster() -> Result<tools::Databases> {
    let cluster_dir = tempfile::Builder::new()
        .prefix("pgpm-bench-cluster-")
        .tempdir()
        .map_err(|e| format!("cannot create a temporary directory: {e}"))?
        .keep();
    eprintln!("starting a throwaway cluster in {}", cluster_dir.display());
    let cluster = Cluster::start(&ClusterOptions {
        dir: cluster_dir,
        port: None,
        tcp: true,
    })
    .map_err(|e| tools::chain(&e))?;
    cluster
        .remove_when_process_exits(std::process::id())
        .map_err(|e| tools::chain(&e))?;
    tools::Databases::new(&cluster)
}

/// The tools of run `run`, rotated so that none always goes first.
fn rotated<T: Copy>(items: &[T], run: usize) -> Vec<T> {
    let mut v = items.to_vec();
    let len = v.len();
    v.rotate_left(run % len);
    v
}

/// The informative row under each floor: the server's share of the work.
const ONE_QUERY: &str =
    "the floor's script sent as one query in one transaction, in-process (server work only)";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DeployTool {
    Floor,
    OneQuery,
    Pgpm,
    Ancestor,
}

fn deploy_bench(bench: &Bench, db: &tools::Databases, report: &mut Report) -> Result<()> {
    let Bench {
        args,
        runs,
        tools,
        work,
    } = *bench;
    let Report { rows, noops, notes } = report;
    let size = args.deploy_size();
    let package = work.join("deploy").join("bench");
    let floor_sql = work.join("deploy").join("floor.sql");
    std::fs::create_dir_all(work.join("deploy")).map_err(|e| e.to_string())?;
    let inputs = generate::deploy_workspace(&package, &floor_sql, size, &mut Rng::new(args.seed))
        .map_err(|e| format!("cannot write the deploy workspace: {e}"))?;
    let benchmark = format!(
        "Deploy: {} functions, {} types, {} views ({} statements, {}, {} files)",
        thousands(size.functions),
        thousands(size.types),
        thousands(size.views),
        thousands(inputs.statements),
        bytes(inputs.bytes),
        size.files + 10.min(size.views.max(1)),
    );
    eprintln!("\n{benchmark}");

    let mut floor = Vec::new();
    let mut one_query = Vec::new();
    let mut pgpm = Vec::new();
    let mut noop = Vec::new();
    let mut ancestor: std::result::Result<Vec<Duration>, String> = match &tools.ancestor {
        Ok(_) => Ok(Vec::new()),
        Err(why) => Err(why.clone()),
    };
    let mut ancestor_failed = false;
    let expect = |name: &str| -> Result<()> {
        let counts = db.count_objects(name, DEPLOY_SCHEMA)?;
        let want = (size.functions, size.views);
        if (counts.functions, counts.views) != want {
            return Err(format!(
                "{name}: expected {} functions and {} views in {DEPLOY_SCHEMA}, found {} and {}",
                want.0, want.1, counts.functions, counts.views
            ));
        }
        Ok(())
    };
    for run in 0..runs {
        for tool in rotated(
            &[
                DeployTool::Floor,
                DeployTool::OneQuery,
                DeployTool::Pgpm,
                DeployTool::Ancestor,
            ],
            run,
        ) {
            let name = format!("deploy_{tool:?}_{run}").to_lowercase();
            match tool {
                DeployTool::Floor => {
                    db.create(&name)?;
                    let took = tools.psql_file(&db.conn(&name), &floor_sql)?;
                    expect(&name)?;
                    eprintln!("  run {}: psql -1 -f      {}", run + 1, secs(took));
                    floor.push(took);
                }
                DeployTool::OneQuery => {
                    db.create(&name)?;
                    let took = db.one_query(&name, &floor_sql)?;
                    expect(&name)?;
                    eprintln!("  run {}: one query       {}", run + 1, secs(took));
                    one_query.push(took);
                }
                DeployTool::Pgpm => {
                    db.create(&name)?;
                    tools.pgpm_install(&db.conn(&name))?;
                    let took = tools.pgpm_deploy(&db.conn(&name), &package)?;
                    expect(&name)?;
                    let again = tools.pgpm_deploy_noop(&db.conn(&name), &package)?;
                    eprintln!(
                        "  run {}: pgpm deploy       {} (no-op again: {})",
                        run + 1,
                        secs(took),
                        secs(again)
                    );
                    pgpm.push(took);
                    noop.push(again);
                }
                DeployTool::Ancestor => {
                    let (Ok(times), Ok(python)) = (&mut ancestor, &tools.ancestor) else {
                        continue;
                    };
                    if ancestor_failed {
                        continue;
                    }
                    db.create(&name)?;
                    let result = python
                        .ancestor_install(&db.conn(&name), work)
                        .and_then(|()| python.ancestor_deploy(&db.conn(&name), &package))
                        .and_then(|took| expect(&name).map(|()| took));
                    match result {
                        Ok(took) => {
                            eprintln!("  run {}: pgpm 0.1.62      {}", run + 1, secs(took));
                            times.push(took);
                        }
                        Err(why) => {
                            eprintln!("  run {}: pgpm 0.1.62 failed: {why}", run + 1);
                            ancestor = Err(format!("failed: {}", first_line(&why)));
                            ancestor_failed = true;
                        }
                    }
                }
            }
            db.drop(&name)?;
        }
    }
    rows.push(Row {
        benchmark: benchmark.clone(),
        tool: "`psql -1 -f` (floor)".into(),
        outcome: Outcome::Times(floor),
    });
    rows.push(Row {
        benchmark: benchmark.clone(),
        tool: ONE_QUERY.into(),
        outcome: Outcome::Times(one_query),
    });
    rows.push(Row {
        benchmark: benchmark.clone(),
        tool: "`pgpm deploy`".into(),
        outcome: Outcome::Times(pgpm),
    });
    rows.push(Row {
        benchmark,
        tool: "pgpm 0.1.62 (Python ancestor) `pgpm deploy`".into(),
        outcome: match ancestor {
            Ok(times) => Outcome::Times(times),
            Err(why) if ancestor_failed => Outcome::Failed(why),
            Err(why) => Outcome::Skipped(why),
        },
    });
    noops.push(Row {
        benchmark: "No-op".into(),
        tool: "`pgpm deploy`, nothing changed".into(),
        outcome: Outcome::Times(noop),
    });
    noops.push(Row {
        benchmark: "No-op".into(),
        tool: format!(
            "`pgpm deploy`, nothing changed, {} packages",
            thousands(args.noop_packages)
        ),
        outcome: Outcome::Times(wide_noop(bench, db)?),
    });
    notes.push(
        "The ancestor runs view files in name order without ordering them, so the generated views are written in a valid order across their files; types and functions are shuffled.".into(),
    );
    Ok(())
}

/// No-op deploys of a workspace of many packages (the planning
/// benchmark's kind), deployed once untimed: what an unchanged workspace
/// costs per package.
fn wide_noop(bench: &Bench, db: &tools::Databases) -> Result<Vec<Duration>> {
    let Bench {
        args, runs, tools, ..
    } = *bench;
    let dir = bench.work.join("deploy").join("wide");
    generate::planning_workspace(&dir, args.noop_packages, &mut Rng::new(args.seed))
        .map_err(|e| format!("cannot write the wide workspace: {e}"))?;
    let name = "deploy_wide_noop";
    db.create(name)?;
    tools.pgpm_install(&db.conn(name))?;
    let first = tools.pgpm_deploy_workspace(&db.conn(name), &dir)?;
    eprintln!(
        "  {} packages deployed once in {}",
        args.noop_packages,
        secs(first)
    );
    let mut times = Vec::new();
    for run in 0..runs {
        let took = tools.pgpm_deploy_noop(&db.conn(name), &dir)?;
        eprintln!(
            "  run {}: pgpm deploy, {} packages unchanged: {}",
            run + 1,
            args.noop_packages,
            secs(took)
        );
        times.push(took);
    }
    db.drop(name)?;
    Ok(times)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MigrateTool {
    Floor,
    OneQuery,
    Pgpm,
    Lazr,
    Sqitch,
}

fn migrate_bench(bench: &Bench, db: &tools::Databases, report: &mut Report) -> Result<()> {
    let Bench {
        args,
        runs,
        tools,
        work,
    } = *bench;
    let Report { rows, noops, .. } = report;
    let dir = work.join("migrate");
    let patch_dir = dir.join("patches");
    let floor_sql = dir.join("floor.sql");
    let sqitch_dir = dir.join("sqitch");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let inputs = generate::patches(&patch_dir, &floor_sql, &sqitch_dir, args.patches)
        .map_err(|e| format!("cannot write the patches: {e}"))?;
    let benchmark = format!(
        "Migrate: {} `std` patches ({})",
        thousands(args.patches),
        bytes(inputs.bytes)
    );
    eprintln!("\n{benchmark}");
    let tables = args.patches.div_ceil(5);
    let expect = |name: &str| -> Result<()> {
        let found = db.count_tables(name)?;
        if found != tables {
            return Err(format!(
                "{name}: expected {tables} tables t_*, found {found}"
            ));
        }
        Ok(())
    };

    let mut times: Vec<std::result::Result<Vec<Duration>, String>> = vec![
        Ok(Vec::new()),
        Ok(Vec::new()),
        Ok(Vec::new()),
        tools
            .lazr
            .as_ref()
            .map(|_| Vec::new())
            .map_err(Clone::clone),
        tools
            .sqitch
            .as_ref()
            .map(|_| Vec::new())
            .map_err(Clone::clone),
    ];
    let mut failed = [false; 5];
    let mut noop = Vec::new();
    let all = [
        MigrateTool::Floor,
        MigrateTool::OneQuery,
        MigrateTool::Pgpm,
        MigrateTool::Lazr,
        MigrateTool::Sqitch,
    ];
    for run in 0..runs {
        for tool in rotated(&all, run) {
            let slot = tool as usize;
            if times[slot].is_err() {
                continue;
            }
            let name = format!("migrate_{tool:?}_{run}").to_lowercase();
            db.create(&name)?;
            let conn = db.conn(&name);
            let result = match tool {
                MigrateTool::Floor => tools.psql_file(&conn, &floor_sql),
                MigrateTool::OneQuery => db.one_query(&name, &floor_sql),
                MigrateTool::Pgpm => {
                    tools.pgpm_install(&conn)?;
                    let took = tools.pgpm_migrate(&conn, &patch_dir)?;
                    expect(&name)?;
                    let again = tools.pgpm_migrate_noop(&conn, &patch_dir)?;
                    eprintln!(
                        "  run {}: pgpm migrate --all, nothing pending: {}",
                        run + 1,
                        secs(again)
                    );
                    noop.push(again);
                    Ok(took)
                }
                MigrateTool::Lazr => tools
                    .lazr
                    .as_ref()
                    .expect("checked")
                    .lp_migrate(&conn, &patch_dir),
                MigrateTool::Sqitch => tools.sqitch_deploy(&db.sqitch_uri(&name), &sqitch_dir),
            }
            .and_then(|took| expect(&name).map(|()| took));
            match result {
                Ok(took) => {
                    eprintln!(
                        "  run {}: {:<28} {}",
                        run + 1,
                        migrate_label(tool),
                        secs(took)
                    );
                    if let Ok(t) = &mut times[slot] {
                        t.push(took);
                    }
                }
                Err(why)
                    if matches!(
                        tool,
                        MigrateTool::Floor | MigrateTool::OneQuery | MigrateTool::Pgpm
                    ) =>
                {
                    return Err(why);
                }
                Err(why) => {
                    eprintln!("  run {}: {} failed: {why}", run + 1, migrate_label(tool));
                    times[slot] = Err(format!("failed: {}", first_line(&why)));
                    failed[slot] = true;
                }
            }
            db.drop(&name)?;
        }
    }
    for tool in all {
        let slot = tool as usize;
        let outcome = match std::mem::replace(&mut times[slot], Ok(Vec::new())) {
            Ok(t) => Outcome::Times(t),
            Err(why) if failed[slot] => Outcome::Failed(why),
            Err(why) => Outcome::Skipped(why),
        };
        let tool_name = match tool {
            MigrateTool::Floor => "`psql -1 -f` of the concatenation (floor)".to_string(),
            MigrateTool::OneQuery => ONE_QUERY.to_string(),
            MigrateTool::Pgpm => "`pgpm migrate --all`".to_string(),
            MigrateTool::Lazr => format!(
                "lazr.postgresql {}`lp-migrate --apply-all`",
                tools
                    .lazr
                    .as_ref()
                    .map(|p| format!("{} ", p.version))
                    .unwrap_or_default()
            ),
            MigrateTool::Sqitch => format!(
                "Sqitch {}`sqitch deploy`",
                tools
                    .sqitch_version()
                    .map(|v| format!("{v} "))
                    .unwrap_or_default()
            ),
        };
        rows.push(Row {
            benchmark: benchmark.clone(),
            tool: tool_name,
            outcome,
        });
    }
    noops.push(Row {
        benchmark: "No-op".into(),
        tool: "`pgpm migrate --all`, nothing pending".into(),
        outcome: Outcome::Times(noop),
    });
    Ok(())
}

fn migrate_label(tool: MigrateTool) -> &'static str {
    match tool {
        MigrateTool::Floor => "psql -1 -f",
        MigrateTool::OneQuery => "one query",
        MigrateTool::Pgpm => "pgpm migrate --all",
        MigrateTool::Lazr => "lp-migrate --apply-all",
        MigrateTool::Sqitch => "sqitch deploy",
    }
}

/// The deploy workspace to `--fleet` databases of one `pgpm.toml` set
/// (`pgpm deploy --env bench`, default --jobs) against the same deploy to
/// one database. Every database is on the benchmark's one cluster, so the
/// server's work grows with their number: the ratio shows what pgpm adds
/// on top of it and how well it overlaps the databases' work.
fn fleet_bench(bench: &Bench, db: &tools::Databases, report: &mut Report) -> Result<()> {
    let Bench {
        args,
        runs,
        tools,
        work,
    } = *bench;
    let size = args.deploy_size();
    let dir = work.join("fleet");
    let package = dir.join("bench");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    generate::deploy_workspace(
        &package,
        &dir.join("floor.sql"),
        size,
        &mut Rng::new(args.seed),
    )
    .map_err(|e| format!("cannot write the deploy workspace: {e}"))?;
    let jobs = pgpm::ops::fleet::FleetOptions::default_jobs();
    let benchmark = format!(
        "Fleet: the deploy workspace to {} databases on one server (`--jobs` default, {jobs})",
        thousands(args.fleet)
    );
    eprintln!("\n{benchmark}");
    let mut one = Vec::new();
    let mut many = Vec::new();
    let mut peaks = Vec::new();
    for run in 0..runs {
        let single = "fleet_single";
        db.create(single)?;
        tools.pgpm_install(&db.conn(single))?;
        let (took, _) = tools.pgpm_in(
            &dir,
            &["deploy", &db.conn(single), "bench"],
            "deployed bench",
        )?;
        eprintln!("  run {}: one database {}", run + 1, secs(took));
        one.push(took);
        db.drop(single)?;
        let mut toml = String::new();
        let names: Vec<String> = (0..args.fleet).map(|i| format!("fleet_{i:03}")).collect();
        for name in &names {
            db.create(name)?;
            tools.pgpm_install(&db.conn(name))?;
            let _ = writeln!(
                toml,
                "[targets.{name}]\nurl = \"{}\"\nenvironment = \"bench\"\n",
                db.conn(name)
            );
        }
        std::fs::write(dir.join("pgpm.toml"), toml).map_err(|e| e.to_string())?;
        let (took, peak) =
            tools.pgpm_in(&dir, &["deploy", "--env", "bench", "bench"], " deployed ")?;
        eprintln!(
            "  run {}: {} databases {}{}",
            run + 1,
            args.fleet,
            secs(took),
            peak.map(|k| format!(", peak {:.0} MiB", k as f64 / 1024.0))
                .unwrap_or_default()
        );
        many.push(took);
        peaks.extend(peak);
        for name in &names {
            db.drop(name)?;
        }
    }
    if let Some(k) = peaks.iter().max() {
        let mib = *k as f64 / 1024.0;
        report.notes.push(format!(
            "Fleet: pgpm's peak memory deploying to {} databases was {mib:.0} MiB (target under 200 MB: {}).",
            thousands(args.fleet),
            if mib * 1.048_576 < 200.0 { "met" } else { "**missed**" }
        ));
    }
    report.rows.push(Row {
        benchmark: benchmark.clone(),
        tool: "`pgpm deploy CONN`, one database (floor)".into(),
        outcome: Outcome::Times(one),
    });
    report.rows.push(Row {
        benchmark,
        tool: format!(
            "`pgpm deploy --env bench`, {} databases{}",
            thousands(args.fleet),
            peaks
                .iter()
                .max()
                .map(|k| format!(" (peak memory {:.0} MiB)", *k as f64 / 1024.0))
                .unwrap_or_default()
        ),
        outcome: Outcome::Times(many),
    });
    Ok(())
}

fn plan_bench(bench: &Bench, plan_rows: &mut Vec<PlanRow>) -> Result<()> {
    let Bench {
        args,
        runs,
        tools,
        work,
    } = *bench;
    eprintln!("\nPlanning (offline)");
    for &packages in &args.packages {
        let dir = work.join("plan").join(format!("{packages}"));
        generate::planning_workspace(&dir, packages, &mut Rng::new(args.seed))
            .map_err(|e| format!("cannot write the planning workspace: {e}"))?;
        let mut row = PlanRow {
            packages,
            times: Vec::new(),
            peak_kib: Vec::new(),
        };
        for run in 0..runs {
            let (took, peak) = tools.pgpm_plan(&dir)?;
            eprintln!(
                "  {packages} packages, run {}: {}{}",
                run + 1,
                secs(took),
                peak.map(|k| format!(", peak {:.0} MiB", k as f64 / 1024.0))
                    .unwrap_or_default()
            );
            row.times.push(took);
            row.peak_kib.extend(peak);
        }
        plan_rows.push(row);
        // The inputs of the largest sizes are big; keep them only when asked.
        if args.keep.is_none() {
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
    Ok(())
}

/// The Markdown report: machine, tables, targets.
fn render(
    args: &Args,
    machine: &str,
    tools: &Tools,
    rows: &[Row],
    plan_rows: &[PlanRow],
    notes: &[String],
) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{machine}, medians of {} runs.\n", args.runs);
    let _ = writeln!(out, "Versions: {}.\n", tools.describe().join("; "));
    if !rows.is_empty() {
        let _ = writeln!(out, "| Benchmark | Tool | Median | Runs | vs `psql` |");
        let _ = writeln!(out, "|---|---|---:|---|---:|");
        let mut last = String::new();
        let mut floor: Option<Duration> = None;
        for row in rows {
            let first_of_group = row.benchmark != last;
            if first_of_group {
                floor = row
                    .outcome
                    .median()
                    .filter(|_| row.tool.ends_with("(floor)"));
            }
            let bench = if first_of_group {
                row.benchmark.as_str()
            } else {
                ""
            };
            last = row.benchmark.clone();
            let (median_s, runs_s, ratio) = match &row.outcome {
                Outcome::Times(times) if !times.is_empty() => {
                    let m = median(times);
                    let ratio = match floor {
                        Some(f) if !row.tool.ends_with("(floor)") => {
                            format!("{:.2}x", m.as_secs_f64() / f.as_secs_f64())
                        }
                        Some(_) => "1.00x".into(),
                        None => String::new(),
                    };
                    let each: Vec<String> = times.iter().map(|t| secs(*t)).collect();
                    (format!("**{}**", secs(m)), each.join(", "), ratio)
                }
                Outcome::Times(_) => ("-".into(), String::new(), String::new()),
                Outcome::Skipped(why) => (format!("skipped: {why}"), String::new(), String::new()),
                Outcome::Failed(why) => (why.clone(), String::new(), String::new()),
            };
            let _ = writeln!(
                out,
                "| {bench} | {} | {median_s} | {runs_s} | {ratio} |",
                row.tool
            );
        }
        out.push('\n');
    }
    if !plan_rows.is_empty() {
        let _ = writeln!(
            out,
            "Planning, offline (`pgpm plan <dir> > /dev/null`): each package has a types file and a functions file and depends on 1 to 3 earlier packages through version ranges.\n"
        );
        let _ = writeln!(
            out,
            "| Packages | Median | Runs | Per package | Peak memory | Growth vs {}: packages, time, memory |",
            thousands(plan_rows[0].packages)
        );
        let _ = writeln!(out, "|---:|---:|---|---:|---:|---|");
        let base = &plan_rows[0];
        let base_m = median(&base.times).as_secs_f64();
        let base_peak = peak_kib(base);
        for row in plan_rows {
            let m = median(&row.times);
            let each: Vec<String> = row.times.iter().map(|t| secs(*t)).collect();
            let per = m.as_secs_f64() / row.packages as f64 * 1e6;
            let peak = peak_kib(row);
            let peak_s = peak.map_or("n/a (install GNU time)".to_string(), |k| {
                format!("{:.0} MiB", k as f64 / 1024.0)
            });
            let memory = match (peak, base_peak) {
                (Some(p), Some(b)) => format!(", {:.1}x", p as f64 / b as f64),
                _ => String::new(),
            };
            let _ = writeln!(
                out,
                "| {} | **{}** | {} | {per:.0} µs | {peak_s} | {:.0}x, {:.1}x{memory} |",
                thousands(row.packages),
                secs(m),
                each.join(", "),
                row.packages as f64 / base.packages as f64,
                m.as_secs_f64() / base_m,
            );
        }
        out.push('\n');
    }
    let targets = targets(rows, plan_rows);
    if !targets.is_empty() {
        let _ = writeln!(out, "Targets:\n");
        for t in targets {
            let _ = writeln!(out, "- {t}");
        }
        out.push('\n');
    }
    for note in notes {
        let _ = writeln!(out, "{note}");
    }
    out
}

fn targets(rows: &[Row], plan_rows: &[PlanRow]) -> Vec<String> {
    let mut out = Vec::new();
    let find = |tool: &str| {
        rows.iter()
            .find(|r| r.tool.starts_with(tool))
            .and_then(|r| r.outcome.median())
    };
    let met = |ok: bool| if ok { "met" } else { "**missed**" };
    for (what, tool, floor) in [
        ("deploy", "`pgpm deploy`", "`psql -1 -f` (floor)"),
        ("migrate", "`pgpm migrate --all`", "`psql -1 -f` of"),
    ] {
        if let (Some(t), Some(f)) = (find(tool), find(floor)) {
            let ratio = t.as_secs_f64() / f.as_secs_f64();
            out.push(format!(
                "{what} within 1.2x of `psql`: {ratio:.2}x, {}",
                met(ratio <= 1.2)
            ));
        }
    }
    for tool in ["`pgpm deploy`, nothing", "`pgpm migrate --all`, nothing"] {
        if let Some(t) = find(tool) {
            out.push(format!(
                "no-op {} under 100 ms: {}, {}",
                if tool.contains("deploy") {
                    "deploy"
                } else {
                    "migrate"
                },
                secs(t),
                met(t < Duration::from_millis(100))
            ));
        }
    }
    if let Some(row) = rows
        .iter()
        .find(|r| r.tool.starts_with("`pgpm deploy`, nothing changed, "))
        && let Some(t) = row.outcome.median()
    {
        out.push(format!(
            "no-op deploy of {} under 60 ms: {}, {}",
            row.tool
                .trim_start_matches("`pgpm deploy`, nothing changed, "),
            secs(t),
            met(t < Duration::from_millis(60))
        ));
    }
    if let (Some(one), Some(many)) = (
        find("`pgpm deploy CONN`, one database"),
        find("`pgpm deploy --env bench`"),
    ) {
        let ratio = many.as_secs_f64() / one.as_secs_f64();
        out.push(format!(
            "a fleet deploy within 3x of one: {ratio:.1}x, {}",
            met(ratio <= 3.0)
        ));
    }
    if let Some(row) = plan_rows.iter().find(|r| r.packages == 10_000) {
        let m = median(&row.times);
        out.push(format!(
            "planning 10,000 packages under 2 s: {}, {}",
            secs(m),
            met(m < Duration::from_secs(2))
        ));
    }
    if let (Some(first), Some(last)) = (plan_rows.first(), plan_rows.last())
        && last.packages > first.packages
    {
        let growth = median(&last.times).as_secs_f64() / median(&first.times).as_secs_f64();
        let size = last.packages as f64 / first.packages as f64;
        // Near-linear: no worse than n log n over the range.
        let bound = size * (last.packages as f64).ln() / (first.packages as f64).ln();
        out.push(format!(
            "near-linear planning: {growth:.1}x the time for {size:.0}x the packages, {}",
            met(growth <= bound)
        ));
    }
    out
}

/// The median peak resident memory of a planning row, in KiB.
fn peak_kib(row: &PlanRow) -> Option<u64> {
    let mut p = row.peak_kib.clone();
    p.sort_unstable();
    p.get(p.len().saturating_sub(1) / 2).copied()
}

fn thousands(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn bytes(n: usize) -> String {
    if n >= 1_000_000 {
        format!("{:.1} MB of SQL", n as f64 / 1e6)
    } else {
        format!("{} kB of SQL", n.div_ceil(1000))
    }
}

fn first_line(s: &str) -> String {
    let line = s
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim();
    let mut cut: String = line.chars().take(160).collect();
    if line.chars().count() > 160 {
        cut.push_str("...");
    }
    cut.replace('|', "\\|")
}
