//! COCOeval parity: the shared fixture (real Ultralytics detections, pycocotools' own stats) and hand-built edge
//! cases whose expected stats were computed by pycocotools (`tests/data/make_coco_edge_cases.py`).

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use serde_json::Value;
use sightline_eval::coco::{CocoGt, IouType, evaluate, load_detections};

fn fixtures() -> PathBuf {
    match std::env::var_os("SIGHTLINE_FIXTURES") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures"),
    }
}

fn assert_stats(got: &[f64; 12], want: &Value, what: &str) {
    let want: Vec<f64> = want
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert_eq!(want.len(), 12);
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert!(
            (g - w).abs() <= 1e-4,
            "{what}: stat {i}: got {g} want {w}\n{got:?}"
        );
    }
}

#[test]
fn fixture_matches_pycocotools_bbox_and_segm() {
    let dir = fixtures();
    let gt = CocoGt::from_path(dir.join("widgets-a/annotations/instances_val.json")).unwrap();
    let dt = load_detections(dir.join("expected/coco_eval/detections_val.json")).unwrap();
    let want: Value = serde_json::from_str(
        &fs_err::read_to_string(dir.join("expected/coco_eval/pycocotools_stats.json")).unwrap(),
    )
    .unwrap();
    for (ty, key) in [(IouType::Bbox, "bbox"), (IouType::Segm, "segm")] {
        let ev = evaluate(&gt, &dt, ty).unwrap();
        assert_stats(&ev.stats, &want["pycocotools"][key], key);
    }
}

#[test]
fn edge_cases_match_pycocotools() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/coco_edge");
    let expected: Value =
        serde_json::from_str(&fs_err::read_to_string(dir.join("expected.json")).unwrap()).unwrap();
    let cases = expected.as_object().unwrap();
    assert!(cases.len() >= 9);
    for (name, want) in cases {
        let gt = CocoGt::from_path(dir.join(name).join("gt.json")).unwrap();
        let dt = load_detections(dir.join(name).join("dt.json")).unwrap();
        for (ty, key) in [(IouType::Bbox, "bbox"), (IouType::Segm, "segm")] {
            let ev = evaluate(&gt, &dt, ty).unwrap();
            assert_stats(&ev.stats, &want[key], &format!("{name}/{key}"));
        }
    }
}

#[test]
fn malformed_inputs_are_clear_errors() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/coco_edge/duplicates");
    let gt = CocoGt::from_path(dir.join("gt.json")).unwrap();
    let mut dt = load_detections(dir.join("dt.json")).unwrap();
    dt[1].image_id = 999;
    let e = evaluate(&gt, &dt, IouType::Bbox).unwrap_err().to_string();
    assert!(e.contains("detection #1") && e.contains("image_id"), "{e}");

    let mut gt2 = gt.clone();
    gt2.annotations[0].area = None;
    let dt = load_detections(dir.join("dt.json")).unwrap();
    let e = evaluate(&gt2, &dt, IouType::Segm).unwrap_err().to_string();
    assert!(e.contains("missing area"), "{e}");

    let tmp = std::env::temp_dir().join(format!("sightline-eval-bad-{}.json", std::process::id()));
    fs_err::write(&tmp, b"{\"images\": 3}").unwrap();
    let e = CocoGt::from_path(&tmp).unwrap_err().to_string();
    fs_err::remove_file(&tmp).unwrap();
    assert!(
        e.contains("sightline-eval-bad") && e.contains("line 1"),
        "{e}"
    );
    let e = load_detections(dir.join("missing.json"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("missing.json"), "{e}");
}

#[test]
fn summary_layout_and_per_class_ap() {
    let dir =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/coco_edge/class_without_gt");
    let gt = CocoGt::from_path(dir.join("gt.json")).unwrap();
    let dt = load_detections(dir.join("dt.json")).unwrap();
    let ev = evaluate(&gt, &dt, IouType::Bbox).unwrap();
    let s = ev.summary();
    assert_eq!(s.lines().count(), 12);
    assert!(
        s.starts_with(" Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = "),
        "{s}"
    );
    assert!(
        s.contains(
            " Average Recall     (AR) @[ IoU=0.50:0.95 | area= large | maxDets=100 ] = -1.000"
        ),
        "{s}"
    );
    let per = ev.per_category_ap(None);
    assert_eq!(per.len(), 3);
    assert_eq!(per[2], (3, -1.0));
    let mean: f64 = per.iter().filter(|p| p.1 > -1.0).map(|p| p.1).sum::<f64>() / 2.0;
    assert!((mean - ev.stats[0]).abs() < 1e-12);
}
