//! `sightline demo generate` through the real binary.

use std::process::Command;

use sightline_testkit::Sightline;

use crate::support::SIGHTLINE;

fn sightline() -> Command {
    Sightline::new(SIGHTLINE).command(&[])
}

#[test]
fn generates_the_same_coco_data_twice_and_refuses_to_overwrite() {
    let tmp = tempfile::tempdir().unwrap();
    for name in ["a", "b"] {
        let out = sightline()
            .args([
                "--json", "demo", "generate", "--train", "5", "--val", "2", "--size", "64",
                "--seed", "3", "--out",
            ])
            .arg(tmp.path().join(name))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(summary["images"]["train"], 5);
        assert_eq!(summary["images"]["val"], 2);
    }
    for rel in [
        "annotations/instances_train.json",
        "annotations/instances_val.json",
        "images/train/train_00004.jpg",
    ] {
        assert_eq!(
            fs_err::read(tmp.path().join("a").join(rel)).unwrap(),
            fs_err::read(tmp.path().join("b").join(rel)).unwrap(),
            "{rel}"
        );
    }
    let coco: serde_json::Value = serde_json::from_slice(
        &fs_err::read(tmp.path().join("a/annotations/instances_train.json")).unwrap(),
    )
    .unwrap();
    let names: Vec<&str> = coco["categories"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["scratch", "dent", "ng"]);

    let again = sightline()
        .args(["demo", "generate", "--out"])
        .arg(tmp.path().join("a"))
        .output()
        .unwrap();
    assert!(!again.status.success());
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(err.contains("not empty"), "{err}");
}
