//! Signed requests (API.md, "Tenants and request security"): the Standard Webhooks scheme
//! applied to requests. A tenant with `request_secret`s must sign every POST:
//!
//! - `imgchkr-request-id`: unique per request (1 to 255 visible characters);
//! - `imgchkr-request-timestamp`: unix seconds, within 5 minutes of the server's clock;
//! - `imgchkr-request-signature`: `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">` with
//!   the tenant's `whsec_` secret; several space-separated signatures (one per secret while
//!   rotating) are accepted if any matches.
//!
//! A request id seen before within the window never creates a second job: the submission's
//! job id is derived from it (as from an `Idempotency-Key`), so the engine's idempotency
//! answers a replay, in every API process: the same body gets the job (200), another 409.

use hmac::{Hmac, Mac};
use hyper::StatusCode;
use hyper::header::HeaderMap;
use imgchkr_notify::Secret;
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::response::{self, Resp};

/// How far a request's timestamp may be from the server's clock, in seconds.
pub const WINDOW_SECS: i64 = 300;

/// The longest request id.
const MAX_ID_LEN: usize = 255;

/// The headers of a signed request, read before its body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    /// `imgchkr-request-id`.
    pub id: String,
    timestamp: i64,
    signatures: Vec<Vec<u8>>,
}

impl Signed {
    /// The signature headers of `headers`, checked for presence, form and freshness at `now`
    /// (unix seconds); the 401 to answer otherwise.
    pub fn from_headers(headers: &HeaderMap, now: i64) -> Result<Signed, Box<Resp>> {
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let (Some(id), Some(timestamp), Some(signature)) = (
            header("imgchkr-request-id"),
            header("imgchkr-request-timestamp"),
            header("imgchkr-request-signature"),
        ) else {
            return Err(refused(
                "This tenant's requests must be signed: imgchkr-request-id, imgchkr-request-timestamp and imgchkr-request-signature are required.",
            ));
        };
        if id.is_empty() || id.len() > MAX_ID_LEN {
            return Err(refused(
                "imgchkr-request-id must be 1 to 255 visible characters.",
            ));
        }
        let Ok(timestamp) = timestamp.trim().parse::<i64>() else {
            return Err(refused("imgchkr-request-timestamp must be unix seconds."));
        };
        if (now - timestamp).abs() > WINDOW_SECS {
            return Err(refused(
                "The request timestamp is more than 5 minutes from the server's clock.",
            ));
        }
        let signatures = signature
            .split(' ')
            .filter_map(|s| s.strip_prefix("v1,"))
            .map(|s| s.as_bytes().to_vec())
            .collect();
        Ok(Signed {
            id: id.to_owned(),
            timestamp,
            signatures,
        })
    }

    /// An HMAC per secret, to be fed the body as it arrives.
    pub fn verifier(&self, secrets: &[Secret]) -> Verifier {
        let prefix = format!("{}.{}.", self.id, self.timestamp);
        Verifier {
            macs: secrets
                .iter()
                .filter_map(|secret| {
                    let mut mac = Hmac::<Sha256>::new_from_slice(secret.key()).ok()?;
                    mac.update(prefix.as_bytes());
                    Some(mac)
                })
                .collect(),
            signatures: self.signatures.clone(),
        }
    }

    /// Whether one of the signatures is that of `body` under one of `secrets`.
    pub fn verify(&self, secrets: &[Secret], body: &[u8]) -> Result<(), Box<Resp>> {
        let mut verifier = self.verifier(secrets);
        verifier.update(body);
        verifier.finish()
    }
}

/// A signature check running over a body fed piece by piece.
pub struct Verifier {
    macs: Vec<Hmac<Sha256>>,
    signatures: Vec<Vec<u8>>,
}

impl Verifier {
    /// Feeds the next bytes of the body.
    pub fn update(&mut self, bytes: &[u8]) {
        for mac in &mut self.macs {
            mac.update(bytes);
        }
    }

    /// Ok if a presented signature matches one of the secrets', compared in constant time;
    /// the 401 to answer otherwise.
    pub fn finish(self) -> Result<(), Box<Resp>> {
        use base64::Engine as _;
        let mut matched = false;
        for mac in self.macs {
            let expected = base64::engine::general_purpose::STANDARD
                .encode(mac.finalize().into_bytes())
                .into_bytes();
            for presented in &self.signatures {
                matched |= bool::from(presented.ct_eq(&expected));
            }
        }
        if matched {
            Ok(())
        } else {
            Err(refused("The request signature does not match."))
        }
    }
}

fn refused(text: &str) -> Box<Resp> {
    Box::new(response::error(StatusCode::UNAUTHORIZED, "signature", text))
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    fn headers(id: &str, timestamp: i64, signature: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("imgchkr-request-id", HeaderValue::from_str(id).unwrap());
        h.insert(
            "imgchkr-request-timestamp",
            HeaderValue::from_str(&timestamp.to_string()).unwrap(),
        );
        h.insert(
            "imgchkr-request-signature",
            HeaderValue::from_str(signature).unwrap(),
        );
        h
    }

    #[test]
    fn a_standard_webhooks_signature_verifies_and_a_forged_one_does_not() {
        let secret = Secret::parse(SECRET).unwrap();
        let body = br#"{"a": 1}"#;
        let good = secret.sign("req-1", 1_700_000_000, body);
        let signed =
            Signed::from_headers(&headers("req-1", 1_700_000_000, &good), 1_700_000_100).unwrap();
        assert!(signed.verify(std::slice::from_ref(&secret), body).is_ok());
        assert!(signed.verify(std::slice::from_ref(&secret), b"{}").is_err());
        // Several signatures, one good: accepted (rotation).
        let both = format!("v1,AAAA {good}");
        let signed =
            Signed::from_headers(&headers("req-1", 1_700_000_000, &both), 1_700_000_000).unwrap();
        assert!(signed.verify(std::slice::from_ref(&secret), body).is_ok());
        // Another secret's signature is refused.
        let other = Secret::parse("whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA").unwrap();
        let forged = other.sign("req-1", 1_700_000_000, body);
        let signed =
            Signed::from_headers(&headers("req-1", 1_700_000_000, &forged), 1_700_000_000).unwrap();
        assert!(signed.verify(&[secret], body).is_err());
    }

    #[test]
    fn stale_missing_and_malformed_headers_are_refused() {
        let now = 1_700_000_000;
        assert!(Signed::from_headers(&headers("r", now - 301, "v1,x"), now).is_err());
        assert!(Signed::from_headers(&headers("r", now + 301, "v1,x"), now).is_err());
        assert!(Signed::from_headers(&headers("r", now - 300, "v1,x"), now).is_ok());
        assert!(Signed::from_headers(&HeaderMap::new(), now).is_err());
        let mut h = headers("r", now, "v1,x");
        h.insert(
            "imgchkr-request-timestamp",
            HeaderValue::from_static("soon"),
        );
        assert!(Signed::from_headers(&h, now).is_err());
    }
}
