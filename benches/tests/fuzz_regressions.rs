//! Inputs the fuzz targets (fuzz/) found, kept as plain tests. Each names the target, the
//! input (hex) and the expected behaviour; a failing case here is a bug for imgchkr-core.

use imgchkr_core::probe::{Probe, Step};

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

/// incremental_feed, input `00 FF D8` (empty schedule, image `FF D8`): after
/// `feed(0, [FF D8])` returns `Need { offset: 2, len: 10 }` (it carries the two bytes),
/// `step()` says `Need { offset: 0, len: 12 }`: it ignores the carried partial token.
/// Not a wrong answer (re-feeding from 0 works), but `step()` should agree with the `Need`
/// `feed` last returned, as its doc ("what the probe needs next") promises.
#[test]
fn step_agrees_with_the_last_need() {
    let image = hex("FF D8");
    let mut probe = Probe::new();
    let fed = probe.feed(0, &image);
    assert!(
        matches!(fed, Step::Need(n) if n.offset == 2 && n.len == 10),
        "{fed:?}"
    );
    assert_eq!(
        probe.step(),
        fed,
        "step() restates the whole token, not the missing part"
    );
}

/// probe, input `GIF89a 10 00 10 00 00 00 00`: the probe now reads GIF dimensions (16×16);
/// found because the first oracle assumed only JPEG answers. Kept as a guard.
#[test]
fn gif_logical_screen_is_read() {
    let gif = hex("47 49 46 38 39 61 10 00 10 00 00 00 00");
    let info = imgchkr_core::probe(&gif).expect("a GIF header");
    assert_eq!((info.width, info.height), (16, 16));
    assert!(info.jpeg.is_none());
}
