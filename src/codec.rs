//! The JavaScript value model and its encodings: what every other layer stores and compares.
//!
//! - [`value`]: [`Value`] and [`Object`], JS values with JS property order.
//! - [`msgpack`]: MessagePack exactly as npm `msgpackr` 1.5.2 `pack()` writes it, and a
//!   decoder for any MessagePack plus msgpackr's extensions.
//! - [`equal`]: lodash `isEqual` deep equality (what the monitor compares with).
//! - [`collate`]: `String.prototype.localeCompare` ordering (how change lists are sorted).
//! - [`json`]: JSON conversions with a documented convention for bytes and `undefined`.
//!
//! This layer never touches disk or network and never panics on input: malformed bytes give
//! a [`CodecError`].

pub mod collate;
pub mod equal;
pub mod json;
pub mod msgpack;
pub mod value;

pub use collate::{locale_compare, sort_by_locale};
pub use equal::deep_equal;
pub use json::{from_json, to_json};
pub use msgpack::{decode, encode, encode_into, CodecError};
pub use value::{Object, Value};
