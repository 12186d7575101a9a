//! `probe-loop INPUT-NAME [N]`: probes one generated input N times (default 1,000,000), for
//! profiling with `valgrind --tool=callgrind` or `perf`.
//!
//! `probe-loop all [N]`: probes every input N times, each in its own function
//! `probe_loop::run::<K>` (K: the input's index, JPEG inputs first, then the other formats),
//! so that `valgrind --tool=callgrind --collect-atstart=no --toggle-collect='*probe_loop::run*'`
//! counts the instructions of each input's probes apart from the input generation.

fn main() {
    let mut args = std::env::args().skip(1);
    let name = args.next().unwrap_or_else(|| "baseline-64x64".to_owned());
    let n: u64 = args
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1_000_000);
    // The JPEG inputs of the probe bench, then the other formats of the formats bench.
    let mut inputs: Vec<(&str, Vec<u8>)> = imgchkr_benches::inputs()
        .into_iter()
        .map(|i| (i.name, i.bytes))
        .collect();
    inputs.extend(
        imgchkr_benches::format_inputs()
            .into_iter()
            .map(|i| (i.name, i.bytes)),
    );
    if name == "all" {
        let runs: [fn(&[u8], u64) -> u64; 11] = [
            run::<0>, run::<1>, run::<2>, run::<3>, run::<4>, run::<5>, run::<6>, run::<7>,
            run::<8>, run::<9>, run::<10>,
        ];
        for (k, (name, bytes)) in inputs.iter().enumerate() {
            let run = runs.get(k).expect("one runner per input");
            println!("run::<{k}> {name} {}", run(bytes, n));
        }
        return;
    }
    let bytes = &inputs
        .iter()
        .find(|(n, _)| *n == name)
        .expect("no such input")
        .1;
    println!("{}", run::<0>(bytes, n));
}

/// Probes `bytes` `n` times; the sum of the widths.
#[inline(never)]
fn run<const K: usize>(bytes: &[u8], n: u64) -> u64 {
    let mut sum = 0u64;
    for _ in 0..n {
        let info = imgchkr_core::probe(std::hint::black_box(bytes)).expect("probe");
        sum += u64::from(info.width);
    }
    sum
}
