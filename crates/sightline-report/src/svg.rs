//! Small inline-SVG plots drawn by hand: line charts (PR curves, F1 vs confidence, reliability diagrams),
//! bar charts (per-class metrics) and heat maps (confusion matrices). Every label is escaped.

use std::fmt::Write;

use crate::escape;

const W: f64 = 420.0;
const H: f64 = 300.0;
const L: f64 = 50.0;
const R: f64 = 120.0;
const T: f64 = 30.0;
const B: f64 = 40.0;
const PALETTE: [&str; 8] = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf",
];

/// Colour of series `i`.
pub fn color(i: usize) -> &'static str {
    PALETTE[i % PALETTE.len()]
}

fn clamp01(v: f64) -> f64 {
    if v.is_finite() {
        v.clamp(0.0, 1.0)
    } else {
        0.0
    }
}

fn px(x: f64) -> f64 {
    L + clamp01(x) * (W - L - R)
}

fn py(y: f64) -> f64 {
    H - B - clamp01(y) * (H - T - B)
}

fn frame(out: &mut String, title: &str, xlabel: &str, ylabel: &str) {
    let _ = write!(
        out,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" role="img"><title>{t}</title><rect x="0" y="0" width="{W}" height="{H}" fill="#fff"/><text x="{cx}" y="18" text-anchor="middle" font-size="13">{t}</text>"##,
        t = escape(title),
        cx = W / 2.0
    );
    for i in 0..=5 {
        let v = i as f64 / 5.0;
        let _ = write!(
            out,
            r##"<line x1="{x}" y1="{y0}" x2="{x}" y2="{y1}" stroke="#eee"/><line x1="{L}" y1="{y}" x2="{x1}" y2="{y}" stroke="#eee"/><text x="{x}" y="{ty}" text-anchor="middle" font-size="10">{v:.1}</text><text x="{lx}" y="{y}" text-anchor="end" font-size="10" dy="3">{v:.1}</text>"##,
            x = px(v),
            y = py(v),
            y0 = py(0.0),
            y1 = py(1.0),
            x1 = px(1.0),
            ty = H - B + 14.0,
            lx = L - 4.0
        );
    }
    let _ = write!(
        out,
        r##"<rect x="{L}" y="{T}" width="{pw}" height="{ph}" fill="none" stroke="#333"/><text x="{cx}" y="{xy}" text-anchor="middle" font-size="11">{xl}</text><text x="12" y="{cy}" text-anchor="middle" font-size="11" transform="rotate(-90 12 {cy})">{yl}</text>"##,
        pw = W - L - R,
        ph = H - T - B,
        cx = (L + W - R) / 2.0,
        xy = H - 8.0,
        cy = (T + H - B) / 2.0,
        xl = escape(xlabel),
        yl = escape(ylabel)
    );
}

/// One named series of `(x, y)` points in the unit square.
pub struct Series<'a> {
    /// Legend text.
    pub name: &'a str,
    /// Points (values are clamped to [0, 1]).
    pub points: &'a [(f64, f64)],
}

/// A line chart of series in the unit square (optionally with the diagonal, for reliability diagrams).
pub fn line_chart(
    title: &str,
    xlabel: &str,
    ylabel: &str,
    series: &[Series<'_>],
    diagonal: bool,
) -> String {
    let mut out = String::new();
    frame(&mut out, title, xlabel, ylabel);
    if diagonal {
        let _ = write!(
            out,
            r##"<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="#999" stroke-dasharray="4 3"/>"##,
            px(0.0),
            py(0.0),
            px(1.0),
            py(1.0)
        );
    }
    for (i, s) in series.iter().enumerate() {
        let pts: Vec<String> = s
            .points
            .iter()
            .map(|&(x, y)| format!("{:.2},{:.2}", px(x), py(y)))
            .collect();
        let _ = write!(
            out,
            r##"<polyline fill="none" stroke="{c}" stroke-width="1.5" points="{p}"/><rect x="{lx}" y="{ly}" width="10" height="10" fill="{c}"/><text x="{tx}" y="{ty}" font-size="10">{n}</text>"##,
            c = color(i),
            p = pts.join(" "),
            lx = W - R + 8.0,
            ly = T + 14.0 * i as f64,
            tx = W - R + 22.0,
            ty = T + 14.0 * i as f64 + 9.0,
            n = escape(s.name)
        );
    }
    out.push_str("</svg>");
    out
}

/// Grouped bar chart: one group per category, one bar per metric (values in [0, 1], printed above bars).
pub fn bar_chart(title: &str, categories: &[String], metrics: &[(&str, Vec<f64>)]) -> String {
    let mut out = String::new();
    frame(&mut out, title, "class", "value");
    let n = categories.len().max(1) as f64;
    let group = (W - L - R) / n;
    let bw = group * 0.8 / metrics.len().max(1) as f64;
    for (ci, cat) in categories.iter().enumerate() {
        let gx = L + group * ci as f64 + group * 0.1;
        for (mi, (_, vals)) in metrics.iter().enumerate() {
            let v = vals.get(ci).copied().unwrap_or(0.0);
            let x = gx + bw * mi as f64;
            let _ = write!(
                out,
                r##"<rect x="{x:.2}" y="{y:.2}" width="{bw:.2}" height="{h:.2}" fill="{c}"><title>{t}: {v:.4}</title></rect>"##,
                y = py(v),
                h = py(0.0) - py(v),
                c = color(mi),
                t = escape(cat)
            );
        }
        let _ = write!(
            out,
            r##"<text x="{x:.2}" y="{y}" text-anchor="middle" font-size="9">{t}</text>"##,
            x = gx + group * 0.4,
            y = H - B + 26.0,
            t = escape(cat)
        );
    }
    for (mi, (name, _)) in metrics.iter().enumerate() {
        let _ = write!(
            out,
            r##"<rect x="{lx}" y="{ly}" width="10" height="10" fill="{c}"/><text x="{tx}" y="{ty}" font-size="10">{n}</text>"##,
            c = color(mi),
            lx = W - R + 8.0,
            ly = T + 14.0 * mi as f64,
            tx = W - R + 22.0,
            ty = T + 14.0 * mi as f64 + 9.0,
            n = escape(name)
        );
    }
    out.push_str("</svg>");
    out
}

/// Heat map of a confusion matrix (`rows` = truth, `cols` = prediction), counts printed in every cell.
pub fn heat_map(title: &str, rows: &[String], cols: &[String], m: &[Vec<usize>]) -> String {
    let cell = 36.0;
    let (l, t) = (110.0, 40.0);
    let w = l + cell * cols.len() as f64 + 20.0;
    let h = t + cell * rows.len() as f64 + 90.0;
    let max = m.iter().flatten().copied().max().unwrap_or(0).max(1) as f64;
    let mut out = format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img"><title>{tt}</title><rect x="0" y="0" width="{w}" height="{h}" fill="#fff"/><text x="{cx}" y="18" text-anchor="middle" font-size="13">{tt}</text>"##,
        tt = escape(title),
        cx = w / 2.0
    );
    for (r, rn) in rows.iter().enumerate() {
        let y = t + cell * r as f64;
        let _ = write!(
            out,
            r##"<text x="{x}" y="{ty}" text-anchor="end" font-size="10">{n}</text>"##,
            x = l - 4.0,
            ty = y + cell / 2.0 + 3.0,
            n = escape(rn)
        );
        for c in 0..cols.len() {
            let v = m.get(r).and_then(|row| row.get(c)).copied().unwrap_or(0);
            let a = v as f64 / max;
            let x = l + cell * c as f64;
            let fg = if a > 0.5 { "#fff" } else { "#000" };
            let _ = write!(
                out,
                r##"<rect x="{x}" y="{y}" width="{cell}" height="{cell}" fill="rgb({g},{g},255)" stroke="#fff"/><text x="{tx}" y="{ty}" text-anchor="middle" font-size="11" fill="{fg}">{v}</text>"##,
                g = (255.0 * (1.0 - a * 0.85)).round(),
                tx = x + cell / 2.0,
                ty = y + cell / 2.0 + 4.0
            );
        }
    }
    for (c, cn) in cols.iter().enumerate() {
        let x = l + cell * c as f64 + cell / 2.0;
        let y = t + cell * rows.len() as f64 + 8.0;
        let _ = write!(
            out,
            r##"<text x="{x}" y="{y}" font-size="10" transform="rotate(45 {x} {y})">{n}</text>"##,
            n = escape(cn)
        );
    }
    let _ = write!(
        out,
        r##"<text x="{cx}" y="{y}" text-anchor="middle" font-size="11">predicted (rows: truth)</text></svg>"##,
        cx = w / 2.0,
        y = h - 6.0
    );
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Minimal XML well-formedness check: balanced tags, quoted attributes, no raw `<`/`&` in text.
    pub fn assert_well_formed(svg: &str) {
        let mut stack: Vec<String> = Vec::new();
        let mut rest = svg;
        while let Some(start) = rest.find('<') {
            let text = &rest[..start];
            for (i, _) in text.match_indices('&') {
                let ent = &text[i..];
                assert!(
                    ["&amp;", "&lt;", "&gt;", "&quot;", "&#39;"]
                        .iter()
                        .any(|e| ent.starts_with(e)),
                    "raw & in text: {text}"
                );
            }
            let end = rest[start..].find('>').expect("unterminated tag") + start;
            let tag = &rest[start + 1..end];
            assert!(!tag.contains('<'), "'<' inside tag: {tag}");
            assert_eq!(tag.matches('"').count() % 2, 0, "unbalanced quotes: {tag}");
            if let Some(name) = tag.strip_prefix('/') {
                assert_eq!(
                    stack.pop().as_deref(),
                    Some(name.trim()),
                    "mismatched </{name}>"
                );
            } else if !tag.ends_with('/') {
                let name = tag.split_whitespace().next().unwrap_or("");
                stack.push(name.to_string());
            }
            rest = &rest[end + 1..];
        }
        assert!(stack.is_empty(), "unclosed tags: {stack:?}");
    }

    #[test]
    fn line_chart_is_well_formed_and_escaped() {
        let pts = [(0.0, 1.0), (0.5, 0.8), (1.0, f64::NAN)];
        let s = line_chart(
            "PR <curve>",
            "recall",
            "precision",
            &[Series {
                name: "a&b",
                points: &pts,
            }],
            true,
        );
        assert_well_formed(&s);
        assert!(s.contains("PR &lt;curve&gt;") && s.contains("a&amp;b"));
        // (0.5, 0.8) maps inside the plot area.
        assert!(s.contains(&format!("{:.2},{:.2}", px(0.5), py(0.8))));
    }

    #[test]
    fn bar_chart_and_heat_map_are_well_formed() {
        let cats = vec!["x<y".to_string(), "z".to_string()];
        let b = bar_chart(
            "bars",
            &cats,
            &[("AP50", vec![0.5, 1.0]), ("F1", vec![0.25, 0.0])],
        );
        assert_well_formed(&b);
        assert!(b.contains("x&lt;y: 0.5000"));
        let h = heat_map("cm", &cats, &cats, &[vec![3, 1], vec![0, 7]]);
        assert_well_formed(&h);
        for n in [">3<", ">1<", ">0<", ">7<"] {
            assert!(h.contains(n), "{n}");
        }
    }

    #[test]
    fn checker_rejects_broken_markup() {
        let r = std::panic::catch_unwind(|| assert_well_formed("<svg><g></svg>"));
        assert!(r.is_err());
        let r = std::panic::catch_unwind(|| assert_well_formed("<svg>a & b</svg>"));
        assert!(r.is_err());
    }
}
