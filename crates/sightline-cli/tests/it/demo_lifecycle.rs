//! `sightline demo` end to end through the real binary, on SQLite and on PostgreSQL: the demo
//! project goes through the whole lifecycle (data, dataset version 1, detector and classifier
//! training, evaluation reports, registry, production aliases, serving, inspections logged in
//! the history, a correction, dataset version 2 whose parent is version 1), and a second run
//! reuses everything.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Output;

use sightline_db::testing::PgTestDatabase;
use sightline_testkit::Sightline;

use crate::support::SIGHTLINE;

fn manifest() -> PathBuf {
    sightline_testkit::seed_manifest()
}

/// Runs in `cwd` so that the default artifact folder (`<cwd>/artifacts`) is the test's own.
fn sightline(cwd: &Path, db: &str, args: &[&str]) -> Output {
    let out = Sightline::new(SIGHTLINE)
        .current_dir(cwd)
        .env_removed(&["DATABASE_URL", "SIGHTLINE_DATABASE_URL", "SIGHTLINE_HOME"])
        .arg("--home")
        .arg(cwd.join("home"))
        .arg("--database-url")
        .arg(db)
        .output(args);
    assert!(
        out.status.success(),
        "sightline {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn json(cwd: &Path, db: &str, args: &[&str]) -> serde_json::Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    serde_json::from_slice(&sightline(cwd, db, &all).stdout).unwrap()
}

fn subdirs(p: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs_err::read_dir(p)
        .map(|r| {
            r.filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| p.is_dir())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn run_demo_twice(db: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let cwd = tmp.path();
    let manifest = manifest();
    let small = [
        "demo",
        "--manifest",
        manifest.to_str().unwrap(),
        "--train",
        "8",
        "--val",
        "4",
        "--size",
        "64",
        "--epochs",
        "1",
        "--imgsz",
        "64",
        "--cls-imgsz",
        "32",
        "--inspections",
        "3",
        "--addr",
        "127.0.0.1:0",
        "--no-serve",
    ];
    let first = String::from_utf8(sightline(cwd, db, &small).stdout).unwrap();
    for needle in ["[1/10]", "[10/10]", "created dataset version", "web UI:"] {
        assert!(first.contains(needle), "{needle:?} missing:\n{first}");
    }
    let home = cwd.join("home");
    assert!(
        home.join("demo/widget_line_a-synthetic/annotations/instances_train.json")
            .exists()
    );

    // Experiments: one per task, each with metrics.json and weights.
    let experiments = subdirs(&cwd.join("artifacts/experiments"));
    assert_eq!(experiments.len(), 2, "{experiments:?}");
    for e in &experiments {
        let metrics = fs_err::read_to_string(e.join("metrics.json")).unwrap();
        assert!(metrics.contains("\"epoch\""), "{metrics}");
        assert!(e.join("weights/best.safetensors").exists(), "{e:?}");
    }
    // Reports: a detector and a classifier report, both files each.
    let reports = subdirs(&cwd.join("artifacts/reports"));
    assert_eq!(reports.len(), 2, "{reports:?}");
    for r in &reports {
        assert!(r.join("report.json").exists() && r.join("report.html").exists());
    }
    // Registry: both tasks registered and in production.
    let models = json(cwd, db, &["model", "list", "--project", "widget_line_a"]);
    let text = models.to_string();
    assert!(
        text.contains("segment") && text.contains("classify"),
        "{text}"
    );
    let aliases = json(
        cwd,
        db,
        &["model", "alias", "list", "--project", "widget_line_a"],
    );
    let production = aliases
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["alias"] == "production")
        .count();
    assert_eq!(production, 2, "{aliases}");
    // Dataset version 2 from the correction, parent = version 1.
    let versions = json(cwd, db, &["dataset", "list", "--project", "widget_line_a"]);
    let versions = versions.as_array().unwrap().clone();
    assert_eq!(versions.len(), 2, "{versions:?}");
    let (v1, v2) = (&versions[0], &versions[1]);
    assert_eq!(v2["parent_id"], v1["id"], "{versions:?}");
    // History: every inspection logged, one corrected.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (rows, corrected) = rt.block_on(async {
        let pool = sightline_db::Db::connect(db).await.unwrap();
        let filter = sightline_db::inference_log::HistoryFilter {
            project: Some("widget_line_a".into()),
            ..Default::default()
        };
        let (rows, _) = sightline_db::inference_log::query(&pool, &filter)
            .await
            .unwrap();
        let corrected = sightline_db::inference_log::query(
            &pool,
            &sightline_db::inference_log::HistoryFilter {
                corrected: Some(true),
                ..filter
            },
        )
        .await
        .unwrap()
        .0
        .len();
        pool.close().await;
        (rows.len(), corrected)
    });
    assert_eq!(rows, 3);
    assert_eq!(corrected, 1);

    // A second run reuses everything.
    let second = String::from_utf8(sightline(cwd, db, &small).stdout).unwrap();
    for needle in [
        "reusing existing data",
        "reusing existing dataset version",
        "reusing experiment",
        "reusing segment model version",
        "reusing the evaluation",
        "already has a production model",
        "reusing the logged inspections",
        "reusing existing dataset version 2",
    ] {
        assert!(second.contains(needle), "{needle:?} missing:\n{second}");
    }
    assert_eq!(subdirs(&cwd.join("artifacts/experiments")).len(), 2);
    assert_eq!(subdirs(&cwd.join("artifacts/reports")).len(), 2);
    let again = json(cwd, db, &["dataset", "list", "--project", "widget_line_a"]);
    assert_eq!(again.as_array().unwrap().len(), 2);
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
