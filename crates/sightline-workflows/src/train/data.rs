//! A dataset version → training samples.
//!
//! Rules (also in `sightline train --help`):
//! - **Detector classes** are the project labels (in project order) that occur as instance
//!   labels in the version; they are written into the checkpoint with the weights. Project
//!   labels without instances (image-level labels such as `ok`) are reported, not learnt.
//!   Instances need a polygon or an RLE mask (RLE is traced to polygons); box-only and crowd
//!   objects are skipped and counted. Images without instances are kept as background.
//! - **Classifier classes** are all project labels, in project order (class id = label
//!   position, as in the database); images need an image-level label.
//! - Project labels the version does not contain at all (neither instances nor image labels)
//!   are a warning, not an error: the run still trains on the others. A version without any
//!   annotation of the task is refused.
//! - **Splits**: `train` images train, `val` images validate, `test` images are not used;
//!   images without a split train. A version without `val` images holds out a deterministic
//!   20 % of the training images (chosen by a hash of their file name, at least one) and says so.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use sightline_datasets::DatasetError;
use sightline_datasets::model::{Dataset, ImageRecord, Segmentation, Split};
use sightline_train::augment::{DetSample, Instance};
use sightline_train::error::TrainError;

/// Why a dataset version cannot be trained on.
#[derive(Debug, thiserror::Error)]
pub enum SamplesError {
    /// The version has no images.
    #[error("the dataset version is empty: it has no images")]
    Empty,
    /// A detector needs instances.
    #[error(
        "the dataset version has no object instances (masks or polygons): a detector needs \
         instance segmentation annotations (ingest COCO, VOC or YOLO segmentation data)"
    )]
    NoInstances,
    /// No project label occurs as an instance label.
    #[error(
        "none of the project labels ({labels}) occurs as an object label in the dataset version \
         (it has {found})"
    )]
    NoProjectInstances {
        /// The project labels, comma-separated.
        labels: String,
        /// The instance labels of the version, comma-separated.
        found: String,
    },
    /// An image of the annotations has no stored file.
    #[error("image {file} is listed but not stored in the version")]
    NotStored {
        /// The image's file name.
        file: String,
    },
    /// An image could not be decoded.
    #[error("decoding {file}")]
    Decode {
        /// The image's file name.
        file: String,
        /// The decoder's error (it names the stored path).
        #[source]
        source: Box<TrainError>,
    },
    /// An RLE mask could not be traced to polygons.
    #[error("tracing the mask of an object in {file}")]
    TraceMask {
        /// The image's file name.
        file: String,
        /// The codec's error.
        #[source]
        source: Box<DatasetError>,
    },
    /// Only boxes, no masks.
    #[error(
        "the dataset version has no object masks or polygons (only boxes): the detector \
         learns instance segmentation"
    )]
    OnlyBoxes,
    /// No detector training images.
    #[error("the dataset version has no training images")]
    NoTrainImages,
    /// No detector validation images.
    #[error("the dataset version has no validation images (it needs at least 2 images)")]
    NoValImages,
    /// A classifier needs image-level labels.
    #[error(
        "the dataset version has no image-level labels: a classifier needs them (ingest an \
         image folder `<split>/<label>/*.jpg` with --format folder)"
    )]
    NoImageLabels,
    /// No labelled classifier training images.
    #[error("the dataset version has no labelled training images")]
    NoLabelledTrain,
    /// No labelled classifier validation images.
    #[error("the dataset version has no labelled validation images (it needs at least 2)")]
    NoLabelledVal,
}

/// Samples of one task with the notes to show the user.
#[derive(Debug)]
pub struct Prepared<T> {
    /// Class names by class id.
    pub names: Vec<String>,
    /// Training samples.
    pub train: Vec<T>,
    /// Validation samples.
    pub val: Vec<T>,
    /// Warnings and conversion notes.
    pub notes: Vec<String>,
}

/// Which images train and which validate (file names), with a note when val was derived.
fn split(images: &[&ImageRecord], notes: &mut Vec<String>) -> (Vec<usize>, Vec<usize>) {
    let mut train = Vec::new();
    let mut val = Vec::new();
    for (i, img) in images.iter().enumerate() {
        match img.split {
            Some(Split::Val) => val.push(i),
            Some(Split::Test) => {}
            Some(Split::Train) | None => train.push(i),
        }
    }
    if val.is_empty() && train.len() >= 2 {
        let hash = |s: &str| {
            // FNV-1a: stable across runs and platforms
            s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
            })
        };
        let (mut t, mut v): (Vec<usize>, Vec<usize>) =
            train.iter().partition(|&&i| hash(&images[i].file) % 5 != 0);
        if v.is_empty() {
            // at least one: the image with the smallest hash
            if let Some(pos) = (0..t.len()).min_by_key(|&k| hash(&images[t[k]].file)) {
                v.push(t.remove(pos));
            }
        }
        notes.push(format!(
            "the version has no val split: {} of its {} training images are held out for \
             validation (chosen by a hash of the file name)",
            v.len(),
            train.len()
        ));
        train = std::mem::take(&mut t);
        val = v;
    }
    (train, val)
}

fn unused_labels(ds: &Dataset, labels: &[String], notes: &mut Vec<String>) {
    let present: BTreeSet<&str> = ds
        .images
        .iter()
        .flat_map(|i| i.label.iter().chain(i.instances.iter().map(|x| &x.label)))
        .map(String::as_str)
        .collect();
    let missing: Vec<&str> = labels
        .iter()
        .map(String::as_str)
        .filter(|l| !present.contains(l))
        .collect();
    if !missing.is_empty() {
        notes.push(format!(
            "warning: project label(s) {} do not occur in this dataset version at all",
            missing.join(", ")
        ));
    }
}

/// Flat `[x1, y1, …]` polygons → points.
fn points(flat: &[f64]) -> Vec<[f32; 2]> {
    flat.chunks_exact(2)
        .map(|p| [p[0] as f32, p[1] as f32])
        .collect()
}

/// Detector samples of a version. `images` maps file names to stored paths.
pub fn detector_samples(
    ds: &Dataset,
    images: &BTreeMap<String, PathBuf>,
    labels: &[String],
) -> Result<Prepared<DetSample>, SamplesError> {
    let mut notes = Vec::new();
    if ds.images.is_empty() {
        return Err(SamplesError::Empty);
    }
    let instance_labels: BTreeSet<&str> = ds
        .images
        .iter()
        .flat_map(|i| &i.instances)
        .map(|x| x.label.as_str())
        .collect();
    if instance_labels.is_empty() {
        return Err(SamplesError::NoInstances);
    }
    let names: Vec<String> = labels
        .iter()
        .filter(|l| instance_labels.contains(l.as_str()))
        .cloned()
        .collect();
    if names.is_empty() {
        return Err(SamplesError::NoProjectInstances {
            labels: labels.join(", "),
            found: instance_labels.into_iter().collect::<Vec<_>>().join(", "),
        });
    }
    unused_labels(ds, labels, &mut notes);
    let without: Vec<&str> = labels
        .iter()
        .filter(|l| !names.contains(l))
        .map(String::as_str)
        .collect();
    if !without.is_empty() {
        notes.push(format!(
            "detector classes: {} (label(s) {} have no object instances and are not detected)",
            names.join(", "),
            without.join(", ")
        ));
    }
    let refs: Vec<&ImageRecord> = ds.images.iter().collect();
    let (train_idx, val_idx) = split(&refs, &mut notes);
    let (mut skipped_box, mut skipped_crowd, mut skipped_label, mut with_masks) = (0, 0, 0, 0);
    let mut convert = |idx: &[usize]| -> Result<Vec<DetSample>, SamplesError> {
        let paths: Vec<PathBuf> = idx
            .iter()
            .map(|&i| {
                images
                    .get(&refs[i].file)
                    .cloned()
                    .ok_or_else(|| SamplesError::NotStored {
                        file: refs[i].file.clone(),
                    })
            })
            .collect::<Result<_, _>>()?;
        let decoded = sightline_train::loader::decode_images(&paths);
        let mut out = Vec::with_capacity(idx.len());
        for (&i, image) in idx.iter().zip(decoded) {
            let rec = refs[i];
            let image = image.map_err(|source| SamplesError::Decode {
                file: rec.file.clone(),
                source: Box::new(source),
            })?;
            let mut instances = Vec::new();
            for inst in &rec.instances {
                let Some(class) = names.iter().position(|n| *n == inst.label) else {
                    skipped_label += 1;
                    continue;
                };
                if inst.iscrowd {
                    skipped_crowd += 1;
                    continue;
                }
                let polygons: Vec<Vec<[f32; 2]>> = match &inst.segmentation {
                    Some(Segmentation::Polygons { polygons }) => {
                        polygons.iter().map(|p| points(p)).collect()
                    }
                    Some(Segmentation::Rle {
                        height,
                        width,
                        counts,
                    }) => {
                        sightline_datasets::mask_codec::counts_to_polygons(*height, *width, counts)
                            .map_err(|source| SamplesError::TraceMask {
                                file: rec.file.clone(),
                                source: Box::new(source),
                            })?
                            .iter()
                            .map(|p| points(p))
                            .collect()
                    }
                    None => {
                        skipped_box += 1;
                        continue;
                    }
                };
                let polygons: Vec<Vec<[f32; 2]>> =
                    polygons.into_iter().filter(|p| p.len() >= 3).collect();
                if polygons.is_empty() {
                    skipped_box += 1;
                    continue;
                }
                with_masks += 1;
                instances.push(Instance { class, polygons });
            }
            out.push(DetSample { image, instances });
        }
        Ok(out)
    };
    let train = convert(&train_idx)?;
    let val = convert(&val_idx)?;
    if with_masks == 0 {
        return Err(SamplesError::OnlyBoxes);
    }
    if skipped_box > 0 {
        notes.push(format!(
            "{skipped_box} box-only object(s) skipped (the detector needs masks or polygons)"
        ));
    }
    if skipped_crowd > 0 {
        notes.push(format!("{skipped_crowd} crowd region(s) skipped"));
    }
    if skipped_label > 0 {
        notes.push(format!(
            "{skipped_label} object(s) with labels outside the project skipped"
        ));
    }
    if train.is_empty() {
        return Err(SamplesError::NoTrainImages);
    }
    if val.is_empty() {
        return Err(SamplesError::NoValImages);
    }
    Ok(Prepared {
        names,
        train,
        val,
        notes,
    })
}

/// Classifier samples: (stored image path, class id = project label position).
pub fn classifier_samples(
    ds: &Dataset,
    images: &BTreeMap<String, PathBuf>,
    labels: &[String],
) -> Result<Prepared<(PathBuf, usize)>, SamplesError> {
    let mut notes = Vec::new();
    if ds.images.is_empty() {
        return Err(SamplesError::Empty);
    }
    let labelled: Vec<&ImageRecord> = ds.images.iter().filter(|i| i.label.is_some()).collect();
    if labelled.is_empty() {
        return Err(SamplesError::NoImageLabels);
    }
    unused_labels(ds, labels, &mut notes);
    let unlabelled = ds.images.len() - labelled.len();
    if unlabelled > 0 {
        notes.push(format!(
            "{unlabelled} image(s) without an image-level label skipped"
        ));
    }
    let (train_idx, val_idx) = split(&labelled, &mut notes);
    let mut outside = 0;
    let mut pick = |idx: &[usize]| -> Result<Vec<(PathBuf, usize)>, SamplesError> {
        let mut out = Vec::new();
        for &i in idx {
            let rec = labelled[i];
            let Some(class) = rec
                .label
                .as_ref()
                .and_then(|l| labels.iter().position(|x| x == l))
            else {
                outside += 1;
                continue;
            };
            let path = images
                .get(&rec.file)
                .cloned()
                .ok_or_else(|| SamplesError::NotStored {
                    file: rec.file.clone(),
                })?;
            out.push((path, class));
        }
        Ok(out)
    };
    let train = pick(&train_idx)?;
    let val = pick(&val_idx)?;
    if outside > 0 {
        notes.push(format!(
            "{outside} image(s) with labels outside the project skipped"
        ));
    }
    if train.is_empty() {
        return Err(SamplesError::NoLabelledTrain);
    }
    if val.is_empty() {
        return Err(SamplesError::NoLabelledVal);
    }
    Ok(Prepared {
        names: labels.to_vec(),
        train,
        val,
        notes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(file: &str, split: Option<Split>) -> ImageRecord {
        let mut r = ImageRecord::new(file, 10, 10);
        r.split = split;
        r
    }

    #[test]
    fn derived_val_split_is_deterministic_and_nonempty() {
        let imgs: Vec<ImageRecord> = (0..10).map(|i| rec(&format!("{i}.jpg"), None)).collect();
        let refs: Vec<&ImageRecord> = imgs.iter().collect();
        let mut notes = Vec::new();
        let (t, v) = split(&refs, &mut notes);
        assert!(!v.is_empty() && !t.is_empty());
        assert_eq!(t.len() + v.len(), 10);
        assert_eq!((t, v), split(&refs, &mut Vec::new()));
        assert!(notes[0].contains("no val split"), "{notes:?}");
        // explicit splits are kept; test images are not used
        let imgs = [
            rec("a", Some(Split::Train)),
            rec("b", Some(Split::Val)),
            rec("c", Some(Split::Test)),
        ];
        let refs: Vec<&ImageRecord> = imgs.iter().collect();
        let mut notes = Vec::new();
        assert_eq!(split(&refs, &mut notes), (vec![0], vec![1]));
        assert!(notes.is_empty());
    }

    #[test]
    fn refusals_name_the_problem() {
        let labels = vec!["ok".to_string(), "scratch".to_string()];
        let empty = Dataset::default();
        let e = detector_samples(&empty, &BTreeMap::new(), &labels).unwrap_err();
        assert!(e.to_string().contains("empty"), "{e}");
        let mut ds = Dataset::default();
        let mut r = rec("a.jpg", Some(Split::Train));
        r.label = Some("ok".into());
        ds.images.push(r);
        let e = detector_samples(&ds, &BTreeMap::new(), &labels).unwrap_err();
        assert!(e.to_string().contains("no object instances"), "{e}");
        let mut only_boxes = ds.clone();
        let mut inst = sightline_datasets::model::Instance::new("scratch");
        inst.bbox = Some([1.0, 1.0, 3.0, 3.0]);
        only_boxes.images[0].instances.push(inst);
        let e = classifier_samples(&Dataset::default(), &BTreeMap::new(), &labels).unwrap_err();
        assert!(e.to_string().contains("empty"), "{e}");
        let mut no_labels = only_boxes.clone();
        no_labels.images[0].label = None;
        let e = classifier_samples(&no_labels, &BTreeMap::new(), &labels).unwrap_err();
        assert!(e.to_string().contains("no image-level labels"), "{e}");
    }
}
