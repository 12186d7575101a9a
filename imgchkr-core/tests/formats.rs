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
    // Compression, filter and interlace methods: 0, 0 and 0 or 1 are all PNG defines.
    for (at, field, value) in [
        (26, "compression method", 1),
        (26, "compression method", 8),
        (27, "filter method", 1),
        (28, "interlace method", 2),
    ] {
        let mut header = png_header(10, 10, 8, 2);
        header[at] = value;
        let crc = crc32fast::hash(&header[12..29]);
        header[29..33].copy_from_slice(&crc.to_be_bytes());
        assert_eq!(
            probe(&header),
            malformed(Format::Png, HeaderError::BadIhdr(field)),
            "{field} {value}"
        );
    }
    let mut interlaced = png_header(10, 10, 8, 2);
    interlaced[28] = 1;
    let crc = crc32fast::hash(&interlaced[12..29]);
    interlaced[29..33].copy_from_slice(&crc.to_be_bytes());
    assert_eq!(dims(&interlaced), (Format::Png, 10, 10));
    // Every bit depth / colour type pair of the specification's table, and no other.
    for colour in 0..=7u8 {
        for depth in 0..=17u8 {
            let allowed: &[u8] = match colour {
                0 => &[1, 2, 4, 8, 16],
                3 => &[1, 2, 4, 8],
                2 | 4 | 6 => &[8, 16],
                _ => &[],
            };
            let result = probe(&png_header(3, 3, depth, colour));
            assert_eq!(
                result.is_ok(),
                allowed.contains(&depth),
                "depth {depth} colour {colour}"
            );
        }
    }
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

/// A GIF: signature, logical screen (no global table unless `table` gives its size field),
/// then `blocks`.
fn gif(screen: (u16, u16), table: Option<u8>, blocks: &[&[u8]]) -> Vec<u8> {
    let mut out = b"GIF89a".to_vec();
    out.extend_from_slice(&screen.0.to_le_bytes());
    out.extend_from_slice(&screen.1.to_le_bytes());
    out.push(table.map_or(0, |size| 0x80 | size));
    out.extend_from_slice(&[0, 0]);
    if let Some(size) = table {
        out.extend(std::iter::repeat_n(0x55, 3 << (size + 1)));
    }
    for block in blocks {
        out.extend_from_slice(block);
    }
    out
}

/// An image descriptor: `2C`, left, top, width, height, no local table.
fn descriptor(left: u16, top: u16, width: u16, height: u16) -> Vec<u8> {
    let mut out = vec![0x2C];
    for v in [left, top, width, height] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out.push(0);
    out
}

/// An extension: `21`, its label, then `data` in sub-blocks of at most 255 bytes, then the
/// empty one.
fn extension(label: u8, data: &[u8]) -> Vec<u8> {
    let mut out = vec![0x21, label];
    for part in data.chunks(255) {
        out.push(part.len() as u8);
        out.extend_from_slice(part);
    }
    out.push(0);
    out
}

#[test]
fn gif_canvas_is_the_screen_extended_by_the_first_frame() {
    let frame = descriptor(0, 0, 320, 240);
    assert_eq!(
        dims(&gif((320, 240), Some(7), &[&frame])),
        (Format::Gif, 320, 240)
    );
    // The decompression bomb: a 32 × 32 screen whose first frame is 65535 × 66601 (a
    // 65535-row frame at row 1066): decoders allocate the frame.
    let bomb = gif((32, 32), None, &[&descriptor(0, 1066, 65535, 65535)]);
    assert_eq!(dims(&bomb), (Format::Gif, 65535, 66601));
    assert_eq!(
        Report::from_bytes(&bomb, &all_formats()).error_texts(),
        [
            "Image width exceeds maximum (65535/1000)",
            "Image height exceeds maximum (66601/1000)"
        ]
    );
    // Extensions before the frame are skipped by their sub-block lengths, unread, even when
    // their data holds image-descriptor look-alikes.
    let decoy = descriptor(0, 0, 9999, 9999).repeat(40);
    let skipped = gif(
        (10, 20),
        Some(0),
        &[
            &extension(0xF9, &[0, 0, 0, 0]),
            &extension(0xFF, &decoy),
            &extension(0xFE, b""),
            &descriptor(5, 15, 10, 10),
        ],
    );
    assert_eq!(dims(&skipped), (Format::Gif, 15, 25));
    // A frame inside the screen does not shrink it; a zero screen takes the frame's size.
    assert_eq!(
        dims(&gif((100, 100), None, &[&descriptor(1, 1, 2, 2)])),
        (Format::Gif, 100, 100)
    );
    assert_eq!(
        dims(&gif((0, 0), None, &[&descriptor(0, 0, 7, 8)])),
        (Format::Gif, 7, 8)
    );
    assert_eq!(
        probe(&gif((0, 5), None, &[&descriptor(0, 0, 0, 8)])),
        malformed(Format::Gif, HeaderError::ZeroWidth)
    );
    // No frame before the trailer, a byte that starts no block, truncations.
    assert_eq!(
        probe(&gif((10, 10), None, &[&extension(0xF9, &[0; 4]), b";"])),
        malformed(Format::Gif, HeaderError::NoGifImage { offset: 21 })
    );
    assert_eq!(
        probe(&gif((10, 10), None, &[b"\x00"])),
        malformed(
            Format::Gif,
            HeaderError::BadGifBlock {
                offset: 13,
                found: 0
            }
        )
    );
    let whole = gif((10, 10), Some(1), &[&extension(0xFE, b"hi"), &frame]);
    for cut in 6..whole.len() {
        assert_eq!(
            probe(&whole[..cut]),
            malformed(Format::Gif, HeaderError::TruncatedHeader),
            "cut {cut}"
        );
    }
    assert_eq!(dims(&whole), (Format::Gif, 320, 240));
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
            0x50, 0x00, 0x00, 0x9D, 0x01, 0x2A, 0x08, 0x47, 0xB0, 0xC4, 0, 0,
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
    // VP8X: flags, reserved, 24-bit canvas width-1 and height-1; an animation's canvas is
    // what a decoder allocates, its frames are placed on it.
    let animated = riff(
        b"VP8X",
        &[0x12, 0, 0, 0, 0x0F, 0x27, 0x00, 0xFF, 0xFF, 0x00],
    );
    assert_eq!(dims(&animated), (Format::Webp, 10_000, 65_536));
    // Reserved bits set: the specification has readers ignore them.
    let mut reserved = animated.clone();
    reserved[20] |= 0xC1;
    reserved[21] = 0xFF;
    assert_eq!(dims(&reserved), (Format::Webp, 10_000, 65_536));
    // A still image: the chunks after VP8X are skipped by their sizes (an odd one padded) up
    // to the bitstream, whose size must be the canvas's.
    let bits: u32 = 1799 | (1199 << 14);
    let mut frame = vec![0x2F];
    frame.extend_from_slice(&bits.to_le_bytes());
    let still = |canvas: (u32, u32), chunks: &[(&[u8; 4], &[u8])]| {
        let mut vp8x = vec![0x20, 0, 0, 0];
        vp8x.extend_from_slice(&(canvas.0 - 1).to_le_bytes()[..3]);
        vp8x.extend_from_slice(&(canvas.1 - 1).to_le_bytes()[..3]);
        let mut out = riff(b"VP8X", &vp8x);
        for (kind, payload) in chunks {
            out.extend_from_slice(*kind);
            out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
            out.extend_from_slice(payload);
            if payload.len() % 2 == 1 {
                out.push(0);
            }
        }
        out
    };
    let icc = vec![0xAB; 3001];
    let ok = still(
        (1800, 1200),
        &[(b"ICCP", &icc), (b"ALPH", b"\x01"), (b"VP8L", &frame)],
    );
    assert_eq!(dims(&ok), (Format::Webp, 1800, 1200));
    let mismatch = still((1800, 1201), &[(b"ICCP", &icc), (b"VP8L", &frame)]);
    assert_eq!(
        probe(&mismatch),
        malformed(
            Format::Webp,
            HeaderError::WebpCanvasMismatch {
                canvas: (1800, 1201),
                image: (1800, 1200)
            }
        )
    );
    assert_eq!(
        Report::from_bytes(&mismatch, &all_formats()).error_texts(),
        ["Invalid WebP header: VP8X canvas 1800x1201 differs from the image's 1800x1200"]
    );
    let lossy = still((0x0708, 0x04B0), &[(b"VP8 ", &vp8[20..])]);
    assert_eq!(dims(&lossy), (Format::Webp, 0x0708, 0x04B0));
    // (The last byte is the odd VP8L payload's padding.)
    for cut in 20..ok.len() - 1 {
        assert_eq!(
            probe(&ok[..cut]),
            malformed(Format::Webp, HeaderError::TruncatedHeader),
            "cut {cut}"
        );
    }
    // Chunked: the same answers.
    for file in [&ok, &mismatch, &lossy] {
        for chunk in [1, 3, 64, 5000] {
            let mut machine = Probe::new();
            let mut step = machine.step();
            while let Step::Need(need) = step {
                let start = need.offset as usize;
                if start >= file.len() {
                    break;
                }
                step = machine.feed(need.offset, &file[start..(start + chunk).min(file.len())]);
            }
            let answer = match step {
                Step::Done(result) => result,
                Step::Need(_) => machine.finish(),
            };
            assert_eq!(answer, probe(file), "chunk {chunk}");
        }
    }
    assert_eq!(
        probe(&riff(b"ALPH", &[0; 10])),
        malformed(Format::Webp, HeaderError::UnknownWebpChunk)
    );
    assert_eq!(
        probe(&vp8[..25]),
        malformed(Format::Webp, HeaderError::TruncatedHeader)
    );
}

/// A BMP: file header, then a DIB header of `dib` bytes starting with `fields` (after its
/// size field), zeros after them.
fn bmp(dib: u32, fields: &[u8]) -> Vec<u8> {
    let mut out = b"BM\0\0\0\0\0\0\0\0\0\0\0\0".to_vec();
    out.extend_from_slice(&dib.to_le_bytes());
    out.extend_from_slice(fields);
    out.resize(14 + dib as usize, 0);
    out
}

/// BITMAPINFOHEADER-style fields: width, height, planes, bit count, compression, image size,
/// two densities, colours used.
fn info_fields(
    width: i32,
    height: i32,
    planes: u16,
    bits: u16,
    compression: u32,
    colours: u32,
) -> Vec<u8> {
    let mut out = width.to_le_bytes().to_vec();
    out.extend_from_slice(&height.to_le_bytes());
    out.extend_from_slice(&planes.to_le_bytes());
    out.extend_from_slice(&bits.to_le_bytes());
    out.extend_from_slice(&compression.to_le_bytes());
    out.extend_from_slice(&[0; 12]);
    out.extend_from_slice(&colours.to_le_bytes());
    out
}

#[test]
fn bmp_versions() {
    let v3 = info_fields(640, -480, 1, 24, 0, 0); // top-down
    assert_eq!(dims(&bmp(40, &v3)), (Format::Bmp, 640, 480));
    assert_eq!(dims(&bmp(124, &v3)), (Format::Bmp, 640, 480));
    assert_eq!(dims(&bmp(64, &v3)), (Format::Bmp, 640, 480));
    assert_eq!(dims(&bmp(16, &v3[..12])), (Format::Bmp, 640, 480));
    assert_eq!(
        dims(&bmp(12, &[0x20, 0x03, 0x58, 0x02, 1, 0, 8, 0])),
        (Format::Bmp, 800, 600)
    );
    assert_eq!(
        probe(&bmp(41, &v3)),
        malformed(Format::Bmp, HeaderError::BadDibHeader(41))
    );
    assert_eq!(
        probe(&bmp(40, &info_fields(-5, 5, 1, 24, 0, 0))),
        malformed(Format::Bmp, HeaderError::DimensionOutOfRange)
    );
}

#[test]
fn bmp_header_fields_are_checked_against_each_other() {
    let ok = |fields: Vec<u8>| dims(&bmp(40, &fields));
    let bad = |fields: Vec<u8>| match probe(&bmp(40, &fields)) {
        Err(ProbeError::Malformed {
            format: Format::Bmp,
            reason,
        }) => reason,
        other => panic!("{other:?}"),
    };
    // The bmpsuite's broken headers, rebuilt.
    assert_eq!(
        bad(info_fields(127, 64, 1, 30000, 0, 0)),
        HeaderError::BadBitCount(30000)
    );
    assert_eq!(
        bad(info_fields(127, 64, 2, 8, 0, 0)),
        HeaderError::BadPlanes(2)
    );
    assert_eq!(
        bad(info_fields(127, 64, 0, 8, 0, 0)),
        HeaderError::BadPlanes(0)
    );
    assert_eq!(
        bad(info_fields(127, 64, 1, 8, 0, 305_419_896)),
        HeaderError::BadPaletteSize {
            colours: 305_419_896,
            bits: 8
        }
    );
    assert_eq!(
        bad(info_fields(127, -64, 1, 8, 1, 0)),
        HeaderError::TopDownCompressed(1)
    );
    assert_eq!(
        bad(info_fields(127, -64, 1, 4, 2, 0)),
        HeaderError::TopDownCompressed(2)
    );
    // Compression against bit count.
    assert_eq!(
        bad(info_fields(8, 8, 1, 24, 1, 0)),
        HeaderError::BadCompression {
            compression: 1,
            bits: 24
        }
    );
    assert_eq!(
        bad(info_fields(8, 8, 1, 8, 3, 0)),
        HeaderError::BadCompression {
            compression: 3,
            bits: 8
        }
    );
    assert_eq!(
        bad(info_fields(8, 8, 1, 24, 4, 0)),
        HeaderError::BadCompression {
            compression: 4,
            bits: 24
        }
    );
    assert_eq!(
        bad(info_fields(8, 8, 1, 0, 0, 0)),
        HeaderError::BadCompression {
            compression: 0,
            bits: 0
        }
    );
    assert_eq!(
        bad(info_fields(8, 8, 1, 8, 7, 0)),
        HeaderError::BadCompression {
            compression: 7,
            bits: 8
        }
    );
    // What the formats allow.
    assert_eq!(ok(info_fields(8, 8, 1, 8, 1, 256)), (Format::Bmp, 8, 8));
    assert_eq!(ok(info_fields(8, 8, 1, 4, 2, 16)), (Format::Bmp, 8, 8));
    assert_eq!(ok(info_fields(8, -8, 1, 16, 3, 0)), (Format::Bmp, 8, 8));
    assert_eq!(ok(info_fields(8, 8, 1, 32, 6, 0)), (Format::Bmp, 8, 8));
    assert_eq!(ok(info_fields(8, 8, 1, 0, 4, 0)), (Format::Bmp, 8, 8));
    assert_eq!(ok(info_fields(8, 8, 1, 0, 5, 0)), (Format::Bmp, 8, 8));
    assert_eq!(ok(info_fields(8, 8, 1, 2, 0, 4)), (Format::Bmp, 8, 8));
    assert_eq!(ok(info_fields(8, 8, 1, 24, 0, 300)), (Format::Bmp, 8, 8));
    assert_eq!(
        bad(info_fields(8, 8, 1, 1, 0, 3)),
        HeaderError::BadPaletteSize {
            colours: 3,
            bits: 1
        }
    );
    // OS/2 2.x numbers Huffman 1D (1 bit) and RLE24 (24 bits) 3 and 4.
    assert_eq!(
        dims(&bmp(64, &info_fields(8, 8, 1, 24, 4, 0))),
        (Format::Bmp, 8, 8)
    );
    assert_eq!(
        dims(&bmp(64, &info_fields(8, 8, 1, 1, 3, 0))),
        (Format::Bmp, 8, 8)
    );
    assert_eq!(
        probe(&bmp(64, &info_fields(8, 8, 1, 16, 3, 0))),
        malformed(
            Format::Bmp,
            HeaderError::BadCompression {
                compression: 3,
                bits: 16
            }
        )
    );
    // OS/2 1.x: 1, 4, 8 or 24 bits, one plane.
    assert_eq!(
        probe(&bmp(12, &[8, 0, 8, 0, 1, 0, 16, 0])),
        malformed(Format::Bmp, HeaderError::BadBitCount(16))
    );
    assert_eq!(
        probe(&bmp(12, &[8, 0, 8, 0, 3, 0, 8, 0])),
        malformed(Format::Bmp, HeaderError::BadPlanes(3))
    );
    assert_eq!(
        Report::from_bytes(
            &bmp(40, &info_fields(127, 64, 1, 30000, 0, 0)),
            &all_formats()
        )
        .error_texts(),
        ["Invalid BMP header: invalid bit count 30000"]
    );
    let full = bmp(40, &info_fields(8, 8, 1, 24, 0, 0));
    for cut in 2..54 {
        assert_eq!(
            probe(&full[..cut]),
            malformed(Format::Bmp, HeaderError::TruncatedHeader),
            "cut {cut}"
        );
    }
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
    let gif = gif((16, 16), None, &[&descriptor(0, 0, 16, 16)]);
    assert_eq!(
        Report::from_bytes(&gif, &png_webp).error_texts(),
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
            Just(&b"GIF89a\x01\0\x01\0\x80\0\0"[..]),
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
