//! COCO instance segmentation: `annotations/instances_<split>.json` + images.
//!
//! Reads polygons (several per object), RLE masks with compressed-string or uncompressed
//! counts, `iscrowd` and box-only objects. Image-level labels, `difficult` and `truncated`
//! are carried in extra fields (`label` on images, `difficult`/`truncated` on annotations)
//! that other COCO tools ignore, so a Sightline round trip loses nothing.

use crate::error::{Issue, Result, parse_err};
use crate::model::{Dataset, ImageRecord, Instance, Segmentation, Split};
use crate::{Imported, mask_codec};
use fs_err as fs;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

#[derive(Debug, Deserialize, Serialize)]
struct CocoFile {
    images: Vec<CocoImage>,
    #[serde(default)]
    annotations: Vec<CocoAnnotation>,
    categories: Vec<CocoCategory>,
}

#[derive(Debug, Deserialize, Serialize)]
struct CocoImage {
    id: i64,
    file_name: String,
    width: u32,
    height: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    label: Option<String>,
}

#[derive(Debug, Deserialize, Serialize)]
struct CocoAnnotation {
    id: i64,
    image_id: i64,
    category_id: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    segmentation: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    bbox: Option<Vec<f64>>,
    #[serde(default)]
    iscrowd: u8,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    area: Option<f64>,
    #[serde(default, skip_serializing_if = "is_false")]
    difficult: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    truncated: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

#[derive(Debug, Deserialize, Serialize)]
struct CocoCategory {
    id: i64,
    name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    supercategory: Option<String>,
}

/// Find the COCO annotation files under `root`: `annotations/*.json`, or `*.json` at the root.
pub fn find_annotation_files(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for dir in [root.join("annotations"), root.to_path_buf()] {
        if let Ok(rd) = fs::read_dir(&dir) {
            for e in rd.flatten() {
                let p = e.path();
                if p.extension().is_some_and(|x| x == "json") && looks_like_coco(&p) {
                    out.push(p);
                }
            }
        }
        if !out.is_empty() {
            break;
        }
    }
    out.sort();
    out
}

fn looks_like_coco(p: &Path) -> bool {
    // Cheap check on the first bytes: a COCO file mentions "images" and "categories".
    let Ok(text) = fs::read(p) else {
        return false;
    };
    let s = String::from_utf8_lossy(&text);
    s.contains("\"images\"") && s.contains("\"categories\"")
}

/// Split named by a COCO file name: `instances_train.json`, `val2017.json`, …
fn split_from_name(p: &Path) -> Option<Split> {
    let stem = p.file_stem()?.to_str()?.to_ascii_lowercase();
    stem.split(|c: char| !c.is_ascii_alphabetic())
        .filter_map(Split::parse)
        .next()
}

/// Read every COCO annotation file found under `root`.
pub fn read(root: &Path) -> Result<Imported> {
    let files = find_annotation_files(root);
    if files.is_empty() {
        return Err(crate::DatasetError::Format(format!(
            "{}: no COCO annotation file (annotations/*.json with \"images\" and \"categories\")",
            root.display()
        )));
    }
    let mut imported = Imported::default();
    for f in files {
        read_file(root, &f, &mut imported)?;
    }
    imported.dataset.normalize();
    Ok(imported)
}

fn resolve_image(
    root: &Path,
    json: &Path,
    split: Option<Split>,
    file_name: &str,
) -> Option<PathBuf> {
    let mut cands = Vec::new();
    let json_dir = json.parent().unwrap_or(root);
    if let Some(s) = split {
        cands.push(root.join("images").join(s.as_str()).join(file_name));
        cands.push(root.join(s.as_str()).join(file_name));
        cands.push(root.join(format!("{}2017", s.as_str())).join(file_name));
        cands.push(
            root.join("images")
                .join(format!("{}2017", s.as_str()))
                .join(file_name),
        );
    }
    cands.push(root.join("images").join(file_name));
    cands.push(root.join(file_name));
    cands.push(json_dir.join(file_name));
    cands.into_iter().find(|p| p.is_file())
}

fn read_file(root: &Path, json: &Path, imported: &mut Imported) -> Result<()> {
    let rel_json = crate::rel_display(root, json);
    let text = fs::read_to_string(json)?;
    let coco: CocoFile = serde_json::from_str(&text).map_err(|e| {
        parse_err(
            json,
            format!("line {} column {}: {e}", e.line(), e.column()),
        )
    })?;
    let split = split_from_name(json);
    let cats: HashMap<i64, String> = coco
        .categories
        .iter()
        .map(|c| (c.id, c.name.clone()))
        .collect();
    for c in &coco.categories {
        if !imported.dataset.categories.contains(&c.name) {
            imported.dataset.categories.push(c.name.clone());
        }
    }
    let mut index: HashMap<i64, usize> = HashMap::new();
    let first = imported.dataset.images.len();
    for im in &coco.images {
        let file = match split {
            Some(s) => format!("{}/{}", s.as_str(), im.file_name),
            None => im.file_name.clone(),
        };
        let mut rec = ImageRecord::new(file.clone(), im.width, im.height);
        rec.split = split;
        rec.label = im.label.clone();
        match resolve_image(root, json, split, &im.file_name) {
            Some(p) => {
                imported.sources.insert(file, p);
            }
            None => imported.issues.push(Issue::error(
                rel_json.clone(),
                Some(format!("image id {}", im.id)),
                format!("image file {:?} not found", im.file_name),
            )),
        }
        if index.insert(im.id, imported.dataset.images.len()).is_some() {
            imported.issues.push(Issue::error(
                rel_json.clone(),
                Some(format!("image id {}", im.id)),
                "duplicate image id",
            ));
        }
        imported.dataset.images.push(rec);
    }
    let _ = first;
    for ann in &coco.annotations {
        let loc = Some(format!("annotation id {}", ann.id));
        let Some(&img_idx) = index.get(&ann.image_id) else {
            imported.issues.push(Issue::error(
                rel_json.clone(),
                loc,
                format!("refers to unknown image id {}", ann.image_id),
            ));
            continue;
        };
        let Some(label) = cats.get(&ann.category_id) else {
            imported.issues.push(Issue::error(
                rel_json.clone(),
                loc,
                format!("refers to unknown category id {}", ann.category_id),
            ));
            continue;
        };
        let img = &imported.dataset.images[img_idx];
        let (w, h) = (img.width, img.height);
        let mut inst = Instance::new(label.clone());
        inst.iscrowd = ann.iscrowd != 0;
        inst.difficult = ann.difficult;
        inst.truncated = ann.truncated;
        inst.source_id = Some(ann.id.to_string());
        if let Some(b) = &ann.bbox {
            if b.len() == 4 {
                inst.bbox = Some([b[0], b[1], b[2], b[3]]);
            } else {
                imported.issues.push(Issue::error(
                    rel_json.clone(),
                    loc.clone(),
                    format!("bbox must have 4 numbers, found {}", b.len()),
                ));
                continue;
            }
        }
        match &ann.segmentation {
            None | Some(Value::Null) => {}
            Some(Value::Array(a)) if a.is_empty() => {}
            Some(seg) => match parse_segmentation(seg, w, h) {
                Ok(s) => inst.segmentation = Some(s),
                Err(msg) => {
                    imported
                        .issues
                        .push(Issue::error(rel_json.clone(), loc.clone(), msg));
                    continue;
                }
            },
        }
        if inst.segmentation.is_none() && inst.bbox.is_none() {
            imported.issues.push(Issue::warning(
                rel_json.clone(),
                loc.clone(),
                "object has neither segmentation nor bbox; dropped",
            ));
            continue;
        }
        imported.dataset.images[img_idx].instances.push(inst);
    }
    Ok(())
}

fn parse_segmentation(seg: &Value, w: u32, h: u32) -> std::result::Result<Segmentation, String> {
    match seg {
        Value::Array(polys) => {
            let mut out = Vec::new();
            for (k, p) in polys.iter().enumerate() {
                let Value::Array(coords) = p else {
                    return Err(format!("polygon {k} is not a list of numbers"));
                };
                let mut v = Vec::with_capacity(coords.len());
                for c in coords {
                    match c.as_f64() {
                        Some(x) if x.is_finite() => v.push(x),
                        _ => return Err(format!("polygon {k} has a non-numeric coordinate {c}")),
                    }
                }
                if v.len() % 2 != 0 {
                    return Err(format!(
                        "polygon {k} has an odd number of coordinates ({})",
                        v.len()
                    ));
                }
                out.push(v);
            }
            Ok(Segmentation::Polygons { polygons: out })
        }
        Value::Object(o) => {
            let size = o
                .get("size")
                .and_then(Value::as_array)
                .filter(|s| s.len() == 2)
                .and_then(|s| Some((s[0].as_u64()?, s[1].as_u64()?)))
                .ok_or("RLE needs \"size\": [height, width]")?;
            let (rh, rw) = size;
            if rh != u64::from(h) || rw != u64::from(w) {
                return Err(format!(
                    "mask size {rh}x{rw} (h x w) does not match the image {h}x{w}"
                ));
            }
            let counts = match o.get("counts") {
                Some(Value::String(s)) => mask_codec::decode_counts_string(s, h, w)
                    .map_err(|e| format!("compressed RLE counts: {e}"))?,
                Some(Value::Array(a)) => a
                    .iter()
                    .map(|c| c.as_u64().and_then(|x| u32::try_from(x).ok()))
                    .collect::<Option<Vec<u32>>>()
                    .ok_or("RLE counts must be non-negative integers")?,
                _ => return Err("RLE needs \"counts\" (string or list)".into()),
            };
            let total: u64 = counts.iter().map(|&c| u64::from(c)).sum();
            if total != rh * rw {
                return Err(format!(
                    "RLE counts sum to {total} but the mask has {} pixels",
                    rh * rw
                ));
            }
            Ok(Segmentation::Rle {
                height: h,
                width: w,
                counts,
            })
        }
        other => Err(format!("unsupported segmentation value {other}")),
    }
}

/// Write `ds` as COCO under `out`: `annotations/instances_<split>.json` and `images/<split>/…`
/// (images without a split go to `instances_all.json` / `images/`). `images` maps each
/// record's `file` to the bytes' current location.
pub fn write(ds: &Dataset, images: &BTreeMap<String, PathBuf>, out: &Path) -> Result<()> {
    let mut groups: BTreeMap<Option<Split>, Vec<&ImageRecord>> = BTreeMap::new();
    for im in &ds.images {
        groups.entry(im.split).or_default().push(im);
    }
    fs::create_dir_all(out.join("annotations"))?;
    let categories: Vec<CocoCategory> = ds
        .categories
        .iter()
        .enumerate()
        .map(|(i, n)| CocoCategory {
            id: i as i64 + 1,
            name: n.clone(),
            supercategory: None,
        })
        .collect();
    let cat_id: HashMap<&str, i64> = categories.iter().map(|c| (c.name.as_str(), c.id)).collect();
    for (split, imgs) in groups {
        let name = split.map(Split::as_str).unwrap_or("all");
        let img_dir = match split {
            Some(s) => out.join("images").join(s.as_str()),
            None => out.join("images"),
        };
        let mut file = CocoFile {
            images: Vec::new(),
            annotations: Vec::new(),
            categories: Vec::new(),
        };
        let mut ann_id = 0i64;
        for (k, im) in imgs.iter().enumerate() {
            let id = k as i64 + 1;
            let file_name = strip_split(&im.file, split);
            file.images.push(CocoImage {
                id,
                file_name: file_name.clone(),
                width: im.width,
                height: im.height,
                label: im.label.clone(),
            });
            if let Some(src) = images.get(&im.file) {
                crate::copy_file(src, &img_dir.join(&file_name))?;
            }
            for inst in &im.instances {
                ann_id += 1;
                let segmentation = inst.segmentation.as_ref().map(|s| match s {
                    Segmentation::Polygons { polygons } => serde_json::json!(polygons),
                    // Crowd regions keep uncompressed counts (the COCO convention), others
                    // use the compact string form.
                    Segmentation::Rle {
                        height,
                        width,
                        counts,
                    } => match (
                        inst.iscrowd,
                        mask_codec::encode_counts_string(*height, *width, counts),
                    ) {
                        (false, Ok(s)) => serde_json::json!({"size": [height, width], "counts": s}),
                        _ => serde_json::json!({"size": [height, width], "counts": counts}),
                    },
                });
                let area = match &inst.segmentation {
                    Some(Segmentation::Rle { .. }) => inst
                        .segmentation
                        .as_ref()
                        .and_then(|s| s.rle_area())
                        .map(|a| a as f64),
                    Some(Segmentation::Polygons { polygons }) => {
                        Some(polygons.iter().map(|p| shoelace(p)).sum())
                    }
                    None => inst.bbox.map(|b| b[2] * b[3]),
                };
                file.annotations.push(CocoAnnotation {
                    id: ann_id,
                    image_id: id,
                    category_id: cat_id.get(inst.label.as_str()).copied().unwrap_or(0),
                    segmentation,
                    bbox: inst.bbox.map(|b| b.to_vec()),
                    iscrowd: u8::from(inst.iscrowd),
                    area,
                    difficult: inst.difficult,
                    truncated: inst.truncated,
                });
            }
        }
        file.categories = categories
            .iter()
            .map(|c| CocoCategory {
                id: c.id,
                name: c.name.clone(),
                supercategory: c.supercategory.clone(),
            })
            .collect();
        let bytes = serde_json::to_vec(&file)?;
        fs::write(
            out.join("annotations")
                .join(format!("instances_{name}.json")),
            bytes,
        )?;
    }
    Ok(())
}

/// `train/a/b.jpg` with split train → `a/b.jpg`.
pub(crate) fn strip_split(file: &str, split: Option<Split>) -> String {
    match split {
        Some(s) => file
            .strip_prefix(&format!("{}/", s.as_str()))
            .unwrap_or(file)
            .to_string(),
        None => file.to_string(),
    }
}

/// Polygon area by the shoelace formula.
pub(crate) fn shoelace(p: &[f64]) -> f64 {
    let n = p.len() / 2;
    let mut a = 0.0;
    for i in 0..n {
        let j = (i + 1) % n;
        a += p[2 * i] * p[2 * j + 1] - p[2 * j] * p[2 * i + 1];
    }
    a.abs() / 2.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_from_file_names() {
        assert_eq!(
            split_from_name(Path::new("instances_train.json")),
            Some(Split::Train)
        );
        assert_eq!(
            split_from_name(Path::new("instances_val2017.json")),
            Some(Split::Val)
        );
        assert_eq!(split_from_name(Path::new("labels.json")), None);
    }

    #[test]
    fn rle_of_wrong_size_is_rejected() {
        let v = serde_json::json!({"size": [4, 5], "counts": [20]});
        let e = parse_segmentation(&v, 4, 4).unwrap_err();
        assert!(e.contains("does not match the image 4x4"), "{e}");
    }

    #[test]
    fn rle_counts_must_cover_the_mask() {
        let v = serde_json::json!({"size": [2, 2], "counts": [1, 1]});
        let e = parse_segmentation(&v, 2, 2).unwrap_err();
        assert!(e.contains("sum to 2"), "{e}");
    }

    #[test]
    fn shoelace_square() {
        assert_eq!(shoelace(&[0.0, 0.0, 2.0, 0.0, 2.0, 2.0, 0.0, 2.0]), 4.0);
    }
}
