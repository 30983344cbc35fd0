//! Experiment folders: `artifacts/experiments/<timestamp>/` with the resolved configuration,
//! `metrics.json` (one record per completed epoch, rewritten atomically after each), weights
//! `weights/last.safetensors` and `weights/best.safetensors`, and `summary.json`.
//!
//! **Fitness** (what "best" means): for the detector, Ultralytics' segmentation fitness
//! `Σ_{box, mask} (0.1·mAP50 + 0.9·mAP50-95)`; for the classifier, top-1 accuracy.
//! Early stopping: training stops after `patience` epochs without a fitness improvement.

use crate::error::{Result, TrainError};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One completed epoch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// Zero-based epoch index.
    pub epoch: usize,
    /// Mean training losses by name (`box`, `seg`, `cls`, `dfl`, or `ce`).
    pub losses: BTreeMap<String, f64>,
    /// Learning rate at the end of the epoch (weight group).
    pub lr: f64,
    /// Validation metrics by name (`box_map50`, `mask_map`, `top1`, …).
    pub metrics: BTreeMap<String, f64>,
    /// Fitness of this epoch.
    pub fitness: f64,
    /// Wall time of the epoch including validation, seconds.
    pub time_s: f64,
}

/// Ultralytics segmentation fitness: `0.1·mAP50 + 0.9·mAP50-95` for boxes plus the same for masks.
pub fn detector_fitness(box_map50: f64, box_map: f64, mask_map50: f64, mask_map: f64) -> f64 {
    0.1 * box_map50 + 0.9 * box_map + 0.1 * mask_map50 + 0.9 * mask_map
}

/// Tracks the best fitness and decides early stopping.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BestTracker {
    /// Best fitness so far.
    pub best_fitness: Option<f64>,
    /// Epoch of the best fitness.
    pub best_epoch: Option<usize>,
    /// Epochs without improvement before stopping (0 disables).
    pub patience: usize,
}

impl BestTracker {
    /// A tracker with the given patience.
    pub fn new(patience: usize) -> Self {
        Self {
            best_fitness: None,
            best_epoch: None,
            patience,
        }
    }

    /// Record an epoch; returns whether it is the new best.
    pub fn update(&mut self, epoch: usize, fitness: f64) -> bool {
        let better = fitness.is_finite() && self.best_fitness.is_none_or(|b| fitness > b);
        if better {
            self.best_fitness = Some(fitness);
            self.best_epoch = Some(epoch);
        }
        better
    }

    /// Whether training should stop after `epoch`.
    pub fn should_stop(&self, epoch: usize) -> bool {
        self.patience > 0 && self.best_epoch.is_some_and(|b| epoch >= b + self.patience)
    }
}

/// An experiment folder.
#[derive(Debug, Clone)]
pub struct Experiment {
    dir: PathBuf,
    records: Vec<EpochRecord>,
}

/// Write `bytes` to `path` atomically (temporary file in the same folder, fsync, rename).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let parent = path
        .parent()
        .ok_or_else(|| TrainError::Io(format!("{} has no parent folder", path.display())))?;
    fs_err::create_dir_all(parent)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = parent.join(format!(".{name}.tmp-{}", std::process::id()));
    let mut f = fs_err::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    fs_err::rename(&tmp, path)?;
    Ok(())
}

/// UTC timestamp `YYYYMMDD-HHMMSS` of a Unix time in seconds.
pub fn timestamp(unix_s: u64) -> String {
    unix_seconds(unix_s).format("%Y%m%d-%H%M%S").to_string()
}

fn unix_seconds(unix_s: u64) -> chrono::DateTime<chrono::Utc> {
    i64::try_from(unix_s)
        .ok()
        .and_then(|s| chrono::DateTime::from_timestamp(s, 0))
        .unwrap_or(chrono::DateTime::UNIX_EPOCH)
}

impl Experiment {
    /// Create `<root>/experiments/<timestamp>/` (a suffix `-2`, `-3`… if it exists) and write
    /// `config.json` holding `config` and the dataset version id.
    pub fn create(
        root: &Path,
        unix_s: u64,
        config: &serde_json::Value,
        dataset_version: &str,
    ) -> Result<Self> {
        let base = root.join("experiments");
        let stamp = timestamp(unix_s);
        let mut dir = base.join(&stamp);
        let mut n = 2;
        while dir.exists() {
            dir = base.join(format!("{stamp}-{n}"));
            n += 1;
        }
        fs_err::create_dir_all(dir.join("weights"))?;
        let doc = serde_json::json!({ "config": config, "dataset_version": dataset_version });
        let text = serde_json::to_vec_pretty(&doc)?;
        write_atomic(&dir.join("config.json"), &text)?;
        write_atomic(&dir.join("metrics.json"), b"[]\n")?;
        Ok(Self {
            dir,
            records: Vec::new(),
        })
    }

    /// Open an existing experiment to resume it.
    pub fn open(dir: &Path) -> Result<Self> {
        let path = dir.join("metrics.json");
        let text = fs_err::read_to_string(&path)?;
        let records: Vec<EpochRecord> =
            serde_json::from_str(&text).map_err(|source| TrainError::ParseJson {
                path: path.clone(),
                source,
            })?;
        Ok(Self {
            dir: dir.to_path_buf(),
            records,
        })
    }

    /// The experiment folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Completed epochs.
    pub fn records(&self) -> &[EpochRecord] {
        &self.records
    }

    /// The epoch to start from when resuming (one past the last completed).
    pub fn next_epoch(&self) -> usize {
        self.records.last().map_or(0, |r| r.epoch + 1)
    }

    /// Append an epoch and rewrite `metrics.json` atomically.
    pub fn append(&mut self, record: EpochRecord) -> Result<()> {
        self.records.push(record);
        let text = serde_json::to_vec_pretty(&self.records)?;
        write_atomic(&self.dir.join("metrics.json"), &text)
    }

    /// Path of `weights/<name>.safetensors` (`last` or `best`).
    pub fn weights_path(&self, name: &str) -> PathBuf {
        self.dir.join("weights").join(format!("{name}.safetensors"))
    }

    /// Write `summary.json`.
    pub fn write_summary(&self, summary: &serde_json::Value) -> Result<()> {
        let text = serde_json::to_vec_pretty(summary)?;
        write_atomic(&self.dir.join("summary.json"), &text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps() {
        assert_eq!(timestamp(0), "19700101-000000");
        // 2026-11-28 21:20:47 UTC
        assert_eq!(timestamp(1_795_900_847), "20261128-212047");
        assert_eq!(timestamp(951_782_400), "20000229-000000");
    }

    #[test]
    fn fitness_and_patience() {
        assert!(
            (detector_fitness(0.668, 0.419, 0.654, 0.365) - (0.1 * 1.322 + 0.9 * 0.784)).abs()
                < 1e-12
        );
        let mut t = BestTracker::new(2);
        assert!(t.update(0, 0.1));
        assert!(t.update(1, 0.2));
        assert!(!t.update(2, 0.15));
        assert!(!t.should_stop(2));
        assert!(!t.update(3, f64::NAN));
        assert!(t.should_stop(3));
        assert!(
            !BestTracker {
                patience: 0,
                ..t.clone()
            }
            .should_stop(100)
        );
    }

    #[test]
    fn create_append_reopen() {
        let tmp = tempfile::tempdir().unwrap();
        let cfg = serde_json::json!({"epochs": 3});
        let mut e = Experiment::create(tmp.path(), 1_795_900_847, &cfg, "v1abc").unwrap();
        let e2 = Experiment::create(tmp.path(), 1_795_900_847, &cfg, "v1abc").unwrap();
        assert!(e.dir().ends_with("experiments/20261128-212047"));
        assert!(e2.dir().ends_with("experiments/20261128-212047-2"));
        assert_eq!(e.next_epoch(), 0);
        let rec = |epoch| EpochRecord {
            epoch,
            losses: [("box".to_string(), 1.5)].into(),
            lr: 0.01,
            metrics: [("mask_map".to_string(), 0.3)].into(),
            fitness: 0.3,
            time_s: 2.0,
        };
        e.append(rec(0)).unwrap();
        e.append(rec(1)).unwrap();
        let back = Experiment::open(e.dir()).unwrap();
        assert_eq!(back.records(), &[rec(0), rec(1)]);
        assert_eq!(back.next_epoch(), 2);
        let conf: serde_json::Value =
            serde_json::from_str(&fs_err::read_to_string(e.dir().join("config.json")).unwrap())
                .unwrap();
        assert_eq!(conf["dataset_version"], "v1abc");
        assert!(e.weights_path("best").ends_with("weights/best.safetensors"));
        // no temporary files left behind
        let names: Vec<_> = fs_err::read_dir(e.dir())
            .unwrap()
            .map(|d| d.unwrap().file_name())
            .collect();
        assert!(
            names.iter().all(|n| !n.to_string_lossy().starts_with('.')),
            "{names:?}"
        );
        assert!(Experiment::open(&tmp.path().join("missing")).is_err());
    }
}
