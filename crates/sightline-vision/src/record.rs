//! Burn's own record format for our checkpoints: **Burnpack** (`.bpk`, written and read by
//! `burn-store`, the format Burn 0.22 replaced its `*FileRecorder`s with).
//!
//! A record holds the tensors of a [`YoloV8Seg`] or [`MobileNetV3`] under their Burn module
//! paths (`l2.m.0.cv1.conv.weight`, `features.0.conv.weight`, …: what `ModuleSnapshot`
//! collects, parameters and batch-norm running statistics) plus string metadata that rebuilds
//! the architecture before the tensors are applied:
//!
//! - `sightline.format` = `sightline-record/1`, `sightline.task` = `segment` | `classify`,
//!   `sightline.names` (class names, JSON list);
//! - segment: `sightline.yolo.{num_classes, scale, depth_multiple, width_multiple,
//!   max_channels, num_masks, proto_channels, reg_max, sppf_cv1_act}`;
//! - classify: `sightline.mobilenet.{variant, num_classes, dropout}` (the torchvision
//!   variants at width 1.0, as [`MobileNetV3Config::infer`] recognises them);
//! - optional `sightline.imgsz`: the training image size, read back as
//!   `train_args = {"imgsz": N}` (what [`crate::imgsz`] uses for inference).
//!
//! Loading is strict: a tensor the model needs and the record lacks, one with another shape,
//! or one the model does not have is an error naming it. [`crate::checkpoint::read_checkpoint`]
//! recognises a record by its magic bytes (`NRUB`, whatever the file's extension), so
//! `sightline predict --weights model.bpk`, evaluation, training starts and the server load it
//! like any other checkpoint.

use std::collections::BTreeMap;
use std::path::Path;

use burn::tensor::Device;
use burn_store::burn_pack::Reader;
use burn_store::{ApplyError, BurnpackStore, ModuleSnapshot};

use crate::checkpoint::{Checkpoint, CheckpointKind};
use crate::error::{Result, VisionError};
use crate::mobilenet::{MobileNetV3, MobileNetV3Config, MobileNetV3Variant};
use crate::weights::TensorMap;
use crate::yolo::{YoloV8Seg, YoloV8SegConfig};

/// The file extension of a record.
pub const EXTENSION: &str = "bpk";

const FORMAT: &str = "sightline-record/1";

/// Metadata key of the training image size.
pub const IMGSZ_KEY: &str = "sightline.imgsz";

fn push_imgsz(meta: &mut Vec<(String, String)>, imgsz: Option<usize>) {
    if let Some(n) = imgsz {
        meta.push((IMGSZ_KEY.to_string(), n.to_string()));
    }
}

/// Whether `head` (the first bytes of a file) starts a Burnpack container.
pub fn is_record(head: &[u8]) -> bool {
    head.starts_with(b"NRUB")
}

/// Whether the file at `path` is a Burnpack container (false when it cannot be read).
pub fn is_record_file(path: &Path) -> bool {
    use std::io::Read as _;
    let mut head = [0u8; 4];
    fs_err::File::open(path)
        .and_then(|mut f| f.read_exact(&mut head))
        .is_ok()
        && is_record(&head)
}

fn err(path: &Path, message: impl std::fmt::Display) -> VisionError {
    VisionError::Checkpoint {
        path: path.to_path_buf(),
        message: message.to_string(),
    }
}

fn save<M: ModuleSnapshot>(model: &M, meta: Vec<(String, String)>, path: &Path) -> Result<()> {
    let mut store = BurnpackStore::from_file(path)
        .auto_extension(false)
        .overwrite(true);
    for (k, v) in meta {
        store = store.metadata(k, v);
    }
    model.save_into(&mut store).map_err(|e| err(path, e))
}

fn names_json(names: &[String]) -> Result<String> {
    serde_json::to_string(names).map_err(|e| VisionError::InvalidArgument(e.to_string()))
}

/// The metadata a detector record carries (see the module docs); for writing a record with
/// burn-store's own options (filters, adapters) instead of [`save_detector`].
pub fn detector_metadata(
    config: &YoloV8SegConfig,
    names: &[String],
) -> Result<Vec<(String, String)>> {
    let y = |k: &str| format!("sightline.yolo.{k}");
    let mut meta = vec![
        ("sightline.format".to_string(), FORMAT.to_string()),
        ("sightline.task".to_string(), "segment".to_string()),
        ("sightline.names".to_string(), names_json(names)?),
        (y("num_classes"), config.num_classes.to_string()),
        (y("depth_multiple"), config.depth_multiple.to_string()),
        (y("width_multiple"), config.width_multiple.to_string()),
        (y("max_channels"), config.max_channels.to_string()),
        (y("num_masks"), config.num_masks.to_string()),
        (y("proto_channels"), config.proto_channels.to_string()),
        (y("reg_max"), config.reg_max.to_string()),
        (y("sppf_cv1_act"), config.sppf_cv1_act.to_string()),
    ];
    if let Some(s) = config.scale {
        meta.push((y("scale"), s.to_string()));
    }
    Ok(meta)
}

/// The metadata a classifier record carries (see the module docs and [`detector_metadata`]).
pub fn classifier_metadata(
    config: &MobileNetV3Config,
    names: &[String],
) -> Result<Vec<(String, String)>> {
    let m = |k: &str| format!("sightline.mobilenet.{k}");
    Ok(vec![
        ("sightline.format".to_string(), FORMAT.to_string()),
        ("sightline.task".to_string(), "classify".to_string()),
        ("sightline.names".to_string(), names_json(names)?),
        (m("variant"), config.variant.name().to_string()),
        (m("num_classes"), config.num_classes.to_string()),
        (m("dropout"), config.dropout.to_string()),
    ])
}

/// Writes `model` (built from `config`) with its class names and, when known, its training
/// image size as a Burnpack record at `path` (replacing a file there; the name is kept as
/// given, `.bpk` by convention).
pub fn save_detector(
    model: &YoloV8Seg,
    config: &YoloV8SegConfig,
    names: &[String],
    imgsz: Option<usize>,
    path: &Path,
) -> Result<()> {
    let mut meta = detector_metadata(config, names)?;
    push_imgsz(&mut meta, imgsz);
    save(model, meta, path)
}

/// Writes `model` (built from `config`, a torchvision variant at width 1.0) with its class
/// names and, when known, its training image size (crop) as a Burnpack record at `path`.
pub fn save_classifier(
    model: &MobileNetV3,
    config: &MobileNetV3Config,
    names: &[String],
    imgsz: Option<usize>,
    path: &Path,
) -> Result<()> {
    let mut meta = classifier_metadata(config, names)?;
    push_imgsz(&mut meta, imgsz);
    save(model, meta, path)
}

/// The metadata of a record.
fn metadata(path: &Path) -> Result<BTreeMap<String, String>> {
    let reader = Reader::from_file_exact(path).map_err(|e| err(path, e))?;
    let meta = reader.metadata().clone();
    match meta.get("sightline.format").map(String::as_str) {
        Some(FORMAT) => Ok(meta),
        Some(other) => Err(err(
            path,
            format!("record format {other:?}, this version reads {FORMAT}"),
        )),
        None => Err(err(
            path,
            "a Burnpack file without Sightline metadata (no `sightline.format`): the \
             architecture cannot be rebuilt",
        )),
    }
}

fn get<T: std::str::FromStr>(meta: &BTreeMap<String, String>, key: &str, path: &Path) -> Result<T> {
    meta.get(key)
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| err(path, format!("record metadata lacks a valid `{key}`")))
}

fn names_of(meta: &BTreeMap<String, String>, path: &Path) -> Result<Option<Vec<String>>> {
    meta.get("sightline.names")
        .map(|s| serde_json::from_str(s).map_err(|e| err(path, format!("sightline.names: {e}"))))
        .transpose()
}

/// Applies the record at `path` to `model`: every tensor must be there with the model's shape,
/// and nothing else may be.
fn apply<M: ModuleSnapshot>(model: &mut M, path: &Path) -> Result<()> {
    let mut store = BurnpackStore::from_file(path)
        .auto_extension(false)
        .allow_partial(true)
        .validate(false);
    let result = model.load_from(&mut store).map_err(|e| err(path, e))?;
    if let Some(e) = result.errors.first() {
        return Err(match e {
            ApplyError::ShapeMismatch {
                path: name,
                expected,
                found,
            } => VisionError::ShapeMismatch {
                name: name.clone(),
                expected: expected.to_vec(),
                found: found.to_vec(),
            },
            other => err(path, other),
        });
    }
    if let Some((name, _)) = result.missing.first() {
        return Err(VisionError::MissingTensor { name: name.clone() });
    }
    if let Some(name) = result.unused.first() {
        return Err(err(
            path,
            format!("tensor `{name}` is not part of the model the metadata describes"),
        ));
    }
    Ok(())
}

fn in_file(path: &Path, e: VisionError) -> VisionError {
    match e {
        e @ (VisionError::Checkpoint { .. }
        | VisionError::ReadCheckpoint { .. }
        | VisionError::InFile { .. }
        | VisionError::Io(_)) => e,
        other => VisionError::InFile {
            path: path.to_path_buf(),
            source: Box::new(other),
        },
    }
}

/// A detector record: the model on `device`, its configuration and class names. A tensor
/// the model needs and the record lacks is [`VisionError::MissingTensor`], one with another
/// shape [`VisionError::ShapeMismatch`] (both name it, by module path).
pub fn load_detector(
    path: &Path,
    device: &Device,
) -> Result<(YoloV8Seg, YoloV8SegConfig, Option<Vec<String>>)> {
    let meta = metadata(path)?;
    task(&meta, "segment", path)?;
    let y = |k: &str| format!("sightline.yolo.{k}");
    let config = YoloV8SegConfig {
        num_classes: get(&meta, &y("num_classes"), path)?,
        scale: meta.get(&y("scale")).and_then(|s| s.chars().next()),
        depth_multiple: get(&meta, &y("depth_multiple"), path)?,
        width_multiple: get(&meta, &y("width_multiple"), path)?,
        max_channels: get(&meta, &y("max_channels"), path)?,
        num_masks: get(&meta, &y("num_masks"), path)?,
        proto_channels: get(&meta, &y("proto_channels"), path)?,
        reg_max: get(&meta, &y("reg_max"), path)?,
        sppf_cv1_act: get(&meta, &y("sppf_cv1_act"), path)?,
    };
    let mut model = YoloV8Seg::new(&config, device);
    apply(&mut model, path)?;
    Ok((model, config, names_of(&meta, path)?))
}

/// A classifier record: the model on `device`, its configuration and class names.
pub fn load_classifier(
    path: &Path,
    device: &Device,
) -> Result<(MobileNetV3, MobileNetV3Config, Option<Vec<String>>)> {
    let meta = metadata(path)?;
    task(&meta, "classify", path)?;
    let m = |k: &str| format!("sightline.mobilenet.{k}");
    let variant = match meta.get(&m("variant")).map(String::as_str) {
        Some("mobilenet_v3_small") => MobileNetV3Variant::Small,
        Some("mobilenet_v3_large") => MobileNetV3Variant::Large,
        other => {
            return Err(err(
                path,
                format!("unknown MobileNetV3 variant {other:?} in the record metadata"),
            ));
        }
    };
    let config = MobileNetV3Config::variant(variant, get(&meta, &m("num_classes"), path)?)
        .with_dropout(get(&meta, &m("dropout"), path)?);
    let mut model = MobileNetV3::new(&config, device);
    apply(&mut model, path)?;
    Ok((model, config, names_of(&meta, path)?))
}

fn task(meta: &BTreeMap<String, String>, want: &str, path: &Path) -> Result<()> {
    match meta.get("sightline.task").map(String::as_str) {
        Some(t) if t == want => Ok(()),
        Some("segment") => Err(VisionError::Unsupported(format!(
            "{} holds a segmentation model, not a classifier",
            path.display()
        ))),
        Some("classify") => Err(VisionError::Unsupported(format!(
            "{} holds a classification model, not a segmentation model",
            path.display()
        ))),
        other => Err(err(path, format!("unknown task {other:?} in the record"))),
    }
}

/// Reads a record as a [`Checkpoint`] with the tensor names of our safetensors checkpoints
/// (Ultralytics / torchvision naming), so every consumer of checkpoints accepts records.
pub fn read_record(path: &Path) -> Result<Checkpoint> {
    let meta = metadata(path)?;
    let device = Device::flex();
    let (map, task, names): (TensorMap, &str, _) = match meta
        .get("sightline.task")
        .map(String::as_str)
    {
        Some("segment") => {
            let (model, _, names) = load_detector(path, &device).map_err(|e| in_file(path, e))?;
            (model.to_tensor_map()?, "segment", names)
        }
        Some("classify") => {
            let (model, _, names) = load_classifier(path, &device).map_err(|e| in_file(path, e))?;
            (model.to_tensor_map()?, "classify", names)
        }
        other => return Err(err(path, format!("unknown task {other:?} in the record"))),
    };
    let mut ckpt = Checkpoint {
        path: path.to_path_buf(),
        kind: CheckpointKind::BurnRecord,
        tensors: Default::default(),
        meta: Default::default(),
    };
    ckpt.meta.task = Some(task.to_string());
    ckpt.meta.nc = names.as_ref().map(Vec::len);
    ckpt.meta.names = names;
    if let Some(v) = meta.get(IMGSZ_KEY) {
        // Kept as written (a number when it is one) so that `Meta::imgsz` judges it.
        let imgsz = v.parse::<u64>().map_or_else(
            |_| serde_json::Value::String(v.clone()),
            serde_json::Value::from,
        );
        ckpt.meta.train_args = Some(serde_json::json!({ "imgsz": imgsz }));
    }
    for (name, t) in map.iter() {
        ckpt.tensors.insert(
            name.to_string(),
            sightline_torch::TensorF32 {
                shape: t.shape.clone(),
                data: t.data.clone(),
                dtype: sightline_torch::DType::F32,
            },
        );
    }
    Ok(ckpt)
}
