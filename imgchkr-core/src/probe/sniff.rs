//! Format identification by magic bytes.

use super::Format;

/// How many leading bytes identify every format below (RIFF/WEBP and ISO-BMFF brands need 12).
pub(crate) const SNIFF_LEN: usize = 12;

/// The format announced by the leading bytes `head` (the first [`SNIFF_LEN`] bytes of the
/// input, or all of it if shorter). Never guesses from a name.
#[inline]
pub(crate) fn sniff(head: &[u8]) -> Option<Format> {
    // T.81 B.1.1.3: a JPEG interchange stream starts with SOI.
    if head.starts_with(&[0xFF, 0xD8]) {
        return Some(Format::Jpeg);
    }
    let format = match head {
        [0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A, ..] => Format::Png,
        [b'G', b'I', b'F', b'8', b'7' | b'9', b'a', ..] => Format::Gif,
        [
            b'R',
            b'I',
            b'F',
            b'F',
            _,
            _,
            _,
            _,
            b'W',
            b'E',
            b'B',
            b'P',
            ..,
        ] => Format::Webp,
        [b'B', b'M', ..] => Format::Bmp,
        [b'I', b'I', 0x2A | 0x2B, 0x00, ..] | [b'M', b'M', 0x00, 0x2A | 0x2B, ..] => Format::Tiff,
        [_, _, _, _, b'f', b't', b'y', b'p', brand @ ..] if brand.len() >= 4 => {
            return iso_bmff_brand([brand[0], brand[1], brand[2], brand[3]]);
        }
        [0xFF, 0x0A, ..] | [0, 0, 0, 0x0C, b'J', b'X', b'L', b' ', ..] => Format::Jxl,
        [0xFF, 0x4F, 0xFF, 0x51, ..] | [0, 0, 0, 0x0C, b'j', b'P', b' ', b' ', ..] => Format::Jp2,
        [0, 0, 1, 0, ..] => Format::Ico,
        [b'8', b'B', b'P', b'S', ..] => Format::Psd,
        [b'q', b'o', b'i', b'f', ..] => Format::Qoi,
        _ => return None,
    };
    Some(format)
}

/// HEIF and AVIF files are ISO-BMFF files told apart by the major brand of their `ftyp` box.
fn iso_bmff_brand(brand: [u8; 4]) -> Option<Format> {
    match &brand {
        b"avif" | b"avis" => Some(Format::Avif),
        b"heic" | b"heix" | b"hevc" | b"hevx" | b"heim" | b"heis" | b"hevm" | b"hevs" | b"mif1"
        | b"msf1" => Some(Format::Heif),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magic_bytes_name_the_format() {
        let cases: &[(&[u8], Option<Format>)] = &[
            (b"\xFF\xD8\xFF\xE0", Some(Format::Jpeg)),
            (b"\xFF\xD8", Some(Format::Jpeg)),
            (b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR", Some(Format::Png)),
            (b"GIF89a\x01\x00", Some(Format::Gif)),
            (b"GIF87a", Some(Format::Gif)),
            (b"RIFF\0\0\0\0WEBPVP8 ", Some(Format::Webp)),
            (b"RIFF\0\0\0\0WAVEfmt ", None),
            (b"BM\0\0\0\0", Some(Format::Bmp)),
            (b"II*\0\x08\0\0\0", Some(Format::Tiff)),
            (b"MM\0*\0\0\0\x08", Some(Format::Tiff)),
            (b"\0\0\0\x18ftypheic", Some(Format::Heif)),
            (b"\0\0\0\x1cftypavif", Some(Format::Avif)),
            (b"\0\0\0\x1cftypisom", None),
            (b"\xFF\x0A\xFA", Some(Format::Jxl)),
            (b"\0\0\0\x0cJXL \r\n\x87\n", Some(Format::Jxl)),
            (b"\xFF\x4F\xFF\x51", Some(Format::Jp2)),
            (b"\0\0\x01\0\x01\0", Some(Format::Ico)),
            (b"8BPS\0\x01", Some(Format::Psd)),
            (b"qoif\0\0", Some(Format::Qoi)),
            (b"", None),
            (b"\xFF", None),
            (b"hello world!", None),
        ];
        for (bytes, want) in cases {
            assert_eq!(sniff(bytes), *want, "{bytes:?}");
        }
    }
}
