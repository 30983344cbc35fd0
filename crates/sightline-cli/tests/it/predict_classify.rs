//! `sightline predict` on a torchvision MobileNetV3 checkpoint: the classification branch,
//! checked against torchvision's own predictions in the fixtures.

use std::path::PathBuf;

use serde_json::Value;
use sightline_testkit::Sightline;

use crate::support::SIGHTLINE;

fn fixtures() -> PathBuf {
    sightline_testkit::fixture("README.md");
    sightline_testkit::fixtures()
}

#[test]
fn predict_classifies_with_a_torchvision_checkpoint() {
    let fx = fixtures();
    let expected: Value = serde_json::from_slice(
        &fs_err::read(fx.join("expected/mobilenet/predictions.json")).unwrap(),
    )
    .unwrap();
    let labels: Vec<&str> = expected["labels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    let samples = expected["samples"].as_array().unwrap();
    let images: Vec<String> = samples
        .iter()
        .take(4)
        .map(|s| {
            fx.join("widgets-a")
                .join(s["image"].as_str().unwrap())
                .display()
                .to_string()
        })
        .collect();
    let weights = fx.join("torchvision/mobilenet_v3_small-widgets.pth");
    let joined = labels.join(",");
    let overlays = std::env::temp_dir().join(format!("sightline-cls-{}", std::process::id()));
    let mut args = vec![
        "predict",
        "--json",
        "--weights",
        weights.to_str().unwrap(),
        "--labels",
        &joined,
        "--save-overlay",
        overlays.to_str().unwrap(),
    ];
    args.extend(images.iter().map(String::as_str));
    let out = Sightline::new(SIGHTLINE).output(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), images.len());
    for ((line, sample), path) in lines.iter().zip(samples).zip(&images) {
        assert_eq!(line["image"].as_str().unwrap(), path);
        assert_eq!(line["label"], sample["predicted"], "{path}");
        let probs = line["probabilities"].as_object().unwrap();
        assert_eq!(probs.len(), labels.len());
        // top-1 must be torchvision's; the numeric parity of the network is tested in
        // sightline-vision (mobilenet parity tests)
        let total: f64 = probs.values().map(|p| p.as_f64().unwrap()).sum();
        assert!(
            (total - 1.0).abs() < 1e-3,
            "{path}: probabilities sum to {total}"
        );
        let best = probs
            .values()
            .map(|p| p.as_f64().unwrap())
            .fold(0.0, f64::max);
        assert!((line["confidence"].as_f64().unwrap() - best).abs() < 1e-9);
        let stem = PathBuf::from(path)
            .file_stem()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        assert!(overlays.join(format!("{stem}.png")).is_file());
    }
    fs_err::remove_dir_all(&overlays).unwrap();
}
