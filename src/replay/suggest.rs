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
const SHIPPING_WORDS: &[&str] = &["ship", "quote", "deliver", "freight"];
/// Attributes of database client spans (OpenTelemetry's semantic conventions, old and new):
/// a query is part of a step, never a step.
const DB_KEYS: &[&str] = &["db.system", "db.system.name"];
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

impl KeyStats {
    fn money(&self) -> bool {
        self.fractional * 2 > self.spans
    }
}

/// A key and its other spellings (keys whose values are largely the same).
struct Group {
    keys: Vec<u32>,
    spans: usize,
    traces: usize,
    values: HashSet<u32>,
    traces_per_value: f64,
}

/// What the evidence left open: said in the file and on stderr.
#[derive(Default)]
struct Doubts {
    weak: Vec<String>,
    notes: Vec<String>,
}

pub async fn suggest(ctx: &SessionContext) -> Result<Suggestion> {
    let d = read(ctx).await?;
    if d.spans.is_empty() {
        anyhow::bail!("the data has no spans: a model is read off the spans of an export");
    }
    let mut doubts = Doubts::default();
    let keys = Keys::choose(&d, &mut doubts)?;
    let carts = carts(&d, &keys);
    let steps = Steps::find(&d, &keys, &carts)?;
    let active = steps.first(&mut doubts);
    let done = success(&d, &keys, &carts, &steps, active, &mut doubts);
    let stages = middle_stages(&steps, active, &done, &mut doubts);
    let value = number(&d, &keys, &carts, false);
    let count = number(&d, &keys, &carts, true);
    if value.is_none() {
        doubts.notes.push("no number on the carts' spans looks like the cart's value (money that grows as items are added): total_value left empty, so the report has no recorded value to estimate revenue at risk from".into());
    }
    if count.is_none() {
        doubts.notes.push(
            "no whole number on the carts' spans looks like the item count: item_count left empty"
                .into(),
        );
    }
    let toml = write(&Choices {
        d: &d,
        keys: &keys,
        steps: &steps,
        active,
        stages: &stages,
        done: &done,
        value: &value,
        count: &count,
        gaps: &gaps(&d, &carts),
        doubts: &doubts,
    });
    let model = Model::parse(&toml, "suggested").context("the suggested model does not parse")?;
    Ok(Suggestion {
        toml,
        model,
        weak: doubts.weak,
        carts: carts.len(),
    })
}

/// The cart key, the user key, and the evidence for them.
struct Keys {
    groups: Vec<Group>,
    stats: HashMap<u32, KeyStats>,
    traces: usize,
    cart: usize,
    user: Option<usize>,
    cart_is_user: bool,
    evidence: Vec<String>,
}

impl Keys {
    fn choose(d: &Data, doubts: &mut Doubts) -> Result<Keys> {
        let (stats, groups, traces) = key_groups(d);
        if groups.is_empty() {
            anyhow::bail!(
                "no attribute looks like a cart or user id: none has many values that each recur in several traces. Name the key in a model by hand (cartscope model --print reference)"
            );
        }
        let mut k = Keys {
            groups,
            stats,
            traces,
            cart: 0,
            user: None,
            cart_is_user: false,
            evidence: Vec::new(),
        };
        let n = k.groups.len();
        if let Some(c) = (0..n).find(|&g| k.hint(d, g, CART_WORDS)) {
            k.cart = c;
            k.evidence
                .push(format!("cart key, named as one, {}", k.describe(d, c)));
        } else if let Some((a, b, share)) = k.finer_pair(d) {
            // The finer of two keys where each value of one goes with one value of the other.
            k.cart = a;
            k.user = Some(b);
            k.evidence.push(format!("cart key {}", k.describe(d, a)));
            k.evidence.push(format!(
                "{:.0}% of its values go with a single value of '{}', which has fewer values, each with several of them: the cart's owner, not the cart",
                100.0 * share,
                k.names(d, b).join("' or '")
            ));
        } else if k.hint(d, 0, USER_WORDS) || n == 1 && k.hint(d, 0, &["session", "client"]) {
            // One key, the owner's: the cart is its user's.
            k.cart_is_user = true;
            k.evidence.push(format!(
                "no cart key: a cart is its user's (cart_is_user); user key {}",
                k.describe(d, 0)
            ));
        } else {
            k.evidence.push(format!("cart key {}", k.describe(d, 0)));
            doubts.weak.push(format!(
                "the cart key '{}' was chosen only because its values group the most spans into several traces each, and its name does not say whose they are; check that it is a cart's (or set cart_is_user = true and move it to user_id if it is the user's)",
                k.names(d, 0).join("' or '")
            ));
        }
        if k.user.is_none() && !k.cart_is_user {
            k.user = (0..n).find(|&g| g != k.cart && k.hint(d, g, USER_WORDS));
            if let Some(u) = k.user {
                k.evidence
                    .push(format!("user key, named as one, {}", k.describe(d, u)));
            }
        }
        for g in 0..n {
            if g != k.cart && Some(g) != k.user {
                doubts.notes.push(format!(
                    "also groups traces, not used: {}{}",
                    k.describe(d, g),
                    if k.hint(d, g, &["session"]) {
                        " (a session: set keys.session_id to it to join a cart's traces that lack the cart key)"
                    } else {
                        ""
                    }
                ));
            }
        }
        Ok(k)
    }

    /// Of two groups A and B where (nearly) each value of A goes with one value of B and not
    /// the other way round: (A, B, the share).
    fn finer_pair(&self, d: &Data) -> Option<(usize, usize, f64)> {
        let n = self.groups.len();
        for a in 0..n {
            for b in 0..n {
                if a == b || self.groups[a].values.len() <= self.groups[b].values.len() {
                    continue;
                }
                let (ab, seen) = self.depends(d, a, b);
                let (ba, _) = self.depends(d, b, a);
                if seen > 0 && ab >= 0.98 && ba < 0.9 {
                    return Some((a, b, ab));
                }
            }
        }
        None
    }

    /// Functional dependence: the share of A's values that go with a single value of B, and
    /// how many of A's values were seen beside one of B's.
    fn depends(&self, d: &Data, a: usize, b: usize) -> (f64, usize) {
        let mut m: HashMap<u32, HashSet<u32>> = HashMap::new();
        for s in &d.spans {
            if let (Some(va), Some(vb)) = (self.carried(s, a), self.carried(s, b)) {
                m.entry(va).or_default().insert(vb);
            }
        }
        let single = m.values().filter(|s| s.len() == 1).count();
        (single as f64 / m.len().max(1) as f64, m.len())
    }

    /// The value of group `g` that a span carries.
    fn carried(&self, s: &Span, g: usize) -> Option<u32> {
        s.attrs
            .iter()
            .find(|(k, _)| self.groups[g].keys.contains(k))
            .map(|(_, v)| *v)
    }

    /// The cart's value on a span.
    fn cart_of(&self, s: &Span) -> Option<u32> {
        self.carried(s, self.cart)
    }

    fn is_grouping(&self, k: u32) -> bool {
        self.groups.iter().any(|g| g.keys.contains(&k))
    }

    fn hint(&self, d: &Data, g: usize, words: &[&str]) -> bool {
        self.groups[g].keys.iter().any(|k| hinted(d.s(*k), words))
    }

    fn names(&self, d: &Data, g: usize) -> Vec<String> {
        self.groups[g]
            .keys
            .iter()
            .map(|k| d.s(*k).to_string())
            .collect()
    }

    fn describe(&self, d: &Data, g: usize) -> String {
        let gr = &self.groups[g];
        format!(
            "{}: on {} of {} spans ({}), in {} of {} traces; {} values, {:.1} traces each",
            self.names(d, g)
                .iter()
                .map(|k| format!("'{k}'"))
                .collect::<Vec<_>>()
                .join(" or "),
            gr.spans,
            d.spans.len(),
            pct(gr.spans, d.spans.len()),
            gr.traces,
            self.traces,
            gr.values.len(),
            gr.traces_per_value
        )
    }
}

/// Every key's shape, the keys that group traces (many values, each in more than one trace,
/// none of them money) with their spellings merged, and the number of traces.
fn key_groups(d: &Data) -> (HashMap<u32, KeyStats>, Vec<Group>, usize) {
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
            if e.money() {
                continue; // not a key: no need to count its traces
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
    let mut groupers: Vec<u32> = stats
        .iter()
        .filter(|(k, st)| {
            let tpv = st.value_traces as f64 / st.values.max(1) as f64;
            st.values >= 5
                && tpv >= 1.3
                && st.values as f64 >= 0.05 * st.traces as f64
                && !st.money()
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
    (stats, groups, traces.len())
}

/// The carts: every span of a trace that carries the cart key (the least value where a trace
/// has several, as the replay does), each cart's spans in start order, carts by key.
fn carts(d: &Data, keys: &Keys) -> Vec<(u32, Vec<usize>)> {
    let mut trace_cart: HashMap<u32, u32> = HashMap::new();
    for s in &d.spans {
        if let Some(v) = keys.cart_of(s) {
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
    let mut list: Vec<(u32, Vec<usize>)> = carts.into_iter().collect();
    for (_, v) in &mut list {
        v.sort_by_key(|&i| (d.spans[i].start, d.spans[i].end));
    }
    list.sort_by(|a, b| d.s(a.0).cmp(d.s(b.0)));
    list
}

/// One span name's shape inside the carts.
#[derive(Default)]
struct NameStats {
    carts: usize,
    spans: usize,
    keyed: usize,
    errors: usize,
    services: BTreeMap<u32, usize>,
}

/// The steps carts take: span names that look like a shop's steps, a client span and the
/// server span of the same call as one step (named by the outer), in the order carts reach them.
struct Steps<'a> {
    d: &'a Data,
    names: HashMap<u32, NameStats>,
    /// Each candidate name's step.
    step_of: HashMap<u32, u32>,
    /// Each step's names.
    members: BTreeMap<u32, Vec<u32>>,
    /// The steps, earliest first.
    ordered: Vec<u32>,
    /// Per step, per cart: the first start of any of its names.
    first: HashMap<u32, HashMap<u32, i64>>,
    n_carts: usize,
    min_carts: usize,
}

impl<'a> Steps<'a> {
    fn find(d: &'a Data, keys: &Keys, carts: &[(u32, Vec<usize>)]) -> Result<Steps<'a>> {
        let mut names: HashMap<u32, NameStats> = HashMap::new();
        let mut total_by_name: HashMap<u32, usize> = HashMap::new();
        for s in &d.spans {
            *total_by_name.entry(s.name).or_default() += 1;
        }
        for (_, idx) in carts {
            let mut seen = HashSet::new();
            for &i in idx {
                let s = &d.spans[i];
                let n = names.entry(s.name).or_default();
                n.spans += 1;
                n.keyed += usize::from(keys.cart_of(s).is_some());
                n.errors += usize::from(s.error);
                *n.services.entry(s.service).or_default() += 1;
                if seen.insert(s.name) {
                    n.carts += 1;
                }
            }
        }
        // Words of the steps after the cart: a payment service's span often carries no cart
        // key, and is a step all the same (a table named cart_items is not).
        let step_words: Vec<&str> =
            [CHECKOUT_WORDS, SHIPPING_WORDS, PAYMENT_WORDS, DONE_WORDS].concat();
        let db: HashSet<u32> = DB_KEYS
            .iter()
            .filter_map(|k| d.strings.ids.get(*k).copied())
            .collect();
        let queries: HashSet<u32> = d
            .spans
            .iter()
            .filter(|s| s.attrs.iter().any(|(k, _)| db.contains(k)))
            .map(|s| s.name)
            .collect();
        let min_carts = (carts.len() / 100).max(3);
        // Candidates: in enough carts, mostly inside carts, not database queries, and
        // carrying the key or named like a step.
        let mut candidates: Vec<u32> = names
            .iter()
            .filter(|(n, st)| {
                st.carts >= min_carts
                    && !d.s(**n).is_empty()
                    && !queries.contains(n)
                    && st.spans * 2 >= total_by_name[n]
                    && (st.keyed * 5 >= st.spans || hinted(d.s(**n), &step_words))
            })
            .map(|(n, _)| *n)
            .collect();
        candidates.sort_by_key(|n| d.s(*n).to_string());
        let step_of = fold_calls(d, carts, &names, &candidates);
        let mut members: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
        for &n in &candidates {
            members.entry(step_of[&n]).or_default().push(n);
        }
        let mut first: HashMap<u32, HashMap<u32, i64>> = HashMap::new();
        for (c, idx) in carts {
            for &i in idx {
                let s = &d.spans[i];
                if let Some(st) = step_of.get(&s.name) {
                    first.entry(*st).or_default().entry(*c).or_insert(s.start);
                }
            }
        }
        let mut steps = Steps {
            d,
            names,
            step_of,
            members,
            ordered: Vec::new(),
            first,
            n_carts: carts.len(),
            min_carts,
        };
        steps.ordered = steps.order();
        if steps.ordered.is_empty() {
            anyhow::bail!(
                "no span name recurs across the carts keyed by '{}': nothing to make stages of",
                keys.names(d, keys.cart).join("' or '")
            );
        }
        Ok(steps)
    }

    /// The steps, sorted by how many other steps each usually comes before.
    fn order(&self) -> Vec<u32> {
        let ids: Vec<u32> = self.members.keys().copied().collect();
        let before = |a: u32, b: u32| -> Option<f64> {
            let (fa, fb) = (self.first.get(&a)?, self.first.get(&b)?);
            let (mut n, mut k) = (0usize, 0usize);
            for (c, ta) in fa {
                if let Some(tb) = fb.get(c) {
                    n += 1;
                    k += usize::from(ta < tb);
                }
            }
            (n > 0).then(|| k as f64 / n as f64)
        };
        let wins = |a: u32| {
            ids.iter()
                .filter(|&&b| b != a && before(a, b).is_some_and(|p| p > 0.5))
                .count()
        };
        let mut ordered = ids.clone();
        ordered.sort_by_key(|&a| (std::cmp::Reverse(wins(a)), self.d.s(a).to_string()));
        ordered
    }

    /// The first stage: the step most carts take, the earlier of equals.
    fn first(&self, doubts: &mut Doubts) -> u32 {
        let active = *self
            .ordered
            .iter()
            .enumerate()
            .max_by_key(|(i, st)| (self.carts(**st), std::cmp::Reverse(*i)))
            .map(|(_, st)| st)
            .unwrap_or(&self.ordered[0]);
        if self.carts(active) * 2 < self.n_carts {
            doubts.weak.push(format!(
                "no step is reached by most carts; the first stage '{}' is in {} of them",
                self.names(active).join("', '"),
                pct(self.carts(active), self.n_carts)
            ));
        }
        active
    }

    fn step(&self, name: u32) -> Option<u32> {
        self.step_of.get(&name).copied()
    }

    fn carts(&self, st: u32) -> usize {
        self.first.get(&st).map_or(0, |m| m.len())
    }

    fn names(&self, st: u32) -> Vec<String> {
        let mut v: Vec<String> = self.members[&st]
            .iter()
            .map(|n| self.d.s(*n).to_string())
            .collect();
        v.sort();
        v
    }

    fn sum(&self, st: u32, f: impl Fn(&NameStats) -> usize) -> usize {
        self.members[&st].iter().map(|n| f(&self.names[n])).sum()
    }

    fn quoted(&self, st: u32) -> String {
        self.names(st)
            .iter()
            .map(|n| format!("'{n}'"))
            .collect::<Vec<_>>()
            .join(" and ")
    }

    fn evidence(&self, st: u32) -> String {
        let mut services: BTreeMap<&str, usize> = BTreeMap::new();
        for n in &self.members[&st] {
            for (s, c) in &self.names[n].services {
                *services.entry(self.d.s(*s)).or_default() += c;
            }
        }
        let spans = self.sum(st, |n| n.spans);
        format!(
            "{}: in {} of {} carts ({}), {:.1} per cart, {} carry the cart key, {} failed; service {}",
            self.quoted(st),
            self.carts(st),
            self.n_carts,
            pct(self.carts(st), self.n_carts),
            spans as f64 / self.carts(st).max(1) as f64,
            pct(self.sum(st, |n| n.keyed), spans),
            pct(self.sum(st, |n| n.errors), spans),
            services.keys().copied().collect::<Vec<_>>().join(", "),
        )
    }
}

/// Folds a client span and the server span of the same call into one step: the inner one's
/// parent is the outer one, nearly always, and it lies inside it and lasts nearly as long.
/// Returns each candidate's step (the outermost name).
fn fold_calls(
    d: &Data,
    carts: &[(u32, Vec<usize>)],
    names: &HashMap<u32, NameStats>,
    candidates: &[u32],
) -> HashMap<u32, u32> {
    let by_id: HashMap<(u32, u32), usize> = d
        .spans
        .iter()
        .enumerate()
        .map(|(i, s)| ((s.trace, s.id), i))
        .collect();
    let mut pairs: HashMap<(u32, u32), usize> = HashMap::new();
    for (_, idx) in carts {
        for &i in idx {
            let s = &d.spans[i];
            let Some(p) = s.parent.and_then(|p| by_id.get(&(s.trace, p))) else {
                continue;
            };
            let ps = &d.spans[*p];
            // Inside its parent's time (1 ms of clock skew allowed) and nearly as long.
            let inside = s.start + 1000 >= ps.start && s.end <= ps.end + 1000;
            let long = (s.end - s.start) as f64 >= 0.6 * (ps.end - ps.start) as f64;
            if ps.name != s.name && inside && long {
                *pairs.entry((s.name, ps.name)).or_default() += 1;
            }
        }
    }
    let mut up: HashMap<u32, u32> = candidates.iter().map(|n| (*n, *n)).collect();
    for &inner in candidates {
        for &outer in candidates {
            let n = pairs.get(&(inner, outer)).copied().unwrap_or(0) as f64;
            if inner != outer
                && n >= 0.8 * names[&inner].spans as f64
                && n >= 0.8 * names[&outer].spans as f64
            {
                up.insert(inner, outer);
            }
        }
    }
    candidates
        .iter()
        .map(|&n| {
            let mut top = n;
            for _ in 0..8 {
                if up[&top] == top {
                    break;
                }
                top = up[&top];
            }
            (n, top)
        })
        .collect()
}

/// The success stage.
struct Done {
    step: u32,
    has: Vec<String>,
    status_ok: bool,
    why: String,
}

/// The success stage: the step (with, where it tells a placed order from a failed attempt,
/// an attribute unique to each span, such as an order id, and status ok) after which a cart
/// does nothing more.
fn success(
    d: &Data,
    keys: &Keys,
    carts: &[(u32, Vec<usize>)],
    steps: &Steps,
    active: u32,
    doubts: &mut Doubts,
) -> Done {
    let mut best: Option<(f64, Done, f64)> = None;
    for &st in &steps.ordered {
        if st == active {
            continue;
        }
        let total = steps.sum(st, |n| n.spans);
        let order_key = order_key(d, keys, carts, steps, st);
        // An order id on every span of the step says the same as its name: only a key on
        // part of them is worth a condition.
        let order_on_all = order_key.filter(|(_, n)| *n >= total).map(|(k, _)| k);
        let has_errors = steps.sum(st, |n| n.errors) > 0;
        let mut variants: Vec<(Vec<String>, bool)> = vec![(vec![], false)];
        if has_errors {
            variants.push((vec![], true));
        }
        if let Some((k, _)) = order_key.filter(|(_, n)| *n < total) {
            variants.push((vec![d.s(k).to_string()], has_errors));
        }
        for (has, ok) in variants {
            let hk: Vec<u32> = has
                .iter()
                .filter_map(|h| d.strings.ids.get(h).copied())
                .collect();
            let (mut reached, mut terminal) = (0usize, 0usize);
            for (_, idx) in carts {
                let m = idx.iter().copied().find(|&i| {
                    let s = &d.spans[i];
                    steps.step(s.name) == Some(st)
                        && (!ok || !s.error)
                        && (hk.is_empty() || s.attrs.iter().any(|(k, _)| hk.contains(k)))
                });
                let Some(m) = m else { continue };
                reached += 1;
                // Nothing starts after it ends (1 s allowed).
                let end = d.spans[m].end;
                if !idx.iter().any(|&i| d.spans[i].start > end + 1_000_000) {
                    terminal += 1;
                }
            }
            if reached < steps.min_carts || reached as f64 > 0.98 * steps.n_carts as f64 {
                continue;
            }
            let t = terminal as f64 / reached as f64;
            let named = steps.names(st).iter().any(|n| hinted(n, DONE_WORDS));
            let with_id = !has.is_empty() || order_on_all.is_some();
            let score = t
                + if with_id { 0.1 } else { 0.0 }
                + if named { 0.05 } else { 0.0 }
                + if ok { 0.01 } else { 0.0 };
            let every = match order_on_all {
                Some(k) if has.is_empty() => {
                    format!(" (each carries its own '{}': an order id)", d.s(k))
                }
                _ => String::new(),
            };
            let why = format!(
                "{}{every}{}{}: reached by {} of {} carts ({}); in {} of them the cart does nothing after it",
                steps.quoted(st),
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
                steps.n_carts,
                pct(reached, steps.n_carts),
                pct(terminal, reached),
            );
            if best.as_ref().is_none_or(|(b, _, _)| score > *b) {
                let done = Done {
                    step: st,
                    has,
                    status_ok: ok,
                    why,
                };
                best = Some((score, done, t));
            }
        }
    }
    match best {
        Some((_, done, terminal)) => {
            if terminal < 0.8 {
                doubts.weak.push(format!(
                    "the success stage is weakly supported: {} (a completed order is usually a cart's last step)",
                    done.why
                ));
            }
            done
        }
        None => {
            let st = *steps.ordered.last().unwrap_or(&active);
            doubts.weak.push(format!(
                "no step looks like a completed order (one that part of the carts reach and then do nothing more); the last step '{}' stands in: name the span that shows an order was placed",
                steps.names(st).join("', '")
            ));
            Done {
                step: st,
                has: vec![],
                status_ok: false,
                why: String::new(),
            }
        }
    }
}

/// The attribute most like an order id on a step's spans (a value unique to each span that
/// carries it, not a grouping key, not money), with the number of spans carrying it.
fn order_key(
    d: &Data,
    keys: &Keys,
    carts: &[(u32, Vec<usize>)],
    steps: &Steps,
    st: u32,
) -> Option<(u32, usize)> {
    let mut seen: HashMap<u32, (usize, HashSet<u32>)> = HashMap::new();
    for (_, idx) in carts {
        for &i in idx {
            let s = &d.spans[i];
            if steps.step(s.name) != Some(st) {
                continue;
            }
            for &(k, v) in &s.attrs {
                let e = seen.entry(k).or_default();
                e.0 += 1;
                e.1.insert(v);
            }
        }
    }
    seen.into_iter()
        .filter(|(k, (n, vals))| {
            *n >= 3
                && vals.len() as f64 >= 0.95 * *n as f64
                && !keys.is_grouping(*k)
                && keys.stats.get(k).is_some_and(|s| !s.money())
        })
        .map(|(k, (n, _))| (k, n))
        .min_by_key(|(k, n)| {
            (
                !hinted(d.s(*k), ORDER_ID_WORDS),
                std::cmp::Reverse(*n),
                d.s(*k).to_string(),
            )
        })
}

/// The stages between the first and the success, named by what they do where their names
/// say it (steps named alike are one stage), else `step_N`: (name, steps, evidence).
fn middle_stages(
    steps: &Steps,
    active: u32,
    done: &Done,
    doubts: &mut Doubts,
) -> Vec<(String, Vec<u32>, String)> {
    let done_is_whole_step = done.has.is_empty() && !done.status_ok;
    let mut stages: Vec<(String, Vec<u32>, String)> = Vec::new();
    let mut unnamed = 0;
    for &st in &steps.ordered {
        if st == active || (st == done.step && done_is_whole_step) {
            continue;
        }
        let n = steps.names(st);
        let role = [
            ("checkout", CHECKOUT_WORDS),
            ("shipping", SHIPPING_WORDS),
            ("payment", PAYMENT_WORDS),
        ]
        .into_iter()
        .find(|(_, words)| n.iter().any(|x| hinted(x, words)))
        .map(|(r, _)| r);
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
                s.2.push_str(&format!("\n#   and {}", steps.evidence(st)));
            }
            None => stages.push((name, vec![st], steps.evidence(st))),
        }
    }
    if unnamed > 0 {
        doubts.notes.push(if unnamed == 1 {
            "1 stage is named step_N: no word in its span names says what it does (rename it as you like: only the order counts)".to_string()
        } else {
            format!("{unnamed} stages are named step_N: no word in their span names says what they do (rename them as you like: only their order counts)")
        });
    }
    stages
}

/// The cart's value (`integer` false: money, with fractions) or item count (whole numbers):
/// the number on the carts' spans that covers most carts, grows within a cart and never
/// falls. (The key, the evidence.)
fn number(
    d: &Data,
    keys: &Keys,
    carts: &[(u32, Vec<usize>)],
    integer: bool,
) -> Option<(u32, String)> {
    #[derive(Default)]
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
    for (_, idx) in carts {
        let mut per: HashMap<u32, Vec<(i64, f64)>> = HashMap::new();
        for &i in idx {
            let s = &d.spans[i];
            if keys.cart_of(s).is_none() {
                continue;
            }
            for &(k, v) in &s.attrs {
                if let (false, Some(x)) = (keys.is_grouping(k), d.num(v)) {
                    per.entry(k).or_default().push((s.end, x));
                }
            }
        }
        for (k, mut obs) in per {
            obs.sort_by_key(|o| o.0);
            let e = nums.entry(k).or_default();
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
    let words = if integer { COUNT_WORDS } else { VALUE_WORDS };
    let mut best: Option<(f64, u32, String)> = None;
    for (k, st) in &nums {
        let int_share = st.integer as f64 / st.spans.max(1) as f64;
        let fits = if integer {
            int_share >= 0.99
        } else {
            int_share < 0.7
        };
        let cover = st.carts as f64 / carts.len().max(1) as f64;
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
            carts.len(),
            pct(st.carts, carts.len()),
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
}

/// The idle gaps inside carts (a span starting after all earlier ones ended), in
/// microseconds, sorted.
fn gaps(d: &Data, carts: &[(u32, Vec<usize>)]) -> Vec<i64> {
    let mut gaps: Vec<i64> = Vec::new();
    for (_, idx) in carts {
        let mut max_end: Option<i64> = None;
        for &i in idx {
            let s = &d.spans[i];
            if let Some(e) = max_end.filter(|e| s.start > *e) {
                gaps.push(s.start - e);
            }
            max_end = Some(max_end.map_or(s.end, |e| e.max(s.end)));
        }
    }
    gaps.sort_unstable();
    gaps
}

/// Everything the file says.
struct Choices<'a> {
    d: &'a Data,
    keys: &'a Keys,
    steps: &'a Steps<'a>,
    active: u32,
    stages: &'a [(String, Vec<u32>, String)],
    done: &'a Done,
    value: &'a Option<(u32, String)>,
    count: &'a Option<(u32, String)>,
    gaps: &'a [i64],
    doubts: &'a Doubts,
}

/// The model as TOML, each choice under the comment that gives its evidence.
fn write(c: &Choices) -> String {
    let (d, keys, steps) = (c.d, c.keys, c.steps);
    let q = |p: f64| -> String {
        if c.gaps.is_empty() {
            return "-".into();
        }
        let i = ((p * c.gaps.len() as f64).ceil() as usize).clamp(1, c.gaps.len()) - 1;
        crate::time::format_duration((c.gaps[i].max(0) as u64 / 1000) * 1_000_000)
    };
    let mut t = String::new();
    let _ = writeln!(
        t,
        "# cartscope lifecycle model, suggested by `cartscope model --suggest` from {} spans in {} traces.\n\
         # Each choice is commented with its evidence; read the notes, then edit what does not fit.\n\
         # `cartscope detect --explain --model THIS_FILE` shows what each stage matches.",
        d.spans.len(),
        keys.traces
    );
    for w in &c.doubts.weak {
        let _ = writeln!(t, "# WEAK EVIDENCE: {w}");
    }
    for n in &c.doubts.notes {
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
    for e in &keys.evidence {
        let _ = writeln!(t, "# {e}");
    }
    let cart_names = keys.names(d, keys.cart);
    let (cart_keys, user_keys) = if keys.cart_is_user {
        (vec![], cart_names)
    } else {
        (
            cart_names,
            keys.user.map(|u| keys.names(d, u)).unwrap_or_default(),
        )
    };
    let _ = writeln!(t, "cart_id = {}", list(&cart_keys));
    let _ = writeln!(t, "user_id = {}", list(&user_keys));
    let _ = writeln!(t, "session_id = []");
    for (what, setting, found) in [
        ("item count", "item_count", c.count),
        ("value", "total_value", c.value),
    ] {
        match found {
            Some((_, why)) => {
                let _ = writeln!(t, "# {what} {why}");
            }
            None => {
                let _ = writeln!(t, "# {what}: none found");
            }
        }
        let keys: Vec<String> = found.iter().map(|(k, _)| d.s(*k).to_string()).collect();
        let _ = writeln!(t, "{setting} = {}", list(&keys));
    }
    let _ = writeln!(t, "cart_is_user = {}", keys.cart_is_user);

    let stage = |t: &mut String, name: &str, why: &str, spans: &[String], extra: &str| {
        let _ = writeln!(t, "\n# {why}");
        let _ = writeln!(
            t,
            "[[stages]]\nname = {}\nspans = {}{extra}",
            quote(name),
            list(spans)
        );
    };
    stage(
        &mut t,
        "active",
        &format!(
            "Adding to the cart, the step most carts take and take first: {}",
            steps.evidence(c.active)
        ),
        &steps.names(c.active),
        "",
    );
    for (name, sts, why) in c.stages {
        let mut spans: Vec<String> = sts.iter().flat_map(|s| steps.names(*s)).collect();
        spans.sort();
        stage(&mut t, name, why, &spans, "");
    }
    let mut extra = String::new();
    if !c.done.has.is_empty() {
        let _ = write!(extra, "\nhas = {}", list(&c.done.has));
    }
    if c.done.status_ok {
        extra.push_str("\nstatus = \"ok\"");
    }
    extra.push_str("\nsuccess = true");
    let why = if c.done.why.is_empty() {
        "The success stage: no evidence; see WEAK EVIDENCE above".to_string()
    } else {
        format!("The success stage, an order placed: {}", c.done.why)
    };
    stage(&mut t, "completed", &why, &steps.names(c.done.step), &extra);
    let _ = writeln!(
        t,
        "\n# The cause rules and the rows the replay writes for each abandonment (defaults).\n\
         [causes]\nslow_ms = 2000.0\nerror_window = \"5m\"\npercentile = 0.95\n\n\
         [derived]\nspan_name = \"cart.abandonment.detected\"\nmetric_name = \"cart.state.transitions\"\n\
         stage_attribute = \"cart.stage\"\nabandoned_stage = \"abandoned\"\n\
         cart_id_attribute = \"cart.id\"\nservice_name = \"cart\""
    );
    t
}
