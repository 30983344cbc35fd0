//! YOLO (Ultralytics layout): `data.yaml` with `names` (list or `{id: name}` map) and split
//! folders, `images/<split>/x.jpg` with labels in `labels/<split>/x.txt`.
//!
//! A label line is `cls cx cy w h` (detect: exactly five numbers) or `cls x1 y1 x2 y2 …`
//! (segmentation polygon), coordinates normalized to [0, 1] by the image size. YOLO cannot
//! hold several polygons per object, RLE masks, crowd flags or image-level labels: the writer
//! reports what it had to approximate.

use crate::error::{DatasetError, Issue, Result, parse_err};
use crate::model::{Dataset, ImageRecord, Instance, Segmentation, Split, polygons_bbox};
use crate::{Imported, copy_file};
use fs_err as fs;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The data YAML of a YOLO data set: `data.yaml`, `dataset.yaml` or the only `*.yaml` at the root.
pub fn find_data_yaml(root: &Path) -> Option<PathBuf> {
    for n in ["data.yaml", "dataset.yaml", "data.yml"] {
        let p = root.join(n);
        if p.is_file() {
            return Some(p);
        }
    }
    let yamls: Vec<PathBuf> = fs::read_dir(root)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    (yamls.len() == 1 && root.join("labels").is_dir()).then(|| yamls[0].clone())
}

fn parse_names(yaml: &serde_yaml::Value, file: &Path) -> Result<Vec<String>> {
    let names = yaml
        .get("names")
        .ok_or_else(|| parse_err(file, "no `names` in the data YAML"))?;
    match names {
        serde_yaml::Value::Sequence(s) => s
            .iter()
            .map(|v| {
                v.as_str()
                    .map(String::from)
                    .ok_or_else(|| parse_err(file, "`names` entries must be strings"))
            })
            .collect(),
        serde_yaml::Value::Mapping(m) => {
            let mut pairs = Vec::new();
            for (k, v) in m {
                let id = k
                    .as_u64()
                    .ok_or_else(|| parse_err(file, "`names` keys must be class indices 0, 1, …"))?;
                let n = v
                    .as_str()
                    .ok_or_else(|| parse_err(file, "`names` values must be strings"))?;
                pairs.push((id as usize, n.to_string()));
            }
            pairs.sort();
            for (i, (id, _)) in pairs.iter().enumerate() {
                if *id != i {
                    return Err(parse_err(
                        file,
                        format!(
                            "`names` must number classes 0..{} without gaps",
                            pairs.len()
                        ),
                    ));
                }
            }
            Ok(pairs.into_iter().map(|(_, n)| n).collect())
        }
        _ => Err(parse_err(file, "`names` must be a list or a map")),
    }
}

/// Read a YOLO data set rooted at `root`.
pub fn read(root: &Path) -> Result<Imported> {
    let yaml_path = find_data_yaml(root).ok_or_else(|| {
        DatasetError::Format(format!(
            "{}: no YOLO data YAML (data.yaml with `names`)",
            root.display()
        ))
    })?;
    let text = fs::read_to_string(&yaml_path)?;
    let yaml: serde_yaml::Value = serde_yaml::from_str(&text).map_err(|e| {
        let loc = e
            .location()
            .map(|l| format!("line {} column {}: ", l.line(), l.column()))
            .unwrap_or_default();
        parse_err(&yaml_path, format!("{loc}{e}"))
    })?;
    let names = parse_names(&yaml, &yaml_path)?;
    let base = yaml
        .get("path")
        .and_then(|p| p.as_str())
        .map(PathBuf::from)
        .filter(|p| p.is_relative())
        .map(|p| root.join(p))
        .filter(|p| p.is_dir())
        .unwrap_or_else(|| root.to_path_buf());
    // Split image folders: from the YAML, else images/<split>.
    let mut split_dirs: Vec<(Option<Split>, PathBuf)> = Vec::new();
    for s in Split::ALL {
        let key = s.as_str();
        let dir = yaml
            .get(key)
            .and_then(|v| v.as_str())
            .map(|d| base.join(d))
            .or_else(|| Some(base.join("images").join(key)))
            .filter(|d| d.is_dir());
        if let Some(d) = dir
            && !split_dirs.iter().any(|(_, x)| x == &d)
        {
            split_dirs.push((Some(s), d));
        }
    }
    if split_dirs.is_empty() && base.join("images").is_dir() {
        split_dirs.push((None, base.join("images")));
    }
    let mut imported = Imported::default();
    imported.dataset.categories = names.clone();
    for (split, dir) in split_dirs {
        for e in walkdir::WalkDir::new(&dir).sort_by_file_name() {
            let e = e.map_err(|e| DatasetError::Io(std::io::Error::other(e.to_string())))?;
            if !e.file_type().is_file() || !crate::is_image_file(e.path()) {
                continue;
            }
            let img = e.path();
            let rel_img = crate::rel_display(&dir, img);
            let file = match split {
                Some(s) => format!("{}/{rel_img}", s.as_str()),
                None => rel_img.clone(),
            };
            let (w, h) = match image::image_dimensions(img) {
                Ok(d) => d,
                Err(err) => {
                    imported.issues.push(Issue::error(
                        crate::rel_display(root, img),
                        None,
                        format!("corrupt or unsupported image: {err}"),
                    ));
                    continue;
                }
            };
            let mut rec = ImageRecord::new(file.clone(), w, h);
            rec.split = split;
            let label_path = label_path_for(root, &base, img);
            if let Some(lp) = label_path.filter(|p| p.is_file()) {
                read_label_file(root, &lp, &names, &mut rec, &mut imported.issues)?;
            }
            imported.sources.insert(file, img.to_path_buf());
            imported.dataset.images.push(rec);
        }
    }
    imported.dataset.normalize();
    Ok(imported)
}

/// `…/images/…/x.jpg` → `…/labels/…/x.txt` (last `images` component replaced).
fn label_path_for(_root: &Path, _base: &Path, img: &Path) -> Option<PathBuf> {
    let comps: Vec<_> = img.components().collect();
    let idx = comps.iter().rposition(|c| c.as_os_str() == "images")?;
    let mut p = PathBuf::new();
    for (i, c) in comps.iter().enumerate() {
        if i == idx {
            p.push("labels");
        } else {
            p.push(c.as_os_str());
        }
    }
    Some(p.with_extension("txt"))
}

fn read_label_file(
    root: &Path,
    path: &Path,
    names: &[String],
    rec: &mut ImageRecord,
    issues: &mut Vec<Issue>,
) -> Result<()> {
    let rel = crate::rel_display(root, path);
    let text = fs::read_to_string(path)?;
    let (w, h) = (f64::from(rec.width), f64::from(rec.height));
    for (ln, line) in text.lines().enumerate() {
        let loc = Some(format!("line {}", ln + 1));
        let toks: Vec<&str> = line.split_whitespace().collect();
        if toks.is_empty() {
            continue;
        }
        let Ok(cls) = toks[0].parse::<usize>() else {
            issues.push(Issue::error(
                &rel,
                loc,
                format!("class {:?} is not an index", toks[0]),
            ));
            continue;
        };
        let Some(name) = names.get(cls) else {
            issues.push(Issue::error(
                &rel,
                loc,
                format!("class {cls} is not in `names` ({} classes)", names.len()),
            ));
            continue;
        };
        let nums: std::result::Result<Vec<f64>, _> =
            toks[1..].iter().map(|t| t.parse::<f64>()).collect();
        let Ok(nums) = nums.map(|v| v.into_iter().filter(|x| x.is_finite()).collect::<Vec<_>>())
        else {
            issues.push(Issue::error(&rel, loc, "coordinates must be numbers"));
            continue;
        };
        if nums.len() != toks.len() - 1 {
            issues.push(Issue::error(
                &rel,
                loc,
                "coordinates must be finite numbers",
            ));
            continue;
        }
        if nums.iter().any(|&v| !(-1e-6..=1.0 + 1e-6).contains(&v)) {
            issues.push(Issue::warning(
                &rel,
                loc.clone(),
                "normalized coordinates outside [0, 1] (object reaches outside the image)",
            ));
        }
        let mut inst = Instance::new(name.clone());
        inst.source_id = Some(format!("{rel}:{}", ln + 1));
        if nums.len() == 4 {
            let (cx, cy, bw, bh) = (nums[0] * w, nums[1] * h, nums[2] * w, nums[3] * h);
            inst.bbox = Some([cx - bw / 2.0, cy - bh / 2.0, bw, bh]);
        } else if nums.len() % 2 != 0 {
            issues.push(Issue::error(&rel, loc, "odd number of polygon coordinates"));
            continue;
        } else if nums.len() < 6 {
            issues.push(Issue::error(
                &rel,
                loc,
                format!(
                    "polygon with {} point(s); at least 3 needed",
                    nums.len() / 2
                ),
            ));
            continue;
        } else {
            let poly: Vec<f64> = nums
                .chunks_exact(2)
                .flat_map(|xy| [xy[0] * w, xy[1] * h])
                .collect();
            inst.bbox = polygons_bbox(std::slice::from_ref(&poly));
            inst.segmentation = Some(Segmentation::Polygons {
                polygons: vec![poly],
            });
        }
        rec.instances.push(inst);
    }
    Ok(())
}

/// Write `ds` in the Ultralytics layout under `out` (images/, labels/, data.yaml).
/// Returns notes about what YOLO cannot represent.
pub fn write(ds: &Dataset, images: &BTreeMap<String, PathBuf>, out: &Path) -> Result<Vec<String>> {
    let mut notes = Vec::new();
    let mut lost_multi = 0usize;
    let mut lost_rle = 0usize;
    let mut lost_crowd = 0usize;
    let mut lost_labels = 0usize;
    let names = &ds.categories;
    let mut splits_present = Vec::new();
    for im in &ds.images {
        let (sub, rel) = match im.split {
            Some(s) => (s.as_str(), crate::coco::strip_split(&im.file, Some(s))),
            None => ("all", im.file.clone()),
        };
        if !splits_present.contains(&sub) {
            splits_present.push(sub);
        }
        if let Some(src) = images.get(&im.file) {
            copy_file(src, &out.join("images").join(sub).join(&rel))?;
        }
        if im.label.is_some() {
            lost_labels += 1;
        }
        let (w, h) = (f64::from(im.width), f64::from(im.height));
        let mut text = String::new();
        for inst in &im.instances {
            let cls = names.iter().position(|n| n == &inst.label).ok_or_else(|| {
                DatasetError::Format(format!("label {:?} missing from categories", inst.label))
            })?;
            if inst.iscrowd {
                lost_crowd += 1;
            }
            let traced;
            let polygons = match &inst.segmentation {
                Some(Segmentation::Polygons { polygons }) => Some(polygons),
                Some(Segmentation::Rle {
                    height,
                    width,
                    counts,
                }) => {
                    lost_rle += 1;
                    traced = crate::mask_codec::counts_to_polygons(*height, *width, counts)?;
                    Some(&traced)
                }
                None => None,
            };
            match polygons.filter(|p| !p.is_empty()) {
                Some(polygons) => {
                    if polygons.len() > 1 {
                        lost_multi += 1;
                    }
                    let poly = polygons
                        .iter()
                        .max_by(|a, b| {
                            crate::coco::shoelace(a).total_cmp(&crate::coco::shoelace(b))
                        })
                        .map(Vec::as_slice)
                        .unwrap_or(&[]);
                    text.push_str(&cls.to_string());
                    for xy in poly.chunks_exact(2) {
                        text.push_str(&format!(" {} {}", xy[0] / w, xy[1] / h));
                    }
                    text.push('\n');
                }
                None => {
                    if let Some(b) = inst.bbox {
                        text.push_str(&format!(
                            "{cls} {} {} {} {}\n",
                            (b[0] + b[2] / 2.0) / w,
                            (b[1] + b[3] / 2.0) / h,
                            b[2] / w,
                            b[3] / h
                        ));
                    }
                }
            }
        }
        let lp = out
            .join("labels")
            .join(sub)
            .join(&rel)
            .with_extension("txt");
        if let Some(p) = lp.parent() {
            fs::create_dir_all(p)?;
        }
        fs::write(lp, text)?;
    }
    let mut yaml = String::from("path: .\n");
    for s in &splits_present {
        let key = if *s == "all" { "train" } else { s };
        yaml.push_str(&format!("{key}: images/{s}\n"));
    }
    yaml.push_str("names:\n");
    for (i, n) in names.iter().enumerate() {
        yaml.push_str(&format!("  {i}: {}\n", serde_json::to_string(n)?));
    }
    fs::create_dir_all(out)?;
    fs::write(out.join("data.yaml"), yaml)?;
    if lost_multi > 0 {
        notes.push(format!(
            "YOLO: {lost_multi} multi-polygon object(s) kept only their largest polygon"
        ));
    }
    if lost_rle > 0 {
        notes.push(format!(
            "YOLO: {lost_rle} RLE mask(s) traced to polygons (holes are filled)"
        ));
    }
    if lost_crowd > 0 {
        notes.push(format!("YOLO: {lost_crowd} crowd flag(s) dropped"));
    }
    if lost_labels > 0 {
        notes.push(format!(
            "YOLO: {lost_labels} image-level label(s) not representable (use folder export)"
        ));
    }
    Ok(notes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_as_map_and_list() {
        let y: serde_yaml::Value = serde_yaml::from_str("names: {0: a, 1: b}").unwrap();
        assert_eq!(
            parse_names(&y, Path::new("d.yaml")).unwrap(),
            vec!["a", "b"]
        );
        let y: serde_yaml::Value = serde_yaml::from_str("names: [x, y]").unwrap();
        assert_eq!(
            parse_names(&y, Path::new("d.yaml")).unwrap(),
            vec!["x", "y"]
        );
        let y: serde_yaml::Value = serde_yaml::from_str("names: {0: a, 2: b}").unwrap();
        assert!(parse_names(&y, Path::new("d.yaml")).is_err());
    }

    #[test]
    fn label_path_mirrors_images() {
        let p = label_path_for(
            Path::new("/r"),
            Path::new("/r"),
            Path::new("/r/images/train/a.jpg"),
        );
        assert_eq!(p.unwrap(), PathBuf::from("/r/labels/train/a.txt"));
    }
}
