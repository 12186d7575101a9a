//! The validation policy: limits, and the failure texts clients depend on.

use std::fmt;

use crate::probe::{Format, Formats, ImageInfo, ProbeError};

/// 10 MiB: the default size limit, inclusive.
pub const DEFAULT_MAX_BYTES: u64 = 10 * 1024 * 1024;
/// The default width and height limit, inclusive.
pub const DEFAULT_MAX_DIMENSION: u32 = 1000;

/// What an image must satisfy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Policy {
    /// Largest allowed file size in bytes, inclusive.
    pub max_bytes: u64,
    /// Largest allowed width in pixels, inclusive.
    pub max_width: u32,
    /// Largest allowed height in pixels, inclusive.
    pub max_height: u32,
    /// Formats accepted.
    pub formats: Formats,
    /// How deep to look: the header alone (the default), or a full decode too.
    pub verify: Verify,
    /// JPEG: refuse extraneous bytes between marker segments as ITU-T T.81 does
    /// (`expected a marker at offset N, found 0xXX`, `invalid marker 0xFF00 at offset N`),
    /// instead of skipping them as libjpeg does and warning (the default, `false`).
    pub strict: bool,
}

/// How deep validation looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Verify {
    /// Headers only: never reads pixel data (the default, and imgchkr's speed).
    #[default]
    Header,
    /// After the header checks pass, decode the whole image and fail corrupt data
    /// (cargo feature `decode`).
    #[cfg(feature = "decode")]
    Decode,
}

impl Default for Policy {
    /// 10 MiB, JPEG only, at most 1000 × 1000.
    fn default() -> Self {
        Policy {
            max_bytes: DEFAULT_MAX_BYTES,
            max_width: DEFAULT_MAX_DIMENSION,
            max_height: DEFAULT_MAX_DIMENSION,
            formats: Formats::JPEG,
            verify: Verify::Header,
            strict: false,
        }
    }
}

/// One failed check. `Display` gives the exact text of the API contract.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ValidationError {
    /// No such file.
    NotFound {
        /// The path as the client gave it.
        path: String,
    },
    /// The path leads outside the image directory.
    OutsideImageDir {
        /// The path as the client gave it.
        path: String,
    },
    /// A directory, FIFO, device or socket.
    NotRegularFile {
        /// The path as the client gave it.
        path: String,
    },
    /// The file exists but cannot be read.
    PermissionDenied {
        /// The path as the client gave it.
        path: String,
    },
    /// A remote object could not be fetched (connection refused, timeout, HTTP 5xx, a
    /// destination the policy forbids…).
    Unreachable {
        /// The URL or S3 URI as the client gave it.
        path: String,
        /// Why.
        reason: String,
    },
    /// Reading failed for another reason (an I/O error).
    ReadFailed {
        /// The path as the client gave it.
        path: String,
        /// What the operating system said.
        reason: String,
    },
    /// Larger than the policy allows.
    TooLarge {
        /// The file's size.
        size: u64,
        /// The policy's limit.
        max: u64,
    },
    /// A format the policy does not allow (`None`: no format recognised).
    FormatNotAllowed {
        /// What the leading bytes say.
        found: Option<Format>,
        /// What the policy allows.
        allowed: Formats,
    },
    /// An allowed format whose header cannot be read.
    InvalidHeader(ProbeError),
    /// Wider than the policy allows.
    WidthExceeds {
        /// Width from the header.
        actual: u32,
        /// The policy's limit.
        max: u32,
    },
    /// Taller than the policy allows.
    HeightExceeds {
        /// Height from the header.
        actual: u32,
        /// The policy's limit.
        max: u32,
    },
    /// The headers pass but the image data does not decode (with `Verify::Decode` only, feature `decode`).
    CorruptData {
        /// The decoder's reason.
        reason: String,
    },
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use ValidationError::*;
        match self {
            NotFound { path } => write!(f, "File not found: {path}"),
            OutsideImageDir { path } => write!(f, "Path is outside the image directory: {path}"),
            NotRegularFile { path } => write!(f, "Not a regular file: {path}"),
            PermissionDenied { path } => write!(f, "Permission denied: {path}"),
            Unreachable { path, reason } => write!(f, "Cannot fetch {path}: {reason}"),
            ReadFailed { path, reason } => write!(f, "Read error: {path}: {reason}"),
            TooLarge { size, max } => write!(f, "File size exceeds maximum ({size}/{max})"),
            FormatNotAllowed { found, allowed } => {
                let found = found.map_or("unknown", Format::name);
                if *allowed == Formats::JPEG {
                    // The seed's text, which existing clients match.
                    write!(f, "Not a JPEG ({found})")
                } else {
                    write!(f, "Format not allowed ({found}); allowed: {allowed}")
                }
            }
            InvalidHeader(ProbeError::Malformed { format, reason }) => {
                write!(f, "Invalid {} header: {reason}", format.label())
            }
            InvalidHeader(other) => write!(f, "Invalid image header: {other}"),
            WidthExceeds { actual, max } => {
                write!(f, "Image width exceeds maximum ({actual}/{max})")
            }
            HeightExceeds { actual, max } => {
                write!(f, "Image height exceeds maximum ({actual}/{max})")
            }
            CorruptData { reason } => write!(f, "Corrupt image data: {reason}"),
        }
    }
}

impl std::error::Error for ValidationError {}

impl ValidationError {
    /// Whether this is a header refusal (the probe's or strict mode's).
    pub fn is_invalid_header(&self) -> bool {
        matches!(self, ValidationError::InvalidHeader(_))
    }
}

impl Policy {
    /// Applies the size, format and dimension checks, in the contract's order, to a file of
    /// `size` bytes whose header probed as `probed`. Every failure is returned, not only the
    /// first; an empty list means the image passes. With [`Policy::strict`], a JPEG whose
    /// walk skipped extraneous bytes fails with the T.81 reason instead of its dimensions.
    ///
    /// ```
    /// use imgchkr_core::{probe, Policy};
    /// let jpeg = [0xFF, 0xD8, 0xFF, 0xC0, 0x00, 0x0B, 8, 0x04, 0xB0, 0x07, 0x08, 1, 1, 0x11, 0];
    /// let errors = Policy::default().check(jpeg.len() as u64, &probe(&jpeg));
    /// let texts: Vec<String> = errors.iter().map(ToString::to_string).collect();
    /// assert_eq!(texts, ["Image width exceeds maximum (1800/1000)",
    ///                    "Image height exceeds maximum (1200/1000)"]);
    /// ```
    pub fn check(&self, size: u64, probed: &Result<ImageInfo, ProbeError>) -> Vec<ValidationError> {
        let mut errors = Vec::new();
        if size > self.max_bytes {
            errors.push(ValidationError::TooLarge {
                size,
                max: self.max_bytes,
            });
        }
        let found = match probed {
            Ok(info) => Some(info.format),
            Err(e) => e.format(),
        };
        if !found.is_some_and(|f| self.formats.contains(f)) {
            errors.push(ValidationError::FormatNotAllowed {
                found,
                allowed: self.formats,
            });
            return errors;
        }
        match probed {
            Err(e) => errors.push(ValidationError::InvalidHeader(*e)),
            // Strict: the T.81 refusal at the first extraneous byte, as if the walk had
            // stopped there.
            Ok(ImageInfo {
                format,
                extraneous: Some(extraneous),
                ..
            }) if self.strict => {
                errors.push(ValidationError::InvalidHeader(ProbeError::Malformed {
                    format: *format,
                    reason: extraneous.strict_error(),
                }));
            }
            Ok(info) => {
                if info.width > self.max_width {
                    errors.push(ValidationError::WidthExceeds {
                        actual: info.width,
                        max: self.max_width,
                    });
                }
                if info.height > self.max_height {
                    errors.push(ValidationError::HeightExceeds {
                        actual: info.height,
                        max: self.max_height,
                    });
                }
            }
        }
        errors
    }
}
