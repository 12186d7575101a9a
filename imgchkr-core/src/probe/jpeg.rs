//! The JPEG marker-segment walk of ITU-T T.81 Annex B, up to the frame header.
//!
//! The walk reads markers and segment lengths only and skips every segment by its length:
//! it never scans for byte patterns, so an EXIF thumbnail or a comment holding `FF C0` cannot
//! pass for the frame header. It stops at the first SOFn, before any entropy-coded data.

use super::error::HeaderError;
use super::format::{JpegFrame, Process};
use super::{Format, ImageInfo};

const SOI: u8 = 0xD8;
const EOI: u8 = 0xD9;
const SOS: u8 = 0xDA;
const DHP: u8 = 0xDE;
const TEM: u8 = 0x01;
const SOF55: u8 = 0xF7;

/// Where the walk is. `pos` (owned by the caller) is the offset of the token it wants next.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Walker {
    at: At,
    /// Dimensions from a DHP segment (hierarchical mode), which are the image's.
    dhp: Option<(u16, u16)>,
    /// The frame header being read.
    frame: Frame,
    /// Component identifiers seen in this frame header (a 256-bit set: no allocation).
    seen: [u64; 4],
}

#[derive(Debug, Clone, Copy)]
enum At {
    /// `FF` and the marker code (or another `FF`: a fill byte).
    Marker,
    /// The two-byte length of the segment whose marker ended just before.
    Length { marker: u8 },
    /// P, Y, X and Nf of a frame header (SOFn or DHP).
    FrameHead,
    /// One component specification (Ci, Hi/Vi, Tqi); `left` of them remain.
    Component { left: u8 },
}

#[derive(Debug, Clone, Copy, Default)]
struct Frame {
    marker: u8,
    length: u16,
    precision: u8,
    height: u16,
    width: u16,
    components: u8,
}

pub(crate) enum Next {
    More,
    Done(Result<ImageInfo, HeaderError>),
}

impl Walker {
    pub(crate) fn new() -> Self {
        Walker {
            at: At::Marker,
            dhp: None,
            frame: Frame::default(),
            seen: [0; 4],
        }
    }

    /// How many bytes the next token has.
    #[inline]
    pub(crate) fn want(&self) -> usize {
        match self.at {
            At::Marker | At::Length { .. } => 2,
            At::FrameHead => 6,
            At::Component { .. } => 3,
        }
    }

    /// Whether the next token is a marker (where fill bytes may come).
    #[inline]
    pub(crate) fn at_marker(&self) -> bool {
        matches!(self.at, At::Marker)
    }

    /// What running out of input here means.
    pub(crate) fn truncation(&self) -> HeaderError {
        match self.at {
            At::Marker | At::Length { .. } => HeaderError::TruncatedBeforeFrameHeader,
            At::FrameHead | At::Component { .. } => HeaderError::TruncatedInFrameHeader,
        }
    }

    /// Consumes the token at `*pos` and moves `*pos` to the next one.
    #[inline]
    pub(crate) fn advance(&mut self, pos: &mut u64, token: &[u8]) -> Next {
        match self.advance_inner(pos, token) {
            Ok(None) => Next::More,
            Ok(Some(info)) => Next::Done(Ok(info)),
            Err(e) => Next::Done(Err(e)),
        }
    }

    fn advance_inner(
        &mut self,
        pos: &mut u64,
        token: &[u8],
    ) -> Result<Option<ImageInfo>, HeaderError> {
        match self.at {
            At::Marker => {
                let (prefix, code) = (token[0], token[1]);
                if prefix != 0xFF {
                    return Err(HeaderError::ExpectedMarker {
                        offset: *pos,
                        found: prefix,
                    });
                }
                match code {
                    // A fill byte (B.1.1.2): the marker starts one byte later.
                    0xFF => *pos += 1,
                    0x00 => return Err(HeaderError::InvalidMarker { offset: *pos, code }),
                    // Stand-alone markers (B.1.1.3): no length, nothing to skip.
                    TEM | 0xD0..=0xD7 => *pos += 2,
                    SOI => return Err(HeaderError::UnexpectedSoi { offset: *pos }),
                    EOI | SOS => {
                        return Err(HeaderError::NoFrameHeader {
                            marker: code,
                            offset: *pos,
                        });
                    }
                    SOF55 => return Err(HeaderError::JpegLs),
                    _ => {
                        *pos += 2;
                        self.at = At::Length { marker: code };
                    }
                }
            }
            At::Length { marker } => {
                let length = u16::from_be_bytes([token[0], token[1]]);
                if length < 2 {
                    return Err(HeaderError::BadSegmentLength {
                        marker,
                        offset: *pos - 2,
                        length,
                    });
                }
                if marker == DHP || JpegFrame::kind(marker).is_some() {
                    // Lf covers itself, P, Y, X and Nf: 8 bytes at least.
                    if length < 8 {
                        return Err(HeaderError::BadFrameLength {
                            length,
                            components: 0,
                        });
                    }
                    self.frame = Frame {
                        marker,
                        length,
                        ..Frame::default()
                    };
                    *pos += 2;
                    self.at = At::FrameHead;
                } else {
                    // Any other segment (APPn, COM, DQT, DHT, DAC, DRI, JPGn, RES…) is skipped
                    // whole by its length, unread.
                    *pos += u64::from(length);
                    self.at = At::Marker;
                }
            }
            At::FrameHead => {
                let frame = &mut self.frame;
                frame.precision = token[0];
                frame.height = u16::from_be_bytes([token[1], token[2]]);
                frame.width = u16::from_be_bytes([token[3], token[4]]);
                frame.components = token[5];
                frame.check()?;
                self.seen = [0; 4];
                *pos += 6;
                self.at = At::Component {
                    left: frame.components,
                };
            }
            At::Component { left } => {
                let (component, factors, table) = (token[0], token[1], token[2]);
                if !(1..=4).contains(&(factors >> 4)) || !(1..=4).contains(&(factors & 0x0F)) {
                    return Err(HeaderError::BadSamplingFactor { component, factors });
                }
                // Tq is 0–3, and 0 in lossless frames, which have no quantization (B.2.2).
                let lossless =
                    JpegFrame::kind(self.frame.marker).is_some_and(|k| k.0 == Process::Lossless);
                if table > 3 || (lossless && table != 0) {
                    return Err(HeaderError::BadQuantTable { component, table });
                }
                // Each component identifier appears once in a frame header (B.2.2).
                let (word, bit) = (usize::from(component / 64), 1u64 << (component % 64));
                if self.seen[word] & bit != 0 {
                    return Err(HeaderError::DuplicateComponent { component });
                }
                self.seen[word] |= bit;
                *pos += 3;
                if left > 1 {
                    self.at = At::Component { left: left - 1 };
                } else if self.frame.marker == DHP {
                    // Hierarchical mode: the DHP gives the image's size; the frames follow.
                    self.dhp = Some((self.frame.width, self.frame.height));
                    self.at = At::Marker;
                } else {
                    return Ok(Some(self.info()));
                }
            }
        }
        Ok(None)
    }

    fn info(&self) -> ImageInfo {
        let frame = self.frame;
        let (process, coding, differential) = JpegFrame::kind(frame.marker).unwrap_or((
            Process::Baseline,
            super::Coding::Huffman,
            false,
        ));
        let (width, height) = self.dhp.unwrap_or((frame.width, frame.height));
        ImageInfo {
            format: Format::Jpeg,
            width: u32::from(width),
            height: u32::from(height),
            jpeg: Some(JpegFrame {
                marker: frame.marker,
                process,
                coding,
                differential,
                hierarchical: self.dhp.is_some(),
                precision: frame.precision,
                components: frame.components,
            }),
        }
    }
}

impl Frame {
    /// The checks of T.81 B.2.2 and Table B.2 that the first six bytes allow.
    fn check(&self) -> Result<(), HeaderError> {
        if self.width == 0 {
            return Err(HeaderError::ZeroWidth);
        }
        if self.height == 0 {
            return Err(HeaderError::ZeroHeight);
        }
        // DHP has no process of its own (B.3.2): hold it to the loosest rules, the lossless ones.
        let process = JpegFrame::kind(self.marker).map_or(Process::Lossless, |k| k.0);
        let max_components = if process == Process::Progressive {
            4
        } else {
            255
        };
        if self.components == 0 || self.components > max_components {
            return Err(HeaderError::BadComponentCount {
                count: self.components,
                process,
            });
        }
        if u32::from(self.length) != 8 + 3 * u32::from(self.components) {
            return Err(HeaderError::BadFrameLength {
                length: self.length,
                components: self.components,
            });
        }
        let precision_ok = match process {
            Process::Baseline => self.precision == 8,
            Process::ExtendedSequential | Process::Progressive => {
                matches!(self.precision, 8 | 12)
            }
            Process::Lossless => (2..=16).contains(&self.precision),
        };
        if !precision_ok {
            return Err(HeaderError::BadPrecision {
                precision: self.precision,
                process,
            });
        }
        Ok(())
    }
}
