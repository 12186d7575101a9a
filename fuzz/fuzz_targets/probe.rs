//! Arbitrary bytes: `probe` never panics, and an `Ok` is sane (positive dimensions; a JPEG
//! answer starts with SOI and has a frame header T.81 allows; a PNG, WebP or BMP answer
//! matches the leading magic bytes and comes from the fixed header alone: the input cut right
//! after it gets the same answer; a GIF answer holds the logical screen).
#![no_main]

use imgchkr_core::probe::{Format, Process};
use libfuzzer_sys::fuzz_target;

/// The non-JPEG format the leading bytes announce, and the most bytes its header takes (GIF
/// and a still VP8X WebP: none, their walks to the first image descriptor or bitstream have
/// no fixed length).
fn fixed_header(data: &[u8]) -> Option<(Format, Option<usize>)> {
    match data {
        [0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A, ..] => Some((Format::Png, Some(33))),
        [b'G', b'I', b'F', b'8', b'7' | b'9', b'a', ..] => Some((Format::Gif, None)),
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
        ] => {
            let still_vp8x =
                data.get(12..16) == Some(b"VP8X") && data.get(20).is_some_and(|f| f & 2 == 0);
            Some((Format::Webp, if still_vp8x { None } else { Some(30) }))
        }
        [b'B', b'M', ..] => Some((Format::Bmp, Some(54))),
        _ => None,
    }
}

fuzz_target!(|data: &[u8]| {
    let result = imgchkr_core::probe(data);
    // Deterministic.
    assert_eq!(imgchkr_core::probe(data), result);
    match result {
        Ok(info) => {
            assert!(info.width > 0 && info.height > 0, "{info:?}");
            if info.format != Format::Jpeg {
                // Fixed-layout formats: no JPEG frame, and not announced by SOI.
                assert!(info.jpeg.is_none(), "{info:?}");
                assert!(!data.starts_with(&[0xFF, 0xD8]), "{info:?}");
                let (format, header) = fixed_header(data).expect("an answer for a known magic");
                assert_eq!(info.format, format, "{info:?}");
                assert!(info.extraneous.is_none(), "{info:?}");
                let Some(header) = header else {
                    // GIF: the canvas holds the logical screen.
                    if format == Format::Gif {
                        let screen =
                            |at: usize| u32::from(u16::from_le_bytes([data[at], data[at + 1]]));
                        assert!(
                            info.width >= screen(6) && info.height >= screen(8),
                            "{info:?}"
                        );
                    }
                    return;
                };
                // Read from the header alone: nothing after it changes the answer.
                let cut = &data[..header.min(data.len())];
                assert_eq!(imgchkr_core::probe(cut), Ok(info), "cut at {}", cut.len());
                return;
            }
            assert!(info.width <= 65535 && info.height <= 65535, "{info:?}");
            // A JPEG answer needs SOI first and carries its frame.
            assert!(data.starts_with(&[0xFF, 0xD8]));
            let frame = info.jpeg.expect("a JPEG answer carries its frame");
            assert!(frame.components > 0);
            let precision_ok = match frame.process {
                Process::Baseline => frame.precision == 8,
                Process::ExtendedSequential | Process::Progressive => {
                    matches!(frame.precision, 8 | 12)
                }
                Process::Lossless => (2..=16).contains(&frame.precision),
                _ => true,
            };
            assert!(precision_ok, "{frame:?}");
            if frame.process == Process::Progressive {
                assert!(frame.components <= 4);
            }
        }
        Err(e) => {
            // The error's format agrees with the leading bytes.
            if data.starts_with(&[0xFF, 0xD8]) {
                assert_eq!(e.format(), Some(Format::Jpeg), "{e:?}");
            } else if let Some((format, _)) = fixed_header(data) {
                assert_eq!(e.format(), Some(format), "{e:?}");
            }
            // Display never panics.
            let _ = e.to_string();
        }
    }
});
