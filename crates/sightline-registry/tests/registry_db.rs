//! Registry workflow against real databases: SQLite and PostgreSQL (fresh database per test;
//! PostgreSQL tests fail, never skip, when the server is unreachable).

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::path::Path;

use sightline_core::{Manifest, Task};
use sightline_db::Db;
use sightline_db::testing::{TestDb, fresh_postgres, fresh_sqlite};
use sightline_registry::{
    EvaluationSummary, Gates, NewEvaluation, RegisterRequest, Registry, RegistryError,
};

const MANIFEST: &str = "project: widget_line_a
labels: [ok, ng, scratch, dent]
models:
  detector:
    name: yolov8n-seg
    weights: none
    hyperparameters: {epochs: 1, batch_size: 2, imgsz: 256}
    thresholds: {scratch: 0.4}
  classifier:
    name: mobilenet_v3_small
    weights: none
  business_rules:
    max_ng_ratio: 0.1
    allow_unknown: false
";

async fn setup(db: &Db) -> Manifest {
    let manifest = Manifest::parse(MANIFEST, "test.yaml").unwrap();
    sightline_db::projects::apply(db, &manifest, MANIFEST, false)
        .await
        .unwrap();
    manifest
}

fn request(manifest: &Manifest, task: Task, ckpt: &Path) -> RegisterRequest {
    RegisterRequest {
        manifest: manifest.clone(),
        task: Some(task),
        checkpoint: ckpt.to_path_buf(),
        experiment_id: None,
        dataset_version: None,
        evaluation_report: None,
        note: Some("first".into()),
        alias: None,
        actor: "test".into(),
        onnx: None,
    }
}

/// A tiny safetensors "checkpoint": one tensor holding `value`, optional class names.
fn weights(path: &Path, value: f32, names: Option<&[&str]>) {
    let t = sightline_torch::TensorF32 {
        shape: vec![1],
        data: vec![value],
        dtype: sightline_torch::DType::F32,
    };
    let meta = sightline_torch::Meta {
        names: names.map(|n| n.iter().map(|s| s.to_string()).collect()),
        ..Default::default()
    };
    sightline_torch::save_safetensors(path, [("w", &t)], &meta).unwrap();
}

async fn full_workflow(t: TestDb) {
    let manifest = setup(&t.db).await;
    let tmp = tempfile::tempdir().unwrap();
    let exp = tmp.path().join("experiments/20260101-000000/weights");
    fs_err::create_dir_all(&exp).unwrap();
    let ckpt = exp.join("best.safetensors");
    weights(&ckpt, 1.0, Some(&["scratch", "dent", "ng"]));
    let v1_bytes = fs_err::read(&ckpt).unwrap();
    let artifacts = tmp.path().join("artifacts");
    let reg = Registry::new(t.db.clone(), artifacts.clone());

    // Both tasks in the manifest: the task must be named.
    let mut no_task = request(&manifest, Task::Segment, &ckpt);
    no_task.task = None;
    assert!(matches!(
        reg.register(no_task).await,
        Err(RegistryError::Invalid(_))
    ));

    let v1 = reg
        .register(request(&manifest, Task::Segment, &ckpt))
        .await
        .unwrap();
    assert_eq!((v1.version, v1.task), (1, Task::Segment));
    assert_eq!(v1.experiment_id.as_deref(), Some("20260101-000000"));
    // A detector's class map: its checkpoint's names (see `sightline_registry::labels`).
    assert_eq!(v1.labels, vec!["scratch", "dent", "ng"]);
    assert_eq!(v1.thresholds["scratch"], 0.4);
    assert_eq!(v1.thresholds["dent"], 0.25);
    assert_eq!(v1.checkpoint_sha256, Registry::checksum(&ckpt).unwrap());
    let bundle = reg.open_bundle(&v1).unwrap();
    assert_eq!(bundle.manifest.version, 1);
    assert_eq!(fs_err::read(bundle.weights_path()).unwrap(), v1_bytes);
    assert_eq!(bundle.manifest.labels, v1.labels);

    // Names that are not project labels need an explicit map of the same length.
    weights(&ckpt, 2.0, Some(&["kratzer", "delle"]));
    let err = reg
        .register(request(&manifest, Task::Segment, &ckpt))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("--labels"), "{err}");
    assert!(
        reg.register_with_labels(
            request(&manifest, Task::Segment, &ckpt),
            Some(vec!["scratch".into()])
        )
        .await
        .is_err()
    );
    // Without names: the project's labels.
    weights(&ckpt, 2.0, None);
    let mut r2 = request(&manifest, Task::Segment, &ckpt);
    r2.alias = Some("staging".into());
    let v2 = reg.register(r2).await.unwrap();
    assert_eq!(v2.version, 2);
    assert_eq!(v2.labels, vec!["ok", "ng", "scratch", "dent"]);
    assert_ne!(v2.checkpoint_sha256, v1.checkpoint_sha256);
    // Numbering is per task.
    let c1 = reg
        .register(request(&manifest, Task::Classify, &ckpt))
        .await
        .unwrap();
    assert_eq!(c1.version, 1);
    assert_eq!(
        reg.list(Some("widget_line_a"), Some(Task::Segment))
            .await
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        reg.resolve("widget_line_a", Task::Segment, "staging")
            .await
            .unwrap()
            .id,
        v2.id
    );
    assert_eq!(
        reg.resolve("widget_line_a", Task::Segment, "v1")
            .await
            .unwrap()
            .id,
        v1.id
    );

    // Promotion gates: no evaluation -> refused.
    let gates = Gates {
        min_map: Some(0.5),
        min_accuracy: None,
    };
    match reg
        .promote(v2.id, "production", &gates, false, "test")
        .await
    {
        Err(RegistryError::GateFailed { failures, .. }) => {
            assert!(
                failures[0].contains("no recorded evaluation"),
                "{failures:?}"
            )
        }
        other => panic!("expected gate failure, got {other:?}"),
    }
    // An evaluation against the experiment counts for the version trained in it.
    reg.record_evaluation(NewEvaluation {
        experiment_id: Some("20260101-000000".into()),
        summary: EvaluationSummary {
            mask_map50_95: Some(0.4),
            ng_ratio: Some(0.05),
            ..Default::default()
        },
        ..Default::default()
    })
    .await
    .unwrap();
    match reg
        .promote(v2.id, "production", &gates, false, "test")
        .await
    {
        Err(RegistryError::GateFailed { failures, .. }) => {
            assert_eq!(failures.len(), 1);
            assert!(failures[0].contains("--min-map"), "{failures:?}");
        }
        other => panic!("expected gate failure, got {other:?}"),
    }
    // A newer evaluation on the version itself passes.
    reg.record_evaluation(NewEvaluation {
        model_version_id: Some(v2.id),
        summary: EvaluationSummary {
            mask_map50_95: Some(0.6),
            ng_ratio: Some(0.05),
            ..Default::default()
        },
        ..Default::default()
    })
    .await
    .unwrap();
    let p = reg
        .promote(v2.id, "production", &gates, false, "alice")
        .await
        .unwrap();
    assert!(!p.forced);
    assert_eq!(p.previous_model_version_id, None);
    // v1 shares the experiment's (failing) evaluation: forced promotion is recorded.
    let p = reg
        .promote(v1.id, "production", &gates, true, "bob")
        .await
        .unwrap();
    assert!(p.forced);
    assert_eq!(p.previous_model_version_id, Some(v2.id));
    let events = reg
        .alias_events("widget_line_a", Some(Task::Segment))
        .await
        .unwrap();
    let prod: Vec<_> = events.iter().filter(|e| e.alias == "production").collect();
    assert_eq!(prod.len(), 2);
    assert!(!prod[0].forced && prod[1].forced);
    assert_eq!(prod[1].actor, "bob");
    assert!(prod[1].overridden[0].contains("--min-map"));
    let aliases = reg.aliases(Some("widget_line_a"), None).await.unwrap();
    let names: Vec<_> = aliases
        .iter()
        .map(|a| (a.task, a.alias.as_str(), a.version))
        .collect();
    assert_eq!(
        names,
        vec![
            (Task::Segment, "production", 1),
            (Task::Segment, "staging", 2)
        ]
    );

    // Lineage.
    let lin = reg.lineage(v2.id).await.unwrap();
    assert_eq!(lin.evaluations.len(), 2);
    assert_eq!(
        lin.evaluations[0].model_version_id,
        Some(v2.id),
        "newest first"
    );
    assert_eq!(lin.aliases, vec!["staging"]);

    // Unknown project / tampered bundle.
    let mut other = manifest.clone();
    other.project = "nope".into();
    assert!(matches!(
        reg.register(request(&other, Task::Segment, &ckpt)).await,
        Err(RegistryError::NotFound(_))
    ));
    fs_err::write(bundle.weights_path(), b"tampered").unwrap();
    assert!(matches!(
        reg.open_bundle(&v1),
        Err(RegistryError::ChecksumMismatch { .. })
    ));
}

#[tokio::test]
async fn registry_workflow_sqlite() {
    full_workflow(fresh_sqlite().await.unwrap()).await;
}

#[tokio::test]
async fn registry_workflow_postgres() {
    full_workflow(fresh_postgres().await.unwrap()).await;
}
