//! MessagePack exactly as npm `msgpackr` 1.5.2 `pack()` writes it.
//!
//! Oplog blocks and index values are hashed into signed Merkle trees, so the same value must
//! give the same bytes here and in JS Vitra. msgpackr's default `pack` (records off) writes:
//!
//! - objects as `map16` always (`de` + u16 count), keys in JS property order;
//! - integers in `0 ..= 63` as positive fixint, `64 ..= 255` as `cc`, then `cd` / `ce`;
//!   `-32 ..= -1` as negative fixint, then `d0` / `d1` / `d2`; every other number (integers
//!   outside the 32-bit ranges, fractions, `NaN`, infinities) as float64 `cb`. `-0` is `00`.
//! - `undefined` as `d4 00 00`, `null` `c0`, booleans `c2` / `c3`;
//! - strings with the smallest header for their UTF-8 length (fixstr, `d9`, `da`, `db`);
//! - byte buffers as `c4` / `c5` / `c6`; arrays as fixarray, `dc`, `dd`;
//! - dates as the timestamp extension -1 (`d6 ff` seconds, `d7 ff` 64-bit or `c7 0c ff` 96-bit).
//!
//! Two cases msgpackr 1.5.2 cannot write, and what we write instead: an object with more than
//! 65,535 keys (msgpackr silently wraps the `map16` count; we write `map32`), and an invalid
//! date (msgpackr throws; we write `d4 ff 00`, which decodes back to an invalid date).
//!
//! The decoder accepts any valid MessagePack: fixmaps and `map32`, `float32`, `int64` /
//! `uint64` (as the nearest `f64`, like msgpackr with `int64AsNumber`), every timestamp form,
//! and extension type 0 as `undefined`. Map keys that are not strings become their JS string
//! form, as msgpackr's object decoding does. Malformed input gives a [`CodecError`] naming the
//! offset; no allocation is ever sized by a length read from the input before the input is
//! known to hold that many bytes.

use super::value::{Object, Value};
use thiserror::Error;

/// How deeply arrays and maps may nest before decoding refuses (protects the stack).
pub const MAX_DEPTH: usize = 256;

/// What went wrong decoding MessagePack bytes.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum CodecError {
    /// The input ended inside a value.
    #[error("msgpack input truncated at byte {offset}: {needed} more bytes needed")]
    Truncated {
        /// Where the missing bytes should have started.
        offset: usize,
        /// How many bytes were missing.
        needed: usize,
    },
    /// The byte `0xc1`, which MessagePack never uses.
    #[error("msgpack byte 0x{byte:02x} at offset {offset} is not a valid type")]
    InvalidType {
        /// Where the byte is.
        offset: usize,
        /// The byte.
        byte: u8,
    },
    /// An extension type this codec does not know (msgpackr's Set, Error, RegExp, ...).
    #[error("msgpack extension type {ext_type} at offset {offset} is not supported")]
    UnsupportedExtension {
        /// Where the extension starts.
        offset: usize,
        /// Its type byte, signed.
        ext_type: i8,
    },
    /// A timestamp extension whose body is not 4, 8 or 12 bytes, or out of range.
    #[error("msgpack timestamp at offset {offset} is malformed ({len} bytes)")]
    InvalidTimestamp {
        /// Where the extension starts.
        offset: usize,
        /// Its body length.
        len: usize,
    },
    /// Arrays and maps nested deeper than [`MAX_DEPTH`].
    #[error("msgpack value nests deeper than {limit} levels at offset {offset}")]
    TooDeep {
        /// Where the level past the limit starts.
        offset: usize,
        /// The limit.
        limit: usize,
    },
    /// Bytes left over after one complete value.
    #[error("msgpack value ends at byte {offset} but the input has {remaining} more bytes")]
    TrailingBytes {
        /// Where the value ended.
        offset: usize,
        /// How many bytes follow it.
        remaining: usize,
    },
}

/// Encodes `value` as msgpackr 1.5.2 `pack(value)` does.
pub fn encode(value: &Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    encode_into(value, &mut out);
    out
}

/// Appends the encoding of `value` to `out`.
pub fn encode_into(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Undefined => out.extend_from_slice(&[0xd4, 0x00, 0x00]),
        Value::Null => out.push(0xc0),
        Value::Bool(false) => out.push(0xc2),
        Value::Bool(true) => out.push(0xc3),
        Value::Number(n) => write_number(*n, out),
        Value::String(s) => write_str(s, out),
        Value::Bytes(b) => write_bin(b, out),
        Value::Array(a) => {
            write_len(a.len(), 0x90, 0x0f, 0xdc, 0xdd, out);
            for v in a {
                encode_into(v, out);
            }
        }
        Value::Object(o) => write_object(o, out),
        Value::Date(ms) => write_date(*ms, out),
    }
}

fn write_number(n: f64, out: &mut Vec<u8>) {
    let integral = n.is_finite() && n.fract() == 0.0;
    if integral && (0.0..4_294_967_296.0).contains(&n) {
        let u = n as u32;
        if u < 0x40 {
            out.push(u as u8);
        } else if u < 0x100 {
            out.extend_from_slice(&[0xcc, u as u8]);
        } else if u < 0x10000 {
            out.push(0xcd);
            out.extend_from_slice(&(u as u16).to_be_bytes());
        } else {
            out.push(0xce);
            out.extend_from_slice(&u.to_be_bytes());
        }
    } else if integral && (-2_147_483_648.0..0.0).contains(&n) {
        let i = n as i32;
        if i >= -0x20 {
            out.push(i as u8);
        } else if i >= -0x80 {
            out.extend_from_slice(&[0xd0, i as u8]);
        } else if i >= -0x8000 {
            out.push(0xd1);
            out.extend_from_slice(&(i as i16).to_be_bytes());
        } else {
            out.push(0xd2);
            out.extend_from_slice(&i.to_be_bytes());
        }
    } else {
        let n = if n.is_nan() { f64::NAN } else { n };
        out.push(0xcb);
        out.extend_from_slice(&n.to_be_bytes());
    }
}

fn write_str(s: &str, out: &mut Vec<u8>) {
    let len = s.len();
    if len < 0x20 {
        out.push(0xa0 | len as u8);
    } else if len < 0x100 {
        out.extend_from_slice(&[0xd9, len as u8]);
    } else if len < 0x10000 {
        out.push(0xda);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(0xdb);
        out.extend_from_slice(&(len as u32).to_be_bytes());
    }
    out.extend_from_slice(s.as_bytes());
}

fn write_bin(b: &[u8], out: &mut Vec<u8>) {
    let len = b.len();
    if len < 0x100 {
        out.extend_from_slice(&[0xc4, len as u8]);
    } else if len < 0x10000 {
        out.push(0xc5);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(0xc6);
        out.extend_from_slice(&(len as u32).to_be_bytes());
    }
    out.extend_from_slice(b);
}

/// Writes an array or map length: the fix form when `len <= fix_max`, else 16 or 32 bits.
fn write_len(len: usize, fix: u8, fix_max: usize, b16: u8, b32: u8, out: &mut Vec<u8>) {
    if len <= fix_max {
        out.push(fix | len as u8);
    } else if len < 0x10000 {
        out.push(b16);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(b32);
        out.extend_from_slice(&(len as u32).to_be_bytes());
    }
}

fn write_object(o: &Object, out: &mut Vec<u8>) {
    if o.len() < 0x10000 {
        out.push(0xde);
        out.extend_from_slice(&(o.len() as u16).to_be_bytes());
    } else {
        out.push(0xdf);
        out.extend_from_slice(&(o.len() as u32).to_be_bytes());
    }
    for (k, v) in o.iter() {
        write_str(k, out);
        encode_into(v, out);
    }
}

fn write_date(ms: f64, out: &mut Vec<u8>) {
    if !ms.is_finite() {
        out.extend_from_slice(&[0xd4, 0xff, 0x00]);
        return;
    }
    let seconds = ms / 1000.0;
    let millis = ms.rem_euclid(1000.0);
    if millis == 0.0 && (0.0..4_294_967_296.0).contains(&seconds) {
        out.extend_from_slice(&[0xd6, 0xff]);
        out.extend_from_slice(&(seconds as u32).to_be_bytes());
    } else if seconds > 0.0 && seconds < 17_179_869_184.0 {
        // msgpackr 1.5.2 writes this form up to 2^34 seconds but only puts the low 32 bits
        // of the seconds in the lower word (its upper-bits term is always 0 in this range):
        // reproduced as is, since these bytes are hashed.
        out.extend_from_slice(&[0xd7, 0xff]);
        out.extend_from_slice(&((millis as u32) * 4_000_000).to_be_bytes());
        out.extend_from_slice(&((seconds.trunc() as u64) as u32).to_be_bytes());
    } else {
        out.extend_from_slice(&[0xc7, 12, 0xff]);
        out.extend_from_slice(&((millis as u32) * 1_000_000).to_be_bytes());
        out.extend_from_slice(&(seconds.floor() as i64).to_be_bytes());
    }
}

/// Decodes exactly one value from `bytes`; trailing bytes are an error (as in msgpackr).
pub fn decode(bytes: &[u8]) -> Result<Value, CodecError> {
    let mut r = Reader { bytes, pos: 0 };
    let v = r.value(0)?;
    if r.pos != bytes.len() {
        return Err(CodecError::TrailingBytes {
            offset: r.pos,
            remaining: bytes.len() - r.pos,
        });
    }
    Ok(v)
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], CodecError> {
        let rest = self.bytes.len() - self.pos;
        if n > rest {
            return Err(CodecError::Truncated {
                offset: self.pos,
                needed: n - rest,
            });
        }
        let s = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], CodecError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    fn u8(&mut self) -> Result<u8, CodecError> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<usize, CodecError> {
        Ok(u16::from_be_bytes(self.array()?) as usize)
    }

    fn u32(&mut self) -> Result<usize, CodecError> {
        Ok(u32::from_be_bytes(self.array()?) as usize)
    }

    fn value(&mut self, depth: usize) -> Result<Value, CodecError> {
        let start = self.pos;
        let b = self.u8()?;
        Ok(match b {
            0x00..=0x7f => Value::Number(f64::from(b)),
            0x80..=0x8f => self.map((b & 0x0f) as usize, depth, start)?,
            0x90..=0x9f => self.list((b & 0x0f) as usize, depth, start)?,
            0xa0..=0xbf => self.string((b & 0x1f) as usize)?,
            0xc0 => Value::Null,
            0xc1 => {
                return Err(CodecError::InvalidType {
                    offset: start,
                    byte: b,
                })
            }
            0xc2 => Value::Bool(false),
            0xc3 => Value::Bool(true),
            0xc4 => {
                let n = self.u8()? as usize;
                Value::Bytes(self.take(n)?.to_vec())
            }
            0xc5 => {
                let n = self.u16()?;
                Value::Bytes(self.take(n)?.to_vec())
            }
            0xc6 => {
                let n = self.u32()?;
                Value::Bytes(self.take(n)?.to_vec())
            }
            0xc7 => {
                let n = self.u8()? as usize;
                self.ext(n, start)?
            }
            0xc8 => {
                let n = self.u16()?;
                self.ext(n, start)?
            }
            0xc9 => {
                let n = self.u32()?;
                self.ext(n, start)?
            }
            0xca => Value::Number(f64::from(f32::from_be_bytes(self.array()?))),
            0xcb => Value::Number(f64::from_be_bytes(self.array()?)),
            0xcc => Value::Number(f64::from(self.u8()?)),
            0xcd => Value::Number(self.u16()? as f64),
            0xce => Value::Number(self.u32()? as f64),
            0xcf => Value::Number(u64::from_be_bytes(self.array()?) as f64),
            0xd0 => Value::Number(f64::from(i8::from_be_bytes(self.array()?))),
            0xd1 => Value::Number(f64::from(i16::from_be_bytes(self.array()?))),
            0xd2 => Value::Number(f64::from(i32::from_be_bytes(self.array()?))),
            0xd3 => Value::Number(i64::from_be_bytes(self.array()?) as f64),
            0xd4 => self.ext(1, start)?,
            0xd5 => self.ext(2, start)?,
            0xd6 => self.ext(4, start)?,
            0xd7 => self.ext(8, start)?,
            0xd8 => self.ext(16, start)?,
            0xd9 => {
                let n = self.u8()? as usize;
                self.string(n)?
            }
            0xda => {
                let n = self.u16()?;
                self.string(n)?
            }
            0xdb => {
                let n = self.u32()?;
                self.string(n)?
            }
            0xdc => {
                let n = self.u16()?;
                self.list(n, depth, start)?
            }
            0xdd => {
                let n = self.u32()?;
                self.list(n, depth, start)?
            }
            0xde => {
                let n = self.u16()?;
                self.map(n, depth, start)?
            }
            0xdf => {
                let n = self.u32()?;
                self.map(n, depth, start)?
            }
            0xe0..=0xff => Value::Number(f64::from(b as i8)),
        })
    }

    fn string(&mut self, n: usize) -> Result<Value, CodecError> {
        let raw = self.take(n)?;
        Ok(Value::String(String::from_utf8_lossy(raw).into_owned()))
    }

    /// Capacity for `n` items, bounded by what the remaining input could possibly hold.
    fn capacity(&self, n: usize) -> usize {
        n.min(self.bytes.len() - self.pos)
    }

    fn enter(&self, depth: usize, start: usize) -> Result<usize, CodecError> {
        if depth >= MAX_DEPTH {
            return Err(CodecError::TooDeep {
                offset: start,
                limit: MAX_DEPTH,
            });
        }
        Ok(depth + 1)
    }

    fn list(&mut self, n: usize, depth: usize, start: usize) -> Result<Value, CodecError> {
        let depth = self.enter(depth, start)?;
        let mut items = Vec::with_capacity(self.capacity(n));
        for _ in 0..n {
            items.push(self.value(depth)?);
        }
        Ok(Value::Array(items))
    }

    fn map(&mut self, n: usize, depth: usize, start: usize) -> Result<Value, CodecError> {
        let depth = self.enter(depth, start)?;
        let mut o = Object::new();
        for _ in 0..n {
            let key = property_key(self.value(depth)?);
            let value = self.value(depth)?;
            o.insert(key, value);
        }
        Ok(Value::Object(o))
    }

    fn ext(&mut self, len: usize, start: usize) -> Result<Value, CodecError> {
        let ext_type = self.u8()? as i8;
        let body = self.take(len)?;
        match ext_type {
            0 => Ok(Value::Undefined),
            -1 => timestamp(body).ok_or(CodecError::InvalidTimestamp { offset: start, len }),
            _ => Err(CodecError::UnsupportedExtension {
                offset: start,
                ext_type,
            }),
        }
    }
}

/// Decodes a timestamp extension body into milliseconds (a JS `Date`, truncated to ms).
fn timestamp(body: &[u8]) -> Option<Value> {
    let ms = match body.len() {
        1 => f64::NAN,
        4 => f64::from(u32::from_be_bytes(body.try_into().ok()?)) * 1000.0,
        8 => {
            let word = u64::from_be_bytes(body.try_into().ok()?);
            let nanos = (word >> 34) as f64;
            let seconds = (word & 0x3_ffff_ffff) as f64;
            seconds * 1000.0 + (nanos / 1_000_000.0).trunc()
        }
        12 => {
            let nanos = f64::from(u32::from_be_bytes(body[..4].try_into().ok()?));
            let seconds = i64::from_be_bytes(body[4..].try_into().ok()?) as f64;
            seconds * 1000.0 + (nanos / 1_000_000.0).trunc()
        }
        _ => return None,
    };
    // JS `Date` time values are limited to ±8.64e15 ms; anything beyond is an invalid date.
    Some(Value::Date(if ms.abs() <= 8.64e15 { ms } else { f64::NAN }))
}

/// The JS property key a decoded map key becomes (`String(key)`).
fn property_key(key: Value) -> String {
    match key {
        Value::String(s) => s,
        other => js_to_string(&other),
    }
}

/// JavaScript's `String(value)` for the values a map key can be.
pub fn js_to_string(v: &Value) -> String {
    match v {
        Value::Undefined => "undefined".into(),
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => number_to_string(*n),
        Value::String(s) => s.clone(),
        Value::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
        Value::Array(a) => a
            .iter()
            .map(|x| match x {
                Value::Undefined | Value::Null => String::new(),
                other => js_to_string(other),
            })
            .collect::<Vec<_>>()
            .join(","),
        Value::Object(_) => "[object Object]".into(),
        Value::Date(_) => "Invalid Date".into(),
    }
}

/// `Number.prototype.toString()` (shortest round-trip form, JS exponent rules).
pub fn number_to_string(n: f64) -> String {
    if n.is_nan() {
        return "NaN".into();
    }
    if n.is_infinite() {
        return if n > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    let mut buf = ryu_js::Buffer::new();
    buf.format(n).to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(v: &Value) -> String {
        hex::encode(encode(v))
    }

    #[test]
    fn integers_follow_msgpackr_boundaries() {
        let cases: &[(f64, &str)] = &[
            (0.0, "00"),
            (-0.0, "00"),
            (63.0, "3f"),
            (64.0, "cc40"),
            (127.0, "cc7f"),
            (255.0, "ccff"),
            (256.0, "cd0100"),
            (65535.0, "cdffff"),
            (65536.0, "ce00010000"),
            (4294967295.0, "ceffffffff"),
            (4294967296.0, "cb41f0000000000000"),
            (-1.0, "ff"),
            (-32.0, "e0"),
            (-33.0, "d0df"),
            (-128.0, "d080"),
            (-129.0, "d1ff7f"),
            (-32768.0, "d18000"),
            (-32769.0, "d2ffff7fff"),
            (-2147483648.0, "d280000000"),
            (-2147483649.0, "cbc1e0000000200000"),
            (1.5, "cb3ff8000000000000"),
            (f64::NAN, "cb7ff8000000000000"),
        ];
        for (n, want) in cases {
            assert_eq!(hex(&Value::Number(*n)), *want, "encoding {n}");
        }
    }

    #[test]
    fn objects_are_always_map16() {
        assert_eq!(hex(&Value::Object(Object::new())), "de0000");
        let o = Object::new().with("a", 1).with("b", Value::Undefined);
        assert_eq!(hex(&Value::Object(o)), "de0002a16101a162d40000");
    }

    #[test]
    fn strings_take_the_smallest_header_for_their_utf8_length() {
        assert_eq!(hex(&Value::from("")), "a0");
        assert_eq!(&hex(&Value::from("é".repeat(16)))[..4], "d920");
        assert_eq!(&hex(&Value::from("x".repeat(256)))[..6], "da0100");
        assert_eq!(&hex(&Value::from("x".repeat(65536)))[..10], "db00010000");
    }

    #[test]
    fn round_trip_keeps_every_kind() {
        let v = Value::Array(vec![
            Value::Undefined,
            Value::Null,
            Value::Bool(true),
            Value::Number(-7.25),
            Value::from("中文"),
            Value::Bytes(vec![0; 300]),
            Value::Date(1_700_000_000_123.0),
            Value::Date(-5.0),
            Value::Date(0.0),
            Value::Object(Object::new().with("k", vec![Value::Null])),
        ]);
        assert_eq!(decode(&encode(&v)), Ok(v));
    }

    #[test]
    fn decoder_accepts_other_writers_forms() {
        // fixmap {"a": float32 1.5}, uint64 2^53, int64 -1
        assert_eq!(
            decode(&hex::decode("81a161ca3fc00000").unwrap_or_default()),
            Ok(Value::Object(Object::new().with("a", 1.5)))
        );
        assert_eq!(
            decode(&hex::decode("cf0020000000000000").unwrap_or_default()),
            Ok(Value::Number(9007199254740992.0))
        );
        assert_eq!(
            decode(&hex::decode("d3ffffffffffffffff").unwrap_or_default()),
            Ok(Value::Number(-1.0))
        );
        // numeric map keys become JS property names
        assert_eq!(
            decode(
                &hex::decode("82 01 c3 cb3ff8000000000000 c2".replace(' ', "")).unwrap_or_default()
            ),
            Ok(Value::Object(
                Object::new().with("1", true).with("1.5", false)
            ))
        );
    }

    #[test]
    fn malformed_input_is_a_typed_error() {
        assert_eq!(
            decode(&[0xda, 0x00, 0x05, b'a']),
            Err(CodecError::Truncated {
                offset: 3,
                needed: 4
            })
        );
        assert_eq!(
            decode(&[0xc1]),
            Err(CodecError::InvalidType {
                offset: 0,
                byte: 0xc1
            })
        );
        assert_eq!(
            decode(&[0xc0, 0xc0]),
            Err(CodecError::TrailingBytes {
                offset: 1,
                remaining: 1
            })
        );
        assert_eq!(
            decode(&[0xd4, 0x73, 0x00]),
            Err(CodecError::UnsupportedExtension {
                offset: 0,
                ext_type: 0x73
            })
        );
        // an array claiming 4 billion items in 5 bytes fails fast, without a huge allocation
        assert!(matches!(
            decode(&[0xdd, 0xff, 0xff, 0xff, 0xff]),
            Err(CodecError::Truncated { .. })
        ));
        let deep = vec![0x91u8; MAX_DEPTH + 1];
        assert!(matches!(decode(&deep), Err(CodecError::TooDeep { .. })));
    }
}
