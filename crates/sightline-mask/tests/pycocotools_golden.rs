//! Bit-exactness against pycocotools: `tests/data/pycocotools_golden.json` was written by
//! `tests/data/make_golden.py` with the real pycocotools 2.0.11.

#![allow(clippy::unwrap_used)]

use serde_json::Value;
use sightline_mask::{Rle, box_iou_matrix, iou_matrix};

fn golden() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/pycocotools_golden.json"
    );
    serde_json::from_str(&fs_err::read_to_string(path).unwrap()).unwrap()
}

fn f64s(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

fn hw(c: &Value) -> (u32, u32) {
    (
        c["h"].as_u64().unwrap() as u32,
        c["w"].as_u64().unwrap() as u32,
    )
}

#[test]
fn polygons_rasterise_like_pycocotools() {
    let g = golden();
    for (i, c) in g["polygons"].as_array().unwrap().iter().enumerate() {
        let (h, w) = hw(c);
        let polys: Vec<Vec<f64>> = c["polygons"].as_array().unwrap().iter().map(f64s).collect();
        let r = Rle::from_polygons(&polys, h, w).unwrap();
        assert_eq!(
            r.to_compressed(),
            c["counts"].as_str().unwrap(),
            "polygon case {i}"
        );
        assert_eq!(r.area(), c["area"].as_u64().unwrap(), "polygon case {i}");
        assert_eq!(r.to_bbox().to_vec(), f64s(&c["bbox"]), "polygon case {i}");
    }
}

#[test]
fn boxes_rasterise_like_pycocotools() {
    let g = golden();
    for (i, c) in g["boxes"].as_array().unwrap().iter().enumerate() {
        let (h, w) = hw(c);
        let b = f64s(&c["bbox_in"]);
        let r = Rle::from_bbox(&[b[0], b[1], b[2], b[3]], h, w).unwrap();
        assert_eq!(
            r.to_compressed(),
            c["counts"].as_str().unwrap(),
            "box case {i}"
        );
    }
}

#[test]
fn masks_encode_like_pycocotools() {
    let g = golden();
    for (i, c) in g["masks"].as_array().unwrap().iter().enumerate() {
        let (h, w) = hw(c);
        let m: Vec<u8> = c["col_major"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u8)
            .collect();
        let r = Rle::encode_col_major(&m, h, w).unwrap();
        let s = c["counts"].as_str().unwrap();
        assert_eq!(r.to_compressed(), s, "mask case {i}");
        assert_eq!(Rle::from_compressed(s, h, w).unwrap(), r, "mask case {i}");
        assert_eq!(r.decode_col_major(), m, "mask case {i}");
        assert_eq!(r.area(), c["area"].as_u64().unwrap(), "mask case {i}");
        assert_eq!(r.to_bbox().to_vec(), f64s(&c["bbox"]), "mask case {i}");
    }
}

#[test]
fn ious_match_pycocotools() {
    let g = golden();
    for (i, c) in g["ious"].as_array().unwrap().iter().enumerate() {
        let (h, w) = hw(c);
        let dt: Vec<Rle> = c["dt"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| Rle::from_polygon(&f64s(p), h, w).unwrap())
            .collect();
        let gt: Vec<Rle> = c["gt"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| Rle::from_polygon(&f64s(p), h, w).unwrap())
            .collect();
        let crowd: Vec<bool> = c["crowd"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() != 0)
            .collect();
        let got = iou_matrix(&dt, &gt, &crowd);
        let want: Vec<f64> = c["iou"].as_array().unwrap().iter().flat_map(f64s).collect();
        assert_eq!(got, want, "iou case {i}");
        let db: Vec<[f64; 4]> = dt.iter().map(Rle::to_bbox).collect();
        let gb: Vec<[f64; 4]> = gt.iter().map(Rle::to_bbox).collect();
        let want: Vec<f64> = c["box_iou"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(f64s)
            .collect();
        assert_eq!(box_iou_matrix(&db, &gb, &crowd), want, "box iou case {i}");
    }
}
