//! `cartscope model --suggest`: the model it writes, used unchanged by `detect`, agrees with the
//! truth on at least 99% of carts: on sample-data, on a Demo-named export, and on exports whose
//! span and attribute names were replaced by meaningless ones (so only the data's structure
//! can tell the cart key, the stages and the success apart). Weak evidence is said, not hidden.

use std::collections::HashMap;
use std::path::Path;

use crate::util::*;

/// Runs `model --suggest` on DATA, asserts it succeeded, and returns (the TOML, stderr).
pub(crate) fn suggest(data: &Path) -> (String, String) {
    let o = cartscope(&["model", "--suggest", "--data", data.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    (stdout(&o), stderr(&o))
}

/// The share of the truth's carts on which `detect --model MODEL` agrees in every field the
/// truth has: outcome, last stage (through `stage`, for renamed stages), last operation, its
/// duration and status, the cause, item count, value, span count and last trace.
pub(crate) fn agreement(
    data: &Path,
    truth: &Path,
    model: &Path,
    stage: &dyn Fn(&str) -> String,
) -> f64 {
    let truth: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(truth).unwrap()).unwrap();
    let end = truth["generator"]["end"].as_str().unwrap();
    let o = cartscope(&[
        "detect",
        "--data",
        data.to_str().unwrap(),
        "--model",
        model.to_str().unwrap(),
        "--as-of",
        end,
        "-f",
        "ndjson",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let got: HashMap<String, serde_json::Value> = stdout(&o)
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (v["cart_id"].as_str().unwrap().to_string(), v)
        })
        .collect();
    let carts = truth["carts"].as_array().unwrap();
    let mut agree = 0;
    let mut shown = 0;
    for want in carts {
        let Some(g) = got.get(want["cart_id"].as_str().unwrap()) else {
            continue;
        };
        let same = |f: &str| g[f] == want[f];
        let close = |a: &str, b: &str| {
            (g[a].as_f64().unwrap_or(f64::NAN) - want[b].as_f64().unwrap()).abs() < 1e-6
        };
        let cause = g["suspected_cause"].as_str().unwrap_or("none");
        let ok = same("outcome")
            && same("last_operation")
            && same("last_op_status")
            && same("item_count")
            && same("span_count")
            && same("last_trace_id")
            && close("last_op_duration_ms", "last_op_duration_ms")
            && close("total_value", "value")
            && cause == want["suspected_cause"]
            && g["last_stage"].as_str() == Some(&stage(want["last_stage"].as_str().unwrap()));
        if ok {
            agree += 1;
        } else if shown < 3 {
            shown += 1;
            eprintln!("disagrees: truth {want}\n      got {g}");
        }
    }
    agree as f64 / carts.len() as f64
}

pub(crate) fn same_stage(s: &str) -> String {
    s.to_string()
}

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn on_sample_data_the_suggested_model_is_the_reference_model() {
    let tmp = tempfile::tempdir().unwrap();
    let data = root("sample-data/otlp");
    let (toml, err) = suggest(&data);
    let model = write(tmp.path(), "m.toml", &toml);
    let share = agreement(&data, &root("sample-data/truth.json"), &model, &same_stage);
    assert!(share >= 0.99, "agreement {share}\n{toml}");
    // What it chose, and the evidence beside each choice.
    let m = cartscope::Model::load(model.to_str().unwrap()).unwrap();
    assert_eq!(m.keys.cart_id, ["cart.id"]);
    assert_eq!(m.keys.user_id, ["user.id"]);
    assert_eq!(m.keys.item_count, ["cart.item_count"]);
    assert_eq!(m.keys.total_value, ["cart.total_value"]);
    let stages: Vec<(&str, &[String])> = m
        .stages
        .iter()
        .map(|s| (s.name.as_str(), s.spans.as_slice()))
        .collect();
    assert_eq!(
        stages,
        [
            ("active", &["cart.add_item".to_string()][..]),
            ("checkout", &["cart.begin_checkout".to_string()][..]),
            ("shipping", &["shipping.calculate_rates".to_string()][..]),
            ("payment", &["payment.authorize".to_string()][..]),
            ("completed", &["checkout.complete".to_string()][..]),
        ]
    );
    assert!(m.stages[4].success);
    assert!(
        toml.contains("# cart key, named as one, 'cart.id': on 12086 of 17846 spans (68%)"),
        "{toml}"
    );
    assert!(
        toml.contains("in 100% of them the cart does nothing after it"),
        "{toml}"
    );
    assert!(!toml.contains("WEAK EVIDENCE"), "{toml}");
    assert!(err.contains("suggested a model for 3000 carts: cart key cart.id (no weak evidence); stages active > checkout > shipping > payment > completed"), "{err}");
}

#[test]
fn on_a_demo_named_export_a_cart_is_its_users() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("d");
    generate(
        &dir,
        &[
            "--carts",
            "1000",
            "--seed",
            "11",
            "--naming",
            "otel-demo",
            "--incident",
            "shipping-slow:01:00-04:00",
        ],
    );
    let (toml, _) = suggest(&dir.join("otlp"));
    let model = write(tmp.path(), "m.toml", &toml);
    let share = agreement(
        &dir.join("otlp"),
        &dir.join("truth.json"),
        &model,
        &same_stage,
    );
    assert!(share >= 0.99, "agreement {share}\n{toml}");
    let m = cartscope::Model::load(model.to_str().unwrap()).unwrap();
    assert!(m.keys.cart_is_user, "{toml}");
    assert_eq!(m.keys.user_id, ["app.user.id"]);
    assert_eq!(m.stages[0].spans, ["oteldemo.CartService/AddItem"]);
    assert_eq!(m.stages.last().unwrap().spans, ["orders publish"]);
}

/// A name that says nothing: `prefix` and a hash of `name` in hex.
fn meaningless(prefix: &str, name: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    format!("{prefix}{:010x}", h >> 24)
}

/// Copies a generated export's traces and truth with every span name and attribute key
/// replaced by a meaningless one.
fn renamed(from: &Path, to: &Path) {
    std::fs::create_dir_all(to.join("otlp")).unwrap();
    let text = std::fs::read_to_string(from.join("otlp/traces.jsonl")).unwrap();
    let mut out = String::new();
    for line in text.lines() {
        let mut doc: serde_json::Value = serde_json::from_str(line).unwrap();
        for rs in doc["resourceSpans"].as_array_mut().unwrap() {
            for ss in rs["scopeSpans"].as_array_mut().unwrap() {
                for sp in ss["spans"].as_array_mut().unwrap() {
                    let name = sp["name"].as_str().unwrap().to_string();
                    sp["name"] = meaningless("op_", &name).into();
                    for a in sp["attributes"].as_array_mut().into_iter().flatten() {
                        let k = a["key"].as_str().unwrap().to_string();
                        a["key"] = meaningless("k_", &k).into();
                    }
                }
            }
        }
        out.push_str(&doc.to_string());
        out.push('\n');
    }
    std::fs::write(to.join("otlp/traces.jsonl"), out).unwrap();
    let mut truth: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(from.join("truth.json")).unwrap()).unwrap();
    for c in truth["carts"].as_array_mut().unwrap() {
        let op = c["last_operation"].as_str().unwrap().to_string();
        c["last_operation"] = meaningless("op_", &op).into();
    }
    std::fs::write(to.join("truth.json"), truth.to_string()).unwrap();
}

/// The stages between the first and the success have no name to go by: they are named by
/// their place.
fn by_place(s: &str) -> String {
    match s {
        "checkout" => "step_2",
        "shipping" => "step_3",
        "payment" => "step_4",
        other => other,
    }
    .to_string()
}

#[test]
fn on_renamed_exports_the_structure_alone_finds_the_model() {
    let tmp = tempfile::tempdir().unwrap();
    for (naming, seed) in [("reference", "21"), ("otel-demo", "5")] {
        let dir = tmp.path().join(naming);
        generate(
            &dir,
            &[
                "--carts",
                "1000",
                "--seed",
                seed,
                "--naming",
                naming,
                "--incident",
                "payment-errors:03:00-06:00",
                "--incident",
                "bad-deploy:07:00-09:00",
            ],
        );
        let r = tmp.path().join(format!("{naming}-renamed"));
        renamed(&dir, &r);
        let (toml, err) = suggest(&r.join("otlp"));
        let model = write(tmp.path(), &format!("{naming}.toml"), &toml);
        let share = agreement(&r.join("otlp"), &r.join("truth.json"), &model, &by_place);
        assert!(share >= 0.99, "{naming}: agreement {share}\n{toml}");
        let m = cartscope::Model::load(model.to_str().unwrap()).unwrap();
        let names: Vec<&str> = m.stages.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            ["active", "step_2", "step_3", "step_4", "completed"],
            "{toml}"
        );
        assert!(
            toml.contains(
                "3 stages are named step_N: no word in their span names says what they do"
            ),
            "{toml}"
        );
        if naming == "reference" {
            // Two keys group traces; the cart is the finer, its user the coarser.
            assert_eq!(m.keys.cart_id, [meaningless("k_", "cart.id")], "{toml}");
            assert_eq!(m.keys.user_id, [meaningless("k_", "user.id")], "{toml}");
            assert!(toml.contains("the cart's owner, not the cart"), "{toml}");
        } else {
            // One key, whose name does not say whether it is the cart's or the user's.
            assert!(toml.contains("# WEAK EVIDENCE: the cart key"), "{toml}");
            assert!(
                err.contains("cartscope: weak evidence: the cart key"),
                "{err}"
            );
        }
    }
}

#[test]
fn without_a_completed_order_it_says_the_evidence_is_weak() {
    // Hand-built: carts that only ever add items; nothing looks like an order.
    let tmp = tempfile::tempdir().unwrap();
    let mut spans = String::new();
    for cart in 0..40u32 {
        for n in 0..3u32 {
            span(
                &mut spans,
                cart,
                n,
                Step {
                    name: if n < 2 { "basket.put" } else { "basket.view" },
                    at_s: u64::from(cart) * 30 + u64::from(n) * 60,
                    ms: 20,
                    error: false,
                },
                &[("basket.ref", format!("b{cart}"))],
            );
        }
    }
    let data = write(tmp.path(), "t.jsonl", &traces_line(&spans));
    let o = cartscope(&["model", "--suggest", "--data", data.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let toml = stdout(&o);
    assert!(
        toml.contains("# WEAK EVIDENCE: no step looks like a completed order"),
        "{toml}"
    );
    assert!(stderr(&o).contains("weak evidence"), "{}", stderr(&o));
    // Still a model that loads.
    let model = write(tmp.path(), "m.toml", &toml);
    assert!(cartscope::Model::load(model.to_str().unwrap()).is_ok());
}

#[test]
fn out_writes_the_file_and_data_is_required() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("sub/model.toml");
    let data = root("sample-data/otlp");
    let o = cartscope(&[
        "model",
        "--suggest",
        "--data",
        data.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).is_empty());
    assert!(std::fs::read_to_string(&out)
        .unwrap()
        .contains("[[stages]]"));
    let o = cartscope(&["model", "--suggest"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--data"), "{}", stderr(&o));
    let o = cartscope(&["model"]);
    assert_eq!(o.status.code(), Some(2));
}
