//! When the lifecycle model does not fit the data, `detect`, `report` and `check` say so on
//! stderr (and the JSON report carries it), naming the likely fix, instead of printing
//! "0 converted" as a finding. On sample-data and a generated Demo-named export with the
//! right preset, nothing is said.

use crate::util::*;

fn model_file(dir: &std::path::Path, from: &str, to: &str) -> String {
    let text = cartscope::Preset::Reference.text().replace(from, to);
    assert_ne!(
        text,
        cartscope::Preset::Reference.text(),
        "{from} is not in the preset"
    );
    let p = dir.join("model.toml");
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

fn warnings(o: &std::process::Output) -> Vec<String> {
    stderr(o)
        .lines()
        .filter(|l| l.starts_with("cartscope: warning: the model may not fit the data: "))
        .map(String::from)
        .collect()
}

#[test]
fn a_model_that_fits_says_nothing() {
    let data = root("sample-data/otlp");
    let o = cartscope(&["detect", "--data", data.to_str().unwrap(), "-f", "csv"]);
    assert!(o.status.success());
    assert!(warnings(&o).is_empty(), "{}", stderr(&o));
    let tmp = tempfile::tempdir().unwrap();
    generate(tmp.path(), &["--carts", "200", "--naming", "otel-demo"]);
    let otlp = tmp.path().join("otlp");
    let o = cartscope(&[
        "detect",
        "--model",
        "otel-demo",
        "--data",
        otlp.to_str().unwrap(),
        "-f",
        "csv",
    ]);
    assert!(o.status.success());
    assert!(warnings(&o).is_empty(), "{}", stderr(&o));
}

#[test]
fn a_stage_that_matched_no_span_and_no_cart_converting() {
    let tmp = tempfile::tempdir().unwrap();
    // The success stage named as another instrumentation would: it matches nothing here.
    let model = model_file(
        tmp.path(),
        "\"checkout.complete\"",
        "\"oteldemo.CheckoutService/PlaceOrder\"",
    );
    let data = root("sample-data/otlp");
    for cmd in [
        vec!["detect", "-f", "csv"],
        vec!["report", "-f", "json"],
        vec!["check", "--rules", "checks.example.toml"],
    ] {
        let mut args = cmd.clone();
        args.extend(["--data", data.to_str().unwrap(), "--model", &model]);
        let o = cmd_in_root(&args);
        let w = warnings(&o);
        assert!(
            w.iter().any(|l| l.contains("stage 'completed'")
                && l.contains("matched no span")
                && l.contains("'checkout.complete'")),
            "{cmd:?}: {}",
            stderr(&o)
        );
        assert!(
            w.iter()
                .any(|l| l.contains("no cart converted among 3000 carts")),
            "{cmd:?}: {}",
            stderr(&o)
        );
        // Each names the way to a model that fits this data.
        assert!(
            w.iter().all(|l| l.ends_with(
                "; or let `cartscope model --suggest --data ...` write a model from this data"
            )),
            "{cmd:?}: {}",
            stderr(&o)
        );
        if cmd[0] == "report" {
            let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
            let ws = r["warnings"].as_array().unwrap();
            assert!(
                ws.iter()
                    .any(|w| w.as_str().unwrap().contains("no cart converted")),
                "{ws:?}"
            );
        }
    }
    // A report whose model fits carries no warnings field.
    let o = cartscope(&["report", "--data", data.to_str().unwrap(), "-f", "json"]);
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(r.get("warnings").is_none());
}

/// `check` runs from the checkout root so the example rules' path resolves.
fn cmd_in_root(args: &[&str]) -> std::process::Output {
    cmd().current_dir(root("")).args(args).output().unwrap()
}

#[test]
fn most_keyed_spans_matched_by_no_stage() {
    // Only completing an order is a stage; every other span that carries cart.id is not.
    let tmp = tempfile::tempdir().unwrap();
    let text = cartscope::Preset::Reference.text();
    let (first, last) = (
        text.find("[[stages]]").unwrap(),
        text.rfind("[[stages]]").unwrap(),
    );
    let model = format!("{}{}", &text[..first], &text[last..]);
    let p = tmp.path().join("model.toml");
    std::fs::write(&p, model).unwrap();
    let data = root("sample-data/otlp");
    let o = cartscope(&[
        "detect",
        "--data",
        data.to_str().unwrap(),
        "--model",
        p.to_str().unwrap(),
        "-f",
        "csv",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let w = warnings(&o);
    assert!(
        w.iter()
            .any(|l| l.contains("spans that carry a cart or user key")
                && l.contains("match no stage")
                && l.contains("'cart.add_item'")),
        "{}",
        stderr(&o)
    );
}

#[test]
fn most_carts_with_a_single_span() {
    // Each span its own trace, the cart id only on adding to the cart: the rest of each
    // cart's life cannot be joined to it.
    let mut spans = String::new();
    for cart in 0..40u32 {
        let id = format!("cart-{cart:04}");
        let t = u64::from(cart) * 30;
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
            &[("cart.id", id)],
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
            &[],
        );
    }
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("traces.jsonl");
    std::fs::write(&file, traces_line(&spans)).unwrap();
    let o = cartscope(&[
        "detect",
        "--data",
        file.to_str().unwrap(),
        "--as-of",
        "2026-11-18T17:06:40Z",
        "-f",
        "csv",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let w = warnings(&o);
    assert!(
        w.iter()
            .any(|l| l.contains("40 of 40 carts have a single span")
                && l.contains("keys.session_id")),
        "{}",
        stderr(&o)
    );
}

/// A stage can be what a real shop records: an order placed is a server span of the checkout
/// service, with status ok and an order id, under whatever name (here a hand-built export).
#[test]
fn a_stage_matched_by_an_attribute_kind_service_and_status() {
    let mut spans = String::new();
    for cart in 0..40u32 {
        let id = format!("cart-{cart:04}");
        let t = u64::from(cart) * 30;
        let add = Step {
            name: "cart.add_item",
            at_s: t,
            ms: 40,
            error: false,
        };
        span(&mut spans, cart, 0, add, &[("cart.id", id.clone())]);
        let refused = (20..30).contains(&cart);
        let mut attrs = vec![("cart.id", id.clone())];
        if cart < 20 {
            attrs.push(("app.order.id", format!("order-{cart}")));
        }
        let place = Step {
            name: "POST /oteldemo.CheckoutService/PlaceOrder",
            at_s: t + 60,
            ms: 300,
            error: refused,
        };
        span(&mut spans, cart, 1, place, &attrs);
    }
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("traces.jsonl");
    std::fs::write(&file, traces_line(&spans)).unwrap();
    let model = |services: &str| {
        let text = cartscope::Preset::Reference.text();
        let (first, last) = (
            text.find("[[stages]]").unwrap(),
            text.rfind("[[stages]]").unwrap(),
        );
        let stages = format!(
            "[[stages]]\nname = \"active\"\nspans = [\"cart.add_item\"]\n\n[[stages]]\nname = \"completed\"\n\
             has = [\"app.order.id\"]\nkind = \"server\"\nservices = [{services}]\nstatus = \"ok\"\nsuccess = true\n\n"
        );
        let end = text[last..].find("[causes]").unwrap() + last;
        let p = tmp.path().join(format!("model-{}.toml", services.len()));
        std::fs::write(&p, format!("{}{stages}{}", &text[..first], &text[end..])).unwrap();
        p
    };
    let detect = |m: &std::path::Path| {
        cartscope(&[
            "detect",
            "--data",
            file.to_str().unwrap(),
            "--model",
            m.to_str().unwrap(),
            "--as-of",
            "2026-11-18T17:06:40Z",
            "-f",
            "csv",
        ])
    };
    let o = detect(&model("\"shop\""));
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("40 carts, 20 converted, 20 abandoned"),
        "{}",
        stderr(&o)
    );
    assert!(warnings(&o).is_empty(), "{}", stderr(&o));
    // The same stage for another service matches nothing here, and says so.
    let o = detect(&model("\"checkout\""));
    assert!(
        stderr(&o).contains("40 carts, 0 converted"),
        "{}",
        stderr(&o)
    );
    assert!(
        warnings(&o).iter().any(|w| w.contains("stage 'completed'")),
        "{}",
        stderr(&o)
    );
}

/// `detect --explain` shows what the replay matched on this data: spans and carts per stage
/// (a stage that matched nothing shows 0) and how spans were given to carts, before the SQL.
#[test]
fn explain_shows_what_each_stage_matched() {
    let data = root("sample-data/otlp");
    let o = cartscope(&[
        "detect",
        "--explain",
        "--data",
        data.to_str().unwrap(),
        "-f",
        "csv",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    let stages: Vec<&str> = out
        .lines()
        .skip_while(|l| !l.starts_with("-- spans and carts each stage matched"))
        .skip(2)
        .take(5)
        .collect();
    let names: Vec<&str> = stages
        .iter()
        .map(|l| l.split(',').nth(1).unwrap())
        .collect();
    assert_eq!(
        names,
        ["active", "checkout", "shipping", "payment", "completed"],
        "{out}"
    );
    // Every one of sample-data's 3,000 carts added to its cart.
    assert!(stages[0].ends_with(",3000"), "{out}");
    assert!(stages[4].starts_with("5,completed,true,"), "{out}");
    assert!(
        out.contains("attributed_by,spans,carts\nattribute,"),
        "{out}"
    );
    assert!(out.contains("-- cart_events (as of <AS_OF_US>)"), "{out}");

    let tmp = tempfile::tempdir().unwrap();
    let model = model_file(
        tmp.path(),
        "\"shipping.calculate_rates\"",
        "\"ShippingService/GetQuote\"",
    );
    let o = cartscope(&[
        "detect",
        "--explain",
        "--data",
        data.to_str().unwrap(),
        "--model",
        &model,
        "-f",
        "csv",
    ]);
    assert!(
        stdout(&o).contains("\n3,shipping,false,0,0\n"),
        "{}",
        stdout(&o)
    );
    assert!(
        warnings(&o).iter().any(|w| w.contains("stage 'shipping'")),
        "{}",
        stderr(&o)
    );
}
