//! Formats whose dimensions sit at fixed offsets in the first few dozen bytes: PNG, WebP and
//! BMP. Each is read from one leading run of bytes, never from pixel data, and every field of
//! that run that its specification constrains is checked.

use super::error::HeaderError;
use super::webp;
use super::{Format, ImageInfo};

/// What a fixed-header parse needs.
pub(crate) enum Parsed {
    /// The first `n` bytes (more than were given).
    Need(usize),
    Done(Result<ImageInfo, HeaderError>),
    /// WebP: a still image's VP8X canvas, to be checked against the image's bitstream
    /// header in the chunks from [`webp::CHUNKS`] on.
    WebpChunks((u32, u32)),
}

/// PNG's CRC-32 (ISO 3309, as zlib's), sixteen bytes a step: IHDR's type and data are 17
/// bytes, one step and a byte, where a byte-at-a-time or `crc32fast`'s path for short inputs
/// takes about twice as long (the probe's budget is a few nanoseconds).
const PNG_CRC: crc::Crc<u32, crc::Table<16>> =
    crc::Crc::<u32, crc::Table<16>>::new(&crc::CRC_32_ISO_HDLC);

/// The most leading bytes any fixed header takes (a BMP's file and info headers, 54).
const HEAD: usize = 54;

/// How many leading bytes `format` needs first, or `None` if imgchkr does not read its
/// dimensions.
#[inline]
pub(crate) fn first_need(format: Format) -> Option<usize> {
    match format {
        // Signature (8) + IHDR length, type, 13 data bytes and CRC (25).
        Format::Png => Some(33),
        // RIFF header (12) + the first chunk's FourCC and size; then per chunk type.
        Format::Webp => Some(20),
        // File header (14) + DIB header size (4) + the OS/2 1.x header's fields (8); then
        // per header version.
        Format::Bmp => Some(26),
        _ => None,
    }
}

/// Reads `format`'s dimensions from a whole in-memory input `bytes`, asking [`dims`] for
/// the same leading runs as the incremental probe does; `None` if imgchkr does not read them.
#[inline]
pub(crate) fn read(format: Format, bytes: &[u8]) -> Option<Result<ImageInfo, HeaderError>> {
    let first = first_need(format)?;
    // Every leading byte a header can take at once: the readers look only as far as each
    // step needs, so a longer run gives the incremental probe's answer in one pass (a BMP or
    // WebP header whose version asks for more than the first need is not read twice).
    let head = bytes.get(..HEAD.min(bytes.len())).unwrap_or_default();
    let result = if head.len() < first {
        Err(HeaderError::TruncatedHeader)
    } else {
        match dims(format, head) {
            // More than is there.
            Dims::Need(_) => Err(HeaderError::TruncatedHeader),
            Dims::Done(result) => result,
            Dims::WebpChunks(canvas) => pack(webp::walk(bytes, canvas)),
        }
    };
    // The answer is built once, at the end: moving a whole `ImageInfo` through the loop's
    // enums cost a store-forwarding stall per probe (perf: most of the time on GIF).
    Some(result.map(|packed| info_of(format, packed)))
}

/// Reads `format`'s dimensions from `head`, the input's first bytes (at least
/// [`first_need`] of them).
#[inline]
pub(crate) fn parse(format: Format, head: &[u8]) -> Parsed {
    match dims(format, head) {
        Dims::Need(more) => Parsed::Need(more),
        Dims::Done(result) => Parsed::Done(result.map(|packed| info_of(format, packed))),
        Dims::WebpChunks(canvas) => Parsed::WebpChunks(canvas),
    }
}

/// What a fixed-header read of `head` gives: the dimensions, or how many leading bytes it
/// needs (more than `head`).
enum Dims {
    Need(usize),
    /// The dimensions [`pack`]ed.
    Done(Result<u64, HeaderError>),
    WebpChunks((u32, u32)),
}

/// Width and height as one `u64` (width in the high half) while they pass through the
/// readers' results: the branches of each format merge into one result that lives on the
/// stack, and two `u32`s stored apart and read back as one 8-byte pair stalled every probe
/// on store forwarding (perf: half of a PNG or WebP probe). One 8-byte store, one 8-byte load.
#[inline(always)]
fn pack(result: Result<(u32, u32), HeaderError>) -> Result<u64, HeaderError> {
    result.map(|(width, height)| (u64::from(width) << 32) | u64::from(height))
}

/// The answer for `packed` dimensions (see [`pack`]).
#[inline(always)]
fn info_of(format: Format, packed: u64) -> ImageInfo {
    info(format, (packed >> 32) as u32, packed as u32)
}

#[inline]
fn dims(format: Format, head: &[u8]) -> Dims {
    Dims::Done(match format {
        Format::Png => pack(png(head)),
        Format::Webp => return webp(head),
        Format::Bmp => return bmp(head),
        // `first_need` sent no other format here.
        _ => Err(HeaderError::TruncatedHeader),
    })
}

/// The answer for a format other than JPEG.
#[inline]
pub(crate) fn info(format: Format, width: u32, height: u32) -> ImageInfo {
    ImageInfo {
        format,
        width,
        height,
        jpeg: None,
        extraneous: None,
    }
}

#[inline]
fn le16(b: &[u8], at: usize) -> u32 {
    u32::from(u16::from_le_bytes([b[at], b[at + 1]]))
}

#[inline]
fn le24(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], 0])
}

#[inline]
fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

#[inline]
fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

#[inline(always)]
fn nonzero(width: u32, height: u32) -> Result<(u32, u32), HeaderError> {
    match (width, height) {
        (0, _) => Err(HeaderError::ZeroWidth),
        (_, 0) => Err(HeaderError::ZeroHeight),
        dims => Ok(dims),
    }
}

/// PNG (ISO/IEC 15948 §11.2.2): IHDR must be the first chunk, 13 bytes, with a valid CRC.
#[inline(always)]
fn png(h: &[u8]) -> Result<(u32, u32), HeaderError> {
    if be32(h, 8) != 13 || &h[12..16] != b"IHDR" {
        return Err(HeaderError::IhdrNotFirst);
    }
    if PNG_CRC.checksum(&h[12..29]) != be32(h, 29) {
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

/// WebP: the RIFF header, then the first chunk, which says which bitstream follows; the
/// checks are libwebp's (`WebPGetFeatures`) and the container specification's.
#[inline(always)]
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
    // The RIFF size covers "WEBP" and at least one chunk header.
    if le32(h, 4) < 12 {
        return Dims::Done(Err(HeaderError::BadWebpField("RIFF size")));
    }
    let size = le32(h, 16);
    Dims::Done(pack(match chunk {
        b"VP8 " => webp::vp8(&h[20..30], size),
        b"VP8L" => webp::vp8l(&h[20..25], size),
        _ => match vp8x(h, size) {
            // A still image: the canvas must be its bitstream's size (animations place
            // their frames on the canvas, which is what a decoder allocates).
            Ok(canvas) if h[20] & ANIMATION == 0 => return Dims::WebpChunks(canvas),
            other => other,
        },
    }))
}

/// VP8X flags: an animation.
const ANIMATION: u8 = 0x02;

/// VP8X: a 10-byte chunk of flags and reserved bits, then the canvas width-1 and height-1 in
/// 24 bits each, whose product is below 2^32. The reserved bits are not checked: the
/// specification has readers ignore them, and libwebp does.
#[inline(always)]
fn vp8x(h: &[u8], size: u32) -> Result<(u32, u32), HeaderError> {
    if size != 10 {
        return Err(HeaderError::BadWebpField("VP8X chunk size (not 10)"));
    }
    let (width, height) = (le24(h, 24) + 1, le24(h, 27) + 1);
    if u64::from(width) * u64::from(height) > u64::from(u32::MAX) {
        return Err(HeaderError::BadWebpField(
            "canvas size (width × height of 2^32 or more)",
        ));
    }
    Ok((width, height))
}

/// BMP: the DIB header's size names its version; OS/2 1.x has 16-bit unsigned dimensions,
/// later versions 32-bit signed ones (a negative height means top-down rows). Then the
/// fields every decoder relies on: one colour plane, a bit count the version defines, a
/// compression that goes with that bit count and row order, a palette the bit count can
/// index.
#[inline(always)]
fn bmp(h: &[u8]) -> Dims {
    let dib = le32(h, 14);
    let need = match dib {
        12 => 26,
        16 => 30,
        40 | 52 | 56 | 64 | 108 | 124 => 54,
        other => return Dims::Done(Err(HeaderError::BadDibHeader(other))),
    };
    // A header of known length: its field reads need no bounds checks.
    let fields = match need {
        26 => h.first_chunk::<26>().map(|h| bmp_fields(dib, h)),
        30 => h.first_chunk::<30>().map(|h| bmp_fields(dib, h)),
        _ => h.first_chunk::<54>().map(|h| bmp_fields(dib, h)),
    };
    match fields {
        Some(result) => Dims::Done(pack(result)),
        None => Dims::Need(need),
    }
}

#[inline]
fn bmp_fields<const N: usize>(dib: u32, h: &[u8; N]) -> Result<(u32, u32), HeaderError> {
    if dib == 12 {
        // BITMAPCOREHEADER: 16-bit width, height, planes, bit count.
        planes(le16(h, 22))?;
        let bits = le16(h, 24) as u16;
        if !matches!(bits, 1 | 4 | 8 | 24) {
            return Err(HeaderError::BadBitCount(bits));
        }
        return nonzero(le16(h, 18), le16(h, 20));
    }
    let width = le32(h, 18) as i32;
    let height = le32(h, 22) as i32;
    if width < 0 || height == i32::MIN {
        return Err(HeaderError::DimensionOutOfRange);
    }
    planes(le16(h, 26))?;
    let bits = le16(h, 28) as u16;
    if !matches!(bits, 0 | 1 | 2 | 4 | 8 | 16 | 24 | 32) || (dib == 16 && bits == 0) {
        return Err(HeaderError::BadBitCount(bits));
    }
    // The 16-byte OS/2 2.x header ends before the compression field.
    if dib > 16 {
        let compression = le32(h, 30);
        // OS/2 2.x (64 bytes) numbers its compressions 3 and 4 differently.
        let os2 = dib == 64;
        let fits = match (compression, os2) {
            (0, _) => bits != 0,
            (1, _) => bits == 8,
            (2, _) => bits == 4,
            (3 | 6, false) => matches!(bits, 16 | 32),
            (4 | 5, false) => bits == 0,
            (3, true) => bits == 1,
            (4, true) => bits == 24,
            _ => false,
        };
        if !fits {
            return Err(HeaderError::BadCompression { compression, bits });
        }
        // Only uncompressed and bit-field bitmaps may store their rows top-down.
        if height < 0 && !matches!((compression, os2), (0, _) | (3 | 6, false)) {
            return Err(HeaderError::TopDownCompressed(compression));
        }
        let colours = le32(h, 46);
        let most = if bits <= 8 { 1 << bits } else { 1 << 16 };
        if bits != 0 && colours > most {
            return Err(HeaderError::BadPaletteSize { colours, bits });
        }
    }
    nonzero(width.unsigned_abs(), height.unsigned_abs())
}

#[inline]
fn planes(planes: u32) -> Result<(), HeaderError> {
    if planes != 1 {
        return Err(HeaderError::BadPlanes(planes as u16));
    }
    Ok(())
}
