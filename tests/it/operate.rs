//! `pgpm status`, `pgpm remove` and `pgpm sandbox` against a real server.

use std::path::Path;

use crate::common::{TestDb, output, package, pgpm, shop};

fn run(db: &TestDb, args: &[&str]) -> (i32, String, String) {
    let mut cmd = pgpm();
    cmd.arg(args[0]).arg(db.conn_string()).args(&args[1..]);
    output(cmd.assert())
}

fn schema_exists(db: &TestDb, schema: &str) -> bool {
    db.connect()
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)",
            &[&schema],
        )
        .unwrap()
        .get(0)
}

/// shop 1.0.0 and 2.0.0 deployed, 1.0.0 twice in moderate mode (one old revision).
fn deployed_shop(db: &TestDb, ws: &Path) {
    let one = shop(ws, "1.0.0");
    let two = shop(ws, "2.0.0");
    for (dir, args) in [
        (&one, vec![]),
        (&one, vec!["--force", "--mode", "moderate"]),
        (&two, vec![]),
    ] {
        let mut cmd = pgpm();
        cmd.arg("deploy").arg(db.conn_string()).arg(dir).args(args);
        let (code, _, stderr) = output(cmd.assert());
        assert_eq!(code, 0, "{stderr}");
    }
}

#[test]
fn status_lists_packages_revisions_and_pending_patches() {
    let db = TestDb::installed();
    let ws = tempfile::tempdir().unwrap();
    deployed_shop(&db, ws.path());
    let patches = ws.path().join("patches");
    std::fs::create_dir(&patches).unwrap();
    std::fs::write(
        patches.join("patch-1-0-0-std.sql"),
        "CREATE TABLE t1 (id int);",
    )
    .unwrap();
    std::fs::write(
        patches.join("patch-1-1-0-std.sql"),
        "CREATE TABLE t2 (id int);",
    )
    .unwrap();
    let mut cmd = pgpm();
    cmd.arg("migrate")
        .arg(db.conn_string())
        .arg(&patches)
        .arg("--one");
    assert_eq!(output(cmd.assert()).0, 0);

    let patch_arg = patches.to_str().unwrap();
    let (code, stdout, stderr) = run(&db, &["status", "--patches", patch_arg]);
    assert_eq!(code, 0, "{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines[0].starts_with("catalog version "), "{stdout}");
    assert!(
        lines[0].contains("server PostgreSQL 15") || lines[0].contains("server PostgreSQL"),
        "{stdout}"
    );
    let row = |name: &str| {
        lines
            .iter()
            .find(|l| l.split_whitespace().nth(1) == Some(name))
            .unwrap_or_else(|| panic!("no row for {name}:\n{stdout}"))
            .split_whitespace()
            .collect::<Vec<_>>()
    };
    assert_eq!(
        &row("1.0.0")[..4],
        ["shop", "1.0.0", "shop_1_0_0", "shop_1_0_0_0"]
    );
    assert_eq!(&row("2.0.0")[..4], ["shop", "2.0.0", "shop_2_0_0", "-"]);
    assert!(
        stdout.contains("1 pending patch(es):\n  patch-1-1-0-std.sql"),
        "{stdout}"
    );

    let (code, stdout, _) = run(&db, &["status", "--patches", patch_arg, "--json"]);
    assert_eq!(code, 0);
    let json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(json["packages"].as_array().unwrap().len(), 2);
    assert_eq!(
        json["packages"][0]["old_revisions"],
        serde_json::json!(["shop_1_0_0_0"])
    );
    assert_eq!(json["packages"][1]["schema"], "shop_2_0_0");
    assert_eq!(
        json["pending_patches"],
        serde_json::json!([{"file_name": "patch-1-1-0-std.sql", "type": "std"}])
    );
    assert_eq!(json["warnings"], serde_json::json!([]));
    assert!(json["server_version_num"].as_i64().unwrap() >= 130000);
}

#[test]
fn status_warns_when_the_server_major_version_changed_since_the_last_deploy() {
    let db = TestDb::installed();
    let ws = tempfile::tempdir().unwrap();
    let dir = shop(ws.path(), "1.0.0");
    let mut cmd = pgpm();
    cmd.arg("deploy").arg(db.conn_string()).arg(&dir);
    assert_eq!(output(cmd.assert()).0, 0);
    // As if the last deploy had run on the major version before this one.
    let previous = crate::common::server_version_num() / 10000 - 1;
    db.exec(&format!(
        "UPDATE _pgpm.deployments SET server_version_num = {}",
        previous * 10000 + 11
    ));
    let (code, stdout, _) = run(&db, &["status"]);
    assert_eq!(code, 0);
    assert!(
        stdout.contains("warning: the server is PostgreSQL"),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("last deploy ran on PostgreSQL {previous}")),
        "{stdout}"
    );
}

#[test]
fn status_refuses_a_database_without_the_catalog() {
    let db = TestDb::new();
    let (code, _, stderr) = run(&db, &["status"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("pgpm install"), "{stderr}");
}

#[test]
fn remove_drops_a_version_or_one_old_revision() {
    let db = TestDb::installed();
    let ws = tempfile::tempdir().unwrap();
    // Without tables, so no --force is needed.
    let dir = package(
        ws.path(),
        "api",
        serde_json::json!({"name": "api", "version": "1.0.0", "subclass": "versioned", "functions_path": "f"}),
        &[(
            "f/v.sql",
            "CREATE FUNCTION v() RETURNS int LANGUAGE sql AS $$ SELECT 1 $$;",
        )],
    );
    for args in [vec![], vec!["--force", "--mode", "moderate"]] {
        let mut cmd = pgpm();
        cmd.arg("deploy").arg(db.conn_string()).arg(&dir).args(args);
        assert_eq!(output(cmd.assert()).0, 0);
    }
    let (code, stdout, _) = run(
        &db,
        &["remove", "api", "1.0.0", "--old-rev", "0", "--dry-run"],
    );
    assert_eq!(code, 0);
    assert!(
        stdout.contains("DROP SCHEMA \"api_1_0_0_0\" CASCADE;"),
        "{stdout}"
    );
    assert!(schema_exists(&db, "api_1_0_0_0"));

    let (code, stdout, stderr) = run(&db, &["remove", "api", "1.0.0", "--old-rev", "0"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("removed api 1.0.0 (schema api_1_0_0_0)"),
        "{stdout}"
    );
    assert!(!schema_exists(&db, "api_1_0_0_0"));
    assert!(schema_exists(&db, "api_1_0_0"));

    let (code, _, stderr) = run(&db, &["remove", "api", "1.0.0"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(!schema_exists(&db, "api_1_0_0"));
    let rows: String = db.query_scalar(
        "SELECT string_agg((removed_at IS NOT NULL)::text, ',' ORDER BY package_id) FROM _pgpm.packages",
    );
    assert_eq!(rows, "true,true");
    let actions: String = db.query_scalar(
        "SELECT string_agg(d.command || ':' || dp.action, ',' ORDER BY d.deployment_id)
           FROM _pgpm.deployment_packages dp JOIN _pgpm.deployments d USING (deployment_id)
          WHERE dp.action = 'removed'",
    );
    assert_eq!(actions, "remove:removed,remove:removed");

    let (code, _, stderr) = run(&db, &["remove", "api", "1.0.0"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("api 1.0.0 is not deployed"), "{stderr}");
}

#[test]
fn remove_refuses_tables_unless_forced() {
    let db = TestDb::installed();
    let ws = tempfile::tempdir().unwrap();
    let dir = shop(ws.path(), "1.0.0");
    let mut cmd = pgpm();
    cmd.arg("deploy").arg(db.conn_string()).arg(&dir);
    assert_eq!(output(cmd.assert()).0, 0);
    let (code, _, stderr) = run(&db, &["remove", "shop", "1.0.0"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("holds tables (orders)"), "{stderr}");
    assert!(schema_exists(&db, "shop_1_0_0"));
    let (code, _, stderr) = run(&db, &["remove", "shop", "1.0.0", "--force"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(!schema_exists(&db, "shop_1_0_0"));
    let scripts: i64 = db.query_scalar("SELECT count(*) FROM _pgpm.table_scripts");
    assert_eq!(scripts, 0);
}

#[test]
fn remove_refuses_a_version_other_packages_depend_on() {
    let db = TestDb::installed();
    let ws = tempfile::tempdir().unwrap();
    package(
        ws.path(),
        "a",
        serde_json::json!({"name": "a", "version": "1.0.0", "subclass": "versioned", "functions_path": "f"}),
        &[(
            "f/a.sql",
            "CREATE FUNCTION a() RETURNS int LANGUAGE sql AS $$ SELECT 1 $$;",
        )],
    );
    package(
        ws.path(),
        "b",
        serde_json::json!({"name": "b", "version": "1.0.0", "functions_path": "f", "dependencies": {"a": "^1"}}),
        &[(
            "f/b.sql",
            "CREATE FUNCTION b() RETURNS int LANGUAGE sql AS $$ SELECT a() $$;",
        )],
    );
    let mut cmd = pgpm();
    cmd.arg("deploy").arg(db.conn_string()).arg(ws.path());
    assert_eq!(output(cmd.assert()).0, 0);
    for extra in [vec![], vec!["--force"]] {
        let mut args = vec!["remove", "a", "1.0.0"];
        args.extend(extra);
        let (code, _, stderr) = run(&db, &args);
        assert_eq!(code, 1);
        assert!(
            stderr.contains("used by deployed packages: b 1.0.0"),
            "{stderr}"
        );
    }
    assert!(schema_exists(&db, "a_1_0_0"));
}

#[test]
fn remove_refuses_a_schema_a_session_selected() {
    let db = TestDb::installed();
    let ws = tempfile::tempdir().unwrap();
    let dir = package(
        ws.path(),
        "api",
        serde_json::json!({"name": "api", "version": "1.0.0", "subclass": "versioned", "functions_path": "f"}),
        &[(
            "f/v.sql",
            "CREATE FUNCTION v() RETURNS int LANGUAGE sql AS $$ SELECT 1 $$;",
        )],
    );
    let mut cmd = pgpm();
    cmd.arg("deploy").arg(db.conn_string()).arg(&dir);
    assert_eq!(output(cmd.assert()).0, 0);
    let mut app = db
        .info
        .clone()
        .with("application_name", "billing-web")
        .connect()
        .unwrap();
    app.batch_execute("SELECT _pgpm.set_search_path('api', '^1')")
        .unwrap();
    let (code, _, stderr) = run(&db, &["remove", "api", "1.0.0"]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("schema api_1_0_0 is in use by pid"),
        "{stderr}"
    );
    assert!(stderr.contains("billing-web"), "{stderr}");
    assert!(schema_exists(&db, "api_1_0_0"));
    // Once the session has gone, removing works.
    crate::common::close_and_wait(&db, app);
    let (code, _, stderr) = run(&db, &["remove", "api", "1.0.0"]);
    assert_eq!(code, 0, "{stderr}");
}

#[test]
fn sandbox_starts_is_reused_and_stops() {
    let project = tempfile::tempdir().unwrap();
    /// Stops the sandbox even when an assertion fails.
    struct Stop<'a>(&'a Path);
    impl Drop for Stop<'_> {
        fn drop(&mut self) {
            let _ = pgpm()
                .current_dir(self.0)
                .args(["sandbox", "--stop"])
                .output();
        }
    }
    let _stop = Stop(project.path());
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("packages-example");
    // The example needs PostgreSQL 14 (deploy's test checks the message).
    if crate::common::server_version_num() < 140000 {
        return;
    }
    let sandbox = |args: &[&str]| {
        let mut cmd = pgpm();
        cmd.current_dir(project.path()).arg("sandbox").args(args);
        output(cmd.assert())
    };
    let (code, stdout, stderr) = sandbox(&[example.to_str().unwrap()]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stdout.contains("deployed billing 1.4.0 -> billing_1_4_0"),
        "{stdout}"
    );
    assert!(stdout.contains("applied patch-"), "{stdout}");
    let url = stdout
        .lines()
        .find_map(|l| l.strip_prefix("sandbox running: "))
        .unwrap_or_else(|| panic!("{stdout}"))
        .to_string();
    assert!(
        stdout.contains("SELECT _pgpm.set_search_path('reporting', '^1.0')"),
        "{stdout}"
    );
    let info = pgpm::db::conninfo::ConnInfo::parse(&url).unwrap();
    // Its trust authentication trusts only the socket's owner: nothing
    // listens on TCP, and the socket is in a private directory.
    assert!(info.host().starts_with('/'), "{url}");
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", info.port())).is_err(),
        "the sandbox listens on TCP port {}",
        info.port()
    );
    let mut client = info.connect().unwrap();
    let selected: serde_json::Value = client
        .query_one("SELECT _pgpm.set_search_path('billing', '^1.3')", &[])
        .unwrap()
        .get(0);
    assert_eq!(selected["version"], "1.4.0");

    // A second run reuses the cluster and finds everything up to date.
    let (code, stdout, stderr) = sandbox(&[example.to_str().unwrap()]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stdout.contains(&format!("sandbox running: {url}")),
        "{stdout}"
    );
    assert!(stdout.contains("billing 1.4.0 is up to date"), "{stdout}");
    assert!(!stdout.contains("applied patch-"), "{stdout}");
    drop(client);

    let (code, stdout, _) = sandbox(&["--stop"]);
    assert_eq!(code, 0);
    assert_eq!(stdout.trim(), "stopped the sandbox");
    assert!(info.connect().is_err());
    let (_, stdout, _) = sandbox(&["--stop"]);
    assert_eq!(stdout.trim(), "the sandbox is not running");
}

#[test]
fn a_session_that_selected_a_version_hears_a_later_deploy() {
    let db = TestDb::installed();
    let ws = tempfile::tempdir().unwrap();
    let deploy = |dir: &Path| {
        let mut cmd = pgpm();
        cmd.arg("deploy").arg(db.conn_string()).arg(dir);
        let (code, _, stderr) = output(cmd.assert());
        assert_eq!(code, 0, "{stderr}");
    };
    deploy(&shop(ws.path(), "1.0.0"));
    let mut app = db.connect();
    let selected = pgpm_client::select_version(&mut app, "shop", "^1").unwrap();
    assert_eq!(selected.version.to_string(), "1.0.0");
    assert_eq!(selected.search_path, "shop_1_0_0, public");

    deploy(&shop(ws.path(), "1.1.0"));
    let pending = pgpm_client::take_pending(&mut app).unwrap();
    assert_eq!(pending.events.len(), 1, "{pending:?}");
    let event = &pending.events[0];
    assert_eq!(
        (
            event.package.as_str(),
            event.version.to_string(),
            event.schema.as_deref()
        ),
        ("shop", "1.1.0".to_string(), Some("shop_1_1_0"))
    );
    // Selecting again moves the session to the new version.
    let selected = pgpm_client::select_version(&mut app, "shop", "^1").unwrap();
    assert_eq!(selected.schema.as_deref(), Some("shop_1_1_0"));
    let v: String = app.query_one("SELECT api_version()", &[]).unwrap().get(0);
    assert_eq!(v, "1.1.0");
}

#[test]
fn execute_runs_a_batch_job_until_it_returns_zero() {
    let db = crate::common::TestDb::installed();
    db.exec(
        "CREATE TABLE backlog AS SELECT g AS id FROM generate_series(1, 25) g;
         CREATE FUNCTION purge(n int) RETURNS int LANGUAGE sql AS $$
             WITH d AS (DELETE FROM backlog WHERE id IN (SELECT id FROM backlog ORDER BY id LIMIT n) RETURNING 1)
             SELECT count(*)::int FROM d $$;",
    );
    let run = |args: &[&str]| {
        crate::common::output(
            crate::common::pgpm()
                .args(["execute", &db.conn_string(), "--query", "SELECT purge(10)"])
                .args(args)
                .assert(),
        )
    };
    let (code, stdout, stderr) = run(&["--until-zero", "--max-runs", "2"]);
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(stderr.contains("did not reach 0 in 2 runs"), "{stderr}");
    let left: i64 = db.query_scalar("SELECT count(*) FROM backlog");
    assert_eq!(left, 5, "each run committed on its own");
    let (code, stdout, stderr) = run(&["--until-zero"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout, "run 1: 5\nrun 2: 0\ndone after 2 run(s)\n");
    // Once, without --until-zero.
    let (code, stdout, _) = run(&[]);
    assert_eq!(code, 0);
    assert_eq!(stdout, "run 1: 0\n");
}
