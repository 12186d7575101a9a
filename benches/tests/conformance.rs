//! The public conformance suites, with expected verdicts (PngSuite, the BMP Suite), and every
//! file of the suites and of the fetched real-world corpus read by the reference decoders
//! (`imgchkr-oracles`): imgchkr must agree with them, or disagree for a named reason.
//!
//! Data: `test-data/conformance/` (see its README). The committed suites are always there; the
//! fetched corpus comes from `.ci/conformance-data.sh`, and a test that needs it fails, loudly,
//! when it is missing.

use std::path::{Path, PathBuf};

use imgchkr_core::policy::Verify;
use imgchkr_core::probe::HeaderError;
use imgchkr_core::{Format, ImageInfo, Policy, ProbeError, Report, probe};
use imgchkr_oracles::libjpeg;

fn data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../test-data/conformance")
}

/// The files of `dir` with extension `ext` (any, if empty), sorted; at least one.
fn files(dir: &str, ext: &[&str]) -> Vec<(String, Vec<u8>)> {
    let path = data().join(dir);
    let entries = std::fs::read_dir(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; the fetched corpus comes from `bash .ci/conformance-data.sh`",
            path.display()
        )
    });
    let mut out: Vec<(String, Vec<u8>)> = entries
        .map(|e| e.expect("dir entry").path())
        .filter(|p| {
            let e = p.extension().and_then(|e| e.to_str()).unwrap_or("");
            ext.iter().any(|x| x.eq_ignore_ascii_case(e))
        })
        .map(|p| {
            let name = p.file_name().expect("name").to_string_lossy().into_owned();
            (name, std::fs::read(&p).expect("read"))
        })
        .collect();
    out.sort();
    assert!(!out.is_empty(), "no files in {}", path.display());
    out
}

/// Every probed format, large images allowed: the verdict is the header's.
fn open_policy() -> Policy {
    let mut policy = Policy::default();
    policy.formats = "jpeg,png,gif,webp,bmp".parse().expect("formats");
    policy.max_width = 1 << 24;
    policy.max_height = 1 << 24;
    policy.max_bytes = u64::MAX;
    policy
}

fn decoding(mut policy: Policy) -> Policy {
    policy.verify = Verify::Decode;
    policy
}

fn reason(result: &Result<ImageInfo, ProbeError>) -> Option<HeaderError> {
    match result {
        Err(ProbeError::Malformed { reason, .. }) => Some(*reason),
        _ => None,
    }
}

/// PngSuite's size for a file: `sNN…` are NN × NN, the three `cd?n` files 8 × 32, 32 × 8 and
/// 8 × 8 (their pHYs test), every other 32 × 32.
fn pngsuite_size(name: &str) -> (u32, u32) {
    match name.get(..4) {
        Some("cdfn") => (8, 32),
        Some("cdhn") => (32, 8),
        Some("cdsn") => (8, 8),
        _ if name.starts_with('s') => {
            let side = name[1..3].parse().expect("sNN");
            (side, side)
        }
        _ => (32, 32),
    }
}

#[test]
fn pngsuite_every_x_file_refused_every_other_accepted_at_its_size() {
    let suite = files("pngsuite", &["png"]);
    assert_eq!(suite.len(), 174);
    let policy = open_policy();
    let mut refused = Vec::new();
    for (name, bytes) in &suite {
        let report = Report::from_bytes(bytes, &policy);
        if !name.starts_with('x') {
            assert!(report.is_valid(), "{name}: {:?}", report.errors);
            assert_eq!(report.dimensions(), Some(pngsuite_size(name)), "{name}");
            continue;
        }
        // The corrupted files: a damaged signature is no PNG; a bad IHDR is refused by the
        // header checks; a missing IDAT and a bad IDAT CRC lie in the image data, which only
        // `--verify decode` reads.
        let header = probe(bytes);
        let expected: Option<HeaderError> = match &name[..4] {
            "xs1n" | "xs2n" | "xs4n" | "xs7n" | "xcrn" | "xlfn" => {
                assert_eq!(header, Err(ProbeError::UnknownFormat), "{name}");
                assert_eq!(
                    report.error_texts(),
                    ["Format not allowed (unknown); allowed: jpeg, png, gif, webp, bmp"],
                    "{name}"
                );
                refused.push(name.as_str());
                continue;
            }
            "xhdn" => Some(HeaderError::BadCrc),
            "xc1n" | "xc9n" => Some(HeaderError::BadIhdr("colour type")),
            "xd0n" | "xd3n" | "xd9n" => Some(HeaderError::BadIhdr("bit depth")),
            "xdtn" | "xcsn" => None,
            other => panic!("{name}: a corrupted file this test does not know ({other})"),
        };
        match expected {
            Some(why) => {
                assert_eq!(reason(&header), Some(why), "{name}");
                assert!(!report.is_valid(), "{name}");
            }
            None => {
                assert!(report.is_valid(), "{name}: header-valid");
                let deep = Report::from_bytes(bytes, &decoding(policy));
                let texts = deep.error_texts();
                assert!(
                    texts.len() == 1 && texts[0].starts_with("Corrupt image data: "),
                    "{name}: {texts:?}"
                );
            }
        }
        refused.push(name.as_str());
    }
    assert_eq!(refused.len(), 14, "{refused:?}");
}

#[test]
fn bmp_suite_good_accepted_bad_headers_refused_questionable_documented() {
    let policy = open_policy();
    for (name, bytes) in files("bmpsuite/g", &["bmp"]) {
        let report = Report::from_bytes(&bytes, &policy);
        assert!(report.is_valid(), "g/{name}: {:?}", report.errors);
        let size = match name.as_str() {
            "pal8nonsquare.bmp" => (127, 32),
            "pal8w124.bmp" => (124, 61),
            "pal8w125.bmp" => (125, 62),
            "pal8w126.bmp" => (126, 63),
            _ => (127, 64),
        };
        assert_eq!(report.dimensions(), Some(size), "g/{name}");
    }

    // b/: the header-invalid files are refused by the header checks; `reallybig` (3,000,000
    // × 2,000,000, a valid header) by any dimension limit; the others have valid headers and
    // broken pixel data or fields no decoder reads (sizes, densities), which only decoding
    // can judge.
    let by_header = |reason: HeaderError| Some(reason);
    for (name, bytes) in files("bmpsuite/b", &["bmp"]) {
        let expected = match name.as_str() {
            "badbitcount.bmp" => by_header(HeaderError::BadBitCount(30000)),
            "badheadersize.bmp" => by_header(HeaderError::BadDibHeader(66)),
            "badpalettesize.bmp" => by_header(HeaderError::BadPaletteSize {
                colours: 305_402_420,
                bits: 8,
            }),
            "badplanes.bmp" => by_header(HeaderError::BadPlanes(30000)),
            "badwidth.bmp" => by_header(HeaderError::DimensionOutOfRange),
            "rletopdown.bmp" => by_header(HeaderError::TopDownCompressed(1)),
            "reallybig.bmp" => {
                assert_eq!(
                    Report::from_bytes(&bytes, &Policy::default()).error_texts(),
                    ["Not a JPEG (bmp)"]
                );
                let mut bmp = open_policy();
                bmp.max_width = 65535;
                bmp.max_height = 65535;
                assert_eq!(
                    Report::from_bytes(&bytes, &bmp).error_texts(),
                    [
                        "Image width exceeds maximum (3000000/65535)",
                        "Image height exceeds maximum (2000000/65535)"
                    ]
                );
                None
            }
            // Valid headers: wrong biSizeImage, absurd densities, wrong bfSize; broken RLE
            // data, a palette index out of range, pixel data cut short.
            "badbitssize.bmp" | "baddens1.bmp" | "baddens2.bmp" | "badfilesize.bmp"
            | "badrle.bmp" | "pal8badindex.bmp" | "shortfile.bmp" => None,
            other => panic!("b/{other}: not in this test's table"),
        };
        let header = probe(&bytes);
        match expected {
            Some(why) => assert_eq!(reason(&header), Some(why), "b/{name}"),
            None => assert!(header.is_ok(), "b/{name}: {header:?}"),
        }
    }

    // q/: questionable files, each verdict chosen and documented in the README.
    for (name, bytes) in files("bmpsuite/q", &["bmp"]) {
        let header = probe(&bytes);
        match name.as_str() {
            // 300 palette entries for 8 bits per pixel: more than the pixels can index.
            "pal8oversizepal.bmp" => assert_eq!(
                reason(&header),
                Some(HeaderError::BadPaletteSize {
                    colours: 300,
                    bits: 8
                }),
                "q/{name}"
            ),
            // Every other: a header the format allows (2-bit, OS/2 2.x, embedded JPEG / PNG,
            // alpha bit fields, odd masks, a 24-bit image with a 300-entry palette, profiles).
            _ => {
                let info = header.unwrap_or_else(|e| panic!("q/{name}: {e}"));
                assert_eq!((info.width, info.height), (127, 64), "q/{name}");
            }
        }
    }
}

/// Every JPEG of the fetched corpus: libjpeg-turbo's width, height and skipped bytes are
/// imgchkr's, and their verdicts agree, with no exception (the documented reasons of the
/// `differential_libjpeg` fuzz target are not needed on this corpus).
#[test]
fn real_world_jpegs_agree_with_libjpeg_turbo() {
    let corpus = files("fetched/pillow", &["jpg", "jpeg"]);
    let mut with_junk = 0;
    for (name, bytes) in &corpus {
        let ours = probe(bytes);
        let theirs = libjpeg::read_header(bytes);
        match (&ours, &theirs) {
            (Ok(info), Ok(header)) => {
                assert_eq!(
                    (info.width, info.height),
                    (header.width, header.height),
                    "{name}"
                );
                // The same bytes skipped, in the same places, counted the same.
                match info.extraneous {
                    None => assert!(header.skipped.is_empty(), "{name}: {header:?}"),
                    Some(e) => {
                        with_junk += 1;
                        let first = header.skipped[0];
                        assert_eq!((e.first, e.marker), (first.bytes, first.marker), "{name}");
                        let total: u32 = header.skipped.iter().map(|s| s.bytes).sum();
                        assert_eq!(e.total, total, "{name}");
                        assert_eq!(e.places as usize, header.skipped.len(), "{name}");
                    }
                }
            }
            (Err(_), Err(_)) => {}
            (ours, theirs) => panic!("{name}: imgchkr {ours:?}, libjpeg-turbo {theirs:?}"),
        }
    }
    // Pillow's corpus holds real files with junk between segments: `FF 00` before DQT, text
    // before DQT, a Photoshop APP13 a few bytes short, a truncated APP14.
    assert_eq!(with_junk, 4, "files with extraneous bytes");
}

/// The three JPEG classes, in real files written by others.
#[test]
fn real_world_jpeg_junk_classes_are_read_with_warnings() {
    let corpus: std::collections::HashMap<String, Vec<u8>> =
        files("fetched/pillow", &["jpg"]).into_iter().collect();
    let warnings = |name: &str| {
        let report = Report::from_bytes(&corpus[name], &open_policy());
        assert!(report.is_valid(), "{name}: {:?}", report.errors);
        report.warnings()
    };
    assert_eq!(
        warnings("jpeg_ff00_header.jpg"),
        ["Skipped 4 extraneous bytes at offset 21793 before marker 0xFFDB"]
    );
    // The issue's `expected a marker at offset 81, found 0x68`: "hello" after APP0.
    assert_eq!(
        warnings("junk_jpeg_header.jpg"),
        ["Skipped 5 extraneous bytes at offset 81 before marker 0xFFDB"]
    );
    // A Photoshop APP13 whose length falls 16 bytes short of its data.
    assert_eq!(
        warnings("photoshop-200dpi-broken.jpg"),
        ["Skipped 16 extraneous bytes at offset 4442 before marker 0xFFE1"]
    );
    let mut strict = open_policy();
    strict.strict = true;
    assert_eq!(
        Report::from_bytes(&corpus["junk_jpeg_header.jpg"], &strict).error_texts(),
        ["Invalid JPEG header: expected a marker at offset 81, found 0x68"]
    );
}

/// Every PNG of the suites: the `png` crate (which reads every chunk to the first IDAT)
/// reads what imgchkr reads.
#[test]
fn pngs_agree_with_the_png_crate() {
    for (name, bytes) in files("pngsuite", &["png"]) {
        let ours = probe(&bytes);
        let theirs = imgchkr_oracles::png(&bytes);
        match (&ours, &theirs) {
            (Ok(info), Ok(dims)) => assert_eq!((info.width, info.height), *dims, "{name}"),
            (Err(_), Err(_)) => {}
            // P1: the png crate reads every chunk up to the first IDAT; a missing IDAT is
            // only found there (imgchkr: `--verify decode`).
            (Ok(_), Err(_)) if name.starts_with("xdtn") => {}
            (ours, theirs) => panic!("{name}: imgchkr {ours:?}, png {theirs:?}"),
        }
    }
}

/// Every GIF of the fetched corpus: the canvas imgchkr reports is the one a browser
/// allocates from the `gif` crate's reading of the screen and the first frame.
#[test]
fn gifs_agree_with_the_gif_crate() {
    let mut bombs = 0;
    for (name, bytes) in files("fetched/pillow", &["gif"]) {
        let ours = probe(&bytes);
        let theirs = imgchkr_oracles::gif(&bytes);
        match (&ours, &theirs) {
            (Ok(info), Ok(gif)) => {
                assert_eq!((info.width, info.height), gif.canvas(), "{name}");
                bombs += usize::from(gif.canvas() != gif.screen);
            }
            (Err(_), Err(_)) => {}
            // G1: the gif crate fails after the first image descriptor, on the frame's data
            // or for want of a colour table; the descriptor imgchkr read is fine.
            (Ok(info), Err(_)) if name == "decompression_bomb.gif" => {
                assert_eq!((info.width, info.height), (65535, 66601), "{name}");
                bombs += 1;
            }
            (Ok(_), Err(e)) if name == "no_palette.gif" && e.contains("color table") => {}
            (ours, theirs) => panic!("{name}: imgchkr {ours:?}, gif {theirs:?}"),
        }
    }
    assert_eq!(bombs, 1, "files whose first frame reaches past the screen");
}

/// Every WebP of the fetched corpus: libwebp's `WebPGetFeatures` reads what imgchkr reads.
#[test]
fn webps_agree_with_libwebp() {
    let mut corpus = files("fetched/pillow", &["webp"]);
    corpus.extend(files("fetched/go-webp", &["webp"]));
    assert!(corpus.len() >= 25);
    for (name, bytes) in corpus {
        let ours = probe(&bytes);
        let theirs = imgchkr_oracles::webp(&bytes);
        match (&ours, theirs) {
            (Ok(info), Some(dims)) => {
                assert_eq!(info.format, Format::Webp);
                assert_eq!((info.width, info.height), dims, "{name}");
            }
            (Err(_), None) => {}
            (ours, theirs) => panic!("{name}: imgchkr {ours:?}, libwebp {theirs:?}"),
        }
    }
}
