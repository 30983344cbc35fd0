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
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sightline_core::{BusinessRules, Task};
use sightline_store::{ArtifactStore, Key, StoreError};

use crate::error::RegistryError;
use crate::model::ModelVersion;

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
    /// The model's ONNX export, when the registration added one (servers run it on ONNX
    /// Runtime; bundles without it serve on Burn).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub onnx: Option<OnnxExport>,
    /// Creation time (RFC 3339, UTC).
    pub created_at: String,
}

/// Name of the ONNX file inside a bundle folder.
pub const BUNDLE_ONNX: &str = "model.onnx";

/// The ONNX export in a bundle and how it was checked at registration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OnnxExport {
    /// Path of the ONNX file within the bundle (listed in `files`).
    pub file: String,
    /// ONNX opset of the graph.
    pub opset: i64,
    /// Whether batch and image sides are symbolic (any letterbox shape runs).
    pub dynamic: bool,
    /// Largest absolute difference between ONNX Runtime's and the native (Burn) outputs, per
    /// output name, over the checked images.
    pub max_abs_diff: BTreeMap<String, f64>,
    /// The tolerance the differences were held to.
    pub tolerance: f64,
    /// How many images were checked, and from where (`dataset v3`, a file name, `synthetic`).
    pub checked_images: usize,
    /// Where the checked images came from.
    pub checked_on: String,
    /// ONNX Runtime version that ran the check.
    pub runtime: String,
}

/// A file written into a bundle beside the weights.
#[derive(Debug, Clone)]
pub struct ExtraFile {
    /// Path within the bundle (a plain name).
    pub path: String,
    /// Content.
    pub bytes: Vec<u8>,
}

impl ExtraFile {
    /// Its `files` entry (size and SHA-256 of the content), or why its name is refused: it must
    /// be a plain file name other than `bundle.json` and the weights file `weights_name`.
    fn entry(&self, weights_name: &str) -> Result<BundleFile, String> {
        if safe_relative(&self.path).is_none()
            || self.path.contains(['/', '\\'])
            || self.path == BUNDLE_MANIFEST
            || self.path == weights_name
        {
            return Err(format!(
                "extra bundle file name `{}` is not allowed",
                self.path
            ));
        }
        Ok(BundleFile {
            path: self.path.clone(),
            sha256: hex::encode(Sha256::digest(&self.bytes)),
            size: self.bytes.len() as u64,
        })
    }
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
        manifest: BundleManifest,
    ) -> Result<Bundle, RegistryError> {
        Self::write_with(dir, checkpoint, manifest, &[])
    }

    /// [`Bundle::write`] with more files beside the weights (e.g. `model.onnx`), each written
    /// atomically and listed with its checksum before `bundle.json` is written.
    pub fn write_with(
        dir: &Path,
        checkpoint: &Path,
        mut manifest: BundleManifest,
        extra: &[ExtraFile],
    ) -> Result<Bundle, RegistryError> {
        if dir.join(BUNDLE_MANIFEST).exists() {
            return Err(RegistryError::BundleExists(dir.to_path_buf()));
        }
        fs_err::create_dir_all(dir)?;
        let weights_name = weights_name(checkpoint);
        let (sha256, size) = copy_atomic_hashing(checkpoint, &dir.join(&weights_name))?;
        manifest.format = BUNDLE_FORMAT;
        manifest.weights = weights_name.clone();
        manifest.files = vec![BundleFile {
            path: weights_name.clone(),
            sha256,
            size,
        }];
        for file in extra {
            let entry =
                file.entry(&weights_name)
                    .map_err(|reason| RegistryError::BundleInvalid {
                        path: dir.join(BUNDLE_MANIFEST),
                        reason,
                    })?;
            write_atomic(&dir.join(&file.path), &file.bytes)?;
            manifest.files.push(entry);
        }
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
        let manifest = parse_manifest(&bytes, &manifest_path)?;
        for file in &manifest.files {
            // `parse_manifest` checked every path.
            let rel = safe_relative(&file.path).unwrap_or(Path::new(BUNDLE_MANIFEST));
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

/// Parse and check a `bundle.json` (`manifest_path` names it in errors): a supported format, the
/// weights listed among the files, every file path inside the bundle folder.
pub fn parse_manifest(bytes: &[u8], manifest_path: &Path) -> Result<BundleManifest, RegistryError> {
    let invalid = |reason: String| RegistryError::BundleInvalid {
        path: manifest_path.to_path_buf(),
        reason,
    };
    let manifest: BundleManifest =
        serde_json::from_slice(bytes).map_err(|e| invalid(e.to_string()))?;
    if !(MIN_BUNDLE_FORMAT..=BUNDLE_FORMAT).contains(&manifest.format) {
        return Err(invalid(format!(
            "format {} is not supported (expected {MIN_BUNDLE_FORMAT} to {BUNDLE_FORMAT})",
            manifest.format
        )));
    }
    if !manifest.files.iter().any(|f| f.path == manifest.weights) {
        return Err(invalid(format!(
            "weights file `{}` is not listed in `files`",
            manifest.weights
        )));
    }
    if let Some(onnx) = &manifest.onnx
        && !manifest.files.iter().any(|f| f.path == onnx.file)
    {
        return Err(invalid(format!(
            "ONNX file `{}` is not listed in `files`",
            onnx.file
        )));
    }
    for file in &manifest.files {
        if safe_relative(&file.path).is_none() || file.path.contains('\\') {
            return Err(invalid(format!(
                "file path `{}` leaves the bundle folder",
                file.path
            )));
        }
        if file.path == BUNDLE_MANIFEST {
            return Err(invalid("`files` lists bundle.json itself".into()));
        }
    }
    Ok(manifest)
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

/// Where deployment bundles live: the configured artifact store, plus a local cache folder that
/// holds verified copies of bundles fetched from a remote (S3) store.
///
/// - Local store: bundles are written in place under `<root>/registry/…` and opened in place,
///   as always.
/// - Remote store: [`BundleStore::write`] uploads the weights, then `bundle.json` (last, so a
///   bundle without a manifest is an interrupted write). [`BundleStore::open`] downloads
///   `bundle.json` and every file it lists into a staging folder next to
///   `<cache>/registry/<project>/<task>/v<version>/`, checks each file's size and SHA-256, and
///   only then renames the staging folder into place; a corrupt or partial download is an error
///   naming the object and never reaches a model loader. A cached copy that still verifies is
///   reused without contacting the store (model versions are immutable).
#[derive(Debug, Clone)]
pub struct BundleStore {
    store: ArtifactStore,
    cache: PathBuf,
    /// Open through the cache even when the store is a local folder.
    fetch_local: bool,
}

impl BundleStore {
    /// Bundles in a local artifact folder, opened in place.
    pub fn local(root: impl Into<PathBuf>) -> Self {
        let root = root.into();
        Self {
            store: ArtifactStore::local(root.clone()),
            cache: root,
            fetch_local: false,
        }
    }

    /// Bundles in `store`; copies fetched from a remote store are cached under `cache`
    /// (unused for a local store, whose bundles open in place).
    pub fn new(store: ArtifactStore, cache: impl Into<PathBuf>) -> Self {
        Self {
            store,
            cache: cache.into(),
            fetch_local: false,
        }
    }

    /// Like [`BundleStore::new`], but bundles are always copied into `cache` and verified
    /// there, even from a local folder (one on a network mount that may change or vanish).
    pub fn fetching(store: ArtifactStore, cache: impl Into<PathBuf>) -> Self {
        Self {
            store,
            cache: cache.into(),
            fetch_local: true,
        }
    }

    /// The folder a bundle is opened in place from, when it is not fetched into the cache.
    fn in_place(&self, key: &Key) -> Option<PathBuf> {
        if self.fetch_local {
            None
        } else {
            self.store.local_path(key)
        }
    }

    /// The artifact store.
    pub fn store(&self) -> &ArtifactStore {
        &self.store
    }

    /// The cache folder for fetched bundles.
    pub fn cache(&self) -> &Path {
        &self.cache
    }

    fn key(rel_dir: &str) -> Result<Key, RegistryError> {
        if safe_relative(rel_dir).is_none() {
            return Err(RegistryError::Invalid(format!(
                "bundle path `{rel_dir}` is not inside the artifact store"
            )));
        }
        Key::new(rel_dir).map_err(|e| RegistryError::Invalid(e.to_string()))
    }

    fn store_err(&self, source: StoreError) -> RegistryError {
        RegistryError::Store {
            store: self.store.describe(),
            source,
        }
    }

    /// Where `key` lives, for messages: a path for a local store, `s3://…/key` otherwise.
    fn location(&self, key: &Key) -> PathBuf {
        self.store
            .local_path(key)
            .unwrap_or_else(|| PathBuf::from(format!("{}/{key}", self.store.describe())))
    }

    /// The local folder a bundle opens from: in place for a local store, the cache otherwise.
    pub fn local_dir(&self, rel_dir: &str) -> Result<PathBuf, RegistryError> {
        let key = Self::key(rel_dir)?;
        Ok(match self.in_place(&key) {
            Some(p) => p,
            None => key.segments().fold(self.cache.clone(), |p, s| p.join(s)),
        })
    }

    /// Whether anything is stored under the bundle folder `rel_dir`.
    pub async fn exists(&self, rel_dir: &str) -> Result<bool, RegistryError> {
        let key = Self::key(rel_dir)?;
        if let Some(dir) = self.store.local_path(&key) {
            return Ok(dir.exists());
        }
        let found = self
            .store
            .list(key.as_str())
            .await
            .map_err(|e| self.store_err(e))?;
        Ok(!found.is_empty())
    }

    /// Move whatever is stored under `rel_dir` to `<rel_dir>.orphan-<suffix>` (a folder left
    /// by an interrupted registration: kept for inspection, neither trusted nor deleted).
    pub async fn set_aside(&self, rel_dir: &str, suffix: &str) -> Result<(), RegistryError> {
        let key = Self::key(rel_dir)?;
        let aside = Self::key(&format!("{rel_dir}.orphan-{suffix}"))?;
        if let (Some(from), Some(to)) = (self.store.local_path(&key), self.store.local_path(&aside))
        {
            if from.exists() {
                fs_err::rename(&from, &to)?;
            }
            return Ok(());
        }
        let objects = self
            .store
            .list(key.as_str())
            .await
            .map_err(|e| self.store_err(e))?;
        for o in objects {
            let Some(rest) = o.key.as_str().strip_prefix(key.as_str()) else {
                continue;
            };
            let target = Key::new(format!("{aside}{rest}"))
                .map_err(|e| RegistryError::Invalid(e.to_string()))?;
            let bytes = self
                .store
                .get(&o.key)
                .await
                .map_err(|e| self.store_err(e))?;
            self.store
                .put(&target, &bytes)
                .await
                .map_err(|e| self.store_err(e))?;
            self.store
                .delete(&o.key)
                .await
                .map_err(|e| self.store_err(e))?;
        }
        Ok(())
    }

    /// Remove everything stored under `rel_dir` (a bundle whose registration failed).
    pub async fn remove(&self, rel_dir: &str) -> Result<(), RegistryError> {
        let key = Self::key(rel_dir)?;
        if let Some(dir) = self.store.local_path(&key) {
            if dir.exists() {
                fs_err::remove_dir_all(&dir)?;
            }
            return Ok(());
        }
        for o in self
            .store
            .list(key.as_str())
            .await
            .map_err(|e| self.store_err(e))?
        {
            match self.store.delete(&o.key).await {
                Ok(()) | Err(StoreError::NotFound(_)) => {}
                Err(e) => return Err(self.store_err(e)),
            }
        }
        Ok(())
    }

    /// Write a bundle into the store under `rel_dir` (which must not hold a `bundle.json`):
    /// the checkpoint as `weights.<ext>` (hashed while written), then `bundle.json`.
    /// `manifest.files`, `manifest.weights` and `manifest.format` are filled in here; the
    /// finished manifest is returned.
    pub async fn write(
        &self,
        rel_dir: &str,
        checkpoint: &Path,
        manifest: BundleManifest,
    ) -> Result<BundleManifest, RegistryError> {
        self.write_with(rel_dir, checkpoint, manifest, &[]).await
    }

    /// [`BundleStore::write`] with more files beside the weights (e.g. `model.onnx`), each
    /// stored and listed with its checksum before `bundle.json`.
    pub async fn write_with(
        &self,
        rel_dir: &str,
        checkpoint: &Path,
        mut manifest: BundleManifest,
        extra: &[ExtraFile],
    ) -> Result<BundleManifest, RegistryError> {
        let key = Self::key(rel_dir)?;
        let manifest_key = key
            .join(BUNDLE_MANIFEST)
            .map_err(|e| RegistryError::Invalid(e.to_string()))?;
        if self
            .store
            .exists(&manifest_key)
            .await
            .map_err(|e| self.store_err(e))?
        {
            return Err(RegistryError::BundleExists(self.location(&key)));
        }
        let weights_name = weights_name(checkpoint);
        let weights_key = key
            .join(&weights_name)
            .map_err(|e| RegistryError::Invalid(e.to_string()))?;
        let info = self
            .store
            .put_file(&weights_key, checkpoint)
            .await
            .map_err(|e| self.store_err(e))?;
        manifest.format = BUNDLE_FORMAT;
        manifest.weights = weights_name.clone();
        manifest.files = vec![BundleFile {
            path: weights_name.clone(),
            sha256: info.sha256,
            size: info.size,
        }];
        for file in extra {
            let entry = file.entry(&weights_name).map_err(RegistryError::Invalid)?;
            let file_key = key
                .join(&file.path)
                .map_err(|e| RegistryError::Invalid(e.to_string()))?;
            self.store
                .put(&file_key, &file.bytes)
                .await
                .map_err(|e| self.store_err(e))?;
            manifest.files.push(entry);
        }
        let json = serde_json::to_vec_pretty(&manifest)?;
        self.store
            .put(&manifest_key, &json)
            .await
            .map_err(|e| self.store_err(e))?;
        Ok(manifest)
    }

    /// Open the bundle under `rel_dir` for serving, every file verified against `bundle.json`:
    /// in place for a local store; for a remote store the cached copy when it still verifies,
    /// else a fresh download (see the type's documentation).
    pub async fn open(&self, rel_dir: &str) -> Result<Bundle, RegistryError> {
        self.open_checked(rel_dir, None).await
    }

    /// [`BundleStore::open`] for a registered model version, also checking that the bundle is
    /// that version: same project, task and version, and weights whose SHA-256 is the
    /// registered checkpoint hash (a cached copy that is not is fetched again).
    pub async fn open_version(&self, model: &ModelVersion) -> Result<Bundle, RegistryError> {
        self.open_checked(&model.bundle_dir, Some(model)).await
    }

    async fn open_checked(
        &self,
        rel_dir: &str,
        model: Option<&ModelVersion>,
    ) -> Result<Bundle, RegistryError> {
        let key = Self::key(rel_dir)?;
        let dir = self.local_dir(rel_dir)?;
        let check = |b: Bundle| match model {
            Some(m) => check_version(b, m),
            None => Ok(b),
        };
        if self.in_place(&key).is_some() {
            return check(blocking(move || Bundle::open(&dir)).await?);
        }
        if dir.join(BUNDLE_MANIFEST).is_file() {
            let cached = dir.clone();
            match blocking(move || Bundle::open(&cached))
                .await
                .and_then(check)
            {
                Ok(b) => return Ok(b),
                Err(e) => {
                    tracing::warn!(dir = %dir.display(), error = %e, "cached bundle is not usable; fetching it again");
                }
            }
        }
        check(self.fetch(&key, &dir).await?)
    }

    /// Open the bundle under `rel_dir` from local disk only: in place for a local store, the
    /// cached copy for a remote one ([`RegistryError::BundleIncomplete`] when not fetched yet).
    pub fn open_local(&self, rel_dir: &str) -> Result<Bundle, RegistryError> {
        Bundle::open(&self.local_dir(rel_dir)?)
    }

    async fn fetch(&self, key: &Key, dir: &Path) -> Result<Bundle, RegistryError> {
        let manifest_key = key
            .join(BUNDLE_MANIFEST)
            .map_err(|e| RegistryError::Invalid(e.to_string()))?;
        let bytes = match self.store.get(&manifest_key).await {
            Ok(b) => b,
            Err(StoreError::NotFound(_)) => {
                return Err(RegistryError::BundleIncomplete(self.location(key)));
            }
            Err(e) => return Err(self.store_err(e)),
        };
        let manifest = parse_manifest(&bytes, &self.location(&manifest_key))?;
        let staging = staging_dir(dir)?;
        let result = self.download(key, &manifest, &bytes, &staging, dir).await;
        if result.is_err() {
            let _ = fs_err::remove_dir_all(&staging);
        }
        result?;
        Ok(Bundle {
            dir: dir.to_path_buf(),
            manifest,
        })
    }

    /// Download every file of `manifest` into `staging`, verify, write `bundle.json` last, then
    /// move `staging` to `dir` (replacing a copy that no longer verified).
    async fn download(
        &self,
        key: &Key,
        manifest: &BundleManifest,
        manifest_bytes: &[u8],
        staging: &Path,
        dir: &Path,
    ) -> Result<(), RegistryError> {
        for file in &manifest.files {
            let file_key = key
                .join(&file.path)
                .map_err(|e| RegistryError::Invalid(e.to_string()))?;
            let dest = file_key
                .as_str()
                .strip_prefix(key.as_str())
                .unwrap_or_default()
                .split('/')
                .filter(|s| !s.is_empty())
                .fold(staging.to_path_buf(), |p, s| p.join(s));
            let info = match self.store.get_to_file(&file_key, &dest).await {
                Ok(i) => i,
                Err(StoreError::NotFound(_)) => {
                    return Err(RegistryError::BundleFileMissing(
                        self.location(&file_key).display().to_string(),
                    ));
                }
                Err(e) => return Err(self.store_err(e)),
            };
            if info.size != file.size || info.sha256 != file.sha256 {
                return Err(RegistryError::ChecksumMismatch {
                    path: self.location(&file_key),
                    expected: file.sha256.clone(),
                    actual: format!(
                        "{} ({} bytes, expected {})",
                        info.sha256, info.size, file.size
                    ),
                });
            }
        }
        write_atomic(&staging.join(BUNDLE_MANIFEST), manifest_bytes)?;
        if dir.exists() {
            fs_err::remove_dir_all(dir)?;
        }
        if let Err(e) = fs_err::rename(staging, dir) {
            // Another process may have put a verified copy there first.
            if dir.join(BUNDLE_MANIFEST).is_file() {
                let _ = fs_err::remove_dir_all(staging);
                let d = dir.to_path_buf();
                blocking(move || Bundle::open(&d)).await?;
                return Ok(());
            }
            return Err(e.into());
        }
        Ok(())
    }
}

/// `bundle` if it is `model`'s: project, task, version and weights hash as registered.
pub fn check_version(bundle: Bundle, model: &ModelVersion) -> Result<Bundle, RegistryError> {
    let m = &bundle.manifest;
    let weights_sha = m
        .files
        .iter()
        .find(|f| f.path == m.weights)
        .map(|f| f.sha256.as_str())
        .unwrap_or_default();
    let reason = if m.project != model.project || m.task != model.task || m.version != model.version
    {
        format!(
            "it holds {}/{} v{}, not {}",
            m.project,
            m.task,
            m.version,
            model.display_name()
        )
    } else if !model.checkpoint_sha256.is_empty() && weights_sha != model.checkpoint_sha256 {
        format!(
            "its weights have sha256 {weights_sha}, the registry recorded {} for {}",
            model.checkpoint_sha256,
            model.display_name()
        )
    } else {
        return Ok(bundle);
    };
    Err(RegistryError::BundleInvalid {
        path: bundle.dir.join(BUNDLE_MANIFEST),
        reason,
    })
}

/// `weights.<ext>`, the checkpoint's extension kept when it is plain alphanumeric, else `bin`.
fn weights_name(checkpoint: &Path) -> String {
    let ext = checkpoint
        .extension()
        .and_then(|e| e.to_str())
        .filter(|e| e.chars().all(|c| c.is_ascii_alphanumeric()) && !e.is_empty())
        .unwrap_or("bin");
    format!("weights.{ext}")
}

/// A fresh, empty staging folder next to `dir` (`.v<N>.partial-<pid>-<n>`).
fn staging_dir(dir: &Path) -> Result<PathBuf, RegistryError> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let staging = dir.with_file_name(format!(
        ".{name}.partial-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    if staging.exists() {
        fs_err::remove_dir_all(&staging)?;
    }
    fs_err::create_dir_all(&staging)?;
    Ok(staging)
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, RegistryError> + Send + 'static,
) -> Result<T, RegistryError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| RegistryError::Invalid(format!("bundle task failed: {e}")))?
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
            onnx: None,
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
    fn write_with_lists_the_onnx_file_and_parse_manifest_reads_it_back() {
        let tmp = tempfile::tempdir().unwrap();
        let ckpt = tmp.path().join("best.pt");
        fs_err::write(&ckpt, b"weights-bytes").unwrap();
        let dir = tmp.path().join("bundle");
        let mut m = manifest();
        m.onnx = Some(OnnxExport {
            file: BUNDLE_ONNX.into(),
            opset: 17,
            dynamic: true,
            max_abs_diff: BTreeMap::from([("logits".to_string(), 8.9e-7)]),
            tolerance: 1e-4,
            checked_images: 1,
            checked_on: "synthetic 320x200".into(),
            runtime: "1.32.0".into(),
        });
        let onnx = ExtraFile {
            path: BUNDLE_ONNX.into(),
            bytes: b"onnx-bytes".to_vec(),
        };
        let written =
            Bundle::write_with(&dir, &ckpt, m.clone(), std::slice::from_ref(&onnx)).unwrap();
        let listed = written
            .manifest
            .files
            .iter()
            .find(|f| f.path == BUNDLE_ONNX)
            .expect("model.onnx listed");
        assert_eq!(listed.sha256, hex::encode(Sha256::digest(b"onnx-bytes")));
        assert_eq!(listed.size, 10);
        let path = dir.join(BUNDLE_MANIFEST);
        let parsed = parse_manifest(&fs_err::read(&path).unwrap(), &path).unwrap();
        assert_eq!(parsed.onnx, m.onnx);
        assert_eq!(parsed, written.manifest);
        assert_eq!(Bundle::open(&dir).unwrap().manifest, written.manifest);

        // An onnx entry whose file is not listed is refused.
        let mut bad = written.manifest.clone();
        bad.files.retain(|f| f.path != BUNDLE_ONNX);
        match parse_manifest(&serde_json::to_vec(&bad).unwrap(), &path) {
            Err(RegistryError::BundleInvalid { reason, .. }) => {
                assert!(reason.contains("model.onnx"), "{reason}")
            }
            other => panic!("expected invalid bundle, got {other:?}"),
        }
        // Extra files cannot shadow the weights or the manifest, nor leave the folder.
        for name in ["weights.pt", BUNDLE_MANIFEST, "../x.onnx", "a/b.onnx"] {
            let extra = ExtraFile {
                path: name.into(),
                bytes: Vec::new(),
            };
            let other = tmp.path().join(format!("other-{}", name.len()));
            assert!(
                Bundle::write_with(&other, &ckpt, manifest(), &[extra]).is_err(),
                "{name} accepted"
            );
        }
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
