//! `pgpm deploy` against a real server: modes, atomicity, grants, catalog.

use std::path::Path;

use crate::common::{TestDb, output, package, pgpm, shop};

fn deploy(db: &TestDb, path: &Path, args: &[&str]) -> (i32, String, String) {
    output(
        pgpm()
            .arg("deploy")
            .arg(db.conn_string())
            .arg(path)
            .args(args)
            .assert(),
    )
}

fn schemas(db: &TestDb, like: &str) -> Vec<String> {
    db.connect()
        .query(
            "SELECT nspname::text FROM pg_namespace WHERE nspname LIKE $1 ORDER BY 1",
            &[&like],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// Everything a failed command must leave as it was: schemas and catalog rows.
fn snapshot(db: &TestDb) -> String {
    db.query_scalar(
        "SELECT concat_ws(' | ',
            (SELECT string_agg(nspname, ',' ORDER BY nspname) FROM pg_namespace WHERE nspname NOT LIKE 'pg_%'),
            (SELECT string_agg(p::text, ',' ORDER BY package_id) FROM _pgpm.packages p),
            (SELECT count(*)::text FROM _pgpm.deployments),
            (SELECT string_agg(t.file_name || t.checksum, ',') FROM _pgpm.table_scripts t))",
    )
}

#[test]
fn deploys_a_package_into_a_versioned_schema() {
    let db = TestDb::installed();
    let ws = tempfile::tempdir().unwrap();
    let dir = shop(ws.path(), "1.0.0");
    let (code, stdout, stderr) =
        deploy(&db, &dir, &["--vcs-ref", "abc123", "--issue-ref", "JIRA-7"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("shop 1.0.0 -> shop_1_0_0"), "{stdout}");
    let total: i32 = db.query_scalar(
        "SELECT shop_1_0_0.total(ROW(1, ARRAY[ROW('a', 2)::shop_1_0_0.line_t, ROW('b', 3)::shop_1_0_0.line_t])::shop_1_0_0.order_t)",
    );
    assert_eq!(total, 5);
    db.exec("INSERT INTO shop_1_0_0.orders (note) VALUES ('x'); UPDATE shop_1_0_0.orders SET note = 'y';");
    let touched: bool = db.query_scalar("SELECT updated_at IS NOT NULL FROM shop_1_0_0.orders");
    assert!(touched, "trigger ran");
    let row: String = db.query_scalar(
        "SELECT concat_ws(' ', p.name, p.version, p.subclass, p.schema_name, d.mode, d.vcs_ref, d.issue_ref, d.pgpm_version,
                          d.server_version_num = current_setting('server_version_num')::int, d.finished_at IS NOT NULL)
           FROM _pgpm.packages p JOIN _pgpm.deployments d USING (deployment_id)",
    );
    assert_eq!(
        row,
        format!(
            "shop 1.0.0 versioned shop_1_0_0 safe abc123 JIRA-7 {} t t",
            env!("CARGO_PKG_VERSION")
        )
    );
    let scripts: String = db.query_scalar(
        "SELECT string_agg(target_schema || ':' || file_name, ',') FROM _pgpm.table_scripts",
    );
    assert_eq!(scripts, "shop_1_0_0:tables/orders.sql");
    // PUBLIC cannot use the schema.
    let public: bool =
        db.query_scalar("SELECT has_schema_privilege('public', 'shop_1_0_0', 'USAGE')");
    assert!(!public);
}

#[test]
fn safe_mode_refuses_an_existing_schema_and_changes_nothing() {
    let db = TestDb::installed();
    let ws = tempfile::tempdir().unwrap();
    let dir = shop(ws.path(), "1.0.0");
    assert_eq!(deploy(&db, &dir, &[]).0, 0);
    std::fs::write(
        dir.join("functions/extra.sql"),
        "CREATE FUNCTION extra() RETURNS int LANGUAGE sql AS $$ SELECT 1 $$;",
    )
    .unwrap();
    let before = snapshot(&db);
    let (code, _, stderr) = deploy(&db, &dir, &["--mode", "safe"]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("schema shop_1_0_0 of shop 1.0.0 exists already"),
        "{stderr}"
    );
    assert_eq!(snapshot(&db), before);
}

#[test]
fn moderate_mode_renames_to_the_first_free_revision() {
    let db = TestDb::installed();
    let ws = tempfile::tempdir().unwrap();
    let dir = shop(ws.path(), "1.0.0");
    assert_eq!(deploy(&db, &dir, &[]).0, 0);
    db.exec("INSERT INTO shop_1_0_0.orders (note) VALUES ('kept')");
    for (round, expected) in [(0, "shop_1_0_0_0"), (1, "shop_1_0_0_1")] {
        std::fs::write(
            dir.join("functions/extra.sql"),
            format!("CREATE FUNCTION extra() RETURNS int LANGUAGE sql AS $$ SELECT {round} $$;"),
        )
        .unwrap();
        let (code, _, stderr) = deploy(&db, &dir, &["--mode", "moderate"]);
        assert_eq!(code, 0, "{stderr}");
        assert!(
            stderr.contains(&format!(
                "the existing schema shop_1_0_0 is kept as old revision {expected}"
            )),
            "{stderr}"
        );
    }
    assert_eq!(
        schemas(&db, "shop%"),
        ["shop_1_0_0", "shop_1_0_0_0", "shop_1_0_0_1"]
    );
    // The old revision keeps its data; the new schema has fresh tables.
    let kept: String = db.query_scalar("SELECT note FROM shop_1_0_0_0.orders");
    assert_eq!(kept, "kept");
    let fresh: i64 = db.query_scalar("SELECT count(*) FROM shop_1_0_0.orders");
    assert_eq!(fresh, 0);
    let revs: String = db.query_scalar(
        "SELECT string_agg(coalesce(old_rev::text, 'current') || '=' || schema_name, ',' ORDER BY package_id) FROM _pgpm.packages",
    );
    assert_eq!(revs, "0=shop_1_0_0_0,1=shop_1_0_0_1,current=shop_1_0_0");
    let extra: i32 = db.query_scalar("SELECT shop_1_0_0.extra()");
    assert_eq!(extra, 1);
}

#[test]
fn unsafe_mode_drops_the_schema_and_says_what_the_cascade_removes() {
    let db = TestDb::installed();
    let ws = tempfile::tempdir().unwrap();
    let dir = shop(ws.path(), "1.0.0");
    assert_eq!(deploy(&db, &dir, &[]).0, 0);
    db.exec("CREATE VIEW public.outside AS SELECT * FROM shop_1_0_0.order_count");
    std::fs::write(
        dir.join("functions/extra.sql"),
        "CREATE FUNCTION extra() RETURNS int LANGUAGE sql AS $$ SELECT 1 $$;",
    )
    .unwrap();
    let (code, stdout, stderr) = deploy(&db, &dir, &["--mode", "unsafe"]);
    assert_eq!(code, 0, "{stderr}");
    let all = format!("{stdout}{stderr}");
    assert!(all.contains("public.outside"), "{all}");
    let outside: bool = db.query_scalar("SELECT to_regclass('public.outside') IS NULL");
    assert!(outside, "the cascade dropped the dependent view");
    assert_eq!(schemas(&db, "shop%"), ["shop_1_0_0"]);
    let rows: String = db.query_scalar(
        "SELECT string_agg((removed_at IS NOT NULL)::text, ',' ORDER BY package_id) FROM _pgpm.packages",
    );
    assert_eq!(rows, "true,false");
}

#[test]
fn overwrite_mode_runs_into_the_existing_schema() {
    let db = TestDb::installed();
    let ws = tempfile::tempdir().unwrap();
    let dir = shop(ws.path(), "1.0.0");
    assert_eq!(deploy(&db, &dir, &[]).0, 0);
    db.exec("INSERT INTO shop_1_0_0.orders (note) VALUES ('kept')");
    // Overwrite needs replaceable statements.
    for f in [
        "functions/total.sql",
        "functions/version.sql",
        "functions/touch.sql",
        "views/order_count.sql",
    ] {
        let path = dir.join(f);
        let text =
            std::fs::read_to_string(&path)
                .unwrap()
                .replacen("CREATE ", "CREATE OR REPLACE ", 1);
        std::fs::write(path, text).unwrap();
    }
    // Types and triggers cannot be replaced: leave them out of this deploy.
    std::fs::write(
        dir.join("package.json"),
        r#"{"name": "shop", "version": "1.0.0", "subclass": "versioned", "functions_path": "functions", "views_path": "views", "tables_path": "tables"}"#,
    )
    .unwrap();
    std::fs::write(
        dir.join("functions/extra.sql"),
        "CREATE FUNCTION extra() RETURNS int LANGUAGE sql AS $$ SELECT 42 $$;",
    )
    .unwrap();
    let (code, _, stderr) = deploy(&db, &dir, &["--mode", "overwrite"]);
    assert_eq!(code, 0, "{stderr}");
    let extra: i32 = db.query_scalar("SELECT shop_1_0_0.extra()");
    assert_eq!(extra, 42);
    let kept: String = db.query_scalar("SELECT note FROM shop_1_0_0.orders");
    assert_eq!(kept, "kept");
    let rows: i64 = db.query_scalar("SELECT count(*) FROM _pgpm.packages");
    assert_eq!(rows, 1);
}

#[test]
fn an_unchanged_package_is_up_to_date_unless_forced() {
    let db = TestDb::installed();
    let ws = tempfile::tempdir().unwrap();
    let dir = shop(ws.path(), "1.0.0");
    assert_eq!(deploy(&db, &dir, &[]).0, 0);
    let before = snapshot(&db);
    let (code, stdout, stderr) = deploy(&db, &dir, &[]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("shop 1.0.0 is up to date"), "{stdout}");
    assert_eq!(snapshot(&db), before);
    let (code, _, stderr) = deploy(&db, &dir, &["--force", "--mode", "moderate"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(schemas(&db, "shop%"), ["shop_1_0_0", "shop_1_0_0_0"]);
}

#[test]
fn a_changed_table_script_is_refused() {
    let db = TestDb::installed();
    let ws = tempfile::tempdir().unwrap();
    let dir = shop(ws.path(), "1.0.0");
    assert_eq!(deploy(&db, &dir, &[]).0, 0);
    std::fs::write(
        dir.join("tables/orders.sql"),
        "CREATE TABLE orders (id serial PRIMARY KEY, note text, updated_at timestamptz, extra int);\n",
    )
    .unwrap();
    let before = snapshot(&db);
    let (code, _, stderr) = deploy(&db, &dir, &["--mode", "overwrite"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("table script tables/orders.sql changed"),
        "{stderr}"
    );
    assert_eq!(snapshot(&db), before);
    // Unsafe mode starts the schema afresh and records the new checksum.
    let (code, _, stderr) = deploy(&db, &dir, &["--mode", "unsafe"]);
    assert_eq!(code, 0, "{stderr}");
    let cols: i64 = db.query_scalar(
        "SELECT count(*) FROM information_schema.columns WHERE table_schema = 'shop_1_0_0' AND table_name = 'orders'",
    );
    assert_eq!(cols, 4);
}

#[test]
fn a_failing_statement_reports_its_file_line_and_column_and_rolls_everything_back() {
    let db = TestDb::installed();
    let ws = tempfile::tempdir().unwrap();
    package(
        ws.path(),
        "a",
        serde_json::json!({"name": "a", "version": "1.0.0", "functions_path": "f"}),
        &[(
            "f/a.sql",
            "CREATE FUNCTION a() RETURNS int LANGUAGE sql AS $$ SELECT 1 $$;\n",
        )],
    );
    package(
        ws.path(),
        "b",
        serde_json::json!({"name": "b", "version": "1.0.0", "functions_path": "f", "dependencies": {"a": "^1"}}),
        &[(
            "f/b.sql",
            "CREATE FUNCTION b() RETURNS int LANGUAGE sql AS $$ SELECT a() $$;\n",
        )],
    );
    package(
        ws.path(),
        "c",
        serde_json::json!({"name": "c", "version": "1.0.0", "functions_path": "f", "dependencies": {"b": "^1"}}),
        &[(
            "f/c.sql",
            "-- the third package\nCREATE FUNCTION ok() RETURNS int LANGUAGE sql AS $$ SELECT 1 $$;\n\nCREATE FUNCTION c() RETURNS int\n  LANGUAGE sql AS $$ SELECT b() + no_such_column $$;\n",
        )],
    );
    let before = snapshot(&db);
    let (code, _, stderr) = deploy(&db, ws.path(), &[]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("c 1.0.0"), "{stderr}");
    let location = format!("{}:5:35", ws.path().join("c/f/c.sql").display());
    assert!(stderr.contains(&location), "{stderr}");
    assert!(stderr.contains("no_such_column"), "{stderr}");
    assert_eq!(snapshot(&db), before);
    assert!(schemas(&db, "a%").is_empty() && schemas(&db, "b%").is_empty());
}

#[test]
fn a_runtime_error_without_position_still_names_the_statement() {
    let db = TestDb::installed();
    let ws = tempfile::tempdir().unwrap();
    let dir = package(
        ws.path(),
        "p",
        serde_json::json!({"name": "p", "version": "1.0.0", "functions_path": "f"}),
        &[(
            "f/x.sql",
            "CREATE FUNCTION one() RETURNS int LANGUAGE sql AS $$ SELECT 1 $$;\nDO $$ BEGIN RAISE EXCEPTION 'boom' USING HINT = 'fix me'; END $$;\n",
        )],
    );
    let (code, _, stderr) = deploy(&db, &dir, &[]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("f/x.sql:2:1"), "{stderr}");
    assert!(
        stderr.contains("boom") && stderr.contains("hint: fix me"),
        "{stderr}"
    );
}

#[test]
fn dry_run_prints_the_sql_and_changes_nothing() {
    let db = TestDb::installed();
    let ws = tempfile::tempdir().unwrap();
    let dir = shop(ws.path(), "1.0.0");
    assert_eq!(deploy(&db, &dir, &[]).0, 0);
    std::fs::write(
        dir.join("functions/extra.sql"),
        "CREATE FUNCTION extra() RETURNS int LANGUAGE sql AS $$ SELECT 1 $$;",
    )
    .unwrap();
    let before = snapshot(&db);
    let (code, stdout, stderr) = deploy(
        &db,
        &dir,
        &["--mode", "moderate", "--dry-run", "--usage", "pg_monitor"],
    );
    assert_eq!(code, 0, "{stderr}");
    for expected in [
        "ALTER SCHEMA \"shop_1_0_0\" RENAME TO \"shop_1_0_0_0\";",
        "CREATE SCHEMA \"shop_1_0_0\";",
        "CREATE TYPE line_t AS (sku text, qty int);",
        "CREATE FUNCTION extra()",
        "SELECT _pgpm.grant_usage($1, $2);",
        "$1 = 'shop_1_0_0', $2 = 'pg_monitor'",
        "INSERT INTO _pgpm.packages",
        "pg_notify",
    ] {
        assert!(
            stdout.contains(expected),
            "missing {expected:?} in:\n{stdout}"
        );
    }
    // Types come before the composite that uses them, in the printed order.
    assert!(
        stdout.find("CREATE TYPE line_t").unwrap() < stdout.find("CREATE TYPE order_t").unwrap()
    );
    assert_eq!(snapshot(&db), before);
}

#[test]
fn usage_roles_can_call_but_not_create_and_others_cannot_use() {
    let db = TestDb::installed();
    let user = format!("{}_App User\"s", db.name);
    let other = format!("{}_Other", db.name);
    db.exec(&format!(
        "CREATE ROLE {} LOGIN; CREATE ROLE {} LOGIN;",
        pgpm::db::quote::quote_ident(&user),
        pgpm::db::quote::quote_ident(&other)
    ));
    let ws = tempfile::tempdir().unwrap();
    let dir = shop(ws.path(), "1.0.0");
    let (code, _, stderr) = deploy(&db, &dir, &["--usage", &user]);
    assert_eq!(code, 0, "{stderr}");
    let mut as_user = db
        .info
        .clone()
        .with("user", user.clone())
        .connect()
        .unwrap();
    let v: String = as_user
        .query_one("SELECT shop_1_0_0.api_version()", &[])
        .unwrap()
        .get(0);
    assert_eq!(v, "1.0.0");
    let n: i64 = as_user
        .query_one("SELECT n FROM shop_1_0_0.order_count", &[])
        .unwrap()
        .get(0);
    assert_eq!(n, 0);
    let err = as_user
        .batch_execute("CREATE TABLE shop_1_0_0.t (x int)")
        .unwrap_err();
    assert!(
        err.as_db_error()
            .unwrap()
            .message()
            .contains("permission denied")
    );
    let mut as_other = db.info.clone().with("user", other).connect().unwrap();
    let err = as_other
        .query_one("SELECT shop_1_0_0.api_version()", &[])
        .unwrap_err();
    assert!(
        err.as_db_error()
            .unwrap()
            .message()
            .contains("permission denied")
    );
}

#[test]
fn owner_becomes_owner_of_the_schema_and_its_objects() {
    let db = TestDb::installed();
    let owner = format!("{}_Owner Role", db.name);
    db.exec(&format!(
        "CREATE ROLE {}",
        pgpm::db::quote::quote_ident(&owner)
    ));
    let ws = tempfile::tempdir().unwrap();
    let dir = shop(ws.path(), "1.0.0");
    let (code, _, stderr) = deploy(&db, &dir, &["--owner", &owner]);
    assert_eq!(code, 0, "{stderr}");
    let owners: String = db.query_scalar(
        "SELECT string_agg(DISTINCT o, ',') FROM (
            SELECT nspowner::regrole::text o FROM pg_namespace WHERE nspname = 'shop_1_0_0'
            UNION ALL SELECT relowner::regrole::text FROM pg_class WHERE relnamespace = 'shop_1_0_0'::regnamespace
            UNION ALL SELECT proowner::regrole::text FROM pg_proc WHERE pronamespace = 'shop_1_0_0'::regnamespace
            UNION ALL SELECT typowner::regrole::text FROM pg_type WHERE typnamespace = 'shop_1_0_0'::regnamespace) s",
    );
    assert_eq!(owners, pgpm::db::quote::quote_ident(&owner));
}

#[test]
fn unknown_roles_are_refused_before_anything_runs() {
    let db = TestDb::installed();
    let ws = tempfile::tempdir().unwrap();
    let dir = shop(ws.path(), "1.0.0");
    let before = snapshot(&db);
    let (code, _, stderr) = deploy(&db, &dir, &["--usage", "nobody here"]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("role nobody here does not exist"),
        "{stderr}"
    );
    assert_eq!(snapshot(&db), before);
}

#[test]
fn file_option_redeploys_only_that_file() {
    let db = TestDb::installed();
    let ws = tempfile::tempdir().unwrap();
    let dir = shop(ws.path(), "1.0.0");
    assert_eq!(deploy(&db, &dir, &[]).0, 0);
    std::fs::write(
        dir.join("functions/version.sql"),
        "CREATE OR REPLACE FUNCTION api_version() RETURNS text LANGUAGE sql AS $$ SELECT 'patched' $$;\n",
    )
    .unwrap();
    let file = dir.join("functions/version.sql");
    let (code, _, stderr) = deploy(&db, &dir, &["-f", file.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    let v: String = db.query_scalar("SELECT shop_1_0_0.api_version()");
    assert_eq!(v, "patched");
    let action: String = db.query_scalar(
        "SELECT string_agg(action, ',' ORDER BY deployment_id) FROM _pgpm.deployment_packages",
    );
    assert_eq!(action, "created,files");
    // The package is not "up to date" after a partial deploy.
    let (_, stdout, _) = deploy(&db, &dir, &["--mode", "overwrite", "--dry-run"]);
    assert!(!stdout.contains("up to date"), "{stdout}");
}

#[test]
fn two_deploys_at_once_serialise() {
    let db = TestDb::installed();
    let ws = tempfile::tempdir().unwrap();
    let dir = shop(ws.path(), "1.0.0");
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(2));
    let handles: Vec<_> = (0..2)
        .map(|_| {
            let conn = db.conn_string();
            let dir = dir.clone();
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                let mut cmd = pgpm();
                cmd.arg("deploy").arg(conn).arg(dir);
                barrier.wait();
                output(cmd.assert())
            })
        })
        .collect();
    let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    for (code, _, stderr) in &results {
        assert_eq!(*code, 0, "{stderr}");
    }
    let up_to_date = results
        .iter()
        .filter(|(_, out, _)| out.contains("up to date"))
        .count();
    assert_eq!(up_to_date, 1, "{results:?}");
    let n: i64 = db.query_scalar("SELECT count(*) FROM _pgpm.packages");
    assert_eq!(n, 1);
}

#[test]
fn lock_timeout_names_the_holder() {
    let db = TestDb::installed();
    let mut holder = db.connect();
    holder
        .execute("SELECT pg_advisory_lock($1)", &[&pgpm::db::lock::LOCK_KEY])
        .unwrap();
    let pid: i32 = holder
        .query_one("SELECT pg_backend_pid()", &[])
        .unwrap()
        .get(0);
    let ws = tempfile::tempdir().unwrap();
    let dir = shop(ws.path(), "1.0.0");
    let (code, _, stderr) = deploy(&db, &dir, &["--lock-timeout", "0.3"]);
    assert_eq!(code, 1);
    assert!(stderr.contains(&format!("pid {pid}")), "{stderr}");
}

#[test]
fn deploy_notifies_listeners_at_commit() {
    let db = TestDb::installed();
    let mut listener = db.connect();
    listener
        .batch_execute("LISTEN pgpm_deploy; LISTEN \"deployment_events$$shop\";")
        .unwrap();
    let ws = tempfile::tempdir().unwrap();
    let dir = shop(ws.path(), "1.0.0");
    assert_eq!(deploy(&db, &dir, &[]).0, 0);
    use postgres::fallible_iterator::FallibleIterator;
    let mut notes = listener.notifications();
    let mut got = Vec::new();
    let mut iter = notes.timeout_iter(std::time::Duration::from_secs(5));
    while got.len() < 2 {
        match iter.next() {
            Ok(Some(n)) => got.push((n.channel().to_string(), n.payload().to_string())),
            _ => break,
        }
    }
    got.sort();
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[0].0, "deployment_events$$shop");
    assert_eq!(got[1].0, "pgpm_deploy");
    let payload: serde_json::Value = serde_json::from_str(&got[1].1).unwrap();
    assert_eq!(
        payload,
        serde_json::json!({"package": "shop", "version": "1.0.0", "schema": "shop_1_0_0", "mode": "safe"})
    );
}

#[test]
fn deploy_refuses_a_database_without_the_catalog() {
    let db = TestDb::new();
    let ws = tempfile::tempdir().unwrap();
    let dir = shop(ws.path(), "1.0.0");
    let (code, _, stderr) = deploy(&db, &dir, &[]);
    assert_eq!(code, 1);
    assert!(stderr.contains("run `pgpm install` first"), "{stderr}");
}

#[test]
fn deploys_the_example_workspace_side_by_side() {
    let db = TestDb::installed();
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("packages-example");
    let conn = db.conn_string();
    if !crate::common::runs_the_example(&["deploy", &conn, example.to_str().unwrap()]) {
        return;
    }
    let (code, stdout, stderr) = deploy(&db, &example, &[]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let billing = schemas(&db, "billing%");
    assert_eq!(billing, ["billing_1_3_0", "billing_1_4_0"]);
    let deps: String = db.query_scalar(
        "SELECT string_agg(p.name || ' ' || p.version || ' -> ' || d.name || ' ' || d.version, ', ' ORDER BY p.name, p.version, d.name)
           FROM _pgpm.package_dependencies pd
           JOIN _pgpm.packages p ON p.package_id = pd.package_id
           JOIN _pgpm.packages d ON d.package_id = pd.dependency_id",
    );
    assert!(deps.contains("reporting 1.0.0 -> billing 1.4.0"), "{deps}");
    assert!(deps.contains("billing 1.3.0 -> core 1.2.0"), "{deps}");
    assert!(deps.contains("billing 1.4.0 -> core 1.2.0"), "{deps}");
    // A second deploy of the same workspace is a no-op.
    let before = snapshot(&db);
    let (code, stdout, _) = deploy(&db, &example, &[]);
    assert_eq!(code, 0);
    assert!(stdout.contains("up to date"), "{stdout}");
    assert_eq!(snapshot(&db), before);
}

#[test]
fn a_long_package_name_deploys_and_its_listeners_hear_it() {
    let db = TestDb::installed();
    let name = "a_package_name_that_is_long_enough_to_overflow_a_channel";
    let ws = tempfile::tempdir().unwrap();
    let dir = package(
        ws.path(),
        "long",
        serde_json::json!({"name": name, "version": "1.0.0", "subclass": "basic", "functions_path": "f"}),
        &[(
            "f/v.sql",
            "CREATE FUNCTION v() RETURNS int LANGUAGE sql AS $$ SELECT 1 $$;",
        )],
    );
    // LISTEN cuts the long identifier to 63 bytes, as a client's would be.
    let mut listener = db.connect();
    listener
        .batch_execute(&format!(
            "LISTEN {}",
            pgpm::db::quote::quote_ident(&format!("deployment_events$${name}"))
        ))
        .unwrap();
    let (code, _, stderr) = deploy(&db, &dir, &[]);
    assert_eq!(code, 0, "{stderr}");
    use postgres::fallible_iterator::FallibleIterator;
    let mut notes = listener.notifications();
    let got = notes
        .timeout_iter(std::time::Duration::from_secs(5))
        .next()
        .unwrap()
        .expect("a notification");
    assert_eq!(got.channel(), pgpm_client::package_channel(name));
    assert_eq!(got.channel().len(), 63);
}

#[test]
fn a_database_scope_package_is_not_run_twice_in_safe_mode() {
    let db = TestDb::installed();
    let ws = tempfile::tempdir().unwrap();
    let dir = package(
        ws.path(),
        "util",
        serde_json::json!({"name": "util", "version": "1.0.0", "scope": "database", "functions_path": "f"}),
        &[(
            "f/u.sql",
            "CREATE OR REPLACE FUNCTION public.util_answer() RETURNS int LANGUAGE sql AS $$ SELECT 42 $$;\n",
        )],
    );
    assert_eq!(deploy(&db, &dir, &[]).0, 0);
    let answer: i32 = db.query_scalar("SELECT public.util_answer()");
    assert_eq!(answer, 42);
    std::fs::write(
        dir.join("f/u.sql"),
        "CREATE OR REPLACE FUNCTION public.util_answer() RETURNS int LANGUAGE sql AS $$ SELECT 43 $$;\n",
    )
    .unwrap();
    let (code, _, stderr) = deploy(&db, &dir, &[]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("util 1.0.0 is deployed into the database's search_path already"),
        "{stderr}"
    );
    let (code, _, stderr) = deploy(&db, &dir, &["--mode", "overwrite"]);
    assert_eq!(code, 0, "{stderr}");
    let answer: i32 = db.query_scalar("SELECT public.util_answer()");
    assert_eq!(answer, 43);
    let rows: String = db.query_scalar(
        "SELECT string_agg(coalesce(schema_name, '-') || ':' || (removed_at IS NULL)::text, ',' ORDER BY package_id) FROM _pgpm.packages",
    );
    assert_eq!(rows, "-:true");
}

#[test]
fn a_drop_in_any_file_runs_before_the_create_of_what_it_drops() {
    // Three orders of the same files: the drop first, between, last.
    for (drop, create, view) in [
        ("1_drop.sql", "2_create.sql", "3_view.sql"),
        ("2_drop.sql", "1_create.sql", "3_view.sql"),
        ("3_drop.sql", "1_create.sql", "2_view.sql"),
    ] {
        let db = TestDb::installed();
        let ws = tempfile::tempdir().unwrap();
        let dir = package(
            ws.path(),
            "app",
            serde_json::json!({ "name": "app", "version": "1.0.0", "functions_path": "functions" }),
            &[
                (
                    &format!("functions/{drop}"),
                    "DROP FUNCTION IF EXISTS total(int);\nDROP FUNCTION IF EXISTS doubled();\n",
                ),
                (
                    &format!("functions/{create}"),
                    "CREATE FUNCTION total(n int) RETURNS int LANGUAGE sql AS 'SELECT n + 1';\n",
                ),
                (
                    &format!("functions/{view}"),
                    "CREATE FUNCTION doubled() RETURNS int LANGUAGE sql AS 'SELECT total(1) * 2';\n",
                ),
            ],
        );
        let (code, _, stderr) = deploy(&db, &dir, &[]);
        assert_eq!(code, 0, "{drop}: {stderr}");
        // Both functions are there after the deploy, and work.
        let mut client = db.connect();
        client.batch_execute("SET search_path = app_1_0_0").unwrap();
        let doubled: i32 = client.query_one("SELECT doubled()", &[]).unwrap().get(0);
        assert_eq!(doubled, 4, "{drop}");
    }
}

#[test]
fn what_a_packages_files_set_ends_with_the_package() {
    let db = TestDb::installed();
    let ws = tempfile::tempdir().unwrap();
    // Package a turns function body checks off; package b, deployed after
    // it, has a function whose body names a table that does not exist.
    package(
        ws.path(),
        "a",
        serde_json::json!({ "name": "a", "version": "1.0.0", "functions_path": "f" }),
        &[(
            "f/a.sql",
            "SET check_function_bodies = off;\nCREATE FUNCTION a() RETURNS int LANGUAGE sql AS 'SELECT 1';\n",
        )],
    );
    package(
        ws.path(),
        "b",
        serde_json::json!({ "name": "b", "version": "1.0.0", "functions_path": "f" }),
        &[(
            "f/b.sql",
            "CREATE FUNCTION broken() RETURNS int LANGUAGE sql AS 'SELECT count(*)::int FROM no_such_table';\n",
        )],
    );
    let before = snapshot(&db);
    let (code, _, stderr) = deploy(&db, ws.path(), &[]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("relation \"no_such_table\" does not exist"),
        "{stderr}"
    );
    assert_eq!(snapshot(&db), before);
}

/// Writes `core` 1.0.0 (a domain) and `billing` 1.0.0, whose files name
/// both schemas only by placeholder; `files` are billing's function files.
fn billing_with_placeholders(root: &Path, files: &[(&str, &str)]) {
    package(
        root,
        "core",
        serde_json::json!({ "name": "core", "version": "1.0.0", "types_path": "types" }),
        &[(
            "types/money.sql",
            "CREATE DOMAIN money AS numeric(12, 2);\n",
        )],
    );
    package(
        root,
        "billing",
        serde_json::json!({
            "name": "billing", "version": "1.0.0", "functions_path": "functions",
            "dependencies": { "core": "^1.0" }
        }),
        files,
    );
}

#[test]
fn placeholders_name_the_packages_own_schema_and_its_dependencies() {
    let label = "CREATE FUNCTION label(m @core@.money) RETURNS text LANGUAGE sql\n  AS $$ SELECT '@schema@: ' || @schema@.amount(m) $$;\nCOMMENT ON FUNCTION @schema@.label(@core@.money) IS 'in @schema@';\n";
    let amount = "CREATE FUNCTION @schema@.amount(m @core@.money) RETURNS text LANGUAGE sql AS 'SELECT m::text';\n";
    // Three orders of the same files: label's body needs amount first.
    for (first, second) in [
        ("1_label.sql", "2_amount.sql"),
        ("2_label.sql", "1_amount.sql"),
        ("label.sql", "label_amount.sql"),
    ] {
        let db = TestDb::installed();
        let ws = tempfile::tempdir().unwrap();
        billing_with_placeholders(
            ws.path(),
            &[
                (&format!("functions/{first}"), label),
                (&format!("functions/{second}"), amount),
            ],
        );
        let (code, _, stderr) = deploy(&db, ws.path(), &[]);
        assert_eq!(code, 0, "{first}: {stderr}");
        let row = db
            .connect()
            .query_one(
                "SELECT billing_1_0_0.label(1.5), obj_description('billing_1_0_0.label(core_1_0_0.money)'::regprocedure)",
                &[],
            )
            .unwrap();
        assert_eq!(row.get::<_, String>(0), "billing_1_0_0: 1.50", "{first}");
        assert_eq!(row.get::<_, String>(1), "in billing_1_0_0", "{first}");
    }
}

#[test]
fn a_misspelt_placeholder_is_refused_before_anything_runs() {
    let db = TestDb::installed();
    let ws = tempfile::tempdir().unwrap();
    billing_with_placeholders(
        ws.path(),
        &[(
            "functions/amount.sql",
            "CREATE FUNCTION amount(m @core@.money)\n  RETURNS @cor@.money LANGUAGE sql AS 'SELECT m';\n",
        )],
    );
    let (code, _, stderr) = deploy(&db, ws.path(), &[]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("functions/amount.sql:2:11: @cor@ names no dependency of billing: the placeholders it can use are @schema@, @core@"),
        "{stderr}"
    );
    // Not even core, which has no placeholders, was deployed.
    assert!(schemas(&db, "core%").is_empty());
    assert!(schemas(&db, "billing%").is_empty());
}

#[test]
fn a_package_gets_its_extensions_and_settings() {
    let db = TestDb::installed();
    let ws = tempfile::tempdir().unwrap();
    let files: &[(&str, &str)] = &[(
        "functions/f.sql",
        // citext comes from the extension (named with its schema: public is
        // not on the path on 13 and 14, where PUBLIC may create in it);
        // later_table does not exist, which only check_function_bodies =
        // off lets through.
        "CREATE FUNCTION same(a public.citext, b public.citext) RETURNS boolean LANGUAGE sql AS 'SELECT a = b';\nCREATE FUNCTION later() RETURNS bigint LANGUAGE sql AS 'SELECT count(*) FROM later_table';\n",
    )];
    let manifest = |version: &str| {
        serde_json::json!({
            "name": "app", "version": version, "functions_path": "functions",
            "extensions": { "citext": "*" },
            "settings": { "check_function_bodies": false }
        })
    };
    package(ws.path(), "app1", manifest("1.0.0"), files);
    let (code, _, stderr) = deploy(&db, ws.path(), &[]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("note: app 1.0.0: creates extension citext")
            && stderr.contains("in schema public"),
        "{stderr}"
    );
    let mut client = db.connect();
    let same: bool = client
        .query_one("SELECT app_1_0_0.same('Abc', 'aBC')", &[])
        .unwrap()
        .get(0);
    assert!(same, "citext compares without case");
    let schema: String = client
        .query_one(
            "SELECT extnamespace::regnamespace::text FROM pg_extension WHERE extname = 'citext'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(
        schema, "public",
        "not in the package's schema, which a removal drops"
    );
    // The setting ended with the package.
    let checks: String = client
        .query_one("SHOW check_function_bodies", &[])
        .unwrap()
        .get(0);
    assert_eq!(checks, "on");

    // A second version finds the extension there and records that.
    package(ws.path(), "app2", manifest("1.1.0"), files);
    let (code, _, stderr) = deploy(&db, ws.path(), &[]);
    assert_eq!(code, 0, "{stderr}");
    assert!(!stderr.contains("creates extension"), "{stderr}");
    let rows: Vec<(String, bool)> = client
        .query(
            "SELECT version, created FROM _pgpm.package_extensions WHERE extension = 'citext' ORDER BY version",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(rows, [("1.0.0".into(), true), ("1.1.0".into(), false)]);
}

#[test]
fn extensions_and_settings_the_server_cannot_give_are_refused_before_anything_runs() {
    for (extensions, settings, expected) in [
        (
            serde_json::json!({ "citext": "0.1" }),
            serde_json::json!({}),
            "app 1.0.0 needs extension citext 0.1; this server has 1.",
        ),
        (
            serde_json::json!({ "no_such_extension": "*" }),
            serde_json::json!({}),
            "app 1.0.0 needs extension no_such_extension, which this server does not have",
        ),
        (
            serde_json::json!({ "plpgsql": "0.9" }),
            serde_json::json!({}),
            "extension plpgsql is at version 1.0 in this database and app 1.0.0 needs 0.9",
        ),
        (
            serde_json::json!({ "citext": "*" }),
            serde_json::json!({ "check_function_bodys": "off" }),
            "\"settings\": the server has no setting \"check_function_bodys\"",
        ),
    ] {
        let db = TestDb::installed();
        let ws = tempfile::tempdir().unwrap();
        let dir = package(
            ws.path(),
            "app",
            serde_json::json!({
                "name": "app", "version": "1.0.0", "functions_path": "functions",
                "extensions": extensions, "settings": settings
            }),
            &[(
                "functions/f.sql",
                "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1';\n",
            )],
        );
        let (code, _, stderr) = deploy(&db, &dir, &[]);
        assert_eq!(code, 1, "{stderr}");
        assert!(
            stderr.contains(&format!("{}", dir.join("package.json").display()))
                && stderr.contains(expected),
            "{expected}: {stderr}"
        );
        assert!(schemas(&db, "app%").is_empty());
        let citext: i64 = db
            .connect()
            .query_one(
                "SELECT count(*) FROM pg_extension WHERE extname = 'citext'",
                &[],
            )
            .unwrap()
            .get(0);
        assert_eq!(citext, 0, "{expected}");
    }
}

#[test]
fn two_packages_that_need_different_versions_of_one_new_extension_are_refused() {
    let db = TestDb::installed();
    let ws = tempfile::tempdir().unwrap();
    let f: &[(&str, &str)] = &[(
        "functions/f.sql",
        "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1';\n",
    )];
    package(
        ws.path(),
        "a",
        serde_json::json!({ "name": "a", "version": "1.0.0", "functions_path": "functions", "extensions": { "citext": "*" } }),
        f,
    );
    package(
        ws.path(),
        "b",
        serde_json::json!({
            "name": "b", "version": "1.0.0", "functions_path": "functions",
            "extensions": { "citext": "1.4" }, "dependencies": { "a": "^1" }
        }),
        f,
    );
    let (code, _, stderr) = deploy(&db, ws.path(), &[]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("this deploy creates extension citext at version 1.")
            && stderr.contains(
                "for a package before b 1.0.0, which needs 1.4: give both packages the same version"
            ),
        "{stderr}"
    );
    assert!(schemas(&db, "a%").is_empty());
}

#[test]
fn statements_about_aggregates_operators_and_casts_follow_them() {
    let about = "COMMENT ON AGGREGATE total(int) IS 'sum';\nALTER AGGREGATE total(int) OWNER TO CURRENT_USER;\nCOMMENT ON OPERATOR === (int, int) IS 'same';\nCOMMENT ON CAST (label AS int) IS 'length';\n";
    let defs = "CREATE FUNCTION plus(int, int) RETURNS int LANGUAGE sql AS 'SELECT $1 + $2';\nCREATE AGGREGATE total(int) (SFUNC = plus, STYPE = int);\nCREATE FUNCTION same(int, int) RETURNS boolean LANGUAGE sql AS 'SELECT $1 = $2';\nCREATE OPERATOR === (LEFTARG = int, RIGHTARG = int, FUNCTION = same);\nCREATE FUNCTION label_length(label) RETURNS int LANGUAGE sql AS 'SELECT length($1::text)';\nCREATE CAST (label AS int) WITH FUNCTION label_length(label);\n";
    // A SQL body using the operator is checked at creation, so it needs it.
    let uses =
        "CREATE FUNCTION same_as_one(n int) RETURNS boolean LANGUAGE sql AS 'SELECT n === 1';\n";
    for (a, d, u) in [
        ("1_about.sql", "2_defs.sql", "3_uses.sql"),
        ("3_about.sql", "1_defs.sql", "2_uses.sql"),
        ("2_about.sql", "3_defs.sql", "1_uses.sql"),
    ] {
        let db = TestDb::installed();
        let ws = tempfile::tempdir().unwrap();
        let dir = package(
            ws.path(),
            "app",
            serde_json::json!({
                "name": "app", "version": "1.0.0",
                "types_path": "types", "functions_path": "functions"
            }),
            &[
                ("types/label.sql", "CREATE DOMAIN label AS text;\n"),
                (&format!("functions/{a}"), about),
                (&format!("functions/{d}"), defs),
                (&format!("functions/{u}"), uses),
            ],
        );
        let (code, _, stderr) = deploy(&db, &dir, &[]);
        assert_eq!(code, 0, "{a}: {stderr}");
        let mut client = db.connect();
        client.batch_execute("SET search_path = app_1_0_0").unwrap();
        let row = client
            .query_one(
                "SELECT obj_description('app_1_0_0.total(int)'::regprocedure),
                        obj_description('app_1_0_0.===(int, int)'::regoperator),
                        app_1_0_0.same_as_one(1)",
                &[],
            )
            .unwrap();
        assert_eq!(row.get::<_, String>(0), "sum", "{a}");
        assert_eq!(row.get::<_, String>(1), "same", "{a}");
        assert!(row.get::<_, bool>(2), "{a}");
    }
}
