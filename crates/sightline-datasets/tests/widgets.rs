//! The widgets-a fixture in COCO, VOC, image-folder (and, via export, YOLO) form: every import
//! must describe the same scenes.

#![allow(clippy::unwrap_used)]

mod common;

use sightline_datasets::mask_codec::{Bitmap, to_bitmap};
use sightline_datasets::{Dataset, Format, ImageRecord, Imported, read, validate};
use std::collections::BTreeMap;

fn by_file(ds: &Dataset) -> BTreeMap<&str, &ImageRecord> {
    ds.images.iter().map(|i| (i.file.as_str(), i)).collect()
}

fn masks(img: &ImageRecord) -> Vec<Bitmap> {
    img.instances
        .iter()
        .map(|i| {
            to_bitmap(
                i.segmentation.as_ref().expect("segmentation"),
                img.height,
                img.width,
            )
            .unwrap()
        })
        .collect()
}

fn import(root: &std::path::Path, format: Format) -> Imported {
    let detected = sightline_datasets::detect_format(root).unwrap();
    assert_eq!(detected, format, "{}", root.display());
    let mut imp = read(root, format).unwrap();
    let warnings = validate::check(&mut imp, false, true).unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    imp
}

/// Compare instances image by image: same labels in the same order, mask IoU >= 0.98.
/// `void(file)` gives the pixels to leave out of the IoU (VOC's 255 border: "don't care" in
/// the VOC evaluation, since the true outline runs somewhere inside that band).
///
/// With `painter` set, `a`'s masks are first composited in drawing order as a VOC object
/// mask holds them (one object per pixel, later objects cover earlier ones).
fn assert_same_instances(
    a: &Dataset,
    b: &Dataset,
    what: &str,
    void: &dyn Fn(&str) -> Option<Vec<bool>>,
    painter: bool,
) -> f64 {
    let (ma, mb) = (by_file(a), by_file(b));
    assert_eq!(
        ma.keys().collect::<Vec<_>>(),
        mb.keys().collect::<Vec<_>>(),
        "{what}: image lists"
    );
    let mut worst = 1.0f64;
    let mut n = 0;
    let mut bad = Vec::new();
    let mut boundary_only = 0usize;
    for (file, ia) in &ma {
        let ib = mb[file];
        assert_eq!(
            (ia.width, ia.height, ia.split),
            (ib.width, ib.height, ib.split),
            "{what}: {file}"
        );
        let la: Vec<&str> = ia.instances.iter().map(|i| i.label.as_str()).collect();
        let lb: Vec<&str> = ib.instances.iter().map(|i| i.label.as_str()).collect();
        assert_eq!(la, lb, "{what}: labels of {file}");
        let ignore = void(file);
        let mut ma = masks(ia);
        if painter {
            for k in 0..ma.len() {
                for later in k + 1..ma.len() {
                    let cover = ma[later].data.clone();
                    for (p, c) in ma[k].data.iter_mut().zip(cover) {
                        if c != 0 {
                            *p = 0;
                        }
                    }
                }
            }
        }
        for (k, (mut x, mut y)) in ma.into_iter().zip(masks(ib)).enumerate() {
            if let Some(ign) = &ignore {
                for (i, &skip) in ign.iter().enumerate() {
                    if skip {
                        x.data[i] = 0;
                        y.data[i] = 0;
                    }
                }
            }
            let iou = x.iou(&y);
            // Thin objects (scratches of 25-120 px) can miss 0.98 by one to four pixels where
            // PIL (which drew the VOC masks) and pycocotools (COCO polygons) round the outline
            // differently. Those are accepted only when every differing pixel touches the void
            // band, i.e. lies on the object's boundary.
            //
            // Why the VOC reader cannot close this gap: the fixture draws each object with
            // PIL `polygon(fill=i, outline=255)`, so its 255 pixels are the object's own
            // outline, and the reader already gives them back to the object (grown from its
            // pixels within its box), which is the convention that fits. The pixels that
            // differ here are not void pixels (void is masked out of this IoU above): they
            // are interior pixels next to the outline where PIL's fill of the unrounded
            // polygon and pycocotools' rasterisation of the COCO polygon (coordinates
            // rounded to 2 decimals) disagree. On widgets-a: 349 of 368 objects reach 0.98
            // outright; the other 19 differ by at most 4 such pixels.
            let diff: Vec<usize> = (0..x.data.len())
                .filter(|&i| x.data[i] != y.data[i])
                .collect();
            let on_boundary = ignore.as_ref().is_some_and(|ign| {
                let w = ia.width as usize;
                diff.iter().all(|&i| {
                    let (px, py) = ((i % w) as i64, (i / w) as i64);
                    (-1..=1).any(|dy| {
                        (-1..=1).any(|dx| {
                            let (nx, ny) = (px + dx, py + dy);
                            nx >= 0
                                && ny >= 0
                                && (nx as usize) < w
                                && ign.get(ny as usize * w + nx as usize) == Some(&true)
                        })
                    })
                })
            });
            if iou < 0.98 && on_boundary && diff.len() <= 4 {
                boundary_only += 1;
                worst = worst.min(iou);
                n += 1;
                continue;
            }
            if iou < 0.98 {
                bad.push(format!(
                    "{file} object {k} ({}) IoU {iou:.4} areas {} vs {}",
                    la[k],
                    x.area(),
                    y.area()
                ));
            }
            worst = worst.min(iou);
            n += 1;
        }
    }
    assert!(
        bad.is_empty(),
        "{what}: {} of {n} objects below IoU 0.98:\n{}",
        bad.len(),
        bad.join("\n")
    );
    assert!(n > 300, "{what}: only {n} objects compared");
    // The exception above stays an exception.
    assert!(
        boundary_only * 10 <= n,
        "{what}: {boundary_only} of {n} objects differ on the boundary"
    );
    eprintln!(
        "{what}: {n} objects, {boundary_only} below 0.98 by <= 4 boundary pixels, worst IoU {worst:.4}"
    );
    worst
}

#[test]
fn coco_and_voc_imports_agree() {
    let w = common::widgets();
    let coco = import(&w, Format::Coco);
    let voc = import(&w.join("voc"), Format::Voc);
    assert_eq!(coco.dataset.images.len(), 320);
    let voc_root = w.join("voc");
    let void = |file: &str| {
        let stem = file.rsplit('/').next()?.strip_suffix(".jpg")?;
        let png = voc_root
            .join("SegmentationObject")
            .join(format!("{stem}.png"));
        let (_, _, idx) = sightline_datasets::mask_codec::read_index_png(&png).ok()?;
        Some(idx.iter().map(|&v| v == 255).collect())
    };
    let worst = assert_same_instances(&coco.dataset, &voc.dataset, "COCO vs VOC", &void, true);
    eprintln!("COCO vs VOC: worst mask IoU {worst:.4}");
    // Boxes agree up to VOC's integer pixel rounding.
    for (ia, ib) in coco.dataset.images.iter().zip(&voc.dataset.images) {
        for (x, y) in ia.instances.iter().zip(&ib.instances) {
            let (bx, by) = (x.bbox.unwrap(), y.bbox.unwrap());
            let edges = |b: [f64; 4]| [b[0], b[1], b[0] + b[2], b[1] + b[3]];
            for (p, q) in edges(bx).iter().zip(edges(by)) {
                assert!(
                    (p - q).abs() <= 1.0 + 1e-9,
                    "{}: box {bx:?} vs {by:?}",
                    ia.file
                );
            }
        }
    }
    // The same image bytes.
    for (f, p) in &coco.sources {
        assert_eq!(
            std::fs::read(p).unwrap(),
            std::fs::read(&voc.sources[f]).unwrap(),
            "{f}"
        );
    }
}

/// The classification folders' labels follow from the instances: no defect → ok, only
/// scratches → scratch, only dents → dent, anything else → ng.
#[test]
fn classification_labels_agree_with_instances() {
    let w = common::widgets();
    let coco = import(&w, Format::Coco);
    let folders = import(&w.join("classify"), Format::Folder);
    let mc = by_file(&coco.dataset);
    assert_eq!(folders.dataset.images.len(), coco.dataset.images.len());
    let mut per_label: BTreeMap<String, usize> = BTreeMap::new();
    for img in &folders.dataset.images {
        let c = mc[img.file.as_str()];
        let kinds: std::collections::BTreeSet<&str> =
            c.instances.iter().map(|i| i.label.as_str()).collect();
        let expected = match kinds.iter().copied().collect::<Vec<_>>().as_slice() {
            [] => "ok",
            ["scratch"] => "scratch",
            ["dent"] => "dent",
            _ => "ng",
        };
        assert_eq!(img.label.as_deref(), Some(expected), "{}", img.file);
        assert_eq!(
            (img.width, img.height, img.split),
            (c.width, c.height, c.split)
        );
        *per_label.entry(expected.into()).or_insert(0) += 1;
    }
    assert_eq!(per_label.len(), 4, "{per_label:?}");
}

#[test]
fn yolo_export_of_coco_imports_back_to_the_same_instances() {
    let w = common::widgets();
    let coco = import(&w, Format::Coco);
    let t = tempfile::tempdir().unwrap();
    let out = t.path().join("yolo");
    let notes =
        sightline_datasets::write(&coco.dataset, &coco.sources, Format::Yolo, &out).unwrap();
    assert!(notes.is_empty(), "{notes:?}");
    let yolo = import(&out, Format::Yolo);
    let worst = assert_same_instances(
        &coco.dataset,
        &yolo.dataset,
        "COCO vs YOLO",
        &|_| None,
        false,
    );
    assert!(worst > 0.999, "{worst}");
}
