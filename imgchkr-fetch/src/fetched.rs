//! What reading an object's header learned, and how much each read asks for: shared by the
//! `url` and `s3` readers.

use imgchkr_core::{ImageInfo, ProbeError};

/// The first read of an object: enough for a typical JPEG's header when no large APPn block
/// comes first.
pub(crate) const FIRST_READ: usize = 2048;
/// Later reads: at least this much, so a run of small segments costs one request.
pub(crate) const CHUNK: usize = 1024;

/// What a fetch learned.
#[derive(Debug)]
pub(crate) struct Fetched {
    /// The object's total size.
    pub(crate) size: u64,
    /// The probe's answer.
    pub(crate) probed: Result<ImageInfo, ProbeError>,
}
