//! Generated JPEG inputs for the benches, the allocation test and the fuzz seed corpus, and
//! the peer header readers imgchkr is compared with.
//!
//! Nothing here is a checked-in binary: every input is built at start-up, deterministically.
//!
//! * `baseline-64x64`: a real 64×64 baseline JPEG from `image`'s encoder.
//! * `exif60k-icc40k`: the same with a 60 KB EXIF APP1 and a 40 KB ICC APP2 before the frame
//!   header; the EXIF payload is full of `FF C0`-looking bytes (a fake SOF0 saying 1×1) to trap
//!   pattern scanners.
//! * `progressive-1024x768`: a valid progressive (SOF2) JPEG written by the small encoder
//!   below: DC scan, then one AC spectral-selection scan per component.
//! * `camera-4000x3000`: a valid 12 MP baseline JPEG laid out like a camera's (EXIF APP1 with a
//!   160×120 JPEG thumbnail first, two DQT, SOF0 4:2:0, DHT, SOS, ~3.4 MB of entropy-coded
//!   data), written by the encoder below in a few tens of milliseconds.
//! * `segments200-fill`: the 64×64 baseline with 200 COM/APPn segments and runs of `FF` fill
//!   bytes before every marker.
//!
//! The small encoder ([`synth_jpeg`]) writes real entropy-coded data (every block has a zero
//! DC difference and a random number of random AC coefficients), so every input is a legal
//! T.81 file that full decoders decode; a test checks that with `jpeg-decoder` and `zune-jpeg`.

pub mod pg;

use std::io::Cursor;

/// One generated input and the dimensions it truly has.
#[derive(Debug, Clone)]
pub struct Input {
    /// Short name, used as the criterion group and file name.
    pub name: &'static str,
    /// The JPEG bytes.
    pub bytes: Vec<u8>,
    /// True width.
    pub width: u32,
    /// True height.
    pub height: u32,
}

/// Every bench input, in a fixed order.
pub fn inputs() -> Vec<Input> {
    let base = baseline(64, 64);
    vec![
        Input {
            name: "baseline-64x64",
            bytes: base.clone(),
            width: 64,
            height: 64,
        },
        Input {
            name: "exif60k-icc40k",
            bytes: with_exif_icc(&base, 60_000, 40_000),
            width: 64,
            height: 64,
        },
        Input {
            name: "progressive-1024x768",
            bytes: progressive(1024, 768),
            width: 1024,
            height: 768,
        },
        Input {
            name: "camera-4000x3000",
            bytes: camera(4000, 3000),
            width: 4000,
            height: 3000,
        },
        Input {
            name: "segments200-fill",
            bytes: many_segments(&base, 200),
            width: 64,
            height: 64,
        },
    ]
}

/// A baseline JPEG of a colour gradient, encoded by `image` (quality 85, 4:2:0).
pub fn baseline(width: u32, height: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(width, height, |x, y| {
        image::Rgb([(x * 4) as u8, (y * 4) as u8, ((x + y) * 2) as u8])
    });
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 85)
        .encode_image(&img)
        .expect("encoding to memory cannot fail");
    out
}

/// One marker segment: `FF marker`, the length, the payload.
pub fn segment(marker: u8, payload: &[u8]) -> Vec<u8> {
    let len = u16::try_from(payload.len() + 2).expect("segment payload over 65533 bytes");
    let mut s = vec![0xFF, marker];
    s.extend_from_slice(&len.to_be_bytes());
    s.extend_from_slice(payload);
    s
}

/// A JPEG split at its first SOS: the marker segments between SOI and SOS (marker, payload),
/// and the rest from the SOS marker on.
pub fn split_headers(jpeg: &[u8]) -> (Vec<(u8, Vec<u8>)>, Vec<u8>) {
    assert_eq!(&jpeg[..2], [0xFF, 0xD8], "not a JPEG");
    let mut pos = 2;
    let mut segments = Vec::new();
    loop {
        while jpeg[pos] == 0xFF && jpeg[pos + 1] == 0xFF {
            pos += 1;
        }
        assert_eq!(jpeg[pos], 0xFF, "marker expected at {pos}");
        let marker = jpeg[pos + 1];
        if marker == 0xDA {
            return (segments, jpeg[pos..].to_vec());
        }
        let len = usize::from(u16::from_be_bytes([jpeg[pos + 2], jpeg[pos + 3]]));
        segments.push((marker, jpeg[pos + 4..pos + 2 + len].to_vec()));
        pos += 2 + len;
    }
}

/// Reassembles [`split_headers`] output, `fill` extra `FF` bytes before each marker.
fn join(segments: &[(u8, Vec<u8>)], tail: &[u8], fill: impl Fn(usize) -> usize) -> Vec<u8> {
    let mut out = vec![0xFF, 0xD8];
    for (i, (marker, payload)) in segments.iter().enumerate() {
        out.extend(std::iter::repeat_n(0xFF, fill(i)));
        out.extend(segment(*marker, payload));
    }
    out.extend(std::iter::repeat_n(0xFF, fill(segments.len())));
    out.extend_from_slice(tail);
    out
}

/// Inserts `extra` segments after a leading APP0 (JFIF), or right after SOI.
fn insert_after_app0(jpeg: &[u8], extra: Vec<(u8, Vec<u8>)>) -> Vec<u8> {
    let (mut segments, tail) = split_headers(jpeg);
    let at = usize::from(segments.first().is_some_and(|s| s.0 == 0xE0));
    segments.splice(at..at, extra);
    join(&segments, &tail, |_| 0)
}

/// A deterministic xorshift generator.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a non-zero seed.
    pub fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// A random number below `n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// Fills `buf` with random bytes.
    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let r = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&r[..chunk.len()]);
        }
    }
}

/// A fake SOF0 saying 1×1, three components: what a pattern scanner would take for the frame.
pub const DECOY_SOF0: [u8; 19] = [
    0xFF, 0xC0, 0x00, 0x11, 0x08, 0x00, 0x01, 0x00, 0x01, 0x03, 0x01, 0x22, 0x00, 0x02, 0x11, 0x01,
    0x03, 0x11, 0x01,
];

/// An EXIF APP1 payload of exactly `len` bytes: `Exif\0\0`, a big-endian TIFF header, IFD0 with
/// Make, Model and an EXIF pointer, IFD1 pointing at `thumbnail` (a JPEG, may be empty), then
/// maker-note-like filler studded with [`DECOY_SOF0`] and stray `FF DA` / `FF D9` bytes.
pub fn exif_payload(len: usize, thumbnail: &[u8]) -> Vec<u8> {
    let mut tiff = Vec::new();
    tiff.extend_from_slice(b"MM\x00\x2A\x00\x00\x00\x08");
    // IFD0 at 8: 3 entries (2 + 3*12 + 4 = 42 bytes), strings after it at 50.
    let make = b"imgchkr bench camera\0";
    let model = b"Synthetic 4000\0";
    let make_at = 8 + 42;
    let model_at = make_at + make.len();
    let ifd1_at = model_at + model.len();
    let entry = |tiff: &mut Vec<u8>, tag: u16, typ: u16, count: u32, value: u32| {
        tiff.extend_from_slice(&tag.to_be_bytes());
        tiff.extend_from_slice(&typ.to_be_bytes());
        tiff.extend_from_slice(&count.to_be_bytes());
        tiff.extend_from_slice(&value.to_be_bytes());
    };
    tiff.extend_from_slice(&3u16.to_be_bytes());
    entry(&mut tiff, 0x010F, 2, make.len() as u32, make_at as u32);
    entry(&mut tiff, 0x0110, 2, model.len() as u32, model_at as u32);
    entry(&mut tiff, 0x8769, 4, 1, 0); // EXIF IFD: none, a placeholder offset
    tiff.extend_from_slice(&(ifd1_at as u32).to_be_bytes());
    tiff.extend_from_slice(make);
    tiff.extend_from_slice(model);
    // IFD1: the thumbnail (2 entries: 2 + 24 + 4 = 30 bytes), the JPEG right after.
    let thumb_at = ifd1_at + 30;
    tiff.extend_from_slice(&2u16.to_be_bytes());
    entry(&mut tiff, 0x0201, 4, 1, thumb_at as u32);
    entry(&mut tiff, 0x0202, 4, 1, thumbnail.len() as u32);
    tiff.extend_from_slice(&0u32.to_be_bytes());
    tiff.extend_from_slice(thumbnail);

    let mut out = b"Exif\0\0".to_vec();
    out.extend_from_slice(&tiff);
    assert!(out.len() <= len, "EXIF payload too small for its thumbnail");
    let mut rng = Rng::new(0xE41F);
    let mut filler = vec![0u8; len - out.len()];
    rng.fill(&mut filler);
    // A decoy frame header every 509 bytes, stray SOS/EOI in between.
    let mut at = 0;
    while at + DECOY_SOF0.len() + 4 <= filler.len() {
        filler[at..at + DECOY_SOF0.len()].copy_from_slice(&DECOY_SOF0);
        filler[at + DECOY_SOF0.len()..at + DECOY_SOF0.len() + 4]
            .copy_from_slice(&[0xFF, 0xDA, 0xFF, 0xD9]);
        at += 509;
    }
    out.extend_from_slice(&filler);
    out
}

/// An ICC APP2 payload of exactly `len` bytes: `ICC_PROFILE\0`, chunk 1 of 1, a profile header
/// (size, `acsp` signature, RGB/XYZ display class) and random tag data.
pub fn icc_payload(len: usize) -> Vec<u8> {
    let mut out = b"ICC_PROFILE\0\x01\x01".to_vec();
    let profile_len = len - out.len();
    let mut profile = vec![0u8; profile_len];
    Rng::new(0x1CC).fill(&mut profile[128..]);
    profile[..4].copy_from_slice(&(profile_len as u32).to_be_bytes());
    profile[4..8].copy_from_slice(b"lcms");
    profile[8..12].copy_from_slice(&[4, 0x30, 0, 0]);
    profile[12..16].copy_from_slice(b"mntr");
    profile[16..20].copy_from_slice(b"RGB ");
    profile[20..24].copy_from_slice(b"XYZ ");
    profile[36..40].copy_from_slice(b"acsp");
    profile[128..132].copy_from_slice(&0u32.to_be_bytes());
    out.extend_from_slice(&profile);
    out
}

/// `jpeg` with an EXIF APP1 of `exif_len` and an ICC APP2 of `icc_len` payload bytes inserted
/// before its tables and frame header.
pub fn with_exif_icc(jpeg: &[u8], exif_len: usize, icc_len: usize) -> Vec<u8> {
    insert_after_app0(
        jpeg,
        vec![
            (0xE1, exif_payload(exif_len, &[])),
            (0xE2, icc_payload(icc_len)),
        ],
    )
}

/// `jpeg` with `n` COM and APP3–APP15 segments inserted, and 1–7 `FF` fill bytes before every
/// marker up to SOS.
pub fn many_segments(jpeg: &[u8], n: usize) -> Vec<u8> {
    let mut rng = Rng::new(0x5E6);
    let extra: Vec<_> = (0..n)
        .map(|i| {
            let marker = if i % 2 == 0 {
                0xFE
            } else {
                0xE3 + (i / 2 % 13) as u8
            };
            let mut payload = vec![0u8; 16 + rng.below(112) as usize];
            rng.fill(&mut payload);
            if marker == 0xFE {
                payload.fill(b'c');
                payload[..11].copy_from_slice(b"comment no.");
            }
            (marker, payload)
        })
        .collect();
    let (mut segments, tail) = split_headers(jpeg);
    let at = usize::from(segments.first().is_some_and(|s| s.0 == 0xE0));
    segments.splice(at..at, extra);
    join(&segments, &tail, |i| 1 + i % 7)
}

/// Big-endian bit writer for entropy-coded data, with `FF 00` stuffing.
struct BitWriter {
    out: Vec<u8>,
    acc: u64,
    bits: u32,
}

impl BitWriter {
    fn new(capacity: usize) -> Self {
        BitWriter {
            out: Vec::with_capacity(capacity),
            acc: 0,
            bits: 0,
        }
    }

    fn put(&mut self, value: u32, len: u32) {
        debug_assert!(len <= 16);
        self.acc = (self.acc << len) | u64::from(value & ((1 << len) - 1));
        self.bits += len;
        while self.bits >= 8 {
            self.bits -= 8;
            let byte = (self.acc >> self.bits) as u8;
            self.out.push(byte);
            if byte == 0xFF {
                self.out.push(0x00);
            }
        }
    }

    /// Pads the last byte with 1 bits (T.81 F.1.2.3) and returns the bytes.
    fn finish(mut self) -> Vec<u8> {
        if self.bits > 0 {
            let pad = 8 - self.bits;
            self.put((1 << pad) - 1, pad);
        }
        self.out
    }
}

/// Huffman tables of the synthetic encoder: DC categories 0–11 and AC symbols EOB, 0x01–0x0A
/// (run 0, size 1–10), each a 4-bit code equal to its index.
const DC_SYMBOLS: [u8; 12] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11];
const AC_SYMBOLS: [u8; 11] = [0x00, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10];

fn dht() -> Vec<u8> {
    let mut p = Vec::new();
    for (class, symbols) in [(0x00u8, &DC_SYMBOLS[..]), (0x10, &AC_SYMBOLS[..])] {
        p.push(class);
        let mut bits = [0u8; 16];
        bits[3] = symbols.len() as u8;
        p.extend_from_slice(&bits);
        p.extend_from_slice(symbols);
    }
    segment(0xC4, &p)
}

fn dqt() -> Vec<u8> {
    let mut p = Vec::new();
    for table in 0..2u8 {
        p.push(table);
        p.extend((0..64).map(|i| 1 + (i / 8) as u8 + table));
    }
    segment(0xDB, &p)
}

/// Codes one block's coefficients `ss..=se` (zero DC difference; up to `max_ac` random AC
/// coefficients of size 1–6, then EOB when the band is not full).
fn code_block(w: &mut BitWriter, rng: &mut Rng, ss: u8, se: u8, max_ac: u64) {
    if ss == 0 {
        w.put(0, 4); // DC difference category 0
        if se == 0 {
            return;
        }
    }
    let band = u64::from(se - ss.max(1)) + 1;
    let k = rng.below(max_ac + 1).min(band);
    for _ in 0..k {
        let r = rng.next_u64();
        let size = 1 + (r % 6) as u32;
        w.put(size, 4); // symbol 0x0s: run 0, size s; its code is s
        w.put((r >> 8) as u32, size); // any s-bit pattern is a valid amplitude
    }
    if k < band {
        w.put(0, 4); // EOB (EOB0 in a progressive AC scan: ends this band of this block)
    }
}

/// Component layout of the synthetic encoder: Y 2×2, Cb 1×1, Cr 1×1 (4:2:0), or grey.
fn components(grey: bool) -> &'static [(u8, u8, u8, u8)] {
    // (id, h, v, quant table)
    if grey {
        &[(1, 1, 1, 0)]
    } else {
        &[(1, 2, 2, 0), (2, 1, 1, 1), (3, 1, 1, 1)]
    }
}

/// A valid JPEG of `width`×`height` from the synthetic encoder: SOF0 (baseline) or SOF2
/// (progressive: an interleaved DC scan, then one AC scan per component), `before` segments
/// (complete, with markers) right after SOI. `max_ac` bounds the AC coefficients per block
/// (12 gives camera-like ~12 bytes per block).
pub fn synth_jpeg(
    width: u16,
    height: u16,
    grey: bool,
    progressive: bool,
    before: &[Vec<u8>],
    max_ac: u64,
) -> Vec<u8> {
    let comps = components(grey);
    let (hmax, vmax) = (
        comps.iter().map(|c| c.1).max().unwrap_or(1),
        comps.iter().map(|c| c.2).max().unwrap_or(1),
    );
    let mut out = vec![0xFF, 0xD8];
    for s in before {
        out.extend_from_slice(s);
    }
    out.extend(dqt());
    let mut sof = vec![8];
    sof.extend_from_slice(&height.to_be_bytes());
    sof.extend_from_slice(&width.to_be_bytes());
    sof.push(comps.len() as u8);
    for &(id, h, v, tq) in comps {
        sof.extend_from_slice(&[id, (h << 4) | v, tq]);
    }
    out.extend(segment(if progressive { 0xC2 } else { 0xC0 }, &sof));
    out.extend(dht());

    let (w, h) = (usize::from(width), usize::from(height));
    let mcus_x = w.div_ceil(8 * usize::from(hmax));
    let mcus_y = h.div_ceil(8 * usize::from(vmax));
    let blocks_per_mcu: usize = comps.iter().map(|c| usize::from(c.1 * c.2)).sum();
    let mut rng = Rng::new(0xC0FFEE);
    let sos = |ids: &[u8], ss: u8, se: u8| {
        let mut p = vec![ids.len() as u8];
        for id in ids {
            p.extend_from_slice(&[*id, 0x00]);
        }
        p.extend_from_slice(&[ss, se, 0]);
        segment(0xDA, &p)
    };
    let ids: Vec<u8> = comps.iter().map(|c| c.0).collect();

    // Interleaved scan over MCUs: all of the baseline image, or the progressive DC scan.
    let se = if progressive { 0 } else { 63 };
    out.extend(sos(&ids, 0, se));
    let mut bw = BitWriter::new(mcus_x * mcus_y * blocks_per_mcu * (1 + max_ac as usize));
    for _ in 0..mcus_x * mcus_y {
        for &(_, ch, cv, _) in comps {
            for _ in 0..ch * cv {
                code_block(&mut bw, &mut rng, 0, se, max_ac);
            }
        }
    }
    out.extend(bw.finish());

    if progressive {
        // Non-interleaved AC scans: each covers its component's own block grid (A.2.2).
        for &(id, ch, cv, _) in comps {
            let cw = (w * usize::from(ch)).div_ceil(usize::from(hmax));
            let chh = (h * usize::from(cv)).div_ceil(usize::from(vmax));
            let blocks = cw.div_ceil(8) * chh.div_ceil(8);
            out.extend(sos(&[id], 1, 63));
            let mut bw = BitWriter::new(blocks * (1 + max_ac as usize));
            for _ in 0..blocks {
                code_block(&mut bw, &mut rng, 1, 63, max_ac);
            }
            out.extend(bw.finish());
        }
    }
    out.extend_from_slice(&[0xFF, 0xD9]);
    out
}

/// The JFIF APP0 segment (version 1.01, no density, no thumbnail).
pub fn jfif_app0() -> Vec<u8> {
    segment(0xE0, b"JFIF\0\x01\x01\x00\x00\x01\x00\x01\x00\x00")
}

/// A progressive 4:2:0 JPEG with a JFIF APP0.
pub fn progressive(width: u16, height: u16) -> Vec<u8> {
    synth_jpeg(width, height, false, true, &[jfif_app0()], 12)
}

/// A camera-like baseline 4:2:0 JPEG: an EXIF APP1 first, holding a 160×120 JPEG thumbnail
/// (whose SOF0 a pattern scanner meets first) and decoy frame headers, then the tables, the
/// frame and ~12 bytes of entropy-coded data per block.
pub fn camera(width: u16, height: u16) -> Vec<u8> {
    let thumbnail = baseline(160, 120);
    let exif = segment(0xE1, &exif_payload(thumbnail.len() + 8_000, &thumbnail));
    synth_jpeg(width, height, false, false, &[exif], 12)
}

/// Dimensions as `imgchkr_core::probe` reads them.
pub fn imgchkr(bytes: &[u8]) -> Option<(u32, u32)> {
    imgchkr_core::probe(bytes)
        .ok()
        .map(|info| (info.width, info.height))
}

/// Dimensions as `imagesize::blob_size` reads them.
pub fn imagesize(bytes: &[u8]) -> Option<(u32, u32)> {
    let size = ::imagesize::blob_size(bytes).ok()?;
    Some((size.width as u32, size.height as u32))
}

/// Dimensions as `image::ImageReader::into_dimensions` reads them (JPEG format forced).
pub fn image(bytes: &[u8]) -> Option<(u32, u32)> {
    ::image::ImageReader::with_format(Cursor::new(bytes), ::image::ImageFormat::Jpeg)
        .into_dimensions()
        .ok()
}

/// Dimensions as `jpeg_decoder::Decoder::read_info` reads them.
pub fn jpeg_decoder(bytes: &[u8]) -> Option<(u32, u32)> {
    let mut decoder = ::jpeg_decoder::Decoder::new(bytes);
    decoder.read_info().ok()?;
    let info = decoder.info()?;
    Some((u32::from(info.width), u32::from(info.height)))
}

/// Dimensions as `zune_jpeg::JpegDecoder::decode_headers` reads them.
pub fn zune_jpeg(bytes: &[u8]) -> Option<(u32, u32)> {
    let mut decoder =
        ::zune_jpeg::JpegDecoder::new(::zune_jpeg::zune_core::bytestream::ZCursor::new(bytes));
    decoder.decode_headers().ok()?;
    let (w, h) = decoder.dimensions()?;
    Some((w as u32, h as u32))
}

/// A header reader: name and function.
pub type Reader = (&'static str, fn(&[u8]) -> Option<(u32, u32)>);

/// imgchkr first, then the peers.
pub const READERS: [Reader; 5] = [
    ("imgchkr", imgchkr),
    ("imagesize", imagesize),
    ("image", image),
    ("jpeg-decoder", jpeg_decoder),
    ("zune-jpeg", zune_jpeg),
];

// ---------------------------------------------------------------------------------------------
// Other formats: PNG, GIF, WebP (VP8, VP8L, VP8X) and BMP inputs, generated at start-up.
// ---------------------------------------------------------------------------------------------

/// One generated non-JPEG input: its format (for the `image` reader) and true dimensions.
#[derive(Debug, Clone)]
pub struct FormatInput {
    /// Short name, used as the criterion group and seed name.
    pub name: &'static str,
    /// The container format, as `image` names it.
    pub format: ::image::ImageFormat,
    /// The file bytes.
    pub bytes: Vec<u8>,
    /// True width.
    pub width: u32,
    /// True height.
    pub height: u32,
}

/// A colour gradient with some texture, so the encoders have something to compress.
fn gradient(width: u32, height: u32) -> ::image::RgbImage {
    ::image::RgbImage::from_fn(width, height, |x, y| {
        let t = ((x * 7) ^ (y * 13)) as u8 & 0x1F;
        ::image::Rgb([(x * 255 / width) as u8 ^ t, (y * 255 / height) as u8, t * 8])
    })
}

/// `image` encoded in `format` by the `image` crate's own encoder.
fn encode(img: &::image::RgbImage, format: ::image::ImageFormat) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, format)
        .expect("encoding to memory cannot fail");
    out.into_inner()
}

/// A PNG (RGB 8-bit) from `image`'s encoder.
pub fn png(width: u32, height: u32) -> Vec<u8> {
    encode(&gradient(width, height), ::image::ImageFormat::Png)
}

/// A GIF (one frame, quantized to 256 colours) from `image`'s encoder.
pub fn gif(width: u32, height: u32) -> Vec<u8> {
    encode(&gradient(width, height), ::image::ImageFormat::Gif)
}

/// A 24-bit BMP (`BITMAPINFOHEADER`) from `image`'s encoder.
pub fn bmp(width: u32, height: u32) -> Vec<u8> {
    encode(&gradient(width, height), ::image::ImageFormat::Bmp)
}

/// A lossless WebP (simple format: one `VP8L` chunk) from `image`'s encoder.
pub fn webp_lossless(width: u32, height: u32) -> Vec<u8> {
    encode(&gradient(width, height), ::image::ImageFormat::WebP)
}

/// An extended WebP: `image`'s lossless encoder with an ICC profile of `icc_len` bytes, which
/// makes it write a `VP8X` chunk (canvas size), an `ICCP` chunk, then the `VP8L` chunk.
pub fn webp_extended(width: u32, height: u32, icc_len: usize) -> Vec<u8> {
    use ::image::ImageEncoder;
    let img = gradient(width, height);
    let mut out = Vec::new();
    let mut encoder = ::image::codecs::webp::WebPEncoder::new_lossless(&mut out);
    let icc = icc_payload(icc_len + 14)[14..].to_vec();
    encoder
        .set_icc_profile(icc)
        .expect("the WebP encoder takes an ICC profile");
    encoder
        .write_image(
            img.as_raw(),
            width,
            height,
            ::image::ExtendedColorType::Rgb8,
        )
        .expect("encoding to memory cannot fail");
    out
}

/// A lossy WebP (simple format: one `VP8 ` chunk holding a key frame), from the minimal VP8
/// encoder below: `image` has no lossy WebP encoder. Every macroblock is DC-predicted with no
/// residual (a flat grey image), but the bitstream is complete (RFC 6386): full decoders
/// decode it (checked by a test), and it has the frame tag, start code and dimensions every
/// header reader looks at.
pub fn webp_lossy(width: u16, height: u16) -> Vec<u8> {
    assert!((1..=0x3FFF).contains(&width) && (1..=0x3FFF).contains(&height));
    let mbs = usize::from(width.div_ceil(16)) * usize::from(height.div_ceil(16));
    // First partition: the frame header (RFC 6386 9.2-9.11, 19.2), then the per-macroblock
    // modes (19.3).
    let mut bw = BoolWriter::default();
    bw.literal(1, 0); // color_space
    bw.literal(1, 0); // clamping_type
    bw.literal(1, 0); // segmentation_enabled
    bw.literal(1, 0); // filter_type
    bw.literal(6, 0); // loop_filter_level
    bw.literal(3, 0); // sharpness_level
    bw.literal(1, 0); // loop_filter_adj_enable
    bw.literal(2, 0); // log2_nbr_of_dct_partitions
    bw.literal(7, 40); // y_ac_qi
    for _ in 0..5 {
        bw.literal(1, 0); // y_dc, y2_dc, y2_ac, uv_dc, uv_ac delta: absent
    }
    bw.literal(1, 0); // refresh_entropy_probs
    for &p in VP8_COEFF_UPDATE_PROBS.iter() {
        bw.put(p, false); // no token probability update
    }
    bw.literal(1, 1); // mb_no_coeff_skip
    let prob_skip_false = 1;
    bw.literal(8, prob_skip_false);
    for _ in 0..mbs {
        bw.put(prob_skip_false as u8, true); // mb_skip_coeff: no residual
        // kf_ymode DC_PRED: tree bits 1, 0, 0 with the key-frame probabilities 145, 156, 163.
        bw.put(145, true);
        bw.put(156, false);
        bw.put(163, false);
        bw.put(142, false); // uv_mode DC_PRED
    }
    let first = bw.finish();
    // The one token partition: no tokens, a flushed empty coder.
    let tokens = BoolWriter::default().finish();

    let mut vp8 = Vec::new();
    let first_len = u32::try_from(first.len()).expect("small first partition");
    assert!(first_len < 1 << 19);
    // Frame tag: key frame (bit 0 = 0), version 0, show_frame, first partition size.
    let tag = (1 << 4) | (first_len << 5);
    vp8.extend_from_slice(&tag.to_le_bytes()[..3]);
    vp8.extend_from_slice(&[0x9D, 0x01, 0x2A]);
    vp8.extend_from_slice(&width.to_le_bytes());
    vp8.extend_from_slice(&height.to_le_bytes());
    vp8.extend_from_slice(&first);
    vp8.extend_from_slice(&tokens);
    riff_webp(&[(*b"VP8 ", &vp8)])
}

/// A `RIFF....WEBP` file of `chunks` (fourcc, payload), each padded to even length.
pub fn riff_webp(chunks: &[([u8; 4], &[u8])]) -> Vec<u8> {
    let mut body = b"WEBP".to_vec();
    for (fourcc, payload) in chunks {
        body.extend_from_slice(fourcc);
        body.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        body.extend_from_slice(payload);
        if payload.len() % 2 == 1 {
            body.push(0);
        }
    }
    let mut out = b"RIFF".to_vec();
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&body);
    out
}

/// The boolean entropy encoder of RFC 6386 section 7.3.
#[derive(Debug)]
struct BoolWriter {
    out: Vec<u8>,
    range: u32,
    bottom: u32,
    bit_count: i32,
}

impl Default for BoolWriter {
    fn default() -> Self {
        BoolWriter {
            out: Vec::new(),
            range: 255,
            bottom: 0,
            bit_count: 24,
        }
    }
}

impl BoolWriter {
    /// Propagates a carry into the bytes already written.
    fn carry(&mut self) {
        for byte in self.out.iter_mut().rev() {
            if *byte == 0xFF {
                *byte = 0;
            } else {
                *byte += 1;
                return;
            }
        }
    }

    /// Writes `bit`, whose probability of being `false` is `prob / 256`.
    fn put(&mut self, prob: u8, bit: bool) {
        let split = 1 + (((self.range - 1) * u32::from(prob)) >> 8);
        if bit {
            self.bottom = self.bottom.wrapping_add(split);
            self.range -= split;
        } else {
            self.range = split;
        }
        while self.range < 128 {
            self.range <<= 1;
            if self.bottom & (1 << 31) != 0 {
                self.carry();
            }
            self.bottom <<= 1;
            self.bit_count -= 1;
            if self.bit_count == 0 {
                self.out.push((self.bottom >> 24) as u8);
                self.bottom &= (1 << 24) - 1;
                self.bit_count = 8;
            }
        }
    }

    /// Writes `value` as `bits` bits, most significant first, each at probability 1/2.
    fn literal(&mut self, bits: u32, value: u32) {
        for i in (0..bits).rev() {
            self.put(128, (value >> i) & 1 == 1);
        }
    }

    /// Flushes the coder (RFC 6386 7.3, `flush_bool_encoder`) and returns the bytes.
    fn finish(mut self) -> Vec<u8> {
        let mut c = self.bit_count;
        let mut v = self.bottom;
        if c < 32 && v & (1u32 << (32 - c)) != 0 {
            self.carry();
        }
        v <<= c & 7;
        c >>= 3;
        while c > 0 {
            v <<= 8;
            c -= 1;
        }
        for _ in 0..4 {
            self.out.push((v >> 24) as u8);
            v <<= 8;
        }
        self.out
    }
}

/// RFC 6386 section 13.4: the probability that each token probability is updated, in
/// [block type][coefficient band][context][token] order (4 × 8 × 3 × 11).
#[rustfmt::skip]
const VP8_COEFF_UPDATE_PROBS: [u8; 1056] = [
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 176, 246, 255, 255, 255, 255, 255, 255, 255, 255, 255, 223, 241, 252, 255,
    255, 255, 255, 255, 255, 255, 255, 249, 253, 253, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 244, 252, 255, 255, 255, 255, 255, 255, 255, 255, 234, 254, 254,
    255, 255, 255, 255, 255, 255, 255, 255, 253, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 246, 254, 255, 255, 255, 255, 255, 255, 255, 255, 239, 253,
    254, 255, 255, 255, 255, 255, 255, 255, 255, 254, 255, 254, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 248, 254, 255, 255, 255, 255, 255, 255, 255, 255, 251,
    255, 254, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 253, 254, 255, 255, 255, 255, 255, 255, 255, 255,
    251, 254, 254, 255, 255, 255, 255, 255, 255, 255, 255, 254, 255, 254, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 254, 253, 255, 254, 255, 255, 255, 255, 255,
    255, 250, 255, 254, 255, 254, 255, 255, 255, 255, 255, 255, 254, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 217, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 225, 252, 241, 253, 255, 255, 254, 255, 255, 255, 255, 234, 250,
    241, 250, 253, 255, 253, 254, 255, 255, 255, 255, 254, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 223, 254, 254, 255, 255, 255, 255, 255, 255, 255, 255, 238,
    253, 254, 254, 255, 255, 255, 255, 255, 255, 255, 255, 248, 254, 255, 255, 255,
    255, 255, 255, 255, 255, 249, 254, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 253, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 247, 254, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 253, 254, 255,
    255, 255, 255, 255, 255, 255, 255, 252, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 254, 254,
    255, 255, 255, 255, 255, 255, 255, 255, 253, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 254,
    253, 255, 255, 255, 255, 255, 255, 255, 255, 250, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 254, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    186, 251, 250, 255, 255, 255, 255, 255, 255, 255, 255, 234, 251, 244, 254, 255,
    255, 255, 255, 255, 255, 255, 251, 251, 243, 253, 254, 255, 254, 255, 255, 255,
    255, 255, 253, 254, 255, 255, 255, 255, 255, 255, 255, 255, 236, 253, 254, 255,
    255, 255, 255, 255, 255, 255, 255, 251, 253, 253, 254, 254, 255, 255, 255, 255,
    255, 255, 255, 254, 254, 255, 255, 255, 255, 255, 255, 255, 255, 254, 254, 254,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 254, 255, 255, 255, 255, 255, 255, 255, 255, 255, 254, 254,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 254, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 254,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 248, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 250, 254, 252, 254, 255, 255, 255, 255, 255, 255, 255, 248, 254,
    249, 253, 255, 255, 255, 255, 255, 255, 255, 255, 253, 253, 255, 255, 255, 255,
    255, 255, 255, 255, 246, 253, 253, 255, 255, 255, 255, 255, 255, 255, 255, 252,
    254, 251, 254, 254, 255, 255, 255, 255, 255, 255, 255, 254, 252, 255, 255, 255,
    255, 255, 255, 255, 255, 248, 254, 253, 255, 255, 255, 255, 255, 255, 255, 255,
    253, 255, 254, 254, 255, 255, 255, 255, 255, 255, 255, 255, 251, 254, 255, 255,
    255, 255, 255, 255, 255, 255, 245, 251, 254, 255, 255, 255, 255, 255, 255, 255,
    255, 253, 253, 254, 255, 255, 255, 255, 255, 255, 255, 255, 255, 251, 253, 255,
    255, 255, 255, 255, 255, 255, 255, 252, 253, 254, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 254, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 252, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 249, 255, 254, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 254, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    253, 255, 255, 255, 255, 255, 255, 255, 255, 250, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 254, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
];

/// Every non-JPEG bench input, in a fixed order: PNG, GIF, WebP lossy / lossless / extended,
/// BMP.
pub fn format_inputs() -> Vec<FormatInput> {
    use ::image::ImageFormat as F;
    let input = |name, format, bytes, width, height| FormatInput {
        name,
        format,
        bytes,
        width,
        height,
    };
    vec![
        input("png-1024x768", F::Png, png(1024, 768), 1024, 768),
        input("gif-320x240", F::Gif, gif(320, 240), 320, 240),
        input(
            "webp-vp8-1024x768",
            F::WebP,
            webp_lossy(1024, 768),
            1024,
            768,
        ),
        input(
            "webp-vp8l-512x384",
            F::WebP,
            webp_lossless(512, 384),
            512,
            384,
        ),
        input(
            "webp-vp8x-icc-512x384",
            F::WebP,
            webp_extended(512, 384, 3_000),
            512,
            384,
        ),
        input("bmp-640x480", F::Bmp, bmp(640, 480), 640, 480),
    ]
}

/// Dimensions as `image::ImageReader::into_dimensions` reads them, `format` forced.
pub fn image_as(format: ::image::ImageFormat, bytes: &[u8]) -> Option<(u32, u32)> {
    ::image::ImageReader::with_format(Cursor::new(bytes), format)
        .into_dimensions()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The synthetic encoder writes files that full decoders decode to the stated size.
    #[test]
    fn synthetic_jpegs_decode_fully() {
        for progressive in [false, true] {
            for grey in [false, true] {
                let jpeg = synth_jpeg(
                    100,
                    75,
                    grey,
                    progressive,
                    &[jfif_app0(), segment(0xFE, b"hi")],
                    12,
                );
                let mut d = ::jpeg_decoder::Decoder::new(&jpeg[..]);
                let pixels = d.decode().expect("jpeg-decoder decodes");
                let n = if grey { 1 } else { 3 };
                assert_eq!(pixels.len(), 100 * 75 * n, "{progressive} {grey}");
                let mut z = ::zune_jpeg::JpegDecoder::new(
                    ::zune_jpeg::zune_core::bytestream::ZCursor::new(&jpeg[..]),
                );
                z.decode().expect("zune-jpeg decodes");
                assert_eq!(z.dimensions(), Some((100, 75)));
            }
        }
    }

    #[test]
    fn generated_inputs_have_their_sizes() {
        for input in inputs() {
            assert_eq!(
                imgchkr(&input.bytes),
                Some((input.width, input.height)),
                "{}",
                input.name
            );
        }
        let exif = &inputs()[1];
        assert!(exif.bytes.len() > 100_000);
    }

    /// Each generated non-JPEG input is what it says: `image` decodes it fully to its size,
    /// and imgchkr's probe reads that size and format.
    #[test]
    fn format_inputs_decode_to_their_sizes() {
        for input in format_inputs() {
            let img = ::image::load_from_memory_with_format(&input.bytes, input.format)
                .unwrap_or_else(|e| panic!("{}: {e}", input.name));
            assert_eq!(
                (img.width(), img.height()),
                (input.width, input.height),
                "{}",
                input.name
            );
            assert_eq!(
                imgchkr(&input.bytes),
                Some((input.width, input.height)),
                "{}",
                input.name
            );
        }
        let kinds: Vec<[u8; 4]> = format_inputs()
            .iter()
            .filter(|i| i.name.starts_with("webp"))
            .map(|i| i.bytes[12..16].try_into().unwrap())
            .collect();
        assert_eq!(kinds, [*b"VP8 ", *b"VP8L", *b"VP8X"]);
    }

    /// The VP8 encoder writes decodable key frames at sizes that are not multiples of 16.
    #[test]
    fn lossy_webp_decodes() {
        for (w, h) in [(1, 1), (17, 33), (300, 200)] {
            let bytes = webp_lossy(w, h);
            let img = ::image::load_from_memory_with_format(&bytes, ::image::ImageFormat::WebP)
                .unwrap_or_else(|e| panic!("{w}x{h}: {e}"));
            assert_eq!((img.width(), img.height()), (u32::from(w), u32::from(h)));
        }
    }
}
