//! The SQL a transactional group sends in one query, with marks between
//! its patches.

use super::plan::Group;
use crate::db::connect::PATCH_STARTS;
use crate::db::marks;
use crate::db::quote::quote_literal;

/// The SQL a `std` or `direct` group sends in one simple query, after its
/// history rows are inserted: the patches' text, each one preceded and
/// followed by a mark, a `SELECT` of the server's clock (as microseconds
/// since the epoch, which no `DateStyle` or `TimeZone` a patch sets can
/// change) that comes back to pgpm as a row. Mark `i` is when patch `i`
/// started and mark `i + 1` when it finished; one `UPDATE` with bound
/// parameters then records them all. A statement per boundary that writes
/// the history table instead costs several times more on the server.
///
/// With progress marks (see `db::marks`), each statement is also followed
/// by one, so a failure without a position is located without running
/// anything again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupScript {
    pub sql: String,
    /// Byte range of each patch's text in `sql`, in group order, when the
    /// script has no progress marks (the text is then sent whole).
    pub parts: Vec<std::ops::Range<usize>>,
    /// Where the pieces of each patch's text are in `sql`, to map an error
    /// position back to the patch: `(step, offset in the patch's text,
    /// range in sql)`.
    pub chunks: Vec<(usize, usize, std::ops::Range<usize>)>,
    pub marked: bool,
}

/// The column name of the marks in a [`GroupScript`].
pub const MARK_COLUMN: &str = "pgpm_mark";

pub(super) const MARK: &str =
    "SELECT extract(epoch FROM pg_catalog.clock_timestamp()) AS pgpm_mark;\n";

/// The session's function that raises the notice a patch starts with
/// (see [`create_announcer`]).
const ANNOUNCER: &str = "pg_temp.pgpm_patch_starts";

/// Creates the session's function that tells, by a notice, that a patch
/// of a group starts; once per session, so the group's script calls a
/// compiled function rather than compiling a `DO` block per patch.
/// Returns whether it could (the role may lack TEMPORARY, or PL/pgSQL may
/// be gone): without it, only a group's first patch is told.
pub(super) fn create_announcer(client: &mut impl postgres::GenericClient) -> bool {
    client
        .batch_execute(&format!(
            "CREATE OR REPLACE FUNCTION {ANNOUNCER}(text) RETURNS void LANGUAGE plpgsql AS $$BEGIN RAISE NOTICE '%', $1; END$$"
        ))
        .is_ok()
}

impl Group {
    /// The script of a transactional group (see [`GroupScript`]), with
    /// progress marks after each statement when `marked`; with `announce`,
    /// a notice as each patch after the first starts (which the
    /// connection tells as `Background::PatchStarted`).
    pub fn script(&self, marked: bool, announce: bool) -> GroupScript {
        let len: usize = self.steps.iter().map(|s| s.patch.text.len() + 80).sum();
        let mut sql = String::with_capacity(len + MARK.len());
        let mut parts = Vec::with_capacity(self.steps.len());
        let mut chunks = Vec::new();
        sql.push_str(MARK);
        if marked {
            sql.push_str(&marks::reset());
        }
        let progress = marks::mark();
        for (i, step) in self.steps.iter().enumerate() {
            let text = &step.patch.text;
            if announce && i > 0 {
                sql.push_str(&format!(
                    "SELECT {ANNOUNCER}({});\n",
                    quote_literal(&format!("{PATCH_STARTS}{}", step.patch.file_name))
                ));
            }
            let start = sql.len();
            if marked {
                // Each statement with what precedes it, then a mark; the
                // newline ends a `--` comment, the semicolon a statement
                // written without one.
                let mut from = 0;
                for stmt in &step.statements {
                    let end = stmt.offset + stmt.sql.len();
                    let at = sql.len();
                    sql.push_str(&text[from..end]);
                    chunks.push((i, from, at..sql.len()));
                    sql.push_str("\n;\n");
                    sql.push_str(&progress);
                    from = end;
                }
                let at = sql.len();
                sql.push_str(&text[from..]);
                chunks.push((i, from, at..sql.len()));
            } else {
                sql.push_str(text);
                chunks.push((i, 0, start..sql.len()));
            }
            parts.push(start..sql.len());
            sql.push_str("\n;\n");
            sql.push_str(MARK);
        }
        GroupScript {
            sql,
            parts,
            chunks,
            marked,
        }
    }
}

/// Microseconds since the epoch from a mark's text (`1732212345.123456`).
pub(super) fn mark_micros(text: &str) -> Option<i64> {
    let (secs, frac) = text.split_once('.').unwrap_or((text, ""));
    let frac: String = frac.chars().chain(std::iter::repeat('0')).take(6).collect();
    Some(secs.parse::<i64>().ok()? * 1_000_000 + frac.parse::<i64>().ok()?)
}
