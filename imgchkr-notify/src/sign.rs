//! Standard Webhooks signing: `webhook-signature: v1,<base64 HMAC-SHA256 of "{id}.{ts}.{body}">`.
//!
//! Secrets are written as the reference libraries write them, `whsec_<base64 key>`; the
//! `whsec_` prefix is optional, exactly as in those libraries (`Webhook::new` strips it when
//! present), so a receiver can paste the same string on both sides. The key is the decoded
//! bytes. Several secrets produce several space-separated signatures, which lets a receiver
//! rotate: configure the new secret next to the old one, switch the receiver, drop the old.

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// A webhook secret that is not `whsec_<base64>` (or bare base64) of a long enough key. The
/// text never quotes the secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid webhook secret: {0}")]
pub struct SecretError(String);

/// The optional prefix of a secret in its written form.
pub const SECRET_PREFIX: &str = "whsec_";

/// Keys shorter than this are refused: an HMAC key of a few bytes can be brute-forced. The
/// Standard Webhooks spec recommends 24 to 64 bytes; 16 (128 bits) is the floor we enforce.
const MIN_KEY_BYTES: usize = 16;

/// A signing secret. Its `Debug` never shows the key, so configs can be logged.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret {
    key: Vec<u8>,
}

impl Secret {
    /// Parses `whsec_<base64>` or a bare base64 key (surrounding whitespace ignored).
    pub fn parse(text: &str) -> Result<Secret, SecretError> {
        let text = text.trim();
        let encoded = text.strip_prefix(SECRET_PREFIX).unwrap_or(text);
        if encoded.is_empty() {
            return Err(SecretError("empty secret".into()));
        }
        let key = STANDARD
            .decode(encoded)
            .map_err(|e| SecretError(format!("not base64 after `whsec_`: {e}")))?;
        if key.len() < MIN_KEY_BYTES {
            return Err(SecretError(format!(
                "key is {} bytes; at least {MIN_KEY_BYTES} are required (24 to 64 recommended)",
                key.len()
            )));
        }
        Ok(Secret { key })
    }

    /// The key bytes (for verifying signatures made with it, e.g. on requests).
    pub fn key(&self) -> &[u8] {
        &self.key
    }

    /// The `v1,<base64>` signature of `body` sent as message `id` at unix time `timestamp`.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        // HMAC accepts keys of any length, so this cannot fail; the fallback keeps the
        // library panic-free regardless.
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&self.key) else {
            return String::new();
        };
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
    }
}

impl FromStr for Secret {
    type Err = SecretError;

    fn from_str(s: &str) -> Result<Secret, SecretError> {
        Secret::parse(s)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// A secret as written on the command line, not yet parsed: clap echoes a rejected value in
/// its error, so secrets are parsed (and their errors worded) by [`crate::WebhookArgs::config`]
/// instead. Its `Debug` never shows the text.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretText(pub String);

impl FromStr for SecretText {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<SecretText, Self::Err> {
        Ok(SecretText(s.to_owned()))
    }
}

impl fmt::Debug for SecretText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretText(<redacted>)")
    }
}

/// The `webhook-signature` header value for `secrets`: one signature each, space-separated;
/// `None` when no secret is configured.
pub fn signature_header(
    secrets: &[Secret],
    id: &str,
    timestamp: i64,
    body: &[u8],
) -> Option<String> {
    if secrets.is_empty() {
        return None;
    }
    let signatures: Vec<String> = secrets
        .iter()
        .map(|s| s.sign(id, timestamp, body))
        .collect();
    Some(signatures.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sign(secret: &str, id: &str, ts: i64, body: &[u8]) -> String {
        Secret::parse(secret).unwrap().sign(id, ts, body)
    }

    /// The vector of the Svix / Standard Webhooks reference libraries (e.g. svix-php's
    /// `testSignFunctionWorks`).
    #[test]
    fn reproduces_the_reference_test_vector() {
        assert_eq!(
            sign(
                "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1614265330,
                br#"{"test": 2432232314}"#
            ),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    /// The vector of the `standardwebhooks` Rust crate's own `test_sign`.
    #[test]
    fn reproduces_the_rust_reference_crate_vector() {
        assert_eq!(
            sign(
                "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD",
                "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
                1649367553,
                br#"{"email":"test@example.com","username":"test_user"}"#
            ),
            "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw="
        );
    }

    #[test]
    fn prefix_is_optional() {
        let with = Secret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let without = Secret::parse(" MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n").unwrap();
        assert_eq!(with, without);
    }

    #[test]
    fn bad_secrets_are_refused() {
        for bad in ["", "whsec_", "whsec_not*base64", "whsec_c2hvcnQ=", "   "] {
            assert!(Secret::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn debug_hides_the_key() {
        let s = Secret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        assert_eq!(format!("{s:?}"), "Secret(<redacted>)");
    }

    #[test]
    fn several_secrets_give_space_separated_signatures() {
        let a = Secret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let b = Secret::parse("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD").unwrap();
        let header = signature_header(&[a.clone(), b.clone()], "id", 1, b"{}").unwrap();
        assert_eq!(
            header,
            format!("{} {}", a.sign("id", 1, b"{}"), b.sign("id", 1, b"{}"))
        );
        assert_eq!(signature_header(&[], "id", 1, b"{}"), None);
    }
}
