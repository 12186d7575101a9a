//! Bearer-token authentication: a token names its tenant.
//!
//! Tokens are kept and compared as SHA-256 digests: every comparison is between two 32-byte
//! values, in constant time (`subtle`), so neither a token's length nor its prefix shows in
//! the time an answer takes.

use hyper::StatusCode;
use hyper::header::{AUTHORIZATION, HeaderMap, HeaderValue, WWW_AUTHENTICATE};
use std::sync::Arc;

use crate::response::{self, Resp};
use crate::tenants::{Tenant, Tenants};
use crate::token::digest;

/// The caller's tenant: the anonymous one when no tenant is configured, else the one whose
/// token the `Authorization: Bearer` header carries, or the 401 to answer.
pub fn identify(tenants: &Tenants, headers: &HeaderMap) -> Result<Arc<Tenant>, Box<Resp>> {
    if !tenants.enabled() {
        return tenants
            .get("")
            .ok_or_else(|| Box::new(unauthorized("Bearer token required.")));
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
    // Every configured digest is compared, in constant time: timing says nothing of which
    // token, or which part of one, matched.
    tenants
        .by_token(&digest(presented))
        .ok_or_else(|| Box::new(unauthorized("Invalid bearer token.")))
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

    fn tenants() -> Tenants {
        Tenants::from_auth_tokens(&[("a".into(), "ta".into()), ("b".into(), "tb".into())])
    }

    #[test]
    fn bearer_tokens_name_tenants() {
        let tenants = tenants();
        let mut headers = HeaderMap::new();
        assert!(identify(&tenants, &headers).is_err());
        headers.insert(AUTHORIZATION, HeaderValue::from_static("Bearer tb"));
        assert_eq!(identify(&tenants, &headers).unwrap().name, "b");
        headers.insert(AUTHORIZATION, HeaderValue::from_static("bearer nope"));
        assert!(identify(&tenants, &headers).is_err());
        assert_eq!(identify(&Tenants::default(), &headers).unwrap().name, "");
    }

    #[test]
    fn tokens_of_any_length_are_compared_as_equal_length_digests() {
        // A short guess, a prefix of the token and a longer one: all compared as 32-byte
        // digests, so a length mismatch cannot end a comparison early.
        let tenants = Tenants::from_auth_tokens(&[("a".into(), "a-long-secret-token".into())]);
        for guess in ["a", "a-long-secret", "a-long-secret-token-and-more"] {
            assert_eq!(digest(guess).len(), 32);
            let mut headers = HeaderMap::new();
            let value = format!("Bearer {guess}");
            headers.insert(AUTHORIZATION, HeaderValue::from_str(&value).unwrap());
            assert!(identify(&tenants, &headers).is_err(), "{guess}");
        }
    }
}
