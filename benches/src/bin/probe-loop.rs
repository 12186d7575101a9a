//! `probe-loop INPUT-NAME [N]`: probes one generated input N times (default 1,000,000), for
//! profiling with `valgrind --tool=callgrind` or `perf`.

fn main() {
    let mut args = std::env::args().skip(1);
    let name = args.next().unwrap_or_else(|| "baseline-64x64".to_owned());
    let n: u64 = args
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1_000_000);
    // The JPEG inputs of the probe bench, then the other formats of the formats bench.
    let bytes = imgchkr_benches::inputs()
        .into_iter()
        .find(|i| i.name == name)
        .map(|i| i.bytes)
        .or_else(|| {
            imgchkr_benches::format_inputs()
                .into_iter()
                .find(|i| i.name == name)
                .map(|i| i.bytes)
        })
        .expect("no such input");
    let mut sum = 0u64;
    for _ in 0..n {
        let info = imgchkr_core::probe(std::hint::black_box(&bytes)).expect("probe");
        sum += u64::from(info.width);
    }
    println!("{sum}");
}
