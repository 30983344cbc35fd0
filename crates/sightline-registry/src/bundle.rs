//! Deployment bundles: a model version's weights plus a `bundle.json` manifest with checksums.
//!
//! Layout (relative to the artifact root): `registry/<project>/<task>/v<version>/` containing the
//! weights file (`weights.<ext>`, the checkpoint's extension kept) and `bundle.json`, written last,
//! so a folder without `bundle.json` is an interrupted write and never loads. Every file is written
//! to a temporary name, fsynced and renamed into place. [`Bundle::open`] verifies every listed
//! file's size and SHA-256 before anything is handed to a model loader.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sightline_core::{BusinessRules, Task};

use crate::error::RegistryError;

/// Current `bundle.json` format number. Format 2: `labels` is the model's class map resolved at
/// registration ([`crate::labels`]). Format 1 (still read): `labels` are the project's labels
/// and a detector's class names come from its checkpoint.
pub const BUNDLE_FORMAT: u32 = 2;
/// Oldest `bundle.json` format that still opens.
pub const MIN_BUNDLE_FORMAT: u32 = 1;
/// Name of the manifest file inside a bundle folder.
pub const BUNDLE_MANIFEST: &str = "bundle.json";

/// How images are turned into model input; recorded so serving matches training.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Preprocessing {
    /// Ultralytics letterbox: resize the long side to `imgsz`, pad to a multiple of `stride`
    /// with gray `pad_value`.
    Letterbox {
        /// Target size of the long side.
        imgsz: u32,
        /// Padding multiple.
        stride: u32,
        /// Gray padding value.
        pad_value: u8,
    },
    /// torchvision classification: resize the shorter side, center crop, normalise.
    ResizeCrop {
        /// Shorter side after resize.
        resize: u32,
        /// Square crop size.
        crop: u32,
        /// Per-channel mean (RGB, 0–1 scale).
        mean: [f32; 3],
        /// Per-channel standard deviation.
        std: [f32; 3],
    },
}

impl Preprocessing {
    /// The preprocessing a task uses, with the trained image size.
    pub fn for_task(task: Task, imgsz: u32) -> Self {
        match task {
            Task::Segment => Preprocessing::Letterbox {
                imgsz,
                stride: 32,
                pad_value: 114,
            },
            Task::Classify => Preprocessing::ResizeCrop {
                // torchvision's reference: resize 256, crop 224; scaled for other sizes.
                resize: (u64::from(imgsz) * 256 / 224) as u32,
                crop: imgsz,
                mean: [0.485, 0.456, 0.406],
                std: [0.229, 0.224, 0.225],
            },
        }
    }

    /// Side of the square warm-up image that exercises this preprocessing.
    pub fn warmup_size(&self) -> u32 {
        match self {
            Preprocessing::Letterbox { imgsz, .. } => *imgsz,
            Preprocessing::ResizeCrop { resize, .. } => *resize,
        }
    }
}

/// One file of a bundle with its checksum.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BundleFile {
    /// Path relative to the bundle folder (no `..`, no absolute paths).
    pub path: String,
    /// Lowercase hex SHA-256 of the content.
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
}

/// The `bundle.json` manifest: everything a server needs to run the model the way it was trained.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BundleManifest {
    /// Format number ([`BUNDLE_FORMAT`]).
    pub format: u32,
    /// Project name.
    pub project: String,
    /// Task of the model.
    pub task: Task,
    /// Version number within project + task.
    pub version: i64,
    /// Architecture (`yolov8n-seg`, `mobilenet_v3_small`, ...).
    pub model_name: String,
    /// Class map: class id = index (format 2: resolved at registration, see [`crate::labels`];
    /// format 1: the project's labels).
    pub labels: Vec<String>,
    /// Input preprocessing.
    pub preprocessing: Preprocessing,
    /// Per-label confidence thresholds.
    pub thresholds: BTreeMap<String, f64>,
    /// Business rules of the project when registered.
    pub business_rules: BusinessRules,
    /// Path of the weights file within the bundle.
    pub weights: String,
    /// Every file of the bundle (the weights included) with size and SHA-256.
    pub files: Vec<BundleFile>,
    /// Creation time (RFC 3339, UTC).
    pub created_at: String,
}

/// A bundle whose files were all verified against `bundle.json`.
#[derive(Debug, Clone)]
pub struct Bundle {
    /// Absolute folder of the bundle.
    pub dir: PathBuf,
    /// The verified manifest.
    pub manifest: BundleManifest,
}

impl Bundle {
    /// Folder of a bundle relative to the artifact root.
    pub fn relative_dir(project: &str, task: Task, version: i64) -> PathBuf {
        PathBuf::from("registry")
            .join(project)
            .join(task.as_str())
            .join(format!("v{version}"))
    }

    /// Absolute path of the weights file.
    pub fn weights_path(&self) -> PathBuf {
        self.dir.join(&self.manifest.weights)
    }

    /// Write a bundle into `dir` (created; must not already contain a `bundle.json`): copy the
    /// checkpoint in as `weights.<ext>` (hashing while copying), then write `bundle.json`.
    /// `manifest.files`, `manifest.weights` and `manifest.format` are filled in here.
    /// Returns the checkpoint's SHA-256 and the finished bundle.
    pub fn write(
        dir: &Path,
        checkpoint: &Path,
        mut manifest: BundleManifest,
    ) -> Result<Bundle, RegistryError> {
        if dir.join(BUNDLE_MANIFEST).exists() {
            return Err(RegistryError::BundleExists(dir.to_path_buf()));
        }
        fs_err::create_dir_all(dir)?;
        let ext = checkpoint
            .extension()
            .and_then(|e| e.to_str())
            .filter(|e| e.chars().all(|c| c.is_ascii_alphanumeric()) && !e.is_empty())
            .unwrap_or("bin");
        let weights_name = format!("weights.{ext}");
        let (sha256, size) = copy_atomic_hashing(checkpoint, &dir.join(&weights_name))?;
        manifest.format = BUNDLE_FORMAT;
        manifest.weights = weights_name.clone();
        manifest.files = vec![BundleFile {
            path: weights_name,
            sha256,
            size,
        }];
        let json = serde_json::to_vec_pretty(&manifest)?;
        write_atomic(&dir.join(BUNDLE_MANIFEST), &json)?;
        Ok(Bundle {
            dir: dir.to_path_buf(),
            manifest,
        })
    }

    /// Open the bundle in `dir`, verifying every listed file's size and SHA-256.
    pub fn open(dir: &Path) -> Result<Bundle, RegistryError> {
        let manifest_path = dir.join(BUNDLE_MANIFEST);
        if !manifest_path.exists() {
            return Err(RegistryError::BundleIncomplete(dir.to_path_buf()));
        }
        let bytes = fs_err::read(&manifest_path)?;
        let manifest: BundleManifest =
            serde_json::from_slice(&bytes).map_err(|e| RegistryError::BundleInvalid {
                path: manifest_path.clone(),
                reason: e.to_string(),
            })?;
        if !(MIN_BUNDLE_FORMAT..=BUNDLE_FORMAT).contains(&manifest.format) {
            return Err(RegistryError::BundleInvalid {
                path: manifest_path,
                reason: format!(
                    "format {} is not supported (expected {MIN_BUNDLE_FORMAT} to {BUNDLE_FORMAT})",
                    manifest.format
                ),
            });
        }
        if !manifest.files.iter().any(|f| f.path == manifest.weights) {
            return Err(RegistryError::BundleInvalid {
                path: manifest_path,
                reason: format!(
                    "weights file `{}` is not listed in `files`",
                    manifest.weights
                ),
            });
        }
        for file in &manifest.files {
            let rel = safe_relative(&file.path).ok_or_else(|| RegistryError::BundleInvalid {
                path: manifest_path.clone(),
                reason: format!("file path `{}` leaves the bundle folder", file.path),
            })?;
            let path = dir.join(rel);
            let (sha256, size) = hash_file(&path)?;
            if size != file.size || sha256 != file.sha256 {
                return Err(RegistryError::ChecksumMismatch {
                    path,
                    expected: file.sha256.clone(),
                    actual: sha256,
                });
            }
        }
        Ok(Bundle {
            dir: dir.to_path_buf(),
            manifest,
        })
    }
}

/// `p` as a relative path made only of normal components, or `None`.
pub fn safe_relative(p: &str) -> Option<&Path> {
    let path = Path::new(p);
    (!p.is_empty() && path.components().all(|c| matches!(c, Component::Normal(_)))).then_some(path)
}

/// SHA-256 (lowercase hex) and size of a file, streamed.
pub fn hash_file(path: &Path) -> Result<(String, u64), RegistryError> {
    let mut file = fs_err::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    Ok((hex::encode(hasher.finalize()), size))
}

fn temp_name(dest: &Path) -> PathBuf {
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    dest.with_file_name(format!(".{name}.tmp-{}", std::process::id()))
}

fn copy_atomic_hashing(src: &Path, dest: &Path) -> Result<(String, u64), RegistryError> {
    let tmp = temp_name(dest);
    let result = (|| {
        let mut input = fs_err::File::open(src)?;
        let mut out = fs_err::File::create(&tmp)?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 1 << 16];
        let mut size = 0u64;
        loop {
            let n = input.read(&mut buf)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            out.write_all(&buf[..n])?;
            size += n as u64;
        }
        out.sync_all()?;
        drop(out);
        fs_err::rename(&tmp, dest)?;
        Ok::<_, std::io::Error>((hex::encode(hasher.finalize()), size))
    })();
    if result.is_err() {
        let _ = fs_err::remove_file(&tmp);
    }
    Ok(result?)
}

/// Write `bytes` to `dest` atomically (temporary file, fsync, rename).
pub fn write_atomic(dest: &Path, bytes: &[u8]) -> Result<(), RegistryError> {
    let tmp = temp_name(dest);
    let result = (|| {
        let mut out = fs_err::File::create(&tmp)?;
        out.write_all(bytes)?;
        out.sync_all()?;
        drop(out);
        fs_err::rename(&tmp, dest)
    })();
    if result.is_err() {
        let _ = fs_err::remove_file(&tmp);
    }
    Ok(result?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest() -> BundleManifest {
        BundleManifest {
            format: 0,
            project: "p".into(),
            task: Task::Classify,
            version: 1,
            model_name: "mobilenet_v3_small".into(),
            labels: vec!["ok".into(), "ng".into()],
            preprocessing: Preprocessing::for_task(Task::Classify, 224),
            thresholds: BTreeMap::new(),
            business_rules: BusinessRules::default(),
            weights: String::new(),
            files: Vec::new(),
            created_at: "2026-01-01T00:00:00Z".into(),
        }
    }

    #[test]
    fn write_then_open_verifies_and_detects_tampering() {
        let tmp = tempfile::tempdir().unwrap();
        let ckpt = tmp.path().join("best.safetensors");
        fs_err::write(&ckpt, b"weights-bytes").unwrap();
        let dir = tmp.path().join("bundle");
        let written = Bundle::write(&dir, &ckpt, manifest()).unwrap();
        assert_eq!(written.manifest.weights, "weights.safetensors");
        let expected = hex::encode(Sha256::digest(b"weights-bytes"));
        assert_eq!(written.manifest.files[0].sha256, expected);
        let opened = Bundle::open(&dir).unwrap();
        assert_eq!(opened.manifest, written.manifest);

        // Same size, different content: caught by the hash.
        fs_err::write(dir.join("weights.safetensors"), b"weights-bytez").unwrap();
        match Bundle::open(&dir) {
            Err(RegistryError::ChecksumMismatch { expected: e, .. }) => assert_eq!(e, expected),
            other => panic!("expected a checksum mismatch, got {other:?}"),
        }
        // A second write into the same folder is refused (bundles are immutable).
        assert!(matches!(
            Bundle::write(&dir, &ckpt, manifest()),
            Err(RegistryError::BundleExists(_))
        ));
    }

    #[test]
    fn folder_without_manifest_is_incomplete_and_paths_cannot_escape() {
        let tmp = tempfile::tempdir().unwrap();
        assert!(matches!(
            Bundle::open(tmp.path()),
            Err(RegistryError::BundleIncomplete(_))
        ));
        let mut m = manifest();
        m.format = BUNDLE_FORMAT;
        m.weights = "../secret".into();
        m.files = vec![BundleFile {
            path: "../secret".into(),
            sha256: String::new(),
            size: 0,
        }];
        fs_err::write(
            tmp.path().join(BUNDLE_MANIFEST),
            serde_json::to_vec(&m).unwrap(),
        )
        .unwrap();
        match Bundle::open(tmp.path()) {
            Err(RegistryError::BundleInvalid { reason, .. }) => {
                assert!(reason.contains("leaves the bundle folder"), "{reason}")
            }
            other => panic!("expected invalid bundle, got {other:?}"),
        }
        assert!(safe_relative("/etc/passwd").is_none());
        assert!(safe_relative("a/b.bin").is_some());
    }
}
