//! The MobileNetV3-small classifier loop on a generated 3-class data set (colour patches with
//! noise, 32 px): the loss falls and validation top-1 beats chance, the experiment folder is
//! written, a run resumed after epoch 1 equals the uninterrupted run, the stop flag is
//! honoured, and starting weights come from torchvision `.pth` files with the head re-initialised.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use burn::tensor::Device;
use image::{Rgb, RgbImage};
use sightline_train::classify::{
    ClsImage, ClsInit, ClsRunConfig, ClsSample, init_classifier, init_from_path, train_classifier,
};
use sightline_train::control::TrainControl;
use sightline_train::experiment::{EpochRecord, Experiment};
use sightline_train::optim::OptimizerKind;
use sightline_train::rng::Rng;
use sightline_vision::mobilenet::MobileNetV3Variant;
use sightline_vision::weights::TensorMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

/// Burn's device generator (initialisation, dropout) is process-wide: tests that train or
/// initialise run one at a time so each run sees its own seeded sequence.
static RNG_LOCK: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    RNG_LOCK
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

const COLOURS: [[u8; 3]; 3] = [[200, 40, 40], [40, 180, 60], [50, 60, 210]];

/// `per_class` images of each class: a coloured square patch on a grey noisy background.
fn dataset(per_class: usize, seed: u64) -> Vec<ClsSample> {
    let mut rng = Rng::new(seed);
    let mut out = Vec::new();
    for _ in 0..per_class {
        for (class, col) in COLOURS.iter().enumerate() {
            let (x0, y0) = (rng.below(12) as u32, rng.below(12) as u32);
            let mut img = RgbImage::new(40, 40);
            for (x, y, p) in img.enumerate_pixels_mut() {
                let inside = (x0..x0 + 28).contains(&x) && (y0..y0 + 28).contains(&y);
                let noise = rng.below(40) as i32 - 20;
                let base = if inside { *col } else { [120, 120, 120] };
                *p = Rgb(base.map(|c| (i32::from(c) + noise).clamp(0, 255) as u8));
            }
            out.push(ClsSample {
                image: ClsImage::Decoded(img),
                class,
            });
        }
    }
    out
}

fn config(epochs: usize) -> ClsRunConfig {
    ClsRunConfig {
        epochs,
        batch: 6,
        imgsz: 32,
        optimizer: OptimizerKind::AdamW,
        lr0: 0.005,
        warmup_epochs: 0.0,
        // 4 steps an epoch: running statistics must settle within the test
        bn_momentum: Some(0.3),
        seed: 11,
        workers: 2,
        ..ClsRunConfig::default()
    }
}

fn start(seed: u64, device: &Device) -> sightline_vision::mobilenet::MobileNetV3 {
    device.seed(seed);
    init_classifier(
        Some(MobileNetV3Variant::Small),
        3,
        &ClsInit::Scratch,
        device,
    )
    .unwrap()
    .model
}

fn run(
    cfg: &ClsRunConfig,
    exp: &mut Experiment,
    control: &TrainControl,
    init_seed: u64,
    on_epoch: impl FnMut(&EpochRecord),
) {
    let device = Device::flex().autodiff();
    let model = start(init_seed, &device);
    let mut opt = cfg.optimizer(&model);
    train_classifier(
        model,
        &mut opt,
        cfg,
        dataset(8, 1),
        dataset(4, 2),
        exp,
        &device,
        control,
        on_epoch,
    )
    .unwrap();
}

fn new_exp(root: &Path) -> Experiment {
    Experiment::create(
        root,
        1_795_900_847,
        &serde_json::json!({"test": true}),
        "v1",
    )
    .unwrap()
}

#[test]
fn loss_falls_and_top1_beats_chance() {
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    let mut exp = new_exp(tmp.path());
    let cfg = config(4);
    let batches = Arc::new(Mutex::new(0usize));
    let b = batches.clone();
    let control = TrainControl::new().with_batch_callback(move |_| *b.lock().unwrap() += 1);
    run(&cfg, &mut exp, &control, 5, |_| {});
    let recs = exp.records();
    assert_eq!(recs.len(), 4);
    assert_eq!(*batches.lock().unwrap(), 4 * 4); // 24 images / 6
    let (first, last) = (recs[0].losses["ce"], recs[3].losses["ce"]);
    assert!(last < first, "loss {first} -> {last}");
    let top1 = recs.iter().map(|r| r.metrics["top1"]).fold(0.0, f64::max);
    // chance is 1/3 (4 of 12); deterministic with the seed
    assert!(top1 >= 0.5, "best val top-1 {top1}");
    assert!(recs[3].metrics.contains_key("recall/2"));
    assert!(recs[3].metrics.contains_key("precision/0"));
    assert!(!recs[3].metrics.contains_key("top5")); // fewer than 5 classes
    assert_eq!(recs[3].fitness, recs[3].metrics["top1"]);
    let w = exp.dir().join("weights");
    for f in [
        "last.safetensors",
        "best.safetensors",
        "last.optim.safetensors",
    ] {
        assert!(w.join(f).exists(), "{f}");
    }
    assert!(exp.dir().join("summary.json").exists());
    // the checkpoint is a torchvision-named MobileNetV3 that loads back
    let d = Device::flex();
    let back = init_from_path(None, 3, Some(&w.join("best.safetensors")), &d).unwrap();
    assert!(back.head_replaced.is_none());
}

fn strip_time(dir: &Path) -> Vec<EpochRecord> {
    let text = fs_err::read_to_string(dir.join("metrics.json")).unwrap();
    let mut recs: Vec<EpochRecord> = serde_json::from_str(&text).unwrap();
    for r in &mut recs {
        r.time_s = 0.0;
    }
    recs
}

fn assert_close_records(a: &[EpochRecord], b: &[EpochRecord]) {
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(b) {
        assert_eq!(x.epoch, y.epoch);
        assert_eq!(
            x.metrics.keys().collect::<Vec<_>>(),
            y.metrics.keys().collect::<Vec<_>>()
        );
        for (k, v) in x.losses.iter().chain(&x.metrics) {
            let w = y.losses.get(k).or_else(|| y.metrics.get(k)).unwrap();
            assert!((v - w).abs() < 1e-5, "epoch {} {k}: {v} vs {w}", x.epoch);
        }
        assert!((x.lr - y.lr).abs() < 1e-12);
    }
}

fn assert_close_weights(a: &Path, b: &Path) {
    let (a, b) = (
        TensorMap::from_safetensors_file(a).unwrap(),
        TensorMap::from_safetensors_file(b).unwrap(),
    );
    assert_eq!(a.len(), b.len());
    for (name, t) in a.iter() {
        let u = b.get(name).unwrap();
        assert_eq!(t.shape, u.shape, "{name}");
        for (x, y) in t.data.iter().zip(&u.data) {
            assert!((x - y).abs() <= 1e-5, "{name}: {x} vs {y}");
        }
    }
}

#[test]
fn resume_after_epoch_1_equals_uninterrupted_and_stop_is_honoured() {
    let _serial = serial();
    let cfg = ClsRunConfig {
        ema: true,
        ..config(2)
    };
    // uninterrupted
    let tmp_a = tempfile::tempdir().unwrap();
    let mut a = new_exp(tmp_a.path());
    run(&cfg, &mut a, &TrainControl::new(), 5, |_| {});
    assert_eq!(a.records().len(), 2);

    // stopped after epoch 0's checkpoint, then resumed from freshly built objects
    let tmp_b = tempfile::tempdir().unwrap();
    let mut b = new_exp(tmp_b.path());
    let control = TrainControl::new();
    let c = control.clone();
    run(&cfg, &mut b, &control, 5, move |_| c.request_stop());
    assert_eq!(b.records().len(), 1);
    let summary: serde_json::Value =
        serde_json::from_str(&fs_err::read_to_string(b.dir().join("summary.json")).unwrap())
            .unwrap();
    assert_eq!(summary["epochs_completed"], 1);
    let mut b = Experiment::open(b.dir()).unwrap();
    // a different initialisation: resuming must restore the trained state
    run(&cfg, &mut b, &TrainControl::new(), 77, |_| {});
    assert_eq!(b.records().len(), 2);

    assert_close_records(&strip_time(a.dir()), &strip_time(b.dir()));
    for f in ["last.safetensors", "best.safetensors"] {
        assert_close_weights(
            &a.weights_path(f.trim_end_matches(".safetensors")),
            &b.dir().join("weights").join(f),
        );
    }

    // a stop requested mid-epoch: nothing of the unfinished epoch is recorded
    let tmp_c = tempfile::tempdir().unwrap();
    let mut c_exp = new_exp(tmp_c.path());
    let control = TrainControl::new();
    let c2 = control.clone();
    let control = control.with_batch_callback(move |p| {
        if p.batch == 1 {
            c2.request_stop();
        }
    });
    run(&cfg, &mut c_exp, &control, 5, |_| {});
    assert!(c_exp.records().is_empty());
    assert!(!c_exp.weights_path("last").exists());
    assert_eq!(
        fs_err::read_to_string(c_exp.dir().join("metrics.json"))
            .unwrap()
            .trim(),
        "[]"
    );
}

#[test]
fn refuses_bad_inputs() {
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    let mut exp = new_exp(tmp.path());
    let device = Device::flex().autodiff();
    let model = start(1, &device);
    let cfg = config(1);
    let mut opt = cfg.optimizer(&model);
    let ctl = TrainControl::new();
    let err = train_classifier(
        model.clone(),
        &mut opt,
        &cfg,
        Vec::new(),
        dataset(1, 2),
        &mut exp,
        &device,
        &ctl,
        |_| {},
    )
    .unwrap_err();
    assert!(err.to_string().contains("empty"), "{err}");
    let mut bad = dataset(1, 1);
    bad[0].class = 7;
    let err = train_classifier(
        model.clone(),
        &mut opt,
        &cfg,
        bad,
        dataset(1, 2),
        &mut exp,
        &device,
        &ctl,
        |_| {},
    )
    .unwrap_err();
    assert!(err.to_string().contains("class index 7"), "{err}");
    let weighted = ClsRunConfig {
        class_weights: Some(vec![1.0, 2.0]),
        ..cfg.clone()
    };
    let err = train_classifier(
        model,
        &mut opt,
        &weighted,
        dataset(1, 1),
        dataset(1, 2),
        &mut exp,
        &device,
        &ctl,
        |_| {},
    )
    .unwrap_err();
    assert!(err.to_string().contains("class weights"), "{err}");
}

#[test]
fn init_from_torchvision_reinitialises_the_head() {
    let _serial = serial();
    let fx = std::env::var_os("SIGHTLINE_FIXTURES")
        .map_or_else(
            || Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures"),
            std::path::PathBuf::from,
        )
        .join("torchvision");
    assert!(fx.is_dir(), "fixtures folder {} is missing", fx.display());
    let d = Device::flex();
    // ImageNet-shaped 1000-class state dict -> 4 classes: backbone kept, head re-initialised
    let imagenet = fx.join("mobilenet_v3_small-1000class-random.pth");
    let s = init_classifier(None, 4, &ClsInit::Checkpoint(imagenet.clone()), &d).unwrap();
    assert_eq!(s.head_replaced, Some((1000, 4)));
    assert_eq!(s.model.num_classes(), 4);
    assert_eq!(s.config.variant, MobileNetV3Variant::Small);
    let ours = s.model.to_tensor_map().unwrap();
    let file = sightline_vision::checkpoint::into_tensor_map(
        sightline_vision::checkpoint::read_checkpoint(&imagenet).unwrap(),
    );
    let name = "features.1.block.0.0.weight";
    assert_eq!(ours.get(name).unwrap().data, file.get(name).unwrap().data);
    assert_eq!(
        ours.get("classifier.3.weight").unwrap().shape,
        vec![4, 1024]
    );
    assert_eq!(
        ours.get("classifier.0.weight").unwrap().data,
        file.get("classifier.0.weight").unwrap().data
    );
    // the 4-class widgets checkpoint loads as is, and re-heads for 3 classes
    let widgets = fx.join("mobilenet_v3_small-widgets.pth");
    let s = init_from_path(None, 4, Some(&widgets), &d).unwrap();
    assert!(s.head_replaced.is_none());
    let s = init_from_path(None, 3, Some(&widgets), &d).unwrap();
    assert_eq!(s.head_replaced, Some((4, 3)));
    // the wrong kind of checkpoint is a typed error naming the file
    let yolo = fx.join("../ultralytics/yolov8n-seg-widgets.pt");
    let err = init_from_path(None, 3, Some(&yolo), &d).unwrap_err();
    assert!(err.to_string().contains("yolov8n-seg-widgets.pt"), "{err}");
}
