//! Inclusion proofs and fraud proofs in JS Vitra's JSON.
//!
//! These are the documents users keep and hand to third parties: an operation's proof that a
//! log published it, and the evidence that an executor or a log cheated. The JSON shapes are
//! JS Vitra 0.1.3's (VITRA-FORMAT.md section 9), so proofs move between both implementations:
//!
//! - [`BlockInclusionProof`]: `{"vitraBlockInclusionProof": 1, logPubkey, blockSeq,
//!   rootHashAtBlock, rootHashSignature}`;
//! - [`LogForkFraudProof`]: a log truncated (its fork id rose) after it published a block;
//! - [`BlockRewriteFraudProof`]: two inclusion proofs of one log and length that disagree;
//! - [`ContractFraudProof`]: the executor broke the contract, with a failure `code`.
//!
//! This module only parses, checks the shape of, and prints these documents. Checking a
//! proof's signature against a log's key is the log layer's job; this module never trusts a
//! document it parsed until that check has run.

use serde_json::{json, Map, Value as Json};
use std::fmt;
use thiserror::Error;

/// A JSON document is not a well-formed proof.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ProofError {
    /// The document is not a JSON object, or not one of the known proof kinds.
    #[error("not a vitra proof document: {0}")]
    UnknownDocument(String),
    /// A field is missing or has the wrong type or size.
    #[error("invalid proof field `{field}`: {reason}")]
    InvalidField {
        /// The field's JSON name.
        field: &'static str,
        /// What was wrong with it.
        reason: String,
    },
}

/// A block of a log was published: the log's signed tree hash at length `block_seq + 1`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockInclusionProof {
    /// The log's public key.
    pub log_pubkey: [u8; 32],
    /// The block's index in the log.
    pub block_seq: u64,
    /// The Merkle tree hash of the log's roots at the proven length.
    pub root_hash_at_block: [u8; 32],
    /// The log key's Ed25519 signature over that tree hash and length.
    pub root_hash_signature: [u8; 64],
}

impl BlockInclusionProof {
    /// The JSON document, as JS Vitra's `toJSON()` writes it.
    pub fn to_json(&self) -> Json {
        json!({
            "vitraBlockInclusionProof": 1,
            "logPubkey": hex::encode(self.log_pubkey),
            "blockSeq": self.block_seq,
            "rootHashAtBlock": hex::encode(self.root_hash_at_block),
            "rootHashSignature": hex::encode(self.root_hash_signature),
        })
    }

    /// Parses and shape-checks a JSON document (JS Vitra's `fromJSON`, stricter on sizes).
    pub fn from_json(doc: &Json) -> Result<Self, ProofError> {
        let obj = object(doc)?;
        version(obj, "vitraBlockInclusionProof")?;
        Ok(BlockInclusionProof {
            log_pubkey: hex_field(obj, "logPubkey")?,
            block_seq: u64_field(obj, "blockSeq")?,
            root_hash_at_block: hex_field(obj, "rootHashAtBlock")?,
            root_hash_signature: hex_field(obj, "rootHashSignature")?,
        })
    }
}

/// A log's fork id rose (it was truncated) after it had published a block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogForkFraudProof {
    /// The log's public key.
    pub log_pubkey: [u8; 32],
    /// The fork id the log moved to.
    pub fork_number: u64,
    /// The block whose publication the fork contradicts.
    pub block_seq: u64,
    /// The tree hash signed at that block.
    pub root_hash_at_block: [u8; 32],
    /// The signature over that tree hash.
    pub root_hash_signature: [u8; 64],
}

impl LogForkFraudProof {
    /// The JSON document, as JS Vitra writes it.
    pub fn to_json(&self) -> Json {
        json!({
            "vitraLogForkFraudProof": 1,
            "logPubkey": hex::encode(self.log_pubkey),
            "forkNumber": self.fork_number,
            "blockSeq": self.block_seq,
            "rootHashAtBlock": hex::encode(self.root_hash_at_block),
            "rootHashSignature": hex::encode(self.root_hash_signature),
        })
    }

    /// Parses and shape-checks a JSON document.
    pub fn from_json(doc: &Json) -> Result<Self, ProofError> {
        let obj = object(doc)?;
        version(obj, "vitraLogForkFraudProof")?;
        Ok(LogForkFraudProof {
            log_pubkey: hex_field(obj, "logPubkey")?,
            fork_number: u64_field(obj, "forkNumber")?,
            block_seq: u64_field(obj, "blockSeq")?,
            root_hash_at_block: hex_field(obj, "rootHashAtBlock")?,
            root_hash_signature: hex_field(obj, "rootHashSignature")?,
        })
    }
}

/// Two inclusion proofs for the same log and block that disagree: the log rewrote history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockRewriteFraudProof {
    /// What was found.
    pub description: String,
    /// The proof that was presented.
    pub given_inclusion_proof: BlockInclusionProof,
    /// The conflicting proof the log produces now.
    pub violating_inclusion_proof: BlockInclusionProof,
}

impl BlockRewriteFraudProof {
    /// The JSON document, as JS Vitra writes it (`vitraBlockInclusionFraudProof`).
    pub fn to_json(&self) -> Json {
        json!({
            "vitraBlockInclusionFraudProof": 1,
            "description": self.description,
            "givenInclusionProof": self.given_inclusion_proof.to_json(),
            "violatingInclusionProof": self.violating_inclusion_proof.to_json(),
        })
    }

    /// Parses and shape-checks a JSON document.
    pub fn from_json(doc: &Json) -> Result<Self, ProofError> {
        let obj = object(doc)?;
        version(obj, "vitraBlockInclusionFraudProof")?;
        Ok(BlockRewriteFraudProof {
            description: obj
                .get("description")
                .and_then(Json::as_str)
                .unwrap_or_default()
                .to_owned(),
            given_inclusion_proof: BlockInclusionProof::from_json(field(
                obj,
                "givenInclusionProof",
            )?)?,
            violating_inclusion_proof: BlockInclusionProof::from_json(field(
                obj,
                "violatingInclusionProof",
            )?)?,
        })
    }
}

/// The failure codes of a contract fraud proof (VITRA-FORMAT.md section 8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FraudCode {
    /// An index entry sits at a path the protocol does not allow there.
    UnexpectedPathError,
    /// An index entry's value does not have the required shape.
    InvalidSchemaError,
    /// The genesis entries declare no participant oplog.
    NoGenesisInputsDeclaredError,
    /// An operation from an oplog that is not an active participant was processed.
    NonParticipantError,
    /// An oplog's operations were processed out of order (skipped or repeated).
    ProcessedOutOfOrderError,
    /// The replay of an operation failed but the executor reported success.
    MonitorApplyFailedError,
    /// The index holds a change the replay did not produce.
    ChangeNotProducedByMonitorError,
    /// The replay produced a change the index does not hold.
    ChangeNotProducedByExecutorError,
    /// A change's type, path or value differs from the replay's.
    ChangeMismatchError,
}

impl FraudCode {
    /// Every code, for parsing.
    pub const ALL: [FraudCode; 9] = [
        FraudCode::UnexpectedPathError,
        FraudCode::InvalidSchemaError,
        FraudCode::NoGenesisInputsDeclaredError,
        FraudCode::NonParticipantError,
        FraudCode::ProcessedOutOfOrderError,
        FraudCode::MonitorApplyFailedError,
        FraudCode::ChangeNotProducedByMonitorError,
        FraudCode::ChangeNotProducedByExecutorError,
        FraudCode::ChangeMismatchError,
    ];

    /// The code as JS Vitra spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            FraudCode::UnexpectedPathError => "UnexpectedPathError",
            FraudCode::InvalidSchemaError => "InvalidSchemaError",
            FraudCode::NoGenesisInputsDeclaredError => "NoGenesisInputsDeclaredError",
            FraudCode::NonParticipantError => "NonParticipantError",
            FraudCode::ProcessedOutOfOrderError => "ProcessedOutOfOrderError",
            FraudCode::MonitorApplyFailedError => "MonitorApplyFailedError",
            FraudCode::ChangeNotProducedByMonitorError => "ChangeNotProducedByMonitorError",
            FraudCode::ChangeNotProducedByExecutorError => "ChangeNotProducedByExecutorError",
            FraudCode::ChangeMismatchError => "ChangeMismatchError",
        }
    }

    /// Parses a code as JS Vitra spells it.
    pub fn parse(s: &str) -> Option<FraudCode> {
        FraudCode::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

impl fmt::Display for FraudCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the monitor found: a description, the entries involved, and the failure code.
#[derive(Debug, Clone, PartialEq)]
pub struct FraudDetails {
    /// A sentence, as JS Vitra words it.
    pub description: String,
    /// The evidence (`{"entry": ..., "expectedChange": ...}`), in vitra's JSON convention.
    pub data: Json,
    /// The failure code.
    pub code: FraudCode,
}

/// The executor broke the contract: the index state it is proven at, and what is wrong.
#[derive(Debug, Clone, PartialEq)]
pub struct ContractFraudProof {
    /// The signed head of the index log the violation was found in.
    pub index_state_proof: BlockInclusionProof,
    /// What the monitor found.
    pub details: FraudDetails,
}

impl ContractFraudProof {
    /// The JSON document, as JS Vitra writes it (no `data` key when there is no data, as
    /// `JSON.stringify` drops JS Vitra's `undefined`).
    pub fn to_json(&self) -> Json {
        let mut details = Map::new();
        details.insert("description".into(), json!(self.details.description));
        if !self.details.data.is_null() {
            details.insert("data".into(), self.details.data.clone());
        }
        details.insert("code".into(), json!(self.details.code.as_str()));
        json!({
            "vitraContractFraudProof": 1,
            "indexStateProof": self.index_state_proof.to_json(),
            "details": details,
        })
    }

    /// Parses and shape-checks a JSON document.
    pub fn from_json(doc: &Json) -> Result<Self, ProofError> {
        let obj = object(doc)?;
        version(obj, "vitraContractFraudProof")?;
        let details = field(obj, "details")?
            .as_object()
            .ok_or_else(|| invalid("details", "must be an object"))?;
        let description = details
            .get("description")
            .and_then(Json::as_str)
            .ok_or_else(|| invalid("details.description", "must be a string"))?;
        let code = details
            .get("code")
            .and_then(Json::as_str)
            .and_then(FraudCode::parse)
            .ok_or_else(|| invalid("details.code", "must be one of the known failure codes"))?;
        Ok(ContractFraudProof {
            index_state_proof: BlockInclusionProof::from_json(field(obj, "indexStateProof")?)?,
            details: FraudDetails {
                description: description.to_owned(),
                data: details.get("data").cloned().unwrap_or(Json::Null),
                code,
            },
        })
    }
}

/// Any fraud proof.
#[derive(Debug, Clone, PartialEq)]
pub enum FraudProof {
    /// A log was truncated after publishing.
    LogFork(LogForkFraudProof),
    /// A log published two histories.
    BlockRewrite(BlockRewriteFraudProof),
    /// The executor broke the contract.
    Contract(ContractFraudProof),
}

impl FraudProof {
    /// The JSON document.
    pub fn to_json(&self) -> Json {
        match self {
            FraudProof::LogFork(p) => p.to_json(),
            FraudProof::BlockRewrite(p) => p.to_json(),
            FraudProof::Contract(p) => p.to_json(),
        }
    }

    /// Parses any of the three fraud proof documents, by its marker field.
    pub fn from_json(doc: &Json) -> Result<Self, ProofError> {
        let obj = object(doc)?;
        if obj.contains_key("vitraLogForkFraudProof") {
            Ok(FraudProof::LogFork(LogForkFraudProof::from_json(doc)?))
        } else if obj.contains_key("vitraBlockInclusionFraudProof") {
            Ok(FraudProof::BlockRewrite(BlockRewriteFraudProof::from_json(
                doc,
            )?))
        } else if obj.contains_key("vitraContractFraudProof") {
            Ok(FraudProof::Contract(ContractFraudProof::from_json(doc)?))
        } else {
            Err(ProofError::UnknownDocument(
                "no vitraLogForkFraudProof, vitraBlockInclusionFraudProof or vitraContractFraudProof field".into(),
            ))
        }
    }

    /// A one-line summary for people.
    pub fn summary(&self) -> String {
        match self {
            FraudProof::LogFork(p) => format!(
                "log {} was truncated (fork {}) after publishing block {}",
                hex::encode(p.log_pubkey),
                p.fork_number,
                p.block_seq
            ),
            FraudProof::BlockRewrite(p) => format!(
                "log {} rewrote block {}: {}",
                hex::encode(p.given_inclusion_proof.log_pubkey),
                p.given_inclusion_proof.block_seq,
                p.description
            ),
            FraudProof::Contract(p) => {
                format!("{}: {}", p.details.code, p.details.description)
            }
        }
    }
}

fn invalid(field: &'static str, reason: &str) -> ProofError {
    ProofError::InvalidField {
        field,
        reason: reason.to_owned(),
    }
}

fn object(doc: &Json) -> Result<&Map<String, Json>, ProofError> {
    doc.as_object()
        .ok_or_else(|| ProofError::UnknownDocument("not a JSON object".into()))
}

fn field<'a>(obj: &'a Map<String, Json>, name: &'static str) -> Result<&'a Json, ProofError> {
    obj.get(name).ok_or_else(|| invalid(name, "missing"))
}

fn version(obj: &Map<String, Json>, marker: &'static str) -> Result<(), ProofError> {
    match obj.get(marker).and_then(Json::as_f64) {
        Some(v) if v >= 1.0 => Ok(()),
        _ => Err(invalid(marker, "must be a schema version number >= 1")),
    }
}

fn u64_field(obj: &Map<String, Json>, name: &'static str) -> Result<u64, ProofError> {
    field(obj, name)?
        .as_u64()
        .ok_or_else(|| invalid(name, "must be a non-negative integer"))
}

fn hex_field<const N: usize>(
    obj: &Map<String, Json>,
    name: &'static str,
) -> Result<[u8; N], ProofError> {
    let text = field(obj, name)?
        .as_str()
        .ok_or_else(|| invalid(name, "must be a hex string"))?;
    let bytes = hex::decode(text).map_err(|e| invalid(name, &format!("not hex: {e}")))?;
    bytes
        .try_into()
        .map_err(|b: Vec<u8>| invalid(name, &format!("must be {N} bytes, found {}", b.len())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_proof() -> BlockInclusionProof {
        BlockInclusionProof {
            log_pubkey: [1; 32],
            block_seq: 7,
            root_hash_at_block: [2; 32],
            root_hash_signature: [3; 64],
        }
    }

    #[test]
    fn js_vitra_violation_fraud_proof_parses_and_prints_back() {
        // The fraud proof JS Vitra 0.1.3 wrote for the `violation` fixture.
        let doc: Json = serde_json::from_str(r#"{"vitraContractFraudProof": 1, "indexStateProof": {"vitraBlockInclusionProof": 1, "logPubkey": "79c85d74e2abfde310302466476dca28483972998eac5dcbb9c7133f53a2abe7", "blockSeq": 11, "rootHashAtBlock": "484b71bc21278a8301f91fb2db28b2029c8549f7745025461a5b7fd9c8ca2d2b", "rootHashSignature": "cdcca8498edd1a42430db3f2031d2714ef532f910f461eab0fc50e3710a05fde5b337901ab7fc3852f77e7447261021b57ace82e0433871491dd1f597b41a90b"}, "details": {"description": "The executor produced a change which the monitor did not expect.", "data": {"entry": {"type": "put", "seq": 10, "path": "/counter", "name": "counter", "value": 1}}, "code": "ChangeNotProducedByMonitorError"}}"#).expect("json");
        let proof = FraudProof::from_json(&doc).expect("parses");
        match &proof {
            FraudProof::Contract(p) => {
                assert_eq!(p.details.code, FraudCode::ChangeNotProducedByMonitorError);
                assert_eq!(p.index_state_proof.block_seq, 11);
            }
            other => panic!("parsed as {other:?}"),
        }
        assert_eq!(proof.to_json(), doc);
    }

    #[test]
    fn every_kind_round_trips() {
        let proofs = [
            FraudProof::LogFork(LogForkFraudProof {
                log_pubkey: [9; 32],
                fork_number: 1,
                block_seq: 3,
                root_hash_at_block: [8; 32],
                root_hash_signature: [7; 64],
            }),
            FraudProof::BlockRewrite(BlockRewriteFraudProof {
                description: "Checksums do not match".into(),
                given_inclusion_proof: sample_proof(),
                violating_inclusion_proof: BlockInclusionProof {
                    root_hash_at_block: [4; 32],
                    ..sample_proof()
                },
            }),
        ];
        for p in proofs {
            assert_eq!(FraudProof::from_json(&p.to_json()), Ok(p));
        }
        let p = sample_proof();
        assert_eq!(BlockInclusionProof::from_json(&p.to_json()), Ok(p));
    }

    #[test]
    fn malformed_documents_name_the_bad_field() {
        let mut doc = sample_proof().to_json();
        doc["rootHashSignature"] = Json::String("abcd".into());
        assert!(matches!(
            BlockInclusionProof::from_json(&doc),
            Err(ProofError::InvalidField {
                field: "rootHashSignature",
                ..
            })
        ));
        doc["vitraBlockInclusionProof"] = Json::from(0);
        assert!(matches!(
            BlockInclusionProof::from_json(&doc),
            Err(ProofError::InvalidField {
                field: "vitraBlockInclusionProof",
                ..
            })
        ));
        assert!(matches!(
            FraudProof::from_json(&json!({"hello": 1})),
            Err(ProofError::UnknownDocument(_))
        ));
        assert!(matches!(
            FraudProof::from_json(&json!([1])),
            Err(ProofError::UnknownDocument(_))
        ));
    }
}
