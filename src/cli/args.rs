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
use pgpm::db::blockers::ObjectLocks;
use pgpm::db::conninfo::ConnInfo;
use pgpm::ops::deploy::Mode;
use pgpm::{Error, Result};

/// Where to connect, and the positionals that may hold it.
#[derive(Debug, Args)]
pub struct Target {
    /// Connection string: `host=... port=... dbname=... user=...` or a
    /// `postgres://` URI. Defaults to DATABASE_URL, then the PG* variables.
    #[arg(short = 'd', long = "db", value_name = "CONN")]
    pub db: Option<String>,
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

/// Resolves and opens the connection, printing what resolving it warns of.
pub fn connect(conn: Option<&str>) -> Result<(ConnInfo, postgres::Client)> {
    let info = ConnInfo::resolve(conn)?;
    for warning in info.warnings() {
        eprintln!("warning: {warning}");
    }
    let client = info.connect()?;
    Ok((info, client))
}

/// How long to wait for another pgpm run to release the database, and for
/// the locks on objects that the change's statements take.
#[derive(Debug, Args)]
pub struct LockArgs {
    /// Seconds to wait for another pgpm run to release its lock on the database.
    #[arg(long, value_name = "SECONDS", default_value_t = 60.0)]
    pub lock_timeout: f64,
    /// Seconds each statement may wait for a lock on a table, schema or
    /// function (PostgreSQL's lock_timeout): clients queue behind a waiting
    /// statement, so it gives up soon, rolls back and runs again.
    #[arg(long, value_name = "SECONDS", default_value_t = 1.0)]
    pub object_lock_timeout: f64,
    /// How many times to run again after a statement waited too long,
    /// pausing longer each time (250 ms, doubling).
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub object_lock_retries: u32,
}

impl LockArgs {
    pub fn timeout(&self) -> Duration {
        Duration::from_secs_f64(self.lock_timeout.max(0.0))
    }

    pub fn object_locks(&self) -> ObjectLocks {
        ObjectLocks {
            timeout: Duration::from_secs_f64(self.object_lock_timeout.max(0.001)),
            retries: self.object_lock_retries,
        }
    }
}

/// `--mode`: what to do when a package's schema exists.
#[derive(Debug, Args)]
pub struct ModeArg {
    /// What to do when a package's schema exists: refuse (safe), rename it
    /// to <schema>_<N> (moderate), drop it (unsafe) or deploy into it (overwrite).
    #[arg(short, long, default_value = "safe", value_parser = mode_parser())]
    pub mode: Mode,
}

fn mode_parser() -> impl clap::builder::TypedValueParser<Value = Mode> {
    use clap::builder::TypedValueParser;
    clap::builder::PossibleValuesParser::new(Mode::ALL.map(Mode::as_str))
        .map(|s| s.parse::<Mode>().expect("a possible value"))
}
