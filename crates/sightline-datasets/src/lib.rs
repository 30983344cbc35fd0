//! Datasets: COCO/VOC/YOLO/image-folder import and export, one annotation model,
//! content-addressed DVC-compatible versions, diff and stats.
//!
//! Flow: a source (folder, archive, URL: [`source`]) is read by a format reader ([`coco`],
//! [`voc`], [`yolo`], [`folder`]; [`detect_format`] picks one) into the normalized [`model`],
//! checked by [`validate`] and mapped to the project's labels by [`labels`], then stored as an
//! immutable version by [`version`] in a DVC 3 object store ([`dvc`]).

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod coco;
pub mod dvc;
pub mod error;
pub mod folder;
pub mod labels;
pub mod mask_codec;
pub mod model;
pub mod source;
pub mod split;
pub mod stats;
pub mod validate;
pub mod version;
pub mod voc;
pub mod yolo;

pub use error::{DatasetError, Issue, Result, Severity};
pub use model::{Dataset, ImageRecord, Instance, Segmentation, Split};

use fs_err as fs;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Supported annotation formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// COCO instance segmentation JSON.
    Coco,
    /// Pascal VOC XML + palette PNG masks.
    Voc,
    /// YOLO segmentation or detection txt + data YAML.
    Yolo,
    /// Image folders `<split>/<label>/*.jpg` for classification.
    Folder,
}

impl Format {
    /// Parse `coco|voc|yolo|folder`.
    pub fn parse(s: &str) -> Option<Format> {
        match s.to_ascii_lowercase().as_str() {
            "coco" => Some(Format::Coco),
            "voc" | "pascal" | "pascal_voc" => Some(Format::Voc),
            "yolo" => Some(Format::Yolo),
            "folder" | "folders" | "imagefolder" | "classify" => Some(Format::Folder),
            _ => None,
        }
    }

    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Coco => "coco",
            Format::Voc => "voc",
            Format::Yolo => "yolo",
            Format::Folder => "folder",
        }
    }
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a reader produces: the data set, where each image's bytes are, and findings.
#[derive(Debug, Default)]
pub struct Imported {
    /// The annotations in the normalized model.
    pub dataset: Dataset,
    /// Image `file` (as in the dataset) → its path in the source.
    pub sources: BTreeMap<String, PathBuf>,
    /// Warnings and errors found while reading.
    pub issues: Vec<Issue>,
    /// Conversions that lost precision or made a choice (reported to the user).
    pub notes: Vec<String>,
}

/// Guess the format of the data set rooted at `root`.
pub fn detect_format(root: &Path) -> Result<Format> {
    if root.join("Annotations").is_dir()
        || root.join("SegmentationObject").is_dir()
        || root.join("SegmentationClass").is_dir()
    {
        return Ok(Format::Voc);
    }
    if yolo::find_data_yaml(root).is_some() || root.join("labels").is_dir() {
        return Ok(Format::Yolo);
    }
    if !coco::find_annotation_files(root).is_empty() {
        return Ok(Format::Coco);
    }
    if folder::looks_like_folders(root) {
        return Ok(Format::Folder);
    }
    Err(DatasetError::Format(format!(
        "{}: cannot detect the format (looked for COCO annotations/*.json, VOC Annotations/ or \
         SegmentationObject/, YOLO data.yaml or labels/, image folders <split>/<label>/*.jpg); \
         pass --format coco|voc|yolo|folder",
        root.display()
    )))
}

/// Read the data set at `root` in `format`.
pub fn read(root: &Path, format: Format) -> Result<Imported> {
    match format {
        Format::Coco => coco::read(root),
        Format::Voc => voc::read(root),
        Format::Yolo => yolo::read(root),
        Format::Folder => folder::read(root),
    }
}

/// Write `ds` in `format` under `out`; `images` maps each record's `file` to its bytes.
pub fn write(
    ds: &Dataset,
    images: &BTreeMap<String, PathBuf>,
    format: Format,
    out: &Path,
) -> Result<Vec<String>> {
    match format {
        Format::Coco => coco::write(ds, images, out).map(|()| Vec::new()),
        Format::Voc => voc::write(ds, images, out),
        Format::Yolo => yolo::write(ds, images, out),
        Format::Folder => folder::write(ds, images, out),
    }
}

/// `path` relative to `root` with `/` separators, for messages and manifests.
pub(crate) fn rel_display(root: &Path, path: &Path) -> String {
    let rel = path.strip_prefix(root).unwrap_or(path);
    rel.components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join("/")
}

/// Copy `src` to `dst`, creating parent folders (hard link when possible: both are immutable).
pub(crate) fn copy_file(src: &Path, dst: &Path) -> Result<()> {
    if let Some(parent) = dst.parent() {
        fs::create_dir_all(parent)?;
    }
    if dst.exists() {
        fs::remove_file(dst)?;
    }
    fs::copy(src, dst)?;
    Ok(())
}

/// Image file extensions recognised in folders.
pub(crate) fn is_image_file(p: &Path) -> bool {
    p.extension()
        .and_then(|e| e.to_str())
        .map(|e| {
            matches!(
                e.to_ascii_lowercase().as_str(),
                "jpg" | "jpeg" | "png" | "bmp" | "tif" | "tiff" | "webp"
            )
        })
        .unwrap_or(false)
}
