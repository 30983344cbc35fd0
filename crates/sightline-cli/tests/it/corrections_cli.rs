//! `sightline dataset version --from-corrections` through the real binary on SQLite and
//! PostgreSQL: version 1 ingested from a folder, an inspected image logged and corrected, then
//! version 2 created from the correction with parent = version 1 and the corrected image inside.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;
use sightline_db::corrections::{Action, CorrectedInstance, NewCorrection};
use sightline_db::inference_log::{InferenceLogRow, JsonValue};
use sightline_testkit::Sightline;

use crate::support::SIGHTLINE;

fn seed() -> PathBuf {
    sightline_testkit::seed_manifest()
}

fn png(seed: u8) -> Vec<u8> {
    let img = sightline_vision::image::RgbImage::from_fn(24, 16, |x, y| {
        sightline_vision::image::Rgb([seed, (x * 9) as u8, (y * 13) as u8])
    });
    let mut out = Vec::new();
    sightline_vision::image::DynamicImage::ImageRgb8(img)
        .write_to(
            &mut std::io::Cursor::new(&mut out),
            sightline_vision::image::ImageFormat::Png,
        )
        .unwrap();
    out
}

fn run(home: &Path, url: &str, args: &[&str]) -> Output {
    Sightline::with_flags(SIGHTLINE, home, Some(url)).output(args)
}

fn ok(home: &Path, url: &str, args: &[&str]) -> String {
    let out = run(home, url, args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

async fn scenario(url: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    fs_err::create_dir_all(&home).unwrap();
    ok(&home, url, &["project", "apply", seed().to_str().unwrap()]);
    let p = "widget_line_a";

    // No corrections yet: a clear error.
    let out = run(
        &home,
        url,
        &["dataset", "version", "--from-corrections", "-p", p],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no unused corrections"), "{err}");

    // Version 1 from an image folder.
    let src = tmp.path().join("src");
    for (split, label, seed) in [("train", "ok", 1u8), ("val", "ng", 2)] {
        fs_err::create_dir_all(src.join(split).join(label)).unwrap();
        fs_err::write(
            src.join(split).join(label).join(format!("{seed}.png")),
            png(seed),
        )
        .unwrap();
    }
    let v1: Value = serde_json::from_str(&ok(
        &home,
        url,
        &[
            "--json",
            "dataset",
            "ingest",
            src.to_str().unwrap(),
            "--format",
            "folder",
            "-p",
            p,
            "-m",
            "v1",
        ],
    ))
    .unwrap();
    let v1 = v1["version"]["id"].as_str().unwrap().to_string();

    // One inspected image, logged as the server does (image by hash in the artifact store).
    let db = sightline_db::Db::connect(url).await.unwrap();
    let bytes = png(77);
    let sha = sightline_store::sha256_reader(&mut &bytes[..]).unwrap().0;
    let store = sightline_store::ArtifactStore::local(home.join("artifacts"));
    store
        .put(
            &sightline_workflows::corrections::image_key(&sha, "png").unwrap(),
            &bytes,
        )
        .await
        .unwrap();
    let rid = "0b6f3c1e-req-1";
    let row = InferenceLogRow {
        request_id: rid.into(),
        project: p.into(),
        created_at: sightline_db::now(),
        verdict: "ok".into(),
        detector_version_id: None,
        classifier_version_id: None,
        label: Some("ok".into()),
        confidence: Some(0.55),
        line: None,
        lot: None,
        camera: None,
        part_id: None,
        image_sha256: sha,
        image_path: None,
        width: 24,
        height: 16,
        latency_ms: 4.0,
        response: JsonValue::from(serde_json::json!({"detections": [],
            "classification": {"label": "ok", "top_label": "ok", "confidence": 0.55}})),
        corrected: false,
        disagreement: false,
    };
    sightline_db::inference_log::insert_batch(&db, &[row])
        .await
        .unwrap();
    sightline_db::corrections::insert(
        &db,
        &NewCorrection {
            request_id: rid.into(),
            action: Action::Relabel,
            image_label: Some("ng".into()),
            instances: Some(vec![CorrectedInstance {
                label: "scratch".into(),
                polygons: vec![vec![2.0, 2.0, 20.0, 2.0, 20.0, 10.0]],
                box_xyxy: None,
            }]),
            note: Some("missed scratch".into()),
            author: "op1".into(),
        },
    )
    .await
    .unwrap()
    .unwrap();
    db.close().await;

    // Version 2 from the correction.
    let out: Value = serde_json::from_str(&ok(
        &home,
        url,
        &[
            "--json",
            "dataset",
            "version",
            "--from-corrections",
            "-p",
            p,
            "-m",
            "from review",
            "--author",
            "alice",
        ],
    ))
    .unwrap();
    assert_eq!(out["created"], true, "{out}");
    assert_eq!(out["parent"], v1.as_str());
    assert_eq!(out["version"]["parent"], v1.as_str());
    assert_eq!(out["version"]["message"], "from review");
    assert_eq!(out["version"]["author"], "alice");
    assert_eq!(out["request_ids"], serde_json::json!([rid]));
    let v2 = out["version"]["id"].as_str().unwrap().to_string();
    assert_eq!(out["version"]["stats"]["images"], 3);

    // The latest version is v2, recorded with its parent; the corrected image is inside.
    let list: Value =
        serde_json::from_str(&ok(&home, url, &["--json", "dataset", "list", "-p", p])).unwrap();
    let text = list.to_string();
    assert!(text.contains(&v2), "{text}");
    let co = tmp.path().join("co");
    ok(
        &home,
        url,
        &[
            "dataset",
            "checkout",
            &v2,
            "--out",
            co.to_str().unwrap(),
            "-p",
            p,
        ],
    );
    let img = co.join("images/corrections").join(format!("{rid}.png"));
    assert_eq!(fs_err::read(&img).unwrap(), bytes);
    let ann: Value =
        serde_json::from_slice(&fs_err::read(co.join("annotations.json")).unwrap()).unwrap();
    let rec = ann["images"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["file"] == format!("corrections/{rid}.png"))
        .unwrap();
    assert_eq!(rec["label"], "ng");
    assert_eq!(rec["instances"][0]["label"], "scratch");

    // Each correction is used once.
    let out = run(
        &home,
        url,
        &["dataset", "version", "--from-corrections", "-p", p],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no unused corrections"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn from_corrections_cli_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("sl.db").display());
    scenario(&url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn from_corrections_cli_postgres() {
    let t = sightline_db::testing::fresh_postgres()
        .await
        .expect("PostgreSQL at 127.0.0.1:5432 must be reachable");
    scenario(&t.url).await;
}
