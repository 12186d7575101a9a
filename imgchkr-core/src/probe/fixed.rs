//! Formats whose dimensions sit at fixed offsets in the first few dozen bytes: PNG, GIF,
//! WebP and BMP. Each is read from one leading run of bytes, never from pixel data.

use super::error::HeaderError;
use super::{Format, ImageInfo};

/// What a fixed-header parse needs.
pub(crate) enum Parsed {
    /// The first `n` bytes (more than were given).
    Need(usize),
    Done(Result<ImageInfo, HeaderError>),
}

/// How many leading bytes `format` needs first, or `None` if imgchkr does not read its
/// dimensions.
#[inline]
pub(crate) fn first_need(format: Format) -> Option<usize> {
    match format {
        // Signature (8) + IHDR length, type, 13 data bytes and CRC (25).
        Format::Png => Some(33),
        // Signature (6) + logical screen width and height.
        Format::Gif => Some(10),
        // RIFF header (12) + the first chunk's FourCC and size; then per chunk type.
        Format::Webp => Some(20),
        // File header (14) + DIB header size (4) + width and height (8 at most).
        Format::Bmp => Some(26),
        _ => None,
    }
}

/// Reads `format`'s dimensions from a whole in-memory input `bytes`, asking [`dims`] for
/// the same leading runs as the incremental probe does; `None` if imgchkr does not read them.
#[inline]
pub(crate) fn read(format: Format, bytes: &[u8]) -> Option<Result<ImageInfo, HeaderError>> {
    let mut want = first_need(format)?;
    let result = loop {
        let Some(head) = bytes.get(..want) else {
            break Err(HeaderError::TruncatedHeader);
        };
        match dims(format, head) {
            Dims::Need(more) => want = more,
            Dims::Done(result) => break result,
        }
    };
    // The answer is built once, at the end: moving a whole `ImageInfo` through the loop's
    // enums cost a store-forwarding stall per probe (perf: most of the time on GIF).
    Some(result.map(|(width, height)| info(format, width, height)))
}

/// Reads `format`'s dimensions from `head`, the input's first bytes (at least
/// [`first_need`] of them).
#[inline]
pub(crate) fn parse(format: Format, head: &[u8]) -> Parsed {
    match dims(format, head) {
        Dims::Need(more) => Parsed::Need(more),
        Dims::Done(result) => {
            Parsed::Done(result.map(|(width, height)| info(format, width, height)))
        }
    }
}

/// What a fixed-header read of `head` gives: the dimensions, or how many leading bytes it
/// needs (more than `head`).
enum Dims {
    Need(usize),
    Done(Result<(u32, u32), HeaderError>),
}

#[inline]
fn dims(format: Format, head: &[u8]) -> Dims {
    Dims::Done(match format {
        Format::Png => png(head),
        Format::Gif => gif(head),
        Format::Webp => return webp(head),
        Format::Bmp => bmp(head),
        // `first_need` sent no other format here.
        _ => Err(HeaderError::TruncatedHeader),
    })
}

fn info(format: Format, width: u32, height: u32) -> ImageInfo {
    ImageInfo {
        format,
        width,
        height,
        jpeg: None,
    }
}

fn le16(b: &[u8], at: usize) -> u32 {
    u32::from(u16::from_le_bytes([b[at], b[at + 1]]))
}

fn le24(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], 0])
}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn nonzero(width: u32, height: u32) -> Result<(u32, u32), HeaderError> {
    match (width, height) {
        (0, _) => Err(HeaderError::ZeroWidth),
        (_, 0) => Err(HeaderError::ZeroHeight),
        dims => Ok(dims),
    }
}

/// PNG (ISO/IEC 15948 §11.2.2): IHDR must be the first chunk, 13 bytes, with a valid CRC.
fn png(h: &[u8]) -> Result<(u32, u32), HeaderError> {
    if be32(h, 8) != 13 || &h[12..16] != b"IHDR" {
        return Err(HeaderError::IhdrNotFirst);
    }
    if crc32fast::hash(&h[12..29]) != be32(h, 29) {
        return Err(HeaderError::BadCrc);
    }
    let (width, height) = nonzero(be32(h, 16), be32(h, 20))?;
    if width > i32::MAX as u32 || height > i32::MAX as u32 {
        return Err(HeaderError::DimensionOutOfRange);
    }
    let (depth, colour) = (h[24], h[25]);
    let depth_ok = match colour {
        0 => matches!(depth, 1 | 2 | 4 | 8 | 16),
        3 => matches!(depth, 1 | 2 | 4 | 8),
        2 | 4 | 6 => matches!(depth, 8 | 16),
        _ => return Err(HeaderError::BadIhdr("colour type")),
    };
    if !depth_ok {
        return Err(HeaderError::BadIhdr("bit depth"));
    }
    if h[26] != 0 {
        return Err(HeaderError::BadIhdr("compression method"));
    }
    if h[27] != 0 {
        return Err(HeaderError::BadIhdr("filter method"));
    }
    if h[28] > 1 {
        return Err(HeaderError::BadIhdr("interlace method"));
    }
    Ok((width, height))
}

/// GIF: the logical screen descriptor follows the six-byte signature.
fn gif(h: &[u8]) -> Result<(u32, u32), HeaderError> {
    nonzero(le16(h, 6), le16(h, 8))
}

/// WebP: the first chunk of the RIFF container says which bitstream follows.
fn webp(h: &[u8]) -> Dims {
    let chunk = &h[12..16];
    let need = match chunk {
        b"VP8 " | b"VP8X" => 30,
        b"VP8L" => 25,
        _ => return Dims::Done(Err(HeaderError::UnknownWebpChunk)),
    };
    if h.len() < need {
        return Dims::Need(need);
    }
    let size = match chunk {
        // VP8 (RFC 6386 §9.1): a key frame's tag has bit 0 clear, then the start code, then
        // 14-bit width and height (the top two bits are scaling).
        b"VP8 " => {
            if h[20] & 1 != 0 || h[23..26] != [0x9D, 0x01, 0x2A] {
                Err(HeaderError::BadSignature)
            } else {
                nonzero(le16(h, 26) & 0x3FFF, le16(h, 28) & 0x3FFF)
            }
        }
        // VP8L: signature 0x2F, then width-1 and height-1 in 14 bits each, alpha, and a
        // 3-bit version that must be 0.
        b"VP8L" => {
            let bits = le32(h, 21);
            if h[20] != 0x2F || bits >> 29 != 0 {
                Err(HeaderError::BadSignature)
            } else {
                Ok(((bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1))
            }
        }
        // VP8X: flags and reserved bytes, then the canvas width-1 and height-1 in 24 bits.
        _ => Ok((le24(h, 24) + 1, le24(h, 27) + 1)),
    };
    Dims::Done(size)
}

/// BMP: the DIB header's size names its version; OS/2 1.x has 16-bit unsigned dimensions,
/// later versions 32-bit signed ones (a negative height means top-down rows).
fn bmp(h: &[u8]) -> Result<(u32, u32), HeaderError> {
    let dib = le32(h, 14);
    match dib {
        12 => nonzero(le16(h, 18), le16(h, 20)),
        16 | 40 | 52 | 56 | 64 | 108 | 124 => {
            let width = le32(h, 18) as i32;
            let height = le32(h, 22) as i32;
            if width < 0 || height == i32::MIN {
                return Err(HeaderError::DimensionOutOfRange);
            }
            nonzero(width.unsigned_abs(), height.unsigned_abs())
        }
        other => Err(HeaderError::BadDibHeader(other)),
    }
}
