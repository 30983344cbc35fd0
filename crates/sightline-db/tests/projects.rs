//! Projects and labels on both backends: every scenario runs on a fresh SQLite file and on a
//! fresh PostgreSQL database (which must be reachable: these tests fail, never skip).

#![allow(clippy::unwrap_used)]

use sightline_core::Manifest;
use sightline_db::projects::{self, LabelChange};
use sightline_db::testing::{TestDb, fresh_postgres, fresh_sqlite};
use sightline_db::{ApplyOutcome, Backend, Db, DbError, with_pool};

fn manifest(project: &str, labels: &[&str], epochs: u32) -> (Manifest, String) {
    let yaml = format!(
        "project: {project}\nlabels: [{}]\nmodels:\n  detector:\n    name: yolov8n-seg\n    hyperparameters:\n      epochs: {epochs}\n",
        labels.join(", ")
    );
    let m = Manifest::parse(&yaml, "test.yaml").unwrap();
    (m, yaml)
}

async fn add_dataset_version(db: &Db, project: &str, id: &str) {
    let pid = projects::id_of(db, project).await.unwrap();
    with_pool!(db, |pool| {
        sqlx::query("INSERT INTO dataset_versions (id, project_id, message, author, created_at) VALUES ($1, $2, 'm', 'a', $3)")
            .bind(id)
            .bind(pid)
            .bind(sightline_db::now())
            .execute(pool)
            .await
            .unwrap();
    });
}

async fn add_model_version(db: &Db, project: &str, task: &str, version: i64) {
    let pid = projects::id_of(db, project).await.unwrap();
    with_pool!(db, |pool| {
        sqlx::query("INSERT INTO model_versions (project_id, task, version, checkpoint_sha256, created_at) VALUES ($1, $2, $3, 'abc', $4)")
            .bind(pid)
            .bind(task)
            .bind(version)
            .bind(sightline_db::now())
            .execute(pool)
            .await
            .unwrap();
    });
}

async fn migrations_are_applied(t: &TestDb) {
    assert_eq!(t.db.applied_migrations().await.unwrap().first(), Some(&1));
    // connecting again is idempotent
    let again = Db::connect(&t.url).await.unwrap();
    assert_eq!(
        again.applied_migrations().await.unwrap(),
        t.db.applied_migrations().await.unwrap()
    );
    again.close().await;
}

async fn create_update_list_show(db: &Db) {
    let (m, yaml) = manifest("line_a", &["ok", "scratch", "dent"], 10);
    let r = projects::apply(db, &m, &yaml, false).await.unwrap();
    assert_eq!(r.outcome, ApplyOutcome::Created);
    assert_eq!(r.project.label_names(), ["ok", "scratch", "dent"]);
    assert_eq!(r.project.labels[2].position, 2);
    assert_eq!(r.project.manifest, m);
    assert_eq!(r.project.manifest_yaml, yaml);

    let r = projects::apply(db, &m, &yaml, false).await.unwrap();
    assert_eq!(r.outcome, ApplyOutcome::Unchanged);

    let (m2, yaml2) = manifest("line_a", &["ok", "scratch", "dent"], 20);
    let r = projects::apply(db, &m2, &yaml2, false).await.unwrap();
    assert_eq!(r.outcome, ApplyOutcome::Updated);
    assert!(r.label_changes.is_empty());
    assert_eq!(
        r.project.manifest.detector.unwrap().hyperparameters.epochs,
        20
    );
    assert!(r.project.updated_at >= r.project.created_at);

    let (mb, yamlb) = manifest("line_b", &["good", "bad"], 5);
    projects::apply(db, &mb, &yamlb, false).await.unwrap();
    let list = projects::list(db).await.unwrap();
    let names: Vec<_> = list.iter().map(|p| (p.name.as_str(), p.labels)).collect();
    assert_eq!(names, [("line_a", 3), ("line_b", 2)]);

    let err = projects::get(db, "nope").await.unwrap_err();
    assert!(
        matches!(err, DbError::ProjectNotFound(ref n) if n == "nope"),
        "{err}"
    );
}

async fn label_changes_are_guarded(db: &Db) {
    let (m, yaml) = manifest("guarded", &["ok", "scratch", "dent"], 10);
    projects::apply(db, &m, &yaml, false).await.unwrap();

    // With no data yet, a reorder is allowed and reported.
    let (m, yaml) = manifest("guarded", &["ok", "dent", "scratch"], 10);
    let r = projects::apply(db, &m, &yaml, false).await.unwrap();
    assert_eq!(r.outcome, ApplyOutcome::Updated);
    assert!(r.label_changes.contains(&LabelChange::Moved {
        name: "dent".into(),
        from: 2,
        to: 1
    }));
    assert_eq!(r.project.label_names(), ["ok", "dent", "scratch"]);

    add_dataset_version(db, "guarded", "d1c0ffee").await;
    add_model_version(db, "guarded", "segment", 1).await;

    // Appending is fine even with data; existing ids are untouched.
    let (m, yaml) = manifest("guarded", &["ok", "dent", "scratch", "stain"], 10);
    let r = projects::apply(db, &m, &yaml, false).await.unwrap();
    assert_eq!(
        r.label_changes,
        [LabelChange::Appended {
            name: "stain".into(),
            position: 3
        }]
    );
    assert_eq!(r.project.label_names(), ["ok", "dent", "scratch", "stain"]);

    // Removing or reordering is refused, naming the versions; nothing changes.
    let (m, yaml) = manifest("guarded", &["ok", "scratch", "stain"], 10);
    let err = projects::apply(db, &m, &yaml, false).await.unwrap_err();
    let DbError::LabelChangeRefused(refused) = &err else {
        panic!("{err}")
    };
    assert_eq!(refused.dataset_versions, ["d1c0ffee"]);
    assert_eq!(refused.model_versions, ["segment v1"]);
    assert!(refused.changes.contains(&LabelChange::Removed {
        name: "dent".into(),
        position: 1
    }));
    let msg = err.to_string();
    assert!(
        msg.contains("d1c0ffee")
            && msg.contains("segment v1")
            && msg.contains("--allow-label-change"),
        "{msg}"
    );
    let stored = projects::get(db, "guarded").await.unwrap();
    assert_eq!(stored.label_names(), ["ok", "dent", "scratch", "stain"]);
    assert_eq!(stored.manifest.labels, ["ok", "dent", "scratch", "stain"]);

    // Explicitly allowed: applied and reported.
    let r = projects::apply(db, &m, &yaml, true).await.unwrap();
    assert_eq!(r.project.label_names(), ["ok", "scratch", "stain"]);
    assert!(r.label_changes.iter().any(|c| c.is_breaking()));
    assert_eq!(
        projects::labels(db, "guarded").await.unwrap(),
        ["ok", "scratch", "stain"]
    );
    let list = projects::list(db).await.unwrap();
    let g = list.iter().find(|p| p.name == "guarded").unwrap();
    assert_eq!((g.dataset_versions, g.model_versions), (1, 1));
}

/// Dataset versions are keyed by (project, id) since migration 0007: a version of one project
/// does not exist for another, even with the same content hash.
async fn dataset_version_exists_is_per_project(db: &Db) {
    for name in ["dv_one", "dv_two"] {
        let (m, yaml) = manifest(name, &["ok", "ng"], 1);
        projects::apply(db, &m, &yaml, false).await.unwrap();
    }
    add_dataset_version(db, "dv_one", "0123abcd").await;
    let one = projects::id_of(db, "dv_one").await.unwrap();
    let two = projects::id_of(db, "dv_two").await.unwrap();
    use sightline_db::registry::dataset_version_exists;
    assert!(dataset_version_exists(db, one, "0123abcd").await.unwrap());
    assert!(!dataset_version_exists(db, two, "0123abcd").await.unwrap());
    assert!(!dataset_version_exists(db, one, "ffff").await.unwrap());
    // the same id in the second project is a separate version
    add_dataset_version(db, "dv_two", "0123abcd").await;
    assert!(dataset_version_exists(db, two, "0123abcd").await.unwrap());
}

async fn all_scenarios(t: TestDb, backend: Backend) {
    assert_eq!(t.db.backend(), backend);
    migrations_are_applied(&t).await;
    create_update_list_show(&t.db).await;
    label_changes_are_guarded(&t.db).await;
    dataset_version_exists_is_per_project(&t.db).await;
    t.db.close().await;
}

#[tokio::test]
async fn projects_on_sqlite() {
    all_scenarios(fresh_sqlite().await.unwrap(), Backend::Sqlite).await;
}

#[tokio::test]
async fn projects_on_postgres() {
    let t = fresh_postgres()
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL is required for this test: {e}"));
    all_scenarios(t, Backend::Postgres).await;
}

#[tokio::test]
async fn default_sqlite_file_and_folder_are_created() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("home/nested/sightline.db");
    let db = Db::connect(&format!("sqlite://{}", file.display()))
        .await
        .unwrap();
    assert!(file.exists());
    db.close().await;
}

#[tokio::test]
async fn unsupported_and_unreachable_urls() {
    let err = Db::connect("mysql://u:secret@h/db").await.unwrap_err();
    assert!(matches!(err, DbError::UnsupportedUrl(_)));
    assert!(!err.to_string().contains("secret"));
    let err = Db::connect("postgres://u:secret@127.0.0.1:1/db")
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("cannot connect") && !msg.contains("secret"),
        "{msg}"
    );
}
