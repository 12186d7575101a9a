//! Differential for the fixed-header formats: `imgchkr_core::probe` against the `image`
//! crate's header reading (`ImageReader::with_format(..).into_dimensions()`) on inputs whose
//! leading bytes announce PNG, GIF, WebP or BMP (JPEG is `differential`'s business).
//!
//! When both read dimensions they must agree, and imgchkr must name the same format. When
//! their verdicts differ, only these documented reasons are allowed; anything else panics:
//!
//! * imgchkr Ok, image Err:
//!   - F1 `image` reads further than the fields imgchkr reads, and fails there: PNG, every
//!     chunk up to the first IDAT (a bad CRC, a truncated or unknown critical chunk, a bad
//!     PLTE...); GIF, the global colour table; WebP, the chunks after `VP8X` (an extended file
//!     must hold an image chunk) and the RIFF sizes; BMP, the bit count, compression, palette
//!     and colour masks. Checked: `image` reads a minimal file built from the very header
//!     fields imgchkr read (same dimensions, every other field made valid: [`rebuild`]) with
//!     the same dimensions, or fails on it for a reason of F2.
//!   - F2 `image` refuses a header imgchkr accepts: a BMP DIB header of 16 or 64 bytes (OS/2
//!     2.x, which imgchkr reads and `image` does not support), and limits of `image`'s own:
//!     its allocation limit (`ImageError::Limits`, e.g. a PNG of 2³⁰ × 9 RGBA16), a BMP side over 65,535 (its soft limit; BMP allows 2³¹ − 1), a WebP canvas larger than
//!     a VP8L frame can say (then no minimal file can be rebuilt).
//! * imgchkr Err, image Ok:
//!   - F3 imgchkr's strictness: a zero width or height (a GIF canvas; `image` reads 0×0
//!     screens), a BMP DIB header size imgchkr does not know, BMP header fields that break the
//!     format (planes other than 1, a bit count the header version lacks, a compression that
//!     does not go with the bit count or with top-down rows, a palette larger than the bit
//!     count can index), WebP fields libwebp refuses (VP8 version over 3, an invisible first
//!     frame, a first partition past the chunk, chunk sizes, a canvas of 2³² pixels or more,
//!     a RIFF size below 12, a still VP8X image whose bitstream is not the canvas's size or
//!     is missing), a PNG IHDR with a bit depth
//!     / colour type pair or a compression, filter or interlace method ISO/IEC 15948 forbids,
//!     a PNG width or height over 2³¹ − 1 (§11.2.2; png 0.18 reads up to 2³² − 1),
//!     or a PNG IHDR whose CRC does not match (imgchkr checks it; `image`'s header reading,
//!     png 0.18, does not fail on it).
//!   - F5 GIF: imgchkr walks on to the first image descriptor (skipping the colour table and
//!     extensions by their lengths) and fails where that walk does (a truncation, a byte that
//!     starts no block, the trailer before any image); `image`'s dimensions are the logical
//!     screen's, read before. WebP alike: a still VP8X image is read on to its VP8/VP8L
//!     frame header (chunks skipped by their sizes), whose checks (signature, fields, the
//!     canvas size) `image`'s dimensions do not need.
//! * both Ok, different dimensions (besides F4):
//!   - F6 GIF: imgchkr reports the canvas a browser allocates, the logical screen grown to
//!     hold the first frame; `image` reports the logical screen. Checked: `image`'s answer is
//!     the screen, and imgchkr's holds it.
//! * both Ok, different dimensions:
//!   - F4 a lossless WebP (`VP8L`) side of 16,384 (the 14-bit field `width - 1` = 0x3FFF):
//!     image-webp 0.2.4 computes `(1 + field) & 0x3FFF` = 0, imgchkr `field + 1` = 16,384 as
//!     the WebP lossless specification says (§3.2: `image_width = ReadBits(14) + 1`). A bug
//!     of image-webp, not of imgchkr.
#![no_main]

use std::io::Cursor;

use image::ImageFormat;
use imgchkr_core::ProbeError;
use imgchkr_core::probe::{Format, HeaderError};
use libfuzzer_sys::fuzz_target;

/// The format the leading bytes announce (the same magic numbers as imgchkr's sniffing,
/// written out again so that a sniffing bug shows here).
fn announced(data: &[u8]) -> Option<(Format, ImageFormat)> {
    match data {
        [0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A, ..] => {
            Some((Format::Png, ImageFormat::Png))
        }
        [b'G', b'I', b'F', b'8', b'7' | b'9', b'a', ..] => Some((Format::Gif, ImageFormat::Gif)),
        [
            b'R',
            b'I',
            b'F',
            b'F',
            _,
            _,
            _,
            _,
            b'W',
            b'E',
            b'B',
            b'P',
            ..,
        ] => Some((Format::Webp, ImageFormat::WebP)),
        [b'B', b'M', ..] => Some((Format::Bmp, ImageFormat::Bmp)),
        _ => None,
    }
}

/// `image`'s answer on `data` read as `format`.
fn image_dims(data: &[u8], format: ImageFormat) -> Result<(u32, u32), image::ImageError> {
    image::ImageReader::with_format(Cursor::new(data), format).into_dimensions()
}

fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    let start = out.len();
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let crc = crc32fast::hash(&out[start..]);
    out.extend_from_slice(&crc.to_be_bytes());
}

fn riff(chunks: &[(&[u8; 4], Vec<u8>)]) -> Vec<u8> {
    let mut body = b"WEBP".to_vec();
    for (kind, data) in chunks {
        body.extend_from_slice(*kind);
        body.extend_from_slice(&(data.len() as u32).to_le_bytes());
        body.extend_from_slice(data);
        if data.len() % 2 == 1 {
            body.push(0);
        }
    }
    let mut out = b"RIFF".to_vec();
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend(body);
    out
}

/// A minimal file of `format` carrying the header fields imgchkr read from `data` (its
/// dimensions, as written) with every other field valid.
fn rebuild(format: Format, data: &[u8]) -> Vec<u8> {
    match format {
        // Signature, the IHDR as given (imgchkr checked its CRC and fields), an empty IDAT
        // (where `image` stops reading), IEND.
        Format::Png => {
            let mut out = data[..33].to_vec();
            chunk(&mut out, b"IDAT", &[]);
            chunk(&mut out, b"IEND", &[]);
            out
        }
        // Signature and logical screen size, no global colour table, one frame reaching the
        // canvas imgchkr read (at an offset where the canvas is over 65,535) with a
        // two-colour local table (`image` reads up to the first frame), a 1-pixel image, the
        // trailer.
        Format::Gif => {
            let info = imgchkr_core::probe(data).expect("imgchkr read it");
            let side = |canvas: u32| {
                let size = canvas.min(65535);
                ((canvas - size) as u16, size as u16)
            };
            let ((left, width), (top, height)) = (side(info.width), side(info.height));
            let mut out = data[..10].to_vec();
            out.extend_from_slice(&[0, 0, 0, 0x2C]);
            for v in [left, top, width, height] {
                out.extend_from_slice(&v.to_le_bytes());
            }
            out.push(0x80);
            out.extend_from_slice(&[0, 0, 0, 0xFF, 0xFF, 0xFF]);
            out.extend_from_slice(&[0x02, 0x02, 0x44, 0x01, 0x00, 0x3B]);
            out
        }
        Format::Webp => match &data[12..16] {
            b"VP8 " => riff(&[(b"VP8 ", data[20..30].to_vec())]),
            b"VP8L" => riff(&[(b"VP8L", data[20..25].to_vec())]),
            // VP8X with no feature flags and the canvas as given, then a VP8L frame of the
            // canvas size (when 14 bits can say it).
            _ => {
                let w = u32::from_le_bytes([data[24], data[25], data[26], 0]);
                let h = u32::from_le_bytes([data[27], data[28], data[29], 0]);
                let mut vp8x = vec![0u8; 4];
                vp8x.extend_from_slice(&data[24..30]);
                let bits = (w & 0x3FFF) | ((h & 0x3FFF) << 14);
                let mut vp8l = vec![0x2F];
                vp8l.extend_from_slice(&bits.to_le_bytes());
                riff(&[(b"VP8X", vp8x), (b"VP8L", vp8l)])
            }
        },
        // File header, then a BITMAPCOREHEADER (OS/2 1.x input) or a BITMAPINFOHEADER with
        // the width and height as given: 24 bits per pixel, no compression, no palette.
        Format::Bmp => {
            let dib = u32::from_le_bytes([data[14], data[15], data[16], data[17]]);
            let mut header = Vec::new();
            if dib == 12 {
                header.extend_from_slice(&12u32.to_le_bytes());
                header.extend_from_slice(&data[18..22]);
                header.extend_from_slice(&[1, 0, 24, 0]);
            } else {
                header.extend_from_slice(&40u32.to_le_bytes());
                header.extend_from_slice(&data[18..26]);
                header.extend_from_slice(&[1, 0, 24, 0]);
                header.extend_from_slice(&[0; 24]);
            }
            let offset = 14 + header.len() as u32;
            let mut out = b"BM".to_vec();
            out.extend_from_slice(&offset.to_le_bytes());
            out.extend_from_slice(&[0; 4]);
            out.extend_from_slice(&offset.to_le_bytes());
            out.extend(header);
            out
        }
        _ => unreachable!("only fixed-header formats are announced"),
    }
}

fn bmp_dib(data: &[u8]) -> Option<u32> {
    Some(u32::from_le_bytes(data.get(14..18)?.try_into().ok()?))
}

/// F2: a header `image` refuses by design or by its own limits.
fn image_refuses_by_design(format: Format, data: &[u8], (w, h): (u32, u32)) -> bool {
    match format {
        Format::Bmp => {
            matches!(bmp_dib(data), Some(16 | 64))
                // `image`'s BMP soft limit: "Image too large (one of (w, h) > 65535)".
                || w > 65535
                || h > 65535
        }
        Format::Webp => &data[12..16] == b"VP8X" && (w > 16384 || h > 16384),
        _ => false,
    }
}

/// F3: imgchkr's documented strictness.
fn imgchkr_strictness(format: Format, reason: &HeaderError, data: &[u8]) -> bool {
    // F5 for WebP: a still VP8X image is read on to its bitstream's frame header, which
    // `image`'s dimensions (the canvas) do not need: whatever that header's checks refuse.
    let vp8x_still = format == Format::Webp
        && data.get(12..16) == Some(b"VP8X")
        && data.get(20).is_some_and(|f| f & 2 == 0);
    if vp8x_still && matches!(reason, HeaderError::BadSignature) {
        return true;
    }
    match reason {
        HeaderError::ZeroWidth | HeaderError::ZeroHeight => true,
        HeaderError::BadDibHeader(_)
        | HeaderError::BadPlanes(_)
        | HeaderError::BadBitCount(_)
        | HeaderError::BadCompression { .. }
        | HeaderError::TopDownCompressed(_)
        | HeaderError::BadPaletteSize { .. } => format == Format::Bmp,
        // F3, and F5's like for WebP: a still VP8X image is read on to its bitstream, whose
        // size must be the canvas.
        HeaderError::BadWebpField(_) | HeaderError::WebpCanvasMismatch { .. } => {
            format == Format::Webp
        }
        // F5
        HeaderError::BadGifBlock { .. } | HeaderError::NoGifImage { .. } => format == Format::Gif,
        HeaderError::TruncatedHeader => matches!(format, Format::Gif | Format::Webp),
        HeaderError::BadIhdr(_) | HeaderError::BadCrc | HeaderError::DimensionOutOfRange => {
            format == Format::Png
        }
        _ => false,
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((format, image_format)) = announced(data) else {
        return;
    };
    let ours = imgchkr_core::probe(data);
    let theirs = image_dims(data, image_format);
    match (&ours, &theirs) {
        (Ok(info), Ok(dims)) => {
            assert_eq!(info.format, format, "{info:?}");
            // F4: image-webp's VP8L side of 16,384 read as 0.
            let vp8l = format == Format::Webp && &data[12..16] == b"VP8L";
            let side =
                |ours: u32, theirs: u32| ours == theirs || (vp8l && ours == 16384 && theirs == 0);
            if format == Format::Gif {
                // F6: `image` reads the logical screen; imgchkr's canvas holds it.
                let screen = |at: usize| u32::from(u16::from_le_bytes([data[at], data[at + 1]]));
                assert_eq!(*dims, (screen(6), screen(8)), "image reads the screen");
                assert!(
                    info.width >= dims.0 && info.height >= dims.1,
                    "{info:?} vs {dims:?}"
                );
                return;
            }
            assert!(
                side(info.width, dims.0) && side(info.height, dims.1),
                "both read dimensions, and differ: imgchkr {info:?}, image {dims:?}"
            );
        }
        (Ok(info), Err(e)) => {
            assert_eq!(info.format, format, "{info:?}");
            let dims = (info.width, info.height);
            if image_refuses_by_design(format, data, dims) {
                return; // F2
            }
            let alone = rebuild(format, data);
            // The rebuilt file reads as the original to imgchkr (a rebuilt VP8 chunk keeps 10
            // bytes only, which may no longer hold the first partition its tag announces).
            if format != Format::Webp {
                let again = imgchkr_core::probe(&alone).map(|i| (i.width, i.height));
                assert_eq!(again, Ok(dims), "imgchkr on the rebuilt file {alone:02X?}");
            }
            match image_dims(&alone, image_format) {
                // F1 (F6 for GIF: `image` reads the rebuilt file's logical screen).
                Ok(got) if format == Format::Gif => {
                    let screen =
                        |at: usize| u32::from(u16::from_le_bytes([alone[at], alone[at + 1]]));
                    assert_eq!(
                        got,
                        (screen(6), screen(8)),
                        "the header read alone: {alone:02X?}"
                    );
                }
                Ok(got) => assert_eq!(got, dims, "the header read alone: {alone:02X?}"),
                // F2: `image`'s allocation limit (512 MiB by default), checked on the header.
                Err(image::ImageError::Limits(_)) => {}
                Err(alone_err) => panic!(
                    "imgchkr read {info:?}; image rejects those header fields alone: {alone_err} \
                     ({alone:02X?}; whole input: {e})"
                ),
            }
        }
        (Err(ProbeError::Malformed { format: f, reason }), Ok(dims)) => {
            assert_eq!(*f, format);
            assert!(
                imgchkr_strictness(format, reason, data),
                "imgchkr rejects ({reason}) what image reads as {dims:?}"
            );
        }
        (Err(ours), Ok(dims)) => {
            panic!("imgchkr rejects ({ours}) what image reads as {dims:?}")
        }
        (Err(ours), Err(_)) => {
            // Both refuse; imgchkr still names the announced format.
            assert_eq!(ours.format(), Some(format), "{ours:?}");
        }
    }
});
