//! Targets from pgpm.toml, .env and the ancestor's ~/.pgpmconfig, and
//! commands run against a set of databases.

use std::path::Path;

use crate::common::{TestDb, output, pgpm, shop, target_fields};

/// `pgpm ARGS` run in `dir`.
fn run_in(dir: &Path, args: &[&str]) -> (i32, String, String) {
    output(pgpm().current_dir(dir).args(args).env("HOME", dir).assert())
}

#[test]
fn a_rollout_to_twenty_databases_goes_past_a_broken_one_and_a_rerun_finishes_it() {
    let dbs: Vec<TestDb> = (0..20).map(|_| TestDb::installed()).collect();
    let project = tempfile::tempdir().unwrap();
    let mut toml = String::new();
    for (i, db) in dbs.iter().enumerate() {
        toml.push_str(&format!(
            "[targets.db{:02}]\n{}environment = \"test\"\nproduct = \"shop\"\n\n",
            i + 1,
            target_fields(db)
        ));
    }
    std::fs::write(project.path().join("pgpm.toml"), toml).unwrap();
    shop(project.path(), "1.0.0");
    // db07 has a schema of that name that pgpm did not create.
    dbs[6].exec("CREATE SCHEMA shop_1_0_0");

    let (code, stdout, stderr) = run_in(
        project.path(),
        &["deploy", "--env", "test", "shop-1.0.0", "--jobs", "6"],
    );
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(stderr.contains("1 of 20 targets failed: db07"), "{stderr}");
    assert!(
        stderr.contains(
            "error: db07: schema shop_1_0_0 of shop 1.0.0 exists, but pgpm did not create it"
        ),
        "{stderr}"
    );
    let deployed = stdout
        .lines()
        .filter(|l| l.starts_with("db") && l.contains(" deployed "))
        .count();
    assert_eq!(deployed, 19, "{stdout}");
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("db07") && l.contains("failed")),
        "{stdout}"
    );
    for (i, db) in dbs.iter().enumerate() {
        let n: i64 = db.query_scalar("SELECT count(*) FROM _pgpm.packages");
        assert_eq!(n, i64::from(i != 6), "db{:02}", i + 1);
    }

    // Fixed, the same command finishes the rollout: only db07 changes.
    dbs[6].exec("DROP SCHEMA shop_1_0_0");
    let (code, stdout, stderr) = run_in(
        project.path(),
        &["deploy", "--env", "test", "shop-1.0.0", "--json"],
    );
    assert_eq!(code, 0, "{stdout}{stderr}");
    // stdout is the JSON and nothing else.
    let summary: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let rows = summary["targets"].as_array().unwrap();
    assert_eq!(rows.len(), 20);
    for row in rows {
        let expected = if row["target"] == "db07" {
            "deployed"
        } else {
            "up to date"
        };
        assert_eq!(row["outcome"], expected, "{row}");
        // Each target's report is deploy's own JSON.
        let shop = &row["report"]["packages"][0];
        assert_eq!(shop["schema"], "shop_1_0_0", "{row}");
        let outcome = if row["target"] == "db07" {
            "created"
        } else {
            "up to date"
        };
        assert_eq!(shop["outcome"], outcome, "{row}");
        assert!(row["error"].is_null(), "{row}");
    }
}

#[test]
fn a_failed_canary_stops_the_rollout_before_the_others() {
    let dbs: Vec<TestDb> = (0..4).map(|_| TestDb::installed()).collect();
    let project = tempfile::tempdir().unwrap();
    let mut toml = String::new();
    for (i, db) in dbs.iter().enumerate() {
        toml.push_str(&format!(
            "[targets.c{i}]\n{}environment = \"prod\"\n\n",
            target_fields(db)
        ));
    }
    std::fs::write(project.path().join("pgpm.toml"), toml).unwrap();
    shop(project.path(), "1.0.0");
    dbs[0].exec("CREATE SCHEMA shop_1_0_0");
    let (code, stdout, stderr) = run_in(
        project.path(),
        &["deploy", "--env", "prod", "shop-1.0.0", "--canary", "1"],
    );
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert!(
        stderr.contains("1 of 4 targets failed: c0; 3 did not run"),
        "{stderr}"
    );
    assert_eq!(
        stdout.matches("not run: a canary failed").count(),
        3,
        "{stdout}"
    );
    for db in &dbs[1..] {
        let n: i64 = db.query_scalar("SELECT count(*) FROM _pgpm.packages");
        assert_eq!(n, 0);
    }
}

#[test]
fn named_targets_the_default_target_and_dotenv() {
    let a = TestDb::installed();
    let b = TestDb::installed();
    let project = tempfile::tempdir().unwrap();
    std::fs::write(
        project.path().join("pgpm.toml"),
        format!(
            "default = \"a\"\n[targets.a]\n{}\n[targets.b]\nurl = \"${{B_URL}}\"\n",
            target_fields(&a)
        ),
    )
    .unwrap();
    // The variable comes from the project's .env.
    std::fs::write(
        project.path().join(".env"),
        format!("B_URL={}\n", b.conn_string()),
    )
    .unwrap();
    shop(project.path(), "1.0.0");
    // No connection: the default target.
    let (code, stdout, stderr) = run_in(project.path(), &["deploy", "shop-1.0.0"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("deployed shop 1.0.0"), "{stdout}");
    let in_a: i64 = a.query_scalar("SELECT count(*) FROM _pgpm.packages");
    let in_b: i64 = b.query_scalar("SELECT count(*) FROM _pgpm.packages");
    assert_eq!((in_a, in_b), (1, 0));
    // --target b, resolved through .env.
    let (code, _, stderr) = run_in(project.path(), &["deploy", "--target", "b", "shop-1.0.0"]);
    assert_eq!(code, 0, "{stderr}");
    let in_b: i64 = b.query_scalar("SELECT count(*) FROM _pgpm.packages");
    assert_eq!(in_b, 1);
    // From a folder below the project, pgpm.toml is found by walking up.
    let below = project.path().join("shop-1.0.0");
    let (code, stdout, stderr) = run_in(&below, &["status", "--target", "a"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("shop"), "{stdout}");
    let (code, _, stderr) = run_in(project.path(), &["status", "--target", "c"]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("no target named c (the targets are: a, b)"),
        "{stderr}"
    );
    // pgpm targets lists them without passwords.
    let (code, stdout, _) = run_in(project.path(), &["targets"]);
    assert_eq!(code, 0);
    assert!(stdout.starts_with("a\t-\t-\t"), "{stdout}");
    assert!(
        stdout.contains(&format!("b\t-\t-\t{}", b.info.describe())),
        "{stdout}"
    );
}

#[test]
fn passwords_in_pgpm_toml_are_refused_before_connecting() {
    let project = tempfile::tempdir().unwrap();
    std::fs::write(
        project.path().join("pgpm.toml"),
        "[targets.x]\nurl = \"postgres://app:hunter2@db.example/app\"\n",
    )
    .unwrap();
    let (code, _, stderr) = run_in(project.path(), &["status", "--target", "x"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("pgpm.toml: targets.x.url holds a password"),
        "{stderr}"
    );
    assert!(!stderr.contains("hunter2"), "{stderr}");
}

/// The ancestor's sets: LIST entries and a RESDB query, selected by
/// environment, product and unique names as its `list set` does.
#[test]
fn ancestor_connection_sets_select_what_its_list_set_selects() {
    let resdb = TestDb::new();
    resdb.exec(
        "CREATE TABLE dbs (host text, port int, dbname text, environment text, product text, unique_name text);
         INSERT INTO dbs VALUES ('10.0.0.3', 5432, 'app', 'prod', 'billing', 'us1'),
                                ('10.0.0.4', 5432, 'app', 'prod', 'shop', 'us2');",
    );
    let project = tempfile::tempdir().unwrap();
    let config = serde_json::json!({
        "connection_sets": [
            {"type": "LIST", "payload": [
                {"host": "10.0.0.1", "port": 5432, "dbname": "app", "environment": "prod", "product": "billing", "unique_name": "eu1"},
                {"host": "10.0.0.2", "port": 5433, "dbname": "app", "environment": "prod", "product": "billing", "unique_name": "eu2"},
                {"host": "10.0.0.9", "port": 5432, "dbname": "app", "environment": "test", "product": "billing", "unique_name": "t1"}
            ]},
            {"type": "RESDB", "connection_string": resdb.conn_string(),
             "payload": "SELECT host, port, dbname, environment, product, unique_name FROM dbs"}
        ]
    });
    let file = project.path().join("sets.json");
    std::fs::write(&file, config.to_string()).unwrap();
    let file = file.to_str().unwrap();
    let names = |extra: &[&str]| -> Vec<String> {
        let mut args = vec!["targets", "--global-config", file, "--json"];
        args.extend_from_slice(extra);
        let (code, stdout, stderr) = run_in(project.path(), &args);
        assert_eq!(code, 0, "{stderr}");
        let rows: serde_json::Value = serde_json::from_str(&stdout).unwrap();
        rows.as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap().to_string())
            .collect()
    };
    let billing = ["--env", "prod", "--product", "billing"];
    assert_eq!(names(&billing), ["eu1", "eu2", "us1"]);
    assert_eq!(
        names(&[&billing[..], &["--name", "eu1,us1", "--except"]].concat()),
        ["eu2"]
    );
    assert_eq!(names(&[&billing[..], &["--name", "eu2"]].concat()), ["eu2"]);
    // The ancestor, when installed, agrees.
    let ancestor = std::process::Command::new("python3")
        .arg("-c")
        .arg(
            "import sys\nfrom pgpm.utils.config import GlobalConfiguration\n\
             c = GlobalConfiguration(None, sys.argv[1])\n\
             for names, exc in ((None, False), (['eu1', 'us1'], True), (['eu2'], False)):\n\
             \x20   print(','.join(d['unique_name'] for d in c.get_list_connections('prod', 'billing', names, exc)))",
        )
        .arg(file)
        .output();
    if let Ok(out) = ancestor
        && out.status.success()
    {
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "eu1,eu2,us1\neu2\neu2\n"
        );
    }
}

#[test]
fn status_exit_code_says_whether_the_database_is_behind() {
    let db = TestDb::installed();
    let project = tempfile::tempdir().unwrap();
    let patches = project.path().join("patches");
    std::fs::create_dir(&patches).unwrap();
    std::fs::write(
        patches.join("patch-1-0-0-std.sql"),
        "CREATE TABLE t (id int);\n",
    )
    .unwrap();
    let dir = shop(project.path(), "1.0.0");
    let conn = db.conn_string();
    let status = |extra: &[&str]| {
        let mut args = vec!["status", conn.as_str(), "--exit-code"];
        args.extend_from_slice(extra);
        run_in(project.path(), &args).0
    };
    assert_eq!(status(&[]), 3, "a patch is pending");
    let (code, _, stderr) = run_in(project.path(), &["migrate", &conn]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(status(&[]), 0);
    let ws = dir.to_str().unwrap();
    assert_eq!(status(&["--packages", ws]), 3, "shop is not deployed");
    let (code, _, stderr) = run_in(project.path(), &["deploy", &conn, ws]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(status(&["--packages", ws]), 0);
}

#[test]
fn wait_retries_connecting_until_its_time_is_up() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let conn = format!("host=127.0.0.1 port={port} dbname=x user=x sslmode=disable");
    let project = tempfile::tempdir().unwrap();
    let started = std::time::Instant::now();
    let (code, _, stderr) = run_in(project.path(), &["status", &conn, "--wait", "1"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("could not connect"), "{stderr}");
    assert!(started.elapsed() >= std::time::Duration::from_millis(900));
}

#[test]
fn the_ancestors_set_spelling_selects_like_env_and_product_and_json_names_each_failure() {
    let dbs: Vec<TestDb> = (0..3).map(|_| TestDb::installed()).collect();
    let project = tempfile::tempdir().unwrap();
    let mut toml = String::new();
    for (i, db) in dbs.iter().enumerate() {
        toml.push_str(&format!(
            "[targets.c{i}]\n{}environment = \"test\"\nproduct = \"shop\"\n\n",
            target_fields(db)
        ));
    }
    toml.push_str(&format!(
        "[targets.other]\n{}environment = \"test\"\nproduct = \"billing\"\n",
        target_fields(&dbs[0])
    ));
    std::fs::write(project.path().join("pgpm.toml"), toml).unwrap();
    shop(project.path(), "1.0.0");
    dbs[2].exec("CREATE SCHEMA shop_1_0_0");

    // `list set ENV PRODUCT` is `targets --env ENV --product PRODUCT`.
    let (_, listed, _) = run_in(project.path(), &["list", "set", "test", "shop", "--json"]);
    let (_, targets, _) = run_in(
        project.path(),
        &["targets", "--env", "test", "--product", "shop", "--json"],
    );
    assert_eq!(listed, targets);
    let names: Vec<String> = serde_json::from_str::<serde_json::Value>(&listed)
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["c0", "c1", "c2"]);

    // `deploy set ENV PRODUCT --except NAME`: all of the set but c2.
    let (code, stdout, stderr) = run_in(
        project.path(),
        &["deploy", "set", "test", "shop", "--except", "c2", "--json"],
    );
    assert_eq!(code, 0, "{stdout}{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let outcomes: Vec<(&str, &str)> = report["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["target"].as_str().unwrap(),
                t["outcome"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(outcomes, [("c0", "deployed"), ("c1", "deployed")]);

    // The whole set: c2 fails, and its row carries the error as --json
    // reports errors; stdout is still one document.
    let (code, stdout, stderr) =
        run_in(project.path(), &["deploy", "set", "test", "shop", "--json"]);
    assert_eq!(code, 1, "{stdout}{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let rows = report["targets"].as_array().unwrap();
    assert_eq!(rows[0]["outcome"], "up to date");
    assert_eq!(rows[2]["target"], "c2");
    assert_eq!(rows[2]["outcome"], "failed");
    assert_eq!(rows[2]["error"]["kind"], "deploy");
    assert!(
        rows[2]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("pgpm did not create it"),
        "{report}"
    );
    assert!(stderr.contains("1 of 3 targets failed: c2"), "{stderr}");
}
