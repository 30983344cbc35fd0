//! Appending labels to a project's ordered label set (`POST /projects/{p}/labels`).
//!
//! New labels go at the end, so every existing class id keeps its meaning. Names are checked
//! with the manifest's own rules and messages ([`sightline_core::manifest::check_label`],
//! duplicates, names that differ only by letter case); a name the project already has is a
//! conflict. The stored manifest text is rewritten with the longer `labels` list (the rest of
//! the text is kept verbatim), re-validated, and applied through [`projects::apply`], so the
//! manifest, the label rows and the reported changes never disagree.

use std::collections::BTreeMap;

use sightline_core::Manifest;

use crate::projects::{self, ApplyReport};
use crate::{Db, DbError};

/// Why labels could not be appended.
#[derive(Debug, thiserror::Error)]
pub enum AppendLabelsError {
    /// Invalid names (every problem, one per line).
    #[error("invalid labels:\n  {}", .0.join("\n  "))]
    Invalid(Vec<String>),
    /// Names the project already has.
    #[error("project `{project}` already has label(s) {}; existing labels keep their class ids", quoted(.labels))]
    Exists {
        /// Project.
        project: String,
        /// The names it already has.
        labels: Vec<String>,
    },
    /// The stored manifest text could not be rewritten (its `labels` key was not found).
    #[error("cannot rewrite the stored manifest of project `{0}`: {1}")]
    Rewrite(String, String),
    /// Database error (unknown project included).
    #[error(transparent)]
    Db(#[from] DbError),
}

fn quoted(names: &[String]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Check `new` against the manifest rules and the project's `existing` labels. Returns the
/// names that already exist (a conflict) or every validation message.
pub fn check_new_labels(existing: &[String], new: &[String]) -> Result<(), CheckFailure> {
    let mut problems = Vec::new();
    if new.is_empty() {
        problems.push("give at least one label to append".to_string());
    }
    let taken: BTreeMap<String, String> = existing
        .iter()
        .map(|l| (l.to_lowercase(), l.clone()))
        .collect();
    let mut exists = Vec::new();
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    for name in new {
        if let Err(why) = sightline_core::manifest::check_label(name) {
            problems.push(why);
            continue;
        }
        let key = name.to_lowercase();
        if let Some(first) = seen.get(&key) {
            if first == name {
                problems.push(format!("duplicate label `{name}` in the request"));
            } else {
                problems.push(format!(
                    "label `{name}` differs from `{first}` only by letter case; labels must be distinct ignoring case"
                ));
            }
            continue;
        }
        seen.insert(key.clone(), name.clone());
        if let Some(old) = taken.get(&key) {
            if old == name {
                exists.push(name.clone());
            } else {
                problems.push(format!(
                    "label `{name}` differs from the project's label `{old}` only by letter case; labels must be distinct ignoring case"
                ));
            }
        }
    }
    if !problems.is_empty() {
        return Err(CheckFailure::Invalid(problems));
    }
    if !exists.is_empty() {
        return Err(CheckFailure::Exists(exists));
    }
    Ok(())
}

/// Result of [`check_new_labels`] when the names cannot be appended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckFailure {
    /// Validation messages.
    Invalid(Vec<String>),
    /// Names the project already has.
    Exists(Vec<String>),
}

/// The manifest text with its top-level `labels` replaced by `labels` (flow style, JSON-quoted
/// names). A JSON manifest is re-encoded; in YAML only the `labels:` block changes.
pub fn rewrite_labels(text: &str, labels: &[String]) -> Result<String, String> {
    if text.trim_start().starts_with('{') {
        let mut v: serde_json::Value =
            serde_json::from_str(text).map_err(|e| format!("stored JSON manifest: {e}"))?;
        let obj = v
            .as_object_mut()
            .ok_or_else(|| "stored JSON manifest is not an object".to_string())?;
        obj.insert("labels".into(), serde_json::json!(labels));
        return serde_json::to_string_pretty(&v).map_err(|e| e.to_string());
    }
    let lines: Vec<&str> = text.lines().collect();
    let start = lines
        .iter()
        .position(|l| {
            l.strip_prefix("labels")
                .is_some_and(|r| r.trim_start().starts_with(':'))
        })
        .ok_or_else(|| "no top-level `labels:` line".to_string())?;
    // The block: the key line plus every following indented line, `- item` line or blank line
    // (trailing blank lines stay where they are).
    let mut end = start + 1;
    while end < lines.len() {
        let l = lines[end];
        let continues = l.trim().is_empty() || l.starts_with([' ', '\t', '-']);
        if !continues {
            break;
        }
        end += 1;
    }
    while end > start + 1 && lines[end - 1].trim().is_empty() {
        end -= 1;
    }
    let names: Vec<String> = labels
        .iter()
        .map(|l| serde_json::to_string(l).unwrap_or_else(|_| format!("{l:?}")))
        .collect();
    let mut out: Vec<String> = lines[..start].iter().map(|s| s.to_string()).collect();
    out.push(format!("labels: [{}]", names.join(", ")));
    out.extend(lines[end..].iter().map(|s| s.to_string()));
    let mut s = out.join("\n");
    if text.ends_with('\n') {
        s.push('\n');
    }
    Ok(s)
}

/// Append `new` labels at the end of `project`'s label set (see the module docs). Returns the
/// apply report (`label_changes` lists the appended labels with their class ids).
pub async fn append(
    db: &Db,
    project: &str,
    new: &[String],
) -> Result<ApplyReport, AppendLabelsError> {
    // One append at a time in this process: each reads the label set it extends.
    static LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let _guard = LOCK.lock().await;
    let p = projects::get(db, project).await?;
    let existing = p.label_names();
    match check_new_labels(&existing, new) {
        Ok(()) => {}
        Err(CheckFailure::Invalid(m)) => return Err(AppendLabelsError::Invalid(m)),
        Err(CheckFailure::Exists(labels)) => {
            return Err(AppendLabelsError::Exists {
                project: project.to_string(),
                labels,
            });
        }
    }
    let mut all = existing;
    all.extend(new.iter().cloned());
    let text = rewrite_labels(&p.manifest_yaml, &all)
        .map_err(|e| AppendLabelsError::Rewrite(project.to_string(), e))?;
    let manifest = Manifest::parse(&text, "stored manifest")
        .map_err(|d| AppendLabelsError::Invalid(vec![d.to_string()]))?;
    let mut expected = p.manifest.clone();
    expected.labels = all;
    if manifest != expected {
        return Err(AppendLabelsError::Rewrite(
            project.to_string(),
            "the rewritten manifest differs in more than its labels".into(),
        ));
    }
    Ok(projects::apply(db, &manifest, &text, false).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn rewrite_flow_block_and_json() {
        let flow = "project: p\nlabels: [ok, ng] # classes\nmodels:\n  classifier:\n    name: x\n";
        let out = rewrite_labels(flow, &v(&["ok", "ng", "dent"])).unwrap();
        assert_eq!(
            out,
            "project: p\nlabels: [\"ok\", \"ng\", \"dent\"]\nmodels:\n  classifier:\n    name: x\n"
        );
        let block = "project: p\nlabels:\n  - ok\n  - ng\n\n# models\nmodels: {}\n";
        let out = rewrite_labels(block, &v(&["ok", "ng", "x y"])).unwrap();
        assert_eq!(
            out,
            "project: p\nlabels: [\"ok\", \"ng\", \"x y\"]\n\n# models\nmodels: {}\n"
        );
        let json = r#"{"project": "p", "labels": ["ok"]}"#;
        let out = rewrite_labels(json, &v(&["ok", "ng"])).unwrap();
        let back: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(back["labels"], serde_json::json!(["ok", "ng"]));
        assert!(rewrite_labels("project: p\n", &v(&["a"])).is_err());
    }

    #[test]
    fn checks() {
        let old = v(&["ok", "scratch"]);
        assert_eq!(check_new_labels(&old, &v(&["dent"])), Ok(()));
        assert_eq!(
            check_new_labels(&old, &v(&["scratch", "dent"])),
            Err(CheckFailure::Exists(v(&["scratch"])))
        );
        let Err(CheckFailure::Invalid(m)) =
            check_new_labels(&old, &v(&["a/b", "Dent", "dent", "Scratch", ""]))
        else {
            panic!("expected invalid");
        };
        assert_eq!(m.len(), 4, "{m:?}");
        assert!(m[0].contains("contains `/`"), "{m:?}");
        assert!(m[1].contains("only by letter case"), "{m:?}");
        assert!(m[2].contains("project's label `scratch`"), "{m:?}");
        assert!(m[3].contains("empty label"), "{m:?}");
        assert!(matches!(
            check_new_labels(&old, &[]),
            Err(CheckFailure::Invalid(_))
        ));
    }
}
