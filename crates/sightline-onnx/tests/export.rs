//! ONNX export against the reference tools: every exported file must pass
//! `onnx.checker.check_model(full_check=True)` and, run by Python's onnxruntime, give the
//! numbers of our native Burn models (`Segmenter::forward`, `Classifier::forward`) within 1e-4.
//!
//! Needs `python3` with `onnx`, `onnxruntime` and `numpy` (CI installs them); a test fails,
//! never skips, when they are missing. Set `SIGHTLINE_PYTHON` to use another interpreter.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use sightline_onnx::export::{
    ExportError, ExportOptions, describe, export_checkpoint, export_classifier, export_segmenter,
};
use sightline_vision::backend::default_device;
use sightline_vision::burn::tensor::{Tensor, TensorData};
use sightline_vision::classify::Classifier;
use sightline_vision::mobilenet::MobileNetV3Config;
use sightline_vision::segment::Segmenter;
use sightline_vision::weights::{NamedTensor, TensorMap, tensor_to_vec};
use sightline_vision::yolo::YoloV8SegConfig;

const TOLERANCE: f32 = 1e-4;

fn fixtures() -> PathBuf {
    let dir = std::env::var_os("SIGHTLINE_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures")
        });
    assert!(
        dir.join("README.md").is_file(),
        "fixtures not found at {} (set SIGHTLINE_FIXTURES)",
        dir.display()
    );
    dir
}

/// A dense f32 array.
#[derive(Debug, Clone)]
struct Array {
    shape: Vec<usize>,
    data: Vec<f32>,
}

impl Array {
    fn of(t: &NamedTensor) -> Self {
        Self {
            shape: t.shape.clone(),
            data: t.data.clone(),
        }
    }

    fn tensor(&self) -> Tensor<4> {
        Tensor::from_data(
            TensorData::new(self.data.clone(), self.shape.clone()),
            &default_device(),
        )
    }

    /// Concatenates along the batch axis.
    fn stack(parts: &[&Array]) -> Self {
        let mut shape = parts[0].shape.clone();
        shape[0] = parts.iter().map(|p| p.shape[0]).sum();
        Self {
            shape,
            data: parts.iter().flat_map(|p| p.data.iter().copied()).collect(),
        }
    }
}

fn array<const D: usize>(t: Tensor<D>) -> Array {
    let (shape, data) = tensor_to_vec(t).expect("tensor data");
    Array { shape, data }
}

/// What onnxruntime returned for one export.
struct OrtResult {
    /// Per run, the outputs in graph order.
    runs: Vec<Vec<Array>>,
    /// Graph inputs / outputs as onnxruntime reports them (`[name, [dims as strings]]`).
    io: Value,
    /// `metadata_props` in file order.
    metadata: Vec<(String, String)>,
}

const RUNNER: &str = r#"
import json, sys
import numpy as np
import onnx
import onnxruntime as ort

d = sys.argv[1]
path = d + "/model.onnx"
onnx.checker.check_model(path, full_check=True)
model = onnx.load(path)
so = ort.SessionOptions()
so.intra_op_num_threads = 2
sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
spec = json.load(open(d + "/spec.json"))
runs = []
for k, run in enumerate(spec["runs"]):
    x = np.fromfile(d + "/" + run["file"], dtype="<f4").reshape(run["shape"])
    outs = sess.run(None, {sess.get_inputs()[0].name: x})
    files = []
    for i, o in enumerate(outs):
        name = "out_%d_%d.bin" % (k, i)
        np.ascontiguousarray(o, dtype="<f4").tofile(d + "/" + name)
        files.append({"file": name, "shape": list(o.shape)})
    runs.append(files)
json.dump({
    "runs": runs,
    "reserialized_equal": open(path, "rb").read() == model.SerializeToString(),
    "metadata": [[p.key, p.value] for p in model.metadata_props],
    "io": {
        "inputs": [[i.name, [str(s) for s in i.shape]] for i in sess.get_inputs()],
        "outputs": [[o.name, [str(s) for s in o.shape]] for o in sess.get_outputs()],
    },
}, open(d + "/result.json", "w"))
"#;

fn read_f32(path: &Path) -> Vec<f32> {
    let bytes = fs_err::read(path).expect("output file");
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

/// Checks `model` with onnx's full checker and runs it with onnxruntime on each input.
fn run_onnx(model: &[u8], inputs: &[&Array]) -> OrtResult {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    fs_err::write(d.join("model.onnx"), model).expect("write model");
    fs_err::write(d.join("runner.py"), RUNNER).expect("write runner");
    let mut runs = Vec::new();
    for (k, x) in inputs.iter().enumerate() {
        let file = format!("in_{k}.bin");
        let bytes: Vec<u8> = x.data.iter().flat_map(|v| v.to_le_bytes()).collect();
        fs_err::write(d.join(&file), bytes).expect("write input");
        runs.push(serde_json::json!({"file": file, "shape": x.shape}));
    }
    fs_err::write(
        d.join("spec.json"),
        serde_json::json!({ "runs": runs }).to_string(),
    )
    .expect("write spec");
    let python = std::env::var("SIGHTLINE_PYTHON").unwrap_or_else(|_| "python3".to_string());
    let out = Command::new(&python)
        .arg(d.join("runner.py"))
        .arg(d)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run `{python}` ({e}): these tests need python3 with onnx, onnxruntime and numpy")
        });
    assert!(
        out.status.success(),
        "onnx checker / onnxruntime failed (python3 needs onnx, onnxruntime and numpy):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let result: Value =
        serde_json::from_str(&fs_err::read_to_string(d.join("result.json")).expect("result.json"))
            .expect("result json");
    // the reference protobuf implementation writes the same bytes back: every field number,
    // wire type and (un)packing of ours is the one onnx.proto declares
    assert_eq!(
        result["reserialized_equal"],
        Value::Bool(true),
        "onnx re-serializes the model to other bytes"
    );
    let runs = result["runs"]
        .as_array()
        .expect("runs")
        .iter()
        .map(|outs| {
            outs.as_array()
                .expect("outputs")
                .iter()
                .map(|o| Array {
                    shape: o["shape"]
                        .as_array()
                        .expect("shape")
                        .iter()
                        .map(|v| v.as_u64().expect("dim") as usize)
                        .collect(),
                    data: read_f32(&d.join(o["file"].as_str().expect("file"))),
                })
                .collect()
        })
        .collect();
    let metadata = result["metadata"]
        .as_array()
        .expect("metadata")
        .iter()
        .map(|kv| {
            (
                kv[0].as_str().unwrap_or_default().to_string(),
                kv[1].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    OrtResult {
        runs,
        io: result["io"].clone(),
        metadata,
    }
}

/// Max |a − b| after checking the shapes agree.
fn max_diff(what: &str, onnx: &Array, native: &Array) -> f32 {
    assert_eq!(onnx.shape, native.shape, "{what}: shapes differ");
    let d = onnx
        .data
        .iter()
        .zip(&native.data)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    eprintln!(
        "{what}: max abs diff {d:.3e} over {} values",
        onnx.data.len()
    );
    d
}

fn assert_close(what: &str, onnx: &Array, native: &Array) {
    let d = max_diff(what, onnx, native);
    assert!(d <= TOLERANCE, "{what}: ONNX and Burn differ by {d}");
}

/// Stride of each anchor for an `h`×`w` input (levels 8, 16, 32 in order).
fn anchor_strides(h: usize, w: usize) -> Vec<f32> {
    [8usize, 16, 32]
        .iter()
        .flat_map(|&s| std::iter::repeat_n(s as f32, h.div_ceil(s) * w.div_ceil(s)))
        .collect()
}

/// `output0` `(B, 4 + nc + nm, A)`: class scores and mask coefficients within 1e-4; boxes
/// (input pixels, up to several hundred) within 1e-4 in units of their anchor's stride, i.e.
/// of the grid the network predicts in before the ×stride decode: at 490 px one f32 ulp is
/// 3e-5, and the few-ulp differences of two convolution implementations show there.
fn assert_pred_close(what: &str, onnx: &Array, native: &Array, hw: (usize, usize)) {
    assert_eq!(onnx.shape, native.shape, "{what}: shapes differ");
    let (c, a) = (onnx.shape[1], onnx.shape[2]);
    let strides = anchor_strides(hw.0, hw.1);
    assert_eq!(strides.len(), a, "{what}: anchors");
    let (mut px, mut grid, mut rest) = (0.0f32, 0.0f32, 0.0f32);
    for b in 0..onnx.shape[0] {
        for ch in 0..c {
            for (i, s) in strides.iter().enumerate() {
                let k = (b * c + ch) * a + i;
                let d = (onnx.data[k] - native.data[k]).abs();
                if ch < 4 {
                    px = px.max(d);
                    grid = grid.max(d / s);
                } else {
                    rest = rest.max(d);
                }
            }
        }
    }
    eprintln!(
        "{what}: boxes max abs diff {px:.3e} px ({grid:.3e} in stride units), \
         scores + mask coefficients {rest:.3e}"
    );
    assert!(
        grid <= TOLERANCE,
        "{what}: boxes differ by {grid} stride units ({px} px)"
    );
    assert!(
        rest <= TOLERANCE,
        "{what}: scores / coefficients differ by {rest}"
    );
}

fn meta<'a>(r: &'a OrtResult, key: &str) -> &'a str {
    r.metadata
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("metadata `{key}` missing"))
}

fn yolo_inputs() -> TensorMap {
    TensorMap::from_safetensors_file(&fixtures().join("expected/yolo/raw_outputs.safetensors"))
        .expect("yolo fixture outputs")
}

fn segmenter_outputs(model: &Segmenter, x: &Array) -> [Array; 2] {
    let out = model.forward(x.tensor());
    [array(out.pred), array(out.proto)]
}

#[test]
fn yolov8n_widgets_static_matches_burn_and_carries_ultralytics_metadata() {
    let ckpt = fixtures().join("ultralytics/yolov8n-seg-widgets.pt");
    let exported = export_checkpoint(&ckpt, None, &ExportOptions::default()).expect("export");
    // the checkpoint's own training size
    assert_eq!(exported.imgsz, [256, 256]);
    assert_eq!(exported.names, ["scratch", "dent", "ng"]);
    let inputs = yolo_inputs();
    let x = Array::of(inputs.require("val_00000.input").expect("input"));
    let r = run_onnx(&exported.bytes, &[&x]);
    assert_eq!(
        r.io["inputs"],
        serde_json::json!([["images", ["1", "3", "256", "256"]]])
    );
    assert_eq!(
        r.io["outputs"],
        serde_json::json!([
            ["output0", ["1", "39", "1344"]],
            ["output1", ["1", "32", "64", "64"]]
        ])
    );
    let keys: Vec<&str> = r.metadata.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        keys,
        [
            "description",
            "author",
            "date",
            "version",
            "license",
            "docs",
            "stride",
            "task",
            "head",
            "batch",
            "imgsz",
            "names",
            "args",
            "channels",
            "end2end"
        ]
    );
    assert_eq!(meta(&r, "stride"), "32");
    assert_eq!(meta(&r, "task"), "segment");
    assert_eq!(meta(&r, "imgsz"), "[256, 256]");
    assert_eq!(meta(&r, "names"), "{0: 'scratch', 1: 'dent', 2: 'ng'}");
    assert_eq!(meta(&r, "batch"), "1");
    assert!(meta(&r, "args").contains("'dynamic': False"));
    assert!(meta(&r, "description").starts_with("Ultralytics YOLOv8n-seg model"));

    let model = Segmenter::from_checkpoint(&ckpt, None, default_device()).expect("burn model");
    let [pred, proto] = segmenter_outputs(&model, &x);
    assert_pred_close("yolov8n static output0", &r.runs[0][0], &pred, (256, 256));
    assert_close("yolov8n static output1", &r.runs[0][1], &proto);
    // and Ultralytics' own (torch, fp32, fused) outputs, at the tolerance of our Burn parity
    let reference = Array::of(inputs.require("val_00000.pred").expect("pred"));
    assert!(max_diff("yolov8n vs Ultralytics output0", &r.runs[0][0], &reference) <= 1e-3);
    let reference = Array::of(inputs.require("val_00000.proto").expect("proto"));
    assert!(max_diff("yolov8n vs Ultralytics output1", &r.runs[0][1], &reference) <= 1e-3);
}

#[test]
fn yolov8n_widgets_dynamic_runs_non_square_and_batched_inputs() {
    let ckpt = fixtures().join("ultralytics/yolov8n-seg-widgets.pt");
    let exported = export_checkpoint(&ckpt, None, &ExportOptions::dynamic(256)).expect("export");
    let summary = describe(&exported.bytes).expect("describe");
    assert_eq!(summary.inputs[0].name, "images");
    assert_eq!(
        summary.inputs[0]
            .dims
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        ["batch", "3", "height", "width"]
    );
    let inputs = yolo_inputs();
    // letterboxed 320×200 → 256×160 (H 160, W 256) with stride-32 minimal padding
    let wide = Array::of(inputs.require("wide_320x200.input").expect("input"));
    let a = Array::of(inputs.require("val_00001.input").expect("input"));
    let b = Array::of(inputs.require("val_00002.input").expect("input"));
    let pair = Array::stack(&[&a, &b]);
    let r = run_onnx(&exported.bytes, &[&wide, &pair]);
    assert_eq!(
        r.io["outputs"],
        serde_json::json!([
            ["output0", ["batch", "39", "anchors"]],
            ["output1", ["batch", "32", "mask_height", "mask_width"]]
        ])
    );
    assert!(meta(&r, "args").contains("'dynamic': True"));
    let model = Segmenter::from_checkpoint(&ckpt, None, default_device()).expect("burn model");
    let [pred, proto] = segmenter_outputs(&model, &wide);
    assert_eq!(pred.shape, [1, 39, 840]);
    assert_pred_close(
        "yolov8n dynamic 256x160 output0",
        &r.runs[0][0],
        &pred,
        (160, 256),
    );
    assert_close("yolov8n dynamic 256x160 output1", &r.runs[0][1], &proto);
    let reference = Array::of(inputs.require("wide_320x200.pred").expect("pred"));
    assert!(
        max_diff(
            "yolov8n 256x160 vs Ultralytics output0",
            &r.runs[0][0],
            &reference
        ) <= 1e-3
    );
    let [pred, proto] = segmenter_outputs(&model, &pair);
    assert_pred_close(
        "yolov8n dynamic batch-2 output0",
        &r.runs[1][0],
        &pred,
        (256, 256),
    );
    assert_close("yolov8n dynamic batch-2 output1", &r.runs[1][1], &proto);
}

/// A deterministic input in `[0, 1]`.
fn synthetic(shape: [usize; 4], seed: usize) -> Array {
    let n: usize = shape.iter().product();
    Array {
        shape: shape.to_vec(),
        data: (0..n)
            .map(|i| ((i * 7919 + seed * 104_729) % 1000) as f32 / 1000.0)
            .collect(),
    }
}

#[test]
fn yolov8s_80_classes_static_matches_burn() {
    let ckpt = fixtures().join("ultralytics/yolov8s-seg-80class-random.pt");
    let opts = ExportOptions::fixed(160);
    let exported = export_checkpoint(&ckpt, None, &opts).expect("export");
    assert_eq!(exported.names.len(), 80);
    let x = synthetic([1, 3, 160, 160], 3);
    let r = run_onnx(&exported.bytes, &[&x]);
    assert_eq!(
        r.io["outputs"][0],
        serde_json::json!(["output0", ["1", "116", "525"]])
    );
    let model = Segmenter::from_checkpoint(&ckpt, None, default_device()).expect("burn model");
    let [pred, proto] = segmenter_outputs(&model, &x);
    assert_pred_close("yolov8s static output0", &r.runs[0][0], &pred, (160, 160));
    assert_close("yolov8s static output1", &r.runs[0][1], &proto);
}

#[test]
fn mobilenet_v3_small_widgets_matches_burn() {
    let ckpt = fixtures().join("torchvision/mobilenet_v3_small-widgets.pth");
    let labels: Vec<String> = ["ok", "ng", "scratch", "dent"].map(String::from).to_vec();
    let exported =
        export_checkpoint(&ckpt, Some(labels.clone()), &ExportOptions::default()).expect("export");
    assert_eq!(exported.imgsz, [224, 224]);
    let inputs = TensorMap::from_safetensors_file(
        &fixtures().join("expected/mobilenet/raw_outputs.safetensors"),
    )
    .expect("mobilenet fixture outputs");
    let x = Array::of(inputs.require("val_00001.input").expect("input"));
    let r = run_onnx(&exported.bytes, &[&x]);
    assert_eq!(
        r.io,
        serde_json::json!({
            "inputs": [["input", ["1", "3", "224", "224"]]],
            "outputs": [["logits", ["1", "4"]]],
        })
    );
    assert_eq!(meta(&r, "task"), "classify");
    assert_eq!(meta(&r, "names"), r#"["ok","ng","scratch","dent"]"#);
    let pre: Value = serde_json::from_str(meta(&r, "preprocess")).expect("preprocess json");
    assert_eq!(
        (pre["resize"].as_u64(), pre["crop"].as_u64()),
        (Some(256), Some(224))
    );
    let model = Classifier::load_on(&ckpt, Some(labels), default_device()).expect("burn model");
    let logits = array(model.forward(x.tensor()));
    assert_close("mobilenet_v3_small logits", &r.runs[0][0], &logits);
    // and torchvision's own logits, loosely (our Burn parity is tested in sightline-vision)
    let torch = Array::of(inputs.require("val_00001.logits").expect("logits"));
    assert!(max_diff("mobilenet_v3_small vs torchvision", &r.runs[0][0], &torch) < 1e-3);
}

/// Non-trivial batch-norm statistics so that folding is exercised.
fn perturb_batch_norms(weights: &mut TensorMap) {
    let names: Vec<String> = weights.names().map(str::to_string).collect();
    for (k, name) in names.iter().enumerate() {
        let Some(t) = weights.get(name).cloned() else {
            continue;
        };
        let bump = |i: usize| ((i * 7 + k) % 13) as f32 / 13.0;
        let data: Vec<f32> = if name.ends_with("running_var") {
            (0..t.data.len()).map(|i| 0.5 + bump(i)).collect()
        } else if name.ends_with("running_mean") {
            (0..t.data.len()).map(|i| (bump(i) - 0.5) * 0.2).collect()
        } else {
            continue;
        };
        weights.insert(
            name.clone(),
            NamedTensor::new(t.shape, data).expect("tensor"),
        );
    }
}

#[test]
fn mobilenet_v3_large_random_dynamic_matches_burn() {
    let device = default_device();
    let config = MobileNetV3Config::large(5);
    let mut weights = config.init(&device).to_tensor_map().expect("weights");
    perturb_batch_norms(&mut weights);
    let labels: Vec<String> = (0..5).map(|i| format!("c{i}")).collect();
    let opts = ExportOptions {
        dynamic: true,
        ..ExportOptions::default()
    };
    let bytes = export_classifier(&weights, &config, &labels, &opts).expect("export");
    let x = synthetic([2, 3, 192, 160], 5);
    let r = run_onnx(&bytes, &[&x]);
    assert_eq!(
        r.io["inputs"],
        serde_json::json!([["input", ["batch", "3", "height", "width"]]])
    );
    let model = Classifier::from_weights(&weights, labels, device).expect("burn model");
    let logits = array(model.forward(x.tensor()));
    assert_close("mobilenet_v3_large logits", &r.runs[0][0], &logits);
}

#[test]
fn yolov8m_random_dynamic_matches_burn() {
    // the m scale: two bottlenecks per shallow C2f, channels capped at 768 before scaling
    let device = default_device();
    let config = YoloV8SegConfig::m(2);
    let mut weights = sightline_vision::yolo::YoloV8Seg::new(&config, &device)
        .to_tensor_map()
        .expect("weights");
    perturb_batch_norms(&mut weights);
    let labels = vec!["a".to_string(), "b".to_string()];
    let bytes =
        export_segmenter(&weights, &config, &labels, &ExportOptions::dynamic(640)).expect("export");
    let x = synthetic([1, 3, 64, 96], 11);
    let r = run_onnx(&bytes, &[&x]);
    let model = Segmenter::from_weights(&weights, labels, device).expect("burn model");
    let [pred, proto] = segmenter_outputs(&model, &x);
    assert_pred_close(
        "yolov8m dynamic 96x64 output0",
        &r.runs[0][0],
        &pred,
        (64, 96),
    );
    assert_close("yolov8m dynamic 96x64 output1", &r.runs[0][1], &proto);
}

/// The graph of an ONNX file (metadata, which holds the date, left out).
fn graph_of(bytes: &[u8]) -> sightline_onnx::export::proto::GraphProto {
    use prost::Message;
    sightline_onnx::export::proto::ModelProto::decode(bytes)
        .expect("decodes")
        .graph
        .expect("graph")
}

#[test]
fn safetensors_and_burnpack_checkpoints_export_the_same_graph() {
    let pth = fixtures().join("torchvision/mobilenet_v3_small-widgets.pth");
    let labels: Vec<String> = ["ok", "ng", "scratch", "dent"].map(String::from).to_vec();
    let opts = ExportOptions::fixed(96);
    let reference = export_checkpoint(&pth, Some(labels.clone()), &opts).expect("export .pth");
    let dir = tempfile::tempdir().expect("tempdir");
    let ckpt = sightline_vision::checkpoint::read_checkpoint(&pth).expect("read .pth");
    let weights = sightline_vision::checkpoint::into_tensor_map(ckpt);
    let st = dir.path().join("widgets.safetensors");
    weights.save_safetensors(&st).expect("save safetensors");
    let from_st = export_checkpoint(&st, Some(labels.clone()), &opts).expect("export safetensors");
    assert!(graph_of(&from_st.bytes) == graph_of(&reference.bytes));
    let config = MobileNetV3Config::infer(&weights).expect("config");
    let model =
        sightline_vision::mobilenet::MobileNetV3::load(&config, &weights, &default_device())
            .expect("burn model");
    let bpk = dir.path().join("widgets.bpk");
    sightline_vision::record::save_classifier(&model, &config, &labels, Some(96), &bpk)
        .expect("save record");
    // names and image size from the record itself
    let from_bpk = export_checkpoint(&bpk, None, &ExportOptions::default()).expect("export .bpk");
    assert_eq!(from_bpk.names, labels);
    assert_eq!(from_bpk.imgsz, [96, 96]);
    assert!(graph_of(&from_bpk.bytes) == graph_of(&reference.bytes));
}

#[test]
fn wrong_labels_and_sizes_are_refused() {
    let config = YoloV8SegConfig::n(2);
    let weights = TensorMap::new();
    let names = vec!["a".to_string()];
    let err = export_segmenter(&weights, &config, &names, &ExportOptions::fixed(256))
        .expect_err("label count");
    assert!(matches!(
        err,
        ExportError::LabelCount {
            classes: 2,
            labels: 1
        }
    ));
    let names = vec!["a".to_string(), "b".to_string()];
    let err =
        export_segmenter(&weights, &config, &names, &ExportOptions::fixed(250)).expect_err("size");
    assert!(matches!(err, ExportError::InvalidOption(_)), "{err}");
    let err = export_segmenter(&weights, &config, &names, &ExportOptions::fixed(256))
        .expect_err("no weights");
    assert!(err.to_string().contains("model.0.conv.weight"), "{err}");
}
