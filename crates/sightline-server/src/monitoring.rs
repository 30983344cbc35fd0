//! Production monitoring per project: per-class confidence distributions over a time window
//! compared with the evaluation baseline (two-sample Kolmogorov–Smirnov statistic), verdict
//! counts, NG-ratio and unknown-rate alarms, latency percentiles. Served at
//! `GET /projects/{p}/monitoring` and as gauges in `/metrics`.
//!
//! Confidences per class: every logged detection's `(label, confidence)` plus the classifier's
//! `(top_label, confidence)`. The baseline is the newest evaluation of a production model of the
//! project whose `details` carry `confidence_samples` (`{label: [confidence, …]}`, exact KS) or
//! `confidence_histograms` (`{label: [10 counts]}`, KS on the binned distributions).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use axum::Json;
use axum::extract::{Path, Query, State};
use serde::Serialize;
use sightline_core::inspection::{BaselineDistribution as Baseline, ConfidenceBaseline};

use crate::AppState;
use crate::error::ApiError;

/// Histogram bins over `[0, 1]` (the inspection policy's).
pub const BINS: usize = sightline_core::inspection::HISTOGRAM_BINS;
/// Most requests of a window that are looked at (the newest).
pub const WINDOW_CAP: i64 = 50_000;
/// Unknown rate above which the alarm is raised when `allow_unknown: true` (with
/// `allow_unknown: false` any unknown raises it).
pub const UNKNOWN_ALARM_RATE: f64 = 0.2;
/// Default window (seconds).
pub const DEFAULT_WINDOW_S: i64 = 3600;

/// Monitoring of one project over a window.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Monitoring {
    /// Project.
    pub project: String,
    /// Window length (seconds).
    pub window_s: i64,
    /// Window start (RFC 3339).
    pub from: String,
    /// Window end (RFC 3339).
    pub to: String,
    /// Requests in the window (at most [`WINDOW_CAP`] looked at).
    pub requests: u64,
    /// Verdict counts.
    pub verdicts: BTreeMap<String, u64>,
    /// NG ratio vs the business rule.
    pub ng_ratio: NgAlarm,
    /// Unknown rate vs the business rule.
    pub unknown_rate: UnknownAlarm,
    /// Latency percentiles (ms).
    pub latency_ms: Latency,
    /// Per-class confidence distributions.
    pub classes: Vec<ClassStats>,
    /// Where the baseline came from (`null`: no evaluation with confidences).
    pub baseline: Option<BaselineRef>,
}

/// NG ratio and its alarm.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct NgAlarm {
    /// NG / requests (`null` without requests).
    pub value: Option<f64>,
    /// The project's `max_ng_ratio`.
    pub max_ng_ratio: Option<f64>,
    /// Whether the ratio exceeds it.
    pub alarm: bool,
}

/// Unknown rate and its alarm.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct UnknownAlarm {
    /// Unknown / requests (`null` without requests).
    pub value: Option<f64>,
    /// The project's `allow_unknown`.
    pub allow_unknown: bool,
    /// Highest acceptable rate (0 when unknowns are not allowed).
    pub max: f64,
    /// Whether the rate exceeds it.
    pub alarm: bool,
}

/// Latency percentiles.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Latency {
    /// Median.
    pub p50: Option<f64>,
    /// 99th percentile.
    pub p99: Option<f64>,
}

/// A confidence distribution.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Distribution {
    /// Samples.
    pub count: u64,
    /// Mean (`null` without samples).
    pub mean: Option<f64>,
    /// Counts in [`BINS`] equal bins over [0, 1].
    pub histogram: Vec<u64>,
}

/// One class.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ClassStats {
    /// Label.
    pub label: String,
    /// Samples in the window.
    pub count: u64,
    /// Mean confidence in the window.
    pub mean: Option<f64>,
    /// Window histogram ([`BINS`] bins over [0, 1]).
    pub histogram: Vec<u64>,
    /// The evaluation baseline of this class.
    pub baseline: Option<Distribution>,
    /// Two-sample KS statistic window vs baseline (`null` when either side is empty).
    pub ks: Option<f64>,
}

/// The evaluation the baseline came from.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct BaselineRef {
    /// Model version.
    pub model_version_id: i64,
    /// Evaluation id.
    pub evaluation_id: i64,
}

/// Bin index of a confidence, and histogram of samples (the inspection policy's bins).
pub use sightline_core::inspection::{histogram, histogram_bin as bin};

/// Two-sample Kolmogorov–Smirnov statistic: the largest gap between the empirical CDFs.
pub fn ks_statistic(a: &[f64], b: &[f64]) -> Option<f64> {
    if a.is_empty() || b.is_empty() {
        return None;
    }
    let mut a = a.to_vec();
    let mut b = b.to_vec();
    a.sort_by(f64::total_cmp);
    b.sort_by(f64::total_cmp);
    let (na, nb) = (a.len() as f64, b.len() as f64);
    let (mut i, mut j, mut d) = (0usize, 0usize, 0f64);
    while i < a.len() && j < b.len() {
        let x = a[i].min(b[j]);
        while i < a.len() && a[i] <= x {
            i += 1;
        }
        while j < b.len() && b[j] <= x {
            j += 1;
        }
        d = d.max((i as f64 / na - j as f64 / nb).abs());
    }
    Some(d)
}

/// KS statistic between two binned distributions (gap between the CDFs at the bin edges).
pub fn ks_binned(a: &[u64], b: &[u64]) -> Option<f64> {
    let (na, nb) = (a.iter().sum::<u64>(), b.iter().sum::<u64>());
    if na == 0 || nb == 0 {
        return None;
    }
    let (mut ca, mut cb, mut d) = (0u64, 0u64, 0f64);
    for (x, y) in a.iter().zip(b) {
        ca += x;
        cb += y;
        d = d.max((ca as f64 / na as f64 - cb as f64 / nb as f64).abs());
    }
    Some(d)
}

/// Nearest-rank percentile of sorted values.
pub fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// `(label, confidence)` pairs of one logged response.
pub fn confidences(response: &serde_json::Value) -> Vec<(String, f64)> {
    let mut out = Vec::new();
    for d in response["detections"].as_array().into_iter().flatten() {
        if let (Some(l), Some(c)) = (d["label"].as_str(), d["confidence"].as_f64()) {
            out.push((l.to_string(), c));
        }
    }
    let c = &response["classification"];
    if let (Some(l), Some(p)) = (c["top_label"].as_str(), c["confidence"].as_f64()) {
        out.push((l.to_string(), p));
    }
    out
}

fn mean(v: &[f64]) -> Option<f64> {
    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
}

async fn baseline(
    state: &AppState,
    project: &str,
) -> Result<(BTreeMap<String, Baseline>, Option<BaselineRef>), ApiError> {
    let aliases = state.registry().aliases(Some(project), None).await?;
    let mut out = BTreeMap::new();
    let mut reference = None;
    for a in aliases
        .iter()
        .filter(|a| a.alias == sightline_registry::PRODUCTION)
    {
        let model = state.registry().get(a.model_version_id).await?;
        let evals = state.registry().evaluations(&model).await?;
        let Some((e, b)) = evals
            .iter()
            .find_map(|e| ConfidenceBaseline::from_details(&e.details).map(|b| (e, b)))
        else {
            continue;
        };
        out.extend(b.distributions());
        reference.get_or_insert(BaselineRef {
            model_version_id: model.id,
            evaluation_id: e.id,
        });
    }
    Ok((out, reference))
}

/// Compute the monitoring of `project` over the last `window_s` seconds.
pub async fn compute(
    state: &AppState,
    project: &str,
    window_s: i64,
) -> Result<Monitoring, ApiError> {
    let db = state.registry().db();
    let p = sightline_db::projects::get(db, project).await?;
    let rules = p.manifest.business_rules.clone();
    let to = chrono::Utc::now();
    let from = to - chrono::Duration::seconds(window_s);
    let rows = sightline_db::inference_log::window(db, project, from, WINDOW_CAP).await?;
    let mut verdicts: BTreeMap<String, u64> = ["ok", "ng", "unknown"]
        .iter()
        .map(|v| (v.to_string(), 0))
        .collect();
    let mut latencies = Vec::with_capacity(rows.len());
    let mut per_class: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for r in &rows {
        *verdicts.entry(r.verdict.clone()).or_default() += 1;
        latencies.push(r.latency_ms);
        for (l, c) in confidences(&r.response.0) {
            per_class.entry(l).or_default().push(c);
        }
    }
    latencies.sort_by(f64::total_cmp);
    let n = rows.len() as u64;
    let rate = |k: &str| (n > 0).then(|| verdicts.get(k).copied().unwrap_or(0) as f64 / n as f64);
    let ng = rate("ng");
    let unknown = rate("unknown");
    let unknown_max = if rules.allow_unknown {
        UNKNOWN_ALARM_RATE
    } else {
        0.0
    };
    let (base, reference) = baseline(state, project).await?;
    let mut labels: Vec<String> = p.label_names();
    for l in per_class.keys().chain(base.keys()) {
        if !labels.contains(l) {
            labels.push(l.clone());
        }
    }
    let classes = labels
        .into_iter()
        .map(|label| {
            let samples = per_class.get(&label).cloned().unwrap_or_default();
            let hist = histogram(&samples);
            let (baseline, ks) = match base.get(&label) {
                Some(Baseline::Samples(s)) => (
                    Some(Distribution {
                        count: s.len() as u64,
                        mean: mean(s),
                        histogram: histogram(s),
                    }),
                    ks_statistic(&samples, s),
                ),
                Some(Baseline::Histogram(h)) => {
                    // Mean from bin centres.
                    let total: u64 = h.iter().sum();
                    let m = (total > 0).then(|| {
                        h.iter()
                            .enumerate()
                            .map(|(i, &c)| (i as f64 + 0.5) / BINS as f64 * c as f64)
                            .sum::<f64>()
                            / total as f64
                    });
                    (
                        Some(Distribution {
                            count: total,
                            mean: m,
                            histogram: h.clone(),
                        }),
                        ks_binned(&hist, h),
                    )
                }
                None => (None, None),
            };
            ClassStats {
                label,
                count: samples.len() as u64,
                mean: mean(&samples),
                histogram: hist,
                baseline,
                ks,
            }
        })
        .collect();
    Ok(Monitoring {
        project: project.to_string(),
        window_s,
        from: from.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        to: to.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        requests: n,
        verdicts,
        ng_ratio: NgAlarm {
            value: ng,
            max_ng_ratio: rules.max_ng_ratio,
            alarm: matches!((ng, rules.max_ng_ratio), (Some(v), Some(m)) if v > m),
        },
        unknown_rate: UnknownAlarm {
            value: unknown,
            allow_unknown: rules.allow_unknown,
            max: unknown_max,
            alarm: unknown.is_some_and(|u| u > unknown_max),
        },
        latency_ms: Latency {
            p50: percentile(&latencies, 50.0),
            p99: percentile(&latencies, 99.0),
        },
        classes,
        baseline: reference,
    })
}

/// Monitoring options.
#[derive(Debug, Default, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MonitoringQuery {
    /// Window in seconds (60 .. 30 days; default 3600).
    pub window: Option<i64>,
}

/// Per-class confidence distributions vs the evaluation baseline (KS), verdict counts, NG-ratio
/// and unknown-rate alarms, latency p50/p99 over a window.
#[utoipa::path(get, path = "/projects/{project}/monitoring", params(("project" = String, Path), MonitoringQuery),
    responses((status = 200, body = Monitoring), (status = 400, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
pub async fn monitoring(
    State(state): State<AppState>,
    Path(project): Path<String>,
    Query(q): Query<MonitoringQuery>,
) -> Result<Json<Monitoring>, ApiError> {
    let window = q.window.unwrap_or(DEFAULT_WINDOW_S);
    if !(60..=30 * 86_400).contains(&window) {
        return Err(ApiError::BadRequest(
            "window must be between 60 seconds and 30 days (2592000)".into(),
        ));
    }
    Ok(Json(compute(&state, &project, window).await?))
}

fn esc(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Prometheus gauges of every project's monitoring over [`DEFAULT_WINDOW_S`].
pub async fn gauges(state: &AppState) -> String {
    let Ok(projects) = sightline_db::projects::list(state.registry().db()).await else {
        return String::new();
    };
    let mut all = Vec::new();
    for p in projects {
        match compute(state, &p.name, DEFAULT_WINDOW_S).await {
            Ok(m) => all.push(m),
            Err(e) => tracing::warn!(project = %p.name, error = %e, "monitoring gauges"),
        }
    }
    let mut out = String::new();
    let families: [(&str, &str); 4] = [
        ("sightline_ng_ratio", "NG ratio over the last hour."),
        (
            "sightline_ng_ratio_alarm",
            "1 when the NG ratio of the last hour exceeds max_ng_ratio.",
        ),
        ("sightline_unknown_rate", "Unknown rate over the last hour."),
        (
            "sightline_unknown_rate_alarm",
            "1 when the unknown rate of the last hour exceeds what the business rules allow.",
        ),
    ];
    for (i, (name, help)) in families.iter().enumerate() {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
        for m in &all {
            let v = match i {
                0 => m.ng_ratio.value.unwrap_or(0.0),
                1 => f64::from(u8::from(m.ng_ratio.alarm)),
                2 => m.unknown_rate.value.unwrap_or(0.0),
                _ => f64::from(u8::from(m.unknown_rate.alarm)),
            };
            let _ = writeln!(out, "{name}{{project=\"{}\"}} {v}", esc(&m.project));
        }
    }
    let _ = writeln!(
        out,
        "# HELP sightline_confidence_mean Mean confidence per class over the last hour.\n# TYPE sightline_confidence_mean gauge"
    );
    for m in &all {
        for c in m.classes.iter().filter(|c| c.mean.is_some()) {
            let _ = writeln!(
                out,
                "sightline_confidence_mean{{project=\"{}\",label=\"{}\"}} {}",
                esc(&m.project),
                esc(&c.label),
                c.mean.unwrap_or(0.0)
            );
        }
    }
    let _ = writeln!(
        out,
        "# HELP sightline_confidence_ks KS statistic of the last hour's confidences vs the evaluation baseline, per class.\n# TYPE sightline_confidence_ks gauge"
    );
    for m in &all {
        for c in &m.classes {
            if let Some(ks) = c.ks {
                let _ = writeln!(
                    out,
                    "sightline_confidence_ks{{project=\"{}\",label=\"{}\"}} {ks}",
                    esc(&m.project),
                    esc(&c.label)
                );
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ks_matches_hand_computed_values() {
        assert_eq!(ks_statistic(&[0.1, 0.2], &[0.1, 0.2]), Some(0.0));
        assert_eq!(ks_statistic(&[0.1, 0.2], &[0.8, 0.9]), Some(1.0));
        // a = {0.1, 0.5, 0.9}, b = {0.4, 0.6}: at 0.1 |1/3 - 0| = 1/3, at 0.4 |1/3-1/2| ...
        let d = ks_statistic(&[0.1, 0.5, 0.9], &[0.4, 0.6]).unwrap();
        assert!((d - 1.0 / 3.0).abs() < 1e-12, "{d}");
        assert_eq!(ks_statistic(&[], &[0.5]), None);
        let h1 = histogram(&[0.05, 0.15, 1.0, 0.999]);
        assert_eq!(h1, vec![1, 1, 0, 0, 0, 0, 0, 0, 0, 2]);
        assert_eq!(ks_binned(&h1, &h1), Some(0.0));
        let mut h2 = vec![0; BINS];
        h2[9] = 4;
        assert_eq!(ks_binned(&h1, &h2), Some(0.5));
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), Some(50.0));
        assert_eq!(percentile(&v, 99.0), Some(99.0));
        assert_eq!(percentile(&[7.0], 99.0), Some(7.0));
        assert_eq!(percentile(&[], 50.0), None);
    }
}
