//! The trainer's progress events: one JSON object per line on the stdout of
//! `sightline train --json`, read back by the server's job runner.
//!
//! [`TrainEvent`] is the one definition both sides use: the CLI serialises it, the server
//! decodes it with `serde_json::from_str::<TrainEvent>`. The wire form is an object with an
//! `"event"` tag (`start`, `batch`, `epoch`, `done`) and the variant's fields. Print it with
//! [`TrainEvent::to_json_line`]: it goes through [`serde_json::Value`], whose objects keep
//! their keys sorted, so every line has its keys in alphabetical order (the form the trainer
//! has always written). A non-finite number (a diverging loss) is written as `null` and read
//! back as NaN, so such an event still decodes.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use sightline_core::Task;
use sightline_db::experiments::Status;
use sightline_train::control::BatchProgress;
use sightline_train::experiment::EpochRecord;

/// One progress event of a training run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum TrainEvent {
    /// The experiment exists (created, or reopened to resume) and the loop is about to run.
    Start(StartEvent),
    /// A batch was trained.
    Batch(BatchEvent),
    /// An epoch was completed and validated (the experiment's `metrics.json` record).
    Epoch(EpochEvent),
    /// The run ended and its end is recorded in the database.
    Done(DoneEvent),
}

/// The fields of [`TrainEvent::Start`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StartEvent {
    /// Experiment id (its folder name).
    pub experiment: String,
    /// The experiment folder.
    pub dir: PathBuf,
    /// What is trained.
    pub task: Task,
    /// The first epoch this run trains (0-based; above 0 when resuming).
    pub resume_from_epoch: usize,
    /// Epochs of the whole run.
    pub epochs: u32,
    /// Dataset version id.
    pub dataset_version: String,
    /// Class names by class id.
    pub names: Vec<String>,
    /// Training images.
    pub train_images: usize,
    /// Validation images.
    pub val_images: usize,
}

/// The fields of [`TrainEvent::Batch`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchEvent {
    /// Current epoch (0-based).
    pub epoch: usize,
    /// Epochs of the run.
    pub epochs: usize,
    /// Batch index in the epoch (0-based).
    pub batch: usize,
    /// Batches per epoch.
    pub batches: usize,
    /// Losses of this batch by name, in the loop's order (on the wire: an object).
    pub losses: Losses,
}

/// Named losses in the order the training loop reports them (`box`, `seg`, `cls`, `dfl`, or
/// `ce`). Serialised as a JSON object; decoded in key order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Losses(pub Vec<(String, f64)>);

impl Serialize for Losses {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter().map(|(k, v)| (k, v)))
    }
}

impl<'de> Deserialize<'de> for Losses {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Self(map_nan_if_null(d)?.into_iter().collect()))
    }
}

impl From<&BatchProgress> for BatchEvent {
    fn from(p: &BatchProgress) -> Self {
        Self {
            epoch: p.epoch,
            epochs: p.epochs,
            batch: p.batch,
            batches: p.batches,
            losses: Losses(p.losses.clone()),
        }
    }
}

/// The fields of [`TrainEvent::Epoch`]: an [`EpochRecord`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochEvent {
    /// Zero-based epoch index.
    pub epoch: usize,
    /// Mean training losses by name.
    #[serde(deserialize_with = "map_nan_if_null")]
    pub losses: BTreeMap<String, f64>,
    /// Learning rate at the end of the epoch.
    #[serde(deserialize_with = "nan_if_null")]
    pub lr: f64,
    /// Validation metrics by name.
    #[serde(deserialize_with = "map_nan_if_null")]
    pub metrics: BTreeMap<String, f64>,
    /// Fitness of this epoch.
    #[serde(deserialize_with = "nan_if_null")]
    pub fitness: f64,
    /// Wall time of the epoch including validation, seconds.
    #[serde(deserialize_with = "nan_if_null")]
    pub time_s: f64,
}

impl From<&EpochRecord> for EpochEvent {
    fn from(r: &EpochRecord) -> Self {
        Self {
            epoch: r.epoch,
            losses: r.losses.clone(),
            lr: r.lr,
            metrics: r.metrics.clone(),
            fitness: r.fitness,
            time_s: r.time_s,
        }
    }
}

/// A number, `null` (how a non-finite one is written) as NaN.
fn nan_if_null<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

/// Named numbers, `null` as NaN.
fn map_nan_if_null<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<BTreeMap<String, f64>, D::Error> {
    let map = BTreeMap::<String, Option<f64>>::deserialize(d)?;
    Ok(map
        .into_iter()
        .map(|(k, v)| (k, v.unwrap_or(f64::NAN)))
        .collect())
}

/// The fields of [`TrainEvent::Done`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DoneEvent {
    /// Experiment id.
    pub experiment: String,
    /// How the run ended (`completed` or `stopped`; a failed run reports an error instead).
    pub status: Status,
    /// The experiment folder.
    pub dir: PathBuf,
    /// Best epoch (0-based), if any epoch completed.
    pub best_epoch: Option<usize>,
    /// Fitness of the best epoch.
    pub best_fitness: Option<f64>,
    /// Validation metrics of the best epoch (an empty object when there is none).
    pub best_metrics: serde_json::Value,
    /// The checkpoints.
    pub weights: DoneWeights,
    /// Burn records written (`--save-record`), else empty.
    pub records: Vec<PathBuf>,
}

/// The checkpoint files of a finished run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DoneWeights {
    /// `weights/last.safetensors`.
    pub last: PathBuf,
    /// `weights/best.safetensors`.
    pub best: PathBuf,
}

impl TrainEvent {
    /// The event as one JSON line (no newline), keys in alphabetical order.
    pub fn to_json_line(&self) -> String {
        self.to_value().to_string()
    }

    /// The event as a JSON value (objects with sorted keys).
    pub fn to_value(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }

    /// Decodes one line of the trainer's stdout; `None` for anything that is not an event
    /// (a garbled line, an unknown event, missing fields).
    pub fn from_line(line: &str) -> Option<Self> {
        serde_json::from_str(line).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch() -> TrainEvent {
        TrainEvent::Batch(BatchEvent {
            epoch: 0,
            epochs: 2,
            batch: 9,
            batches: 12,
            losses: Losses(vec![("box".to_string(), 0.5), ("seg".to_string(), 1.25)]),
        })
    }

    #[test]
    fn lines_are_the_trainers_wire_form() {
        assert_eq!(
            batch().to_json_line(),
            r#"{"batch":9,"batches":12,"epoch":0,"epochs":2,"event":"batch","losses":{"box":0.5,"seg":1.25}}"#
        );
        let start = TrainEvent::Start(StartEvent {
            experiment: "20261129-001500".into(),
            dir: "/a/experiments/20261129-001500".into(),
            task: Task::Classify,
            resume_from_epoch: 1,
            epochs: 3,
            dataset_version: "abc".into(),
            names: vec!["ok".into(), "ng".into()],
            train_images: 8,
            val_images: 2,
        });
        assert_eq!(
            start.to_json_line(),
            r#"{"dataset_version":"abc","dir":"/a/experiments/20261129-001500","epochs":3,"event":"start","experiment":"20261129-001500","names":["ok","ng"],"resume_from_epoch":1,"task":"classify","train_images":8,"val_images":2}"#
        );
        let epoch = TrainEvent::Epoch(EpochEvent {
            epoch: 1,
            losses: [("ce".to_string(), 0.75)].into_iter().collect(),
            lr: 0.001,
            metrics: [("top1".to_string(), 1.0)].into_iter().collect(),
            fitness: 1.0,
            time_s: 2.5,
        });
        assert_eq!(
            epoch.to_json_line(),
            r#"{"epoch":1,"event":"epoch","fitness":1.0,"losses":{"ce":0.75},"lr":0.001,"metrics":{"top1":1.0},"time_s":2.5}"#
        );
        let done = TrainEvent::Done(DoneEvent {
            experiment: "e".into(),
            status: Status::Stopped,
            dir: "/x".into(),
            best_epoch: None,
            best_fitness: None,
            best_metrics: serde_json::json!({}),
            weights: DoneWeights {
                last: "/x/weights/last.safetensors".into(),
                best: "/x/weights/best.safetensors".into(),
            },
            records: vec![],
        });
        assert_eq!(
            done.to_json_line(),
            r#"{"best_epoch":null,"best_fitness":null,"best_metrics":{},"dir":"/x","event":"done","experiment":"e","records":[],"status":"stopped","weights":{"best":"/x/weights/best.safetensors","last":"/x/weights/last.safetensors"}}"#
        );
        for ev in [batch(), start, epoch, done] {
            assert_eq!(TrainEvent::from_line(&ev.to_json_line()), Some(ev));
        }
    }

    #[test]
    fn non_finite_numbers_still_decode() {
        let line = r#"{"epoch":0,"event":"epoch","fitness":null,"losses":{"box":null},"lr":0.01,"metrics":{},"time_s":1.0}"#;
        let Some(TrainEvent::Epoch(e)) = TrainEvent::from_line(line) else {
            panic!("{line} does not decode");
        };
        assert!(e.fitness.is_nan() && e.losses["box"].is_nan());
        let line =
            r#"{"batch":0,"batches":1,"epoch":0,"epochs":1,"event":"batch","losses":{"seg":null}}"#;
        let Some(TrainEvent::Batch(b)) = TrainEvent::from_line(line) else {
            panic!("{line} does not decode");
        };
        assert!(b.losses.0[0].1.is_nan());
        // and NaN is written as null again
        assert_eq!(TrainEvent::Batch(b).to_json_line(), line);
    }

    #[test]
    fn other_lines_are_not_events() {
        for line in [
            "",
            "not json",
            "{}",
            r#"{"event":"warmup","epoch":1}"#,
            r#"{"event":"batch","epoch":"one"}"#,
            "[1, 2]",
        ] {
            assert_eq!(TrainEvent::from_line(line), None, "{line}");
        }
    }
}
