//! What commands print for programs (`--json`, one document per command,
//! errors included) and for people (`-q`, `-v` with the server's notices,
//! `--log-file`, colour, progress lines as patches start and while a lock
//! is waited for).

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::common::{TestDb, output, package, pgpm, shop};

/// `pgpm ARGS` in `dir` with `--json`: exit code, stdout parsed as one
/// JSON document, stderr.
fn json(dir: &Path, args: &[&str]) -> (i32, Value, String) {
    let (code, stdout, stderr) = output(
        pgpm()
            .current_dir(dir)
            .env("HOME", dir)
            .args(args)
            .arg("--json")
            .assert(),
    );
    let value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("{args:?}: stdout is not one JSON document ({e}): {stdout}"));
    (code, value, stderr)
}

fn patch(dir: &Path, name: &str, sql: &str) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join(name), sql).unwrap();
}

#[test]
fn every_command_prints_one_json_document_and_errors_say_where() {
    let db = TestDb::new();
    let conn = db.conn_string();
    let root = tempfile::tempdir().unwrap();
    let root = root.path();
    shop(root, "1.0.0");
    let patches = root.join("patches");
    patch(
        &patches,
        "patch-1-0-0-std.sql",
        "CREATE TABLE t (id int);\n",
    );
    patch(
        &patches,
        "patch-1-0-1-std.sql",
        "ALTER TABLE t ADD COLUMN n int;\n",
    );

    let (code, v, _) = json(root, &["install", &conn]);
    assert_eq!(code, 0);
    assert_eq!(v["outcome"], "installed");
    assert!(v["version"].as_i64().unwrap() > 0, "{v}");
    let (_, v, _) = json(root, &["install", &conn]);
    assert_eq!(v["outcome"], "current");

    let (code, v, _) = json(root, &["deploy", &conn, "shop-1.0.0", "--dry-run"]);
    assert_eq!(code, 0);
    assert_eq!(v["dry_run"], true);
    assert!(
        v["script"].as_str().unwrap().contains("CREATE SCHEMA"),
        "{v}"
    );
    let (code, v, _) = json(root, &["deploy", &conn, "shop-1.0.0"]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["packages"][0]["name"], "shop");
    assert_eq!(v["packages"][0]["schema"], "shop_1_0_0");
    assert_eq!(v["packages"][0]["outcome"], "created");
    assert!(v["script"].is_null());

    let (code, v, _) = json(root, &["migrate", &conn, "--all"]);
    assert_eq!(code, 0, "{v}");
    let files: Vec<&str> = v["patches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["file"].as_str().unwrap())
        .collect();
    assert_eq!(files, ["patch-1-0-0-std.sql", "patch-1-0-1-std.sql"]);
    assert_eq!(v["patches"][1]["outcome"], "applied");
    assert!(v["patches"][1]["ms"].as_f64().is_some(), "{v}");
    assert_eq!(v["remaining"], 0);

    let (code, v, _) = json(root, &["status", &conn, "--packages", "shop-1.0.0"]);
    assert_eq!(code, 0);
    assert!(v.is_object(), "{v}");
    assert_eq!(v["workspace_not_deployed"], serde_json::json!([]));

    let (code, v, _) = json(
        root,
        &["execute", &conn, "--query", "SELECT 0", "--until-zero"],
    );
    assert_eq!(code, 0);
    assert_eq!(
        (v["runs"].as_u64(), v["finished"].as_bool()),
        (Some(1), Some(true))
    );

    let (code, v, _) = json(root, &["remove", &conn, "shop", "1.0.0", "--force"]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["schema"], "shop_1_0_0");

    let (code, v, _) = json(root, &["plan", "shop-1.0.0"]);
    assert_eq!(code, 0);
    assert!(v.is_object(), "{v}");

    // A syntax error: where it is, exit 1, and nothing changed.
    package(
        root,
        "bad",
        serde_json::json!({"name": "bad", "version": "1.0.0", "functions_path": "functions"}),
        &[(
            "functions/f.sql",
            "CREATE FUNCTION f() RETURNS int\nLANGUAGE sql AS $$ SELECT 1 $$ garbage;\n",
        )],
    );
    let (code, v, stderr) = json(root, &["deploy", &conn, "bad"]);
    assert_eq!(code, 1, "{v}");
    let e = &v["error"];
    assert_eq!(e["kind"], "sql", "{v}");
    assert!(
        e["file"].as_str().unwrap().ends_with("bad/functions/f.sql"),
        "{v}"
    );
    assert_eq!(e["line"], 2, "{v}");
    assert!(e["column"].as_u64().unwrap() > 1, "{v}");
    assert_eq!(e["exit_code"], 1);
    assert!(
        stderr.contains("error: "),
        "people still read it on stderr: {stderr}"
    );
    // A statement the server refuses: its SQLSTATE and position.
    package(
        root,
        "worse",
        serde_json::json!({"name": "worse", "version": "1.0.0", "views_path": "views"}),
        &[(
            "views/v.sql",
            "-- reads a table nobody made\nCREATE VIEW v AS SELECT * FROM no_such_table;\n",
        )],
    );
    let (code, v, _) = json(root, &["deploy", &conn, "worse"]);
    assert_eq!(code, 1, "{v}");
    assert_eq!(v["error"]["kind"], "deploy", "{v}");
    assert_eq!(v["error"]["sqlstate"], "42P01", "{v}");
    assert_eq!(v["error"]["line"], 2, "{v}");
    let schemas: i64 = db.query_scalar(
        "SELECT count(*) FROM pg_namespace WHERE nspname IN ('bad_1_0_0', 'worse_1_0_0')",
    );
    assert_eq!(schemas, 0);

    // A patch that fails: where, as the patch error says it.
    patch(
        &patches,
        "patch-1-0-2-std.sql",
        "SELECT 1;\nSELECT 1 / 0;\n",
    );
    let (code, v, _) = json(root, &["migrate", &conn]);
    assert_eq!(code, 1, "{v}");
    assert_eq!(v["error"]["kind"], "patch", "{v}");
    assert!(
        v["error"]["file"]
            .as_str()
            .unwrap()
            .ends_with("patches/patch-1-0-2-std.sql"),
        "{v}"
    );
    assert_eq!(
        (v["error"]["line"].as_u64(), v["error"]["column"].as_u64()),
        (Some(2), Some(1)),
        "{v}"
    );
    assert_eq!(v["error"]["sqlstate"], "22012", "{v}");

    let (code, v, _) = json(root, &["uninstall", &conn, "--force"]);
    assert_eq!(code, 0);
    assert_eq!(v["outcome"], "removed");
}

#[test]
fn verbose_logs_statements_and_notices_and_quiet_prints_nothing() {
    let db = TestDb::installed();
    let conn = db.conn_string();
    let root = tempfile::tempdir().unwrap();
    let root = root.path();
    let patches = root.join("patches");
    patch(
        &patches,
        "patch-1-0-0-std.sql",
        "CREATE TABLE t (id int);\nDO $$BEGIN RAISE NOTICE 'hello from the patch'; END$$;\n",
    );
    patch(
        &patches,
        "patch-1-0-1-std.sql",
        "DO $$BEGIN RAISE WARNING 'careful: %', 'big table'; END$$;\n",
    );
    let log = root.join("pgpm.log");
    let (code, stdout, stderr) = output(
        pgpm()
            .current_dir(root)
            .args(["migrate", &conn, "--all", "-v", "--log-file"])
            .arg(&log)
            .assert(),
    );
    assert_eq!(code, 0, "{stdout}{stderr}");
    // Each statement with where it comes from, the notices as they came.
    assert!(
        stderr.contains("-- patches/patch-1-0-0-std.sql:1\nCREATE TABLE t (id int);"),
        "{stderr}"
    );
    assert!(stderr.contains("NOTICE: hello from the patch"), "{stderr}");
    assert!(
        stderr.contains("warning: the server says: WARNING: careful: big table"),
        "{stderr}"
    );
    // The second patch of the group says when it starts.
    assert!(stderr.contains("applying patch-1-0-1-std.sql"), "{stderr}");
    // The log file has the same, each line with its time.
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(logged.contains("NOTICE: hello from the patch"), "{logged}");
    assert!(logged.contains("CREATE TABLE t (id int);"), "{logged}");
    for line in logged.lines() {
        let stamp = line.get(..23).unwrap_or("");
        assert!(
            stamp.len() == 23 && stamp.as_bytes()[4] == b'-' && stamp.as_bytes()[13] == b':',
            "a line without its time: {line}"
        );
    }

    // Without -v: the server's warnings, not its notices nor statements.
    patch(
        &patches,
        "patch-1-0-2-std.sql",
        "DO $$BEGIN RAISE NOTICE 'quiet notice'; RAISE WARNING 'loud warning'; END$$;\n",
    );
    let (code, stdout, stderr) = output(pgpm().args(["migrate", &conn]).arg(&patches).assert());
    assert_eq!(code, 0);
    assert!(!stderr.contains("quiet notice"), "{stderr}");
    assert!(stderr.contains("WARNING: loud warning"), "{stderr}");
    assert!(stdout.contains("applied patch-1-0-2-std.sql"), "{stdout}");

    // -q: a deploy says nothing; its warnings would still show.
    shop(root, "1.0.0");
    let (code, stdout, stderr) = output(
        pgpm()
            .args(["deploy", &conn, "-q"])
            .arg(root.join("shop-1.0.0"))
            .assert(),
    );
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout, "");
    // Only warnings (before PostgreSQL 15, one about a writable public).
    assert!(
        stderr.lines().all(|l| l.starts_with("warning: ")),
        "{stderr}"
    );
    let n: i64 = db.query_scalar("SELECT count(*) FROM _pgpm.packages");
    assert_eq!(n, 1);
}

#[test]
fn errors_and_warnings_are_coloured_only_when_asked_or_on_a_terminal() {
    let run = |args: &[&str], env: Option<(&str, &str)>| {
        let mut cmd = pgpm();
        cmd.args(args);
        if let Some((k, v)) = env {
            cmd.env(k, v);
        }
        output(cmd.assert())
    };
    let missing = ["plan", "/no/such/workspace"];
    let (code, _, stderr) = run(&[&missing[..], &["--color", "always"]].concat(), None);
    assert_eq!(code, 1);
    assert!(stderr.starts_with("\x1b[1;31merror:\x1b[0m "), "{stderr:?}");
    // Not a terminal, or NO_COLOR: plain.
    let (_, _, stderr) = run(&missing, None);
    assert!(stderr.starts_with("error: "), "{stderr:?}");
    let (_, _, stderr) = run(&missing, Some(("NO_COLOR", "1")));
    assert!(!stderr.contains('\x1b'), "{stderr:?}");
}

#[test]
fn a_patch_waiting_for_a_lock_says_who_holds_it_while_it_waits() {
    let db = TestDb::installed();
    db.exec("CREATE TABLE busy (id int)");
    let root = tempfile::tempdir().unwrap();
    let patches = root.path().join("patches");
    patch(
        &patches,
        "patch-1-0-0-std.sql",
        "ALTER TABLE busy ADD COLUMN n int;\n",
    );
    // A session holds the table for about three seconds.
    let mut holder = db.connect();
    holder
        .batch_execute(
            "SET application_name = 'the-holder'; BEGIN; LOCK TABLE busy IN ACCESS EXCLUSIVE MODE",
        )
        .unwrap();
    let release = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(3));
        holder.batch_execute("COMMIT").unwrap();
    });
    let (code, stdout, stderr) = output(
        pgpm()
            .args(["migrate", &db.conn_string(), "--object-lock-timeout", "20"])
            .arg(&patches)
            .assert(),
    );
    release.join().unwrap();
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stderr.contains("waiting 1 s for a lock held by pid "),
        "{stderr}"
    );
    assert!(stderr.contains("the-holder"), "{stderr}");
    assert!(stdout.contains("applied patch-1-0-0-std.sql"), "{stdout}");
}
