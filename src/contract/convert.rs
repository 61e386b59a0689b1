//! Values across the sandbox boundary: JS values ⇄ the codec's [`Value`] model.
//!
//! JS → Value copies what isolated-vm's copy (structured clone) would carry and msgpackr can
//! encode: primitives, `Uint8Array`/`ArrayBuffer` (as bytes), arrays (holes become
//! `undefined`), `Date`, and any other object as its own enumerable string-keyed properties
//! in JS order (getters run). Functions, symbols, BigInts, promises, `Map`/`Set` and
//! non-byte typed arrays are refused with a [`ValueError`], as are cycles and nesting deeper
//! than [`MAX_DEPTH`]: never a stack overflow.
//!
//! Value → JS builds fresh objects (`Uint8Array` for bytes, `Date` for dates), defining
//! properties rather than assigning them, so a key such as `__proto__` stays a plain key.

use crate::codec::msgpack::MAX_DEPTH;
use crate::codec::{Object, Value};
use rquickjs::object::{Filter, Property};
use rquickjs::{
    qjs, Array, ArrayBuffer, Atom, Ctx, Function, Object as JsObject, Type, TypedArray,
    Value as JsValue,
};

use thiserror::Error;

/// Why a JS value cannot cross the boundary.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ValueError {
    /// Arrays/objects nested deeper than [`MAX_DEPTH`].
    #[error("value nests deeper than {limit} levels (at {at})")]
    TooDeep {
        /// The limit.
        limit: usize,
        /// Where (a JS-like property path).
        at: String,
    },
    /// An object that contains itself.
    #[error("value contains a cycle (at {at})")]
    Cycle {
        /// Where the object reappears.
        at: String,
    },
    /// A kind of value that has no place in the value model.
    #[error("a {kind} cannot leave the contract (at {at})")]
    Unsupported {
        /// What it was (`function`, `symbol`, `Map`, `Float64Array`, ...).
        kind: String,
        /// Where.
        at: String,
    },
}

/// A failed JS → Value conversion.
#[derive(Debug)]
pub(crate) enum FromJsError {
    /// The value has no place in the model.
    Value(ValueError),
    /// JS code run during the conversion (a getter, a proxy trap) threw or was interrupted;
    /// the exception is pending on the context.
    Js,
}

impl FromJsError {
    /// Prefixes the location of a value error with the segment that led to it.
    fn under(self, segment: impl FnOnce() -> String) -> Self {
        match self {
            FromJsError::Value(mut e) => {
                let at = e.at_mut();
                at.insert_str(0, &segment());
                FromJsError::Value(e)
            }
            js => js,
        }
    }
}

impl ValueError {
    fn at_mut(&mut self) -> &mut String {
        match self {
            ValueError::TooDeep { at, .. }
            | ValueError::Cycle { at }
            | ValueError::Unsupported { at, .. } => at,
        }
    }
}

impl From<rquickjs::Error> for FromJsError {
    fn from(_: rquickjs::Error) -> Self {
        FromJsError::Js
    }
}

/// Converts JS values to [`Value`]s; holds `Date.prototype.getTime` as captured at startup
/// (so a contract cannot fool the conversion by overriding it).
pub(crate) struct FromJs<'a, 'js> {
    pub ctx: &'a Ctx<'js>,
    pub date_get_time: &'a Function<'js>,
}

impl<'js> FromJs<'_, 'js> {
    /// Converts `v`.
    pub fn convert(&self, v: &JsValue<'js>) -> Result<Value, FromJsError> {
        let mut stack = Vec::new();
        self.walk(v, &mut stack).map_err(|e| match e {
            FromJsError::Value(mut e) => {
                let at = e.at_mut();
                if at.is_empty() {
                    *at = "the top".to_owned();
                }
                FromJsError::Value(e)
            }
            js => js,
        })
    }

    fn unsupported(kind: &str) -> FromJsError {
        FromJsError::Value(ValueError::Unsupported {
            kind: kind.to_owned(),
            at: String::new(),
        })
    }

    fn walk(&self, v: &JsValue<'js>, stack: &mut Vec<usize>) -> Result<Value, FromJsError> {
        Ok(match v.type_of() {
            Type::Uninitialized | Type::Undefined => Value::Undefined,
            Type::Null => Value::Null,
            Type::Bool => Value::Bool(v.as_bool().unwrap_or(false)),
            Type::Int => Value::Number(f64::from(v.as_int().unwrap_or(0))),
            Type::Float => Value::Number(v.as_float().unwrap_or(f64::NAN)),
            Type::String => Value::String(js_string(self.ctx, v)?),
            Type::Symbol => return Err(Self::unsupported("symbol")),
            Type::BigInt => return Err(Self::unsupported("bigint")),
            Type::Function | Type::Constructor => return Err(Self::unsupported("function")),
            Type::Promise => return Err(Self::unsupported("promise")),
            Type::Module | Type::Unknown => return Err(Self::unsupported("internal value")),
            Type::Array | Type::Object | Type::Exception | Type::Proxy => {
                self.walk_object(v, stack)?
            }
        })
    }

    fn walk_object(&self, v: &JsValue<'js>, stack: &mut Vec<usize>) -> Result<Value, FromJsError> {
        let raw = v.as_raw();
        // SAFETY: `raw` is a live object value borrowed from `v`; these predicates only
        // inspect it.
        let (is_date, typed_kind, is_buffer, is_map, is_set) = unsafe {
            (
                qjs::JS_IsDate(raw),
                qjs::JS_GetTypedArrayType(raw),
                qjs::JS_IsArrayBuffer(raw),
                qjs::JS_IsMap(raw),
                qjs::JS_IsSet(raw),
            )
        };
        if is_date {
            let ms: f64 = self
                .date_get_time
                .call((rquickjs::function::This(v.clone()),))?;
            return Ok(Value::Date(ms));
        }
        if typed_kind >= 0 {
            if typed_kind == qjs::JSTypedArrayEnum_JS_TYPED_ARRAY_UINT8 as i32 {
                let arr = TypedArray::<u8>::from_value(v.clone())?;
                // SAFETY: the bytes are copied out before any JS runs again.
                let bytes = unsafe { arr.as_bytes() }.map(<[u8]>::to_vec);
                return Ok(Value::Bytes(bytes.unwrap_or_default()));
            }
            return Err(Self::unsupported("typed array other than Uint8Array"));
        }
        if is_buffer {
            if let Some(buf) = ArrayBuffer::from_value(v.clone()) {
                // SAFETY: the bytes are copied out before any JS runs again.
                let bytes = unsafe { buf.as_bytes() }.map(<[u8]>::to_vec);
                return Ok(Value::Bytes(bytes.unwrap_or_default()));
            }
        }
        if is_map {
            return Err(Self::unsupported("Map"));
        }
        if is_set {
            return Err(Self::unsupported("Set"));
        }
        // SAFETY: reading the pointer of an object value (tag checked by type_of above).
        let id = unsafe { qjs::JS_VALUE_GET_PTR(raw) } as usize;
        if stack.contains(&id) {
            return Err(FromJsError::Value(ValueError::Cycle { at: String::new() }));
        }
        if stack.len() >= MAX_DEPTH {
            return Err(FromJsError::Value(ValueError::TooDeep {
                limit: MAX_DEPTH,
                at: String::new(),
            }));
        }
        stack.push(id);
        let result = if v.is_array() {
            self.walk_array(v, stack)
        } else {
            self.walk_plain(v, stack)
        };
        stack.pop();
        result
    }

    fn walk_array(&self, v: &JsValue<'js>, stack: &mut Vec<usize>) -> Result<Value, FromJsError> {
        let obj = v.as_object().ok_or(FromJsError::Js)?;
        let len: f64 = obj.get("length")?;
        let len = if len.is_finite() && len >= 0.0 {
            len as u32
        } else {
            0
        };
        let mut out = Vec::with_capacity(len.min(1 << 16) as usize);
        for i in 0..len {
            let item: JsValue = obj.get(i)?;
            let r = self.walk(&item, stack);
            out.push(r.map_err(|e| e.under(|| format!("[{i}]")))?);
        }
        Ok(Value::Array(out))
    }

    fn walk_plain(&self, v: &JsValue<'js>, stack: &mut Vec<usize>) -> Result<Value, FromJsError> {
        let obj = v.as_object().ok_or(FromJsError::Js)?;
        let mut out = Object::new();
        let keys: Vec<Atom> = obj
            .own_keys::<Atom>(Filter::new().string().enum_only())
            .collect::<rquickjs::Result<_>>()?;
        for key in keys {
            let name = key.to_string()?;
            let item: JsValue = obj.get(key)?;
            let r = self.walk(&item, stack);
            let v = r.map_err(|e| e.under(|| format!(".{name}")))?;
            out.insert(name, v);
        }
        Ok(Value::Object(out))
    }
}

/// A JS string as Rust text; lone surrogates become U+FFFD, as when JS encodes UTF-8.
pub(crate) fn js_string<'js>(ctx: &Ctx<'js>, v: &JsValue<'js>) -> rquickjs::Result<String> {
    let mut len: qjs::size_t = 0;
    // SAFETY: `v` is a live value of `ctx`; the returned buffer is freed below and its bytes
    // copied before that.
    unsafe {
        let p = qjs::JS_ToCStringLen2(ctx.as_raw().as_ptr(), &mut len, v.as_raw(), false);
        if p.is_null() {
            return Err(rquickjs::Error::Exception);
        }
        let bytes = std::slice::from_raw_parts(p as *const u8, len as usize);
        let s = wtf8_lossy(bytes);
        qjs::JS_FreeCString(ctx.as_raw().as_ptr(), p);
        Ok(s)
    }
}

/// Decodes UTF-8 where a surrogate encoded on its own (`ED A0..BF xx`) is one U+FFFD.
fn wtf8_lossy(mut bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    loop {
        match std::str::from_utf8(bytes) {
            Ok(s) => {
                out.push_str(s);
                return out;
            }
            Err(e) => {
                let (ok, rest) = bytes.split_at(e.valid_up_to());
                out.push_str(std::str::from_utf8(ok).unwrap_or_default());
                out.push('\u{fffd}');
                let skip = match rest {
                    [0xed, b1, b2, ..]
                        if (0xa0..=0xbf).contains(b1) && (0x80..=0xbf).contains(b2) =>
                    {
                        3
                    }
                    _ => e.error_len().unwrap_or(rest.len()).max(1),
                };
                bytes = rest.get(skip..).unwrap_or_default();
            }
        }
    }
}

/// Converts a [`Value`] to a fresh JS value. `make_date` builds a `Date` from milliseconds.
pub(crate) fn to_js<'js>(ctx: &Ctx<'js>, v: &Value) -> rquickjs::Result<JsValue<'js>> {
    to_js_depth(ctx, v, 0)
}

fn number<'js>(ctx: &Ctx<'js>, n: f64) -> JsValue<'js> {
    let i = n as i32;
    if f64::from(i) == n && !(n == 0.0 && n.is_sign_negative()) {
        JsValue::new_int(ctx.clone(), i)
    } else {
        JsValue::new_float(ctx.clone(), n)
    }
}

fn to_js_depth<'js>(ctx: &Ctx<'js>, v: &Value, depth: usize) -> rquickjs::Result<JsValue<'js>> {
    if depth > MAX_DEPTH * 4 {
        return Err(rquickjs::Exception::throw_range(
            ctx,
            "value nests too deeply to enter the contract",
        ));
    }
    Ok(match v {
        Value::Undefined => JsValue::new_undefined(ctx.clone()),
        Value::Null => JsValue::new_null(ctx.clone()),
        Value::Bool(b) => JsValue::new_bool(ctx.clone(), *b),
        Value::Number(n) => number(ctx, *n),
        Value::String(s) => rquickjs::String::from_str(ctx.clone(), s)?.into_value(),
        Value::Bytes(b) => TypedArray::<u8>::new_copy(ctx.clone(), b)?.into_value(),
        Value::Array(items) => {
            let arr = Array::new(ctx.clone())?;
            for (i, item) in items.iter().enumerate() {
                arr.set(i, to_js_depth(ctx, item, depth + 1)?)?;
            }
            arr.into_value()
        }
        Value::Object(o) => {
            let obj = JsObject::new(ctx.clone())?;
            for (k, item) in o.iter() {
                let val = to_js_depth(ctx, item, depth + 1)?;
                define(&obj, k, val)?;
            }
            obj.into_value()
        }
        Value::Date(ms) => {
            // SAFETY: JS_NewDate returns an owned value (or an exception) for this context.
            let raw = unsafe { qjs::JS_NewDate(ctx.as_raw().as_ptr(), *ms) };
            // SAFETY: ownership of `raw` moves into the wrapper.
            let val = unsafe { JsValue::from_raw(ctx.clone(), raw) };
            if val.is_exception() {
                return Err(rquickjs::Error::Exception);
            }
            val
        }
    })
}

/// Defines an own enumerable, writable, configurable data property (never invokes a setter,
/// so `__proto__` stays an ordinary key).
pub(crate) fn define<'js>(
    obj: &JsObject<'js>,
    key: &str,
    val: JsValue<'js>,
) -> rquickjs::Result<()> {
    obj.prop(
        key,
        Property::from(val).writable().enumerable().configurable(),
    )
}

#[cfg(test)]
mod tests {
    use super::wtf8_lossy;

    #[test]
    fn lone_surrogates_become_one_replacement_character() {
        assert_eq!(wtf8_lossy(b"a\xed\xa0\x80b"), "a\u{fffd}b");
        assert_eq!(wtf8_lossy("é中".as_bytes()), "é中");
        assert_eq!(wtf8_lossy(b"\xff"), "\u{fffd}");
    }
}
