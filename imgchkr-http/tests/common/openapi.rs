//! Every response the harness's [`request`](super::request) gets is checked against the
//! server's own OpenAPI document (`src/openapi.json`, served at `/openapi.json`): the path
//! and method must be described (or be answered 404 / 405 as its conventions say), the status
//! documented for the operation, the required headers present, and a JSON body valid under
//! the documented schema (formats included). So the document cannot drift from what the
//! contract tests see.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Mutex, OnceLock};

use serde_json::Value;

use super::Resp;

fn imgchkr_addrs() -> &'static Mutex<HashSet<SocketAddr>> {
    static ADDRS: OnceLock<Mutex<HashSet<SocketAddr>>> = OnceLock::new();
    ADDRS.get_or_init(Mutex::default)
}

/// Notes that an imgchkr server answers on `addr` (its answers are checked).
pub fn serves_imgchkr(addr: SocketAddr) {
    imgchkr_addrs()
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .insert(addr);
}

/// Notes that the server on `addr` stopped (the port may serve something else next).
pub fn gone(addr: SocketAddr) {
    imgchkr_addrs()
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .remove(&addr);
}

/// Whether an imgchkr server started by this test binary answers on `addr`.
pub fn is_imgchkr(addr: SocketAddr) -> bool {
    imgchkr_addrs()
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .contains(&addr)
}

/// The document, as compiled into the binary.
pub const DOCUMENT: &str = include_str!("../../src/openapi.json");

fn document() -> &'static Value {
    static DOC: OnceLock<Value> = OnceLock::new();
    DOC.get_or_init(|| serde_json::from_str(DOCUMENT).expect("src/openapi.json is JSON"))
}

/// The path item of `path` (its template matched segment by segment).
fn path_item(path: &str) -> Option<&'static Value> {
    let paths = document()["paths"].as_object()?;
    if let Some(item) = paths.get(path) {
        return Some(item);
    }
    let segments: Vec<&str> = path.split('/').collect();
    paths.iter().find_map(|(template, item)| {
        let parts: Vec<&str> = template.split('/').collect();
        let matches = parts.len() == segments.len()
            && parts
                .iter()
                .zip(&segments)
                .all(|(t, s)| (t.starts_with('{') && t.ends_with('}') && !s.is_empty()) || t == s);
        matches.then_some(item)
    })
}

/// Follows a local `$ref` (`#/components/...`).
fn resolve(value: &'static Value) -> &'static Value {
    match value.get("$ref").and_then(Value::as_str) {
        Some(reference) => {
            let pointer = reference.strip_prefix('#').expect("a local $ref");
            resolve(
                document()
                    .pointer(pointer)
                    .unwrap_or_else(|| panic!("no {reference}")),
            )
        }
        None => value,
    }
}

/// Validates `body` under `schema` (its `$ref`s resolved in the document).
fn validate(schema: &Value, body: &Value, what: &str) {
    static VALIDATORS: OnceLock<Mutex<HashMap<String, jsonschema::Validator>>> = OnceLock::new();
    let key = schema.to_string();
    // No assertion while the cache is locked: a failed check must not poison it for the
    // other tests of the binary.
    let errors: Vec<String> = {
        let mut validators = VALIDATORS
            .get_or_init(Mutex::default)
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let validator = validators.entry(key).or_insert_with(|| {
            // The schema with the document's components beside it: `#/components/...`
            // resolves.
            let mut rooted = schema.clone();
            rooted["components"] = document()["components"].clone();
            jsonschema::options()
                .with_draft(jsonschema::Draft::Draft202012)
                .should_validate_formats(true)
                .build(&rooted)
                .unwrap_or_else(|e| panic!("schema of {what}: {e}"))
        });
        validator
            .iter_errors(body)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect()
    };
    assert!(
        errors.is_empty(),
        "{what}: the response does not match /openapi.json: {errors:?}\nbody: {body}"
    );
}

fn errors_body(resp: &Resp, what: &str) {
    let schema = serde_json::json!({"$ref": "#/components/schemas/Errors"});
    validate(&schema, &body_json(resp, what), what);
}

fn body_json(resp: &Resp, what: &str) -> Value {
    serde_json::from_slice(&resp.body).unwrap_or_else(|e| {
        panic!(
            "{what}: a JSON body was documented, got ({e}): {:?}",
            resp.body_text()
        )
    })
}

/// Checks `resp`, the answer to `method path`, against the document.
pub fn check(method: &str, target: &str, resp: &Resp) {
    let path = target.split('?').next().unwrap_or(target);
    let path = match path.strip_suffix('/') {
        Some(stripped) if !stripped.is_empty() => stripped,
        _ => path,
    };
    let what = format!("{method} {path} -> {}", resp.status);
    // Past the connection cap anything may answer 503 under `connection` (the document's
    // description says so).
    if resp.status == 503 && resp.body_text().contains("\"connection\"") {
        return errors_body(resp, &what);
    }
    let Some(item) = path_item(path) else {
        assert_eq!(
            resp.status, 404,
            "{what}: a path the document does not describe"
        );
        return errors_body(resp, &what);
    };
    let key = if method.eq_ignore_ascii_case("HEAD") {
        "get".to_owned()
    } else {
        method.to_ascii_lowercase()
    };
    let Some(operation) = item.get(&key).filter(|_| key != "parameters") else {
        assert_eq!(
            resp.status, 405,
            "{what}: a method the document does not describe"
        );
        assert!(resp.header("allow").is_some(), "{what}: 405 without Allow");
        return errors_body(resp, &what);
    };
    let responses = &operation["responses"];
    let status = resp.status.to_string();
    let response = responses
        .get(&status)
        .or_else(|| responses.get("default"))
        .unwrap_or_else(|| {
            panic!(
                "{what}: status {status} is not documented for {method} {path} \
                 (documented: {:?}); body {:?}",
                responses.as_object().map(|o| o.keys().collect::<Vec<_>>()),
                resp.body_text()
            )
        });
    let response = resolve(response);
    if let Some(headers) = response.get("headers").and_then(Value::as_object) {
        for (name, header) in headers {
            if resolve(header)["required"] == true {
                assert!(
                    resp.header(&name.to_ascii_lowercase()).is_some(),
                    "{what}: the documented header {name} is missing"
                );
            }
        }
    }
    let Some(content) = response.get("content").and_then(Value::as_object) else {
        return;
    };
    if method.eq_ignore_ascii_case("HEAD") {
        return;
    }
    let content_type = resp.header("content-type").unwrap_or("");
    let essence = content_type.split(';').next().unwrap_or("").trim();
    let (media, body) = content
        .iter()
        .find(|(media, _)| media.as_str() == essence)
        .unwrap_or_else(|| {
            panic!(
                "{what}: content type {content_type:?} is not documented ({:?})",
                content.keys().collect::<Vec<_>>()
            )
        });
    if media == "application/json" {
        validate(&body["schema"], &body_json(resp, &what), &what);
    }
}
