//! Detector / instance-segmenter evaluation: the YOLOv8-seg checkpoint runs over the split (confidence floor
//! `conf`, 0.001 by default in the CLI, like Ultralytics' validator), then
//!
//! - COCO box and mask statistics, pycocotools-exact ([`sightline_eval::coco::evaluate`]);
//! - Ultralytics-style per-class P/R/F1 at the best-F1 confidence and mAP50 / mAP50-95, for boxes and masks
//!   (greedy matching at IoU .50:.95, [`sightline_eval::yolo`]);
//! - the operating point: per-class thresholds from the manifest (default 0.25) → per-class TP/FP/FN with a
//!   prediction counted as a true positive when its **mask** matches a same-class object at IoU ≥ 0.5; the
//!   image-level OK/NG decision (NG when any instance passes its threshold), NG rate, business rules; a
//!   threshold sweep suggesting, per class, the threshold of best F1; an instance confusion matrix (class-agnostic
//!   greedy matching at mask IoU ≥ 0.5, unmatched → `background`);
//! - a gallery of the most confident false positives and the largest missed objects at the operating point.
//!
//! **Classes**: model class `k` is the checkpoint's `names[k]` (or `--labels`' k-th name) and is evaluated as COCO
//! category `k + 1`. Every model class must be a project label (a clear error otherwise: pass `--labels` to name
//! the checkpoint's classes with project labels). Ground-truth objects with labels the model does not predict are
//! left out of every metric and counted in the notes; they still make their image NG for the image-level truth.
//! An image's truth is NG when its image-level label is not the ok label
//! ([`sightline_core::inspection::is_ok_label`]), or, without a label, when it has an object. The image-level
//! decision and the monitoring baseline follow the inspection policy the server applies.

use std::collections::BTreeMap;
use std::path::PathBuf;

use sightline_core::inspection::{self, ConfidenceBaseline};
use sightline_datasets::model::{ImageRecord, Instance, Segmentation as DsSeg};
use sightline_eval::coco::{
    CocoAnnotation, CocoCategory, CocoDetection, CocoGt, CocoImage, Flag, IouType, RleCounts,
    Segmentation,
};
use sightline_eval::operating::{
    BusinessRules, ImageResult, InstancePrediction, OperatingPoint, ScoredInstance,
    check_business_rules, image_level, per_class_at_thresholds, threshold_sweep,
};
use sightline_eval::yolo::{ApPerClass, ap_per_class, iou_thresholds, match_predictions};
use sightline_mask::Rle;
use sightline_report::{
    ClassCurves, DatasetInfo, DetClassRow, DetectionSection, GalleryKind, OperatingSection, Report,
    ThresholdRow,
};
use sightline_vision::postprocess::NmsSettings;
use sightline_vision::preprocess::load_rgb;
use sightline_vision::segment::{SegmentSettings, Segmenter};

use super::{
    EvalData, EvaluateError, EvaluateEvent, EvaluateOptions, Evaluation, ReportBase, gallery,
    rfc3339,
};

/// IoU at which the operating point counts a prediction as correct.
pub const OPERATING_IOU: f64 = 0.5;

/// A ground-truth object of a model class.
struct GtObj {
    class: usize,
    crowd: bool,
    rle: Rle,
    /// `[x, y, w, h]`.
    xywh: [f64; 4],
    area: f64,
}

impl GtObj {
    fn xyxy(&self) -> [f64; 4] {
        let [x, y, w, h] = self.xywh;
        [x, y, x + w, y + h]
    }
}

/// A prediction.
struct Pred {
    class: usize,
    score: f64,
    xyxy: [f64; 4],
    rle: Rle,
}

/// One evaluated image.
struct Img {
    file: String,
    path: PathBuf,
    w: u32,
    h: u32,
    truth_ng: bool,
    gts: Vec<GtObj>,
    /// Sorted by descending score.
    preds: Vec<Pred>,
}

fn gt_object(inst: &Instance, class: usize, r: &ImageRecord) -> Result<GtObj, EvaluateError> {
    let (h, w) = (r.height, r.width);
    let rle = match (&inst.segmentation, &inst.bbox) {
        (Some(DsSeg::Polygons { polygons }), _) => Rle::from_polygons(polygons, h, w)?,
        (
            Some(DsSeg::Rle {
                height,
                width,
                counts,
            }),
            _,
        ) => {
            if (*height, *width) != (h, w) {
                return Err(EvaluateError::MaskSize {
                    file: r.file.clone(),
                    label: inst.label.clone(),
                    mask_width: *width,
                    mask_height: *height,
                    width: w,
                    height: h,
                });
            }
            Rle::new(h, w, counts.clone())?
        }
        (None, Some(b)) => Rle::from_bbox(b, h, w)?,
        (None, None) => {
            return Err(EvaluateError::NoGeometry {
                file: r.file.clone(),
                label: inst.label.clone(),
            });
        }
    };
    let xywh = inst.bbox.unwrap_or_else(|| rle.to_bbox());
    Ok(GtObj {
        class,
        crowd: inst.iscrowd,
        area: rle.area() as f64,
        rle,
        xywh,
    })
}

fn rle_json(r: &Rle) -> Segmentation {
    Segmentation::Rle {
        size: [r.h(), r.w()],
        counts: RleCounts::Uncompressed(r.counts().to_vec()),
    }
}

/// The ground truth and detections in COCO form (category id = class + 1, image id = index + 1).
fn coco_inputs(imgs: &[Img], classes: &[String]) -> (CocoGt, Vec<CocoDetection>) {
    let mut annotations = Vec::new();
    let mut dts = Vec::new();
    for (i, im) in imgs.iter().enumerate() {
        let image_id = i as i64 + 1;
        for g in &im.gts {
            annotations.push(CocoAnnotation {
                id: annotations.len() as i64 + 1,
                image_id,
                category_id: g.class as i64 + 1,
                bbox: Some(g.xywh.to_vec()),
                area: Some(g.area),
                iscrowd: Some(Flag::Num(if g.crowd { 1.0 } else { 0.0 })),
                segmentation: Some(rle_json(&g.rle)),
            });
        }
        for p in &im.preds {
            let [x1, y1, x2, y2] = p.xyxy;
            dts.push(CocoDetection {
                image_id,
                category_id: p.class as i64 + 1,
                score: p.score,
                bbox: Some(vec![x1, y1, x2 - x1, y2 - y1]),
                segmentation: Some(rle_json(&p.rle)),
            });
        }
    }
    let gt = CocoGt {
        images: imgs
            .iter()
            .enumerate()
            .map(|(i, im)| CocoImage {
                id: i as i64 + 1,
                width: Some(im.w),
                height: Some(im.h),
                file_name: Some(im.file.clone()),
            })
            .collect(),
        annotations,
        categories: classes
            .iter()
            .enumerate()
            .map(|(k, n)| CocoCategory {
                id: k as i64 + 1,
                name: n.clone(),
            })
            .collect(),
    };
    (gt, dts)
}

/// Ultralytics-style inputs: per prediction (all images, descending score within an image) its class, score and
/// true-positive flags at IoU .50:.95 for boxes and masks; the class of every (non-crowd) object.
struct YoloInputs {
    conf: Vec<f64>,
    pcls: Vec<usize>,
    tcls: Vec<usize>,
    tp_box: Vec<Vec<bool>>,
    tp_mask: Vec<Vec<bool>>,
}

fn yolo_inputs(imgs: &[Img]) -> Result<YoloInputs, EvaluateError> {
    let th = iou_thresholds();
    let mut y = YoloInputs {
        conf: Vec::new(),
        pcls: Vec::new(),
        tcls: Vec::new(),
        tp_box: Vec::new(),
        tp_mask: Vec::new(),
    };
    for im in imgs {
        let gts: Vec<&GtObj> = im.gts.iter().filter(|g| !g.crowd).collect();
        let (np, nt) = (im.preds.len(), gts.len());
        let mut iou_b = vec![0.0; nt * np];
        let mut iou_m = vec![0.0; nt * np];
        for (t, g) in gts.iter().enumerate() {
            let gb = g.xyxy();
            for (p, d) in im.preds.iter().enumerate() {
                iou_b[t * np + p] = sightline_mask::box_iou_xyxy(&gb, &d.xyxy);
                iou_m[t * np + p] = d.rle.iou(&g.rle, false).max(0.0);
            }
        }
        let pc: Vec<usize> = im.preds.iter().map(|p| p.class).collect();
        let tc: Vec<usize> = gts.iter().map(|g| g.class).collect();
        y.tp_box.extend(match_predictions(&pc, &tc, &iou_b, &th)?);
        y.tp_mask.extend(match_predictions(&pc, &tc, &iou_m, &th)?);
        y.conf.extend(im.preds.iter().map(|p| p.score));
        y.pcls.extend(pc);
        y.tcls.extend(tc);
    }
    Ok(y)
}

fn class_rows(a: &ApPerClass, classes: &[String]) -> Vec<DetClassRow> {
    a.classes
        .iter()
        .map(|m| DetClassRow {
            name: classes
                .get(m.class)
                .cloned()
                .unwrap_or_else(|| format!("class{}", m.class)),
            labels: m.labels,
            precision: m.precision,
            recall: m.recall,
            f1: m.f1,
            ap50: m.ap50,
            ap50_95: m.ap50_95,
        })
        .collect()
}

/// PR and F1-vs-confidence curves (every 10th point of Ultralytics' 1000-point confidence grid).
fn curves(a: &ApPerClass, classes: &[String], what: &str) -> Vec<ClassCurves> {
    let idx: Vec<usize> = (0..a.conf_grid.len())
        .step_by(10)
        .chain(a.conf_grid.len().checked_sub(1))
        .collect();
    a.classes
        .iter()
        .enumerate()
        .map(|(ci, m)| ClassCurves {
            name: format!(
                "{} ({what})",
                classes.get(m.class).map_or("?", String::as_str)
            ),
            pr: idx
                .iter()
                .map(|&i| (a.r_curve[ci][i], a.p_curve[ci][i]))
                .collect(),
            f1_conf: idx
                .iter()
                .map(|&i| (a.conf_grid[i], a.f1_curve[ci][i]))
                .collect(),
        })
        .collect()
}

/// Same-class greedy matching of the predictions that pass their thresholds (descending score) at mask IoU ≥
/// [`OPERATING_IOU`]; returns, per prediction, whether it passed and whether it matched, and per object whether
/// it was found.
fn operating_matches(im: &Img, thr: &[f64]) -> (Vec<(bool, bool)>, Vec<bool>) {
    let mut found = vec![false; im.gts.len()];
    let mut preds = Vec::with_capacity(im.preds.len());
    for p in &im.preds {
        if p.score < thr[p.class] {
            preds.push((false, false));
            continue;
        }
        let mut best: Option<(usize, f64)> = None;
        for (g, gt) in im.gts.iter().enumerate() {
            if gt.crowd || found[g] || gt.class != p.class {
                continue;
            }
            let iou = p.rle.iou(&gt.rle, false);
            if iou >= OPERATING_IOU && best.is_none_or(|(_, b)| iou > b) {
                best = Some((g, iou));
            }
        }
        if let Some((g, _)) = best {
            found[g] = true;
        }
        preds.push((true, best.is_some()));
    }
    (preds, found)
}

/// Class-agnostic instance confusion at the operating point: `m[truth][pred]` over classes + background.
fn instance_confusion(imgs: &[Img], thr: &[f64], nc: usize) -> Vec<Vec<usize>> {
    let mut m = vec![vec![0usize; nc + 1]; nc + 1];
    for im in imgs {
        let preds: Vec<&Pred> = im
            .preds
            .iter()
            .filter(|p| p.score >= thr[p.class])
            .collect();
        let gts: Vec<&GtObj> = im.gts.iter().filter(|g| !g.crowd).collect();
        let mut pairs: Vec<(f64, usize, usize)> = Vec::new();
        for (g, gt) in gts.iter().enumerate() {
            for (p, pr) in preds.iter().enumerate() {
                let iou = pr.rle.iou(&gt.rle, false);
                if iou >= OPERATING_IOU {
                    pairs.push((iou, g, p));
                }
            }
        }
        pairs.sort_by(|a, b| b.0.total_cmp(&a.0));
        let (mut gm, mut pm) = (vec![false; gts.len()], vec![false; preds.len()]);
        for (_, g, p) in pairs {
            if !gm[g] && !pm[p] {
                gm[g] = true;
                pm[p] = true;
                m[gts[g].class][preds[p].class] += 1;
            }
        }
        for (g, gt) in gts.iter().enumerate() {
            if !gm[g] {
                m[gt.class][nc] += 1;
            }
        }
        for (p, pr) in preds.iter().enumerate() {
            if !pm[p] {
                m[nc][pr.class] += 1;
            }
        }
    }
    m
}

/// Run the segmenter on every image.
fn predict_all(
    seg: &Segmenter,
    settings: &SegmentSettings,
    imgs: &mut [Img],
    batch: usize,
    on_event: &dyn Fn(EvaluateEvent),
) -> Result<(), EvaluateError> {
    on_event(EvaluateEvent::InferenceStarted {
        stage: "segment",
        images: imgs.len(),
    });
    for chunk in imgs.chunks_mut(batch) {
        let mut pix = Vec::with_capacity(chunk.len());
        for im in chunk.iter() {
            let img = load_rgb(&im.path).map_err(|source| EvaluateError::ReadImage {
                what: im.file.clone(),
                source: Box::new(source),
            })?;
            if (img.width(), img.height()) != (im.w, im.h) {
                return Err(EvaluateError::ImageSize {
                    file: im.file.clone(),
                    width: img.width(),
                    height: img.height(),
                    ann_width: im.w,
                    ann_height: im.h,
                });
            }
            pix.push(img);
        }
        let dets = seg
            .predict(&pix, settings)
            .map_err(|e| EvaluateError::SegmentInference(Box::new(e)))?;
        for (im, ds) in chunk.iter_mut().zip(dets) {
            let mut preds = Vec::with_capacity(ds.len());
            for d in ds {
                preds.push(Pred {
                    class: d.class_id,
                    score: f64::from(d.confidence),
                    xyxy: d.box_xyxy.map(f64::from),
                    rle: d.mask_rle()?,
                });
            }
            preds.sort_by(|a, b| b.score.total_cmp(&a.score));
            im.preds = preds;
        }
        on_event(EvaluateEvent::ImagesDone {
            images: chunk.len(),
        });
    }
    on_event(EvaluateEvent::InferenceFinished);
    Ok(())
}

/// Evaluate a YOLOv8-seg checkpoint on the split of `data`.
pub(crate) fn evaluate(
    opts: &EvaluateOptions,
    data: &EvalData,
    base: ReportBase,
    on_event: &dyn Fn(EvaluateEvent),
) -> Result<Evaluation, EvaluateError> {
    let (manifest, ckpt) = (&opts.manifest, opts.checkpoint.as_path());
    let det = manifest
        .detector
        .as_ref()
        .ok_or_else(|| EvaluateError::NoModel {
            project: manifest.project.clone(),
            model: "detector",
        })?;
    let backend: sightline_vision::backend::BackendKind = opts.device.parse()?;
    let loading = |source| EvaluateError::Checkpoint {
        what: "loading",
        path: ckpt.to_path_buf(),
        source: Box::new(source),
    };
    let loaded = sightline_vision::checkpoint::read_checkpoint(ckpt).map_err(loading)?;
    // `--imgsz`, else the checkpoint's training size, else the manifest's.
    let imgsz = sightline_vision::imgsz::resolve_imgsz(
        opts.imgsz.map(|s| s as usize),
        &loaded.meta,
        det.hyperparameters.imgsz as usize,
    )
    .map_err(|source| EvaluateError::Imgsz {
        path: ckpt.to_path_buf(),
        source: Box::new(source),
    })?;
    let seg = Segmenter::from_loaded_checkpoint(loaded, labels(opts), backend.device()?)
        .map_err(loading)?;
    let seg = match &opts.ort {
        Some(rt) => sightline_onnx::attach::segmenter_on_ort(seg, rt, None, imgsz.imgsz)
            .map_err(EvaluateError::Onnx)?,
        None => seg,
    };
    let classes = seg.labels().to_vec();
    let foreign: Vec<&String> = classes
        .iter()
        .filter(|c| !manifest.labels.contains(c))
        .collect();
    if !foreign.is_empty() {
        let shown: Vec<String> = foreign.iter().take(10).map(|c| (*c).clone()).collect();
        return Err(EvaluateError::ForeignClasses {
            foreign: foreign.len(),
            classes: classes.len(),
            project: manifest.project.clone(),
            labels: manifest.labels.clone(),
            more: if foreign.len() > shown.len() {
                " …"
            } else {
                ""
            },
            shown,
        });
    }
    let nc = classes.len();
    let settings = SegmentSettings {
        imgsz: imgsz.imgsz,
        nms: NmsSettings {
            conf: opts.conf as f32,
            iou: opts.iou as f32,
            max_det: 300,
            ..NmsSettings::default()
        },
        ..SegmentSettings::default()
    }
    .validated()?;

    let mut notes = Vec::new();
    let mut ignored: BTreeMap<String, usize> = BTreeMap::new();
    let mut imgs = Vec::new();
    for r in data.split_records(&opts.split)? {
        let mut gts = Vec::new();
        for inst in &r.instances {
            match classes.iter().position(|c| *c == inst.label) {
                Some(k) => gts.push(gt_object(inst, k, r)?),
                None => *ignored.entry(inst.label.clone()).or_default() += 1,
            }
        }
        let truth_ng = match r.label.as_deref() {
            Some(l) => !inspection::is_ok_label(l),
            None => r.instances.iter().any(|i| !i.iscrowd),
        };
        imgs.push(Img {
            file: r.file.clone(),
            path: data.path(&r.file)?.clone(),
            w: r.width,
            h: r.height,
            truth_ng,
            gts,
            preds: Vec::new(),
        });
    }
    for (l, n) in &ignored {
        notes.push(format!(
            "{n} ground-truth object(s) labelled {l:?} left out: not a class of the model"
        ));
    }
    predict_all(&seg, &settings, &mut imgs, opts.batch, on_event)?;

    // COCO, pycocotools-exact.
    let (gt, dts) = coco_inputs(&imgs, &classes);
    let coco_box = sightline_eval::coco::evaluate(&gt, &dts, IouType::Bbox)?;
    let coco_mask = sightline_eval::coco::evaluate(&gt, &dts, IouType::Segm)?;

    // Ultralytics.
    let y = yolo_inputs(&imgs)?;
    let ab = ap_per_class(&y.tp_box, &y.conf, &y.pcls, &y.tcls)?;
    let am = ap_per_class(&y.tp_mask, &y.conf, &y.pcls, &y.tcls)?;

    // Operating point.
    let thr: Vec<f64> = classes
        .iter()
        .map(|c| det.thresholds.for_label(c))
        .collect();
    let baseline = confidence_baseline(&imgs, &classes, &thr, opts.conf, &mut notes);
    let op = OperatingPoint {
        thresholds: thr.clone(),
        labels: classes.clone(),
        allow_unknown: manifest.business_rules.allow_unknown,
    };
    let scored: Vec<ScoredInstance> = y
        .pcls
        .iter()
        .zip(&y.conf)
        .zip(&y.tp_mask)
        .map(|((&class, &score), tp)| ScoredInstance {
            class,
            score,
            tp: tp.first().copied().unwrap_or(false),
        })
        .collect();
    let mut gt_per_class = vec![0usize; nc];
    for &c in &y.tcls {
        gt_per_class[c] += 1;
    }
    let at = per_class_at_thresholds(&scored, &gt_per_class, &op)?;
    let sweep = threshold_sweep(&scored, &gt_per_class)?;
    let results: Vec<ImageResult> = imgs
        .iter()
        .map(|im| ImageResult {
            truth_ng: im.truth_ng,
            instances: im
                .preds
                .iter()
                .map(|p| InstancePrediction {
                    class: p.class,
                    score: p.score,
                })
                .collect(),
            classifier: None,
        })
        .collect();
    let il = image_level(&results, &op);
    let rules = check_business_rules(
        &il,
        &BusinessRules {
            max_ng_ratio: manifest.business_rules.max_ng_ratio,
            allow_unknown: manifest.business_rules.allow_unknown,
        },
    );
    let confusion = instance_confusion(&imgs, &thr, nc);
    let items = worst_mistakes(&imgs, &thr, &classes, opts.gallery)?;

    let report = Report {
        model: format!("{}-detector", manifest.project),
        task: sightline_core::Task::Segment,
        config_path: base.config_path,
        config: base.config,
        checkpoint: base.checkpoint,
        checkpoint_sha256: base.checkpoint_sha256,
        dataset: DatasetInfo {
            version: data.version.clone(),
            source: data.source.clone(),
            split: opts.split.clone(),
            images: imgs.len(),
        },
        class_names: classes.clone(),
        started_at: base.started_at,
        finished_at: rfc3339(chrono::Utc::now()),
        detection: Some(DetectionSection {
            coco_box: Some(coco_box.stats.to_vec()),
            coco_mask: Some(coco_mask.stats.to_vec()),
            per_class: class_rows(&ab, &classes),
            mp: ab.mp,
            mr: ab.mr,
            map50: ab.map50,
            map50_95: ab.map50_95,
            best_conf: ab.best_conf,
            curves: curves(&am, &classes, "mask"),
            mask_per_class: class_rows(&am, &classes),
            mask_map50: Some(am.map50),
            mask_map50_95: Some(am.map50_95),
            confusion,
        }),
        classification: None,
        operating: Some(OperatingSection::new(
            at.iter()
                .zip(&sweep)
                .enumerate()
                .map(|(k, (p, s))| ThresholdRow {
                    name: classes[k].clone(),
                    point: *p,
                    suggested_threshold: s.suggested.map(|x| x.threshold),
                })
                .collect(),
            &il,
            rules,
        )),
        gallery: items,
    };
    Ok(Evaluation {
        report,
        notes,
        baseline,
        runtime: seg.engine().to_string(),
    })
}

/// The confidence floor of the served detector for per-class thresholds `thr`: the inspection policy's
/// [`inspection::serving_floor`] from the default NMS confidence, as the server's loader applies it.
fn serving_floor(thr: &[f64]) -> f32 {
    inspection::serving_floor(NmsSettings::default().conf, thr.iter().copied())
}

/// Per-class confidences of the detections production would log for these images: those above the serving
/// floor ([`serving_floor`], [`inspection::above_floor`]), under their class label.
fn confidence_baseline(
    imgs: &[Img],
    classes: &[String],
    thr: &[f64],
    eval_conf: f64,
    notes: &mut Vec<String>,
) -> ConfidenceBaseline {
    let floor = serving_floor(thr);
    if eval_conf as f32 > floor {
        notes.push(format!(
            "monitoring baseline: --conf {eval_conf} is above the serving floor {floor}; detections in between are \
             missing from confidence_samples"
        ));
    }
    let mut b = ConfidenceBaseline::new(classes);
    for im in imgs {
        for p in &im.preds {
            if inspection::above_floor(p.score, floor) {
                match classes.get(p.class) {
                    Some(l) => b.push(l, p.score),
                    None => b.push(&format!("class{}", p.class), p.score),
                }
            }
        }
    }
    b
}

/// The most confident false positives and the largest missed objects at the operating point, `n` in all
/// (half each when both have enough).
fn worst_mistakes(
    imgs: &[Img],
    thr: &[f64],
    classes: &[String],
    n: usize,
) -> Result<Vec<sightline_report::GalleryItem>, EvaluateError> {
    let mut fps: Vec<(f64, usize, usize)> = Vec::new();
    let mut fns: Vec<(f64, usize, usize)> = Vec::new();
    for (i, im) in imgs.iter().enumerate() {
        let (preds, found) = operating_matches(im, thr);
        for (p, &(passed, matched)) in preds.iter().enumerate() {
            if passed && !matched {
                fps.push((im.preds[p].score, i, p));
            }
        }
        for (g, &f) in found.iter().enumerate() {
            if !f && !im.gts[g].crowd {
                fns.push((im.gts[g].area, i, g));
            }
        }
    }
    fps.sort_by(|a, b| b.0.total_cmp(&a.0));
    fns.sort_by(|a, b| b.0.total_cmp(&a.0));
    let n_fp = fps
        .len()
        .min(n.div_ceil(2).max(n.saturating_sub(fns.len())));
    let n_fn = fns.len().min(n - n_fp);
    let mut out = Vec::with_capacity(n_fp + n_fn);
    for &(score, i, p) in fps.iter().take(n_fp) {
        let im = &imgs[i];
        let pr = &im.preds[p];
        let best = im
            .gts
            .iter()
            .filter(|g| !g.crowd)
            .map(|g| (pr.rle.iou(&g.rle, false), g.class))
            .max_by(|a, b| a.0.total_cmp(&b.0));
        let detail = match best {
            Some((iou, k)) if iou > 0.0 => format!(
                "no {} object at mask IoU ≥ {OPERATING_IOU}; best overlap {iou:.2} with a {}",
                classes[pr.class], classes[k]
            ),
            _ => "overlaps no ground-truth object".to_string(),
        };
        out.push(gallery::instance(
            GalleryKind::FalsePositive,
            &im.path,
            &im.file,
            &classes[pr.class],
            Some(score),
            Some(&pr.rle),
            pr.xyxy,
            detail,
        )?);
    }
    for &(area, i, g) in fns.iter().take(n_fn) {
        let im = &imgs[i];
        let gt = &im.gts[g];
        let best = im
            .preds
            .iter()
            .filter(|p| p.class == gt.class)
            .map(|p| (p.rle.iou(&gt.rle, false), p.score))
            .max_by(|a, b| a.0.total_cmp(&b.0));
        let detail = match best {
            Some((iou, s)) if iou > 0.0 => format!(
                "area {area:.0} px; best {} prediction: mask IoU {iou:.2} at confidence {s:.3} (threshold {:.2})",
                classes[gt.class], thr[gt.class]
            ),
            _ => format!(
                "area {area:.0} px; no {} prediction overlaps it",
                classes[gt.class]
            ),
        };
        out.push(gallery::instance(
            GalleryKind::FalseNegative,
            &im.path,
            &im.file,
            &classes[gt.class],
            None,
            Some(&gt.rle),
            gt.xyxy(),
            detail,
        )?);
    }
    Ok(out)
}

/// The detector class names: the given labels (trimmed, empty ones dropped), else the checkpoint's.
fn labels(opts: &EvaluateOptions) -> Option<Vec<String>> {
    opts.labels.as_ref().map(|l| {
        l.iter()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect()
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn square(x: u32, y: u32, s: u32) -> Rle {
        let (h, w) = (16u32, 16u32);
        let mut bits = vec![0u8; (h * w) as usize];
        for yy in y..y + s {
            for xx in x..x + s {
                bits[(yy * w + xx) as usize] = 1;
            }
        }
        Rle::encode_row_major(&bits, h, w).unwrap()
    }

    fn gt(class: usize, x: u32, y: u32, s: u32) -> GtObj {
        let rle = square(x, y, s);
        GtObj {
            class,
            crowd: false,
            area: rle.area() as f64,
            xywh: [f64::from(x), f64::from(y), f64::from(s), f64::from(s)],
            rle,
        }
    }

    fn pred(class: usize, score: f64, x: u32, y: u32, s: u32) -> Pred {
        Pred {
            class,
            score,
            xyxy: [
                f64::from(x),
                f64::from(y),
                f64::from(x + s),
                f64::from(y + s),
            ],
            rle: square(x, y, s),
        }
    }

    fn img(gts: Vec<GtObj>, preds: Vec<Pred>) -> Img {
        Img {
            file: "a.png".into(),
            path: PathBuf::from("a.png"),
            w: 16,
            h: 16,
            truth_ng: !gts.is_empty(),
            gts,
            preds,
        }
    }

    /// Hand-computed: class 0 object at (0,0,4), class 1 object at (8,8,4).
    /// Predictions: class 0 exact (0.9) → TP; class 0 at (8,8) (0.8) → FP, but class-agnostic it pairs with the
    /// class 1 object; class 1 at (8,8) (0.2, below its 0.3 threshold) → ignored; so the class 1 object is missed
    /// same-class, and confused as class 0 class-agnostically.
    #[test]
    fn operating_matches_and_confusion_by_hand() {
        let im = img(
            vec![gt(0, 0, 0, 4), gt(1, 8, 8, 4)],
            vec![
                pred(0, 0.9, 0, 0, 4),
                pred(0, 0.8, 8, 8, 4),
                pred(1, 0.2, 8, 8, 4),
            ],
        );
        let thr = [0.5, 0.3];
        let (p, f) = operating_matches(&im, &thr);
        assert_eq!(p, vec![(true, true), (true, false), (false, false)]);
        assert_eq!(f, vec![true, false]);
        let m = instance_confusion(std::slice::from_ref(&im), &thr, 2);
        assert_eq!(m, vec![vec![1, 0, 0], vec![1, 0, 0], vec![0, 0, 0]]);
    }

    /// The baseline keeps what the server would log: above min(0.25, lowest threshold), strictly.
    #[test]
    fn confidence_baseline_keeps_detections_above_the_serving_floor() {
        assert_eq!(serving_floor(&[0.5, 0.3]), 0.25);
        assert_eq!(serving_floor(&[0.5, 0.1]), 0.1);
        let im = img(
            vec![],
            vec![
                pred(0, 0.9, 0, 0, 4),
                pred(1, f64::from(0.25f32), 8, 8, 4),
                pred(1, 0.3, 8, 8, 4),
                pred(0, 0.01, 8, 8, 4),
            ],
        );
        let classes = ["a".to_string(), "b".to_string()];
        let mut notes = Vec::new();
        let b = confidence_baseline(
            std::slice::from_ref(&im),
            &classes,
            &[0.5, 0.5],
            0.001,
            &mut notes,
        );
        let samples = b.samples.as_ref().unwrap();
        assert_eq!(samples["a"], vec![0.9]);
        assert_eq!(samples["b"], vec![0.3]);
        assert!(notes.is_empty());
        let _ = confidence_baseline(
            std::slice::from_ref(&im),
            &classes,
            &[0.5, 0.5],
            0.4,
            &mut notes,
        );
        assert_eq!(notes.len(), 1, "{notes:?}");
    }

    #[test]
    fn yolo_inputs_flag_true_positives_per_iou() {
        // A 4×4 object and a 4×3 prediction inside it: mask IoU 0.75 → TP at .50–.75, not above.
        let im = img(
            vec![gt(0, 0, 0, 4)],
            vec![{
                let mut p = pred(0, 0.9, 0, 0, 4);
                let mut bits = vec![0u8; 256];
                for y in 0..3 {
                    for x in 0..4 {
                        bits[y * 16 + x] = 1;
                    }
                }
                p.rle = Rle::encode_row_major(&bits, 16, 16).unwrap();
                p.xyxy = [0.0, 0.0, 4.0, 3.0];
                p
            }],
        );
        let y = yolo_inputs(std::slice::from_ref(&im)).unwrap();
        let expect: Vec<bool> = iou_thresholds().iter().map(|&t| 0.75 >= t).collect();
        assert_eq!(y.tp_mask[0], expect);
        assert_eq!(y.tp_box[0], expect);
        assert_eq!(y.tcls, vec![0]);
    }

    #[test]
    fn coco_inputs_number_images_and_categories_from_one() {
        let im = img(vec![gt(1, 0, 0, 4)], vec![pred(1, 0.5, 0, 0, 4)]);
        let (g, d) = coco_inputs(std::slice::from_ref(&im), &["a".into(), "b".into()]);
        assert_eq!(g.categories[1].id, 2);
        assert_eq!(g.annotations[0].category_id, 2);
        assert_eq!(d[0].image_id, 1);
        assert_eq!(d[0].bbox.as_deref(), Some(&[0.0, 0.0, 4.0, 4.0][..]));
        let e = sightline_eval::coco::evaluate(&g, &d, IouType::Segm).unwrap();
        assert!((e.stats[0] - 1.0).abs() < 1e-12);
    }
}
