//! `sightline register` takes the lineage of a registration from the experiment record: a real
//! one-epoch `sightline train classifier` run on the tiny environment, then `register
//! --experiment <id>` (no manifest, checkpoint, task or dataset flags), a checkpoint under
//! `artifacts/experiments/<id>/` (experiment found from the path), a `--dataset` that agrees
//! (accepted) or disagrees (refused), and the old path-only registration of a copied checkpoint.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use crate::support::train_env::{Env, done};

#[test]
fn register_takes_dataset_version_from_experiment() {
    let tmp = tempfile::tempdir().unwrap();
    let env = Env::new(tmp.path(), None, "classifier");
    let version = env.tiny_data();
    let ev = env.train(&["--config", "tiny.yaml", "--epochs", "1"]);
    let d = done(&ev);
    assert_eq!(d["status"], "completed");
    let id = d["experiment"].as_str().unwrap().to_string();

    // Only --experiment: project, task, checkpoint and dataset version from the record.
    let m: serde_json::Value =
        serde_json::from_str(&env.ok(&["--json", "register", "--experiment", &id])).unwrap();
    assert_eq!(m["project"], "tiny");
    assert_eq!(m["task"], "classify");
    assert_eq!(m["version"], 1);
    assert_eq!(m["experiment_id"], id.as_str());
    assert_eq!(m["dataset_version"], version.as_str(), "{m}");
    assert!(
        m["checkpoint_path"]
            .as_str()
            .unwrap()
            .ends_with(&format!("experiments/{id}/weights/best.safetensors")),
        "{m}"
    );

    // A checkpoint under artifacts/experiments/<id>/: the experiment comes from the path; a
    // --dataset prefix that agrees is accepted.
    let last = format!("artifacts/experiments/{id}/weights/last.safetensors");
    let m: serde_json::Value = serde_json::from_str(&env.ok(&[
        "--json",
        "register",
        "--config",
        "tiny.yaml",
        "--checkpoint",
        &last,
        "--dataset",
        &version[..8],
    ]))
    .unwrap();
    assert_eq!(m["version"], 2);
    assert_eq!(m["task"], "classify", "{m}");
    assert_eq!(m["experiment_id"], id.as_str());
    assert_eq!(m["dataset_version"], version.as_str());

    // Disagreements are refused, naming both.
    let e = env.fail(&[
        "register",
        "--experiment",
        &id,
        "--dataset",
        "0123456789abcdef0123456789abcdef",
    ]);
    assert!(
        e.contains("disagrees") && e.contains(&version) && e.contains(&id),
        "{e}"
    );
    let e = env.fail(&["register", "--experiment", &id, "--task", "segment"]);
    assert!(e.contains("trained a classify model"), "{e}");
    let e = env.fail(&["register", "--experiment", "19990101-000000"]);
    assert!(
        e.contains("experiment `19990101-000000`") && e.contains("not found"),
        "{e}"
    );
    let e = env.fail(&["register", "--checkpoint", &last]);
    assert!(e.contains("--config"), "{e}");

    // A checkpoint outside any experiment folder: no lineage, the flags as given.
    fs_err::copy(tmp.path().join(&last), tmp.path().join("copy.safetensors")).unwrap();
    let m: serde_json::Value = serde_json::from_str(&env.ok(&[
        "--json",
        "register",
        "--config",
        "tiny.yaml",
        "--checkpoint",
        "copy.safetensors",
        "--task",
        "classify",
    ]))
    .unwrap();
    assert_eq!(m["version"], 3);
    assert!(
        m["experiment_id"].is_null() && m["dataset_version"].is_null(),
        "{m}"
    );
}
