//! Sampled traces against complete metrics (issue 20): `generate --sample-rate` and
//! `--tail-sample`, and the report's reconciliation of the transitions the metrics counted
//! with those the traces show.
//! Data: `cartscope generate` exports sampled by it (the truth and the metrics complete); the
//! same exports reshaped by the tests into what cartscope never writes: cumulative counters
//! with a process restart, an hour of traces lost; and the real Python SDK's own counter and
//! ratio sampler (tests/fixtures/real-sdk/py-metrics, py-sampled).

use std::path::Path;

use serde_json::Value;

use crate::util::*;

fn report_json(data: &str, extra: &[&str]) -> Value {
    let mut args = vec!["report", "--data", data, "-f", "json"];
    args.extend_from_slice(extra);
    let o = cartscope(&args);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    serde_json::from_slice(&o.stdout).unwrap()
}

fn stage<'a>(r: &'a Value, name: &str) -> &'a Value {
    r["reconciliation"]["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["stage"] == name)
        .unwrap_or_else(|| panic!("no stage {name} in {}", r["reconciliation"]))
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

/// Every span of a generated traces file, its JSON lines rewritten by `keep`.
fn rewrite_spans(from: &Path, to: &Path, keep: impl Fn(&Value) -> bool) -> (usize, usize) {
    let (mut kept, mut dropped) = (0, 0);
    let mut out = String::new();
    for line in std::fs::read_to_string(from).unwrap().lines() {
        let mut doc: Value = serde_json::from_str(line).unwrap();
        for rs in doc["resourceSpans"].as_array_mut().unwrap() {
            for ss in rs["scopeSpans"].as_array_mut().unwrap() {
                let spans = ss["spans"].as_array_mut().unwrap();
                let before = spans.len();
                spans.retain(&keep);
                kept += spans.len();
                dropped += before - spans.len();
            }
        }
        out.push_str(&doc.to_string());
        out.push('\n');
    }
    std::fs::write(to, out).unwrap();
    (kept, dropped)
}

/// At a 25% head sample (10,000 carts, seed 3), the kept spans carry OpenTelemetry's
/// threshold `ot=th:c` in their tracestate, the metrics and the truth stay whole, and the
/// reconciliation recovers the rate within 2 points, calls the sampling uniform, and shows
/// the first stage (filled by several adds) covered more often than one trace in four.
#[test]
fn a_uniform_sample_is_recognised_and_its_rate_recovered() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("s25");
    generate(
        &dir,
        &["--carts", "10000", "--seed", "3", "--sample-rate", "0.25"],
    );
    let traces = std::fs::read_to_string(dir.join("otlp/traces.jsonl")).unwrap();
    let states: std::collections::BTreeSet<&str> = traces
        .match_indices("\"traceState\":\"")
        .map(|(i, m)| {
            let rest = &traces[i + m.len()..];
            &rest[..rest.find('"').unwrap()]
        })
        .collect();
    assert_eq!(states.into_iter().collect::<Vec<_>>(), vec!["ot=th:c"]);
    let truth: Value =
        serde_json::from_slice(&std::fs::read(dir.join("truth.json")).unwrap()).unwrap();
    let t = &truth["totals"];
    assert_eq!(t["carts"], 10000);
    let (all, exported) = (
        t["spans"].as_u64().unwrap() + t["noise_spans"].as_u64().unwrap(),
        t["exported_spans"].as_u64().unwrap(),
    );
    let share = exported as f64 / all as f64;
    assert!(
        (share - 0.25).abs() < 0.02,
        "{exported} of {all} spans kept"
    );
    assert_eq!(truth["generator"]["sampling"], "head, probability 0.25");

    let r = report_json(&dir.join("otlp").display().to_string(), &[]);
    let rc = &r["reconciliation"];
    assert_eq!(rc["verdict"], "uniform", "{rc}");
    let p = f(&rc["coverage"]);
    assert!((p - 0.25).abs() <= 0.02, "estimated {p}");
    assert!(rc["summary"]
        .as_str()
        .unwrap()
        .contains("uniformly sampled at about 2"));
    for s in ["checkout", "completed"] {
        let c = f(&stage(&r, s)["coverage"]);
        let [lo, hi] = [
            f(&stage(&r, s)["coverage_ci95"][0]),
            f(&stage(&r, s)["coverage_ci95"][1]),
        ];
        assert!(lo <= 0.25 && 0.25 <= hi, "{s}: {c} ({lo} to {hi})");
    }
    // The metrics are whole: one transition into the first stage per cart of the window.
    let active = stage(&r, "active");
    assert!(f(&active["metric_transitions"]) >= 9_900.0, "{active}");
    assert!(f(&active["coverage"]) > 0.4, "{active}");
    assert!(rc["gaps"].as_array().unwrap().is_empty(), "{rc}");
    // The text report says so in its own section.
    let o = cartscope(&["report", "--data", &dir.join("otlp").display().to_string()]);
    let text = stdout(&o);
    assert!(text.contains("Data completeness"), "{text}");
    assert!(text.contains("uniformly sampled at about"), "{text}");
}

/// A tail sampler keeping errors, slow traces and 10% of the rest (10,000 carts, seed 1,
/// a slow-shipping and a payment-errors incident) keeps checkouts that went wrong far more
/// often than those that completed: the reconciliation calls it uneven, and says it biases
/// the rate; the unsampled export of the same seed is complete.
#[test]
fn a_tail_sample_is_flagged_as_uneven_and_a_whole_export_as_complete() {
    let tmp = tempfile::tempdir().unwrap();
    let incidents = [
        "--incident",
        "shipping-slow:06:00-09:00",
        "--incident",
        "payment-errors:14:00-16:00",
    ];
    let tail = tmp.path().join("tail");
    let mut args = vec![
        "--carts",
        "10000",
        "--seed",
        "1",
        "--tail-sample",
        "keep-errors,keep-slow,rate=0.1",
    ];
    args.extend_from_slice(&incidents);
    generate(&tail, &args);
    let traces = std::fs::read_to_string(tail.join("otlp/traces.jsonl")).unwrap();
    assert!(
        !traces.contains("traceState"),
        "a tail sampler writes no threshold"
    );
    let r = report_json(&tail.join("otlp").display().to_string(), &[]);
    let rc = &r["reconciliation"];
    assert_eq!(rc["verdict"], "uneven", "{rc}");
    assert!(rc["summary"]
        .as_str()
        .unwrap()
        .contains("biases the abandonment rate"));
    let (checkout, completed) = (
        f(&stage(&r, "checkout")["coverage"]),
        f(&stage(&r, "completed")["coverage"]),
    );
    assert!(
        checkout > completed + 0.05,
        "{checkout} against {completed}"
    );

    let whole = tmp.path().join("whole");
    let mut args = vec!["--carts", "2000", "--seed", "1"];
    args.extend_from_slice(&incidents);
    generate(&whole, &args);
    let r = report_json(&whole.join("otlp").display().to_string(), &[]);
    let rc = &r["reconciliation"];
    assert_eq!(rc["verdict"], "complete", "{rc}");
    for s in rc["stages"].as_array().unwrap() {
        assert!(f(&s["coverage"]) >= 0.98, "{s}");
    }
}

/// An hour of traces lost (an exporter down: every span starting 10:00-11:00 removed from a
/// whole export of 3,000 carts) is reported as a gap with its hours; the metrics of that hour
/// are still there. `check` bounds the coverage: `trace_coverage` of at least 0.9 passes on
/// the whole export and fails on a 25% sample, naming the figure.
#[test]
fn a_lost_hour_of_traces_is_a_gap_and_check_bounds_the_coverage() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("whole");
    generate(&dir, &["--carts", "3000", "--seed", "5"]);
    let cut = tmp.path().join("cut");
    std::fs::create_dir_all(&cut).unwrap();
    let (from, until) = (
        1_795_168_800_000_000_000u64, // 2026-11-20T10:00:00Z
        1_795_172_400_000_000_000u64,
    );
    let (_, dropped) = rewrite_spans(
        &dir.join("otlp/traces.jsonl"),
        &cut.join("traces.jsonl"),
        |s| {
            let start: u64 = s["startTimeUnixNano"].as_str().unwrap().parse().unwrap();
            !(from..until).contains(&start)
        },
    );
    assert!(dropped > 100, "{dropped}");
    std::fs::copy(dir.join("otlp/metrics.jsonl"), cut.join("metrics.jsonl")).unwrap();
    let r = report_json(&cut.display().to_string(), &[]);
    let rc = &r["reconciliation"];
    assert_eq!(rc["verdict"], "gap", "{rc}");
    let gaps = rc["gaps"].as_array().unwrap();
    assert_eq!(gaps.len(), 1, "{rc}");
    assert_eq!(gaps[0]["from"], "2026-11-20T10:00:00Z");
    assert_eq!(gaps[0]["until"], "2026-11-20T11:00:00Z");
    assert_eq!(gaps[0]["missing"], "traces");
    let hour = rc["hours"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["hour"] == "2026-11-20T10:00:00Z")
        .unwrap();
    assert!(
        f(&hour["metric_transitions"]) > 50.0 && hour["trace_transitions"] == 0,
        "{hour}"
    );

    // check: the overall coverage and one stage's.
    let rules = tmp.path().join("rules.toml");
    std::fs::write(
        &rules,
        "[[rule]]\nname = \"traces complete\"\nmeasure = \"trace_coverage\"\nmin = 0.9\n\n\
         [[rule]]\nname = \"checkouts traced\"\nmeasure = \"trace_coverage\"\nstage = \"checkout\"\nmin = 0.9\n",
    )
    .unwrap();
    let check = |data: &Path| {
        cartscope(&[
            "check",
            "--data",
            &data.display().to_string(),
            "--rules",
            rules.to_str().unwrap(),
        ])
    };
    let o = check(&dir.join("otlp"));
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    let s25 = tmp.path().join("s25");
    generate(
        &s25,
        &["--carts", "3000", "--seed", "5", "--sample-rate", "0.25"],
    );
    let o = check(&s25.join("otlp"));
    assert_eq!(o.status.code(), Some(1), "{}{}", stdout(&o), stderr(&o));
    let said = stdout(&o);
    assert!(
        said.contains("traces complete") && said.contains("checkouts traced"),
        "{said}"
    );
}

/// The same transitions written as cumulative counters, as most SDKs export them by default,
/// with the process restarted at 09:30 (a new start time, counting from zero again): the
/// reconciliation counts exactly what the delta export counted, stage by stage.
#[test]
fn cumulative_counters_with_a_restart_count_as_the_deltas_do() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("whole");
    generate(&dir, &["--carts", "2000", "--seed", "9"]);
    let restart = 1_795_167_000_000_000_000u64; // 2026-11-20T09:30:00Z
    let mut totals: std::collections::HashMap<String, (u64, u64)> = Default::default();
    let mut out = String::new();
    let mut points = 0;
    for line in std::fs::read_to_string(dir.join("otlp/metrics.jsonl"))
        .unwrap()
        .lines()
    {
        let mut doc: Value = serde_json::from_str(line).unwrap();
        for rm in doc["resourceMetrics"].as_array_mut().unwrap() {
            for sm in rm["scopeMetrics"].as_array_mut().unwrap() {
                for m in sm["metrics"].as_array_mut().unwrap() {
                    if m["name"] != "cart.state.transitions" {
                        continue;
                    }
                    m["sum"]["aggregationTemporality"] = 2.into();
                    for p in m["sum"]["dataPoints"].as_array_mut().unwrap() {
                        let key = p["attributes"].to_string();
                        let t: u64 = p["timeUnixNano"].as_str().unwrap().parse().unwrap();
                        let n: u64 = p["asInt"].as_str().unwrap().parse().unwrap();
                        let (start, total) = totals.entry(key).or_insert((0, 0));
                        if *start < restart && t > restart {
                            // The process restarted: a new series from zero.
                            *start = restart;
                            *total = 0;
                        }
                        if *start == 0 {
                            // The first run began at the window's start.
                            *start = 1_795_089_600_000_000_000; // 2026-11-19T12:00:00Z
                        }
                        *total += n;
                        p["startTimeUnixNano"] = start.to_string().into();
                        p["asInt"] = total.to_string().into();
                        points += 1;
                    }
                }
            }
        }
        out.push_str(&doc.to_string());
        out.push('\n');
    }
    assert!(points > 1000, "{points}");
    let cum = tmp.path().join("cumulative");
    std::fs::create_dir_all(&cum).unwrap();
    std::fs::write(cum.join("metrics.jsonl"), out).unwrap();
    std::fs::copy(dir.join("otlp/traces.jsonl"), cum.join("traces.jsonl")).unwrap();
    let delta = report_json(&dir.join("otlp").display().to_string(), &[]);
    let cumulative = report_json(&cum.display().to_string(), &[]);
    let stages = |r: &Value| {
        r["reconciliation"]["stages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| (s["stage"].clone(), s["metric_transitions"].clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(stages(&cumulative), stages(&delta));
    assert_eq!(cumulative["reconciliation"]["verdict"], "complete");
    let hours = |r: &Value| r["reconciliation"]["hours"].clone();
    assert_eq!(hours(&cumulative), hours(&delta));
}

/// The real Python SDK's own cumulative counter (`py-metrics`: 300 carts, every trace) against
/// its traces: every stage's transitions are those truth.py counted off the plan, and the
/// traces hold them all. Then the SDK's own ratio sampler (`py-sampled`: 2,000 carts,
/// `ParentBased(TraceIdRatioBased(0.25))`, the counter unsampled): the rate is recovered
/// within 2 points and the sampling called uniform. Neither was written by cartscope.
#[test]
fn the_real_sdk_s_counter_and_sampler_are_reconciled() {
    for (kind, rate) in [("py-metrics", 1.0), ("py-sampled", 0.25)] {
        let dir = fixture(&format!("real-sdk/{kind}"));
        let truth: Value =
            serde_json::from_slice(&std::fs::read(dir.join("truth.json")).unwrap()).unwrap();
        let o = cartscope(&[
            "report",
            "--data",
            &dir.join("traces.jsonl.gz").display().to_string(),
            "--data",
            &dir.join("metrics.jsonl.gz").display().to_string(),
            "-f",
            "json",
        ]);
        assert_eq!(o.status.code(), Some(0), "{kind}: {}", stderr(&o));
        let r: Value = serde_json::from_slice(&o.stdout).unwrap();
        let rc = &r["reconciliation"];
        for (name, n) in truth["totals"]["transitions"].as_object().unwrap() {
            assert_eq!(
                f(&stage(&r, name)["metric_transitions"]),
                f(n),
                "{kind} {name}: {rc}"
            );
        }
        if rate == 1.0 {
            assert_eq!(rc["verdict"], "complete", "{kind}: {rc}");
            for s in rc["stages"].as_array().unwrap() {
                assert_eq!(
                    f(&s["trace_transitions"]),
                    f(&s["metric_transitions"]),
                    "{kind}: {s}"
                );
            }
        } else {
            assert_eq!(rc["verdict"], "uniform", "{kind}: {rc}");
            let p = f(&rc["coverage"]);
            assert!((p - rate).abs() <= 0.02, "{kind}: estimated {p}");
        }
        eprintln!("{kind}: {} ({})", rc["verdict"], rc["summary"]);
    }
}
