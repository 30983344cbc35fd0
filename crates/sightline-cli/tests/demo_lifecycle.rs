//! `sightline demo` end to end through the real binary, on SQLite and on PostgreSQL: the demo
//! project, its synthetic data and dataset version 1 appear, and a second run reuses them.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::{Command, Output};

use sightline_db::testing::PgTestDatabase;

fn workspace_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .and_then(Path::parent)
        .unwrap()
}

fn sightline(home: &Path, db: &str, args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_sightline"))
        .current_dir(workspace_root())
        .env_remove("DATABASE_URL")
        .env_remove("SIGHTLINE_DATABASE_URL")
        .arg("--home")
        .arg(home)
        .args(["--database-url", db])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "sightline {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn run_demo_twice(db: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    let small = ["demo", "--train", "6", "--val", "2", "--size", "64"];
    let first = String::from_utf8(sightline(&home, db, &small).stdout).unwrap();
    assert!(
        first.contains("[3/4]") && first.contains("created dataset version"),
        "{first}"
    );
    assert!(
        home.join("demo/widget_line_a-synthetic/annotations/instances_train.json")
            .exists()
    );

    let project: serde_json::Value = serde_json::from_slice(
        &sightline(&home, db, &["--json", "project", "show", "widget_line_a"]).stdout,
    )
    .unwrap();
    let text = project.to_string();
    for label in ["ok", "ng", "scratch", "dent"] {
        assert!(
            text.contains(&format!("\"{label}\"")),
            "label {label} missing: {text}"
        );
    }
    let versions: serde_json::Value = serde_json::from_slice(
        &sightline(
            &home,
            db,
            &["--json", "dataset", "list", "--project", "widget_line_a"],
        )
        .stdout,
    )
    .unwrap();
    assert_eq!(versions.as_array().unwrap().len(), 1, "{versions}");

    let second = String::from_utf8(sightline(&home, db, &small).stdout).unwrap();
    assert!(second.contains("reusing existing data"), "{second}");
    assert!(
        second.contains("reusing existing dataset version"),
        "{second}"
    );
    let again: serde_json::Value = serde_json::from_slice(
        &sightline(
            &home,
            db,
            &["--json", "dataset", "list", "--project", "widget_line_a"],
        )
        .stdout,
    )
    .unwrap();
    assert_eq!(
        again, versions,
        "a second demo run must not create another version"
    );
}

#[test]
fn demo_lifecycle_on_sqlite_is_idempotent() {
    let tmp = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", tmp.path().join("demo.db").display());
    run_demo_twice(&url);
}

#[test]
fn demo_lifecycle_on_postgres_is_idempotent() {
    let pg = PgTestDatabase::create()
        .expect("PostgreSQL must be reachable for this test (SIGHTLINE_TEST_POSTGRES_URL)");
    run_demo_twice(pg.url());
}
