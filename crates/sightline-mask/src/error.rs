//! Error type of the mask crate.

/// What can go wrong when building or combining masks.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MaskError {
    /// A mask buffer does not have `h * w` elements.
    #[error("mask buffer has {len} elements, expected {h}x{w} = {expected}")]
    BufferSize {
        /// Buffer length.
        len: usize,
        /// Mask height.
        h: u32,
        /// Mask width.
        w: u32,
        /// `h * w`.
        expected: u64,
    },
    /// The run lengths of an RLE do not add up to `h * w`.
    #[error("RLE counts add up to {sum}, expected {h}x{w} = {expected}")]
    CountsSum {
        /// Sum of the counts.
        sum: u64,
        /// Mask height.
        h: u32,
        /// Mask width.
        w: u32,
        /// `h * w`.
        expected: u64,
    },
    /// A compressed RLE string contains a character outside the COCO alphabet (`'0'..='o'`) or ends mid-number.
    #[error("invalid compressed RLE string at byte {pos}: {reason}")]
    BadString {
        /// Byte offset of the problem.
        pos: usize,
        /// What is wrong.
        reason: &'static str,
    },
    /// Two masks that must have the same size do not.
    #[error("mask sizes differ: {0}x{1} vs {2}x{3}")]
    SizeMismatch(u32, u32, u32, u32),
    /// The mask is too large for 32-bit run lengths.
    #[error("mask of {h}x{w} pixels is too large for 32-bit RLE counts")]
    TooLarge {
        /// Mask height.
        h: u32,
        /// Mask width.
        w: u32,
    },
}
