//! Conversions between [`Value`] and JSON (`serde_json::Value`), for the CLI, transaction
//! files and fixtures.
//!
//! JSON cannot hold every JS value, so a few tagged single-key objects stand in for the rest;
//! they are the convention JS Vitra's fixture manifests use, extended where needed:
//!
//! | value | JSON |
//! | --- | --- |
//! | `undefined` | `{"$undefined": true}` |
//! | byte buffer | `{"$buffer": "<lowercase hex>"}` |
//! | `Date` | `{"$date": <ms since epoch>}` |
//! | `NaN`, `Infinity`, `-Infinity` | `{"$number": "NaN"}` (and so on) |
//!
//! Integral numbers print without a fraction (`3`, not `3.0`); `-0` prints as `0`, as
//! `JSON.stringify` does. Any other JSON object converts to a plain object, keeping its key
//! order (integer-like keys first, as `JSON.parse` would).

use super::value::{Object, Value};
use serde_json::{Map, Number, Value as Json};

/// Converts a value to JSON using the tagged-object convention above.
pub fn to_json(value: &Value) -> Json {
    match value {
        Value::Undefined => tagged("$undefined", Json::Bool(true)),
        Value::Null => Json::Null,
        Value::Bool(b) => Json::Bool(*b),
        Value::Number(n) => number_to_json(*n),
        Value::String(s) => Json::String(s.clone()),
        Value::Bytes(b) => tagged("$buffer", Json::String(hex::encode(b))),
        Value::Array(a) => Json::Array(a.iter().map(to_json).collect()),
        Value::Object(o) => {
            Json::Object(o.iter().map(|(k, v)| (k.to_owned(), to_json(v))).collect())
        }
        Value::Date(ms) => tagged("$date", number_to_json(*ms)),
    }
}

/// Converts JSON to a value, recognising the tagged objects of [`to_json`].
pub fn from_json(json: &Json) -> Value {
    match json {
        Json::Null => Value::Null,
        Json::Bool(b) => Value::Bool(*b),
        Json::Number(n) => Value::Number(n.as_f64().unwrap_or(f64::NAN)),
        Json::String(s) => Value::String(s.clone()),
        Json::Array(a) => Value::Array(a.iter().map(from_json).collect()),
        Json::Object(m) => from_json_object(m),
    }
}

fn from_json_object(m: &Map<String, Json>) -> Value {
    if m.len() == 1 {
        if let Some((tag, inner)) = m.iter().next() {
            match (tag.as_str(), inner) {
                ("$undefined", Json::Bool(true)) => return Value::Undefined,
                ("$buffer", Json::String(h)) => {
                    if let Ok(bytes) = hex::decode(h) {
                        return Value::Bytes(bytes);
                    }
                }
                ("$date", Json::Number(n)) => return Value::Date(n.as_f64().unwrap_or(f64::NAN)),
                ("$date", Json::Object(_)) => {
                    if let Value::Number(n) = from_json(inner) {
                        return Value::Date(n);
                    }
                }
                ("$number", Json::String(s)) => match s.as_str() {
                    "NaN" => return Value::Number(f64::NAN),
                    "Infinity" => return Value::Number(f64::INFINITY),
                    "-Infinity" => return Value::Number(f64::NEG_INFINITY),
                    _ => {}
                },
                _ => {}
            }
        }
    }
    let mut o = Object::new();
    for (k, v) in m {
        o.insert(k.clone(), from_json(v));
    }
    Value::Object(o)
}

fn tagged(tag: &str, inner: Json) -> Json {
    let mut m = Map::new();
    m.insert(tag.to_owned(), inner);
    Json::Object(m)
}

fn number_to_json(n: f64) -> Json {
    if n.is_nan() {
        return tagged("$number", Json::String("NaN".into()));
    }
    if n.is_infinite() {
        let s = if n > 0.0 { "Infinity" } else { "-Infinity" };
        return tagged("$number", Json::String(s.into()));
    }
    // JSON.stringify writes integers below 1e21 without a fraction or exponent.
    if n.fract() == 0.0 && n.abs() < 9.223_372_036_854_775e18 {
        return Json::Number(Number::from(n as i64));
    }
    Number::from_f64(n).map_or(Json::Null, Json::Number)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tagged_values_round_trip() {
        let v = Value::Array(vec![
            Value::Undefined,
            Value::Bytes(vec![0xde, 0xad]),
            Value::Date(1_700_000_000_000.0),
            Value::Number(f64::NAN),
            Value::Number(f64::NEG_INFINITY),
            Value::Number(1.5),
            Value::Number(3.0),
        ]);
        let j = to_json(&v);
        assert_eq!(
            j,
            json!([{"$undefined": true}, {"$buffer": "dead"}, {"$date": 1700000000000i64},
                   {"$number": "NaN"}, {"$number": "-Infinity"}, 1.5, 3])
        );
        assert_eq!(from_json(&j), v);
    }

    #[test]
    fn large_integers_print_without_a_fraction() {
        assert_eq!(
            to_json(&Value::Number(9007199254740992.0)).to_string(),
            "9007199254740992"
        );
        assert_eq!(
            to_json(&Value::Number(-1e18)).to_string(),
            "-1000000000000000000"
        );
    }

    #[test]
    fn negative_zero_prints_as_zero() {
        assert_eq!(to_json(&Value::Number(-0.0)).to_string(), "0");
    }

    #[test]
    fn json_objects_order_keys_as_json_parse_does() {
        let j: Json = serde_json::from_str(r#"{"b":1,"2":2,"a":3,"1":4}"#).expect("valid json");
        let v = from_json(&j);
        let keys: Vec<&str> = v
            .as_object()
            .map(|o| o.keys().collect())
            .unwrap_or_default();
        assert_eq!(keys, ["1", "2", "b", "a"]);
    }
}
