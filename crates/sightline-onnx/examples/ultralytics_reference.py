#!/usr/bin/env python3
"""By-hand reference check of `sightline export --format onnx` against the real Ultralytics.

Not part of CI (torch + Ultralytics are far too heavy); rerun it by hand after changing the
exporter or the ONNX Runtime inference path.

Setup (a separate venv; never install these into the system Python that CI uses):

    python3 -m venv /tmp/ulvenv
    /tmp/ulvenv/bin/pip install ultralytics==8.4.190 onnx==1.23.2 onnxruntime==1.32.0
    /tmp/ulvenv/bin/pip install "onnxslim>=0.1.82"   # Ultralytics' export simplifies with it
    # (without it Ultralytics' AutoUpdate may skip the install and export unsimplified)

    cd /work/main && cargo build -p sightline-cli

Run:

    SIGHTLINE_HOME=/tmp/ulcheck-home \
    SIGHTLINE_ONNXRUNTIME_LIBRARY=<site-packages>/onnxruntime/capi/libonnxruntime.so.1.32.0 \
    /tmp/ulvenv/bin/python crates/sightline-onnx/examples/ultralytics_reference.py \
        --sightline target/debug/sightline \
        --weights /work/shared/fixtures/ultralytics/yolov8n-seg-widgets.pt \
        --images /work/shared/fixtures/images --out /tmp/ul-ref

What it does:
  1. exports with sightline: static at the checkpoint's size (`ours-256.onnx`), static 640
     (`ours-640.onnx`), `--dynamic` (`ours-dynamic.onnx`); and with Ultralytics
     `YOLO(pt).export(format="onnx", imgsz=...)` at 256 and 640 (`ultralytics-256.onnx`,
     `ultralytics-640.onnx`, left in --out for `sightline bench predict --reference-onnx`).
  2. checks that Ultralytics reads our files unchanged (onnx.checker, metadata keys next to
     Ultralytics' own, names/stride/imgsz/dynamic as its AutoBackend parses them) and compares
     the raw outputs of our file and Ultralytics' file on one input.
  3. predicts the images with Ultralytics on the .pt, Ultralytics' ONNX, our static and dynamic
     ONNX, and with `sightline --json predict --runtime onnxruntime` (and Burn with --burn), and compares
     each pair per image: detections, classes, max |confidence diff|, max box coordinate diff
     (pixels), mask IoU (matched greedily by class and box IoU).
  4. times (unless --no-timing): bare ONNX Runtime forward (N threads, median of --runs after
     --warmup), Ultralytics `YOLO(onnx).predict` end to end (its speed dict) and PyTorch eager
     `YOLO(pt).predict`, at 256 and 640 (a 640x480 resize of the image with the most
     detections), printing `uptime` before each. `.pt` predict letterboxes 640x480 to 640x480
     (minimal padding), static ONNX to 640x640: that row is not the same amount of work.

Note: for a static ONNX file Ultralytics letterboxes to the full square (imgsz from the
metadata), while for `.pt` and dynamic ONNX it pads minimally to the stride; non-square images
(wide_320x200.jpg) therefore differ between `.pt` and static-ONNX predictions in Ultralytics
itself.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def log(msg: str) -> None:
    print(msg, flush=True)


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


# ---------------------------------------------------------------------------------- exports


def sightline_env() -> dict:
    env = dict(os.environ)
    env.setdefault("SIGHTLINE_HOME", "/tmp/ulcheck-home")
    return env


def sightline_export(binary: str, weights: str, out: Path, extra: list[str]) -> None:
    cmd = [binary, "export", "--weights", weights, "--format", "onnx", "--out", str(out), *extra]
    log("$ " + " ".join(cmd))
    r = subprocess.run(cmd, env=sightline_env(), capture_output=True, text=True)
    sys.stdout.write(r.stdout)
    if r.returncode != 0:
        sys.stderr.write(r.stderr)
        raise SystemExit(f"sightline export failed ({r.returncode})")


def ultralytics_export(weights: str, imgsz: int, out: Path) -> None:
    from ultralytics import YOLO

    work = out.parent / f"_ulexport{imgsz}"
    work.mkdir(parents=True, exist_ok=True)
    src = work / Path(weights).name
    shutil.copy(weights, src)  # Ultralytics writes the .onnx beside the .pt; the fixture dir is read-only
    f = YOLO(str(src)).export(format="onnx", imgsz=imgsz)
    shutil.copy(f, out)
    log(f"ultralytics export imgsz={imgsz} -> {out}")


# ---------------------------------------------------------------------------- file checks


def onnx_summary(path: Path) -> dict:
    import onnx

    m = onnx.load(str(path))
    onnx.checker.check_model(m)

    def shape(v):
        return [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]

    return {
        "ir_version": m.ir_version,
        "opset": {o.domain or "ai.onnx": o.version for o in m.opset_import},
        "inputs": {v.name: shape(v) for v in m.graph.input},
        "outputs": {v.name: shape(v) for v in m.graph.output},
        "nodes": len(m.graph.node),
        "metadata": {p.key: p.value for p in m.metadata_props},
        "producer": f"{m.producer_name} {m.producer_version}",
    }


def check_files(files: dict[str, Path], reference: str) -> None:
    from ultralytics import YOLO

    log("\n== ONNX files (onnx.checker passes for every file listed) ==")
    sums = {k: onnx_summary(p) for k, p in files.items()}
    for k, s in sums.items():
        log(
            f"{k:18s} ir {s['ir_version']} opset {s['opset']} nodes {s['nodes']:4d} "
            f"in {s['inputs']} out {s['outputs']} producer '{s['producer']}'"
        )
    ref = sums[reference]["metadata"]
    log(f"\n== metadata keys against {reference} ==")
    for k, s in sums.items():
        md = s["metadata"]
        missing = [x for x in ref if x not in md]
        extra = [x for x in md if x not in ref]
        order_same = [x for x in md if x in ref] == [x for x in ref if x in md]
        differs = {
            x: (md[x], ref[x])
            for x in ref
            if x in md and md[x] != ref[x] and x not in {"date", "description", "author"}
        }
        log(f"{k:18s} missing {missing} extra {extra} same order {order_same}")
        for x, (a, b) in differs.items():
            log(f"{'':18s}   {x}: {a!r}  (reference {b!r})")
        for x in ("names", "imgsz", "args"):
            if x in md:
                try:
                    ast.literal_eval(md[x])
                except Exception as e:  # noqa: BLE001
                    log(f"{'':18s}   {x} does not parse with ast.literal_eval: {e}")
    log("\n== as Ultralytics' AutoBackend reads them ==")
    for k, p in files.items():
        model = YOLO(str(p), task="segment")
        model.predict(np.zeros((64, 64, 3), np.uint8), verbose=False)  # loads the backend
        be = model.predictor.model
        log(
            f"{k:18s} model.names {model.names} task {model.task} stride {be.stride} "
            f"imgsz {getattr(be, 'imgsz', None)} dynamic {getattr(be, 'dynamic', None)} "
            f"batch {getattr(be, 'batch', None)} end2end {getattr(be, 'end2end', None)} "
            f"format {getattr(be, 'format', None)}"
        )


def raw_output_diff(a: Path, b: Path, imgsz: int) -> None:
    import onnxruntime as ort

    rng = np.random.default_rng(0)
    x = rng.random((1, 3, imgsz, imgsz), dtype=np.float32)
    outs = []
    for p in (a, b):
        s = ort.InferenceSession(str(p), providers=["CPUExecutionProvider"])
        outs.append(s.run(None, {s.get_inputs()[0].name: x}))
    for i, (u, v) in enumerate(zip(*outs)):
        d = np.abs(u - v)
        log(
            f"raw output{i} {a.name} vs {b.name} at {imgsz}: shape {u.shape} vs {v.shape}, "
            f"max |diff| {d.max():.3g}, mean {d.mean():.3g}, max |ref| {np.abs(v).max():.3g}"
        )


# ------------------------------------------------------------------------------ predictions


def rle_decode(size, counts) -> np.ndarray:
    h, w = size
    flat = np.zeros(h * w, dtype=bool)
    pos, val = 0, False
    for c in counts:
        if val:
            flat[pos : pos + c] = True
        pos += c
        val = not val
    return flat.reshape(w, h).T  # column-major


def ultralytics_predict(weights: Path, images: list[Path], imgsz: int, conf: float, iou: float):
    from ultralytics import YOLO

    model = YOLO(str(weights), task="segment")
    out = {}
    for p in images:
        r = model.predict(str(p), imgsz=imgsz, conf=conf, iou=iou, retina_masks=True, verbose=False)[0]
        n = len(r.boxes)
        masks = (
            r.masks.data.cpu().numpy() > 0.5 if r.masks is not None and n else np.zeros((0,) + r.orig_shape, bool)
        )
        out[p.name] = {
            "cls": r.boxes.cls.cpu().numpy().astype(int).tolist(),
            "conf": r.boxes.conf.cpu().numpy().astype(float),
            "box": r.boxes.xyxy.cpu().numpy().astype(float).reshape(-1, 4),
            "mask": masks,
            "shape": tuple(r.orig_shape),
        }
    return out, model.names


def sightline_predict(binary: str, weights: str, images: list[Path], conf: float, iou: float, runtime: str):
    cmd = [binary, "--json", "predict", "--weights", weights, "--conf", str(conf), "--iou", str(iou)]
    if runtime:
        cmd += ["--runtime", runtime]
    cmd += [str(p) for p in images]
    log("$ " + " ".join(cmd))
    t0 = time.perf_counter()
    r = subprocess.run(cmd, env=sightline_env(), capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if r.returncode != 0:
        sys.stderr.write(r.stderr)
        raise SystemExit(f"sightline predict failed ({r.returncode})")
    if r.stderr.strip():
        log("  stderr: " + r.stderr.strip().replace("\n", "\n  stderr: "))
    out = {}
    for line in r.stdout.splitlines():
        line = line.strip()
        if not line.startswith("{"):
            continue
        j = json.loads(line)
        dets = j["detections"]
        out[Path(j["image"]).name] = {
            "cls": [d["class_id"] for d in dets],
            "conf": np.array([d["confidence"] for d in dets], float),
            "box": np.array([d["box_xyxy"] for d in dets], float).reshape(-1, 4),
            "mask": np.stack([rle_decode(d["mask_rle"]["size"], d["mask_rle"]["counts"]) for d in dets])
            if dets
            else np.zeros((0, j["height"], j["width"]), bool),
            "shape": (j["height"], j["width"]),
        }
    log(f"  ({len(out)} images, {wall:.1f} s wall including model load)")
    return out


def box_iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    ua = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / ua if ua > 0 else 0.0


def compare(a: dict, b: dict) -> dict:
    """Greedy matching (a in confidence order, same class, best box IoU >= 0.5)."""
    order = np.argsort(-a["conf"], kind="stable")
    used, pairs = set(), []
    for i in order:
        best, bj = 0.5, None
        for j in range(len(b["cls"])):
            if j in used or b["cls"][j] != a["cls"][i]:
                continue
            v = box_iou(a["box"][i], b["box"][j])
            if v >= best:
                best, bj = v, j
        if bj is not None:
            used.add(bj)
            pairs.append((i, bj))
    dconf = max((abs(a["conf"][i] - b["conf"][j]) for i, j in pairs), default=float("nan"))
    dbox = max((float(np.abs(a["box"][i] - b["box"][j]).max()) for i, j in pairs), default=float("nan"))
    ious = []
    for i, j in pairs:
        ma, mb = a["mask"][i], b["mask"][j]
        if ma.shape != mb.shape:
            ious.append(float("nan"))
            continue
        u = np.logical_or(ma, mb).sum()
        ious.append(float(np.logical_and(ma, mb).sum() / u) if u else 1.0)
    return {
        "na": len(a["cls"]),
        "nb": len(b["cls"]),
        "matched": len(pairs),
        "cls_a": "".join(str(c) for c in sorted(a["cls"])),
        "cls_b": "".join(str(c) for c in sorted(b["cls"])),
        "dconf": dconf,
        "dbox": dbox,
        "miou_min": min(ious, default=float("nan")),
        "miou_mean": float(np.mean(ious)) if ious else float("nan"),
    }


def comparison_table(preds: dict[str, dict], pairs: list[tuple[str, str]]) -> list[dict]:
    rows = []
    log(
        f"\n{'pair':34s} {'image':18s} {'nA':>3s} {'nB':>3s} {'match':>5s} {'clsA':>8s} {'clsB':>8s} "
        f"{'max|dconf|':>10s} {'max dbox px':>11s} {'mIoU min':>8s} {'mIoU mean':>9s}"
    )
    for a, b in pairs:
        for img in preds[a]:
            if img not in preds[b]:
                continue
            c = compare(preds[a][img], preds[b][img])
            rows.append({"a": a, "b": b, "image": img, **c})
            log(
                f"{a + ' vs ' + b:34s} {img:18s} {c['na']:3d} {c['nb']:3d} {c['matched']:5d} "
                f"{c['cls_a']:>8s} {c['cls_b']:>8s} {c['dconf']:10.2e} {c['dbox']:11.4f} "
                f"{c['miou_min']:8.4f} {c['miou_mean']:9.4f}"
            )
    return rows


# ----------------------------------------------------------------------------------- timing


def time_ort(path: Path, shape: tuple[int, ...], threads: int, runs: int, warmup: int) -> float:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    s = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).random(shape, dtype=np.float32)
    name = s.get_inputs()[0].name
    for _ in range(warmup):
        s.run(None, {name: x})
    ts = []
    for _ in range(runs):
        t0 = time.perf_counter()
        s.run(None, {name: x})
        ts.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(ts)


def time_predict(weights: Path, image: np.ndarray, imgsz: int, runs: int, warmup: int) -> dict:
    from ultralytics import YOLO

    model = YOLO(str(weights), task="segment")
    kw = dict(imgsz=imgsz, conf=0.25, iou=0.7, retina_masks=True, verbose=False)
    for _ in range(warmup):
        model.predict(image, **kw)
    sp = {"preprocess": [], "inference": [], "postprocess": [], "wall": []}
    for _ in range(runs):
        t0 = time.perf_counter()
        r = model.predict(image, **kw)[0]
        sp["wall"].append((time.perf_counter() - t0) * 1e3)
        for k in ("preprocess", "inference", "postprocess"):
            sp[k].append(r.speed[k])
    return {k: statistics.median(v) for k, v in sp.items()}


def timing(args, files: dict[str, Path], first_image: Path) -> None:
    import cv2
    import torch

    torch.set_num_threads(args.threads)
    log(f"\n== timing (torch threads {torch.get_num_threads()}, ORT intra-op threads {args.threads}) ==")
    log(f"{'what':44s} {'median ms':>10s}   load before")
    s = args.imgsz
    jobs = [
        (f"ultralytics-{s}.onnx", (1, 3, s, s)),
        ("ultralytics-640.onnx", (1, 3, 640, 640)),
        (f"ours-{s}.onnx", (1, 3, s, s)),
        ("ours-640.onnx", (1, 3, 640, 640)),
        ("ours-dynamic.onnx", (1, 3, s, s)),
        ("ours-dynamic.onnx", (1, 3, 640, 640)),
    ]
    for name, shape in jobs:
        load = uptime().split("load average:")[-1].strip()
        ms = time_ort(files[name], shape, args.threads, args.runs, args.warmup)
        log(f"{'ORT forward ' + name + ' ' + 'x'.join(map(str, shape[2:])):44s} {ms:10.2f}   {load}")

    img_s = cv2.imread(str(first_image))
    img640 = cv2.resize(img_s, (640, 480), interpolation=cv2.INTER_LINEAR)
    log(f"\n{'Ultralytics predict (median ms/image)':44s} {'pre':>7s} {'infer':>7s} {'post':>7s} {'sum':>7s} {'wall':>7s}   load before")
    pjobs = [
        (f"ultralytics-{s}.onnx", img_s, s),
        (f"ours-{s}.onnx", img_s, s),
        ("ultralytics-640.onnx", img640, 640),
        ("ours-640.onnx", img640, 640),
        ("pt (PyTorch eager)", img_s, s),
        ("pt (PyTorch eager)", img640, 640),
    ]
    for name, img, sz in pjobs:
        w = Path(args.weights) if name.startswith("pt") else files[name]
        load = uptime().split("load average:")[-1].strip()
        s = time_predict(w, img, sz, args.predict_runs, args.warmup)
        tot = s["preprocess"] + s["inference"] + s["postprocess"]
        label = f"{name} imgsz {sz} ({img.shape[1]}x{img.shape[0]})"
        log(
            f"{label:44s} {s['preprocess']:7.2f} {s['inference']:7.2f} {s['postprocess']:7.2f} "
            f"{tot:7.2f} {s['wall']:7.2f}   {load}"
        )


# ------------------------------------------------------------------------------------- main


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sightline", required=True, help="path to the sightline binary")
    ap.add_argument("--weights", required=True, help="Ultralytics YOLOv8-seg .pt checkpoint")
    ap.add_argument("--images", required=True, help="directory of images to predict")
    ap.add_argument("--out", required=True, help="output directory (ONNX files, results.json)")
    ap.add_argument("--imgsz", type=int, default=256, help="the checkpoint's training size")
    ap.add_argument("--conf", type=float, default=0.25)
    ap.add_argument("--iou", type=float, default=0.7)
    ap.add_argument("--threads", type=int, default=2, help="ORT intra-op / torch threads for timing")
    ap.add_argument("--runs", type=int, default=50, help="timed ORT forwards")
    ap.add_argument("--predict-runs", type=int, default=30, help="timed Ultralytics predicts")
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--burn", action="store_true", help="also run `sightline predict --runtime burn`")
    ap.add_argument("--no-timing", action="store_true")
    ap.add_argument("--skip-export", action="store_true", help="reuse the ONNX files in --out")
    args = ap.parse_args()

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("YOLO_CONFIG_DIR", str(out / "ultralytics-config"))
    import onnx
    import onnxruntime
    import torch
    import ultralytics

    log(
        f"ultralytics {ultralytics.__version__} torch {torch.__version__} onnx {onnx.__version__} "
        f"onnxruntime {onnxruntime.__version__} python {sys.version.split()[0]}"
    )
    s = args.imgsz
    files = {
        f"ours-{s}.onnx": out / f"ours-{s}.onnx",
        "ours-640.onnx": out / "ours-640.onnx",
        "ours-dynamic.onnx": out / "ours-dynamic.onnx",
        f"ultralytics-{s}.onnx": out / f"ultralytics-{s}.onnx",
        "ultralytics-640.onnx": out / "ultralytics-640.onnx",
    }
    if not args.skip_export:
        log("\n== exports ==")
        sightline_export(args.sightline, args.weights, files[f"ours-{s}.onnx"], [])
        sightline_export(args.sightline, args.weights, files["ours-640.onnx"], ["--imgsz", "640"])
        sightline_export(args.sightline, args.weights, files["ours-dynamic.onnx"], ["--dynamic"])
        ultralytics_export(args.weights, s, files[f"ultralytics-{s}.onnx"])
        ultralytics_export(args.weights, 640, files["ultralytics-640.onnx"])

    check_files(files, f"ultralytics-{s}.onnx")
    log("")
    raw_output_diff(files[f"ours-{s}.onnx"], files[f"ultralytics-{s}.onnx"], s)
    raw_output_diff(files["ours-640.onnx"], files["ultralytics-640.onnx"], 640)
    raw_output_diff(files["ours-dynamic.onnx"], files[f"ultralytics-{s}.onnx"], s)

    images = sorted(p for p in Path(args.images).iterdir() if p.suffix.lower() in {".jpg", ".jpeg", ".png", ".bmp"})
    log(f"\n== predictions: {[p.name for p in images]} imgsz {s} conf {args.conf} iou {args.iou} retina_masks ==")
    preds = {}
    preds["pt"], names = ultralytics_predict(Path(args.weights), images, s, args.conf, args.iou)
    log(f"YOLO(pt).names {names}")
    for key, f in (("ul_onnx", f"ultralytics-{s}.onnx"), ("our_onnx", f"ours-{s}.onnx"), ("our_dyn_onnx", "ours-dynamic.onnx")):
        preds[key], names = ultralytics_predict(files[f], images, s, args.conf, args.iou)
        log(f"YOLO({f}).names {names}")
    r = subprocess.run([args.sightline, "runtime", "show"], env=sightline_env(), capture_output=True, text=True)
    log("$ sightline runtime show\n" + (r.stdout + r.stderr).strip())
    preds["sightline"] = sightline_predict(args.sightline, args.weights, images, args.conf, args.iou, "onnxruntime")
    if args.burn:
        preds["sightline_burn"] = sightline_predict(args.sightline, args.weights, images, args.conf, args.iou, "burn")
    pairs = [
        ("pt", "ul_onnx"),
        ("pt", "our_onnx"),
        ("ul_onnx", "our_onnx"),
        ("pt", "our_dyn_onnx"),
        ("pt", "sightline"),
        ("our_onnx", "sightline"),
    ]
    if args.burn:
        pairs += [("pt", "sightline_burn"), ("sightline", "sightline_burn")]
    log("(nA/nB detections, clsA/clsB sorted class ids, box diff = max over matched boxes and coordinates)")
    rows = comparison_table(preds, pairs)
    (out / "comparison.json").write_text(json.dumps(rows, indent=1, default=float))

    if not args.no_timing:
        # time on the image with the most detections, so that mask postprocessing is included
        busiest = max(images, key=lambda p: len(preds["pt"][p.name]["cls"]))
        log(f"\ntiming image: {busiest.name} ({len(preds['pt'][busiest.name]['cls'])} detections at {s})")
        timing(args, files, busiest)


if __name__ == "__main__":
    main()
