//! safetensors reading (any float/int dtype → f32) and writing (f32), with our metadata keys in
//! `__metadata__`: `names` (JSON list), `task`, `scale`, `nc`, `model_class`, `stride` (JSON
//! list), `yaml` and `train_args` (JSON); any other key is kept in [`Meta::info`].

use std::collections::HashMap;
use std::path::Path;

use indexmap::IndexMap;
use safetensors::{Dtype, SafeTensors};
use serde_json::Value as Json;

use crate::Meta;
use crate::error::{Error, ErrorKind, Result};
use crate::tensor::{DType, TensorF32, decode_contiguous};

/// A safetensors file starts with a little-endian u64 header length and a JSON object.
pub(crate) fn looks_like_safetensors(bytes: &[u8]) -> bool {
    if bytes.len() < 9 {
        return false;
    }
    let mut n = [0u8; 8];
    n.copy_from_slice(&bytes[..8]);
    let n = u64::from_le_bytes(n);
    n >= 2 && n <= (bytes.len() as u64 - 8) && bytes[8] == b'{'
}

fn dtype(d: Dtype) -> Option<DType> {
    Some(match d {
        Dtype::F16 => DType::F16,
        Dtype::BF16 => DType::BF16,
        Dtype::F32 => DType::F32,
        Dtype::F64 => DType::F64,
        Dtype::I64 => DType::I64,
        Dtype::I32 => DType::I32,
        Dtype::I16 => DType::I16,
        Dtype::I8 => DType::I8,
        Dtype::U8 => DType::U8,
        Dtype::BOOL => DType::Bool,
        _ => return None,
    })
}

pub(crate) fn read(bytes: &[u8]) -> Result<(IndexMap<String, TensorF32>, Meta), ErrorKind> {
    let st = SafeTensors::deserialize(bytes).map_err(ErrorKind::Safetensors)?;
    let (_, header) = SafeTensors::read_metadata(bytes).map_err(ErrorKind::Safetensors)?;
    let mut tensors = IndexMap::new();
    // file order = data offset order
    for name in header.offset_keys() {
        let view = st.tensor(&name).map_err(ErrorKind::Safetensors)?;
        let dt = dtype(view.dtype()).ok_or_else(|| ErrorKind::Tensor {
            name: name.clone(),
            message: format!("unsupported dtype {:?}", view.dtype()),
        })?;
        let data = decode_contiguous(view.data(), dt);
        tensors.insert(
            name,
            TensorF32 {
                shape: view.shape().to_vec(),
                data,
                dtype: dt,
            },
        );
    }
    let mut meta = Meta::default();
    if let Some(md) = header.metadata() {
        let mut keys: Vec<&String> = md.keys().collect();
        keys.sort();
        for k in keys {
            let v = &md[k];
            let json = || serde_json::from_str::<Json>(v).ok();
            match k.as_str() {
                "names" => {
                    meta.names = json().and_then(|j| {
                        j.as_array()?
                            .iter()
                            .map(|x| x.as_str().map(str::to_string))
                            .collect()
                    });
                }
                "task" => meta.task = Some(v.clone()),
                "scale" => meta.scale = Some(v.clone()),
                "model_class" => meta.model_class = Some(v.clone()),
                "nc" => meta.nc = v.parse().ok(),
                "stride" => {
                    meta.stride = json().and_then(|j| {
                        j.as_array()?
                            .iter()
                            .map(|x| x.as_f64().map(|f| f as f32))
                            .collect()
                    });
                }
                "yaml" => meta.yaml = json(),
                "train_args" => meta.train_args = json(),
                _ => {
                    meta.info.insert(k.clone(), Json::String(v.clone()));
                }
            }
        }
    }
    Ok((tensors, meta))
}

/// Writes f32 tensors and `meta` (see the module docs for the keys) as a safetensors file.
pub fn save_safetensors<'a>(
    path: impl AsRef<Path>,
    tensors: impl IntoIterator<Item = (&'a str, &'a TensorF32)>,
    meta: &Meta,
) -> Result<()> {
    let path = path.as_ref();
    let fail = |kind| Error::new(path, kind);
    let mut md: HashMap<String, String> = HashMap::new();
    for (k, v) in &meta.info {
        md.insert(
            k.clone(),
            v.as_str().map_or_else(|| v.to_string(), str::to_string),
        );
    }
    if let Some(names) = &meta.names {
        md.insert("names".into(), Json::from(names.clone()).to_string());
    }
    for (k, v) in [
        ("task", &meta.task),
        ("scale", &meta.scale),
        ("model_class", &meta.model_class),
    ] {
        if let Some(v) = v {
            md.insert(k.into(), v.clone());
        }
    }
    if let Some(nc) = meta.nc {
        md.insert("nc".into(), nc.to_string());
    }
    if let Some(stride) = &meta.stride {
        md.insert("stride".into(), Json::from(stride.clone()).to_string());
    }
    if let Some(y) = &meta.yaml {
        md.insert("yaml".into(), y.to_string());
    }
    if let Some(a) = &meta.train_args {
        md.insert("train_args".into(), a.to_string());
    }
    let mut views = Vec::new();
    let buffers: Vec<(&str, Vec<u8>, Vec<usize>)> = tensors
        .into_iter()
        .map(|(name, t)| {
            let bytes: Vec<u8> = t.data.iter().flat_map(|x| x.to_le_bytes()).collect();
            (name, bytes, t.shape.clone())
        })
        .collect();
    for (name, bytes, shape) in &buffers {
        let view = safetensors::tensor::TensorView::new(Dtype::F32, shape.clone(), bytes).map_err(
            |e| {
                fail(ErrorKind::TensorView {
                    name: (*name).to_string(),
                    source: e,
                })
            },
        )?;
        views.push((*name, view));
    }
    let bytes =
        safetensors::serialize(views, Some(md)).map_err(|e| fail(ErrorKind::Safetensors(e)))?;
    fs_err::write(path, bytes).map_err(|e| fail(ErrorKind::Io(e)))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_with_metadata() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.safetensors");
        let a = TensorF32 {
            shape: vec![2, 2],
            data: vec![1.0, 2.0, 3.0, 4.5],
            dtype: DType::F32,
        };
        let b = TensorF32 {
            shape: vec![3],
            data: vec![-1.0, 0.0, 1.0],
            dtype: DType::F32,
        };
        let meta = Meta {
            names: Some(vec!["ok".into(), "ng".into()]),
            task: Some("classify".into()),
            nc: Some(2),
            stride: Some(vec![8.0, 16.0, 32.0]),
            ..Meta::default()
        };
        save_safetensors(&path, [("z.weight", &a), ("a.bias", &b)], &meta).unwrap();
        let ck = crate::load(&path).unwrap();
        assert_eq!(ck.kind, crate::CheckpointKind::Safetensors);
        assert_eq!(ck.tensors["z.weight"], a);
        assert_eq!(ck.tensors["a.bias"], b);
        assert_eq!(ck.meta.names, meta.names);
        assert_eq!(ck.meta.task, meta.task);
        assert_eq!(ck.meta.nc, Some(2));
        assert_eq!(ck.meta.stride, meta.stride);
    }
}
