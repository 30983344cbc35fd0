//! Parity of the YOLOv8-seg port with Ultralytics 8.4.190 on the reference fixtures
//! (`shared/fixtures`, see its README): raw network outputs on the exact reference inputs,
//! the letterbox itself, and the final detections of `predict(imgsz=256, conf=0.25, iou=0.7,
//! retina_masks=True)`.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use burn::tensor::{Tensor, TensorData};
use serde_json::Value;
use sightline_vision::backend::default_device;
use sightline_vision::preprocess::{Letterbox, Resample, load_rgb, push_chw};
use sightline_vision::segment::{SegmentSettings, Segmenter};
use sightline_vision::weights::{TensorMap, tensor_to_vec};

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

fn widgets_model() -> Segmenter {
    let path = fixtures().join("ultralytics/yolov8n-seg-widgets.pt");
    Segmenter::from_checkpoint(&path, None, default_device()).expect("load yolov8n-seg-widgets.pt")
}

fn raw_outputs() -> TensorMap {
    TensorMap::from_safetensors_file(&fixtures().join("expected/yolo/raw_outputs.safetensors"))
        .expect("raw outputs")
}

fn image_names(raw: &TensorMap) -> Vec<String> {
    let names: Vec<String> = raw
        .names()
        .filter_map(|n| n.strip_suffix(".input"))
        .map(str::to_string)
        .collect();
    assert!(
        names.len() >= 5,
        "expected the five fixture images, got {names:?}"
    );
    names
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn raw_outputs_match_ultralytics_within_1e_3() {
    let model = widgets_model();
    assert_eq!(model.labels(), ["scratch", "dent", "ng"]);
    let raw = raw_outputs();
    let device = default_device();
    for name in image_names(&raw) {
        let input = raw.get(&format!("{name}.input")).unwrap();
        let x = Tensor::<4>::from_data(
            TensorData::new(input.data.clone(), input.shape.clone()),
            &device,
        );
        let out = model.forward(x);
        let (pshape, pred) = tensor_to_vec(out.pred).unwrap();
        let (qshape, proto) = tensor_to_vec(out.proto).unwrap();
        let want_pred = raw.get(&format!("{name}.pred")).unwrap();
        let want_proto = raw.get(&format!("{name}.proto")).unwrap();
        assert_eq!(pshape, want_pred.shape, "{name}.pred shape");
        assert_eq!(qshape, want_proto.shape, "{name}.proto shape");
        let dp = max_abs_diff(&pred, &want_pred.data);
        let dq = max_abs_diff(&proto, &want_proto.data);
        eprintln!("{name}: max |Δpred| = {dp:.2e}, max |Δproto| = {dq:.2e}");
        assert!(dp <= 1e-3, "{name}.pred differs by {dp}");
        assert!(dq <= 1e-3, "{name}.proto differs by {dq}");
    }
}

#[test]
fn letterbox_reproduces_the_reference_inputs() {
    let raw = raw_outputs();
    for name in image_names(&raw) {
        let want = raw.get(&format!("{name}.input")).unwrap();
        let img = load_rgb(&fixtures().join(format!("images/{name}.jpg"))).unwrap();
        let lb = Letterbox::new(img.height() as usize, img.width() as usize, 256, 32).unwrap();
        assert_eq!(
            [1, 3, lb.input.0, lb.input.1].to_vec(),
            want.shape,
            "{name} letterbox shape"
        );
        let mut got = Vec::new();
        push_chw(&lb.apply(&img, Resample::PilBilinear), &mut got);
        let d = max_abs_diff(&got, &want.data);
        let mean = got
            .iter()
            .zip(&want.data)
            .map(|(a, b)| (a - b).abs())
            .sum::<f32>()
            / got.len() as f32;
        eprintln!(
            "{name}: letterbox max |Δ| = {d:.4} ({:.1}/255), mean {:.5}",
            d * 255.0,
            mean
        );
        // JPEGs decode bit-identically to PIL (sightline-imageio, libjpeg-turbo), so geometry
        // and resampling leave nothing: measured max 0 and mean 0 on every image.
        assert!(d <= 1e-6, "{name}: letterbox differs by {d}");
        assert!(mean <= 1e-7, "{name}: mean letterbox difference {mean}");
    }
}

fn decode_rle(rle: &Value) -> (usize, usize, Vec<u8>) {
    let h = rle["size"][0].as_u64().unwrap() as usize;
    let w = rle["size"][1].as_u64().unwrap() as usize;
    let mut col_major = Vec::with_capacity(h * w);
    let mut v = 0u8;
    for c in rle["counts"].as_array().unwrap() {
        col_major.extend(std::iter::repeat_n(v, c.as_u64().unwrap() as usize));
        v ^= 1;
    }
    assert_eq!(col_major.len(), h * w);
    let mut row_major = vec![0u8; h * w];
    for x in 0..w {
        for y in 0..h {
            row_major[y * w + x] = col_major[x * h + y];
        }
    }
    (h, w, row_major)
}

fn mask_iou(a: &[u8], b: &[u8]) -> f64 {
    let inter = a
        .iter()
        .zip(b)
        .filter(|(x, y)| **x != 0 && **y != 0)
        .count();
    let union = a
        .iter()
        .zip(b)
        .filter(|(x, y)| **x != 0 || **y != 0)
        .count();
    if union == 0 {
        1.0
    } else {
        inter as f64 / union as f64
    }
}

#[test]
fn predictions_match_ultralytics_predict() {
    let model = widgets_model();
    let expected: Value = serde_json::from_slice(
        &fs_err::read(fixtures().join("expected/yolo/predictions.json")).unwrap(),
    )
    .unwrap();
    let s = &expected["settings"];
    let mut settings = SegmentSettings {
        imgsz: s["imgsz"].as_u64().unwrap() as usize,
        ..SegmentSettings::default()
    };
    settings.nms.conf = s["conf"].as_f64().unwrap() as f32;
    settings.nms.iou = s["iou"].as_f64().unwrap() as f32;
    let preds = expected["predictions"].as_object().unwrap();
    assert!(preds.contains_key("wide_320x200.jpg"));
    let names: Vec<&String> = preds.keys().collect();
    let images: Vec<_> = names
        .iter()
        .map(|n| load_rgb(&fixtures().join("images").join(n)).unwrap())
        .collect();
    // all images in one call: batching must not change anything
    let results = model.predict(&images, &settings).unwrap();
    let (mut worst_conf, mut worst_box, mut worst_iou) = (0.0f64, 0.0f64, 1.0f64);
    for ((name, img), got) in names.iter().zip(&images).zip(&results) {
        let want = preds[name.as_str()]["detections"].as_array().unwrap();
        let orig = &preds[name.as_str()]["orig_shape"];
        assert_eq!(orig[0].as_u64().unwrap() as u32, img.height());
        assert_eq!(orig[1].as_u64().unwrap() as u32, img.width());
        eprintln!(
            "{name}: expected {:?}, got {:?}",
            want.iter()
                .map(|d| (
                    d["label"].as_str().unwrap(),
                    d["confidence"].as_f64().unwrap()
                ))
                .collect::<Vec<_>>(),
            got.iter()
                .map(|d| (d.label.as_str(), d.confidence))
                .collect::<Vec<_>>()
        );
        assert_eq!(got.len(), want.len(), "{name}: number of detections");
        let mut used = vec![false; got.len()];
        for w in want {
            let label = w["label"].as_str().unwrap();
            let conf = w["confidence"].as_f64().unwrap();
            let wbox: Vec<f64> = w["box_xyxy"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap())
                .collect();
            let (mh, mw, wmask) = decode_rle(&w["mask_rle"]);
            let found = got.iter().enumerate().find(|(i, d)| {
                !used[*i]
                    && d.label == label
                    && d.class_id as u64 == w["class_id"].as_u64().unwrap()
                    // measured: confidence 4.8e-7, box 1.5e-5 px (float noise only, the
                    // decoded pixels are PIL's)
                    && (f64::from(d.confidence) - conf).abs() <= 2e-6
                    && d.box_xyxy
                        .iter()
                        .zip(&wbox)
                        .all(|(a, b)| (f64::from(*a) - b).abs() <= 1e-4)
            });
            let Some((i, d)) = found else {
                panic!("{name}: no match for expected {label} {conf:.3} {wbox:?}");
            };
            used[i] = true;
            worst_conf = worst_conf.max((f64::from(d.confidence) - conf).abs());
            worst_box = d
                .box_xyxy
                .iter()
                .zip(&wbox)
                .map(|(a, b)| (f64::from(*a) - b).abs())
                .fold(worst_box, f64::max);
            assert_eq!((d.mask.height, d.mask.width), (mh, mw));
            let iou = mask_iou(&d.mask.to_dense(), &wmask);
            worst_iou = worst_iou.min(iou);
            eprintln!(
                "{name}: {label} conf {:.4} vs {conf:.4}, mask IoU {iou:.4}",
                d.confidence
            );
            // measured: 1.0 (identical masks)
            assert!(iou >= 0.999, "{name}: {label} mask IoU {iou}");
        }
    }
    eprintln!(
        "{} images: max |Δconfidence| {worst_conf:.2e}, max |Δbox| {worst_box:.2e} px, min mask IoU {worst_iou:.6}",
        names.len()
    );
}

#[test]
fn eighty_class_s_checkpoint_loads_and_runs() {
    let path = fixtures().join("ultralytics/yolov8s-seg-80class-random.pt");
    let model = Segmenter::from_checkpoint(&path, None, default_device()).unwrap();
    assert_eq!(model.config().scale, Some('s'));
    assert_eq!(model.config().num_classes, 80);
    assert_eq!(model.labels().len(), 80);
    let x = Tensor::<4>::from_data(
        TensorData::new(vec![0.5f32; 2 * 3 * 64 * 96], [2, 3, 64, 96]),
        &default_device(),
    );
    let out = model.forward(x);
    assert_eq!(out.pred.dims(), [2, 4 + 80 + 32, 8 * 12 + 4 * 6 + 2 * 3]);
    assert_eq!(out.proto.dims(), [2, 32, 16, 24]);
    let (_, pred) = tensor_to_vec(out.pred).unwrap();
    assert!(pred.iter().all(|v| v.is_finite()));
    // a checkpoint holding 80 classes refuses a 3-label override
    let err = Segmenter::from_checkpoint(
        &path,
        Some(vec!["a".into(), "b".into(), "c".into()]),
        default_device(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("80"), "{err}");
}

#[test]
fn missing_checkpoint_is_a_clear_error() {
    let err = Segmenter::from_checkpoint(
        &fixtures().join("ultralytics/does-not-exist.pt"),
        None,
        default_device(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("does-not-exist.pt"), "{err}");
}
