//! Builders for hand-made JPEG marker streams.
#![allow(dead_code)]

/// A marker segment: `FF marker`, the big-endian length (payload + 2), the payload.
pub fn segment(marker: u8, payload: &[u8]) -> Vec<u8> {
    let len = u16::try_from(payload.len() + 2).expect("segment payload fits in a length");
    let mut out = vec![0xFF, marker];
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// A frame header (SOFn or DHP) payload: P, Y, X, Nf and `components` 1×1 specs on table 0.
pub fn frame_payload(precision: u8, height: u16, width: u16, components: u8) -> Vec<u8> {
    let mut out = vec![precision];
    out.extend_from_slice(&height.to_be_bytes());
    out.extend_from_slice(&width.to_be_bytes());
    out.push(components);
    for c in 0..components {
        out.extend_from_slice(&[c + 1, 0x11, 0]);
    }
    out
}

/// A frame header segment.
pub fn sof(marker: u8, precision: u8, height: u16, width: u16, components: u8) -> Vec<u8> {
    segment(marker, &frame_payload(precision, height, width, components))
}

/// SOI followed by `parts`.
pub fn jpeg(parts: &[&[u8]]) -> Vec<u8> {
    let mut out = vec![0xFF, 0xD8];
    for part in parts {
        out.extend_from_slice(part);
    }
    out
}

/// A JFIF APP0 segment.
pub fn app0() -> Vec<u8> {
    segment(0xE0, b"JFIF\0\x01\x01\0\0\x01\0\x01\0\0")
}

/// A minimal DQT segment (one 8-bit table).
pub fn dqt() -> Vec<u8> {
    let mut payload = vec![0u8];
    payload.extend_from_slice(&[1u8; 64]);
    segment(0xDB, &payload)
}

/// A DHT segment with an empty table (syntax only).
pub fn dht() -> Vec<u8> {
    let mut payload = vec![0u8];
    payload.extend_from_slice(&[0u8; 16]);
    segment(0xC4, &payload)
}

/// SOS for one component, then a few entropy-coded bytes and EOI.
pub fn scan_and_eoi() -> Vec<u8> {
    let mut out = segment(0xDA, &[1, 1, 0, 0, 63, 0]);
    out.extend_from_slice(&[0x12, 0x34, 0xFF, 0x00, 0x56, 0xFF, 0xD9]);
    out
}

/// Encodes a real JPEG with the `image` crate.
pub fn encode(width: u32, height: u32, quality: u8, color: image::ColorType) -> Vec<u8> {
    let channels = usize::from(color.channel_count());
    let pixels: Vec<u8> = (0..width as usize * height as usize * channels)
        .map(|i| (i * 31 % 251) as u8)
        .collect();
    let mut out = Vec::new();
    let mut encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, quality);
    encoder
        .encode(&pixels, width, height, color.into())
        .expect("the image crate encodes JPEG");
    out
}

/// The offset of the first SOFn marker in a well-formed JPEG made by [`encode`], found by
/// walking segments and fill bytes.
pub fn frame_offset(jpeg: &[u8]) -> usize {
    let mut at = 2;
    loop {
        let marker = jpeg[at + 1];
        if marker == 0xFF {
            at += 1;
            continue;
        }
        if (0xC0..=0xCF).contains(&marker) && ![0xC4, 0xC8, 0xCC].contains(&marker) {
            return at;
        }
        let len = usize::from(u16::from_be_bytes([jpeg[at + 2], jpeg[at + 3]]));
        at += 2 + len;
    }
}
