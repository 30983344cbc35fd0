//! The starting MobileNetV3 of a classifier run: from scratch (torchvision's initialisation),
//! from a torchvision state dict (`.pth`, e.g. ImageNet weights: a 1000-class head is
//! re-initialised for the run's classes), or from one of our own safetensors checkpoints
//! (`weights/best.safetensors`, torchvision names). The file format is recognised from the
//! content by `sightline-torch`; the variant (small / large) is recognised from the tensors.

use burn::tensor::Device;
use sightline_vision::checkpoint::{Task, into_tensor_map, read_checkpoint, task_of};
use sightline_vision::mobilenet::{HeadPolicy, MobileNetV3, MobileNetV3Config, MobileNetV3Variant};
use std::path::{Path, PathBuf};

/// Where the starting weights come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClsInit {
    /// Random weights (torchvision's initialisation; seed the device for reproducibility).
    Scratch,
    /// A checkpoint file: torchvision `.pth` state dict or our safetensors checkpoint.
    Checkpoint(PathBuf),
}

/// Why the starting model could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ClsInitError {
    /// A classifier needs at least one class.
    #[error("a classifier needs at least one class")]
    NoClasses,
    /// The file could not be read as a checkpoint.
    #[error("cannot read the starting weights {}", path.display())]
    Read {
        /// The checkpoint.
        path: PathBuf,
        /// What went wrong.
        #[source]
        source: sightline_vision::VisionError,
    },
    /// The checkpoint holds another kind of model.
    #[error("{path} holds a segmentation model, not a MobileNetV3 classifier")]
    NotAClassifier {
        /// The checkpoint.
        path: PathBuf,
    },
    /// The checkpoint is not a MobileNetV3 or does not fit the architecture.
    #[error("{} is not usable MobileNetV3 weights", path.display())]
    Incompatible {
        /// The checkpoint.
        path: PathBuf,
        /// What does not fit (names the tensor where known).
        #[source]
        source: sightline_vision::VisionError,
    },
    /// The checkpoint is the other variant than the one asked for.
    #[error("{path} holds {found}, but the run asks for {expected}")]
    VariantMismatch {
        /// The checkpoint.
        path: PathBuf,
        /// Variant in the file.
        found: &'static str,
        /// Variant asked for.
        expected: &'static str,
    },
}

/// The starting model and what loading did.
#[derive(Debug)]
pub struct ClsStart {
    /// The network, on the requested device.
    pub model: MobileNetV3,
    /// Its architecture.
    pub config: MobileNetV3Config,
    /// `Some((checkpoint classes, run classes))` when the final layer (`classifier.3`) was
    /// re-initialised because the class counts differ.
    pub head_replaced: Option<(usize, usize)>,
}

/// Build the starting MobileNetV3 for `num_classes` classes. `variant`: the architecture asked
/// for; `None` takes the checkpoint's (small for [`ClsInit::Scratch`]). From a checkpoint, every
/// backbone tensor must fit; the final linear layer is re-initialised when its class count
/// differs (reported in [`ClsStart::head_replaced`]).
pub fn init_classifier(
    variant: Option<MobileNetV3Variant>,
    num_classes: usize,
    from: &ClsInit,
    device: &Device,
) -> Result<ClsStart, ClsInitError> {
    if num_classes == 0 {
        return Err(ClsInitError::NoClasses);
    }
    let path = match from {
        ClsInit::Scratch => {
            let config = MobileNetV3Config::variant(
                variant.unwrap_or(MobileNetV3Variant::Small),
                num_classes,
            );
            return Ok(ClsStart {
                model: config.init(device),
                config,
                head_replaced: None,
            });
        }
        ClsInit::Checkpoint(p) => p.as_path(),
    };
    let ckpt = read_checkpoint(path).map_err(|source| ClsInitError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    if task_of(&ckpt) == Some(Task::Segment) {
        return Err(ClsInitError::NotAClassifier {
            path: path.to_path_buf(),
        });
    }
    let weights = into_tensor_map(ckpt);
    let incompatible = |source: sightline_vision::VisionError| ClsInitError::Incompatible {
        path: path.to_path_buf(),
        source,
    };
    let stored = MobileNetV3Config::infer(&weights).map_err(incompatible)?;
    if let Some(v) = variant
        && v != stored.variant
    {
        return Err(ClsInitError::VariantMismatch {
            path: path.to_path_buf(),
            found: stored.variant.name(),
            expected: v.name(),
        });
    }
    let config = MobileNetV3Config::variant(stored.variant, num_classes);
    let (model, report) =
        MobileNetV3::load_with(&config, &weights, HeadPolicy::ReplaceIfMismatch, device)
            .map_err(incompatible)?;
    Ok(ClsStart {
        model,
        config,
        head_replaced: report.head_replaced,
    })
}

/// [`init_classifier`] from a path, `None` meaning scratch (a convenience for callers that
/// resolved the manifest's `weights` to a file or nothing).
pub fn init_from_path(
    variant: Option<MobileNetV3Variant>,
    num_classes: usize,
    path: Option<&Path>,
    device: &Device,
) -> Result<ClsStart, ClsInitError> {
    let from = path.map_or(ClsInit::Scratch, |p| ClsInit::Checkpoint(p.to_path_buf()));
    init_classifier(variant, num_classes, &from, device)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scratch_and_errors() {
        let d = Device::flex();
        let s = init_classifier(None, 3, &ClsInit::Scratch, &d).unwrap();
        assert_eq!(s.model.num_classes(), 3);
        assert_eq!(s.config.variant, MobileNetV3Variant::Small);
        assert!(s.head_replaced.is_none());
        assert!(matches!(
            init_classifier(None, 0, &ClsInit::Scratch, &d),
            Err(ClsInitError::NoClasses)
        ));
        let tmp = tempfile::tempdir().unwrap();
        let missing = tmp.path().join("nope.pth");
        let err = init_classifier(None, 3, &ClsInit::Checkpoint(missing), &d).unwrap_err();
        assert!(matches!(err, ClsInitError::Read { .. }), "{err}");
        assert!(err.to_string().contains("nope.pth"));
        // our own checkpoint, other variant asked for
        let ours = tmp.path().join("best.safetensors");
        s.model
            .to_tensor_map()
            .unwrap()
            .save_safetensors(&ours)
            .unwrap();
        let err = init_classifier(
            Some(MobileNetV3Variant::Large),
            3,
            &ClsInit::Checkpoint(ours.clone()),
            &d,
        )
        .unwrap_err();
        assert!(matches!(err, ClsInitError::VariantMismatch { .. }), "{err}");
        let back = init_from_path(None, 3, Some(&ours), &d).unwrap();
        assert!(back.head_replaced.is_none());
        assert_eq!(back.config.variant, MobileNetV3Variant::Small);
    }
}
