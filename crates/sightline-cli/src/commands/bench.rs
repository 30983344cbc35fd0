//! `sightline bench`: benchmarks that print figures (recorded in docs/perf.md).
//!
//! `sightline bench predict` measures inference latency on the default backend with the model
//! and the image loaded once: median over `--iters` runs after `--warmup` runs, for each image
//! size and batch size, both for the network forward alone (input already preprocessed, outputs
//! read back) and for the whole pipeline (YOLOv8-seg: letterbox, forward, NMS, masks at full
//! resolution; MobileNetV3-small at 224: resize, crop, normalise, forward, softmax). A given
//! checkpoint is measured at the size it was trained at when it records one
//! ([`sightline_vision::imgsz`]; the detector unless `--sizes` is given).
//!
//! `sightline bench serve` is a load test of a running `sightline serve`: `--concurrency`
//! clients (each one keep-alive HTTP connection) post one image to `POST /projects/{p}/inspect`
//! until `--requests` responses arrived, after an untimed warm-up, and report throughput,
//! latency percentiles (nearest rank) and failures. Any failed request makes the command fail
//! after printing the report.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, bail};
use serde_json::json;
use sightline_vision::backend::{BackendKind, Device};
use sightline_vision::checkpoint::read_checkpoint;
use sightline_vision::classify::Classifier;
use sightline_vision::image::DynamicImage;
use sightline_vision::imgsz::{checkpoint_imgsz, classify_preprocess};
use sightline_vision::mobilenet::MobileNetV3Config;
use sightline_vision::preprocess::load_rgb;
use sightline_vision::segment::{SegmentSettings, Segmenter};
use sightline_vision::yolo::{YoloV8Seg, YoloV8SegConfig};

use crate::ctx::Ctx;
use crate::inference::{InferenceRuntime, RuntimeArgs};

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
    /// Load test of a running server: throughput and latency percentiles of `inspect`.
    Serve(ServeArgs),
}

/// Arguments of `sightline bench serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Base URL of the server.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// Project whose `inspect` endpoint is loaded.
    #[arg(long)]
    pub project: String,
    /// JPEG or PNG image posted as the raw request body.
    #[arg(long)]
    pub image: PathBuf,
    /// Concurrent clients.
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
    /// Timed requests in total.
    #[arg(long, default_value_t = 500)]
    pub requests: usize,
    /// Untimed warm-up requests (default: one per client).
    #[arg(long)]
    pub warmup: Option<usize>,
    /// Extra query string for every request, e.g. `line=L1&lot=bench`.
    #[arg(long)]
    pub query: Option<String>,
    /// API token sent as `Authorization: Bearer` (when the server requires one).
    #[arg(long, env = "SIGHTLINE_API_TOKEN")]
    pub token: Option<String>,
    /// Per-request timeout in seconds.
    #[arg(long, default_value_t = 60)]
    pub timeout_s: u64,
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
    /// Image sizes to measure (default: the `--yolo-weights` checkpoint's training size when it
    /// records one, else 640,256).
    #[arg(long, value_delimiter = ',')]
    pub sizes: Option<Vec<usize>>,
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
    /// Runtimes: Burn is always measured; ONNX Runtime too when it resolves (`--runtime burn`
    /// measures Burn only).
    #[command(flatten)]
    pub runtime: RuntimeArgs,
    /// Also time ONNX Runtime's bare forward on this ONNX file (e.g. Ultralytics' own
    /// `export format=onnx` of the same model) and print our pipeline's ratio to it.
    #[arg(long, value_name = "FILE")]
    pub reference_onnx: Option<PathBuf>,
    /// Input `H,W` of `--reference-onnx` (a static export's shape).
    #[arg(long, value_delimiter = ',', default_values_t = [640, 640])]
    pub reference_shape: Vec<usize>,
}

/// Run the command.
pub async fn run(args: Args, ctx: &Ctx) -> anyhow::Result<()> {
    let json = ctx.json;
    match args.command {
        BenchCommand::Predict(a) => {
            let runtime = InferenceRuntime::resolve(ctx, &a.runtime)?;
            tokio::task::spawn_blocking(move || bench_predict(a, json, runtime))
                .await
                .context("benchmark worker stopped")?
        }
        BenchCommand::Serve(a) => bench_serve(a, json).await,
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

fn bench_predict(args: PredictArgs, json: bool, runtime: InferenceRuntime) -> anyhow::Result<()> {
    if args.iters == 0 || args.batches.contains(&0) {
        bail!("--iters and every batch size must be at least 1");
    }
    let backend: BackendKind = args.device.parse()?;
    let device = backend.device()?;
    let mut recorded = None;
    // The same network on each runtime: Burn always, ONNX Runtime (the module's own dynamic
    // export) when it resolves.
    let load = |device: Device| -> anyhow::Result<(Segmenter, String)> {
        Ok(match &args.yolo_weights {
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
        })
    };
    if let Some(path) = &args.yolo_weights {
        let ckpt = read_checkpoint(path).with_context(|| format!("loading {}", path.display()))?;
        recorded = checkpoint_imgsz(&ckpt.meta)
            .with_context(|| format!("image size of {}", path.display()))?;
    }
    let sizes = match (&args.sizes, recorded) {
        (Some(s), _) => s.clone(),
        (None, Some(n)) => vec![n],
        (None, None) => vec![640, 256],
    };
    let (burn_model, model_name) = load(device.clone())?;
    let mut engines: Vec<(String, Segmenter)> = Vec::new();
    let largest = sizes.iter().copied().max().unwrap_or(640);
    if let Some(rt) = runtime.ort() {
        let (m, _) = load(device.clone())?;
        let m = sightline_onnx::attach::segmenter_on_ort(m, &rt, None, largest)
            .context("putting the detector on ONNX Runtime")?;
        engines.push((m.engine().to_string(), m));
    }
    engines.push((burn_model.engine().to_string(), burn_model));
    let image = match &args.image {
        Some(p) => load_rgb(p)?,
        None => sightline_vision::preprocess::synthetic_image(640, 480),
    };
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    if !json {
        println!(
            "model: {model_name}; image {}×{}; {} runs after {} warm-up (median ms); {threads} CPU threads",
            image.width(),
            image.height(),
            args.iters,
            args.warmup
        );
        println!(
            "{:<34} {:>5} {:>5} {:>9} {:>9} {:>9} {:>9} {:>9} {:>8}",
            "model / runtime",
            "imgsz",
            "batch",
            "pre",
            "forward",
            "post",
            "pipeline",
            "per img",
            "pipe/fwd"
        );
    }
    let mut rows = Vec::new();
    let mut summary: Vec<(String, usize, usize, f64)> = Vec::new();
    for &imgsz in &sizes {
        let settings = SegmentSettings {
            imgsz,
            ..SegmentSettings::default()
        }
        .validated()?;
        for (engine, model) in &engines {
            let (one, lb) = model.prepare(&image, &settings)?;
            for &batch in &args.batches {
                let mut data = Vec::with_capacity(one.len() * batch);
                for _ in 0..batch {
                    data.extend_from_slice(&one);
                }
                let shape = [batch, 3, lb.input.0, lb.input.1];
                let pre = median_ms(
                    || {
                        for _ in 0..batch {
                            model.prepare(&image, &settings)?;
                        }
                        Ok(())
                    },
                    args.warmup,
                    args.iters,
                )?;
                let forward = median_ms(
                    || {
                        model.forward_flat(data.clone(), shape)?;
                        Ok(())
                    },
                    args.warmup,
                    args.iters,
                )?;
                let [pred, proto] = model.forward_flat(data.clone(), shape)?;
                let lbs = vec![lb; batch];
                let post = median_ms(
                    || {
                        model.postprocess_flat(&pred, &proto, &lbs, &settings.nms)?;
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
                summary.push((engine.clone(), settings.imgsz, batch, per_image));
                if json {
                    rows.push(json!({"model": "yolov8-seg", "runtime": engine, "imgsz": settings.imgsz,
                        "batch": batch, "preprocess_ms": pre, "forward_ms": forward, "postprocess_ms": post,
                        "pipeline_ms": pipeline, "pipeline_ms_per_image": per_image,
                        "pipeline_over_forward": pipeline / forward}));
                } else {
                    println!(
                        "{:<34} {:>5} {:>5} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>8.2}",
                        format!("yolov8-seg {engine}"),
                        settings.imgsz,
                        batch,
                        pre,
                        forward,
                        post,
                        pipeline,
                        per_image,
                        pipeline / forward
                    );
                }
            }
        }
    }
    if let Some(reference) = &args.reference_onnx {
        let rt = runtime
            .ort()
            .context("--reference-onnx needs ONNX Runtime (see `sightline runtime show`)")?;
        let net =
            sightline_onnx::runtime::OrtNetwork::from_file(&rt.library, reference, &rt.options)
                .with_context(|| format!("loading {}", reference.display()))?;
        let [h, w] = args.reference_shape[..] else {
            bail!("--reference-shape takes H,W");
        };
        let input = vec![0.5f32; 3 * h * w];
        let forward = median_ms(
            || {
                net.run_batch(&input, [1, 3, h, w])?;
                Ok(())
            },
            args.warmup,
            args.iters,
        )?;
        let name = format!("reference {}", reference.display());
        if json {
            rows.push(json!({"model": "reference", "file": reference, "runtime": sightline_vision::network::ExternalNetwork::describe(&net),
                "imgsz": [h, w], "batch": 1, "forward_ms": forward}));
        } else {
            println!(
                "{:<34} {:>5} {:>5} {:>9} {:>9.2} {:>9} {:>9} {:>9} {:>8}",
                name,
                format!("{h}x{w}"),
                1,
                "",
                forward,
                "",
                "",
                "",
                ""
            );
            for (engine, size, batch, per_image) in summary.iter().filter(|r| r.2 == 1) {
                println!(
                    "ratio: our pipeline ({engine}, {size}) / reference bare forward = {:.2}",
                    per_image / forward
                );
                let _ = batch;
            }
        }
    }
    if !json && engines.len() == 2 {
        for &imgsz in &sizes {
            let find = |e: &str| {
                summary
                    .iter()
                    .find(|r| r.0 == e && r.1 == imgsz.div_ceil(32) * 32 && r.2 == 1)
                    .map(|r| r.3)
            };
            if let (Some(a), Some(b)) = (find(&engines[0].0), find(&engines[1].0)) {
                println!(
                    "ratio @{imgsz} batch 1: {} / {} pipeline = {:.2}",
                    engines[1].0,
                    engines[0].0,
                    b / a
                );
            }
        }
    }
    if !args.no_mobilenet {
        let load = |device: Device| -> anyhow::Result<(Classifier, String)> {
            Ok(match &args.mobilenet_weights {
                Some(path) => {
                    let ckpt = read_checkpoint(path)
                        .with_context(|| format!("loading {}", path.display()))?;
                    let pre = checkpoint_imgsz(&ckpt.meta)
                        .with_context(|| format!("image size of {}", path.display()))?
                        .map(classify_preprocess);
                    drop(ckpt);
                    let c = Classifier::load_on(path, None, device)
                        .with_context(|| format!("loading {}", path.display()))?;
                    (
                        match pre {
                            Some(p) => c.with_preprocess(p),
                            None => c,
                        },
                        path.display().to_string(),
                    )
                }
                None => {
                    let config = MobileNetV3Config::small(1000);
                    let net = config.init(&device);
                    let labels = (0..1000).map(|i| format!("class{i}")).collect();
                    (
                        Classifier::new(net, config, labels, device)?,
                        "mobilenet_v3_small (random weights, 1000 classes)".to_string(),
                    )
                }
            })
        };
        let largest = args.batches.iter().copied().max().unwrap_or(1);
        let mut classifiers: Vec<(String, Classifier, String)> = Vec::new();
        if let Some(rt) = runtime.ort() {
            let (c, name) = load(device.clone())?;
            let c = sightline_onnx::attach::classifier_on_ort(c.with_max_batch(largest), &rt, None)
                .context("putting the classifier on ONNX Runtime")?;
            classifiers.push((c.engine().to_string(), c, name));
        }
        let (c, name) = load(device.clone())?;
        let c = c.with_max_batch(largest);
        classifiers.push((c.engine().to_string(), c, name));
        for (engine, classifier, name) in &classifiers {
            let crop = classifier.preprocess().crop;
            let one = classifier.preprocess().apply(&image);
            for &batch in &args.batches {
                let mut data = Vec::with_capacity(one.len() * batch);
                for _ in 0..batch {
                    data.extend_from_slice(&one);
                }
                let pre = median_ms(
                    || {
                        for _ in 0..batch {
                            classifier.preprocess().apply(&image);
                        }
                        Ok(())
                    },
                    args.warmup,
                    args.iters,
                )?;
                let forward = median_ms(
                    || {
                        classifier.logits(data.clone(), batch, crop, crop)?;
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
                    rows.push(
                        json!({"model": "mobilenet_v3", "weights": name, "runtime": engine,
                        "imgsz": crop, "batch": batch, "preprocess_ms": pre, "forward_ms": forward,
                        "pipeline_ms": pipeline, "pipeline_ms_per_image": per_image,
                        "pipeline_over_forward": pipeline / forward}),
                    );
                } else {
                    println!(
                        "{:<34} {:>5} {:>5} {:>9.2} {:>9.2} {:>9} {:>9.2} {:>9.2} {:>8.2}",
                        format!("mobilenetv3 {engine}"),
                        crop,
                        batch,
                        pre,
                        forward,
                        "",
                        pipeline,
                        per_image,
                        pipeline / forward
                    );
                }
            }
        }
    }
    if json {
        println!(
            "{}",
            json!({"model": model_name, "backend": backend.to_string(), "threads": threads,
                   "runtime": runtime.resolved.reason, "iters": args.iters, "warmup": args.warmup,
                   "results": rows})
        );
    } else {
        runtime.notice();
    }
    Ok(())
}

/// Latency summary of a load test, in milliseconds.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct LatencySummary {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Slowest.
    pub max: f64,
    /// Mean.
    pub mean: f64,
}

/// Nearest-rank percentiles of `ms` (sorted here); `None` when empty.
pub fn latency_summary(ms: &mut [f64]) -> Option<LatencySummary> {
    if ms.is_empty() {
        return None;
    }
    ms.sort_by(f64::total_cmp);
    let rank = |p: f64| {
        let r = (p / 100.0 * ms.len() as f64).ceil() as usize;
        ms[r.clamp(1, ms.len()) - 1]
    };
    Some(LatencySummary {
        p50: rank(50.0),
        p90: rank(90.0),
        p99: rank(99.0),
        max: ms[ms.len() - 1],
        mean: ms.iter().sum::<f64>() / ms.len() as f64,
    })
}

/// One finished request.
struct Sample {
    ms: f64,
    outcome: Result<u16, String>,
}

async fn one_request(
    client: &reqwest::Client,
    url: &str,
    body: &ImageBody,
    token: Option<&str>,
) -> Sample {
    let started = Instant::now();
    let mut req = client
        .post(url)
        .header("content-type", body.content_type)
        .body(body.bytes.clone());
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let outcome = match req.send().await {
        Ok(resp) => {
            let status = resp.status().as_u16();
            match resp.bytes().await {
                Ok(_) if status == 200 => Ok(status),
                Ok(b) => Err(format!(
                    "HTTP {status}: {}",
                    String::from_utf8_lossy(&b[..b.len().min(300)])
                )),
                Err(e) => Err(format!("HTTP {status}, body: {e}")),
            }
        }
        Err(e) => Err(e.to_string()),
    };
    Sample {
        ms: started.elapsed().as_secs_f64() * 1e3,
        outcome,
    }
}

/// The posted image, shared by every client.
struct ImageBody {
    /// Encoded image.
    bytes: Vec<u8>,
    /// `image/jpeg` or `image/png`.
    content_type: &'static str,
}

async fn bench_serve(args: ServeArgs, json: bool) -> anyhow::Result<()> {
    if args.concurrency == 0 || args.requests == 0 {
        bail!("--concurrency and --requests must be at least 1");
    }
    let bytes = fs_err::read(&args.image)?;
    let content_type = if bytes.starts_with(b"\x89PNG") {
        "image/png"
    } else if bytes.starts_with(&[0xFF, 0xD8]) {
        "image/jpeg"
    } else {
        bail!("{} is neither a JPEG nor a PNG file", args.image.display());
    };
    let body = std::sync::Arc::new(ImageBody {
        bytes,
        content_type,
    });
    let base = args.url.trim_end_matches('/');
    let mut url = format!("{base}/projects/{}/inspect", args.project);
    if let Some(q) = &args.query {
        url.push('?');
        url.push_str(q.trim_start_matches('?'));
    }
    // reqwest is built without a default TLS provider (see sightline-store): install ring's, as
    // the S3 store does, so that an https:// URL works too.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(args.timeout_s.max(1)))
        .pool_max_idle_per_host(args.concurrency)
        .build()
        .context("cannot build the HTTP client")?;
    let token = args.token.clone();
    // Warm-up (untimed): also fails fast when the server or the project is not there.
    let warmup = args.warmup.unwrap_or(args.concurrency);
    if warmup > 0 {
        let tasks: Vec<_> = (0..warmup.min(args.concurrency))
            .map(|c| {
                let (client, url, body, token) =
                    (client.clone(), url.clone(), body.clone(), token.clone());
                let n = warmup / args.concurrency + usize::from(c < warmup % args.concurrency);
                tokio::spawn(async move {
                    let mut last = None;
                    for _ in 0..n {
                        last = Some(one_request(&client, &url, &body, token.as_deref()).await);
                    }
                    last
                })
            })
            .collect();
        for t in tasks {
            if let Some(Sample {
                outcome: Err(e), ..
            }) = t.await.context("warm-up client stopped")?
            {
                bail!("warm-up request to {url} failed: {e}");
            }
        }
    }
    let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let clients: Vec<_> = (0..args.concurrency.min(args.requests))
        .map(|_| {
            let (client, url, body, token, next) = (
                client.clone(),
                url.clone(),
                body.clone(),
                token.clone(),
                next.clone(),
            );
            let total = args.requests;
            tokio::spawn(async move {
                let mut samples = Vec::new();
                while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < total {
                    samples.push(one_request(&client, &url, &body, token.as_deref()).await);
                }
                samples
            })
        })
        .collect();
    let mut samples = Vec::with_capacity(args.requests);
    for c in clients {
        samples.extend(c.await.context("load client stopped")?);
    }
    let wall = started.elapsed().as_secs_f64();
    let mut ok_ms: Vec<f64> = samples
        .iter()
        .filter(|s| s.outcome.is_ok())
        .map(|s| s.ms)
        .collect();
    let errors: Vec<&String> = samples
        .iter()
        .filter_map(|s| s.outcome.as_ref().err())
        .collect();
    let succeeded = ok_ms.len();
    let latency = latency_summary(&mut ok_ms);
    let throughput = succeeded as f64 / wall.max(1e-9);
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "url": url,
                "image": args.image.display().to_string(),
                "concurrency": args.concurrency,
                "requests": samples.len(),
                "succeeded": succeeded,
                "errors": errors.len(),
                "first_error": errors.first(),
                "wall_s": wall,
                "throughput_rps": throughput,
                "latency_ms": latency,
            }))?
        );
    } else {
        println!(
            "{} requests to {url}, concurrency {}, in {wall:.2} s",
            samples.len(),
            args.concurrency
        );
        println!(
            "throughput {throughput:.1} req/s, {succeeded} ok, {} errors",
            errors.len()
        );
        if let Some(l) = &latency {
            println!(
                "latency ms: p50 {:.1}  p90 {:.1}  p99 {:.1}  max {:.1}  mean {:.1}",
                l.p50, l.p90, l.p99, l.max, l.mean
            );
        }
        if let Some(e) = errors.first() {
            println!("first error: {e}");
        }
    }
    if !errors.is_empty() {
        bail!("{} of {} requests failed", errors.len(), samples.len());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let mut v: Vec<f64> = (1..=100).rev().map(f64::from).collect();
        let s = latency_summary(&mut v).unwrap();
        assert_eq!((s.p50, s.p90, s.p99, s.max), (50.0, 90.0, 99.0, 100.0));
        assert!((s.mean - 50.5).abs() < 1e-9);
        let mut one = vec![7.0];
        let s = latency_summary(&mut one).unwrap();
        assert_eq!((s.p50, s.p99), (7.0, 7.0));
        assert!(latency_summary(&mut []).is_none());
    }
}
