//! `GET /openapi.json`: the OpenAPI 3.1 description of every endpoint, compiled in. The
//! end-to-end tests check every response they get against this same file, so it cannot drift
//! from what the server does.

use hyper::StatusCode;

use crate::response::{self, Resp};

/// The document, as committed (`src/openapi.json`).
pub const DOCUMENT: &str = include_str!("../openapi.json");

/// The document.
pub fn document() -> Resp {
    response::json_bytes(StatusCode::OK, DOCUMENT.as_bytes().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_is_openapi_3_1_json() {
        let doc: serde_json::Value = serde_json::from_str(DOCUMENT).unwrap();
        assert!(doc["openapi"].as_str().unwrap().starts_with("3.1."));
        assert!(doc["paths"]["/assets/image"]["post"].is_object());
    }
}
