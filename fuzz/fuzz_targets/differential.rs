//! Differential: `imgchkr_core::probe` against `jpeg_decoder::Decoder::read_info` (which stops
//! right after the frame header).
//!
//! When both read dimensions they must agree. When their verdicts differ, only these
//! documented reasons are allowed; anything else panics:
//!
//! * imgchkr Ok, jpeg-decoder Err:
//!   - R1 jpeg-decoder does not support the frame (`Error::Unsupported`): arithmetic coding
//!     (SOF9–15 or a DAC segment), precision other than 8 outside lossless (12-bit DCT), a
//!     component count other than 1, 3 or 4, a sampling-factor combination its upsampler lacks,
//!     hierarchical mode (DHP/EXP, differential SOF5–7/13–15), DNL.
//!   - R2 the frame header is fine to both (jpeg-decoder reads `SOI + that SOFn` alone with the
//!     same dimensions, or reports a hierarchical `SOI + DHP + SOFn` unsupported, R1), and
//!     jpeg-decoder failed earlier, on a segment imgchkr skips by design
//!     without reading its content: a DQT/DHT/DRI/APPn/COM whose content jpeg-decoder rejects,
//!     or a marker jpeg-decoder refuses before a frame although T.81 lets the walk skip it
//!     (TEM, RSTn, JPG, JPGn, RES, DNL, EXP as a length-prefixed segment).
//!   - R3 a frame header that T.81 B.2.2 forbids but imgchkr does not check (yet; see the
//!     report): two components with the same identifier Ci, or a lossless frame whose
//!     quantization table selector Tqi is not 0.
//! * imgchkr Err, jpeg-decoder Ok:
//!   - R4 imgchkr's marker strictness (T.81 B.1.1.2): bytes other than `FF` between segments
//!     (`ExpectedMarker`) or `FF 00` where a marker must be (`InvalidMarker`); jpeg-decoder,
//!     like libjpeg, skips to the next `FF` and ignores `FF 00`.
#![no_main]

use imgchkr_core::probe::HeaderError;
use imgchkr_core::ProbeError;
use libfuzzer_sys::fuzz_target;

/// The first SOFn segment (with its marker) on imgchkr's walk, and the DHP segment before it
/// (hierarchical mode). Only called when imgchkr accepted the header, so the walk is
/// well-formed.
fn frame_segment(data: &[u8]) -> Option<(&[u8], Option<&[u8]>)> {
    let mut pos = 2;
    let mut dhp = None;
    loop {
        if *data.get(pos)? != 0xFF {
            return None;
        }
        let code = *data.get(pos + 1)?;
        match code {
            0xFF => pos += 1,
            0x01 | 0xD0..=0xD7 => pos += 2,
            _ => {
                let len = usize::from(u16::from_be_bytes([*data.get(pos + 2)?, *data.get(pos + 3)?]));
                let end = pos + 2 + len;
                match code {
                    0xC0..=0xC3 | 0xC5..=0xC7 | 0xC9..=0xCB | 0xCD..=0xCF => {
                        return Some((data.get(pos..end)?, dhp));
                    }
                    0xDE => {
                        dhp = Some(data.get(pos..end)?);
                        pos = end;
                    }
                    _ => pos = end,
                }
            }
        }
    }
}

/// jpeg-decoder's answer on `data`.
fn jd(data: &[u8]) -> Result<(u32, u32), jpeg_decoder::Error> {
    let mut decoder = jpeg_decoder::Decoder::new(data);
    decoder.read_info()?;
    let info = decoder.info().expect("read_info succeeded");
    Ok((u32::from(info.width), u32::from(info.height)))
}

/// R3: the frame header breaks a B.2.2 rule imgchkr does not check.
fn unchecked_frame_rule(sof: &[u8]) -> bool {
    let lossless = matches!(sof[1], 0xC3 | 0xC7 | 0xCB | 0xCF);
    let specs: Vec<&[u8]> = sof[10..].chunks(3).collect();
    let duplicate_id = specs
        .iter()
        .enumerate()
        .any(|(i, a)| specs[..i].iter().any(|b| b[0] == a[0]));
    let lossless_tq = lossless && specs.iter().any(|c| c[2] != 0);
    duplicate_id || lossless_tq
}

fuzz_target!(|data: &[u8]| {
    // jpeg-decoder reads JPEG only (SOI first); imgchkr's other formats are out of scope here.
    if !data.starts_with(&[0xFF, 0xD8]) {
        return;
    }
    let ours = imgchkr_core::probe(data);
    let theirs = jd(data);
    match (&ours, &theirs) {
        (Ok(info), Ok(dims)) => {
            assert_eq!((info.width, info.height), *dims, "both read dimensions, and differ");
        }
        (Ok(info), Err(e)) => {
            // R1
            if matches!(e, jpeg_decoder::Error::Unsupported(_)) {
                return;
            }
            let (sof, dhp) = frame_segment(data).expect("imgchkr accepted: a frame header exists");
            // The frame alone: SOI, the DHP in hierarchical mode, the SOFn.
            let mut alone = vec![0xFF, 0xD8];
            alone.extend_from_slice(dhp.unwrap_or_default());
            alone.extend_from_slice(sof);
            match jd(&alone) {
                // R2
                Ok(dims) => {
                    assert!(dhp.is_none(), "jpeg-decoder reads a hierarchical frame: {dims:?}");
                    assert_eq!(dims, (info.width, info.height), "frame read alone");
                }
                // R1 once the earlier segments are gone.
                Err(jpeg_decoder::Error::Unsupported(_)) => {}
                // R3
                Err(_) if unchecked_frame_rule(sof) => {}
                Err(alone_err) => panic!(
                    "imgchkr accepted {info:?}; jpeg-decoder rejects its frame header: {alone_err:?} (whole file: {e:?})"
                ),
            }
        }
        (Err(ProbeError::Malformed { reason, .. }), Ok(_))
            if matches!(
                reason,
                HeaderError::ExpectedMarker { .. } | HeaderError::InvalidMarker { .. }
            ) => {} // R4
        (Err(ours), Ok(dims)) => {
            panic!("imgchkr rejects ({ours}) what jpeg-decoder reads as {dims:?}")
        }
        (Err(_), Err(_)) => {}
    }
});
