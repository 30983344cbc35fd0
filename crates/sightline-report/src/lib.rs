//! Evaluation reports: report.json and an offline report.html with inline SVG plots (PR curves, F1 vs confidence, confusion matrices, per-class bars, galleries).
