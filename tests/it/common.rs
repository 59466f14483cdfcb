//! Shared test harness: one throwaway PostgreSQL cluster per test binary and
//! a fresh database per test, so tests run in parallel.
//!
//! Set `PGPM_TEST_DATABASE_URL` to run against an existing server instead
//! (its user must be allowed to create databases).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use pgpm::cluster::{Cluster, ClusterOptions};
use pgpm::db::conninfo::ConnInfo;

/// The server the tests run against.
pub struct Server {
    /// The superuser's connection to the maintenance database.
    pub admin: ConnInfo,
    /// Our own cluster, when we started one.
    pub cluster: Option<Cluster>,
}

/// Role whose members must log in with a password (scram) over TCP; every
/// other role is trusted. Only set up on our own cluster.
pub const PASSWORD_GROUP: &str = "password_users";

pub fn server() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(|| {
        if let Ok(url) = std::env::var("PGPM_TEST_DATABASE_URL") {
            return Server {
                admin: ConnInfo::parse(&url).expect("PGPM_TEST_DATABASE_URL"),
                cluster: None,
            };
        }
        let dir = tempfile::Builder::new()
            .prefix("pgpm-test-")
            .tempdir()
            .expect("temp dir")
            .keep();
        let cluster = Cluster::start(&ClusterOptions {
            dir,
            port: None,
            tcp: true,
        })
        .expect("start cluster");
        cluster
            .remove_when_process_exits(std::process::id())
            .expect("reaper");
        let admin = cluster.conninfo("postgres");
        let hba = cluster.data_dir().join("pg_hba.conf");
        let old = std::fs::read_to_string(&hba).unwrap();
        std::fs::write(
            &hba,
            format!(
                "host all +{PASSWORD_GROUP} 127.0.0.1/32 scram-sha-256\nlocal all +{PASSWORD_GROUP} scram-sha-256\n{old}"
            ),
        )
        .unwrap();
        let tls = enable_tls(&cluster);
        let mut client = admin.connect().expect("connect to test cluster");
        client
            .batch_execute(&format!("CREATE ROLE {PASSWORD_GROUP} NOLOGIN"))
            .unwrap();
        if tls {
            let dir = cluster.dir().display();
            // ALTER SYSTEM refuses to run in a (multi-statement) transaction.
            for setting in [
                "ssl = on".to_string(),
                format!("ssl_cert_file = '{dir}/server.crt'"),
                format!("ssl_key_file = '{dir}/server.key'"),
            ] {
                client
                    .batch_execute(&format!("ALTER SYSTEM SET {setting}"))
                    .unwrap();
            }
        }
        // Log lines name their database, so a test can count the statements
        // a command sent to its own (see `TestDb::statements_logged`).
        client
            .batch_execute("ALTER SYSTEM SET log_line_prefix = '%m [%p] db=%d '")
            .unwrap();
        // scram for the password group, also where md5 is the default (13).
        client
            .batch_execute("ALTER SYSTEM SET password_encryption = 'scram-sha-256'")
            .unwrap();
        client.batch_execute("SELECT pg_reload_conf()").unwrap();
        Server {
            admin,
            cluster: Some(cluster),
        }
    })
}

/// A streaming hot standby of our own cluster, started on first use; `None`
/// when the tests run against an existing server. Made with
/// `pg_basebackup` when one of the server's major or newer is installed,
/// else by copying the data directory (the embedded builds of other majors
/// ship no `pg_basebackup`).
pub fn standby() -> Option<&'static Cluster> {
    static STANDBY: OnceLock<Option<Cluster>> = OnceLock::new();
    STANDBY
        .get_or_init(|| {
            let primary = server().cluster.as_ref()?;
            let major = server_version_num() / 10000;
            // Without one, the data directory is copied around
            // pg_backup_start/pg_backup_stop.
            let basebackup = pg_basebackup(major);
            let dir = tempfile::Builder::new()
                .prefix("pgpm-standby-")
                .tempdir()
                .expect("temp dir")
                .keep();
            let standby = primary
                .start_standby(&dir, basebackup.as_deref())
                .expect("start a standby");
            standby
                .remove_when_process_exits(std::process::id())
                .expect("reaper");
            Some(standby)
        })
        .as_ref()
}

/// A `pg_basebackup` that can copy a server of `major`: in `PG_BINDIR`, or
/// of that major or newer under /usr/lib/postgresql; none when
/// `PGPM_TEST_STANDBY_BY_COPY` is set.
fn pg_basebackup(major: i32) -> Option<PathBuf> {
    // To try the other way on a machine that has one.
    if std::env::var_os("PGPM_TEST_STANDBY_BY_COPY").is_some() {
        return None;
    }
    let own = std::env::var_os("PG_BINDIR").map(|d| PathBuf::from(d).join("pg_basebackup"));
    if let Some(own) = own.filter(|p| p.exists()) {
        return Some(own);
    }
    let mut found: Vec<(i32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| {
            let e = e.ok()?;
            let v: i32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin/pg_basebackup");
            (v >= major && bin.exists()).then_some((v, bin))
        })
        .collect();
    found.sort();
    found.into_iter().next().map(|(_, bin)| bin)
}

/// Makes a test CA (`ca.crt`) and a server certificate for `localhost` and
/// 127.0.0.1 signed by it, in the cluster's directory, owned by the server's
/// user. Returns false when `openssl` is not installed (TLS tests then skip).
fn enable_tls(cluster: &Cluster) -> bool {
    use std::os::unix::fs::MetadataExt;
    use std::process::Command;
    let dir = cluster.dir();
    let run = |args: &[&str]| {
        Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .is_ok_and(|o| o.status.success())
    };
    let ok = run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=pgpm test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
    ]) && run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=localhost",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
    ]) && std::fs::write(
        dir.join("san.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\n",
    )
    .is_ok()
        && run(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "san.ext",
            "-out",
            "server.crt",
        ]);
    if !ok {
        return false;
    }
    // The server's user must own its key, readable by nobody else.
    let owner = std::fs::metadata(cluster.data_dir()).unwrap();
    for file in ["server.key", "server.crt", "ca.crt"] {
        let path = dir.join(file);
        std::os::unix::fs::chown(&path, Some(owner.uid()), Some(owner.gid())).unwrap();
    }
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        dir.join("server.key"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    true
}

/// The test CA's certificate, when our own cluster serves TLS.
pub fn test_ca() -> Option<PathBuf> {
    let cluster = server().cluster.as_ref()?;
    let ca = cluster.dir().join("ca.crt");
    ca.exists().then_some(ca)
}

/// A fresh, empty database for one test.
pub struct TestDb {
    pub name: String,
    pub info: ConnInfo,
}

impl TestDb {
    pub fn new() -> TestDb {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let server = server();
        let name = format!(
            "pgpm_test_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        );
        let mut admin = server.admin.connect().expect("connect as admin");
        admin
            .batch_execute(&format!(
                "CREATE DATABASE {}",
                pgpm::db::quote::quote_ident(&name)
            ))
            .expect("create test database");
        let info = server.admin.clone().with("dbname", name.clone());
        TestDb { name, info }
    }

    /// A fresh database with pgpm's catalog installed by the binary.
    pub fn installed() -> TestDb {
        let db = TestDb::new();
        pgpm()
            .arg("install")
            .arg(db.conn_string())
            .assert()
            .success();
        db
    }

    pub fn connect(&self) -> postgres::Client {
        self.info.connect().expect("connect to test database")
    }

    /// The connection as a keyword/value string.
    pub fn conn_string(&self) -> String {
        self.info.to_string()
    }

    /// Runs SQL as the superuser.
    pub fn exec(&self, sql: &str) {
        self.connect()
            .batch_execute(sql)
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    pub fn query_scalar<T: for<'a> postgres::types::FromSql<'a>>(&self, sql: &str) -> T {
        self.connect().query_one(sql, &[]).expect(sql).get(0)
    }
}

impl TestDb {
    /// Runs `f` with every statement sent to this database logged, and
    /// returns the statements the server logged meanwhile, from its log.
    /// `None` when the tests run against a server that is not their own.
    pub fn statements_logged(&self, f: impl FnOnce()) -> Option<Vec<String>> {
        let cluster = server().cluster.as_ref()?;
        let q = pgpm::db::quote::quote_ident(&self.name);
        self.exec(&format!("ALTER DATABASE {q} SET log_statement = 'all'"));
        let log = cluster.dir().join("server.log");
        let start = std::fs::metadata(&log).map(|m| m.len()).unwrap_or(0) as usize;
        f();
        self.exec(&format!("ALTER DATABASE {q} RESET log_statement"));
        let text = std::fs::read(&log).unwrap();
        let text = String::from_utf8_lossy(&text[start.min(text.len())..]).into_owned();
        let tag = format!(" db={} ", self.name);
        Some(
            text.lines()
                .filter(|l| {
                    l.contains(&tag) && (l.contains("statement: ") || l.contains("execute "))
                })
                .filter(|l| !l.contains("log_statement"))
                .map(str::to_string)
                .collect(),
        )
    }
}

/// A test's database is dropped when the test ends, passed or failed, so
/// the shared cluster does not fill up with them.
impl Drop for TestDb {
    fn drop(&mut self) {
        if let Ok(mut admin) = server().admin.connect() {
            let _ = admin.batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                pgpm::db::quote::quote_ident(&self.name)
            ));
        }
    }
}

/// Waits until `done` holds, checking every few milliseconds, for at most
/// ten seconds; panics with `what` if it never does. For conditions the
/// server reaches asynchronously (a backend exiting), instead of a fixed sleep.
pub fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !done() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting: {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// The `pgpm` binary with a clean environment: no DATABASE_URL or PG*
/// variables leak in from the developer's shell.
pub fn pgpm() -> assert_cmd::Command {
    let mut cmd = assert_cmd::Command::cargo_bin("pgpm").unwrap();
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy().to_string();
        if key.starts_with("PG") || key == "DATABASE_URL" {
            cmd.env_remove(&key);
        }
    }
    cmd
}

/// Output of a finished command as (exit code, stdout, stderr).
pub fn output(assert: assert_cmd::assert::Assert) -> (i32, String, String) {
    let out = assert.get_output();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Writes a package into `root/<dir>`: a manifest and SQL files.
pub fn package(
    root: &Path,
    dir: &str,
    manifest: serde_json::Value,
    files: &[(&str, &str)],
) -> PathBuf {
    let dir = root.join(dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("package.json"),
        serde_json::to_string_pretty(&manifest).unwrap(),
    )
    .unwrap();
    for (path, text) in files {
        let path = dir.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    dir
}

/// A versioned package `shop` with types out of order, functions, a view,
/// a table script and a trigger.
pub fn shop(root: &Path, version: &str) -> PathBuf {
    package(
        root,
        &format!("shop-{version}"),
        serde_json::json!({
            "name": "shop",
            "version": version,
            "subclass": "versioned",
            "types_path": "types",
            "functions_path": "functions",
            "views_path": "views",
            "tables_path": "tables",
            "triggers_path": "triggers",
        }),
        &[
            (
                "types/b_order.sql",
                "CREATE TYPE order_t AS (id int, lines line_t[]);\n",
            ),
            (
                "types/a_line.sql",
                "CREATE TYPE line_t AS (sku text, qty int);\n",
            ),
            (
                "functions/total.sql",
                "CREATE FUNCTION total(o order_t) RETURNS int LANGUAGE sql AS $$\n  SELECT coalesce(sum(l.qty), 0)::int FROM unnest(o.lines) l\n$$;\n",
            ),
            (
                "functions/version.sql",
                &format!(
                    "CREATE FUNCTION api_version() RETURNS text LANGUAGE sql AS $$ SELECT '{version}' $$;\n"
                ),
            ),
            (
                "functions/touch.sql",
                "CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$\nBEGIN\n  NEW.updated_at := now();\n  RETURN NEW;\nEND\n$$;\n",
            ),
            (
                "tables/orders.sql",
                "CREATE TABLE orders (id serial PRIMARY KEY, note text, updated_at timestamptz);\n",
            ),
            (
                "views/order_count.sql",
                "CREATE VIEW order_count AS SELECT count(*) AS n FROM orders;\n",
            ),
            (
                "triggers/orders_touch.sql",
                "CREATE TRIGGER orders_touch BEFORE UPDATE ON orders FOR EACH ROW EXECUTE FUNCTION touch();\n",
            ),
        ],
    )
}

/// Closes `client` and waits until the server has ended its session (a
/// session's backend exits a moment after its client goes).
pub fn close_and_wait(db: &TestDb, mut client: postgres::Client) {
    let pid: i32 = client
        .query_one("SELECT pg_backend_pid()", &[])
        .unwrap()
        .get(0);
    drop(client);
    let mut admin = db.connect();
    wait_until("a closed session's backend to exit", || {
        admin
            .query_opt("SELECT 1 FROM pg_stat_activity WHERE pid = $1", &[&pid])
            .unwrap()
            .is_none()
    });
}

/// The test server's `server_version_num`.
pub fn server_version_num() -> i32 {
    static VERSION: OnceLock<i32> = OnceLock::new();
    *VERSION.get_or_init(|| {
        server()
            .admin
            .connect()
            .expect("connect as admin")
            .query_one("SELECT current_setting('server_version_num')::int", &[])
            .unwrap()
            .get(0)
    })
}

/// Whether the server runs `packages-example`, whose routines use BEGIN
/// ATOMIC and RETURN bodies (PostgreSQL 14). On an older one, checks that
/// pgpm `args` (a deploy or plan of the example) refuses it with a clear
/// message, and returns false: the caller's test has nothing more to do.
pub fn runs_the_example(args: &[&str]) -> bool {
    if server_version_num() >= 140000 {
        return true;
    }
    let (code, _, stderr) = output(pgpm().args(args).assert());
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("a BEGIN ATOMIC or RETURN body needs PostgreSQL 14 or newer"),
        "{stderr}"
    );
    false
}

/// The connection fields of a `[targets.NAME]` table of pgpm.toml for a
/// test database.
pub fn target_fields(db: &TestDb) -> String {
    let info = &db.info;
    let mut out = format!(
        "host = \"{}\"\nport = {}\ndbname = \"{}\"\nuser = \"{}\"\n",
        info.host(),
        info.port(),
        info.dbname(),
        info.user()
    );
    if let Some(mode) = info.get("sslmode") {
        out.push_str(&format!("sslmode = \"{mode}\"\n"));
    }
    out
}
