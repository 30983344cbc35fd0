//! Deterministic train/val/test assignment for images that have no split in the source.
//!
//! Images are grouped by a stratum (their image-level label, else their most frequent
//! instance label, else `none`); inside a group they are ordered by the md5 of their content
//! and cut at the cumulative ratios, so every label gets its share and the result depends on
//! the data only.

use crate::error::{DatasetError, Result};
use crate::model::{Dataset, Split};
use std::collections::{BTreeMap, HashMap};

/// Train/val/test ratios.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Ratios {
    /// Fraction for train.
    pub train: f64,
    /// Fraction for val.
    pub val: f64,
    /// Fraction for test.
    pub test: f64,
}

impl Default for Ratios {
    fn default() -> Self {
        Self {
            train: 0.8,
            val: 0.2,
            test: 0.0,
        }
    }
}

impl Ratios {
    /// Parse `0.8,0.1,0.1` or `80/10/10` (normalized to sum 1).
    pub fn parse(s: &str) -> Result<Ratios> {
        let parts: Vec<f64> = s
            .split([',', '/', ':'])
            .map(|p| p.trim().parse::<f64>())
            .collect::<std::result::Result<_, _>>()
            .map_err(|_| {
                DatasetError::Format(format!("split ratios {s:?}: expected e.g. 0.8,0.1,0.1"))
            })?;
        if !(2..=3).contains(&parts.len()) || parts.iter().any(|p| !p.is_finite() || *p < 0.0) {
            return Err(DatasetError::Format(format!(
                "split ratios {s:?}: two or three non-negative numbers"
            )));
        }
        let sum: f64 = parts.iter().sum();
        if sum <= 0.0 {
            return Err(DatasetError::Format(format!(
                "split ratios {s:?} sum to zero"
            )));
        }
        Ok(Ratios {
            train: parts[0] / sum,
            val: parts[1] / sum,
            test: parts.get(2).copied().unwrap_or(0.0) / sum,
        })
    }
}

fn stratum(img: &crate::model::ImageRecord) -> String {
    if let Some(l) = &img.label {
        return l.clone();
    }
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for i in &img.instances {
        *counts.entry(i.label.as_str()).or_insert(0) += 1;
    }
    counts
        .into_iter()
        .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(a.0)))
        .map(|(l, _)| l.to_string())
        .unwrap_or_else(|| "none".into())
}

/// Give every image without a split one; `md5` maps image `file` to its content hash.
/// Returns how many images were assigned.
pub fn assign(ds: &mut Dataset, md5: &HashMap<String, String>, ratios: Ratios) -> usize {
    let mut groups: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, img) in ds.images.iter().enumerate() {
        if img.split.is_none() {
            groups.entry(stratum(img)).or_default().push(i);
        }
    }
    let mut n = 0;
    for (_, mut idx) in groups {
        let key = |i: &usize| {
            (
                md5.get(&ds.images[*i].file).cloned().unwrap_or_default(),
                ds.images[*i].file.clone(),
            )
        };
        idx.sort_by_key(key);
        let len = idx.len() as f64;
        let cut_train = (len * ratios.train).round() as usize;
        let cut_val = (len * (ratios.train + ratios.val)).round() as usize;
        for (k, i) in idx.into_iter().enumerate() {
            ds.images[i].split = Some(if k < cut_train {
                Split::Train
            } else if k < cut_val {
                Split::Val
            } else {
                Split::Test
            });
            n += 1;
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ImageRecord;

    #[test]
    fn stratified_and_deterministic() {
        let mut ds = Dataset::default();
        let mut md5 = HashMap::new();
        for i in 0..20 {
            let mut r = ImageRecord::new(format!("{i}.jpg"), 1, 1);
            r.label = Some(if i < 10 { "ok" } else { "ng" }.into());
            md5.insert(r.file.clone(), format!("{:032x}", (i * 7919) % 101));
            ds.images.push(r);
        }
        let mut a = ds.clone();
        assign(&mut a, &md5, Ratios::parse("0.8,0.2").unwrap());
        for label in ["ok", "ng"] {
            let val = a
                .images
                .iter()
                .filter(|r| r.label.as_deref() == Some(label) && r.split == Some(Split::Val))
                .count();
            assert_eq!(val, 2, "{label}");
        }
        let mut b = ds.clone();
        b.images.reverse();
        assign(&mut b, &md5, Ratios::parse("80/20").unwrap());
        for r in &a.images {
            let other = b.images.iter().find(|x| x.file == r.file).unwrap();
            assert_eq!(other.split, r.split);
        }
    }

    #[test]
    fn existing_splits_are_kept() {
        let mut ds = Dataset::default();
        let mut r = ImageRecord::new("a.jpg", 1, 1);
        r.split = Some(Split::Test);
        ds.images.push(r);
        assert_eq!(assign(&mut ds, &HashMap::new(), Ratios::default()), 0);
        assert_eq!(ds.images[0].split, Some(Split::Test));
    }

    #[test]
    fn bad_ratios() {
        assert!(Ratios::parse("a,b").is_err());
        assert!(Ratios::parse("0,0").is_err());
        assert!(Ratios::parse("1").is_err());
    }
}
