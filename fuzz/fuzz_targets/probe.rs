//! Arbitrary bytes: `probe` never panics, and an `Ok` is sane (positive dimensions; a JPEG
//! answer starts with SOI and has a frame header T.81 allows).
#![no_main]

use imgchkr_core::probe::{Format, Process};
use libfuzzer_sys::fuzz_target;

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
            }
            // Display never panics.
            let _ = e.to_string();
        }
    }
});
