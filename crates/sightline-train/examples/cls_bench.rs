//! Seconds per epoch of MobileNetV3-small classifier training (from scratch) on a class-folder
//! data set (`<root>/{train,val}/<label>/*.jpg`), for docs/perf.md.
//!
//! ```text
//! cargo run --release -p sightline-train --example cls_bench -- \
//!     [root (default ../shared/fixtures/widgets-a/classify)] [imgsz 64] [epochs 3] [batch 16]
//! ```
//!
//! Prints one line per epoch (time including validation, training loss, val top-1) and the
//! mean seconds per epoch. The experiment folder goes to a temporary directory.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use burn::tensor::Device;
use sightline_train::classify::{
    ClsImage, ClsInit, ClsRunConfig, ClsSample, init_classifier, train_classifier,
};
use sightline_train::control::TrainControl;
use sightline_train::experiment::Experiment;
use sightline_vision::mobilenet::MobileNetV3Variant;
use std::path::{Path, PathBuf};
use std::time::Instant;

fn split(root: &Path, split: &str, labels: &[String]) -> Vec<ClsSample> {
    let mut out = Vec::new();
    for (class, label) in labels.iter().enumerate() {
        let mut files: Vec<PathBuf> = fs_err::read_dir(root.join(split).join(label))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        out.extend(files.into_iter().map(|p| ClsSample {
            image: ClsImage::Path(p),
            class,
        }));
    }
    out
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let root = args.first().map_or_else(
        || {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../../../shared/fixtures/widgets-a/classify")
        },
        PathBuf::from,
    );
    let num = |i: usize, d: usize| args.get(i).map_or(d, |s| s.parse().unwrap());
    let (imgsz, epochs, batch) = (num(1, 64), num(2, 3), num(3, 16));
    let mut labels: Vec<String> = fs_err::read_dir(root.join("train"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    labels.sort();
    let (train, val) = (split(&root, "train", &labels), split(&root, "val", &labels));
    println!(
        "{} train / {} val images, classes {labels:?}, imgsz {imgsz}, batch {batch}, {epochs} epochs, {} threads",
        train.len(),
        val.len(),
        rayon::current_num_threads()
    );
    let device = Device::flex().autodiff();
    device.seed(0);
    let model = init_classifier(
        Some(MobileNetV3Variant::Small),
        labels.len(),
        &ClsInit::Scratch,
        &device,
    )
    .unwrap()
    .model;
    let cfg = ClsRunConfig {
        epochs,
        batch,
        imgsz: imgsz as u32,
        lr0: 2e-3,
        ..ClsRunConfig::default()
    };
    let mut opt = cfg.optimizer(&model);
    let tmp = tempfile::tempdir().unwrap();
    let mut exp = Experiment::create(tmp.path(), 0, &serde_json::json!({}), "bench").unwrap();
    let t0 = Instant::now();
    let mut times = Vec::new();
    train_classifier(
        model,
        &mut opt,
        &cfg,
        train,
        val,
        &mut exp,
        &device,
        &TrainControl::new(),
        |r| {
            println!(
                "epoch {}: {:.2} s, ce {:.4}, val top-1 {:.3}",
                r.epoch, r.time_s, r.losses["ce"], r.metrics["top1"]
            );
            times.push(r.time_s);
        },
    )
    .unwrap();
    let mean = times.iter().sum::<f64>() / times.len().max(1) as f64;
    println!(
        "mean {mean:.2} s/epoch; total {:.1} s including decoding",
        t0.elapsed().as_secs_f64()
    );
}
