//! Tensors: element types, references into torch storages, and the materialised f32 tensors
//! that loaders hand out.

use half::{bf16, f16};

/// Element type of a stored tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DType {
    /// IEEE half precision.
    F16,
    /// bfloat16.
    BF16,
    /// f32.
    F32,
    /// f64.
    F64,
    /// i64.
    I64,
    /// i32.
    I32,
    /// i16.
    I16,
    /// i8.
    I8,
    /// u8.
    U8,
    /// bool (one byte).
    Bool,
}

impl DType {
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            DType::F64 | DType::I64 => 8,
            DType::F32 | DType::I32 => 4,
            DType::F16 | DType::BF16 | DType::I16 => 2,
            DType::I8 | DType::U8 | DType::Bool => 1,
        }
    }

    /// Decodes element `index` of `bytes` (little-endian unless `big_endian`) to f32.
    /// The caller guarantees `(index + 1) * size <= bytes.len()`.
    fn read_f32(self, bytes: &[u8], index: usize, big_endian: bool) -> f32 {
        let n = self.size();
        let mut buf = [0u8; 8];
        buf[..n].copy_from_slice(&bytes[index * n..index * n + n]);
        if big_endian {
            buf[..n].reverse();
        }
        match self {
            DType::F16 => f16::from_le_bytes([buf[0], buf[1]]).to_f32(),
            DType::BF16 => bf16::from_le_bytes([buf[0], buf[1]]).to_f32(),
            DType::F32 => f32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]),
            DType::F64 => f64::from_le_bytes(buf) as f32,
            DType::I64 => i64::from_le_bytes(buf) as f32,
            DType::I32 => i32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]) as f32,
            DType::I16 => f32::from(i16::from_le_bytes([buf[0], buf[1]])),
            DType::I8 => f32::from(buf[0] as i8),
            DType::U8 => f32::from(buf[0]),
            DType::Bool => f32::from(u8::from(buf[0] != 0)),
        }
    }
}

/// A torch storage named by a persistent id: `data/<key>` in the archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageRef {
    /// Record key inside the archive's `data/` folder.
    pub key: String,
    /// Element type.
    pub dtype: DType,
    /// Number of elements the pickle says the storage holds.
    pub numel: usize,
}

/// A strided view on a storage, as `torch._utils._rebuild_tensor_v2` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorRef {
    /// The storage holding the elements.
    pub storage: std::rc::Rc<StorageRef>,
    /// Offset of element 0, in elements.
    pub offset: usize,
    /// Shape.
    pub shape: Vec<usize>,
    /// Strides, in elements.
    pub stride: Vec<usize>,
}

impl TensorRef {
    /// Gathers the view into a contiguous row-major f32 tensor. `bytes` is the whole storage.
    pub fn materialize(&self, bytes: &[u8], big_endian: bool) -> Result<TensorF32, String> {
        let dtype = self.storage.dtype;
        let available = bytes.len() / dtype.size();
        let mut numel: usize = 1;
        for &d in &self.shape {
            numel = numel
                .checked_mul(d)
                .ok_or_else(|| format!("shape {:?} overflows", self.shape))?;
        }
        if numel > 0 {
            // the largest element index the view touches must lie inside the storage
            let mut last = self.offset;
            for (&d, &s) in self.shape.iter().zip(&self.stride) {
                last = (d - 1)
                    .checked_mul(s)
                    .and_then(|x| last.checked_add(x))
                    .ok_or_else(|| format!("strides {:?} overflow", self.stride))?;
            }
            if last >= available {
                return Err(format!(
                    "view (offset {}, shape {:?}, stride {:?}) reaches element {last} but storage \
                     {} holds {available} {dtype:?} elements",
                    self.offset, self.shape, self.stride, self.storage.key
                ));
            }
        }
        if numel > available && numel > MAX_BROADCAST_NUMEL {
            return Err(format!(
                "broadcast view of {numel} elements on a storage of {available} is too large"
            ));
        }
        let mut data = Vec::with_capacity(numel);
        let contiguous = is_contiguous(&self.shape, &self.stride);
        if contiguous {
            data.extend(
                (self.offset..self.offset + numel).map(|i| dtype.read_f32(bytes, i, big_endian)),
            );
        } else if numel > 0 {
            let rank = self.shape.len();
            let mut index = vec![0usize; rank];
            for _ in 0..numel {
                let pos: usize = self.offset
                    + index
                        .iter()
                        .zip(&self.stride)
                        .map(|(i, s)| i * s)
                        .sum::<usize>();
                data.push(dtype.read_f32(bytes, pos, big_endian));
                for axis in (0..rank).rev() {
                    index[axis] += 1;
                    if index[axis] < self.shape[axis] {
                        break;
                    }
                    index[axis] = 0;
                }
            }
        }
        Ok(TensorF32 {
            shape: self.shape.clone(),
            data,
            dtype,
        })
    }
}

/// Largest element count accepted for a view that repeats storage elements (zero strides).
const MAX_BROADCAST_NUMEL: usize = 1 << 28;

fn is_contiguous(shape: &[usize], stride: &[usize]) -> bool {
    let mut expected = 1usize;
    for (&d, &s) in shape.iter().zip(stride).rev() {
        if d != 1 && s != expected {
            return false;
        }
        expected = expected.saturating_mul(d);
    }
    true
}

/// A dense row-major tensor converted to f32.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorF32 {
    /// Shape (empty for a scalar).
    pub shape: Vec<usize>,
    /// `shape.iter().product()` elements, row-major.
    pub data: Vec<f32>,
    /// The element type it was stored with.
    pub dtype: DType,
}

impl TensorF32 {
    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.data.len()
    }
}

/// Decodes a contiguous little-endian buffer of `dtype` elements to f32 (safetensors).
pub(crate) fn decode_contiguous(bytes: &[u8], dtype: DType) -> Vec<f32> {
    let n = bytes.len() / dtype.size();
    (0..n).map(|i| dtype.read_f32(bytes, i, false)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::rc::Rc;

    fn storage(dtype: DType, numel: usize) -> Rc<StorageRef> {
        Rc::new(StorageRef {
            key: "0".into(),
            dtype,
            numel,
        })
    }

    #[test]
    fn honours_strides_and_offset() {
        // storage 0..12 as f32; a transposed 3x2 view starting at element 2 of a 2x3 block
        let bytes: Vec<u8> = (0..12).flat_map(|i| (i as f32).to_le_bytes()).collect();
        let t = TensorRef {
            storage: storage(DType::F32, 12),
            offset: 2,
            shape: vec![3, 2],
            stride: vec![1, 3],
        };
        let out = t.materialize(&bytes, false).unwrap();
        assert_eq!(out.data, vec![2.0, 5.0, 3.0, 6.0, 4.0, 7.0]);
    }

    #[test]
    fn converts_half_bf16_and_ints() {
        let h: Vec<u8> = [1.5f32, -2.25]
            .iter()
            .flat_map(|&x| f16::from_f32(x).to_le_bytes())
            .collect();
        let t = TensorRef {
            storage: storage(DType::F16, 2),
            offset: 0,
            shape: vec![2],
            stride: vec![1],
        };
        assert_eq!(t.materialize(&h, false).unwrap().data, vec![1.5, -2.25]);
        let b: Vec<u8> = bf16::from_f32(3.0).to_le_bytes().to_vec();
        let t = TensorRef {
            storage: storage(DType::BF16, 1),
            offset: 0,
            shape: vec![],
            stride: vec![],
        };
        assert_eq!(t.materialize(&b, false).unwrap().data, vec![3.0]);
        let l: Vec<u8> = (-7i64).to_be_bytes().to_vec();
        let t = TensorRef {
            storage: storage(DType::I64, 1),
            offset: 0,
            shape: vec![1],
            stride: vec![1],
        };
        assert_eq!(t.materialize(&l, true).unwrap().data, vec![-7.0]);
    }

    #[test]
    fn out_of_bounds_view_is_an_error() {
        let bytes = vec![0u8; 8];
        let t = TensorRef {
            storage: storage(DType::F32, 2),
            offset: 1,
            shape: vec![2],
            stride: vec![1],
        };
        assert!(t.materialize(&bytes, false).is_err());
        let t = TensorRef {
            storage: storage(DType::F32, 2),
            offset: 0,
            shape: vec![usize::MAX, 2],
            stride: vec![2, 1],
        };
        assert!(t.materialize(&bytes, false).is_err());
    }
}
