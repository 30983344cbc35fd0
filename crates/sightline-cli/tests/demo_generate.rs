//! `sightline demo generate` through the real binary.

use std::process::Command;

fn sightline() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sightline"))
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
            std::fs::read(tmp.path().join("a").join(rel)).unwrap(),
            std::fs::read(tmp.path().join("b").join(rel)).unwrap(),
            "{rel}"
        );
    }
    let coco: serde_json::Value = serde_json::from_slice(
        &std::fs::read(tmp.path().join("a/annotations/instances_train.json")).unwrap(),
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
