//! Drawing detections onto images: translucent masks, box outlines and labels rendered with a
//! small built-in 5×7 bitmap font (upper-case letters, digits and a few signs).

use std::path::Path;

use image::{Rgb, RgbImage};

use crate::error::{Result, VisionError};
use crate::segment::Detection;

/// Class colours, cycled by class id.
const PALETTE: [[u8; 3]; 10] = [
    [255, 56, 56],
    [50, 205, 50],
    [30, 144, 255],
    [255, 178, 29],
    [207, 100, 255],
    [0, 206, 209],
    [255, 105, 180],
    [154, 205, 50],
    [255, 140, 0],
    [72, 61, 255],
];

/// Colour of a class.
pub fn class_color(class_id: usize) -> [u8; 3] {
    PALETTE[class_id % PALETTE.len()]
}

/// Glyphs: 7 rows of 5 columns, `#` = ink.
const GLYPHS: &[(char, [&str; 7])] = &[
    (
        'A',
        [
            ".###.", "#...#", "#...#", "#####", "#...#", "#...#", "#...#",
        ],
    ),
    (
        'B',
        [
            "####.", "#...#", "#...#", "####.", "#...#", "#...#", "####.",
        ],
    ),
    (
        'C',
        [
            ".###.", "#...#", "#....", "#....", "#....", "#...#", ".###.",
        ],
    ),
    (
        'D',
        [
            "####.", "#...#", "#...#", "#...#", "#...#", "#...#", "####.",
        ],
    ),
    (
        'E',
        [
            "#####", "#....", "#....", "####.", "#....", "#....", "#####",
        ],
    ),
    (
        'F',
        [
            "#####", "#....", "#....", "####.", "#....", "#....", "#....",
        ],
    ),
    (
        'G',
        [
            ".###.", "#...#", "#....", "#.###", "#...#", "#...#", ".####",
        ],
    ),
    (
        'H',
        [
            "#...#", "#...#", "#...#", "#####", "#...#", "#...#", "#...#",
        ],
    ),
    (
        'I',
        [
            ".###.", "..#..", "..#..", "..#..", "..#..", "..#..", ".###.",
        ],
    ),
    (
        'J',
        [
            "..###", "...#.", "...#.", "...#.", "...#.", "#..#.", ".##..",
        ],
    ),
    (
        'K',
        [
            "#...#", "#..#.", "#.#..", "##...", "#.#..", "#..#.", "#...#",
        ],
    ),
    (
        'L',
        [
            "#....", "#....", "#....", "#....", "#....", "#....", "#####",
        ],
    ),
    (
        'M',
        [
            "#...#", "##.##", "#.#.#", "#.#.#", "#...#", "#...#", "#...#",
        ],
    ),
    (
        'N',
        [
            "#...#", "#...#", "##..#", "#.#.#", "#..##", "#...#", "#...#",
        ],
    ),
    (
        'O',
        [
            ".###.", "#...#", "#...#", "#...#", "#...#", "#...#", ".###.",
        ],
    ),
    (
        'P',
        [
            "####.", "#...#", "#...#", "####.", "#....", "#....", "#....",
        ],
    ),
    (
        'Q',
        [
            ".###.", "#...#", "#...#", "#...#", "#.#.#", "#..#.", ".##.#",
        ],
    ),
    (
        'R',
        [
            "####.", "#...#", "#...#", "####.", "#.#..", "#..#.", "#...#",
        ],
    ),
    (
        'S',
        [
            ".####", "#....", "#....", ".###.", "....#", "....#", "####.",
        ],
    ),
    (
        'T',
        [
            "#####", "..#..", "..#..", "..#..", "..#..", "..#..", "..#..",
        ],
    ),
    (
        'U',
        [
            "#...#", "#...#", "#...#", "#...#", "#...#", "#...#", ".###.",
        ],
    ),
    (
        'V',
        [
            "#...#", "#...#", "#...#", "#...#", "#...#", ".#.#.", "..#..",
        ],
    ),
    (
        'W',
        [
            "#...#", "#...#", "#...#", "#.#.#", "#.#.#", "#.#.#", ".#.#.",
        ],
    ),
    (
        'X',
        [
            "#...#", "#...#", ".#.#.", "..#..", ".#.#.", "#...#", "#...#",
        ],
    ),
    (
        'Y',
        [
            "#...#", "#...#", ".#.#.", "..#..", "..#..", "..#..", "..#..",
        ],
    ),
    (
        'Z',
        [
            "#####", "....#", "...#.", "..#..", ".#...", "#....", "#####",
        ],
    ),
    (
        '0',
        [
            ".###.", "#...#", "#..##", "#.#.#", "##..#", "#...#", ".###.",
        ],
    ),
    (
        '1',
        [
            "..#..", ".##..", "..#..", "..#..", "..#..", "..#..", ".###.",
        ],
    ),
    (
        '2',
        [
            ".###.", "#...#", "....#", "...#.", "..#..", ".#...", "#####",
        ],
    ),
    (
        '3',
        [
            "#####", "...#.", "..#..", "...#.", "....#", "#...#", ".###.",
        ],
    ),
    (
        '4',
        [
            "...#.", "..##.", ".#.#.", "#..#.", "#####", "...#.", "...#.",
        ],
    ),
    (
        '5',
        [
            "#####", "#....", "####.", "....#", "....#", "#...#", ".###.",
        ],
    ),
    (
        '6',
        [
            "..##.", ".#...", "#....", "####.", "#...#", "#...#", ".###.",
        ],
    ),
    (
        '7',
        [
            "#####", "....#", "...#.", "..#..", ".#...", ".#...", ".#...",
        ],
    ),
    (
        '8',
        [
            ".###.", "#...#", "#...#", ".###.", "#...#", "#...#", ".###.",
        ],
    ),
    (
        '9',
        [
            ".###.", "#...#", "#...#", ".####", "....#", "...#.", ".##..",
        ],
    ),
    (
        '.',
        [
            ".....", ".....", ".....", ".....", ".....", ".##..", ".##..",
        ],
    ),
    (
        '-',
        [
            ".....", ".....", ".....", "#####", ".....", ".....", ".....",
        ],
    ),
    (
        '_',
        [
            ".....", ".....", ".....", ".....", ".....", ".....", "#####",
        ],
    ),
    (
        ':',
        [
            ".....", ".##..", ".##..", ".....", ".##..", ".##..", ".....",
        ],
    ),
    (
        '%',
        [
            "##...", "##..#", "...#.", "..#..", ".#...", "#..##", "...##",
        ],
    ),
    (
        '/',
        [
            ".....", "....#", "...#.", "..#..", ".#...", "#....", ".....",
        ],
    ),
    (
        '?',
        [
            ".###.", "#...#", "....#", "...#.", "..#..", ".....", "..#..",
        ],
    ),
    (
        ' ',
        [
            ".....", ".....", ".....", ".....", ".....", ".....", ".....",
        ],
    ),
];

fn glyph(c: char) -> &'static [&'static str; 7] {
    let c = c.to_ascii_uppercase();
    GLYPHS
        .iter()
        .find(|(g, _)| *g == c)
        .or_else(|| GLYPHS.iter().find(|(g, _)| *g == '?'))
        .map(|(_, rows)| rows)
        .unwrap_or(&GLYPHS[0].1)
}

/// Width in pixels of `text` at `scale` (6 columns per character incl. spacing).
pub fn text_width(text: &str, scale: u32) -> u32 {
    (text.chars().count() as u32 * 6).saturating_sub(1) * scale
}

/// Draws `text` with its top-left corner at `(x, y)`, clipped to the image.
pub fn draw_text(img: &mut RgbImage, x: i64, y: i64, text: &str, scale: u32, color: [u8; 3]) {
    let s = i64::from(scale);
    for (i, c) in text.chars().enumerate() {
        let gx = x + i as i64 * 6 * s;
        for (row, bits) in glyph(c).iter().enumerate() {
            for (col, b) in bits.bytes().enumerate() {
                if b != b'#' {
                    continue;
                }
                for dy in 0..s {
                    for dx in 0..s {
                        put(
                            img,
                            gx + col as i64 * s + dx,
                            y + row as i64 * s + dy,
                            color,
                        );
                    }
                }
            }
        }
    }
}

fn put(img: &mut RgbImage, x: i64, y: i64, color: [u8; 3]) {
    if x >= 0 && y >= 0 && (x as u32) < img.width() && (y as u32) < img.height() {
        img.put_pixel(x as u32, y as u32, Rgb(color));
    }
}

fn fill_rect(img: &mut RgbImage, x0: i64, y0: i64, x1: i64, y1: i64, color: [u8; 3]) {
    for y in y0.max(0)..y1.min(i64::from(img.height())) {
        for x in x0.max(0)..x1.min(i64::from(img.width())) {
            img.put_pixel(x as u32, y as u32, Rgb(color));
        }
    }
}

/// The image with every detection drawn: mask tinted at 45 %, box outline, `label 0.87` tag.
pub fn draw_detections(image: &RgbImage, detections: &[Detection]) -> RgbImage {
    let mut img = image.clone();
    let (w, h) = (img.width(), img.height());
    let thickness = i64::from(((w + h) / 600).max(1));
    let scale = ((w.max(h)) / 400).clamp(1, 4);
    for d in detections {
        let color = class_color(d.class_id);
        let m = &d.mask;
        if m.width == w as usize && m.height == h as usize {
            for y in 0..m.win_h {
                for x in 0..m.win_w {
                    if m.bits[y * m.win_w + x] == 0 {
                        continue;
                    }
                    let p = img.get_pixel_mut((m.x0 + x) as u32, (m.y0 + y) as u32);
                    for (v, &c) in p.0.iter_mut().zip(&color) {
                        *v = ((u16::from(*v) * 55 + u16::from(c) * 45) / 100) as u8;
                    }
                }
            }
        }
        let [x1, y1, x2, y2] = d.box_xyxy.map(|v| v.round() as i64);
        fill_rect(&mut img, x1, y1, x2, y1 + thickness, color);
        fill_rect(&mut img, x1, y2 - thickness, x2, y2, color);
        fill_rect(&mut img, x1, y1, x1 + thickness, y2, color);
        fill_rect(&mut img, x2 - thickness, y1, x2, y2, color);
        let tag = format!("{} {:.2}", d.label, d.confidence);
        let tw = i64::from(text_width(&tag, scale));
        let th = 7 * i64::from(scale);
        let pad = i64::from(scale);
        // above the box when there is room, else inside it
        let ty = if y1 - th - 2 * pad >= 0 {
            y1 - th - 2 * pad
        } else {
            y1
        };
        fill_rect(
            &mut img,
            x1,
            ty,
            x1 + tw + 2 * pad,
            ty + th + 2 * pad,
            color,
        );
        draw_text(&mut img, x1 + pad, ty + pad, &tag, scale, [255, 255, 255]);
    }
    img
}

/// The image with a `text` tag in its top-left corner (classification overlays).
pub fn draw_tag(image: &RgbImage, text: &str, color: [u8; 3]) -> RgbImage {
    let mut img = image.clone();
    let scale = (img.width().max(img.height()) / 400).clamp(1, 4);
    let pad = i64::from(scale) * 2;
    let tw = i64::from(text_width(text, scale));
    fill_rect(
        &mut img,
        0,
        0,
        tw + 2 * pad,
        7 * i64::from(scale) + 2 * pad,
        color,
    );
    draw_text(&mut img, pad, pad, text, scale, [255, 255, 255]);
    img
}

/// Writes an image as PNG.
pub fn save_png(img: &RgbImage, path: &Path) -> Result<()> {
    img.save_with_format(path, image::ImageFormat::Png)
        .map_err(|source| VisionError::Image {
            path: path.to_path_buf(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::postprocess::InstanceMask;

    #[test]
    fn glyphs_are_well_formed() {
        for (c, rows) in GLYPHS {
            for r in rows {
                assert_eq!(r.len(), 5, "glyph {c:?}");
                assert!(r.bytes().all(|b| b == b'#' || b == b'.'), "glyph {c:?}");
            }
        }
        assert_eq!(glyph('a'), glyph('A'));
        assert_eq!(glyph('é'), glyph('?'));
        assert_eq!(text_width("ab", 2), 22);
    }

    #[test]
    fn detections_are_drawn() {
        let img = RgbImage::from_pixel(40, 30, Rgb([0, 0, 0]));
        let det = Detection {
            class_id: 1,
            label: "dent".into(),
            confidence: 0.5,
            box_xyxy: [10.0, 12.0, 30.0, 28.0],
            mask: InstanceMask {
                height: 30,
                width: 40,
                x0: 15,
                y0: 18,
                win_w: 2,
                win_h: 2,
                bits: vec![1, 1, 1, 0],
            },
        };
        let out = draw_detections(&img, std::slice::from_ref(&det));
        let color = class_color(1);
        // box outline
        assert_eq!(out.get_pixel(10, 20).0, color);
        assert_eq!(out.get_pixel(29, 20).0, color);
        // mask tint (45 % of the colour over black) and untouched mask hole
        let tinted = color.map(|c| (u16::from(c) * 45 / 100) as u8);
        assert_eq!(out.get_pixel(15, 18).0, tinted);
        assert_eq!(out.get_pixel(16, 19).0, [0, 0, 0]);
        // label tag above the box
        assert_ne!(out.get_pixel(11, 4).0, [0, 0, 0]);
        // far away: untouched
        assert_eq!(out.get_pixel(39, 0).0, [0, 0, 0]);
    }

    #[test]
    fn tags_are_drawn_top_left() {
        let img = RgbImage::from_pixel(50, 20, Rgb([0, 0, 0]));
        let out = draw_tag(&img, "ok 0.90", [10, 20, 30]);
        assert_eq!(out.get_pixel(0, 0).0, [10, 20, 30]);
        assert!(out.pixels().any(|p| p.0 == [255, 255, 255]));
        assert_eq!(out.get_pixel(49, 19).0, [0, 0, 0]);
    }
}
