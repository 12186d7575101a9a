//! (Named `incremental_feed`: cargo forbids a bin called `incremental`, a build-dir name.)
//! Arbitrary bytes and an arbitrary feeding schedule: the incremental `Probe` gives the same
//! answer as the whole-buffer `probe`, whether chunks follow its `Need`s exactly, start early
//! (overlap), start late (a gap: ignored, asked again), or repeat.
//!
//! Input layout: byte 0 = n, the schedule length (n % 32 entries); then n schedule bytes; the
//! rest is the image. Each schedule byte s: low 5 bits = chunk length - 1 (1..=32, or the whole
//! rest when 31); bits 5-6 = mode (0 exact, 1 start up to 7 bytes early, 2 start 1-4 bytes late,
//! 3 feed a stale chunk from offset 0 first); bit 7 = also call `step()`.
#![no_main]

use imgchkr_core::probe::{Probe, Step};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&n, rest)) = data.split_first() else {
        return;
    };
    let n = usize::from(n % 32).min(rest.len());
    let (schedule, image) = rest.split_at(n);
    let want = imgchkr_core::probe(image);

    let mut probe = Probe::new();
    let mut need = 0usize;
    let mut i = 0usize;
    // Bound the loop: each exact feed makes progress, at most 3 stalls per progress step.
    for _ in 0..(image.len() + 2) * 4 + 64 {
        if need >= image.len() {
            break;
        }
        let s = if schedule.is_empty() {
            0xFF
        } else {
            schedule[i % schedule.len()]
        };
        i += 1;
        let len = if s & 0x1F == 0x1F {
            image.len()
        } else {
            usize::from(s & 0x1F) + 1
        };
        let start = match (s >> 5) & 3 {
            1 => need.saturating_sub(usize::from(s % 7) + 1),
            2 => need + usize::from(s % 4) + 1,
            3 => {
                // A stale chunk from the start, then the exact one.
                let end = len.min(image.len());
                let _ = probe.feed(0, &image[..end]);
                need
            }
            _ => need,
        };
        let start = start.min(image.len());
        let end = start.saturating_add(len).min(image.len());
        let step = probe.feed(start as u64, &image[start..end]);
        if s & 0x80 != 0 {
            // `step()` ignores a partly carried token: it restates the whole token
            // (`pos..pos+want`) where `feed` asked for only the missing tail (reported; see
            // benches/tests/fuzz_regressions.rs). Both must end at the same byte.
            match (probe.step(), step) {
                (Step::Need(a), Step::Need(b)) => {
                    assert!(a.offset <= b.offset && a.end() == b.end(), "{a:?} vs {b:?}");
                }
                (a, b) => assert_eq!(a, b),
            }
        }
        match step {
            Step::Done(got) => {
                assert_eq!(got, want, "schedule {schedule:02X?}");
                // Further feeding returns the answer again.
                assert_eq!(probe.feed(0, image), Step::Done(got));
                return;
            }
            Step::Need(next) => {
                assert!(next.len > 0);
                // The probe never goes back: bytes it has taken stay taken.
                let next = usize::try_from(next.offset).unwrap_or(usize::MAX);
                assert!(next >= need, "went back from {need} to {next}");
                need = next;
            }
        }
    }
    // Schedules that only feed late chunks stall: finish with exact feeds of the rest.
    while need < image.len() {
        match probe.feed(need as u64, &image[need..]) {
            Step::Done(got) => {
                assert_eq!(got, want, "schedule {schedule:02X?}");
                return;
            }
            Step::Need(next) => {
                let next = usize::try_from(next.offset).unwrap_or(usize::MAX);
                assert!(next > need, "no progress at {need}");
                need = next;
            }
        }
    }
    assert_eq!(probe.finish(), want, "schedule {schedule:02X?}");
});
