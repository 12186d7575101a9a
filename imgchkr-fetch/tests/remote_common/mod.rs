//! Generated test images for the remote-location tests.
#![allow(dead_code)] // each test binary uses its own subset

/// Appends a marker segment with `payload` (at most 65533 bytes).
fn segment(out: &mut Vec<u8>, marker: u8, payload: &[u8]) {
    let len = u16::try_from(payload.len() + 2).expect("segment too long");
    out.extend_from_slice(&[0xFF, marker]);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(payload);
}

/// A baseline JPEG header of `width` × `height`: APP0, an EXIF APP1 of `exif` bytes and an ICC
/// APP2 of `icc` bytes (0: none), DQT, SOF0, DHT and SOS, then `scan` bytes of entropy-coded
/// filler and EOI. The probe stops at SOF0; nothing here is ever decoded.
pub fn jpeg(width: u16, height: u16, exif: usize, icc: usize, scan: usize) -> Vec<u8> {
    let mut out = vec![0xFF, 0xD8];
    segment(&mut out, 0xE0, b"JFIF\0\x01\x01\0\0\x01\0\x01\0\0");
    if exif > 0 {
        let mut payload = b"Exif\0\0MM\0\x2a".to_vec();
        payload.resize(exif, 0x45);
        segment(&mut out, 0xE1, &payload);
    }
    if icc > 0 {
        let mut payload = b"ICC_PROFILE\0\x01\x01".to_vec();
        payload.resize(icc, 0x49);
        segment(&mut out, 0xE2, &payload);
    }
    let mut dqt = vec![0u8];
    dqt.extend_from_slice(&[1; 64]);
    segment(&mut out, 0xDB, &dqt);
    let [h1, h0] = height.to_be_bytes();
    let [w1, w0] = width.to_be_bytes();
    segment(
        &mut out,
        0xC0,
        &[8, h1, h0, w1, w0, 3, 1, 0x22, 0, 2, 0x11, 0, 3, 0x11, 0],
    );
    let mut dht = vec![0u8];
    dht.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    segment(&mut out, 0xC4, &dht);
    segment(&mut out, 0xDA, &[3, 1, 0, 2, 0, 3, 0, 0, 63, 0]);
    out.extend(std::iter::repeat_n(0x5A, scan));
    out.extend_from_slice(&[0xFF, 0xD9]);
    out
}

/// A PNG signature and IHDR of `width` × `height`, then an empty IDAT and IEND.
pub fn png(width: u32, height: u32) -> Vec<u8> {
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    out.extend_from_slice(&13u32.to_be_bytes());
    out.extend_from_slice(b"IHDR");
    out.extend_from_slice(&width.to_be_bytes());
    out.extend_from_slice(&height.to_be_bytes());
    out.extend_from_slice(&[8, 2, 0, 0, 0]);
    out.extend_from_slice(&[0; 4]); // CRC, not checked by a header probe
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.extend_from_slice(b"IEND");
    out.extend_from_slice(&[0xAE, 0x42, 0x60, 0x82]);
    out
}

/// Where the frame header (SOF0) starts in a [`jpeg`] image.
pub fn frame_offset(image: &[u8]) -> usize {
    image
        .windows(2)
        .position(|w| w == [0xFF, 0xC0])
        .expect("a frame header")
}
