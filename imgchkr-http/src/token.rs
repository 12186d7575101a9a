//! Bearer tokens as imgchkr keeps them: never the token, only its SHA-256 digest (the tenants
//! file's `token_sha256`, `--admin-token`), so a leaked configuration gives no token away.

use sha2::{Digest, Sha256};

/// A token's SHA-256 digest.
pub type TokenDigest = [u8; 32];

/// The SHA-256 digest of `token`.
pub fn digest(token: &str) -> TokenDigest {
    Sha256::digest(token.as_bytes()).into()
}

/// A new random bearer token (256 bits, URL-safe base64) and its SHA-256 digest in hex, as a
/// tenants file's `token_sha256` takes it.
pub fn new_token() -> (String, String) {
    use base64::Engine as _;
    let bytes: [u8; 32] = rand::random();
    let token = format!(
        "imgchkr_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    );
    let hex = hex::encode(digest(&token));
    (token, hex)
}
