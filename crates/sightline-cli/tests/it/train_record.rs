//! `sightline train … --save-record` writes Burn records (`weights/{last,best}.bpk`) and
//! `sightline predict --weights <record>` loads them like the safetensors checkpoints, with the
//! same predictions (the weight kind is recognised by content).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::{Path, PathBuf};

use crate::support::train_env::{Env, done};

/// Some image of the generated data set.
fn an_image(dir: &Path) -> PathBuf {
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let mut entries: Vec<PathBuf> = fs_err::read_dir(&d)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for p in entries {
            if p.is_dir() {
                stack.push(p);
            } else if matches!(
                p.extension().and_then(|e| e.to_str()),
                Some("png" | "jpg" | "jpeg")
            ) {
                return p;
            }
        }
    }
    panic!("no image under {}", dir.display());
}

fn scenario(pipeline: &'static str) {
    let tmp = tempfile::tempdir().unwrap();
    let env = Env::new(tmp.path(), None, pipeline);
    env.tiny_data();
    let ev = env.train(&["--config", "tiny.yaml", "--epochs", "1", "--save-record"]);
    let d = done(&ev);
    assert_eq!(d["status"], "completed");
    let dir = env.experiments().join(d["experiment"].as_str().unwrap());
    let records: Vec<String> = d["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap().to_string())
        .collect();
    let (last, best) = (dir.join("weights/last.bpk"), dir.join("weights/best.bpk"));
    assert_eq!(
        records,
        vec![last.display().to_string(), best.display().to_string()]
    );
    assert_eq!(
        &fs_err::read(&best).unwrap()[..4],
        b"NRUB",
        "a Burnpack file"
    );

    let image = an_image(&env.home.join("data"));
    let image = image.to_str().unwrap();
    let names: Vec<String> = ev[0]["names"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap().to_string())
        .collect();
    let predict = |weights: &Path, labels: Option<&str>| {
        let mut args = vec![
            "predict",
            "--weights",
            weights.to_str().unwrap(),
            "--imgsz",
            "64",
            "--json",
        ];
        if let Some(l) = labels {
            args.extend(["--labels", l]);
        }
        if pipeline == "detector" {
            // a one-epoch detector finds nothing at the default threshold: compare many boxes
            args.extend(["--conf", "0.001"]);
        }
        args.push(image);
        env.ok(&args)
    };
    // the record carries the run's class names
    let own = predict(&best, None);
    let v: serde_json::Value = serde_json::from_str(own.lines().next().unwrap()).unwrap();
    assert_eq!(v["image"], image, "{v}");
    let labels_seen: Vec<String> = match pipeline {
        "classifier" => v["probabilities"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect(),
        _ => v["detections"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["label"].as_str().unwrap().to_string())
            .collect(),
    };
    assert!(!labels_seen.is_empty(), "{v}");
    assert!(labels_seen.iter().all(|l| names.contains(l)), "{v}");
    // same predictions as the safetensors checkpoint of the same epoch
    let labels = names.join(",");
    let from_record = predict(&best, Some(&labels));
    let from_safetensors = predict(&dir.join("weights/best.safetensors"), Some(&labels));
    assert!(!from_record.trim().is_empty());
    assert_eq!(
        from_record, from_safetensors,
        "record and safetensors disagree"
    );
}

#[test]
fn classifier_records_load_in_predict() {
    scenario("classifier");
}

#[test]
fn detector_records_load_in_predict() {
    scenario("detector");
}
