//! Local-folder store with atomic writes (temp file, fsync, rename, fsync folder).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::Digest;

use crate::key::TEMP_PREFIX;
use crate::{Key, ObjectInfo, PutInfo, StoreError};

/// An artifact store in a local folder.
#[derive(Debug, Clone)]
pub struct LocalStore {
    root: PathBuf,
}

impl LocalStore {
    /// A store rooted at `root`; the folder is created on first write.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The root folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The file of a key.
    pub fn path_of(&self, key: &Key) -> PathBuf {
        let mut p = self.root.clone();
        for s in key.segments() {
            p.push(s);
        }
        p
    }

    /// Write everything `reader` yields under `key`, atomically (blocking).
    pub fn put_reader(&self, key: &Key, reader: &mut dyn Read) -> Result<PutInfo, StoreError> {
        let (sha256, size) = atomic_write(&self.path_of(key), reader)?;
        Ok(PutInfo {
            key: key.clone(),
            sha256,
            size,
        })
    }

    /// Read an object (blocking).
    pub fn get(&self, key: &Key) -> Result<Vec<u8>, StoreError> {
        let path = self.path_of(key);
        match fs_err::read(&path) {
            Ok(b) => Ok(b),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(StoreError::NotFound(key.clone()))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Whether an object exists (blocking).
    pub fn exists(&self, key: &Key) -> bool {
        self.path_of(key).is_file()
    }

    /// Delete an object (blocking).
    pub fn delete(&self, key: &Key) -> Result<(), StoreError> {
        let path = self.path_of(key);
        match fs_err::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(StoreError::NotFound(key.clone()))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Every object under the folder `prefix` (blocking). In-flight temporary files are skipped.
    pub fn list(&self, prefix: Option<&Key>) -> Result<Vec<ObjectInfo>, StoreError> {
        let start = match prefix {
            Some(k) => self.path_of(k),
            None => self.root.clone(),
        };
        let mut out = Vec::new();
        if start.is_file() {
            if let Some(k) = prefix {
                out.push(ObjectInfo {
                    key: k.clone(),
                    size: fs_err::metadata(&start)?.len(),
                });
            }
            return Ok(out);
        }
        if !start.is_dir() {
            return Ok(out);
        }
        let mut stack = vec![start];
        while let Some(dir) = stack.pop() {
            for entry in fs_err::read_dir(&dir)? {
                let entry = entry?;
                let name = entry.file_name();
                let Some(name) = name.to_str() else { continue };
                if name.starts_with(TEMP_PREFIX) {
                    continue;
                }
                let ft = entry.file_type()?;
                let path = entry.path();
                if ft.is_dir() {
                    stack.push(path);
                } else if ft.is_file() {
                    let Ok(rel) = path.strip_prefix(&self.root) else {
                        continue;
                    };
                    let rel: Vec<&str> = rel
                        .components()
                        .filter_map(|c| c.as_os_str().to_str())
                        .collect();
                    if let Ok(key) = Key::new(rel.join("/")) {
                        out.push(ObjectInfo {
                            key,
                            size: entry.metadata()?.len(),
                        });
                    }
                }
            }
        }
        Ok(out)
    }
}

/// Write `reader` to `dest` atomically: a temporary file in the same folder is written and
/// `fsync`ed, renamed over `dest`, then the folder is `fsync`ed. On error the temporary file is
/// removed; after a crash it may remain (named `.sightline-tmp-*`), never a partial `dest`.
/// Returns the SHA-256 (hex) and size of what was written.
pub fn atomic_write(dest: &Path, reader: &mut dyn Read) -> std::io::Result<(String, u64)> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let dir = match dest.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    fs_err::create_dir_all(&dir)?;
    let file_name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(
        "{TEMP_PREFIX}{}-{}-{file_name}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let result = (|| {
        let mut file = fs_err::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)?;
        let mut hasher = sha2::Sha256::new();
        let mut buf = vec![0u8; 1 << 20];
        let mut size = 0u64;
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            hasher.update(&buf[..n]);
            file.write_all(&buf[..n])?;
            size += n as u64;
        }
        file.sync_all()?;
        drop(file);
        fs_err::rename(&tmp, dest)?;
        sync_dir(&dir)?;
        Ok((hex::encode(hasher.finalize()), size))
    })();
    if result.is_err() {
        let _ = fs_err::remove_file(&tmp);
    }
    result
}

#[cfg(unix)]
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    fs_err::File::open(dir)?.sync_all()
}

#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> std::io::Result<()> {
    // Directories cannot be opened for syncing on this platform; the rename is still atomic.
    Ok(())
}
