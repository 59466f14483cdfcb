//! Tests of naming, planning and scripts.

use std::path::Path;

use super::name::*;
use super::plan::*;
use super::scan::Patch;
use super::script::*;
use super::*;
use crate::util::checksum;

fn id(major: i32, minor: i32, point: i32) -> PatchId {
    PatchId {
        major,
        minor,
        point,
    }
}

fn patch(name: &str, text: &str) -> Patch {
    let PatchName::Patch(id, kind) = classify(name) else {
        panic!("{name}")
    };
    Patch {
        id,
        kind,
        path: Path::new("patches").join(name),
        file_name: name.into(),
        text: text.into(),
        checksum: checksum::sha256(text.as_bytes()),
    }
}

fn applied_row(p: &Patch) -> Applied {
    Applied {
        id: p.id,
        kind: p.kind.as_str().into(),
        file_name: p.file_name.clone(),
        checksum: p.checksum.clone(),
        applied_at: "2026-01-02 03:04:05 UTC".into(),
        applied_by: "alice".into(),
    }
}

fn names(plan: &MigrationPlan) -> Vec<Vec<&str>> {
    plan.groups
        .iter()
        .map(|g| g.steps.iter().map(|s| s.patch.file_name.as_str()).collect())
        .collect()
}

fn sel(all: bool, one: bool, types: &[PatchType]) -> Selection {
    Selection {
        all,
        one,
        types: types.to_vec(),
        out_of_order: false,
    }
}

fn mixed() -> Vec<Patch> {
    vec![
        patch("patch-1-0-0-std.sql", "SELECT 1;"),
        patch("patch-1-1-0-std.sql", "SELECT 2;"),
        patch("patch-1-2-0-concurrent.sql", "SELECT 3;"),
        patch("patch-1-3-0-direct.sql", "SELECT 4;"),
        patch("patch-1-4-0-std.sql", "SELECT 5;"),
    ]
}

#[test]
fn names_are_classified() {
    assert_eq!(
        classify("patch-1-10-0-std.sql"),
        PatchName::Patch(id(1, 10, 0), PatchType::Std)
    );
    assert_eq!(
        classify("patch-001-02-3-concurrent.sql"),
        PatchName::Patch(id(1, 2, 3), PatchType::Concurrent)
    );
    assert_eq!(classify("README.md"), PatchName::Other);
    assert_eq!(classify(".patch-1-0-0-std.sql.swp"), PatchName::Other);
    assert_eq!(classify("baseline.sql"), PatchName::Other);
    for bad in [
        "patch-1-0-std.sql",
        "patch-1-0-0-standard.sql",
        "patch-1-0-0-std.SQL",
        "Patch-1-0-0-std.sql",
        "patch_1_0_0_std.sql",
        "patch-1-0-0-std.sql.orig",
        "patch-a-0-0-std.sql",
        "patch-1--0-std.sql",
        "patch-99999999999-0-0-std.sql",
        "patch-1-0-0-0-std.sql",
        "patch-+1-0-0-std.sql",
    ] {
        assert!(matches!(classify(bad), PatchName::Malformed(_)), "{bad}");
    }
}

#[test]
fn plain_run_takes_the_first_group_only() {
    let plan = plan(Path::new("patches"), mixed(), &[], &Selection::default()).unwrap();
    assert_eq!(
        names(&plan),
        [["patch-1-0-0-std.sql", "patch-1-1-0-std.sql"]]
    );
    assert_eq!(plan.remaining, 3);
}

#[test]
fn all_takes_every_group_and_one_wins() {
    let plan = plan(Path::new("p"), mixed(), &[], &sel(true, false, &[])).unwrap();
    assert_eq!(
        names(&plan),
        vec![
            vec!["patch-1-0-0-std.sql", "patch-1-1-0-std.sql"],
            vec!["patch-1-2-0-concurrent.sql"],
            vec!["patch-1-3-0-direct.sql"],
            vec!["patch-1-4-0-std.sql"],
        ]
    );
    assert_eq!(plan.remaining, 0);
    let plan = plan_of(mixed(), &[], sel(true, true, &[]));
    assert_eq!(names(&plan), [["patch-1-0-0-std.sql"]]);
    assert_eq!(plan.remaining, 4);
}

fn plan_of(patches: Vec<Patch>, applied: &[Applied], sel: Selection) -> MigrationPlan {
    plan(Path::new("patches"), patches, applied, &sel).unwrap()
}

#[test]
fn applied_patches_are_not_pending_and_groups_form_among_the_rest() {
    let patches = mixed();
    let applied: Vec<Applied> = patches[..3].iter().map(applied_row).collect();
    let plan = plan_of(patches, &applied, Selection::default());
    assert_eq!(names(&plan), [["patch-1-3-0-direct.sql"]]);
    assert!(plan.warnings.is_empty());
}

#[test]
fn type_restrictions() {
    let err = plan(
        Path::new("patches"),
        mixed(),
        &[],
        &sel(true, false, &[PatchType::Concurrent]),
    )
    .unwrap_err();
    assert!(
        matches!(&err, PatchError::TypeNotAllowed { file_name, kind: PatchType::Std, .. } if file_name == "patch-1-0-0-std.sql"),
        "{err}"
    );
    // With --all, a later group of another type stops the run.
    let plan = plan_of(mixed(), &[], sel(true, false, &[PatchType::Std]));
    assert_eq!(names(&plan).len(), 1);
    assert_eq!(
        plan.held_back,
        Some(("patch-1-2-0-concurrent.sql".into(), PatchType::Concurrent))
    );
}

#[test]
fn ordering_is_numeric() {
    let mut patches: Vec<Patch> = [
        "patch-10-0-0-std.sql",
        "patch-2-2-22-std.sql",
        "patch-2-11-0-std.sql",
        "patch-2-2-3-std.sql",
        "patch-2-10-0-std.sql",
        "patch-2-2-2-std.sql",
    ]
    .iter()
    .map(|n| patch(n, ";"))
    .collect();
    patches.sort_by_key(|p| p.id);
    let plan = plan_of(patches, &[], Selection::default());
    assert_eq!(
        names(&plan),
        [[
            "patch-2-2-2-std.sql",
            "patch-2-2-3-std.sql",
            "patch-2-2-22-std.sql",
            "patch-2-10-0-std.sql",
            "patch-2-11-0-std.sql",
            "patch-10-0-0-std.sql",
        ]]
    );
}

#[test]
fn drift_is_an_error_and_a_missing_file_a_warning() {
    let patches = mixed();
    let mut applied: Vec<Applied> = patches[..2].iter().map(applied_row).collect();
    applied[0].checksum = "0".repeat(64);
    let err = plan(
        Path::new("patches"),
        patches.clone(),
        &applied,
        &Selection::default(),
    )
    .unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, PatchError::Drift(ref d) if d.len() == 1));
    assert!(
        message.contains("patches/patch-1-0-0-std.sql has changed"),
        "{message}"
    );
    assert!(
        message.contains("2026-01-02 03:04:05 UTC by alice"),
        "{message}"
    );

    let mut gone = applied_row(&patches[0]);
    gone.id = id(0, 9, 0);
    gone.file_name = "patch-0-9-0-std.sql".into();
    let plan = plan_of(patches, &[gone], Selection::default());
    assert!(matches!(&plan.warnings[..], [Warning::FileGone { .. }]));
    assert!(
        plan.warnings[0]
            .to_string()
            .contains("patch-0-9-0-std.sql was applied")
    );
}

#[test]
fn identity_is_the_numbers() {
    let patches = vec![patch("patch-1-0-0-direct.sql", "SELECT 1;")];
    let mut row = applied_row(&patches[0]);
    row.kind = "std".into();
    let plan = plan_of(patches, &[row], Selection::default());
    assert!(plan.is_empty());
    assert!(matches!(&plan.warnings[..], [Warning::TypeChanged { .. }]));
}

#[test]
fn transaction_control_is_refused_in_std_patches() {
    for text in [
        "BEGIN;\nCREATE TABLE t (i int);\nCOMMIT;\n",
        "CREATE TABLE t (i int);\n  commit;",
        "SELECT 1;\nROLLBACK;",
        "START TRANSACTION;",
    ] {
        let err = plan(
            Path::new("patches"),
            vec![patch("patch-1-0-0-std.sql", text)],
            &[],
            &Selection::default(),
        )
        .unwrap_err();
        assert!(
            matches!(err, PatchError::TransactionControl { .. }),
            "{text}: {err}"
        );
    }
    let ok = "SAVEPOINT a;\nSELECT 1;\nROLLBACK TO SAVEPOINT a;\nRELEASE a;\nDO $$ BEGIN PERFORM 1; END $$;";
    plan_of(
        vec![patch("patch-1-0-0-std.sql", ok)],
        &[],
        Selection::default(),
    );
}

#[test]
fn script_maps_parts_back_to_patches() {
    let plan = plan_of(
        vec![
            patch("patch-1-0-0-std.sql", "SELECT 1"),
            patch("patch-1-1-0-std.sql", "SELECT 2; -- trailing"),
        ],
        &[],
        Selection::default(),
    );
    let script = plan.groups[0].script(false, false);
    assert_eq!(&script.sql[script.parts[0].clone()], "SELECT 1");
    assert_eq!(
        &script.sql[script.parts[1].clone()],
        "SELECT 2; -- trailing"
    );
    assert_eq!(script.sql.matches(MARK).count(), 3);
    assert!(script.sql.contains("SELECT 1\n;\nSELECT extract(epoch"));
    assert_eq!(
        mark_micros("1732212345.123456"),
        Some(1_732_212_345_123_456)
    );
    assert_eq!(mark_micros("1732212345.5"), Some(1_732_212_345_500_000));
    assert_eq!(mark_micros("1732212345"), Some(1_732_212_345_000_000));
}
