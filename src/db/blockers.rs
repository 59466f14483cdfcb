//! Who keeps a change waiting for a lock.
//!
//! Every lock-taking statement of a change runs under a short
//! `lock_timeout` (see [`ObjectLocks`]), so that a deploy queued behind a
//! session idle in transaction does not make every client queue behind the
//! deploy in turn. When the timeout fires, the waiting statement has been
//! cancelled and its locks are gone, so the blocker can no longer be asked
//! of the server (`pg_blocking_pids` needs the waiter). A [`BlockerWatch`]
//! asks while the change runs instead: from a connection of its own, a few
//! times a second, it records which sessions block the change's backend.

use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use postgres::GenericClient;
use postgres::error::SqlState;

use super::conninfo::ConnInfo;
use crate::event::Event;

/// How long each lock-taking statement may wait, and how often a change
/// starts again after one waited too long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObjectLocks {
    /// PostgreSQL's `lock_timeout` for the change's statements.
    pub timeout: Duration,
    /// How many times the change runs again after a lock timeout, waiting
    /// longer before each (backoff), before it gives up.
    pub retries: u32,
}

impl Default for ObjectLocks {
    fn default() -> ObjectLocks {
        ObjectLocks {
            timeout: Duration::from_secs(1),
            retries: 3,
        }
    }
}

impl ObjectLocks {
    /// `SET LOCAL lock_timeout = '...ms'`, for the change's script.
    pub fn set_local(&self) -> String {
        format!(
            "SET LOCAL lock_timeout = '{}ms'",
            self.timeout.as_millis().max(1)
        )
    }

    /// The pause before attempt `attempt` (1 for the first retry): 250 ms,
    /// doubling, at most 4 s, so clients get the lock queue back between
    /// attempts.
    pub fn backoff(&self, attempt: u32) -> Duration {
        Duration::from_millis(250u64 << attempt.saturating_sub(1).min(4))
            .min(Duration::from_secs(4))
    }
}

/// A session that held a lock a change waited for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blocker {
    pub pid: i32,
    /// `user@host, application`.
    pub who: String,
    /// `idle in transaction`, `active`, ...
    pub state: String,
    /// When its transaction started (`YYYY-MM-DD HH:MM:SS UTC`).
    pub since: String,
    /// When its last query started.
    pub query_start: String,
    /// The start of its last query.
    pub query: String,
}

impl std::fmt::Display for Blocker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "pid {} ({}), {} since {}, last query (at {}): {}",
            self.pid, self.who, self.state, self.since, self.query_start, self.query
        )
    }
}

impl ObjectLocks {
    /// What follows a lock timeout on attempt `*attempt` (0 for the first)
    /// of a change, once its transaction is rolled back: the error to give
    /// up with when no retry is left; else `on` hears of the retry, the
    /// pause passes, `*attempt` counts it, and `None` says to run again.
    /// `waited` is what waited; `watch` what saw the blockers.
    pub fn after_timeout(
        &self,
        attempt: &mut u32,
        waited: String,
        watch: Option<BlockerWatch>,
        on: &mut dyn FnMut(Event<'_>),
    ) -> Option<LockWaitError> {
        let blockers = watch.map(|w| w.blockers()).unwrap_or_default();
        if *attempt >= self.retries {
            return Some(LockWaitError {
                waiting: waited,
                attempts: *attempt + 1,
                timeout: self.timeout,
                blockers,
            });
        }
        *attempt += 1;
        on(Event::LockRetry {
            attempt: *attempt,
            of: self.retries,
            waiting: &waited,
            blocked_by: &describe(&blockers),
        });
        std::thread::sleep(self.backoff(*attempt));
        None
    }
}

/// Whether a statement was cancelled by its `lock_timeout`.
pub fn is_lock_timeout(err: &postgres::Error) -> bool {
    err.code() == Some(&SqlState::LOCK_NOT_AVAILABLE)
}

/// The blockers as one line: `pid 1 (...); pid 2 (...)`.
pub fn describe(blockers: &[Blocker]) -> String {
    blockers
        .iter()
        .map(Blocker::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// A change gave up: a statement waited longer than the lock timeout on
/// every attempt. Nothing was changed.
#[derive(Debug, thiserror::Error)]
#[error(
    "{waiting} waited longer than the lock timeout ({}) for a lock on each of {attempts} attempts{}; nothing was changed: let that transaction finish (or end it with SELECT pg_terminate_backend(pid)) and run again, or allow longer waits with --object-lock-timeout SECONDS",
    humantime(*timeout),
    if blockers.is_empty() { String::new() } else { format!(", held by {}", describe(blockers)) }
)]
pub struct LockWaitError {
    /// What waited: a package's file and line, or pgpm's own statement.
    pub waiting: String,
    pub attempts: u32,
    pub timeout: Duration,
    /// The sessions seen holding the lock (empty when not known).
    pub blockers: Vec<Blocker>,
}

fn humantime(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{} ms", d.as_millis())
    }
}

/// Watches, from a connection of its own, which sessions block one
/// backend; stops when dropped.
///
/// Starting and stopping cost the change nothing it would wait for: the
/// connection is opened by the watching thread, and dropping the watch
/// wakes the thread to end rather than waiting for it.
pub struct BlockerWatch {
    seen: Arc<Mutex<Vec<Blocker>>>,
    /// Dropped to stop the thread: its wait for the next poll ends at once.
    _stop: mpsc::Sender<()>,
}

const POLL: Duration = Duration::from_millis(100);

impl BlockerWatch {
    /// Starts watching the backend of `session` from a new connection to
    /// `info`. `None` when the session's pid cannot be read; when no second
    /// connection can be had (a full server, a pooler), nothing is watched.
    /// Either way lock timeouts are then reported without naming the
    /// blocker.
    pub fn start(info: &ConnInfo, session: &mut impl GenericClient) -> Option<BlockerWatch> {
        let pid: i32 = session
            .query_one("SELECT pg_backend_pid()", &[])
            .ok()?
            .get(0);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (stop, stopped) = mpsc::channel::<()>();
        let info = info.clone();
        let shared = seen.clone();
        std::thread::spawn(move || {
            let Ok(mut client) = info.connect() else {
                return;
            };
            let target = info.describe();
            // Since when the session waits, and when that was last told.
            let mut waiting: Option<(std::time::Instant, std::time::Instant)> = None;
            // Until the watch is dropped (the sender gone).
            while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(POLL) {
                let Ok(rows) = client.query(
                    "SELECT a.pid, coalesce(a.usename::text, '?') || '@'
                            || coalesce(host(a.client_addr), 'local')
                            || coalesce(', ' || nullif(a.application_name, ''), ''),
                            coalesce(a.state, 'unknown'),
                            coalesce(to_char(coalesce(a.xact_start, a.state_change) AT TIME ZONE 'UTC',
                                             'YYYY-MM-DD HH24:MI:SS') || ' UTC', 'unknown'),
                            coalesce(to_char(a.query_start AT TIME ZONE 'UTC', 'HH24:MI:SS'), 'unknown'),
                            left(regexp_replace(coalesce(a.query, ''), '\\s+', ' ', 'g'), 120)
                       FROM pg_stat_activity a
                      WHERE a.pid = ANY (pg_blocking_pids($1))
                      ORDER BY a.xact_start NULLS LAST, a.pid",
                    &[&pid],
                ) else {
                    return;
                };
                if rows.is_empty() {
                    waiting = None;
                } else {
                    let blockers: Vec<Blocker> = rows
                        .iter()
                        .map(|r| Blocker {
                            pid: r.get(0),
                            who: r.get(1),
                            state: r.get(2),
                            since: r.get(3),
                            query_start: r.get(4),
                            query: r.get(5),
                        })
                        .collect();
                    let now = std::time::Instant::now();
                    let (since, told) = waiting.get_or_insert((now, now));
                    if now.duration_since(*told) >= Duration::from_secs(1) {
                        *told = now;
                        crate::event::tell(crate::event::Background::LockWait {
                            target: &target,
                            waited: now.duration_since(*since),
                            blocked_by: &describe(&blockers),
                        });
                    }
                    *shared.lock().unwrap_or_else(|e| e.into_inner()) = blockers;
                }
            }
        });
        Some(BlockerWatch { seen, _stop: stop })
    }

    /// The sessions that blocked the backend when last seen blocked.
    pub fn blockers(&self) -> Vec<Blocker> {
        self.seen.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}
