//! Errors of the evaluation workflow: one variant per step that can fail, each keeping its cause
//! as a `#[source]`.

use std::path::PathBuf;

use sightline_datasets::DatasetError;
use sightline_eval::EvalError;
use sightline_mask::MaskError;
use sightline_registry::RegistryError;
use sightline_report::ReportError;
use sightline_vision::VisionError;

/// Why an evaluation failed.
#[derive(Debug, thiserror::Error)]
pub enum EvaluateError {
    /// No batch size.
    #[error("batch must be at least 1")]
    ZeroBatch,
    /// The checkpoint file is not there.
    #[error("checkpoint {} does not exist", .0.display())]
    CheckpointMissing(PathBuf),
    /// Neither the checkpoint nor the manifest tells the task.
    #[error(
        "cannot tell whether {} is a detector or a classifier: pass --task detect|classify",
        .0.display()
    )]
    UnknownTask(PathBuf),
    /// The checkpoint could not be hashed.
    #[error("cannot hash {}", path.display())]
    Hash {
        /// The checkpoint.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The split name is not train, val or test.
    #[error("unknown split {0:?} (train, val or test)")]
    UnknownSplit(String),
    /// The data has no image of the split.
    #[error("{data} has no {split} images (splits present: {present})")]
    NoSplitImages {
        /// Where the data came from.
        data: String,
        /// The split asked for.
        split: String,
        /// The splits there are.
        present: String,
    },
    /// An annotated image has no file.
    #[error("{data}: image {file} has no stored file")]
    MissingImage {
        /// Where the data came from.
        data: String,
        /// The image.
        file: String,
    },
    /// The data folder could not be read.
    #[error("reading {} as {format}", path.display())]
    ReadData {
        /// The folder.
        path: PathBuf,
        /// Its detected format.
        format: String,
        /// Why.
        #[source]
        source: DatasetError,
    },
    /// The project name cannot be a folder name.
    #[error("invalid project name {project:?}")]
    ProjectName {
        /// The name.
        project: String,
        /// Why.
        #[source]
        source: DatasetError,
    },
    /// The dataset version could not be found.
    #[error(
        "dataset version {want:?} of project {project} (ingest one with `sightline dataset ingest`, or pass --data)"
    )]
    DatasetVersion {
        /// Id, prefix or `latest`.
        want: String,
        /// The project.
        project: String,
        /// Why.
        #[source]
        source: DatasetError,
    },
    /// Reading the data failed.
    #[error(transparent)]
    Dataset(#[from] DatasetError),
    /// The manifest has no model of the task.
    #[error("the manifest of {project} has no {model} model")]
    NoModel {
        /// The project.
        project: String,
        /// `detector` or `classifier`.
        model: &'static str,
    },
    /// No data to evaluate on.
    #[error("no evaluation data")]
    NoData,
    /// The checkpoint could not be loaded.
    #[error("{what} {}", path.display())]
    Checkpoint {
        /// `loading` or `cannot load classifier`.
        what: &'static str,
        /// The checkpoint.
        path: PathBuf,
        /// Why.
        #[source]
        source: Box<VisionError>,
    },
    /// The image size could not be resolved.
    #[error("image size of {}", path.display())]
    Imgsz {
        /// The checkpoint.
        path: PathBuf,
        /// Why.
        #[source]
        source: Box<VisionError>,
    },
    /// A zero classifier crop.
    #[error("--imgsz must be positive")]
    ZeroImgsz,
    /// The model could not be put on ONNX Runtime.
    #[error("running the model on ONNX Runtime (--runtime burn avoids it)")]
    Onnx(#[source] sightline_onnx::attach::AttachError),
    /// Detector classes that are not project labels.
    #[error(
        "{foreign} of the checkpoint's {classes} classes are not labels of project {project} ({labels:?}): {shown:?}{more}; \
         pass --labels with one project label per checkpoint class, in class-id order"
    )]
    ForeignClasses {
        /// How many are not labels.
        foreign: usize,
        /// Classes of the checkpoint.
        classes: usize,
        /// The project.
        project: String,
        /// Its labels.
        labels: Vec<String>,
        /// The first ten foreign classes.
        shown: Vec<String>,
        /// ` …` when there are more.
        more: &'static str,
    },
    /// An image could not be read.
    #[error("reading {what}")]
    ReadImage {
        /// The image.
        what: String,
        /// Why.
        #[source]
        source: Box<VisionError>,
    },
    /// An image's size disagrees with its annotations.
    #[error(
        "{file}: the image is {width}×{height} but its annotations say {ann_width}×{ann_height}"
    )]
    ImageSize {
        /// The image.
        file: String,
        /// Decoded width.
        width: u32,
        /// Decoded height.
        height: u32,
        /// Annotated width.
        ann_width: u32,
        /// Annotated height.
        ann_height: u32,
    },
    /// A ground-truth mask's size disagrees with its image.
    #[error("{file}: object {label:?}: mask is {mask_width}×{mask_height}, image {width}×{height}")]
    MaskSize {
        /// The image.
        file: String,
        /// The object's label.
        label: String,
        /// Mask width.
        mask_width: u32,
        /// Mask height.
        mask_height: u32,
        /// Image width.
        width: u32,
        /// Image height.
        height: u32,
    },
    /// A ground-truth object without geometry.
    #[error("{file}: object {label:?}: neither a mask nor a box")]
    NoGeometry {
        /// The image.
        file: String,
        /// The object's label.
        label: String,
    },
    /// Mask geometry failed.
    #[error(transparent)]
    Mask(#[from] MaskError),
    /// The segmenter failed.
    #[error("segmenter inference")]
    SegmentInference(#[source] Box<VisionError>),
    /// The classifier failed.
    #[error("classifier inference failed")]
    ClassifyInference(#[source] Box<VisionError>),
    /// Another model step failed.
    #[error(transparent)]
    Vision(Box<VisionError>),
    /// No classifier image under a data folder.
    #[error("no images found under {} in folders named after the labels {labels:?}", dir.display())]
    NoClassImages {
        /// The folder.
        dir: PathBuf,
        /// The labels looked for.
        labels: Vec<String>,
    },
    /// No image of the split has a project label.
    #[error("{data}: no {split} image has an image-level label among {labels:?}")]
    NoLabelledImages {
        /// Where the data came from.
        data: String,
        /// The split.
        split: String,
        /// The labels looked for.
        labels: Vec<String>,
    },
    /// A metric failed.
    #[error(transparent)]
    Metrics(#[from] EvalError),
    /// A gallery thumbnail could not be encoded.
    #[error("encoding a gallery thumbnail")]
    Thumbnail(#[source] sightline_vision::image::ImageError),
    /// The report could not be written.
    #[error(transparent)]
    Report(#[from] ReportError),
    /// The written report could not be read back.
    #[error("re-reading {}", path.display())]
    ReReadReport {
        /// `report.json`.
        path: PathBuf,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// The report folder name is not a valid store key.
    #[error(transparent)]
    Key(#[from] sightline_store::KeyError),
    /// File-system error (the message names the path).
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// JSON (de)serialisation error.
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    /// The registered model versions could not be listed.
    #[error("listing registered model versions")]
    ListModels(#[source] RegistryError),
    /// The evaluation could not be recorded.
    #[error("recording the evaluation in the database")]
    Record(#[source] RegistryError),
}

impl From<VisionError> for EvaluateError {
    fn from(e: VisionError) -> Self {
        EvaluateError::Vision(Box::new(e))
    }
}
