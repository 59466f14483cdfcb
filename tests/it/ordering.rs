//! Real-world SQL through `pgpm deploy` with its files shuffled: each
//! fixture deploys under several file orders and leaves the same schema as
//! its statements run in one transaction in an order that works (as
//! `psql -1 -f` of them would), compared with `pg_dump --schema-only`
//! where a `pg_dump` for the server's major is at hand, else with a
//! description of the schema read from the catalog.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::{TestDb, output, package, pgpm, server_version_num};

/// A file of a fixture: the phase folder, a name, the SQL.
type File<'a> = (&'a str, &'a str, &'a str);

/// Deploys `files` as package `fx` 1.0.0 (versioned, so into schema
/// `fx_1_0_0`) with the files' order shuffled three ways, and checks that
/// each deploy leaves what the statements in the order listed (a valid
/// one) leave when run in one transaction.
fn deploys_like_one_transaction(files: &[File<'_>]) {
    deploys_like_one_transaction_as("versioned", files)
}

/// [`deploys_like_one_transaction`] for a package of this subclass (a
/// `basic` one deploys into schema `fx`). `@schema@` in the files is the
/// schema, in the reference too.
fn deploys_like_one_transaction_as(subclass: &str, files: &[File<'_>]) {
    deploys_like_one_transaction_with(subclass, serde_json::json!({}), "", files)
}

/// [`deploys_like_one_transaction_as`] with more keys in the manifest,
/// and `prelude`, what they mean, run first in the reference (and again
/// after each file: a file's SETs end with the file).
fn deploys_like_one_transaction_with(
    subclass: &str,
    manifest_extra: serde_json::Value,
    prelude: &str,
    files: &[File<'_>],
) {
    let schema = if subclass == "basic" {
        "fx"
    } else {
        "fx_1_0_0"
    };
    let reference = TestDb::installed();
    let settings = format!("SET LOCAL search_path = {schema}, public;\n{prelude}\n");
    let mut script = format!("CREATE SCHEMA {schema};\n{settings}");
    for (_, _, sql) in files {
        script.push_str(&sql.replace("@schema@", schema));
        script.push_str(&format!("\nRESET ALL;\n{settings}"));
    }
    let mut client = reference.connect();
    let mut tx = client.transaction().unwrap();
    tx.batch_execute(&script)
        .unwrap_or_else(|e| panic!("the fixture's valid order fails: {e}\n{script}"));
    tx.commit().unwrap();
    let expected = describe(&reference, schema);
    assert!(!expected.trim().is_empty(), "the fixture creates nothing");

    let n = files.len();
    let orders: [Vec<usize>; 3] = [
        (0..n).rev().collect(),
        (0..n).map(|i| (i * 7 + 3) % n).collect::<Vec<_>>(),
        (0..n)
            .map(|i| if i % 2 == 0 { i / 2 } else { n - 1 - i / 2 })
            .collect(),
    ];
    for order in orders {
        let mut seen = vec![false; n];
        let mut order: Vec<usize> = order
            .into_iter()
            .filter(|&i| !std::mem::replace(&mut seen[i], true))
            .collect();
        assert_eq!(order.len(), n, "a permutation");
        // Table scripts run in their files' order, by design: they keep
        // the order listed, at the places the shuffle gave tables.
        let mut tables: Vec<usize> = order
            .iter()
            .copied()
            .filter(|&i| files[i].0 == "tables")
            .collect();
        tables.sort_unstable();
        let mut tables = tables.into_iter();
        for slot in order.iter_mut().filter(|i| files[**i].0 == "tables") {
            *slot = tables.next().unwrap();
        }
        let db = TestDb::installed();
        let root = tempfile::tempdir().unwrap();
        // File names sort in `order`: the package's files come shuffled.
        let named: Vec<(String, &str)> = order
            .iter()
            .enumerate()
            .map(|(rank, &i)| {
                let (phase, name, sql) = files[i];
                (format!("{phase}/{rank:02}_{name}.sql"), sql)
            })
            .collect();
        let refs: Vec<(&str, &str)> = named.iter().map(|(p, s)| (p.as_str(), *s)).collect();
        let mut manifest =
            serde_json::json!({"name": "fx", "version": "1.0.0", "subclass": subclass});
        for (key, value) in manifest_extra.as_object().unwrap() {
            manifest[key] = value.clone();
        }
        for (phase, _, _) in files {
            manifest[format!("{phase}_path")] = serde_json::json!(phase);
        }
        let dir = package(root.path(), "fx", manifest, &refs);
        let (code, stdout, stderr) = deploy(&db, &dir);
        assert_eq!(code, 0, "file order {order:?}:\n{stdout}{stderr}");
        let got = describe(&db, schema);
        if got != expected {
            panic!(
                "file order {order:?} deployed another schema than one transaction in a valid order:\n{}",
                diff(&expected, &got)
            );
        }
    }
}

/// The schema as `pg_dump --schema-only` writes it (no owners, no
/// privileges: pgpm revokes what PUBLIC had), or as the catalog describes
/// it when no `pg_dump` can dump this server.
fn describe(db: &TestDb, schema: &str) -> String {
    if let Some(pg_dump) = pg_dump() {
        let out = Command::new(pg_dump)
            .args([
                "--schema-only",
                "--no-owner",
                "--no-privileges",
                "--schema",
                schema,
            ])
            .arg(format!("--dbname={}", db.conn_string()))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        return String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            // Comments name the dump's own settings and ids.
            .filter(|l| {
                !l.starts_with("--")
                    && !l.starts_with("\\restrict")
                    && !l.starts_with("\\unrestrict")
            })
            .collect::<Vec<_>>()
            .join("\n");
    }
    db.query_scalar(&format!(
        "SELECT string_agg(d, E'\\n' ORDER BY d COLLATE \"C\") FROM (
            SELECT 'function ' || p.oid::regprocedure::text || ' ' || CASE WHEN p.prokind = 'a' THEN 'aggregate' ELSE pg_get_functiondef(p.oid) END
              FROM pg_proc p WHERE p.pronamespace = '{schema}'::regnamespace
            UNION ALL
            SELECT 'relation ' || c.relname || ' ' || c.relkind::text || ' ' || coalesce(pg_get_viewdef(c.oid), '') || coalesce((
                SELECT string_agg(a.attname || ' ' || format_type(a.atttypid, a.atttypmod) || ' ' || coalesce(pg_get_expr(ad.adbin, ad.adrelid), ''), ', ' ORDER BY a.attnum)
                  FROM pg_attribute a LEFT JOIN pg_attrdef ad ON (ad.adrelid, ad.adnum) = (a.attrelid, a.attnum)
                 WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped), '')
              FROM pg_class c WHERE c.relnamespace = '{schema}'::regnamespace
            UNION ALL
            SELECT 'type ' || t.oid::regtype::text || ' ' || t.typtype::text FROM pg_type t
             WHERE t.typnamespace = '{schema}'::regnamespace AND t.typtype IN ('b', 'd', 'e', 'r', 'm')
            UNION ALL
            SELECT 'constraint ' || co.conname || ' ' || pg_get_constraintdef(co.oid) FROM pg_constraint co
             WHERE co.connamespace = '{schema}'::regnamespace
            UNION ALL
            SELECT 'trigger ' || pg_get_triggerdef(tg.oid) FROM pg_trigger tg JOIN pg_class c ON c.oid = tg.tgrelid
             WHERE c.relnamespace = '{schema}'::regnamespace AND NOT tg.tgisinternal
            UNION ALL
            SELECT 'operator ' || o.oid::regoperator::text || ' ' || o.oprcode::regproc::text FROM pg_operator o
             WHERE o.oprnamespace = '{schema}'::regnamespace
            UNION ALL
            SELECT 'comment ' || d.classoid::regclass::text || ' ' || d.objsubid || ' ' || d.description FROM pg_description d
              JOIN pg_proc p ON d.classoid = 'pg_proc'::regclass AND p.oid = d.objoid
             WHERE p.pronamespace = '{schema}'::regnamespace
        ) x(d)"
    ))
}

/// `pgpm deploy` of the package at `dir` into `db`.
fn deploy(db: &TestDb, dir: &Path) -> (i32, String, String) {
    output(pgpm().arg("deploy").arg(db.conn_string()).arg(dir).assert())
}

/// A `pg_dump` that can dump the test server (its major or newer).
fn pg_dump() -> Option<PathBuf> {
    let major = server_version_num() / 10000;
    let mut candidates: Vec<PathBuf> = std::env::var_os("PG_BINDIR")
        .map(|d| PathBuf::from(d).join("pg_dump"))
        .into_iter()
        .collect();
    if let Ok(dirs) = std::fs::read_dir("/usr/lib/postgresql") {
        for dir in dirs.flatten() {
            if dir
                .file_name()
                .to_str()
                .and_then(|v| v.parse::<i32>().ok())
                .is_some_and(|v| v >= major)
            {
                candidates.push(dir.path().join("bin/pg_dump"));
            }
        }
    }
    candidates.into_iter().find(|p| Path::new(p).exists())
}

/// The lines of one text missing from the other.
fn diff(expected: &str, got: &str) -> String {
    let mut out = String::new();
    for l in expected.lines().filter(|l| !got.lines().any(|g| g == *l)) {
        out.push_str(&format!("- {l}\n"));
    }
    for l in got.lines().filter(|l| !expected.lines().any(|e| e == *l)) {
        out.push_str(&format!("+ {l}\n"));
    }
    out
}

/// Issue point 4: overloads that call each other are told apart by how
/// many arguments the call passes, so no false cycle.
#[test]
fn overloads_that_call_each_other_are_told_apart_by_their_arguments() {
    deploys_like_one_transaction(&[
        (
            "functions",
            "diag_text_int",
            "CREATE FUNCTION diag(msg text, depth int) RETURNS text LANGUAGE sql AS $$ SELECT repeat('#', depth) || ' ' || msg $$;",
        ),
        (
            "functions",
            "diag_text",
            "CREATE FUNCTION diag(msg text) RETURNS text LANGUAGE sql AS $$ SELECT diag(msg, 1) $$;",
        ),
        (
            "functions",
            "diag_int",
            "CREATE FUNCTION diag(n int) RETURNS text LANGUAGE sql AS $$ SELECT diag(n::text) $$;",
        ),
        (
            "functions",
            "diag_all",
            "CREATE FUNCTION diag_all(VARIADIC msgs text[]) RETURNS text LANGUAGE sql AS $$ SELECT string_agg(diag(m), E'\\n') FROM unnest(msgs) m $$;",
        ),
        (
            "functions",
            "notes",
            "CREATE FUNCTION notes() RETURNS text LANGUAGE sql AS $$ SELECT diag_all('a', 'b') || diag(2) $$;\nCOMMENT ON FUNCTION diag(text) IS 'one level deep';",
        ),
    ]);
}

/// Issue point 4: every cycle is reported, each routine with its argument
/// types, before anything runs.
#[test]
fn every_cycle_is_reported_with_the_overloads_signatures() {
    let db = TestDb::installed();
    let root = tempfile::tempdir().unwrap();
    let dir = package(
        root.path(),
        "loops",
        serde_json::json!({"name": "loops", "version": "1.0.0", "functions_path": "functions", "views_path": "views"}),
        &[
            (
                "functions/a.sql",
                "CREATE FUNCTION ping(n int) RETURNS int LANGUAGE sql AS $$ SELECT pong(n, 1) $$;\n",
            ),
            (
                "functions/b.sql",
                "CREATE FUNCTION pong(n int, m int) RETURNS int LANGUAGE sql AS $$ SELECT ping(n) $$;\n",
            ),
            (
                "views/c.sql",
                "CREATE VIEW one AS SELECT * FROM two;\nCREATE VIEW two AS SELECT * FROM one;\n",
            ),
        ],
    );
    let (code, stdout, stderr) = deploy(&db, &dir);
    assert_eq!(code, 1, "{stdout}{stderr}");
    let a = dir.join("functions/a.sql");
    let b = dir.join("functions/b.sql");
    let c = dir.join("views/c.sql");
    // Every loop at once, whatever phase its statements are in.
    assert!(
        stderr.contains(&format!(
            "error: 2 dependency cycles between SQL objects:\n  1. function ping(int) ({a}:1) -> function pong(int, int) ({b}:1) -> function ping(int) ({a}:1)\n  2. view one ({c}:1) -> view two ({c}:2) -> view one ({c}:1)",
            a = a.display(),
            b = b.display(),
            c = c.display(),
        )),
        "{stderr}"
    );
    // One loop fixed, another added.
    std::fs::write(
        &b,
        "CREATE FUNCTION pong(n int, m int) RETURNS int LANGUAGE sql AS $$ SELECT n + m $$;\n",
    )
    .unwrap();
    std::fs::write(
        &c,
        "CREATE VIEW one AS SELECT * FROM two;\nCREATE VIEW two AS SELECT * FROM one;\nCREATE VIEW three AS SELECT * FROM four;\nCREATE VIEW four AS SELECT * FROM three;\n",
    )
    .unwrap();
    let (code, _, stderr) = deploy(&db, &dir);
    assert_eq!(code, 1);
    let c = c.display();
    assert!(
        stderr.contains(&format!(
            "error: 2 dependency cycles between SQL objects:\n  1. view one ({c}:1) -> view two ({c}:2) -> view one ({c}:1)\n  2. view three ({c}:3) -> view four ({c}:4) -> view three ({c}:3)"
        )),
        "{stderr}"
    );
    let n: i64 = db.query_scalar("SELECT count(*) FROM pg_namespace WHERE nspname = 'loops_1_0_0'");
    assert_eq!(n, 0);
}

/// Issue point 5: one graph over every phase, the phase order only a
/// tie-breaker: a table's DEFAULT and CHECK call package functions, a
/// domain is over a table's row type, a SQL function returns a view's
/// rows, and a view reads a function that reads a table.
#[test]
fn statements_cross_phases_when_what_they_use_comes_later() {
    deploys_like_one_transaction(&[
        (
            "functions",
            "next_code",
            "CREATE FUNCTION next_code() RETURNS text LANGUAGE sql AS $$ SELECT 'ord-' || floor(random() * 1000)::int $$;",
        ),
        (
            "functions",
            "valid_code",
            "CREATE FUNCTION valid_code(c text) RETURNS boolean LANGUAGE sql IMMUTABLE AS $$ SELECT c LIKE 'ord-%' $$;",
        ),
        (
            "tables",
            "orders",
            "CREATE TABLE orders (id serial PRIMARY KEY, code text NOT NULL DEFAULT next_code() CHECK (valid_code(code)), total numeric);\nINSERT INTO orders (total) VALUES (1), (2);",
        ),
        (
            "tables",
            "order_notes",
            "CREATE TABLE order_notes (order_id int REFERENCES orders, note text);",
        ),
        (
            "types",
            "order_row",
            "CREATE DOMAIN order_row AS orders CHECK ((VALUE).total IS NOT NULL);",
        ),
        (
            "views",
            "big_orders",
            "CREATE VIEW big_orders AS SELECT * FROM orders WHERE total > 1;",
        ),
        (
            "functions",
            "latest",
            "CREATE FUNCTION latest() RETURNS SETOF big_orders LANGUAGE sql STABLE AS $$ SELECT * FROM big_orders ORDER BY id DESC $$;",
        ),
        (
            "views",
            "latest_codes",
            "CREATE VIEW latest_codes AS SELECT code FROM latest();",
        ),
    ]);
}

/// Issue point 2: a file's SETs apply to its own statements, wherever
/// ordering puts them, and to no other file's: here the time zone a
/// timestamptz constant is read in.
#[test]
fn a_files_set_applies_to_that_file_only() {
    deploys_like_one_transaction(&[
        (
            "tables",
            "utc",
            "CREATE TABLE utc_events (at timestamptz DEFAULT '2024-01-01 00:00'::timestamptz);",
        ),
        (
            "tables",
            "tokyo",
            "SET TIME ZONE 'Asia/Tokyo';\nCREATE TABLE tokyo_events (at timestamptz DEFAULT '2024-01-01 00:00'::timestamptz);",
        ),
        (
            "functions",
            "zone",
            "SET timezone = 'America/New_York';\nCREATE FUNCTION new_year() RETURNS timestamptz LANGUAGE sql IMMUTABLE AS $$ SELECT '2024-01-01 00:00'::timestamptz $$;\nCREATE VIEW ny AS SELECT new_year() AS at, (SELECT at FROM utc_events LIMIT 0) AS utc;",
        ),
        (
            "views",
            "plain",
            "CREATE VIEW plain_new_year AS SELECT '2024-01-01 00:00'::timestamptz AS at;",
        ),
    ]);
}

#[test]
fn set_in_one_file_does_not_reach_another_and_search_path_is_refused() {
    let db = TestDb::installed();
    let root = tempfile::tempdir().unwrap();
    let manifest =
        serde_json::json!({"name": "sets", "version": "1.0.0", "functions_path": "functions"});
    // a.sql turns body checks off for its own function only; b.sql's
    // function, whose body names a table that does not exist, is checked
    // whatever the file order.
    let lax = "SET check_function_bodies = off;\nCREATE FUNCTION lax() RETURNS int LANGUAGE sql AS 'SELECT count(*)::int FROM not_yet';\n";
    let strict = "CREATE FUNCTION strict() RETURNS int LANGUAGE sql AS 'SELECT count(*)::int FROM no_such_table';\n";
    for names in [["a", "b"], ["b", "a"]] {
        let dir = package(
            root.path(),
            &format!("sets-{}", names[0]),
            manifest.clone(),
            &[
                (&format!("functions/{}_lax.sql", names[0]), lax),
                (&format!("functions/{}_strict.sql", names[1]), strict),
            ],
        );
        let (code, stdout, stderr) = deploy(&db, &dir);
        assert_eq!(code, 1, "{stdout}{stderr}");
        assert!(
            stderr.contains(&format!("{}_strict.sql:1:", names[1])),
            "{stderr}"
        );
        assert!(
            stderr.contains("relation \"no_such_table\" does not exist"),
            "{stderr}"
        );
    }
    // Alone, the lax file deploys: its SET reaches its own function.
    let dir = package(
        root.path(),
        "sets-lax",
        manifest.clone(),
        &[("functions/lax.sql", lax)],
    );
    let (code, stdout, stderr) = deploy(&db, &dir);
    assert_eq!(code, 0, "{stdout}{stderr}");

    // A SET at the end of a file affects nothing: said, and left out.
    let dir = package(
        root.path(),
        "trailing",
        serde_json::json!({"name": "trailing", "version": "1.0.0", "functions_path": "functions"}),
        &[(
            "functions/t.sql",
            "CREATE FUNCTION t() RETURNS int LANGUAGE sql AS 'SELECT 1';\nSET check_function_bodies = off;\n",
        )],
    );
    let (code, _, stderr) = output(pgpm().arg("plan").arg(&dir).assert());
    assert_eq!(code, 0, "{stderr}");
    let (_, stdout, _) = output(pgpm().arg("plan").arg(&dir).assert());
    assert!(
        stdout.contains("t.sql:2: a SET at the end of the file changes nothing"),
        "{stdout}"
    );

    // search_path: refused at plan time, naming the file and line.
    let dir = package(
        root.path(),
        "path",
        serde_json::json!({"name": "path", "version": "1.0.0", "functions_path": "functions"}),
        &[(
            "functions/p.sql",
            "CREATE FUNCTION p() RETURNS int LANGUAGE sql AS 'SELECT 1';\nSELECT pg_catalog.set_config('search_path', '', false);\n",
        )],
    );
    let (code, _, stderr) = output(pgpm().arg("plan").arg(&dir).assert());
    assert_eq!(code, 1);
    assert!(stderr.contains("functions/p.sql:2:1: SELECT pg_catalog.set_config('search_path', '', false);: a package file may not change search_path"), "{stderr}");
}

/// Issue points 9 and 10: what names a trigger, policy or rule follows
/// it; collations, `'t'::regclass` and `'f(int)'::regprocedure`
/// literals, function defaults, operators and operator classes wait for
/// what they name.
#[test]
fn statements_about_table_members_and_references_by_literal_follow_them() {
    deploys_like_one_transaction(&[
        ("types", "coll", "CREATE COLLATION ci FROM \"C\";"),
        (
            "types",
            "domain",
            "CREATE DOMAIN label AS text COLLATE ci;\nCREATE DOMAIN int3 AS int;",
        ),
        (
            "tables",
            "items",
            "CREATE TABLE kinds (id int PRIMARY KEY);\nCREATE TABLE items (id int, owner name DEFAULT current_user, tag text COLLATE ci, kind regclass DEFAULT 'kinds'::regclass);\nALTER TABLE items ENABLE ROW LEVEL SECURITY;",
        ),
        (
            "functions",
            "seed",
            "CREATE FUNCTION seed() RETURNS int LANGUAGE sql AS $$ SELECT 4 $$;",
        ),
        (
            "functions",
            "with_default",
            "CREATE FUNCTION with_default(a int DEFAULT seed()) RETURNS int LANGUAGE sql AS $$ SELECT a $$;",
        ),
        (
            "functions",
            "touch",
            "CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN NEW; END$$;",
        ),
        (
            "functions",
            "which",
            "CREATE FUNCTION which() RETURNS text LANGUAGE sql AS $$ SELECT 'touch()'::regprocedure::text || 'items'::regclass::text $$;",
        ),
        (
            "functions",
            "cmp",
            "CREATE FUNCTION cmp3(a int3, b int3) RETURNS int LANGUAGE sql IMMUTABLE AS $$ SELECT btint4cmp(a, b) $$;\nCREATE FUNCTION lt3(a int3, b int3) RETURNS boolean LANGUAGE sql IMMUTABLE AS $$ SELECT a::int < b::int $$;",
        ),
        (
            "functions",
            "op",
            "CREATE OPERATOR <<< (LEFTARG = int3, RIGHTARG = int3, FUNCTION = lt3);",
        ),
        (
            "functions",
            "opclass",
            "CREATE OPERATOR CLASS int3_ops FOR TYPE int3 USING btree AS OPERATOR 1 <<<, FUNCTION 1 cmp3(int3, int3);",
        ),
        (
            "triggers",
            "defs",
            "CREATE TRIGGER trg BEFORE UPDATE ON items FOR EACH ROW EXECUTE FUNCTION touch();\nCREATE POLICY own ON items USING (owner = current_user);\nCREATE RULE keep AS ON DELETE TO kinds DO INSTEAD NOTHING;",
        ),
        (
            "triggers",
            "about",
            "COMMENT ON TRIGGER trg ON items IS 'touches';\nALTER TABLE items DISABLE TRIGGER trg;\nCOMMENT ON POLICY own ON items IS 'own rows';\nALTER POLICY own ON items USING (owner = session_user);\nCOMMENT ON RULE keep ON kinds IS 'kinds stay';\nCOMMENT ON COLLATION ci IS 'bytes';",
        ),
    ]);
}

/// Issue point 1: a DROP of an object runs before every statement that
/// creates or uses it, whatever file and phase it is in.
#[test]
fn a_drop_runs_before_what_creates_or_uses_its_object() {
    deploys_like_one_transaction(&[
        ("types", "drop_type", "DROP TYPE IF EXISTS money_t CASCADE;"),
        (
            "types",
            "money",
            "CREATE TYPE money_t AS (cents bigint, currency text);",
        ),
        (
            "functions",
            "drops",
            "DROP FUNCTION IF EXISTS fmt(money_t);\nDROP AGGREGATE IF EXISTS total_cents(money_t);\nDROP VIEW IF EXISTS prices;",
        ),
        (
            "functions",
            "fmt",
            "CREATE FUNCTION fmt(m money_t) RETURNS text LANGUAGE sql AS $$ SELECT (m).cents || ' ' || (m).currency $$;",
        ),
        (
            "functions",
            "agg",
            "CREATE FUNCTION add_cents(acc bigint, m money_t) RETURNS bigint LANGUAGE sql AS $$ SELECT acc + (m).cents $$;\nCREATE AGGREGATE total_cents(money_t) (SFUNC = add_cents, STYPE = bigint, INITCOND = '0');",
        ),
        (
            "views",
            "prices",
            "CREATE VIEW prices AS SELECT fmt(ROW(100, 'EUR')::money_t) AS price;",
        ),
    ]);
}

/// Issue points 6 and 7: in a basic package, names qualified with its own
/// schema match its unqualified definitions; `@schema@` names it too.
#[test]
fn own_schema_names_and_placeholders_order_like_unqualified_ones() {
    deploys_like_one_transaction_as(
        "basic",
        &[
            (
                "functions",
                "encode",
                "CREATE FUNCTION url_encode(t text) RETURNS text LANGUAGE sql AS $$ SELECT replace(t, ' ', '%20') $$;",
            ),
            (
                "functions",
                "suffix",
                "CREATE FUNCTION suffix() RETURNS text LANGUAGE sql AS $$ SELECT '!' $$;",
            ),
            (
                "functions",
                "api",
                "CREATE FUNCTION api(t text) RETURNS text LANGUAGE sql AS $$ SELECT fx.url_encode(t) || @schema@.suffix() $$;",
            ),
            ("types", "article", "CREATE TYPE article AS (title text);"),
            (
                "functions",
                "first",
                "CREATE FUNCTION first_article() RETURNS fx.article LANGUAGE sql AS $$ SELECT ROW('x')::@schema@.article $$;",
            ),
        ],
    );
}

/// Issue point 11: pg_dump's placeholder view, replaced later by the real
/// definition, keeps that order, and what reads the view follows the
/// placeholder.
#[test]
fn a_placeholder_view_comes_before_its_replacement() {
    deploys_like_one_transaction(&[
        (
            "views",
            "placeholder",
            "CREATE VIEW report AS SELECT NULL::int AS n, NULL::text AS label;",
        ),
        (
            "views",
            "reader",
            "CREATE VIEW report_labels AS SELECT label FROM report;",
        ),
        ("tables", "items", "CREATE TABLE items (n int, label text);"),
        (
            "views",
            "replacement",
            "CREATE OR REPLACE VIEW report AS SELECT n, label FROM items;",
        ),
    ]);
}

/// Issue point 8: the manifest's extensions are created and its settings
/// hold for every statement of the package (here the time zone a
/// timestamptz constant is read in), in every file order.
#[test]
fn the_manifests_extensions_and_settings_hold_for_every_file() {
    deploys_like_one_transaction_with(
        "versioned",
        serde_json::json!({"extensions": {"citext": "*"}, "settings": {"timezone": "Asia/Tokyo"}}),
        "CREATE EXTENSION IF NOT EXISTS citext SCHEMA public;\nSET LOCAL timezone = 'Asia/Tokyo';",
        &[
            (
                "tables",
                "users",
                "CREATE TABLE users (email public.citext PRIMARY KEY, joined timestamptz DEFAULT '2024-01-01 00:00'::timestamptz);",
            ),
            (
                "views",
                "new_year",
                "CREATE VIEW new_year AS SELECT '2024-01-01 00:00'::timestamptz AS at;",
            ),
            (
                "functions",
                "find",
                "CREATE FUNCTION find(e public.citext) RETURNS SETOF users LANGUAGE sql AS $$ SELECT * FROM users WHERE email = e $$;",
            ),
        ],
    );
}
