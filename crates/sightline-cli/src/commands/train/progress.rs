//! Progress of a run: an indicatif bar and epoch lines on stderr, or with `--json` the
//! workflow's [`TrainEvent`]s as JSON lines on stdout (`batch` thinned to every
//! [`BATCH_EVERY`] batches and the last of each epoch). Human notes go to stderr either way.

use sightline_workflows::train::{TrainEvent, TrainObserver};

/// A `batch` JSON event every this many batches (and at the last batch of each epoch).
pub const BATCH_EVERY: usize = 10;

/// The progress printer of `sightline train`.
pub(crate) struct Progress {
    json: bool,
    bar: indicatif::ProgressBar,
}

impl Progress {
    pub(crate) fn new(json: bool) -> Self {
        let bar = if json {
            indicatif::ProgressBar::hidden()
        } else {
            let b = indicatif::ProgressBar::new(0);
            b.set_style(
                indicatif::ProgressStyle::with_template(
                    "epoch {prefix} [{bar:25}] {pos}/{len} batches {msg} (ETA {eta})",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            b
        };
        Self { json, bar }
    }

    /// Clears the bar (the run has ended).
    pub(crate) fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

/// Whether `--json` prints this event (every start, epoch and done; every
/// [`BATCH_EVERY`]th batch and the last of an epoch).
pub(crate) fn printed(ev: &TrainEvent) -> bool {
    match ev {
        TrainEvent::Batch(p) => {
            (p.batch + 1).is_multiple_of(BATCH_EVERY) || p.batch + 1 == p.batches
        }
        _ => true,
    }
}

impl TrainObserver for Progress {
    fn event(&self, ev: &TrainEvent) {
        if self.json {
            if printed(ev) {
                println!("{}", ev.to_json_line());
            }
            return;
        }
        match ev {
            TrainEvent::Start(s) => eprintln!(
                "experiment {} ({}): {} train / {} val images, classes {}",
                s.experiment,
                s.dir.display(),
                s.train_images,
                s.val_images,
                s.names.join(", ")
            ),
            TrainEvent::Batch(p) => {
                let losses: String = p
                    .losses
                    .0
                    .iter()
                    .map(|(k, v)| format!("{k} {v:.3}"))
                    .collect::<Vec<_>>()
                    .join(" ");
                if p.batch == 0 {
                    self.bar.reset();
                    self.bar.set_length(p.batches as u64);
                    self.bar.set_prefix(format!("{}/{}", p.epoch + 1, p.epochs));
                }
                self.bar.set_position((p.batch + 1) as u64);
                self.bar.set_message(losses);
            }
            TrainEvent::Epoch(r) => {
                let metrics: String = r
                    .metrics
                    .iter()
                    .map(|(k, v)| format!("{k} {v:.3}"))
                    .collect::<Vec<_>>()
                    .join(" ");
                self.bar.println(format!(
                    "epoch {}: loss {:.4}  {metrics}  fitness {:.4}  {:.1}s",
                    r.epoch + 1,
                    r.losses.values().sum::<f64>(),
                    r.fitness,
                    r.time_s
                ));
            }
            TrainEvent::Done(_) => {}
        }
    }

    fn note(&self, note: &str) {
        eprintln!("{note}");
    }
}
