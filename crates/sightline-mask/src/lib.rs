//! Instance-mask geometry: COCO RLE (compressed and uncompressed), polygon rasterisation, boxes, areas and IoU,
//! bit-exact with pycocotools.
//!
//! The conventions are those of the COCO toolbox (`maskApi.c`):
//! - masks are `h × w`, stored **column-major** (pixel `(x, y)` is at index `x * h + y`); helpers for row-major
//!   buffers (the layout of image crates) are provided;
//! - an [`Rle`] is a list of run lengths that alternate background / foreground and **start with background**
//!   (a mask whose first pixel is set starts with a `0` count);
//! - boxes are `[x, y, width, height]` in pixels, `f64`;
//! - polygons are flat `[x0, y0, x1, y1, …]` lists in pixel coordinates where pixel `(i, j)` covers
//!   `[i, i+1) × [j, j+1)`; [`Rle::from_polygon`] rasterises them exactly like pycocotools' `rleFrPoly`.
//!
//! ```
//! use sightline_mask::Rle;
//! let mut mask = vec![0u8; 4 * 3]; // h = 4, w = 3, column-major
//! mask[4 + 1] = 1; // pixel x = 1, y = 1
//! mask[4 + 2] = 1;
//! let rle = Rle::encode_col_major(&mask, 4, 3).unwrap();
//! assert_eq!(rle.counts(), &[5, 2, 5]);
//! assert_eq!(rle.area(), 2);
//! assert_eq!(rle.to_bbox(), [1.0, 1.0, 1.0, 2.0]);
//! let s = rle.to_compressed();
//! assert_eq!(Rle::from_compressed(&s, 4, 3).unwrap(), rle);
//! ```

mod bbox;
mod contour;
mod error;
mod poly;
mod rle;
mod string;

pub use bbox::{box_iou, box_iou_matrix, box_iou_xyxy};
pub use contour::mask_to_polygons;
pub use error::MaskError;
pub use rle::{Rle, iou_matrix};
