//! Differential: `imgchkr_core::probe` against libjpeg-turbo's `jpeg_read_header` (the
//! decoder of browsers, Pillow and ImageMagick; `imgchkr_oracles::libjpeg`), on inputs that
//! start with SOI.
//!
//! When both read a header they must agree on the dimensions and on the extraneous bytes
//! skipped before the frame header (how many in the first place, before which marker, how
//! many in all, in how many places: imgchkr's resynchronisation is libjpeg's `next_marker`).
//! When their verdicts differ, only these documented reasons are allowed; anything else
//! panics:
//!
//! * imgchkr Ok, libjpeg-turbo Err:
//!   - L1 a frame libjpeg-turbo has no decoder for, which T.81 defines: lossless and
//!     differential SOFn (`JERR_SOF_UNSUPPORTED`), hierarchical mode (DHP, EXP:
//!     `JERR_UNKNOWN_MARKER`); or a marker T.81 lets a decoder skip by its length that
//!     libjpeg-turbo refuses (JPG: `JERR_SOF_UNSUPPORTED`; JPGn, RESn: `JERR_UNKNOWN_MARKER`).
//!   - L2 libjpeg-turbo fails on what imgchkr does not read: the content of the tables
//!     (DQT, DHT, DAC, DRI) imgchkr skips by their lengths, and everything after the frame
//!     header up to the first scan (which it must reach). Checked: libjpeg-turbo reads a
//!     minimal file built from the frame header fields imgchkr read (SOI, that SOFn, one SOS,
//!     EOI) with the same dimensions, or fails on it for a reason of L1 or L3.
//!   - L3 limits of this libjpeg-turbo build: 8-bit samples only (`JERR_BAD_PRECISION`, a
//!     12-bit frame), at most 10 components (`JERR_COMPONENT_COUNT`), sides up to 65,500
//!     (`JERR_IMAGE_TOO_BIG`); each checked against the frame imgchkr read.
//! * imgchkr Err, libjpeg-turbo Ok:
//!   - S1 T.81 B.2.2 / Table B.2 rules of the frame header that libjpeg-turbo's header
//!     reading does not apply: a quantization table selector over 3 (libjpeg fails only when
//!     decoding), a repeated component identifier, a progressive frame of 5 to 10
//!     components.
//!   - S2 a segment length of 0 or 1 (below its own two bytes) on a segment libjpeg skips
//!     (APPn, COM, DNL, …): libjpeg skips nothing and scans on from the length's end.
//!   - S3 more than 65,536 extraneous bytes before the frame header (imgchkr's bound).
#![no_main]

use imgchkr_core::probe::{HeaderError, Process};
use imgchkr_core::{ImageInfo, ProbeError};
use imgchkr_oracles::libjpeg;
use libfuzzer_sys::fuzz_target;

/// L1: the error codes of a process or marker libjpeg-turbo lacks.
fn unsupported(code: i32) -> bool {
    code == libjpeg::JERR_SOF_UNSUPPORTED || code == libjpeg::JERR_UNKNOWN_MARKER
}

/// L3: `code` is a limit of this build that the frame imgchkr read exceeds.
fn beyond_limits(info: &ImageInfo, code: i32) -> bool {
    let frame = info.jpeg.expect("a JPEG answer carries its frame");
    (code == libjpeg::JERR_BAD_PRECISION && frame.precision != 8)
        || (code == libjpeg::JERR_COMPONENT_COUNT && frame.components > 10)
        || (code == libjpeg::JERR_IMAGE_TOO_BIG
            && (info.width > libjpeg::MAX_DIMENSION || info.height > libjpeg::MAX_DIMENSION))
}

/// A minimal file from the frame header fields imgchkr read: SOI, the SOFn (components 1..=Nf
/// at 1×1 sampling on table 0), one SOS of component 1, EOI.
fn rebuild(info: &ImageInfo) -> Vec<u8> {
    let frame = info.jpeg.expect("a JPEG answer carries its frame");
    let mut sof = vec![frame.precision];
    sof.extend_from_slice(&(info.height as u16).to_be_bytes());
    sof.extend_from_slice(&(info.width as u16).to_be_bytes());
    sof.push(frame.components);
    for c in 1..=frame.components {
        sof.extend_from_slice(&[c, 0x11, 0]);
    }
    let mut out = vec![0xFF, 0xD8, 0xFF, frame.marker];
    out.extend_from_slice(&(sof.len() as u16 + 2).to_be_bytes());
    out.extend_from_slice(&sof);
    out.extend_from_slice(&[0xFF, 0xDA, 0, 8, 1, 1, 0, 0, 63, 0]);
    out.extend_from_slice(&[0xFF, 0xD9]);
    out
}

/// S1–S3: imgchkr's refusals libjpeg-turbo's header reading does not share.
fn imgchkr_strictness(reason: &HeaderError) -> bool {
    matches!(
        reason,
        HeaderError::BadQuantTable { .. }
            | HeaderError::DuplicateComponent { .. }
            | HeaderError::BadSegmentLength { .. }
            | HeaderError::TooMuchExtraneousData { .. }
    ) || matches!(
        reason,
        HeaderError::BadComponentCount { count, process: Process::Progressive } if *count <= 10
    )
}

fuzz_target!(|data: &[u8]| {
    if !data.starts_with(&[0xFF, 0xD8]) {
        return;
    }
    let ours = imgchkr_core::probe(data);
    let theirs = libjpeg::read_header(data);
    match (&ours, &theirs) {
        (Ok(info), Ok(header)) => {
            assert_eq!(
                (info.width, info.height),
                (header.width, header.height),
                "both read dimensions, and differ"
            );
            match info.extraneous {
                None => assert!(header.skipped.is_empty(), "libjpeg skipped {header:?}"),
                Some(e) => {
                    let first = header.skipped.first().expect("libjpeg skipped bytes too");
                    assert_eq!((e.first, e.marker), (first.bytes, first.marker), "{e:?}");
                    let total: u32 = header.skipped.iter().map(|s| s.bytes).sum();
                    assert_eq!(
                        (e.total, e.places as usize),
                        (total, header.skipped.len()),
                        "{e:?} vs {header:?}"
                    );
                }
            }
        }
        (Ok(info), Err(e)) => {
            let frame = info.jpeg.expect("a JPEG answer carries its frame");
            // L1: no decoder for the frame in libjpeg-turbo, or a marker it refuses.
            let lacking =
                frame.hierarchical || frame.differential || frame.process == Process::Lossless;
            if lacking || unsupported(e.code) || beyond_limits(info, e.code) {
                return;
            }
            // L2: the frame read alone.
            let alone = rebuild(info);
            match libjpeg::read_header(&alone) {
                Ok(header) => assert_eq!(
                    (header.width, header.height),
                    (info.width, info.height),
                    "the frame read alone ({alone:02X?})"
                ),
                Err(alone_err)
                    if unsupported(alone_err.code) || beyond_limits(info, alone_err.code) => {}
                Err(alone_err) => panic!(
                    "imgchkr read {info:?}; libjpeg-turbo rejects its frame header alone: {alone_err} \
                     ({alone:02X?}; whole input: {e})"
                ),
            }
        }
        (Err(ProbeError::Malformed { reason, .. }), Ok(header)) => assert!(
            imgchkr_strictness(reason),
            "imgchkr rejects ({reason}) what libjpeg-turbo reads as {header:?}"
        ),
        (Err(ours), Ok(header)) => {
            panic!("imgchkr rejects ({ours}) what libjpeg-turbo reads as {header:?}")
        }
        (Err(_), Err(_)) => {}
    }
});
