//! [`execute`]: a planned run → samples, the experiment and its record, the loop, the end.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use sightline_core::Settings;
use sightline_core::Task;
use sightline_db::experiments as dbx;
use sightline_train::control::TrainControl;
use sightline_train::experiment::{EpochRecord, Experiment};

use super::error::{RunError, TrainWorkflowError as E};
use super::events::{BatchEvent, DoneEvent, DoneWeights, EpochEvent, StartEvent, TrainEvent};
use super::model::{self, Prepared};
use super::plan::{exp_id, repo};
use super::{Ended, ExperimentRecorder, TrainEnd, TrainObserver, TrainOutcome, TrainPlan, data};
use sightline_core::error_chain as chain;

/// Runs a planned run to its end on the caller's Tokio runtime (the data preparation and the
/// loop run on blocking threads). `control` stops the loop after the current batch (the
/// experiment is then recorded `stopped`); a stop requested before the experiment exists
/// returns [`TrainOutcome::NotStarted`]. A failing loop is recorded `failed` and returned as
/// [`E::Failed`].
pub async fn execute(
    mut plan: TrainPlan,
    settings: &Settings,
    recorder: &ExperimentRecorder,
    control: TrainControl,
    observer: Arc<dyn TrainObserver>,
) -> Result<TrainOutcome, E> {
    let project = plan.resolved.project.clone();
    let repo = repo(&settings.home, &project)?;
    let version = plan.resolved.dataset_version.clone();
    let ds = repo
        .dataset(&version)
        .map_err(|e| E::ReadDataset(version.clone(), Box::new(e)))?;
    let images = repo.image_paths(&version)?;
    let control = control.with_batch_callback({
        let o = observer.clone();
        move |b| o.event(&TrainEvent::Batch(BatchEvent::from(b)))
    });
    // prepare the task's data (decoding happens here, before the experiment exists, so a
    // refused dataset leaves nothing behind)
    let prepared = match plan.task {
        Task::Segment => {
            let labels = plan.resolved.names.clone();
            let p =
                tokio::task::spawn_blocking(move || data::detector_samples(&ds, &images, &labels))
                    .await??;
            Prepared::Det(p)
        }
        Task::Classify => Prepared::Cls(data::classifier_samples(
            &ds,
            &images,
            &plan.resolved.names,
        )?),
    };
    for n in prepared.notes() {
        observer.note(n);
    }
    if plan.resume_dir.is_none() {
        plan.resolved.names = prepared.names().to_vec();
    } else if prepared.names() != plan.resolved.names.as_slice() {
        return Err(E::ClassesDiffer {
            version,
            prepared: prepared.names().join(", "),
            experiment: plan.resolved.names.join(", "),
        });
    }
    plan.resolved.optimizer = model::optimizer_summary(&plan.resolved, &prepared);
    if control.stop_requested() {
        return Ok(TrainOutcome::NotStarted);
    }
    // the experiment folder and its record
    let (exp, id) = match &plan.resume_dir {
        Some(dir) => {
            let exp = Experiment::open(dir)?;
            let id = exp_id(dir)?;
            recorder.resume(&id).await?;
            (exp, id)
        }
        None => {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            let config = serde_json::to_value(&plan.resolved)?;
            let exp = Experiment::create(&plan.root, now, &config, &version)?;
            let id = exp_id(exp.dir())?;
            recorder
                .start(
                    &project,
                    &id,
                    plan.task,
                    &version,
                    config,
                    &exp.dir().display().to_string(),
                )
                .await?;
            (exp, id)
        }
    };
    observer.event(&TrainEvent::Start(StartEvent {
        experiment: id.clone(),
        dir: exp.dir().to_path_buf(),
        task: plan.task,
        resume_from_epoch: exp.next_epoch(),
        epochs: plan.resolved.hyperparameters.epochs,
        dataset_version: version.clone(),
        names: plan.resolved.names.clone(),
        train_images: prepared.train_len(),
        val_images: prepared.val_len(),
    }));
    let dir = exp.dir().to_path_buf();
    let handle = tokio::runtime::Handle::current();
    let result: Result<Ended, RunError> = {
        let recorder = recorder.clone();
        let id = id.clone();
        let observer = observer.clone();
        let workers = plan.workers;
        let plan_task = plan.task;
        let resolved = plan.resolved.clone();
        let model_name = plan.model_name;
        let resuming = plan.resume_dir.is_some();
        let control = control.clone();
        tokio::task::spawn_blocking(move || {
            let on_epoch = |r: &EpochRecord| {
                observer.event(&TrainEvent::Epoch(EpochEvent::from(r)));
                if let Err(e) = handle.block_on(recorder.epoch(&id, r)) {
                    observer.note(&format!(
                        "warning: recording epoch {} in the database: {e}",
                        r.epoch
                    ));
                }
            };
            let observer = observer.as_ref();
            sightline_train::loader::with_workers(workers, move || {
                model::train(
                    plan_task, &resolved, model_name, prepared, exp, resuming, &control, observer,
                    on_epoch,
                )
            })
            .map_err(RunError::from)?
        })
        .await
        .map_err(E::TrainingPanicked)?
    };
    let best_metrics_of = |ended: &Ended| {
        ended
            .best_epoch
            .and_then(|b| {
                Experiment::open(&dir)
                    .ok()
                    .and_then(|x| x.records().iter().find(|r| r.epoch == b).cloned())
            })
            .map(|r| serde_json::to_value(r.metrics).unwrap_or_default())
            .unwrap_or_else(|| serde_json::json!({}))
    };
    let (status, best_epoch, best_fitness, best_metrics, error) = match &result {
        Ok(e) => (
            if e.stopped {
                dbx::Status::Stopped
            } else {
                dbx::Status::Completed
            },
            e.best_epoch,
            e.best_fitness,
            best_metrics_of(e),
            None,
        ),
        Err(e) => (
            dbx::Status::Failed,
            None,
            None,
            serde_json::json!({}),
            Some(chain(e)),
        ),
    };
    recorder
        .finish(
            &id,
            &dbx::Finish {
                status,
                best_epoch: best_epoch.map(|b| b as i64),
                best_fitness,
                best_metrics: best_metrics.clone(),
                error: error.as_deref(),
            },
        )
        .await?;
    if let Err(source) = result {
        return Err(E::Failed {
            id,
            source: Box::new(source),
        });
    }
    let records = if plan.save_record {
        let exp = Experiment::open(&dir)?;
        let names = plan.resolved.names.clone();
        let task = plan.task;
        tokio::task::spawn_blocking(move || model::save_records(task, &exp, &names))
            .await
            .map_err(E::RecordWriterPanicked)?
            .map_err(|e| E::Records(Box::new(e)))?
    } else {
        Vec::new()
    };
    let done = DoneEvent {
        experiment: id,
        status,
        dir: dir.clone(),
        best_epoch,
        best_fitness,
        best_metrics,
        weights: DoneWeights {
            last: dir.join("weights/last.safetensors"),
            best: dir.join("weights/best.safetensors"),
        },
        records,
    };
    observer.event(&TrainEvent::Done(done.clone()));
    let completed_epochs = Experiment::open(&dir).map(|e| e.next_epoch()).unwrap_or(0);
    Ok(TrainOutcome::Ended(Box::new(TrainEnd {
        done,
        epochs: plan.resolved.hyperparameters.epochs,
        completed_epochs,
    })))
}
