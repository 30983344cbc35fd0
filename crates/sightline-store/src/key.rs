//! Artifact keys: relative, `/`-separated paths that cannot escape the store.

use std::fmt;

/// Prefix of in-flight temporary files; keys may not use it.
pub(crate) const TEMP_PREFIX: &str = ".sightline-tmp-";

/// A validated artifact key such as `experiments/20260101-120000/weights/best.safetensors`.
///
/// Rejected: empty keys or segments, absolute paths, `.` and `..` segments, backslashes,
/// drive letters (`C:`), control characters, and names reserved for temporary files.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key(String);

/// Why a key is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid artifact key `{key}`: {reason}")]
pub struct KeyError {
    /// The key as given.
    pub key: String,
    /// What is wrong.
    pub reason: &'static str,
}

impl Key {
    /// Validate a key.
    pub fn new(key: impl Into<String>) -> Result<Self, KeyError> {
        let key = key.into();
        let err = |reason| {
            Err(KeyError {
                key: key.escape_debug().to_string(),
                reason,
            })
        };
        if key.is_empty() {
            return err("it is empty");
        }
        if key.starts_with('/') {
            return err("absolute paths are not allowed");
        }
        if key.contains('\\') {
            return err("use `/` as the separator, not `\\`");
        }
        if key.chars().any(char::is_control) {
            return err("control characters are not allowed");
        }
        if key.len() >= 2 && key.as_bytes()[1] == b':' {
            return err("drive letters are not allowed");
        }
        for segment in key.split('/') {
            match segment {
                "" => return err("empty path segment (`//` or a trailing `/`)"),
                "." | ".." => return err("`.` and `..` segments are not allowed"),
                s if s.starts_with(TEMP_PREFIX) => {
                    return err("names starting with `.sightline-tmp-` are reserved");
                }
                _ => {}
            }
        }
        Ok(Key(key))
    }

    /// Join a relative path below this key.
    pub fn join(&self, rest: &str) -> Result<Key, KeyError> {
        Key::new(format!("{}/{}", self.0, rest))
    }

    /// The key text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The segments.
    pub fn segments(&self) -> impl Iterator<Item = &str> {
        self.0.split('/')
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for Key {
    type Err = KeyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Key::new(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_normal_keys() {
        for k in [
            "a",
            "experiments/20260101-120000/metrics.json",
            "reports/m-v1/report.html",
            "with space/ü.txt",
            "..hidden/x",
        ] {
            assert!(Key::new(k).is_ok(), "{k}");
        }
    }

    #[test]
    fn rejects_escapes() {
        for k in [
            "",
            "/etc/passwd",
            "../x",
            "a/../../x",
            "a/./b",
            "a//b",
            "a/",
            "a\\..\\b",
            "C:/x",
            "a\0b",
            "a/.sightline-tmp-1",
        ] {
            assert!(Key::new(k).is_err(), "{k:?}");
        }
    }

    #[test]
    fn join_validates() {
        let k = Key::new("experiments/x").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            k.join("weights/best").map(|k| k.to_string()),
            Ok("experiments/x/weights/best".to_string())
        );
        assert!(k.join("../../y").is_err());
    }
}
