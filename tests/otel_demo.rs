//! The `otel-demo` preset on the OpenTelemetry Demo's own naming, in every form its versions
//! export (read from the Demo's source; see the preset's comments): gRPC server spans
//! (1.x), HTTP server forms of the cart and shipping services (1.7.2 on, 2.1 on), the 3.x
//! collector's renames with `user.id` and `demo.*` attributes, and the `hipstershop` package
//! of the first versions. Each trace has the caller's client span and the service's server
//! span, as the Demo's traces do. Hand-built: cartscope's generator wrote none of it.

use std::fmt::Write as _;

use crate::util::*;

/// One version's names.
struct Form {
    label: &'static str,
    /// (frontend's client span, cart's server span)
    add: (&'static str, &'static str),
    place: (&'static str, &'static str),
    /// (checkout's client span, shipping's server span)
    quote: (&'static str, &'static str),
    charge: (&'static str, &'static str),
    /// The Kafka producer span, where the queue is instrumented.
    publish: Option<&'static str>,
    user: &'static str,
    order_id: &'static str,
    amount: &'static str,
    items: &'static str,
}

const FORMS: [Form; 4] = [
    Form {
        label: "1.4: gRPC server spans, app.*",
        add: (
            "grpc.oteldemo.CartService/AddItem",
            "oteldemo.CartService/AddItem",
        ),
        place: (
            "grpc.oteldemo.CheckoutService/PlaceOrder",
            "oteldemo.CheckoutService/PlaceOrder",
        ),
        quote: (
            "oteldemo.ShippingService/GetQuote",
            "oteldemo.ShippingService/GetQuote",
        ),
        charge: (
            "oteldemo.PaymentService/Charge",
            "grpc.oteldemo.PaymentService/Charge",
        ),
        publish: Some("orders send"),
        user: "app.user.id",
        order_id: "app.order.id",
        amount: "app.order.amount",
        items: "app.order.items.count",
    },
    Form {
        label: "2.2: HTTP server forms (cart, shipping), app.*",
        add: (
            "grpc.oteldemo.CartService/AddItem",
            "POST /oteldemo.CartService/AddItem",
        ),
        place: (
            "grpc.oteldemo.CheckoutService/PlaceOrder",
            "oteldemo.CheckoutService/PlaceOrder",
        ),
        quote: ("HTTP POST", "/get-quote"),
        charge: (
            "oteldemo.PaymentService/Charge",
            "grpc.oteldemo.PaymentService/Charge",
        ),
        publish: Some("orders publish"),
        user: "app.user.id",
        order_id: "app.order.id",
        amount: "app.order.amount",
        items: "app.order.items.count",
    },
    Form {
        label: "3.0: collector renames, user.id and demo.*, no Kafka instrumentation",
        add: (
            "grpc.oteldemo.CartService/AddItem",
            "POST /oteldemo.CartService/AddItem",
        ),
        place: (
            "oteldemo.CheckoutService/PlaceOrder",
            "oteldemo.CheckoutService/PlaceOrder",
        ),
        quote: ("POST", "POST /get-quote"),
        charge: (
            "oteldemo.PaymentService/Charge",
            "oteldemo.PaymentService/Charge",
        ),
        publish: None,
        user: "user.id",
        order_id: "demo.order.id",
        amount: "demo.order.amount",
        items: "demo.order.items.count",
    },
    Form {
        label: "1.2: hipstershop package",
        add: (
            "grpc.hipstershop.CartService/AddItem",
            "hipstershop.CartService/AddItem",
        ),
        place: (
            "grpc.hipstershop.CheckoutService/PlaceOrder",
            "hipstershop.CheckoutService/PlaceOrder",
        ),
        quote: (
            "hipstershop.ShippingService/GetQuote",
            "hipstershop.ShippingService/GetQuote",
        ),
        charge: (
            "hipstershop.PaymentService/Charge",
            "grpc.hipstershop.PaymentService/Charge",
        ),
        publish: None,
        user: "app.user.id",
        order_id: "app.order.id",
        amount: "app.order.amount",
        items: "app.order.items.count",
    },
];

/// Writes OTLP/JSON lines, one span a line, each under its service's resource.
#[derive(Default)]
struct Export {
    out: String,
    next_id: u64,
}

struct Sp<'a> {
    trace: u128,
    parent: Option<u64>,
    service: &'a str,
    name: &'a str,
    kind: u8,
    at_ms: u64,
    ms: u64,
    error: bool,
    attrs: Vec<(&'a str, String)>,
}

impl Export {
    fn span(&mut self, s: Sp) -> u64 {
        self.next_id += 1;
        let id = self.next_id;
        let start = BASE_NS + s.at_ms * 1_000_000;
        let attrs: Vec<String> = s
            .attrs
            .iter()
            .map(|(k, v)| format!(r#"{{"key":"{k}","value":{{"stringValue":"{v}"}}}}"#))
            .collect();
        let parent = s
            .parent
            .map(|p| format!(r#""parentSpanId":"{p:016x}","#))
            .unwrap_or_default();
        let status = if s.error {
            r#"{"code":2,"message":"failed"}"#
        } else {
            "{}"
        };
        let _ = writeln!(
            self.out,
            r#"{{"resourceSpans":[{{"resource":{{"attributes":[{{"key":"service.name","value":{{"stringValue":"{svc}"}}}}]}},"scopeSpans":[{{"scope":{{"name":"demo"}},"spans":[{{"traceId":"{trace:032x}","spanId":"{id:016x}",{parent}"name":"{name}","kind":{kind},"startTimeUnixNano":"{start}","endTimeUnixNano":"{end}","attributes":[{attrs}],"status":{status}}}]}}]}}]}}"#,
            svc = s.service,
            trace = s.trace,
            name = s.name,
            kind = s.kind,
            end = start + s.ms * 1_000_000,
            attrs = attrs.join(","),
        );
        id
    }

    /// A client span in `caller` and its server span in `callee`, in one trace.
    #[allow(clippy::too_many_arguments)]
    fn call(
        &mut self,
        trace: u128,
        parent: Option<u64>,
        (client, server): (&str, &str),
        (caller, callee): (&str, &str),
        at_ms: u64,
        ms: u64,
        error: bool,
        attrs: Vec<(&str, String)>,
    ) -> u64 {
        let c = self.span(Sp {
            trace,
            parent,
            service: caller,
            name: client,
            kind: 3,
            at_ms,
            ms: ms + 4,
            error,
            attrs: vec![],
        });
        self.span(Sp {
            trace,
            parent: Some(c),
            service: callee,
            name: server,
            kind: 2,
            at_ms: at_ms + 2,
            ms,
            error,
            attrs,
        })
    }
}

/// What a cart does.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Story {
    /// Adds twice, places an order.
    Converts,
    /// Adds, checks out, the card is declined; leaves.
    PaymentFails,
    /// Adds twice and leaves.
    LeavesTheCart,
    /// Still adding when the export ends.
    StillShopping,
}

const STORIES: [Story; 4] = [
    Story::Converts,
    Story::PaymentFails,
    Story::LeavesTheCart,
    Story::StillShopping,
];

/// The export's end: every cart is judged as of then.
const END_MS: u64 = 6 * 3600 * 1000;

fn cart(e: &mut Export, f: &Form, user: &str, story: Story, t0: u64, trace0: u128) {
    let min = 60_000;
    let t0 = if story == Story::StillShopping {
        END_MS - 10 * min
    } else {
        t0
    };
    let user_attr = || vec![(f.user, user.to_string())];
    let adds = if story == Story::PaymentFails { 1 } else { 2 };
    for k in 0..adds {
        e.call(
            trace0 + k,
            None,
            f.add,
            ("frontend", "cart"),
            t0 + k as u64 * 2 * min,
            30,
            false,
            vec![
                (f.user, user.to_string()),
                ("app.product.id", "OLJCESPC7Z".into()),
            ],
        );
    }
    if !matches!(story, Story::Converts | Story::PaymentFails) {
        return;
    }
    let ok = story == Story::Converts;
    let at = t0 + 5 * min;
    let trace = trace0 + 10;
    let mut attrs = user_attr();
    if ok {
        attrs.extend([
            (f.order_id, format!("order-{user}")),
            (f.amount, "123.45".to_string()),
            (f.items, "3".to_string()),
        ]);
    }
    // PlaceOrder: the frontend's client span, checkout's server span, and under it the quote,
    // the charge and (where the queue is instrumented) the Kafka message.
    let place = e.call(
        trace,
        None,
        f.place,
        ("frontend", "checkout"),
        at,
        900,
        !ok,
        attrs,
    );
    e.call(
        trace,
        Some(place),
        f.quote,
        ("checkout", "shipping"),
        at + 50,
        120,
        false,
        vec![],
    );
    e.call(
        trace,
        Some(place),
        f.charge,
        ("checkout", "payment"),
        at + 300,
        200,
        !ok,
        vec![("app.payment.amount", "123.45".into())],
    );
    if let (true, Some(name)) = (ok, f.publish) {
        e.span(Sp {
            trace,
            parent: Some(place),
            service: "checkout",
            name,
            kind: 4,
            at_ms: at + 600,
            ms: 5,
            error: false,
            attrs: vec![],
        });
    }
}

#[test]
fn the_preset_fits_every_form_the_demo_exports() {
    let tmp = tempfile::tempdir().unwrap();
    let as_of = cartscope::Timestamp::from_ns((BASE_NS + END_MS * 1_000_000) as i64).to_string();
    for (fi, f) in FORMS.iter().enumerate() {
        let mut e = Export::default();
        for (si, story) in STORIES.iter().enumerate() {
            let user = format!("u{fi}{si}");
            cart(
                &mut e,
                f,
                &user,
                *story,
                si as u64 * 20 * 60_000,
                (fi * 1000 + si * 100 + 1) as u128,
            );
        }
        let data = tmp.path().join(format!("form{fi}.jsonl"));
        std::fs::write(&data, &e.out).unwrap();
        let o = cartscope(&[
            "detect",
            "--model",
            "otel-demo",
            "--data",
            data.to_str().unwrap(),
            "--as-of",
            &as_of,
            "-f",
            "ndjson",
        ]);
        assert!(o.status.success(), "{}: {}", f.label, stderr(&o));
        assert!(
            !stderr(&o).contains("warning"),
            "{}: {}",
            f.label,
            stderr(&o)
        );
        let carts: Vec<serde_json::Value> = stdout(&o)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(carts.len(), STORIES.len(), "{}: {}", f.label, stdout(&o));
        for (si, story) in STORIES.iter().enumerate() {
            let user = format!("u{fi}{si}");
            let c = carts
                .iter()
                .find(|c| c["cart_id"] == user.as_str())
                .unwrap_or_else(|| panic!("{}: no cart {user}", f.label));
            let ctx = format!("{} {story:?}: {c}", f.label);
            let (outcome, stage) = match story {
                Story::Converts => ("converted", "completed"),
                Story::PaymentFails => ("abandoned", "payment"),
                Story::LeavesTheCart => ("abandoned", "active"),
                Story::StillShopping => ("active", "active"),
            };
            assert_eq!(c["outcome"], outcome, "{ctx}");
            assert_eq!(c["last_stage"], stage, "{ctx}");
            assert_eq!(c["user_id"], user.as_str(), "{ctx}");
            match story {
                Story::Converts => {
                    assert_eq!(c["total_value"], 123.45, "{ctx}");
                    assert_eq!(c["item_count"], 3, "{ctx}");
                }
                Story::PaymentFails => {
                    // The frontend's client span ends last; it failed with the order.
                    assert_eq!(c["last_operation"], f.place.0, "{ctx}");
                    assert_eq!(c["last_op_status"], "error", "{ctx}");
                    assert_eq!(c["suspected_cause"], "error", "{ctx}");
                }
                _ => assert_eq!(c["last_operation"], f.add.0, "{ctx}"),
            }
        }
        // Every stage span form is matched by its stage: the client and server spans both.
        let o = cartscope(&[
            "query",
            "--model",
            "otel-demo",
            "--data",
            data.to_str().unwrap(),
            "--as-of",
            &as_of,
            "-f",
            "csv",
            "-e",
            "SELECT DISTINCT operation, stage FROM cart_events WHERE stage IS NOT NULL ORDER BY 1, 2",
        ]);
        assert!(o.status.success(), "{}: {}", f.label, stderr(&o));
        let matched = stdout(&o);
        for (name, stage) in [
            (f.add.0, "active"),
            (f.add.1, "active"),
            (f.place.0, "completed"),
            (f.place.1, "completed"),
            (f.quote.1, "shipping"),
            (f.charge.0, "payment"),
            (f.charge.1, "payment"),
        ] {
            // The frontend's PlaceOrder client span carries no order id: it is the checkout.
            let stage = if name == f.place.0 && name != f.place.1 {
                "checkout"
            } else {
                stage
            };
            assert!(
                matched.lines().any(|l| l == format!("{name},{stage}")),
                "{}: '{name}' is not matched as {stage}:\n{matched}",
                f.label
            );
        }
    }
}
