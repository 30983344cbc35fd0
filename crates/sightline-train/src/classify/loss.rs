//! Cross-entropy with label smoothing and optional class weights (PyTorch `CrossEntropyLoss`
//! semantics).
//!
//! With `K` classes, smoothing `ε` and weights `w`, the target distribution of a sample of class
//! `y` is `q = (1 − ε)·onehot(y) + ε/K`; the per-sample loss is `−Σ_c w_c·q_c·log p_c`; the batch
//! loss is the sum of per-sample losses divided by `Σ_i w_{y_i}` (the weighted mean PyTorch
//! uses), or the plain mean without weights.

use crate::error::{Result, TrainError};
use burn::tensor::activation::log_softmax;
use burn::tensor::{Tensor, TensorData};

/// Cross-entropy of `[N, K]` logits against class indices.
pub fn cross_entropy(
    logits: Tensor<2>,
    labels: &[usize],
    smoothing: f32,
    weights: Option<&[f32]>,
) -> Result<Tensor<1>> {
    let [n, k] = logits.dims();
    if labels.len() != n || n == 0 {
        return Err(TrainError::Shape(format!(
            "{} labels for {n} logits rows",
            labels.len()
        )));
    }
    if let Some(w) = weights
        && w.len() != k
    {
        return Err(TrainError::Shape(format!(
            "{} class weights for {k} classes",
            w.len()
        )));
    }
    if let Some(&bad) = labels.iter().find(|&&y| y >= k) {
        return Err(TrainError::Shape(format!(
            "label {bad} out of range for {k} classes"
        )));
    }
    let device = logits.device();
    let mut q = vec![0.0f32; n * k];
    let mut denom = 0.0f32;
    for (i, &y) in labels.iter().enumerate() {
        for c in 0..k {
            let target = smoothing / k as f32 + if c == y { 1.0 - smoothing } else { 0.0 };
            let w = weights.map_or(1.0, |w| w[c]);
            q[i * k + c] = target * w;
        }
        denom += weights.map_or(1.0, |w| w[y]);
    }
    let q = Tensor::<2>::from_data(TensorData::new(q, [n, k]), &device);
    Ok((log_softmax(logits, 1) * q).sum().neg() / denom.max(f32::MIN_POSITIVE))
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Device;

    fn val(t: Tensor<1>) -> f32 {
        t.into_data().try_into_vec::<f32>().unwrap()[0]
    }

    #[test]
    fn by_hand() {
        let d = Device::flex();
        // logits [ln 1, ln 3] -> p = [0.25, 0.75]
        let logits = || {
            Tensor::<2>::from_data(
                TensorData::new(vec![0.0, 3f32.ln(), 0.0, 3f32.ln()], [2, 2]),
                &d,
            )
        };
        let plain = val(cross_entropy(logits(), &[1, 0], 0.0, None).unwrap());
        let expect = -(0.75f32.ln() + 0.25f32.ln()) / 2.0;
        assert!((plain - expect).abs() < 1e-6);
        // smoothing 0.1 over 2 classes: targets 0.95 / 0.05
        let smooth = val(cross_entropy(logits(), &[1, 0], 0.1, None).unwrap());
        let s1 = -(0.95 * 0.75f32.ln() + 0.05 * 0.25f32.ln());
        let s0 = -(0.95 * 0.25f32.ln() + 0.05 * 0.75f32.ln());
        assert!((smooth - (s1 + s0) / 2.0).abs() < 1e-6);
        // class weights [1, 3]: weighted sum over weights of the true classes (3 + 1)
        let w = val(cross_entropy(logits(), &[1, 0], 0.0, Some(&[1.0, 3.0])).unwrap());
        let ew = (-3.0 * 0.75f32.ln() - 0.25f32.ln()) / 4.0;
        assert!((w - ew).abs() < 1e-6);
    }

    #[test]
    fn rejects_bad_input() {
        let d = Device::flex();
        let l = Tensor::<2>::zeros([2, 3], &d);
        assert!(cross_entropy(l.clone(), &[0], 0.0, None).is_err());
        assert!(cross_entropy(l.clone(), &[0, 3], 0.0, None).is_err());
        assert!(cross_entropy(l, &[0, 1], 0.0, Some(&[1.0])).is_err());
    }
}
