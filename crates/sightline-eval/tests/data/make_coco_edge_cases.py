"""Expected COCOeval stats for sightline-eval's edge-case tests, computed by the real pycocotools (2.0.11).

Run from this folder: python make_coco_edge_cases.py
Writes coco_edge/<case>/{gt.json,dt.json} and coco_edge/expected.json
({case: {"bbox": [12 stats], "segm": [12 stats]}}). Deterministic (fixed seed).
"""
import contextlib
import copy
import io
import json
import os

import numpy as np
from pycocotools import mask as M
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

OUT = "coco_edge"
rng = np.random.default_rng(2024)


_cache = {}


def poly(cx, cy, r, k=8, jitter=0.3):
    """Random star-shaped polygon; the same arguments give the same polygon (so GT and detections can coincide)."""
    key = (cx, cy, r, k, jitter)
    if key not in _cache:
        _cache[key] = _poly(cx, cy, r, k, jitter)
    return _cache[key]


def _poly(cx, cy, r, k, jitter):
    ang = np.sort(rng.uniform(0, 2 * np.pi, k))
    rad = r * rng.uniform(1 - jitter, 1 + jitter, k)
    pts = []
    for a, q in zip(ang, rad):
        pts += [round(float(cx + q * np.cos(a)), 2), round(float(cy + q * np.sin(a)), 2)]
    return pts


def poly_ann(aid, img, cat, p, h, w, crowd=0, **extra):
    rle = M.merge(M.frPyObjects([p], h, w))
    bb = [round(float(v), 2) for v in M.toBbox(rle)]
    ann = {"id": aid, "image_id": img, "category_id": cat, "segmentation": [p],
           "area": float(M.area(rle)), "bbox": bb, "iscrowd": crowd}
    ann.update(extra)
    return ann


def det_from_poly(img, cat, p, h, w, score, with_bbox=True, with_segm=True):
    rle = M.merge(M.frPyObjects([p], h, w))
    d = {"image_id": img, "category_id": cat, "score": score}
    if with_bbox:
        d["bbox"] = [round(float(v), 3) for v in M.toBbox(rle)]
    if with_segm:
        d["segmentation"] = {"size": [h, w], "counts": rle["counts"].decode()}
    return d


def stats(gt, dt, iou_type):
    with contextlib.redirect_stdout(io.StringIO()):
        cg = COCO()
        cg.dataset = copy.deepcopy(gt)
        cg.createIndex()
        if dt:
            cd = cg.loadRes(copy.deepcopy(dt))
        else:  # loadRes cannot take an empty list: an empty result set by hand
            cd = COCO()
            cd.dataset = {"images": gt["images"], "categories": gt["categories"], "annotations": []}
            cd.createIndex()
        e = COCOeval(cg, cd, iou_type)
        e.evaluate()
        e.accumulate()
        e.summarize()
    return [float(x) for x in e.stats]


def images(n, h=64, w=80):
    return [{"id": i + 1, "width": w, "height": h, "file_name": f"{i + 1}.jpg"} for i in range(n)]


CATS = [{"id": 1, "name": "scratch"}, {"id": 2, "name": "dent"}, {"id": 3, "name": "ng"}]
cases = {}

# 1. Random scenes: jittered true positives, false positives, misses, score ties, 3 area ranges, >100 dets.
H, W = 120, 140
imgs = images(10, H, W)
gt_anns, dts = [], []
aid = 1
for im in imgs:
    for _ in range(int(rng.integers(0, 5))):
        cat = int(rng.integers(1, 4))
        r = float(rng.choice([2.5, 8.0, 30.0])) * rng.uniform(0.8, 1.3)
        cx, cy = rng.uniform(r, W - r), rng.uniform(r, H - r)
        p = poly(cx, cy, r)
        gt_anns.append(poly_ann(aid, im["id"], cat, p, H, W))
        aid += 1
        for _ in range(int(rng.integers(0, 3))):
            q = [v + rng.normal(0, r * 0.15) for v in p]
            score = round(float(rng.choice([0.9, 0.5, rng.uniform(0, 1)])), 2)
            dts.append(det_from_poly(im["id"], cat if rng.uniform() < 0.85 else int(rng.integers(1, 4)), q, H, W, score))
    for _ in range(int(rng.integers(0, 4))):
        r = float(rng.uniform(3, 25))
        dts.append(det_from_poly(im["id"], int(rng.integers(1, 4)), poly(rng.uniform(r, W - r), rng.uniform(r, H - r), r), H, W,
                                 round(float(rng.uniform(0, 1)), 2)))
# image 1 gets 130 low-score detections (maxDets=100 truncation, many ties)
for j in range(130):
    r = float(rng.uniform(3, 12))
    dts.append(det_from_poly(1, 1, poly(rng.uniform(r, W - r), rng.uniform(r, H - r), r), H, W, round(float(rng.uniform(0, 0.3)), 1)))
cases["random_scenes"] = ({"images": imgs, "annotations": gt_anns, "categories": CATS}, dts)

# 2. No detections at all.
cases["no_detections"] = (copy.deepcopy(cases["random_scenes"][0]), [])

# 3. A class without any ground truth (its detections are all false positives; its AP is undefined, -1).
imgs = images(3)
g = [poly_ann(1, 1, 1, poly(20, 20, 10), 64, 80), poly_ann(2, 2, 2, poly(40, 30, 12), 64, 80)]
d = [det_from_poly(1, 1, poly(20, 20, 10), 64, 80, 0.8), det_from_poly(2, 2, poly(40, 31, 12), 64, 80, 0.7),
     det_from_poly(3, 3, poly(30, 30, 9), 64, 80, 0.95), det_from_poly(1, 3, poly(50, 20, 9), 64, 80, 0.6)]
cases["class_without_gt"] = ({"images": imgs, "annotations": g, "categories": CATS}, d)

# 4. Crowd regions (uncompressed RLE and polygon crowds) absorbing several detections.
imgs = images(3)
m = np.zeros((64, 80), np.uint8)
m[10:50, 5:60] = 1
crle = M.encode(np.asfortranarray(m))
uc = []  # uncompressed counts (column-major runs)
flat = m.flatten(order="F")
v, c = 0, 0
for px in flat:
    if px != v:
        uc.append(c); c = 0; v = px
    c += 1
uc.append(c)
g = [
    {"id": 1, "image_id": 1, "category_id": 1, "segmentation": {"size": [64, 80], "counts": uc},
     "area": float(M.area(crle)), "bbox": [5.0, 10.0, 55.0, 40.0], "iscrowd": 1},
    poly_ann(2, 1, 1, poly(70, 55, 5), 64, 80),
    poly_ann(3, 2, 2, poly(40, 30, 20), 64, 80, crowd=1),
    poly_ann(4, 2, 2, poly(15, 15, 6), 64, 80),
]
d = [det_from_poly(1, 1, poly(20, 25, 8), 64, 80, 0.9), det_from_poly(1, 1, poly(40, 35, 9), 64, 80, 0.8),
     det_from_poly(1, 1, poly(70, 55, 5), 64, 80, 0.7), det_from_poly(1, 1, poly(30, 30, 25), 64, 80, 0.6),
     det_from_poly(2, 2, poly(40, 30, 10), 64, 80, 0.85), det_from_poly(2, 2, poly(15, 15, 6), 64, 80, 0.5),
     det_from_poly(3, 2, poly(15, 15, 6), 64, 80, 0.4)]
cases["crowd_regions"] = ({"images": imgs, "annotations": g, "categories": CATS}, d)

# 5. Duplicate detections (same object, same and different scores, ties across images).
imgs = images(2)
p1, p2 = poly(25, 25, 12), poly(55, 40, 8)
g = [poly_ann(1, 1, 1, p1, 64, 80), poly_ann(2, 2, 1, p2, 64, 80)]
d = [det_from_poly(1, 1, p1, 64, 80, 0.9), det_from_poly(1, 1, p1, 64, 80, 0.9), det_from_poly(1, 1, p1, 64, 80, 0.5),
     det_from_poly(2, 1, p2, 64, 80, 0.9), det_from_poly(2, 1, p2, 64, 80, 0.3)]
cases["duplicates"] = ({"images": imgs, "annotations": g, "categories": CATS}, d)

# 6. Empty images (no ground truth; some with false positives) next to normal ones.
imgs = images(5)
g = [poly_ann(1, 1, 2, poly(30, 30, 14), 64, 80)]
d = [det_from_poly(1, 2, poly(30, 30, 14), 64, 80, 0.6), det_from_poly(3, 2, poly(30, 30, 14), 64, 80, 0.7),
     det_from_poly(4, 1, poly(20, 20, 5), 64, 80, 0.2)]
cases["empty_images"] = ({"images": imgs, "annotations": g, "categories": CATS}, d)

# 7. `ignore` flags: pycocotools overwrites them with iscrowd, so they change nothing.
imgs = images(2)
g = [poly_ann(1, 1, 1, poly(30, 30, 14), 64, 80, ignore=1), poly_ann(2, 2, 1, poly(40, 30, 10), 64, 80, ignore=0),
     poly_ann(3, 2, 1, poly(15, 15, 4), 64, 80, ignore=1)]
d = [det_from_poly(1, 1, poly(30, 30, 14), 64, 80, 0.8), det_from_poly(2, 1, poly(40, 30, 10), 64, 80, 0.6)]
cases["ignore_flags"] = ({"images": imgs, "annotations": g, "categories": CATS}, d)

# 8. Mask-only results (no bbox: area and box from the mask) and box-only results (segm uses the box polygon).
base_gt, base_dt = cases["random_scenes"]
cases["segm_only_results"] = (base_gt, [{k: v for k, v in x.items() if k != "bbox"} for x in base_dt[:60]])
cases["bbox_only_results"] = (base_gt, [{k: v for k, v in x.items() if k != "segmentation"} for x in base_dt[:60]])

expected = {}
for name, (gt, dt) in cases.items():
    os.makedirs(f"{OUT}/{name}", exist_ok=True)
    with open(f"{OUT}/{name}/gt.json", "w") as f:
        json.dump(gt, f)
    with open(f"{OUT}/{name}/dt.json", "w") as f:
        json.dump(dt, f)
    expected[name] = {t: stats(gt, dt, t) for t in ("bbox", "segm")}
    print(name, len(gt["annotations"]), len(dt), [round(x, 3) for x in expected[name]["segm"]])
with open(f"{OUT}/expected.json", "w") as f:
    json.dump(expected, f, indent=1)
