//! Reading a submission's JSON strictly: like `serde_json::Value`, but an object that names a
//! key twice is refused, with the key's dotted path (`assetPath.path`), instead of the last
//! value silently winning (two parsers of one body must never disagree on what it says).

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// Why a body could not be read.
#[derive(Debug)]
pub(crate) enum StrictError {
    /// Not JSON (or nested too deep).
    Json(serde_json::Error),
    /// An object names this key (dotted path from the root) more than once.
    Duplicate(String),
}

/// Parses `body` as JSON, refusing duplicate keys.
pub(crate) fn parse(body: &[u8]) -> Result<Value, StrictError> {
    let mut duplicate = None;
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let value = Strict {
        at: Step::Root,
        duplicate: &mut duplicate,
    }
    .deserialize(&mut deserializer);
    if let Some(path) = duplicate {
        return Err(StrictError::Duplicate(path));
    }
    let value = value.map_err(StrictError::Json)?;
    deserializer.end().map_err(StrictError::Json)?;
    Ok(value)
}

/// Where a value sits in the document: a chain of borrowed steps, spelled out as a dotted path
/// only when a duplicate is found (a submission's every key would otherwise cost a `String`).
#[derive(Clone, Copy)]
enum Step<'p> {
    Root,
    Key(&'p Step<'p>, &'p str),
    Item(&'p Step<'p>),
}

impl Step<'_> {
    /// `assetPath.path`, `x[].k`; empty at the root.
    fn path(&self) -> String {
        match self {
            Step::Root => String::new(),
            Step::Key(parent, key) => match parent.path() {
                path if path.is_empty() => (*key).to_owned(),
                path => format!("{path}.{key}"),
            },
            Step::Item(parent) => format!("{}[]", parent.path()),
        }
    }
}

/// A value at `at`; the first duplicate key found anywhere is noted in `duplicate`.
struct Strict<'a> {
    at: Step<'a>,
    duplicate: &'a mut Option<String>,
}

impl<'de> DeserializeSeed<'de> for Strict<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Strict<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        let at = Step::Item(&self.at);
        loop {
            let seed = Strict {
                at,
                duplicate: &mut *self.duplicate,
            };
            match seq.next_element_seed(seed)? {
                Some(item) => items.push(item),
                None => return Ok(Value::Array(items)),
            }
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let at = Step::Key(&self.at, &key);
            if object.contains_key(&key) {
                *self.duplicate = Some(at.path());
                return Err(de::Error::custom("duplicate key"));
            }
            let value = map.next_value_seed(Strict {
                at,
                duplicate: &mut *self.duplicate,
            })?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn duplicate(body: &str) -> Option<String> {
        match parse(body.as_bytes()) {
            Err(StrictError::Duplicate(path)) => Some(path),
            _ => None,
        }
    }

    #[test]
    fn duplicate_keys_are_named_by_path() {
        assert_eq!(duplicate(r#"{"a": 1, "a": 2}"#).as_deref(), Some("a"));
        assert_eq!(
            duplicate(r#"{"assetPath": {"path": "a", "location": "local", "path": "b"}}"#)
                .as_deref(),
            Some("assetPath.path")
        );
        assert_eq!(
            duplicate(r#"{"x": [{"k": 1}, {"k": 1, "k": 2}]}"#).as_deref(),
            Some("x[].k")
        );
        assert_eq!(duplicate(r#"{"a": {"b": 1}, "c": {"b": 2}}"#), None);
    }

    #[test]
    fn values_read_as_serde_json_reads_them() {
        let body = r#"{"s": "x\u00e9", "n": -3, "u": 18446744073709551615, "f": 1.5,
            "t": true, "z": null, "a": [1, [2, {}]], "o": {"p": {}}}"#;
        let strict = parse(body.as_bytes()).unwrap();
        let plain: Value = serde_json::from_str(body).unwrap();
        assert_eq!(strict, plain);
        assert!(matches!(parse(b"{} trailing"), Err(StrictError::Json(_))));
        assert!(matches!(parse(b"{nope"), Err(StrictError::Json(_))));
        let deep = "[".repeat(100_000);
        assert!(matches!(parse(deep.as_bytes()), Err(StrictError::Json(_))));
    }
}
