//! `cartscope generate`: the export reads back through cartscope's own loader and agrees with
//! its truth file; one seed gives one output, byte for byte.

use std::path::{Path, PathBuf};

use cartscope::Table;

use crate::util::*;

fn truth(dir: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("truth.json")).unwrap()).unwrap()
}

/// Every cart's spans: those carrying its id, and those sharing a trace with one that does.
const SPANS_PER_CART: &str = "
    WITH keyed AS (
        SELECT DISTINCT trace_id, attributes['cart.id'] AS cart_id FROM traces
        WHERE attributes['cart.id'] IS NOT NULL)
    SELECT k.cart_id, count(*) AS spans
    FROM traces t JOIN keyed k ON t.trace_id = k.trace_id
    GROUP BY k.cart_id";

#[tokio::test]
async fn the_export_reads_back_and_agrees_with_the_truth() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("shop");
    generate(&dir, &["--carts", "400", "--seed", "3"]);
    let t = truth(&dir);
    let totals = &t["totals"];
    let carts = t["carts"].as_array().unwrap();
    assert_eq!(carts.len() as u64, totals["carts"].as_u64().unwrap());

    let (ctx, stats) = load(&[dir.join("otlp")]).await;
    assert_eq!(stats.bad_total, 0);
    assert_eq!(stats.empty_documents, 0, "the truth file is not in otlp/");
    let spans = totals["spans"].as_u64().unwrap() + totals["noise_spans"].as_u64().unwrap();
    assert_eq!(stats.rows[Table::Traces], spans);
    assert_eq!(
        stats.rows[Table::Metrics],
        totals["metric_points"].as_u64().unwrap()
    );
    assert!(
        stats.rows[Table::Exemplars] > 0,
        "the stage-duration histogram has exemplars"
    );

    // Every cart of the truth is in the export with exactly its spans.
    let per_cart: std::collections::HashMap<String, String> = rows(&ctx, SPANS_PER_CART)
        .await
        .into_iter()
        .map(|r| (r[0].clone(), r[1].clone()))
        .collect();
    assert_eq!(per_cart.len(), carts.len());
    for c in carts {
        let id = c["cart_id"].as_str().unwrap();
        assert_eq!(per_cart[id], c["span_count"].to_string(), "cart {id}");
    }

    // The outcomes follow from the spans: converted carts have a checkout.complete.
    let completed: std::collections::HashSet<String> = rows(
        &ctx,
        "SELECT DISTINCT attributes['cart.id'] FROM traces WHERE operation_name = 'checkout.complete'",
    )
    .await
    .into_iter()
    .map(|r| r[0].clone())
    .collect();
    for c in carts {
        let id = c["cart_id"].as_str().unwrap().to_string();
        match c["outcome"].as_str().unwrap() {
            "converted" => assert!(completed.contains(&id), "{id}"),
            "abandoned" | "active" => assert!(!completed.contains(&id), "{id}"),
            _ => {}
        }
    }
    // The last operation of each cart is its last span by end time.
    let last: std::collections::HashMap<String, (String, String)> = rows(
        &ctx,
        "WITH keyed AS (SELECT DISTINCT trace_id, attributes['cart.id'] AS cart_id FROM traces
                        WHERE attributes['cart.id'] IS NOT NULL),
              ranked AS (SELECT k.cart_id, t.operation_name, t.duration_ms,
                                row_number() OVER (PARTITION BY k.cart_id ORDER BY t.end_time DESC, t.start_time DESC) AS rn
                         FROM traces t JOIN keyed k ON t.trace_id = k.trace_id)
         SELECT cart_id, operation_name, duration_ms FROM ranked WHERE rn = 1",
    )
    .await
    .into_iter()
    .map(|r| (r[0].clone(), (r[1].clone(), r[2].clone())))
    .collect();
    for c in carts {
        let id = c["cart_id"].as_str().unwrap();
        let (op, ms) = &last[id];
        assert_eq!(op, c["last_operation"].as_str().unwrap(), "cart {id}");
        let want = c["last_op_duration_ms"].as_f64().unwrap();
        assert!(
            (ms.parse::<f64>().unwrap() - want).abs() < 0.001,
            "cart {id}: {ms} vs {want}"
        );
    }
}

#[test]
fn the_workload_has_the_shape_the_issue_asks_for() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("shop");
    generate(&dir, &["--carts", "3000", "--seed", "11"]);
    let t = truth(&dir);
    let totals = &t["totals"];
    let rate = totals["abandonment_rate"].as_f64().unwrap();
    assert!((0.62..=0.72).contains(&rate), "abandonment rate {rate}");
    for k in ["active", "recovered", "converted", "abandoned"] {
        assert!(totals[k].as_u64().unwrap() > 0, "no {k} carts");
    }
    let carts = t["carts"].as_array().unwrap();
    // Users own several carts.
    let users: std::collections::HashSet<&str> = carts
        .iter()
        .map(|c| c["user_id"].as_str().unwrap())
        .collect();
    assert!(users.len() < carts.len() * 9 / 10);
    // Abandonment is likelier after a slow quote or a payment error than after a fast one.
    let share = |pred: &dyn Fn(&serde_json::Value) -> bool| {
        let group: Vec<_> = carts.iter().filter(|c| pred(c)).collect();
        group.iter().filter(|c| c["outcome"] == "abandoned").count() as f64
            / group.len().max(1) as f64
    };
    let slow = share(&|c| c["suspected_cause"] == "slow_response");
    assert_eq!(slow, 1.0, "a cause is only given to abandoned carts");
    assert!(totals["causes"]["slow_response"].as_u64().unwrap() > 20);
    assert!(totals["causes"]["error"].as_u64().unwrap() > 5);
}

fn read_all(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut v: Vec<(PathBuf, Vec<u8>)> = walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_file())
        .map(|e| {
            (
                e.path().strip_prefix(dir).unwrap().to_path_buf(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn one_seed_gives_one_output_byte_for_byte() {
    let tmp = tempfile::tempdir().unwrap();
    for compress in ["none", "gzip", "zstd"] {
        let (a, b) = (
            tmp.path().join(format!("a-{compress}")),
            tmp.path().join(format!("b-{compress}")),
        );
        let args = [
            "--carts",
            "300",
            "--seed",
            "9",
            "--compress",
            compress,
            "--incident",
            "shipping-slow:06:00-08:00",
        ];
        generate(&a, &args);
        generate(&b, &args);
        let (fa, fb) = (read_all(&a), read_all(&b));
        assert_eq!(fa.len(), 4, "traces, metrics, logs and the truth");
        assert!(fa == fb, "{compress}: two runs with one seed differ");
    }
    let c = tmp.path().join("c");
    generate(&c, &["--carts", "300", "--seed", "10"]);
    assert_ne!(read_all(&c), read_all(&tmp.path().join("a-none")));
}

#[tokio::test]
async fn compressed_and_parquet_copies_hold_the_same_export() {
    let tmp = tempfile::tempdir().unwrap();
    let (plain, gz) = (tmp.path().join("plain"), tmp.path().join("gz"));
    generate(&plain, &["--carts", "200", "--parquet"]);
    generate(&gz, &["--carts", "200", "--compress", "gzip"]);
    assert!(gz.join("otlp/traces.jsonl.gz").is_file());
    assert!(plain.join("parquet/_cartscope.json").is_file());
    let q = "SELECT count(*), round(sum(duration_ms), 3), count(DISTINCT trace_id) FROM traces";
    let (a, _) = load(&[plain.join("otlp")]).await;
    let (b, _) = load(&[gz.join("otlp")]).await;
    let (c, _) = load(&[plain.join("parquet")]).await;
    let want = rows(&a, q).await;
    assert_eq!(rows(&b, q).await, want);
    assert_eq!(rows(&c, q).await, want);
    let q = "SELECT count(*), round(sum(value), 3), sum(count) FROM metrics";
    assert_eq!(rows(&c, q).await, rows(&a, q).await);
}

#[tokio::test]
async fn otel_demo_naming_keys_the_cart_by_user() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("demo");
    generate(&dir, &["--carts", "100", "--naming", "otel-demo"]);
    let (ctx, _) = load(&[dir.join("otlp")]).await;
    assert_eq!(
        one(
            &ctx,
            "SELECT count(*) FROM traces WHERE attributes['cart.id'] IS NOT NULL"
        )
        .await,
        "0"
    );
    let names = rows(
        &ctx,
        "SELECT DISTINCT operation_name FROM traces ORDER BY 1",
    )
    .await;
    let names: Vec<&str> = names.iter().map(|r| r[0].as_str()).collect();
    for n in [
        "oteldemo.CartService/AddItem",
        "oteldemo.CheckoutService/PlaceOrder",
        "oteldemo.ShippingService/GetQuote",
        "oteldemo.PaymentService/Charge",
    ] {
        assert!(names.contains(&n), "{n} missing from {names:?}");
    }
    let t = truth(&dir);
    let users = one(
        &ctx,
        "SELECT count(DISTINCT attributes['app.user.id']) FROM traces",
    )
    .await;
    assert_eq!(users, t["totals"]["carts"].to_string());
    for c in t["carts"].as_array().unwrap() {
        assert_eq!(c["cart_id"], c["user_id"]);
    }
}

#[tokio::test]
async fn incidents_leave_their_mark() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("inc");
    generate(
        &dir,
        &[
            "--carts",
            "2000",
            "--incident",
            "shipping-slow:02:00-08:00",
            "--incident",
            "bad-deploy:09:00-11:00",
        ],
    );
    let (ctx, _) = load(&[dir.join("otlp")]).await;
    let slow_share = |from: &str, to: &str| {
        format!(
            "SELECT avg(CASE WHEN duration_ms > 2000 THEN 1.0 ELSE 0.0 END) FROM traces
             WHERE operation_name = 'shipping.calculate_rates'
               AND start_time >= TIMESTAMP '2026-11-20T{from}:00Z' AND start_time < TIMESTAMP '2026-11-20T{to}:00Z'"
        )
    };
    let during: f64 = one(&ctx, &slow_share("02:00", "08:00"))
        .await
        .parse()
        .unwrap();
    let before: f64 = one(&ctx, &slow_share("00:00", "02:00"))
        .await
        .parse()
        .unwrap();
    assert!(
        during > 0.6 && before < 0.3,
        "slow share {during} during, {before} before"
    );
    let versions = rows(
        &ctx,
        "SELECT resource_attributes['service.version'], count(*) FROM traces
         WHERE service_name = 'payment' GROUP BY 1 ORDER BY 1",
    )
    .await;
    assert_eq!(versions.len(), 2, "{versions:?}");
    assert_eq!(versions[1][0], "3.3.0-rc1");
}

#[test]
fn truth_as_json_lines() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("nd");
    generate(&dir, &["--carts", "50", "--truth", "ndjson"]);
    let text = std::fs::read_to_string(dir.join("truth.ndjson")).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let totals = &lines.last().unwrap()["totals"];
    assert_eq!(totals["carts"].as_u64().unwrap() as usize, lines.len() - 1);
}

/// Carts that start so near the end that none of their spans has ended by then are in
/// neither the export nor the truth, and the summary says how many of those asked: 200 carts
/// over a one-second window, most of whose first calls end after it.
#[test]
fn carts_with_nothing_ended_by_the_end_are_counted_as_asked_and_left_out() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("late");
    let o = cartscope(&[
        "generate",
        "--carts",
        "200",
        "--window",
        "1s",
        "--out",
        dir.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let t = truth(&dir);
    let listed = t["carts"].as_array().unwrap().len() as u64;
    assert!(listed < 200, "{listed}");
    assert_eq!(t["generator"]["carts"], 200);
    let first = stdout(&o).lines().next().unwrap().to_string();
    assert!(
        first.starts_with(&format!(
            "generated {listed} carts ({} of the 200 asked start too near the end",
            200 - listed
        )),
        "{first}"
    );
    // Every cart the truth lists has a span in the export.
    let traces = std::fs::read_to_string(dir.join("otlp/traces.jsonl")).unwrap();
    for c in t["carts"].as_array().unwrap() {
        let id = c["cart_id"].as_str().unwrap();
        assert!(traces.contains(&format!("\"{id}\"")), "{id}");
    }
}

#[test]
fn bad_arguments_say_what_to_do() {
    let tmp = tempfile::tempdir().unwrap();
    for (args, needle) in [
        (vec!["--carts", "5"], "between 10 and 10000000"),
        (
            vec!["--carts", "100", "--incident", "fire:10:00-11:00"],
            "unknown kind 'fire'",
        ),
        (vec!["--carts", "100", "--window", "3x"], "--window"),
        (vec!["--carts", "100", "--end", "yesterday"], "--end"),
    ] {
        let o = cmd()
            .arg("generate")
            .arg("--out")
            .arg(tmp.path().join("x"))
            .args(&args)
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(needle), "{args:?}: {err}");
    }
}

/// sample-data/ is exactly what the command in its README makes, so it never drifts from the
/// generator (regenerate it with that command when the workload changes on purpose).
#[test]
fn sample_data_is_what_its_readme_says() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("s");
    generate(
        &dir,
        &[
            "--carts",
            "3000",
            "--seed",
            "7",
            "--incident",
            "shipping-slow:02:00-05:00",
            "--incident",
            "bad-deploy:08:00-10:00",
            "--incident",
            "payment-errors:2026-11-19T18:00:00Z-2026-11-19T20:00:00Z",
        ],
    );
    let sample = root("sample-data");
    for f in [
        "otlp/traces.jsonl",
        "otlp/metrics.jsonl",
        "otlp/logs.jsonl",
        "truth.json",
    ] {
        let want = std::fs::read(sample.join(f)).unwrap();
        let got = std::fs::read(dir.join(f)).unwrap();
        assert!(
            want == got,
            "sample-data/{f} differs from what its README's command makes"
        );
    }
    for f in ["traces", "metrics", "logs"] {
        let gz = std::fs::File::open(sample.join(format!("otlp-gzip/{f}.jsonl.gz"))).unwrap();
        let mut text = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(gz), &mut text).unwrap();
        assert!(
            text == std::fs::read(sample.join(format!("otlp/{f}.jsonl"))).unwrap(),
            "otlp-gzip/{f}"
        );
    }
}
