//! Reading weights by state-dict name with shape checks, and folding batch norms into the
//! preceding convolution (`w' = w·γ/√(σ²+ε)`, `b' = β + (b − μ)·γ/√(σ²+ε)`), computed in f32
//! in the same order as the Burn models' own `fuse`, so exported and native weights agree
//! bit for bit.

use sightline_vision::weights::{NamedTensor, TensorMap};

use super::ExportError;

/// Read access to a [`TensorMap`] whose errors name the tensor.
#[derive(Debug, Clone, Copy)]
pub struct Weights<'a> {
    map: &'a TensorMap,
}

/// A convolution's weight `[c_out, c_in/groups, k, k]` and bias `[c_out]`, batch norm folded.
#[derive(Debug, Clone, PartialEq)]
pub struct ConvParams {
    /// Weight dimensions.
    pub shape: Vec<usize>,
    /// Weight values, row-major.
    pub weight: Vec<f32>,
    /// Bias values.
    pub bias: Vec<f32>,
}

impl<'a> Weights<'a> {
    /// Wraps a map.
    pub fn new(map: &'a TensorMap) -> Self {
        Self { map }
    }

    /// Whether `name` exists.
    pub fn has(&self, name: &str) -> bool {
        self.map.get(name).is_some()
    }

    /// The tensor `name`, which must have shape `expected`.
    pub fn get(&self, name: &str, expected: &[usize]) -> Result<&'a NamedTensor, ExportError> {
        let t = self
            .map
            .get(name)
            .ok_or_else(|| ExportError::MissingTensor {
                name: name.to_string(),
            })?;
        if t.shape != expected {
            return Err(ExportError::ShapeMismatch {
                name: name.to_string(),
                expected: expected.to_vec(),
                found: t.shape.clone(),
            });
        }
        Ok(t)
    }

    /// A convolution with bias and no normalisation: `<prefix>.weight`, `<prefix>.bias`.
    pub fn plain_conv(&self, prefix: &str, shape: [usize; 4]) -> Result<ConvParams, ExportError> {
        let w = self.get(&format!("{prefix}.weight"), &shape)?;
        let b = self.get(&format!("{prefix}.bias"), &[shape[0]])?;
        Ok(ConvParams {
            shape: shape.to_vec(),
            weight: w.data.clone(),
            bias: b.data.clone(),
        })
    }

    /// A bias-free convolution `conv` followed by batch norm `bn` (full tensor-name prefixes),
    /// folded; or, when the checkpoint was saved already folded (a `<conv>.bias` and no
    /// `<bn>.weight`), that convolution as is.
    pub fn conv_bn(
        &self,
        conv: &str,
        bn: &str,
        shape: [usize; 4],
        eps: f64,
    ) -> Result<ConvParams, ExportError> {
        let c = shape[0];
        let w = self.get(&format!("{conv}.weight"), &shape)?;
        let bias_name = format!("{conv}.bias");
        if self.has(&bias_name) && !self.has(&format!("{bn}.weight")) {
            let b = self.get(&bias_name, &[c])?;
            return Ok(ConvParams {
                shape: shape.to_vec(),
                weight: w.data.clone(),
                bias: b.data.clone(),
            });
        }
        let gamma = &self.get(&format!("{bn}.weight"), &[c])?.data;
        let beta = &self.get(&format!("{bn}.bias"), &[c])?.data;
        let mean = &self.get(&format!("{bn}.running_mean"), &[c])?.data;
        let var = &self.get(&format!("{bn}.running_var"), &[c])?.data;
        let conv_bias = if self.has(&bias_name) {
            Some(&self.get(&bias_name, &[c])?.data)
        } else {
            None
        };
        let eps = eps as f32;
        let scale: Vec<f32> = gamma
            .iter()
            .zip(var)
            .map(|(g, v)| g / (v + eps).sqrt())
            .collect();
        let per_out = w.data.len() / c.max(1);
        let weight: Vec<f32> = w
            .data
            .iter()
            .enumerate()
            .map(|(i, v)| v * scale[i / per_out])
            .collect();
        let bias = (0..c)
            .map(|o| {
                let centred = match conv_bias {
                    Some(b) => b[o] - mean[o],
                    None => -mean[o],
                };
                beta[o] + centred * scale[o]
            })
            .collect();
        Ok(ConvParams {
            shape: shape.to_vec(),
            weight,
            bias,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folding_matches_the_formula_and_names_missing_tensors() {
        let mut m = TensorMap::new();
        let t = |shape: Vec<usize>, data: Vec<f32>| NamedTensor::new(shape, data).expect("tensor");
        m.insert("c.weight", t(vec![2, 1, 1, 1], vec![1.0, 2.0]));
        m.insert("b.weight", t(vec![2], vec![2.0, 1.0]));
        m.insert("b.bias", t(vec![2], vec![0.5, 0.0]));
        m.insert("b.running_mean", t(vec![2], vec![1.0, -1.0]));
        m.insert("b.running_var", t(vec![2], vec![4.0, 1.0]));
        let w = Weights::new(&m);
        let p = w.conv_bn("c", "b", [2, 1, 1, 1], 0.0).expect("folds");
        assert_eq!(p.weight, vec![1.0, 2.0]);
        assert_eq!(p.bias, vec![-0.5, 1.0]);
        let err = w.conv_bn("x", "y", [2, 1, 1, 1], 0.0).unwrap_err();
        assert!(err.to_string().contains("x.weight"), "{err}");
        let err = w.conv_bn("c", "b", [2, 1, 3, 3], 0.0).unwrap_err();
        assert!(err.to_string().contains("c.weight"), "{err}");
    }
}
