//! Drives the real `sightline` binary: `sightline predict` on the reference fixtures and
//! `sightline bench predict` on a tiny configuration.

use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;
use sightline_testkit::Sightline;

use crate::support::SIGHTLINE;

fn fixtures() -> PathBuf {
    sightline_testkit::fixture("README.md");
    sightline_testkit::fixtures()
}

fn sightline(args: &[&str]) -> Output {
    Sightline::new(SIGHTLINE).output(args)
}

fn scratch_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sightline-{name}-{}", std::process::id()));
    let _ = fs_err::remove_dir_all(&dir);
    fs_err::create_dir_all(&dir).expect("create scratch dir");
    dir
}

fn png_size(path: &Path) -> (u32, u32) {
    let bytes = fs_err::read(path).expect("read overlay");
    assert_eq!(
        &bytes[..8],
        b"\x89PNG\r\n\x1a\n",
        "{} is not a PNG",
        path.display()
    );
    let be = |o: usize| u32::from_be_bytes([bytes[o], bytes[o + 1], bytes[o + 2], bytes[o + 3]]);
    (be(16), be(20))
}

#[test]
fn predict_writes_json_lines_and_overlays() {
    let fx = fixtures();
    let weights = fx.join("ultralytics/yolov8n-seg-widgets.pt");
    let expected: Value =
        serde_json::from_slice(&fs_err::read(fx.join("expected/yolo/predictions.json")).unwrap())
            .unwrap();
    let names = ["val_00001.jpg", "val_00003.jpg", "wide_320x200.jpg"];
    let images: Vec<String> = names
        .iter()
        .map(|n| fx.join("images").join(n).display().to_string())
        .collect();
    let overlays = scratch_dir("overlay");
    let mut args = vec![
        "predict",
        "--weights",
        weights.to_str().unwrap(),
        "--imgsz",
        "256",
        "--json",
        "--batch",
        "2",
        "--save-overlay",
        overlays.to_str().unwrap(),
    ];
    args.extend(images.iter().map(String::as_str));
    let out = sightline(&args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "sightline predict failed: {stderr}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    assert_eq!(lines.len(), names.len());
    for ((name, path), line) in names.iter().zip(&images).zip(&lines) {
        assert_eq!(line["image"].as_str().unwrap(), path);
        let want = &expected["predictions"][*name];
        let (h, w) = (
            want["orig_shape"][0].as_u64().unwrap(),
            want["orig_shape"][1].as_u64().unwrap(),
        );
        assert_eq!(
            (
                line["height"].as_u64().unwrap(),
                line["width"].as_u64().unwrap()
            ),
            (h, w)
        );
        let got = line["detections"].as_array().unwrap();
        let want_dets = want["detections"].as_array().unwrap();
        let labels = |v: &[Value]| {
            let mut l: Vec<String> = v
                .iter()
                .map(|d| d["label"].as_str().unwrap().to_string())
                .collect();
            l.sort();
            l
        };
        assert_eq!(labels(got), labels(want_dets), "{name}");
        for d in got {
            for key in ["label", "class_id", "confidence", "box_xyxy", "mask_rle"] {
                assert!(d.get(key).is_some(), "{name}: detection without {key}");
            }
            let rle = &d["mask_rle"];
            assert_eq!(rle["size"], serde_json::json!([h, w]));
            let total: u64 = rle["counts"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c.as_u64().unwrap())
                .sum();
            assert_eq!(total, h * w);
            assert_eq!(d["box_xyxy"].as_array().unwrap().len(), 4);
        }
        let stem = name.trim_end_matches(".jpg");
        assert_eq!(
            png_size(&overlays.join(format!("{stem}.png"))),
            (w as u32, h as u32)
        );
    }
    fs_err::remove_dir_all(&overlays).unwrap();
}

/// Without `--imgsz` the fixture detector runs at the size it was trained at (its
/// `train_args.imgsz`, 256), as Ultralytics predicts: the very same JSON as `--imgsz 256`,
/// with the reference detections.
#[test]
fn predict_defaults_to_the_checkpoint_training_size() {
    let fx = fixtures();
    let weights = fx.join("ultralytics/yolov8n-seg-widgets.pt");
    let expected: Value =
        serde_json::from_slice(&fs_err::read(fx.join("expected/yolo/predictions.json")).unwrap())
            .unwrap();
    let names = [
        "val_00001.jpg",
        "val_00002.jpg",
        "val_00003.jpg",
        "wide_320x200.jpg",
    ];
    let images: Vec<String> = names
        .iter()
        .map(|n| fx.join("images").join(n).display().to_string())
        .collect();
    let run = |imgsz: Option<&str>| {
        let mut args = vec!["predict", "--json", "--weights", weights.to_str().unwrap()];
        if let Some(s) = imgsz {
            args.extend(["--imgsz", s]);
        }
        args.extend(images.iter().map(String::as_str));
        let out = sightline(&args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let default = run(None);
    assert_eq!(default, run(Some("256")));
    let lines: Vec<Value> = default
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    assert_eq!(lines.len(), names.len());
    let labels = |v: &[Value]| {
        let mut l: Vec<String> = v
            .iter()
            .map(|d| d["label"].as_str().unwrap().to_string())
            .collect();
        l.sort();
        l
    };
    for (name, line) in names.iter().zip(&lines) {
        let want = expected["predictions"][*name]["detections"]
            .as_array()
            .unwrap();
        assert_eq!(
            labels(line["detections"].as_array().unwrap()),
            labels(want),
            "{name}"
        );
    }
    // The human output says which size runs and why.
    let out = sightline(&[
        "predict",
        "--weights",
        weights.to_str().unwrap(),
        &images[1],
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("imgsz 256 (the checkpoint's training size)"),
        "{stdout}"
    );
    let out = sightline(&[
        "predict",
        "--weights",
        weights.to_str().unwrap(),
        "--imgsz",
        "320",
        &images[1],
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("imgsz 320 (--imgsz)"), "{stdout}");
}

#[test]
fn predict_prints_a_table_without_json() {
    let fx = fixtures();
    let weights = fx.join("ultralytics/yolov8n-seg-widgets.pt");
    let image = fx.join("images/val_00002.jpg");
    let out = sightline(&[
        "predict",
        "--weights",
        weights.to_str().unwrap(),
        "--imgsz",
        "256",
        image.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        stdout.contains("val_00002.jpg (256×256): 1 detection"),
        "{stdout}"
    );
    assert!(stdout.contains("dent"), "{stdout}");
}

#[test]
fn predict_reports_bad_input_clearly() {
    let fx = fixtures();
    let image = fx.join("images/val_00002.jpg");
    let out = sightline(&[
        "predict",
        "--weights",
        "/nonexistent/model.pt",
        image.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/model.pt"));

    let weights = fx.join("ultralytics/yolov8n-seg-widgets.pt");
    let out = sightline(&[
        "predict",
        "--weights",
        weights.to_str().unwrap(),
        "--conf",
        "1.5",
        image.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("conf"));

    let out = sightline(&[
        "predict",
        "--weights",
        weights.to_str().unwrap(),
        "--labels",
        "a,b",
        image.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("3 classes"));

    let out = sightline(&[
        "predict",
        "--weights",
        weights.to_str().unwrap(),
        "/nonexistent/img.jpg",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/img.jpg"));
}

#[test]
fn predict_labels_override_names() {
    let fx = fixtures();
    let weights = fx.join("ultralytics/yolov8n-seg-widgets.pt");
    let image = fx.join("images/val_00002.jpg");
    let out = sightline(&[
        "predict",
        "--json",
        "--weights",
        weights.to_str().unwrap(),
        "--imgsz",
        "256",
        "--labels",
        "kratzer,delle,andere",
        image.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(line["detections"][0]["label"], "delle");
    assert_eq!(line["detections"][0]["class_id"], 1);
}

#[test]
fn bench_predict_prints_figures() {
    let out = sightline(&[
        "bench",
        "predict",
        "--json",
        "--sizes",
        "64",
        "--batches",
        "1,2",
        "--iters",
        "1",
        "--warmup",
        "0",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = v["results"].as_array().unwrap();
    // Each model × batch on each runtime: ONNX Runtime (CI points SIGHTLINE_ONNXRUNTIME_LIBRARY
    // at the wheel's library) and Burn.
    assert_eq!(rows.len(), 8, "{rows:?}");
    for r in rows {
        let model = r["model"].as_str().unwrap();
        let size = if model == "yolov8-seg" { 64 } else { 224 };
        assert!(model == "yolov8-seg" || model == "mobilenet_v3", "{model}");
        assert_eq!(r["imgsz"], size);
        for k in ["preprocess_ms", "forward_ms", "pipeline_ms"] {
            assert!(r[k].as_f64().unwrap() > 0.0, "{k}: {r}");
        }
    }
    for runtime in ["onnxruntime", "burn"] {
        let n = rows
            .iter()
            .filter(|r| r["runtime"].as_str().unwrap().starts_with(runtime))
            .count();
        assert_eq!(n, 4, "{runtime}: {rows:?}");
    }
    // --runtime burn measures Burn only.
    let out = sightline(&[
        "bench",
        "predict",
        "--json",
        "--sizes",
        "64",
        "--batches",
        "1",
        "--iters",
        "1",
        "--warmup",
        "0",
        "--no-mobilenet",
        "--runtime",
        "burn",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = v["results"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert!(rows[0]["runtime"].as_str().unwrap().starts_with("burn"));
}
