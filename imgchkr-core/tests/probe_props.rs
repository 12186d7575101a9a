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

/// The incremental machine fed the whole input in one piece, then ended: what `probe` must
/// answer (it walks the slice directly instead).
fn machine(bytes: &[u8]) -> Result<ImageInfo, ProbeError> {
    let mut probe = Probe::new();
    match probe.feed(0, bytes) {
        Step::Done(result) => result,
        Step::Need(_) => probe.finish(),
    }
}

/// Asserts that the slice walk (`probe`), the machine fed whole, the machine following its
/// needs and the machine fed front to back all give the same answer; returns it.
fn all_paths_agree(
    bytes: &[u8],
    sizes: &[usize],
) -> Result<Result<ImageInfo, ProbeError>, TestCaseError> {
    let whole = probe(bytes);
    prop_assert_eq!(machine(bytes), whole, "slice walk vs machine");
    prop_assert_eq!(feed_following_needs(bytes, sizes), whole, "following needs");
    prop_assert_eq!(stream(bytes, sizes), whole, "streamed");
    if let Ok(info) = whole {
        prop_assert!(info.width > 0 && info.height > 0);
    }
    Ok(whole)
}

/// One piece of a hand-built marker stream after SOI: legal, nearly legal or junk.
fn part() -> impl Strategy<Value = Vec<u8>> {
    let code = prop_oneof![
        4 => 0xC0u8..=0xCF,
        1 => Just(0xDEu8),
        2 => 0xE0u8..=0xEF,
        1 => Just(0xFEu8),
        1 => Just(0xDBu8),
        1 => any::<u8>(),
    ];
    let frame = (
        code.clone(),
        prop_oneof![Just(8u8), Just(12), any::<u8>()],
        prop_oneof![Just(0u16), 1u16..4, any::<u16>()],
        prop_oneof![Just(0u16), 1u16..4, any::<u16>()],
        prop_oneof![4 => 1u8..5, 1 => any::<u8>()],
        prop::collection::vec(
            (
                prop_oneof![1u8..5, any::<u8>()],
                prop_oneof![Just(0x11u8), Just(0x22), any::<u8>()],
                prop_oneof![0u8..4, any::<u8>()],
            ),
            0..6,
        ),
        prop_oneof![4 => Just(None), 1 => any::<u16>().prop_map(Some)],
    )
        .prop_map(|(code, p, y, x, nf, specs, length)| {
            let mut body = vec![p];
            body.extend_from_slice(&y.to_be_bytes());
            body.extend_from_slice(&x.to_be_bytes());
            body.push(nf);
            for (id, factors, table) in specs {
                body.extend_from_slice(&[id, factors, table]);
            }
            let length = length.unwrap_or(body.len() as u16 + 2);
            let mut out = vec![0xFF, code];
            out.extend_from_slice(&length.to_be_bytes());
            out.extend_from_slice(&body);
            out
        });
    let segment = (code, prop::collection::vec(any::<u8>(), 0..24))
        .prop_map(|(code, payload)| segment(code, &payload));
    prop_oneof![
        4 => frame,
        4 => segment,
        2 => (1usize..5).prop_map(|n| vec![0xFF; n]),
        1 => prop_oneof![Just(0x01u8), 0xD0u8..=0xD7, Just(0xD8), Just(0xD9), Just(0xDA),
                         Just(0x00), Just(0xF7)].prop_map(|c| vec![0xFF, c]),
        1 => prop::collection::vec(any::<u8>(), 1..4),
    ]
}

/// A mutation of a real file: overwrite a byte, insert bytes, delete bytes, or cut the end.
#[derive(Debug, Clone)]
enum Mutation {
    Set(usize, u8),
    Insert(usize, Vec<u8>),
    Delete(usize, usize),
    Cut(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let byte = prop_oneof![Just(0xFFu8), Just(0x00), 0xC0u8..=0xCF, any::<u8>()];
    prop_oneof![
        4 => (any::<usize>(), byte.clone()).prop_map(|(at, b)| Mutation::Set(at, b)),
        2 => (any::<usize>(), prop::collection::vec(byte, 1..6))
            .prop_map(|(at, b)| Mutation::Insert(at, b)),
        2 => (any::<usize>(), 1usize..6).prop_map(|(at, n)| Mutation::Delete(at, n)),
        1 => any::<usize>().prop_map(Mutation::Cut),
    ]
}

/// Applies `mutations` within the first `span` bytes (the header part, where they matter).
fn mutate(file: &mut Vec<u8>, mutations: &[Mutation], span: usize) {
    for m in mutations {
        let len = file.len().min(span).max(1);
        match m {
            Mutation::Set(at, b) => {
                if let Some(x) = file.get_mut(at % len) {
                    *x = *b;
                }
            }
            Mutation::Insert(at, bytes) => {
                let at = at % len;
                file.splice(at..at, bytes.iter().copied());
            }
            Mutation::Delete(at, n) => {
                let at = (at % len).min(file.len());
                let end = (at + n).min(file.len());
                file.drain(at..end);
            }
            Mutation::Cut(at) => file.truncate(at % len),
        }
    }
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
        let _answer = all_paths_agree(&bytes, &sizes)?;
    }

    #[test]
    fn hand_built_marker_streams_agree_on_every_path(
        parts in prop::collection::vec(part(), 0..8),
        cut in any::<Option<usize>>(),
        sizes in prop::collection::vec(1usize..12, 1..5),
    ) {
        let mut file = vec![0xFF, 0xD8];
        for p in &parts {
            file.extend_from_slice(p);
        }
        if let Some(cut) = cut {
            file.truncate(cut % (file.len() + 1));
        }
        let _answer = all_paths_agree(&file, &sizes)?;
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
        let whole = all_paths_agree(&file, &sizes)?;
        if let Ok(info) = whole {
            prop_assert_eq!((info.width, info.height), (u32::from(width), u32::from(height)));
        }
    }
}

/// Junk of libjpeg's count `count`: bytes other than `FF`, and stuffed `FF 00` pairs (each
/// counted 2, any fill before them not at all).
fn junk() -> impl Strategy<Value = (Vec<u8>, u32)> {
    let piece = prop_oneof![
        3 => (0u8..0xFF).prop_map(|b| (vec![b], 1u32)),
        1 => (0usize..3).prop_map(|fill| {
            let mut out = vec![0xFF; fill + 1];
            out.push(0);
            (out, 2u32)
        }),
    ];
    prop::collection::vec(piece, 1..12).prop_map(|pieces| {
        let count = pieces.iter().map(|(_, n)| n).sum();
        (
            pieces.into_iter().flat_map(|(bytes, _)| bytes).collect(),
            count,
        )
    })
}

/// The offsets of the segments before the frame header of a well-formed JPEG (after SOI).
fn segment_starts(jpeg: &[u8]) -> Vec<usize> {
    let end = frame_offset(jpeg);
    let mut at = 2;
    let mut out = vec![];
    while at <= end {
        out.push(at);
        if at == end {
            break;
        }
        at += 2 + usize::from(u16::from_be_bytes([jpeg[at + 2], jpeg[at + 3]]));
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// The classes, generated: junk where a marker should start is skipped as libjpeg
    /// skips it, counted as libjpeg counts it, and the dimensions stay the encoder's; every
    /// path agrees.
    #[test]
    fn junk_between_segments_is_skipped_and_counted(
        width in 1u32..=64,
        height in 1u32..=64,
        color in color(),
        place in any::<prop::sample::Index>(),
        (junk, count) in junk(),
        sizes in prop::collection::vec(1usize..40, 1..5),
    ) {
        let clean = encode(width, height, 80, color);
        let starts = segment_starts(&clean);
        let at = starts[place.index(starts.len())];
        let mut file = clean[..at].to_vec();
        file.extend_from_slice(&junk);
        file.extend_from_slice(&clean[at..]);
        let info = all_paths_agree(&file, &sizes)?.expect("read past the junk");
        prop_assert_eq!((info.width, info.height), (width, height));
        let e = info.extraneous.expect("skipped");
        // The offset T.81's walk stops at: the junk's start, or the `FF` of a leading
        // `FF… 00` (fill bytes before it are legal).
        let fill = junk.iter().take_while(|&&b| b == 0xFF).count().saturating_sub(1);
        prop_assert_eq!(
            (e.offset, e.first, e.marker),
            ((at + fill) as u64, count, clean[at + 1])
        );
        prop_assert_eq!((e.total, e.places), (count, 1));
        prop_assert_eq!(probe(&clean).expect("clean").extraneous, None);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn mutated_real_jpegs_agree_on_every_path(
        width in 1u32..=48,
        height in 1u32..=48,
        color in color(),
        segments in prop::collection::vec(extra_segment(), 0..3),
        mutations in prop::collection::vec(mutation(), 1..5),
        sizes in prop::collection::vec(1usize..40, 1..5),
    ) {
        let mut file = with_segments(&encode(width, height, 75, color), &segments);
        // Mutate the marker segments up to a little past the frame header.
        let span = frame_offset(&file) + 24;
        mutate(&mut file, &mutations, span);
        let _answer = all_paths_agree(&file, &sizes)?;
    }
}

#[test]
fn other_formats_agree_on_every_path() {
    let png = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR\0\0\0\x10\0\0\0\x10\x08\x02\0\0\0\x90\x91\x68\x36";
    let inputs: &[&[u8]] = &[
        png,
        b"GIF89a\x10\0\x10\0\0\0\0",
        b"GIF89a\x10\0\x10",
        b"RIFF\x1a\0\0\0WEBPVP8L\x0d\0\0\0\x2f\0\0\0\0",
        b"RIFF\x1a\0\0\0WEBPVP8 \x0d\0\0\0",
        b"BM\0\0\0\0\0\0\0\0\0\0\0\0\x28\0\0\0\x10\0\0\0\xF0\xFF\xFF\xFF",
        b"BM\0\0",
        b"\0\0\0\x1cftypavif\0\0\0\0",
        b"hello, world",
        b"",
    ];
    for bytes in inputs {
        for cut in 0..=bytes.len() {
            let bytes = &bytes[..cut];
            assert_eq!(probe(bytes), machine(bytes), "{bytes:?}");
        }
    }
}
