//! Why an outbound request failed, told by the types in the error's source chain (the policy's
//! own errors, `std::io::ErrorKind`, hyper's and reqwest's error kinds), never by its words:
//! texts change between library versions and locales, kinds do not.

use std::error::Error;
use std::fmt;
use std::io;

use crate::resolver::{DestinationDenied, DnsFailure};

/// The cause of a failed request, and the short text reports show for it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Failure {
    /// The destination policy refused every address; the text says why
    /// (`10.0.0.1 is a private address`).
    Denied(String),
    /// The name did not resolve.
    Dns,
    /// The peer refused the connection.
    Refused,
    /// The connection was reset or aborted.
    Reset,
    /// The peer closed the connection before a complete response.
    Closed,
    /// A connect, read or request timeout.
    Timeout,
    /// No route to the host or its network.
    Unreachable,
    /// The response could not be parsed (the deepest cause's text).
    InvalidResponse(String),
    /// The connection could not be set up for another reason, TLS above all.
    Connect(String),
    /// The request could not be built; another attempt will not change that.
    InvalidRequest(String),
    /// Anything else (the deepest cause's text).
    Other(String),
}

impl Failure {
    /// Classifies `err` (a `reqwest::Error`, or any error with one in its source chain, such
    /// as `object_store`'s). The chain is searched for the root cause: the policy's refusal
    /// and DNS failure, then I/O error kinds, then hyper's kinds; reqwest's own kinds decide
    /// when nothing deeper does.
    pub fn of(err: &(dyn Error + 'static)) -> Failure {
        let mut request: Option<&reqwest::Error> = None;
        let mut source = Some(err);
        while let Some(e) = source {
            if let Some(failure) = Failure::of_cause(e) {
                return failure;
            }
            if request.is_none() {
                request = e.downcast_ref::<reqwest::Error>();
            }
            source = cause(e);
        }
        let why = innermost(err);
        match request {
            Some(r) if r.is_timeout() => Failure::Timeout,
            Some(r) if r.is_builder() => Failure::InvalidRequest(why),
            Some(r) if r.is_connect() => Failure::Connect(why),
            _ => Failure::Other(why),
        }
    }

    /// What one link of the chain says by its type alone.
    fn of_cause(e: &(dyn Error + 'static)) -> Option<Failure> {
        if let Some(denied) = e.downcast_ref::<DestinationDenied>() {
            return Some(Failure::Denied(denied.0.clone()));
        }
        if e.downcast_ref::<DnsFailure>().is_some() {
            return Some(Failure::Dns);
        }
        if let Some(io) = e.downcast_ref::<io::Error>() {
            match io.kind() {
                io::ErrorKind::ConnectionRefused => return Some(Failure::Refused),
                io::ErrorKind::ConnectionReset
                | io::ErrorKind::ConnectionAborted
                | io::ErrorKind::BrokenPipe => return Some(Failure::Reset),
                io::ErrorKind::TimedOut => return Some(Failure::Timeout),
                io::ErrorKind::HostUnreachable | io::ErrorKind::NetworkUnreachable => {
                    return Some(Failure::Unreachable);
                }
                _ => {}
            }
        }
        if let Some(hyper) = e.downcast_ref::<hyper::Error>() {
            if hyper.is_timeout() {
                return Some(Failure::Timeout);
            }
            if hyper.is_incomplete_message() {
                return Some(Failure::Closed);
            }
            if hyper.is_parse() || hyper.is_parse_status() {
                return Some(Failure::InvalidResponse(innermost(e)));
            }
        }
        None
    }

    /// Whether another attempt may succeed: not after a refusal by the policy or a request
    /// that cannot be built.
    pub fn is_retryable(&self) -> bool {
        !matches!(self, Failure::Denied(_) | Failure::InvalidRequest(_))
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Denied(why) => write!(f, "destination not allowed: {why}"),
            Failure::Dns => f.write_str("dns failure"),
            Failure::Refused => f.write_str("connection refused"),
            Failure::Reset => f.write_str("connection reset"),
            Failure::Closed => f.write_str("connection closed before the response"),
            Failure::Timeout => f.write_str("timeout"),
            Failure::Unreachable => f.write_str("host unreachable"),
            Failure::InvalidResponse(why) => write!(f, "invalid response: {why}"),
            Failure::Connect(why) => write!(f, "connection failed: {why}"),
            Failure::InvalidRequest(why) => write!(f, "invalid request: {why}"),
            Failure::Other(why) => write!(f, "request failed: {why}"),
        }
    }
}

/// The deepest cause's text: reqwest's own text ("error sending request for url (…)") says
/// little and repeats the URL.
fn innermost(err: &(dyn Error + 'static)) -> String {
    let mut last = err;
    while let Some(next) = cause(last) {
        last = next;
    }
    last.to_string()
}

/// The next link of the chain. An `io::Error` wrapping another error reports that error's
/// source as its own, skipping the wrapped error itself: that one is the cause here.
fn cause<'a>(e: &'a (dyn Error + 'static)) -> Option<&'a (dyn Error + 'static)> {
    if let Some(wrapped) = e.downcast_ref::<io::Error>().and_then(io::Error::get_ref) {
        return Some(wrapped);
    }
    e.source()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn innermost_walks_to_the_root() {
        let io = io::Error::other(DnsFailure(io::Error::other("root cause")));
        assert_eq!(innermost(&io), "root cause");
    }

    #[test]
    fn kinds_decide_not_words() {
        // A text that mentions a timeout is not a timeout…
        let worded = io::Error::other("gateway timeout while connecting");
        assert_eq!(
            Failure::of(&worded),
            Failure::Other("gateway timeout while connecting".into())
        );
        // …and a timeout whatever its text says is one.
        let timed_out = io::Error::new(io::ErrorKind::TimedOut, "délai dépassé");
        assert_eq!(Failure::of(&timed_out), Failure::Timeout);
        let wrapped = io::Error::other(io::Error::from(io::ErrorKind::ConnectionReset));
        assert_eq!(Failure::of(&wrapped), Failure::Reset);
        let denied = io::Error::other(DestinationDenied("10.0.0.1 is a private address".into()));
        assert_eq!(
            Failure::of(&denied).to_string(),
            "destination not allowed: 10.0.0.1 is a private address"
        );
        assert!(!Failure::of(&denied).is_retryable());
    }
}
