//! `pgpm plan`: manifests, workspace discovery, resolution and statement
//! order, from the fixtures in `tests/fixtures/plan-*` and the example
//! workspace; the last tests plan against a real database.

use std::path::{Path, PathBuf};

use crate::common::{TestDb, output, pgpm};
use pgpm::Error;
use pgpm::package::manifest::ManifestError;
use pgpm::package::manifest::Phase;
use pgpm::package::resolve::Deployed;
use pgpm::package::resolve::{ResolveError, Source};
use pgpm::package::workspace::Workspace;
use pgpm::package::workspace::WorkspaceError;
use pgpm::plan::{self, Parsing, Plan};
use pgpm::sql::SqlError;
use pgpm::util::checksum;
use semver::Version;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn fixture(name: &str) -> PathBuf {
    root().join("tests/fixtures").join(name)
}

fn example() -> PathBuf {
    root().join("packages-example")
}

fn v(text: &str) -> Version {
    Version::parse(text).unwrap()
}

/// Loads and plans the workspace at `path`, as `pgpm plan` does.
fn plan_workspace(path: &Path, deployed: &[Deployed]) -> Result<Plan, Error> {
    let workspace = Workspace::load(path)?;
    Ok(plan::build(workspace, deployed, |_| true)?)
}

fn plan_of(path: &Path) -> Plan {
    plan_workspace(path, &[]).unwrap_or_else(|e| panic!("{e}"))
}

fn package<'a>(plan: &'a Plan, label: &str) -> &'a plan::PackagePlan {
    plan.packages
        .iter()
        .find(|p| p.label() == label)
        .unwrap_or_else(|| panic!("{label} not in {:?}", order(plan)))
}

fn order(plan: &Plan) -> Vec<String> {
    plan.packages.iter().map(|p| p.label()).collect()
}

/// `pgpm plan ARGS...`: exit code, stdout, stderr.
fn run_plan(args: &[&str]) -> (i32, String, String) {
    output(pgpm().arg("plan").args(args).assert())
}

/// Runs `pgpm plan` on a fixture that must fail, returning stderr.
fn plan_error(name: &str) -> String {
    let path = fixture(name);
    let (code, stdout, stderr) = run_plan(&[path.to_str().unwrap()]);
    assert_eq!(code, 1, "{name}: {stdout}{stderr}");
    assert!(stdout.is_empty(), "{stdout}");
    stderr
}

/// Regex for a literal string (insta filters are regexes).
fn literal(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        if "\\.+*?()|[]{}^$#&-~".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Writes files (path, content) below `dir`.
fn write_files(dir: &Path, files: &[(&str, &str)]) {
    for (path, text) in files {
        let path = dir.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
}

#[test]
fn example_workspace_plan_snapshot() {
    let path = example();
    let (code, stdout, stderr) = run_plan(&[path.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    insta::with_settings!({filters => vec![(literal(path.to_str().unwrap()).as_str(), "[EXAMPLE]")]}, {
        insta::assert_snapshot!("example_plan", stdout);
    });
}

#[test]
fn example_workspace_plan_as_json() {
    let path = example();
    let (code, stdout, stderr) = run_plan(&[path.to_str().unwrap(), "--json"]);
    assert_eq!(code, 0, "{stderr}");
    let json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let packages = json["packages"].as_array().unwrap();
    let names: Vec<String> = packages
        .iter()
        .map(|p| format!("{} {} {}", p["name"], p["version"], p["schema"]))
        .collect();
    assert_eq!(
        names,
        [
            r#""core" "1.2.0" "core""#,
            r#""billing" "1.3.0" "billing_1_3_0""#,
            r#""billing" "1.4.0" "billing_1_4_0""#,
            r#""reporting" "1.0.0" "reporting_1_0_0""#,
        ]
    );
    // Offline: nothing is known about existing schemas.
    assert!(packages.iter().all(|p| p["schema_exists"].is_null()));
    let reporting = &packages[3];
    assert_eq!(reporting["dependencies"][0]["name"], "billing");
    assert_eq!(reporting["dependencies"][0]["requirement"], "^1.4");
    assert_eq!(reporting["dependencies"][0]["version"], "1.4.0");
    assert_eq!(reporting["dependencies"][0]["schema"], "billing_1_4_0");
    assert_eq!(reporting["dependencies"][0]["deployed_only"], false);
    let billing = &packages[2];
    let phases: Vec<&str> = billing["phases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["phase"].as_str().unwrap())
        .collect();
    assert_eq!(
        phases,
        ["types", "tables", "functions", "views", "triggers"]
    );
    let first_type = &billing["phases"][0]["statements"][0];
    assert_eq!(first_type["file"], "types/3_money_amount.sql");
    assert_eq!(first_type["line"], 2);
    assert_eq!(first_type["kind"], "create type");
    assert!(
        first_type["sql"]
            .as_str()
            .unwrap()
            .starts_with("CREATE TYPE money_amount AS (")
    );
}

#[test]
fn example_plan_is_deterministic() {
    let path = example();
    let first = run_plan(&[path.to_str().unwrap(), "--json"]);
    let second = run_plan(&[path.to_str().unwrap(), "--json"]);
    assert_eq!(first, second);
    // The same workspace in another place and created in another order
    // plans the same, apart from its paths.
    let copy = tempfile::tempdir().unwrap();
    let mut files: Vec<PathBuf> = walkdir::WalkDir::new(&path)
        .into_iter()
        .map(|e| e.unwrap().into_path())
        .filter(|p| p.is_file())
        .collect();
    files.reverse();
    for file in files {
        let to = copy.path().join(file.strip_prefix(&path).unwrap());
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(&file, to).unwrap();
    }
    let moved = run_plan(&[copy.path().to_str().unwrap(), "--json"]);
    assert_eq!(
        moved.1.replace(copy.path().to_str().unwrap(), "ROOT"),
        first.1.replace(path.to_str().unwrap(), "ROOT")
    );
}

#[test]
fn table_scripts_stay_grouped_by_file_with_checksums() {
    let plan = plan_of(&example());
    let billing = &plan.packages[2];
    assert_eq!(billing.label(), "billing 1.4.0");
    let scripts: Vec<_> = billing.table_scripts().collect();
    let summary: Vec<(String, usize)> = scripts
        .iter()
        .map(|s| (s.path.display().to_string(), s.statements.len()))
        .collect();
    assert_eq!(
        summary,
        [
            ("tables/1_tax_rates.sql".to_string(), 2),
            ("tables/2_tax_rates_2024.sql".to_string(), 1)
        ]
    );
    for script in &scripts {
        let bytes = std::fs::read(billing.manifest.dir.join(script.path)).unwrap();
        assert_eq!(script.checksum, checksum::sha256(&bytes));
        assert!(script.statements.iter().all(|s| s.file == script.path));
    }
    assert!(
        scripts[0].statements[0]
            .sql
            .starts_with("CREATE TABLE IF NOT EXISTS tax_rates")
    );
    assert!(
        scripts[0].statements[1]
            .sql
            .starts_with("INSERT INTO tax_rates")
    );
    // Other phases list their files with checksums but no statement ranges.
    let functions = billing.phase(Phase::Functions).unwrap();
    assert!(functions.files.iter().all(|f| f.statements.is_none()));
    assert_eq!(functions.files.len(), 4);
    // The package checksum is stable and differs between the two versions.
    assert_eq!(billing.checksum.len(), 64);
    assert_ne!(billing.checksum, plan.packages[1].checksum);
    assert_eq!(billing.checksum, plan_of(&example()).packages[2].checksum);
}

#[test]
fn valid_workspace_resolves_ranges_to_the_highest_matching_version() {
    let plan = plan_of(&fixture("plan-valid"));
    assert_eq!(
        order(&plan),
        [
            "ledger 1.0.0",
            "ledger 1.4.2",
            "accounts 0.3.1",
            "ledger 2.0.0-rc.1",
            "statements 2.1.0"
        ]
    );
    let deps = |i: usize| -> Vec<String> {
        plan.packages[i]
            .dependencies
            .iter()
            .map(|d| {
                format!(
                    "{} {} -> {} {:?} {}",
                    d.name, d.requirement, d.version, d.schema, d.deployed_only
                )
            })
            .collect()
    };
    // ^1.2 picks 1.4.2: not 1.0.0 (too low), not the 2.0.0 pre-release.
    assert_eq!(
        deps(2),
        [r#"ledger ^1.2 -> 1.4.2 Some("ledger_1_4_2") false"#]
    );
    // The ancestor's 01_00_xx means any 1.0.x.
    assert_eq!(
        deps(4),
        [
            r#"accounts >=0.3, <0.4 -> 0.3.1 Some("accounts_0_3_1") false"#,
            r#"ledger 01_00_xx -> 1.0.0 Some("ledger_1_0_0") false"#
        ]
    );
    let schemas: Vec<&str> = plan.schemas().collect();
    assert_eq!(
        schemas,
        [
            "ledger_1_0_0",
            "ledger_1_4_2",
            "accounts_0_3_1",
            "ledger_2_0_0_rc_1",
            "statements"
        ]
    );
}

#[test]
fn deployed_versions_take_part_in_resolution() {
    let path = fixture("plan-valid");
    let deployed = |name: &str, version: &str, schema: &str| Deployed {
        name: name.into(),
        version: v(version),
        schema: Some(schema.into()),
    };
    // A higher deployed version wins over the workspace's.
    let plan = plan_workspace(&path, &[deployed("ledger", "1.9.0", "ledger_1_9_0")]).unwrap();
    // Nothing in the workspace waits for ledger 1.4.2 any more.
    assert_eq!(order(&plan)[0], "accounts 0.3.1");
    let accounts = package(&plan, "accounts 0.3.1");
    assert_eq!(accounts.dependencies[0].version, v("1.9.0"));
    assert_eq!(
        accounts.dependencies[0].schema.as_deref(),
        Some("ledger_1_9_0")
    );
    assert!(accounts.dependencies[0].deployed_only);
    // At the same version the workspace's copy is the one used.
    let plan = plan_workspace(&path, &[deployed("ledger", "1.4.2", "ledger_1_4_2")]).unwrap();
    assert!(!package(&plan, "accounts 0.3.1").dependencies[0].deployed_only);

    // A package alone, its dependencies only deployed.
    let plan = plan_workspace(
        &example().join("reporting"),
        &[
            deployed("billing", "1.4.7", "billing_1_4_7"),
            deployed("billing", "1.5.0-rc.1", "billing_1_5_0_rc_1"),
            deployed("core", "1.2.0", "core"),
        ],
    )
    .unwrap();
    assert_eq!(order(&plan), ["reporting 1.0.0"]);
    let deps: Vec<_> = plan.packages[0]
        .dependencies
        .iter()
        .map(|d| (d.name.as_str(), d.version.to_string(), d.deployed_only))
        .collect();
    assert_eq!(
        deps,
        [
            ("billing", "1.4.7".to_string(), true),
            ("core", "1.2.0".to_string(), true)
        ]
    );
}

#[test]
fn a_dependency_cycle_names_every_package_on_it() {
    let stderr = plan_error("plan-cycle");
    let f = |p: &str| {
        fixture("plan-cycle")
            .join(p)
            .join("package.json")
            .display()
            .to_string()
    };
    assert_eq!(
        stderr.trim_end(),
        format!(
            "error: dependency cycle between packages: alpha 1.0.0 ({}) -> beta 1.0.0 ({}) -> gamma 1.0.0 ({}) -> alpha 1.0.0 ({})",
            f("alpha"),
            f("beta"),
            f("gamma"),
            f("alpha")
        )
    );
    assert!(!stderr.contains("delta"), "{stderr}");
    let err = plan_workspace(&fixture("plan-cycle"), &[]).unwrap_err();
    assert!(
        matches!(&err, Error::Resolve(e) if matches!(&**e, ResolveError::Cycle { cycle } if cycle.len() == 4)),
        "{err:?}"
    );
}

#[test]
fn a_missing_dependency_is_named() {
    let stderr = plan_error("plan-missing-dependency");
    assert!(
        stderr.contains(
            "shop 1.0.0 (" // the manifest path follows
        ) && stderr.contains(
            "shop/package.json) depends on \"inventory\" ^2, but no package \"inventory\" is in the workspace or deployed in the database"
        ),
        "{stderr}"
    );
}

#[test]
fn an_unsatisfiable_range_lists_the_versions_that_exist() {
    let stderr = plan_error("plan-unsatisfiable");
    assert!(
        stderr.contains(
            "app/package.json) depends on \"core\" >=1.3, <2, which no available version satisfies; versions that exist: 1.2.5 (workspace), 1.1.0 (workspace)"
        ),
        "{stderr}"
    );
    // Deployed versions are listed too.
    let err = plan_workspace(
        &fixture("plan-unsatisfiable"),
        &[Deployed {
            name: "core".into(),
            version: v("1.2.9"),
            schema: Some("core_1_2_9".into()),
        }],
    )
    .unwrap_err();
    let Error::Resolve(e) = &err else {
        panic!("{err:?}");
    };
    let ResolveError::Unsatisfiable { available, .. } = &**e else {
        panic!("{err:?}");
    };
    assert_eq!(
        available,
        &[
            (v("1.2.9"), Source::Deployed),
            (v("1.2.5"), Source::Workspace),
            (v("1.1.0"), Source::Workspace)
        ]
    );
}

#[test]
fn malformed_json_reports_path_line_and_column() {
    let stderr = plan_error("plan-malformed-json");
    let path = fixture("plan-malformed-json").join("broken/package.json");
    assert_eq!(
        stderr.trim_end(),
        format!(
            "error: {}:4:3: malformed JSON: expected `,` or `}}`",
            path.display()
        )
    );
}

#[test]
fn an_unknown_key_is_named_with_the_known_ones() {
    let stderr = plan_error("plan-unknown-key");
    assert!(
        stderr.contains("typo/package.json: unknown key \"function_path\"; the known keys are: name, version, subclass, scope, description, license, owner_role, usage_roles, table_grants, extensions, settings, dependencies, types_path, tables_path, functions_path, views_path, triggers_path"),
        "{stderr}"
    );
    let err = plan_workspace(&fixture("plan-unknown-key"), &[]).unwrap_err();
    assert!(
        matches!(&err, Error::Manifest(ManifestError::UnknownKey { key, .. }) if key == "function_path"),
        "{err:?}"
    );
}

#[test]
fn a_bad_version_says_what_is_allowed() {
    let stderr = plan_error("plan-bad-version");
    assert!(
        stderr.contains("odd/package.json: invalid \"version\""),
        "{stderr}"
    );
    assert!(
        stderr.contains("caused by: \"1.4\" is not a version: write semver like 1.4.0 or 2.0.0-rc.1 (or the old 01_04_00 form)"),
        "{stderr}"
    );
}

#[test]
fn types_declared_in_reverse_order_across_files_are_ordered() {
    let plan = plan_of(&fixture("plan-types-reversed"));
    let types = plan.packages[0].phase(Phase::Types).unwrap();
    let got: Vec<String> = types
        .statements
        .iter()
        .map(|s| format!("{}:{} {}", s.file.display(), s.line, s.summary()))
        .collect();
    assert_eq!(
        got,
        [
            // DROPs in type files run first, as the ancestor did.
            "types/10_point.sql:2 DROP TYPE IF EXISTS legacy_point;",
            "types/9_coordinate.sql:1 create domain coordinate",
            "types/10_point.sql:1 create type point2",
            "types/2_segment.sql:1 create type segment",
            "types/1_polygon.sql:2 create type polygon_shape",
        ]
    );
    // Files are listed in natural path order.
    let files: Vec<String> = types
        .files
        .iter()
        .map(|f| f.path.display().to_string())
        .collect();
    assert_eq!(
        files,
        [
            "types/1_polygon.sql",
            "types/2_segment.sql",
            "types/9_coordinate.sql",
            "types/10_point.sql"
        ]
    );
}

#[test]
fn a_cyclic_pair_of_sql_functions_is_an_error_naming_both() {
    let stderr = plan_error("plan-function-cycle");
    let dir = fixture("plan-function-cycle").join("mutual/functions");
    assert_eq!(
        stderr.trim_end(),
        format!(
            "error: dependency cycle between SQL objects: function is_even(integer) ({even}:2) -> function is_odd(integer) ({odd}:1) -> function is_even(integer) ({even}:2)",
            even = dir.join("even.sql").display(),
            odd = dir.join("odd.sql").display()
        )
    );
    let err = plan_workspace(&fixture("plan-function-cycle"), &[]).unwrap_err();
    assert!(
        matches!(&err, Error::Sql(SqlError::Cycle { cycles, .. }) if cycles.len() == 1 && cycles[0].len() == 2),
        "{err:?}"
    );
}

#[test]
fn a_sql_syntax_error_points_at_file_line_column() {
    let stderr = plan_error("plan-syntax-error");
    let file = fixture("plan-syntax-error").join("broken_sql/types/2_bad.sql");
    assert!(
        stderr.starts_with(&format!("error: {}:4:14: syntax error: ", file.display())),
        "{stderr}"
    );
}

#[test]
fn packages_left_out_of_parsing_keep_their_place_but_no_phases() {
    // Deploy leaves out the packages it finds up to date.
    let full = plan_of(&example());
    let workspace = Workspace::load(&example()).unwrap();
    let partial = plan::build(workspace, &[], |p| p.manifest.name != "core").unwrap();
    assert_eq!(order(&partial), order(&full));
    for (a, b) in partial.packages.iter().zip(&full.packages) {
        assert_eq!(a.checksum, b.checksum);
        if a.manifest.name == "core" {
            assert!(
                a.parsing == Parsing::Skipped && a.phases.is_empty(),
                "{}",
                a.label()
            );
        } else {
            assert!(a.parsing == Parsing::Parsed, "{}", a.label());
            let statements = |p: &plan::PackagePlan| -> Vec<String> {
                p.phases
                    .iter()
                    .flat_map(|ph| ph.statements.iter().map(|s| s.sql.clone()))
                    .collect()
            };
            assert_eq!(statements(a), statements(b), "{}", a.label());
        }
    }
    assert!(full.packages.iter().all(|p| p.parsing == Parsing::Parsed));
}

#[test]
fn duplicate_and_clashing_packages_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = r#"{ "name": "twin", "version": "1.0.0" }"#;
    write_files(
        dir.path(),
        &[("a/package.json", manifest), ("b/package.json", manifest)],
    );
    let err = plan_workspace(dir.path(), &[]).unwrap_err();
    let Error::Workspace(e) = &err else {
        panic!("{err:?}");
    };
    let WorkspaceError::Duplicate { first, second, .. } = &**e else {
        panic!("{err:?}");
    };
    assert_eq!(first, &dir.path().join("a/package.json"));
    assert_eq!(second, &dir.path().join("b/package.json"));
    assert!(
        err.to_string()
            .starts_with("package twin 1.0.0 is defined twice: ")
    );

    // Two versions of a basic package would share one schema.
    let dir = tempfile::tempdir().unwrap();
    write_files(
        dir.path(),
        &[
            (
                "v1/package.json",
                r#"{ "name": "base", "version": "1.0.0", "subclass": "basic" }"#,
            ),
            (
                "v2/package.json",
                r#"{ "name": "base", "version": "1.1.0", "subclass": "basic" }"#,
            ),
        ],
    );
    let err = plan_workspace(dir.path(), &[]).unwrap_err();
    assert!(
        matches!(&err, Error::Workspace(e) if matches!(&**e, WorkspaceError::SchemaClash { schema, .. } if schema == "base")),
        "{err:?}"
    );
}

#[test]
fn discovery_skips_hidden_build_and_npm_folders_and_accepts_config_json() {
    let dir = tempfile::tempdir().unwrap();
    write_files(
        dir.path(),
        &[
            // Never read: would fail if they were.
            (".git/pkg/package.json", "{"),
            ("target/pkg/package.json", "{"),
            ("tools/node_modules/pkg/package.json", "{"),
            // A package's own folders are not searched for packages.
            (
                "ledger/package.json",
                r#"{ "name": "ledger", "version": "1.1.0", "functions_path": "functions" }"#,
            ),
            ("ledger/functions/nested/package.json", "{"),
            (
                "ledger/functions/nested/10_b.sql",
                "CREATE FUNCTION b() RETURNS int LANGUAGE sql RETURN 2;",
            ),
            (
                "ledger/functions/nested/2_a.sql",
                "CREATE FUNCTION a() RETURNS int LANGUAGE sql RETURN 1;",
            ),
            ("ledger/functions/notes.txt", "not SQL"),
            ("ledger/functions/.backup/old.sql", "this is not even SQL"),
            // The ancestor's manifest and its spellings.
            (
                "legacy/config.json",
                r#"{
                    "name": "legacy", "version": "00_02_00", "class": "postgres_sql",
                    "subclass": "versioned", "functions_path": "functions, triggers",
                    "user_roles": ["app_reader"], "dependencies": { "ledger": "x" }
                }"#,
            ),
            (
                "legacy/functions/f.sql",
                "CREATE FUNCTION f() RETURNS int LANGUAGE sql RETURN 1;",
            ),
            (
                "legacy/triggers/t.sql",
                "CREATE FUNCTION t() RETURNS int LANGUAGE sql RETURN 1;",
            ),
        ],
    );
    // A linked file counts as the package's own.
    std::os::unix::fs::symlink(
        dir.path().join("ledger/functions/nested/2_a.sql"),
        dir.path().join("ledger/functions/linked.sql"),
    )
    .unwrap();
    let plan = plan_of(dir.path());
    assert_eq!(order(&plan), ["ledger 1.1.0", "legacy 0.2.0"]);
    let ledger = &plan.packages[0];
    let files: Vec<String> = ledger.phases[0]
        .files
        .iter()
        .map(|f| f.path.display().to_string())
        .collect();
    assert_eq!(
        files,
        [
            "functions/linked.sql",
            "functions/nested/2_a.sql",
            "functions/nested/10_b.sql"
        ]
    );
    let legacy = &plan.packages[1];
    // The ancestor named the schema after the version as written.
    assert_eq!(legacy.schema.as_deref(), Some("legacy_00_02_00"));
    assert_eq!(legacy.manifest.usage_roles, ["app_reader"]);
    assert_eq!(legacy.dependencies[0].version, v("1.1.0"));
    assert_eq!(legacy.phases[0].files.len(), 2);

    // In a package.json the ancestor's keys are unknown.
    write_files(
        dir.path(),
        &[(
            "modern/package.json",
            r#"{ "name": "modern", "version": "1.0.0", "class": "postgres_sql" }"#,
        )],
    );
    let err = plan_workspace(dir.path(), &[]).unwrap_err();
    assert!(
        matches!(&err, Error::Manifest(ManifestError::UnknownKey { key, .. }) if key == "class"),
        "{err:?}"
    );
}

#[test]
fn package_checksum_follows_content_not_line_endings() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = r#"{ "name": "sum", "version": "1.0.0", "functions_path": "functions" }"#;
    let sql = "CREATE FUNCTION one() RETURNS int\nLANGUAGE sql RETURN 1;\n";
    write_files(
        dir.path(),
        &[("package.json", manifest), ("functions/one.sql", sql)],
    );
    let base = plan_of(dir.path()).packages[0].checksum.clone();
    write_files(
        dir.path(),
        &[("functions/one.sql", &sql.replace('\n', "\r\n"))],
    );
    assert_eq!(plan_of(dir.path()).packages[0].checksum, base);
    write_files(
        dir.path(),
        &[("functions/one.sql", &sql.replace("RETURN 1", "RETURN 2"))],
    );
    assert_ne!(plan_of(dir.path()).packages[0].checksum, base);
    // Renaming a file changes it too.
    std::fs::remove_file(dir.path().join("functions/one.sql")).unwrap();
    write_files(dir.path(), &[("functions/uno.sql", sql)]);
    assert_ne!(plan_of(dir.path()).packages[0].checksum, base);
}

#[test]
fn a_missing_folder_or_path_is_a_user_error() {
    let dir = tempfile::tempdir().unwrap();
    write_files(
        dir.path(),
        &[(
            "p/package.json",
            r#"{ "name": "p", "version": "1.0.0", "types_path": ["types", "more_types"] }"#,
        )],
    );
    std::fs::create_dir(dir.path().join("p/types")).unwrap();
    let (code, _, stderr) = run_plan(&[dir.path().to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("p/package.json: \"types_path\" folder \"more_types\" does not exist in "),
        "{stderr}"
    );
    let (code, _, stderr) = run_plan(&[dir.path().join("nowhere").to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(stderr.contains("nowhere does not exist"), "{stderr}");
    let empty = tempfile::tempdir().unwrap();
    let (code, _, stderr) = run_plan(&[empty.path().to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(stderr.contains("no package found in"), "{stderr}");
}

#[test]
fn plan_with_a_connection_reads_deployed_versions_and_existing_schemas() {
    let db = TestDb::new();
    let path = example();
    let path = path.to_str().unwrap();

    // Without the catalog: refused, exit 1.
    let (code, _, stderr) = run_plan(&[path, &db.conn_string()]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("pgpm is not installed"), "{stderr}");

    pgpm()
        .arg("install")
        .arg(db.conn_string())
        .assert()
        .success();
    db.exec("CREATE SCHEMA billing_1_3_0");
    if !crate::common::runs_the_example(&["plan", path, &db.conn_string()]) {
        return;
    }
    let (code, stdout, stderr) = run_plan(&[path, &db.conn_string()]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("   basic, schema core (new)\n"), "{stdout}");
    assert!(
        stdout.contains("   versioned, schema billing_1_3_0 (exists already)\n"),
        "{stdout}"
    );
    let (_, json, _) = run_plan(&[path, &db.conn_string(), "--json"]);
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    let exists: Vec<bool> = json["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["schema_exists"].as_bool().unwrap())
        .collect();
    assert_eq!(exists, [false, true, false, false]);

    // A deployed billing 1.4.5 satisfies reporting's ^1.4 better than the
    // workspace's 1.4.0; removed and old revisions do not count.
    db.exec(
        "INSERT INTO _pgpm.deployments (pgpm_version) VALUES ('test');
         INSERT INTO _pgpm.packages (name, version, v_major, v_minor, v_patch, subclass, schema_name, old_rev, removed_at, checksum, deployment_id)
         VALUES ('billing', '1.4.5', 1, 4, 5, 'versioned', 'billing_1_4_5', NULL, NULL, 'x', 1),
                ('billing', '1.4.9', 1, 4, 9, 'versioned', 'billing_1_4_9_0', 0, NULL, 'x', 1),
                ('billing', '1.4.8', 1, 4, 8, 'versioned', 'billing_1_4_8', NULL, now(), 'x', 1);",
    );
    let (code, stdout, stderr) = run_plan(&[path, &db.conn_string()]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("   depends on billing ^1.4 -> 1.4.5 (billing_1_4_5, deployed)\n"),
        "{stdout}"
    );
}

#[test]
fn explain_shows_what_each_statement_waits_for() {
    let ws = tempfile::tempdir().unwrap();
    let dir = crate::common::package(
        ws.path(),
        "app",
        serde_json::json!({ "name": "app", "version": "1.0.0", "functions_path": "functions" }),
        &[
            (
                "functions/1_b.sql",
                "CREATE FUNCTION b() RETURNS int LANGUAGE sql AS 'SELECT a() + 1';\n",
            ),
            (
                "functions/2_a.sql",
                "\nCREATE FUNCTION a() RETURNS int LANGUAGE sql AS 'SELECT 1';\n",
            ),
        ],
    );
    let (code, stdout, stderr) = output(pgpm().arg("plan").arg(&dir).arg("--explain").assert());
    assert_eq!(code, 0, "{stderr}");
    let lines: Vec<&str> = stdout.lines().map(str::trim).collect();
    let at = lines
        .iter()
        .position(|l| l.starts_with("functions/1_b.sql:1"))
        .expect("b is planned");
    assert!(lines[at - 1].starts_with("functions/2_a.sql:2"), "{stdout}");
    assert_eq!(lines[at + 1], "after functions/2_a.sql:2", "{stdout}");

    let (code, stdout, stderr) = output(pgpm().arg("plan").arg(&dir).arg("--json").assert());
    assert_eq!(code, 0, "{stderr}");
    let json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let statements = &json["packages"][0]["phases"][0]["statements"];
    assert_eq!(statements[0]["file"], "functions/2_a.sql");
    assert_eq!(statements[0]["waits_for"], serde_json::json!([]));
    assert_eq!(statements[1]["waits_for"], serde_json::json!([0]));
}
