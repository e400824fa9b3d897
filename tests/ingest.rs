//! `cartscope ingest`: the Parquet dataset's layout, appending, de-duplication, crash
//! recovery, and that reading the dataset gives the same tables as reading the raw files.

use std::path::{Path, PathBuf};

use crate::util::*;
use datafusion::parquet::basic::{LogicalType, TimeUnit};
use datafusion::parquet::file::reader::{FileReader, SerializedFileReader};

fn ingest(out: &Path, inputs: &[PathBuf]) -> std::process::Output {
    let o = cmd()
        .arg("ingest")
        .args(inputs)
        .arg("--out")
        .arg(out)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "ingest failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

fn parts(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "parquet"))
        .map(|e| e.into_path())
        .collect();
    v.sort();
    v
}

const COUNT_ALL: &str = "SELECT (SELECT count(*) FROM traces) || '/' || (SELECT count(*) FROM span_events) || '/' || (SELECT count(*) FROM span_links) || '/' || (SELECT count(*) FROM metrics) || '/' || (SELECT count(*) FROM exemplars)";

#[tokio::test]
async fn dataset_reads_back_the_same_tables_as_the_raw_files() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("ds");
    let src = fixture("otlp-examples");
    let o = ingest(&out, std::slice::from_ref(&src));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("traces"), "{text}");

    let (raw, _) = load(&[src]).await;
    let (ds, stats) = load(std::slice::from_ref(&out)).await;
    assert_eq!(stats.files, 0, "a dataset is read in place, not loaded");
    assert_eq!(one(&raw, COUNT_ALL).await, one(&ds, COUNT_ALL).await);

    // The same rows, value for value (compared as sorted lists: ties have no order).
    let sorted = |mut v: Vec<Vec<String>>| {
        v.sort();
        v
    };
    let q = "SELECT trace_id, span_id, operation_name, start_time, duration_ms, status_code, attributes FROM traces ORDER BY trace_id, span_id, start_time, operation_name";
    assert_eq!(sorted(rows(&raw, q).await), sorted(rows(&ds, q).await));
    let q = "SELECT name, timestamp, value, bucket_counts, quantiles FROM metrics";
    assert_eq!(sorted(rows(&raw, q).await), sorted(rows(&ds, q).await));
}

#[test]
fn layout_is_a_folder_per_table_partitioned_by_day_with_portable_types() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("ds");
    ingest(&out, &[fixture("otlp-examples/proto-examples-trace.json")]);
    assert!(out.join("_cartscope.json").is_file());
    let files = parts(&out);
    assert_eq!(files.len(), 1, "{files:?}");
    let rel = files[0]
        .strip_prefix(&out)
        .unwrap()
        .to_string_lossy()
        .to_string();
    assert!(rel.starts_with("traces/dt=2018-12-13/part-"), "{rel}");

    let reader = SerializedFileReader::new(std::fs::File::open(&files[0]).unwrap()).unwrap();
    let schema = reader.metadata().file_metadata().schema_descr();
    for col in schema.columns() {
        if let Some(LogicalType::Timestamp(t)) = col.logical_type_ref() {
            assert!(t.is_adjusted_to_u_t_c, "{} is not UTC", col.path());
            assert!(
                matches!(t.unit, TimeUnit::MICROS),
                "{} is not microseconds",
                col.path()
            );
        }
        if let Some(LogicalType::Integer(i)) = col.logical_type_ref() {
            assert!(i.is_signed, "{} is unsigned", col.path());
        }
    }
    let rg = reader.metadata().row_group(0);
    assert!(rg.columns().iter().all(|c| matches!(
        c.compression(),
        datafusion::parquet::basic::Compression::ZSTD(_)
    )));
}

#[tokio::test]
async fn rows_are_sorted_by_time_within_each_file() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("ds");
    ingest(
        &out,
        &[fixture("otlp-examples/gcp-traces-concatenated.json")],
    );
    for p in parts(&out) {
        if !p.to_string_lossy().contains("/traces/") {
            continue;
        }
        let (ctx, _) = load(std::slice::from_ref(&p)).await;
        let times = rows(&ctx, "SELECT start_time FROM traces").await;
        let mut sorted = times.clone();
        sorted.sort();
        assert_eq!(times, sorted, "{} is not sorted by start_time", p.display());
    }
}

#[test]
fn re_running_appends_new_files_and_never_ingests_a_file_twice() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("ds");
    let a = fixture("otlp-examples/proto-examples-trace.json");
    let b = fixture("otlp-examples/goauto-nethttp-fileexporter.jsonl");
    ingest(&out, std::slice::from_ref(&a));
    let before = parts(&out);

    // The same file again, and under another name: passed over.
    let copy = tmp.path().join("renamed.json");
    std::fs::copy(&a, &copy).unwrap();
    let o = ingest(&out, &[a.clone(), copy]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("already ingested"));
    assert_eq!(parts(&out), before);

    // A new file is appended.
    ingest(&out, &[b]);
    assert_eq!(parts(&out).len(), before.len() + 1);
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("_cartscope.json")).unwrap())
            .unwrap();
    assert_eq!(manifest["inputs"].as_array().unwrap().len(), 2);
    assert_eq!(manifest["inputs"][1]["rows"]["traces"], 2);
}

#[tokio::test]
async fn parts_left_by_an_interrupted_ingest_are_ignored_and_then_removed() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("ds");
    ingest(&out, &[fixture("otlp-examples/proto-examples-trace.json")]);
    // What a crash between writing a part and committing the manifest leaves behind.
    let orphan = out.join("traces/dt=2018-12-13/part-deadbeefdeadbeef-0000.parquet");
    std::fs::copy(&parts(&out)[0], &orphan).unwrap();
    let (ctx, _) = load(std::slice::from_ref(&out)).await;
    assert_eq!(one(&ctx, "SELECT count(*) FROM traces").await, "1");

    let o = cmd()
        .args(["ingest", "--out"])
        .arg(&out)
        .arg(fixture("otlp-examples/goauto-nethttp-fileexporter.jsonl"))
        .output()
        .unwrap();
    assert!(o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("removed 1 unfinished part file of"));
    assert!(!orphan.exists());

    // A local folder's orphans go at once (it is locked): the object stores' grace for a
    // concurrent ingest's parts is refused here rather than ignored.
    let o = cmd()
        .args(["ingest", "--orphan-age", "2h", "--out"])
        .arg(&out)
        .arg(fixture("otlp-examples/goauto-nethttp-fileexporter.jsonl"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&o.stderr)
            .contains("--orphan-age applies to an ingest into an object store"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Holds `out` as an ingest at work does (its lock file locked).
fn hold(out: &Path) -> std::fs::File {
    std::fs::create_dir_all(out).unwrap();
    let held = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(out.join(".cartscope-ingest.lock"))
        .unwrap();
    held.lock().unwrap();
    held
}

/// Starts `cartscope ingest input --out out` while `out` is held, and checks that it says it
/// waits and does wait. Its stderr's lines come on the receiver.
fn ingest_waiting(
    out: &Path,
    input: &Path,
) -> (
    std::process::Child,
    std::sync::mpsc::Receiver<String>,
    std::thread::JoinHandle<()>,
) {
    use std::io::BufRead;
    use std::time::Duration;
    let mut child = cmd()
        .args(["ingest", "--out"])
        .arg(out)
        .arg(input)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let err = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        for line in std::io::BufReader::new(err).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let note = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("a note that it waits");
    assert!(
        note.contains("another ingest is writing to") && note.contains("waiting"),
        "{note}"
    );
    std::thread::sleep(Duration::from_millis(500));
    assert!(child.try_wait().unwrap().is_none(), "it waits");
    (child, rx, reader)
}

fn inputs_listed(out: &Path) -> usize {
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("_cartscope.json")).unwrap())
            .unwrap();
    m["inputs"].as_array().unwrap().len()
}

/// Two ingests into one folder take turns (a cron job that overlaps the next): the second
/// waits while the first holds the folder, says so, and neither saves a manifest over the
/// other's nor removes the other's unfinished parts. Data: OpenTelemetry's own trace example
/// (tests/fixtures/otlp-examples) and the real JS SDK's export (tests/fixtures/real-sdk/js).
#[test]
fn a_second_ingest_into_the_same_folder_waits_for_the_first() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("ds");
    ingest(&out, &[fixture("otlp-examples/proto-examples-trace.json")]);
    // Another ingest at work: the folder held, a part of its written and not yet listed.
    let held = hold(&out);
    let theirs = out.join("traces/dt=2018-12-13/part-0123456789abcdef-0000.parquet");
    std::fs::copy(&parts(&out)[0], &theirs).unwrap();
    let (mut child, rx, reader) = ingest_waiting(&out, &fixture("real-sdk/js/traces.jsonl.gz"));
    assert!(theirs.exists(), "the other ingest's part is left alone");
    // The other ends, here without listing its part (a crash's leftover): the second goes
    // on, removes it, and adds its input to the manifest the first left.
    drop(held);
    assert!(child.wait().unwrap().success());
    reader.join().unwrap();
    let said: Vec<String> = rx.try_iter().collect();
    assert!(
        said.iter().any(|l| l.contains("removed 1 unfinished part")),
        "{said:?}"
    );
    assert!(!theirs.exists());
    assert_eq!(inputs_listed(&out), 2);

    // Into a new folder: the first ingest's parts come before its manifest, and the second
    // waits for it there too, rather than taking the folder for something else.
    let fresh = tmp.path().join("fresh");
    let held = hold(&fresh);
    let pending = fresh.join("traces/dt=2018-12-13/part-0123456789abcdef-0000.parquet.pending");
    std::fs::create_dir_all(pending.parent().unwrap()).unwrap();
    std::fs::copy(&parts(&out)[0], &pending).unwrap();
    let (mut child, _rx, reader) = ingest_waiting(&fresh, &fixture("real-sdk/js/traces.jsonl.gz"));
    // The first commits (its manifest and parts, here the first dataset's) and ends.
    std::fs::remove_file(&pending).unwrap();
    for p in parts(&out) {
        let to = fresh.join(p.strip_prefix(&out).unwrap());
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(&p, &to).unwrap();
    }
    std::fs::copy(out.join("_cartscope.json"), fresh.join("_cartscope.json")).unwrap();
    drop(held);
    assert!(child.wait().unwrap().success());
    reader.join().unwrap();
    // The JS export is in the manifest already (as in the first dataset): passed over.
    assert_eq!(inputs_listed(&fresh), 2);
}

/// A file of a folder passed over as no telemetry (other JSON beside the export) is not
/// recorded as ingested: each ingest of the folder passes it over again, and the manifest
/// lists the export alone. Data: OpenTelemetry's own trace example and a hand-made
/// truth-like JSON file.
#[test]
fn a_file_passed_over_is_not_recorded_as_ingested() {
    let tmp = tempfile::tempdir().unwrap();
    let export = tmp.path().join("export");
    std::fs::create_dir_all(&export).unwrap();
    std::fs::copy(
        fixture("otlp-examples/proto-examples-trace.json"),
        export.join("trace.json"),
    )
    .unwrap();
    std::fs::write(
        export.join("truth.json"),
        "{\"version\":1,\"carts\":[\n{\"cart_id\":\"a\"}]}\n",
    )
    .unwrap();
    let out = tmp.path().join("ds");
    for _ in 0..2 {
        let o = ingest(&out, std::slice::from_ref(&export));
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("truth.json': JSON, but not OTLP"), "{err}");
    }
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("_cartscope.json")).unwrap())
            .unwrap();
    let sources: Vec<&str> = m["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["source"].as_str().unwrap())
        .collect();
    assert_eq!(sources.len(), 1, "{m}");
    assert!(sources[0].ends_with("trace.json"), "{m}");
}

#[test]
fn refuses_to_write_into_a_folder_that_is_not_a_dataset() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("notes.txt"), "mine").unwrap();
    let o = cmd()
        .args(["ingest", "--out"])
        .arg(tmp.path())
        .arg(fixture("otlp-examples/proto-examples-trace.json"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("not a cartscope dataset"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[tokio::test]
async fn raw_files_and_datasets_combine_in_one_data_argument() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("ds");
    ingest(&out, &[fixture("otlp-examples/proto-examples-trace.json")]);
    let (ctx, _) = load(&[
        out,
        fixture("otlp-examples/goauto-nethttp-fileexporter.jsonl"),
    ])
    .await;
    assert_eq!(one(&ctx, "SELECT count(*) FROM traces").await, "3");
    assert_eq!(one(&ctx, "SELECT count(*) FROM spans").await, "3");
}

/// The column names of a Parquet file.
fn columns(path: &Path) -> Vec<String> {
    let r = SerializedFileReader::new(std::fs::File::open(path).unwrap()).unwrap();
    r.metadata()
        .file_metadata()
        .schema_descr()
        .root_schema()
        .get_fields()
        .iter()
        .map(|f| f.name().to_string())
        .collect()
}

#[tokio::test]
async fn derived_rows_live_apart_and_datasets_with_the_old_derived_column_still_load() {
    // A dataset written before the replay kept its rows apart: its traces carry `derived`
    // (sample-data's dataset as it was until its logs were added, tests/fixtures/dataset-v1).
    let old = fixture("dataset-v1");
    let old_part = parts(&old)
        .into_iter()
        .find(|p| p.starts_with(old.join("traces")))
        .unwrap();
    assert!(columns(&old_part).contains(&"derived".to_string()));

    // A new dataset stores the canonical schema only, and says it is version 2.
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("ds");
    ingest(&out, &[root("sample-data/otlp/traces.jsonl")]);
    for p in parts(&out) {
        assert!(!columns(&p).contains(&"derived".to_string()), "{p:?}");
    }
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("_cartscope.json")).unwrap())
            .unwrap();
    assert_eq!(manifest["version"], 2);

    // Both load; before the replay `traces` is the observed rows, each `derived = false`.
    for ds in [&old, &out] {
        let (ctx, _) = load(std::slice::from_ref(ds)).await;
        assert_eq!(
            one(&ctx, "SELECT count(*) FROM traces WHERE derived").await,
            "0"
        );
        assert_eq!(
            one(&ctx, "SELECT count(*) FROM traces").await,
            one(&ctx, "SELECT count(*) FROM observed_traces").await
        );
    }

    // After the replay, `traces` and `metrics` show the derived rows beside the observed
    // ones, which stay as they were.
    let (ctx, _) = load(std::slice::from_ref(&old)).await;
    let observed = one(&ctx, "SELECT count(*) FROM observed_traces").await;
    let s = cartscope::replay(
        &ctx,
        &cartscope::Model::load("reference").unwrap(),
        &cartscope::ReplayOptions {
            as_of: "2026-11-20T12:00:00Z".parse().unwrap(),
            threshold: None,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert!(s.derived_spans > 0);
    assert_eq!(
        one(&ctx, "SELECT count(*) FROM observed_traces").await,
        observed
    );
    assert_eq!(
        one(&ctx, "SELECT count(*) FROM traces WHERE derived").await,
        s.derived_spans.to_string()
    );
    assert_eq!(
        one(&ctx, "SELECT count(*) FROM derived_traces").await,
        s.derived_spans.to_string()
    );
    assert_eq!(
        one(
            &ctx,
            "SELECT count(*) FROM traces WHERE operation_name = 'cart.abandonment.detected' AND derived"
        )
        .await,
        s.derived_spans.to_string()
    );
    assert_eq!(
        one(&ctx, "SELECT count(*) FROM metrics WHERE derived").await,
        s.derived_points.to_string()
    );
    assert_eq!(
        one(&ctx, "SELECT count(*) FROM spans").await,
        one(&ctx, "SELECT count(*) FROM traces").await
    );
}

/// Rows of `table` that a glob reader (DuckDB, Spark, Trino: `TABLE/*/*.parquet`) sees in a
/// dataset folder, read here with the parquet crate.
fn glob_rows(dir: &Path, table: &str) -> i64 {
    let pattern = format!("{}/{table}/*/*.parquet", dir.display());
    glob::glob(&pattern)
        .unwrap()
        .map(|p| {
            let f = std::fs::File::open(p.unwrap()).unwrap();
            SerializedFileReader::new(f)
                .unwrap()
                .metadata()
                .file_metadata()
                .num_rows()
        })
        .sum()
}

/// Rows of traces cartscope reads from the dataset (through its manifest).
fn manifest_rows(dir: &Path) -> i64 {
    let o = cmd()
        .args(["tables", "-f", "csv", "--data"])
        .arg(dir)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("traces,"))
        .and_then(|r| r.split(',').next())
        .and_then(|n| n.parse().ok())
        .unwrap()
}

#[test]
fn ingest_killed_at_any_point_leaves_the_old_or_the_new_dataset() {
    let tmp = tempfile::tempdir().unwrap();
    let gen = tmp.path().join("gen");
    generate(&gen, &["--carts", "1500", "--seed", "3"]);
    let (metrics, traces) = (
        gen.join("otlp/metrics.jsonl"),
        gen.join("otlp/traces.jsonl"),
    );
    // How long an uninterrupted append takes, and what it gives.
    let full = tmp.path().join("full");
    ingest(&full, std::slice::from_ref(&metrics));
    let started = std::time::Instant::now();
    ingest(&full, std::slice::from_ref(&traces));
    let took = started.elapsed();
    let new_rows = manifest_rows(&full);
    assert!(new_rows > 0);
    assert_eq!(glob_rows(&full, "traces"), new_rows);

    // Kills spread over the append, from its first instant to past its end: eight, then
    // later ones while none has yet landed after the commit (a loaded machine starts the
    // killed ingest slower than the one timed above), up to four times its time.
    let (mut old, mut new) = (0, 0);
    let mut k = 0u32;
    while k < 8 || (new == 0 && k < 24) {
        let ds = tmp.path().join(format!("ds{k}"));
        ingest(&ds, std::slice::from_ref(&metrics));
        let mut child = cmd()
            .arg("ingest")
            .arg(&traces)
            .arg("--out")
            .arg(&ds)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(took * k / 6);
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        // Old (no traces) or new (all of them), read through the manifest and by glob alike.
        let seen = manifest_rows(&ds);
        assert!(seen == 0 || seen == new_rows, "kill {k}: {seen} rows");
        if seen == 0 {
            old += 1;
        } else {
            new += 1;
        }
        // A glob of the folder never sees rows the manifest does not list (parts are
        // written under pending names). Killed between the manifest's commit and the
        // parts' renames, it sees fewer until the next ingest renames them (dataset/mod.rs).
        let globbed = glob_rows(&ds, "traces");
        if seen == 0 {
            assert_eq!(globbed, 0, "kill {k}: the glob sees rows no input lists");
        } else {
            assert!(
                globbed <= seen,
                "kill {k}: the glob sees {globbed} rows of {seen}"
            );
        }
        // Running it again completes it exactly once.
        let o = ingest(&ds, std::slice::from_ref(&traces));
        assert_eq!(
            manifest_rows(&ds),
            new_rows,
            "kill {k}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert_eq!(glob_rows(&ds, "traces"), new_rows, "kill {k}");
        let pending: Vec<_> = walkdir::WalkDir::new(&ds)
            .into_iter()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().ends_with(".pending"))
            .collect();
        assert!(pending.is_empty(), "kill {k}: {pending:?}");
        k += 1;
    }
    // The kills landed before the commit and after it.
    assert!(old > 0 && new > 0, "old {old}, new {new}");
}

#[tokio::test]
async fn a_listed_part_still_pending_is_read_and_then_renamed_into_place() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("ds");
    ingest(&out, &[fixture("otlp-examples/proto-examples-trace.json")]);
    // What a crash between committing the manifest and renaming the part leaves.
    let part = parts(&out)
        .into_iter()
        .find(|p| p.starts_with(out.join("traces")))
        .unwrap();
    let pending = PathBuf::from(format!("{}.pending", part.display()));
    std::fs::rename(&part, &pending).unwrap();
    assert_eq!(glob_rows(&out, "traces"), 0, "no glob reader sees it yet");
    let (ctx, _) = load(std::slice::from_ref(&out)).await;
    assert_eq!(one(&ctx, "SELECT count(*) FROM traces").await, "1");
    // The next ingest finishes the rename.
    ingest(
        &out,
        &[fixture("otlp-examples/goauto-nethttp-fileexporter.jsonl")],
    );
    assert!(part.exists() && !pending.exists());
    assert!(glob_rows(&out, "traces") >= 1);
}

/// The dataset's span table evaluates filters inside the Parquet scan (pushdown), where a
/// file whose columns differ from the table's must be adapted row by row: a version-1
/// dataset's span files carry the old `derived` column. The same filtered rows from it as
/// from the raw export it was ingested from (sample-data), and from a dataset mixing those
/// files with new ones (the real Python SDK's export appended) as from both parts apart.
#[test]
fn filters_in_the_span_scan_keep_the_same_rows_from_old_new_and_mixed_files() {
    let filters = [
        "operation_name = 'shipping.calculate_rates' AND duration_ms > 2000",
        "attributes['cart.id'] = 'cart-00000042'",
        "status_code = 'error' AND attributes['cart.id'] IS NOT NULL",
        "duration_ms > 100 AND service_name IS NOT NULL",
    ];
    let count = |data: &Path, filter: &str| -> String {
        let sql = format!(
            "SELECT count(*), round(sum(duration_ms), 3), count(DISTINCT trace_id) \
             FROM observed_traces WHERE {filter}"
        );
        let o = cartscope(&[
            "query",
            "--data",
            data.to_str().unwrap(),
            "-e",
            &sql,
            "-f",
            "csv",
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        stdout(&o).lines().nth(1).unwrap().to_string()
    };
    let old = fixture("dataset-v1");
    let raw = root("sample-data/otlp/traces.jsonl");
    let sdk = fixture("real-sdk/py-json");
    let tmp = tempfile::tempdir().unwrap();
    let mixed = tmp.path().join("mixed");
    let o = std::process::Command::new("cp")
        .arg("-r")
        .arg(&old)
        .arg(&mixed)
        .output()
        .unwrap();
    assert!(o.status.success());
    ingest(&mixed, std::slice::from_ref(&sdk));
    let mut matched = 0;
    for f in filters {
        let (from_old, from_raw) = (count(&old, f), count(&raw, f));
        assert_eq!(from_old, from_raw, "{f}");
        let from_sdk = count(&sdk, f);
        let n = |s: &str| s.split(',').next().unwrap().parse::<u64>().unwrap();
        assert_eq!(
            n(&count(&mixed, f)),
            n(&from_old) + n(&from_sdk),
            "{f}: mixed {} old {from_old} sdk {from_sdk}",
            count(&mixed, f)
        );
        matched += usize::from(n(&from_old) > 0 && n(&from_sdk) > 0);
    }
    assert!(matched >= 2, "the filters keep rows of both parts");
}
