//! Writes a synthetic data set as COCO + image folders, staged then renamed into place.

use std::collections::BTreeMap;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use image::codecs::jpeg::JpegEncoder;
use rayon::prelude::*;
use serde_json::json;

use crate::rng::Rng;
use crate::scene::{Scene, render};
use crate::{INSTANCE_LABELS, SynthError};

/// What to generate.
#[derive(Debug, Clone)]
pub struct GenerateOptions {
    /// Output folder; must not exist or be empty.
    pub out: PathBuf,
    /// Seed: the same seed gives the same bytes.
    pub seed: u64,
    /// Number of training images.
    pub train: usize,
    /// Number of validation images.
    pub val: usize,
    /// Image side in pixels (square images), at least 32.
    pub size: u32,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        Self {
            out: PathBuf::from("demo-data"),
            seed: 7,
            train: 240,
            val: 80,
            size: 256,
        }
    }
}

/// Counts of what was written.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Summary {
    /// Images per split.
    pub images: BTreeMap<String, usize>,
    /// Instances per instance label, all splits.
    pub instances: BTreeMap<String, usize>,
    /// Images per image-level label, all splits.
    pub image_labels: BTreeMap<String, usize>,
}

/// Generates the data set; `progress` is called once per finished image.
pub fn generate(
    opts: &GenerateOptions,
    progress: &(dyn Fn() + Sync),
) -> Result<Summary, SynthError> {
    if opts.size < 32 {
        return Err(SynthError::InvalidOptions(format!(
            "image size {} is too small (minimum 32)",
            opts.size
        )));
    }
    if opts.train + opts.val == 0 {
        return Err(SynthError::InvalidOptions(
            "nothing to generate: --train and --val are both 0".into(),
        ));
    }
    if opts.out.exists() && fs_err::read_dir(&opts.out)?.next().is_some() {
        return Err(SynthError::InvalidOptions(format!(
            "{} already exists and is not empty; choose another folder or remove it",
            opts.out.display()
        )));
    }
    let parent = opts
        .out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    fs_err::create_dir_all(parent)?;
    let name = opts
        .out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "data".into());
    let stage = parent.join(format!(".{name}.partial-{}", std::process::id()));
    if stage.exists() {
        fs_err::remove_dir_all(&stage)?;
    }
    let result = write_all(opts, &stage, progress);
    match result {
        Ok(summary) => {
            if opts.out.exists() {
                fs_err::remove_dir(&opts.out)?;
            }
            fs_err::rename(&stage, &opts.out)?;
            Ok(summary)
        }
        Err(e) => {
            let _ = fs_err::remove_dir_all(&stage);
            Err(e)
        }
    }
}

fn write_all(
    opts: &GenerateOptions,
    root: &Path,
    progress: &(dyn Fn() + Sync),
) -> Result<Summary, SynthError> {
    let mut summary = Summary::default();
    for (split_idx, (split, count)) in [("train", opts.train), ("val", opts.val)]
        .into_iter()
        .enumerate()
    {
        if count == 0 {
            continue;
        }
        let img_dir = root.join("images").join(split);
        fs_err::create_dir_all(&img_dir)?;
        let scenes: Vec<Scene> = (0..count)
            .into_par_iter()
            .map(|i| {
                let mut rng = Rng::derive(opts.seed, &[split_idx as u64, i as u64]);
                let scene = render(&mut rng, opts.size);
                progress();
                scene
            })
            .collect();
        scenes
            .par_iter()
            .enumerate()
            .try_for_each(|(i, scene)| -> Result<(), SynthError> {
                let file = format!("{split}_{i:05}.jpg");
                save_jpeg(&scene.image, &img_dir.join(&file))?;
                let cls_dir = root.join("classify").join(split).join(scene.label);
                fs_err::create_dir_all(&cls_dir)?;
                save_jpeg(&scene.image, &cls_dir.join(&file))
            })?;

        let mut images = Vec::with_capacity(count);
        let mut annotations = Vec::new();
        for (i, scene) in scenes.iter().enumerate() {
            let image_id = i + 1;
            images.push(json!({
                "id": image_id, "file_name": format!("{split}_{i:05}.jpg"),
                "width": opts.size, "height": opts.size,
                // Image-level label (Sightline's COCO extension, read back on ingestion), so
                // that one COCO version trains both the detector and the classifier.
                "label": scene.label,
            }));
            for inst in &scene.instances {
                let category_id = INSTANCE_LABELS
                    .iter()
                    .position(|l| *l == inst.kind.label())
                    .unwrap_or(0)
                    + 1;
                let flat: Vec<f64> = inst
                    .polygon
                    .iter()
                    .flat_map(|&(x, y)| [round2(x), round2(y)])
                    .collect();
                let bbox = inst.bbox().map(round2);
                annotations.push(json!({
                    "id": annotations.len() + 1, "image_id": image_id, "category_id": category_id,
                    "segmentation": [flat], "area": round2(inst.area()), "bbox": bbox, "iscrowd": 0,
                }));
                *summary
                    .instances
                    .entry(inst.kind.label().to_string())
                    .or_default() += 1;
            }
            *summary
                .image_labels
                .entry(scene.label.to_string())
                .or_default() += 1;
        }
        summary.images.insert(split.to_string(), count);
        let coco = json!({
            "info": {"description": "Sightline synthetic inspection data", "seed": opts.seed, "size": opts.size},
            "images": images,
            "annotations": annotations,
            "categories": INSTANCE_LABELS.iter().enumerate()
                .map(|(j, name)| json!({"id": j + 1, "name": name, "supercategory": "defect"}))
                .collect::<Vec<_>>(),
        });
        let ann_dir = root.join("annotations");
        fs_err::create_dir_all(&ann_dir)?;
        let path = ann_dir.join(format!("instances_{split}.json"));
        let file = fs_err::File::create(&path)?;
        serde_json::to_writer(BufWriter::new(file), &coco)
            .map_err(|source| SynthError::Json { path, source })?;
    }
    Ok(summary)
}

fn save_jpeg(img: &image::RgbImage, path: &Path) -> Result<(), SynthError> {
    let file = fs_err::File::create(path)?;
    let mut writer = BufWriter::new(file);
    JpegEncoder::new_with_quality(&mut writer, 92)
        .encode_image(img)
        .map_err(|source| SynthError::Encode {
            path: path.to_path_buf(),
            source,
        })
}

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(out: PathBuf) -> GenerateOptions {
        GenerateOptions {
            out,
            seed: 11,
            train: 6,
            val: 3,
            size: 64,
        }
    }

    #[test]
    fn writes_coco_and_folders_deterministically() {
        let tmp = tempfile::tempdir().unwrap();
        let a = generate(&opts(tmp.path().join("a")), &|| {}).unwrap();
        let b = generate(&opts(tmp.path().join("b")), &|| {}).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.images["train"], 6);
        assert_eq!(a.image_labels.values().sum::<usize>(), 9);
        for rel in [
            "annotations/instances_train.json",
            "annotations/instances_val.json",
            "images/val/val_00002.jpg",
        ] {
            let x = fs_err::read(tmp.path().join("a").join(rel)).unwrap();
            let y = fs_err::read(tmp.path().join("b").join(rel)).unwrap();
            assert_eq!(x, y, "{rel} differs between two runs with the same seed");
        }
        let coco: serde_json::Value = serde_json::from_slice(
            &fs_err::read(tmp.path().join("a/annotations/instances_train.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(coco["images"].as_array().unwrap().len(), 6);
        let n_ann = coco["annotations"].as_array().unwrap().len();
        assert_eq!(
            n_ann,
            a.instances.values().sum::<usize>() - count_split(&tmp.path().join("a"), "val")
        );
        // Every image is in exactly one classification folder.
        let mut files = 0;
        for label in crate::IMAGE_LABELS {
            let dir = tmp.path().join("a/classify/train").join(label);
            if dir.exists() {
                files += fs_err::read_dir(dir).unwrap().count();
            }
        }
        assert_eq!(files, 6);
    }

    fn count_split(root: &Path, split: &str) -> usize {
        let coco: serde_json::Value = serde_json::from_slice(
            &fs_err::read(root.join(format!("annotations/instances_{split}.json"))).unwrap(),
        )
        .unwrap();
        coco["annotations"].as_array().unwrap().len()
    }

    #[test]
    fn refuses_a_non_empty_folder_and_bad_options_without_writing() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("x");
        fs_err::create_dir_all(&out).unwrap();
        fs_err::write(out.join("keep.txt"), "user data").unwrap();
        let err = generate(&opts(out.clone()), &|| {})
            .unwrap_err()
            .to_string();
        assert!(err.contains("not empty"), "{err}");
        assert_eq!(
            fs_err::read_to_string(out.join("keep.txt")).unwrap(),
            "user data"
        );
        let mut small = opts(tmp.path().join("y"));
        small.size = 8;
        assert!(
            generate(&small, &|| {})
                .unwrap_err()
                .to_string()
                .contains("too small")
        );
        assert!(!tmp.path().join("y").exists());
        let leftovers: Vec<_> = fs_err::read_dir(tmp.path())
            .unwrap()
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().contains("partial"))
            .collect();
        assert!(leftovers.is_empty());
    }
}
