//! `pgpm execute`: a statement run in autocommit, once or repeatedly until
//! its first column says 0 (the ancestor's runner for batch jobs that work
//! through a backlog a slice at a time: `SELECT archive_old_rows(10000)`).

use std::time::Duration;

use postgres::{Client, SimpleQueryMessage};

use crate::db::QueryError;
use crate::event::Event;

/// How `execute` runs its statement.
#[derive(Debug, Clone)]
pub struct ExecuteOptions {
    pub query: String,
    /// Run again while the first column of the first row is not 0.
    pub until_zero: bool,
    /// At most this many runs with `until_zero`.
    pub max_runs: u64,
    /// The pause between runs.
    pub pause: Duration,
}

/// What `execute` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecuteReport {
    pub runs: u64,
    /// The first column of the first row of the last run, if any.
    pub last: Option<String>,
    /// With `until_zero`: it reached 0 (or returned no row).
    pub finished: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ExecuteError {
    #[error("the statement failed on run {run}")]
    Failed {
        run: u64,
        #[source]
        source: postgres::Error,
    },
    #[error("interrupted after {runs} run(s); each committed on its own")]
    Interrupted { runs: u64 },
    #[error(
        "the statement did not reach 0 in {runs} runs (it last returned {last}); each run committed on its own: run again, or allow more with --max-runs"
    )]
    NotZero { runs: u64, last: String },
    #[error(transparent)]
    Query(#[from] QueryError),
}

impl ExecuteError {
    pub fn is_user_error(&self) -> bool {
        !matches!(self, ExecuteError::Query(_))
    }
}

/// Runs the statement, in autocommit, each run its own transaction. `on`
/// hears each run's result as an [`Event::Section`] (`run 3: 500`).
pub fn execute(
    client: &mut Client,
    opts: &ExecuteOptions,
    on: &mut dyn FnMut(Event<'_>),
) -> Result<ExecuteReport, ExecuteError> {
    let mut runs = 0;
    loop {
        if crate::db::connect::interrupted() {
            return Err(ExecuteError::Interrupted { runs });
        }
        runs += 1;
        let messages = client
            .simple_query(&opts.query)
            .map_err(|source| ExecuteError::Failed { run: runs, source })?;
        let last = messages.iter().find_map(|m| match m {
            SimpleQueryMessage::Row(row) => Some(row.get(0).unwrap_or("NULL").to_string()),
            _ => None,
        });
        let note = format!("run {runs}: {}", last.as_deref().unwrap_or("no row"));
        on(Event::Section { note: &note });
        let zero = last
            .as_deref()
            .is_none_or(|v| v.trim().parse::<f64>().is_ok_and(|n| n == 0.0));
        if !opts.until_zero || zero {
            return Ok(ExecuteReport {
                runs,
                finished: zero,
                last,
            });
        }
        if runs >= opts.max_runs {
            return Err(ExecuteError::NotZero {
                runs,
                last: last.unwrap_or_default(),
            });
        }
        std::thread::sleep(opts.pause);
    }
}
