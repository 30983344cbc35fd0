"""Expected outputs of Ultralytics' `ap_per_class` for sightline-eval's tests.

python make_yolo_golden.py /path/to/ultralytics/utils/metrics.py > yolo_ap_per_class.json

The functions `smooth`, `compute_ap` and `ap_per_class` are taken from the given Ultralytics file (8.4.190,
`pip download --no-deps ultralytics`) with `ast` and run with numpy only (no torch needed). Predictions have
distinct confidences (Ultralytics sorts with numpy's unstable quicksort).
"""
import ast
import json
import sys
from pathlib import Path

import numpy as np

src = Path(sys.argv[1]).read_text()
tree = ast.parse(src)
wanted = {"smooth", "compute_ap", "ap_per_class"}
mod = ast.Module(body=[n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name in wanted], type_ignores=[])
ns = {"np": np, "Path": Path, "plot_pr_curve": None, "plot_mc_curve": None,
      "_AP_X": np.linspace(0, 1, 101), "_TRAPZ": np.trapezoid}
exec(compile(mod, "ultralytics_metrics_subset", "exec"), ns)

rng = np.random.default_rng(99)
cases = []
for case in range(6):
    n = int(rng.integers(5, 60))
    nc = 3
    conf = rng.permutation(np.linspace(0.01, 0.99, n))  # distinct
    pred_cls = rng.integers(0, nc, n)
    target_cls = rng.integers(0, nc if case != 3 else nc - 1, int(rng.integers(3, 40)))
    base = rng.uniform(0, 1, n) < (0.3 + 0.5 * conf)
    tp = np.stack([base & (rng.uniform(0, 1, n) < 1.0 - 0.08 * k) for k in range(10)], 1)
    for k in range(1, 10):
        tp[:, k] &= tp[:, k - 1]
    res = ns["ap_per_class"](tp, conf, pred_cls, target_cls)
    tpo, fpo, p, r, f1, ap, uc = res[:7]
    cases.append({
        "tp": tp.astype(int).tolist(), "conf": conf.tolist(), "pred_cls": pred_cls.tolist(),
        "target_cls": target_cls.tolist(),
        "out": {"tp": tpo.tolist(), "fp": fpo.tolist(), "p": p.tolist(), "r": r.tolist(), "f1": f1.tolist(),
                "ap": ap.tolist(), "classes": uc.tolist()},
    })
print(json.dumps(cases))
