//! Projects and their ordered label sets.
//!
//! A label's position is its class id. [`apply`] creates a project or updates it from a manifest:
//! appending labels at the end is always allowed; removing, renaming or reordering labels of a
//! project that already has dataset or model versions is refused with [`LabelChangeRefused`]
//! (naming those versions) unless the caller passes `allow_label_change`, and every change is
//! reported back, never applied silently.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sightline_core::Manifest;
use sqlx::Row;
use sqlx::types::Json;

use crate::{Db, DbError, with_pool};

/// One label of a project.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Label {
    /// Class id (0-based position in the manifest's list).
    pub position: u32,
    /// Label name.
    pub name: String,
}

/// A stored project.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Project {
    /// Database id.
    pub id: i64,
    /// Unique name.
    pub name: String,
    /// Labels by class id.
    pub labels: Vec<Label>,
    /// The validated manifest last applied.
    pub manifest: Manifest,
    /// The manifest text last applied.
    pub manifest_yaml: String,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last update.
    pub updated_at: DateTime<Utc>,
    /// Dataset versions recorded for this project (ids, oldest first).
    pub dataset_versions: Vec<String>,
    /// Model versions recorded for this project, as `task vN`.
    pub model_versions: Vec<String>,
}

impl Project {
    /// Label names by class id.
    pub fn label_names(&self) -> Vec<String> {
        self.labels.iter().map(|l| l.name.clone()).collect()
    }
}

/// A row of `project list`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProjectSummary {
    /// Database id.
    pub id: i64,
    /// Name.
    pub name: String,
    /// Number of labels.
    pub labels: i64,
    /// Number of dataset versions.
    pub dataset_versions: i64,
    /// Number of model versions.
    pub model_versions: i64,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last update.
    pub updated_at: DateTime<Utc>,
}

/// One difference between the stored label set and a manifest's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum LabelChange {
    /// A new label at the end: existing class ids are unchanged.
    Appended {
        /// Name.
        name: String,
        /// Its class id.
        position: u32,
    },
    /// A label that is no longer in the manifest.
    Removed {
        /// Name.
        name: String,
        /// Its former class id.
        position: u32,
    },
    /// A label whose class id changes.
    Moved {
        /// Name.
        name: String,
        /// Former class id.
        from: u32,
        /// New class id.
        to: u32,
    },
    /// A new label inserted before the end (it takes a class id that changes meaning).
    Inserted {
        /// Name.
        name: String,
        /// Its class id.
        position: u32,
    },
}

impl LabelChange {
    /// Whether this change alters the meaning of an existing class id.
    pub fn is_breaking(&self) -> bool {
        !matches!(self, LabelChange::Appended { .. })
    }
}

impl fmt::Display for LabelChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LabelChange::Appended { name, position } => {
                write!(f, "+ {name} (class {position}, appended)")
            }
            LabelChange::Removed { name, position } => write!(f, "- {name} (was class {position})"),
            LabelChange::Moved { name, from, to } => write!(f, "~ {name} (class {from} -> {to})"),
            LabelChange::Inserted { name, position } => {
                write!(
                    f,
                    "+ {name} (class {position}, inserted before existing labels)"
                )
            }
        }
    }
}

/// The differences from `old` to `new`, breaking ones included; empty when equal.
pub fn diff_labels(old: &[String], new: &[String]) -> Vec<LabelChange> {
    let mut changes = Vec::new();
    let pos = |v: &[String], name: &str| v.iter().position(|l| l == name).map(to_u32);
    for (i, name) in old.iter().enumerate() {
        match pos(new, name) {
            None => changes.push(LabelChange::Removed {
                name: name.clone(),
                position: to_u32(i),
            }),
            Some(j) if j != to_u32(i) => changes.push(LabelChange::Moved {
                name: name.clone(),
                from: to_u32(i),
                to: j,
            }),
            Some(_) => {}
        }
    }
    for (j, name) in new.iter().enumerate() {
        if pos(old, name).is_none() {
            let position = to_u32(j);
            if j >= old.len() && new[..old.len().min(new.len())] == old[..old.len().min(new.len())]
            {
                changes.push(LabelChange::Appended {
                    name: name.clone(),
                    position,
                });
            } else {
                changes.push(LabelChange::Inserted {
                    name: name.clone(),
                    position,
                });
            }
        }
    }
    changes
}

fn to_u32(i: usize) -> u32 {
    u32::try_from(i).unwrap_or(u32::MAX)
}

/// A label change refused because dataset or model versions depend on the class ids.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize)]
pub struct LabelChangeRefused {
    /// Project name.
    pub project: String,
    /// The breaking changes.
    pub changes: Vec<LabelChange>,
    /// Dataset versions of the project.
    pub dataset_versions: Vec<String>,
    /// Model versions of the project (`task vN`).
    pub model_versions: Vec<String>,
}

impl fmt::Display for LabelChangeRefused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "refusing to change the labels of project `{}`: class ids are recorded in its existing data",
            self.project
        )?;
        writeln!(f, "label changes:")?;
        for c in &self.changes {
            writeln!(f, "  {c}")?;
        }
        if !self.dataset_versions.is_empty() {
            writeln!(
                f,
                "dataset versions ({}): {}",
                self.dataset_versions.len(),
                list_some(&self.dataset_versions)
            )?;
        }
        if !self.model_versions.is_empty() {
            writeln!(
                f,
                "model versions ({}): {}",
                self.model_versions.len(),
                list_some(&self.model_versions)
            )?;
        }
        write!(
            f,
            "append new labels at the end of the list instead, or pass --allow-label-change if \
             those versions should be re-labelled"
        )
    }
}

fn list_some(items: &[String]) -> String {
    const MAX: usize = 10;
    let mut s = items
        .iter()
        .take(MAX)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if items.len() > MAX {
        s.push_str(&format!(", … ({} more)", items.len() - MAX));
    }
    s
}

/// What [`apply`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ApplyOutcome {
    /// A new project.
    Created,
    /// The manifest or the labels changed.
    Updated,
    /// Nothing changed.
    Unchanged,
}

/// The result of [`apply`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ApplyReport {
    /// Created, updated or unchanged.
    pub outcome: ApplyOutcome,
    /// Label differences that were applied (breaking ones only with `allow_label_change`).
    pub label_changes: Vec<LabelChange>,
    /// The project as stored now.
    pub project: Project,
}

/// Create or update the project described by `manifest` (`yaml` is its text, stored verbatim).
pub async fn apply(
    db: &Db,
    manifest: &Manifest,
    yaml: &str,
    allow_label_change: bool,
) -> Result<ApplyReport, DbError> {
    let manifest_json = serde_json::to_value(manifest)
        .map_err(|e| DbError::Corrupt(format!("cannot encode the manifest: {e}")))?;
    let now = crate::now();
    let name = manifest.project.as_str();
    let (outcome, changes) = with_pool!(db, |pool| {
        let mut tx = pool.begin_with(db.begin_write()).await?;
        let existing = sqlx::query("SELECT id, manifest_yaml FROM projects WHERE name = $1")
            .bind(name)
            .fetch_optional(&mut *tx)
            .await?;
        let result = match existing {
            None => {
                let id: i64 = sqlx::query_scalar(
                    "INSERT INTO projects (name, manifest_yaml, manifest_json, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $4) RETURNING id",
                )
                .bind(name)
                .bind(yaml)
                .bind(Json(&manifest_json))
                .bind(now)
                .fetch_one(&mut *tx)
                .await?;
                for (i, label) in manifest.labels.iter().enumerate() {
                    sqlx::query(
                        "INSERT INTO labels (project_id, position, name, created_at) VALUES ($1, $2, $3, $4)",
                    )
                    .bind(id)
                    .bind(i64::from(to_u32(i)))
                    .bind(label)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                }
                (ApplyOutcome::Created, Vec::new())
            }
            Some(row) => {
                let id: i64 = row.try_get("id")?;
                let old_yaml: String = row.try_get("manifest_yaml")?;
                let old_labels: Vec<String> = sqlx::query_scalar(
                    "SELECT name FROM labels WHERE project_id = $1 ORDER BY position",
                )
                .bind(id)
                .fetch_all(&mut *tx)
                .await?;
                let changes = diff_labels(&old_labels, &manifest.labels);
                let breaking = changes.iter().any(LabelChange::is_breaking);
                if breaking {
                    let datasets: Vec<String> = sqlx::query_scalar(
                        "SELECT id FROM dataset_versions WHERE project_id = $1 ORDER BY created_at, id",
                    )
                    .bind(id)
                    .fetch_all(&mut *tx)
                    .await?;
                    let models: Vec<(String, i64)> = sqlx::query_as(
                        "SELECT task, version FROM model_versions WHERE project_id = $1 ORDER BY task, version",
                    )
                    .bind(id)
                    .fetch_all(&mut *tx)
                    .await?;
                    let has_data = !datasets.is_empty() || !models.is_empty();
                    if has_data && !allow_label_change {
                        return Err(DbError::LabelChangeRefused(LabelChangeRefused {
                            project: name.to_string(),
                            changes: changes
                                .into_iter()
                                .filter(LabelChange::is_breaking)
                                .collect(),
                            dataset_versions: datasets,
                            model_versions: models
                                .into_iter()
                                .map(|(t, v)| format!("{t} v{v}"))
                                .collect(),
                        }));
                    }
                    // Rewrite the label set: positions are the manifest's, as reported.
                    sqlx::query("DELETE FROM labels WHERE project_id = $1")
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                    for (i, label) in manifest.labels.iter().enumerate() {
                        sqlx::query(
                            "INSERT INTO labels (project_id, position, name, created_at) VALUES ($1, $2, $3, $4)",
                        )
                        .bind(id)
                        .bind(i64::from(to_u32(i)))
                        .bind(label)
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                    }
                } else {
                    for change in &changes {
                        if let LabelChange::Appended {
                            name: label,
                            position,
                        } = change
                        {
                            sqlx::query(
                                "INSERT INTO labels (project_id, position, name, created_at) VALUES ($1, $2, $3, $4)",
                            )
                            .bind(id)
                            .bind(i64::from(*position))
                            .bind(label)
                            .bind(now)
                            .execute(&mut *tx)
                            .await?;
                        }
                    }
                }
                if changes.is_empty() && old_yaml == yaml {
                    (ApplyOutcome::Unchanged, changes)
                } else {
                    sqlx::query(
                        "UPDATE projects SET manifest_yaml = $1, manifest_json = $2, updated_at = $3 WHERE id = $4",
                    )
                    .bind(yaml)
                    .bind(Json(&manifest_json))
                    .bind(now)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                    (ApplyOutcome::Updated, changes)
                }
            }
        };
        tx.commit().await?;
        result
    });
    let project = get(db, name).await?;
    Ok(ApplyReport {
        outcome,
        label_changes: changes,
        project,
    })
}

/// Every project, by name.
pub async fn list(db: &Db) -> Result<Vec<ProjectSummary>, DbError> {
    const SQL: &str = "SELECT p.id, p.name, p.created_at, p.updated_at, \
         (SELECT COUNT(*) FROM labels l WHERE l.project_id = p.id) AS labels, \
         (SELECT COUNT(*) FROM dataset_versions d WHERE d.project_id = p.id) AS datasets, \
         (SELECT COUNT(*) FROM model_versions m WHERE m.project_id = p.id) AS models \
         FROM projects p ORDER BY p.name";
    let rows = with_pool!(db, |pool| {
        let rows = sqlx::query(SQL).fetch_all(pool).await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            out.push(ProjectSummary {
                id: row.try_get("id")?,
                name: row.try_get("name")?,
                labels: row.try_get("labels")?,
                dataset_versions: row.try_get("datasets")?,
                model_versions: row.try_get("models")?,
                created_at: row.try_get("created_at")?,
                updated_at: row.try_get("updated_at")?,
            });
        }
        out
    });
    Ok(rows)
}

/// One project with its labels and versions; [`DbError::ProjectNotFound`] if absent.
pub async fn get(db: &Db, name: &str) -> Result<Project, DbError> {
    with_pool!(db, |pool| {
        let Some(row) = sqlx::query(
            "SELECT id, name, manifest_yaml, manifest_json, created_at, updated_at FROM projects WHERE name = $1",
        )
        .bind(name)
        .fetch_optional(pool)
        .await?
        else {
            return Err(DbError::ProjectNotFound(name.to_string()));
        };
        let id: i64 = row.try_get("id")?;
        let Json(manifest_json): Json<serde_json::Value> = row.try_get("manifest_json")?;
        let manifest: Manifest = serde_json::from_value(manifest_json)
            .map_err(|e| DbError::Corrupt(format!("manifest of project `{name}`: {e}")))?;
        let labels: Vec<(i64, String)> = sqlx::query_as(
            "SELECT position, name FROM labels WHERE project_id = $1 ORDER BY position",
        )
        .bind(id)
        .fetch_all(pool)
        .await?;
        let labels = labels
            .into_iter()
            .map(|(position, name)| {
                u32::try_from(position)
                    .map(|position| Label { position, name })
                    .map_err(|_| DbError::Corrupt(format!("label position {position}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let dataset_versions: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM dataset_versions WHERE project_id = $1 ORDER BY created_at, id",
        )
        .bind(id)
        .fetch_all(pool)
        .await?;
        let models: Vec<(String, i64)> = sqlx::query_as(
            "SELECT task, version FROM model_versions WHERE project_id = $1 ORDER BY task, version",
        )
        .bind(id)
        .fetch_all(pool)
        .await?;
        Ok(Project {
            id,
            name: row.try_get("name")?,
            labels,
            manifest,
            manifest_yaml: row.try_get("manifest_yaml")?,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
            dataset_versions,
            model_versions: models
                .into_iter()
                .map(|(t, v)| format!("{t} v{v}"))
                .collect(),
        })
    })
}

/// The id of a project by name; [`DbError::ProjectNotFound`] if absent.
pub async fn id_of(db: &Db, name: &str) -> Result<i64, DbError> {
    let id: Option<i64> = with_pool!(db, |pool| {
        sqlx::query_scalar("SELECT id FROM projects WHERE name = $1")
            .bind(name)
            .fetch_optional(pool)
            .await?
    });
    id.ok_or_else(|| DbError::ProjectNotFound(name.to_string()))
}

/// The label names of a project, by class id.
pub async fn labels(db: &Db, name: &str) -> Result<Vec<String>, DbError> {
    let id = id_of(db, name).await?;
    let labels: Vec<String> = with_pool!(db, |pool| {
        sqlx::query_scalar("SELECT name FROM labels WHERE project_id = $1 ORDER BY position")
            .bind(id)
            .fetch_all(pool)
            .await?
    });
    Ok(labels)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn diff_append_only() {
        let d = diff_labels(&v(&["a", "b"]), &v(&["a", "b", "c"]));
        assert_eq!(
            d,
            vec![LabelChange::Appended {
                name: "c".into(),
                position: 2
            }]
        );
        assert!(!d[0].is_breaking());
        assert!(diff_labels(&v(&["a"]), &v(&["a"])).is_empty());
    }

    #[test]
    fn diff_breaking() {
        let d = diff_labels(&v(&["a", "b", "c"]), &v(&["b", "a"]));
        assert_eq!(
            d,
            vec![
                LabelChange::Moved {
                    name: "a".into(),
                    from: 0,
                    to: 1
                },
                LabelChange::Moved {
                    name: "b".into(),
                    from: 1,
                    to: 0
                },
                LabelChange::Removed {
                    name: "c".into(),
                    position: 2
                },
            ]
        );
        let d = diff_labels(&v(&["a", "b"]), &v(&["x", "a", "b"]));
        assert!(d.contains(&LabelChange::Inserted {
            name: "x".into(),
            position: 0
        }));
        assert!(d.iter().all(LabelChange::is_breaking));
        // a rename is a removal plus an insertion at the same id
        let d = diff_labels(&v(&["a", "b"]), &v(&["a", "c"]));
        assert_eq!(
            d,
            vec![
                LabelChange::Removed {
                    name: "b".into(),
                    position: 1
                },
                LabelChange::Inserted {
                    name: "c".into(),
                    position: 1
                },
            ]
        );
    }
}
