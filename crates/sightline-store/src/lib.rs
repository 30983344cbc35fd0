//! Artifact store: local folder or S3-compatible object storage, atomic writes and content hashes,
//! laid out as the seed's `artifacts/` tree (`experiments/<timestamp>/…`, `reports/…`).
//!
//! ```no_run
//! # async fn demo() -> Result<(), sightline_store::StoreError> {
//! use sightline_store::{ArtifactStore, Key};
//! let store = ArtifactStore::local("artifacts");
//! let key = Key::new("experiments/20260101-120000/metrics.json")?;
//! let info = store.put(&key, b"{}").await?; // atomic; info.sha256 is the content hash
//! let bytes = store.get(&key).await?;
//! # Ok(()) }
//! ```
//!
//! Local writes go to a temporary file in the destination folder, are flushed with `fsync`, then
//! renamed over the final name, and the folder is synced: a reader (or a crash) never sees a
//! partial file under the final name. S3 objects are atomic by the protocol (single PUT, or a
//! multipart upload that appears only when completed).

mod key;
pub mod layout;
mod local;
mod s3;

use std::io::Read;
use std::path::{Path, PathBuf};

pub use key::{Key, KeyError};
pub use local::LocalStore;
pub use s3::S3Store;
use sightline_core::ArtifactSettings;

/// What a write stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutInfo {
    /// Where.
    pub key: Key,
    /// SHA-256 of the content, lowercase hex.
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
}

/// One stored object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    /// Its key.
    pub key: Key,
    /// Size in bytes.
    pub size: u64,
}

/// Store errors.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// An invalid key.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// No object under that key.
    #[error("artifact `{0}` not found")]
    NotFound(Key),
    /// A local file-system error (the message names the path).
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// An object-store (S3) error.
    #[error("object store error: {0}")]
    ObjectStore(#[from] object_store::Error),
    /// The S3 configuration is invalid.
    #[error("invalid S3 configuration: {0}")]
    Config(#[source] object_store::Error),
    /// A background task failed (panicked or was cancelled).
    #[error("background task failed: {0}")]
    Task(#[source] tokio::task::JoinError),
}

/// An artifact store: a local folder or an S3-compatible bucket.
#[derive(Debug, Clone)]
pub enum ArtifactStore {
    /// Local folder.
    Local(LocalStore),
    /// S3-compatible bucket.
    S3(S3Store),
}

impl ArtifactStore {
    /// A local store rooted at `root` (created on first write).
    pub fn local(root: impl Into<PathBuf>) -> Self {
        ArtifactStore::Local(LocalStore::new(root))
    }

    /// The store described by resolved settings.
    pub fn from_settings(settings: &ArtifactSettings) -> Result<Self, StoreError> {
        Ok(match settings {
            ArtifactSettings::Local { root } => Self::local(root.clone()),
            ArtifactSettings::S3(s3) => ArtifactStore::S3(S3Store::new(s3)?),
        })
    }

    /// Human description: the folder or `s3://bucket/prefix`.
    pub fn describe(&self) -> String {
        match self {
            ArtifactStore::Local(l) => l.root().display().to_string(),
            ArtifactStore::S3(s) => s.describe(),
        }
    }

    /// The local path of a key, for a local store (training writes checkpoints next to it).
    pub fn local_path(&self, key: &Key) -> Option<PathBuf> {
        match self {
            ArtifactStore::Local(l) => Some(l.path_of(key)),
            ArtifactStore::S3(_) => None,
        }
    }

    /// Store `bytes` under `key` atomically, replacing any previous object.
    pub async fn put(&self, key: &Key, bytes: &[u8]) -> Result<PutInfo, StoreError> {
        match self {
            ArtifactStore::Local(l) => {
                let l = l.clone();
                let key = key.clone();
                let bytes = bytes.to_vec();
                blocking(move || l.put_reader(&key, &mut bytes.as_slice())).await
            }
            ArtifactStore::S3(s) => s.put(key, bytes).await,
        }
    }

    /// Store the content of a local file under `key` atomically (streamed: files may be large).
    pub async fn put_file(&self, key: &Key, source: &Path) -> Result<PutInfo, StoreError> {
        match self {
            ArtifactStore::Local(l) => {
                let l = l.clone();
                let key = key.clone();
                let source = source.to_path_buf();
                blocking(move || {
                    let mut f = fs_err::File::open(&source)?;
                    l.put_reader(&key, &mut f)
                })
                .await
            }
            ArtifactStore::S3(s) => s.put_file(key, source).await,
        }
    }

    /// The content under `key`.
    pub async fn get(&self, key: &Key) -> Result<Vec<u8>, StoreError> {
        match self {
            ArtifactStore::Local(l) => {
                let l = l.clone();
                let key = key.clone();
                blocking(move || l.get(&key)).await
            }
            ArtifactStore::S3(s) => s.get(key).await,
        }
    }

    /// Copy the object under `key` to a local file, atomically; returns its hash and size.
    pub async fn get_to_file(&self, key: &Key, dest: &Path) -> Result<PutInfo, StoreError> {
        let bytes = self.get(key).await?;
        let dest = dest.to_path_buf();
        let key = key.clone();
        blocking(move || {
            let (sha256, size) = local::atomic_write(&dest, &mut bytes.as_slice())?;
            Ok(PutInfo { key, sha256, size })
        })
        .await
    }

    /// Whether an object exists under `key`.
    pub async fn exists(&self, key: &Key) -> Result<bool, StoreError> {
        match self {
            ArtifactStore::Local(l) => {
                let l = l.clone();
                let key = key.clone();
                blocking(move || Ok(l.exists(&key))).await
            }
            ArtifactStore::S3(s) => s.exists(key).await,
        }
    }

    /// Every object whose key starts with the folder `prefix` (`""` for all), sorted by key.
    pub async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StoreError> {
        let prefix = if prefix.is_empty() {
            None
        } else {
            Some(Key::new(prefix.trim_end_matches('/'))?)
        };
        let mut out = match self {
            ArtifactStore::Local(l) => {
                let l = l.clone();
                blocking(move || l.list(prefix.as_ref())).await?
            }
            ArtifactStore::S3(s) => s.list(prefix.as_ref()).await?,
        };
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    /// Delete the object under `key`; [`StoreError::NotFound`] if there is none.
    pub async fn delete(&self, key: &Key) -> Result<(), StoreError> {
        match self {
            ArtifactStore::Local(l) => {
                let l = l.clone();
                let key = key.clone();
                blocking(move || l.delete(&key)).await
            }
            ArtifactStore::S3(s) => s.delete(key).await,
        }
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(StoreError::Task)?
}

/// SHA-256 of everything `reader` yields, with its length, streaming in 1 MiB chunks.
pub fn sha256_reader(reader: &mut dyn Read) -> std::io::Result<(String, u64)> {
    use sha2::Digest;
    let mut hasher = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    Ok((hex::encode(hasher.finalize()), size))
}

/// SHA-256 of a file, lowercase hex.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut f = fs_err::File::open(path)?;
    Ok(sha256_reader(&mut f)?.0)
}
