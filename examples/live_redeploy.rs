//! Load test: clients call a stored-procedure API while it is redeployed,
//! and the failed client transactions are counted per deploy mode.
//!
//! ```sh
//! cargo run --release --example live_redeploy                 # every mode, 16 clients, 25 redeploys
//! cargo run --release --example live_redeploy -- --modes revision --redeploys 5
//! cargo run --release --example live_redeploy -- --help
//! ```
//!
//! On a throwaway local cluster, for each mode and each way of sending
//! statements, a fresh database gets an API package (an enum, composite
//! types, 55 functions and a view), then `--clients` clients call it in
//! transactions while the package is redeployed `--redeploys` times, one
//! every `--interval` seconds, each time with changed content (so every
//! redeploy recreates its functions and types).
//!
//! Two kinds of client:
//! - `session`: the pgpm-client protocol: one `Watch` per process hears
//!   deploys, and each connection is a `Session`, which selects its version
//!   without LISTEN and switches between transactions.
//! - `plain`: what applications did before it: `_pgpm.set_search_path`
//!   once per connection, then unqualified calls for ever.
//!
//! Statements go either `prepared` (prepared once per connection, or per
//! selected version for sessions, as drivers that auto-prepare do) or
//! `unprepared` (parsed on every call).
//!
//! Printed: per mode, client kind and statements, the transactions run,
//! how many failed and the most frequent errors, and the longest a
//! transaction took (a client stalled behind the deploy's locks).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use pgpm::cluster::{Cluster, ClusterOptions};
use pgpm::db::conninfo::ConnInfo;
use pgpm::db::quote::quote_ident;
use pgpm::ops::deploy::{self, DeployOptions, Mode};
use pgpm::package::workspace::Workspace;
use pgpm_client::{Session, Watch};

#[derive(Debug, Parser)]
#[command(name = "live_redeploy")]
struct Args {
    /// Deploy modes to measure.
    #[arg(long, value_delimiter = ',', default_values = ["revision", "moderate", "unsafe", "overwrite"])]
    modes: Vec<ModeArg>,
    /// Client kinds to measure.
    #[arg(long, value_delimiter = ',', default_values = ["session", "plain"])]
    clients_kind: Vec<Kind>,
    /// How clients send statements.
    #[arg(long, value_delimiter = ',', default_values = ["unprepared", "prepared"])]
    statements: Vec<Statements>,
    /// Client connections calling the API.
    #[arg(long, default_value_t = 16)]
    clients: usize,
    /// Redeploys per run.
    #[arg(long, default_value_t = 25)]
    redeploys: usize,
    /// Seconds between redeploys.
    #[arg(long, default_value_t = 2.0)]
    interval: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ModeArg {
    Revision,
    Moderate,
    Unsafe,
    Overwrite,
}

impl ModeArg {
    fn mode(self) -> Mode {
        match self {
            ModeArg::Revision => Mode::Revision,
            ModeArg::Moderate => Mode::Moderate,
            ModeArg::Unsafe => Mode::Unsafe,
            ModeArg::Overwrite => Mode::Overwrite,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Kind {
    Session,
    Plain,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Statements {
    Unprepared,
    Prepared,
}

type Result<T, E = String> = std::result::Result<T, E>;

fn chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        source = cause.source();
    }
    out
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// What one run measured.
struct Outcome {
    label: String,
    transactions: u64,
    failed: u64,
    errors: BTreeMap<String, u64>,
    longest: Duration,
    switches: u64,
}

fn run(args: &Args) -> Result<()> {
    let dir = tempfile::Builder::new()
        .prefix("pgpm-live-cluster-")
        .tempdir()
        .map_err(|e| e.to_string())?
        .keep();
    eprintln!("starting a throwaway cluster in {}", dir.display());
    let cluster = Cluster::start(&ClusterOptions {
        dir,
        port: None,
        tcp: true,
    })
    .map_err(|e| chain(&e))?;
    cluster
        .remove_when_process_exits(std::process::id())
        .map_err(|e| chain(&e))?;
    let work = tempfile::tempdir().map_err(|e| e.to_string())?;
    let mut outcomes = Vec::new();
    let mut n = 0;
    for &mode in &args.modes {
        for &kind in &args.clients_kind {
            for &statements in &args.statements {
                n += 1;
                let db = format!("live_{n}");
                let outcome = run_one(
                    args,
                    &cluster,
                    &db,
                    &work.path().join(&db),
                    mode.mode(),
                    kind,
                    statements,
                )?;
                eprintln!(
                    "{}: {} of {} transactions failed; sessions switched {} times",
                    outcome.label, outcome.failed, outcome.transactions, outcome.switches
                );
                outcomes.push(outcome);
            }
        }
    }
    print!("{}", render(args, &outcomes));
    Ok(())
}

fn run_one(
    args: &Args,
    cluster: &Cluster,
    db: &str,
    root: &Path,
    mode: Mode,
    kind: Kind,
    statements: Statements,
) -> Result<Outcome> {
    let label = format!(
        "{mode} / {} / {}",
        match kind {
            Kind::Session => "session",
            Kind::Plain => "plain",
        },
        match statements {
            Statements::Unprepared => "unprepared",
            Statements::Prepared => "prepared",
        }
    );
    let mut admin = cluster
        .conninfo("postgres")
        .connect()
        .map_err(|e| chain(&e))?;
    admin
        .batch_execute(&format!("CREATE DATABASE {}", quote_ident(db)))
        .map_err(|e| chain(&e))?;
    let info = cluster.conninfo(db);
    let mut deployer = info.connect().map_err(|e| chain(&e))?;
    pgpm::catalog::install(&mut deployer, &pgpm::catalog::InstallOptions::default())
        .map_err(|e| chain(&e))?;
    let package = write_package(root, 0)?;
    redeploy(&mut deployer, &info, &package, mode)?;

    let stop = Arc::new(AtomicBool::new(false));
    let watch = match kind {
        Kind::Session => {
            let i = info.clone();
            Some(Watch::listen(move || i.connect(), &["api"]).map_err(|e| chain(&e))?)
        }
        Kind::Plain => None,
    };
    let results = Arc::new(Mutex::new(Vec::new()));
    let threads: Vec<_> = (0..args.clients)
        .map(|c| {
            let (info, stop, watch, results) =
                (info.clone(), stop.clone(), watch.clone(), results.clone());
            std::thread::spawn(move || {
                let tally = client_loop(&info, c as i32, kind, statements, watch.as_ref(), &stop);
                results.lock().unwrap().push(tally);
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(1));
    let interval = Duration::from_secs_f64(args.interval);
    for i in 1..=args.redeploys {
        let started = Instant::now();
        write_package(root, i)?;
        redeploy(&mut deployer, &info, &package, mode)?;
        std::thread::sleep(interval.saturating_sub(started.elapsed()));
    }
    std::thread::sleep(Duration::from_secs(1));
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join()
            .map_err(|_| "a client thread panicked".to_string())?;
    }
    let mut outcome = Outcome {
        label,
        transactions: 0,
        failed: 0,
        errors: BTreeMap::new(),
        longest: Duration::ZERO,
        switches: 0,
    };
    for tally in results.lock().unwrap().drain(..) {
        outcome.transactions += tally.transactions;
        outcome.failed += tally.failed;
        outcome.longest = outcome.longest.max(tally.longest);
        outcome.switches += tally.switches;
        for (e, k) in tally.errors {
            *outcome.errors.entry(e).or_default() += k;
        }
    }
    Ok(outcome)
}

fn redeploy(client: &mut postgres::Client, info: &ConnInfo, dir: &Path, mode: Mode) -> Result<()> {
    let workspace = Workspace::load(dir).map_err(|e| chain(&e))?;
    deploy::deploy(
        client,
        Some(info),
        workspace,
        &DeployOptions {
            mode,
            ..DeployOptions::default()
        },
        &mut pgpm::event::ignore,
    )
    .map_err(|e| format!("deploy in {mode} mode: {}", chain(&e)))?;
    Ok(())
}

/// The API package, revision `rev`: every redeploy changes what the
/// functions compute, so each one recreates them. Type files drop their
/// type first and functions are CREATE OR REPLACE, so that overwrite can
/// run them into the existing schema.
fn write_package(root: &Path, rev: usize) -> Result<PathBuf> {
    let dir = root.join("api");
    let write = |path: &str, text: &str| -> Result<()> {
        let path = dir.join(path);
        std::fs::create_dir_all(path.parent().expect("has a parent")).map_err(|e| e.to_string())?;
        std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))
    };
    write(
        "package.json",
        r#"{"name": "api", "version": "1.0.0", "subclass": "versioned",
            "types_path": "types", "functions_path": "functions", "views_path": "views"}"#,
    )?;
    write(
        "types/status.sql",
        "DROP TYPE IF EXISTS item_status CASCADE;\nCREATE TYPE item_status AS ENUM ('open', 'paid', 'void');\n",
    )?;
    write(
        "types/line_item.sql",
        "DROP TYPE IF EXISTS line_item CASCADE;\nCREATE TYPE line_item AS (sku text, qty int, price numeric, status item_status);\n",
    )?;
    write(
        "types/summary.sql",
        "DROP TYPE IF EXISTS summary CASCADE;\nCREATE TYPE summary AS (n int, total numeric, revision int);\n",
    )?;
    let mut f = String::new();
    for k in 1..=50 {
        writeln!(
            f,
            "CREATE OR REPLACE FUNCTION price_{k}(i int) RETURNS numeric LANGUAGE sql IMMUTABLE\n    AS $$ SELECT (i * {k} + {rev})::numeric / 100 $$;"
        )
        .expect("a String");
    }
    f.push_str(&format!(
        "CREATE OR REPLACE FUNCTION api_revision() RETURNS int LANGUAGE sql IMMUTABLE AS $$ SELECT {rev} $$;
CREATE OR REPLACE FUNCTION status_of(i int) RETURNS item_status LANGUAGE sql IMMUTABLE
    AS $$ SELECT (ARRAY['open', 'paid', 'void']::item_status[])[1 + abs(i) % 3] $$;
CREATE OR REPLACE FUNCTION make_item(i int) RETURNS line_item LANGUAGE sql STABLE
    AS $$ SELECT ROW('sku-' || i, 1 + i % 5, price_{k}(i), status_of(i))::line_item $$;
CREATE OR REPLACE FUNCTION total(items line_item[]) RETURNS summary LANGUAGE plpgsql STABLE
    SET search_path FROM CURRENT
AS $$
DECLARE
    s summary := ROW(0, 0, api_revision())::summary;
    it line_item;
BEGIN
    FOREACH it IN ARRAY items LOOP
        s.n := s.n + 1;
        s.total := s.total + it.qty * it.price;
    END LOOP;
    RETURN s;
END
$$;
CREATE OR REPLACE FUNCTION summary_of(n int) RETURNS summary LANGUAGE sql STABLE
    AS $$ SELECT total(ARRAY(SELECT make_item(g) FROM generate_series(1, n) g)) $$;
",
        k = 1 + rev % 50
    ));
    write("functions/api.sql", &f)?;
    write(
        "views/items.sql",
        "CREATE OR REPLACE VIEW items AS SELECT (make_item(g)).* FROM generate_series(1, 10) g;\n",
    )?;
    Ok(dir)
}

/// What one client saw.
#[derive(Default)]
struct Tally {
    transactions: u64,
    failed: u64,
    errors: BTreeMap<String, u64>,
    longest: Duration,
    switches: u64,
}

impl Tally {
    fn record(&mut self, took: Duration, result: std::result::Result<(), String>) {
        self.transactions += 1;
        self.longest = self.longest.max(took);
        if let Err(e) = result {
            self.failed += 1;
            *self.errors.entry(e).or_default() += 1;
        }
    }
}

/// The statements of one client transaction.
const CALLS: [&str; 5] = [
    "SELECT (make_item($1)).price",
    "SELECT make_item($1)",
    "SELECT total(ARRAY[make_item($1), make_item($1 + 1)])",
    "SELECT * FROM summary_of(3 + $1 % 3)",
    "SELECT count(*) FROM items WHERE qty > $1 % 3",
];

fn client_loop(
    info: &ConnInfo,
    c: i32,
    kind: Kind,
    statements: Statements,
    watch: Option<&Watch>,
    stop: &AtomicBool,
) -> Tally {
    let mut tally = Tally::default();
    let connect = || info.connect().map_err(|e| chain(&e));
    match kind {
        Kind::Session => {
            let watch = watch.expect("sessions have a watch");
            let mut session = None;
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let started = Instant::now();
                if session.is_none() {
                    session = connect()
                        .ok()
                        .and_then(|client| Session::new(client, "api", "^1", watch).ok());
                }
                let Some(s) = session.as_mut() else {
                    tally.record(started.elapsed(), Err("cannot connect and select".into()));
                    continue;
                };
                let arg = c * 1000 + i;
                let result = s
                    .transaction(|w| {
                        for sql in CALLS {
                            match statements {
                                Statements::Prepared => {
                                    w.query(sql, &[&arg])?;
                                }
                                Statements::Unprepared => {
                                    w.transaction().query(sql, &[&arg])?;
                                }
                            }
                        }
                        Ok(())
                    })
                    .map_err(|e| first_line(&chain(&e)));
                if result.is_err() && s.client().is_closed() {
                    session = None;
                }
                tally.record(started.elapsed(), result);
            }
            tally.switches = session.map(|s| s.switches()).unwrap_or(0);
        }
        Kind::Plain => {
            let mut client: Option<(postgres::Client, Vec<postgres::Statement>)> = None;
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let started = Instant::now();
                if client.is_none() {
                    client = connect().ok().and_then(|mut cl| {
                        cl.query_one("SELECT _pgpm.set_search_path('api', '^1')", &[])
                            .ok()?;
                        let prepared = match statements {
                            Statements::Prepared => CALLS
                                .iter()
                                .map(|sql| cl.prepare(sql))
                                .collect::<std::result::Result<Vec<_>, _>>()
                                .ok()?,
                            Statements::Unprepared => Vec::new(),
                        };
                        Some((cl, prepared))
                    });
                }
                let Some((cl, prepared)) = client.as_mut() else {
                    tally.record(started.elapsed(), Err("cannot connect and select".into()));
                    continue;
                };
                let arg = c * 1000 + i;
                let result = (|| -> std::result::Result<(), postgres::Error> {
                    let mut tx = cl.transaction()?;
                    for (n, sql) in CALLS.iter().enumerate() {
                        match prepared.get(n) {
                            Some(s) => tx.query(s, &[&arg])?,
                            None => tx.query(*sql, &[&arg])?,
                        };
                    }
                    tx.commit()
                })()
                .map_err(|e| first_line(&chain(&e)));
                if result.is_err() && cl.is_closed() {
                    client = None;
                }
                tally.record(started.elapsed(), result);
            }
        }
    }
    tally
}

/// An error's first line, with numbers (schema revisions, OIDs) replaced,
/// so that errors of one kind are counted together.
fn first_line(s: &str) -> String {
    let line = s.lines().next().unwrap_or("");
    let mut out = String::new();
    let mut digits = false;
    for ch in line.chars() {
        if ch.is_ascii_digit() {
            if !digits {
                out.push('N');
            }
            digits = true;
        } else {
            digits = false;
            out.push(ch);
        }
    }
    out.chars().take(160).collect()
}

fn render(args: &Args, outcomes: &[Outcome]) -> String {
    let mut out = String::new();
    writeln!(
        out,
        "\n{} clients, {} redeploys, one every {} s; each transaction makes {} calls\n",
        args.clients,
        args.redeploys,
        args.interval,
        CALLS.len()
    )
    .expect("a String");
    writeln!(
        out,
        "| mode / clients / statements | transactions | failed | failed % | longest transaction | most frequent error |"
    )
    .expect("a String");
    writeln!(out, "|---|---:|---:|---:|---:|---|").expect("a String");
    for o in outcomes {
        let top = o
            .errors
            .iter()
            .max_by_key(|(_, n)| **n)
            .map(|(e, n)| format!("{e} ({n})"))
            .unwrap_or_else(|| "-".into());
        writeln!(
            out,
            "| {} | {} | {} | {:.2}% | {} ms | {} |",
            o.label,
            o.transactions,
            o.failed,
            if o.transactions == 0 {
                0.0
            } else {
                o.failed as f64 * 100.0 / o.transactions as f64
            },
            o.longest.as_millis(),
            top.replace('|', "\\|")
        )
        .expect("a String");
    }
    out
}
