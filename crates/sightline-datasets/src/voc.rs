//! Pascal VOC: `Annotations/*.xml`, `SegmentationObject/*.png`, `SegmentationClass/*.png`,
//! `ImageSets/{Segmentation,Main}/<split>.txt`, images in `JPEGImages/`.
//!
//! Boxes are 1-based inclusive pixels in VOC and become COCO `[x, y, w, h]` with
//! `x = xmin - 1`, `w = xmax - xmin + 1`. Object `i` of an XML file owns the pixels of value
//! `i` in its `SegmentationObject` mask. Pixels of value 255 are the void border VOC draws
//! around objects: they are attributed to the adjacent object whose box contains them (grown
//! from the object's own pixels, then any void pixel inside exactly one box), which restores
//! the drawn outline; the number of attributed pixels is reported. Class names of mask
//! indices come from `class_names.txt` (one per line, index 1 first) when present, else from
//! the XML names of the objects.
//! When images live elsewhere (no `JPEGImages/`), `images/` folders in the VOC root or next
//! to it are searched by file name.
//!
//! Agreement with polygon formats: a VOC mask is a rasterisation, and rasterisers differ on
//! the pixels an object's outline passes through (partially covered pixels). pycocotools (and
//! so our COCO/YOLO polygon import) tests each pixel's centre; Pillow, which many VOC-style
//! generators use (widgets-a's among them), fills by another rule. On widgets-a this leaves
//! 110 pixels, all on outlines, where the VOC and COCO imports disagree outside the void
//! band: 19 thin scratches fall below IoU 0.98 over non-void pixels (worst 0.9355), while over
//! the pixels no outline passes through all 368 objects agree exactly (test
//! `coco_and_voc_imports_agree`). That difference is in the data, not in either reader. The
//! void band itself is undetermined: giving it to the object (as here) or to the background
//! makes whole VOC masks differ from polygon ones by about half the outline either way.

use crate::error::{DatasetError, Issue, Result, parse_err};
use crate::mask_codec::{self, Bitmap};
use crate::model::{Dataset, ImageRecord, Instance, Segmentation, Split};
use crate::{Imported, copy_file};
use fs_err as fs;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

struct XmlObject {
    name: String,
    difficult: bool,
    truncated: bool,
    bbox: Option<[f64; 4]>,
}

struct XmlAnn {
    filename: Option<String>,
    /// Image-level label (`<label>`, not standard VOC: what our writer adds so a round trip
    /// keeps classification labels).
    label: Option<String>,
    size: Option<(u32, u32)>,
    objects: Vec<XmlObject>,
}

fn parse_xml(path: &Path, rel: &str, issues: &mut Vec<Issue>) -> Result<XmlAnn> {
    let text = fs::read_to_string(path)?;
    let doc = roxmltree::Document::parse(&text)
        .map_err(|e| parse_err(path, format!("invalid XML: {e}")))?;
    let root = doc.root_element();
    let child_text = |n: roxmltree::Node<'_, '_>, tag: &str| -> Option<String> {
        n.children()
            .find(|c| c.has_tag_name(tag))
            .and_then(|c| c.text())
            .map(|t| t.trim().to_string())
    };
    let filename = child_text(root, "filename");
    let label = child_text(root, "label").filter(|l| !l.is_empty());
    let size = root
        .children()
        .find(|c| c.has_tag_name("size"))
        .and_then(|s| {
            let w = child_text(s, "width")?.parse().ok()?;
            let h = child_text(s, "height")?.parse().ok()?;
            Some((w, h))
        });
    let mut objects = Vec::new();
    for (k, o) in root
        .children()
        .filter(|c| c.has_tag_name("object"))
        .enumerate()
    {
        let pos = doc.text_pos_at(o.range().start);
        let loc = Some(format!("object {} (line {})", k + 1, pos.row));
        let Some(name) = child_text(o, "name").filter(|n| !n.is_empty()) else {
            issues.push(Issue::error(rel, loc, "object without <name>"));
            continue;
        };
        let flag = |tag: &str| {
            child_text(o, tag)
                .map(|v| v == "1" || v.eq_ignore_ascii_case("true"))
                .unwrap_or(false)
        };
        let bbox = match o.children().find(|c| c.has_tag_name("bndbox")) {
            None => None,
            Some(b) => {
                let num = |t: &str| child_text(b, t).and_then(|v| v.parse::<f64>().ok());
                match (num("xmin"), num("ymin"), num("xmax"), num("ymax")) {
                    (Some(x0), Some(y0), Some(x1), Some(y1)) if x1 >= x0 && y1 >= y0 => {
                        Some([x0 - 1.0, y0 - 1.0, x1 - x0 + 1.0, y1 - y0 + 1.0])
                    }
                    _ => {
                        issues.push(Issue::error(
                            rel,
                            loc.clone(),
                            "<bndbox> needs numeric xmin <= xmax and ymin <= ymax",
                        ));
                        continue;
                    }
                }
            }
        };
        objects.push(XmlObject {
            name,
            difficult: flag("difficult"),
            truncated: flag("truncated"),
            bbox,
        });
    }
    Ok(XmlAnn {
        filename,
        label,
        size,
        objects,
    })
}

fn stems(dir: &Path, ext: &str) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x.eq_ignore_ascii_case(ext)))
                .filter_map(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn read_splits(root: &Path) -> HashMap<String, Split> {
    let mut out = HashMap::new();
    for sub in ["Segmentation", "Main"] {
        let dir = root.join("ImageSets").join(sub);
        for split in Split::ALL {
            let p = dir.join(format!("{}.txt", split.as_str()));
            if let Ok(text) = fs::read_to_string(&p) {
                for line in text.lines() {
                    if let Some(id) = line.split_whitespace().next() {
                        out.entry(id.to_string()).or_insert(split);
                    }
                }
            }
        }
        if !out.is_empty() {
            break;
        }
    }
    out
}

fn image_index(root: &Path) -> HashMap<String, PathBuf> {
    let mut dirs = vec![root.join("JPEGImages")];
    if !dirs[0].is_dir() {
        dirs = vec![root.join("images")];
        if let Some(parent) = root.parent() {
            dirs.push(parent.join("images"));
        }
    }
    let mut idx = HashMap::new();
    for d in dirs.iter().filter(|d| d.is_dir()) {
        for e in walkdir::WalkDir::new(d).into_iter().flatten() {
            if e.file_type().is_file() && crate::is_image_file(e.path()) {
                idx.entry(e.file_name().to_string_lossy().into_owned())
                    .or_insert_with(|| e.path().to_path_buf());
            }
        }
        if !idx.is_empty() {
            break;
        }
    }
    idx
}

/// Read a VOC data set rooted at `root`.
pub fn read(root: &Path) -> Result<Imported> {
    let ann_dir = root.join("Annotations");
    let obj_dir = root.join("SegmentationObject");
    let cls_dir = root.join("SegmentationClass");
    let mut ids = stems(&ann_dir, "xml");
    for s in stems(&obj_dir, "png") {
        if !ids.contains(&s) {
            ids.push(s);
        }
    }
    ids.sort();
    if ids.is_empty() {
        return Err(DatasetError::Format(format!(
            "{}: no VOC Annotations/*.xml or SegmentationObject/*.png",
            root.display()
        )));
    }
    let splits = read_splits(root);
    let images = image_index(root);
    let class_names: Option<Vec<String>> = fs::read_to_string(root.join("class_names.txt"))
        .ok()
        .map(|t| {
            t.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(String::from)
                .collect()
        });
    let mut imported = Imported::default();
    let mut void_attributed = 0u64;
    let mut void_left = 0u64;
    for id in &ids {
        let xml_path = ann_dir.join(format!("{id}.xml"));
        let xml_rel = format!("Annotations/{id}.xml");
        let ann = if xml_path.is_file() {
            Some(parse_xml(&xml_path, &xml_rel, &mut imported.issues)?)
        } else {
            None
        };
        let file_name = ann
            .as_ref()
            .and_then(|a| a.filename.clone())
            .unwrap_or_else(|| format!("{id}.jpg"));
        let Some(src) = images.get(&file_name).cloned().or_else(|| {
            ["jpg", "jpeg", "png"]
                .iter()
                .find_map(|e| images.get(&format!("{id}.{e}")).cloned())
        }) else {
            imported.issues.push(Issue::error(
                xml_rel.clone(),
                None,
                format!("image {file_name:?} not found (JPEGImages/ or images/)"),
            ));
            continue;
        };
        let split = splits.get(id).copied();
        let base = src
            .file_name()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or(file_name.clone());
        let file = match split {
            Some(s) => format!("{}/{base}", s.as_str()),
            None => base,
        };
        let (mut w, mut h) = ann.as_ref().and_then(|a| a.size).unwrap_or((0, 0));
        if w == 0 || h == 0 {
            match image::image_dimensions(&src) {
                Ok(d) => (w, h) = d,
                Err(e) => {
                    imported.issues.push(Issue::error(
                        crate::rel_display(root, &src),
                        None,
                        format!("cannot read image size: {e}"),
                    ));
                    continue;
                }
            }
        }
        let mut rec = ImageRecord::new(file.clone(), w, h);
        rec.split = split;
        rec.label = ann.as_ref().and_then(|a| a.label.clone());
        let objects = ann.map(|a| a.objects).unwrap_or_default();
        let obj_png = obj_dir.join(format!("{id}.png"));
        let masks = if obj_png.is_file() {
            let rel = format!("SegmentationObject/{id}.png");
            let (mw, mh, data) = mask_codec::read_index_png(&obj_png)?;
            if (mw, mh) != (w, h) {
                imported.issues.push(Issue::error(
                    rel,
                    None,
                    format!("mask is {mw}x{mh} but the image is {w}x{h}"),
                ));
                continue;
            }
            let cls = cls_dir.join(format!("{id}.png"));
            let cls_data = if cls.is_file() {
                let (cw, ch, d) = mask_codec::read_index_png(&cls)?;
                if (cw, ch) != (w, h) {
                    imported.issues.push(Issue::error(
                        format!("SegmentationClass/{id}.png"),
                        None,
                        format!("mask is {cw}x{ch} but the image is {w}x{h}"),
                    ));
                    continue;
                }
                Some(d)
            } else {
                None
            };
            let n_obj = data
                .iter()
                .filter(|&&v| v != 255)
                .max()
                .copied()
                .unwrap_or(0) as usize;
            let n = n_obj.max(objects.len());
            let boxes: Vec<Option<[f64; 4]>> = (0..n)
                .map(|i| objects.get(i).and_then(|o| o.bbox))
                .collect();
            let (ms, att, left) = split_objects(&data, w, h, &boxes);
            void_attributed += att;
            void_left += left;
            Some((ms, cls_data, rel))
        } else {
            None
        };
        let n = objects
            .len()
            .max(masks.as_ref().map(|m| m.0.len()).unwrap_or(0));
        for i in 0..n {
            let obj = objects.get(i);
            let mask = masks.as_ref().map(|m| &m.0[i]);
            let label = match (obj, &masks, &class_names) {
                (Some(o), _, _) => Some(o.name.clone()),
                (None, Some((ms, Some(cls), _)), Some(names)) => {
                    majority_class(&ms[i], cls).and_then(|c| names.get(c as usize - 1).cloned())
                }
                _ => None,
            };
            let Some(label) = label else {
                imported.issues.push(Issue::error(
                    format!("SegmentationObject/{id}.png"),
                    Some(format!("object {}", i + 1)),
                    "mask object has no <object> in the XML and no class name",
                ));
                continue;
            };
            let mut inst = Instance::new(label);
            inst.source_id = Some(format!("{id}#{}", i + 1));
            if let Some(o) = obj {
                inst.difficult = o.difficult;
                inst.truncated = o.truncated;
                inst.bbox = o.bbox;
            }
            if let Some(m) = mask {
                if m.area() > 0 {
                    inst.segmentation = Some(Segmentation::Rle {
                        height: h,
                        width: w,
                        counts: m.to_counts(),
                    });
                    if inst.bbox.is_none() {
                        inst.bbox = bitmap_bbox(m);
                    }
                } else if obj.is_some() {
                    imported.issues.push(Issue::warning(
                        format!("SegmentationObject/{id}.png"),
                        Some(format!("object {}", i + 1)),
                        "object has no pixels in the mask; kept as a box",
                    ));
                }
            }
            if inst.segmentation.is_none() && inst.bbox.is_none() {
                continue;
            }
            rec.instances.push(inst);
        }
        if let Some((ms, Some(cls), rel)) = &masks {
            check_class_consistency(ms, cls, &rec, class_names.as_deref(), rel, &mut imported);
        }
        imported.sources.insert(file, src);
        imported.dataset.images.push(rec);
    }
    if void_attributed > 0 || void_left > 0 {
        imported.notes.push(format!(
            "VOC void border (255): {void_attributed} pixel(s) attributed to adjacent objects, \
             {void_left} left as background"
        ));
    }
    imported.dataset.normalize();
    Ok(imported)
}

fn majority_class(mask: &Bitmap, cls: &[u8]) -> Option<u8> {
    let mut hist = [0u64; 256];
    for (m, c) in mask.data.iter().zip(cls) {
        if *m != 0 {
            hist[*c as usize] += 1;
        }
    }
    (1..255)
        .max_by_key(|&c| hist[c])
        .filter(|&c| hist[c] > 0)
        .map(|c| c as u8)
}

/// Check that each object's pixels carry one class in SegmentationClass and that the class
/// index maps to the object's name consistently across the file.
fn check_class_consistency(
    masks: &[Bitmap],
    cls: &[u8],
    rec: &ImageRecord,
    names: Option<&[String]>,
    rel: &str,
    imported: &mut Imported,
) {
    for (i, inst) in rec.instances.iter().enumerate() {
        let Some(m) = masks.get(i) else { continue };
        let Some(c) = majority_class(m, cls) else {
            continue;
        };
        if let Some(names) = names
            && names.get(c as usize - 1) != Some(&inst.label)
        {
            imported.issues.push(Issue::warning(
                rel.replace("SegmentationObject", "SegmentationClass"),
                Some(format!("object {}", i + 1)),
                format!(
                    "class index {c} ({}) disagrees with the XML name {:?}",
                    names.get(c as usize - 1).map(String::as_str).unwrap_or("?"),
                    inst.label
                ),
            ));
        }
    }
}

fn bitmap_bbox(m: &Bitmap) -> Option<[f64; 4]> {
    let (w, h) = (m.width as usize, m.height as usize);
    let (mut x0, mut y0, mut x1, mut y1) = (usize::MAX, usize::MAX, 0, 0);
    for y in 0..h {
        for x in 0..w {
            if m.data[y * w + x] != 0 {
                x0 = x0.min(x);
                y0 = y0.min(y);
                x1 = x1.max(x);
                y1 = y1.max(y);
            }
        }
    }
    (x0 != usize::MAX).then(|| {
        [
            x0 as f64,
            y0 as f64,
            (x1 - x0 + 1) as f64,
            (y1 - y0 + 1) as f64,
        ]
    })
}

/// Split an object-index mask into one bitmap per object (index 1..=n), attributing void
/// (255) pixels: grown from each object's pixels within its box (breadth first), then any
/// remaining void pixel inside exactly one box. Returns (masks, attributed, left).
fn split_objects(
    data: &[u8],
    w: u32,
    h: u32,
    boxes: &[Option<[f64; 4]>],
) -> (Vec<Bitmap>, u64, u64) {
    let (wu, hu) = (w as usize, h as usize);
    let n = boxes.len();
    let mut owner: Vec<u8> = data.to_vec();
    let in_box = |obj: usize, x: usize, y: usize| -> bool {
        match boxes.get(obj).copied().flatten() {
            // One pixel of slack: VOC boxes are integer-rounded.
            Some(b) => {
                let (xf, yf) = (x as f64, y as f64);
                xf >= b[0] - 1.0
                    && xf < b[0] + b[2] + 1.0
                    && yf >= b[1] - 1.0
                    && yf < b[1] + b[3] + 1.0
            }
            None => true,
        }
    };
    let mut frontier: Vec<usize> = (0..wu * hu)
        .filter(|&i| owner[i] != 0 && owner[i] != 255)
        .collect();
    let mut attributed = 0u64;
    while !frontier.is_empty() {
        let mut next = Vec::new();
        for &i in &frontier {
            let o = owner[i];
            let (x, y) = (i % wu, i / wu);
            for dy in -1i64..=1 {
                for dx in -1i64..=1 {
                    let (nx, ny) = (x as i64 + dx, y as i64 + dy);
                    if nx < 0 || ny < 0 || nx >= wu as i64 || ny >= hu as i64 {
                        continue;
                    }
                    let j = ny as usize * wu + nx as usize;
                    if owner[j] == 255 && in_box(o as usize - 1, nx as usize, ny as usize) {
                        owner[j] = o;
                        attributed += 1;
                        next.push(j);
                    }
                }
            }
        }
        frontier = next;
    }
    let mut left = 0u64;
    for (i, own) in owner.iter_mut().enumerate() {
        if *own == 255 {
            let (x, y) = (i % wu, i / wu);
            let cands: Vec<usize> = (0..n)
                .filter(|&o| boxes[o].is_some() && in_box(o, x, y))
                .collect();
            if cands.len() == 1 && cands[0] < 254 {
                *own = cands[0] as u8 + 1;
                attributed += 1;
            } else {
                left += 1;
            }
        }
    }
    let mut masks: Vec<Bitmap> = (0..n).map(|_| Bitmap::zeros(h, w)).collect();
    for (i, &o) in owner.iter().enumerate() {
        if o != 0 && o != 255 && (o as usize) <= n {
            masks[o as usize - 1].data[i] = 1;
        }
    }
    (masks, attributed, left)
}

/// Write `ds` as VOC under `out`. Returns notes about precision loss (overlapping masks).
pub fn write(ds: &Dataset, images: &BTreeMap<String, PathBuf>, out: &Path) -> Result<Vec<String>> {
    let mut notes = Vec::new();
    for d in [
        "Annotations",
        "JPEGImages",
        "SegmentationObject",
        "SegmentationClass",
        "ImageSets/Segmentation",
    ] {
        fs::create_dir_all(out.join(d))?;
    }
    let mut names = ds.categories.clone();
    for im in &ds.images {
        for i in &im.instances {
            if !names.contains(&i.label) {
                names.push(i.label.clone());
            }
        }
    }
    fs::write(out.join("class_names.txt"), names.join("\n") + "\n")?;
    let mut split_lists: BTreeMap<Split, Vec<String>> = BTreeMap::new();
    let mut used_ids: HashMap<String, usize> = HashMap::new();
    let mut overlaps = 0usize;
    let mut thin = 0usize;
    for im in &ds.images {
        let base = im.file.rsplit('/').next().unwrap_or(&im.file);
        let stem = base.rsplit_once('.').map(|(s, _)| s).unwrap_or(base);
        let ext = base.rsplit_once('.').map(|(_, e)| e).unwrap_or("jpg");
        // Unique ids even when two splits hold the same file name.
        let n = used_ids.entry(stem.to_string()).or_insert(0);
        let id = if *n == 0 {
            stem.to_string()
        } else {
            format!("{stem}_{n}")
        };
        *n += 1;
        let img_name = format!("{id}.{ext}");
        if let Some(src) = images.get(&im.file) {
            copy_file(src, &out.join("JPEGImages").join(&img_name))?;
        }
        if let Some(s) = im.split {
            split_lists.entry(s).or_default().push(id.clone());
        }
        let mut xml = format!(
            "<annotation>\n  <folder>JPEGImages</folder>\n  <filename>{}</filename>\n  \
             <size><width>{}</width><height>{}</height><depth>3</depth></size>\n  \
             <segmented>{}</segmented>\n",
            xml_escape(&img_name),
            im.width,
            im.height,
            u8::from(im.instances.iter().any(|i| i.segmentation.is_some()))
        );
        if let Some(l) = &im.label {
            xml.push_str(&format!("  <label>{}</label>\n", xml_escape(l)));
        }
        let (wu, hu) = (im.width as usize, im.height as usize);
        let mut obj = vec![0u8; wu * hu];
        let mut cls = vec![0u8; wu * hu];
        let mut any_mask = false;
        for (k, inst) in im.instances.iter().enumerate() {
            xml.push_str(&format!(
                "  <object>\n    <name>{}</name>\n    <difficult>{}</difficult>\n    <truncated>{}</truncated>\n",
                xml_escape(&inst.label),
                u8::from(inst.difficult),
                u8::from(inst.truncated)
            ));
            if let Some(b) = inst.bbox {
                // VOC boxes are 1-based inclusive pixels: at least one pixel wide and high.
                if b[2] < 1.0 || b[3] < 1.0 {
                    thin += 1;
                }
                xml.push_str(&format!(
                    "    <bndbox><xmin>{}</xmin><ymin>{}</ymin><xmax>{}</xmax><ymax>{}</ymax></bndbox>\n",
                    b[0] + 1.0,
                    b[1] + 1.0,
                    b[0] + b[2].max(1.0),
                    b[1] + b[3].max(1.0)
                ));
            }
            xml.push_str("  </object>\n");
            if let Some(seg) = &inst.segmentation {
                if k >= 254 {
                    notes.push(format!(
                        "{}: more than 254 objects; mask of object {} not written",
                        im.file,
                        k + 1
                    ));
                    continue;
                }
                let m = mask_codec::to_bitmap(seg, im.height, im.width)?;
                let ci = names.iter().position(|n| n == &inst.label).unwrap_or(0) + 1;
                for (i, &v) in m.data.iter().enumerate() {
                    if v != 0 {
                        if obj[i] != 0 {
                            overlaps += 1;
                        }
                        obj[i] = k as u8 + 1;
                        cls[i] = ci.min(254) as u8;
                    }
                }
                any_mask = true;
            }
        }
        xml.push_str("</annotation>\n");
        fs::write(out.join("Annotations").join(format!("{id}.xml")), xml)?;
        if any_mask {
            mask_codec::write_index_png(
                &out.join("SegmentationObject").join(format!("{id}.png")),
                im.width,
                im.height,
                &obj,
            )?;
            mask_codec::write_index_png(
                &out.join("SegmentationClass").join(format!("{id}.png")),
                im.width,
                im.height,
                &cls,
            )?;
        }
    }
    for (s, ids) in split_lists {
        fs::write(
            out.join("ImageSets/Segmentation")
                .join(format!("{}.txt", s.as_str())),
            ids.join("\n") + "\n",
        )?;
    }
    if thin > 0 {
        notes.push(format!(
            "VOC boxes are whole pixels: {thin} box(es) thinner than 1 px widened to 1 px"
        ));
    }
    if overlaps > 0 {
        notes.push(format!(
            "VOC masks hold one object per pixel: {overlaps} overlapping pixel(s) went to the later object"
        ));
    }
    Ok(notes)
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn void_ring_is_attributed_to_its_object() {
        // 5x5: object 1 interior at the centre, ring of 255 around it, background outside.
        #[rustfmt::skip]
        let data = vec![
            0,   0,   0,   0, 0,
            0, 255, 255, 255, 0,
            0, 255,   1, 255, 0,
            0, 255, 255, 255, 0,
            0,   0,   0,   0, 0,
        ];
        let (m, att, left) = split_objects(&data, 5, 5, &[Some([1.0, 1.0, 3.0, 3.0])]);
        assert_eq!(att, 8);
        assert_eq!(left, 0);
        assert_eq!(m[0].area(), 9);
    }

    #[test]
    fn void_only_object_is_recovered_from_its_box() {
        // A thin object drawn entirely as outline (no interior pixel).
        let data = vec![0, 255, 255, 255, 0, 0];
        let (m, _, left) = split_objects(&data, 6, 1, &[Some([1.0, 0.0, 3.0, 1.0])]);
        assert_eq!(m[0].data, vec![0, 1, 1, 1, 0, 0]);
        assert_eq!(left, 0);
    }

    #[test]
    fn void_between_two_boxes_is_left() {
        let data = vec![1, 255, 2];
        let boxes = [Some([0.0, 0.0, 1.0, 1.0]), Some([2.0, 0.0, 1.0, 1.0])];
        let (m, _, _) = split_objects(&data, 3, 1, &boxes);
        // Both boxes (with one pixel of slack) reach the middle pixel: the first grown wins.
        assert_eq!(m[0].area() + m[1].area(), 3);
    }
}
