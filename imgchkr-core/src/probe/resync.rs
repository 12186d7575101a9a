//! JPEG marker resynchronisation as libjpeg does it (`next_marker` in `jdmarker.c`), and the
//! record of what it skipped.
//!
//! T.81 B.1.1.2 allows only `FF` fill bytes before a marker. libjpeg, and so the browsers,
//! Pillow and ImageMagick built on it, skips anything there: every byte up to the next `FF`
//! followed by a byte other than `00` or `FF`, warning "Corrupt JPEG data: N extraneous bytes
//! before marker 0xXX" and going on. imgchkr's walks do the same by default, counting the bytes
//! as libjpeg does, and record it in [`Extraneous`] without allocating; a strict policy turns
//! the record back into the T.81 refusal ([`Extraneous::strict_error`]).

use super::error::HeaderError;

/// The most extraneous bytes the JPEG walks skip before the frame header, all places
/// together. libjpeg skips any number; a file with more is refused
/// ([`HeaderError::TooMuchExtraneousData`]) so that a probe reading junk stays bounded.
pub const MAX_EXTRANEOUS: u32 = 65_536;

/// What a JPEG walk skipped where markers should have been, as libjpeg counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Extraneous {
    /// Offset of the first extraneous byte, where a T.81 walk stops: where a marker should
    /// start, or the `FF` of a stuffed `FF 00` there (fill bytes before it are legal).
    pub offset: u64,
    /// The byte found there; `0xFF` means `FF 00`, a stuffed zero outside entropy-coded data.
    pub found: u8,
    /// How many bytes were skipped there, before the first marker found (libjpeg's count:
    /// each `FF 00` counts 2, fill bytes before a marker none).
    pub first: u32,
    /// The code of the marker found after them (`0xC0` for `FF C0`).
    pub marker: u8,
    /// Bytes skipped before the frame header, in all places.
    pub total: u32,
    /// In how many places (libjpeg warns once per place).
    pub places: u32,
}

impl Extraneous {
    /// What a strict T.81 walk reports at [`Extraneous::offset`].
    pub fn strict_error(&self) -> HeaderError {
        if self.found == 0xFF {
            HeaderError::InvalidMarker {
                offset: self.offset,
                code: 0,
            }
        } else {
            HeaderError::ExpectedMarker {
                offset: self.offset,
                found: self.found,
            }
        }
    }

    /// The warning texts: the first place, then the others summed up.
    ///
    /// `Skipped 3 extraneous bytes at offset 81 before marker 0xFFC0`, and when there are
    /// more places, `Skipped 5 more extraneous bytes in 2 more places before the frame header`.
    pub fn texts(&self) -> Vec<String> {
        let bytes = |n: u32| if n == 1 { "byte" } else { "bytes" };
        let mut texts = vec![format!(
            "Skipped {} extraneous {} at offset {} before marker 0xFF{:02X}",
            self.first,
            bytes(self.first),
            self.offset,
            self.marker
        )];
        if self.places > 1 {
            let more = self.total - self.first;
            let places = self.places - 1;
            texts.push(format!(
                "Skipped {more} more extraneous {} in {places} more {} before the frame header",
                bytes(more),
                if places == 1 { "place" } else { "places" }
            ));
        }
        texts
    }
}

/// Notes a place where `first` bytes were skipped, starting at `offset` with `found`, before
/// the marker `marker`.
pub(crate) fn note(
    record: &mut Option<Extraneous>,
    offset: u64,
    found: u8,
    skipped: u32,
    marker: u8,
) {
    match record {
        Some(e) => {
            e.total += skipped;
            e.places += 1;
        }
        None => {
            *record = Some(Extraneous {
                offset,
                found,
                first: skipped,
                marker,
                total: skipped,
                places: 1,
            })
        }
    }
}

/// libjpeg's `next_marker`, a byte at a time: where it is in a run of extraneous bytes.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Scan {
    /// Bytes discarded so far in this place.
    pub(crate) discarded: u32,
    /// The last byte was `FF`.
    ff: bool,
}

impl Scan {
    /// Takes the next byte; returns the marker code once `FF` and a code other than `00` or
    /// `FF` are found (the code is this byte, its `FF` the byte before).
    #[inline]
    pub(crate) fn byte(&mut self, b: u8) -> Option<u8> {
        match (self.ff, b) {
            (false, 0xFF) => self.ff = true,
            (false, _) => self.discarded += 1,
            // Fill bytes before a marker are legal and not counted.
            (true, 0xFF) => {}
            // A stuffed zero: libjpeg discards the pair, counted as 2, and scans on.
            (true, 0x00) => {
                self.discarded += 2;
                self.ff = false;
            }
            (true, code) => return Some(code),
        }
        None
    }

    /// Whether the bytes skipped so far, with `before` skipped in earlier places, pass the
    /// budget; the error names the first extraneous byte, at `first`.
    #[inline]
    pub(crate) fn check(&self, before: u32, first: u64) -> Result<(), HeaderError> {
        if before + self.discarded > MAX_EXTRANEOUS {
            return Err(HeaderError::TooMuchExtraneousData { offset: first });
        }
        Ok(())
    }
}
