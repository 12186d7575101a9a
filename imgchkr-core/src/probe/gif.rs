//! GIF: the canvas a decoder allocates, read from the headers without decompressing.
//!
//! The logical screen descriptor gives a size, but decoders do not stop there: Chromium's
//! GIF reader (and Pillow) grow the canvas to hold the first frame when that frame's image
//! descriptor reaches past the screen, so a 32 × 32 screen with a 65535 × 66601 first frame
//! allocates the frame. The walk reads the screen, skips the global colour table and every
//! extension by the lengths of its data sub-blocks (never reading their contents), and stops
//! at the first image descriptor: the canvas is the screen extended by that frame's extent.
//!
//! Later frames are not read. Reaching them means walking the first frame's LZW data, a
//! sub-block at a time, through most of the file; and decoders do not grow the canvas for
//! them (Chromium crops later frames to the canvas fixed by the first, as the GIF89a
//! specification has every frame lie within the logical screen). A decoder that allocates a
//! later frame at its own size is bounded by its own limits; `--verify decode` decodes them.
//!
//! Two walks share these rules: [`walk`] over a whole slice, and [`Walker`] fed one token at
//! a time by [`super::Probe`].

use super::error::HeaderError;

/// Signature (6) and logical screen descriptor (7).
const SCREEN: usize = 13;
/// An image descriptor after its `2C`: left, top, width, height, flags.
const DESCRIPTOR: usize = 9;

const EXTENSION: u8 = 0x21;
const IMAGE: u8 = 0x2C;
const TRAILER: u8 = 0x3B;

/// The logical screen's width and height, and the offset of the first block (after the
/// global colour table, if any).
#[inline]
fn screen(head: &[u8; SCREEN]) -> (u32, u32, u64) {
    let width = u32::from(u16::from_le_bytes([head[6], head[7]]));
    let height = u32::from(u16::from_le_bytes([head[8], head[9]]));
    let flags = head[10];
    // Global colour table flag, then 2^(size + 1) entries of 3 bytes.
    let table = if flags & 0x80 != 0 {
        3u64 << ((flags & 0x07) + 1)
    } else {
        0
    };
    (width, height, SCREEN as u64 + table)
}

/// What the byte `found` at `offset`, where a block must start, starts.
enum Block {
    /// `21`: a label byte, then data sub-blocks.
    Extension,
    /// `2C`: an image descriptor.
    Image,
}

#[inline]
fn block(offset: u64, found: u8) -> Result<Block, HeaderError> {
    match found {
        EXTENSION => Ok(Block::Extension),
        IMAGE => Ok(Block::Image),
        TRAILER => Err(HeaderError::NoGifImage { offset }),
        found => Err(HeaderError::BadGifBlock { offset, found }),
    }
}

/// The canvas: the `screen` extended by the frame in `descriptor`.
#[inline]
fn canvas((width, height): (u32, u32), d: &[u8; DESCRIPTOR]) -> Result<(u32, u32), HeaderError> {
    let le16 = |at: usize| u32::from(u16::from_le_bytes([d[at], d[at + 1]]));
    let (left, top, frame_width, frame_height) = (le16(0), le16(2), le16(4), le16(6));
    let width = width.max(left + frame_width);
    let height = height.max(top + frame_height);
    match (width, height) {
        (0, _) => Err(HeaderError::ZeroWidth),
        (_, 0) => Err(HeaderError::ZeroHeight),
        canvas => Ok(canvas),
    }
}

/// Walks a whole GIF in memory to its first image descriptor; the canvas.
#[inline]
pub(crate) fn walk(bytes: &[u8]) -> Result<(u32, u32), HeaderError> {
    let head = bytes
        .first_chunk::<SCREEN>()
        .ok_or(HeaderError::TruncatedHeader)?;
    let (width, height, first) = screen(head);
    // Offsets past the end (a huge table) read as nothing: a truncation.
    let at =
        |pos: u64| usize::try_from(pos).map_or(&[][..], |p| bytes.get(p..).unwrap_or_default());
    let mut pos = first;
    loop {
        let &found = at(pos).first().ok_or(HeaderError::TruncatedHeader)?;
        match block(pos, found)? {
            Block::Image => {
                let descriptor = at(pos + 1)
                    .first_chunk::<DESCRIPTOR>()
                    .ok_or(HeaderError::TruncatedHeader)?;
                return canvas((width, height), descriptor);
            }
            Block::Extension => {
                // The label, then sub-blocks up to the empty one.
                pos += 2;
                loop {
                    let &len = at(pos).first().ok_or(HeaderError::TruncatedHeader)?;
                    pos += 1 + u64::from(len);
                    if len == 0 {
                        break;
                    }
                }
            }
        }
    }
}

/// Where the incremental walk is. `pos` (owned by the caller) is the offset of the token it
/// wants next.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Walker {
    at: At,
    /// The logical screen's width and height, once read.
    screen: (u32, u32),
}

#[derive(Debug, Clone, Copy)]
enum At {
    /// Signature and logical screen descriptor, at offset 0.
    Screen,
    /// The byte that starts a block.
    Block,
    /// A data sub-block's length byte.
    SubBlock,
    /// An image descriptor's fields after its `2C`.
    Descriptor,
}

/// What a token gave.
pub(crate) enum Next {
    More,
    Done(Result<(u32, u32), HeaderError>),
}

impl Walker {
    pub(crate) fn new() -> Self {
        Walker {
            at: At::Screen,
            screen: (0, 0),
        }
    }

    /// How many bytes the next token has.
    #[inline]
    pub(crate) fn want(&self) -> usize {
        match self.at {
            At::Screen => SCREEN,
            At::Block | At::SubBlock => 1,
            At::Descriptor => DESCRIPTOR,
        }
    }

    /// Consumes the token at `*pos` (exactly [`Walker::want`] bytes) and moves `*pos` to the
    /// next one.
    pub(crate) fn advance(&mut self, pos: &mut u64, token: &[u8]) -> Next {
        match (self.at, token) {
            (At::Screen, token) => {
                let Some(head) = token.first_chunk() else {
                    return Next::Done(Err(HeaderError::TruncatedHeader));
                };
                let (width, height, first) = screen(head);
                self.screen = (width, height);
                *pos = first;
                self.at = At::Block;
            }
            (At::Block, &[found]) => match block(*pos, found) {
                Err(e) => return Next::Done(Err(e)),
                Ok(Block::Image) => {
                    *pos += 1;
                    self.at = At::Descriptor;
                }
                Ok(Block::Extension) => {
                    *pos += 2;
                    self.at = At::SubBlock;
                }
            },
            (At::SubBlock, &[len]) => {
                *pos += 1 + u64::from(len);
                if len == 0 {
                    self.at = At::Block;
                }
            }
            (At::Descriptor, token) => {
                let Some(descriptor) = token.first_chunk() else {
                    return Next::Done(Err(HeaderError::TruncatedHeader));
                };
                return Next::Done(canvas(self.screen, descriptor));
            }
            // The caller always passes `want()` bytes.
            _ => return Next::Done(Err(HeaderError::TruncatedHeader)),
        }
        Next::More
    }
}
