//! Shared by the `sightline train` binary tests: a temp home with the tiny project applied,
//! a tiny synthetic data set, and runners for the real binary (a [`Sightline`] from the test
//! kit with `--home` and `--database-url`).

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use sightline_testkit::Sightline;
use sightline_testkit::db::sqlite_url;

use super::SIGHTLINE;

pub const MANIFEST: &str = "project: tiny
labels: [ok, ng, scratch, dent]
models:
  detector:
    name: yolov8n-seg
    weights: none
    hyperparameters:
      epochs: 2
      batch_size: 4
      imgsz: 64
      warmup_epochs: 0
      seed: 3
  classifier:
    name: mobilenet_v3_small
    weights: none
    hyperparameters:
      epochs: 2
      batch_size: 4
      imgsz: 64\n";

/// A home with the tiny project applied, for one training pipeline.
pub struct Env {
    pub home: PathBuf,
    pub database_url: String,
    /// `detector` or `classifier`: the `sightline train` subcommand and the data it ingests.
    pub pipeline: &'static str,
}

impl Env {
    pub fn new(home: &Path, database_url: Option<String>, pipeline: &'static str) -> Self {
        fs_err::create_dir_all(home).unwrap();
        let database_url = database_url.unwrap_or_else(|| sqlite_url(&home.join("sightline.db")));
        let e = Env {
            home: home.to_path_buf(),
            database_url,
            pipeline,
        };
        fs_err::write(home.join("tiny.yaml"), MANIFEST).unwrap();
        e.ok(&["project", "apply", "tiny.yaml"]);
        e
    }

    /// The binary with `--home` and `--database-url`, in the home folder, without the caller's
    /// settings variables.
    fn bin(&self) -> Sightline {
        Sightline::with_flags(SIGHTLINE, &self.home, Some(&self.database_url))
            .env_removed(&["SIGHTLINE_ARTIFACTS_ROOT", "SIGHTLINE_ARTIFACTS_BACKEND"])
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.bin().output(args)
    }

    /// The binary with this environment's home and database, in the home folder.
    pub fn command(&self, args: &[&str]) -> Command {
        self.bin().command(args)
    }

    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    pub fn fail(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(!out.status.success(), "{args:?} should fail");
        String::from_utf8(out.stderr).unwrap()
    }

    /// Generate the tiny set and ingest it (COCO for the detector, the class folders for the
    /// classifier); returns the version id.
    pub fn tiny_data(&self) -> String {
        let (src, format) = match self.pipeline {
            "detector" => ("data", "coco"),
            _ => ("data/classify", "folder"),
        };
        self.ok(&[
            "demo", "generate", "--train", "6", "--val", "2", "--size", "64", "--seed", "5",
            "--out", "data",
        ]);
        let v: serde_json::Value = serde_json::from_str(&self.ok(&[
            "--json",
            "dataset",
            "ingest",
            src,
            "--project",
            "tiny",
            "--format",
            format,
        ]))
        .unwrap();
        v["version"]["id"].as_str().unwrap().to_string()
    }

    /// `train <pipeline> --json`; returns the events.
    pub fn train(&self, extra: &[&str]) -> Vec<serde_json::Value> {
        let mut args = vec!["--json", "train", self.pipeline];
        args.extend_from_slice(extra);
        self.ok(&args)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    pub fn experiments(&self) -> PathBuf {
        self.home.join("artifacts/experiments")
    }
}

pub fn done(events: &[serde_json::Value]) -> &serde_json::Value {
    let d = events.last().unwrap();
    assert_eq!(d["event"], "done", "{events:?}");
    d
}

pub fn metrics(dir: &Path) -> Vec<serde_json::Value> {
    serde_json::from_str(&fs_err::read_to_string(dir.join("metrics.json")).unwrap()).unwrap()
}
