//! Local files: confinement to an image directory, and header reads of only what the probe
//! asks for.

use std::fs::File;
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use cap_std::ambient_authority;
use cap_std::fs::Dir;
use rustix::io::Errno;

use crate::job::{ErrorMap, IMAGE_ERRORS_KEY};
use crate::policy::{Policy, ValidationError};
use crate::probe::{ImageInfo, Probe, ProbeError, Step};

/// How many bytes one read asks for: a segment header needs 4, and a typical JPEG's tables
/// and frame header fit in one such read once the large APPn blocks are skipped.
const READ_CHUNK: usize = 1024;

/// The outcome of validating one image.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Report {
    /// The file's size, when it could be opened.
    pub size: Option<u64>,
    /// What the header probe found, when the file could be opened.
    pub probed: Option<Result<ImageInfo, ProbeError>>,
    /// Every failed check in the contract's order; empty when the image is valid.
    pub errors: Vec<ValidationError>,
    /// How many bytes were read from the file.
    pub bytes_read: u64,
}

impl Report {
    /// The policy applied to what the probe found in an input of `size` bytes, of which
    /// `bytes_read` were read: the one place every source (local files, bytes in memory,
    /// remote objects, uploads) turns a probe into a verdict.
    pub fn from_probe(
        size: u64,
        probed: Result<ImageInfo, ProbeError>,
        bytes_read: u64,
        policy: &Policy,
    ) -> Report {
        Report {
            size: Some(size),
            errors: policy.check(size, &probed),
            probed: Some(probed),
            bytes_read,
        }
    }

    /// A report on bytes already in memory.
    pub fn from_bytes(bytes: &[u8], policy: &Policy) -> Report {
        let size = bytes.len() as u64;
        #[allow(unused_mut)] // mutated only with the `decode` feature
        let mut report = Report::from_probe(size, crate::probe::probe(bytes), size, policy);
        #[cfg(feature = "decode")]
        if let (crate::policy::Verify::Decode, true, Some(Ok(info))) =
            (policy.verify, report.errors.is_empty(), report.probed)
            && let Some(reason) = crate::decode::corrupt_data(bytes, info.format, policy)
        {
            report.errors.push(ValidationError::CorruptData { reason });
        }
        report
    }

    /// A report on an input that could not be reached.
    pub fn unreachable(error: ValidationError) -> Report {
        Report {
            size: None,
            probed: None,
            errors: vec![error],
            bytes_read: 0,
        }
    }

    /// Whether every check passed.
    pub fn is_valid(&self) -> bool {
        self.errors.is_empty()
    }

    /// The format the leading bytes announce, if the file was read and recognised.
    pub fn format(&self) -> Option<crate::probe::Format> {
        match self.probed.as_ref()? {
            Ok(info) => Some(info.format),
            Err(e) => e.format(),
        }
    }

    /// The dimensions read from the header, even when they exceed the limits.
    pub fn dimensions(&self) -> Option<(u32, u32)> {
        match self.probed.as_ref()? {
            Ok(info) => Some((info.width, info.height)),
            Err(_) => None,
        }
    }

    /// The failure texts, as the `onFailure` payload carries them.
    pub fn error_texts(&self) -> Vec<String> {
        self.errors.iter().map(ToString::to_string).collect()
    }

    /// The errors as a job and the `onFailure` payload carry them, `None` when valid.
    pub fn error_map(&self) -> Option<ErrorMap> {
        (!self.is_valid())
            .then(|| ErrorMap::from([(IMAGE_ERRORS_KEY.to_owned(), self.error_texts())]))
    }

    /// The warning texts: what the header probe tolerated (for JPEG, extraneous bytes skipped
    /// between marker segments, as libjpeg skips them, e.g. `Skipped 3 extraneous bytes at
    /// offset 81 before marker 0xFFC0`). A warning never fails a file; none is given when the
    /// header was refused (a strict policy refuses those bytes instead).
    pub fn warnings(&self) -> Vec<String> {
        match &self.probed {
            Some(Ok(info)) if !self.errors.iter().any(ValidationError::is_invalid_header) => {
                info.warnings()
            }
            _ => Vec::new(),
        }
    }
}

/// A directory that client paths are resolved in and confined to.
///
/// Resolution goes through `cap-std` (`openat2` with `RESOLVE_BENEATH` where the kernel has
/// it), so neither `..` nor a symlink can lead outside. An absolute client path is accepted
/// when it lies inside the directory.
#[derive(Debug)]
pub struct ImageDir {
    dir: Dir,
    /// The directory's absolute path as configured, and canonical, to strip from absolute
    /// client paths.
    roots: Vec<PathBuf>,
}

impl ImageDir {
    /// Opens `path` as the image directory.
    pub fn open(path: impl AsRef<Path>) -> io::Result<ImageDir> {
        let path = path.as_ref();
        let dir = Dir::open_ambient_dir(path, ambient_authority())?;
        let mut roots = vec![std::path::absolute(path)?];
        let canonical = std::fs::canonicalize(path)?;
        if !roots.contains(&canonical) {
            roots.push(canonical);
        }
        Ok(ImageDir { dir, roots })
    }

    /// The directory's canonical path.
    pub fn path(&self) -> &Path {
        &self.roots[self.roots.len() - 1]
    }

    /// Validates the file at `client_path` (relative to the directory, or absolute inside it).
    /// Error texts carry `client_path` as given, never the resolved path.
    pub fn validate(&self, client_path: &str, policy: &Policy) -> Report {
        match self.open_file(client_path) {
            Ok((file, size)) => validate_open_file(&file, size, client_path, policy),
            Err(error) => Report::unreachable(error),
        }
    }

    /// Opens the regular file at `client_path` without following it outside the directory and
    /// without blocking (a FIFO is refused, never opened for a blocking read). Returns the file
    /// and its size.
    pub fn open_file(&self, client_path: &str) -> Result<(File, u64), ValidationError> {
        let relative =
            self.relative(client_path)
                .ok_or_else(|| ValidationError::OutsideImageDir {
                    path: client_path.to_owned(),
                })?;
        let access = |e: io::Error| access_error(&e, client_path);
        // Refuse non-regular files before opening them: opening a device can have effects.
        if !self.dir.metadata(relative).map_err(access)?.is_file() {
            return Err(not_regular(client_path));
        }
        use cap_std::fs::OpenOptionsExt as _;
        let mut options = cap_std::fs::OpenOptions::new();
        options.read(true).custom_flags(nonblocking_flags());
        let file = self
            .dir
            .open_with(relative, &options)
            .map_err(access)?
            .into_std();
        checked_size(file, client_path)
    }

    fn relative<'a>(&self, client_path: &'a str) -> Option<&'a Path> {
        let path = Path::new(client_path);
        if !path.is_absolute() {
            return Some(path);
        }
        let inside = self
            .roots
            .iter()
            .find_map(|root| path.strip_prefix(root).ok())?;
        Some(if inside.as_os_str().is_empty() {
            Path::new(".")
        } else {
            inside
        })
    }
}

/// Validates a file anywhere on the filesystem (for `imgchkr check`): the same checks and
/// texts as [`ImageDir::validate`], without confinement.
pub fn validate_file(path: &Path, display: &str, policy: &Policy) -> Report {
    let opened = (|| {
        let access = |e: io::Error| access_error(&e, display);
        if !std::fs::metadata(path).map_err(access)?.is_file() {
            return Err(not_regular(display));
        }
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(nonblocking_flags())
            .open(path)
            .map_err(access)?;
        checked_size(file, display)
    })();
    match opened {
        Ok((file, size)) => validate_open_file(&file, size, display, policy),
        Err(error) => Report::unreachable(error),
    }
}

/// Probes and checks an open regular file of `size` bytes.
pub fn validate_open_file(file: &File, size: u64, display: &str, policy: &Policy) -> Report {
    let read_failed = |e: io::Error| ValidationError::ReadFailed {
        path: display.to_owned(),
        reason: e.to_string(),
    };
    let (probed, bytes_read) = match read_header(file, size) {
        Ok(read) => read,
        Err(e) => return Report::unreachable(read_failed(e)),
    };
    #[allow(unused_mut)] // mutated only with the `decode` feature
    let mut report = Report::from_probe(size, probed, bytes_read, policy);
    #[cfg(feature = "decode")]
    if let (crate::policy::Verify::Decode, true, Some(Ok(info))) =
        (policy.verify, report.errors.is_empty(), report.probed)
    {
        // The size check passed, so the whole file is at most `max_bytes`.
        let mut bytes = vec![0; usize::try_from(size).unwrap_or(0)];
        match file.read_exact_at(&mut bytes, 0) {
            Ok(()) => {
                report.bytes_read += size;
                if let Some(reason) = crate::decode::corrupt_data(&bytes, info.format, policy) {
                    report.errors.push(ValidationError::CorruptData { reason });
                }
            }
            Err(e) => report.errors.push(read_failed(e)),
        }
    }
    report
}

/// Runs the probe over `file` with positioned reads of only the ranges it asks for. Returns
/// the probe's answer and the number of bytes read.
pub fn read_header(file: &File, size: u64) -> io::Result<(Result<ImageInfo, ProbeError>, u64)> {
    let mut probe = Probe::new();
    let mut buf = [0u8; READ_CHUNK];
    let mut bytes_read = 0u64;
    let mut step = probe.step();
    loop {
        let need = match step {
            Step::Done(result) => return Ok((result, bytes_read)),
            Step::Need(need) => need,
        };
        if need.offset >= size {
            return Ok((probe.finish(), bytes_read));
        }
        let len = READ_CHUNK.max(need.len).min(buf.len());
        let len = len.min(usize::try_from(size - need.offset).unwrap_or(usize::MAX));
        let got = loop {
            match file.read_at(&mut buf[..len], need.offset) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => break other?,
            }
        };
        if got == 0 {
            // The file shrank under us: what was read is all there is.
            return Ok((probe.finish(), bytes_read));
        }
        bytes_read += got as u64;
        step = probe.feed(need.offset, &buf[..got]);
    }
}

fn checked_size(file: File, display: &str) -> Result<(File, u64), ValidationError> {
    let metadata = file.metadata().map_err(|e| access_error(&e, display))?;
    // Checked again on the open file: the path may have been swapped since the first look.
    if !metadata.is_file() {
        return Err(not_regular(display));
    }
    Ok((file, metadata.len()))
}

fn nonblocking_flags() -> i32 {
    // O_NONBLOCK: a FIFO swapped in after the metadata check must not block the open.
    // O_NOCTTY: a terminal must never become the controlling one.
    (rustix::fs::OFlags::NONBLOCK | rustix::fs::OFlags::NOCTTY).bits() as i32
}

fn not_regular(path: &str) -> ValidationError {
    ValidationError::NotRegularFile {
        path: path.to_owned(),
    }
}

/// Maps an open or stat failure to the contract's texts.
fn access_error(e: &io::Error, path: &str) -> ValidationError {
    let path = path.to_owned();
    let errno = e.raw_os_error().map(Errno::from_raw_os_error);
    match errno {
        // cap-std reports an escape (`..`, absolute or escaping symlink) as a PermissionDenied
        // error of its own, with no OS error code; openat2 reports EXDEV.
        None if e.kind() == io::ErrorKind::PermissionDenied => {
            ValidationError::OutsideImageDir { path }
        }
        Some(Errno::XDEV) => ValidationError::OutsideImageDir { path },
        Some(Errno::NOENT | Errno::NOTDIR | Errno::LOOP | Errno::NAMETOOLONG) => {
            ValidationError::NotFound { path }
        }
        Some(Errno::ACCESS | Errno::PERM) => ValidationError::PermissionDenied { path },
        _ if matches!(
            e.kind(),
            io::ErrorKind::NotFound | io::ErrorKind::InvalidInput
        ) =>
        {
            ValidationError::NotFound { path }
        }
        _ => ValidationError::ReadFailed {
            path,
            reason: e.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_errors_map_to_contract_texts() {
        let cases = [
            (Errno::NOENT, "File not found: a.jpg"),
            (Errno::NOTDIR, "File not found: a.jpg"),
            (Errno::ACCESS, "Permission denied: a.jpg"),
            (Errno::PERM, "Permission denied: a.jpg"),
            (Errno::XDEV, "Path is outside the image directory: a.jpg"),
        ];
        for (errno, text) in cases {
            let e = io::Error::from_raw_os_error(errno.raw_os_error());
            assert_eq!(access_error(&e, "a.jpg").to_string(), text);
        }
        let escape = io::Error::new(io::ErrorKind::PermissionDenied, "a path led outside");
        assert_eq!(
            access_error(&escape, "../x").to_string(),
            "Path is outside the image directory: ../x"
        );
        let eio = io::Error::from_raw_os_error(Errno::IO.raw_os_error());
        assert!(
            access_error(&eio, "a.jpg")
                .to_string()
                .starts_with("Read error: a.jpg: ")
        );
    }
}
