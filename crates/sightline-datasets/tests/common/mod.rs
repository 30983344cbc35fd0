//! Shared helpers for the integration tests.
#![allow(dead_code, missing_docs)]

use std::path::PathBuf;

/// The shared fixtures folder (`SIGHTLINE_FIXTURES` or `../../../shared/fixtures`); panics when missing.
pub fn fixtures() -> PathBuf {
    let p = std::env::var_os("SIGHTLINE_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures")
        });
    assert!(
        p.join("widgets-a").is_dir(),
        "fixtures missing at {}",
        p.display()
    );
    p
}

pub fn widgets() -> PathBuf {
    fixtures().join("widgets-a")
}
