"""Golden outputs of pycocotools (2.0.11) for sightline-mask's tests.

Run: python make_golden.py > pycocotools_golden.json  (needs numpy + pycocotools; deterministic seed).
Cases: random polygons (inside, partly outside the image, tiny, with repeated vertices, multi-part),
boxes, and random masks (encode -> compressed string, toBbox, area), plus pairwise IoU (crowd and not).
"""
import json
import numpy as np
from pycocotools import mask as M

rng = np.random.default_rng(12345)
out = {"polygons": [], "boxes": [], "masks": [], "ious": []}

def poly_case(h, w, polys):
    rles = M.frPyObjects(polys, h, w)
    rle = M.merge(rles)
    return {"h": h, "w": w, "polygons": polys, "counts": rle["counts"].decode(),
            "area": int(M.area(rle)), "bbox": [float(v) for v in M.toBbox(rle)]}

for i in range(60):
    h, w = int(rng.integers(1, 60)), int(rng.integers(1, 60))
    nparts = 1 if i % 4 else 2
    polys = []
    for _ in range(nparts):
        k = int(rng.integers(3, 12))
        cx, cy = rng.uniform(-5, w + 5), rng.uniform(-5, h + 5)
        r = rng.uniform(0.3, max(h, w) * 0.7)
        ang = np.sort(rng.uniform(0, 2 * np.pi, k))
        xs = cx + r * np.cos(ang) * rng.uniform(0.3, 1.0, k)
        ys = cy + r * np.sin(ang) * rng.uniform(0.3, 1.0, k)
        if i % 7 == 0:
            xs, ys = np.round(xs), np.round(ys)
        p = []
        for x, y in zip(xs, ys):
            p += [round(float(x), 3), round(float(y), 3)]
        if i % 5 == 0:
            p = p[:2] + p  # repeated vertex
        polys.append(p)
    out["polygons"].append(poly_case(h, w, polys))

for i in range(20):
    h, w = int(rng.integers(1, 50)), int(rng.integers(1, 50))
    bb = [round(float(v), 2) for v in (rng.uniform(-3, w), rng.uniform(-3, h), rng.uniform(0, w), rng.uniform(0, h))]
    rle = M.frPyObjects(np.array([bb], dtype=np.float64), h, w)[0]
    out["boxes"].append({"h": h, "w": w, "bbox_in": bb, "counts": rle["counts"].decode()})

masks = []
for i in range(30):
    h, w = int(rng.integers(1, 40)), int(rng.integers(1, 40))
    if i < 2:
        h, w = 17, 23
    m = (rng.uniform(size=(h, w)) < rng.uniform(0, 1)).astype(np.uint8)
    if i == 0:
        m[:] = 0
    if i == 1:
        m[:] = 1
    rle = M.encode(np.asfortranarray(m))
    masks.append(rle)
    out["masks"].append({"h": h, "w": w, "col_major": [int(v) for v in m.flatten(order="F")],
                         "counts": rle["counts"].decode(), "area": int(M.area(rle)),
                         "bbox": [float(v) for v in M.toBbox(rle)]})

# IoUs between masks of equal size (polygon-made, so they overlap often).
for i in range(20):
    h, w = 30, 30
    def rp():
        k = int(rng.integers(3, 8))
        return [round(float(v), 2) for v in rng.uniform(-2, 32, 2 * k)]
    dt = [rp() for _ in range(3)]
    gt = [rp() for _ in range(2)]
    crowd = [int(i % 2), 0]
    dr = [M.merge(M.frPyObjects([p], h, w)) for p in dt]
    gr = [M.merge(M.frPyObjects([p], h, w)) for p in gt]
    iou = M.iou(dr, gr, crowd)
    biou = M.iou([list(M.toBbox(r)) for r in dr], [list(M.toBbox(r)) for r in gr], crowd)
    out["ious"].append({"h": h, "w": w, "dt": dt, "gt": gt, "crowd": crowd,
                        "iou": np.asarray(iou).tolist(), "box_iou": np.asarray(biou).tolist()})

print(json.dumps(out))
