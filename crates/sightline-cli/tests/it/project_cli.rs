//! `sightline project apply|list|show` on SQLite and on PostgreSQL, driving the real binary.
//! PostgreSQL must be reachable (SIGHTLINE_TEST_POSTGRES_URL): the test fails, never skips.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Output;

use sightline_db::testing::PgTestDatabase;
use sightline_testkit::Sightline;
use sightline_testkit::bin::CLEARED_ENV;

use crate::support::SIGHTLINE;

fn seed() -> PathBuf {
    sightline_testkit::seed_manifest()
}

struct Env<'a> {
    cwd: &'a Path,
    database_url: Option<String>,
}

impl Env<'_> {
    fn run(&self, args: &[&str]) -> Output {
        let mut bin = Sightline::new(SIGHTLINE)
            .current_dir(self.cwd)
            .env_removed(CLEARED_ENV);
        if let Some(url) = &self.database_url {
            bin = bin.arg("--database-url").arg(url);
        }
        bin.output(args)
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        serde_json::from_str(&self.ok(&all)).unwrap()
    }

    /// The database URL the binary uses (resolved default for SQLite).
    fn url(&self) -> String {
        self.json(&["config", "settings"])["database_url"]
            .as_str()
            .unwrap()
            .to_string()
    }
}

fn write_manifest(dir: &Path, labels: &str) -> PathBuf {
    let text = fs_err::read_to_string(seed()).unwrap().replace(
        "labels:\n  - ok\n  - ng\n  - scratch\n  - dent\n",
        &format!("labels: [{labels}]\n"),
    );
    assert!(text.contains(labels));
    let path = dir.join(format!("m-{}.yaml", labels.replace([',', ' '], "_")));
    fs_err::write(&path, text).unwrap();
    path
}

/// Record a dataset version directly, as the datasets layer will.
fn add_dataset_version(url: &str, project: &str) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let db = sightline_db::Db::connect(url).await.unwrap();
        let pid = sightline_db::projects::id_of(&db, project).await.unwrap();
        sightline_db::with_pool!(&db, |pool| {
            sqlx::query("INSERT INTO dataset_versions (id, project_id, message, author, created_at) VALUES ('ab12cd34', $1, 'first', 'qa', $2)")
                .bind(pid)
                .bind(sightline_db::now())
                .execute(pool)
                .await
                .unwrap();
        });
        db.close().await;
    });
}

fn scenario(env: &Env) {
    let seed = seed();
    let seed = seed.to_str().unwrap();
    let out = env.ok(&["project", "list"]);
    assert!(out.contains("no projects"), "{out}");

    let out = env.ok(&["project", "apply", seed]);
    assert!(
        out.contains("project widget_line_a created (4 labels)"),
        "{out}"
    );
    let out = env.ok(&["project", "apply", seed]);
    assert!(out.contains("unchanged"), "{out}");

    let out = env.ok(&["project", "list"]);
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].starts_with("PROJECT") && lines[1].starts_with("widget_line_a  4 "),
        "{out}"
    );
    let list = env.json(&["project", "list"]);
    assert_eq!(list[0]["name"], "widget_line_a");
    assert_eq!(list[0]["labels"], 4);

    let show = env.ok(&["project", "show", "widget_line_a"]);
    assert!(show.contains("3      dent"), "{show}");
    assert!(show.contains("max_ng_ratio 0.1"), "{show}");
    let show = env.json(&["project", "show", "widget_line_a"]);
    let labels: Vec<&str> = show["labels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["name"].as_str().unwrap())
        .collect();
    assert_eq!(labels, ["ok", "ng", "scratch", "dent"]);
    assert_eq!(show["manifest"]["detector"]["name"], "yolov8-seg");

    // Data depends on the class ids from now on.
    add_dataset_version(&env.url(), "widget_line_a");

    // Appending is fine.
    let appended = write_manifest(env.cwd, "ok, ng, scratch, dent, stain");
    let out = env.ok(&["project", "apply", appended.to_str().unwrap()]);
    assert!(
        out.contains("updated") && out.contains("+ stain (class 4, appended)"),
        "{out}"
    );

    // Reordering is refused, naming the dataset version, and changes nothing.
    let reordered = write_manifest(env.cwd, "ok, ng, dent, scratch, stain");
    let out = env.run(&["project", "apply", reordered.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("refusing to change the labels of project `widget_line_a`"),
        "{err}"
    );
    assert!(
        err.contains("~ dent (class 3 -> 2)") && err.contains("ab12cd34"),
        "{err}"
    );
    assert!(err.contains("--allow-label-change"), "{err}");
    let show = env.json(&["project", "show", "widget_line_a"]);
    assert_eq!(show["labels"][2]["name"], "scratch");
    assert_eq!(show["dataset_versions"][0], "ab12cd34");

    // Explicitly allowed.
    let out = env.ok(&[
        "project",
        "apply",
        "--allow-label-change",
        reordered.to_str().unwrap(),
    ]);
    assert!(out.contains("~ dent (class 3 -> 2)"), "{out}");
    let show = env.json(&["project", "show", "widget_line_a"]);
    assert_eq!(show["labels"][2]["name"], "dent");

    // Unknown project and invalid manifest.
    let out = env.run(&["project", "show", "nope"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("project `nope` does not exist"));
    fs_err::write(
        env.cwd.join("bad.yaml"),
        "project: x\nlabels: []\nmodels: {}\n",
    )
    .unwrap();
    let out = env.run(&["project", "apply", "bad.yaml"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.yaml:2:9: `labels` is empty"), "{err}");
}

#[test]
fn project_commands_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let env = Env {
        cwd: dir.path(),
        database_url: None,
    };
    scenario(&env);
    // the embedded default: <cwd>/.sightline/sightline.db
    assert!(dir.path().join(".sightline/sightline.db").is_file());
}

#[test]
fn project_commands_on_postgres() {
    let pg = PgTestDatabase::create()
        .unwrap_or_else(|e| panic!("PostgreSQL is required for this test: {e}"));
    let dir = tempfile::tempdir().unwrap();
    let env = Env {
        cwd: dir.path(),
        database_url: Some(pg.url().to_string()),
    };
    scenario(&env);
    assert!(
        !dir.path().join(".sightline/sightline.db").exists(),
        "no SQLite file when using PostgreSQL"
    );
}
