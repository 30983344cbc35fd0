//! Mapping data-set categories to a project's label set.
//!
//! Names match exactly; `--map old=new` renames first; `--drop-unknown` removes what is still
//! unknown (and reports it); otherwise unknown names are an error listing names and files.
//!
//! On export, [`check_export`] makes sure every label a version uses is in the label set the
//! files will be written with (the project's current labels, or the version's own categories),
//! so a YOLO `names` map or COCO categories never disagree with the objects.

use crate::error::{DatasetError, Result};
use crate::model::Dataset;
use std::collections::{BTreeMap, BTreeSet};

/// How to treat categories that are not project labels.
#[derive(Debug, Clone, Default)]
pub struct LabelPolicy {
    /// `old → new` renames applied before matching.
    pub map: BTreeMap<String, String>,
    /// Drop objects and image labels whose name is still unknown.
    pub drop_unknown: bool,
}

impl LabelPolicy {
    /// Parse `old=new` pairs.
    pub fn parse_maps(pairs: &[String]) -> Result<BTreeMap<String, String>> {
        let mut m = BTreeMap::new();
        for p in pairs {
            let Some((a, b)) = p
                .split_once('=')
                .filter(|(a, b)| !a.is_empty() && !b.is_empty())
            else {
                return Err(DatasetError::Format(format!(
                    "--map expects old=new, got {p:?}"
                )));
            };
            m.insert(a.to_string(), b.to_string());
        }
        Ok(m)
    }
}

/// What mapping did: dropped names with counts.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct MapReport {
    /// Renamed objects/labels per `old=new`.
    pub renamed: BTreeMap<String, usize>,
    /// Dropped instances per unknown label.
    pub dropped_instances: BTreeMap<String, usize>,
    /// Image-level labels removed per unknown label.
    pub dropped_image_labels: BTreeMap<String, usize>,
}

/// Map `ds` onto `project_labels` in place. On success `ds.categories` lists the project's
/// labels that the data set uses, in project order.
pub fn apply(
    ds: &mut Dataset,
    project_labels: &[String],
    policy: &LabelPolicy,
) -> Result<MapReport> {
    let known: BTreeSet<&str> = project_labels.iter().map(String::as_str).collect();
    for (old, new) in &policy.map {
        if !known.contains(new.as_str()) {
            return Err(DatasetError::UnknownLabels(format!(
                "--map {old}={new}: {new:?} is not a project label (labels: {})",
                project_labels.join(", ")
            )));
        }
    }
    let mut report = MapReport::default();
    let mut unknown: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for img in &mut ds.images {
        let rename = |l: &mut String, report: &mut MapReport| {
            if let Some(n) = policy.map.get(l.as_str()) {
                *report.renamed.entry(format!("{l}={n}")).or_insert(0) += 1;
                *l = n.clone();
            }
        };
        if let Some(l) = &mut img.label {
            rename(l, &mut report);
        }
        for inst in &mut img.instances {
            rename(&mut inst.label, &mut report);
        }
        let bad_img_label = img
            .label
            .as_ref()
            .filter(|l| !known.contains(l.as_str()))
            .cloned();
        if let Some(l) = bad_img_label {
            if policy.drop_unknown {
                *report.dropped_image_labels.entry(l).or_insert(0) += 1;
                img.label = None;
            } else {
                unknown.entry(l).or_default().insert(img.file.clone());
            }
        }
        let file = img.file.clone();
        img.instances.retain(|inst| {
            if known.contains(inst.label.as_str()) {
                return true;
            }
            if policy.drop_unknown {
                *report
                    .dropped_instances
                    .entry(inst.label.clone())
                    .or_insert(0) += 1;
            } else {
                unknown
                    .entry(inst.label.clone())
                    .or_default()
                    .insert(file.clone());
            }
            !policy.drop_unknown
        });
    }
    if !unknown.is_empty() {
        let mut msg = format!(
            "{} label(s) not in the project (labels: {}); map them with --map old=new or drop them with --drop-unknown:",
            unknown.len(),
            project_labels.join(", ")
        );
        for (name, files) in &unknown {
            let shown: Vec<&str> = files.iter().take(5).map(String::as_str).collect();
            let more = if files.len() > 5 {
                format!(", … ({} files)", files.len())
            } else {
                String::new()
            };
            msg.push_str(&format!("\n  {name:?} in {}{more}", shown.join(", ")));
        }
        return Err(DatasetError::UnknownLabels(msg));
    }
    let used: BTreeSet<&str> = ds
        .images
        .iter()
        .flat_map(|i| i.label.iter().chain(i.instances.iter().map(|x| &x.label)))
        .map(String::as_str)
        .collect();
    let _ = used;
    ds.categories = project_labels.to_vec();
    Ok(report)
}

/// Uses of one label that the target label set lacks.
#[derive(Debug, Default)]
struct Missing {
    instances: usize,
    image_labels: usize,
    files: BTreeSet<String>,
}

/// Check, before anything is written, that every label `ds` uses is in `labels` (the label set
/// an export writes with: class ids are positions in it), then make `labels` the data set's
/// categories. `what` names the version and `whose` the label set in the error, which lists
/// each missing label with its number of instances / image labels and the first files.
pub fn check_export(ds: &mut Dataset, labels: &[String], what: &str, whose: &str) -> Result<()> {
    let known: BTreeSet<&str> = labels.iter().map(String::as_str).collect();
    let mut missing: BTreeMap<String, Missing> = BTreeMap::new();
    for img in &ds.images {
        if let Some(l) = img.label.as_ref().filter(|l| !known.contains(l.as_str())) {
            let m = missing.entry(l.clone()).or_default();
            m.image_labels += 1;
            m.files.insert(img.file.clone());
        }
        for inst in img
            .instances
            .iter()
            .filter(|i| !known.contains(i.label.as_str()))
        {
            let m = missing.entry(inst.label.clone()).or_default();
            m.instances += 1;
            m.files.insert(img.file.clone());
        }
    }
    if missing.is_empty() {
        ds.categories = labels.to_vec();
        return Ok(());
    }
    let mut msg = format!(
        "{what} uses {} label(s) that are not in {whose} ({}); nothing was written:",
        missing.len(),
        if labels.is_empty() {
            "no labels".to_string()
        } else {
            labels.join(", ")
        }
    );
    for (name, m) in &missing {
        let shown: Vec<&str> = m.files.iter().take(3).map(String::as_str).collect();
        let more = if m.files.len() > 3 {
            format!(", … ({} images)", m.files.len())
        } else {
            String::new()
        };
        msg.push_str(&format!(
            "\n  {name:?}: {} instance(s), {} image label(s), in {}{more}",
            m.instances,
            m.image_labels,
            shown.join(", ")
        ));
    }
    msg.push_str(
        "\nadd the label(s) back to the project (`sightline project apply`), or ingest a version \
         that maps them (--map old=new) or drops them (--drop-unknown)",
    );
    Err(DatasetError::UnknownLabels(msg))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ImageRecord, Instance};

    fn ds() -> Dataset {
        let mut a = ImageRecord::new("a.jpg", 2, 2);
        a.instances.push(Instance::new("scratch"));
        a.instances.push(Instance::new("stain"));
        let mut b = ImageRecord::new("b.jpg", 2, 2);
        b.label = Some("bad".into());
        Dataset {
            categories: vec![],
            images: vec![a, b],
        }
    }

    fn labels() -> Vec<String> {
        ["ok", "ng", "scratch", "dent"].map(String::from).to_vec()
    }

    #[test]
    fn unknown_labels_are_listed_with_files() {
        let err = apply(&mut ds(), &labels(), &LabelPolicy::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("2 label(s) not in the project"), "{err}");
        assert!(err.contains("\"stain\" in a.jpg"), "{err}");
        assert!(err.contains("\"bad\" in b.jpg"), "{err}");
    }

    #[test]
    fn map_then_drop() {
        let mut d = ds();
        let policy = LabelPolicy {
            map: LabelPolicy::parse_maps(&["stain=ng".into()]).unwrap(),
            drop_unknown: true,
        };
        let r = apply(&mut d, &labels(), &policy).unwrap();
        assert_eq!(r.renamed.get("stain=ng"), Some(&1));
        assert_eq!(r.dropped_image_labels.get("bad"), Some(&1));
        assert_eq!(d.images[0].instances[1].label, "ng");
        assert_eq!(d.images[1].label, None);
    }

    #[test]
    fn export_check_names_missing_labels_and_takes_the_target_order() {
        let mut d = ds();
        let err = check_export(&mut d, &labels(), "version 1234", "the project's labels")
            .unwrap_err()
            .to_string();
        assert!(err.contains("version 1234 uses 2 label(s) that are not in the project's labels (ok, ng, scratch, dent)"), "{err}");
        assert!(
            err.contains("\"stain\": 1 instance(s), 0 image label(s), in a.jpg"),
            "{err}"
        );
        assert!(
            err.contains("\"bad\": 0 instance(s), 1 image label(s), in b.jpg"),
            "{err}"
        );
        let mut d = ds();
        d.images[0].instances.pop();
        d.images[1].label = Some("ok".into());
        check_export(&mut d, &labels(), "v", "w").unwrap();
        assert_eq!(
            d.categories,
            labels(),
            "class ids follow the target label set"
        );
    }

    #[test]
    fn map_target_must_exist() {
        let policy = LabelPolicy {
            map: LabelPolicy::parse_maps(&["stain=smudge".into()]).unwrap(),
            drop_unknown: false,
        };
        assert!(
            apply(&mut ds(), &labels(), &policy)
                .unwrap_err()
                .to_string()
                .contains("\"smudge\" is not a project label")
        );
        assert!(LabelPolicy::parse_maps(&["nope".into()]).is_err());
    }
}
