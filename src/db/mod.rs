//! Talking to PostgreSQL: connection targets, connecting, quoting, pgpm's
//! lock, and the script of actions a change runs.

pub mod blockers;
pub mod connect;
pub mod conninfo;
pub mod lock;
pub mod marks;
pub mod quote;
pub mod script;

/// A statement pgpm itself issued failed; `context` says what pgpm was
/// doing. Always unexpected (exit 2): pgpm's own SQL should not fail.
#[derive(Debug, thiserror::Error)]
#[error("{context}")]
pub struct QueryError {
    pub context: String,
    #[source]
    pub source: postgres::Error,
}

impl QueryError {
    /// Wraps a database error with what pgpm was doing when it happened:
    /// `.map_err(QueryError::with("cannot read the catalog"))`.
    pub fn with(context: impl Into<String>) -> impl FnOnce(postgres::Error) -> QueryError {
        let context = context.into();
        move |source| QueryError { context, source }
    }
}
