//! The migration plan: which pending patches run, in which groups. Pure.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use super::PatchError;
use super::name::{PatchId, PatchType};
use super::scan::Patch;
use crate::catalog::read::{AppliedPatchRow, ConcurrentProgress};
use crate::sql::{self, SessionControl, Statement};

type Result<T, E = PatchError> = std::result::Result<T, E>;

/// A patch recorded in the catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    pub id: PatchId,
    /// The type it was applied as (normally one of [`PatchType`]'s names).
    pub kind: String,
    pub file_name: String,
    pub checksum: String,
    /// When it was applied, as `YYYY-MM-DD HH:MM:SS UTC`.
    pub applied_at: String,
    pub applied_by: String,
}

impl From<AppliedPatchRow> for Applied {
    fn from(row: AppliedPatchRow) -> Applied {
        Applied {
            id: PatchId {
                major: row.major,
                minor: row.minor,
                point: row.point,
            },
            kind: row.kind,
            file_name: row.file_name,
            checksum: row.checksum,
            applied_at: row.applied_at,
            applied_by: row.applied_by,
        }
    }
}

/// Which pending patches a run may apply.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    /// Apply group after group until nothing is pending.
    pub all: bool,
    /// Apply a single patch; wins over `all`.
    pub one: bool,
    /// The types that may be applied; empty means every type.
    pub types: Vec<PatchType>,
    /// Apply pending patches numbered below the newest applied one
    /// (Flyway's outOfOrder); without it they are refused.
    pub out_of_order: bool,
}

impl Selection {
    fn allows(&self, kind: PatchType) -> bool {
        self.types.is_empty() || self.types.contains(&kind)
    }
}

/// Something worth telling the user that does not stop the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Warning {
    /// An applied patch whose file is no longer in the directory.
    FileGone { applied: Applied, dir: PathBuf },
    /// An applied patch whose file now carries another type.
    TypeChanged { applied: Applied, patch: PatchType },
    /// A pending concurrent patch whose earlier run was interrupted after
    /// some of its statements completed (they stay done).
    Interrupted {
        file_name: String,
        statement: i32,
        statements: i32,
        at: String,
    },
    /// An index left INVALID by a failed or interrupted concurrent build.
    InvalidIndex { index: String },
}

impl Warning {
    /// What the database itself says needs care before patches run: the
    /// pending concurrent patches an earlier run left half done (the last
    /// statement that completed of each) and the INVALID indexes.
    pub fn from_database(
        progress: &[ConcurrentProgress],
        applied: &[Applied],
        invalid_indexes: Vec<String>,
    ) -> Vec<Warning> {
        let mut out: Vec<Warning> = Vec::new();
        for row in progress {
            let id = PatchId {
                major: row.major,
                minor: row.minor,
                point: row.point,
            };
            if applied.iter().any(|a| a.id == id) {
                continue;
            }
            out.retain(|w| !matches!(w, Warning::Interrupted { file_name, .. } if *file_name == row.file_name));
            out.push(Warning::Interrupted {
                file_name: row.file_name.clone(),
                statement: row.statement,
                statements: row.statements,
                at: row.finished_at.clone(),
            });
        }
        out.extend(
            invalid_indexes
                .into_iter()
                .map(|index| Warning::InvalidIndex { index }),
        );
        out
    }
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Warning::FileGone { applied, dir } => write!(
                f,
                "{} was applied on {} by {}, but its file is no longer in {}",
                applied.file_name,
                applied.applied_at,
                applied.applied_by,
                dir.display()
            ),
            Warning::TypeChanged { applied, patch } => write!(
                f,
                "patch {} was applied as a {} patch ({}), but its file now says {patch}",
                applied.id, applied.kind, applied.file_name
            ),
            Warning::Interrupted {
                file_name,
                statement,
                statements,
                at,
            } => write!(
                f,
                "{file_name} was interrupted in an earlier run after statement {statement} of {statements} completed ({at}); those statements stay done, and the patch runs again from its first statement"
            ),
            Warning::InvalidIndex { index } => write!(
                f,
                "index {index} is INVALID (a concurrent build failed or was interrupted): drop it with DROP INDEX CONCURRENTLY {index}; before a patch that creates it runs again"
            ),
        }
    }
}

/// A pending patch as it will run: the file and its statements.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingPatch {
    pub patch: Patch,
    /// The patch's statements, from [`sql::parse_file`]. A `concurrent`
    /// patch sends them one by one; a `std` or `direct` group sends its
    /// patches' text whole and uses these to check for transaction control
    /// and to point at a failing statement.
    pub statements: Vec<Statement>,
}

/// Adjacent pending patches of one type, applied together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub kind: PatchType,
    pub steps: Vec<PendingPatch>,
}

/// What a run will do: the groups to apply, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MigrationPlan {
    pub groups: Vec<Group>,
    /// Pending patches this run leaves for a later one.
    pub remaining: usize,
    /// With `--all` and `--type`: the pending patch whose type stopped the run.
    pub held_back: Option<(String, PatchType)>,
    pub warnings: Vec<Warning>,
}

impl MigrationPlan {
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// Every step, in the order they run.
    pub fn steps(&self) -> impl Iterator<Item = &PendingPatch> {
        self.groups.iter().flat_map(|g| &g.steps)
    }
}

/// An applied patch whose file no longer matches its recorded checksum.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Drifted {
    pub path: PathBuf,
    pub applied: Applied,
    pub checksum: String,
}

/// Plans a run: checks applied patches against their files, then takes the
/// pending ones (not recorded in the catalog) group by group as `sel` says.
/// Pure: the same patches, rows and selection always give the same plan.
///
/// `dir` is only used in messages.
pub fn plan(
    dir: &Path,
    patches: Vec<Patch>,
    applied: &[Applied],
    sel: &Selection,
) -> Result<MigrationPlan> {
    let recorded: BTreeMap<PatchId, &Applied> = applied.iter().map(|a| (a.id, a)).collect();
    let on_disk: BTreeSet<PatchId> = patches.iter().map(|p| p.id).collect();
    let mut warnings = Vec::new();
    let mut drifted = Vec::new();
    let mut pending = Vec::new();
    for patch in patches {
        match recorded.get(&patch.id) {
            None => pending.push(patch),
            Some(applied) => {
                if applied.checksum != patch.checksum {
                    drifted.push(Drifted {
                        path: patch.path.clone(),
                        applied: (*applied).clone(),
                        checksum: patch.checksum.clone(),
                    });
                }
                if applied.kind != patch.kind.as_str() {
                    warnings.push(Warning::TypeChanged {
                        applied: (*applied).clone(),
                        patch: patch.kind,
                    });
                }
            }
        }
    }
    if !drifted.is_empty() {
        return Err(PatchError::Drift(drifted));
    }
    for applied in applied.iter().filter(|a| !on_disk.contains(&a.id)) {
        warnings.push(Warning::FileGone {
            applied: applied.clone(),
            dir: dir.to_owned(),
        });
    }

    let mut plan = MigrationPlan {
        warnings,
        ..MigrationPlan::default()
    };
    let Some(first) = pending.first() else {
        return Ok(plan);
    };
    if let Some(newest) = applied.iter().map(|a| a.id).max()
        && first.id < newest
        && !sel.out_of_order
    {
        let newest_file = recorded[&newest].file_name.clone();
        return Err(PatchError::OutOfOrder {
            file_name: first.file_name.clone(),
            newest: newest_file,
        });
    }
    if !sel.allows(first.kind) {
        return Err(PatchError::TypeNotAllowed {
            file_name: first.file_name.clone(),
            kind: first.kind,
            allowed: sel.types.clone(),
        });
    }
    let total = pending.len();
    let mut groups: Vec<(PatchType, Vec<Patch>)> = Vec::new();
    for patch in pending {
        match groups.last_mut() {
            Some((kind, members)) if *kind == patch.kind => members.push(patch),
            _ => groups.push((patch.kind, vec![patch])),
        }
    }
    let mut taken = 0;
    for (kind, mut members) in groups {
        if !plan.groups.is_empty() && !sel.all || sel.one && taken > 0 {
            break;
        }
        if !sel.allows(kind) {
            plan.held_back = Some((members[0].file_name.clone(), kind));
            break;
        }
        if sel.one {
            members.truncate(1);
        }
        let mut steps = Vec::with_capacity(members.len());
        for patch in members {
            let statements = sql::parse_file(&patch.path, &patch.text)?;
            if kind.transactional() {
                check_no_transaction_control(&patch, &statements)?;
            }
            steps.push(PendingPatch { patch, statements });
        }
        taken += steps.len();
        plan.groups.push(Group { kind, steps });
    }
    plan.remaining = total - taken;
    Ok(plan)
}

/// Refuses statements that would end pgpm's transaction in the middle of a
/// group (`COMMIT`, `ROLLBACK`, ...) or pretend to start one. Savepoints are
/// fine: they nest inside the group's transaction.
fn check_no_transaction_control(patch: &Patch, statements: &[Statement]) -> Result<()> {
    match statements
        .iter()
        .find(|s| s.session_control() == Some(SessionControl::Transaction))
    {
        Some(stmt) => Err(PatchError::TransactionControl {
            path: patch.path.clone(),
            line: stmt.line,
            column: stmt.column,
            statement: stmt.excerpt(40),
            kind: patch.kind,
        }),
        None => Ok(()),
    }
}
