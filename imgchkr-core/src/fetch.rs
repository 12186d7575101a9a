//! Probing an input read asynchronously by byte ranges (an HTTP object with `Range`
//! requests, an S3 object with ranged GETs): the I/O is the caller's, the walk is the probe's.

use std::future::Future;

use crate::probe::{ImageInfo, Probe, ProbeError, Step};

/// What [`probe_ranges`] read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Probed {
    /// The probe's answer.
    pub result: Result<ImageInfo, ProbeError>,
    /// Bytes received from the source.
    pub bytes_read: u64,
    /// Range reads made.
    pub reads: u32,
}

/// Runs the probe over an input of `size` bytes, calling `read(offset, len)` for each range it
/// needs (asking for at least `chunk` bytes at a time, never past `size`). `read` returns the
/// bytes it got from `offset` on: fewer than asked means the input ends there; more are used
/// too. Stops after `max_reads` reads as a bound on a hostile input (a probe needs a handful).
///
/// ```
/// # futures_executor::block_on(async {
/// let jpeg = [0xFF, 0xD8, 0xFF, 0xC0, 0x00, 0x0B, 8, 0x00, 0x10, 0x00, 0x20, 1, 1, 0x11, 0];
/// let probed = imgchkr_core::fetch::probe_ranges(jpeg.len() as u64, 4, 64, |offset, len| {
///     let start = offset as usize;
///     let bytes = jpeg[start..(start + len).min(jpeg.len())].to_vec();
///     async move { Ok::<_, std::io::Error>(bytes) }
/// }).await.unwrap();
/// assert_eq!(probed.result.unwrap().width, 32);
/// # });
/// ```
pub async fn probe_ranges<R, F, B, E>(
    size: u64,
    chunk: usize,
    max_reads: u32,
    mut read: R,
) -> Result<Probed, E>
where
    R: FnMut(u64, usize) -> F,
    F: Future<Output = Result<B, E>>,
    B: AsRef<[u8]>,
{
    let mut probe = Probe::new();
    let mut step = probe.step();
    let (mut bytes_read, mut reads) = (0u64, 0u32);
    loop {
        let need = match step {
            Step::Done(result) => {
                return Ok(Probed {
                    result,
                    bytes_read,
                    reads,
                });
            }
            Step::Need(need) => need,
        };
        if need.offset >= size || reads >= max_reads {
            return Ok(Probed {
                result: probe.finish(),
                bytes_read,
                reads,
            });
        }
        let len = usize::try_from(size - need.offset)
            .map_or(chunk.max(need.len), |left| left.min(chunk.max(need.len)));
        let bytes = read(need.offset, len).await?;
        let bytes = bytes.as_ref();
        reads += 1;
        bytes_read += bytes.len() as u64;
        if bytes.is_empty() {
            return Ok(Probed {
                result: probe.finish(),
                bytes_read,
                reads,
            });
        }
        step = probe.feed(need.offset, bytes);
    }
}
