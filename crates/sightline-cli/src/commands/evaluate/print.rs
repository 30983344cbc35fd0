//! What `sightline evaluate` prints: the human table or the `--json` object.

use std::path::Path;

use sightline_report::Report;
use sightline_workflows::evaluate::{Evaluation, Recorded};

/// The `--json` output.
pub fn json_output(
    ev: &Evaluation,
    rec: &Recorded,
    json_path: &Path,
    html_path: &Path,
    posted: Option<serde_json::Value>,
) -> serde_json::Value {
    serde_json::json!({
        "summary": rec.details,
        "registry_summary": rec.summary,
        "report_json": json_path,
        "report_html": html_path,
        "evaluation_id": rec.evaluation_id,
        "model_version_id": rec.target.model_version_id,
        "experiment_id": rec.target.experiment_id,
        "posted": posted,
        "notes": ev.notes,
        "runtime": ev.runtime,
    })
}

/// The human output: headline numbers, the operating point, notes, where it was recorded and
/// the report's paths.
pub fn human(ev: &Evaluation, rec: &Recorded, json_path: &Path, html_path: &Path) {
    metrics(&ev.report, &ev.notes, &ev.runtime);
    let t = &rec.target;
    match (rec.evaluation_id, &t.model_display, &t.experiment_id) {
        (Some(id), m, e) => println!(
            "{:<14} evaluation {id}{}{}",
            "recorded",
            m.as_ref().map(|m| format!(" for {m}")).unwrap_or_default(),
            e.as_ref()
                .map(|e| format!(" (experiment {e})"))
                .unwrap_or_default()
        ),
        (None, _, _) => println!(
            "{:<14} not recorded: the checkpoint is neither a registered model version nor under experiments/<id>/",
            "database"
        ),
    }
    println!("{:<14} {}", "report", json_path.display());
    println!("{:<14} {}", "html", html_path.display());
}

fn metrics(r: &Report, notes: &[String], runtime: &str) {
    println!("{:<14} {}", "model", r.model);
    println!("{:<14} {runtime}", "runtime");
    println!(
        "{:<14} {} ({} images, split {})",
        "data",
        r.dataset.version.as_deref().unwrap_or(&r.dataset.source),
        r.dataset.images,
        r.dataset.split
    );
    let mut rows: Vec<(&str, f64)> = Vec::new();
    if let Some(d) = &r.detection {
        if let Some(b) = &d.coco_box {
            rows.push(("box mAP50-95", b[0]));
            rows.push(("box mAP50", b[1]));
        }
        if let Some(m) = &d.coco_mask {
            rows.push(("mask mAP50-95", m[0]));
            rows.push(("mask mAP50", m[1]));
        }
        rows.push(("P (best F1)", d.mp));
        rows.push(("R (best F1)", d.mr));
    }
    if let Some(c) = &r.classification {
        rows.extend([
            ("top-1", c.top1),
            ("top-5", c.top5),
            ("macro F1", c.macro_f1),
            ("ECE", c.ece),
        ]);
    }
    if let Some(o) = &r.operating {
        rows.push(("NG rate", o.ng_rate));
        rows.push(("unknown rate", o.unknown_rate));
    }
    for (k, v) in rows {
        println!("{k:<14} {v:.4}");
    }
    if let Some(o) = &r.operating {
        for p in &o.per_class {
            println!(
                "{:<14} thr {:.2}: P {:.3} R {:.3} F1 {:.3}{}",
                p.name,
                p.point.threshold,
                p.point.precision,
                p.point.recall,
                p.point.f1,
                p.suggested_threshold
                    .map(|s| format!(" (suggested thr {s:.3})"))
                    .unwrap_or_default()
            );
        }
        for rule in &o.rules {
            println!(
                "{:<14} {} {}",
                rule.rule,
                if rule.passed { "PASS" } else { "FAIL" },
                rule.detail
            );
        }
    }
    for n in notes {
        println!("{:<14} {n}", "note");
    }
}
