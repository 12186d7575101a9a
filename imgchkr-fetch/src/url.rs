//! `url` locations: ranged `GET`s of only what the probe needs, or a bounded streaming read
//! when the server ignores `Range`.

use std::error::Error;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use imgchkr_core::fetch::probe_ranges;
use imgchkr_core::submission::parse_webhook_url;
use imgchkr_core::{Probe, Step};
use imgchkr_egress::{DestinationDenied, DestinationPolicy, Failure, HostVerdict, client_builder};
use reqwest::StatusCode;
use reqwest::header::{ACCEPT_ENCODING, CONTENT_RANGE, HeaderValue, RANGE};
use url::Url;

use crate::config::{ConfigError, RemoteConfig};
use crate::error::FetchError;
use crate::fetched::{CHUNK, FIRST_READ, Fetched};
use crate::meter::Meter;

/// Idle pooled connections are closed after this long.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// A redirect the client refused to follow.
#[derive(Debug)]
struct RedirectRefused(String);

impl fmt::Display for RedirectRefused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Error for RedirectRefused {}

/// Reads `url` objects: one client (the destination policy on every connection through the
/// filtering resolver, and on every redirect target; no proxy; bounded redirects), and the
/// per-request bounds.
#[derive(Debug)]
pub(crate) struct UrlReader {
    client: reqwest::Client,
    policy: Arc<DestinationPolicy>,
    request_timeout: Duration,
    max_reads: u32,
}

impl UrlReader {
    pub(crate) fn new(config: &RemoteConfig) -> Result<UrlReader, ConfigError> {
        let policy = Arc::new(config.destinations.clone());
        let max = config.max_redirects;
        let redirect_policy = Arc::clone(&policy);
        let redirect = reqwest::redirect::Policy::custom(move |attempt| {
            // `previous` holds the first URL and every redirect followed so far.
            if attempt.previous().len() > max {
                let why = format!("too many redirects (more than {max})");
                return attempt.error(RedirectRefused(why));
            }
            let scheme = attempt.url().scheme();
            if !matches!(scheme, "http" | "https") {
                let why = format!("redirect to a {scheme} URL");
                return attempt.error(RedirectRefused(why));
            }
            if let HostVerdict::Refused(why) = redirect_policy.check_host(attempt.url()) {
                return attempt.error(DestinationDenied(why));
            }
            attempt.follow()
        });
        let client = client_builder(Arc::clone(&policy))
            .user_agent(concat!("imgchkr/", env!("CARGO_PKG_VERSION")))
            .redirect(redirect)
            .connect_timeout(config.connect_timeout)
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .tcp_nodelay(true)
            .build()
            .map_err(|e| ConfigError::Client(e.to_string()))?;
        Ok(UrlReader {
            client,
            policy,
            request_timeout: config.request_timeout,
            max_reads: config.max_reads,
        })
    }

    /// The destination policy the client enforces.
    pub(crate) fn policy(&self) -> &DestinationPolicy {
        &self.policy
    }

    /// Validates the object at `raw` (an http(s) URL as the client gave it).
    pub(crate) async fn fetch(
        &self,
        raw: &str,
        max_bytes: u64,
        meter: &Meter,
    ) -> Result<Fetched, FetchError> {
        let url = parse_webhook_url(raw)
            .ok_or_else(|| FetchError::unreachable("not an absolute http or https URL"))?;
        // IP literals never reach the resolver: judged here, before any connection.
        if let HostVerdict::Refused(why) = self.policy.check_host(&url) {
            return Err(FetchError::Request(Failure::Denied(why)));
        }
        let first = self.get_range(url, 0, FIRST_READ, None, meter).await?;
        let (first, total, url) = match first {
            Reply::Partial { bytes, total, url } => (bytes, total, url),
            Reply::Whole(response) => return stream(response, max_bytes, meter).await,
            Reply::Empty => {
                return Ok(Fetched {
                    size: 0,
                    probed: Probe::new().finish(),
                });
            }
        };
        // Later reads go straight to where the redirects led.
        let url = &url;
        let mut first = Some(first);
        let probed = probe_ranges(total, CHUNK, u32::MAX, move |offset, len| {
            let cached = if offset == 0 { first.take() } else { None };
            async move {
                match cached {
                    Some(bytes) => Ok(bytes),
                    None => match self
                        .get_range(url.clone(), offset, len, Some(total), meter)
                        .await?
                    {
                        Reply::Partial { bytes, .. } => Ok(bytes),
                        Reply::Empty | Reply::Whole(_) => Err(FetchError::unreachable(
                            "the server stopped honouring Range requests",
                        )),
                    },
                }
            }
        })
        .await?;
        Ok(Fetched {
            size: total,
            probed: probed.result,
        })
    }

    /// `GET url` with `Range: bytes=offset-(offset+len-1)`. `total`: the size an earlier read
    /// reported, which must not change.
    async fn get_range(
        &self,
        url: Url,
        offset: u64,
        len: usize,
        total: Option<u64>,
        meter: &Meter,
    ) -> Result<Reply, FetchError> {
        meter.start_read(self.max_reads)?;
        let last = offset.saturating_add(len.max(1) as u64 - 1);
        let response = self
            .client
            .get(url)
            .header(RANGE, format!("bytes={offset}-{last}"))
            // A range of a compressed representation is not a range of the image.
            .header(ACCEPT_ENCODING, HeaderValue::from_static("identity"))
            .timeout(self.request_timeout)
            .send()
            .await
            .map_err(|e| request_error(&e))?;
        answer(response, offset, len, total, meter).await
    }
}

/// What one ranged `GET` got.
enum Reply {
    /// `206`: the bytes from the requested offset, the total size, and the URL that answered
    /// (after redirects).
    Partial { bytes: Bytes, total: u64, url: Url },
    /// `200`: the server ignored `Range` and sends the whole object.
    Whole(reqwest::Response),
    /// `416` with `Content-Range: bytes */0`: an empty object.
    Empty,
}

/// What the answer to a ranged `GET` of `len` bytes at `offset` says.
async fn answer(
    response: reqwest::Response,
    offset: u64,
    len: usize,
    total: Option<u64>,
    meter: &Meter,
) -> Result<Reply, FetchError> {
    let status = response.status();
    match status {
        StatusCode::PARTIAL_CONTENT => {
            let range = content_range(&response)?;
            let Some((start, end, size)) = range.span else {
                return Err(invalid_range("no byte range in a 206"));
            };
            if start != offset {
                return Err(invalid_range("a range other than the one asked for"));
            }
            if total.is_some_and(|t| t != size) {
                return Err(FetchError::unreachable(
                    "the object changed while it was read",
                ));
            }
            let url = response.url().clone();
            // The server may send more than asked: only what was asked is read.
            let want = usize::try_from(end - start + 1).map_or(len, |n| n.min(len));
            let bytes = read_at_most(response, want, meter).await?;
            Ok(Reply::Partial {
                bytes,
                total: size,
                url,
            })
        }
        StatusCode::OK if total.is_none() => Ok(Reply::Whole(response)),
        StatusCode::OK => Err(FetchError::unreachable(
            "the server stopped honouring Range requests",
        )),
        StatusCode::RANGE_NOT_SATISFIABLE => match content_range(&response)? {
            ContentRange {
                span: None,
                size: 0,
            } if offset == 0 => Ok(Reply::Empty),
            _ => Err(FetchError::unreachable("HTTP 416 (range not satisfiable)")),
        },
        StatusCode::NOT_FOUND | StatusCode::GONE => Err(FetchError::NotFound),
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Err(FetchError::PermissionDenied),
        _ if status.is_redirection() => Err(FetchError::unreachable(format!(
            "redirect not followed (HTTP {})",
            status.as_u16()
        ))),
        _ => Err(FetchError::unreachable(format!("HTTP {}", status.as_u16()))),
    }
}

/// A parsed `Content-Range: bytes <start>-<end>/<size>` (or `bytes */<size>`).
#[derive(Debug, PartialEq, Eq)]
struct ContentRange {
    span: Option<(u64, u64, u64)>,
    size: u64,
}

fn content_range(response: &reqwest::Response) -> Result<ContentRange, FetchError> {
    let value = response
        .headers()
        .get(CONTENT_RANGE)
        .ok_or_else(|| invalid_range("missing"))?;
    let text = value.to_str().map_err(|_| invalid_range("not text"))?;
    parse_content_range(text).ok_or_else(|| invalid_range(&format!("{:?}", truncate(text))))
}

fn parse_content_range(text: &str) -> Option<ContentRange> {
    let rest = text.trim().strip_prefix("bytes ")?.trim_start();
    let (span, size) = rest.split_once('/')?;
    // `*` as the size (unknown length) is no use to a size check.
    let size: u64 = parse_u64(size)?;
    if span == "*" {
        return Some(ContentRange { span: None, size });
    }
    let (start, end) = span.split_once('-')?;
    let (start, end) = (parse_u64(start)?, parse_u64(end)?);
    (start <= end && end < size).then_some(ContentRange {
        span: Some((start, end, size)),
        size,
    })
}

fn parse_u64(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

fn truncate(text: &str) -> &str {
    match text.char_indices().nth(80) {
        Some((i, _)) => &text[..i],
        None => text,
    }
}

fn invalid_range(why: &str) -> FetchError {
    FetchError::unreachable(format!("invalid Content-Range: {why}"))
}

/// Reads at most `cap` bytes of the body, then drops the response (and its connection if the
/// body goes on).
async fn read_at_most(
    mut response: reqwest::Response,
    cap: usize,
    meter: &Meter,
) -> Result<Bytes, FetchError> {
    let mut body = BytesMut::with_capacity(cap.min(64 * 1024));
    while body.len() < cap {
        match response.chunk().await.map_err(|e| request_error(&e))? {
            Some(chunk) => {
                let take = chunk.len().min(cap - body.len());
                meter.add_bytes(take);
                body.extend_from_slice(&chunk[..take]);
            }
            None => break,
        }
    }
    Ok(body.freeze())
}

/// The whole object, read as it comes: fed to the probe, and dropped as soon as the probe is
/// done when the size is known; never more than `max_bytes + 1` bytes.
async fn stream(
    mut response: reqwest::Response,
    max_bytes: u64,
    meter: &Meter,
) -> Result<Fetched, FetchError> {
    let declared = response.content_length();
    let cap = max_bytes.saturating_add(1);
    let mut probe = Probe::new();
    let mut step = probe.step();
    let mut offset = 0u64;
    loop {
        let done = matches!(step, Step::Done(_));
        if (done && declared.is_some()) || offset >= cap {
            break;
        }
        let Some(chunk) = response.chunk().await.map_err(|e| request_error(&e))? else {
            break;
        };
        let take = usize::try_from(cap - offset).map_or(chunk.len(), |left| left.min(chunk.len()));
        // Counted as read: what was taken from the body (the last chunk may hold a few
        // bytes more, dropped with the connection).
        meter.add_bytes(take);
        if let Step::Need(need) = step
            && need.offset < offset + take as u64
        {
            step = probe.feed(offset, &chunk[..take]);
        }
        offset += take as u64;
    }
    let probed = match step {
        Step::Done(result) => result,
        Step::Need(_) => probe.finish(),
    };
    // Without a Content-Length the size is what was read: the whole body, or `max + 1` for a
    // body that went on past the limit.
    let size = declared.map_or(offset, |declared| declared.max(offset));
    Ok(Fetched { size, probed })
}

/// A failed request by type: a redirect our policy refused, or the egress [`Failure`] (the
/// policy's refusal, `connection refused`, `dns failure`, `timeout`, …).
fn request_error(err: &reqwest::Error) -> FetchError {
    let mut source: Option<&(dyn Error + 'static)> = Some(err);
    while let Some(e) = source {
        if let Some(refused) = e.downcast_ref::<RedirectRefused>() {
            return FetchError::unreachable(refused.0.clone());
        }
        source = e.source();
    }
    FetchError::Request(Failure::of(err))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_ranges_parse_strictly() {
        assert_eq!(
            parse_content_range("bytes 0-2047/52428800"),
            Some(ContentRange {
                span: Some((0, 2047, 52_428_800)),
                size: 52_428_800
            })
        );
        assert_eq!(
            parse_content_range("bytes */0"),
            Some(ContentRange {
                span: None,
                size: 0
            })
        );
        for bad in [
            "",
            "bytes 0-10/*",
            "bytes 10-0/20",
            "bytes 0-20/20",
            "bytes -1-5/20",
            "bytes 0-5/+20",
            "items 0-5/20",
            "bytes 0-99999999999999999999999/1",
        ] {
            assert_eq!(parse_content_range(bad), None, "{bad:?}");
        }
    }
}
