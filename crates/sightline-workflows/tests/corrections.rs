//! Corrections → dataset version on SQLite and PostgreSQL: version 2's parent is version 1, the
//! corrected images are inside with their corrected annotations, rejections are left out, the
//! corrections are stamped and not used twice.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::json;
use sightline_datasets::version::CreateOptions;
use sightline_datasets::{ImageRecord, Imported, Segmentation};
use sightline_db::Db;
use sightline_db::corrections::{Action, CorrectedInstance, NewCorrection};
use sightline_db::inference_log::InferenceLogRow;
use sightline_db::testing::{fresh_postgres, fresh_sqlite};
use sightline_store::ArtifactStore;
use sightline_workflows::corrections::{CorrectionsError, image_key, version_from_corrections};

fn png(seed: u8) -> Vec<u8> {
    let img = image::RgbImage::from_fn(32, 24, |x, y| {
        image::Rgb([seed, (x * 7) as u8, (y * 9) as u8])
    });
    let mut out = Vec::new();
    image::DynamicImage::ImageRgb8(img)
        .write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png)
        .unwrap();
    out
}

fn sha(bytes: &[u8]) -> String {
    sightline_store::sha256_reader(&mut &bytes[..]).unwrap().0
}

async fn log_request(
    db: &Db,
    store: &ArtifactStore,
    id: &str,
    bytes: &[u8],
    response: serde_json::Value,
) {
    let h = sha(bytes);
    store
        .put(&image_key(&h, "png").unwrap(), bytes)
        .await
        .unwrap();
    let row = InferenceLogRow {
        request_id: id.into(),
        project: "line_a".into(),
        created_at: sightline_db::now(),
        verdict: "ng".into(),
        detector_version_id: None,
        classifier_version_id: None,
        label: Some("scratch".into()),
        confidence: Some(0.6),
        line: None,
        lot: None,
        camera: None,
        part_id: None,
        image_sha256: h,
        image_path: None,
        width: 32,
        height: 24,
        latency_ms: 3.0,
        response: sqlx_json(response),
        corrected: false,
        disagreement: false,
    };
    sightline_db::inference_log::insert_batch(db, &[row])
        .await
        .unwrap();
}

fn sqlx_json(v: serde_json::Value) -> sightline_db::inference_log::JsonValue {
    sightline_db::inference_log::JsonValue::from(v)
}

async fn correct(
    db: &Db,
    id: &str,
    action: Action,
    label: Option<&str>,
    inst: Option<Vec<CorrectedInstance>>,
) {
    sightline_db::corrections::insert(
        db,
        &NewCorrection {
            request_id: id.into(),
            action,
            image_label: label.map(str::to_string),
            instances: inst,
            note: None,
            author: "op1".into(),
        },
    )
    .await
    .unwrap()
    .unwrap();
}

async fn scenario(db: &Db, tmp: &Path) {
    let yaml = "project: line_a\nlabels: [ok, ng, scratch, dent]\nmodels:\n  classifier:\n    name: mobilenet_v3_small\n    weights: none\n";
    let m = sightline_core::Manifest::parse(yaml, "t.yaml").unwrap();
    sightline_db::projects::apply(db, &m, yaml, false)
        .await
        .unwrap();
    let home = tmp.join("home");
    let store = ArtifactStore::local(tmp.join("artifacts"));

    // No corrections yet → a clear error.
    let e = version_from_corrections(db, &store, &home, "line_a", "", "me")
        .await
        .unwrap_err();
    assert!(matches!(e, CorrectionsError::NoCorrections(_)), "{e}");

    // Logged requests and corrections, but no version 1 yet → a clear error.
    let response = json!({
        "detections": [
            {"label": "scratch", "class_id": 2, "confidence": 0.6, "box_xyxy": [2.0, 3.0, 12.0, 9.0],
             "polygons": [[2.0, 3.0, 12.0, 3.0, 12.0, 9.0, 2.0, 9.0]], "mask_rle": null, "above_threshold": true},
            {"label": "dent", "class_id": 3, "confidence": 0.1, "box_xyxy": [0.0, 0.0, 4.0, 4.0],
             "polygons": [], "mask_rle": null, "above_threshold": false}
        ],
        "classification": {"label": "ng", "top_label": "ng", "confidence": 0.7, "probabilities": {}}
    });
    log_request(db, &store, "req-accept", &png(1), response.clone()).await;
    log_request(db, &store, "req-relabel", &png(2), response.clone()).await;
    log_request(db, &store, "req-reject", &png(3), response.clone()).await;
    correct(db, "req-accept", Action::Accept, None, None).await;
    correct(db, "req-relabel", Action::Reject, None, None).await; // superseded below
    correct(
        db,
        "req-relabel",
        Action::Relabel,
        Some("ok"),
        Some(vec![CorrectedInstance {
            label: "dent".into(),
            polygons: vec![vec![1.0, 1.0, 8.0, 1.0, 8.0, 6.0]],
            box_xyxy: None,
        }]),
    )
    .await;
    correct(db, "req-reject", Action::Reject, None, None).await;
    let e = version_from_corrections(db, &store, &home, "line_a", "", "me")
        .await
        .unwrap_err();
    assert!(matches!(e, CorrectionsError::NoParent(_)), "{e}");

    // Version 1: one image, ingested the way the CLI does.
    let repo = sightline_workflows::dataset_repo(&home, "line_a").unwrap();
    let src = tmp.join("src");
    fs_err::create_dir_all(&src).unwrap();
    fs_err::write(src.join("a.png"), png(9)).unwrap();
    let mut rec = ImageRecord::new("a.png", 32, 24);
    rec.label = Some("ok".into());
    let (v1, _) = repo
        .create(
            Imported {
                dataset: sightline_datasets::Dataset {
                    categories: vec![],
                    images: vec![rec],
                },
                sources: BTreeMap::from([("a.png".to_string(), src.join("a.png"))]),
                issues: vec![],
                notes: vec![],
            },
            CreateOptions {
                message: "v1".into(),
                author: "t".into(),
                ..CreateOptions::default()
            },
        )
        .unwrap();
    sightline_db::datasets::insert(
        db,
        "line_a",
        &sightline_db::datasets::NewDatasetVersion {
            id: &v1.id,
            parent_id: None,
            message: "v1",
            author: "t",
            stats: json!({}),
            source: "test",
            format: None,
            nfiles: 2,
            size_bytes: 1,
            images: 1,
            instances: 0,
            notes: &[],
        },
    )
    .await
    .unwrap();

    let out = version_from_corrections(db, &store, &home, "line_a", "", "me")
        .await
        .unwrap();
    assert!(out.created);
    assert_eq!(out.parent, v1.id);
    assert_eq!(out.version.parent.as_deref(), Some(v1.id.as_str()));
    assert_eq!(out.images_added, 2);
    assert_eq!(out.rejected, 1);
    assert_eq!(out.corrections_used, 3);
    assert_eq!(
        out.request_ids,
        vec!["req-accept", "req-relabel", "req-reject"]
    );
    assert!(
        out.version
            .notes
            .iter()
            .any(|n| n.contains("req-relabel") && n.contains("relabel"))
    );
    assert_eq!(out.version.author, "me");

    let ds = repo.dataset(&out.version.id).unwrap();
    let files: Vec<&str> = ds.images.iter().map(|i| i.file.as_str()).collect();
    assert_eq!(
        files,
        vec![
            "a.png",
            "corrections/req-accept.png",
            "corrections/req-relabel.png"
        ]
    );
    let accepted = &ds.images[1];
    assert_eq!(accepted.label.as_deref(), Some("ng"));
    assert_eq!(
        accepted.instances.len(),
        1,
        "below-threshold predictions are left out"
    );
    assert_eq!(accepted.instances[0].label, "scratch");
    assert_eq!(accepted.instances[0].bbox, Some([2.0, 3.0, 10.0, 6.0]));
    let relabeled = &ds.images[2];
    assert_eq!(relabeled.label.as_deref(), Some("ok"));
    assert_eq!(relabeled.instances.len(), 1);
    assert_eq!(relabeled.instances[0].label, "dent");
    assert!(matches!(
        relabeled.instances[0].segmentation,
        Some(Segmentation::Polygons { .. })
    ));
    assert_eq!(relabeled.instances[0].bbox, Some([1.0, 1.0, 7.0, 5.0]));
    // The stored image is the logged one, byte for byte.
    let paths = repo.image_paths(&out.version.id).unwrap();
    assert_eq!(
        fs_err::read(&paths["corrections/req-relabel.png"]).unwrap(),
        png(2)
    );
    // Recorded in the database with its parent; corrections stamped.
    let row = sightline_db::datasets::list(db, "line_a")
        .await
        .unwrap()
        .into_iter()
        .find(|v| v.id == out.version.id)
        .unwrap();
    assert_eq!(row.parent_id.as_deref(), Some(v1.id.as_str()));
    assert_eq!(
        sightline_db::corrections::requests_of_version(db, "line_a", &out.version.id)
            .await
            .unwrap(),
        vec!["req-accept", "req-reject", "req-relabel"]
    );
    // Used once.
    let e = version_from_corrections(db, &store, &home, "line_a", "", "me")
        .await
        .unwrap_err();
    assert!(matches!(e, CorrectionsError::NoCorrections(_)), "{e}");
}

#[tokio::test]
async fn from_corrections_on_sqlite() {
    let t = fresh_sqlite().await.unwrap();
    let tmp = tempfile::tempdir().unwrap();
    scenario(&t.db, tmp.path()).await;
}

#[tokio::test]
async fn from_corrections_on_postgres() {
    let t = fresh_postgres()
        .await
        .expect("PostgreSQL at 127.0.0.1:5432 must be reachable");
    let tmp = tempfile::tempdir().unwrap();
    scenario(&t.db, tmp.path()).await;
}
