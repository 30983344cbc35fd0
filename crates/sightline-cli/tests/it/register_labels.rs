//! `sightline register` class maps and lineage through the real binary, on SQLite and PostgreSQL.
//!
//! The rule (see `sightline_registry::labels`): `--labels` wins (each a project label, count equal
//! to the checkpoint's classes), else the checkpoint's own class names (each must be a project
//! label), else the project's labels. A detector whose checkpoint names its classes in another
//! vocabulary (`kratzer, delle, fleck`: the fixture checkpoint re-saved as safetensors with those
//! names) is refused without `--labels` and served with the mapped names with it. Lineage both
//! ways: `model show` prints the dataset version, `model list --dataset` lists the models trained
//! on it.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use sightline_testkit::{KillOnDrop, Sightline, TestDatabase, fixtures, http, spawn_server};

use crate::support::SIGHTLINE;

const MANIFEST: &str = "project: widget_line_a
labels: [ok, ng, scratch, dent]
models:
  detector:
    name: yolov8n-seg
    weights: none
    hyperparameters: {imgsz: 256}
";

struct Env {
    home: tempfile::TempDir,
    db_url: String,
}

impl Env {
    fn bin(&self) -> Sightline {
        Sightline::with_env_home(SIGHTLINE, self.home.path(), &self.db_url)
            .env_remove("SIGHTLINE_DATABASE_URL")
    }

    fn cmd(&self, args: &[&str]) -> Command {
        self.bin().command(args)
    }

    fn run(&self, args: &[&str]) -> (bool, String, String) {
        let r = self.bin().run(args);
        (r.success(), r.stdout, r.stderr)
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut full = vec!["--json"];
        full.extend_from_slice(args);
        let (ok, out, err) = self.run(&full);
        assert!(ok, "sightline {args:?} failed:\n{out}\n{err}");
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
    }

    fn fail(&self, args: &[&str]) -> String {
        let (ok, out, err) = self.run(args);
        assert!(!ok, "sightline {args:?} should fail:\n{out}");
        err
    }
}

/// The widget detector re-saved as safetensors whose class names are not project labels.
fn foreign_checkpoint(dir: &Path) -> PathBuf {
    let ckpt =
        sightline_torch::load(fixtures().join("ultralytics/yolov8n-seg-widgets.pt")).unwrap();
    assert_eq!(
        ckpt.meta.names.as_deref(),
        Some(&["scratch".to_string(), "dent".into(), "ng".into()][..])
    );
    let mut meta = ckpt.meta.clone();
    meta.names = Some(vec!["kratzer".into(), "delle".into(), "fleck".into()]);
    let out = dir.join("foreign.safetensors");
    sightline_torch::save_safetensors(
        &out,
        ckpt.tensors.iter().map(|(k, t)| (k.as_str(), t)),
        &meta,
    )
    .unwrap();
    out
}

/// A four-image classification folder ingested as a dataset version; returns its id.
fn dataset_version(env: &Env) -> String {
    let src = env.home.path().join("tiny");
    for label in ["ok", "ng"] {
        let from = fixtures().join("widgets-a/classify/train").join(label);
        let mut files: Vec<PathBuf> = fs_err::read_dir(&from)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        fs_err::create_dir_all(src.join("train").join(label)).unwrap();
        for f in files.iter().take(2) {
            fs_err::copy(
                f,
                src.join("train").join(label).join(f.file_name().unwrap()),
            )
            .unwrap();
        }
    }
    let v = env.json(&[
        "dataset",
        "ingest",
        src.to_str().unwrap(),
        "--project",
        "widget_line_a",
    ]);
    v["version"]["id"].as_str().unwrap().to_string()
}

fn labels_of(v: &Value) -> Vec<String> {
    v["labels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap().to_string())
        .collect()
}

fn scenario(db_url: String) {
    let env = Env {
        home: tempfile::tempdir().unwrap(),
        db_url,
    };
    let cfg = env.home.path().join("widget.yaml");
    fs_err::write(&cfg, MANIFEST).unwrap();
    let cfg = cfg.to_str().unwrap();
    env.json(&["project", "apply", cfg]);
    let foreign = foreign_checkpoint(env.home.path());
    let foreign = foreign.to_str().unwrap();
    let native = fixtures().join("ultralytics/yolov8n-seg-widgets.pt");
    let native = native.to_str().unwrap();

    // Checkpoint names that are not project labels: refused, pointing at --labels.
    let err = env.fail(&["register", "--config", cfg, "--checkpoint", foreign]);
    assert!(err.contains("kratzer") && err.contains("--labels"), "{err}");
    // --labels must name one project label per checkpoint class.
    let err = env.fail(&[
        "register",
        "--config",
        cfg,
        "--checkpoint",
        foreign,
        "--labels",
        "scratch,dent",
    ]);
    assert!(err.contains("3 classes"), "{err}");
    let err = env.fail(&[
        "register",
        "--config",
        cfg,
        "--checkpoint",
        foreign,
        "--labels",
        "scratch,dent,rust",
    ]);
    assert!(err.contains("`rust` is not a label"), "{err}");

    let ds = dataset_version(&env);
    let v1 = env.json(&[
        "register",
        "--config",
        cfg,
        "--checkpoint",
        foreign,
        "--labels",
        "dent, scratch, ng",
        "--dataset",
        &ds,
        "--experiment",
        "exp-42",
    ]);
    assert_eq!(labels_of(&v1), ["dent", "scratch", "ng"]);
    // Without --labels a detector takes its checkpoint's names (a subset of the project labels).
    let v2 = env.json(&["register", "--config", cfg, "--checkpoint", native]);
    assert_eq!(labels_of(&v2), ["scratch", "dent", "ng"]);
    let bundle: Value = serde_json::from_slice(
        &fs_err::read(
            env.home
                .path()
                .join("artifacts")
                .join(v1["bundle_dir"].as_str().unwrap())
                .join("bundle.json"),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(labels_of(&bundle), ["dent", "scratch", "ng"]);
    assert_eq!(bundle["format"], 2);
    // The bundle records the checkpoint's training size (Ultralytics `train_args.imgsz`, 256);
    // `--imgsz` overrides it and is checked before anything is registered.
    let bundle_of = |v: &Value| -> Value {
        let path = env
            .home
            .path()
            .join("artifacts")
            .join(v["bundle_dir"].as_str().unwrap())
            .join("bundle.json");
        serde_json::from_slice(&fs_err::read(path).unwrap()).unwrap()
    };
    assert_eq!(bundle_of(&v2)["preprocessing"]["imgsz"], 256);
    let err = env.fail(&[
        "register",
        "--config",
        cfg,
        "--checkpoint",
        native,
        "--imgsz",
        "300",
    ]);
    assert!(err.contains("multiple of 32"), "{err}");
    let v3 = env.json(&[
        "register",
        "--config",
        cfg,
        "--checkpoint",
        native,
        "--imgsz",
        "320",
    ]);
    assert_eq!(v3["version"], 3);
    assert_eq!(bundle_of(&v3)["preprocessing"]["imgsz"], 320);

    // Lineage both ways.
    let (ok, show, err) = env.run(&["model", "show", "1", "--project", "widget_line_a"]);
    assert!(ok, "{err}");
    assert!(show.contains(&ds) && show.contains("exp-42"), "{show}");
    let trained = env.json(&["model", "list", "--dataset", &ds]);
    let versions: Vec<i64> = trained
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["version"].as_i64().unwrap())
        .collect();
    assert_eq!(versions, [1]);
    assert_eq!(
        env.json(&["model", "list", "--dataset", &ds, "--project", "other"]),
        Value::Array(vec![])
    );

    // The served model speaks the mapped names: class 0 (`kratzer`, really scratch) is `dent`.
    env.json(&[
        "model",
        "promote",
        "1",
        "--project",
        "widget_line_a",
        "--to",
        "production",
        "--force",
    ]);
    let (server, addr) =
        spawn_server(env.cmd(&["serve", "--addr", "127.0.0.1:0", "--no-request-log"]));
    let image = fs_err::read(fixtures().join("images/val_00003.jpg")).unwrap();
    let start = Instant::now();
    let response = loop {
        let (status, v) = http(
            &addr,
            "POST",
            "/projects/widget_line_a/inspect",
            "image/jpeg",
            &image,
        );
        if status == 200 {
            break v;
        }
        assert!(start.elapsed() < Duration::from_secs(120), "{status} {v}");
        std::thread::sleep(Duration::from_millis(200));
    };
    let dets = response["detections"].as_array().unwrap();
    assert!(!dets.is_empty(), "{response}");
    for d in dets {
        let label = d["label"].as_str().unwrap();
        assert!(["dent", "scratch", "ng"].contains(&label), "{d}");
    }
    drop(server);
}

#[test]
fn register_class_map_and_lineage_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    scenario(TestDatabase::sqlite(dir.path(), "r.db").url().to_string());
}

#[test]
fn register_class_map_and_lineage_postgres() {
    let t = TestDatabase::postgres();
    scenario(t.url().to_string());
}

const BOTH_MODELS: &str = "project: widget_line_a
labels: [ok, ng, scratch, dent]
models:
  detector:
    name: yolov8n-seg
    weights: none
    hyperparameters: {imgsz: 256}
  classifier:
    name: mobilenet_v3_small
    weights: none
";

/// `$SIGHTLINE_ONNXRUNTIME_LIBRARY` (CI sets it): this test needs ONNX Runtime and fails
/// without it.
fn onnxruntime_library() -> String {
    sightline_testkit::onnxruntime_library()
        .display()
        .to_string()
}

/// Starts `sightline serve` (stderr with the loader's logs into `log`) and returns it with its
/// address.
fn serve_logged(env: &Env, extra: &[&str], log: &Path) -> (KillOnDrop, String) {
    let mut args = vec!["serve", "--addr", "127.0.0.1:0", "--no-request-log"];
    args.extend_from_slice(extra);
    let mut cmd = env.cmd(&args);
    cmd.env("RUST_LOG", "sightline_server=info")
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::piped())
        .stderr(fs_err::File::create(log).unwrap().into_file());
    let mut child = cmd.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let child = KillOnDrop(child);
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line).unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening on http://")
        .unwrap_or_else(|| panic!("unexpected first line of serve: {line:?}"))
        .to_string();
    (child, addr)
}

fn inspect(addr: &str, image: &[u8]) -> Value {
    let start = Instant::now();
    loop {
        let (status, v) = http(
            addr,
            "POST",
            "/projects/widget_line_a/inspect",
            "image/jpeg",
            image,
        );
        // Both models deployed (they load one after the other).
        let detected = v["detections"].as_array().is_some_and(|d| !d.is_empty());
        if status == 200 && detected && v["classification"].is_object() {
            return v;
        }
        assert!(start.elapsed() < Duration::from_secs(120), "{status} {v}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// The bundle's `onnx` entry: within the tolerance on every output, and `model.onnx` listed in
/// `files` with the SHA-256 and size of the file beside it.
fn check_onnx_entry(env: &Env, registered: &Value, outputs: &[&str]) -> Value {
    let dir = env
        .home
        .path()
        .join("artifacts")
        .join(registered["bundle_dir"].as_str().unwrap());
    let bundle: Value =
        serde_json::from_slice(&fs_err::read(dir.join("bundle.json")).unwrap()).unwrap();
    let onnx = &bundle["onnx"];
    assert_eq!(
        onnx, &registered["onnx"],
        "--json prints the bundle's onnx entry"
    );
    assert_eq!(onnx["file"], "model.onnx");
    assert_eq!(onnx["dynamic"], true);
    assert_eq!(onnx["tolerance"].as_f64(), Some(1e-4));
    assert!(!onnx["runtime"].as_str().unwrap().is_empty(), "{onnx}");
    let diffs = onnx["max_abs_diff"].as_object().unwrap();
    let names: Vec<&str> = diffs.keys().map(String::as_str).collect();
    assert_eq!(names, outputs, "{onnx}");
    for (name, d) in diffs {
        let d = d.as_f64().unwrap();
        assert!((0.0..=1e-4).contains(&d), "{name}: {d}");
    }
    let (sha256, size) = sightline_registry::bundle::hash_file(&dir.join("model.onnx")).unwrap();
    let listed = bundle["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"] == "model.onnx")
        .unwrap_or_else(|| panic!("model.onnx not listed: {bundle}"));
    assert_eq!(listed["sha256"].as_str(), Some(sha256.as_str()));
    assert_eq!(listed["size"].as_u64(), Some(size));
    let summary =
        sightline_onnx::export::describe(&fs_err::read(dir.join("model.onnx")).unwrap()).unwrap();
    assert_eq!(Some(summary.opset), onnx["opset"].as_i64());
    bundle
}

/// Registration adds the model's checked ONNX export (`model.onnx`, max differences recorded)
/// when ONNX Runtime resolves; the server then runs it on ONNX Runtime, with the same inspection
/// as on Burn. `--runtime burn` registers without it; a tolerance no export meets refuses the
/// registration, naming the output, and registers nothing.
#[test]
fn register_adds_a_checked_onnx_export() {
    let lib = onnxruntime_library();
    let dir = tempfile::tempdir().unwrap();
    let env = Env {
        home: tempfile::tempdir().unwrap(),
        db_url: format!("sqlite://{}", dir.path().join("o.db").display()),
    };
    let cfg = env.home.path().join("widget.yaml");
    fs_err::write(&cfg, BOTH_MODELS).unwrap();
    let cfg = cfg.to_str().unwrap();
    env.json(&["project", "apply", cfg]);
    let det = fixtures().join("ultralytics/yolov8n-seg-widgets.pt");
    let det = det.to_str().unwrap();
    let cls = fixtures().join("torchvision/mobilenet_v3_small-widgets.pth");
    let cls = cls.to_str().unwrap();
    let register = |extra: &[&str]| -> Vec<String> {
        let mut args: Vec<String> = ["register", "--config", cfg, "--onnxruntime-library", &lib]
            .iter()
            .map(|s| s.to_string())
            .collect();
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    };

    // A tolerance no export meets: refused with the output's name, nothing registered.
    let args = register(&[
        "--checkpoint",
        det,
        "--task",
        "segment",
        "--onnx-tolerance",
        "1e-12",
    ]);
    let err = env.fail(&strs(&args));
    assert!(
        (err.contains("`output0`") || err.contains("`output1`")) && err.contains("tolerance"),
        "{err}"
    );
    assert_eq!(env.json(&["model", "list"]), Value::Array(vec![]));
    assert!(
        !env.home
            .path()
            .join("artifacts/registry/widget_line_a/segment/v1/bundle.json")
            .exists()
    );

    // The detector, checked on the images of its dataset version.
    let ds = dataset_version(&env);
    let args = register(&[
        "--checkpoint",
        det,
        "--task",
        "segment",
        "--dataset",
        &ds,
        "--alias",
        "production",
    ]);
    let v1 = env.json(&strs(&args));
    check_onnx_entry(&env, &v1, &["output0", "output1"]);
    assert_eq!(v1["onnx"]["checked_images"], 4);
    assert_eq!(v1["onnx"]["checked_on"], format!("dataset {ds}"));
    // Human output prints the differences.
    let args = register(&["--checkpoint", det, "--task", "segment"]);
    let (ok, out, err) = env.run(&strs(&args));
    assert!(ok, "{err}");
    assert!(
        out.contains("onnx: model.onnx") && out.contains("output0"),
        "{out}"
    );

    // The classifier, checked on a given image.
    let image_path = fixtures().join("images/val_00003.jpg");
    let args = register(&[
        "--checkpoint",
        cls,
        "--task",
        "classify",
        "--onnx-check-image",
        image_path.to_str().unwrap(),
        "--alias",
        "production",
    ]);
    let c1 = env.json(&strs(&args));
    check_onnx_entry(&env, &c1, &["logits"]);
    assert_eq!(c1["onnx"]["checked_images"], 1);
    assert_eq!(c1["onnx"]["checked_on"], "val_00003.jpg");

    // --runtime burn: no model.onnx, one notice line.
    let (ok, out, err) = env.run(&[
        "--json",
        "register",
        "--config",
        cfg,
        "--checkpoint",
        det,
        "--task",
        "segment",
        "--runtime",
        "burn",
    ]);
    assert!(ok, "{err}");
    let v3: Value = serde_json::from_str(&out).unwrap();
    assert!(v3["onnx"].is_null(), "{v3}");
    assert!(err.contains("will serve on Burn"), "{err}");
    let bundle3 = env
        .home
        .path()
        .join("artifacts")
        .join(v3["bundle_dir"].as_str().unwrap());
    assert!(!bundle3.join("model.onnx").exists());
    let manifest3 = fs_err::read_to_string(bundle3.join("bundle.json")).unwrap();
    assert!(!manifest3.contains("onnx"), "{manifest3}");

    // Served on ONNX Runtime from the bundles' model.onnx, the same inspection as on Burn.
    let image = fs_err::read(&image_path).unwrap();
    let ort_log = env.home.path().join("serve-ort.log");
    let (server, addr) = serve_logged(&env, &["--onnxruntime-library", &lib], &ort_log);
    let on_ort = inspect(&addr, &image);
    drop(server);
    let log = fs_err::read_to_string(&ort_log).unwrap();
    for what in ["detector loaded", "classifier loaded"] {
        let line = log
            .lines()
            .find(|l| l.contains(what))
            .unwrap_or_else(|| panic!("no `{what}` in the server log:\n{log}"));
        assert!(line.contains("engine=onnxruntime"), "{line}");
    }
    let burn_log = env.home.path().join("serve-burn.log");
    let (server, addr) = serve_logged(&env, &["--runtime", "burn"], &burn_log);
    let on_burn = inspect(&addr, &image);
    drop(server);
    let dets = |v: &Value| -> Vec<(String, Vec<f64>)> {
        v["detections"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| {
                let mut nums = vec![d["confidence"].as_f64().unwrap()];
                nums.extend(
                    d["box_xyxy"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|x| x.as_f64().unwrap()),
                );
                (d["label"].as_str().unwrap().to_string(), nums)
            })
            .collect()
    };
    let (a, b) = (dets(&on_ort), dets(&on_burn));
    assert!(!a.is_empty(), "{on_ort}");
    assert_eq!(a.len(), b.len(), "ORT {on_ort}\nBurn {on_burn}");
    for ((la, na), (lb, nb)) in a.iter().zip(&b) {
        assert_eq!(la, lb);
        assert!((na[0] - nb[0]).abs() < 1e-3, "confidence {na:?} vs {nb:?}");
        for (x, y) in na[1..].iter().zip(&nb[1..]) {
            assert!((x - y).abs() < 0.5, "box {na:?} vs {nb:?}");
        }
    }
    let (ca, cb) = (&on_ort["classification"], &on_burn["classification"]);
    assert_eq!(
        ca["top_label"], cb["top_label"],
        "ORT {on_ort}\nBurn {on_burn}"
    );
    let (pa, pb) = (
        ca["confidence"].as_f64().unwrap(),
        cb["confidence"].as_f64().unwrap(),
    );
    assert!((pa - pb).abs() < 1e-4, "{pa} vs {pb}");
}
