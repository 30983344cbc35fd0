//! Redactions that make JSON outputs snapshot-stable: ids, timestamps, durations and paths are
//! replaced by placeholders (`"[id]"`, `"[timestamp]"`, …) while the shape stays visible.
//!
//! ```
//! use serde_json::json;
//! use sightline_testkit::Redactions;
//! let r = Redactions::new().key("id", "[id]").path("/tmp/x", "[home]");
//! let v = r.apply(&json!({"id": 7, "created_at": "2026-01-01T00:00:00Z", "dir": "/tmp/x/a"}));
//! assert_eq!(v, json!({"id": "[id]", "created_at": "[timestamp]", "dir": "[home]/a"}));
//! ```

use std::path::Path;

use serde_json::Value;

/// Which values to replace; see [`Redactions::new`] for the defaults.
#[derive(Debug, Clone)]
pub struct Redactions {
    keys: Vec<(String, String)>,
    suffixes: Vec<(String, String)>,
    replacements: Vec<(String, String)>,
    timestamps: bool,
    floats: Floats,
}

/// What happens to numbers that are not integers.
#[derive(Debug, Clone)]
enum Floats {
    Keep,
    Round(i32),
    Replace(String),
}

impl Default for Redactions {
    fn default() -> Self {
        Self::new()
    }
}

impl Redactions {
    /// The defaults: values under keys ending in `_at` become `"[timestamp]"`, under keys ending
    /// in `_ms`, `_secs` or `_seconds` `"[duration]"`, and any string that starts like an RFC 3339
    /// timestamp (`2026-01-01T00:00…`) `"[timestamp]"`.
    pub fn new() -> Self {
        Self {
            keys: Vec::new(),
            suffixes: vec![
                ("_at".into(), "[timestamp]".into()),
                ("_ms".into(), "[duration]".into()),
                ("_secs".into(), "[duration]".into()),
                ("_seconds".into(), "[duration]".into()),
            ],
            replacements: Vec::new(),
            timestamps: true,
            floats: Floats::Keep,
        }
    }

    /// Round every non-integer number to `decimals` decimals (so that the last bits of a float
    /// computation cannot change a snapshot).
    pub fn round_floats(mut self, decimals: i32) -> Self {
        self.floats = Floats::Round(decimals);
        self
    }

    /// Replace every non-integer number by `placeholder` (values that differ between runs, such
    /// as training losses, checked by the test's own assertions instead).
    pub fn floats(mut self, placeholder: &str) -> Self {
        self.floats = Floats::Replace(placeholder.into());
        self
    }

    /// Replace every non-null value under the object key `key` (at any depth) by `placeholder`.
    pub fn key(mut self, key: &str, placeholder: &str) -> Self {
        self.keys.push((key.into(), placeholder.into()));
        self
    }

    /// Replace every non-null value under an object key ending in `suffix` by `placeholder`.
    pub fn suffix(mut self, suffix: &str, placeholder: &str) -> Self {
        self.suffixes.push((suffix.into(), placeholder.into()));
        self
    }

    /// Replace `path` (as text) inside every string by `placeholder`. Longer paths are replaced
    /// first, so a folder inside another can have its own placeholder.
    pub fn path(self, path: impl AsRef<Path>, placeholder: &str) -> Self {
        let text = path.as_ref().display().to_string();
        self.replace(&text, placeholder)
    }

    /// Replace the text `from` inside every string by `to`.
    pub fn replace(mut self, from: &str, to: &str) -> Self {
        if !from.is_empty() {
            self.replacements.push((from.into(), to.into()));
            self.replacements
                .sort_by(|a, b| b.0.len().cmp(&a.0.len()).then_with(|| a.0.cmp(&b.0)));
        }
        self
    }

    /// The redacted copy of `value`.
    pub fn apply(&self, value: &Value) -> Value {
        match value {
            Value::Object(map) => Value::Object(
                map.iter()
                    .map(|(k, v)| {
                        let v = match self.placeholder_for(k) {
                            Some(p) if !v.is_null() => Value::String(p.to_string()),
                            _ => self.apply(v),
                        };
                        (k.clone(), v)
                    })
                    .collect(),
            ),
            Value::Array(items) => Value::Array(items.iter().map(|v| self.apply(v)).collect()),
            Value::String(s) => Value::String(self.apply_str(s)),
            Value::Number(n) if n.is_f64() => match &self.floats {
                Floats::Keep => value.clone(),
                Floats::Replace(p) => Value::String(p.clone()),
                Floats::Round(d) => {
                    let scale = 10f64.powi(*d);
                    let x = n.as_f64().map_or(f64::NAN, |x| (x * scale).round() / scale);
                    serde_json::Number::from_f64(x).map_or_else(|| value.clone(), Value::Number)
                }
            },
            other => other.clone(),
        }
    }

    /// The redacted copy of a text (a whole value or output line).
    pub fn apply_str(&self, s: &str) -> String {
        if self.timestamps && looks_like_timestamp(s) {
            return "[timestamp]".into();
        }
        let mut out = s.to_string();
        for (from, to) in &self.replacements {
            out = out.replace(from.as_str(), to);
        }
        out
    }

    fn placeholder_for(&self, key: &str) -> Option<&str> {
        self.keys
            .iter()
            .find(|(k, _)| k == key)
            .or_else(|| {
                self.suffixes
                    .iter()
                    .find(|(s, _)| key.ends_with(s.as_str()))
            })
            .map(|(_, p)| p.as_str())
    }
}

/// `YYYY-MM-DDTHH:MM` (or with a space instead of `T`) at the start.
fn looks_like_timestamp(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() < 16 {
        return false;
    }
    let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
    digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
        && (b[10] == b'T' || b[10] == b' ')
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn keys_suffixes_timestamps_and_paths() {
        let r = Redactions::new()
            .key("id", "[id]")
            .path("/tmp/home", "[home]")
            .path("/tmp/home/artifacts", "[artifacts]");
        let v = json!({
            "id": "abc", "none_id": null, "finished_at": null, "started_at": 12,
            "took_ms": 3, "when": "2026-12-04 18:00:01", "name": "2026",
            "list": [{"id": 1}, "/tmp/home/a", "/tmp/home/artifacts/b"],
        });
        assert_eq!(
            r.apply(&v),
            json!({
                "id": "[id]", "none_id": null, "finished_at": null, "started_at": "[timestamp]",
                "took_ms": "[duration]", "when": "[timestamp]", "name": "2026",
                "list": [{"id": "[id]"}, "[home]/a", "[artifacts]/b"],
            })
        );
        let v = json!({"a": 0.123456, "n": 3});
        assert_eq!(
            Redactions::new().round_floats(2).apply(&v),
            json!({"a": 0.12, "n": 3})
        );
        assert_eq!(
            Redactions::new().floats("[f]").apply(&v),
            json!({"a": "[f]", "n": 3})
        );
    }
}
