//! `sightline eval-coco` end to end: the real binary on the shared fixture, against pycocotools' own stats.

#![allow(clippy::unwrap_used)]

use sightline_testkit::{Sightline, fixtures};

use crate::support::SIGHTLINE;

fn sightline(args: &[&str]) -> std::process::Output {
    let home =
        std::env::temp_dir().join(format!("sightline-eval-coco-test-{}", std::process::id()));
    Sightline::new(SIGHTLINE)
        .env("SIGHTLINE_HOME", &home)
        .output(args)
}

#[test]
fn eval_coco_matches_pycocotools_on_the_fixture() {
    let dir = fixtures();
    let gt = dir.join("widgets-a/annotations/instances_val.json");
    let dt = dir.join("expected/coco_eval/detections_val.json");
    let want: serde_json::Value = serde_json::from_str(
        &fs_err::read_to_string(dir.join("expected/coco_eval/pycocotools_stats.json")).unwrap(),
    )
    .unwrap();
    for ty in ["bbox", "segm"] {
        let out = sightline(&[
            "eval-coco",
            "--gt",
            gt.to_str().unwrap(),
            "--dt",
            dt.to_str().unwrap(),
            "--iou-type",
            ty,
            "--json",
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let got: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let got = got["stats_list"].as_array().unwrap();
        let want = want["pycocotools"][ty].as_array().unwrap();
        assert_eq!(got.len(), 12);
        for (g, w) in got.iter().zip(want) {
            assert!(
                (g.as_f64().unwrap() - w.as_f64().unwrap()).abs() <= 1e-4,
                "{ty}: {got:?} vs {want:?}"
            );
        }
    }
    // Human layout.
    let out = sightline(&[
        "eval-coco",
        "--gt",
        gt.to_str().unwrap(),
        "--dt",
        dt.to_str().unwrap(),
    ]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(
            " Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = 0.423"
        ),
        "{text}"
    );
    assert!(text.contains(
        " Average Recall     (AR) @[ IoU=0.50:0.95 | area=medium | maxDets=100 ] = -1.000"
    ));
}

#[test]
fn eval_coco_reports_malformed_files() {
    let dir = fixtures();
    let gt = dir.join("widgets-a/annotations/instances_val.json");
    let bad = std::env::temp_dir().join(format!("sightline-bad-dt-{}.json", std::process::id()));
    fs_err::write(
        &bad,
        br#"[{"image_id": 1, "category_id": 1, "score": "high", "bbox": [1, 2, 3, 4]}]"#,
    )
    .unwrap();
    let out = sightline(&[
        "eval-coco",
        "--gt",
        gt.to_str().unwrap(),
        "--dt",
        bad.to_str().unwrap(),
    ]);
    fs_err::remove_file(&bad).unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("sightline-bad-dt") && err.contains("line 1"),
        "{err}"
    );

    let out = sightline(&[
        "eval-coco",
        "--gt",
        "/nonexistent/gt.json",
        "--dt",
        gt.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/gt.json"));

    let out = sightline(&[
        "eval-coco",
        "--gt",
        gt.to_str().unwrap(),
        "--dt",
        gt.to_str().unwrap(),
        "--iou-type",
        "x",
    ]);
    assert!(!out.status.success());
}
