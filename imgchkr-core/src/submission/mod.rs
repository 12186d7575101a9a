//! Decoding a submission (`POST /assets/image`) with every offending field named.

mod strict_json;

use serde::Serialize;
use serde_json::{Map, Value};
use url::Url;

use crate::job::{AssetPath, ErrorMap, JobId, NotificationUrls, Priority};

/// Longest accepted notification URL, in bytes.
pub const MAX_URL_LEN: usize = 1024;
/// Longest accepted asset path, in bytes.
pub const MAX_PATH_LEN: usize = 1024;
/// Longest the asset path and the three notification URLs may be together, in bytes: what a
/// job keeps of its submission is bounded (100,000 retained jobs stay within a known memory
/// budget), whatever each field's own limit.
pub const MAX_STRINGS_LEN: usize = 1536;

/// A decoded, valid submission.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Submission {
    /// A client-chosen job id, for idempotent resubmission.
    pub id: Option<JobId>,
    /// What to check.
    pub asset_path: AssetPath,
    /// Where to report.
    pub notification_urls: NotificationUrls,
    /// Its priority within the tenant's queue (`normal` unless given).
    pub priority: Priority,
}

/// Why a request was refused, by field; serializes as `{"errors": {field: [texts]}}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FieldErrors {
    /// Texts by field (`assetPath.location`, `notifications.onStart`, …).
    pub errors: ErrorMap,
}

impl FieldErrors {
    /// Adds `text` under `field`.
    pub fn add(&mut self, field: impl Into<String>, text: impl Into<String>) {
        self.errors
            .entry(field.into())
            .or_default()
            .push(text.into());
    }

    /// Whether no field is named.
    pub fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }

    /// One error under one field.
    pub fn single(field: &str, text: impl Into<String>) -> FieldErrors {
        let mut errors = FieldErrors::default();
        errors.add(field, text);
        errors
    }

    /// The JSON body.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// The `assetPath.location` values this library can resolve.
pub const KNOWN_LOCATIONS: &[&str] = &["local", "url", "s3"];

const REQUIRED: &str = "This field is required.";
const NULL: &str = "This field may not be null.";
const BLANK: &str = "This field may not be blank.";
const NOT_STRING: &str = "Not a valid string.";
const BAD_URL: &str = "Enter a valid URL: an absolute http or https URL.";
const BAD_S3_URI: &str = "Enter a valid S3 location: s3://bucket/key.";

impl Submission {
    /// Decodes a JSON body. `locations` are the `assetPath.location` values this server
    /// supports (`["local"]` by default). Every problem is collected, not only the first.
    ///
    /// ```
    /// use imgchkr_core::Submission;
    /// let body = br#"{"assetPath": {"location": "s3", "path": ""},
    ///                 "notifications": {"onStart": "ftp://x", "onSuccess": "http://cb/ok"}}"#;
    /// let errors = Submission::from_json(body, &["local"]).unwrap_err().errors;
    /// assert_eq!(errors["assetPath.location"], ["Unsupported location \"s3\"; supported: local."]);
    /// assert_eq!(errors["assetPath.path"], ["This field may not be blank."]);
    /// assert_eq!(errors["notifications.onFailure"], ["This field is required."]);
    /// assert!(errors.contains_key("notifications.onStart"));
    /// ```
    pub fn from_json(body: &[u8], locations: &[&str]) -> Result<Submission, FieldErrors> {
        let value = strict_json::parse(body).map_err(|e| match e {
            strict_json::StrictError::Json(e) => {
                FieldErrors::single("body", format!("Invalid JSON: {e}."))
            }
            strict_json::StrictError::Duplicate(path) => {
                FieldErrors::single(&path, "Duplicate key: each field may appear only once.")
            }
        })?;
        let Value::Object(root) = value else {
            return Err(FieldErrors::single(
                "body",
                format!(
                    "Invalid data. Expected a dictionary, but got {}.",
                    type_name(&value)
                ),
            ));
        };
        let mut errors = FieldErrors::default();

        let id = match root.get("id") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => match s.parse::<JobId>() {
                Ok(id) => Some(id),
                Err(_) => {
                    errors.add("id", format!("\"{}\" is not a valid UUID.", truncate(s)));
                    None
                }
            },
            Some(other) => {
                errors.add(
                    "id",
                    format!("Expected a UUID string, but got {}.", type_name(other)),
                );
                None
            }
        };

        let priority = match root.get("priority") {
            None | Some(Value::Null) => Priority::Normal,
            Some(Value::String(s)) => s.parse().unwrap_or_else(|()| {
                errors.add(
                    "priority",
                    format!(
                        "\"{}\" is not a valid choice; choose high, normal or low.",
                        truncate(s)
                    ),
                );
                Priority::Normal
            }),
            Some(other) => {
                errors.add(
                    "priority",
                    format!("Expected a string, but got {}.", type_name(other)),
                );
                Priority::Normal
            }
        };

        let asset = object(&root, "assetPath", &mut errors);
        let location =
            asset.and_then(|a| string(a, "assetPath", "location", &mut errors, usize::MAX));
        let path = asset.and_then(|a| string(a, "assetPath", "path", &mut errors, MAX_PATH_LEN));
        let location = location.filter(|location| {
            let supported = locations.contains(location) && KNOWN_LOCATIONS.contains(location);
            if !supported {
                errors.add(
                    "assetPath.location",
                    format!(
                        "Unsupported location \"{}\"; supported: {}.",
                        truncate(location),
                        locations.join(", ")
                    ),
                );
            }
            supported
        });

        match (location, path) {
            (Some("url"), Some(url)) if parse_webhook_url(url).is_none() => {
                errors.add("assetPath.path", BAD_URL);
            }
            (Some("s3"), Some(uri)) if parse_s3_uri(uri).is_none() => {
                errors.add("assetPath.path", BAD_S3_URI);
            }
            _ => {}
        }

        let notifications = object(&root, "notifications", &mut errors);
        let mut url = |name: &str| {
            let raw = string(
                notifications?,
                "notifications",
                name,
                &mut errors,
                MAX_URL_LEN,
            )?;
            let parsed = parse_webhook_url(raw);
            if parsed.is_none() {
                errors.add(format!("notifications.{name}"), BAD_URL);
            }
            parsed
        };
        let (on_start, on_success, on_failure) =
            (url("onStart"), url("onSuccess"), url("onFailure"));

        let together = path.map_or(0, str::len)
            + [&on_start, &on_success, &on_failure]
                .iter()
                .map(|u| u.as_ref().map_or(0, |u| u.as_str().len()))
                .sum::<usize>();
        if together > MAX_STRINGS_LEN {
            errors.add(
                "body",
                format!(
                    "The asset path and the notification URLs may be at most {MAX_STRINGS_LEN} characters together."
                ),
            );
        }

        match (location, path, on_start, on_success, on_failure) {
            (Some(location), Some(path), Some(on_start), Some(on_success), Some(on_failure))
                if errors.is_empty() =>
            {
                let path = path.to_owned();
                let asset_path = match location {
                    "local" => AssetPath::Local { path },
                    "url" => AssetPath::Url { path },
                    "s3" => AssetPath::S3 { path },
                    // Filtered above: only known locations get here.
                    _ => return Err(errors),
                };
                Ok(Submission {
                    id,
                    priority,
                    asset_path,
                    notification_urls: NotificationUrls {
                        on_start,
                        on_success,
                        on_failure,
                    },
                })
            }
            _ => Err(errors),
        }
    }
}

/// Parses an absolute `http` or `https` URL with a host, as written (no leading or trailing
/// space, no scheme-less or `http:host` shorthand that lenient parsers repair).
pub fn parse_webhook_url(raw: &str) -> Option<Url> {
    let lower = raw.get(..8).unwrap_or(raw).to_ascii_lowercase();
    if !(lower.starts_with("http://") || lower.starts_with("https://")) {
        return None;
    }
    if raw.trim() != raw || raw.chars().any(char::is_whitespace) {
        return None;
    }
    let url = Url::parse(raw).ok()?;
    match url.host_str() {
        Some(host) if !host.is_empty() => Some(url),
        _ => None,
    }
}

/// Splits `s3://bucket/key` into bucket and key: a bucket name as S3 allows it (3–63
/// lower-case letters, digits, dots and hyphens) and a non-empty key.
pub fn parse_s3_uri(uri: &str) -> Option<(&str, &str)> {
    let (bucket, key) = uri.strip_prefix("s3://")?.split_once('/')?;
    let bucket_ok = (3..=63).contains(&bucket.len())
        && bucket
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-');
    (bucket_ok && !key.is_empty()).then_some((bucket, key))
}

fn object<'a>(
    root: &'a Map<String, Value>,
    field: &str,
    errors: &mut FieldErrors,
) -> Option<&'a Map<String, Value>> {
    match root.get(field) {
        Some(Value::Object(map)) => Some(map),
        None => {
            errors.add(field, REQUIRED);
            None
        }
        Some(Value::Null) => {
            errors.add(field, NULL);
            None
        }
        Some(other) => {
            errors.add(
                field,
                format!(
                    "Invalid data. Expected a dictionary, but got {}.",
                    type_name(other)
                ),
            );
            None
        }
    }
}

fn string<'a>(
    parent: &'a Map<String, Value>,
    prefix: &str,
    field: &str,
    errors: &mut FieldErrors,
    max_len: usize,
) -> Option<&'a str> {
    let name = format!("{prefix}.{field}");
    match parent.get(field) {
        Some(Value::String(s)) if s.is_empty() => errors.add(name, BLANK),
        Some(Value::String(s)) if s.len() > max_len => errors.add(
            name,
            format!("Ensure this field has no more than {max_len} characters."),
        ),
        Some(Value::String(s)) => return Some(s),
        None => errors.add(name, REQUIRED),
        Some(Value::Null) => errors.add(name, NULL),
        Some(_) => errors.add(name, NOT_STRING),
    }
    None
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "str",
        Value::Array(_) => "list",
        Value::Object(_) => "dict",
    }
}

/// Echoes at most 100 characters of client input in an error text.
fn truncate(s: &str) -> &str {
    match s.char_indices().nth(100) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOCAL: &[&str] = &["local"];

    fn errors(body: &str) -> ErrorMap {
        Submission::from_json(body.as_bytes(), LOCAL)
            .unwrap_err()
            .errors
    }

    #[test]
    fn accepts_the_seed_example() {
        let body = r#"{"assetPath": {"location": "local", "path": "images/small.jpg"},
            "notifications": {"onStart": "http://callback/print/onStart",
            "onSuccess": "http://callback/print/onSuccess", "onFailure": "http://callback/print/onFailure"}}"#;
        let s = Submission::from_json(body.as_bytes(), LOCAL).unwrap();
        assert_eq!(s.asset_path.path(), "images/small.jpg");
        assert_eq!(
            s.notification_urls.on_start.as_str(),
            "http://callback/print/onStart"
        );
        assert_eq!(s.id, None);
        assert_eq!(s.priority, Priority::Normal);
    }

    #[test]
    fn priority_is_one_of_three_names() {
        let body = |priority: &str| {
            format!(
                r#"{{"priority": {priority}, "assetPath": {{"location": "local", "path": "a.jpg"}},
                "notifications": {{"onStart": "http://a/", "onSuccess": "http://a/", "onFailure": "http://a/"}}}}"#
            )
        };
        for (raw, want) in [
            ("\"high\"", Priority::High),
            ("\"normal\"", Priority::Normal),
            ("\"low\"", Priority::Low),
            ("null", Priority::Normal),
        ] {
            let s = Submission::from_json(body(raw).as_bytes(), LOCAL).unwrap();
            assert_eq!(s.priority, want, "{raw}");
        }
        for raw in ["\"urgent\"", "\"HIGH\"", "1", "[]"] {
            let e = Submission::from_json(body(raw).as_bytes(), LOCAL).unwrap_err();
            assert!(e.errors.contains_key("priority"), "{raw}: {e:?}");
            assert_eq!(e.errors.len(), 1, "{raw}: {e:?}");
        }
    }

    #[test]
    fn names_every_offending_field() {
        let e = errors(
            r#"{"assetPath": {"location": 3}, "notifications": {"onStart": null, "onSuccess": "x", "onFailure": "https://ok.example/"}}"#,
        );
        assert_eq!(e["assetPath.location"], [NOT_STRING]);
        assert_eq!(e["assetPath.path"], [REQUIRED]);
        assert_eq!(e["notifications.onStart"], [NULL]);
        assert_eq!(e["notifications.onSuccess"], [BAD_URL]);
        assert!(!e.contains_key("notifications.onFailure"));
        let e = errors("{}");
        assert_eq!(e["assetPath"], [REQUIRED]);
        assert_eq!(e["notifications"], [REQUIRED]);
        assert_eq!(
            errors("[1]")["body"],
            ["Invalid data. Expected a dictionary, but got list."]
        );
        assert!(errors("{nope")["body"][0].starts_with("Invalid JSON"));
        assert!(errors(r#"{"id": "x"}"#)["id"][0].contains("not a valid UUID"));
    }

    #[test]
    fn only_absolute_http_urls_pass() {
        for good in [
            "http://callback/print/onStart",
            "https://a.example:8443/x?y=1",
            "HTTP://A/",
        ] {
            assert!(parse_webhook_url(good).is_some(), "{good}");
        }
        for bad in [
            "",
            "callback/x",
            "/x",
            "ftp://a/",
            "http:/a",
            "http:a",
            "http://",
            " http://a/",
            "http://a b/",
            "mailto:a@b",
            "javascript:alert(1)",
        ] {
            assert!(parse_webhook_url(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn remote_locations_are_checked_when_enabled() {
        let body = |location: &str, path: &str| {
            format!(
                r#"{{"assetPath": {{"location": "{location}", "path": "{path}"}},
                "notifications": {{"onStart": "http://a/", "onSuccess": "http://a/", "onFailure": "http://a/"}}}}"#
            )
        };
        let all = &["local", "url", "s3"];
        let ok = Submission::from_json(body("url", "https://img.example/a.jpg").as_bytes(), all)
            .unwrap();
        assert_eq!(
            ok.asset_path,
            AssetPath::Url {
                path: "https://img.example/a.jpg".into()
            }
        );
        let ok =
            Submission::from_json(body("s3", "s3://my-bucket/a/b.jpg").as_bytes(), all).unwrap();
        assert_eq!(ok.asset_path.location(), "s3");
        let e = Submission::from_json(body("url", "ftp://x/a.jpg").as_bytes(), all)
            .unwrap_err()
            .errors;
        assert_eq!(e["assetPath.path"], [BAD_URL]);
        let e = Submission::from_json(body("s3", "s3://B/").as_bytes(), all)
            .unwrap_err()
            .errors;
        assert_eq!(e["assetPath.path"], [BAD_S3_URI]);
        // Not enabled: refused by name, whatever the path.
        let e = Submission::from_json(body("s3", "s3://bucket/k").as_bytes(), LOCAL)
            .unwrap_err()
            .errors;
        assert_eq!(
            e["assetPath.location"],
            ["Unsupported location \"s3\"; supported: local."]
        );
        assert_eq!(
            parse_s3_uri("s3://bucket/key/x.jpg"),
            Some(("bucket", "key/x.jpg"))
        );
        assert_eq!(parse_s3_uri("s3://bucket"), None);
    }

    #[test]
    fn duplicate_keys_are_refused_by_name() {
        let e = errors(
            r#"{"assetPath": {"location": "local", "path": "a.jpg", "path": "../etc/passwd"},
            "notifications": {"onStart": "http://a/", "onSuccess": "http://a/", "onFailure": "http://a/"}}"#,
        );
        assert_eq!(
            e["assetPath.path"],
            ["Duplicate key: each field may appear only once."]
        );
        assert_eq!(e.len(), 1);
    }

    #[test]
    fn the_strings_a_job_keeps_are_bounded_together() {
        let url = |n: usize| format!("http://a.example/{}", "x".repeat(n));
        let body = |path: usize, url_len: usize| {
            serde_json::json!({
                "assetPath": {"location": "local", "path": "p".repeat(path)},
                "notifications": {"onStart": url(url_len), "onSuccess": url(url_len),
                                  "onFailure": url(url_len)}
            })
            .to_string()
        };
        // Each field within its own limit, but together too long.
        let e = errors(&body(1000, 300));
        assert!(
            e["body"][0].contains("at most 1536 characters together"),
            "{e:?}"
        );
        assert!(Submission::from_json(body(500, 300).as_bytes(), LOCAL).is_ok());
        // A field over its own limit is named.
        let e = errors(&body(MAX_PATH_LEN + 1, 10));
        assert!(e.contains_key("assetPath.path"), "{e:?}");
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let deep = "[".repeat(100_000);
        assert!(errors(&deep)["body"][0].starts_with("Invalid JSON"));
    }
}
