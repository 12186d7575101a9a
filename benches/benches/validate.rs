//! Whole-file validation of files on disk (a tempdir, page cache warm):
//! `imgchkr_core::validate_file` (positioned reads of only the ranges the probe asks for)
//! against `std::fs::read` + each peer, and against the peers' own streaming readers.
//!
//! Before timing, prints how many bytes each approach reads from the file.

use std::fs::File;
mod common;

use std::hint::black_box;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use common::{criterion_dir, median_ns, ns};
use criterion::Criterion;
use imgchkr_benches::{READERS, inputs};
use imgchkr_core::{Policy, validate_file};

/// A file that counts the bytes the OS hands out.
struct Counting {
    file: File,
    read: u64,
}

impl Read for Counting {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.file.read(buf)?;
        self.read += n as u64;
        Ok(n)
    }
}

impl Seek for Counting {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        self.file.seek(pos)
    }
}

fn counting(path: &Path) -> BufReader<Counting> {
    BufReader::new(Counting {
        file: File::open(path).expect("open"),
        read: 0,
    })
}

/// Streaming peers: each reads through a `BufReader<File>` (8 KiB) as it would in practice.
type Streaming = (
    &'static str,
    fn(&mut BufReader<Counting>) -> Option<(u32, u32)>,
);

const STREAMING: [Streaming; 3] = [
    ("imagesize-stream", |r| {
        let s = imagesize::reader_size(r).ok()?;
        Some((s.width as u32, s.height as u32))
    }),
    ("image-stream", |r| {
        image::ImageReader::with_format(r, image::ImageFormat::Jpeg)
            .into_dimensions()
            .ok()
    }),
    ("jpeg-decoder-stream", |r| {
        let mut d = jpeg_decoder::Decoder::new(r);
        d.read_info().ok()?;
        d.info().map(|i| (u32::from(i.width), u32::from(i.height)))
    }),
];

fn main() {
    let dir = tempfile::tempdir().expect("tempdir");
    let policy = Policy::default();
    let files: Vec<(String, PathBuf, u64, (u32, u32))> = inputs()
        .into_iter()
        .filter(|i| i.name != "progressive-1024x768")
        .map(|i| {
            let path = dir.path().join(format!("{}.jpg", i.name));
            std::fs::write(&path, &i.bytes).expect("write");
            (
                i.name.to_owned(),
                path,
                i.bytes.len() as u64,
                (i.width, i.height),
            )
        })
        .collect();

    println!("\nBytes read from the file (and whether the dimensions were right):");
    println!(
        "| file | size | imgchkr validate_file | fs::read + any peer | imagesize-stream | image-stream | jpeg-decoder-stream |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for (name, path, size, dims) in &files {
        let report = validate_file(path, name, &policy);
        let own = format!(
            "{}{}",
            report.bytes_read,
            if report.dimensions() == Some(*dims) {
                ""
            } else {
                " ✗"
            }
        );
        let mut row = format!("| {name} | {size} | {own} | {size} |");
        for (_, read) in STREAMING {
            let mut r = counting(path);
            let got = read(&mut r);
            let mark = if got == Some(*dims) { "" } else { " ✗" };
            row += &format!(" {}{mark} |", r.get_ref().read);
        }
        println!("{row}");
    }

    let start = SystemTime::now();
    let mut c = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(200))
        .measurement_time(Duration::from_millis(500))
        .output_directory(&criterion_dir())
        .configure_from_args();
    for (name, path, _, _) in &files {
        let mut group = c.benchmark_group(format!("validate/{name}"));
        group.bench_function("imgchkr-validate_file", |b| {
            b.iter(|| validate_file(black_box(path), name, &policy))
        });
        for (peer, read) in READERS {
            group.bench_function(format!("fs-read+{peer}"), |b| {
                b.iter(|| read(&std::fs::read(black_box(path)).expect("read")))
            });
        }
        for (peer, read) in STREAMING {
            group.bench_function(peer, |b| b.iter(|| read(&mut counting(black_box(path)))));
        }
        group.finish();
    }
    c.final_summary();

    let mut functions = vec!["imgchkr-validate_file".to_owned()];
    functions.extend(READERS.iter().map(|(p, _)| format!("fs-read+{p}")));
    functions.extend(STREAMING.iter().map(|(p, _)| p.to_string()));
    println!("\nMedians per validation (speed-up = approach's median / imgchkr's):");
    println!("| file | approach | median | imgchkr speed-up |\n|---|---|---:|---:|");
    for (name, ..) in &files {
        let group = format!("validate/{name}");
        let own = median_ns(&criterion_dir(), &group, &functions[0], start);
        for f in &functions {
            if let Some(t) = median_ns(&criterion_dir(), &group, f, start) {
                let ratio = own.map_or("–".to_owned(), |o| format!("{:.1}×", t / o));
                println!("| {name} | {f} | {} | {ratio} |", ns(t));
            }
        }
    }
}
