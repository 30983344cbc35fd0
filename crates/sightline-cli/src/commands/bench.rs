//! `sightline bench`: benchmarks that print figures (recorded in docs/perf.md).
//!
//! `sightline bench predict` measures inference latency on the default backend with the model
//! and the image loaded once: median over `--iters` runs after `--warmup` runs, for each image
//! size and batch size, both for the network forward alone (input already preprocessed, outputs
//! read back) and for the whole pipeline (YOLOv8-seg: letterbox, forward, NMS, masks at full
//! resolution; MobileNetV3-small at 224: resize, crop, normalise, forward, softmax).

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, bail};
use serde_json::json;
use sightline_vision::backend::BackendKind;
use sightline_vision::burn::tensor::{Tensor, TensorData};
use sightline_vision::classify::Classifier;
use sightline_vision::image::DynamicImage;
use sightline_vision::mobilenet::MobileNetV3Config;
use sightline_vision::preprocess::load_rgb;
use sightline_vision::segment::{SegmentSettings, Segmenter};
use sightline_vision::weights::tensor_to_vec;
use sightline_vision::yolo::{YoloV8Seg, YoloV8SegConfig};

use crate::ctx::Ctx;

/// Arguments of `sightline bench`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Which benchmark.
    #[command(subcommand)]
    pub command: BenchCommand,
}

/// The benchmarks.
#[derive(Debug, clap::Subcommand)]
pub enum BenchCommand {
    /// Inference latency of the vision models (median per batch and per image).
    Predict(PredictArgs),
}

/// Arguments of `sightline bench predict`.
#[derive(Debug, clap::Args)]
pub struct PredictArgs {
    /// YOLOv8-seg checkpoint (default: a randomly initialised yolov8n-seg with 80 classes).
    #[arg(long)]
    pub yolo_weights: Option<PathBuf>,
    /// MobileNetV3 checkpoint (default: a randomly initialised MobileNetV3-small, 1000 classes).
    #[arg(long)]
    pub mobilenet_weights: Option<PathBuf>,
    /// Skip the MobileNetV3 measurements.
    #[arg(long)]
    pub no_mobilenet: bool,
    /// Image to run on (default: a synthetic 640×480 image).
    #[arg(long)]
    pub image: Option<PathBuf>,
    /// Image sizes to measure.
    #[arg(long, value_delimiter = ',', default_value = "640,256")]
    pub sizes: Vec<usize>,
    /// Batch sizes to measure.
    #[arg(long, value_delimiter = ',', default_value = "1,8")]
    pub batches: Vec<usize>,
    /// Timed runs per configuration.
    #[arg(long, default_value_t = 10)]
    pub iters: usize,
    /// Untimed warm-up runs per configuration.
    #[arg(long, default_value_t = 2)]
    pub warmup: usize,
    /// Compute device: cpu, cuda, cuda:N.
    #[arg(long, default_value = "cpu")]
    pub device: String,
}

/// Run the command.
pub async fn run(args: Args, ctx: &Ctx) -> anyhow::Result<()> {
    let json = ctx.json;
    match args.command {
        BenchCommand::Predict(a) => tokio::task::spawn_blocking(move || bench_predict(a, json))
            .await
            .context("benchmark worker stopped")?,
    }
}

fn median_ms(
    mut f: impl FnMut() -> anyhow::Result<()>,
    warmup: usize,
    iters: usize,
) -> anyhow::Result<f64> {
    for _ in 0..warmup {
        f()?;
    }
    let mut times = Vec::with_capacity(iters);
    for _ in 0..iters {
        let t = Instant::now();
        f()?;
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(f64::total_cmp);
    let n = times.len();
    Ok(if n % 2 == 1 {
        times[n / 2]
    } else {
        (times[n / 2 - 1] + times[n / 2]) / 2.0
    })
}

fn bench_predict(args: PredictArgs, json: bool) -> anyhow::Result<()> {
    if args.iters == 0 || args.batches.contains(&0) {
        bail!("--iters and every batch size must be at least 1");
    }
    let backend: BackendKind = args.device.parse()?;
    let device = backend.device()?;
    let (model, model_name) = match &args.yolo_weights {
        Some(path) => (
            Segmenter::from_checkpoint(path, None, device)
                .with_context(|| format!("loading {}", path.display()))?,
            path.display().to_string(),
        ),
        None => {
            let config = YoloV8SegConfig::n(80);
            let net = YoloV8Seg::new(&config, &device);
            let labels = (0..80).map(|i| format!("class{i}")).collect();
            (
                Segmenter::new(net, config, labels, device)?,
                "yolov8n-seg (random weights, 80 classes)".to_string(),
            )
        }
    };
    let image = match &args.image {
        Some(p) => load_rgb(p)?,
        None => sightline_vision::preprocess::synthetic_image(640, 480),
    };
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    if !json {
        println!(
            "model: {model_name}; image {}×{}; backend {backend}; {} runs after {} warm-up; {threads} CPU threads",
            image.width(),
            image.height(),
            args.iters,
            args.warmup
        );
        println!(
            "{:<12} {:>6} {:>6} {:>14} {:>14} {:>16}",
            "model", "imgsz", "batch", "forward ms", "pipeline ms", "pipeline ms/img"
        );
    }
    let mut rows = Vec::new();
    for &imgsz in &args.sizes {
        let settings = SegmentSettings {
            imgsz,
            ..SegmentSettings::default()
        }
        .validated()?;
        let (one, lb) = model.prepare(&image, &settings)?;
        for &batch in &args.batches {
            let mut data = Vec::with_capacity(one.len() * batch);
            for _ in 0..batch {
                data.extend_from_slice(&one);
            }
            let shape = [batch, 3, lb.input.0, lb.input.1];
            let forward = median_ms(
                || {
                    let x = Tensor::<4>::from_data(
                        TensorData::new(data.clone(), shape),
                        model.device(),
                    );
                    let out = model.forward(x);
                    tensor_to_vec(out.pred)?;
                    tensor_to_vec(out.proto)?;
                    Ok(())
                },
                args.warmup,
                args.iters,
            )?;
            let images = vec![image.clone(); batch];
            let pipeline = median_ms(
                || {
                    model.predict(&images, &settings)?;
                    Ok(())
                },
                args.warmup,
                args.iters,
            )?;
            let per_image = pipeline / batch as f64;
            if json {
                rows.push(json!({"model": "yolov8-seg", "imgsz": settings.imgsz, "batch": batch,
                    "forward_ms": forward, "pipeline_ms": pipeline, "pipeline_ms_per_image": per_image}));
            } else {
                println!(
                    "{:<12} {:>6} {:>6} {:>14.1} {:>14.1} {:>16.1}",
                    "yolov8-seg", settings.imgsz, batch, forward, pipeline, per_image
                );
            }
        }
    }
    if !args.no_mobilenet {
        let (classifier, name) = match &args.mobilenet_weights {
            Some(path) => (
                Classifier::load_on(path, None, model.device().clone())
                    .with_context(|| format!("loading {}", path.display()))?,
                path.display().to_string(),
            ),
            None => {
                let config = MobileNetV3Config::small(1000);
                let net = config.init(model.device());
                let labels = (0..1000).map(|i| format!("class{i}")).collect();
                (
                    Classifier::new(net, config, labels, model.device().clone())?,
                    "mobilenet_v3_small (random weights, 1000 classes)".to_string(),
                )
            }
        };
        let largest = args.batches.iter().copied().max().unwrap_or(1);
        let classifier = classifier.with_max_batch(largest);
        let crop = classifier.preprocess().crop;
        let one = classifier.preprocess().apply(&image);
        for &batch in &args.batches {
            let mut data = Vec::with_capacity(one.len() * batch);
            for _ in 0..batch {
                data.extend_from_slice(&one);
            }
            let forward = median_ms(
                || {
                    let x = Tensor::<4>::from_data(
                        TensorData::new(data.clone(), [batch, 3, crop, crop]),
                        classifier.device(),
                    );
                    tensor_to_vec(classifier.forward(x))?;
                    Ok(())
                },
                args.warmup,
                args.iters,
            )?;
            let images = vec![DynamicImage::ImageRgb8(image.clone()); batch];
            let pipeline = median_ms(
                || {
                    classifier.predict(&images)?;
                    Ok(())
                },
                args.warmup,
                args.iters,
            )?;
            let per_image = pipeline / batch as f64;
            if json {
                rows.push(json!({"model": "mobilenet_v3", "weights": name, "imgsz": crop, "batch": batch,
                    "forward_ms": forward, "pipeline_ms": pipeline, "pipeline_ms_per_image": per_image}));
            } else {
                println!(
                    "{:<12} {:>6} {:>6} {:>14.1} {:>14.1} {:>16.1}",
                    "mobilenetv3", crop, batch, forward, pipeline, per_image
                );
            }
        }
    }
    if json {
        println!(
            "{}",
            json!({"model": model_name, "backend": backend.to_string(), "threads": threads,
                   "iters": args.iters, "warmup": args.warmup, "results": rows})
        );
    }
    Ok(())
}
