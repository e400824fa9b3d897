//! `cartscope model --suggest`: a starting lifecycle model read off an export, each choice
//! commented with the evidence for it, and weak evidence said as such.
//!
//! Everything is inferred from the data's structure first and its names second, so a shop
//! whose names mean nothing to cartscope still gets a model that fits:
//! - the cart key: an attribute whose values each group several traces (a cart lives across
//!   its add-to-cart and checkout traces), many values, none of them money; of two such keys
//!   where each value of one goes with a single value of the other, the finer is the cart and
//!   the coarser its user; keys whose values are the same under two spellings are one key;
//! - the stages: span names in the cart's traces that carry the key (or that are named like a
//!   shop's steps), a client and its server span of the same call folded into one, put in the
//!   order in which carts reach them; the first is the one nearly every cart has;
//! - the success stage: the name (with, where it tells them apart, an attribute unique to each
//!   span such as an order id, and a status) after which a cart does nothing more;
//! - the value and the item count: numbers on the cart's spans that grow within a cart, money
//!   with fractions, counts in whole numbers.
//!
//! It reads every span into memory once (a few words each, strings interned).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;

use anyhow::{Context, Result};
use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Int64Type};
use datafusion::prelude::SessionContext;
use futures::StreamExt;

use crate::replay::model::Model;

/// What was suggested: the model file, its model, and what the evidence could not settle.
pub struct Suggestion {
    pub toml: String,
    pub model: Model,
    pub weak: Vec<String>,
    pub carts: usize,
}

#[derive(Default)]
struct Interner {
    ids: HashMap<String, u32>,
    names: Vec<String>,
}

impl Interner {
    fn id(&mut self, s: &str) -> u32 {
        if let Some(&i) = self.ids.get(s) {
            return i;
        }
        let i = self.names.len() as u32;
        self.names.push(s.to_string());
        self.ids.insert(s.to_string(), i);
        i
    }
    fn name(&self, i: u32) -> &str {
        &self.names[i as usize]
    }
}

struct Span {
    trace: u32,
    id: u32,
    parent: Option<u32>,
    name: u32,
    service: u32,
    error: bool,
    start: i64,
    end: i64,
    attrs: Vec<(u32, u32)>,
}

struct Data {
    spans: Vec<Span>,
    strings: Interner,
    /// Each interned string read as a number, where it is one.
    numbers: Vec<Option<f64>>,
}

impl Data {
    fn s(&self, i: u32) -> &str {
        self.strings.name(i)
    }
    fn num(&self, v: u32) -> Option<f64> {
        self.numbers.get(v as usize).copied().flatten()
    }
}

async fn read(ctx: &SessionContext) -> Result<Data> {
    let sql = "SELECT CAST(trace_id AS VARCHAR), CAST(span_id AS VARCHAR), \
               CAST(parent_span_id AS VARCHAR), CAST(operation_name AS VARCHAR), \
               CAST(service_name AS VARCHAR), CAST(status_code AS VARCHAR), \
               CAST(start_time AS BIGINT), CAST(end_time AS BIGINT), attributes \
               FROM observed_traces";
    let mut stream = ctx
        .sql(sql)
        .await?
        .execute_stream()
        .await
        .context("reading the spans failed")?;
    let mut strings = Interner::default();
    let empty = strings.id("");
    let mut spans = Vec::new();
    while let Some(b) = stream.next().await {
        let b = b.context("reading the spans failed")?;
        let text = |i: usize| -> Result<datafusion::arrow::array::StringArray> {
            Ok(cast(b.column(i), &DataType::Utf8)?
                .as_string::<i32>()
                .clone())
        };
        let (trace, span, parent, name, service, status) =
            (text(0)?, text(1)?, text(2)?, text(3)?, text(4)?, text(5)?);
        let int = |i: usize| -> Result<datafusion::arrow::array::Int64Array> {
            Ok(cast(b.column(i), &DataType::Int64)?
                .as_primitive::<Int64Type>()
                .clone())
        };
        let (start, end) = (int(6)?, int(7)?);
        let maps = b.column(8).as_map();
        let keys = cast(maps.keys(), &DataType::Utf8)?;
        let values = cast(maps.values(), &DataType::Utf8)?;
        let (keys, values) = (keys.as_string::<i32>(), values.as_string::<i32>());
        let offsets = maps.value_offsets();
        for i in 0..b.num_rows() {
            if trace.is_null(i) || start.is_null(i) {
                continue;
            }
            let opt = |a: &datafusion::arrow::array::StringArray, strings: &mut Interner| {
                (a.is_valid(i) && !a.value(i).is_empty()).then(|| strings.id(a.value(i)))
            };
            let mut attrs = Vec::new();
            if maps.is_valid(i) {
                for j in offsets[i] as usize..offsets[i + 1] as usize {
                    if values.is_valid(j) {
                        attrs.push((strings.id(keys.value(j)), strings.id(values.value(j))));
                    }
                }
            }
            let s = start.value(i);
            spans.push(Span {
                trace: strings.id(trace.value(i)),
                id: opt(&span, &mut strings).unwrap_or(empty),
                parent: opt(&parent, &mut strings),
                name: opt(&name, &mut strings).unwrap_or(empty),
                service: opt(&service, &mut strings).unwrap_or(empty),
                error: status.is_valid(i) && status.value(i) == "error",
                start: s,
                end: if end.is_valid(i) { end.value(i) } else { s },
                attrs,
            });
        }
    }
    let numbers = strings
        .names
        .iter()
        .map(|s| s.trim().parse::<f64>().ok().filter(|x| x.is_finite()))
        .collect();
    Ok(Data {
        spans,
        strings,
        numbers,
    })
}

/// Lower case, letters and digits only: `POST /oteldemo.CartService/AddItem` ->
/// `postoteldemocartserviceadditem`.
fn squash(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

fn hinted(name: &str, words: &[&str]) -> bool {
    let s = squash(name);
    words.iter().any(|w| s.contains(w))
}

const CART_WORDS: &[&str] = &["cart", "basket"];
const USER_WORDS: &[&str] = &["user", "customer", "account", "buyer", "shopper"];
const MONEY_OR_COUNT: &[&str] = &["count", "item", "total", "value", "amount", "price"];
const CHECKOUT_WORDS: &[&str] = &["checkout", "placeorder", "submitorder", "createorder"];
const SHIPPING_WORDS: &[&str] = &["ship", "quote", "deliver", "freight", "rates"];
const PAYMENT_WORDS: &[&str] = &["pay", "charge", "authoriz", "authoris", "card", "billing"];
const DONE_WORDS: &[&str] = &[
    "complete", "confirm", "order", "purchase", "success", "publish", "placed",
];
const ORDER_ID_WORDS: &[&str] = &["order", "confirmation", "transaction", "receipt"];
const VALUE_WORDS: &[&str] = &["total", "value", "amount", "sum", "price"];
const COUNT_WORDS: &[&str] = &["count", "items", "quantity", "qty", "size"];

fn pct(a: usize, b: usize) -> String {
    if b == 0 {
        return "0%".into();
    }
    let p = 100.0 * a as f64 / b as f64;
    if p > 99.0 && a < b {
        format!("{p:.1}%")
    } else {
        format!("{p:.0}%")
    }
}

fn quote(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

fn list(items: &[String]) -> String {
    format!(
        "[{}]",
        items
            .iter()
            .map(|s| quote(s))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// One attribute key's shape.
#[derive(Default, Clone)]
struct KeyStats {
    spans: usize,
    traces: usize,
    values: usize,
    /// (value, trace) pairs: traces per value = pairs / values.
    value_traces: usize,
    numeric: usize,
    fractional: usize,
}

/// A key and its other spellings (keys whose values are largely the same).
struct Group {
    keys: Vec<u32>,
    spans: usize,
    traces: usize,
    values: HashSet<u32>,
    traces_per_value: f64,
}

pub async fn suggest(ctx: &SessionContext) -> Result<Suggestion> {
    let d = read(ctx).await?;
    if d.spans.is_empty() {
        anyhow::bail!("the data has no spans: a model is read off the spans of an export");
    }
    let mut notes: Vec<String> = Vec::new();
    let mut weak: Vec<String> = Vec::new();

    // --- Attribute keys.
    let mut stats: HashMap<u32, KeyStats> = HashMap::new();
    let mut key_trace: HashSet<(u32, u32)> = HashSet::new();
    let mut key_value: HashSet<(u32, u32)> = HashSet::new();
    let mut key_value_trace: HashSet<(u32, u32, u32)> = HashSet::new();
    let traces: HashSet<u32> = d.spans.iter().map(|s| s.trace).collect();
    for s in &d.spans {
        for &(k, v) in &s.attrs {
            let e = stats.entry(k).or_default();
            e.spans += 1;
            if let Some(x) = d.num(v) {
                e.numeric += 1;
                if x.fract() != 0.0 {
                    e.fractional += 1;
                }
            }
            if e.fractional * 2 > e.spans {
                continue; // money, not a key: no need to count its traces
            }
            if key_trace.insert((k, s.trace)) {
                e.traces += 1;
            }
            if key_value.insert((k, v)) {
                e.values += 1;
            }
            if key_value_trace.insert((k, v, s.trace)) {
                e.value_traces += 1;
            }
        }
    }
    drop(key_trace);
    drop(key_value_trace);
    // Keys that group traces: many values, each in more than one trace, none of them money.
    let mut groupers: Vec<u32> = stats
        .iter()
        .filter(|(k, st)| {
            let tpv = st.value_traces as f64 / st.values.max(1) as f64;
            st.values >= 5
                && tpv >= 1.3
                && st.values as f64 >= 0.05 * st.traces as f64
                && st.fractional * 2 <= st.spans
                && !(hinted(d.s(**k), MONEY_OR_COUNT) && st.numeric == st.spans)
        })
        .map(|(k, _)| *k)
        .collect();
    groupers.sort_by_key(|k| (std::cmp::Reverse(stats[k].spans), d.s(*k).to_string()));
    let mut values_of: HashMap<u32, HashSet<u32>> =
        groupers.iter().map(|k| (*k, HashSet::new())).collect();
    for (k, v) in &key_value {
        if let Some(set) = values_of.get_mut(k) {
            set.insert(*v);
        }
    }
    drop(key_value);
    // Spellings of one key: largely the same values.
    let mut groups: Vec<Group> = Vec::new();
    for k in &groupers {
        let vals = values_of.remove(k).unwrap_or_default();
        let st = &stats[k];
        let same = groups.iter_mut().find(|g| {
            let common = vals.iter().filter(|v| g.values.contains(v)).count();
            common as f64 >= 0.5 * vals.len().min(g.values.len()) as f64
        });
        match same {
            Some(g) => {
                g.keys.push(*k);
                g.spans += st.spans;
                g.traces += st.traces;
                g.values.extend(vals);
            }
            None => groups.push(Group {
                keys: vec![*k],
                spans: st.spans,
                traces: st.traces,
                traces_per_value: st.value_traces as f64 / st.values.max(1) as f64,
                values: vals,
            }),
        }
    }
    if groups.is_empty() {
        anyhow::bail!(
            "no attribute looks like a cart or user id: none has many values that each recur in several traces. Name the key in a model by hand (cartscope model --print reference)"
        );
    }
    let group_of = |k: u32| groups.iter().position(|g| g.keys.contains(&k));
    // Which value of each group a span carries.
    let carried = |s: &Span, g: usize| -> Option<u32> {
        s.attrs
            .iter()
            .find(|(k, _)| groups[g].keys.contains(k))
            .map(|(_, v)| *v)
    };
    // Functional dependence: share of A's values that go with a single value of B.
    let depends = |a: usize, b: usize| -> (f64, usize) {
        let mut m: HashMap<u32, HashSet<u32>> = HashMap::new();
        for s in &d.spans {
            if let (Some(va), Some(vb)) = (carried(s, a), carried(s, b)) {
                m.entry(va).or_default().insert(vb);
            }
        }
        let single = m.values().filter(|s| s.len() == 1).count();
        (single as f64 / m.len().max(1) as f64, m.len())
    };
    let key_names =
        |g: usize| -> Vec<String> { groups[g].keys.iter().map(|k| d.s(*k).to_string()).collect() };
    let describe = |g: usize| -> String {
        let gr = &groups[g];
        format!(
            "{}: on {} of {} spans ({}), in {} of {} traces; {} values, {:.1} traces each",
            key_names(g)
                .iter()
                .map(|k| format!("'{k}'"))
                .collect::<Vec<_>>()
                .join(" or "),
            gr.spans,
            d.spans.len(),
            pct(gr.spans, d.spans.len()),
            gr.traces,
            traces.len(),
            gr.values.len(),
            gr.traces_per_value
        )
    };
    let any_hint = |g: usize, words: &[&str]| groups[g].keys.iter().any(|k| hinted(d.s(*k), words));

    let mut cart_group: Option<usize> = (0..groups.len()).find(|&g| any_hint(g, CART_WORDS));
    let mut user_group: Option<usize> = None;
    let mut cart_is_user = false;
    let mut key_evidence = Vec::new();
    if let Some(c) = cart_group {
        key_evidence.push(format!("cart key, named as one, {}", describe(c)));
    } else {
        // The finer of two keys where each value of one goes with one value of the other.
        'pairs: for a in 0..groups.len() {
            for b in 0..groups.len() {
                if a == b || groups[a].values.len() <= groups[b].values.len() {
                    continue;
                }
                let (ab, n) = depends(a, b);
                let (ba, _) = depends(b, a);
                if n > 0 && ab >= 0.98 && ba < 0.9 {
                    cart_group = Some(a);
                    user_group = Some(b);
                    key_evidence.push(format!("cart key {}", describe(a)));
                    key_evidence.push(format!(
                        "{:.0}% of its values go with a single value of '{}', which has fewer values, each with several of them: the cart's owner, not the cart",
                        100.0 * ab,
                        key_names(b).join("' or '")
                    ));
                    break 'pairs;
                }
            }
        }
    }
    let cart = match cart_group {
        Some(c) => c,
        None => {
            // One key: the cart is its owner's (or the key is the cart's, unnamed).
            let g = 0;
            if any_hint(g, USER_WORDS) || groups.len() == 1 && any_hint(g, &["session", "client"]) {
                cart_is_user = true;
                key_evidence.push(format!(
                    "no cart key: a cart is its user's (cart_is_user); user key {}",
                    describe(g)
                ));
            } else {
                key_evidence.push(format!("cart key {}", describe(g)));
                weak.push(format!(
                    "the cart key '{}' was chosen only because its values group the most spans into several traces each, and its name does not say whose they are; check that it is a cart's (or set cart_is_user = true and move it to user_id if it is the user's)",
                    key_names(g).join("' or '")
                ));
            }
            g
        }
    };
    if user_group.is_none() && !cart_is_user {
        user_group = (0..groups.len()).find(|&g| g != cart && any_hint(g, USER_WORDS));
        if let Some(u) = user_group {
            key_evidence.push(format!("user key, named as one, {}", describe(u)));
        }
    }
    for (g, _) in groups.iter().enumerate() {
        if g != cart && Some(g) != user_group {
            notes.push(format!(
                "also groups traces, not used: {}{}",
                describe(g),
                if any_hint(g, &["session"]) {
                    " (a session: set keys.session_id to it to join a cart's traces that lack the cart key)"
                } else {
                    ""
                }
            ));
        }
    }

    // --- Carts: every span of a trace that carries the cart key.
    let mut trace_cart: HashMap<u32, u32> = HashMap::new();
    for s in &d.spans {
        if let Some(v) = carried(s, cart) {
            let e = trace_cart.entry(s.trace).or_insert(v);
            if d.s(v) < d.s(*e) {
                *e = v;
            }
        }
    }
    let mut carts: HashMap<u32, Vec<usize>> = HashMap::new();
    for (i, s) in d.spans.iter().enumerate() {
        if let Some(c) = trace_cart.get(&s.trace) {
            carts.entry(*c).or_default().push(i);
        }
    }
    for v in carts.values_mut() {
        v.sort_by_key(|&i| (d.spans[i].start, d.spans[i].end));
    }
    let n_carts = carts.len();
    let mut cart_list: Vec<(&u32, &Vec<usize>)> = carts.iter().collect();
    cart_list.sort_by_key(|(c, _)| d.s(**c));

    // --- Span names in carts.
    #[derive(Default)]
    struct NameStats {
        carts: usize,
        spans_in_carts: usize,
        keyed: usize,
        errors: usize,
        services: BTreeMap<u32, usize>,
        durations: Vec<i64>,
    }
    let mut names: HashMap<u32, NameStats> = HashMap::new();
    let mut total_by_name: HashMap<u32, usize> = HashMap::new();
    for s in &d.spans {
        *total_by_name.entry(s.name).or_default() += 1;
    }
    for (_, idx) in &cart_list {
        let mut seen = HashSet::new();
        for &i in idx.iter() {
            let s = &d.spans[i];
            let n = names.entry(s.name).or_default();
            n.spans_in_carts += 1;
            n.keyed += usize::from(carried(s, cart).is_some());
            n.errors += usize::from(s.error);
            *n.services.entry(s.service).or_default() += 1;
            n.durations.push(s.end - s.start);
            if seen.insert(s.name) {
                n.carts += 1;
            }
        }
    }
    let shop_words: Vec<&str> = [CHECKOUT_WORDS, SHIPPING_WORDS, PAYMENT_WORDS, DONE_WORDS]
        .concat()
        .into_iter()
        .chain(CART_WORDS.iter().copied())
        .collect();
    let min_carts = (n_carts / 100).max(3);
    let mut candidates: Vec<u32> = names
        .iter()
        .filter(|(n, st)| {
            let total = total_by_name[n];
            st.carts >= min_carts
                && !d.s(**n).is_empty()
                && st.spans_in_carts * 2 >= total
                && (st.keyed * 5 >= st.spans_in_carts || hinted(d.s(**n), &shop_words))
        })
        .map(|(n, _)| *n)
        .collect();
    candidates.sort_by_key(|n| d.s(*n).to_string());

    // A client span and the server span of the same call are one step: the inner one's parent
    // is the outer one, nearly always, and lasts nearly as long.
    let by_id: HashMap<(u32, u32), usize> = d
        .spans
        .iter()
        .enumerate()
        .map(|(i, s)| ((s.trace, s.id), i))
        .collect();
    let mut child_of: HashMap<(u32, u32), usize> = HashMap::new();
    for (_, idx) in &cart_list {
        for &i in idx.iter() {
            let s = &d.spans[i];
            let Some(p) = s.parent.and_then(|p| by_id.get(&(s.trace, p))) else {
                continue;
            };
            let ps = &d.spans[*p];
            let (dc, dp) = (s.end - s.start, ps.end - ps.start);
            // Inside its parent's time (1 ms of clock skew allowed) and nearly as long.
            let inside = s.start + 1000 >= ps.start && s.end <= ps.end + 1000;
            if ps.name != s.name && inside && dc as f64 >= 0.6 * dp as f64 {
                *child_of.entry((s.name, ps.name)).or_default() += 1;
            }
        }
    }
    let mut step_of: HashMap<u32, u32> = candidates.iter().map(|n| (*n, *n)).collect();
    for &inner in &candidates {
        for &outer in &candidates {
            let pairs = child_of.get(&(inner, outer)).copied().unwrap_or(0);
            let (ni, no) = (names[&inner].spans_in_carts, names[&outer].spans_in_carts);
            if inner != outer && pairs as f64 >= 0.8 * ni as f64 && pairs as f64 >= 0.8 * no as f64
            {
                step_of.insert(inner, outer);
            }
        }
    }
    let root = |mut n: u32| {
        for _ in 0..8 {
            let up = step_of[&n];
            if up == n {
                break;
            }
            n = up;
        }
        n
    };
    let mut steps: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
    for &n in &candidates {
        steps.entry(root(n)).or_default().push(n);
    }
    // Per step, per cart: the first start of any of its names.
    let step_ids: Vec<u32> = steps.keys().copied().collect();
    let mut first: HashMap<u32, HashMap<u32, i64>> = HashMap::new();
    for (c, idx) in &cart_list {
        for &i in idx.iter() {
            let s = &d.spans[i];
            if let Some(st) = step_of.get(&s.name).map(|_| root(s.name)) {
                first.entry(st).or_default().entry(**c).or_insert(s.start);
            }
        }
    }
    let carts_of = |st: u32| first.get(&st).map_or(0, |m| m.len());
    // Order: how many other steps a step usually comes before.
    let before = |a: u32, b: u32| -> Option<f64> {
        let (fa, fb) = (first.get(&a)?, first.get(&b)?);
        let (mut n, mut k) = (0usize, 0usize);
        for (c, ta) in fa {
            if let Some(tb) = fb.get(c) {
                n += 1;
                k += usize::from(ta < tb);
            }
        }
        (n > 0).then(|| k as f64 / n as f64)
    };
    let mut ordered = step_ids.clone();
    let wins = |a: u32| -> usize {
        step_ids
            .iter()
            .filter(|&&b| b != a && before(a, b).is_some_and(|p| p > 0.5))
            .count()
    };
    ordered.sort_by_key(|&a| (std::cmp::Reverse(wins(a)), d.s(a).to_string()));
    if ordered.is_empty() {
        anyhow::bail!(
            "no span name recurs across the carts keyed by '{}': nothing to make stages of",
            key_names(cart).join("' or '")
        );
    }
    let step_names = |st: u32| -> Vec<String> {
        let mut v: Vec<String> = steps[&st].iter().map(|n| d.s(*n).to_string()).collect();
        v.sort();
        v
    };
    let step_spans = |st: u32| {
        steps[&st]
            .iter()
            .map(|n| names[n].spans_in_carts)
            .sum::<usize>()
    };
    let step_keyed = |st: u32| steps[&st].iter().map(|n| names[n].keyed).sum::<usize>();
    let step_errors = |st: u32| steps[&st].iter().map(|n| names[n].errors).sum::<usize>();
    let step_services = |st: u32| -> String {
        let mut svc: BTreeMap<&str, usize> = BTreeMap::new();
        for n in &steps[&st] {
            for (s, c) in &names[n].services {
                *svc.entry(d.s(*s)).or_default() += c;
            }
        }
        svc.keys().copied().collect::<Vec<_>>().join(", ")
    };
    let step_evidence = |st: u32| -> String {
        format!(
            "{}: in {} of {} carts ({}), {:.1} per cart, {} carry the cart key, {} failed; service {}",
            step_names(st)
                .iter()
                .map(|n| format!("'{n}'"))
                .collect::<Vec<_>>()
                .join(" and "),
            carts_of(st),
            n_carts,
            pct(carts_of(st), n_carts),
            step_spans(st) as f64 / carts_of(st).max(1) as f64,
            pct(step_keyed(st), step_spans(st)),
            pct(step_errors(st), step_spans(st)),
            step_services(st),
        )
    };

    // --- The first stage: what nearly every cart does, first.
    let active = *ordered
        .iter()
        .max_by_key(|&&st| {
            (
                carts_of(st),
                std::cmp::Reverse(ordered.iter().position(|x| *x == st)),
            )
        })
        .unwrap_or(&ordered[0]);
    if carts_of(active) * 2 < n_carts {
        weak.push(format!(
            "no step is reached by most carts; the first stage '{}' is in {} of them",
            step_names(active).join("', '"),
            pct(carts_of(active), n_carts)
        ));
    }

    // --- The success stage: after it, the cart does nothing more.
    struct Done {
        step: u32,
        has: Vec<String>,
        status_ok: bool,
        carts: usize,
        terminal: f64,
        why: String,
    }
    let mut best: Option<(f64, Done)> = None;
    for &st in &ordered {
        if st == active {
            continue;
        }
        // Attributes unique to each span that carries them (an order id), on part of the
        // step's spans: they can tell a placed order from a failed attempt.
        let mut attr_spans: HashMap<u32, (usize, HashSet<u32>)> = HashMap::new();
        for (_, idx) in &cart_list {
            for &i in idx.iter() {
                let s = &d.spans[i];
                if root_opt(&step_of, s.name, &root) != Some(st) {
                    continue;
                }
                for &(k, v) in &s.attrs {
                    let e = attr_spans.entry(k).or_default();
                    e.0 += 1;
                    e.1.insert(v);
                }
            }
        }
        let total = step_spans(st);
        let mut order_keys: Vec<(u32, usize)> = attr_spans
            .iter()
            .filter(|(k, (n, vals))| {
                *n >= 3
                    && vals.len() as f64 >= 0.95 * *n as f64
                    && group_of(**k).is_none()
                    && stats.get(k).is_some_and(|s| s.fractional * 2 <= s.spans)
            })
            .map(|(k, (n, _))| (*k, *n))
            .collect();
        order_keys.sort_by_key(|(k, n)| {
            (
                !hinted(d.s(*k), ORDER_ID_WORDS),
                std::cmp::Reverse(*n),
                d.s(*k).to_string(),
            )
        });
        let has_errors = step_errors(st) > 0;
        let mut variants: Vec<(Vec<String>, bool)> = vec![(vec![], false)];
        if has_errors {
            variants.push((vec![], true));
        }
        // An order id on every span of the step says the same as its name: only a key on
        // part of them is worth a condition.
        let order_on_all = order_keys.first().filter(|(_, n)| *n >= total);
        if let Some((k, n)) = order_keys.first() {
            if *n < total {
                variants.push((vec![d.s(*k).to_string()], has_errors));
            }
        }
        for (has, ok) in variants {
            let hk: Vec<u32> = has
                .iter()
                .filter_map(|h| d.strings.ids.get(h).copied())
                .collect();
            let (mut reached, mut terminal) = (0usize, 0usize);
            for (_, idx) in &cart_list {
                let m = idx.iter().copied().find(|&i| {
                    let s = &d.spans[i];
                    root_opt(&step_of, s.name, &root) == Some(st)
                        && (!ok || !s.error)
                        && (hk.is_empty() || s.attrs.iter().any(|(k, _)| hk.contains(k)))
                });
                let Some(m) = m else { continue };
                reached += 1;
                let end = d.spans[m].end;
                if !idx.iter().any(|&i| d.spans[i].start > end + 1_000_000) {
                    terminal += 1;
                }
            }
            if reached < min_carts || reached as f64 > 0.98 * n_carts as f64 {
                continue;
            }
            let t = terminal as f64 / reached as f64;
            let named = step_names(st).iter().any(|n| hinted(n, DONE_WORDS));
            let score =
                t + if has.is_empty() && order_on_all.is_none() {
                    0.0
                } else {
                    0.1
                } + if named { 0.05 } else { 0.0 }
                    + if ok { 0.01 } else { 0.0 };
            let every = match order_on_all {
                Some((k, _)) if has.is_empty() => {
                    format!(" (each carries its own '{}': an order id)", d.s(*k))
                }
                _ => String::new(),
            };
            let why = format!(
                "{}{every}{}{}: reached by {} of {} carts ({}); in {} of them the cart does nothing after it",
                step_names(st)
                    .iter()
                    .map(|n| format!("'{n}'"))
                    .collect::<Vec<_>>()
                    .join(" and "),
                if has.is_empty() {
                    String::new()
                } else {
                    format!(
                        " carrying '{}' (a value unique to each span, on part of them: an order was placed)",
                        has[0]
                    )
                },
                if ok { " that did not fail" } else { "" },
                reached,
                n_carts,
                pct(reached, n_carts),
                pct(terminal, reached),
            );
            if best.as_ref().is_none_or(|(b, _)| score > *b) {
                best = Some((
                    score,
                    Done {
                        step: st,
                        has,
                        status_ok: ok,
                        carts: reached,
                        terminal: t,
                        why,
                    },
                ));
            }
        }
    }
    let done = match best {
        Some((_, d)) => d,
        None => {
            let st = *ordered.last().unwrap_or(&active);
            weak.push(format!(
                "no step looks like a completed order (one that part of the carts reach and then do nothing more); the last step '{}' stands in: name the span that shows an order was placed",
                step_names(st).join("', '")
            ));
            Done {
                step: st,
                has: vec![],
                status_ok: false,
                carts: carts_of(st),
                terminal: 0.0,
                why: String::new(),
            }
        }
    };
    if !done.why.is_empty() && done.terminal < 0.8 {
        weak.push(format!(
            "the success stage is weakly supported: {} (a completed order is usually a cart's last step)",
            done.why
        ));
    }

    // --- The stages between: named by what they do where their names say it.
    let done_is_whole_step = done.has.is_empty() && !done.status_ok;
    let mut stages: Vec<(String, Vec<u32>, String)> = Vec::new();
    let mut unnamed = 0;
    for &st in &ordered {
        if st == active || (st == done.step && done_is_whole_step) {
            continue;
        }
        if carts_of(st) < min_carts {
            continue;
        }
        let n = step_names(st);
        let role = if n.iter().any(|x| hinted(x, CHECKOUT_WORDS)) {
            Some("checkout")
        } else if n.iter().any(|x| hinted(x, SHIPPING_WORDS)) {
            Some("shipping")
        } else if n.iter().any(|x| hinted(x, PAYMENT_WORDS)) {
            Some("payment")
        } else {
            None
        };
        let name = match role {
            Some(r) => r.to_string(),
            None => {
                unnamed += 1;
                format!("step_{}", stages.len() + 2)
            }
        };
        match stages.iter_mut().find(|(n, _, _)| *n == name) {
            Some(s) => {
                s.1.push(st);
                s.2.push_str(&format!("\n#   and {}", step_evidence(st)));
            }
            None => stages.push((name, vec![st], step_evidence(st))),
        }
    }
    if unnamed > 0 {
        notes.push(format!(
            "{unnamed} stage{} named step_N: no word in {} says what {} (rename them as you like: only their order counts)",
            if unnamed == 1 { "" } else { "s are" },
            if unnamed == 1 { "its span names" } else { "their span names" },
            if unnamed == 1 { "it does" } else { "they do" },
        ));
    }

    // --- Value and item count: numbers on the cart's spans that grow within a cart.
    struct NumStats {
        carts: usize,
        grows: usize,
        several: usize,
        decreases: usize,
        pairs: usize,
        integer: usize,
        spans: usize,
    }
    let mut nums: HashMap<u32, NumStats> = HashMap::new();
    for (_, idx) in &cart_list {
        let mut per: HashMap<u32, Vec<(i64, f64)>> = HashMap::new();
        for &i in idx.iter() {
            let s = &d.spans[i];
            if carried(s, cart).is_none() && !cart_is_user {
                continue;
            }
            for &(k, v) in &s.attrs {
                if group_of(k).is_some() {
                    continue;
                }
                if let Some(x) = d.num(v) {
                    per.entry(k).or_default().push((s.end, x));
                }
            }
        }
        for (k, mut obs) in per {
            obs.sort_by_key(|o| o.0);
            let e = nums.entry(k).or_insert(NumStats {
                carts: 0,
                grows: 0,
                several: 0,
                decreases: 0,
                pairs: 0,
                integer: 0,
                spans: 0,
            });
            e.carts += 1;
            e.spans += obs.len();
            e.integer += obs.iter().filter(|(_, x)| x.fract() == 0.0).count();
            if obs.len() >= 2 {
                e.several += 1;
                let (lo, hi) = obs.iter().fold((f64::MAX, f64::MIN), |(l, h), (_, x)| {
                    (l.min(*x), h.max(*x))
                });
                e.grows += usize::from(hi > lo);
                for w in obs.windows(2) {
                    e.pairs += 1;
                    e.decreases += usize::from(w[1].1 < w[0].1);
                }
            }
        }
    }
    let pick_number = |integer: bool, words: &[&str]| -> Option<(u32, String)> {
        let mut best: Option<(f64, u32, String)> = None;
        for (k, st) in &nums {
            let int_share = st.integer as f64 / st.spans.max(1) as f64;
            let fits = if integer {
                int_share >= 0.99
            } else {
                int_share < 0.7
            };
            let cover = st.carts as f64 / n_carts.max(1) as f64;
            let grows = st.grows as f64 / st.several.max(1) as f64;
            let steady = 1.0 - st.decreases as f64 / st.pairs.max(1) as f64;
            if !fits || cover < 0.3 || (st.several > 0 && (grows < 0.2 || steady < 0.8)) {
                continue;
            }
            let score = cover + steady + if hinted(d.s(*k), words) { 0.5 } else { 0.0 };
            let why = format!(
                "'{}': on {} of {} carts ({}); {} of the carts seen more than once have it grow, {} of successive readings never fall{}",
                d.s(*k),
                st.carts,
                n_carts,
                pct(st.carts, n_carts),
                pct(st.grows, st.several),
                pct(st.pairs - st.decreases, st.pairs),
                if integer { "; whole numbers" } else { "; with fractions (money)" }
            );
            if best
                .as_ref()
                .is_none_or(|(b, bk, _)| score > *b || (score == *b && d.s(*k) < d.s(*bk)))
            {
                best = Some((score, *k, why));
            }
        }
        best.map(|(_, k, w)| (k, w))
    };
    let value = pick_number(false, VALUE_WORDS);
    let count = pick_number(true, COUNT_WORDS);
    if value.is_none() {
        notes.push("no number on the carts' spans looks like the cart's value (money that grows as items are added): total_value left empty, so revenue figures are 0".into());
    }
    if count.is_none() {
        notes.push(
            "no whole number on the carts' spans looks like the item count: item_count left empty"
                .into(),
        );
    }

    // --- Idle gaps, for the threshold.
    let mut gaps: Vec<i64> = Vec::new();
    for (_, idx) in &cart_list {
        let mut max_end: Option<i64> = None;
        for &i in idx.iter() {
            let s = &d.spans[i];
            if let Some(e) = max_end {
                if s.start > e {
                    gaps.push(s.start - e);
                }
            }
            max_end = Some(max_end.map_or(s.end, |e| e.max(s.end)));
        }
    }
    gaps.sort_unstable();
    let q = |p: f64| -> String {
        if gaps.is_empty() {
            return "-".into();
        }
        let i = ((p * gaps.len() as f64).ceil() as usize).clamp(1, gaps.len()) - 1;
        crate::time::format_duration((gaps[i].max(0) as u64 / 1000) * 1_000_000)
    };

    // --- The file.
    let user_keys: Vec<String> = if cart_is_user {
        key_names(cart)
    } else {
        user_group.map(key_names).unwrap_or_default()
    };
    let cart_keys: Vec<String> = if cart_is_user {
        vec![]
    } else {
        key_names(cart)
    };
    let mut t = String::new();
    let _ = writeln!(
        t,
        "# cartscope lifecycle model, suggested by `cartscope model --suggest` from {} spans in {} traces.\n\
         # Each choice is commented with its evidence; read the notes, then edit what does not fit.\n\
         # `cartscope detect --explain --model THIS_FILE` shows what each stage matches.",
        d.spans.len(),
        traces.len()
    );
    for w in &weak {
        let _ = writeln!(t, "# WEAK EVIDENCE: {w}");
    }
    for n in &notes {
        let _ = writeln!(t, "# note: {n}");
    }
    let _ = writeln!(t, "name = \"suggested\"");
    let _ = writeln!(
        t,
        "\n# Idle gaps inside carts: median {}, 95th percentile {}, 99th {}, longest {}.\n\
         # 30m is the usual rule for an abandoned cart; a cart idle this long is judged abandoned.\n\
         threshold = \"30m\"",
        q(0.5),
        q(0.95),
        q(0.99),
        q(1.0)
    );
    let _ = writeln!(t, "\n[keys]");
    for e in &key_evidence {
        let _ = writeln!(t, "# {e}");
    }
    let _ = writeln!(t, "cart_id = {}", list(&cart_keys));
    let _ = writeln!(t, "user_id = {}", list(&user_keys));
    let _ = writeln!(t, "session_id = []");
    match &count {
        Some((_, why)) => {
            let _ = writeln!(t, "# item count {why}");
        }
        None => {
            let _ = writeln!(t, "# item count: none found");
        }
    }
    let _ = writeln!(
        t,
        "item_count = {}",
        list(
            &count
                .iter()
                .map(|(k, _)| d.s(*k).to_string())
                .collect::<Vec<_>>()
        )
    );
    match &value {
        Some((_, why)) => {
            let _ = writeln!(t, "# value {why}");
        }
        None => {
            let _ = writeln!(t, "# value: none found");
        }
    }
    let _ = writeln!(
        t,
        "total_value = {}",
        list(
            &value
                .iter()
                .map(|(k, _)| d.s(*k).to_string())
                .collect::<Vec<_>>()
        )
    );
    let _ = writeln!(t, "cart_is_user = {cart_is_user}");

    let write_stage = |t: &mut String, name: &str, why: &str, spans: &[String], extra: &str| {
        let _ = writeln!(t, "\n# {why}");
        let _ = writeln!(
            t,
            "[[stages]]\nname = {}\nspans = {}{extra}",
            quote(name),
            list(spans)
        );
    };
    write_stage(
        &mut t,
        "active",
        &format!(
            "Adding to the cart, the step most carts take and take first: {}",
            step_evidence(active)
        ),
        &step_names(active),
        "",
    );
    for (name, sts, why) in &stages {
        let mut spans: Vec<String> = sts.iter().flat_map(|s| step_names(*s)).collect();
        spans.sort();
        write_stage(&mut t, name, why, &spans, "");
    }
    let mut extra = String::new();
    if !done.has.is_empty() {
        let _ = write!(extra, "\nhas = {}", list(&done.has));
    }
    if done.status_ok {
        extra.push_str("\nstatus = \"ok\"");
    }
    extra.push_str("\nsuccess = true");
    let why = if done.why.is_empty() {
        "The success stage: no evidence; see WEAK EVIDENCE above".to_string()
    } else {
        format!("The success stage, an order placed: {}", done.why)
    };
    write_stage(&mut t, "completed", &why, &step_names(done.step), &extra);
    let _ = writeln!(
        t,
        "\n# The cause rules and the rows the replay writes for each abandonment (defaults).\n\
         [causes]\nslow_ms = 2000.0\nerror_window = \"5m\"\npercentile = 0.95\n\n\
         [derived]\nspan_name = \"cart.abandonment.detected\"\nmetric_name = \"cart.state.transitions\"\n\
         stage_attribute = \"cart.stage\"\nabandoned_stage = \"abandoned\"\n\
         cart_id_attribute = \"cart.id\"\nservice_name = \"cart\""
    );
    let model = Model::parse(&t, "suggested").context("the suggested model does not parse")?;
    let _ = done.carts;
    Ok(Suggestion {
        toml: t,
        model,
        weak,
        carts: n_carts,
    })
}

fn root_opt(step_of: &HashMap<u32, u32>, n: u32, root: &impl Fn(u32) -> u32) -> Option<u32> {
    step_of.contains_key(&n).then(|| root(n))
}
