//! Prometheus metrics, kept in memory and rendered as text exposition format at `GET /metrics`.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// Upper bounds (seconds) of the latency histogram buckets.
pub const LATENCY_BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// A cumulative histogram.
#[derive(Debug, Default)]
struct Histogram {
    counts: [u64; LATENCY_BUCKETS.len()],
    count: u64,
    sum: f64,
}

/// All server metrics.
#[derive(Debug, Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, String, u16), u64>>,
    latency: Mutex<BTreeMap<String, Histogram>>,
    verdicts: Mutex<BTreeMap<(String, String), u64>>,
    model_versions: Mutex<BTreeMap<(String, String), i64>>,
    /// Images waiting in the batching queues.
    pub inference_queue_depth: AtomicI64,
    /// Records waiting in the request-log queue.
    pub log_queue_depth: AtomicI64,
    /// Request-log records dropped because the queue was full.
    pub log_dropped_total: AtomicU64,
    /// Request-log records that failed to be written.
    pub log_write_errors_total: AtomicU64,
    /// Deployments that failed (the previous model kept serving).
    pub deploy_failures_total: AtomicU64,
    /// Successful deployments (model swaps).
    pub deploys_total: AtomicU64,
}

impl Metrics {
    /// Count one HTTP request by route template, method and status.
    pub fn record_request(&self, method: &str, route: &str, status: u16) {
        if let Ok(mut m) = self.requests.lock() {
            *m.entry((method.to_string(), route.to_string(), status))
                .or_default() += 1;
        }
    }

    /// Observe an inspect latency (seconds) for a project.
    pub fn observe_latency(&self, project: &str, seconds: f64) {
        if let Ok(mut m) = self.latency.lock() {
            let h = m.entry(project.to_string()).or_default();
            for (i, le) in LATENCY_BUCKETS.iter().enumerate() {
                if seconds <= *le {
                    h.counts[i] += 1;
                }
            }
            h.count += 1;
            h.sum += seconds;
        }
    }

    /// Count one verdict.
    pub fn record_verdict(&self, project: &str, verdict: &str) {
        if let Ok(mut m) = self.verdicts.lock() {
            *m.entry((project.to_string(), verdict.to_string()))
                .or_default() += 1;
        }
    }

    /// Set the served model version of a project + task.
    pub fn set_model_version(&self, project: &str, task: &str, version: i64) {
        if let Ok(mut m) = self.model_versions.lock() {
            m.insert((project.to_string(), task.to_string()), version);
        }
    }

    /// Render the Prometheus text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP sightline_http_requests_total HTTP requests by method, route and status.\n# TYPE sightline_http_requests_total counter"
        );
        if let Ok(m) = self.requests.lock() {
            for ((method, route, status), n) in m.iter() {
                let _ = writeln!(
                    out,
                    "sightline_http_requests_total{{method=\"{}\",route=\"{}\",status=\"{status}\"}} {n}",
                    esc(method),
                    esc(route)
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP sightline_inspect_latency_seconds End-to-end inspect latency.\n# TYPE sightline_inspect_latency_seconds histogram"
        );
        if let Ok(m) = self.latency.lock() {
            for (project, h) in m.iter() {
                let p = esc(project);
                for (i, le) in LATENCY_BUCKETS.iter().enumerate() {
                    let _ = writeln!(
                        out,
                        "sightline_inspect_latency_seconds_bucket{{project=\"{p}\",le=\"{le}\"}} {}",
                        h.counts[i]
                    );
                }
                let _ = writeln!(
                    out,
                    "sightline_inspect_latency_seconds_bucket{{project=\"{p}\",le=\"+Inf\"}} {}\nsightline_inspect_latency_seconds_sum{{project=\"{p}\"}} {}\nsightline_inspect_latency_seconds_count{{project=\"{p}\"}} {}",
                    h.count, h.sum, h.count
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP sightline_verdicts_total Inspection verdicts by project.\n# TYPE sightline_verdicts_total counter"
        );
        if let Ok(m) = self.verdicts.lock() {
            for ((project, verdict), n) in m.iter() {
                let _ = writeln!(
                    out,
                    "sightline_verdicts_total{{project=\"{}\",verdict=\"{}\"}} {n}",
                    esc(project),
                    esc(verdict)
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP sightline_model_version Model version being served per project and task.\n# TYPE sightline_model_version gauge"
        );
        if let Ok(m) = self.model_versions.lock() {
            for ((project, task), v) in m.iter() {
                let _ = writeln!(
                    out,
                    "sightline_model_version{{project=\"{}\",task=\"{}\"}} {v}",
                    esc(project),
                    esc(task)
                );
            }
        }
        let gauges: [(&str, &str, &str, i128); 6] = [
            (
                "sightline_inference_queue_depth",
                "gauge",
                "Images waiting for a batch.",
                i128::from(self.inference_queue_depth.load(Ordering::Relaxed)),
            ),
            (
                "sightline_log_queue_depth",
                "gauge",
                "Request-log records waiting to be written.",
                i128::from(self.log_queue_depth.load(Ordering::Relaxed)),
            ),
            (
                "sightline_log_dropped_total",
                "counter",
                "Request-log records dropped because the queue was full.",
                i128::from(self.log_dropped_total.load(Ordering::Relaxed)),
            ),
            (
                "sightline_log_write_errors_total",
                "counter",
                "Request-log records that could not be written.",
                i128::from(self.log_write_errors_total.load(Ordering::Relaxed)),
            ),
            (
                "sightline_deploys_total",
                "counter",
                "Successful model deployments.",
                i128::from(self.deploys_total.load(Ordering::Relaxed)),
            ),
            (
                "sightline_deploy_failures_total",
                "counter",
                "Failed model deployments (previous model kept).",
                i128::from(self.deploy_failures_total.load(Ordering::Relaxed)),
            ),
        ];
        for (name, kind, help, v) in gauges {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}"
            );
        }
        out
    }
}

fn esc(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_is_cumulative_and_labels_are_escaped() {
        let m = Metrics::default();
        m.observe_latency("p\"x", 0.007);
        m.observe_latency("p\"x", 0.3);
        m.record_verdict("p\"x", "ng");
        let text = m.render();
        assert!(text.contains(
            "sightline_inspect_latency_seconds_bucket{project=\"p\\\"x\",le=\"0.005\"} 0"
        ));
        assert!(text.contains(
            "sightline_inspect_latency_seconds_bucket{project=\"p\\\"x\",le=\"0.01\"} 1"
        ));
        assert!(
            text.contains(
                "sightline_inspect_latency_seconds_bucket{project=\"p\\\"x\",le=\"0.5\"} 2"
            )
        );
        assert!(text.contains("sightline_inspect_latency_seconds_count{project=\"p\\\"x\"} 2"));
        assert!(text.contains("sightline_verdicts_total{project=\"p\\\"x\",verdict=\"ng\"} 1"));
    }
}
