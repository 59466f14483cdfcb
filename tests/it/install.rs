//! `pgpm install` / `uninstall` and connecting, against a real server.

use crate::common::{TestDb, output, pgpm, server};
use pgpm::catalog::{self, CURRENT_VERSION, CatalogError, State};

/// A fingerprint of everything in `_pgpm`: object names and catalog rows.
fn catalog_snapshot(db: &TestDb) -> String {
    db.query_scalar(
        "SELECT coalesce(string_agg(c.relname || ':' || c.relkind::text || ':' || c.xmin::text, ',' ORDER BY c.relname), '')
                || '|' || (SELECT xmin::text || catalog_version FROM _pgpm.meta)
           FROM pg_class c WHERE c.relnamespace = '_pgpm'::regnamespace",
    )
}

#[test]
fn install_on_an_empty_database_creates_the_catalog() {
    let db = TestDb::new();
    let (code, stdout, stderr) = output(pgpm().arg("install").arg(db.conn_string()).assert());
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("installed the pgpm catalog"), "{stdout}");
    let version: i32 = db.query_scalar("SELECT catalog_version FROM _pgpm.meta");
    assert_eq!(version, CURRENT_VERSION);
    let tables: Vec<String> = db
        .connect()
        .query(
            "SELECT tablename::text FROM pg_tables WHERE schemaname = '_pgpm' ORDER BY 1",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        tables,
        [
            "accepted_patches",
            "concurrent_progress",
            "ddl_log",
            "deployment_packages",
            "deployments",
            "meta",
            "migrations",
            "package_dependencies",
            "package_extensions",
            "packages",
            "sessions",
            "table_scripts"
        ]
    );
    // The catalog is not readable by PUBLIC.
    let public_usage: bool =
        db.query_scalar("SELECT has_schema_privilege('public', '_pgpm', 'USAGE')");
    assert!(!public_usage);
}

#[test]
fn second_install_changes_nothing_and_says_so() {
    let db = TestDb::new();
    pgpm()
        .arg("install")
        .arg(db.conn_string())
        .assert()
        .success();
    let before = catalog_snapshot(&db);
    let (code, stdout, _) = output(pgpm().arg("install").arg(db.conn_string()).assert());
    assert_eq!(code, 0);
    assert!(stdout.contains("already installed and current"), "{stdout}");
    assert_eq!(catalog_snapshot(&db), before);
}

#[test]
fn upgrade_from_a_version_1_catalog() {
    let db = TestDb::new();
    db.exec(include_str!("../fixtures/catalog-v1.sql"));
    let before = catalog_snapshot(&db);

    // Without --upgrade: says it is pending, exits 1, changes nothing.
    let (code, _, stderr) = output(pgpm().arg("install").arg(db.conn_string()).assert());
    assert_eq!(code, 1);
    assert!(stderr.contains("version 1"), "{stderr}");
    assert!(stderr.contains("pgpm install --upgrade"), "{stderr}");
    assert_eq!(catalog_snapshot(&db), before);

    let (code, stdout, stderr) = output(
        pgpm()
            .args(["install", "--upgrade"])
            .arg(db.conn_string())
            .assert(),
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains(&format!("from version 1 to {CURRENT_VERSION}")),
        "{stdout}"
    );
    let version: i32 = db.query_scalar("SELECT catalog_version FROM _pgpm.meta");
    assert_eq!(version, CURRENT_VERSION);
    // History survives the upgrade, and the new objects work on it.
    let live: String = db.query_scalar("SELECT name || ' ' || version FROM _pgpm.live_packages");
    assert_eq!(live, "core 1.0.0");
    let patch: String = db.query_scalar("SELECT file_name FROM _pgpm.migrations");
    assert_eq!(patch, "patch-1-0-0-std.sql");
    let installed_at: String = db.query_scalar(
        "SELECT to_char(installed_at AT TIME ZONE 'UTC', 'YYYY-MM-DD') FROM _pgpm.meta",
    );
    assert_eq!(installed_at, "2026-01-05");
}

#[test]
fn upgrade_keeps_earlier_usage_grants_on_new_objects() {
    let db = TestDb::new();
    db.exec(include_str!("../fixtures/catalog-v1.sql"));
    let role = format!("{}_reader", db.name);
    db.exec(&format!(
        "CREATE ROLE {role}; GRANT USAGE ON SCHEMA _pgpm TO {role}; GRANT SELECT ON ALL TABLES IN SCHEMA _pgpm TO {role};"
    ));
    pgpm()
        .args(["install", "--upgrade"])
        .arg(db.conn_string())
        .assert()
        .success();
    let can_read: bool = db.query_scalar(&format!(
        "SELECT has_table_privilege('{role}', '_pgpm.deployment_packages', 'SELECT')"
    ));
    assert!(can_read);
}

#[test]
fn a_newer_catalog_is_refused() {
    let db = TestDb::new();
    pgpm()
        .arg("install")
        .arg(db.conn_string())
        .assert()
        .success();
    db.exec("UPDATE _pgpm.meta SET catalog_version = 999");
    for args in [
        vec!["install"],
        vec!["install", "--upgrade"],
        vec!["uninstall"],
    ] {
        let (code, _, stderr) = output(pgpm().args(&args).arg(db.conn_string()).assert());
        assert_eq!(code, 1, "{args:?}");
        assert!(stderr.contains("version 999"), "{stderr}");
        assert!(stderr.contains("upgrade pgpm"), "{stderr}");
    }
    let mut client = db.connect();
    assert!(matches!(
        catalog::require_current(&mut client),
        Err(CatalogError::Newer { found: 999 })
    ));
}

#[test]
fn commands_refuse_a_database_without_the_catalog() {
    let db = TestDb::new();
    let mut client = db.connect();
    assert_eq!(catalog::state(&mut client).unwrap(), State::Absent);
    let err = catalog::require_current(&mut client).unwrap_err();
    assert!(matches!(err, CatalogError::NotInstalled));
    assert!(err.to_string().contains("pgpm install"));
    assert!(err.is_user_error());
}

#[test]
fn an_older_catalog_is_refused_by_other_commands() {
    let db = TestDb::new();
    db.exec(include_str!("../fixtures/catalog-v1.sql"));
    let mut client = db.connect();
    assert!(matches!(
        catalog::require_current(&mut client),
        Err(CatalogError::UpgradePending { found: 1 })
    ));
}

#[test]
fn a_foreign_pgpm_schema_is_left_alone() {
    let db = TestDb::new();
    db.exec("CREATE SCHEMA _pgpm; CREATE TABLE _pgpm.packages (pkg_id serial);");
    for cmd in ["install", "uninstall"] {
        let (code, _, stderr) = output(pgpm().arg(cmd).arg(db.conn_string()).assert());
        assert_eq!(code, 1);
        assert!(stderr.contains("holds no pgpm catalog"), "{stderr}");
    }
    let still_there: bool = db.query_scalar("SELECT to_regclass('_pgpm.packages') IS NOT NULL");
    assert!(still_there);
}

#[test]
fn usage_roles_can_read_the_catalog_and_others_cannot() {
    let db = TestDb::new();
    let reader = format!("{} Reader \"x\"", db.name);
    let quoted = pgpm::db::quote::quote_ident(&reader);
    let other = format!("{}_other", db.name);
    db.exec(&format!(
        "CREATE ROLE {quoted} LOGIN; CREATE ROLE {other} LOGIN;"
    ));
    pgpm()
        .arg("install")
        .arg(db.conn_string())
        .args(["--usage", &reader])
        .assert()
        .success();
    let mut as_reader = db
        .info
        .clone()
        .with("user", reader.clone())
        .connect()
        .unwrap();
    let n: i64 = as_reader
        .query_one("SELECT count(*) FROM _pgpm.packages", &[])
        .unwrap()
        .get(0);
    assert_eq!(n, 0);
    let schema: Option<String> = as_reader
        .query_one("SELECT _pgpm.package_schema('x', '1.0.0')", &[])
        .unwrap()
        .get(0);
    assert_eq!(schema, None);
    assert!(
        as_reader
            .batch_execute("DELETE FROM _pgpm.packages")
            .is_err()
    );
    let mut as_other = db.info.clone().with("user", other).connect().unwrap();
    let err = as_other
        .query_one("SELECT count(*) FROM _pgpm.packages", &[])
        .unwrap_err();
    let message = err.as_db_error().unwrap().message();
    assert!(message.contains("permission denied"), "{message}");
    assert!(
        as_other
            .query_one("SELECT _pgpm.package_schema('x', '1.0.0')", &[])
            .is_err()
    );
}

#[test]
fn uninstall_refuses_while_packages_are_registered() {
    let db = TestDb::new();
    db.exec(include_str!("../fixtures/catalog-v1.sql"));
    pgpm()
        .args(["install", "--upgrade"])
        .arg(db.conn_string())
        .assert()
        .success();
    let (code, _, stderr) = output(pgpm().arg("uninstall").arg(db.conn_string()).assert());
    assert_eq!(code, 1);
    assert!(stderr.contains("1 deployed package"), "{stderr}");
    assert!(stderr.contains("--force"), "{stderr}");
    let present: bool = db.query_scalar("SELECT to_regnamespace('_pgpm') IS NOT NULL");
    assert!(present);

    let (code, stdout, _) = output(
        pgpm()
            .args(["uninstall", "--force"])
            .arg(db.conn_string())
            .assert(),
    );
    assert_eq!(code, 0);
    assert!(stdout.contains("removed the pgpm catalog"));
    let present: bool = db.query_scalar("SELECT to_regnamespace('_pgpm') IS NOT NULL");
    assert!(!present);
    // Uninstalling again is a no-op that says so.
    let (code, stdout, _) = output(pgpm().arg("uninstall").arg(db.conn_string()).assert());
    assert_eq!(code, 0);
    assert!(stdout.contains("not installed"), "{stdout}");
}

#[test]
fn concurrent_installs_serialise() {
    let db = TestDb::new();
    let conn = db.conn_string();
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(6));
    let handles: Vec<_> = (0..6)
        .map(|_| {
            let conn = conn.clone();
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                let mut cmd = pgpm();
                cmd.arg("install").arg(&conn);
                barrier.wait();
                output(cmd.assert())
            })
        })
        .collect();
    let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    for (code, _, stderr) in &results {
        assert_eq!(*code, 0, "{stderr}");
    }
    let installed = results
        .iter()
        .filter(|(_, out, _)| out.contains("installed the pgpm catalog"))
        .count();
    let current = results
        .iter()
        .filter(|(_, out, _)| out.contains("already installed"))
        .count();
    assert_eq!((installed, current), (1, 5));
    let rows: i64 = db.query_scalar("SELECT count(*) FROM _pgpm.meta");
    assert_eq!(rows, 1);
}

#[test]
fn connects_by_uri_keywords_environment_and_socket() {
    let db = TestDb::new();
    let info = &db.info;
    let uri = format!(
        "postgresql://{}@{}:{}/{}?sslmode=disable",
        info.user(),
        info.host(),
        info.port(),
        db.name
    );
    let (code, _, stderr) = output(pgpm().arg("install").arg(&uri).assert());
    assert_eq!(code, 0, "{stderr}");

    let keywords = format!(
        "host={} port={} user={} dbname={} sslmode=disable",
        info.host(),
        info.port(),
        info.user(),
        db.name
    );
    let (_, stdout, _) = output(pgpm().arg("install").arg(&keywords).assert());
    assert!(stdout.contains("already installed"), "{stdout}");

    let (_, stdout, stderr) = output(
        pgpm()
            .arg("install")
            .env("PGHOST", info.host())
            .env("PGPORT", info.port().to_string())
            .env("PGUSER", info.user())
            .env("PGDATABASE", &db.name)
            .env("PGSSLMODE", "disable")
            .assert(),
    );
    assert!(stdout.contains("already installed"), "{stdout}{stderr}");

    let (_, stdout, stderr) = output(pgpm().arg("install").env("DATABASE_URL", &uri).assert());
    assert!(stdout.contains("already installed"), "{stdout}{stderr}");

    if let Some(cluster) = &server().cluster {
        let socket = cluster
            .conninfo(&db.name)
            .with("host", cluster.socket_dir().to_string_lossy());
        assert!(socket.host().starts_with('/'));
        let (code, stdout, stderr) = output(
            pgpm()
                .arg("install")
                .arg(format!(
                    "host={} port={} user=postgres dbname={}",
                    socket.host(),
                    socket.port(),
                    db.name
                ))
                .assert(),
        );
        assert_eq!(code, 0, "{stderr}");
        assert!(stdout.contains("already installed"), "{stdout}");
    }
}

#[test]
fn a_failed_login_never_shows_the_password() {
    let Some(_) = &server().cluster else {
        return; // needs our own cluster's password rules
    };
    let db = TestDb::new();
    let user = format!("{}_pw", db.name);
    db.exec(&format!(
        "CREATE ROLE {user} LOGIN PASSWORD 'right-secret' IN ROLE {}",
        crate::common::PASSWORD_GROUP
    ));
    let secret = "Wr0ng-S3cret-xyzzy";
    let info = &db.info;
    let uri = format!(
        "postgres://{user}:{secret}@{}:{}/{}?sslmode=disable",
        info.host(),
        info.port(),
        db.name
    );
    let keywords = format!(
        "host={} port={} user={user} password={secret} dbname={} sslmode=disable",
        info.host(),
        info.port(),
        db.name
    );
    for conn in [&uri, &keywords] {
        let (code, stdout, stderr) = output(pgpm().arg("install").arg(conn).assert());
        assert_eq!(code, 2);
        assert!(
            stderr.contains("password authentication failed"),
            "{stderr}"
        );
        assert!(
            !stderr.contains(secret) && !stdout.contains(secret),
            "{stderr}"
        );
    }
    let (code, _, stderr) = output(
        pgpm()
            .arg("install")
            .arg(format!(
                "host={} port={} user={user} dbname={}",
                info.host(),
                info.port(),
                db.name
            ))
            .env("PGPASSWORD", secret)
            .assert(),
    );
    assert_eq!(code, 2);
    assert!(!stderr.contains(secret), "{stderr}");
}

#[test]
fn password_from_pgpass_logs_in() {
    use std::os::unix::fs::PermissionsExt;
    let Some(_) = &server().cluster else {
        return;
    };
    let db = TestDb::new();
    let user = format!("{}_pass", db.name);
    db.exec(&format!(
        "CREATE ROLE {user} LOGIN PASSWORD 'from:file' IN ROLE {}; GRANT CREATE ON DATABASE {} TO {user};",
        crate::common::PASSWORD_GROUP, db.name
    ));
    let dir = tempfile::tempdir().unwrap();
    let passfile = dir.path().join("pgpass");
    std::fs::write(
        &passfile,
        format!("127.0.0.1:*:{}:{user}:from\\:file\n", db.name),
    )
    .unwrap();
    std::fs::set_permissions(&passfile, std::fs::Permissions::from_mode(0o600)).unwrap();
    let (code, stdout, stderr) = output(
        pgpm()
            .arg("install")
            .arg(format!(
                "host=127.0.0.1 port={} user={user} dbname={}",
                db.info.port(),
                db.name
            ))
            .env("PGPASSFILE", &passfile)
            .assert(),
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("installed"), "{stdout}");
}

#[test]
fn bad_connection_strings_are_user_errors() {
    let (code, _, stderr) = output(pgpm().args(["install", "host=x colour=blue"]).assert());
    assert_eq!(code, 1);
    // The option is not echoed (in a mistyped string it may be a password's
    // tail); the known options are listed, or a near miss is named.
    assert!(
        stderr.contains("unknown option; the options are: host, "),
        "{stderr}"
    );
    assert!(!stderr.contains("colour"), "{stderr}");
    let (code, _, stderr) = output(pgpm().args(["install", "host=x prot=5432"]).assert());
    assert_eq!(code, 1);
    assert!(stderr.contains("did you mean \"port\""), "{stderr}");
}

#[test]
fn sslmodes_verify_what_they_promise() {
    let Some(ca) = crate::common::test_ca() else {
        return; // no openssl here, or an external server
    };
    let db = TestDb::new();
    let port = db.info.port();
    let install = |conn: String| output(pgpm().arg("install").arg(conn).assert());
    let base = |host: &str| format!("host={host} port={port} user=postgres dbname={}", db.name);
    let ca = ca.display();
    // require: encrypted, not verified.
    let (code, _, stderr) = install(format!("{} sslmode=require", base("127.0.0.1")));
    assert_eq!(code, 0, "{stderr}");
    let ssl: bool = db
        .info
        .clone()
        .with("sslmode", "require")
        .connect()
        .unwrap()
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(ssl, "sslmode=require must encrypt");
    // verify-ca with the right root; the host name is not checked.
    let (code, stdout, stderr) = install(format!(
        "{} sslmode=verify-ca sslrootcert={ca}",
        base("127.0.0.1")
    ));
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("already installed"), "{stdout}");
    // verify-full: localhost is in the certificate...
    let (code, _, stderr) = install(format!(
        "{} sslmode=verify-full sslrootcert={ca}",
        base("localhost")
    ));
    assert_eq!(code, 0, "{stderr}");
    // A root that did not sign the server's certificate fails verify-ca.
    let wrong = tempfile::NamedTempFile::new().unwrap();
    let made = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=other CA",
            "-keyout",
            "/dev/null",
            "-out",
        ])
        .arg(wrong.path())
        .output()
        .unwrap();
    assert!(made.status.success());
    let (code, _, stderr) = install(format!(
        "{} sslmode=verify-ca sslrootcert={}",
        base("127.0.0.1"),
        wrong.path().display()
    ));
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("could not connect"), "{stderr}");
    // ...but a host name the certificate does not name fails, even at the
    // right address.
    let (code, _, stderr) = install(format!(
        "host=not-in-the-certificate hostaddr=127.0.0.1 port={port} user=postgres dbname={} sslmode=verify-full sslrootcert={ca}",
        db.name
    ));
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("TLS handshake") || stderr.contains("certificate"),
        "{stderr}"
    );
}

#[test]
fn the_ddl_log_records_changes_outside_pgpm_and_never_blocks_the_catalog() {
    let db = TestDb::installed();
    let (code, stdout, stderr) = output(
        pgpm()
            .args(["install", &db.conn_string(), "--ddl-log"])
            .assert(),
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("the DDL log is on"), "{stdout}");
    let ws = tempfile::tempdir().unwrap();
    let dir = crate::common::shop(ws.path(), "1.0.0");
    let (code, _, stderr) = output(
        pgpm()
            .arg("deploy")
            .arg(db.conn_string())
            .arg(&dir)
            .assert(),
    );
    assert_eq!(code, 0, "{stderr}");
    // pgpm's own changes are logged as its, and the catalog's not at all.
    let (pgpm_rows, catalog_rows): (i64, i64) = {
        let mut c = db.connect();
        let r = c
            .query_one(
                "SELECT count(*) FILTER (WHERE by_pgpm), count(*) FILTER (WHERE schema_name = '_pgpm')
                   FROM _pgpm.ddl_log",
                &[],
            )
            .unwrap();
        (r.get(0), r.get(1))
    };
    assert!(pgpm_rows > 0);
    assert_eq!(catalog_rows, 0);
    // A fix by hand, from psql.
    let mut hand = db
        .info
        .clone()
        .with("application_name", "psql")
        .connect()
        .unwrap();
    hand.batch_execute(
        "CREATE OR REPLACE FUNCTION shop_1_0_0.api_version() RETURNS text LANGUAGE sql AS $$ SELECT 'patched' $$",
    )
    .unwrap();
    let (code, stdout, stderr) = output(pgpm().args(["status", &db.conn_string()]).assert());
    assert_eq!(code, 0, "{stderr}");
    let said = format!("{stdout}{stderr}");
    assert!(
        said.contains("changed outside pgpm: CREATE FUNCTION shop_1_0_0.api_version() in shop_1_0_0 (shop 1.0.0, by postgres with psql"),
        "{said}"
    );
    // The log never stands in the way of renaming or dropping the catalog.
    db.exec("ALTER SCHEMA _pgpm RENAME TO _pgpm_moved; CREATE TABLE public.t (id int); ALTER SCHEMA _pgpm_moved RENAME TO _pgpm;");
    let (code, stdout, stderr) = output(
        pgpm()
            .args(["install", &db.conn_string(), "--no-ddl-log"])
            .assert(),
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("the DDL log is off"), "{stdout}");
    let triggers: i64 = db.query_scalar("SELECT count(*) FROM pg_event_trigger");
    assert_eq!(triggers, 0);
    db.exec("DROP TABLE public.t");
    let (code, _, stderr) = output(
        pgpm()
            .args(["install", &db.conn_string(), "--ddl-log"])
            .assert(),
    );
    assert_eq!(code, 0, "{stderr}");
    let (code, _, stderr) = output(
        pgpm()
            .args(["uninstall", &db.conn_string(), "--force"])
            .assert(),
    );
    assert_eq!(code, 0, "{stderr}");
    let triggers: i64 = db.query_scalar("SELECT count(*) FROM pg_event_trigger");
    assert_eq!(triggers, 0, "dropped with the catalog");
}

#[test]
fn status_tells_a_schema_changed_since_its_deploy_without_the_ddl_log() {
    let db = TestDb::installed();
    let ws = tempfile::tempdir().unwrap();
    let dir = crate::common::shop(ws.path(), "1.0.0");
    let (code, _, stderr) = output(
        pgpm()
            .arg("deploy")
            .arg(db.conn_string())
            .arg(&dir)
            .assert(),
    );
    assert_eq!(code, 0, "{stderr}");
    let status = || {
        let (code, stdout, stderr) = output(pgpm().args(["status", &db.conn_string()]).assert());
        assert_eq!(code, 0, "{stderr}");
        format!("{stdout}{stderr}")
    };
    assert!(
        !status().contains("is not as its deploy left it"),
        "{}",
        status()
    );
    db.exec("ALTER TABLE shop_1_0_0.orders ADD COLUMN extra int");
    assert!(
        status().contains("shop 1.0.0: schema shop_1_0_0 is not as its deploy left it"),
        "{}",
        status()
    );
    db.exec("ALTER TABLE shop_1_0_0.orders DROP COLUMN extra");
    assert!(
        !status().contains("is not as its deploy left it"),
        "dropped again: as deployed"
    );
    db.exec(
        "CREATE OR REPLACE FUNCTION shop_1_0_0.api_version() RETURNS text LANGUAGE sql AS $$ SELECT 'patched' $$",
    );
    assert!(status().contains("is not as its deploy left it"));
    // A redeploy records what it leaves.
    let (code, _, stderr) = output(
        pgpm()
            .arg("deploy")
            .arg(db.conn_string())
            .arg(&dir)
            .args(["--mode", "unsafe", "--force"])
            .assert(),
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(
        !status().contains("is not as its deploy left it"),
        "{}",
        status()
    );
}
