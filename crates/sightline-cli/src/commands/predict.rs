//! `sightline predict`: run a checkpoint on images. The task comes from the checkpoint
//! (Ultralytics `.pt` → instance segmentation with YOLOv8-seg; torchvision `.pth` →
//! classification with MobileNetV3). Prints one JSON line per image with `--json`, a short
//! table otherwise; `--save-overlay DIR` writes `<stem>.png` with masks, boxes and labels (or
//! the predicted class).

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde_json::{Value, json};
use sightline_vision::backend::BackendKind;
use sightline_vision::backend::Device;
use sightline_vision::checkpoint::{Task, read_checkpoint, task_of};
use sightline_vision::classify::{Classification, Classifier};
use sightline_vision::image::DynamicImage;
use sightline_vision::imgsz::{ImgszSource, ResolvedImgsz, classify_preprocess, inference_imgsz};
use sightline_vision::overlay::{class_color, draw_detections, draw_tag, save_png};
use sightline_vision::postprocess::NmsSettings;
use sightline_vision::preprocess::load_rgb;
use sightline_vision::segment::{Detection, SegmentSettings, Segmenter};

use crate::ctx::Ctx;
use crate::inference::{InferenceRuntime, RuntimeArgs};

/// Arguments of `sightline predict`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Checkpoint: Ultralytics `.pt` (segmentation), torchvision MobileNetV3 `.pth`
    /// (classification), or safetensors with either naming.
    #[arg(long)]
    pub weights: PathBuf,
    /// Class names, comma-separated (default: the names stored in the checkpoint).
    #[arg(long, value_delimiter = ',')]
    pub labels: Option<Vec<String>>,
    /// Inference size: a detector's letterbox side (rounded up to a multiple of 32), a
    /// classifier's crop (resize `imgsz·256/224` first). Default: the size the checkpoint was
    /// trained at (Ultralytics `train_args.imgsz`, or ours), else 640 (detector) / 224
    /// (classifier).
    #[arg(long)]
    pub imgsz: Option<usize>,
    /// Confidence threshold.
    #[arg(long, default_value_t = 0.25)]
    pub conf: f32,
    /// IoU threshold of non-maximum suppression.
    #[arg(long, default_value_t = 0.7)]
    pub iou: f32,
    /// Maximum detections per image.
    #[arg(long, default_value_t = 300)]
    pub max_det: usize,
    /// Images per forward pass.
    #[arg(long, default_value_t = 1)]
    pub batch: usize,
    /// Compute device: cpu, cuda, cuda:N.
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Write an overlay PNG per image into this directory.
    #[arg(long, value_name = "DIR")]
    pub save_overlay: Option<PathBuf>,
    /// Inference runtime.
    #[command(flatten)]
    pub runtime: RuntimeArgs,
    /// Image files.
    #[arg(required = true)]
    pub images: Vec<PathBuf>,
}

/// Run the command.
pub async fn run(args: Args, ctx: &Ctx) -> anyhow::Result<()> {
    let json = ctx.json;
    let runtime = InferenceRuntime::resolve(ctx, &args.runtime)?;
    runtime.notice();
    tokio::task::spawn_blocking(move || predict(args, json, runtime))
        .await
        .context("prediction worker stopped")?
}

fn predict(args: Args, json: bool, runtime: InferenceRuntime) -> anyhow::Result<()> {
    if args.batch == 0 {
        bail!("--batch must be at least 1");
    }
    let backend: BackendKind = args.device.parse()?;
    let device = backend.device()?;
    let labels = args.labels.clone().map(|l| {
        l.into_iter()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
    });
    let ckpt = read_checkpoint(&args.weights)?;
    let Some(task) = task_of(&ckpt) else {
        bail!(
            "cannot tell which model {} holds (no task in its metadata and no known tensor names)",
            args.weights.display()
        )
    };
    let imgsz = inference_imgsz(args.imgsz, &ckpt.meta, task)
        .with_context(|| format!("image size of {}", args.weights.display()))?;
    if task == Task::Classify {
        drop(ckpt);
        return classify(&args, json, labels, device, imgsz, &runtime);
    }
    let model = Segmenter::from_loaded_checkpoint(ckpt, labels, device)
        .with_context(|| format!("loading {}", args.weights.display()))?;
    let model = match runtime.ort() {
        Some(rt) => sightline_onnx::attach::segmenter_on_ort(model, &rt, None, imgsz.imgsz)
            .context("running the model on ONNX Runtime (--runtime burn avoids it)")?,
        None => model,
    };
    let settings = SegmentSettings {
        imgsz: imgsz.imgsz,
        nms: NmsSettings {
            conf: args.conf,
            iou: args.iou,
            max_det: args.max_det,
            ..NmsSettings::default()
        },
        ..SegmentSettings::default()
    }
    .validated()?;
    if !json {
        println!(
            "{}",
            imgsz_notice(&settings.imgsz.to_string(), imgsz.source, task)
        );
    }
    create_overlay_dir(&args)?;
    for chunk in args.images.chunks(args.batch) {
        let mut images = Vec::with_capacity(chunk.len());
        for path in chunk {
            images.push(load_rgb(path)?);
        }
        let results = model.predict(&images, &settings)?;
        for ((path, image), dets) in chunk.iter().zip(&images).zip(&results) {
            let (w, h) = (image.width(), image.height());
            if json {
                println!("{}", segment_json(path, w, h, dets)?);
            } else {
                print_human(path, w, h, dets);
            }
            if let Some(dir) = &args.save_overlay {
                let out = overlay_path(dir, path);
                save_png(&draw_detections(image, dets), &out)?;
            }
        }
    }
    Ok(())
}

/// The human-output line saying which size runs and why (nothing of it goes into `--json`).
fn imgsz_notice(size: &str, source: ImgszSource, task: Task) -> String {
    let why = match (source, task) {
        (ImgszSource::Explicit, _) => "--imgsz",
        (ImgszSource::Checkpoint, _) => "the checkpoint's training size",
        (ImgszSource::Fallback, Task::Segment) => {
            "default; the checkpoint records no training size"
        }
        (ImgszSource::Fallback, Task::Classify) => {
            "torchvision default; the checkpoint records no training size"
        }
    };
    format!("imgsz {size} ({why})")
}

fn create_overlay_dir(args: &Args) -> anyhow::Result<()> {
    if let Some(dir) = &args.save_overlay {
        fs_err::create_dir_all(dir)
            .with_context(|| format!("cannot create overlay directory {}", dir.display()))?;
    }
    Ok(())
}

fn classify(
    args: &Args,
    json: bool,
    labels: Option<Vec<String>>,
    device: Device,
    imgsz: ResolvedImgsz,
    runtime: &InferenceRuntime,
) -> anyhow::Result<()> {
    if imgsz.imgsz == 0 {
        bail!("--imgsz must be positive");
    }
    let pre = classify_preprocess(imgsz.imgsz);
    let model = Classifier::load_on(&args.weights, labels, device)
        .with_context(|| format!("loading {}", args.weights.display()))?
        .with_preprocess(pre.clone());
    let model = match runtime.ort() {
        Some(rt) => sightline_onnx::attach::classifier_on_ort(model, &rt, None)
            .context("running the model on ONNX Runtime (--runtime burn avoids it)")?,
        None => model,
    };
    if !json {
        let size = format!("{} (resize {})", pre.crop, pre.resize);
        println!("{}", imgsz_notice(&size, imgsz.source, Task::Classify));
    }
    create_overlay_dir(args)?;
    for chunk in args.images.chunks(args.batch) {
        let mut images = Vec::with_capacity(chunk.len());
        for path in chunk {
            images.push(DynamicImage::ImageRgb8(load_rgb(path)?));
        }
        let results = model.predict(&images)?;
        for ((path, image), c) in chunk.iter().zip(&images).zip(&results) {
            if json {
                println!("{}", classify_json(path, c, model.labels()));
            } else {
                let mut top: Vec<(usize, f32)> = c.top_k(3);
                top.retain(|&(_, p)| p > 0.0);
                let others: Vec<String> = top
                    .iter()
                    .map(|&(i, p)| format!("{} {p:.3}", model.labels()[i]))
                    .collect();
                println!(
                    "{}: {} {:.3}  (top: {})",
                    path.display(),
                    c.label,
                    c.confidence,
                    others.join(", ")
                );
            }
            if let Some(dir) = &args.save_overlay {
                let tag = format!("{} {:.2}", c.label, c.confidence);
                let img = draw_tag(&image.to_rgb8(), &tag, class_color(c.class_id));
                save_png(&img, &overlay_path(dir, path))?;
            }
        }
    }
    Ok(())
}

/// The JSON line of one classified image.
pub fn classify_json(path: &Path, c: &Classification, labels: &[String]) -> Value {
    let probabilities: serde_json::Map<String, Value> = labels
        .iter()
        .zip(&c.probabilities)
        .map(|(l, &p)| (l.clone(), json!(round_to(p, 6))))
        .collect();
    json!({
        "image": path.display().to_string(),
        "label": c.label,
        "confidence": round_to(c.confidence, 6),
        "probabilities": probabilities,
    })
}

fn round_to(v: f32, decimals: i32) -> f64 {
    let p = 10f64.powi(decimals);
    (f64::from(v) * p).round() / p
}

/// The JSON line of one segmented image.
pub fn segment_json(
    path: &Path,
    width: u32,
    height: u32,
    dets: &[Detection],
) -> anyhow::Result<Value> {
    let mut detections = Vec::with_capacity(dets.len());
    for d in dets {
        let rle = d.mask_rle()?;
        detections.push(json!({
            "label": d.label,
            "class_id": d.class_id,
            "confidence": round_to(d.confidence, 6),
            "box_xyxy": d.box_xyxy.map(|v| round_to(v, 3)),
            "mask_rle": {"size": [rle.h(), rle.w()], "counts": rle.counts()},
        }));
    }
    Ok(json!({
        "image": path.display().to_string(),
        "width": width,
        "height": height,
        "detections": detections,
    }))
}

fn print_human(path: &Path, w: u32, h: u32, dets: &[Detection]) {
    let n = dets.len();
    println!(
        "{} ({w}×{h}): {n} detection{}",
        path.display(),
        if n == 1 { "" } else { "s" }
    );
    for d in dets {
        let [x1, y1, x2, y2] = d.box_xyxy;
        println!(
            "  {:<12} {:.3}  [{x1:.1}, {y1:.1}, {x2:.1}, {y2:.1}]  {} px",
            d.label,
            d.confidence,
            d.mask.area()
        );
    }
}

/// `<dir>/<image stem>.png`.
fn overlay_path(dir: &Path, image: &Path) -> PathBuf {
    let stem = image
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "image".to_string());
    dir.join(format!("{stem}.png"))
}
