//! Arguments several commands share, and the one rule for positionals.
//!
//! Every command that connects takes `-d/--db CONN`. Positional arguments
//! keep their old forms (`deploy CONN PATH`, `plan PATH CONN`, `migrate
//! CONN DIR`) under one rule: a positional that looks like a connection
//! (it has a `=`, or is a `postgres://` / `postgresql://` URI) is the
//! connection, any other is the path.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use pgpm::config::{GlobalConfig, Project, Selection};
use pgpm::db::blockers::ObjectLocks;
use pgpm::db::conninfo::ConnInfo;
use pgpm::ops::deploy::Mode;
use pgpm::ops::fleet::FleetOptions;
use pgpm::{Error, Result};

/// Where to connect, and the positionals that may hold it.
#[derive(Debug, Args)]
pub struct Target {
    /// Connection string: `host=... port=... dbname=... user=...` or a
    /// `postgres://` URI. Defaults to --target, then the default target of
    /// pgpm.toml, then DATABASE_URL and the PG* variables (of the
    /// environment, then of the project's .env).
    #[arg(short = 'd', long = "db", value_name = "CONN")]
    pub db: Option<String>,
    /// A target of pgpm.toml (or of the ancestor's ~/.pgpmconfig) by name;
    /// repeat, or separate with commas, for several.
    #[arg(
        short = 't',
        long = "target",
        value_name = "NAME",
        value_delimiter = ','
    )]
    pub targets: Vec<String>,
    /// Every target of this environment (a set: run against each).
    #[arg(long = "env", value_name = "ENV")]
    pub env: Option<String>,
    /// With --env: only the targets of this product.
    #[arg(long, value_name = "PRODUCT", requires = "env")]
    pub product: Option<String>,
    /// With --env: only these targets (by name; commas or repeats).
    #[arg(
        long = "name",
        value_name = "NAME",
        value_delimiter = ',',
        requires = "env"
    )]
    pub names: Vec<String>,
    /// With --env and --name: every target of the set but those named.
    #[arg(long, requires = "names")]
    pub except: bool,
    /// The project config [default: pgpm.toml here or in the nearest
    /// directory above].
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The ancestor's global config, read over ~/.pgpmconfig.
    #[arg(long, value_name = "FILE")]
    pub global_config: Option<PathBuf>,
    /// With a set: how many targets run at once [default: two per core].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub jobs: Option<u32>,
    /// With a set: start no further target once one failed.
    #[arg(long)]
    pub fail_fast: bool,
    /// With a set: run N targets first, and the rest only if they succeed.
    #[arg(long, value_name = "N")]
    pub canary: Option<usize>,
    /// Retry connecting until the server accepts connections, for up to
    /// SECONDS [default: 60] (containers that start the database alongside).
    #[arg(long, value_name = "SECONDS", num_args = 0..=1, default_missing_value = "60")]
    pub wait: Option<f64>,
    /// The project config, read once per command.
    #[arg(skip)]
    project: std::sync::OnceLock<Box<Project>>,
}

/// A target as `pgpm targets` lists it.
pub struct Listed {
    pub name: String,
    pub environment: Option<String>,
    pub product: Option<String>,
    /// `user@host:port/dbname`, never a password.
    pub connection: String,
    pub source: PathBuf,
}

/// One database a command runs against.
#[derive(Debug, Clone)]
pub struct Connection {
    /// The target's name, or the connection described.
    pub name: String,
    pub info: ConnInfo,
}

/// What a command runs against.
pub enum Targets {
    One(Connection),
    /// A set: each target in turn (or in parallel), as a fleet.
    Set(Vec<Connection>),
}

impl Target {
    /// The `[defaults]` of the project's config (none without one, or when
    /// it cannot be read: the command reports that when it resolves).
    pub fn defaults(&self) -> pgpm::config::Defaults {
        self.project()
            .map(|p| p.defaults.clone())
            .unwrap_or_default()
    }

    /// The project config around the current directory, read (and
    /// `pgpm.toml` and `.env` found) on first use only.
    pub fn project(&self) -> Result<&Project> {
        if let Some(project) = self.project.get() {
            return Ok(project);
        }
        let cwd = std::env::current_dir().map_err(Error::io("."))?;
        let project = Project::discover(&cwd, self.config.as_deref())?;
        Ok(self.project.get_or_init(|| Box::new(project)))
    }

    /// Resolves what the command runs against, given the connection of
    /// the positionals (or -d).
    pub fn resolve(&self, conn: Option<&str>) -> Result<Targets> {
        let mut project = self.project()?.clone();
        let selection = self.selection();
        if selection.targets.is_empty() && selection.env.is_none() {
            let info = project.default_conninfo(conn)?;
            for warning in info.warnings() {
                eprintln!("warning: {warning}");
            }
            let name = project
                .default
                .clone()
                .filter(|_| conn.is_none())
                .unwrap_or_else(|| info.describe());
            return Ok(Targets::One(Connection { name, info }));
        }
        if let Some(conn) = conn {
            return Err(Error::Usage(format!(
                "a connection ({}) and a selection of targets (--target, --env) are both given: give one",
                redacted(conn)
            )));
        }
        // An environment's set is every target of it, in both files; a
        // named target is read from the ancestor's only when the project
        // lacks it (a RESDB set queries a database).
        let home = std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".pgpmconfig"));
        if self.global_config.is_some()
            || selection.env.is_some()
            || project.select(&selection).is_err()
        {
            let global = GlobalConfig::read(home.as_deref(), self.global_config.as_deref())?;
            for name in project.add_global(&global)? {
                eprintln!(
                    "warning: target {name} of the ancestor's config is shadowed by pgpm.toml's"
                );
            }
        }
        let mut out = Vec::new();
        for target in project.select(&selection)? {
            out.push(Connection {
                name: target.name.clone(),
                info: project.conninfo(target)?,
            });
        }
        Ok(if selection.is_set() {
            Targets::Set(out)
        } else {
            Targets::One(out.remove(0))
        })
    }

    /// The targets the selection names (every target without one), for
    /// `pgpm targets`.
    pub fn list(&self) -> Result<Vec<Listed>> {
        let mut project = self.project()?.clone();
        let home = std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".pgpmconfig"));
        let global = GlobalConfig::read(home.as_deref(), self.global_config.as_deref())?;
        for name in project.add_global(&global)? {
            eprintln!("warning: target {name} of the ancestor's config is shadowed by pgpm.toml's");
        }
        let selection = self.selection();
        let chosen: Vec<&pgpm::config::TargetDef> =
            if selection.targets.is_empty() && selection.env.is_none() {
                project.targets.iter().collect()
            } else {
                project.select(&selection)?
            };
        chosen
            .into_iter()
            .map(|t| {
                Ok(Listed {
                    name: t.name.clone(),
                    environment: t.environment.clone(),
                    product: t.product.clone(),
                    connection: project.conninfo(t)?.describe(),
                    source: t.source.clone(),
                })
            })
            .collect()
    }

    fn selection(&self) -> Selection {
        Selection {
            targets: self.targets.clone(),
            env: self.env.clone(),
            product: self.product.clone(),
            names: self.names.clone(),
            except: self.except,
        }
    }

    /// Like [`Target::resolve`], for commands that run against one target.
    pub fn one(&self, conn: Option<&str>) -> Result<Connection> {
        match self.resolve(conn)? {
            Targets::One(c) => Ok(c),
            Targets::Set(set) => Err(Error::Usage(format!(
                "this command runs against one database, and the selection names {}: {}",
                set.len(),
                set.iter()
                    .map(|c| c.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        }
    }

    /// Opens a connection, retrying for `--wait` seconds while the server
    /// does not accept connections yet.
    pub fn open(&self, conn: &Connection) -> Result<postgres::Client> {
        let deadline = self
            .wait
            .map(|s| std::time::Instant::now() + Duration::from_secs_f64(s.max(0.0)));
        loop {
            match conn.info.connect() {
                Ok(client) => return Ok(client),
                Err(e)
                    if deadline.is_some_and(|d| std::time::Instant::now() < d)
                        && e.is_refused() =>
                {
                    std::thread::sleep(Duration::from_millis(250));
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// How a fleet runs, from the flags and the project's defaults.
    pub fn fleet(&self, project_jobs: Option<usize>) -> FleetOptions {
        FleetOptions {
            jobs: self
                .jobs
                .map(|j| j as usize)
                .or(project_jobs)
                .unwrap_or_else(FleetOptions::default_jobs),
            fail_fast: self.fail_fast,
            canary: self.canary.unwrap_or(0),
        }
    }
}

/// A connection and a path from `-d` and up to two positionals.
pub struct Positionals {
    pub conn: Option<String>,
    pub path: Option<PathBuf>,
}

/// Sorts positionals by the rule above; two of a kind, or a connection
/// both given with `-d` and as a positional, is a usage error.
pub fn positionals(db: Option<String>, args: Vec<String>) -> Result<Positionals> {
    let mut out = Positionals {
        conn: db,
        path: None,
    };
    let from_flag = out.conn.is_some();
    for arg in args {
        if looks_like_conn(&arg) {
            if out.conn.is_some() {
                let why = if from_flag {
                    "a connection is given both with -d/--db and as an argument"
                } else {
                    "two connection strings given"
                };
                return Err(Error::Usage(format!("{why}: {}", redacted(&arg))));
            }
            out.conn = Some(arg);
        } else {
            if let Some(first) = &out.path {
                return Err(Error::Usage(format!(
                    "two paths given ({} and {arg}); a connection string has a `=` or is a postgres:// URI",
                    first.display()
                )));
            }
            out.path = Some(arg.into());
        }
    }
    Ok(out)
}

/// Whether an argument is a connection rather than a path.
pub fn looks_like_conn(arg: &str) -> bool {
    arg.contains('=') || arg.starts_with("postgres://") || arg.starts_with("postgresql://")
}

/// A connection argument for a message, without anything that may be a password.
fn redacted(arg: &str) -> String {
    ConnInfo::parse(arg)
        .map(|info| info.describe())
        .unwrap_or_else(|_| "(unreadable connection string)".into())
}

/// Resolves and opens the one connection a command runs against,
/// printing what resolving it warns of.
pub fn connect(target: &Target, conn: Option<&str>) -> Result<(ConnInfo, postgres::Client)> {
    let conn = target.one(conn)?;
    let client = target.open(&conn)?;
    Ok((conn.info, client))
}

/// How long to wait for another pgpm run to release the database, and for
/// the locks on objects that the change's statements take.
#[derive(Debug, Args)]
pub struct LockArgs {
    /// Seconds to wait for another pgpm run to release its lock on the
    /// database [default: 60, or lock_timeout of pgpm.toml's [defaults]].
    #[arg(long, value_name = "SECONDS")]
    pub lock_timeout: Option<f64>,
    /// Seconds each statement may wait for a lock on a table, schema or
    /// function (PostgreSQL's lock_timeout): clients queue behind a waiting
    /// statement, so it gives up soon, rolls back and runs again [default:
    /// 1, or object_lock_timeout of [defaults]].
    #[arg(long, value_name = "SECONDS")]
    pub object_lock_timeout: Option<f64>,
    /// How many times to run again after a statement waited too long,
    /// pausing longer each time (250 ms, doubling) [default: 3, or
    /// object_lock_retries of [defaults]].
    #[arg(long, value_name = "N")]
    pub object_lock_retries: Option<u32>,
}

impl LockArgs {
    /// The wait for pgpm's own lock: the flag, else the project's default.
    pub fn timeout(&self, target: &Target) -> Duration {
        let seconds = self
            .lock_timeout
            .or_else(|| target.defaults().lock_timeout)
            .unwrap_or(pgpm::db::lock::DEFAULT_TIMEOUT.as_secs_f64());
        Duration::from_secs_f64(seconds.max(0.0))
    }

    /// The object lock timeout and retries: the flags, else the project's
    /// defaults, else pgpm's.
    pub fn object_locks(&self, target: &Target) -> ObjectLocks {
        let defaults = target.defaults();
        let built_in = ObjectLocks::default();
        ObjectLocks {
            timeout: self
                .object_lock_timeout
                .or(defaults.object_lock_timeout)
                .map_or(built_in.timeout, |s| Duration::from_secs_f64(s.max(0.001))),
            retries: self
                .object_lock_retries
                .or(defaults.object_lock_retries)
                .unwrap_or(built_in.retries),
        }
    }
}

/// `--mode`: what to do when a package's schema exists.
#[derive(Debug, Args)]
pub struct ModeArg {
    /// What to do when a package's schema exists: refuse (safe), deploy a
    /// new revision beside it (revision), rename it to <schema>_<N>
    /// (moderate), drop it (unsafe) or deploy into it (overwrite)
    /// [default: safe, or the mode of pgpm.toml's [defaults]].
    #[arg(short, long, value_parser = mode_parser())]
    pub mode: Option<Mode>,
}

fn mode_parser() -> impl clap::builder::TypedValueParser<Value = Mode> {
    use clap::builder::TypedValueParser;
    clap::builder::PossibleValuesParser::new(Mode::ALL.map(Mode::as_str))
        .map(|s| s.parse::<Mode>().expect("a possible value"))
}

/// The commands that take the ancestor's `set ENV PRODUCT` spelling.
const SET_COMMANDS: &[&str] = &[
    "deploy",
    "execute",
    "install",
    "uninstall",
    "list",
    "targets",
    "migrate",
    "status",
    "remove",
    "gc",
];

/// Rewrites the ancestor's spellings into pgpm's, so its users' scripts
/// keep working: `CMD set ENV PRODUCT [--except] [NAME...]` is `CMD --env
/// ENV --product PRODUCT [--except] [--name NAME,...]`, `list` is
/// `targets`, `--debug-mode` is `--verbose` and `--send-email` is
/// `--announce`. Anything else is left as it is.
pub fn ancestor_spelling(args: Vec<std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    let text = |i: usize| args.get(i).and_then(|a| a.to_str());
    let plain = |arg: &std::ffi::OsString| -> std::ffi::OsString {
        match arg.to_str() {
            Some("--debug-mode") => "--verbose".into(),
            Some("--send-email") => "--announce".into(),
            _ => arg.clone(),
        }
    };
    // The command comes after the global flags (`pgpm -v deploy set ...`);
    // of those, --log-file and --color take a value of their own.
    let mut at = 1;
    while let Some(arg) = text(at).filter(|a| a.starts_with('-')) {
        at += if matches!(arg, "--log-file" | "--color") {
            2
        } else {
            1
        };
    }
    let Some(command) = text(at).filter(|c| SET_COMMANDS.contains(c)) else {
        return args.iter().map(plain).collect();
    };
    let mut out: Vec<std::ffi::OsString> = args[..at].iter().map(plain).collect();
    out.push(
        if command == "list" {
            "targets"
        } else {
            command
        }
        .into(),
    );
    let mut i = at + 1;
    if text(i) == Some("set") && text(i + 1).is_some() && text(i + 2).is_some() {
        out.extend(
            [
                "--env",
                text(i + 1).unwrap(),
                "--product",
                text(i + 2).unwrap(),
            ]
            .map(Into::into),
        );
        i += 3;
        let mut names = Vec::new();
        while let Some(arg) = text(i) {
            match arg {
                "--except" => out.push("--except".into()),
                name if !name.starts_with('-') && !looks_like_conn(name) => names.push(name),
                _ => break,
            }
            i += 1;
        }
        if !names.is_empty() {
            out.push("--name".into());
            out.push(names.join(",").into());
        }
    }
    out.extend(args[i.min(args.len())..].iter().map(plain));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spelled(args: &[&str]) -> Vec<String> {
        ancestor_spelling(args.iter().map(Into::into).collect())
            .into_iter()
            .map(|a| a.into_string().unwrap())
            .collect()
    }

    #[test]
    fn the_ancestors_set_spelling_becomes_a_selection() {
        assert_eq!(
            spelled(&[
                "pgpm",
                "deploy",
                "set",
                "test",
                "shop",
                "--except",
                "a",
                "b",
                "--debug-mode"
            ]),
            [
                "pgpm",
                "deploy",
                "--env",
                "test",
                "--product",
                "shop",
                "--except",
                "--name",
                "a,b",
                "--verbose"
            ]
        );
        assert_eq!(
            spelled(&["pgpm", "list", "set", "prod", "shop"]),
            ["pgpm", "targets", "--env", "prod", "--product", "shop"]
        );
        // Without `set`, and for other commands, nothing changes.
        assert_eq!(
            spelled(&["pgpm", "deploy", "host=x", "set"]),
            ["pgpm", "deploy", "host=x", "set"]
        );
        assert_eq!(spelled(&["pgpm", "plan", "set"]), ["pgpm", "plan", "set"]);
        // After global flags, and with the ancestor's flags anywhere.
        assert_eq!(
            spelled(&[
                "pgpm",
                "--log-file",
                "x.log",
                "-v",
                "install",
                "set",
                "prod",
                "shop"
            ]),
            [
                "pgpm",
                "--log-file",
                "x.log",
                "-v",
                "install",
                "--env",
                "prod",
                "--product",
                "shop"
            ]
        );
        assert_eq!(
            spelled(&["pgpm", "--debug-mode", "plan", "."]),
            ["pgpm", "--verbose", "plan", "."]
        );
    }
}
