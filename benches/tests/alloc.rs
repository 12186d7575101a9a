//! The probe never touches the heap: zero allocations per `probe()` call, per incremental
//! `Probe` run (any chunking, overlapping chunks included), and per `read_header` of a file;
//! on the JPEG bench inputs, on JPEGs with extraneous bytes (the resynchronisation path) and
//! on the PNG, GIF, WebP and BMP bench inputs.

// A counting global allocator needs `unsafe impl GlobalAlloc`; it only forwards to `System`.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use imgchkr_core::probe::{Probe, Step};

struct Counting;

thread_local! {
    /// Allocations made by this thread (other test threads do not disturb the count).
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: every method forwards to `System` unchanged; the thread-local counter is a
// const-initialised `Cell` with no destructor, so touching it cannot allocate or recurse.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// How many allocations `f` makes on this thread.
fn allocations<T>(f: impl FnOnce() -> T) -> (T, u64) {
    let before = ALLOCATIONS.with(Cell::get);
    let out = f();
    (out, ALLOCATIONS.with(Cell::get) - before)
}

/// Feeds `bytes` in chunks of `chunk` bytes from wherever the probe asks; with `overlap`,
/// each chunk starts `overlap` bytes before the needed offset.
fn incremental(
    bytes: &[u8],
    chunk: usize,
    overlap: usize,
) -> Result<imgchkr_core::ImageInfo, imgchkr_core::ProbeError> {
    let mut probe = Probe::new();
    let mut at = 0usize;
    loop {
        if at >= bytes.len() {
            return probe.finish();
        }
        let start = at.saturating_sub(overlap);
        let end = (at + chunk).min(bytes.len());
        match probe.feed(start as u64, &bytes[start..end]) {
            Step::Done(result) => return result,
            Step::Need(need) => at = need.offset as usize,
        }
    }
}

#[test]
fn the_allocator_counts() {
    let (v, n) = allocations(|| vec![1u8; 100]);
    assert_eq!((v.len(), n), (100, 1));
}

/// The JPEG bench inputs, the baseline with extraneous bytes in three places (text after
/// APP0, `FF 00`, a segment cut 3 bytes short), and the other formats' bench inputs.
fn all_inputs() -> Vec<imgchkr_benches::Input> {
    let mut inputs = imgchkr_benches::inputs();
    let base = imgchkr_benches::baseline(64, 64);
    let app0_end = 4 + usize::from(u16::from_be_bytes([base[4], base[5]]));
    let mut junk = base[..app0_end].to_vec();
    junk.extend_from_slice(b"hello");
    junk.extend_from_slice(&imgchkr_benches::segment(0xFE, b"x"));
    junk.extend_from_slice(&[0xFF, 0x00]);
    let mut comment = imgchkr_benches::segment(0xFE, b"a comment");
    comment[3] -= 3;
    junk.extend_from_slice(&comment);
    junk.extend_from_slice(&base[app0_end..]);
    inputs.push(imgchkr_benches::Input {
        name: "baseline-junk",
        bytes: junk,
        width: 64,
        height: 64,
    });
    for input in imgchkr_benches::format_inputs() {
        inputs.push(imgchkr_benches::Input {
            name: input.name,
            bytes: input.bytes,
            width: input.width,
            height: input.height,
        });
    }
    inputs
}

#[test]
fn probe_does_not_allocate() {
    let inputs = all_inputs();
    for input in &inputs {
        let want = imgchkr_core::probe(&input.bytes);
        assert_eq!(
            want.map(|i| (i.width, i.height)),
            Ok((input.width, input.height)),
            "{}",
            input.name
        );
        if input.name == "baseline-junk" {
            let skipped = want.expect("read").extraneous.expect("skipped bytes");
            assert_eq!(skipped.places, 3, "{skipped:?}");
        }

        let (_, n) = allocations(|| imgchkr_core::probe(std::hint::black_box(&input.bytes)));
        assert_eq!(n, 0, "probe() allocated on {}", input.name);

        // Truncated prefixes end in `finish()`: no allocation either.
        for cut in [0, 1, 2, 3, 5, 20, 100, 1000, 70_000] {
            let prefix = &input.bytes[..cut.min(input.bytes.len())];
            let (_, n) = allocations(|| imgchkr_core::probe(prefix));
            assert_eq!(n, 0, "probe() allocated on {} cut at {cut}", input.name);
        }

        for chunk in [1, 2, 3, 7, 40, 64, 1024, 4096, usize::MAX / 2] {
            for overlap in [0, 1, 5, 100] {
                let (got, n) = allocations(|| incremental(&input.bytes, chunk, overlap));
                assert_eq!(got, want, "{} chunk {chunk} overlap {overlap}", input.name);
                assert_eq!(
                    n, 0,
                    "Probe::feed allocated on {} (chunk {chunk}, overlap {overlap})",
                    input.name
                );
            }
        }
    }
}

#[test]
fn read_header_does_not_allocate() {
    let dir = tempfile::tempdir().expect("tempdir");
    for input in all_inputs() {
        let path = dir.path().join(input.name);
        std::fs::write(&path, &input.bytes).expect("write");
        let file = std::fs::File::open(&path).expect("open");
        let size = input.bytes.len() as u64;
        let (result, n) = allocations(|| imgchkr_core::source::read_header(&file, size));
        let (probed, bytes_read) = result.expect("read");
        assert_eq!(
            probed.map(|i| (i.width, i.height)),
            Ok((input.width, input.height))
        );
        assert_eq!(n, 0, "read_header allocated on {}", input.name);
        assert!(bytes_read <= size);
    }
}
