//! Benchmark of the COCO evaluation (the work of pycocotools' `evaluate()` + `accumulate()` + `summarize()`).
//!
//! `cargo run --release -p sightline-eval --example coco_bench -- [GT.json DT.json [REPEATS]]`
//! (default: the shared fixture, 5 repeats). Prints the median wall time per iou type, with and without
//! loading the json files, and the 12 stats.

use std::path::PathBuf;
use std::time::Instant;

use sightline_eval::coco::{CocoGt, IouType, evaluate, load_detections};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let fixtures = std::env::var_os("SIGHTLINE_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures")
        });
    let gt_path = args
        .first()
        .map(PathBuf::from)
        .unwrap_or_else(|| fixtures.join("widgets-a/annotations/instances_val.json"));
    let dt_path = args
        .get(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| fixtures.join("expected/coco_eval/detections_val.json"));
    let repeats: usize = args
        .get(2)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(5)
        .max(1);
    println!("threads: {}", rayon::current_num_threads());
    for ty in [IouType::Bbox, IouType::Segm] {
        let mut eval_only = Vec::new();
        let mut with_load = Vec::new();
        let mut stats = [0.0; 12];
        for _ in 0..repeats {
            let t0 = Instant::now();
            let gt = CocoGt::from_path(&gt_path)?;
            let dt = load_detections(&dt_path)?;
            let t1 = Instant::now();
            let ev = evaluate(&gt, &dt, ty)?;
            let t2 = Instant::now();
            eval_only.push((t2 - t1).as_secs_f64());
            with_load.push((t2 - t0).as_secs_f64());
            stats = ev.stats;
        }
        println!(
            "{ty}: evaluate+accumulate+summarize median {:.4} s, with json loading {:.4} s ({repeats} runs)",
            median(eval_only),
            median(with_load)
        );
        println!("{ty} stats: {stats:?}");
    }
    Ok(())
}
