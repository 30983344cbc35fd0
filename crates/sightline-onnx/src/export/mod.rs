//! ONNX export of our module trees, written by us (no Python, no protoc): the graph is built
//! node by node from the models' state-dict-named weights and serialized with hand-declared
//! protobuf messages ([`proto`]).
//!
//! - YOLOv8-seg (every scale, any class count) as a drop-in for Ultralytics'
//!   `export(format="onnx")`: input `images` `(B, 3, H, W)` RGB in `[0, 1]`, outputs `output0`
//!   `(B, 4 + nc + 32, anchors)` (xywh boxes in input pixels, sigmoid class scores, mask
//!   coefficients) and `output1` `(B, 32, H/4, W/4)` (mask prototypes), Ultralytics'
//!   `metadata_props` ([`metadata`]). See [`export_segmenter`].
//! - MobileNetV3 small/large as `torch.onnx.export` writes torchvision's model: input `input`
//!   (normalised), output `logits` `(B, classes)`. See [`export_classifier`].
//! - Any checkpoint we load (Ultralytics `.pt`, torchvision `.pth`, safetensors, Burnpack
//!   `.bpk`): [`export_checkpoint`] / [`export_loaded_checkpoint`].
//!
//! Batch norms are folded into the convolutions exactly as the Burn models fold them, so the
//! ONNX graph and [`sightline_vision::segment::Segmenter::forward`] /
//! [`sightline_vision::classify::Classifier::forward`] compute the same numbers.
//!
//! Shapes are static by default (`imgsz`, `batch`); with [`ExportOptions::dynamic`] batch,
//! height and width are symbolic (`dim_param` `batch`, `height`, `width`; outputs `anchors`,
//! `mask_height`, `mask_width` as Ultralytics names them) and the detector computes its anchor
//! grid inside the graph, so any input whose sides are multiples of 32 runs (letterboxed
//! non-square inputs such as 256×160).

pub mod fold;
pub mod graph;
pub mod metadata;
pub mod mobilenet;
pub mod ops;
pub mod proto;
pub mod yolo;

use std::path::{Path, PathBuf};

use prost::Message;
use sightline_vision::VisionError;
use sightline_vision::checkpoint::{Checkpoint, Task, into_tensor_map, read_checkpoint, task_of};
use sightline_vision::classify::ClassifyPreprocess;
use sightline_vision::mobilenet::MobileNetV3Config;
use sightline_vision::weights::TensorMap;
use sightline_vision::yolo::YoloV8SegConfig;

use self::fold::Weights;
use self::proto::{Dim, ModelProto, type_proto};

/// Default opset (ONNX Runtime ≥ 1.12 runs it; Ultralytics exports 17–18 with current torch).
pub const DEFAULT_OPSET: i64 = 17;
/// Opsets our graphs are written for (every op we use has the same signature in them).
pub const OPSETS: std::ops::RangeInclusive<i64> = 17..=21;
/// The Ultralytics release whose export conventions (names, shapes, metadata) the detector
/// files follow; written as `version` when the checkpoint does not name its own.
pub const ULTRALYTICS_VERSION: &str = "8.4.190";
pub use sightline_vision::imgsz::{DEFAULT_CLASSIFIER_IMGSZ, DEFAULT_DETECTOR_IMGSZ};

/// Everything that can go wrong while exporting.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The checkpoint file could not be read.
    #[error("cannot read checkpoint {}", path.display())]
    ReadCheckpoint {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: VisionError,
    },
    /// The checkpoint holds neither a YOLOv8-seg nor a MobileNetV3 model.
    #[error(
        "{}: cannot tell whether it holds a YOLOv8-seg detector or a MobileNetV3 classifier",
        path.display()
    )]
    UnknownTask {
        /// The file.
        path: PathBuf,
    },
    /// The checkpoint's tensors do not describe an architecture we can export.
    #[error("{} does not hold an architecture we can export", path.display())]
    Architecture {
        /// The file.
        path: PathBuf,
        /// What the architecture recognition said.
        #[source]
        source: VisionError,
    },
    /// The checkpoint records an image size that is not one (give it explicitly instead).
    #[error("{}: the recorded image size is unusable", path.display())]
    CheckpointImgsz {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        #[source]
        source: VisionError,
    },
    /// A tensor the graph needs is missing.
    #[error("tensor `{name}` is missing from the weights")]
    MissingTensor {
        /// Full state-dict name.
        name: String,
    },
    /// A tensor has another shape than the architecture needs.
    #[error("tensor `{name}` has shape {found:?}, the architecture needs {expected:?}")]
    ShapeMismatch {
        /// Full state-dict name.
        name: String,
        /// Needed shape.
        expected: Vec<usize>,
        /// Shape found.
        found: Vec<usize>,
    },
    /// The label list does not match the model's class count.
    #[error("the model has {classes} classes but {labels} labels were given")]
    LabelCount {
        /// Classes of the model.
        classes: usize,
        /// Labels given.
        labels: usize,
    },
    /// An option is out of range (image size, batch, opset).
    #[error("invalid export option: {0}")]
    InvalidOption(String),
    /// Bytes that are not an ONNX model ([`describe`]).
    #[error("not an ONNX model")]
    Decode(#[from] prost::DecodeError),
}

/// How to export.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportOptions {
    /// Input `(height, width)`; `None`: the checkpoint's own training size
    /// ([`checkpoint_imgsz`]), else 640 for a detector and 224 for a classifier. Detector sides
    /// must be multiples of 32. With `dynamic` this is only recorded in the metadata.
    pub imgsz: Option<[usize; 2]>,
    /// Static batch size (ignored for the shapes when `dynamic`; recorded as `batch`).
    pub batch: usize,
    /// Symbolic batch, height and width.
    pub dynamic: bool,
    /// Default-domain opset, in [`OPSETS`].
    pub opset: i64,
    /// Detector `description` metadata; `None`: `Ultralytics YOLOv8<scale>-seg model …` as
    /// Ultralytics writes it.
    pub description: Option<String>,
    /// Classifier preprocessing recorded in the metadata; `None`: torchvision's (resize 256,
    /// crop 224, ImageNet mean/std) scaled to the image size.
    pub preprocess: Option<ClassifyPreprocess>,
}

impl Default for ExportOptions {
    fn default() -> Self {
        Self {
            imgsz: None,
            batch: 1,
            dynamic: false,
            opset: DEFAULT_OPSET,
            description: None,
            preprocess: None,
        }
    }
}

impl ExportOptions {
    /// Static export at `imgsz` (square), batch 1.
    pub fn fixed(imgsz: usize) -> Self {
        Self {
            imgsz: Some([imgsz, imgsz]),
            ..Self::default()
        }
    }

    /// Dynamic export (symbolic batch, height, width); `imgsz` is recorded in the metadata.
    pub fn dynamic(imgsz: usize) -> Self {
        Self {
            imgsz: Some([imgsz, imgsz]),
            dynamic: true,
            ..Self::default()
        }
    }

    fn validate(&self) -> Result<(), ExportError> {
        if !OPSETS.contains(&self.opset) {
            return Err(ExportError::InvalidOption(format!(
                "opset {} (supported: {} to {})",
                self.opset,
                OPSETS.start(),
                OPSETS.end()
            )));
        }
        if self.batch == 0 {
            return Err(ExportError::InvalidOption(
                "batch must be at least 1".into(),
            ));
        }
        Ok(())
    }
}

/// One graph input or output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValueSummary {
    /// Name.
    pub name: String,
    /// Dimensions (fixed or symbolic).
    pub dims: Vec<Dim>,
}

/// What an ONNX file holds, read back from its bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelSummary {
    /// IR version.
    pub ir_version: i64,
    /// Default-domain opset.
    pub opset: i64,
    /// Producer name.
    pub producer: String,
    /// Graph inputs (initializers excluded).
    pub inputs: Vec<ValueSummary>,
    /// Graph outputs.
    pub outputs: Vec<ValueSummary>,
    /// Node count.
    pub nodes: usize,
    /// Number of weight values (elements of all initializers).
    pub parameters: usize,
    /// `metadata_props` in file order.
    pub metadata: Vec<(String, String)>,
}

impl ModelSummary {
    /// The metadata value of `key`.
    pub fn meta(&self, key: &str) -> Option<&str> {
        self.metadata
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Reads back inputs, outputs, opset and metadata of an ONNX file's bytes.
pub fn describe(bytes: &[u8]) -> Result<ModelSummary, ExportError> {
    use proto::tensor_shape_proto::dimension::Value as D;
    let m = ModelProto::decode(bytes)?;
    let graph = m.graph.unwrap_or_default();
    let init: std::collections::HashSet<&str> = graph
        .initializer
        .iter()
        .filter_map(|t| t.name.as_deref())
        .collect();
    let values = |v: &[proto::ValueInfoProto], skip_init: bool| {
        v.iter()
            .filter(|vi| !(skip_init && init.contains(vi.name.as_deref().unwrap_or(""))))
            .map(|vi| {
                let dims = match vi.r#type.as_ref().and_then(|t| t.value.as_ref()) {
                    Some(type_proto::Value::TensorType(t)) => t
                        .shape
                        .as_ref()
                        .map(|s| {
                            s.dim
                                .iter()
                                .map(|d| match &d.value {
                                    Some(D::DimValue(n)) => Dim::Fixed((*n).max(0) as usize),
                                    Some(D::DimParam(p)) => Dim::Symbol(p.clone()),
                                    None => Dim::sym("?"),
                                })
                                .collect()
                        })
                        .unwrap_or_default(),
                    None => Vec::new(),
                };
                ValueSummary {
                    name: vi.name.clone().unwrap_or_default(),
                    dims,
                }
            })
            .collect::<Vec<_>>()
    };
    let inputs = values(&graph.input, true);
    let outputs = values(&graph.output, false);
    let parameters = graph
        .initializer
        .iter()
        .map(|t| t.dims.iter().map(|&d| d.max(0) as usize).product::<usize>())
        .sum();
    Ok(ModelSummary {
        ir_version: m.ir_version.unwrap_or(0),
        opset: m
            .opset_import
            .iter()
            .find(|o| o.domain.as_deref().unwrap_or("").is_empty())
            .and_then(|o| o.version)
            .unwrap_or(0),
        producer: m.producer_name.unwrap_or_default(),
        inputs,
        outputs,
        nodes: graph.node.len(),
        parameters,
        metadata: m
            .metadata_props
            .into_iter()
            .map(|e| (e.key.unwrap_or_default(), e.value.unwrap_or_default()))
            .collect(),
    })
}

fn check_labels(classes: usize, names: &[String]) -> Result<(), ExportError> {
    if names.len() != classes {
        return Err(ExportError::LabelCount {
            classes,
            labels: names.len(),
        });
    }
    Ok(())
}

/// Exports YOLOv8-seg weights (Ultralytics state-dict names, batch norms separate or already
/// folded, e.g. `YoloV8Seg::to_tensor_map()` or a checkpoint's tensors) of architecture
/// `config` with class `names` (one per class) as an ONNX file's bytes.
pub fn export_segmenter(
    weights: &TensorMap,
    config: &YoloV8SegConfig,
    names: &[String],
    opts: &ExportOptions,
) -> Result<Vec<u8>, ExportError> {
    opts.validate()?;
    check_labels(config.num_classes, names)?;
    let [h, w] = opts
        .imgsz
        .unwrap_or([DEFAULT_DETECTOR_IMGSZ, DEFAULT_DETECTOR_IMGSZ]);
    if h == 0 || w == 0 || h % 32 != 0 || w % 32 != 0 {
        return Err(ExportError::InvalidOption(format!(
            "detector image size {h}×{w}: both sides must be positive multiples of the stride 32"
        )));
    }
    let geo = yolo::InputGeometry {
        fixed: (!opts.dynamic).then_some((opts.batch, h, w)),
    };
    let g = yolo::build(Weights::new(weights), config, &geo)?;
    let scale = config.scale.unwrap_or('n');
    let description = opts
        .description
        .clone()
        .unwrap_or_else(|| format!("Ultralytics YOLOv8{scale}-seg model "));
    let args = format!(
        "{{'batch': {}, 'data': None, 'fraction': 1.0, 'quantize': None, 'nms': None, \
         'dynamic': {}, 'simplify': True, 'opset': {}}}",
        opts.batch,
        metadata::py_bool(opts.dynamic),
        opts.opset
    );
    let meta: Vec<(String, String)> = [
        ("description", description),
        ("author", "Sightline".to_string()),
        ("date", metadata::iso_now()),
        ("version", ULTRALYTICS_VERSION.to_string()),
        (
            "license",
            "AGPL-3.0 License (https://ultralytics.com/license)".to_string(),
        ),
        ("docs", "https://docs.ultralytics.com".to_string()),
        ("stride", "32".to_string()),
        ("task", "segment".to_string()),
        ("head", "Segment".to_string()),
        ("batch", opts.batch.to_string()),
        ("imgsz", metadata::py_int_list(&[h, w])),
        ("names", metadata::py_names_dict(names)),
        ("args", args),
        ("channels", "3".to_string()),
        ("end2end", "False".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let model = graph::model(g.finish("main_graph"), opts.opset, &meta);
    Ok(model.encode_to_vec())
}

/// Exports MobileNetV3 weights (torchvision state-dict names, e.g. a `.pth` state dict or
/// `MobileNetV3::to_tensor_map()`) of architecture `config` with class `names` as an ONNX
/// file's bytes.
pub fn export_classifier(
    weights: &TensorMap,
    config: &MobileNetV3Config,
    names: &[String],
    opts: &ExportOptions,
) -> Result<Vec<u8>, ExportError> {
    opts.validate()?;
    check_labels(config.num_classes, names)?;
    let [h, w] = opts
        .imgsz
        .unwrap_or([DEFAULT_CLASSIFIER_IMGSZ, DEFAULT_CLASSIFIER_IMGSZ]);
    if h < 32 || w < 32 {
        return Err(ExportError::InvalidOption(format!(
            "classifier image size {h}×{w}: both sides must be at least 32"
        )));
    }
    let fixed = (!opts.dynamic).then_some((opts.batch, h, w));
    let g = mobilenet::build(Weights::new(weights), config, fixed)?;
    let pre = opts
        .preprocess
        .clone()
        .unwrap_or_else(|| sightline_vision::imgsz::classify_preprocess(h));
    // f32 → the f64 of its shortest decimal form, so JSON says 0.485 and not 0.48500001…
    let short = |v: &[f32; 3]| v.map(|x| x.to_string().parse::<f64>().unwrap_or(f64::from(x)));
    let preprocess = serde_json::json!({
        "resize": pre.resize,
        "crop": pre.crop,
        "mean": short(&pre.mean),
        "std": short(&pre.std),
        "interpolation": "bilinear",
        "scale": "1/255",
        "color": "RGB",
        "layout": "NCHW",
    });
    let variant = config.variant.name();
    let meta: Vec<(String, String)> = [
        (
            "description",
            opts.description
                .clone()
                .unwrap_or_else(|| format!("torchvision {variant} classifier")),
        ),
        ("author", "Sightline".to_string()),
        ("date", metadata::iso_now()),
        ("version", env!("CARGO_PKG_VERSION").to_string()),
        ("task", "classify".to_string()),
        ("model", variant.to_string()),
        ("batch", opts.batch.to_string()),
        ("dynamic", opts.dynamic.to_string()),
        ("imgsz", serde_json::json!([h, w]).to_string()),
        ("names", serde_json::json!(names).to_string()),
        ("preprocess", preprocess.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let model = graph::model(g.finish("main_graph"), opts.opset, &meta);
    Ok(model.encode_to_vec())
}

/// The checkpoint's own training image size (letterbox long side / classifier crop): an
/// Ultralytics `.pt`'s `train_args["imgsz"]` or the `train_args` our trainer records, by the
/// rule every command follows ([`sightline_vision::imgsz::checkpoint_imgsz`]); `None` when the
/// checkpoint records none or something that is not a size (that function reports the latter).
pub fn checkpoint_imgsz(ckpt: &Checkpoint) -> Option<usize> {
    sightline_vision::imgsz::checkpoint_imgsz(&ckpt.meta)
        .ok()
        .flatten()
}

/// An export of a checkpoint.
#[derive(Debug, Clone)]
pub struct Exported {
    /// The ONNX file's bytes.
    pub bytes: Vec<u8>,
    /// Detector or classifier.
    pub task: Task,
    /// `(height, width)` used (static shapes) or recorded (dynamic).
    pub imgsz: [usize; 2],
    /// Class names written into the metadata.
    pub names: Vec<String>,
}

/// Reads a checkpoint file of any kind we load (Ultralytics `.pt`, torchvision `.pth`,
/// safetensors, Burnpack `.bpk`) and exports it ([`export_loaded_checkpoint`]).
pub fn export_checkpoint(
    path: &Path,
    labels: Option<Vec<String>>,
    opts: &ExportOptions,
) -> Result<Exported, ExportError> {
    let ckpt = read_checkpoint(path).map_err(|source| ExportError::ReadCheckpoint {
        path: path.to_path_buf(),
        source,
    })?;
    export_loaded_checkpoint(ckpt, labels, opts)
}

/// Exports a checkpoint already read. The task and architecture are recognised from it; class
/// names are `labels` (one per class), else the checkpoint's own, else `class0`, `class1`, …;
/// the image size is `opts.imgsz`, else [`checkpoint_imgsz`], else 640 (detector) / 224
/// (classifier).
pub fn export_loaded_checkpoint(
    ckpt: Checkpoint,
    labels: Option<Vec<String>>,
    opts: &ExportOptions,
) -> Result<Exported, ExportError> {
    let path = ckpt.path.clone();
    let task = task_of(&ckpt).ok_or_else(|| ExportError::UnknownTask { path: path.clone() })?;
    let own = match opts.imgsz {
        Some(_) => None,
        None => sightline_vision::imgsz::checkpoint_imgsz(&ckpt.meta).map_err(|source| {
            ExportError::CheckpointImgsz {
                path: path.clone(),
                source,
            }
        })?,
    };
    let stored = ckpt.meta.names.clone();
    let description = opts
        .description
        .clone()
        .or_else(|| (task == Task::Segment).then(|| ultralytics_description(&ckpt))?);
    let weights = into_tensor_map(ckpt);
    let names_for = |classes: usize| -> Result<Vec<String>, ExportError> {
        match (&labels, &stored) {
            (Some(l), _) => {
                check_labels(classes, l)?;
                Ok(l.clone())
            }
            (None, Some(n)) if n.len() == classes => Ok(n.clone()),
            _ => Ok((0..classes).map(|i| format!("class{i}")).collect()),
        }
    };
    let mut opts = ExportOptions {
        description,
        ..opts.clone()
    };
    match task {
        Task::Segment => {
            let config =
                YoloV8SegConfig::infer(&weights).map_err(|source| ExportError::Architecture {
                    path: path.clone(),
                    source,
                })?;
            let names = names_for(config.num_classes)?;
            // a recorded size is rounded up to the stride, as Ultralytics' `check_imgsz`
            let s = own.map_or(DEFAULT_DETECTOR_IMGSZ, |s| s.div_ceil(32) * 32);
            let imgsz = opts.imgsz.unwrap_or([s, s]);
            opts.imgsz = Some(imgsz);
            let bytes = export_segmenter(&weights, &config, &names, &opts)?;
            Ok(Exported {
                bytes,
                task,
                imgsz,
                names,
            })
        }
        Task::Classify => {
            let config =
                MobileNetV3Config::infer(&weights).map_err(|source| ExportError::Architecture {
                    path: path.clone(),
                    source,
                })?;
            let names = names_for(config.num_classes)?;
            let s = own.unwrap_or(DEFAULT_CLASSIFIER_IMGSZ);
            let imgsz = opts.imgsz.unwrap_or([s, s]);
            opts.imgsz = Some(imgsz);
            let bytes = export_classifier(&weights, &config, &names, &opts)?;
            Ok(Exported {
                bytes,
                task,
                imgsz,
                names,
            })
        }
    }
}

/// Ultralytics' `description`: `Ultralytics <YAML stem with yolo → YOLO> model trained on
/// <data>` (with the trailing space when there is no data), from an Ultralytics checkpoint's
/// model YAML and training arguments; `None` when the checkpoint does not say.
fn ultralytics_description(ckpt: &Checkpoint) -> Option<String> {
    let yaml_file = ckpt
        .meta
        .yaml
        .as_ref()
        .and_then(|y| y.get("yaml_file"))
        .and_then(|v| v.as_str())?;
    let stem = Path::new(yaml_file)
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or(yaml_file);
    let pretty = stem.replace("yolo", "YOLO");
    let data = ckpt
        .meta
        .train_args
        .as_ref()
        .and_then(|a| a.get("data"))
        .and_then(|v| v.as_str())
        .unwrap_or("");
    let trained = if data.is_empty() {
        String::new()
    } else {
        format!("trained on {data}")
    };
    Some(format!("Ultralytics {pretty} model {trained}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_are_validated() {
        let bad = ExportOptions {
            opset: 11,
            ..ExportOptions::default()
        };
        assert!(matches!(bad.validate(), Err(ExportError::InvalidOption(_))));
        let bad = ExportOptions {
            batch: 0,
            ..ExportOptions::default()
        };
        assert!(bad.validate().is_err());
        assert!(ExportOptions::fixed(256).validate().is_ok());
    }
}
