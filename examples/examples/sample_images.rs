//! Writes the quick start's sample images, `examples/images/small.jpg` (640 × 480: valid) and
//! `examples/images/large.jpg` (1800 × 1200: fails both dimension checks), as the smallest
//! real baseline JPEGs: one grey component, one quantization table, Huffman tables of a single
//! one-bit code each, and a scan of 2 bits per 8 × 8 block (every block the flat mid grey).
//! Any JPEG decoder decodes them; they weigh 1.3 KiB and 8.4 KiB.
//!
//! Run from the workspace root to regenerate them (the tests check the committed files are
//! exactly what this writes):
//!
//! ```text
//! cargo run --example sample_images -- examples/images
//! ```

use std::path::PathBuf;
use std::process::ExitCode;

/// A baseline JPEG of `width` × `height` flat grey pixels.
fn flat_grey_jpeg(width: u16, height: u16) -> Vec<u8> {
    let mut out = vec![0xFF, 0xD8]; // SOI
    // APP0 JFIF 1.01, no thumbnail, 1:1 aspect.
    out.extend_from_slice(&[0xFF, 0xE0, 0x00, 0x10]);
    out.extend_from_slice(b"JFIF\0");
    out.extend_from_slice(&[1, 1, 0, 0, 1, 0, 1, 0, 0]);
    // DQT: table 0, 8-bit, all ones (no coefficient is ever non-zero anyway).
    out.extend_from_slice(&[0xFF, 0xDB, 0x00, 0x43, 0x00]);
    out.extend_from_slice(&[1; 64]);
    // SOF0: 8-bit samples, height, width, one component (id 1, 1×1 sampling, table 0).
    out.extend_from_slice(&[0xFF, 0xC0, 0x00, 0x0B, 8]);
    out.extend_from_slice(&height.to_be_bytes());
    out.extend_from_slice(&width.to_be_bytes());
    out.extend_from_slice(&[1, 1, 0x11, 0]);
    // DHT: DC table 0 and AC table 0, each one code of length 1 ("0"): DC difference
    // category 0, and end-of-block.
    for class in [0x00, 0x10] {
        out.extend_from_slice(&[0xFF, 0xC4, 0x00, 0x14, class, 1]);
        out.extend_from_slice(&[0; 15]);
        out.push(0x00);
    }
    // SOS: one component, tables 0/0, spectral selection 0..63, no approximation.
    out.extend_from_slice(&[0xFF, 0xDA, 0x00, 0x08, 1, 1, 0x00, 0, 63, 0]);
    // Each block: "0" (no DC change) then "0" (end of block). Zero bytes need no stuffing;
    // the last byte is padded with 1 bits, as T.81 F.1.2.3 says.
    let blocks = usize::from(width.div_ceil(8)) * usize::from(height.div_ceil(8));
    let bits = blocks * 2;
    out.extend(std::iter::repeat_n(0u8, bits / 8));
    if !bits.is_multiple_of(8) {
        out.push(0xFF >> (bits % 8));
    }
    out.extend_from_slice(&[0xFF, 0xD9]); // EOI
    out
}

fn main() -> ExitCode {
    let dir = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "examples/images".into()),
    );
    if let Err(e) = std::fs::create_dir_all(&dir) {
        eprintln!("cannot create {}: {e}", dir.display());
        return ExitCode::from(2);
    }
    for (name, width, height) in [("small.jpg", 640, 480), ("large.jpg", 1800, 1200)] {
        let path = dir.join(name);
        let bytes = flat_grey_jpeg(width, height);
        if let Err(e) = std::fs::write(&path, &bytes) {
            eprintln!("cannot write {}: {e}", path.display());
            return ExitCode::from(2);
        }
        println!(
            "{}: {width}x{height}, {} bytes",
            path.display(),
            bytes.len()
        );
    }
    ExitCode::SUCCESS
}
