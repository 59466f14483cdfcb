//! Finding, setting up and timing the tools the benchmark compares, and the
//! databases they run against.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use pgpm::cluster::Cluster;
use pgpm::db::conninfo::ConnInfo;
use pgpm::db::quote::quote_ident;

type Result<T> = std::result::Result<T, String>;

/// The median of some durations (the lower middle one for an even count).
pub fn median(times: &[Duration]) -> Duration {
    let mut sorted = times.to_vec();
    sorted.sort_unstable();
    sorted
        .get((sorted.len().max(1) - 1) / 2)
        .copied()
        .unwrap_or_default()
}

/// A duration for the table: milliseconds below ten seconds, else seconds.
pub fn secs(d: Duration) -> String {
    if d < Duration::from_secs(10) {
        format!("{:.0} ms", d.as_secs_f64() * 1000.0)
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}

/// Builds the release `pgpm` binary and returns its path: the benchmark
/// measures what users run. The binary sits in the same target directory
/// as this example (`target/<profile>/examples/bench`).
pub fn build_pgpm() -> Result<PathBuf> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    eprintln!("building the release pgpm binary (cargo build --release --bin pgpm)");
    let status = Command::new(cargo)
        .args(["build", "--release", "--bin", "pgpm"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !status.success() {
        return Err("cargo build --release --bin pgpm failed".into());
    }
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let target = exe
        .ancestors()
        .nth(3)
        .ok_or("cannot find the target directory")?;
    let pgpm = target.join("release").join("pgpm");
    if !pgpm.is_file() {
        return Err(format!(
            "{} not found after building; pass --pgpm PATH",
            pgpm.display()
        ));
    }
    Ok(pgpm)
}

/// Runs a command to completion and returns its wall time, or its output
/// as the error when it fails.
fn timed(cmd: &mut Command) -> Result<(Duration, Output)> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let start = Instant::now();
    let child = cmd
        .spawn()
        .map_err(|e| format!("cannot run {:?}: {e}", cmd.get_program()))?;
    let output = child.wait_with_output().map_err(|e| e.to_string())?;
    let took = start.elapsed();
    if !output.status.success() {
        return Err(format!(
            "{} exited with {}: {}{}",
            Path::new(cmd.get_program()).display(),
            output.status,
            tail(&output.stderr),
            tail(&output.stdout)
        ));
    }
    Ok((took, output))
}

fn tail(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(8)..].join("\n")
}

fn find_in_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}

/// A Python interpreter with a package importable.
pub struct Python {
    pub exe: PathBuf,
    pub version: String,
}

impl Python {
    /// The interpreter behind `$PYTHON` or `python3` with distribution
    /// `dist` installed at version `want` (any when `None`) and the modules
    /// of `imports` importable; otherwise why not, with how to install it.
    fn find(
        dist: &str,
        want: Option<&str>,
        imports: &str,
        install: &str,
    ) -> std::result::Result<Python, String> {
        let python = std::env::var_os("PYTHON").unwrap_or_else(|| "python3".into());
        let script = format!(
            "import sys\nfrom importlib.metadata import version\nprint(sys.executable)\nprint('%d.%d.%d' % sys.version_info[:3])\ntry:\n    print(version({dist:?}))\nexcept Exception:\n    print('-')\n    sys.exit()\ntry:\n    import {imports}\n    print('ok')\nexcept Exception as e:\n    print(type(e).__name__ + ': ' + str(e))"
        );
        let not_installed = || {
            let want = want.map(|w| format!(" {w}")).unwrap_or_default();
            format!("{dist}{want} is not installed (`{install}`)")
        };
        let out = Command::new(&python)
            .args(["-c", &script])
            .stderr(Stdio::null())
            .output()
            .map_err(|_| {
                format!(
                    "{} not found; {}",
                    python.to_string_lossy(),
                    not_installed()
                )
            })?;
        let text = String::from_utf8_lossy(&out.stdout);
        let lines: Vec<&str> = text.lines().map(str::trim).collect();
        let [exe, python_version, version, rest @ ..] = lines.as_slice() else {
            return Err(not_installed());
        };
        if *version == "-" || want.is_some_and(|w| w != *version) {
            return Err(not_installed());
        }
        match rest.first() {
            Some(&"ok") => Ok(Python {
                exe: PathBuf::from(exe),
                version: version.to_string(),
            }),
            Some(error) => Err(format!(
                "{dist} {version} is installed but does not run on Python {python_version}: {error}"
            )),
            None => Err(not_installed()),
        }
    }

    /// `python -c <code> args...`, with `sys.argv[1:]` = `args`.
    fn command(&self, code: &str) -> Command {
        let mut cmd = Command::new(&self.exe);
        cmd.arg("-c").arg(code);
        cmd
    }

    const ANCESTOR: &'static str =
        "import sys\nfrom pgpm.app import main\nsys.argv[0] = 'pgpm'\nsys.exit(main())";

    /// The ancestor's `pgpm install`, untimed: its catalog must exist before
    /// it deploys. Its errors are printed, not signalled, so the schema is
    /// checked afterwards.
    pub fn ancestor_install(&self, conn: &str, cwd: &Path) -> Result<()> {
        let (_, out) = timed(
            self.command(Self::ANCESTOR)
                .args(["install", conn])
                .current_dir(cwd),
        )?;
        let text = String::from_utf8_lossy(&out.stdout);
        if text.contains("Something went wrong") {
            return Err(format!("pgpm 0.1.62 install failed: {}", tail(&out.stdout)));
        }
        Ok(())
    }

    /// The ancestor's `pgpm deploy`, run in the package folder (it reads
    /// `config.json` from the working directory).
    pub fn ancestor_deploy(&self, conn: &str, package: &Path) -> Result<Duration> {
        let (took, out) = timed(
            self.command(Self::ANCESTOR)
                .args(["deploy", conn])
                .current_dir(package),
        )?;
        let text = String::from_utf8_lossy(&out.stdout);
        if !text.contains("Deployed") {
            return Err(format!(
                "pgpm 0.1.62 deploy did not deploy: {}",
                tail(&out.stdout)
            ));
        }
        Ok(took)
    }

    /// `lp-migrate CONN DIR --apply-all`, through its entry point.
    pub fn lp_migrate(&self, conn: &str, patches: &Path) -> Result<Duration> {
        let (took, _) = timed(
            self.command("import sys\nfrom lazr.postgresql.migrate import main\nsys.exit(main())")
                .arg(conn)
                .arg(patches)
                .arg("--apply-all"),
        )?;
        Ok(took)
    }
}

/// Every tool the benchmark may run; the optional ones carry why they are
/// missing instead.
pub struct Tools {
    pub pgpm: PathBuf,
    pub psql: PathBuf,
    pub ancestor: std::result::Result<Python, String>,
    pub lazr: std::result::Result<Python, String>,
    pub sqitch: std::result::Result<PathBuf, String>,
    pub gnu_time: Option<PathBuf>,
    pgpm_version: String,
    psql_version: String,
    sqitch_version: Option<String>,
}

impl Tools {
    pub fn find(pgpm: PathBuf) -> Result<Tools> {
        let version = |program: &Path| -> Option<String> {
            let out = Command::new(program).arg("--version").output().ok()?;
            out.status.success().then(|| {
                String::from_utf8_lossy(&out.stdout)
                    .lines()
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_string()
            })
        };
        let pgpm_version =
            version(&pgpm).ok_or_else(|| format!("cannot run {}", pgpm.display()))?;
        let psql =
            find_in_path("psql").ok_or("psql not found: apt-get install postgresql-client")?;
        let psql_version = version(&psql).unwrap_or_default();
        let ancestor = Python::find(
            "pgpm",
            Some("0.1.62"),
            "pgpm.app, psycopg2",
            "pip install pgpm==0.1.62 psycopg2-binary",
        );
        let lazr = Python::find(
            "lazr.postgresql",
            None,
            "lazr.postgresql.migrate, psycopg2",
            "pip install lazr.postgresql psycopg2-binary",
        );
        let sqitch = find_in_path("sqitch")
            .filter(|_| {
                Command::new("perl")
                    .args(["-MDBD::Pg", "-e", "1"])
                    .stderr(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success())
            })
            .ok_or_else(|| {
                "Sqitch not installed (`apt-get install sqitch libdbd-pg-perl`)".to_string()
            });
        let sqitch_version = sqitch
            .as_ref()
            .ok()
            .and_then(|s| version(s))
            .map(|v| v.split_whitespace().last().unwrap_or("").to_string());
        let gnu_time = Some(PathBuf::from("/usr/bin/time")).filter(|p| {
            Command::new(p)
                .args(["-f", "%M", "true"])
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        });
        Ok(Tools {
            pgpm,
            psql,
            ancestor,
            lazr,
            sqitch,
            gnu_time,
            pgpm_version,
            psql_version,
            sqitch_version,
        })
    }

    pub fn sqitch_version(&self) -> Option<&str> {
        self.sqitch_version.as_deref()
    }

    /// One line per tool: its version, or why it is skipped.
    pub fn describe(&self) -> Vec<String> {
        let mut out = vec![
            format!("{} ({})", self.pgpm_version, self.pgpm.display()),
            self.psql_version.clone(),
        ];
        out.push(match &self.ancestor {
            Ok(p) => format!("Python pgpm {} ({})", p.version, p.exe.display()),
            Err(why) => why.clone(),
        });
        out.push(match &self.lazr {
            Ok(p) => format!("lazr.postgresql {}", p.version),
            Err(why) => why.clone(),
        });
        out.push(match (&self.sqitch, &self.sqitch_version) {
            (Ok(_), Some(v)) => format!("Sqitch {v}"),
            (Ok(_), None) => "Sqitch".into(),
            (Err(why), _) => why.clone(),
        });
        if self.gnu_time.is_none() {
            out.push("GNU time not found: no peak memory (`apt-get install time`)".into());
        }
        out
    }

    /// `psql -X -q -v ON_ERROR_STOP=1 -1 -f FILE`: the floor.
    pub fn psql_file(&self, conn: &str, file: &Path) -> Result<Duration> {
        let (took, _) = timed(
            Command::new(&self.psql)
                .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-1", "-f"])
                .arg(file)
                .arg(conn),
        )?;
        Ok(took)
    }

    fn pgpm(&self) -> Command {
        let mut cmd = Command::new(&self.pgpm);
        // Only the arguments say where to connect.
        cmd.env_remove("DATABASE_URL");
        cmd
    }

    /// `pgpm install`, untimed setup.
    pub fn pgpm_install(&self, conn: &str) -> Result<()> {
        timed(self.pgpm().args(["install", conn]))?;
        Ok(())
    }

    pub fn pgpm_deploy(&self, conn: &str, package: &Path) -> Result<Duration> {
        let (took, out) = timed(self.pgpm().args(["deploy", conn]).arg(package))?;
        expect_output(&out, "deployed bench 1.0.0")?;
        Ok(took)
    }

    /// `pgpm deploy` of a workspace of packages that are all new.
    pub fn pgpm_deploy_workspace(&self, conn: &str, workspace: &Path) -> Result<Duration> {
        let (took, out) = timed(self.pgpm().args(["deploy", conn]).arg(workspace))?;
        expect_output(&out, "deployed ")?;
        Ok(took)
    }

    /// `pgpm deploy` again, which must find nothing to do.
    pub fn pgpm_deploy_noop(&self, conn: &str, package: &Path) -> Result<Duration> {
        let (took, out) = timed(self.pgpm().args(["deploy", conn]).arg(package))?;
        expect_output(&out, "is up to date")?;
        Ok(took)
    }

    pub fn pgpm_migrate(&self, conn: &str, patches: &Path) -> Result<Duration> {
        let (took, out) = timed(
            self.pgpm()
                .args(["migrate", conn])
                .arg(patches)
                .arg("--all"),
        )?;
        expect_output(&out, "applied patch-")?;
        Ok(took)
    }

    /// `pgpm migrate --all` again, which must find nothing pending.
    pub fn pgpm_migrate_noop(&self, conn: &str, patches: &Path) -> Result<Duration> {
        let (took, out) = timed(
            self.pgpm()
                .args(["migrate", conn])
                .arg(patches)
                .arg("--all"),
        )?;
        expect_output(&out, "nothing to apply")?;
        Ok(took)
    }

    /// `pgpm plan DIR > /dev/null`: wall time and, with GNU time, peak
    /// resident memory in KiB.
    pub fn pgpm_plan(&self, dir: &Path) -> Result<(Duration, Option<u64>)> {
        self.pgpm_measured(Path::new("."), &["plan".as_ref(), dir.as_os_str()], None)
    }

    /// `pgpm ARGS` in `dir`, expecting `needle` in its output: wall time
    /// and, with GNU time, peak resident memory in KiB.
    pub fn pgpm_in(
        &self,
        dir: &Path,
        args: &[&str],
        needle: &str,
    ) -> Result<(Duration, Option<u64>)> {
        let args: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_ref()).collect();
        self.pgpm_measured(dir, &args, Some(needle))
    }

    /// `pgpm ARGS` in `dir` under GNU time when there is one; its output
    /// must hold `needle`, or is thrown away when there is none.
    fn pgpm_measured(
        &self,
        dir: &Path,
        args: &[&std::ffi::OsStr],
        needle: Option<&str>,
    ) -> Result<(Duration, Option<u64>)> {
        let report = tempfile::NamedTempFile::new().map_err(|e| e.to_string())?;
        let mut cmd = match &self.gnu_time {
            Some(time) => {
                let mut cmd = Command::new(time);
                cmd.args(["-f", "%M", "-o"])
                    .arg(report.path())
                    .arg(&self.pgpm);
                cmd
            }
            None => Command::new(&self.pgpm),
        };
        cmd.env_remove("DATABASE_URL").args(args).current_dir(dir);
        let took = match needle {
            Some(needle) => {
                let (took, out) = timed(&mut cmd)?;
                expect_output(&out, needle)?;
                took
            }
            None => {
                cmd.stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped());
                let start = Instant::now();
                let out = cmd.output().map_err(|e| format!("cannot run pgpm: {e}"))?;
                let took = start.elapsed();
                if !out.status.success() {
                    return Err(format!("pgpm {args:?} failed: {}", tail(&out.stderr)));
                }
                took
            }
        };
        let peak = self
            .gnu_time
            .as_ref()
            .and_then(|_| std::fs::read_to_string(report.path()).ok())
            .and_then(|s| s.trim().lines().last()?.trim().parse().ok());
        Ok((took, peak))
    }

    /// `sqitch deploy URI` in the project folder.
    pub fn sqitch_deploy(&self, uri: &str, project: &Path) -> Result<Duration> {
        let sqitch = self.sqitch.as_ref().map_err(Clone::clone)?;
        let (took, _) = timed(
            Command::new(sqitch)
                .args(["deploy", uri])
                .current_dir(project)
                .env("SQITCH_FULLNAME", "Bench")
                .env("SQITCH_EMAIL", "bench@example.com")
                // Sqitch runs psql for each change; only the URI says where,
                // and no TLS, like every other tool here.
                .env_remove("PGDATABASE")
                .env_remove("PGHOST")
                .env("PGSSLMODE", "disable"),
        )?;
        Ok(took)
    }
}

fn expect_output(out: &Output, needle: &str) -> Result<()> {
    let stdout = String::from_utf8_lossy(&out.stdout);
    if stdout.contains(needle) {
        return Ok(());
    }
    Err(format!(
        "expected \"{needle}\" in pgpm's output, got: {}{}",
        tail(&out.stdout),
        tail(&out.stderr)
    ))
}

/// Objects a deploy created.
pub struct Counts {
    pub functions: usize,
    pub views: usize,
}

/// Fresh databases on the benchmark's cluster, made and dropped untimed.
pub struct Databases {
    cluster: Cluster,
    admin: std::cell::RefCell<postgres::Client>,
}

impl Databases {
    pub fn new(cluster: &Cluster) -> Result<Databases> {
        let admin = cluster
            .conninfo("postgres")
            .connect()
            .map_err(|e| chain(&e))?;
        Ok(Databases {
            cluster: cluster.clone(),
            admin: std::cell::RefCell::new(admin),
        })
    }

    fn exec(&self, sql: &str) -> Result<()> {
        self.admin
            .borrow_mut()
            .batch_execute(sql)
            .map_err(|e| format!("{sql}: {e}"))
    }

    pub fn create(&self, name: &str) -> Result<()> {
        let q = quote_ident(name);
        self.exec(&format!("DROP DATABASE IF EXISTS {q}"))?;
        self.exec(&format!("CREATE DATABASE {q} TEMPLATE template0"))?;
        // Settle the new database's files before anything is timed.
        self.exec("CHECKPOINT")
    }

    pub fn drop(&self, name: &str) -> Result<()> {
        self.exec(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            quote_ident(name)
        ))
    }

    /// A libpq keyword/value string every tool accepts. TLS is off, as the
    /// cluster has none, so no tool spends a round trip asking for it.
    pub fn conn(&self, name: &str) -> String {
        format!(
            "host=127.0.0.1 port={} user=postgres dbname={name} sslmode=disable",
            self.cluster.port()
        )
    }

    pub fn sqitch_uri(&self, name: &str) -> String {
        format!("db:pg://postgres@127.0.0.1:{}/{name}", self.cluster.port())
    }

    fn connect(&self, name: &str) -> Result<postgres::Client> {
        ConnInfo::parse(&self.conn(name))
            .and_then(|c| c.connect())
            .map_err(|e| chain(&e))
    }

    /// Connects, then runs `file` as one simple query in one transaction:
    /// what the server spends on the script, without a client process.
    pub fn one_query(&self, name: &str, file: &Path) -> Result<Duration> {
        let sql = std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
        let start = Instant::now();
        let mut client = self.connect(name)?;
        let mut tx = client.transaction().map_err(|e| e.to_string())?;
        tx.batch_execute(&sql).map_err(|e| e.to_string())?;
        tx.commit().map_err(|e| e.to_string())?;
        drop(client);
        Ok(start.elapsed())
    }

    pub fn count_objects(&self, name: &str, schema: &str) -> Result<Counts> {
        let mut client = self.connect(name)?;
        let row = client
            .query_one(
                "SELECT (SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = $1),
                        (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relkind = 'v')",
                &[&schema],
            )
            .map_err(|e| e.to_string())?;
        Ok(Counts {
            functions: row.get::<_, i64>(0) as usize,
            views: row.get::<_, i64>(1) as usize,
        })
    }

    /// Tables named `t_*` in `public`: what the patches create.
    pub fn count_tables(&self, name: &str) -> Result<usize> {
        let mut client = self.connect(name)?;
        let n: i64 = client
            .query_one(
                "SELECT count(*) FROM pg_class WHERE relnamespace = 'public'::regnamespace AND relkind = 'r' AND relname LIKE 't\\_%'",
                &[],
            )
            .map_err(|e| e.to_string())?
            .get(0);
        Ok(n as usize)
    }

    fn server_version(&self) -> Result<String> {
        let row = self
            .admin
            .borrow_mut()
            .query_one("SELECT current_setting('server_version')", &[])
            .map_err(|e| e.to_string())?;
        Ok(row.get(0))
    }
}

/// A line about the machine and the server.
pub fn machine(db: Option<&Databases>) -> Result<String> {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let Some(db) = db else {
        return Ok(format!("{cpus} CPUs ({model})"));
    };
    let server = db.server_version()?;
    Ok(format!(
        "{cpus} CPUs ({model}), PostgreSQL {server} on a throwaway local cluster (fsync off), over TCP on 127.0.0.1"
    ))
}

/// An error and its causes on one line.
pub fn chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        source = cause.source();
    }
    out
}
