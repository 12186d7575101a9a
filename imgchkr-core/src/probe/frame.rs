//! The frame header (SOFn, or DHP in hierarchical mode): the checks of T.81 B.2.2 and
//! Table B.2, in one place for both JPEG walks.
//!
//! The whole-buffer walk reads a frame header from one slice with [`Frame::parse`]; the
//! incremental walk, which may get it a byte at a time, calls the same two steps that `parse`
//! is made of, [`Frame::head`] and [`Frame::component`], one token each.

use super::error::HeaderError;
use super::format::{JpegFrame, Process};
use super::resync::Extraneous;
use super::{Format, ImageInfo};

/// The DHP marker (hierarchical mode), whose segment has a frame header's layout (B.3.2).
pub(crate) const DHP: u8 = 0xDE;

/// What a frame header's marker allows (B.2.2, Table B.2).
#[derive(Debug, Clone, Copy)]
struct Rules {
    /// The process, as errors name it.
    process: Process,
    /// The largest Nf.
    max_components: u8,
    /// The highest quantization table selector Tq a component may name.
    max_table: u8,
    /// The sample precisions P allowed, as a bit set.
    precisions: u32,
}

impl Rules {
    /// The rules of a frame header marker: a SOFn or DHP.
    #[inline(always)]
    fn of_marker(marker: u8) -> Rules {
        if marker == DHP {
            DHP_RULES
        } else {
            SOF_RULES[usize::from(marker & 3)]
        }
    }

    const fn of(process: Process) -> Rules {
        Rules {
            process,
            max_components: if matches!(process, Process::Progressive) {
                4
            } else {
                255
            },
            // Lossless frames have no quantization: Tq is 0 (B.2.2).
            max_table: if matches!(process, Process::Lossless) {
                0
            } else {
                3
            },
            precisions: match process {
                Process::Baseline => 1 << 8,
                Process::ExtendedSequential | Process::Progressive => 1 << 8 | 1 << 12,
                Process::Lossless => 0x1_FFFC,
            },
        }
    }
}

/// The rules of each SOFn, by its process, that is by its low two bits.
const SOF_RULES: [Rules; 4] = [
    Rules::of(Process::of_sof(0xC0)),
    Rules::of(Process::of_sof(0xC1)),
    Rules::of(Process::of_sof(0xC2)),
    Rules::of(Process::of_sof(0xC3)),
];

/// DHP has no process of its own (B.3.2): it is held to the loosest rules, the lossless
/// ones, except that its components may name any table.
const DHP_RULES: Rules = Rules {
    max_table: 3,
    ..Rules::of(Process::Lossless)
};

/// Whether each Hi/Vi byte is allowed: both factors 1–4.
const FACTORS: [bool; 256] = {
    let mut ok = [false; 256];
    let mut h = 1;
    while h <= 4 {
        let mut v = 1;
        while v <= 4 {
            ok[h << 4 | v] = true;
            v += 1;
        }
        h += 1;
    }
    ok
};

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
        // Lf = 8 + 3 × Nf holds (`head` checked it): the components take 3 × Nf bytes.
        let (whole, truncated) = match specs.get(..3 * count) {
            Some(all) => (all, false),
            None => (specs, true),
        };
        for spec in whole.as_chunks::<3>().0 {
            frame.component(&mut seen, spec)?;
        }
        if truncated {
            // The input ends inside the components; those it holds have passed.
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
        let rules = Rules::of_marker(marker);
        let process = rules.process;
        if components == 0 || components > rules.max_components {
            return Err(HeaderError::BadComponentCount {
                count: components,
                process,
            });
        }
        if u32::from(length) != 8 + 3 * u32::from(components) {
            return Err(HeaderError::BadFrameLength { length, components });
        }
        if precision >= 32 || rules.precisions >> precision & 1 == 0 {
            return Err(HeaderError::BadPrecision { precision, process });
        }
        Ok(Frame {
            marker,
            precision,
            height,
            width,
            components,
            max_table: rules.max_table,
        })
    }

    /// Checks one component specification (Ci, Hi/Vi, Tqi) against the frame and the
    /// identifiers in `seen`, and adds its identifier there.
    #[inline]
    pub(crate) fn component(&self, seen: &mut Seen, spec: &[u8; 3]) -> Result<(), HeaderError> {
        let &[component, factors, table] = spec;
        if !FACTORS[usize::from(factors)] {
            return Err(HeaderError::BadSamplingFactor { component, factors });
        }
        if table > self.max_table {
            return Err(HeaderError::BadQuantTable { component, table });
        }
        // Each component identifier appears once in a frame header (B.2.2).
        let word = &mut seen.0[usize::from(component / 64)];
        let bit = 1u64 << (component % 64);
        let seen_before = *word & bit != 0;
        *word |= bit;
        if seen_before {
            return Err(HeaderError::DuplicateComponent { component });
        }
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
    pub(crate) fn info(
        &self,
        dhp: Option<(u16, u16)>,
        extraneous: Option<Extraneous>,
    ) -> ImageInfo {
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
            extraneous,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_factor_table_allows_one_to_four_each() {
        for factors in 0..=255u8 {
            let (h, v) = (factors >> 4, factors & 0x0F);
            let legal = (1..=4).contains(&h) && (1..=4).contains(&v);
            assert_eq!(FACTORS[usize::from(factors)], legal, "{factors:02X}");
        }
    }

    #[test]
    fn the_rules_follow_table_b2() {
        // (marker, process, precisions, largest Nf, highest Tq)
        let cases: [(u8, Process, &[u8], u8, u8); 5] = [
            (0xC0, Process::Baseline, &[8], 255, 3),
            (0xC9, Process::ExtendedSequential, &[8, 12], 255, 3),
            (0xC6, Process::Progressive, &[8, 12], 4, 3),
            (0xCF, Process::Lossless, &[2, 3, 9, 15, 16], 255, 0),
            (DHP, Process::Lossless, &[2, 8, 12, 16], 255, 3),
        ];
        for (marker, process, precisions, max_components, max_table) in cases {
            let rules = Rules::of_marker(marker);
            assert_eq!(rules.process, process, "{marker:02X}");
            assert_eq!(rules.max_components, max_components, "{marker:02X}");
            assert_eq!(rules.max_table, max_table, "{marker:02X}");
            for p in 0..=255u8 {
                let allowed = p < 32 && rules.precisions >> p & 1 == 1;
                let legal = match process {
                    Process::Lossless => (2..=16).contains(&p),
                    _ => precisions.contains(&p),
                };
                assert_eq!(allowed, legal, "{marker:02X} P={p}");
            }
        }
    }
}
