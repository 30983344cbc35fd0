//! MobileNetV3 parity with torchvision on the reference fixtures
//! (`expected/mobilenet/raw_outputs.safetensors`, `predictions.json`): logits on the exact
//! input tensors, our preprocessing of the fixture images, top-1 of the whole pipeline, and
//! head replacement with the 1000-class ImageNet-shaped state dict.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use sightline_vision::burn::tensor::{Tensor, TensorData};
use sightline_vision::checkpoint::{into_tensor_map, read_checkpoint};
use sightline_vision::classify::Classifier;
use sightline_vision::mobilenet::{HeadPolicy, MobileNetV3, MobileNetV3Config};
use sightline_vision::preprocess::load_rgb;
use sightline_vision::weights::{TensorMap, tensor_to_vec};
use sightline_vision::{VisionError, backend};

fn fixtures() -> PathBuf {
    let p = std::env::var_os("SIGHTLINE_FIXTURES").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures"),
        PathBuf::from,
    );
    assert!(p.is_dir(), "fixtures folder {} is missing", p.display());
    p
}

struct Sample {
    key: String,
    image: PathBuf,
    predicted: String,
    probabilities: Vec<f32>,
}

fn expected() -> (Vec<String>, Vec<Sample>, TensorMap) {
    let root = fixtures();
    let json: serde_json::Value = serde_json::from_slice(
        &fs_err::read(root.join("expected/mobilenet/predictions.json")).unwrap(),
    )
    .unwrap();
    let labels: Vec<String> = json["labels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    let samples: Vec<Sample> = json["samples"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let rel = s["image"].as_str().unwrap();
            let image = root.join("widgets-a").join(rel);
            Sample {
                key: image.file_stem().unwrap().to_string_lossy().into_owned(),
                image,
                predicted: s["predicted"].as_str().unwrap().to_string(),
                probabilities: s["probabilities"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|p| p.as_f64().unwrap() as f32)
                    .collect(),
            }
        })
        .collect();
    assert!(!samples.is_empty());
    let raw =
        TensorMap::from_safetensors_file(&root.join("expected/mobilenet/raw_outputs.safetensors"))
            .unwrap();
    (labels, samples, raw)
}

fn widgets_checkpoint() -> PathBuf {
    fixtures().join("torchvision/mobilenet_v3_small-widgets.pth")
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// Every `<name>.input` in the fixture, run through the (unfused and fused) network, gives
/// `<name>.logits` within 1e-3.
#[test]
fn logits_match_torchvision_on_exact_inputs() {
    let (_, _, raw) = expected();
    let keys: Vec<String> = raw
        .names()
        .filter_map(|n| n.strip_suffix(".input").map(str::to_string))
        .collect();
    assert!(keys.len() >= 8, "only {} inputs in the fixture", keys.len());
    let device = backend::default_device();
    let weights = into_tensor_map(read_checkpoint(&widgets_checkpoint()).unwrap());
    let config = MobileNetV3Config::infer(&weights).unwrap();
    assert_eq!(config, MobileNetV3Config::small(4));
    let model = MobileNetV3::load(&config, &weights, &device).unwrap();

    let mut batch = Vec::new();
    for k in &keys {
        let t = raw
            .require_shape(&format!("{k}.input"), &[1, 3, 224, 224])
            .unwrap();
        batch.extend_from_slice(&t.data);
    }
    let input: Tensor<4> =
        Tensor::from_data(TensorData::new(batch, [keys.len(), 3, 224, 224]), &device);
    let (_, unfused) = tensor_to_vec(model.forward(input.clone())).unwrap();
    let (_, fused) = tensor_to_vec(model.fuse().forward(input)).unwrap();
    let mut worst = (0.0f32, 0.0f32);
    for (i, k) in keys.iter().enumerate() {
        let want = &raw
            .require_shape(&format!("{k}.logits"), &[1, 4])
            .unwrap()
            .data;
        let d_unfused = max_abs_diff(&unfused[i * 4..i * 4 + 4], want);
        let d_fused = max_abs_diff(&fused[i * 4..i * 4 + 4], want);
        assert!(
            d_unfused < 1e-3,
            "{k}: unfused logits differ by {d_unfused}"
        );
        assert!(d_fused < 1e-3, "{k}: fused logits differ by {d_fused}");
        worst = (worst.0.max(d_unfused), worst.1.max(d_fused));
    }
    eprintln!(
        "max |Δlogit| over {} inputs: unfused {:.2e}, fused {:.2e}",
        keys.len(),
        worst.0,
        worst.1
    );
}

/// Our preprocessing of the fixture images reproduces `<name>.input`, and the full pipeline
/// (decode, preprocess, fused network, softmax) gives torchvision's top-1 for every image.
#[test]
fn pipeline_reproduces_preprocessing_and_top1() {
    let (labels, samples, raw) = expected();
    let clf = Classifier::load(widgets_checkpoint(), Some(labels.clone())).unwrap();
    assert_eq!(clf.labels(), labels.as_slice());
    let images: Vec<_> = samples
        .iter()
        .map(|s| image::DynamicImage::ImageRgb8(load_rgb(&s.image).unwrap()))
        .collect();

    // The fixture decoded the JPEGs with libjpeg-turbo (PIL), and so does `load_rgb`
    // (sightline-imageio), bit for bit; resize (a no-op at 256×256) and crop add nothing.
    // Measured: max 0, mean 0 on every image.
    let mut worst_input = 0.0f32;
    let mut worst_mean = 0.0f32;
    for (s, img) in samples.iter().zip(&images) {
        let ours = clf.preprocess().apply(&img.to_rgb8());
        let want = &raw.require(&format!("{}.input", s.key)).unwrap().data;
        let d = max_abs_diff(&ours, want);
        let mean = ours
            .iter()
            .zip(want)
            .map(|(a, b)| (a - b).abs())
            .sum::<f32>()
            / ours.len() as f32;
        worst_input = worst_input.max(d);
        worst_mean = worst_mean.max(mean);
        assert!(d <= 1e-6, "{}: preprocessed input differs by {d}", s.key);
        assert!(mean <= 1e-7, "{}: mean input difference {mean}", s.key);
    }
    let results = clf.predict(&images).unwrap();
    let mut worst_prob = 0.0f32;
    for (s, r) in samples.iter().zip(&results) {
        assert_eq!(r.label, s.predicted, "{}: top-1", s.key);
        assert_eq!(labels[r.class_id], r.label);
        worst_prob = worst_prob.max(max_abs_diff(&r.probabilities, &s.probabilities));
    }
    // identical inputs, so only float noise of the network is left (measured 7.8e-7; logits
    // agree to ~2e-6, see the test above)
    assert!(worst_prob <= 2e-6, "probabilities differ by {worst_prob}");
    eprintln!(
        "{} images: max |Δinput| {worst_input:.2e} (mean {worst_mean:.2e}), max |Δprobability| {worst_prob:.2e}",
        samples.len()
    );
}

/// The ImageNet-shaped 1000-class state dict loads into a 4-class model with the head
/// replaced and the backbone kept; strict loading names the mis-shaped tensor.
#[test]
fn imagenet_shaped_checkpoint_head_replacement() {
    let device = backend::default_device();
    let path = fixtures().join("torchvision/mobilenet_v3_small-1000class-random.pth");
    let weights = into_tensor_map(read_checkpoint(&path).unwrap());
    assert_eq!(
        MobileNetV3Config::infer(&weights).unwrap(),
        MobileNetV3Config::small(1000)
    );
    let cfg = MobileNetV3Config::small(4);
    let err = MobileNetV3::load(&cfg, &weights, &device).unwrap_err();
    assert!(
        matches!(&err, VisionError::ShapeMismatch { name, .. } if name == "classifier.3.weight"),
        "{err}"
    );
    let (model, report) =
        MobileNetV3::load_with(&cfg, &weights, HeadPolicy::ReplaceIfMismatch, &device).unwrap();
    assert_eq!(report.head_replaced, Some((1000, 4)));
    let back = model.to_tensor_map().unwrap();
    for name in [
        "features.0.0.weight",
        "features.5.block.2.fc1.weight",
        "classifier.0.weight",
    ] {
        assert_eq!(back.get(name), weights.get(name), "{name} not kept");
    }
    assert_eq!(
        back.require("classifier.3.weight").unwrap().shape,
        [4, 1024]
    );

    let labels: Vec<String> = ["ok", "ng", "scratch", "dent"].map(String::from).to_vec();
    let (clf, report) = Classifier::from_backbone(&weights, labels, device).unwrap();
    assert_eq!(report.head_replaced, Some((1000, 4)));
    let img = image::DynamicImage::ImageRgb8(image::RgbImage::from_pixel(
        300,
        200,
        image::Rgb([90, 120, 150]),
    ));
    let r = clf.predict(&[img]).unwrap();
    assert_eq!(r[0].probabilities.len(), 4);
}

/// A missing tensor is reported by name.
#[test]
fn missing_tensor_is_named() {
    let device = backend::default_device();
    let weights = into_tensor_map(read_checkpoint(&widgets_checkpoint()).unwrap());
    let partial: TensorMap = weights
        .iter()
        .filter(|(n, _)| *n != "features.4.block.2.fc2.bias")
        .map(|(n, t)| (n.to_string(), t.clone()))
        .collect();
    let err = MobileNetV3::load(&MobileNetV3Config::small(4), &partial, &device).unwrap_err();
    assert!(
        err.to_string().contains("features.4.block.2.fc2.bias"),
        "{err}"
    );
    let err = Classifier::from_weights(&weights, vec!["a".into()], backend::default_device())
        .unwrap_err();
    assert!(err.to_string().contains("4 classes"), "{err}");
}

/// One shared handle gives the same answers batched, one by one, and from several threads.
#[test]
fn batched_single_and_threaded_predictions_agree() {
    let (labels, samples, _) = expected();
    let clf = std::sync::Arc::new(
        Classifier::load(widgets_checkpoint(), Some(labels))
            .unwrap()
            .with_max_batch(3),
    );
    let images: Vec<_> = samples
        .iter()
        .take(4)
        .map(|s| image::DynamicImage::ImageRgb8(load_rgb(&s.image).unwrap()))
        .collect();
    let batched = clf.predict(&images).unwrap();
    let handles: Vec<_> = images
        .iter()
        .cloned()
        .map(|img| {
            let clf = clf.clone();
            std::thread::spawn(move || clf.predict(&[img]).unwrap().remove(0))
        })
        .collect();
    for (b, h) in batched.iter().zip(handles) {
        let single = h.join().unwrap();
        assert_eq!(b.class_id, single.class_id);
        assert!(max_abs_diff(&b.probabilities, &single.probabilities) < 1e-5);
    }
}
