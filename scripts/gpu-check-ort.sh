#!/usr/bin/env bash
# ONNX Runtime execution providers on a GPU machine (never run by CI).
#
# Needs: the sightline binary, the fixtures, and an ONNX Runtime library built with CUDA (and
# TensorRT for that provider), e.g. from PyPI's `onnxruntime-gpu` wheel:
#   python3 -m venv /tmp/ortgpu && /tmp/ortgpu/bin/pip install onnxruntime-gpu==1.32.0
#   ORT_GPU_LIB=$(ls /tmp/ortgpu/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so.*)
# The GPU machine may have no network: copy the binary, the fixtures and the wheel's capi/ folder
# (plus the CUDA/cuDNN libraries it needs) over beforehand.
#
# Usage: scripts/gpu-check-ort.sh BIN FIXTURES ORT_GPU_LIB
# Prints: bench predict per provider (cpu, cuda, tensorrt) and whether `predict` gives the same
# detections on CUDA as on the CPU provider (confidences within 1e-3, same classes and counts).
set -euo pipefail
BIN=${1:?sightline binary}; FX=${2:?fixtures folder}; LIB=${3:?libonnxruntime.so with CUDA}
export SIGHTLINE_ONNXRUNTIME_LIBRARY="$LIB" SIGHTLINE_HOME="${SIGHTLINE_HOME:-$(mktemp -d)}"
PT="$FX/ultralytics/yolov8n-seg-widgets.pt"; PTH="$FX/torchvision/mobilenet_v3_small-widgets.pth"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv || true
for p in cpu cuda tensorrt; do
  echo "== bench predict, provider $p"
  "$BIN" bench predict --runtime onnxruntime --ort-provider "$p" --yolo-weights "$PT" \
    --mobilenet-weights "$PTH" --image "$FX/images/val_00001.jpg" --sizes 256,640 --batches 1,8 \
    --iters 30 --warmup 5 || echo "provider $p: FAILED (see above)"
done
out=$(mktemp -d)
"$BIN" --json predict --runtime onnxruntime --ort-provider cpu --weights "$PT" "$FX"/images/*.jpg > "$out/cpu.jsonl"
"$BIN" --json predict --runtime onnxruntime --ort-provider cuda --weights "$PT" "$FX"/images/*.jpg > "$out/cuda.jsonl"
python3 - "$out/cpu.jsonl" "$out/cuda.jsonl" <<'PY'
import json, sys
a = [json.loads(l) for l in open(sys.argv[1])]; b = [json.loads(l) for l in open(sys.argv[2])]
ok = len(a) == len(b)
for x, y in zip(a, b):
    dx, dy = x.get("detections", []), y.get("detections", [])
    same = len(dx) == len(dy) and all(p["label"] == q["label"] and abs(p["confidence"] - q["confidence"]) < 1e-3 for p, q in zip(dx, dy))
    ok &= same
    print(f'{x.get("image")}: cpu {len(dx)} / cuda {len(dy)} detections: {"same" if same else "DIFFERENT"}')
print("CUDA matches CPU:", ok)
sys.exit(0 if ok else 1)
PY
