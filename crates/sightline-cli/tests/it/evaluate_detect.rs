//! `sightline evaluate` on a YOLOv8-seg checkpoint through the real binary: project apply, a tiny synthetic set
//! from `demo generate`, `dataset ingest`, the fixture checkpoint placed in an experiment folder and registered;
//! then evaluate (latest dataset version, val split) → both report files with COCO box + mask stats, the
//! operating point and the gallery; the evaluation recorded in the database against the model version and the
//! experiment; `--post` accepted by a real `sightline serve`; `model promote --min-map` passing or failing on
//! what evaluate wrote.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers outside #[test] fns

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use sightline_testkit::{KillOnDrop as Server, Sightline, fixtures, http, spawn_server};

use crate::support::SIGHTLINE;

/// Classes of the fixture checkpoint are scratch, dent, ng: all labels of this project. `max_ng_ratio: 1.0` so
/// that only `--min-map` decides the promotions below.
const MANIFEST: &str = "project: widget_line_a
labels: [ok, ng, scratch, dent]
models:
  detector:
    name: yolov8n-seg
    weights: none
    hyperparameters: {imgsz: 128}
  business_rules:
    max_ng_ratio: 1.0
    allow_unknown: false
";

const EXPERIMENT: &str = "20260101-000000";

struct Env {
    dir: tempfile::TempDir,
    db_url: String,
}

impl Env {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let db_url = format!("sqlite://{}", dir.path().join("meta.db").display());
        Self { dir, db_url }
    }

    fn bin(&self) -> Sightline {
        Sightline::with_env_home(SIGHTLINE, self.dir.path(), &self.db_url)
            .env_remove("SIGHTLINE_DATABASE_URL")
            .env_remove("SIGHTLINE_API_TOKEN")
    }

    fn cmd(&self, args: &[&str]) -> Command {
        self.bin().command(args)
    }

    fn run(&self, args: &[&str]) -> (bool, String, String) {
        let r = self.bin().run(args);
        (r.success(), r.stdout, r.stderr)
    }

    fn ok(&self, args: &[&str]) -> String {
        self.bin().ok(args)
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }
}

fn start_server(env: &Env) -> (Server, String) {
    spawn_server(env.cmd(&["serve", "--addr", "127.0.0.1:0", "--poll-ms", "60000"]))
}

/// Project, a tiny synthetic data set ingested as a version, and the fixture checkpoint in an experiment folder.
fn setup(env: &Env) -> PathBuf {
    let manifest = env.path("widget_line_a.yaml");
    fs_err::write(&manifest, MANIFEST).unwrap();
    env.ok(&["project", "apply", manifest.to_str().unwrap()]);
    env.ok(&[
        "demo", "generate", "--out", "gen", "--train", "1", "--val", "4", "--size", "128",
    ]);
    env.ok(&[
        "dataset",
        "ingest",
        "gen",
        "--project",
        "widget_line_a",
        "--format",
        "coco",
    ]);
    let weights = env.path(&format!("artifacts/experiments/{EXPERIMENT}/weights"));
    fs_err::create_dir_all(&weights).unwrap();
    fs_err::copy(
        fixtures().join("ultralytics/yolov8n-seg-widgets.pt"),
        weights.join("best.pt"),
    )
    .unwrap();
    manifest
}

/// The `details` of every evaluation row.
fn evaluation_details(env: &Env) -> Vec<Value> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let pool = sqlx::SqlitePool::connect(&env.db_url).await.unwrap();
        let rows: Vec<(String,)> =
            sqlx::query_as("SELECT details FROM model_evaluations ORDER BY id")
                .fetch_all(&pool)
                .await
                .unwrap();
        pool.close().await;
        rows.into_iter()
            .map(|(d,)| serde_json::from_str(&d).unwrap())
            .collect()
    })
}

/// The monitoring baseline keys, in the shape the server's monitoring reads: `confidence_samples`
/// `{label: [f64 in 0..=1]}` and `confidence_histograms` `{label: [10 counts]}` agreeing with the samples.
fn assert_baseline_shape(v: &Value, labels: &[&str]) {
    let samples = v["confidence_samples"]
        .as_object()
        .expect("confidence_samples");
    let hists = v["confidence_histograms"]
        .as_object()
        .expect("confidence_histograms");
    let mut keys: Vec<&str> = samples.keys().map(String::as_str).collect();
    keys.sort_unstable();
    let mut want = labels.to_vec();
    want.sort_unstable();
    assert_eq!(keys, want, "{v}");
    for (label, s) in samples {
        let s: Vec<f64> = serde_json::from_value(s.clone()).unwrap();
        assert!(s.iter().all(|c| (0.0..=1.0).contains(c)), "{label}: {s:?}");
        let h: Vec<u64> = serde_json::from_value(hists[label].clone()).unwrap();
        assert_eq!(h.len(), 10);
        assert_eq!(h.iter().sum::<u64>(), s.len() as u64, "{label}");
    }
}

fn evaluations(env: &Env) -> Vec<(Option<i64>, Option<String>, Value)> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let pool = sqlx::SqlitePool::connect(&env.db_url).await.unwrap();
        let rows: Vec<(Option<i64>, Option<String>, String)> = sqlx::query_as(
            "SELECT model_version_id, experiment_id, summary FROM model_evaluations ORDER BY id",
        )
        .fetch_all(&pool)
        .await
        .unwrap();
        pool.close().await;
        rows.into_iter()
            .map(|(m, e, s)| (m, e, serde_json::from_str(&s).unwrap()))
            .collect()
    })
}

#[test]
fn evaluate_detector_reports_records_posts_and_gates_promotion() {
    let env = Env::new();
    let manifest = setup(&env);
    let cfg = manifest.to_str().unwrap();
    let ckpt = format!("artifacts/experiments/{EXPERIMENT}/weights/best.pt");
    let reg: Value = serde_json::from_str(&env.ok(&[
        "--json",
        "register",
        "--config",
        cfg,
        "--checkpoint",
        &ckpt,
    ]))
    .unwrap();
    assert_eq!(reg["experiment_id"], EXPERIMENT, "{reg}");
    let mv = reg["id"].as_i64().unwrap();

    let (_server, addr) = start_server(&env);
    let url = format!("http://{addr}/models/metrics");
    // `…/weights/best` finds best.pt; the task comes from the checkpoint; the data is the latest version.
    let out: Value = serde_json::from_str(&env.ok(&[
        "--json",
        "evaluate",
        "--config",
        cfg,
        "--checkpoint",
        &format!("artifacts/experiments/{EXPERIMENT}/weights/best"),
        "--post",
        &url,
    ]))
    .unwrap();
    assert_eq!(out["model_version_id"], mv, "{out}");
    assert_eq!(out["experiment_id"], EXPERIMENT);
    assert_eq!(out["posted"]["status"], 201, "{out}");

    let json_path = PathBuf::from(out["report_json"].as_str().unwrap());
    let html_path = PathBuf::from(out["report_html"].as_str().unwrap());
    let dir = json_path.parent().unwrap();
    assert!(
        dir.starts_with(env.path("artifacts/reports")),
        "{}",
        dir.display()
    );
    let name = dir.file_name().unwrap().to_str().unwrap();
    assert!(name.starts_with("widget_line_a-detector-"), "{name}");
    let report: Value = serde_json::from_slice(&fs_err::read(&json_path).unwrap()).unwrap();
    assert_eq!(report["task"], "detect");
    assert_eq!(report["dataset"]["split"], "val");
    assert_eq!(report["dataset"]["images"], 4);
    let version = report["dataset"]["version"].as_str().unwrap();
    assert!(name.contains(&version[..12]), "{name} vs {version}");
    assert_eq!(report["checkpoint_sha256"], reg["checkpoint_sha256"]);
    assert_eq!(
        report["class_names"],
        serde_json::json!(["scratch", "dent", "ng"])
    );
    let d = &report["detection"];
    for key in ["coco_box", "coco_mask"] {
        let stats = d[key].as_array().unwrap();
        assert_eq!(stats.len(), 12, "{key}");
        assert!(
            stats
                .iter()
                .all(|v| (-1.0..=1.0).contains(&v.as_f64().unwrap())),
            "{key}: {stats:?}"
        );
    }
    assert!(d["mask_map50_95"].as_f64().is_some());
    assert_eq!(d["confusion"].as_array().unwrap().len(), 4);
    let op = &report["operating"];
    assert_eq!(op["per_class"].as_array().unwrap().len(), 3);
    assert!(
        op["per_class"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| (r["threshold"].as_f64().unwrap() - 0.25).abs() < 1e-12)
    );
    let cm: u64 = op["ok_ng_confusion"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r.as_array().unwrap())
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(cm, 4);
    let gallery = report["gallery"].as_array().unwrap();
    assert!(gallery.len() <= 12);
    for g in gallery {
        assert!(
            g["data_uri"]
                .as_str()
                .unwrap()
                .starts_with("data:image/jpeg;base64,")
        );
    }
    let html = fs_err::read_to_string(&html_path).unwrap();
    assert!(html.contains("COCO metrics") && html.contains("At the operating point"));
    assert!(html.matches("<svg").count() >= 4);

    // Recorded locally (model version + experiment) and by the server from --post.
    let rows = evaluations(&env);
    assert_eq!(rows.len(), 2, "{rows:?}");
    for (m, e, s) in &rows {
        assert_eq!(*m, Some(mv));
        assert_eq!(e.as_deref(), Some(EXPERIMENT));
        assert_eq!(
            s["mask_map50_95"].as_f64(),
            d["coco_mask"][0].as_f64().filter(|v| *v >= 0.0)
        );
        assert_eq!(s["business_rules_passed"], true, "{s}");
    }
    // The monitoring baseline, in report.json and in both rows' details (the detections the server would log:
    // confidence above min(0.25, lowest threshold) = 0.25 here).
    assert_baseline_shape(&report, &["scratch", "dent", "ng"]);
    let details = evaluation_details(&env);
    assert_eq!(details.len(), 2);
    for d in &details {
        assert_baseline_shape(d, &["scratch", "dent", "ng"]);
        assert_eq!(d["confidence_samples"], report["confidence_samples"]);
    }
    let baseline_n: usize = report["confidence_samples"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_array().unwrap().len())
        .sum();
    assert!(
        report["confidence_samples"]
            .as_object()
            .unwrap()
            .values()
            .flat_map(|v| v.as_array().unwrap())
            .all(|c| c.as_f64().unwrap() > 0.25)
    );

    // Promotion gates read what evaluate wrote.
    let gate_map = d["coco_mask"][0].as_f64().unwrap().max(0.0);
    let (ok, stdout, stderr) = env.run(&[
        "model",
        "promote",
        "--project",
        "widget_line_a",
        "--task",
        "segment",
        "1",
        "--to",
        "staging",
        "--min-map",
        &format!("{}", gate_map + 0.01),
    ]);
    assert!(!ok, "promotion above the evaluated mAP passed:\n{stdout}");
    assert!(stderr.contains("--min-map"), "{stderr}");
    env.ok(&[
        "model",
        "promote",
        "--project",
        "widget_line_a",
        "--task",
        "segment",
        "1",
        "--to",
        "staging",
        "--min-map",
        &format!("{}", (gate_map - 0.01).max(0.0)),
    ]);

    // Production monitoring compares served confidences with this evaluation: promote to production, serve,
    // inspect the same val images, and the baseline is the evaluation with per-class KS statistics.
    env.ok(&[
        "model",
        "promote",
        "--project",
        "widget_line_a",
        "--task",
        "segment",
        "1",
        "--to",
        "production",
    ]);
    drop(_server);
    let (_server, addr) = start_server(&env);
    let start = std::time::Instant::now();
    loop {
        let (_, h) = http(&addr, "GET", "/health", "text/plain", b"");
        if h["deployments"]
            .as_array()
            .is_some_and(|d| d.iter().any(|d| d["serving_version"] == 1))
        {
            break;
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(120),
            "the server never served version 1: {h}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let mut images: Vec<PathBuf> = fs_err::read_dir(env.path("gen/images/val"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    images.sort();
    assert_eq!(images.len(), 4);
    let mut served = 0;
    for im in &images {
        let (s, v) = http(
            &addr,
            "POST",
            "/projects/widget_line_a/inspect",
            "image/jpeg",
            &fs_err::read(im).unwrap(),
        );
        assert_eq!(s, 200, "{v}");
        served += v["detections"].as_array().unwrap().len();
    }
    // Same images, same model, same floor: production sees what the evaluation saw.
    assert_eq!(served, baseline_n);
    let start = std::time::Instant::now();
    let m = loop {
        let (s, m) = http(
            &addr,
            "GET",
            "/projects/widget_line_a/monitoring",
            "text/plain",
            b"",
        );
        assert_eq!(s, 200, "{m}");
        if m["requests"] == 4 {
            break m;
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(30),
            "monitoring saw {} of 4 requests",
            m["requests"]
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert_eq!(m["baseline"]["model_version_id"], mv, "{m}");
    assert!(m["baseline"]["evaluation_id"].as_i64().is_some(), "{m}");
    let classes = m["classes"].as_array().unwrap();
    for c in classes {
        let label = c["label"].as_str().unwrap();
        if ["scratch", "dent", "ng"].contains(&label) {
            let n = report["confidence_samples"][label]
                .as_array()
                .unwrap()
                .len() as u64;
            assert_eq!(c["baseline"]["count"], n, "{c}");
            assert_eq!(c["count"], n, "{c}");
            if n > 0 {
                // Identical distributions up to float noise between batched and single-image forwards.
                let ks = c["ks"].as_f64().unwrap_or_else(|| panic!("no KS: {c}"));
                assert!(ks <= 1.0 / n as f64 + 1e-9, "{c}");
            }
        }
    }
    assert!(
        classes.iter().any(|c| c["ks"].as_f64().is_some()),
        "no class with a KS statistic: {m}"
    );
}

#[test]
fn evaluate_detector_needs_project_labels_for_checkpoint_classes() {
    let env = Env::new();
    let manifest = setup(&env);
    let cfg = manifest.to_str().unwrap();
    let ckpt = fixtures().join("ultralytics/yolov8s-seg-80class-random.pt");
    let (ok, _, err) = env.run(&[
        "evaluate",
        "--config",
        cfg,
        "--checkpoint",
        ckpt.to_str().unwrap(),
    ]);
    assert!(!ok);
    assert!(
        err.contains("--labels") && err.contains("80 of the checkpoint's 80 classes"),
        "{err}"
    );
    // A checkpoint outside experiments/ and not registered is evaluated but not recorded.
    let out = env.ok(&[
        "evaluate",
        "--config",
        cfg,
        "--checkpoint",
        fixtures()
            .join("ultralytics/yolov8n-seg-widgets.pt")
            .to_str()
            .unwrap(),
        "--split",
        "val",
        "--gallery",
        "0",
        "--out",
        "rep",
    ]);
    assert!(out.contains("not recorded"), "{out}");
    assert!(Path::new(&env.path("rep/report.html")).is_file());
    assert!(evaluations(&env).is_empty());
    // A plain COCO folder instead of a dataset version: same images, no version recorded.
    env.ok(&[
        "evaluate",
        "--config",
        cfg,
        "--checkpoint",
        fixtures()
            .join("ultralytics/yolov8n-seg-widgets.pt")
            .to_str()
            .unwrap(),
        "--data",
        "gen",
        "--out",
        "rep2",
    ]);
    let r: Value =
        serde_json::from_slice(&fs_err::read(env.path("rep2/report.json")).unwrap()).unwrap();
    assert_eq!(r["dataset"]["images"], 4);
    assert_eq!(r["dataset"]["version"], Value::Null);
    let a: Value =
        serde_json::from_slice(&fs_err::read(env.path("rep/report.json")).unwrap()).unwrap();
    assert_eq!(r["detection"]["coco_mask"], a["detection"]["coco_mask"]);
}

/// The same checkpoint and images on Burn and on ONNX Runtime (the checkpoint's own dynamic ONNX
/// export, same letterbox, NMS and masks) give the same COCO box and mask metrics, and report.json
/// names the runtime that ran. The library is `$SIGHTLINE_ONNXRUNTIME_LIBRARY` (`.ci/run` sets it).
#[test]
fn evaluate_detector_same_metrics_on_burn_and_onnxruntime() {
    let library = match std::env::var_os("SIGHTLINE_ONNXRUNTIME_LIBRARY").map(PathBuf::from) {
        Some(p) if p.is_file() => p,
        p => panic!(
            "set SIGHTLINE_ONNXRUNTIME_LIBRARY to an ONNX Runtime shared library (libonnxruntime.so.*); got {p:?}"
        ),
    };
    let env = Env::new();
    let manifest = setup(&env);
    let cfg = manifest.to_str().unwrap();
    let ckpt = fixtures().join("ultralytics/yolov8n-seg-widgets.pt");
    let evaluate = |runtime: &str| -> Value {
        let out = format!("rep-{runtime}");
        let mut c = env.cmd(&[
            "evaluate",
            "--config",
            cfg,
            "--checkpoint",
            ckpt.to_str().unwrap(),
            "--gallery",
            "0",
            "--runtime",
            runtime,
            "--onnxruntime-library",
            library.to_str().unwrap(),
            "--out",
            &out,
        ]);
        let o = c.env_remove("SIGHTLINE_RUNTIME").output().unwrap();
        assert!(
            o.status.success(),
            "--runtime {runtime}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        serde_json::from_slice(&fs_err::read(env.path(&out).join("report.json")).unwrap()).unwrap()
    };
    let burn = evaluate("burn");
    let ort = evaluate("onnxruntime");
    let (rb, ro) = (
        burn["runtime"].as_str().unwrap(),
        ort["runtime"].as_str().unwrap(),
    );
    assert!(rb.starts_with("burn"), "{rb}");
    assert!(
        ro.starts_with("onnxruntime ") && ro.ends_with("(cpu)"),
        "{ro}"
    );
    assert_eq!(burn["dataset"]["images"], 4);
    let (db, dor) = (&burn["detection"], &ort["detection"]);
    // Every COCO statistic (AP/AR at all IoUs and areas), then the Ultralytics-style numbers.
    for key in ["coco_box", "coco_mask"] {
        let (b, o) = (db[key].as_array().unwrap(), dor[key].as_array().unwrap());
        assert_eq!(b.len(), 12, "{key}");
        assert_eq!(o.len(), 12, "{key}");
        for (i, (b, o)) in b.iter().zip(o).enumerate() {
            let (b, o) = (b.as_f64().unwrap(), o.as_f64().unwrap());
            assert!(
                (b - o).abs() <= 1e-6,
                "{key}[{i}]: burn {b}, onnxruntime {o}"
            );
        }
    }
    assert!(
        db["coco_mask"][0].as_f64().unwrap() > 0.0,
        "the fixture model finds nothing: {db}"
    );
    for key in [
        "map50",
        "map50_95",
        "mask_map50",
        "mask_map50_95",
        "mp",
        "mr",
    ] {
        let (b, o) = (db[key].as_f64().unwrap(), dor[key].as_f64().unwrap());
        assert!((b - o).abs() <= 1e-6, "{key}: burn {b}, onnxruntime {o}");
    }
    assert_eq!(db["confusion"], dor["confusion"]);
    eprintln!(
        "{rb}: box mAP50-95 {} mask mAP50-95 {}; {ro}: box mAP50-95 {} mask mAP50-95 {}",
        db["coco_box"][0], db["coco_mask"][0], dor["coco_box"][0], dor["coco_mask"][0]
    );
    assert_eq!(
        burn["operating"]["ok_ng_confusion"],
        ort["operating"]["ok_ng_confusion"]
    );
}
