//! The class map of a registered model: which project label each of the model's class ids means.
//!
//! Resolved once, at registration, and stored as the version's `labels` (and the bundle's
//! `labels`, bundle format 2), in this order:
//!
//! 1. **`--labels a,b,c`** (the registration's explicit map): class 0 is `a`, class 1 `b`, … Every
//!    name must be a label of the project, without repeats. When the checkpoint names its
//!    classes, the count must match (the names themselves may differ: that is what the flag is
//!    for, e.g. a detector trained elsewhere with classes `kratzer, delle`).
//! 2. **The checkpoint's own class names** (detectors: Ultralytics `.pt` and our safetensors carry
//!    them): every name must be a project label; a detector's classes are usually a subset (the
//!    defect labels), in the checkpoint's order. A name that is not a project label is an error
//!    that points at `--labels`.
//! 3. **The project's labels**, in project order: classifiers (torchvision `.pth` state dicts carry
//!    no names; the head size is checked when the model loads) and detectors whose checkpoint
//!    names no classes.
//!
//! Only detector checkpoints are read for names at registration; a classifier's map is 1 or 3.

use std::path::Path;

use serde::{Deserialize, Serialize};
use sightline_core::Task;

use crate::error::RegistryError;

/// Where a class map came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LabelSource {
    /// `--labels`.
    Explicit,
    /// The checkpoint's class names.
    Checkpoint,
    /// The project's labels.
    Project,
}

/// Resolve the class map (see the module docs for the rule).
pub fn resolve_class_labels(
    project: &str,
    project_labels: &[String],
    explicit: Option<&[String]>,
    checkpoint_names: Option<&[String]>,
) -> Result<(Vec<String>, LabelSource), RegistryError> {
    let check_known = |names: &[String], what: &str| -> Result<(), RegistryError> {
        if let Some(bad) = names.iter().find(|n| !project_labels.contains(n)) {
            return Err(RegistryError::Invalid(format!(
                "{what} `{bad}` is not a label of project `{project}` ({}){}",
                project_labels.join(", "),
                if what.starts_with("checkpoint") {
                    "; map the checkpoint's classes 0, 1, … to project labels with --labels"
                } else {
                    ""
                }
            )));
        }
        Ok(())
    };
    if let Some(map) = explicit {
        if map.is_empty() {
            return Err(RegistryError::Invalid("--labels names no label".into()));
        }
        check_known(map, "--labels entry")?;
        for (i, l) in map.iter().enumerate() {
            if map[..i].contains(l) {
                return Err(RegistryError::Invalid(format!(
                    "--labels names `{l}` twice: each class id needs its own label"
                )));
            }
        }
        if let Some(names) = checkpoint_names
            && names.len() != map.len()
        {
            return Err(RegistryError::Invalid(format!(
                "the checkpoint has {} classes ({}), --labels gives {}",
                names.len(),
                names.join(", "),
                map.len()
            )));
        }
        return Ok((map.to_vec(), LabelSource::Explicit));
    }
    if let Some(names) = checkpoint_names {
        check_known(names, "checkpoint class")?;
        return Ok((names.to_vec(), LabelSource::Checkpoint));
    }
    Ok((project_labels.to_vec(), LabelSource::Project))
}

/// The class names a checkpoint declares (`None`: it declares none). Reads the file
/// (Ultralytics `.pt`, torchvision `.pth`, safetensors).
pub fn checkpoint_class_names(path: &Path) -> Result<Option<Vec<String>>, RegistryError> {
    let ckpt = sightline_torch::load(path).map_err(|e| {
        RegistryError::Invalid(format!(
            "cannot read the checkpoint {}: {e}",
            path.display()
        ))
    })?;
    Ok(ckpt.meta.names)
}

/// Parse `a,b,c` (spaces around names ignored).
pub fn parse_label_list(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|x| !x.is_empty())
        .map(str::to_string)
        .collect()
}

/// Whether a task's checkpoints are read for class names at registration.
pub fn reads_checkpoint_names(task: Task) -> bool {
    task == Task::Segment
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn explicit_map_wins_and_is_checked() {
        let project = v(&["ok", "ng", "scratch", "dent"]);
        let names = v(&["kratzer", "delle", "ng"]);
        let map = v(&["scratch", "dent", "ng"]);
        assert_eq!(
            resolve_class_labels("p", &project, Some(&map), Some(&names)).unwrap(),
            (map.clone(), LabelSource::Explicit)
        );
        // count mismatch with the checkpoint
        let e = resolve_class_labels("p", &project, Some(&map[..2]), Some(&names)).unwrap_err();
        assert!(e.to_string().contains("3 classes"), "{e}");
        // unknown and repeated labels
        let e =
            resolve_class_labels("p", &project, Some(&v(&["scratch", "rust"])), None).unwrap_err();
        assert!(e.to_string().contains("`rust` is not a label"), "{e}");
        let e = resolve_class_labels("p", &project, Some(&v(&["dent", "dent"])), None).unwrap_err();
        assert!(e.to_string().contains("twice"), "{e}");
        assert!(resolve_class_labels("p", &project, Some(&[]), None).is_err());
    }

    #[test]
    fn checkpoint_names_then_project_labels() {
        let project = v(&["ok", "ng", "scratch", "dent"]);
        let names = v(&["scratch", "dent", "ng"]);
        assert_eq!(
            resolve_class_labels("p", &project, None, Some(&names)).unwrap(),
            (names, LabelSource::Checkpoint)
        );
        let e = resolve_class_labels("p", &project, None, Some(&v(&["kratzer"]))).unwrap_err();
        assert!(e.to_string().contains("--labels"), "{e}");
        assert_eq!(
            resolve_class_labels("p", &project, None, None).unwrap(),
            (project.clone(), LabelSource::Project)
        );
    }

    #[test]
    fn label_lists() {
        assert_eq!(parse_label_list(" a, b ,,c"), v(&["a", "b", "c"]));
    }
}
