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

/// `cart_events` carries each span's status message, as the SDK wrote it, and
/// `error_before_abandonment` reports the failed span's message from there. The SDKs' files
/// have failed payments with three messages (11 spans, each in a cart).
#[test]
fn cart_events_carry_the_sdks_status_messages() {
    let sql = "SELECT count(*) AS events, count(e.status_message) AS with_message, \
               count(DISTINCT e.status_message) AS messages, \
               sum(CASE WHEN e.status_message IS DISTINCT FROM t.status_message THEN 1 ELSE 0 END) \
                   AS differ \
               FROM cart_events e JOIN observed_traces t \
                   ON t.trace_id = e.trace_id AND t.span_id = e.span_id";
    for (kind, file) in KINDS {
        let data = fixture(&format!("real-sdk/{kind}")).join(file);
        let data = data.to_str().unwrap();
        let o = cartscope(&["query", "--data", data, "-f", "csv", "-e", sql]);
        assert!(o.status.success(), "{kind}: {}", stderr(&o));
        let out = stdout(&o);
        let row: Vec<&str> = out.lines().nth(1).unwrap().split(',').collect();
        assert!(row[0].parse::<u64>().unwrap() > 1000, "{kind}: {out}");
        assert_eq!(row[1..], ["11", "3", "0"], "{kind}: {out}");

        let o = cartscope(&[
            "query",
            "error_before_abandonment",
            "--data",
            data,
            "-f",
            "ndjson",
        ]);
        assert!(o.status.success(), "{kind}: {}", stderr(&o));
        let rows: Vec<serde_json::Value> = stdout(&o)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert!(!rows.is_empty(), "{kind}");
        for r in &rows {
            let m = r["status_message"]
                .as_str()
                .unwrap_or_else(|| panic!("{kind}: {r}"));
            assert!(
                [
                    "insufficient funds",
                    "payment gateway timed out after 5s",
                    "card declined by issuer"
                ]
                .contains(&m),
                "{kind}: {r}"
            );
        }
    }
}

/// `detect` without `--out` or `--emit-otlp` counts the derived rows without building them
/// (`replay::Reads::Carts`): on each SDK's export its carts and its summary are those of a
/// replay that writes everything, and the derived rows `--emit-otlp` writes are as many as
/// that summary counts.
#[test]
fn detect_counts_the_derived_rows_it_does_not_build() {
    let tmp = tempfile::tempdir().unwrap();
    let summary = |o: &std::process::Output| -> String {
        let text = format!("{}{}", stdout(o), stderr(o));
        text.lines()
            .filter(|l| l.contains("as of ") || l.starts_with("derived rows added"))
            .map(|l| l.trim_start_matches("cartscope: ").to_string())
            .collect::<Vec<_>>()
            .join("\n")
    };
    for (kind, file) in KINDS {
        let data = fixture(&format!("real-sdk/{kind}")).join(file);
        let data = data.to_str().unwrap();
        let out = tmp.path().join(kind);
        let otlp = tmp.path().join(format!("{kind}.jsonl"));
        let counted = cartscope(&["detect", "--data", data, "-f", "csv"]);
        let written = cartscope(&[
            "detect",
            "--data",
            data,
            "-f",
            "csv",
            "--out",
            out.to_str().unwrap(),
        ]);
        assert!(
            counted.status.success() && written.status.success(),
            "{kind}: {}",
            stderr(&counted)
        );
        assert_eq!(
            stdout(&counted),
            stdout(&written),
            "{kind}: the carts differ"
        );
        assert_eq!(summary(&counted), summary(&written), "{kind}");
        assert!(stdout(&counted).lines().count() > 300, "{kind}");

        let table = cartscope(&["detect", "--data", data]);
        let emitted = cartscope(&[
            "detect",
            "--data",
            data,
            "--emit-otlp",
            otlp.to_str().unwrap(),
        ]);
        assert!(
            table.status.success() && emitted.status.success(),
            "{kind}: {}",
            stderr(&emitted)
        );
        let said = summary(&table);
        assert_eq!(said, summary(&emitted), "{kind}");
        // "derived rows added: N cart.abandonment.detected spans, M metric points (...)"
        let line = said
            .lines()
            .find(|l| l.starts_with("derived rows added"))
            .unwrap();
        let n: Vec<&str> = line
            .split(|c: char| !c.is_ascii_digit())
            .filter(|w| !w.is_empty())
            .collect();
        assert!(n[0].parse::<u64>().unwrap() > 0, "{kind}: {line}");
        for (table, want) in [("observed_traces", n[0]), ("observed_metrics", n[1])] {
            let o = cartscope(&[
                "query",
                "--no-replay",
                "--data",
                otlp.to_str().unwrap(),
                "-f",
                "csv",
                "-e",
                &format!("SELECT count(*) AS n FROM {table}"),
            ]);
            assert!(o.status.success(), "{kind}: {}", stderr(&o));
            assert_eq!(
                stdout(&o).lines().nth(1),
                Some(want),
                "{kind} {table}: {line}"
            );
        }
    }
}
