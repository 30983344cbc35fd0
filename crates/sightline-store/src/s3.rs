//! S3-compatible store through the `object_store` crate. Credentials come from the usual
//! `AWS_*` environment variables; objects are written with one PUT (or a multipart upload for
//! files), so a reader never sees a partial object.

use std::path::Path;
use std::sync::Arc;

use futures_util::TryStreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use sha2::Digest;
use sightline_core::S3Settings;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::{Key, ObjectInfo, PutInfo, StoreError};

/// An artifact store in an S3-compatible bucket.
#[derive(Debug, Clone)]
pub struct S3Store {
    store: Arc<dyn ObjectStore>,
    bucket: String,
    prefix: String,
}

impl S3Store {
    /// Build a client from settings (no request is made until the first operation).
    pub fn new(settings: &S3Settings) -> Result<Self, StoreError> {
        // reqwest is built without a default TLS provider: use ring (no C toolchain needed).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut builder = AmazonS3Builder::from_env()
            .with_bucket_name(&settings.bucket)
            .with_allow_http(settings.allow_http);
        if let Some(endpoint) = &settings.endpoint {
            builder = builder.with_endpoint(endpoint);
        }
        if let Some(region) = &settings.region {
            builder = builder.with_region(region);
        }
        let store = builder.build().map_err(StoreError::Config)?;
        Ok(Self {
            store: Arc::new(store),
            bucket: settings.bucket.clone(),
            prefix: settings.prefix.trim_matches('/').to_string(),
        })
    }

    /// `s3://bucket/prefix`.
    pub fn describe(&self) -> String {
        if self.prefix.is_empty() {
            format!("s3://{}", self.bucket)
        } else {
            format!("s3://{}/{}", self.bucket, self.prefix)
        }
    }

    fn path(&self, key: &Key) -> ObjectPath {
        if self.prefix.is_empty() {
            ObjectPath::from(key.as_str())
        } else {
            ObjectPath::from(format!("{}/{}", self.prefix, key))
        }
    }

    fn key_of(&self, path: &ObjectPath) -> Option<Key> {
        let s = path.as_ref();
        let rel = if self.prefix.is_empty() {
            s
        } else {
            s.strip_prefix(&self.prefix)?.strip_prefix('/')?
        };
        Key::new(rel).ok()
    }

    pub(crate) async fn put(&self, key: &Key, bytes: &[u8]) -> Result<PutInfo, StoreError> {
        let sha256 = hex::encode(sha2::Sha256::digest(bytes));
        self.store
            .put(&self.path(key), PutPayload::from(bytes.to_vec()))
            .await?;
        Ok(PutInfo {
            key: key.clone(),
            sha256,
            size: bytes.len() as u64,
        })
    }

    pub(crate) async fn put_file(&self, key: &Key, source: &Path) -> Result<PutInfo, StoreError> {
        let mut file = tokio::fs::File::open(source)
            .await
            .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", source.display())))?;
        let mut writer = object_store::buffered::BufWriter::new(self.store.clone(), self.path(key));
        let mut hasher = sha2::Sha256::new();
        let mut buf = vec![0u8; 1 << 20];
        let mut size = 0u64;
        loop {
            let n = file.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            if let Err(e) = writer.write_all(&buf[..n]).await {
                let _ = writer.abort().await;
                return Err(e.into());
            }
            size += n as u64;
        }
        writer.shutdown().await?;
        Ok(PutInfo {
            key: key.clone(),
            sha256: hex::encode(hasher.finalize()),
            size,
        })
    }

    pub(crate) async fn get(&self, key: &Key) -> Result<Vec<u8>, StoreError> {
        match self.store.get(&self.path(key)).await {
            Ok(r) => Ok(r.bytes().await?.to_vec()),
            Err(object_store::Error::NotFound { .. }) => Err(StoreError::NotFound(key.clone())),
            Err(e) => Err(e.into()),
        }
    }

    pub(crate) async fn exists(&self, key: &Key) -> Result<bool, StoreError> {
        match self.store.head(&self.path(key)).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    pub(crate) async fn list(&self, prefix: Option<&Key>) -> Result<Vec<ObjectInfo>, StoreError> {
        let path = match (prefix, self.prefix.is_empty()) {
            (Some(k), _) => Some(self.path(k)),
            (None, false) => Some(ObjectPath::from(self.prefix.as_str())),
            (None, true) => None,
        };
        let metas: Vec<_> = self.store.list(path.as_ref()).try_collect().await?;
        Ok(metas
            .into_iter()
            .filter_map(|m| {
                self.key_of(&m.location)
                    .map(|key| ObjectInfo { key, size: m.size })
            })
            .collect())
    }

    pub(crate) async fn delete(&self, key: &Key) -> Result<(), StoreError> {
        if !self.exists(key).await? {
            return Err(StoreError::NotFound(key.clone()));
        }
        self.store.delete(&self.path(key)).await?;
        Ok(())
    }
}
