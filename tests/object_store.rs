//! Exports in object stores, read against real servers on loopback: an S3-compatible server
//! (moto's, from PyPI; `.ci/run` starts it and says where in `CARTSCOPE_TEST_S3_ENDPOINT`)
//! and Python's `http.server` for http(s):// URLs (started here). Never a mock of the client:
//! cartscope talks to them with the same object_store client it uses for AWS.
//! Data: sample-data's gzip export (generated) and the real OpenTelemetry JS SDK's export,
//! uploaded under the Collector S3 exporter's time-partitioned keys.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

use crate::util::*;

/// The S3 server's endpoint, or None outside CI when none was started (then the test says so
/// and checks nothing; under `CI=true` a missing server fails the test).
fn s3_endpoint() -> Option<String> {
    match std::env::var("CARTSCOPE_TEST_S3_ENDPOINT") {
        Ok(e) if !e.is_empty() => Some(e),
        _ => {
            assert!(
                std::env::var("CI").is_err(),
                "CI=true but no S3 server: .ci/run starts one and sets CARTSCOPE_TEST_S3_ENDPOINT"
            );
            eprintln!(
                "object_store: no S3 server (set CARTSCOPE_TEST_S3_ENDPOINT, as .ci/run does); not run"
            );
            None
        }
    }
}

/// cartscope with the S3 server's endpoint and test credentials in its environment.
fn s3_cartscope(endpoint: &str, args: &[&str]) -> Output {
    cmd()
        .args(args)
        .env("AWS_ENDPOINT_URL", endpoint)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        .env_remove("AWS_ALLOW_HTTP")
        .output()
        .expect("cartscope runs")
}

/// One plain HTTP/1.1 request to the server (creating a bucket and putting objects need no
/// client library: moto accepts them unsigned). Returns the status code.
fn http(endpoint: &str, method: &str, path: &str, body: &[u8]) -> u16 {
    let host = endpoint.trim_start_matches("http://").trim_end_matches('/');
    let mut s = TcpStream::connect(host).expect("the S3 server listens");
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .unwrap();
    s.write_all(body).unwrap();
    let mut reply = String::new();
    let _ = s.read_to_string(&mut reply);
    reply
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

fn put(endpoint: &str, bucket: &str, key: &str, file: &Path) {
    let body = std::fs::read(file).unwrap();
    let code = http(endpoint, "PUT", &format!("/{bucket}/{key}"), &body);
    assert_eq!(code, 200, "PUT {key}");
}

fn ok(o: &Output, what: &str) -> String {
    assert_eq!(o.status.code(), Some(0), "{what}: {}", stderr(o));
    stdout(o)
}

#[test]
fn an_export_in_an_s3_bucket_reads_as_the_same_files_on_disk() {
    let Some(endpoint) = s3_endpoint() else {
        return;
    };
    // A bucket of its own, so runs and tests do not see each other's objects.
    let bucket = format!("shop-{}", std::process::id());
    assert_eq!(http(&endpoint, "PUT", &format!("/{bucket}"), b""), 200);
    let gz = root("sample-data/otlp-gzip");
    // The Collector's S3 exporter's layout: time-partitioned prefixes, gzip objects.
    let part = "otlp/year=2026/month=11/day=20/hour=11/minute=05";
    for (key, file) in [
        (
            format!("{part}/traces_1234.json.gz"),
            gz.join("traces.jsonl.gz"),
        ),
        (
            format!("{part}/metrics_1234.json.gz"),
            gz.join("metrics.jsonl.gz"),
        ),
        (
            format!("{part}/logs_1234.json.gz"),
            gz.join("logs.jsonl.gz"),
        ),
        // Beside the data: documentation and a hidden object, passed over as on disk.
        ("otlp/README.md".to_string(), root("sample-data/README.md")),
        (format!("{part}/_SUCCESS"), root("sample-data/README.md")),
    ] {
        put(&endpoint, &bucket, &key, &file);
    }
    let local = gz.to_str().unwrap();
    let s3 = format!("s3://{bucket}/otlp/");
    let run = |args: &[&str]| ok(&s3_cartscope(&endpoint, args), &format!("{args:?}"));

    // The report over the bucket is the report over the files, byte for byte.
    let want = ok(
        &cartscope(&["report", "--data", local, "-f", "json"]),
        "local",
    );
    assert_eq!(run(&["report", "--data", &s3, "-f", "json"]), want);
    // One object named alone.
    let traces = format!("s3://{bucket}/{part}/traces_1234.json.gz");
    let want = ok(
        &cartscope(&[
            "detect",
            "--data",
            gz.join("traces.jsonl.gz").to_str().unwrap(),
            "-f",
            "csv",
        ]),
        "local traces",
    );
    assert_eq!(run(&["detect", "--data", &traces, "-f", "csv"]), want);

    // Ingested from the bucket into a local dataset: the same tables.
    let tmp = tempfile::tempdir().unwrap();
    let ds = tmp.path().join("ds");
    run(&["ingest", &s3, "--out", ds.to_str().unwrap()]);
    let sql =
        "SELECT (SELECT count(*) FROM observed_traces) AS spans, (SELECT count(*) FROM observed_metrics) AS points, \
               (SELECT count(*) FROM logs) AS logs";
    let from_ds = ok(
        &cartscope(&[
            "query",
            "--data",
            ds.to_str().unwrap(),
            "-f",
            "csv",
            "-e",
            sql,
        ]),
        "dataset",
    );
    assert_eq!(from_ds, "spans,points,logs\n17846,6637,1404\n");

    // Real SDK output too: the JS SDK's export (OTLP/HTTP JSON bodies, gzip).
    let js = fixture("real-sdk/js/traces.jsonl.gz");
    put(&endpoint, &bucket, "js/traces.jsonl.gz", &js);
    let want = ok(
        &cartscope(&["detect", "--data", js.to_str().unwrap(), "-f", "csv"]),
        "js local",
    );
    let js_s3 = format!("s3://{bucket}/js/");
    assert_eq!(run(&["detect", "--data", &js_s3, "-f", "csv"]), want);

    // What cannot be read says what and where.
    let o = s3_cartscope(
        &endpoint,
        &["detect", "--data", &format!("s3://{bucket}/none/")],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains(&format!("no object found at 's3://{bucket}/none/'")),
        "{}",
        stderr(&o)
    );
    // A dataset in a bucket is refused with what to do instead.
    put(
        &endpoint,
        &bucket,
        "ds/_cartscope.json",
        &root("sample-data/parquet/_cartscope.json"),
    );
    let o = s3_cartscope(
        &endpoint,
        &["detect", "--data", &format!("s3://{bucket}/ds/")],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("is a dataset written by `cartscope ingest`"),
        "{}",
        stderr(&o)
    );
}

/// Python's http.server on a free loopback port, serving `dir`; stopped when dropped.
struct HttpServer {
    child: Child,
    url: String,
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn http_server(dir: &Path) -> HttpServer {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new("python3")
        .args([
            "-m",
            "http.server",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
        ])
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("python3 runs (http.server)");
    let server = HttpServer {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    for _ in 0..100 {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return server;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("http.server did not start on port {port}");
}

#[test]
fn an_export_over_http_is_streamed_from_its_url() {
    let dir = fixture("real-sdk");
    let server = http_server(&dir);
    for f in ["js/traces.jsonl.gz", "py-proto/traces.binpb.gz"] {
        let local = dir.join(f);
        let want = ok(
            &cartscope(&["detect", "--data", local.to_str().unwrap(), "-f", "csv"]),
            f,
        );
        assert!(want.lines().count() > 100, "{f}");
        let url = format!("{}/{f}", server.url);
        assert_eq!(
            ok(&cartscope(&["detect", "--data", &url, "-f", "csv"]), &url),
            want,
            "{url}"
        );
    }
    // A missing file: an error naming the URL, exit code 2.
    let url = format!("{}/js/none.jsonl", server.url);
    let o = cartscope(&["detect", "--data", &url]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains(&format!("cannot read '{url}'")),
        "{}",
        stderr(&o)
    );
}
