//! The report's "why" on a hand-built export that cartscope's generator did not write: when
//! no cart that reached payment without an error was abandoned, "payment.authorize failed"
//! separates perfectly. It must still be judged by its test, bounded below rather than left
//! without a relative risk, and ranked first by the abandoned value it explains.

use crate::util::*;

/// A shop of 300 carts: 120 pay and complete, 60 are refused by payment and leave, 120 leave
/// at checkout without reaching payment. Slow shipping quotes are spread evenly.
fn export() -> String {
    let mut spans = String::new();
    for cart in 0..300u32 {
        let t = u64::from(cart) * 20;
        let id = format!("cart-{cart:04}");
        let cart_attr =
            |v: &str| vec![("cart.id", id.clone()), ("cart.total_value", v.to_string())];
        span(
            &mut spans,
            cart,
            0,
            Step {
                name: "cart.add_item",
                at_s: t,
                ms: 40,
                error: false,
            },
            &[("cart.id", id.clone())],
        );
        span(
            &mut spans,
            cart,
            1,
            Step {
                name: "cart.begin_checkout",
                at_s: t + 60,
                ms: 80,
                error: false,
            },
            &cart_attr("150"),
        );
        if cart >= 180 {
            continue; // left at checkout
        }
        let slow = cart % 3 == 0;
        span(
            &mut spans,
            cart,
            2,
            Step {
                name: "shipping.calculate_rates",
                at_s: t + 90,
                ms: if slow { 2500 } else { 300 },
                error: false,
            },
            &[("cart.id", id.clone())],
        );
        let refused = cart >= 120;
        span(
            &mut spans,
            cart,
            3,
            Step {
                name: "payment.authorize",
                at_s: t + 120,
                ms: 400,
                error: refused,
            },
            &[("cart.id", id.clone())],
        );
        if !refused {
            span(
                &mut spans,
                cart,
                4,
                Step {
                    name: "checkout.complete",
                    at_s: t + 150,
                    ms: 60,
                    error: false,
                },
                &[("cart.id", id.clone())],
            );
        }
    }
    traces_line(&spans)
}

#[test]
fn a_perfect_separator_is_ranked_first_by_the_value_it_explains() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("traces.jsonl");
    std::fs::write(&file, export()).unwrap();
    // Judged six hours after the first cart: every cart that stopped is abandoned.
    let as_of = "2026-11-18T17:06:40Z";
    let o = cartscope(&[
        "report",
        "--data",
        file.to_str().unwrap(),
        "--as-of",
        as_of,
        "-f",
        "json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["summary"]["converted"], 120, "{}", r["summary"]);
    assert_eq!(r["summary"]["abandoned"], 180, "{}", r["summary"]);
    let d = &r["drivers"][0];
    assert_eq!(d["driver"], "payment.authorize failed", "{}", r["drivers"]);
    assert_eq!(d["significant"], true, "{d}");
    assert_eq!(d["abandoned"], 60, "{d}");
    assert_eq!(d["baseline_rate"], 0.0, "{d}");
    assert!(d["relative_risk"].is_null(), "{d}");
    assert!(d["relative_risk_at_least"].as_f64().unwrap() > 10.0, "{d}");
    assert!(d["p_value"].as_f64().unwrap() < 1e-30, "{d}");
    assert_eq!(d["excess_value"], 60.0 * 150.0, "{d}");

    // The text report says "at least" where the relative risk has no finite value.
    let o = cartscope(&["report", "--data", file.to_str().unwrap(), "--as-of", as_of]);
    let text = stdout(&o);
    let row = text
        .lines()
        .find(|l| l.contains("payment.authorize failed"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(row.contains("at least"), "{row}");
}
