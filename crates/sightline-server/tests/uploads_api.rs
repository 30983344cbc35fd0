//! The creating endpoints: `POST /projects/{p}/labels`, `POST /projects/{p}/datasets` (archive
//! upload + ingest) and `POST /models` (register an experiment's checkpoint), through
//! `app(state)` with tower `oneshot` over a real SQLite or PostgreSQL database, a real data area
//! and a real artifact store. Archives are built here (a small ustar writer; PNGs from `image`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{Value, json};
use sightline_db::testing::{TestDb, fresh_postgres, fresh_sqlite};
use sightline_server::{AppState, ServerConfig};

mod common;

const MANIFEST: &str = "project: line_u
# the ordered label set
labels:
  - ok
  - scratch
models:
  classifier:
    name: mobilenet_v3_small
    weights: none
  business_rules:
    max_ng_ratio: 0.3
    allow_unknown: false
";

const ENG: &str = "eng-secret";
const VIEWER: &str = "viewer-secret";

struct H {
    _t: TestDb,
    tmp: tempfile::TempDir,
    state: AppState,
    home: PathBuf,
    artifacts: PathBuf,
}

async fn harness(t: TestDb) -> H {
    let m = sightline_core::Manifest::parse(MANIFEST, "m.yaml").unwrap();
    sightline_db::projects::apply(&t.db, &m, MANIFEST, false)
        .await
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let artifacts = tmp.path().join("artifacts");
    let home = tmp.path().join("home");
    let state = common::state(
        &t.db,
        &[
            &format!("viewer1:viewer:{VIEWER}"),
            &format!("eng1:engineer:{ENG}"),
        ],
        ServerConfig {
            artifacts: artifacts.clone(),
            home: home.clone(),
            ..ServerConfig::default()
        },
    );
    H {
        _t: t,
        tmp,
        state,
        home,
        artifacts,
    }
}

async fn call(state: &AppState, req: Request<Body>) -> (StatusCode, Value) {
    let r = common::send(state, req).await;
    (r.status, r.json_or_null())
}

async fn get(state: &AppState, uri: &str) -> (StatusCode, Value) {
    call(state, Request::get(uri).body(Body::empty()).unwrap()).await
}

async fn post_json(state: &AppState, uri: &str, token: &str, body: Value) -> (StatusCode, Value) {
    let req = Request::post(uri)
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    call(state, req).await
}

async fn post_bytes(
    state: &AppState,
    uri: &str,
    token: &str,
    ct: &str,
    body: Vec<u8>,
) -> (StatusCode, Value) {
    let req = Request::post(uri)
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", ct)
        .body(Body::from(body))
        .unwrap();
    call(state, req).await
}

use common::error_message as message;

// --- archives -----------------------------------------------------------------------------

fn octal(field: &mut [u8], v: u64) {
    let s = format!("{v:0w$o}\0", w = field.len() - 1);
    field.copy_from_slice(s.as_bytes());
}

/// A ustar archive of regular files.
fn tar(entries: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, data) in entries {
        let mut h = [0u8; 512];
        h[..name.len()].copy_from_slice(name.as_bytes());
        octal(&mut h[100..108], 0o644);
        octal(&mut h[108..116], 0);
        octal(&mut h[116..124], 0);
        octal(&mut h[124..136], data.len() as u64);
        octal(&mut h[136..148], 1_700_000_000);
        h[148..156].fill(b' ');
        h[156] = b'0';
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
        h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        out.extend_from_slice(&h);
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out.extend_from_slice(&[0u8; 1024]);
    out
}

fn png(seed: u8) -> Vec<u8> {
    let img = image::RgbImage::from_fn(32, 24, |x, y| {
        image::Rgb([seed.wrapping_mul(40), (x * 7) as u8, (y * 9) as u8])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

/// A COCO data set as a tar: one image per `(file, label)`, one polygon instance each.
fn coco_tar(images: &[(&str, &str)]) -> Vec<u8> {
    let mut cats: Vec<&str> = images.iter().map(|(_, l)| *l).collect();
    cats.sort();
    cats.dedup();
    let categories: Vec<Value> = cats
        .iter()
        .enumerate()
        .map(|(i, c)| json!({"id": i + 1, "name": c}))
        .collect();
    let mut imgs = Vec::new();
    let mut anns = Vec::new();
    let mut entries = Vec::new();
    for (i, (file, label)) in images.iter().enumerate() {
        imgs.push(json!({"id": i + 1, "file_name": file, "width": 32, "height": 24}));
        let cat = cats.iter().position(|c| c == label).unwrap() + 1;
        anns.push(json!({"id": i + 1, "image_id": i + 1, "category_id": cat,
            "bbox": [4.0, 4.0, 10.0, 8.0], "area": 80.0, "iscrowd": 0,
            "segmentation": [[4.0, 4.0, 14.0, 4.0, 14.0, 12.0, 4.0, 12.0]]}));
        entries.push((format!("ds/images/{file}"), png(i as u8)));
    }
    let coco = json!({"images": imgs, "annotations": anns, "categories": categories});
    entries.push((
        "ds/annotations/instances.json".to_string(),
        serde_json::to_vec(&coco).unwrap(),
    ));
    tar(&entries)
}

fn multipart(fields: &[(&str, &str)], archive: &[u8], file_name: &str) -> (String, Vec<u8>) {
    let boundary = "sightline-test-boundary";
    let mut body = Vec::new();
    for (k, v) in fields {
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n")
                .as_bytes(),
        );
    }
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"archive\"; filename=\"{file_name}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(archive);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// Files left in a folder tree (none may remain in the upload/work area after a request).
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = fs_err::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.push(p.clone());
                out.extend(files_under(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

fn leftovers(h: &H) -> Vec<PathBuf> {
    let work = h.home.join("projects/line_u/datasets/work");
    files_under(&work)
        .into_iter()
        .filter(|p| p != &work.join("uploads"))
        .collect()
}

fn version_records(h: &H) -> usize {
    files_under(&h.home.join("projects/line_u/datasets/versions")).len()
}

// --- scenarios ----------------------------------------------------------------------------

async fn labels(h: &H) {
    let s = &h.state;
    let uri = "/projects/line_u/labels";
    let (st, v) = post_json(s, uri, ENG, json!({"labels": ["dent", "stain"]})).await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    assert_eq!(v["labels"], json!(["ok", "scratch", "dent", "stain"]));
    assert_eq!(
        v["appended"],
        json!([{"name": "dent", "position": 2}, {"name": "stain", "position": 3}])
    );
    let (st, v) = get(s, uri).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(v, json!(["ok", "scratch", "dent", "stain"]));
    // The stored manifest says the same (comments and other keys kept).
    let (_, p) = get(s, "/projects/line_u").await;
    assert_eq!(
        p["manifest"]["labels"],
        json!(["ok", "scratch", "dent", "stain"])
    );
    let yaml = p["manifest_yaml"].as_str().unwrap();
    assert!(yaml.contains("# the ordered label set") && yaml.contains("max_ng_ratio: 0.3"));
    let reparsed = sightline_core::Manifest::parse(yaml, "stored").unwrap();
    assert_eq!(reparsed.labels.len(), 4);

    // Existing names: conflict; nothing changes.
    let (st, v) = post_json(s, uri, ENG, json!({"labels": ["scratch", "hole"]})).await;
    assert_eq!(st, StatusCode::CONFLICT, "{v}");
    assert!(message(&v).contains("`scratch`"), "{v}");
    // Invalid names: every message, the manifest's wording.
    let (st, v) = post_json(
        s,
        uri,
        ENG,
        json!({"labels": ["a/b", "Dent", " x", "y", "y"]}),
    )
    .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
    let m = message(&v);
    for part in [
        "label `a/b` contains `/`",
        "only by letter case",
        "leading or trailing spaces",
        "duplicate label `y`",
    ] {
        assert!(m.contains(part), "{part} not in {m}");
    }
    let (st, _) = post_json(s, uri, ENG, json!({"labels": []})).await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    let (st, _) = post_json(s, uri, ENG, json!({"names": ["x"]})).await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    let (st, _) = post_json(s, uri, VIEWER, json!({"labels": ["hole"]})).await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let req = Request::post(uri)
        .header("content-type", "application/json")
        .body(Body::from(json!({"labels": ["hole"]}).to_string()))
        .unwrap();
    assert_eq!(call(s, req).await.0, StatusCode::UNAUTHORIZED);
    let (st, _) = post_json(s, "/projects/nope/labels", ENG, json!({"labels": ["x"]})).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (_, v) = get(s, uri).await;
    assert_eq!(v, json!(["ok", "scratch", "dent", "stain"]));
}

async fn datasets(h: &H) -> String {
    let s = &h.state;
    let uri = "/projects/line_u/datasets";
    let good = coco_tar(&[
        ("a.png", "scratch"),
        ("b.png", "dent"),
        ("c.png", "scratch"),
    ]);

    // Success: raw tar body, options as query parameters.
    let (st, v) = post_bytes(
        s,
        &format!("{uri}?message=first%20upload&split=0.5,0.5&format=coco"),
        ENG,
        "application/x-tar",
        good.clone(),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    assert_eq!(v["created"], true);
    let first = v["version"]["id"].as_str().unwrap().to_string();
    assert_eq!(first.len(), 32);
    assert!(v["version"]["parent"].is_null());
    assert_eq!(v["version"]["stats"]["images"], 3);
    assert_eq!(v["version"]["stats"]["instances"], 3);
    assert_eq!(v["version"]["source"], "upload:archive.tar");
    assert_eq!(v["version"]["author"], "eng1");
    let (st, d) = get(s, &format!("{uri}/{first}")).await;
    assert_eq!(st, StatusCode::OK, "{d}");
    assert_eq!(d["images"], 3);
    assert_eq!(d["instances"], 3);
    assert_eq!(d["message"], "first upload");
    assert_eq!(d["format"], "coco");
    assert!(leftovers(h).is_empty(), "{:?}", leftovers(h));

    // The same content (and split) again: the existing version, 200.
    let (st, v) = post_bytes(
        s,
        &format!("{uri}?split=0.5,0.5"),
        ENG,
        "application/x-tar",
        good.clone(),
    )
    .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["created"], false);
    assert_eq!(v["version"]["id"], first.as_str());

    // A label the project does not have: named with its file; no version recorded.
    let bad = coco_tar(&[("a.png", "scratch"), ("crack1.png", "crack")]);
    let records = version_records(h);
    let (st, v) = post_bytes(s, uri, ENG, "application/x-tar", bad.clone()).await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
    let m = message(&v);
    assert!(
        m.contains("label mapping failed; nothing was written")
            && m.contains("\"crack\" in crack1.png")
            && m.contains("--map old=new"),
        "{m}"
    );
    assert_eq!(version_records(h), records);
    let (_, list) = get(s, uri).await;
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert!(leftovers(h).is_empty(), "{:?}", leftovers(h));

    // Multipart with options as fields: map the unknown label; parent = the latest.
    let (ct, body) = multipart(
        &[
            ("message", "mapped"),
            ("map", "crack=dent"),
            ("split", "1,0"),
        ],
        &bad,
        "line.tar",
    );
    let (st, v) = post_bytes(s, uri, ENG, &ct, body).await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    assert_eq!(v["version"]["parent"], first.as_str());
    assert_eq!(v["version"]["source"], "upload:line.tar");
    assert_eq!(v["version"]["stats"]["images"], 2);
    assert!(
        v["notes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n == "mapped crack=dent (1x)"),
        "{v}"
    );
    let second = v["version"]["id"].as_str().unwrap().to_string();
    let (st, d) = get(s, &format!("{uri}/{second}")).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(d["parent_id"], first.as_str());
    assert_eq!(d["images"], 2);

    // A broken COCO file is reported with its name; nothing is recorded.
    let broken = tar(&[
        ("ds/images/a.png".to_string(), png(0)),
        (
            "ds/annotations/instances.json".to_string(),
            br#"{"images": [{"id": 1, "file_name": "a.png"}], "categories": ["#.to_vec(),
        ),
    ]);
    let records = version_records(h);
    let (st, v) = post_bytes(s, uri, ENG, "application/x-tar", broken).await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
    assert!(message(&v).contains("instances.json"), "{v}");
    assert_eq!(version_records(h), records);

    // Corrupt archive, not an archive, bad options.
    let (st, v) = post_bytes(s, uri, ENG, "application/zip", b"PK\x03\x04 nope".to_vec()).await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
    assert!(message(&v).contains("corrupt zip"), "{v}");
    let (st, v) = post_bytes(s, uri, ENG, "text/plain", b"hello".to_vec()).await;
    assert_eq!(st, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{v}");
    let (ct, body) = multipart(&[], b"hello", "notes.txt");
    let (st, _) = post_bytes(s, uri, ENG, &ct, body).await;
    assert_eq!(st, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let (st, v) = post_bytes(
        s,
        &format!("{uri}?format=pdf"),
        ENG,
        "application/x-tar",
        good.clone(),
    )
    .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert!(message(&v).contains("unknown format"), "{v}");
    let (st, v) = post_bytes(
        s,
        &format!("{uri}?colour=red"),
        ENG,
        "application/x-tar",
        good.clone(),
    )
    .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert!(message(&v).contains("unknown option `colour`"), "{v}");

    // Too large: streamed past the limit, or announced by Content-Length.
    s.set_max_dataset_upload_bytes(4096);
    let (st, v) = post_bytes(s, uri, ENG, "application/x-tar", good.clone()).await;
    assert_eq!(st, StatusCode::PAYLOAD_TOO_LARGE, "{v}");
    let req = Request::post(uri)
        .header("authorization", format!("Bearer {ENG}"))
        .header("content-type", "application/x-tar")
        .header("content-length", "5000")
        .body(Body::from(vec![0u8; 5000]))
        .unwrap();
    assert_eq!(call(s, req).await.0, StatusCode::PAYLOAD_TOO_LARGE);
    s.set_max_dataset_upload_bytes(sightline_server::DEFAULT_MAX_DATASET_UPLOAD_BYTES);

    // Unknown project, wrong role, no token.
    let (st, _) = post_bytes(
        s,
        "/projects/nope/datasets",
        ENG,
        "application/x-tar",
        good.clone(),
    )
    .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (st, _) = post_bytes(s, uri, VIEWER, "application/x-tar", good.clone()).await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let req = Request::post(uri)
        .header("content-type", "application/x-tar")
        .body(Body::from(good))
        .unwrap();
    assert_eq!(call(s, req).await.0, StatusCode::UNAUTHORIZED);

    let (_, list) = get(s, uri).await;
    assert_eq!(list.as_array().unwrap().len(), 2);
    assert!(leftovers(h).is_empty(), "{:?}", leftovers(h));
    first
}

async fn insert_experiment(h: &H, id: &str, dataset: &str, status: Option<&str>) {
    let db = h.state.registry().db();
    sightline_db::experiments::insert(
        db,
        "line_u",
        &sightline_db::experiments::NewExperiment {
            id,
            task: "classify",
            dataset_version_id: dataset,
            config: json!({"epochs": 1}),
            dir: &h
                .artifacts
                .join("experiments")
                .join(id)
                .display()
                .to_string(),
        },
    )
    .await
    .unwrap();
    let status = match status {
        None => return,
        Some("completed") => sightline_db::experiments::Status::Completed,
        Some(_) => sightline_db::experiments::Status::Failed,
    };
    sightline_db::experiments::finish(
        db,
        id,
        &sightline_db::experiments::Finish {
            status,
            best_epoch: Some(0),
            best_fitness: Some(0.5),
            best_metrics: json!({"top1": 0.5}),
            error: (status == sightline_db::experiments::Status::Failed).then_some("out of memory"),
        },
    )
    .await
    .unwrap();
}

fn write_weights(h: &H, id: &str, name: &str) {
    let dir = h.artifacts.join("experiments").join(id).join("weights");
    fs_err::create_dir_all(&dir).unwrap();
    fs_err::write(
        dir.join(format!("{name}.safetensors")),
        format!("weights of {id}"),
    )
    .unwrap();
}

async fn models(h: &H, dataset: &str) {
    let s = &h.state;
    let done = "20261129-020000";
    insert_experiment(h, done, dataset, Some("completed")).await;
    write_weights(h, done, "best");
    let (st, v) = post_json(
        s,
        "/models",
        ENG,
        json!({"project": "line_u", "experiment": done, "task": "classify",
            "alias": "staging", "note": "from the API"}),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    assert_eq!(v["experiment_id"], done);
    assert_eq!(v["dataset_version"], dataset);
    assert_eq!(v["task"], "classify");
    assert_eq!(v["version"], 1);
    assert_eq!(v["note"], "from the API");
    // No ONNX Runtime configured: the bundle gets no model.onnx and serves on Burn.
    assert!(v.get("onnx").is_some_and(Value::is_null), "{v}");
    let id = v["id"].as_i64().unwrap();
    let (st, l) = get(s, &format!("/models/{id}")).await;
    assert_eq!(st, StatusCode::OK, "{l}");
    let (_, aliases) = get(s, "/aliases?project=line_u").await;
    assert!(
        aliases
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["alias"] == "staging" && a["model_version_id"] == id),
        "{aliases}"
    );
    let (_, d) = get(s, &format!("/projects/line_u/datasets/{dataset}")).await;
    assert_eq!(d["models"][0]["id"], id, "{d}");

    // The `last` checkpoint is not there; the request cannot name a dataset version.
    let (st, v) = post_json(
        s,
        "/models",
        ENG,
        json!({"project": "line_u", "experiment": done, "checkpoint": "last"}),
    )
    .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
    assert!(message(&v).contains("no `last` weights"), "{v}");
    let (st, _) = post_json(
        s,
        "/models",
        ENG,
        json!({"project": "line_u", "experiment": done, "dataset_version": "x"}),
    )
    .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);

    // Unknown, running, failed, other project, other task, wrong role.
    let (st, v) = post_json(
        s,
        "/models",
        ENG,
        json!({"project": "line_u", "experiment": "19990101-000000"}),
    )
    .await;
    assert_eq!(st, StatusCode::NOT_FOUND, "{v}");
    let running = "20261129-030000";
    insert_experiment(h, running, dataset, None).await;
    write_weights(h, running, "best");
    let (st, v) = post_json(
        s,
        "/models",
        ENG,
        json!({"project": "line_u", "experiment": running}),
    )
    .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
    assert!(message(&v).contains("still running"), "{v}");
    let failed = "20261129-040000";
    insert_experiment(h, failed, dataset, Some("failed")).await;
    let (st, v) = post_json(
        s,
        "/models",
        ENG,
        json!({"project": "line_u", "experiment": failed}),
    )
    .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
    assert!(message(&v).contains("out of memory"), "{v}");
    let (st, v) = post_json(
        s,
        "/models",
        ENG,
        json!({"project": "other", "experiment": done}),
    )
    .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
    let (st, v) = post_json(
        s,
        "/models",
        ENG,
        json!({"project": "line_u", "experiment": done, "task": "segment"}),
    )
    .await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
    let (st, _) = post_json(
        s,
        "/models",
        VIEWER,
        json!({"project": "line_u", "experiment": done}),
    )
    .await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let (_, list) = get(s, "/models?project=line_u").await;
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
}

async fn scenario(t: TestDb) {
    let h = harness(t).await;
    labels(&h).await;
    let first = datasets(&h).await;
    models(&h, &first).await;
    // The OpenAPI document lists the three endpoints.
    let (_, doc) = get(&h.state, "/openapi.json").await;
    assert!(doc["paths"]["/projects/{project}/labels"]["post"].is_object());
    assert!(doc["paths"]["/projects/{project}/datasets"]["post"].is_object());
    assert!(doc["paths"]["/models"]["post"].is_object());
    drop(h.tmp);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_sqlite() {
    scenario(fresh_sqlite().await.unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_postgres() {
    scenario(fresh_postgres().await.unwrap()).await;
}
