//! Numbered patch migrations: `patch-MAJOR-MINOR-POINT-TYPE.sql`, applied
//! once each, with their history in `_pgpm.migrations`.
//!
//! The model is Launchpad's `lazr.postgresql`. The flow is the crate's:
//! [`scan`] reads a directory into [`Patch`]es; [`plan`] is pure and turns
//! the patches and the catalog's [`Applied`] rows into the ordered
//! [`Group`]s that will run; [`execute`] runs exactly that plan under pgpm's
//! advisory lock. [`migrate`] does all three.
//!
//! Patches are ordered by their numbers (1-10-0 after 1-9-0), and pending
//! patches are taken in groups of adjacent patches of one type:
//!
//! - `std` and `direct` groups run in one transaction: the history rows, the
//!   patches and their end times commit together or not at all. (`direct`
//!   patches are meant for every node of a cluster; on one database they
//!   behave like `std`.)
//! - `concurrent` patches hold statements that cannot run in a transaction
//!   (`CREATE INDEX CONCURRENTLY`, `VACUUM`). Each patch's history row is
//!   inserted by a transaction on the main connection, which also keeps
//!   anyone else from applying it, while its statements run one by one in
//!   autocommit on a second connection; the row's end time is set and the
//!   transaction commits only when every statement succeeded.
//!
//! A plain run applies only the first group: each group may take locks that
//! stall a busy production database, so moving on is a deliberate act
//! (`--all`).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use postgres::error::{ErrorPosition, SqlState};
use postgres::{Client, GenericClient, Transaction};

use crate::checksum;
use crate::db::ConnInfo;
use crate::lock::Locked;
use crate::sql::{self, Statement};
use crate::{Error, Result};

/// Where patches are looked for when no directory is given.
pub const DEFAULT_DIR: &str = "patches";

/// The kind of a patch, the last part of its file name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PatchType {
    /// Runs in a transaction with the rest of its group.
    Std,
    /// Like `std`, and meant to be applied on every node of a cluster.
    Direct,
    /// Runs statement by statement outside a transaction.
    Concurrent,
}

impl PatchType {
    pub const ALL: [PatchType; 3] = [PatchType::Std, PatchType::Direct, PatchType::Concurrent];

    pub fn as_str(self) -> &'static str {
        match self {
            PatchType::Std => "std",
            PatchType::Direct => "direct",
            PatchType::Concurrent => "concurrent",
        }
    }

    /// Whether a group of this type runs in one transaction.
    pub fn transactional(self) -> bool {
        self != PatchType::Concurrent
    }
}

impl fmt::Display for PatchType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for PatchType {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<PatchType, String> {
        PatchType::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| format!("\"{s}\" is not a patch type (std, direct or concurrent)"))
    }
}

/// A patch's identity: its three numbers. Ordered numerically.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PatchId {
    pub major: i32,
    pub minor: i32,
    pub point: i32,
}

impl fmt::Display for PatchId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}-{}", self.major, self.minor, self.point)
    }
}

/// A patch file read from disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Patch {
    pub id: PatchId,
    pub kind: PatchType,
    /// The path as found (the directory joined with the file name), for messages.
    pub path: PathBuf,
    /// The file name, as recorded in the catalog.
    pub file_name: String,
    /// The file's text, a leading byte-order mark removed.
    pub text: String,
    /// SHA-256 of the file's normalised bytes ([`checksum::sha256`]).
    pub checksum: String,
}

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

/// Which pending patches a run may apply.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    /// Apply group after group until nothing is pending.
    pub all: bool,
    /// Apply a single patch; wins over `all`.
    pub one: bool,
    /// The types that may be applied; empty means every type.
    pub types: Vec<PatchType>,
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
        }
    }
}

/// A pending patch as it will run: the file and its statements.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
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
    pub steps: Vec<Step>,
}

/// The SQL a `std` or `direct` group sends in one simple query, after its
/// history rows are inserted: the patches' text, each one preceded and
/// followed by a mark, a `SELECT` of the server's clock (as microseconds
/// since the epoch, which no `DateStyle` or `TimeZone` a patch sets can
/// change) that comes back to pgpm as a row. Mark `i` is when patch `i`
/// started and mark `i + 1` when it finished; one `UPDATE` with bound
/// parameters then records them all. A statement per boundary that writes
/// the history table instead costs several times more on the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Script {
    pub sql: String,
    /// Byte range of each patch's text in `sql`, in group order.
    pub parts: Vec<std::ops::Range<usize>>,
}

/// The column name of the marks in a [`Script`].
pub const MARK_COLUMN: &str = "pgpm_mark";

const MARK: &str = "SELECT extract(epoch FROM pg_catalog.clock_timestamp()) AS pgpm_mark;\n";

impl Group {
    /// The script of a transactional group (see [`Script`]).
    pub fn script(&self) -> Script {
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
        Script { sql, parts }
    }
}

/// Microseconds since the epoch from a mark's text (`1732212345.123456`).
fn mark_micros(text: &str) -> Option<i64> {
    let (secs, frac) = text.split_once('.').unwrap_or((text, ""));
    let frac: String = frac.chars().chain(std::iter::repeat('0')).take(6).collect();
    Some(secs.parse::<i64>().ok()? * 1_000_000 + frac.parse::<i64>().ok()?)
}

/// What a run will do: the groups to apply, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub groups: Vec<Group>,
    /// Pending patches this run leaves for a later one.
    pub remaining: usize,
    /// With `--all` and `--type`: the pending patch whose type stopped the run.
    pub held_back: Option<(String, PatchType)>,
    pub warnings: Vec<Warning>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// Every step, in the order they run.
    pub fn steps(&self) -> impl Iterator<Item = &Step> {
        self.groups.iter().flat_map(|g| &g.steps)
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.groups.is_empty() {
            return writeln!(f, "nothing to apply");
        }
        for (i, group) in self.groups.iter().enumerate() {
            let how = if group.kind.transactional() {
                "in one transaction"
            } else {
                "statement by statement, outside a transaction"
            };
            writeln!(f, "group {} ({}, {how}):", i + 1, group.kind)?;
            for step in &group.steps {
                writeln!(f, "  {}", step.patch.file_name)?;
            }
        }
        if self.remaining > 0 {
            writeln!(
                f,
                "{} more pending patch(es) left for a later run",
                self.remaining
            )?;
        }
        Ok(())
    }
}

/// An applied patch whose file no longer matches its recorded checksum.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Drifted {
    pub path: PathBuf,
    pub applied: Applied,
    pub checksum: String,
}

#[derive(Debug, thiserror::Error)]
pub enum PatchError {
    #[error("patch directory {} does not exist", path.display())]
    NoDir { path: PathBuf },
    #[error(
        "{}: looks like a patch but is not named patch-MAJOR-MINOR-POINT-TYPE.sql: {reason}", path.display()
    )]
    BadName { path: PathBuf, reason: String },
    #[error("{} and {} are both patch {id}", first.display(), second.display())]
    Duplicate {
        id: PatchId,
        first: PathBuf,
        second: PathBuf,
    },
    #[error("{}: not UTF-8 text", path.display())]
    NotUtf8 { path: PathBuf },
    #[error("{}", drift_message(.0))]
    Drift(Vec<Drifted>),
    #[error(
        "the first pending patch, {file_name}, is a {kind} patch, and --type allows only {}",
        list(allowed)
    )]
    TypeNotAllowed {
        file_name: String,
        kind: PatchType,
        allowed: Vec<PatchType>,
    },
    #[error(
        "{}:{line}:{column}: transaction control ({statement}) in a {kind} patch: pgpm runs the group in one transaction and records it in that transaction; remove it",
        path.display()
    )]
    TransactionControl {
        path: PathBuf,
        line: usize,
        column: usize,
        statement: String,
        kind: PatchType,
    },
    /// A statement of a `std` or `direct` patch failed; the group was rolled back.
    #[error("{}", failed_message(location, group, source))]
    Failed {
        /// `path:line:column` of the failing statement, or the path alone,
        /// or `None` when the failing patch could not be told.
        location: Option<String>,
        /// The file names of the group, none of which is applied.
        group: Vec<String>,
        #[source]
        source: postgres::Error,
    },
    /// A statement of a `concurrent` patch failed; the patch is not recorded.
    #[error("{}", concurrent_message(self))]
    ConcurrentFailed {
        location: String,
        file_name: String,
        /// 1-based number of the failing statement, and how many there are.
        statement: usize,
        statements: usize,
        /// `path:line:column: statement` of the statements that ran and were committed.
        committed: Vec<String>,
        /// Indexes left `INVALID` by the failure, schema-qualified and quoted.
        invalid_indexes: Vec<String>,
        #[source]
        source: postgres::Error,
    },
    /// A group's SQL did not run to its end: pgpm's marks between patches
    /// were swallowed, most likely by an unterminated quote or comment.
    #[error(
        "{file_name} did not run to its end (pgpm's mark after it never ran): look for an unterminated string, quoted identifier, dollar quote or comment; the group was rolled back"
    )]
    Unfinished { file_name: String },
}

impl PatchError {
    /// Everything here is the user's to fix, except a failure that is not
    /// the server rejecting a statement (a lost connection).
    pub fn is_user_error(&self) -> bool {
        match self {
            PatchError::Failed { source, .. } | PatchError::ConcurrentFailed { source, .. } => {
                source.as_db_error().is_some()
            }
            _ => true,
        }
    }
}

fn list(types: &[PatchType]) -> String {
    types
        .iter()
        .map(|t| t.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn drift_message(drifted: &[Drifted]) -> String {
    let mut out = String::new();
    for (i, d) in drifted.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        out.push_str(&format!(
            "{} has changed since it was applied on {} by {} (recorded checksum {}, file now {})",
            d.path.display(),
            d.applied.applied_at,
            d.applied.applied_by,
            short(&d.applied.checksum),
            short(&d.checksum)
        ));
    }
    out.push_str(
        "\napplied patches must not change: restore the file and put the change in a new patch",
    );
    out
}

fn short(checksum: &str) -> &str {
    checksum.get(..12).unwrap_or(checksum)
}

fn failed_message(location: &Option<String>, group: &[String], source: &postgres::Error) -> String {
    let mut out = match location {
        Some(location) => format!("{location}: patch failed"),
        None => "a patch of the group failed (pgpm could not tell which)".to_string(),
    };
    if group.len() == 1 {
        out.push_str(&format!("; rolled back, {} is not applied", group[0]));
    } else {
        out.push_str(&format!(
            "; rolled back its group, none of {} is applied",
            group.join(", ")
        ));
    }
    if source.code() == Some(&SqlState::ACTIVE_SQL_TRANSACTION) {
        out.push_str(
            "\nthis statement cannot run inside a transaction: move it to a patch of type concurrent",
        );
    }
    out
}

fn concurrent_message(err: &PatchError) -> String {
    let PatchError::ConcurrentFailed {
        location,
        file_name,
        statement,
        statements,
        committed,
        invalid_indexes,
        ..
    } = err
    else {
        unreachable!("only called for ConcurrentFailed")
    };
    let mut out = format!(
        "{location}: statement {statement} of {statements} of concurrent patch {file_name} failed; the patch is not recorded as applied"
    );
    if committed.is_empty() {
        out.push_str("\nno earlier statement of the patch ran");
    } else {
        out.push_str(
            "\nthese statements ran and were committed, and may need manual cleanup before the patch runs again:",
        );
        for c in committed {
            out.push_str(&format!("\n  {c}"));
        }
    }
    for index in invalid_indexes {
        out.push_str(&format!(
            "\nindex {index} was left INVALID by the failed build: drop it with DROP INDEX CONCURRENTLY {index};"
        ));
    }
    out
}

/// What a file name says about being a patch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Name {
    /// Not a patch (a README, a hidden file).
    Other,
    Patch(PatchId, PatchType),
    /// Looks like a patch (starts with `patch-`, or `patch` and ends with
    /// `.sql`, in any case) but does not match the pattern exactly.
    Malformed(String),
}

/// Classifies a file name. Numbers may have leading zeros and must fit a
/// PostgreSQL `integer`.
pub fn classify(name: &str) -> Name {
    let lower = name.to_ascii_lowercase();
    let looks = lower.starts_with("patch-")
        || lower.starts_with("patch_")
        || (lower.starts_with("patch") && lower.ends_with(".sql"));
    if name.starts_with('.') || !looks {
        return Name::Other;
    }
    let malformed = |why: &str| Name::Malformed(why.to_string());
    let Some(stem) = name
        .strip_prefix("patch-")
        .and_then(|s| s.strip_suffix(".sql"))
    else {
        return malformed("expected the prefix \"patch-\" and the suffix \".sql\", in lower case");
    };
    let parts: Vec<&str> = stem.split('-').collect();
    if parts.len() != 4 {
        return malformed("expected three numbers and a type separated by \"-\"");
    }
    let mut numbers = [0i32; 3];
    for (n, part) in numbers.iter_mut().zip(&parts[..3]) {
        if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
            return Name::Malformed(format!("\"{part}\" is not a number"));
        }
        match part.parse() {
            Ok(v) => *n = v,
            Err(_) => return Name::Malformed(format!("{part} is too large")),
        }
    }
    match parts[3].parse() {
        Ok(kind) => Name::Patch(
            PatchId {
                major: numbers[0],
                minor: numbers[1],
                point: numbers[2],
            },
            kind,
        ),
        Err(_) => Name::Malformed(format!(
            "the type \"{}\" is not std, direct or concurrent",
            parts[3]
        )),
    }
}

/// Reads the patches of a directory, in order. Other files are ignored;
/// a file that looks like a patch but is misnamed is an error, so that it
/// is not silently left out.
pub fn scan(dir: &Path) -> Result<Vec<Patch>> {
    if !dir.is_dir() {
        return Err(PatchError::NoDir {
            path: dir.to_owned(),
        }
        .into());
    }
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(Error::io(dir))?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<std::io::Result<_>>()
        .map_err(Error::io(dir))?;
    entries.sort();
    let mut patches: Vec<Patch> = Vec::new();
    for name in entries {
        let path = dir.join(&name);
        let name = name.to_string_lossy();
        let (id, kind) = match classify(&name) {
            Name::Other => continue,
            _ if !path.is_file() => continue,
            Name::Malformed(reason) => return Err(PatchError::BadName { path, reason }.into()),
            Name::Patch(id, kind) => (id, kind),
        };
        let bytes = std::fs::read(&path).map_err(Error::io(&path))?;
        let checksum = checksum::sha256(&bytes);
        let body = bytes
            .strip_prefix(b"\xEF\xBB\xBF")
            .unwrap_or(&bytes)
            .to_vec();
        let text =
            String::from_utf8(body).map_err(|_| PatchError::NotUtf8 { path: path.clone() })?;
        patches.push(Patch {
            id,
            kind,
            file_name: name.into_owned(),
            path,
            text,
            checksum,
        });
    }
    patches.sort_by(|a, b| a.id.cmp(&b.id).then_with(|| a.file_name.cmp(&b.file_name)));
    if let Some(pair) = patches.windows(2).find(|w| w[0].id == w[1].id) {
        return Err(PatchError::Duplicate {
            id: pair[0].id,
            first: pair[0].path.clone(),
            second: pair[1].path.clone(),
        }
        .into());
    }
    Ok(patches)
}

/// Reads the applied patches from the catalog, in order.
pub fn applied(client: &mut impl GenericClient) -> Result<Vec<Applied>> {
    let rows = client
        .query(
            "SELECT major, minor, point, type, file_name, checksum,
                    to_char(started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') || ' UTC',
                    applied_by
               FROM _pgpm.migrations ORDER BY major, minor, point",
            &[],
        )
        .map_err(Error::db("cannot read the applied patches"))?;
    Ok(rows
        .iter()
        .map(|r| Applied {
            id: PatchId {
                major: r.get(0),
                minor: r.get(1),
                point: r.get(2),
            },
            kind: r.get(3),
            file_name: r.get(4),
            checksum: r.get(5),
            applied_at: r.get(6),
            applied_by: r.get(7),
        })
        .collect())
}

/// Plans a run: checks applied patches against their files, then takes the
/// pending ones (not recorded in the catalog) group by group as `sel` says.
/// Pure: the same patches, rows and selection always give the same plan.
///
/// `dir` is only used in messages.
pub fn plan(dir: &Path, patches: Vec<Patch>, applied: &[Applied], sel: &Selection) -> Result<Plan> {
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
        return Err(PatchError::Drift(drifted).into());
    }
    for applied in applied.iter().filter(|a| !on_disk.contains(&a.id)) {
        warnings.push(Warning::FileGone {
            applied: applied.clone(),
            dir: dir.to_owned(),
        });
    }

    let mut plan = Plan {
        warnings,
        ..Plan::default()
    };
    let Some(first) = pending.first() else {
        return Ok(plan);
    };
    if !sel.allows(first.kind) {
        return Err(PatchError::TypeNotAllowed {
            file_name: first.file_name.clone(),
            kind: first.kind,
            allowed: sel.types.clone(),
        }
        .into());
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
            steps.push(Step { patch, statements });
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
    for stmt in statements {
        let mut words = stmt
            .sql
            .split(|c: char| !c.is_ascii_alphanumeric() && c != '_')
            .filter(|w| !w.is_empty())
            .map(str::to_ascii_uppercase);
        let first = words.next().unwrap_or_default();
        let rest: Vec<String> = words.take(2).collect();
        let bad = match first.as_str() {
            "BEGIN" | "START" | "COMMIT" | "END" | "ABORT" => true,
            "ROLLBACK" => {
                // ROLLBACK [WORK | TRANSACTION] TO [SAVEPOINT] name is fine.
                let next = rest
                    .iter()
                    .find(|w| *w != "WORK" && *w != "TRANSACTION")
                    .map(String::as_str);
                next != Some("TO")
            }
            "PREPARE" => rest.first().is_some_and(|w| w == "TRANSACTION"),
            _ => false,
        };
        if bad {
            return Err(PatchError::TransactionControl {
                path: patch.path.clone(),
                line: stmt.line,
                column: stmt.column,
                statement: excerpt(&stmt.sql, 40),
                kind: patch.kind,
            }
            .into());
        }
    }
    Ok(())
}

/// A statement on one line, cut after `max` characters.
fn excerpt(sql: &str, max: usize) -> String {
    let one_line = sql.split_whitespace().collect::<Vec<_>>().join(" ");
    match one_line.char_indices().nth(max) {
        Some((at, _)) => format!("{}...", &one_line[..at]),
        None => one_line,
    }
}

/// What happened to one patch, reported as the run goes.
#[derive(Debug, Clone, Copy)]
pub enum Event<'a> {
    /// Applied and committed, with its recorded duration.
    Applied { patch: &'a Patch, took: Duration },
    /// Dry run: applied in a transaction that will be rolled back.
    Checked { patch: &'a Patch, took: Duration },
    /// Dry run: a concurrent patch, which does not run.
    Skipped { patch: &'a Patch },
}

/// Runs a plan. Each `std`/`direct` group is one transaction; each
/// `concurrent` patch is recorded by a transaction on `client` while its
/// statements run on a second connection to `info`. `on` hears of every
/// patch as soon as it is committed, so what was applied before a failure
/// is known.
///
/// With `dry_run`, everything runs in one transaction that is rolled back,
/// each group in a savepoint so that later groups see earlier ones, and
/// `concurrent` patches are skipped.
pub fn execute(
    client: &mut Locked<'_>,
    info: &ConnInfo,
    plan: &Plan,
    dry_run: bool,
    on: &mut dyn FnMut(Event<'_>),
) -> Result<()> {
    if dry_run {
        let mut tx = client.begin()?;
        for group in &plan.groups {
            if group.kind.transactional() {
                let took = run_group(&mut tx, group)?;
                for (step, took) in group.steps.iter().zip(took) {
                    on(Event::Checked {
                        patch: &step.patch,
                        took,
                    });
                }
            } else {
                for step in &group.steps {
                    on(Event::Skipped { patch: &step.patch });
                }
            }
        }
        return tx
            .rollback()
            .map_err(Error::db("cannot roll back the dry run"));
    }
    let mut second: Option<Client> = None;
    for group in &plan.groups {
        if group.kind.transactional() {
            let mut tx = client.begin()?;
            let took = run_group(&mut tx, group)?;
            tx.commit()
                .map_err(Error::db("cannot commit the group of patches"))?;
            for (step, took) in group.steps.iter().zip(took) {
                on(Event::Applied {
                    patch: &step.patch,
                    took,
                });
            }
        } else {
            for step in &group.steps {
                let second = match &mut second {
                    Some(c) => c,
                    None => second.insert(info.connect()?),
                };
                let took = run_concurrent(client, second, step)?;
                on(Event::Applied {
                    patch: &step.patch,
                    took,
                });
            }
        }
    }
    Ok(())
}

/// Runs a transactional group inside `tx`, in a savepoint: the history rows
/// (bound parameters, one insert), then the group's [`Script`] in one
/// simple query, then one update of the start and end times from its marks.
/// Five round trips, however many patches. On failure the savepoint is rolled back and the failing
/// patch is found (see [`locate`]).
fn run_group(tx: &mut Transaction<'_>, group: &Group) -> Result<Vec<Duration>> {
    let n = group.steps.len();
    let (mut majors, mut minors, mut points) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let (mut kinds, mut names, mut sums) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    for step in &group.steps {
        let p = &step.patch;
        majors.push(p.id.major);
        minors.push(p.id.minor);
        points.push(p.id.point);
        kinds.push(p.kind.as_str());
        names.push(p.file_name.as_str());
        sums.push(p.checksum.as_str());
    }
    let script = group.script();
    let mut sp = tx
        .transaction()
        .map_err(Error::db("cannot start a savepoint"))?;
    sp.execute(
        "INSERT INTO _pgpm.migrations (major, minor, point, type, file_name, checksum)
         SELECT * FROM unnest($1::int4[], $2::int4[], $3::int4[], $4::text[], $5::text[], $6::text[])",
        &[&majors, &minors, &points, &kinds, &names, &sums],
    )
    .map_err(Error::db("cannot record the patches in _pgpm.migrations"))?;
    let messages = match sp.simple_query(&script.sql) {
        Ok(messages) => messages,
        Err(source) => {
            sp.rollback()
                .map_err(Error::db("cannot roll back the failed group"))?;
            if source.as_db_error().is_none() {
                return Err(Error::Db {
                    context: "lost the connection while applying patches".into(),
                    source,
                });
            }
            let location = locate(tx, group, &script, &source);
            return Err(PatchError::Failed {
                location,
                group: group
                    .steps
                    .iter()
                    .map(|s| s.patch.file_name.clone())
                    .collect(),
                source,
            }
            .into());
        }
    };
    let marks: Vec<i64> = messages
        .iter()
        .filter_map(|m| match m {
            postgres::SimpleQueryMessage::Row(row)
                if row.columns().len() == 1 && row.columns()[0].name() == MARK_COLUMN =>
            {
                row.get(0).and_then(mark_micros)
            }
            _ => None,
        })
        .collect();
    if marks.len() != n + 1 {
        let i = marks.len().saturating_sub(1).min(n - 1);
        return Err(PatchError::Unfinished {
            file_name: group.steps[i].patch.file_name.clone(),
        }
        .into());
    }
    let rows = sp
        .query(
            "UPDATE _pgpm.migrations m
                SET started_at = 'epoch'::timestamptz + u.s * interval '1 microsecond',
                    finished_at = 'epoch'::timestamptz + u.f * interval '1 microsecond'
               FROM unnest($1::int4[], $2::int4[], $3::int4[], $4::int8[], $5::int8[])
                    AS u(major, minor, point, s, f)
              WHERE (m.major, m.minor, m.point) = (u.major, u.minor, u.point)
          RETURNING m.major, m.minor, m.point,
                    extract(epoch FROM m.finished_at - m.started_at)::float8",
            &[&majors, &minors, &points, &&marks[..n], &&marks[1..]],
        )
        .map_err(Error::db("cannot record the patches' times"))?;
    let recorded: BTreeMap<PatchId, f64> = rows
        .iter()
        .map(|r| {
            let id = PatchId {
                major: r.get(0),
                minor: r.get(1),
                point: r.get(2),
            };
            (id, r.get(3))
        })
        .collect();
    let mut took = Vec::with_capacity(n);
    for step in &group.steps {
        match recorded.get(&step.patch.id) {
            Some(secs) => took.push(Duration::from_secs_f64(secs.max(0.0))),
            None => {
                return Err(PatchError::Unfinished {
                    file_name: step.patch.file_name.clone(),
                }
                .into());
            }
        }
    }
    sp.commit()
        .map_err(Error::db("cannot release the savepoint"))?;
    Ok(took)
}

/// Finds where a failed group failed, as `path:line:column`.
///
/// PostgreSQL's error position (1-based, in characters) is relative to the
/// whole script, so it points into one patch's part. Errors raised while a
/// statement runs carry no position; then the group is run again patch by
/// patch, each in a savepoint of `tx` (which is where it was before the
/// group), and the failing patch statement by statement, until the same
/// error comes back. Everything it ran is rolled back.
fn locate(
    tx: &mut Transaction<'_>,
    group: &Group,
    script: &Script,
    error: &postgres::Error,
) -> Option<String> {
    if let Some(ErrorPosition::Original(position)) = error.as_db_error().and_then(|e| e.position())
    {
        let at = char_to_byte(&script.sql, *position as usize);
        let i = script
            .parts
            .iter()
            .position(|r| r.contains(&at) || r.end == at)?;
        let step = &group.steps[i];
        let (line, column) = sql::line_col(&step.patch.text, at - script.parts[i].start);
        return Some(format!("{}:{line}:{column}", step.patch.path.display()));
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
                    .unwrap_or_else(|| step.patch.path.display().to_string());
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
fn locate_statement(tx: &mut Transaction<'_>, step: &Step) -> Option<String> {
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

/// `path:line:column` of an error in one statement: the error's position
/// when it has one, else the statement's start.
fn statement_location(step: &Step, stmt: &Statement, error: &postgres::Error) -> String {
    let (line, column) = match error.as_db_error().and_then(|e| e.position()) {
        Some(ErrorPosition::Original(position)) => {
            sql::line_col(&step.patch.text, stmt.file_offset(*position as usize))
        }
        _ => (stmt.line, stmt.column),
    };
    format!("{}:{line}:{column}", step.patch.path.display())
}

/// Byte offset of a 1-based character position; past the end maps to the end.
fn char_to_byte(text: &str, position: usize) -> usize {
    text.char_indices()
        .nth(position.saturating_sub(1))
        .map_or(text.len(), |(at, _)| at)
}

/// Applies one concurrent patch: the history row in a transaction on the
/// main connection, the statements one by one in autocommit on `second`
/// (a multi-statement string would run as one implicit transaction, which
/// `CREATE INDEX CONCURRENTLY` refuses), then the end time and commit.
fn run_concurrent(main: &mut Client, second: &mut Client, step: &Step) -> Result<Duration> {
    let p = &step.patch;
    let invalid_before =
        invalid_indexes(second).map_err(Error::db("cannot list invalid indexes"))?;
    // READ COMMITTED whatever default_transaction_isolation says: between
    // statements it holds no snapshot, and CREATE INDEX CONCURRENTLY waits
    // for every transaction holding an older one, which would be this one.
    let mut tx = main
        .build_transaction()
        .isolation_level(postgres::IsolationLevel::ReadCommitted)
        .start()
        .map_err(Error::db("cannot begin a transaction"))?;
    // It sits idle while the statements run, for hours if an index build
    // takes that long; a server-wide timeout must not end it, or the patch
    // would be applied but not recorded.
    tx.batch_execute("SET LOCAL idle_in_transaction_session_timeout = 0")
        .map_err(Error::db("cannot set idle_in_transaction_session_timeout"))?;
    tx.execute(
        "INSERT INTO _pgpm.migrations (major, minor, point, type, file_name, checksum)
         VALUES ($1, $2, $3, $4, $5, $6)",
        &[
            &p.id.major,
            &p.id.minor,
            &p.id.point,
            &p.kind.as_str(),
            &p.file_name,
            &p.checksum,
        ],
    )
    .map_err(Error::db(format!(
        "cannot record {} in _pgpm.migrations",
        p.file_name
    )))?;
    for (i, stmt) in step.statements.iter().enumerate() {
        if let Err(source) = second.batch_execute(&stmt.sql) {
            tx.rollback()
                .map_err(Error::db("cannot roll back the history row"))?;
            let invalid_indexes = match invalid_indexes(main) {
                Ok(now) => now
                    .into_iter()
                    .filter(|i| !invalid_before.contains(i))
                    .collect(),
                Err(_) => Vec::new(),
            };
            return Err(PatchError::ConcurrentFailed {
                location: statement_location(step, stmt, &source),
                file_name: p.file_name.clone(),
                statement: i + 1,
                statements: step.statements.len(),
                committed: step.statements[..i]
                    .iter()
                    .map(|s| {
                        let at = format!("{}:{}:{}", p.path.display(), s.line, s.column);
                        format!("{at}: {}", excerpt(&s.sql, 80))
                    })
                    .collect(),
                invalid_indexes,
                source,
            }
            .into());
        }
    }
    let secs: Option<f64> = tx
        .query_one(
            "UPDATE _pgpm.migrations SET finished_at = clock_timestamp()
              WHERE (major, minor, point) = ($1, $2, $3)
          RETURNING extract(epoch FROM finished_at - started_at)::float8",
            &[&p.id.major, &p.id.minor, &p.id.point],
        )
        .map_err(Error::db(format!(
            "cannot record the end of {}",
            p.file_name
        )))?
        .get(0);
    tx.commit().map_err(Error::db(format!(
        "cannot commit the history of {}",
        p.file_name
    )))?;
    Ok(Duration::from_secs_f64(secs.unwrap_or(0.0).max(0.0)))
}

/// Indexes marked invalid (a failed concurrent build), schema-qualified and quoted.
fn invalid_indexes(client: &mut Client) -> std::result::Result<Vec<String>, postgres::Error> {
    Ok(client
        .query(
            "SELECT format('%I.%I', n.nspname, c.relname)
               FROM pg_index i
               JOIN pg_class c ON c.oid = i.indexrelid
               JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE NOT i.indisvalid
              ORDER BY 1",
            &[],
        )?
        .iter()
        .map(|r| r.get(0))
        .collect())
}

/// What `migrate` should do.
#[derive(Debug, Clone)]
pub struct Options {
    pub dir: PathBuf,
    pub selection: Selection,
    /// Apply `std` and `direct` patches in a transaction and roll it back;
    /// skip `concurrent` ones.
    pub dry_run: bool,
    pub lock_timeout: Duration,
}

/// Scans `opts.dir`, takes pgpm's lock, checks the catalog, plans and
/// executes. Warnings are in the returned plan's `warnings` and also go to
/// `warn` before anything runs.
pub fn migrate(
    client: &mut Client,
    info: &ConnInfo,
    opts: &Options,
    warn: &mut dyn FnMut(&Warning),
    on: &mut dyn FnMut(Event<'_>),
) -> Result<Plan> {
    let patches = scan(&opts.dir)?;
    let mut client = Locked::acquire(client, opts.lock_timeout)?;
    crate::catalog::require_current(&mut *client)?;
    let applied = applied(&mut *client)?;
    let plan = plan(&opts.dir, patches, &applied, &opts.selection)?;
    for w in &plan.warnings {
        warn(w);
    }
    execute(&mut client, info, &plan, opts.dry_run, on)?;
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(major: i32, minor: i32, point: i32) -> PatchId {
        PatchId {
            major,
            minor,
            point,
        }
    }

    fn patch(name: &str, text: &str) -> Patch {
        let Name::Patch(id, kind) = classify(name) else {
            panic!("{name}")
        };
        Patch {
            id,
            kind,
            path: Path::new("patches").join(name),
            file_name: name.into(),
            text: text.into(),
            checksum: checksum::sha256(text.as_bytes()),
        }
    }

    fn applied_row(p: &Patch) -> Applied {
        Applied {
            id: p.id,
            kind: p.kind.as_str().into(),
            file_name: p.file_name.clone(),
            checksum: p.checksum.clone(),
            applied_at: "2026-01-02 03:04:05 UTC".into(),
            applied_by: "alice".into(),
        }
    }

    fn names(plan: &Plan) -> Vec<Vec<&str>> {
        plan.groups
            .iter()
            .map(|g| g.steps.iter().map(|s| s.patch.file_name.as_str()).collect())
            .collect()
    }

    fn sel(all: bool, one: bool, types: &[PatchType]) -> Selection {
        Selection {
            all,
            one,
            types: types.to_vec(),
        }
    }

    fn mixed() -> Vec<Patch> {
        vec![
            patch("patch-1-0-0-std.sql", "SELECT 1;"),
            patch("patch-1-1-0-std.sql", "SELECT 2;"),
            patch("patch-1-2-0-concurrent.sql", "SELECT 3;"),
            patch("patch-1-3-0-direct.sql", "SELECT 4;"),
            patch("patch-1-4-0-std.sql", "SELECT 5;"),
        ]
    }

    #[test]
    fn names_are_classified() {
        assert_eq!(
            classify("patch-1-10-0-std.sql"),
            Name::Patch(id(1, 10, 0), PatchType::Std)
        );
        assert_eq!(
            classify("patch-001-02-3-concurrent.sql"),
            Name::Patch(id(1, 2, 3), PatchType::Concurrent)
        );
        assert_eq!(classify("README.md"), Name::Other);
        assert_eq!(classify(".patch-1-0-0-std.sql.swp"), Name::Other);
        assert_eq!(classify("baseline.sql"), Name::Other);
        for bad in [
            "patch-1-0-std.sql",
            "patch-1-0-0-standard.sql",
            "patch-1-0-0-std.SQL",
            "Patch-1-0-0-std.sql",
            "patch_1_0_0_std.sql",
            "patch-1-0-0-std.sql.orig",
            "patch-a-0-0-std.sql",
            "patch-1--0-std.sql",
            "patch-99999999999-0-0-std.sql",
            "patch-1-0-0-0-std.sql",
            "patch-+1-0-0-std.sql",
        ] {
            assert!(matches!(classify(bad), Name::Malformed(_)), "{bad}");
        }
    }

    #[test]
    fn plain_run_takes_the_first_group_only() {
        let plan = plan(Path::new("patches"), mixed(), &[], &Selection::default()).unwrap();
        assert_eq!(
            names(&plan),
            [["patch-1-0-0-std.sql", "patch-1-1-0-std.sql"]]
        );
        assert_eq!(plan.remaining, 3);
    }

    #[test]
    fn all_takes_every_group_and_one_wins() {
        let plan = plan(Path::new("p"), mixed(), &[], &sel(true, false, &[])).unwrap();
        assert_eq!(
            names(&plan),
            vec![
                vec!["patch-1-0-0-std.sql", "patch-1-1-0-std.sql"],
                vec!["patch-1-2-0-concurrent.sql"],
                vec!["patch-1-3-0-direct.sql"],
                vec!["patch-1-4-0-std.sql"],
            ]
        );
        assert_eq!(plan.remaining, 0);
        let plan = plan_of(mixed(), &[], sel(true, true, &[]));
        assert_eq!(names(&plan), [["patch-1-0-0-std.sql"]]);
        assert_eq!(plan.remaining, 4);
    }

    fn plan_of(patches: Vec<Patch>, applied: &[Applied], sel: Selection) -> Plan {
        plan(Path::new("patches"), patches, applied, &sel).unwrap()
    }

    #[test]
    fn applied_patches_are_not_pending_and_groups_form_among_the_rest() {
        let patches = mixed();
        let applied: Vec<Applied> = patches[..3].iter().map(applied_row).collect();
        let plan = plan_of(patches, &applied, Selection::default());
        assert_eq!(names(&plan), [["patch-1-3-0-direct.sql"]]);
        assert!(plan.warnings.is_empty());
    }

    #[test]
    fn type_restrictions() {
        let err = plan(
            Path::new("patches"),
            mixed(),
            &[],
            &sel(true, false, &[PatchType::Concurrent]),
        )
        .unwrap_err();
        assert!(
            matches!(&err, Error::Patch(PatchError::TypeNotAllowed { file_name, kind: PatchType::Std, .. }) if file_name == "patch-1-0-0-std.sql"),
            "{err}"
        );
        // With --all, a later group of another type stops the run.
        let plan = plan_of(mixed(), &[], sel(true, false, &[PatchType::Std]));
        assert_eq!(names(&plan).len(), 1);
        assert_eq!(
            plan.held_back,
            Some(("patch-1-2-0-concurrent.sql".into(), PatchType::Concurrent))
        );
    }

    #[test]
    fn ordering_is_numeric() {
        let mut patches: Vec<Patch> = [
            "patch-10-0-0-std.sql",
            "patch-2-2-22-std.sql",
            "patch-2-11-0-std.sql",
            "patch-2-2-3-std.sql",
            "patch-2-10-0-std.sql",
            "patch-2-2-2-std.sql",
        ]
        .iter()
        .map(|n| patch(n, ";"))
        .collect();
        patches.sort_by_key(|p| p.id);
        let plan = plan_of(patches, &[], Selection::default());
        assert_eq!(
            names(&plan),
            [[
                "patch-2-2-2-std.sql",
                "patch-2-2-3-std.sql",
                "patch-2-2-22-std.sql",
                "patch-2-10-0-std.sql",
                "patch-2-11-0-std.sql",
                "patch-10-0-0-std.sql",
            ]]
        );
    }

    #[test]
    fn drift_is_an_error_and_a_missing_file_a_warning() {
        let patches = mixed();
        let mut applied: Vec<Applied> = patches[..2].iter().map(applied_row).collect();
        applied[0].checksum = "0".repeat(64);
        let err = plan(
            Path::new("patches"),
            patches.clone(),
            &applied,
            &Selection::default(),
        )
        .unwrap_err();
        let message = err.to_string();
        assert!(matches!(err, Error::Patch(PatchError::Drift(ref d)) if d.len() == 1));
        assert!(
            message.contains("patches/patch-1-0-0-std.sql has changed"),
            "{message}"
        );
        assert!(
            message.contains("2026-01-02 03:04:05 UTC by alice"),
            "{message}"
        );

        let mut gone = applied_row(&patches[0]);
        gone.id = id(0, 9, 0);
        gone.file_name = "patch-0-9-0-std.sql".into();
        let plan = plan_of(patches, &[gone], Selection::default());
        assert!(matches!(&plan.warnings[..], [Warning::FileGone { .. }]));
        assert!(
            plan.warnings[0]
                .to_string()
                .contains("patch-0-9-0-std.sql was applied")
        );
    }

    #[test]
    fn identity_is_the_numbers() {
        let patches = vec![patch("patch-1-0-0-direct.sql", "SELECT 1;")];
        let mut row = applied_row(&patches[0]);
        row.kind = "std".into();
        let plan = plan_of(patches, &[row], Selection::default());
        assert!(plan.is_empty());
        assert!(matches!(&plan.warnings[..], [Warning::TypeChanged { .. }]));
    }

    #[test]
    fn transaction_control_is_refused_in_std_patches() {
        for text in [
            "BEGIN;\nCREATE TABLE t (i int);\nCOMMIT;\n",
            "CREATE TABLE t (i int);\n  commit;",
            "SELECT 1;\nROLLBACK;",
            "START TRANSACTION;",
        ] {
            let err = plan(
                Path::new("patches"),
                vec![patch("patch-1-0-0-std.sql", text)],
                &[],
                &Selection::default(),
            )
            .unwrap_err();
            assert!(
                matches!(err, Error::Patch(PatchError::TransactionControl { .. })),
                "{text}: {err}"
            );
        }
        let ok = "SAVEPOINT a;\nSELECT 1;\nROLLBACK TO SAVEPOINT a;\nRELEASE a;\nDO $$ BEGIN PERFORM 1; END $$;";
        plan_of(
            vec![patch("patch-1-0-0-std.sql", ok)],
            &[],
            Selection::default(),
        );
    }

    #[test]
    fn script_maps_parts_back_to_patches() {
        let plan = plan_of(
            vec![
                patch("patch-1-0-0-std.sql", "SELECT 1"),
                patch("patch-1-1-0-std.sql", "SELECT 2; -- trailing"),
            ],
            &[],
            Selection::default(),
        );
        let script = plan.groups[0].script();
        assert_eq!(&script.sql[script.parts[0].clone()], "SELECT 1");
        assert_eq!(
            &script.sql[script.parts[1].clone()],
            "SELECT 2; -- trailing"
        );
        assert_eq!(script.sql.matches(MARK).count(), 3);
        assert!(script.sql.contains("SELECT 1\n;\nSELECT extract(epoch"));
        assert_eq!(
            mark_micros("1732212345.123456"),
            Some(1_732_212_345_123_456)
        );
        assert_eq!(mark_micros("1732212345.5"), Some(1_732_212_345_500_000));
        assert_eq!(mark_micros("1732212345"), Some(1_732_212_345_000_000));
    }
}
