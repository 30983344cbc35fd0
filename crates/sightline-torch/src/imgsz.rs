//! The image size a checkpoint was trained at: [`Meta::imgsz`].
//!
//! Ultralytics predicts at the size stored in the checkpoint: `attempt_load_one_weight` merges
//! `ckpt["train_args"]` over `cfg/default.yaml` (`imgsz: 640`), `Model._reset_ckpt_args` keeps
//! `imgsz`, and the predictor runs `check_imgsz(args.imgsz, stride, min_dim=2)`. That check
//! accepts an int `n` (→ `[n, n]`), a list or tuple of one (`[n]` → `[n, n]`) or two (`[h, w]`)
//! numbers (floats are rounded up with the stride), or a string holding either (`"640"`,
//! `"[640, 480]"`); anything else is a `TypeError`/`ValueError` there. Our own checkpoints
//! record `train_args = {"imgsz": N}` in the same place (safetensors metadata key `train_args`),
//! so one reader serves both.
//!
//! [`Meta::imgsz`] follows that reading and returns the size *before* the stride rounding
//! (the consumer knows the stride). Values Ultralytics would reject, and a few it would quietly
//! turn into one stride (`0`, negative numbers, booleans), are an [`InvalidImgsz`] error here
//! instead: they only occur in damaged or hand-edited files.

use serde_json::Value as Json;

use crate::Meta;

/// Largest side accepted from a checkpoint; anything larger is treated as a damaged value.
pub const MAX_CHECKPOINT_IMGSZ: usize = 65_536;

/// An inference size as Ultralytics reads `imgsz`: `height × width` (an int `n` is `n × n`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageSize {
    /// Letterbox height.
    pub height: usize,
    /// Letterbox width.
    pub width: usize,
}

impl ImageSize {
    /// A square size.
    pub fn square(side: usize) -> Self {
        Self {
            height: side,
            width: side,
        }
    }

    /// The longer side (the letterbox size of a square pipeline).
    pub fn long_side(&self) -> usize {
        self.height.max(self.width)
    }

    /// Whether height and width are equal.
    pub fn is_square(&self) -> bool {
        self.height == self.width
    }
}

/// The checkpoint's `train_args.imgsz` is not an image size.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the checkpoint's train_args.imgsz is {value}, not an image size: {reason}")]
pub struct InvalidImgsz {
    /// The stored value (JSON).
    pub value: String,
    /// Why it is refused.
    pub reason: String,
}

impl Meta {
    /// The image size the checkpoint was trained at (`train_args["imgsz"]`, see the module
    /// docs): `Ok(None)` when the checkpoint does not record one (then Ultralytics uses its
    /// default, 640), an error when it records something that is not a size.
    pub fn imgsz(&self) -> Result<Option<ImageSize>, InvalidImgsz> {
        let Some(value) = self
            .train_args
            .as_ref()
            .and_then(Json::as_object)
            .and_then(|args| args.get("imgsz"))
        else {
            return Ok(None);
        };
        parse_imgsz(value, true).map(Some)
    }
}

fn invalid(value: &Json, reason: impl Into<String>) -> InvalidImgsz {
    InvalidImgsz {
        value: value.to_string(),
        reason: reason.into(),
    }
}

/// `imgsz` as `check_imgsz(…, min_dim=2)` reads it; `allow_str`: one level of string
/// (`"640"`, `"[640, 480]"`).
fn parse_imgsz(value: &Json, allow_str: bool) -> Result<ImageSize, InvalidImgsz> {
    match value {
        Json::Number(_) => {
            // A bare number must be an int (Ultralytics: a float is a TypeError).
            if value.as_u64().is_none() && value.as_i64().is_none() {
                return Err(invalid(value, "a single size must be an integer"));
            }
            side(value).map(ImageSize::square)
        }
        Json::Array(items) => match items.as_slice() {
            [s] => side(s).map(ImageSize::square),
            [h, w] => Ok(ImageSize {
                height: side(h)?,
                width: side(w)?,
            }),
            [] => Err(invalid(value, "an empty list")),
            _ => Err(invalid(
                value,
                "more than two dimensions (expected n or [height, width])",
            )),
        },
        Json::String(s) if allow_str => {
            let t = s.trim();
            if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
                let n: u64 = t
                    .parse()
                    .map_err(|_| invalid(value, "too large a number"))?;
                return parse_imgsz(&Json::from(n), false).map_err(|e| InvalidImgsz {
                    value: value.to_string(),
                    ..e
                });
            }
            // `'[640, 480]'` or `'(640, 480)'` (Python literals).
            let listish = t.replace('(', "[").replace(')', "]");
            match serde_json::from_str::<Json>(&listish) {
                Ok(parsed @ (Json::Array(_) | Json::Number(_))) => parse_imgsz(&parsed, false)
                    .map_err(|e| InvalidImgsz {
                        value: value.to_string(),
                        ..e
                    }),
                _ => Err(invalid(
                    value,
                    "a string that is neither a number nor a [height, width] list",
                )),
            }
        }
        Json::Null => Err(invalid(value, "no value (None)")),
        Json::Bool(_) => Err(invalid(value, "a boolean")),
        Json::String(_) | Json::Object(_) => Err(invalid(
            value,
            "expected an integer or a [height, width] list",
        )),
    }
}

/// One side: a positive number (floats rounded up, as `math.ceil(x / stride)` does), at most
/// [`MAX_CHECKPOINT_IMGSZ`].
fn side(v: &Json) -> Result<usize, InvalidImgsz> {
    let x = match v {
        Json::Number(n) => n
            .as_f64()
            .ok_or_else(|| invalid(v, "not a finite number"))?,
        _ => return Err(invalid(v, "a side must be a number")),
    };
    if !x.is_finite() || x <= 0.0 {
        return Err(invalid(v, "a side must be positive"));
    }
    if x > MAX_CHECKPOINT_IMGSZ as f64 {
        return Err(invalid(
            v,
            format!("larger than {MAX_CHECKPOINT_IMGSZ} pixels"),
        ));
    }
    Ok(x.ceil() as usize)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn meta(args: Option<Json>) -> Meta {
        Meta {
            train_args: args,
            ..Meta::default()
        }
    }

    fn read(v: Json) -> Result<Option<ImageSize>, InvalidImgsz> {
        meta(Some(json!({ "imgsz": v, "task": "segment" }))).imgsz()
    }

    #[test]
    fn ints_and_lists() {
        assert_eq!(read(json!(256)).unwrap(), Some(ImageSize::square(256)));
        assert_eq!(read(json!([320])).unwrap(), Some(ImageSize::square(320)));
        let hw = read(json!([480, 640])).unwrap().unwrap();
        assert_eq!((hw.height, hw.width, hw.long_side()), (480, 640, 640));
        assert!(!hw.is_square());
        // floats inside a list are rounded up (`math.ceil`)
        assert_eq!(
            read(json!([250.5, 256.0])).unwrap(),
            Some(ImageSize {
                height: 251,
                width: 256
            })
        );
    }

    #[test]
    fn strings_as_the_cli_writes_them() {
        assert_eq!(read(json!("640")).unwrap(), Some(ImageSize::square(640)));
        assert_eq!(
            read(json!("[480, 640]")).unwrap().map(|s| s.long_side()),
            Some(640)
        );
        assert_eq!(
            read(json!("(320,320)")).unwrap(),
            Some(ImageSize::square(320))
        );
    }

    #[test]
    fn missing_is_none() {
        assert_eq!(meta(None).imgsz().unwrap(), None);
        assert_eq!(meta(Some(json!({"epochs": 3}))).imgsz().unwrap(), None);
        assert_eq!(meta(Some(json!("not a dict"))).imgsz().unwrap(), None);
    }

    #[test]
    fn nonsense_is_a_clear_error() {
        for (v, why) in [
            (json!(null), "None"),
            (json!(true), "boolean"),
            (json!(0), "positive"),
            (json!(-32), "positive"),
            (json!(256.0), "integer"),
            (json!([]), "empty"),
            (json!([1, 2, 3]), "two dimensions"),
            (json!(["a", 2]), "number"),
            (json!("big"), "neither"),
            (json!("[[1]]"), "number"),
            (json!({"h": 1}), "integer"),
            (json!(1_000_000), "larger"),
            (json!("99999999999999999999999"), "large"),
        ] {
            let e = read(v.clone()).unwrap_err();
            assert!(e.to_string().contains(why), "{v}: {e}");
            assert!(e.to_string().contains("train_args.imgsz"), "{e}");
        }
    }

    #[test]
    fn safetensors_train_args_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.safetensors");
        let t = crate::TensorF32 {
            shape: vec![1],
            data: vec![0.0],
            dtype: crate::DType::F32,
        };
        let m = meta(Some(json!({"imgsz": 96})));
        crate::save_safetensors(&path, [("w", &t)], &m).unwrap();
        let back = crate::load(&path).unwrap();
        assert_eq!(back.meta.imgsz().unwrap(), Some(ImageSize::square(96)));
    }
}
