//! Running a migration plan: transactional groups in one transaction each,
//! concurrent patches statement by statement on a second connection.

use std::collections::BTreeMap;
use std::time::Duration;

use postgres::{Client, Transaction};

use super::locate::{locate, statement_location};
use super::name::PatchId;
use super::plan::{Group, MigrationPlan, PendingPatch};
use super::scan::Patch;
use super::script::{self, MARK_COLUMN, mark_micros};
use super::{ConcurrentFailure, PatchError};
use crate::catalog::{read, write};
use crate::db::QueryError;
use crate::db::blockers::{BlockerWatch, ObjectLocks, is_lock_timeout};
use crate::db::conninfo::ConnInfo;
use crate::db::lock::Locked;
use crate::db::marks;
use crate::db::quote::quote_ident;
use crate::event::Event;
use crate::sql::{ObjectKind, StatementKind};
use crate::util::text::Location;

type Result<T, E = PatchError> = std::result::Result<T, E>;

/// Runs a plan. Each `std`/`direct` group is one transaction; each
/// `concurrent` patch is recorded by a transaction on `client` while its
/// statements run on a second connection to `info`. `on` hears of every
/// patch as soon as it is committed, so what was applied before a failure
/// is known.
///
/// With `dry_run`, everything runs in one transaction that is rolled back,
/// each group in a savepoint so that later groups see earlier ones, and
/// `concurrent` patches are skipped. Since what comes after a skipped
/// patch may need what it creates, the dry run stops there: the patch it
/// stopped before and the concurrent patch that stopped it are returned.
///
/// The statements of `std` and `direct` groups run under `locks.timeout` as
/// their `lock_timeout`; a group whose statement waits longer is rolled
/// back and runs again after a pause, `locks.retries` times, before the
/// migration fails naming the sessions seen holding the lock. `concurrent`
/// patches wait as long as they must: `CREATE INDEX CONCURRENTLY` waits for
/// every older transaction by design.
pub fn execute(
    client: &mut Locked<'_>,
    info: &ConnInfo,
    plan: &MigrationPlan,
    dry_run: bool,
    locks: &ObjectLocks,
    on: &mut dyn FnMut(Event<'_>),
) -> Result<Option<DryRunStop>> {
    // Progress marks, created only when a group will run (a run with
    // nothing to do stays a handful of statements).
    let marked = plan.groups.iter().any(|g| g.kind.transactional()) && marks::create(&mut **client);
    // The notices that tell when each later patch of a group starts, when
    // someone listens and a group has several.
    let announced = crate::event::observed()
        && plan
            .groups
            .iter()
            .any(|g| g.kind.transactional() && g.steps.len() > 1)
        && script::create_announcer(&mut **client);
    let marked = (marked, announced);
    if dry_run {
        let mut tx = client.begin()?;
        let mut skipped: Option<&str> = None;
        for group in &plan.groups {
            if let Some(concurrent) = skipped {
                tx.rollback()
                    .map_err(QueryError::with("cannot roll back the dry run"))?;
                return Ok(Some(DryRunStop {
                    before: group.steps[0].patch.file_name.clone(),
                    concurrent: concurrent.to_string(),
                }));
            }
            if group.kind.transactional() {
                let took = run_group(&mut tx, group, marked, on)?;
                for (step, took) in group.steps.iter().zip(took) {
                    on(Event::PatchChecked {
                        file_name: &step.patch.file_name,
                        took,
                    });
                }
            } else {
                for step in &group.steps {
                    on(Event::PatchSkipped {
                        file_name: &step.patch.file_name,
                    });
                }
                skipped = group.steps.last().map(|s| s.patch.file_name.as_str());
            }
        }
        tx.rollback()
            .map_err(QueryError::with("cannot roll back the dry run"))?;
        return Ok(None);
    }
    let mut second: Option<Client> = None;
    for group in &plan.groups {
        if group.kind.transactional() {
            let took = run_group_retrying(client, info, group, marked, locks, on)?;
            for (step, took) in group.steps.iter().zip(took) {
                on(Event::PatchApplied {
                    file_name: &step.patch.file_name,
                    took,
                });
            }
        } else {
            for step in &group.steps {
                let second = match &mut second {
                    Some(c) => c,
                    None => {
                        let mut runner = info.connect()?;
                        client.hand_over(&mut runner)?;
                        second.insert(runner)
                    }
                };
                on(Event::PatchStarted {
                    file_name: &step.patch.file_name,
                });
                let took = run_concurrent(client, second, step, on)?;
                on(Event::PatchApplied {
                    file_name: &step.patch.file_name,
                    took,
                });
            }
        }
    }
    Ok(None)
}

/// Runs and commits a transactional group, again after a pause when one of
/// its statements waited longer than the lock timeout.
fn run_group_retrying(
    client: &mut Locked<'_>,
    info: &ConnInfo,
    group: &Group,
    marked: (bool, bool),
    locks: &ObjectLocks,
    on: &mut dyn FnMut(Event<'_>),
) -> Result<Vec<Duration>> {
    let mut attempt = 0;
    loop {
        let mut tx = client.begin()?;
        tx.batch_execute(&locks.set_local())
            .map_err(QueryError::with("cannot set the lock timeout"))?;
        let watch = BlockerWatch::start(info, &mut tx);
        let waited = match run_group(&mut tx, group, marked, on) {
            Ok(took) => {
                if crate::db::connect::interrupted() {
                    return Err(PatchError::Interrupted);
                }
                tx.commit()
                    .map_err(QueryError::with("cannot commit the group of patches"))?;
                return Ok(took);
            }
            Err(PatchError::Failed {
                location, source, ..
            }) if is_lock_timeout(&source) => location
                .map(|l| format!("the statement at {l}"))
                .unwrap_or_else(|| format!("patch {}", group.steps[0].patch.file_name)),
            Err(e) => return Err(e),
        };
        drop(tx);
        if let Some(e) = locks.after_timeout(&mut attempt, waited, watch, on) {
            return Err(PatchError::ObjectLocks(e));
        }
    }
}

/// How the catalog keys a patch.
fn key(patch: &Patch) -> write::PatchKey<'_> {
    write::PatchKey {
        major: patch.id.major,
        minor: patch.id.minor,
        point: patch.id.point,
        file_name: &patch.file_name,
    }
}

/// Where a dry run stopped: `before` may need what `concurrent`, which a
/// dry run does not apply, creates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DryRunStop {
    pub before: String,
    pub concurrent: String,
}

/// Runs a transactional group inside `tx`, in a savepoint: the history rows
/// (bound parameters, one insert), then the group's [`GroupScript`] in one
/// simple query, then one update of the start and end times from its marks.
/// Five round trips, however many patches. On failure the savepoint is rolled back and the failing
/// patch is found (see [`locate`]).
fn run_group(
    tx: &mut Transaction<'_>,
    group: &Group,
    (marked, announced): (bool, bool),
    on: &mut dyn FnMut(Event<'_>),
) -> Result<Vec<Duration>> {
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
    let script = group.script(marked, announced);
    on(Event::PatchStarted {
        file_name: &group.steps[0].patch.file_name,
    });
    for step in &group.steps {
        for stmt in &step.statements {
            on(Event::Statement {
                sql: &stmt.sql,
                file: Some(&step.patch.path),
                line: stmt.line,
            });
        }
    }
    let mut sp = tx
        .transaction()
        .map_err(QueryError::with("cannot start a savepoint"))?;
    sp.execute(
        "INSERT INTO _pgpm.migrations (major, minor, point, type, file_name, checksum)
         SELECT * FROM unnest($1::int4[], $2::int4[], $3::int4[], $4::text[], $5::text[], $6::text[])",
        &[&majors, &minors, &points, &kinds, &names, &sums],
    )
    .map_err(QueryError::with("cannot record the patches in _pgpm.migrations"))?;
    let messages = match sp.simple_query(&script.sql) {
        Ok(messages) => messages,
        Err(source) => {
            sp.rollback()
                .map_err(QueryError::with("cannot roll back the failed group"))?;
            if source.as_db_error().is_none() {
                return Err(QueryError {
                    context: "lost the connection while applying patches".into(),
                    source,
                }
                .into());
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
            });
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
        });
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
        .map_err(QueryError::with("cannot record the patches' times"))?;
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
                });
            }
        }
    }
    sp.commit()
        .map_err(QueryError::with("cannot release the savepoint"))?;
    Ok(took)
}

/// Applies one concurrent patch: the history row in a transaction on the
/// main connection, the statements one by one in autocommit on `second`
/// (a multi-statement string would run as one implicit transaction, which
/// `CREATE INDEX CONCURRENTLY` refuses), then the end time and commit.
fn run_concurrent(
    main: &mut Client,
    second: &mut Client,
    step: &PendingPatch,
    on: &mut dyn FnMut(Event<'_>),
) -> Result<Duration> {
    let p = &step.patch;
    let invalid_before = read::invalid_indexes(second, false)?;
    let earlier: Vec<String> = read::concurrent_progress(main)?
        .into_iter()
        .filter(|r| (r.major, r.minor, r.point) == (p.id.major, p.id.minor, p.id.point))
        .map(|r| {
            format!(
                "statement {} of {} at {}: {}",
                r.statement, r.statements, r.finished_at, r.excerpt
            )
        })
        .collect();
    // READ COMMITTED whatever default_transaction_isolation says: between
    // statements it holds no snapshot, and CREATE INDEX CONCURRENTLY waits
    // for every transaction holding an older one, which would be this one.
    let mut tx = main
        .build_transaction()
        .isolation_level(postgres::IsolationLevel::ReadCommitted)
        .start()
        .map_err(QueryError::with("cannot begin a transaction"))?;
    // It sits idle while the statements run, for hours if an index build
    // takes that long; a server-wide timeout must not end it, or the patch
    // would be applied but not recorded.
    tx.batch_execute("SET LOCAL idle_in_transaction_session_timeout = 0")
        .map_err(QueryError::with(
            "cannot set idle_in_transaction_session_timeout",
        ))?;
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
    .map_err(QueryError::with(format!(
        "cannot record {} in _pgpm.migrations",
        p.file_name
    )))?;
    let count = step.statements.len();
    for (i, stmt) in step.statements.iter().enumerate() {
        if crate::db::connect::interrupted() {
            tx.rollback()
                .map_err(QueryError::with("cannot roll back the history row"))?;
            return Err(PatchError::Interrupted);
        }
        on(Event::Statement {
            sql: &stmt.sql,
            file: Some(&p.path),
            line: stmt.line,
        });
        if let Err(source) = second.batch_execute(&stmt.sql) {
            tx.rollback()
                .map_err(QueryError::with("cannot roll back the history row"))?;
            let invalid_indexes = match read::invalid_indexes(main, false) {
                Ok(now) => now
                    .into_iter()
                    .filter(|i| !invalid_before.contains(i))
                    .collect(),
                Err(_) => Vec::new(),
            };
            return Err(PatchError::ConcurrentFailed {
                failure: Box::new(ConcurrentFailure {
                    location: statement_location(step, stmt, &source),
                    file_name: p.file_name.clone(),
                    statement: i + 1,
                    statements: step.statements.len(),
                    committed: step.statements[..i]
                        .iter()
                        .map(|s| {
                            let at = Location::at(&p.path, s.line, s.column);
                            format!("{at}: {}", s.excerpt(80))
                        })
                        .collect(),
                    earlier,
                    invalid_indexes,
                }),
                source,
            });
        }
        // Durable at once, like the statement: a run that dies after this
        // point leaves the record of what it did.
        write::record_concurrent_progress(second, key(p), i + 1, count, &stmt.excerpt(80))?;
    }
    // An index the patch creates may exist INVALID from an interrupted
    // build, which IF NOT EXISTS skipped: the patch did not do its work.
    let created: Vec<&str> = step
        .statements
        .iter()
        .filter(|s| s.kind == StatementKind::Create(ObjectKind::Index))
        .filter_map(|s| s.defines.first().map(|n| n.name.as_str()))
        .collect();
    let invalid: Vec<String> = read::invalid_indexes(second, false)?
        .into_iter()
        .filter(|qualified| {
            created.iter().any(|name| {
                qualified.ends_with(&format!(".{}", quote_ident(name)))
                    || qualified.ends_with(&format!(".{name}"))
            })
        })
        .collect();
    if !invalid.is_empty() {
        tx.rollback()
            .map_err(QueryError::with("cannot roll back the history row"))?;
        return Err(PatchError::InvalidIndex {
            file_name: p.file_name.clone(),
            indexes: invalid,
        });
    }
    write::forget_concurrent_progress(&mut tx, key(p))?;
    let secs: Option<f64> = tx
        .query_one(
            "UPDATE _pgpm.migrations SET finished_at = clock_timestamp()
              WHERE (major, minor, point) = ($1, $2, $3)
          RETURNING extract(epoch FROM finished_at - started_at)::float8",
            &[&p.id.major, &p.id.minor, &p.id.point],
        )
        .map_err(QueryError::with(format!(
            "cannot record the end of {}",
            p.file_name
        )))?
        .get(0);
    tx.commit().map_err(QueryError::with(format!(
        "cannot commit the history of {}",
        p.file_name
    )))?;
    Ok(Duration::from_secs_f64(secs.unwrap_or(0.0).max(0.0)))
}
