//! Corrections, history (filters, sort, keyset paging, CSV, stored image with overlay), the
//! review queue and the corrections → dataset version endpoint, through `app(state)` with tower
//! `oneshot` over a real SQLite or PostgreSQL database and a real artifact store. Logged rows are
//! written with the same function the server's request logger uses.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{Value, json};
use sightline_db::Db;
use sightline_db::inference_log::InferenceLogRow;
use sightline_db::testing::{TestDb, fresh_postgres, fresh_sqlite};
use sightline_registry::Registry;
use sightline_server::{AppState, ServerConfig};

mod common;

const MANIFEST: &str = "project: line_a
labels: [ok, ng, scratch, dent]
models:
  detector:
    name: yolov8n-seg
    weights: none
  classifier:
    name: mobilenet_v3_small
    weights: none
  business_rules:
    max_ng_ratio: 0.5
    allow_unknown: true
";

struct H {
    _t: TestDb,
    _tmp: tempfile::TempDir,
    db: Db,
    state: AppState,
    home: PathBuf,
    artifacts: PathBuf,
}

async fn harness(t: TestDb, tokens: &[&str]) -> H {
    let m = sightline_core::Manifest::parse(MANIFEST, "m.yaml").unwrap();
    sightline_db::projects::apply(&t.db, &m, MANIFEST, false)
        .await
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let artifacts = tmp.path().join("artifacts");
    let home = tmp.path().join("home");
    let _registry = Registry::new(t.db.clone(), artifacts.clone());
    let state = common::state(
        &t.db,
        tokens,
        ServerConfig {
            artifacts: artifacts.clone(),
            home: home.clone(),
            ..ServerConfig::default()
        },
    );
    H {
        db: t.db.clone(),
        _t: t,
        _tmp: tmp,
        state,
        home,
        artifacts,
    }
}

fn png(seed: u8, w: u32, h: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([seed, (x * 5) as u8, (y * 3) as u8])
    });
    let mut out = Vec::new();
    image::DynamicImage::ImageRgb8(img)
        .write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png)
        .unwrap();
    out
}

/// A response as the inspect endpoint writes it: one scratch detection with a mask, and a
/// classification.
fn response(id: &str, class_label: Option<&str>, conf: f64, det: bool) -> Value {
    // 8x8 mask at rows 2..6, columns 2..6 of a 16x16 image, column-major RLE.
    let mut counts = vec![2 * 16 + 2];
    for _ in 0..4 {
        counts.push(4);
        counts.push(12);
    }
    let sum: u32 = counts.iter().sum();
    let last = counts.len() - 1;
    counts[last] = 16 * 16 - sum + 12;
    let detections = if det {
        json!([{"label": "scratch", "class_id": 2, "confidence": conf, "box_xyxy": [2.0, 2.0, 6.0, 6.0],
                "mask_rle": {"size": [16, 16], "counts": counts},
                "polygons": [[2.0, 2.0, 6.0, 2.0, 6.0, 6.0, 2.0, 6.0]], "above_threshold": true}])
    } else {
        json!([])
    };
    json!({
        "request_id": id, "project": "line_a", "verdict": "ng", "reasons": [],
        "detections": detections,
        "classification": {"label": class_label, "top_label": class_label.unwrap_or("ok"),
                           "confidence": conf, "probabilities": {}},
        "models": [], "width": 16, "height": 16, "image_sha256": "", "meta": {},
        "timing": {"decode_ms": 0.1, "inference_ms": 1.0, "total_ms": 2.0}, "created_at": ""
    })
}

#[allow(clippy::too_many_arguments)]
async fn log(
    h: &H,
    id: &str,
    secs: i64,
    verdict: &str,
    conf: f64,
    camera: &str,
    class_label: Option<&str>,
    disagreement: bool,
) {
    let bytes = png(secs as u8, 16, 16);
    let sha = sightline_store::sha256_reader(&mut &bytes[..]).unwrap().0;
    let store = sightline_store::ArtifactStore::local(h.artifacts.clone());
    store
        .put(
            &sightline_workflows::corrections::image_key(&sha, "png").unwrap(),
            &bytes,
        )
        .await
        .unwrap();
    let row = InferenceLogRow {
        request_id: id.into(),
        project: "line_a".into(),
        created_at: sightline_db::now() - chrono::Duration::seconds(1000 - secs),
        verdict: verdict.into(),
        detector_version_id: None,
        classifier_version_id: None,
        label: Some("scratch".into()),
        confidence: Some(conf),
        line: Some("L1".into()),
        lot: Some("lot-7".into()),
        camera: Some(camera.into()),
        part_id: None,
        image_sha256: sha,
        image_path: None,
        width: 16,
        height: 16,
        latency_ms: 2.0 + secs as f64,
        response: sightline_db::inference_log::JsonValue::from(response(
            id,
            class_label,
            conf,
            true,
        )),
        corrected: false,
        disagreement,
    };
    sightline_db::inference_log::insert_batch(&h.db, &[row])
        .await
        .unwrap();
}

async fn call(h: &H, req: Request<Body>) -> (StatusCode, Vec<u8>, String) {
    let r = common::send(&h.state, req).await;
    (r.status, r.body, r.content_type)
}

async fn get_json(h: &H, uri: &str) -> (StatusCode, Value) {
    let (s, b, _) = call(h, Request::get(uri).body(Body::empty()).unwrap()).await;
    (s, serde_json::from_slice(&b).unwrap_or(Value::Null))
}

async fn post_json(h: &H, uri: &str, token: Option<&str>, body: Value) -> (StatusCode, Value) {
    let mut r = Request::post(uri).header("content-type", "application/json");
    if let Some(t) = token {
        r = r.header("authorization", format!("Bearer {t}"));
    }
    let (s, b, _) = call(h, r.body(Body::from(body.to_string())).unwrap()).await;
    (s, serde_json::from_slice(&b).unwrap_or(Value::Null))
}

fn ids(v: &Value) -> Vec<String> {
    v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["request_id"].as_str().unwrap().to_string())
        .collect()
}

fn ingest_v1(home: &Path) -> String {
    let repo = sightline_workflows::dataset_repo(home, "line_a").unwrap();
    let src = home.join("src");
    fs_err::create_dir_all(&src).unwrap();
    fs_err::write(src.join("a.png"), png(200, 16, 16)).unwrap();
    let mut rec = sightline_datasets::ImageRecord::new("a.png", 16, 16);
    rec.label = Some("ok".into());
    let (v, _) = repo
        .create(
            sightline_datasets::Imported {
                dataset: sightline_datasets::Dataset {
                    categories: vec![],
                    images: vec![rec],
                },
                sources: BTreeMap::from([("a.png".to_string(), src.join("a.png"))]),
                issues: vec![],
                notes: vec![],
            },
            sightline_datasets::version::CreateOptions {
                message: "v1".into(),
                author: "t".into(),
                ..Default::default()
            },
        )
        .unwrap();
    v.id
}

async fn scenario(t: TestDb) {
    let h = harness(
        t,
        &[
            "viewer1:viewer:viewer-secret",
            "op1:operator:op-secret-1",
            "eng1:engineer:eng-secret-1",
        ],
    )
    .await;
    log(&h, "r1", 1, "ok", 0.9, "c0", Some("ok"), false).await;
    log(&h, "r2", 2, "unknown", 0.3, "c1", None, false).await;
    log(&h, "r3", 3, "ng", 0.2, "c0", Some("scratch"), false).await;
    log(&h, "r4", 4, "ng", 0.8, "c1", Some("ok"), true).await;
    log(&h, "r5", 5, "ok", 0.7, "c0", Some("ok"), false).await;

    // History: filters, sort, paging with cursor, corrected flag, lighter items.
    let (s, v) = get_json(
        &h,
        "/history?project=line_a&camera=c0&sort=confidence&order=asc",
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(ids(&v), vec!["r3", "r5", "r1"]);
    assert_eq!(v["total"], 3);
    assert_eq!(v["items"][0]["corrected"], false);
    assert_eq!(v["items"][0]["image_url"], "/history/r3/image");
    assert!(v["items"][0]["response"]["detections"].is_array());
    let (_, v) = get_json(&h, "/history?limit=2&include_response=false").await;
    assert_eq!(ids(&v), vec!["r5", "r4"]);
    assert!(v["items"][0].get("response").is_none());
    let cursor = v["next_cursor"].as_str().unwrap().to_string();
    let (_, v2) = get_json(&h, &format!("/history?limit=2&cursor={cursor}")).await;
    assert_eq!(ids(&v2), vec!["r3", "r2"]);
    let (_, v) = get_json(
        &h,
        "/history?min_confidence=0.25&max_confidence=0.75&verdict=unknown",
    )
    .await;
    assert_eq!(ids(&v), vec!["r2"]);
    let from = (chrono::Utc::now() - chrono::Duration::seconds(997)).to_rfc3339();
    let (_, v) = get_json(&h, &format!("/history?from={}", from.replace('+', "%2B"))).await;
    assert_eq!(ids(&v), vec!["r5", "r4"]);
    for bad in [
        "/history?sort=size",
        "/history?order=up",
        "/history?verdict=maybe",
        "/history?cursor=nonsense",
        "/history?from=yesterday",
    ] {
        let (s, v) = get_json(&h, bad).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{bad}: {v}");
        assert_eq!(v["error"]["code"], "bad_request");
    }

    // Review queue: unknown, low confidence, disagreement, rest.
    let (s, v) = get_json(&h, "/projects/line_a/review?limit=10").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(ids(&v), vec!["r2", "r3", "r4", "r5", "r1"]);
    let reasons: Vec<&str> = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["review_reason"].as_str().unwrap())
        .collect();
    assert_eq!(
        reasons,
        vec![
            "unknown",
            "low_confidence",
            "disagreement",
            "other",
            "other"
        ]
    );
    let (s, _) = get_json(&h, "/projects/nope/review").await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // Corrections: roles, validation, storage, corrected flag.
    let relabel = json!({"action": "relabel", "image_label": "ng",
        "instances": [{"label": "dent", "polygons": [[1, 1, 9, 1, 9, 9]], "box_xyxy": [1, 1, 9, 9]}],
        "note": "a dent"});
    let (s, v) = post_json(&h, "/history/r2/corrections", None, relabel.clone()).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{v}");
    let (s, _) = post_json(
        &h,
        "/history/r2/corrections",
        Some("viewer-secret"),
        relabel.clone(),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, v) = post_json(
        &h,
        "/history/r2/corrections",
        Some("op-secret-1"),
        relabel.clone(),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["author"], "op1");
    assert_eq!(v["action"], "relabel");
    assert_eq!(v["instances"][0]["label"], "dent");
    assert!(v["dataset_version_id"].is_null());
    let cases = [
        (json!({"action": "maybe"}), "action"),
        (json!({"action": "relabel"}), "relabel needs"),
        (json!({"action": "accept", "image_label": "ok"}), "takes no"),
        (
            json!({"action": "relabel", "image_label": "crack"}),
            "not a label",
        ),
        (
            json!({"action": "relabel", "instances": [{"label": "dent"}]}),
            "instances[0] needs",
        ),
        (
            json!({"action": "relabel", "instances": [{"label": "dent", "polygons": [[1, 1, 2, 2]]}]}),
            "at least 3",
        ),
        (
            json!({"action": "relabel", "instances": [{"label": "dent", "box_xyxy": [1, 1, 40, 4]}]}),
            "inside the 16x16",
        ),
        (
            json!({"action": "relabel", "instances": [{"label": "dent", "polygons": [[1, 1, 99, 1, 5, 5]]}]}),
            "outside",
        ),
        (json!({"action": "accept", "extra": 1}), "unknown field"),
    ];
    for (body, needle) in cases {
        let (s, v) = post_json(
            &h,
            "/history/r3/corrections",
            Some("op-secret-1"),
            body.clone(),
        )
        .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{body}: {v}");
        let msg = v["error"]["message"].as_str().unwrap();
        assert!(msg.contains(needle), "{body}: {msg}");
    }
    let (s, _) = post_json(
        &h,
        "/history/nope/corrections",
        Some("op-secret-1"),
        json!({"action": "accept"}),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = post_json(
        &h,
        "/history/r3/corrections",
        Some("op-secret-1"),
        json!({"action": "reject"}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, _) = post_json(
        &h,
        "/history/r4/corrections",
        Some("eng-secret-1"),
        json!({"action": "accept"}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, v) = get_json(&h, "/history/r2/corrections").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v.as_array().unwrap().len(), 1);
    assert_eq!(v[0]["note"], "a dent");
    let (s, _) = get_json(&h, "/history/nope/corrections").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (_, v) = get_json(&h, "/history?corrected=true&sort=time&order=asc").await;
    assert_eq!(ids(&v), vec!["r2", "r3", "r4"]);
    let (_, v) = get_json(&h, "/history/r2").await;
    assert_eq!(v["corrected"], true);
    let (_, v) = get_json(&h, "/projects/line_a/review").await;
    assert_eq!(
        ids(&v),
        vec!["r5", "r1"],
        "corrected requests leave the queue"
    );

    // CSV export with the same filters.
    let (s, b, ct) = call(
        &h,
        Request::get("/history.csv?corrected=true&sort=time&order=asc")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert!(ct.starts_with("text/csv"));
    let text = String::from_utf8(b).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    assert!(lines[0].starts_with("request_id,created_at,project,verdict,label,confidence"));
    assert!(lines[1].starts_with("r2,"));
    assert!(lines[1].ends_with(",true"));

    // Stored image, overlay, thumbnail; nothing from the request reaches the file system.
    let (s, b, ct) = call(
        &h,
        Request::get("/history/r3/image")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(ct, "image/png");
    assert_eq!(b, png(3, 16, 16));
    let (s, b, ct) = call(
        &h,
        Request::get("/history/r3/image?overlay=1")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(ct, "image/png");
    let drawn = image::load_from_memory(&b).unwrap().to_rgb8();
    let orig = image::load_from_memory(&png(3, 16, 16)).unwrap().to_rgb8();
    assert_eq!(drawn.dimensions(), (16, 16));
    assert_ne!(
        drawn.get_pixel(4, 4),
        orig.get_pixel(4, 4),
        "mask pixels are tinted"
    );
    assert_eq!(
        drawn.get_pixel(14, 14),
        orig.get_pixel(14, 14),
        "background untouched"
    );
    let (s, b, _) = call(
        &h,
        Request::get("/history/r3/image?max_side=16&overlay=0")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(image::load_from_memory(&b).unwrap().width(), 16);
    for (uri, code) in [
        ("/history/nope/image", StatusCode::NOT_FOUND),
        (
            "/history/..%2F..%2Fetc%2Fpasswd/image",
            StatusCode::NOT_FOUND,
        ),
        ("/history/r3/image?overlay=maybe", StatusCode::BAD_REQUEST),
        ("/history/r3/image?max_side=5000", StatusCode::BAD_REQUEST),
    ] {
        let (s, _, _) = call(&h, Request::get(uri).body(Body::empty()).unwrap()).await;
        assert_eq!(s, code, "{uri}");
    }

    // Feedback loop: engineer only; no version yet → 409; then version 2 from corrections.
    let (s, _) = post_json(
        &h,
        "/projects/line_a/datasets/from-corrections",
        Some("op-secret-1"),
        json!({}),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, v) = post_json(
        &h,
        "/projects/line_a/datasets/from-corrections",
        Some("eng-secret-1"),
        json!({}),
    )
    .await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no dataset version")
    );
    let v1 = ingest_v1(&h.home);
    sightline_db::datasets::insert(
        &h.db,
        "line_a",
        &sightline_db::datasets::NewDatasetVersion {
            id: &v1,
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
    let (s, v) = post_json(
        &h,
        "/projects/line_a/datasets/from-corrections",
        Some("eng-secret-1"),
        json!({"message": "fixes from line 1"}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["parent"], v1.as_str());
    assert_eq!(v["version"]["parent"], v1.as_str());
    assert_eq!(v["version"]["message"], "fixes from line 1");
    assert_eq!(v["version"]["author"], "eng1");
    assert_eq!(v["images_added"], 2);
    assert_eq!(v["rejected"], 1);
    assert_eq!(v["request_ids"], json!(["r2", "r3", "r4"]));
    let v2 = v["version"]["id"].as_str().unwrap().to_string();
    let (_, c) = get_json(&h, "/history/r2/corrections").await;
    assert_eq!(c[0]["dataset_version_id"], v2.as_str());
    let repo = sightline_workflows::dataset_repo(&h.home, "line_a").unwrap();
    let ds = repo.dataset(&v2).unwrap();
    let r2 = ds
        .images
        .iter()
        .find(|i| i.file == "corrections/r2.png")
        .unwrap();
    assert_eq!(r2.label.as_deref(), Some("ng"));
    assert_eq!(r2.instances[0].label, "dent");
    assert!(
        ds.images.iter().all(|i| i.file != "corrections/r3.png"),
        "rejected left out"
    );
    let (s, v) = post_json(
        &h,
        "/projects/line_a/datasets/from-corrections",
        Some("eng-secret-1"),
        json!({}),
    )
    .await;
    assert_eq!(s, StatusCode::CONFLICT);
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no unused corrections")
    );
    let (s, _) = post_json(
        &h,
        "/projects/nope/datasets/from-corrections",
        Some("eng-secret-1"),
        json!({}),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // Catalog reads of that lineage.
    let (s, v) = get_json(&h, &format!("/projects/line_a/datasets/{}", &v2[..8])).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["parent_id"], v1.as_str());
    assert_eq!(v["from_corrections"], json!(["r2", "r3", "r4"]));
    let (s, v) = get_json(&h, &format!("/projects/line_a/datasets/{v1}/diff/latest")).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        v["added"],
        json!(["corrections/r2.png", "corrections/r4.png"])
    );

    // Everything is in the OpenAPI document.
    let (_, doc) = get_json(&h, "/openapi.json").await;
    for p in [
        "/history",
        "/history.csv",
        "/history/{request_id}/image",
        "/history/{request_id}/corrections",
        "/projects/{project}/review",
        "/projects/{project}/datasets/from-corrections",
    ] {
        assert!(doc["paths"].get(p).is_some(), "{p} missing from openapi");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrections_history_review_feedback_sqlite() {
    scenario(fresh_sqlite().await.unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrections_history_review_feedback_postgres() {
    scenario(
        fresh_postgres()
            .await
            .expect("PostgreSQL at 127.0.0.1:5432 must be reachable"),
    )
    .await;
}
