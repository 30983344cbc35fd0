//! Deployment bundles through the artifact store: registration writes them with the store's
//! atomic writes in the seed layout; opening for serving verifies every file against
//! `bundle.json`, and a fetching store copies bundles into a local cache first (the path an S3
//! store takes, exercised here with a local folder as the remote; `bundle_s3.rs` uses S3).

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use std::path::{Path, PathBuf};

use sightline_core::{Manifest, Task};
use sightline_db::testing::fresh_sqlite;
use sightline_registry::bundle::BundleStore;
use sightline_registry::{ModelVersion, RegisterRequest, Registry, RegistryError};
use sightline_store::ArtifactStore;

const MANIFEST: &str = "project: widget_line_a
labels: [ok, ng]
models:
  classifier:
    name: mobilenet_v3_small
    weights: none
    hyperparameters: {imgsz: 64}
";

fn request(manifest: &Manifest, ckpt: &Path) -> RegisterRequest {
    RegisterRequest {
        manifest: manifest.clone(),
        task: Some(Task::Classify),
        checkpoint: ckpt.to_path_buf(),
        experiment_id: None,
        dataset_version: None,
        evaluation_report: None,
        note: None,
        alias: None,
        actor: "test".into(),
        onnx: None,
    }
}

/// A tiny safetensors checkpoint whose bytes depend on `value`.
fn weights(path: &Path, value: f32) {
    let t = sightline_torch::TensorF32 {
        shape: vec![4],
        data: vec![value; 4],
        dtype: sightline_torch::DType::F32,
    };
    sightline_torch::save_safetensors(path, [("w", &t)], &Default::default()).unwrap();
}

/// Every file under `root`, relative, sorted (`/`-separated).
fn tree(root: &Path) -> Vec<String> {
    fn walk(dir: &Path, root: &Path, out: &mut Vec<String>) {
        let Ok(rd) = fs_err::read_dir(dir) else {
            return;
        };
        for e in rd {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, root, out);
            } else {
                let rel = p.strip_prefix(root).unwrap();
                out.push(rel.to_string_lossy().replace('\\', "/"));
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out.sort();
    out
}

struct Env {
    _tmp: tempfile::TempDir,
    _db: sightline_db::testing::TestDb,
    root: PathBuf,
    ckpt: PathBuf,
    manifest: Manifest,
    db: sightline_db::Db,
}

async fn env() -> Env {
    let t = fresh_sqlite().await.unwrap();
    let manifest = Manifest::parse(MANIFEST, "test.yaml").unwrap();
    sightline_db::projects::apply(&t.db, &manifest, MANIFEST, false)
        .await
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let ckpt = tmp.path().join("best.safetensors");
    weights(&ckpt, 1.0);
    Env {
        root: tmp.path().to_path_buf(),
        db: t.db.clone(),
        _db: t,
        _tmp: tmp,
        ckpt,
        manifest,
    }
}

#[tokio::test]
async fn local_store_keeps_the_seed_layout_and_opens_in_place() {
    let e = env().await;
    let artifacts = e.root.join("artifacts");
    let reg = Registry::new(e.db.clone(), artifacts.clone());
    let v1 = reg.register(request(&e.manifest, &e.ckpt)).await.unwrap();
    assert_eq!(v1.bundle_dir, "registry/widget_line_a/classify/v1");
    assert_eq!(
        tree(&artifacts),
        vec![
            "registry/widget_line_a/classify/v1/bundle.json",
            "registry/widget_line_a/classify/v1/weights.safetensors",
        ],
        "no temporary files left, nothing else written"
    );
    let bundle = reg.fetch_bundle(&v1).await.unwrap();
    assert_eq!(
        bundle.dir,
        artifacts.join("registry/widget_line_a/classify/v1")
    );
    assert_eq!(
        fs_err::read(bundle.weights_path()).unwrap(),
        fs_err::read(&e.ckpt).unwrap()
    );
    assert_eq!(bundle.manifest.files[0].sha256, v1.checkpoint_sha256);
    assert_eq!(reg.open_bundle(&v1).unwrap().manifest, bundle.manifest);

    // A bundle folder without a database row (interrupted registration) is moved aside.
    let orphan = artifacts.join("registry/widget_line_a/classify/v2");
    fs_err::create_dir_all(&orphan).unwrap();
    fs_err::write(orphan.join("weights.safetensors"), b"half").unwrap();
    weights(&e.ckpt, 2.0);
    let v2 = reg.register(request(&e.manifest, &e.ckpt)).await.unwrap();
    assert_eq!(v2.version, 2);
    reg.fetch_bundle(&v2).await.unwrap();
    let aside: Vec<String> = tree(&artifacts)
        .into_iter()
        .filter(|p| p.contains(".orphan-"))
        .collect();
    assert_eq!(aside.len(), 1, "{aside:?}");
    assert!(aside[0].starts_with("registry/widget_line_a/classify/v2.orphan-"));

    // Tampering in place is caught before any loader sees the file, naming the file.
    fs_err::write(bundle.weights_path(), b"tampered").unwrap();
    let err = reg.fetch_bundle(&v1).await.unwrap_err();
    assert!(
        matches!(err, RegistryError::ChecksumMismatch { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("weights.safetensors"), "{err}");
}

/// A model version as the registry would hand it to the engine.
async fn registered_in(store: BundleStore, e: &Env) -> (Registry, ModelVersion) {
    let reg = Registry::new(e.db.clone(), e.root.join("unused")).with_bundle_store(store);
    let v = reg.register(request(&e.manifest, &e.ckpt)).await.unwrap();
    (reg, v)
}

#[tokio::test]
async fn fetching_store_verifies_into_the_cache_and_reuses_it() {
    let e = env().await;
    let remote = e.root.join("remote");
    let cache = e.root.join("cache/bundles");
    let store = BundleStore::fetching(ArtifactStore::local(remote.clone()), cache.clone());
    let (reg, v1) = registered_in(store, &e).await;
    assert!(!e.root.join("unused").exists(), "bundles go to the store");
    assert_eq!(
        tree(&remote),
        vec![
            "registry/widget_line_a/classify/v1/bundle.json",
            "registry/widget_line_a/classify/v1/weights.safetensors",
        ]
    );
    // Not fetched yet: nothing to open from local disk.
    assert!(matches!(
        reg.open_bundle(&v1),
        Err(RegistryError::BundleIncomplete(_))
    ));

    let bundle = reg.fetch_bundle(&v1).await.unwrap();
    let cached = cache.join("registry/widget_line_a/classify/v1");
    assert_eq!(bundle.dir, cached);
    assert_eq!(
        tree(&cache),
        vec![
            "registry/widget_line_a/classify/v1/bundle.json",
            "registry/widget_line_a/classify/v1/weights.safetensors",
        ],
        "no staging folder left behind"
    );
    assert_eq!(
        fs_err::read(bundle.weights_path()).unwrap(),
        fs_err::read(&e.ckpt).unwrap()
    );
    assert_eq!(reg.open_bundle(&v1).unwrap().manifest, bundle.manifest);

    // A verified cached copy is reused: the store is not needed any more.
    let moved = e.root.join("remote-away");
    fs_err::rename(&remote, &moved).unwrap();
    let again = reg.fetch_bundle(&v1).await.unwrap();
    assert_eq!(again.manifest, bundle.manifest);

    // A cached copy that no longer verifies is fetched again.
    fs_err::rename(&moved, &remote).unwrap();
    fs_err::write(cached.join("weights.safetensors"), b"rotten").unwrap();
    let refetched = reg.fetch_bundle(&v1).await.unwrap();
    assert_eq!(
        fs_err::read(refetched.weights_path()).unwrap(),
        fs_err::read(&e.ckpt).unwrap()
    );

    // A cached copy of some other bundle (stale cache, another store) is not trusted: the
    // registered weights hash decides, and the fetch from this store replaces it.
    let mut other = v1.clone();
    other.checkpoint_sha256 = "0".repeat(64);
    let err = reg.fetch_bundle(&other).await.unwrap_err();
    assert!(err.to_string().contains("the registry recorded"), "{err}");
    assert!(reg.fetch_bundle(&v1).await.is_ok());
}

#[tokio::test]
async fn corrupt_partial_or_missing_downloads_never_reach_the_cache() {
    let e = env().await;
    let remote = e.root.join("remote");
    let cache = e.root.join("cache");
    let store = BundleStore::fetching(ArtifactStore::local(remote.clone()), cache.clone());
    let (reg, v1) = registered_in(store, &e).await;
    let remote_dir = remote.join("registry/widget_line_a/classify/v1");
    let good = fs_err::read(remote_dir.join("weights.safetensors")).unwrap();

    // Same size, different content: the hash catches it and names the object.
    let mut bad = good.clone();
    let last = bad.len() - 1;
    bad[last] ^= 0xff;
    fs_err::write(remote_dir.join("weights.safetensors"), &bad).unwrap();
    let err = reg.fetch_bundle(&v1).await.unwrap_err();
    match &err {
        RegistryError::ChecksumMismatch { path, expected, .. } => {
            assert_eq!(path, &remote_dir.join("weights.safetensors"));
            assert_eq!(expected, &v1.checkpoint_sha256);
        }
        other => panic!("expected a checksum mismatch, got {other:?}"),
    }
    assert!(tree(&cache).is_empty(), "{:?}", tree(&cache));

    // Truncated (a partial upload): caught by size and hash.
    fs_err::write(
        remote_dir.join("weights.safetensors"),
        &good[..good.len() / 2],
    )
    .unwrap();
    let err = reg.fetch_bundle(&v1).await.unwrap_err();
    assert!(
        matches!(err, RegistryError::ChecksumMismatch { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("expected"), "{err}");
    assert!(tree(&cache).is_empty());

    // A listed file missing from the store.
    fs_err::remove_file(remote_dir.join("weights.safetensors")).unwrap();
    let err = reg.fetch_bundle(&v1).await.unwrap_err();
    assert!(
        matches!(&err, RegistryError::BundleFileMissing(p) if p.ends_with("weights.safetensors")),
        "{err:?}"
    );
    assert!(tree(&cache).is_empty());

    // No bundle.json (an interrupted write): incomplete, never loaded.
    fs_err::write(remote_dir.join("weights.safetensors"), &good).unwrap();
    fs_err::remove_file(remote_dir.join("bundle.json")).unwrap();
    assert!(matches!(
        reg.fetch_bundle(&v1).await,
        Err(RegistryError::BundleIncomplete(_))
    ));

    // A manifest whose files leave the bundle folder is refused before any download.
    let escaping = r#"{"format":2,"project":"widget_line_a","task":"classify","version":1,
        "model_name":"m","labels":[],"preprocessing":{"kind":"letterbox","imgsz":64,"stride":32,"pad_value":114},
        "thresholds":{},"business_rules":{"max_ng_ratio":null,"allow_unknown":false},"weights":"../../x","files":[{"path":"../../x","sha256":"","size":0}],
        "created_at":"2026-01-01T00:00:00Z"}"#;
    fs_err::write(remote_dir.join("bundle.json"), escaping).unwrap();
    let err = reg.fetch_bundle(&v1).await.unwrap_err();
    assert!(
        matches!(&err, RegistryError::BundleInvalid { reason, .. } if reason.contains("leaves the bundle folder")),
        "{err:?}"
    );
    assert!(tree(&cache).is_empty());
}

/// Registering the Ultralytics fixture trained at 256 under a manifest that says 640 (the
/// default) writes the checkpoint's size into `bundle.json`, so the server letterboxes as
/// Ultralytics predicts; `--imgsz` (the override) still wins.
#[tokio::test]
async fn detector_bundle_takes_the_checkpoint_training_size() {
    const DET: &str = "project: widget_line_a
labels: [ok, ng, scratch, dent]
models:
  detector:
    name: yolov8n-seg
    weights: none
";
    let fixtures = std::env::var_os("SIGHTLINE_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures")
        });
    let ckpt = fixtures.join("ultralytics/yolov8n-seg-widgets.pt");
    assert!(
        ckpt.is_file(),
        "fixture {} missing (set SIGHTLINE_FIXTURES)",
        ckpt.display()
    );
    let t = fresh_sqlite().await.unwrap();
    let manifest = Manifest::parse(DET, "test.yaml").unwrap();
    assert_eq!(
        manifest.detector.as_ref().unwrap().hyperparameters.imgsz,
        640
    );
    sightline_db::projects::apply(&t.db, &manifest, DET, false)
        .await
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let reg = Registry::new(t.db.clone(), tmp.path().join("artifacts"));
    let req = RegisterRequest {
        task: Some(Task::Segment),
        ..request(&manifest, &ckpt)
    };
    let imgsz_of = |v: &ModelVersion| {
        let text = fs_err::read_to_string(
            tmp.path()
                .join("artifacts")
                .join(&v.bundle_dir)
                .join("bundle.json"),
        )
        .unwrap();
        let json: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(json["preprocessing"]["kind"], "letterbox");
        json["preprocessing"]["imgsz"].as_u64().unwrap()
    };
    let v1 = reg.register(req.clone()).await.unwrap();
    assert_eq!(imgsz_of(&v1), 256);
    assert!(
        matches!(
            v1.preprocessing,
            sightline_registry::Preprocessing::Letterbox { imgsz: 256, .. }
        ),
        "the version row agrees: {:?}",
        v1.preprocessing
    );
    let v2 = reg
        .register_with_overrides(
            req,
            sightline_registry::RegisterOverrides {
                imgsz: Some(320),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(imgsz_of(&v2), 320);
}
