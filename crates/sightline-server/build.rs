//! Embeds the web UI (`frontend/` at the workspace root) into the binary.
//!
//! Writes `$OUT_DIR/ui_assets.rs`: a sorted table of `(relative path, bytes, etag)` whose bytes
//! are `include_bytes!` of each file, so release and debug builds (and tests) serve the same
//! files with no run-time file access. Cargo re-runs this script when anything under
//! `frontend/` changes (a directory given to `rerun-if-changed` is scanned recursively).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let root = manifest.join("../../frontend");
    println!("cargo:rerun-if-changed={}", root.display());
    let mut files = Vec::new();
    if root.is_dir() {
        collect(&root, &root, &mut files);
    }
    files.sort();
    let mut out = String::from(
        "/// Embedded UI files: (path relative to `frontend/`, bytes, strong ETag).\n\
         pub(crate) static ASSETS: &[(&str, &[u8], &str)] = &[\n",
    );
    for (rel, abs) in &files {
        let bytes = fs_err::read(abs).expect("readable frontend file");
        let _ = writeln!(
            out,
            "    ({rel:?}, include_bytes!({:?}), \"\\\"{:016x}\\\"\"),",
            abs.display().to_string(),
            fnv1a(&bytes)
        );
    }
    out.push_str("];\n");
    let dest = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets it"));
    fs_err::write(dest.join("ui_assets.rs"), out).expect("writable OUT_DIR");
}

/// Files under `dir` (skipping hidden entries and `node_modules`), as (`a/b.js`, absolute path).
fn collect(root: &Path, dir: &Path, out: &mut Vec<(String, PathBuf)>) {
    let Ok(entries) = fs_err::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || name == "node_modules" {
            continue;
        }
        let path = e.path();
        if path.is_dir() {
            collect(root, &path, out);
        } else if let Ok(rel) = path.strip_prefix(root) {
            let rel: Vec<String> = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            let abs = path.canonicalize().unwrap_or(path);
            out.push((rel.join("/"), abs));
        }
    }
}

/// 64-bit FNV-1a: a content fingerprint for ETags (not a security hash).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}
