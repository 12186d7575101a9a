//! Opt-in deep verification: a full decode after the header checks (feature `decode`, which
//! the crate's own dev-dependency turns on for its tests, so `cargo test -p imgchkr-core`
//! runs these).

mod common;

use std::io::Cursor;

use imgchkr_core::{Policy, Report, Verify};

fn decoding() -> Policy {
    let mut policy = Policy::default();
    policy.verify = Verify::Decode;
    policy.formats = "jpeg,png".parse().unwrap();
    policy
}

fn png(width: u32, height: u32) -> Vec<u8> {
    let image = image::RgbImage::from_fn(width, height, |x, y| image::Rgb([x as u8, y as u8, 7]));
    let mut out = Cursor::new(Vec::new());
    image.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

#[test]
fn intact_images_pass_and_corrupt_data_fails_after_the_header_checks() {
    let jpeg = common::encode(64, 48, 80, image::ColorType::Rgb8);
    assert!(Report::from_bytes(&jpeg, &decoding()).is_valid());
    let good = png(64, 48);
    assert!(Report::from_bytes(&good, &decoding()).is_valid());

    // Damage the compressed pixel data, leave the header intact.
    let mut bad = good.clone();
    let idat = bad.windows(4).position(|w| w == b"IDAT").unwrap();
    for b in &mut bad[idat + 8..idat + 40] {
        *b ^= 0x5A;
    }
    let texts = Report::from_bytes(&bad, &decoding()).error_texts();
    assert_eq!(texts.len(), 1, "{texts:?}");
    assert!(texts[0].starts_with("Corrupt image data: "), "{texts:?}");
    // Header-only validation does not look at pixel data.
    assert!(
        Report::from_bytes(&bad, &{
            let mut p = decoding();
            p.verify = Verify::Header;
            p
        })
        .is_valid()
    );

    // A JPEG cut off inside its scan: the header is whole, the data is not.
    let cut = &jpeg[..jpeg.len() / 2];
    let texts = Report::from_bytes(cut, &decoding()).error_texts();
    assert_eq!(texts.len(), 1, "{texts:?}");
    assert!(texts[0].starts_with("Corrupt image data: "), "{texts:?}");
}

#[test]
fn header_failures_skip_the_decode() {
    // Too wide: the decode never runs, so only the header's failures are reported.
    let wide = png(1001, 2);
    assert_eq!(
        Report::from_bytes(&wide, &decoding()).error_texts(),
        ["Image width exceeds maximum (1001/1000)"]
    );
}
