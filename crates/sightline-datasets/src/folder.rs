//! Image folders for classification: `<split>/<label>/*.jpg` or `<label>/*.jpg`.

use crate::error::{DatasetError, Issue, Result};
use crate::model::{Dataset, ImageRecord, Split};
use crate::{Imported, copy_file};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn subdirs(p: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs_err::read_dir(p)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path())
                .filter(|p| p.is_dir())
                .filter(|p| {
                    !p.file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with('.'))
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn has_images(p: &Path) -> bool {
    fs_err::read_dir(p)
        .map(|rd| rd.flatten().any(|e| crate::is_image_file(&e.path())))
        .unwrap_or(false)
}

/// True when `root` looks like `<split>/<label>/images` or `<label>/images`.
pub fn looks_like_folders(root: &Path) -> bool {
    let dirs = subdirs(root);
    !dirs.is_empty()
        && dirs.iter().all(|d| {
            if Split::parse(
                &d.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
            )
            .is_some()
            {
                subdirs(d).iter().any(|l| has_images(l))
            } else {
                has_images(d)
            }
        })
}

/// Read class folders under `root`.
pub fn read(root: &Path) -> Result<Imported> {
    let mut imported = Imported::default();
    let dirs = subdirs(root);
    let mut groups: Vec<(Option<Split>, PathBuf)> = Vec::new();
    for d in &dirs {
        let name = d
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        match Split::parse(&name) {
            Some(s) => groups.extend(subdirs(d).into_iter().map(|l| (Some(s), l))),
            None => groups.push((None, d.clone())),
        }
    }
    if groups.is_empty() {
        return Err(DatasetError::Format(format!(
            "{}: no class folders (<split>/<label>/*.jpg or <label>/*.jpg)",
            root.display()
        )));
    }
    for (split, dir) in groups {
        let label = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut files: Vec<PathBuf> = fs_err::read_dir(&dir)?
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_file())
            .collect();
        files.sort();
        for f in files {
            let rel = crate::rel_display(root, &f);
            if !crate::is_image_file(&f) {
                imported
                    .issues
                    .push(Issue::warning(rel, None, "not an image file; ignored"));
                continue;
            }
            let (w, h) = match image::image_dimensions(&f) {
                Ok(d) => d,
                Err(e) => {
                    imported.issues.push(Issue::error(
                        rel,
                        None,
                        format!("corrupt or unsupported image: {e}"),
                    ));
                    continue;
                }
            };
            let base = f
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let file = match split {
                Some(s) => format!("{}/{base}", s.as_str()),
                None => base,
            };
            if imported.sources.contains_key(&file) {
                imported.issues.push(Issue::error(
                    rel,
                    None,
                    format!("image {file:?} appears under two labels"),
                ));
                continue;
            }
            let mut rec = ImageRecord::new(file.clone(), w, h);
            rec.split = split;
            rec.label = Some(label.clone());
            imported.sources.insert(file, f);
            imported.dataset.images.push(rec);
        }
        if !imported.dataset.categories.contains(&label) {
            imported.dataset.categories.push(label);
        }
    }
    imported.dataset.normalize();
    Ok(imported)
}

/// Write `<split>/<label>/<file>` under `out`; images without a label go to `_unlabeled`.
pub fn write(ds: &Dataset, images: &BTreeMap<String, PathBuf>, out: &Path) -> Result<Vec<String>> {
    let mut notes = Vec::new();
    let mut unlabeled = 0;
    let n_inst: usize = ds.images.iter().map(|i| i.instances.len()).sum();
    for im in &ds.images {
        let label = match &im.label {
            Some(l) => l.as_str(),
            None => {
                unlabeled += 1;
                "_unlabeled"
            }
        };
        let base = crate::coco::strip_split(&im.file, im.split);
        let mut dst = out.to_path_buf();
        if let Some(s) = im.split {
            dst.push(s.as_str());
        }
        dst.push(label);
        dst.push(base);
        if let Some(src) = images.get(&im.file) {
            copy_file(src, &dst)?;
        }
    }
    if unlabeled > 0 {
        notes.push(format!(
            "folder: {unlabeled} image(s) without an image-level label went to _unlabeled/"
        ));
    }
    if n_inst > 0 {
        notes.push(format!(
            "folder: {n_inst} instance annotation(s) not representable in class folders"
        ));
    }
    Ok(notes)
}
