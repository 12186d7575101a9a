//! Why a header could not be read.

use super::format::Process;

/// What is wrong with an image header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HeaderError {
    /// The input ends before any frame header.
    #[error("truncated before the frame header")]
    TruncatedBeforeFrameHeader,
    /// The input ends inside the frame header.
    #[error("truncated inside the frame header")]
    TruncatedInFrameHeader,
    /// A byte other than `FF` where a marker must start (T.81 B.1.1.2). The walks skip such
    /// bytes as libjpeg does and record them ([`Extraneous`](super::Extraneous)); a strict
    /// policy reports this instead ([`Extraneous::strict_error`](super::Extraneous::strict_error)).
    #[error("expected a marker at offset {offset}, found 0x{found:02X}")]
    ExpectedMarker {
        /// Offset of the offending byte.
        offset: u64,
        /// The byte found.
        found: u8,
    },
    /// `FF 00` where a marker must be: a stuffed byte outside entropy-coded data. Skipped and
    /// recorded like [`HeaderError::ExpectedMarker`]; reported by a strict policy.
    #[error("invalid marker 0xFF{code:02X} at offset {offset}")]
    InvalidMarker {
        /// Offset of the marker's `FF`.
        offset: u64,
        /// The byte after `FF`.
        code: u8,
    },
    /// A second SOI before any frame header.
    #[error("unexpected SOI marker at offset {offset}")]
    UnexpectedSoi {
        /// Offset of the marker.
        offset: u64,
    },
    /// A segment length below 2, which cannot even cover the length field.
    #[error("bad segment length {length} for marker 0xFF{marker:02X} at offset {offset}")]
    BadSegmentLength {
        /// The marker's second byte.
        marker: u8,
        /// Offset of the marker.
        offset: u64,
        /// The length read.
        length: u16,
    },
    /// SOS or EOI came before any frame header.
    #[error("no frame header: {} at offset {offset} comes before any SOFn", marker_name(*marker))]
    NoFrameHeader {
        /// The marker's second byte (`0xDA` SOS or `0xD9` EOI).
        marker: u8,
        /// Offset of the marker.
        offset: u64,
    },
    /// A JPEG-LS (T.87) frame, which is not a T.81 JPEG.
    #[error("JPEG-LS frame (SOF55) is not supported")]
    JpegLs,
    /// The frame header says the width is zero.
    #[error("zero width")]
    ZeroWidth,
    /// The frame header says the height is zero: the height is deferred to a DNL marker after
    /// the first scan, which a header-only probe cannot read.
    #[error("zero height (a height deferred to a DNL marker is not supported)")]
    ZeroHeight,
    /// The frame header's component count is not allowed for its process.
    #[error("invalid component count {count} for a {process} frame")]
    BadComponentCount {
        /// Nf.
        count: u8,
        /// The frame's process.
        process: Process,
    },
    /// The frame header's length does not match its component count (Lf = 8 + 3 × Nf).
    #[error("bad frame header length {length} for {components} components")]
    BadFrameLength {
        /// Lf.
        length: u16,
        /// Nf.
        components: u8,
    },
    /// A sample precision the frame's process does not allow (T.81 Table B.2).
    #[error("invalid sample precision {precision} for a {process} frame")]
    BadPrecision {
        /// P.
        precision: u8,
        /// The frame's process.
        process: Process,
    },
    /// A component's horizontal or vertical sampling factor outside 1–4.
    #[error("invalid sampling factors 0x{factors:02X} for component {component}")]
    BadSamplingFactor {
        /// The component identifier (Ci).
        component: u8,
        /// Hi (high nibble) and Vi (low nibble).
        factors: u8,
    },
    /// A quantization table selector outside 0–3.
    #[error("invalid quantization table {table} for component {component}")]
    BadQuantTable {
        /// The component identifier (Ci).
        component: u8,
        /// Tqi.
        table: u8,
    },
    /// Two components of one frame header share an identifier.
    #[error("duplicate component identifier {component}")]
    DuplicateComponent {
        /// The repeated identifier (Ci).
        component: u8,
    },
    /// The input ends inside a fixed-size header (PNG, GIF, WebP, BMP).
    #[error("truncated header")]
    TruncatedHeader,
    /// PNG: the first chunk is not a 13-byte IHDR.
    #[error("the first chunk is not IHDR")]
    IhdrNotFirst,
    /// PNG: the IHDR chunk's CRC does not match its contents.
    #[error("IHDR CRC mismatch")]
    BadCrc,
    /// PNG: a bit depth / colour type pair, compression, filter or interlace method the
    /// PNG specification does not define.
    #[error("invalid IHDR field: {0}")]
    BadIhdr(&'static str),
    /// A width or height beyond what the format allows (PNG: 2^31 - 1).
    #[error("dimension out of range")]
    DimensionOutOfRange,
    /// WebP: the first chunk is not VP8, VP8L or VP8X.
    #[error("unknown first chunk")]
    UnknownWebpChunk,
    /// WebP: the VP8 key-frame start code or VP8L signature is wrong, or the frame is not a
    /// key frame.
    #[error("bad bitstream signature")]
    BadSignature,
    /// BMP: a DIB header size that no BMP version uses.
    #[error("unknown DIB header size {0}")]
    BadDibHeader(u32),
    /// JPEG: more extraneous bytes between marker segments than a walk skips (libjpeg skips
    /// any number; imgchkr stops at [`MAX_EXTRANEOUS`](super::MAX_EXTRANEOUS) so that a probe
    /// of a file of junk stays bounded).
    #[error(
        "more than {} extraneous bytes before the frame header (the first at offset {offset})",
        super::MAX_EXTRANEOUS
    )]
    TooMuchExtraneousData {
        /// Offset of the first extraneous byte.
        offset: u64,
    },
    /// GIF: a byte that starts no block (extension `21`, image `2C` or trailer `3B`) where a
    /// block must start.
    #[error("unknown block 0x{found:02X} at offset {offset}")]
    BadGifBlock {
        /// Offset of the byte.
        offset: u64,
        /// The byte found.
        found: u8,
    },
    /// GIF: the trailer comes before any image descriptor: there is no frame to show.
    #[error("no image before the trailer at offset {offset}")]
    NoGifImage {
        /// Offset of the trailer.
        offset: u64,
    },
    /// BMP: a colour-plane count other than 1.
    #[error("{0} colour planes (must be 1)")]
    BadPlanes(u16),
    /// BMP: a bit count that no BMP version uses with this header.
    #[error("invalid bit count {0}")]
    BadBitCount(u16),
    /// BMP: a compression the header's version does not define, or one that does not go
    /// with the bit count (RLE8 needs 8 bits, RLE4 4, bit fields 16 or 32, JPEG and PNG 0).
    #[error("invalid compression {compression} for {bits} bits per pixel")]
    BadCompression {
        /// biCompression.
        compression: u32,
        /// biBitCount.
        bits: u16,
    },
    /// BMP: top-down rows (a negative height) with a compression other than none or bit
    /// fields, which the format forbids.
    #[error("top-down rows with compression {0}")]
    TopDownCompressed(u32),
    /// BMP: more palette entries than the bit count can index (at most 2^bits up to 8 bits
    /// per pixel, 65,536 above).
    #[error("a palette of {colours} entries for {bits} bits per pixel")]
    BadPaletteSize {
        /// biClrUsed.
        colours: u32,
        /// biBitCount.
        bits: u16,
    },
    /// WebP: a header field the WebP container or bitstream specification does not allow.
    #[error("invalid {0}")]
    BadWebpField(&'static str),
    /// WebP: a still image whose VP8X canvas is not its bitstream's size.
    #[error(
        "VP8X canvas {}x{} differs from the image's {}x{}",
        canvas.0, canvas.1, image.0, image.1
    )]
    WebpCanvasMismatch {
        /// The VP8X canvas width and height.
        canvas: (u32, u32),
        /// The VP8 / VP8L frame's width and height.
        image: (u32, u32),
    },
}

fn marker_name(marker: u8) -> &'static str {
    match marker {
        0xDA => "SOS",
        0xD9 => "EOI",
        _ => "marker",
    }
}
