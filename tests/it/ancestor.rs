//! Coming from the ancestor: its `config.json` packages deploy unchanged,
//! with its schema names and session settings (when the ancestor, Python
//! pgpm 0.1.62, is installed, the same packages deployed with it give the
//! same objects), and redeploys say what they do.

use std::path::Path;

use crate::common::{TestDb, output, package, pgpm};

/// Two ancestor packages with what the ancestor accepted and pgpm used to
/// refuse: a key of its users' own, a name starting with `_`, a scope in
/// capitals, a version with a pre-release, a one-number requirement, a
/// folder outside the package, a file not named `*.sql`, plain strings
/// with backslashes and a forward reference in a SQL function.
fn ancestor_workspace(root: &Path) {
    let write = |path: &str, text: &str| {
        let path = root.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    };
    write(
        "billing/config.json",
        r#"{"name": "billing", "version": "01_09_00", "subclass": "versioned", "class": "postgres_sql",
            "users": ["app"], "types_path": "types", "views_path": "views",
            "functions_path": ["functions", "../shared_sql"]}"#,
    );
    // Plain strings with backslashes, as the ancestor's setting
    // standard_conforming_strings = off reads them.
    write(
        "billing/types/zip.sql",
        r"CREATE DOMAIN zip AS text CHECK (VALUE ~ '^\d{5}$');",
    );
    write(
        "billing/views/tabbed.sql",
        r"CREATE VIEW tabbed AS SELECT 'a\tb'::text AS t;",
    );
    write(
        "shared_sql/helper.pgsql",
        "CREATE FUNCTION helper() RETURNS int LANGUAGE sql AS $$ SELECT 42 $$;",
    );
    write(
        "billing/functions/answer.sql",
        "CREATE FUNCTION answer() RETURNS int LANGUAGE sql AS $$ SELECT helper() $$;",
    );
    // A forward reference: the view is created in a later phase, which the
    // ancestor's check_function_bodies = off allows.
    write(
        "billing/functions/count_tabbed.sql",
        "CREATE FUNCTION count_tabbed() RETURNS bigint LANGUAGE sql AS $$ SELECT count(*) FROM tabbed $$;",
    );
    write(
        "audit/config.json",
        r#"{"name": "_audit", "version": "01_00_00_rc1", "subclass": "versioned", "scope": "SCHEMA",
            "functions_path": "functions", "dependencies": {"billing": "01"}}"#,
    );
    write(
        "audit/functions/seen.sql",
        "CREATE FUNCTION seen() RETURNS int LANGUAGE sql AS $$ SELECT answer() $$;",
    );
}

/// What the deploy created, to compare between tools.
fn objects(db: &TestDb) -> String {
    db.query_scalar(
        r#"SELECT concat_ws(' | ',
            (SELECT string_agg(nspname, ',' ORDER BY nspname) FROM pg_namespace
              WHERE nspname IN ('billing_01_09_00', '_audit_01_00_00_rc1')),
            (SELECT string_agg(p.oid::regprocedure::text, ',' ORDER BY p.oid::regprocedure::text COLLATE "C") FROM pg_proc p
              WHERE pronamespace IN ('billing_01_09_00'::regnamespace, '_audit_01_00_00_rc1'::regnamespace)),
            (SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE contypid = 'billing_01_09_00.zip'::regtype),
            (SELECT (t = E'a\tb')::text FROM billing_01_09_00.tabbed))"#,
    )
}

#[test]
fn ancestor_packages_deploy_unchanged_as_the_ancestor_deployed_them() {
    let db = TestDb::installed();
    let ws = tempfile::tempdir().unwrap();
    ancestor_workspace(ws.path());
    let (code, stdout, stderr) = output(
        pgpm()
            .arg("deploy")
            .arg(db.conn_string())
            .arg(ws.path())
            .assert(),
    );
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stdout.contains("deployed billing 1.9.0 -> billing_01_09_00"),
        "{stdout}"
    );
    assert!(
        stdout.contains("deployed _audit 1.0.0-rc1 -> _audit_01_00_00_rc1"),
        "{stdout}"
    );
    assert!(
        stderr.contains("billing/config.json: unknown key \"users\" is ignored"),
        "{stderr}"
    );
    let ours = objects(&db);
    assert_eq!(
        ours,
        "_audit_01_00_00_rc1,billing_01_09_00 | _audit_01_00_00_rc1.seen(),billing_01_09_00.answer(),billing_01_09_00.count_tabbed(),billing_01_09_00.helper() | CHECK ((VALUE ~ '^d{5}$'::text)) | true"
    );
    // Clients find it under either spelling of the requirement.
    let chosen: serde_json::Value =
        db.query_scalar("SELECT _pgpm.api_version('billing', '01_09_xx')");
    assert_eq!(chosen["schema"], "billing_01_09_00");
    let chosen: serde_json::Value = db.query_scalar("SELECT _pgpm.api_version('billing', '^1.9')");
    assert_eq!(chosen["schema"], "billing_01_09_00");

    // The ancestor itself, when installed, makes the same objects.
    let Some(python) = ancestor_python() else {
        return;
    };
    let theirs_db = TestDb::new();
    let conn = theirs_db.conn_string();
    for (args, cwd) in [
        (vec!["install", conn.as_str()], ws.path().to_path_buf()),
        (vec!["deploy", conn.as_str()], ws.path().join("billing")),
        (vec!["deploy", conn.as_str()], ws.path().join("audit")),
    ] {
        // Its deploy prints an error of its own after deploying when the
        // connection string has no host= (ours has): the objects decide.
        let _ = std::process::Command::new(&python)
            .arg("-c")
            .arg("import sys\nfrom pgpm.app import main\nsys.argv[0] = 'pgpm'\nsys.exit(main())")
            .args(&args)
            .current_dir(cwd)
            .output()
            .unwrap();
    }
    assert_eq!(objects(&theirs_db), ours);
}

/// A Python with the ancestor (`pip install pgpm==0.1.62 psycopg2-binary`).
fn ancestor_python() -> Option<String> {
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let ok = std::process::Command::new(&python)
        .args(["-c", "import pgpm.app, psycopg2"])
        .output()
        .is_ok_and(|o| o.status.success());
    ok.then_some(python)
}

#[test]
fn a_package_json_keeps_pgpm_names_and_standard_strings() {
    let db = TestDb::installed();
    let ws = tempfile::tempdir().unwrap();
    let dir = package(
        ws.path(),
        "billing",
        serde_json::json!({"name": "billing", "version": "01_09_00", "types_path": "types"}),
        &[(
            "types/zip.sql",
            r"CREATE DOMAIN zip AS text CHECK (VALUE ~ '^\d{5}$');",
        )],
    );
    let (code, stdout, stderr) = output(
        pgpm()
            .arg("deploy")
            .arg(db.conn_string())
            .arg(&dir)
            .assert(),
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("-> billing_1_9_0"), "{stdout}");
    let check: String = db.query_scalar(
        "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE contypid = 'billing_1_9_0.zip'::regtype",
    );
    assert_eq!(check, r"CHECK ((VALUE ~ '^\d{5}$'::text))");
}

#[test]
fn redeploys_say_what_they_do_and_what_a_cascade_really_drops() {
    let db = TestDb::installed();
    let ws = tempfile::tempdir().unwrap();
    let dir = package(
        ws.path(),
        "shop",
        serde_json::json!({"name": "shop", "version": "1.0.0", "types_path": "types", "functions_path": "functions"}),
        &[
            (
                "types/money.sql",
                "CREATE TYPE money_t AS (cents bigint, currency text);",
            ),
            (
                "functions/zero.sql",
                "CREATE FUNCTION zero() RETURNS money_t LANGUAGE sql AS $$ SELECT ROW(0, 'EUR')::money_t $$;",
            ),
        ],
    );
    let deploy = |args: &[&str]| {
        output(
            pgpm()
                .arg("deploy")
                .arg(db.conn_string())
                .arg(&dir)
                .args(args)
                .assert(),
        )
    };
    let (code, _, stderr) = deploy(&[]);
    assert_eq!(code, 0, "{stderr}");
    // Unchanged content in a mode that would redeploy: nothing happens,
    // and the user hears how to redeploy anyway.
    for mode in ["unsafe", "moderate"] {
        let (code, stdout, stderr) = deploy(&["--mode", mode]);
        assert_eq!(code, 0, "{stderr}");
        assert!(stdout.contains("shop 1.0.0 is up to date"), "{stdout}");
        assert!(
            stderr.contains(&format!(
                "note: shop 1.0.0: deployed with this content already, so --mode {mode} leaves it alone; --force redeploys it"
            )),
            "{stderr}"
        );
    }
    // A table outside uses the package's type: the cascade drops its
    // column, and the warning says so, not "type shop_1_0_0.money_t".
    db.exec("CREATE TABLE public.orders (id int, amount shop_1_0_0.money_t)");
    let (code, _, stderr) = deploy(&["--mode", "unsafe", "--force"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("also drops table column public.orders.amount"),
        "{stderr}"
    );
    let columns: i64 = db.query_scalar(
        "SELECT count(*) FROM information_schema.columns WHERE table_name = 'orders'",
    );
    assert_eq!(columns, 1);

    // -f: a missing file is the user's error; a relative path is also
    // looked up inside the package.
    let (code, _, stderr) = deploy(&["-f", "functions/nope.sql"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("-f functions/nope.sql: no such file"),
        "{stderr}"
    );
    let (code, stdout, stderr) = deploy(&["-f", "functions/zero.sql"]);
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(stderr.contains("already exists"), "{stderr}");
}

/// The tables of the ancestor's catalog that adopting reads, as its 0.1.62
/// creates them, with rows as it leaves them, and its DDL event trigger.
const ANCESTOR_CATALOG: &str = r#"
CREATE SCHEMA _pgpm;
CREATE TABLE _pgpm.package_subclasses (pkg_sc_id serial PRIMARY KEY, pkg_sc_name text);
INSERT INTO _pgpm.package_subclasses VALUES (1, 'versioned'), (2, 'basic');
CREATE TABLE _pgpm.package_statuses (pkg_s_id serial PRIMARY KEY, pkg_s_name text);
INSERT INTO _pgpm.package_statuses VALUES (1, 'ADDED'), (2, 'IN PROGRESS'), (3, 'DELETED');
CREATE TABLE _pgpm.packages (
    pkg_id serial PRIMARY KEY, pkg_name text, pkg_description text, pkg_v_major integer,
    pkg_v_minor integer, pkg_v_patch integer, pkg_v_pre text, pkg_v_metadata text,
    pkg_old_rev integer, pkg_subclass integer REFERENCES _pgpm.package_subclasses,
    pkg_license text, pkg_status integer DEFAULT 1 REFERENCES _pgpm.package_statuses);
CREATE TABLE _pgpm.package_dependencies (
    pkg_dep_id serial, pkg_link_core_id integer NOT NULL REFERENCES _pgpm.packages,
    pkg_link_dep_id integer NOT NULL REFERENCES _pgpm.packages,
    PRIMARY KEY (pkg_link_core_id, pkg_link_dep_id));
CREATE TABLE _pgpm.deployment_events (
    dpl_ev_pkg_id integer NOT NULL REFERENCES _pgpm.packages, dpl_ev_vcs_ref text,
    dpl_ev_vcs_link text, dpl_ev_time timestamp NOT NULL DEFAULT now(), dpl_ev_issue_id text,
    dpl_ev_issue_link text, dpl_ev_id serial PRIMARY KEY, dpl_ev_txid bigint);
CREATE TABLE _pgpm.ddl_changes_log (ddl_change_id serial, ddl_change text);
CREATE FUNCTION _pgpm._log_ddl_change() RETURNS event_trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO _pgpm.ddl_changes_log (ddl_change) VALUES (current_query());
END $$;
CREATE EVENT TRIGGER ddl_change_trigger ON ddl_command_end EXECUTE PROCEDURE _pgpm._log_ddl_change();

INSERT INTO _pgpm.packages (pkg_id, pkg_name, pkg_v_major, pkg_v_minor, pkg_v_patch, pkg_v_pre, pkg_old_rev, pkg_subclass, pkg_license)
VALUES (1, '_pgpm', 0, 1, 62, NULL, NULL, 2, 'MIT'),
       -- billing 1.9.0 redeployed in moderate mode: the old one is _0; an
       -- overwrite rewrote both rows' version to 1.9.0 (the ancestor's
       -- corrupt columns), which the schema names set right.
       (2, 'billing', 1, 9, 0, NULL, 0, 1, 'MIT'),
       (3, 'billing', 1, 9, 0, NULL, NULL, 1, 'MIT'),
       (4, '_audit', 1, 0, 0, NULL, NULL, 1, NULL),
       -- Deployed, then its schema dropped by hand.
       (5, 'gone', 2, 0, 0, NULL, NULL, 1, NULL);
INSERT INTO _pgpm.package_dependencies (pkg_link_core_id, pkg_link_dep_id) VALUES (4, 3);
INSERT INTO _pgpm.deployment_events (dpl_ev_pkg_id, dpl_ev_vcs_ref, dpl_ev_issue_id, dpl_ev_time, dpl_ev_txid)
VALUES (2, 'abc123', 'BILL-1', '2024-01-02 03:04:05', 700),
       (3, 'def456', 'BILL-2', '2024-02-03 04:05:06', 800),
       (4, 'fed321', NULL, '2024-02-03 04:05:07', 801);
"#;

#[test]
fn a_database_the_ancestor_manages_is_adopted_with_its_history() {
    let db = TestDb::new();
    db.exec(ANCESTOR_CATALOG);
    let ws = tempfile::tempdir().unwrap();
    ancestor_workspace(ws.path());
    // The schemas the ancestor deployed: billing twice (moderate), _audit.
    db.exec(
        "CREATE SCHEMA billing_01_09_00_0;
         CREATE FUNCTION billing_01_09_00_0.answer() RETURNS int LANGUAGE sql AS $$ SELECT 41 $$;
         CREATE SCHEMA billing_01_09_00;
         CREATE FUNCTION billing_01_09_00.answer() RETURNS int LANGUAGE sql AS $$ SELECT 42 $$;
         CREATE SCHEMA _audit_01_00_00_rc1;",
    );
    let before: String = db.query_scalar(
        "SELECT string_agg(nspname, ',' ORDER BY nspname) FROM pg_namespace WHERE nspname LIKE '%pgpm%'",
    );
    let install = |args: &[&str]| {
        output(
            pgpm()
                .arg("install")
                .arg("--adopt")
                .arg(db.conn_string())
                .arg(ws.path())
                .args(args)
                .assert(),
        )
    };
    // Every other command refuses the ancestor's catalog.
    let (code, _, stderr) = output(pgpm().arg("status").arg(db.conn_string()).assert());
    assert_eq!(code, 1);
    assert!(stderr.contains("holds no pgpm catalog"), "{stderr}");

    let (code, stdout, stderr) = install(&["--dry-run"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("DROP EVENT TRIGGER \"ddl_change_trigger\""),
        "{stdout}"
    );
    assert!(
        stdout.contains("ALTER SCHEMA _pgpm RENAME TO \"_pgpm_ancestor\""),
        "{stdout}"
    );
    assert!(
        stdout.contains("would adopt billing 1.9.0 revision 0 (schema billing_01_09_00_0)"),
        "{stdout}"
    );
    let after_dry: String = db.query_scalar(
        "SELECT string_agg(nspname, ',' ORDER BY nspname) FROM pg_namespace WHERE nspname LIKE '%pgpm%'",
    );
    assert_eq!(after_dry, before, "a dry run changes nothing");

    let (code, stdout, stderr) = install(&[]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stdout.contains(
            "adopted billing 1.9.0 (schema billing_01_09_00), checksum from the workspace"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains("adopted billing 1.9.0 revision 0 (schema billing_01_09_00_0)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("with 3 deployment event(s) kept as history"),
        "{stdout}"
    );
    assert!(
        stderr.contains(
            "the ancestor's catalog records _audit 1.0.0, the schema's name says 1.0.0-rc1"
        ),
        "{stderr}"
    );
    assert!(
        stderr.contains(
            "the ancestor's catalog records gone 2.0.0 (row 5), but no schema of it exists"
        ),
        "{stderr}"
    );
    // Its catalog is history now; the event trigger is gone.
    let kept: i64 = db.query_scalar("SELECT count(*) FROM _pgpm_ancestor.packages");
    assert_eq!(kept, 5);
    let triggers: i64 = db.query_scalar("SELECT count(*) FROM pg_event_trigger");
    assert_eq!(triggers, 0);
    // Dependencies and history came along.
    let path: String =
        db.query_scalar("SELECT _pgpm.set_search_path('_audit', '>=1.0.0-rc1') ->> 'search_path'");
    assert_eq!(path, "_audit_01_00_00_rc1, billing_01_09_00, public");
    // As the ancestor's clients call it: by its argument names, reading
    // its keys.
    let theirs: serde_json::Value = db.query_scalar(
        "SELECT _pgpm.set_search_path(p_schema_name => 'billing', p_v_req => '01_09_xx')",
    );
    assert_eq!(theirs["pkg_name"], "billing");
    assert_eq!(
        (
            theirs["pkg_v_major"].as_i64(),
            theirs["pkg_v_minor"].as_i64(),
            theirs["pkg_v_patch"].as_i64()
        ),
        (Some(1), Some(9), Some(0))
    );
    assert_eq!(theirs["schema"], "billing_01_09_00");
    let history: String = db.query_scalar(
        "SELECT string_agg(d.vcs_ref || '/' || coalesce(d.issue_ref, '-') || '/' || p.schema_name, ' ' ORDER BY d.started_at)
           FROM _pgpm.deployments d
           JOIN _pgpm.deployment_packages dp USING (deployment_id)
           JOIN _pgpm.packages p USING (package_id)
          WHERE d.command = 'ancestor deploy'",
    );
    assert_eq!(
        history,
        "abc123/BILL-1/billing_01_09_00_0 def456/BILL-2/billing_01_09_00 fed321/-/_audit_01_00_00_rc1"
    );
    // The next deploy of the unchanged workspace is a no-op.
    let (code, stdout, stderr) = output(
        pgpm()
            .arg("deploy")
            .arg(db.conn_string())
            .arg(ws.path())
            .assert(),
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("billing 1.9.0 is up to date"), "{stdout}");
    assert!(
        stdout.contains("_audit 1.0.0-rc1 is up to date"),
        "{stdout}"
    );
    // Adopting twice is refused.
    let (code, _, stderr) = install(&[]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("pgpm's catalog is installed already"),
        "{stderr}"
    );
}

#[test]
fn the_ancestors_listeners_hear_its_payload_and_pgpm_clients_read_both() {
    let db = TestDb::installed();
    let ws = tempfile::tempdir().unwrap();
    ancestor_workspace(ws.path());
    let mut listener = db.connect();
    listener
        .batch_execute("LISTEN \"deployment_events$$billing\"; LISTEN pgpm_deploy;")
        .unwrap();
    let (code, _, stderr) = output(
        pgpm()
            .arg("deploy")
            .arg(db.conn_string())
            .arg(ws.path().join("billing"))
            .assert(),
    );
    assert_eq!(code, 0, "{stderr}");
    listener.batch_execute("").unwrap();
    use postgres::fallible_iterator::FallibleIterator;
    let got: Vec<(String, String)> = listener
        .notifications()
        .iter()
        .map(|n| Ok((n.channel().to_string(), n.payload().to_string())))
        .collect()
        .unwrap();
    let on_package = got
        .iter()
        .find(|(c, _)| c == "deployment_events$$billing")
        .expect("a notification on the package's channel");
    assert_eq!(on_package.1, "1_9_0", "what the ancestor sent there");
    let on_pgpm = got.iter().find(|(c, _)| c == "pgpm_deploy").unwrap();
    assert!(
        on_pgpm.1.contains("\"schema\":\"billing_01_09_00\""),
        "{}",
        on_pgpm.1
    );
    // pgpm-client reads both.
    for (channel, payload) in &got {
        let event = pgpm_client::DeployEvent::parse(channel, payload).unwrap();
        assert_eq!(event.package, "billing");
        assert_eq!(event.version.to_string(), "1.9.0");
    }
}
