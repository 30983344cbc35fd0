//! Batch building for the detector: a deterministic per-epoch order and parallel (rayon)
//! augmentation of each batch from decoded, already-resized images kept in memory.
//!
//! Every sample draws its randomness from [`Rng::for_sample`]`(seed, epoch, position)`, so a
//! batch is identical whether it is built on one thread or many, and a resumed run sees the
//! same data order and augmentations as an uninterrupted one.

use crate::augment::DetSample;
use crate::augment::detect::{
    DetAugConfig, DetTargets, resize_long_side, to_targets, train_sample,
};
use crate::error::TrainError;
use crate::rng::Rng;
use image::RgbImage;
use rayon::prelude::*;
use std::path::PathBuf;

/// Decode image files to RGB in parallel (rayon), in input order, recognising the format from
/// the content (dataset objects have no extension; JPEGs through libjpeg-turbo, as PIL);
/// each failure names its file.
pub fn decode_images(paths: &[PathBuf]) -> Vec<Result<RgbImage, TrainError>> {
    paths
        .par_iter()
        .map(|p| {
            sightline_imageio::load_rgb(p).map_err(|source| TrainError::Decode {
                path: p.clone(),
                source,
            })
        })
        .collect()
}

/// Run `f` on a rayon pool of `workers` threads (0: rayon's default, one per core). Data
/// loading, augmentation and the CPU backend's kernels all run on it. Results do not depend on
/// the number of threads.
pub fn with_workers<T: Send>(
    workers: usize,
    f: impl FnOnce() -> T + Send,
) -> Result<T, TrainError> {
    if workers == 0 {
        return Ok(f());
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(workers)
        .build()
        .map_err(|source| TrainError::ThreadPool { workers, source })?;
    Ok(pool.install(f))
}

/// Decoded training images, each resized so its long side is `imgsz` (the decode cache).
#[derive(Debug, Clone)]
pub struct DetCache {
    samples: Vec<DetSample>,
}

impl DetCache {
    /// Resize every sample once (in parallel).
    pub fn new(samples: Vec<DetSample>, imgsz: u32) -> Self {
        let samples = samples
            .into_par_iter()
            .map(|s| resize_long_side(s, imgsz))
            .collect();
        Self { samples }
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.samples.len()
    }

    /// Whether there are no samples.
    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// Sample `i` (clone).
    pub fn get(&self, i: usize) -> DetSample {
        self.samples[i % self.samples.len().max(1)].clone()
    }
}

/// The shuffled sample order of `epoch`, cut into batches of `batch_size` (the last may be
/// shorter).
pub fn epoch_batches(n: usize, batch_size: usize, seed: u64, epoch: u64) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..n).collect();
    Rng::for_sample(seed, epoch, u64::MAX).shuffle(&mut order);
    order
        .chunks(batch_size.max(1))
        .map(<[usize]>::to_vec)
        .collect()
}

/// An augmented batch: images (all `imgsz` squares) and their targets.
#[derive(Debug, Clone)]
pub struct DetBatch {
    /// Augmented images.
    pub images: Vec<RgbImage>,
    /// Boxes and masks per image.
    pub targets: Vec<DetTargets>,
}

/// Augment the samples at `indices` in parallel. `position0` is the position of the batch's
/// first sample in the epoch order (it seeds each sample's generator).
pub fn build_batch(
    cache: &DetCache,
    indices: &[usize],
    position0: usize,
    cfg: &DetAugConfig,
    seed: u64,
    epoch: u64,
    mask_ratio: u32,
) -> DetBatch {
    let load = |i: usize| cache.get(i);
    let n = cache.len();
    let out: Vec<(RgbImage, DetTargets)> = indices
        .par_iter()
        .enumerate()
        .map(|(k, &i)| {
            let mut rng = Rng::for_sample(seed, epoch, (position0 + k) as u64);
            let s = train_sample(i, n, &load, cfg, &mut rng);
            let t = to_targets(&s, mask_ratio);
            (s.image, t)
        })
        .collect();
    let (images, targets) = out.into_iter().unzip();
    DetBatch { images, targets }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::augment::Instance;

    fn cache() -> DetCache {
        let samples = (0..5u32)
            .map(|i| {
                let image = RgbImage::from_fn(80 + 10 * i, 60, |x, y| {
                    image::Rgb([(x * 3) as u8, (y * 4) as u8, (i * 40) as u8])
                });
                let poly = vec![[10.0, 10.0], [50.0, 12.0], [30.0, 50.0]];
                DetSample {
                    image,
                    instances: vec![Instance {
                        class: i as usize % 2,
                        polygons: vec![poly],
                    }],
                }
            })
            .collect();
        DetCache::new(samples, 64)
    }

    #[test]
    fn order_is_a_deterministic_permutation_per_epoch() {
        let a = epoch_batches(10, 4, 3, 0);
        assert_eq!(a.iter().map(Vec::len).collect::<Vec<_>>(), vec![4, 4, 2]);
        let mut all: Vec<usize> = a.concat();
        all.sort_unstable();
        assert_eq!(all, (0..10).collect::<Vec<_>>());
        assert_eq!(a, epoch_batches(10, 4, 3, 0));
        assert_ne!(a, epoch_batches(10, 4, 3, 1));
    }

    #[test]
    fn parallel_batches_equal_serial_ones() {
        let c = cache();
        assert_eq!(c.get(0).image.dimensions(), (64, 48));
        let cfg = DetAugConfig {
            imgsz: 64,
            ..Default::default()
        };
        let par = build_batch(&c, &[3, 1, 4], 6, &cfg, 11, 2, 4);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        let ser = pool.install(|| build_batch(&c, &[3, 1, 4], 6, &cfg, 11, 2, 4));
        assert_eq!(par.images, ser.images);
        assert_eq!(par.targets, ser.targets);
        assert!(par.images.iter().all(|i| i.dimensions() == (64, 64)));
        assert!(
            par.targets
                .iter()
                .all(|t| t.mask_size == 16 && t.masks.len() == t.boxes.len())
        );
        // another position in the epoch gives another augmentation
        let other = build_batch(&c, &[3, 1, 4], 0, &cfg, 11, 2, 4);
        assert_ne!(par.images, other.images);
    }
}
