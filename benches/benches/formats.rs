//! Header probing of the other formats on in-memory buffers: `imgchkr_core::probe` against
//! `imagesize::blob_size` and `image::ImageReader::with_format(..).into_dimensions()`, on PNG,
//! GIF, WebP (lossy `VP8 `, lossless `VP8L`, extended `VP8X`) and BMP inputs generated at
//! start-up (`imgchkr_benches::format_inputs`).
//!
//! Before timing, each reader's answer is checked against the true dimensions; after timing,
//! a table gives each reader's median and imgchkr's speed-up over the fastest correct peer.

mod common;

use std::hint::black_box;
use std::time::SystemTime;

use common::{check_answers, criterion_dir, header_criterion, ratio_table};
use imgchkr_benches::{FormatInput, format_inputs, image_as, imagesize, imgchkr};

/// The readers: imgchkr first, then the peers.
const READERS: [&str; 3] = ["imgchkr", "imagesize", "image"];

fn read(reader: &str, input: &FormatInput, bytes: &[u8]) -> Option<(u32, u32)> {
    match reader {
        "imgchkr" => imgchkr(bytes),
        "imagesize" => imagesize(bytes),
        _ => image_as(input.format, bytes),
    }
}

fn check(inputs: &[FormatInput]) -> Vec<Vec<bool>> {
    check_answers(
        inputs,
        &READERS,
        |input| (input.name, (input.width, input.height)),
        |input, reader| read(READERS[reader], input, &input.bytes),
    )
}

fn main() {
    let inputs = format_inputs();
    let correct = check(&inputs);
    let dir = criterion_dir();
    let start = SystemTime::now();
    let mut c = header_criterion();
    for input in &inputs {
        let mut group = c.benchmark_group(format!("formats/{}", input.name));
        // Each closure names its reader directly: no dispatch inside the timed loop.
        group.bench_function("imgchkr", |b| b.iter(|| imgchkr(black_box(&input.bytes))));
        group.bench_function("imagesize", |b| {
            b.iter(|| imagesize(black_box(&input.bytes)))
        });
        group.bench_function("image", |b| {
            b.iter(|| image_as(input.format, black_box(&input.bytes)))
        });
        group.finish();
    }
    c.final_summary();
    report(&dir, &inputs, &correct, start);
}

fn report(dir: &std::path::Path, inputs: &[FormatInput], correct: &[Vec<bool>], since: SystemTime) {
    let rows: Vec<(&str, usize)> = inputs.iter().map(|i| (i.name, i.bytes.len())).collect();
    let readers = READERS.to_vec();
    ratio_table(dir, since, "formats", &readers, &rows, correct);
}
