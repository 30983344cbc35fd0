//! Which image size inference runs at: the one rule every command and the registry follow.
//!
//! **An explicit size (a flag) wins; else the size the checkpoint was trained at; else the
//! task's default** (detector 640, Ultralytics' `cfg/default.yaml`; classifier 224,
//! torchvision's `CenterCrop(224)` after `Resize(256)`). The checkpoint's size is
//! [`sightline_torch::Meta::imgsz`]: Ultralytics `.pt` `train_args["imgsz"]` (what Ultralytics'
//! own predictor uses) and the `train_args` our trainer writes into its safetensors and
//! Burnpack checkpoints; torchvision `.pth` state dicts record none. `sightline evaluate` uses
//! the manifest's `imgsz` as the last fallback instead of the task default.
//!
//! Our letterbox is square: a `[height, width]` size is run at its long side (Ultralytics
//! would letterbox into that rectangle; its own trainer always stores a single int, so this
//! only concerns hand-edited files).

use sightline_torch::Meta;

use crate::checkpoint::Task;
use crate::classify::{ClassifyPreprocess, IMAGENET_MEAN, IMAGENET_STD};
use crate::error::{Result, VisionError};

/// Detector inference size when nothing says otherwise (Ultralytics' default).
pub const DEFAULT_DETECTOR_IMGSZ: usize = 640;
/// Classifier crop when nothing says otherwise (torchvision's evaluation transform).
pub const DEFAULT_CLASSIFIER_IMGSZ: usize = 224;

/// The task's default size.
pub fn default_imgsz(task: Task) -> usize {
    match task {
        Task::Segment => DEFAULT_DETECTOR_IMGSZ,
        Task::Classify => DEFAULT_CLASSIFIER_IMGSZ,
    }
}

/// The size the checkpoint was trained at (letterbox long side / classifier crop), if it
/// records one; an error naming the value when it records something that is not a size.
pub fn checkpoint_imgsz(meta: &Meta) -> Result<Option<usize>> {
    meta.imgsz()
        .map(|s| s.map(|s| s.long_side()))
        .map_err(VisionError::CheckpointImgsz)
}

/// Where a resolved size came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImgszSource {
    /// Given explicitly (a flag).
    Explicit,
    /// Recorded in the checkpoint.
    Checkpoint,
    /// The fallback the caller passed (the task default, or a manifest's size).
    Fallback,
}

/// A size and where it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResolvedImgsz {
    /// The size (letterbox long side before stride rounding, or classifier crop).
    pub imgsz: usize,
    /// Its origin.
    pub source: ImgszSource,
}

/// The rule (module docs): `explicit`, else the checkpoint's size, else `fallback`. The
/// checkpoint is not consulted when `explicit` is given, so a damaged `imgsz` there can be
/// overridden.
pub fn resolve_imgsz(
    explicit: Option<usize>,
    meta: &Meta,
    fallback: usize,
) -> Result<ResolvedImgsz> {
    if let Some(imgsz) = explicit {
        return Ok(ResolvedImgsz {
            imgsz,
            source: ImgszSource::Explicit,
        });
    }
    Ok(match checkpoint_imgsz(meta)? {
        Some(imgsz) => ResolvedImgsz {
            imgsz,
            source: ImgszSource::Checkpoint,
        },
        None => ResolvedImgsz {
            imgsz: fallback,
            source: ImgszSource::Fallback,
        },
    })
}

/// [`resolve_imgsz`] with the task's default as the fallback.
pub fn inference_imgsz(explicit: Option<usize>, meta: &Meta, task: Task) -> Result<ResolvedImgsz> {
    resolve_imgsz(explicit, meta, default_imgsz(task))
}

/// The classifier evaluation transform for a crop of `crop` pixels: resize the shorter side
/// to `crop · 256 / 224` (256 for 224, as torchvision; what our trainer validates with and
/// what registry bundles record), centre-crop, ImageNet normalisation.
pub fn classify_preprocess(crop: usize) -> ClassifyPreprocess {
    ClassifyPreprocess {
        resize: crop * 256 / 224,
        crop,
        mean: IMAGENET_MEAN,
        std: IMAGENET_STD,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn meta(args: serde_json::Value) -> Meta {
        Meta {
            train_args: Some(args),
            ..Meta::default()
        }
    }

    #[test]
    fn explicit_then_checkpoint_then_default() {
        let m = meta(json!({"imgsz": 256}));
        let r = inference_imgsz(Some(320), &m, Task::Segment).unwrap();
        assert_eq!((r.imgsz, r.source), (320, ImgszSource::Explicit));
        let r = inference_imgsz(None, &m, Task::Segment).unwrap();
        assert_eq!((r.imgsz, r.source), (256, ImgszSource::Checkpoint));
        let none = Meta::default();
        let r = inference_imgsz(None, &none, Task::Segment).unwrap();
        assert_eq!((r.imgsz, r.source), (640, ImgszSource::Fallback));
        let r = inference_imgsz(None, &none, Task::Classify).unwrap();
        assert_eq!((r.imgsz, r.source), (224, ImgszSource::Fallback));
        let r = resolve_imgsz(None, &none, 128).unwrap();
        assert_eq!((r.imgsz, r.source), (128, ImgszSource::Fallback));
    }

    #[test]
    fn lists_use_the_long_side_and_nonsense_is_an_error() {
        assert_eq!(
            checkpoint_imgsz(&meta(json!({"imgsz": [192, 320]}))).unwrap(),
            Some(320)
        );
        let bad = meta(json!({"imgsz": "huge"}));
        let e = inference_imgsz(None, &bad, Task::Segment).unwrap_err();
        assert!(e.to_string().contains("train_args.imgsz"), "{e}");
        // an explicit size does not read the damaged value
        assert_eq!(
            inference_imgsz(Some(640), &bad, Task::Segment)
                .unwrap()
                .imgsz,
            640
        );
    }

    #[test]
    fn classifier_transform_scales_like_torchvision() {
        assert_eq!(classify_preprocess(224), ClassifyPreprocess::default());
        let p = classify_preprocess(64);
        assert_eq!((p.resize, p.crop), (73, 64));
    }
}
