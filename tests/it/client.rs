//! The client API against a real server: `_pgpm.set_search_path` (catalog
//! step 4) and `pgpm::client`. Deployed packages are simulated with catalog
//! rows and empty schemas.

use std::time::{Duration, Instant};

use crate::common::{TestDb, pgpm};
use pgpm_client::{self as client, ClientError, DeployListener, ListenerEvent};
use postgres::Client;

/// A database with the catalog and one deployment row to hang packages on.
fn catalog_db() -> TestDb {
    let db = TestDb::installed();
    db.exec("INSERT INTO _pgpm.deployments (pgpm_version) VALUES ('test')");
    db
}

/// Registers a deployed package version (creating its schema) and its
/// dependencies on current versions. Returns its package_id.
fn add(db: &TestDb, name: &str, version: &str, schema: Option<&str>, deps: &[(&str, &str)]) -> i64 {
    let v = semver::Version::parse(version).unwrap();
    let mut c = db.connect();
    if let Some(schema) = schema {
        c.batch_execute(&format!(
            "CREATE SCHEMA IF NOT EXISTS {}",
            pgpm::db::quote::quote_ident(schema)
        ))
        .unwrap();
    }
    let id: i64 = c
        .query_one(
            "INSERT INTO _pgpm.packages (name, version, v_major, v_minor, v_patch, v_pre, subclass, scope, schema_name, checksum, deployment_id)
             VALUES ($1, $2, $3, $4, $5, $6, 'versioned', CASE WHEN $7::text IS NULL THEN 'database' ELSE 'schema' END, $7, 'x', 1)
             RETURNING package_id",
            &[
                &name,
                &version,
                &(v.major as i32),
                &(v.minor as i32),
                &(v.patch as i32),
                &v.pre.as_str(),
                &schema,
            ],
        )
        .unwrap()
        .get(0);
    for (dep, dep_version) in deps {
        let n = c
            .execute(
                "INSERT INTO _pgpm.package_dependencies (package_id, dependency_id, requirement)
                 SELECT $1, package_id, '*' FROM _pgpm.packages
                  WHERE name = $2 AND version = $3 AND old_rev IS NULL AND removed_at IS NULL",
                &[&id, dep, dep_version],
            )
            .unwrap();
        assert_eq!(n, 1, "{dep} {dep_version}");
    }
    id
}

/// billing 1.3.0, 1.4.0, 1.4.2 and 2.0.0-rc.1, each depending on core 1.0.0.
fn billing_db() -> TestDb {
    let db = catalog_db();
    add(&db, "core", "1.0.0", Some("core_1_0_0"), &[]);
    for v in ["1.3.0", "1.4.0", "1.4.2", "2.0.0-rc.1"] {
        let schema = format!("billing_{}", v.replace(['.', '-'], "_"));
        add(&db, "billing", v, Some(&schema), &[("core", "1.0.0")]);
    }
    db
}

fn search_path(c: &mut Client) -> String {
    c.query_one("SHOW search_path", &[]).unwrap().get(0)
}

#[test]
fn picks_the_highest_version_that_satisfies_the_requirement() {
    let db = billing_db();
    let mut c = db.connect();
    let cases = [
        ("^1.4", "1.4.2"),
        ("1.3", "1.4.2"), // a bare version is a caret requirement
        ("~1.4.0", "1.4.2"),
        ("~1.3", "1.3.0"),
        ("=1.4.0", "1.4.0"),
        (">=1.2, <1.4", "1.3.0"),
        ("<1.4.2", "1.4.0"),
        ("1.4.*", "1.4.2"),
        ("1.*", "1.4.2"),
        ("*", "1.4.2"), // a pre-release only when asked for
        (">=1", "1.4.2"),
        (">=2.0.0-rc.1", "2.0.0-rc.1"),
        ("^2.0.0-alpha", "2.0.0-rc.1"),
        ("=2.0.0-rc.1", "2.0.0-rc.1"),
        // The ancestor's forms.
        ("01_04_xx", "1.4.2"),
        ("1_3_x", "1.3.0"),
        ("01_04_00", "1.4.0"),
        (">01_03_00", "1.4.2"),
        ("<01_04_02", "1.4.0"),
        ("01_xx_xx", "1.4.2"),
        ("x", "1.4.2"),
        ("  ^1.3  ", "1.4.2"),
    ];
    for (requirement, expected) in cases {
        let found = client::find_version(&mut c, "billing", requirement)
            .unwrap_or_else(|e| panic!("{requirement}: {e}"));
        assert_eq!(found.version.to_string(), expected, "{requirement}");
        assert_eq!(found.package, "billing");
        let schema = format!("billing_{}", expected.replace(['.', '-'], "_"));
        assert_eq!(found.schema.as_deref(), Some(schema.as_str()));
    }
    // find_version changes nothing; select_version sets the path.
    assert_eq!(search_path(&mut c), "\"$user\", public");
    let api = client::select_version(&mut c, "billing", "1_3_x").unwrap();
    assert_eq!(api.version, semver::Version::new(1, 3, 0));
    assert_eq!(api.search_path, "billing_1_3_0, core_1_0_0, public");
    assert_eq!(search_path(&mut c), api.search_path);
    // Selecting again switches.
    client::select_version(&mut c, "billing", ">=2.0.0-rc.1").unwrap();
    assert_eq!(
        search_path(&mut c),
        "billing_2_0_0_rc_1, core_1_0_0, public"
    );
}

#[test]
fn the_sql_function_returns_json_and_outlives_the_call() {
    let db = billing_db();
    let mut c = db.connect();
    let json: serde_json::Value = c
        .query_one("SELECT _pgpm.set_search_path('billing', '^1.4')", &[])
        .unwrap()
        .get(0);
    assert_eq!(
        json,
        serde_json::json!({
            "package": "billing",
            "version": "1.4.2",
            "schema": "billing_1_4_2",
            "search_path": "billing_1_4_2, core_1_0_0, public",
            // The ancestor's keys, which its clients read.
            "pkg_id": json["pkg_id"],
            "pkg_name": "billing",
            "pkg_v_major": 1,
            "pkg_v_minor": 4,
            "pkg_v_patch": 2,
        })
    );
    assert!(json["pkg_id"].is_i64());
    // The ancestor's argument names, and its _find_schema.
    let named: serde_json::Value = c
        .query_one(
            "SELECT _pgpm.set_search_path(p_schema_name => 'billing', p_v_req => '01_04_xx')",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(named["schema"], "billing_1_4_2");
    let found: String = c
        .query_one(
            "SELECT (s).pkg_name || ' ' || (s).pkg_v_major || '_' || (s).pkg_v_minor || '_' || (s).pkg_v_patch
               FROM _pgpm._find_schema('billing', 'x') AS s",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(found, "billing 1_4_2");
    // Session-level, so it holds in the next statements and transactions.
    assert_eq!(search_path(&mut c), "billing_1_4_2, core_1_0_0, public");
    let schemas: Vec<String> = c
        .query_one("SELECT current_schemas(false)::text[]", &[])
        .unwrap()
        .get(0);
    assert_eq!(schemas, ["billing_1_4_2", "core_1_0_0", "public"]);
    // A rollback undoes it, as any set_config.
    let mut tx = c.transaction().unwrap();
    client::select_version(&mut tx, "billing", "~1.3").unwrap();
    tx.rollback().unwrap();
    assert_eq!(search_path(&mut c), "billing_1_4_2, core_1_0_0, public");
}

#[test]
fn renamed_old_revisions_and_removed_versions_are_never_selected() {
    let db = billing_db();
    add(&db, "billing", "1.4.5", Some("billing_1_4_5_0"), &[]);
    add(&db, "billing", "1.4.9", Some("billing_1_4_9"), &[]);
    db.exec(
        "UPDATE _pgpm.packages SET old_rev = 0 WHERE name = 'billing' AND version = '1.4.5';
         UPDATE _pgpm.packages SET removed_at = now() WHERE name = 'billing' AND version = '1.4.9';",
    );
    let mut c = db.connect();
    let found = client::find_version(&mut c, "billing", "^1.4").unwrap();
    assert_eq!(found.version.to_string(), "1.4.2");
    let err = client::find_version(&mut c, "billing", "=1.4.5").unwrap_err();
    match err {
        ClientError::NoMatch { available, .. } => {
            assert_eq!(available, ["2.0.0-rc.1", "1.4.2", "1.4.0", "1.3.0"]);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_path_has_the_schema_then_its_dependencies_then_public() {
    let db = catalog_db();
    add(&db, "core", "1.0.0", Some("core_1_0_0"), &[]);
    add(&db, "core", "2.0.0", Some("core_2_0_0"), &[]);
    add(&db, "zeta", "0.3.0", Some("Zeta \"odd\" 0.3"), &[]);
    add(&db, "audit", "1.0.0", None, &[]); // scope database: no schema
    add(
        &db,
        "billing",
        "1.4.2",
        Some("billing_1_4_2"),
        &[("zeta", "0.3.0"), ("core", "1.0.0"), ("audit", "1.0.0")],
    );
    db.exec(
        "CREATE FUNCTION core_1_0_0.which_core() RETURNS text LANGUAGE sql AS $$ SELECT 'core 1.0.0' $$;
         CREATE FUNCTION core_2_0_0.which_core() RETURNS text LANGUAGE sql AS $$ SELECT 'core 2.0.0' $$;",
    );
    let mut c = db.connect();
    let api = client::select_version(&mut c, "billing", "^1").unwrap();
    // Dependencies by package name, each the exact version recorded at
    // deploy time (core 1.0.0 although 2.0.0 exists), quoted as needed.
    assert_eq!(
        api.search_path,
        "billing_1_4_2, core_1_0_0, \"Zeta \"\"odd\"\" 0.3\", public"
    );
    assert_eq!(search_path(&mut c), api.search_path);
    let schemas: Vec<String> = c
        .query_one("SELECT current_schemas(false)::text[]", &[])
        .unwrap()
        .get(0);
    assert_eq!(
        schemas,
        ["billing_1_4_2", "core_1_0_0", "Zeta \"odd\" 0.3", "public"]
    );
    let which: String = c.query_one("SELECT which_core()", &[]).unwrap().get(0);
    assert_eq!(which, "core 1.0.0");

    // A database-scope package has no schema of its own.
    let api = client::select_version(&mut c, "audit", "*").unwrap();
    assert_eq!(api.schema, None);
    assert_eq!(api.search_path, "public");
}

#[test]
fn no_match_has_its_own_sqlstate_and_lists_the_versions() {
    let db = billing_db();
    let mut c = db.connect();
    let err = c
        .query_one("SELECT _pgpm.set_search_path('billing', '^3')", &[])
        .unwrap_err();
    let db_err = err.as_db_error().unwrap();
    assert_eq!(db_err.code().code(), "PGPM1");
    assert_eq!(
        db_err.message(),
        "no deployed version of package \"billing\" satisfies \"^3\"; versions that exist: 2.0.0-rc.1, 1.4.2, 1.4.0, 1.3.0"
    );

    let err = client::select_version(&mut c, "billing", "^1.5").unwrap_err();
    assert!(err.is_user_error());
    assert_eq!(
        err.to_string(),
        "no deployed version of package \"billing\" satisfies \"^1.5\"; versions that exist: 2.0.0-rc.1, 1.4.2, 1.4.0, 1.3.0"
    );
    match client::select_version(&mut c, "nothing", "*").unwrap_err() {
        ClientError::NoMatch {
            package, available, ..
        } => {
            assert_eq!(package, "nothing");
            assert!(available.is_empty());
        }
        other => panic!("{other:?}"),
    }
    // A failed selection leaves the path alone.
    assert_eq!(search_path(&mut c), "\"$user\", public");

    let err = c
        .query_one("SELECT _pgpm.set_search_path('billing', '>=1.4 <2')", &[])
        .unwrap_err();
    assert_eq!(err.as_db_error().unwrap().code().code(), "PGPM2");
    match client::select_version(&mut c, "billing", "01.4").unwrap_err() {
        ClientError::BadRequirement {
            requirement,
            reason,
        } => {
            assert_eq!(requirement, "01.4");
            assert!(reason.contains("leading zero"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_role_granted_usage_can_select_and_others_cannot() {
    let db = billing_db();
    let app = format!("{}_app", db.name);
    let stranger = format!("{}_stranger", db.name);
    db.exec(&format!(
        "CREATE ROLE {app} LOGIN; CREATE ROLE {stranger} LOGIN;"
    ));
    pgpm()
        .arg("install")
        .arg(db.conn_string())
        .args(["--usage", &app])
        .assert()
        .success();
    db.exec(&format!(
        "GRANT USAGE ON SCHEMA billing_1_4_2, core_1_0_0 TO {app};
         CREATE FUNCTION core_1_0_0.hello() RETURNS text LANGUAGE sql AS $$ SELECT 'hello' $$;"
    ));

    let mut c = db.info.clone().with("user", app.clone()).connect().unwrap();
    let superuser: bool = c
        .query_one(
            "SELECT rolsuper FROM pg_roles WHERE rolname = current_user",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(!superuser);
    let api = client::select_version(&mut c, "billing", "^1.4").unwrap();
    assert_eq!(api.version.to_string(), "1.4.2");
    assert_eq!(search_path(&mut c), "billing_1_4_2, core_1_0_0, public");
    let hello: String = c.query_one("SELECT hello()", &[]).unwrap().get(0);
    assert_eq!(hello, "hello");

    let mut c = db
        .info
        .clone()
        .with("user", stranger.clone())
        .connect()
        .unwrap();
    let err = client::select_version(&mut c, "billing", "^1.4").unwrap_err();
    assert!(matches!(err, ClientError::NotPermitted { .. }), "{err:?}");
}

#[test]
fn privileges_and_a_hostile_search_path() {
    let db = billing_db();
    let mut c = db.connect();
    // The privileged part is SECURITY DEFINER with a pinned path; the part
    // that sets the caller's path runs as the caller and has no SET clause.
    let rows = c
        .query(
            "SELECT proname::text, prosecdef, coalesce(array_to_string(proconfig, ','), '')
               FROM pg_proc WHERE pronamespace = '_pgpm'::regnamespace
                AND proname IN ('api_version', 'set_search_path') ORDER BY 1",
            &[],
        )
        .unwrap();
    let got: Vec<(String, bool, String)> = rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(
        got,
        [
            (
                "api_version".into(),
                true,
                "search_path=pg_catalog, pg_temp".into()
            ),
            // Both forms: (package, requirement) and (..., listen).
            ("set_search_path".into(), false, String::new()),
            ("set_search_path".into(), false, String::new()),
        ]
    );
    let public_execute: bool = c
        .query_one(
            "SELECT has_function_privilege('public', '_pgpm.api_version(text, text)', 'EXECUTE')
                 OR has_function_privilege('public', '_pgpm.set_search_path(text, text)', 'EXECUTE')
                 OR has_function_privilege('public', '_pgpm.set_search_path(text, text, boolean)', 'EXECUTE')",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(!public_execute);

    // Look-alikes of what the invoker function uses, ahead of pg_catalog in
    // the caller's path, change nothing.
    c.batch_execute(
        "CREATE SCHEMA evil;
         CREATE FUNCTION evil.set_config(text, text, boolean) RETURNS text LANGUAGE plpgsql
             AS $$ BEGIN RAISE EXCEPTION 'hijacked set_config'; END $$;
         CREATE FUNCTION evil.format(text, text) RETURNS text LANGUAGE plpgsql
             AS $$ BEGIN RAISE EXCEPTION 'hijacked format'; END $$;
         CREATE FUNCTION evil.arrow(json, text) RETURNS text LANGUAGE plpgsql
             AS $$ BEGIN RAISE EXCEPTION 'hijacked ->>'; END $$;
         CREATE OPERATOR evil.->> (LEFTARG = json, RIGHTARG = text, FUNCTION = evil.arrow);
         CREATE FUNCTION evil.textcat(text, text) RETURNS text LANGUAGE plpgsql
             AS $$ BEGIN RAISE EXCEPTION 'hijacked ||'; END $$;
         CREATE OPERATOR evil.|| (LEFTARG = text, RIGHTARG = text, FUNCTION = evil.textcat);
         CREATE TYPE evil.json AS (x int);
         SET search_path = evil, pg_catalog;",
    )
    .unwrap();
    let api = client::select_version(&mut c, "billing", "^1.4").unwrap();
    assert_eq!(api.version.to_string(), "1.4.2");
    assert_eq!(search_path(&mut c), "billing_1_4_2, core_1_0_0, public");
}

/// A connection's notifications until one deploy event arrives: what
/// `take_pending` has, then, while no deploy event is among them, the next
/// notification as it arrives (the server delivers them asynchronously).
fn wait_for_events(c: &mut Client) -> client::Pending {
    use postgres::fallible_iterator::FallibleIterator;
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut all = client::take_pending(c).unwrap();
    while all.events.is_empty() {
        let remaining = deadline.saturating_duration_since(Instant::now());
        let n = c.notifications().timeout_iter(remaining).next().unwrap();
        let n = n.expect("a deploy event arrives");
        match client::is_pgpm_channel(n.channel())
            .then(|| client::DeployEvent::parse(n.channel(), n.payload()).ok())
            .flatten()
        {
            Some(event) => all.events.push(event),
            None => all.other.push(n),
        }
    }
    all
}

#[test]
fn a_selecting_connection_hears_deploys_of_its_package() {
    let db = billing_db();
    let mut app = db.connect();
    client::select_version(&mut app, "billing", "^1.4").unwrap();
    app.batch_execute("LISTEN app_channel").unwrap();

    // A deploy of another package, then the application's own channel, then billing.
    let mut deployer = db.connect();
    deployer
        .batch_execute(
            r#"SELECT pg_notify('deployment_events$$shop', '{"package":"shop","version":"1.0.0","schema":"shop_1_0_0","mode":"safe"}');
               SELECT pg_notify('app_channel', 'hello');
               SELECT pg_notify('pgpm_deploy', '{"package":"billing","version":"1.5.0","schema":"billing_1_5_0","mode":"safe"}'),
                      pg_notify('deployment_events$$billing', '{"package":"billing","version":"1.5.0","schema":"billing_1_5_0","mode":"safe"}');"#,
        )
        .unwrap();
    let pending = wait_for_events(&mut app);
    assert_eq!(pending.events.len(), 1, "{:?}", pending.events);
    let event = &pending.events[0];
    assert_eq!(event.channel, "deployment_events$$billing");
    assert_eq!(event.package, "billing");
    assert_eq!(event.version, semver::Version::new(1, 5, 0));
    assert_eq!(event.schema.as_deref(), Some("billing_1_5_0"));
    assert_eq!(event.mode.as_deref(), Some("safe"));
    let other: Vec<(&str, &str)> = pending
        .other
        .iter()
        .map(|n| (n.channel(), n.payload()))
        .collect();
    assert_eq!(other, [("app_channel", "hello")]);
}

#[test]
fn the_listener_yields_deploy_events_and_survives_a_lost_connection() {
    let db = billing_db();
    let mut listener = listener(&db, &[]).unwrap();
    assert_eq!(listener.channels(), ["pgpm_deploy"]);
    let mut c = db.connect();
    let version = client::server_version_num(&mut c).unwrap();
    let shown: String = c.query_one("SHOW server_version_num", &[]).unwrap().get(0);
    assert_eq!(version.to_string(), shown);
    assert_eq!(listener.server_version_num(), version);

    // Nothing yet: the wait is bounded.
    let started = Instant::now();
    assert_eq!(listener.next(Duration::from_millis(200)).unwrap(), None);
    assert!(started.elapsed() >= Duration::from_millis(150));

    c.batch_execute(
        r#"SELECT pg_notify('pgpm_deploy', 'not json');
           SELECT pg_notify('pgpm_deploy', '{"package":"billing","version":"1.5.0","schema":"billing_1_5_0","mode":"moderate"}');"#,
    )
    .unwrap();
    let err = listener.next(Duration::from_secs(10)).unwrap_err();
    assert!(matches!(err, ClientError::BadEvent { .. }), "{err:?}");
    match listener.next(Duration::from_secs(10)).unwrap() {
        Some(ListenerEvent::Deployed(e)) => {
            assert_eq!(
                (e.package.as_str(), e.version.to_string(), e.mode.as_deref()),
                ("billing", "1.5.0".to_string(), Some("moderate"))
            );
        }
        other => panic!("{other:?}"),
    }

    // The server drops the listener's connection: it comes back.
    let killed: i64 = c
        .query_one(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
              WHERE application_name = 'pgpm-listener' AND datname = current_database()",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(killed, 1);
    let event = listener.next(Duration::from_secs(10)).unwrap();
    assert_eq!(
        event,
        Some(ListenerEvent::Reconnected {
            previous_server_version_num: version,
            server_version_num: version
        })
    );
    assert!(!event.unwrap().server_changed());
    c.batch_execute(
        r#"SELECT pg_notify('pgpm_deploy', '{"package":"core","version":"1.1.0","schema":"core_1_1_0","mode":"safe"}')"#,
    )
    .unwrap();
    match listener.events().next() {
        Some(Ok(ListenerEvent::Deployed(e))) => assert_eq!(e.package, "core"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_package_listener_hears_only_its_packages() {
    let db = billing_db();
    let mut listener = listener(&db, &["billing"]).unwrap();
    assert_eq!(listener.channels(), ["deployment_events$$billing"]);
    db.exec(
        r#"SELECT pg_notify('pgpm_deploy', '{"package":"shop","version":"1.0.0","schema":"shop_1_0_0","mode":"safe"}');
           SELECT pg_notify('deployment_events$$shop', '{"package":"shop","version":"1.0.0","schema":"shop_1_0_0","mode":"safe"}');
           SELECT pg_notify('deployment_events$$billing', '{"package":"billing","version":"1.4.3","schema":"billing_1_4_3","mode":"safe"}');"#,
    );
    match listener.next(Duration::from_secs(10)).unwrap() {
        Some(ListenerEvent::Deployed(e)) => {
            assert_eq!(e.channel, "deployment_events$$billing");
            assert_eq!(e.version.to_string(), "1.4.3");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(listener.next(Duration::from_millis(100)).unwrap(), None);
}

#[test]
fn a_database_without_the_client_api_says_so() {
    let db = TestDb::new();
    let mut c = db.connect();
    let err = client::select_version(&mut c, "billing", "^1").unwrap_err();
    assert!(matches!(err, ClientError::NoCatalog { .. }), "{err:?}");
    assert!(err.to_string().contains("pgpm install"), "{err}");
    // It is the user's to fix.
    assert!(err.is_user_error());
}

/// A listener on the test database, reconnecting through pgpm's own
/// connection code, as an application would with its own.
fn listener(db: &TestDb, packages: &[&str]) -> Result<DeployListener, ClientError> {
    let info = db.info.clone().with("application_name", "pgpm-listener");
    DeployListener::new(move || info.connect(), packages)
}
