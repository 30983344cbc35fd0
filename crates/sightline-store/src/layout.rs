//! The seed's artifact layout: `experiments/<timestamp>/…` for training runs and `reports/…`
//! for evaluation reports. Timestamps are UTC `YYYYMMDD-HHMMSS`, which sort by time.

use chrono::{DateTime, Utc};

use crate::{ArtifactStore, Key, KeyError, StoreError};

/// Top folder of training runs.
pub const EXPERIMENTS: &str = "experiments";
/// Top folder of evaluation reports.
pub const REPORTS: &str = "reports";

/// A folder-name timestamp: `YYYYMMDD-HHMMSS` (UTC).
pub fn timestamp(at: DateTime<Utc>) -> String {
    at.format("%Y%m%d-%H%M%S").to_string()
}

/// `experiments/<name>`.
pub fn experiment(name: &str) -> Result<Key, KeyError> {
    Key::new(format!("{EXPERIMENTS}/{name}"))
}

/// `reports/<name>`.
pub fn report(name: &str) -> Result<Key, KeyError> {
    Key::new(format!("{REPORTS}/{name}"))
}

/// A new, unused experiment folder for a run started at `at`: `experiments/<timestamp>`, with
/// `-2`, `-3`… appended when a run of the same second already has that name.
pub async fn new_experiment(store: &ArtifactStore, at: DateTime<Utc>) -> Result<Key, StoreError> {
    let base = timestamp(at);
    let mut n = 1u32;
    loop {
        let name = if n == 1 {
            base.clone()
        } else {
            format!("{base}-{n}")
        };
        let key = experiment(&name)?;
        if store.list(key.as_str()).await?.is_empty() {
            return Ok(key);
        }
        n += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn timestamps_sort_and_read() {
        let at = Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).single();
        assert_eq!(at.map(timestamp).as_deref(), Some("20260102-030405"));
        assert_eq!(
            experiment("20260102-030405").map(|k| k.to_string()),
            Ok("experiments/20260102-030405".to_string())
        );
        assert!(report("../x").is_err());
    }
}
