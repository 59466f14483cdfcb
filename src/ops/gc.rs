//! `pgpm gc`: removing the old revisions nobody uses any more.
//!
//! Redeploys in `moderate` and `revision` mode keep the revision they
//! replace, so that sessions on it keep working; those pile up. `gc`
//! removes each old revision that has been old for at least
//! `older_than`, exactly as `pgpm remove --old-rev N` would, one
//! transaction each: so it keeps (and says why) every revision that a
//! deployed package depends on, that a live session selected or is using,
//! that holds tables, or whose drop would reach objects outside it.

use std::time::Duration;

use postgres::Client;

use super::remove::{self, RemoveError, RemoveOptions, RemoveReport};
use crate::catalog;
use crate::catalog::read;
use crate::db::blockers::ObjectLocks;
use crate::db::conninfo::ConnInfo;
use crate::db::lock::DEFAULT_TIMEOUT;
use crate::event::Event;

/// What `gc` removes.
#[derive(Debug, Clone)]
pub struct GcOptions {
    /// Only revisions that have been old at least this long.
    pub older_than: Duration,
    pub dry_run: bool,
    pub lock_timeout: Duration,
    pub object_locks: ObjectLocks,
}

impl Default for GcOptions {
    fn default() -> GcOptions {
        GcOptions {
            older_than: Duration::from_secs(3600),
            dry_run: false,
            lock_timeout: DEFAULT_TIMEOUT,
            object_locks: ObjectLocks::default(),
        }
    }
}

/// An old revision `gc` left in place, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kept {
    /// `name version revision N (schema S)`.
    pub label: String,
    pub reason: String,
}

/// What `gc` did (or, in a dry run, would do).
#[derive(Debug, Clone)]
pub struct GcReport {
    pub removed: Vec<RemoveReport>,
    pub kept: Vec<Kept>,
    pub dry_run: bool,
}

/// Removes the old revisions that are due, each like `remove --old-rev`.
pub fn gc(
    client: &mut Client,
    probe: Option<&ConnInfo>,
    opts: &GcOptions,
    on: &mut dyn FnMut(Event<'_>),
) -> Result<GcReport, RemoveError> {
    catalog::require_current(client)?;
    let mut report = GcReport {
        removed: Vec::new(),
        kept: Vec::new(),
        dry_run: opts.dry_run,
    };
    for old in read::old_revisions(client, opts.older_than)? {
        let label = format!(
            "{} {} revision {} (schema {})",
            old.name, old.version, old.old_rev, old.schema
        );
        if !old.due {
            report.kept.push(Kept {
                label,
                reason: format!(
                    "old since {}, less than {} s ago",
                    old.old_since,
                    opts.older_than.as_secs()
                ),
            });
            continue;
        }
        let result = remove::remove(
            client,
            probe,
            &RemoveOptions {
                package: old.name,
                version: old.version,
                old_rev: Some(old.old_rev),
                force: false,
                dry_run: opts.dry_run,
                lock_timeout: opts.lock_timeout,
                object_locks: opts.object_locks,
            },
            on,
        );
        match result {
            Ok(removed) => report.removed.push(removed),
            // What makes remove refuse keeps the revision: say why.
            Err(
                e @ (RemoveError::Dependents { .. }
                | RemoveError::HasTables { .. }
                | RemoveError::InUse { .. }
                | RemoveError::ReachesOutside { .. }),
            ) => report.kept.push(Kept {
                label,
                reason: e.to_string(),
            }),
            Err(e) => return Err(e),
        }
    }
    Ok(report)
}
