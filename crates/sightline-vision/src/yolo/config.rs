//! YOLOv8-seg architecture configuration: compound scaling (depth, width, max channels) as in
//! Ultralytics' `yolov8-seg.yaml`, and inference of the configuration from a state dict.

use crate::error::{Result, VisionError};
use crate::weights::TensorMap;

/// Rounds half to even, like Python's `round`.
pub(crate) fn py_round(x: f64) -> f64 {
    x.round_ties_even()
}

/// Ultralytics `make_divisible(x, 8)`: the next multiple of 8 at or above `x`.
fn make_divisible(x: f64) -> usize {
    ((x / 8.0).ceil() * 8.0) as usize
}

/// Everything that determines the YOLOv8-seg layer shapes.
#[derive(Debug, Clone, PartialEq)]
pub struct YoloV8SegConfig {
    /// Number of classes.
    pub num_classes: usize,
    /// Scale letter (n, s, m, l, x) when the configuration is one of the standard scales.
    pub scale: Option<char>,
    /// Depth multiple (repeats of C2f bottlenecks).
    pub depth_multiple: f64,
    /// Width multiple (channels).
    pub width_multiple: f64,
    /// Channel cap applied before the width multiple.
    pub max_channels: usize,
    /// Mask prototypes / coefficients per detection.
    pub num_masks: usize,
    /// Proto hidden channels before width scaling (256 in the YAML).
    pub proto_channels: usize,
    /// DFL bins per box side.
    pub reg_max: usize,
    /// Whether SPPF's first conv has SiLU (true in YOLOv8 checkpoints; some Ultralytics
    /// versions build it without activation).
    pub sppf_cv1_act: bool,
}

/// The standard scales: (letter, depth, width, max channels).
const SCALES: [(char, f64, f64, usize); 5] = [
    ('n', 0.33, 0.25, 1024),
    ('s', 0.33, 0.50, 1024),
    ('m', 0.67, 0.75, 768),
    ('l', 1.00, 1.00, 512),
    ('x', 1.00, 1.25, 512),
];

/// Channel widths of one configuration (after scaling).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Widths {
    /// Scaled 64.
    pub c64: usize,
    /// Scaled 128.
    pub c128: usize,
    /// Scaled 256.
    pub c256: usize,
    /// Scaled 512.
    pub c512: usize,
    /// Scaled 1024.
    pub c1024: usize,
}

impl YoloV8SegConfig {
    /// A standard scale by letter (`n`, `s`, `m`, `l`, `x`).
    pub fn scale(letter: char, num_classes: usize) -> Result<Self> {
        let letter = letter.to_ascii_lowercase();
        let (_, depth, width, max) =
            SCALES
                .iter()
                .copied()
                .find(|s| s.0 == letter)
                .ok_or_else(|| {
                    VisionError::InvalidArgument(format!(
                        "unknown YOLOv8 scale `{letter}` (expected n, s, m, l or x)"
                    ))
                })?;
        if num_classes == 0 {
            return Err(VisionError::InvalidArgument(
                "a detector needs at least one class".into(),
            ));
        }
        Ok(Self {
            num_classes,
            scale: Some(letter),
            depth_multiple: depth,
            width_multiple: width,
            max_channels: max,
            num_masks: 32,
            proto_channels: 256,
            reg_max: 16,
            sppf_cv1_act: true,
        })
    }

    fn standard(letter: char, num_classes: usize) -> Self {
        let (_, depth, width, max) = SCALES
            .iter()
            .copied()
            .find(|s| s.0 == letter)
            .unwrap_or(SCALES[0]);
        Self {
            num_classes: num_classes.max(1),
            scale: Some(letter),
            depth_multiple: depth,
            width_multiple: width,
            max_channels: max,
            num_masks: 32,
            proto_channels: 256,
            reg_max: 16,
            sppf_cv1_act: true,
        }
    }

    /// yolov8n-seg.
    pub fn n(num_classes: usize) -> Self {
        Self::standard('n', num_classes)
    }
    /// yolov8s-seg.
    pub fn s(num_classes: usize) -> Self {
        Self::standard('s', num_classes)
    }
    /// yolov8m-seg.
    pub fn m(num_classes: usize) -> Self {
        Self::standard('m', num_classes)
    }
    /// yolov8l-seg.
    pub fn l(num_classes: usize) -> Self {
        Self::standard('l', num_classes)
    }
    /// yolov8x-seg.
    pub fn x(num_classes: usize) -> Self {
        Self::standard('x', num_classes)
    }

    /// Scaled channel count of a YAML channel number.
    pub fn ch(&self, c: usize) -> usize {
        make_divisible(c.min(self.max_channels) as f64 * self.width_multiple)
    }

    /// Scaled repeat count of a YAML repeat number.
    pub fn depth(&self, n: usize) -> usize {
        if n > 1 {
            (py_round(n as f64 * self.depth_multiple) as usize).max(1)
        } else {
            n
        }
    }

    /// The five scaled backbone widths.
    pub fn widths(&self) -> Widths {
        Widths {
            c64: self.ch(64),
            c128: self.ch(128),
            c256: self.ch(256),
            c512: self.ch(512),
            c1024: self.ch(1024),
        }
    }

    /// Proto hidden channels after scaling.
    pub fn proto_hidden(&self) -> usize {
        self.ch(self.proto_channels)
    }

    /// Output channels per anchor of the decoded prediction: `4 + nc + nm`.
    pub fn pred_channels(&self) -> usize {
        4 + self.num_classes + self.num_masks
    }

    /// Recognises scale and class count from Ultralytics-named weights (`model.0.conv.weight`,
    /// `model.2.m.*`, `model.22.cv3.0.2.weight`, `model.22.cv4.0.2.weight`).
    pub fn infer(weights: &TensorMap) -> Result<Self> {
        let stem = weights.require("model.0.conv.weight")?;
        let c64 = stem.shape.first().copied().unwrap_or(0);
        let repeats = (0..)
            .take_while(|i| {
                weights
                    .get(&format!("model.2.m.{i}.cv1.conv.weight"))
                    .is_some()
            })
            .count();
        let cls = weights.require("model.22.cv3.0.2.weight")?;
        let num_classes = cls.shape.first().copied().unwrap_or(0);
        let masks = weights.require("model.22.cv4.0.2.weight")?;
        let num_masks = masks.shape.first().copied().unwrap_or(0);
        let found = SCALES.iter().find(|&&(letter, ..)| {
            let c = Self::standard(letter, 1);
            c.ch(64) == c64 && c.depth(3) == repeats
        });
        let Some(&(letter, ..)) = found else {
            return Err(VisionError::Unsupported(format!(
                "no YOLOv8 scale has a {c64}-channel stem and {repeats} bottleneck(s) in layer 2"
            )));
        };
        if num_classes == 0 || num_masks == 0 {
            return Err(VisionError::Unsupported(
                "the segmentation head has no classes or no mask coefficients".into(),
            ));
        }
        let mut config = Self::standard(letter, num_classes);
        config.num_masks = num_masks;
        let box_out = weights.require("model.22.cv2.0.2.weight")?;
        config.reg_max = box_out.shape.first().copied().unwrap_or(64) / 4;
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scaled_widths_match_ultralytics() {
        // channels printed by Ultralytics for each scale (layer 0 / 9 / proto hidden)
        let n = YoloV8SegConfig::n(80);
        assert_eq!((n.ch(64), n.ch(1024), n.proto_hidden()), (16, 256, 64));
        let s = YoloV8SegConfig::s(80);
        assert_eq!((s.ch(64), s.ch(1024), s.proto_hidden()), (32, 512, 128));
        let m = YoloV8SegConfig::m(80);
        assert_eq!((m.ch(64), m.ch(1024), m.proto_hidden()), (48, 576, 192));
        let l = YoloV8SegConfig::l(80);
        assert_eq!((l.ch(64), l.ch(1024), l.proto_hidden()), (64, 512, 256));
        let x = YoloV8SegConfig::x(80);
        assert_eq!((x.ch(64), x.ch(1024), x.proto_hidden()), (80, 640, 320));
    }

    #[test]
    fn repeats_match_ultralytics() {
        let d = |c: YoloV8SegConfig| (c.depth(3), c.depth(6));
        assert_eq!(d(YoloV8SegConfig::n(1)), (1, 2));
        assert_eq!(d(YoloV8SegConfig::s(1)), (1, 2));
        assert_eq!(d(YoloV8SegConfig::m(1)), (2, 4));
        assert_eq!(d(YoloV8SegConfig::l(1)), (3, 6));
        assert_eq!(d(YoloV8SegConfig::x(1)), (3, 6));
    }

    #[test]
    fn scale_letter_is_validated() {
        assert!(YoloV8SegConfig::scale('q', 3).is_err());
        assert!(YoloV8SegConfig::scale('s', 0).is_err());
        assert_eq!(
            YoloV8SegConfig::scale('M', 3).unwrap(),
            YoloV8SegConfig::m(3)
        );
    }

    #[test]
    fn python_rounding_is_half_to_even() {
        assert_eq!(py_round(2.5), 2.0);
        assert_eq!(py_round(3.5), 4.0);
        assert_eq!(py_round(-0.5), -0.0);
        assert_eq!(py_round(1.6), 2.0);
    }
}
