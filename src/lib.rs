//! # vitra
//!
//! Cooperative databases run by smart contracts ("Execution Transparency"), compatible with
//! JS Vitra 0.1.3 and the JavaScript Hypercore ecosystem.
//!
//! A database is a set of signed append-only logs: participants append operations to their
//! own *oplogs*; one *executor* runs a JavaScript contract over those operations and
//! publishes the results to an *index log* (a Hyperbee B-tree); anyone can replay the logs
//! against the contract and catch an executor that cheats.
//!
//! The crate is layered in the order data flows:
//!
//! - [`codec`]: the JS value model, MessagePack as msgpackr 1.5.2 writes it, deep equality
//!   and `localeCompare` ordering.
//!
//! - [`net`]: secret stream (Noise), protomux channels and the Hypercore replication wire
//!   messages, compatible with JS `@hyperswarm/secret-stream`, `protomux` and Hypercore 10/11.
//!
//! ```
//! use vitra::codec::{decode, encode, Object, Value};
//!
//! let op = Value::Object(Object::new().with("op", "INCREMENT").with("amount", 1));
//! let bytes = encode(&op);
//! assert_eq!(hex::encode(&bytes), "de0002a26f70a9494e4352454d454e54a6616d6f756e7401");
//! assert_eq!(decode(&bytes)?, op);
//! # Ok::<(), vitra::codec::CodecError>(())
//! ```

pub mod codec;
pub mod net;
