//! Image decoding for every image that enters Sightline (uploads, data sets, training,
//! prediction), lowest layer: it depends on no other Sightline crate.
//!
//! **JPEG** (recognised by its magic bytes `FF D8 FF`, never by the file name) is decoded by
//! libjpeg-turbo's decoder, the one behind PIL, OpenCV, Ultralytics and torchvision, with PIL's
//! defaults (accurate integer IDCT, "fancy" chroma upsampling), so the pixels are
//! **bit-identical to `PIL.Image.open(p).convert("RGB")`** (`tests/pil_parity.rs` checks every
//! fixture JPEG and JPEGs made by PIL at 4:4:4/4:2:2/4:2:0, several qualities, progressive,
//! grayscale and CMYK). The `image` crate's own JPEG decoder (zune-jpeg) differs by up to three
//! levels per channel, enough to move a classifier's probabilities by a few hundredths.
//!
//! The decoder comes from the `mozjpeg` crate: MozJPEG is libjpeg-turbo with a different
//! *encoder*; its decoder is libjpeg-turbo's. Its C source is vendored and built with `cc`, so
//! a plain `cargo build` works on a fresh machine (no cmake, no system library); when `nasm`
//! is on `PATH` at build time the SIMD code is used too, which is bit-exact with the C code
//! for these settings.
//!
//! Like PIL, a JPEG that ends before its image does is an error ([`DecodeError::Truncated`])
//! rather than an image padded with grey; CMYK/YCCK JPEGs are converted to RGB exactly as PIL
//! does (Adobe-inverted CMYK, `cmyk2rgb`). Grayscale JPEGs stay grayscale in
//! [`decode`] (PIL mode `L`) and are replicated to three channels by [`decode_rgb`].
//!
//! **Every other format** (PNG, …) is decoded by the `image` crate with the formats this
//! workspace enables.
//!
//! [`Limits`] bounds the image size before any pixel is decoded; the default is the `image`
//! crate's default (512 MiB for the decoded buffer), which is what the call sites had before.
//! EXIF orientation is applied only when asked ([`DecodeOptions::apply_orientation`]), as
//! `cv2.imread` does; PIL's `Image.open` does not apply it.
//!
//! libjpeg reports fatal errors by unwinding out of the C code; this crate catches that and
//! returns a [`DecodeError`], so it needs `panic = "unwind"` (the default).

use std::cell::Cell;
use std::io::{self, BufRead, Cursor, Read};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::rc::Rc;

pub use image::{DynamicImage, ImageFormat, RgbImage};
use image::{GrayImage, ImageDecoder, ImageReader, metadata::Orientation};
use mozjpeg::{ColorSpace, Decompress, Marker};

#[cfg(panic = "abort")]
compile_error!(
    "sightline-imageio needs panic = \"unwind\": libjpeg's errors unwind out of the decoder"
);

/// Why an image could not be decoded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// No bytes at all.
    #[error("the image is empty (0 bytes)")]
    Empty,
    /// The bytes are not in any format we recognise.
    #[error("unrecognised image format (neither JPEG nor any format `image` knows)")]
    UnknownFormat,
    /// The JPEG data ends before the image is complete.
    #[error("truncated JPEG: the data ends before the image does")]
    Truncated,
    /// libjpeg refused the JPEG data.
    #[error("invalid JPEG: {0}")]
    Jpeg(String),
    /// The image is larger than the [`Limits`] allow.
    #[error("the image is {width}x{height}, {what}")]
    TooLarge {
        /// Image width.
        width: u32,
        /// Image height.
        height: u32,
        /// Which limit, in words.
        what: String,
    },
    /// Decoding a non-JPEG image failed (or its format is not enabled).
    #[error(transparent)]
    Image(#[from] image::ImageError),
    /// Reading the file failed (the message names the path).
    #[error(transparent)]
    Io(#[from] io::Error),
}

impl DecodeError {
    /// This error as an [`image::ImageError`], for callers whose error types carry one.
    pub fn into_image_error(self) -> image::ImageError {
        use image::error::{
            DecodingError, ImageFormatHint, LimitError, LimitErrorKind, UnsupportedError,
            UnsupportedErrorKind,
        };
        let jpeg = || ImageFormatHint::Exact(ImageFormat::Jpeg);
        match self {
            DecodeError::Image(e) => e,
            DecodeError::Io(e) => image::ImageError::IoError(e),
            DecodeError::TooLarge { .. } => {
                image::ImageError::Limits(LimitError::from_kind(LimitErrorKind::DimensionError))
            }
            DecodeError::UnknownFormat => {
                image::ImageError::Unsupported(UnsupportedError::from_format_and_kind(
                    ImageFormatHint::Unknown,
                    UnsupportedErrorKind::Format(ImageFormatHint::Unknown),
                ))
            }
            e @ DecodeError::Empty => {
                image::ImageError::Decoding(DecodingError::new(ImageFormatHint::Unknown, e))
            }
            e @ (DecodeError::Truncated | DecodeError::Jpeg(_)) => {
                image::ImageError::Decoding(DecodingError::new(jpeg(), e))
            }
        }
    }
}

/// Size limits checked from the header, before any pixel is decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest accepted width (`None`: any).
    pub max_width: Option<u32>,
    /// Largest accepted height (`None`: any).
    pub max_height: Option<u32>,
    /// Largest decoded pixel buffer in bytes (`None`: any).
    pub max_alloc: Option<u64>,
}

impl Default for Limits {
    /// The `image` crate's defaults: no side limit, 512 MiB of decoded pixels.
    fn default() -> Self {
        let d = image::Limits::default();
        Self {
            max_width: d.max_image_width,
            max_height: d.max_image_height,
            max_alloc: d.max_alloc,
        }
    }
}

impl Limits {
    /// No limit at all.
    pub fn none() -> Self {
        Self {
            max_width: None,
            max_height: None,
            max_alloc: None,
        }
    }

    fn to_image(self) -> image::Limits {
        let mut l = image::Limits::no_limits();
        l.max_image_width = self.max_width;
        l.max_image_height = self.max_height;
        l.max_alloc = self.max_alloc;
        l
    }

    /// Fails when a `width`×`height` image with `bytes_per_pixel` bytes per decoded pixel is
    /// over a limit.
    fn check(&self, width: u32, height: u32, bytes_per_pixel: u64) -> Result<(), DecodeError> {
        let too_large = |what: String| {
            Err(DecodeError::TooLarge {
                width,
                height,
                what,
            })
        };
        if let Some(m) = self.max_width.filter(|&m| width > m) {
            return too_large(format!("wider than the limit of {m} pixels"));
        }
        if let Some(m) = self.max_height.filter(|&m| height > m) {
            return too_large(format!("taller than the limit of {m} pixels"));
        }
        let bytes = u64::from(width) * u64::from(height) * bytes_per_pixel;
        if let Some(m) = self.max_alloc.filter(|&m| bytes > m) {
            return too_large(format!(
                "{bytes} bytes decoded, over the limit of {m} bytes"
            ));
        }
        Ok(())
    }
}

/// How to decode: limits and EXIF orientation. `DecodeOptions::default()` is what the free
/// functions use.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DecodeOptions {
    /// Size limits.
    pub limits: Limits,
    /// Rotate/flip the pixels as the EXIF orientation says (like `cv2.imread`; PIL's
    /// `Image.open` does not).
    pub apply_orientation: bool,
}

impl DecodeOptions {
    /// Decodes `bytes` (format from the content) to 8-bit pixels: JPEG as
    /// [`DynamicImage::ImageLuma8`] (grayscale) or [`DynamicImage::ImageRgb8`], other formats
    /// as `image` decodes them.
    pub fn decode(&self, bytes: &[u8]) -> Result<DynamicImage, DecodeError> {
        let img = match sniff(bytes)? {
            ImageFormat::Jpeg => {
                let (img, orientation) = decode_jpeg(bytes, &self.limits, self.apply_orientation)?;
                let mut img = match img {
                    Jpeg::Gray(g) => DynamicImage::ImageLuma8(g),
                    Jpeg::Rgb(c) => DynamicImage::ImageRgb8(c),
                };
                if let Some(o) = orientation {
                    img.apply_orientation(o);
                }
                img
            }
            format => {
                let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
                reader.limits(self.limits.to_image());
                let mut decoder = reader.into_decoder()?;
                let orientation = if self.apply_orientation {
                    Some(decoder.orientation()?)
                } else {
                    None
                };
                let mut img = DynamicImage::from_decoder(decoder)?;
                if let Some(o) = orientation {
                    img.apply_orientation(o);
                }
                img
            }
        };
        Ok(img)
    }

    /// Decodes `bytes` to 8-bit RGB (grayscale replicated, alpha dropped, CMYK converted as PIL
    /// does): `Image.open(...).convert("RGB")`.
    pub fn decode_rgb(&self, bytes: &[u8]) -> Result<RgbImage, DecodeError> {
        Ok(self.decode(bytes)?.into_rgb8())
    }

    /// Reads the file at `path` and decodes it as [`DecodeOptions::decode_rgb`] does.
    pub fn load_rgb(&self, path: &Path) -> Result<RgbImage, DecodeError> {
        self.decode_rgb(&fs_err::read(path)?)
    }

    /// Reads the file at `path` and decodes it as [`DecodeOptions::decode`] does.
    pub fn load(&self, path: &Path) -> Result<DynamicImage, DecodeError> {
        self.decode(&fs_err::read(path)?)
    }
}

/// The format of `bytes`, from their content: JPEG by its magic bytes, others as `image`
/// recognises them (whether or not that format is enabled for decoding).
pub fn sniff(bytes: &[u8]) -> Result<ImageFormat, DecodeError> {
    if bytes.is_empty() {
        return Err(DecodeError::Empty);
    }
    if is_jpeg(bytes) {
        return Ok(ImageFormat::Jpeg);
    }
    image::guess_format(bytes).map_err(|_| DecodeError::UnknownFormat)
}

/// Whether `bytes` start like a JPEG file (SOI followed by a marker).
pub fn is_jpeg(bytes: &[u8]) -> bool {
    bytes.starts_with(&[0xFF, 0xD8, 0xFF])
}

/// Decodes `bytes` with the default limits, no EXIF orientation: see [`DecodeOptions::decode`].
pub fn decode(bytes: &[u8]) -> Result<DynamicImage, DecodeError> {
    DecodeOptions::default().decode(bytes)
}

/// Decodes `bytes` to RGB with the default limits, no EXIF orientation: exactly
/// `PIL.Image.open(...).convert("RGB")` for JPEG.
pub fn decode_rgb(bytes: &[u8]) -> Result<RgbImage, DecodeError> {
    DecodeOptions::default().decode_rgb(bytes)
}

/// Reads and decodes the file at `path` as [`decode_rgb`] does.
pub fn load_rgb(path: &Path) -> Result<RgbImage, DecodeError> {
    DecodeOptions::default().load_rgb(path)
}

/// Reads and decodes the file at `path` as [`decode`] does.
pub fn load(path: &Path) -> Result<DynamicImage, DecodeError> {
    DecodeOptions::default().load(path)
}

/// `(width, height)` from the header only, without decoding pixels.
pub fn dimensions(bytes: &[u8]) -> Result<(u32, u32), DecodeError> {
    match sniff(bytes)? {
        ImageFormat::Jpeg => jpeg_call(bytes, |data| {
            let d = Decompress::new_reader(data)?;
            Ok(jpeg_size(&d))
        }),
        format => Ok(ImageReader::with_format(Cursor::new(bytes), format).into_dimensions()?),
    }
}

enum Jpeg {
    Gray(GrayImage),
    Rgb(RgbImage),
}

fn jpeg_size<R>(d: &Decompress<R>) -> (u32, u32) {
    // libjpeg refuses sides over JPEG_MAX_DIMENSION (65500), so these fit in u32
    let side = |v: usize| u32::try_from(v).unwrap_or(u32::MAX);
    (side(d.width()), side(d.height()))
}

/// Decodes a JPEG as PIL does; returns the EXIF orientation too when asked.
fn decode_jpeg(
    bytes: &[u8],
    limits: &Limits,
    orientation: bool,
) -> Result<(Jpeg, Option<Orientation>), DecodeError> {
    jpeg_call(bytes, |data| {
        let markers: &[Marker] = if orientation { &[Marker::APP(1)] } else { &[] };
        let d = Decompress::with_markers(markers).from_reader(data)?;
        let (width, height) = jpeg_size(&d);
        let orientation = if orientation {
            Some(
                d.markers()
                    .filter(|m| m.marker == Marker::APP(1))
                    .find_map(|m| m.data.strip_prefix(b"Exif\0\0"))
                    .and_then(Orientation::from_exif_chunk)
                    .unwrap_or(Orientation::NoTransforms),
            )
        } else {
            None
        };
        // PIL's modes: 1 component → L, 4 → CMYK (converted to RGB below), else RGB
        let img = match d.color_space() {
            ColorSpace::JCS_GRAYSCALE => {
                limits.check(width, height, 1)?;
                let mut s = d.grayscale()?;
                let pixels: Vec<u8> = s.read_scanlines()?;
                s.finish()?;
                Jpeg::Gray(buffer(width, height, pixels)?)
            }
            ColorSpace::JCS_CMYK | ColorSpace::JCS_YCCK => {
                limits.check(width, height, 4)?;
                let mut s = d.to_colorspace(ColorSpace::JCS_CMYK)?;
                let cmyk: Vec<[u8; 4]> = s.read_scanlines()?;
                s.finish()?;
                Jpeg::Rgb(buffer(width, height, cmyk_to_rgb(&cmyk))?)
            }
            _ => {
                limits.check(width, height, 3)?;
                let mut s = d.rgb()?;
                let pixels: Vec<u8> = s.read_scanlines()?;
                s.finish()?;
                Jpeg::Rgb(buffer(width, height, pixels)?)
            }
        };
        Ok((img, orientation))
    })
}

fn buffer<P: image::Pixel<Subpixel = u8>>(
    width: u32,
    height: u32,
    pixels: Vec<u8>,
) -> Result<image::ImageBuffer<P, Vec<u8>>, DecodeError> {
    image::ImageBuffer::from_raw(width, height, pixels)
        .ok_or_else(|| DecodeError::Jpeg("libjpeg returned fewer pixels than the image has".into()))
}

/// PIL's CMYK JPEG handling: the samples are read as Adobe-inverted (`CMYK;I`), then
/// `convert("RGB")` computes `255 - k - c·(255 - k)/255` (rounded as `MULDIV255`) per channel.
fn cmyk_to_rgb(cmyk: &[[u8; 4]]) -> Vec<u8> {
    let mut out = Vec::with_capacity(cmyk.len() * 3);
    for &[c, m, y, k] in cmyk {
        // inverted storage: ink = 255 - sample, so 255 - k_ink = k_sample
        let nk = u32::from(k);
        for v in [c, m, y] {
            let ink = 255 - u32::from(v);
            let t = ink * nk + 128;
            let muldiv = ((t >> 8) + t) >> 8;
            out.push(nk.saturating_sub(muldiv) as u8);
        }
    }
    out
}

/// Runs `f` on a libjpeg decoder reading `bytes`, turning libjpeg's fatal errors (which
/// unwind) into [`DecodeError`]s and reading past the end of `bytes` into
/// [`DecodeError::Truncated`] (libjpeg would otherwise pad the image with grey).
fn jpeg_call<T>(
    bytes: &[u8],
    f: impl FnOnce(StrictReader<'_>) -> Result<T, DecodeError>,
) -> Result<T, DecodeError> {
    let hit_end = Rc::new(Cell::new(false));
    let reader = StrictReader {
        data: bytes,
        hit_end: hit_end.clone(),
    };
    let result = catch_unwind(AssertUnwindSafe(|| f(reader)));
    if hit_end.get() {
        return Err(DecodeError::Truncated);
    }
    match result {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(DecodeError::Io(e))) => Err(DecodeError::Jpeg(e.to_string())),
        Ok(Err(e)) => Err(e),
        Err(payload) => {
            let msg = payload
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| payload.downcast_ref::<&str>().copied())
                .unwrap_or("libjpeg failed");
            let msg = msg.strip_prefix("libjpeg fatal error: ").unwrap_or(msg);
            Err(DecodeError::Jpeg(msg.to_string()))
        }
    }
}

/// A reader over the whole JPEG that fails (instead of reporting end of file, which libjpeg
/// answers with a fake EOI and grey pixels) when the decoder wants more than there is.
struct StrictReader<'a> {
    data: &'a [u8],
    hit_end: Rc<Cell<bool>>,
}

impl Read for StrictReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.fill_buf()?.len().min(buf.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl BufRead for StrictReader<'_> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.data.is_empty() {
            self.hit_end.set(true);
            // not `UnexpectedEof`: the binding turns that into a warning and a fake EOI
            return Err(io::Error::other("the JPEG data ends early"));
        }
        Ok(self.data)
    }

    fn consume(&mut self, amt: usize) {
        self.data = &self.data[amt.min(self.data.len())..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::codecs::jpeg::JpegEncoder;
    use image::{ExtendedColorType, ImageEncoder};

    fn pattern(w: u32, h: u32) -> RgbImage {
        RgbImage::from_fn(w, h, |x, y| {
            image::Rgb([(x * 7 + y * 3) as u8, (x * y) as u8, ((x ^ y) * 9) as u8])
        })
    }

    fn jpeg(img: &RgbImage) -> Vec<u8> {
        let mut out = Vec::new();
        JpegEncoder::new_with_quality(&mut out, 90)
            .write_image(img, img.width(), img.height(), ExtendedColorType::Rgb8)
            .expect("encode");
        out
    }

    fn png(img: &RgbImage) -> Vec<u8> {
        let mut out = Vec::new();
        img.write_to(&mut Cursor::new(&mut out), ImageFormat::Png)
            .expect("encode");
        out
    }

    #[test]
    fn formats_are_sniffed_from_the_content() {
        let img = pattern(33, 21);
        assert_eq!(sniff(&jpeg(&img)).ok(), Some(ImageFormat::Jpeg));
        assert_eq!(sniff(&png(&img)).ok(), Some(ImageFormat::Png));
        assert_eq!(sniff(b"GIF89a....").ok(), Some(ImageFormat::Gif));
        assert!(matches!(sniff(b""), Err(DecodeError::Empty)));
        assert!(matches!(
            sniff(b"not an image at all"),
            Err(DecodeError::UnknownFormat)
        ));
        // a JPEG named .png still decodes as JPEG
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("really_a_jpeg.png");
        fs_err::write(&p, jpeg(&img)).expect("write");
        assert_eq!(load_rgb(&p).expect("decode").dimensions(), (33, 21));
    }

    #[test]
    fn jpeg_and_png_decode_with_their_size() {
        let img = pattern(33, 21);
        let j = decode_rgb(&jpeg(&img)).expect("jpeg");
        assert_eq!(j.dimensions(), (33, 21));
        // lossy, but close to the original
        let worst = j
            .as_raw()
            .iter()
            .zip(img.as_raw())
            .map(|(a, b)| a.abs_diff(*b))
            .max();
        assert!(worst.is_some_and(|w| w < 80), "{worst:?}");
        assert_eq!(decode_rgb(&png(&img)).expect("png"), img);
        assert_eq!(dimensions(&jpeg(&img)).expect("dims"), (33, 21));
        assert_eq!(dimensions(&png(&img)).expect("dims"), (33, 21));
    }

    #[test]
    fn grayscale_jpeg_stays_grayscale() {
        let gray = GrayImage::from_fn(10, 6, |x, y| image::Luma([(x * 20 + y) as u8]));
        let mut bytes = Vec::new();
        JpegEncoder::new_with_quality(&mut bytes, 90)
            .write_image(&gray, 10, 6, ExtendedColorType::L8)
            .expect("encode");
        let d = decode(&bytes).expect("decode");
        assert!(matches!(d, DynamicImage::ImageLuma8(_)));
        let rgb = decode_rgb(&bytes).expect("decode");
        assert!(rgb.pixels().all(|p| p[0] == p[1] && p[1] == p[2]));
    }

    #[test]
    fn truncated_or_corrupt_jpeg_is_an_error_not_a_panic() {
        let bytes = jpeg(&pattern(64, 48));
        for cut in [3, 20, bytes.len() / 3, bytes.len() / 2, bytes.len() - 2] {
            let err = decode_rgb(&bytes[..cut]).expect_err("truncated must fail");
            assert!(
                matches!(err, DecodeError::Truncated | DecodeError::Jpeg(_)),
                "cut at {cut}: {err:?}"
            );
        }
        assert!(matches!(
            decode_rgb(&bytes[..bytes.len() / 2]),
            Err(DecodeError::Truncated)
        ));
        // garbage after a JPEG signature
        let mut garbage = vec![0xFF, 0xD8, 0xFF, 0xE0];
        garbage.extend(std::iter::repeat_n(0x5A, 200));
        let err = decode_rgb(&garbage).expect_err("garbage must fail");
        assert!(
            matches!(err, DecodeError::Jpeg(_) | DecodeError::Truncated),
            "{err:?}"
        );
        assert!(!err.to_string().is_empty());
        // the error converts for callers that carry an `image::ImageError`
        assert!(!err.into_image_error().to_string().is_empty());
        assert!(matches!(decode_rgb(&[]), Err(DecodeError::Empty)));
        assert!(matches!(
            decode_rgb(&png(&pattern(4, 4))[..20]),
            Err(DecodeError::Image(_))
        ));
    }

    #[test]
    fn limits_are_checked_before_decoding() {
        let bytes = jpeg(&pattern(64, 48));
        let opts = |max_width, max_height, max_alloc| DecodeOptions {
            limits: Limits {
                max_width,
                max_height,
                max_alloc,
            },
            apply_orientation: false,
        };
        assert!(
            opts(Some(64), Some(48), Some(64 * 48 * 3))
                .decode(&bytes)
                .is_ok()
        );
        for o in [
            opts(Some(63), None, None),
            opts(None, Some(47), None),
            opts(None, None, Some(64 * 48 * 3 - 1)),
        ] {
            let err = o.decode(&bytes).expect_err("over the limit");
            assert!(matches!(err, DecodeError::TooLarge { .. }), "{err:?}");
            assert!(matches!(
                err.into_image_error(),
                image::ImageError::Limits(_)
            ));
        }
        let png_bytes = png(&pattern(64, 48));
        assert!(matches!(
            opts(Some(63), None, None).decode(&png_bytes),
            Err(DecodeError::Image(image::ImageError::Limits(_)))
        ));
        assert_eq!(
            Limits::default().max_alloc,
            image::Limits::default().max_alloc
        );
    }

    #[test]
    fn cmyk_conversion_matches_pil_corners() {
        // samples are Adobe-inverted: 255 = no ink
        assert_eq!(cmyk_to_rgb(&[[255, 255, 255, 255]]), vec![255, 255, 255]);
        assert_eq!(cmyk_to_rgb(&[[0, 0, 0, 255]]), vec![0, 0, 0]);
        assert_eq!(cmyk_to_rgb(&[[255, 255, 255, 0]]), vec![0, 0, 0]);
        assert_eq!(cmyk_to_rgb(&[[255, 0, 128, 255]]), vec![255, 0, 128]);
    }
}
