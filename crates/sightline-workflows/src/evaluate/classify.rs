//! Classifier evaluation: top-1/top-5, per-class P/R/F1, confusion matrix, calibration, the image-level decision
//! at the manifest's thresholds, business rules, and a gallery of the most confident mistakes.
//!
//! Data: a folder holding `<label>/*.jpg` (or `<dir>/<split>/<label>/…`), or the images of a dataset
//! version's split that carry an image-level label of the project. The image-level decision and the monitoring
//! baseline follow the inspection policy the server applies ([`sightline_core::inspection`]).

use std::path::{Path, PathBuf};

use sightline_core::inspection::{ConfidenceBaseline, is_ok_label};
use sightline_eval::classification::classification_metrics;
use sightline_eval::operating::{
    BusinessRules, ClassifierPrediction, ImageResult, OperatingPoint, check_business_rules,
    image_level,
};
use sightline_report::{ClassificationSection, ClsClassRow, DatasetInfo, OperatingSection, Report};

use super::{
    EvalData, EvaluateError, EvaluateEvent, EvaluateOptions, Evaluation, ReportBase, gallery,
    rfc3339,
};

/// Images of a class-per-folder split, as (path, label index) for the manifest's labels.
fn classify_samples(dir: &Path, labels: &[String]) -> Result<Vec<(PathBuf, usize)>, EvaluateError> {
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
        return Err(EvaluateError::NoClassImages {
            dir: dir.to_path_buf(),
            labels: labels.to_vec(),
        });
    }
    Ok(out)
}

/// The samples of a dataset version's split with an image label of the project, as (file, path, label index).
fn dataset_samples(
    data: &EvalData,
    split: &str,
    labels: &[String],
) -> Result<Vec<(String, PathBuf, usize)>, EvaluateError> {
    let mut out = Vec::new();
    for r in data.split_records(split)? {
        let Some(l) = r.label.as_deref() else {
            continue;
        };
        let Some(i) = labels.iter().position(|x| x == l) else {
            continue;
        };
        out.push((r.file.clone(), data.path(&r.file)?.clone(), i));
    }
    if out.is_empty() {
        return Err(EvaluateError::NoLabelledImages {
            data: data.source.clone(),
            split: split.to_string(),
            labels: labels.to_vec(),
        });
    }
    Ok(out)
}

/// Evaluate a classifier checkpoint on `data` (a dataset version) or on the class folders of the options'
/// data folder.
pub(crate) fn evaluate(
    opts: &EvaluateOptions,
    data: Option<&EvalData>,
    base: ReportBase,
    on_event: &dyn Fn(EvaluateEvent),
) -> Result<Evaluation, EvaluateError> {
    let (manifest, ckpt) = (&opts.manifest, opts.checkpoint.as_path());
    let (dir, dataset_label) = (opts.data.as_deref(), opts.dataset.clone());
    let model = manifest
        .classifier
        .as_ref()
        .ok_or_else(|| EvaluateError::NoModel {
            project: manifest.project.clone(),
            model: "classifier",
        })?;
    let labels = manifest.labels.clone();
    let (samples, source, version) = match (data, dir) {
        (Some(d), _) => (
            dataset_samples(d, &opts.split, &labels)?,
            d.source.clone(),
            d.version.clone(),
        ),
        (None, Some(dir)) => {
            let data = if dir.join(&opts.split).is_dir() {
                dir.join(&opts.split)
            } else {
                dir.to_path_buf()
            };
            let s = classify_samples(&data, &labels)?
                .into_iter()
                .map(|(p, l)| {
                    let rel = p
                        .strip_prefix(&data)
                        .map_or_else(|_| p.display().to_string(), |r| r.display().to_string());
                    (rel, p, l)
                })
                .collect();
            (s, data.display().to_string(), dataset_label)
        }
        (None, None) => return Err(EvaluateError::NoData),
    };
    let backend: sightline_vision::backend::BackendKind = opts.device.parse()?;
    // `--imgsz`, else the checkpoint's training size (crop), else the manifest's.
    let cannot_load = |source| EvaluateError::Checkpoint {
        what: "cannot load classifier",
        path: ckpt.to_path_buf(),
        source: Box::new(source),
    };
    let meta = sightline_vision::checkpoint::read_checkpoint(ckpt)
        .map_err(cannot_load)?
        .meta;
    let crop = sightline_vision::imgsz::resolve_imgsz(
        opts.imgsz.map(|s| s as usize),
        &meta,
        model.hyperparameters.imgsz as usize,
    )
    .map_err(|source| EvaluateError::Imgsz {
        path: ckpt.to_path_buf(),
        source: Box::new(source),
    })?
    .imgsz;
    if crop == 0 {
        return Err(EvaluateError::ZeroImgsz);
    }
    let clf = sightline_vision::classify::Classifier::load_on(
        ckpt,
        Some(labels.clone()),
        backend.device()?,
    )
    .map_err(cannot_load)?
    .with_preprocess(sightline_vision::imgsz::classify_preprocess(crop));
    let clf = match &opts.ort {
        Some(rt) => {
            sightline_onnx::attach::classifier_on_ort(clf, rt, None).map_err(EvaluateError::Onnx)?
        }
        None => clf,
    };
    on_event(EvaluateEvent::InferenceStarted {
        stage: "classify",
        images: samples.len(),
    });
    let mut preds = Vec::with_capacity(samples.len());
    for chunk in samples.chunks(opts.batch) {
        let paths: Vec<&PathBuf> = chunk.iter().map(|(_, p, _)| p).collect();
        preds.extend(
            clf.predict_paths(&paths)
                .map_err(|e| EvaluateError::ClassifyInference(Box::new(e)))?,
        );
        on_event(EvaluateEvent::ImagesDone {
            images: chunk.len(),
        });
    }
    on_event(EvaluateEvent::InferenceFinished);
    let probs: Vec<Vec<f64>> = preds
        .iter()
        .map(|p| p.probabilities.iter().map(|&x| f64::from(x)).collect())
        .collect();
    let truth: Vec<usize> = samples.iter().map(|(_, _, l)| *l).collect();
    // As production logs it: the arg-max label and its probability, one per image.
    let mut baseline = ConfidenceBaseline::new(&labels);
    for p in &preds {
        let label = labels.get(p.class_id).unwrap_or(&p.label);
        baseline.push(label, f64::from(p.confidence));
    }
    let m = classification_metrics(&probs, &truth, 10)?;

    let op = OperatingPoint {
        thresholds: labels
            .iter()
            .map(|l| model.thresholds.for_label(l))
            .collect(),
        labels: labels.clone(),
        allow_unknown: manifest.business_rules.allow_unknown,
    };
    let images: Vec<ImageResult> = preds
        .iter()
        .zip(&truth)
        .map(|(p, &t)| ImageResult {
            truth_ng: !is_ok_label(&labels[t]),
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
    // The most confident mistakes.
    let mut wrong: Vec<usize> = (0..samples.len())
        .filter(|&i| preds[i].class_id != truth[i])
        .collect();
    wrong.sort_by(|&a, &b| preds[b].confidence.total_cmp(&preds[a].confidence));
    let mut items = Vec::new();
    for &i in wrong.iter().take(opts.gallery) {
        let (file, path, t) = &samples[i];
        let p = &preds[i];
        items.push(gallery::misclassified(
            path,
            file,
            &p.label,
            f64::from(p.confidence),
            &labels[*t],
        )?);
    }
    let report = Report {
        model: format!("{}-{}", manifest.project, "classifier"),
        task: sightline_core::Task::Classify,
        config_path: base.config_path,
        config: base.config,
        checkpoint: base.checkpoint,
        checkpoint_sha256: base.checkpoint_sha256,
        dataset: DatasetInfo {
            version,
            source,
            split: opts.split.clone(),
            images: samples.len(),
        },
        class_names: labels.clone(),
        started_at: base.started_at,
        finished_at: rfc3339(chrono::Utc::now()),
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
                    scores: s.clone(),
                })
                .collect(),
            confusion: m.confusion.clone(),
            reliability: m.reliability.clone(),
        }),
        operating: Some(OperatingSection::new(Vec::new(), &il, rules)),
        gallery: items,
    };
    Ok(Evaluation {
        report,
        notes: Vec::new(),
        baseline,
        runtime: clf.engine().to_string(),
    })
}
