//! Property tests: random small annotation sets written as COCO, VOC and YOLO and read back
//! keep their labels, boxes and shapes within each format's precision, and polygon → RLE →
//! polygon conversions stay within stated area / IoU bounds.
//!
//! - COCO holds everything: labels, RLE, crowd/difficult/truncated flags, image labels and
//!   splits exactly; boxes and polygon coordinates to the last bit but one (serde_json's default
//!   float parser may round the last bit differently than the shortest form it printed).
//! - VOC holds one object per pixel: each object comes back as the RLE of its mask after later
//!   objects painted over it (exactly), boxes up to float rounding (at least 1 px wide and high:
//!   VOC boxes are whole pixels), flags, image labels, splits.
//! - YOLO holds one polygon per object in normalised floats (the largest polygon survives),
//!   boxes as normalised centre/size, labels and splits; no crowd, flags or image labels.
//!
//! Cases are kept small (≤ 3 images of ≤ 40 px, ≤ 4 objects) so the whole file runs in seconds.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use proptest::prelude::*;
use sightline_datasets::mask_codec::{Bitmap, counts_to_polygons, polygons_to_bitmap, to_bitmap};
use sightline_datasets::model::polygons_bbox;
use sightline_datasets::{Dataset, Format, ImageRecord, Instance, Segmentation, Split};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const LABELS: [&str; 3] = ["scratch", "dent", "ng"];

/// Shoelace area of a flat polygon.
fn shoelace(p: &[f64]) -> f64 {
    let n = p.len() / 2;
    let mut a = 0.0;
    for i in 0..n {
        let j = (i + 1) % n;
        a += p[2 * i] * p[2 * j + 1] - p[2 * j] * p[2 * i + 1];
    }
    a.abs() / 2.0
}

fn perimeter(p: &[f64]) -> f64 {
    let n = p.len() / 2;
    (0..n)
        .map(|i| {
            let j = (i + 1) % n;
            (p[2 * j] - p[2 * i]).hypot(p[2 * j + 1] - p[2 * i + 1])
        })
        .sum()
}

/// A convex polygon: `k` points on an ellipse around (cx, cy), angles sorted.
fn convex_polygon(w: u32, h: u32) -> impl Strategy<Value = Vec<f64>> {
    let (wf, hf) = (f64::from(w), f64::from(h));
    (
        1.0..wf - 1.0,
        1.0..hf - 1.0,
        1.0f64..12.0,
        1.0f64..12.0,
        prop::collection::vec(0.0f64..std::f64::consts::TAU, 3..8),
    )
        .prop_map(move |(cx, cy, rx, ry, mut angles)| {
            angles.sort_by(f64::total_cmp);
            angles.dedup_by(|a, b| (*a - *b).abs() < 1e-3);
            let mut p = Vec::new();
            for a in &angles {
                p.push((cx + rx * a.cos()).clamp(0.0, wf));
                p.push((cy + ry * a.sin()).clamp(0.0, hf));
            }
            p
        })
        .prop_filter("a polygon with area", |p| p.len() >= 6 && shoelace(p) > 0.5)
}

/// Which shapes a format can hold.
#[derive(Debug, Clone, Copy)]
struct Caps {
    rle: bool,
    crowd: bool,
    flags: bool,
    image_labels: bool,
    unsplit: bool,
}

const COCO: Caps = Caps {
    rle: true,
    crowd: true,
    flags: true,
    image_labels: true,
    unsplit: true,
};
const VOC: Caps = Caps {
    rle: true,
    crowd: false,
    flags: true,
    image_labels: true,
    unsplit: true,
};
const YOLO: Caps = Caps {
    rle: false,
    crowd: false,
    flags: false,
    image_labels: false,
    unsplit: false,
};

fn instance(w: u32, h: u32, caps: Caps) -> impl Strategy<Value = Instance> {
    let (wf, hf) = (f64::from(w), f64::from(h));
    let kind = if caps.rle { 0u8..3 } else { 0u8..2 };
    (
        kind,
        0usize..LABELS.len(),
        prop::collection::vec(convex_polygon(w, h), 1..3),
        (0.0..wf - 2.0, 0.0..hf - 2.0, 1.0..wf, 1.0..hf),
        any::<[bool; 3]>(),
    )
        .prop_map(
            move |(kind, l, polys, (x, y, bw, bh), [crowd, difficult, truncated])| {
                let mut inst = Instance::new(LABELS[l]);
                match kind {
                    0 => {
                        inst.bbox = polygons_bbox(&polys);
                        inst.segmentation = Some(Segmentation::Polygons { polygons: polys });
                    }
                    1 => {
                        // A box-only object, at least 1 px, inside the image.
                        inst.bbox = Some([x, y, bw.min(wf - x).max(1.0), bh.min(hf - y).max(1.0)]);
                    }
                    _ => {
                        let m = polygons_to_bitmap(&polys, h, w).unwrap();
                        inst.bbox = bitmap_bbox(&m);
                        inst.segmentation = Some(Segmentation::Rle {
                            height: h,
                            width: w,
                            counts: m.to_counts(),
                        });
                        inst.iscrowd = caps.crowd && crowd;
                    }
                }
                if caps.flags {
                    inst.difficult = difficult;
                    inst.truncated = truncated;
                }
                inst
            },
        )
        .prop_filter("an object with pixels or a box", |i| i.bbox.is_some())
}

fn image(k: usize, caps: Caps) -> impl Strategy<Value = ImageRecord> {
    (8u32..40, 8u32..40).prop_flat_map(move |(w, h)| {
        let split = if caps.unsplit {
            prop_oneof![
                Just(None),
                Just(Some(Split::Train)),
                Just(Some(Split::Val)),
                Just(Some(Split::Test))
            ]
            .boxed()
        } else {
            prop_oneof![Just(Some(Split::Train)), Just(Some(Split::Val))].boxed()
        };
        let label = if caps.image_labels {
            prop::option::of(0usize..LABELS.len()).boxed()
        } else {
            Just(None).boxed()
        };
        (
            split,
            label,
            prop::collection::vec(instance(w, h, caps), 0..4),
        )
            .prop_map(move |(split, label, instances)| {
                let base = format!("img{k}.png");
                let file = match split {
                    Some(s) => format!("{}/{base}", s.as_str()),
                    None => base,
                };
                ImageRecord {
                    file,
                    width: w,
                    height: h,
                    split,
                    label: label.map(|l| LABELS[l].to_string()),
                    instances,
                }
            })
    })
}

fn dataset(caps: Caps) -> impl Strategy<Value = Dataset> {
    (1usize..4).prop_flat_map(move |n| {
        (0..n)
            .map(|k| image(k, caps))
            .collect::<Vec<_>>()
            .prop_map(|images| {
                let mut ds = Dataset {
                    categories: LABELS.map(String::from).to_vec(),
                    images,
                };
                ds.normalize();
                ds
            })
    })
}

fn bitmap_bbox(m: &Bitmap) -> Option<[f64; 4]> {
    let w = m.width as usize;
    let on: Vec<(usize, usize)> = (0..m.data.len())
        .filter(|&i| m.data[i] != 0)
        .map(|i| (i % w, i / w))
        .collect();
    let x0 = on.iter().map(|p| p.0).min()?;
    let y0 = on.iter().map(|p| p.1).min()?;
    let x1 = on.iter().map(|p| p.0).max()?;
    let y1 = on.iter().map(|p| p.1).max()?;
    Some([
        x0 as f64,
        y0 as f64,
        (x1 - x0 + 1) as f64,
        (y1 - y0 + 1) as f64,
    ])
}

/// Write the images of `ds` as tiny PNGs under `dir`; returns file → path.
fn write_images(ds: &Dataset, dir: &Path) -> BTreeMap<String, PathBuf> {
    let mut out = BTreeMap::new();
    for im in &ds.images {
        let p = dir.join(im.file.replace('/', "_"));
        image::RgbImage::from_pixel(im.width, im.height, image::Rgb([90, 90, 90]))
            .save(&p)
            .unwrap();
        out.insert(im.file.clone(), p);
    }
    out
}

/// Write `ds` as `format`, detect and read it back.
fn round_trip(ds: &Dataset, format: Format) -> Dataset {
    let t = tempfile::tempdir().unwrap();
    let images = write_images(ds, t.path());
    let out = t.path().join("out");
    sightline_datasets::write(ds, &images, format, &out).unwrap();
    assert_eq!(sightline_datasets::detect_format(&out).unwrap(), format);
    let imported = sightline_datasets::read(&out, format).unwrap();
    let errors: Vec<String> = imported
        .issues
        .iter()
        .filter(|i| i.severity == sightline_datasets::Severity::Error)
        .map(ToString::to_string)
        .collect();
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(imported.sources.len(), ds.images.len());
    imported.dataset
}

/// Relative tolerance for coordinates that went through text (JSON, XML, normalised YOLO).
const TOL: f64 = 1e-12;

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= TOL * (1.0 + a.abs().max(b.abs()))
}

fn boxes_close(a: Option<[f64; 4]>, b: Option<[f64; 4]>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => a.iter().zip(&b).all(|(x, y)| close(*x, *y)),
        (None, None) => true,
        _ => false,
    }
}

fn polygons_close(a: &[Vec<f64>], b: &[Vec<f64>]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(p, q)| p.len() == q.len() && p.iter().zip(q).all(|(x, y)| close(*x, *y)))
}

fn same_images(a: &Dataset, b: &Dataset, caps: Caps) -> Result<(), TestCaseError> {
    prop_assert_eq!(a.images.len(), b.images.len());
    for (x, y) in a.images.iter().zip(&b.images) {
        prop_assert_eq!(&x.file, &y.file);
        prop_assert_eq!((x.width, x.height, x.split), (y.width, y.height, y.split));
        let want_label = if caps.image_labels {
            x.label.clone()
        } else {
            None
        };
        prop_assert_eq!(&want_label, &y.label, "image label of {}", x.file);
        prop_assert_eq!(
            x.instances.len(),
            y.instances.len(),
            "objects of {}",
            x.file
        );
        for (i, j) in x.instances.iter().zip(&y.instances) {
            prop_assert_eq!(&i.label, &j.label);
            if caps.flags {
                prop_assert_eq!((i.difficult, i.truncated), (j.difficult, j.truncated));
            } else {
                prop_assert!(!j.difficult && !j.truncated);
            }
            prop_assert_eq!(caps.crowd && i.iscrowd, j.iscrowd);
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// COCO keeps everything (floats to 1e-12 relative).
    #[test]
    fn coco_round_trip_is_exact(ds in dataset(COCO)) {
        let back = round_trip(&ds, Format::Coco);
        same_images(&ds, &back, COCO)?;
        for (x, y) in ds.images.iter().zip(&back.images) {
            for (i, j) in x.instances.iter().zip(&y.instances) {
                prop_assert!(boxes_close(i.bbox, j.bbox), "{:?} vs {:?}", i.bbox, j.bbox);
                match (&i.segmentation, &j.segmentation) {
                    (Some(Segmentation::Polygons { polygons: a }), Some(Segmentation::Polygons { polygons: b })) => {
                        prop_assert!(polygons_close(a, b), "{a:?} vs {b:?}");
                    }
                    (a, b) => prop_assert_eq!(a, b),
                }
            }
        }
    }

    /// VOC: each object's mask is what was drawn of it once later objects painted over it;
    /// boxes within float rounding of the 1-based inclusive pixel convention.
    #[test]
    fn voc_round_trip_keeps_painted_masks(ds in dataset(VOC)) {
        let back = round_trip(&ds, Format::Voc);
        same_images(&ds, &back, VOC)?;
        for (x, y) in ds.images.iter().zip(&back.images) {
            let mut painted: Vec<Option<Bitmap>> = x
                .instances
                .iter()
                .map(|i| i.segmentation.as_ref().map(|s| to_bitmap(s, x.height, x.width).unwrap()))
                .collect();
            for k in 0..painted.len() {
                for later in k + 1..painted.len() {
                    let Some(cover) = painted[later].clone() else { continue };
                    if let Some(m) = painted[k].as_mut() {
                        for (p, c) in m.data.iter_mut().zip(&cover.data) {
                            if *c != 0 {
                                *p = 0;
                            }
                        }
                    }
                }
            }
            for ((i, j), want) in x.instances.iter().zip(&y.instances).zip(painted) {
                // Boxes thinner than a pixel come back one pixel wide/high.
                let want_box = i.bbox.map(|b| [b[0], b[1], b[2].max(1.0), b[3].max(1.0)]);
                prop_assert!(boxes_close(want_box, j.bbox), "{:?} vs {:?}", i.bbox, j.bbox);
                match want.filter(|m| m.area() > 0) {
                    Some(m) => {
                        let got = to_bitmap(j.segmentation.as_ref().expect("mask"), y.height, y.width)
                            .unwrap();
                        prop_assert_eq!(got.iou(&m), 1.0, "{}: {}", x.file, i.label);
                        prop_assert_eq!(got, m);
                    }
                    None => prop_assert!(j.segmentation.is_none()),
                }
            }
        }
    }

    /// YOLO: the largest polygon of each object in normalised floats, boxes as normalised
    /// centre/size; within 1e-12 relative.
    #[test]
    fn yolo_round_trip_keeps_largest_polygon(ds in dataset(YOLO)) {
        let back = round_trip(&ds, Format::Yolo);
        same_images(&ds, &back, YOLO)?;
        for (x, y) in ds.images.iter().zip(&back.images) {
            for (i, j) in x.instances.iter().zip(&y.instances) {
                match &i.segmentation {
                    Some(Segmentation::Polygons { polygons }) => {
                        let largest = polygons
                            .iter()
                            .max_by(|a, b| shoelace(a).total_cmp(&shoelace(b)))
                            .unwrap();
                        let Some(Segmentation::Polygons { polygons: got }) = &j.segmentation else {
                            return Err(TestCaseError::fail("polygon lost"));
                        };
                        prop_assert!(polygons_close(std::slice::from_ref(largest), got), "{largest:?} vs {got:?}");
                        prop_assert!(boxes_close(polygons_bbox(std::slice::from_ref(largest)), j.bbox));
                    }
                    _ => {
                        prop_assert!(j.segmentation.is_none());
                        prop_assert!(boxes_close(i.bbox, j.bbox), "{:?} vs {:?}", i.bbox, j.bbox);
                    }
                }
            }
        }
    }

    /// Polygon → RLE (pycocotools rasterisation) → traced polygon → RLE: the raster's area is
    /// within two pixels per unit of outline of the polygon's area, and tracing is exact (the
    /// convex polygon's raster has no holes, so it comes back pixel for pixel, IoU 1).
    #[test]
    fn polygon_rle_polygon_bounds((w, h, poly) in (8u32..40, 8u32..40)
        .prop_flat_map(|(w, h)| (Just(w), Just(h), convex_polygon(w, h))))
    {
        let m = polygons_to_bitmap(std::slice::from_ref(&poly), h, w).unwrap();
        let area = m.area() as f64;
        let bound = 2.0 * perimeter(&poly) + 4.0;
        prop_assert!((area - shoelace(&poly)).abs() <= bound,
            "raster area {area} vs polygon area {} (bound {bound})", shoelace(&poly));
        let traced = counts_to_polygons(h, w, &m.to_counts()).unwrap();
        let traced_area: f64 = traced.iter().map(|p| shoelace(p)).sum();
        prop_assert_eq!(traced_area, area, "traced outline encloses exactly the raster's pixels");
        let back = polygons_to_bitmap(&traced, h, w).unwrap();
        prop_assert_eq!(back.iou(&m), if area > 0.0 { 1.0 } else { 0.0 });
        prop_assert_eq!(back, m);
    }
}
