//! One synthetic scene: a part on a bench, its defects as polygons, and its image label.

use std::f64::consts::PI;

use crate::raster::{Canvas, polygon_area};
use crate::rng::Rng;

/// Kind of a defect instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DefectKind {
    /// A thin, slightly bent stroke.
    Scratch,
    /// A small dark blob with a bright rim.
    Dent,
    /// Any other defect (an irregular stain): the generic `ng` class.
    Stain,
}

impl DefectKind {
    /// The instance label used in annotations.
    pub fn label(self) -> &'static str {
        match self {
            Self::Scratch => "scratch",
            Self::Dent => "dent",
            Self::Stain => "ng",
        }
    }
}

/// One defect with its exact outline.
#[derive(Debug, Clone)]
pub struct Instance {
    /// Defect kind.
    pub kind: DefectKind,
    /// Outline in pixel coordinates (x, y), clipped to the image.
    pub polygon: Vec<(f64, f64)>,
}

impl Instance {
    /// Area of the outline in pixels.
    pub fn area(&self) -> f64 {
        polygon_area(&self.polygon)
    }

    /// Bounding box `[x, y, w, h]` of the outline.
    pub fn bbox(&self) -> [f64; 4] {
        let (mut x0, mut y0, mut x1, mut y1) = (f64::MAX, f64::MAX, f64::MIN, f64::MIN);
        for &(x, y) in &self.polygon {
            x0 = x0.min(x);
            y0 = y0.min(y);
            x1 = x1.max(x);
            y1 = y1.max(y);
        }
        [x0, y0, x1 - x0, y1 - y0]
    }
}

/// A rendered scene.
#[derive(Debug, Clone)]
pub struct Scene {
    /// The image.
    pub image: image::RgbImage,
    /// Defects, in drawing order.
    pub instances: Vec<Instance>,
    /// Image-level label: `ok`, `scratch`, `dent` or `ng`.
    pub label: &'static str,
}

/// Renders a square scene of `size` pixels from a random stream.
pub fn render(rng: &mut Rng, size: u32) -> Scene {
    let s = f64::from(size);
    let n = size as usize;
    let bench = rng.uniform(40.0, 90.0) as f32;
    let mut canvas = Canvas::new(n, n, [bench; 3]);
    canvas.add_noise(rng, 6.0);

    let r = rng.uniform(0.28, 0.38) * s;
    let cx = rng.uniform(r + 4.0, s - r - 4.0);
    let cy = rng.uniform(r + 4.0, s - r - 4.0);
    let shade = rng.uniform(150.0, 210.0);
    let tint = [
        shade,
        shade * rng.uniform(0.95, 1.02),
        shade * rng.uniform(0.9, 1.0),
    ];
    let part = if rng.unit() < 0.5 {
        ellipse(cx, cy, r, r, 0.0, 64)
    } else {
        rounded_rect(cx, cy, r, r * 0.8, r * 0.2)
    };
    canvas.fill_polygon(&part, rgb(tint));
    // Shading: a soft light gradient across the part.
    let light = rng.uniform(0.0, 2.0 * PI);
    let (lx, ly) = (light.cos(), light.sin());
    let w = n;
    let mut inside = Vec::new();
    canvas.for_each_inside(&part, |x, y| inside.push((x, y)));
    for (x, y) in inside {
        let d = ((x as f64 - cx) * lx + (y as f64 - cy) * ly) / r;
        let p = &mut canvas.data[y * w + x];
        for c in p.iter_mut() {
            *c += (d * 18.0) as f32;
        }
    }
    canvas.fill_polygon(
        &ellipse(cx, cy, r * 0.15, r * 0.15, 0.0, 32),
        rgb(tint.map(|c| (c - 60.0).max(0.0))),
    );

    let mut instances = Vec::new();
    let n_defects = [0, 0, 1, 1, 1, 2, 3][rng.below(7) as usize];
    for _ in 0..n_defects {
        let kind = [DefectKind::Scratch, DefectKind::Dent, DefectKind::Stain]
            [rng.weighted(&[0.45, 0.4, 0.15])];
        let px = cx + rng.uniform(-0.55, 0.55) * r;
        let py = cy + rng.uniform(-0.45, 0.45) * r;
        let polygon = match kind {
            DefectKind::Scratch => {
                let poly = scratch(rng, px, py, r * 0.7);
                let dark = rng.uniform(70.0, 110.0);
                canvas.fill_polygon(&poly, rgb(tint.map(|c| (c - dark).max(0.0))));
                poly
            }
            DefectKind::Dent => {
                let (rx, ry) = (rng.uniform(0.07, 0.16) * r, rng.uniform(0.06, 0.13) * r);
                let poly = blob(rng, px, py, rx, ry, 0.12, 16);
                let dark = rng.uniform(35.0, 55.0);
                canvas.fill_polygon(&poly, rgb(tint.map(|c| (c - dark).max(0.0))));
                // A bright rim on the upper-left edge, inside the outline.
                let rim: Vec<(f64, f64)> = (0..=8)
                    .map(|k| {
                        let a = (200.0 + 130.0 * f64::from(k) / 8.0).to_radians();
                        (px + 0.8 * rx * a.cos(), py + 0.8 * ry * a.sin())
                    })
                    .chain((0..=8).rev().map(|k| {
                        let a = (200.0 + 130.0 * f64::from(k) / 8.0).to_radians();
                        (px + 0.55 * rx * a.cos(), py + 0.55 * ry * a.sin())
                    }))
                    .collect();
                canvas.fill_polygon(&rim, rgb(tint.map(|c| (c + 40.0).min(255.0))));
                poly
            }
            DefectKind::Stain => {
                let (rx, ry) = (rng.uniform(0.1, 0.2) * r, rng.uniform(0.08, 0.18) * r);
                let poly = blob(rng, px, py, rx, ry, 0.35, 20);
                canvas.fill_polygon(&poly, rgb([tint[0] * 0.7, tint[1] * 0.55, tint[2] * 0.3]));
                poly
            }
        };
        let polygon = polygon
            .into_iter()
            .map(|(x, y)| (x.clamp(0.0, s - 1.0), y.clamp(0.0, s - 1.0)))
            .collect();
        instances.push(Instance { kind, polygon });
    }
    canvas.blur(rng.uniform(0.3, 0.9));
    canvas.add_noise(rng, 3.0);

    let label = image_label(&instances);
    Scene {
        image: canvas.to_rgb8(),
        instances,
        label,
    }
}

/// The image-level label implied by a set of defects.
pub fn image_label(instances: &[Instance]) -> &'static str {
    let has = |k| instances.iter().any(|i| i.kind == k);
    let (s, d, st) = (
        has(DefectKind::Scratch),
        has(DefectKind::Dent),
        has(DefectKind::Stain),
    );
    match (s, d, st) {
        (false, false, false) => "ok",
        (true, false, false) => "scratch",
        (false, true, false) => "dent",
        _ => "ng",
    }
}

fn rgb(c: [f64; 3]) -> [f32; 3] {
    c.map(|v| v as f32)
}

fn ellipse(cx: f64, cy: f64, rx: f64, ry: f64, rot: f64, n: usize) -> Vec<(f64, f64)> {
    (0..n)
        .map(|k| {
            let a = 2.0 * PI * k as f64 / n as f64;
            let (x, y) = (rx * a.cos(), ry * a.sin());
            (
                cx + x * rot.cos() - y * rot.sin(),
                cy + x * rot.sin() + y * rot.cos(),
            )
        })
        .collect()
}

fn rounded_rect(cx: f64, cy: f64, hw: f64, hh: f64, radius: f64) -> Vec<(f64, f64)> {
    let corners = [
        (hw - radius, hh - radius, 0.0),
        (-(hw - radius), hh - radius, 0.5),
        (-(hw - radius), -(hh - radius), 1.0),
        (hw - radius, -(hh - radius), 1.5),
    ];
    let mut pts = Vec::new();
    for (ox, oy, start) in corners {
        for k in 0..=6 {
            let a = (start + 0.5 * f64::from(k) / 6.0) * PI;
            pts.push((cx + ox + radius * a.cos(), cy + oy + radius * a.sin()));
        }
    }
    pts
}

fn scratch(rng: &mut Rng, cx: f64, cy: f64, r: f64) -> Vec<(f64, f64)> {
    let ang = rng.uniform(0.0, PI);
    let length = rng.uniform(0.5, 1.2) * r;
    let width = rng.uniform(1.5, 3.5);
    let bend = rng.uniform(-0.25, 0.25) * length;
    let (ca, sa) = (ang.cos(), ang.sin());
    let (nx, ny) = (-sa * width / 2.0, ca * width / 2.0);
    let mut top = Vec::new();
    let mut bottom = Vec::new();
    for k in 0..9 {
        let t = -0.5 + f64::from(k) / 8.0;
        let off = bend * (1.0 - 4.0 * t * t);
        let x = cx + t * length * ca - off * sa;
        let y = cy + t * length * sa + off * ca;
        top.push((x + nx, y + ny));
        bottom.push((x - nx, y - ny));
    }
    bottom.reverse();
    top.extend(bottom);
    top
}

fn blob(
    rng: &mut Rng,
    cx: f64,
    cy: f64,
    rx: f64,
    ry: f64,
    jitter: f64,
    n: usize,
) -> Vec<(f64, f64)> {
    let rot = rng.uniform(0.0, PI);
    (0..n)
        .map(|k| {
            let a = 2.0 * PI * k as f64 / n as f64;
            let s = 1.0 + rng.uniform(-jitter, jitter);
            let (x, y) = (rx * s * a.cos(), ry * s * a.sin());
            (
                cx + x * rot.cos() - y * rot.sin(),
                cy + x * rot.sin() + y * rot.cos(),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_stream_renders_identical_scenes() {
        let a = render(&mut Rng::derive(7, &[1, 3]), 64);
        let b = render(&mut Rng::derive(7, &[1, 3]), 64);
        assert_eq!(a.image.as_raw(), b.image.as_raw());
        assert_eq!(a.instances.len(), b.instances.len());
        assert_eq!(a.label, b.label);
    }

    #[test]
    fn labels_follow_the_project_convention_and_defects_are_visible() {
        let mut seen = std::collections::HashSet::new();
        for i in 0..80 {
            let scene = render(&mut Rng::derive(3, &[i]), 96);
            assert_eq!(scene.label, image_label(&scene.instances));
            seen.insert(scene.label);
            for inst in &scene.instances {
                assert!(inst.polygon.len() >= 3);
                assert!(inst.area() > 1.0, "degenerate {inst:?}");
                let [x, y, w, h] = inst.bbox();
                assert!(x >= 0.0 && y >= 0.0 && x + w <= 95.0 && y + h <= 95.0);
            }
        }
        for label in crate::IMAGE_LABELS {
            assert!(seen.contains(label), "no {label} image in 80 scenes");
        }
    }

    #[test]
    fn label_rules() {
        let mk = |k| Instance {
            kind: k,
            polygon: vec![(0.0, 0.0), (1.0, 0.0), (0.0, 1.0)],
        };
        assert_eq!(image_label(&[]), "ok");
        assert_eq!(
            image_label(&[mk(DefectKind::Scratch), mk(DefectKind::Scratch)]),
            "scratch"
        );
        assert_eq!(image_label(&[mk(DefectKind::Dent)]), "dent");
        assert_eq!(
            image_label(&[mk(DefectKind::Dent), mk(DefectKind::Scratch)]),
            "ng"
        );
        assert_eq!(image_label(&[mk(DefectKind::Stain)]), "ng");
    }
}
