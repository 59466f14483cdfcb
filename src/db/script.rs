//! The script of a change: the exact list of actions that `--dry-run`
//! prints and that [`execute`] runs, in the caller's transaction.
//!
//! A package's statements are sent in few large batches (one per phase, one
//! per table script) rather than one round trip per statement, which is what
//! makes a deploy as fast as `psql -1 -f`. Each batch runs under a savepoint
//! so that, when the server's error carries no position, the batch can be
//! replayed statement by statement to find the failing one and report its
//! `file:line:column`.

use std::path::PathBuf;

use postgres::Transaction;
use postgres::error::SqlState;
use postgres::types::ToSql;

use super::QueryError;
use super::marks;
use super::quote::quote_literal;
use crate::event::Event;
use crate::util::text::{char_to_byte, line_col};

/// A parameter bound to a catalog write.
#[derive(Debug, Clone, PartialEq)]
pub enum Param {
    Text(Option<String>),
    Int(i32),
    /// An integer or NULL.
    OptInt(Option<i32>),
    BigInt(i64),
    Bool(bool),
}

impl Param {
    pub fn text(value: impl Into<String>) -> Param {
        Param::Text(Some(value.into()))
    }

    fn as_sql(&self) -> &(dyn ToSql + Sync) {
        match self {
            Param::Text(v) => v,
            Param::Int(v) => v,
            Param::OptInt(v) => v,
            Param::BigInt(v) => v,
            Param::Bool(v) => v,
        }
    }

    /// The value as an SQL literal, for printing a script.
    pub fn to_literal(&self) -> String {
        match self {
            Param::Text(Some(v)) => quote_literal(v),
            Param::Text(None) => "NULL".into(),
            Param::Int(v) => v.to_string(),
            Param::OptInt(v) => v.map_or("NULL".into(), |v| v.to_string()),
            Param::BigInt(v) => v.to_string(),
            Param::Bool(v) => v.to_string(),
        }
    }
}

/// Where a statement of a batch came from.
#[derive(Debug, Clone)]
pub struct Origin {
    /// Byte offset of the statement in the batch.
    pub start: usize,
    /// Byte length of the statement in the batch.
    pub len: usize,
    /// The file as found on disk (the package folder joined with the file).
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
}

/// One thing a script runs, in order.
#[derive(Debug, Clone)]
pub enum Action {
    /// A comment in the printed script; runs nothing.
    Note(String),
    /// SQL that pgpm generated: identifiers quoted, no values.
    Sql(String),
    /// SQL with values bound as parameters.
    Bound {
        sql: &'static str,
        params: Vec<Param>,
    },
    /// Statements from a package's files, sent together.
    Batch {
        package: String,
        sql: String,
        origins: Vec<Origin>,
        /// Whether `sql` resets and advances the session's progress marks
        /// (see [`super::marks`]), so a failure is located without
        /// running anything again.
        marked: bool,
    },
}

/// The exact list of actions a change runs.
#[derive(Debug, Clone, Default)]
pub struct Script {
    pub actions: Vec<Action>,
}

impl Script {
    pub fn push(&mut self, action: Action) {
        self.actions.push(action);
    }

    /// Whether the script runs nothing (notes only, or empty).
    pub fn is_empty(&self) -> bool {
        self.actions.iter().all(|a| matches!(a, Action::Note(_)))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ScriptError {
    /// A statement of a package's files failed: the user's to fix.
    #[error("{package}: {}:{line}:{column}: statement failed", file.display())]
    Statement {
        package: String,
        file: PathBuf,
        line: usize,
        column: usize,
        #[source]
        source: postgres::Error,
    },
    /// A statement ended pgpm's transaction (which the plan refuses, so
    /// this is defence in depth): what ran before it may be committed.
    #[error(
        "{package}: a statement of its files ended pgpm's transaction (a COMMIT, ROLLBACK or the like that planning did not see); what ran before it may have been committed: check `pgpm status` and the schema"
    )]
    TransactionEnded {
        package: String,
        #[source]
        source: postgres::Error,
    },
    /// The process was asked to stop before the script finished.
    #[error("interrupted; the transaction was rolled back, so nothing was changed")]
    Interrupted,
    /// The connection broke before the script's transaction committed.
    #[error(
        "lost the connection to the server while {doing}; the transaction was not committed, so nothing was changed"
    )]
    ConnectionLost {
        doing: String,
        #[source]
        source: postgres::Error,
    },
    #[error(transparent)]
    Query(#[from] QueryError),
}

impl ScriptError {
    pub fn is_user_error(&self) -> bool {
        matches!(self, ScriptError::Statement { .. })
    }

    /// When a statement was cancelled by its `lock_timeout`: what waited
    /// (a package's file and position, or pgpm's own statement).
    pub fn lock_timed_out(&self) -> Option<String> {
        let lock = super::blockers::is_lock_timeout;
        match self {
            ScriptError::Statement {
                package,
                file,
                line,
                column,
                source,
            } if lock(source) => Some(format!(
                "{package}: the statement at {}:{line}:{column}",
                file.display()
            )),
            ScriptError::Query(q) if lock(&q.source) => Some(match q.context.strip_prefix(OWN) {
                Some(sql) => format!("pgpm's statement {sql}"),
                None => q.context.clone(),
            }),
            _ => None,
        }
    }

    /// A failed action's error: [`ScriptError::ConnectionLost`] when the
    /// server did not answer at all, else `other`.
    fn or_lost(
        source: postgres::Error,
        doing: impl FnOnce() -> String,
        other: impl FnOnce(postgres::Error) -> ScriptError,
    ) -> ScriptError {
        if connection_lost(&source) {
            ScriptError::ConnectionLost {
                doing: doing(),
                source,
            }
        } else {
            other(source)
        }
    }
}

/// How the error of a statement pgpm generated starts.
const OWN: &str = "pgpm's statement failed: ";

/// Runs the script's actions in the caller's transaction; `on` hears each
/// note as the section it opens starts to run.
pub fn execute(
    tx: &mut Transaction<'_>,
    script: &Script,
    on: &mut dyn FnMut(Event<'_>),
) -> Result<(), ScriptError> {
    for action in &script.actions {
        if super::connect::interrupted() {
            return Err(ScriptError::Interrupted);
        }
        match action {
            Action::Note(note) => on(Event::Section { note }),
            Action::Sql(sql) => {
                on(Event::Statement {
                    sql,
                    file: None,
                    line: 0,
                });
                tx.batch_execute(sql).map_err(|e| {
                    ScriptError::or_lost(
                        e,
                        || format!("running {sql}"),
                        |e| QueryError::with(format!("{OWN}{sql}"))(e).into(),
                    )
                })?
            }
            Action::Bound { sql, params } => {
                on(Event::Statement {
                    sql,
                    file: None,
                    line: 0,
                });
                let params: Vec<&(dyn ToSql + Sync)> = params.iter().map(Param::as_sql).collect();
                tx.execute(*sql, &params).map_err(|e| {
                    ScriptError::or_lost(
                        e,
                        || "writing the catalog".into(),
                        |e| QueryError::with(format!("catalog write failed: {sql}"))(e).into(),
                    )
                })?;
            }
            Action::Batch {
                package,
                sql,
                origins,
                marked,
            } => {
                for o in origins {
                    on(Event::Statement {
                        sql: &sql[o.start..o.start + o.len],
                        file: Some(&o.file),
                        line: o.line,
                    });
                }
                run_batch(tx, package, sql, origins, *marked)?
            }
        }
    }
    Ok(())
}

/// Runs a batch under a savepoint; on failure, finds the statement and
/// its position in the user's file.
fn run_batch(
    tx: &mut Transaction<'_>,
    package: &str,
    sql: &str,
    origins: &[Origin],
    marked: bool,
) -> Result<(), ScriptError> {
    let doing = || format!("deploying {package}");
    let mut sp = tx.savepoint("pgpm_batch").map_err(|e| {
        ScriptError::or_lost(e, doing, |e| {
            QueryError::with("cannot set a savepoint")(e).into()
        })
    })?;
    let err = match sp.batch_execute(sql) {
        Ok(()) => {
            // The savepoint is gone when a statement ended the transaction.
            return sp.commit().map_err(|e| {
                ScriptError::or_lost(e, doing, |source| ScriptError::TransactionEnded {
                    package: package.to_string(),
                    source,
                })
            });
        }
        Err(err) if connection_lost(&err) => {
            return Err(ScriptError::ConnectionLost {
                doing: doing(),
                source: err,
            });
        }
        Err(err) => err,
    };
    if let Some(pos) = error_position(&err) {
        let byte = char_to_byte(sql, pos);
        if let Some(origin) = origins.iter().rev().find(|o| o.start <= byte) {
            return Err(statement_error(
                package,
                origin,
                &sql[origin.start..origin.start + origin.len],
                Some(byte - origin.start),
                err,
            ));
        }
    }
    sp.rollback().map_err(|e| {
        ScriptError::or_lost(e, doing, |e| {
            QueryError::with("cannot roll back a savepoint")(e).into()
        })
    })?;
    // No usable position: the marks say how many statements completed, so
    // the failing one is the next.
    if marked && let Some(origin) = marks::completed(tx).and_then(|done| origins.get(done)) {
        return Err(statement_error(
            package,
            origin,
            &sql[origin.start..origin.start + origin.len],
            None,
            err,
        ));
    }
    // A statement stopped from outside (cancelled, timed out, a lock not
    // granted, a deadlock) would only be stopped again: report the batch.
    if stopped_from_outside(&err) {
        let origin = &origins[0];
        return Err(statement_error(
            package,
            origin,
            &sql[origin.start..origin.start + origin.len],
            None,
            err,
        ));
    }
    // Without marks: replay statement by statement to find the culprit.
    let mut sp = tx.savepoint("pgpm_replay").map_err(|e| {
        ScriptError::or_lost(e, doing, |e| {
            QueryError::with("cannot set a savepoint")(e).into()
        })
    })?;
    for origin in origins {
        let text = &sql[origin.start..origin.start + origin.len];
        if let Err(e) = sp.batch_execute(text) {
            if connection_lost(&e) {
                return Err(ScriptError::ConnectionLost {
                    doing: doing(),
                    source: e,
                });
            }
            let offset = error_position(&e).map(|p| char_to_byte(text, p));
            return Err(statement_error(package, origin, text, offset, e));
        }
    }
    // The batch failed but no single statement did: report the first.
    let origin = &origins[0];
    Err(statement_error(
        package,
        origin,
        &sql[origin.start..origin.start + origin.len],
        None,
        err,
    ))
}

/// Errors that stop a statement from outside rather than fault it.
const STOPPED_FROM_OUTSIDE: &[SqlState] = &[
    SqlState::QUERY_CANCELED,
    SqlState::LOCK_NOT_AVAILABLE,
    SqlState::T_R_DEADLOCK_DETECTED,
    SqlState::T_R_SERIALIZATION_FAILURE,
    SqlState::IDLE_IN_TRANSACTION_SESSION_TIMEOUT,
];

/// Whether a statement was stopped from outside (cancelled, timed out, a
/// lock not granted, a deadlock) rather than faulty: running it again to
/// find it would only do the same.
pub fn stopped_from_outside(err: &postgres::Error) -> bool {
    err.code().is_some_and(|c| STOPPED_FROM_OUTSIDE.contains(c))
}

/// Whether an error means the connection is gone: no answer from the
/// server, or the server ending the session (FATAL: terminated, shut down).
fn connection_lost(err: &postgres::Error) -> bool {
    use std::error::Error as _;
    match err.as_db_error() {
        Some(db) => matches!(db.severity(), "FATAL" | "PANIC"),
        // No answer from the server: the socket failed or closed. A value
        // that could not be encoded never reached it.
        None => err.is_closed() || err.source().is_none_or(|s| s.is::<std::io::Error>()),
    }
}

/// PostgreSQL's 1-based character position of an error in the sent text.
pub fn error_position(err: &postgres::Error) -> Option<usize> {
    match err.as_db_error()?.position()? {
        postgres::error::ErrorPosition::Original(p) => Some(*p as usize),
        postgres::error::ErrorPosition::Internal { .. } => None,
    }
}

fn statement_error(
    package: &str,
    origin: &Origin,
    text: &str,
    offset_in_statement: Option<usize>,
    source: postgres::Error,
) -> ScriptError {
    let (line, column) = match offset_in_statement {
        Some(offset) => {
            let offset = offset.min(text.len());
            let (l, c) = line_col(text, offset);
            if l == 1 {
                (origin.line, origin.column + c - 1)
            } else {
                (origin.line + l - 1, c)
            }
        }
        None => (origin.line, origin.column),
    };
    ScriptError::Statement {
        package: package.to_string(),
        file: origin.file.clone(),
        line,
        column,
        source,
    }
}
