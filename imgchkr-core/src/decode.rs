//! Opt-in deep verification (cargo feature `decode`): a full decode with the `image` crate,
//! run only after every header check has passed, under limits derived from the policy so a
//! decompression bomb cannot allocate more than the policy's largest image needs.

use std::io::Cursor;

use image::{ImageFormat, ImageReader, Limits};

use crate::policy::Policy;
use crate::probe::Format;

/// Bytes per pixel of the widest decoded layout (16-bit RGBA), for the allocation limit.
const MAX_BYTES_PER_PIXEL: u64 = 8;
/// Room for the decoder's own tables and buffers beside the pixels.
const DECODER_OVERHEAD: u64 = 16 * 1024 * 1024;

/// Decodes `bytes` (a whole file of `format`) and returns why it is corrupt, if it is.
pub(crate) fn corrupt_data(bytes: &[u8], format: Format, policy: &Policy) -> Option<String> {
    let image_format = match format {
        Format::Jpeg => return corrupt_jpeg(bytes, policy),
        Format::Png => ImageFormat::Png,
        Format::Gif => ImageFormat::Gif,
        Format::Webp => ImageFormat::WebP,
        Format::Bmp => ImageFormat::Bmp,
        other => return Some(format!("{other} cannot be decoded")),
    };
    let mut limits = Limits::default();
    limits.max_image_width = Some(policy.max_width);
    limits.max_image_height = Some(policy.max_height);
    limits.max_alloc = Some(
        u64::from(policy.max_width) * u64::from(policy.max_height) * MAX_BYTES_PER_PIXEL
            + DECODER_OVERHEAD,
    );
    let mut reader = ImageReader::with_format(Cursor::new(bytes), image_format);
    reader.limits(limits);
    reader.decode().err().map(|e| e.to_string())
}

/// JPEG goes to zune-jpeg directly, in strict mode: through the `image` crate it fills a
/// truncated or damaged scan with grey instead of failing, which would hide the very damage
/// this check exists to find.
fn corrupt_jpeg(bytes: &[u8], policy: &Policy) -> Option<String> {
    let as_usize = |n: u32| usize::try_from(n).unwrap_or(usize::MAX);
    let options = zune_core::options::DecoderOptions::default()
        .set_strict_mode(true)
        .set_max_width(as_usize(policy.max_width))
        .set_max_height(as_usize(policy.max_height));
    let mut decoder = zune_jpeg::JpegDecoder::new_with_options(
        zune_core::bytestream::ZCursor::new(bytes),
        options,
    );
    decoder
        .decode()
        .err()
        .map(|e| e.to_string().trim_matches('"').to_owned())
}
