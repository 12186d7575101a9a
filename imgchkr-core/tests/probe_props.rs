//! Property tests: real encoder output, an independent decoder as oracle, every prefix, every
//! chunking, arbitrary bytes.

mod common;

use std::io::Cursor;

use common::*;
use imgchkr_core::probe::HeaderError;
use imgchkr_core::{Format, ImageInfo, Probe, ProbeError, Step, probe};
use proptest::prelude::*;

/// A segment to slip in before the frame header: APPn or COM, with payload bytes that may
/// hold frame-marker look-alikes.
fn extra_segment() -> impl Strategy<Value = (usize, u8, Vec<u8>)> {
    let marker = prop_oneof![0xE0u8..=0xEF, Just(0xFEu8)];
    let payload = prop::collection::vec(prop_oneof![any::<u8>(), Just(0xFF), Just(0xC0)], 0..300);
    (0usize..4, marker, payload)
}

fn color() -> impl Strategy<Value = image::ColorType> {
    prop_oneof![Just(image::ColorType::L8), Just(image::ColorType::Rgb8)]
}

/// Inserts `segments`, each preceded by its fill bytes, just before the frame header.
fn with_segments(encoded: &[u8], segments: &[(usize, u8, Vec<u8>)]) -> Vec<u8> {
    let at = frame_offset(encoded);
    let mut out = encoded[..at].to_vec();
    for (fill, marker, payload) in segments {
        out.extend(std::iter::repeat_n(0xFF, *fill));
        out.extend_from_slice(&segment(*marker, payload));
    }
    out.extend_from_slice(&encoded[at..]);
    out
}

/// Feeds `bytes` following the probe's needs, `sizes` giving each chunk's length.
fn feed_following_needs(bytes: &[u8], sizes: &[usize]) -> Result<ImageInfo, ProbeError> {
    let mut probe = Probe::new();
    let mut step = probe.step();
    for size in sizes.iter().cycle().take(bytes.len() * 2 + 16) {
        let Step::Need(need) = step else { break };
        let start = need.offset as usize;
        if start >= bytes.len() {
            break;
        }
        let end = (start + size).min(bytes.len());
        step = probe.feed(need.offset, &bytes[start..end]);
    }
    match step {
        Step::Done(result) => result,
        Step::Need(_) => probe.finish(),
    }
}

/// Streams `bytes` front to back in chunks of `sizes`, ignoring what the probe asks for (as a
/// pipe reader would), then ends the input.
fn stream(bytes: &[u8], sizes: &[usize]) -> Result<ImageInfo, ProbeError> {
    let mut probe = Probe::new();
    let mut at = 0;
    for size in sizes.iter().cycle() {
        if at >= bytes.len() {
            break;
        }
        let end = (at + size).min(bytes.len());
        if let Step::Done(result) = probe.feed(at as u64, &bytes[at..end]) {
            return result;
        }
        at = end;
    }
    probe.finish()
}

fn is_truncation(result: &Result<ImageInfo, ProbeError>) -> bool {
    matches!(
        result,
        Err(ProbeError::Malformed {
            format: Format::Jpeg,
            reason: HeaderError::TruncatedBeforeFrameHeader | HeaderError::TruncatedInFrameHeader
        })
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn encoded_jpegs_probe_to_their_dimensions(
        width in 1u32..=160,
        height in 1u32..=160,
        quality in 1u8..=100,
        color in color(),
        segments in prop::collection::vec(extra_segment(), 0..6),
        sizes in prop::collection::vec(1usize..64, 1..8),
    ) {
        let file = with_segments(&encode(width, height, quality, color), &segments);
        let info = probe(&file).expect("a valid JPEG probes");
        prop_assert_eq!((info.format, info.width, info.height), (Format::Jpeg, width, height));
        let frame = info.jpeg.expect("JPEG details");
        prop_assert_eq!(frame.components, color.channel_count());

        // Differential oracle: an independent decoder's header reader agrees.
        let mut decoder = jpeg_decoder::Decoder::new(Cursor::new(&file));
        decoder.read_info().expect("jpeg-decoder reads it");
        let theirs = decoder.info().expect("jpeg-decoder has info");
        prop_assert_eq!((u32::from(theirs.width), u32::from(theirs.height)), (width, height));

        // Any chunking gives the same answer as the whole buffer.
        prop_assert_eq!(feed_following_needs(&file, &sizes), Ok(info));
        prop_assert_eq!(stream(&file, &sizes), Ok(info));

        // Every prefix: the right answer once it reaches past the frame header, else a
        // truncation (prefixes shorter than SOI are no JPEG at all).
        let frame_end = frame_offset(&file) + 4 + 6 + 3 * usize::from(frame.components);
        for cut in 0..file.len().min(frame_end + 8) {
            let result = probe(&file[..cut]);
            if cut >= frame_end {
                prop_assert_eq!(result, Ok(info), "cut {}", cut);
            } else if cut < 2 {
                prop_assert_eq!(result, Err(ProbeError::UnknownFormat), "cut {}", cut);
            } else {
                prop_assert!(is_truncation(&result), "cut {}: {:?}", cut, result);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes_never_panic_and_chunking_never_changes_the_answer(
        bytes in prop::collection::vec(any::<u8>(), 0..512),
        jpeg_start in any::<bool>(),
        sizes in prop::collection::vec(1usize..40, 1..6),
    ) {
        let mut bytes = bytes;
        if jpeg_start {
            bytes.splice(0..0, [0xFF, 0xD8, 0xFF]);
        }
        let whole = probe(&bytes);
        if let Ok(info) = whole {
            prop_assert!(info.width > 0 && info.height > 0);
        }
        prop_assert_eq!(feed_following_needs(&bytes, &sizes), whole);
        prop_assert_eq!(stream(&bytes, &sizes), whole);
    }

    #[test]
    fn hand_built_headers_with_random_fields_agree_with_the_chunked_walk(
        marker in 0xC0u8..=0xCF,
        precision in any::<u8>(),
        height in any::<u16>(),
        width in any::<u16>(),
        components in 0u8..6,
        fill in 0usize..4,
        sizes in prop::collection::vec(1usize..8, 1..4),
    ) {
        let mut file = vec![0xFF, 0xD8];
        file.extend(std::iter::repeat_n(0xFF, fill));
        file.extend_from_slice(&sof(marker, precision, height, width, components));
        let whole = probe(&file);
        if let Ok(info) = whole {
            prop_assert_eq!((info.width, info.height), (u32::from(width), u32::from(height)));
        }
        prop_assert_eq!(feed_following_needs(&file, &sizes), whole);
    }
}
