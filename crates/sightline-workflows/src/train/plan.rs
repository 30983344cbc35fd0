//! [`plan`]: the options of a run → what to run (new or resumed).

use std::path::{Path, PathBuf};

use sightline_core::Settings;
use sightline_core::Task;
use sightline_core::manifest::{Hyperparameters, Manifest, ModelName, Weights};
use sightline_core::settings::ArtifactSettings;
use sightline_datasets::version::Repo;

use super::error::TrainWorkflowError as E;
use super::{
    ExperimentRecorder, Overrides, Resolved, TrainObserver, TrainOptions, TrainPlan, subcommand,
};

/// Plans a run: a new one from the manifest (`options.config`) or a resumed experiment
/// (`options.resume`). Reads the manifest, the database (project labels, or that the
/// experiment is recorded) and the dataset repository; writes nothing.
pub async fn plan(
    options: &TrainOptions,
    settings: &Settings,
    recorder: &ExperimentRecorder,
    observer: &dyn TrainObserver,
) -> Result<TrainPlan, E> {
    match &options.resume {
        Some(r) => resume_plan(options, settings, recorder, r, observer).await,
        None => new_plan(options, settings, recorder).await,
    }
}

/// The local artifact root experiments are written under.
pub(crate) fn artifacts_root(settings: &Settings) -> Result<PathBuf, E> {
    match &settings.artifacts {
        ArtifactSettings::Local { root } => Ok(root.clone()),
        ArtifactSettings::S3(_) => Err(E::S3Artifacts),
    }
}

/// The project's dataset repository under the data directory.
pub(crate) fn repo(home: &Path, project: &str) -> Result<Repo, E> {
    sightline_datasets::dvc::safe_relpath(project)
        .map_err(|e| E::InvalidProject(project.to_string(), Box::new(e)))?;
    Ok(Repo::open(
        home.join("projects").join(project).join("datasets"),
    ))
}

/// Applies the overrides of a new run.
fn apply_overrides(h: &mut Hyperparameters, o: &Overrides) -> Result<(), E> {
    if let Some(e) = o.epochs {
        if e < 1 {
            return Err(E::ZeroEpochs);
        }
        h.epochs = e;
    }
    if let Some(s) = o.imgsz {
        if !(s >= 32 && s % 32 == 0) {
            return Err(E::Imgsz(s));
        }
        h.imgsz = s;
    }
    if let Some(b) = o.batch_size {
        if b < 1 {
            return Err(E::ZeroBatch);
        }
        h.batch_size = b;
    }
    if let Some(s) = o.seed {
        h.seed = s;
    }
    Ok(())
}

async fn new_plan(
    a: &TrainOptions,
    settings: &Settings,
    recorder: &ExperimentRecorder,
) -> Result<TrainPlan, E> {
    let task = a.task;
    let config = a.config.as_ref().ok_or(E::ConfigRequired)?;
    let manifest = Manifest::load(config).map_err(|source| E::Manifest {
        path: config.clone(),
        source: Box::new(source),
    })?;
    let mut mc = manifest
        .model(task)
        .ok_or_else(|| E::NoModelSection {
            path: config.clone(),
            what: subcommand(task),
        })?
        .clone();
    if let Some(w) = &a.weights {
        mc.weights = match w.as_str() {
            "none" => Weights::None,
            "imagenet" => Weights::ImageNet,
            path => Weights::Path(PathBuf::from(path)),
        };
    }
    let labels = sightline_db::projects::labels(recorder.db(), &manifest.project)
        .await
        .map_err(|source| E::ProjectNotApplied {
            project: manifest.project.clone(),
            config: config.clone(),
            source: Box::new(source),
        })?;
    if labels.is_empty() {
        return Err(E::NoLabels(manifest.project.clone()));
    }
    let mut h = mc.hyperparameters.clone();
    apply_overrides(&mut h, &a.overrides)?;
    let repo = repo(&settings.home, &manifest.project)?;
    let version = repo.get(&a.dataset).map_err(|source| E::DatasetVersion {
        reference: a.dataset.clone(),
        project: manifest.project.clone(),
        source: Box::new(source),
    })?;
    let cwd = std::env::current_dir().map_err(E::CurrentDir)?;
    let weights_file = match &mc.weights {
        Weights::Path(_) => mc.weights.resolve_path(&cwd, config.parent()),
        Weights::ImageNet => Some(imagenet_file(settings, mc.name)?),
        Weights::None => None,
    };
    if let Some(f) = &weights_file
        && !f.is_file()
    {
        return Err(E::WeightsNotFound {
            path: f.clone(),
            weights: mc.weights.to_string(),
        });
    }
    Ok(TrainPlan {
        task,
        model_name: mc.name,
        resolved: Resolved {
            project: manifest.project.clone(),
            task,
            model: mc.name.to_string(),
            weights: mc.weights.to_string(),
            weights_file,
            names: labels,
            dataset_version: version.id,
            hyperparameters: h,
            optimizer: serde_json::Value::Null,
            device: a.device.clone(),
            manifest: Some(config.clone()),
        },
        resume_dir: None,
        root: artifacts_root(settings)?,
        workers: a.workers,
        save_record: a.save_record,
    })
}

/// `weights: imagenet`: the torchvision file in the configured weights folder.
fn imagenet_file(settings: &Settings, name: ModelName) -> Result<PathBuf, E> {
    let file = match name {
        ModelName::MobileNetV3Small => "mobilenet_v3_small-imagenet.pth",
        ModelName::MobileNetV3Large => "mobilenet_v3_large-imagenet.pth",
        ModelName::Yolov8Seg(_) => return Err(E::ImagenetForDetector),
    };
    let path = settings.weights_dir.join(file);
    if !path.is_file() {
        return Err(E::ImagenetMissing { path, name });
    }
    Ok(path)
}

async fn resume_plan(
    a: &TrainOptions,
    settings: &Settings,
    recorder: &ExperimentRecorder,
    what: &str,
    observer: &dyn TrainObserver,
) -> Result<TrainPlan, E> {
    let task: Task = a.task;
    let root = artifacts_root(settings)?;
    let as_path = PathBuf::from(what);
    let dir = if as_path.join("config.json").is_file() {
        as_path
    } else {
        root.join("experiments").join(what)
    };
    let text = fs_err::read_to_string(dir.join("config.json"))
        .map_err(|e| E::ExperimentNotFound(what.to_string(), e))?;
    let doc: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| E::Json(dir.join("config.json"), e))?;
    let mut resolved: Resolved = serde_json::from_value(doc["config"].clone())
        .map_err(|e| E::NotATrainingConfig(dir.clone(), e))?;
    if resolved.task != task {
        return Err(E::ResumeTask {
            what: what.to_string(),
            trained: resolved.task,
            wanted: task,
        });
    }
    let id = exp_id(&dir)?;
    if !recorder.exists(&id).await? {
        return Err(E::NotRecorded(id));
    }
    if let Some(e) = a.overrides.epochs {
        resolved.hyperparameters.epochs = e;
    }
    if a.overrides.beyond_epochs() || a.config.is_some() {
        observer.note(
            "note: --resume continues with the experiment's own configuration; only --epochs, \
             --device and --workers apply",
        );
    }
    resolved.device = a.device.clone();
    let model_name: ModelName = resolved.model.parse().map_err(E::ModelName)?;
    Ok(TrainPlan {
        task,
        resolved,
        model_name,
        resume_dir: Some(dir),
        root,
        workers: a.workers,
        save_record: a.save_record,
    })
}

/// An experiment's id: its folder name.
pub(crate) fn exp_id(dir: &Path) -> Result<String, E> {
    dir.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| E::NoFolderName(dir.to_path_buf()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_are_checked() {
        let mut h = Hyperparameters::detector_defaults();
        let o = |epochs, imgsz, batch_size| Overrides {
            epochs,
            imgsz,
            batch_size,
            seed: Some(7),
        };
        assert!(matches!(
            apply_overrides(&mut h, &o(Some(0), None, None)),
            Err(E::ZeroEpochs)
        ));
        assert!(matches!(
            apply_overrides(&mut h, &o(None, Some(100), None)),
            Err(E::Imgsz(100))
        ));
        assert!(matches!(
            apply_overrides(&mut h, &o(None, None, Some(0))),
            Err(E::ZeroBatch)
        ));
        apply_overrides(&mut h, &o(Some(3), Some(96), Some(2))).unwrap();
        assert_eq!((h.epochs, h.imgsz, h.batch_size, h.seed), (3, 96, 2, 7));
    }
}
