//! `ap_per_class` parity with Ultralytics 8.4.190 (`tests/data/make_yolo_golden.py` ran its own functions).

#![allow(clippy::unwrap_used)]

use serde_json::Value;
use sightline_eval::yolo::ap_per_class;

fn f64s(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9
}

#[test]
fn ap_per_class_matches_ultralytics() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/yolo_ap_per_class.json"
    );
    let cases: Value = serde_json::from_str(&fs_err::read_to_string(path).unwrap()).unwrap();
    for (n, c) in cases.as_array().unwrap().iter().enumerate() {
        let tp: Vec<Vec<bool>> = c["tp"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                r.as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_i64().unwrap() != 0)
                    .collect()
            })
            .collect();
        let conf = f64s(&c["conf"]);
        let as_usize = |v: &Value| -> Vec<usize> {
            v.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_u64().unwrap() as usize)
                .collect()
        };
        let res = ap_per_class(
            &tp,
            &conf,
            &as_usize(&c["pred_cls"]),
            &as_usize(&c["target_cls"]),
        )
        .unwrap();
        let o = &c["out"];
        let classes = as_usize(&o["classes"]);
        assert_eq!(
            res.classes.iter().map(|m| m.class).collect::<Vec<_>>(),
            classes,
            "case {n}"
        );
        for (i, m) in res.classes.iter().enumerate() {
            assert!(
                close(m.precision, f64s(&o["p"])[i]),
                "case {n} class {i} p {} vs {}",
                m.precision,
                o["p"][i]
            );
            assert!(close(m.recall, f64s(&o["r"])[i]), "case {n} class {i} r");
            assert!(close(m.f1, f64s(&o["f1"])[i]), "case {n} class {i} f1");
            assert_eq!(m.tp, f64s(&o["tp"])[i], "case {n} class {i} tp");
            assert_eq!(m.fp, f64s(&o["fp"])[i], "case {n} class {i} fp");
            let want_ap = f64s(&o["ap"][i]);
            assert_eq!(want_ap.len(), m.ap.len());
            for (k, (g, w)) in m.ap.iter().zip(&want_ap).enumerate() {
                assert!(close(*g, *w), "case {n} class {i} ap[{k}] {g} vs {w}");
            }
        }
    }
}
