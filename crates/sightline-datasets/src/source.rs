//! Where a data set comes from: a local folder (read in place, never modified), an archive
//! (`.zip`, `.tar`, `.tar.gz`/`.tgz`, unpacked into a temporary folder), or an http(s) URL
//! (streamed to disk, resumable with HTTP range requests, optional SHA-256 check).

use crate::error::{DatasetError, Result};
use fs_err as fs;
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// A prepared source: the folder to read, plus the temporary folder that holds it (if any).
#[derive(Debug)]
pub struct Prepared {
    /// Folder holding the data set.
    pub root: PathBuf,
    /// Keeps an unpacked archive alive until the import is done.
    pub _temp: Option<tempfile::TempDir>,
}

/// Progress reporting for downloads: `(bytes so far, total if known)`.
pub type Progress<'a> = &'a mut dyn FnMut(u64, Option<u64>);

/// Is `s` an http(s) URL?
pub fn is_url(s: &str) -> bool {
    s.starts_with("http://") || s.starts_with("https://")
}

/// How long a download may wait for the server (connect, or between two reads) before it
/// stops with "run again to resume" instead of hanging.
const NET_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// `Content-Range: bytes START-END/TOTAL` → (START, TOTAL if known).
fn content_range(v: &str) -> Option<(u64, Option<u64>)> {
    let rest = v.trim().strip_prefix("bytes")?.trim_start();
    let (range, total) = rest.split_once('/')?;
    let start = range.split_once('-')?.0.trim().parse().ok()?;
    Some((start, total.trim().parse().ok()))
}

/// Download `url` into `dir` (resuming a previous partial download), check `sha256` if given,
/// and return the downloaded file.
///
/// The body is streamed to `<name>.part`; when that file exists, the request asks for the rest
/// (`Range: bytes=N-`). A `206` whose `Content-Range` starts at `N` is appended; any other
/// answer (a server without range support sends `200` and the whole body; `416` when the part
/// is unusable) restarts cleanly from byte 0. The part becomes the final file only when
/// complete; a SHA-256 mismatch removes it, so nothing wrong is ever kept.
pub fn download(
    url: &str,
    dir: &Path,
    sha256: Option<&str>,
    progress: Progress<'_>,
) -> Result<PathBuf> {
    fs::create_dir_all(dir)?;
    let name = url
        .rsplit('/')
        .next()
        .map(|n| n.split(['?', '#']).next().unwrap_or(n))
        .filter(|n| !n.is_empty() && !n.contains(".."))
        .unwrap_or("download");
    let key = &hex::encode(Sha256::digest(url.as_bytes()))[..16];
    let final_path = dir.join(format!("{key}-{name}"));
    let part = dir.join(format!("{key}-{name}.part"));
    if !final_path.is_file() {
        fetch(url, &part, progress)?;
        fs::rename(&part, &final_path)?;
    }
    if let Some(expected) = sha256 {
        let mut h = Sha256::new();
        let mut f = fs::File::open(&final_path)?;
        std::io::copy(&mut f, &mut h)?;
        let got = hex::encode(h.finalize());
        if !got.eq_ignore_ascii_case(expected.trim()) {
            let _ = fs::remove_file(&final_path);
            return Err(DatasetError::Source(format!(
                "{url}: SHA-256 mismatch: expected {expected}, got {got} (download removed)"
            )));
        }
    }
    Ok(final_path)
}

/// Fetch `url` into `part` completely, resuming what `part` already holds when the server
/// allows it.
fn fetch(url: &str, part: &Path, progress: Progress<'_>) -> Result<()> {
    let agent = ureq::AgentBuilder::new()
        .timeout_connect(NET_TIMEOUT)
        .timeout_read(NET_TIMEOUT)
        .build();
    let failed = |e: String| DatasetError::Source(format!("GET {url}: {e}"));
    let mut have = fs::metadata(part).map(|m| m.len()).unwrap_or(0);
    // At most two requests: a resume, then (if the server did not honour it) a fresh start.
    let resp = loop {
        let mut req = agent.get(url);
        if have > 0 {
            req = req.set("Range", &format!("bytes={have}-"));
        }
        let resp = match req.call() {
            Ok(r) => r,
            Err(ureq::Error::Status(416, _)) if have > 0 => {
                have = 0; // the part does not fit the file any more: start over
                continue;
            }
            Err(e) => return Err(failed(e.to_string())),
        };
        if have > 0 && resp.status() == 206 {
            let start = resp.header("Content-Range").and_then(content_range);
            if start.map(|(s, _)| s) != Some(have) {
                have = 0; // a range we did not ask for: start over
                continue;
            }
        } else if resp.status() != 200 {
            return Err(failed(format!("unexpected status {}", resp.status())));
        }
        break resp;
    };
    let resumed = resp.status() == 206;
    let total = if resumed {
        resp.header("Content-Range")
            .and_then(content_range)
            .and_then(|(_, t)| t)
            .or_else(|| {
                resp.header("Content-Length")
                    .and_then(|v| v.parse::<u64>().ok())
                    .map(|n| n + have)
            })
    } else {
        resp.header("Content-Length")
            .and_then(|v| v.parse::<u64>().ok())
    };
    let mut file = if resumed {
        fs::OpenOptions::new().append(true).open(part)?
    } else {
        fs::File::create(part)?
    };
    let mut done = if resumed { have } else { 0 };
    progress(done, total);
    let mut reader = resp.into_reader();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = reader.read(&mut buf).map_err(|e| {
            failed(format!(
                "interrupted after {done} bytes: {e} (run again to resume)"
            ))
        })?;
        if n == 0 {
            break;
        }
        file.write_all(&buf[..n])?;
        done += n as u64;
        progress(done, total);
    }
    file.sync_all()?;
    if let Some(t) = total
        && t != done
    {
        return Err(failed(format!(
            "got {done} of {t} bytes (run again to resume)"
        )));
    }
    Ok(())
}

/// Archive kind by file name.
fn archive_kind(p: &Path) -> Option<&'static str> {
    let n = p.file_name()?.to_string_lossy().to_ascii_lowercase();
    if n.ends_with(".zip") {
        Some("zip")
    } else if n.ends_with(".tar.gz") || n.ends_with(".tgz") {
        Some("tgz")
    } else if n.ends_with(".tar") {
        Some("tar")
    } else {
        None
    }
}

/// Unpack archive `path` into `dest` (entries escaping `dest` are refused).
pub fn unpack(path: &Path, dest: &Path) -> Result<()> {
    let kind = archive_kind(path).ok_or_else(|| {
        DatasetError::Source(format!(
            "{}: not a .zip, .tar or .tar.gz archive",
            path.display()
        ))
    })?;
    let bad = |e: String| DatasetError::Source(format!("{}: {e}", path.display()));
    match kind {
        "zip" => {
            let f = fs::File::open(path)?;
            let mut z = zip::ZipArchive::new(f).map_err(|e| bad(format!("corrupt zip: {e}")))?;
            for i in 0..z.len() {
                let mut entry = z
                    .by_index(i)
                    .map_err(|e| bad(format!("corrupt zip: {e}")))?;
                let Some(rel) = entry.enclosed_name().map(Path::to_path_buf) else {
                    return Err(bad(format!("unsafe path in archive: {:?}", entry.name())));
                };
                let out = dest.join(rel);
                if entry.is_dir() {
                    fs::create_dir_all(&out)?;
                } else {
                    if let Some(p) = out.parent() {
                        fs::create_dir_all(p)?;
                    }
                    let mut w = fs::File::create(&out)?;
                    std::io::copy(&mut entry, &mut w)
                        .map_err(|e| bad(format!("corrupt zip entry: {e}")))?;
                }
            }
        }
        _ => {
            let f = fs::File::open(path)?;
            let reader: Box<dyn Read> = if kind == "tgz" {
                Box::new(flate2::read::GzDecoder::new(f))
            } else {
                Box::new(f)
            };
            let mut ar = tar::Archive::new(reader);
            for entry in ar.entries().map_err(|e| bad(format!("corrupt tar: {e}")))? {
                let mut entry = entry.map_err(|e| bad(format!("corrupt tar: {e}")))?;
                let et = entry.header().entry_type();
                if !(et.is_file() || et.is_dir()) {
                    continue; // links and specials are not data
                }
                let unpacked = entry
                    .unpack_in(dest)
                    .map_err(|e| bad(format!("corrupt tar: {e}")))?;
                if !unpacked {
                    return Err(bad("unsafe path in archive".into()));
                }
            }
        }
    }
    Ok(())
}

/// If `dir` holds exactly one folder and nothing else, descend into it.
fn single_child(dir: &Path) -> PathBuf {
    let entries: Vec<PathBuf> = fs::read_dir(dir)
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    if entries.len() == 1 && entries[0].is_dir() {
        entries[0].clone()
    } else {
        dir.to_path_buf()
    }
}

/// Prepare `src` (folder, archive or URL) for reading; temporary files go under `work_dir`.
pub fn prepare(
    src: &str,
    work_dir: &Path,
    sha256: Option<&str>,
    progress: Progress<'_>,
) -> Result<Prepared> {
    let path = if is_url(src) {
        download(src, &work_dir.join("downloads"), sha256, progress)?
    } else {
        let p = PathBuf::from(src);
        if !p.exists() {
            return Err(DatasetError::Source(format!(
                "{src}: no such file or folder"
            )));
        }
        if sha256.is_some() && p.is_file() {
            let mut h = Sha256::new();
            std::io::copy(&mut fs::File::open(&p)?, &mut h)?;
            let got = hex::encode(h.finalize());
            if let Some(e) = sha256
                && !got.eq_ignore_ascii_case(e.trim())
            {
                return Err(DatasetError::Source(format!(
                    "{src}: SHA-256 mismatch: expected {e}, got {got}"
                )));
            }
        }
        p
    };
    if path.is_dir() {
        return Ok(Prepared {
            root: path,
            _temp: None,
        });
    }
    fs::create_dir_all(work_dir)?;
    let tmp = tempfile::Builder::new()
        .prefix("unpack-")
        .tempdir_in(work_dir)?;
    unpack(&path, tmp.path())?;
    let root = single_child(tmp.path());
    Ok(Prepared {
        root,
        _temp: Some(tmp),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tar_gz_round_trip_and_single_child() {
        let t = tempfile::tempdir().unwrap();
        let src = t.path().join("ds");
        fs::create_dir_all(src.join("a")).unwrap();
        fs::write(src.join("a/x.txt"), b"hi").unwrap();
        let tgz = t.path().join("ds.tar.gz");
        {
            let f = fs::File::create(&tgz).unwrap();
            let enc = flate2::write::GzEncoder::new(f, flate2::Compression::fast());
            let mut b = tar::Builder::new(enc);
            b.append_dir_all("ds", &src).unwrap();
            b.into_inner().unwrap().finish().unwrap();
        }
        let p = prepare(
            tgz.to_str().unwrap(),
            &t.path().join("work"),
            None,
            &mut |_, _| {},
        )
        .unwrap();
        assert_eq!(fs::read(p.root.join("a/x.txt")).unwrap(), b"hi");
    }

    #[test]
    fn zip_with_escaping_path_is_refused() {
        let t = tempfile::tempdir().unwrap();
        let zp = t.path().join("evil.zip");
        {
            let f = fs::File::create(&zp).unwrap();
            let mut z = zip::ZipWriter::new(f);
            z.start_file("../evil.txt", zip::write::FileOptions::default())
                .unwrap();
            z.write_all(b"x").unwrap();
            z.finish().unwrap();
        }
        let err = unpack(&zp, &t.path().join("out")).unwrap_err().to_string();
        assert!(err.contains("unsafe path"), "{err}");
        assert!(!t.path().join("evil.txt").exists());
    }

    #[test]
    fn content_range_header() {
        assert_eq!(content_range("bytes 100-199/200"), Some((100, Some(200))));
        assert_eq!(content_range("bytes 5-9/*"), Some((5, None)));
        assert_eq!(content_range("items 1-2/3"), None);
    }

    #[test]
    fn missing_source() {
        let err = prepare("/nonexistent/x", Path::new("/tmp"), None, &mut |_, _| {}).unwrap_err();
        assert!(err.to_string().contains("no such file"));
    }
}
