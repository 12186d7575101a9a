//! Helpers shared by the bench binaries: where criterion writes, and reading its medians back.
#![allow(dead_code)] // each bench binary uses a different part

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use criterion::Criterion;

/// `target/criterion` (or `$CARGO_TARGET_DIR/criterion`).
pub fn criterion_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target.join("criterion")
}

/// The median (ns) criterion recorded for `group/function` since `since` (criterion writes
/// `/` in names as `_`).
pub fn median_ns(dir: &Path, group: &str, function: &str, since: SystemTime) -> Option<f64> {
    let clean = |s: &str| s.replace('/', "_");
    let path = dir
        .join(clean(group))
        .join(clean(function))
        .join("new/estimates.json");
    let modified = std::fs::metadata(&path).ok()?.modified().ok()?;
    if modified < since {
        return None;
    }
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    json["median"]["point_estimate"].as_f64()
}

/// Formats nanoseconds for a table.
pub fn ns(t: f64) -> String {
    if t >= 10_000.0 {
        format!("{:.1} µs", t / 1000.0)
    } else {
        format!("{t:.0} ns")
    }
}

/// The settings of the in-memory header benches (calls of nanoseconds): 30 samples of 0.5 s,
/// writing to [`criterion_dir`]; command-line arguments still apply.
pub fn header_criterion() -> Criterion {
    Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_millis(200))
        .measurement_time(Duration::from_millis(500))
        .nresamples(10_000)
        .output_directory(&criterion_dir())
        .configure_from_args()
}

/// Before timing: whether each reader (`readers`, by name) gives each input's true
/// dimensions. `truth` names an input and gives its dimensions; `read(input, reader)` is the
/// reader's answer. Prints the wrong answers; returns `[input][reader]`.
pub fn check_answers<I>(
    inputs: &[I],
    readers: &[&str],
    truth: impl Fn(&I) -> (&str, (u32, u32)),
    read: impl Fn(&I, usize) -> Option<(u32, u32)>,
) -> Vec<Vec<bool>> {
    println!("\nCorrectness (expected dimensions vs each reader's answer):");
    inputs
        .iter()
        .map(|input| {
            let (name, (width, height)) = truth(input);
            (0..readers.len())
                .map(|reader| {
                    let got = read(input, reader);
                    let ok = got == Some((width, height));
                    if !ok {
                        println!(
                            "  {name:<24} {:<13} WRONG: {got:?} (expected {width}x{height})",
                            readers[reader]
                        );
                    }
                    ok
                })
                .collect()
        })
        .collect()
}

/// After timing: the table of each reader's median per input (`group_prefix/<input>` in
/// criterion) and imgchkr's (the first reader's) speed-up over the fastest reader that read the
/// input correctly. `inputs` are (name, bytes); `correct` is [`check_answers`]' result.
pub fn ratio_table(
    dir: &Path,
    since: SystemTime,
    group_prefix: &str,
    readers: &[&str],
    inputs: &[(&str, usize)],
    correct: &[Vec<bool>],
) {
    let mut header = String::from("| input | bytes |");
    let mut rule = String::from("|---|---:|");
    for name in readers {
        header += &format!(" {name} |");
        rule += "---:|";
    }
    header += " fastest correct peer | imgchkr vs it |";
    rule += "---|---:|";
    println!("\nMedians per call (✗ = wrong answer):\n{header}\n{rule}");
    for (&(input, bytes), ok) in inputs.iter().zip(correct) {
        let group = format!("{group_prefix}/{input}");
        let times: Vec<Option<f64>> = readers
            .iter()
            .map(|name| median_ns(dir, &group, name, since))
            .collect();
        if times.iter().all(Option::is_none) {
            continue;
        }
        let mut row = format!("| {input} | {bytes} |");
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
            .zip(readers)
            .skip(1)
            .filter_map(|((t, ok), name)| t.filter(|_| *ok).map(|t| (t, name)))
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
