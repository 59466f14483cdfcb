//! `pgpm migrate`: numbered patch migrations against a real server.
//!
//! Modelled on lazr.postgresql's own suite: grouping by type, `--all`,
//! `--one`, `--type`, numeric ordering, dry runs, failures in `std` and
//! `concurrent` patches, checksum drift, and two runs at once.

use std::path::{Path, PathBuf};

use crate::common::{TestDb, output, pgpm};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// Runs `pgpm migrate CONN DIR ARGS...` and returns (code, stdout, stderr).
fn migrate(db: &TestDb, dir: &Path, args: &[&str]) -> (i32, String, String) {
    output(
        pgpm()
            .arg("migrate")
            .arg(db.conn_string())
            .arg(dir)
            .args(args)
            .assert(),
    )
}

/// The applied patches as `major-minor-point:type`, in order.
fn applied(db: &TestDb) -> Vec<String> {
    db.connect()
        .query(
            "SELECT format('%s-%s-%s:%s', major, minor, point, type) FROM _pgpm.migrations
              ORDER BY major, minor, point",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

fn exists(db: &TestDb, relation: &str) -> bool {
    db.connect()
        .query_one("SELECT to_regclass($1) IS NOT NULL", &[&relation])
        .unwrap()
        .get(0)
}

/// Lines of stdout with the timings replaced, for comparing.
fn lines(stdout: &str) -> Vec<String> {
    stdout
        .lines()
        .map(
            |l| match l.strip_suffix(" ms)").or_else(|| l.strip_suffix(" s)")) {
                Some(rest) => format!(
                    "{}T)",
                    rest.trim_end_matches(|c: char| c.is_ascii_digit() || c == '.')
                ),
                None => l.to_string(),
            },
        )
        .collect()
}

#[test]
fn a_plain_run_applies_the_first_group_only() {
    let db = TestDb::installed();
    let dir = fixture("patches-mixed");
    let (code, stdout, stderr) = migrate(&db, &dir, &[]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        lines(&stdout),
        [
            "applied patch-1-0-0-std.sql (T)",
            "applied patch-1-1-0-std.sql (T)",
            "3 more patch(es) pending: run again for the next group, or use --all",
        ]
    );
    assert_eq!(applied(&db), ["1-0-0:std", "1-1-0:std"]);
    // Each row has its own start and end, in order, and who applied it.
    let ok: bool = db.query_scalar(
        "SELECT bool_and(finished_at >= started_at) AND count(*) = 2
                AND bool_and(file_name LIKE 'patch-%' AND length(checksum) = 64
                             AND applied_by = session_user)
           FROM _pgpm.migrations",
    );
    assert!(ok);
    // The next runs take the next groups, one at a time.
    let (_, stdout, _) = migrate(&db, &dir, &[]);
    assert_eq!(lines(&stdout)[0], "applied patch-1-2-0-concurrent.sql (T)");
    let (_, stdout, _) = migrate(&db, &dir, &[]);
    assert_eq!(lines(&stdout)[0], "applied patch-1-3-0-direct.sql (T)");
    let (_, stdout, _) = migrate(&db, &dir, &[]);
    assert_eq!(lines(&stdout), ["applied patch-1-4-0-std.sql (T)"]);
    let (code, stdout, _) = migrate(&db, &dir, &[]);
    assert_eq!((code, stdout.as_str()), (0, "nothing to apply\n"));
}

#[test]
fn all_applies_group_after_group_until_nothing_is_pending() {
    let db = TestDb::installed();
    let (code, stdout, stderr) = migrate(&db, &fixture("patches-mixed"), &["--all"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        lines(&stdout),
        [
            "applied patch-1-0-0-std.sql (T)",
            "applied patch-1-1-0-std.sql (T)",
            "applied patch-1-2-0-concurrent.sql (T)",
            "applied patch-1-3-0-direct.sql (T)",
            "applied patch-1-4-0-std.sql (T)",
        ]
    );
    assert_eq!(
        applied(&db),
        [
            "1-0-0:std",
            "1-1-0:std",
            "1-2-0:concurrent",
            "1-3-0:direct",
            "1-4-0:std"
        ]
    );
    let price: String = db.query_scalar("SELECT price::text FROM items WHERE id = 1");
    assert_eq!(price, "9.50");
    assert!(exists(&db, "items_name_idx"));
}

#[test]
fn one_applies_a_single_patch_and_wins_over_all() {
    let db = TestDb::installed();
    let (code, stdout, _) = migrate(&db, &fixture("patches-mixed"), &["--all", "-1"]);
    assert_eq!(code, 0);
    assert_eq!(
        lines(&stdout),
        [
            "applied patch-1-0-0-std.sql (T)",
            "4 more patch(es) pending: run again for the next group, or use --all",
        ]
    );
    assert_eq!(applied(&db), ["1-0-0:std"]);
    migrate(&db, &fixture("patches-mixed"), &["--one"]);
    assert_eq!(applied(&db), ["1-0-0:std", "1-1-0:std"]);
}

#[test]
fn type_limits_what_runs_and_a_first_patch_of_another_type_fails() {
    let db = TestDb::installed();
    let dir = fixture("patches-mixed");
    let (code, stdout, stderr) = migrate(&db, &dir, &["--type", "concurrent"]);
    assert_eq!(code, 1, "{stdout}");
    assert!(
        stderr.contains(
            "the first pending patch, patch-1-0-0-std.sql, is a std patch, and --type allows only concurrent"
        ),
        "{stderr}"
    );
    assert!(applied(&db).is_empty());

    // --all stops at the first group of a type not selected.
    let (code, stdout, stderr) = migrate(&db, &dir, &["--all", "--type", "std"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        lines(&stdout),
        [
            "applied patch-1-0-0-std.sql (T)",
            "applied patch-1-1-0-std.sql (T)",
            "stopped before patch-1-2-0-concurrent.sql: --type does not select concurrent patches (3 pending)",
        ]
    );
    let (code, _, stderr) = migrate(
        &db,
        &dir,
        &["--all", "--type", "concurrent", "--type", "direct"],
    );
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(applied(&db).len(), 4);
    // An unknown type is a usage error.
    let (code, _, stderr) = migrate(&db, &dir, &["--type", "fast"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("fast"), "{stderr}");
}

#[test]
fn patches_are_ordered_by_their_numbers() {
    let db = TestDb::installed();
    let (code, stdout, stderr) = migrate(&db, &fixture("patches-sorting"), &[]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout.lines().count(), 7, "{stdout}");
    let order: Vec<String> = db
        .connect()
        .query("SELECT patch FROM applied_order ORDER BY n", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        order,
        ["2-2-2", "2-2-3", "2-2-22", "2-10-0", "2-11-0", "10-0-0"]
    );
}

#[test]
fn dry_run_checks_against_the_database_and_leaves_nothing_behind() {
    let db = TestDb::installed();
    let (code, stdout, stderr) = migrate(&db, &fixture("patches-mixed"), &["--dry-run", "--all"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        lines(&stdout),
        [
            "would apply patch-1-0-0-std.sql (checked in a transaction that is rolled back, T)",
            "would apply patch-1-1-0-std.sql (checked in a transaction that is rolled back, T)",
            "would apply patch-1-2-0-concurrent.sql (not checked: concurrent patches do not run in a dry run)",
            // What follows may need what the concurrent patch creates.
            "dry run stopped before patch-1-3-0-direct.sql: it may need what patch-1-2-0-concurrent.sql creates, and concurrent patches do not run in a dry run",
            "dry run: rolled back, nothing was applied",
        ]
    );
    assert!(applied(&db).is_empty());
    assert!(!exists(&db, "items"));

    // A failing patch fails the dry run the same way.
    let (code, _, stderr) = migrate(&db, &fixture("patches-std-failure"), &["--dry-run"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("patch-1-1-0-std.sql:3:34"), "{stderr}");
    assert!(applied(&db).is_empty());
}

#[test]
fn a_dry_run_stops_before_patches_that_may_need_a_skipped_concurrent_one() {
    let db = TestDb::installed();
    let dir = tempfile::tempdir().unwrap();
    for (name, sql) in [
        ("patch-1-0-0-std.sql", "CREATE TABLE t (x int);"),
        (
            "patch-1-1-0-concurrent.sql",
            "CREATE INDEX CONCURRENTLY t_x ON t (x);",
        ),
        ("patch-1-2-0-std.sql", "ALTER INDEX t_x RENAME TO t_x_idx;"),
    ] {
        std::fs::write(dir.path().join(name), sql).unwrap();
    }
    let (code, stdout, stderr) = migrate(&db, dir.path(), &["--dry-run", "--all"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stdout.contains("dry run stopped before patch-1-2-0-std.sql: it may need what patch-1-1-0-concurrent.sql creates"),
        "{stdout}"
    );
    assert!(applied(&db).is_empty());
    // For real, all three apply.
    let (code, _, stderr) = migrate(&db, dir.path(), &["--all"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(applied(&db).len(), 3);
}

#[test]
fn a_failure_in_a_std_group_leaves_none_of_the_group_applied() {
    let db = TestDb::installed();
    let dir = fixture("patches-std-failure");
    let (code, stdout, stderr) = migrate(&db, &dir, &["--all"]);
    assert_eq!(code, 1, "{stdout}");
    assert_eq!(stdout, "");
    // The position PostgreSQL reports is in the whole group's SQL; it comes
    // back as the patch's own line and column, after multi-byte text.
    let location = format!("{}:3:34", dir.join("patch-1-1-0-std.sql").display());
    // Each patch of the group says when it starts, as the server gets to
    // it: the last one to start is the one that failed.
    let (progress, error) = stderr.split_at(stderr.find("error: ").unwrap());
    assert_eq!(
        lines(progress),
        [
            "applying patch-1-0-0-std.sql",
            "applying patch-1-1-0-std.sql"
        ]
    );
    assert!(
        error.starts_with(&format!("error: {location}: patch failed")),
        "{stderr}"
    );
    assert!(
        stderr.contains(
            "none of patch-1-0-0-std.sql, patch-1-1-0-std.sql, patch-1-2-0-std.sql is applied"
        ),
        "{stderr}"
    );
    assert!(
        stderr.contains("column \"nmae\" does not exist"),
        "{stderr}"
    );
    assert!(applied(&db).is_empty());
    assert!(!exists(&db, "widgets"));
    assert!(!exists(&db, "gadgets"));
}

#[test]
fn a_failure_without_a_position_is_traced_to_its_statement() {
    let db = TestDb::installed();
    let dir = fixture("patches-std-runtime-failure");
    let (code, _, stderr) = migrate(&db, &dir, &[]);
    assert_eq!(code, 1);
    let location = format!("{}:3:1", dir.join("patch-1-1-0-std.sql").display());
    assert!(
        error_part(&stderr).starts_with(&format!("error: {location}: patch failed")),
        "{stderr}"
    );
    assert!(stderr.contains("violates check constraint"), "{stderr}");
    assert!(applied(&db).is_empty());
    assert!(!exists(&db, "accounts"));
}

#[test]
fn create_index_concurrently_runs_in_a_concurrent_patch() {
    let db = TestDb::installed();
    let (code, stdout, stderr) = migrate(&db, &fixture("patches-concurrent"), &["--all"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        lines(&stdout),
        [
            "applied patch-1-0-0-std.sql (T)",
            "applied patch-1-1-0-concurrent.sql (T)",
        ]
    );
    let valid: bool = db.query_scalar(
        "SELECT indisvalid FROM pg_index WHERE indexrelid = 'events_kind_idx'::regclass",
    );
    assert!(valid);
    // Before PostgreSQL 15, statistics reach other sessions with a delay.
    crate::common::wait_until("the VACUUM to show in the statistics", || {
        db.query_scalar::<bool>(
            "SELECT last_vacuum IS NOT NULL FROM pg_stat_user_tables WHERE relname = 'events'",
        )
    });
    let finished: bool = db.query_scalar(
        "SELECT finished_at >= started_at FROM _pgpm.migrations WHERE (major, minor, point) = (1, 1, 0)",
    );
    assert!(finished);
}

#[test]
fn concurrent_patches_do_not_wait_for_their_own_history_transaction() {
    // Under REPEATABLE READ the transaction holding the history row would
    // keep a snapshot that CREATE INDEX CONCURRENTLY waits for, forever (the
    // statement timeout turns such a hang into a failure); and it sits idle
    // longer than the idle timeout while the index builds.
    let db = TestDb::installed();
    db.exec(&format!(
        "ALTER DATABASE {0} SET default_transaction_isolation = 'repeatable read';
         ALTER DATABASE {0} SET statement_timeout = '20s';
         ALTER DATABASE {0} SET idle_in_transaction_session_timeout = '50ms';",
        pgpm::db::quote::quote_ident(&db.name)
    ));
    let tmp = copy_fixture("patches-concurrent");
    std::fs::write(
        tmp.path().join("patch-1-2-0-concurrent.sql"),
        "SELECT pg_sleep(0.3);\n",
    )
    .unwrap();
    let (code, _, stderr) = migrate(&db, tmp.path(), &["--all"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        applied(&db),
        ["1-0-0:std", "1-1-0:concurrent", "1-2-0:concurrent"]
    );
}

#[test]
fn a_failed_concurrent_patch_names_what_needs_cleaning_up() {
    let db = TestDb::installed();
    let dir = fixture("patches-concurrent-failure");
    let (code, stdout, stderr) = migrate(&db, &dir, &["--all"]);
    assert_eq!(code, 1, "{stderr}");
    // The std group before it committed.
    assert_eq!(lines(&stdout), ["applied patch-1-0-0-std.sql (T)"]);
    assert_eq!(applied(&db), ["1-0-0:std"]);
    let file = dir.join("patch-1-1-0-concurrent.sql");
    let file = file.display();
    assert!(
        error_part(&stderr).starts_with(&format!(
            "error: {file}:3:1: statement 2 of 2 of concurrent patch patch-1-1-0-concurrent.sql failed; the patch is not recorded as applied"
        )),
        "{stderr}"
    );
    assert!(stderr.contains(&format!("may need manual cleanup before the patch runs again:\n  {file}:1:1: CREATE INDEX CONCURRENTLY emails_address_idx ON emails (address);\n")), "{stderr}");
    assert!(
        stderr.contains(
            "index public.emails_address_lower_key was left INVALID by the failed build: drop it with DROP INDEX CONCURRENTLY public.emails_address_lower_key;"
        ),
        "{stderr}"
    );
    assert!(stderr.contains("could not create unique index"), "{stderr}");
    assert!(!stderr.contains("emails_address_idx was left"), "{stderr}");
    let invalid: bool = db.query_scalar(
        "SELECT NOT indisvalid FROM pg_index WHERE indexrelid = 'emails_address_lower_key'::regclass",
    );
    assert!(invalid);
}

/// Copies a fixture folder so a test can change it.
fn copy_fixture(name: &str) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(fixture(name)).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), tmp.path().join(entry.file_name())).unwrap();
    }
    tmp
}

#[test]
fn a_changed_applied_patch_is_an_error_and_a_missing_one_a_warning() {
    let db = TestDb::installed();
    let tmp = copy_fixture("patches-mixed");
    let dir = tmp.path();
    migrate(&db, dir, &[]);
    // Line endings do not count as a change.
    let first = dir.join("patch-1-0-0-std.sql");
    let text = std::fs::read_to_string(&first).unwrap();
    std::fs::write(&first, text.replace('\n', "\r\n")).unwrap();
    let (code, _, stderr) = migrate(&db, dir, &["--dry-run"]);
    assert_eq!(code, 0, "{stderr}");

    std::fs::write(
        &first,
        text.replace("text NOT NULL", "varchar(80) NOT NULL"),
    )
    .unwrap();
    let (code, stdout, stderr) = migrate(&db, dir, &["--all"]);
    assert_eq!(code, 1, "{stdout}");
    let pattern = format!(
        "error: {} has changed since it was applied on 20",
        first.display()
    );
    assert!(stderr.starts_with(&pattern), "{stderr}");
    assert!(stderr.contains(" UTC by "), "{stderr}");
    assert_eq!(applied(&db).len(), 2);

    std::fs::remove_file(&first).unwrap();
    let (code, _, stderr) = migrate(&db, dir, &[]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.starts_with("warning: patch-1-0-0-std.sql was applied on 20"),
        "{stderr}"
    );
    assert!(stderr.contains("but its file is no longer in"), "{stderr}");
    assert_eq!(applied(&db).len(), 3);
}

#[test]
fn two_runs_at_once_apply_every_patch_exactly_once() {
    let db = TestDb::installed();
    let runs: Vec<_> = (0..2)
        .map(|_| {
            let conn = db.conn_string();
            std::thread::spawn(move || {
                output(
                    pgpm()
                        .arg("migrate")
                        .arg(conn)
                        .arg(fixture("patches-mixed"))
                        .arg("--all")
                        .assert(),
                )
            })
        })
        .collect();
    let mut applied_lines = Vec::new();
    for run in runs {
        let (code, stdout, stderr) = run.join().unwrap();
        assert_eq!(code, 0, "{stderr}");
        applied_lines.extend(
            stdout
                .lines()
                .filter(|l| l.starts_with("applied "))
                .map(str::to_owned),
        );
    }
    applied_lines.sort();
    assert_eq!(applied_lines.len(), 5, "{applied_lines:?}");
    applied_lines.dedup();
    assert_eq!(applied_lines.len(), 5, "{applied_lines:?}");
    assert_eq!(applied(&db).len(), 5);
}

#[test]
fn a_misnamed_patch_is_reported_not_skipped() {
    let db = TestDb::installed();
    let dir = fixture("patches-bad-name");
    let (code, _, stderr) = migrate(&db, &dir, &[]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains(&format!(
            "{}: looks like a patch but is not named patch-MAJOR-MINOR-POINT-TYPE.sql",
            dir.join("patch-1-1-std.sql").display()
        )),
        "{stderr}"
    );
    assert!(applied(&db).is_empty());
}

#[test]
fn migrate_needs_the_catalog_and_an_existing_directory() {
    let db = TestDb::new();
    let (code, _, stderr) = migrate(&db, &fixture("patches-mixed"), &[]);
    assert_eq!(code, 1);
    assert!(stderr.contains("pgpm install"), "{stderr}");
    let db = TestDb::installed();
    let (code, _, stderr) = migrate(&db, &fixture("no-such-folder"), &[]);
    assert_eq!(code, 1);
    assert!(stderr.contains("no-such-folder does not exist"), "{stderr}");
}

#[test]
fn a_lone_directory_argument_is_the_directory() {
    let db = TestDb::installed();
    let (code, stdout, stderr) = output(
        pgpm()
            .arg("migrate")
            .arg("patches")
            .arg("--all")
            .current_dir(fixture("patches-sorting").parent().unwrap())
            .env("DATABASE_URL", db.info.to_uri())
            .assert(),
    );
    // `patches` does not exist in tests/fixtures: the argument was taken as DIR.
    assert_eq!(code, 1, "{stdout}");
    assert!(
        stderr.contains("patch directory patches does not exist"),
        "{stderr}"
    );
    let (code, _, stderr) = output(
        pgpm()
            .arg("migrate")
            .arg(fixture("patches-sorting"))
            .env("DATABASE_URL", db.info.to_uri())
            .assert(),
    );
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(applied(&db).len(), 7);
}

#[test]
fn the_example_workspace_patches_apply_to_an_empty_database() {
    let db = TestDb::installed();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("packages-example/patches");
    let (code, stdout, stderr) = migrate(&db, &dir, &["--all"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(!stdout.contains("nothing to apply"), "{stdout}");
    let (code, stdout, _) = migrate(&db, &dir, &["--all"]);
    assert_eq!((code, stdout.as_str()), (0, "nothing to apply\n"));
}

#[test]
fn a_baseline_records_what_the_database_has_without_running_it() {
    let db = TestDb::installed();
    // The database already has what the first two patches create.
    db.exec("CREATE TABLE t (a int, b int);");
    let dir = tempfile::tempdir().unwrap();
    for (name, sql) in [
        ("patch-1-0-0-std.sql", "CREATE TABLE t (a int);"),
        ("patch-1-1-0-std.sql", "ALTER TABLE t ADD COLUMN b int;"),
        ("patch-1-2-0-std.sql", "ALTER TABLE t ADD COLUMN c int;"),
    ] {
        std::fs::write(dir.path().join(name), sql).unwrap();
    }
    let path = dir.path().to_str().unwrap();
    let conn = db.conn_string();
    let (code, stdout, stderr) = output(
        pgpm()
            .args(["migrate", "baseline", "1-1-0", &conn, path])
            .assert(),
    );
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        lines(&stdout),
        [
            "recorded patch-1-0-0-std.sql as applied (baseline; it did not run)",
            "recorded patch-1-1-0-std.sql as applied (baseline; it did not run)",
        ]
    );
    let how: String = db.query_scalar(
        "SELECT string_agg(how, ',' ORDER BY major, minor, point) FROM _pgpm.migrations",
    );
    assert_eq!(how, "baseline,baseline");
    // Only what comes after runs.
    let (code, stdout, stderr) = migrate(&db, dir.path(), &["--all"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(lines(&stdout), ["applied patch-1-2-0-std.sql (T)"]);
    assert!(exists(&db, "t"));
    // A baseline behind what is applied is refused, and changes nothing.
    // Up to what is applied already there is nothing to record.
    let (code, stdout, stderr) = output(
        pgpm()
            .args(["migrate", "baseline", "1.2.0", "-d", &conn, path])
            .assert(),
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("every patch up to 1-2-0 is recorded already"),
        "{stdout}"
    );
    let (code, _, stderr) = output(
        pgpm()
            .args(["migrate", "baseline", "0-9-0", &conn, path])
            .assert(),
    );
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("is applied already, and it comes after the baseline 0-9-0"),
        "{stderr}"
    );
    let rows: i64 = db.query_scalar("SELECT count(*) FROM _pgpm.migrations");
    assert_eq!(rows, 3);
}

#[test]
fn out_of_order_patches_are_refused_unless_asked_and_status_says_so() {
    let db = crate::common::TestDb::installed();
    let dir = tempfile::tempdir().unwrap();
    let patch = |name: &str, sql: &str| std::fs::write(dir.path().join(name), sql).unwrap();
    let run = |args: &[&str]| {
        crate::common::output(
            crate::common::pgpm()
                .arg("migrate")
                .arg(db.conn_string())
                .arg(dir.path())
                .args(args)
                .assert(),
        )
    };
    let status = || {
        crate::common::output(
            crate::common::pgpm()
                .args(["status", &db.conn_string(), "--patches"])
                .arg(dir.path())
                .assert(),
        )
    };
    patch("patch-1-0-0-std.sql", "CREATE TABLE a (id int);\n");
    patch("patch-1-2-0-std.sql", "CREATE TABLE c (id int);\n");
    let (code, _, stderr) = run(&["--all"]);
    assert_eq!(code, 0, "{stderr}");
    // A patch numbered between them arrives later (another branch).
    patch("patch-1-1-0-std.sql", "CREATE TABLE b (id int);\n");
    let (code, _, stderr) = run(&["--all"]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("patch-1-1-0-std.sql is pending but numbered before patch-1-2-0-std.sql, which is applied already"),
        "{stderr}"
    );
    let (_, stdout, stderr) = status();
    assert!(
        format!("{stdout}{stderr}").contains("applies it only with --out-of-order"),
        "{stdout}{stderr}"
    );
    let (code, stdout, stderr) = run(&["--all", "--out-of-order"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("applied patch-1-1-0-std.sql"), "{stdout}");
}

#[test]
fn an_edited_applied_patch_is_accepted_with_a_reason_kept_in_the_catalog() {
    let db = crate::common::TestDb::installed();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("patch-1-0-0-std.sql");
    std::fs::write(&file, "CREATE TABLE a (id int);\n").unwrap();
    let migrate = || {
        crate::common::output(
            crate::common::pgpm()
                .arg("migrate")
                .arg(db.conn_string())
                .arg(dir.path())
                .assert(),
        )
    };
    let (code, _, stderr) = migrate();
    assert_eq!(code, 0, "{stderr}");
    std::fs::write(
        &file,
        "-- the table of accounts\nCREATE TABLE a (id int);\n",
    )
    .unwrap();
    let (code, _, stderr) = migrate();
    assert_eq!(code, 1, "drift stops migrate");
    assert!(stderr.contains("patch-1-0-0-std.sql"), "{stderr}");
    let (_, stdout, stderr) = crate::common::output(
        crate::common::pgpm()
            .args(["status", &db.conn_string(), "--patches"])
            .arg(dir.path())
            .assert(),
    );
    assert!(
        format!("{stdout}{stderr}").contains("changed since it was applied"),
        "{stdout}{stderr}"
    );
    let accept = |reason: &str| {
        crate::common::output(
            crate::common::pgpm()
                .args(["migrate", "accept"])
                .arg(&file)
                .args(["--reason", reason, &db.conn_string()])
                .assert(),
        )
    };
    let (code, stdout, stderr) = accept("a comment, no change to the schema");
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("accepted patch-1-0-0-std.sql"), "{stdout}");
    let kept: String = db.query_scalar(
        "SELECT reason || ' ' || (old_checksum <> new_checksum)::text FROM _pgpm.accepted_patches",
    );
    assert_eq!(kept, "a comment, no change to the schema true");
    let (code, stdout, stderr) = migrate();
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("nothing to apply"), "{stdout}");
    // Accepting again has nothing to do.
    let (code, _, stderr) = accept("again");
    assert_eq!(code, 1);
    assert!(stderr.contains("nothing to accept"), "{stderr}");
}

#[test]
fn a_database_lp_migrate_manages_is_adopted_and_only_new_patches_run() {
    let db = crate::common::TestDb::installed();
    let dir = tempfile::tempdir().unwrap();
    let patch = |name: &str, sql: &str| std::fs::write(dir.path().join(name), sql).unwrap();
    patch("patch-1-0-0-std.sql", "CREATE TABLE a (id int);\n");
    patch("patch-1-1-0-std.sql", "CREATE TABLE b (id int);\n");
    // lp-migrate applied those two, the real one when installed.
    let lazr = std::process::Command::new("python3")
        .arg("-c")
        .arg("import sys\nfrom lazr.postgresql.migrate import main\nsys.exit(main())")
        .arg(db.conn_string())
        .arg(dir.path())
        .arg("--apply-all")
        .output();
    if !lazr.is_ok_and(|o| o.status.success()) {
        db.exec(
            "CREATE TABLE a (id int); CREATE TABLE b (id int);
             CREATE TABLE lazrdatabaserevision (
                 major integer NOT NULL, minor integer NOT NULL, patch integer NOT NULL,
                 start_time timestamp DEFAULT (transaction_timestamp() AT TIME ZONE 'UTC'),
                 end_time timestamp DEFAULT (statement_timestamp() AT TIME ZONE 'UTC'),
                 branch_nick text, revno integer, revid text,
                 PRIMARY KEY (major, minor, patch));
             INSERT INTO lazrdatabaserevision (major, minor, patch) VALUES (0, 0, 0), (1, 0, 0), (1, 1, 0);",
        );
    }
    // A row whose file is gone, and a new patch.
    db.exec("INSERT INTO lazrdatabaserevision (major, minor, patch) VALUES (0, 9, 0)");
    patch("patch-1-2-0-std.sql", "CREATE TABLE c (id int);\n");
    let migrate = |args: &[&str]| {
        crate::common::output(
            crate::common::pgpm()
                .arg("migrate")
                .arg(db.conn_string())
                .arg(dir.path())
                .args(args)
                .assert(),
        )
    };
    let (code, stdout, stderr) = migrate(&["--adopt-lazr"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("recorded patch-1-0-0-std.sql as applied (imported from lp-migrate)"),
        "{stdout}"
    );
    assert!(stdout.contains("recorded patch-1-1-0-std.sql"), "{stdout}");
    assert!(
        stderr.contains("lp-migrate applied patch 0-9-0, which has no file"),
        "{stderr}"
    );
    let how: String = db.query_scalar(
        "SELECT string_agg(file_name || ':' || how || ':' || applied_by, ' ' ORDER BY major, minor, point) FROM _pgpm.migrations",
    );
    assert_eq!(
        how,
        "patch-1-0-0-std.sql:lazr:lp-migrate patch-1-1-0-std.sql:lazr:lp-migrate"
    );
    let (code, stdout, stderr) = migrate(&["--all"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("applied patch-1-2-0-std.sql"), "{stdout}");
    assert!(!stdout.contains("patch-1-0-0"), "{stdout}");
    let (code, stdout, _) = migrate(&["--adopt-lazr"]);
    assert_eq!(code, 0);
    assert!(
        stdout.contains("2 patch(es) were recorded already"),
        "{stdout}"
    );
}

/// The error at the end of stderr, after the lines of patches starting.
fn error_part(stderr: &str) -> &str {
    &stderr[stderr.find("error: ").unwrap_or(0)..]
}
