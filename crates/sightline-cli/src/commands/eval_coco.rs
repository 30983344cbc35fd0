//! `sightline eval-coco`: COCO box/mask evaluation of a results file against a ground-truth file, printing the
//! 12 summary numbers in pycocotools' layout (or JSON with `--json`). Same numbers as pycocotools' `COCOeval`.

use std::path::PathBuf;

use anyhow::Context;
use serde_json::json;
use sightline_eval::coco::{CocoGt, IouType, STAT_NAMES, evaluate, load_detections};

use crate::ctx::Ctx;

/// Arguments of `sightline eval-coco`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Ground truth: a COCO instances json (images, annotations, categories).
    #[arg(long)]
    pub gt: PathBuf,
    /// Detections: a COCO results json (list of {image_id, category_id, score, bbox and/or segmentation}).
    #[arg(long)]
    pub dt: PathBuf,
    /// What the IoU is computed on: `bbox` (boxes) or `segm` (masks).
    #[arg(long, default_value = "bbox")]
    pub iou_type: IouType,
}

/// Run the command.
pub async fn run(args: Args, ctx: &Ctx) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let gt = CocoGt::from_path(&args.gt).context("cannot load the ground truth")?;
    let dt = load_detections(&args.dt).context("cannot load the detections")?;
    let ev = evaluate(&gt, &dt, args.iou_type).with_context(|| {
        format!(
            "cannot evaluate {} against {}",
            args.dt.display(),
            args.gt.display()
        )
    })?;
    let seconds = started.elapsed().as_secs_f64();
    if ctx.json {
        let stats: serde_json::Map<String, serde_json::Value> = STAT_NAMES
            .iter()
            .zip(ev.stats)
            .map(|(n, v)| (n.to_string(), json!(v)))
            .collect();
        let ap = ev.per_category_ap(None);
        let ap50 = ev.per_category_ap(Some(0.5));
        let per_category: Vec<_> = ap
            .iter()
            .zip(&ap50)
            .map(|((id, a), (_, a50))| {
                let name = gt
                    .categories
                    .iter()
                    .find(|c| c.id == *id)
                    .map(|c| c.name.clone());
                json!({"category_id": id, "name": name, "ap": a, "ap50": a50})
            })
            .collect();
        let out = json!({
            "gt": args.gt,
            "dt": args.dt,
            "iou_type": args.iou_type,
            "images": ev.img_ids.len(),
            "detections": dt.len(),
            "stat_names": STAT_NAMES,
            "stats_list": ev.stats,
            "stats": stats,
            "per_category": per_category,
            "seconds": seconds,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        println!(
            "Evaluate annotation type *{}*: {} images, {} categories, {} detections ({seconds:.3}s)",
            args.iou_type,
            ev.img_ids.len(),
            ev.cat_ids.len(),
            dt.len()
        );
        print!("{}", ev.summary());
    }
    Ok(())
}
