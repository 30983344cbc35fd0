"""Reference timing for examples/coco_bench.rs: pycocotools on the same files, median of N runs.

python pycocotools_bench.py GT.json DT.json [REPEATS]
"""
import contextlib, io, statistics, sys, time
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

gt_path, dt_path = sys.argv[1], sys.argv[2]
n = int(sys.argv[3]) if len(sys.argv) > 3 else 5
for ty in ("bbox", "segm"):
    eval_only, with_load = [], []
    for _ in range(n):
        with contextlib.redirect_stdout(io.StringIO()):
            t0 = time.perf_counter()
            gt = COCO(gt_path)
            dt = gt.loadRes(dt_path)
            t1 = time.perf_counter()
            e = COCOeval(gt, dt, ty)
            e.evaluate(); e.accumulate(); e.summarize()
            t2 = time.perf_counter()
        eval_only.append(t2 - t1); with_load.append(t2 - t0)
    print(f"{ty}: evaluate+accumulate+summarize median {statistics.median(eval_only):.4f} s, "
          f"with json loading {statistics.median(with_load):.4f} s ({n} runs)")
    print(f"{ty} stats: {list(map(float, e.stats))}")
