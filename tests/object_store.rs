//! Exports in object stores, read against real servers on loopback: an S3-compatible server
//! (moto's, from PyPI; `.ci/run` starts it and says where in `CARTSCOPE_TEST_S3_ENDPOINT`)
//! and Python's `http.server` (with range requests: tests/range_server.py) for http(s):// URLs
//! (started here). Never a mock of the client: cartscope talks to them with the same
//! object_store client it uses for AWS.
//! Data: sample-data's gzip export (generated), the real OpenTelemetry JS SDK's export
//! (uploaded under the Collector S3 exporter's time-partitioned keys, and ingested into
//! datasets in a bucket and behind HTTP), the ClickHouse exporter's Parquet schema, and
//! hand-made hostile objects (a corrupt Parquet footer, objects that are not telemetry).

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

/// One plain HTTP/1.1 request to the server (creating a bucket, putting objects and listing
/// them need no client library: moto accepts them unsigned). Returns the status code.
fn http(endpoint: &str, method: &str, path: &str, body: &[u8]) -> u16 {
    request(endpoint, method, path, body).0
}

/// The keys below `prefix` in `bucket`, as the server lists them.
fn keys(endpoint: &str, bucket: &str, prefix: &str) -> Vec<String> {
    let (code, reply) = request(
        endpoint,
        "GET",
        &format!("/{bucket}?list-type=2&prefix={prefix}"),
        b"",
    );
    assert_eq!(code, 200, "list {prefix}: {reply}");
    reply
        .split("<Key>")
        .skip(1)
        .filter_map(|k| k.split_once("</Key>").map(|(k, _)| k.to_string()))
        .collect()
}

/// As `http`, with the reply (headers and body) as text.
fn request(endpoint: &str, method: &str, path: &str, body: &[u8]) -> (u16, String) {
    let host = endpoint.trim_start_matches("http://").trim_end_matches('/');
    let mut s = TcpStream::connect(host).expect("the S3 server listens");
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .unwrap();
    s.write_all(body).unwrap();
    let mut reply = Vec::new();
    let _ = s.read_to_end(&mut reply);
    let reply = String::from_utf8_lossy(&reply).into_owned();
    let code = reply
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (code, reply)
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
    let bucket = bucket(&endpoint, "shop");
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

    // Parquet given raw: read by ranges (footer, then the columns used) from the bucket, as
    // from disk. The ClickHouse exporter's otel_traces schema, and a hostile file whose
    // footer is corrupt, named by its URL.
    let ch = fixture("parquet/clickhouse-traces.parquet");
    put(&endpoint, &bucket, "pq/otel_traces.parquet", &ch);
    let want = ok(
        &cartscope(&["detect", "--data", ch.to_str().unwrap(), "-f", "csv"]),
        "clickhouse local",
    );
    let pq = format!("s3://{bucket}/pq/otel_traces.parquet");
    assert_eq!(run(&["detect", "--data", &pq, "-f", "csv"]), want);
    put(
        &endpoint,
        &bucket,
        "pq/corrupt.parquet",
        &fixture("hostile/corrupt-footer.parquet"),
    );
    let bad = format!("s3://{bucket}/pq/corrupt.parquet");
    let o = s3_cartscope(&endpoint, &["detect", "--data", &bad, "--strict"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains(&format!("{bad}: not a readable Parquet file")),
        "{}",
        stderr(&o)
    );

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
}

/// A bucket of its own for a test, so runs and tests do not see each other's objects.
fn bucket(endpoint: &str, name: &str) -> String {
    let bucket = format!("{name}-{}", std::process::id());
    assert_eq!(http(endpoint, "PUT", &format!("/{bucket}"), b""), 200);
    bucket
}

#[test]
fn a_dataset_is_ingested_into_a_bucket_and_read_from_it() {
    let Some(endpoint) = s3_endpoint() else {
        return;
    };
    let bucket = bucket(&endpoint, "datasets");
    let run = |args: &[&str]| ok(&s3_cartscope(&endpoint, args), &format!("{args:?}"));
    let gz = root("sample-data/otlp-gzip");
    let ds = format!("s3://{bucket}/shop/ds");

    // Ingested in two steps (the second passes over the input the first took), with no
    // trailing slash and with one.
    run(&[
        "ingest",
        gz.join("traces.jsonl.gz").to_str().unwrap(),
        "--out",
        &ds,
    ]);
    let second = run(&["ingest", gz.to_str().unwrap(), "--out", &format!("{ds}/")]);
    assert!(second.contains("ingested 2 files"), "{second}");
    assert!(
        second.contains("already ingested, passed over") && second.contains("traces.jsonl.gz"),
        "{second}"
    );
    assert!(stdout_has_rows(&second, "logs", 1404), "{second}");

    // Read in place from the bucket: the dataset's prefix, or one above it, gives the
    // report the raw files on disk give, byte for byte.
    let want = ok(
        &cartscope(&["report", "--data", gz.to_str().unwrap(), "-f", "json"]),
        "local",
    );
    assert_eq!(
        run(&["report", "--data", &format!("{ds}/"), "-f", "json"]),
        want
    );
    assert_eq!(
        run(&[
            "report",
            "--data",
            &format!("s3://{bucket}/shop/"),
            "-f",
            "json"
        ]),
        want
    );
    let sql = "SELECT (SELECT count(*) FROM observed_traces) AS spans, (SELECT count(*) FROM observed_metrics) AS points, \
               (SELECT count(*) FROM logs) AS logs";
    assert_eq!(
        run(&["query", "--data", &ds, "-f", "csv", "-e", sql]),
        "spans,points,logs\n17846,6637,1404\n"
    );

    // A part no input lists is not read. Just uploaded, it may be another ingest's that has
    // not committed yet (an interrupted ingest's looks the same): the next ingest leaves it
    // and says so; told that nothing else writes (`--orphan-age 0s`), it deletes it.
    let orphan = "shop/ds/traces/dt=2026-11-20/part-0123456789abcdef-0000.parquet";
    put(&endpoint, &bucket, orphan, &root("sample-data/README.md"));
    let orphan2 = "shop/ds/traces/dt=2026-11-20/part-0123456789abcdef-0001.parquet";
    put(&endpoint, &bucket, orphan2, &root("sample-data/README.md"));
    assert_eq!(run(&["report", "--data", &ds, "-f", "json"]), want);
    assert!(keys(&endpoint, &bucket, "shop/ds/traces/").contains(&orphan.to_string()));
    let js = fixture("real-sdk/js/traces.jsonl.gz");
    let o = s3_cartscope(&endpoint, &["ingest", js.to_str().unwrap(), "--out", &ds]);
    ok(&o, "ingest js");
    assert!(
        stderr(&o).contains("2 part files below")
            && stderr(&o).contains("are listed by no input and younger than 1d")
            && stderr(&o).contains("so they are left")
            && !stderr(&o).contains("removed"),
        "{}",
        stderr(&o)
    );
    assert!(keys(&endpoint, &bucket, "shop/ds/traces/").contains(&orphan.to_string()));
    let o = s3_cartscope(
        &endpoint,
        &[
            "ingest",
            js.to_str().unwrap(),
            "--out",
            &ds,
            "--orphan-age",
            "0s",
        ],
    );
    ok(&o, "ingest js again");
    assert!(
        stderr(&o).contains("removed 2 unfinished part files of"),
        "{}",
        stderr(&o)
    );
    let left = keys(&endpoint, &bucket, "shop/ds/");
    assert!(
        !left.contains(&orphan.to_string()) && !left.contains(&orphan2.to_string()),
        "{left:?}"
    );
    assert!(
        left.iter().filter(|k| k.ends_with(".parquet")).count() > 10,
        "{left:?}"
    );

    // Real SDK output, through a bucket's dataset: the carts the file on disk gives.
    let js_ds = format!("s3://{bucket}/js-ds/");
    run(&["ingest", js.to_str().unwrap(), "--out", &js_ds]);
    let want = ok(
        &cartscope(&["detect", "--data", js.to_str().unwrap(), "-f", "csv"]),
        "js local",
    );
    assert!(want.lines().count() > 100);
    assert_eq!(run(&["detect", "--data", &js_ds, "-f", "csv"]), want);

    // A prefix holding other objects is not written into.
    put(&endpoint, &bucket, "raw/traces.jsonl.gz", &js);
    let o = s3_cartscope(
        &endpoint,
        &[
            "ingest",
            js.to_str().unwrap(),
            "--out",
            &format!("s3://{bucket}/raw/"),
        ],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("holds objects that are not a cartscope dataset"),
        "{}",
        stderr(&o)
    );
}

/// Whether `ingest`'s summary table gives `rows` rows for `table`.
fn stdout_has_rows(summary: &str, table: &str, rows: u64) -> bool {
    summary.lines().any(|l| {
        let cells: Vec<&str> = l.split(['│', '┆']).map(str::trim).collect();
        cells.get(1) == Some(&table) && cells.get(2) == Some(&rows.to_string().as_str())
    })
}

/// Two ingests into one dataset at once: the one that commits second finds the manifest
/// changed since it read it (the store's conditional put says so) and fails, saying what to
/// do, rather than drop the first one's input from the manifest.
#[test]
fn an_ingest_that_lost_a_race_to_commit_says_so_and_loses_nothing() {
    let Some(endpoint) = s3_endpoint() else {
        return;
    };
    let bucket = bucket(&endpoint, "race");
    let ds = format!("s3://{bucket}/ds/");
    let tmp = tempfile::tempdir().unwrap();
    // The slow ingest reads standard input: it has read the (missing) manifest and made its
    // staging folder in TMPDIR, and then waits for its input.
    let mut slow = cmd()
        .args(["ingest", "-", "--out", &ds])
        .env("AWS_ENDPOINT_URL", &endpoint)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        .env("TMPDIR", tmp.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let staged = || {
        std::fs::read_dir(tmp.path()).unwrap().flatten().any(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("cartscope-upload-")
        })
    };
    for _ in 0..300 {
        if staged() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(staged(), "the ingest reading standard input did not start");
    // Meanwhile another ingest commits.
    let gz = root("sample-data/otlp-gzip/metrics.jsonl.gz");
    ok(
        &s3_cartscope(&endpoint, &["ingest", gz.to_str().unwrap(), "--out", &ds]),
        "the quick ingest",
    );
    let input = std::fs::read(root("sample-data/otlp-gzip/traces.jsonl.gz")).unwrap();
    slow.stdin.take().unwrap().write_all(&input).unwrap();
    let o = slow.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("another ingest wrote to the dataset"),
        "{}",
        stderr(&o)
    );
    // The first ingest's input is there; run again, the second one's joins it.
    let count = |sql: &str| {
        ok(
            &s3_cartscope(&endpoint, &["query", "--data", &ds, "-f", "csv", "-e", sql]),
            sql,
        )
    };
    let sql = "SELECT (SELECT count(*) FROM observed_traces) AS spans, (SELECT count(*) FROM observed_metrics) AS points";
    assert_eq!(count(sql), "spans,points\n0,6637\n");
    ok(
        &s3_cartscope(
            &endpoint,
            &[
                "ingest",
                root("sample-data/otlp-gzip/traces.jsonl.gz")
                    .to_str()
                    .unwrap(),
                "--out",
                &ds,
            ],
        ),
        "again",
    );
    assert_eq!(count(sql), "spans,points\n17846,6637\n");
}

/// The Collector S3 exporter's time partitions outside a report's period (and its previous
/// period, with margins) are never listed, so never read: objects that are not telemetry
/// there would otherwise be named on stderr.
#[test]
fn a_report_lists_only_the_time_partitions_of_its_period() {
    let Some(endpoint) = s3_endpoint() else {
        return;
    };
    let bucket = bucket(&endpoint, "pruned");
    let gz = root("sample-data/otlp-gzip");
    // sample-data runs from 2026-11-19T12:00Z to 2026-11-20T12:00Z.
    let part = "otlp/year=2026/month=11/day=20/hour=11/minute=05";
    for t in ["traces", "metrics", "logs"] {
        put(
            &endpoint,
            &bucket,
            &format!("{part}/{t}_1.json.gz"),
            &gz.join(format!("{t}.jsonl.gz")),
        );
    }
    // --day 2026-11-20 needs 2026-11-19 (the previous day) less the threshold (30m) and six
    // hours, to the day's end and an hour of export delay: 2026-11-18T17:30Z to
    // 2026-11-21T01:00Z.
    let outside = [
        "otlp/year=2025/month=12/day=31/hour=23/minute=59/old.json",
        "otlp/year=2026/month=10/day=01/old.json",
        "otlp/year=2026/month=11/day=18/hour=16/minute=59/old.json",
        "otlp/year=2026/month=11/day=21/hour=01/minute=01/new.json",
        "otlp/year=2026/month=11/day=22/new.json",
    ];
    let inside = "otlp/year=2026/month=11/day=18/hour=17/minute=45/edge.json";
    for key in outside.iter().chain([&inside]) {
        // Each its own bytes (copies of one file would be read once).
        let body = format!("not telemetry: {key}\n");
        let code = http(
            &endpoint,
            "PUT",
            &format!("/{bucket}/{key}"),
            body.as_bytes(),
        );
        assert_eq!(code, 200, "PUT {key}");
    }
    let s3 = format!("s3://{bucket}/otlp/");
    fn report(data: &str) -> [&str; 7] {
        [
            "report",
            "--data",
            data,
            "--day",
            "2026-11-20",
            "-f",
            "json",
        ]
    }
    let o = s3_cartscope(&endpoint, &report(&s3));
    let want = ok(&cartscope(&report(gz.to_str().unwrap())), "local");
    assert_eq!(ok(&o, "pruned"), want);
    let err = stderr(&o);
    assert!(err.contains("5 time partitions under"), "{err}");
    for key in outside {
        assert!(!err.contains(key), "{key} was read: {err}");
    }
    // The partition inside the margin is listed (and passed over as not telemetry).
    assert!(err.contains("edge.json"), "{err}");
    // Without a period known before reading, every partition is listed.
    let o = s3_cartscope(&endpoint, &["report", "--data", &s3, "-f", "json"]);
    ok(&o, "unpruned");
    for key in outside {
        assert!(stderr(&o).contains(key), "{key}: {}", stderr(&o));
    }
}

/// Python's http.server (answering range requests too: tests/range_server.py) on a free
/// loopback port, serving `dir`; stopped when dropped.
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
        .arg(root("tests/range_server.py"))
        .arg(port.to_string())
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
    // A dataset's folder over HTTP: read through its manifest, the parts by ranges.
    let tmp = tempfile::tempdir().unwrap();
    let js = dir.join("js/traces.jsonl.gz");
    ok(
        &cartscope(&[
            "ingest",
            js.to_str().unwrap(),
            "--out",
            tmp.path().join("ds").to_str().unwrap(),
        ]),
        "ingest",
    );
    let ds_server = http_server(tmp.path());
    let want = ok(
        &cartscope(&["report", "--data", js.to_str().unwrap(), "-f", "json"]),
        "js report",
    );
    for url in [
        format!("{}/ds", ds_server.url),
        format!("{}/ds/", ds_server.url),
    ] {
        assert_eq!(
            ok(&cartscope(&["report", "--data", &url, "-f", "json"]), &url),
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
