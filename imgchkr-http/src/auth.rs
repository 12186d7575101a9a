//! Bearer-token authentication: a token names its tenant.

use hyper::StatusCode;
use hyper::header::{AUTHORIZATION, HeaderMap, HeaderValue, WWW_AUTHENTICATE};

use crate::response::{self, Resp};

/// The configured tokens; empty means /assets is open and jobs carry no tenant.
#[derive(Debug, Clone, Default)]
pub struct Auth {
    tokens: Vec<(String, Vec<u8>)>,
}

impl Auth {
    /// Tokens as `(tenant, token)` pairs.
    pub fn new(tokens: &[(String, String)]) -> Auth {
        Auth {
            tokens: tokens
                .iter()
                .map(|(tenant, token)| (tenant.clone(), token.as_bytes().to_vec()))
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
        // Every token is compared in full, so timing does not say which prefix matched.
        let mut found = None;
        for (tenant, token) in &self.tokens {
            if constant_time_eq(token, presented.as_bytes()) {
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

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
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
}
