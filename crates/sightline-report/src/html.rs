//! The offline `report.html`: one self-contained page (no external assets) with tables of every number and
//! inline SVG plots.

use std::fmt::Write;

use crate::svg::{Series, bar_chart, heat_map, line_chart};
use crate::{COCO_STAT_NAMES, GalleryKind, Report, escape};

fn f(v: f64) -> String {
    format!("{v:.4}")
}

fn table(out: &mut String, head: &[&str], rows: &[Vec<String>]) {
    out.push_str("<table><tr>");
    for h in head {
        let _ = write!(out, "<th>{}</th>", escape(h));
    }
    out.push_str("</tr>");
    for r in rows {
        out.push_str("<tr>");
        for c in r {
            let _ = write!(out, "<td>{}</td>", escape(c));
        }
        out.push_str("</tr>");
    }
    out.push_str("</table>");
}

/// Renders the whole report as HTML.
pub fn render(r: &Report) -> String {
    let mut o = String::new();
    let _ = write!(
        o,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Evaluation: {m}</title><style>body{{font-family:sans-serif;margin:2em;color:#222}}table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}}th{{background:#f4f4f4}}.plots svg{{margin:0 1em 1em 0}}.gallery figure{{display:inline-block;margin:0 1em 1em 0;max-width:260px;font-size:12px;vertical-align:top}}.fail{{color:#b00}}.pass{{color:#070}}</style></head><body><h1>Evaluation report: {m}</h1>",
        m = escape(&r.model)
    );
    table(
        &mut o,
        &["field", "value"],
        &[
            vec!["task".into(), crate::task_name(r.task).into()],
            vec!["config".into(), r.config_path.clone()],
            vec!["checkpoint".into(), r.checkpoint.clone()],
            vec!["checkpoint sha256".into(), r.checkpoint_sha256.clone()],
            vec![
                "dataset version".into(),
                r.dataset
                    .version
                    .clone()
                    .unwrap_or_else(|| "(none: direct path)".into()),
            ],
            vec!["dataset source".into(), r.dataset.source.clone()],
            vec!["split".into(), r.dataset.split.clone()],
            vec!["images".into(), r.dataset.images.to_string()],
            vec!["started".into(), r.started_at.clone()],
            vec!["finished".into(), r.finished_at.clone()],
        ],
    );
    if let Some(d) = &r.detection {
        o.push_str("<h2>Detection / segmentation</h2>");
        let mut rows = Vec::new();
        for (i, name) in COCO_STAT_NAMES.iter().enumerate() {
            let get = |v: &Option<Vec<f64>>| {
                v.as_ref()
                    .and_then(|s| s.get(i))
                    .map_or_else(|| "-".to_string(), |x| f(*x))
            };
            rows.push(vec![name.to_string(), get(&d.coco_box), get(&d.coco_mask)]);
        }
        o.push_str("<h3>COCO metrics</h3>");
        table(&mut o, &["stat", "box", "mask"], &rows);
        let _ = write!(
            o,
            "<h3>Per class (Ultralytics, best-F1 confidence {})</h3>",
            f(d.best_conf)
        );
        let mut rows: Vec<Vec<String>> = d
            .per_class
            .iter()
            .map(|c| {
                vec![
                    c.name.clone(),
                    c.labels.to_string(),
                    f(c.precision),
                    f(c.recall),
                    f(c.f1),
                    f(c.ap50),
                    f(c.ap50_95),
                ]
            })
            .collect();
        rows.push(vec![
            "all".into(),
            d.per_class
                .iter()
                .map(|c| c.labels)
                .sum::<usize>()
                .to_string(),
            f(d.mp),
            f(d.mr),
            "".into(),
            f(d.map50),
            f(d.map50_95),
        ]);
        table(
            &mut o,
            &["class", "labels", "P", "R", "F1", "AP50", "AP50-95"],
            &rows,
        );
        if !d.mask_per_class.is_empty() {
            o.push_str("<h3>Per class, masks (Ultralytics)</h3>");
            let mut rows: Vec<Vec<String>> = d
                .mask_per_class
                .iter()
                .map(|c| {
                    vec![
                        c.name.clone(),
                        c.labels.to_string(),
                        f(c.precision),
                        f(c.recall),
                        f(c.f1),
                        f(c.ap50),
                        f(c.ap50_95),
                    ]
                })
                .collect();
            rows.push(vec![
                "all".into(),
                "".into(),
                "".into(),
                "".into(),
                "".into(),
                d.mask_map50.map_or_else(|| "-".into(), f),
                d.mask_map50_95.map_or_else(|| "-".into(), f),
            ]);
            table(
                &mut o,
                &["class", "labels", "P", "R", "F1", "AP50", "AP50-95"],
                &rows,
            );
        }
        o.push_str("<div class=\"plots\">");
        if !d.confusion.is_empty() {
            let mut names: Vec<String> = r.class_names.clone();
            names.push("background".into());
            if names.len() == d.confusion.len() {
                o.push_str(&heat_map(
                    "Instance confusion (truth × predicted, operating point)",
                    &names,
                    &names,
                    &d.confusion,
                ));
            }
        }
        let pr: Vec<Series<'_>> = d
            .curves
            .iter()
            .map(|c| Series {
                name: &c.name,
                points: &c.pr,
            })
            .collect();
        o.push_str(&line_chart(
            "Precision-recall",
            "recall",
            "precision",
            &pr,
            false,
        ));
        let f1: Vec<Series<'_>> = d
            .curves
            .iter()
            .map(|c| Series {
                name: &c.name,
                points: &c.f1_conf,
            })
            .collect();
        o.push_str(&line_chart(
            "F1 vs confidence",
            "confidence",
            "F1",
            &f1,
            false,
        ));
        let names: Vec<String> = d.per_class.iter().map(|c| c.name.clone()).collect();
        o.push_str(&bar_chart(
            "Per-class metrics",
            &names,
            &[
                ("P", d.per_class.iter().map(|c| c.precision).collect()),
                ("R", d.per_class.iter().map(|c| c.recall).collect()),
                ("AP50", d.per_class.iter().map(|c| c.ap50).collect()),
                ("AP50-95", d.per_class.iter().map(|c| c.ap50_95).collect()),
            ],
        ));
        o.push_str("</div>");
    }
    if let Some(c) = &r.classification {
        o.push_str("<h2>Classification</h2>");
        table(
            &mut o,
            &["samples", "top-1", "top-5", "macro F1", "ECE"],
            &[vec![
                c.samples.to_string(),
                f(c.top1),
                f(c.top5),
                f(c.macro_f1),
                f(c.ece),
            ]],
        );
        let rows: Vec<Vec<String>> = c
            .per_class
            .iter()
            .map(|p| {
                vec![
                    p.name.clone(),
                    p.scores.support.to_string(),
                    f(p.scores.precision),
                    f(p.scores.recall),
                    f(p.scores.f1),
                ]
            })
            .collect();
        table(&mut o, &["class", "support", "P", "R", "F1"], &rows);
        o.push_str("<div class=\"plots\">");
        let names: Vec<String> = c.per_class.iter().map(|p| p.name.clone()).collect();
        o.push_str(&heat_map("Confusion matrix", &names, &names, &c.confusion));
        o.push_str(&bar_chart(
            "Per-class metrics",
            &names,
            &[
                (
                    "P",
                    c.per_class.iter().map(|p| p.scores.precision).collect(),
                ),
                ("R", c.per_class.iter().map(|p| p.scores.recall).collect()),
                ("F1", c.per_class.iter().map(|p| p.scores.f1).collect()),
            ],
        ));
        let rel: Vec<(f64, f64)> = c
            .reliability
            .iter()
            .filter(|b| b.count > 0)
            .map(|b| (b.confidence, b.accuracy))
            .collect();
        o.push_str(&line_chart(
            "Reliability diagram",
            "confidence",
            "accuracy",
            &[Series {
                name: "model",
                points: &rel,
            }],
            true,
        ));
        o.push_str("</div>");
    }
    if let Some(op) = &r.operating {
        o.push_str("<h2>At the operating point</h2>");
        if !op.per_class.is_empty() {
            let rows: Vec<Vec<String>> = op
                .per_class
                .iter()
                .map(|p| {
                    vec![
                        p.name.clone(),
                        f(p.point.threshold),
                        p.point.tp.to_string(),
                        p.point.fp.to_string(),
                        p.point.fn_.to_string(),
                        f(p.point.precision),
                        f(p.point.recall),
                        f(p.point.f1),
                        p.suggested_threshold.map_or_else(|| "-".into(), f),
                    ]
                })
                .collect();
            table(
                &mut o,
                &[
                    "class",
                    "threshold",
                    "TP",
                    "FP",
                    "FN",
                    "P",
                    "R",
                    "F1",
                    "suggested",
                ],
                &rows,
            );
        }
        table(
            &mut o,
            &[
                "images",
                "NG rate",
                "unknown rate",
                "accuracy",
                "escape rate",
                "overkill rate",
            ],
            &[vec![
                op.images.to_string(),
                f(op.ng_rate),
                f(op.unknown_rate),
                f(op.accuracy),
                f(op.escape_rate),
                f(op.overkill_rate),
            ]],
        );
        let cm: Vec<Vec<usize>> = op.ok_ng_confusion.iter().map(|r| r.to_vec()).collect();
        o.push_str("<div class=\"plots\">");
        o.push_str(&heat_map(
            "Image-level OK/NG",
            &["OK".into(), "NG".into()],
            &["OK".into(), "NG".into(), "unknown".into()],
            &cm,
        ));
        o.push_str("</div><h3>Business rules</h3><ul>");
        for rule in &op.rules {
            let _ = write!(
                o,
                "<li class=\"{cls}\">{st} <b>{n}</b>: {d}</li>",
                cls = if rule.passed { "pass" } else { "fail" },
                st = if rule.passed { "PASS" } else { "FAIL" },
                n = escape(&rule.rule),
                d = escape(&rule.detail)
            );
        }
        o.push_str("</ul>");
    }
    gallery(&mut o, r);
    o.push_str("</body></html>\n");
    o
}

/// The gallery of worst mistakes: one figure per thumbnail, grouped by kind.
fn gallery(o: &mut String, r: &Report) {
    if r.gallery.is_empty() {
        return;
    }
    o.push_str("<h2>Worst mistakes</h2>");
    for (kind, title) in [
        (
            GalleryKind::FalsePositive,
            "False positives (most confident first)",
        ),
        (
            GalleryKind::FalseNegative,
            "False negatives (missed objects)",
        ),
        (
            GalleryKind::Misclassified,
            "Most confident misclassifications",
        ),
    ] {
        let items: Vec<_> = r.gallery.iter().filter(|g| g.kind == kind).collect();
        if items.is_empty() {
            continue;
        }
        let _ = write!(o, "<h3>{}</h3><div class=\"gallery\">", escape(title));
        for g in items {
            // Only inline image data is allowed: a report must stay offline and self-contained.
            let src = if g.data_uri.starts_with("data:image/") {
                escape(&g.data_uri)
            } else {
                String::new()
            };
            let _ = write!(
                o,
                "<figure><img src=\"{src}\" alt=\"{alt}\"/><figcaption><b>{class}</b>{score}<br/>{image}<br/>{detail}</figcaption></figure>",
                alt = escape(&g.image),
                class = escape(&g.class),
                score = g.score.map_or_else(String::new, |s| format!(" {}", f(s))),
                image = escape(&g.image),
                detail = escape(&g.detail),
            );
        }
        o.push_str("</div>");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::svg::tests::assert_well_formed;
    use crate::tests::sample;

    #[test]
    fn html_is_self_contained_escaped_and_has_numbers() {
        let r = sample();
        let h = render(&r);
        // Offline: no external resources.
        for bad in ["src=\"http", "href=\"http", "<script", "<link"] {
            assert!(!h.contains(bad), "{bad}");
        }
        // Hostile class name and rule detail never appear raw.
        assert!(!h.contains("<dent>") && !h.contains("0.1 <b>"));
        assert!(h.contains("&lt;dent&gt;&amp;&quot;x&quot;"));
        // Every headline number of every section is printed.
        let d = r.detection.as_ref().unwrap();
        for v in d.coco_box.as_ref().unwrap() {
            assert!(h.contains(&f(*v)), "{v}");
        }
        for v in [0.4321, 0.8123, 0.5432, 0.7059, 0.1234, 0.7333, 0.41] {
            assert!(h.contains(&f(v)), "{v}");
        }
        assert_eq!(h.matches("<svg").count(), 8);
        assert!(h.contains("Instance confusion"));
        // The gallery inlines its thumbnail and escapes the file name.
        assert!(h.contains("src=\"data:image/png;base64,") && h.contains("val/&lt;x&gt;.jpg"));
        // The body (from the first tag after the doctype) is well formed.
        let body = h.trim_start_matches("<!DOCTYPE html>");
        let body = body.replace("<meta charset=\"utf-8\">", "");
        assert_well_formed(body.trim());
    }

    #[test]
    fn sections_are_optional() {
        let mut r = sample();
        r.detection = None;
        r.operating = None;
        let h = render(&r);
        assert!(!h.contains("COCO metrics") && h.contains("Reliability diagram"));
        r.classification = None;
        r.gallery.clear();
        let h = render(&r);
        assert_eq!(h.matches("<svg").count(), 0);
        assert!(!h.contains("Worst mistakes"));
    }
}
