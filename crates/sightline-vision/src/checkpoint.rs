//! Checkpoint files → models: reads any checkpoint `sightline-torch` understands (Ultralytics
//! `.pt`, torchvision `.pth`, safetensors) and Burn records ([`crate::record`], recognised by
//! their magic bytes), and tells which task it holds.

use std::path::Path;

pub use sightline_torch::{Checkpoint, CheckpointKind};

use crate::error::{Result, VisionError};
use crate::weights::{NamedTensor, TensorMap};

/// What a checkpoint's model does: the one task type of the workspace (`sightline-core`).
pub use sightline_core::Task;

/// Reads a checkpoint file: a Burn record (as [`crate::record::read_record`]) or anything
/// `sightline-torch` reads.
pub fn read_checkpoint(path: &Path) -> Result<Checkpoint> {
    if crate::record::is_record_file(path) {
        return crate::record::read_record(path);
    }
    sightline_torch::load(path).map_err(|e| VisionError::ReadCheckpoint {
        path: path.to_path_buf(),
        source: Box::new(e),
    })
}

/// The task of a checkpoint: its metadata when it says so, else recognised from tensor names.
pub fn task_of(ckpt: &Checkpoint) -> Option<Task> {
    match ckpt.meta.task.as_deref() {
        Some("segment") => return Some(Task::Segment),
        Some("classify") => return Some(Task::Classify),
        _ => {}
    }
    if ckpt.get("model.22.proto.cv1.conv.weight").is_some() {
        Some(Task::Segment)
    } else if ckpt.tensors.keys().any(|k| k.starts_with("classifier.")) {
        Some(Task::Classify)
    } else {
        None
    }
}

/// The checkpoint's tensors as a [`TensorMap`] (moves the data).
pub fn into_tensor_map(ckpt: Checkpoint) -> TensorMap {
    ckpt.tensors
        .into_iter()
        .map(|(name, t)| {
            (
                name,
                NamedTensor {
                    shape: t.shape,
                    data: t.data,
                },
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;

    #[test]
    fn an_unreadable_checkpoint_keeps_the_readers_error_as_its_source() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("garbage.pt");
        fs_err::write(&path, b"not a checkpoint").unwrap();
        let e = read_checkpoint(&path).unwrap_err();
        let VisionError::ReadCheckpoint { source: torch, .. } = &e else {
            panic!("not ReadCheckpoint: {e:?}");
        };
        assert!(matches!(
            torch.kind,
            sightline_torch::ErrorKind::UnknownFormat
        ));
        let cause = e.source().expect("the reader's error is the source");
        assert_eq!(cause.to_string(), torch.to_string());
        // The message is the one users saw when the cause was a string.
        assert_eq!(
            e.to_string(),
            format!("cannot read checkpoint {}: {torch}", path.display())
        );
    }
}
