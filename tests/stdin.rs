//! `-` as an input: standard input, plain or compressed, JSON lines or protobuf, read as it
//! comes. Data: the real OpenTelemetry JS and Python SDKs' exports (tests/fixtures/real-sdk)
//! and sample-data.

use std::io::Read;
use std::path::Path;
use std::process::Output;

use crate::util::*;

fn gunzip(path: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(std::fs::File::open(path).unwrap())
        .read_to_end(&mut out)
        .unwrap();
    out
}

fn ok(o: &Output, what: &str) -> String {
    assert_eq!(o.status.code(), Some(0), "{what}: {}", stderr(o));
    stdout(o)
}

#[test]
fn an_export_on_stdin_gives_the_files_carts_compressed_or_not() {
    for fixture in [
        "real-sdk/js/traces.jsonl.gz",
        "real-sdk/py-json/traces.jsonl.gz",
        "real-sdk/py-proto/traces.binpb.gz",
    ] {
        let path = crate::util::fixture(fixture);
        let file = path.to_str().unwrap();
        let want = ok(
            &cartscope(&["detect", "--data", file, "-f", "csv"]),
            fixture,
        );
        assert!(want.lines().count() > 100, "{fixture}: {want}");
        let gz = std::fs::read(&path).unwrap();
        let plain = gunzip(&path);
        let zstd = zstd::encode_all(&plain[..], 3).unwrap();
        for (how, bytes) in [("gzip", &gz), ("plain", &plain), ("zstd", &zstd)] {
            let got = ok(
                &piped(&["detect", "--data", "-", "-f", "csv"], bytes),
                &format!("{fixture} {how}"),
            );
            assert_eq!(got, want, "{fixture} on stdin, {how}");
        }
    }
}

/// Beside files and datasets, stdin is one more input: sample-data's traces piped, its
/// metrics and logs named.
#[test]
fn stdin_mixes_with_files_and_reports_bad_lines_by_its_name() {
    let dir = crate::util::root("sample-data/otlp");
    let metrics = dir.join("metrics.jsonl");
    let logs = dir.join("logs.jsonl");
    let traces = std::fs::read(dir.join("traces.jsonl")).unwrap();
    let want = ok(
        &cartscope(&["report", "-f", "json", "--data", dir.to_str().unwrap()]),
        "files",
    );
    let got = ok(
        &piped(
            &[
                "report",
                "-f",
                "json",
                "--data",
                "-",
                metrics.to_str().unwrap(),
                logs.to_str().unwrap(),
            ],
            &traces,
        ),
        "stdin and files",
    );
    assert_eq!(got, want);

    // A bad line on stdin is skipped and reported as standard input's.
    let mut bad = b"{\"resourceSpans\": [oops\n".to_vec();
    bad.extend_from_slice(&traces);
    let o = piped(&["detect", "--data", "-", "-f", "csv"], &bad);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("skipped: -:1: invalid JSON"),
        "{}",
        stderr(&o)
    );
    assert_eq!(stdout(&o).lines().count(), 3001);
}

#[test]
fn ingest_reads_stdin_once_and_knows_it_again() {
    let tmp = tempfile::tempdir().unwrap();
    let ds = tmp.path().join("ds");
    let path = crate::util::fixture("real-sdk/js/traces.jsonl.gz");
    let gz = std::fs::read(&path).unwrap();
    let o = piped(&["ingest", "-", "--out", ds.to_str().unwrap()], &gz);
    ok(&o, "ingest -");
    let funnel = |data: &Path, what: &str| {
        let data = data.to_str().unwrap();
        ok(
            &cartscope(&["query", "funnel", "-f", "csv", "--data", data]),
            what,
        )
    };
    let from_file = funnel(&path, "funnel over the file");
    assert_eq!(funnel(&ds, "funnel over the dataset"), from_file);
    // The same bytes again: known by their hash, not ingested twice.
    let o = piped(&["ingest", "-", "--out", ds.to_str().unwrap()], &gz);
    ok(&o, "ingest - again");
    let again = funnel(&ds, "funnel after the second ingest");
    assert_eq!(again, from_file);
}

#[test]
fn what_stdin_cannot_be_is_said() {
    let data = crate::util::root("sample-data/otlp/traces.jsonl");
    let traces = std::fs::read(&data).unwrap();
    // Twice.
    let o = piped(&["detect", "--data", "-", "-"], &traces);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("given twice"), "{}", stderr(&o));
    // The shell's statements come from stdin.
    let o = piped(&["shell", "--data", "-"], b"SELECT 1;\n");
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("statements from standard input"),
        "{}",
        stderr(&o)
    );
    // Parquet needs its footer first: skipped and said so, like any input that cannot be
    // read (exit code 2 under --strict).
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("carts");
    ok(
        &cartscope(&[
            "detect",
            "--data",
            data.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ]),
        "detect --out",
    );
    let parquet = std::fs::read(out.join("carts.parquet")).unwrap();
    let o = piped(&["tables", "--data", "-"], &parquet);
    assert!(
        stderr(&o).contains("standard input holds Parquet"),
        "{}",
        stderr(&o)
    );
    let o = piped(&["tables", "--data", "-", "--strict"], &parquet);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("save it to a file"), "{}", stderr(&o));
    // Nothing on stdin: an empty input, said so, as for an empty file.
    let o = piped(&["detect", "--data", "-", "-f", "csv"], b"");
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("passed over '-': empty"),
        "{}",
        stderr(&o)
    );
}
