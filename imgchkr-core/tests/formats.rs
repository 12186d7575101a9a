//! PNG, GIF, WebP and BMP headers: hand-built edge cases, and real encoder output checked
//! against the `image` crate's own header reading.

use std::io::Cursor;

use imgchkr_core::probe::HeaderError;
use imgchkr_core::{Format, Formats, Policy, Probe, ProbeError, Report, Step, probe};
use proptest::prelude::*;

fn png_header(width: u32, height: u32, depth: u8, colour: u8) -> Vec<u8> {
    let mut ihdr = b"IHDR".to_vec();
    ihdr.extend_from_slice(&width.to_be_bytes());
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[depth, colour, 0, 0, 0]);
    let crc = crc32fast::hash(&ihdr);
    let mut out = b"\x89PNG\r\n\x1a\n\0\0\0\x0d".to_vec();
    out.extend_from_slice(&ihdr);
    out.extend_from_slice(&crc.to_be_bytes());
    out
}

fn malformed(format: Format, reason: HeaderError) -> Result<imgchkr_core::ImageInfo, ProbeError> {
    Err(ProbeError::Malformed { format, reason })
}

fn dims(bytes: &[u8]) -> (Format, u32, u32) {
    let info = probe(bytes).unwrap_or_else(|e| panic!("{e}"));
    (info.format, info.width, info.height)
}

fn all_formats() -> Policy {
    let mut policy = Policy::default();
    policy.formats = "jpeg,png,gif,webp,bmp".parse().unwrap();
    policy
}

#[test]
fn png_ihdr_is_read_and_checked() {
    assert_eq!(
        dims(&png_header(1800, 1200, 8, 6)),
        (Format::Png, 1800, 1200)
    );
    let mut bad_crc = png_header(10, 10, 8, 2);
    bad_crc[32] ^= 1;
    assert_eq!(probe(&bad_crc), malformed(Format::Png, HeaderError::BadCrc));
    let mut not_first = png_header(10, 10, 8, 2);
    not_first[12..16].copy_from_slice(b"tEXt");
    assert_eq!(
        probe(&not_first),
        malformed(Format::Png, HeaderError::IhdrNotFirst)
    );
    assert_eq!(
        probe(&png_header(10, 10, 3, 2)),
        malformed(Format::Png, HeaderError::BadIhdr("bit depth"))
    );
    assert_eq!(
        probe(&png_header(10, 10, 8, 5)),
        malformed(Format::Png, HeaderError::BadIhdr("colour type"))
    );
    assert_eq!(
        probe(&png_header(0, 10, 8, 2)),
        malformed(Format::Png, HeaderError::ZeroWidth)
    );
    assert_eq!(
        probe(&png_header(1 << 31, 10, 8, 2)),
        malformed(Format::Png, HeaderError::DimensionOutOfRange)
    );
    let full = png_header(10, 10, 8, 2);
    for cut in 8..full.len() {
        assert_eq!(
            probe(&full[..cut]),
            malformed(Format::Png, HeaderError::TruncatedHeader),
            "cut {cut}"
        );
    }
}

#[test]
fn gif_logical_screen() {
    // Ten bytes exactly: shorter than the sniff window, still readable.
    assert_eq!(dims(b"GIF89a\x40\x01\xF0\x00"), (Format::Gif, 320, 240));
    assert_eq!(dims(b"GIF87a\x01\x00\x01\x00\xF0\0\0"), (Format::Gif, 1, 1));
    assert_eq!(
        probe(b"GIF89a\0\0\x01\0"),
        malformed(Format::Gif, HeaderError::ZeroWidth)
    );
    assert_eq!(
        probe(b"GIF89a\x01\0"),
        malformed(Format::Gif, HeaderError::TruncatedHeader)
    );
}

fn riff(chunk: &[u8; 4], payload: &[u8]) -> Vec<u8> {
    let mut out = b"RIFF".to_vec();
    out.extend_from_slice(&(u32::try_from(payload.len()).unwrap() + 12).to_le_bytes());
    out.extend_from_slice(b"WEBP");
    out.extend_from_slice(chunk);
    out.extend_from_slice(&u32::try_from(payload.len()).unwrap().to_le_bytes());
    out.extend_from_slice(payload);
    out
}

#[test]
fn webp_lossy_lossless_and_extended() {
    // VP8 key frame: tag (bit 0 clear), start code, 14-bit dimensions with scale bits set.
    let vp8 = riff(
        b"VP8 ",
        &[
            0x50, 0x02, 0x00, 0x9D, 0x01, 0x2A, 0x08, 0x47, 0xB0, 0xC4, 0, 0,
        ],
    );
    assert_eq!(dims(&vp8), (Format::Webp, 0x0708, 0x04B0));
    let mut inter = vp8.clone();
    inter[20] |= 1;
    assert_eq!(
        probe(&inter),
        malformed(Format::Webp, HeaderError::BadSignature)
    );
    // VP8L: signature 0x2F, then (w-1) | (h-1) << 14.
    let bits: u32 = 1799 | (1199 << 14);
    let mut vp8l = vec![0x2F];
    vp8l.extend_from_slice(&bits.to_le_bytes());
    assert_eq!(dims(&riff(b"VP8L", &vp8l)), (Format::Webp, 1800, 1200));
    vp8l[4] |= 0x20; // version 1
    assert_eq!(
        probe(&riff(b"VP8L", &vp8l)),
        malformed(Format::Webp, HeaderError::BadSignature)
    );
    // VP8X: flags, reserved, 24-bit canvas width-1 and height-1.
    let vp8x = riff(
        b"VP8X",
        &[0x10, 0, 0, 0, 0x0F, 0x27, 0x00, 0xFF, 0xFF, 0x00],
    );
    assert_eq!(dims(&vp8x), (Format::Webp, 10_000, 65_536));
    assert_eq!(
        probe(&riff(b"ALPH", &[0; 10])),
        malformed(Format::Webp, HeaderError::UnknownWebpChunk)
    );
    assert_eq!(
        probe(&vp8[..25]),
        malformed(Format::Webp, HeaderError::TruncatedHeader)
    );
}

fn bmp(dib: u32, rest: &[u8]) -> Vec<u8> {
    let mut out = b"BM\0\0\0\0\0\0\0\0\0\0\0\0".to_vec();
    out.extend_from_slice(&dib.to_le_bytes());
    out.extend_from_slice(rest);
    out.resize(14 + dib as usize, 0);
    out
}

#[test]
fn bmp_versions() {
    let mut v3 = 640i32.to_le_bytes().to_vec();
    v3.extend_from_slice(&(-480i32).to_le_bytes()); // top-down
    assert_eq!(dims(&bmp(40, &v3)), (Format::Bmp, 640, 480));
    assert_eq!(dims(&bmp(124, &v3)), (Format::Bmp, 640, 480));
    assert_eq!(
        dims(&bmp(12, &[0x20, 0x03, 0x58, 0x02])),
        (Format::Bmp, 800, 600)
    );
    assert_eq!(
        probe(&bmp(41, &v3)),
        malformed(Format::Bmp, HeaderError::BadDibHeader(41))
    );
    let mut negative_width = (-5i32).to_le_bytes().to_vec();
    negative_width.extend_from_slice(&5i32.to_le_bytes());
    assert_eq!(
        probe(&bmp(40, &negative_width)),
        malformed(Format::Bmp, HeaderError::DimensionOutOfRange)
    );
}

#[test]
fn default_policy_stays_jpeg_only_and_widening_names_the_allowed_set() {
    let png = png_header(10, 10, 8, 2);
    assert_eq!(
        Report::from_bytes(&png, &Policy::default()).error_texts(),
        ["Not a JPEG (png)"]
    );
    assert!(Report::from_bytes(&png, &all_formats()).is_valid());
    let mut png_webp = Policy::default();
    png_webp.formats = "png,webp".parse().unwrap();
    let gif = b"GIF89a\x10\0\x10\0";
    assert_eq!(
        Report::from_bytes(gif, &png_webp).error_texts(),
        ["Format not allowed (gif); allowed: png, webp"]
    );
    assert_eq!(
        Report::from_bytes(b"II*\0\x08\0\0\0", &png_webp).error_texts(),
        ["Format not allowed (tiff); allowed: png, webp"]
    );
    assert_eq!(
        Report::from_bytes(&png_header(1800, 1200, 8, 2), &all_formats()).error_texts(),
        [
            "Image width exceeds maximum (1800/1000)",
            "Image height exceeds maximum (1200/1000)"
        ]
    );
    let mut bad = png_header(10, 10, 8, 2);
    bad[30] ^= 0xFF;
    assert_eq!(
        Report::from_bytes(&bad, &all_formats()).error_texts(),
        ["Invalid PNG header: IHDR CRC mismatch"]
    );
    assert!("jpeg,tiff".parse::<Formats>().is_err());
    assert!("".parse::<Formats>().is_err());
    assert!("jpg, PNG".parse::<Formats>().is_ok());
}

/// Encodes `width` x `height` pixels as `format` with the `image` crate.
fn encode(format: image::ImageFormat, width: u32, height: u32) -> Vec<u8> {
    let pixels = image::RgbaImage::from_fn(width, height, |x, y| {
        image::Rgba([x as u8, y as u8, (x ^ y) as u8, 255])
    });
    let mut out = Cursor::new(Vec::new());
    let dynamic = image::DynamicImage::ImageRgba8(pixels);
    let dynamic = if format == image::ImageFormat::Bmp || format == image::ImageFormat::Gif {
        dynamic
    } else {
        image::DynamicImage::ImageRgb8(dynamic.to_rgb8())
    };
    dynamic
        .write_to(&mut out, format)
        .expect("the image crate encodes");
    out.into_inner()
}

fn image_format() -> impl Strategy<Value = image::ImageFormat> {
    prop_oneof![
        Just(image::ImageFormat::Png),
        Just(image::ImageFormat::Gif),
        Just(image::ImageFormat::WebP),
        Just(image::ImageFormat::Bmp),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn encoded_images_agree_with_the_image_crate(
        format in image_format(),
        width in 1u32..=200,
        height in 1u32..=200,
        chunk in 1usize..40,
    ) {
        let file = encode(format, width, height);
        let info = probe(&file).expect("encoder output probes");
        prop_assert_eq!((info.width, info.height), (width, height));
        let theirs = image::ImageReader::new(Cursor::new(&file))
            .with_guessed_format()
            .expect("in memory")
            .into_dimensions()
            .expect("image reads its own output");
        prop_assert_eq!(theirs, (width, height));
        // Chunked: the same answer.
        let mut p = Probe::new();
        let mut step = p.step();
        while let Step::Need(need) = step {
            let start = need.offset as usize;
            if start >= file.len() { break; }
            step = p.feed(need.offset, &file[start..(start + chunk).min(file.len())]);
        }
        prop_assert_eq!(step, Step::Done(Ok(info)));
    }

    #[test]
    fn arbitrary_bytes_behind_each_magic_never_panic(
        magic in prop_oneof![
            Just(&b"\x89PNG\r\n\x1a\n"[..]),
            Just(&b"GIF89a"[..]),
            Just(&b"RIFF\0\0\0\0WEBP"[..]),
            Just(&b"RIFF\0\0\0\0WEBPVP8 "[..]),
            Just(&b"RIFF\0\0\0\0WEBPVP8L"[..]),
            Just(&b"BM"[..]),
        ],
        tail in prop::collection::vec(any::<u8>(), 0..48),
    ) {
        let mut bytes = magic.to_vec();
        bytes.extend_from_slice(&tail);
        if let Ok(info) = probe(&bytes) {
            prop_assert!(info.width > 0 && info.height > 0);
        }
        for cut in 0..bytes.len() {
            let _ = probe(&bytes[..cut]);
        }
    }
}
