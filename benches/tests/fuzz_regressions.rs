//! Inputs the fuzz targets (fuzz/) found, kept as plain tests. Each names the target, the
//! input (hex) and the expected behaviour; a failing case here is a bug for imgchkr-core.

use imgchkr_core::probe::{Probe, Step};

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

/// incremental_feed, input `00 FF D8` (empty schedule, image `FF D8`): after
/// `feed(0, [FF D8])` returns `Need { offset: 2, len: 10 }` (it carries the two bytes),
/// `step()` says `Need { offset: 0, len: 12 }`: it ignores the carried partial token.
/// Not a wrong answer (re-feeding from 0 works), but `step()` should agree with the `Need`
/// `feed` last returned, as its doc ("what the probe needs next") promises.
#[test]
fn step_agrees_with_the_last_need() {
    let image = hex("FF D8");
    let mut probe = Probe::new();
    let fed = probe.feed(0, &image);
    assert!(
        matches!(fed, Step::Need(n) if n.offset == 2 && n.len == 10),
        "{fed:?}"
    );
    assert_eq!(
        probe.step(),
        fed,
        "step() restates the whole token, not the missing part"
    );
}

/// probe, input `GIF89a 10 00 10 00 00 00 00`: the probe reads GIF dimensions (16×16);
/// found because the first oracle assumed only JPEG answers. Kept as a guard, with the first
/// image descriptor the probe now reads too (the canvas grows to hold the first frame): a
/// 2×3 frame at (15, 15) makes it 17×18. The screen alone is a truncated header.
#[test]
fn gif_logical_screen_is_read() {
    let screen = hex("47 49 46 38 39 61 10 00 10 00 00 00 00");
    let mut gif = screen.clone();
    gif.extend(hex("2C 0F 00 0F 00 02 00 03 00 00"));
    let info = imgchkr_core::probe(&gif).expect("a GIF header");
    assert_eq!((info.width, info.height), (17, 18));
    assert!(info.jpeg.is_none());
    assert!(imgchkr_core::probe(&screen).is_err());
}

/// differential_formats, input `RIFF 9C010000 WEBP VP8L 90010000 2F FFFF0200 55`: the 14-bit
/// `width - 1` field is 0x3FFF, so the width is 16,384 (WebP lossless §3.2). imgchkr reads
/// 16,384; image-webp 0.2.4 says 0 (`(1 + field) & 0x3FFF`), its bug, documented as F4.
#[test]
fn vp8l_side_of_16384_is_read() {
    let webp = hex("52494646 9C010000 57454250 5650384C 90010000 2F FFFF0200 55");
    let info = imgchkr_core::probe(&webp).expect("a VP8L header");
    assert_eq!((info.width, info.height), (16384, 12));
}

/// differential_formats: a PNG IHDR (valid CRC) with a height of 0xE6000005, over the 2³¹ − 1
/// ISO/IEC 15948 §11.2.2 allows; png 0.18 reads it, imgchkr refuses it (F3).
#[test]
fn png_height_over_2_pow_31_is_refused() {
    let mut png = hex("89504E470D0A1A0A 0000000D 49484452 00000007 E6000005 08 00 00 00 00");
    let crc = crc32fast::hash(&png[12..29]);
    png.extend_from_slice(&crc.to_be_bytes());
    let err = imgchkr_core::probe(&png).expect_err("out of range");
    assert!(
        matches!(
            err,
            imgchkr_core::ProbeError::Malformed {
                reason: imgchkr_core::probe::HeaderError::DimensionOutOfRange,
                ..
            }
        ),
        "{err:?}"
    );
    // The same header with a height of 5 is read.
    png[20] = 0;
    let crc = crc32fast::hash(&png[12..29]);
    png[29..33].copy_from_slice(&crc.to_be_bytes());
    let info = imgchkr_core::probe(&png).expect("in range");
    assert_eq!((info.width, info.height), (7, 5));
}

/// differential, a hierarchical file (DHP before the frame) whose DQT content jpeg-decoder
/// rejects before it reaches the DHP: imgchkr skips the DQT by its length (R2) and reports
/// the DHP's dimensions. The target assumed jpeg-decoder would say `Unsupported` for any DHP
/// file; it now re-reads `SOI + DHP + SOFn` alone. Minimised: SOI, a DQT whose table id is
/// 0xFF, DHP (P 8, 32 lines, 64 columns, one component), SOF1 (8 lines, 16 columns).
#[test]
fn hierarchical_after_a_segment_jpeg_decoder_rejects() {
    let image = hex("FF D8  FF DB 00 04 FF 00
         FF DE 00 0B 08 00 20 00 40 01 01 11 00
         FF C1 00 0B 08 00 08 00 10 01 01 11 00");
    let info = imgchkr_core::probe(&image).expect("a hierarchical frame");
    assert_eq!((info.width, info.height), (64, 32));
    assert!(info.jpeg.is_some_and(|frame| frame.hierarchical));
}
