//! Header probing on in-memory buffers: `imgchkr_core::probe` against the header readers of
//! `imagesize`, `image`, `jpeg-decoder` and `zune-jpeg`, on the same generated inputs.
//!
//! Before timing, each reader's answer is checked against the true dimensions; after timing,
//! a table gives each reader's median and imgchkr's speed-up over the fastest peer that read
//! the input correctly.

mod common;

use std::hint::black_box;
use std::time::SystemTime;

use common::{check_answers, criterion_dir, header_criterion, median_ns, ns};
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
    let mut header = String::from("| input | bytes |");
    let mut rule = String::from("|---|---:|");
    for (name, _) in READERS {
        header += &format!(" {name} |");
        rule += "---:|";
    }
    header += " fastest correct peer | imgchkr speed-up |";
    rule += "---|---:|";
    println!("\nMedians per call (✗ = wrong answer):\n{header}\n{rule}");
    for (input, ok) in inputs.iter().zip(correct) {
        let group = format!("probe/{}", input.name);
        let times: Vec<Option<f64>> = READERS
            .iter()
            .map(|(name, _)| median_ns(dir, &group, name, since))
            .collect();
        if times.iter().all(Option::is_none) {
            continue;
        }
        let mut row = format!("| {} | {} |", input.name, input.bytes.len());
        for (t, ok) in times.iter().zip(ok) {
            let mark = if *ok { "" } else { " ✗" };
            row += &match t {
                Some(t) => format!(" {}{mark} |", ns(*t)),
                None => format!(" –{mark} |"),
            };
        }
        let fastest = times
            .iter()
            .zip(ok)
            .zip(READERS)
            .skip(1)
            .filter_map(|((t, ok), (name, _))| t.filter(|_| *ok).map(|t| (t, name)))
            .min_by(|a, b| a.0.total_cmp(&b.0));
        match (times[0], fastest) {
            (Some(own), Some((peer, name))) => {
                row += &format!(" {name} | {:.1}× |", peer / own);
            }
            _ => row += " – | – |",
        }
        println!("{row}");
    }
}
