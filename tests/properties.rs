//! Properties over generated exports (proptest, shrinking to the smallest failing export):
//! ingesting into Parquet and reading back gives the same rows as reading the JSON; the
//! replay gives the same carts from OTLP/JSON, OTLP protobuf (framed) and the Parquet dataset.
//! The exports are built here span by span, not by cartscope's generator.

use std::path::Path;

use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{
    status, ResourceSpans, ScopeSpans, Span, Status, TracesData,
};
use proptest::prelude::*;
use prost::Message;

use crate::util::*;

const STEPS: [&str; 6] = [
    "cart.add_item",
    "cart.begin_checkout",
    "shipping.calculate_rates",
    "payment.authorize",
    "checkout.complete",
    "GET /product",
];

/// One generated span.
#[derive(Debug, Clone)]
struct Sp {
    cart: u8,
    step: usize,
    trace: u8,
    at_s: u32,
    ms: u32,
    error: bool,
    service: u8,
    /// Extra attribute values: any text, numbers in text.
    note: String,
    value: f64,
}

fn sp() -> impl Strategy<Value = Sp> {
    (
        0u8..6,
        0usize..STEPS.len(),
        0u8..12,
        0u32..7200,
        0u32..6000,
        any::<bool>(),
        0u8..3,
        "\\PC{0,12}",
        0.0f64..10_000.0,
    )
        .prop_map(
            |(cart, step, trace, at_s, ms, error, service, note, value)| Sp {
                cart,
                step,
                trace,
                at_s,
                ms,
                error,
                service,
                note,
                value: (value * 100.0).round() / 100.0,
            },
        )
}

const BASE_NS: u64 = 1_795_000_000_000_000_000;

fn ids(s: &Sp, i: usize) -> ([u8; 16], [u8; 8]) {
    let mut t = [0u8; 16];
    t[0] = 1 + s.cart;
    t[15] = s.trace;
    let mut id = [0u8; 8];
    id[..8].copy_from_slice(&(i as u64 + 1).to_be_bytes());
    (t, id)
}

fn attrs(s: &Sp) -> Vec<(String, String)> {
    let mut a = vec![("note".to_string(), s.note.clone())];
    if s.step < 5 {
        a.push(("cart.id".into(), format!("cart-{}", s.cart)));
        a.push(("cart.total_value".into(), format!("{}", s.value)));
    }
    a
}

/// The export as OTLP/JSON lines, one line per service.
fn json_lines(spans: &[Sp]) -> String {
    let mut out = String::new();
    for service in 0..3u8 {
        let list: Vec<serde_json::Value> = spans
            .iter()
            .enumerate()
            .filter(|(_, s)| s.service == service)
            .map(|(i, s)| {
                let (t, id) = ids(s, i);
                let start = BASE_NS + u64::from(s.at_s) * 1_000_000_000;
                serde_json::json!({
                    "traceId": const_hex::encode(t),
                    "spanId": const_hex::encode(id),
                    "name": STEPS[s.step],
                    "kind": 2,
                    "startTimeUnixNano": start.to_string(),
                    "endTimeUnixNano": (start + u64::from(s.ms) * 1_000_000).to_string(),
                    "attributes": attrs(s).iter().map(|(k, v)| serde_json::json!({"key": k, "value": {"stringValue": v}})).collect::<Vec<_>>(),
                    "status": if s.error { serde_json::json!({"code": 2, "message": "failed"}) } else { serde_json::json!({}) },
                })
            })
            .collect();
        if list.is_empty() {
            continue;
        }
        let doc = serde_json::json!({"resourceSpans": [{
            "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": format!("svc-{service}")}}]},
            "scopeSpans": [{"scope": {"name": "prop"}, "spans": list}],
        }]});
        out.push_str(&doc.to_string());
        out.push('\n');
    }
    out
}

/// The same export as OTLP protobuf `TracesData` messages in the file exporter's frames.
fn framed_proto(spans: &[Sp]) -> Vec<u8> {
    let kv = |k: &str, v: &str| KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(v.into())),
        }),
        ..Default::default()
    };
    let mut out = Vec::new();
    for service in 0..3u8 {
        let list: Vec<Span> = spans
            .iter()
            .enumerate()
            .filter(|(_, s)| s.service == service)
            .map(|(i, s)| {
                let (t, id) = ids(s, i);
                let start = BASE_NS + u64::from(s.at_s) * 1_000_000_000;
                Span {
                    trace_id: t.to_vec(),
                    span_id: id.to_vec(),
                    name: STEPS[s.step].into(),
                    kind: 2,
                    start_time_unix_nano: start,
                    end_time_unix_nano: start + u64::from(s.ms) * 1_000_000,
                    attributes: attrs(s).iter().map(|(k, v)| kv(k, v)).collect(),
                    status: Some(if s.error {
                        Status {
                            code: status::StatusCode::Error as i32,
                            message: "failed".into(),
                        }
                    } else {
                        Status::default()
                    }),
                    ..Default::default()
                }
            })
            .collect();
        if list.is_empty() {
            continue;
        }
        let msg = TracesData {
            resource_spans: vec![ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![kv("service.name", &format!("svc-{service}"))],
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    scope: Some(InstrumentationScope {
                        name: "prop".into(),
                        ..Default::default()
                    }),
                    spans: list,
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
        .encode_to_vec();
        out.extend_from_slice(&(msg.len() as u32).to_be_bytes());
        out.extend_from_slice(&msg);
    }
    out
}

/// Every row of a query, each cell as text.
fn all_rows(data: &Path, sql: &str) -> Vec<Vec<String>> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (ctx, _) = load(&[data.to_path_buf()]).await;
        rows(&ctx, sql).await
    })
}

/// The carts the replay finds, as of a fixed time.
fn carts(data: &Path) -> Vec<Vec<String>> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (ctx, _) = load(&[data.to_path_buf()]).await;
        let opts = cartscope::ReplayOptions {
            as_of: cartscope::Timestamp::from_ns((BASE_NS + 3 * 3600 * 1_000_000_000) as i64),
            threshold: None,
            ..Default::default()
        };
        cartscope::replay(&ctx, &cartscope::Model::load("reference").unwrap(), &opts)
            .await
            .unwrap();
        rows(&ctx, "SELECT * FROM carts ORDER BY cart_id").await
    })
}

const SPANS: &str = "SELECT trace_id, span_id, parent_span_id, operation_name, service_name, span_kind, \
    start_time, end_time, duration_ms, status_code, status_message, attributes, resource_attributes, \
    scope_name FROM traces ORDER BY trace_id, span_id";

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    #[test]
    fn ingest_and_read_back_gives_the_same_rows(spans in prop::collection::vec(sp(), 1..40)) {
        let tmp = tempfile::tempdir().unwrap();
        let json = tmp.path().join("t.jsonl");
        std::fs::write(&json, json_lines(&spans)).unwrap();
        let ds = tmp.path().join("ds");
        let o = cartscope(&["ingest", json.to_str().unwrap(), "--out", ds.to_str().unwrap()]);
        prop_assert!(o.status.success(), "{}", stderr(&o));
        prop_assert_eq!(all_rows(&json, SPANS), all_rows(&ds, SPANS));
    }

    #[test]
    fn the_replay_finds_the_same_carts_in_json_protobuf_and_parquet(spans in prop::collection::vec(sp(), 1..40)) {
        let tmp = tempfile::tempdir().unwrap();
        let json = tmp.path().join("t.jsonl");
        std::fs::write(&json, json_lines(&spans)).unwrap();
        let proto = tmp.path().join("t.binpb");
        std::fs::write(&proto, framed_proto(&spans)).unwrap();
        let ds = tmp.path().join("ds");
        let o = cartscope(&["ingest", json.to_str().unwrap(), "--out", ds.to_str().unwrap()]);
        prop_assert!(o.status.success(), "{}", stderr(&o));
        let from_json = carts(&json);
        prop_assert_eq!(&from_json, &carts(&proto));
        prop_assert_eq!(&from_json, &carts(&ds));
        // And the spans themselves are the same from protobuf.
        prop_assert_eq!(all_rows(&json, SPANS), all_rows(&proto, SPANS));
    }
}
