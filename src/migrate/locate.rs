//! Finding where a failed group failed, as `path:line:column`.

use postgres::Transaction;

use super::plan::{Group, PendingPatch};
use super::script::GroupScript;
use crate::db::marks;
use crate::db::script::{error_position, stopped_from_outside};
use crate::sql::Statement;
use crate::util::text::{Location, char_to_byte, line_col};

/// Finds where a failed group failed, as `path:line:column`.
///
/// PostgreSQL's error position (1-based, in characters) is relative to the
/// whole script, so it points into one patch's part. Errors raised while a
/// statement runs carry no position; then the script's progress marks say
/// which statement it was. Without marks (a role that may not create
/// temporary objects), the group is run again patch by patch, each in a
/// savepoint of `tx` (which is where it was before the group), and the
/// failing patch statement by statement, until the same error comes back.
/// Everything it ran is rolled back.
pub(super) fn locate(
    tx: &mut Transaction<'_>,
    group: &Group,
    script: &GroupScript,
    error: &postgres::Error,
) -> Option<Location> {
    if let Some(position) = error_position(error) {
        let at = char_to_byte(&script.sql, position);
        let (i, offset, range) = script
            .chunks
            .iter()
            .find(|(_, _, r)| r.contains(&at) || r.end == at)?;
        let step = &group.steps[*i];
        let (line, column) = line_col(&step.patch.text, offset + at - range.start);
        return Some(Location::at(&step.patch.path, line, column));
    }
    // The marks say how many statements completed: the next one failed.
    if script.marked
        && let Some(done) = marks::completed(tx)
    {
        let (step, stmt) = group
            .steps
            .iter()
            .flat_map(|step| step.statements.iter().map(move |stmt| (step, stmt)))
            .nth(done)?;
        return Some(statement_location(step, stmt, error));
    }
    // Running the group again to find a statement stopped from outside
    // would only be stopped again (and run what it ran twice).
    if stopped_from_outside(error) {
        return None;
    }
    let code = error.code().cloned();
    let mut sp = tx.transaction().ok()?;
    for step in &group.steps {
        let mut inner = sp.transaction().ok()?;
        match inner.batch_execute(&step.patch.text) {
            Ok(()) => inner.commit().ok()?,
            Err(e) => {
                inner.rollback().ok()?;
                if e.code().cloned() != code {
                    return None;
                }
                let location = locate_statement(&mut sp, step)
                    .unwrap_or_else(|| Location::file(&step.patch.path));
                let _ = sp.rollback();
                return Some(location);
            }
        }
    }
    let _ = sp.rollback();
    None
}

/// Runs a patch statement by statement in a savepoint and returns where the
/// first failing one fails.
fn locate_statement(tx: &mut Transaction<'_>, step: &PendingPatch) -> Option<Location> {
    let mut sp = tx.transaction().ok()?;
    for stmt in &step.statements {
        if let Err(e) = sp.batch_execute(&stmt.sql) {
            let _ = sp.rollback();
            return Some(statement_location(step, stmt, &e));
        }
    }
    let _ = sp.rollback();
    None
}

/// Where an error in one statement is: the error's position when it has
/// one, else the statement's start.
pub(super) fn statement_location(
    step: &PendingPatch,
    stmt: &Statement,
    error: &postgres::Error,
) -> Location {
    let (line, column) = match error_position(error) {
        Some(position) => line_col(&step.patch.text, stmt.file_offset(position)),
        None => (stmt.line, stmt.column),
    };
    Location::at(&step.patch.path, line, column)
}
