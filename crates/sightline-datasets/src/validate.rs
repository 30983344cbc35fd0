//! Validation of an imported data set: images decode and match their declared size,
//! polygons have at least 3 points, masks have the image's size, boxes lie inside the image.
//!
//! Findings name the file and the object; warnings become fatal with `strict`.

use crate::Imported;
use crate::error::{DatasetError, Issue, Result, Severity};
use crate::model::Segmentation;
use rayon::prelude::*;

/// Tolerance (pixels) for boxes touching the image border.
const BOX_TOLERANCE: f64 = 0.5;

/// Validate `imported` in place (dropping degenerate polygons) and fail on errors, or on
/// warnings when `strict`. Returns the warnings that remain.
pub fn check(imported: &mut Imported, strict: bool, decode_images: bool) -> Result<Vec<Issue>> {
    let mut issues = std::mem::take(&mut imported.issues);
    if decode_images {
        let found: Vec<Issue> = imported
            .dataset
            .images
            .par_iter()
            .filter_map(|img| {
                let src = imported.sources.get(&img.file)?;
                let shown = img.file.clone();
                match sightline_imageio::load(src) {
                    Err(e) => Some(Issue::error(
                        shown,
                        None,
                        format!("corrupt or unsupported image: {e}"),
                    )),
                    Ok(d) if (d.width(), d.height()) != (img.width, img.height) => {
                        Some(Issue::error(
                            shown,
                            None,
                            format!(
                                "image is {}x{} but the annotations say {}x{}",
                                d.width(),
                                d.height(),
                                img.width,
                                img.height
                            ),
                        ))
                    }
                    Ok(_) => None,
                }
            })
            .collect();
        issues.extend(found);
    }
    for img in &mut imported.dataset.images {
        let (w, h) = (f64::from(img.width), f64::from(img.height));
        let file = img.file.clone();
        let mut keep = Vec::with_capacity(img.instances.len());
        for (k, mut inst) in std::mem::take(&mut img.instances).into_iter().enumerate() {
            let loc = Some(match &inst.source_id {
                Some(id) => format!("object {id}"),
                None => format!("object #{}", k + 1),
            });
            match &mut inst.segmentation {
                Some(Segmentation::Polygons { polygons }) => {
                    let before = polygons.len();
                    polygons.retain(|p| p.len() >= 6);
                    if polygons.len() < before {
                        issues.push(Issue::warning(
                            &file,
                            loc.clone(),
                            format!(
                                "{} polygon(s) with fewer than 3 points dropped",
                                before - polygons.len()
                            ),
                        ));
                    }
                    if polygons.is_empty() {
                        inst.segmentation = None;
                    }
                }
                Some(Segmentation::Rle { height, width, .. })
                    if (*height, *width) != (img.height, img.width) =>
                {
                    issues.push(Issue::error(
                        &file,
                        loc.clone(),
                        format!(
                            "mask is {width}x{height} but the image is {}x{}",
                            img.width, img.height
                        ),
                    ));
                }
                Some(Segmentation::Rle { .. }) | None => {}
            }
            if let Some(b) = inst.bbox {
                if b[2] <= 0.0 || b[3] <= 0.0 {
                    issues.push(Issue::warning(
                        &file,
                        loc.clone(),
                        format!("empty box {b:?}"),
                    ));
                } else if b[0] < -BOX_TOLERANCE
                    || b[1] < -BOX_TOLERANCE
                    || b[0] + b[2] > w + BOX_TOLERANCE
                    || b[1] + b[3] > h + BOX_TOLERANCE
                {
                    issues.push(Issue::warning(
                        &file,
                        loc.clone(),
                        format!(
                            "box {b:?} (x, y, w, h) lies outside the {}x{} image",
                            img.width, img.height
                        ),
                    ));
                }
            }
            if inst.segmentation.is_none() && inst.bbox.is_none() {
                issues.push(Issue::warning(
                    &file,
                    loc,
                    "object has no usable polygon, mask or box; dropped",
                ));
                continue;
            }
            keep.push(inst);
        }
        img.instances = keep;
    }
    let fatal = issues
        .iter()
        .any(|i| i.severity == Severity::Error || strict);
    if fatal {
        return Err(DatasetError::Invalid(issues));
    }
    Ok(issues)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ImageRecord, Instance};

    fn imported_with(inst: Instance) -> Imported {
        let mut img = ImageRecord::new("a.jpg", 10, 10);
        img.instances.push(inst);
        let mut i = Imported::default();
        i.dataset.images.push(img);
        i
    }

    #[test]
    fn short_polygon_is_a_warning_and_fatal_when_strict() {
        let mut inst = Instance::new("dent");
        inst.source_id = Some("7".into());
        inst.segmentation = Some(Segmentation::Polygons {
            polygons: vec![vec![1.0, 1.0, 2.0, 2.0]],
        });
        let w = check(&mut imported_with(inst.clone()), false, false).unwrap();
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(
            w[0].to_string()
                .contains("a.jpg: object 7: 1 polygon(s) with fewer than 3 points"),
            "{}",
            w[0]
        );
        let e = check(&mut imported_with(inst), true, false)
            .unwrap_err()
            .to_string();
        assert!(e.contains("fewer than 3 points"), "{e}");
    }

    #[test]
    fn box_outside_image_warns() {
        let mut inst = Instance::new("dent");
        inst.bbox = Some([5.0, 5.0, 8.0, 2.0]);
        let w = check(&mut imported_with(inst), false, false).unwrap();
        assert!(
            w[0].message.contains("lies outside the 10x10 image"),
            "{:?}",
            w
        );
    }

    #[test]
    fn wrong_mask_size_is_an_error() {
        let mut inst = Instance::new("dent");
        inst.segmentation = Some(Segmentation::Rle {
            height: 4,
            width: 4,
            counts: vec![16],
        });
        let e = check(&mut imported_with(inst), false, false)
            .unwrap_err()
            .to_string();
        assert!(e.contains("mask is 4x4 but the image is 10x10"), "{e}");
    }
}
