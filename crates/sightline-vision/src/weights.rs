//! Named f32 tensors: the neutral form in which checkpoints reach the models.
//!
//! Loaders (Ultralytics `.pt`, torchvision `.pth`, safetensors) produce a [`TensorMap`] keyed by
//! PyTorch state-dict names (`model.22.proto.cv1.conv.weight`); models take what they need from
//! it and report a missing or mis-shaped tensor by name.

use std::collections::BTreeMap;
use std::path::Path;

use burn::tensor::{Device, Tensor, TensorData};
use safetensors::{Dtype, SafeTensors};

use crate::error::{Result, VisionError};

/// One dense row-major f32 tensor.
#[derive(Debug, Clone, PartialEq)]
pub struct NamedTensor {
    /// Dimensions, outermost first.
    pub shape: Vec<usize>,
    /// `shape.iter().product()` values.
    pub data: Vec<f32>,
}

impl NamedTensor {
    /// A tensor from its shape and values; errors when they disagree.
    pub fn new(shape: Vec<usize>, data: Vec<f32>) -> Result<Self> {
        let numel: usize = shape.iter().product();
        if numel != data.len() {
            return Err(VisionError::TensorData(format!(
                "shape {shape:?} needs {numel} values, got {}",
                data.len()
            )));
        }
        Ok(Self { shape, data })
    }
}

/// Tensors by name.
#[derive(Debug, Clone, Default)]
pub struct TensorMap {
    tensors: BTreeMap<String, NamedTensor>,
}

impl TensorMap {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds or replaces a tensor.
    pub fn insert(&mut self, name: impl Into<String>, tensor: NamedTensor) {
        self.tensors.insert(name.into(), tensor);
    }

    /// The tensor called `name`, if present.
    pub fn get(&self, name: &str) -> Option<&NamedTensor> {
        self.tensors.get(name)
    }

    /// The tensor called `name`, or an error naming it.
    pub fn require(&self, name: &str) -> Result<&NamedTensor> {
        self.get(name).ok_or_else(|| VisionError::MissingTensor {
            name: name.to_string(),
        })
    }

    /// The tensor called `name`, checked against the `expected` shape.
    pub fn require_shape(&self, name: &str, expected: &[usize]) -> Result<&NamedTensor> {
        let t = self.require(name)?;
        if t.shape != expected {
            return Err(VisionError::ShapeMismatch {
                name: name.to_string(),
                expected: expected.to_vec(),
                found: t.shape.clone(),
            });
        }
        Ok(t)
    }

    /// Names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.tensors.keys().map(String::as_str)
    }

    /// Number of tensors.
    pub fn len(&self) -> usize {
        self.tensors.len()
    }

    /// Whether the map is empty.
    pub fn is_empty(&self) -> bool {
        self.tensors.is_empty()
    }

    /// Iterates over `(name, tensor)` pairs in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &NamedTensor)> {
        self.tensors.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Reads every floating-point tensor of a safetensors file (f32, f16, bf16, f64 are
    /// converted to f32; integer tensors are skipped).
    pub fn from_safetensors_file(path: &Path) -> Result<Self> {
        let bytes = fs_err::read(path)?;
        Self::from_safetensors_bytes(&bytes).map_err(|e| VisionError::InFile {
            path: path.to_path_buf(),
            source: Box::new(e),
        })
    }

    /// Reads every floating-point tensor of an in-memory safetensors buffer.
    pub fn from_safetensors_bytes(bytes: &[u8]) -> Result<Self> {
        let st = SafeTensors::deserialize(bytes).map_err(|source| VisionError::Safetensors {
            context: "invalid safetensors data".to_string(),
            source,
        })?;
        let mut map = TensorMap::new();
        for (name, view) in st.tensors() {
            let raw = view.data();
            let data: Vec<f32> = match view.dtype() {
                Dtype::F32 => raw
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect(),
                Dtype::F64 => raw
                    .chunks_exact(8)
                    .map(|b| {
                        f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]) as f32
                    })
                    .collect(),
                Dtype::F16 => raw
                    .chunks_exact(2)
                    .map(|b| f16_to_f32(u16::from_le_bytes([b[0], b[1]])))
                    .collect(),
                Dtype::BF16 => raw
                    .chunks_exact(2)
                    .map(|b| f32::from_bits(u32::from(u16::from_le_bytes([b[0], b[1]])) << 16))
                    .collect(),
                _ => continue,
            };
            map.insert(name, NamedTensor::new(view.shape().to_vec(), data)?);
        }
        Ok(map)
    }

    /// Writes the map as a safetensors file (f32).
    pub fn save_safetensors(&self, path: &Path) -> Result<()> {
        let bytes = self.to_safetensors_bytes()?;
        fs_err::write(path, bytes)?;
        Ok(())
    }

    /// Serialises the map as safetensors (f32).
    pub fn to_safetensors_bytes(&self) -> Result<Vec<u8>> {
        let raw: Vec<(String, Vec<u8>, Vec<usize>)> = self
            .tensors
            .iter()
            .map(|(name, t)| {
                let bytes = t.data.iter().flat_map(|v| v.to_le_bytes()).collect();
                (name.clone(), bytes, t.shape.clone())
            })
            .collect();
        let mut views = Vec::with_capacity(raw.len());
        for (name, bytes, shape) in &raw {
            let view = safetensors::tensor::TensorView::new(Dtype::F32, shape.clone(), bytes)
                .map_err(|source| VisionError::Safetensors {
                    context: name.clone(),
                    source,
                })?;
            views.push((name.clone(), view));
        }
        safetensors::serialize(views, None).map_err(|source| VisionError::Safetensors {
            context: "cannot serialise safetensors".to_string(),
            source,
        })
    }
}

impl FromIterator<(String, NamedTensor)> for TensorMap {
    fn from_iter<I: IntoIterator<Item = (String, NamedTensor)>>(iter: I) -> Self {
        Self {
            tensors: iter.into_iter().collect(),
        }
    }
}

/// IEEE 754 half to single precision (exact).
fn f16_to_f32(h: u16) -> f32 {
    let sign = u32::from(h >> 15) << 31;
    let exp = u32::from((h >> 10) & 0x1f);
    let mant = u32::from(h & 0x3ff);
    let bits = match (exp, mant) {
        (0, 0) => sign,
        (0, m) => {
            // subnormal: normalise
            let shift = m.leading_zeros() - 21;
            let m = (m << shift) & 0x3ff;
            sign | ((127 - 15 + 1 - shift) << 23) | (m << 13)
        }
        (0x1f, m) => sign | 0x7f80_0000 | (m << 13),
        (e, m) => sign | ((e + 127 - 15) << 23) | (m << 13),
    };
    f32::from_bits(bits)
}

/// Uploads a [`NamedTensor`] of rank `D` to `device`.
pub fn to_tensor<const D: usize>(t: &NamedTensor, device: &Device) -> Result<Tensor<D>> {
    if t.shape.len() != D {
        return Err(VisionError::TensorData(format!(
            "expected a rank-{D} tensor, got shape {:?}",
            t.shape
        )));
    }
    Ok(Tensor::from_data(
        TensorData::new(t.data.clone(), t.shape.clone()),
        device,
    ))
}

/// Reads a tensor back as `(shape, values)`.
pub fn tensor_to_vec<const D: usize>(t: Tensor<D>) -> Result<(Vec<usize>, Vec<f32>)> {
    let shape = t.dims().to_vec();
    let data = t
        .into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .map_err(|e| VisionError::TensorData(format!("{e:?}")))?;
    Ok((shape, data))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_conversion_is_exact() {
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0xc000), -2.0);
        assert_eq!(f16_to_f32(0x0001), 2.0f32.powi(-24));
        assert_eq!(f16_to_f32(0x7bff), 65504.0);
        assert!(f16_to_f32(0x7c00).is_infinite());
    }

    #[test]
    fn safetensors_round_trip_and_shape_errors() {
        let mut map = TensorMap::new();
        map.insert(
            "a.weight",
            NamedTensor::new(vec![2, 3], (0..6).map(|v| v as f32).collect()).unwrap(),
        );
        let bytes = map.to_safetensors_bytes().unwrap();
        let back = TensorMap::from_safetensors_bytes(&bytes).unwrap();
        assert_eq!(back.get("a.weight"), map.get("a.weight"));
        let err = back.require_shape("a.weight", &[3, 2]).unwrap_err();
        assert!(err.to_string().contains("a.weight"), "{err}");
        let err = back.require("b.bias").unwrap_err();
        assert!(err.to_string().contains("b.bias"), "{err}");
        assert!(NamedTensor::new(vec![2, 2], vec![0.0; 3]).is_err());
    }
}
