//! Statistics of a data set and differences between two versions.

use crate::model::{Dataset, Segmentation};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// Summary of a distribution of areas (pixels).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AreaSummary {
    /// Number of values.
    pub count: usize,
    /// Smallest.
    pub min: f64,
    /// 25th percentile.
    pub p25: f64,
    /// Median.
    pub median: f64,
    /// 75th percentile.
    pub p75: f64,
    /// Largest.
    pub max: f64,
    /// Mean.
    pub mean: f64,
    /// COCO size classes: small (< 32²), medium, large (> 96²).
    pub small: usize,
    /// Medium objects (32² ..= 96²).
    pub medium: usize,
    /// Large objects (> 96²).
    pub large: usize,
}

fn summarize(mut v: Vec<f64>) -> AreaSummary {
    if v.is_empty() {
        return AreaSummary::default();
    }
    v.sort_by(f64::total_cmp);
    let q = |p: f64| {
        let pos = p * (v.len() - 1) as f64;
        let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
        v[lo] + (v[hi] - v[lo]) * (pos - lo as f64)
    };
    AreaSummary {
        count: v.len(),
        min: v[0],
        p25: q(0.25),
        median: q(0.5),
        p75: q(0.75),
        max: v[v.len() - 1],
        mean: v.iter().sum::<f64>() / v.len() as f64,
        small: v.iter().filter(|&&a| a < 1024.0).count(),
        medium: v
            .iter()
            .filter(|&&a| (1024.0..=9216.0).contains(&a))
            .count(),
        large: v.iter().filter(|&&a| a > 9216.0).count(),
    }
}

/// Statistics of a data set.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    /// Number of images.
    pub images: usize,
    /// Images per split (`none` for unassigned).
    pub images_per_split: BTreeMap<String, usize>,
    /// Images without any instance.
    pub images_without_instances: usize,
    /// Instances in total.
    pub instances: usize,
    /// Instances per label.
    pub instances_per_label: BTreeMap<String, usize>,
    /// Image-level labels (class balance for classification).
    pub image_labels: BTreeMap<String, usize>,
    /// Share of each image-level label among labelled images.
    pub class_balance: BTreeMap<String, f64>,
    /// Mask (or box) area per label.
    pub area_per_label: BTreeMap<String, AreaSummary>,
    /// Crowd regions.
    pub crowd: usize,
}

/// Area of an instance: mask pixels, polygon area, or box area.
pub fn instance_area(inst: &crate::model::Instance) -> Option<f64> {
    match &inst.segmentation {
        Some(s @ Segmentation::Rle { .. }) => s.rle_area().map(|a| a as f64),
        Some(Segmentation::Polygons { polygons }) => {
            Some(polygons.iter().map(|p| crate::coco::shoelace(p)).sum())
        }
        None => inst.bbox.map(|b| b[2] * b[3]),
    }
}

/// Compute [`Stats`] for `ds`.
pub fn stats(ds: &Dataset) -> Stats {
    let mut s = Stats {
        images: ds.images.len(),
        ..Stats::default()
    };
    let mut areas: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for img in &ds.images {
        let split = img.split.map(|s| s.as_str()).unwrap_or("none");
        *s.images_per_split.entry(split.into()).or_insert(0) += 1;
        if img.instances.is_empty() {
            s.images_without_instances += 1;
        }
        if let Some(l) = &img.label {
            *s.image_labels.entry(l.clone()).or_insert(0) += 1;
        }
        for inst in &img.instances {
            s.instances += 1;
            s.crowd += usize::from(inst.iscrowd);
            *s.instances_per_label.entry(inst.label.clone()).or_insert(0) += 1;
            if let Some(a) = instance_area(inst) {
                areas.entry(inst.label.clone()).or_default().push(a);
            }
        }
    }
    let labelled: usize = s.image_labels.values().sum();
    for (l, n) in &s.image_labels {
        s.class_balance
            .insert(l.clone(), *n as f64 / labelled as f64);
    }
    s.area_per_label = areas.into_iter().map(|(l, v)| (l, summarize(v))).collect();
    s
}

/// Differences between two versions.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Diff {
    /// Images only in the new version.
    pub added: Vec<String>,
    /// Images only in the old version.
    pub removed: Vec<String>,
    /// Images whose bytes changed.
    pub changed_content: Vec<String>,
    /// Images whose annotations changed (label, split or instances).
    pub changed_annotations: Vec<String>,
    /// Per label: instances added (+) and removed (−) between the versions.
    pub instances_per_label: BTreeMap<String, (usize, usize)>,
    /// Per label: image-level labels added and removed.
    pub image_labels: BTreeMap<String, (usize, usize)>,
}

/// Diff two data sets; `md5_old`/`md5_new` map image file to content hash.
pub fn diff(
    old: &Dataset,
    new: &Dataset,
    md5_old: &BTreeMap<String, String>,
    md5_new: &BTreeMap<String, String>,
) -> Diff {
    let o: BTreeMap<&str, &crate::model::ImageRecord> =
        old.images.iter().map(|i| (i.file.as_str(), i)).collect();
    let n: BTreeMap<&str, &crate::model::ImageRecord> =
        new.images.iter().map(|i| (i.file.as_str(), i)).collect();
    let files: BTreeSet<&str> = o.keys().chain(n.keys()).copied().collect();
    let mut d = Diff::default();
    let empty = crate::model::ImageRecord::new("", 0, 0);
    for f in files {
        let (a, b) = (o.get(f).copied(), n.get(f).copied());
        match (a, b) {
            (None, Some(_)) => d.added.push(f.into()),
            (Some(_), None) => d.removed.push(f.into()),
            (Some(a), Some(b)) => {
                if md5_old.get(f) != md5_new.get(f) {
                    d.changed_content.push(f.into());
                }
                if a.label != b.label || a.split != b.split || strip_ids(a) != strip_ids(b) {
                    d.changed_annotations.push(f.into());
                }
            }
            (None, None) => {}
        }
        let a = a.unwrap_or(&empty);
        let b = b.unwrap_or(&empty);
        let mut ca: Vec<crate::model::Instance> = strip_ids(a);
        for inst in strip_ids(b) {
            if let Some(pos) = ca.iter().position(|x| *x == inst) {
                ca.remove(pos);
            } else {
                d.instances_per_label
                    .entry(inst.label.clone())
                    .or_default()
                    .0 += 1;
            }
        }
        for inst in ca {
            d.instances_per_label
                .entry(inst.label.clone())
                .or_default()
                .1 += 1;
        }
        if a.label != b.label {
            if let Some(l) = &b.label {
                d.image_labels.entry(l.clone()).or_default().0 += 1;
            }
            if let Some(l) = &a.label {
                d.image_labels.entry(l.clone()).or_default().1 += 1;
            }
        }
    }
    d
}

fn strip_ids(img: &crate::model::ImageRecord) -> Vec<crate::model::Instance> {
    img.instances
        .iter()
        .cloned()
        .map(|mut i| {
            i.source_id = None;
            i
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ImageRecord, Instance};

    #[test]
    fn stats_and_diff() {
        let mut a = ImageRecord::new("a.jpg", 10, 10);
        let mut inst = Instance::new("dent");
        inst.bbox = Some([0.0, 0.0, 2.0, 3.0]);
        a.instances.push(inst.clone());
        a.label = Some("dent".into());
        let b = ImageRecord::new("b.jpg", 10, 10);
        let old = Dataset {
            categories: vec![],
            images: vec![a.clone(), b],
        };
        let s = stats(&old);
        assert_eq!(s.images, 2);
        assert_eq!(s.instances_per_label["dent"], 1);
        assert_eq!(s.area_per_label["dent"].median, 6.0);
        assert_eq!(s.images_without_instances, 1);
        let mut a2 = a.clone();
        let mut inst2 = Instance::new("scratch");
        inst2.bbox = Some([1.0, 1.0, 1.0, 1.0]);
        a2.instances = vec![inst2];
        let c = ImageRecord::new("c.jpg", 10, 10);
        let new = Dataset {
            categories: vec![],
            images: vec![a2, c],
        };
        let md5: BTreeMap<String, String> = BTreeMap::new();
        let d = diff(&old, &new, &md5, &md5);
        assert_eq!(d.added, vec!["c.jpg"]);
        assert_eq!(d.removed, vec!["b.jpg"]);
        assert_eq!(d.changed_annotations, vec!["a.jpg"]);
        assert_eq!(d.instances_per_label["dent"], (0, 1));
        assert_eq!(d.instances_per_label["scratch"], (1, 0));
    }
}
