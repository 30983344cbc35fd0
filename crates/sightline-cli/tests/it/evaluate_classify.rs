//! `sightline evaluate` on a classifier checkpoint, through the real binary: report files, sane numbers, and
//! the `--post` summary received by a local HTTP server.
#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use sightline_testkit::{Sightline, fixtures};

use crate::support::{SIGHTLINE, redactions};

/// The binary run in `dir` without the caller's database or home variables.
fn sightline_in(dir: &Path) -> Sightline {
    Sightline::new(SIGHTLINE).current_dir(dir).env_removed(&[
        "DATABASE_URL",
        "SIGHTLINE_DATABASE_URL",
        "SIGHTLINE_HOME",
    ])
}

/// Accepts one request, answers 200 and returns its body.
fn one_shot_server() -> (String, std::thread::JoinHandle<(String, String)>) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/models/metrics", l.local_addr().unwrap());
    let h = std::thread::spawn(move || {
        let (s, _) = l.accept().unwrap();
        let mut r = BufReader::new(s.try_clone().unwrap());
        let mut first = String::new();
        r.read_line(&mut first).unwrap();
        let mut len = 0;
        loop {
            let mut line = String::new();
            r.read_line(&mut line).unwrap();
            if line.trim().is_empty() {
                break;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                len = v.trim().parse().unwrap();
            }
        }
        let mut body = vec![0; len];
        r.read_exact(&mut body).unwrap();
        let mut s = s;
        s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            .unwrap();
        (first, String::from_utf8(body).unwrap())
    });
    (url, h)
}

/// Copies the fixture's class-per-folder val split into `data`; returns the number of images.
fn copy_val_split(data: &Path) -> usize {
    let src = fixtures().join("widgets-a/classify/val");
    let mut n = 0;
    for label in ["ok", "ng", "scratch", "dent"] {
        let mut files: Vec<_> = fs_err::read_dir(src.join(label))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        assert!(!files.is_empty(), "no fixture images for {label}");
        fs_err::create_dir_all(data.join(label)).unwrap();
        for f in &files {
            fs_err::copy(f, data.join(label).join(f.file_name().unwrap())).unwrap();
            n += 1;
        }
    }
    n
}

fn manifest() -> PathBuf {
    sightline_testkit::seed_manifest()
}

/// The ONNX Runtime library the tests run on: `$SIGHTLINE_ONNXRUNTIME_LIBRARY` (`.ci/run` sets it).
fn onnxruntime_library() -> PathBuf {
    sightline_testkit::onnxruntime_library()
}

#[test]
fn evaluate_classifier_writes_reports_and_posts_summary() {
    let fx = fixtures();
    let ckpt = fx.join("torchvision/mobilenet_v3_small-widgets.pth");
    assert!(ckpt.is_file(), "missing fixture {}", ckpt.display());
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let n = copy_val_split(&data);
    let config = manifest();
    let out = tmp.path().join("report");
    let (url, server) = one_shot_server();
    let o = sightline_in(tmp.path())
        .command(&[])
        .args(["evaluate", "--task", "classify", "--config"])
        .arg(&config)
        .arg("--checkpoint")
        .arg(&ckpt)
        .arg("--data")
        .arg(&data)
        .args(["--dataset", "widgets-a-v1", "--post", &url, "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("top-1"), "{stdout}");

    let report: serde_json::Value =
        serde_json::from_slice(&fs_err::read(out.join("report.json")).unwrap()).unwrap();
    insta::assert_json_snapshot!(
        "classify_report_json",
        redactions(tmp.path())
            .key("gallery", "[gallery]")
            .key("runtime", "[runtime]")
            .apply(&report)
    );
    let c = &report["classification"];
    assert_eq!(c["samples"], n);
    assert_eq!(report["dataset"]["images"], n);
    assert_eq!(report["dataset"]["version"], "widgets-a-v1");
    assert_eq!(report["checkpoint_sha256"].as_str().unwrap().len(), 64);
    let top1 = c["top1"].as_f64().unwrap();
    let top5 = c["top5"].as_f64().unwrap();
    // The fixture README documents torchvision's val top-1 of this checkpoint on the whole split: 0.525.
    assert!(
        (top1 - 0.525).abs() <= 0.02,
        "top1 {top1} vs torchvision 0.525"
    );
    assert!(top1 <= top5 && top5 <= 1.0, "top1 {top1} top5 {top5}");
    let cm = c["confusion"].as_array().unwrap();
    let total: u64 = cm
        .iter()
        .flat_map(|r| r.as_array().unwrap())
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(total, n as u64);
    let diag: u64 = (0..cm.len()).map(|i| cm[i][i].as_u64().unwrap()).sum();
    assert!((diag as f64 / n as f64 - top1).abs() < 1e-12);
    let op = &report["operating"];
    assert_eq!(op["images"], n);
    assert!(
        op["rules"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["rule"] == "max_ng_ratio")
    );

    let html = fs_err::read_to_string(out.join("report.html")).unwrap();
    assert!(html.contains(&format!("{top1:.4}")) && html.contains("Confusion matrix"));
    assert!(html.matches("<svg").count() >= 3);

    let (first, body) = server.join().unwrap();
    assert!(first.starts_with("POST /models/metrics "), "{first}");
    let posted: serde_json::Value = serde_json::from_str(&body).unwrap();
    // The body has the shape of the server's POST /models/metrics: registry summary + full details.
    assert_eq!(posted["summary"]["accuracy"].as_f64().unwrap(), top1);
    assert_eq!(posted["details"]["metrics"]["top1"].as_f64().unwrap(), top1);
    assert_eq!(posted["dataset_version"], "widgets-a-v1");
    assert_eq!(posted["split"], "val");
    // Most confident mistakes, as inline thumbnails (at most 12 by default).
    let gallery = report["gallery"].as_array().unwrap();
    assert!(!gallery.is_empty() && gallery.len() <= 12);
    assert!(gallery.iter().all(|g| g["kind"] == "misclassified"));
    let scores: Vec<f64> = gallery
        .iter()
        .map(|g| g["score"].as_f64().unwrap())
        .collect();
    assert!(scores.windows(2).all(|w| w[0] >= w[1]), "{scores:?}");
    assert!(html.contains("Most confident misclassifications"));

    // Monitoring baseline (what production logs for a classifier: the arg-max label and its probability, one
    // per image), in report.json and in the posted details, in the shape the server's monitoring reads.
    for v in [&report, &posted["details"]] {
        let samples = v["confidence_samples"].as_object().unwrap();
        let mut keys: Vec<&str> = samples.keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(keys, ["dent", "ng", "ok", "scratch"], "{v}");
        let total: usize = samples.values().map(|s| s.as_array().unwrap().len()).sum();
        assert_eq!(total, n);
        for (label, s) in samples {
            let s: Vec<f64> = serde_json::from_value(s.clone()).unwrap();
            // An arg-max probability over 4 classes is at least 1/4.
            assert!(s.iter().all(|c| (0.25..=1.0).contains(c)), "{label}: {s:?}");
            let h: Vec<u64> =
                serde_json::from_value(v["confidence_histograms"][label].clone()).unwrap();
            assert_eq!(h.len(), 10);
            assert_eq!(h.iter().sum::<u64>(), s.len() as u64);
        }
    }
    assert_eq!(
        report["confidence_samples"],
        posted["details"]["confidence_samples"]
    );
    // The gallery's most confident mistake is among its predicted label's samples.
    let g = &gallery[0];
    assert!(
        report["confidence_samples"][g["class"].as_str().unwrap()]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| (c.as_f64().unwrap() - g["score"].as_f64().unwrap()).abs() < 1e-12)
    );
}

/// The same checkpoint and images on Burn and on ONNX Runtime (its own ONNX export, same pre- and
/// post-processing) give the same metrics, and report.json names the runtime that ran.
#[test]
fn evaluate_classifier_same_metrics_on_burn_and_onnxruntime() {
    let library = onnxruntime_library();
    let ckpt = fixtures().join("torchvision/mobilenet_v3_small-widgets.pth");
    assert!(ckpt.is_file(), "missing fixture {}", ckpt.display());
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let n = copy_val_split(&data);
    let evaluate = |runtime: &str| -> serde_json::Value {
        let out = tmp.path().join(format!("report-{runtime}"));
        let o = sightline_in(tmp.path())
            .env_remove("SIGHTLINE_RUNTIME")
            .command(&[])
            .args(["evaluate", "--task", "classify", "--config"])
            .arg(manifest())
            .arg("--checkpoint")
            .arg(&ckpt)
            .arg("--data")
            .arg(&data)
            .args([
                "--gallery",
                "0",
                "--runtime",
                runtime,
                "--onnxruntime-library",
            ])
            .arg(&library)
            .arg("--out")
            .arg(&out)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "--runtime {runtime}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        serde_json::from_slice(&fs_err::read(out.join("report.json")).unwrap()).unwrap()
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
    let (cb, co) = (&burn["classification"], &ort["classification"]);
    assert_eq!(cb["samples"], n);
    assert_eq!(co["samples"], n);
    for key in ["top1", "top5", "macro_f1", "ece"] {
        let (b, o) = (cb[key].as_f64().unwrap(), co[key].as_f64().unwrap());
        assert!((b - o).abs() <= 1e-6, "{key}: burn {b}, onnxruntime {o}");
    }
    assert_eq!(cb["confusion"], co["confusion"]);
    eprintln!(
        "{rb}: top-1 {}, top-5 {}; {ro}: top-1 {}, top-5 {}",
        cb["top1"], cb["top5"], co["top1"], co["top5"]
    );
    let (ob, oo) = (&burn["operating"], &ort["operating"]);
    for key in ["ng_rate", "unknown_rate", "accuracy"] {
        let (b, o) = (ob[key].as_f64().unwrap(), oo[key].as_f64().unwrap());
        assert!((b - o).abs() <= 1e-6, "{key}: burn {b}, onnxruntime {o}");
    }
}
