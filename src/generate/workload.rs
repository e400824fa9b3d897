//! The synthetic shop: what one cart does, span by span, and the truth about it.
//!
//! Each cart is simulated from its own random stream (the seed and the cart's number), so a
//! cart's life does not depend on how many carts come before it or which thread builds it,
//! and two runs with one seed are identical.
//!
//! A cart: one to several `add_item` calls minutes apart; for part of the carts a checkout
//! trace (`begin_checkout`, then a `shipping` quote, then after the customer typed their card
//! a `payment` authorisation, maybe retried), ending with `complete` for converted carts. A
//! slow quote or a failed payment makes abandonment likelier; incidents make them commoner.
//! Spans that end after the export's end are not exported, and the truth is computed from
//! the spans that are.

use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};

use super::naming::{Kind, Naming};
use crate::time::Timestamp;

pub const NS_PER_MS: u64 = 1_000_000;
pub const NS_PER_S: u64 = 1_000_000_000;
pub const NS_PER_MIN: u64 = 60 * NS_PER_S;

/// The random stream of one cart.
pub struct Rng(ChaCha8Rng);

impl Rng {
    pub fn new(seed: u64, stream: u64) -> Rng {
        let mut r = ChaCha8Rng::seed_from_u64(seed);
        r.set_stream(stream);
        Rng(r)
    }
    pub fn u64(&mut self) -> u64 {
        self.0.next_u64()
    }
    /// Uniform in [0, 1).
    pub fn f64(&mut self) -> f64 {
        (self.0.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    pub fn chance(&mut self, p: f64) -> bool {
        self.f64() < p
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.u64() % n.max(1)
    }
    pub fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.f64()
    }
    /// Exponential with the given mean.
    pub fn exp(&mut self, mean: f64) -> f64 {
        -mean * (1.0 - self.f64()).ln()
    }
    /// Log-normal with the given median and spread (sigma of the log).
    pub fn lognormal(&mut self, median: f64, sigma: f64) -> f64 {
        // Box-Muller.
        let u1 = 1.0 - self.f64();
        let u2 = self.f64();
        let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
        median * (sigma * z).exp()
    }
    pub fn trace_id(&mut self) -> [u8; 16] {
        let mut b = [0u8; 16];
        self.0.fill_bytes(&mut b);
        b[0] |= 1; // never all zero
        b
    }
    pub fn span_id(&mut self) -> [u8; 8] {
        let mut b = [0u8; 8];
        self.0.fill_bytes(&mut b);
        b[0] |= 1;
        b
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Val {
    Str(String),
    Int(i64),
    Double(f64),
}

/// The services spans come from; each is a resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Service {
    Frontend,
    Catalog,
    Cart,
    Checkout,
    Shipping,
    Payment,
}

impl Service {
    pub const ALL: [Service; 6] = [
        Service::Frontend,
        Service::Catalog,
        Service::Cart,
        Service::Checkout,
        Service::Shipping,
        Service::Payment,
    ];
}

#[derive(Debug, Clone)]
pub struct Event {
    pub time_ns: u64,
    pub name: &'static str,
    pub attrs: Vec<(&'static str, Val)>,
}

#[derive(Debug, Clone)]
pub struct Span {
    pub service: Service,
    /// The service version and region of the instance that served it (its resource).
    pub version: &'static str,
    pub region: &'static str,
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    pub parent: Option<[u8; 8]>,
    pub name: &'static str,
    pub kind: Kind,
    pub start_ns: u64,
    pub end_ns: u64,
    pub attrs: Vec<(&'static str, Val)>,
    pub error: Option<String>,
    pub events: Vec<Event>,
    /// The lifecycle step this span is, for the truth.
    pub step: Step,
    /// The cart's item count and value as this span saw them (an add to the cart, the start
    /// of checkout), for the truth: exported as attributes or not (`ValueRecorded`).
    pub cart_state: Option<(i64, f64)>,
}

/// What a span means for the cart's lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Step {
    Noise,
    AddItem,
    BeginCheckout,
    Shipping,
    Payment,
    Complete,
}

impl Step {
    /// The stage name the lifecycle model gives this step (`None`: not a stage).
    pub fn stage(self) -> Option<&'static str> {
        match self {
            Step::Noise => None,
            Step::AddItem => Some("active"),
            Step::BeginCheckout => Some("checkout"),
            Step::Shipping => Some("shipping"),
            Step::Payment => Some("payment"),
            Step::Complete => Some("completed"),
        }
    }
}

/// An incident: a stretch of time in which something in the shop goes wrong.
#[derive(Debug, Clone, PartialEq)]
pub struct Incident {
    pub kind: IncidentKind,
    pub from_ns: u64,
    pub to_ns: u64,
}

/// When an incident starts or ends, as `--incident` takes it: a clock time (`HH:MM`) on the
/// day the export ends, or an instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    Clock { minutes: i64 },
    At(Timestamp),
}

impl When {
    fn parse(t: &str) -> Option<When> {
        if let Some((h, m)) = t.split_once(':') {
            if let (Ok(h), Ok(m)) = (h.parse::<i64>(), m.parse::<i64>()) {
                if (0..=24).contains(&h) && (0..60).contains(&m) && t.len() <= 5 {
                    return Some(When::Clock {
                        minutes: h * 60 + m,
                    });
                }
            }
        }
        t.parse().ok().map(When::At)
    }

    fn on(self, day_start: i64) -> i64 {
        match self {
            When::Clock { minutes } => day_start + minutes * 60 * 1_000_000_000,
            When::At(t) => t.ns(),
        }
    }
}

/// `--incident KIND:FROM-TO` as typed; `resolve` places it on the day the export ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncidentArg {
    pub kind: IncidentKind,
    pub from: When,
    pub to: When,
    text: String,
}

impl std::str::FromStr for IncidentArg {
    type Err = anyhow::Error;

    /// `KIND:FROM-TO`; FROM and TO are RFC 3339 times or `HH:MM`.
    fn from_str(s: &str) -> anyhow::Result<IncidentArg> {
        let (kind, span) = s.split_once(':').ok_or_else(|| {
            anyhow::anyhow!("write it as KIND:FROM-TO, e.g. shipping-slow:10:00-12:00")
        })?;
        let kind = <IncidentKind as clap::ValueEnum>::from_str(kind, true).map_err(|_| {
            anyhow::anyhow!("unknown kind '{kind}' (shipping-slow, payment-errors or bad-deploy)")
        })?;
        // The '-' between FROM and TO is the one where both sides read as times.
        for (i, _) in span.match_indices('-') {
            if let (Some(from), Some(to)) = (When::parse(&span[..i]), When::parse(&span[i + 1..])) {
                // Two times of one form are judged now; mixed ones once the day is known.
                let backwards = match (from, to) {
                    (When::Clock { minutes: a }, When::Clock { minutes: b }) => b <= a,
                    (When::At(a), When::At(b)) => b <= a,
                    _ => false,
                };
                if backwards {
                    anyhow::bail!("--incident '{s}': it ends before it starts");
                }
                return Ok(IncidentArg {
                    kind,
                    from,
                    to,
                    text: s.to_string(),
                });
            }
        }
        Err(anyhow::anyhow!("FROM-TO must be two times, like 10:00-12:00 or 2026-11-20T10:00:00Z-2026-11-20T12:00:00Z"))
    }
}

impl IncidentArg {
    /// The incident, with clock times on the day `end` falls in.
    pub fn resolve(&self, end: Timestamp) -> anyhow::Result<Incident> {
        let day_start = end.ns() - end.ns().rem_euclid(86_400 * 1_000_000_000);
        let (from, to) = (self.from.on(day_start), self.to.on(day_start));
        if to <= from {
            anyhow::bail!("--incident '{}': it ends before it starts", self.text);
        }
        let ns = |t: i64| {
            u64::try_from(t).map_err(|_| anyhow::anyhow!("--incident '{}': before 1970", self.text))
        };
        Ok(Incident {
            kind: self.kind,
            from_ns: ns(from)?,
            to_ns: ns(to)?,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum IncidentKind {
    /// Shipping quotes are slow.
    ShippingSlow,
    /// Payment authorisations fail.
    PaymentErrors,
    /// A new payment service version that fails and times out.
    BadDeploy,
}

pub const PAYMENT_VERSION: &str = "3.2.0";
pub const BAD_PAYMENT_VERSION: &str = "3.3.0-rc1";
pub const REGIONS: [&str; 3] = ["eu-west-1", "us-east-1", "ap-south-1"];
pub const SEGMENTS: [&str; 3] = ["new", "returning", "vip"];
pub const PAYMENT_METHODS: [&str; 3] = ["card", "paypal", "apple_pay"];

/// The workload's knobs, with the values that give the shop its 65-70% abandonment.
#[derive(Debug, Clone)]
pub struct Params {
    pub seed: u64,
    pub carts: u64,
    pub end_ns: u64,
    pub window_ns: u64,
    pub threshold_ns: u64,
    pub incidents: Vec<Incident>,
    pub naming: Naming,
    pub value_recorded: ValueRecorded,
    /// Which traces reach the export (metrics, logs and the truth are never sampled).
    pub sampling: super::sampling::Sampling,
}

/// Which spans carry the cart's value (its item count is on every add to the cart and on
/// checkout either way).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ValueRecorded {
    /// Every add to the cart and the start of checkout.
    #[default]
    EveryItem,
    /// The start of checkout and later only, as much instrumentation does (the OpenTelemetry
    /// Demo's cart service records a product and quantity, its checkout the order's amount):
    /// a cart left before checkout has no recorded value.
    Checkout,
    /// As `checkout`, each add to the cart also recording the line's unit price beside its
    /// quantity: a model that names them (`line_price`, `line_quantity`) adds them up.
    Lines,
}

/// A metric observation the instrumentation would record.
#[derive(Debug, Clone)]
pub enum Observation {
    /// `cart.state.transitions` +1 with this stage.
    Transition {
        time_ns: u64,
        stage: &'static str,
        segment: &'static str,
    },
    /// `cart.stage.duration` (active_to_checkout), recorded by the begin_checkout span.
    StageDuration {
        time_ns: u64,
        seconds: f64,
        trace_id: [u8; 16],
        span_id: [u8; 8],
    },
    /// `cart.active` +1 / -1.
    Active { time_ns: u64, delta: i64 },
}

/// The truth about one cart, from its exported spans.
#[derive(Debug, Clone, PartialEq)]
/// One cart's right answers, as a line of the truth file (`truth.json` lists them): doubles in
/// their shortest form, times in RFC 3339, the trace id in hex.
#[derive(serde::Serialize)]
pub struct Truth {
    pub cart_id: String,
    pub user_id: String,
    pub outcome: &'static str,
    pub last_stage: &'static str,
    pub item_count: i64,
    #[serde(serialize_with = "truth_format::shortest")]
    pub value: f64,
    #[serde(rename = "first_seen", serialize_with = "truth_format::time")]
    pub first_seen_ns: u64,
    #[serde(rename = "last_activity", serialize_with = "truth_format::time")]
    pub last_activity_ns: u64,
    pub last_operation: &'static str,
    #[serde(serialize_with = "truth_format::shortest")]
    pub last_op_duration_ms: f64,
    pub last_op_status: &'static str,
    #[serde(serialize_with = "truth_format::hex")]
    pub last_trace_id: [u8; 16],
    pub suspected_cause: &'static str,
    pub span_count: u64,
}

/// How the truth file writes the values whose JSON form serde does not choose.
mod truth_format {
    use serde::Serializer;

    use crate::time::Timestamp;

    /// `30`, not serde_json's `30.0`: the form the export's doubleValues take too.
    pub fn shortest<S: Serializer>(x: &f64, s: S) -> Result<S::Ok, S::Error> {
        let mut text = String::new();
        crate::read::otlp::values::write_f64(&mut text, *x);
        let raw =
            serde_json::value::RawValue::from_string(text).map_err(serde::ser::Error::custom)?;
        serde::Serialize::serialize(&raw, s)
    }

    pub fn time<S: Serializer>(ns: &u64, s: S) -> Result<S::Ok, S::Error> {
        let ns = i64::try_from(*ns).map_err(serde::ser::Error::custom)?;
        s.collect_str(&Timestamp::from_ns(ns))
    }

    pub fn hex<S: Serializer>(id: &[u8; 16], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&const_hex::encode(id))
    }
}

/// One cart's exported spans, the metric observations, and its truth.
pub struct CartSim {
    pub spans: Vec<Span>,
    pub noise: Vec<Span>,
    pub observations: Vec<Observation>,
    pub truth: Option<Truth>,
}

fn in_incident(p: &Params, kind: IncidentKind, t: u64) -> bool {
    p.incidents
        .iter()
        .any(|i| i.kind == kind && t >= i.from_ns && t < i.to_ns)
}

fn money(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

/// Builder of one cart's spans.
struct Cart<'p> {
    p: &'p Params,
    rng: Rng,
    cart_id: String,
    user_id: String,
    segment: &'static str,
    region: &'static str,
    spans: Vec<Span>,
    obs: Vec<Observation>,
    items: i64,
    value: f64,
}

impl Cart<'_> {
    #[allow(clippy::too_many_arguments)] // each argument is a different span field
    fn span(
        &mut self,
        service: Service,
        name: &'static str,
        kind: Kind,
        trace: [u8; 16],
        parent: Option<[u8; 8]>,
        start: u64,
        dur_ns: u64,
        step: Step,
    ) -> usize {
        let span_id = self.rng.span_id();
        let version = match service {
            Service::Payment if in_incident(self.p, IncidentKind::BadDeploy, start) => {
                BAD_PAYMENT_VERSION
            }
            Service::Payment => PAYMENT_VERSION,
            Service::Checkout => "2.8.1",
            Service::Shipping => "1.14.0",
            Service::Cart => "4.2.3",
            Service::Frontend => "7.0.2",
            Service::Catalog => "1.9.0",
        };
        self.spans.push(Span {
            service,
            version,
            region: self.region,
            trace_id: trace,
            span_id,
            parent,
            name,
            kind,
            start_ns: start,
            end_ns: start + dur_ns.max(1),
            attrs: Vec::new(),
            error: None,
            events: Vec::new(),
            step,
            cart_state: None,
        });
        self.spans.len() - 1
    }

    fn cart_attrs(&mut self, i: usize, with_cart: bool) {
        let n = &self.p.naming;
        let mut attrs = Vec::new();
        if with_cart {
            if let Some(k) = n.attr_cart_id {
                attrs.push((k, Val::Str(self.cart_id.clone())));
            }
        }
        attrs.push((n.attr_user_id, Val::Str(self.user_id.clone())));
        self.spans[i].attrs.extend(attrs);
    }
}

/// Simulates cart number `index` (0-based).
pub fn simulate(p: &Params, index: u64) -> CartSim {
    let mut rng = Rng::new(p.seed, index);
    // Carts start spread over the window, in order: stratified jitter keeps them sorted.
    let window_start = p.end_ns.saturating_sub(p.window_ns);
    let slot = p.window_ns as f64 / p.carts.max(1) as f64;
    let t0 = window_start + ((index as f64 + rng.f64()) * slot) as u64;
    let user_pool = (p.carts * 2 / 3).max(1);
    let user_id = if p.naming.cart_keyed_by_user {
        // Keyed by user, a user has one cart at a time: one user per cart.
        format!("{:016x}", rng.u64())
    } else {
        format!("user-{:07}", rng.below(user_pool) + 1)
    };
    let cart_id = if p.naming.cart_keyed_by_user {
        user_id.clone()
    } else {
        format!("cart-{:08}", index + 1)
    };
    let segment = SEGMENTS[(rng.below(10) as usize).min(9) / 4];
    let region = REGIONS[rng.below(3) as usize];
    let mut c = Cart {
        p,
        rng,
        cart_id,
        user_id,
        segment,
        region,
        spans: Vec::new(),
        obs: Vec::new(),
        items: 0,
        value: 0.0,
    };
    let n = p.naming.clone();
    let mut noise = Vec::new();

    // Browsing before and between: page views and searches in traces of their own.
    let views = 1 + c.rng.below(2);
    let mut t = t0.saturating_sub(c.rng.range(20.0, 90.0) as u64 * NS_PER_S);
    for _ in 0..views {
        let tr = c.rng.trace_id();
        let (svc, name, kind) = if c.rng.chance(0.5) {
            (Service::Frontend, n.page_view, Kind::Server)
        } else {
            (Service::Catalog, n.search, Kind::Server)
        };
        let d = (c.rng.lognormal(60.0, 0.5) * NS_PER_MS as f64) as u64;
        let i = c.span(svc, name, kind, tr, None, t, d, Step::Noise);
        let s = c.spans.remove(i);
        noise.push(s);
        t += c.rng.range(5.0, 40.0) as u64 * NS_PER_S;
    }

    // Items, minutes apart.
    let n_items = 1 + c.rng.below(4) + u64::from(c.rng.chance(0.2)) * c.rng.below(4);
    let mut t = t0;
    for k in 0..n_items {
        if k > 0 {
            t += (c.rng.exp(2.5).min(12.0) * NS_PER_MIN as f64) as u64 + NS_PER_S;
        }
        add_item(&mut c, t);
    }
    let mut last_end = c.spans.last().map_or(t0, |s| s.end_ns);

    // A few come back after an idle spell past the threshold and add more: recovered carts.
    if c.rng.chance(0.04) {
        let gap = p.threshold_ns + (c.rng.range(10.0, 90.0) * NS_PER_MIN as f64) as u64;
        let t = last_end + gap;
        add_item(&mut c, t);
        last_end = c.spans.last().map_or(t, |s| s.end_ns);
    }

    if c.rng.chance(0.45) {
        let t = last_end + (c.rng.exp(3.0).min(15.0) * NS_PER_MIN as f64) as u64 + NS_PER_S;
        checkout(&mut c, t, t0);
    }

    // The export has only what ended before its end.
    let end = p.end_ns;
    c.spans.retain(|s| s.end_ns <= end);
    noise.retain(|s| s.end_ns <= end);
    c.obs.retain(|o| match o {
        Observation::Transition { time_ns, .. }
        | Observation::StageDuration { time_ns, .. }
        | Observation::Active { time_ns, .. } => *time_ns <= end,
    });
    let truth = truth_of(&c, p);
    if let Some(t) = &truth {
        // The cart leaves the active gauge when it converts or is abandoned.
        let leave = match t.outcome {
            "converted" => Some(t.last_activity_ns),
            "abandoned" => Some(t.last_activity_ns + p.threshold_ns),
            _ => None,
        };
        if let Some(at) = leave.filter(|at| *at <= end) {
            c.obs.push(Observation::Active {
                time_ns: at,
                delta: -1,
            });
        }
    }
    CartSim {
        spans: c.spans,
        noise,
        observations: c.obs,
        truth,
    }
}

fn add_item(c: &mut Cart, t: u64) {
    let n = c.p.naming.clone();
    let tr = c.rng.trace_id();
    let d = (c.rng.lognormal(35.0, 0.4) * NS_PER_MS as f64) as u64;
    let i = c.span(
        Service::Cart,
        n.add_item,
        Kind::Server,
        tr,
        None,
        t,
        d,
        Step::AddItem,
    );
    let price = money(c.rng.lognormal(28.0, 0.8).clamp(2.0, 900.0));
    let qty = 1 + i64::from(c.rng.chance(0.15));
    let first = c.items == 0;
    c.items += qty;
    c.value = money(c.value + price * qty as f64);
    c.cart_attrs(i, true);
    let product = format!("SKU-{:05}", c.rng.below(5000) + 1);
    let (items, value) = (c.items, c.value);
    let every_item = c.p.value_recorded == ValueRecorded::EveryItem;
    let s = &mut c.spans[i];
    s.attrs.push((n.attr_product_id, Val::Str(product)));
    s.attrs.push((n.attr_quantity, Val::Int(qty)));
    s.attrs.push((n.attr_item_count, Val::Int(items)));
    if every_item {
        s.attrs.push((n.attr_total_value, Val::Double(value)));
    }
    if c.p.value_recorded == ValueRecorded::Lines {
        s.attrs.push((n.attr_price, Val::Double(price)));
    }
    s.cart_state = Some((items, value));
    s.attrs
        .push(("user.segment", Val::Str(c.segment.to_string())));
    if first {
        c.obs.push(Observation::Transition {
            time_ns: t + d,
            stage: "active",
            segment: c.segment,
        });
        c.obs.push(Observation::Active {
            time_ns: t + d,
            delta: 1,
        });
    }
}

fn checkout(c: &mut Cart, t: u64, t0: u64) {
    let p = c.p;
    let n = p.naming.clone();
    let tr = c.rng.trace_id();
    let d = (c.rng.lognormal(55.0, 0.4) * NS_PER_MS as f64) as u64;
    let root = c.span(
        Service::Checkout,
        n.begin_checkout,
        Kind::Server,
        tr,
        None,
        t,
        d,
        Step::BeginCheckout,
    );
    c.cart_attrs(root, true);
    let (items, value) = (c.items, c.value);
    c.spans[root]
        .attrs
        .push((n.attr_item_count, Val::Int(items)));
    c.spans[root]
        .attrs
        .push((n.attr_total_value, Val::Double(value)));
    c.spans[root].cart_state = Some((items, value));
    let root_id = c.spans[root].span_id;
    let root_end = c.spans[root].end_ns;
    c.obs.push(Observation::Transition {
        time_ns: root_end,
        stage: "checkout",
        segment: c.segment,
    });
    c.obs.push(Observation::StageDuration {
        time_ns: root_end,
        seconds: (t - t0) as f64 / NS_PER_S as f64,
        trace_id: tr,
        span_id: root_id,
    });

    // The shipping quote, right after the checkout page loads.
    let t = root_end + (c.rng.range(5.0, 40.0) * NS_PER_MS as f64) as u64;
    let slow_p = if in_incident(p, IncidentKind::ShippingSlow, t) {
        0.8
    } else {
        0.12
    };
    let slow = c.rng.chance(slow_p);
    let ms = if slow {
        c.rng.range(2300.0, 6500.0)
    } else {
        c.rng.lognormal(280.0, 0.45).min(1500.0)
    };
    let ship = c.span(
        Service::Shipping,
        n.shipping,
        Kind::Client,
        tr,
        Some(root_id),
        t,
        (ms * NS_PER_MS as f64) as u64,
        Step::Shipping,
    );
    let with_cart = c.rng.chance(0.5);
    c.cart_attrs(ship, with_cart);
    if with_cart {
        // The reference instrumentation puts the cart's value beside its id on the quote.
        c.spans[ship]
            .attrs
            .push((n.attr_total_value, Val::Double(value)));
    }
    let carrier = ["dhl", "ups", "postnl"][c.rng.below(3) as usize];
    c.spans[ship]
        .attrs
        .push(("shipping.carrier", Val::Str(carrier.into())));
    let ship_end = c.spans[ship].end_ns;

    // Slow quotes lose customers before they pay.
    let leave_p = if slow { 0.55 } else { 0.12 };
    if c.rng.chance(leave_p) {
        return;
    }

    // The payment, once the customer has typed their card.
    let mut t = ship_end + (c.rng.range(20.0, 110.0) * NS_PER_S as f64) as u64;
    let method = PAYMENT_METHODS[c.rng.below(3) as usize];
    let mut attempt = 1;
    let paid = loop {
        let bad_deploy = in_incident(p, IncidentKind::BadDeploy, t);
        let err_p = if bad_deploy {
            0.45
        } else if in_incident(p, IncidentKind::PaymentErrors, t) {
            0.5
        } else {
            0.07
        };
        let fails = c.rng.chance(err_p);
        let timeout = fails && (bad_deploy || c.rng.chance(0.25));
        let ms = if timeout {
            c.rng.range(5000.0, 8000.0)
        } else {
            c.rng.lognormal(420.0, 0.35)
        };
        let pay = c.span(
            Service::Payment,
            n.payment,
            Kind::Client,
            tr,
            Some(root_id),
            t,
            (ms * NS_PER_MS as f64) as u64,
            Step::Payment,
        );
        let with_cart = c.rng.chance(0.5);
        c.cart_attrs(pay, with_cart);
        c.spans[pay]
            .attrs
            .push(("payment.method", Val::Str(method.into())));
        c.spans[pay].attrs.push((n.attr_amount, Val::Double(value)));
        if attempt > 1 {
            c.spans[pay]
                .attrs
                .push(("retry.attempt", Val::Int(attempt)));
        }
        let pay_end = c.spans[pay].end_ns;
        if fails {
            let (ty, msg) = if timeout {
                ("TimeoutError", "payment gateway timed out after 5s")
            } else if bad_deploy {
                (
                    "NullPointerException",
                    "internal error: card token was null",
                )
            } else {
                ["CardDeclined", "InsufficientFunds"].map(|t| {
                    (
                        t,
                        if t == "CardDeclined" {
                            "card declined by issuer"
                        } else {
                            "insufficient funds"
                        },
                    )
                })[c.rng.below(2) as usize]
            };
            let s = &mut c.spans[pay];
            s.error = Some(msg.to_string());
            s.events.push(Event {
                time_ns: pay_end - 1000,
                name: "exception",
                attrs: vec![
                    ("exception.type", Val::Str(ty.into())),
                    ("exception.message", Val::Str(msg.into())),
                ],
            });
            if attempt == 1 && c.rng.chance(0.4) {
                attempt += 1;
                t = pay_end + (c.rng.range(4.0, 25.0) * NS_PER_S as f64) as u64;
                continue;
            }
            break false;
        }
        break true;
    };
    if !paid {
        // Most customers whose payment failed leave.
        if c.rng.chance(0.85) {
            return;
        }
        // The rest try once more with another method, a minute later.
        let t = c.spans.last().map_or(t, |s| s.end_ns)
            + (c.rng.range(30.0, 90.0) * NS_PER_S as f64) as u64;
        let ms = c.rng.lognormal(420.0, 0.35);
        let pay = c.span(
            Service::Payment,
            n.payment,
            Kind::Client,
            tr,
            Some(root_id),
            t,
            (ms * NS_PER_MS as f64) as u64,
            Step::Payment,
        );
        c.cart_attrs(pay, true);
        c.spans[pay]
            .attrs
            .push(("payment.method", Val::Str("paypal".into())));
        c.spans[pay].attrs.push((n.attr_amount, Val::Double(value)));
        c.spans[pay]
            .attrs
            .push(("retry.attempt", Val::Int(attempt + 1)));
    }
    let pay_end = c.spans.last().map_or(t, |s| s.end_ns);
    if c.rng.chance(0.04) {
        // Paid, then closed the tab before the order was placed.
        return;
    }
    let t = pay_end + (c.rng.range(30.0, 300.0) * NS_PER_MS as f64) as u64;
    let d = (c.rng.lognormal(90.0, 0.4) * NS_PER_MS as f64) as u64;
    let done = c.span(
        Service::Checkout,
        n.complete,
        n.complete_kind,
        tr,
        Some(root_id),
        t,
        d,
        Step::Complete,
    );
    c.cart_attrs(done, true);
    let order = format!("ord-{:012x}", c.rng.u64() & 0xffff_ffff_ffff);
    c.spans[done].attrs.push((n.attr_order_id, Val::Str(order)));
    let end = c.spans[done].end_ns;
    c.obs.push(Observation::Transition {
        time_ns: end,
        stage: "completed",
        segment: c.segment,
    });
}

/// The truth, from the exported spans only, by the rules the replay must follow:
/// converted if it completed without an idle spell of `threshold` before; recovered if it came
/// back after such a spell and then completed or is still active; abandoned if idle for at
/// least `threshold` at the export's end without completing; active otherwise.
fn truth_of(c: &Cart, p: &Params) -> Option<Truth> {
    let spans = &c.spans;
    if spans.is_empty() {
        return None;
    }
    let mut order: Vec<usize> = (0..spans.len()).collect();
    order.sort_by_key(|&i| (spans[i].start_ns, i));
    let mut max_end = 0u64;
    let mut came_back = false;
    for (k, &i) in order.iter().enumerate() {
        if k > 0 && spans[i].start_ns >= max_end + p.threshold_ns {
            came_back = true;
        }
        max_end = max_end.max(spans[i].end_ns);
    }
    let first_seen = spans.iter().map(|s| s.start_ns).min().unwrap_or(0);
    // The last operation: the span that ended last (ties: the later start, then the later one).
    let last = (0..spans.len())
        .max_by_key(|&i| (spans[i].end_ns, spans[i].start_ns, i))
        .map(|i| &spans[i])?;
    let converted = spans.iter().any(|s| s.step == Step::Complete);
    let idle = p.end_ns.saturating_sub(max_end);
    let outcome = if converted {
        if came_back {
            "recovered"
        } else {
            "converted"
        }
    } else if idle >= p.threshold_ns {
        "abandoned"
    } else if came_back {
        "recovered"
    } else {
        "active"
    };
    let furthest = spans.iter().map(|s| s.step).max().unwrap_or(Step::AddItem);
    // Latest known count and value: from the span that ended last among those carrying them.
    // The true ones, whether the spans recorded the value or not.
    let mut latest: Option<(u64, i64, f64)> = None;
    for s in spans {
        if let Some((ci, v)) = s.cart_state {
            if latest.is_none_or(|l| s.end_ns >= l.0) {
                latest = Some((s.end_ns, ci, v));
            }
        }
    }
    let (_, item_count, value) = latest.unwrap_or((0, 0, 0.0));
    let duration_ms = (last.end_ns - last.start_ns) as f64 / NS_PER_MS as f64;
    let status = if last.error.is_some() {
        "error"
    } else {
        "unset"
    };
    let cause = if outcome != "abandoned" {
        "none"
    } else if duration_ms > 2000.0 {
        "slow_response"
    } else if last.error.is_some() {
        "error"
    } else {
        "none"
    };
    Some(Truth {
        cart_id: c.cart_id.clone(),
        user_id: c.user_id.clone(),
        outcome,
        last_stage: furthest.stage().unwrap_or("active"),
        item_count,
        value,
        first_seen_ns: first_seen,
        last_activity_ns: max_end,
        last_operation: last.name,
        last_op_duration_ms: duration_ms,
        last_op_status: status,
        last_trace_id: last.trace_id,
        suspected_cause: cause,
        span_count: spans.len() as u64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incidents_in_both_forms() {
        let end: Timestamp = "2026-11-20T12:00:00Z".parse().unwrap();
        let at = |s: &str| s.parse::<IncidentArg>().and_then(|a| a.resolve(end));
        let ts = |ns: u64| Timestamp::from_ns(ns as i64).to_string();
        let i = at("shipping-slow:09:00-10:30").unwrap();
        assert_eq!(ts(i.from_ns), "2026-11-20T09:00:00.000000Z");
        assert_eq!(ts(i.to_ns), "2026-11-20T10:30:00.000000Z");
        let i = at("bad-deploy:2026-11-19T22:00:00Z-2026-11-20T01:00:00Z").unwrap();
        assert_eq!(i.kind, IncidentKind::BadDeploy);
        assert_eq!(ts(i.to_ns), "2026-11-20T01:00:00.000000Z");
        assert!(at("fire:10:00-11:00").is_err());
        assert!(at("shipping-slow:11:00-10:00").is_err());
        assert!(at("shipping-slow").is_err());
        // Mixed forms are judged once the day is known.
        assert!("payment-errors:11:00-2026-11-20T10:00:00Z"
            .parse::<IncidentArg>()
            .is_ok());
        assert!(at("payment-errors:11:00-2026-11-20T10:00:00Z").is_err());
    }
}
