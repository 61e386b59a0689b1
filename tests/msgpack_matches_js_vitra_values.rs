//! Golden values from the `values-zoo` fixture, written by JS Vitra 0.1.3 itself: every value
//! must encode to the bytes msgpackr wrote there and decode back to the same value.

mod support;

use vitra::codec::{decode, encode, from_json};

#[test]
fn every_values_zoo_value_matches_js_vitra_bytes() {
    let path = support::fixtures_dir().join("js-vitra/values-zoo/manifest.json");
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).expect("values-zoo manifest")).expect("json");
    let blocks = manifest["valueBlocks"].as_array().expect("valueBlocks");
    assert!(blocks.len() >= 40, "the zoo has {} values", blocks.len());
    for b in blocks {
        let name = b["name"].as_str().unwrap_or("?");
        let input = from_json(&b["input"]);
        let want = b["hostMsgpackrPackHex"].as_str().expect("hex");
        assert_eq!(
            hex::encode(encode(&input)),
            want,
            "encoding zoo value {name}"
        );
        let bytes = hex::decode(want).expect("hex");
        assert_eq!(
            decode(&bytes).expect("decodes"),
            from_json(&b["decoded"]),
            "decoding {name}"
        );
        if let Some(stored) = b["valueHex"].as_str() {
            assert_eq!(
                stored, want,
                "the index block of {name} holds msgpackr's bytes"
            );
        }
    }
}
