//! The progress protocol: each [`TrainEvent`] the trainer prints is folded into its job (epoch,
//! batch, losses, metrics, the experiment it records) with an ETA from the pace since `start`.

use super::*;

/// Fold one progress event of the trainer into the job.
pub(super) fn apply_event(j: &mut Job, ev: &TrainEvent, started: Option<(Instant, u64)>) {
    let p = &mut j.progress;
    match ev {
        TrainEvent::Start(s) => {
            j.experiment = Some(s.experiment.clone());
            j.experiment_url = Some(format!("/experiments/{}", s.experiment));
            p.epochs = Some(u64::from(s.epochs));
            p.epochs_completed = s.resume_from_epoch as u64;
        }
        TrainEvent::Batch(b) => {
            p.epoch = Some(b.epoch as u64);
            p.epochs = Some(b.epochs as u64);
            p.batch = Some(b.batch as u64);
            p.batches = Some(b.batches as u64);
            p.losses = serde_json::to_value(&b.losses).unwrap_or_default();
        }
        TrainEvent::Epoch(r) => {
            p.epoch = Some(r.epoch as u64);
            p.epochs_completed = r.epoch as u64 + 1;
            p.losses = serde_json::to_value(&r.losses).unwrap_or_default();
            p.metrics = serde_json::to_value(&r.metrics).unwrap_or_default();
            p.fitness = Some(r.fitness);
        }
        TrainEvent::Done(d) => {
            j.experiment = Some(d.experiment.clone());
            j.experiment_url = Some(format!("/experiments/{}", d.experiment));
            // the event as the trainer printed it (keys sorted, with its `event` tag)
            j.result = Some(ev.to_value());
            return;
        }
    }
    p.eta_s = eta(p, started);
}

/// Seconds left, from the fraction of the run done since the trainer's `start` event.
pub(super) fn eta(p: &JobProgress, started: Option<(Instant, u64)>) -> Option<f64> {
    let (t0, first) = started?;
    let epochs = p.epochs? as f64;
    let first = first as f64;
    let pos = match (p.batch, p.batches, p.epoch) {
        (Some(b), Some(n), Some(e)) if n > 0 && e + 1 > p.epochs_completed => {
            e as f64 + (b + 1) as f64 / n as f64
        }
        _ => p.epochs_completed as f64,
    };
    let done = (pos - first) / (epochs - first);
    if !(done > 0.0 && done.is_finite()) {
        return None;
    }
    let elapsed = t0.elapsed().as_secs_f64();
    Some((elapsed * (1.0 - done) / done).max(0.0))
}
