//! Header-only image probing, sans-IO.
//!
//! [`Probe`] is a state machine fed with byte ranges. It never asks for pixel data: after
//! each [`Probe::feed`] it either has the answer ([`Step::Done`]) or says exactly which byte
//! range it needs next ([`Step::Need`]), so a caller can seek over a 60 KB EXIF block instead
//! of reading it. [`probe`] reads one whole buffer with walks over the slice that share every
//! rule with the machine and give its answer. Nothing here allocates.

mod error;
mod fixed;
mod format;
mod frame;
mod gif;
mod jpeg;
mod resync;
mod sniff;
mod webp;

pub use error::HeaderError;
pub use format::{Coding, Format, Formats, FormatsError, JpegFrame, Process, UnknownFormatName};
pub use resync::{Extraneous, MAX_EXTRANEOUS};

use std::fmt;

/// What a probe learned from an image's header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ImageInfo {
    /// The format, from the leading bytes.
    pub format: Format,
    /// Width in pixels, from the header.
    pub width: u32,
    /// Height in pixels, from the header.
    pub height: u32,
    /// For JPEG: what the frame header (SOFn) says besides the dimensions.
    pub jpeg: Option<JpegFrame>,
    /// For JPEG: the extraneous bytes skipped where markers should have been, as libjpeg
    /// skips them (`None` for a clean T.81 stream). A strict policy refuses the file instead.
    pub extraneous: Option<Extraneous>,
}

impl ImageInfo {
    /// The warnings about what the probe tolerated, as texts (empty for a clean header).
    pub fn warnings(&self) -> Vec<String> {
        self.extraneous.map(|e| e.texts()).unwrap_or_default()
    }
}

/// Why a probe could not read dimensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProbeError {
    /// The leading bytes match no format imgchkr recognises (an empty file included).
    #[error("unknown format")]
    UnknownFormat,
    /// A format recognised by its magic bytes whose dimensions imgchkr does not read.
    #[error("unsupported format ({0})")]
    UnsupportedFormat(Format),
    /// A recognised format whose header is malformed or truncated.
    #[error("invalid {format} header: {reason}")]
    Malformed {
        /// The format the leading bytes announce.
        format: Format,
        /// What is wrong with the header.
        reason: HeaderError,
    },
}

impl ProbeError {
    /// The format the leading bytes identify, if any.
    pub fn format(&self) -> Option<Format> {
        match *self {
            ProbeError::UnknownFormat => None,
            ProbeError::UnsupportedFormat(format) | ProbeError::Malformed { format, .. } => {
                Some(format)
            }
        }
    }
}

/// A byte range the probe needs before it can go on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Need {
    /// Absolute offset of the first byte needed.
    pub offset: u64,
    /// How many bytes from `offset` are needed at least; more are welcome.
    pub len: usize,
}

impl Need {
    /// One past the last byte needed.
    pub fn end(&self) -> u64 {
        self.offset.saturating_add(self.len as u64)
    }
}

/// The result of feeding a [`Probe`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// The probe has its answer; further feeding returns it again.
    Done(Result<ImageInfo, ProbeError>),
    /// The probe needs this range next (call [`Probe::finish`] if the input ends before it).
    Need(Need),
}

/// The largest run of bytes the machine looks at in one piece (a BMP's file header and
/// BITMAPINFOHEADER, 54 bytes).
const MAX_TOKEN: usize = 64;

/// An incremental, allocation-free header probe.
///
/// ```
/// use imgchkr_core::probe::{Probe, Step};
/// // SOI, then a baseline frame header for 640x480, three components.
/// let jpeg = [0xFF, 0xD8, 0xFF, 0xC0, 0x00, 0x11, 8, 0x01, 0xE0, 0x02, 0x80, 3,
///             1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1];
/// let mut probe = Probe::new();
/// // Feed it a byte at a time: it says what it needs until it knows.
/// let mut at = 0;
/// let info = loop {
///     match probe.feed(at as u64, &jpeg[at..at + 1]) {
///         Step::Done(result) => break result.unwrap(),
///         Step::Need(need) => at = need.offset as usize,
///     }
/// };
/// assert_eq!((info.width, info.height), (640, 480));
/// ```
#[derive(Debug, Clone)]
pub struct Probe {
    /// Absolute offset of the next token.
    pos: u64,
    state: State,
    /// The last token assembled across feeds, kept so a later token can reuse its bytes.
    carry: [u8; MAX_TOKEN],
    carry_at: u64,
    carry_len: usize,
}

#[derive(Debug, Clone, Copy)]
enum State {
    /// Reading the leading bytes that identify the format.
    Sniff,
    /// Walking JPEG marker segments.
    Jpeg(jpeg::Walker),
    /// Walking GIF blocks to the first image descriptor.
    Gif(gif::Walker),
    /// Walking a still WebP's chunks after VP8X to its bitstream header.
    Webp(webp::Chunks),
    /// Reading a header at fixed offsets: the first `want` bytes.
    Fixed {
        format: Format,
        want: usize,
    },
    Done(Result<ImageInfo, ProbeError>),
}

impl Default for Probe {
    fn default() -> Self {
        Self::new()
    }
}

impl Probe {
    /// A probe at the start of an input.
    pub const fn new() -> Self {
        Probe {
            pos: 0,
            state: State::Sniff,
            carry: [0; MAX_TOKEN],
            carry_at: 0,
            carry_len: 0,
        }
    }

    /// What the probe needs next, or its answer.
    pub fn step(&self) -> Step {
        match self.state {
            State::Done(result) => Step::Done(result),
            _ => {
                // Bytes of the next token already carried over from earlier feeds are not
                // asked for again: the same answer `feed` gave.
                let want = self.want();
                let held = self
                    .pos
                    .checked_sub(self.carry_at)
                    .map_or(0, |i| (self.carry_len as u64).saturating_sub(i))
                    .min(want as u64 - 1);
                Step::Need(Need {
                    offset: self.pos + held,
                    len: want - held as usize,
                })
            }
        }
    }

    /// Feeds `data`, which starts at absolute `offset` in the input.
    ///
    /// Bytes before the needed offset are ignored, as is a chunk that starts after it (the
    /// returned [`Need`] says again where to read). Chunks may overlap and may be of any size.
    pub fn feed(&mut self, offset: u64, data: &[u8]) -> Step {
        loop {
            // The hot path: the JPEG walk reads its token straight from `data`, no copy.
            if let State::Jpeg(walker) = &mut self.state
                && let Some(start) = self.pos.checked_sub(offset)
            {
                let want = walker.want();
                if start.saturating_add(want as u64) <= data.len() as u64 {
                    let mut start = start as usize;
                    if walker.at_marker() {
                        // A run of fill bytes (T.81 B.1.1.2) in one sweep: each `FF` followed
                        // by another `FF` is fill, exactly as one fill token at a time would read.
                        let run = data[start..]
                            .windows(2)
                            .take_while(|pair| pair == &[0xFF, 0xFF])
                            .count();
                        start += run;
                        self.pos += run as u64;
                        if start + want > data.len() {
                            continue;
                        }
                    }
                    if let jpeg::Next::Done(result) =
                        walker.advance(&mut self.pos, &data[start..start + want])
                    {
                        self.state = State::Done(result.map_err(|reason| ProbeError::Malformed {
                            format: Format::Jpeg,
                            reason,
                        }));
                    }
                    continue;
                }
            }
            if let State::Done(result) = self.state {
                return Step::Done(result);
            }
            let want = self.want();
            let mut token = [0u8; MAX_TOKEN];
            let have = self.gather(offset, data, &mut token[..want]);
            if have < want {
                self.keep(&token[..have]);
                return Step::Need(Need {
                    offset: self.pos + have as u64,
                    len: want - have,
                });
            }
            self.advance(&token[..want]);
        }
    }

    /// Ends the input: the answer if the probe has one, else why the bytes fed were not enough.
    pub fn finish(&self) -> Result<ImageInfo, ProbeError> {
        match self.state {
            State::Done(result) => result,
            State::Sniff => {
                // The whole input is shorter than the sniff window: judge what there is.
                let held = if self.carry_at == 0 {
                    &self.carry[..self.carry_len]
                } else {
                    &[][..]
                };
                let Some(format) = sniff::sniff(held) else {
                    return Err(ProbeError::UnknownFormat);
                };
                // Read what there is with the format's own reader: a bad length in these
                // few bytes is reported as such, not as a truncation.
                let Some((pos, state)) = start(format) else {
                    return Err(ProbeError::UnsupportedFormat(format));
                };
                let mut rest = Probe {
                    pos,
                    state,
                    ..Probe::new()
                };
                match rest.feed(0, held) {
                    Step::Done(result) => result,
                    Step::Need(_) => rest.finish(),
                }
            }
            State::Jpeg(walker) => Err(ProbeError::Malformed {
                format: Format::Jpeg,
                reason: walker.truncation(),
            }),
            State::Gif(_) => Err(ProbeError::Malformed {
                format: Format::Gif,
                reason: HeaderError::TruncatedHeader,
            }),
            State::Webp(_) => Err(ProbeError::Malformed {
                format: Format::Webp,
                reason: HeaderError::TruncatedHeader,
            }),
            State::Fixed { format, .. } => Err(ProbeError::Malformed {
                format,
                reason: HeaderError::TruncatedHeader,
            }),
        }
    }

    fn want(&self) -> usize {
        match self.state {
            State::Sniff => sniff::SNIFF_LEN,
            State::Jpeg(walker) => walker.want(),
            State::Gif(walker) => walker.want(),
            State::Webp(chunks) => chunks.want(),
            State::Fixed { want, .. } => want,
            State::Done(_) => 0,
        }
    }

    /// Copies the bytes of `[pos, pos + out.len())` that `data` and the carry hold, up to the
    /// first gap; returns how many.
    fn gather(&self, offset: u64, data: &[u8], out: &mut [u8]) -> usize {
        let want = out.len() as u64;
        // Fast paths: the token lies wholly in the new data or wholly in the carry.
        if let Some(start) = self.pos.checked_sub(offset)
            && start.saturating_add(want) <= data.len() as u64
        {
            let start = start as usize;
            out.copy_from_slice(&data[start..start + out.len()]);
            return out.len();
        }
        let mut n = 0;
        while n < out.len() {
            let at = self.pos + n as u64;
            if let Some(i) = at.checked_sub(self.carry_at)
                && i < self.carry_len as u64
            {
                out[n] = self.carry[i as usize];
            } else if let Some(i) = at.checked_sub(offset)
                && i < data.len() as u64
            {
                out[n] = data[i as usize];
            } else {
                break;
            }
            n += 1;
        }
        n
    }

    /// Remembers the bytes of the token at `pos` for the next feed.
    fn keep(&mut self, bytes: &[u8]) {
        // Keep the old carry if it already covers more from `pos` on.
        let covered = self
            .pos
            .checked_sub(self.carry_at)
            .map_or(0, |i| (self.carry_len as u64).saturating_sub(i));
        if covered >= bytes.len() as u64 {
            return;
        }
        self.carry[..bytes.len()].copy_from_slice(bytes);
        self.carry_at = self.pos;
        self.carry_len = bytes.len();
    }

    /// Consumes one whole token at `pos`.
    fn advance(&mut self, token: &[u8]) {
        // Only the sniff and fixed-header states read bytes again after moving on (the JPEG
        // and GIF walks resume inside the sniffed bytes); the walks only move forward.
        if !matches!(self.state, State::Jpeg(_) | State::Gif(_) | State::Webp(_)) {
            self.keep(token);
        }
        match self.state {
            State::Sniff => {
                self.state = match sniff::sniff(token) {
                    None => State::Done(Err(ProbeError::UnknownFormat)),
                    Some(format) => match start(format) {
                        Some((pos, state)) => {
                            self.pos = pos;
                            state
                        }
                        None => State::Done(Err(ProbeError::UnsupportedFormat(format))),
                    },
                }
            }
            State::Jpeg(mut walker) => {
                self.state = match walker.advance(&mut self.pos, token) {
                    jpeg::Next::More => State::Jpeg(walker),
                    jpeg::Next::Done(result) => {
                        State::Done(result.map_err(|reason| ProbeError::Malformed {
                            format: Format::Jpeg,
                            reason,
                        }))
                    }
                };
            }
            State::Gif(mut walker) => {
                self.state = match walker.advance(&mut self.pos, token) {
                    gif::Next::More => State::Gif(walker),
                    gif::Next::Done(result) => State::Done(
                        result
                            .map(|(width, height)| fixed::info(Format::Gif, width, height))
                            .map_err(|reason| ProbeError::Malformed {
                                format: Format::Gif,
                                reason,
                            }),
                    ),
                };
            }
            State::Webp(mut chunks) => {
                self.state = match chunks.advance(&mut self.pos, token) {
                    webp::Next::More => State::Webp(chunks),
                    webp::Next::Done(result) => State::Done(
                        result
                            .map(|(width, height)| fixed::info(Format::Webp, width, height))
                            .map_err(|reason| ProbeError::Malformed {
                                format: Format::Webp,
                                reason,
                            }),
                    ),
                };
            }
            State::Fixed { format, .. } => {
                self.state = match fixed::parse(format, token) {
                    fixed::Parsed::Need(want) => State::Fixed { format, want },
                    fixed::Parsed::WebpChunks(canvas) => {
                        self.pos = webp::CHUNKS;
                        State::Webp(webp::Chunks::new(canvas))
                    }
                    fixed::Parsed::Done(result) => State::Done(
                        result.map_err(|reason| ProbeError::Malformed { format, reason }),
                    ),
                };
            }
            State::Done(_) => {}
        }
    }
}

/// Where reading `format` starts after the sniff, or `None` if imgchkr does not read its
/// dimensions.
fn start(format: Format) -> Option<(u64, State)> {
    match format {
        // The walk resumes after SOI.
        Format::Jpeg => return Some((2, State::Jpeg(jpeg::Walker::new()))),
        Format::Gif => return Some((0, State::Gif(gif::Walker::new()))),
        _ => {}
    }
    let want = fixed::first_need(format)?;
    Some((0, State::Fixed { format, want }))
}

/// Probes a whole in-memory image (or its first bytes: a prefix that ends before the header
/// is complete gives a truncation error).
///
/// ```
/// let jpeg = [0xFF, 0xD8, 0xFF, 0xC2, 0x00, 0x0B, 8, 0x04, 0xB0, 0x07, 0x08, 1, 1, 0x11, 0];
/// let info = imgchkr_core::probe(&jpeg).unwrap();
/// assert_eq!((info.width, info.height), (1800, 1200));
/// assert_eq!(info.jpeg.unwrap().process, imgchkr_core::probe::Process::Progressive);
/// ```
#[inline]
pub fn probe(bytes: &[u8]) -> Result<ImageInfo, ProbeError> {
    // The same answer as a `Probe` fed `bytes` whole and then finished (the property tests
    // check that), from walks over the slice that keep no state between tokens.
    if let [0xFF, 0xD8, ..] = bytes {
        return jpeg::walk(bytes);
    }
    let head = bytes.get(..sniff::SNIFF_LEN).unwrap_or(bytes);
    let Some(format) = sniff::sniff(head) else {
        return Err(ProbeError::UnknownFormat);
    };
    if format == Format::Gif {
        return match gif::walk(bytes) {
            Ok((width, height)) => Ok(fixed::info(format, width, height)),
            Err(reason) => Err(ProbeError::Malformed { format, reason }),
        };
    }
    match fixed::read(format, bytes) {
        None => Err(ProbeError::UnsupportedFormat(format)),
        Some(result) => result.map_err(|reason| ProbeError::Malformed { format, reason }),
    }
}

impl fmt::Display for ImageInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}x{}", self.format, self.width, self.height)
    }
}
