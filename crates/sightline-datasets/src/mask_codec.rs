//! Glue between the annotation model and mask geometry.
//!
//! Row-major bitmaps (what palette PNGs hold) and the PNG I/O live here; RLE encoding and
//! decoding (uncompressed and compressed strings), polygon rasterisation (exactly as
//! pycocotools) and mask → polygon tracing come from `sightline-mask`.

use crate::error::{DatasetError, Result};
use crate::model::Segmentation;
use sightline_mask::Rle;
use std::io::BufReader;
use std::path::Path;

/// A binary mask, row-major, `1` = foreground.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bitmap {
    /// Height in pixels.
    pub height: u32,
    /// Width in pixels.
    pub width: u32,
    /// `height * width` bytes, row-major, 0 or 1.
    pub data: Vec<u8>,
}

impl Bitmap {
    /// Empty mask.
    pub fn zeros(height: u32, width: u32) -> Self {
        Self {
            height,
            width,
            data: vec![0; height as usize * width as usize],
        }
    }

    /// Foreground pixel count.
    pub fn area(&self) -> u64 {
        self.data.iter().map(|&v| u64::from(v != 0)).sum()
    }

    /// Uncompressed COCO counts (column-major, starting with a background run).
    pub fn to_counts(&self) -> Vec<u32> {
        self.to_rle().map(Rle::into_counts).unwrap_or_default()
    }

    /// The mask as a `sightline-mask` RLE.
    pub fn to_rle(&self) -> Result<Rle> {
        Rle::encode_row_major(&self.data, self.height, self.width).map_err(mask_err)
    }

    /// Mask from uncompressed COCO counts.
    pub fn from_counts(height: u32, width: u32, counts: &[u32]) -> Result<Self> {
        let rle = Rle::new(height, width, counts.to_vec()).map_err(mask_err)?;
        Ok(Self::from_rle(&rle))
    }

    /// Mask from a `sightline-mask` RLE.
    pub fn from_rle(rle: &Rle) -> Self {
        Self {
            height: rle.h(),
            width: rle.w(),
            data: rle.decode_row_major(),
        }
    }

    /// Intersection over union with another mask of the same size (0 when both are empty).
    pub fn iou(&self, other: &Bitmap) -> f64 {
        match (self.to_rle(), other.to_rle()) {
            (Ok(a), Ok(b)) => a.iou(&b, false).max(0.0),
            _ => 0.0,
        }
    }
}

/// Decode a COCO compressed RLE string into counts.
pub fn decode_counts_string(s: &str, height: u32, width: u32) -> Result<Vec<u32>> {
    Ok(Rle::from_compressed(s, height, width)
        .map_err(mask_err)?
        .into_counts())
}

/// Encode counts as a COCO compressed RLE string.
pub fn encode_counts_string(height: u32, width: u32, counts: &[u32]) -> Result<String> {
    Ok(Rle::new(height, width, counts.to_vec())
        .map_err(mask_err)?
        .to_compressed())
}

/// Rasterize a segmentation at `height x width`.
pub fn to_bitmap(seg: &Segmentation, height: u32, width: u32) -> Result<Bitmap> {
    match seg {
        Segmentation::Rle {
            height: h,
            width: w,
            counts,
        } => {
            if (*h, *w) != (height, width) {
                return Err(DatasetError::Format(format!(
                    "mask is {h}x{w}, image is {height}x{width}"
                )));
            }
            Bitmap::from_counts(height, width, counts)
        }
        Segmentation::Polygons { polygons } => polygons_to_bitmap(polygons, height, width),
    }
}

/// Read an 8-bit palette (or grey) PNG as raw indices: (width, height, indices row-major).
pub fn read_index_png(path: &Path) -> Result<(u32, u32, Vec<u8>)> {
    let bad = |m: String| DatasetError::Parse {
        file: path.to_path_buf(),
        message: m,
    };
    let f = fs_err::File::open(path)?;
    let mut dec = png::Decoder::new(BufReader::new(f));
    dec.set_transformations(png::Transformations::IDENTITY);
    let mut reader = dec
        .read_info()
        .map_err(|e| bad(format!("not a readable PNG: {e}")))?;
    let size = reader
        .output_buffer_size()
        .ok_or_else(|| bad("PNG too large".into()))?;
    let mut buf = vec![0u8; size];
    let info = reader
        .next_frame(&mut buf)
        .map_err(|e| bad(format!("corrupt PNG: {e}")))?;
    if info.bit_depth != png::BitDepth::Eight
        || !matches!(
            info.color_type,
            png::ColorType::Indexed | png::ColorType::Grayscale
        )
    {
        return Err(bad(format!(
            "expected an 8-bit palette or grey PNG, found {:?} {:?}",
            info.color_type, info.bit_depth
        )));
    }
    buf.truncate(info.buffer_size());
    Ok((info.width, info.height, buf))
}

/// Write an 8-bit palette PNG with the Pascal VOC colour map (index 255 = void colour).
pub fn write_index_png(path: &Path, width: u32, height: u32, data: &[u8]) -> Result<()> {
    let f = fs_err::File::create(path)?;
    let w = std::io::BufWriter::new(f);
    let mut enc = png::Encoder::new(w, width, height);
    enc.set_color(png::ColorType::Indexed);
    enc.set_depth(png::BitDepth::Eight);
    enc.set_palette(voc_palette());
    let io = |e: png::EncodingError| DatasetError::Io(std::io::Error::other(e.to_string()));
    let mut writer = enc.write_header().map_err(io)?;
    writer.write_image_data(data).map_err(io)?;
    writer.finish().map_err(io)?;
    Ok(())
}

/// The standard Pascal VOC colour map (bit-interleaved), 256 RGB entries.
pub fn voc_palette() -> Vec<u8> {
    let mut pal = Vec::with_capacity(768);
    for i in 0u32..256 {
        let (mut r, mut g, mut b) = (0u8, 0u8, 0u8);
        let mut c = i;
        for j in 0..8 {
            r |= ((c & 1) as u8) << (7 - j);
            g |= (((c >> 1) & 1) as u8) << (7 - j);
            b |= (((c >> 2) & 1) as u8) << (7 - j);
            c >>= 3;
        }
        pal.extend_from_slice(&[r, g, b]);
    }
    pal
}

fn mask_err(e: sightline_mask::MaskError) -> DatasetError {
    DatasetError::Format(e.to_string())
}

/// Rasterize polygons exactly as pycocotools does.
pub fn polygons_to_bitmap(polygons: &[Vec<f64>], height: u32, width: u32) -> Result<Bitmap> {
    Ok(Bitmap::from_rle(
        &Rle::from_polygons(polygons, height, width).map_err(mask_err)?,
    ))
}

/// Outline polygons of an RLE mask (exact for components without holes).
pub fn counts_to_polygons(height: u32, width: u32, counts: &[u32]) -> Result<Vec<Vec<f64>>> {
    let rle = Rle::new(height, width, counts.to_vec()).map_err(mask_err)?;
    Ok(sightline_mask::mask_to_polygons(&rle, 0.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_round_trip_column_major() {
        // 2x3 mask, row-major:
        // 0 1 1
        // 1 0 1
        let m = Bitmap {
            height: 2,
            width: 3,
            data: vec![0, 1, 1, 1, 0, 1],
        };
        // column-major scan: (0,0)=0 (1,0)=1 | (0,1)=1 (1,1)=0 | (0,2)=1 (1,2)=1
        assert_eq!(m.to_counts(), vec![1, 2, 1, 2]);
        assert_eq!(Bitmap::from_counts(2, 3, &m.to_counts()).unwrap(), m);
    }

    #[test]
    fn counts_beyond_mask_are_rejected() {
        assert!(Bitmap::from_counts(2, 2, &[3, 3]).is_err());
    }

    #[test]
    fn voc_palette_first_entries() {
        let p = voc_palette();
        assert_eq!(&p[..9], &[0, 0, 0, 128, 0, 0, 0, 128, 0]);
        assert_eq!(&p[255 * 3..], &[224, 224, 192]);
    }

    #[test]
    fn png_index_round_trip() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("m.png");
        write_index_png(&p, 3, 2, &[0, 1, 255, 2, 0, 0]).unwrap();
        assert_eq!(
            read_index_png(&p).unwrap(),
            (3, 2, vec![0, 1, 255, 2, 0, 0])
        );
    }
}
