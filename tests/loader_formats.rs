//! Binary inputs through the real detection path (`--data FILE`): the file exporter's framed
//! protobuf (plain and zstd frames) and the ClickHouse exporter's Parquet.

use crate::util::*;

#[tokio::test]
async fn framed_protobuf_loads_plain_and_zstd_frames_alike() {
    for f in [
        "proto/traces-framed.binpb",
        "proto/traces-framed-zstd.binpb",
    ] {
        let (ctx, stats) = load(&[fixture(f)]).await;
        assert_eq!(stats.rows.into_array(), [4, 0, 0, 1, 0, 0], "{f}");
        assert_eq!(stats.bad_total, 0, "{f}");
        assert_eq!(
            rows(
                &ctx,
                "SELECT attributes['cart.id'], duration_ms FROM traces
                 WHERE operation_name = 'shipping.calculate_rates' AND duration_ms > 2000 ORDER BY trace_id"
            )
            .await,
            vec![vec!["cart-42", "2500.0"], vec!["cart-42", "2500.0"]],
            "{f}"
        );
        assert_eq!(
            rows(&ctx, "SELECT name, metric_type, int_value, attributes['cart.stage'], aggregation_temporality FROM metrics").await,
            vec![vec!["cart.state.transitions", "sum", "3", "abandoned", "cumulative"]],
            "{f}"
        );
    }
}

#[tokio::test]
async fn clickhouse_parquet_maps_onto_the_canonical_tables() {
    let (ctx, stats) = load(&[fixture("parquet/clickhouse-traces.parquet")]).await;
    assert_eq!(stats.rows.into_array(), [2, 2, 1, 0, 0, 0]);
    let r = rows(
        &ctx,
        "SELECT span_kind, status_code, duration_ms, trace_id = lower(trace_id) FROM traces ORDER BY duration_ms",
    )
    .await;
    assert_eq!(
        r,
        vec![
            vec!["server", "error", "1.2", "true"],
            vec!["client", "error", "2500.0", "true"]
        ]
    );
    assert_eq!(
        rows(&ctx, "SELECT name FROM span_events ORDER BY timestamp").await,
        vec![vec!["exception"], vec!["retry"]]
    );
}
