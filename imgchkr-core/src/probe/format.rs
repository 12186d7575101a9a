//! Image formats and what a JPEG frame header says.

use std::fmt;
use std::str::FromStr;

/// An image format recognised by its leading bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Format {
    /// JPEG (ITU-T T.81): starts with SOI, `FF D8`.
    Jpeg,
    /// PNG.
    Png,
    /// GIF87a / GIF89a.
    Gif,
    /// WebP (RIFF container).
    Webp,
    /// Windows / OS/2 bitmap.
    Bmp,
    /// TIFF (and BigTIFF).
    Tiff,
    /// HEIF / HEIC (ISO-BMFF with a HEIF brand).
    Heif,
    /// AVIF (ISO-BMFF with an AVIF brand).
    Avif,
    /// JPEG XL (codestream or container).
    Jxl,
    /// JPEG 2000 (codestream or JP2 container).
    Jp2,
    /// Windows icon.
    Ico,
    /// Photoshop document.
    Psd,
    /// Quite OK Image format.
    Qoi,
}

impl Format {
    /// Every format, in declaration order.
    pub const ALL: [Format; 13] = [
        Format::Jpeg,
        Format::Png,
        Format::Gif,
        Format::Webp,
        Format::Bmp,
        Format::Tiff,
        Format::Heif,
        Format::Avif,
        Format::Jxl,
        Format::Jp2,
        Format::Ico,
        Format::Psd,
        Format::Qoi,
    ];

    /// The lower-case name used in error texts and JSON (`"jpeg"`, `"png"`, …).
    pub const fn name(self) -> &'static str {
        match self {
            Format::Jpeg => "jpeg",
            Format::Png => "png",
            Format::Gif => "gif",
            Format::Webp => "webp",
            Format::Bmp => "bmp",
            Format::Tiff => "tiff",
            Format::Heif => "heif",
            Format::Avif => "avif",
            Format::Jxl => "jxl",
            Format::Jp2 => "jp2",
            Format::Ico => "ico",
            Format::Psd => "psd",
            Format::Qoi => "qoi",
        }
    }

    /// The upper-case name used in prose (`"JPEG"`, `"PNG"`, …).
    pub const fn label(self) -> &'static str {
        match self {
            Format::Jpeg => "JPEG",
            Format::Png => "PNG",
            Format::Gif => "GIF",
            Format::Webp => "WebP",
            Format::Bmp => "BMP",
            Format::Tiff => "TIFF",
            Format::Heif => "HEIF",
            Format::Avif => "AVIF",
            Format::Jxl => "JPEG XL",
            Format::Jp2 => "JPEG 2000",
            Format::Ico => "ICO",
            Format::Psd => "PSD",
            Format::Qoi => "QOI",
        }
    }

    /// Whether imgchkr reads this format's dimensions (JPEG, PNG, GIF, WebP, BMP); the
    /// others are only recognised.
    pub const fn is_probed(self) -> bool {
        matches!(
            self,
            Format::Jpeg | Format::Png | Format::Gif | Format::Webp | Format::Bmp
        )
    }

    const fn bit(self) -> u16 {
        1 << self as u16
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A format name that imgchkr does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown image format {0:?}")]
pub struct UnknownFormatName(pub String);

impl FromStr for Format {
    type Err = UnknownFormatName;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.trim().to_ascii_lowercase();
        let alias = match lower.as_str() {
            "jpg" => "jpeg",
            "tif" => "tiff",
            "heic" => "heif",
            other => other,
        };
        Format::ALL
            .into_iter()
            .find(|f| f.name() == alias)
            .ok_or_else(|| UnknownFormatName(s.to_owned()))
    }
}

impl serde::Serialize for Format {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> serde::Deserialize<'de> for Format {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        name.parse().map_err(serde::de::Error::custom)
    }
}

/// A set of formats (a policy's allowed formats).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Formats(u16);

impl Formats {
    /// No format.
    pub const EMPTY: Formats = Formats(0);
    /// JPEG alone: the default policy.
    pub const JPEG: Formats = Formats(Format::Jpeg.bit());

    /// The set holding `formats`.
    pub fn of(formats: &[Format]) -> Formats {
        formats.iter().fold(Formats::EMPTY, |set, f| set.with(*f))
    }

    /// This set plus `format`.
    pub const fn with(self, format: Format) -> Formats {
        Formats(self.0 | format.bit())
    }

    /// Whether `format` is in the set.
    pub const fn contains(self, format: Format) -> bool {
        self.0 & format.bit() != 0
    }

    /// Whether the set is empty.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The formats in the set, in declaration order.
    pub fn iter(self) -> impl Iterator<Item = Format> {
        Format::ALL.into_iter().filter(move |f| self.contains(*f))
    }
}

/// Why a list of formats was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FormatsError {
    /// A name that is no format.
    #[error(transparent)]
    Unknown(#[from] UnknownFormatName),
    /// A format imgchkr recognises but cannot validate, as it does not read its dimensions.
    #[error("format {0} cannot be validated: imgchkr does not read its dimensions")]
    NotProbed(Format),
    /// No format at all.
    #[error("no format given")]
    Empty,
}

impl FromStr for Formats {
    type Err = FormatsError;

    /// A comma-separated list: `jpeg,png,webp`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut set = Formats::EMPTY;
        for name in s.split(',').filter(|n| !n.trim().is_empty()) {
            let format: Format = name.parse()?;
            if !format.is_probed() {
                return Err(FormatsError::NotProbed(format));
            }
            set = set.with(format);
        }
        if set.is_empty() {
            return Err(FormatsError::Empty);
        }
        Ok(set)
    }
}

impl fmt::Display for Formats {
    /// Comma-separated names: `jpeg, png`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, format) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            f.write_str(format.name())?;
        }
        Ok(())
    }
}

/// The coding process of a JPEG frame (T.81 Table B.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Process {
    /// Baseline DCT (SOF0).
    Baseline,
    /// Extended sequential DCT (SOF1, SOF5, SOF9, SOF13).
    ExtendedSequential,
    /// Progressive DCT (SOF2, SOF6, SOF10, SOF14).
    Progressive,
    /// Lossless (SOF3, SOF7, SOF11, SOF15).
    Lossless,
}

/// The entropy coding of a JPEG frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Coding {
    /// Huffman coding (SOF0–SOF7).
    Huffman,
    /// Arithmetic coding (SOF9–SOF15).
    Arithmetic,
}

/// What a JPEG frame header (SOFn) says besides the dimensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct JpegFrame {
    /// The SOFn marker's second byte (`0xC0` for baseline, `0xC2` for progressive, …).
    pub marker: u8,
    /// The coding process.
    pub process: Process,
    /// Huffman or arithmetic.
    pub coding: Coding,
    /// A differential frame (SOF5–7, SOF13–15), found in hierarchical mode.
    pub differential: bool,
    /// Hierarchical mode: a DHP segment came first, and the dimensions are the DHP's.
    pub hierarchical: bool,
    /// Sample precision in bits (P).
    pub precision: u8,
    /// Number of image components (Nf): 1 for greyscale, 3 for YCbCr, 4 for CMYK.
    pub components: u8,
}

impl JpegFrame {
    /// What the SOFn marker byte `marker` (SOF0–SOF15 but DHT, JPG and DAC) and the given
    /// fields say: the low two bits give the process (C0 is the only baseline one), bit 2 a
    /// differential frame, bit 3 arithmetic coding.
    pub(crate) const fn of_sof(
        marker: u8,
        hierarchical: bool,
        precision: u8,
        components: u8,
    ) -> JpegFrame {
        JpegFrame {
            marker,
            process: Process::of_sof(marker),
            coding: if marker & 0x08 == 0 {
                Coding::Huffman
            } else {
                Coding::Arithmetic
            },
            differential: marker & 0x04 != 0,
            hierarchical,
            precision,
            components,
        }
    }
}

impl Process {
    /// The process of a SOFn marker byte (SOF0–SOF15 but DHT, JPG and DAC).
    pub(crate) const fn of_sof(marker: u8) -> Process {
        match marker & 3 {
            0 => Process::Baseline,
            1 => Process::ExtendedSequential,
            2 => Process::Progressive,
            _ => Process::Lossless,
        }
    }
}

impl fmt::Display for Process {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Process::Baseline => "baseline",
            Process::ExtendedSequential => "extended sequential",
            Process::Progressive => "progressive",
            Process::Lossless => "lossless",
        })
    }
}
