//! Run control shared by the training loops: a stop flag (Ctrl-C) and per-batch progress.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Progress of one optimisation step, for progress bars and `--json` events.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchProgress {
    /// Epoch (0-based).
    pub epoch: usize,
    /// Epochs in the run.
    pub epochs: usize,
    /// Batch within the epoch (0-based).
    pub batch: usize,
    /// Batches per epoch.
    pub batches: usize,
    /// Running mean of each loss component over the epoch so far.
    pub losses: Vec<(String, f64)>,
}

type BatchFn = dyn Fn(&BatchProgress) + Send + Sync;

/// Shared by the caller and a training loop: the caller may request a stop (the loop finishes
/// the current batch, keeps the last completed epoch's checkpoint and returns), and receives
/// batch progress.
#[derive(Clone, Default)]
pub struct TrainControl {
    stop: Arc<AtomicBool>,
    on_batch: Option<Arc<BatchFn>>,
}

impl std::fmt::Debug for TrainControl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrainControl")
            .field("stop", &self.stop_requested())
            .finish_non_exhaustive()
    }
}

impl TrainControl {
    /// A control with no progress callback.
    pub fn new() -> Self {
        Self::default()
    }

    /// Call `f` after every batch.
    pub fn with_batch_callback(
        mut self,
        f: impl Fn(&BatchProgress) + Send + Sync + 'static,
    ) -> Self {
        self.on_batch = Some(Arc::new(f));
        self
    }

    /// The flag a signal handler sets.
    pub fn stop_flag(&self) -> Arc<AtomicBool> {
        self.stop.clone()
    }

    /// Ask the loop to stop after the current batch.
    pub fn request_stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }

    /// Whether a stop was requested.
    pub fn stop_requested(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// Report one batch.
    pub fn batch(&self, p: &BatchProgress) {
        if let Some(f) = &self.on_batch {
            f(p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn stop_flag_is_shared_and_callback_runs() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        let c = TrainControl::new().with_batch_callback(move |p| s.lock().unwrap().push(p.batch));
        let c2 = c.clone();
        assert!(!c.stop_requested());
        c2.request_stop();
        assert!(c.stop_requested());
        c.batch(&BatchProgress {
            epoch: 0,
            epochs: 1,
            batch: 3,
            batches: 4,
            losses: vec![],
        });
        assert_eq!(*seen.lock().unwrap(), vec![3]);
    }
}
