//! Sessions that switch API versions between transactions, never inside
//! one.
//!
//! A [`Watch`] hears deploys for the whole process: one connection that
//! LISTENs on a primary ([`Watch::listen`]), or one that polls the catalog
//! on a hot standby, where there is no NOTIFY ([`Watch::poll`]). It only
//! counts: every deploy or removal it hears moves its generation on.
//!
//! A [`Session`] is one connection with a package version selected
//! (without LISTEN: the watch listens for it). Work runs in
//! [`Session::transaction`]; before each transaction, when the watch moved
//! on since the last one, the session selects again, and its statements
//! are prepared afresh, since a prepared statement holds on to the
//! functions and types of the revision it was planned against. A
//! transaction in flight is never touched: it finishes on the revision it
//! began with, which `--mode revision` leaves in place.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use postgres::types::ToSql;
use postgres::{Client, Row, Statement, Transaction};

use crate::listener::{DeployListener, ListenerEvent};
use crate::{ApiVersion, ClientError, find_version, select_version_with};

/// Counts the deploys a process has heard of; cheap to clone and share
/// between sessions and threads. The thread behind it stops when the last
/// clone is dropped.
#[derive(Debug, Clone)]
pub struct Watch {
    inner: Arc<WatchInner>,
}

#[derive(Debug)]
struct WatchInner {
    generation: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl Drop for WatchInner {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// How often the listening thread looks whether it should stop.
const TICK: Duration = Duration::from_millis(200);

impl Watch {
    /// A watch that only [`Watch::bump`] moves on: for an application that
    /// hears of deploys its own way.
    pub fn manual() -> Watch {
        Watch {
            inner: Arc::new(WatchInner {
                generation: Arc::new(AtomicU64::new(0)),
                stop: Arc::new(AtomicBool::new(true)),
            }),
        }
    }

    /// Listens for deploys of `packages` (every package when empty) on one
    /// connection of its own, opened by `connect` (and again after it is
    /// lost: a reconnection counts as a deploy, since notifications sent
    /// meanwhile are lost). For a primary.
    pub fn listen<E>(
        connect: impl FnMut() -> Result<Client, E> + Send + 'static,
        packages: &[&str],
    ) -> Result<Watch, ClientError>
    where
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let mut listener = DeployListener::new(connect, packages)?;
        let watch = Watch::manual();
        watch.inner.stop.store(false, Ordering::Relaxed);
        let (generation, stop) = (watch.inner.generation.clone(), watch.inner.stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                match listener.next(TICK) {
                    Ok(Some(ListenerEvent::Deployed(_) | ListenerEvent::Reconnected { .. })) => {
                        generation.fetch_add(1, Ordering::SeqCst);
                    }
                    Ok(None) => {}
                    // The server refused the connection again: try later.
                    Err(_) => std::thread::sleep(TICK),
                }
            }
        });
        Ok(watch)
    }

    /// Polls the catalog every `every` on one connection of its own, opened
    /// by `connect`: for a hot standby, where LISTEN is not possible. A
    /// deploy on the primary is seen once the standby has replayed it.
    pub fn poll<E>(
        mut connect: impl FnMut() -> Result<Client, E> + Send + 'static,
        every: Duration,
    ) -> Result<Watch, ClientError>
    where
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let mut client = connect().map_err(|e| ClientError::Connect(e.into()))?;
        let mut last = last_change(&mut client)?;
        let watch = Watch::manual();
        watch.inner.stop.store(false, Ordering::Relaxed);
        let (generation, stop) = (watch.inner.generation.clone(), watch.inner.stop.clone());
        std::thread::spawn(move || {
            let mut client = Some(client);
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(every.min(TICK));
                let c = match client.as_mut() {
                    Some(c) => c,
                    None => match connect() {
                        Ok(c) => {
                            // Anything may have changed while away.
                            generation.fetch_add(1, Ordering::SeqCst);
                            client.insert(c)
                        }
                        Err(_) => continue,
                    },
                };
                match last_change(c) {
                    Ok(now) if now != last => {
                        last = now;
                        generation.fetch_add(1, Ordering::SeqCst);
                    }
                    Ok(_) => {}
                    Err(_) => client = None,
                }
                std::thread::sleep(every.saturating_sub(TICK));
            }
        });
        Ok(watch)
    }

    /// Moves the generation on: every session selects again before its
    /// next transaction.
    pub fn bump(&self) {
        self.inner.generation.fetch_add(1, Ordering::SeqCst);
    }

    /// How many deploys (and reconnections) were heard so far.
    pub fn generation(&self) -> u64 {
        self.inner.generation.load(Ordering::SeqCst)
    }
}

/// The catalog's last deployment id: it changes with every deploy and
/// removal that commits.
fn last_change(client: &mut Client) -> Result<i64, ClientError> {
    Ok(client
        .query_one("SELECT _pgpm.last_change()", &[])
        .map_err(ClientError::db("cannot read the catalog's last change"))?
        .get(0))
}

/// A connection on one selected version of a package, switching between
/// transactions when its [`Watch`] hears a deploy.
pub struct Session {
    client: Client,
    package: String,
    requirement: String,
    api: ApiVersion,
    watch: Watch,
    seen: u64,
    statements: HashMap<String, Statement>,
    switches: u64,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("package", &self.package)
            .field("requirement", &self.requirement)
            .field("api", &self.api)
            .field("switches", &self.switches)
            .finish()
    }
}

impl Session {
    /// Selects `requirement` of `package` on `client` (without LISTEN).
    pub fn new(
        mut client: Client,
        package: &str,
        requirement: &str,
        watch: &Watch,
    ) -> Result<Session, ClientError> {
        let seen = watch.generation();
        let api = select_version_with(&mut client, package, requirement, false)?;
        Ok(Session {
            client,
            package: package.to_string(),
            requirement: requirement.to_string(),
            api,
            watch: watch.clone(),
            seen,
            statements: HashMap::new(),
            switches: 0,
        })
    }

    /// The version the session uses now.
    pub fn api(&self) -> &ApiVersion {
        &self.api
    }

    /// How many times the session moved to another version or revision.
    pub fn switches(&self) -> u64 {
        self.switches
    }

    /// Runs `work` in one transaction and commits it (rolls it back when
    /// `work` fails). Before it begins, if a deploy was heard since the last
    /// transaction, selects again; when that gives another version or
    /// revision, the session's prepared statements and the connection's
    /// type cache are dropped, so the transaction runs entirely on the new
    /// one.
    pub fn transaction<T>(
        &mut self,
        work: impl FnOnce(&mut Work<'_>) -> Result<T, postgres::Error>,
    ) -> Result<T, ClientError> {
        let generation = self.watch.generation();
        if generation != self.seen {
            // Counted as seen only once the switch worked: a failed one is
            // tried again before the next transaction.
            self.switch()?;
            self.seen = generation;
        }
        let tx = self
            .client
            .transaction()
            .map_err(ClientError::db("cannot begin a transaction"))?;
        let mut w = Work {
            tx,
            statements: &mut self.statements,
        };
        let out = work(&mut w).map_err(ClientError::db("the transaction failed"))?;
        w.tx.commit()
            .map_err(ClientError::db("cannot commit the transaction"))?;
        Ok(out)
    }

    /// Selects again; drops what was prepared against the old selection
    /// when it changed (and, since a redeploy in place recreates types and
    /// functions under new OIDs, also when it did not).
    fn switch(&mut self) -> Result<(), ClientError> {
        let now = find_version(&mut self.client, &self.package, &self.requirement)?;
        if now != self.api {
            self.api =
                select_version_with(&mut self.client, &self.package, &self.requirement, false)?;
            self.switches += 1;
        }
        self.statements.clear();
        self.client.clear_type_cache();
        self.client
            .batch_execute("DISCARD PLANS")
            .map_err(ClientError::db("cannot discard cached plans"))
    }

    /// The connection, for work outside [`Session::transaction`].
    pub fn client(&mut self) -> &mut Client {
        &mut self.client
    }

    pub fn into_inner(self) -> Client {
        self.client
    }
}

/// A transaction of a [`Session`]: statements are prepared once per
/// selected version and reused.
pub struct Work<'a> {
    tx: Transaction<'a>,
    statements: &'a mut HashMap<String, Statement>,
}

impl<'a> Work<'a> {
    fn statement(&mut self, sql: &str) -> Result<Statement, postgres::Error> {
        if let Some(s) = self.statements.get(sql) {
            return Ok(s.clone());
        }
        let s = self.tx.prepare(sql)?;
        self.statements.insert(sql.to_string(), s.clone());
        Ok(s)
    }

    pub fn query(
        &mut self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, postgres::Error> {
        let s = self.statement(sql)?;
        self.tx.query(&s, params)
    }

    pub fn query_one(
        &mut self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Row, postgres::Error> {
        let s = self.statement(sql)?;
        self.tx.query_one(&s, params)
    }

    pub fn execute(
        &mut self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, postgres::Error> {
        let s = self.statement(sql)?;
        self.tx.execute(&s, params)
    }

    /// The transaction itself, for what the session does not cache.
    pub fn transaction(&mut self) -> &mut Transaction<'a> {
        &mut self.tx
    }
}
