//! Writes the fuzz seed corpus: `gen-corpus <dir>` fills `<dir>/{probe,incremental_feed,
//! differential_libjpeg,differential_formats,submission}` with generated inputs (nothing is checked
//! in): JPEGs, and PNG, GIF, WebP (VP8, VP8L, VP8X) and BMP files from `image`'s encoders and
//! the benches' VP8 writer.

use std::path::Path;

use imgchkr_benches::{
    baseline, bmp, exif_payload, gif, icc_payload, jfif_app0, many_segments, png, riff_webp,
    segment, split_headers, synth_jpeg, webp_extended, webp_lossless, webp_lossy,
};

/// The bytes up to and including the first SOS segment plus a few bytes of scan data.
fn headers_only(jpeg: &[u8]) -> Vec<u8> {
    let (segments, tail) = split_headers(jpeg);
    let mut out = vec![0xFF, 0xD8];
    for (marker, payload) in &segments {
        out.extend(segment(*marker, payload));
    }
    let sos_len = usize::from(u16::from_be_bytes([tail[2], tail[3]]));
    out.extend_from_slice(&tail[..(2 + sos_len + 16).min(tail.len())]);
    out
}

/// A bare frame header stream: SOI, SOFn, Nf components (id, factors, table).
fn frame(marker: u8, precision: u8, h: u16, w: u16, comps: &[[u8; 3]]) -> Vec<u8> {
    let mut p = vec![precision];
    p.extend_from_slice(&h.to_be_bytes());
    p.extend_from_slice(&w.to_be_bytes());
    p.push(comps.len() as u8);
    for c in comps {
        p.extend_from_slice(c);
    }
    let mut out = vec![0xFF, 0xD8];
    out.extend(segment(marker, &p));
    out
}

fn jpegs() -> Vec<(&'static str, Vec<u8>)> {
    let base = baseline(16, 16);
    let ycc = [[1, 0x22, 0], [2, 0x11, 1], [3, 0x11, 1]];
    let mut out = vec![
        ("baseline", base.clone()),
        (
            "exif-icc-small",
            headers_only(&imgchkr_benches::with_exif_icc(&base, 700, 300)),
        ),
        ("segments-fill", headers_only(&many_segments(&base, 12))),
        (
            "progressive",
            headers_only(&synth_jpeg(64, 48, false, true, &[jfif_app0()], 2)),
        ),
        (
            "camera-like",
            headers_only(&synth_jpeg(
                4000,
                3000,
                false,
                false,
                &[segment(0xE1, &exif_payload(base.len() + 200, &base))],
                0,
            )),
        ),
        ("grey", synth_jpeg(9, 7, true, false, &[], 1)),
        ("sof0-min", frame(0xC0, 8, 1200, 1800, &[[1, 0x11, 0]])),
        ("sof1-12bit", frame(0xC1, 12, 100, 200, &ycc)),
        (
            "sof2-4comp",
            frame(
                0xC2,
                8,
                10,
                20,
                &[[1, 0x11, 0], [2, 0x11, 0], [3, 0x11, 0], [4, 0x11, 0]],
            ),
        ),
        ("sof3-lossless16", frame(0xC3, 16, 5, 6, &[[1, 0x11, 0]])),
        ("sof9-arith", frame(0xC9, 8, 30, 40, &ycc)),
        ("sof5-diff", frame(0xC5, 8, 30, 40, &ycc)),
        ("zero-height", frame(0xC0, 8, 0, 40, &ycc)),
        (
            "png",
            b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR\0\0\0\x10\0\0\0\x10\x08\x02\0\0\0".to_vec(),
        ),
        (
            "gif",
            b"GIF89a\x10\x00\x10\x00\x00\x00\x00,\x00\x00\x00\x00\x10\x00\x10\x00\x00".to_vec(),
        ),
        ("webp", b"RIFF\x24\0\0\0WEBPVP8 ".to_vec()),
        ("empty", Vec::new()),
        ("soi", vec![0xFF, 0xD8]),
    ];
    // Hierarchical: DHP (1024x768) then a differential frame.
    let mut dhp = vec![0xFF, 0xD8];
    dhp.extend(segment(0xDE, &[8, 0x03, 0x00, 0x04, 0x00, 1, 1, 0x11, 0]));
    dhp.extend_from_slice(&frame(0xC5, 8, 384, 512, &[[1, 0x11, 0]])[2..]);
    out.push(("dhp", dhp));
    // Markers a walk must skip or refuse: TEM, RST, COM, APP with ICC, DRI, SOI, FF 00.
    let mut odd = vec![0xFF, 0xD8, 0xFF, 0x01, 0xFF, 0xD3, 0xFF, 0xFF];
    odd.extend(segment(0xFE, b"comment"));
    odd.extend(segment(0xE2, &icc_payload(200)));
    odd.extend(segment(0xDD, &[0, 4]));
    odd.extend_from_slice(&frame(0xC0, 8, 2, 3, &[[1, 0x11, 0]])[2..]);
    out.push(("odd-markers", odd));
    let mut garbage = vec![0xFF, 0xD8, 0x00, 0x12, 0xFF, 0x00];
    garbage.extend_from_slice(&frame(0xC0, 8, 2, 3, &[[1, 0x11, 0]])[2..]);
    out.push(("garbage-between", garbage));
    // Real files with junk between segments, as libjpeg skips it: text after APP0, `FF 00`
    // before the tables, an APP segment a few bytes short.
    let real = baseline(16, 8);
    let app0_end = 4 + usize::from(u16::from_be_bytes([real[4], real[5]]));
    for (name, junk) in [
        ("junk-text", &b"hello"[..]),
        ("junk-ff00", &[0xFF, 0x00, 0xFF, 0xFF, 0x00][..]),
    ] {
        let mut file = real[..app0_end].to_vec();
        file.extend_from_slice(junk);
        file.extend_from_slice(&real[app0_end..]);
        out.push((name, file));
    }
    let mut short = real.clone();
    short[5] -= 3;
    out.push(("junk-short-app0", short));
    out
}

/// Small files of the fixed-header formats, real ones from the encoders and hand-made
/// variants of the header fields the probe reads.
fn other_formats() -> Vec<(&'static str, Vec<u8>)> {
    let encoded = |img: image::DynamicImage, format| {
        let mut out = std::io::Cursor::new(Vec::new());
        img.write_to(&mut out, format).expect("encode to memory");
        out.into_inner()
    };
    let grey = image::DynamicImage::ImageLuma8(image::GrayImage::from_fn(7, 5, |x, y| {
        image::Luma([(x * 30 + y) as u8])
    }));
    let rgba16 = image::DynamicImage::ImageRgba16(image::ImageBuffer::from_pixel(
        3,
        9,
        image::Rgba([1000u16, 2, 60000, 40000]),
    ));
    let mut out = vec![
        ("f-png-rgb", png(16, 12)),
        ("f-png-grey", encoded(grey.clone(), image::ImageFormat::Png)),
        ("f-png-rgba16", encoded(rgba16, image::ImageFormat::Png)),
        ("f-gif", gif(12, 10)),
        ("f-gif-wide", gif(300, 2)),
        ("f-webp-vp8", webp_lossy(33, 17)),
        ("f-webp-vp8l", webp_lossless(16, 12)),
        ("f-webp-vp8x", webp_extended(16, 12, 200)),
        ("f-bmp-24", bmp(9, 7)),
        ("f-bmp-grey", encoded(grey, image::ImageFormat::Bmp)),
    ];
    // BMP: an OS/2 1.x core header (12 bytes, 16-bit dimensions) and a top-down
    // BITMAPINFOHEADER (negative height), each with one row of pixels.
    let mut core = b"BM\x22\0\0\0\0\0\0\0\x1A\0\0\0".to_vec();
    core.extend_from_slice(&[12, 0, 0, 0, 2, 0, 1, 0, 1, 0, 24, 0]);
    core.extend_from_slice(&[0, 0, 255, 255, 0, 0, 0, 0]);
    out.push(("f-bmp-core", core));
    let mut down = bmp(2, 2);
    down[22..26].copy_from_slice(&(-2i32).to_le_bytes());
    out.push(("f-bmp-topdown", down));
    // WebP: a VP8X whose canvas is wider than a VP8L frame can say, over a small frame.
    let mut vp8x = vec![0u8; 4];
    vp8x.extend_from_slice(&[0x3F, 0x4E, 0, 0x0F, 0, 0]); // 20032 x 16
    let frame = webp_lossless(16, 16);
    out.push((
        "f-webp-vp8x-wide",
        riff_webp(&[(*b"VP8X", &vp8x), (*b"VP8L", &frame[20..])]),
    ));
    // Truncated copies: the probe must ask for (or refuse) what is missing.
    let truncated: Vec<_> = out
        .iter()
        .map(|(name, bytes)| (*name, bytes[..bytes.len().min(27)].to_vec()))
        .collect();
    for (name, bytes) in truncated {
        let name: &'static str = Box::leak(format!("{name}-cut").into_boxed_str());
        out.push((name, bytes));
    }
    out
}

const BODIES: &[&str] = &[
    r#"{"assetPath": {"location": "local", "path": "images/small.jpg"}, "notifications": {"onStart": "http://callback/print/onStart", "onSuccess": "http://callback/print/onSuccess", "onFailure": "http://callback/print/onFailure"}}"#,
    r#"{"id": "6f1c1b5e-8a6b-4f3e-9d5c-2b7a1e0c9f11", "assetPath": {"location": "local", "path": "a.jpg"}, "notifications": {"onStart": "https://a.example:8443/x?y=1", "onSuccess": "HTTP://A/", "onFailure": "http://[::1]:80/f"}}"#,
    r#"{"assetPath": {"location": "s3", "path": ""}, "notifications": {"onStart": "ftp://x", "onSuccess": "http:/x", "onFailure": null}}"#,
    r#"{"assetPath": {"location": 3}, "notifications": {"onStart": " http://a/", "onSuccess": "x", "onFailure": "http://a b/"}}"#,
    r#"{"id": 5, "assetPath": [], "notifications": "x"}"#,
    r#"{}"#,
    r#"[1, {"a": "\u00e9\ud83d\ude00"}]"#,
    r#"{"assetPath": {"location": "local", "path": "x"}, "notifications": {"onStart": "http://xn--nxasmq6b/", "onSuccess": "http://1.2.3.4/", "onFailure": "https://user:pw@h/p#f"}}"#,
];

fn main() {
    let dir = std::env::args_os()
        .nth(1)
        .expect("usage: gen-corpus <corpus dir>");
    let dir = Path::new(&dir);
    let write = |target: &str, name: &str, bytes: &[u8]| {
        let d = dir.join(target);
        std::fs::create_dir_all(&d).expect("create corpus dir");
        std::fs::write(d.join(name), bytes).expect("write seed");
    };
    let mut n = 0;
    let others = other_formats();
    for (name, bytes) in &others {
        write("differential_formats", name, bytes);
    }
    for (name, bytes) in jpegs().into_iter().chain(others) {
        write("probe", name, &bytes);
        write("differential_libjpeg", name, &bytes);
        // Schedules: whole chunks; 1-byte exact; early/late/stale mixes.
        for (i, schedule) in [&[][..], &[0x00], &[0x23, 0x45, 0x9F], &[0x61, 0x02, 0xE7]]
            .iter()
            .enumerate()
        {
            let mut seed = vec![schedule.len() as u8];
            seed.extend_from_slice(schedule);
            seed.extend_from_slice(&bytes);
            write("incremental_feed", &format!("{name}-{i}"), &seed);
        }
        n += 1;
    }
    for (i, body) in BODIES.iter().enumerate() {
        write("submission", &format!("body-{i}"), body.as_bytes());
    }
    println!(
        "wrote {n} JPEG/format seeds (probe, differential_libjpeg, incremental x4) and {} submission seeds to {}",
        BODIES.len(),
        dir.display()
    );
}
