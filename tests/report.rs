//! `cartscope report` on sample-data (three injected incidents): the figures agree with the
//! truth file, the drivers it ranks are the injected causes, and the output is deterministic.

use crate::util::*;

fn report(args: &[&str]) -> Vec<u8> {
    let data = root("sample-data/otlp");
    let o = cmd()
        .args(["report", "--data", data.to_str().unwrap()])
        .args(args)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    o.stdout
}

fn truth() -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(root("sample-data/truth.json")).unwrap()).unwrap()
}

#[test]
fn figures_agree_with_the_truth() {
    let r: serde_json::Value = serde_json::from_slice(&report(&["-f", "json"])).unwrap();
    let t = truth();
    assert_eq!(r["version"], 1);
    for k in ["carts", "converted", "abandoned", "active", "recovered"] {
        assert_eq!(r["summary"][k], t["totals"][k], "{k}");
    }
    let rate = r["summary"]["abandonment_rate"].as_f64().unwrap();
    assert!((rate - t["totals"]["abandonment_rate"].as_f64().unwrap()).abs() < 1e-6);
    let ci = &r["summary"]["abandonment_rate_ci95"];
    assert!(ci[0].as_f64().unwrap() < rate && rate < ci[1].as_f64().unwrap());
    assert_eq!(
        r["summary"]["abandoned_value"],
        t["totals"]["abandoned_value"]
    );
    // Causes by count, as the truth counts them.
    for c in r["causes"].as_array().unwrap() {
        let name = c["name"].as_str().unwrap();
        assert_eq!(c["carts"], t["totals"]["causes"][name], "cause {name}");
    }
    // The top abandoned carts by value are the truth's.
    let mut abandoned: Vec<&serde_json::Value> = t["carts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["outcome"] == "abandoned")
        .collect();
    abandoned.sort_by(|a, b| {
        b["value"]
            .as_f64()
            .unwrap()
            .total_cmp(&a["value"].as_f64().unwrap())
            .then(a["cart_id"].as_str().cmp(&b["cart_id"].as_str()))
    });
    let top: Vec<&str> = r["top_abandoned"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["cart_id"].as_str().unwrap())
        .collect();
    let want: Vec<&str> = abandoned
        .iter()
        .take(10)
        .map(|c| c["cart_id"].as_str().unwrap())
        .collect();
    assert_eq!(top, want);
}

#[test]
fn the_drivers_it_finds_are_the_injected_causes() {
    let r: serde_json::Value = serde_json::from_slice(&report(&["-f", "json"])).unwrap();
    let drivers = r["drivers"].as_array().unwrap();
    let significant: Vec<&str> = drivers
        .iter()
        .filter(|d| d["significant"] == true)
        .map(|d| d["driver"].as_str().unwrap())
        .collect();
    assert!(!significant.is_empty());
    // Slow shipping quotes (02:00-05:00) explain the most abandoned value.
    assert_eq!(
        significant[0],
        "shipping.calculate_rates slower than 2000 ms"
    );
    // Failing payments (18:00-20:00) and the bad payment deploy (08:00-10:00) are found too.
    assert!(
        significant.contains(&"payment.authorize failed"),
        "{significant:?}"
    );
    assert!(
        significant.contains(&"service.version = 3.3.0-rc1 (payment)"),
        "{significant:?}"
    );
    // Nothing else stands out: every significant driver is one of the incidents' operations or
    // the bad version; no region, segment, carrier or method is blamed.
    for d in &significant {
        assert!(
            d.starts_with("shipping.calculate_rates")
                || d.starts_with("payment.authorize")
                || d.contains("3.3.0-rc1"),
            "{d} is not an injected cause"
        );
    }
    // Ranked by the excess abandoned value they explain.
    let values: Vec<f64> = drivers
        .iter()
        .filter(|d| d["significant"] == true)
        .map(|d| d["excess_value"].as_f64().unwrap())
        .collect();
    assert!(values.windows(2).all(|w| w[0] >= w[1]), "{values:?}");
    // Multiple-testing correction: q >= p for every candidate.
    for d in drivers {
        assert!(d["q_value"].as_f64().unwrap() >= d["p_value"].as_f64().unwrap() - 1e-12);
    }
}

#[test]
fn same_input_same_bytes() {
    for f in ["json", "text", "markdown"] {
        assert!(
            report(&["-f", f]) == report(&["-f", f]),
            "{f} differs between two runs"
        );
    }
}

#[test]
fn a_day_and_its_previous_day() {
    let r: serde_json::Value =
        serde_json::from_slice(&report(&["-f", "json", "--day", "2026-11-20"])).unwrap();
    assert_eq!(r["period"]["since"], "2026-11-20T00:00:00.000000Z");
    assert_eq!(r["period"]["until"], "2026-11-21T00:00:00.000000Z");
    assert_eq!(r["as_of"], "2026-11-21T00:00:00.000000Z");
    // The previous day holds the carts first seen before midnight.
    assert!(r["previous"]["carts"].as_u64().unwrap() > 0);
    let changes = r["changes"].as_array().unwrap();
    assert!(changes.iter().any(|c| c["figure"] == "abandonment_rate"));
}
