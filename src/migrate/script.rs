//! The SQL a transactional group sends in one query, with marks between
//! its patches.

use super::plan::Group;

/// The SQL a `std` or `direct` group sends in one simple query, after its
/// history rows are inserted: the patches' text, each one preceded and
/// followed by a mark, a `SELECT` of the server's clock (as microseconds
/// since the epoch, which no `DateStyle` or `TimeZone` a patch sets can
/// change) that comes back to pgpm as a row. Mark `i` is when patch `i`
/// started and mark `i + 1` when it finished; one `UPDATE` with bound
/// parameters then records them all. A statement per boundary that writes
/// the history table instead costs several times more on the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupScript {
    pub sql: String,
    /// Byte range of each patch's text in `sql`, in group order.
    pub parts: Vec<std::ops::Range<usize>>,
}

/// The column name of the marks in a [`GroupScript`].
pub const MARK_COLUMN: &str = "pgpm_mark";

pub(super) const MARK: &str =
    "SELECT extract(epoch FROM pg_catalog.clock_timestamp()) AS pgpm_mark;\n";

impl Group {
    /// The script of a transactional group (see [`GroupScript`]).
    pub fn script(&self) -> GroupScript {
        let len: usize = self.steps.iter().map(|s| s.patch.text.len() + 80).sum();
        let mut sql = String::with_capacity(len + MARK.len());
        let mut parts = Vec::with_capacity(self.steps.len());
        sql.push_str(MARK);
        for step in &self.steps {
            let start = sql.len();
            sql.push_str(&step.patch.text);
            parts.push(start..sql.len());
            // The newline ends a trailing `--` comment; the semicolon a last
            // statement written without one.
            sql.push_str("\n;\n");
            sql.push_str(MARK);
        }
        GroupScript { sql, parts }
    }
}

/// Microseconds since the epoch from a mark's text (`1732212345.123456`).
pub(super) fn mark_micros(text: &str) -> Option<i64> {
    let (secs, frac) = text.split_once('.').unwrap_or((text, ""));
    let frac: String = frac.chars().chain(std::iter::repeat('0')).take(6).collect();
    Some(secs.parse::<i64>().ok()? * 1_000_000 + frac.parse::<i64>().ok()?)
}
