//! Request logging off the response path: a bounded queue drained by one writer task that
//! stores each image once by content hash under the artifact root (`images/sha256/ab/<hash>.<ext>`)
//! and inserts the rows in batches. A full queue drops the record and counts it
//! (`sightline_log_dropped_total`); shutdown closes the queue and drains every queued record.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::body::Bytes;
use sightline_db::Db;
use sightline_db::inference_log::{self, InferenceLogRow};
use tokio::sync::{Notify, mpsc};

use crate::metrics::Metrics;

/// One record to write.
pub struct LogItem {
    /// The row (its `image_path` is filled in by the writer).
    pub row: InferenceLogRow,
    /// The uploaded bytes.
    pub image: Bytes,
}

/// Handle to the logging queue.
#[derive(Clone)]
pub struct LogQueue {
    tx: mpsc::Sender<LogItem>,
    metrics: Arc<Metrics>,
    shutdown: Arc<Notify>,
}

/// Join handle of the writer; await [`LogWriter::finish`] after [`LogQueue::close`].
pub struct LogWriter {
    handle: tokio::task::JoinHandle<()>,
}

impl LogWriter {
    /// Wait until every queued record is written.
    pub async fn finish(self) {
        let _ = self.handle.await;
    }
}

impl LogQueue {
    /// Start the writer with a queue of `capacity` records.
    pub fn start(
        db: Db,
        artifacts: PathBuf,
        capacity: usize,
        metrics: Arc<Metrics>,
    ) -> (Self, LogWriter) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let shutdown = Arc::new(Notify::new());
        let handle = tokio::spawn(writer(db, artifacts, rx, metrics.clone(), shutdown.clone()));
        (
            Self {
                tx,
                metrics,
                shutdown,
            },
            LogWriter { handle },
        )
    }

    /// Queue a record without waiting; returns false (and counts it) when the queue is full.
    pub fn push(&self, item: LogItem) -> bool {
        match self.tx.try_send(item) {
            Ok(()) => {
                self.metrics.log_queue_depth.fetch_add(1, Ordering::Relaxed);
                true
            }
            Err(_) => {
                let n = self
                    .metrics
                    .log_dropped_total
                    .fetch_add(1, Ordering::Relaxed)
                    + 1;
                tracing::warn!(dropped_total = n, "request-log queue full: record dropped");
                false
            }
        }
    }

    /// Stop accepting records; the writer drains what is queued and ends.
    pub fn close(&self) {
        self.shutdown.notify_one();
    }
}

fn image_ext(bytes: &[u8]) -> &'static str {
    if bytes.starts_with(&[0x89, b'P', b'N', b'G']) {
        "png"
    } else {
        "jpg"
    }
}

fn store_image(artifacts: &std::path::Path, sha: &str, bytes: &[u8]) -> Result<String, String> {
    if sha.len() != 64 || !sha.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(format!("bad image hash `{sha}`"));
    }
    let rel = format!(
        "images/sha256/{}/{}.{}",
        &sha[..2],
        &sha[2..],
        image_ext(bytes)
    );
    let path = artifacts.join(&rel);
    if !path.exists() {
        if let Some(dir) = path.parent() {
            fs_err::create_dir_all(dir).map_err(|e| e.to_string())?;
        }
        sightline_registry::bundle::write_atomic(&path, bytes).map_err(|e| e.to_string())?;
    }
    Ok(rel)
}

async fn writer(
    db: Db,
    artifacts: PathBuf,
    mut rx: mpsc::Receiver<LogItem>,
    metrics: Arc<Metrics>,
    shutdown: Arc<Notify>,
) {
    let mut closing = false;
    loop {
        let first = if closing {
            rx.recv().await
        } else {
            tokio::select! {
                item = rx.recv() => item,
                () = shutdown.notified() => {
                    rx.close();
                    closing = true;
                    continue;
                }
            }
        };
        let Some(first) = first else { break };
        let mut items = vec![first];
        while items.len() < 256 {
            match rx.try_recv() {
                Ok(i) => items.push(i),
                Err(_) => break,
            }
        }
        let n = items.len();
        let dir = artifacts.clone();
        let rows = tokio::task::spawn_blocking(move || {
            items
                .into_iter()
                .map(|mut it| {
                    match store_image(&dir, &it.row.image_sha256, &it.image) {
                        Ok(rel) => it.row.image_path = Some(rel),
                        Err(e) => tracing::error!(error = %e, "cannot store inspected image"),
                    }
                    it.row
                })
                .collect::<Vec<_>>()
        })
        .await
        .unwrap_or_default();
        if let Err(e) = inference_log::insert_batch(&db, &rows).await {
            metrics
                .log_write_errors_total
                .fetch_add(n as u64, Ordering::Relaxed);
            tracing::error!(error = %e, records = n, "cannot write request log");
        }
        metrics
            .log_queue_depth
            .fetch_sub(n as i64, Ordering::Relaxed);
    }
}
