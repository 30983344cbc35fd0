//! The shared fixtures folder and well-known paths in the repository.

use std::path::{Path, PathBuf};

/// The fixtures folder: `$SIGHTLINE_FIXTURES`, else `../shared/fixtures` beside the workspace.
///
/// # Panics
/// When the folder does not exist (with a hint to set `SIGHTLINE_FIXTURES`).
pub fn fixtures() -> PathBuf {
    let dir = std::env::var_os("SIGHTLINE_FIXTURES")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("../shared/fixtures"));
    assert!(
        dir.is_dir(),
        "fixtures not found at {} (set SIGHTLINE_FIXTURES to the shared fixtures folder)",
        dir.display()
    );
    dir
}

/// `rel` inside [`fixtures`].
///
/// # Panics
/// When the fixtures folder or `rel` in it does not exist.
pub fn fixture(rel: impl AsRef<Path>) -> PathBuf {
    let p = fixtures().join(rel);
    assert!(
        p.exists(),
        "missing fixture {} (set SIGHTLINE_FIXTURES to the shared fixtures folder)",
        p.display()
    );
    p
}

/// The workspace root (the folder holding the root `Cargo.toml`).
pub fn workspace_root() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    here.parent()
        .and_then(Path::parent)
        .map_or_else(|| here.join("../.."), Path::to_path_buf)
}

/// The seed project manifest `models/configs/widget_line_a.yaml`.
pub fn seed_manifest() -> PathBuf {
    workspace_root().join("models/configs/widget_line_a.yaml")
}

/// The ONNX Runtime shared library named by `$SIGHTLINE_ONNXRUNTIME_LIBRARY` (CI sets it).
///
/// # Panics
/// When the variable is unset or does not name a file: the tests that need ONNX Runtime fail
/// without it, they never skip.
pub fn onnxruntime_library() -> PathBuf {
    match std::env::var_os("SIGHTLINE_ONNXRUNTIME_LIBRARY").map(PathBuf::from) {
        Some(p) if p.is_file() => p,
        p => panic!(
            "set SIGHTLINE_ONNXRUNTIME_LIBRARY to an ONNX Runtime shared library \
             (libonnxruntime.so.*, pip install onnxruntime==1.32.0); got {p:?}"
        ),
    }
}
