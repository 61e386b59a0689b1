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
//! - [`compact`]: compact-encoding, the byte format of Hypercore's on-disk and wire structures.
//! - [`log`]: signed append-only logs (our Hypercore 10 core): JS Hypercore 10 storage format,
//!   BLAKE2b Merkle tree, Ed25519 heads, truncation and forks, proofs, signed-head history, and
//!   JS Vitra 0.1.3's pre-release cores.
//! - [`bee`]: the index B-tree, our own Hyperbee 1.x (byte-identical blocks to JS Hyperbee
//!   1.10.1): get, put/del, batch, peek/range, history (live), checkout, Vitra's shallow list.
//! - [`contract`]: the sandboxed contract runtime (QuickJS-NG): methods, `process`, `apply`
//!   and the `tx` changes, behind a [`contract::ContractHost`] that serves index reads.
//! - [`schema`]: the reserved `/.sys/` paths and the ack and participant values.
//! - [`executor`]: runs operations through the contract and writes acks and changes.
//! - [`monitor`]: replays operations against the contract and checks the executor's index.
//! - [`proof`]: inclusion proofs and fraud proofs in JS Vitra's JSON.
//! - [`database`]: the public API: create, load, call, execute, verify, replicate;
//!   [`database::SharedDatabase`] for many threads or tasks calling one database (their
//!   concurrent calls committed in groups) while it replicates with peers.
//! - [`net`]: secret stream (Noise), protomux channels and the Hypercore replication wire
//!   messages, compatible with JS `@hyperswarm/secret-stream`, `protomux` and Hypercore 10/11.
//! - [`cli`]: the `vitra` command: subcommands, REPL, host process (`vitra serve`).
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

pub mod bee;
pub mod cli;
pub mod codec;
pub mod compact;
pub mod contract;
pub mod database;
pub mod executor;
pub mod log;
pub mod monitor;
pub mod net;
pub mod proof;
pub mod schema;
