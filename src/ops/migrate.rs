//! `pgpm migrate`: scan, lock, plan, run.

use std::path::PathBuf;
use std::time::Duration;

use postgres::Client;

use crate::catalog::{self, read};
use crate::db::conninfo::ConnInfo;
use crate::db::lock::{DEFAULT_TIMEOUT, Locked};
use crate::event::Event;
use crate::migrate::PatchError;
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
        }
    }
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
    let stopped = run::execute(&mut client, info, &plan, opts.dry_run, on)?;
    Ok(MigrateReport {
        plan,
        dry_run: opts.dry_run,
        stopped,
    })
}
