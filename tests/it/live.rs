//! Live clients through redeploys: old revisions keep working, sessions
//! keep the revision they selected, selecting without LISTEN, and hot
//! standbys.

use std::path::{Path, PathBuf};

use crate::common::{TestDb, output, package, pgpm};

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

fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("packages-example")
}

/// An invoice of one discounted line, made by `schema`'s `make_invoice`,
/// as text.
fn invoice(client: &mut postgres::Client, schema: &str) -> Result<String, postgres::Error> {
    let sql = format!(
        "SELECT {s}.make_invoice('INV-1', 'Ann@Example.com', 'DE', '2025-03-01',
                ARRAY[ROW('tea', 2, ROW(1000, 'EUR')::{s}.money_amount, 10)::{s}.invoice_line])::text",
        s = schema
    );
    Ok(client.query_one(&sql, &[])?.get(0))
}

#[test]
fn a_moderate_redeploy_leaves_the_renamed_revision_working() {
    let db = TestDb::installed();
    let example = example();
    let conn = db.conn_string();
    if !crate::common::runs_the_example(&["deploy", &conn, example.to_str().unwrap()]) {
        return;
    }
    let (code, _, stderr) = deploy(&db, &example, &[]);
    assert_eq!(code, 0, "{stderr}");
    let mut client = db.connect();
    let before = invoice(&mut client, "billing_1_4_0").unwrap();

    let (code, stdout, stderr) = deploy(&db, &example, &["--mode", "moderate", "--force"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stderr.contains("kept as old revision billing_1_4_0_0"),
        "{stderr}"
    );
    // The old revision answers under its new name, computing with its own
    // functions (their pinned search_path followed the rename).
    assert_eq!(invoice(&mut client, "billing_1_4_0_0").unwrap(), before);
    assert_eq!(invoice(&mut client, "billing_1_4_0").unwrap(), before);
    let pinned: String = db.query_scalar(
        "SELECT array_to_string(proconfig, ' ') FROM pg_proc
          WHERE proname = 'make_invoice' AND pronamespace = 'billing_1_4_0_0'::regnamespace",
    );
    assert!(pinned.contains("billing_1_4_0_0"), "{pinned}");
}

/// `lib` 1.0.0 (`rate()` is 7) and `app` 1.0.0, whose `price()` pins the
/// search_path it was deployed with and calls `rate()`.
fn lib_and_app(root: &Path) -> (PathBuf, PathBuf) {
    let lib = package(
        root,
        "lib",
        serde_json::json!({"name": "lib", "version": "1.0.0", "subclass": "versioned", "functions_path": "f"}),
        &[(
            "f/rate.sql",
            "CREATE FUNCTION rate() RETURNS int LANGUAGE sql AS $$ SELECT 7 $$;",
        )],
    );
    let app = package(
        root,
        "app",
        serde_json::json!({"name": "app", "version": "1.0.0", "subclass": "versioned",
                           "functions_path": "f", "dependencies": {"lib": "^1"}}),
        &[(
            "f/price.sql",
            "CREATE FUNCTION price() RETURNS int LANGUAGE plpgsql SET search_path FROM CURRENT
               AS $$ BEGIN RETURN rate() * 2; END $$;",
        )],
    );
    (lib, app)
}

#[test]
fn dependents_of_a_renamed_revision_keep_working_with_it() {
    let db = TestDb::installed();
    let ws = tempfile::tempdir().unwrap();
    let (lib, app) = lib_and_app(ws.path());
    let (code, _, stderr) = deploy(&db, ws.path(), &[]);
    assert_eq!(code, 0, "{stderr}");
    // lib changes; only lib is redeployed, in moderate mode.
    std::fs::write(
        lib.join("f/rate.sql"),
        "CREATE FUNCTION rate() RETURNS int LANGUAGE sql AS $$ SELECT 8 $$;",
    )
    .unwrap();
    let (code, _, stderr) = deploy(&db, &lib, &["--mode", "moderate"]);
    assert_eq!(code, 0, "{stderr}");
    // app was deployed against the revision now named lib_1_0_0_0, and
    // stays on it until app is redeployed.
    let mut client = db.connect();
    let price: i32 = client
        .query_one("SELECT app_1_0_0.price()", &[])
        .unwrap()
        .get(0);
    assert_eq!(price, 14);
    let path: String = client
        .query_one(
            "SELECT _pgpm.set_search_path('app', '^1') ->> 'search_path'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(path, "app_1_0_0, lib_1_0_0_0, public");
    let (code, _, stderr) = deploy(&db, &app, &["--mode", "moderate", "--force"]);
    assert_eq!(code, 0, "{stderr}");
    let price: i32 = client
        .query_one("SELECT app_1_0_0.price()", &[])
        .unwrap()
        .get(0);
    assert_eq!(price, 16);
}

fn versioned_api(root: &Path, answer: i32) -> PathBuf {
    package(
        root,
        "api",
        serde_json::json!({"name": "api", "version": "1.0.0", "subclass": "versioned",
                           "types_path": "t", "functions_path": "f"}),
        &[
            (
                "t/reply.sql",
                "CREATE TYPE reply AS (answer int, revision text);",
            ),
            (
                "f/ask.sql",
                &format!(
                    "CREATE FUNCTION ask() RETURNS reply LANGUAGE sql
                       AS $$ SELECT ROW({answer}, current_schema())::reply $$;"
                ),
            ),
        ],
    )
}

#[test]
fn revision_mode_deploys_beside_the_current_revision_and_sessions_keep_theirs() {
    let db = TestDb::installed();
    let ws = tempfile::tempdir().unwrap();
    let dir = versioned_api(ws.path(), 1);
    let (code, stdout, stderr) = deploy(&db, &dir, &["--mode", "revision"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("deployed api 1.0.0 -> api_1_0_0"),
        "{stdout}"
    );

    // A session selects ^1 and uses it in a transaction.
    let mut old = db.connect();
    let chosen: String = old
        .query_one(
            "SELECT _pgpm.set_search_path('api', '^1', false) ->> 'schema'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(chosen, "api_1_0_0");
    let ask = old.prepare("SELECT (ask()).answer").unwrap();

    versioned_api(ws.path(), 2);
    let (code, stdout, stderr) = deploy(&db, &dir, &["--mode", "revision"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stdout.contains("deployed api 1.0.0 -> api_1_0_0_r1"),
        "{stdout}"
    );
    assert!(stderr.contains("api_1_0_0 stays as it is"), "{stderr}");

    // The old session's prepared statement and search_path still work on
    // the revision it chose; nothing of it was renamed or dropped.
    let answer: i32 = old.query_one(&ask, &[]).unwrap().get(0);
    assert_eq!(answer, 1);
    // A new selection gets the new revision.
    let mut new = db.connect();
    let chosen: String = new
        .query_one(
            "SELECT _pgpm.set_search_path('api', '^1', false) ->> 'schema'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(chosen, "api_1_0_0_r1");
    let answer: i32 = new.query_one("SELECT (ask()).answer", &[]).unwrap().get(0);
    assert_eq!(answer, 2);

    // Unchanged content is up to date; a third revision gets the next name.
    let (code, stdout, _) = deploy(&db, &dir, &["--mode", "revision"]);
    assert_eq!(code, 0);
    assert!(stdout.contains("api 1.0.0 is up to date"), "{stdout}");
    versioned_api(ws.path(), 3);
    let (code, stdout, stderr) = deploy(&db, &dir, &["--mode", "revision"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("-> api_1_0_0_r2"), "{stdout}");
    let revisions: String = db.query_scalar(
        "SELECT string_agg(schema_name || ':' || coalesce(old_rev::text, 'current'), ' ' ORDER BY package_id)
           FROM _pgpm.packages WHERE removed_at IS NULL",
    );
    assert_eq!(revisions, "api_1_0_0:0 api_1_0_0_r1:1 api_1_0_0_r2:current");
    // An old revision is removed by its number, as after moderate, but not
    // while a session is on it.
    let remove = || {
        output(
            pgpm()
                .args([
                    "remove",
                    &db.conn_string(),
                    "api",
                    "1.0.0",
                    "--old-rev",
                    "0",
                ])
                .assert(),
        )
    };
    let old_pid: i32 = old
        .query_one("SELECT pg_backend_pid()", &[])
        .unwrap()
        .get(0);
    let (code, _, stderr) = remove();
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("schema api_1_0_0 is in use by")
            && stderr.contains(&format!("pid {old_pid}")),
        "{stderr}"
    );
    crate::common::close_and_wait(&db, old);
    let mut listener = db.connect();
    listener.batch_execute("LISTEN pgpm_deploy").unwrap();
    let (code, _, stderr) = remove();
    assert_eq!(code, 0, "{stderr}");
    let heard = pgpm_client::take_pending(&mut listener).unwrap().events;
    assert_eq!(heard.len(), 1, "{heard:?}");
    assert_eq!(heard[0].mode.as_deref(), Some("remove"));
    assert_eq!(heard[0].schema.as_deref(), Some("api_1_0_0"));
    let left: String = db.query_scalar(
        "SELECT string_agg(nspname, ' ' ORDER BY nspname) FROM pg_namespace WHERE nspname LIKE 'api%'",
    );
    assert_eq!(left, "api_1_0_0_r1 api_1_0_0_r2");
}

#[test]
fn dependents_resolve_to_the_revision_current_when_they_were_deployed() {
    let db = TestDb::installed();
    let ws = tempfile::tempdir().unwrap();
    let api = versioned_api(ws.path(), 1);
    let app = package(
        ws.path(),
        "app",
        serde_json::json!({"name": "app", "version": "1.0.0", "subclass": "versioned",
                           "functions_path": "f", "dependencies": {"api": "^1"}}),
        &[(
            "f/twice.sql",
            "CREATE FUNCTION twice() RETURNS int LANGUAGE plpgsql SET search_path FROM CURRENT
               AS $$ BEGIN RETURN (ask()).answer * 2; END $$;",
        )],
    );
    let (code, _, stderr) = deploy(&db, ws.path(), &["--mode", "revision"]);
    assert_eq!(code, 0, "{stderr}");
    versioned_api(ws.path(), 5);
    let (code, _, stderr) = deploy(&db, &api, &["--mode", "revision"]);
    assert_eq!(code, 0, "{stderr}");
    let twice: i32 = db.query_scalar("SELECT app_1_0_0.twice()");
    assert_eq!(twice, 2, "app keeps the revision it was deployed with");
    // Redeployed, app resolves to the current revision.
    let (code, stdout, stderr) = deploy(&db, &app, &["--mode", "revision", "--force"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("-> app_1_0_0_r1"), "{stdout}");
    let twice: i32 = db.query_scalar("SELECT app_1_0_0_r1.twice()");
    assert_eq!(twice, 10);
    let path: String =
        db.query_scalar("SELECT _pgpm.set_search_path('app', '^1') ->> 'search_path'");
    assert_eq!(path, "app_1_0_0_r1, api_1_0_0_r1, public");
}

#[test]
fn a_hot_standby_selects_versions_as_the_primary_does_and_refuses_changes() {
    let Some(standby) = crate::common::standby() else {
        return;
    };
    let db = TestDb::installed();
    let ws = tempfile::tempdir().unwrap();
    let dir = versioned_api(ws.path(), 1);
    let (code, _, stderr) = deploy(&db, &dir, &[]);
    assert_eq!(code, 0, "{stderr}");
    let on_primary: serde_json::Value =
        db.query_scalar("SELECT _pgpm.set_search_path('api', '^1')");

    let info = standby.conninfo(&db.name);
    let mut replica = None;
    crate::common::wait_until("the standby to replay the deploy", || {
        replica = replica.take().or_else(|| info.connect().ok());
        replica.as_mut().is_some_and(|c| {
            c.query_one(
                "SELECT count(*) FROM pg_namespace WHERE nspname = 'api_1_0_0'",
                &[],
            )
            .is_ok_and(|r| r.get::<_, i64>(0) == 1)
        })
    });
    let mut replica = replica.unwrap();
    let in_recovery: bool = replica
        .query_one("SELECT pg_is_in_recovery()", &[])
        .unwrap()
        .get(0);
    assert!(in_recovery);
    for call in [
        "SELECT _pgpm.set_search_path('api', '^1')",
        "SELECT _pgpm.set_search_path('api', '^1', true)",
        "SELECT _pgpm.set_search_path('api', '^1', false)",
    ] {
        let got: serde_json::Value = replica.query_one(call, &[]).unwrap().get(0);
        assert_eq!(got, on_primary, "{call}");
        let answer: i32 = replica
            .query_one("SELECT (ask()).answer", &[])
            .unwrap()
            .get(0);
        assert_eq!(answer, 1);
    }

    // Commands that change the database refuse the standby up front.
    let conn = info.to_uri();
    for args in [
        vec![
            "deploy",
            conn.as_str(),
            dir.to_str().unwrap(),
            "--mode",
            "overwrite",
        ],
        vec!["install", conn.as_str(), "--upgrade"],
        vec!["remove", conn.as_str(), "api", "1.0.0"],
    ] {
        let (code, _, stderr) = output(pgpm().args(&args).assert());
        assert_eq!(code, 1, "{args:?}: {stderr}");
        assert!(
            stderr.contains("read-only hot standby") && stderr.contains("primary"),
            "{args:?}: {stderr}"
        );
    }

    // A session on the standby hears of a new revision by polling, and
    // switches to it once the standby has replayed it.
    let poll_info = info.clone();
    let watch = pgpm_client::Watch::poll(
        move || poll_info.connect(),
        std::time::Duration::from_millis(50),
    )
    .unwrap();
    let mut session =
        pgpm_client::Session::new(info.connect().unwrap(), "api", "^1", &watch).unwrap();
    let ask = |w: &mut pgpm_client::Work<'_>| -> Result<i32, postgres::Error> {
        Ok(w.query_one("SELECT (ask()).answer", &[])?.get(0))
    };
    assert_eq!(session.transaction(ask).unwrap(), 1);
    let before = watch.generation();
    versioned_api(ws.path(), 2);
    let (code, _, stderr) = deploy(&db, &dir, &["--mode", "revision"]);
    assert_eq!(code, 0, "{stderr}");
    crate::common::wait_until("the standby's watch to see the deploy", || {
        watch.generation() > before
    });
    assert_eq!(session.transaction(ask).unwrap(), 2);
    assert_eq!(session.api().schema.as_deref(), Some("api_1_0_0_r1"));
}

#[test]
fn a_blocker_idle_in_transaction_makes_deploy_give_up_without_stalling_clients() {
    let db = TestDb::installed();
    let ws = tempfile::tempdir().unwrap();
    let dir = crate::common::shop(ws.path(), "1.0.0");
    let (code, _, stderr) = deploy(&db, &dir, &[]);
    assert_eq!(code, 0, "{stderr}");
    let state = || -> String {
        db.query_scalar(
            "SELECT concat_ws(' | ',
                (SELECT string_agg(nspname || ':' || oid, ',' ORDER BY nspname) FROM pg_namespace WHERE nspname LIKE 'shop%'),
                (SELECT string_agg(p::text, ',' ORDER BY package_id) FROM _pgpm.packages p),
                (SELECT count(*)::text FROM _pgpm.deployments))",
        )
    };
    let before = state();

    // A session read the view and sits idle in its transaction.
    let mut blocker = db.connect();
    blocker
        .batch_execute("BEGIN; SELECT * FROM shop_1_0_0.order_count;")
        .unwrap();
    let blocker_pid: i32 = blocker
        .query_one("SELECT pg_backend_pid()", &[])
        .unwrap()
        .get(0);

    // Clients keep reading the view meanwhile; a read queued behind the
    // deploy's lock request must not wait more than a moment, so they
    // give up after 3 s (ten times pgpm's lock timeout).
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let mut c = db.connect();
            let stop = stop.clone();
            std::thread::spawn(move || {
                c.batch_execute("SET lock_timeout = '3s'").unwrap();
                let mut calls = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    c.query_one("SELECT n FROM shop_1_0_0.order_count", &[])
                        .expect("a client call");
                    calls += 1;
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
                calls
            })
        })
        .collect();

    let (code, stdout, stderr) = deploy(
        &db,
        &dir,
        &[
            "--mode",
            "unsafe",
            "--force",
            "--object-lock-timeout",
            "0.3",
            "--object-lock-retries",
            "2",
        ],
    );
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for c in clients {
        assert!(c.join().expect("no client call failed") > 0);
    }
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert_eq!(
        stderr.matches("running again (retry").count(),
        2,
        "{stderr}"
    );
    assert!(stderr.contains("on each of 3 attempts"), "{stderr}");
    assert!(
        stderr.contains(&format!("held by pid {blocker_pid} ("))
            && stderr.contains("idle in transaction"),
        "{stderr}"
    );
    assert!(stderr.contains("nothing was changed"), "{stderr}");
    assert_eq!(state(), before);

    // Once the blocker is gone, the same deploy goes through.
    blocker.batch_execute("COMMIT").unwrap();
    let (code, _, stderr) = deploy(&db, &dir, &["--mode", "unsafe", "--force"]);
    assert_eq!(code, 0, "{stderr}");
}

#[test]
fn a_patch_waiting_for_a_lock_rolls_back_and_gives_up_after_its_retries() {
    let db = TestDb::installed();
    db.exec("CREATE TABLE accounts (id int PRIMARY KEY)");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("patch-1-0-0-std.sql"),
        "ALTER TABLE accounts ADD COLUMN note text;\n",
    )
    .unwrap();
    let mut blocker = db.connect();
    blocker
        .batch_execute("BEGIN; SELECT count(*) FROM accounts;")
        .unwrap();
    let migrate = || {
        output(
            pgpm()
                .arg("migrate")
                .arg(db.conn_string())
                .arg(dir.path())
                .args(["--object-lock-timeout", "0.2", "--object-lock-retries", "1"])
                .assert(),
        )
    };
    let (code, stdout, stderr) = migrate();
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(stderr.contains("patch-1-0-0-std.sql:1:1"), "{stderr}");
    assert!(stderr.contains("retry 1 of 1"), "{stderr}");
    assert!(stderr.contains("on each of 2 attempts"), "{stderr}");
    assert!(stderr.contains("idle in transaction"), "{stderr}");
    let applied: i64 = db.query_scalar("SELECT count(*) FROM _pgpm.migrations");
    assert_eq!(applied, 0);
    blocker.batch_execute("COMMIT").unwrap();
    let (code, stdout, stderr) = migrate();
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("applied patch-1-0-0-std.sql"), "{stdout}");
}

#[test]
fn a_session_switches_to_a_new_revision_between_transactions_never_inside_one() {
    let db = TestDb::installed();
    let ws = tempfile::tempdir().unwrap();
    let dir = versioned_api(ws.path(), 1);
    let (code, _, stderr) = deploy(&db, &dir, &["--mode", "revision"]);
    assert_eq!(code, 0, "{stderr}");
    let info = db.info.clone();
    let watch = pgpm_client::Watch::listen(move || info.connect(), &["api"]).unwrap();
    let mut session = pgpm_client::Session::new(db.connect(), "api", "^1", &watch).unwrap();
    let ask = "SELECT (ask()).answer, (ask()).revision";
    let answer = |w: &mut pgpm_client::Work<'_>| -> Result<(i32, String), postgres::Error> {
        let row = w.query_one(ask, &[])?;
        Ok((row.get(0), row.get(1)))
    };
    assert_eq!(
        session.transaction(answer).unwrap(),
        (1, "api_1_0_0".into())
    );
    // The session does not LISTEN itself: the watch does.
    let channels: i64 = session
        .client()
        .query_one("SELECT count(*) FROM pg_listening_channels()", &[])
        .unwrap()
        .get(0);
    assert_eq!(channels, 0);

    // A redeploy lands in the middle of a transaction, which finishes on
    // the revision it began with.
    let before = watch.generation();
    let inside = session
        .transaction(|w| {
            let first = answer(w)?;
            versioned_api(ws.path(), 2);
            let (code, _, stderr) = deploy(&db, &dir, &["--mode", "revision"]);
            assert_eq!(code, 0, "{stderr}");
            let second = answer(w)?;
            Ok((first, second))
        })
        .unwrap();
    assert_eq!(inside.0, (1, "api_1_0_0".into()));
    assert_eq!(inside.1, (1, "api_1_0_0".into()));
    crate::common::wait_until("the watch to hear the deploy", || {
        watch.generation() > before
    });
    // The next transaction runs on the new revision, with its statement
    // prepared again.
    assert_eq!(
        session.transaction(answer).unwrap(),
        (2, "api_1_0_0_r1".into())
    );
    assert_eq!(session.switches(), 1);
    assert_eq!(session.api().schema.as_deref(), Some("api_1_0_0_r1"));
}

#[test]
fn gc_removes_old_revisions_nobody_uses_and_says_why_it_keeps_the_others() {
    let db = TestDb::installed();
    let ws = tempfile::tempdir().unwrap();
    let dir = versioned_api(ws.path(), 1);
    let (code, _, stderr) = deploy(&db, &dir, &["--mode", "revision"]);
    assert_eq!(code, 0, "{stderr}");
    versioned_api(ws.path(), 2);
    let (code, _, stderr) = deploy(&db, &dir, &["--mode", "revision"]);
    assert_eq!(code, 0, "{stderr}");
    // A session selects revision 1 (api_1_0_0_r1) and stays on it.
    let mut on_r1 = db.connect();
    on_r1
        .query_one("SELECT _pgpm.set_search_path('api', '^1', false)", &[])
        .unwrap();
    versioned_api(ws.path(), 3);
    let (code, _, stderr) = deploy(&db, &dir, &["--mode", "revision"]);
    assert_eq!(code, 0, "{stderr}");
    let gc = |args: &[&str]| output(pgpm().arg("gc").arg(db.conn_string()).args(args).assert());

    let (code, stdout, stderr) = gc(&[]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        stdout.matches("less than 3600 s ago").count(),
        2,
        "{stdout}"
    );

    let (code, stdout, stderr) = gc(&["--older-than", "0", "--dry-run"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("would remove api 1.0.0 (schema api_1_0_0)"),
        "{stdout}"
    );
    let (code, stdout, stderr) = gc(&["--older-than", "0"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("removed api 1.0.0 (schema api_1_0_0)"),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "kept api 1.0.0 revision 1 (schema api_1_0_0_r1): schema api_1_0_0_r1 is in use by"
        ),
        "{stdout}"
    );
    let left: String = db.query_scalar(
        "SELECT string_agg(nspname, ' ' ORDER BY nspname) FROM pg_namespace WHERE nspname LIKE 'api%'",
    );
    assert_eq!(left, "api_1_0_0_r1 api_1_0_0_r2");
    // Once the session is gone, so is its revision.
    crate::common::close_and_wait(&db, on_r1);
    let (code, stdout, stderr) = gc(&["--older-than", "0"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("removed api 1.0.0 (schema api_1_0_0_r1)"),
        "{stdout}"
    );
    let (code, stdout, _) = gc(&["--older-than", "0"]);
    assert_eq!(code, 0);
    assert_eq!(stdout.trim(), "no old revisions");
}

#[test]
fn a_revision_of_a_schema_name_at_the_length_limit_still_fits() {
    let db = TestDb::installed();
    let ws = tempfile::tempdir().unwrap();
    // name_1_0_0 is exactly 63 bytes, PostgreSQL's limit.
    let name = "a".repeat(57);
    let write = |answer: i32| {
        package(
            ws.path(),
            "long",
            serde_json::json!({"name": name, "version": "1.0.0", "subclass": "versioned", "functions_path": "f"}),
            &[(
                "f/v.sql",
                &format!("CREATE FUNCTION v() RETURNS int LANGUAGE sql AS $$ SELECT {answer} $$;"),
            )],
        )
    };
    let dir = write(1);
    let (code, _, stderr) = deploy(&db, &dir, &["--mode", "revision"]);
    assert_eq!(code, 0, "{stderr}");
    for answer in [2, 3] {
        write(answer);
        let (code, _, stderr) = deploy(&db, &dir, &["--mode", "revision"]);
        assert_eq!(code, 0, "{stderr}");
    }
    let schemas: String = db.query_scalar(
        "SELECT string_agg(nspname || ' ' || length(nspname), ', ' ORDER BY nspname) FROM pg_namespace WHERE nspname LIKE 'aaa%'",
    );
    let base = format!("{name}_1_0_0");
    let cut = &base[..60];
    assert_eq!(schemas, format!("{base} 63, {cut}_r1 63, {cut}_r2 63"));
    let current: serde_json::Value =
        db.query_scalar(&format!("SELECT _pgpm.api_version('{name}', '^1')"));
    assert_eq!(current["schema"], format!("{cut}_r2"));
}

#[test]
fn repointing_reads_the_pinned_path_as_identifiers() {
    let db = TestDb::installed();
    db.exec(
        r#"CREATE SCHEMA "a,b"; CREATE SCHEMA "Billing"; CREATE SCHEMA billing_0;
           CREATE FUNCTION billing_0.f() RETURNS int LANGUAGE sql
               SET search_path = billing, "a,b", "Billing", pg_temp AS $$ SELECT 1 $$;"#,
    );
    // billing was renamed to billing_0.
    let n: i32 = db.query_scalar("SELECT _pgpm.repoint_search_path('billing', 'billing_0', '{}')");
    assert_eq!(n, 1);
    let path: String = db.query_scalar(
        "SELECT array_to_string(proconfig, ' ') FROM pg_proc WHERE oid = 'billing_0.f()'::regprocedure",
    );
    assert_eq!(path, r#"search_path=billing_0, "a,b", "Billing", pg_temp"#);
    // "Billing" is another schema than billing: renaming it leaves billing_0.
    let n: i32 =
        db.query_scalar("SELECT _pgpm.repoint_search_path('Billing', 'Billing_0', '{billing_0}')");
    assert_eq!(n, 1);
    let path: String = db.query_scalar(
        "SELECT array_to_string(proconfig, ' ') FROM pg_proc WHERE oid = 'billing_0.f()'::regprocedure",
    );
    assert_eq!(
        path,
        r#"search_path=billing_0, "a,b", "Billing_0", pg_temp"#
    );
}

#[test]
fn revisions_of_a_basic_package_across_versions_keep_distinct_numbers() {
    let db = TestDb::installed();
    let ws = tempfile::tempdir().unwrap();
    let write = |version: &str, answer: i32| {
        package(
            ws.path(),
            "core",
            serde_json::json!({"name": "core", "version": version, "subclass": "basic", "functions_path": "f"}),
            &[(
                "f/v.sql",
                &format!("CREATE FUNCTION v() RETURNS int LANGUAGE sql AS $$ SELECT {answer} $$;"),
            )],
        )
    };
    let dir = write("1.0.0", 1);
    let (code, _, stderr) = deploy(&db, &dir, &[]);
    assert_eq!(code, 0, "{stderr}");
    write("1.0.0", 2);
    let (code, _, stderr) = deploy(&db, &dir, &["--mode", "moderate"]);
    assert_eq!(code, 0, "{stderr}");
    // A new version in revision mode supersedes the current schema, core.
    write("1.1.0", 3);
    let (code, stdout, stderr) = deploy(&db, &dir, &["--mode", "revision"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("deployed core 1.1.0 -> core_r1"),
        "{stdout}"
    );
    write("1.2.0", 4);
    let (code, stdout, stderr) = deploy(&db, &dir, &["--mode", "revision"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("deployed core 1.2.0 -> core_r2"),
        "{stdout}"
    );
    let rows: String = db.query_scalar(
        "SELECT string_agg(version || ':' || schema_name || ':' || coalesce(old_rev::text, 'current'), ' ' ORDER BY package_id)
           FROM _pgpm.packages WHERE removed_at IS NULL",
    );
    assert_eq!(
        rows,
        "1.0.0:core_0:0 1.0.0:core:1 1.1.0:core_r1:0 1.2.0:core_r2:current"
    );
    // Each old revision is removed by its own number.
    for (version, rev) in [("1.0.0", "0"), ("1.0.0", "1"), ("1.1.0", "0")] {
        let (code, _, stderr) = output(
            pgpm()
                .args([
                    "remove",
                    &db.conn_string(),
                    "core",
                    version,
                    "--old-rev",
                    rev,
                ])
                .assert(),
        );
        assert_eq!(code, 0, "{version} {rev}: {stderr}");
    }
}

#[test]
fn a_moderate_rename_that_could_not_repoint_a_dependents_routines_is_refused_up_front() {
    let db = TestDb::new();
    let owner = format!("{}_owner", db.name);
    let team = format!("{}_team", db.name);
    db.exec(&format!(
        "CREATE ROLE {owner} LOGIN; CREATE ROLE {team};
         GRANT {team} TO {owner};
         ALTER DATABASE {} OWNER TO {owner};
         ALTER SCHEMA public OWNER TO {owner};",
        db.name
    ));
    let conn = db.info.clone().with("user", owner.clone()).to_string();
    let run = |args: &[&str]| output(pgpm().args(args).assert());
    let (code, _, stderr) = run(&["install", &conn]);
    assert_eq!(code, 0, "{stderr}");
    let ws = tempfile::tempdir().unwrap();
    let (lib, app) = lib_and_app(ws.path());
    let (code, _, stderr) = run(&["deploy", &conn, lib.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    // Another team owns app; the deployer is no longer one of them.
    let (code, _, stderr) = run(&["deploy", &conn, app.to_str().unwrap(), "--owner", &team]);
    assert_eq!(code, 0, "{stderr}");
    db.exec(&format!("REVOKE {team} FROM {owner}"));
    std::fs::write(
        lib.join("f/rate.sql"),
        "CREATE FUNCTION rate() RETURNS int LANGUAGE sql AS $$ SELECT 8 $$;",
    )
    .unwrap();
    let before: String = db.query_scalar(
        "SELECT string_agg(nspname, ',' ORDER BY nspname) FROM pg_namespace WHERE nspname LIKE 'lib%'",
    );
    let (code, _, stderr) = run(&["deploy", &conn, lib.to_str().unwrap(), "--mode", "moderate"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("must repoint the pinned search_path of app_1_0_0.price()")
            && stderr.contains("use --mode revision"),
        "{stderr}"
    );
    let after: String = db.query_scalar(
        "SELECT string_agg(nspname, ',' ORDER BY nspname) FROM pg_namespace WHERE nspname LIKE 'lib%'",
    );
    assert_eq!(after, before);
    // Revision mode renames nothing, so it goes through.
    let (code, _, stderr) = run(&["deploy", &conn, lib.to_str().unwrap(), "--mode", "revision"]);
    assert_eq!(code, 0, "{stderr}");
}
