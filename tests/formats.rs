//! Every output format, snapshot-tested on the same result: text, numbers, nulls, a
//! timestamp, a list and a map. Snapshots live in tests/snapshots/; CI never writes new ones.

use crate::util::*;

const SQL: &str =
    "SELECT c.cart_id, c.first_seen, c.total_value, c.outcome, c.suspected_cause, c.signals,
       t.attributes AS checkout_attributes
FROM carts c LEFT JOIN traces t
  ON t.trace_id = c.last_trace_id AND t.operation_name = 'cart.begin_checkout'
WHERE c.cart_id IN ('cart-00000001', 'cart-00000019', 'cart-00000031')
ORDER BY c.cart_id";

fn query(format: &str) -> Vec<u8> {
    let data = concat!(env!("CARGO_MANIFEST_DIR"), "/sample-data/otlp");
    let o = cmd()
        .args(["query", "--data", data, "-f", format, "-e", SQL])
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "{format}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    o.stdout
}

fn text(format: &str) -> String {
    String::from_utf8(query(format)).unwrap()
}

#[test]
fn table() {
    insta::assert_snapshot!(text("table"));
}

#[test]
fn csv() {
    insta::assert_snapshot!(text("csv"));
}

#[test]
fn tsv() {
    insta::assert_snapshot!(text("tsv"));
}

#[test]
fn json() {
    let out = text("json");
    // Valid JSON, one object per row.
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 3);
    insta::assert_snapshot!(out);
}

#[test]
fn ndjson() {
    let out = text("ndjson");
    for l in out.lines() {
        serde_json::from_str::<serde_json::Value>(l).unwrap();
    }
    insta::assert_snapshot!(out);
}

#[test]
fn markdown() {
    insta::assert_snapshot!(text("markdown"));
}

#[test]
fn parquet() {
    // Binary: read it back and snapshot its schema and rows.
    let bytes = bytes::Bytes::from(query("parquet"));
    let reader =
        datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes)
            .unwrap()
            .build()
            .unwrap();
    let batches: Vec<_> = reader.map(|b| b.unwrap()).collect();
    let schema = batches[0].schema();
    let mut out = format!("{schema:#?}\n");
    out.push_str(
        &datafusion::arrow::util::pretty::pretty_format_batches(&batches)
            .unwrap()
            .to_string(),
    );
    insta::assert_snapshot!(out);
}

/// Batches read back from an Arrow IPC stream by arrow's own reader.
fn arrow_stream(bytes: Vec<u8>) -> Vec<datafusion::arrow::array::RecordBatch> {
    let reader =
        datafusion::arrow::ipc::reader::StreamReader::try_new(std::io::Cursor::new(bytes), None)
            .expect("an Arrow IPC stream");
    reader.map(|b| b.unwrap()).collect()
}

#[test]
fn arrow() {
    // Binary: read it back with arrow's IPC reader and snapshot its schema and rows; the
    // rows are those the Parquet output holds.
    let batches = arrow_stream(query("arrow"));
    let schema = batches[0].schema();
    let rows = datafusion::arrow::util::pretty::pretty_format_batches(&batches)
        .unwrap()
        .to_string();
    insta::assert_snapshot!(format!("{schema:#?}\n{rows}"));
    let parquet =
        datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
            bytes::Bytes::from(query("parquet")),
        )
        .unwrap()
        .build()
        .unwrap()
        .map(|b| b.unwrap())
        .collect::<Vec<_>>();
    assert_eq!(
        rows,
        datafusion::arrow::util::pretty::pretty_format_batches(&parquet)
            .unwrap()
            .to_string()
    );
}

/// A result of many batches streams as one Arrow stream: every cart of `detect`, the same
/// rows as its CSV, to stdout and to --output alike. Data: sample-data (3,000 carts).
#[test]
fn arrow_streams_every_batch() {
    let data = concat!(env!("CARGO_MANIFEST_DIR"), "/sample-data/otlp");
    let run = |format: &str| {
        let o = cmd()
            .args(["detect", "--data", data, "-f", format])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        o.stdout
    };
    let csv = String::from_utf8(run("csv")).unwrap();
    let batches = arrow_stream(run("arrow"));
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    assert_eq!(rows, csv.lines().count() - 1);
    assert_eq!(rows, 3000);
    let ids = |b: &datafusion::arrow::array::RecordBatch| {
        let c = b.column_by_name("cart_id").unwrap();
        datafusion::arrow::compute::cast(c, &datafusion::arrow::datatypes::DataType::Utf8).unwrap()
    };
    let first = ids(&batches[0]);
    let first = first
        .as_any()
        .downcast_ref::<datafusion::arrow::array::StringArray>()
        .unwrap();
    assert_eq!(
        first.value(0),
        csv.lines().nth(1).unwrap().split(',').next().unwrap()
    );

    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("out.arrow");
    let o = cmd()
        .args([
            "query", "--data", data, "-f", "arrow", "-e", SQL, "--output",
        ])
        .arg(&path)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(std::fs::read(&path).unwrap(), query("arrow"));
}

#[test]
fn output_file_is_written_whole() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("out.csv");
    let data = concat!(env!("CARGO_MANIFEST_DIR"), "/sample-data/otlp");
    let o = cmd()
        .args(["query", "--data", data, "-f", "csv", "-e", SQL, "--output"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(o.status.success());
    assert!(o.stdout.is_empty());
    assert_eq!(std::fs::read_to_string(&path).unwrap(), text("csv"));
    let leftovers: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().collect();
    assert_eq!(leftovers.len(), 1, "no temporary file is left behind");
}
