//! The JavaScript value model that contracts, oplogs and the index exchange.
//!
//! [`Value`] holds exactly what a JS Vitra contract can hand to `emit()`, `tx.put()` or
//! return from a method and what msgpackr 1.5.2 can carry: `undefined`, `null`, booleans,
//! numbers (always `f64`, as in JavaScript, with `-0` and `NaN`), strings, byte buffers,
//! arrays, plain objects and dates.
//!
//! [`Object`] keeps JavaScript's own-property order: integer-like keys (canonical array
//! indices, `0` ..= `2^32 - 2`) first in ascending numeric order, then every other key in
//! insertion order. Setting an existing key replaces its value in place.

use std::fmt;

/// A JavaScript value as contracts and msgpackr see it.
#[derive(Clone, Debug)]
pub enum Value {
    /// JS `undefined` (msgpackr: `d4 00 00`).
    Undefined,
    /// JS `null`.
    Null,
    /// A boolean.
    Bool(bool),
    /// A JS number: every number is an `f64`, integers included.
    Number(f64),
    /// A string (always valid UTF-8 here; JS lone surrogates become U+FFFD on the way in).
    String(String),
    /// A byte buffer (`Buffer` / `Uint8Array`).
    Bytes(Vec<u8>),
    /// An array.
    Array(Vec<Value>),
    /// A plain object, in JS property order.
    Object(Object),
    /// A `Date`, as milliseconds since the Unix epoch (msgpack timestamp extension -1).
    Date(f64),
}

impl Value {
    /// The JS `typeof`-like name of this value's kind, for error messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Undefined => "undefined",
            Value::Null => "null",
            Value::Bool(_) => "boolean",
            Value::Number(_) => "number",
            Value::String(_) => "string",
            Value::Bytes(_) => "bytes",
            Value::Array(_) => "array",
            Value::Object(_) => "object",
            Value::Date(_) => "date",
        }
    }

    /// The string, when this is a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// The number, when this is a number.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Number(n) => Some(*n),
            _ => None,
        }
    }

    /// The boolean, when this is a boolean.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// The bytes, when this is a byte buffer.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Bytes(b) => Some(b),
            _ => None,
        }
    }

    /// The object, when this is an object.
    pub fn as_object(&self) -> Option<&Object> {
        match self {
            Value::Object(o) => Some(o),
            _ => None,
        }
    }

    /// The array, when this is an array.
    pub fn as_array(&self) -> Option<&[Value]> {
        match self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }

    /// Whether this is `undefined`.
    pub fn is_undefined(&self) -> bool {
        matches!(self, Value::Undefined)
    }

    /// Property `key` of an object; `None` for a missing key or a non-object.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.as_object().and_then(|o| o.get(key))
    }

    /// JavaScript truthiness (`!!value`).
    pub fn is_truthy(&self) -> bool {
        match self {
            Value::Undefined | Value::Null => false,
            Value::Bool(b) => *b,
            Value::Number(n) => !(*n == 0.0 || n.is_nan()),
            Value::String(s) => !s.is_empty(),
            _ => true,
        }
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Bool(b)
    }
}

impl From<f64> for Value {
    fn from(n: f64) -> Self {
        Value::Number(n)
    }
}

impl From<i64> for Value {
    fn from(n: i64) -> Self {
        Value::Number(n as f64)
    }
}

impl From<u64> for Value {
    fn from(n: u64) -> Self {
        Value::Number(n as f64)
    }
}

impl From<u32> for Value {
    fn from(n: u32) -> Self {
        Value::Number(f64::from(n))
    }
}

impl From<i32> for Value {
    fn from(n: i32) -> Self {
        Value::Number(f64::from(n))
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::String(s.to_owned())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::String(s)
    }
}

impl From<Vec<u8>> for Value {
    fn from(b: Vec<u8>) -> Self {
        Value::Bytes(b)
    }
}

impl From<Vec<Value>> for Value {
    fn from(a: Vec<Value>) -> Self {
        Value::Array(a)
    }
}

impl From<Object> for Value {
    fn from(o: Object) -> Self {
        Value::Object(o)
    }
}

/// Structural equality in the sense of lodash `isEqual` (see [`crate::codec::deep_equal`]).
impl PartialEq for Value {
    fn eq(&self, other: &Self) -> bool {
        super::deep_equal(self, other)
    }
}

impl fmt::Display for Value {
    /// Shows the value as the CLI prints it: JSON with the `$undefined` / `$buffer`
    /// conventions of [`crate::codec::to_json`].
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", super::to_json(self))
    }
}

/// A JS plain object: own enumerable string-keyed properties in JavaScript's order.
#[derive(Clone, Debug, Default)]
pub struct Object {
    /// Integer-like keys come first (ascending), then the rest in insertion order.
    entries: Vec<(String, Value)>,
    /// How many entries at the front have integer-like keys.
    index_keys: usize,
}

impl Object {
    /// An empty object (`{}`).
    pub fn new() -> Self {
        Object::default()
    }

    /// Number of properties.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the object has no properties.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The value of property `key`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.position(key).map(|i| &self.entries[i].1)
    }

    /// Whether property `key` exists (even when its value is `undefined`).
    pub fn contains_key(&self, key: &str) -> bool {
        self.position(key).is_some()
    }

    /// Sets property `key` as a JS assignment does: an existing key keeps its place, a new
    /// integer-like key goes into numeric order, any other new key goes last.
    pub fn insert(&mut self, key: impl Into<String>, value: Value) {
        let key = key.into();
        if let Some(i) = self.position(&key) {
            self.entries[i].1 = value;
            return;
        }
        match array_index(&key) {
            Some(n) => {
                let at = self.entries[..self.index_keys]
                    .partition_point(|(k, _)| array_index(k).is_some_and(|m| m < n));
                self.entries.insert(at, (key, value));
                self.index_keys += 1;
            }
            None => self.entries.push((key, value)),
        }
    }

    /// Builder form of [`Object::insert`].
    pub fn with(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.insert(key, value.into());
        self
    }

    /// Removes property `key`, returning its value.
    pub fn remove(&mut self, key: &str) -> Option<Value> {
        let i = self.position(key)?;
        if i < self.index_keys {
            self.index_keys -= 1;
        }
        Some(self.entries.remove(i).1)
    }

    /// The properties in JS order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&str, &Value)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// The keys in JS order.
    pub fn keys(&self) -> impl ExactSizeIterator<Item = &str> {
        self.entries.iter().map(|(k, _)| k.as_str())
    }

    fn position(&self, key: &str) -> Option<usize> {
        self.entries.iter().position(|(k, _)| k == key)
    }
}

impl<K: Into<String>> FromIterator<(K, Value)> for Object {
    fn from_iter<T: IntoIterator<Item = (K, Value)>>(iter: T) -> Self {
        let mut o = Object::new();
        for (k, v) in iter {
            o.insert(k, v);
        }
        o
    }
}

impl PartialEq for Object {
    fn eq(&self, other: &Self) -> bool {
        super::equal::objects_equal(self, other)
    }
}

/// The numeric value of `key` when it is a canonical JS array index (`"0"`, `"17"`, not
/// `"01"` or `"4294967295"`), which JS orders before all other property keys.
pub fn array_index(key: &str) -> Option<u32> {
    let b = key.as_bytes();
    if b.is_empty() || b.len() > 10 || (b.len() > 1 && b[0] == b'0') {
        return None;
    }
    if !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n: u64 = key.parse().ok()?;
    if n <= u64::from(u32::MAX - 1) {
        Some(n as u32)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integer_like_keys_come_first_in_numeric_order() {
        let o = Object::new()
            .with("b", 1)
            .with("10", 2)
            .with("a", 3)
            .with("2", 4)
            .with("01", 5)
            .with("4294967295", 6)
            .with("4294967294", 7);
        let keys: Vec<&str> = o.keys().collect();
        assert_eq!(
            keys,
            ["2", "10", "4294967294", "b", "a", "01", "4294967295"]
        );
    }

    #[test]
    fn reassigning_a_key_keeps_its_place() {
        let mut o = Object::new().with("x", 1).with("y", 2);
        o.insert("x", Value::from(9));
        assert_eq!(o.keys().collect::<Vec<_>>(), ["x", "y"]);
        assert_eq!(o.get("x").and_then(Value::as_f64), Some(9.0));
        assert_eq!(o.remove("x").and_then(|v| v.as_f64()), Some(9.0));
        assert_eq!(o.keys().collect::<Vec<_>>(), ["y"]);
    }

    #[test]
    fn removing_an_index_key_keeps_order_bookkeeping() {
        let mut o = Object::new().with("1", 1).with("z", 2).with("0", 3);
        o.remove("0");
        o.insert("5", Value::Null);
        assert_eq!(o.keys().collect::<Vec<_>>(), ["1", "5", "z"]);
    }
}
