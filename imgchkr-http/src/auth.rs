//! Bearer-token authentication: a token names its tenant.
//!
//! Tokens are kept and compared as SHA-256 digests: every comparison is between two 32-byte
//! values, in constant time (`subtle`), so neither a token's length nor its prefix shows in
//! the time an answer takes.

use hyper::StatusCode;
use hyper::header::{AUTHORIZATION, HeaderMap, HeaderValue, WWW_AUTHENTICATE};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::response::{self, Resp};

/// A token's SHA-256 digest.
pub type TokenDigest = [u8; 32];

/// The SHA-256 digest of `token`.
pub fn digest(token: &str) -> TokenDigest {
    Sha256::digest(token.as_bytes()).into()
}

/// The configured tokens; empty means /assets is open and jobs carry no tenant.
#[derive(Debug, Clone, Default)]
pub struct Auth {
    tokens: Vec<(String, TokenDigest)>,
}

impl Auth {
    /// Tokens as `(tenant, token)` pairs.
    pub fn new(tokens: &[(String, String)]) -> Auth {
        Auth {
            tokens: tokens
                .iter()
                .map(|(tenant, token)| (tenant.clone(), digest(token)))
                .collect(),
        }
    }

    /// Whether callers must authenticate.
    pub fn enabled(&self) -> bool {
        !self.tokens.is_empty()
    }

    /// The caller's tenant (`None` when auth is off), or the 401 to answer.
    pub fn tenant(&self, headers: &HeaderMap) -> Result<Option<String>, Box<Resp>> {
        if !self.enabled() {
            return Ok(None);
        }
        let presented = headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                let (scheme, token) = v.trim().split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
            });
        let Some(presented) = presented else {
            return Err(Box::new(unauthorized("Bearer token required.")));
        };
        // Every configured digest is compared, in constant time: timing says nothing of
        // which token, or which part of one, matched.
        let presented = digest(presented);
        let mut found = None;
        for (tenant, token) in &self.tokens {
            if bool::from(token.ct_eq(&presented)) {
                found = Some(tenant.clone());
            }
        }
        found
            .map(Some)
            .ok_or_else(|| Box::new(unauthorized("Invalid bearer token.")))
    }
}

fn unauthorized(text: &str) -> Resp {
    let mut response = response::error(StatusCode::UNAUTHORIZED, "Authorization", text);
    response
        .headers_mut()
        .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens_name_tenants() {
        let auth = Auth::new(&[("a".into(), "ta".into()), ("b".into(), "tb".into())]);
        let mut headers = HeaderMap::new();
        assert!(auth.tenant(&headers).is_err());
        headers.insert(AUTHORIZATION, HeaderValue::from_static("Bearer tb"));
        assert_eq!(auth.tenant(&headers).unwrap(), Some("b".into()));
        headers.insert(AUTHORIZATION, HeaderValue::from_static("bearer nope"));
        assert!(auth.tenant(&headers).is_err());
        assert_eq!(Auth::default().tenant(&headers).unwrap(), None);
    }

    #[test]
    fn tokens_of_any_length_are_compared_as_equal_length_digests() {
        // A short guess, a prefix of the token and a longer one: all compared as 32-byte
        // digests, so a length mismatch cannot end a comparison early.
        let auth = Auth::new(&[("a".into(), "a-long-secret-token".into())]);
        for guess in ["a", "a-long-secret", "a-long-secret-token-and-more"] {
            assert_eq!(digest(guess).len(), 32);
            let mut headers = HeaderMap::new();
            let value = format!("Bearer {guess}");
            headers.insert(AUTHORIZATION, HeaderValue::from_str(&value).unwrap());
            assert!(auth.tenant(&headers).is_err(), "{guess}");
        }
        assert!(auth.tokens.iter().all(|(_, d)| d.len() == 32));
    }
}
