//! Header probing on in-memory buffers: `imgchkr_core::probe` against the header readers of
//! `imagesize`, `image`, `jpeg-decoder` and `zune-jpeg`, on the same generated inputs.
//!
//! Before timing, each reader's answer is checked against the true dimensions; after timing,
//! a table gives each reader's median and imgchkr's speed-up over the fastest peer that read
//! the input correctly.

mod common;

use std::hint::black_box;
use std::time::SystemTime;

use common::{check_answers, criterion_dir, header_criterion, ratio_table};
use imgchkr_benches::{Input, READERS, inputs};

fn check(inputs: &[Input]) -> Vec<Vec<bool>> {
    let names: Vec<&str> = READERS.iter().map(|(name, _)| *name).collect();
    check_answers(
        inputs,
        &names,
        |input| (input.name, (input.width, input.height)),
        |input, reader| (READERS[reader].1)(&input.bytes),
    )
}

fn main() {
    let inputs = inputs();
    let correct = check(&inputs);
    let dir = criterion_dir();
    let start = SystemTime::now();
    let mut c = header_criterion();
    for input in &inputs {
        let mut group = c.benchmark_group(format!("probe/{}", input.name));
        for (name, read) in READERS {
            group.bench_function(name, |b| b.iter(|| read(black_box(&input.bytes))));
        }
        group.finish();
    }
    c.final_summary();
    report(&dir, &inputs, &correct, start);
}

fn report(dir: &std::path::Path, inputs: &[Input], correct: &[Vec<bool>], since: SystemTime) {
    let rows: Vec<(&str, usize)> = inputs.iter().map(|i| (i.name, i.bytes.len())).collect();
    let readers = READERS.iter().map(|(name, _)| *name).collect::<Vec<_>>();
    ratio_table(dir, since, "probe", &readers, &rows, correct);
}
