//! What deep verification costs: whole-file validation (`imgchkr_core::validate_file`, files
//! in a tempdir, page cache warm) with `Verify::Header` (the default: header bytes only)
//! against `Verify::Decode` (`--verify decode`: after the header checks pass, the whole file
//! is read and decoded, zune-jpeg strict for JPEG, `image` for the others), on the generated
//! JPEGs and a PNG.
//!
//! The policy allows JPEG and PNG up to 4000 × 3000 so that every input passes the header
//! checks and the decode really runs (the default 1000 px limit would stop the camera file
//! before it). Before timing, each input is checked to pass both ways, and a truncated copy
//! to fail only with `Decode`: the decode is really done.

mod common;

use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use common::{criterion_dir, median_ns, ns};
use criterion::Criterion;
use imgchkr_benches::{inputs, png};
use imgchkr_core::probe::Format;
use imgchkr_core::{Formats, Policy, Verify, validate_file};

fn policy(verify: Verify) -> Policy {
    let mut policy = Policy::default();
    policy.max_width = 4000;
    policy.max_height = 3000;
    policy.formats = Formats::of(&[Format::Jpeg, Format::Png]);
    policy.verify = verify;
    policy
}

const MODES: [(&str, Verify); 2] = [("header", Verify::Header), ("decode", Verify::Decode)];

fn main() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut files: Vec<(String, PathBuf, usize)> = inputs()
        .into_iter()
        .filter(|i| {
            matches!(
                i.name,
                "baseline-64x64" | "progressive-1024x768" | "camera-4000x3000"
            )
        })
        .map(|i| (i.name.to_owned(), i.bytes))
        .chain([("png-1024x768".to_owned(), png(1024, 768))])
        .map(|(name, bytes)| {
            let path = dir.path().join(&name);
            std::fs::write(&path, &bytes).expect("write");
            (name, path, bytes.len())
        })
        .collect();
    files.sort_by_key(|f| f.2);

    println!("\nChecks (both modes pass every input; a truncated copy fails only with decode):");
    for (name, path, size) in &files {
        for (mode, verify) in MODES {
            let report = validate_file(path, name, &policy(verify));
            assert!(report.is_valid(), "{name} {mode}: {:?}", report.errors);
            println!(
                "  {name:<22} {mode:<6} valid, {} of {size} bytes read",
                report.bytes_read
            );
        }
        let bytes = std::fs::read(path).expect("read");
        let cut = dir.path().join(format!("{name}.cut"));
        std::fs::write(&cut, &bytes[..bytes.len() * 3 / 4]).expect("write");
        let header = validate_file(&cut, name, &policy(Verify::Header));
        assert!(header.is_valid(), "{name} cut, header: {:?}", header.errors);
        let decode = validate_file(&cut, name, &policy(Verify::Decode));
        let texts = decode.error_texts();
        assert!(
            texts.len() == 1 && texts[0].starts_with("Corrupt image data: "),
            "{name} cut, decode: {texts:?}"
        );
        println!("  {name:<22} cut    decode says {:?}", texts[0]);
    }

    let start = SystemTime::now();
    let mut c = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2))
        .output_directory(&criterion_dir())
        .configure_from_args();
    for (name, path, _) in &files {
        let mut group = c.benchmark_group(format!("decode/{name}"));
        for (mode, verify) in MODES {
            let policy = policy(verify);
            group.bench_function(mode, |b| {
                b.iter(|| validate_file(black_box(path), name, &policy))
            });
        }
        group.finish();
    }
    c.final_summary();

    println!("\nMedians per validation (ratio = decode / header):");
    println!("| file | bytes | header | decode | decode / header |\n|---|---:|---:|---:|---:|");
    for (name, _, size) in &files {
        let group = format!("decode/{name}");
        let t = |mode| median_ns(&criterion_dir(), &group, mode, start);
        match (t("header"), t("decode")) {
            (Some(h), Some(d)) => {
                println!(
                    "| {name} | {size} | {} | {} | {:.0}× |",
                    ns(h),
                    ns(d),
                    d / h
                );
            }
            (h, d) => println!("| {name} | {size} | {h:?} | {d:?} | – |"),
        }
    }
}
