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

/// At a 25% head sample (5,000 carts, seed 3), the kept spans carry OpenTelemetry's
/// threshold `ot=th:c` in their tracestate, the metrics and the truth stay whole, and the
/// reconciliation recovers the rate within 2 points, calls the sampling uniform, and shows
/// the first stage (filled by several adds) covered more often than one trace in four. The
/// report reads the threshold: each cart counts for 4, the carts abandoned before checkout
/// (whose checkout would be a trace of its own) have an incomplete trace, and the rate from
/// the metrics falls within the truth's 95% interval where the traced rate does not.
#[test]
fn a_uniform_sample_is_recognised_and_its_rate_recovered() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("s25");
    generate(
        &dir,
        &["--carts", "5000", "--seed", "3", "--sample-rate", "0.25"],
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
    assert_eq!(t["carts"], 5000);
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
    assert!(f(&active["metric_transitions"]) >= 4_950.0, "{active}");
    assert!(f(&active["coverage"]) > 0.4, "{active}");
    assert!(rc["gaps"].as_array().unwrap().is_empty(), "{rc}");

    let sa = &r["sampling"];
    assert_eq!(sa["source"], "tracestate", "{sa}");
    assert_eq!(f(&sa["probability"]), 0.25, "{sa}");
    assert_eq!(sa["method"], "metrics", "{sa}");
    let s = &r["summary"];
    assert_eq!(f(&sa["converted_estimated"]), 4.0 * f(&s["converted"]));
    let incomplete = sa["abandoned_incomplete"].as_u64().unwrap();
    assert!(
        incomplete > 0 && incomplete < s["abandoned"].as_u64().unwrap(),
        "{sa}"
    );
    let (truth_rate, [lo, hi]) = truth_rate(&truth);
    let traced = f(&s["abandonment_rate"]);
    let est = f(&sa["abandonment_rate"]);
    let [elo, ehi] = [
        f(&sa["abandonment_rate_ci95"][0]),
        f(&sa["abandonment_rate_ci95"][1]),
    ];
    eprintln!(
        "25% sample: truth {truth_rate} ({lo} to {hi}); traced {traced}; from the metrics {est} ({elo} to {ehi}); weighted {} with the incomplete carts, {} without",
        sa["rate_with_incomplete"], sa["rate_without_incomplete"]
    );
    assert!(
        lo <= est && est <= hi,
        "estimate {est} outside the truth's interval"
    );
    assert!(elo <= truth_rate && truth_rate <= ehi, "truth outside {sa}");
    assert!(
        traced > hi,
        "the traced rate {traced} is biased, as the test expects"
    );
    // The bounds without a counter hold the truth.
    assert!(f(&sa["rate_without_incomplete"]) < truth_rate);
    assert!(f(&sa["rate_with_incomplete"]) > truth_rate);

    // The weighted funnel: the counter's count where it counts a stage, else each cart's
    // entry weighted by its trace's adjusted count (4), within three standard errors of the
    // truth's (a Horvitz-Thompson count of n at p has variance n(1-p)/p).
    let funnel = weighted(&r, "funnel");
    let stages: Vec<&str> = funnel.iter().map(|(s, _)| *s).collect();
    let reached = truth_reached(&truth, &stages);
    let mut from_traces = 0;
    for ((name, row), truth_n) in funnel.iter().zip(&reached) {
        let est = f(&row["carts"]);
        eprintln!(
            "25% sample: funnel {name}: truth {truth_n}, weighted {est} ({})",
            row["source"]
        );
        if row["source"] == "metrics" {
            assert_eq!(est, f(&stage(&r, name)["metric_transitions"]), "{row}");
        } else {
            from_traces += 1;
            assert_eq!(row["at_most"], false, "{row}");
            assert!(
                (est - truth_n).abs() <= 3.0 * (truth_n * 3.0).sqrt(),
                "{name}: {est} against {truth_n}"
            );
        }
    }
    assert!(from_traces >= 2, "{funnel:?}");
    // Each kept span stands for 4, and so does each abandoned cart with a named cause.
    let ops = weighted(&r, "operations");
    assert!(ops.len() >= 5, "{ops:?}");
    for (name, o) in &ops {
        assert_eq!(f(&o["spans_estimated"]), 4.0 * f(&o["spans"]), "{name}");
    }
    for name in ["slow_response", "error"] {
        let (n, est) = (
            f(&truth["totals"]["causes"][name]),
            cause(&r["weighted"]["causes"], name),
        );
        eprintln!(
            "25% sample: cause {name}: truth {n}, weighted {est}, traced {}",
            cause(&r["causes"], name)
        );
        assert!(
            (est - n).abs() <= 3.0 * (n * 3.0).sqrt(),
            "{name}: {est} against {n}"
        );
    }

    // The text report says so in its own sections.
    let o = cartscope(&["report", "--data", &dir.join("otlp").display().to_string()]);
    let text = stdout(&o);
    assert!(text.contains("Data completeness"), "{text}");
    assert!(text.contains("uniformly sampled at about"), "{text}");
    assert!(
        text.contains("adjusted for it, the abandonment rate is"),
        "{text}"
    );
    assert!(text.contains("abandoned, incomplete trace"), "{text}");
    assert!(text.contains("but the traces are sampled"), "{text}");
    assert!(text.contains("Operations, weighted"), "{text}");

    // Without the counter, the threshold still weighs the carts, and the two rates bound it.
    let o = cartscope(&[
        "report",
        "--data",
        &dir.join("otlp/traces.jsonl").display().to_string(),
        "-f",
        "json",
    ]);
    let r: Value = serde_json::from_slice(&o.stdout).unwrap();
    let sa = &r["sampling"];
    assert_eq!(sa["source"], "tracestate", "{sa}");
    assert_eq!(sa["method"], "bounds", "{sa}");
    assert!(sa["abandonment_rate"].is_null(), "{sa}");
    assert!(sa["summary"].as_str().unwrap().contains("lies between"));
}

/// The truth's abandonment rate and its 95% (Wilson) interval, as the report computes it.
fn truth_rate(truth: &Value) -> (f64, [f64; 2]) {
    let t = &truth["totals"];
    let (bad, good) = (
        t["abandoned"].as_u64().unwrap(),
        t["converted"].as_u64().unwrap(),
    );
    let (lo, hi) = cartscope::wilson_interval(bad, bad + good, cartscope::Z_95);
    (bad as f64 / (bad + good) as f64, [lo, hi])
}

/// The report's weighted table `what` (`causes`, `operations`, `funnel`) as rows by name.
fn weighted<'a>(r: &'a Value, what: &str) -> Vec<(&'a str, &'a Value)> {
    let key = match what {
        "operations" => "operation",
        "funnel" => "stage",
        _ => "name",
    };
    r["weighted"][what]
        .as_array()
        .unwrap_or_else(|| panic!("no weighted {what} in {}", r["weighted"]))
        .iter()
        .map(|row| (row[key].as_str().unwrap(), row))
        .collect()
}

/// The truth's carts that reached each of `stages` (in the model's order), by the furthest
/// stage of each (a converted cart's is the last).
fn truth_reached(truth: &Value, stages: &[&str]) -> Vec<f64> {
    let order = |s: &str| stages.iter().position(|x| *x == s).unwrap();
    let furthest: Vec<usize> = truth["carts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| match c["outcome"].as_str() {
            Some("converted") => stages.len() - 1,
            _ => order(c["last_stage"].as_str().unwrap()),
        })
        .collect();
    (0..stages.len())
        .map(|i| furthest.iter().filter(|f| **f >= i).count() as f64)
        .collect()
}

/// The abandoned carts of a cause in a report's `causes` (traced) or weighted causes.
fn cause(rows: &Value, name: &str) -> f64 {
    rows.as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .map_or(0.0, |c| f(&c["carts"]))
}

/// How far a tail sample's operations and causes are from the whole export's, as kept (a
/// report without the policy) and weighted (told it): [kept, weighted] each.
struct Off {
    /// Summed over the operations: |error rate - the whole's|, |log p50 - the whole's|,
    /// |spans - the whole's| / the whole's.
    error_rate: [f64; 2],
    log_p50: [f64; 2],
    spans: [f64; 2],
    /// Summed over the causes: |share of the abandoned carts - the whole's|.
    cause_shares: [f64; 2],
}

impl Off {
    fn of(label: &str, whole: &Value, kept: &Value, told: &Value) -> Off {
        let op = |r: &Value, name: &str| -> Value {
            r["operations"]
                .as_array()
                .unwrap()
                .iter()
                .find(|o| o["operation"] == name)
                .unwrap_or_else(|| panic!("{label}: no {name} in {}", r["operations"]))
                .clone()
        };
        let mut off = Off {
            error_rate: [0.0; 2],
            log_p50: [0.0; 2],
            spans: [0.0; 2],
            cause_shares: [0.0; 2],
        };
        let ops = weighted(told, "operations");
        assert!(!ops.is_empty(), "{label}: {}", told["weighted"]);
        for (name, o) in ops {
            let (w, k) = (op(whole, name), op(kept, name));
            eprintln!(
                "{label}: {name}: error rate whole {}, kept {}, weighted {}; p50 whole {}, kept {}, weighted {}; spans whole {}, kept {}, estimated {}",
                w["error_rate"], k["error_rate"], o["error_rate"],
                w["p50_ms"], k["p50_ms"], o["p50_ms"],
                w["spans"], k["spans"], o["spans_estimated"]
            );
            let err = f(&w["error_rate"]);
            off.error_rate[0] += (f(&k["error_rate"]) - err).abs();
            off.error_rate[1] += (f(&o["error_rate"]) - err).abs();
            let p50 = f(&w["p50_ms"]).ln();
            off.log_p50[0] += (f(&k["p50_ms"]).ln() - p50).abs();
            off.log_p50[1] += (f(&o["p50_ms"]).ln() - p50).abs();
            let n = f(&w["spans"]);
            off.spans[0] += (f(&k["spans"]) - n).abs() / n;
            off.spans[1] += (f(&o["spans_estimated"]) - n).abs() / n;
        }
        let share = |rows: &Value, name: &str| {
            let all: f64 = rows
                .as_array()
                .unwrap()
                .iter()
                .map(|c| f(&c["carts"]))
                .sum();
            cause(rows, name) / all
        };
        for name in ["slow_response", "error", "none"] {
            let truth = share(&whole["causes"], name);
            let (k, est) = (
                share(&kept["causes"], name),
                share(&told["weighted"]["causes"], name),
            );
            eprintln!(
                "{label}: cause {name}: share whole {truth:.4}, kept {k:.4}, weighted {est:.4}"
            );
            off.cause_shares[0] += (k - truth).abs();
            off.cause_shares[1] += (est - truth).abs();
            if name != "none" {
                // Every failed or slow trace was kept: counted once each, as in the whole.
                assert_eq!(
                    cause(&told["weighted"]["causes"], name),
                    cause(&whole["causes"], name),
                    "{label}: {name}"
                );
            }
        }
        for (what, [k, w]) in off.figures() {
            eprintln!("{label}: {what} off the whole's by {k:.4} as kept, {w:.4} weighted");
        }
        off
    }

    fn figures(&self) -> [(&'static str, [f64; 2]); 4] {
        [
            ("operations' error rates", self.error_rate),
            ("operations' log medians", self.log_p50),
            ("operations' span counts", self.spans),
            ("causes' shares", self.cause_shares),
        ]
    }
}

/// A driver's name without the figure in it ("latency above its median (303.12)"), which
/// differs from one export to another.
fn driver_name(d: &Value) -> String {
    let name = d["driver"].as_str().unwrap();
    match name.rsplit_once(" (") {
        Some((head, tail)) if tail.trim_end_matches(')').parse::<f64>().is_ok() => head.into(),
        _ => name.into(),
    }
}

/// At a 25% head sample, the top drivers' relative risks agree with the unsampled truth's:
/// for four seeds (5,000 carts each, sampled and whole), the three leading significant
/// drivers of the whole export's report are found in the sampled one, and the whole export's
/// relative risk lies within the sampled report's 95% interval for at least 10 of the 12
/// (a 95% interval misses one in twenty). Each sampled report's rate (from the metrics) lies
/// within the truth's interval. The drivers are judged on the carts whose outcome is known:
/// counting the carts that may have gone on in a dropped checkout trace as abandoned would
/// make any attribute of the adds look like a driver.
#[test]
fn under_a_uniform_sample_the_drivers_agree_with_the_truth() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut within, mut all) = (0, 0);
    for seed in ["1", "2", "3", "4"] {
        let sampled = tmp.path().join(format!("s{seed}"));
        let whole = tmp.path().join(format!("w{seed}"));
        generate(
            &sampled,
            &["--carts", "5000", "--seed", seed, "--sample-rate", "0.25"],
        );
        generate(&whole, &["--carts", "5000", "--seed", seed]);
        let s = report_json(&sampled.join("otlp").display().to_string(), &[]);
        let w = report_json(&whole.join("otlp").display().to_string(), &[]);
        let truth: Value =
            serde_json::from_slice(&std::fs::read(whole.join("truth.json")).unwrap()).unwrap();
        let (_, [lo, hi]) = truth_rate(&truth);
        let est = f(&s["sampling"]["abandonment_rate"]);
        assert!(
            lo <= est && est <= hi,
            "seed {seed}: {est} outside {lo} to {hi}"
        );
        let top: Vec<&Value> = w["drivers"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| d["significant"] == true)
            .take(3)
            .collect();
        assert_eq!(top.len(), 3, "seed {seed}");
        for d in top {
            let name = driver_name(d);
            let found = s["drivers"]
                .as_array()
                .unwrap()
                .iter()
                .find(|x| driver_name(x) == name)
                .unwrap_or_else(|| panic!("seed {seed}: {name} not among {}", s["drivers"]));
            let rr = f(&d["relative_risk"]);
            let [a, b] = [
                f(&found["relative_risk_ci95"][0]),
                f(&found["relative_risk_ci95"][1]),
            ];
            eprintln!(
                "seed {seed}: {name}: whole {rr} {}, sampled {} [{a}, {b}]",
                d["relative_risk_ci95"], found["relative_risk"]
            );
            all += 1;
            if a <= rr && rr <= b {
                within += 1;
            }
        }
    }
    assert!(
        within >= 10,
        "{within} of {all} within the sampled intervals"
    );
}

/// A tail sampler keeping errors, slow traces and 10% of the rest (10,000 carts, seed 1,
/// a slow-shipping and a payment-errors incident) keeps checkouts that went wrong far more
/// often than those that completed: the reconciliation calls it uneven, and says it biases
/// the rate; the unsampled export of the same carts is complete. The counter gives the rate
/// and the conversions far closer to the truth than the traces as kept; told the sampler's
/// policy (`--trace-sample-policy`), the report weighs each trace by it, and the drivers of
/// a fixed definition (an operation slower than a threshold, or failed) that the whole
/// export finds come far closer to its relative risks than without it. (Those defined by the
/// sample's own latencies, above a median or a p95, are not compared: those figures are the
/// kept spans', which a tail sampler makes slower.)
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
    // The tail sampler records no probability: each stage's coverage stands in for it, and
    // the counter gives the rate. Both are closer to the truth than the traces as kept.
    let truth: Value =
        serde_json::from_slice(&std::fs::read(tail.join("truth.json")).unwrap()).unwrap();
    let (truth_rate, [lo, hi]) = truth_rate(&truth);
    let sa = &r["sampling"];
    assert_eq!(sa["source"], "metrics", "{sa}");
    let (est, traced) = (
        f(&sa["abandonment_rate"]),
        f(&r["summary"]["abandonment_rate"]),
    );
    let (conv, conv_est, conv_traced) = (
        f(&truth["totals"]["converted"]),
        f(&sa["converted_estimated"]),
        f(&r["summary"]["converted"]),
    );
    eprintln!(
        "tail sample: rate truth {truth_rate:.4}, traced {traced:.4} ({:+.4}), weighted {est:.4} ({:+.4}); converted truth {conv}, traced {conv_traced}, weighted {conv_est}",
        traced - truth_rate,
        est - truth_rate
    );
    assert!(lo <= est && est <= hi, "{est} outside {lo} to {hi}");
    assert!((est - truth_rate).abs() * 5.0 < (traced - truth_rate).abs());
    assert!((conv_est - conv).abs() * 5.0 < (conv_traced - conv).abs());

    let tail_data = tail.join("otlp").display().to_string();
    let policy = report_json(
        &tail_data,
        &["--trace-sample-policy", "keep-errors,keep-slow,rate=0.1"],
    );
    assert_eq!(
        policy["sampling"]["source"], "flag",
        "{}",
        policy["sampling"]
    );
    assert!(policy["sampling"]["summary"]
        .as_str()
        .unwrap()
        .contains("--trace-sample-policy"));

    let whole = tmp.path().join("whole");
    let mut args = vec!["--carts", "10000", "--seed", "1"];
    args.extend_from_slice(&incidents);
    generate(&whole, &args);
    let w = report_json(&whole.join("otlp").display().to_string(), &[]);
    let rc = &w["reconciliation"];
    assert_eq!(rc["verdict"], "complete", "{rc}");
    for s in rc["stages"].as_array().unwrap() {
        assert!(f(&s["coverage"]) >= 0.98, "{s}");
    }
    assert!(w.get("sampling").is_none(), "{}", w["sampling"]);

    // Told the policy, each span counts for its own trace's adjusted count (1 for a kept
    // failed or slow trace, 10 for the rest): the operations' error rates and medians, and
    // the abandoned carts of each cause, come back to the whole export's, where the traces
    // as kept make failures and slow quotes look several times as common. Untold, spans have
    // no probability to carry and the weighted operations are left out.
    assert_eq!(
        r["weighted"]["operations"],
        serde_json::json!([]),
        "{}",
        r["weighted"]
    );
    let off = Off::of("tail sample", &w, &r, &policy);
    for (what, [kept, weighted]) in off.figures() {
        assert!(weighted * 5.0 < kept, "{what}: {weighted} against {kept}");
    }

    // The drivers of a fixed definition, by how far (log relative risk) each report is from
    // the whole's.
    let rr = |r: &Value, name: &str| -> f64 {
        let d = r["drivers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| driver_name(d) == name)
            .unwrap_or_else(|| panic!("no {name} in {}", r["drivers"]));
        f(&d["relative_risk"])
    };
    let (mut off_unweighted, mut off_weighted, mut compared) = (0.0, 0.0, 0);
    for d in w["drivers"].as_array().unwrap().iter().filter(|d| {
        let name = d["driver"].as_str().unwrap();
        d["significant"] == true
            && ((name.contains(" slower than ") && name.ends_with(" ms"))
                || name.ends_with(" failed"))
    }) {
        compared += 1;
        let name = driver_name(d);
        let (truth, kept, weighted) = (f(&d["relative_risk"]), rr(&r, &name), rr(&policy, &name));
        eprintln!("tail sample: {name}: whole {truth}, as kept {kept}, weighted {weighted}");
        off_unweighted += (kept.ln() - truth.ln()).abs();
        off_weighted += (weighted.ln() - truth.ln()).abs();
    }
    eprintln!(
        "tail sample: {compared} drivers' log relative risks are {off_unweighted:.3} from the whole's as kept, {off_weighted:.3} weighted"
    );
    assert!(compared >= 3, "{compared}");
    assert!(off_weighted * 3.0 < off_unweighted);
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
            assert!(r.get("sampling").is_none(), "{kind}: {}", r["sampling"]);
        } else {
            assert_eq!(rc["verdict"], "uniform", "{kind}: {rc}");
            let p = f(&rc["coverage"]);
            assert!((p - rate).abs() <= 0.02, "{kind}: estimated {p}");
            // The SDK's sampler writes no threshold: the counter stands in, and gives the
            // rate within the truth's interval, where the traces overstate it.
            let sa = &r["sampling"];
            assert_eq!(sa["source"], "metrics", "{sa}");
            let (truth_rate, [lo, hi]) = truth_rate(&truth);
            let est = f(&sa["abandonment_rate"]);
            eprintln!(
                "{kind}: truth {truth_rate:.4} ({lo:.4} to {hi:.4}), traced {}, from the metrics {est}",
                r["summary"]["abandonment_rate"]
            );
            assert!(lo <= est && est <= hi, "{kind}: {sa}");
            assert!(f(&r["summary"]["abandonment_rate"]) > hi);
            // Nothing records p: each stage's coverage stands in, so the funnel's metered
            // stages are the counter's, and the named causes' abandoned carts come far closer
            // to the truth's than as kept.
            for (name, row) in weighted(&r, "funnel") {
                if row["source"] == "metrics" {
                    assert_eq!(
                        f(&row["carts"]),
                        f(&truth["totals"]["transitions"][name]),
                        "{row}"
                    );
                }
            }
            let (mut kept_off, mut weighted_off) = (0.0, 0.0);
            for name in ["slow_response", "error"] {
                let n = f(&truth["totals"]["causes"][name]);
                let (kept, est) = (
                    cause(&r["causes"], name),
                    cause(&r["weighted"]["causes"], name),
                );
                eprintln!("{kind}: cause {name}: truth {n}, kept {kept}, weighted {est}");
                kept_off += (kept - n).abs();
                weighted_off += (est - n).abs();
            }
            assert!(
                weighted_off * 3.0 < kept_off,
                "{weighted_off} against {kept_off}"
            );
        }
        eprintln!("{kind}: {} ({})", rc["verdict"], rc["summary"]);
    }
}

/// `--trace-sample-rate` gives the probability where the spans record none (the real Python
/// SDK's sampler, `py-sampled`): each cart counts for 1/P; a probability it cannot be is
/// refused, naming the flag.
#[test]
fn trace_sample_rate_weighs_the_carts_of_a_sampler_that_records_nothing() {
    let dir = fixture("real-sdk/py-sampled");
    let data = dir.display().to_string();
    let r = report_json(&data, &["--trace-sample-rate", "0.25"]);
    let sa = &r["sampling"];
    assert_eq!(sa["source"], "flag", "{sa}");
    assert_eq!(f(&sa["probability"]), 0.25);
    assert_eq!(
        f(&sa["converted_estimated"]),
        4.0 * f(&r["summary"]["converted"])
    );
    // A CI gate on the rate: the adjusted one passes where the traced one fails.
    let tmp = tempfile::tempdir().unwrap();
    let rules = tmp.path().join("rules.toml");
    std::fs::write(
        &rules,
        "[[rule]]\nmeasure = \"abandonment_rate_adjusted\"\nmax = 0.70\n\n\
         [[rule]]\nmeasure = \"abandonment_rate\"\nmax = 0.70\n",
    )
    .unwrap();
    let o = cartscope(&[
        "check",
        "--data",
        &data,
        "--rules",
        &rules.display().to_string(),
        "-f",
        "json",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    let passed: Vec<(String, bool)> = v["verdicts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["measure"].as_str().unwrap_or("").to_string(),
                r["passed"] == true,
            )
        })
        .collect();
    assert_eq!(
        passed,
        vec![
            ("abandonment_rate_adjusted".to_string(), true),
            ("abandonment_rate".to_string(), false)
        ],
        "{v}"
    );
    for bad in ["0", "1.5", "-0.25", "a quarter"] {
        let o = cartscope(&["report", "--data", &data, "--trace-sample-rate", bad]);
        assert_eq!(o.status.code(), Some(2), "{bad}");
        let e = stderr(&o);
        assert!(
            e.contains("--trace-sample-rate") && e.contains("above 0 and at most 1"),
            "{bad}: {e}"
        );
    }
}

/// A sampler that records its adjusted count on each span (Honeycomb's `SampleRate`, one of
/// the model's `adjusted_count` keys), in an export whose tracestate says nothing and with no
/// counter: the report reads the attribute. A count below 1 is no count, and is ignored.
#[test]
fn an_adjusted_count_attribute_weighs_the_carts() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("s25");
    generate(
        &dir,
        &["--carts", "1000", "--seed", "7", "--sample-rate", "0.25"],
    );
    let traces = std::fs::read_to_string(dir.join("otlp/traces.jsonl")).unwrap();
    for (count, source) in [("4", "attribute"), ("0.5", "")] {
        let out = tmp.path().join(format!("adjusted-{count}.jsonl"));
        std::fs::write(
            &out,
            traces.replace("ot=th:c", "").replace(
                "\"attributes\":[",
                &format!(
                    "\"attributes\":[{{\"key\":\"SampleRate\",\"value\":{{\"doubleValue\":{count}}}}},"
                ),
            ),
        )
        .unwrap();
        let r = report_json(&out.display().to_string(), &[]);
        if source.is_empty() {
            assert!(r.get("sampling").is_none(), "{}", r["sampling"]);
            continue;
        }
        let sa = &r["sampling"];
        assert_eq!(sa["source"], source, "{sa}");
        assert_eq!(f(&sa["probability"]), 0.25, "{sa}");
        assert_eq!(sa["method"], "bounds", "{sa}");
    }
}

/// A tail sample of a real SDK's export, made here as a Collector's tail sampler would
/// (`keep-errors,keep-slow,rate=0.1`: every trace with a failed span or one of 2 s or more,
/// and a tenth of the rest by the low 56 bits of the trace id) from the Python SDK's whole
/// export of 2,000 carts (tests/fixtures/real-sdk/py-whole; its trace ids base64, as
/// protobuf's JSON mapping writes them). Told the policy, the report weighs each span and
/// cart back: the operations' error rates, medians and span counts, and the causes' shares,
/// each at least three times closer to the whole export's than as kept.
#[test]
fn a_tail_sample_of_the_real_sdk_s_export_is_weighted_back_by_its_policy() {
    use base64::Engine as _;
    use std::io::Read as _;
    let dir = fixture("real-sdk/py-whole");
    let mut text = String::new();
    flate2::read::GzDecoder::new(std::fs::File::open(dir.join("traces.jsonl.gz")).unwrap())
        .read_to_string(&mut text)
        .unwrap();
    let docs: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let spans = |d: &Value| -> Vec<Value> {
        let mut out = Vec::new();
        for rs in d["resourceSpans"].as_array().unwrap() {
            for ss in rs["scopeSpans"].as_array().unwrap() {
                out.extend(ss["spans"].as_array().unwrap().iter().cloned());
            }
        }
        out
    };
    let nanos = |v: &Value| -> u64 { v.as_str().unwrap().parse().unwrap() };
    let mut notable = std::collections::BTreeSet::new();
    for s in docs.iter().flat_map(spans) {
        let failed = matches!(&s["status"]["code"], Value::Number(n) if n.as_u64() == Some(2))
            || s["status"]["code"] == "STATUS_CODE_ERROR";
        let slow = nanos(&s["endTimeUnixNano"]) - nanos(&s["startTimeUnixNano"]) >= 2_000_000_000;
        if failed || slow {
            notable.insert(s["traceId"].as_str().unwrap().to_string());
        }
    }
    let kept = |s: &Value| {
        let id = s["traceId"].as_str().unwrap();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(id)
            .unwrap();
        assert_eq!(bytes.len(), 16, "{id}");
        let low56 = bytes[9..].iter().fold(0u64, |a, b| (a << 8) | *b as u64);
        notable.contains(id) || (low56 as f64) < 0.1 * (1u64 << 56) as f64
    };
    let tmp = tempfile::tempdir().unwrap();
    let mut out = String::new();
    let (mut n_kept, mut n_all) = (0, 0);
    for mut d in docs {
        for rs in d["resourceSpans"].as_array_mut().unwrap() {
            for ss in rs["scopeSpans"].as_array_mut().unwrap() {
                let spans = ss["spans"].as_array_mut().unwrap();
                n_all += spans.len();
                spans.retain(kept);
                n_kept += spans.len();
            }
        }
        out.push_str(&d.to_string());
        out.push('\n');
    }
    eprintln!(
        "real SDK tail sample: {n_kept} of {n_all} spans kept, {} notable traces",
        notable.len()
    );
    assert!(
        n_kept * 4 < n_all && n_kept > n_all / 20,
        "{n_kept} of {n_all}"
    );
    std::fs::write(tmp.path().join("traces.jsonl"), out).unwrap();
    std::fs::copy(
        dir.join("metrics.jsonl.gz"),
        tmp.path().join("metrics.jsonl.gz"),
    )
    .unwrap();

    let sample = tmp.path().display().to_string();
    let whole = report_json(&dir.display().to_string(), &[]);
    assert!(whole.get("sampling").is_none(), "{}", whole["sampling"]);
    let untold = report_json(&sample, &[]);
    assert_eq!(untold["weighted"]["operations"], serde_json::json!([]));
    let told = report_json(
        &sample,
        &["--trace-sample-policy", "keep-errors,keep-slow,rate=0.1"],
    );
    assert_eq!(told["sampling"]["source"], "flag", "{}", told["sampling"]);
    let off = Off::of("real SDK tail sample", &whole, &untold, &told);
    for (what, [kept, weighted]) in off.figures() {
        assert!(weighted * 3.0 < kept, "{what}: {weighted} against {kept}");
    }

    // A CI gate on the payment errors and the shipping quote's median: told the policy, the
    // adjusted measures pass where the traced ones fail; untold, the adjusted ones cannot be
    // measured and say what to give.
    let rules = tmp.path().join("rules.toml");
    std::fs::write(
        &rules,
        "[[rule]]\nmeasure = \"error_rate_adjusted\"\noperation = \"payment.authorize\"\nmax = 0.2\n\n\
         [[rule]]\nmeasure = \"error_rate\"\noperation = \"payment.authorize\"\nmax = 0.2\n\n\
         [[rule]]\nmeasure = \"p50_ms_adjusted\"\noperation = \"shipping.calculate_rates\"\nmax = 1000\n\n\
         [[rule]]\nmeasure = \"p50_ms\"\noperation = \"shipping.calculate_rates\"\nmax = 1000\n\n\
         [[rule]]\nmeasure = \"abandoned_carts_adjusted\"\ncause = \"slow_response\"\nmax = 100\n",
    )
    .unwrap();
    let check = |extra: &[&str]| -> Vec<(bool, String)> {
        let rules = rules.display().to_string();
        let mut args = vec!["check", "--data", &sample, "--rules", &rules, "-f", "json"];
        args.extend_from_slice(extra);
        let o = cartscope(&args);
        assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
        let v: Value = serde_json::from_slice(&o.stdout).unwrap();
        v["verdicts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["passed"] == true,
                    r["message"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    let told = check(&["--trace-sample-policy", "keep-errors,keep-slow,rate=0.1"]);
    let passed: Vec<bool> = told.iter().map(|v| v.0).collect();
    assert_eq!(passed, [true, false, true, false, true], "{told:?}");
    let untold = check(&[]);
    for i in [0, 2] {
        assert!(!untold[i].0, "{untold:?}");
        assert!(untold[i].1.contains("--trace-sample-policy"), "{untold:?}");
    }
}

/// Without the counter, a stage a cart enters over several requests is estimated from its
/// kept traces and flagged `at_most`: a cart shows there if any one of its traces was kept,
/// so each entry counts for more than its chance of being seen. Data: the real Python SDK's
/// export sampled by its own ratio sampler at 0.25 (tests/fixtures/real-sdk/py-sampled), its
/// traces alone, told the rate: its shop adds each item in a request of its own (one to nine
/// items a cart), and enters checkout, shipping, payment and completion in one request each.
#[test]
fn a_stage_entered_over_several_requests_is_an_upper_bound_when_sampled() {
    let dir = fixture("real-sdk/py-sampled");
    let traces = dir.join("traces.jsonl.gz").display().to_string();
    let truth: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("truth.json")).unwrap()).unwrap();
    let r = report_json(&traces, &["--trace-sample-rate", "0.25"]);
    let funnel = weighted(&r, "funnel");
    let stages: Vec<&str> = funnel.iter().map(|(s, _)| *s).collect();
    assert_eq!(
        stages,
        ["active", "checkout", "shipping", "payment", "completed"]
    );
    let reached = truth_reached(&truth, &stages);
    for ((name, row), truth_n) in funnel.iter().zip(&reached) {
        assert_eq!(row["source"], "traces", "{row}");
        let est = f(&row["carts"]);
        if *name == "active" {
            // Every cart of the truth is active; counted once per kept trace that adds an
            // item, the estimate is well above them, and says so.
            assert_eq!(row["at_most"], true, "{row}");
            assert!(est > 1.5 * truth_n, "{est} against {truth_n}");
        } else {
            assert_eq!(row["at_most"], false, "{row}");
            assert!(
                (est - truth_n).abs() <= 3.0 * (truth_n * 3.0).sqrt(),
                "{name}: {est} against {truth_n}"
            );
        }
    }
    // The terminal report says it where the figure is.
    let o = cartscope(&["report", "--data", &traces, "--trace-sample-rate", "0.25"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let text = stdout(&o);
    let table = text
        .split("Funnel, weighted")
        .nth(1)
        .unwrap_or_else(|| panic!("{text}"));
    let active = table.lines().find(|l| l.contains("active")).unwrap();
    assert!(
        active.contains(&format!("at most {:.1}", f(&funnel[0].1["carts"]))),
        "{active}"
    );
    let checkout = table.lines().find(|l| l.contains("checkout")).unwrap();
    assert!(!checkout.contains("at most"), "{checkout}");
}
