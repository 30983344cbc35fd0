//! Project manifests: the YAML files in `models/configs/` that configure a project's labels, its
//! detector and classifier, and its business rules.
//!
//! The schema follows the product seed exactly:
//!
//! ```yaml
//! project: widget_line_a
//! labels: [ok, ng, scratch, dent]
//! models:
//!   detector:
//!     name: yolov8-seg            # or yolov8{n,s,m,l,x}-seg
//!     weights: pretrained/yolov8s-seg.pt
//!     hyperparameters: {epochs: 100, batch_size: 16}
//!   classifier:
//!     name: mobilenet_v3_small    # or mobilenet_v3_large
//!     weights: imagenet           # a path, `imagenet`, `none`, or absent
//!     hyperparameters: {epochs: 50, batch_size: 64}
//!   business_rules:               # also accepted at the top level (not both)
//!     max_ng_ratio: 0.1
//!     allow_unknown: false
//! ```
//!
//! Each model may also carry `thresholds: {label: confidence}` (per-class operating points,
//! default [`DEFAULT_THRESHOLD`]). Every hyperparameter is optional; defaults are documented on
//! [`Hyperparameters::detector_defaults`] (Ultralytics `default.yaml`) and
//! [`Hyperparameters::classifier_defaults`] (torchvision's classification reference `train.py`).
//!
//! `yolov8-seg` without a scale letter is accepted (the seed writes it that way): the scale then
//! comes from the starting checkpoint when it has one, and is `n` otherwise — see
//! [`ModelName::resolve_scale`].
//!
//! Parsing stops at the first structural problem (YAML syntax, unknown key, wrong type); once the
//! structure is right, every semantic problem is reported at once. Each message names the file,
//! line and column.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_saphyr::Spanned;

use crate::diagnostics::{Diagnostic, Diagnostics, Position};

/// Confidence threshold of a label that the manifest does not list under `thresholds`.
pub const DEFAULT_THRESHOLD: f64 = 0.25;

/// What a model does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Task {
    /// Instance segmentation (YOLOv8-seg): the manifest's `detector`.
    Segment,
    /// Image classification (MobileNetV3): the manifest's `classifier`.
    Classify,
}

impl Task {
    /// Stable lowercase name (`segment`, `classify`), as stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Task::Segment => "segment",
            Task::Classify => "classify",
        }
    }
}

impl fmt::Display for Task {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Task {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "segment" | "detector" => Ok(Task::Segment),
            "classify" | "classifier" => Ok(Task::Classify),
            other => Err(format!(
                "unknown task `{other}`; expected `segment` or `classify`"
            )),
        }
    }
}

/// YOLOv8 scale: depth/width multiples of the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum YoloScale {
    /// nano
    N,
    /// small
    S,
    /// medium
    M,
    /// large
    L,
    /// extra large
    X,
}

impl YoloScale {
    /// All scales, smallest first.
    pub const ALL: [YoloScale; 5] = [
        YoloScale::N,
        YoloScale::S,
        YoloScale::M,
        YoloScale::L,
        YoloScale::X,
    ];

    /// The scale letter.
    pub fn letter(self) -> char {
        match self {
            YoloScale::N => 'n',
            YoloScale::S => 's',
            YoloScale::M => 'm',
            YoloScale::L => 'l',
            YoloScale::X => 'x',
        }
    }

    /// Parse a scale letter (`n`, `s`, `m`, `l`, `x`).
    pub fn from_letter(c: char) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.letter() == c)
    }
}

/// A supported model architecture, as named in a manifest's `name:`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ModelName {
    /// `yolov8{n,s,m,l,x}-seg`, or `yolov8-seg` (scale `None`: see [`ModelName::resolve_scale`]).
    Yolov8Seg(Option<YoloScale>),
    /// torchvision `mobilenet_v3_small`.
    MobileNetV3Small,
    /// torchvision `mobilenet_v3_large`.
    MobileNetV3Large,
}

impl ModelName {
    /// Every accepted spelling, for messages.
    pub const SUPPORTED: &'static str = "yolov8n-seg, yolov8s-seg, yolov8m-seg, yolov8l-seg, \
         yolov8x-seg, yolov8-seg, mobilenet_v3_small, mobilenet_v3_large";

    /// What the architecture does.
    pub fn task(self) -> Task {
        match self {
            ModelName::Yolov8Seg(_) => Task::Segment,
            ModelName::MobileNetV3Small | ModelName::MobileNetV3Large => Task::Classify,
        }
    }

    /// The YOLOv8 scale to build: the one in the name when given, else the scale recorded in the
    /// starting checkpoint (`checkpoint_scale`, read by the vision crate), else `n`.
    /// `None` for classifiers.
    pub fn resolve_scale(self, checkpoint_scale: Option<YoloScale>) -> Option<YoloScale> {
        match self {
            ModelName::Yolov8Seg(scale) => Some(scale.or(checkpoint_scale).unwrap_or(YoloScale::N)),
            _ => None,
        }
    }
}

impl fmt::Display for ModelName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ModelName::Yolov8Seg(Some(s)) => write!(f, "yolov8{}-seg", s.letter()),
            ModelName::Yolov8Seg(None) => f.write_str("yolov8-seg"),
            ModelName::MobileNetV3Small => f.write_str("mobilenet_v3_small"),
            ModelName::MobileNetV3Large => f.write_str("mobilenet_v3_large"),
        }
    }
}

impl FromStr for ModelName {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "yolov8-seg" => return Ok(ModelName::Yolov8Seg(None)),
            "mobilenet_v3_small" => return Ok(ModelName::MobileNetV3Small),
            "mobilenet_v3_large" => return Ok(ModelName::MobileNetV3Large),
            _ => {}
        }
        if let Some(rest) = s
            .strip_prefix("yolov8")
            .and_then(|r| r.strip_suffix("-seg"))
        {
            let mut chars = rest.chars();
            if let (Some(c), None) = (chars.next(), chars.next())
                && let Some(scale) = YoloScale::from_letter(c)
            {
                return Ok(ModelName::Yolov8Seg(Some(scale)));
            }
        }
        Err(format!(
            "unknown model name `{s}`; supported: {}",
            ModelName::SUPPORTED
        ))
    }
}

impl Serialize for ModelName {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ModelName {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Starting weights of a model.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Weights {
    /// `none` or absent: train from scratch.
    None,
    /// `imagenet`: torchvision's ImageNet weights (classifier only), taken from the configured
    /// weights folder — nothing is downloaded.
    ImageNet,
    /// A checkpoint file (Ultralytics `.pt`, torchvision `.pth`, safetensors or a Sightline
    /// checkpoint), as written in the manifest.
    Path(PathBuf),
}

impl Weights {
    /// A relative path is looked up against `cwd` first (the seed runs its scripts from the
    /// repository root), then against the manifest's folder; the first that exists wins, else
    /// the `cwd`-relative path is returned so that the error names it. `None` unless `Path`.
    pub fn resolve_path(&self, cwd: &Path, manifest_dir: Option<&Path>) -> Option<PathBuf> {
        let Weights::Path(p) = self else { return None };
        if p.is_absolute() {
            return Some(p.clone());
        }
        let from_cwd = cwd.join(p);
        if from_cwd.exists() {
            return Some(from_cwd);
        }
        if let Some(dir) = manifest_dir {
            let from_manifest = dir.join(p);
            if from_manifest.exists() {
                return Some(from_manifest);
            }
        }
        Some(from_cwd)
    }
}

impl fmt::Display for Weights {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Weights::None => f.write_str("none"),
            Weights::ImageNet => f.write_str("imagenet"),
            Weights::Path(p) => write!(f, "{}", p.display()),
        }
    }
}

impl Serialize for Weights {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Weights {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        Ok(parse_weights(&s))
    }
}

fn parse_weights(s: &str) -> Weights {
    match s {
        "none" => Weights::None,
        "imagenet" => Weights::ImageNet,
        p => Weights::Path(PathBuf::from(p)),
    }
}

/// Optimizer choice (`auto` lets the trainer pick, as Ultralytics does).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Optimizer {
    /// The trainer's documented automatic choice.
    Auto,
    /// SGD with (Nesterov) momentum.
    Sgd,
    /// AdamW.
    Adamw,
}

impl FromStr for Optimizer {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(Optimizer::Auto),
            "sgd" => Ok(Optimizer::Sgd),
            "adamw" => Ok(Optimizer::Adamw),
            _ => Err(format!(
                "unknown optimizer `{s}`; expected one of auto, sgd, adamw"
            )),
        }
    }
}

/// Data augmentation settings. Probabilities are in [0, 1]; names follow Ultralytics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Augmentation {
    /// Hue jitter, fraction of the hue circle.
    pub hsv_h: f64,
    /// Saturation jitter, fraction.
    pub hsv_s: f64,
    /// Value (brightness) jitter, fraction.
    pub hsv_v: f64,
    /// Random rotation, ± degrees.
    pub degrees: f64,
    /// Random translation, ± fraction of the image size.
    pub translate: f64,
    /// Random scale gain, ± fraction.
    pub scale: f64,
    /// Random shear, ± degrees.
    pub shear: f64,
    /// Random perspective, fraction (0 to 0.001).
    pub perspective: f64,
    /// Vertical flip probability.
    pub flipud: f64,
    /// Horizontal flip probability.
    pub fliplr: f64,
    /// Mosaic probability (detector).
    pub mosaic: f64,
    /// MixUp probability (detector).
    pub mixup: f64,
    /// Copy-paste probability (segmentation).
    pub copy_paste: f64,
    /// Turn mosaic off for the last N epochs (detector).
    pub close_mosaic: u32,
    /// Lower bound of RandomResizedCrop's area fraction (classifier).
    pub crop_scale_min: f64,
    /// Random erasing probability (classifier).
    pub erasing: f64,
}

/// Training hyperparameters, fully resolved (every field has a value).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hyperparameters {
    /// Number of training epochs.
    pub epochs: u32,
    /// Images per batch.
    pub batch_size: u32,
    /// Input size in pixels (the letterbox side for the detector, the crop side for the classifier).
    pub imgsz: u32,
    /// Initial learning rate.
    pub lr0: f64,
    /// Final learning rate as a fraction of `lr0`.
    pub lrf: f64,
    /// Optimizer.
    pub optimizer: Optimizer,
    /// SGD momentum / Adam beta1.
    pub momentum: f64,
    /// Weight decay (not applied to batch-norm weights and biases).
    pub weight_decay: f64,
    /// Early stopping: epochs without improvement before stopping; 0 disables it.
    pub patience: u32,
    /// Random seed for data order, augmentation and initialisation.
    pub seed: u64,
    /// Warm-up length in epochs (fractions allowed); 0 disables warm-up.
    pub warmup_epochs: f64,
    /// Label smoothing for the classification loss.
    pub label_smoothing: f64,
    /// Data augmentation.
    pub augmentation: Augmentation,
}

impl Hyperparameters {
    /// Detector defaults, from Ultralytics `cfg/default.yaml`: epochs 100, batch 16, imgsz 640,
    /// lr0 0.01, lrf 0.01, optimizer auto, momentum 0.937, weight_decay 0.0005, patience 100,
    /// seed 0, warmup_epochs 3, label_smoothing 0; augmentation hsv 0.015/0.7/0.4, degrees 0,
    /// translate 0.1, scale 0.5, shear 0, perspective 0, flipud 0, fliplr 0.5, mosaic 1,
    /// mixup 0, copy_paste 0, close_mosaic 10 (crop_scale_min 0.08 and erasing 0 are unused).
    pub fn detector_defaults() -> Self {
        Self {
            epochs: 100,
            batch_size: 16,
            imgsz: 640,
            lr0: 0.01,
            lrf: 0.01,
            optimizer: Optimizer::Auto,
            momentum: 0.937,
            weight_decay: 0.0005,
            patience: 100,
            seed: 0,
            warmup_epochs: 3.0,
            label_smoothing: 0.0,
            augmentation: Augmentation {
                hsv_h: 0.015,
                hsv_s: 0.7,
                hsv_v: 0.4,
                degrees: 0.0,
                translate: 0.1,
                scale: 0.5,
                shear: 0.0,
                perspective: 0.0,
                flipud: 0.0,
                fliplr: 0.5,
                mosaic: 1.0,
                mixup: 0.0,
                copy_paste: 0.0,
                close_mosaic: 10,
                crop_scale_min: 0.08,
                erasing: 0.0,
            },
        }
    }

    /// Classifier defaults, in the style of torchvision's classification reference `train.py`:
    /// epochs 90, batch 32, imgsz 224 (RandomResizedCrop 224, scale 0.08–1), SGD lr0 0.1 with
    /// momentum 0.9 and weight_decay 1e-4, cosine decay to lrf 0 (fraction of lr0), no warm-up,
    /// label_smoothing 0, patience 0 (no early stopping), seed 0; horizontal flip 0.5, colour
    /// jitter hsv 0/0.4/0.4, no erasing; geometric and mosaic augmentations off.
    pub fn classifier_defaults() -> Self {
        Self {
            epochs: 90,
            batch_size: 32,
            imgsz: 224,
            lr0: 0.1,
            lrf: 0.0,
            optimizer: Optimizer::Sgd,
            momentum: 0.9,
            weight_decay: 1e-4,
            patience: 0,
            seed: 0,
            warmup_epochs: 0.0,
            label_smoothing: 0.0,
            augmentation: Augmentation {
                hsv_h: 0.0,
                hsv_s: 0.4,
                hsv_v: 0.4,
                degrees: 0.0,
                translate: 0.0,
                scale: 0.0,
                shear: 0.0,
                perspective: 0.0,
                flipud: 0.0,
                fliplr: 0.5,
                mosaic: 0.0,
                mixup: 0.0,
                copy_paste: 0.0,
                close_mosaic: 0,
                crop_scale_min: 0.08,
                erasing: 0.0,
            },
        }
    }

    /// The defaults for a task.
    pub fn defaults_for(task: Task) -> Self {
        match task {
            Task::Segment => Self::detector_defaults(),
            Task::Classify => Self::classifier_defaults(),
        }
    }
}

/// Per-label confidence thresholds (the operating point).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Thresholds(pub BTreeMap<String, f64>);

impl Thresholds {
    /// The threshold of `label`: the manifest's value, else [`DEFAULT_THRESHOLD`].
    pub fn for_label(&self, label: &str) -> f64 {
        self.0.get(label).copied().unwrap_or(DEFAULT_THRESHOLD)
    }
}

/// One model of a project (the detector or the classifier).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    /// Architecture.
    pub name: ModelName,
    /// Starting weights.
    pub weights: Weights,
    /// Resolved hyperparameters (manifest values over the task's defaults).
    pub hyperparameters: Hyperparameters,
    /// Per-label confidence thresholds.
    pub thresholds: Thresholds,
}

/// Rules that decide whether a model's behaviour is acceptable in production.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct BusinessRules {
    /// Highest acceptable fraction of NG verdicts, in [0, 1]; `None`: no limit.
    pub max_ng_ratio: Option<f64>,
    /// `true`: low-confidence predictions become `unknown`; `false` (default): always a known label.
    pub allow_unknown: bool,
}

/// A validated project manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Project name: 1–64 characters of `A-Z a-z 0-9 _ - .`, starting with a letter or digit.
    pub project: String,
    /// The ordered label set; a label's index is its class id.
    pub labels: Vec<String>,
    /// The segmentation model, if the project has one.
    pub detector: Option<ModelConfig>,
    /// The classification model, if the project has one.
    pub classifier: Option<ModelConfig>,
    /// Business rules (from `models.business_rules` or top-level `business_rules`).
    pub business_rules: BusinessRules,
}

/// Why a manifest could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// The file could not be read.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The file is not a valid manifest.
    #[error("{0}")]
    Invalid(#[from] Diagnostics),
}

impl Manifest {
    /// Read and validate a manifest file. Messages name the file as given.
    pub fn load(path: &Path) -> Result<Self, ManifestError> {
        let text = fs_err::read_to_string(path)?;
        Ok(Self::parse(&text, &path.display().to_string())?)
    }

    /// Validate manifest text; `file` is the name used in messages.
    pub fn parse(text: &str, file: &str) -> Result<Self, Diagnostics> {
        let mut v = Validator {
            file,
            text,
            diags: Vec::new(),
        };
        if text.trim().is_empty() {
            v.push_at(
                Position::START,
                "the file is empty; a manifest needs at least `project` and `labels`",
            );
            return Err(v.finish_err());
        }
        let raw: RawManifest = match serde_saphyr::from_str(text) {
            Ok(raw) => raw,
            Err(err) => {
                v.push_parse_error(&err);
                return Err(v.finish_err());
            }
        };
        let manifest = v.check(raw);
        match manifest {
            Some(m) if v.diags.is_empty() => Ok(m),
            _ => Err(v.finish_err()),
        }
    }

    /// The class id of a label.
    pub fn label_index(&self, label: &str) -> Option<usize> {
        self.labels.iter().position(|l| l == label)
    }

    /// The model configured for a task.
    pub fn model(&self, task: Task) -> Option<&ModelConfig> {
        match task {
            Task::Segment => self.detector.as_ref(),
            Task::Classify => self.classifier.as_ref(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Raw (as written) schema, with source locations.

type S<T> = Spanned<T>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    project: S<String>,
    labels: S<Vec<S<String>>>,
    #[serde(default)]
    models: Option<S<RawModels>>,
    #[serde(default)]
    business_rules: Option<S<RawBusinessRules>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawModels {
    #[serde(default)]
    detector: Option<S<RawModel>>,
    #[serde(default)]
    classifier: Option<S<RawModel>>,
    #[serde(default)]
    business_rules: Option<S<RawBusinessRules>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawModel {
    name: S<String>,
    #[serde(default)]
    weights: Option<S<String>>,
    #[serde(default)]
    hyperparameters: Option<S<RawHyperparameters>>,
    #[serde(default)]
    thresholds: Option<S<BTreeMap<String, S<f64>>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBusinessRules {
    #[serde(default)]
    max_ng_ratio: Option<S<f64>>,
    #[serde(default)]
    allow_unknown: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHyperparameters {
    #[serde(default)]
    epochs: Option<S<u32>>,
    #[serde(default)]
    batch_size: Option<S<u32>>,
    #[serde(default)]
    imgsz: Option<S<u32>>,
    #[serde(default)]
    lr0: Option<S<f64>>,
    #[serde(default)]
    lrf: Option<S<f64>>,
    #[serde(default)]
    optimizer: Option<S<String>>,
    #[serde(default)]
    momentum: Option<S<f64>>,
    #[serde(default)]
    weight_decay: Option<S<f64>>,
    #[serde(default)]
    patience: Option<S<u32>>,
    #[serde(default)]
    seed: Option<S<u64>>,
    #[serde(default)]
    warmup_epochs: Option<S<f64>>,
    #[serde(default)]
    label_smoothing: Option<S<f64>>,
    #[serde(default)]
    augmentation: Option<S<RawAugmentation>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAugmentation {
    #[serde(default)]
    hsv_h: Option<S<f64>>,
    #[serde(default)]
    hsv_s: Option<S<f64>>,
    #[serde(default)]
    hsv_v: Option<S<f64>>,
    #[serde(default)]
    degrees: Option<S<f64>>,
    #[serde(default)]
    translate: Option<S<f64>>,
    #[serde(default)]
    scale: Option<S<f64>>,
    #[serde(default)]
    shear: Option<S<f64>>,
    #[serde(default)]
    perspective: Option<S<f64>>,
    #[serde(default)]
    flipud: Option<S<f64>>,
    #[serde(default)]
    fliplr: Option<S<f64>>,
    #[serde(default)]
    mosaic: Option<S<f64>>,
    #[serde(default)]
    mixup: Option<S<f64>>,
    #[serde(default)]
    copy_paste: Option<S<f64>>,
    #[serde(default)]
    close_mosaic: Option<S<u32>>,
    #[serde(default)]
    crop_scale_min: Option<S<f64>>,
    #[serde(default)]
    erasing: Option<S<f64>>,
}

// ---------------------------------------------------------------------------------------------
// Validation.

fn pos<T>(s: &S<T>) -> Position {
    Position {
        line: s.referenced.line().max(1),
        column: s.referenced.column().max(1),
    }
}

struct Validator<'a> {
    file: &'a str,
    text: &'a str,
    diags: Vec<Diagnostic>,
}

/// Inclusive/exclusive numeric range used for checks.
#[derive(Clone, Copy)]
enum Range {
    /// [lo, hi]
    Closed(f64, f64),
    /// [lo, hi)
    HalfOpen(f64, f64),
    /// (lo, hi]
    OpenClosed(f64, f64),
    /// [lo, ∞)
    AtLeast(f64),
    /// (lo, ∞)
    Above(f64),
}

impl Range {
    fn contains(self, x: f64) -> bool {
        match self {
            Range::Closed(lo, hi) => x >= lo && x <= hi,
            Range::HalfOpen(lo, hi) => x >= lo && x < hi,
            Range::OpenClosed(lo, hi) => x > lo && x <= hi,
            Range::AtLeast(lo) => x >= lo,
            Range::Above(lo) => x > lo,
        }
    }

    fn describe(self) -> String {
        match self {
            Range::Closed(lo, hi) => format!("between {lo} and {hi}"),
            Range::HalfOpen(lo, hi) => format!("at least {lo} and below {hi}"),
            Range::OpenClosed(lo, hi) => format!("above {lo} and at most {hi}"),
            Range::AtLeast(lo) => format!("at least {lo}"),
            Range::Above(lo) => format!("above {lo}"),
        }
    }
}

impl Validator<'_> {
    fn push_at(&mut self, position: Position, message: impl Into<String>) {
        self.diags.push(Diagnostic {
            file: self.file.to_string(),
            position,
            message: message.into(),
        });
    }

    fn push<T>(&mut self, at: &S<T>, message: impl Into<String>) {
        self.push_at(pos(at), message);
    }

    fn finish_err(mut self) -> Diagnostics {
        self.diags.sort_by_key(|d| d.position);
        Diagnostics(self.diags)
    }

    /// The source text of the scalar starting at a position (to the end of the line, without a
    /// trailing comment), for "found `...`" hints.
    fn token_at(&self, p: Position) -> Option<String> {
        let line = self
            .text
            .lines()
            .nth(usize::try_from(p.line).ok()?.checked_sub(1)?)?;
        let col = usize::try_from(p.column).ok()?.checked_sub(1)?;
        let rest: String = line.chars().skip(col).collect();
        let rest = match rest.find(" #") {
            Some(i) => &rest[..i],
            None => rest.as_str(),
        };
        let rest = rest.trim();
        if rest.is_empty() {
            None
        } else {
            let short: String = rest.chars().take(40).collect();
            Some(short)
        }
    }

    fn push_parse_error(&mut self, err: &serde_saphyr::Error) {
        let position = err
            .location()
            .map(|l| Position {
                line: l.line().max(1),
                column: l.column().max(1),
            })
            .unwrap_or(Position::START);
        let raw = err.without_snippet().to_string();
        // The plain rendering ends with " at line L, column C"; the position is reported apart.
        let mut msg = match raw.rfind(" at line ") {
            Some(i) => raw[..i].to_string(),
            None => raw,
        };
        let type_error = |m: &str| -> Option<&'static str> {
            match m {
                "invalid u32" | "invalid u64" | "invalid u8" | "invalid u16" | "invalid i64" => {
                    Some("expected a non-negative integer")
                }
                "invalid f64" | "invalid f32" | "invalid floating point number" => {
                    Some("expected a number")
                }
                "invalid boolean" | "invalid bool" => Some("expected true or false"),
                "expected sequence start" => Some("expected a list"),
                "expected mapping start" => Some("expected a mapping of keys to values"),
                "expected string scalar" => Some("expected a string"),
                _ => None,
            }
        };
        if let Some(better) = type_error(msg.as_str()) {
            msg = match self.token_at(position) {
                Some(tok) => format!("{better}, found `{tok}`"),
                None => better.to_string(),
            };
        } else if msg.starts_with("cannot deserialize null into string") {
            msg = "expected a string, found nothing (null)".to_string();
        } else if let Some(rest) = msg.strip_prefix("duplicate mapping key: ") {
            let key = rest
                .split(", set DuplicateKeyPolicy")
                .next()
                .unwrap_or(rest);
            msg = format!("duplicate key `{key}`");
        } else if let Some(rest) = msg.strip_prefix("unknown field ") {
            msg = format!("unknown key {rest}");
        } else if let Some(rest) = msg.strip_prefix("missing field ") {
            msg = format!("missing required key {rest}");
        }
        self.push_at(position, msg);
    }

    fn check_number(&mut self, v: &Option<S<f64>>, key: &str, range: Range, default: f64) -> f64 {
        match v {
            None => default,
            Some(s) => {
                if !s.value.is_finite() || !range.contains(s.value) {
                    self.push(
                        s,
                        format!("`{key}` must be {}, found {}", range.describe(), s.value),
                    );
                }
                s.value
            }
        }
    }

    fn check_count(&mut self, v: &Option<S<u32>>, key: &str, min: u32, default: u32) -> u32 {
        match v {
            None => default,
            Some(s) => {
                if s.value < min {
                    self.push(
                        s,
                        format!("`{key}` must be at least {min}, found {}", s.value),
                    );
                }
                s.value
            }
        }
    }

    fn check(&mut self, raw: RawManifest) -> Option<Manifest> {
        // project
        let project = raw.project.value.clone();
        if let Err(why) = check_project_name(&project) {
            self.push(&raw.project, why);
        }

        // labels
        let mut labels = Vec::with_capacity(raw.labels.value.len());
        if raw.labels.value.is_empty() {
            self.push(
                &raw.labels,
                "`labels` is empty; a project needs at least one label",
            );
        }
        let mut seen: BTreeMap<String, (String, Position)> = BTreeMap::new();
        for label in &raw.labels.value {
            let name = label.value.as_str();
            if let Err(why) = check_label(name) {
                self.push(label, why);
            } else if let Some((first, at)) = seen.get(&name.to_lowercase()) {
                if first == name {
                    self.push(
                        label,
                        format!(
                            "duplicate label `{name}` (already listed at line {}, column {})",
                            at.line, at.column
                        ),
                    );
                } else {
                    self.push(
                        label,
                        format!(
                            "label `{name}` differs from `{first}` (line {}, column {}) only by letter case; \
                             labels must be distinct ignoring case",
                            at.line, at.column
                        ),
                    );
                }
            } else {
                seen.insert(name.to_lowercase(), (name.to_string(), pos(label)));
            }
            labels.push(name.to_string());
        }

        // models and business rules
        let mut detector = None;
        let mut classifier = None;
        let mut rules_raw: Option<&S<RawBusinessRules>> = raw.business_rules.as_ref();
        match &raw.models {
            None => self.push_at(
                Position::START,
                "missing `models`: a manifest configures a `detector`, a `classifier`, or both",
            ),
            Some(models) => {
                if let (Some(top), Some(inner)) =
                    (&raw.business_rules, &models.value.business_rules)
                {
                    self.push(
                        inner,
                        format!(
                            "`business_rules` is given both here and at the top level (line {}); keep one",
                            pos(top).line
                        ),
                    );
                }
                if rules_raw.is_none() {
                    rules_raw = models.value.business_rules.as_ref();
                }
                if models.value.detector.is_none() && models.value.classifier.is_none() {
                    self.push(
                        models,
                        "`models` has neither a `detector` nor a `classifier`",
                    );
                }
                if let Some(d) = &models.value.detector {
                    detector = self.check_model(d, Task::Segment, &labels);
                }
                if let Some(c) = &models.value.classifier {
                    classifier = self.check_model(c, Task::Classify, &labels);
                }
            }
        }
        let business_rules = match rules_raw {
            None => BusinessRules::default(),
            Some(r) => BusinessRules {
                max_ng_ratio: r.value.max_ng_ratio.as_ref().map(|m| {
                    if !(m.value.is_finite() && (0.0..=1.0).contains(&m.value)) {
                        self.push(
                            m,
                            format!(
                                "`max_ng_ratio` must be between 0 and 1 (a fraction of images), found {}",
                                m.value
                            ),
                        );
                    }
                    m.value
                }),
                allow_unknown: r.value.allow_unknown.unwrap_or(false),
            },
        };

        Some(Manifest {
            project,
            labels,
            detector,
            classifier,
            business_rules,
        })
    }

    fn check_model(
        &mut self,
        raw: &S<RawModel>,
        task: Task,
        labels: &[String],
    ) -> Option<ModelConfig> {
        let role = match task {
            Task::Segment => "detector",
            Task::Classify => "classifier",
        };
        let name = match raw.value.name.value.parse::<ModelName>() {
            Ok(n) if n.task() == task => Some(n),
            Ok(n) => {
                let expected = match task {
                    Task::Segment => "yolov8{n,s,m,l,x}-seg or yolov8-seg",
                    Task::Classify => "mobilenet_v3_small or mobilenet_v3_large",
                };
                self.push(
                    &raw.value.name,
                    format!("`{n}` is not a {role} model; the {role} must be {expected}"),
                );
                None
            }
            Err(why) => {
                let hint = suggest(&raw.value.name.value)
                    .map(|s| format!(" (did you mean `{s}`?)"))
                    .unwrap_or_default();
                self.push(&raw.value.name, format!("{why}{hint}"));
                None
            }
        };

        let weights = match &raw.value.weights {
            None => Weights::None,
            Some(w) => {
                let trimmed = w.value.trim();
                if trimmed.is_empty() {
                    self.push(
                        w,
                        "`weights` is empty; give a checkpoint path, `imagenet`, or `none`",
                    );
                } else if trimmed != w.value {
                    self.push(w, "`weights` has leading or trailing spaces");
                }
                let weights = parse_weights(&w.value);
                if weights == Weights::ImageNet && task == Task::Segment {
                    self.push(
                        w,
                        "`imagenet` weights exist only for the classifier; give the detector a \
                         checkpoint path (e.g. an Ultralytics yolov8s-seg.pt) or `none`",
                    );
                }
                weights
            }
        };

        let hyperparameters = self.check_hyper(raw.value.hyperparameters.as_ref(), task);

        let mut thresholds = BTreeMap::new();
        if let Some(t) = &raw.value.thresholds {
            for (label, value) in &t.value {
                if !labels.iter().any(|l| l == label) {
                    self.push(
                        value,
                        format!(
                            "threshold for unknown label `{label}`; the project's labels are: {}",
                            labels.join(", ")
                        ),
                    );
                }
                if !(value.value.is_finite() && (0.0..=1.0).contains(&value.value)) {
                    self.push(
                        value,
                        format!(
                            "threshold for `{label}` must be between 0 and 1, found {}",
                            value.value
                        ),
                    );
                }
                thresholds.insert(label.clone(), value.value);
            }
        }

        Some(ModelConfig {
            name: name?,
            weights,
            hyperparameters,
            thresholds: Thresholds(thresholds),
        })
    }

    fn check_hyper(&mut self, raw: Option<&S<RawHyperparameters>>, task: Task) -> Hyperparameters {
        let d = Hyperparameters::defaults_for(task);
        let Some(raw) = raw else { return d };
        let h = &raw.value;
        let epochs = self.check_count(&h.epochs, "epochs", 1, d.epochs);
        let batch_size = self.check_count(&h.batch_size, "batch_size", 1, d.batch_size);
        let imgsz = match &h.imgsz {
            None => d.imgsz,
            Some(s) => {
                if task == Task::Segment && (s.value < 32 || s.value % 32 != 0) {
                    self.push(
                        s,
                        format!(
                            "`imgsz` must be a multiple of 32 (the detector's largest stride) and at least 32, found {}",
                            s.value
                        ),
                    );
                } else if s.value < 32 {
                    self.push(s, format!("`imgsz` must be at least 32, found {}", s.value));
                }
                s.value
            }
        };
        let lr0 = self.check_number(&h.lr0, "lr0", Range::Above(0.0), d.lr0);
        let lrf = self.check_number(&h.lrf, "lrf", Range::Closed(0.0, 1.0), d.lrf);
        let optimizer = match &h.optimizer {
            None => d.optimizer,
            Some(s) => match s.value.parse::<Optimizer>() {
                Ok(o) => o,
                Err(why) => {
                    self.push(s, why);
                    d.optimizer
                }
            },
        };
        let momentum = self.check_number(
            &h.momentum,
            "momentum",
            Range::HalfOpen(0.0, 1.0),
            d.momentum,
        );
        let weight_decay = self.check_number(
            &h.weight_decay,
            "weight_decay",
            Range::AtLeast(0.0),
            d.weight_decay,
        );
        let patience = h.patience.as_ref().map_or(d.patience, |p| p.value);
        let seed = h.seed.as_ref().map_or(d.seed, |s| s.value);
        let warmup_epochs = self.check_number(
            &h.warmup_epochs,
            "warmup_epochs",
            Range::AtLeast(0.0),
            d.warmup_epochs,
        );
        let label_smoothing = self.check_number(
            &h.label_smoothing,
            "label_smoothing",
            Range::HalfOpen(0.0, 1.0),
            d.label_smoothing,
        );
        if let Some(w) = &h.warmup_epochs
            && w.value.is_finite()
            && w.value > f64::from(epochs)
        {
            self.push(
                w,
                format!(
                    "`warmup_epochs` ({}) is longer than the run (`epochs`: {epochs})",
                    w.value
                ),
            );
        }
        let augmentation = match &h.augmentation {
            None => d.augmentation,
            Some(a) => self.check_aug(&a.value, d.augmentation),
        };
        Hyperparameters {
            epochs,
            batch_size,
            imgsz,
            lr0,
            lrf,
            optimizer,
            momentum,
            weight_decay,
            patience,
            seed,
            warmup_epochs,
            label_smoothing,
            augmentation,
        }
    }

    fn check_aug(&mut self, a: &RawAugmentation, d: Augmentation) -> Augmentation {
        let p = Range::Closed(0.0, 1.0);
        Augmentation {
            hsv_h: self.check_number(&a.hsv_h, "hsv_h", p, d.hsv_h),
            hsv_s: self.check_number(&a.hsv_s, "hsv_s", p, d.hsv_s),
            hsv_v: self.check_number(&a.hsv_v, "hsv_v", p, d.hsv_v),
            degrees: self.check_number(&a.degrees, "degrees", Range::Closed(0.0, 180.0), d.degrees),
            translate: self.check_number(&a.translate, "translate", p, d.translate),
            scale: self.check_number(&a.scale, "scale", p, d.scale),
            shear: self.check_number(&a.shear, "shear", Range::Closed(0.0, 90.0), d.shear),
            perspective: self.check_number(
                &a.perspective,
                "perspective",
                Range::Closed(0.0, 0.001),
                d.perspective,
            ),
            flipud: self.check_number(&a.flipud, "flipud", p, d.flipud),
            fliplr: self.check_number(&a.fliplr, "fliplr", p, d.fliplr),
            mosaic: self.check_number(&a.mosaic, "mosaic", p, d.mosaic),
            mixup: self.check_number(&a.mixup, "mixup", p, d.mixup),
            copy_paste: self.check_number(&a.copy_paste, "copy_paste", p, d.copy_paste),
            close_mosaic: a.close_mosaic.as_ref().map_or(d.close_mosaic, |c| c.value),
            crop_scale_min: self.check_number(
                &a.crop_scale_min,
                "crop_scale_min",
                Range::OpenClosed(0.0, 1.0),
                d.crop_scale_min,
            ),
            erasing: self.check_number(&a.erasing, "erasing", p, d.erasing),
        }
    }
}

/// Check a project name: 1–64 characters of `A-Z a-z 0-9 _ - .`, starting with a letter or digit.
pub fn check_project_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("`project` is empty; give the project a name".to_string());
    }
    if name.chars().count() > 64 {
        return Err(format!(
            "project name `{name}` is longer than 64 characters"
        ));
    }
    let first_ok = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric());
    let all_ok = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if !first_ok || !all_ok {
        return Err(format!(
            "invalid project name `{name}`: use letters, digits, `_`, `-` and `.`, starting with a letter or digit"
        ));
    }
    Ok(())
}

/// Check a label name: non-empty, at most 64 characters, no surrounding spaces, no control
/// characters, no `/` or `\` (labels become folder names in image-folder datasets).
pub fn check_label(label: &str) -> Result<(), String> {
    if label.trim().is_empty() {
        return Err("empty label; every label needs a name".to_string());
    }
    if label.trim() != label {
        return Err(format!("label `{label}` has leading or trailing spaces"));
    }
    if label.chars().count() > 64 {
        return Err(format!("label `{label}` is longer than 64 characters"));
    }
    if label
        .chars()
        .any(|c| c.is_control() || c == '/' || c == '\\')
    {
        return Err(format!(
            "label `{}` contains `/`, `\\` or a control character",
            label.escape_debug()
        ));
    }
    Ok(())
}

/// The supported model name closest to a misspelling, if any is close.
fn suggest(name: &str) -> Option<&'static str> {
    const NAMES: [&str; 8] = [
        "yolov8n-seg",
        "yolov8s-seg",
        "yolov8m-seg",
        "yolov8l-seg",
        "yolov8x-seg",
        "yolov8-seg",
        "mobilenet_v3_small",
        "mobilenet_v3_large",
    ];
    let lower = name.to_lowercase().replace(['-', '_'], "");
    NAMES
        .iter()
        .map(|n| (edit_distance(&lower, &n.replace(['-', '_'], "")), *n))
        .filter(|(d, _)| *d <= 2)
        .min_by_key(|(d, _)| *d)
        .map(|(_, n)| n)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_names_round_trip() {
        for n in [
            "yolov8n-seg",
            "yolov8s-seg",
            "yolov8m-seg",
            "yolov8l-seg",
            "yolov8x-seg",
            "yolov8-seg",
            "mobilenet_v3_small",
            "mobilenet_v3_large",
        ] {
            let parsed: ModelName = n.parse().unwrap();
            assert_eq!(parsed.to_string(), n);
        }
        assert!("yolov8q-seg".parse::<ModelName>().is_err());
        assert!("yolov8nn-seg".parse::<ModelName>().is_err());
        assert!("yolov5s-seg".parse::<ModelName>().is_err());
    }

    #[test]
    fn scale_resolution() {
        let bare = ModelName::Yolov8Seg(None);
        assert_eq!(bare.resolve_scale(None), Some(YoloScale::N));
        assert_eq!(bare.resolve_scale(Some(YoloScale::S)), Some(YoloScale::S));
        let m = ModelName::Yolov8Seg(Some(YoloScale::M));
        assert_eq!(m.resolve_scale(Some(YoloScale::S)), Some(YoloScale::M));
        assert_eq!(ModelName::MobileNetV3Small.resolve_scale(None), None);
    }

    #[test]
    fn suggestions() {
        assert_eq!(suggest("yolov8s_seg"), Some("yolov8s-seg"));
        assert_eq!(suggest("mobilenetv3_small"), Some("mobilenet_v3_small"));
        assert_eq!(suggest("resnet50"), None);
    }

    #[test]
    fn thresholds_default() {
        let mut t = Thresholds::default();
        t.0.insert("dent".into(), 0.5);
        assert_eq!(t.for_label("dent"), 0.5);
        assert_eq!(t.for_label("scratch"), DEFAULT_THRESHOLD);
    }

    #[test]
    fn names_and_labels() {
        assert!(check_project_name("widget_line_a").is_ok());
        assert!(check_project_name("-x").is_err());
        assert!(check_project_name("a b").is_err());
        assert!(check_label("scratch").is_ok());
        assert!(check_label(" scratch").is_err());
        assert!(check_label("a/b").is_err());
    }

    #[test]
    fn weights_resolution_prefers_cwd_then_manifest_dir() {
        let cwd = tempfile::tempdir().unwrap();
        let mdir = tempfile::tempdir().unwrap();
        let w = Weights::Path(PathBuf::from("w.pt"));
        assert_eq!(
            w.resolve_path(cwd.path(), Some(mdir.path())),
            Some(cwd.path().join("w.pt"))
        );
        fs_err::write(mdir.path().join("w.pt"), b"x").unwrap();
        assert_eq!(
            w.resolve_path(cwd.path(), Some(mdir.path())),
            Some(mdir.path().join("w.pt"))
        );
        fs_err::write(cwd.path().join("w.pt"), b"x").unwrap();
        assert_eq!(
            w.resolve_path(cwd.path(), Some(mdir.path())),
            Some(cwd.path().join("w.pt"))
        );
        assert_eq!(Weights::ImageNet.resolve_path(cwd.path(), None), None);
    }
}
