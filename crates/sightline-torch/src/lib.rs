//! Reads PyTorch checkpoints without Python: Ultralytics .pt (zip + pickled module tree) and
//! torchvision .pth state dicts, plus safetensors, into named f32 tensors.
//!
//! One entry point, [`load`], recognises the format from the file's bytes:
//! - **PyTorch zip archives** (`torch.save` ≥ 1.6): `data.pkl` is decoded by our own pickle
//!   machine ([`pickle`]), tensors are rebuilt from `data/<key>` storages (any dtype, strides
//!   honoured, converted to f32). The decoded object may be a plain state dict (torchvision
//!   `.pth`), an Ultralytics checkpoint dict (`model`/`ema` holding the pickled
//!   `DetectionModel`/`SegmentationModel`), or a bare `nn.Module`; modules are walked into a
//!   state dict with PyTorch's names (`model.22.proto.cv1.conv.weight`).
//! - **safetensors** files, whose `__metadata__` may carry our own metadata keys.
//!
//! ```no_run
//! let ckpt = sightline_torch::load("yolov8n-seg.pt")?;
//! println!("{:?} with {} tensors, classes {:?}", ckpt.kind, ckpt.tensors.len(), ckpt.meta.names);
//! let w = ckpt.tensor("model.0.conv.weight", &[16, 3, 3, 3])?;
//! # Ok::<(), sightline_torch::Error>(())
//! ```

mod error;
mod imgsz;
mod module;
pub mod pickle;
mod safetensors_io;
mod tensor;
mod torchzip;

use std::path::{Path, PathBuf};

use indexmap::IndexMap;
use serde_json::{Map, Value as Json};

pub use error::{Error, ErrorKind, Result};
pub use imgsz::{ImageSize, InvalidImgsz, MAX_CHECKPOINT_IMGSZ};
pub use module::to_json;
pub use safetensors_io::save_safetensors;
pub use tensor::{DType, StorageRef, TensorF32, TensorRef};

use pickle::Value;

/// Which kind of file a checkpoint came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckpointKind {
    /// An Ultralytics `.pt`: a dict with the pickled model object under `model`/`ema`.
    Ultralytics,
    /// A plain PyTorch state dict (e.g. torchvision `.pth`).
    TorchStateDict,
    /// A whole pickled `nn.Module` (`torch.save(model)`).
    TorchModule,
    /// A safetensors file.
    Safetensors,
    /// A Burn record (Burnpack `.bpk`); never produced by this crate: `sightline-vision`
    /// reads those and returns them in this form.
    BurnRecord,
}

/// Metadata found next to the tensors. Every field is optional: what a file does not say stays
/// `None`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Meta {
    /// Python class of the model object, e.g. `ultralytics.nn.tasks.SegmentationModel`.
    pub model_class: Option<String>,
    /// Task: `segment`, `detect`, `classify`, … (Ultralytics naming).
    pub task: Option<String>,
    /// Class names indexed by class id.
    pub names: Option<Vec<String>>,
    /// Number of classes.
    pub nc: Option<usize>,
    /// Model scale letter (`n`, `s`, `m`, `l`, `x`).
    pub scale: Option<String>,
    /// Detection strides (e.g. `[8, 16, 32]`).
    pub stride: Option<Vec<f32>>,
    /// The Ultralytics model yaml dict (architecture, scales, nc, …).
    pub yaml: Option<Json>,
    /// Training arguments (`train_args`, or the model's `args`); [`Meta::imgsz`] reads the
    /// training image size from them.
    pub train_args: Option<Json>,
    /// Other top-level scalar entries (date, version, epoch, …) or safetensors metadata.
    pub info: Map<String, Json>,
}

/// A loaded checkpoint: named f32 tensors in file order plus metadata.
#[derive(Debug, Clone)]
pub struct Checkpoint {
    /// The file it was read from.
    pub path: PathBuf,
    /// The format.
    pub kind: CheckpointKind,
    /// State-dict tensors by PyTorch name, in the file's order.
    pub tensors: IndexMap<String, TensorF32>,
    /// Metadata.
    pub meta: Meta,
}

impl Checkpoint {
    /// The tensor named `name`, if present.
    pub fn get(&self, name: &str) -> Option<&TensorF32> {
        self.tensors.get(name)
    }

    /// The tensor named `name`, which must have shape `expected`; the error names the file and
    /// the missing or mis-shaped tensor.
    pub fn tensor(&self, name: &str, expected: &[usize]) -> Result<&TensorF32> {
        let t = self.tensors.get(name).ok_or_else(|| {
            Error::new(
                &self.path,
                ErrorKind::MissingTensor {
                    name: name.to_string(),
                },
            )
        })?;
        if t.shape != expected {
            return Err(Error::new(
                &self.path,
                ErrorKind::ShapeMismatch {
                    name: name.to_string(),
                    expected: expected.to_vec(),
                    found: t.shape.clone(),
                },
            ));
        }
        Ok(t)
    }

    /// Removes and returns the tensor named `name` (shape-checked like [`Checkpoint::tensor`]),
    /// avoiding a copy of its data.
    pub fn take(&mut self, name: &str, expected: &[usize]) -> Result<TensorF32> {
        self.tensor(name, expected)?;
        self.tensors.shift_remove(name).ok_or_else(|| {
            Error::new(
                &self.path,
                ErrorKind::MissingTensor {
                    name: name.to_string(),
                },
            )
        })
    }
}

/// Loads a checkpoint file (PyTorch zip `.pt`/`.pth` or `.safetensors`, detected from content).
pub fn load(path: impl AsRef<Path>) -> Result<Checkpoint> {
    let path = path.as_ref();
    let bytes = fs_err::read(path).map_err(|e| Error::new(path, ErrorKind::Io(e)))?;
    load_bytes(path, &bytes)
}

/// Loads a checkpoint from memory; `name` is used in errors and as [`Checkpoint::path`].
pub fn load_bytes(name: impl AsRef<Path>, bytes: &[u8]) -> Result<Checkpoint> {
    let path = name.as_ref().to_path_buf();
    let fail = |kind| Error::new(&path, kind);
    if bytes.starts_with(b"PK\x03\x04") || bytes.starts_with(b"PK\x05\x06") {
        let mut archive = torchzip::TorchArchive::open(bytes).map_err(fail)?;
        let root = archive.root.clone();
        let (kind, refs, mut meta, stride) = interpret(&root).map_err(fail)?;
        if let Some(t) = stride {
            let t = archive.materialize("stride", &t).map_err(fail)?;
            meta.stride = Some(t.data);
        }
        let mut tensors = IndexMap::with_capacity(refs.len());
        for (name, t) in refs {
            let tensor = archive.materialize(&name, &t).map_err(fail)?;
            tensors.insert(name, tensor);
        }
        return Ok(Checkpoint {
            path,
            kind,
            tensors,
            meta,
        });
    }
    if safetensors_io::looks_like_safetensors(bytes) {
        let (tensors, meta) = safetensors_io::read(bytes).map_err(fail)?;
        return Ok(Checkpoint {
            path,
            kind: CheckpointKind::Safetensors,
            tensors,
            meta,
        });
    }
    if bytes.first() == Some(&0x80) {
        return Err(fail(ErrorKind::LegacyFormat));
    }
    Err(fail(ErrorKind::UnknownFormat))
}

/// Kind, state-dict tensors, metadata, and the model's stride tensor (if any).
type Interpreted = (
    CheckpointKind,
    Vec<(String, TensorRef)>,
    Meta,
    Option<TensorRef>,
);

/// Decides what the unpickled root object is and collects its tensors and metadata.
fn interpret(root: &Value) -> Result<Interpreted, ErrorKind> {
    if module::is_module(root) {
        let mut refs = Vec::new();
        module::module_state_dict(root, "", &mut refs, 0)?;
        let mut meta = Meta::default();
        let stride = model_meta(root, &mut meta);
        return Ok((CheckpointKind::TorchModule, refs, meta, stride));
    }
    if !matches!(root, Value::Dict(_)) {
        return Err(ErrorKind::Layout(format!(
            "top-level object is {root:?}, not a dict or a module"
        )));
    }
    // Ultralytics: `ckpt.get("ema") or ckpt["model"]`
    let model = ["ema", "model"]
        .iter()
        .filter_map(|k| root.get(k))
        .find(module::is_module);
    if let Some(model) = model {
        let mut refs = Vec::new();
        module::module_state_dict(&model, "", &mut refs, 0)?;
        let mut meta = Meta::default();
        let stride = model_meta(&model, &mut meta);
        if let Some(args) = root.get("train_args")
            && !matches!(args, Value::None)
        {
            meta.train_args = Some(to_json(&args));
        }
        if meta.task.is_none() {
            meta.task = meta
                .train_args
                .as_ref()
                .and_then(|a| a.get("task"))
                .and_then(Json::as_str)
                .map(str::to_string);
        }
        for (k, v) in root.dict_items().unwrap_or_default() {
            if let (Some(k), Value::Str(_) | Value::Int(_) | Value::Float(_) | Value::Bool(_)) =
                (k.as_str(), &v)
            {
                meta.info.insert(k.to_string(), to_json(&v));
            }
        }
        let ultralytics = meta
            .model_class
            .as_deref()
            .is_some_and(|c| c.starts_with("ultralytics."))
            || meta.yaml.is_some();
        let kind = if ultralytics {
            CheckpointKind::Ultralytics
        } else {
            CheckpointKind::TorchModule
        };
        return Ok((kind, refs, meta, stride));
    }
    if let Some(refs) = module::dict_state_dict(root) {
        return Ok((CheckpointKind::TorchStateDict, refs, Meta::default(), None));
    }
    for key in ["state_dict", "model_state_dict", "model"] {
        if let Some(refs) = root.get(key).as_ref().and_then(module::dict_state_dict) {
            return Ok((CheckpointKind::TorchStateDict, refs, Meta::default(), None));
        }
    }
    let keys: Vec<String> = root
        .dict_items()
        .unwrap_or_default()
        .iter()
        .map(|(k, _)| format!("{k:?}"))
        .take(20)
        .collect();
    Err(ErrorKind::Layout(format!(
        "a dict without tensors, a state dict or a model (keys: {})",
        keys.join(", ")
    )))
}

/// Ultralytics model attributes → metadata; returns the stride tensor to materialise.
fn model_meta(model: &Value, meta: &mut Meta) -> Option<TensorRef> {
    meta.model_class = model.class_name();
    if let Some(names) = model.get("names") {
        meta.names = module::class_names(&names);
    }
    if let Some(yaml) = model.get("yaml")
        && matches!(yaml, Value::Dict(_))
    {
        let yaml = to_json(&yaml);
        meta.scale = yaml
            .get("scale")
            .and_then(Json::as_str)
            .map(str::to_string)
            .or_else(|| {
                yaml.get("yaml_file")
                    .and_then(Json::as_str)
                    .and_then(scale_from_file_name)
            });
        meta.nc = yaml
            .get("nc")
            .and_then(Json::as_u64)
            .and_then(|n| usize::try_from(n).ok());
        meta.yaml = Some(yaml);
    }
    if meta.nc.is_none() {
        meta.nc = meta.names.as_ref().map(Vec::len);
    }
    let stride = match model.get("stride") {
        Some(Value::Tensor(t)) => Some(t.as_ref().clone()),
        Some(v) => {
            meta.stride = v
                .seq_items()
                .and_then(|s| s.iter().map(|x| x.as_f64().map(|f| f as f32)).collect());
            None
        }
        None => None,
    };
    if let Some(args) = model.get("args")
        && matches!(args, Value::Dict(_))
    {
        let args = to_json(&args);
        meta.task = args.get("task").and_then(Json::as_str).map(str::to_string);
        meta.train_args = Some(args);
    }
    if let Some(task) = model
        .get("task")
        .and_then(|t| t.as_str().map(str::to_string))
    {
        meta.task = Some(task);
    }
    if meta.task.is_none() {
        meta.task = meta.model_class.as_deref().and_then(|c| {
            let task = match c.rsplit('.').next()? {
                "SegmentationModel" => "segment",
                "DetectionModel" => "detect",
                "ClassificationModel" => "classify",
                "PoseModel" => "pose",
                "OBBModel" => "obb",
                _ => return None,
            };
            Some(task.to_string())
        });
    }
    stride
}

/// `yolov8n-seg.yaml` → `n`; `yolo11s.yaml` → `s`.
fn scale_from_file_name(file: &str) -> Option<String> {
    let stem = file.rsplit(['/', '\\']).next()?;
    let rest = stem.strip_prefix("yolo")?;
    let rest = rest.strip_prefix('v').unwrap_or(rest);
    let digits = rest.chars().take_while(char::is_ascii_digit).count();
    if digits == 0 {
        return None;
    }
    let c = rest[digits..].chars().next()?;
    "nslmx".contains(c).then(|| c.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scale_from_names() {
        assert_eq!(
            scale_from_file_name("yolov8n-seg.yaml").as_deref(),
            Some("n")
        );
        assert_eq!(
            scale_from_file_name("cfg/yolo11x.yaml").as_deref(),
            Some("x")
        );
        assert_eq!(scale_from_file_name("yolov8-seg.yaml"), None);
        assert_eq!(scale_from_file_name("resnet.yaml"), None);
    }

    #[test]
    fn unknown_bytes_are_rejected() {
        let e = load_bytes("x.bin", b"hello world").unwrap_err();
        assert!(matches!(e.kind, ErrorKind::UnknownFormat));
        assert!(e.to_string().starts_with("x.bin: "), "{e}");
        let e = load_bytes("old.pt", &[0x80, 2, b'N', b'.']).unwrap_err();
        assert!(matches!(e.kind, ErrorKind::LegacyFormat));
    }
}
