//! Each documented disagreement with libjpeg-turbo (the `differential_libjpeg` fuzz target's
//! L1–L3 and S1–S3) on a generated file: imgchkr's verdict and libjpeg-turbo's differ exactly
//! as the reason says, and the files of the issue's classes are read alike by both.

use imgchkr_core::probe::HeaderError;
use imgchkr_core::{ProbeError, probe};
use imgchkr_oracles::libjpeg::{self, read_header};

fn segment(marker: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![0xFF, marker];
    out.extend_from_slice(&(payload.len() as u16 + 2).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// A frame header: P, height, width, then each (Ci, Hi/Vi, Tqi).
fn sof(marker: u8, precision: u8, height: u16, width: u16, specs: &[[u8; 3]]) -> Vec<u8> {
    let mut payload = vec![precision];
    payload.extend_from_slice(&height.to_be_bytes());
    payload.extend_from_slice(&width.to_be_bytes());
    payload.push(specs.len() as u8);
    for spec in specs {
        payload.extend_from_slice(spec);
    }
    segment(marker, &payload)
}

/// SOI, `parts`, one SOS of component 1 and EOI: what libjpeg needs to finish its header.
fn file(parts: &[&[u8]]) -> Vec<u8> {
    let mut out = vec![0xFF, 0xD8];
    for part in parts {
        out.extend_from_slice(part);
    }
    out.extend_from_slice(&segment(0xDA, &[1, 1, 0, 0, 63, 0]));
    out.extend_from_slice(&[0xFF, 0xD9]);
    out
}

const ONE: [[u8; 3]; 1] = [[1, 0x11, 0]];

fn dims(bytes: &[u8]) -> (u32, u32) {
    let info = probe(bytes).unwrap_or_else(|e| panic!("imgchkr: {e}"));
    (info.width, info.height)
}

fn libjpeg_error(bytes: &[u8]) -> i32 {
    match read_header(bytes) {
        Err(e) => e.code,
        Ok(header) => panic!("libjpeg-turbo read {header:?}"),
    }
}

fn refusal(bytes: &[u8]) -> HeaderError {
    match probe(bytes) {
        Err(ProbeError::Malformed { reason, .. }) => reason,
        other => panic!("imgchkr: {other:?}"),
    }
}

#[test]
fn both_read_the_issues_classes_alike() {
    let frame = sof(0xC0, 8, 30, 40, &ONE);
    let app0 = segment(0xE0, b"JFIF\0\x01\x01\0\0\x01\0\x01\0\0");
    let mut short = segment(0xE1, b"Exif\0\0abcdefgh");
    short[3] -= 4;
    for bytes in [
        file(&[&app0, b"hello", &frame]),
        file(&[&app0, &[0xFF, 0x00], &frame]),
        file(&[&[0xFF, 0xFF, 0x00, 0x12], &app0, b"x", &frame]),
        file(&[&short, &frame]),
    ] {
        let ours = probe(&bytes).expect("imgchkr reads it");
        let theirs = read_header(&bytes).expect("libjpeg-turbo reads it");
        assert_eq!((ours.width, ours.height), (theirs.width, theirs.height));
        let e = ours.extraneous.expect("skipped");
        let total: u32 = theirs.skipped.iter().map(|s| s.bytes).sum();
        assert_eq!(
            (e.first, e.marker, e.total, e.places as usize),
            (
                theirs.skipped[0].bytes,
                theirs.skipped[0].marker,
                total,
                theirs.skipped.len()
            )
        );
    }
}

#[test]
fn l1_frames_and_markers_libjpeg_turbo_lacks() {
    // Lossless and differential frames.
    for marker in [0xC3, 0xC5, 0xC7, 0xCB, 0xCF] {
        let bytes = file(&[&sof(marker, 8, 30, 40, &ONE)]);
        assert_eq!(dims(&bytes), (40, 30), "{marker:02X}");
        assert_eq!(libjpeg_error(&bytes), libjpeg::JERR_SOF_UNSUPPORTED);
    }
    // Hierarchical mode: DHP.
    let bytes = file(&[&sof(0xDE, 8, 60, 80, &ONE), &sof(0xC1, 8, 30, 40, &ONE)]);
    assert_eq!(dims(&bytes), (80, 60));
    assert_eq!(libjpeg_error(&bytes), libjpeg::JERR_UNKNOWN_MARKER);
    // JPG and JPGn segments, which T.81 lets a decoder skip by their lengths.
    for marker in [0xC8, 0xF0] {
        let bytes = file(&[&segment(marker, b"ext"), &sof(0xC0, 8, 30, 40, &ONE)]);
        assert_eq!(dims(&bytes), (40, 30), "{marker:02X}");
        let code = libjpeg_error(&bytes);
        assert!(
            code == libjpeg::JERR_SOF_UNSUPPORTED || code == libjpeg::JERR_UNKNOWN_MARKER,
            "{marker:02X}: {code}"
        );
    }
}

#[test]
fn l2_table_contents_imgchkr_skips_by_length() {
    // A DQT whose table id is out of range: libjpeg parses it and fails; imgchkr skips it by
    // its length, and the frame alone reads alike.
    let mut dqt = vec![0x0F];
    dqt.extend_from_slice(&[1; 64]);
    let frame = sof(0xC0, 8, 30, 40, &ONE);
    let bytes = file(&[&segment(0xDB, &dqt), &frame]);
    assert_eq!(dims(&bytes), (40, 30));
    assert!(read_header(&bytes).is_err());
    let alone = file(&[&frame]);
    let header = read_header(&alone).expect("the frame alone");
    assert_eq!((header.width, header.height), (40, 30));
    // No scan after the frame: libjpeg reads to the first SOS.
    let mut headless = vec![0xFF, 0xD8];
    headless.extend_from_slice(&frame);
    assert_eq!(dims(&headless), (40, 30));
    assert_eq!(libjpeg_error(&headless), libjpeg::JERR_SOF_NO_SOS);
}

#[test]
fn l3_limits_of_the_8_bit_build() {
    let bytes = file(&[&sof(0xC1, 12, 30, 40, &ONE)]);
    assert_eq!(dims(&bytes), (40, 30));
    assert_eq!(libjpeg_error(&bytes), libjpeg::JERR_BAD_PRECISION);
    let bytes = file(&[&sof(0xC0, 8, 30, 65535, &ONE)]);
    assert_eq!(dims(&bytes), (65535, 30));
    assert_eq!(libjpeg_error(&bytes), libjpeg::JERR_IMAGE_TOO_BIG);
    let eleven: Vec<[u8; 3]> = (1..=11).map(|c| [c, 0x11, 0]).collect();
    let bytes = file(&[&sof(0xC0, 8, 30, 40, &eleven)]);
    assert_eq!(dims(&bytes), (40, 30));
    assert_eq!(libjpeg_error(&bytes), libjpeg::JERR_COMPONENT_COUNT);
}

#[test]
fn s1_to_s3_imgchkr_refuses_what_libjpeg_turbo_reads() {
    let read = |bytes: &[u8]| {
        let header = read_header(bytes).expect("libjpeg-turbo reads it");
        (header.width, header.height)
    };
    // S1: a quantization table selector over 3, a repeated component identifier, a
    // progressive frame of 5 components.
    let bytes = file(&[&sof(0xC0, 8, 30, 40, &[[1, 0x11, 4]])]);
    assert_eq!(
        refusal(&bytes),
        HeaderError::BadQuantTable {
            component: 1,
            table: 4
        }
    );
    assert_eq!(read(&bytes), (40, 30));
    let bytes = file(&[&sof(0xC0, 8, 30, 40, &[[1, 0x11, 0], [1, 0x11, 0]])]);
    assert_eq!(
        refusal(&bytes),
        HeaderError::DuplicateComponent { component: 1 }
    );
    assert_eq!(read(&bytes), (40, 30));
    let five: Vec<[u8; 3]> = (1..=5).map(|c| [c, 0x11, 0]).collect();
    let bytes = file(&[&sof(0xC2, 8, 30, 40, &five)]);
    assert!(matches!(
        refusal(&bytes),
        HeaderError::BadComponentCount { count: 5, .. }
    ));
    assert_eq!(read(&bytes), (40, 30));
    // S2: an APP0 of length 0.
    let bytes = file(&[&[0xFF, 0xE0, 0, 0], &sof(0xC0, 8, 30, 40, &ONE)]);
    assert!(matches!(
        refusal(&bytes),
        HeaderError::BadSegmentLength { length: 0, .. }
    ));
    assert_eq!(read(&bytes), (40, 30));
    // S3: more than 64 KiB of junk.
    let junk = vec![0x20; imgchkr_core::probe::MAX_EXTRANEOUS as usize + 1];
    let bytes = file(&[&junk, &sof(0xC0, 8, 30, 40, &ONE)]);
    assert_eq!(
        refusal(&bytes),
        HeaderError::TooMuchExtraneousData { offset: 2 }
    );
    assert_eq!(read(&bytes), (40, 30));
}
