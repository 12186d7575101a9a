//! The JPEG marker-segment walk of ITU-T T.81 Annex B, up to the frame header.
//!
//! The walk reads markers and segment lengths only and skips every segment by its length:
//! it never scans for byte patterns, so an EXIF thumbnail or a comment holding `FF C0` cannot
//! pass for the frame header. It stops at the first SOFn, before any entropy-coded data.
//!
//! Two walks share every rule: [`walk`] reads a whole in-memory input in one tight loop, and
//! [`Walker`] is the incremental machine behind [`super::Probe`], fed one token at a time.
//! Both call [`marker`] for each marker, [`segment_length`] for each length and
//! [`Frame`](super::frame::Frame) for the frame header, so they give the same answer for
//! every input (the property tests check it on arbitrary and mutated inputs).

use super::error::HeaderError;
use super::frame::{DHP, Frame, Seen};
use super::resync::{self, Extraneous, Scan};
use super::{Format, ImageInfo, ProbeError};

const SOI: u8 = 0xD8;
const EOI: u8 = 0xD9;
const SOS: u8 = 0xDA;
const TEM: u8 = 0x01;
const SOF55: u8 = 0xF7;

/// What the two bytes where a marker must be say, when they are allowed there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Marker {
    /// A segment with a length, skipped whole, unread (APPn, COM, DQT, DHT, DAC, DRI, JPGn…).
    Segment,
    /// A frame header: SOFn (except DHT, JPG and DAC) or DHP.
    Frame,
    /// `FF FF`: the first `FF` is a fill byte (B.1.1.2); the marker starts one byte later.
    Fill,
    /// TEM or RST0–RST7 (B.1.1.3): no length, nothing to skip.
    StandAlone,
}

/// What a marker code is where a marker must be: a [`Marker`], or why it cannot be there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Code {
    Allowed(Marker),
    /// `FF 00`: a stuffed byte, which belongs in entropy-coded data only.
    Stuffed,
    /// A second SOI.
    Soi,
    /// SOS or EOI: the frame header should have come first.
    NoFrame,
    /// SOF55, a JPEG-LS frame.
    JpegLs,
}

/// [`Code`] for each marker code, so that a walk spends one load per marker.
const CODES: [Code; 256] = {
    let mut codes = [Code::Allowed(Marker::Segment); 256];
    let mut code = 0xC0;
    while code <= 0xCF {
        // DHT (C4), JPG (C8) and DAC (CC) sit among the SOFn but are no frame headers.
        if !matches!(code, 0xC4 | 0xC8 | 0xCC) {
            codes[code] = Code::Allowed(Marker::Frame);
        }
        code += 1;
    }
    codes[DHP as usize] = Code::Allowed(Marker::Frame);
    codes[TEM as usize] = Code::Allowed(Marker::StandAlone);
    let mut rst = 0xD0;
    while rst <= 0xD7 {
        codes[rst] = Code::Allowed(Marker::StandAlone);
        rst += 1;
    }
    codes[0xFF] = Code::Allowed(Marker::Fill);
    codes[0x00] = Code::Stuffed;
    codes[SOI as usize] = Code::Soi;
    codes[EOI as usize] = Code::NoFrame;
    codes[SOS as usize] = Code::NoFrame;
    codes[SOF55 as usize] = Code::JpegLs;
    codes
};

/// Reads the two bytes `prefix`, `code` at `offset`, where a marker must be.
#[inline(always)]
pub(crate) fn marker(offset: u64, prefix: u8, code: u8) -> Result<Marker, HeaderError> {
    match (prefix, CODES[usize::from(code)]) {
        (0xFF, Code::Allowed(marker)) => Ok(marker),
        _ => Err(refused(offset, prefix, code)),
    }
}

/// Why the two bytes `prefix`, `code` at `offset` cannot stand where a marker must be.
#[cold]
fn refused(offset: u64, prefix: u8, code: u8) -> HeaderError {
    if prefix != 0xFF {
        return HeaderError::ExpectedMarker {
            offset,
            found: prefix,
        };
    }
    match CODES[usize::from(code)] {
        Code::Stuffed => HeaderError::InvalidMarker { offset, code },
        Code::Soi => HeaderError::UnexpectedSoi { offset },
        Code::NoFrame => HeaderError::NoFrameHeader {
            marker: code,
            offset,
        },
        Code::JpegLs | Code::Allowed(_) => HeaderError::JpegLs,
    }
}

/// Checks the length `length` of the segment whose marker `code` (a [`Marker::Segment`] or,
/// with `frame`, a [`Marker::Frame`]) is at `offset`.
#[inline(always)]
pub(crate) fn segment_length(
    code: u8,
    offset: u64,
    length: u16,
    frame: bool,
) -> Result<(), HeaderError> {
    if length < 2 {
        return Err(HeaderError::BadSegmentLength {
            marker: code,
            offset,
            length,
        });
    }
    // Lf covers itself, P, Y, X and Nf: 8 bytes at least.
    if frame && length < 8 {
        return Err(HeaderError::BadFrameLength {
            length,
            components: 0,
        });
    }
    Ok(())
}

/// Walks a whole JPEG in memory, `bytes` starting with SOI, to its frame header.
#[inline]
pub(crate) fn walk(bytes: &[u8]) -> Result<ImageInfo, ProbeError> {
    walk_from::<false, false>(bytes, 2, None, None)
}

/// The walk from the marker at `pos`; `HIERARCHICAL` from a DHP segment on (`dhp`, its
/// dimensions), `RESYNCED` once extraneous bytes were skipped (`extra`, what was skipped).
/// The common walk, neither, carries no DHP and no skip record: it hands over to a walk that
/// does at the first DHP or at the first extraneous byte, so that its loop and its answer stay
/// as lean as a strict walk's.
#[inline]
fn walk_from<const HIERARCHICAL: bool, const RESYNCED: bool>(
    bytes: &[u8],
    pos: usize,
    mut dhp: Option<(u16, u16)>,
    mut extra: Option<Extraneous>,
) -> Result<ImageInfo, ProbeError> {
    let mut rest = bytes.get(pos..).unwrap_or_default();
    // The offset of `rest` in the input, for error reports and resynchronisation only.
    let at = |rest: &[u8]| bytes.len() - rest.len();
    // Each turn reads a marker and the two bytes after it, the length if it has one.
    while let Some((&[prefix, code, hi, lo], body)) = rest.split_first_chunk::<4>() {
        let kind = match marker(at(rest) as u64, prefix, code) {
            Ok(kind) => kind,
            // Extraneous bytes: on to the next marker, as libjpeg does.
            Err(refusal) if !RESYNCED => {
                return resynced::<HIERARCHICAL>(bytes, at(rest), refusal, dhp);
            }
            Err(refusal) => {
                let ff = resync(bytes, at(rest), refusal, &mut extra).map_err(malformed)?;
                rest = &bytes[ff..];
                continue;
            }
        };
        let length = u16::from_be_bytes([hi, lo]);
        let skip = 2 + usize::from(length);
        if kind == Marker::Segment {
            segment_length(code, at(rest) as u64, length, false).map_err(malformed)?;
            // A segment that runs past the end leaves nothing: a truncation.
            rest = rest.get(skip..).unwrap_or_default();
            continue;
        }
        // Three ways, not four: a jump table over the four kinds made an indirect branch
        // that mispredicted between the segments and the frame header.
        if kind != Marker::Frame {
            // Fill bytes or a stand-alone marker. A run of fill bytes goes in one sweep, up
            // to the marker's own `FF`, the run's last; a stand-alone marker (its code not
            // `FF`, a run of one) has two bytes.
            let run = ff_run(rest);
            rest = rest
                .get(if run > 1 { run - 1 } else { 2 }..)
                .unwrap_or_default();
            continue;
        }
        segment_length(code, at(rest) as u64, length, true).map_err(malformed)?;
        let frame = Frame::parse(code, length, body).map_err(malformed)?;
        if !frame.is_dhp() {
            return Ok(frame.info(dhp, extra));
        }
        // Hierarchical mode: the DHP gives the image's size; the frames follow.
        if !HIERARCHICAL {
            return hierarchical::<RESYNCED>(bytes, at(rest), extra);
        }
        dhp = Some(frame.size());
        rest = rest.get(skip..).unwrap_or_default();
    }
    Err(malformed(tail(bytes, at(rest), &mut extra)))
}

/// The walk from the two bytes at `from` that `refusal` names, when they are the first
/// extraneous bytes: skipped, then the walk goes on recording what it skips.
#[cold]
#[inline(never)]
fn resynced<const HIERARCHICAL: bool>(
    bytes: &[u8],
    from: usize,
    refusal: HeaderError,
    dhp: Option<(u16, u16)>,
) -> Result<ImageInfo, ProbeError> {
    let mut extra = None;
    let ff = resync(bytes, from, refusal, &mut extra).map_err(malformed)?;
    walk_from::<HIERARCHICAL, true>(bytes, ff, dhp, extra)
}

/// After `refusal` of the two bytes at `from` where a marker must be: if they are
/// extraneous (not `FF`, or `FF 00`), libjpeg's scan from there to the next marker, noted in
/// `extra`; returns the offset of that marker's `FF`. Any other refusal stands.
#[cold]
#[inline(never)]
fn resync(
    bytes: &[u8],
    from: usize,
    refusal: HeaderError,
    extra: &mut Option<Extraneous>,
) -> Result<usize, HeaderError> {
    if !is_extraneous(refusal) {
        return Err(refusal);
    }
    let before = extra.map_or(0, |e| e.total);
    let first = extra.map_or(from as u64, |e| e.offset);
    let mut scan = Scan::default();
    for (i, &b) in bytes.iter().enumerate().skip(from) {
        match scan.byte(b) {
            None => scan.check(before, first)?,
            Some(code) => {
                resync::note(extra, from as u64, bytes[from], scan.discarded, code);
                return Ok(i - 1);
            }
        }
    }
    Err(HeaderError::TruncatedBeforeFrameHeader)
}

/// Whether a marker refusal is one libjpeg skips over: a byte other than `FF`, or `FF 00`.
#[inline]
fn is_extraneous(refusal: HeaderError) -> bool {
    matches!(
        refusal,
        HeaderError::ExpectedMarker { .. } | HeaderError::InvalidMarker { .. }
    )
}

/// How many `FF` bytes `bytes` starts with: eight at a time, then one at a time.
#[inline]
fn ff_run(bytes: &[u8]) -> usize {
    let mut run = 0;
    while let Some(word) = bytes.get(run..).and_then(<[u8]>::first_chunk::<8>) {
        // In the complement, the first byte that is not `FF` is the first non-zero one.
        let ff = (!u64::from_le_bytes(*word)).trailing_zeros() as usize / 8;
        run += ff;
        if ff < 8 {
            return run;
        }
    }
    let tail = bytes.get(run..).unwrap_or_default();
    run + tail.iter().position(|&b| b != 0xFF).unwrap_or(tail.len())
}

/// The walk from the DHP segment at `pos`.
#[cold]
#[inline(never)]
fn hierarchical<const RESYNCED: bool>(
    bytes: &[u8],
    pos: usize,
    extra: Option<Extraneous>,
) -> Result<ImageInfo, ProbeError> {
    walk_from::<true, RESYNCED>(bytes, pos, None, extra)
}

/// Why a walk ends that has fewer than four bytes left from `pos`: markers without a length
/// may still fit, or be wrong, or extraneous bytes be skipped.
#[cold]
fn tail(bytes: &[u8], mut pos: usize, extra: &mut Option<Extraneous>) -> HeaderError {
    while let Some(&[prefix, code]) = bytes.get(pos..pos + 2) {
        let step = match marker(pos as u64, prefix, code) {
            Err(refusal) => match resync(bytes, pos, refusal, extra) {
                Ok(ff) => {
                    pos = ff;
                    continue;
                }
                Err(e) => return e,
            },
            Ok(Marker::Fill) => 1,
            Ok(Marker::StandAlone) => 2,
            Ok(Marker::Segment | Marker::Frame) => break,
        };
        pos += step;
    }
    HeaderError::TruncatedBeforeFrameHeader
}

/// A JPEG header error as the probe reports it.
#[cold]
pub(crate) fn malformed(reason: HeaderError) -> ProbeError {
    ProbeError::Malformed {
        format: Format::Jpeg,
        reason,
    }
}

/// Where the incremental walk is. `pos` (owned by the caller) is the offset of the token it
/// wants next.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Walker {
    at: At,
    /// Dimensions from a DHP segment (hierarchical mode), which are the image's.
    dhp: Option<(u16, u16)>,
    /// The frame header being read, once its first six bytes are checked.
    frame: Frame,
    /// Component identifiers seen in this frame header.
    seen: Seen,
    /// What was skipped so far where markers should have been.
    extra: Option<Extraneous>,
    /// Where the current run of extraneous bytes starts, and the byte there.
    resync_from: u64,
    resync_found: u8,
}

#[derive(Debug, Clone, Copy)]
enum At {
    /// `FF` and the marker code (or another `FF`: a fill byte).
    Marker,
    /// The two-byte length of the segment whose marker `code` ended just before.
    Length { code: u8, frame: bool },
    /// P, Y, X and Nf of a frame header (SOFn or DHP).
    FrameHead { code: u8, length: u16 },
    /// One component specification (Ci, Hi/Vi, Tqi); `left` of them remain.
    Component { left: u8 },
    /// One byte of a run of extraneous bytes, scanned for the next marker as libjpeg does.
    Resync(Scan),
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
            seen: Seen::default(),
            extra: None,
            resync_from: 0,
            resync_found: 0,
        }
    }

    /// How many bytes the next token has.
    #[inline]
    pub(crate) fn want(&self) -> usize {
        match self.at {
            At::Marker | At::Length { .. } => 2,
            At::FrameHead { .. } => 6,
            At::Component { .. } => 3,
            At::Resync(_) => 1,
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
            At::Marker | At::Length { .. } | At::Resync(_) => {
                HeaderError::TruncatedBeforeFrameHeader
            }
            At::FrameHead { .. } | At::Component { .. } => HeaderError::TruncatedInFrameHeader,
        }
    }

    /// Consumes the token at `*pos` (exactly [`Walker::want`] bytes) and moves `*pos` to the
    /// next one.
    #[inline]
    pub(crate) fn advance(&mut self, pos: &mut u64, token: &[u8]) -> Next {
        match self.advance_inner(pos, token) {
            Ok(None) => Next::More,
            Ok(Some(info)) => Next::Done(Ok(info)),
            Err(e) => Next::Done(Err(e)),
        }
    }

    /// Moves past the marker `code` of kind `kind` at `*pos`.
    #[inline]
    fn after_marker(&mut self, pos: &mut u64, code: u8, kind: Marker) {
        match kind {
            Marker::Fill => *pos += 1,
            Marker::StandAlone => *pos += 2,
            kind => {
                *pos += 2;
                self.at = At::Length {
                    code,
                    frame: kind == Marker::Frame,
                };
            }
        }
    }

    fn advance_inner(
        &mut self,
        pos: &mut u64,
        token: &[u8],
    ) -> Result<Option<ImageInfo>, HeaderError> {
        match (self.at, token) {
            (At::Marker, &[prefix, code]) => match marker(*pos, prefix, code) {
                Ok(kind) => self.after_marker(pos, code, kind),
                Err(refusal) if is_extraneous(refusal) => {
                    // Scanned again from this byte, one at a time, as libjpeg does.
                    self.resync_from = *pos;
                    self.resync_found = prefix;
                    self.at = At::Resync(Scan::default());
                }
                Err(refusal) => return Err(refusal),
            },
            (At::Resync(mut scan), &[byte]) => {
                let at = *pos;
                *pos += 1;
                match scan.byte(byte) {
                    None => {
                        let before = self.extra.map_or(0, |e| e.total);
                        let first = self.extra.map_or(self.resync_from, |e| e.offset);
                        scan.check(before, first)?;
                        self.at = At::Resync(scan);
                    }
                    Some(code) => {
                        resync::note(
                            &mut self.extra,
                            self.resync_from,
                            self.resync_found,
                            scan.discarded,
                            code,
                        );
                        // The marker's `FF` was the byte before; `code` is neither `00` nor
                        // `FF`, so no fill and no second resynchronisation here.
                        *pos = at - 1;
                        self.at = At::Marker;
                        let kind = marker(*pos, 0xFF, code)?;
                        self.after_marker(pos, code, kind);
                    }
                }
            }
            (At::Length { code, frame }, &[hi, lo]) => {
                let length = u16::from_be_bytes([hi, lo]);
                segment_length(code, *pos - 2, length, frame)?;
                if frame {
                    *pos += 2;
                    self.at = At::FrameHead { code, length };
                } else {
                    *pos += u64::from(length);
                    self.at = At::Marker;
                }
            }
            (At::FrameHead { code, length }, token) => {
                let head = token.first_chunk().ok_or(self.truncation())?;
                self.frame = Frame::head(code, length, head)?;
                self.seen = Seen::default();
                *pos += 6;
                self.at = At::Component {
                    left: self.frame.components,
                };
            }
            (At::Component { left }, token) => {
                let spec = token.first_chunk().ok_or(self.truncation())?;
                self.frame.component(&mut self.seen, spec)?;
                *pos += 3;
                if left > 1 {
                    self.at = At::Component { left: left - 1 };
                } else if self.frame.is_dhp() {
                    // Hierarchical mode: the DHP gives the image's size; the frames follow.
                    self.dhp = Some(self.frame.size());
                    self.at = At::Marker;
                } else {
                    return Ok(Some(self.frame.info(self.dhp, self.extra)));
                }
            }
            // The caller always passes `want()` bytes.
            _ => return Err(self.truncation()),
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ff_runs_are_counted_exactly() {
        for len in 0..20 {
            for run in 0..=len {
                let mut bytes = vec![0xFF; run];
                bytes.resize(len, 0x12);
                assert_eq!(ff_run(&bytes), run, "run {run} of {len}");
            }
        }
    }

    #[test]
    fn the_marker_table_agrees_with_the_frame_kinds() {
        for code in 0..=255u8 {
            let frame = marker(0, 0xFF, code) == Ok(Marker::Frame);
            let sof = (0xC0..=0xCF).contains(&code) && ![0xC4, 0xC8, 0xCC].contains(&code);
            assert_eq!(frame, sof || code == DHP, "{code:02X}");
        }
    }
}
