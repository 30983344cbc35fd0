//! Loads the reference checkpoints in `shared/fixtures` and checks that damaged files give
//! errors, never panics.
#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::path::PathBuf;

use sightline_torch::{CheckpointKind, DType, ErrorKind, load, load_bytes};

fn fixtures() -> PathBuf {
    std::env::var_os("SIGHTLINE_FIXTURES").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures"),
        PathBuf::from,
    )
}

fn fixture(rel: &str) -> PathBuf {
    let p = fixtures().join(rel);
    assert!(p.exists(), "missing fixture {}", p.display());
    p
}

#[test]
fn ultralytics_widgets_checkpoint() {
    let ck = load(fixture("ultralytics/yolov8n-seg-widgets.pt")).unwrap();
    assert_eq!(ck.kind, CheckpointKind::Ultralytics);
    // 417 state-dict entries; the pickle also holds 4 attribute tensors (stride, anchors, …)
    // that are not part of the state dict.
    assert_eq!(ck.tensors.len(), 417);
    let m = &ck.meta;
    assert_eq!(
        m.names.as_deref(),
        Some(&["scratch".to_string(), "dent".into(), "ng".into()][..])
    );
    assert_eq!(m.scale.as_deref(), Some("n"));
    assert_eq!(m.nc, Some(3));
    assert_eq!(m.task.as_deref(), Some("segment"));
    assert_eq!(m.stride.as_deref(), Some(&[8.0, 16.0, 32.0][..]));
    assert_eq!(
        m.model_class.as_deref(),
        Some("ultralytics.nn.tasks.SegmentationModel")
    );
    assert!(m.train_args.is_some());
    assert_eq!(
        m.info.get("version").and_then(|v| v.as_str()),
        Some("8.4.190")
    );

    let w = ck.tensor("model.0.conv.weight", &[16, 3, 3, 3]).unwrap();
    assert_eq!(w.dtype, DType::F16);
    assert!(w.data.iter().all(|x| x.is_finite()) && w.data.iter().any(|&x| x != 0.0));
    ck.tensor("model.22.proto.cv1.conv.weight", &[64, 64, 3, 3])
        .unwrap();
    // Ultralytics' DFL conv holds arange(16): a value check independent of our decoder
    let dfl = ck
        .tensor("model.22.dfl.conv.weight", &[1, 16, 1, 1])
        .unwrap();
    let expected: Vec<f32> = (0..16).map(|i| i as f32).collect();
    assert_eq!(dfl.data, expected);
    // batch-norm running variances are positive
    let var = ck.tensor("model.0.bn.running_var", &[16]).unwrap();
    assert!(var.data.iter().all(|&v| v > 0.0));
    let nbt = ck.get("model.0.bn.num_batches_tracked").unwrap();
    assert_eq!((nbt.shape.len(), nbt.dtype), (0, DType::I64));
    // the three class-score branches end in nc=3 outputs
    for i in 0..3 {
        ck.tensor(&format!("model.22.cv3.{i}.2.bias"), &[3])
            .unwrap();
    }
}

#[test]
fn ultralytics_random_80class_s_checkpoint() {
    let ck = load(fixture("ultralytics/yolov8s-seg-80class-random.pt")).unwrap();
    assert_eq!(ck.kind, CheckpointKind::Ultralytics);
    assert_eq!(ck.tensors.len(), 417);
    assert_eq!(ck.meta.scale.as_deref(), Some("s"));
    assert_eq!(ck.meta.nc, Some(80));
    assert_eq!(ck.meta.names.as_ref().map(Vec::len), Some(80));
    ck.tensor("model.0.conv.weight", &[32, 3, 3, 3]).unwrap();
    ck.tensor("model.22.cv3.0.2.bias", &[80]).unwrap();
    let e = ck.tensor("model.22.cv3.0.2.bias", &[3]).unwrap_err();
    assert!(matches!(e.kind, ErrorKind::ShapeMismatch { .. }));
    assert!(e.to_string().contains("model.22.cv3.0.2.bias"), "{e}");
    let e = ck.tensor("model.99.nothing", &[1]).unwrap_err();
    assert!(
        e.to_string().contains("yolov8s-seg-80class-random.pt"),
        "{e}"
    );
    assert!(
        e.to_string().contains("missing tensor model.99.nothing"),
        "{e}"
    );
}

#[test]
fn torchvision_state_dicts() {
    for (file, classes) in [
        ("torchvision/mobilenet_v3_small-widgets.pth", 4),
        ("torchvision/mobilenet_v3_small-1000class-random.pth", 1000),
    ] {
        let ck = load(fixture(file)).unwrap();
        assert_eq!(ck.kind, CheckpointKind::TorchStateDict, "{file}");
        assert_eq!(ck.tensors.len(), 244, "{file}");
        assert_eq!(ck.tensors.get_index(0).unwrap().0, "features.0.0.weight");
        ck.tensor("features.0.0.weight", &[16, 3, 3, 3]).unwrap();
        ck.tensor("classifier.0.weight", &[1024, 576]).unwrap();
        ck.tensor("classifier.3.weight", &[classes, 1024]).unwrap();
        ck.tensor("classifier.3.bias", &[classes]).unwrap();
        let var = ck.tensor("features.0.1.running_var", &[16]).unwrap();
        assert!(var.data.iter().all(|&v| v > 0.0));
        assert_eq!(ck.meta, Default::default());
    }
}

#[test]
fn truncated_archives_are_errors() {
    let bytes = fs_err::read(fixture("torchvision/mobilenet_v3_small-widgets.pth")).unwrap();
    let n = bytes.len();
    let mut cuts: Vec<usize> = (0..64).collect();
    cuts.extend((1..200).map(|i| i * n / 200));
    cuts.extend([n - 1, n - 22, n - 100]);
    for cut in cuts {
        let r = load_bytes("cut.pth", &bytes[..cut]);
        assert!(r.is_err(), "cut at {cut} loaded");
    }
}

/// Writes a stored (uncompressed) zip with the given records.
fn zip_of(records: &[(&str, &[u8])]) -> Vec<u8> {
    let mut buf = std::io::Cursor::new(Vec::new());
    {
        let mut w = zip::ZipWriter::new(&mut buf);
        let opts =
            zip::write::FileOptions::default().compression_method(zip::CompressionMethod::Stored);
        for (name, data) in records {
            w.start_file(*name, opts).unwrap();
            w.write_all(data).unwrap();
        }
        w.finish().unwrap();
    }
    buf.into_inner()
}

fn widgets_pickle() -> (Vec<u8>, Vec<(String, Vec<u8>)>) {
    let bytes = fs_err::read(fixture("ultralytics/yolov8n-seg-widgets.pt")).unwrap();
    let mut z = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
    let mut pkl = Vec::new();
    let mut others = Vec::new();
    for i in 0..z.len() {
        let mut f = z.by_index(i).unwrap();
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut f, &mut data).unwrap();
        if f.name().ends_with("data.pkl") {
            pkl = data;
        } else {
            others.push((f.name().replacen("best/", "x/", 1), data));
        }
    }
    (pkl, others)
}

#[test]
fn truncated_and_corrupted_pickles_are_errors_not_panics() {
    let (pkl, others) = widgets_pickle();
    let others: Vec<(&str, &[u8])> = others
        .iter()
        .map(|(n, d)| (n.as_str(), d.as_slice()))
        .collect();
    // the re-packed archive (different top folder) still loads
    let mut records = vec![("x/data.pkl", pkl.as_slice())];
    records.extend(others.iter().copied());
    let ck = load_bytes("repacked.pt", &zip_of(&records)).unwrap();
    assert_eq!(ck.tensors.len(), 417);

    let mut cuts: Vec<usize> = (0..300).collect();
    cuts.extend((1..60).map(|i| i * pkl.len() / 60));
    for cut in cuts {
        let mut records = vec![("x/data.pkl", &pkl[..cut])];
        records.extend(others.iter().copied());
        let e = load_bytes("cut.pt", &zip_of(&records)).unwrap_err();
        assert!(matches!(e.kind, ErrorKind::Pickle { .. }), "cut {cut}: {e}");
    }
    // flipped bytes: any outcome but a panic
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..40 {
        let mut bad = pkl.clone();
        for _ in 0..8 {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let pos = (seed >> 33) as usize % bad.len();
            bad[pos] = (seed >> 17) as u8;
        }
        let mut records = vec![("x/data.pkl", bad.as_slice())];
        records.extend(others.iter().copied());
        let _ = load_bytes("flipped.pt", &zip_of(&records));
    }
}

#[test]
fn missing_or_short_storage_is_reported() {
    let (pkl, others) = widgets_pickle();
    let mut records: Vec<(&str, &[u8])> = vec![("x/data.pkl", pkl.as_slice())];
    for (n, d) in &others {
        if n == "x/data/0" {
            continue; // model.0.conv.weight's storage
        }
        if n == "x/data/1" {
            records.push((n.as_str(), &d[..d.len() - 2]));
            continue;
        }
        records.push((n.as_str(), d.as_slice()));
    }
    let e = load_bytes("broken.pt", &zip_of(&records)).unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("x/data/0") || msg.contains("x/data/1"),
        "{msg}"
    );
    // no data.pkl at all
    let e = load_bytes("empty.pt", &zip_of(&[("x/version", b"3\n")])).unwrap_err();
    assert!(matches!(e.kind, ErrorKind::MissingRecord(_)), "{e}");
}

#[test]
fn cyclic_module_tree_is_an_error() {
    // obj = M(); obj.__dict__ = {'_parameters': {}, '_modules': {'a': obj}}
    let mut p = vec![0x80, 2, b'c'];
    p.extend(b"torch.nn\nM\n");
    p.extend([b')', 0x81, b'q', 0, b'}', b'(']);
    p.extend([0x8c, 11]);
    p.extend(b"_parameters");
    p.push(b'}');
    p.extend([0x8c, 8]);
    p.extend(b"_modules");
    p.extend([b'}', 0x8c, 1, b'a', b'h', 0, b's', b'u', b'b', b'.']);
    let e = load_bytes("cycle.pt", &zip_of(&[("c/data.pkl", &p)])).unwrap_err();
    assert!(matches!(e.kind, ErrorKind::Layout(_)), "{e}");
}

#[test]
fn missing_file_names_the_path() {
    let e = load("/nonexistent/dir/model.pt").unwrap_err();
    assert!(e.to_string().contains("/nonexistent/dir/model.pt"), "{e}");
}
