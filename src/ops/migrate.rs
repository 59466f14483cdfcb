//! `pgpm migrate`: scan, lock, plan, run.

use std::path::PathBuf;
use std::time::Duration;

use postgres::Client;

use crate::catalog::{self, read, write};
use crate::db::QueryError;
use crate::db::blockers::ObjectLocks;
use crate::db::conninfo::ConnInfo;
use crate::db::lock::{DEFAULT_TIMEOUT, Locked};
use crate::event::Event;
use crate::migrate::PatchError;
use crate::migrate::name::PatchId;
use crate::migrate::plan::{self, Applied, MigrationPlan, Selection, Warning};
use crate::migrate::run::{self, DryRunStop};
use crate::migrate::scan::Patch;

/// What `migrate` should do.
#[derive(Debug, Clone)]
pub struct MigrateOptions {
    pub dir: PathBuf,
    pub selection: Selection,
    /// Apply `std` and `direct` patches in a transaction and roll it back;
    /// skip `concurrent` ones.
    pub dry_run: bool,
    pub lock_timeout: Duration,
    /// How long the statements of `std` and `direct` patches may wait for
    /// a lock, and how often a group runs again after one waited too long.
    pub object_locks: ObjectLocks,
}

impl MigrateOptions {
    /// Every pending patch of `dir`, for real, with the default lock timeout.
    pub fn all(dir: PathBuf) -> MigrateOptions {
        MigrateOptions {
            dir,
            selection: Selection {
                all: true,
                ..Selection::default()
            },
            dry_run: false,
            lock_timeout: DEFAULT_TIMEOUT,
            object_locks: ObjectLocks::default(),
        }
    }
}

/// Records every patch of `patches` numbered up to `version` as applied,
/// without running it (Flyway's baseline), for a database that already has
/// what those patches create. Refuses when a later patch is applied
/// already. Returns the file names recorded; patches recorded before are
/// left as they are.
pub fn baseline(
    client: &mut Client,
    dir: &std::path::Path,
    patches: Vec<Patch>,
    version: PatchId,
    lock_timeout: Duration,
) -> Result<Vec<String>, PatchError> {
    let mut locked = Locked::acquire(client, lock_timeout)?;
    let mut tx = catalog::begin_change(&mut locked)?;
    let applied: Vec<Applied> = read::applied_patches(&mut tx)?
        .into_iter()
        .map(Applied::from)
        .collect();
    if let Some(later) = applied.iter().find(|a| a.id > version) {
        return Err(PatchError::BaselineBehind {
            file_name: later.file_name.clone(),
            version,
        });
    }
    let upto: Vec<&Patch> = patches.iter().filter(|p| p.id <= version).collect();
    if upto.is_empty() {
        return Err(PatchError::BaselineEmpty {
            dir: dir.to_path_buf(),
            version,
        });
    }
    let new: Vec<&Patch> = upto
        .into_iter()
        .filter(|p| !applied.iter().any(|a| a.id == p.id))
        .collect();
    let rows: Vec<_> = new
        .iter()
        .map(|p| {
            (
                write::PatchKey {
                    major: p.id.major,
                    minor: p.id.minor,
                    point: p.id.point,
                    file_name: &p.file_name,
                },
                p.kind.as_str(),
                p.checksum.as_str(),
            )
        })
        .collect();
    write::record_baseline(&mut tx, &rows)?;
    tx.commit()
        .map_err(QueryError::with("cannot commit the baseline"))?;
    Ok(new.iter().map(|p| p.file_name.clone()).collect())
}

/// What `migrate --adopt-lazr` imported.
#[derive(Debug, Clone, Default)]
pub struct LazrImport {
    /// The patches recorded as applied, by file name.
    pub imported: Vec<String>,
    /// lazr's rows with no file in the directory (not imported), as
    /// `MAJOR-MINOR-POINT`.
    pub missing: Vec<String>,
    /// Already recorded by pgpm, left as they are.
    pub known: usize,
}

/// Imports the patches lp-migrate (lazr.postgresql) applied, from its
/// `lazrdatabaserevision` table, as applied patches: number, type and
/// checksum of the file in `dir` (`patches` is its scan), lazr's times.
/// lazr's own schema patch 0-0-0 is left out; a row without a file is
/// reported, not imported.
pub fn adopt_lazr(
    client: &mut Client,
    patches: &[Patch],
    lock_timeout: Duration,
) -> Result<LazrImport, PatchError> {
    let mut locked = Locked::acquire(client, lock_timeout)?;
    let mut tx = catalog::begin_change(&mut locked)?;
    let table: Option<String> = tx
        .query_opt(
            "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c
               JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE c.relname = 'lazrdatabaserevision' AND c.relkind = 'r'
              ORDER BY n.nspname = 'public' DESC LIMIT 1",
            &[],
        )
        .map_err(QueryError::with("cannot look for lazr's table"))?
        .map(|r| r.get(0));
    let Some(table) = table else {
        return Err(PatchError::NoLazr);
    };
    let rows = tx
        .query(
            &format!(
                "SELECT major, minor, patch,
                        to_char(start_time, 'YYYY-MM-DD HH24:MI:SS.US'),
                        to_char(coalesce(end_time, start_time), 'YYYY-MM-DD HH24:MI:SS.US')
                   FROM {table} WHERE (major, minor, patch) <> (0, 0, 0) ORDER BY 1, 2, 3"
            ),
            &[],
        )
        .map_err(QueryError::with("cannot read lazr's applied patches"))?;
    let applied = read::applied_patches(&mut tx)?;
    let mut import = LazrImport::default();
    for row in rows {
        let (major, minor, point): (i32, i32, i32) = (row.get(0), row.get(1), row.get(2));
        if applied
            .iter()
            .any(|a| (a.major, a.minor, a.point) == (major, minor, point))
        {
            import.known += 1;
            continue;
        }
        let Some(patch) = patches
            .iter()
            .find(|p| (p.id.major, p.id.minor, p.id.point) == (major, minor, point))
        else {
            import.missing.push(format!("{major}-{minor}-{point}"));
            continue;
        };
        let start: Option<String> = row.get(3);
        let end: Option<String> = row.get(4);
        tx.execute(
            "INSERT INTO _pgpm.migrations
                    (major, minor, point, type, file_name, checksum, started_at, finished_at, applied_by, how)
             VALUES ($1, $2, $3, $4, $5, $6,
                     coalesce(($7::text)::timestamp AT TIME ZONE 'UTC', now()),
                     coalesce(($8::text)::timestamp AT TIME ZONE 'UTC', now()),
                     'lp-migrate', 'lazr')",
            &[
                &major,
                &minor,
                &point,
                &patch.kind.as_str(),
                &patch.file_name,
                &patch.checksum,
                &start,
                &end,
            ],
        )
        .map_err(QueryError::with("cannot record an imported patch"))?;
        import.imported.push(patch.file_name.clone());
    }
    tx.commit()
        .map_err(QueryError::with("cannot commit the import"))?;
    Ok(import)
}

/// Records the checksum of the edited applied patch `file` (of `dir`,
/// whose scan is `patches`) as its own, keeping the old checksum and
/// `reason` in `_pgpm.accepted_patches`. Returns the file name and the old
/// and new checksums.
pub fn accept(
    client: &mut Client,
    dir: &std::path::Path,
    patches: Vec<Patch>,
    file: &std::path::Path,
    reason: &str,
    lock_timeout: Duration,
) -> Result<(String, String, String), PatchError> {
    let name = file.file_name().map(|n| n.to_string_lossy().into_owned());
    let Some(patch) = patches
        .into_iter()
        .find(|p| Some(&p.file_name) == name.as_ref())
    else {
        return Err(PatchError::AcceptUnknown {
            file: file.to_path_buf(),
            dir: dir.to_path_buf(),
        });
    };
    let mut locked = Locked::acquire(client, lock_timeout)?;
    let mut tx = catalog::begin_change(&mut locked)?;
    let applied = read::applied_patches(&mut tx)?;
    let Some(row) = applied
        .iter()
        .find(|a| (a.major, a.minor, a.point) == (patch.id.major, patch.id.minor, patch.id.point))
    else {
        return Err(PatchError::AcceptNotApplied {
            file_name: patch.file_name,
        });
    };
    if row.checksum == patch.checksum {
        return Err(PatchError::AcceptUnchanged {
            file_name: patch.file_name,
        });
    }
    let old = row.checksum.clone();
    tx.execute(
        "WITH a AS (
            INSERT INTO _pgpm.accepted_patches (major, minor, point, file_name, old_checksum, new_checksum, reason)
            VALUES ($1, $2, $3, $4, $5, $6, $7))
         UPDATE _pgpm.migrations SET checksum = $6, file_name = $4
          WHERE major = $1 AND minor = $2 AND point = $3",
        &[
            &patch.id.major,
            &patch.id.minor,
            &patch.id.point,
            &patch.file_name,
            &old,
            &patch.checksum,
            &reason,
        ],
    )
    .map_err(QueryError::with("cannot record the accepted checksum"))?;
    tx.commit()
        .map_err(QueryError::with("cannot commit the accepted checksum"))?;
    Ok((patch.file_name, old, patch.checksum))
}

/// What a migrate did: the plan it ran (its groups, what is left, and its
/// warnings), and whether it was a dry run.
#[derive(Debug, Clone)]
pub struct MigrateReport {
    pub plan: MigrationPlan,
    pub dry_run: bool,
    /// A dry run that stopped after a concurrent patch it could not apply.
    pub stopped: Option<DryRunStop>,
}

/// Scans the patches of `opts.dir` (before connecting: `patches` is that
/// scan), takes pgpm's lock, checks the catalog, plans and runs. `on` hears
/// of every patch as soon as it is committed. Concurrent patches run on a
/// second connection to `info`.
pub fn migrate(
    client: &mut Client,
    info: &ConnInfo,
    patches: Vec<Patch>,
    opts: &MigrateOptions,
    on: &mut dyn FnMut(Event<'_>),
) -> Result<MigrateReport, PatchError> {
    let mut client = Locked::acquire(client, opts.lock_timeout)?;
    catalog::require_current(&mut *client)?;
    let applied: Vec<Applied> = read::applied_patches(&mut *client)?
        .into_iter()
        .map(Applied::from)
        .collect();
    let mut plan = plan::plan(&opts.dir, patches, &applied, &opts.selection)?;
    let progress = read::concurrent_progress(&mut *client)?;
    let invalid = read::invalid_indexes(&mut *client, true)?;
    plan.warnings
        .extend(Warning::from_database(&progress, &applied, invalid));
    for warning in &plan.warnings {
        on(Event::Warning {
            message: &warning.to_string(),
        });
    }
    let stopped = run::execute(
        &mut client,
        info,
        &plan,
        opts.dry_run,
        &opts.object_locks,
        on,
    )?;
    Ok(MigrateReport {
        plan,
        dry_run: opts.dry_run,
        stopped,
    })
}
