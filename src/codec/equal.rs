//! JS deep equality as lodash `isEqual` decides it for [`Value`]s.
//!
//! The monitor compares replayed changes with stored ones using this, so it must agree with
//! what JS Vitra's monitor (lodash `isEqual`) would say:
//! - numbers compare with SameValueZero: `NaN` equals `NaN`, `0` equals `-0`;
//! - objects are equal when they have the same own keys (in any order) with equal values;
//!   a key holding `undefined` is still a key (`{a: undefined}` differs from `{}`);
//! - arrays compare element-wise; byte buffers byte-wise; dates by their time value;
//! - values of different kinds are never equal (`null` differs from `undefined`).

use super::value::{Object, Value};

/// Whether `a` and `b` are deep-equal under lodash `isEqual` semantics.
pub fn deep_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Undefined, Value::Undefined) | (Value::Null, Value::Null) => true,
        (Value::Bool(x), Value::Bool(y)) => x == y,
        (Value::Number(x), Value::Number(y)) | (Value::Date(x), Value::Date(y)) => {
            same_value_zero(*x, *y)
        }
        (Value::String(x), Value::String(y)) => x == y,
        (Value::Bytes(x), Value::Bytes(y)) => x == y,
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| deep_equal(p, q))
        }
        (Value::Object(x), Value::Object(y)) => objects_equal(x, y),
        _ => false,
    }
}

/// Object equality: same key set, deep-equal values, order ignored.
pub(crate) fn objects_equal(x: &Object, y: &Object) -> bool {
    x.len() == y.len()
        && x.iter()
            .all(|(k, v)| y.get(k).is_some_and(|w| deep_equal(v, w)))
}

fn same_value_zero(x: f64, y: f64) -> bool {
    x == y || (x.is_nan() && y.is_nan())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(pairs: &[(&str, Value)]) -> Value {
        Value::Object(pairs.iter().cloned().collect())
    }

    #[test]
    fn numbers_use_same_value_zero() {
        assert!(deep_equal(
            &Value::Number(f64::NAN),
            &Value::Number(f64::NAN)
        ));
        assert!(deep_equal(&Value::Number(0.0), &Value::Number(-0.0)));
        assert!(!deep_equal(&Value::Number(1.0), &Value::Number(1.0000001)));
    }

    #[test]
    fn object_key_order_does_not_matter_but_undefined_keys_do() {
        let a = obj(&[("a", 1.into()), ("b", 2.into())]);
        let b = obj(&[("b", 2.into()), ("a", 1.into())]);
        assert!(deep_equal(&a, &b));
        let with_undef = obj(&[("a", Value::Undefined)]);
        assert!(!deep_equal(&with_undef, &obj(&[])));
        assert!(deep_equal(&with_undef, &obj(&[("a", Value::Undefined)])));
    }

    #[test]
    fn kinds_never_mix() {
        assert!(!deep_equal(&Value::Null, &Value::Undefined));
        assert!(!deep_equal(&Value::Number(0.0), &Value::Bool(false)));
        assert!(!deep_equal(
            &Value::Bytes(vec![1]),
            &Value::Array(vec![Value::Number(1.0)])
        ));
        assert!(!deep_equal(&Value::Date(5.0), &Value::Number(5.0)));
    }

    #[test]
    fn nested_structures_compare_deeply() {
        let a = Value::Array(vec![obj(&[("x", Value::Bytes(vec![1, 2]))])]);
        let b = Value::Array(vec![obj(&[("x", Value::Bytes(vec![1, 2]))])]);
        let c = Value::Array(vec![obj(&[("x", Value::Bytes(vec![1, 3]))])]);
        assert!(deep_equal(&a, &b));
        assert!(!deep_equal(&a, &c));
    }
}
