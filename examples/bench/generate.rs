//! The benchmark's inputs, generated from a seed: a deploy workspace and
//! its floor script, a directory of patches with the same changes as a
//! Sqitch project, and planning workspaces of many packages.
//!
//! Everything is written in a valid order by construction (a type only
//! uses lower-numbered types, a SQL function only calls lower-numbered
//! functions, a view only reads lower-numbered views), so the floor
//! scripts never depend on pgpm's ordering.

use std::fmt::Write as _;
use std::fs;
use std::io;
use std::path::Path;

/// A small deterministic PRNG (SplitMix64): the same seed gives the same files.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// True with probability `percent` / 100.
    pub fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            items.swap(i, self.below(i + 1));
        }
    }
}

/// Size of the generated deploy workspace.
#[derive(Debug, Clone, Copy)]
pub struct DeploySize {
    pub functions: usize,
    /// Domains and composite types together, half each.
    pub types: usize,
    pub views: usize,
    /// Files the types and functions are shuffled across.
    pub files: usize,
}

/// The schema pgpm (and the ancestor) deploy the package into.
pub const DEPLOY_SCHEMA: &str = "bench_1_0_0";

/// What [`deploy_workspace`] wrote.
pub struct DeployInputs {
    /// Statements in the floor script (without the schema preamble).
    pub statements: usize,
    /// Bytes of SQL.
    pub bytes: usize,
}

/// How to call a generated function with NULL arguments of the right types.
struct Callable {
    call: String,
    /// The call returns a domain (usable as a scalar column).
    scalar: bool,
}

/// Writes the package `bench` 1.0.0 to `package_dir` (types and functions
/// shuffled across `size.files` files, views in order across 10 files; a
/// `package.json` for pgpm and a `config.json` for the ancestor) and the
/// same statements in a valid order to `floor_sql`, preceded by the schema
/// they go into.
pub fn deploy_workspace(
    package_dir: &Path,
    floor_sql: &Path,
    size: DeploySize,
    rng: &mut Rng,
) -> io::Result<DeployInputs> {
    let domains_n = (size.types / 2).max(1);
    let composites_n = size.types.saturating_sub(domains_n).max(1);
    let mut types: Vec<String> = Vec::with_capacity(domains_n + composites_n);

    // Domains: chains of ten, each over the previous, with a few checks.
    const BASES: [(&str, &str); 4] = [
        ("integer", "VALUE >= 0"),
        ("bigint", "VALUE > -1000000"),
        ("numeric(12, 2)", "VALUE < 1e9"),
        ("text", "VALUE <> ''"),
    ];
    for i in 0..domains_n {
        let sql = if i % 10 == 0 {
            let (base, check) = BASES[(i / 10) % BASES.len()];
            format!(
                "-- Base of chain {}.\nCREATE DOMAIN d_{i} AS {base}\n    CHECK ({check});\n",
                i / 10
            )
        } else if i % 3 == 0 {
            format!(
                "CREATE DOMAIN d_{i} AS d_{}\n    CHECK (VALUE IS NULL OR length(VALUE::text) < 100);\n",
                i - 1
            )
        } else {
            format!("CREATE DOMAIN d_{i} AS d_{};\n", i - 1)
        };
        types.push(sql);
    }
    // Composites: attributes of domains, of the previous composite (chains
    // of eight) and arrays of both.
    for j in 0..composites_n {
        let mut attrs = vec![
            format!("id d_{}", rng.below(domains_n)),
            "label text".to_string(),
        ];
        if j % 8 != 0 {
            attrs.push(format!("prev c_{}", j - 1));
        }
        attrs.push(format!("tags d_{}[]", rng.below(domains_n)));
        if j >= 2 && j % 3 == 0 {
            attrs.push(format!("older c_{}[]", j - 2 - rng.below(j.min(20) - 1)));
        }
        types.push(format!(
            "CREATE TYPE c_{j} AS (\n    {}\n);\n",
            attrs.join(",\n    ")
        ));
    }

    // Functions: SQL functions (checked at creation, some calling earlier
    // SQL functions), set-returning ones and PL/pgSQL ones.
    let mut functions: Vec<String> = Vec::with_capacity(size.functions);
    let mut sql_callables: Vec<Callable> = Vec::new();
    let mut composite: Vec<String> = Vec::new();
    let mut all_calls: Vec<String> = Vec::new();
    for i in 0..size.functions {
        let d = rng.below(domains_n);
        let c = rng.below(composites_n);
        let (sql, callable) = match i % 10 {
            0..=4 => {
                let body = if !sql_callables.is_empty() && rng.chance(40) {
                    let callee = &sql_callables[rng.below(sql_callables.len())];
                    format!("SELECT CASE WHEN {} IS NULL THEN a ELSE a END", callee.call)
                } else {
                    "SELECT a".to_string()
                };
                (
                    format!(
                        "-- f_{i}: passes its domain through.\nCREATE FUNCTION f_{i}(a d_{d}, b c_{c})\n    RETURNS d_{d}\n    LANGUAGE sql IMMUTABLE\nAS $$ {body} $$;\n"
                    ),
                    Some(Callable {
                        call: format!("f_{i}(NULL::d_{d}, NULL::c_{c})"),
                        scalar: true,
                    }),
                )
            }
            5 | 6 => (
                format!(
                    "CREATE FUNCTION f_{i}(b c_{c})\n    RETURNS c_{c}\n    LANGUAGE sql STABLE\nAS $$ SELECT b $$;\n"
                ),
                Some(Callable {
                    call: format!("f_{i}(NULL::c_{c})"),
                    scalar: false,
                }),
            ),
            7 => (
                format!(
                    "CREATE FUNCTION f_{i}(a d_{d}, b c_{c})\n    RETURNS TABLE (id d_{d}, item c_{c})\n    LANGUAGE sql STABLE ROWS 1\nAS $$ SELECT a, b $$;\n"
                ),
                None,
            ),
            _ => {
                let perform = if all_calls.is_empty() {
                    String::new()
                } else {
                    format!("    PERFORM {};\n", all_calls[rng.below(all_calls.len())])
                };
                (
                    format!(
                        "CREATE FUNCTION f_{i}(a d_{d}, b c_{c}[])\n    RETURNS integer\n    LANGUAGE plpgsql STABLE\nAS $$\nBEGIN\n{perform}    IF a IS NULL THEN\n        RETURN 0;\n    END IF;\n    RETURN coalesce(array_length(b, 1), 0);\nEND\n$$;\n"
                    ),
                    None,
                )
            }
        };
        if let Some(callable) = callable {
            all_calls.push(callable.call.clone());
            if callable.scalar {
                sql_callables.push(callable);
            } else {
                // Views read composite-returning calls as `(call).label`.
                composite.push(callable.call);
            }
        }
        functions.push(sql);
    }

    // Views: each reads a function or two and either a series or an earlier view.
    let mut views: Vec<String> = Vec::with_capacity(size.views);
    for k in 0..size.views {
        let a = &sql_callables[rng.below(sql_callables.len())].call;
        let b = if composite.is_empty() {
            "NULL::text".to_string()
        } else {
            format!("({}).label", composite[rng.below(composite.len())])
        };
        let from = if k > 0 && rng.chance(50) {
            format!("v_{} AS s", rng.below(k))
        } else {
            "generate_series(1, 3) AS s(n)".to_string()
        };
        views.push(format!(
            "CREATE VIEW v_{k} AS\nSELECT s.n, {a} AS a, {b} AS b\n  FROM {from};\n"
        ));
    }

    // The floor: the same statements in the order they were generated.
    let mut floor = String::new();
    let _ = writeln!(
        floor,
        "CREATE SCHEMA {DEPLOY_SCHEMA};\nSET search_path TO {DEPLOY_SCHEMA}, public;\n"
    );
    let mut bytes = 0;
    for sql in types.iter().chain(&functions).chain(&views) {
        floor.push_str(sql);
        floor.push('\n');
        bytes += sql.len();
    }
    fs::write(floor_sql, floor)?;

    // The package: types and functions shuffled across files.
    let _ = fs::remove_dir_all(package_dir);
    for dir in ["types", "functions", "views"] {
        fs::create_dir_all(package_dir.join(dir))?;
    }
    let total = types.len() + functions.len();
    let type_files =
        ((size.files * types.len() + total / 2) / total.max(1)).clamp(1, size.files.max(2) - 1);
    let function_files = size.files.saturating_sub(type_files).max(1);
    let statements = types.len() + functions.len() + views.len();
    write_shuffled(&package_dir.join("types"), "types", types, type_files, rng)?;
    write_shuffled(
        &package_dir.join("functions"),
        "functions",
        functions,
        function_files,
        rng,
    )?;
    // Views stay in order across their files: the ancestor runs view files
    // in name order and does not order views itself.
    let view_files = 10.min(views.len().max(1));
    let per_file = views.len().div_ceil(view_files).max(1);
    for (n, chunk) in views.chunks(per_file).enumerate() {
        fs::write(
            package_dir.join("views").join(format!("views_{n:02}.sql")),
            chunk.join("\n"),
        )?;
    }
    fs::write(
        package_dir.join("package.json"),
        r#"{
  "name": "bench",
  "version": "1.0.0",
  "subclass": "versioned",
  "description": "Generated by examples/bench.rs",
  "types_path": "types",
  "functions_path": "functions",
  "views_path": "views"
}
"#,
    )?;
    // The ancestor's manifest: it reads config.json from the working directory.
    fs::write(
        package_dir.join("config.json"),
        r#"{
  "name": "bench",
  "subclass": "versioned",
  "version": "1_0_0",
  "types_path": "types",
  "functions_path": "functions",
  "views_path": "views"
}
"#,
    )?;
    Ok(DeployInputs { statements, bytes })
}

/// Shuffles `statements` and deals them into `files` files in `dir`.
fn write_shuffled(
    dir: &Path,
    stem: &str,
    mut statements: Vec<String>,
    files: usize,
    rng: &mut Rng,
) -> io::Result<()> {
    rng.shuffle(&mut statements);
    let per_file = statements.len().div_ceil(files).max(1);
    for (n, chunk) in statements.chunks(per_file).enumerate() {
        fs::write(dir.join(format!("{stem}_{n:03}.sql")), chunk.join("\n"))?;
    }
    Ok(())
}

/// What [`patches`] wrote.
pub struct PatchInputs {
    pub bytes: usize,
}

/// Writes `count` `std` patches to `patch_dir` (`patch-1-N-0-std.sql`), their
/// concatenation to `floor_sql`, and a Sqitch project with the same changes
/// (each wrapped in a transaction, as Sqitch's templates are) to `sqitch_dir`.
///
/// Every fifth patch creates a table; the others add a column, an index,
/// rows or a check constraint to a recent table.
pub fn patches(
    patch_dir: &Path,
    floor_sql: &Path,
    sqitch_dir: &Path,
    count: usize,
) -> io::Result<PatchInputs> {
    for dir in [patch_dir, sqitch_dir] {
        let _ = fs::remove_dir_all(dir);
        fs::create_dir_all(dir)?;
    }
    fs::create_dir_all(sqitch_dir.join("deploy"))?;
    let mut floor = String::new();
    let mut plan = String::from("%syntax-version=1.0.0\n%project=bench\n\n");
    let mut bytes = 0;
    for n in 1..=count {
        let table = format!("t_{}", (n - 1) / 5);
        let text = match (n - 1) % 5 {
            0 => format!(
                "-- Patch {n}: a new table.\nCREATE TABLE {table} (\n    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,\n    name text NOT NULL,\n    created_at timestamptz NOT NULL DEFAULT now()\n);\n"
            ),
            1 => format!(
                "-- Patch {n}: a column with a default.\nALTER TABLE {table} ADD COLUMN c_{n} integer NOT NULL DEFAULT 0;\n"
            ),
            2 => format!(
                "-- Patch {n}: an index.\nCREATE INDEX {table}_name_{n} ON {table} (name);\n"
            ),
            3 => format!(
                "-- Patch {n}: some rows.\nINSERT INTO {table} (name)\nSELECT 'row ' || g FROM generate_series(1, 10) AS g;\n"
            ),
            _ => format!(
                "-- Patch {n}: a constraint and a comment.\nALTER TABLE {table} ADD CONSTRAINT {table}_name_{n} CHECK (name <> '');\nCOMMENT ON TABLE {table} IS 'generated by patch {n}';\n"
            ),
        };
        bytes += text.len();
        fs::write(patch_dir.join(format!("patch-1-{n}-0-std.sql")), &text)?;
        floor.push_str(&text);
        let change = format!("patch_{n:05}");
        fs::write(
            sqitch_dir.join("deploy").join(format!("{change}.sql")),
            format!("BEGIN;\n{text}COMMIT;\n"),
        )?;
        let _ = writeln!(
            plan,
            "{change} 2024-01-01T00:00:00Z Bench <bench@example.com> # patch {n}"
        );
    }
    fs::write(floor_sql, floor)?;
    fs::write(sqitch_dir.join("sqitch.plan"), plan)?;
    fs::write(sqitch_dir.join("sqitch.conf"), "[core]\n\tengine = pg\n")?;
    Ok(PatchInputs { bytes })
}

/// Writes a workspace of `count` packages to `dir`: each has a types file
/// (a domain and a composite over its dependencies' types) and a functions
/// file, and depends on up to three lower-numbered packages with ranges.
pub fn planning_workspace(dir: &Path, count: usize, rng: &mut Rng) -> io::Result<()> {
    let _ = fs::remove_dir_all(dir);
    fs::create_dir_all(dir)?;
    let version = |i: usize| format!("1.{}.0", i % 7);
    for i in 0..count {
        let pkg = dir.join(format!("p{i:05}"));
        fs::create_dir_all(pkg.join("types"))?;
        fs::create_dir_all(pkg.join("functions"))?;
        let mut deps: Vec<usize> = Vec::new();
        if i > 0 {
            for _ in 0..1 + rng.below(3) {
                // Mostly near neighbours, sometimes far back.
                let back = if rng.chance(70) {
                    1 + rng.below(20.min(i))
                } else {
                    1 + rng.below(i)
                };
                deps.push(i - back);
            }
        }
        deps.sort_unstable();
        deps.dedup();
        let requirements: Vec<String> = deps
            .iter()
            .map(|&d| {
                let req = match d % 3 {
                    0 => "^1".to_string(),
                    1 => format!(">={}, <2", version(d)),
                    _ => "1.x".to_string(),
                };
                format!("    \"p{d:05}\": \"{req}\"")
            })
            .collect();
        let subclass = if i % 4 == 0 { "basic" } else { "versioned" };
        fs::write(
            pkg.join("package.json"),
            format!(
                "{{\n  \"name\": \"p{i:05}\",\n  \"version\": \"{}\",\n  \"subclass\": \"{subclass}\",\n  \"dependencies\": {{\n{}\n  }},\n  \"types_path\": \"types\",\n  \"functions_path\": \"functions\"\n}}\n",
                version(i),
                requirements.join(",\n")
            ),
        )?;
        let dep_type = deps
            .first()
            .map_or("integer".to_string(), |d| format!("p{d:05}_id"));
        fs::write(
            pkg.join("types").join("1_types.sql"),
            format!(
                "CREATE TYPE p{i:05}_pair AS (id p{i:05}_id, parent {dep_type});\nCREATE DOMAIN p{i:05}_id AS bigint CHECK (VALUE > 0);\n"
            ),
        )?;
        let mut functions = format!(
            "CREATE FUNCTION p{i:05}_first(p p{i:05}_pair) RETURNS p{i:05}_id\n    LANGUAGE sql IMMUTABLE AS $$ SELECT (p).id $$;\n\nCREATE FUNCTION p{i:05}_pair_of(a p{i:05}_id) RETURNS p{i:05}_pair\n    LANGUAGE sql IMMUTABLE AS $$ SELECT ROW(p{i:05}_first(ROW(a, NULL)), NULL)::p{i:05}_pair $$;\n"
        );
        for d in &deps {
            let _ = write!(
                functions,
                "\nCREATE FUNCTION p{i:05}_via_p{d:05}(a p{i:05}_id) RETURNS integer\n    LANGUAGE plpgsql STABLE AS $$\nBEGIN\n    RETURN coalesce(p{d:05}_first(p{d:05}_pair_of(a::bigint)), 0)::integer;\nEND\n$$;\n"
            );
        }
        fs::write(pkg.join("functions").join("1_api.sql"), functions)?;
    }
    Ok(())
}
