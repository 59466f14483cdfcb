//! What deploy and remove refuse so that nothing is half done, dropped
//! without a word, or run with more privilege than meant.

use std::path::Path;

use crate::common::{TestDb, output, package, pgpm};

fn run(args: &[&str]) -> (i32, String, String) {
    output(pgpm().args(args).assert())
}

fn deploy(db: &TestDb, path: &Path, args: &[&str]) -> (i32, String, String) {
    let mut all = vec!["deploy", "-d"];
    let conn = db.conn_string();
    all.push(&conn);
    let path = path.to_str().unwrap().to_string();
    all.push(&path);
    all.extend(args);
    run(&all)
}

/// Schemas, catalog rows and deployments: what a refused command must leave as it was.
fn snapshot(db: &TestDb) -> String {
    db.query_scalar(
        "SELECT concat_ws(' | ',
            (SELECT string_agg(nspname, ',' ORDER BY nspname) FROM pg_namespace WHERE nspname NOT LIKE 'pg_%'),
            (SELECT string_agg(p::text, ',' ORDER BY package_id) FROM _pgpm.packages p),
            (SELECT count(*)::text FROM _pgpm.deployments),
            (SELECT string_agg(relname, ',' ORDER BY relname) FROM pg_class WHERE relnamespace = 'public'::regnamespace))",
    )
}

/// A package `app` whose functions file holds `body`.
fn app(root: &Path, body: &str) -> std::path::PathBuf {
    package(
        root,
        "app",
        serde_json::json!({ "name": "app", "version": "1.0.0", "functions_path": "functions" }),
        &[
            (
                "functions/a.sql",
                "CREATE FUNCTION a() RETURNS int LANGUAGE sql AS 'SELECT 1';\n",
            ),
            ("functions/b.sql", body),
        ],
    )
}

#[test]
fn transaction_control_in_a_package_file_is_refused_before_anything_runs() {
    let db = TestDb::installed();
    for (body, line, what) in [
        (
            "CREATE TABLE t1 (id int);\nCOMMIT;\nCREATE TABLE t2 (id int);\n",
            2,
            "transaction control",
        ),
        (
            "SELECT 1;\nROLLBACK;\nCREATE TABLE t2 (id int);\n",
            2,
            "transaction control",
        ),
        ("BEGIN;\nSELECT 1;\n", 1, "transaction control"),
        ("PREPARE TRANSACTION 'x';\n", 1, "transaction control"),
        ("SAVEPOINT s;\nSELECT 1;\n", 1, "savepoints"),
        ("SELECT 1;\n\nSET ROLE pg_monitor;\n", 3, "change of role"),
        (
            "SET SESSION AUTHORIZATION pg_monitor;\n",
            1,
            "change of role",
        ),
        ("RESET ALL;\n", 1, "change of role"),
    ] {
        let ws = tempfile::tempdir().unwrap();
        let dir = app(ws.path(), body);
        let before = snapshot(&db);
        let expected = format!("{}:{line}:1: ", dir.join("functions/b.sql").display());
        for command in ["plan", "deploy"] {
            let (code, _, stderr) = match command {
                "plan" => run(&["plan", dir.to_str().unwrap()]),
                _ => deploy(&db, &dir, &[]),
            };
            assert_eq!(code, 1, "{body}: {stderr}");
            assert!(stderr.contains(&expected), "{body}: {stderr}");
            assert!(stderr.contains(what), "{body}: {stderr}");
        }
        assert_eq!(snapshot(&db), before, "{body}");
    }
}

#[test]
fn a_file_wrapped_in_begin_and_commit_deploys_without_its_wrapper() {
    let db = TestDb::installed();
    let ws = tempfile::tempdir().unwrap();
    let dir = app(
        ws.path(),
        "-- Deploy app:b to pg\nBEGIN;\n\nCREATE FUNCTION b() RETURNS int LANGUAGE sql AS 'SELECT 2';\n\nCOMMIT;\n",
    );
    let (code, stdout, _) = run(&["plan", dir.to_str().unwrap()]);
    assert_eq!(code, 0);
    assert!(
        stdout.contains("BEGIN ... COMMIT wrapper is left out"),
        "{stdout}"
    );
    let (code, stdout, stderr) = deploy(&db, &dir, &[]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("deployed app 1.0.0"), "{stdout}");
    assert!(
        stderr.contains("note: ")
            && stderr.contains("functions/b.sql: its BEGIN ... COMMIT wrapper is left out"),
        "{stderr}"
    );
    let b: i32 = db.query_scalar("SELECT app_1_0_0.b()");
    assert_eq!(b, 2);
    // The whole deploy was one transaction, recorded as such.
    let closed: bool =
        db.query_scalar("SELECT bool_and(finished_at IS NOT NULL) FROM _pgpm.deployments");
    assert!(closed);
}

#[test]
fn a_lost_connection_says_nothing_was_committed() {
    let db = TestDb::installed();
    let ws = tempfile::tempdir().unwrap();
    let dir = app(
        ws.path(),
        "CREATE FUNCTION b() RETURNS int LANGUAGE sql AS 'SELECT 2';\nSELECT pg_terminate_backend(pg_backend_pid());\n",
    );
    let before = snapshot(&db);
    let (code, _, stderr) = deploy(&db, &dir, &[]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("lost the connection to the server while deploying app 1.0.0; the transaction was not committed, so nothing was changed"),
        "{stderr}"
    );
    assert!(!stderr.contains("savepoint"), "{stderr}");
    assert_eq!(snapshot(&db), before);
}

#[test]
fn package_schemas_pgpm_did_not_create_are_refused_unless_adopted() {
    let db = TestDb::installed();
    db.exec("CREATE TABLE public.users (id int); INSERT INTO public.users VALUES (1);");
    let ws = tempfile::tempdir().unwrap();
    for name in ["public", "information_schema"] {
        let dir = package(
            ws.path(),
            name,
            serde_json::json!({ "name": name, "version": "1.0.0", "subclass": "basic", "functions_path": "f" }),
            &[(
                "f/f.sql",
                "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1';",
            )],
        );
        for mode in ["unsafe", "moderate", "overwrite"] {
            let before = snapshot(&db);
            let (code, _, stderr) = deploy(&db, &dir, &["--mode", mode, "--adopt"]);
            assert_eq!(code, 1, "{name} {mode}: {stderr}");
            assert!(
                stderr.contains("belongs to PostgreSQL or every database"),
                "{stderr}"
            );
            assert_eq!(snapshot(&db), before, "{name} {mode}");
        }
    }
    let users: i64 = db.query_scalar("SELECT count(*) FROM public.users");
    assert_eq!(users, 1);

    // A schema that exists but has no catalog row is not pgpm's to drop.
    db.exec("CREATE SCHEMA legacy; CREATE TABLE legacy.keep (id int);");
    let dir = package(
        ws.path(),
        "legacy",
        serde_json::json!({ "name": "legacy", "version": "1.0.0", "subclass": "basic", "functions_path": "f" }),
        &[(
            "f/f.sql",
            "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1';",
        )],
    );
    for mode in ["safe", "unsafe", "moderate", "overwrite"] {
        let before = snapshot(&db);
        let (code, _, stderr) = deploy(&db, &dir, &["--mode", mode]);
        assert_eq!(code, 1, "{mode}: {stderr}");
        assert!(
            stderr.contains("pgpm did not create it"),
            "{mode}: {stderr}"
        );
        assert!(stderr.contains("--adopt"), "{mode}: {stderr}");
        assert_eq!(snapshot(&db), before, "{mode}");
    }
    let (code, _, stderr) = deploy(&db, &dir, &["--mode", "overwrite", "--adopt"]);
    assert_eq!(code, 0, "{stderr}");
    let kept: bool =
        db.query_scalar("SELECT to_regclass('legacy.keep') IS NOT NULL AND legacy.f() = 1");
    assert!(kept);
}

#[test]
fn a_schema_dropped_by_hand_is_reported_and_recreated() {
    let db = TestDb::installed();
    let ws = tempfile::tempdir().unwrap();
    let dir = app(
        ws.path(),
        "CREATE FUNCTION b() RETURNS int LANGUAGE sql AS 'SELECT 2';\n",
    );
    assert_eq!(deploy(&db, &dir, &[]).0, 0);
    db.exec("DROP SCHEMA app_1_0_0 CASCADE");
    let (code, stdout, _) = run(&["status", &db.conn_string()]);
    assert_eq!(code, 0);
    assert!(stdout.contains("app_1_0_0 (missing)"), "{stdout}");
    assert!(
        stdout.contains("warning: app 1.0.0: schema app_1_0_0 was dropped outside pgpm"),
        "{stdout}"
    );
    let (code, stdout, stderr) = deploy(&db, &dir, &[]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("deployed app 1.0.0 -> app_1_0_0"),
        "{stdout}"
    );
    assert!(
        stderr.contains("was dropped outside pgpm; it is created again"),
        "{stderr}"
    );
    let b: i32 = db.query_scalar("SELECT app_1_0_0.b()");
    assert_eq!(b, 2);
    let (_, stdout, _) = run(&["status", &db.conn_string()]);
    assert!(!stdout.contains("missing"), "{stdout}");
}

#[test]
fn public_cannot_execute_package_functions() {
    let db = TestDb::installed();
    let role = format!("{}_reader", db.name);
    db.exec(&format!("CREATE ROLE {role} LOGIN"));
    let ws = tempfile::tempdir().unwrap();
    let dir = app(
        ws.path(),
        "CREATE FUNCTION b() RETURNS int LANGUAGE sql AS 'SELECT 2';\n",
    );
    assert_eq!(deploy(&db, &dir, &[]).0, 0);
    // A role given only USAGE on the schema may not call the functions.
    db.exec(&format!("GRANT USAGE ON SCHEMA app_1_0_0 TO {role}"));
    let mut reader = db
        .info
        .clone()
        .with("user", role.clone())
        .connect()
        .unwrap();
    let err = reader.query_one("SELECT app_1_0_0.b()", &[]).unwrap_err();
    let message = err
        .as_db_error()
        .map(|e| e.message().to_string())
        .unwrap_or_default();
    assert_eq!(message, "permission denied for function b", "{err:?}");
    // Nor functions added later by a -f redeploy.
    std::fs::write(
        dir.join("functions/c.sql"),
        "CREATE FUNCTION c() RETURNS int LANGUAGE sql AS 'SELECT 3';\n",
    )
    .unwrap();
    let c = dir.join("functions/c.sql");
    let (code, _, stderr) = deploy(&db, &dir, &["-f", c.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    let err = reader.query_one("SELECT app_1_0_0.c()", &[]).unwrap_err();
    let message = err
        .as_db_error()
        .map(|e| e.message().to_string())
        .unwrap_or_default();
    assert_eq!(message, "permission denied for function c", "{err:?}");
    let public_execute: i64 = db.query_scalar(
        "SELECT count(*) FROM pg_proc p, aclexplode(p.proacl) a
          WHERE p.pronamespace = 'app_1_0_0'::regnamespace AND a.grantee = 0",
    );
    assert_eq!(public_execute, 0);
    drop(reader);
    db.exec(&format!("DROP OWNED BY {role}; DROP ROLE {role}"));
}

#[test]
fn a_role_that_may_create_in_public_cannot_hijack_a_deploy() {
    // public as it is before PostgreSQL 15 (and after pg_upgrade from it).
    hijack_attempt(|_| "GRANT CREATE ON SCHEMA public TO PUBLIC".into());
    // Or with CREATE granted to one role by name.
    hijack_attempt(|attacker| format!("GRANT CREATE ON SCHEMA public TO {attacker}"));
}

/// A role that may create in public plants an exact-match overload of a
/// package's function there, which makes it superuser if the deploy runs it.
fn hijack_attempt(grant: impl Fn(&str) -> String) {
    let db = TestDb::installed();
    let attacker = format!("{}_attacker", db.name);
    db.exec(&format!(
        "CREATE ROLE {attacker} LOGIN; {};",
        grant(&attacker)
    ));
    let mut evil = db
        .info
        .clone()
        .with("user", attacker.clone())
        .connect()
        .unwrap();
    // An exact match for tax(1) where the package's own tax takes numeric.
    evil.batch_execute(&format!(
        "CREATE FUNCTION public.tax(int) RETURNS numeric LANGUAGE plpgsql AS $$
         BEGIN EXECUTE 'ALTER ROLE {attacker} SUPERUSER'; RETURN 0; END $$;"
    ))
    .unwrap();
    drop(evil);
    let ws = tempfile::tempdir().unwrap();
    let dir = package(
        ws.path(),
        "ledger",
        serde_json::json!({ "name": "ledger", "version": "1.0.0", "functions_path": "functions" }),
        &[
            (
                "functions/tax.sql",
                "CREATE FUNCTION tax(amount numeric) RETURNS numeric LANGUAGE sql AS 'SELECT amount / 10';\n",
            ),
            // A statement that runs during the deploy, calling the package's own function.
            (
                "functions/z_check.sql",
                "CREATE TABLE rates AS SELECT tax(1) AS rate;\n",
            ),
        ],
    );
    let (code, _, stderr) = deploy(&db, &dir, &[]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("schema public is writable by roles other than its owner"),
        "{stderr}"
    );
    let superuser: bool = db.query_scalar(&format!(
        "SELECT rolsuper FROM pg_roles WHERE rolname = '{attacker}'"
    ));
    assert!(!superuser, "the attacker's function ran during the deploy");
    let rate: String = db.query_scalar("SELECT rate::text FROM ledger_1_0_0.rates");
    assert_eq!(rate, "0.10000000000000000000");
    db.exec(&format!(
        "REVOKE CREATE ON SCHEMA public FROM PUBLIC, {attacker}; DROP FUNCTION public.tax(int); DROP ROLE {attacker}"
    ));
}

#[test]
fn an_owner_the_deployer_is_not_a_member_of_is_refused_up_front() {
    let db = TestDb::new();
    let deployer = format!("{}_deployer", db.name);
    let other = format!("{}_other", db.name);
    db.exec(&format!(
        "CREATE ROLE {deployer} LOGIN; CREATE ROLE {other} NOLOGIN;
         ALTER DATABASE {} OWNER TO {deployer};",
        db.name
    ));
    let conn = db.info.clone().with("user", deployer.clone()).to_string();
    let (code, _, stderr) = run(&["install", &conn]);
    assert_eq!(code, 0, "{stderr}");
    let ws = tempfile::tempdir().unwrap();
    let dir = app(
        ws.path(),
        "CREATE FUNCTION b() RETURNS int LANGUAGE sql AS 'SELECT 2';\n",
    );
    let (code, _, stderr) = run(&["deploy", &conn, dir.to_str().unwrap(), "--owner", &other]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains(&format!("cannot give the package's objects to role {other}: the deploying role is not a member of it")),
        "{stderr}"
    );
    let schemas: i64 =
        db.query_scalar("SELECT count(*) FROM pg_namespace WHERE nspname = 'app_1_0_0'");
    assert_eq!(schemas, 0);
    // As a member, the same deploy works.
    db.exec(&format!("GRANT {other} TO {deployer}"));
    let (code, _, stderr) = run(&["deploy", &conn, dir.to_str().unwrap(), "--owner", &other]);
    assert_eq!(code, 0, "{stderr}");
    let owner: String = db.query_scalar(
        "SELECT nspowner::regrole::text FROM pg_namespace WHERE nspname = 'app_1_0_0'",
    );
    assert_eq!(owner, other);
    drop(db);
}

#[test]
fn remove_refuses_what_the_cascade_reaches_outside_the_schema() {
    let db = TestDb::installed();
    let ws = tempfile::tempdir().unwrap();
    let dir = package(
        ws.path(),
        "api",
        serde_json::json!({ "name": "api", "version": "1.0.0", "views_path": "views" }),
        &[("views/v.sql", "CREATE VIEW numbers AS SELECT 1 AS n;\n")],
    );
    assert_eq!(deploy(&db, &dir, &[]).0, 0);
    db.exec("CREATE VIEW public.report AS SELECT n FROM api_1_0_0.numbers;");
    for args in [vec!["--dry-run"], vec![]] {
        let mut all = vec!["remove", "-d"];
        let conn = db.conn_string();
        all.push(&conn);
        all.extend(["api", "1.0.0"]);
        all.extend(args.iter().copied());
        let (code, _, stderr) = run(&all);
        assert_eq!(code, 1, "{args:?}: {stderr}");
        assert!(
            stderr.contains("would also drop objects outside it: view public.report"),
            "{stderr}"
        );
    }
    let report: bool = db.query_scalar("SELECT to_regclass('public.report') IS NOT NULL");
    assert!(report);
    let (code, _, stderr) = run(&["remove", &db.conn_string(), "api", "1.0.0", "--force"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("also drops view public.report"), "{stderr}");
}

#[test]
fn inputs_that_cannot_be_read_are_user_errors_naming_the_file() {
    let ws = tempfile::tempdir().unwrap();
    let dir = ws.path().join("latin1");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("package.json"),
        b"{\"name\": \"latin1\", \"version\": \"1.0.0\", \"description\": \"caf\xe9\"}",
    )
    .unwrap();
    let (code, _, stderr) = run(&["plan", dir.to_str().unwrap()]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("package.json: not UTF-8 text (first bad byte at offset 58)"),
        "{stderr}"
    );

    let patches = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink("nowhere.sql", patches.path().join("patch-1-0-0-std.sql")).unwrap();
    std::fs::create_dir(patches.path().join("patch-1-0-1-std.sql")).unwrap();
    // A link to itself: a loop.
    std::os::unix::fs::symlink(
        "patch-1-0-2-std.sql",
        patches.path().join("patch-1-0-2-std.sql"),
    )
    .unwrap();
    let path = patches.path().to_str().unwrap().to_string();
    for name in [
        "patch-1-0-0-std.sql",
        "patch-1-0-1-std.sql",
        "patch-1-0-2-std.sql",
    ] {
        let (code, _, stderr) = run(&["migrate", "-d", "host=127.0.0.1 port=1", &path]);
        assert_eq!(code, 1, "{stderr}");
        assert!(
            stderr.contains(&format!(
                "{name}: named like a patch but not a readable file"
            )),
            "{stderr}"
        );
        let gone = patches.path().join(name);
        if gone.is_dir() && !gone.is_symlink() {
            std::fs::remove_dir(gone).unwrap();
        } else {
            std::fs::remove_file(gone).unwrap();
        }
    }
}

#[test]
fn connection_errors_never_show_part_of_a_password() {
    for conn in [
        "postgres://app:sec/ret@127.0.0.1/app",
        "postgres://app:sec?ret@127.0.0.1/app",
        "host=127.0.0.1 password=sec ret",
    ] {
        let (code, stdout, stderr) = run(&["status", conn]);
        assert_eq!(code, 1, "{conn}: {stderr}");
        for part in ["sec", "ret"] {
            assert!(
                !stderr.contains(part) && !stdout.contains(part),
                "{conn}: {stderr}"
            );
        }
    }
}

#[test]
fn the_whole_life_cycle_works_for_a_database_owner_that_is_not_a_superuser() {
    let db = TestDb::new();
    let owner = format!("{}_owner", db.name);
    let app_role = format!("{}_app", db.name);
    db.exec(&format!(
        "CREATE ROLE {owner} LOGIN; CREATE ROLE {app_role} LOGIN;
         ALTER DATABASE {} OWNER TO {owner};
         ALTER SCHEMA public OWNER TO {owner};",
        db.name
    ));
    let conn = db.info.clone().with("user", owner.clone()).to_string();
    let (code, _, stderr) = run(&["install", &conn, "--usage", &app_role]);
    assert_eq!(code, 0, "{stderr}");
    let ws = tempfile::tempdir().unwrap();
    let dir = app(
        ws.path(),
        "CREATE FUNCTION b() RETURNS int LANGUAGE sql AS 'SELECT 2';\n",
    );
    let (code, _, stderr) = run(&["deploy", &conn, dir.to_str().unwrap(), "--usage", &app_role]);
    assert_eq!(code, 0, "{stderr}");
    let patches = tempfile::tempdir().unwrap();
    std::fs::write(
        patches.path().join("patch-1-0-0-std.sql"),
        "CREATE TABLE public.customers (id int PRIMARY KEY);",
    )
    .unwrap();
    let (code, _, stderr) = run(&["migrate", &conn, patches.path().to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");

    // The application role selects a version and calls the API.
    let mut app = db
        .info
        .clone()
        .with("user", app_role.clone())
        .with("application_name", "shop-web")
        .connect()
        .unwrap();
    let selected: serde_json::Value = app
        .query_one("SELECT _pgpm.set_search_path('app', '^1')", &[])
        .unwrap()
        .get(0);
    assert_eq!(selected["schema"], "app_1_0_0");
    let b: i32 = app.query_one("SELECT b()", &[]).unwrap().get(0);
    assert_eq!(b, 2);
    // remove, run by the owner, sees the application's session.
    let (code, _, stderr) = run(&["remove", &conn, "app", "1.0.0"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("is in use by pid"), "{stderr}");
    assert!(stderr.contains("shop-web"), "{stderr}");
    crate::common::close_and_wait(&db, app);
    let (code, _, stderr) = run(&["remove", &conn, "app", "1.0.0"]);
    assert_eq!(code, 0, "{stderr}");
    drop(db);
}

#[test]
fn a_database_owner_that_is_not_a_superuser_gets_trusted_extensions_only() {
    let db = TestDb::new();
    let owner = format!("{}_owner", db.name);
    db.exec(&format!(
        "CREATE ROLE {owner} LOGIN; ALTER DATABASE {} OWNER TO {owner}; ALTER SCHEMA public OWNER TO {owner};",
        db.name
    ));
    let conn = db.info.clone().with("user", owner.clone()).to_string();
    let (code, _, stderr) = run(&["install", &conn]);
    assert_eq!(code, 0, "{stderr}");
    let ws = tempfile::tempdir().unwrap();
    // pageinspect is not trusted: only a superuser may create it.
    for (extension, created) in [("pageinspect", false), ("citext", true)] {
        let dir = package(
            &ws.path().join(extension),
            "app",
            serde_json::json!({
                "name": "app", "version": "1.0.0", "functions_path": "functions",
                "extensions": [extension]
            }),
            &[(
                "functions/f.sql",
                "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1';\n",
            )],
        );
        let (code, _, stderr) = run(&["deploy", &conn, dir.to_str().unwrap()]);
        if created {
            assert_eq!(code, 0, "{stderr}");
            assert!(stderr.contains("creates extension citext"), "{stderr}");
        } else {
            assert_eq!(code, 1, "{stderr}");
            assert!(
                stderr.contains("app 1.0.0 needs extension pageinspect, which only a superuser can create: have one run CREATE EXTENSION \"pageinspect\" in this database first"),
                "{stderr}"
            );
        }
        let count: i64 = db
            .connect()
            .query_one(
                "SELECT count(*) FROM pg_extension WHERE extname = $1",
                &[&extension],
            )
            .unwrap()
            .get(0);
        assert_eq!(count, i64::from(created), "{extension}");
    }
}

#[test]
fn expressions_nested_too_deep_are_a_clear_error() {
    let ws = tempfile::tempdir().unwrap();
    for (depth, code) in [(3_000, 0), (20_000, 1)] {
        let body = format!(
            "CREATE VIEW v AS SELECT {}1{} AS x;\n",
            "(".repeat(depth),
            ")".repeat(depth)
        );
        let dir = package(
            ws.path(),
            &format!("deep{depth}"),
            serde_json::json!({ "name": format!("deep{depth}"), "version": "1.0.0", "views_path": "v" }),
            &[("v/v.sql", &body)],
        );
        let (got, _, stderr) = run(&["plan", dir.to_str().unwrap()]);
        assert_eq!(got, code, "{depth}: {stderr}");
        if code == 1 {
            assert!(stderr.contains("v/v.sql:1:"), "{stderr}");
            assert!(stderr.contains("parentheses nested 20000 deep"), "{stderr}");
        }
    }
}

#[test]
fn an_application_role_calls_the_examples_api_through_its_declared_table_grants() {
    let db = TestDb::new();
    let app_role = format!("{}_app", db.name);
    db.exec(&format!("CREATE ROLE {app_role} LOGIN"));
    let conn = db.conn_string();
    assert_eq!(run(&["install", &conn, "--usage", &app_role]).0, 0);
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("packages-example");
    if !crate::common::runs_the_example(&["deploy", &conn, example.to_str().unwrap()]) {
        return;
    }
    let (code, _, stderr) = deploy(&db, &example, &["--usage", &app_role]);
    assert_eq!(code, 0, "{stderr}");
    let mut app = db
        .info
        .clone()
        .with("user", app_role.clone())
        .connect()
        .unwrap();
    app.batch_execute("SELECT _pgpm.set_search_path('billing', '^1.4')")
        .unwrap();
    let rate: String = app
        .query_one("SELECT tax_rate('DE')::text", &[])
        .unwrap()
        .get(0);
    assert_eq!(rate, "0.1900");
    let tax: String = app
        .query_one(
            "SELECT (tax_on(amount(1000, 'EUR'), 'DE')).cents::text",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(tax, "190");
    // SELECT is what the manifest grants, nothing more.
    let err = app.execute("DELETE FROM tax_rates", &[]).unwrap_err();
    let message = err
        .as_db_error()
        .map(|e| e.message().to_string())
        .unwrap_or_default();
    assert_eq!(message, "permission denied for table tax_rates", "{err:?}");
    drop(app);
    db.exec(&format!("DROP OWNED BY {app_role}; DROP ROLE {app_role}"));
}

/// Starts the pgpm binary without waiting for it, in the tests' clean environment.
fn spawn(args: &[&str]) -> std::process::Child {
    let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("pgpm"));
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy().to_string();
        if key.starts_with("PG") || key == "DATABASE_URL" {
            cmd.env_remove(&key);
        }
    }
    cmd.args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits up to `limit` for a child to exit; kills it and panics if it does not.
fn wait_exit(child: &mut std::process::Child, limit: std::time::Duration) -> (i32, String) {
    let start = std::time::Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut stderr = String::new();
            std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
            return (status.code().unwrap_or(-1), stderr);
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            panic!("pgpm did not exit within {limit:?}");
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// Whether a backend of `db` other than ours runs a query containing `text`.
fn running(db: &TestDb, text: &str) -> bool {
    db.connect()
        .query_one(
            "SELECT count(*) > 0 FROM pg_stat_activity
              WHERE datname = current_database() AND pid <> pg_backend_pid()
                AND state = 'active' AND position($1 IN query) > 0",
            &[&text],
        )
        .unwrap()
        .get(0)
}

#[test]
fn sigint_and_sigterm_cancel_the_statement_on_the_server_and_roll_back() {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    for (signal, code) in [(Signal::SIGINT, 130), (Signal::SIGTERM, 143)] {
        let db = TestDb::installed();
        let ws = tempfile::tempdir().unwrap();
        let dir = app(
            ws.path(),
            "CREATE FUNCTION b() RETURNS int LANGUAGE sql AS 'SELECT 2';\nSELECT pg_sleep(60);\n",
        );
        let before = snapshot(&db);
        let mut child = spawn(&["deploy", &db.conn_string(), dir.to_str().unwrap()]);
        crate::common::wait_until("the deploy's pg_sleep to run", || {
            running(&db, "pg_sleep(60)")
        });
        kill(Pid::from_raw(child.id() as i32), signal).unwrap();
        let (got, stderr) = wait_exit(&mut child, std::time::Duration::from_secs(10));
        assert_eq!(got, code, "{signal}: {stderr}");
        assert!(
            stderr.contains(&format!(
                "interrupted by {}: the statement running on the server was cancelled",
                signal.as_str()
            )),
            "{stderr}"
        );
        // The backend is not left running the statement, and nothing stayed.
        assert!(!running(&db, "pg_sleep(60)"), "{signal}: still running");
        assert_eq!(snapshot(&db), before, "{signal}");
    }
}

#[test]
fn a_killed_migrate_keeps_others_out_while_its_concurrent_statement_runs() {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    let db = TestDb::installed();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("patch-1-0-0-concurrent.sql"),
        "SELECT pg_sleep(3);\n",
    )
    .unwrap();
    let conn = db.conn_string();
    let path = dir.path().to_str().unwrap();
    let mut child = spawn(&["migrate", &conn, path]);
    crate::common::wait_until("the concurrent statement to run", || {
        running(&db, "pg_sleep(3)")
    });
    kill(Pid::from_raw(child.id() as i32), Signal::SIGKILL).unwrap();
    let _ = child.wait();
    // The statement runs on without pgpm; so does its hold on the lock.
    assert!(running(&db, "pg_sleep(3)"));
    let (code, _, stderr) = run(&["migrate", &conn, path, "--lock-timeout", "0.5"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("another pgpm run holds the lock"),
        "{stderr}"
    );
    // Once it is done, the patch (not recorded: pgpm died) applies.
    crate::common::wait_until("the orphaned statement to end", || {
        !running(&db, "pg_sleep(3)")
    });
    let (code, stdout, stderr) = run(&["migrate", &conn, path, "--lock-timeout", "5"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("applied patch-1-0-0-concurrent.sql"),
        "{stdout}"
    );
}

/// What must hold in a catalog whatever happened to the commands that wrote
/// it: every deployment closed, every live package's schema there, no
/// package schema without a live row.
fn assert_catalog_consistent(db: &TestDb, context: &str) {
    let broken: String = db.query_scalar(
        "SELECT concat_ws('; ',
            (SELECT 'open deployments: ' || count(*) FROM _pgpm.deployments
              WHERE finished_at IS NULL HAVING count(*) > 0),
            (SELECT 'rows without their schema: ' || string_agg(schema_name, ', ')
               FROM _pgpm.packages p
              WHERE removed_at IS NULL AND schema_name IS NOT NULL
                AND NOT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = p.schema_name)),
            (SELECT 'schemas without a row: ' || string_agg(nspname, ', ')
               FROM pg_namespace n
              WHERE nspname ~ '^(core|billing|reporting)'
                AND NOT EXISTS (SELECT 1 FROM _pgpm.packages p
                                 WHERE p.schema_name = n.nspname AND p.removed_at IS NULL)))",
    );
    assert_eq!(broken, "", "{context}");
}

#[test]
fn killing_deploy_and_migrate_at_random_moments_never_leaves_half_a_change() {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    let db = TestDb::installed();
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("packages-example");
    let patches = example.join("patches");
    let conn = db.conn_string();
    if !crate::common::runs_the_example(&["deploy", &conn, example.to_str().unwrap()]) {
        return;
    }
    // A pseudo-random but repeatable spread of moments, from before the
    // connection to after the commit.
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % 120
    };
    for trial in 0..24 {
        let args: Vec<&str> = if trial % 2 == 0 {
            vec!["migrate", &conn, patches.to_str().unwrap(), "--all"]
        } else {
            vec![
                "deploy",
                &conn,
                example.to_str().unwrap(),
                "--mode",
                "moderate",
                "--force",
            ]
        };
        let mut child = spawn(&args);
        std::thread::sleep(std::time::Duration::from_millis(next()));
        let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGKILL);
        let _ = child.wait();
        // The server ends the killed session's transaction; wait for it.
        crate::common::wait_until("the killed session to end", || {
            !running(&db, "pgpm") && !running(&db, "_pgpm")
        });
        assert_catalog_consistent(&db, &format!("trial {trial}: {args:?}"));
    }
    // And the next runs finish the work.
    let (code, _, stderr) = run(&["migrate", &conn, patches.to_str().unwrap(), "--all"]);
    assert_eq!(code, 0, "{stderr}");
    let (code, _, stderr) = run(&[
        "deploy",
        &conn,
        example.to_str().unwrap(),
        "--mode",
        "moderate",
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert_catalog_consistent(&db, "after the runs that finish");
}

#[test]
fn ten_deploys_at_once_deploy_once() {
    let db = TestDb::installed();
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("packages-example");
    let conn = db.conn_string();
    if !crate::common::runs_the_example(&["deploy", &conn, example.to_str().unwrap()]) {
        return;
    }
    let mut children: Vec<_> = (0..10)
        .map(|_| spawn(&["deploy", &conn, example.to_str().unwrap()]))
        .collect();
    let mut deployed = 0;
    for child in &mut children {
        let status = child.wait().unwrap();
        let mut stdout = String::new();
        std::io::Read::read_to_string(child.stdout.as_mut().unwrap(), &mut stdout).unwrap();
        let mut stderr = String::new();
        std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut stderr).unwrap();
        assert_eq!(status.code(), Some(0), "{stdout}{stderr}");
        if stdout.contains("deployed billing 1.4.0") {
            deployed += 1;
        } else {
            assert!(stdout.contains("billing 1.4.0 is up to date"), "{stdout}");
        }
    }
    assert_eq!(deployed, 1);
    let deployments: i64 = db.query_scalar("SELECT count(*) FROM _pgpm.deployments");
    assert_eq!(deployments, 1);
    assert_catalog_consistent(&db, "after ten deploys at once");
}

#[test]
fn sigterm_while_waiting_for_the_lock_leaves_no_backend_waiting() {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    let db = TestDb::installed();
    let mut holder = db.connect();
    holder
        .execute("SELECT pg_advisory_lock($1)", &[&pgpm::db::lock::LOCK_KEY])
        .unwrap();
    let ws = tempfile::tempdir().unwrap();
    let dir = app(
        ws.path(),
        "CREATE FUNCTION b() RETURNS int LANGUAGE sql AS 'SELECT 2';\n",
    );
    let mut child = spawn(&["deploy", &db.conn_string(), dir.to_str().unwrap()]);
    crate::common::wait_until("the deploy to poll for the lock", || {
        db.connect()
            .query_one(
                "SELECT count(*) > 0 FROM pg_stat_activity
                  WHERE datname = current_database() AND position('pg_try_advisory_lock' IN query) > 0
                    AND pid <> pg_backend_pid()",
                &[],
            )
            .unwrap()
            .get(0)
    });
    kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM).unwrap();
    let (code, stderr) = wait_exit(&mut child, std::time::Duration::from_secs(10));
    assert_eq!(code, 143, "{stderr}");
    // The lock holder is the only other session left.
    crate::common::wait_until("the deploy's session to end", || {
        db.connect()
            .query_one(
                "SELECT count(*) = 1 FROM pg_stat_activity
                  WHERE datname = current_database() AND pid <> pg_backend_pid()",
                &[],
            )
            .unwrap()
            .get::<_, bool>(0)
    });
    drop(holder);
}

#[test]
fn an_interrupted_concurrent_patch_is_reported_truthfully() {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    let db = TestDb::installed();
    db.exec("CREATE TABLE t (a int);");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("patch-1-0-0-concurrent.sql"),
        "CREATE INDEX CONCURRENTLY t_a ON t (a);\nSELECT pg_sleep(30);\n",
    )
    .unwrap();
    let conn = db.conn_string();
    let path = dir.path().to_str().unwrap();
    let mut child = spawn(&["migrate", &conn, path]);
    crate::common::wait_until("the second statement to run", || {
        running(&db, "pg_sleep(30)")
    });
    kill(Pid::from_raw(child.id() as i32), Signal::SIGKILL).unwrap();
    let _ = child.wait();
    db.exec(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
          WHERE datname = current_database() AND position('pg_sleep(30)' IN query) > 0
            AND pid <> pg_backend_pid()",
    );
    crate::common::wait_until("the orphaned statement to end", || {
        !running(&db, "pg_sleep(30)")
    });
    let (code, stdout, _) = run(&["status", &conn, "--patches", path]);
    assert_eq!(code, 0);
    assert!(
        stdout.contains("patch-1-0-0-concurrent.sql was interrupted in an earlier run after statement 1 of 2 completed"),
        "{stdout}"
    );
    // The next run warns first, then fails on the index the first run
    // built, and says so instead of "no earlier statement ran".
    let (code, _, stderr) = run(&["migrate", &conn, path]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("warning: patch-1-0-0-concurrent.sql was interrupted"),
        "{stderr}"
    );
    assert!(
        stderr.contains("an earlier run of the patch was interrupted after completing:"),
        "{stderr}"
    );
    assert!(stderr.contains("statement 1 of 2 at "), "{stderr}");
    assert!(
        !stderr.contains("no earlier statement of the patch ran"),
        "{stderr}"
    );
}

#[test]
fn a_concurrent_patch_that_leaves_an_invalid_index_is_not_recorded() {
    let db = TestDb::installed();
    db.exec("CREATE TABLE t (a int); INSERT INTO t VALUES (1), (1);");
    // A failed build leaves the index INVALID.
    let _ = db
        .connect()
        .batch_execute("CREATE UNIQUE INDEX CONCURRENTLY t_u ON t (a)");
    db.exec("DELETE FROM t WHERE ctid = (SELECT min(ctid) FROM t)");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("patch-1-0-0-concurrent.sql"),
        "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS t_u ON t (a);\n",
    )
    .unwrap();
    let conn = db.conn_string();
    let path = dir.path().to_str().unwrap();
    let (code, _, stderr) = run(&["migrate", &conn, path]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("warning: index public.t_u is INVALID"),
        "{stderr}"
    );
    assert!(
        stderr
            .contains("patch-1-0-0-concurrent.sql ran, but it leaves index(es) public.t_u INVALID"),
        "{stderr}"
    );
    let recorded: i64 = db.query_scalar("SELECT count(*) FROM _pgpm.migrations");
    assert_eq!(recorded, 0);
    let (_, stdout, _) = run(&["status", &conn, "--patches", path]);
    assert!(
        stdout.contains("warning: index public.t_u is INVALID"),
        "{stdout}"
    );
    // Dropped, the patch builds it for real.
    db.exec("DROP INDEX t_u");
    let (code, _, stderr) = run(&["migrate", &conn, path]);
    assert_eq!(code, 0, "{stderr}");
}

#[test]
fn a_batch_that_ends_the_transaction_is_reported_as_such() {
    use pgpm::db::script::{self, Action, Origin, Script, ScriptError};
    // Planning refuses such files; this is the executor's own check, for
    // whatever planning did not see.
    let db = TestDb::installed();
    let mut client = db.connect();
    let mut tx = client.transaction().unwrap();
    let sql = "CREATE TABLE escaped (id int);\nCOMMIT;\nCREATE TABLE after_commit (id int);\n";
    let script = Script {
        actions: vec![Action::Batch {
            package: "x 1.0.0".into(),
            sql: sql.into(),
            origins: vec![Origin {
                start: 0,
                len: sql.len(),
                file: "x/f.sql".into(),
                line: 1,
                column: 1,
            }],
            marked: false,
        }],
    };
    let err = script::execute(&mut tx, &script, &mut pgpm::event::ignore).unwrap_err();
    assert!(
        matches!(err, ScriptError::TransactionEnded { .. }),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("ended pgpm's transaction"),
        "{err}"
    );
}

#[test]
fn a_failure_without_a_position_is_located_without_running_anything_twice() {
    let db = TestDb::installed();
    db.exec("CREATE SEQUENCE public.counter;");
    let counter = |db: &TestDb| -> i64 {
        db.query_scalar("SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM public.counter")
    };
    // A group of two patches; the second fails at run time (no position).
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("patch-1-0-0-std.sql"),
        "SELECT nextval('public.counter');\nCREATE TABLE t (x int);\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("patch-1-1-0-std.sql"),
        "-- adds a row\nINSERT INTO t VALUES (1);\nSELECT nextval('public.counter');\nSELECT 1 / (SELECT count(*) - 1 FROM t);\nSELECT 3;\n",
    )
    .unwrap();
    let (code, _, stderr) = run(&["migrate", &db.conn_string(), dir.path().to_str().unwrap()]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("patch-1-1-0-std.sql:4:1: patch failed"),
        "{stderr}"
    );
    assert!(stderr.contains("division by zero"), "{stderr}");
    // Each nextval ran once: nothing was run again to find the statement.
    assert_eq!(counter(&db), 2);

    // The same for a deploy's batch.
    let ws = tempfile::tempdir().unwrap();
    let dir = package(
        ws.path(),
        "app",
        serde_json::json!({ "name": "app", "version": "1.0.0", "tables_path": "tables" }),
        &[(
            "tables/t.sql",
            "CREATE TABLE t (x int);\nSELECT nextval('public.counter');\nSELECT 1 / (SELECT count(*) FROM t);\n",
        )],
    );
    let (code, _, stderr) = deploy(&db, &dir, &[]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains(&format!(
            "{}:3:1: statement failed",
            dir.join("tables/t.sql").display()
        )),
        "{stderr}"
    );
    assert_eq!(counter(&db), 3);
}

#[test]
fn a_statement_that_changes_the_role_does_not_commit() {
    let db = TestDb::installed();
    let other = format!("{}_other", db.name);
    db.exec(&format!("CREATE ROLE {other} SUPERUSER NOLOGIN"));
    let ws = tempfile::tempdir().unwrap();
    let dir = app(
        ws.path(),
        &format!(
            "CREATE FUNCTION b() RETURNS int LANGUAGE sql AS 'SELECT 2';\nSELECT set_config('role', '{other}', false);\n"
        ),
    );
    let before = snapshot(&db);
    let (code, _, stderr) = deploy(&db, &dir, &[]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains(&format!("the deploy ran as postgres but ended as {other}")),
        "{stderr}"
    );
    assert_eq!(snapshot(&db), before);
    db.exec(&format!("DROP ROLE {other}"));
}

#[test]
fn table_grants_are_checked_where_they_are_written() {
    let db = TestDb::installed();
    let reader = format!("{}_reader", db.name);
    db.exec(&format!("CREATE ROLE {reader}"));
    let ws = tempfile::tempdir().unwrap();
    let manifest = |grants: serde_json::Value| {
        serde_json::json!({
            "name": "app", "version": "1.0.0", "functions_path": "functions",
            "table_grants": grants
        })
    };
    let files: &[(&str, &str)] = &[(
        "functions/a.sql",
        "CREATE FUNCTION a() RETURNS int LANGUAGE sql AS 'SELECT 1';\n",
    )];
    // No privileges named: the manifest is wrong.
    let dir = package(
        ws.path(),
        "app",
        manifest(serde_json::json!({ "t": [] })),
        files,
    );
    let (code, _, stderr) = run(&["plan", dir.to_str().unwrap()]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("\"table_grants\" must be an object of table names to lists of privileges"),
        "{stderr}"
    );
    // A table the package does not have: the deploy says so, at the manifest.
    let dir = package(
        ws.path(),
        "app",
        manifest(serde_json::json!({ "nope": ["SELECT"] })),
        files,
    );
    let before = snapshot(&db);
    let (code, _, stderr) = deploy(&db, &dir, &["--usage", &reader]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains(&format!(
            "{}:1:1: statement failed",
            dir.join("package.json").display()
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains("relation \"app_1_0_0.nope\" does not exist"),
        "{stderr}"
    );
    assert_eq!(snapshot(&db), before);
    db.exec(&format!("DROP ROLE {reader}"));
}
