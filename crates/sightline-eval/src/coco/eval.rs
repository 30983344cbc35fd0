//! The `COCOeval` algorithm: per-image matching (`evaluateImg`), `accumulate` and `summarize`.

use std::collections::HashMap;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use sightline_mask::{Rle, box_iou, iou_matrix};

use super::json::{CocoDetection, CocoGt, Segmentation};
use crate::EvalError;

/// What the IoU is computed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IouType {
    /// Boxes.
    Bbox,
    /// Instance masks.
    Segm,
}

impl std::fmt::Display for IouType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            IouType::Bbox => "bbox",
            IouType::Segm => "segm",
        })
    }
}

impl std::str::FromStr for IouType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "bbox" => Ok(IouType::Bbox),
            "segm" => Ok(IouType::Segm),
            other => Err(format!(
                "unknown iou type {other:?} (expected bbox or segm)"
            )),
        }
    }
}

/// Names of the 12 summary numbers, in order.
pub const STAT_NAMES: [&str; 12] = [
    "AP@[.50:.95]",
    "AP@.50",
    "AP@.75",
    "AP_small",
    "AP_medium",
    "AP_large",
    "AR@1",
    "AR@10",
    "AR@100",
    "AR_small",
    "AR_medium",
    "AR_large",
];

/// Labels of the area ranges, in order.
pub const AREA_LABELS: [&str; 4] = ["all", "small", "medium", "large"];
const AREA_RNG: [[f64; 2]; 4] = [[0.0, 1e10], [0.0, 1024.0], [1024.0, 9216.0], [9216.0, 1e10]];
const MAX_DETS: [usize; 3] = [1, 10, 100];

/// numpy's `linspace(start, stop, num)` (same floating-point values: `i * step + start`, last = `stop`).
fn linspace(start: f64, stop: f64, num: usize) -> Vec<f64> {
    let step = (stop - start) / (num - 1) as f64;
    let mut v: Vec<f64> = (0..num).map(|i| i as f64 * step + start).collect();
    v[num - 1] = stop;
    v
}

/// Result of an evaluation: the accumulated precision/recall tables and the 12 summary numbers.
#[derive(Debug, Clone, Serialize)]
pub struct CocoEval {
    /// IoU type.
    pub iou_type: IouType,
    /// Evaluated image ids (sorted).
    pub img_ids: Vec<i64>,
    /// Evaluated category ids (sorted).
    pub cat_ids: Vec<i64>,
    /// IoU thresholds (.50:.05:.95).
    pub iou_thrs: Vec<f64>,
    /// Recall points (0:.01:1).
    pub rec_thrs: Vec<f64>,
    /// Max detections per image (1, 10, 100).
    pub max_dets: [usize; 3],
    /// Interpolated precision, shape `[T][R][K][A][M]` flattened (`-1` = undefined).
    pub precision: Vec<f64>,
    /// Final recall, shape `[T][K][A][M]` flattened (`-1` = undefined).
    pub recall: Vec<f64>,
    /// The 12 summary numbers (see [`STAT_NAMES`]).
    pub stats: [f64; 12],
}

impl CocoEval {
    fn dims(&self) -> (usize, usize, usize, usize, usize) {
        (
            self.iou_thrs.len(),
            self.rec_thrs.len(),
            self.cat_ids.len(),
            AREA_RNG.len(),
            MAX_DETS.len(),
        )
    }

    /// Precision at IoU index `t`, recall index `r`, category index `k`, area index `a`, max-dets index `m`.
    pub fn precision_at(&self, t: usize, r: usize, k: usize, a: usize, m: usize) -> f64 {
        let (_, rr, kk, aa, mm) = self.dims();
        self.precision[(((t * rr + r) * kk + k) * aa + a) * mm + m]
    }

    /// Recall at IoU index `t`, category index `k`, area index `a`, max-dets index `m`.
    pub fn recall_at(&self, t: usize, k: usize, a: usize, m: usize) -> f64 {
        let (_, _, kk, aa, mm) = self.dims();
        self.recall[((t * kk + k) * aa + a) * mm + m]
    }

    /// Per-category AP (area all, 100 detections) averaged over all IoU thresholds (`iou = None`) or at one of
    /// them (e.g. `Some(0.5)`); `-1` for a category without ground truth.
    pub fn per_category_ap(&self, iou: Option<f64>) -> Vec<(i64, f64)> {
        let (tt, rr, _, _, _) = self.dims();
        let ts: Vec<usize> = match iou {
            None => (0..tt).collect(),
            Some(x) => (0..tt)
                .filter(|&t| (self.iou_thrs[t] - x).abs() < 1e-9)
                .collect(),
        };
        self.cat_ids
            .iter()
            .enumerate()
            .map(|(k, &id)| {
                let vals: Vec<f64> = ts
                    .iter()
                    .flat_map(|&t| (0..rr).map(move |r| (t, r)))
                    .map(|(t, r)| self.precision_at(t, r, k, 0, 2))
                    .filter(|&v| v > -1.0)
                    .collect();
                (id, mean_or_minus_one(&vals))
            })
            .collect()
    }

    /// The summary in pycocotools' familiar 12-line layout.
    pub fn summary(&self) -> String {
        let lines: [(bool, Option<f64>, &str, usize); 12] = [
            (true, None, "all", 100),
            (true, Some(0.5), "all", 100),
            (true, Some(0.75), "all", 100),
            (true, None, "small", 100),
            (true, None, "medium", 100),
            (true, None, "large", 100),
            (false, None, "all", 1),
            (false, None, "all", 10),
            (false, None, "all", 100),
            (false, None, "small", 100),
            (false, None, "medium", 100),
            (false, None, "large", 100),
        ];
        let mut s = String::new();
        for (i, (ap, iou, area, md)) in lines.iter().enumerate() {
            let title = if *ap {
                "Average Precision"
            } else {
                "Average Recall"
            };
            let ty = if *ap { "(AP)" } else { "(AR)" };
            let iou_s = match iou {
                None => format!(
                    "{:.2}:{:.2}",
                    self.iou_thrs[0],
                    self.iou_thrs[self.iou_thrs.len() - 1]
                ),
                Some(x) => format!("{x:.2}"),
            };
            s.push_str(&format!(
                " {title:<18} {ty} @[ IoU={iou_s:<9} | area={area:>6} | maxDets={md:>3} ] = {:.3}\n",
                self.stats[i]
            ));
        }
        s
    }
}

fn mean_or_minus_one(v: &[f64]) -> f64 {
    if v.is_empty() {
        -1.0
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}

/// A prepared ground-truth object.
struct Gt {
    id: i64,
    area: f64,
    crowd: bool,
    bbox: [f64; 4],
    rle: Option<Rle>,
}

/// A prepared detection. Masks of box-type results are decoded lazily (only where they meet ground truth).
struct Dt<'a> {
    score: f64,
    area: f64,
    bbox: [f64; 4],
    rle: Option<Rle>,
    /// Not yet decoded mask, with the image size for polygons and the detection's position for errors.
    lazy: Option<(&'a Segmentation, Option<u32>, Option<u32>, usize)>,
}

/// `evaluateImg` output for one (category, area range, image).
struct ImgEval {
    scores: Vec<f64>,
    /// `[t * D + d]`: matched to a ground truth with a non-zero id.
    matched: Vec<bool>,
    /// `[t * D + d]`: ignored.
    ignored: Vec<bool>,
    /// Ground truths not ignored.
    npig: usize,
}

fn bbox4(v: &Option<Vec<f64>>, ctx: &dyn Fn() -> String) -> Result<[f64; 4], EvalError> {
    match v.as_deref() {
        Some([x, y, w, h]) => Ok([*x, *y, *w, *h]),
        Some(other) => Err(EvalError::invalid(
            ctx(),
            format!("bbox has {} numbers, expected 4", other.len()),
        )),
        None => Err(EvalError::invalid(ctx(), "missing bbox")),
    }
}

/// Runs `evaluate`, `accumulate` and `summarize` of pycocotools' `COCOeval` with default parameters.
pub fn evaluate(
    gt: &CocoGt,
    dts: &[CocoDetection],
    iou_type: IouType,
) -> Result<CocoEval, EvalError> {
    let mut img_ids: Vec<i64> = gt.images.iter().map(|i| i.id).collect();
    img_ids.sort_unstable();
    img_ids.dedup();
    let mut cat_ids: Vec<i64> = gt.categories.iter().map(|c| c.id).collect();
    cat_ids.sort_unstable();
    cat_ids.dedup();
    let img_index: HashMap<i64, usize> =
        img_ids.iter().enumerate().map(|(i, &id)| (id, i)).collect();
    let cat_index: HashMap<i64, usize> =
        cat_ids.iter().enumerate().map(|(i, &id)| (id, i)).collect();
    let dims: HashMap<i64, (Option<u32>, Option<u32>)> = gt
        .images
        .iter()
        .map(|im| (im.id, (im.height, im.width)))
        .collect();
    let (ni, nk) = (img_ids.len(), cat_ids.len());
    let segm = iou_type == IouType::Segm;

    // Ground truth, prepared in parallel (polygon rasterisation is the expensive part).
    let gts: Vec<Option<(usize, Gt)>> = gt
        .annotations
        .par_iter()
        .enumerate()
        .map(|(n, a)| -> Result<Option<(usize, Gt)>, EvalError> {
            let (Some(&i), Some(&k)) = (img_index.get(&a.image_id), cat_index.get(&a.category_id))
            else {
                return Ok(None);
            };
            let ctx = || format!("ground-truth annotation #{n} (id {})", a.id);
            let area = a
                .area
                .ok_or_else(|| EvalError::invalid(ctx(), "missing area"))?;
            let crowd = a.iscrowd.is_some_and(|f| f.is_set());
            let (bbox, rle) = if segm {
                let seg = a
                    .segmentation
                    .as_ref()
                    .ok_or_else(|| EvalError::invalid(ctx(), "missing segmentation"))?;
                let (h, w) = dims.get(&a.image_id).copied().unwrap_or((None, None));
                let rle = seg.to_rle(h, w).map_err(|e| EvalError::invalid(ctx(), e))?;
                ([0.0; 4], Some(rle))
            } else {
                (bbox4(&a.bbox, &ctx)?, None)
            };
            Ok(Some((
                i * nk + k,
                Gt {
                    id: a.id,
                    area,
                    crowd,
                    bbox,
                    rle,
                },
            )))
        })
        .collect::<Result<_, _>>()?;

    // Detections, following `loadRes`.
    let box_branch = match dts.first() {
        None => true,
        Some(d) => match &d.bbox {
            Some(b) if !b.is_empty() => true,
            _ if d.segmentation.is_some() => false,
            _ => {
                return Err(EvalError::invalid(
                    "detection #0",
                    "has neither bbox nor segmentation (cannot tell the results type)",
                ));
            }
        },
    };
    let dets: Vec<Option<(usize, Dt)>> = dts
        .par_iter()
        .enumerate()
        .map(|(n, d)| -> Result<Option<(usize, Dt)>, EvalError> {
            let ctx = || {
                format!(
                    "detection #{n} (image_id {}, category_id {})",
                    d.image_id, d.category_id
                )
            };
            let Some(&i) = img_index.get(&d.image_id) else {
                return Err(EvalError::invalid(
                    ctx(),
                    "image_id is not in the ground truth",
                ));
            };
            let Some(&k) = cat_index.get(&d.category_id) else {
                return Ok(None);
            };
            let (h, w) = dims.get(&d.image_id).copied().unwrap_or((None, None));
            let to_rle =
                |s: &Segmentation| s.to_rle(h, w).map_err(|e| EvalError::invalid(ctx(), e));
            let dt = if box_branch {
                let bbox = bbox4(&d.bbox, &ctx)?;
                let (rle, lazy) = match (&d.segmentation, segm) {
                    (_, false) => (None, None),
                    (Some(s), true) => (None, Some((s, h, w, n))),
                    (None, true) => {
                        let [x, y, bw, bh] = bbox;
                        let poly = vec![x, y, x, y + bh, x + bw, y + bh, x + bw, y];
                        (Some(to_rle(&Segmentation::Polygons(vec![poly]))?), None)
                    }
                };
                Dt {
                    score: d.score,
                    area: bbox[2] * bbox[3],
                    bbox,
                    rle,
                    lazy,
                }
            } else {
                let seg = d
                    .segmentation
                    .as_ref()
                    .ok_or_else(|| EvalError::invalid(ctx(), "missing segmentation"))?;
                let rle = to_rle(seg)?;
                let bbox = match &d.bbox {
                    Some(b) if !b.is_empty() => bbox4(&d.bbox, &ctx)?,
                    _ => rle.to_bbox(),
                };
                Dt {
                    score: d.score,
                    area: rle.area() as f64,
                    bbox,
                    rle: segm.then_some(rle),
                    lazy: None,
                }
            };
            Ok(Some((i * nk + k, dt)))
        })
        .collect::<Result<_, _>>()?;

    // Group by (image, category), keeping file order.
    let mut cells_gt: Vec<Vec<Gt>> = (0..ni * nk).map(|_| Vec::new()).collect();
    let mut cells_dt: Vec<Vec<Dt>> = (0..ni * nk).map(|_| Vec::new()).collect();
    for (c, g) in gts.into_iter().flatten() {
        cells_gt[c].push(g);
    }
    for (c, d) in dets.into_iter().flatten() {
        cells_dt[c].push(d);
    }

    let iou_thrs = linspace(0.5, 0.95, 10);
    let rec_thrs = linspace(0.0, 1.0, 101);
    let max_det = MAX_DETS[MAX_DETS.len() - 1];

    // evaluateImg for every cell and area range, in parallel.
    let evals: Vec<[Option<ImgEval>; 4]> = cells_gt
        .into_par_iter()
        .zip(cells_dt.into_par_iter())
        .map(|(mut g, mut d)| evaluate_cell(&mut g, &mut d, segm, &iou_thrs, max_det))
        .collect::<Result<_, _>>()?;

    // accumulate, in parallel over (category, area, maxDets).
    let (tt, rr, aa, mm) = (
        iou_thrs.len(),
        rec_thrs.len(),
        AREA_RNG.len(),
        MAX_DETS.len(),
    );
    let blocks: Vec<(usize, usize, usize, Option<Accum>)> = (0..nk)
        .flat_map(|k| (0..aa).flat_map(move |a| (0..mm).map(move |m| (k, a, m))))
        .collect::<Vec<_>>()
        .into_par_iter()
        .map(|(k, a, m)| {
            let acc = accumulate(
                (0..ni).filter_map(|i| evals[i * nk + k][a].as_ref()),
                MAX_DETS[m],
                tt,
                &rec_thrs,
            );
            (k, a, m, acc)
        })
        .collect();
    let mut precision = vec![-1.0; tt * rr * nk * aa * mm];
    let mut recall = vec![-1.0; tt * nk * aa * mm];
    for (k, a, m, acc) in blocks {
        let Some(acc) = acc else { continue };
        for t in 0..tt {
            recall[((t * nk + k) * aa + a) * mm + m] = acc.recall[t];
            for r in 0..rr {
                precision[(((t * rr + r) * nk + k) * aa + a) * mm + m] = acc.precision[t * rr + r];
            }
        }
    }

    let mut ev = CocoEval {
        iou_type,
        img_ids,
        cat_ids,
        iou_thrs,
        rec_thrs,
        max_dets: MAX_DETS,
        precision,
        recall,
        stats: [-1.0; 12],
    };
    ev.stats = summarize(&ev);
    Ok(ev)
}

/// `computeIoU` + `evaluateImg` (all four area ranges) for one image and category.
fn evaluate_cell(
    gt: &mut [Gt],
    dt: &mut Vec<Dt<'_>>,
    segm: bool,
    iou_thrs: &[f64],
    max_det: usize,
) -> Result<[Option<ImgEval>; 4], EvalError> {
    if gt.is_empty() && dt.is_empty() {
        return Ok([None, None, None, None]);
    }
    // Stable sort by descending score (numpy mergesort on -score), keep the top max_det.
    dt.sort_by(|a, b| {
        b.score
            .partial_cmp(&a.score)
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    dt.truncate(max_det);
    let (nd, ng) = (dt.len(), gt.len());
    let crowd: Vec<bool> = gt.iter().map(|g| g.crowd).collect();
    // ious[d * ng + g]
    let ious: Vec<f64> = if nd == 0 || ng == 0 {
        Vec::new()
    } else if segm {
        let mut drle: Vec<Rle> = Vec::with_capacity(nd);
        for d in dt.iter_mut() {
            let rle = match (d.rle.take(), d.lazy) {
                (Some(r), _) => r,
                (None, Some((seg, h, w, n))) => seg
                    .to_rle(h, w)
                    .map_err(|e| EvalError::invalid(format!("detection #{n}"), e))?,
                (None, None) => return Err(EvalError::invalid("detection", "no mask to evaluate")),
            };
            drle.push(rle);
        }
        // Each cell is evaluated once: its masks move out instead of being copied.
        let grle: Vec<Rle> = gt.iter_mut().filter_map(|g| g.rle.take()).collect();
        iou_matrix(&drle, &grle, &crowd)
    } else {
        let mut v = Vec::with_capacity(nd * ng);
        for d in dt.iter() {
            for g in gt.iter() {
                v.push(box_iou(&d.bbox, &g.bbox, g.crowd));
            }
        }
        v
    };
    let tt = iou_thrs.len();
    let mut out: [Option<ImgEval>; 4] = [None, None, None, None];
    for (a, rng) in AREA_RNG.iter().enumerate() {
        let ignore: Vec<bool> = gt
            .iter()
            .map(|g| g.crowd || g.area < rng[0] || g.area > rng[1])
            .collect();
        // Stable argsort of the ignore flags: kept ground truths first.
        let order: Vec<usize> = (0..ng)
            .filter(|&g| !ignore[g])
            .chain((0..ng).filter(|&g| ignore[g]))
            .collect();
        let mut matched = vec![false; tt * nd];
        let mut ignored = vec![false; tt * nd];
        if !ious.is_empty() {
            for (t, &thr) in iou_thrs.iter().enumerate() {
                let mut gt_taken = vec![false; ng];
                for d in 0..nd {
                    let mut iou = thr.min(1.0 - 1e-10);
                    let mut m: Option<usize> = None;
                    for (pos, &g) in order.iter().enumerate() {
                        if gt_taken[pos] && !crowd[g] {
                            continue;
                        }
                        if let Some(mp) = m
                            && !ignore[order[mp]]
                            && ignore[g]
                        {
                            break;
                        }
                        let v = ious[d * ng + g];
                        if v < iou {
                            continue;
                        }
                        iou = v;
                        m = Some(pos);
                    }
                    if let Some(mp) = m {
                        let g = order[mp];
                        ignored[t * nd + d] = ignore[g];
                        matched[t * nd + d] = gt[g].id != 0;
                        gt_taken[mp] = true;
                    }
                }
            }
        }
        for d in 0..nd {
            let out_of_range = dt[d].area < rng[0] || dt[d].area > rng[1];
            if out_of_range {
                for t in 0..tt {
                    if !matched[t * nd + d] {
                        ignored[t * nd + d] = true;
                    }
                }
            }
        }
        out[a] = Some(ImgEval {
            scores: dt.iter().map(|d| d.score).collect(),
            matched,
            ignored,
            npig: ignore.iter().filter(|&&i| !i).count(),
        });
    }
    Ok(out)
}

struct Accum {
    /// `[t * R + r]`
    precision: Vec<f64>,
    recall: Vec<f64>,
}

/// `accumulate` for one (category, area range, maxDets): `None` when there is no ground truth to recall.
fn accumulate<'a>(
    evals: impl Iterator<Item = &'a ImgEval>,
    max_det: usize,
    tt: usize,
    rec_thrs: &[f64],
) -> Option<Accum> {
    // (score, eval, detection index) in image order, each image's top max_det.
    let mut entries: Vec<(f64, &ImgEval, usize)> = Vec::new();
    let mut npig = 0usize;
    let mut any = false;
    for e in evals {
        any = true;
        npig += e.npig;
        let n = e.scores.len().min(max_det);
        entries.extend((0..n).map(|d| (e.scores[d], e, d)));
    }
    if !any || npig == 0 {
        return None;
    }
    entries.sort_by(|a, b| b.0.partial_cmp(&a.0).unwrap_or(std::cmp::Ordering::Equal));
    let nd = entries.len();
    let rr = rec_thrs.len();
    let mut precision = vec![0.0; tt * rr];
    let mut recall = vec![0.0; tt];
    let npig_f = npig as f64;
    let mut rc = vec![0.0; nd];
    let mut pr = vec![0.0; nd];
    for t in 0..tt {
        let (mut tp, mut fp) = (0.0f64, 0.0f64);
        for (j, &(_, e, d)) in entries.iter().enumerate() {
            let dn = e.scores.len();
            if !e.ignored[t * dn + d] {
                if e.matched[t * dn + d] {
                    tp += 1.0;
                } else {
                    fp += 1.0;
                }
            }
            rc[j] = tp / npig_f;
            pr[j] = tp / (fp + tp + f64::EPSILON);
        }
        recall[t] = if nd > 0 { rc[nd - 1] } else { 0.0 };
        for i in (1..nd).rev() {
            if pr[i] > pr[i - 1] {
                pr[i - 1] = pr[i];
            }
        }
        let mut idx = 0usize;
        for (r, &thr) in rec_thrs.iter().enumerate() {
            while idx < nd && rc[idx] < thr {
                idx += 1;
            }
            if idx >= nd {
                break;
            }
            precision[t * rr + r] = pr[idx];
        }
    }
    Some(Accum { precision, recall })
}

/// `summarize` for bbox/segm: the 12 numbers.
fn summarize(ev: &CocoEval) -> [f64; 12] {
    let (tt, rr, kk, _, _) = ev.dims();
    let t_of = |iou: Option<f64>| -> Vec<usize> {
        match iou {
            None => (0..tt).collect(),
            Some(x) => (0..tt).filter(|&t| ev.iou_thrs[t] == x).collect(),
        }
    };
    let ap = |iou: Option<f64>, a: usize, m: usize| -> f64 {
        let mut vals = Vec::new();
        for t in t_of(iou) {
            for r in 0..rr {
                for k in 0..kk {
                    let v = ev.precision_at(t, r, k, a, m);
                    if v > -1.0 {
                        vals.push(v);
                    }
                }
            }
        }
        mean_or_minus_one(&vals)
    };
    let ar = |a: usize, m: usize| -> f64 {
        let mut vals = Vec::new();
        for t in 0..tt {
            for k in 0..kk {
                let v = ev.recall_at(t, k, a, m);
                if v > -1.0 {
                    vals.push(v);
                }
            }
        }
        mean_or_minus_one(&vals)
    };
    [
        ap(None, 0, 2),
        ap(Some(0.5), 0, 2),
        ap(Some(0.75), 0, 2),
        ap(None, 1, 2),
        ap(None, 2, 2),
        ap(None, 3, 2),
        ar(0, 0),
        ar(0, 1),
        ar(0, 2),
        ar(1, 2),
        ar(2, 2),
        ar(3, 2),
    ]
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn linspace_matches_numpy() {
        let t = linspace(0.5, 0.95, 10);
        assert_eq!(t[8], 0.8999999999999999);
        assert_eq!(t[1], 0.55);
        assert_eq!(t[5], 0.75);
        let r = linspace(0.0, 1.0, 101);
        assert_eq!(r[100], 1.0);
        assert_ne!(r[57], 0.57);
    }

    #[test]
    fn iou_type_parses() {
        assert_eq!("segm".parse::<IouType>().unwrap(), IouType::Segm);
        assert!("mask".parse::<IouType>().is_err());
    }
}
