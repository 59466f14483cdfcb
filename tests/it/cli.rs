//! The command line itself: one rule for connections and paths, files read
//! before connecting, help and usage errors, and what users see of the
//! engine's reports.

use std::path::Path;

use crate::common::{TestDb, output, package, pgpm, shop};

/// A connection string nothing listens on (port 1 refuses at once).
const UNREACHABLE: &str = "host=127.0.0.1 port=1 dbname=x user=x connect_timeout=2";

#[test]
fn deploy_reads_and_checks_files_before_connecting() {
    let ws = tempfile::tempdir().unwrap();
    let dir = ws.path().join("broken");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("package.json"),
        "{ \"name\": \"broken\",\n  \"version\": }",
    )
    .unwrap();
    for args in [
        vec!["deploy", UNREACHABLE, dir.to_str().unwrap()],
        vec!["deploy", "-d", UNREACHABLE, dir.to_str().unwrap()],
        vec!["sandbox", dir.to_str().unwrap()],
    ] {
        let (code, _, stderr) = output(pgpm().args(&args).assert());
        assert_eq!(code, 1, "{args:?}: {stderr}");
        assert!(stderr.contains("package.json:2:"), "{args:?}: {stderr}");
        assert!(!stderr.contains("could not connect"), "{args:?}: {stderr}");
    }
}

#[test]
fn migrate_reads_and_checks_patches_before_connecting() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("patch-1-x-0-std.sql"), "SELECT 1;").unwrap();
    let (code, _, stderr) = output(
        pgpm()
            .args(["migrate", "-d", UNREACHABLE])
            .arg(dir.path())
            .assert(),
    );
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("patch-1-x-0-std.sql"), "{stderr}");
    assert!(!stderr.contains("could not connect"), "{stderr}");
    // Without a problem on disk, the connection is what fails (exit 2).
    std::fs::remove_file(dir.path().join("patch-1-x-0-std.sql")).unwrap();
    let (code, _, stderr) = output(
        pgpm()
            .args(["migrate", "-d", UNREACHABLE])
            .arg(dir.path())
            .assert(),
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("could not connect"), "{stderr}");
}

fn run(args: &[&str]) -> (i32, String, String) {
    output(pgpm().args(args).assert())
}

#[test]
fn every_command_takes_the_connection_with_db_or_in_any_position() {
    let db = TestDb::new();
    let conn = db.conn_string();
    let ws = tempfile::tempdir().unwrap();
    let shop_dir = shop(ws.path(), "1.0.0");
    let path = shop_dir.to_str().unwrap();
    let (code, _, stderr) = run(&["install", "-d", &conn]);
    assert_eq!(code, 0, "{stderr}");
    // plan: PATH CONN, CONN PATH and -d all connect.
    for args in [
        vec!["plan", path, conn.as_str()],
        vec!["plan", conn.as_str(), path],
        vec!["plan", "-d", conn.as_str(), path],
    ] {
        let (code, stdout, stderr) = run(&args);
        assert_eq!(code, 0, "{args:?}: {stderr}");
        assert!(
            stdout.contains("schema shop_1_0_0 (new)"),
            "{args:?}: {stdout}"
        );
    }
    let (code, stdout, stderr) = run(&["deploy", "-d", &conn, path]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("deployed shop 1.0.0 -> shop_1_0_0"),
        "{stdout}"
    );
    let (code, stdout, _) = run(&["deploy", path, &conn]);
    assert_eq!(code, 0);
    assert!(stdout.contains("shop 1.0.0 is up to date"), "{stdout}");
    let (code, stdout, stderr) = run(&["status", "-d", &conn, "--json"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("\"shop_1_0_0\""), "{stdout}");
    let patches = tempfile::tempdir().unwrap();
    std::fs::write(
        patches.path().join("patch-1-0-0-std.sql"),
        "CREATE TABLE t (id int);",
    )
    .unwrap();
    let (code, stdout, stderr) = run(&["migrate", "-d", &conn, patches.path().to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("applied patch-1-0-0-std.sql"), "{stdout}");
    let (code, stdout, stderr) = run(&["remove", "-d", &conn, "shop", "1.0.0", "--force"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("removed shop 1.0.0 (schema shop_1_0_0)"),
        "{stdout}"
    );
    // Two connections, or two paths, are a usage error that names neither password.
    let with_password = format!("{conn} password=hunter2");
    let (code, _, stderr) = run(&["deploy", "-d", &conn, &with_password, path]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("both with -d/--db and as an argument"),
        "{stderr}"
    );
    assert!(!stderr.contains("hunter2"), "{stderr}");
    let (code, _, stderr) = run(&["plan", path, path]);
    assert_eq!(code, 1);
    assert!(stderr.contains("two paths given"), "{stderr}");
}

#[test]
fn help_and_usage_errors_read_like_clap_wrote_them() {
    let (code, stdout, _) = run(&["remove", "--help"]);
    assert_eq!(code, 0);
    assert!(
        stdout.contains("Usage: pgpm remove [OPTIONS] [CONN] <PACKAGE> <VERSION>"),
        "{stdout}"
    );
    assert!(!stdout.contains("<ARGS>"), "{stdout}");
    for args in [
        &["deploy", "--bogus"][..],
        &["remove", "only-one"],
        &["nosuchcommand"],
    ] {
        let (code, _, stderr) = run(args);
        assert_eq!(code, 1, "{args:?}");
        assert!(stderr.starts_with("error: "), "{args:?}: {stderr}");
        assert!(!stderr.contains("error: error:"), "{args:?}: {stderr}");
    }
    // No arguments at all: the help, not an error message.
    let (code, stdout, stderr) = run(&[]);
    assert_eq!(code, 1);
    let text = format!("{stdout}{stderr}");
    assert!(text.contains("Usage: pgpm [OPTIONS] <COMMAND>"), "{text}");
    assert!(!text.contains("error:"), "{text}");
}

#[test]
fn status_orders_pre_releases_by_semver_not_as_text() {
    let db = TestDb::installed();
    let ws = tempfile::tempdir().unwrap();
    for version in ["1.0.0-rc.10", "1.0.0-rc.2", "1.0.0", "1.0.0-beta"] {
        package(
            ws.path(),
            &format!("api-{version}"),
            serde_json::json!({ "name": "api", "version": version, "functions_path": "f" }),
            &[(
                "f/v.sql",
                "CREATE FUNCTION v() RETURNS int LANGUAGE sql AS 'SELECT 1';",
            )],
        );
    }
    let (code, _, stderr) = run(&["deploy", &db.conn_string(), ws.path().to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    let (code, stdout, _) = run(&["status", &db.conn_string()]);
    assert_eq!(code, 0);
    let versions: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("api "))
        .map(|l| l.split_whitespace().nth(1).unwrap())
        .collect();
    assert_eq!(
        versions,
        ["1.0.0-beta", "1.0.0-rc.2", "1.0.0-rc.10", "1.0.0"]
    );
}

/// Writes `n` small versioned packages into `root`, each with a function.
fn many_packages(root: &Path, n: usize) {
    for i in 0..n {
        package(
            root,
            &format!("p{i}"),
            serde_json::json!({ "name": format!("p{i}"), "version": "1.0.0", "functions_path": "f" }),
            &[(
                "f/f.sql",
                "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1';",
            )],
        );
    }
}

#[test]
fn a_no_op_deploy_sends_a_few_statements_however_many_packages() {
    let db = TestDb::installed();
    let ws = tempfile::tempdir().unwrap();
    many_packages(ws.path(), 60);
    let deploy = || {
        let (code, stdout, stderr) =
            run(&["deploy", &db.conn_string(), ws.path().to_str().unwrap()]);
        assert_eq!(code, 0, "{stderr}");
        stdout
    };
    assert!(deploy().contains("deployed p59 1.0.0 -> p59_1_0_0"));
    let mut stdout = String::new();
    let Some(statements) = db.statements_logged(|| stdout = deploy()) else {
        return; // not our own server: its log is out of reach
    };
    assert_eq!(stdout.matches("is up to date").count(), 60, "{stdout}");
    // Lock, begin, catalog check, deployed versions, every target's state,
    // rollback, unlock: the same handful for 6 packages or 600.
    assert!(
        statements.len() <= 10,
        "{} statements for a no-op deploy of 60 packages:\n{}",
        statements.len(),
        statements.join("\n")
    );
}

#[test]
fn two_packages_that_would_share_a_schema_are_named_as_such() {
    let ws = tempfile::tempdir().unwrap();
    package(
        ws.path(),
        "a",
        serde_json::json!({ "name": "shop_1_0_0", "version": "2.0.0", "subclass": "basic" }),
        &[],
    );
    package(
        ws.path(),
        "b",
        serde_json::json!({ "name": "shop", "version": "1.0.0" }),
        &[],
    );
    let (code, _, stderr) = run(&["plan", ws.path().to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("would both deploy into schema shop_1_0_0"),
        "{stderr}"
    );
    assert!(
        stderr.contains("two packages cannot share a schema"),
        "{stderr}"
    );
    assert!(!stderr.contains("a basic package"), "{stderr}");
}

#[test]
fn files_that_are_not_sql_are_named_never_skipped_silently() {
    let db = TestDb::installed();
    let ws = tempfile::tempdir().unwrap();
    let dir = package(
        ws.path(),
        "app",
        serde_json::json!({ "name": "app", "version": "1.0.0", "functions_path": "functions" }),
        &[
            (
                "functions/a.sql",
                "CREATE FUNCTION a() RETURNS int LANGUAGE sql AS 'SELECT 1';\n",
            ),
            (
                "functions/B.SQL",
                "CREATE FUNCTION b() RETURNS int LANGUAGE sql AS 'SELECT 2';\n",
            ),
            (
                "functions/c.pgsql",
                "CREATE FUNCTION c() RETURNS int LANGUAGE sql AS 'SELECT 3';\n",
            ),
            ("functions/notes", "to do\n"),
            ("functions/.keep", ""),
        ],
    );
    let path = dir.to_str().unwrap();
    for args in [vec!["plan", path], vec!["deploy", path, &db.conn_string()]] {
        let (code, stdout, stderr) = output(pgpm().args(&args).assert());
        assert_eq!(code, 0, "{args:?}: {stderr}");
        for file in ["functions/c.pgsql", "functions/notes"] {
            assert!(
                stderr.contains(&format!(
                    "warning: app 1.0.0: {} is not deployed: only *.sql files are",
                    dir.join(file).display()
                )),
                "{args:?}: {stderr}"
            );
        }
        assert!(!stderr.contains(".keep"), "{stderr}");
        if args[0] == "plan" {
            assert!(
                stdout.contains("functions/B.SQL:1  create function b"),
                "{stdout}"
            );
        }
    }
    let b: i32 = db.query_scalar("SELECT app_1_0_0.b()");
    assert_eq!(b, 2);
}

#[test]
fn what_cannot_run_in_a_deploy_is_said_at_plan_time_with_the_way_out() {
    let ws = tempfile::tempdir().unwrap();
    for (i, (sql, at, expected)) in [
        (
            "SELECT 1;\nCREATE FUNCTON f() RETURNS int LANGUAGE sql AS $$ SELECT 1 $$;\n",
            "2:8",
            "syntax error: at or near \"FUNCTON\"",
        ),
        (
            "CREATE TABLE t (a int);\nCOPY t FROM stdin;\n1\n\\.\n",
            "2:1",
            "COPY ... FROM stdin with its data inline is psql's protocol",
        ),
        ("\\i other.sql\nSELECT 1;\n", "1:1", "psql meta-command (at or near \"\\i\")"),
        ("SELECT :limit;\n", "1:8", "psql variable (at or near \":limit;\")"),
        (
            "CREATE TABLE t (a int);\nCREATE UNIQUE INDEX CONCURRENTLY i ON t (a);\n",
            "2:1",
            "CREATE INDEX CONCURRENTLY cannot run inside a transaction, and a deploy is one: put it in a concurrent patch",
        ),
        ("VACUUM ANALYZE;\n", "1:1", "VACUUM cannot run inside a transaction"),
    ]
    .into_iter()
    .enumerate()
    {
        let dir = package(
            ws.path(),
            &format!("p{i}"),
            serde_json::json!({ "name": format!("p{i}"), "version": "1.0.0", "tables_path": "t" }),
            &[("t/a.sql", sql)],
        );
        let (code, _, stderr) = output(pgpm().args(["plan", dir.to_str().unwrap()]).assert());
        assert_eq!(code, 1, "{sql}: {stderr}");
        let file = dir.join("t/a.sql");
        assert!(
            stderr.contains(&format!("{}:{at}: ", file.display())) && stderr.contains(expected),
            "{sql}: {stderr}"
        );
    }
}

#[test]
fn an_event_trigger_in_a_versioned_package_is_refused_at_plan_time() {
    let ws = tempfile::tempdir().unwrap();
    let body = "CREATE FUNCTION log_ddl() RETURNS event_trigger LANGUAGE plpgsql AS $$ BEGIN END $$;\n\
                CREATE EVENT TRIGGER log_ddl ON ddl_command_end EXECUTE FUNCTION log_ddl();\n";
    let versioned = package(
        ws.path(),
        "v",
        serde_json::json!({ "name": "audit", "version": "1.0.0", "functions_path": "f" }),
        &[("f/a.sql", body)],
    );
    let (code, _, stderr) = output(pgpm().args(["plan", versioned.to_str().unwrap()]).assert());
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains(&format!(
            "{}:2:1: event triggers are database-wide, so versions of audit could not be deployed side by side",
            versioned.join("f/a.sql").display()
        )),
        "{stderr}"
    );
    // In a basic package it is fine.
    let basic = package(
        ws.path(),
        "b",
        serde_json::json!({ "name": "audit", "version": "1.0.0", "subclass": "basic", "functions_path": "f" }),
        &[("f/a.sql", body)],
    );
    let (code, _, stderr) = output(pgpm().args(["plan", basic.to_str().unwrap()]).assert());
    assert_eq!(code, 0, "{stderr}");
}
