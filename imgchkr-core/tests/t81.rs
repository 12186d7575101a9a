//! The JPEG header walk, rule by rule (ITU-T T.81 Annex B), and the policy's texts.

mod common;

use common::*;
use imgchkr_core::probe::{Coding, Extraneous, HeaderError, MAX_EXTRANEOUS, Need, Process};
use imgchkr_core::{Format, Policy, Probe, ProbeError, Report, Step, probe};

fn malformed(reason: HeaderError) -> Result<imgchkr_core::ImageInfo, ProbeError> {
    Err(ProbeError::Malformed {
        format: Format::Jpeg,
        reason,
    })
}

fn dims(bytes: &[u8]) -> (u32, u32) {
    let info = probe(bytes).expect("probe reads the frame header");
    (info.width, info.height)
}

fn texts(bytes: &[u8]) -> Vec<String> {
    Report::from_bytes(bytes, &Policy::default()).error_texts()
}

#[test]
fn baseline_frame_gives_dimensions_and_details() {
    let file = jpeg(&[
        &app0(),
        &dqt(),
        &sof(0xC0, 8, 480, 640, 3),
        &dht(),
        &scan_and_eoi(),
    ]);
    let info = probe(&file).unwrap();
    assert_eq!(
        (info.format, info.width, info.height),
        (Format::Jpeg, 640, 480)
    );
    let frame = info.jpeg.unwrap();
    assert_eq!(frame.process, Process::Baseline);
    assert_eq!(frame.coding, Coding::Huffman);
    assert_eq!(
        (frame.precision, frame.components, frame.marker),
        (8, 3, 0xC0)
    );
    assert!(!frame.differential && !frame.hierarchical);
}

#[test]
fn every_sofn_is_a_frame_header_but_dht_jpg_and_dac_are_not() {
    let kinds = [
        (0xC0, Process::Baseline, Coding::Huffman, false),
        (0xC1, Process::ExtendedSequential, Coding::Huffman, false),
        (0xC2, Process::Progressive, Coding::Huffman, false),
        (0xC3, Process::Lossless, Coding::Huffman, false),
        (0xC5, Process::ExtendedSequential, Coding::Huffman, true),
        (0xC6, Process::Progressive, Coding::Huffman, true),
        (0xC7, Process::Lossless, Coding::Huffman, true),
        (0xC9, Process::ExtendedSequential, Coding::Arithmetic, false),
        (0xCA, Process::Progressive, Coding::Arithmetic, false),
        (0xCB, Process::Lossless, Coding::Arithmetic, false),
        (0xCD, Process::ExtendedSequential, Coding::Arithmetic, true),
        (0xCE, Process::Progressive, Coding::Arithmetic, true),
        (0xCF, Process::Lossless, Coding::Arithmetic, true),
    ];
    for (marker, process, coding, differential) in kinds {
        // DHT (C4), JPG (C8) and DAC (CC) segments come first, holding frame-like bytes:
        // each must be skipped by its length, not read as a frame.
        let decoy = frame_payload(8, 9999, 9999, 1);
        let file = jpeg(&[
            &segment(0xC4, &decoy),
            &segment(0xC8, &decoy),
            &segment(0xCC, &decoy),
            &sof(marker, 8, 200, 300, 1),
        ]);
        let info = probe(&file).unwrap_or_else(|e| panic!("SOF {marker:02X}: {e}"));
        assert_eq!((info.width, info.height), (300, 200), "SOF {marker:02X}");
        let frame = info.jpeg.unwrap();
        assert_eq!(
            (frame.process, frame.coding, frame.differential),
            (process, coding, differential),
            "SOF {marker:02X}"
        );
    }
}

#[test]
fn fill_bytes_before_any_marker_are_skipped() {
    let fill = [0xFF; 7];
    let mut file = vec![0xFF, 0xD8];
    file.extend_from_slice(&fill);
    file.extend_from_slice(&app0());
    file.extend_from_slice(&fill);
    file.extend_from_slice(&sof(0xC0, 8, 10, 20, 1));
    assert_eq!(dims(&file), (20, 10));
}

#[test]
fn standalone_markers_have_no_length() {
    // TEM and RST0–RST7 are stand-alone: reading a length after them would derail the walk.
    let mut parts: Vec<Vec<u8>> = vec![vec![0xFF, 0x01]];
    parts.extend((0xD0..=0xD7).map(|m| vec![0xFF, m]));
    parts.push(sof(0xC0, 8, 33, 44, 1));
    let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
    assert_eq!(dims(&jpeg(&refs)), (44, 33));
}

#[test]
fn frame_markers_inside_exif_or_comments_are_never_taken_for_the_frame() {
    // An EXIF block holding a thumbnail JPEG (with its own SOF0 of 160x120) and a comment
    // holding FF C0 bytes, both before the real frame.
    let thumbnail = jpeg(&[&sof(0xC0, 8, 120, 160, 3), &scan_and_eoi()]);
    let mut exif = b"Exif\0\0MM\0*\0\0\0\x08".to_vec();
    exif.extend_from_slice(&thumbnail);
    exif.resize(60_000, 0xFF);
    exif.extend_from_slice(&[0xFF, 0xC0, 0x00, 0x11, 0x08, 0x27, 0x10]);
    let comment = [
        b"look: ".as_slice(),
        &[0xFF, 0xC0, 0x00, 0x0B, 0x08, 0x00, 0x01, 0x00, 0x01],
    ]
    .concat();
    let file = jpeg(&[
        &app0(),
        &segment(0xE1, &exif),
        &segment(0xFE, &comment),
        &sof(0xC2, 8, 3000, 4000, 3),
    ]);
    assert_eq!(dims(&file), (4000, 3000));
}

#[test]
fn truncation_before_and_inside_the_frame_header() {
    let full = jpeg(&[&app0(), &sof(0xC0, 8, 10, 20, 3)]);
    let frame_at = 2 + app0().len();
    for cut in 2..frame_at + 4 {
        assert_eq!(
            probe(&full[..cut]),
            malformed(HeaderError::TruncatedBeforeFrameHeader),
            "cut {cut}"
        );
    }
    for cut in frame_at + 4..full.len() {
        assert_eq!(
            probe(&full[..cut]),
            malformed(HeaderError::TruncatedInFrameHeader),
            "cut {cut}"
        );
    }
    assert_eq!(dims(&full), (20, 10));
    // A segment whose length runs past the end of the input.
    let long = jpeg(&[&[0xFF, 0xE1, 0xFF, 0xFF, 1, 2, 3]]);
    assert_eq!(
        probe(&long),
        malformed(HeaderError::TruncatedBeforeFrameHeader)
    );
    assert_eq!(
        texts(&long),
        ["Invalid JPEG header: truncated before the frame header"]
    );
}

#[test]
fn segment_lengths_below_two_are_invalid() {
    for length in [0u8, 1] {
        let file = jpeg(&[&[0xFF, 0xE0, 0x00, length], &sof(0xC0, 8, 1, 1, 1)]);
        assert_eq!(
            probe(&file),
            malformed(HeaderError::BadSegmentLength {
                marker: 0xE0,
                offset: 2,
                length: u16::from(length)
            })
        );
    }
    // The smallest legal segment, length 2 with no payload, is fine.
    assert_eq!(
        dims(&jpeg(&[&[0xFF, 0xFE, 0x00, 0x02], &sof(0xC0, 8, 5, 6, 1)])),
        (6, 5)
    );
}

#[test]
fn sos_or_eoi_before_any_frame_header() {
    let sos = jpeg(&[&app0(), &scan_and_eoi()]);
    let at = 2 + app0().len() as u64;
    assert_eq!(
        probe(&sos),
        malformed(HeaderError::NoFrameHeader {
            marker: 0xDA,
            offset: at
        })
    );
    let eoi = jpeg(&[&app0(), &[0xFF, 0xD9]]);
    assert_eq!(
        probe(&eoi),
        malformed(HeaderError::NoFrameHeader {
            marker: 0xD9,
            offset: at
        })
    );
    assert_eq!(
        texts(&eoi),
        [format!(
            "Invalid JPEG header: no frame header: EOI at offset {at} comes before any SOFn"
        )]
    );
}

#[test]
fn zero_width_and_zero_height() {
    assert_eq!(
        probe(&jpeg(&[&sof(0xC0, 8, 10, 0, 1)])),
        malformed(HeaderError::ZeroWidth)
    );
    assert_eq!(
        texts(&jpeg(&[&sof(0xC0, 8, 10, 0, 1)])),
        ["Invalid JPEG header: zero width"]
    );
    // Y = 0 defers the height to a DNL marker after the first scan: not readable from headers.
    assert_eq!(
        probe(&jpeg(&[&sof(0xC0, 8, 0, 10, 1)])),
        malformed(HeaderError::ZeroHeight)
    );
}

fn strict() -> Policy {
    let mut policy = Policy::default();
    policy.strict = true;
    policy
}

/// The extraneous-bytes record of a probe that read the frame header.
fn skipped(bytes: &[u8]) -> Extraneous {
    probe(bytes)
        .expect("probe reads the frame header")
        .extraneous
        .expect("bytes were skipped")
}

#[test]
fn bytes_that_are_not_markers_are_skipped_as_libjpeg_skips_them() {
    // Non-FF bytes after SOI: skipped up to the next marker, counted, the frame read.
    let file = jpeg(&[&[0x00, 0x01], &sof(0xC0, 8, 1, 1, 1)]);
    let e = skipped(&file);
    assert_eq!(
        (e.offset, e.found, e.first, e.marker, e.total, e.places),
        (2, 0x00, 2, 0xC0, 2, 1)
    );
    assert_eq!(dims(&file), (1, 1));
    // `FF 00` where a marker is expected: the pair is discarded, counted as 2 (libjpeg's
    // count), after any fill bytes, which are not counted.
    let stuffed = jpeg(&[&[0xFF, 0xFF, 0xFF, 0x00], &sof(0xC0, 8, 1, 1, 1)]);
    let e = skipped(&stuffed);
    assert_eq!((e.offset, e.found, e.first, e.marker), (4, 0xFF, 2, 0xC0));
    // Text after a segment, where the next marker should be (the issue's
    // `expected a marker at offset 81, found 0x68`).
    let app = segment(0xE0, &[b'x'; 75]);
    let junk = jpeg(&[&app, b"hello", &dqt(), &sof(0xC2, 8, 480, 640, 3)]);
    assert_eq!(2 + app.len(), 81);
    let e = skipped(&junk);
    assert_eq!((e.offset, e.found, e.first, e.marker), (81, b'h', 5, 0xDB));
    assert_eq!(dims(&junk), (640, 480));
    // A segment whose length is a few bytes short: the walk lands inside it and scans to the
    // next marker.
    let mut short = segment(0xE1, b"Exif\0\0abcdefgh");
    short[3] -= 4;
    let file = jpeg(&[&short, &sof(0xC0, 8, 30, 40, 1)]);
    let e = skipped(&file);
    assert_eq!((e.offset, e.found, e.first, e.marker), (16, b'e', 4, 0xC0));
    assert_eq!(dims(&file), (40, 30));
    // Several places: the first kept, the rest summed up.
    let many = jpeg(&[
        b"ab",
        &app0(),
        &[0xFF, 0x00, 7],
        &dqt(),
        b"c",
        &sof(0xC0, 8, 1, 1, 1),
    ]);
    let e = skipped(&many);
    assert_eq!(
        (e.offset, e.first, e.marker, e.total, e.places),
        (2, 2, 0xE0, 6, 3)
    );
    let report = Report::from_bytes(&many, &Policy::default());
    assert!(report.is_valid());
    assert_eq!(
        report.warnings(),
        [
            "Skipped 2 extraneous bytes at offset 2 before marker 0xFFE0",
            "Skipped 4 more extraneous bytes in 2 more places before the frame header"
        ]
    );
    let one = Report::from_bytes(&jpeg(&[b"z", &sof(0xC0, 8, 1, 1, 1)]), &Policy::default());
    assert_eq!(
        one.warnings(),
        ["Skipped 1 extraneous byte at offset 2 before marker 0xFFC0"]
    );
    // A clean file has no record and no warning.
    let clean = jpeg(&[&app0(), &sof(0xC0, 8, 1, 1, 1)]);
    assert_eq!(probe(&clean).unwrap().extraneous, None);
    assert!(
        Report::from_bytes(&clean, &Policy::default())
            .warnings()
            .is_empty()
    );
}

#[test]
fn skipping_never_reads_inside_a_segment_walked_by_its_length() {
    // The EXIF and comment traps stay closed: a junk byte before them does not turn the
    // walk into a scan through their payloads.
    let decoy = [
        0xFF, 0xC0, 0x00, 0x0B, 0x08, 0x00, 0x01, 0x00, 0x01, 0x01, 0x01, 0x11, 0x00,
    ];
    let file = jpeg(&[
        b"!",
        &segment(0xE1, &decoy),
        &segment(0xFE, &decoy),
        &sof(0xC0, 8, 77, 66, 1),
    ]);
    assert_eq!(dims(&file), (66, 77));
    // The scan stops at the first real marker: junk then SOI, SOS or EOI is refused as
    // without the junk.
    assert_eq!(
        probe(&jpeg(&[b"xy", &[0xFF, 0xD8], &sof(0xC0, 8, 1, 1, 1)])),
        malformed(HeaderError::UnexpectedSoi { offset: 4 })
    );
    assert_eq!(
        probe(&jpeg(&[b"xy", &[0xFF, 0xD9]])),
        malformed(HeaderError::NoFrameHeader {
            marker: 0xD9,
            offset: 4
        })
    );
    // Junk to the end of the input is a truncation.
    assert_eq!(
        probe(&jpeg(&[&app0(), b"trailing text, no frame"])),
        malformed(HeaderError::TruncatedBeforeFrameHeader)
    );
}

#[test]
fn extraneous_bytes_are_bounded() {
    let at_limit = vec![0x20; MAX_EXTRANEOUS as usize];
    let file = jpeg(&[&at_limit, &sof(0xC0, 8, 1, 1, 1)]);
    assert_eq!(skipped(&file).total, MAX_EXTRANEOUS);
    let over = vec![0x20; MAX_EXTRANEOUS as usize + 1];
    assert_eq!(
        probe(&jpeg(&[&over, &sof(0xC0, 8, 1, 1, 1)])),
        malformed(HeaderError::TooMuchExtraneousData { offset: 2 })
    );
    // In all places together.
    let half = vec![0x20; MAX_EXTRANEOUS as usize / 2];
    let file = jpeg(&[&half, &app0(), &half, &app0(), b"!", &sof(0xC0, 8, 1, 1, 1)]);
    assert_eq!(
        probe(&file),
        malformed(HeaderError::TooMuchExtraneousData { offset: 2 })
    );
    assert_eq!(
        texts(&file),
        [format!(
            "Invalid JPEG header: more than {MAX_EXTRANEOUS} extraneous bytes before the frame header (the first at offset 2)"
        )]
    );
    // The incremental machine, fed in chunks, stops at the same byte with the same answer.
    let under = jpeg(&[&half, &app0(), &half, &sof(0xC0, 8, 1, 1, 1)]);
    for bytes in [&file, &under, &jpeg(&[&over, &sof(0xC0, 8, 1, 1, 1)])] {
        for chunk in [1, 7, 1000, 70_000] {
            let mut machine = Probe::new();
            let mut step = machine.step();
            while let Step::Need(need) = step {
                let start = need.offset as usize;
                if start >= bytes.len() {
                    break;
                }
                step = machine.feed(need.offset, &bytes[start..(start + chunk).min(bytes.len())]);
            }
            let answer = match step {
                Step::Done(result) => result,
                Step::Need(_) => machine.finish(),
            };
            assert_eq!(answer, probe(bytes), "chunk {chunk}");
        }
    }
}

#[test]
fn strict_policy_keeps_the_t81_refusal() {
    let file = jpeg(&[&[0x00, 0x01], &sof(0xC0, 8, 1, 1, 1)]);
    let report = Report::from_bytes(&file, &strict());
    assert_eq!(
        report.error_texts(),
        ["Invalid JPEG header: expected a marker at offset 2, found 0x00"]
    );
    assert!(report.warnings().is_empty());
    let stuffed = jpeg(&[&[0xFF, 0x00], &sof(0xC0, 8, 1, 1, 1)]);
    assert_eq!(
        Report::from_bytes(&stuffed, &strict()).error_texts(),
        ["Invalid JPEG header: invalid marker 0xFF00 at offset 2"]
    );
    let app = segment(0xE0, &[b'x'; 75]);
    let junk = jpeg(&[&app, b"hello", &sof(0xC0, 8, 1200, 1800, 1)]);
    assert_eq!(
        Report::from_bytes(&junk, &strict()).error_texts(),
        ["Invalid JPEG header: expected a marker at offset 81, found 0x68"]
    );
    // The default policy reads the dimensions and warns.
    let lenient = Report::from_bytes(&junk, &Policy::default());
    assert_eq!(
        lenient.error_texts(),
        [
            "Image width exceeds maximum (1800/1000)",
            "Image height exceeds maximum (1200/1000)"
        ]
    );
    assert_eq!(
        lenient.warnings(),
        ["Skipped 5 extraneous bytes at offset 81 before marker 0xFFC0"]
    );
    // A clean file is judged alike by both.
    let clean = jpeg(&[&app0(), &sof(0xC0, 8, 10, 20, 3)]);
    assert!(Report::from_bytes(&clean, &strict()).is_valid());
}

#[test]
fn frame_header_fields_are_checked_against_table_b2() {
    let bad_length = jpeg(&[&segment(0xC0, &frame_payload(8, 1, 1, 3)[..12])]);
    assert_eq!(
        probe(&bad_length),
        malformed(HeaderError::BadFrameLength {
            length: 14,
            components: 3
        })
    );
    assert_eq!(
        probe(&jpeg(&[&segment(0xC0, &[8, 0, 1])])),
        malformed(HeaderError::BadFrameLength {
            length: 5,
            components: 0
        })
    );
    assert_eq!(
        probe(&jpeg(&[&sof(0xC0, 12, 1, 1, 1)])),
        malformed(HeaderError::BadPrecision {
            precision: 12,
            process: Process::Baseline
        })
    );
    assert!(probe(&jpeg(&[&sof(0xC1, 12, 1, 1, 1)])).is_ok());
    assert!(probe(&jpeg(&[&sof(0xC2, 12, 1, 1, 1)])).is_ok());
    assert!(probe(&jpeg(&[&sof(0xC3, 16, 1, 1, 1)])).is_ok());
    assert!(probe(&jpeg(&[&sof(0xC3, 2, 1, 1, 1)])).is_ok());
    assert_eq!(
        probe(&jpeg(&[&sof(0xC3, 1, 1, 1, 1)])),
        malformed(HeaderError::BadPrecision {
            precision: 1,
            process: Process::Lossless
        })
    );
    assert_eq!(
        probe(&jpeg(&[&sof(0xC2, 8, 1, 1, 5)])),
        malformed(HeaderError::BadComponentCount {
            count: 5,
            process: Process::Progressive
        })
    );
    assert_eq!(
        probe(&jpeg(&[&segment(0xC0, &[8, 0, 1, 0, 1, 0])])),
        malformed(HeaderError::BadComponentCount {
            count: 0,
            process: Process::Baseline
        })
    );
    let mut payload = frame_payload(8, 1, 1, 1);
    payload[7] = 0x50; // H = 5
    assert_eq!(
        probe(&jpeg(&[&segment(0xC0, &payload)])),
        malformed(HeaderError::BadSamplingFactor {
            component: 1,
            factors: 0x50
        })
    );
    let dup = [8, 0, 1, 0, 1, 2, 7, 0x11, 0, 7, 0x11, 0];
    assert_eq!(
        probe(&jpeg(&[&segment(0xC0, &dup)])),
        malformed(HeaderError::DuplicateComponent { component: 7 })
    );
    let mut lossless = frame_payload(8, 1, 1, 1);
    lossless[8] = 1;
    assert_eq!(
        probe(&jpeg(&[&segment(0xC3, &lossless)])),
        malformed(HeaderError::BadQuantTable {
            component: 1,
            table: 1
        })
    );
    payload[7] = 0x11;
    payload[8] = 4;
    assert_eq!(
        probe(&jpeg(&[&segment(0xC0, &payload)])),
        malformed(HeaderError::BadQuantTable {
            component: 1,
            table: 4
        })
    );
}

#[test]
fn hierarchical_mode_takes_the_dhp_dimensions() {
    let file = jpeg(&[
        &segment(0xDE, &frame_payload(8, 1500, 2000, 1)),
        &sof(0xC1, 8, 375, 500, 1),
    ]);
    let info = probe(&file).unwrap();
    assert_eq!((info.width, info.height), (2000, 1500));
    assert!(info.jpeg.unwrap().hierarchical);
}

#[test]
fn jpeg_ls_is_named_not_misread() {
    let file = jpeg(&[&segment(0xF7, &frame_payload(8, 10, 10, 1))]);
    assert_eq!(probe(&file), malformed(HeaderError::JpegLs));
}

#[test]
fn largest_dimensions_are_read_exactly() {
    assert_eq!(
        dims(&jpeg(&[&sof(0xC0, 8, 65535, 65535, 1)])),
        (65535, 65535)
    );
}

#[test]
fn other_formats_are_named_in_the_failure() {
    let png = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR\0\0\0\x10\0\0\0\x10\x08\x02\0\0\0\x90\x91\x68\x36";
    assert_eq!(texts(png), ["Not a JPEG (png)"]);
    assert_eq!(texts(b"GIF89a\x10\0\x10\0\0\0\0"), ["Not a JPEG (gif)"]);
    assert_eq!(
        texts(b"RIFF\x1a\0\0\0WEBPVP8L\x0d\0\0\0\x2f\0\0\0\0"),
        ["Not a JPEG (webp)"]
    );
    assert_eq!(texts(b"\0\0\0\x1cftypavif\0\0\0\0"), ["Not a JPEG (avif)"]);
    assert_eq!(texts(b"II*\0\x08\0\0\0"), ["Not a JPEG (tiff)"]);
    assert_eq!(texts(b"hello, world"), ["Not a JPEG (unknown)"]);
    assert_eq!(texts(b""), ["Not a JPEG (unknown)"]);
    assert_eq!(texts(b"\xFF"), ["Not a JPEG (unknown)"]);
    // SOI alone is a JPEG cut short.
    assert_eq!(
        texts(b"\xFF\xD8"),
        ["Invalid JPEG header: truncated before the frame header"]
    );
}

#[test]
fn policy_texts_and_order() {
    let big = jpeg(&[&sof(0xC0, 8, 1200, 1800, 3)]);
    assert_eq!(
        texts(&big),
        [
            "Image width exceeds maximum (1800/1000)",
            "Image height exceeds maximum (1200/1000)"
        ]
    );
    assert!(texts(&jpeg(&[&sof(0xC0, 8, 1000, 1000, 3)])).is_empty());
    assert_eq!(
        texts(&jpeg(&[&sof(0xC0, 8, 1001, 1000, 3)])),
        ["Image height exceeds maximum (1001/1000)"]
    );

    // Size: 10 MiB exactly passes; one byte more fails, and the header checks still run.
    let policy = Policy::default();
    let header = jpeg(&[&sof(0xC0, 8, 1200, 1000, 1)]);
    let probed = probe(&header);
    assert!(policy.check(10_485_760, &probed).len() == 1);
    let errors: Vec<String> = policy
        .check(10_485_761, &probed)
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        errors,
        [
            "File size exceeds maximum (10485761/10485760)",
            "Image height exceeds maximum (1200/1000)"
        ]
    );
    let png_too_big: Vec<String> = policy
        .check(20_000_000, &probe(b"\x89PNG\r\n\x1a\n"))
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        png_too_big,
        [
            "File size exceeds maximum (20000000/10485760)",
            "Not a JPEG (png)"
        ]
    );
}

#[test]
fn custom_limits_apply() {
    let mut policy = Policy::default();
    policy.max_width = 100;
    policy.max_height = 50;
    let file = jpeg(&[&sof(0xC0, 8, 60, 100, 1)]);
    let report = Report::from_bytes(&file, &policy);
    assert_eq!(
        report.error_texts(),
        ["Image height exceeds maximum (60/50)"]
    );
}

#[test]
fn incremental_probe_seeks_over_large_segments() {
    let exif = vec![0u8; 60_000];
    let icc = vec![0u8; 40_000];
    let file = jpeg(&[
        &app0(),
        &segment(0xE1, &exif),
        &segment(0xE2, &icc),
        &dqt(),
        &sof(0xC0, 8, 768, 1024, 3),
    ]);
    let mut probe = Probe::new();
    let mut fed = 0usize;
    let mut step = probe.step();
    let info = loop {
        match step {
            Step::Done(result) => break result.unwrap(),
            Step::Need(Need { offset, len }) => {
                let start = offset as usize;
                let end = (start + len.max(16)).min(file.len());
                fed += end - start;
                step = probe.feed(offset, &file[start..end]);
            }
        }
    };
    assert_eq!((info.width, info.height), (1024, 768));
    assert!(fed < 512, "fed {fed} bytes of a {} byte file", file.len());
}

#[test]
fn chunks_that_do_not_start_at_the_needed_offset_are_ignored_safely() {
    let file = jpeg(&[&app0(), &sof(0xC0, 8, 10, 20, 1)]);
    let mut probe = Probe::new();
    // A chunk from the future: nothing usable, the same need again.
    let first = probe.feed(5, &file[5..]);
    assert_eq!(first, Step::Need(Need { offset: 0, len: 12 }));
    // Overlapping chunks, then the rest.
    assert!(matches!(probe.feed(0, &file[..7]), Step::Need(_)));
    assert!(matches!(probe.feed(3, &file[3..9]), Step::Need(_)));
    let Step::Done(Ok(info)) = probe.feed(0, &file) else {
        panic!("whole input answers")
    };
    assert_eq!((info.width, info.height), (20, 10));
    // Once done, further feeding answers the same.
    assert_eq!(probe.feed(0, b"junk"), Step::Done(Ok(info)));
    assert_eq!(probe.finish(), Ok(info));
}

/// The incremental machine fed one byte at a time, then ended.
fn byte_by_byte(bytes: &[u8]) -> Result<imgchkr_core::ImageInfo, ProbeError> {
    let mut probe = Probe::new();
    for (at, byte) in bytes.iter().enumerate() {
        if let Step::Done(result) = probe.feed(at as u64, std::slice::from_ref(byte)) {
            return result;
        }
    }
    probe.finish()
}

#[test]
fn every_rule_gives_the_same_answer_from_the_slice_walk_and_the_incremental_machine() {
    let mut dup = frame_payload(8, 1, 1, 2);
    dup[9] = 1; // the second component's identifier repeats the first's
    let mut sampling = frame_payload(8, 1, 1, 1);
    sampling[7] = 0x05; // V = 5
    let mut lossless_table = frame_payload(8, 1, 1, 1);
    lossless_table[8] = 2;
    let cases: Vec<Vec<u8>> = vec![
        jpeg(&[&app0(), &dqt(), &sof(0xC0, 8, 480, 640, 3)]),
        jpeg(&[
            &[0xFF, 0xFF, 0xFF],
            &app0(),
            &[0xFF, 0xFF],
            &sof(0xC2, 12, 3, 4, 4),
        ]),
        jpeg(&[
            &[0xFF, 0x01, 0xFF, 0xD0, 0xFF, 0xD7],
            &sof(0xC1, 8, 1, 1, 1),
        ]),
        jpeg(&[
            &segment(0xDE, &frame_payload(8, 1500, 2000, 1)),
            &sof(0xC7, 9, 3, 4, 1),
        ]),
        jpeg(&[&[0x00, 0x01]]),
        jpeg(&[&[0xFF, 0x00]]),
        jpeg(&[&[0xFF, 0xD8]]),
        jpeg(&[&app0(), &[0xFF, 0xD9]]),
        jpeg(&[&scan_and_eoi()]),
        jpeg(&[&[0xFF, 0xE0, 0x00, 0x01]]),
        jpeg(&[&segment(0xC0, &[8, 0, 1])]),
        jpeg(&[&segment(0xF7, &frame_payload(8, 10, 10, 1))]),
        jpeg(&[&sof(0xC0, 8, 10, 0, 1)]),
        jpeg(&[&sof(0xC0, 8, 0, 10, 1)]),
        jpeg(&[&sof(0xC2, 8, 1, 1, 5)]),
        jpeg(&[&segment(0xC0, &frame_payload(8, 1, 1, 3)[..12])]),
        jpeg(&[&sof(0xC0, 12, 1, 1, 1)]),
        jpeg(&[&sof(0xC3, 17, 1, 1, 1)]),
        jpeg(&[&segment(0xC0, &sampling)]),
        jpeg(&[&segment(0xC3, &lossless_table)]),
        jpeg(&[&segment(0xC0, &dup)]),
        jpeg(&[&app0(), &sof(0xC0, 8, 10, 20, 3)])[..30].to_vec(),
        jpeg(&[&[0xFF, 0xE1, 0xFF, 0xFF, 1, 2, 3]]),
        jpeg(&[&[0xFF, 0xFF, 0xFF]]),
        jpeg(&[
            b"ab",
            &app0(),
            &[0xFF, 0x00, 7],
            &dqt(),
            b"c",
            &sof(0xC0, 8, 1, 1, 1),
        ]),
        jpeg(&[&[0xFF, 0xFF, 0x00, 0xFF], &sof(0xC0, 8, 1, 1, 1)]),
        jpeg(&[b"xy", &[0xFF, 0xD8]]),
        jpeg(&[
            b"xy",
            &[0xFF, 0x01, 0xFF, 0xE0, 0, 2],
            b"z",
            &sof(0xC0, 8, 2, 3, 1),
        ]),
        jpeg(&[&app0(), b"trailing"]),
    ];
    for file in &cases {
        let whole = probe(file);
        assert_eq!(byte_by_byte(file), whole, "{file:02X?}");
        // Every prefix too: truncations and early errors alike.
        for cut in 0..file.len() {
            assert_eq!(
                byte_by_byte(&file[..cut]),
                probe(&file[..cut]),
                "cut {cut} of {file:02X?}"
            );
        }
    }
}
