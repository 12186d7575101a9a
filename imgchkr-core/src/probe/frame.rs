//! The frame header (SOFn, or DHP in hierarchical mode): the checks of T.81 B.2.2 and
//! Table B.2, in one place for both JPEG walks.
//!
//! The whole-buffer walk reads a frame header from one slice with [`Frame::parse`]; the
//! incremental walk, which may get it a byte at a time, calls the same two steps that `parse`
//! is made of, [`Frame::head`] and [`Frame::component`], one token each.

use super::error::HeaderError;
use super::format::{JpegFrame, Process};
use super::{Format, ImageInfo};

/// The DHP marker (hierarchical mode), whose segment has a frame header's layout (B.3.2).
pub(crate) const DHP: u8 = 0xDE;

/// What a frame header's first six bytes say, checked.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Frame {
    marker: u8,
    precision: u8,
    height: u16,
    width: u16,
    /// Nf, at least 1 once checked.
    pub(crate) components: u8,
    /// The highest quantization table selector a component may name (0 in lossless frames).
    max_table: u8,
}

/// Component identifiers seen so far in one frame header (a 256-bit set: no allocation).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Seen([u64; 4]);

impl Frame {
    /// Reads the whole frame header from `body`, the bytes after the marker and its length
    /// `length` (≥ 8, checked by the walk); bytes after the header are ignored, and a `body`
    /// that ends before it gives [`HeaderError::TruncatedInFrameHeader`] once every whole
    /// component before the end has passed its checks.
    #[inline(always)]
    pub(crate) fn parse(marker: u8, length: u16, body: &[u8]) -> Result<Frame, HeaderError> {
        let Some((head, specs)) = body.split_first_chunk::<6>() else {
            return Err(HeaderError::TruncatedInFrameHeader);
        };
        let frame = Frame::head(marker, length, head)?;
        let count = usize::from(frame.components);
        let mut seen = Seen::default();
        let (specs, _) = specs.as_chunks::<3>();
        let whole = specs.get(..count).unwrap_or(specs);
        for spec in whole {
            frame.component(&mut seen, spec)?;
        }
        if whole.len() < count {
            return Err(HeaderError::TruncatedInFrameHeader);
        }
        Ok(frame)
    }

    /// Reads and checks P, Y, X and Nf, the first six bytes after the length `length`.
    #[inline(always)]
    pub(crate) fn head(marker: u8, length: u16, head: &[u8; 6]) -> Result<Frame, HeaderError> {
        let &[precision, y0, y1, x0, x1, components] = head;
        let (height, width) = (u16::from_be_bytes([y0, y1]), u16::from_be_bytes([x0, x1]));
        if width == 0 {
            return Err(HeaderError::ZeroWidth);
        }
        if height == 0 {
            return Err(HeaderError::ZeroHeight);
        }
        // DHP has no process of its own (B.3.2): hold it to the loosest rules, the lossless
        // ones, except that its components may name any table.
        let process = if marker == DHP {
            Process::Lossless
        } else {
            Process::of_sof(marker)
        };
        let max_components = if process == Process::Progressive {
            4
        } else {
            255
        };
        if components == 0 || components > max_components {
            return Err(HeaderError::BadComponentCount {
                count: components,
                process,
            });
        }
        if u32::from(length) != 8 + 3 * u32::from(components) {
            return Err(HeaderError::BadFrameLength { length, components });
        }
        // Table B.2: the sample precisions each process allows, as a bit set.
        let allowed: u32 = match process {
            Process::Baseline => 1 << 8,
            Process::ExtendedSequential | Process::Progressive => 1 << 8 | 1 << 12,
            Process::Lossless => 0x1_FFFC,
        };
        if precision >= 32 || allowed >> precision & 1 == 0 {
            return Err(HeaderError::BadPrecision { precision, process });
        }
        // Tq is 0–3, and 0 in lossless frames, which have no quantization (B.2.2).
        let lossless = marker != DHP && process == Process::Lossless;
        Ok(Frame {
            marker,
            precision,
            height,
            width,
            components,
            max_table: if lossless { 0 } else { 3 },
        })
    }

    /// Checks one component specification (Ci, Hi/Vi, Tqi) against the frame and the
    /// identifiers in `seen`, and adds its identifier there.
    #[inline]
    pub(crate) fn component(&self, seen: &mut Seen, spec: &[u8; 3]) -> Result<(), HeaderError> {
        let &[component, factors, table] = spec;
        // Hi and Vi are 1–4 each: both less one are at most 3 (0 less one wraps to 255).
        if (factors >> 4).wrapping_sub(1) | (factors & 0x0F).wrapping_sub(1) > 3 {
            return Err(HeaderError::BadSamplingFactor { component, factors });
        }
        if table > self.max_table {
            return Err(HeaderError::BadQuantTable { component, table });
        }
        // Each component identifier appears once in a frame header (B.2.2).
        let word = &mut seen.0[usize::from(component / 64)];
        let bit = 1u64 << (component % 64);
        if *word & bit != 0 {
            return Err(HeaderError::DuplicateComponent { component });
        }
        *word |= bit;
        Ok(())
    }

    /// Whether this is a DHP segment (hierarchical mode) rather than a SOFn.
    pub(crate) fn is_dhp(&self) -> bool {
        self.marker == DHP
    }

    /// Width and height.
    pub(crate) fn size(&self) -> (u16, u16) {
        (self.width, self.height)
    }

    /// The answer: this SOFn's details, with the DHP's dimensions `dhp` in hierarchical mode.
    #[inline]
    pub(crate) fn info(&self, dhp: Option<(u16, u16)>) -> ImageInfo {
        let (width, height) = dhp.unwrap_or((self.width, self.height));
        ImageInfo {
            format: Format::Jpeg,
            width: u32::from(width),
            height: u32::from(height),
            jpeg: Some(JpegFrame::of_sof(
                self.marker,
                dhp.is_some(),
                self.precision,
                self.components,
            )),
        }
    }
}
