//! The one lock every database change goes through.
//!
//! pgpm serialises `install`, `deploy`, `migrate` and `remove` with a
//! session-level advisory lock. It is polled with `pg_try_advisory_lock`
//! rather than waited for with `pg_advisory_lock`, so that a stuck holder
//! produces a clear error naming its pid after `--lock-timeout` instead of
//! a process hanging forever in CI. A session lock (not a transaction lock)
//! is used because `migrate` runs concurrent patches outside transactions.
//!
//! Those run on a second connection, which the server does not stop when
//! pgpm dies: a `CREATE INDEX CONCURRENTLY` goes on for as long as it takes.
//! So that no other pgpm starts meanwhile, a change holds a second key,
//! [`RUNNER_KEY`], which is handed to that second connection while it runs
//! ([`Locked::hand_over`]); taking the lock means taking both.

use std::ops::{Deref, DerefMut};
use std::thread::sleep;
use std::time::{Duration, Instant};

use postgres::Client;

use super::QueryError;

/// The advisory lock key: the bytes of "pgpm" as a big-endian integer.
pub const LOCK_KEY: i64 = 0x7067_706d;

/// The key held by whichever connection runs statements outside the
/// change's transaction ("pgpmr").
pub const RUNNER_KEY: i64 = 0x70_6770_6d72;

/// How long to wait for the lock when the user gives no `--lock-timeout`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

const POLL_INTERVAL: Duration = Duration::from_millis(50);

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "another pgpm run holds the lock on this database (pid {pid}, {since}); gave up after {waited:?}"
    )]
    Timeout {
        pid: i32,
        since: String,
        waited: Duration,
    },
    #[error(
        "this server is a read-only hot standby (in recovery): pgpm changes only a primary; connect to the primary, or give every host with target_session_attrs=read-write"
    )]
    Standby,
    #[error("cannot take pgpm's advisory lock")]
    Db(#[source] postgres::Error),
    #[error("interrupted while waiting for the lock; nothing was changed")]
    Interrupted,
}

/// A connection holding pgpm's advisory lock; the lock is released on drop.
pub struct Locked<'a> {
    client: &'a mut Client,
    /// The runner key went to another connection ([`Locked::hand_over`]).
    handed_over: bool,
}

impl<'a> Locked<'a> {
    /// Takes the lock (both keys), polling until `timeout` has passed.
    pub fn acquire(client: &'a mut Client, timeout: Duration) -> Result<Locked<'a>, LockError> {
        let start = Instant::now();
        // When the wait was last told (see `event::Background::LockWait`).
        let mut told = Duration::ZERO;
        for key in [LOCK_KEY, RUNNER_KEY] {
            loop {
                let row = client
                    .query_one(
                        "SELECT pg_try_advisory_lock($1), pg_is_in_recovery()",
                        &[&key],
                    )
                    .map_err(LockError::Db)?;
                // Every change writes: on a standby it would fail at its
                // first write with a raw "read-only transaction" error.
                if row.get::<_, bool>(1) {
                    let _ = client.execute("SELECT pg_advisory_unlock_all()", &[]);
                    return Err(LockError::Standby);
                }
                if row.get::<_, bool>(0) {
                    break;
                }
                if super::connect::interrupted() {
                    let _ = client.execute("SELECT pg_advisory_unlock_all()", &[]);
                    return Err(LockError::Interrupted);
                }
                if start.elapsed() >= timeout {
                    let (pid, since) = holder(client, key).map_err(LockError::Db)?;
                    let _ = client.execute("SELECT pg_advisory_unlock_all()", &[]);
                    return Err(LockError::Timeout {
                        pid,
                        since,
                        waited: start.elapsed(),
                    });
                }
                if crate::event::observed() && start.elapsed() >= told + Duration::from_secs(1) {
                    told = start.elapsed();
                    if let Ok((pid, since)) = holder(client, key) {
                        crate::event::tell(crate::event::Background::LockWait {
                            target: "",
                            waited: told,
                            blocked_by: &format!("pid {pid}, another pgpm run ({since})"),
                        });
                    }
                }
                sleep(POLL_INTERVAL);
            }
        }
        Ok(Locked {
            client,
            handed_over: false,
        })
    }
}

impl Locked<'_> {
    /// Gives the runner key to `runner`, the connection that runs
    /// statements outside the change's transaction: the server keeps it
    /// held while a statement of that connection runs, even if pgpm dies.
    pub fn hand_over(&mut self, runner: &mut Client) -> Result<(), LockError> {
        self.client
            .execute("SELECT pg_advisory_unlock($1)", &[&RUNNER_KEY])
            .map_err(LockError::Db)?;
        self.handed_over = true;
        // Nobody else can take it between the two: they need LOCK_KEY
        // first. A runner on another server (a multi-host connection
        // string) would be refused here rather than run unguarded.
        let got: bool = runner
            .query_one("SELECT pg_try_advisory_lock($1)", &[&RUNNER_KEY])
            .map_err(LockError::Db)?
            .get(0);
        if !got {
            let (pid, since) = holder(runner, RUNNER_KEY).map_err(LockError::Db)?;
            return Err(LockError::Timeout {
                pid,
                since,
                waited: Duration::ZERO,
            });
        }
        Ok(())
    }

    /// Begins the transaction a change runs in, on the locked connection.
    pub fn begin(&mut self) -> Result<postgres::Transaction<'_>, QueryError> {
        self.client
            .transaction()
            .map_err(QueryError::with("cannot begin a transaction"))
    }
}

/// Who holds `key` and since when, from `pg_locks` and `pg_stat_activity`.
fn holder(client: &mut Client, key: i64) -> Result<(i32, String), postgres::Error> {
    let row = client.query_opt(
        "SELECT l.pid,
                coalesce('running since ' || to_char(a.backend_start, 'YYYY-MM-DD HH24:MI:SS TZ')
                         || ', ' || coalesce(a.application_name, '') || ' from '
                         || coalesce(host(a.client_addr), 'local socket')
                         || ', state ' || coalesce(a.state, 'unknown'), 'unknown')
           FROM pg_locks l
           LEFT JOIN pg_stat_activity a ON a.pid = l.pid
          WHERE l.locktype = 'advisory' AND l.granted
            AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
            AND l.classid = ($1::bigint >> 32)::int::oid AND l.objid = ($1::bigint & 4294967295)::oid
            AND l.objsubid = 1",
        &[&key],
    )?;
    Ok(row
        .map(|r| (r.get(0), r.get(1)))
        .unwrap_or((0, "holder already gone".into())))
}

impl Drop for Locked<'_> {
    fn drop(&mut self) {
        // If the connection is broken the server has released the lock already.
        let _ = if self.handed_over {
            self.client
                .execute("SELECT pg_advisory_unlock($1)", &[&LOCK_KEY])
        } else {
            self.client.execute(
                "SELECT pg_advisory_unlock($1), pg_advisory_unlock($2)",
                &[&LOCK_KEY, &RUNNER_KEY],
            )
        };
    }
}

impl Deref for Locked<'_> {
    type Target = Client;
    fn deref(&self) -> &Client {
        self.client
    }
}

impl DerefMut for Locked<'_> {
    fn deref_mut(&mut self) -> &mut Client {
        self.client
    }
}
