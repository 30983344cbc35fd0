//! Ultralytics-style detection metrics (`ultralytics/utils/metrics.py`, 8.4): greedy prediction matching and
//! `ap_per_class` — per-class precision, recall and F1 at the confidence that maximises the (smoothed) mean F1,
//! AP at IoU .50:.05:.95 with COCO 101-point interpolation of the precision envelope, mAP50 and mAP50-95.
//!
//! Differences from Ultralytics: predictions with equal confidence keep their input order (a stable sort; numpy's
//! default quicksort has no defined order for ties), and everything is `f64`.

use crate::EvalError;

const EPS: f64 = 1e-16;

/// numpy `linspace`.
fn linspace(start: f64, stop: f64, num: usize) -> Vec<f64> {
    let step = (stop - start) / (num - 1) as f64;
    let mut v: Vec<f64> = (0..num).map(|i| i as f64 * step + start).collect();
    v[num - 1] = stop;
    v
}

/// The 10 IoU thresholds 0.50:0.05:0.95.
pub fn iou_thresholds() -> Vec<f64> {
    linspace(0.5, 0.95, 10)
}

/// numpy `interp(x, xp, fp, left, right)` for increasing `xp` (ties: the last of equal `xp` wins, like numpy).
fn interp(x: f64, xp: &[f64], fp: &[f64], left: f64, right: f64) -> f64 {
    let n = xp.len();
    if n == 0 {
        return left;
    }
    if x > xp[n - 1] {
        return right;
    }
    if x < xp[0] {
        return left;
    }
    let j = xp.partition_point(|&v| v <= x) - 1;
    if j == n - 1 || xp[j] == x {
        return fp[j];
    }
    let slope = (fp[j + 1] - fp[j]) / (xp[j + 1] - xp[j]);
    let r = slope * (x - xp[j]) + fp[j];
    if r.is_nan() {
        let r2 = slope * (x - xp[j + 1]) + fp[j + 1];
        if r2.is_nan() && fp[j] == fp[j + 1] {
            fp[j]
        } else {
            r2
        }
    } else {
        r
    }
}

/// Greedy matching of predictions to targets (Ultralytics `match_predictions`, non-scipy path).
///
/// `iou[t * n_pred + p]` is the IoU of target `t` with prediction `p`; predictions must be ordered by
/// descending confidence. Returns `correct[p][k]`: prediction `p` is a true positive at threshold `k`.
pub fn match_predictions(
    pred_classes: &[usize],
    true_classes: &[usize],
    iou: &[f64],
    thresholds: &[f64],
) -> Result<Vec<Vec<bool>>, EvalError> {
    let (np, nt, nth) = (pred_classes.len(), true_classes.len(), thresholds.len());
    if iou.len() != np * nt {
        return Err(EvalError::Input(format!(
            "iou has {} values, expected {nt} x {np}",
            iou.len()
        )));
    }
    let mut correct = vec![vec![false; nth]; np];
    if nth == 0 {
        return Ok(correct);
    }
    let min_thr = thresholds.iter().copied().fold(f64::INFINITY, f64::min);
    let masked = |t: usize, p: usize| {
        if true_classes[t] == pred_classes[p] {
            iou[t * np + p]
        } else {
            0.0
        }
    };
    let mut matched = vec![vec![false; nth]; nt];
    for (p, row) in correct.iter_mut().enumerate() {
        if !(0..nt).any(|t| masked(t, p) >= min_thr) {
            continue;
        }
        for (k, &thr) in thresholds.iter().enumerate() {
            // argmax over targets of the unclaimed IoU (first maximum).
            let mut best = (0usize, f64::NEG_INFINITY);
            for (t, m) in matched.iter().enumerate() {
                let v = if m[k] { 0.0 } else { masked(t, p) };
                if v > best.1 {
                    best = (t, v);
                }
            }
            let ok = best.1 >= thr;
            row[k] = ok;
            if ok {
                matched[best.0][k] = true;
            }
        }
    }
    Ok(correct)
}

/// Metrics of one class (one that has labels).
#[derive(Debug, Clone, serde::Serialize)]
pub struct ClassMetrics {
    /// Class index.
    pub class: usize,
    /// Number of labels (targets).
    pub labels: usize,
    /// Precision at the best-F1 confidence.
    pub precision: f64,
    /// Recall at the best-F1 confidence.
    pub recall: f64,
    /// F1 at the best-F1 confidence.
    pub f1: f64,
    /// True positives at that confidence (`round(r * labels)`).
    pub tp: f64,
    /// False positives at that confidence.
    pub fp: f64,
    /// AP at each IoU threshold (AP50 first).
    pub ap: Vec<f64>,
    /// AP at IoU 0.5.
    pub ap50: f64,
    /// AP averaged over IoU .50:.95.
    pub ap50_95: f64,
}

/// Result of [`ap_per_class`].
#[derive(Debug, Clone, serde::Serialize)]
pub struct ApPerClass {
    /// Per class with labels, ascending class index.
    pub classes: Vec<ClassMetrics>,
    /// The confidence (on the 1000-point grid) where the smoothed mean F1 peaks.
    pub best_conf: f64,
    /// Mean precision over classes.
    pub mp: f64,
    /// Mean recall over classes.
    pub mr: f64,
    /// mAP at IoU 0.5.
    pub map50: f64,
    /// mAP at IoU .50:.95.
    pub map50_95: f64,
    /// The confidence grid of the curves (`linspace(0, 1, 1000)`).
    pub conf_grid: Vec<f64>,
    /// Per class: precision vs confidence.
    pub p_curve: Vec<Vec<f64>>,
    /// Per class: recall vs confidence.
    pub r_curve: Vec<Vec<f64>>,
    /// Per class: F1 vs confidence.
    pub f1_curve: Vec<Vec<f64>>,
}

/// COCO 101-point AP of one precision/recall curve (Ultralytics `compute_ap`).
pub fn compute_ap(recall: &[f64], precision: &[f64]) -> f64 {
    let mut mrec = Vec::with_capacity(recall.len() + 3);
    mrec.push(0.0);
    mrec.extend_from_slice(recall);
    mrec.push(recall.last().copied().unwrap_or(1.0));
    mrec.push(1.0);
    let mut mpre = Vec::with_capacity(precision.len() + 3);
    mpre.push(1.0);
    mpre.extend_from_slice(precision);
    mpre.extend([0.0, 0.0]);
    for i in (0..mpre.len() - 1).rev() {
        mpre[i] = mpre[i].max(mpre[i + 1]);
    }
    let x = linspace(0.0, 1.0, 101);
    let y: Vec<f64> = x
        .iter()
        .map(|&v| interp(v, &mrec, &mpre, mpre[0], mpre[mpre.len() - 1]))
        .collect();
    (0..100)
        .map(|i| (x[i + 1] - x[i]) * (y[i + 1] + y[i]) / 2.0)
        .sum()
}

/// Box filter over a fraction `f` of the length (Ultralytics `smooth`).
fn smooth(y: &[f64], f: f64) -> Vec<f64> {
    let nf = ((y.len() as f64 * f * 2.0).round_ties_even() as usize) / 2 + 1;
    let pad = nf / 2;
    let mut yp = Vec::with_capacity(y.len() + 2 * pad);
    yp.extend(std::iter::repeat_n(y[0], pad));
    yp.extend_from_slice(y);
    yp.extend(std::iter::repeat_n(y[y.len() - 1], pad));
    (0..y.len())
        .map(|i| yp[i..i + nf].iter().map(|v| v / nf as f64).sum())
        .collect()
}

/// Ultralytics `ap_per_class`: `tp[p][k]` (true positive of prediction `p` at IoU threshold `k`), `conf[p]`,
/// `pred_cls[p]`, and the class of every target.
pub fn ap_per_class(
    tp: &[Vec<bool>],
    conf: &[f64],
    pred_cls: &[usize],
    target_cls: &[usize],
) -> Result<ApPerClass, EvalError> {
    let n = tp.len();
    if conf.len() != n || pred_cls.len() != n {
        return Err(EvalError::Input(format!(
            "tp ({n}), conf ({}) and pred_cls ({}) lengths differ",
            conf.len(),
            pred_cls.len()
        )));
    }
    let nth = tp.first().map_or(10, Vec::len);
    if tp.iter().any(|r| r.len() != nth) {
        return Err(EvalError::Input("tp rows have different lengths".into()));
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| conf[b].total_cmp(&conf[a]));
    let mut classes: Vec<usize> = target_cls.to_vec();
    classes.sort_unstable();
    classes.dedup();
    let x = linspace(0.0, 1.0, 1000);
    let nc = classes.len();
    let mut ap = vec![vec![0.0; nth]; nc];
    let mut p_curve = vec![vec![0.0; 1000]; nc];
    let mut r_curve = vec![vec![0.0; 1000]; nc];
    let mut n_labels = vec![0usize; nc];
    for (ci, &c) in classes.iter().enumerate() {
        let n_l = target_cls.iter().filter(|&&t| t == c).count();
        n_labels[ci] = n_l;
        let idx: Vec<usize> = order
            .iter()
            .copied()
            .filter(|&p| pred_cls[p] == c)
            .collect();
        if idx.is_empty() || n_l == 0 {
            continue;
        }
        let neg_conf: Vec<f64> = idx.iter().map(|&p| -conf[p]).collect();
        let mut recall = vec![vec![0.0; idx.len()]; nth];
        let mut precision = vec![vec![0.0; idx.len()]; nth];
        for k in 0..nth {
            let (mut tpc, mut fpc) = (0.0, 0.0);
            for (j, &p) in idx.iter().enumerate() {
                if tp[p][k] {
                    tpc += 1.0;
                } else {
                    fpc += 1.0;
                }
                recall[k][j] = tpc / (n_l as f64 + EPS);
                precision[k][j] = tpc / (tpc + fpc);
            }
        }
        for (i, &xv) in x.iter().enumerate() {
            let last = idx.len() - 1;
            r_curve[ci][i] = interp(-xv, &neg_conf, &recall[0], 0.0, recall[0][last]);
            p_curve[ci][i] = interp(-xv, &neg_conf, &precision[0], 1.0, precision[0][last]);
        }
        for k in 0..nth {
            ap[ci][k] = compute_ap(&recall[k], &precision[k]);
        }
    }
    let f1_curve: Vec<Vec<f64>> = p_curve
        .iter()
        .zip(&r_curve)
        .map(|(p, r)| {
            p.iter()
                .zip(r)
                .map(|(p, r)| 2.0 * p * r / (p + r + EPS))
                .collect()
        })
        .collect();
    let best = if nc == 0 {
        0
    } else {
        let mean: Vec<f64> = (0..1000)
            .map(|i| f1_curve.iter().map(|c| c[i]).sum::<f64>() / nc as f64)
            .collect();
        let s = smooth(&mean, 0.1);
        let mut b = 0;
        for (i, v) in s.iter().enumerate() {
            if *v > s[b] {
                b = i;
            }
        }
        b
    };
    let mut out = Vec::with_capacity(nc);
    for ci in 0..nc {
        let (p, r, f1) = (p_curve[ci][best], r_curve[ci][best], f1_curve[ci][best]);
        let tpv = (r * n_labels[ci] as f64).round_ties_even();
        let fpv = (tpv / (p + EPS) - tpv).round_ties_even();
        let ap50 = ap[ci].first().copied().unwrap_or(0.0);
        let ap50_95 = if nth == 0 {
            0.0
        } else {
            ap[ci].iter().sum::<f64>() / nth as f64
        };
        out.push(ClassMetrics {
            class: classes[ci],
            labels: n_labels[ci],
            precision: p,
            recall: r,
            f1,
            tp: tpv,
            fp: fpv,
            ap: ap[ci].clone(),
            ap50,
            ap50_95,
        });
    }
    let mean = |f: &dyn Fn(&ClassMetrics) -> f64| {
        if out.is_empty() {
            0.0
        } else {
            out.iter().map(f).sum::<f64>() / out.len() as f64
        }
    };
    Ok(ApPerClass {
        best_conf: x[best],
        mp: mean(&|c| c.precision),
        mr: mean(&|c| c.recall),
        map50: mean(&|c| c.ap50),
        map50_95: mean(&|c| c.ap50_95),
        classes: out,
        conf_grid: x,
        p_curve,
        r_curve,
        f1_curve,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn interp_like_numpy() {
        let xp = [0.0, 1.0, 1.0, 2.0];
        let fp = [0.0, 1.0, 5.0, 6.0];
        assert_eq!(interp(0.5, &xp, &fp, -1.0, 9.0), 0.5);
        assert_eq!(interp(1.0, &xp, &fp, -1.0, 9.0), 5.0);
        assert_eq!(interp(1.5, &xp, &fp, -1.0, 9.0), 5.5);
        assert_eq!(interp(-1.0, &xp, &fp, -1.0, 9.0), -1.0);
        assert_eq!(interp(3.0, &xp, &fp, -1.0, 9.0), 9.0);
    }

    #[test]
    fn perfect_detector_has_ultralytics_ap() {
        // Ultralytics' convention: the sentinel drops the envelope to 0 at recall 1.0 exactly, so a perfect
        // detector scores 0.995 (checked against numpy).
        assert!((compute_ap(&[0.5, 1.0], &[1.0, 1.0]) - 0.995).abs() < 1e-12);
        // Half the recall at full precision: the envelope drops to 0 at recall 0.5 exactly (numpy interp takes the
        // last of equal x), so the trapezoid gives 0.49 + 0.005.
        let ap = compute_ap(&[0.5], &[1.0]);
        assert!((ap - 0.495).abs() < 1e-9, "{ap}");
    }

    #[test]
    fn greedy_matching() {
        // Two targets of class 0, three predictions (descending confidence).
        let iou = [0.9, 0.6, 0.0, /* t1 */ 0.0, 0.55, 0.8];
        let c = match_predictions(&[0, 0, 0], &[0, 0], &iou, &[0.5, 0.7]).unwrap();
        assert_eq!(
            c,
            vec![vec![true, true], vec![true, false], vec![false, true]]
        );
        // Wrong class never matches.
        let c = match_predictions(&[1], &[0], &[0.99], &[0.5]).unwrap();
        assert_eq!(c, vec![vec![false]]);
        assert!(match_predictions(&[0], &[0], &[], &[0.5]).is_err());
    }
}
