//! WebP bitstream headers, and the chunk walk that checks a still image's VP8X canvas against
//! its bitstream (what libwebp's `WebPGetFeatures` refuses when they differ).
//!
//! After a VP8X chunk, a still image's chunks (ICCP, ALPH, unknown ones) are skipped by their
//! sizes, unread, up to the `VP8 ` or `VP8L` chunk, whose frame header must give the canvas's
//! size. Two walks share these rules: [`walk`] over a whole slice, and [`Chunks`] fed one token
//! at a time by [`super::Probe`].

use super::error::HeaderError;

/// Where the chunks after a VP8X chunk start: RIFF header (12) + VP8X (8 + 10).
pub(crate) const CHUNKS: u64 = 30;

/// A chunk header: FourCC and little-endian payload size.
const HEADER: usize = 8;

#[inline]
fn le16(b: &[u8], at: usize) -> u32 {
    u32::from(u16::from_le_bytes([b[at], b[at + 1]]))
}

#[inline]
fn le24(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], 0])
}

/// VP8 (RFC 6386 §9.1), the first 10 bytes of a `VP8 ` chunk's payload of `size` bytes: a
/// 3-byte frame tag, the key-frame start code, 14-bit width and height (the top two bits of
/// each are scaling, which decoders ignore). The checks are libwebp's `VP8GetInfo`.
#[inline(always)]
pub(crate) fn vp8(p: &[u8], size: u32) -> Result<(u32, u32), HeaderError> {
    if size < 10 {
        return Err(HeaderError::BadWebpField("VP8 chunk size"));
    }
    let tag = le24(p, 0);
    // Bit 0 clear: a key frame, the only kind a still image starts with.
    if tag & 1 != 0 || p[3..6] != [0x9D, 0x01, 0x2A] {
        return Err(HeaderError::BadSignature);
    }
    if (tag >> 1) & 7 > 3 {
        return Err(HeaderError::BadWebpField("VP8 version (over 3)"));
    }
    if (tag >> 4) & 1 == 0 {
        return Err(HeaderError::BadWebpField(
            "VP8 show_frame flag (an invisible frame)",
        ));
    }
    // The first partition lies within the chunk.
    if tag >> 5 >= size {
        return Err(HeaderError::BadWebpField("VP8 first partition size"));
    }
    match (le16(p, 6) & 0x3FFF, le16(p, 8) & 0x3FFF) {
        (0, _) => Err(HeaderError::ZeroWidth),
        (_, 0) => Err(HeaderError::ZeroHeight),
        dims => Ok(dims),
    }
}

/// VP8L, the first 5 bytes of a `VP8L` chunk's payload of `size` bytes: signature 0x2F, then
/// width-1 and height-1 in 14 bits each, alpha, and a 3-bit version that must be 0.
#[inline(always)]
pub(crate) fn vp8l(p: &[u8], size: u32) -> Result<(u32, u32), HeaderError> {
    if size < 5 {
        return Err(HeaderError::BadWebpField("VP8L chunk size"));
    }
    let bits = u32::from_le_bytes([p[1], p[2], p[3], p[4]]);
    if p[0] != 0x2F || bits >> 29 != 0 {
        return Err(HeaderError::BadSignature);
    }
    Ok(((bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1))
}

/// What a chunk header says to do.
enum Chunk {
    /// The bitstream: read its first `want` payload bytes (`vp8` tells which kind).
    Frame { vp8: bool, size: u32 },
    /// Another chunk: skip this many bytes from its header on (payload and padding).
    Skip(u64),
}

#[inline]
fn chunk(header: &[u8; HEADER]) -> Chunk {
    let size = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    match &header[..4] {
        b"VP8 " => Chunk::Frame { vp8: true, size },
        b"VP8L" => Chunk::Frame { vp8: false, size },
        _ => Chunk::Skip(HEADER as u64 + u64::from(size) + u64::from(size & 1)),
    }
}

/// The bitstream's size, from the first payload bytes `p`, against the `canvas`.
#[inline]
fn frame(vp8: bool, size: u32, p: &[u8], canvas: (u32, u32)) -> Result<(u32, u32), HeaderError> {
    let dims = if vp8 {
        self::vp8(p, size)?
    } else {
        vp8l(p, size)?
    };
    if dims != canvas {
        return Err(HeaderError::WebpCanvasMismatch {
            canvas,
            image: dims,
        });
    }
    Ok(canvas)
}

#[inline]
fn want(vp8: bool) -> usize {
    if vp8 { 10 } else { 5 }
}

/// Walks the chunks of a whole WebP in memory after its VP8X chunk; the canvas.
pub(crate) fn walk(bytes: &[u8], canvas: (u32, u32)) -> Result<(u32, u32), HeaderError> {
    let at =
        |pos: u64| usize::try_from(pos).map_or(&[][..], |p| bytes.get(p..).unwrap_or_default());
    let mut pos = CHUNKS;
    loop {
        let header = at(pos)
            .first_chunk::<HEADER>()
            .ok_or(HeaderError::TruncatedHeader)?;
        match chunk(header) {
            Chunk::Skip(skip) => pos += skip,
            Chunk::Frame { vp8, size } => {
                let payload = at(pos + HEADER as u64)
                    .get(..want(vp8))
                    .ok_or(HeaderError::TruncatedHeader)?;
                return frame(vp8, size, payload, canvas);
            }
        }
    }
}

/// The incremental walk: `pos` (owned by the caller) is the offset of the token it wants.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Chunks {
    canvas: (u32, u32),
    /// The bitstream chunk found, once its header is read.
    frame: Option<(bool, u32)>,
}

/// What a token gave.
pub(crate) enum Next {
    More,
    Done(Result<(u32, u32), HeaderError>),
}

impl Chunks {
    pub(crate) fn new(canvas: (u32, u32)) -> Self {
        Chunks {
            canvas,
            frame: None,
        }
    }

    /// How many bytes the next token has.
    pub(crate) fn want(&self) -> usize {
        match self.frame {
            None => HEADER,
            Some((vp8, _)) => want(vp8),
        }
    }

    /// Consumes the token at `*pos` (exactly [`Chunks::want`] bytes) and moves `*pos` on.
    pub(crate) fn advance(&mut self, pos: &mut u64, token: &[u8]) -> Next {
        match self.frame {
            None => {
                let Some(header) = token.first_chunk() else {
                    return Next::Done(Err(HeaderError::TruncatedHeader));
                };
                match chunk(header) {
                    Chunk::Skip(skip) => *pos += skip,
                    Chunk::Frame { vp8, size } => {
                        *pos += HEADER as u64;
                        self.frame = Some((vp8, size));
                    }
                }
                Next::More
            }
            Some((vp8, size)) => Next::Done(frame(vp8, size, token, self.canvas)),
        }
    }
}
