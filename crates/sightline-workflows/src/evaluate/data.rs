//! Evaluation data: a folder in any ingestible format, or a dataset version of the project read
//! straight from the content-addressed store (no checkout needed).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use sightline_core::manifest::Manifest;
use sightline_datasets::model::{Dataset, ImageRecord, Split};

use super::EvaluateError;

/// Evaluation data resolved from a folder or a dataset version.
#[derive(Debug, Clone)]
pub struct EvalData {
    /// Annotations.
    pub dataset: Dataset,
    /// Image file → path on disk.
    pub images: BTreeMap<String, PathBuf>,
    /// Dataset version id, when the data is a version.
    pub version: Option<String>,
    /// Where the data came from.
    pub source: String,
}

impl EvalData {
    /// The images of `split` (all images when none has a split), in file order.
    pub fn split_records(&self, split: &str) -> Result<Vec<&ImageRecord>, EvaluateError> {
        let want =
            Split::parse(split).ok_or_else(|| EvaluateError::UnknownSplit(split.to_string()))?;
        let recs: Vec<_> = self
            .dataset
            .images
            .iter()
            .filter(|r| r.split == Some(want))
            .collect();
        if !recs.is_empty() {
            return Ok(recs);
        }
        if self.dataset.images.iter().all(|r| r.split.is_none()) && !self.dataset.images.is_empty()
        {
            return Ok(self.dataset.images.iter().collect());
        }
        let mut have: Vec<&str> = self
            .dataset
            .images
            .iter()
            .filter_map(|r| r.split.map(|s| s.as_str()))
            .collect();
        have.sort_unstable();
        have.dedup();
        Err(EvaluateError::NoSplitImages {
            data: self.source.clone(),
            split: split.to_string(),
            present: if have.is_empty() {
                "none".into()
            } else {
                have.join(", ")
            },
        })
    }

    /// Path of an image file.
    pub fn path(&self, file: &str) -> Result<&PathBuf, EvaluateError> {
        self.images
            .get(file)
            .ok_or_else(|| EvaluateError::MissingImage {
                data: self.source.clone(),
                file: file.to_string(),
            })
    }
}

/// Reads `dir` (any ingestible format; `dataset` is then only a label) or the project's dataset
/// version `dataset` (default `latest`) under `<home>/projects/<p>/datasets`.
pub fn load_data(
    dir: Option<&Path>,
    dataset: Option<&str>,
    manifest: &Manifest,
    home: &Path,
) -> Result<EvalData, EvaluateError> {
    if let Some(dir) = dir {
        let format = sightline_datasets::detect_format(dir)?;
        let imp =
            sightline_datasets::read(dir, format).map_err(|source| EvaluateError::ReadData {
                path: dir.to_path_buf(),
                format: format.to_string(),
                source,
            })?;
        return Ok(EvalData {
            dataset: imp.dataset,
            images: imp.sources,
            version: dataset.map(str::to_string),
            source: dir.display().to_string(),
        });
    }
    sightline_datasets::dvc::safe_relpath(&manifest.project).map_err(|source| {
        EvaluateError::ProjectName {
            project: manifest.project.clone(),
            source,
        }
    })?;
    let root = home
        .join("projects")
        .join(&manifest.project)
        .join("datasets");
    let repo = sightline_datasets::version::Repo::open(&root);
    let want = dataset.unwrap_or("latest");
    let v = repo
        .get(want)
        .map_err(|source| EvaluateError::DatasetVersion {
            want: want.to_string(),
            project: manifest.project.clone(),
            source,
        })?;
    Ok(EvalData {
        dataset: repo.dataset(&v.id)?,
        images: repo.image_paths(&v.id)?,
        source: format!("{} (version {})", root.display(), v.id),
        version: Some(v.id),
    })
}
