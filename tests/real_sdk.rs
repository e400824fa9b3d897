//! Exports the real OpenTelemetry SDKs wrote (tests/fixtures/real-sdk, made by
//! bench/real-sdk/make.sh: the JS SDK's OTLP/HTTP JSON, the Python SDK's OTLP/HTTP protobuf in
//! the file exporter's frames, and the same Python bodies in protobuf's JSON mapping), each
//! with the truth about its 300 carts. cartscope's generator wrote none of it.

use crate::detect::compare_with_truth;
use crate::suggest::{agreement, same_stage, suggest};
use crate::util::*;

const KINDS: [(&str, &str); 3] = [
    ("js", "traces.jsonl.gz"),
    ("py-proto", "traces.binpb.gz"),
    ("py-json", "traces.jsonl.gz"),
];

#[test]
fn every_cart_matches_the_truth_from_each_sdk() {
    for (kind, file) in KINDS {
        let dir = fixture(&format!("real-sdk/{kind}"));
        compare_with_truth(&dir.join(file), &dir.join("truth.json"), "reference");
    }
}

#[test]
fn every_cart_matches_the_truth_after_ingest() {
    let tmp = tempfile::tempdir().unwrap();
    for (kind, file) in KINDS {
        let dir = fixture(&format!("real-sdk/{kind}"));
        let ds = tmp.path().join(kind);
        let o = cartscope(&[
            "ingest",
            "--strict",
            dir.join(file).to_str().unwrap(),
            "--out",
            ds.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{kind}: {}", stderr(&o));
        compare_with_truth(&ds, &dir.join("truth.json"), "reference");
    }
}

#[test]
fn the_suggested_model_fits_sdk_output() {
    let tmp = tempfile::tempdir().unwrap();
    for (kind, file) in KINDS {
        let dir = fixture(&format!("real-sdk/{kind}"));
        let data = dir.join(file);
        let (toml, err) = suggest(&data);
        assert!(!toml.contains("WEAK EVIDENCE"), "{kind}: {toml}\n{err}");
        let model = tmp.path().join(format!("{kind}.toml"));
        std::fs::write(&model, &toml).unwrap();
        let share = agreement(&data, &dir.join("truth.json"), &model, &same_stage);
        assert!(share >= 0.99, "{kind}: agreement {share}\n{toml}");
    }
}
