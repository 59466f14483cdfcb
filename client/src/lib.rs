//! The client API for applications: choosing which deployed version of a
//! package a connection uses, and hearing when a deploy changes that.
//!
//! pgpm deploys each version of a versioned package into a schema of its
//! own (`billing_1_4_0` next to `billing_1_3_2`), so old and new
//! application releases run side by side. An application names the versions
//! it was written for as a requirement (`^1.4`, `~1.4.2`, `>=1.2, <2`, or
//! the ancestor's `01_04_xx`), and [`select_version`] calls the catalog's
//! `_pgpm.set_search_path`, which sets the connection's `search_path` to
//! the highest deployed version that satisfies it, then the schemas of the
//! exact dependency versions it was deployed against, then `public`. The
//! application then calls `invoice_total(...)` unqualified and gets the
//! version it asked for. The database matches requirements exactly as the
//! `semver` crate does (`tests/semver_sql.rs` checks it), so "^1.4" means
//! the same to the application, to pgpm and to the catalog.
//!
//! # Long-lived connections must hear about deploys
//!
//! A connection pool keeps connections for hours; a deploy in the meantime
//! can bring a newer matching version (the connection keeps using the old
//! one until it selects again), or overwrite the schema it uses, which
//! drops and re-creates its types and functions under new OIDs. Clients
//! cache OIDs: the `postgres` crate caches the OIDs of custom types (see
//! [`postgres::Client::clear_type_cache`]), prepared statements hold plans
//! that name functions by OID, and ORMs keep their own maps. The same
//! happens when the server itself is upgraded to a new major version under
//! a load balancer, which is the problem django-postgres-hot-upgrade solves
//! for Django: it remembers the server's version after each connection and,
//! when it changes, clears Django's cache of extension OIDs.
//!
//! Every deploy NOTIFYs channel [`DEPLOY_CHANNEL`] and the package's own
//! channel ([`package_channel`]; see [`protocol`]) with `{package, version, schema, mode}`,
//! when its transaction commits. Two ways to hear it:
//!
//! - [`DeployListener`] keeps a dedicated connection (opened by a closure
//!   the application gives, so it decides about TLS and pooling) that LISTENs and
//!   blocks until an event arrives ([`DeployListener::next`]). When that
//!   connection is lost it reconnects and reports
//!   [`ListenerEvent::Reconnected`] with the server's version number before
//!   and after (a restart for a major upgrade shows as a different
//!   `server_version_num`); notifications sent while it was away are lost,
//!   so treat a reconnection as "anything may have changed".
//! - A connection that called [`select_version`] LISTENs on its package's
//!   channel too; [`take_pending`] collects what it has received, without
//!   blocking, for example before each unit of work.
//!
//! On an event, a pool would: call [`find_version`] to see whether the same
//! requirement now selects another version, and if so call
//! [`select_version`] again on each connection (or recycle them); drop
//! cached prepared statements and call `clear_type_cache()`. Record
//! [`server_version_num`] after connecting and compare it later to catch a
//! server upgrade, as django-postgres-hot-upgrade does.
//!
//! `select_version` changes session state (`search_path`, `LISTEN`), so it
//! suits session pooling, not transaction pooling (pgbouncer
//! `pool_mode=transaction`), where the next transaction may run on another
//! server connection. Inside a transaction, both take effect for the
//! session only when it commits; a rollback undoes them.
//!
//! ```no_run
//! use std::time::Duration;
//! use pgpm_client::{self as client, DeployListener, ListenerEvent};
//!
//! # fn main() -> Result<(), pgpm_client::ClientError> {
//! let url = "postgres://app@localhost/app";
//! let connect = || postgres::Client::connect(url, postgres::NoTls);
//! let mut conn = connect().map_err(|e| client::ClientError::Connect(e.into()))?;
//! let api = client::select_version(&mut conn, "billing", "^1.4")?;
//! println!("using billing {} from {}", api.version, api.search_path);
//!
//! let mut listener = DeployListener::new(connect, &["billing"])?;
//! while let Some(event) = listener.next(Duration::from_secs(30))? {
//!     if let ListenerEvent::Deployed(e) = &event {
//!         println!("{} {} deployed", e.package, e.version);
//!     }
//!     let now = client::find_version(&mut conn, "billing", "^1.4")?;
//!     if now.version != api.version || matches!(event, ListenerEvent::Reconnected { .. }) {
//!         client::select_version(&mut conn, "billing", "^1.4")?;
//!         conn.clear_type_cache();
//!     }
//! }
//! # Ok(())
//! # }
//! ```
//!
//! The role an application connects as needs `pgpm install --usage ROLE`
//! (EXECUTE on the catalog's functions) and the usual grants on the
//! package's schemas; it needs no access to the catalog's tables, because
//! `_pgpm.api_version` is `SECURITY DEFINER`.

mod listener;
pub mod protocol;
mod session;

use postgres::fallible_iterator::FallibleIterator;
use postgres::{Client, GenericClient, Notification};
use semver::Version;
use serde::Deserialize;

pub use listener::{DeployListener, Events, ListenerEvent, RECONNECT_DELAY};
pub use protocol::{DEPLOY_CHANNEL, DeployEvent, is_pgpm_channel, package_channel};
pub use session::{Session, Watch, Work};

/// SQLSTATE of `_pgpm.set_search_path` when no deployed version satisfies
/// the requirement.
pub const SQLSTATE_NO_MATCH: &str = "PGPM1";

/// SQLSTATE of `_pgpm.set_search_path` when the requirement cannot be read.
pub const SQLSTATE_BAD_REQUIREMENT: &str = "PGPM2";

/// Errors of the client API.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No current deployed version satisfies the requirement (SQLSTATE
    /// `PGPM1`).
    #[error(
        "no deployed version of package \"{package}\" satisfies \"{requirement}\"; versions that exist: {}",
        if available.is_empty() { "none".to_string() } else { available.join(", ") }
    )]
    NoMatch {
        package: String,
        requirement: String,
        /// The current deployed versions, highest first.
        available: Vec<String>,
    },
    /// The requirement cannot be read (SQLSTATE `PGPM2`).
    #[error(
        "\"{requirement}\" is not a version requirement ({reason}): write a Cargo-style range like ^1.2 or >=1.4, <2 (or the old forms 01_02_xx, >01_02_03, x)"
    )]
    BadRequirement { requirement: String, reason: String },
    /// The database has no pgpm catalog, or one older than the client API
    /// (catalog version 4).
    #[error(
        "this database has no pgpm client API (no catalog, or one older than version 4): run `pgpm install` or `pgpm install --upgrade`"
    )]
    NoCatalog {
        #[source]
        source: postgres::Error,
    },
    /// The role may not call the catalog's functions.
    #[error("this role may not use the pgpm catalog: grant it with `pgpm install --usage ROLE`")]
    NotPermitted {
        #[source]
        source: postgres::Error,
    },
    /// A notification on a pgpm channel that is not a deploy event.
    #[error(
        "notification on channel \"{channel}\" is not a pgpm deploy event ({reason}): {payload}"
    )]
    BadEvent {
        channel: String,
        payload: String,
        reason: String,
    },
    /// The catalog answered something this pgpm cannot read.
    #[error("unexpected answer from the pgpm catalog ({reason}): {answer}")]
    BadAnswer { answer: String, reason: String },
    /// The connection could not be opened (by the closure given to
    /// [`DeployListener::new`]).
    #[error("cannot connect")]
    Connect(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// Another database error; `context` says what was being done.
    #[error("{context}")]
    Db {
        context: String,
        #[source]
        source: postgres::Error,
    },
}

impl ClientError {
    /// Whether a user can fix the error (pgpm's exit code 1) rather than it
    /// being unexpected (exit code 2).
    pub fn is_user_error(&self) -> bool {
        match self {
            ClientError::NoMatch { .. }
            | ClientError::BadRequirement { .. }
            | ClientError::NoCatalog { .. }
            | ClientError::NotPermitted { .. } => true,
            ClientError::Connect(_)
            | ClientError::BadEvent { .. }
            | ClientError::BadAnswer { .. }
            | ClientError::Db { .. } => false,
        }
    }

    pub(crate) fn db(context: impl Into<String>) -> impl FnOnce(postgres::Error) -> ClientError {
        let context = context.into();
        move |source| ClientError::Db { context, source }
    }
}

/// The version of a package a connection was given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiVersion {
    pub package: String,
    pub version: Version,
    /// The version's schema; `None` for a `scope: database` package.
    pub schema: Option<String>,
    /// The `search_path` as set (or as it would be set), identifiers quoted:
    /// the schema, its dependencies' schemas, then `public`.
    pub search_path: String,
}

/// The JSON that `_pgpm.api_version` and `_pgpm.set_search_path` return.
#[derive(Deserialize)]
struct Answer {
    package: String,
    version: String,
    schema: Option<String>,
    search_path: String,
}

/// Selects the API version of `package` for this connection: sets its
/// `search_path` to the highest deployed version that satisfies
/// `requirement`, then that version's dependencies, then `public`, and
/// LISTENs on [`package_channel`]. Calls `_pgpm.set_search_path`.
///
/// Renamed old revisions and removed versions are never selected. A
/// pre-release is selected only when the requirement names one of the same
/// major.minor.patch (`>=2.0.0-rc.1`), as in Cargo.
pub fn select_version(
    client: &mut impl GenericClient,
    package: &str,
    requirement: &str,
) -> Result<ApiVersion, ClientError> {
    call(
        client,
        "_pgpm.set_search_path($1, $2)",
        package,
        requirement,
    )
}

/// [`select_version`], choosing whether the connection LISTENs. A pool
/// selects with `listen` false on each connection and hears deploys on one
/// connection per process ([`Watch`]): every idle session that LISTENs
/// slows every NOTIFY of the database. Needs catalog version 10 or later.
/// On a hot standby neither form listens.
pub fn select_version_with(
    client: &mut impl GenericClient,
    package: &str,
    requirement: &str,
    listen: bool,
) -> Result<ApiVersion, ClientError> {
    let function = if listen {
        "_pgpm.set_search_path($1, $2, true)"
    } else {
        "_pgpm.set_search_path($1, $2, false)"
    };
    call(client, function, package, requirement)
}

/// What [`select_version`] would select now, without changing the
/// connection. Calls `_pgpm.api_version`.
pub fn find_version(
    client: &mut impl GenericClient,
    package: &str,
    requirement: &str,
) -> Result<ApiVersion, ClientError> {
    call(client, "_pgpm.api_version($1, $2)", package, requirement)
}

fn call(
    client: &mut impl GenericClient,
    function: &str,
    package: &str,
    requirement: &str,
) -> Result<ApiVersion, ClientError> {
    let row = client
        .query_one(&format!("SELECT {function}"), &[&package, &requirement])
        .map_err(|e| call_error(e, package, requirement))?;
    let json: serde_json::Value = row.get(0);
    let bad = |reason: String| ClientError::BadAnswer {
        answer: json.to_string(),
        reason,
    };
    let answer: Answer = serde_json::from_value(json.clone()).map_err(|e| bad(e.to_string()))?;
    let version = Version::parse(&answer.version).map_err(|e| bad(e.to_string()))?;
    Ok(ApiVersion {
        package: answer.package,
        version,
        schema: answer.schema,
        search_path: answer.search_path,
    })
}

/// Maps the catalog's SQLSTATEs to [`ClientError`] variants.
fn call_error(err: postgres::Error, package: &str, requirement: &str) -> ClientError {
    let Some(db) = err.as_db_error() else {
        return ClientError::Db {
            context: format!("cannot select a version of package \"{package}\""),
            source: err,
        };
    };
    match db.code().code() {
        SQLSTATE_NO_MATCH => {
            // The message ends "; versions that exist: 1.4.2, 1.4.0" (or "none");
            // versions never contain ", ".
            let available = db
                .message()
                .rsplit_once("; versions that exist: ")
                .map(|(_, list)| list)
                .filter(|list| *list != "none")
                .map(|list| list.split(", ").map(str::to_string).collect())
                .unwrap_or_default();
            ClientError::NoMatch {
                package: package.to_string(),
                requirement: requirement.to_string(),
                available,
            }
        }
        SQLSTATE_BAD_REQUIREMENT => ClientError::BadRequirement {
            requirement: requirement.to_string(),
            reason: db.detail().unwrap_or("unreadable").to_string(),
        },
        // undefined_function, invalid_schema_name
        "42883" | "3F000" => ClientError::NoCatalog { source: err },
        // insufficient_privilege
        "42501" => ClientError::NotPermitted { source: err },
        _ => ClientError::Db {
            context: format!("cannot select a version of package \"{package}\""),
            source: err,
        },
    }
}

/// The server's version as a number (`server_version_num`: 170002 for
/// 17.2). Remember it after connecting; a different number later means the
/// server was upgraded or replaced, and cached OIDs are stale.
pub fn server_version_num(client: &mut impl GenericClient) -> Result<i32, ClientError> {
    Ok(client
        .query_one(
            "SELECT pg_catalog.current_setting('server_version_num')::pg_catalog.int4",
            &[],
        )
        .map_err(ClientError::db("cannot read the server's version"))?
        .get(0))
}

/// The notifications a connection had received, sorted out.
#[derive(Debug, Default)]
pub struct Pending {
    /// Deploy events, in the order they arrived.
    pub events: Vec<DeployEvent>,
    /// Every other notification: other channels the application LISTENs
    /// on, and payloads on pgpm channels that are not deploy events.
    pub other: Vec<Notification>,
}

/// Collects the notifications `client` has received, without blocking: deploy
/// events on the package channels that [`select_version`] LISTENs on, and
/// the rest. Takes every pending notification off the connection, so the
/// application's own ones come back in [`Pending::other`].
///
/// A synchronous connection reads notifications only while it waits for the
/// server, so this makes one round trip (an empty query): everything
/// committed before the call is then in hand.
pub fn take_pending(client: &mut Client) -> Result<Pending, ClientError> {
    client
        .batch_execute("")
        .map_err(ClientError::db("cannot read notifications"))?;
    let mut pending = Pending::default();
    let mut notifications = client.notifications();
    let mut iter = notifications.iter();
    while let Some(n) = iter
        .next()
        .map_err(ClientError::db("cannot read notifications"))?
    {
        match is_pgpm_channel(n.channel())
            .then(|| DeployEvent::from_notification(&n).ok())
            .flatten()
        {
            Some(event) => pending.events.push(event),
            None => pending.other.push(n),
        }
    }
    Ok(pending)
}
