//! Immutable, content-addressed dataset versions in a project's data area.
//!
//! Layout under the data root (`<home>/projects/<name>/datasets/`):
//! - `store/files/md5/…` — the DVC 3 object store (usable as a DVC cache or remote as is);
//! - `store/hashcache.json` — `(path, size, mtime) → md5` cache that skips unchanged files;
//! - `versions/<id>.json` — version records (also mirrored in the database by the CLI).
//!
//! A version's tree is `images/<file>` for every image plus `annotations.json` (the
//! normalized annotations). Its id is the md5 of the tree's `.dir` object, so the same
//! content always gets the same id and is stored once. The record is written last, atomically
//! (temporary file + rename): a failed import leaves no version behind.

use crate::dvc::{self, FileEntry, HashCache, ObjectStore};
use crate::error::{DatasetError, Result};
use crate::model::Dataset;
use crate::split::Ratios;
use crate::stats::{self, Stats};
use crate::{Format, Imported};
use fs_err as fs;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Name of the annotations file inside a version tree.
pub const ANNOTATIONS: &str = "annotations.json";
/// Folder of the images inside a version tree.
pub const IMAGES: &str = "images";

/// Metadata of one version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VersionMeta {
    /// Version id: md5 of the tree's `.dir` object (32 hex).
    pub id: String,
    /// Parent version id, if any.
    pub parent: Option<String>,
    /// Message.
    pub message: String,
    /// Author.
    pub author: String,
    /// Creation time, RFC 3339 UTC.
    pub created_at: String,
    /// Source it was ingested from.
    pub source: String,
    /// Source format.
    pub format: Option<Format>,
    /// Number of files in the tree (images + annotations).
    pub nfiles: usize,
    /// Total bytes of the tree.
    pub size: u64,
    /// Summary statistics.
    pub stats: Stats,
    /// Conversion notes and warnings reported at ingest.
    #[serde(default)]
    pub notes: Vec<String>,
}

impl VersionMeta {
    /// The DVC object id of the tree (`<id>.dir`).
    pub fn dir_oid(&self) -> String {
        format!("{}.dir", self.id)
    }
}

/// Options of [`Repo::create`].
#[derive(Debug, Clone, Default)]
pub struct CreateOptions {
    /// Parent version id (default: the latest version).
    pub parent: Option<String>,
    /// Message.
    pub message: String,
    /// Author (default: `$USER`).
    pub author: String,
    /// Ratios for images without a split.
    pub ratios: Ratios,
    /// Source description.
    pub source: String,
    /// Source format.
    pub format: Option<Format>,
    /// Notes to record.
    pub notes: Vec<String>,
}

/// The versions of one project's data sets.
#[derive(Debug, Clone)]
pub struct Repo {
    root: PathBuf,
    store: ObjectStore,
}

/// Current time as RFC 3339 UTC with nanoseconds (fixed width, so it sorts as text).
pub fn now_rfc3339() -> String {
    chrono::Utc::now()
        .format("%Y-%m-%dT%H:%M:%S%.9fZ")
        .to_string()
}

impl Repo {
    /// Open (lazily create) the data area at `root`.
    pub fn open(root: impl Into<PathBuf>) -> Self {
        let root = root.into();
        let store = ObjectStore::new(root.join("store"));
        Self { root, store }
    }

    /// The data root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The object store (a DVC 3 cache/remote layout).
    pub fn store(&self) -> &ObjectStore {
        &self.store
    }

    /// Folder for temporary work (unpacked archives, downloads).
    pub fn work_dir(&self) -> PathBuf {
        self.root.join("work")
    }

    fn versions_dir(&self) -> PathBuf {
        self.root.join("versions")
    }

    /// All versions, oldest first.
    pub fn list(&self) -> Result<Vec<VersionMeta>> {
        let mut out = Vec::new();
        let dir = self.versions_dir();
        if !dir.is_dir() {
            return Ok(out);
        }
        for e in fs::read_dir(&dir)? {
            let p = e?.path();
            if p.extension().is_some_and(|x| x == "json") {
                out.push(serde_json::from_slice::<VersionMeta>(&fs::read(&p)?)?);
            }
        }
        out.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
        Ok(out)
    }

    /// The latest version, if any.
    pub fn latest(&self) -> Result<Option<VersionMeta>> {
        Ok(self.list()?.pop())
    }

    /// Find a version by id or unique id prefix (≥ 4 characters), or `latest`.
    pub fn get(&self, id: &str) -> Result<VersionMeta> {
        let all = self.list()?;
        if id == "latest" {
            return all.last().cloned().ok_or_else(|| {
                DatasetError::NotFound("the project has no dataset version yet".into())
            });
        }
        let m: Vec<&VersionMeta> = all
            .iter()
            .filter(|v| id.len() >= 4 && v.id.starts_with(id))
            .collect();
        match m.as_slice() {
            [one] => Ok((*one).clone()),
            [] => Err(DatasetError::NotFound(format!("no dataset version {id:?}"))),
            _ => Err(DatasetError::NotFound(format!(
                "version prefix {id:?} is ambiguous"
            ))),
        }
    }

    /// Create a version from a validated, label-mapped import. Returns the version and
    /// whether it is new (`false` when identical content already existed).
    pub fn create(
        &self,
        mut imported: Imported,
        opts: CreateOptions,
    ) -> Result<(VersionMeta, bool)> {
        let cache = HashCache::load(self.store.root().join("hashcache.json"));
        // Hash the source images in parallel (cached by path, size, mtime).
        let files: Vec<(String, PathBuf)> = imported
            .dataset
            .images
            .iter()
            .map(|img| {
                imported
                    .sources
                    .get(&img.file)
                    .cloned()
                    .map(|p| (img.file.clone(), p))
                    .ok_or_else(|| {
                        DatasetError::NotFound(format!("no source file for image {:?}", img.file))
                    })
            })
            .collect::<Result<_>>()?;
        for (f, _) in &files {
            dvc::safe_relpath(f)?;
        }
        // Hash and store the images in one parallel pass: each new file is read once, files
        // unchanged since the last version (path, size, mtime) are not read at all.
        let paths: Vec<PathBuf> = files.iter().map(|(_, p)| p.clone()).collect();
        let sums = self.store.add_files(&paths, &cache)?;
        let hashed: Vec<(String, String, u64)> = files
            .into_iter()
            .zip(sums)
            .map(|((f, _), (md5, size))| (f, md5, size))
            .collect();
        let md5s: HashMap<String, String> = hashed
            .iter()
            .map(|(f, m, _)| (f.clone(), m.clone()))
            .collect();
        crate::split::assign(&mut imported.dataset, &md5s, opts.ratios);
        imported.dataset.normalize();
        let ann = imported.dataset.to_canonical_json()?;
        let ann_md5 = dvc::md5_bytes(&ann);
        let mut entries: Vec<FileEntry> = hashed
            .iter()
            .map(|(f, md5, size)| FileEntry {
                relpath: format!("{IMAGES}/{f}"),
                md5: md5.clone(),
                size: *size,
            })
            .collect();
        entries.push(FileEntry {
            relpath: ANNOTATIONS.into(),
            md5: ann_md5.clone(),
            size: ann.len() as u64,
        });
        let id = dvc::dir_id(&entries);
        let id = id.trim_end_matches(".dir").to_string();
        if let Ok(existing) = self.get(&id) {
            cache.save()?;
            return Ok((existing, false));
        }
        // The images are stored already; then the annotations, the tree, the record.
        self.store.put_bytes(&ann_md5, &ann)?;
        let oid = self.store.put_dir(&entries)?;
        debug_assert_eq!(oid, format!("{id}.dir"));
        cache.save()?;
        let parent = match opts.parent {
            Some(p) => Some(self.get(&p)?.id),
            None => self.latest()?.map(|v| v.id),
        };
        let author = if opts.author.is_empty() {
            std::env::var("USER").unwrap_or_else(|_| "unknown".into())
        } else {
            opts.author
        };
        let meta = VersionMeta {
            id: id.clone(),
            parent,
            message: opts.message,
            author,
            created_at: now_rfc3339(),
            source: opts.source,
            format: opts.format,
            nfiles: entries.len(),
            size: entries.iter().map(|e| e.size).sum(),
            stats: stats::stats(&imported.dataset),
            notes: opts.notes,
        };
        self.write_meta(&meta)?;
        Ok((meta, true))
    }

    fn write_meta(&self, meta: &VersionMeta) -> Result<()> {
        let dir = self.versions_dir();
        fs::create_dir_all(&dir)?;
        let mut tmp = tempfile::NamedTempFile::new_in(&dir)?;
        tmp.write_all(&serde_json::to_vec_pretty(meta)?)?;
        tmp.as_file().sync_all()?;
        tmp.persist(dir.join(format!("{}.json", meta.id)))
            .map_err(|e| DatasetError::Io(e.error))?;
        Ok(())
    }

    /// The tree of a version: relpath → md5.
    pub fn tree(&self, id: &str) -> Result<BTreeMap<String, String>> {
        let v = self.get(id)?;
        Ok(self
            .store
            .read_dir(&v.dir_oid())?
            .into_iter()
            .map(|(m, r)| (r, m))
            .collect())
    }

    /// The annotations of a version.
    pub fn dataset(&self, id: &str) -> Result<Dataset> {
        let tree = self.tree(id)?;
        let md5 = tree
            .get(ANNOTATIONS)
            .ok_or_else(|| DatasetError::NotFound(format!("version {id} has no {ANNOTATIONS}")))?;
        Ok(serde_json::from_slice(&self.store.read(md5)?)?)
    }

    /// Image file → stored object path for a version.
    pub fn image_paths(&self, id: &str) -> Result<BTreeMap<String, PathBuf>> {
        let mut out = BTreeMap::new();
        for (rel, md5) in self.tree(id)? {
            if let Some(f) = rel.strip_prefix(&format!("{IMAGES}/")) {
                out.insert(f.to_string(), self.store.object_path(&md5)?);
            }
        }
        Ok(out)
    }

    /// Image file → md5 for a version.
    pub fn image_md5s(&self, id: &str) -> Result<BTreeMap<String, String>> {
        Ok(self
            .tree(id)?
            .into_iter()
            .filter_map(|(r, m)| {
                r.strip_prefix(&format!("{IMAGES}/"))
                    .map(|f| (f.to_string(), m))
            })
            .collect())
    }

    /// Materialize a version's tree (images/ + annotations.json) at `dest` (must not exist).
    pub fn checkout(&self, id: &str, dest: &Path) -> Result<()> {
        let v = self.get(id)?;
        let tmp = staging_dir(dest, ".checkout-")?;
        self.store.checkout_dir(&v.dir_oid(), tmp.path())?;
        fs::rename(tmp.path(), dest)?;
        Ok(())
    }

    /// Export a version in `format` at `dest` (must not exist). Returns conversion notes.
    ///
    /// `labels` is the label set to write with, normally the project's current labels: class
    /// ids are positions in it, and a version using a label it lacks is refused (naming the
    /// labels) before anything is written. `None` writes with the version's own categories
    /// (checked the same way).
    pub fn export(
        &self,
        id: &str,
        format: Format,
        dest: &Path,
        labels: Option<&[String]>,
    ) -> Result<Vec<String>> {
        let v = self.get(id)?;
        let id = v.id.as_str();
        let mut ds = self.dataset(id)?;
        let what = format!("version {}", id.get(..12).unwrap_or(id));
        match labels {
            Some(l) => crate::labels::check_export(&mut ds, l, &what, "the project's labels")?,
            None => {
                let own = ds.categories.clone();
                crate::labels::check_export(&mut ds, &own, &what, "its own categories")?
            }
        }
        let images = self.image_paths(id)?;
        let tmp = staging_dir(dest, ".export-")?;
        let notes = crate::write(&ds, &images, format, tmp.path())?;
        fs::rename(tmp.path(), dest)?;
        Ok(notes)
    }

    /// Write `<dir>/<name>.dvc` for a version and copy its objects into the DVC object store
    /// at `objects` (a DVC 3 cache such as `<repo>/.dvc/cache`, or a local remote folder).
    /// `dvc checkout` (cache) or `dvc pull` (remote) then materializes `<dir>/<name>/`.
    pub fn export_dvc(&self, id: &str, dir: &Path, name: &str, objects: &Path) -> Result<PathBuf> {
        let v = self.get(id)?;
        dvc::safe_relpath(name)?;
        self.store
            .copy_dir_to(&v.dir_oid(), &ObjectStore::new(objects))?;
        fs::create_dir_all(dir)?;
        let path = dir.join(format!("{name}.dvc"));
        fs::write(
            &path,
            dvc::dvc_file_text(&v.dir_oid(), v.size, v.nfiles, name),
        )?;
        Ok(path)
    }

    /// Differences between versions `a` (old) and `b` (new).
    pub fn diff(&self, a: &str, b: &str) -> Result<stats::Diff> {
        Ok(stats::diff(
            &self.dataset(a)?,
            &self.dataset(b)?,
            &self.image_md5s(a)?,
            &self.image_md5s(b)?,
        ))
    }
}

/// A temporary folder beside `dest` (which must not exist yet), to be renamed onto it once complete,
/// so a failed checkout or export never leaves a half-written `dest`.
fn staging_dir(dest: &Path, prefix: &str) -> Result<tempfile::TempDir> {
    if dest.exists() {
        return Err(DatasetError::Source(format!(
            "{}: already exists",
            dest.display()
        )));
    }
    let parent = dest
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    fs::create_dir_all(parent)?;
    Ok(tempfile::Builder::new().prefix(prefix).tempdir_in(parent)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_shape() {
        let t = now_rfc3339();
        assert_eq!(t.len(), 30);
        assert!(t.starts_with("20") && t.ends_with('Z'), "{t}");
    }
}
