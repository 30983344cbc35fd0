//! DVC 3 compatible content-addressed object store.
//!
//! Layout (same for a DVC 3 cache and a DVC 3 remote): every file is stored once at
//! `files/md5/<2 hex>/<30 hex>`; a directory is a `.dir` object whose content is the JSON list
//! `[{"md5": …, "relpath": …}, …]` sorted by relpath and serialised like Python's
//! `json.dumps(sort_keys=True)` (`", "` / `": "` separators, non-ASCII escaped), whose md5
//! plus the suffix `.dir` is the directory's id. A new small object is created in place
//! (`O_CREAT|O_EXCL`, no rename); copies of large files and replacements of an object of the
//! wrong size go through a temporary file renamed into place.
//!
//! Adding files ([`ObjectStore::add_files`]) runs in parallel (rayon) and reads each new file
//! once: a small file is read into memory, hashed and written as its object from that buffer;
//! a large one is hashed in 1 MiB blocks and then copied with `std::fs::copy` (in-kernel
//! `copy_file_range`, a reflink on copy-on-write file systems). Unchanged files are skipped
//! through a `(path, size, mtime)` cache kept next to the objects. Like DVC and git, objects are
//! not fsynced one by one (that cost ≈ 4 ms per file here, most of a cold version): an object
//! whose size does not match after a power loss is rewritten by the next add, and the
//! version record that makes a version visible is written last and fsynced.

use crate::error::{DatasetError, Result};
use fs_err as fs;
use md5::{Digest, Md5};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Files up to this size are read into memory once (hash and object from the same buffer).
const SMALL_FILE: u64 = 8 << 20;

/// Makes temporary object names unique within the process.
static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// One file of a directory manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// `/`-separated path relative to the directory.
    pub relpath: String,
    /// Hex md5 of the content.
    pub md5: String,
    /// Size in bytes.
    pub size: u64,
}

/// md5 of a file's content and its size.
pub fn md5_file(path: &Path) -> Result<(String, u64)> {
    let mut f = fs::File::open(path)?;
    let mut h = Md5::new();
    // A buffer no larger than the file needs (up to 1 MiB): zeroing 1 MiB for every small
    // file cost more than reading it (hashing 20,000 1 KiB files: 0.37-0.41 s, now 0.17-0.22 s).
    let hint = f.metadata().map(|m| m.len()).unwrap_or(0);
    let mut buf = vec![0u8; hint.saturating_add(1).clamp(4096, 1 << 20) as usize];
    let mut size = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        size += n as u64;
        h.update(&buf[..n]);
    }
    Ok((hex::encode(h.finalize()), size))
}

/// md5 of bytes.
pub fn md5_bytes(data: &[u8]) -> String {
    hex::encode(Md5::digest(data))
}

/// Write `s` as a JSON string literal exactly like Python's `json.dumps` (ensure_ascii).
fn py_json_str(out: &mut String, s: &str) {
    out.push('"');
    for ch in s.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || (c as u32) > 0x7e && (c as u32) != 0x7f => {
                let mut buf = [0u16; 2];
                for unit in c.encode_utf16(&mut buf) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// The bytes of a `.dir` object for `entries` (sorted by relpath here), as DVC 3 writes them.
pub fn dir_object_bytes(entries: &[FileEntry]) -> Vec<u8> {
    let mut sorted: Vec<&FileEntry> = entries.iter().collect();
    sorted.sort_by(|a, b| a.relpath.cmp(&b.relpath));
    let mut s = String::from("[");
    for (i, e) in sorted.iter().enumerate() {
        if i > 0 {
            s.push_str(", ");
        }
        s.push_str("{\"md5\": ");
        py_json_str(&mut s, &e.md5);
        s.push_str(", \"relpath\": ");
        py_json_str(&mut s, &e.relpath);
        s.push('}');
    }
    s.push(']');
    s.into_bytes()
}

/// The DVC id of a directory: md5 of its `.dir` object plus `.dir`.
pub fn dir_id(entries: &[FileEntry]) -> String {
    format!("{}.dir", md5_bytes(&dir_object_bytes(entries)))
}

/// Parse a `.dir` object back into `(md5, relpath)` pairs.
pub fn parse_dir_object(bytes: &[u8]) -> Result<Vec<(String, String)>> {
    #[derive(Deserialize)]
    struct E {
        md5: String,
        relpath: String,
    }
    let v: Vec<E> = serde_json::from_slice(bytes)?;
    Ok(v.into_iter().map(|e| (e.md5, e.relpath)).collect())
}

fn check_oid(oid: &str) -> Result<&str> {
    let hex = oid.strip_suffix(".dir").unwrap_or(oid);
    if hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(hex)
    } else {
        Err(DatasetError::NotFound(format!(
            "not an md5 object id: {oid:?}"
        )))
    }
}

/// A DVC 3 object store rooted at a folder (a cache or a local remote).
#[derive(Debug, Clone)]
pub struct ObjectStore {
    root: PathBuf,
}

impl ObjectStore {
    /// Store at `root` (created on first write).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The store's root folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Path of object `oid` (`abc…` or `abc….dir`): `files/md5/ab/c…`.
    pub fn object_path(&self, oid: &str) -> Result<PathBuf> {
        check_oid(oid)?;
        Ok(self
            .root
            .join("files")
            .join("md5")
            .join(&oid[..2])
            .join(&oid[2..]))
    }

    /// Whether object `oid` is present.
    pub fn contains(&self, oid: &str) -> bool {
        self.object_path(oid).map(|p| p.is_file()).unwrap_or(false)
    }

    /// Whether object `oid` is present with `size` bytes (a short object is rewritten).
    fn has(&self, oid: &str, size: u64) -> Result<bool> {
        Ok(fs::metadata(self.object_path(oid)?)
            .map(|m| m.is_file() && m.len() == size)
            .unwrap_or(false))
    }

    /// A writer for a batch of objects.
    fn writer(&self) -> Writer<'_> {
        Writer {
            store: self,
            pid: std::process::id(),
            made: std::array::from_fn(|_| AtomicBool::new(false)),
        }
    }

    /// Store bytes under `oid` atomically unless already present.
    pub fn put_bytes(&self, oid: &str, data: &[u8]) -> Result<()> {
        if self.has(oid, data.len() as u64)? {
            return Ok(());
        }
        self.writer().write(oid, data)
    }

    /// Copy file `src` (whose md5 is `oid`) into the store atomically unless already present.
    pub fn put_file(&self, oid: &str, src: &Path) -> Result<()> {
        let size = fs::metadata(src)?.len();
        if self.has(oid, size)? {
            return Ok(());
        }
        self.writer().copy(oid, src)
    }

    /// Hash and store every file in `files` in parallel, reading each new file once; files
    /// unchanged since `cache` saw them (same size and mtime) are not read at all.
    /// Returns `(md5, size)` per file, in the order given.
    pub fn add_files(&self, files: &[PathBuf], cache: &HashCache) -> Result<Vec<(String, u64)>> {
        let w = self.writer();
        // Decided once: other threads fill the cache while the batch runs.
        let nothing_cached = cache.is_empty();
        files
            .par_iter()
            .map(|p| w.add(p, cache, nothing_cached))
            .collect()
    }

    /// Read object `oid`.
    pub fn read(&self, oid: &str) -> Result<Vec<u8>> {
        let p = self.object_path(oid)?;
        if !p.is_file() {
            return Err(DatasetError::NotFound(format!(
                "object {oid} is missing from {}",
                self.root.display()
            )));
        }
        Ok(fs::read(p)?)
    }

    /// Store a directory manifest as a `.dir` object; returns its id (`….dir`).
    pub fn put_dir(&self, entries: &[FileEntry]) -> Result<String> {
        let bytes = dir_object_bytes(entries);
        let oid = format!("{}.dir", md5_bytes(&bytes));
        self.put_bytes(&oid, &bytes)?;
        Ok(oid)
    }

    /// Read a `.dir` object: `(md5, relpath)` pairs.
    pub fn read_dir(&self, oid: &str) -> Result<Vec<(String, String)>> {
        parse_dir_object(&self.read(oid)?)
    }

    /// Copy a directory object and all its files into another store (e.g. a DVC cache or remote).
    pub fn copy_dir_to(&self, oid: &str, other: &ObjectStore) -> Result<()> {
        let entries = self.read_dir(oid)?;
        let w = other.writer();
        entries.par_iter().try_for_each(|(md5, _)| -> Result<()> {
            let src = self.object_path(md5)?;
            if other.has(md5, fs::metadata(&src)?.len())? {
                return Ok(());
            }
            w.copy(md5, &src)
        })?;
        other.put_bytes(oid, &self.read(oid)?)
    }

    /// Materialize directory `oid` at `dest` (which must not exist yet), verifying each file.
    pub fn checkout_dir(&self, oid: &str, dest: &Path) -> Result<()> {
        let entries = self.read_dir(oid)?;
        for (_, rel) in &entries {
            safe_relpath(rel)?;
        }
        entries.par_iter().try_for_each(|(md5, rel)| -> Result<()> {
            let dst = dest.join(rel);
            crate::copy_file(&self.object_path(md5)?, &dst)?;
            Ok(())
        })
    }
}

/// Writes objects of one store: a temporary file beside the object, then a rename into place.
/// Remembers which `files/md5/<xx>/` folders exist, so a batch creates each once.
struct Writer<'a> {
    store: &'a ObjectStore,
    pid: u32,
    made: [AtomicBool; 256],
}

impl Writer<'_> {
    /// The folder of object `oid` (`files/md5/<xx>/`), created once per batch.
    fn folder(&self, oid: &str) -> Result<PathBuf> {
        let dst = self.store.object_path(oid)?;
        let parent = dst.parent().map(Path::to_path_buf).unwrap_or_default();
        let slot = usize::from(u8::from_str_radix(&oid[..2], 16).unwrap_or(0));
        if !self.made[slot].load(Ordering::Relaxed) {
            fs::create_dir_all(&parent)?;
            self.made[slot].store(true, Ordering::Relaxed);
        }
        Ok(parent)
    }

    /// A fresh temporary file beside object `oid`: renaming within one folder avoids the file
    /// system's global lock for cross-folder renames.
    fn temp(&self, oid: &str) -> Result<(PathBuf, fs::File)> {
        let n = TMP_COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = self
            .folder(oid)?
            .join(format!(".{}.{}.{n}.tmp", &oid[2..], self.pid));
        let f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)?;
        Ok((path, f))
    }

    /// Rename `tmp` onto object `oid`; removes `tmp` on failure.
    fn publish(&self, tmp: &Path, oid: &str) -> Result<()> {
        let dst = self.store.object_path(oid)?;
        fs::rename(tmp, &dst).map_err(|e| {
            let _ = fs::remove_file(tmp);
            DatasetError::Io(std::io::Error::new(
                e.kind(),
                format!("cannot store object {}: {e}", dst.display()),
            ))
        })
    }

    /// Store `data` as object `oid`: created in place when it does not exist yet (one file
    /// created, no rename); an existing file of the wrong size (a write cut short) is replaced
    /// atomically through a temporary file.
    fn write(&self, oid: &str, data: &[u8]) -> Result<()> {
        let dst = self.folder(oid)?.join(&oid[2..]);
        match fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&dst)
        {
            Ok(mut f) => {
                if let Err(e) = f.write_all(data) {
                    drop(f);
                    let _ = fs::remove_file(&dst);
                    return Err(e.into());
                }
                Ok(())
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                if self.store.has(oid, data.len() as u64)? {
                    return Ok(());
                }
                let (path, mut f) = self.temp(oid)?;
                if let Err(e) = f.write_all(data) {
                    drop(f);
                    let _ = fs::remove_file(&path);
                    return Err(e.into());
                }
                drop(f);
                self.publish(&path, oid)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Copy file `src` as object `oid` (`copy_file_range`: in kernel, a reflink where the
    /// file system can).
    fn copy(&self, oid: &str, src: &Path) -> Result<()> {
        let (path, f) = self.temp(oid)?;
        drop(f);
        if let Err(e) = fs::copy(src, &path) {
            let _ = fs::remove_file(&path);
            return Err(e.into());
        }
        self.publish(&path, oid)
    }

    /// Hash `src` and store it unless present: one read for a new small file, none for a file
    /// the cache knows unchanged (only a check that its object exists). With
    /// `nothing_cached` (a first version: every file will be read) the file is opened first
    /// and its size and mtime taken from the open file, saving a path lookup per file.
    fn add(&self, src: &Path, cache: &HashCache, nothing_cached: bool) -> Result<(String, u64)> {
        let (meta, opened) = if nothing_cached {
            let f = fs::File::open(src)?;
            (f.metadata()?, Some(f))
        } else {
            (fs::metadata(src)?, None)
        };
        let size = meta.len();
        let key = cache.key(src, &meta);
        if let Some(md5) = cache.lookup(&key) {
            if !self.store.has(&md5, size)? {
                self.copy(&md5, src)?;
            }
            return Ok((md5, size));
        }
        if size <= SMALL_FILE {
            // Exactly the size the cache key saw (no extra fstat/lseek of read_to_end).
            let mut f = match opened {
                Some(f) => f,
                None => fs::File::open(src)?,
            };
            let mut data = vec![0u8; size as usize];
            f.read_exact(&mut data)?;
            let md5 = md5_bytes(&data);
            // No existence check first: `write` creates the object with O_CREAT|O_EXCL and
            // only looks at an existing one (one system call less per new file).
            self.write(&md5, &data)?;
            cache.record(key, size, &md5);
            return Ok((md5, size));
        }
        let md5 = md5_file(src)?.0;
        if !self.store.has(&md5, size)? {
            self.copy(&md5, src)?;
        }
        cache.record(key, size, &md5);
        Ok((md5, size))
    }
}

/// Reject relpaths that could escape the destination folder.
pub fn safe_relpath(rel: &str) -> Result<()> {
    let bad = rel.is_empty()
        || rel.starts_with('/')
        || rel.contains('\\')
        || rel
            .split('/')
            .any(|c| c.is_empty() || c == "." || c == "..");
    if bad {
        Err(DatasetError::Source(format!(
            "unsafe path in data set: {rel:?}"
        )))
    } else {
        Ok(())
    }
}

/// What identifies an unchanged file.
struct CacheKey {
    path: String,
    size: u64,
    mtime: i128,
}

/// Cache of file hashes keyed by (absolute path, size, mtime in ns).
#[derive(Debug, Default)]
pub struct HashCache {
    path: Option<PathBuf>,
    map: Mutex<BTreeMap<String, (u64, i128, String)>>,
    dirty: Mutex<bool>,
}

impl HashCache {
    /// Load the cache at `path` (empty when missing or unreadable).
    pub fn load(path: impl Into<PathBuf>) -> Self {
        let path = path.into();
        let map = fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        Self {
            path: Some(path),
            map: Mutex::new(map),
            dirty: Mutex::new(false),
        }
    }

    /// An in-memory cache.
    pub fn in_memory() -> Self {
        Self::default()
    }

    /// Whether no file is recorded (a first version, or a cache that was lost).
    fn is_empty(&self) -> bool {
        self.map.lock().map(|m| m.is_empty()).unwrap_or(false)
    }

    /// The cache key of `path` with metadata `meta`: (path, size, mtime in ns).
    fn key(&self, path: &Path, meta: &std::fs::Metadata) -> CacheKey {
        let mtime = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_nanos() as i128)
            .unwrap_or(-1);
        CacheKey {
            path: path.to_string_lossy().into_owned(),
            size: meta.len(),
            mtime,
        }
    }

    /// The md5 recorded for `key`, when its size and mtime are unchanged.
    fn lookup(&self, key: &CacheKey) -> Option<String> {
        if key.mtime < 0 {
            return None;
        }
        let m = self.map.lock().ok()?;
        m.get(&key.path)
            .filter(|(size, mt, _)| *size == key.size && *mt == key.mtime)
            .map(|(_, _, md5)| md5.clone())
    }

    /// Remember that the file of `key` (read as `size` bytes) has `md5`.
    fn record(&self, key: CacheKey, size: u64, md5: &str) {
        if let Ok(mut m) = self.map.lock() {
            m.insert(key.path, (size, key.mtime, md5.to_string()));
        }
        if let Ok(mut d) = self.dirty.lock() {
            *d = true;
        }
    }

    /// md5 and size of `path`, from the cache when size and mtime are unchanged.
    pub fn hash(&self, path: &Path) -> Result<(String, u64)> {
        let meta = fs::metadata(path)?;
        let key = self.key(path, &meta);
        if let Some(md5) = self.lookup(&key) {
            return Ok((md5, meta.len()));
        }
        let (md5, size) = md5_file(path)?;
        self.record(key, size, &md5);
        Ok((md5, size))
    }

    /// Persist the cache if it changed (atomic replace).
    pub fn save(&self) -> Result<()> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let dirty = self.dirty.lock().map(|d| *d).unwrap_or(true);
        if !dirty {
            return Ok(());
        }
        let bytes = match self.map.lock() {
            Ok(m) => serde_json::to_vec(&*m)?,
            Err(_) => return Ok(()),
        };
        let dir = path.parent().unwrap_or(Path::new("."));
        fs::create_dir_all(dir)?;
        let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
        tmp.write_all(&bytes)?;
        tmp.persist(path).map_err(|e| DatasetError::Io(e.error))?;
        Ok(())
    }
}

/// Every regular file under `root` (symlinks are not followed), in walk order.
fn list_files(root: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for e in walkdir::WalkDir::new(root).follow_links(false) {
        let e = e.map_err(|e| DatasetError::Io(std::io::Error::other(e.to_string())))?;
        if e.file_type().is_file() {
            files.push(e.into_path());
        }
    }
    Ok(files)
}

/// Hash every file under `root` in parallel: entries sorted by relpath.
pub fn hash_tree(root: &Path, cache: &HashCache) -> Result<Vec<FileEntry>> {
    let files = list_files(root)?;
    let mut entries = files
        .par_iter()
        .map(|p| {
            let (md5, size) = cache.hash(p)?;
            Ok(FileEntry {
                relpath: crate::rel_display(root, p),
                md5,
                size,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    entries.sort_by(|a, b| a.relpath.cmp(&b.relpath));
    Ok(entries)
}

/// Hash the folder `root`, store every file and the `.dir` object (what `dvc add` does);
/// returns (dir id, entries sorted by relpath).
pub fn add_tree(
    store: &ObjectStore,
    root: &Path,
    cache: &HashCache,
) -> Result<(String, Vec<FileEntry>)> {
    let files = list_files(root)?;
    let hashed = store.add_files(&files, cache)?;
    let mut entries: Vec<FileEntry> = files
        .iter()
        .zip(hashed)
        .map(|(p, (md5, size))| FileEntry {
            relpath: crate::rel_display(root, p),
            md5,
            size,
        })
        .collect();
    entries.sort_by(|a, b| a.relpath.cmp(&b.relpath));
    let oid = store.put_dir(&entries)?;
    Ok((oid, entries))
}

/// Text of a DVC 3 `.dvc` file for a directory output `path` with id `oid`.
pub fn dvc_file_text(oid: &str, size: u64, nfiles: usize, path: &str) -> String {
    format!(
        "outs:\n- md5: {oid}\n  size: {size}\n  nfiles: {nfiles}\n  hash: md5\n  path: {path}\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_json_escaping() {
        let mut s = String::new();
        py_json_str(&mut s, "a\"b\\c\né/😀\u{1}\u{7f}");
        assert_eq!(s, "\"a\\\"b\\\\c\\n\\u00e9/\\ud83d\\ude00\\u0001\u{7f}\"");
    }

    #[test]
    fn dir_object_is_sorted_python_json() {
        let e = |r: &str, m: &str| FileEntry {
            relpath: r.into(),
            md5: m.into(),
            size: 1,
        };
        let b = dir_object_bytes(&[e("b/x", "2"), e("a", "1")]);
        assert_eq!(
            String::from_utf8(b).unwrap(),
            "[{\"md5\": \"1\", \"relpath\": \"a\"}, {\"md5\": \"2\", \"relpath\": \"b/x\"}]"
        );
    }

    #[test]
    fn store_round_trip_and_dedup() {
        let t = tempfile::tempdir().unwrap();
        let src = t.path().join("src");
        fs::create_dir_all(src.join("sub")).unwrap();
        fs::write(src.join("a.txt"), b"same").unwrap();
        fs::write(src.join("sub/b.txt"), b"same").unwrap();
        let store = ObjectStore::new(t.path().join("store"));
        let (oid, entries) = add_tree(&store, &src, &HashCache::in_memory()).unwrap();
        assert!(oid.ends_with(".dir"));
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].md5, md5_bytes(b"same"));
        let objs: Vec<_> = walkdir::WalkDir::new(store.root().join("files"))
            .into_iter()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().is_file())
            .collect();
        assert_eq!(objs.len(), 2, "one file object (deduplicated) + one .dir");
        let out = t.path().join("out");
        store.checkout_dir(&oid, &out).unwrap();
        assert_eq!(fs::read(out.join("sub/b.txt")).unwrap(), b"same");
    }

    #[test]
    fn short_objects_are_rewritten_and_unchanged_files_not_read() {
        let t = tempfile::tempdir().unwrap();
        let src = t.path().join("src");
        fs::create_dir_all(&src).unwrap();
        let f = src.join("a.txt");
        fs::write(&f, b"hello world").unwrap();
        let store = ObjectStore::new(t.path().join("store"));
        let cache = HashCache::in_memory();
        add_tree(&store, &src, &cache).unwrap();
        let obj = store.object_path(&md5_bytes(b"hello world")).unwrap();
        // A write cut short (crash): the next add restores the object.
        fs::write(&obj, b"hel").unwrap();
        add_tree(&store, &src, &HashCache::in_memory()).unwrap();
        assert_eq!(fs::read(&obj).unwrap(), b"hello world");
        // Same size and mtime: the cache answers without reading the file.
        let mtime = fs::metadata(&f).unwrap().modified().unwrap();
        fs::write(&f, b"HELLO WORLD").unwrap();
        fs::File::options()
            .write(true)
            .open(&f)
            .unwrap()
            .set_modified(mtime)
            .unwrap();
        let (_, e) = add_tree(&store, &src, &cache).unwrap();
        assert_eq!(e[0].md5, md5_bytes(b"hello world"), "cached");
        let (_, e) = add_tree(&store, &src, &HashCache::in_memory()).unwrap();
        assert_eq!(e[0].md5, md5_bytes(b"HELLO WORLD"), "read");
        assert!(store.contains(&md5_bytes(b"HELLO WORLD")));
        // No temporary files are left beside the objects.
        let stray: Vec<_> = walkdir::WalkDir::new(store.root())
            .into_iter()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(stray.is_empty(), "{stray:?}");
    }

    #[test]
    fn unsafe_relpaths_are_refused() {
        for p in ["../x", "/etc/passwd", "a/../../b", "a//b", ""] {
            assert!(safe_relpath(p).is_err(), "{p}");
        }
        assert!(safe_relpath("a/b.jpg").is_ok());
    }

    #[test]
    fn hash_cache_skips_unchanged_and_sees_changes() {
        let t = tempfile::tempdir().unwrap();
        let f = t.path().join("f");
        fs::write(&f, b"one").unwrap();
        let cache = HashCache::load(t.path().join("cache.json"));
        assert_eq!(cache.hash(&f).unwrap().0, md5_bytes(b"one"));
        cache.save().unwrap();
        let cache = HashCache::load(t.path().join("cache.json"));
        assert_eq!(cache.map.lock().unwrap().len(), 1);
        fs::write(&f, b"two!").unwrap();
        assert_eq!(cache.hash(&f).unwrap().0, md5_bytes(b"two!"));
    }
}
