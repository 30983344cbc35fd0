//! The one annotation model every format reads into and writes from.
//!
//! A [`Dataset`] is a list of [`ImageRecord`]s (file, size, split, image-level label, instances)
//! plus the ordered category names it uses. Coordinates are COCO-style: pixels, origin at the
//! top-left corner of the image, boxes as `[x, y, width, height]`.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Dataset split an image belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    /// Training images.
    Train,
    /// Validation images.
    Val,
    /// Held-out test images.
    Test,
}

impl Split {
    /// All splits, in canonical order.
    pub const ALL: [Split; 3] = [Split::Train, Split::Val, Split::Test];

    /// Lower-case name (`train`, `val`, `test`).
    pub fn as_str(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Val => "val",
            Split::Test => "test",
        }
    }

    /// Parse a split name as it appears in folder and file names (`valid`/`validation` → val).
    pub fn parse(name: &str) -> Option<Split> {
        match name.to_ascii_lowercase().as_str() {
            "train" | "training" => Some(Split::Train),
            "val" | "valid" | "validation" => Some(Split::Val),
            "test" | "testing" => Some(Split::Test),
            _ => None,
        }
    }
}

impl std::fmt::Display for Split {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Segmentation of one instance, kept in the form the source used.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Segmentation {
    /// One or more polygons, each a flat `[x1, y1, x2, y2, …]` list in pixels.
    Polygons {
        /// The polygons (an object may be split into several parts).
        polygons: Vec<Vec<f64>>,
    },
    /// Run-length encoded mask in COCO order (column-major, first run counts zeros).
    Rle {
        /// Mask height in pixels.
        height: u32,
        /// Mask width in pixels.
        width: u32,
        /// Run lengths, alternating background and foreground, starting with background.
        counts: Vec<u32>,
    },
}

impl Segmentation {
    /// Number of foreground pixels of an RLE mask, or `None` for polygons.
    pub fn rle_area(&self) -> Option<u64> {
        match self {
            Segmentation::Rle { counts, .. } => Some(
                counts
                    .iter()
                    .skip(1)
                    .step_by(2)
                    .map(|&c| u64::from(c))
                    .sum(),
            ),
            Segmentation::Polygons { .. } => None,
        }
    }
}

/// One annotated object in an image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Instance {
    /// Category name (mapped to the project's label set on ingest).
    pub label: String,
    /// Polygon(s) or mask; `None` for box-only objects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segmentation: Option<Segmentation>,
    /// Bounding box `[x, y, width, height]` in pixels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bbox: Option<[f64; 4]>,
    /// COCO `iscrowd`: a region of many objects, ignored by matching.
    #[serde(default, skip_serializing_if = "is_false")]
    pub iscrowd: bool,
    /// Pascal VOC `difficult` flag.
    #[serde(default, skip_serializing_if = "is_false")]
    pub difficult: bool,
    /// Pascal VOC `truncated` flag.
    #[serde(default, skip_serializing_if = "is_false")]
    pub truncated: bool,
    /// Identifier of the object in the source (COCO annotation id, VOC object index, YOLO line).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_id: Option<String>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl Instance {
    /// A new instance with only a label.
    pub fn new(label: impl Into<String>) -> Self {
        Self {
            label: label.into(),
            segmentation: None,
            bbox: None,
            iscrowd: false,
            difficult: false,
            truncated: false,
            source_id: None,
        }
    }
}

/// One image and everything annotated on it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageRecord {
    /// Path of the image file relative to the dataset root, `/`-separated.
    pub file: String,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Split, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split: Option<Split>,
    /// Image-level classification label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// Annotated objects.
    #[serde(default)]
    pub instances: Vec<Instance>,
}

impl ImageRecord {
    /// A new image without annotations.
    pub fn new(file: impl Into<String>, width: u32, height: u32) -> Self {
        Self {
            file: file.into(),
            width,
            height,
            split: None,
            label: None,
            instances: Vec::new(),
        }
    }
}

/// A whole data set in the normalized model.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Dataset {
    /// Ordered category / label names used by the data set.
    pub categories: Vec<String>,
    /// Images, sorted by file path after [`Dataset::normalize`].
    pub images: Vec<ImageRecord>,
}

impl Dataset {
    /// Sort images by path and make sure every used label is listed in `categories`.
    pub fn normalize(&mut self) {
        self.images.sort_by(|a, b| a.file.cmp(&b.file));
        for img in &self.images {
            let used = img
                .label
                .iter()
                .chain(img.instances.iter().map(|i| &i.label));
            for l in used {
                if !self.categories.contains(l) {
                    self.categories.push(l.clone());
                }
            }
        }
    }

    /// Number of instances per label (sorted by label).
    pub fn instances_per_label(&self) -> BTreeMap<String, usize> {
        let mut m = BTreeMap::new();
        for inst in self.images.iter().flat_map(|i| &i.instances) {
            *m.entry(inst.label.clone()).or_insert(0) += 1;
        }
        m
    }

    /// True when no image carries instances (a classification-only data set).
    pub fn is_classification_only(&self) -> bool {
        self.images.iter().all(|i| i.instances.is_empty())
    }

    /// Canonical JSON of the data set (sorted images), as stored in a version.
    pub fn to_canonical_json(&self) -> Result<Vec<u8>, serde_json::Error> {
        let mut copy = self.clone();
        copy.normalize();
        let mut out = serde_json::to_vec_pretty(&copy)?;
        out.push(b'\n');
        Ok(out)
    }
}

/// Box of a polygon set: `[x, y, w, h]` spanning all points, or `None` when there are none.
pub fn polygons_bbox(polygons: &[Vec<f64>]) -> Option<[f64; 4]> {
    let mut min = [f64::INFINITY; 2];
    let mut max = [f64::NEG_INFINITY; 2];
    for p in polygons {
        for xy in p.chunks_exact(2) {
            for k in 0..2 {
                min[k] = min[k].min(xy[k]);
                max[k] = max[k].max(xy[k]);
            }
        }
    }
    if min[0].is_finite() {
        Some([min[0], min[1], max[0] - min[0], max[1] - min[1]])
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_names_parse() {
        assert_eq!(Split::parse("valid"), Some(Split::Val));
        assert_eq!(Split::parse("TRAIN"), Some(Split::Train));
        assert_eq!(Split::parse("misc"), None);
    }

    #[test]
    fn normalize_sorts_and_collects_labels() {
        let mut ds = Dataset::default();
        let mut b = ImageRecord::new("b.jpg", 4, 4);
        b.instances.push(Instance::new("dent"));
        let mut a = ImageRecord::new("a.jpg", 4, 4);
        a.label = Some("ok".into());
        ds.images = vec![b, a];
        ds.normalize();
        assert_eq!(ds.images[0].file, "a.jpg");
        assert_eq!(ds.categories, vec!["ok", "dent"]);
    }

    #[test]
    fn bbox_of_two_polygons() {
        let b = polygons_bbox(&[vec![1.0, 2.0, 5.0, 2.0, 5.0, 4.0], vec![0.0, 3.0, 2.0, 9.0]]);
        assert_eq!(b, Some([0.0, 2.0, 5.0, 7.0]));
    }

    #[test]
    fn rle_area_counts_odd_runs() {
        let s = Segmentation::Rle {
            height: 2,
            width: 3,
            counts: vec![1, 2, 1, 2],
        };
        assert_eq!(s.rle_area(), Some(4));
    }
}
