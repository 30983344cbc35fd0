//! `sightline evaluate`: runs a checkpoint over an evaluation split, computes metrics with sightline-eval and
//! writes `report.json` + `report.html` (sightline-report) under `<artifacts>/reports/<model>-<dataset>-<ts>/`.
//!
//! Implemented: classifier checkpoints over a class-per-folder split (`--data <dir>` holding `<label>/*.jpg`,
//! or `<dir>/<split>/<label>/...`). Detector evaluation is not wired yet and fails with a clear message.
//! Data is read from a direct path (`--data`); `--dataset` is recorded as the version label only.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use sightline_core::manifest::Manifest;
use sightline_eval::classification::classification_metrics;
use sightline_eval::operating::{
    BusinessRules, ClassifierPrediction, ImageResult, OperatingPoint, check_business_rules,
    image_level,
};
use sightline_report::{
    ClassificationSection, ClsClassRow, DatasetInfo, OperatingSection, ReliabilityBin, Report,
    RuleResult, Task,
};

use crate::ctx::Ctx;

/// Which model of the manifest to evaluate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TaskArg {
    /// The detector / segmenter.
    Detect,
    /// The classifier.
    Classify,
}

/// Arguments of `sightline evaluate`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Project manifest (models/configs/X.yaml).
    #[arg(long)]
    pub config: PathBuf,
    /// Checkpoint to evaluate (.pt / .pth).
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// Model to evaluate.
    #[arg(long, value_enum, default_value = "classify")]
    pub task: TaskArg,
    /// Evaluation data: a class-per-folder directory (classifier).
    #[arg(long)]
    pub data: PathBuf,
    /// Dataset version label recorded in the report.
    #[arg(long)]
    pub dataset: Option<String>,
    /// Split name.
    #[arg(long, default_value = "val")]
    pub split: String,
    /// Inference image size (detector).
    #[arg(long)]
    pub imgsz: Option<u32>,
    /// Minimum confidence kept for metrics (detector).
    #[arg(long, default_value_t = 0.001)]
    pub conf: f64,
    /// POST the summary JSON to this http:// URL (the server's /models/metrics).
    #[arg(long)]
    pub post: Option<String>,
    /// Output directory (default `<artifacts>/reports/<model>-<dataset>-<timestamp>`).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// RFC 3339 UTC time of a Unix timestamp (seconds).
fn rfc3339(secs: u64) -> String {
    i64::try_from(secs)
        .ok()
        .and_then(|s| chrono::DateTime::from_timestamp(s, 0))
        .unwrap_or(chrono::DateTime::UNIX_EPOCH)
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Images of a class-per-folder split, as (path, label index) for the manifest's labels.
fn classify_samples(dir: &Path, labels: &[String]) -> anyhow::Result<Vec<(PathBuf, usize)>> {
    let mut out = Vec::new();
    for (i, label) in labels.iter().enumerate() {
        let d = dir.join(label);
        if !d.is_dir() {
            continue;
        }
        let mut files: Vec<PathBuf> = fs_err::read_dir(&d)?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| {
                p.extension().and_then(|e| e.to_str()).is_some_and(|e| {
                    matches!(e.to_ascii_lowercase().as_str(), "jpg" | "jpeg" | "png")
                })
            })
            .collect();
        files.sort();
        out.extend(files.into_iter().map(|p| (p, i)));
    }
    if out.is_empty() {
        bail!(
            "no images found under {} in folders named after the labels {labels:?}",
            dir.display()
        );
    }
    Ok(out)
}

/// Minimal HTTP/1.1 POST of a JSON body to an `http://host[:port]/path` URL; returns the status code.
pub fn post_json(url: &str, body: &serde_json::Value) -> anyhow::Result<u16> {
    let rest = url
        .strip_prefix("http://")
        .with_context(|| format!("--post {url}: only http:// URLs are supported"))?;
    let (host, path) = rest
        .split_once('/')
        .map_or((rest, "/".to_string()), |(h, p)| (h, format!("/{p}")));
    let addr = if host.contains(':') {
        host.to_string()
    } else {
        format!("{host}:80")
    };
    let payload = serde_json::to_vec(body)?;
    let mut s =
        std::net::TcpStream::connect(&addr).with_context(|| format!("cannot connect to {addr}"))?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(30)))?;
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        payload.len()
    )?;
    s.write_all(&payload)?;
    let mut resp = String::new();
    s.read_to_string(&mut resp)
        .with_context(|| format!("reading the response of {url}"))?;
    let status = resp
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse::<u16>().ok())
        .with_context(|| format!("malformed HTTP response from {url}"))?;
    if !(200..300).contains(&status) {
        bail!("POST {url} answered {status}");
    }
    Ok(status)
}

/// Run the command.
pub async fn run(args: Args, ctx: &Ctx) -> anyhow::Result<()> {
    let started = now();
    let manifest = Manifest::load(&args.config)
        .with_context(|| format!("cannot load manifest {}", args.config.display()))?;
    if args.task == TaskArg::Detect {
        bail!(
            "detector evaluation is not implemented in `sightline evaluate` yet (use --task classify)"
        );
    }
    let model = manifest
        .classifier
        .as_ref()
        .with_context(|| format!("{} has no classifier model", args.config.display()))?;
    let labels = manifest.labels.clone();
    let data = if args.data.join(&args.split).is_dir() {
        args.data.join(&args.split)
    } else {
        args.data.clone()
    };
    let samples = classify_samples(&data, &labels)?;
    let sha = sightline_store::sha256_file(&args.checkpoint)
        .with_context(|| format!("cannot hash {}", args.checkpoint.display()))?;
    let clf = sightline_vision::classify::Classifier::load(&args.checkpoint, Some(labels.clone()))
        .with_context(|| format!("cannot load classifier {}", args.checkpoint.display()))?;
    let paths: Vec<&PathBuf> = samples.iter().map(|(p, _)| p).collect();
    let preds = clf
        .predict_paths(&paths)
        .context("classifier inference failed")?;
    let probs: Vec<Vec<f64>> = preds
        .iter()
        .map(|p| p.probabilities.iter().map(|&x| f64::from(x)).collect())
        .collect();
    let truth: Vec<usize> = samples.iter().map(|(_, l)| *l).collect();
    let m = classification_metrics(&probs, &truth, 10)?;

    let ok_label = labels.iter().position(|l| l == "ok");
    let op = OperatingPoint {
        thresholds: labels
            .iter()
            .map(|l| model.thresholds.for_label(l))
            .collect(),
        ok_label,
        allow_unknown: manifest.business_rules.allow_unknown,
    };
    let images: Vec<ImageResult> = preds
        .iter()
        .zip(&truth)
        .map(|(p, &t)| ImageResult {
            truth_ng: Some(t) != ok_label,
            instances: Vec::new(),
            classifier: Some(ClassifierPrediction {
                label: p.class_id,
                confidence: f64::from(p.confidence),
            }),
        })
        .collect();
    let il = image_level(&images, &op);
    let rules = check_business_rules(
        &il,
        &BusinessRules {
            max_ng_ratio: manifest.business_rules.max_ng_ratio,
            allow_unknown: manifest.business_rules.allow_unknown,
        },
    );
    let c = &il.confusion;
    let dataset_label = args.dataset.clone().unwrap_or_else(|| {
        data.file_name()
            .map_or_else(|| "data".into(), |n| n.to_string_lossy().into_owned())
    });
    let report = Report {
        model: format!("{}-{}", manifest.project, "classifier"),
        task: Task::Classify,
        config_path: args.config.display().to_string(),
        config: serde_json::to_value(&manifest)?,
        checkpoint: args.checkpoint.display().to_string(),
        checkpoint_sha256: sha,
        dataset: DatasetInfo {
            version: args.dataset.clone(),
            source: data.display().to_string(),
            split: args.split.clone(),
            images: samples.len(),
        },
        class_names: labels.clone(),
        started_at: rfc3339(started),
        finished_at: rfc3339(now()),
        detection: None,
        classification: Some(ClassificationSection {
            samples: m.samples,
            top1: m.top1,
            top5: m.top5,
            macro_f1: m.macro_f1,
            ece: m.ece,
            per_class: m
                .per_class
                .iter()
                .zip(&labels)
                .map(|(s, n)| ClsClassRow {
                    name: n.clone(),
                    precision: s.precision,
                    recall: s.recall,
                    f1: s.f1,
                    support: s.support,
                })
                .collect(),
            confusion: m.confusion.clone(),
            reliability: m
                .reliability
                .iter()
                .map(|b| ReliabilityBin {
                    lo: b.lo,
                    hi: b.hi,
                    count: b.count,
                    confidence: b.confidence,
                    accuracy: b.accuracy,
                })
                .collect(),
        }),
        operating: Some(OperatingSection {
            per_class: Vec::new(),
            images: il.images,
            ok_ng_confusion: [
                [c.ok_as_ok, c.ok_as_ng, c.ok_as_unknown],
                [c.ng_as_ok, c.ng_as_ng, c.ng_as_unknown],
            ],
            ng_rate: il.ng_rate,
            unknown_rate: il.unknown_rate,
            accuracy: il.accuracy,
            escape_rate: il.escape_rate,
            overkill_rate: il.overkill_rate,
            rules: rules
                .into_iter()
                .map(|r| RuleResult {
                    rule: r.rule,
                    passed: r.passed,
                    detail: r.detail,
                })
                .collect(),
        }),
    };
    let out = match &args.out {
        Some(o) => o.clone(),
        None => {
            let root = match &ctx.settings.artifacts {
                sightline_core::settings::ArtifactSettings::Local { root } => root.clone(),
                sightline_core::settings::ArtifactSettings::S3(_) => PathBuf::from("artifacts"),
            };
            let ts = report.finished_at.replace([':', '-'], "");
            root.join("reports")
                .join(format!("{}-{dataset_label}-{ts}", report.model))
        }
    };
    let (json_path, html_path) = report.write(&out)?;
    let summary = report.summary();
    if let Some(url) = &args.post {
        post_json(url, &summary)?;
    }
    if ctx.json {
        ctx.print_json(&serde_json::json!({
            "summary": summary,
            "report_json": json_path,
            "report_html": html_path,
        }))?;
    } else {
        println!("{:<12} {}", "model", report.model);
        println!("{:<12} {}", "images", report.dataset.images);
        for (k, v) in [
            ("top-1", m.top1),
            ("top-5", m.top5),
            ("macro F1", m.macro_f1),
            ("ECE", m.ece),
            ("NG rate", il.ng_rate),
        ] {
            println!("{k:<12} {v:.4}");
        }
        println!("{:<12} {}", "report", json_path.display());
        println!("{:<12} {}", "html", html_path.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_of_known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_796_000_000), "2026-11-30T00:53:20Z");
    }
}
