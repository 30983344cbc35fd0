//! COCO json: ground-truth datasets and detection result lists, as read by pycocotools.

use std::path::Path;

use serde::{Deserialize, Serialize};
use sightline_mask::Rle;

use crate::EvalError;

/// A COCO ground-truth file (`instances_*.json`); fields not needed for evaluation are ignored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CocoGt {
    /// Images (`id`, `width`, `height`).
    pub images: Vec<CocoImage>,
    /// Object annotations.
    #[serde(default)]
    pub annotations: Vec<CocoAnnotation>,
    /// Categories.
    pub categories: Vec<CocoCategory>,
}

/// One image of a COCO file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CocoImage {
    /// Image id.
    pub id: i64,
    /// Width in pixels (needed to rasterise polygons).
    #[serde(default)]
    pub width: Option<u32>,
    /// Height in pixels (needed to rasterise polygons).
    #[serde(default)]
    pub height: Option<u32>,
    /// File name, when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_name: Option<String>,
}

/// One category of a COCO file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CocoCategory {
    /// Category id.
    pub id: i64,
    /// Category name.
    #[serde(default)]
    pub name: String,
}

/// A 0/1 or boolean flag (`iscrowd`).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum Flag {
    /// `true` / `false`.
    Bool(bool),
    /// `0` / `1` (any non-zero is set).
    Num(f64),
}

impl Flag {
    /// Whether the flag is set.
    pub fn is_set(self) -> bool {
        match self {
            Flag::Bool(b) => b,
            Flag::Num(n) => n != 0.0,
        }
    }
}

/// A ground-truth object annotation.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CocoAnnotation {
    /// Annotation id (pycocotools treats id 0 as "no match": avoid it).
    pub id: i64,
    /// Image id.
    pub image_id: i64,
    /// Category id.
    pub category_id: i64,
    /// `[x, y, w, h]` (required for `bbox` evaluation).
    #[serde(default)]
    pub bbox: Option<Vec<f64>>,
    /// Area used for the small/medium/large ranges (required, as in pycocotools).
    #[serde(default)]
    pub area: Option<f64>,
    /// Crowd region: matched by many detections, never counted as a miss. Missing = 0.
    #[serde(default)]
    pub iscrowd: Option<Flag>,
    /// Polygons or RLE (required for `segm` evaluation).
    #[serde(default)]
    pub segmentation: Option<Segmentation>,
}

/// A detection in the COCO results format.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CocoDetection {
    /// Image id (must exist in the ground truth).
    pub image_id: i64,
    /// Category id (detections of categories absent from the ground truth are ignored, as in pycocotools).
    pub category_id: i64,
    /// Confidence.
    pub score: f64,
    /// `[x, y, w, h]`.
    #[serde(default)]
    pub bbox: Option<Vec<f64>>,
    /// Mask (usually compressed RLE).
    #[serde(default)]
    pub segmentation: Option<Segmentation>,
}

/// A COCO segmentation: polygons or RLE.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Segmentation {
    /// One or more polygons `[x0, y0, x1, y1, …]` (united).
    Polygons(Vec<Vec<f64>>),
    /// Run-length encoding with its own `[h, w]` size.
    Rle {
        /// `[height, width]`.
        size: [u32; 2],
        /// Compressed string or explicit counts.
        counts: RleCounts,
    },
}

/// The `counts` of an RLE segmentation.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RleCounts {
    /// pycocotools' compressed string.
    Compressed(String),
    /// Explicit run lengths ("uncompressed RLE").
    Uncompressed(Vec<u32>),
}

impl Segmentation {
    /// The mask as an RLE; polygons are rasterised at `h × w` (pycocotools' `annToRLE`).
    pub fn to_rle(&self, h: Option<u32>, w: Option<u32>) -> Result<Rle, String> {
        match self {
            Segmentation::Polygons(p) => {
                let (Some(h), Some(w)) = (h, w) else {
                    return Err("polygon segmentation but the image has no width/height".into());
                };
                Rle::from_polygons(p, h, w).map_err(|e| e.to_string())
            }
            Segmentation::Rle { size, counts } => match counts {
                RleCounts::Compressed(s) => {
                    Rle::from_compressed(s, size[0], size[1]).map_err(|e| e.to_string())
                }
                RleCounts::Uncompressed(c) => {
                    Rle::new(size[0], size[1], c.clone()).map_err(|e| e.to_string())
                }
            },
        }
    }
}

impl CocoGt {
    /// Reads a ground-truth file.
    pub fn from_path(path: impl AsRef<Path>) -> Result<Self, EvalError> {
        let path = path.as_ref();
        let bytes = fs_err::read(path)?;
        serde_json::from_slice(&bytes).map_err(|error| EvalError::Json {
            path: path.to_path_buf(),
            what: "COCO ground-truth",
            error,
        })
    }
}

/// Reads a results file (a json list of detections).
pub fn load_detections(path: impl AsRef<Path>) -> Result<Vec<CocoDetection>, EvalError> {
    let path = path.as_ref();
    let bytes = fs_err::read(path)?;
    serde_json::from_slice(&bytes).map_err(|error| EvalError::Json {
        path: path.to_path_buf(),
        what: "COCO results (a list of {image_id, category_id, score, bbox|segmentation})",
        error,
    })
}
