//! Classification metrics: top-k accuracy, per-class precision / recall / F1, confusion matrix and calibration
//! (expected calibration error with reliability-diagram bins).

use serde::{Deserialize, Serialize};

use crate::EvalError;

/// Precision, recall and F1 of one class (0 where undefined, like scikit-learn's `zero_division=0`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassScores {
    /// Correct predictions of the class / predictions of the class.
    pub precision: f64,
    /// Correct predictions of the class / samples of the class.
    pub recall: f64,
    /// Harmonic mean of precision and recall.
    pub f1: f64,
    /// Samples whose true label is the class.
    pub support: usize,
}

/// One bin of a reliability diagram: samples whose top confidence is in `(lo, hi]` (the first bin includes 0).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReliabilityBin {
    /// Lower edge.
    pub lo: f64,
    /// Upper edge.
    pub hi: f64,
    /// Samples in the bin.
    pub count: usize,
    /// Mean top confidence of those samples (0 when empty).
    pub confidence: f64,
    /// Fraction of them predicted correctly (0 when empty).
    pub accuracy: f64,
}

/// Every classification metric for a set of predictions.
#[derive(Debug, Clone, Serialize)]
pub struct ClassificationMetrics {
    /// Number of samples.
    pub samples: usize,
    /// Top-1 accuracy.
    pub top1: f64,
    /// Top-5 accuracy (top-k with k = min(5, classes)).
    pub top5: f64,
    /// Per class.
    pub per_class: Vec<ClassScores>,
    /// Unweighted mean F1.
    pub macro_f1: f64,
    /// `confusion[true][predicted]` counts.
    pub confusion: Vec<Vec<usize>>,
    /// Expected calibration error: `Σ_bins |accuracy − confidence| · count / samples`.
    pub ece: f64,
    /// Reliability-diagram bins (equal width).
    pub reliability: Vec<ReliabilityBin>,
}

/// Indices of the classes sorted by descending probability (ties: lower index first).
fn ranking(p: &[f64]) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..p.len()).collect();
    idx.sort_by(|&a, &b| p[b].total_cmp(&p[a]));
    idx
}

/// Fraction of samples whose label is among the `k` most probable classes.
pub fn top_k_accuracy(probs: &[Vec<f64>], labels: &[usize], k: usize) -> f64 {
    if labels.is_empty() {
        return 0.0;
    }
    let hits = probs
        .iter()
        .zip(labels)
        .filter(|(p, l)| ranking(p).iter().take(k).any(|c| c == *l))
        .count();
    hits as f64 / labels.len() as f64
}

/// Computes all classification metrics from per-sample class probabilities (`probs[i][c]`, rows of equal
/// length = number of classes) and true labels, with `bins` reliability bins.
pub fn classification_metrics(
    probs: &[Vec<f64>],
    labels: &[usize],
    bins: usize,
) -> Result<ClassificationMetrics, EvalError> {
    if probs.len() != labels.len() {
        return Err(EvalError::Input(format!(
            "{} probability rows for {} labels",
            probs.len(),
            labels.len()
        )));
    }
    let nc = probs.first().map_or(0, Vec::len);
    if probs.iter().any(|p| p.len() != nc) {
        return Err(EvalError::Input(
            "probability rows have different lengths".into(),
        ));
    }
    if let Some(l) = labels.iter().find(|&&l| l >= nc) {
        return Err(EvalError::Input(format!(
            "label {l} out of range for {nc} classes"
        )));
    }
    if bins == 0 {
        return Err(EvalError::Input(
            "at least one reliability bin is needed".into(),
        ));
    }
    let n = labels.len();
    let mut confusion = vec![vec![0usize; nc]; nc];
    let mut top_conf = Vec::with_capacity(n);
    let mut correct = Vec::with_capacity(n);
    for (p, &l) in probs.iter().zip(labels) {
        let r = ranking(p);
        let pred = r[0];
        confusion[l][pred] += 1;
        top_conf.push(p[pred]);
        correct.push(pred == l);
    }
    let per_class: Vec<ClassScores> = (0..nc)
        .map(|c| {
            let tp = confusion[c][c] as f64;
            let predicted: usize = (0..nc).map(|t| confusion[t][c]).sum();
            let support: usize = confusion[c].iter().sum();
            let precision = if predicted == 0 {
                0.0
            } else {
                tp / predicted as f64
            };
            let recall = if support == 0 {
                0.0
            } else {
                tp / support as f64
            };
            let f1 = if precision + recall == 0.0 {
                0.0
            } else {
                2.0 * precision * recall / (precision + recall)
            };
            ClassScores {
                precision,
                recall,
                f1,
                support,
            }
        })
        .collect();
    let macro_f1 = if nc == 0 {
        0.0
    } else {
        per_class.iter().map(|c| c.f1).sum::<f64>() / nc as f64
    };
    let mut reliability: Vec<ReliabilityBin> = (0..bins)
        .map(|b| ReliabilityBin {
            lo: b as f64 / bins as f64,
            hi: (b + 1) as f64 / bins as f64,
            count: 0,
            confidence: 0.0,
            accuracy: 0.0,
        })
        .collect();
    for (&c, &ok) in top_conf.iter().zip(&correct) {
        // Bin (lo, hi], comparing with the same edge values as reported; 0 goes to the first bin.
        let b = reliability
            .iter()
            .position(|bin| c <= bin.hi)
            .unwrap_or(bins - 1);
        let bin = &mut reliability[b];
        bin.count += 1;
        bin.confidence += c;
        bin.accuracy += f64::from(u8::from(ok));
    }
    let mut ece = 0.0;
    for bin in &mut reliability {
        if bin.count > 0 {
            bin.confidence /= bin.count as f64;
            bin.accuracy /= bin.count as f64;
            ece += (bin.accuracy - bin.confidence).abs() * bin.count as f64 / n as f64;
        }
    }
    Ok(ClassificationMetrics {
        samples: n,
        top1: top_k_accuracy(probs, labels, 1),
        top5: top_k_accuracy(probs, labels, 5.min(nc)),
        per_class,
        macro_f1,
        confusion,
        ece,
        reliability,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn hand_computed_case() {
        // 3 classes, 5 samples.
        let probs = vec![
            vec![0.7, 0.2, 0.1], // true 0, pred 0
            vec![0.1, 0.6, 0.3], // true 1, pred 1
            vec![0.5, 0.4, 0.1], // true 1, pred 0
            vec![0.2, 0.3, 0.5], // true 2, pred 2
            vec![0.3, 0.6, 0.1], // true 2, pred 1 (label ranked 3rd)
        ];
        let labels = [0, 1, 1, 2, 2];
        let m = classification_metrics(&probs, &labels, 10).unwrap();
        assert_eq!(
            m.confusion,
            vec![vec![1, 0, 0], vec![1, 1, 0], vec![0, 1, 1]]
        );
        assert!((m.top1 - 0.6).abs() < 1e-12);
        assert!((top_k_accuracy(&probs, &labels, 2) - 0.8).abs() < 1e-12);
        assert_eq!(m.top5, 1.0);
        assert_eq!(
            m.per_class[0],
            ClassScores {
                precision: 0.5,
                recall: 1.0,
                f1: 2.0 / 3.0,
                support: 1
            }
        );
        assert_eq!(m.per_class[1].precision, 0.5);
        assert_eq!(m.per_class[1].recall, 0.5);
        assert_eq!(m.per_class[2].precision, 1.0);
        assert_eq!(m.per_class[2].recall, 0.5);
        // Bins: 0.7 (ok) -> (0.6,0.7]; 0.6 ok, 0.6 wrong -> (0.5,0.6]; 0.5 wrong, 0.5 ok -> (0.4,0.5].
        assert_eq!(m.reliability[6].count, 1);
        assert_eq!(m.reliability[5].count, 2);
        assert_eq!(m.reliability[4].count, 2);
        // ECE = (|1-0.7|*1 + |0.5-0.6|*2 + |0.5-0.5|*2) / 5 = 0.1
        assert!((m.ece - 0.1).abs() < 1e-12, "{}", m.ece);
    }

    #[test]
    fn bad_inputs() {
        assert!(classification_metrics(&[vec![1.0]], &[], 10).is_err());
        assert!(classification_metrics(&[vec![1.0]], &[1], 10).is_err());
        assert!(classification_metrics(&[vec![1.0], vec![0.5, 0.5]], &[0, 0], 10).is_err());
    }
}
